//! `kvault snapshot` against a real broker: every record shape, increments,
//! unchanged clusters, dedup across topics, transactions, retention, groups,
//! and failures.

use std::sync::Arc;

use kvault::backend::memory::MemoryBackend;
use kvault::image::manifest::{self, Manifest};
use kvault::image::reader::{RecordFilter, for_each_record};
use kvault::image::record::Record;
use kvault::kafka::KafkaOptions;
use kvault::ops::snapshot::{SnapshotOptions, SnapshotResult, snapshot};
use kvault::{Id, NoProgress, Repository};

use crate::common::init_on;

/// Progress that notes when the first records were read.
#[derive(Default)]
struct FirstRecords(std::sync::atomic::AtomicBool);

impl kvault::ops::progress::Progress for FirstRecords {
    fn event(&self, e: &kvault::ops::progress::Event<'_>) {
        if matches!(e, kvault::ops::progress::Event::Records { records, .. } if *records > 0) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
use crate::kafka::*;
use crate::repository::assert_clean;

fn opts(topics: &[&str], groups: &[&str]) -> SnapshotOptions {
    SnapshotOptions {
        kafka: KafkaOptions::new(&source()),
        topics: topics.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

async fn snap(repo: &Repository, topics: &[&str], groups: &[&str]) -> SnapshotResult {
    snapshot(repo, &opts(topics, groups), &NoProgress).await.unwrap()
}

async fn load(repo: &Repository, id: &Id) -> Manifest {
    let s = repo.load_snapshot(id).await.unwrap();
    repo.load_index().await.unwrap();
    manifest::load(repo, &s.tree, true).await.unwrap()
}

async fn records(repo: &Repository, id: &Id, topic: &str) -> Vec<(i32, i64, Record)> {
    let m = load(repo, id).await;
    let mut out = Vec::new();
    for p in m.topics[topic].partitions.values() {
        let part = p.meta.partition;
        let mut got = Vec::new();
        let mut f = |o: i64, r: Record| {
            got.push((part, o, r));
            Ok(())
        };
        for_each_record(repo, topic, p, &RecordFilter::default(), &mut f)
            .await
            .unwrap();
        out.extend(got);
    }
    out
}

/// The record shapes, for the Kafka fixture.
pub fn shapes_for_fixture(n: usize, partitions: i32) -> Vec<(i32, Record)> {
    shapes(n, partitions)
}

fn shapes(n: usize, partitions: i32) -> Vec<(i32, Record)> {
    let base = now_ms() - 3_600_000;
    let mut v = Vec::new();
    for i in 0..n {
        let ts = base + i as i64;
        let key = format!("key-{}", i % 7);
        let val = format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 50));
        let r = match i % 6 {
            0 => rec(ts, None, Some(val.as_bytes()), &[]),
            1 => rec(ts, Some(key.as_bytes()), Some(val.as_bytes()), &[]),
            2 => rec(ts, Some(key.as_bytes()), None, &[]),
            3 => rec(ts, Some(b""), Some(b""), &[]),
            4 => rec(
                ts,
                Some(key.as_bytes()),
                Some(&[0xff, 0x00, 0xfe]),
                &[
                    ("h", Some(b"1")),
                    ("h", Some(b"2")),
                    ("n", None),
                    ("e", Some(b"")),
                ],
            ),
            _ => rec(ts, None, None, &[("only", Some(b"header"))]),
        };
        v.push(((i as i32) % partitions, r));
    }
    v
}

#[tokio::test]
async fn every_record_shape_is_captured_exactly() {
    shapes_round_trip(&[]).await;
}

/// The same with batches the broker stores compressed: records (and the
/// header bytes librdkafka reads through kvault's shim) then come from a
/// decompressed buffer, not the fetch response.
#[tokio::test]
async fn every_record_shape_is_captured_exactly_from_compressed_batches() {
    shapes_round_trip(&[("compression.type", "zstd")]).await;
}

async fn shapes_round_trip(configs: &[(&str, &str)]) {
    let b = source();
    let topic = unique("shapes");
    create_topic(&b, &topic, 3, configs).await;
    let sent = shapes(600, 3);
    produce(&b, &topic, &sent);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let r = snap(&repo, &[&topic], &["none"]).await;
    assert_eq!(r.records_read, 600);
    assert_eq!(r.partitions, 3);
    let got = records(&repo, &r.snapshot, &topic).await;
    assert_eq!(got.len(), 600);
    for p in 0..3 {
        let want: Vec<&Record> = sent.iter().filter(|(q, _)| *q == p).map(|(_, r)| r).collect();
        let have: Vec<(i64, &Record)> = got
            .iter()
            .filter(|(q, _, _)| *q == p)
            .map(|(_, o, r)| (*o, r))
            .collect();
        assert_eq!(have.len(), want.len());
        for (i, ((o, h), w)) in have.iter().zip(&want).enumerate() {
            assert_eq!(*o, i as i64, "offsets are contiguous");
            assert_eq!(h, w, "partition {p} offset {o}");
        }
    }
    assert_clean(&repo, true).await;
}

#[tokio::test]
async fn increments_read_only_new_offsets_and_unchanged_costs_almost_nothing() {
    let b = source();
    let topic = unique("incr");
    create_topic(&b, &topic, 2, &[]).await;
    produce(&b, &topic, &shapes(300, 2));
    let mem = MemoryBackend::new();
    let repo = init_on(Arc::new(mem.clone())).await;
    let first = snap(&repo, &[&topic], &["none"]).await;
    assert_eq!(first.records_read, 300);
    produce(&b, &topic, &shapes(50, 2));
    let second = snap(&repo, &[&topic], &["none"]).await;
    assert_eq!(second.parent, Some(first.snapshot));
    assert_eq!(second.records_read, 50, "only new offsets are read");
    assert_eq!(second.records_total, 350);
    let got = records(&repo, &second.snapshot, &topic).await;
    assert_eq!(got.len(), 350);

    let before = mem.total_size();
    let third = snap(&repo, &[&topic], &["none"]).await;
    assert_eq!(third.records_read, 0);
    assert_eq!(third.partitions_read, 0);
    let grew = mem.total_size() - before;
    assert!(grew < 8_192, "an unchanged snapshot added {grew} bytes");
    // The unchanged topic keeps its subtree.
    let (m2, m3) = (
        load(&repo, &second.snapshot).await,
        load(&repo, &third.snapshot).await,
    );
    assert_eq!(m2.topics[&topic].node, m3.topics[&topic].node);
    assert_clean(&repo, true).await;
}

#[tokio::test]
async fn the_same_records_in_two_topics_are_stored_once() {
    let b = source();
    let (t1, t2) = (unique("same-a"), unique("same-b"));
    create_topic(&b, &t1, 1, &[]).await;
    create_topic(&b, &t2, 1, &[]).await;
    let big: Vec<(i32, Record)> = (0..20_000)
        .map(|i| {
            (
                0,
                rec(
                    now_ms() - 60_000 + i,
                    Some(format!("k{i}").as_bytes()),
                    Some(format!("{{\"event\":{i},\"data\":\"{}\"}}", i * 7919 % 100_003).as_bytes()),
                    &[],
                ),
            )
        })
        .collect();
    produce(&b, &t1, &big);
    produce(&b, &t2, &big);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let r = snap(&repo, &[&t1, &t2], &["none"]).await;
    assert_eq!(r.records_read, 40_000);
    assert!(r.dedup_saved_bytes * 10 >= r.bytes_read * 4, "{r:?}");
    let s = kvault::ops::stats::stats(&repo).await.unwrap();
    assert!(s.dedup_ratio > 1.8, "{s:?}");
}

#[tokio::test]
async fn aborted_transactions_are_not_data_and_leave_recorded_gaps() {
    let b = source();
    let topic = unique("tx");
    create_topic(&b, &topic, 1, &[]).await;
    let batch = |tag: &str, n: i64| -> Vec<(i32, Record)> {
        (0..n)
            .map(|i| {
                (
                    0,
                    rec(
                        now_ms() - 60_000 + i,
                        Some(tag.as_bytes()),
                        Some(format!("{tag}-{i}").as_bytes()),
                        &[],
                    ),
                )
            })
            .collect()
    };
    produce_transaction(&b, &topic, &batch("committed1", 5), true);
    produce_transaction(&b, &topic, &batch("aborted", 4), false);
    produce_transaction(&b, &topic, &batch("committed2", 3), true);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let r = snap(&repo, &[&topic], &["none"]).await;
    let got = records(&repo, &r.snapshot, &topic).await;
    let values: Vec<String> = got
        .iter()
        .map(|(_, _, r)| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(values.len(), 8, "{values:?}");
    assert!(values.iter().all(|v| !v.starts_with("aborted")));
    let m = load(&repo, &r.snapshot).await;
    let p = &m.topics[&topic].partitions[&0];
    let seg = &p.segments[0];
    let gaps = seg.meta.runs.gaps(seg.meta.start, seg.meta.end);
    // Control records (3 commits/aborts) and the 4 aborted records are gaps.
    let gap_total: i64 = gaps.iter().map(|g| g[1] - g[0]).sum();
    assert_eq!(gap_total, 7, "{gaps:?}");
    assert_eq!(p.meta.end, 15);
}

#[tokio::test]
async fn group_offsets_and_topic_configs_are_captured() {
    let b = source();
    let topic = unique("groups");
    create_topic(
        &b,
        &topic,
        2,
        &[("retention.ms", "86400000"), ("cleanup.policy", "delete")],
    )
    .await;
    produce(&b, &topic, &shapes(40, 2));
    let group = unique("g");
    commit_group(&b, &group, &[(&topic, 0, 5, "meta-0"), (&topic, 1, 7, "")]);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let r = snap(&repo, &[&topic], &[&group]).await;
    assert_eq!(r.groups, 1);
    let m = load(&repo, &r.snapshot).await;
    let offs = &m.groups[&group];
    assert_eq!(offs.len(), 2);
    assert_eq!(
        (offs[0].partition, offs[0].offset, offs[0].metadata.as_str()),
        (0, 5, "meta-0")
    );
    assert_eq!((offs[1].partition, offs[1].offset), (1, 7));
    let t = &m.topics[&topic].meta;
    assert_eq!(t.partitions, 2);
    assert_eq!(t.replication_factor, 1);
    // Exactly what was set on the topic: no broker defaults.
    let configs: Vec<(&str, &str)> = t.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        configs,
        [("cleanup.policy", "delete"), ("retention.ms", "86400000")]
    );
}

#[tokio::test]
async fn retention_moves_the_log_start_and_old_data_is_no_longer_referenced() {
    let b = source();
    let topic = unique("retention");
    create_topic(&b, &topic, 1, &[]).await;
    produce(&b, &topic, &shapes(100, 1));
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let first = snap(&repo, &[&topic], &["none"]).await;
    produce(&b, &topic, &shapes(100, 1));
    let second = snap(&repo, &[&topic], &["none"]).await;
    assert_eq!(
        load(&repo, &second.snapshot).await.topics[&topic].partitions[&0]
            .segments
            .len(),
        2
    );
    // DeleteRecords past the first segment: the next snapshot drops it.
    delete_records(&b, &topic, 0, 150).await;
    let third = snap(&repo, &[&topic], &["none"]).await;
    let m = load(&repo, &third.snapshot).await;
    let p = &m.topics[&topic].partitions[&0];
    assert_eq!(p.meta.log_start, 150);
    assert_eq!(p.segments.len(), 1, "the segment below the log start is dropped");
    assert!(third.warnings.is_empty(), "{:?}", third.warnings);
    // Records deleted before any snapshot read them: recorded and warned.
    produce(&b, &topic, &shapes(100, 1));
    delete_records(&b, &topic, 0, 250).await;
    let fourth = snap(&repo, &[&topic], &["none"]).await;
    let p4 = load(&repo, &fourth.snapshot).await.topics[&topic].partitions[&0].clone();
    assert_eq!(p4.meta.expired, vec![[200, 250]]);
    assert_eq!(fourth.expired_offsets, 50, "the CLI exits 3 on this");
    let listing = kvault::ops::ls::ls(&load(&repo, &fourth.snapshot).await);
    let lp = &listing.topics[0].partitions[0];
    assert_eq!(
        lp.gap_causes.get("retention"),
        Some(&vec![[200, 250]]),
        "{:?}",
        lp.gap_causes
    );
    assert_eq!(
        third.expired_offsets, 0,
        "a log start the snapshots followed is not expiry"
    );
    assert!(
        fourth.warnings.iter().any(|w| w.contains("expired")),
        "{:?}",
        fourth.warnings
    );
    // The first snapshot is still complete.
    assert_eq!(records(&repo, &first.snapshot, &topic).await.len(), 100);
    assert_clean(&repo, true).await;
}

#[tokio::test]
async fn unknown_topics_and_unreachable_brokers_fail_clearly() {
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let e = snapshot(&repo, &opts(&["no-such-topic-xyz"], &[]), &NoProgress)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no-such-topic-xyz"), "{e}");
    let mut o = opts(&[], &[]);
    o.kafka = KafkaOptions::new("127.0.0.1:1");
    o.kafka.timeout = Some(std::time::Duration::from_secs(3));
    let e = snapshot(&repo, &o, &NoProgress).await.unwrap_err();
    assert!(e.to_string().contains("cannot reach Kafka at 127.0.0.1:1"), "{e}");
    assert!(
        repo.load_snapshots().await.unwrap().is_empty(),
        "no half snapshot"
    );
}

#[tokio::test]
async fn a_compacted_topic_keeps_its_holes_as_recorded_gaps() {
    let b = source();
    let topic = unique("compact");
    create_topic(&b, &topic, 1, &COMPACT_SOON).await;
    let base = now_ms() - 10_000;
    let mut sent = Vec::new();
    for round in 0..20 {
        for k in 0..10 {
            sent.push((
                0,
                rec(
                    base + round * 10 + k,
                    Some(format!("k{k}").as_bytes()),
                    Some(format!("v{round}").as_bytes()),
                    &[],
                ),
            ));
        }
    }
    produce(&b, &topic, &sent);
    // Roll segments so the cleaner may compact all but the active one.
    let mut cleaned = false;
    for i in 0..90 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        produce(
            &b,
            &topic,
            &[(
                0,
                rec(
                    now_ms(),
                    Some(format!("tick{}", i % 3).as_bytes()),
                    Some(b"t"),
                    &[],
                ),
            )],
        );
        if count_records(&b, &topic, 0) < 150 {
            cleaned = true;
            break;
        }
    }
    assert!(cleaned, "the log cleaner did not run within 45 s");
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let r = snap(&repo, &[&topic], &["none"]).await;
    let m = load(&repo, &r.snapshot).await;
    let p = &m.topics[&topic].partitions[&0];
    assert_eq!(
        m.topics[&topic]
            .meta
            .configs
            .get("cleanup.policy")
            .map(String::as_str),
        Some("compact")
    );
    let seg = &p.segments[0];
    let gaps = seg.meta.runs.gaps(seg.meta.start, seg.meta.end);
    assert!(!gaps.is_empty(), "compaction holes are recorded as gaps");
    let got = records(&repo, &r.snapshot, &topic).await;
    assert_eq!(got.len() as u64, p.meta.records);
    assert_eq!(
        got.len(),
        count_records(&b, &topic, 0),
        "exactly what a consumer sees"
    );
    // The latest value of every key survived compaction and the backup.
    for k in 0..10 {
        let key = format!("k{k}").into_bytes();
        let last = got
            .iter()
            .rev()
            .find(|(_, _, r)| r.key.as_deref() == Some(&key[..]))
            .unwrap();
        assert_eq!(last.2.value.as_deref(), Some(&b"v19"[..]));
    }
}

#[tokio::test]
async fn time_retention_moves_the_log_start_between_snapshots() {
    let b = source();
    let topic = unique("timeret");
    create_topic(&b, &topic, 1, &[("retention.ms", "3000"), ("segment.ms", "300")]).await;
    produce(
        &b,
        &topic,
        &shapes(50, 1)
            .into_iter()
            .map(|(p, mut r)| {
                r.timestamp = now_ms();
                (p, r)
            })
            .collect::<Vec<_>>(),
    );
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let first = snap(&repo, &[&topic], &["none"]).await;
    assert_eq!(first.records_read, 50);
    let mut moved = false;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        produce(&b, &topic, &[(0, rec(now_ms(), None, Some(b"later"), &[]))]);
        if watermarks(&b, &topic, 0).0 >= 50 {
            moved = true;
            break;
        }
    }
    assert!(
        moved,
        "time retention did not delete the first records within 30 s"
    );
    let second = snap(&repo, &[&topic], &["none"]).await;
    let p = load(&repo, &second.snapshot).await.topics[&topic].partitions[&0].clone();
    assert!(p.meta.log_start >= 50);
    assert!(
        p.segments.iter().all(|s| s.meta.end > p.meta.log_start),
        "expired segments are no longer referenced"
    );
    // Filler records produced after the first snapshot may expire unread
    // (recorded as such); nothing the first snapshot read is reported lost.
    assert!(p.meta.expired.iter().all(|g| g[0] >= 50), "{:?}", p.meta.expired);
    assert_eq!(
        records(&repo, &first.snapshot, &topic).await.len(),
        50,
        "the older snapshot is intact"
    );
}

