//! Reading a snapshot's partitions: one assign-only, read_committed
//! consumer ([`crate::kafka::source`]) hands records to a `Cutter` on its
//! thread, which cuts them into record-aligned chunks
//! ([`crate::image::segment::SegmentWriter`]) and sends them through a
//! bounded channel to the save session (deduplicated, compressed, sealed,
//! packed as they arrive). Memory is bounded by a budget for partially
//! filled chunks, which admits partitions to the read window.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tokio::sync::mpsc;

use super::plan::{CONSUMER_OFFSETS, CommitLogPlan, PartitionPlan};
use super::txn::TxnClock;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::image::commits::{self, Commit, CommitsMeta};
use crate::image::keyfilter::{ChunkFilter, KeyHasher};
use crate::image::record::{OffsetRuns, RecordRef};
use crate::image::segment::{Chunk, SegmentWriter};
use crate::image::types::{ChunkMeta, TopicPartition};
use crate::kafka::KafkaOptions;
use crate::kafka::admin::Cluster;
use crate::kafka::filter::NameFilter;
use crate::kafka::source::{self, Handler, ReadJob};
use crate::ops::progress::{Event as ProgressEvent, GapCause, Progress, Unit};
use crate::repo::Repository;
use crate::repo::chunker::Chunker;
use crate::repo::writer::SaveSession;

/// Bytes of partially filled chunks the reader may hold across the
/// partitions it reads at once; partitions join the read window while
/// their expected share fits.
pub const CHUNK_BUFFER_BUDGET: usize = 48 << 20;

/// What was read of one partition.
#[derive(Debug, Clone, Default)]
pub struct ReadPartition {
    /// Offsets of the records read.
    pub runs: OffsetRuns,
    /// Encoded bytes read.
    pub bytes: u64,
    /// Each chunk's id with its metadata, in order.
    pub chunks: Vec<(Id, ChunkMeta)>,
    /// Each chunk's key filter, in the same order.
    pub filters: Vec<ChunkFilter>,
}

/// What a read found.
#[derive(Debug, Default)]
pub struct ReadResult {
    /// Per plan partition (by index), what was read.
    pub partitions: Vec<ReadPartition>,
    /// Topics deleted while they were read: left out of the snapshot.
    pub gone_topics: BTreeSet<String>,
    /// Warnings (records deleted while being read).
    pub warnings: Vec<String>,
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
    /// Hashes record keys into each chunk's filter.
    hasher: KeyHasher,
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
            return Err(Error::bug(format!("record for unknown job {tag}")));
        };
        let w = slot.get_or_insert_with(|| SegmentWriter::with_key_filters(self.hasher.clone()));
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

/// Reads every planned partition's `[start, end)`.
///
/// # Errors
/// Kafka reads failing past the retry deadline; storage errors.
pub async fn read(
    repo: &Repository,
    kafka: &KafkaOptions,
    plan: &[PartitionPlan],
    session: &mut SaveSession,
    progress: &dyn Progress,
) -> Result<ReadResult> {
    let mut res = ReadResult {
        partitions: vec![ReadPartition::default(); plan.len()],
        ..Default::default()
    };
    let reading: Vec<(usize, &PartitionPlan)> = plan.iter().enumerate().filter(|(_, p)| p.reads()).collect();
    let total: u64 = reading.iter().map(|(_, p)| (p.end - p.start) as u64).sum();
    let to_read = reading.len();
    progress.start("reading records", Some(total), Unit::Items);
    progress.set_message(&format!("reading: 0/{to_read} partitions;"));
    let read_jobs: Vec<ReadJob> = reading
        .iter()
        .map(|(i, p)| ReadJob {
            tag: *i as u64,
            topic: p.topic.clone(),
            partition: p.partition,
            start: p.start,
            end: p.end,
        })
        .collect();
    let (tx, mut rx) = mpsc::channel::<Event>(4);
    let mut cutter = Cutter {
        chunker: repo.chunker().clone(),
        hasher: KeyHasher::new(repo.keys().key_filter_key()),
        tx,
        writers: (0..plan.len()).map(|_| None).collect(),
        reserved: vec![0; plan.len()],
        reserved_total: 0,
        buffered_total: 0,
        seen_bytes: 0,
        seen_records: 0,
    };
    let k = kafka.clone();
    let reader = tokio::task::spawn_blocking(move || source::read(&k, read_jobs, &mut cutter));

    // Chunk metadata waits here until its id comes back (in submission order).
    let mut metas: VecDeque<(ChunkMeta, ChunkFilter)> = VecDeque::new();
    let (mut parts_done, mut bytes_done) = (0usize, 0u64);
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Chunk { tag, chunk } => {
                let records = chunk.meta.records().max(0) as u64;
                progress.inc(records);
                progress.event(&ProgressEvent::Records {
                    records,
                    bytes: chunk.data.len() as u64,
                });
                metas.push_back((chunk.meta, chunk.filter.unwrap_or_default()));
                session.submit(tag, chunk.data).await?;
                let done = session.take_completed();
                place(&mut res.partitions, &mut metas, done);
            }
            Event::Done { tag, runs, bytes } => {
                partition_read(&mut res, plan, tag, runs, bytes, progress);
                parts_done += 1;
                bytes_done += bytes;
                progress.set_message(&format!(
                    "reading: {parts_done}/{to_read} partitions, {:.1} MiB;",
                    bytes_done as f64 / 1_048_576.0
                ));
            }
        }
    }
    let outcome = reader.await.map_err(|e| Error::worker("the Kafka reader", e))??;
    let done = session.drain().await?;
    place(&mut res.partitions, &mut metas, done);
    progress.finish();
    for t in &outcome.gone_topics {
        let w = format!("topic {t} (deleted during the snapshot): left out of this snapshot");
        progress.warn(&w);
        res.warnings.push(w);
    }
    res.gone_topics = outcome.gone_topics;
    Ok(res)
}

