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
#[path = "support/kafka.rs"]
mod kafka_common;

use std::time::Instant;

use kafka_common::{create, events, produce};

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
    let (mut best_raw, mut best_restore, mut peak_mib) = (f64::MAX, f64::MAX, 0f64);
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
        let child = run(&[
            "restore",
            "-b",
            &tgt,
            "--prefix",
            &prefix,
            "--no-groups",
            "--json",
        ]);
        let (peak, out) = common::wait_sampling_rss(child).unwrap();
        peak_mib = peak_mib.max(peak);
        let ssecs = s0.elapsed().as_secs_f64();
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
        peak_mib
    );
}
