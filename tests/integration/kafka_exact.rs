//! Offset-exact restores (`--offsets exact`): the facts the gap filling
//! rests on, checked on a real broker, and restores whose every record
//! lands at its source offset, compared by an independent client.

use std::time::Duration;

use kvault::TopicPartition;
use kvault::kafka::KafkaOptions;
use kvault::kafka::admin::{Cluster, End};
use kvault::kafka::batches::Marker;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};

use crate::kafka::*;

/// The facts: an aborted transaction of k−1 records takes exactly k offsets
/// (its abort marker the k-th), read_committed consumers see none of them;
/// a record written in a transaction that commits has its marker right
/// after it, written after `commit_transaction` returns (the next record
/// must wait for it); aborting purges records not sent yet (flush first);
/// DeleteRecords moves the log start to any offset; and the broker stamps
/// a marker with its own clock when it writes it, which `offsets_for_times`
/// counts like a record.
#[tokio::test]
async fn gap_filling_facts_hold_on_a_real_broker() {
    let b = source();
    let topic = unique("facts");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    let t0 = now_ms() - 60_000;
    let at = |i: i64| rec(t0 + i, Some(b"k"), Some(format!("v{i}").as_bytes()), &[]);
    produce(&b, &topic, &[(0, at(0)), (0, at(1))]);
    let tx: ThreadedProducer<DefaultProducerContext> = config(&b)
        .set("transactional.id", unique("facts-tx"))
        .create()
        .unwrap();
    tx.init_transactions(Duration::from_secs(30)).unwrap();
    // k = 4: three placeholders and the abort marker, offsets 2..=5.
    tx.begin_transaction().unwrap();
    send_all(&tx, &topic, &[(0, at(1)), (0, at(1)), (0, at(1))]);
    // Aborting purges what is not sent yet: flush first.
    tx.flush(Duration::from_secs(30)).unwrap();
    tx.abort_transaction(Duration::from_secs(30)).unwrap();
    // One record committed alone: it at 6, its marker at 7.
    tx.begin_transaction().unwrap();
    send_all(&tx, &topic, &[(0, at(6))]);
    tx.commit_transaction(Duration::from_secs(30)).unwrap();
    let cluster = Cluster::connect(&KafkaOptions::new(&b)).await.unwrap();
    let tp = TopicPartition::new(topic.clone(), 0);
    // The marker is written after commit_transaction returns: wait for it
    // before the next plain record, or the record would take its offset.
    crate::common::wait_until_async("the commit marker", Duration::from_secs(10), || async {
        let h = cluster
            .offsets(std::slice::from_ref(&tp), End::High)
            .await
            .unwrap()[0];
        h == 8
    })
    .await;
    produce(&b, &topic, &[(0, at(8))]);
    delete_records(&b, &topic, 0, 1).await;

    let p = cluster.batches(&tp, 1, 1 << 20).await.unwrap();
    let markers: Vec<(i64, Marker)> = p
        .batches
        .iter()
        .filter_map(|x| x.control.map(|m| (x.base_offset, m)))
        .collect();
    assert_eq!(markers, vec![(5, Marker::Abort), (7, Marker::Commit)]);
    assert_eq!(
        (p.log_start_offset, p.high_watermark, p.last_stable_offset),
        (1, 9, 9)
    );
    let seen: Vec<i64> = crate::kafka_restore::read_partition(&b, &topic, 0, None)
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(seen, vec![1, 6, 8], "read_committed sees no placeholder");
    // A marker's time is the broker's, so a time between the records
    // before and after it finds the marker.
    let marker_ts = p
        .batches
        .iter()
        .find(|x| x.base_offset == 7)
        .unwrap()
        .max_timestamp;
    assert!(marker_ts > t0 + 8, "{marker_ts}");
    // offsets_for_times counts markers: the record at 6 (time t0 + 6) is
    // found at 5, the abort marker before it, stamped later.
    let found = |t: i64| {
        let (c, tp) = (&cluster, &tp);
        async move { c.offsets(std::slice::from_ref(tp), End::At(t)).await.unwrap()[0] }
    };
    assert_eq!(found(t0 + 1).await, 1);
    assert_eq!(found(t0 + 6).await, 5);
    assert_eq!(found(t0 + 8).await, 5);
    assert_eq!(
        found(marker_ts + 1).await,
        -1,
        "none that late (the plain record is at t0 + 8)"
    );
}