/// Records a partition the reader finished: its offsets and bytes, a gap
/// where retention deleted records between capture and read, and the
/// progress events.
fn partition_read(
    res: &mut ReadResult,
    plan: &[PartitionPlan],
    tag: u64,
    runs: OffsetRuns,
    bytes: u64,
    progress: &dyn Progress,
) {
    if let (Some(r), Some(p)) = (res.partitions.get_mut(tag as usize), plan.get(tag as usize)) {
        // Records retention deleted between capture and read
        // (a compacted topic's holes are compaction: no warning).
        let first = runs.0.first().map(|r| r[0]);
        if let Some(f) = first.filter(|f| *f > p.start && !p.compacted) {
            let w = format!(
                "{}/{}: offsets {}..{f} were deleted by retention while being read; recorded as a gap",
                p.topic, p.partition, p.start
            );
            progress.warn(&w);
            progress.event(&ProgressEvent::Gap {
                topic: &p.topic,
                partition: p.partition,
                from: p.start,
                to: f,
                cause: GapCause::DeletedWhileReading,
            });
            res.warnings.push(w);
        }
        progress.event(&ProgressEvent::PartitionDone {
            topic: &p.topic,
            partition: p.partition,
            bytes,
        });
        r.runs = runs;
        r.bytes = bytes;
    }
}

/// Gives finished chunk ids their metadata (both in submission order).
fn place(parts: &mut [ReadPartition], metas: &mut VecDeque<(ChunkMeta, ChunkFilter)>, done: Vec<(u64, Id)>) {
    for (tag, id) in done {
        let meta = metas.pop_front();
        if let (Some(p), Some((m, f))) = (parts.get_mut(tag as usize), meta) {
            p.chunks.push((id, m));
            p.filters.push(f);
        }
    }
}

/// Collects the offset commits of the selected groups on the selected
/// topics from `__consumer_offsets` records, in log order per partition.
struct CommitCollector<'a> {
    groups: &'a NameFilter,
    topics: &'a BTreeSet<String>,
    commits: Vec<Commit>,
    /// Where each of `commits` is: (partition of the log, offset).
    at: Vec<(i32, i64)>,
    /// Per partition of the log, the offsets of every record read (its
    /// gaps may be transaction markers).
    seen: BTreeMap<i32, OffsetRuns>,
    undecodable: u64,
}

impl Handler for CommitCollector<'_> {
    fn admit(&mut self, _job: &ReadJob) -> bool {
        true
    }

    fn record(&mut self, tag: u64, offset: i64, r: &RecordRef<'_>) -> Result<()> {
        let partition = i32::try_from(tag).unwrap_or(i32::MAX);
        self.seen.entry(partition).or_default().push(offset);
        let Some(key) = r.key else { return Ok(()) };
        let rec = match commits::decode(key, r.value) {
            Ok(rec) => rec,
            Err(_) => {
                self.undecodable += 1;
                return Ok(());
            }
        };
        let Some(c) = Commit::from_record(rec, r.timestamp) else {
            return Ok(());
        };
        // A deleted group concerns every topic.
        let on_topic = c.topic.as_ref().is_none_or(|t| self.topics.contains(t));
        if on_topic && self.groups.matches(&c.group) {
            self.commits.push(c);
            self.at.push((partition, offset));
        }
        Ok(())
    }

    fn done(&mut self, _tag: u64) -> Result<()> {
        Ok(())
    }

    fn gone(&mut self, _tag: u64) {}
}

/// What reading the commit log found ([`CommitCollector`]'s findings).
struct CommitsRead {
    commits: Vec<Commit>,
    at: Vec<(i32, i64)>,
    seen: BTreeMap<i32, OffsetRuns>,
    undecodable: u64,
}

