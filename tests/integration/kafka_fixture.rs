//! The committed Kafka fixture (tests/fixtures/kafka-v1.tar.gz): two
//! incremental snapshots of one topic (every record shape, 2 partitions)
//! and a consumer group. Every later kvault must read it exactly; reading
//! needs no broker.

use std::process::Command;

use kvault::NoProgress;
use kvault::kafka::record::Record;
use kvault::ops::dump::{RecordFilter, for_each_record};
use kvault::ops::manifest;

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

#[tokio::test]
async fn the_kafka_v1_fixture_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        Command::new("tar")
            .arg("-xzf")
            .arg(TARBALL)
            .arg("-C")
            .arg(dir.path())
            .status()
            .unwrap()
            .success()
    );
    let root = dir.path().join("kafka-v1");
    let repo = kvault::ops::open(root.to_str().unwrap(), &Default::default(), PASSWORD)
        .await
        .unwrap();
    let opts = kvault::ops::check::CheckOptions {
        read_data: true,
        subset_percent: None,
    };
    let rep = kvault::ops::check::check(&repo, &opts, &NoProgress)
        .await
        .unwrap();
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
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
    let opts = kvault::InitOptions {
        kdf: kvault::KdfParams::insecure_fast(),
        ..crate::common::small_opts()
    };
    let backend = kvault::open_backend(root.to_str().unwrap(), &Default::default()).unwrap();
    let repo = kvault::Repository::init(backend, PASSWORD, &opts).await.unwrap();
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