#[tokio::test]
async fn size_retention_moves_the_log_start_between_snapshots() {
    let b = source();
    let topic = unique("sizeret");
    // Kafka 4 segments are at least 1 MiB; keep about two of them.
    create_topic(
        &b,
        &topic,
        1,
        &[("retention.bytes", "2097152"), ("segment.bytes", "1048576")],
    )
    .await;
    let value = vec![b'x'; 1000];
    let batch = |n: usize| -> Vec<(i32, Record)> {
        (0..n)
            .map(|_| (0, rec(now_ms(), None, Some(&value), &[])))
            .collect()
    };
    produce(&b, &topic, &batch(1500));
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let first = snap(&repo, &[&topic], &["none"]).await;
    assert_eq!(first.records_read, 1500);
    let mut moved = false;
    for _ in 0..60 {
        produce(&b, &topic, &batch(1000));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if watermarks(&b, &topic, 0).0 >= 1500 {
            moved = true;
            break;
        }
    }
    assert!(
        moved,
        "size retention did not move the log start past the first snapshot"
    );
    let second = snap(&repo, &[&topic], &["none"]).await;
    let p = load(&repo, &second.snapshot).await.topics[&topic].partitions[&0].clone();
    assert!(p.meta.log_start >= 1500);
    assert!(p.segments.iter().all(|s| s.meta.end > p.meta.log_start));
    assert_eq!(
        records(&repo, &first.snapshot, &topic).await.len(),
        1500,
        "the older snapshot is intact"
    );
    assert_clean(&repo, false).await;
}

