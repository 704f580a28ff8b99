//! `snapshot`: an incremental, consistent snapshot of a Kafka cluster, as
//! plan then execute.
//!
//! 1. [`plan`]: capture the cluster and decide per partition against the
//!    parent (reuse its node, or read `[start, end)`). `--dry-run` stops here.
//! 2. [`read`]: read the partitions that changed, chunks saved as they
//!    arrive.
//! 3. Write the image's trees ([`ManifestWriter`]): segments into partitions,
//!    partitions into topics; group offsets (OffsetFetch; kvault never joins
//!    a group); the root; the index; then the snapshot file — the usual
//!    write ordering.

pub mod plan;
pub mod read;
pub mod shard;
pub mod txn;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde::Serialize;

pub use self::plan::{PartitionPlan, SnapshotPlan, latest_of_cluster};
use super::progress::Progress;
use super::with_lock;
use crate::error::Result;
use crate::id::Id;
use crate::image::cluster::{ClusterCounts, ClusterState};
use crate::image::keyfilter::KeyHasher;
use crate::image::manifest::{
    self, KAFKA_KIND, KAFKA_SHARD_KIND, ManifestWriter, PartitionMeta, SegmentParts, TopicMeta,
};
use crate::image::types::TopicPartition;
use crate::kafka::KafkaOptions;
use crate::kafka::admin::Cluster;
use crate::repo::snapshot::{RunInfo, SNAPSHOT_VERSION, Snapshot, SnapshotSummary};
use crate::repo::writer::SaveSession;
use crate::repo::{Repository, hostname, username};

/// What to snapshot.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    /// Cluster connection.
    pub kafka: KafkaOptions,
    /// Topic globs to include (all non-internal topics when empty).
    pub topics: Vec<String>,
    /// Topic globs to exclude.
    pub exclude: Vec<String>,
    /// Group globs (all groups when empty).
    pub groups: Vec<String>,
    /// Snapshot tags.
    pub tags: Vec<String>,
    /// This process's shard of a sharded run (`--shard K/N --run ID`).
    pub shard: Option<shard::ShardSpec>,
}

/// What `snapshot` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SnapshotResult {
    /// The new snapshot.
    pub snapshot: Id,
    /// The snapshot it is incremental to.
    pub parent: Option<Id>,
    /// Cluster id.
    pub cluster_id: String,
    /// Topics captured.
    pub topics: usize,
    /// Partitions captured.
    pub partitions: usize,
    /// Partitions that had new records to read.
    pub partitions_read: usize,
    /// Records read by this snapshot.
    pub records_read: u64,
    /// Encoded bytes read by this snapshot.
    pub bytes_read: u64,
    /// Consumer groups captured.
    pub groups: usize,
    /// Records in the whole logical image.
    pub records_total: u64,
    /// New bytes stored (compressed, encrypted).
    pub new_bytes_stored: u64,
    /// Bytes read that were already in the repository.
    pub dedup_saved_bytes: u64,
    /// Seconds taken.
    pub seconds: f64,
    /// Group offset commits captured from `__consumer_offsets` since the
    /// parent.
    pub commits: u64,
    /// Whether the commit history since the parent is complete (group
    /// positions at any time between the two snapshots).
    pub commit_history: bool,
    /// Offsets whose records retention deleted before any snapshot read
    /// them (the log start passed the previous snapshot's end); recorded
    /// as gaps. Not zero: the CLI exits 3.
    pub expired_offsets: u64,
    /// Warnings (expired data, deleted topics, …).
    pub warnings: Vec<String>,
    /// The cluster's own state captured (absent for shards other than 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_state: Option<ClusterCounts>,
    /// For a shard of a run: the run's snapshot when this shard completed
    /// it (or found it complete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_snapshot: Option<Id>,
    /// For a shard of a run: the shards still missing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub run_waiting: Vec<u32>,
}

/// A cluster being reached in the background ([`connect_early`]).
#[derive(Debug)]
pub struct Connecting(tokio::task::JoinHandle<Result<Cluster>>);

/// Starts reaching the cluster now, so that it overlaps opening the
/// repository: the key derivation (~0.15 s) and the first connection
/// (~0.06 s) are most of an unchanged snapshot. Nothing is read from
/// the cluster until the snapshot has its lock.
pub fn connect_early(kafka: &KafkaOptions) -> Connecting {
    let kafka = kafka.clone();
    Connecting(tokio::spawn(async move { Cluster::connect(&kafka).await }))
}

