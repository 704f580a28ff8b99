//! The `kvault` binary as a user runs it: outputs, JSON lines, exit codes,
//! and kill -9 in the middle of a write.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{json_events, random_bytes};

/// The kvault binary with none of this environment's kvault or AWS
/// settings (a developer's KVAULT_REPOSITORY, the suite's S3 keys) and no
/// standard input: the one way the integration tests start kvault.
pub(crate) fn bare() -> Command {
    wrapped(&[])
}

/// [`bare`] started through `wrapper` (e.g. `faketime -f +2h`).
pub(crate) fn wrapped(wrapper: &[&str]) -> Command {
    let mut c = match wrapper {
        [] => Command::new(env!("CARGO_BIN_EXE_kvault")),
        [w, rest @ ..] => {
            let mut c = Command::new(w);
            c.args(rest).arg(env!("CARGO_BIN_EXE_kvault"));
            c
        }
    };
    for (k, _) in std::env::vars() {
        if k.starts_with("KVAULT_") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null());
    c
}

/// [`bare`] on the repository `repo` with password `pw`, no progress bars.
pub(crate) fn kvault(repo: &Path) -> Command {
    kvault_through(&[], repo)
}

/// [`kvault`] started through `wrapper`.
pub(crate) fn kvault_through(wrapper: &[&str], repo: &Path) -> Command {
    let mut c = wrapped(wrapper);
    c.arg("-r")
        .arg(repo)
        .arg("--no-progress")
        .env("KVAULT_PASSWORD", "pw");
    c
}

/// kvault on `repo` with `args`: (exit code, stdout, stderr).
pub(crate) fn kvault_args(repo: &Path, args: &[&str]) -> (i32, String, String) {
    let o = kvault(repo).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// [`kvault_args`] that must succeed; its stdout.
pub(crate) fn ok_args(repo: &Path, args: &[&str]) -> String {
    let (code, out, err) = kvault_args(repo, args);
    assert_eq!(code, 0, "kvault {args:?}: {out}{err}");
    out
}

/// The JSON line of `message_type` in a `--json` output.
pub(crate) fn json_line(out: &str, message_type: &str) -> serde_json::Value {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message_type"] == message_type)
        .unwrap_or_else(|| panic!("no {message_type} line in {out}"))
}

pub(crate) fn run(c: &mut Command) -> Output {
    c.output().expect("kvault runs")
}

pub(crate) fn ok(c: &mut Command) -> Output {
    let o = run(c);
    assert!(
        o.status.success(),
        "{:?} failed: {}",
        c,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub(crate) fn init(repo: &Path) {
    ok(kvault(repo).args([
        "init",
        "--insecure-fast-kdf",
        "--chunk-size",
        "64",
        "--pack-size",
        "1",
    ]));
}

pub(crate) fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub(crate) fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// Runs `c`, kills it (SIGKILL) once the repository's files have changed
/// `changes` times since it started (its lock, packs, indexes, snapshots
/// written or removed; or when it ends first), then `check --read-data`
/// of `repo` must find no error.
fn kill_after_then_check(c: &mut Command, changes: usize, repo: &Path) {
    let before: std::collections::BTreeSet<_> = crate::common::files(repo).into_iter().collect();
    let mut child = c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    crate::common::wait_until(
        "the run to change the repository",
        Duration::from_secs(120),
        || {
            let now: std::collections::BTreeSet<_> = crate::common::files(repo).into_iter().collect();
            now.symmetric_difference(&before).count() >= changes || child.try_wait().unwrap().is_some()
        },
    );
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let o = ok(kvault(repo).args(["check", "--read-data", "--json"]));
    let rep = &json_lines(&o)[0];
    assert_eq!(
        rep["errors"].as_array().unwrap().len(),
        0,
        "after a kill at {changes} change(s): {rep}"
    );
}

#[test]
fn put_get_list_check_stats_cat_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    let input = dir.path().join("events.json");
    let data = json_events(10_000, 9);
    std::fs::write(&input, &data).unwrap();

    let o = ok(kvault(&repo)
        .arg("put")
        .arg(&input)
        .args(["--tag", "nightly", "--json"]));
    let summary = &json_lines(&o)[0];
    assert_eq!(summary["message_type"], "summary");
    assert_eq!(summary["kvault_json"], 1);
    assert_eq!(summary["bytes"], data.len());
    let snap = summary["snapshot"].as_str().unwrap().to_string();

    // The same file again adds no data.
    let o = ok(kvault(&repo).arg("put").arg(&input).arg("--json"));
    assert_eq!(json_lines(&o)[0]["stats"]["new_blobs"], 0);

    let o = ok(kvault(&repo).args(["snapshots", "--json", "--tag", "nightly"]));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["message_type"], "snapshot");
    assert_eq!(lines[0]["id"], snap.as_str());
    let text = String::from_utf8(ok(kvault(&repo).arg("snapshots")).stdout).unwrap();
    assert!(
        text.contains(&snap[..8]) && text.contains("2 snapshot(s)"),
        "{text}"
    );

    let out = dir.path().join("out.json");
    ok(kvault(&repo).args(["get", &snap[..10], "-o"]).arg(&out));
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let o = ok(kvault(&repo).args(["get", "latest"]));
    assert_eq!(o.stdout, data);

    let o = ok(kvault(&repo).args(["check", "--read-data", "--json"]));
    let rep = &json_lines(&o)[0];
    assert_eq!(rep["message_type"], "check");
    assert_eq!(rep["errors"].as_array().unwrap().len(), 0);
    assert!(rep["blobs_verified"].as_u64().unwrap() > 5);
    ok(kvault(&repo).args(["check", "--read-data-subset", "50%"]));

    let o = ok(kvault(&repo).args(["stats", "--json"]));
    let st = &json_lines(&o)[0];
    assert_eq!(st["logical_bytes"], 2 * data.len());
    assert!(st["dedup_ratio"].as_f64().unwrap() > 1.9);
    assert!(st["compression_ratio"].as_f64().unwrap() > 2.0);

    let o = ok(kvault(&repo).args(["cat", "config"]));
    let cfg: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(cfg["version"], 1);
    let o = ok(kvault(&repo).args(["cat", "snapshot", &snap[..8]]));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["kind"], "stream");
    let tree = s["tree"].as_str().unwrap();
    let o = ok(kvault(&repo).args(["cat", "blob", tree]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"type\":\"stream\""));
    let o = ok(kvault(&repo).args(["key", "list", "--json"]));
    assert_eq!(json_lines(&o).len(), 1);
}

