//! A repository holding many snapshots of one cluster (a `snapshot --every
//! 5m` running for a month holds ~8,600): the time of what a user runs
//! against it — listing snapshots, planning `restore --at` (the log and the
//! group positions as of a time), `forget` with a policy (dry run), and
//! `check` — at 100, 1,000 and 10,000 snapshots.
//!
//! The snapshots are written through the library exactly as `snapshot`
//! lays them out (format-spec §14), without a broker: each is incremental
//! to the previous one, one of four partitions gains a segment of 50
//! encoded records, retention keeps the last 50 segments per partition,
//! three groups move and the commit log holds their commits. Every
//! snapshot commits its own pack and index file, as a real one does.
//!
//! `cargo bench --bench many_snapshots` (KVAULT_BENCH_SNAPSHOTS=100,1000
//! picks the checkpoints). Results in BENCHMARKS.md.

// A benchmark is a script: its steps read in the order they run.
#![allow(clippy::too_many_lines)]
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant, UNIX_EPOCH};

use kvault::image::commits::{Commit, CommitsMeta};
use kvault::image::manifest::{KAFKA_KIND, ManifestWriter, PartitionMeta, SegmentParts, TopicMeta};
use kvault::image::record::{OffsetRuns, RecordRef, TimestampType};
use kvault::image::segment::SegmentWriter;
use kvault::image::types::GroupOffset;
use kvault::ops::forget::{ForgetOptions, Policy, forget};
use kvault::repo::snapshot::{SNAPSHOT_VERSION, Snapshot, SnapshotSummary};
use kvault::repo::tree::Node;
use kvault::repo::writer::SaveSession;
use kvault::{CheckOptions, InitOptions, KdfParams, NoProgress, Repository, check};

const PARTITIONS: i32 = 4;
const KEEP_SEGMENTS: usize = 50;
const RECORDS: i64 = 50;
const EVERY_MS: i64 = 300_000;

struct Builder {
    repo: Repository,
    segments: Vec<Vec<Node>>,
    ends: Vec<i64>,
    offsets: BTreeMap<String, Vec<GroupOffset>>,
    parent: Option<kvault::Id>,
    t0: i64,
    n: usize,
}

impl Builder {
    /// Snapshot `i`'s records of partition `p` as one new segment (the
    /// oldest dropped past KEEP_SEGMENTS); the partition's new end.
    async fn add_segment(&mut self, session: &mut SaveSession, i: usize, time: i64, p: usize) -> i64 {
        // 50 records of ~200 bytes into one chunk.
        let mut w = SegmentWriter::default();
        let chunker = self.repo.chunker().clone();
        let start = self.ends[p];
        let mut chunks = Vec::new();
        for k in 0..RECORDS {
            let value = format!(
                "{{\"snapshot\":{i},\"record\":{k},\"pad\":\"{}\"}}",
                "x".repeat(160)
            );
            let key = format!("key-{}", k % 7);
            let r = RecordRef {
                timestamp: time - EVERY_MS + k * 1000,
                timestamp_type: TimestampType::CreateTime,
                key: Some(key.as_bytes()),
                value: Some(value.as_bytes()),
                headers: vec![],
            };
            if let Some(c) = w.push(&chunker, start + k, &r) {
                chunks.push(c);
            }
        }
        let (last, runs, bytes) = w.finish();
        chunks.extend(last);
        let mut ids = Vec::new();
        for c in chunks {
            let id = session
                .save_blob(kvault::repo::pack::BlobType::Data, c.data.to_vec())
                .await
                .unwrap();
            ids.push((id, c.meta));
        }
        let end = start + RECORDS;
        self.ends[p] = end;
        let seg = ManifestWriter::segment(
            SegmentParts {
                start,
                end,
                runs: OffsetRuns(runs.0.clone()),
                chunks: ids,
                txns: None,
            },
            bytes,
            None,
        )
        .unwrap();
        self.segments[p].push(seg);
        if self.segments[p].len() > KEEP_SEGMENTS {
            self.segments[p].remove(0);
        }
        end
    }

    /// Three groups' commits on partition `p` just before `time`, applied
    /// to the groups' offsets.
    fn commit_groups(&mut self, p: usize, end: i64, time: i64) -> Vec<Commit> {
        let mut commits = Vec::new();
        for g in 0..3 {
            let name = format!("group-{g}");
            let off = GroupOffset {
                topic: "events".into(),
                partition: p as i32,
                offset: end - 10 * g,
                metadata: String::new(),
            };
            commits.push(Commit {
                ts: time - 1000,
                group: name.clone(),
                topic: Some(off.topic.clone()),
                partition: Some(off.partition),
                offset: Some(off.offset),
                metadata: String::new(),
            });
            let offs = self.offsets.entry(name).or_default();
            offs.retain(|o| o.partition != off.partition);
            offs.push(off);
            offs.sort_by_key(|o| o.partition);
        }
        commits
    }

