//! What `check` finds, as values: [`Finding`]s are damage (the repository
//! is unsound while there is one), [`Note`]s are leftovers that are not.
//!
//! Callers decide by the variant — `repair snapshots` rebuilds the index
//! when a [`Finding::MissingPack`] is among them — and the CLI renders
//! them; nobody matches message text. Each variant's `Display` is the line
//! `check` prints; under `--json` a finding is an object with its variant
//! in `finding`, its fields, and that line in `message`.

use serde::Serialize;

use super::Affected;
use crate::id::Id;

/// Damage `check` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Finding {
    /// An index file that does not open.
    IndexFile {
        /// The index file.
        index: Id,
        /// Why (names the file).
        error: String,
    },
    /// A pack the index names is not in storage.
    MissingPack {
        /// The pack.
        pack: Id,
    },
    /// A pack whose size is not what its index entries imply.
    PackSize {
        /// The pack.
        pack: Id,
        /// Its size in storage.
        stored: u64,
        /// The size its index entries imply.
        expected: u64,
    },
    /// A snapshot file that does not open.
    SnapshotFile {
        /// The snapshot.
        snapshot: Id,
        /// Why (names the file).
        error: String,
    },
    /// A tree a snapshot references is not indexed.
    TreeNotIndexed {
        /// The snapshot that reaches it first.
        snapshot: Id,
        /// The tree.
        tree: Id,
    },
    /// A tree a snapshot references is indexed as data.
    TreeIndexedAsData {
        /// The snapshot that reaches it first.
        snapshot: Id,
        /// The tree.
        tree: Id,
    },
    /// A tree that could not be read or decoded.
    TreeUnreadable {
        /// The snapshot that reaches it first.
        snapshot: Id,
        /// Why (names the tree).
        error: String,
    },
    /// A data blob a snapshot references is not indexed.
    DataNotIndexed {
        /// The snapshot.
        snapshot: Id,
        /// The referencing node's kind (`partition`, `file`, …).
        node_kind: String,
        /// The referencing node's name.
        node: String,
        /// The blob.
        blob: Id,
    },
    /// A data blob a snapshot references is indexed as a tree.
    DataIndexedAsTree {
        /// The snapshot.
        snapshot: Id,
        /// The blob.
        blob: Id,
    },
    /// A pack that could not be read from storage.
    PackUnreadable {
        /// The pack.
        pack: Id,
        /// Why.
        error: String,
    },
    /// Verifying a pack crashed (a bug in kvault).
    VerifierCrashed {
        /// The pack.
        pack: Id,
        /// The panic.
        error: String,
    },
    /// A pack whose bytes do not hash to its name.
    PackNameMismatch {
        /// The pack.
        pack: Id,
    },
    /// A pack whose header does not open or decode.
    PackHeader {
        /// The pack.
        pack: Id,
        /// Why (names the pack).
        error: String,
    },
    /// An index entry the pack's own header does not have.
    IndexEntryMismatch {
        /// The pack.
        pack: Id,
        /// The blob the entry names.
        blob: Id,
    },
    /// A header entry pointing past the pack's end.
    BlobOutsidePack {
        /// The pack.
        pack: Id,
        /// The blob.
        blob: Id,
    },
    /// A blob that does not decrypt, decompress or hash to its id.
    CorruptBlob {
        /// The pack.
        pack: Id,
        /// The blob.
        blob: Id,
        /// Why (names the pack).
        error: String,
    },
    /// Records or bytes a snapshot lost to damaged blobs.
    Lost(Affected),
    /// Bytes that must be absent (`check --absent`: an erased key or
    /// value) are in a stored object, decrypted.
    ErasedBytesPresent {
        /// The object (`blob … in pack …`, `index file …`, `snapshot file …`).
        object: String,
        /// Which of the given byte strings (1-based, in the order given; never the bytes).
        needle: usize,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use Finding as F;
        match self {
            F::IndexFile { error, .. } | F::SnapshotFile { error, .. } | F::PackHeader { error, .. } => {
                f.write_str(error)
            }
            F::CorruptBlob { error, .. } => f.write_str(error),
            F::MissingPack { pack } => write!(f, "pack {pack} is indexed but missing from storage"),
            F::PackSize {
                pack,
                stored,
                expected,
            } => write!(
                f,
                "pack {pack} is corrupt or tampered: {stored} bytes in storage, the index implies {expected}"
            ),
            F::TreeNotIndexed { snapshot, tree } => {
                write!(
                    f,
                    "snapshot {}: tree {tree} is not in the index",
                    snapshot.short()
                )
            }
            F::TreeIndexedAsData { snapshot, tree } => {
                write!(f, "snapshot {}: tree {tree} is indexed as data", snapshot.short())
            }
            F::TreeUnreadable { snapshot, error } => write!(f, "snapshot {}: {error}", snapshot.short()),
            F::DataNotIndexed {
                snapshot,
                node_kind,
                node,
                blob,
            } => write!(
                f,
                "snapshot {}: {node_kind} {node:?}: data blob {blob} is not in the index",
                snapshot.short()
            ),
            F::DataIndexedAsTree { snapshot, blob } => {
                write!(
                    f,
                    "snapshot {}: blob {blob} is indexed as a tree",
                    snapshot.short()
                )
            }
            F::PackUnreadable { pack, error } => write!(f, "pack {pack}: {error}"),
            F::VerifierCrashed { pack, error } => write!(f, "pack {pack}: verifier crashed: {error}"),
            F::PackNameMismatch { pack } => {
                write!(
                    f,
                    "pack {pack} is corrupt or tampered: content does not match its name"
                )
            }
            F::IndexEntryMismatch { pack, blob } => {
                write!(
                    f,
                    "pack {pack}: index entry for blob {blob} does not match the pack header"
                )
            }
            F::BlobOutsidePack { pack, blob } => write!(f, "pack {pack}: blob {blob} lies outside the pack"),
            F::Lost(a) => write!(f, "lost: {a}"),
            F::ErasedBytesPresent { object, needle } => {
                write!(f, "{object} still holds erased bytes #{needle}")
            }
        }
    }
}

