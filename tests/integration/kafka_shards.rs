//! Sharded snapshots as a Kubernetes Indexed Job runs them: four `kvault
//! snapshot --shard K/4` processes started at once against the real broker,
//! all writing into one repository on the real S3 server. The run becomes
//! one snapshot that restores equal to a single-process snapshot; a shard
//! killed with SIGKILL leaves the run incomplete (listed so, never
//! `latest`) until it is run again; two runs overlapping in time both
//! complete; a prune started during a run waits or refuses (exit 11) and
//! loses nothing.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::kafka::*;
use crate::kafka_restore::{read_partition, target};

/// The S3 repository location and the environment that reaches it.
fn s3_repo() -> (String, Vec<(&'static str, String)>) {
    let get = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run `scripts/test`"));
    let repo = format!(
        "s3://{}/shards-{}",
        get("KVAULT_TEST_S3_BUCKET"),
        kvault::Id::random().unwrap().short()
    );
    let env = vec![
        ("KVAULT_S3_ENDPOINT", get("KVAULT_TEST_S3_ENDPOINT")),
        ("AWS_ACCESS_KEY_ID", get("KVAULT_TEST_S3_KEY")),
        ("AWS_SECRET_ACCESS_KEY", get("KVAULT_TEST_S3_SECRET")),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ];
    (repo, env)
}

struct Repo {
    url: String,
    env: Vec<(&'static str, String)>,
}

impl Repo {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = crate::cli::kvault(Path::new(&self.url));
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args).spawn().unwrap()
    }

    /// The snapshots as `snapshots --json` lists them, and the incomplete
    /// runs.
    fn listing(&self) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
        let out = self.ok(&["snapshots", "--json"]);
        let lines: Vec<serde_json::Value> =
            out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let of = |t: &str| lines.iter().filter(|l| l["message_type"] == t).cloned().collect();
        (of("snapshot"), of("incomplete_run"))
    }
}

fn done(c: Child) -> Output {
    c.wait_with_output().unwrap()
}

/// Starts the four shards of run `run` at once.
fn run_shards(repo: &Repo, b: &str, pattern: &str, group: &str, run: &str) -> Vec<Child> {
    run_shards_with(repo, b, pattern, group, run, &[])
}

/// [`run_shards`] with more arguments for every shard.
fn run_shards_with(repo: &Repo, b: &str, pattern: &str, group: &str, run: &str, more: &[&str]) -> Vec<Child> {
    (0..4)
        .map(|k| {
            let shard = format!("{k}/4");
            let mut args = vec![
                "snapshot", "-b", b, "--topic", pattern, "--group", group, "--shard", &shard, "--run", run,
                "--json",
            ];
            args.extend_from_slice(more);
            repo.spawn(&args)
        })
        .collect()
}

fn all_ok(children: Vec<Child>) {
    for c in children {
        let o = done(c);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

/// Restores `snapshot` of `repo` under `prefix` into the target cluster;
/// returns the group offsets it translated (group, topic, partition,
/// source offset).
fn restore(repo: &Repo, snapshot: &str, prefix: &str) -> Vec<(String, String, i64, i64)> {
    let tgt = target();
    let out = repo.ok(&["restore", snapshot, "-b", &tgt, "--prefix", prefix, "--json"]);
    let r: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message_type"] == "restore")
        .expect("a restore line");
    let mut g: Vec<(String, String, i64, i64)> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().to_string(),
                g["topic"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches(prefix)
                    .to_string(),
                g["partition"].as_i64().unwrap(),
                g["source_offset"].as_i64().unwrap(),
            )
        })
        .collect();
    g.sort();
    g
}

