//! Producing restored records: an idempotent producer whose delivery
//! reports are checked, record by record, against the target offset the
//! restore expects (`start + index`). A mismatch (someone else writing to
//! the partition, a lost record) is an error, never assumed away.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::KafkaOptions;
use super::record::{Record, TimestampType};
use crate::error::{Error, Result};

#[derive(Debug, Default)]
struct State {
    delivered: u64,
    problems: Vec<String>,
}

/// Checks each delivery report against the offset it must land at.
#[derive(Debug, Default)]
pub struct Checked {
    state: Mutex<State>,
}

impl ClientContext for Checked {}

impl ProducerContext for Checked {
    type DeliveryOpaque = Box<(i32, i64)>;

    fn delivery(&self, r: &DeliveryResult<'_>, expected: Self::DeliveryOpaque) {
        let Ok(mut st) = self.state.lock() else { return };
        match r {
            Ok(m) if m.offset() == expected.1 && m.partition() == expected.0 => st.delivered += 1,
            Ok(m) => {
                if st.problems.len() < 10 {
                    st.problems.push(format!(
                        "record for {}/{} landed at offset {} instead of {} (is something else writing to it?)",
                        m.topic(),
                        expected.0,
                        m.offset(),
                        expected.1
                    ));
                }
            }
            Err((e, m)) => {
                if st.problems.len() < 10 {
                    st.problems
                        .push(format!("delivery to {}/{} failed: {e}", m.topic(), expected.0));
                }
            }
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

impl Sink {
    /// An idempotent producer (in order, no duplicates on retries).
    ///
    /// # Errors
    /// Invalid properties.
    pub fn new(opts: &KafkaOptions) -> Result<Sink> {
        let mut c = opts.client_config();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.kbytes", "65536");
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
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_ref(),
            });
        }
        let mut rec: BaseRecord<'_, [u8], [u8], Box<(i32, i64)>> =
            BaseRecord::with_opaque_to(topic, Box::new((partition, expected_offset)))
                .partition(partition)
                .headers(headers);
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
        let st = self
            .producer
            .context()
            .state
            .lock()
            .map_err(|_| Error::Internal("delivery state poisoned".into()))?;
        if let Some(p) = st.problems.first() {
            return Err(Error::Invalid(format!(
                "restore not confirmed by the target: {p}"
            )));
        }
        if st.delivered != self.sent {
            return Err(Error::Invalid(format!(
                "{} records sent but {} confirmed",
                self.sent, st.delivered
            )));
        }
        Ok(st.delivered)
    }
}
