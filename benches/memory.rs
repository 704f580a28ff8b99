//! Peak memory while writing 4 GiB through the pipeline (all cores), with
//! the default configuration: 4 MiB max chunks, 16 MiB packs. Prints the
//! throughput and the process's peak RSS (VmHWM). Results in BENCHMARKS.md.
//!
//! `cargo bench --bench memory` (KVAULT_BENCH_GIB overrides the size).

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
use std::time::Instant;

use kvault::repo::writer::SaveSession;
use kvault::{InitOptions, KdfParams, Repository};

fn vm_hwm_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` and criterion-style listing: nothing to do.
    }
    let gib: u64 = std::env::var("KVAULT_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let total = gib << 30;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = common::Sink::default();
    let opts = InitOptions {
        kdf: KdfParams::insecure_fast(),
        ..Default::default()
    };
    let repo = rt
        .block_on(Repository::init(Arc::new(sink), b"pw", &opts))
        .unwrap();
    // 64 MiB of events, varied per round so nothing dedupes.
    let base = common::json_events(64 << 20, 9);
    let before = vm_hwm_mib();
    let start = Instant::now();
    let stored = rt.block_on(async {
        let mut s = SaveSession::new(&repo);
        let mut w = s.stream();
        let mut done = 0u64;
        let mut round = 0u64;
        let mut piece = vec![0u8; 1 << 20];
        while done < total {
            for c in base.chunks(1 << 20) {
                piece[..c.len()].copy_from_slice(c);
                piece[..8].copy_from_slice(&round.to_le_bytes());
                piece[c.len() / 2..c.len() / 2 + 8].copy_from_slice(&done.to_le_bytes());
                w.write(&piece[..c.len()]).await.unwrap();
                done += c.len() as u64;
            }
            round += 1;
        }
        w.finish().await.unwrap();
        s.commit().await.unwrap().new_stored_bytes
    });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "memory: wrote {gib} GiB of JSON events in {secs:.1} s ({:.0} MB/s), stored {:.0} MiB; \
         peak RSS {:.0} MiB (input buffer and setup before writing: {before:.0} MiB)",
        total as f64 / secs / 1e6,
        stored as f64 / (1 << 20) as f64,
        vm_hwm_mib()
    );
}