#[tokio::test]
async fn four_shards_make_one_snapshot_that_survives_kill_overlap_and_prune() {
    let b = source();
    let base = unique("shd");
    let topics: Vec<String> = (0..3).map(|i| format!("{base}-t{i}")).collect();
    for (i, t) in topics.iter().enumerate() {
        create_topic(&b, t, 4, &[("retention.ms", "-1")]).await;
        // Uneven sizes, so the assignment has something to balance.
        produce_events(&b, t, 4, 200 * (i as i64 + 1));
    }
    let group = unique("shdg");
    commit_group(&b, &group, &[(&topics[0], 1, 20, "m"), (&topics[2], 3, 7, "")]);
    let pattern = format!("{base}-*");
    let (url, env) = s3_repo();
    let repo = Repo { url, env };
    repo.ok(&["init", "--insecure-fast-kdf"]);

    // The reference: one process, its own repository.
    let dir = tempfile::tempdir().unwrap();
    let single = Repo {
        url: dir.path().join("single").to_str().unwrap().to_string(),
        env: Vec::new(),
    };
    single.ok(&["init", "--insecure-fast-kdf"]);
    single.ok(&["snapshot", "-b", &b, "--topic", &pattern, "--group", &group]);

    // Run 1: four shards at once; the last to finish combines the run.
    all_ok(run_shards(&repo, &b, &pattern, &group, "r1"));
    let (snaps, incomplete) = repo.listing();
    assert_eq!(snaps.len(), 1, "the run is one snapshot: {snaps:?}");
    assert!(incomplete.is_empty(), "{incomplete:?}");
    assert_eq!(snaps[0]["snapshot"]["run"]["shards"], 4);
    assert_eq!(snaps[0]["snapshot"]["run"]["parts"].as_array().unwrap().len(), 4);
    // The cluster's own state, captured once (by shard 0), is the run's.
    let ls = repo.ok(&["ls", "latest"]);
    assert_eq!(ls.matches("\ncluster ").count(), 1, "{ls}");
    // It restores equal to the single-process snapshot: records, byte for
    // byte, and group offsets.
    let g_single = restore(&single, "latest", "one-");
    let g_run = restore(&repo, "latest", "run-");
    assert_eq!(g_single, g_run);
    assert_eq!(g_run.len(), 2, "{g_run:?}");
    let tgt = target();
    let same = |restored: &str, t: &str, p: i32| {
        let (want, got) = (
            read_partition(&b, t, p, None),
            read_partition(&tgt, restored, p, None),
        );
        assert!(!want.is_empty());
        assert!(
            got == want,
            "{restored}/{p}: {} records restored of {}",
            got.len(),
            want.len()
        );
    };
    // The run restores offset-exact too (its parts' partitions, one image).
    repo.ok(&[
        "restore",
        "latest",
        "-b",
        &tgt,
        "--prefix",
        "exact-",
        "--offsets",
        "exact",
    ]);
    for t in &topics {
        for p in 0..4 {
            same(&format!("one-{t}"), t, p);
            same(&format!("run-{t}"), t, p);
            same(&format!("exact-{t}"), t, p);
        }
    }

    run_with_a_killed_shard(&repo, &b, &pattern, &group, &topics, &same);

    // Runs 3 and 4 overlap in time: eight processes at once; both complete.
    for t in &topics {
        produce_events(&b, t, 4, 24);
    }
    let mut eight = run_shards(&repo, &b, &pattern, &group, "r3");
    eight.extend(run_shards(&repo, &b, &pattern, &group, "r4"));
    all_ok(eight);
    let (snaps, incomplete) = repo.listing();
    assert_eq!(
        (snaps.len(), incomplete.len()),
        (4, 0),
        "{snaps:?} {incomplete:?}"
    );

    // A prune started during run 5: whichever takes the lock first, the
    // other side is documented — the prune refuses (exit 11) while shards
    // hold their shared locks; shards given --retry-lock (the Helm chart
    // sets it) wait while the prune holds its exclusive one. Nothing is
    // lost either way.
    let shards = run_shards_with(&repo, &b, &pattern, &group, "r5", &["--retry-lock", "2m"]);
    let prune = done(repo.spawn(&["prune"]));
    assert!(
        matches!(prune.status.code(), Some(0 | 11)),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );
    all_ok(shards);
    repo.ok(&["prune"]);
    let check = repo.ok(&["check", "--read-data", "--json"]);
    assert!(check.contains("\"message_type\":\"check\""), "{check}");
    let (snaps, _) = repo.listing();
    assert_eq!(snaps.len(), 5);
    // forget removes a run with its parts.
    repo.ok(&["forget", "--keep-last", "1", "--prune"]);
    let parts = repo.ok(&["snapshots", "--parts", "--json"]);
    let n = parts
        .lines()
        .filter(|l| l.contains("\"message_type\":\"snapshot\""))
        .count();
    assert_eq!(n, 1 + 4, "the kept run and its four parts: {parts}");
}

