//! Reading partitions: one consumer for the whole snapshot, `assign` only
//! (no group is joined or committed), read_committed, each partition from a
//! start offset to the end captured when the snapshot began.
//!
//! Partitions are assigned in a window ([`incremental_assign`] as others
//! finish): the caller's [`Handler::admit`] decides when memory allows one
//! more. Fetch sizes are librdkafka's defaults (what kcat and every
//! librdkafka consumer use; larger per-partition fetches made reads up to 4×
//! slower here, BENCHMARKS.md), except a 32 MiB prefetch queue; `-X` wins.
//!
//! A partition is finished when a record at or past its end arrives, or
//! when the consumer's position reaches the end (the last records were
//! control records or aborted ones, which read_committed never hands out).
//! Records go to the handler as borrowed slices: the Kafka layer neither
//! encodes nor chunks. They are read in batches from a queue of the
//! reader's own that every assigned partition is routed to
//! (`kvault_rdkafka_ext`): one `poll` per record cost a third of a
//! snapshot's CPU on small records. Client-wide events (logs, errors) stay
//! on the consumer queue, served between batches.
//!
//! [`incremental_assign`]: rdkafka::consumer::Consumer::incremental_assign

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use kvault_rdkafka_ext::{Batch, FetchQueue, Msg, TimestampKind};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaOptions;
use super::admin::Context;
use crate::error::{Error, Result};
use crate::image::record::{RecordRef, TimestampType};
use crate::image::types::TopicPartition;

/// The group id of kvault's assign-only consumers: librdkafka requires one
/// to assign partitions, but it is never joined (no subscribe) and never
/// committed to, so the cluster never creates such a group.
pub const ASSIGN_ONLY_GROUP: &str = "kvault-assign-only-never-joined";

/// Partitions assigned at once, at most (the handler may admit fewer).
pub const MAX_ACTIVE: usize = 1024;

/// Messages taken from the fetch queue at once.
const BATCH: usize = 1024;

/// Above this many partitions to read, partitions come and go in the read
/// window and fetches must not wait at the broker (see `consumer`).
pub const MANY_PARTITIONS: usize = 32;

/// One partition to read, `[start, end)`.
#[derive(Debug, Clone)]
pub struct ReadJob {
    /// Caller's label, echoed to the handler.
    pub tag: u64,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset to read.
    pub start: i64,
    /// End (exclusive): the last stable offset when the snapshot began.
    pub end: i64,
}

/// Receives what the reader reads, on the reader's thread.
pub trait Handler {
    /// Whether `job` may start now (memory). Asked only while another
    /// partition is active; with none active every job starts.
    fn admit(&mut self, job: &ReadJob) -> bool;
    /// A record of the job `tag`, in offset order.
    ///
    /// # Errors
    /// Stops the read (e.g. the receiving side is gone).
    fn record(&mut self, tag: u64, offset: i64, r: &RecordRef<'_>) -> Result<()>;
    /// The job `tag` reached its end.
    ///
    /// # Errors
    /// Stops the read.
    fn done(&mut self, tag: u64) -> Result<()>;
    /// The job's topic was deleted while it was read; drop what it read.
    fn gone(&mut self, tag: u64);
}

/// What a read found besides records.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    /// Topics deleted while they were read (their jobs were dropped).
    pub gone_topics: BTreeSet<String>,
}

struct Active {
    tag: u64,
    end: i64,
    /// Next offset expected (last record read + 1).
    pos: i64,
}

/// The partitions being read, found by (topic, partition) without hashing
/// on every record: topics by index, partitions by number, and the last
/// topic looked up remembered (records arrive in runs of one partition).
#[derive(Default)]
struct ActiveSet {
    index: HashMap<String, usize>,
    names: Vec<String>,
    parts: Vec<Vec<Option<Active>>>,
    count: usize,
    last: Option<usize>,
}

impl ActiveSet {
    fn topic_index(&mut self, topic: &str) -> Option<usize> {
        if let Some(i) = self.last {
            if self.names.get(i).is_some_and(|n| n == topic) {
                return Some(i);
            }
        }
        let i = *self.index.get(topic)?;
        self.last = Some(i);
        Some(i)
    }

