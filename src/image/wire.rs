//! Kafka's wire encoding as its internal topics' records use it
//! (big-endian integers, classic and compact strings, unsigned varints,
//! tagged fields): one cursor for every decoder of `image` that reads them
//! (`commits`, `txnlog`).

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
        let n = self.i16(what)?;
        if n < 0 {
            return Ok(String::new());
        }
        self.utf8(n as usize, what)
    }
    /// A compact string: unsigned varint length + 1, then bytes (0: null).
    pub fn compact_string(&mut self, what: &str) -> Result<String, WireError> {
        let n = self.uvarint(what)?;
        if n == 0 {
            return Ok(String::new());
        }
        let n = usize::try_from(n - 1).map_err(|_| WireError(format!("{what}: length")))?;
        self.utf8(n, what)
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
