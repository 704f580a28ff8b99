//! Index files and the in-memory master index (format-spec/README.md
//! §"Index").
//!
//! An index file lists, for some packs, every blob in them with its offset,
//! so a reader finds a blob without opening pack headers. It is written only
//! after all its packs are stored (pack -> index -> snapshot ordering), so
//! every entry of an index points into an existing pack. An index may name
//! older index files it supersedes (used by prune); readers ignore
//! superseded files.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::pack::{BlobEntry, HEADER_ENTRY_LEN, decode_entry, le_u32};
use crate::error::{Error, Result};
use crate::id::{ID_LEN, Id};

const MAGIC: &[u8; 4] = b"KVIX";
const VERSION: u8 = 1;
const ENTRY_LEN: usize = HEADER_ENTRY_LEN + 4;

/// The blobs of one pack, as an index file lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexPack {
    /// Pack id.
    pub id: Id,
    /// Blobs with their offsets in the pack.
    pub blobs: Vec<(BlobEntry, u32)>,
}

/// A decoded index file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexFile {
    /// Index files this one replaces.
    pub supersedes: Vec<Id>,
    /// Packs it describes.
    pub packs: Vec<IndexPack>,
}

fn count(b: &[u8], at: usize, each: usize, what: &str) -> Result<usize> {
    let n = le_u32(b, at).ok_or_else(|| Error::corrupt(what, "truncated"))? as usize;
    // Refuse counts the remaining bytes cannot hold before allocating.
    if n.saturating_mul(each) > b.len().saturating_sub(at + 4) {
        return Err(Error::corrupt(what, format!("count {n} exceeds the file")));
    }
    Ok(n)
}

impl IndexFile {
    /// Encodes the payload (before sealing).
    pub fn encode(&self) -> Vec<u8> {
        let blobs: usize = self.packs.iter().map(|p| p.blobs.len()).sum();
        let mut b = Vec::with_capacity(
            13 + self.supersedes.len() * ID_LEN + self.packs.len() * 36 + blobs * ENTRY_LEN,
        );
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        b.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for s in &self.supersedes {
            b.extend_from_slice(&s.0);
        }
        b.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            b.extend_from_slice(&p.id.0);
            b.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
            for (e, off) in &p.blobs {
                b.push(e.blob_type as u8);
                b.push(e.compression as u8);
                b.extend_from_slice(&e.stored_len.to_le_bytes());
                b.extend_from_slice(&e.raw_len.to_le_bytes());
                b.extend_from_slice(&e.id.0);
                b.extend_from_slice(&off.to_le_bytes());
            }
        }
        b
    }

    /// Decodes a payload; `what` names the file in errors.
    ///
    /// # Errors
    /// [`Error::Corrupt`] on any malformation.
    pub fn decode(b: &[u8], what: &str) -> Result<IndexFile> {
        if b.get(..4) != Some(MAGIC.as_slice()) {
            return Err(Error::corrupt(what, "bad index magic"));
        }
        if b.get(4) != Some(&VERSION) {
            return Err(Error::Unsupported(format!(
                "{what} has index version {:?}",
                b.get(4)
            )));
        }
        let mut at = 5;
        let ns = count(b, at, ID_LEN, what)?;
        at += 4;
        let mut supersedes = Vec::with_capacity(ns);
        for _ in 0..ns {
            let id = b
                .get(at..at + ID_LEN)
                .and_then(Id::from_slice)
                .ok_or_else(|| Error::corrupt(what, "truncated"))?;
            supersedes.push(id);
            at += ID_LEN;
        }
        let np = count(b, at, ID_LEN + 4, what)?;
        at += 4;
        let mut packs = Vec::with_capacity(np);
        for _ in 0..np {
            let id = b
                .get(at..at + ID_LEN)
                .and_then(Id::from_slice)
                .ok_or_else(|| Error::corrupt(what, "truncated"))?;
            at += ID_LEN;
            let nb = count(b, at, ENTRY_LEN, what)?;
            at += 4;
            let mut blobs = Vec::with_capacity(nb);
            for _ in 0..nb {
                let s = b
                    .get(at..at + ENTRY_LEN)
                    .ok_or_else(|| Error::corrupt(what, "truncated"))?;
                let e = decode_entry(s).ok_or_else(|| Error::corrupt(what, "bad blob entry"))?;
                let off = le_u32(s, HEADER_ENTRY_LEN).ok_or_else(|| Error::corrupt(what, "truncated"))?;
                blobs.push((e, off));
                at += ENTRY_LEN;
            }
            packs.push(IndexPack { id, blobs });
        }
        if at != b.len() {
            return Err(Error::corrupt(what, format!("{} trailing bytes", b.len() - at)));
        }
        Ok(IndexFile { supersedes, packs })
    }
}

