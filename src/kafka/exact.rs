//! Writing partitions with their source's offsets (`restore --offsets
//! exact`): the steps of an [`image::layout::Layout`](crate::image::layout)
//! carried out with two producers, an idempotent one for plain records and
//! a transactional one whose commit and abort markers take the gaps, every
//! delivery checked against its source offset.
//!
//! Facts this relies on (checked on a real broker,
//! `tests/integration/kafka_exact.rs`): a transaction's markers are written
//! after `commit_transaction`/`abort_transaction` return, so before the next
//! record the partition's high watermark is awaited past the marker;
//! aborting drops records not sent yet, so a transaction's records are
//! flushed first.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::KafkaOptions;
use super::sink::Sink;
use crate::error::{Error, Result};
use crate::image::record::{Record, TimestampType};
use crate::image::types::Step;

/// The key of every placeholder (compacted topics take no null key).
pub const PLACEHOLDER_KEY: &[u8] = b"\0kvault-placeholder";

/// The header every placeholder carries.
pub const PLACEHOLDER_HEADER: &str = "kvault-placeholder";

/// The producers and the watermark reader of an offset-exact restore.
pub struct ExactWriter {
    plain: Sink,
    tx: Sink,
    watch: BaseConsumer<super::admin::Context>,
    timeout: Duration,
}

impl std::fmt::Debug for ExactWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExactWriter({:?}, {:?})", self.plain, self.tx)
    }
}

impl ExactWriter {
    /// Both producers (the transactional one with `transactional_id`, the
    /// same on a rerun, so a transaction a killed run left open is aborted).
    ///
    /// # Errors
    /// Invalid properties; the transaction coordinator not answering.
    pub fn new(opts: &KafkaOptions, plain: Sink, transactional_id: &str) -> Result<ExactWriter> {
        let tx = Sink::transactional(opts, transactional_id)?;
        let mut c = opts.client_config();
        c.set("enable.auto.commit", "false")
            .set("isolation.level", "read_uncommitted");
        let watch: BaseConsumer<super::admin::Context> =
            super::auth::create(&c, super::admin::Context::new(opts), opts, "kafka client")?;
        Ok(ExactWriter {
            plain,
            tx,
            watch,
            timeout: opts.retry_timeout(),
        })
    }

    /// Writes `topic/partition` by `steps`; hand it the records in order.
    pub fn partition(&mut self, topic: &str, partition: i32, steps: VecDeque<Step>) -> ExactPartition<'_> {
        ExactPartition {
            w: self,
            topic: topic.to_string(),
            partition,
            steps,
            last_ts: None,
        }
    }

    /// Waits for every plain delivery.
    ///
    /// # Errors
    /// As [`Sink::flush`].
    pub fn flush(&self) -> Result<u64> {
        self.plain.flush()
    }
}

/// One partition being written.
pub struct ExactPartition<'a> {
    w: &'a mut ExactWriter,
    topic: String,
    partition: i32,
    steps: VecDeque<Step>,
    /// The timestamp of the last record written (placeholders take it).
    last_ts: Option<i64>,
}

