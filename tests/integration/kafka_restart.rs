//! A broker restarted in the middle of a snapshot and of a restore: the
//! command finishes, or fails with one clear line and the same command run
//! again finishes — exactly once either way. The test runs its own broker
//! (`scripts/kafka start/restart/stop`), so restarting it disturbs no other
//! test.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kvault::image::record::Record;

use crate::kafka::*;
use crate::kafka_restore::read_partition;

/// A broker of this test's own, stopped (data deleted) when dropped.
struct Broker {
    name: String,
    addr: String,
}

impl Broker {
    fn start() -> Broker {
        let name = format!("restart{}", kvault::Id::random().unwrap().short());
        let out = Command::new("scripts/kafka")
            .args(["start", &name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/kafka start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let addr = line.trim().rsplit('=').next().unwrap().to_string();
        Broker { name, addr }
    }

    fn restart(&self) {
        let out = Command::new("scripts/kafka")
            .args(["restart", &self.name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("scripts/kafka").args(["stop", &self.name]).output();
    }
}

fn kvault(repo: &Path, args: &[&str]) -> Command {
    let mut c = crate::cli::kvault(repo);
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// Runs `args`, restarting the broker while it runs; if it failed, runs it
/// again. Returns the first and (if any) second outcome.
fn through_a_restart(broker: &Broker, repo: &Path, args: &[&str]) -> (Output, Option<Output>) {
    let mut child: Child = kvault(repo, args).spawn().unwrap();
    // Restart once the run works on the repository (it holds its lock).
    crate::common::wait_until("the run to take its lock", Duration::from_secs(60), || {
        std::fs::read_dir(repo.join("locks")).is_ok_and(|mut d| d.next().is_some())
            || child.try_wait().unwrap().is_some()
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "`kvault {}` finished before the restart; the test needs more data",
        args.join(" ")
    );
    let t0 = Instant::now();
    broker.restart();
    println!("broker restarted in {:.1} s", t0.elapsed().as_secs_f64());
    let first = child.wait_with_output().unwrap();
    if first.status.success() {
        return (first, None);
    }
    let err = String::from_utf8_lossy(&first.stderr).to_string();
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    println!("first run failed cleanly: {err}");
    let second = kvault(repo, args).output().unwrap();
    assert!(
        second.status.success(),
        "the rerun failed: {}",
        String::from_utf8_lossy(&second.stderr)
    );
    (first, Some(second))
}

#[test]
fn a_broker_restart_during_snapshot_and_restore_loses_and_duplicates_nothing() {
    let broker = Broker::start();
    let b = broker.addr.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = unique("rs");
    rt.block_on(create_topic(&b, &topic, 4, &[("retention.ms", "-1")]));
    let pad = "r".repeat(400);
    let n = 240_000usize;
    let recs: Vec<(i32, Record)> = (0..n)
        .map(|i| {
            let v = format!("{{\"i\":{i},\"pad\":\"{pad}\"}}");
            (
                i as i32 % 4,
                rec(
                    now_ms(),
                    Some(format!("k{i}").as_bytes()),
                    Some(v.as_bytes()),
                    &[],
                ),
            )
        })
        .collect();
    produce(&b, &topic, &recs);
    drop(recs);
    let group = unique("rsg");
    commit_group(&b, &group, &[(&topic, 2, 1234, "")]);

    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    assert!(
        kvault(&repo, &["init", "--insecure-fast-kdf"])
            .status()
            .unwrap()
            .success()
    );

    // Snapshot through a restart.
    let (_, rerun) = through_a_restart(
        &broker,
        &repo,
        &["snapshot", "-b", &b, "--topic", &topic, "--json"],
    );
    let ls = kvault(&repo, &["ls", "latest", "--json"]).output().unwrap();
    assert!(ls.status.success());
    let mut records = 0;
    for line in String::from_utf8(ls.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["message_type"] == "partition" {
            assert_eq!(v["gaps"], serde_json::json!([]), "{v}");
            assert_eq!(v["records"], serde_json::json!(n / 4), "{v}");
            records += v["records"].as_u64().unwrap();
        }
    }
    assert_eq!(records, n as u64);
    println!(
        "snapshot: {}",
        if rerun.is_some() {
            "failed, rerun completed"
        } else {
            "completed"
        }
    );

    // Restore through a restart, into the same cluster under a prefix.
    let state = dir.path().join("state");
    let (_, rerun) = through_a_restart(
        &broker,
        &repo,
        &[
            "restore",
            "latest",
            "-b",
            &b,
            "--prefix",
            "back-",
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    println!(
        "restore: {}",
        if rerun.is_some() {
            "failed, rerun completed"
        } else {
            "completed"
        }
    );
    let target = format!("back-{topic}");
    for p in 0..4 {
        let src = read_partition(&b, &topic, p, None);
        let dst = read_partition(&b, &target, p, None);
        assert_eq!(src.len(), n / 4);
        assert!(
            src == dst,
            "partition {p}: {} records restored of {}",
            dst.len(),
            src.len()
        );
    }
    let resumed = read_partition(&b, &target, 2, Some(&group));
    assert_eq!(resumed.first().map(|x| x.0), Some(1234));
}
