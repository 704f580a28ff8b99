//! Producing restored records: an idempotent producer whose delivery
//! reports are checked, record by record, against the target offset the
//! restore expects (`start + index`). A mismatch (someone else writing to
//! the partition, a lost record) is an error, never assumed away.
//!
//! The user's `-X` properties win over kvault's producer defaults; only
//! `enable.idempotence=true` is required (exactly once). An optional
//! [`Throttle`] caps records and bytes per second.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::KafkaOptions;
use crate::error::{Error, Result};
use crate::image::record::{Record, TimestampType};

/// Checks each delivery report against the offset it must land at (the
/// opaque of each record; the partition is fixed per record, so the report's
/// partition is the one it was sent to).
#[derive(Debug, Default)]
pub struct Checked {
    delivered: AtomicU64,
    problems: Mutex<Vec<String>>,
    tokens: Option<std::sync::Arc<super::auth::Tokens>>,
}

/// Caps a restore's rate (`--max-records-per-sec`, `--max-bytes-per-sec`):
/// before each record, waits until the records and bytes sent so far are
/// within the rates since the first one.
#[derive(Debug, Clone)]
pub struct Throttle {
    records_per_sec: Option<u64>,
    bytes_per_sec: Option<u64>,
    since: Option<Instant>,
    records: u64,
    bytes: u64,
}

impl Throttle {
    /// A throttle; `None` means unlimited.
    pub fn new(records_per_sec: Option<u64>, bytes_per_sec: Option<u64>) -> Throttle {
        Throttle {
            records_per_sec: records_per_sec.filter(|r| *r > 0),
            bytes_per_sec: bytes_per_sec.filter(|r| *r > 0),
            since: None,
            records: 0,
            bytes: 0,
        }
    }

    /// How long to wait before sending a record of `bytes` bytes.
    pub fn delay(&mut self, bytes: u64, now: Instant) -> Duration {
        if self.records_per_sec.is_none() && self.bytes_per_sec.is_none() {
            return Duration::ZERO;
        }
        let since = *self.since.get_or_insert(now);
        let due = |n: u64, rate: Option<u64>| rate.map_or(0.0, |r| n as f64 / r as f64);
        let wait_until = due(self.records, self.records_per_sec).max(due(self.bytes, self.bytes_per_sec));
        self.records += 1;
        self.bytes += bytes;
        let elapsed = now.duration_since(since).as_secs_f64();
        Duration::from_secs_f64((wait_until - elapsed).max(0.0))
    }
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

impl ClientContext for Checked {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> std::result::Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        super::auth::refresh(self.tokens.as_deref())
    }
}

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
    throttle: Throttle,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sink({} sent)", self.sent)
    }
}

/// kvault's producer defaults for a restore: idempotent (in order, no
/// duplicates on retries), acks from all replicas, lz4, 1 MB batches, a
/// 64 MiB queue. The user's `-X` properties override them.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "20"),
    ("batch.size", "1000000"),
    ("compression.type", "lz4"),
    ("queue.buffering.max.kbytes", "65536"),
];

/// The producer config of a restore: [`PRODUCER_DEFAULTS`], then the
/// user's properties.
///
/// # Errors
/// `enable.idempotence` turned off: a restore needs it to be exactly once.
pub fn producer_config(opts: &KafkaOptions) -> Result<rdkafka::ClientConfig> {
    let c = opts.config_with(PRODUCER_DEFAULTS);
    if c.get("enable.idempotence").is_some_and(|v| v != "true") {
        return Err(Error::Refused(crate::error::Refusal::IdempotenceOff));
    }
    Ok(c)
}

impl Sink {
    /// An idempotent producer with [`producer_config`], unthrottled.
    ///
    /// # Errors
    /// Invalid properties.
    pub fn new(opts: &KafkaOptions) -> Result<Sink> {
        Self::with_throttle(opts, Throttle::new(None, None))
    }

    /// An idempotent producer with [`producer_config`] and a rate cap.
    ///
    /// # Errors
    /// Invalid properties.
    pub fn with_throttle(opts: &KafkaOptions, throttle: Throttle) -> Result<Sink> {
        let checked = Checked {
            tokens: opts.tokens.clone(),
            ..Default::default()
        };
        let producer = super::auth::create(&producer_config(opts)?, checked, opts, "kafka producer")?;
        Ok(Sink {
            producer,
            sent: 0,
            throttle,
        })
    }

    /// A transactional producer ([`producer_config`] with
    /// `transactional.id` = `id`), its transactions initialized (which
    /// aborts one a killed run with the same id left open).
    ///
    /// # Errors
    /// Invalid properties; the coordinator not answering.
    pub fn transactional(opts: &KafkaOptions, id: &str) -> Result<Sink> {
        let checked = Checked {
            tokens: opts.tokens.clone(),
            ..Default::default()
        };
        let mut c = producer_config(opts)?;
        // Its transactions are a record or a few placeholders each, flushed
        // at once: waiting to fill a batch only delays them.
        c.set("transactional.id", id).set("linger.ms", "0");
        let producer: ThreadedProducer<Checked> = super::auth::create(&c, checked, opts, "kafka producer")?;
        producer
            .init_transactions(opts.retry_timeout())
            .map_err(|e| txn_error("initializing transactions", &e))?;
        Ok(Sink {
            producer,
            sent: 0,
            throttle: Throttle::new(None, None),
        })
    }

