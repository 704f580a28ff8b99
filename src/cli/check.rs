//! `kvault check [--read-data | --read-data-subset N% | --absent BYTES]`.

use anyhow::{Result, bail};
use clap::Args;
use kvault::error::exit;
use kvault::ops::check::{CheckOptions, Finding, check};
use serde_json::json;

use super::Ctx;
use super::rewrite::{KeyEncoding, byte_strings};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Read every pack and verify every blob.
    #[arg(long)]
    read_data: bool,
    /// Read a random subset of packs, e.g. `10%`.
    #[arg(long, value_name = "N%", conflicts_with_all = ["absent", "absent_file"])]
    read_data_subset: Option<String>,
    /// Bytes that must be nowhere in storage (an erased key or value): every blob, index and
    /// snapshot file is decrypted and searched (implies --read-data; repeatable).
    #[arg(long, value_name = "BYTES")]
    absent: Vec<String>,
    /// A file of such byte strings, one per line.
    #[arg(long, value_name = "FILE")]
    absent_file: Option<std::path::PathBuf>,
    /// How --absent values are written.
    #[arg(long, value_enum, default_value_t = KeyEncoding::Utf8)]
    absent_encoding: KeyEncoding,
}

/// Parses `N%` (or `N`) for `flag`; `zero` allows 0%.
pub(crate) fn parse_percent(flag: &str, s: &str, zero: bool) -> Result<f64> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag} {s:?} is not a percentage like 10%"))?;
    let low_ok = if zero { v >= 0.0 } else { v > 0.0 };
    if !(low_ok && v <= 100.0) {
        let low = if zero { "[0%" } else { "(0%" };
        bail!("{flag} {s:?} must be in {low}, 100%]");
    }
    Ok(v)
}

pub async fn run(ctx: &Ctx, a: CheckArgs) -> Result<i32> {
    let subset = a
        .read_data_subset
        .as_deref()
        .map(|s| parse_percent("--read-data-subset", s, false))
        .transpose()?;
    let absent = byte_strings("--absent", &a.absent, a.absent_file.as_deref(), a.absent_encoding)?;
    let repo = ctx.open().await?;
    let opts = CheckOptions {
        read_data: a.read_data || subset.is_some() || !absent.is_empty(),
        subset_percent: subset,
        absent: std::sync::Arc::new(absent),
    };
    let bar = ctx.out.progress();
    // A shared lock: a prune cannot change the repository under the check.
    let rep = kvault::ops::with_lock(&repo, false, || check(&repo, &opts, &bar)).await?;
    if !ctx.out.json {
        for n in &rep.notes {
            ctx.out.note(&format!("note: {n}"));
        }
        for e in &rep.errors {
            eprintln!("error: {e}");
        }
    }
    ctx.out.emit("check", json!(rep), || {
        let mut s = format!(
            "checked {} snapshot(s), {} tree(s), {} index file(s), {} pack(s), {} blob(s)",
            rep.snapshots, rep.trees, rep.index_files, rep.packs, rep.blobs
        );
        if opts.read_data {
            s.push_str(&format!(
                "; read {} pack(s), verified {} blob(s)",
                rep.packs_read, rep.blobs_verified
            ));
        }
        if rep.unused_blobs > 0 {
            s.push_str(&format!(
                "; {} blob(s) unused (prune frees them)",
                rep.unused_blobs
            ));
        }
        s
    });
    let present = rep
        .errors
        .iter()
        .filter(|e| matches!(e, Finding::ErasedBytesPresent { .. }))
        .count();
    if rep.errors.is_empty() {
        ctx.out.note("no errors were found");
        Ok(exit::OK)
    } else if present == rep.errors.len() {
        bail!(
            "erased bytes are still stored in {present} object(s): forget the snapshots that hold them, then prune --max-unused 0"
        )
    } else {
        bail!(
            "check found {} error(s): the repository is damaged",
            rep.errors.len()
        )
    }
}
