//! Restore into targets as production has them: a target that already
//! holds records (refused, appended to, purged), a different partition
//! count (`--repartition` by the Java client's key hash, checked against
//! librdkafka's own murmur2 partitioner), hundreds of freshly created
//! partitions under CPU load, a rate cap, a restore that fails half way
//! (what it left, then the rerun), and an unreachable broker.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kvault::backend::Backend;
use kvault::backend::memory::MemoryBackend;
use kvault::image::record::{Record, TimestampType};
use kvault::kafka::KafkaOptions;
use kvault::ops::restore::{IfNotEmpty, restore};
use kvault::ops::snapshot::snapshot;
use kvault::{NoProgress, Repository};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::common::init_on;
use crate::kafka::*;
use crate::kafka_restore::{read_partition, ropts, snap_opts, target};

pub(crate) fn keyed(n: usize, partitions: i32, seed: &str) -> Vec<(i32, Record)> {
    let ts = now_ms() - 60_000;
    (0..n)
        .map(|i| {
            let key = (i % 7 != 3).then(|| format!("{seed}-key-{}", i % 53).into_bytes());
            (
                (i as i32) % partitions,
                Record {
                    timestamp: ts + i as i64,
                    timestamp_type: TimestampType::CreateTime,
                    key,
                    value: Some(format!("{seed} value {i}").into_bytes()),
                    headers: vec![],
                },
            )
        })
        .collect()
}

async fn snapshot_of(b: &str, topic: &str, group: &str) -> (Repository, MemoryBackend, kvault::Id) {
    let mem = MemoryBackend::new();
    let repo = init_on(Arc::new(mem.clone())).await;
    let s = snapshot(&repo, &snap_opts(b, topic, group), &NoProgress)
        .await
        .unwrap();
    (repo, mem, s.snapshot)
}

#[tokio::test]
async fn purge_deletes_what_the_target_held_then_restores_with_exact_offsets() {
    let b = source();
    let topic = unique("purge");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    produce(&b, &topic, &keyed(40, 1, "src"));
    let group = unique("pg");
    commit_group(&b, &group, &[(&topic, 0, 10, "m")]);
    let (repo, _, snap) = snapshot_of(&b, &topic, &group).await;
    let t = format!("p-{topic}");
    create_topic(&b, &t, 1, &[]).await;
    produce(&b, &t, &keyed(9, 1, "old"));
    let mut o = ropts("p-", &topic);
    o.if_not_empty = IfNotEmpty::Purge;
    let r = restore(&repo, &snap, &o, &NoProgress).await.unwrap();
    assert_eq!(r.purged_records, 9);
    assert_eq!(r.non_empty, vec![format!("{t}/0: 9 records")]);
    assert_eq!(r.partitions[0].target_start, Some(9));
    let got = read_partition(&b, &t, 0, None);
    let src = read_partition(&b, &topic, 0, None);
    assert_eq!(got.len(), 40, "only the restored records are left");
    assert_eq!(got.first().map(|x| x.0), Some(9));
    for (g, s) in got.iter().zip(&src) {
        assert_eq!(g.1, s.1);
    }
    let resumed = read_partition(&b, &t, 0, Some(&group));
    assert_eq!(resumed.first().map(|x| (x.0, &x.1)), Some((19, &src[10].1)));
}