    fn insert(&mut self, topic: &str, p: i32, a: Active) {
        let i = match self.index.get(topic) {
            Some(i) => *i,
            None => {
                self.names.push(topic.to_string());
                self.parts.push(Vec::new());
                self.index.insert(topic.to_string(), self.names.len() - 1);
                self.names.len() - 1
            }
        };
        let Ok(pi) = usize::try_from(p) else { return };
        if let Some(ps) = self.parts.get_mut(i) {
            if ps.len() <= pi {
                ps.resize_with(pi + 1, || None);
            }
            if let Some(slot) = ps.get_mut(pi) {
                if slot.replace(a).is_none() {
                    self.count += 1;
                }
            }
        }
    }

    fn get_mut(&mut self, topic: &str, p: i32) -> Option<&mut Active> {
        let i = self.topic_index(topic)?;
        self.parts.get_mut(i)?.get_mut(usize::try_from(p).ok()?)?.as_mut()
    }

    fn remove(&mut self, topic: &str, p: i32) -> Option<Active> {
        let i = self.topic_index(topic)?;
        let a = self.parts.get_mut(i)?.get_mut(usize::try_from(p).ok()?)?.take();
        if a.is_some() {
            self.count -= 1;
        }
        a
    }

    /// Whether some active partition numbered `p` has not read to its end.
    fn has_unfinished(&self, p: i32) -> bool {
        let Ok(pi) = usize::try_from(p) else { return false };
        self.parts.iter().any(|ps| {
            ps.get(pi)
                .is_some_and(|a| a.as_ref().is_some_and(|a| a.pos < a.end))
        })
    }

    /// Every active partition: (topic, partition, state).
    fn iter(&self) -> impl Iterator<Item = (&str, i32, &Active)> + '_ {
        self.names.iter().zip(&self.parts).flat_map(|(n, ps)| {
            ps.iter()
                .enumerate()
                .filter_map(move |(p, a)| a.as_ref().map(|a| (n.as_str(), p as i32, a)))
        })
    }

    /// Takes out every active partition of a topic.
    fn remove_topic(&mut self, topic: &str) -> Vec<(i32, Active)> {
        let Some(i) = self.topic_index(topic) else {
            return Vec::new();
        };
        let Some(ps) = self.parts.get_mut(i) else {
            return Vec::new();
        };
        let out: Vec<(i32, Active)> = ps
            .iter_mut()
            .enumerate()
            .filter_map(|(p, a)| a.take().map(|a| (p as i32, a)))
            .collect();
        self.count -= out.len();
        out
    }
}

/// The consumer settings of a snapshot read: the user's `-X` properties win
/// over kvault's defaults, but not over what correctness needs (assign
/// only, never commit, read_committed, end-of-partition events).
fn consumer(opts: &KafkaOptions, many: bool) -> Result<BaseConsumer<Context>> {
    let mut defaults = vec![
        // Retention may delete records between reading the bounds and
        // fetching them: start at the new log start; the gap is recorded.
        ("auto.offset.reset", "earliest"),
        // Prefetch memory (librdkafka's default is 64 MiB).
        ("queued.max.messages.kbytes", "32768"),
        // When the prefetch queue is full librdkafka pauses fetching for
        // this long (default 1 s): a consumer slower than the fetcher (one
        // that compresses and encrypts) then idles. 44 s -> 13 s on W1.
        ("fetch.queue.backoff.ms", "20"),
    ];
    if many {
        // Partitions join the window while a fetch waits at the broker for
        // more data (500 ms by default) and are fetched only after it:
        // with many small partitions that wait is most of the time (10,000
        // partitions: 5.5 s of reading -> 1.6 s). With few large ones short
        // waits only add fetch requests, so the default stays.
        defaults.push(("fetch.wait.max.ms", "10"));
    }
    let mut cfg = opts.config_with(&defaults);
    cfg.set("group.id", ASSIGN_ONLY_GROUP)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    super::auth::create(&cfg, Context::new(opts), opts, "kafka client")
}

