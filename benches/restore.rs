//! `kvault restore` against raw produce to the same target broker, in one
//! run: the same records (JSON events over 4 partitions), the same producer
//! settings as kvault's sink (idempotent, acks=all, lz4, linger 20 ms, 1 MB
//! batches); peak RSS of the restore CLI. Results in BENCHMARKS.md.
//!
//! Needs brokers: `eval "$(scripts/kafka start source)"; eval "$(scripts/kafka
//! start target)"; cargo bench --bench restore` (the target defaults to the
//! source; KVAULT_BENCH_MIB sets the data size, default 500).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

fn cfg(b: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b).set("log_level", "3");
    c
}

async fn create(b: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = cfg(b).create().unwrap();
    let t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for r in admin.create_topics([&t], &AdminOptions::new()).await.unwrap() {
        r.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// The benchmark's records, in memory: (partition, key, value, timestamp).
fn events(partitions: i32, bytes: usize) -> Vec<(i32, String, Vec<u8>, i64)> {
    let data = common::json_events(64 << 20, 3);
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
fn produce(b: &str, topic: &str, recs: &[(i32, String, Vec<u8>, i64)], sink_settings: bool) -> f64 {
    let mut c = cfg(b);
    if sink_settings {
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .set("batch.size", "1000000")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.kbytes", "65536");
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

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let src = std::env::var("KVAULT_KAFKA_SOURCE")
        .expect("KVAULT_KAFKA_SOURCE is not set: run `eval \"$(scripts/kafka start source)\"` first");
    let tgt = std::env::var("KVAULT_KAFKA_TARGET").unwrap_or_else(|_| src.clone());
    let mib: usize = std::env::var("KVAULT_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = kvault::Id::random().unwrap().short();
    let topic = format!("bench-restore-{id}");
    let recs = events(4, mib << 20);
    let bytes: usize = recs.iter().map(|r| r.1.len() + r.2.len()).sum();
    rt.block_on(create(&src, &topic, 4));
    produce(&src, &topic, &recs, false);
    println!(
        "source: {} records, {:.0} MiB of keys+values",
        recs.len(),
        bytes as f64 / 1048576.0
    );

    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("repo");
    let state = dir.path().join("state");
    let kv = env!("CARGO_BIN_EXE_kvault");
    let run = |args: &[&str]| {
        std::process::Command::new(kv)
            .args(["-r", loc.to_str().unwrap(), "--no-progress"])
            .args(args)
            .env("KVAULT_PASSWORD", "pw")
            .env("KVAULT_STATE_DIR", &state)
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
    let snap = run(&["snapshot", "-b", &src, "--topic", &topic, "--group", "none", "-q"])
        .wait()
        .unwrap();
    assert!(snap.success());

    // Two rounds, interleaved: raw produce of the same records with the same
    // settings to the target, then `kvault restore` as users run it (the CLI
    // in its own process, its peak RSS sampled from /proc while it runs).
    let (mut best_raw, mut best_restore, mut peak_kib) = (f64::MAX, f64::MAX, 0f64);
    for round in 0..2 {
        let raw_topic = format!("raw{round}-{topic}");
        rt.block_on(create(&tgt, &raw_topic, 4));
        let rsecs = produce(&tgt, &raw_topic, &recs, true);
        println!(
            "round {round}: raw produce (kvault's producer settings): {rsecs:.2} s, {:.0} MB/s",
            bytes as f64 / rsecs / 1e6
        );
        best_raw = best_raw.min(rsecs);

        let prefix = format!("restored{round}-");
        let s0 = Instant::now();
        let mut child = run(&[
            "restore",
            "-b",
            &tgt,
            "--prefix",
            &prefix,
            "--no-groups",
            "--json",
        ]);
        let status_path = format!("/proc/{}/status", child.id());
        while child.try_wait().unwrap().is_none() {
            if let Ok(st) = std::fs::read_to_string(&status_path) {
                if let Some(v) = st.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
                    peak_kib = peak_kib.max(v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0.0));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let ssecs = s0.elapsed().as_secs_f64();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["records_written"].as_u64(), Some(recs.len() as u64));
        println!(
            "round {round}: kvault restore (CLI): {} records, {ssecs:.2} s, {:.0} MB/s of keys+values",
            r["records_written"],
            bytes as f64 / ssecs / 1e6
        );
        best_restore = best_restore.min(ssecs);
    }
    println!(
        "best of 2: raw produce {:.0} MB/s, kvault restore {:.0} MB/s = {:.2}x raw produce; peak RSS of restore {:.0} MiB",
        bytes as f64 / best_raw / 1e6,
        bytes as f64 / best_restore / 1e6,
        best_raw / best_restore,
        peak_kib / 1024.0
    );
}
