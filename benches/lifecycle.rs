//! `prune` and `copy`, each against a baseline in the same run:
//!
//! - prune of a repository with >= 10,000 chunks of which half are garbage
//!   spread over every pack (so every pack is repacked): time, peak RSS of
//!   the CLI, space freed;
//! - `copy` of a local repository to the S3 server against raw S3 writes of
//!   the same number of bytes in pack-sized objects, with the same backend
//!   and the same two concurrent uploads kvault uses.
//!
//! Needs the S3 server: `eval "$(scripts/s3-server start)"; cargo bench
//! --bench lifecycle` (KVAULT_BENCH_MIB sets the size of the first
//! snapshot, default 320). Results in BENCHMARKS.md.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "common.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

fn env(k: &str) -> String {
    std::env::var(k)
        .unwrap_or_else(|_| panic!("{k} is not set: run `eval \"$(scripts/s3-server start)\"` first"))
}

/// Runs the CLI; returns (seconds, peak RSS MiB, stdout).
fn timed(args: &[&str], extra_env: &[(&str, &str)]) -> (f64, f64, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kvault"));
    c.args(["--no-progress"])
        .args(args)
        .env("KVAULT_PASSWORD", "pw")
        .env("AWS_ACCESS_KEY_ID", env("KVAULT_TEST_S3_KEY"))
        .env("AWS_SECRET_ACCESS_KEY", env("KVAULT_TEST_S3_SECRET"))
        .env("KVAULT_S3_ENDPOINT", env("KVAULT_TEST_S3_ENDPOINT"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let t0 = Instant::now();
    let (peak_mib, out) = common::wait_sampling_rss(c.spawn().unwrap()).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!(out.status.success(), "kvault {args:?} failed");
    (secs, peak_mib, String::from_utf8_lossy(&out.stdout).to_string())
}

/// A repository with 16 KiB chunks and 4 MiB packs.
fn init(repo: &str, password: &str) {
    timed(
        &[
            "-r",
            repo,
            "init",
            "--insecure-fast-kdf",
            "--chunk-size",
            "16",
            "--pack-size",
            "4",
            "-q",
        ],
        &[("KVAULT_PASSWORD", password)],
    );
}

fn put(repo: &Path, file: &Path) -> String {
    let (_, _, out) = timed(
        &[
            "-r",
            repo.to_str().unwrap(),
            "put",
            file.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    v["snapshot"].as_str().unwrap().to_string()
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let mib: usize = std::env::var("KVAULT_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(320);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let r = repo.to_str().unwrap();
    init(r, "pw");
    // Snapshot 1: segments x0 y0 x1 y1 ... of 1 MiB (JSON events, then
    // random bytes); snapshot 2: x0 x1 ... only. Forgetting snapshot 1 makes
    // every y chunk garbage, spread over every pack.
    let seg = 1 << 20;
    let (mut s1, mut s2) = (Vec::new(), Vec::new());
    for i in 0..mib / 2 {
        let x = if i % 2 == 0 {
            common::json_events(seg, i as u64)
        } else {
            common::random_bytes(seg, i as u64)
        };
        let y = common::random_bytes(seg, 1_000_000 + i as u64);
        s1.extend_from_slice(&x[..seg]);
        s1.extend_from_slice(&y[..seg]);
        s2.extend_from_slice(&x[..seg]);
    }
    let (f1, f2) = (dir.path().join("s1"), dir.path().join("s2"));
    std::fs::write(&f1, &s1).unwrap();
    std::fs::write(&f2, &s2).unwrap();
    drop((s1, s2));
    let first = put(&repo, &f1);
    let _second = put(&repo, &f2);
    let (_, _, st) = timed(&["-r", r, "stats", "--json"], &[]);
    let st: serde_json::Value = serde_json::from_str(st.trim()).unwrap();
    let (_, _, idx) = timed(&["-r", r, "check", "--json"], &[]);
    let idx: serde_json::Value = serde_json::from_str(idx.trim()).unwrap();
    timed(&["-r", r, "forget", &first, "-q"], &[]);
    let (secs, rss, out) = timed(&["-r", r, "prune", "--max-unused", "0%", "--json"], &[]);
    let p: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    println!(
        "prune: {} blobs indexed ({} chunks of 16 KiB average), {} kept; {} packs ({:.0} MiB) before; \
         {} deleted, {} repacked into {} new; {:.0} MiB freed, {:.0} MiB after; {secs:.1} s; peak RSS {rss:.0} MiB",
        idx["blobs"],
        idx["blobs"],
        p["blobs_used"],
        p["packs_before"],
        p["bytes_before"].as_f64().unwrap() / 1048576.0,
        p["packs_deleted"],
        p["packs_repacked"],
        p["packs_written"],
        p["bytes_freed"].as_f64().unwrap() / 1048576.0,
        p["bytes_after"].as_f64().unwrap() / 1048576.0,
    );
    let _ = st;
    let (_, _, check) = timed(&["-r", r, "check", "--read-data", "--json"], &[]);
    assert!(check.contains("\"errors\":[]"), "{check}");

    // copy to S3 against raw S3 writes of as many bytes.
    let bucket = env("KVAULT_TEST_S3_BUCKET");
    let id = kvault::Id::random().unwrap().short();
    let dst = format!("s3://{bucket}/bench-copy-{id}");
    init(&dst, "other");
    let (csecs, crss, out) = timed(
        &["-r", &dst, "copy", "--from-repo", r, "--json"],
        &[("KVAULT_PASSWORD", "other"), ("KVAULT_FROM_PASSWORD", "pw")],
    );
    let c: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let stored = c["bytes_stored"].as_u64().unwrap();
    let copy_rate = stored as f64 / csecs / 1e6;

    let opts = common::s3_options();
    let raw = kvault::open_backend(&format!("s3://{bucket}/bench-raw-{id}"), &opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = stored.div_ceil(4 << 20) as usize;
    let payload = common::random_bytes(4 << 20, 99);
    let t0 = Instant::now();
    rt.block_on(async {
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(2));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..objects {
            let permit = sem.clone().acquire_owned().await.unwrap();
            let (b, mut data) = (raw.clone(), payload.clone());
            data[..8].copy_from_slice(&(i as u64).to_le_bytes());
            set.spawn(async move {
                b.write_new(&format!("data/{i:08}"), data.into()).await.unwrap();
                drop(permit);
            });
        }
        while set.join_next().await.is_some() {}
    });
    let rsecs = t0.elapsed().as_secs_f64();
    let raw_rate = (objects * (4 << 20)) as f64 / rsecs / 1e6;
    println!(
        "copy to S3: {} snapshot(s), {} chunks read ({:.0} MiB), {:.0} MiB stored in {csecs:.1} s = {copy_rate:.0} MB/s; peak RSS {crss:.0} MiB",
        c["copied"].as_array().unwrap().len(),
        c["blobs_read"],
        c["bytes_read"].as_f64().unwrap() / 1048576.0,
        stored as f64 / 1048576.0
    );
    println!(
        "raw S3 writes: {objects} objects of 4 MiB, 2 at a time, in {rsecs:.1} s = {raw_rate:.0} MB/s; copy = {:.2}x raw",
        copy_rate / raw_rate
    );
}