#[test]
fn a_bad_flag_value_names_its_flag_and_a_refusal_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    // A value the library cannot take is a usage error naming its flag
    // (the library names the value, the CLI the flag).
    for (args, line) in [
        (
            &["forget", "--keep-last", "1", "--group-by", "nope"][..],
            "--group-by \"nope\": expected cluster, topics or tags",
        ),
        (
            &["forget", "--keep-within", "3x"][..],
            "--keep-within \"3x\": expected a form like 1y5m7d2h",
        ),
        (
            &["snapshot", "-b", "127.0.0.1:1", "--shard", "4/2"][..],
            "--shard \"4/2\": expected K/N",
        ),
    ] {
        let o = run(kvault(&repo).args(args));
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(line), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
    // A refusal comes with what to do about it, in the CLI's terms.
    let o = run(kvault(&repo).args(["key", "remove", "--json"]).arg(
        String::from_utf8_lossy(&ok(kvault(&repo).args(["key", "list", "--json"])).stdout)
            .split('"')
            .find(|w| w.len() == 64)
            .unwrap_or("0"),
    ));
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let e: serde_json::Value = serde_json::from_str(stderr(&o).trim()).expect("one JSON line");
    assert_eq!(e["error"], "refused", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("kvault key passwd"),
        "{e}"
    );
}

