//! Producing restored records: an idempotent producer whose delivery
//! reports are checked, record by record, against the target offset the
//! restore expects (`start + index`). A mismatch (someone else writing to
//! the partition, a lost record) is an error, never assumed away.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::KafkaOptions;
use super::record::{Record, TimestampType};
use crate::error::{Error, Result};

/// Checks each delivery report against the offset it must land at (the
/// opaque of each record; the partition is fixed per record, so the report's
/// partition is the one it was sent to).
#[derive(Debug, Default)]
pub struct Checked {
    delivered: AtomicU64,
    problems: Mutex<Vec<String>>,
}

impl Checked {
    fn problem(&self, p: String) {
        if let Ok(mut ps) = self.problems.lock() {
            if ps.len() < 10 {
                ps.push(p);
            }
        }
    }
}

impl ClientContext for Checked {}

impl ProducerContext for Checked {
    type DeliveryOpaque = usize;

    fn delivery(&self, r: &DeliveryResult<'_>, expected: usize) {
        match r {
            Ok(m) if m.offset() as usize == expected && m.offset() >= 0 => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Ok(m) => self.problem(format!(
                "record for {}/{} landed at offset {} instead of {expected} (is something else writing to it?)",
                m.topic(),
                m.partition(),
                m.offset(),
            )),
            Err((e, m)) => self.problem(format!("delivery to {}/{} failed: {e}", m.topic(), m.partition())),
        }
    }
}

/// A producer for one restore.
pub struct Sink {
    producer: ThreadedProducer<Checked>,
    sent: u64,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sink({} sent)", self.sent)
    }
}

/// The producer settings of a restore: idempotent (in order, no duplicates
/// on retries), acks from all replicas, lz4, 1 MB batches, a 64 MiB queue.
/// The restore bench's raw-produce baseline uses them too.
pub fn producer_settings(c: &mut rdkafka::ClientConfig) -> &mut rdkafka::ClientConfig {
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.kbytes", "65536")
}

impl Sink {
    /// An idempotent producer with [`producer_settings`].
    ///
    /// # Errors
    /// Invalid properties.
    pub fn new(opts: &KafkaOptions) -> Result<Sink> {
        let mut c = opts.client_config();
        producer_settings(&mut c);
        let producer = c
            .create_with_context(Checked::default())
            .map_err(|e| Error::Invalid(format!("kafka producer for {}: {e}", opts.brokers)))?;
        Ok(Sink { producer, sent: 0 })
    }

    /// Queues a record that must land at `expected_offset`.
    ///
    /// # Errors
    /// A record librdkafka refuses (e.g. too large for the target).
    pub fn send(&mut self, topic: &str, partition: i32, r: &Record, expected_offset: i64) -> Result<()> {
        let expected = usize::try_from(expected_offset)
            .map_err(|_| Error::Internal(format!("negative target offset {expected_offset}")))?;
        let mut rec: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, expected).partition(partition);
        if !r.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: v.as_ref(),
                });
            }
            rec = rec.headers(headers);
        }
        // CreateTime is preserved; LogAppendTime topics stamp their own time.
        if r.timestamp_type != TimestampType::None {
            rec = rec.timestamp(r.timestamp);
        }
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        loop {
            match self.producer.send(rec) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    std::thread::sleep(Duration::from_millis(5));
                    rec = back;
                }
                Err((e, _)) => return Err(Error::Invalid(format!("producing to {topic}/{partition}: {e}"))),
            }
        }
        self.sent += 1;
        Ok(())
    }

    /// Waits for every delivery report and checks them all.
    ///
    /// # Errors
    /// Any failed or misplaced delivery.
    pub fn flush(&self) -> Result<u64> {
        self.producer
            .flush(Duration::from_secs(300))
            .map_err(|e| Error::Invalid(format!("flushing restored records: {e}")))?;
        let ctx = self.producer.context();
        let problems = ctx
            .problems
            .lock()
            .map_err(|_| Error::Internal("delivery state poisoned".into()))?;
        if let Some(p) = problems.first() {
            return Err(Error::Invalid(format!(
                "restore not confirmed by the target: {p}"
            )));
        }
        let delivered = ctx.delivered.load(Ordering::Acquire);
        if delivered != self.sent {
            return Err(Error::Invalid(format!(
                "{} records sent but {delivered} confirmed",
                self.sent
            )));
        }
        Ok(delivered)
    }
}