/// Something worth knowing that is not damage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "note", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Note {
    /// A file in `data/` that is not named like a pack.
    StrayFile {
        /// Its path.
        path: String,
    },
    /// A pack no index names (an interrupted write, or a lost index file).
    UnindexedPack {
        /// The pack.
        pack: Id,
    },
    /// Temporary files of interrupted writes.
    TempFiles {
        /// How many.
        count: usize,
        /// Their bytes.
        bytes: u64,
    },
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::StrayFile { path } => write!(f, "unexpected file {path} in data/"),
            Note::UnindexedPack { pack } => write!(
                f,
                "pack {pack} is not in any index (left by an interrupted write, or its index file is lost: \
                 prune removes it once it is older than the safety window; `kvault repair index` indexes it)"
            ),
            Note::TempFiles { count, bytes } => write!(
                f,
                "{count} temporary file(s) of interrupted writes in {}/ ({bytes} bytes; prune removes them)",
                crate::repo::TMP_DIR
            ),
        }
    }
}

/// Serializes findings or notes with their printed line as `message`.
pub(super) fn with_messages<S, T>(items: &[T], s: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    T: Serialize + std::fmt::Display,
{
    #[derive(Serialize)]
    struct WithMessage<'a, T: Serialize> {
        #[serde(flatten)]
        item: &'a T,
        message: String,
    }
    s.collect_seq(items.iter().map(|item| WithMessage {
        item,
        message: item.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_is_json_with_its_variant_fields_and_line() {
        let f = Finding::MissingPack { pack: Id([0xab; 32]) };
        #[derive(Serialize)]
        struct R {
            #[serde(serialize_with = "with_messages")]
            errors: Vec<Finding>,
        }
        let v = serde_json::to_value(R {
            errors: vec![f.clone()],
        })
        .unwrap();
        assert_eq!(v["errors"][0]["finding"], "missing_pack");
        assert_eq!(v["errors"][0]["pack"], Id([0xab; 32]).to_hex());
        assert_eq!(v["errors"][0]["message"], f.to_string());
        assert!(f.to_string().contains("indexed but missing"));
    }
}