#[test]
fn exit_codes_are_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");

    // 10: no repository (missing, and not given at all).
    let o = run(kvault(&repo).arg("snapshots"));
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("kvault: no repository at"),
        "{}",
        stderr(&o)
    );
    // Under --json the error is one JSON line too.
    let o = run(kvault(&repo).args(["snapshots", "--json"]));
    assert_eq!(code(&o), 10);
    let e: serde_json::Value = serde_json::from_str(stderr(&o).trim()).expect("one JSON line");
    assert_eq!(e["message_type"], "error");
    assert_eq!(e["error"], "no_repository");
    assert_eq!(e["exit_code"], 10);
    assert!(
        e["message"].as_str().unwrap().starts_with("no repository at"),
        "{e}"
    );
    let o = run(bare().env("KVAULT_PASSWORD", "pw").arg("snapshots"));
    assert_eq!(code(&o), 10, "{}", stderr(&o));

    init(&repo);
    // Initialising twice is refused.
    let o = run(kvault(&repo).args(["init", "--insecure-fast-kdf"]));
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));

    // 12: wrong password, one line.
    let o = run(kvault(&repo).env("KVAULT_PASSWORD", "wrong").arg("snapshots"));
    assert_eq!(code(&o), 12);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));

    // 2: usage.
    let o = run(kvault(&repo).arg("no-such-command"));
    assert_eq!(code(&o), 2);

    // Password from a file and from a command.
    let pwf = dir.path().join("pw.txt");
    std::fs::write(&pwf, "pw\n").unwrap();
    ok(kvault(&repo)
        .env_remove("KVAULT_PASSWORD")
        .arg("--password-file")
        .arg(&pwf)
        .arg("snapshots"));
    ok(kvault(&repo)
        .env_remove("KVAULT_PASSWORD")
        .args(["--password-command", "echo pw", "snapshots"]));
    ok(kvault(&repo)
        .env_remove("KVAULT_PASSWORD")
        .env("KVAULT_PASSWORD_FILE", &pwf)
        .arg("snapshots"));
    // No password and no terminal: a clear error, not a hang.
    let o = run(kvault(&repo).env_remove("KVAULT_PASSWORD").arg("snapshots"));
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no password given"), "{}", stderr(&o));

    // 11: locked by a live exclusive lock.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lock = rt.block_on(async {
        let r = kvault::ops::open(repo.to_str().unwrap(), &Default::default(), b"pw")
            .await
            .unwrap();
        kvault::repo::lock::RepoLock::acquire(&r, true).await.unwrap()
    });
    let o = run(kvault(&repo).arg("put").arg(&pwf));
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    assert!(stderr(&o).contains("exclusive lock"), "{}", stderr(&o));
    rt.block_on(lock.release()).unwrap();
    ok(kvault(&repo).arg("put").arg(&pwf));

    // Keys through the CLI.
    let new_pw = dir.path().join("new.txt");
    std::fs::write(&new_pw, "second").unwrap();
    ok(kvault(&repo)
        .args(["key", "add", "--insecure-fast-kdf", "--new-password-file"])
        .arg(&new_pw));
    ok(kvault(&repo).env("KVAULT_PASSWORD", "second").arg("snapshots"));
    let o = run(kvault(&repo).args(["key", "remove", "ffffffff"]));
    assert_eq!(code(&o), 1);
}

#[test]
fn a_corrupt_pack_fails_loudly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    let input = dir.path().join("in.bin");
    std::fs::write(&input, random_bytes(3_000_000, 11)).unwrap();
    let o = ok(kvault(&repo).arg("put").arg(&input).arg("--json"));
    let snap = json_lines(&o)[0]["snapshot"].as_str().unwrap().to_string();
    let pack = crate::common::files(&repo.join("data"))
        .into_iter()
        .next()
        .unwrap();
    let mut b = std::fs::read(&pack).unwrap();
    b[1000] ^= 0xff;
    std::fs::write(&pack, b).unwrap();

    let o = run(kvault(&repo).args(["check", "--read-data"]));
    assert_eq!(code(&o), 1);
    let name = pack.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        stderr(&o).contains("corrupt or tampered") && stderr(&o).contains(&name),
        "{}",
        stderr(&o)
    );

    let out = dir.path().join("restored.bin");
    let o = run(kvault(&repo).args(["get", &snap, "-o"]).arg(&out));
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("corrupt or tampered"), "{}", stderr(&o));
    assert!(!out.exists(), "a half-written output was left behind");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("partial"))
    );
}

#[test]
fn kill_9_during_put_then_check_passes_and_put_completes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    let input = dir.path().join("big.bin");
    let mut data = random_bytes(24_000_000, 12);
    data.extend_from_slice(&json_events(200_000, 12));
    std::fs::write(&input, &data).unwrap();

    for changes in [1, 2, 3, 5] {
        kill_after_then_check(kvault(&repo).arg("put").arg(&input), changes, &repo);
    }
    // The dead process's lock is stale: the next run needs no unlock.
    let o = ok(kvault(&repo).arg("put").arg(&input).arg("--json"));
    let snap = json_lines(&o)[0]["snapshot"].as_str().unwrap().to_string();
    let o = ok(kvault(&repo).args(["get", &snap]));
    assert!(o.stdout == data, "restored bytes differ");
    ok(kvault(&repo).args(["check", "--read-data"]));
}

