//! Transaction markers as a real broker writes them, read raw through the
//! client's own connection (`Cluster::batches`): the facts a
//! transaction-exact point in time and an offset-exact restore rest on.
//! Each transaction's records carry its producer id; its commit or abort
//! marker takes exactly one offset right after them, stamped with the
//! broker's clock when it was written — which can be after the producer's
//! `commit_transaction` returned (the coordinator answers EndTxn once it
//! logged PrepareCommit and writes the markers after; seen here 13 ms
//! late). What a read_committed consumer could see at T is decided by the
//! transaction's commit, not by the producer's clock: on all its
//! partitions at once, from its coordinator's CompleteCommit record in
//! `__transaction_state` (its markers reach the partitions one by one).

use std::sync::Arc;
use std::time::Duration;

use kvault::backend::memory::MemoryBackend;
use kvault::image::record::Record;
use kvault::kafka::KafkaOptions;
use kvault::kafka::admin::Cluster;
use kvault::kafka::batches::Marker;
use kvault::ops::restore::restore;
use kvault::ops::snapshot::snapshot;
use kvault::{NoProgress, TopicPartition};
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};

use crate::common::init_on;
use crate::kafka::*;
use crate::kafka_restore::{read_partition, ropts, snap_opts, target};

#[tokio::test]
async fn commit_and_abort_markers_follow_their_transactions_with_the_broker_s_time() {
    let b = source();
    let topic = unique("txm");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    let t0 = now_ms();
    produce_transaction(&b, &topic, &records("a", 3, 1), true);
    let t1 = now_ms();
    produce_transaction(&b, &topic, &records("b", 2, 1), false);
    produce(&b, &topic, &records("c", 1, 1));
    let t3 = now_ms();

    let cluster = Cluster::connect(&KafkaOptions::new(&b)).await.unwrap();
    let p = cluster
        .batches(&TopicPartition::new(topic.clone(), 0), 0, 1 << 20)
        .await
        .unwrap();
    assert_eq!(p.high_watermark, 8, "3 + marker + 2 + marker + 1: {p:?}");
    assert_eq!(p.last_stable_offset, 8);
    let markers: Vec<_> = p
        .batches
        .iter()
        .filter_map(|x| {
            x.control
                .map(|m| (x.base_offset, m, x.producer_id, x.max_timestamp))
        })
        .collect();
    let data: Vec<_> = p
        .batches
        .iter()
        .filter(|x| x.control.is_none())
        .map(|x| (x.base_offset, x.last_offset, x.transactional, x.producer_id))
        .collect();
    // Committed: offsets 0..=2, its marker at 3.
    assert_eq!(data[0].0, 0);
    assert!(data[0].2, "{data:?}");
    assert_eq!((markers[0].0, markers[0].1), (3, Marker::Commit), "{markers:?}");
    assert_eq!(
        markers[0].2, data[0].3,
        "the marker names the transaction's producer"
    );
    assert!(
        (t0..=t3).contains(&markers[0].3),
        "{t0} <= {} <= {t3}",
        markers[0].3
    );
    // Aborted: offsets 4..=5, its marker at 6, another producer.
    let aborted = data.iter().find(|d| d.0 == 4).unwrap();
    assert!(aborted.2 && aborted.1 == 5, "{data:?}");
    assert_eq!((markers[1].0, markers[1].1), (6, Marker::Abort), "{markers:?}");
    assert_eq!(markers[1].2, aborted.3);
    assert_ne!(aborted.3, data[0].3);
    assert!(
        (t1..=t3).contains(&markers[1].3),
        "{t1} <= {} <= {t3}",
        markers[1].3
    );
    assert!(markers[0].3 <= markers[1].3);
    // Plain: offset 7, not transactional.
    let plain = data.last().unwrap();
    assert_eq!((plain.0, plain.2), (7, false), "{data:?}");
    assert_eq!(markers.len(), 2);
}

/// A transactional producer, its transactions begun by the caller.
fn txn_producer(b: &str) -> ThreadedProducer<DefaultProducerContext> {
    let p: ThreadedProducer<DefaultProducerContext> =
        config(b).set("transactional.id", unique("txp")).create().unwrap();
    p.init_transactions(Duration::from_secs(30)).unwrap();
    p
}

