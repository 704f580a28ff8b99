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
/// producer_epoch]` — the offsets of the run's first and last record, the
/// offset of the transaction's commit marker on the partition, the marker's
/// timestamp (the broker's clock when it wrote the marker: from then on
/// read_committed consumers saw the records), and the producer that wrote
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnSpan(pub [i64; 6]);

impl TxnSpan {
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

    /// When the marker was written (ms since the epoch, broker clock).
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