impl ExactPartition<'_> {
    /// Writes the record at source offset `offset`, after the steps before
    /// it.
    ///
    /// # Errors
    /// A record where the layout has none (a bug); the producers' errors.
    pub fn record(&mut self, offset: i64, r: &Record) -> Result<()> {
        self.steps_before(offset, r.timestamp)?;
        let step = self.steps.front().copied();
        match step {
            Some(Step::Records { first, count }) if (first..first + count as i64).contains(&offset) => {
                self.w.plain.send(&self.topic, self.partition, r, offset)?;
                if offset + 1 == first + count as i64 {
                    self.steps.pop_front();
                }
            }
            Some(Step::Commit {
                offset: at,
                placeholder: false,
            }) if at == offset => {
                self.transaction(&[(r.clone(), offset)], true, offset + 2)?;
                self.steps.pop_front();
            }
            other => {
                return Err(Error::bug(format!(
                    "{}/{}: record at {offset}, but the layout's next step is {other:?}",
                    self.topic, self.partition
                )));
            }
        }
        self.last_ts = Some(r.timestamp);
        Ok(())
    }

    /// The steps left after the last record (gaps at the end). The plain
    /// records still in flight are confirmed by [`ExactWriter::flush`]
    /// (not here: the next partition's records keep the pipeline full).
    ///
    /// # Errors
    /// Records the layout wanted and never got; the producers' errors.
    pub fn finish(mut self) -> Result<()> {
        let ts = self.last_ts.unwrap_or_else(now_ms);
        self.steps_before(i64::MAX, ts)?;
        if let Some(s) = self.steps.front() {
            return Err(Error::bug(format!(
                "{}/{}: the restore ended before the layout's step {s:?}",
                self.topic, self.partition
            )));
        }
        Ok(())
    }

    /// Runs the steps that hold no record of the selection and end at or
    /// before `offset` (placeholders below the log start, aborted gaps).
    fn steps_before(&mut self, offset: i64, next_ts: i64) -> Result<()> {
        while let Some(step) = self.steps.front().copied() {
            let holds_records = matches!(
                step,
                Step::Records { .. }
                    | Step::Commit {
                        placeholder: false,
                        ..
                    }
            );
            if holds_records || step.end() > offset {
                break;
            }
            let ts = self.last_ts.unwrap_or(next_ts);
            match step {
                Step::Below { first, count } | Step::Erased { first, count } => {
                    for o in first..first + count as i64 {
                        self.w
                            .plain
                            .send(&self.topic, self.partition, &placeholder(ts), o)?;
                    }
                }
                Step::Abort { first, count } => {
                    let ps: Vec<(Record, i64)> = (first..first + count as i64)
                        .map(|o| (placeholder(ts), o))
                        .collect();
                    self.transaction(&ps, false, step.end())?;
                }
                Step::Commit {
                    offset: at,
                    placeholder: true,
                } => self.transaction(&[(placeholder(ts), at)], true, step.end())?,
                Step::Records { .. } | Step::Commit { .. } => break,
            }
            self.steps.pop_front();
        }
        Ok(())
    }

    /// Writes `records` (each at its offset) in one transaction that
    /// commits or aborts, then waits until its marker is in the partition
    /// (the high watermark at `end`): the plain records before it first.
    fn transaction(&mut self, records: &[(Record, i64)], commit: bool, end: i64) -> Result<()> {
        self.w.plain.flush()?;
        self.w.tx.begin()?;
        for (r, o) in records {
            self.w.tx.send(&self.topic, self.partition, r, *o)?;
        }
        self.w.tx.end(commit, self.w.timeout)?;
        self.wait_end(end)
    }

    /// Waits until the partition's high watermark is `end`.
    fn wait_end(&self, end: i64) -> Result<()> {
        let deadline = Instant::now() + self.w.timeout;
        let mut high = -1;
        while Instant::now() < deadline {
            let (_, h) = self
                .w
                .watch
                .fetch_watermarks(&self.topic, self.partition, self.w.timeout)
                .map_err(|e| Error::Kafka {
                    op: format!("watermarks of {}/{}", self.topic, self.partition),
                    detail: e.to_string(),
                    code: e.rdkafka_error_code().map(|c| format!("{c:?}")),
                    transient: true,
                })?;
            high = h;
            if h == end {
                return Ok(());
            }
            if h > end {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Err(Error::Kafka {
            op: format!(
                "writing {}/{} with its source offsets",
                self.topic, self.partition
            ),
            detail: format!("its end is {high}, expected {end} (is something else writing to it?)"),
            code: None,
            transient: false,
        })
    }
}

/// A placeholder record stamped `ts`.
fn placeholder(ts: i64) -> Record {
    Record {
        timestamp: ts,
        timestamp_type: TimestampType::CreateTime,
        key: Some(PLACEHOLDER_KEY.to_vec()),
        value: None,
        headers: vec![(PLACEHOLDER_HEADER.to_string(), None)],
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
