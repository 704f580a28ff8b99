//! The committed Kafka fixture (tests/fixtures/kafka-v1.tar.gz): two
//! incremental snapshots of one topic (every record shape, 2 partitions)
//! and a consumer group. Every later kvault must read it exactly; reading
//! needs no broker.

use kvault::NoProgress;
use kvault::image::manifest;
use kvault::image::reader::{RecordFilter, for_each_record};
use kvault::image::record::Record;

const PASSWORD: &[u8] = b"kvault kafka fixture v1";
const TARBALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kafka-v1.tar.gz");

/// What the fixture's topic holds per partition, timestamps aside.
fn expected(partition: i32) -> Vec<Record> {
    let first = crate::kafka_snapshot::shapes_for_fixture(60, 2);
    let second = crate::kafka_snapshot::shapes_for_fixture(20, 2);
    first
        .into_iter()
        .chain(second)
        .filter(|(p, _)| *p == partition)
        .map(|(_, r)| r)
        .collect()
}

/// A committed fixture extracted and opened, after `check --read-data`
/// found it whole.
async fn open_checked(
    tarball: &str,
    name: &str,
    password: &[u8],
) -> (tempfile::TempDir, kvault::repo::Repository) {
    let (dir, root) = crate::common::extract_fixture(tarball, name);
    let repo = kvault::ops::open(root.to_str().unwrap(), &Default::default(), password)
        .await
        .unwrap();
    let opts = kvault::ops::check::CheckOptions {
        read_data: true,
        subset_percent: None,
        ..Default::default()
    };
    let rep = kvault::ops::check::check(&repo, &opts, &NoProgress)
        .await
        .unwrap();
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    (dir, repo)
}

#[tokio::test]
async fn the_kafka_v1_fixture_still_reads() {
    let (_dir, repo) = open_checked(TARBALL, "kafka-v1", PASSWORD).await;
    let snaps = repo.load_snapshots().await.unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[1].1.parent, Some(snaps[0].0));
    let m = manifest::load(&repo, &snaps[1].1.tree, true).await.unwrap();
    assert_eq!(m.topics.len(), 1);
    let t = m.topics.values().next().unwrap();
    assert_eq!(t.meta.partitions, 2);
    assert_eq!(m.groups["fixture-group"][0].offset, 7);
    for p in t.partitions.values() {
        assert_eq!(p.segments.len(), 2, "one segment per snapshot");
        let mut got = Vec::new();
        let mut f = |o: i64, r: Record| {
            got.push((o, r));
            Ok(())
        };
        for_each_record(&repo, "fixture", p, &RecordFilter::default(), &mut f)
            .await
            .unwrap();
        let want = expected(p.meta.partition);
        assert_eq!(got.len(), want.len());
        for (i, ((o, g), w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(*o, i as i64);
            assert_eq!(
                (&g.key, &g.value, &g.headers, g.timestamp_type),
                (&w.key, &w.value, &w.headers, w.timestamp_type)
            );
        }
    }
}

/// Regenerates the fixture (needs a broker; only for a new format version,
/// into a new file): `cargo test -- --ignored make_kafka_fixture`.
#[tokio::test]
#[ignore]
async fn make_kafka_fixture() {
    use crate::kafka::*;
    let b = source();
    let topic = unique("fixture");
    create_topic(&b, &topic, 2, &[("retention.ms", "-1")]).await;
    produce(&b, &topic, &crate::kafka_snapshot::shapes_for_fixture(60, 2));
    commit_group(&b, "fixture-group", &[(&topic, 0, 7, "fixture")]);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("kafka-v1");
    let repo = crate::common::fixture_repo(&root, PASSWORD).await;
    let so = kvault::ops::snapshot::SnapshotOptions {
        kafka: kvault::kafka::KafkaOptions::new(&b),
        topics: vec![topic.clone()],
        groups: vec!["fixture-group".into()],
        ..Default::default()
    };
    kvault::ops::snapshot::snapshot(&repo, &so, &NoProgress)
        .await
        .unwrap();
    produce(&b, &topic, &crate::kafka_snapshot::shapes_for_fixture(20, 2));
    kvault::ops::snapshot::snapshot(&repo, &so, &NoProgress)
        .await
        .unwrap();
    crate::common::tar_fixture(dir.path(), "kafka-v1", &format!("{TARBALL}.new"));
}

