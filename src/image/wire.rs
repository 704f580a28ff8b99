//! Kafka's wire encoding as its internal topics' records and its requests
//! use it (big-endian integers, classic and compact strings, unsigned
//! varints, tagged fields): one cursor for every decoder that reads them
//! (`commits`, `txnlog`, `kafka::protocol`) and one writer for the requests
//! kvault encodes itself.

/// Why bytes did not decode: what was being read and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

/// Reads Kafka-encoded values from the front of a byte slice.
pub struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Cursor { b }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        if self.b.len() < n {
            return Err(WireError(format!("truncated {what}")));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], WireError> {
        let b = self.take(N, what)?;
        <[u8; N]>::try_from(b).map_err(|_| WireError(format!("truncated {what}")))
    }
    /// One byte as an i8.
    pub fn i8(&mut self, what: &str) -> Result<i8, WireError> {
        Ok(i8::from_be_bytes(self.array(what)?))
    }
    /// A big-endian i16.
    pub fn i16(&mut self, what: &str) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }
    /// A big-endian i32.
    pub fn i32(&mut self, what: &str) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }
    /// A big-endian i64.
    pub fn i64(&mut self, what: &str) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }
    /// An unsigned varint (7 bits a byte, low first).
    pub fn uvarint(&mut self, what: &str) -> Result<u64, WireError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let [b] = self.array::<1>(what)?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError(format!("{what}: varint too long")))
    }
    /// `n` bytes of UTF-8.
    pub fn utf8(&mut self, n: usize, what: &str) -> Result<String, WireError> {
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| WireError(format!("{what} is not UTF-8")))
    }
    /// A classic string: i16 length, then bytes (-1: null, read as "").
    pub fn string(&mut self, what: &str) -> Result<String, WireError> {
        Ok(self.nullable_string(what)?.unwrap_or_default())
    }
    /// A compact string: unsigned varint length + 1, then bytes (0: null).
    pub fn compact_string(&mut self, what: &str) -> Result<String, WireError> {
        Ok(self.compact_nullable_string(what)?.unwrap_or_default())
    }
    /// A boolean (one byte, nonzero true).
    pub fn bool(&mut self, what: &str) -> Result<bool, WireError> {
        Ok(self.i8(what)? != 0)
    }
    /// A big-endian IEEE 754 double.
    pub fn f64(&mut self, what: &str) -> Result<f64, WireError> {
        Ok(f64::from_be_bytes(self.array(what)?))
    }
    /// A classic nullable string: i16 length (-1: null), then bytes.
    pub fn nullable_string(&mut self, what: &str) -> Result<Option<String>, WireError> {
        let n = self.i16(what)?;
        if n < 0 {
            return Ok(None);
        }
        self.utf8(n as usize, what).map(Some)
    }
    /// A compact nullable string: unsigned varint length + 1 (0: null).
    pub fn compact_nullable_string(&mut self, what: &str) -> Result<Option<String>, WireError> {
        let n = self.uvarint(what)?;
        if n == 0 {
            return Ok(None);
        }
        let n = usize::try_from(n - 1).map_err(|_| WireError(format!("{what}: length")))?;
        self.utf8(n, what).map(Some)
    }
    /// A classic array's length (i32; -1: null, read as 0), bounded by the
    /// bytes left (each element takes at least one).
    pub fn array_len(&mut self, what: &str) -> Result<usize, WireError> {
        let n = self.i32(what)?;
        self.bounded(i64::from(n.max(0)), what)
    }
    /// A compact array's length (unsigned varint length + 1; 0: null, read
    /// as 0), bounded by the bytes left.
    pub fn compact_array_len(&mut self, what: &str) -> Result<usize, WireError> {
        let n = self.uvarint(what)?;
        self.bounded(i64::try_from(n.saturating_sub(1)).unwrap_or(i64::MAX), what)
    }
    fn bounded(&self, n: i64, what: &str) -> Result<usize, WireError> {
        match usize::try_from(n) {
            Ok(n) if n <= self.b.len() => Ok(n),
            _ => Err(WireError(format!(
                "{what}: {n} elements in {} bytes",
                self.b.len()
            ))),
        }
    }
    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    /// Tagged fields (flexible versions): skipped.
    pub fn skip_tags(&mut self) -> Result<(), WireError> {
        let n = self.uvarint("tagged fields")?;
        for _ in 0..n {
            self.uvarint("tag")?;
            let len = self.uvarint("tagged field size")?;
            let len = usize::try_from(len).map_err(|_| WireError("tagged field size".into()))?;
            self.take(len, "tagged field")?;
        }
        Ok(())
    }
}