    /// Begins a transaction (a [`Sink::transactional`] one).
    ///
    /// # Errors
    /// The producer's transaction state refusing it.
    pub fn begin(&self) -> Result<()> {
        self.producer
            .begin_transaction()
            .map_err(|e| txn_error("beginning a transaction", &e))
    }

    /// Ends the transaction: every record of it confirmed, then committed
    /// or aborted. The markers are written after this returns.
    ///
    /// # Errors
    /// A delivery failed or landed elsewhere; the coordinator refusing.
    pub fn end(&self, commit: bool, timeout: Duration) -> Result<()> {
        // Aborting drops what is not sent yet: every record first.
        self.flush_within(timeout)?;
        if commit {
            self.producer.commit_transaction(timeout)
        } else {
            self.producer.abort_transaction(timeout)
        }
        .map_err(|e| txn_error(if commit { "committing" } else { "aborting" }, &e))
    }

    /// Queues a record that must land at `expected_offset`.
    ///
    /// # Errors
    /// A record librdkafka refuses (e.g. too large for the target).
    pub fn send(&mut self, topic: &str, partition: i32, r: &Record, expected_offset: i64) -> Result<()> {
        let expected = usize::try_from(expected_offset)
            .map_err(|_| Error::bug(format!("negative target offset {expected_offset}")))?;
        let size = r.key.as_ref().map_or(0, Vec::len)
            + r.value.as_ref().map_or(0, Vec::len)
            + r.headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
        let wait = self.throttle.delay(size as u64, Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
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
                Err((e, _)) => {
                    return Err(Error::Kafka {
                        op: format!("producing to {topic}/{partition}"),
                        detail: e.to_string(),
                        code: e.rdkafka_error_code().map(|c| format!("{c:?}")),
                        transient: false,
                    });
                }
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
        self.flush_within(Duration::from_secs(300))
    }

    /// [`Sink::flush`] with a deadline.
    ///
    /// # Errors
    /// As [`Sink::flush`].
    pub fn flush_within(&self, timeout: Duration) -> Result<u64> {
        // rdkafka's own flush waits on delivery events the polling thread
        // may serve first, then sleeps up to 100 ms: an offset-exact restore
        // flushes once per transaction. Ask without waiting, every ms.
        let deadline = Instant::now() + timeout;
        loop {
            match self.producer.flush(Duration::ZERO) {
                Ok(()) => break,
                Err(rdkafka::error::KafkaError::Flush(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                )) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    return Err(Error::Kafka {
                        op: "flushing restored records".into(),
                        detail: e.to_string(),
                        code: e.rdkafka_error_code().map(|c| format!("{c:?}")),
                        transient: true,
                    });
                }
            }
        }
        let ctx = self.producer.context();
        let problems = ctx
            .problems
            .lock()
            .map_err(|_| Error::worker("a delivery callback", "it panicked holding the delivery state"))?;
        if let Some(p) = problems.first() {
            return Err(Error::Kafka {
                op: "restore not confirmed by the target".into(),
                detail: p.clone(),
                code: None,
                transient: false,
            });
        }
        let delivered = ctx.delivered.load(Ordering::Acquire);
        if delivered != self.sent {
            return Err(Error::Kafka {
                op: "restore not confirmed by the target".into(),
                detail: format!("{} records sent but {delivered} confirmed", self.sent),
                code: None,
                transient: false,
            });
        }
        Ok(delivered)
    }
}

/// A failed transactional call as a Kafka error.
fn txn_error(op: &str, e: &rdkafka::error::KafkaError) -> Error {
    Error::Kafka {
        op: format!("{op} (restore transaction)"),
        detail: e.to_string(),
        code: e.rdkafka_error_code().map(|c| format!("{c:?}")),
        transient: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_properties_win_over_kvaults_producer_defaults() {
        let o = KafkaOptions::new("b:1")
            .with_property("linger.ms=5")
            .and_then(|o| o.with_property("compression.type=zstd"))
            .unwrap();
        let c = producer_config(&o).unwrap();
        assert_eq!(c.get("linger.ms"), Some("5"));
        assert_eq!(c.get("compression.type"), Some("zstd"));
        assert_eq!(c.get("batch.size"), Some("1000000"), "defaults fill the rest");
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        let off = KafkaOptions::new("b:1")
            .with_property("enable.idempotence=false")
            .unwrap();
        assert!(producer_config(&off).is_err(), "exactly once needs idempotence");
    }

    #[test]
    fn the_throttle_spaces_records_and_bytes_to_their_rates() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Some(100), None);
        // The first record goes at once; the 51st is due 0.5 s after it.
        for _ in 0..50 {
            let _ = t.delay(10, t0);
        }
        let d = t.delay(10, t0);
        assert!((d.as_secs_f64() - 0.5).abs() < 1e-9, "{d:?}");
        let mut b = Throttle::new(None, Some(1000));
        assert_eq!(b.delay(500, t0), Duration::ZERO);
        assert_eq!(b.delay(500, t0), Duration::from_millis(500));
        assert_eq!(b.delay(1, t0 + Duration::from_secs(5)), Duration::ZERO);
        let mut none = Throttle::new(None, Some(0));
        assert_eq!(none.delay(1 << 30, t0), Duration::ZERO);
    }
}