fn cli(root: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let o = crate::cli::bare()
        .arg("-r")
        .arg(root)
        .arg("--no-progress")
        .args(args)
        .env("KVAULT_PASSWORD", "kvault kafka fixture v1")
        .env_remove("KVAULT_REPOSITORY")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn ls_dump_and_diff_on_the_fixture() {
    let (_dir, root) = crate::common::extract_fixture(TARBALL, "kafka-v1");

    let (code, out, err) = cli(&root, &["ls", "latest"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("partitions=2") && out.contains("offsets 0..40  40 records in 2 segment(s)"),
        "{out}"
    );
    assert!(out.contains("group fixture-group"), "{out}");

    // Offset filters: [5, 8) of partition 0.
    let (code, out, err) = cli(
        &root,
        &[
            "dump",
            "latest",
            "--topic",
            &topic(&root),
            "--partition",
            "0",
            "--from-offset",
            "5",
            "--to-offset",
            "8",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        lines
            .iter()
            .map(|l| l["offset"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    // Every shape renders as documented: null stays null, empty stays "",
    // binary is base64, headers keep order and duplicates.
    let (_, all, _) = cli(&root, &["dump", "latest", "--topic", &topic(&root)]);
    let all: Vec<serde_json::Value> = all.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(all.len(), 80);
    assert!(all.iter().any(|r| r["key"].is_null() && r["value"].is_null()));
    assert!(all.iter().any(|r| r["key"] == "" && r["value"] == ""));
    let bin = all.iter().find(|r| r["value_encoding"] == "base64").unwrap();
    assert_eq!(bin["value"], "/wD+");
    assert_eq!(
        bin["headers"],
        serde_json::json!([
            {"key": "h", "value": "1", "value_encoding": "utf8"},
            {"key": "h", "value": "2", "value_encoding": "utf8"},
            {"key": "n", "value": null},
            {"key": "e", "value": "", "value_encoding": "utf8"}
        ])
    );
    // Time filters select by record timestamp.
    let ts: Vec<i64> = all.iter().map(|r| r["timestamp"].as_i64().unwrap()).collect();
    let mid = ts[10];
    let (_, after, _) = cli(
        &root,
        &[
            "dump",
            "latest",
            "--topic",
            &topic(&root),
            "--from-time",
            &mid.to_string(),
        ],
    );
    assert_eq!(after.lines().count(), ts.iter().filter(|t| **t >= mid).count());

    // diff names what changed between the two snapshots.
    let (_, snaps, _) = cli(&root, &["snapshots", "--json"]);
    let first: serde_json::Value = serde_json::from_str(snaps.lines().next().unwrap()).unwrap();
    let (code, out, err) = cli(&root, &["diff", first["id"].as_str().unwrap(), "latest"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("/0: offsets 0..30 -> 0..40, records 30 -> 40"),
        "{out}"
    );

    // A stream snapshot command on a Kafka snapshot is a clear error.
    let (code, _, err) = cli(&root, &["get", "latest"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a stream"), "{err}");
}

fn topic(root: &std::path::Path) -> String {
    let (_, out, _) = cli(root, &["ls", "latest", "--json"]);
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    first["topic"].as_str().unwrap().to_string()
}

const FILTER_PASSWORD: &[u8] = b"kvault key filter fixture v1";
const FILTER_TARBALL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/kafka-keyfilter-v1.tar.gz"
);

/// The key-filter fixture's first records: 3,000 keys `key-N` with
/// compressible values in partition 0, so one segment of many 16 KiB
/// chunks, and 30 keys `small-N` in partition 1, a segment of one chunk.
fn filter_fixture_records() -> Vec<(i32, Record)> {
    let big = (0..3000).map(|i| (0, format!("key-{i}"), format!("value {i} {}", "x".repeat(100))));
    let small = (0..30).map(|i| (1, format!("small-{i}"), format!("small value {i}")));
    fixture_records(big.chain(small), 1_765_000_000_000)
}

/// The key-filter fixture's second snapshot's records: 5 keys `late-N` in
/// each partition (two small segments sharing one filter blob).
fn filter_fixture_late_records() -> Vec<(i32, Record)> {
    let late = (0..10).map(|i| (i % 2, format!("late-{i}"), format!("late value {i}")));
    fixture_records(late, 1_765_000_100_000)
}

/// Records (partition, key, value) one millisecond apart from `t0`.
fn fixture_records(rs: impl Iterator<Item = (i32, String, String)>, t0: i64) -> Vec<(i32, Record)> {
    rs.enumerate()
        .map(|(i, (p, k, v))| {
            let r = crate::kafka::rec(t0 + i as i64, Some(k.as_bytes()), Some(v.as_bytes()), &[]);
            (p, r)
        })
        .collect()
}

/// The committed key-filter fixture (tests/fixtures/kafka-keyfilter-v1,
/// format-spec §14 "Key filters"): a large segment's own filters and the
/// small segments' shared ones still decode under its key, and find reads
/// only the chunks they allow.
#[tokio::test]
async fn the_key_filter_fixture_still_finds_by_its_filters() {
    let (_dir, repo) = open_checked(FILTER_TARBALL, "kafka-keyfilter-v1", FILTER_PASSWORD).await;
    let find = |key: &str, no_filters: bool| kvault::ops::find::FindOptions {
        key: key.as_bytes().to_vec(),
        no_filters,
        ..Default::default()
    };
    for (key, partition, offset) in [("key-2345", 0, 2345), ("small-17", 1, 17), ("late-3", 1, 31)] {
        let all = kvault::ops::find::find(&repo, &find(key, true)).await.unwrap();
        let f = kvault::ops::find::find(&repo, &find(key, false)).await.unwrap();
        assert_eq!(f.versions.len(), 1, "{key}");
        assert_eq!(
            (f.versions[0].record.partition, f.versions[0].record.offset),
            (partition, offset)
        );
        assert_eq!(f.versions[0].snapshots, all.versions[0].snapshots, "{key}");
        assert!(all.chunks_read >= 10 && all.segments_unfiltered == 4, "{all:?}");
        assert!(f.chunks_read <= 2 && f.segments_unfiltered == 0, "{key}: {f:?}");
        assert_eq!(f.chunks_read + f.chunks_filtered, all.chunks_read);
    }
    // The latest snapshot's three small segments name their place in a
    // shared blob; the large one owns its blob.
    let latest = repo.find_id(kvault::FileKind::Snapshot, "latest").await.unwrap();
    let tree = repo.load_snapshot(&latest).await.unwrap().tree;
    let m = kvault::image::manifest::load(&repo, &tree, true).await.unwrap();
    let segments: Vec<_> = m
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .flat_map(|p| &p.segments)
        .map(|s| (s.chunks.len(), s.meta.filter_at, s.filter.is_some()))
        .collect();
    assert_eq!(segments.len(), 4, "{segments:?}");
    assert!(segments.iter().all(|(_, _, has)| *has), "{segments:?}");
    let shared = segments
        .iter()
        .filter(|(n, at, _)| *n < 4 && at.is_some())
        .count();
    let own = segments
        .iter()
        .filter(|(n, at, _)| *n >= 4 && at.is_none())
        .count();
    assert_eq!((shared, own), (3, 1), "{segments:?}");
}

/// Regenerates the key-filter fixture (needs a broker):
/// `cargo test -- --ignored make_key_filter_fixture`.
#[tokio::test]
#[ignore]
async fn make_key_filter_fixture() {
    use crate::kafka::*;
    let b = source();
    let topic = unique("keyfilter");
    create_topic(&b, &topic, 2, &[("retention.ms", "-1")]).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("kafka-keyfilter-v1");
    let repo = crate::common::fixture_repo(&root, FILTER_PASSWORD).await;
    let so = kvault::ops::snapshot::SnapshotOptions {
        kafka: kvault::kafka::KafkaOptions::new(&b),
        topics: vec![topic.clone()],
        groups: vec!["none".into()],
        ..Default::default()
    };
    for records in [filter_fixture_records(), filter_fixture_late_records()] {
        produce(&b, &topic, &records);
        kvault::ops::snapshot::snapshot(&repo, &so, &NoProgress)
            .await
            .unwrap();
    }
    crate::common::tar_fixture(dir.path(), "kafka-keyfilter-v1", &format!("{FILTER_TARBALL}.new"));
}