/// `n` records `tag0..` in turn over partitions `0..partitions`, stamped now.
fn records(tag: &str, n: usize, partitions: i32) -> Vec<(i32, Record)> {
    (0..n)
        .map(|i| {
            let value = format!("{tag}{i}");
            (
                i as i32 % partitions,
                rec(now_ms(), Some(b"k"), Some(value.as_bytes()), &[]),
            )
        })
        .collect()
}

/// The values restored into `topic` (both partitions).
fn restored(b: &str, topic: &str) -> Vec<String> {
    let mut v: Vec<String> = (0..2)
        .flat_map(|p| read_partition(b, topic, p, None))
        .map(|(_, r)| String::from_utf8(r.value.unwrap()).unwrap())
        .collect();
    v.sort();
    v
}

/// Per partition of the snapshot's one topic, the first offsets of the
/// transactions `ls` lists as open at its time.
async fn open_at(repo: &kvault::Repository, id: &kvault::Id) -> Vec<Vec<i64>> {
    let snap = repo.load_snapshot(id).await.unwrap();
    let m = kvault::image::manifest::load(repo, &snap.tree, true)
        .await
        .unwrap();
    kvault::ops::ls::ls(&m).topics[0]
        .partitions
        .iter()
        .map(|p| p.open_transactions.iter().map(|o| o.first_offset).collect())
        .collect()
}

/// The issue's scenario: a transaction committed before T comes back whole,
/// one open at T (6 records before T, 6 after, then its commit) not at
/// all, an aborted one never — with a snapshot taken while it was open and
/// one after, or only the one after.
#[tokio::test]
async fn a_transaction_open_at_t_is_restored_whole_or_not_at_all() {
    let b = source();
    let topic = unique("txat");
    create_topic(&b, &topic, 2, &[("retention.ms", "-1")]).await;
    let first = txn_producer(&b);
    first.begin_transaction().unwrap();
    send_all(&first, &topic, &records("one-", 8, 2));
    first.commit_transaction(Duration::from_secs(30)).unwrap();
    produce_transaction(&b, &topic, &records("aborted-", 4, 2), false);
    let second = txn_producer(&b);
    second.begin_transaction().unwrap();
    send_all(&second, &topic, &records("two-a", 6, 2));
    second.flush(Duration::from_secs(30)).unwrap();

    let (both, after) = (
        init_on(Arc::new(MemoryBackend::new())).await,
        init_on(Arc::new(MemoryBackend::new())).await,
    );
    let so = snap_opts(&b, &topic, "none-such-group");
    let while_open = snapshot(&both, &so, &NoProgress).await.unwrap();
    // `ls` names it on both partitions: 4 + marker + 2 aborted + marker.
    assert_eq!(open_at(&both, &while_open.snapshot).await, vec![vec![8], vec![8]]);
    let t = crate::common::clock_after(now_ms());
    crate::common::clock_after(t);
    send_all(&second, &topic, &records("two-b", 6, 2));
    second.commit_transaction(Duration::from_secs(30)).unwrap();
    let committed = snapshot(&both, &so, &NoProgress).await.unwrap();
    assert_eq!(
        open_at(&both, &committed.snapshot).await,
        vec![Vec::<i64>::new(); 2]
    );
    let s = snapshot(&after, &so, &NoProgress).await.unwrap();

    let one: Vec<String> = {
        let mut v: Vec<String> = (0..8).map(|i| format!("one-{i}")).collect();
        v.sort();
        v
    };
    for (name, repo) in [("both", &both), ("after", &after)] {
        let prefix = format!("at-{name}-");
        let mut o = ropts(&prefix, &topic);
        o.at = Some(t);
        let latest = repo.load_snapshots().await.unwrap().last().unwrap().0;
        let r = restore(repo, &latest, &o, &NoProgress).await.unwrap();
        assert_eq!(r.records_written, 8, "{name}: {:?}", r.warnings);
        assert_eq!(restored(&b, &format!("{prefix}{topic}")), one, "{name}");
    }
    // A dry run says what the cut leaves out, per partition.
    let mut o = ropts("dry-", &topic);
    o.at = Some(t);
    o.dry_run = true;
    let r = restore(&after, &s.snapshot, &o, &NoProgress).await.unwrap();
    for p in 0..2 {
        assert!(
            r.warnings
                .iter()
                .any(|w| w.starts_with(&format!("{topic}/{p}: 1 transaction(s) committed after"))),
            "{:?}",
            r.warnings
        );
    }
    // Without --at: both transactions, never the aborted one.
    let r = restore(&after, &s.snapshot, &ropts("all-", &topic), &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.records_written, 20);
    let all = restored(&b, &format!("all-{topic}"));
    assert!(all.iter().all(|v| !v.starts_with("aborted-")), "{all:?}");
    assert_eq!(all.iter().filter(|v| v.starts_with("two-")).count(), 12);
}

