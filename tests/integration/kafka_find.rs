//! `kvault find` on a real broker: one account's versions written over two
//! snapshots, with a retention gap (DeleteRecords past the first version)
//! and a tombstone between them. find lists exactly the versions an
//! independent confluent-kafka scan saw before each snapshot, each once,
//! with the snapshots that hold it, oldest first; `--at` names the value a
//! compacted-topic consumer saw then; `--from/--to` narrow by time.

use crate::cli::{json_line as line, ok_args as kvault};
use crate::kafka::*;

const SCAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/key_versions.py");

/// Every record of `key` in the topic now: (partition, offset, timestamp, value).
fn scan(b: &str, topic: &str, key: &str) -> Vec<(i64, i64, i64, Option<String>)> {
    let o = std::process::Command::new("python3")
        .args([SCAN, b, topic, key])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Vec<(i64, i64, i64, Option<String>)> = serde_json::from_slice(&o.stdout).unwrap();
    v
}

/// The versions of a find report as the scan gives them: (partition,
/// offset, timestamp, value).
fn versions(f: &serde_json::Value) -> Vec<(i64, i64, i64, Option<String>)> {
    f["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["partition"].as_i64().unwrap(),
                v["offset"].as_i64().unwrap(),
                v["timestamp"].as_i64().unwrap(),
                v["value"].as_str().map(String::from),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn find_lists_every_version_an_independent_scan_saw_across_snapshots() {
    let b = source();
    let topic = unique("find");
    create_topic(&b, &topic, 2, &[("retention.ms", "-1")]).await;
    let key = unique("acct");
    // Partition 1 holds the account; partition 0 others. Timestamps are
    // set a second apart so --at and --from fall between versions.
    let t0 = now_ms() - 100_000;
    let rec_at =
        |i: i64, k: &str, v: Option<&str>| rec(t0 + i * 1000, Some(k.as_bytes()), v.map(str::as_bytes), &[]);
    let first: Vec<(i32, kvault::image::record::Record)> = (0..20)
        .map(|i| match i {
            3 => (1, rec_at(i, &key, Some("balance 10"))),
            9 => (1, rec_at(i, &key, Some("balance 25"))),
            _ => ((i % 2) as i32, rec_at(i, &format!("other-{i}"), Some("x"))),
        })
        .collect();
    produce(&b, &topic, &first);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    crate::cli::init(&repo);
    let mut want = scan(&b, &topic, &key);
    assert_eq!(want.len(), 2);
    kvault(
        &repo,
        &["snapshot", "-b", &b, "--topic", &topic, "--group", "none"],
    );

    // Retention takes the first version away; then a new balance and a
    // tombstone (the account closed).
    let first_offset = want[0].1;
    delete_records(&b, &topic, 1, first_offset + 1).await;
    produce(
        &b,
        &topic,
        &[
            (1, rec_at(30, &key, Some("balance 40"))),
            (1, rec_at(31, &key, None)),
        ],
    );
    let now = scan(&b, &topic, &key);
    assert_eq!(now.len(), 3, "the first version is gone from the topic: {now:?}");
    for v in now {
        if !want.contains(&v) {
            want.push(v);
        }
    }
    kvault(
        &repo,
        &["snapshot", "-b", &b, "--topic", &topic, "--group", "none"],
    );

    let f = line(
        &kvault(&repo, &["find", "--topic", &topic, "--key", &key, "--json"]),
        "find",
    );
    let got = versions(&f);
    assert_eq!(got, want, "every version once, oldest first");
    let holders = |i: usize| f["versions"][i]["snapshots"].as_array().unwrap().len();
    assert_eq!(
        (holders(0), holders(1), holders(2), holders(3)),
        (1, 2, 1, 1),
        "{f}"
    );
    assert_eq!(f["snapshots"], 2);

    // As of a time between the second and the third version; after the tombstone.
    let at = (t0 + 20 * 1000).to_string();
    let f = line(
        &kvault(&repo, &["find", "--key", &key, "--at", &at, "--json"]),
        "find",
    );
    assert_eq!(
        (f["at"]["version"].as_i64(), f["at"]["deleted"].as_bool()),
        (Some(1), Some(false)),
        "{f}"
    );
    let at = (t0 + 40 * 1000).to_string();
    let f = line(
        &kvault(&repo, &["find", "--key", &key, "--at", &at, "--json"]),
        "find",
    );
    assert_eq!(
        (f["at"]["version"].as_i64(), f["at"]["deleted"].as_bool()),
        (Some(3), Some(true)),
        "{f}"
    );
    // Narrowed by time: only the last two.
    let from = (t0 + 25 * 1000).to_string();
    let f = line(
        &kvault(&repo, &["find", "--key", &key, "--from", &from, "--json"]),
        "find",
    );
    assert_eq!(f["versions"].as_array().unwrap().len(), 2, "{f}");
}

/// Key filters (format-spec §14 "Key filters"): a segment of many chunks
/// has one, so find and rewrite read only the chunks that may hold the
/// key; `--no-filters`, a copy under other keys and a rewritten segment
/// read every chunk, and all give the same versions.
#[tokio::test(flavor = "multi_thread")]
async fn find_and_rewrite_read_only_the_chunks_whose_key_filter_may_hold_the_key() {
    let b = source();
    let topic = unique("filt");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    let needle = unique("needle");
    let records: Vec<(i32, kvault::image::record::Record)> = (0..2000u32)
        .map(|i| {
            let k = if i == 1500 {
                needle.clone()
            } else {
                format!("key-{i}")
            };
            let mut v = vec![0u8; 600];
            blake3::Hasher::new()
                .update(&i.to_le_bytes())
                .finalize_xof()
                .fill(&mut v);
            (0, rec(now_ms(), Some(k.as_bytes()), Some(&v), &[]))
        })
        .collect();
    produce(&b, &topic, &records);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    crate::cli::init(&repo);
    kvault(
        &repo,
        &["snapshot", "-b", &b, "--topic", &topic, "--group", "none"],
    );
    let find = |repo: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["find", "--topic", &topic, "--key", &needle, "--json"];
        args.extend_from_slice(extra);
        line(&kvault(repo, &args), "find")
    };
    let offsets = |f: &serde_json::Value| -> Vec<i64> {
        f["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["offset"].as_i64().unwrap())
            .collect()
    };
    let all = find(&repo, &["--no-filters"]);
    let chunks = all["chunks_read"].as_u64().unwrap();
    assert!(chunks >= 10, "a segment of many chunks: {all}");
    assert_eq!(offsets(&all), vec![1500]);
    assert_eq!(all["segments_unfiltered"], 1);
    let f = find(&repo, &[]);
    assert_eq!(offsets(&f), vec![1500], "{f}");
    assert!(f["chunks_read"].as_u64().unwrap() <= 2, "{f}");
    assert_eq!(
        f["chunks_read"].as_u64().unwrap() + f["chunks_filtered"].as_u64().unwrap(),
        chunks
    );
    assert_eq!(f["segments_unfiltered"], 0);

    // A copy under other keys keeps the filter blob but cannot use it.
    let dst = dir.path().join("dst");
    crate::cli::ok(crate::cli::kvault(&dst).args(["init", "--insecure-fast-kdf"]));
    crate::cli::ok(
        crate::cli::kvault(&dst)
            .args(["copy", "--from-repo"])
            .arg(&repo)
            .env("KVAULT_FROM_PASSWORD", "pw"),
    );
    let c = find(&dst, &[]);
    assert_eq!(offsets(&c), vec![1500], "{c}");
    assert_eq!(c["segments_unfiltered"], 1, "{c}");
    crate::cli::ok(crate::cli::kvault(&dst).args(["check", "--read-data"]));

    // A rewrite skips the chunks the filter clears, and its new segment
    // has no filter (it would still answer for the erased key).
    let r = line(
        &kvault(
            &repo,
            &[
                "rewrite",
                "--topic",
                &topic,
                "--drop-key",
                &needle,
                "--forget",
                "--json",
            ],
        ),
        "rewrite",
    );
    assert!(r["chunks_read"].as_u64().unwrap() <= 2, "{r}");
    assert!(r["chunks_skipped"].as_u64().unwrap() >= chunks - 2, "{r}");
    let after = find(&repo, &[]);
    assert_eq!(offsets(&after), Vec::<i64>::new(), "{after}");
    assert_eq!(after["segments_unfiltered"], 1, "{after}");
    crate::cli::ok(crate::cli::kvault(&repo).args(["check", "--read-data"]));
}

/// A compaction gap: the cleaner removes the key's first two versions
/// from the topic between two snapshots (the second before any snapshot
/// read it). find lists exactly the union of what the independent scan saw
/// before each snapshot; the first version stays in the second snapshot's
/// image too (compaction does not move the log start).
#[tokio::test(flavor = "multi_thread")]
async fn find_keeps_a_version_compaction_removed_after_a_snapshot() {
    let b = source();
    let topic = unique("findc");
    create_topic(&b, &topic, 1, &COMPACT_SOON).await;
    let key = unique("acct");
    let t0 = now_ms() - 60_000;
    let at = |i: i64, k: &str, v: &str| (0, rec(t0 + i, Some(k.as_bytes()), Some(v.as_bytes()), &[]));
    produce(&b, &topic, &[at(0, &key, "v1"), at(1, "other", "x")]);
    let mut want = scan(&b, &topic, &key);
    assert_eq!(want.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    crate::cli::init(&repo);
    let snapshot = || {
        kvault(
            &repo,
            &["snapshot", "-b", &b, "--topic", &topic, "--group", "none"],
        )
    };
    snapshot();
    produce(&b, &topic, &[at(2, &key, "v2"), at(3, &key, "v3")]);
    // Roll segments with ticks until the cleaner has kept only v3.
    let mut now = scan(&b, &topic, &key);
    for i in 0..120 {
        if now.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        produce(
            &b,
            &topic,
            &[(
                0,
                rec(now_ms(), Some(format!("tick{i}").as_bytes()), Some(b"t"), &[]),
            )],
        );
        now = scan(&b, &topic, &key);
    }
    assert_eq!(now.len(), 1, "the cleaner did not compact within 60 s: {now:?}");
    assert_eq!(now[0].3.as_deref(), Some("v3"));
    want.extend(now);
    snapshot();
    let f = line(
        &kvault(&repo, &["find", "--topic", &topic, "--key", &key, "--json"]),
        "find",
    );
    let got = versions(&f);
    assert_eq!(got, want, "v1 from the first snapshot, v3 from the second: {f}");
    let holders: Vec<usize> = f["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["snapshots"].as_array().unwrap().len())
        .collect();
    assert_eq!(holders, vec![2, 1], "{f}");
}

/// Frequent snapshots write small segments (one chunk per partition
/// here): they share one key-filter blob per snapshot, so find across
/// many snapshots reads only the chunks that may hold the key, and lists
/// what the independent scan and `--no-filters` list.
#[tokio::test(flavor = "multi_thread")]
async fn small_segments_of_frequent_snapshots_share_filters_and_find_reads_only_their_hits() {
    let b = source();
    let topic = unique("small");
    create_topic(&b, &topic, 3, &[("retention.ms", "-1")]).await;
    let needle = unique("needle");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    crate::cli::init(&repo);
    for round in 0..8i64 {
        let records: Vec<(i32, kvault::image::record::Record)> = (0..60i64)
            .map(|i| {
                let k = match (round, i) {
                    (2 | 5, 7) => needle.clone(),
                    _ => format!("key-{round}-{i}"),
                };
                let v = format!("value {round} {i}");
                (
                    (i % 3) as i32,
                    rec(now_ms(), Some(k.as_bytes()), Some(v.as_bytes()), &[]),
                )
            })
            .collect();
        produce(&b, &topic, &records);
        kvault(
            &repo,
            &["snapshot", "-b", &b, "--topic", &topic, "--group", "none"],
        );
    }
    let find = |extra: &[&str]| {
        let mut args = vec!["find", "--topic", &topic, "--key", &needle, "--json"];
        args.extend_from_slice(extra);
        line(&kvault(&repo, &args), "find")
    };
    let all = find(&["--no-filters"]);
    let f = find(&[]);
    let expected = scan(&b, &topic, &needle);
    assert_eq!(expected.len(), 2);
    assert_eq!(versions(&all), expected, "{all}");
    assert_eq!(versions(&f), expected, "{f}");
    // 8 snapshots x 3 partitions, one chunk each; the key is in two.
    assert_eq!(all["chunks_read"], 24, "{all}");
    assert_eq!(all["segments_unfiltered"], 24, "{all}");
    assert_eq!(f["segments_unfiltered"], 0, "{f}");
    let read = f["chunks_read"].as_u64().unwrap();
    assert!((2..=4).contains(&read), "{f}");
    assert_eq!(read + f["chunks_filtered"].as_u64().unwrap(), 24, "{f}");
    crate::cli::ok(crate::cli::kvault(&repo).args(["check", "--read-data"]));
}