#[tokio::test]
async fn repartition_routes_keys_like_the_java_client_and_groups_lose_nothing() {
    let b = source();
    let topic = unique("rep");
    create_topic(&b, &topic, 3, &[("retention.ms", "-1")]).await;
    let sent = keyed(600, 3, "rp");
    produce(&b, &topic, &sent);
    let group = unique("rg");
    // The group consumed 120, 60 and 190 of each partition's 200 records.
    commit_group(
        &b,
        &group,
        &[(&topic, 0, 120, ""), (&topic, 1, 60, ""), (&topic, 2, 190, "")],
    );
    let (repo, _, snap) = snapshot_of(&b, &topic, &group).await;

    // Where librdkafka's Java-compatible partitioner puts each key.
    let probe = unique("probe");
    create_topic(&b, &probe, 2, &[]).await;
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    for i in 0..53 {
        let k = format!("rp-key-{i}");
        p.send(
            BaseRecord::<[u8], [u8]>::to(&probe)
                .key(k.as_bytes())
                .payload(b""),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let mut java: HashMap<Vec<u8>, i32> = HashMap::new();
    for part in 0..2 {
        for (_, r) in read_partition(&b, &probe, part, None) {
            java.insert(r.key.unwrap(), part);
        }
    }
    assert_eq!(java.len(), 53);

    let t = format!("rp-{topic}");
    create_topic(&b, &t, 2, &[]).await;
    let refused = restore(&repo, &snap, &ropts("rp-", &topic), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            kvault::Error::Refused(kvault::Refusal::TooFewPartitions { have: 2, need: 3, .. })
        ),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("has 2 partitions; the snapshot needs 3"),
        "{refused}"
    );
    let mut o = ropts("rp-", &topic);
    o.repartition = true;
    let r = restore(&repo, &snap, &o, &NoProgress).await.unwrap();
    assert_eq!(r.records_written, 600);
    assert_eq!(r.spread.iter().map(|s| s.records).sum::<u64>(), 600);
    let mut keyless = 0;
    let mut restored: BTreeMap<String, (i32, i64)> = BTreeMap::new();
    for part in 0..2 {
        for (off, rec) in read_partition(&b, &t, part, None) {
            match &rec.key {
                Some(k) => assert_eq!(java[k], part, "key {}", String::from_utf8_lossy(k)),
                None => keyless += 1,
            }
            restored.insert(String::from_utf8(rec.value.unwrap()).unwrap(), (part, off));
        }
    }
    assert_eq!(restored.len(), 600);
    assert!(keyless > 50);
    // At least once: every record the group had not consumed is at or after
    // the group's position in its target partition.
    let committed = [120, 60, 190];
    let mut pos = [0i64; 2];
    for g in r.groups.iter().filter(|g| g.group == group) {
        assert!(g.approximate);
        pos[g.partition as usize] = g.target_offset.unwrap();
    }
    for (i, (sp, _)) in sent.iter().enumerate() {
        let source_offset = i as i64 / 3;
        if source_offset >= committed[*sp as usize] {
            let (tp, toff) = restored[&format!("rp value {i}")];
            assert!(
                toff >= pos[tp as usize],
                "record {i} (unconsumed) is before the group's position"
            );
        }
    }
    // The group resumes there on the target.
    for part in 0..2 {
        let resumed = read_partition(&b, &t, part, Some(&group));
        assert_eq!(
            resumed.first().map(|x| x.0),
            Some(pos[part as usize]).filter(|_| !resumed.is_empty())
        );
    }
}

/// Busy threads for the duration of a test.
struct CpuLoad(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl CpuLoad {
    fn start(threads: usize) -> CpuLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let hs = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for i in 0..100_000u64 {
                            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
                        }
                    }
                })
            })
            .collect();
        CpuLoad(stop, hs)
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for h in self.1.drain(..) {
            let _ = h.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_into_500_freshly_created_partitions_under_cpu_load_succeed_at_the_first_attempt() {
    let b = source();
    let tgt = target();
    let base = unique("wide");
    let topics: Vec<String> = (0..5).map(|i| format!("{base}-{i}")).collect();
    for t in &topics {
        create_topic(&b, t, 100, &[("retention.ms", "-1")]).await;
        let recs: Vec<(i32, Record)> = (0..2000)
            .map(|i| {
                (
                    i % 100,
                    rec(now_ms(), Some(format!("k{i}").as_bytes()), Some(b"v"), &[]),
                )
            })
            .collect();
        produce(&b, t, &recs);
    }
    let group = unique("wg");
    commit_group(&b, &group, &[(&topics[0], 7, 11, "")]);
    let mem = MemoryBackend::new();
    let repo = init_on(Arc::new(mem.clone())).await;
    let mut so = snap_opts(&b, &format!("{base}-*"), &group);
    so.topics = vec![format!("{base}-*")];
    let s = snapshot(&repo, &so, &NoProgress).await.unwrap();
    assert_eq!(s.partitions, 500);
    let rounds: usize = std::env::var("KVAULT_TEST_WIDE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let load = CpuLoad::start(2);
    let mut failures = Vec::new();
    for round in 0..rounds {
        let mut o = ropts(&format!("w{round}-"), &format!("{base}-*"));
        o.kafka = KafkaOptions::new(&tgt);
        let t0 = Instant::now();
        match restore(&repo, &s.snapshot, &o, &NoProgress).await {
            Ok(r) => {
                assert_eq!(r.records_written, 10_000);
                assert_eq!(r.created_topics.len(), 5);
                let g = r.groups.iter().find(|g| g.group == group).unwrap();
                assert_eq!(g.target_offset, Some(11));
                println!("round {round}: {:.1} s", t0.elapsed().as_secs_f64());
            }
            Err(e) => failures.push(format!("round {round}: {e}")),
        }
        for t in &topics {
            delete_topic(&tgt, &format!("w{round}-{t}")).await;
        }
    }
    drop(load);
    assert!(
        failures.is_empty(),
        "{} of {rounds} first attempts failed: {failures:?}",
        failures.len()
    );
}

#[tokio::test]
async fn the_rate_cap_holds_a_restore_to_its_records_per_second() {
    let b = source();
    let topic = unique("slow");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    produce(&b, &topic, &keyed(600, 1, "sl"));
    let (repo, _, snap) = snapshot_of(&b, &topic, "none").await;
    let mut o = ropts("sl-", &topic);
    o.max_records_per_sec = Some(400);
    let t0 = Instant::now();
    let r = restore(&repo, &snap, &o, &NoProgress).await.unwrap();
    assert_eq!(r.records_written, 600);
    // 600 records at 400/s: the last is sent no earlier than 1.5 s after the first.
    assert!(t0.elapsed() >= Duration::from_millis(1400), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn a_restore_that_fails_half_way_says_what_it_left_and_the_rerun_completes_it_exactly_once() {
    let b = source();
    let topic = unique("half");
    create_topic(&b, &topic, 2, &[("retention.ms", "-1")]).await;
    let sent: Vec<(i32, Record)> = (0..6000)
        .map(|i| {
            let v = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(150 + i % 50));
            (
                i as i32 % 2,
                rec(
                    now_ms(),
                    Some(format!("k{i}").as_bytes()),
                    Some(v.as_bytes()),
                    &[],
                ),
            )
        })
        .collect();
    produce(&b, &topic, &sent);
    let group = unique("hg");
    commit_group(&b, &group, &[(&topic, 1, 2500, "")]);
    let (repo, mem, snap) = snapshot_of(&b, &topic, &group).await;
    // Damage the last chunk of partition 1: partition 0 and most of
    // partition 1 are written before the restore meets it.
    let m = kvault::image::manifest::load(&repo, &repo.load_snapshot(&snap).await.unwrap().tree, true)
        .await
        .unwrap();
    let last = *m.topics[&topic].partitions[&1].segments[0].chunks.last().unwrap();
    let loc = *repo.index().get(&last).unwrap();
    let path = kvault::repo::pack_path(&loc.pack);
    let good = mem.read(&path).await.unwrap();
    let mut bad = good.clone();
    bad[loc.offset as usize + 30] ^= 1;
    mem.tamper(&path, bad);
    let repo = Repository::open(Arc::new(mem.clone()), b"pw").await.unwrap();
    let o = ropts("half-", &topic);
    let e = restore(&repo, &snap, &o, &NoProgress)
        .await
        .unwrap_err()
        .to_string();
    let t = format!("half-{topic}");
    assert!(e.contains("corrupt or tampered"), "{e}");
    assert!(e.contains(&format!("{t}/0: 3000")), "{e}");
    assert!(e.contains(&format!("in topics kvault created ({t})")), "{e}");
    assert!(e.contains("run the same command again to resume"), "{e}");
    // The CLI adds how to undo it (--if-not-empty purge), `cli` tests.
    // Mend the pack (as a repaired repository would) and rerun.
    mem.tamper(&path, good);
    let repo = Repository::open(Arc::new(mem.clone()), b"pw").await.unwrap();
    let r = restore(&repo, &snap, &o, &NoProgress).await.unwrap();
    assert!(r.resumed_records >= 3000, "{}", r.resumed_records);
    for p in 0..2 {
        let src = read_partition(&b, &topic, p, None);
        let dst = read_partition(&b, &t, p, None);
        assert_eq!(src, dst, "partition {p}: exactly once");
    }
    let resumed = read_partition(&b, &t, 1, Some(&group));
    assert_eq!(resumed.first().map(|x| x.0), Some(2500));
}

#[test]
fn an_unreachable_broker_fails_within_ten_seconds_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let run = |args: &[&str]| {
        crate::cli::bare()
            .args(["-r", repo.to_str().unwrap(), "--no-progress"])
            .args(args)
            .env("KVAULT_PASSWORD", "pw")
            .output()
            .unwrap()
    };
    assert!(run(&["init", "--insecure-fast-kdf"]).status.success());
    // A snapshot to restore (the cluster is asked before its kind is).
    let f = dir.path().join("f");
    std::fs::write(&f, b"bytes").unwrap();
    assert!(run(&["put", f.to_str().unwrap()]).status.success());
    // Nothing listens on port 1: the connection is refused at once.
    for args in [
        &["snapshot", "-b", "127.0.0.1:1"][..],
        &["restore", "latest", "-b", "127.0.0.1:1"][..],
    ] {
        let t0 = Instant::now();
        let out = run(args);
        let took = t0.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("cannot reach Kafka at 127.0.0.1:1"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
    }
    let t0 = Instant::now();
    let out = run(&["snapshot", "-b", "127.0.0.1:1", "--kafka-timeout", "12s"]);
    assert!(
        t0.elapsed() >= Duration::from_secs(11),
        "--kafka-timeout raises the wait"
    );
    assert_eq!(out.status.code(), Some(1));
    // The cluster is reached while the key is derived, but the
    // repository's error still comes first: a wrong password with an
    // unreachable broker exits 12, once the connection attempt has ended.
    let t0 = Instant::now();
    let out = crate::cli::bare()
        .args(["-r", repo.to_str().unwrap(), "--no-progress"])
        .args(["snapshot", "-b", "127.0.0.1:1", "--kafka-timeout", "2s"])
        .env("KVAULT_PASSWORD", "wrong")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(12), "{err}");
    assert!(err.starts_with("kvault: wrong password"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn values_of_several_kib_snapshot_and_restore_byte_for_byte() {
    let b = source();
    let topic = unique("big");
    create_topic(&b, &topic, 8, &[("retention.ms", "-1")]).await;
    let sent: Vec<(i32, Record)> = (0..2400)
        .map(|i| {
            let mut v = format!("{{\"obj\":{i}}}").into_bytes();
            v.resize(4096 + (i % 7) * 1024, 0);
            let mut h = blake3::Hasher::new();
            h.update(&(i as u64).to_le_bytes());
            h.finalize_xof().fill(&mut v[16..]);
            (
                i as i32 % 8,
                rec(
                    now_ms(),
                    Some(format!("obj-{i}").as_bytes()),
                    Some(&v),
                    &[("ct", Some(b"image/webp"))],
                ),
            )
        })
        .collect();
    produce(&b, &topic, &sent);
    let (repo, _, snap) = snapshot_of(&b, &topic, "none").await;
    let r = restore(&repo, &snap, &ropts("big-", &topic), &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.records_written, 2400);
    for p in 0..8 {
        let src = read_partition(&b, &topic, p, None);
        assert_eq!(src.len(), 300);
        assert!(
            src == read_partition(&b, &format!("big-{topic}"), p, None),
            "partition {p}"
        );
    }
    let report = kvault::ops::check::check(
        &repo,
        &kvault::ops::check::CheckOptions {
            read_data: true,
            ..Default::default()
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[tokio::test]
async fn a_flipped_byte_is_repaired_into_a_recorded_gap_and_every_other_record_restores() {
    let b = source();
    let topic = unique("mend");
    create_topic(&b, &topic, 2, &[("retention.ms", "-1")]).await;
    let sent: Vec<(i32, Record)> = (0..4000)
        .map(|i| {
            let v = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "m".repeat(150 + i % 50));
            (
                i as i32 % 2,
                rec(
                    now_ms(),
                    Some(format!("k{i}").as_bytes()),
                    Some(v.as_bytes()),
                    &[],
                ),
            )
        })
        .collect();
    produce(&b, &topic, &sent);
    let group = unique("mg");
    commit_group(&b, &group, &[(&topic, 1, 1900, "")]);
    let (repo, mem, snap) = snapshot_of(&b, &topic, &group).await;
    // Flip a byte inside one chunk of partition 1, in the middle.
    let m = kvault::image::manifest::load(&repo, &repo.load_snapshot(&snap).await.unwrap().tree, true)
        .await
        .unwrap();
    let seg = &m.topics[&topic].partitions[&1].segments[0];
    let victim = seg.chunks.len() / 2;
    let (vid, vmeta, voffs) = seg
        .chunks_with_offsets()
        .nth(victim)
        .map(|(i, c, o)| (*i, *c, o))
        .unwrap();
    let loc = *repo.index().get(&vid).unwrap();
    let path = kvault::repo::pack_path(&loc.pack);
    let mut bytes = mem.read(&path).await.unwrap();
    bytes[loc.offset as usize + 40] ^= 1;
    mem.tamper(&path, bytes);
    let repo = Repository::open(Arc::new(mem.clone()), b"pw").await.unwrap();
    let check = |r: Repository| async move {
        kvault::ops::check::check(
            &r,
            &kvault::ops::check::CheckOptions {
                read_data: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .await
        .unwrap()
    };
    let before = check(repo.clone()).await;
    let lost = [voffs[0], voffs[voffs.len() - 1] + 1];
    assert!(
        before
            .affected
            .iter()
            .any(|a| a.partition == Some(1) && a.offsets == Some(lost) && a.what == topic),
        "check names topic, partition and offsets: {:?}",
        before.affected
    );
    let r = kvault::ops::repair::repair_snapshots(&repo, &Default::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(r.rewritten.len(), 1, "{r:?}");
    let mended = r.rewritten[0].1.unwrap();
    let after = check(repo.clone()).await;
    assert!(after.errors.is_empty(), "{:?}", after.errors);
    // Restore: every record but the damaged chunk's, offsets translated
    // exactly around the gap.
    let res = restore(&repo, &mended, &ropts("mended-", &topic), &NoProgress)
        .await
        .unwrap();
    assert_eq!(res.records_written, 4000 - vmeta.records() as u64);
    let t = format!("mended-{topic}");
    assert_eq!(
        read_partition(&b, &topic, 0, None),
        read_partition(&b, &t, 0, None)
    );
    let src1: Vec<Record> = read_partition(&b, &topic, 1, None)
        .into_iter()
        .filter(|(o, _)| *o < lost[0] || *o >= lost[1])
        .map(|x| x.1)
        .collect();
    let dst1: Vec<Record> = read_partition(&b, &t, 1, None).into_iter().map(|x| x.1).collect();
    assert!(src1 == dst1, "partition 1: every undamaged record, in order");
    let ls = kvault::image::manifest::load(&repo, &repo.load_snapshot(&mended).await.unwrap().tree, false)
        .await
        .unwrap();
    assert_eq!(ls.topics[&topic].partitions[&1].meta.lost, vec![lost]);
}

/// A topic's config value on a cluster, as the broker describes it.
pub async fn topic_config(brokers: &str, topic: &str, key: &str) -> Option<String> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let r = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    let res = r.into_iter().next().unwrap().unwrap();
    res.get(key).and_then(|e| e.value.clone())
}

#[tokio::test]
async fn log_append_time_topics_keep_their_original_timestamps() {
    let (b, tgt) = (source(), target());
    let topic = unique("lat");
    create_topic(&b, &topic, 2, &[("message.timestamp.type", "LogAppendTime")]).await;
    // The broker stamps these with its own clock; the producer's times
    // (a minute ago) are discarded.
    produce(&b, &topic, &keyed(300, 2, "lat"));
    // Restored records are written strictly after the source's stamps, so a
    // target that stamped them anew would show.
    let stamped = (0..2)
        .flat_map(|p| read_partition(&b, &topic, p, None))
        .map(|r| r.1.timestamp)
        .max()
        .unwrap();
    crate::common::clock_after(stamped);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let s = snapshot(&repo, &snap_opts(&b, &topic, "none-such-group"), &NoProgress)
        .await
        .unwrap();
    let mut o = ropts("", &topic);
    o.kafka = KafkaOptions::new(&tgt);
    let r = restore(&repo, &s.snapshot, &o, &NoProgress).await.unwrap();
    assert_eq!(r.log_append_time, vec![topic.clone()]);
    assert!(
        r.warnings.iter().any(|w| w.contains("LogAppendTime")),
        "{:?}",
        r.warnings
    );
    for p in 0..2 {
        let (src, dst) = (
            read_partition(&b, &topic, p, None),
            read_partition(&tgt, &topic, p, None),
        );
        assert_eq!(src.len(), 150);
        assert_eq!(src, dst, "partition {p}: offsets, timestamps, keys and values");
    }
    // The broker's stamps, not the producer's: restored records kept them.
    let first = read_partition(&tgt, &topic, 0, None)[0].1.timestamp;
    assert!(
        first > now_ms() - 30_000,
        "{first} is the broker's time of the source write"
    );
    assert_eq!(
        topic_config(&tgt, &topic, "message.timestamp.type")
            .await
            .as_deref(),
        Some("LogAppendTime"),
        "the target topic ends as LogAppendTime"
    );
}