/// Writes Kafka-encoded values (a request body).
#[derive(Debug, Default)]
pub struct Writer {
    /// The bytes so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// One byte.
    pub fn i8(&mut self, v: i8) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A big-endian i16.
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A big-endian i32.
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A big-endian IEEE 754 double.
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A boolean.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.i8(i8::from(v))
    }
    /// An unsigned varint.
    pub fn uvarint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }
    /// A classic nullable string (`None`: length -1). Kafka's strings are
    /// at most 32,767 bytes; a longer one is cut there.
    pub fn string(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            None => self.i16(-1),
            Some(s) => {
                let b = s
                    .as_bytes()
                    .get(..s.len().min(i16::MAX as usize))
                    .unwrap_or_default();
                self.i16(b.len() as i16);
                self.buf.extend_from_slice(b);
                self
            }
        }
    }
    /// A compact nullable string.
    pub fn compact_string(&mut self, v: Option<&str>) -> &mut Self {
        self.compact_bytes(v.map(str::as_bytes))
    }
    /// Compact nullable bytes.
    pub fn compact_bytes(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            None => self.uvarint(0),
            Some(b) => {
                self.uvarint(b.len() as u64 + 1);
                self.buf.extend_from_slice(b);
                self
            }
        }
    }
    /// A classic array's length.
    pub fn array_len(&mut self, n: usize) -> &mut Self {
        self.i32(i32::try_from(n).unwrap_or(i32::MAX))
    }
    /// A compact array's length (`None`: null).
    pub fn compact_array_len(&mut self, n: Option<usize>) -> &mut Self {
        self.uvarint(n.map_or(0, |n| n as u64 + 1))
    }
    /// No tagged fields.
    pub fn no_tags(&mut self) -> &mut Self {
        self.uvarint(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writer writes, the cursor reads back.
    #[test]
    fn writer_and_cursor_agree() {
        let mut w = Writer::default();
        w.i8(-3)
            .i16(7)
            .i32(-9)
            .f64(1.5)
            .bool(true)
            .uvarint(300)
            .string(Some("ab"))
            .string(None)
            .compact_string(Some("cd"))
            .compact_string(None)
            .array_len(2)
            .compact_array_len(Some(1))
            .no_tags();
        let mut c = Cursor::new(&w.buf);
        assert_eq!(c.i8("").unwrap(), -3);
        assert_eq!(c.i16("").unwrap(), 7);
        assert_eq!(c.i32("").unwrap(), -9);
        assert_eq!(c.f64("").unwrap(), 1.5);
        assert!(c.bool("").unwrap());
        assert_eq!(c.uvarint("").unwrap(), 300);
        assert_eq!(c.nullable_string("").unwrap().as_deref(), Some("ab"));
        assert_eq!(c.nullable_string("").unwrap(), None);
        assert_eq!(c.compact_nullable_string("").unwrap().as_deref(), Some("cd"));
        assert_eq!(c.compact_nullable_string("").unwrap(), None);
        // Lengths are bounded by what is left: 2 elements need 2 bytes.
        assert_eq!(c.array_len("").unwrap(), 2);
        assert_eq!(c.compact_array_len("").unwrap(), 1);
        c.skip_tags().unwrap();
        assert!(c.is_empty());
        assert!(Cursor::new(&[0, 0, 0, 9]).array_len("x").is_err());
    }
}