/// Reads every job to its end, handing records to `h`. Blocking: run it on
/// a blocking thread.
///
/// # Errors
/// The client cannot be created; the handler fails; no progress for
/// `opts.retry_timeout()` (broker gone, partition without a leader).
pub fn read(opts: &KafkaOptions, jobs: Vec<ReadJob>, h: &mut dyn Handler) -> Result<ReadOutcome> {
    let mut pending: VecDeque<ReadJob> = VecDeque::new();
    for j in jobs {
        if j.start >= j.end {
            h.done(j.tag)?;
        } else {
            pending.push_back(j);
        }
    }
    if pending.is_empty() {
        return Ok(ReadOutcome::default());
    }
    let consumer = consumer(opts, pending.len() > MANY_PARTITIONS)?;
    // Fill the client's metadata cache for every topic at once: otherwise
    // each newly assigned topic waits for its own metadata request.
    let _ = consumer.fetch_metadata(None, opts.request_timeout());
    let fetchq = FetchQueue::new(&consumer).ok_or_else(|| Error::Kafka {
        op: "creating a fetch queue".into(),
        detail: "librdkafka could not create one".into(),
        code: None,
        transient: false,
    })?;
    let mut batch = fetchq.batch(BATCH);
    let mut r = Reader::new(&consumer, opts, pending);
    loop {
        r.unassign_finished()?;
        r.admit(&fetchq, h)?;
        if r.active.count == 0 {
            return Ok(r.out);
        }
        r.serve_client_events();
        let got = fetchq.consume(&mut batch, Duration::from_millis(100));
        let seen = r.take_batch(&batch, got, h)?;
        r.after_batch(&seen, h)?;
    }
}

/// The state of one read: what waits, what is assigned, what finished, and
/// the clocks of the watchdog. [`read`] drives it through its transitions.
struct Reader<'c> {
    consumer: &'c BaseConsumer<Context>,
    opts: &'c KafkaOptions,
    /// Jobs not yet assigned.
    pending: VecDeque<ReadJob>,
    /// Jobs assigned and unfinished.
    active: ActiveSet,
    /// Finished partitions still assigned.
    finished: Vec<TopicPartition>,
    out: ReadOutcome,
    /// Admission is looked at again only after partitions finished.
    admit_again: bool,
    /// Assignment changes cost librdkafka work per assigned partition:
    /// they are made in batches (many finished, an idle read, or every 256
    /// records).
    housekeeping: bool,
    /// An end-of-partition event waiting for a position check (at most one
    /// check per 50 ms: each copies the whole assignment).
    eof_pending: bool,
    last_eof_check: Instant,
    last_progress: Instant,
    last_check: Instant,
    since_look: usize,
    last_error: Option<String>,
}

/// What one batch held, for the checks after it.
struct Seen {
    /// Time to look at the clock (every 256 messages, an empty read, an
    /// event).
    look: bool,
    /// Records, not just events: progress.
    records: bool,
    /// A partition's topic is gone.
    unknown_topic: bool,
}

impl<'c> Reader<'c> {
    fn new(consumer: &'c BaseConsumer<Context>, opts: &'c KafkaOptions, pending: VecDeque<ReadJob>) -> Self {
        let now = Instant::now();
        Reader {
            consumer,
            opts,
            pending,
            active: ActiveSet::default(),
            finished: Vec::new(),
            out: ReadOutcome::default(),
            admit_again: true,
            housekeeping: true,
            eof_pending: false,
            last_eof_check: now,
            last_progress: now,
            last_check: now,
            since_look: 0,
            last_error: None,
        }
    }

    /// Unassigns the finished partitions, in batches.
    fn unassign_finished(&mut self) -> Result<()> {
        let due = self.housekeeping || self.finished.len() >= 64 || self.active.count == 0;
        self.housekeeping = false;
        if self.finished.is_empty() || !due {
            return Ok(());
        }
        self.admit_again = true;
        let mut tpl = TopicPartitionList::with_capacity(self.finished.len());
        for TopicPartition {
            topic: t,
            partition: p,
        } in self.finished.drain(..)
        {
            tpl.add_partition(&t, p);
        }
        self.consumer
            .incremental_unassign(&tpl)
            .map_err(|e| Error::Kafka {
                op: "unassigning finished partitions".into(),
                detail: e.to_string(),
                code: None,
                transient: false,
            })
    }

