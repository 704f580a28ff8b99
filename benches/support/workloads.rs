//! The benchmark workloads, generated deterministically (the same records
//! on every run and machine), so a topic produced by an earlier run can be
//! reused when it holds exactly the expected records:
//!
//! - W1: ~1 GB of JSON events of ~175 B (key `user-N`), 4 partitions;
//! - W2: ~1 GB of 4 KiB values that barely compress (a short JSON header and
//!   random bytes), 8 partitions;
//! - W3: 10 topics × 50 partitions × 2,000 W1 events (~175 MB);
//! - W4: 100 topics × 100 partitions × 3 records (10,000 partitions).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::kafka::{cfg, create};

/// One record: (partition, key, value).
pub type Rec = (i32, Vec<u8>, Vec<u8>);

/// A workload: topics, partitions each, and a generator of record `i` of a
/// topic.
#[derive(Clone, Copy)]
pub struct Workload {
    /// Short name (W1…).
    pub name: &'static str,
    /// Topic name prefix; topics are `{prefix}` or `{prefix}-{t}`.
    pub prefix: &'static str,
    /// Topics.
    pub topics: usize,
    /// Partitions per topic.
    pub partitions: i32,
    /// Records per topic.
    pub records: u64,
    /// What one record is.
    pub kind: Kind,
}

/// Record shapes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ~175 B JSON events.
    Events,
    /// 4 KiB values, barely compressible.
    Blobs,
}

pub const W1: Workload = Workload {
    name: "W1",
    prefix: "bench-w1-v1",
    topics: 1,
    partitions: 4,
    records: 5_750_000,
    kind: Kind::Events,
};
pub const W2: Workload = Workload {
    name: "W2",
    prefix: "bench-w2-v1",
    topics: 1,
    partitions: 8,
    records: 244_000,
    kind: Kind::Blobs,
};
pub const W3: Workload = Workload {
    name: "W3",
    prefix: "bench-w3-v1",
    topics: 10,
    partitions: 50,
    records: 100_000,
    kind: Kind::Events,
};
pub const W4: Workload = Workload {
    name: "W4",
    prefix: "bench-w4-v1",
    topics: 100,
    partitions: 100,
    records: 300,
    kind: Kind::Events,
};

fn mix(mut x: u64) -> u64 {
    // splitmix64: cheap, deterministic.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Workload {
    /// Topic names.
    pub fn topic_names(&self) -> Vec<String> {
        if self.topics == 1 {
            vec![self.prefix.to_string()]
        } else {
            (0..self.topics).map(|t| format!("{}-{t}", self.prefix)).collect()
        }
    }

    /// Record `i` of topic `t`.
    pub fn record(&self, t: usize, i: u64) -> Rec {
        let x = mix(i ^ ((t as u64) << 40) ^ 0x5EED);
        let partition = (i % self.partitions as u64) as i32;
        match self.kind {
            Kind::Events => {
                let user = x % 100_000;
                let key = format!("user-{user}").into_bytes();
                let value = format!(
                    "{{\"id\":{i},\"user\":\"u{user}\",\"session\":\"{:016x}\",\"event\":\"{}\",\"ts\":{},\"amount\":{}.{:02},\"country\":\"{}\",\"page\":\"/p/{}\"}}",
                    mix(x).rotate_left(17),
                    ["page_view", "click", "add_to_cart", "purchase", "refund"][(x % 5) as usize],
                    1_764_000_000_000u64 + i * 13,
                    (x >> 8) % 1000,
                    (x >> 20) % 100,
                    ["DE", "FR", "US", "JP", "BR", "IN"][((x >> 32) % 6) as usize],
                    (x >> 40) % 5000,
                )
                .into_bytes();
                (partition, key, value)
            }
            Kind::Blobs => {
                let key = format!("obj-{i}").into_bytes();
                let mut value = format!("{{\"obj\":{i},\"type\":\"image/webp\",\"len\":4032}}").into_bytes();
                value.resize(4096, 0);
                let mut h = blake3::Hasher::new();
                h.update(&i.to_le_bytes()).update(&(t as u64).to_le_bytes());
                h.finalize_xof().fill(&mut value[64..]);
                (partition, key, value)
            }
        }
    }

    /// Keys and values of the whole workload, in bytes.
    pub fn bytes(&self) -> u64 {
        (0..self.topics)
            .map(|t| {
                let step = (self.records / 1000).max(1);
                let sample: u64 = (0..self.records)
                    .step_by(step as usize)
                    .map(|i| {
                        let r = self.record(t, i);
                        (r.1.len() + r.2.len()) as u64
                    })
                    .sum();
                sample * self.records / self.records.div_ceil(step)
            })
            .sum()
    }

    /// Exact keys+values bytes (walks every record).
    pub fn exact_bytes(&self) -> u64 {
        (0..self.topics)
            .map(|t| {
                (0..self.records)
                    .map(|i| {
                        let r = self.record(t, i);
                        (r.1.len() + r.2.len()) as u64
                    })
                    .sum::<u64>()
            })
            .sum()
    }

    /// Creates and fills the topics unless they already hold exactly the
    /// workload (then nothing is produced).
    pub async fn ensure(&self, b: &str) {
        let c: BaseConsumer = cfg(b).create().unwrap();
        let md = c.fetch_metadata(None, Duration::from_secs(30)).unwrap();
        for (t, name) in self.topic_names().into_iter().enumerate() {
            let have = md
                .topics()
                .iter()
                .find(|x| x.name() == name)
                .map(|x| x.partitions().len() as i32);
            if have == Some(self.partitions) {
                let total: i64 = (0..self.partitions)
                    .map(|p| {
                        let (lo, hi) = c.fetch_watermarks(&name, p, Duration::from_secs(30)).unwrap();
                        hi - lo
                    })
                    .sum();
                if total == self.records as i64 {
                    continue;
                }
                panic!(
                    "topic {name} exists with {total} records, not {}: delete it",
                    self.records
                );
            }
            create(b, &name, self.partitions).await;
            let t0 = Instant::now();
            self.produce(b, t, &name, 0..self.records);
            println!(
                "produced {name}: {} records in {:.1} s",
                self.records,
                t0.elapsed().as_secs_f64()
            );
        }
    }

    /// Produces records `range` of topic `t` into `name`.
    pub fn produce(&self, b: &str, t: usize, name: &str, range: std::ops::Range<u64>) {
        let p: ThreadedProducer<DefaultProducerContext> = cfg(b)
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.kbytes", "262144")
            .create()
            .unwrap();
        for i in range {
            let (part, key, value) = self.record(t, i);
            let mut rec = BaseRecord::to(name).partition(part).key(&key).payload(&value);
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
        p.flush(Duration::from_secs(600)).unwrap();
    }
}
