//! An immutable repository on an S3 server that enforces Object Lock
//! (SeaweedFS from `scripts/s3-server`: a bucket created with Object Lock,
//! and an append-only writer credential whose bucket policy denies deletes
//! outside `locks/`). First the server is shown to refuse deleting a locked
//! version, by any credential; then a Kafka snapshot cycle runs under short
//! retentions: the writer snapshots and checks but cannot delete or
//! forget; forget and prune under retention lose nothing and say until
//! when they wait; once the retention ends, the same commands remove the
//! objects, every version of them.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kvault::backend::BackendErrorKind;
use kvault::{Backend, BackendOptions, LockMode};
use serde_json::Value;

use crate::cli::json_line as json;
use crate::kafka::*;

/// An environment variable the suite's S3 server sets.
fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| {
        panic!("{k} is not set: these tests need the S3 server. Run `scripts/test`, or `eval \"$(scripts/s3-server start)\"`.")
    })
}

/// Backend options with the admin's or the writer's keys.
fn options(writer: bool) -> BackendOptions {
    let (k, s) = if writer {
        ("KVAULT_TEST_S3_WRITER_KEY", "KVAULT_TEST_S3_WRITER_SECRET")
    } else {
        ("KVAULT_TEST_S3_KEY", "KVAULT_TEST_S3_SECRET")
    };
    BackendOptions {
        s3: kvault::S3Options {
            endpoint: Some(env("KVAULT_TEST_S3_ENDPOINT")),
            region: Some("us-east-1".into()),
            access_key_id: Some(env(k)),
            secret_access_key: Some(env(s)),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// kvault on `repo` with the admin's or the writer's keys.
fn kvault(repo: &str, writer: bool) -> Command {
    let mut c = crate::cli::kvault(Path::new(repo));
    let o = options(writer).s3;
    c.env("KVAULT_S3_ENDPOINT", o.endpoint.unwrap())
        .env("AWS_ACCESS_KEY_ID", o.access_key_id.unwrap())
        .env("AWS_SECRET_ACCESS_KEY", o.secret_access_key.unwrap());
    c
}

/// (exit code, stdout, stderr).
fn run(mut c: Command) -> (i32, String, String) {
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(repo: &str, writer: bool, args: &[&str]) -> String {
    let mut c = kvault(repo, writer);
    c.args(args);
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "kvault {args:?}: {err}");
    out
}

fn backend(repo: &str, writer: bool) -> Arc<dyn Backend> {
    kvault::open_backend(repo, &options(writer)).unwrap()
}

/// Every object below the repository, by path.
async fn objects(b: &dyn Backend) -> Vec<String> {
    let mut v: Vec<String> = b.list("").await.unwrap().into_iter().map(|o| o.path).collect();
    v.retain(|p| !p.starts_with("locks/"));
    v.sort();
    v
}

/// The latest retention date of any object below the repository.
async fn latest_lock(b: &dyn Backend) -> SystemTime {
    let lock = b.object_lock().unwrap();
    let mut latest = SystemTime::now();
    for p in objects(b).await {
        if let Some(u) = lock.retained_until(&p).await.unwrap() {
            latest = latest.max(u);
        }
    }
    latest
}

fn wait_until(t: SystemTime) {
    if let Ok(d) = t.duration_since(SystemTime::now()) {
        std::thread::sleep(d + Duration::from_millis(1500));
    }
}

fn date(s: &str) -> SystemTime {
    humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_refuses_deleting_a_locked_version_by_any_credential() {
    let repo = format!("s3://{}/{}", env("KVAULT_TEST_S3_LOCKED_BUCKET"), unique("probe"));
    let admin = backend(&repo, false);
    admin
        .write_new("data/00/locked", b"kept".to_vec().into())
        .await
        .unwrap();
    let lock = admin.object_lock().expect("S3 has Object Lock");
    assert!(
        lock.enabled().await.unwrap(),
        "the bucket was created with Object Lock"
    );
    let until = SystemTime::now() + Duration::from_secs(4);
    lock.retain("data/00/locked", LockMode::Compliance, until)
        .await
        .unwrap();
    let got = lock.retained_until("data/00/locked").await.unwrap().unwrap();
    assert!(got >= until && got <= until + Duration::from_secs(1), "{got:?}");
    // Compliance: the admin cannot delete the version, nor shorten the date.
    let e = lock.purge("data/00/locked").await.unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::Denied, "{e}");
    assert!(
        lock.retain("data/00/locked", LockMode::Compliance, SystemTime::now())
            .await
            .is_err()
    );
    // The writer may not delete anything outside locks/ at all.
    let writer = backend(&repo, true).object_lock().unwrap();
    assert_eq!(
        writer.purge("data/00/locked").await.unwrap_err().kind,
        BackendErrorKind::Denied
    );
    assert!(!writer.may_delete("data/00/other").await.unwrap());
    assert!(lock.may_delete("data/00/other").await.unwrap());
    assert_eq!(admin.read("data/00/locked").await.unwrap(), b"kept");
    wait_until(until);
    lock.purge("data/00/locked").await.unwrap();
    assert_eq!(
        admin.stat("data/00/locked").await.unwrap(),
        None,
        "deletable once its date passed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_under_object_lock_outlive_every_credential_until_their_retention_ends() {
    let b = source();
    let topic = unique("worm");
    create_topic(&b, &topic, 2, &[("retention.ms", "-1")]).await;
    let batch = |from: i64, to: i64| -> Vec<(i32, kvault::image::record::Record)> {
        (from..to)
            .map(|i| {
                let v = format!("event {i} {}", "x".repeat((i % 40) as usize));
                (
                    (i % 2) as i32,
                    rec(
                        now_ms(),
                        Some(format!("k{i}").as_bytes()),
                        Some(v.as_bytes()),
                        &[],
                    ),
                )
            })
            .collect()
    };
    let repo = format!("s3://{}/{}", env("KVAULT_TEST_S3_LOCKED_BUCKET"), unique("worm"));
    // A plain bucket refuses --object-lock in one line.
    let plain = format!("s3://{}/{}", env("KVAULT_TEST_S3_BUCKET"), unique("nolock"));
    let mut c = kvault(&plain, false);
    c.args(["init", "--insecure-fast-kdf", "--object-lock", "1d"]);
    let (code, _, err) = run(c);
    assert_ne!(code, 0);
    assert!(
        err.contains("does not have it enabled") && err.lines().count() == 1,
        "{err}"
    );

    ok(
        &repo,
        false,
        &[
            "init",
            "--insecure-fast-kdf",
            "--object-lock",
            "8s",
            "--object-lock-slack",
            "2s",
        ],
    );
    produce(&b, &topic, &batch(0, 200));
    let snap = |writer: bool| {
        let out = ok(
            &repo,
            writer,
            &["snapshot", "-b", &b, "--topic", &topic, "--json"],
        );
        json(&out, "summary")["snapshot"].as_str().unwrap().to_string()
    };
    let first = snap(false);
    produce(&b, &topic, &batch(200, 400));
    // The append-only writer snapshots (its lock file comes and goes) and
    // checks; its deletes are refused by the server.
    let second = snap(true);
    ok(&repo, true, &["check", "--read-data"]);
    let w = backend(&repo, true);
    let files = objects(w.as_ref()).await;
    for p in files
        .iter()
        .filter(|p| p.starts_with("data/") || p.starts_with("snapshots/"))
        .take(3)
    {
        let e = w.object_lock().unwrap().purge(p).await.unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::Denied, "{p}: {e}");
        let e = w.write_new(p, b"ransom".to_vec().into()).await.unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::AlreadyExists, "{p}: no overwrite");
    }
    let mut c = kvault(&repo, true);
    c.args(["forget", &first]);
    let (code, _, err) = run(c);
    assert_ne!(code, 0, "the writer may not forget");
    assert!(
        err.contains("refuses this credential deletes") && err.lines().count() == 1,
        "{err}"
    );

    // Every snapshot records until when it and its objects are locked.
    let snaps: Vec<Value> = ok(&repo, false, &["snapshots", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let until = |id: &str| {
        let s = snaps.iter().find(|s| s["id"] == id).unwrap();
        date(s["snapshot"]["retained_until"].as_str().expect("retained_until"))
    };
    let now = SystemTime::now();
    assert!(until(&first) > now + Duration::from_secs(3) && until(&second) >= until(&first));

    // Under retention: forget and prune keep everything and say until when.
    let out = ok(&repo, false, &["forget", &first, "--json"]);
    let f = json(&out, "forget");
    assert_eq!(f["removed"], serde_json::json!([]), "{f}");
    assert_eq!(f["waiting"][0]["path"], format!("snapshots/{first}"));
    let before = objects(backend(&repo, false).as_ref()).await;
    let out = ok(&repo, false, &["prune", "--max-unused", "0", "--json"]);
    assert_eq!(json(&out, "prune")["packs_deleted"], 0);
    assert_eq!(
        objects(backend(&repo, false).as_ref()).await,
        before,
        "nothing locked was removed"
    );
    ok(&repo, false, &["check", "--read-data"]);

    // Once the first snapshot's date passes, it goes; prune then frees what
    // only it needed (nothing here: the second holds all), and the files it
    // leaves are all readable.
    wait_until(until(&first));
    let f = json(&ok(&repo, false, &["forget", &first, "--json"]), "forget");
    assert_eq!(f["removed"], serde_json::json!([first]), "{f}");
    assert_eq!(
        backend(&repo, false)
            .stat(&format!("snapshots/{first}"))
            .await
            .unwrap(),
        None
    );
    wait_until(until(&second));
    // Packs a snapshot extended are locked a little past its own date:
    // the storage says until when.
    wait_until(latest_lock(backend(&repo, false).as_ref()).await);
    ok(&repo, false, &["forget", &second]);
    let out = ok(&repo, false, &["prune", "--max-unused", "0", "--json"]);
    let p = json(&out, "prune");
    assert!(p["packs_deleted"].as_u64().unwrap() > 0, "{p}");
    let left = objects(backend(&repo, false).as_ref()).await;
    assert!(
        left.iter()
            .all(|p| !p.starts_with("data/") && !p.starts_with("snapshots/")),
        "{left:?}"
    );
    ok(&repo, false, &["check", "--read-data"]);
}
