//! `snapshot`: an incremental, consistent snapshot of a Kafka cluster.
//!
//! 1. Capture: cluster id, selected topics (partitions, replication factor,
//!    non-default configs), and per partition (log start, last stable
//!    offset). The time of this capture is the snapshot's time.
//! 2. Plan against the parent (the latest Kafka snapshot of the same
//!    cluster): an unchanged partition keeps its node; otherwise read
//!    `[max(parent end, log start), end)` and drop segments retention has
//!    deleted. Offsets that expired before any snapshot read them are
//!    recorded and warned about.
//! 3. Read with `assign`, read_committed; chunks are deduplicated, sealed
//!    and packed as they arrive (memory bounded by batches of partitions).
//! 4. Group offsets (OffsetFetch; kvault never joins a group), trees,
//!    index, then the snapshot file — the usual write ordering.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;

use super::manifest::{self, KAFKA_KIND, Manifest, PartitionMeta, SegmentMeta, TopicMeta, to_meta};
use super::progress::{Progress, Unit};
use super::with_lock;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::kafka::KafkaOptions;
use crate::kafka::admin::{self, TopicInfo};
use crate::kafka::record::OffsetRuns;
use crate::kafka::source::{ChunkMeta, Event, ReadJob, read_topic};
use crate::repo::pack::BlobType;
use crate::repo::snapshot::{SNAPSHOT_VERSION, Snapshot, SnapshotSummary};
use crate::repo::tree::{Node, Tree};
use crate::repo::writer::SaveSession;
use crate::repo::{Repository, hostname, now_rfc3339, username};

/// Partitions read at once by one consumer (bounds memory: each holds up to
/// one maximum-size chunk).
pub const PARTITION_BATCH: usize = 16;

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
    /// Warnings (expired data, deleted topics, …).
    pub warnings: Vec<String>,
}

struct Job {
    topic: String,
    partition: i32,
    start: i64,
    end: i64,
    log_start: i64,
    expired: Vec<[i64; 2]>,
    kept: Vec<Node>,
    chunks: Vec<ChunkMeta>,
    ids: Vec<Id>,
    runs: OffsetRuns,
    bytes: u64,
}