impl Connecting {
    /// The cluster, once reached. Await it even when it is no longer
    /// wanted (the repository did not open): a client still starting must
    /// not outlive the process.
    ///
    /// # Errors
    /// [`crate::Error::KafkaUnreachable`] and the other errors of
    /// [`Cluster::connect`].
    pub async fn finish(self) -> Result<Cluster> {
        self.0
            .await
            .map_err(|e| crate::Error::worker("connecting to Kafka", e))?
    }
}

/// Plans a snapshot without reading or writing anything (`--dry-run`).
///
/// # Errors
/// An unreachable cluster, an unknown topic, storage errors.
pub async fn dry_run(
    repo: &Repository,
    cluster: Connecting,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<SnapshotPlan> {
    let cluster = cluster.finish().await?;
    super::with_lock(repo, false, || plan::plan(repo, &cluster, opts, progress)).await
}

/// Takes a snapshot.
///
/// # Errors
/// An unreachable cluster, an unknown topic, [`crate::Error::Locked`],
/// storage errors.
pub async fn snapshot(
    repo: &Repository,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<SnapshotResult> {
    snapshot_connecting(repo, connect_early(&opts.kafka), opts, progress).await
}

/// [`snapshot`] with the cluster reached by [`connect_early`].
///
/// # Errors
/// As [`snapshot`].
pub async fn snapshot_connecting(
    repo: &Repository,
    cluster: Connecting,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<SnapshotResult> {
    // Reach the cluster before taking the lock: an unreachable broker is
    // reported in seconds, and nothing is written.
    let cluster = cluster.finish().await?;
    with_lock(repo, false, || async {
        let started = Instant::now();
        let plan = plan::plan(repo, &cluster, opts, progress).await?;
        log::info!(
            "snapshot of cluster {}: {} partition(s), {} to read, incremental to {}",
            plan.cluster_id,
            plan.partitions.len(),
            plan.partitions.iter().filter(|p| p.reads()).count(),
            plan.parent.map_or("none".to_string(), |p| p.short())
        );
        let r = execute(repo, &cluster, opts, plan, started, progress).await?;
        log::info!(
            "snapshot {} saved: {} records read, {} commits, {:.1} s",
            r.snapshot.short(),
            r.records_read,
            r.commits,
            r.seconds
        );
        Ok(r)
    })
    .await
}

/// Reads what the plan says and writes the snapshot.
async fn execute(
    repo: &Repository,
    cluster: &Cluster,
    opts: &SnapshotOptions,
    plan: SnapshotPlan,
    started: Instant,
    progress: &dyn Progress,
) -> Result<SnapshotResult> {
    let mut res = SnapshotResult {
        cluster_id: plan.cluster_id.clone(),
        parent: plan.parent,
        warnings: plan.warnings.clone(),
        ..Default::default()
    };
    let mut session = SaveSession::new(repo);
    let read = read::read(repo, &opts.kafka, &plan.partitions, &mut session, progress).await?;
    res.warnings.extend(read.warnings.iter().cloned());
    let data_stats = session.stats().clone();
    let mut clock = txn::TxnClock::new(&opts.kafka, cluster);
    let runs: Vec<&crate::image::record::OffsetRuns> = read.partitions.iter().map(|r| &r.runs).collect();
    let txns = txn::transactions(
        cluster,
        &plan,
        (&runs, &read.gone_topics),
        &mut clock,
        progress,
        &mut res,
    )
    .await;
    let open = txn::open_transactions(cluster, &plan, progress, &mut res).await;

    // Trees: segments -> partitions -> topics -> root.
    let mut w = ManifestWriter::new(&mut session);
    let found = read.partitions.into_iter().zip(txns).zip(open).collect();
    let fingerprint = KeyHasher::new(repo.keys().key_filter_key()).fingerprint();
    let nodes = partition_nodes(&mut w, &plan, found, &read.gone_topics, fingerprint, &mut res).await?;
    let topics: Vec<_> = plan
        .topics
        .iter()
        .filter(|t| !read.gone_topics.contains(&t.name))
        .collect();
    let topic_nodes = topic_nodes(&mut w, &topics, nodes, &mut res).await?;
    // A shard captures the group offsets of its own partitions (with their
    // data); the run's snapshot unites them (format-spec §15).
    let own: BTreeSet<TopicPartition> = plan.partitions.iter().map(PartitionPlan::key).collect();
    let parts: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| (0..t.partitions).map(|p| TopicPartition::new(t.name.clone(), p)))
        .filter(|tp| opts.shard.is_none() || own.contains(tp))
        .collect();
    let groups = own_groups(&plan.groups, &parts);
    res.groups = groups.len();
    let names = topics.iter().map(|t| t.name.clone()).collect();
    let (commits_meta, commits) = read::read_commits(
        &opts.kafka,
        cluster,
        &plan.commit_log,
        &opts.groups,
        names,
        (&mut clock, progress),
    )
    .await;
    res.warnings.extend(clock.warning().cloned());
    res.commits = commits.len() as u64;
    res.commit_history = commits_meta.complete;
    if plan.parent.is_some() && plan.commit_log.complete && !commits_meta.complete {
        res.warnings.push(commits_meta.note.clone());
    }
    // Only shard 0 of a run reads the group commit log and the cluster's
    // own state.
    let first = opts.shard.as_ref().is_none_or(|s| s.index == 0);
    let cluster_node = if first {
        Some(w.cluster(&cluster_state(cluster, &mut res).await?).await?)
    } else {
        None
    };
    let log = first.then_some((commits_meta, commits));
    let (root, logical) = w.root(topic_nodes, groups, log, cluster_node).await?;
    let stats = session.commit().await?;

    // The snapshot file, last.
    let snap = snapshot_file(opts, &plan, &res, (root, logical), &data_stats);
    res.snapshot = repo.save_snapshot(&snap).await?;
    res.new_bytes_stored = stats.new_stored_bytes;
    res.dedup_saved_bytes = data_stats.raw_bytes.saturating_sub(data_stats.new_raw_bytes);
    if let Some(sh) = &opts.shard {
        match shard::complete_run(repo, &sh.run, &res.cluster_id, sh.count).await? {
            shard::RunState::Complete(id) => res.run_snapshot = Some(id),
            shard::RunState::Waiting(missing) => res.run_waiting = missing,
        }
    }
    res.seconds = started.elapsed().as_secs_f64();
    Ok(res)
}
/// The cluster's own state (ACLs, SCRAM users, quotas, broker configs),
/// its counts in the result and a warning per kind it could not read.
///
/// # Errors
/// Requests failing past their retries.
async fn cluster_state(cluster: &Cluster, res: &mut SnapshotResult) -> Result<ClusterState> {
    let s = cluster.cluster_state().await?;
    for m in &s.missing {
        res.warnings.push(format!(
            "cluster state: {} not captured: {} (the principal needs {} on the cluster; the rest is captured)",
            m.kind.name(),
            m.reason,
            m.kind.needs()
        ));
    }
    res.cluster_state = Some(s.counts());
    Ok(s)
}

/// The planned group offsets on `parts` (a shard's own); groups left with
/// none are dropped.
fn own_groups(
    groups: &BTreeMap<String, Vec<crate::image::types::GroupOffset>>,
    parts: &[TopicPartition],
) -> BTreeMap<String, Vec<crate::image::types::GroupOffset>> {
    let parts: BTreeSet<&TopicPartition> = parts.iter().collect();
    groups
        .iter()
        .map(|(g, offs)| {
            let own = offs
                .iter()
                .filter(|o| parts.contains(&TopicPartition::new(o.topic.clone(), o.partition)))
                .cloned()
                .collect::<Vec<_>>();
            (g.clone(), own)
        })
        .filter(|(_, o)| !o.is_empty())
        .collect()
}

/// What a snapshot found on one planned partition: the records read, the
/// committed transactions among them, the transactions open at its end.
type Found = (
    (read::ReadPartition, Option<Vec<crate::image::types::TxnSpan>>),
    Vec<crate::image::types::OpenTxn>,
);

/// Each partition's tree node: reused from the parent, or its kept
/// segments plus the one just read; the figures go into `res`.
async fn partition_nodes(
    w: &mut ManifestWriter<'_>,
    plan: &SnapshotPlan,
    mut found: Vec<Found>,
    gone_topics: &BTreeSet<String>,
    fingerprint: [u8; 8],
    res: &mut SnapshotResult,
) -> Result<BTreeMap<TopicPartition, crate::repo::tree::Node>> {
    // The new segments' key filters first: small segments share blobs.
    let filters = plan
        .partitions
        .iter()
        .zip(found.iter_mut())
        .map(|(pp, ((r, _), _))| match new_segment(pp, gone_topics) {
            true => std::mem::take(&mut r.filters),
            false => Vec::new(),
        })
        .collect();
    let filters = w.key_filters(fingerprint, filters).await?;
    let mut nodes = BTreeMap::new();
    for ((pp, ((r, txns), open)), filter) in plan.partitions.iter().zip(found).zip(filters) {
        if gone_topics.contains(&pp.topic) {
            continue;
        }
        if let Some(n) = &pp.reuse {
            nodes.insert(pp.key(), n.clone());
            continue;
        }
        res.expired_offsets += pp
            .expired
            .iter()
            .map(|r| (r[1] - r[0]).max(0) as u64)
            .sum::<u64>();
        res.partitions_read += usize::from(pp.reads());
        res.records_read += r.runs.count();
        res.bytes_read += r.bytes;
        let mut segments = pp.kept.clone();
        if pp.reads() {
            let parts = SegmentParts {
                start: pp.start,
                end: pp.end,
                runs: r.runs,
                chunks: r.chunks,
                txns,
            };
            segments.push(ManifestWriter::segment(parts, r.bytes, filter)?);
        }
        let meta = PartitionMeta {
            partition: pp.partition,
            log_start: pp.log_start,
            end: pp.end,
            records: 0,
            expired: pp.expired.clone(),
            lost: pp.lost.clone(),
            open,
        };
        nodes.insert(pp.key(), w.partition(meta, segments).await?);
    }
    Ok(nodes)
}

/// Whether a snapshot writes a new segment for a planned partition (read,
/// not reused, its topic still there).
fn new_segment(pp: &PartitionPlan, gone_topics: &BTreeSet<String>) -> bool {
    pp.reads() && pp.reuse.is_none() && !gone_topics.contains(&pp.topic)
}

/// Each topic's tree node over its partitions' nodes.
async fn topic_nodes(
    w: &mut ManifestWriter<'_>,
    topics: &[&crate::image::types::TopicInfo],
    mut nodes: BTreeMap<TopicPartition, crate::repo::tree::Node>,
    res: &mut SnapshotResult,
) -> Result<Vec<crate::repo::tree::Node>> {
    let mut topic_nodes = Vec::new();
    for t in topics {
        let mut pnodes = Vec::new();
        for p in 0..t.partitions {
            if let Some(n) = nodes.remove(&TopicPartition::new(t.name.clone(), p)) {
                res.records_total += manifest::from_meta::<PartitionMeta>(&n)?.records;
                pnodes.push(n);
            }
        }
        res.partitions += pnodes.len();
        let tm = TopicMeta {
            partitions: t.partitions,
            replication_factor: t.replication_factor,
            configs: t.configs.clone(),
        };
        topic_nodes.push(w.topic(&t.name, &tm, pnodes).await?);
    }
    res.topics = topic_nodes.len();
    Ok(topic_nodes)
}

/// The snapshot file: the root tree, its time and source, and the figures.
fn snapshot_file(
    opts: &SnapshotOptions,
    plan: &SnapshotPlan,
    res: &SnapshotResult,
    (root, logical): (Id, u64),
    data: &crate::repo::writer::SaveStats,
) -> Snapshot {
    Snapshot {
        version: SNAPSHOT_VERSION,
        time: plan.time.clone(),
        hostname: hostname(),
        username: username(),
        kind: if opts.shard.is_some() {
            KAFKA_SHARD_KIND
        } else {
            KAFKA_KIND
        }
        .into(),
        source: res.cluster_id.clone(),
        tags: opts.tags.clone(),
        tree: root,
        parent: res.parent,
        original: None,
        run: opts.shard.as_ref().map(|sh| RunInfo {
            id: sh.run.clone(),
            shard: Some(sh.index),
            shards: sh.count,
            parts: Vec::new(),
        }),
        summary: SnapshotSummary {
            logical_bytes: logical,
            data_blobs: data.blobs,
            new_data_blobs: data.new_blobs,
            new_raw_bytes: data.new_raw_bytes,
            new_stored_bytes: data.new_stored_bytes,
        },
        erasures: Vec::new(),
        retained_until: None,
    }
}
