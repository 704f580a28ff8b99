//! Group positions at any time: snapshots capture every offset commit made
//! since the previous snapshot from `__consumer_offsets`, and `restore --at
//! T` commits each group's position as of T — checked with an independent
//! client (confluent-kafka) that joins the group on the target and must
//! start on the record it would have read next at T.

use std::sync::Arc;

use kvault::backend::memory::MemoryBackend;
use kvault::image::record::Record;
use kvault::kafka::KafkaOptions;
use kvault::ops::restore::restore;
use kvault::ops::snapshot::{SnapshotOptions, snapshot};
use kvault::{NoProgress, Repository};

use crate::common::init_on;
use crate::kafka::*;
use crate::kafka_restore::{read_partition, ropts, target};

/// The first record (offset, value) a fresh member of `group` receives on
/// partition 0 of `topic` on `brokers`, read by confluent-kafka.
fn resumes_at(brokers: &str, group: &str, topic: &str) -> (i64, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/resume_group.py");
    let out = std::process::Command::new("python3")
        .args([script, brokers, group, topic, "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        got["0"]["offset"].as_i64().unwrap_or(-1),
        got["0"]["value"].as_str().unwrap_or_default().to_string(),
    )
}

fn values(tag: &str, n: usize, key_of: impl Fn(usize) -> String) -> Vec<(i32, Record)> {
    let t0 = now_ms() - 120_000;
    (0..n)
        .map(|i| {
            (
                0,
                rec(
                    t0 + i as i64,
                    Some(key_of(i).as_bytes()),
                    Some(format!("{tag}{i}").as_bytes()),
                    &[],
                ),
            )
        })
        .collect()
}

async fn snap(repo: &Repository, b: &str, topics: &[&str], groups: &[&str]) -> kvault::SnapshotResult {
    let o = SnapshotOptions {
        kafka: KafkaOptions::new(b),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..Default::default()
    };
    snapshot(repo, &o, &NoProgress).await.unwrap()
}

/// A moment strictly between what happened before and what comes after.
async fn instant() -> i64 {
    let t = crate::common::clock_after(now_ms());
    crate::common::clock_after(t);
    t
}

#[tokio::test]
async fn a_group_that_moved_between_snapshots_resumes_where_it_was_at_t() {
    let (b, tgt) = (source(), target());
    let topic = unique("hist");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    let sent = values("h", 300, |i| format!("k{i}"));
    produce(&b, &topic, &sent);
    let group = unique("histg");
    commit_group(&b, &group, &[(&topic, 0, 100, "")]);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let s1 = snap(&repo, &b, &[&topic], &[&group]).await;
    assert!(!s1.commit_history, "the history starts at the first snapshot");

    let t_before = instant().await;
    commit_group(&b, &group, &[(&topic, 0, 150, "")]);
    let t_150 = instant().await;
    commit_group(&b, &group, &[(&topic, 0, 220, "m")]);
    let t_220 = instant().await;
    let s2 = snap(&repo, &b, &[&topic], &[&group]).await;
    assert!(s2.commit_history, "{:?}", s2.warnings);
    assert!(s2.commits >= 2, "{} commits captured", s2.commits);

    for (t, want) in [(t_before, 100), (t_150, 150), (t_220, 220)] {
        let prefix = format!("at{want}-");
        let mut o = ropts(&prefix, &topic);
        o.kafka = KafkaOptions::new(&tgt);
        o.at = Some(t);
        let r = restore(&repo, &s2.snapshot, &o, &NoProgress).await.unwrap();
        assert_eq!(r.records_written, 300);
        let g = r.groups.iter().find(|g| g.group == group).unwrap();
        assert_eq!(g.source_offset, want, "as of {t}: {:?}", r.groups_from);
        assert!(
            r.groups_from.as_deref().is_some_and(|s| s.contains("commit")),
            "{:?}",
            r.groups_from
        );
        // The independent client, on the target, starts where the group was.
        let (off, value) = resumes_at(&tgt, &group, &format!("{prefix}{topic}"));
        assert_eq!((off, value), (want, format!("h{want}")), "as of {t}");
    }
}

#[tokio::test]
async fn a_group_created_and_deleted_between_snapshots_exists_only_in_between() {
    let b = source();
    let topic = unique("life");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    produce(&b, &topic, &values("l", 100, |i| format!("k{i}")));
    let group = unique("lifeg");
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    snap(&repo, &b, &[&topic], &[]).await;

    let t_before = instant().await;
    commit_group(&b, &group, &[(&topic, 0, 40, "")]);
    let t_alive = instant().await;
    delete_group(&b, &group).await;
    let t_gone = instant().await;
    let s2 = snap(&repo, &b, &[&topic], &[]).await;
    assert!(s2.commit_history);

    for (t, want) in [(t_before, None), (t_alive, Some(40)), (t_gone, None)] {
        let mut o = ropts(&format!("life{}-", want.unwrap_or(-1)), &topic);
        o.at = Some(t);
        o.dry_run = true;
        let r = restore(&repo, &s2.snapshot, &o, &NoProgress).await.unwrap();
        let g = r
            .groups
            .iter()
            .find(|g| g.group == group)
            .map(|g| g.source_offset);
        assert_eq!(g, want, "as of {t}");
    }
}

#[tokio::test]
async fn commits_on_a_compacted_topic_translate_through_compaction() {
    let (b, tgt) = (source(), target());
    let topic = unique("hcomp");
    create_topic(&b, &topic, 1, &[("cleanup.policy", "compact")]).await;
    // Offsets 0..30 rewrite ten keys (compaction keeps 20..30); from 30 on
    // every key is new.
    let sent = values("c", 120, |i| {
        if i < 30 {
            format!("dup{}", i % 10)
        } else {
            format!("u{i}")
        }
    });
    produce(&b, &topic, &sent);
    let group = unique("hcompg");
    commit_group(&b, &group, &[(&topic, 0, 10, "")]);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    snap(&repo, &b, &[&topic], &[&group]).await;
    commit_group(&b, &group, &[(&topic, 0, 45, "")]);
    let t = instant().await;
    commit_group(&b, &group, &[(&topic, 0, 90, "")]);
    let s2 = snap(&repo, &b, &[&topic], &[&group]).await;

    let mut o = ropts("hc-", &topic);
    o.kafka = KafkaOptions::new(&tgt);
    o.at = Some(t);
    let r = restore(&repo, &s2.snapshot, &o, &NoProgress).await.unwrap();
    // Restored compacted: the ten last values of the rewritten keys, then
    // 90 unique ones; source offset 45 is restored record 10 + 15.
    assert_eq!(r.records_written, 100);
    let g = r.groups.iter().find(|g| g.group == group).unwrap();
    assert_eq!((g.source_offset, g.target_offset), (45, Some(25)));
    let back = read_partition(&tgt, &format!("hc-{topic}"), 0, None);
    assert_eq!(back[25].1.value.as_deref(), Some(&b"c45"[..]));
    assert_eq!(
        resumes_at(&tgt, &group, &format!("hc-{topic}")),
        (25, "c45".to_string())
    );
}
