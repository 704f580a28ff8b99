//! Planning a snapshot: capture the cluster (id, selected topics with their
//! settings, every partition's log start and last stable offset), then
//! decide per partition against the parent (the latest Kafka snapshot of
//! the same cluster): reuse its node, or read `[start, end)` keeping the
//! parent's segments retention has not deleted (format-spec §14,
//! "Incremental rule"). The plan is plain data: it serializes, so it can
//! be printed (`--dry-run`) or handed to workers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::SnapshotOptions;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::image::commits::CommitsMeta;
use crate::image::manifest::{self, Manifest, SegmentMeta};
use crate::image::types::{CleanupPolicy, GroupOffset, TopicInfo, TopicPartition};
use crate::kafka::admin::{Cluster, End};
use crate::ops::progress::{Event as ProgressEvent, GapCause, Progress};
use crate::repo::snapshot::Snapshot;
use crate::repo::tree::Node;
use crate::repo::{Repository, now_rfc3339};

/// What a snapshot will do.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotPlan {
    /// Cluster id.
    pub cluster_id: String,
    /// When the partitions' ends were read (the snapshot's time).
    pub time: String,
    /// The snapshot it is incremental to.
    pub parent: Option<Id>,
    /// The selected topics as captured.
    pub topics: Vec<TopicInfo>,
    /// Every partition of those topics.
    pub partitions: Vec<PartitionPlan>,
    /// What the user should hear about (expired data, recreated topics).
    pub warnings: Vec<String>,
    /// The group commit log to read.
    pub commit_log: CommitLogPlan,
    /// The selected groups' offsets on the selected topics, fetched after
    /// the commit log's ends and before the partitions' (so a commit they
    /// hold is in the log from there on, and its records are below the
    /// ends).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<GroupOffset>>,
}

/// Which part of `__consumer_offsets` a snapshot reads: every commit since
/// the parent's positions (format-spec §14 "Group commit history").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommitLogPlan {
    /// Per `__consumer_offsets` partition, `[start, end)` to read.
    pub ranges: BTreeMap<i32, [i64; 2]>,
    /// Whether the ranges continue the parent's without a hole.
    pub complete: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The commit log topic.
pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";

/// Plans the commit log read: from the parent's positions (a partition the
/// parent did not know, from its log start) to each partition's end. A
/// first snapshot reads none (its groups are captured by OffsetFetch): the
/// history starts there, unless the log does not exist yet (then it is
/// complete from the start). Without permission to read the topic, nothing is
/// read and the plan says why.
async fn plan_commit_log(cluster: &Cluster, parent: Option<&CommitsMeta>) -> CommitLogPlan {
    let mut plan = CommitLogPlan {
        complete: true,
        ..Default::default()
    };
    let partitions = match cluster.layout().await {
        Ok((_, topics)) => topics.get(CONSUMER_OFFSETS).copied().unwrap_or(0),
        Err(e) => {
            plan.complete = false;
            plan.note = format!("cannot list {CONSUMER_OFFSETS}: {e}");
            return plan;
        }
    };
    if partitions == 0 {
        // No group has ever committed, so the log does not exist: the
        // history is complete (and empty), first snapshot or not; the next
        // snapshot reads the log from its start.
        return plan;
    }
    let parts: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(CONSUMER_OFFSETS, p))
        .collect();
    let bounds = match cluster.bounds(&parts).await {
        Ok(b) => b,
        Err(e) => {
            plan.complete = false;
            plan.note = format!(
                "cannot read {CONSUMER_OFFSETS} (group positions between snapshots fall back to snapshot times): {e}"
            );
            return plan;
        }
    };
    let Some(parent) = parent else {
        plan.complete = false;
        plan.note = "the commit history starts at this snapshot".into();
        for (p, (_, end)) in (0..partitions).zip(bounds) {
            plan.ranges.insert(p, [end, end]);
        }
        return plan;
    };
    if !parent.complete && parent.positions.is_empty() {
        // The parent could not read the log: no position to continue from.
        plan.complete = false;
        // The parent's own note says why; repeating it here would nest one
        // more level per snapshot.
        plan.note = "the commit history starts at this snapshot (the parent snapshot has none)".into();
        for (p, (_, end)) in (0..partitions).zip(bounds) {
            plan.ranges.insert(p, [end, end]);
        }
        return plan;
    }
    let mut holes = Vec::new();
    for (p, (log_start, end)) in (0..partitions).zip(bounds) {
        let from = parent.positions.get(&p).copied().unwrap_or(log_start);
        if from < log_start {
            holes.push(format!("{p}: {from}..{log_start}"));
        }
        let start = from.max(log_start).min(end);
        plan.ranges.insert(p, [start, end]);
    }
    if !holes.is_empty() {
        plan.complete = false;
        plan.note = format!(
            "commits deleted from {CONSUMER_OFFSETS} before this snapshot read them (partitions {}); \
             group positions between the snapshots may be older than they were",
            holes.join(", ")
        );
    }
    plan
}

