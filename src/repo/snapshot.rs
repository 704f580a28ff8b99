//! Snapshot files (format-spec/README.md §"Snapshots").
//!
//! A snapshot names the root tree of one backup plus when, where and why it
//! was taken. It is written last, after its packs and index, so a snapshot
//! that exists is complete.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

/// Snapshot format version.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Counters recorded when the snapshot was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// Logical bytes in the snapshot.
    pub logical_bytes: u64,
    /// Data blobs referenced.
    pub data_blobs: u64,
    /// Data blobs that were new to the repository.
    pub new_data_blobs: u64,
    /// Plaintext bytes of the new blobs.
    pub new_raw_bytes: u64,
    /// Bytes the new blobs take in packs (compressed and sealed).
    pub new_stored_bytes: u64,
}

/// A sharded snapshot run (format-spec §15): on a shard's snapshot (kind
/// `kafka-shard`), which shard it is; on the run's combined snapshot (kind
/// `kafka`), the shards' snapshots it was made from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's id, shared by its shards.
    pub id: String,
    /// This shard's index (`0..shards`); absent on the combined snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// How many shards the run has.
    pub shards: u32,
    /// On the combined snapshot: the shard snapshots, by shard index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Id>,
}

/// An erasure `kvault rewrite` made in a snapshot (format-spec §14
/// "Erased records"): never the keys themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// RFC 3339 time of the rewrite.
    pub time: String,
    /// The snapshot rewritten.
    pub from: Id,
    /// Records erased.
    pub records: u64,
    /// The erased keys, each as its keyed hash (`Keys::erased_key_hash`),
    /// sorted.
    pub keys: Vec<Id>,
}

/// A decrypted snapshot file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version.
    pub version: u32,
    /// RFC 3339 time the snapshot was taken (nanosecond precision).
    pub time: String,
    /// Host it was taken on.
    pub hostname: String,
    /// User that took it.
    pub username: String,
    /// What was backed up: `stream` (a byte stream), later `kafka`.
    pub kind: String,
    /// What the source was (a file name, a cluster id).
    pub source: String,
    /// User tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Root tree.
    pub tree: Id,
    /// The snapshot this one was incremental to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    /// For a snapshot copied from another repository (`kvault copy`): the
    /// id of the snapshot it was first taken as there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    /// Counters.
    #[serde(default)]
    pub summary: SnapshotSummary,
    /// The sharded run this snapshot belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInfo>,
    /// Erasures made by `kvault rewrite`, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erasures: Vec<Erasure>,
    /// In a locked repository: the RFC 3339 date until which this snapshot
    /// and every object it needs cannot be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_until: Option<String>,
}

impl std::ops::AddAssign<&SnapshotSummary> for SnapshotSummary {
    /// Adds another snapshot's counters (a sharded run sums its parts').
    fn add_assign(&mut self, o: &SnapshotSummary) {
        // Destructured: a new counter cannot be forgotten here.
        let SnapshotSummary {
            logical_bytes,
            data_blobs,
            new_data_blobs,
            new_raw_bytes,
            new_stored_bytes,
        } = o;
        self.logical_bytes += logical_bytes;
        self.data_blobs += data_blobs;
        self.new_data_blobs += new_data_blobs;
        self.new_raw_bytes += new_raw_bytes;
        self.new_stored_bytes += new_stored_bytes;
    }
}

impl Snapshot {
    /// Whether this is one shard's part of a sharded run (shown to the
    /// user only through the run's combined snapshot).
    pub fn is_shard_part(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.shard.is_some())
    }

    /// Whether this is a sharded run's combined snapshot.
    pub fn is_run(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.shard.is_none())
    }

    /// The sharded run this snapshot belongs to, as `(run id, cluster)`:
    /// run ids are unique per cluster.
    pub fn run_key(&self) -> Option<(&str, &str)> {
        self.run.as_ref().map(|r| (r.id.as_str(), self.source.as_str()))
    }

    /// Decodes a snapshot payload.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Unsupported`].
    pub fn decode(b: &[u8], id: &Id) -> Result<Snapshot> {
        let s: Snapshot =
            serde_json::from_slice(b).map_err(|e| Error::corrupt(format!("snapshot {}", id.short()), e))?;
        if s.version != SNAPSHOT_VERSION {
            return Err(Error::Unsupported(format!(
                "snapshot {} has version {}",
                id.short(),
                s.version
            )));
        }
        Ok(s)
    }

    /// Encodes the payload.
    ///
    /// # Errors
    /// Never in practice.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(Error::encode)
    }

    /// The time as a `SystemTime`, if it parses.
    pub fn system_time(&self) -> Option<std::time::SystemTime> {
        humantime::parse_rfc3339_weak(&self.time).ok()
    }

    /// The time in milliseconds since the Unix epoch (0 if it does not parse).
    pub fn unix_ms(&self) -> i64 {
        self.system_time()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// Fails unless the snapshot is of `kind`; `what` names the kind for
    /// the message ("a Kafka snapshot", "a stream").
    ///
    /// # Errors
    /// [`crate::error::Refusal::WrongSnapshotKind`].
    pub fn expect_kind(&self, id: &Id, kind: &str, what: &str) -> Result<()> {
        if self.kind == kind {
            return Ok(());
        }
        Err(Error::Refused(crate::error::Refusal::WrongSnapshotKind {
            id: id.short(),
            kind: self.kind.clone(),
            want: what.to_string(),
        }))
    }
}
