//! `kvault restore` against a real broker: every record shape byte for
//! byte into the same cluster under a prefix, group offsets translated so a
//! consumer of the group resumes at exactly the first record it had not
//! consumed, dry runs, and a corrupt pack.

use std::sync::Arc;
use std::time::Duration;

use kvault::backend::Backend;
use kvault::backend::memory::MemoryBackend;
use kvault::image::record::Record;
use kvault::kafka::KafkaOptions;
use kvault::ops::restore::{RestoreOptions, restore};
use kvault::ops::snapshot::{SnapshotOptions, snapshot};
use kvault::{NoProgress, Repository};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::common::init_on;
use crate::kafka::*;

/// Reads a partition from `from` (or the group's committed offset) with a
/// plain rdkafka consumer: (offset, record) pairs.
fn read_back(b: &str, topic: &str, p: i32, group: Option<&str>) -> Vec<(i64, Record)> {
    let g = group.unwrap_or("kvault-test-reader");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("group.id", g)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let start = if group.is_some() {
        Offset::Stored
    } else {
        Offset::Beginning
    };
    tpl.add_partition_offset(topic, p, start).unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    loop {
        match c.poll(Duration::from_secs(15)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default();
                let ts = m.timestamp().to_millis().unwrap_or(-1);
                out.push((
                    m.offset(),
                    rec(ts, m.key(), m.payload(), &[]).with_headers(headers),
                ));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => return out,
            Some(Err(e)) if crate::kafka::is_connection_event(&e) => eprintln!("read_partition: {e}"),
            Some(Err(e)) => panic!("{e}"),
        }
    }
}

trait WithHeaders {
    fn with_headers(self, h: Vec<(String, Option<Vec<u8>>)>) -> Self;
}
impl WithHeaders for Record {
    fn with_headers(mut self, h: Vec<(String, Option<Vec<u8>>)>) -> Self {
        self.headers = h;
        self
    }
}

pub fn ropts(prefix: &str, topic: &str) -> RestoreOptions {
    RestoreOptions {
        kafka: KafkaOptions::new(&source()),
        topics: vec![topic.into()],
        prefix: prefix.into(),
        state_dir: Some(std::env::temp_dir().join("kvault-test-restore-state")),
        ..Default::default()
    }
}

/// Reads a partition from the beginning, or from a group's committed offset.
pub fn read_partition(b: &str, topic: &str, p: i32, group: Option<&str>) -> Vec<(i64, Record)> {
    read_back(b, topic, p, group)
}

/// Snapshot options for one topic and one group.
pub fn snap_opts(b: &str, topic: &str, group: &str) -> SnapshotOptions {
    SnapshotOptions {
        kafka: KafkaOptions::new(b),
        topics: vec![topic.to_string()],
        groups: vec![group.to_string()],
        ..Default::default()
    }
}

async fn setup(partitions: i32, n: usize) -> (Repository, MemoryBackend, String, String, kvault::Id) {
    let b = source();
    let topic = unique("rt");
    create_topic(&b, &topic, partitions, &[("retention.ms", "-1")]).await;
    let sent = crate::kafka_snapshot::shapes_for_fixture(n, partitions);
    produce(&b, &topic, &sent);
    let group = unique("grp");
    commit_group(&b, &group, &[(&topic, 0, 5, "m0")]);
    let mem = MemoryBackend::new();
    let repo = init_on(Arc::new(mem.clone())).await;
    let so = snap_opts(&b, &topic, &group);
    let s = snapshot(&repo, &so, &NoProgress).await.unwrap();
    (repo, mem, topic, group, s.snapshot)
}