#[test]
fn kill_9_during_a_kafka_snapshot_then_rerun_completes() {
    let b = crate::kafka::source();
    let topic = crate::kafka::unique("kill");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(crate::kafka::create_topic(&b, &topic, 4, &[]));
    crate::kafka::produce_events(&b, &topic, 4, 200_000);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    for changes in [2, 4] {
        kill_after_then_check(
            kvault(&repo).args(["snapshot", "-b", &b, "--topic", &topic]),
            changes,
            &repo,
        );
    }
    let o = ok(kvault(&repo).args(["snapshot", "-b", &b, "--topic", &topic, "--json"]));
    let s = &json_lines(&o)[0];
    assert_eq!(s["records_total"], 200_000);
    let o = ok(kvault(&repo).args(["dump", "latest", "--topic", &topic]));
    let lines = String::from_utf8_lossy(&o.stdout).lines().count();
    assert_eq!(lines, 200_000);
    ok(kvault(&repo).args(["check", "--read-data"]));
    let o = ok(kvault(&repo).args(["ls", "latest"]));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&topic));
}

#[test]
fn kill_9_during_restore_then_rerun_leaves_every_record_exactly_once() {
    let b = crate::kafka::source();
    let topic = crate::kafka::unique("rkill");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(crate::kafka::create_topic(
        &b,
        &topic,
        2,
        &[("retention.ms", "-1")],
    ));
    crate::kafka::produce_events(&b, &topic, 2, 300_000);
    let group = crate::kafka::unique("rkg");
    crate::kafka::commit_group(&b, &group, &[(&topic, 0, 100_000, ""), (&topic, 1, 7, "")]);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let state = dir.path().join("state");
    init(&repo);
    ok(kvault(&repo).args(["snapshot", "-b", &b, "--topic", &topic, "--group", &group]));
    let restore = |repo: &Path| {
        let mut c = kvault(repo);
        c.args([
            "restore", "latest", "-b", &b, "--topic", &topic, "--prefix", "k9-", "--json",
        ])
        .arg("--state-dir")
        .arg(&state);
        c
    };
    // Kill each run as soon as the target has grown: in the middle of producing.
    let target = format!("k9-{topic}");
    let written = || -> i64 {
        (0..2)
            .map(|p| crate::kafka::watermarks_if_exists(&b, &target, p).map_or(0, |w| w.1))
            .sum()
    };
    let mut finished_early = false;
    for _ in 0..2 {
        let before = written();
        let mut child = restore(&repo)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                finished_early = true;
                break;
            }
            if written() > before || t0.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.wait();
        if finished_early {
            break;
        }
    }
    // A kill that lands as the run is exiting finds it completed: its
    // state file says so, and a rerun would (rightly) refuse.
    let completed = std::fs::read_dir(&state)
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .any(|t| t.contains("\"completed\": true"));
    if !finished_early && !completed {
        let o = ok(&mut restore(&repo));
        let r = &json_lines(&o)[0];
        assert_eq!(r["message_type"], "restore");
        assert!(r["resumed_records"].as_u64().unwrap() > 0, "{r}");
    }
    for p in 0..2 {
        let src = crate::kafka_restore::read_partition(&b, &topic, p, None);
        let dst = crate::kafka_restore::read_partition(&b, &target, p, None);
        assert_eq!(dst.len(), src.len(), "partition {p}: every record exactly once");
        assert!(
            src == dst,
            "partition {p}: same records, same order, same offsets"
        );
    }
    let resumed = crate::kafka_restore::read_partition(&b, &target, 0, Some(&group));
    assert_eq!(resumed.first().map(|x| x.0), Some(100_000));
    // The same command after completion changes nothing.
    let o = run(&mut restore(&repo));
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("already completed"), "{}", stderr(&o));
}

/// Puts `data` and returns the snapshot id.
fn put_file(repo: &Path, dir: &Path, name: &str, data: &[u8]) -> String {
    let f = dir.join(name);
    std::fs::write(&f, data).unwrap();
    let o = ok(kvault(repo).arg("put").arg(&f).arg("--json"));
    json_lines(&o)[0]["snapshot"].as_str().unwrap().to_string()
}

