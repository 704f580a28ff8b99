//! The envelope of every encrypted repository file other than packs and
//! key files: config, index, snapshot and lock files
//! (format-spec/README.md §"Encrypted files").
//!
//! `"KVLT" || version (1) || file type (1) || nonce || ciphertext || tag`.
//! The six clear bytes are the associated data, so a file of one type can
//! not be passed off as another. The plaintext is one zstd frame.

use std::io::Read;

use super::crypto::Keys;
use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"KVLT";
const VERSION: u8 = 1;
/// Largest plaintext a reader inflates (bounds memory on hostile input).
pub const MAX_PLAINTEXT: u64 = 1 << 30;

/// What an envelope holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// The repository config.
    Config = 1,
    /// An index file.
    Index = 2,
    /// A snapshot.
    Snapshot = 3,
    /// A lock.
    Lock = 4,
}

impl FileType {
    /// The lowercase name used in messages and in `cat`.
    pub fn name(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Index => "index",
            FileType::Snapshot => "snapshot",
            FileType::Lock => "lock",
        }
    }
}

/// Compresses and seals `payload` as a file of type `t`.
///
/// # Errors
/// No randomness or a compression failure.
pub fn seal_file(keys: &Keys, t: FileType, payload: &[u8]) -> Result<Vec<u8>> {
    let head = [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, t as u8];
    let z = zstd::bulk::compress(payload, 3).map_err(|e| Error::io("zstd compression", e))?;
    let sealed = keys.seal(&head, &z)?;
    let mut out = Vec::with_capacity(head.len() + sealed.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a file of type `t`; `object` names it in errors.
///
/// # Errors
/// [`Error::Corrupt`] when the header, authentication or compression does
/// not check out; [`Error::Unsupported`] for a newer version.
pub fn open_file(keys: &Keys, t: FileType, bytes: &[u8], object: &str) -> Result<Vec<u8>> {
    let head = bytes
        .get(..6)
        .ok_or_else(|| Error::corrupt(object, "shorter than its header"))?;
    if head.get(..4) != Some(MAGIC.as_slice()) {
        return Err(Error::corrupt(object, "not a kvault file (bad magic)"));
    }
    if head.get(4) != Some(&VERSION) {
        return Err(Error::Unsupported(format!(
            "{object} has file version {:?}",
            head.get(4)
        )));
    }
    if head.get(5) != Some(&(t as u8)) {
        return Err(Error::corrupt(object, format!("is not a {} file", t.name())));
    }
    let z = keys.open(head, bytes.get(6..).unwrap_or_default(), &object)?;
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(z.as_slice())
        .map_err(|e| Error::corrupt(object, format!("zstd: {e}")))?
        .take(MAX_PLAINTEXT + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::corrupt(object, format!("zstd: {e}")))?;
    if out.len() as u64 > MAX_PLAINTEXT {
        return Err(Error::corrupt(object, "plaintext over 1 GiB"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn type_is_bound() {
        let k = Keys::from_master([1; 32]);
        let f = seal_file(&k, FileType::Index, b"payload").unwrap();
        assert_eq!(open_file(&k, FileType::Index, &f, "i").unwrap(), b"payload");
        let mut g = f.clone();
        g[5] = FileType::Snapshot as u8;
        assert!(open_file(&k, FileType::Snapshot, &g, "s").is_err());
        assert!(open_file(&k, FileType::Snapshot, &f, "s").is_err());
        for i in 0..f.len() {
            let mut t = f.clone();
            t[i] ^= 4;
            assert!(open_file(&k, FileType::Index, &t, "i").is_err(), "flip {i}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(p in proptest::collection::vec(any::<u8>(), 0..4000)) {
            let k = Keys::from_master([2; 32]);
            let f = seal_file(&k, FileType::Snapshot, &p).unwrap();
            prop_assert_eq!(open_file(&k, FileType::Snapshot, &f, "s").unwrap(), p);
        }
        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = Keys::from_master([2; 32]);
            let _ = open_file(&k, FileType::Config, &b, "c");
        }
    }
}