/// Offsets committed inside a transaction (`sendOffsetsToTransaction`, as
/// an exactly-once pipeline does) count from the transaction's commit
/// marker: as of T, a group's position leaves out a transaction committed
/// after T, though its offset commit reached the coordinator before T.
#[tokio::test]
async fn a_transaction_s_offset_commit_counts_from_its_marker() {
    let b = source();
    let base = unique("txg");
    let (input, output) = (format!("{base}-in"), format!("{base}-out"));
    for t in [&input, &output] {
        create_topic(&b, t, 1, &[("retention.ms", "-1")]).await;
    }
    produce(&b, &input, &records("in-", 10, 1));
    let group = format!("{base}-group");
    commit_group(&b, &group, &[(&input, 0, 2, "")]);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let so = kvault::ops::snapshot::SnapshotOptions {
        kafka: KafkaOptions::new(&b),
        topics: vec![format!("{base}-*")],
        groups: vec![group.clone()],
        ..Default::default()
    };
    snapshot(&repo, &so, &NoProgress).await.unwrap(); // the history starts here

    // The pipeline consumed input 2..5: its outputs and its position in
    // one transaction, committed after T.
    let p = txn_producer(&b);
    p.begin_transaction().unwrap();
    send_all(&p, &output, &records("out-", 3, 1));
    let consumer: rdkafka::consumer::BaseConsumer = config(&b).set("group.id", &group).create().unwrap();
    let mut position = rdkafka::TopicPartitionList::new();
    position
        .add_partition_offset(&input, 0, rdkafka::Offset::Offset(5))
        .unwrap();
    let cgm = rdkafka::consumer::Consumer::group_metadata(&consumer).unwrap();
    p.send_offsets_to_transaction(&position, &cgm, Duration::from_secs(30))
        .unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
    let t = crate::common::clock_after(now_ms());
    crate::common::clock_after(t);
    p.commit_transaction(Duration::from_secs(30)).unwrap();
    let s2 = snapshot(&repo, &so, &NoProgress).await.unwrap();

    let position_of = |r: &kvault::ops::restore::RestoreResult| {
        r.groups
            .iter()
            .find(|g| g.group == group && g.topic.ends_with(&input))
            .map(|g| g.source_offset)
    };
    let mut o = ropts(&format!("at-{base}-"), &format!("{base}-*"));
    o.at = Some(t);
    let r = restore(&repo, &s2.snapshot, &o, &NoProgress).await.unwrap();
    assert_eq!(position_of(&r), Some(2), "{:?} {:?}", r.groups, r.warnings);
    assert!(
        r.partitions
            .iter()
            .all(|p| !p.target_topic.ends_with("-out") || p.records == 0),
        "no output of the transaction: {:?}",
        r.partitions
    );
    // After its commit, both: outputs and the position that goes with them.
    let r = restore(
        &repo,
        &s2.snapshot,
        &ropts(&format!("all-{base}-"), &format!("{base}-*")),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(position_of(&r), Some(5), "{:?}", r.groups);
}

/// One transaction's runs on different partitions share one commit time:
/// its coordinator's completion, at or after every one of its markers
/// (which the leader writes one partition after the other).
#[tokio::test]
async fn a_transaction_s_partitions_share_its_coordinator_s_commit_time() {
    let b = source();
    let topic = unique("txct");
    create_topic(&b, &topic, 3, &[("retention.ms", "-1")]).await;
    let p = txn_producer(&b);
    for tag in ["first-", "second-"] {
        p.begin_transaction().unwrap();
        send_all(&p, &topic, &records(tag, 9, 3));
        p.commit_transaction(Duration::from_secs(30)).unwrap();
    }
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let s = snapshot(&repo, &snap_opts(&b, &topic, "none-such-group"), &NoProgress)
        .await
        .unwrap();
    let snap = repo.load_snapshot(&s.snapshot).await.unwrap();
    let m = kvault::image::manifest::load(&repo, &snap.tree, true)
        .await
        .unwrap();
    let parts = &m.topics[&topic].partitions;
    let spans: Vec<Vec<kvault::image::types::TxnSpan>> = (0..3)
        .map(|q| {
            parts[&q]
                .segments
                .iter()
                .filter_map(|x| x.meta.txns.clone())
                .flatten()
                .collect()
        })
        .collect();
    let mut times = Vec::new();
    for k in 0..2 {
        let of_k: Vec<_> = spans.iter().map(|v| v[k]).collect();
        let commit = of_k[0].commit_ts();
        assert!(of_k.iter().all(|x| x.commit_ts() == commit), "{of_k:?}");
        assert!(of_k.iter().all(|x| x.marker_ts() <= commit), "{of_k:?}");
        times.push(commit);
    }
    assert!(times[0] <= times[1], "{times:?}");
}

/// Per partition `0..3` of `topic` on `b`, its (offset, value) pairs,
/// read by one read_committed consumer.
fn partitions_of(b: &str, topic: &str) -> Vec<Vec<(i64, String)>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = config(b)
        .set("group.id", "kvault-test-reader")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = vec![Vec::new(); 3];
    let mut ended = std::collections::BTreeSet::new();
    while ended.len() < 3 {
        match c.poll(Duration::from_secs(15)) {
            Some(Ok(m)) => {
                use rdkafka::Message;
                let v = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                out[m.partition() as usize].push((m.offset(), v));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            other => panic!("reading {topic}: {other:?}"),
        }
    }
    out
}

/// The values `topic`'s partitions `0..3` hold on `b`, sorted (duplicates
/// kept).
fn values_of(b: &str, topic: &str) -> Vec<String> {
    let mut v: Vec<String> = partitions_of(b, topic)
        .into_iter()
        .flatten()
        .map(|(_, v)| v)
        .collect();
    v.sort();
    v
}

/// Starts the exactly-once pipeline (tests/clients/eos_pipeline.py,
/// confluent-kafka) on `b`.
fn pipeline(b: &str, group: &str, input: &str, output: &str) -> std::process::Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/eos_pipeline.py");
    std::process::Command::new("python3")
        .args([script, b, group, input, output, "6", "0.15"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(child: std::process::Child) {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The issue's pipeline: confluent-kafka consumes 3 input partitions and,
/// in a transaction every ~150 ms, writes outputs and commits its input
/// positions (`send_offsets_to_transaction`) while snapshots are taken. As
/// of 20 times spread over its run, a restore holds an output for exactly
/// the inputs before the group's position, on every partition (no
/// transaction in part); the pipeline resumed on the target finishes its
/// input with every output once.
///
/// Under CPU load (the whole suite, or two busy loops beside it) an output
/// transaction's markers can reach its partition after the first snapshot
/// past T while its coordinator committed it, and its offset commit, before
/// T: the as-of selection takes it from the snapshot after that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exactly_once_pipeline_comes_back_consistent_as_of_any_time() {
    let b = source();
    let base = unique("eos");
    let (input, output, group) = (
        format!("{base}-in"),
        format!("{base}-out"),
        format!("{base}-group"),
    );
    for t in [&input, &output] {
        create_topic(&b, t, 3, &[("retention.ms", "-1")]).await;
    }
    let inputs: Vec<(i32, Record)> = (0..180)
        .map(|i| {
            let (k, v) = (format!("k{i}"), format!("in-{i}"));
            (i % 3, rec(now_ms(), Some(k.as_bytes()), Some(v.as_bytes()), &[]))
        })
        .collect();
    produce(&b, &input, &inputs);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let so = kvault::ops::snapshot::SnapshotOptions {
        kafka: KafkaOptions::new(&b),
        topics: vec![format!("{base}-*")],
        groups: vec![group.clone()],
        ..Default::default()
    };
    // Every snapshot's warnings (a transaction scan that fell back to
    // record time) are shown with any failure below.
    let mut warnings: Vec<String> = Vec::new();
    let first = snapshot(&repo, &so, &NoProgress).await.unwrap(); // the history starts here
    warnings.extend(first.warnings);
    let started = now_ms();
    let mut run = pipeline(&b, &group, &input, &output);
    while run.try_wait().unwrap().is_none() {
        warnings.extend(snapshot(&repo, &so, &NoProgress).await.unwrap().warnings);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    finished(run);
    let ended = now_ms();
    let last = snapshot(&repo, &so, &NoProgress).await.unwrap();
    warnings.extend(last.warnings.clone());
    assert_eq!(values_of(&b, &output).len(), 180, "the pipeline ran to its end");

    let t = target();
    for k in 1..=20 {
        let at = started + (ended - started) * k / 21;
        let prefix = format!("t{k}-");
        let mut o = ropts(&prefix, &format!("{base}-*"));
        o.kafka = KafkaOptions::new(&t);
        o.at = Some(at);
        let r = restore(&repo, &last.snapshot, &o, &NoProgress).await.unwrap();
        let mut want = Vec::new();
        for (p, records) in partitions_of(&t, &format!("{prefix}{input}"))
            .into_iter()
            .enumerate()
        {
            let position = r
                .groups
                .iter()
                .find(|g| {
                    g.group == group && g.topic == format!("{prefix}{input}") && g.partition == p as i32
                })
                .map_or(0, |g| g.source_offset);
            want.extend(
                records
                    .into_iter()
                    .filter(|(off, _)| *off < position)
                    .map(|(_, v)| format!("out:{v}")),
            );
        }
        want.sort();
        assert_eq!(
            values_of(&t, &format!("{prefix}{output}")),
            want,
            "as of {at} (T{k}); groups from {:?}; restore warnings {:?}; snapshot warnings {warnings:?}",
            r.groups_from,
            r.warnings
        );
    }
    // Resumed on the target from T10: every input's output, once.
    finished(pipeline(
        &t,
        &group,
        &format!("t10-{input}"),
        &format!("t10-{output}"),
    ));
    let mut all: Vec<String> = (0..180).map(|i| format!("out:in-{i}")).collect();
    all.sort();
    assert_eq!(values_of(&t, &format!("t10-{output}")), all);
}

const TXN_PASSWORD: &[u8] = b"kvault kafka fixture txn v1";
const TXN_TARBALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kafka-txn-v1.tar.gz");

/// The committed transactional fixture (tests/fixtures/kafka-txn-v1.tar.gz):
/// one partition holding a committed transaction (offsets 0..=2, marker 3),
/// an aborted one (4..=5, marker 6), a plain record (7), and a transaction
/// open at the first snapshot (8..=9), committed before the second (marker
/// 10). Every later kvault must read its `txns` and cut by them; reading
/// needs no broker.
#[tokio::test]
async fn the_transactional_fixture_still_reads_and_cuts_by_its_markers() {
    let (_dir, root) = crate::common::extract_fixture(TXN_TARBALL, "kafka-txn-v1");
    let repo = kvault::ops::open(root.to_str().unwrap(), &Default::default(), TXN_PASSWORD)
        .await
        .unwrap();
    repo.load_index().await.unwrap();
    let snaps = repo.load_snapshots().await.unwrap();
    assert_eq!(snaps.len(), 2);
    let m = kvault::image::manifest::load(&repo, &snaps[1].1.tree, true)
        .await
        .unwrap();
    let p = &m.topics.values().next().unwrap().partitions[&0];
    let spans: Vec<[i64; 4]> = p
        .segments
        .iter()
        .filter_map(|s| s.meta.txns.as_ref())
        .flatten()
        .map(|s| [s.first(), s.last(), s.marker(), s.producer_epoch()])
        .collect();
    assert_eq!(spans, vec![[0, 2, 3, 0], [8, 9, 10, 0]]);
    let late = p.segments[1].meta.txns.as_ref().unwrap()[0];
    // As of just before the late transaction's marker: up to it, not into it.
    let cluster = &snaps[1].1.source;
    let repo = &repo;
    let cut = |t: i64| async move {
        let a = kvault::image::select::as_of(repo, cluster, t).await.unwrap();
        a.cuts.values().next().copied().flatten()
    };
    assert_eq!(cut(late.marker_ts() - 1).await, Some(8));
    assert_eq!(cut(late.marker_ts()).await, None, "committed at T: whole");
}

const TXN_V2_PASSWORD: &[u8] = b"kvault kafka fixture txn v2";
const TXN_V2_TARBALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kafka-txn-v2.tar.gz");

/// The second transactional fixture (tests/fixtures/kafka-txn-v2.tar.gz),
/// the same log as the first, taken by a kvault that dates transactions
/// by their coordinators' completions (`commit_ts`) and lists the ones open
/// at a snapshot: the first snapshot names the transaction open at 8, the
/// second cuts by its commit time.
#[tokio::test]
async fn the_second_transactional_fixture_reads_its_open_transactions_and_commit_times() {
    let (_dir, root) = crate::common::extract_fixture(TXN_V2_TARBALL, "kafka-txn-v2");
    let repo = kvault::ops::open(root.to_str().unwrap(), &Default::default(), TXN_V2_PASSWORD)
        .await
        .unwrap();
    repo.load_index().await.unwrap();
    let snaps = repo.load_snapshots().await.unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(open_at(&repo, &snaps[0].0).await, vec![vec![8]]);
    assert_eq!(open_at(&repo, &snaps[1].0).await, vec![Vec::<i64>::new()]);
    let m = kvault::image::manifest::load(&repo, &snaps[1].1.tree, true)
        .await
        .unwrap();
    let p = &m.topics.values().next().unwrap().partitions[&0];
    let late = p.segments[1].meta.txns.as_ref().unwrap()[0];
    assert_eq!([late.first(), late.last(), late.marker()], [8, 9, 10]);
    assert!(late.commit_ts() >= late.marker_ts(), "{late:?}");
    let cluster = &snaps[1].1.source;
    let repo = &repo;
    let cut = |t: i64| async move {
        let a = kvault::image::select::as_of(repo, cluster, t).await.unwrap();
        a.cuts.values().next().copied().flatten()
    };
    assert_eq!(cut(late.commit_ts() - 1).await, Some(8));
    assert_eq!(cut(late.commit_ts()).await, None, "committed at T: whole");
    // `kvault ls` names it, in text and in JSON.
    let ls = |json: bool| {
        let mut c = crate::cli::bare();
        c.arg("-r").arg(&root).arg("--no-progress");
        if json {
            c.arg("--json");
        }
        let o = c
            .args(["ls", &snaps[0].0.to_string()])
            .env("KVAULT_PASSWORD", "kvault kafka fixture txn v2")
            .env_remove("KVAULT_REPOSITORY")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let text = ls(false);
    assert!(text.contains("open transactions from 8 (producer "), "{text}");
    let json = ls(true);
    assert!(
        json.contains("\"open_transactions\":[{\"first_offset\":8,"),
        "{json}"
    );
}

/// Regenerates the transactional fixture (needs a broker; only for a new
/// format version, into a new file):
/// `cargo test -- --ignored make_transactional_fixture`.
#[tokio::test]
#[ignore]
async fn make_transactional_fixture() {
    let b = source();
    let topic = unique("fixture-txn");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    produce_transaction(&b, &topic, &records("committed-", 3, 1), true);
    produce_transaction(&b, &topic, &records("aborted-", 2, 1), false);
    produce(&b, &topic, &records("plain-", 1, 1));
    let open = txn_producer(&b);
    open.begin_transaction().unwrap();
    send_all(&open, &topic, &records("late-", 2, 1));
    open.flush(Duration::from_secs(30)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("kafka-txn-v2");
    let repo = crate::common::fixture_repo(&root, TXN_V2_PASSWORD).await;
    let so = snap_opts(&b, &topic, "none");
    snapshot(&repo, &so, &NoProgress).await.unwrap();
    open.commit_transaction(Duration::from_secs(30)).unwrap();
    snapshot(&repo, &so, &NoProgress).await.unwrap();
    crate::common::tar_fixture(dir.path(), "kafka-txn-v2", &format!("{TXN_V2_TARBALL}.new"));
}
