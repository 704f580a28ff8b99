//! `kvault snapshot` against the raw consume rate of the same broker, in one
//! run: >= 1 GiB of JSON events over 4 partitions; peak RSS of the
//! snapshot; an unchanged 1,000-partition snapshot. Results in BENCHMARKS.md.
//!
//! Needs a broker: `eval "$(scripts/kafka start source)"; cargo bench --bench snapshot`
//! (KVAULT_BENCH_MIB sets the data size, default 1100).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "common.rs"]
mod common;
#[path = "support/kafka.rs"]
mod kafka_common;

use std::time::{Duration, Instant};

use kvault::kafka::KafkaOptions;
use kvault::ops::snapshot::{SnapshotOptions, snapshot};
use kvault::{NoProgress, Repository};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

fn raw_consume(b: &str, topic: &str, partitions: i32) -> (u64, u64, f64) {
    // The same fetch settings as kvault's reader gives 4 partitions (src/kafka/source.rs).
    let c: BaseConsumer = kafka_common::cfg(b)
        .set("group.id", "kvault-bench-raw")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("fetch.max.bytes", "33554432")
        .set("max.partition.fetch.bytes", "8388608")
        .set("queued.max.messages.kbytes", "32768")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let start = Instant::now();
    let (mut n, mut bytes, mut eofs) = (0u64, 0u64, 0);
    while eofs < partitions {
        match c.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += (m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len)) as u64;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => eofs += 1,
            Some(Err(e)) => panic!("{e}"),
            None => panic!("raw consumer stalled"),
        }
    }
    (n, bytes, start.elapsed().as_secs_f64())
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let b = std::env::var("KVAULT_KAFKA_SOURCE")
        .expect("KVAULT_KAFKA_SOURCE is not set: run `eval \"$(scripts/kafka start source)\"` first");
    let mib: usize = std::env::var("KVAULT_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1100);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = kvault::Id::random().unwrap().short();
    let topic = format!("bench-events-{id}");
    rt.block_on(kafka_common::create(&b, &topic, 4));
    let t0 = Instant::now();
    let recs = kafka_common::events(4, mib << 20);
    kafka_common::produce(&b, &topic, &recs, false);
    let (n, bytes) = (
        recs.len() as u64,
        recs.iter().map(|r| (r.1.len() + r.2.len()) as u64).sum::<u64>(),
    );
    drop(recs);
    println!(
        "produced {n} records, {:.0} MiB of keys+values in {:.1} s",
        bytes as f64 / 1048576.0,
        t0.elapsed().as_secs_f64()
    );

    // Raw consume, twice (the first warms the page cache like kvault's run will see it).
    let _ = raw_consume(&b, &topic, 4);
    let (rn, rbytes, rsecs) = raw_consume(&b, &topic, 4);
    assert_eq!(rn, n);
    let raw = rbytes as f64 / rsecs / 1e6;
    println!("raw consume: {rn} records, {:.1} s, {raw:.0} MB/s", rsecs);

    // kvault snapshot as users run it: the CLI in its own process, its peak
    // RSS sampled from /proc while it runs.
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("repo");
    let kv = env!("CARGO_BIN_EXE_kvault");
    let run = |args: &[&str]| {
        std::process::Command::new(kv)
            .args(["-r", loc.to_str().unwrap(), "--no-progress"])
            .args(args)
            .env("KVAULT_PASSWORD", "pw")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    assert!(
        run(&["init", "--insecure-fast-kdf", "-q"])
            .wait()
            .unwrap()
            .success()
    );
    let s0 = Instant::now();
    let child = run(&[
        "snapshot", "-b", &b, "--topic", &topic, "--group", "none", "--json",
    ]);
    let (peak_mib, out) = common::wait_sampling_rss(child).unwrap();
    let ssecs = s0.elapsed().as_secs_f64();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let snap = rbytes as f64 / ssecs / 1e6;
    println!(
        "kvault snapshot (CLI): {} records, {:.1} s, {snap:.0} MB/s of keys+values = {:.2}x raw consume; stored {:.0} MiB; peak RSS {:.0} MiB",
        r["records_read"],
        ssecs,
        snap / raw,
        r["new_bytes_stored"].as_f64().unwrap_or(0.0) / 1048576.0,
        peak_mib
    );
    assert_eq!(r["records_read"].as_u64(), Some(n));
    let backend = kvault::open_backend(loc.to_str().unwrap(), &Default::default()).unwrap();
    let repo = rt.block_on(Repository::open(backend, b"pw")).unwrap();

    // An unchanged cluster of 1,000 partitions.
    let many: Vec<String> = (0..10).map(|i| format!("bench-many-{id}-{i}")).collect();
    for t in &many {
        rt.block_on(kafka_common::create(&b, t, 100));
        let p: ThreadedProducer<DefaultProducerContext> = kafka_common::cfg(&b).create().unwrap();
        for part in 0..100 {
            p.send(BaseRecord::<[u8], [u8]>::to(t).partition(part).payload(b"x"))
                .unwrap();
        }
        p.flush(Duration::from_secs(30)).unwrap();
    }
    let mopts = SnapshotOptions {
        kafka: KafkaOptions::new(&b),
        topics: vec![format!("bench-many-{id}-*")],
        groups: vec!["none".into()],
        ..Default::default()
    };
    let first = rt.block_on(snapshot(&repo, &mopts, &NoProgress)).unwrap();
    assert_eq!(first.partitions, 1000);
    let u0 = Instant::now();
    let again = rt.block_on(snapshot(&repo, &mopts, &NoProgress)).unwrap();
    println!(
        "unchanged snapshot of {} partitions: {:.2} s, {} partitions read, {} bytes stored",
        again.partitions,
        u0.elapsed().as_secs_f64(),
        again.partitions_read,
        again.new_bytes_stored
    );
}
