//! Inputs and a storage sink shared by the benches.
#![allow(dead_code, clippy::indexing_slicing, clippy::panic)]

use async_trait::async_trait;
use kvault::backend::memory::MemoryBackend;
use kvault::backend::{Backend, BackendResult, ObjectInfo};

/// JSON-like event lines (compress ~6x with zstd 3, like Kafka payloads).
pub fn json_events(bytes: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 256);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut i = 0u64;
    while out.len() < bytes {
        // xorshift: cheap, deterministic.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!(
            "{{\"id\":{i},\"user\":\"u{}\",\"session\":\"{:016x}\",\"event\":\"{}\",\"ts\":{},\"amount\":{}.{:02},\"country\":\"{}\"}}\n",
            x % 50_000,
            x.rotate_left(17),
            ["page_view", "click", "add_to_cart", "purchase", "refund"][(x % 5) as usize],
            1_764_000_000_000u64 + i * 13,
            x % 1000,
            x % 100,
            ["DE", "FR", "US", "JP", "BR", "IN"][(x % 6) as usize],
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(bytes);
    out
}

/// Incompressible bytes.
pub fn random_bytes(bytes: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; bytes];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut v);
    v
}

/// Keeps keys and config, throws packs and index files away: measures the
/// pipeline, not a disk, and lets every run start with an empty index.
#[derive(Debug, Clone, Default)]
pub struct Sink(pub MemoryBackend);

#[async_trait]
impl Backend for Sink {
    fn location(&self) -> String {
        "sink:".into()
    }
    async fn read(&self, path: &str) -> BackendResult<Vec<u8>> {
        self.0.read(path).await
    }
    async fn read_range(&self, path: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>> {
        self.0.read_range(path, offset, len).await
    }
    async fn write_new(&self, path: &str, data: kvault::backend::Payload) -> BackendResult<()> {
        if path.starts_with("data/") || path.starts_with("index/") {
            std::hint::black_box(&data);
            return Ok(());
        }
        self.0.write_new(path, data).await
    }
    async fn stat(&self, path: &str) -> BackendResult<Option<u64>> {
        self.0.stat(path).await
    }
    async fn list(&self, dir: &str) -> BackendResult<Vec<ObjectInfo>> {
        self.0.list(dir).await
    }
    async fn remove(&self, path: &str) -> BackendResult<()> {
        self.0.remove(path).await
    }
}

/// Waits for a child process, sampling its peak RSS (VmHWM) from /proc
/// every 10 ms; returns (peak MiB, output).
pub fn wait_sampling_rss(mut child: std::process::Child) -> std::io::Result<(f64, std::process::Output)> {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0f64;
    while child.try_wait().ok().flatten().is_none() {
        if let Ok(st) = std::fs::read_to_string(&status_path) {
            if let Some(v) = st.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
                peak_kib = peak_kib.max(v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0.0));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = child.wait_with_output()?;
    Ok((peak_kib / 1024.0, out))
}

/// The suite's S3 server (`scripts/s3-server`) with the admin's keys.
pub fn s3_options() -> kvault::BackendOptions {
    let env = |k: &str| {
        std::env::var(k)
            .unwrap_or_else(|_| panic!("{k} is not set: run `eval \"$(scripts/s3-server start)\"` first"))
    };
    kvault::BackendOptions {
        s3: kvault::S3Options {
            endpoint: Some(env("KVAULT_TEST_S3_ENDPOINT")),
            region: Some("us-east-1".into()),
            access_key_id: Some(env("KVAULT_TEST_S3_KEY")),
            secret_access_key: Some(env("KVAULT_TEST_S3_SECRET")),
            ..Default::default()
        },
        ..Default::default()
    }
}