/// One partition of the plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PartitionPlan {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Whether the topic is compacted (holes are compaction, not retention).
    pub compacted: bool,
    /// Log start offset now.
    pub log_start: i64,
    /// Last stable offset now.
    pub end: i64,
    /// High watermark now: above `end` while a transaction is open.
    #[serde(default)]
    pub high: i64,
    /// First offset to read (`end` when nothing is).
    pub start: i64,
    /// The parent's node, reused as is (nothing changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse: Option<Node>,
    /// The parent's segments still inside the log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Node>,
    /// Offsets that expired before any snapshot read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<[i64; 2]>,
    /// Lost ranges (repaired damage) of the kept segments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<[i64; 2]>,
}

impl PartitionPlan {
    /// The partition this plan is for.
    pub fn key(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }

    /// Whether the partition has records to read.
    pub fn reads(&self) -> bool {
        self.reuse.is_none() && self.end > self.start
    }
}

/// What [`capture`] read.
struct Captured {
    topics: Vec<TopicInfo>,
    groups: BTreeMap<String, Vec<GroupOffset>>,
    /// Per partition: log start, last stable offset, high watermark.
    bounds: BTreeMap<TopicPartition, (i64, i64, i64)>,
    /// When the bounds were read.
    time: String,
}

/// The topics and their bounds, read consistently: a topic deleted between
/// listing and ListOffsets is listed again.
async fn capture(cluster: &Cluster, opts: &SnapshotOptions) -> Result<Captured> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let topics = cluster.topics(&opts.topics, &opts.exclude).await?;
        let parts: Vec<TopicPartition> = topics
            .iter()
            .flat_map(|t| (0..t.partitions).map(|p| TopicPartition::new(t.name.clone(), p)))
            .collect();
        let groups = cluster.group_offsets(&parts, &opts.groups).await?;
        // The high watermarks with the bounds: where they differ, a
        // transaction was open.
        match tokio::try_join!(cluster.bounds(&parts), cluster.offsets(&parts, End::High)) {
            Ok((b, h)) => {
                let bounds = b.into_iter().zip(h).map(|((s, e), h)| (s, e, h.max(e)));
                return Ok(Captured {
                    topics,
                    groups,
                    bounds: parts.into_iter().zip(bounds).collect(),
                    time: now_rfc3339(),
                });
            }
            Err(Error::Kafka { code: Some(c), .. }) if c == "UnknownTopicOrPartition" && attempts < 5 => {
                continue;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Captures the cluster and plans against the parent.
///
/// # Errors
/// Kafka requests failing; unreadable parent trees.
pub async fn plan(
    repo: &Repository,
    cluster: &Cluster,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<SnapshotPlan> {
    let cluster_id = cluster.cluster_id().await?;
    repo.load_index().await?;
    let parent = latest_of_cluster(repo, &cluster_id).await?;
    let prev: Manifest = match &parent {
        Some((_, s)) => manifest::load(repo, &s.tree, false).await?,
        None => Manifest::default(),
    };
    // The commit log's ends first, the groups' offsets next, the
    // partitions' ends last: every commit the offsets hold is before the
    // next snapshot's log starts (a restore as of a later time applies it
    // again, harmlessly), and the records it commits past are in this one.
    // Shards other than 0 leave the group commit log to shard 0.
    let commit_log = match &opts.shard {
        Some(sh) if sh.index != 0 => CommitLogPlan {
            complete: true,
            ..Default::default()
        },
        _ => plan_commit_log(cluster, prev.commits.as_ref().map(|c| &c.meta)).await,
    };
    let Captured {
        topics,
        groups,
        bounds,
        time,
    } = capture(cluster, opts).await?;
    // A shard plans only the partitions the assignment gives it.
    let mine = my_partitions(repo, parent.as_ref().map(|(_, s)| s), &prev, &bounds, opts).await?;
    let compacted: BTreeSet<&str> = topics
        .iter()
        .filter(|t| CleanupPolicy::of(&t.configs).compact)
        .map(|t| t.name.as_str())
        .collect();
    let mut warnings = Vec::new();
    let mut partitions = Vec::new();
    for (key, &(log_start, end, high)) in &bounds {
        if mine.as_ref().is_some_and(|m| !m.contains(key)) {
            continue;
        }
        let old = prev
            .topics
            .get(&key.topic)
            .and_then(|t| t.partitions.get(&key.partition));
        let mut pp = PartitionPlan {
            topic: key.topic.clone(),
            partition: key.partition,
            compacted: compacted.contains(key.topic.as_str()),
            log_start,
            end,
            high,
            start: log_start,
            ..Default::default()
        };
        against_parent(repo, &mut pp, old, progress, &mut warnings).await?;
        partitions.push(pp);
    }
    if parent.is_some() && !commit_log.complete {
        progress.warn(&commit_log.note);
        warnings.push(commit_log.note.clone());
    }
    Ok(SnapshotPlan {
        cluster_id,
        time,
        parent: parent.map(|(id, _)| id),
        topics,
        partitions,
        warnings,
        commit_log,
        groups,
    })
}

/// With `--shards`, the partitions the assignment gives this shard (the
/// parent's sizes weigh them, its assignment is kept where it can be).
async fn my_partitions(
    repo: &Repository,
    parent: Option<&crate::repo::snapshot::Snapshot>,
    prev: &Manifest,
    bounds: &BTreeMap<TopicPartition, (i64, i64, i64)>,
    opts: &SnapshotOptions,
) -> Result<Option<BTreeSet<TopicPartition>>> {
    let Some(sh) = &opts.shard else {
        return Ok(None);
    };
    let (weight, previous) = super::shard::inputs_from_parent(repo, parent, prev, sh.count).await?;
    let all: Vec<TopicPartition> = bounds.keys().cloned().collect();
    let a = super::shard::assign(&all, &weight, &previous, sh.count);
    Ok(Some(
        a.into_iter()
            .filter(|(_, k)| *k == sh.index)
            .map(|(p, _)| p)
            .collect(),
    ))
}

/// Plans one partition against its state in the parent (`old`): reused
/// whole when unchanged; otherwise read on from the parent's end, keeping
/// the parent's segments above the new log start, with expired offsets
/// recorded and warned about; read afresh when its end went back.
async fn against_parent(
    repo: &Repository,
    pp: &mut PartitionPlan,
    old: Option<&crate::image::manifest::Partition>,
    progress: &dyn Progress,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let (topic, p, log_start, end) = (pp.topic.clone(), pp.partition, pp.log_start, pp.end);
    let mut warn = |w: String| {
        progress.warn(&w);
        warnings.push(w);
    };
    match old {
        // A partition with a transaction open (now or at the parent) gets a
        // node of its own: its open transactions are part of it.
        Some(o)
            if o.meta.end == end
                && o.meta.log_start == log_start
                && pp.high == end
                && o.meta.open.is_empty() =>
        {
            pp.start = end;
            pp.reuse = Some(o.node.clone());
        }
        Some(o) if end >= o.meta.end => {
            pp.lost = o.meta.lost.iter().filter(|l| l[1] > log_start).copied().collect();
            if log_start > o.meta.end {
                warn(format!(
                    "{topic}/{p}: offsets {}..{log_start} expired before any snapshot read them (snapshot more often, or raise retention)",
                    o.meta.end
                ));
                progress.event(&ProgressEvent::Gap {
                    topic: &topic,
                    partition: p,
                    from: o.meta.end,
                    to: log_start,
                    cause: GapCause::Expired,
                });
                pp.expired.push([o.meta.end, log_start]);
            }
            // Retention: drop segments wholly below the new log start.
            if let Some(st) = o.node.subtree {
                for n in repo.load_tree(&st).await?.nodes {
                    if manifest::from_meta::<SegmentMeta>(&n)?.end > log_start {
                        pp.kept.push(n);
                    }
                }
            }
            pp.start = log_start.max(o.meta.end);
        }
        Some(o) => warn(format!(
            "{topic}/{p}: end offset went back from {} to {end} (topic recreated?); starting afresh",
            o.meta.end
        )),
        None => {}
    }
    Ok(())
}

/// The latest Kafka snapshot of a cluster.
///
/// # Errors
/// Unreadable snapshots.
pub async fn latest_of_cluster(repo: &Repository, cluster_id: &str) -> Result<Option<(Id, Snapshot)>> {
    Ok(repo
        .load_snapshots()
        .await?
        .into_iter()
        .rfind(|(_, s)| s.kind == manifest::KAFKA_KIND && s.source == cluster_id))
}