/// What compare_partitions.py (confluent-kafka) read on both sides.
fn compare(a: (&str, &str), b: (&str, &str), n: i32, group: &str) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/compare_partitions.py");
    let out = std::process::Command::new("python3")
        .args([script, a.0, a.1, b.0, b.1, &n.to_string()])
        .args((!group.is_empty()).then_some(group))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts the two sides hold the same log: records (offset, key, value,
/// headers, timestamp type and time), watermarks and the group's committed
/// offsets. `offsets_for_times` cannot answer the same everywhere: Kafka
/// stamps a marker with the broker's time when it is written, so a
/// reproduced marker carries the restore's time and a reproduced gap's
/// placeholders their neighbour's. What holds (and is asserted): for every
/// record time, the first record at or after the target's answer is at or
/// before the one after the source's — a seek by time on the target never
/// skips a record the source would have given. Returns how many raw
/// answers differ.
fn assert_same_log(got: &serde_json::Value) -> usize {
    let (a, b) = (got["a"].as_array().unwrap(), got["b"].as_array().unwrap());
    assert_eq!(a.len(), b.len());
    let mut moved = 0;
    for (p, (x, y)) in a.iter().zip(b).enumerate() {
        for k in ["low", "high", "records", "committed"] {
            assert_eq!(x[k], y[k], "partition {p}: {k}");
        }
        for (t, ans) in x["times"].as_object().unwrap() {
            let other = &y["times"][t];
            if let Some(src) = ans[1].as_i64() {
                let dst = other[1].as_i64();
                assert!(
                    dst.is_some_and(|d| d <= src),
                    "partition {p}: offsets_for_times({t}) leads to {dst:?}, after {src}"
                );
            }
            moved += usize::from(ans[0] != other[0]);
        }
    }
    moved
}

/// A snapshot of `topic` (with `group`) into a memory repository, restored
/// with `--offsets exact` into `x-TOPIC` on `target`: the repository, the
/// snapshot, the restore's options and its result.
async fn snapshot_then_restore_exact(
    source: &str,
    target: &str,
    topic: &str,
    group: &str,
) -> (
    kvault::Repository,
    kvault::SnapshotResult,
    kvault::RestoreOptions,
    kvault::RestoreResult,
) {
    let repo =
        crate::common::init_on(std::sync::Arc::new(kvault::backend::memory::MemoryBackend::new())).await;
    let s = kvault::ops::snapshot::snapshot(
        &repo,
        &crate::kafka_restore::snap_opts(source, topic, group),
        &kvault::NoProgress,
    )
    .await
    .unwrap();
    let mut o = crate::kafka_restore::ropts("x-", topic);
    o.kafka = KafkaOptions::new(target);
    o.offsets = kvault::ops::restore::Offsets::Exact;
    let r = kvault::ops::restore::restore(&repo, &s.snapshot, &o, &kvault::NoProgress)
        .await
        .unwrap();
    (repo, s, o, r)
}

/// A topic with every kind of gap a plain log has — a committed
/// transaction's marker, an aborted transaction, a log start moved by
/// DeleteRecords — and a group positioned inside a gap, restored with
/// `--offsets exact` into new topics: confluent-kafka reads the same
/// records at the same offsets, the same watermarks and the same group
/// offsets on both sides.
#[tokio::test]
async fn an_exact_restore_puts_every_record_at_its_source_offset() {
    let b = source();
    let t = crate::kafka_restore::target();
    let topic = unique("exact");
    create_topic(&b, &topic, 2, &[("retention.ms", "-1")]).await;
    let t0 = now_ms() - 60_000;
    let r = |i: i64, p: i32| {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        (
            p,
            rec(
                t0 + i,
                Some(k.as_bytes()),
                Some(v.as_bytes()),
                &[("h", Some(b"x"))],
            ),
        )
    };
    produce(&b, &topic, &[r(0, 0), r(1, 0), r(2, 1), r(3, 0)]);
    produce_transaction(&b, &topic, &[r(4, 0), r(5, 1), r(6, 0)], true);
    produce_transaction(&b, &topic, &[r(7, 0), r(8, 0), r(9, 1)], false);
    produce(&b, &topic, &[r(10, 0), r(11, 1)]);
    produce_transaction(&b, &topic, &[r(12, 0)], true);
    delete_records(&b, &topic, 0, 2).await;
    let group = unique("exact-group");
    // Partition 0 holds r0 r1 r3 | r4 r6 C | r7 r8 A | r10 | r12 C at
    // offsets 0..=11, its log start moved to 2; offset 7 is an aborted
    // record's.
    commit_group(&b, &group, &[(&topic, 0, 7, "inside a gap"), (&topic, 1, 1, "")]);
    let (repo, s, o, r) = snapshot_then_restore_exact(&b, &t, &topic, &group).await;
    assert_eq!(r.records_written, 8, "{r:?}");
    let got = compare((&b, &topic), (&t, &format!("x-{topic}")), 2, &group);
    assert_same_log(&got);
    assert_eq!(got["b"][0]["low"], 2);
    assert_eq!(got["b"][0]["committed"], 7);
    // A member of the group (confluent-kafka) resumes at the same record on
    // both clusters: the first after the aborted records its position is in.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/resume_group.py");
    let first = |brokers: &str, name: &str| {
        let out = std::process::Command::new("python3")
            .args([script, brokers, &group, name, "2"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (on_source, on_target) = (first(&b, &topic), first(&t, &format!("x-{topic}")));
    assert_eq!(on_source["0"]["offset"], 9, "{on_source}");
    assert_eq!(on_source, on_target);
    // A consumer that keeps its position in a file (read 3 records of
    // partition 0, store the next offset) switches to the target and goes
    // on with the same record: the stored offset, 5, is a commit marker,
    // and the next record is past the aborted ones, at 9.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/external_position.py");
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = std::process::Command::new("python3")
        .args([script, &b, &topic, &t, &format!("x-{topic}"), "0", "3"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let moved: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(moved["position"], 5, "{moved}");
    assert_eq!(moved["source_next"], moved["target_next"], "{moved}");
    assert_eq!(moved["target_next"][0], 9, "{moved}");
    // A second exact restore into the same topics refuses, naming them.
    let e = kvault::ops::restore::restore(
        &repo,
        &s.snapshot,
        &{
            let mut o = o.clone();
            o.state_dir = Some(tempfile::tempdir().unwrap().keep());
            o
        },
        &kvault::NoProgress,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, kvault::Error::Refused(kvault::Refusal::TargetUsed { ref partitions }) if partitions.len() == 2),
        "{e}"
    );
}

/// A compacted topic after a real cleaner run, its kept records separated
/// by one-offset holes (each a committed transaction on the target),
/// restored with `--offsets exact` as of the snapshot and as of a time
/// before its last records: the same records at the same offsets.
#[tokio::test]
async fn an_exact_restore_of_a_compacted_topic_keeps_its_holes() {
    let b = source();
    let t = crate::kafka_restore::target();
    let topic = unique("exact-compact");
    create_topic(&b, &topic, 1, &COMPACT_SOON).await;
    let base = now_ms() - 60_000;
    // Unique keys kept, one repeated key between them removed but its last.
    let n = 300i64;
    let sent: Vec<_> = (0..2 * n)
        .map(|i| {
            let key = if i % 2 == 0 {
                format!("u{i}")
            } else {
                "dup".to_string()
            };
            (
                0,
                rec(
                    base + i,
                    Some(key.as_bytes()),
                    Some(format!("v{i}").as_bytes()),
                    &[],
                ),
            )
        })
        .collect();
    produce(&b, &topic, &sent);
    let mut ticks = 0;
    let mut cleaned = false;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        produce(
            &b,
            &topic,
            &[(
                0,
                rec(now_ms(), Some(format!("tick{ticks}").as_bytes()), Some(b"t"), &[]),
            )],
        );
        ticks += 1;
        if count_records(&b, &topic, 0) as i64 == n + 1 + ticks {
            cleaned = true;
            break;
        }
    }
    assert!(
        cleaned,
        "the log cleaner did not remove every repeated key within 60 s"
    );
    let (repo, s, o, r) = snapshot_then_restore_exact(&b, &t, &topic, "none").await;
    let e = r.partitions[0].exact.unwrap();
    assert!(e.transactions as i64 >= n - 1, "{e:?}");
    let moved = assert_same_log(&compare((&b, &topic), (&t, &format!("x-{topic}")), 1, ""));
    // A lookup past the first hole finds its marker, written now.
    assert!(moved > 0);
    // As of a time inside the log: the same prefix, up to that record.
    let mut o = o.clone();
    o.prefix = "at-".into();
    o.at = Some(base + n);
    let r = kvault::ops::restore::restore(&repo, &s.snapshot, &o, &kvault::NoProgress)
        .await
        .unwrap();
    let got = compare((&b, &topic), (&t, &format!("at-{topic}")), 1, "");
    let (src, dst) = (&got["a"][0]["records"], &got["b"][0]["records"]);
    let dst = dst.as_array().unwrap();
    assert_eq!(dst.len() as u64, r.records_written);
    assert_eq!(
        dst[..],
        src.as_array().unwrap()[..dst.len()],
        "a prefix at the same offsets"
    );
    assert!(dst.iter().all(|x| x[5].as_i64().unwrap() <= base + n));
}

/// `kvault restore --offsets exact` from the command line: the dry run
/// names each partition's gaps; a run killed (SIGKILL) among plain records
/// resumes where it stopped; one killed among one-record transactions
/// resumes too, or (killed inside a transaction, which the rerun's start
/// aborts, its record's offset taken) refuses naming the partition, and
/// after the topic is deleted starts over. Each way, the target ends with
/// the source's log.
#[test]
fn kill_9_during_an_exact_restore_then_rerun_leaves_the_source_s_offsets() {
    use crate::cli::{init, kvault, ok};
    use std::process::Stdio;
    let b = source();
    let t = crate::kafka_restore::target();
    let topic = unique("exact-kill");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_topic(&b, &topic, 1, &[("retention.ms", "-1")]));
    // 200,000 plain records, then 150 each committed alone.
    produce_events(&b, &topic, 1, 200_000);
    let tx: ThreadedProducer<DefaultProducerContext> = config(&b)
        .set("transactional.id", unique("exact-kill-tx"))
        .create()
        .unwrap();
    tx.init_transactions(Duration::from_secs(30)).unwrap();
    for i in 0..150 {
        tx.begin_transaction().unwrap();
        send_all(
            &tx,
            &topic,
            &[(
                0,
                rec(now_ms(), Some(b"k"), Some(format!("v{i}").as_bytes()), &[]),
            )],
        );
        tx.commit_transaction(Duration::from_secs(30)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let (repo, state) = (dir.path().join("repo"), dir.path().join("state"));
    init(&repo);
    ok(kvault(&repo).args(["snapshot", "-b", &b, "--topic", &topic, "--group", "none"]));
    let restore = |extra: &[&str]| {
        let mut c = kvault(&repo);
        c.args([
            "restore",
            "latest",
            "-b",
            &t,
            "--topic",
            &topic,
            "--prefix",
            "k9-",
            "--offsets",
            "exact",
        ])
        .args(extra)
        .arg("--state-dir")
        .arg(&state);
        c
    };
    let o = ok(&mut restore(&["--dry-run"]));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("at the source offsets: log start 0, end 200300, 150 gap(s)"),
        "{text}"
    );
    let target = format!("k9-{topic}");
    let end = || watermarks_if_exists(&t, &target, 0).map_or(0, |w| w.1);
    let killed_past = |at: i64| {
        let mut child = restore(&[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if end() > at || t0.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.wait();
    };
    killed_past(50_000);
    // Among plain records: the rerun goes on (killed again, among the
    // transactions).
    killed_past(200_100);
    assert!(end() > 200_000, "the first rerun resumed: {}", end());
    let o = crate::cli::run(&mut restore(&["--json"]));
    let e = crate::cli::stderr(&o);
    if crate::cli::code(&o) != 0 && !e.contains("already completed") {
        assert!(
            e.contains(&format!("{target}/0 ends at")) && e.contains("delete that target topic"),
            "{e}"
        );
        rt.block_on(delete_topic(&t, &target));
        ok(&mut restore(&["--json"]));
    }
    assert_same_log(&compare((&b, &topic), (&t, &target), 1, ""));
}
