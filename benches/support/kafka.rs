//! Kafka helpers shared by the snapshot and restore benches: client
//! settings, topic creation, the benchmark's records and a producer.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// One benchmark record: (partition, key, value, timestamp).
pub type Rec = (i32, String, Vec<u8>, i64);

pub fn cfg(b: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b).set("log_level", "3");
    c
}

pub async fn create(b: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = cfg(b).create().unwrap();
    let t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for r in admin.create_topics([&t], &AdminOptions::new()).await.unwrap() {
        r.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// The benchmark's records, in memory: (partition, key, value, timestamp).
pub fn events(partitions: i32, bytes: usize) -> Vec<Rec> {
    let data = super::common::json_events(64 << 20, 3);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (mut out, mut sent, mut n) = (Vec::new(), 0usize, 0u64);
    'outer: for round in 0.. {
        for line in data.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            if sent >= bytes {
                break 'outer;
            }
            let key = format!("user-{}", (n * 2_654_435_761) % 100_000);
            let mut value = line.to_vec();
            value.extend_from_slice(format!(",\"r\":{round}").as_bytes());
            sent += key.len() + value.len();
            out.push((
                (n % partitions as u64) as i32,
                key,
                value,
                now - 600_000 + (n / 1000) as i64,
            ));
            n += 1;
        }
    }
    out
}

/// Produces the records; `sink_settings` uses kvault's producer settings.
pub fn produce(b: &str, topic: &str, recs: &[Rec], sink_settings: bool) -> f64 {
    let mut c = cfg(b);
    if sink_settings {
        for (k, v) in kvault::kafka::sink::PRODUCER_DEFAULTS {
            c.set(*k, *v);
        }
    } else {
        c.set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.kbytes", "262144");
    }
    let p: ThreadedProducer<DefaultProducerContext> = c.create().unwrap();
    let t0 = Instant::now();
    for (part, key, value, ts) in recs {
        let mut rec = BaseRecord::to(topic)
            .partition(*part)
            .key(key.as_bytes())
            .payload(value.as_slice())
            .timestamp(*ts);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    std::thread::sleep(Duration::from_millis(2));
                    rec = back;
                }
            }
        }
    }
    p.flush(Duration::from_secs(300)).unwrap();
    t0.elapsed().as_secs_f64()
}
