//! Plain types of Kafka snapshots, needed to read manifests even in builds
//! without the Kafka client (`--no-default-features`, the fuzz targets).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