#[tokio::test]
async fn restore_round_trips_every_shape_and_translates_group_offsets() {
    let b = source();
    let (repo, _, topic, group, snap) = setup(2, 400).await;
    let r = restore(&repo, &snap, &ropts("restored-", &topic), &NoProgress)
        .await
        .unwrap();
    let target = format!("restored-{topic}");
    assert_eq!(r.created_topics, vec![target.clone()]);
    assert_eq!(r.records_written, 400);
    for p in 0..2 {
        let src = read_back(&b, &topic, p, None);
        let dst = read_back(&b, &target, p, None);
        assert_eq!(src.len(), 200);
        assert_eq!(
            src, dst,
            "partition {p}: offsets, timestamps, keys, values, headers"
        );
    }
    // The group resumes on the target at exactly the record it had not consumed.
    let g = r
        .groups
        .iter()
        .find(|g| g.group == group && g.topic == target)
        .unwrap();
    assert_eq!((g.source_offset, g.target_offset), (5, Some(5)));
    let resumed = read_back(&b, &target, 0, Some(&group));
    assert_eq!(resumed.first().map(|x| x.0), Some(5));
    assert_eq!(resumed.len(), 195);
}

#[tokio::test]
async fn restoring_onto_a_non_empty_topic_shifts_offsets_exactly() {
    let b = source();
    let (repo, _, topic, group, snap) = setup(1, 50).await;
    let target = format!("again-{topic}");
    create_topic(&b, &target, 1, &[]).await;
    produce(&b, &target, &crate::kafka_snapshot::shapes_for_fixture(7, 1));
    // By default a target that holds records is refused, and nothing is written.
    let err = restore(&repo, &snap, &ropts("again-", &topic), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            kvault::Error::Refused(kvault::Refusal::TargetNotEmpty { .. })
        ),
        "{err}"
    );
    let e = err.to_string();
    assert!(
        e.contains("already hold records") && e.contains(&format!("{target}/0: 7 records")),
        "{e}"
    );
    assert_eq!(read_back(&b, &target, 0, None).len(), 7);
    let mut o = ropts("again-", &topic);
    o.if_not_empty = kvault::ops::restore::IfNotEmpty::Append;
    let r = restore(&repo, &snap, &o, &NoProgress).await.unwrap();
    assert!(r.created_topics.is_empty());
    assert_eq!(r.partitions[0].target_start, Some(7));
    let g = r.groups.iter().find(|g| g.group == group).unwrap();
    assert_eq!(
        g.target_offset,
        Some(12),
        "source offset 5 is the 6th restored record, after 7 existing ones"
    );
    let resumed = read_back(&b, &target, 0, Some(&group));
    let src = read_back(&b, &topic, 0, None);
    assert_eq!(resumed.first().map(|x| &x.1), src.get(5).map(|x| &x.1));
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_shows_the_plan() {
    let b = source();
    let (repo, _, topic, group, snap) = setup(2, 40).await;
    let mut o = ropts("dry-", &topic);
    o.dry_run = true;
    let r = restore(&repo, &snap, &o, &NoProgress).await.unwrap();
    assert!(r.dry_run);
    assert_eq!(r.created_topics, vec![format!("dry-{topic}")]);
    assert_eq!(r.partitions.iter().map(|p| p.records).sum::<u64>(), 40);
    assert!(
        r.groups
            .iter()
            .any(|g| g.group == group && g.target_offset == Some(5))
    );
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &b).create().unwrap();
    let md = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    assert!(
        !md.topics().iter().any(|t| t.name() == format!("dry-{topic}")),
        "a dry run created a topic"
    );
}

#[tokio::test]
async fn a_corrupt_pack_fails_the_restore_and_commits_no_group() {
    let b = source();
    let (repo, mem, topic, group, snap) = setup(1, 300).await;
    let mut packs = mem.list("data").await.unwrap();
    packs.sort();
    for p in &packs {
        let mut bytes = mem.read(&p.path).await.unwrap();
        bytes[40] ^= 1;
        mem.tamper(&p.path, bytes);
    }
    let repo = Repository::open(Arc::new(mem.clone()), b"pw")
        .await
        .unwrap_or(repo);
    let e = restore(&repo, &snap, &ropts("bad-", &topic), &NoProgress)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("corrupt or tampered"), "{e}");
    // The group has no offsets for the target topic.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&format!("bad-{topic}"), 0);
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    assert!(
        committed
            .elements()
            .iter()
            .all(|e| !matches!(e.offset(), Offset::Offset(_))),
        "{committed:?}"
    );
}