/// Run 2: shard 2 is killed before it can finish; the run stays incomplete
/// and is not latest, until shard 2 runs again; then it restores whole.
fn run_with_a_killed_shard(
    repo: &Repo,
    b: &str,
    pattern: &str,
    group: &str,
    topics: &[String],
    same: &dyn Fn(&str, &str, i32),
) {
    for t in topics {
        produce_events(b, t, 4, 40);
    }
    let mut children = run_shards(repo, b, pattern, group, "r2");
    let victim = children.remove(2);
    let pid = victim.id().to_string();
    Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    let killed = done(victim);
    assert!(!killed.status.success());
    all_ok(children);
    let (snaps, incomplete) = repo.listing();
    assert_eq!(snaps.len(), 1, "run 2 is not listed as a snapshot: {snaps:?}");
    assert_eq!(incomplete.len(), 1, "{incomplete:?}");
    assert_eq!(incomplete[0]["run"], "r2");
    assert_eq!(incomplete[0]["shards_done"], serde_json::json!([0, 1, 3]));
    let latest = repo.ok(&["ls", "latest", "--json"]);
    assert!(latest.contains(&topics[0]), "latest still resolves (to run 1)");
    let out = repo.ok(&[
        "snapshot", "-b", b, "--topic", pattern, "--group", group, "--shard", "2/4", "--run", "r2", "--json",
    ]);
    assert!(
        out.contains("\"run_snapshot\""),
        "the rerun completes the run: {out}"
    );
    let (snaps, incomplete) = repo.listing();
    assert_eq!(
        (snaps.len(), incomplete.len()),
        (2, 0),
        "{snaps:?} {incomplete:?}"
    );
    restore(repo, "latest", "r2-");
    for t in topics {
        for p in 0..4 {
            same(&format!("r2-{t}"), t, p);
        }
    }
}

/// One group's committed offsets on `topic`'s partitions `0..n` of a
/// cluster (`None` where it has none), read by a client of its own.
fn committed(brokers: &str, group: &str, topic: &str, n: i32) -> Vec<Option<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let c: BaseConsumer = config(brokers).set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, std::time::Duration::from_secs(10))
        .unwrap();
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// The `restore` line of a `--json` run.
fn restore_line(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message_type"] == "restore")
        .expect("a restore line")
}

/// Each `(topic, partitions)` under `prefix` on the first cluster holds
/// the same records (offsets, keys, values, timestamps) and the same
/// committed offsets of `groups` as under its prefix on the second.
fn same_logs(x: (&str, &str), y: (&str, &str), topics: &[(&str, i32)], groups: &[&String]) {
    for (t, n) in topics {
        let (tx, ty) = (format!("{}{t}", x.1), format!("{}{t}", y.1));
        for p in 0..*n {
            assert_eq!(
                read_partition(x.0, &tx, p, None),
                read_partition(y.0, &ty, p, None),
                "{t}/{p}"
            );
        }
        for g in groups {
            assert_eq!(
                committed(x.0, g, &tx, *n),
                committed(y.0, g, &ty, *n),
                "group {g} on {t}"
            );
        }
    }
}

