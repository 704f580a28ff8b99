//! Scheduled snapshots as a platform team runs them: `snapshot --dry-run`
//! prints the plan and writes nothing; `snapshot --every` runs until
//! SIGTERM and finishes the snapshot in progress, and a second signal
//! aborts it in seconds, leaving nothing behind.

use std::time::Duration;

use crate::kafka::*;
use crate::kafka_target::keyed;

#[tokio::test]
async fn snapshot_dry_run_prints_the_plan_and_writes_nothing() {
    let b = source();
    let topic = unique("sdry");
    create_topic(&b, &topic, 3, &[("retention.ms", "-1")]).await;
    produce(&b, &topic, &keyed(90, 3, "sdry"));
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let run = |args: &[&str]| {
        String::from_utf8(crate::cli::ok(crate::cli::kvault(&repo).args(args)).stdout).unwrap()
    };
    run(&["init", "--insecure-fast-kdf"]);
    let base = ["-b", &b, "--topic", &topic, "--group", "none"];
    let plan_of = |out: &str| -> serde_json::Value {
        out.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["message_type"] == "snapshot_plan")
            .unwrap_or_else(|| panic!("no plan in {out}"))
    };
    let plan = plan_of(&run(
        &[&["snapshot", "--dry-run", "--json"][..], &base[..]].concat()
    ));
    let parts = plan["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert!(
        parts.iter().all(|p| p["start"] == 0 && p["end"] == 30),
        "{parts:?}"
    );
    assert!(plan["parent"].is_null());
    let text = run(&[&["snapshot", "--dry-run"][..], &base[..]].concat());
    assert!(text.contains("3 to read (90 records)"), "{text}");
    assert!(
        run(&["snapshots", "--json"]).trim().is_empty(),
        "a dry run saves nothing"
    );

    // After a snapshot, an unchanged topic plans to reuse every partition.
    run(&[&["snapshot"][..], &base[..]].concat());
    let plan = plan_of(&run(
        &[&["snapshot", "--dry-run", "--json"][..], &base[..]].concat()
    ));
    assert!(plan["parent"].is_string());
    let parts = plan["partitions"].as_array().unwrap();
    assert!(
        parts.iter().all(|p| p["reuse"].is_object() && p["start"] == 30),
        "{parts:?}"
    );
}

#[tokio::test]
async fn snapshot_every_runs_until_sigterm_and_finishes_the_snapshot_in_progress() {
    use std::io::BufRead;
    let b = source();
    let topic = unique("every");
    create_topic(&b, &topic, 2, &[("retention.ms", "-1")]).await;
    produce(&b, &topic, &keyed(100, 2, "every"));
    let (_dir, repo) = fresh_repo();
    let cmd = |args: &[&str]| kvault_with(&repo, args);
    let mut child = cmd(&[
        "snapshot", "--every", "1s", "-b", &b, "--topic", &topic, "--group", "none", "--json",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["message_type"] == "summary" && tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("a snapshot per tick")
    };
    let first = next();
    assert_eq!(first["records_read"], 100);
    produce(&b, &topic, &keyed(40, 2, "every2"));
    // Ticks go on; one of the next snapshots reads the 40 new records.
    let (mut read, mut seen) = (0, 1);
    for _ in 0..5 {
        read += next()["records_read"].as_u64().unwrap();
        seen += 1;
        if read == 40 {
            break;
        }
    }
    assert_eq!(read, 40, "incremental snapshots on every tick");
    sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // A snapshot in progress at the signal finished and was reported.
    let taken = seen + rx.try_iter().count();
    // Every snapshot it reported is in the repository, and nothing else.
    let n = saved_snapshots(&repo);
    assert_eq!(n, taken, "{n} snapshots saved, {taken} reported");
    let check = cmd(&["check"]).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// A new repository in a temporary directory (kept while the guard lives).
fn fresh_repo() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    assert!(
        kvault_with(&repo, &["init", "--insecure-fast-kdf"])
            .status()
            .unwrap()
            .success()
    );
    (dir, repo)
}

/// `kvault -r REPO ARGS…` with the suite's environment.
fn kvault_with(repo: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut c = crate::cli::kvault(repo);
    c.args(args);
    c
}

/// How many snapshots `snapshots --json` lists.
fn saved_snapshots(repo: &std::path::Path) -> usize {
    let list = kvault_with(repo, &["snapshots", "--json"]).output().unwrap();
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| l.contains("\"message_type\":\"snapshot\""))
        .count()
}

/// Sends SIGTERM as Kubernetes and systemd do.
fn sigterm(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// A second signal aborts `snapshot --every` while a snapshot hangs on an
/// unreachable broker: exit 130 in seconds, nothing saved, no lock left.
#[test]
fn a_second_signal_aborts_snapshot_every_in_seconds_and_leaves_nothing() {
    use std::io::BufRead;
    let (_dir, repo) = fresh_repo();
    let mut child = kvault_with(
        &repo,
        &[
            "snapshot",
            "--every",
            "1m",
            "-b",
            "127.0.0.1:1",
            "--kafka-timeout",
            "60s",
            "--topic",
            "t",
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Waits until a line with `what` has been printed.
    let wait_for = |what: &str| {
        let mut seen: Vec<String> = Vec::new();
        while !seen.iter().any(|l| l.contains(what)) {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(l) => seen.push(l),
                Err(_) => panic!("no line with {what:?}: {seen:?}"),
            }
        }
    };
    // The loop prints this line once it has committed to the tick (a signal
    // before it would stop the schedule with nothing in progress, exit 0);
    // the snapshot then connects for up to 60 s.
    wait_for("snapshot started at");
    sigterm(child.id());
    wait_for("stopping after the snapshot in progress");
    let t0 = std::time::Instant::now();
    sigterm(child.id());
    let status = child.wait().unwrap();
    let took = t0.elapsed();
    assert_eq!(
        status.code(),
        Some(130),
        "{:?}",
        rx.try_iter().collect::<Vec<_>>()
    );
    assert!(took < Duration::from_secs(6), "the abort took {took:?}");
    assert_eq!(saved_snapshots(&repo), 0, "nothing saved");
    let locks = std::fs::read_dir(repo.join("locks")).map_or(0, |d| d.count());
    assert_eq!(locks, 0, "the aborted snapshot left its lock");
}
