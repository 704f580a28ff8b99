//! `kvault rewrite` on a real broker's topic (issue: erasure requests):
//! one person's key, with personal data in its values, erased from two
//! incremental snapshots. Afterwards every snapshot's dump lacks the key
//! and keeps every other record as an independent consumer read it from
//! the source (offset, key, value, timestamp); `ls` names the erased
//! offsets; a restore writes exactly the other records and translates the
//! group; an offset-exact restore puts placeholders where the erased
//! records were; and, after `prune --max-unused 0`, a decrypting scan of
//! every object in storage (written here with the library's own pack and
//! file decoders, beside `check --absent`) finds no byte of the key or of
//! its values.

use std::path::Path;

use kvault::image::record::Record;
use kvault::repo::envelope::FileType;
use kvault::repo::pack::{decode_pack_entries, open_blob};
use kvault::{BackendOptions, FileKind, Repository};
use serde_json::Value;

use crate::cli::{json_line as line, kvault_args as kvault, ok_args as ok};
use crate::kafka::*;
use crate::kafka_restore::{read_partition, target};

fn json_lines(out: &str) -> Vec<Value> {
    out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// The records a test produces: 10% keyed `alice`, whose values carry
/// `secret`; the rest other users' events.
fn records(from: usize, to: usize, alice: &str, secret: &str) -> Vec<(i32, Record)> {
    (from..to)
        .map(|i| {
            let (k, v) = if i % 10 == 3 {
                (
                    alice.to_string(),
                    format!("{{\"name\":\"Alice\",\"ssn\":\"{secret}-{i}\"}}"),
                )
            } else {
                (
                    format!("user-{}", i % 7),
                    format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 50)),
                )
            };
            let r = rec(
                now_ms(),
                Some(k.as_bytes()),
                Some(v.as_bytes()),
                &[("h", Some(b"1"))],
            );
            ((i % 2) as i32, r)
        })
        .collect()
}

/// Every (partition, offset, key, value, timestamp) of the source topic
/// whose key is not `alice`, read by a plain consumer.
fn expected(b: &str, topic: &str, alice: &str) -> Vec<(i32, i64, String, String, i64)> {
    let mut out = Vec::new();
    for p in 0..2 {
        for (o, r) in read_partition(b, topic, p, None) {
            let k = String::from_utf8(r.key.clone().unwrap()).unwrap();
            if k != alice {
                out.push((p, o, k, String::from_utf8(r.value.unwrap()).unwrap(), r.timestamp));
            }
        }
    }
    out
}