#[test]
fn kill_9_during_prune_then_check_passes_and_prune_completes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    let a = random_bytes(24_000_000, 21);
    let mut b = a[..12_000_000].to_vec();
    b.extend_from_slice(&random_bytes(12_000_000, 22));
    let sa = put_file(&repo, dir.path(), "a", &a);
    let sb = put_file(&repo, dir.path(), "b", &b);
    let sc = put_file(&repo, dir.path(), "c", &random_bytes(8_000_000, 23));
    let o = ok(kvault(&repo).args(["forget", &sa, &sc, "--json"]));
    assert_eq!(json_lines(&o)[0]["removed"].as_array().unwrap().len(), 2);
    for changes in [1, 2, 4, 8] {
        kill_after_then_check(
            kvault(&repo).args(["prune", "--max-unused", "0%"]),
            changes,
            &repo,
        );
        let o = ok(kvault(&repo).args(["get", &sb]));
        assert!(
            o.stdout == b,
            "snapshot B differs after a kill at {changes} change(s)"
        );
    }
    let o = ok(kvault(&repo).args(["prune", "--max-unused", "0%", "--unindexed-grace", "0s", "--json"]));
    let r = &json_lines(&o)[0];
    assert_eq!(r["message_type"], "prune");
    let o = ok(kvault(&repo).args(["check", "--read-data", "--json"]));
    let rep = &json_lines(&o)[0];
    assert_eq!(rep["errors"].as_array().unwrap().len(), 0);
    assert_eq!(rep["unused_blobs"], 0, "{rep}");
    assert!(rep["notes"].as_array().unwrap().is_empty(), "{rep}");
    let o = ok(kvault(&repo).args(["stats", "--json"]));
    let packs = json_lines(&o)[0]["pack_bytes"].as_u64().unwrap();
    assert!(
        packs < 25_000_000,
        "B alone is 24 MB of random data, stored {packs}"
    );
    let o = ok(kvault(&repo).args(["get", &sb]));
    assert!(o.stdout == b);
}

#[test]
fn forget_prints_what_it_keeps_and_why_and_copy_moves_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    let data: Vec<Vec<u8>> = (0..4).map(|i| json_events(2_000, 30 + i)).collect();
    let ids: Vec<String> = data
        .iter()
        // One source (as a nightly dump of the same file): one group.
        .map(|d| put_file(&repo, dir.path(), "dump", d))
        .collect();
    let o = ok(kvault(&repo).args(["forget", "--keep-last", "2", "--dry-run"]));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.contains("last snapshot") && text.contains("would remove 2 snapshot(s)"),
        "{text}"
    );
    let o = run(kvault(&repo).args(["forget", "--keep-daily", "x"]));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    // The same policy from a profile's [keep] of the configuration file.
    let cfg = dir.path().join("kvault.toml");
    std::fs::write(&cfg, "[profile.nightly.keep]\nlast = 2\n").unwrap();
    let o = ok(kvault(&repo)
        .args(["--config", cfg.to_str().unwrap(), "--profile", "nightly"])
        .args(["forget", "--dry-run"]));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("would remove 2 snapshot(s)"), "{text}");
    let o = run(kvault(&repo)
        .args(["--config", cfg.to_str().unwrap(), "--profile", "weekly"])
        .args(["forget", "--dry-run"]));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no profile \"weekly\" (profiles: nightly)"),
        "{}",
        stderr(&o)
    );
    // The same file found at its default place, ~/.config/kvault/kvault.toml.
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("kvault")).unwrap();
    std::fs::copy(&cfg, xdg.join("kvault/kvault.toml")).unwrap();
    let o =
        ok(kvault(&repo)
            .env("XDG_CONFIG_HOME", &xdg)
            .args(["--profile", "nightly", "forget", "--dry-run"]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("would remove 2 snapshot(s)"));
    let o = ok(kvault(&repo).args(["forget", "--keep-last", "2", "--prune", "--json"]));
    let lines = json_lines(&o);
    assert_eq!(lines[0]["removed"].as_array().unwrap().len(), 2);
    assert_eq!(lines[1]["message_type"], "prune");

    // copy to a second repository with its own password.
    let dst = dir.path().join("dst");
    ok(kvault(&dst)
        .args(["init", "--insecure-fast-kdf"])
        .env("KVAULT_PASSWORD", "other"));
    let o = run(kvault(&dst)
        .arg("copy")
        .arg("--from-repo")
        .arg(&repo)
        .env("KVAULT_PASSWORD", "other")
        .env("KVAULT_FROM_PASSWORD", "wrong"));
    assert_eq!(code(&o), 12, "a wrong source password: {}", stderr(&o));
    let o = ok(kvault(&dst)
        .arg("copy")
        .arg("--from-repo")
        .arg(&repo)
        .arg("--json")
        .env("KVAULT_PASSWORD", "other")
        .env("KVAULT_FROM_PASSWORD", "pw"));
    assert_eq!(json_lines(&o)[0]["copied"].as_array().unwrap().len(), 2);
    let o = ok(kvault(&dst)
        .args(["snapshots", "--json"])
        .env("KVAULT_PASSWORD", "other"));
    let snaps = json_lines(&o);
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    for s in &snaps {
        let id = s["id"].as_str().unwrap();
        let orig = s["snapshot"]["original"].as_str().unwrap();
        let i = ids.iter().position(|x| x == orig).unwrap();
        let o = ok(kvault(&dst).args(["get", id]).env("KVAULT_PASSWORD", "other"));
        assert!(o.stdout == data[i]);
    }
}

