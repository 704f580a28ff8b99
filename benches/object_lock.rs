//! The request cost of an immutable repository (S3 Object Lock) at 10,000
//! packs, against raw OpenDAL writes of as many objects in the same run:
//!
//! - baseline: 10,000 `PutObject`s of 1 KiB through an OpenDAL operator with
//!   its own default settings, 32 at a time;
//! - the retention every one of those objects gets once per slack (what a
//!   snapshot's retention pass sends for its reused packs): 10,000
//!   `PutObjectRetention`s through kvault's Object Lock client, as many at
//!   once as the pass sends (`RETAIN_CONCURRENCY`);
//! - what `prune` asks of each pack it would delete: 10,000
//!   `GetObjectRetention`s.
//!
//! Needs the S3 server (`eval "$(scripts/s3-server start)"`; its
//! `kvault-locked` bucket has Object Lock). `KVAULT_BENCH_OBJECTS` sets the
//! count. Results in BENCHMARKS.md ("Object Lock").
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt as _;
use kvault::LockMode;

fn env(k: &str) -> String {
    std::env::var(k)
        .unwrap_or_else(|_| panic!("{k} is not set: run `eval \"$(scripts/s3-server start)\"` first"))
}

/// Runs `f` on every name, `n` at a time; seconds taken.
async fn timed<F, Fut>(names: &[String], n: usize, f: F) -> f64
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let t = Instant::now();
    futures_util::stream::iter(names.iter().cloned())
        .map(f)
        .buffer_unordered(n)
        .collect::<Vec<()>>()
        .await;
    t.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("KVAULT_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let bucket = env("KVAULT_TEST_S3_LOCKED_BUCKET");
    let prefix = format!("bench-{}", kvault::Id::random().unwrap().short());
    let op = opendal::Operator::new(
        opendal::services::S3::default()
            .bucket(&bucket)
            .root(&format!("/{prefix}/"))
            .region("us-east-1")
            .endpoint(&env("KVAULT_TEST_S3_ENDPOINT"))
            .access_key_id(&env("KVAULT_TEST_S3_KEY"))
            .secret_access_key(&env("KVAULT_TEST_S3_SECRET")),
    )
    .unwrap();
    let names: Vec<String> = (0..count)
        .map(|i| format!("data/{:02x}/{i:08}", i % 256))
        .collect();
    let body = vec![7u8; 1024];
    let put = timed(&names, 32, |p| {
        let (op, body) = (op.clone(), body.clone());
        async move { op.write(&p, body).await.map(|_| ()).unwrap() }
    })
    .await;

    let opts = common::s3_options();
    let backend = kvault::open_backend(&format!("s3://{bucket}/{prefix}"), &opts).unwrap();
    let lock = backend.object_lock().unwrap();
    let until = SystemTime::now() + Duration::from_secs(60);
    let concurrency = kvault::repo::retention::RETAIN_CONCURRENCY;
    let retain = timed(&names, concurrency, |p| {
        let lock = lock.clone();
        async move { lock.retain(&p, LockMode::Governance, until).await.unwrap() }
    })
    .await;
    let get = timed(&names, concurrency, |p| {
        let lock = lock.clone();
        async move {
            assert!(lock.retained_until(&p).await.unwrap().is_some());
        }
    })
    .await;
    let rate = |s: f64| count as f64 / s;
    println!("objects: {count} of 1 KiB, bucket {bucket}/{prefix}");
    println!(
        "baseline  PutObject (OpenDAL defaults, 32 at once): {put:.2} s, {:.0} req/s",
        rate(put)
    );
    println!(
        "kvault    PutObjectRetention ({concurrency} at once):     {retain:.2} s, {:.0} req/s, {:.2}x the baseline's time",
        rate(retain),
        retain / put
    );
    println!(
        "kvault    GetObjectRetention ({concurrency} at once):     {get:.2} s, {:.0} req/s, {:.2}x the baseline's time",
        rate(get),
        get / put
    );
    println!(
        "AWS list prices (us-east-1, PUT-class $0.005 and GET-class $0.0004 per 1,000): one full extension pass ${:.3}, one prune check ${:.4}",
        count as f64 * 0.005 / 1000.0,
        count as f64 * 0.0004 / 1000.0
    );
    println!("(the objects stay locked 60 s, governance mode; the bucket is the test server's)");
}
