//! 256-bit object identifiers and their hex form.
//!
//! Blob ids are keyed BLAKE3 of the plaintext; file ids (packs, indexes,
//! snapshots, keys, locks) are unkeyed BLAKE3 of the stored bytes
//! (format-spec/README.md §"Identifiers").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// Length of an id in bytes.
pub const ID_LEN: usize = 32;

/// A 256-bit identifier, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; ID_LEN]);

impl Id {
    /// The unkeyed BLAKE3 hash of `data` (the id of a stored file).
    pub fn hash(data: &[u8]) -> Id {
        Id(*blake3::hash(data).as_bytes())
    }

    /// [`Id::hash`] of the concatenation of `pieces`, without making it.
    pub fn hash_pieces<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Id {
        let mut h = blake3::Hasher::new();
        for p in pieces {
            h.update(p);
        }
        Id(*h.finalize().as_bytes())
    }

    /// A random id (lock files, repository ids).
    ///
    /// # Errors
    /// When the operating system has no randomness to give.
    pub fn random() -> crate::Result<Id> {
        let mut b = [0u8; ID_LEN];
        getrandom::fill(&mut b)
            .map_err(|e| Error::io("no randomness from the OS", std::io::Error::other(e)))?;
        Ok(Id(b))
    }

    /// The full hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, for display.
    pub fn short(&self) -> String {
        let mut s = self.to_hex();
        s.truncate(8);
        s
    }

    /// Reads an id from exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Option<Id> {
        <[u8; ID_LEN]>::try_from(b).ok().map(Id)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut b = [0u8; ID_LEN];
        hex::decode_to_slice(s, &mut b).map_err(|_| Error::bad_value("id", s, "64 hex digits"))?;
        Ok(Id(b))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = Id::hash(b"abc");
        let back: Id = id.to_hex().parse().unwrap();
        assert_eq!(id, back);
        assert_eq!(id.short().len(), 8);
        assert!("xyz".parse::<Id>().is_err());
        assert!(format!("{}00", id).parse::<Id>().is_err());
    }

    #[test]
    fn serde_as_hex_string() {
        let id = Id::hash(b"abc");
        let j = serde_json::to_string(&id).unwrap();
        assert_eq!(j, format!("\"{}\"", id.to_hex()));
        let back: Id = serde_json::from_str(&j).unwrap();
        assert_eq!(back, id);
    }
}