#[tokio::test]
async fn restore_at_a_time_cuts_the_log_and_takes_the_groups_of_that_time() {
    let b = source();
    let topic = unique("at");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    let group = unique("atg");
    let t0 = now_ms() - 10_000;
    let batch_a: Vec<(i32, Record)> = (0..100)
        .map(|i| (0, rec(t0 + i, Some(b"a"), Some(format!("a{i}").as_bytes()), &[])))
        .collect();
    produce(&b, &topic, &batch_a);
    commit_group(&b, &group, &[(&topic, 0, 80, "")]);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let so = snap_opts(&b, &topic, &group);
    let s1 = snapshot(&repo, &so, &NoProgress).await.unwrap();
    let s1_ms = repo.load_snapshot(&s1.snapshot).await.unwrap().unix_ms();
    crate::common::clock_after(s1_ms);
    let batch_b: Vec<(i32, Record)> = (0..60)
        .map(|i| {
            (
                0,
                rec(now_ms() + i, Some(b"b"), Some(format!("b{i}").as_bytes()), &[]),
            )
        })
        .collect();
    produce(&b, &topic, &batch_b);
    commit_group(&b, &group, &[(&topic, 0, 150, "")]);
    let s2 = snapshot(&repo, &so, &NoProgress).await.unwrap();

    // At the first snapshot's time: all of batch A, none of B; the group as it was then.
    let mut o = ropts("at1-", &topic);
    o.at = Some(s1_ms);
    let r = restore(&repo, &s2.snapshot, &o, &NoProgress).await.unwrap();
    assert_eq!(r.records_written, 100);
    let g = r.groups.iter().find(|g| g.group == group).unwrap();
    assert_eq!((g.source_offset, g.target_offset), (80, Some(80)));
    let back = read_back(&b, &format!("at1-{topic}"), 0, None);
    assert_eq!(
        back.iter().map(|x| x.1.value.clone()).collect::<Vec<_>>(),
        batch_a.iter().map(|x| x.1.value.clone()).collect::<Vec<_>>()
    );

    // In the middle of batch A (before any snapshot): the prefix up to it;
    // the group's offset is clamped to the cut.
    let mut o = ropts("at2-", &topic);
    o.at = Some(t0 + 49);
    let r = restore(&repo, &s2.snapshot, &o, &NoProgress).await.unwrap();
    assert_eq!(r.records_written, 50);
    assert!(!r.warnings.is_empty(), "no snapshot before T is warned about");
    let g = r.groups.iter().find(|g| g.group == group).unwrap();
    assert_eq!(
        g.target_offset,
        Some(50),
        "offset 80 clamped to the end of the cut"
    );
    let resumed = read_back(&b, &format!("at2-{topic}"), 0, Some(&group));
    assert!(resumed.is_empty(), "the group is at the end of the restored log");
}

/// The target broker (a second cluster), or a loud failure.
pub fn target() -> String {
    std::env::var("KVAULT_KAFKA_TARGET").unwrap_or_else(|_| {
        panic!("KVAULT_KAFKA_TARGET is not set: run `scripts/test`, or `eval \"$(scripts/kafka start target)\"` first")
    })
}

