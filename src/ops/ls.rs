//! `ls` and `diff` of Kafka snapshots as data: what a snapshot holds per
//! topic, partition and group, and what changed between two snapshots. The
//! CLI renders these as text or JSON lines.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::error::Result;
use crate::id::Id;
use crate::image::erase::{merge_ranges, subtract_ranges};
use crate::image::manifest::{self, KAFKA_KIND, Manifest, TopicMeta};
use crate::image::types::CleanupPolicy;
pub use crate::image::types::GroupOffset;
use crate::repo::Repository;

/// Loads a Kafka snapshot's manifest (with segments when `segments`).
/// The caller holds a shared lock and has loaded the index.
///
/// # Errors
/// An unknown or ambiguous snapshot, one that is not a Kafka snapshot,
/// unreadable trees.
pub async fn load_kafka(repo: &Repository, snap: &str, segments: bool) -> Result<(Id, Manifest)> {
    let id = repo.find_id(crate::repo::FileKind::Snapshot, snap).await?;
    let s = repo.load_snapshot(&id).await?;
    s.expect_kind(&id, KAFKA_KIND, "a Kafka snapshot")?;
    let m = manifest::load(repo, &s.tree, segments).await?;
    Ok((id, m))
}

/// One topic of a listing.
#[derive(Debug, Clone, Serialize)]
pub struct TopicListing {
    /// Topic name.
    pub topic: String,
    /// Its captured settings.
    pub meta: TopicMeta,
    /// Its partitions.
    #[serde(skip)]
    pub partitions: Vec<PartitionListing>,
}

/// One partition of a listing.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionListing {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Log start offset.
    pub log_start: i64,
    /// End offset.
    pub end: i64,
    /// Records held.
    pub records: u64,
    /// Segments.
    pub segments: usize,
    /// Chunks over all segments.
    pub chunks: usize,
    /// Offset ranges inside `[log_start, end)` with no record: expired
    /// before a snapshot read them, lost to repaired damage, or removed by
    /// compaction or transaction markers.
    pub gaps: Vec<[i64; 2]>,
    /// The same gaps by cause: `retention` (expired before any snapshot
    /// read them), `damage` (lost to repaired damage), `erasure` (records
    /// `kvault rewrite` erased), `compaction` (a
    /// compacted topic's holes), `transactions` (control records and
    /// aborted transactions of a topic that is not compacted).
    pub gap_causes: std::collections::BTreeMap<&'static str, Vec<[i64; 2]>>,
    /// Transactions that were open at the snapshot's time (none of their
    /// records is in it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub open_transactions: Vec<OpenTransaction>,
}

/// A transaction open on a partition at the snapshot's time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OpenTransaction {
    /// Offset of its first record.
    pub first_offset: i64,
    /// Its producer id.
    pub producer_id: i64,
    /// Its producer epoch.
    pub producer_epoch: i64,
}

/// A group's committed offsets.
#[derive(Debug, Clone, Serialize)]
pub struct GroupListing {
    /// Group id.
    pub group: String,
    /// Its offsets.
    pub offsets: Vec<GroupOffset>,
}

/// What a snapshot holds.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Topics in name order.
    pub topics: Vec<TopicListing>,
    /// Groups in id order.
    pub groups: Vec<GroupListing>,
}

