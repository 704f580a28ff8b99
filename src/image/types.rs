//! Plain types of Kafka snapshots, needed to read manifests even in builds
//! without the Kafka client (`--no-default-features`, the fuzz targets).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One partition of one topic: the key of every per-partition map, shown
/// as `topic/partition`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// The partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Records one committed transaction wrote to a partition, in one run of
/// its batches: `[first, last, marker, marker_ts, producer_id,
/// producer_epoch, commit_ts]` — the offsets of the run's first and last
/// record, the offset of the transaction's commit marker on the partition,
/// the marker's timestamp (the partition leader's clock when it wrote the
/// marker: from then on read_committed consumers of this partition saw the
/// records), the producer that wrote them, and when the transaction had
/// committed on every one of its partitions (its coordinator's
/// CompleteCommit record, format-spec §14; the marker's time when that was
/// not read). Stored as 6 numbers when `commit_ts` equals `marker_ts`, as
/// snapshots before `commit_ts` wrote every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<i64>", into = "Vec<i64>")]
pub struct TxnSpan(pub [i64; 7]);

impl TryFrom<Vec<i64>> for TxnSpan {
    type Error = String;

    fn try_from(v: Vec<i64>) -> std::result::Result<Self, String> {
        match v[..] {
            [a, b, c, d, e, f] => Ok(TxnSpan([a, b, c, d, e, f, d])),
            [a, b, c, d, e, f, g] => Ok(TxnSpan([a, b, c, d, e, f, g])),
            _ => Err(format!("a transaction entry has 6 or 7 numbers, not {}", v.len())),
        }
    }
}

impl From<TxnSpan> for Vec<i64> {
    fn from(s: TxnSpan) -> Vec<i64> {
        let mut v = s.0.to_vec();
        if s.commit_ts() == s.marker_ts() {
            v.pop();
        }
        v
    }
}

impl TxnSpan {
    /// A run from `[first, last, marker, marker_ts, producer_id,
    /// producer_epoch]`, committed (as far as is known) at its marker.
    pub fn new(f: [i64; 6]) -> TxnSpan {
        TxnSpan([f[0], f[1], f[2], f[3], f[4], f[5], f[3]])
    }

    /// When the transaction had committed on all its partitions (never
    /// before this partition's marker).
    pub fn commit_ts(&self) -> i64 {
        self.0[6]
    }

    /// Dates the transaction's commit on all its partitions (`ts`, its
    /// coordinator's record; never before this marker).
    pub fn set_commit_ts(&mut self, ts: i64) {
        self.0[6] = ts.max(self.marker_ts());
    }

    /// Offset of the run's first record.
    pub fn first(&self) -> i64 {
        self.0[0]
    }

    /// Offset of the run's last record.
    pub fn last(&self) -> i64 {
        self.0[1]
    }

    /// Offset of the commit marker.
    pub fn marker(&self) -> i64 {
        self.0[2]
    }

    /// When the marker was written on this partition (ms since the epoch,
    /// the partition leader's clock).
    pub fn marker_ts(&self) -> i64 {
        self.0[3]
    }

    /// The producer id of the transaction.
    pub fn producer_id(&self) -> i64 {
        self.0[4]
    }

    /// The producer epoch of the transaction.
    pub fn producer_epoch(&self) -> i64 {
        self.0[5]
    }

    /// Whether `offset` is one of the run's.
    pub fn holds(&self, offset: i64) -> bool {
        (self.first()..=self.last()).contains(&offset)
    }
}

/// A transaction open on a partition when a snapshot captured it: its
/// records from `first` on (at the partition's last stable offset or
/// beyond) were not visible yet, and the snapshot holds none of them.
/// Stored as `[first, producer_id, producer_epoch]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTxn(pub [i64; 3]);

impl OpenTxn {
    /// Offset of the transaction's first record on the partition.
    pub fn first(&self) -> i64 {
        self.0[0]
    }

    /// The producer id of the transaction.
    pub fn producer_id(&self) -> i64 {
        self.0[1]
    }

    /// The producer epoch of its batches.
    pub fn producer_epoch(&self) -> i64 {
        self.0[2]
    }
}