    async fn add(&mut self) {
        let i = self.n;
        let time = self.t0 + i as i64 * EVERY_MS;
        let p = i % PARTITIONS as usize;
        let mut session = SaveSession::new(&self.repo);
        let end = self.add_segment(&mut session, i, time, p).await;
        let commits = self.commit_groups(p, end, time);
        let mut w = ManifestWriter::new(&mut session);
        let mut pnodes = Vec::new();
        for q in 0..PARTITIONS as usize {
            let log_start = self.segments[q].first().map_or(0, |s| {
                kvault::image::manifest::from_meta::<kvault::image::manifest::SegmentMeta>(s)
                    .unwrap()
                    .start
            });
            let meta = PartitionMeta {
                partition: q as i32,
                log_start,
                end: self.ends[q],
                records: 0,
                expired: vec![],
                lost: vec![],
                open: vec![],
            };
            pnodes.push(w.partition(meta, self.segments[q].clone()).await.unwrap());
        }
        let tm = TopicMeta {
            partitions: PARTITIONS,
            replication_factor: 1,
            configs: BTreeMap::from([("retention.ms".to_string(), "604800000".to_string())]),
        };
        let topic = w.topic("events", &tm, pnodes).await.unwrap();
        let meta = CommitsMeta {
            positions: BTreeMap::from([(0, (i as i64 + 1) * 3)]),
            commits: commits.len() as u64,
            complete: i > 0,
            note: String::new(),
        };
        let (root, logical) = w
            .root(vec![topic], self.offsets.clone(), Some((meta, commits)), None)
            .await
            .unwrap();
        session.commit().await.unwrap();
        let st = UNIX_EPOCH + Duration::from_millis(time as u64);
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            time: humantime::format_rfc3339_nanos(st).to_string(),
            hostname: "bench".into(),
            username: "bench".into(),
            kind: KAFKA_KIND.into(),
            source: "bench-cluster".into(),
            tags: vec![],
            tree: root,
            parent: self.parent,
            original: None,
            run: None,
            summary: SnapshotSummary {
                logical_bytes: logical,
                ..Default::default()
            },
            erasures: Vec::new(),
            retained_until: None,
        };
        self.parent = Some(self.repo.save_snapshot(&snap).await.unwrap());
        self.n += 1;
    }
}

fn timed<T>(what: &str, f: impl std::future::Future<Output = T>, rt: &tokio::runtime::Runtime) -> (T, f64) {
    let t = Instant::now();
    let out = rt.block_on(f);
    let s = t.elapsed().as_secs_f64();
    println!("  {what:<44} {s:7.2} s");
    (out, s)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let checkpoints: Vec<usize> = std::env::var("KVAULT_BENCH_SNAPSHOTS")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let opts = InitOptions {
        kdf: KdfParams::insecure_fast(),
        ..Default::default()
    };
    let backend = kvault::open_backend(path.to_str().unwrap(), &Default::default()).unwrap();
    let repo = rt.block_on(Repository::init(backend, b"pw", &opts)).unwrap();
    let t0 = 1_767_225_600_000; // 2026-01-01
    let mut b = Builder {
        repo,
        segments: vec![Vec::new(); PARTITIONS as usize],
        ends: vec![0; PARTITIONS as usize],
        offsets: BTreeMap::new(),
        parent: None,
        t0,
        n: 0,
    };
    let mut rows = Vec::new();
    for &n in &checkpoints {
        let t = Instant::now();
        while b.n < n {
            rt.block_on(b.add());
        }
        println!("== {n} snapshots (built in {:.1} s)", t.elapsed().as_secs_f64());
        // Every command opens the repository afresh, as the CLI does.
        let open = || async {
            let backend = kvault::open_backend(path.to_str().unwrap(), &Default::default()).unwrap();
            Repository::open(backend, b"pw").await.unwrap()
        };
        let (_, list) = timed(
            "snapshots (open, load every snapshot)",
            async {
                let r = open().await;
                r.load_snapshots().await.unwrap().len()
            },
            &rt,
        );
        // The middle of the history, between two snapshots.
        let at = t0 + (n as i64 / 2) * EVERY_MS + EVERY_MS / 2;
        let (_, plan) = timed(
            "restore --at planning (log + groups as of T)",
            async {
                let r = open().await;
                r.load_index().await.unwrap();
                let a = kvault::image::select::as_of(&r, "bench-cluster", at)
                    .await
                    .unwrap();
                assert!(a.groups_from.contains("commit"), "{}", a.groups_from);
                a.manifest.topics.len()
            },
            &rt,
        );
        let (_, fg) = timed(
            "forget --keep-hourly 24 --keep-daily 30 (dry run)",
            async {
                let r = open().await;
                let o = ForgetOptions {
                    policy: Policy {
                        hourly: 24,
                        daily: 30,
                        ..Default::default()
                    },
                    dry_run: true,
                    ..Default::default()
                };
                forget(&r, &o).await.unwrap().removed.len()
            },
            &rt,
        );
        let (_, ck) = timed(
            "check (structure, no data)",
            async {
                let r = open().await;
                let rep = check(&r, &CheckOptions::default(), &NoProgress).await.unwrap();
                assert!(rep.errors.is_empty(), "{:?}", rep.errors);
                rep.trees
            },
            &rt,
        );
        rows.push((n, list, plan, fg, ck));
        // For profiling: `KVAULT_BENCH_REPEAT_CHECK=10 perf record …`.
        let repeat: usize = std::env::var("KVAULT_BENCH_REPEAT_CHECK")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for _ in 0..repeat {
            rt.block_on(async {
                let r = open().await;
                check(&r, &CheckOptions::default(), &NoProgress).await.unwrap();
            });
        }
    }
    println!("\n| snapshots | snapshots | restore --at planning | forget (dry run) | check |");
    println!("|---|---|---|---|---|");
    for (n, a, b, c, d) in rows {
        println!("| {n} | {a:.2} s | {b:.2} s | {c:.2} s | {d:.2} s |");
    }
}
