//! Reading partitions: `assign` (no group), read_committed, from a start
//! offset to the end captured when the snapshot began. Records are encoded
//! canonically and cut into record-aligned, content-defined chunks here, on
//! a blocking thread; chunks go to the async side through a bounded channel
//! (so memory stays bounded whatever the topic size).
//!
//! A chunk is cut where the keyed FastCDC cut falls, moved forward to the
//! end of the record it lands in: chunks hold whole records (a chunk can be
//! decoded alone, which time cuts and dumps rely on) and boundaries stay
//! content-defined (so the same records dedupe wherever they appear).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::KafkaOptions;
use super::record::{Encoder, OffsetRuns, RecordRef, TimestampType};
pub use super::types::ChunkMeta;
use crate::error::{Error, Result};
use crate::repo::chunker::Chunker;

/// The group id of kvault's assign-only consumers: librdkafka requires one
/// to assign partitions, but it is never joined (no subscribe) and never
/// committed to, so the cluster never creates such a group.
pub const ASSIGN_ONLY_GROUP: &str = "kvault-assign-only-never-joined";

/// Memory librdkafka may use for prefetched records of the partitions read
/// at once (128 MiB), shared among them (2..32 MiB each).
pub const PREFETCH_BUDGET_KIB: usize = 128 * 1024;

/// One partition to read, `[start, end)`.
#[derive(Debug, Clone)]
pub struct ReadJob {
    /// Caller's label, echoed in events.
    pub tag: u64,
    /// Partition.
    pub partition: i32,
    /// First offset to read.
    pub start: i64,
    /// End (exclusive): the last stable offset when the snapshot began.
    pub end: i64,
}

/// What the reader reports.
#[derive(Debug)]
pub enum Event {
    /// A finished chunk of a partition, in order.
    Chunk {
        /// The job's tag.
        tag: u64,
        /// Encoded records.
        data: Bytes,
        /// Its metadata.
        meta: ChunkMeta,
    },
    /// A partition is finished.
    Done {
        /// The job's tag.
        tag: u64,
        /// Offsets of the records read.
        runs: OffsetRuns,
        /// Bytes of encoded records.
        bytes: u64,
    },
    /// Something the user should hear about.
    Warning(String),
}

struct Part {
    job: ReadJob,
    enc: Encoder,
    buf: Vec<u8>,
    /// (end position in buf, offset, timestamp) of each buffered record.
    recs: Vec<(usize, i64, i64)>,
    ts_base: i64,
    runs: OffsetRuns,
    bytes: u64,
    done: bool,
}

impl Part {
    fn cut(&mut self, chunker: &Chunker, all: bool) -> Option<(Bytes, ChunkMeta)> {
        if self.recs.is_empty() || (!all && self.buf.len() < chunker.max_size()) {
            return None;
        }
        let cut = if all {
            self.buf.len()
        } else {
            chunker.next_cut(&self.buf)
        };
        let idx = self.recs.partition_point(|r| r.0 < cut).min(self.recs.len() - 1);
        let taken: Vec<(usize, i64, i64)> = self.recs.drain(..=idx).collect();
        let (end_pos, _, last_ts) = *taken.last()?;
        let first_offset = taken.first().map_or(0, |r| r.1);
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for r in &taken {
            lo = lo.min(r.2);
            hi = hi.max(r.2);
        }
        let meta = ChunkMeta([first_offset, taken.len() as i64, lo, hi, self.ts_base]);
        self.ts_base = last_ts;
        let data = Bytes::copy_from_slice(self.buf.get(..end_pos).unwrap_or_default());
        self.buf.drain(..end_pos);
        for r in &mut self.recs {
            r.0 -= end_pos;
        }
        Some((data, meta))
    }
}