/// Where a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: Id,
    /// Byte offset in the pack.
    pub offset: u32,
    /// Its header entry.
    pub entry: BlobEntry,
}

/// Every blob of the repository, from all (non-superseded) index files.
#[derive(Debug, Default, Clone)]
pub struct MasterIndex {
    blobs: HashMap<Id, BlobLocation>,
    packs: HashMap<Id, Vec<Id>>,
}

impl MasterIndex {
    /// Builds the master index from decoded files (id, file). Files named in
    /// another file's `supersedes` are skipped.
    pub fn from_files(files: &[(Id, IndexFile)]) -> MasterIndex {
        let superseded: HashSet<Id> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let mut m = MasterIndex::default();
        for (id, f) in files {
            if !superseded.contains(id) {
                m.add_file(f);
            }
        }
        m
    }

    /// Adds every pack of an index file.
    pub fn add_file(&mut self, f: &IndexFile) {
        for p in &f.packs {
            self.add_pack(p);
        }
    }

    /// Adds one pack's blobs (the first location of a blob wins).
    pub fn add_pack(&mut self, p: &IndexPack) {
        let ids = self.packs.entry(p.id).or_default();
        for (e, off) in &p.blobs {
            ids.push(e.id);
            self.blobs.entry(e.id).or_insert(BlobLocation {
                pack: p.id,
                offset: *off,
                entry: *e,
            });
        }
    }

    /// Where a blob is, if indexed.
    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// Whether a blob is indexed.
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Every indexed pack with the ids of its blobs.
    pub fn packs(&self) -> &HashMap<Id, Vec<Id>> {
        &self.packs
    }

    /// Every blob location.
    pub fn blobs(&self) -> impl Iterator<Item = &BlobLocation> {
        self.blobs.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::pack::{BlobType, Compression};
    use proptest::prelude::*;

    fn entry(i: u8) -> BlobEntry {
        BlobEntry {
            blob_type: BlobType::Data,
            compression: Compression::Zstd,
            stored_len: 100 + u32::from(i),
            raw_len: 300,
            id: Id([i; 32]),
        }
    }

    #[test]
    fn superseded_files_are_ignored() {
        let a = IndexFile {
            supersedes: vec![],
            packs: vec![IndexPack {
                id: Id([9; 32]),
                blobs: vec![(entry(1), 0)],
            }],
        };
        let b = IndexFile {
            supersedes: vec![Id([0xa; 32])],
            packs: vec![IndexPack {
                id: Id([8; 32]),
                blobs: vec![(entry(2), 0)],
            }],
        };
        let m = MasterIndex::from_files(&[(Id([0xa; 32]), a), (Id([0xb; 32]), b)]);
        assert!(!m.contains(&Id([1; 32])));
        assert!(m.contains(&Id([2; 32])));
    }

    proptest! {
        #[test]
        fn round_trip(sup in 0usize..3, packs in proptest::collection::vec(0u8..20, 0..5)) {
            let f = IndexFile {
                supersedes: (0..sup).map(|i| Id([i as u8; 32])).collect(),
                packs: packs.iter().map(|&n| IndexPack { id: Id([n; 32]), blobs: (0..n).map(|i| (entry(i), u32::from(i) * 7)).collect() }).collect(),
            };
            let b = f.encode();
            prop_assert_eq!(IndexFile::decode(&b, "i").unwrap(), f.clone());
            for cut in 0..b.len() {
                prop_assert!(IndexFile::decode(&b[..cut], "i").is_err());
            }
        }
        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = IndexFile::decode(&b, "i");
        }
    }
}