/// Takes a snapshot.
///
/// # Errors
/// An unreachable cluster, an unknown topic, [`Error::Locked`], storage errors.
pub async fn snapshot(
    repo: &Repository,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<SnapshotResult> {
    with_lock(repo, false, || run(repo, opts, progress)).await
}

async fn run(repo: &Repository, opts: &SnapshotOptions, progress: &dyn Progress) -> Result<SnapshotResult> {
    let started = Instant::now();
    let mut res = SnapshotResult::default();

    // 1. Capture.
    let kopts = opts.kafka.clone();
    let consumer = tokio::task::spawn_blocking({
        let k = kopts.clone();
        move || admin::metadata_consumer(&k)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    let consumer = std::sync::Arc::new(consumer);
    let c2 = consumer.clone();
    let k2 = kopts.clone();
    res.cluster_id = tokio::task::spawn_blocking(move || admin::cluster_id(&c2, &k2))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    let topics: Vec<TopicInfo> = admin::topics(&consumer, &kopts, &opts.topics, &opts.exclude).await?;
    let c3 = consumer.clone();
    let k3 = kopts.clone();
    let tlist = topics.clone();
    let (bounds, time) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut b: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
        for t in &tlist {
            for p in 0..t.partitions {
                b.insert((t.name.clone(), p), admin::bounds(&c3, &k3, &t.name, p)?);
            }
        }
        Ok((b, now_rfc3339()))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;

    // 2. Plan against the parent.
    repo.load_index().await?;
    let parent = latest_of_cluster(repo, &res.cluster_id).await?;
    let prev: Manifest = match &parent {
        Some((_, s)) => manifest::load(repo, &s.tree, false).await?,
        None => Manifest::default(),
    };
    res.parent = parent.as_ref().map(|(id, _)| *id);
    let mut reused: BTreeMap<(String, i32), Node> = BTreeMap::new();
    let mut jobs: Vec<Job> = Vec::new();
    for ((topic, p), (log_start, end)) in &bounds {
        let old = prev.topics.get(topic).and_then(|t| t.partitions.get(p));
        if let Some(o) = old {
            if o.meta.end == *end && o.meta.log_start == *log_start {
                reused.insert((topic.clone(), *p), o.node.clone());
                continue;
            }
        }
        let (start, kept, expired) = match old {
            Some(o) if *end >= o.meta.end => {
                let mut expired = Vec::new();
                if *log_start > o.meta.end {
                    let w = format!(
                        "{topic}/{p}: offsets {}..{log_start} expired before any snapshot read them (snapshot more often, or raise retention)",
                        o.meta.end
                    );
                    progress.warn(&w);
                    res.warnings.push(w);
                    expired.push([o.meta.end, *log_start]);
                }
                // Retention: drop segments wholly below the new log start.
                let mut kept = Vec::new();
                for n in segs_tree_nodes(repo, &o.node).await? {
                    if manifest::from_meta::<SegmentMeta>(&n)?.end > *log_start {
                        kept.push(n);
                    }
                }
                ((*log_start).max(o.meta.end), kept, expired)
            }
            Some(o) => {
                let w = format!(
                    "{topic}/{p}: end offset went back from {} to {end} (topic recreated?); starting afresh",
                    o.meta.end
                );
                progress.warn(&w);
                res.warnings.push(w);
                (*log_start, Vec::new(), Vec::new())
            }
            None => (*log_start, Vec::new(), Vec::new()),
        };
        jobs.push(Job {
            topic: topic.clone(),
            partition: *p,
            start,
            end: *end,
            log_start: *log_start,
            expired,
            kept,
            chunks: Vec::new(),
            ids: Vec::new(),
            runs: OffsetRuns::default(),
            bytes: 0,
        });
    }

    // 3. Read.
    let mut session = SaveSession::new(repo);
    let total: u64 = jobs.iter().map(|j| (j.end - j.start).max(0) as u64).sum();
    progress.start("reading records", Some(total), Unit::Items);
    let mut by_topic: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, j) in jobs.iter().enumerate() {
        if j.end > j.start {
            by_topic.entry(j.topic.clone()).or_default().push(i);
        }
    }
    let mut deleted: std::collections::BTreeSet<String> = Default::default();
    let to_read = jobs.iter().filter(|j| j.end > j.start).count();
    let (mut parts_done, mut bytes_done) = (0usize, 0u64);
    progress.set_message(&format!("reading: 0/{to_read} partitions;"));
    'topics: for (topic, idxs) in by_topic {
        for batch in idxs.chunks(PARTITION_BATCH) {
            let read_jobs: Vec<ReadJob> = batch
                .iter()
                .filter_map(|&i| jobs.get(i).map(|j| (i, j)))
                .map(|(i, j)| ReadJob {
                    tag: i as u64,
                    partition: j.partition,
                    start: j.start,
                    end: j.end,
                })
                .collect();
            let (tx, mut rx) = mpsc::channel::<Event>(8);
            let (k, t, chunker) = (kopts.clone(), topic.clone(), repo.chunker().clone());
            let reader = tokio::task::spawn_blocking(move || read_topic(&k, &t, read_jobs, &chunker, &tx));
            while let Some(ev) = rx.recv().await {
                match ev {
                    Event::Chunk { tag, data, meta } => {
                        if let Some(j) = jobs.get_mut(tag as usize) {
                            j.chunks.push(meta);
                        }
                        progress.inc(meta.records().max(0) as u64);
                        session.submit(tag, data).await?;
                        for (t, id) in session.take_completed() {
                            if let Some(j) = jobs.get_mut(t as usize) {
                                j.ids.push(id);
                            }
                        }
                    }
                    Event::Done { tag, runs, bytes } => {
                        if let Some(j) = jobs.get_mut(tag as usize) {
                            j.runs = runs;
                            j.bytes = bytes;
                        }
                        parts_done += 1;
                        bytes_done += bytes;
                        progress.set_message(&format!(
                            "reading: {parts_done}/{to_read} partitions, {:.1} MiB;",
                            bytes_done as f64 / 1_048_576.0
                        ));
                    }
                    Event::Warning(w) => {
                        progress.warn(&w);
                        res.warnings.push(w);
                    }
                }
            }
            match reader.await.map_err(|e| Error::Internal(e.to_string()))? {
                Ok(()) => {}
                Err(Error::NotFound(what)) => {
                    // A topic deleted after the capture: leave it out of this
                    // snapshot rather than record a partial image of it.
                    let w = format!("{what}: left out of this snapshot");
                    progress.warn(&w);
                    res.warnings.push(w);
                    deleted.insert(topic.clone());
                    continue 'topics;
                }
                Err(e) => return Err(e),
            }
        }
    }
    for (t, id) in session.drain().await? {
        if let Some(j) = jobs.get_mut(t as usize) {
            j.ids.push(id);
        }
    }
    progress.finish();
    let data_stats = session.stats().clone();

    // 4. Trees: segments -> partitions -> topics -> root; groups.
    let mut new_nodes: BTreeMap<(String, i32), Node> = BTreeMap::new();
    let topics: Vec<TopicInfo> = topics
        .into_iter()
        .filter(|t| !deleted.contains(&t.name))
        .collect();
    for j in jobs.into_iter().filter(|j| !deleted.contains(&j.topic)) {
        res.partitions_read += usize::from(j.end > j.start);
        res.records_read += j.runs.count();
        res.bytes_read += j.bytes;
        let mut segs = j.kept;
        if j.end > j.start {
            let meta = SegmentMeta {
                start: j.start,
                end: j.end,
                records: j.runs.count(),
                runs: j.runs,
                chunks: j.chunks,
            };
            segs.push(Node {
                name: j.start.to_string(),
                kind: "segment".into(),
                size: j.bytes,
                subtree: None,
                content: j.ids,
                meta: to_meta(&meta)?,
            });
        }
        let mut records = 0u64;
        let mut size = 0u64;
        for s in &segs {
            let m: SegmentMeta = manifest::from_meta(s)?;
            records += m.records;
            size += s.size;
        }
        let subtree = if segs.is_empty() {
            None
        } else {
            Some(
                session
                    .save_blob(BlobType::Tree, Tree { nodes: segs }.encode()?)
                    .await?,
            )
        };
        let pm = PartitionMeta {
            partition: j.partition,
            log_start: j.log_start,
            end: j.end,
            records,
            expired: j.expired,
        };
        new_nodes.insert(
            (j.topic.clone(), j.partition),
            Node {
                name: j.partition.to_string(),
                kind: "partition".into(),
                size,
                subtree,
                content: vec![],
                meta: to_meta(&pm)?,
            },
        );
    }
    new_nodes.extend(reused);
    let mut topic_nodes = Vec::new();
    for t in &topics {
        let mut pnodes = Vec::new();
        let mut size = 0;
        for p in 0..t.partitions {
            if let Some(n) = new_nodes.remove(&(t.name.clone(), p)) {
                size += n.size;
                res.records_total += manifest::from_meta::<PartitionMeta>(&n)?.records;
                pnodes.push(n);
            }
        }
        res.partitions += pnodes.len();
        let sub = session
            .save_blob(BlobType::Tree, Tree { nodes: pnodes }.encode()?)
            .await?;
        let tm = TopicMeta {
            partitions: t.partitions,
            replication_factor: t.replication_factor,
            configs: t.configs.clone(),
        };
        topic_nodes.push(Node {
            name: t.name.clone(),
            kind: "topic".into(),
            size,
            subtree: Some(sub),
            content: vec![],
            meta: to_meta(&tm)?,
        });
    }
    res.topics = topic_nodes.len();
    let logical: u64 = topic_nodes.iter().map(|n| n.size).sum();
    let topics_tree = session
        .save_blob(BlobType::Tree, Tree { nodes: topic_nodes }.encode()?)
        .await?;

    let parts: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| (0..t.partitions).map(|p| (t.name.clone(), p)))
        .collect();
    let (k4, g4) = (kopts.clone(), opts.groups.clone());
    let groups = tokio::task::spawn_blocking(move || admin::group_offsets(&k4, &parts, &g4))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    res.groups = groups.len();
    let mut gnodes = Vec::new();
    for (g, offs) in groups {
        let mut meta = BTreeMap::new();
        meta.insert(
            "offsets".to_string(),
            serde_json::to_value(offs).map_err(|e| Error::Internal(e.to_string()))?,
        );
        gnodes.push(Node {
            name: g,
            kind: "group".into(),
            size: 0,
            subtree: None,
            content: vec![],
            meta,
        });
    }
    let groups_tree = session
        .save_blob(BlobType::Tree, Tree { nodes: gnodes }.encode()?)
        .await?;
    let root = Tree {
        nodes: vec![
            Node {
                name: "topics".into(),
                kind: "topics".into(),
                size: logical,
                subtree: Some(topics_tree),
                content: vec![],
                meta: Default::default(),
            },
            Node {
                name: "groups".into(),
                kind: "groups".into(),
                size: 0,
                subtree: Some(groups_tree),
                content: vec![],
                meta: Default::default(),
            },
        ],
    };
    let root_id = session.save_blob(BlobType::Tree, root.encode()?).await?;
    let stats = session.commit().await?;

    // 5. The snapshot file, last.
    let snap = Snapshot {
        version: SNAPSHOT_VERSION,
        time,
        hostname: hostname(),
        username: username(),
        kind: KAFKA_KIND.into(),
        source: res.cluster_id.clone(),
        tags: opts.tags.clone(),
        tree: root_id,
        parent: res.parent,
        original: None,
        summary: SnapshotSummary {
            logical_bytes: logical,
            data_blobs: data_stats.blobs,
            new_data_blobs: data_stats.new_blobs,
            new_raw_bytes: data_stats.new_raw_bytes,
            new_stored_bytes: data_stats.new_stored_bytes,
        },
    };
    res.snapshot = repo.save_snapshot(&snap).await?;
    res.new_bytes_stored = stats.new_stored_bytes;
    res.dedup_saved_bytes = data_stats.raw_bytes.saturating_sub(data_stats.new_raw_bytes);
    res.seconds = started.elapsed().as_secs_f64();
    Ok(res)
}

async fn segs_tree_nodes(repo: &Repository, partition: &Node) -> Result<Vec<Node>> {
    match partition.subtree {
        Some(st) => Ok(repo.load_tree(&st).await?.nodes),
        None => Ok(Vec::new()),
    }
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
        .rfind(|(_, s)| s.kind == KAFKA_KIND && s.source == cluster_id))
}