/// A snapshot's records as `dump` prints them, in the same shape.
fn dumped(repo: &Path, snap: &str, topic: &str) -> Vec<(i32, i64, String, String, i64)> {
    let out = ok(repo, &["dump", snap, "--topic", topic]);
    let mut v: Vec<_> = json_lines(&out)
        .into_iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap() as i32,
                r["offset"].as_i64().unwrap(),
                r["key"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
                r["timestamp"].as_i64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Decrypts every pack's every blob, every index and snapshot file of the
/// repository at `dir`, and returns the objects holding any of `needles`.
async fn decrypting_scan(dir: &Path, needles: &[&[u8]]) -> (usize, Vec<String>) {
    let backend = kvault::open_backend(dir.to_str().unwrap(), &BackendOptions::default()).unwrap();
    let repo = Repository::open(backend.clone(), b"pw").await.unwrap();
    let holds = |b: &[u8]| needles.iter().any(|n| b.windows(n.len()).any(|w| w == *n));
    let (mut scanned, mut hits) = (0, Vec::new());
    for pid in repo.list_ids(FileKind::Pack).await.unwrap() {
        let bytes = repo.read_raw(FileKind::Pack, &pid).await.unwrap();
        for (e, off) in decode_pack_entries(repo.keys(), &bytes, "pack").unwrap() {
            let sealed = &bytes[off as usize..off as usize + e.stored_len as usize];
            let plain = open_blob(repo.keys(), &e, sealed, "pack").unwrap();
            scanned += 1;
            if holds(&plain) {
                hits.push(format!("blob {} in pack {pid}", e.id));
            }
        }
    }
    for (kind, t) in [
        (FileKind::Index, FileType::Index),
        (FileKind::Snapshot, FileType::Snapshot),
    ] {
        for id in repo.list_ids(kind).await.unwrap() {
            scanned += 1;
            if holds(&repo.load_file(t, &id).await.unwrap()) {
                hits.push(format!("{kind:?} {id}"));
            }
        }
    }
    (scanned, hits)
}

#[tokio::test]
async fn rewrite_erases_a_key_from_every_snapshot_and_prune_leaves_no_byte_of_it() {
    let b = source();
    let topic = unique("gdpr");
    create_topic(&b, &topic, 2, &[("retention.ms", "-1")]).await;
    let alice = unique("alice");
    let secret = unique("SECRET");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(&repo, &["init", "--insecure-fast-kdf"]);

    produce(&b, &topic, &records(0, 300, &alice, &secret));
    let group = unique("grp");
    commit_group(&b, &group, &[(&topic, 0, 40, ""), (&topic, 1, 52, "")]);
    let snap_args = [
        "snapshot", "-b", &b, "--topic", &topic, "--group", &group, "--json",
    ];
    ok(&repo, &snap_args);
    let want_first = expected(&b, &topic, &alice);
    produce(&b, &topic, &records(300, 500, &alice, &secret));
    ok(&repo, &snap_args);
    let want = expected(&b, &topic, &alice);
    assert_eq!(want.len(), 450);

    // Before: the scan finds the key, and check --absent says so.
    let needles: [&[u8]; 2] = [alice.as_bytes(), secret.as_bytes()];
    assert!(!decrypting_scan(&repo, &needles).await.1.is_empty());
    let (code, _, err) = kvault(&repo, &["check", "--absent", &alice, "--absent", &secret]);
    assert_ne!(code, 0);
    assert!(err.contains("erased bytes are still stored"), "{err}");

    // A dry run reports and changes nothing.
    let erase = ["rewrite", "--topic", &topic, "--drop-key", &alice, "--json"];
    let dry = line(&ok(&repo, &[&erase[..], &["--dry-run"]].concat()), "rewrite");
    assert_eq!(dry["rewritten"].as_array().unwrap().len(), 2, "{dry:?}");
    assert_eq!(json_lines(&ok(&repo, &["snapshots", "--json"])).len(), 2);

    // The rewrite: per snapshot what it removed, never the key in clear.
    let out = ok(&repo, &[&erase[..], &["--forget"]].concat());
    assert!(!out.contains(&alice));
    let r = &line(&out, "rewrite");
    let per: Vec<u64> = r["rewritten"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["records"].as_u64().unwrap())
        .collect();
    assert_eq!(per, vec![30, 50], "{r}");
    assert_eq!(r["forgotten"].as_array().unwrap().len(), 2);
    assert!(r["chunks_rewritten"].as_u64().unwrap() >= 1);
    let snaps = json_lines(&ok(&repo, &["snapshots", "--json"]));
    assert_eq!(snaps.len(), 2);
    for s in &snaps {
        let e = &s["snapshot"]["erasures"][0];
        assert_eq!(e["keys"].as_array().unwrap().len(), 1, "{s}");
        assert!(!s.to_string().contains(&alice));
    }

    // Every snapshot's dump: every other record, as the source has it.
    let ids: Vec<&str> = snaps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(dumped(&repo, ids[0], &topic), want_first);
    assert_eq!(dumped(&repo, ids[1], &topic), want);

    // ls names the erased offsets by cause.
    let ls = json_lines(&ok(&repo, &["ls", "latest", "--json"]));
    let erased: usize = ls
        .iter()
        .filter(|l| l["message_type"] == "partition")
        .flat_map(|l| l["gap_causes"]["erasure"].as_array().cloned().unwrap_or_default())
        .map(|g| (g[1].as_i64().unwrap() - g[0].as_i64().unwrap()) as usize)
        .sum();
    assert_eq!(erased, 50, "{ls:?}");

    // Still stored until prune; after it, no trace anywhere.
    assert!(!decrypting_scan(&repo, &needles).await.1.is_empty());
    ok(&repo, &["prune", "--max-unused", "0"]);
    let (scanned, hits) = decrypting_scan(&repo, &needles).await;
    assert!(scanned > 3 && hits.is_empty(), "{hits:?}");
    ok(
        &repo,
        &["check", "--read-data", "--absent", &alice, "--absent", &secret],
    );

    // A restore writes exactly the other records; the group resumes at the
    // first record it had not consumed (translated around the gaps).
    let t = target();
    let state = dir.path().join("state");
    let st = state.to_str().unwrap();
    let restore = |prefix: &str, extra: &[&str]| {
        let args = [
            "restore",
            "latest",
            "-b",
            &t,
            "--topic",
            &topic,
            "--prefix",
            prefix,
            "--state-dir",
            st,
        ];
        ok(&repo, &[&args[..], extra].concat())
    };
    restore("e-", &[]);
    let restored = format!("e-{topic}");
    let mut got = Vec::new();
    for p in 0..2 {
        for (_, r) in read_partition(&t, &restored, p, None) {
            assert_ne!(r.key.as_deref(), Some(alice.as_bytes()));
            got.push((p, r.value.unwrap()));
        }
    }
    assert_eq!(got.len(), 450);
    let resumed = read_partition(&t, &restored, 0, Some(&group));
    let skipped = want.iter().filter(|w| w.0 == 0 && w.1 < 40).count();
    assert_eq!(resumed.len(), want.iter().filter(|w| w.0 == 0).count() - skipped);

    // Offset-exact: every record at its source offset, placeholders where
    // the erased ones were.
    restore("x-", &["--offsets", "exact"]);
    let exact = format!("x-{topic}");
    for p in 0..2 {
        let src = read_partition(&b, &topic, p, None);
        let dst = read_partition(&t, &exact, p, None);
        assert_eq!(src.len(), dst.len(), "partition {p}");
        for ((so, s), (d_o, d)) in src.iter().zip(&dst) {
            assert_eq!(so, d_o);
            if s.key.as_deref() == Some(alice.as_bytes()) {
                assert_eq!(d.value, None, "offset {so}: a placeholder");
                assert_ne!(d.key, s.key);
            } else {
                assert_eq!((&d.key, &d.value, d.timestamp), (&s.key, &s.value, s.timestamp));
            }
        }
    }
}