#[test]
fn snapshot_and_prune_at_the_same_time_keep_every_snapshot_restorable() {
    let b = crate::kafka::source();
    let topic = crate::kafka::unique("conc");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(crate::kafka::create_topic(
        &b,
        &topic,
        2,
        &[("retention.ms", "-1")],
    ));
    crate::kafka::produce_events(&b, &topic, 2, 100_000);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    ok(kvault(&repo).args(["snapshot", "-b", &b, "--topic", &topic]));
    crate::kafka::produce_events(&b, &topic, 2, 150_000);

    // The second snapshot (incremental to the first) runs while
    // `forget --keep-last 1 --prune` runs again and again; the lock lets one
    // of them run at a time, and the other exits with code 11.
    let (mut collisions, mut prunes, mut snapshot_done) = (0, 0, false);
    while !snapshot_done {
        let mut snap = kvault(&repo)
            .args(["snapshot", "-b", &b, "--topic", &topic])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        loop {
            let o = run(kvault(&repo).args(["forget", "--keep-last", "1", "--prune"]));
            match code(&o) {
                0 => prunes += 1,
                11 => collisions += 1,
                c => panic!("prune exited {c}: {}", stderr(&o)),
            }
            if let Some(st) = snap.try_wait().unwrap() {
                match st.code() {
                    Some(0) => snapshot_done = true,
                    Some(11) => {} // prune held the lock when it started: run it again
                    c => panic!("snapshot exited {c:?}"),
                }
                break;
            }
        }
    }
    assert!(collisions > 0, "the two never overlapped ({prunes} prunes)");
    // Once the snapshot is done, forget removes the first one and prune
    // frees what only it needed; the second still holds every record.
    let o = ok(kvault(&repo).args(["forget", "--keep-last", "1", "--prune", "--json"]));
    assert_eq!(json_lines(&o)[0]["message_type"], "forget");
    let o = ok(kvault(&repo).args(["check", "--read-data", "--json"]));
    let rep = &json_lines(&o)[0];
    assert_eq!(rep["errors"].as_array().unwrap().len(), 0, "{rep}");
    assert_eq!(rep["snapshots"], 1);
    let o = ok(kvault(&repo).args(["dump", "latest", "--topic", &topic]));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 250_000);
    let o = ok(kvault(&repo)
        .args([
            "restore",
            "latest",
            "-b",
            &b,
            "--prefix",
            "conc-",
            "--no-groups",
            "--json",
        ])
        .env("KVAULT_STATE_DIR", dir.path().join("state")));
    assert_eq!(json_lines(&o)[0]["records_written"], 250_000);
    let n: usize = (0..2)
        .map(|p| crate::kafka::count_records(&b, &format!("conc-{topic}"), p))
        .sum();
    assert_eq!(n, 250_000);
}

#[test]
fn kill_9_during_copy_then_rerun_copies_each_snapshot_once() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    init(&src);
    init(&dst);
    let mut data = random_bytes(20_000_000, 41);
    data.extend_from_slice(&json_events(100_000, 41));
    let id = put_file(&src, dir.path(), "big", &data);
    let copy = |dst: &Path| {
        let mut c = kvault(dst);
        c.arg("copy")
            .arg("--from-repo")
            .arg(&src)
            .env("KVAULT_FROM_PASSWORD", "pw");
        c
    };
    for changes in [1, 3, 6] {
        kill_after_then_check(&mut copy(&dst), changes, &dst);
    }
    ok(copy(&dst).arg("--json"));
    let o = ok(kvault(&dst).args(["snapshots", "--json"]));
    let snaps = json_lines(&o);
    assert_eq!(snaps.len(), 1, "copied once: {snaps:?}");
    assert_eq!(snaps[0]["snapshot"]["original"].as_str(), Some(id.as_str()));
    let o = ok(kvault(&dst).args(["get", snaps[0]["id"].as_str().unwrap()]));
    assert!(o.stdout == data);
    // Packs of the killed runs are garbage for prune (made moments ago:
    // without a zero window prune keeps them as a live write's).
    ok(kvault(&dst).args(["prune", "--unindexed-grace", "0s"]));
    let o = ok(kvault(&dst).args(["check", "--read-data", "--json"]));
    assert!(json_lines(&o)[0]["notes"].as_array().unwrap().is_empty());
}