    /// Assigns waiting jobs while the handler's memory allows (always one).
    fn admit(&mut self, fetchq: &FetchQueue<'_>, h: &mut dyn Handler) -> Result<()> {
        if !self.admit_again || self.pending.is_empty() {
            return Ok(());
        }
        self.admit_again = false;
        let mut tpl = TopicPartitionList::new();
        while let Some(j) = self.pending.front() {
            if self.active.count >= MAX_ACTIVE || (self.active.count > 0 && !h.admit(j)) {
                break;
            }
            let Some(j) = self.pending.pop_front() else { break };
            if !fetchq.route(&j.topic, j.partition) {
                return Err(Error::Kafka {
                    op: format!("routing {}/{} to the fetch queue", j.topic, j.partition),
                    detail: "librdkafka has no queue for the partition".into(),
                    code: None,
                    transient: false,
                });
            }
            tpl.add_partition(&j.topic, j.partition)
                .set_offset(Offset::Offset(j.start))
                .map_err(|e| Error::Kafka {
                    op: format!("assigning {}/{}", j.topic, j.partition),
                    detail: e.to_string(),
                    code: None,
                    transient: false,
                })?;
            let a = Active {
                tag: j.tag,
                end: j.end,
                pos: j.start,
            };
            self.active.insert(&j.topic, j.partition, a);
        }
        if tpl.count() > 0 {
            self.consumer.incremental_assign(&tpl).map_err(|e| Error::Kafka {
                op: format!("assigning partitions on {}", self.opts.brokers),
                detail: e.to_string(),
                code: None,
                transient: false,
            })?;
        }
        Ok(())
    }

    /// Client-wide events (logs, errors, statistics) stay on the consumer
    /// queue: served between batches.
    fn serve_client_events(&mut self) {
        while let Some(ev) = self.consumer.poll(Duration::ZERO) {
            if let Err(e) = ev {
                self.last_error = Some(e.to_string());
            }
        }
    }