/// One step of writing a partition in an offset-exact restore, in offset
/// order (planned by [`super::layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The selection's records at `first..first + count`, written plainly.
    Records {
        /// First offset.
        first: i64,
        /// How many.
        count: u64,
    },
    /// Placeholders at `first..first + count` below the log start, written
    /// plainly and deleted once the partition is written.
    Below {
        /// First offset.
        first: i64,
        /// How many.
        count: u64,
    },
    /// The record at `offset` (a placeholder below the log start or where a
    /// record was erased) in a
    /// transaction that commits: its marker takes `offset + 1`.
    Commit {
        /// The record's offset.
        offset: i64,
        /// Whether it is a placeholder (below the log start).
        placeholder: bool,
    },
    /// Placeholders at `first..first + count` where records were erased
    /// (`kvault rewrite`), written plainly and kept.
    Erased {
        /// First offset.
        first: i64,
        /// How many.
        count: u64,
    },
    /// Placeholders at `first..first + count` in a transaction that aborts:
    /// its marker takes `first + count`.
    Abort {
        /// First offset.
        first: i64,
        /// How many placeholders (the gap is one longer).
        count: u64,
    },
}

impl Step {
    /// The step's first offset.
    pub fn first(&self) -> i64 {
        match *self {
            Step::Records { first, .. }
            | Step::Below { first, .. }
            | Step::Erased { first, .. }
            | Step::Abort { first, .. } => first,
            Step::Commit { offset, .. } => offset,
        }
    }

    /// The offset after the step (its marker included).
    pub fn end(&self) -> i64 {
        match *self {
            Step::Records { first, count } | Step::Below { first, count } | Step::Erased { first, count } => {
                first + count as i64
            }
            Step::Commit { offset, .. } => offset + 2,
            Step::Abort { first, count } => first + count as i64 + 1,
        }
    }

    /// Whether the step is a transaction (commit or abort).
    pub fn is_transaction(&self) -> bool {
        matches!(self, Step::Commit { .. } | Step::Abort { .. })
    }
}

/// A topic's `cleanup.policy`: the one place it is read (Kafka's default,
/// when the topic sets none, is `delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// The log is compacted (latest value per key).
    pub compact: bool,
    /// Old segments are deleted by time or size.
    pub delete: bool,
}

impl CleanupPolicy {
    /// The policy of a topic's configs: `compact`, `delete`, or both
    /// (`compact,delete`, in either order, spaces and case ignored).
    pub fn of(configs: &BTreeMap<String, String>) -> CleanupPolicy {
        let Some(p) = configs.get("cleanup.policy") else {
            return CleanupPolicy {
                compact: false,
                delete: true,
            };
        };
        let has = |w: &str| p.split(',').any(|x| x.trim().eq_ignore_ascii_case(w));
        CleanupPolicy {
            compact: has("compact"),
            delete: has("delete"),
        }
    }
}

/// A topic as captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor (of partition 0).
    pub replication_factor: i32,
    /// Configs set on the topic (not defaults).
    pub configs: BTreeMap<String, String>,
}

/// One group's committed offset for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset (the next record the group will read).
    pub offset: i64,
    /// Commit metadata.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
}

/// Per-chunk metadata kept in the manifest, so seeks and time cuts need no
/// data reads: `[first_offset, records, min_ts, max_ts, ts_base]`, where
/// `ts_base` is the timestamp before the chunk's first record (its
/// timestamp deltas start from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkMeta(pub [i64; 5]);

impl ChunkMeta {
    /// Offset of the chunk's first record.
    pub fn first_offset(&self) -> i64 {
        self.0[0]
    }
    /// Records in the chunk.
    pub fn records(&self) -> i64 {
        self.0[1]
    }
    /// Smallest timestamp.
    pub fn min_ts(&self) -> i64 {
        self.0[2]
    }
    /// Largest timestamp.
    pub fn max_ts(&self) -> i64 {
        self.0[3]
    }
    /// Timestamp before the first record.
    pub fn ts_base(&self) -> i64 {
        self.0[4]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_policy_is_read_word_by_word_with_kafkas_default() {
        let of = |v: Option<&str>| {
            let mut c = BTreeMap::new();
            if let Some(v) = v {
                c.insert("cleanup.policy".to_string(), v.to_string());
            }
            let p = CleanupPolicy::of(&c);
            (p.compact, p.delete)
        };
        assert_eq!(of(None), (false, true));
        assert_eq!(of(Some("compact")), (true, false));
        assert_eq!(of(Some("delete")), (false, true));
        assert_eq!(of(Some("Delete , compact")), (true, true));
        assert_eq!(of(Some("uncompacted")), (false, false));
    }
}