#[test]
fn s3_credentials_come_from_a_profile_when_no_keys_are_given() {
    let get = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run `scripts/test`"));
    let (endpoint, bucket) = (get("KVAULT_TEST_S3_ENDPOINT"), get("KVAULT_TEST_S3_BUCKET"));
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong\n\n\
             [kvault-test]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            get("KVAULT_TEST_S3_KEY"),
            get("KVAULT_TEST_S3_SECRET")
        ),
    )
    .unwrap();
    let repo = format!("s3://{bucket}/profile-{}", kvault::Id::random().unwrap().short());
    let run = |profile: &str, args: &[&str]| {
        bare()
            .args(["-r", &repo, "--no-progress", "--s3-endpoint", &endpoint])
            .args(args)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PROFILE", profile)
            .env("KVAULT_PASSWORD", "pw")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = run("kvault-test", &["init", "--insecure-fast-kdf"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let input = dir.path().join("in");
    std::fs::write(&input, random_bytes(200_000, 3)).unwrap();
    let o = run("kvault-test", &["put", input.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run("kvault-test", &["get", "latest"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, std::fs::read(&input).unwrap());
    // The same through --s3-profile; and another profile's wrong keys are
    // refused by the server, in one line.
    let o = bare()
        .args([
            "-r",
            &repo,
            "--no-progress",
            "--s3-endpoint",
            &endpoint,
            "--s3-profile",
            "kvault-test",
        ])
        .args(["snapshots", "--json"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
        .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
        .env("KVAULT_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_lines(&o).len(), 1);
    let o = run("default", &["snapshots"]);
    assert_ne!(code(&o), 0);
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn completions_and_the_man_page_print() {
    for (shell, marker) in [
        ("bash", "_kvault()"),
        ("zsh", "#compdef kvault"),
        ("fish", "complete -c kvault"),
    ] {
        let o = bare().args(["completions", shell]).output().unwrap();
        assert!(o.status.success());
        let s = String::from_utf8(o.stdout).unwrap();
        assert!(
            s.contains(marker) && s.contains("snapshot") && s.contains("restore"),
            "{shell}"
        );
    }
    let o = bare().arg("man").output().unwrap();
    assert!(o.status.success());
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(
        s.starts_with(".ie") || s.contains(".TH kvault"),
        "{}",
        &s[..200.min(s.len())]
    );
    assert!(s.contains("snapshot"));
    assert!(s.contains("EXIT STATUS"), "no EXIT STATUS section");
}

/// `kvault man --dir` writes a page for every command kvault(1) names,
/// each with its exit codes; `help CMD` shows the command's own flags
/// before the global ones.
#[test]
fn every_command_has_a_man_page_and_its_own_flags_come_first() {
    let dir = tempfile::tempdir().unwrap();
    let o = bare().args(["man", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let main = std::fs::read_to_string(dir.path().join("kvault.1")).unwrap();
    let mut named = 0;
    for page in main.split("kvault\\-").skip(1) {
        let name = page.split(['(', '\\']).next().unwrap();
        let file = dir.path().join(format!("kvault-{}.1", name.replace("\\-", "-")));
        assert!(
            file.exists(),
            "kvault(1) names kvault-{name}(1), which was not written"
        );
        named += 1;
    }
    assert!(named >= 20, "kvault(1) names {named} command pages");
    for name in [
        "kvault-snapshot.1",
        "kvault-restore.1",
        "kvault-key-add.1",
        "kvault-repair-index.1",
    ] {
        let page = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(
            page.contains("EXIT STATUS") && page.contains("\\fB12\\fR"),
            "{name}"
        );
    }
    let o = bare().args(["help", "snapshot"]).output().unwrap();
    let help = String::from_utf8(o.stdout).unwrap();
    let (own, global) = (
        help.find("--topic").unwrap(),
        help.find("Global options:").unwrap(),
    );
    assert!(own < global, "{help}");
}

#[test]
fn a_run_writes_its_metrics_for_the_textfile_collector() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    let prom = dir.path().join("kvault.prom");
    let input = dir.path().join("in");
    std::fs::write(&input, random_bytes(10_000, 5)).unwrap();
    ok(kvault(&repo)
        .args(["--metrics-file", prom.to_str().unwrap(), "put"])
        .arg(&input));
    let m = std::fs::read_to_string(&prom).unwrap();
    assert!(m.contains("kvault_exit_code{command=\"put\"} 0\n"), "{m}");
    assert!(m.contains("kvault_success{command=\"put\"} 1\n"), "{m}");
    assert!(
        m.contains("# TYPE kvault_last_run_timestamp_seconds gauge"),
        "{m}"
    );
    // Retention reports what it removed and freed.
    ok(kvault(&repo)
        .args(["--metrics-file", prom.to_str().unwrap()])
        .args(["forget", "--keep-last", "1", "--prune"]));
    let m = std::fs::read_to_string(&prom).unwrap();
    assert!(
        m.contains("kvault_forget_snapshots_removed{command=\"forget\"} 0\n"),
        "{m}"
    );
    assert!(m.contains("kvault_prune_bytes_freed{command=\"forget\"} "), "{m}");
    // A failing run says so: wrong password, exit 12.
    let o = run(kvault(&repo)
        .args(["--metrics-file", prom.to_str().unwrap(), "snapshots"])
        .env("KVAULT_PASSWORD", "wrong"));
    assert_eq!(code(&o), 12);
    let m = std::fs::read_to_string(&prom).unwrap();
    assert!(m.contains("kvault_exit_code{command=\"snapshots\"} 12\n"), "{m}");
    assert!(
        m.contains("kvault_last_success_timestamp_seconds{command=\"snapshots\"}"),
        "the failed run kept the last success of the run before: {m}"
    );
    assert!(m.contains("kvault_success{command=\"snapshots\"} 0\n"), "{m}");
}

#[test]
fn a_run_pushes_its_metrics_to_a_pushgateway() {
    // The real Prometheus Pushgateway scripts/test starts.
    let gw = std::env::var("KVAULT_TEST_PUSHGATEWAY").unwrap_or_else(|_| {
        panic!("KVAULT_TEST_PUSHGATEWAY is not set: run `scripts/test`, or `eval \"$(scripts/pushgateway start)\"` first")
    });
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    ok(kvault(&repo).args(["--metrics-push", &gw, "snapshots"]));
    // A failing run pushes too; the group keeps its last success time.
    let o = run(kvault(&repo)
        .args(["--metrics-push", &gw, "check"])
        .env("KVAULT_PASSWORD", "wrong"));
    assert_eq!(code(&o), 12);
    let o = run(kvault(&repo)
        .args(["--metrics-push", &gw, "snapshots"])
        .env("KVAULT_PASSWORD", "wrong"));
    assert_eq!(code(&o), 12);
    let scraped = String::from_utf8(
        Command::new("curl")
            .args(["-fsS", &format!("{gw}/metrics")])
            .output()
            .expect("curl runs")
            .stdout,
    )
    .unwrap();
    let has = |metric: &str, command: &str, value: &str| {
        scraped.lines().any(|l| {
            l.starts_with(&format!("{metric}{{"))
                && l.contains(&format!("command=\"{command}\""))
                && l.contains("job=\"kvault\"")
                && l.ends_with(&format!(" {value}"))
        })
    };
    assert!(has("kvault_success", "snapshots", "0"), "{scraped}");
    assert!(
        scraped
            .lines()
            .any(|l| l.starts_with("kvault_last_success_timestamp_seconds{")
                && l.contains("command=\"snapshots\"")),
        "the failed run kept the last success: {scraped}"
    );
    assert!(
        !scraped
            .lines()
            .any(|l| l.starts_with("kvault_last_success_timestamp_seconds{")
                && l.contains("command=\"check\"")),
        "check never succeeded: {scraped}"
    );
    assert!(has("kvault_success", "check", "0"), "{scraped}");
    assert!(has("kvault_exit_code", "check", "12"), "{scraped}");
    assert!(
        scraped
            .lines()
            .any(|l| l.starts_with("kvault_last_run_timestamp_seconds{")),
        "{scraped}"
    );
}