/// Lists a manifest loaded with segments.
pub fn ls(m: &Manifest) -> Listing {
    let topics = m
        .topics
        .values()
        .map(|t| TopicListing {
            topic: t.name.clone(),
            meta: t.meta.clone(),
            partitions: t
                .partitions
                .values()
                .map(|p| {
                    let mut gaps: Vec<[i64; 2]> = p.meta.expired.clone();
                    gaps.extend(p.meta.lost.iter().copied());
                    let mut holes = Vec::new();
                    let mut erased = Vec::new();
                    for s in &p.segments {
                        holes.extend(s.meta.runs.gaps(s.meta.start.max(p.meta.log_start), s.meta.end));
                        erased.extend(s.meta.erased.iter().filter(|e| e[1] > p.meta.log_start).copied());
                    }
                    gaps.extend(holes.iter().copied());
                    let erased = merge_ranges(erased);
                    let holes = subtract_ranges(&holes, &erased);
                    let compacted = CleanupPolicy::of(&t.meta.configs).compact;
                    let mut gap_causes = std::collections::BTreeMap::new();
                    for (cause, v) in [
                        ("retention", p.meta.expired.clone()),
                        ("damage", p.meta.lost.clone()),
                        ("erasure", erased),
                        (if compacted { "compaction" } else { "transactions" }, holes),
                    ] {
                        if !v.is_empty() {
                            gap_causes.insert(cause, v);
                        }
                    }
                    PartitionListing {
                        topic: t.name.clone(),
                        partition: p.meta.partition,
                        log_start: p.meta.log_start,
                        end: p.meta.end,
                        records: p.meta.records,
                        segments: p.segments.len(),
                        chunks: p.segments.iter().map(|s| s.chunks.len()).sum(),
                        gaps,
                        gap_causes,
                        open_transactions: p
                            .meta
                            .open
                            .iter()
                            .map(|o| OpenTransaction {
                                first_offset: o.first(),
                                producer_id: o.producer_id(),
                                producer_epoch: o.producer_epoch(),
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect();
    let groups = m
        .groups
        .iter()
        .map(|(g, o)| GroupListing {
            group: g.clone(),
            offsets: o.clone(),
        })
        .collect();
    Listing { topics, groups }
}

/// A partition's bounds on one side of a diff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bounds {
    /// Log start offset.
    pub log_start: i64,
    /// End offset.
    pub end: i64,
    /// Records held.
    pub records: u64,
}

/// One difference between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A topic only in the older snapshot.
    TopicRemoved(String),
    /// A topic only in the newer snapshot.
    TopicAdded(String),
    /// A topic whose settings changed.
    Settings {
        /// Topic.
        topic: String,
        /// Before.
        before: Box<TopicMeta>,
        /// After.
        after: Box<TopicMeta>,
    },
    /// A partition whose records changed (bounds before are zero when the
    /// partition is new).
    Records {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Before.
        before: Bounds,
        /// After.
        after: Bounds,
    },
    /// A group whose offsets changed, appeared or disappeared.
    Group {
        /// Group id.
        group: String,
        /// Before (none: new group).
        before: Option<Vec<GroupOffset>>,
        /// After (none: group gone).
        after: Option<Vec<GroupOffset>>,
    },
}

/// What changed from `a` to `b` (manifests loaded without segments):
/// topics in name order, then groups in id order.
pub fn diff(a: &Manifest, b: &Manifest) -> Vec<Change> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = a.topics.keys().chain(b.topics.keys()).collect();
    for n in names {
        match (a.topics.get(n), b.topics.get(n)) {
            (Some(_), None) => out.push(Change::TopicRemoved(n.clone())),
            (None, Some(_)) => out.push(Change::TopicAdded(n.clone())),
            (Some(x), Some(y)) => {
                if x.meta != y.meta {
                    out.push(Change::Settings {
                        topic: n.clone(),
                        before: Box::new(x.meta.clone()),
                        after: Box::new(y.meta.clone()),
                    });
                }
                for (p, py) in &y.partitions {
                    let px = x.partitions.get(p);
                    if px.map(|q| &q.node) != Some(&py.node) {
                        let bounds = |m: &manifest::PartitionMeta| Bounds {
                            log_start: m.log_start,
                            end: m.end,
                            records: m.records,
                        };
                        out.push(Change::Records {
                            topic: n.clone(),
                            partition: *p,
                            before: px.map(|q| bounds(&q.meta)).unwrap_or_default(),
                            after: bounds(&py.meta),
                        });
                    }
                }
            }
            (None, None) => {}
        }
    }
    let groups: BTreeSet<&String> = a.groups.keys().chain(b.groups.keys()).collect();
    for g in groups {
        let (x, y) = (a.groups.get(g), b.groups.get(g));
        if x != y {
            out.push(Change::Group {
                group: g.clone(),
                before: x.cloned(),
                after: y.cloned(),
            });
        }
    }
    out
}
