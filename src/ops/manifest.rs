//! The Kafka manifest: how a Kafka snapshot's trees are laid out
//! (format-spec/README.md §14), and reading it back.
//!
//! ```text
//! root        nodes "topics" (type topics) and "groups" (type groups)
//! topics      one node per topic (type topic): partitions, replication factor, configs
//! topic       one node per partition (type partition): log_start, end, records, expired gaps
//! partition   one node per segment (type segment): content = chunk ids,
//!             meta start, end, records, runs, chunks
//! groups      one node per consumer group (type group): offsets
//! ```
//!
//! An unchanged partition keeps its node (and subtree id); an unchanged
//! topic keeps its subtree id: an incremental snapshot of an unchanged
//! cluster writes only the small root and topics trees.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::kafka::record::OffsetRuns;
use crate::kafka::types::{ChunkMeta, GroupOffset};
use crate::repo::Repository;
use crate::repo::tree::{Node, Tree};

/// Snapshot kind of Kafka snapshots.
pub const KAFKA_KIND: &str = "kafka";

/// A segment: the records of `[start, end)` read by one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// First offset asked for.
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
    /// Records stored.
    pub records: u64,
    /// Offsets of the records.
    pub runs: OffsetRuns,
    /// Per-chunk metadata, in order.
    pub chunks: Vec<ChunkMeta>,
}

/// A partition as captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// Partition number.
    pub partition: i32,
    /// Log start offset when captured.
    pub log_start: i64,
    /// End (last stable offset) when captured.
    pub end: i64,
    /// Records in the retained segments.
    pub records: u64,
    /// Offsets that expired before kvault read them (recorded, warned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<[i64; 2]>,
    /// Offsets whose stored chunks were damaged and removed by `repair
    /// snapshots` (their records are lost).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<[i64; 2]>,
}

/// A topic's captured settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// Non-default configs.
    pub configs: BTreeMap<String, String>,
}

/// Serializes a meta struct into a node's meta map.
///
/// # Errors
/// Never in practice.
pub fn to_meta<T: Serialize>(v: &T) -> Result<BTreeMap<String, Value>> {
    match serde_json::to_value(v).map_err(|e| Error::Internal(e.to_string()))? {
        Value::Object(m) => Ok(m.into_iter().collect()),
        _ => Err(Error::Internal("meta is not an object".into())),
    }
}

/// Reads a node's meta map as `T`.
///
/// # Errors
/// [`Error::Corrupt`] when it does not fit.
pub fn from_meta<T: for<'de> Deserialize<'de>>(n: &Node) -> Result<T> {
    let v = Value::Object(n.meta.clone().into_iter().collect());
    serde_json::from_value(v).map_err(|e| Error::corrupt(format!("{} node {:?}", n.kind, n.name), e))
}

/// A segment with its chunk ids.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Metadata.
    pub meta: SegmentMeta,
    /// Chunk blob ids.
    pub chunks: Vec<Id>,
    /// Encoded bytes.
    pub size: u64,
}

impl Segment {
    /// Each chunk with its metadata and the source offsets of its records
    /// (taken from the segment's runs, in order).
    pub fn chunks_with_offsets(&self) -> impl Iterator<Item = (&Id, &ChunkMeta, Vec<i64>)> + '_ {
        let mut offsets = self.meta.runs.offsets();
        self.chunks.iter().zip(&self.meta.chunks).map(move |(id, cm)| {
            let n = usize::try_from(cm.records()).unwrap_or(0);
            (id, cm, offsets.by_ref().take(n).collect())
        })
    }
}

/// A partition with its segments.
#[derive(Debug, Clone)]
pub struct Partition {
    /// Metadata.
    pub meta: PartitionMeta,
    /// The node as stored (reused verbatim when unchanged).
    pub node: Node,
    /// Segments, oldest first (loaded on demand).
    pub segments: Vec<Segment>,
}

/// A topic with its partitions.
#[derive(Debug, Clone)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Settings.
    pub meta: TopicMeta,
    /// The node as stored.
    pub node: Node,
    /// Partitions by number.
    pub partitions: BTreeMap<i32, Partition>,
}

/// A whole Kafka snapshot's manifest.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Topics by name.
    pub topics: BTreeMap<String, Topic>,
    /// Group offsets by group.
    pub groups: BTreeMap<String, Vec<GroupOffset>>,
}

fn child<'a>(t: &'a Tree, kind: &str) -> Option<&'a Node> {
    t.nodes.iter().find(|n| n.kind == kind)
}

/// Loads a Kafka manifest from its root tree. With `segments`, partition
/// segment lists are loaded too (needed to read data; not for planning).
///
/// # Errors
/// Unreadable or malformed trees.
pub async fn load(repo: &Repository, root: &Id, segments: bool) -> Result<Manifest> {
    let root_tree = repo.load_tree(root).await?;
    let mut m = Manifest::default();
    if let Some(t) = child(&root_tree, "topics").and_then(|n| n.subtree) {
        for tn in repo.load_tree(&t).await?.nodes {
            let meta: TopicMeta = from_meta(&tn)?;
            let mut partitions = BTreeMap::new();
            if let Some(pt) = tn.subtree {
                for pn in repo.load_tree(&pt).await?.nodes {
                    let pm: PartitionMeta = from_meta(&pn)?;
                    let segs = if segments {
                        load_segments(repo, &pn).await?
                    } else {
                        Vec::new()
                    };
                    partitions.insert(
                        pm.partition,
                        Partition {
                            meta: pm,
                            node: pn,
                            segments: segs,
                        },
                    );
                }
            }
            m.topics.insert(
                tn.name.clone(),
                Topic {
                    name: tn.name.clone(),
                    meta,
                    node: tn,
                    partitions,
                },
            );
        }
    }
    if let Some(g) = child(&root_tree, "groups").and_then(|n| n.subtree) {
        for gn in repo.load_tree(&g).await?.nodes {
            #[derive(Deserialize)]
            struct G {
                offsets: Vec<GroupOffset>,
            }
            let gm: G = from_meta(&gn)?;
            m.groups.insert(gn.name.clone(), gm.offsets);
        }
    }
    Ok(m)
}

/// Loads the segments of one partition node.
///
/// # Errors
/// Unreadable trees.
pub async fn load_segments(repo: &Repository, node: &Node) -> Result<Vec<Segment>> {
    let mut out = Vec::new();
    if let Some(st) = node.subtree {
        for sn in repo.load_tree(&st).await?.nodes {
            out.push(Segment {
                meta: from_meta(&sn)?,
                chunks: sn.content.clone(),
                size: sn.size,
            });
        }
    }
    Ok(out)
}
