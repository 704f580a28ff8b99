//! The write pipeline (keyed FastCDC -> keyed BLAKE3 -> zstd -> seal ->
//! pack) against the raw throughput of each stage, on JSON-like events and
//! on random bytes, with 1 thread and all cores, in one run.
//! Results and their ratios are in BENCHMARKS.md.

// A benchmark is a script: its steps read in the order they run.
#![allow(clippy::too_many_lines)]
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

#[path = "common.rs"]
mod common;

use std::sync::Arc;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kvault::repo::chunker::{Chunker, ChunkerParams, ScanState};
use kvault::repo::writer::SaveSession;
use kvault::{InitOptions, KdfParams, Repository};
use rayon::prelude::*;

const SIZE: usize = 64 << 20;

fn chunks_of(data: &[u8], c: &Chunker) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    for l in c.cuts(data) {
        out.push(rest[..l].to_vec());
        rest = &rest[l..];
    }
    out
}

fn seal(cipher: &XChaCha20Poly1305, buf: &mut [u8]) -> usize {
    let nonce = XNonce::from([7u8; 24]);
    cipher
        .encrypt_inout_detached(&nonce, b"", buf.into())
        .map(|t| t.len())
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = common::Sink::default();
    let opts = InitOptions {
        kdf: KdfParams::insecure_fast(),
        ..Default::default()
    };
    rt.block_on(Repository::init(Arc::new(sink.clone()), b"pw", &opts))
        .unwrap();
    let all = rayon::current_num_threads();
    let pool1 = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap());
    let pool_all = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(all).build().unwrap());
    let key = [3u8; 32];
    let chunker = Chunker::new(&key, ChunkerParams::default()).unwrap();
    let cipher = XChaCha20Poly1305::new(&key.into());

    for (name, data) in [
        ("json", common::json_events(SIZE, 1)),
        ("random", common::random_bytes(SIZE, 1)),
    ] {
        let chunks = chunks_of(&data, &chunker);
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(SIZE as u64)).sample_size(10);

        g.bench_function("stage/fastcdc-crate-v2020/1t", |b| {
            b.iter(|| fastcdc::v2020::FastCDC::new(&data, 256 << 10, 1 << 20, 4 << 20).count())
        });
        g.bench_function("stage/keyed-fastcdc/1t", |b| b.iter(|| chunker.cuts(&data).len()));
        // A snapshot scans as records arrive: ~200 bytes per call.
        g.bench_function("stage/keyed-fastcdc-scan-200B/1t", |b| {
            b.iter(|| {
                let (mut start, mut end, mut st, mut n) = (0, 0, ScanState::default(), 0);
                while end < data.len() {
                    end = (end + 200).min(data.len());
                    if let Some(cut) = chunker.scan(&mut st, &data[start..end]) {
                        start += cut;
                        st = ScanState::default();
                        n += 1;
                    }
                }
                n
            })
        });
        g.bench_function("stage/blake3-keyed/1t", |b| {
            b.iter(|| {
                chunks
                    .iter()
                    .map(|c| blake3::keyed_hash(&key, c).as_bytes()[0] as usize)
                    .sum::<usize>()
            })
        });
        g.bench_function("stage/blake3-keyed/all", |b| {
            b.iter(|| {
                chunks
                    .par_iter()
                    .map(|c| blake3::keyed_hash(&key, c).as_bytes()[0] as usize)
                    .sum::<usize>()
            })
        });
        g.bench_function("stage/zstd3/1t", |b| {
            b.iter(|| {
                chunks
                    .iter()
                    .map(|c| zstd::bulk::compress(c, 3).unwrap().len())
                    .sum::<usize>()
            })
        });
        g.bench_function("stage/zstd3/all", |b| {
            b.iter(|| {
                chunks
                    .par_iter()
                    .map(|c| zstd::bulk::compress(c, 3).unwrap().len())
                    .sum::<usize>()
            })
        });
        // kvault's seal (aws-lc's ChaCha20-Poly1305 under an HChaCha20
        // subkey, into a new buffer as a snapshot seals), and the portable
        // RustCrypto XChaCha20-Poly1305 in place for reference.
        let kv_seal = |c: &Vec<u8>| {
            kvault::repo::crypto::seal_with_nonce(&key, &[7u8; 24], b"", c).map_or(0, |s| s.len())
        };
        g.bench_function("stage/xchacha20poly1305/1t", |b| {
            b.iter(|| chunks.iter().map(kv_seal).sum::<usize>())
        });
        g.bench_function("stage/xchacha20poly1305/all", |b| {
            b.iter(|| chunks.par_iter().map(kv_seal).sum::<usize>())
        });
        g.bench_function("stage/xchacha20poly1305-rustcrypto-in-place/1t", |b| {
            b.iter_batched(
                || chunks.clone(),
                |mut cs| cs.iter_mut().map(|c| seal(&cipher, c)).sum::<usize>(),
                BatchSize::LargeInput,
            )
        });
        for (label, pool) in [("1t", &pool1), ("all", &pool_all)] {
            g.bench_function(format!("pipeline/{label}"), |b| {
                b.iter_batched(
                    // A fresh handle has an empty index: every run stores everything.
                    || {
                        rt.block_on(Repository::open(Arc::new(sink.clone()), b"pw"))
                            .unwrap()
                    },
                    |repo| {
                        rt.block_on(async {
                            let mut s = SaveSession::with_pool(&repo, pool.clone());
                            let mut w = s.stream();
                            for piece in data.chunks(1 << 20) {
                                w.write(piece).await.unwrap();
                            }
                            w.finish().await.unwrap();
                            s.commit().await.unwrap().new_stored_bytes
                        })
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
