//! Fills a demo topic for `scripts/demo`: JSON order events with keys and a
//! header, then commits an offset for a consumer group (as if a consumer had
//! read part of the topic).
//!
//! `cargo run --example demo_fill -- BROKERS TOPIC RECORDS [GROUP OFFSET]`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (brokers, topic, n) = (&args[1], &args[2], args[3].parse::<u64>().unwrap());
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers).set("log_level", "3");
    let admin: AdminClient<DefaultClientContext> = cfg.create().unwrap();
    let t = NewTopic::new(topic, 3, TopicReplication::Fixed(1)).set("retention.ms", "604800000");
    // Ignore "already exists": the second fill appends.
    let _ = admin.create_topics([&t], &AdminOptions::new()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p: ThreadedProducer<DefaultProducerContext> = cfg.clone().set("linger.ms", "10").create().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Timestamps in a short window ending now (100 records per millisecond).
    let ts = |i: u64| now - (n - i) as i64 / 100;
    for i in 0..n {
        let key = format!("customer-{}", i % 97);
        let value = format!(
            "{{\"order\":{i},\"customer\":\"{key}\",\"item\":\"sku-{}\",\"qty\":{},\"ts\":{}}}",
            (i * 7919) % 500,
            1 + i % 4,
            ts(i)
        );
        let h = OwnedHeaders::new().insert(Header {
            key: "source",
            value: Some("demo"),
        });
        let mut rec = BaseRecord::to(topic)
            .key(&key)
            .payload(&value)
            .headers(h)
            .timestamp(ts(i));
        while let Err((_, back)) = p.send(rec) {
            std::thread::sleep(Duration::from_millis(5));
            rec = back;
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
    if let (Some(group), Some(off)) = (args.get(4), args.get(5)) {
        let c: BaseConsumer = cfg
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for part in 0..3 {
            tpl.add_partition_offset(topic, part, Offset::Offset(off.parse().unwrap()))
                .unwrap();
        }
        c.commit(&tpl, CommitMode::Sync).unwrap();
    }
    println!("produced {n} records to {topic}");
}