/// Reads the jobs (all partitions of one topic) to their ends, sending
/// events. Blocking: run it on a blocking thread.
///
/// # Errors
/// The client cannot be created, or the channel's receiver is gone.
pub fn read_topic(
    opts: &KafkaOptions,
    topic: &str,
    jobs: Vec<ReadJob>,
    chunker: &Chunker,
    tx: &mpsc::Sender<Event>,
) -> Result<()> {
    let send = |e: Event| tx.blocking_send(e).map_err(|_| Error::Interrupted);
    let mut parts: HashMap<i32, Part> = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for j in jobs {
        if j.start >= j.end {
            send(Event::Done {
                tag: j.tag,
                runs: OffsetRuns::default(),
                bytes: 0,
            })?;
            continue;
        }
        tpl.add_partition_offset(topic, j.partition, Offset::Offset(j.start))
            .map_err(|e| Error::Internal(e.to_string()))?;
        parts.insert(
            j.partition,
            Part {
                job: j,
                enc: Encoder::default(),
                buf: Vec::new(),
                recs: Vec::new(),
                ts_base: 0,
                runs: OffsetRuns::default(),
                bytes: 0,
                done: false,
            },
        );
    }
    if parts.is_empty() {
        return Ok(());
    }
    let queue_kib = (PREFETCH_BUDGET_KIB / parts.len().max(1)).clamp(2048, 32768);
    let mut cfg = opts.client_config();
    // librdkafka needs a group id to assign partitions; kvault never joins
    // (no subscribe) or commits with it, so no group is created.
    cfg.set("group.id", ASSIGN_ONLY_GROUP)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // Retention may delete records between reading the bounds and
        // fetching them: start at the new log start; the gap is recorded.
        .set("auto.offset.reset", "earliest")
        // Memory: librdkafka's queue limit is per partition, so share a
        // fixed budget among the partitions read at once.
        .set("fetch.max.bytes", "33554432")
        .set(
            "max.partition.fetch.bytes",
            (queue_kib.min(8192) * 1024).to_string(),
        )
        .set("queued.max.messages.kbytes", queue_kib.to_string());
    let consumer: BaseConsumer = cfg
        .create()
        .map_err(|e| Error::Invalid(format!("kafka client for {}: {e}", opts.brokers)))?;
    consumer
        .assign(&tpl)
        .map_err(|e| Error::Invalid(format!("assigning {topic} on {}: {e}", opts.brokers)))?;

    let mut remaining = parts.len();
    let mut last_progress = Instant::now();
    while remaining > 0 {
        let finished: Option<i32> = match consumer.poll(Duration::from_millis(500)) {
            None => None,
            Some(Ok(m)) => {
                last_progress = Instant::now();
                let p = m.partition();
                let off = m.offset();
                match parts.get_mut(&p) {
                    Some(part) if !part.done => {
                        if off >= part.job.end {
                            Some(p)
                        } else {
                            let (ts, tt) = match m.timestamp() {
                                Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
                                Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
                                Timestamp::NotAvailable => (-1, TimestampType::None),
                            };
                            let headers = m
                                .headers()
                                .map(|h| h.iter().map(|x| (x.key, x.value)).collect())
                                .unwrap_or_default();
                            let before = part.buf.len();
                            part.enc.encode(
                                &RecordRef {
                                    timestamp: ts,
                                    timestamp_type: tt,
                                    key: m.key(),
                                    value: m.payload(),
                                    headers,
                                },
                                &mut part.buf,
                            );
                            part.bytes += (part.buf.len() - before) as u64;
                            part.recs.push((part.buf.len(), off, ts));
                            part.runs.push(off);
                            if let Some((data, meta)) = part.cut(chunker, false) {
                                send(Event::Chunk {
                                    tag: part.job.tag,
                                    data,
                                    meta,
                                })?;
                            }
                            (off + 1 >= part.job.end).then_some(p)
                        }
                    }
                    _ => None,
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                last_progress = Instant::now();
                // EOF at the current last stable offset, which is at or past
                // the captured end (the rest were control or aborted records).
                Some(p)
            }
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition))) => {
                return Err(Error::NotFound(format!(
                    "topic {topic} (deleted during the snapshot?)"
                )));
            }
            Some(Err(e)) => {
                if last_progress.elapsed() > Duration::from_secs(20) {
                    return Err(Error::Invalid(format!(
                        "reading {topic} from {}: {e}",
                        opts.brokers
                    )));
                }
                None
            }
        };
        if let Some(p) = finished {
            if let Some(part) = parts.get_mut(&p) {
                if !part.done {
                    part.done = true;
                    remaining -= 1;
                    if let Some((data, meta)) = part.cut(chunker, true) {
                        send(Event::Chunk {
                            tag: part.job.tag,
                            data,
                            meta,
                        })?;
                    }
                    let first = part.runs.0.first().map(|r| r[0]);
                    if let Some(f) = first.filter(|f| *f > part.job.start) {
                        send(Event::Warning(format!(
                            "{topic}/{p}: offsets {}..{f} were deleted by retention while being read; recorded as a gap",
                            part.job.start
                        )))?;
                    }
                    send(Event::Done {
                        tag: part.job.tag,
                        runs: std::mem::take(&mut part.runs),
                        bytes: part.bytes,
                    })?;
                }
            }
        }
        if last_progress.elapsed() > Duration::from_secs(60) {
            return Err(Error::Invalid(format!(
                "reading {topic} from {}: no progress for 60 s ({remaining} partition(s) unfinished)",
                opts.brokers
            )));
        }
    }
    Ok(())
}
