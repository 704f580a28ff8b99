//! `snapshot`: an incremental, consistent snapshot of a Kafka cluster.
//!
//! 1. Capture: cluster id, selected topics (partitions, replication factor,
//!    non-default configs), and per partition (log start, last stable
//!    offset) from batched ListOffsets requests. The time of this capture is
//!    the snapshot's time.
//! 2. Plan against the parent (the latest Kafka snapshot of the same
//!    cluster): an unchanged partition keeps its node; otherwise read
//!    `[max(parent end, log start), end)` and drop segments retention has
//!    deleted. Offsets that expired before any snapshot read them are
//!    recorded and warned about.
//! 3. Read with one assign-only, read_committed consumer
//!    ([`crate::kafka::source`]); records become record-aligned chunks on
//!    the reader's thread ([`SegmentWriter`]) and are deduplicated, sealed
//!    and packed as they arrive. Memory is bounded by a budget for
//!    partially filled chunks, which admits partitions to the read window.
//! 4. Group offsets (OffsetFetch; kvault never joins a group), trees,
//!    index, then the snapshot file — the usual write ordering.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;

use super::manifest::{self, KAFKA_KIND, Manifest, PartitionMeta, SegmentMeta, TopicMeta, to_meta};
use super::progress::{Progress, Unit};
use super::with_lock;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::image::segment::{Chunk, SegmentWriter};
use crate::kafka::KafkaOptions;
use crate::kafka::admin::{Cluster, TopicInfo};
use crate::kafka::record::{OffsetRuns, RecordRef};
use crate::kafka::source::{self, Handler, ReadJob};
use crate::kafka::types::ChunkMeta;
use crate::repo::chunker::Chunker;
use crate::repo::pack::BlobType;
use crate::repo::snapshot::{SNAPSHOT_VERSION, Snapshot, SnapshotSummary};
use crate::repo::tree::{Node, Tree};
use crate::repo::writer::SaveSession;
use crate::repo::{Repository, hostname, now_rfc3339, username};

/// Bytes of partially filled chunks the reader may hold across the
/// partitions it reads at once; partitions join the read window while
/// their expected share fits.
pub const CHUNK_BUFFER_BUDGET: usize = 48 << 20;

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

/// One partition's work: what to read and what it became.
struct Job {
    topic: String,
    partition: i32,
    compacted: bool,
    start: i64,
    end: i64,
    log_start: i64,
    expired: Vec<[i64; 2]>,
    /// Lost ranges (repaired damage) of the kept segments.
    lost: Vec<[i64; 2]>,
    kept: Vec<Node>,
    chunks: Vec<(Id, ChunkMeta)>,
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
    // Reach the cluster before taking the lock: an unreachable broker is
    // reported in seconds, and nothing is written.
    let cluster = Cluster::connect(&opts.kafka).await?;
    with_lock(repo, false, || run(repo, &cluster, opts, progress)).await
}

