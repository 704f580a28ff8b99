//! Helpers shared by the integration tests.

use std::sync::Arc;

use kvault::backend::Backend;
use kvault::backend::location::BackendOptions;
use kvault::repo::chunker::ChunkerParams;
use kvault::{InitOptions, KdfParams, Repository};

/// Waits until `cond` holds (polled every few milliseconds); fails the
/// test naming `what` when it has not after `limit`. The suite waits on
/// conditions, never for a fixed time.
pub fn wait_until(what: &str, limit: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// [`wait_until`] for a condition that is a future.
pub async fn wait_until_async<F: std::future::Future<Output = bool>>(
    what: &str,
    limit: std::time::Duration,
    mut cond: impl FnMut() -> F,
) {
    let t0 = std::time::Instant::now();
    while !cond().await {
        assert!(t0.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// The wall clock (ms since the epoch) once it has passed `t`: a moment
/// strictly after `t`, so what happens from now on has a later timestamp.
pub fn clock_after(t: i64) -> i64 {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    };
    let mut n = now();
    while n <= t {
        std::thread::sleep(std::time::Duration::from_micros(200));
        n = now();
    }
    n
}

/// A new repository at `root` for a committed fixture: small chunks and
/// packs, the fast KDF, `password`.
pub async fn fixture_repo(root: &std::path::Path, password: &[u8]) -> Repository {
    let opts = InitOptions {
        kdf: KdfParams::insecure_fast(),
        ..small_opts()
    };
    let backend = kvault::open_backend(root.to_str().unwrap(), &Default::default()).unwrap();
    Repository::init(backend, password, &opts).await.unwrap()
}

/// Small chunks and packs so small inputs exercise many of each.
pub fn small_opts() -> InitOptions {
    InitOptions {
        chunker: ChunkerParams::with_average(16 * 1024).unwrap(),
        pack_size: 64 * 1024,
        compression_level: 3,
        kdf: KdfParams::insecure_fast(),
        object_lock: None,
    }
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; n];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut v);
    v
}

/// JSON-like event lines, compressible like real Kafka payloads.
pub fn json_events(n: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let r = random_bytes(n * 4, seed);
    for i in 0..n {
        let x = u32::from_le_bytes([r[i * 4], r[i * 4 + 1], r[i * 4 + 2], r[i * 4 + 3]]);
        out.extend_from_slice(
            format!(
                "{{\"id\":{i},\"user\":\"u{}\",\"event\":\"{}\",\"ts\":{},\"amount\":{}.{:02}}}\n",
                x % 5000,
                ["view", "click", "buy", "refund"][(x % 4) as usize],
                1_764_000_000_000u64 + i as u64 * 17,
                x % 1000,
                x % 100
            )
            .as_bytes(),
        );
    }
    out
}

/// The S3 server's settings, or a loud failure saying how to start it.
pub fn s3_options() -> (String, BackendOptions) {
    let get = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!(
                "{k} is not set: these tests need the S3 server. Run `scripts/test`, or \
                 `eval \"$(scripts/s3-server start)\"` before `cargo test`."
            )
        })
    };
    let opts = BackendOptions {
        s3: kvault::S3Options {
            endpoint: Some(get("KVAULT_TEST_S3_ENDPOINT")),
            region: Some("us-east-1".into()),
            access_key_id: Some(get("KVAULT_TEST_S3_KEY")),
            secret_access_key: Some(get("KVAULT_TEST_S3_SECRET")),
            ..Default::default()
        },
        ..Default::default()
    };
    (get("KVAULT_TEST_S3_BUCKET"), opts)
}

/// A unique S3 location under the test bucket.
pub fn s3_location(name: &str) -> (String, BackendOptions) {
    let (bucket, opts) = s3_options();
    let unique = kvault::Id::random().unwrap().short();
    (format!("s3://{bucket}/{name}-{unique}"), opts)
}

/// An S3 backend under a unique prefix.
pub fn s3_backend(name: &str) -> Arc<dyn Backend> {
    let (loc, opts) = s3_location(name);
    kvault::open_backend(&loc, &opts).unwrap()
}

/// A fresh repository on `backend`.
pub async fn init_on(backend: Arc<dyn Backend>) -> Repository {
    Repository::init(backend, b"pw", &small_opts()).await.unwrap()
}

/// Every file below `dir`, sorted.
pub fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(files(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Packs `parent/name` into a reproducible tarball at `out` (fixtures).
pub fn tar_fixture(parent: &std::path::Path, name: &str, out: &str) {
    let st = std::process::Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--exclude=.tmp",
            "--exclude=locks",
            "-czf",
            out,
            "-C",
        ])
        .arg(parent)
        .arg(name)
        .status()
        .unwrap();
    assert!(st.success(), "tar failed");
    println!("wrote {out}");
}

/// Extracts a fixture tarball into a fresh temporary directory; returns it
/// and the path of the top-level directory `name` inside it.
pub fn extract_fixture(tarball: &str, name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success(), "cannot extract {tarball}");
    let root = dir.path().join(name);
    (dir, root)
}