#[tokio::test]
async fn a_topic_deleted_during_a_snapshot_is_left_out_and_the_rest_is_complete() {
    let b = source();
    let (doomed, kept) = (unique("doomed"), unique("kept"));
    create_topic(&b, &doomed, 4, &[]).await;
    create_topic(&b, &kept, 1, &[]).await;
    let many: Vec<(i32, Record)> = (0..150_000)
        .map(|i| {
            (
                i % 4,
                rec(now_ms(), Some(b"k"), Some(format!("value {i}").as_bytes()), &[]),
            )
        })
        .collect();
    produce(&b, &doomed, &many);
    produce(&b, &kept, &shapes(100, 1));
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let (r2, b2, d2, k2) = (repo.clone(), b.clone(), doomed.clone(), kept.clone());
    let reading = Arc::new(FirstRecords::default());
    let seen = reading.clone();
    let running = tokio::spawn(async move {
        let o = SnapshotOptions {
            kafka: KafkaOptions::new(&b2),
            topics: vec![d2, k2],
            groups: vec!["none".into()],
            ..Default::default()
        };
        snapshot(&r2, &o, &*seen).await
    });
    // Deleted while the snapshot reads: once its first records arrived.
    crate::common::wait_until_async(
        "the snapshot's first records",
        std::time::Duration::from_secs(60),
        || {
            let read = reading.0.load(std::sync::atomic::Ordering::Relaxed);
            async move { read }
        },
    )
    .await;
    delete_topic(&b, &doomed).await;
    let r = running.await.unwrap().unwrap();
    let m = load(&repo, &r.snapshot).await;
    if let Some(t) = m.topics.get(&doomed) {
        // Read completely before the deletion landed: then it is whole.
        assert_eq!(
            t.partitions.values().map(|p| p.meta.records).sum::<u64>(),
            150_000
        );
    } else {
        assert!(r.warnings.iter().any(|w| w.contains(&doomed)), "{:?}", r.warnings);
    }
    assert_eq!(records(&repo, &r.snapshot, &kept).await.len(), 100);
    assert_clean(&repo, true).await;
    // A topic created since is picked up by the next snapshot.
    let newer = unique("newer");
    create_topic(&b, &newer, 1, &[]).await;
    produce(&b, &newer, &shapes(10, 1));
    let again = snapshot(&repo, &opts(&[&kept, &newer], &["none"]), &NoProgress)
        .await
        .unwrap();
    assert_eq!(records(&repo, &again.snapshot, &newer).await.len(), 10);
}