#[tokio::test]
async fn restore_into_another_cluster_and_an_independent_client_resumes_the_group() {
    let (b, tgt) = (source(), target());
    let topic = unique("xc");
    create_topic(&b, &topic, 2, &[("retention.ms", "-1")]).await;
    produce(&b, &topic, &crate::kafka_snapshot::shapes_for_fixture(400, 2));
    let group = unique("xcg");
    commit_group(&b, &group, &[(&topic, 0, 120, "p0"), (&topic, 1, 33, "p1")]);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let so = snap_opts(&b, &topic, &group);
    let s = snapshot(&repo, &so, &NoProgress).await.unwrap();
    let mut o = ropts("", &topic);
    o.kafka = KafkaOptions::new(&tgt);
    let r = restore(&repo, &s.snapshot, &o, &NoProgress).await.unwrap();
    assert_eq!(r.created_topics, vec![topic.clone()]);
    assert_eq!(r.records_written, 400);
    for p in 0..2 {
        assert_eq!(
            read_back(&b, &topic, p, None),
            read_back(&tgt, &topic, p, None),
            "partition {p} byte for byte"
        );
    }
    // confluent-kafka (Python, its own librdkafka) joins the group on the
    // target and must start at exactly the records the group had not consumed.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/resume_group.py");
    let out = std::process::Command::new("python3")
        .args([script, &tgt, &group, &topic, "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let src0 = read_back(&b, &topic, 0, None);
    let src1 = read_back(&b, &topic, 1, None);
    assert_eq!(got["0"]["offset"], 120);
    assert_eq!(got["1"]["offset"], 33);
    assert_eq!(
        got["0"]["value"].as_str().map(str::as_bytes),
        src0[120].1.value.as_deref()
    );
    assert_eq!(
        got["1"]["value"].as_str().map(str::as_bytes),
        src1[33].1.value.as_deref()
    );
}

#[tokio::test]
async fn restore_at_a_time_includes_topics_created_after_the_last_snapshot_before_it() {
    let b = source();
    let base = unique("born");
    let (ta, tb, tc) = (format!("{base}-a"), format!("{base}-b"), format!("{base}-c"));
    create_topic(&b, &ta, 1, &[("retention.ms", "-1")]).await;
    let t0 = now_ms() - 60_000;
    let recs = |tag: &str, from: i64, n: i64| -> Vec<(i32, Record)> {
        (0..n)
            .map(|i| (0, rec(from + i, None, Some(format!("{tag}{i}").as_bytes()), &[])))
            .collect()
    };
    produce(&b, &ta, &recs("a", t0, 20));
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let so = SnapshotOptions {
        kafka: KafkaOptions::new(&b),
        topics: vec![format!("{base}-*")],
        groups: vec!["none".into()],
        ..Default::default()
    };
    let s1 = snapshot(&repo, &so, &NoProgress).await.unwrap();
    // T: after the first snapshot, before the second.
    let t = crate::common::clock_after(repo.load_snapshot(&s1.snapshot).await.unwrap().unix_ms());
    // B is born before T: 10 records at or before T, 10 after.
    create_topic(&b, &tb, 1, &[("retention.ms", "-1")]).await;
    produce(&b, &tb, &recs("b", t - 9, 20));
    // C is born with records only after T.
    create_topic(&b, &tc, 1, &[("retention.ms", "-1")]).await;
    produce(&b, &tc, &recs("c", t + 5_000, 5));
    let s2 = snapshot(&repo, &so, &NoProgress).await.unwrap();
    assert!(repo.load_snapshot(&s2.snapshot).await.unwrap().unix_ms() > t);

    let mut o = ropts("born-", &format!("{base}-*"));
    o.at = Some(t);
    let r = restore(&repo, &s2.snapshot, &o, &NoProgress).await.unwrap();
    let mut created = r.created_topics.clone();
    created.sort();
    assert_eq!(
        created,
        vec![format!("born-{ta}"), format!("born-{tb}")],
        "C has no record that old"
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains(&tb) && w.contains("created after")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.records_written, 30);
    let back = read_back(&b, &format!("born-{tb}"), 0, None);
    assert_eq!(
        back.iter()
            .map(|x| x.1.value.clone().unwrap())
            .collect::<Vec<_>>(),
        (0..10).map(|i| format!("b{i}").into_bytes()).collect::<Vec<_>>()
    );
}
