//! Helpers for tests against a real Kafka broker (`scripts/kafka start
//! source`, which `scripts/test` runs): topics, producing every record
//! shape, transactions, group commits, DeleteRecords.

use std::time::Duration;

use kvault::image::record::{Record, TimestampType};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The source broker, or a loud failure saying how to start one.
pub fn source() -> String {
    std::env::var("KVAULT_KAFKA_SOURCE").unwrap_or_else(|_| {
        panic!(
            "KVAULT_KAFKA_SOURCE is not set: these tests need a Kafka broker. Run `scripts/test`, or \
             `eval \"$(scripts/kafka start source)\"` before `cargo test`."
        )
    })
}

pub fn config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers).set("log_level", "3");
    c
}

/// A timestamp near now (ms), so broker retention keeps the record.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A topic name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", kvault::Id::random().unwrap().short())
}

/// Creates a topic and waits until it is usable.
pub async fn create_topic(brokers: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = config(brokers).create().unwrap();
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    // A request lost to a loaded broker is sent again; the topic it may
    // have made meanwhile counts as made.
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for attempt in 1.. {
        match admin.create_topics([&t], &opts).await {
            Ok(r) => {
                for x in r {
                    if let Err((_, e)) = x {
                        assert_eq!(e, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists, "{name}");
                    }
                }
                break;
            }
            Err(e) if attempt < 3 => eprintln!("creating {name}: {e}; again"),
            Err(e) => panic!("creating {name}: {e}"),
        }
    }
    // Metadata propagates asynchronously.
    let c: BaseConsumer = config(brokers).create().unwrap();
    for _ in 0..50 {
        if let Ok(md) = c.fetch_metadata(Some(name), Duration::from_secs(5)) {
            if md
                .topics()
                .first()
                .is_some_and(|t| t.error().is_none() && t.partitions().len() == partitions as usize)
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("topic {name} did not appear");
}

/// Produces records (partition, record) and waits for every delivery.
pub fn produce(brokers: &str, topic: &str, records: &[(i32, Record)]) {
    let p: ThreadedProducer<DefaultProducerContext> = config(brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    send_all(&p, topic, records);
    p.flush(Duration::from_secs(30)).unwrap();
}

pub fn send_all(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, records: &[(i32, Record)]) {
    for (part, r) in records {
        let mut h = OwnedHeaders::new();
        for (k, v) in &r.headers {
            h = h.insert(Header {
                key: k,
                value: v.as_ref(),
            });
        }
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(*part).headers(h);
        if r.timestamp >= 0 {
            rec = rec.timestamp(r.timestamp);
        }
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        let mut rec = rec;
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert!(
                        matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "{e}"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                    rec = back;
                }
            }
        }
    }
}

/// Produces records in one transaction, committed or aborted.
pub fn produce_transaction(brokers: &str, topic: &str, records: &[(i32, Record)], commit: bool) {
    let id = unique("tx");
    let p: ThreadedProducer<DefaultProducerContext> =
        config(brokers).set("transactional.id", &id).create().unwrap();
    p.init_transactions(Duration::from_secs(30)).unwrap();
    p.begin_transaction().unwrap();
    send_all(&p, topic, records);
    p.flush(Duration::from_secs(30)).unwrap();
    if commit {
        p.commit_transaction(Duration::from_secs(30)).unwrap();
    } else {
        p.abort_transaction(Duration::from_secs(30)).unwrap();
    }
}

/// Commits offsets (with metadata) for a group without joining it.
pub fn commit_group(brokers: &str, group: &str, offsets: &[(&str, i32, i64, &str)]) {
    let c: BaseConsumer = config(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for (t, p, o, m) in offsets {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o)).unwrap();
        tpl.find_partition(t, *p).unwrap().set_metadata(*m);
    }
    c.commit(&tpl, CommitMode::Sync).unwrap();
}

/// Deletes records below `offset` (moves the log start).
pub async fn delete_records(brokers: &str, topic: &str, partition: i32, offset: i64) {
    let admin: AdminClient<DefaultClientContext> = config(brokers).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .unwrap();
    admin.delete_records(&tpl, &AdminOptions::new()).await.unwrap();
}

/// A record with a CreateTime timestamp.
pub fn rec(ts: i64, key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&str, Option<&[u8]>)]) -> Record {
    Record {
        timestamp: ts,
        timestamp_type: TimestampType::CreateTime,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
            .collect(),
    }
}

/// (log start, end) of a partition, as any client sees it.
pub fn watermarks(brokers: &str, topic: &str, partition: i32) -> (i64, i64) {
    let c: BaseConsumer = config(brokers).create().unwrap();
    c.fetch_watermarks(topic, partition, Duration::from_secs(10))
        .unwrap()
}

/// Counts the records a plain consumer reads from a partition.
pub fn count_records(brokers: &str, topic: &str, partition: i32) -> usize {
    let (lo, hi) = watermarks(brokers, topic, partition);
    let c: BaseConsumer = config(brokers)
        .set("group.id", "kvault-test-counter")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(lo))
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut n = 0;
    if lo == hi {
        return 0;
    }
    loop {
        match c.poll(Duration::from_secs(10)) {
            Some(Ok(_)) => n += 1,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => return n,
            // A connection lost under load is librdkafka's to re-establish.
            Some(Err(e)) if is_connection_event(&e) => eprintln!("count_records: {e}"),
            Some(Err(e)) => panic!("{e}"),
        }
    }
}

/// A client-wide event of a connection lost, which librdkafka retries itself.
pub fn is_connection_event(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(C::AllBrokersDown | C::BrokerTransportFailure | C::OperationTimedOut)
    )
}

/// Deletes a topic.
pub async fn delete_topic(brokers: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> = config(brokers).create().unwrap();
    for r in admin.delete_topics(&[name], &AdminOptions::new()).await.unwrap() {
        r.unwrap();
    }
}

/// (log start, end) of a partition, or `None` while the topic does not exist.
pub fn watermarks_if_exists(brokers: &str, topic: &str, partition: i32) -> Option<(i64, i64)> {
    let c: BaseConsumer = config(brokers).create().unwrap();
    c.fetch_watermarks(topic, partition, Duration::from_secs(2)).ok()
}

/// Topic configs under which the broker's cleaner compacts within seconds
/// (`scripts/kafka` runs it every 500 ms): small segments, any dirt.
pub const COMPACT_SOON: [(&str, &str); 5] = [
    ("cleanup.policy", "compact"),
    ("segment.ms", "200"),
    ("min.cleanable.dirty.ratio", "0.001"),
    ("min.compaction.lag.ms", "0"),
    ("delete.retention.ms", "100"),
];

/// Produces `n` keyed JSON-event records round-robin over `partitions`,
/// with timestamps one millisecond apart ending a minute ago.
pub fn produce_events(brokers: &str, topic: &str, partitions: i32, n: i64) {
    let base = now_ms() - 60_000 - n;
    let recs: Vec<(i32, Record)> = (0..n)
        .map(|i| {
            let value = crate::common::json_events(1, i as u64);
            (
                (i % i64::from(partitions)) as i32,
                rec(base + i, Some(format!("k{i}").as_bytes()), Some(&value), &[]),
            )
        })
        .collect();
    produce(brokers, topic, &recs);
}

/// Deletes a consumer group (it must have no active members).
pub async fn delete_group(brokers: &str, group: &str) {
    let admin: AdminClient<DefaultClientContext> = config(brokers).create().unwrap();
    let r = admin.delete_groups(&[group], &AdminOptions::new()).await.unwrap();
    for x in r {
        x.unwrap();
    }
}