/// The topics and their bounds, read consistently: a topic deleted between
/// listing and ListOffsets is listed again.
async fn capture(
    cluster: &Cluster,
    opts: &SnapshotOptions,
) -> Result<(Vec<TopicInfo>, BTreeMap<(String, i32), (i64, i64)>, String)> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let topics = cluster.topics(&opts.topics, &opts.exclude).await?;
        let parts: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|t| (0..t.partitions).map(|p| (t.name.clone(), p)))
            .collect();
        match cluster.bounds(&parts).await {
            Ok(b) => return Ok((topics, parts.into_iter().zip(b).collect(), now_rfc3339())),
            Err(Error::Kafka { code: Some(c), .. }) if c == "UnknownTopicOrPartition" && attempts < 5 => {
                continue;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn run(
    repo: &Repository,
    cluster: &Cluster,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<SnapshotResult> {
    let started = Instant::now();
    let mut res = SnapshotResult {
        cluster_id: cluster.cluster_id().await?,
        ..Default::default()
    };

    // 1. Capture.
    let (topics, bounds, time) = capture(cluster, opts).await?;

    // 2. Plan against the parent.
    repo.load_index().await?;
    let parent = latest_of_cluster(repo, &res.cluster_id).await?;
    let prev: Manifest = match &parent {
        Some((_, s)) => manifest::load(repo, &s.tree, false).await?,
        None => Manifest::default(),
    };
    res.parent = parent.as_ref().map(|(id, _)| *id);
    let compacted: BTreeSet<&str> = topics
        .iter()
        .filter(|t| {
            t.configs
                .get("cleanup.policy")
                .is_some_and(|p| p.contains("compact"))
        })
        .map(|t| t.name.as_str())
        .collect();
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
        let lost: Vec<[i64; 2]> = old
            .map(|o| {
                o.meta
                    .lost
                    .iter()
                    .filter(|l| l[1] > *log_start)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
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
            compacted: compacted.contains(topic.as_str()),
            start,
            end: *end,
            log_start: *log_start,
            expired,
            lost,
            kept,
            chunks: Vec::new(),
            runs: OffsetRuns::default(),
            bytes: 0,
        });
    }

    // 3. Read.
    let mut session = SaveSession::new(repo);
    let deleted = read(repo, &opts.kafka, &mut jobs, &mut session, progress, &mut res).await?;
    let data_stats = session.stats().clone();

    // 4. Trees: segments -> partitions -> topics -> root; groups.
    let topics: Vec<TopicInfo> = topics
        .into_iter()
        .filter(|t| !deleted.contains(&t.name))
        .collect();
    let mut nodes = reused;
    for j in jobs.into_iter().filter(|j| !deleted.contains(&j.topic)) {
        let key = (j.topic.clone(), j.partition);
        nodes.insert(key, partition_node(&mut session, j, &mut res).await?);
    }
    let mut topic_nodes = Vec::new();
    for t in &topics {
        let mut pnodes = Vec::new();
        let mut size = 0;
        for p in 0..t.partitions {
            if let Some(n) = nodes.remove(&(t.name.clone(), p)) {
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
    let groups = cluster.group_offsets(&parts, &opts.groups).await?;
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

/// A partition's node: the kept segments plus the one just read.
async fn partition_node(session: &mut SaveSession, j: Job, res: &mut SnapshotResult) -> Result<Node> {
    res.partitions_read += usize::from(j.end > j.start);
    res.records_read += j.runs.count();
    res.bytes_read += j.bytes;
    let mut segs = j.kept;
    if j.end > j.start {
        let (ids, chunks): (Vec<Id>, Vec<ChunkMeta>) = j.chunks.into_iter().unzip();
        let meta = SegmentMeta {
            start: j.start,
            end: j.end,
            records: j.runs.count(),
            runs: j.runs,
            chunks,
        };
        segs.push(Node {
            name: j.start.to_string(),
            kind: "segment".into(),
            size: j.bytes,
            subtree: None,
            content: ids,
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
        lost: j.lost,
    };
    Ok(Node {
        name: j.partition.to_string(),
        kind: "partition".into(),
        size,
        subtree,
        content: vec![],
        meta: to_meta(&pm)?,
    })
}

/// What the reader's thread sends to the writing side.
enum Event {
    Chunk { tag: u64, chunk: Chunk },
    Done { tag: u64, runs: OffsetRuns, bytes: u64 },
}

/// The reader's handler: a segment writer per partition being read,
/// chunks to the writing side through a bounded channel, and the buffer
/// budget that decides how many partitions are read at once.
struct Cutter {
    chunker: Chunker,
    tx: mpsc::Sender<Event>,
    /// Per job (tags are job indices): its writer while it is read.
    writers: Vec<Option<SegmentWriter>>,
    /// Per job: the buffer bytes reserved for it while it is read.
    reserved: Vec<usize>,
    reserved_total: usize,
    buffered_total: usize,
    seen_bytes: u64,
    seen_records: u64,
}

impl Cutter {
    fn send(&self, e: Event) -> Result<()> {
        self.tx.blocking_send(e).map_err(|_| Error::Interrupted)
    }

    /// Bytes a partition of `records` records is expected to buffer at most.
    fn reservation(&self, records: i64) -> usize {
        let per = self
            .seen_bytes
            .checked_div(self.seen_records)
            .map_or(1024, |b| b + 1);
        let expected = (records.max(0) as u64).saturating_mul(per);
        usize::try_from(expected)
            .unwrap_or(usize::MAX)
            .min(self.chunker.max_size() + (64 << 10))
    }

    fn release(&mut self, tag: u64) {
        if let Some(r) = self.reserved.get_mut(tag as usize) {
            self.reserved_total -= std::mem::take(r).min(self.reserved_total);
        }
    }

    /// Over twice the budget (records far larger than expected): end the
    /// largest partial chunk early.
    fn relieve(&mut self) -> Result<()> {
        while self.buffered_total > 2 * CHUNK_BUFFER_BUDGET {
            let largest = self
                .writers
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.as_ref().map(|w| (i, w.buffered())))
                .max_by_key(|(_, b)| *b);
            let Some((i, _)) = largest else { return Ok(()) };
            let tag = i as u64;
            let Some(Some(w)) = self.writers.get_mut(i) else {
                return Ok(());
            };
            let before = w.buffered();
            let cut = w.cut();
            self.buffered_total -= before;
            match cut {
                Some(chunk) => self.send(Event::Chunk { tag, chunk })?,
                None => return Ok(()),
            }
        }
        Ok(())
    }
}

impl Handler for Cutter {
    fn admit(&mut self, job: &ReadJob) -> bool {
        let r = self.reservation(job.end - job.start);
        if self.reserved_total + r > CHUNK_BUFFER_BUDGET {
            return false;
        }
        self.reserved_total += r;
        if let Some(slot) = self.reserved.get_mut(job.tag as usize) {
            *slot = r;
        }
        true
    }

    fn record(&mut self, tag: u64, offset: i64, r: &RecordRef<'_>) -> Result<()> {
        let Some(slot) = self.writers.get_mut(tag as usize) else {
            return Err(Error::Internal(format!("record for unknown job {tag}")));
        };
        let w = slot.get_or_insert_with(SegmentWriter::default);
        let (before, bytes_before) = (w.buffered(), w.bytes());
        let chunk = w.push(&self.chunker, offset, r);
        self.seen_bytes += w.bytes() - bytes_before;
        self.seen_records += 1;
        self.buffered_total = self.buffered_total + w.buffered() - before.min(self.buffered_total);
        if let Some(chunk) = chunk {
            self.buffered_total -= chunk.data.len().min(self.buffered_total);
            self.send(Event::Chunk { tag, chunk })?;
        }
        if self.buffered_total > 2 * CHUNK_BUFFER_BUDGET {
            self.relieve()?;
        }
        Ok(())
    }

    fn done(&mut self, tag: u64) -> Result<()> {
        self.release(tag);
        let (last, runs, bytes) = match self.writers.get_mut(tag as usize).and_then(Option::take) {
            Some(w) => {
                self.buffered_total -= w.buffered().min(self.buffered_total);
                w.finish()
            }
            None => (None, OffsetRuns::default(), 0),
        };
        if let Some(chunk) = last {
            self.send(Event::Chunk { tag, chunk })?;
        }
        self.send(Event::Done { tag, runs, bytes })
    }

    fn gone(&mut self, tag: u64) {
        self.release(tag);
        if let Some(w) = self.writers.get_mut(tag as usize).and_then(Option::take) {
            self.buffered_total -= w.buffered().min(self.buffered_total);
        }
    }
}

/// Reads every job's range; returns the topics deleted meanwhile (left out
/// of the snapshot).
async fn read(
    repo: &Repository,
    kafka: &KafkaOptions,
    jobs: &mut [Job],
    session: &mut SaveSession,
    progress: &dyn Progress,
    res: &mut SnapshotResult,
) -> Result<BTreeSet<String>> {
    let total: u64 = jobs.iter().map(|j| (j.end - j.start).max(0) as u64).sum();
    let to_read = jobs.iter().filter(|j| j.end > j.start).count();
    progress.start("reading records", Some(total), Unit::Items);
    progress.set_message(&format!("reading: 0/{to_read} partitions;"));
    let read_jobs: Vec<ReadJob> = jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| j.end > j.start)
        .map(|(i, j)| ReadJob {
            tag: i as u64,
            topic: j.topic.clone(),
            partition: j.partition,
            start: j.start,
            end: j.end,
        })
        .collect();
    let (tx, mut rx) = mpsc::channel::<Event>(4);
    let mut cutter = Cutter {
        chunker: repo.chunker().clone(),
        tx,
        writers: (0..jobs.len()).map(|_| None).collect(),
        reserved: vec![0; jobs.len()],
        reserved_total: 0,
        buffered_total: 0,
        seen_bytes: 0,
        seen_records: 0,
    };
    let k = kafka.clone();
    let reader = tokio::task::spawn_blocking(move || source::read(&k, read_jobs, &mut cutter));

    // Chunk metadata waits here until its id comes back (in submission order).
    let mut metas: VecDeque<ChunkMeta> = VecDeque::new();
    let (mut parts_done, mut bytes_done) = (0usize, 0u64);
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Chunk { tag, chunk } => {
                progress.inc(chunk.meta.records().max(0) as u64);
                metas.push_back(chunk.meta);
                session.submit(tag, chunk.data).await?;
                let done = session.take_completed();
                place(jobs, &mut metas, done);
            }
            Event::Done { tag, runs, bytes } => {
                if let Some(j) = jobs.get_mut(tag as usize) {
                    // Records retention deleted between capture and read.
                    let first = runs.0.first().map(|r| r[0]);
                    if let Some(f) = first.filter(|f| *f > j.start) {
                        if !j.compacted {
                            let w = format!(
                                "{}/{}: offsets {}..{f} were deleted by retention while being read; recorded as a gap",
                                j.topic, j.partition, j.start
                            );
                            progress.warn(&w);
                            res.warnings.push(w);
                        }
                    }
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
        }
    }
    let outcome = reader.await.map_err(|e| Error::Internal(e.to_string()))??;
    let done = session.drain().await?;
    place(jobs, &mut metas, done);
    progress.finish();
    for t in &outcome.gone_topics {
        // A topic deleted after the capture: left out of this snapshot
        // rather than recorded as a partial image.
        let w = format!("topic {t} (deleted during the snapshot): left out of this snapshot");
        progress.warn(&w);
        res.warnings.push(w);
    }
    Ok(outcome.gone_topics)
}

/// Gives finished chunk ids their metadata (both in submission order).
fn place(jobs: &mut [Job], metas: &mut VecDeque<ChunkMeta>, done: Vec<(u64, Id)>) {
    for (tag, id) in done {
        let meta = metas.pop_front();
        if let (Some(j), Some(m)) = (jobs.get_mut(tag as usize), meta) {
            j.chunks.push((id, m));
        }
    }
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
