//! Sizes on the command line: `4096`, `512K`, `10M`, `2G`, `1T`, also
//! spelt `512KiB`, `10MB`, `2g` — always powers of 1024, as restic's
//! `--max-repack-size` reads them. Our own dozen lines: the size crates
//! (bytesize, byte-unit) read `M`/`MB` as powers of 1000, which would
//! change what existing flags mean.

/// Parses a size in bytes.
///
/// # Errors
/// Not a number, or an unknown suffix; the message names the input.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let shift = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        other => return Err(format!("size {s:?}: unknown suffix {other:?} (use K, M, G or T)")),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("size {s:?}: expected a number with an optional K, M, G or T"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn suffixes_are_powers_of_1024() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert_eq!(parse_size(" 2G "), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("3MiB"), Ok(3 << 20));
        assert_eq!(parse_size("7B"), Ok(7));
        assert!(parse_size("5X").unwrap_err().contains("unknown suffix"));
        assert!(parse_size("M").is_err());
        assert!(parse_size("-1M").is_err());
        assert!(parse_size("99999999999T").unwrap_err().contains("too large"));
    }
}