/// The commits, each offset committed inside a transaction
/// (`TxnOffsetCommit`) dated by its transaction's commit marker: it counted
/// for the group from then on, not from when the request arrived. The
/// log's ranges with gaps are scanned raw for the markers; a scan that
/// fails keeps the request times and warns.
async fn commits_in_transactions(
    cluster: &Cluster,
    plan: &CommitLogPlan,
    c: CommitsRead,
    (clock, progress): (&mut TxnClock<'_>, &dyn Progress),
) -> Vec<Commit> {
    let CommitsRead {
        mut commits,
        at,
        seen,
        ..
    } = c;
    for (p, r) in &plan.ranges {
        let gaps = seen
            .get(p)
            .map_or(r[1] > r[0], |runs| !runs.gaps(r[0], r[1]).is_empty());
        if r[1] <= r[0] || !gaps || !at.iter().any(|(q, _)| q == p) {
            continue;
        }
        let tp = TopicPartition::new(CONSUMER_OFFSETS, *p);
        let mut spans = match cluster.transactions(&tp, r[0], r[1]).await {
            Ok(s) => s,
            Err(e) => {
                progress.warn(&format!(
                    "transactional offset commits in {tp} keep their request times (markers not read: {e})"
                ));
                continue;
            }
        };
        clock.date(spans.iter_mut().collect(), progress).await;
        for (commit, (_, off)) in commits.iter_mut().zip(&at).filter(|(_, (q, _))| q == p) {
            if let Some(s) = spans.iter().find(|s| s.holds(*off)) {
                commit.ts = commit.ts.max(s.commit_ts());
            }
        }
    }
    commits
}

/// Reads the planned part of the group commit log: the commits of the
/// selected groups on the selected topics, and the log's new positions.
/// A read that fails (no permission to read `__consumer_offsets`) leaves
/// the history incomplete and says why; the snapshot goes on.
pub async fn read_commits(
    kafka: &KafkaOptions,
    cluster: &Cluster,
    plan: &CommitLogPlan,
    groups: &[String],
    topics: BTreeSet<String>,
    (clock, progress): (&mut TxnClock<'_>, &dyn Progress),
) -> (CommitsMeta, Vec<Commit>) {
    let mut meta = CommitsMeta {
        positions: plan.ranges.iter().map(|(p, r)| (*p, r[1])).collect(),
        commits: 0,
        complete: plan.complete,
        note: plan.note.clone(),
    };
    let jobs: Vec<ReadJob> = plan
        .ranges
        .iter()
        .filter(|(_, r)| r[1] > r[0])
        .map(|(p, r)| ReadJob {
            tag: *p as u64,
            topic: CONSUMER_OFFSETS.into(),
            partition: *p,
            start: r[0],
            end: r[1],
        })
        .collect();
    if jobs.is_empty() {
        return (meta, Vec::new());
    }
    let groups = match NameFilter::new("group pattern", groups, &[]) {
        Ok(g) => g,
        Err(e) => {
            meta.complete = false;
            meta.note = e.to_string();
            return (meta, Vec::new());
        }
    };
    let k = kafka.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut c = CommitCollector {
            groups: &groups,
            topics: &topics,
            commits: Vec::new(),
            at: Vec::new(),
            seen: BTreeMap::new(),
            undecodable: 0,
        };
        source::read(&k, jobs, &mut c).map(|_| CommitsRead {
            commits: c.commits,
            at: c.at,
            seen: c.seen,
            undecodable: c.undecodable,
        })
    })
    .await;
    match out {
        Ok(Ok(c)) => {
            let undecodable = c.undecodable;
            let commits = commits_in_transactions(cluster, plan, c, (&mut *clock, progress)).await;
            if undecodable > 0 {
                let w = format!(
                    "{undecodable} record(s) of {CONSUMER_OFFSETS} could not be decoded and were skipped"
                );
                progress.warn(&w);
            }
            meta.commits = commits.len() as u64;
            (meta, commits)
        }
        Ok(Err(e)) => {
            let note = format!(
                "cannot read {CONSUMER_OFFSETS} (group positions between snapshots fall back to snapshot times): {e}"
            );
            progress.warn(&note);
            (
                CommitsMeta {
                    positions: plan.ranges.iter().map(|(p, r)| (*p, r[0])).collect(),
                    commits: 0,
                    complete: false,
                    note,
                },
                Vec::new(),
            )
        }
        Err(e) => (
            CommitsMeta {
                positions: plan.ranges.iter().map(|(p, r)| (*p, r[0])).collect(),
                commits: 0,
                complete: false,
                note: format!("reading {CONSUMER_OFFSETS}: {e}"),
            },
            Vec::new(),
        ),
    }
}