    /// Hands a batch's records to `h` and notes its events.
    fn take_batch(&mut self, batch: &Batch<'_>, got: usize, h: &mut dyn Handler) -> Result<Seen> {
        self.since_look += got;
        // Reading the clock per record costs as much as handling a small
        // one: look at it every 256 messages, or when a read came back empty.
        let mut seen = Seen {
            look: got == 0 || self.since_look >= 256,
            records: false,
            unknown_topic: false,
        };
        if seen.look {
            self.since_look = 0;
        }
        // Records come in runs of one topic: name each run once.
        let mut named: Option<(Msg<'_>, &str)> = None;
        for m in batch.iter() {
            if let Some(code) = m.error() {
                seen.look = true;
                self.event(code, &m, &mut seen);
                continue;
            }
            seen.records = true;
            let topic = match named {
                Some((prev, name)) if prev.same_topic(&m) => name,
                _ => m.topic(),
            };
            named = Some((m, topic));
            self.record(&m, topic, h)?;
        }
        if seen.records && seen.look {
            self.last_progress = Instant::now();
        }
        Ok(seen)
    }

    /// A per-partition event: end of partition, a topic gone, or a fetch
    /// error librdkafka retries itself (the watchdog bounds it).
    fn event(&mut self, code: RDKafkaErrorCode, m: &Msg<'_>, seen: &mut Seen) {
        if code == RDKafkaErrorCode::PartitionEOF {
            self.last_progress = Instant::now();
            // The end of partition p of some active topic: finish every one
            // whose position reached its end (control and aborted records
            // at the tail are never handed out).
            if self.active.has_unfinished(m.partition()) {
                self.eof_pending = true;
            }
        } else if code == RDKafkaErrorCode::UnknownTopicOrPartition {
            self.last_error = Some("unknown topic or partition".into());
            seen.unknown_topic = true;
        } else {
            self.last_error = Some(m.error_text());
        }
    }

    /// One record: handed to `h` when it is inside its job; the job
    /// finishes at its end offset.
    fn record(&mut self, m: &Msg<'_>, topic: &str, h: &mut dyn Handler) -> Result<()> {
        let (p, off) = (m.partition(), m.offset());
        let Some(a) = self.active.get_mut(topic, p) else {
            return Ok(());
        };
        if off < a.end {
            let (timestamp, timestamp_type) = match m.timestamp() {
                (t, TimestampKind::CreateTime) => (t, TimestampType::CreateTime),
                (t, TimestampKind::LogAppendTime) => (t, TimestampType::LogAppendTime),
                (_, TimestampKind::NotAvailable) => (-1, TimestampType::None),
            };
            let mut headers = Vec::new();
            if let Err(e) = m.headers_into(&mut headers) {
                return Err(Error::Kafka {
                    op: format!("reading {topic}/{p} at offset {off}"),
                    detail: e.to_string(),
                    code: None,
                    transient: false,
                });
            }
            let r = RecordRef {
                timestamp,
                timestamp_type,
                key: m.key(),
                value: m.payload(),
                headers,
            };
            h.record(a.tag, off, &r)?;
            a.pos = off + 1;
        }
        if off + 1 >= a.end {
            let tag = a.tag;
            finish(&mut self.active, &mut self.finished, topic, p);
            h.done(tag)?;
        }
        Ok(())
    }

    /// After a batch: deleted topics dropped, positions checked after an
    /// end of partition or a quiet second, and the watchdog.
    fn after_batch(&mut self, seen: &Seen, h: &mut dyn Handler) -> Result<()> {
        if seen.unknown_topic {
            drop_deleted_topics(
                self.consumer,
                self.opts,
                &mut self.active,
                &mut self.finished,
                &mut self.out,
                h,
            )?;
            let gone = &self.out.gone_topics;
            self.pending.retain(|j| {
                let keep = !gone.contains(&j.topic);
                if !keep {
                    h.gone(j.tag);
                }
                keep
            });
        }
        if !seen.look {
            return Ok(());
        }
        self.housekeeping = true;
        if self.eof_pending && self.last_eof_check.elapsed() > Duration::from_millis(50) {
            self.eof_pending = false;
            self.last_eof_check = Instant::now();
            check_positions(self.consumer, &mut self.active, &mut self.finished, h)?;
        }
        let quiet = self.last_progress.elapsed() > Duration::from_secs(1);
        if quiet && self.last_check.elapsed() > Duration::from_secs(1) {
            self.last_check = Instant::now();
            check_positions(self.consumer, &mut self.active, &mut self.finished, h)?;
        }
        if self.last_progress.elapsed() > self.opts.retry_timeout() {
            return Err(self.stalled());
        }
        Ok(())
    }

    /// The watchdog's error: which partitions made no progress for how
    /// long, and the last error seen.
    fn stalled(&self) -> Error {
        let names: Vec<String> = self
            .active
            .iter()
            .map(|(t, p, _)| format!("{t}/{p}"))
            .take(5)
            .collect();
        Error::Kafka {
            op: format!("reading {}", names.join(", ")),
            detail: format!(
                "no progress for {} ({} partition(s) unfinished){}",
                humantime::format_duration(self.opts.retry_timeout()),
                self.active.count,
                self.last_error
                    .as_ref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            ),
            code: None,
            transient: true,
        }
    }
}

fn finish(active: &mut ActiveSet, finished: &mut Vec<TopicPartition>, topic: &str, p: i32) {
    if active.remove(topic, p).is_some() {
        finished.push(TopicPartition::new(topic, p));
    }
}

/// Finishes active partitions whose consumer position reached their end.
fn check_positions(
    consumer: &BaseConsumer<Context>,
    active: &mut ActiveSet,
    finished: &mut Vec<TopicPartition>,
    h: &mut dyn Handler,
) -> Result<()> {
    let Ok(pos) = consumer.position() else {
        return Ok(());
    };
    let mut done = Vec::new();
    for e in pos.elements() {
        let o = match e.offset() {
            Offset::Offset(o) => o,
            _ => -1,
        };
        if let Some(a) = active.get_mut(e.topic(), e.partition()) {
            if o >= a.end || a.pos >= a.end {
                done.push((e.topic().to_string(), e.partition(), a.tag));
            }
        }
    }
    for (t, p, tag) in done {
        finish(active, finished, &t, p);
        h.done(tag)?;
    }
    Ok(())
}

/// After UnknownTopicOrPartition: drops the active topics the cluster no
/// longer has (deleted during the snapshot).
fn drop_deleted_topics(
    consumer: &BaseConsumer<Context>,
    opts: &KafkaOptions,
    active: &mut ActiveSet,
    finished: &mut Vec<TopicPartition>,
    out: &mut ReadOutcome,
    h: &mut dyn Handler,
) -> Result<()> {
    let Ok(md) = consumer.fetch_metadata(None, opts.request_timeout()) else {
        return Ok(());
    };
    let gone: Vec<String> = active
        .names
        .iter()
        .filter(|t| {
            !md.topics()
                .iter()
                .any(|m| m.name() == t.as_str() && m.error().is_none())
        })
        .cloned()
        .collect();
    for t in gone {
        for (p, a) in active.remove_topic(&t) {
            finished.push(TopicPartition::new(t.clone(), p));
            h.gone(a.tag);
        }
        out.gone_topics.insert(t);
    }
    Ok(())
}
