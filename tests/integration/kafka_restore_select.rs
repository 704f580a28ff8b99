//! Which records a restore replays, against real brokers: compacted topics
//! restored compacted (and as they are with `--no-compact`), time retention
//! and a moved log start as of `--at`, aborted transactions left out, and
//! the refusals (fewer partitions, a live group).

use std::sync::Arc;
use std::time::Duration;

use kvault::NoProgress;
use kvault::backend::memory::MemoryBackend;
use kvault::image::record::Record;
use kvault::kafka::KafkaOptions;
use kvault::ops::restore::restore;
use kvault::ops::snapshot::snapshot;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::common::init_on;
use crate::kafka::*;
use crate::kafka_restore::{read_partition, ropts, snap_opts, target};

fn values(recs: &[(i64, Record)]) -> Vec<Option<Vec<u8>>> {
    recs.iter().map(|x| x.1.value.clone()).collect()
}

fn kv(ts: i64, k: &str, v: Option<&str>) -> (i32, Record) {
    (0, rec(ts, Some(k.as_bytes()), v.map(str::as_bytes), &[]))
}

#[tokio::test]
async fn a_compacted_topic_is_restored_compacted_and_as_is_with_no_compact() {
    let b = source();
    let topic = unique("cmp");
    create_topic(
        &b,
        &topic,
        1,
        &[("cleanup.policy", "compact"), ("delete.retention.ms", "60000")],
    )
    .await;
    let now = now_ms();
    // Offsets 0-9: k0..k9 = v1; 10-14: k0..k4 = v2; 15: an old tombstone
    // for k5 (older than delete.retention.ms); 16: a fresh tombstone for k6.
    let mut sent: Vec<(i32, Record)> = (0..10).map(|i| kv(now, &format!("k{i}"), Some("v1"))).collect();
    sent.extend((0..5).map(|i| kv(now, &format!("k{i}"), Some("v2"))));
    sent.push(kv(now - 120_000, "k5", None));
    sent.push(kv(now, "k6", None));
    produce(&b, &topic, &sent);
    let group = unique("cmpg");
    commit_group(&b, &group, &[(&topic, 0, 12, "")]);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let s = snapshot(&repo, &snap_opts(&b, &topic, &group), &NoProgress)
        .await
        .unwrap();

    let r = restore(&repo, &s.snapshot, &ropts("cmp-", &topic), &NoProgress)
        .await
        .unwrap();
    // Kept: k7..k9 (7-9), k0..k4 v2 (10-14), the fresh tombstone (16).
    assert_eq!(r.records_written, 9);
    assert_eq!(r.partitions[0].compacted_away, 8);
    let back = read_partition(&b, &format!("cmp-{topic}"), 0, None);
    let keys: Vec<_> = back.iter().map(|x| x.1.key.clone().unwrap()).collect();
    assert_eq!(
        keys,
        ["k7", "k8", "k9", "k0", "k1", "k2", "k3", "k4", "k6"].map(|k| k.as_bytes().to_vec())
    );
    assert_eq!(back.last().unwrap().1.value, None, "the fresh tombstone is kept");
    assert!(back[..8].iter().all(|x| x.1.value.is_some()));
    // Source offset 12 (k2 = v2) is the 6th kept record: target offset 5.
    let g = r.groups.iter().find(|g| g.group == group).unwrap();
    assert_eq!(g.target_offset, Some(5));
    let resumed = read_partition(&b, &format!("cmp-{topic}"), 0, Some(&group));
    assert_eq!(
        resumed.first().map(|x| (x.0, x.1.key.clone())),
        Some((5, Some(b"k2".to_vec())))
    );

    // --no-compact: every record the repository holds.
    let mut o = ropts("raw-", &topic);
    o.no_compact = true;
    let r = restore(&repo, &s.snapshot, &o, &NoProgress).await.unwrap();
    assert_eq!(r.records_written, 17);
    assert_eq!(
        values(&read_partition(&b, &format!("raw-{topic}"), 0, None)),
        sent.iter().map(|x| x.1.value.clone()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn retention_as_of_the_restore_time_and_a_moved_log_start_are_respected() {
    let b = source();
    let topic = unique("ret");
    // One hour of time retention. The old records share the active segment
    // with new ones, so the broker keeps them; a restore as of now must not.
    create_topic(&b, &topic, 1, &[("retention.ms", "3600000")]).await;
    let now = now_ms();
    let old = now - 2 * 3_600_000;
    let mut sent: Vec<(i32, Record)> = (0..20)
        .map(|i| kv(old + i, &format!("o{i}"), Some("old")))
        .collect();
    sent.extend((0..30).map(|i| kv(now + i, &format!("n{i}"), Some("new"))));
    produce(&b, &topic, &sent);
    let group = unique("retg");
    commit_group(&b, &group, &[(&topic, 0, 10, "")]);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let so = snap_opts(&b, &topic, &group);
    let s1 = snapshot(&repo, &so, &NoProgress).await.unwrap();

    // As of now, with only that snapshot: time retention alone drops the
    // 20 old records; the group's offset 10 maps to the first restored record.
    let mut o = ropts("ret0-", &topic);
    o.at = Some(now_ms() + 1_000);
    let r = restore(&repo, &s1.snapshot, &o, &NoProgress).await.unwrap();
    assert_eq!(r.records_written, 30);
    assert_eq!(
        r.groups.iter().find(|g| g.group == group).unwrap().target_offset,
        Some(0)
    );

    // DeleteRecords moves the log start to 35; the next snapshot sees it.
    delete_records(&b, &topic, 0, 35).await;
    let s2 = snapshot(&repo, &so, &NoProgress).await.unwrap();

    // The first snapshot as it was: everything.
    let r = restore(&repo, &s1.snapshot, &ropts("ret1-", &topic), &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.records_written, 50);

    // As of 90 minutes ago: the old records were not yet an hour old; the
    // new ones did not exist yet.
    let mut o = ropts("ret2-", &topic);
    o.at = Some(now - 90 * 60_000);
    let r = restore(&repo, &s2.snapshot, &o, &NoProgress).await.unwrap();
    assert_eq!(r.records_written, 20);
    let g = r.groups.iter().find(|g| g.group == group).unwrap();
    assert_eq!(g.target_offset, Some(10));

    // As of now: the log start of the latest snapshot (35), and retention
    // would have deleted the old records anyway.
    let mut o = ropts("ret3-", &topic);
    o.at = Some(now_ms() + 1_000);
    let r = restore(&repo, &s2.snapshot, &o, &NoProgress).await.unwrap();
    assert_eq!(r.records_written, 15);
    assert_eq!(r.partitions[0].source_range[0], 35);
    let g = r.groups.iter().find(|g| g.group == group).unwrap();
    assert_eq!(
        (g.source_offset, g.target_offset),
        (10, Some(0)),
        "an offset below the log start maps to the first restored record"
    );
    let back = read_partition(&b, &format!("ret3-{topic}"), 0, None);
    assert_eq!(
        values(&back),
        sent[35..].iter().map(|x| x.1.value.clone()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn aborted_transactions_stay_out_and_offsets_translate_across_them() {
    let (b, tgt) = (source(), target());
    let topic = unique("txr");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    let now = now_ms();
    let batch = |tag: &str, n: i64| -> Vec<(i32, Record)> {
        (0..n)
            .map(|i| kv(now + i, &format!("{tag}{i}"), Some(tag)))
            .collect()
    };
    // 0-9 plain; 10-14 aborted, 15 marker; 16-20 committed, 21 marker; 22-24 plain.
    produce(&b, &topic, &batch("a", 10));
    produce_transaction(&b, &topic, &batch("x", 5), false);
    produce_transaction(&b, &topic, &batch("c", 5), true);
    produce(&b, &topic, &batch("d", 3));
    let group = unique("txg");
    commit_group(&b, &group, &[(&topic, 0, 18, "")]);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let s = snapshot(&repo, &snap_opts(&b, &topic, &group), &NoProgress)
        .await
        .unwrap();
    let mut o = ropts("", &topic);
    o.kafka = KafkaOptions::new(&tgt);
    let r = restore(&repo, &s.snapshot, &o, &NoProgress).await.unwrap();
    assert_eq!(r.records_written, 18);
    let back = read_partition(&tgt, &topic, 0, None);
    assert!(
        back.iter().all(|x| x.1.value.as_deref() != Some(b"x".as_slice())),
        "aborted records restored"
    );
    assert_eq!(values(&back), values(&read_partition(&b, &topic, 0, None)));
    // Source offset 18 is after 10 plain and 2 committed records: target 12.
    let g = r.groups.iter().find(|g| g.group == group).unwrap();
    assert_eq!(g.target_offset, Some(12));
    let resumed = read_partition(&tgt, &topic, 0, Some(&group));
    assert_eq!(
        resumed.first().map(|x| x.1.key.clone()),
        Some(Some(b"c2".to_vec()))
    );
}

#[tokio::test]
async fn a_target_with_fewer_partitions_or_a_live_group_is_refused() {
    let b = source();
    let topic = unique("ref");
    create_topic(&b, &topic, 3, &[("retention.ms", "-1")]).await;
    produce(&b, &topic, &crate::kafka_snapshot::shapes_for_fixture(30, 3));
    let group = unique("refg");
    commit_group(&b, &group, &[(&topic, 0, 2, "")]);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let s = snapshot(&repo, &snap_opts(&b, &topic, &group), &NoProgress)
        .await
        .unwrap();

    create_topic(&b, &format!("few-{topic}"), 1, &[]).await;
    let e = restore(&repo, &s.snapshot, &ropts("few-", &topic), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("has 1 partitions; the snapshot needs 3"),
        "{e}"
    );
    assert_eq!(
        watermarks(&b, &format!("few-{topic}"), 0),
        (0, 0),
        "nothing written"
    );

    // A live member of the group on the target.
    let live = format!("live-{topic}");
    create_topic(&b, &live, 3, &[]).await;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", &group)
        .create()
        .unwrap();
    c.subscribe(&[&live]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while c.assignment().unwrap().count() == 0 && std::time::Instant::now() < deadline {
        c.poll(Duration::from_millis(200));
    }
    assert!(c.assignment().unwrap().count() > 0, "the consumer joined");
    let e = restore(&repo, &s.snapshot, &ropts("live-", &topic), &NoProgress)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("active member"), "{e}");
    assert_eq!(
        count_records(&b, &live, 0),
        0,
        "nothing written before the refusal"
    );

    // --force skips the check and restores the records; the broker refuses
    // commits from outside a live generation, which kvault reports by name.
    let mut o = ropts("live-", &topic);
    o.force = true;
    let e = restore(&repo, &s.snapshot, &o, &NoProgress).await.unwrap_err();
    assert!(
        e.to_string().contains(&group) && e.to_string().contains("run the same command again"),
        "{e}"
    );
    assert_eq!(count_records(&b, &live, 0), 10);
    // Once the consumer leaves, the same command commits the group only.
    drop(c);
    let r = restore(&repo, &s.snapshot, &o, &NoProgress).await.unwrap();
    assert_eq!((r.records_written, r.resumed_records), (0, 30));
    let resumed = read_partition(&b, &live, 0, Some(&group));
    assert_eq!(resumed.first().map(|x| x.0), Some(2));
}