/// `restore --shard K/3` as an Indexed Job runs it: worker 0 alone first
/// (its groups wait: their other partitions are not in), then workers 1
/// and 2 at once. The records land as a single-process restore puts them,
/// each group is committed with the same offsets once all its partitions
/// are in, and the LogAppendTime topic (created with CreateTime by
/// whichever worker came first) is switched by the last.
#[tokio::test]
async fn a_restore_by_three_workers_equals_one_and_commits_each_group_once_it_is_whole() {
    let (b, tgt) = (source(), target());
    let base = unique("rsh");
    let (plain, lat) = (format!("{base}-plain"), format!("{base}-lat"));
    create_topic(&b, &plain, 4, &[("retention.ms", "-1")]).await;
    create_topic(
        &b,
        &lat,
        3,
        &[
            ("retention.ms", "-1"),
            ("message.timestamp.type", "LogAppendTime"),
        ],
    )
    .await;
    produce_events(&b, &plain, 4, 400);
    produce_events(&b, &lat, 3, 90);
    let (wide, narrow) = (unique("rsh-wide"), unique("rsh-narrow"));
    let wide_offsets: Vec<(&str, i32, i64, &str)> = (0..4)
        .map(|p| (plain.as_str(), p, 10 + i64::from(p), "w"))
        .chain((0..3).map(|p| (lat.as_str(), p, 5, "")))
        .collect();
    commit_group(&b, &wide, &wide_offsets);
    commit_group(&b, &narrow, &[(&lat, 2, 7, "n")]);
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo {
        url: dir.path().join("repo").to_str().unwrap().to_string(),
        env: Vec::new(),
    };
    repo.ok(&["init", "--insecure-fast-kdf"]);
    let pattern = format!("{base}-*");
    repo.ok(&[
        "snapshot", "-b", &b, "--topic", &pattern, "--group", &wide, "--group", &narrow,
    ]);
    repo.ok(&["restore", "-b", &tgt, "--prefix", "one-", "--json"]);

    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap().to_string();
    // Worker K of 3 into topics prefixed `prefix`, with more arguments.
    let worker_with = |k: u32, prefix: &str, more: &[&str]| {
        let shard = format!("{k}/3");
        let mut args = vec![
            "restore", "-b", &tgt, "--prefix", prefix, "--shard", &shard, "--json",
        ];
        args.extend_from_slice(more);
        repo.spawn(&args)
    };
    let worker = |k: u32| worker_with(k, "sh-", &["--state-dir", &state]);
    let first = restore_line(&done(worker(0)));
    let shard = &first["shard"];
    assert_eq!(
        (shard["index"].as_u64(), shard["count"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(shard["partitions_total"], 7);
    assert!(
        shard["groups_waiting"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(wide)),
        "{first}"
    );
    assert!(
        committed(&tgt, &wide, &format!("sh-{plain}"), 4)
            .iter()
            .all(Option::is_none),
        "no offset of a group whose partitions are not all in"
    );
    let rest = [worker(1), worker(2)].map(|c| restore_line(&done(c)));
    let written: u64 = [&first, &rest[0], &rest[1]]
        .iter()
        .map(|r| r["records_written"].as_u64().unwrap())
        .sum();
    assert_eq!(written, 490, "every record once, by one worker");
    let topics = [(plain.as_str(), 4), (lat.as_str(), 3)];
    same_logs((&tgt, "sh-"), (&tgt, "one-"), &topics, &[&wide, &narrow]);
    assert_eq!(
        committed(&tgt, &wide, &format!("sh-{plain}"), 4),
        vec![Some(10), Some(11), Some(12), Some(13)]
    );
    assert_eq!(
        crate::kafka_target::topic_config(&tgt, &format!("sh-{lat}"), "message.timestamp.type")
            .await
            .as_deref(),
        Some("LogAppendTime")
    );
    // Offset-exact, three workers at once: each its own transactional id.
    let exact: Vec<Child> = (0..3)
        .map(|k| worker_with(k, "ex-", &["--offsets", "exact"]))
        .collect();
    for c in exact {
        restore_line(&done(c));
    }
    same_logs((&tgt, "ex-"), (&b, ""), &topics, &[&wide]);
    // A worker run again after the whole restore refuses, like any
    // completed restore.
    let again = done(worker(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(err.contains("completed"), "{err}");
}
