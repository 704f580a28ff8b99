//! A repository no fault can silently lose: the lock protocol against clock
//! skew, `unlock --remove-all` and failing refreshes; prune's safety window;
//! hostile storage (planted keys, huge and special files, junk index
//! files); repair; full disks; signals, timeouts and permissions.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvault::backend::Backend;
use kvault::backend::fault::{Fault, FaultBackend};
use kvault::backend::memory::MemoryBackend;
use kvault::ops::prune::{PruneOptions, prune};
use kvault::repo::lock::{LockTiming, RepoLock};
use kvault::{Error, NoProgress, Repository};

use crate::cli::{code, init, json_lines, kvault, ok, stderr};
use crate::common::{init_on, random_bytes, small_opts};
use crate::repository::{assert_clean, get_bytes, put_bytes};

/// `kvault put -` fed by the test: returns the child and its stdin.
fn put_from_pipe(repo: &Path, wrap: Option<&[&str]>) -> std::process::Child {
    let mut c = crate::cli::kvault_through(wrap.unwrap_or(&[]), repo);
    c.args(["put", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the repository holds at least `n` packs.
fn wait_for_packs(repo: &Path, n: usize) {
    let t0 = Instant::now();
    loop {
        let packs = crate::common::files(&repo.join("data")).len();
        if packs >= n {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no packs written");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_writer_whose_clock_is_40_minutes_behind_keeps_its_lock_and_its_packs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    // The campaign's repro: a put under a clock 40 minutes behind, prune 2 s
    // later — here without any safety window, so only the lock protects it.
    let mut put = put_from_pipe(&repo, Some(&["faketime", "-f", "-40m"]));
    let data = random_bytes(24 << 20, 40);
    let mut stdin = put.stdin.take().unwrap();
    stdin.write_all(&data[..12 << 20]).unwrap();
    wait_for_packs(&repo, 2);
    let p = crate::cli::run(kvault(&repo).args(["prune", "--unindexed-grace", "0s"]));
    assert_eq!(
        code(&p),
        11,
        "prune must see the skewed writer's lock: {}",
        stderr(&p)
    );
    assert!(stderr(&p).contains("shared lock"), "{}", stderr(&p));
    stdin.write_all(&data[12 << 20..]).unwrap();
    drop(stdin);
    let out = put.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = json_lines(&out)[0]["snapshot"].as_str().unwrap().to_string();
    assert!(ok(kvault(&repo).args(["get", &id])).stdout == data);
    let rep = &json_lines(&ok(kvault(&repo).args(["check", "--read-data", "--json"])))[0];
    assert!(rep["errors"].as_array().unwrap().is_empty(), "{rep}");
}

#[test]
fn unlock_remove_all_during_a_put_fails_the_put_and_loses_nothing_reported() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    let mut put = put_from_pipe(&repo, None);
    let data = random_bytes(16 << 20, 41);
    let mut stdin = put.stdin.take().unwrap();
    stdin.write_all(&data[..8 << 20]).unwrap();
    wait_for_packs(&repo, 2);
    ok(kvault(&repo).args(["unlock", "--remove-all"]));
    // Nothing holds a lock now: a prune deletes the put's packs.
    ok(kvault(&repo).args(["prune", "--unindexed-grace", "0s"]));
    stdin.write_all(&data[8 << 20..]).unwrap();
    drop(stdin);
    let out = put.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{err}");
    assert!(
        err.contains("lock lost") && err.contains("nothing was saved"),
        "{err}"
    );
    // No snapshot names the deleted packs.
    assert!(json_lines(&ok(kvault(&repo).args(["snapshots", "--json"]))).is_empty());
    let rep = &json_lines(&ok(kvault(&repo).args(["check", "--json"])))[0];
    assert!(rep["errors"].as_array().unwrap().is_empty(), "{rep}");
}

/// A reader that hands out `data` slowly (a source that takes its time).
struct Slow {
    data: Vec<u8>,
    at: usize,
    per_read: usize,
    pause: Duration,
    sleeping: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl tokio::io::AsyncRead for Slow {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future;
        let pause = self.pause;
        let s = self
            .sleeping
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
        if s.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        self.sleeping = None;
        let n = self.per_read.min(self.data.len() - self.at).min(buf.remaining());
        let (at, end) = (self.at, self.at + n);
        buf.put_slice(&self.data[at..end]);
        self.at = end;
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_lock_that_cannot_be_refreshed_stops_the_writer_before_it_reports_a_snapshot() {
    let mem = MemoryBackend::new();
    let faulty = Arc::new(FaultBackend::new(mem.clone()));
    let repo = Repository::init(faulty.clone(), b"pw", &small_opts())
        .await
        .unwrap();
    repo.set_lock_timing(LockTiming {
        refresh: Duration::from_millis(50),
        stale_after: Duration::from_millis(600),
    });
    // Storage refuses lock writes from now on (an outage for locks only).
    let slow = Slow {
        data: random_bytes(400_000, 42),
        at: 0,
        per_read: 20_000,
        pause: Duration::from_millis(50),
        sleeping: None,
    };
    let task = {
        let repo = repo.clone();
        tokio::spawn(async move {
            kvault::ops::stream::put(
                &repo,
                slow,
                &kvault::ops::stream::PutOptions {
                    name: "slow".into(),
                    tags: vec![],
                },
                &NoProgress,
            )
            .await
        })
    };
    // Once the writer holds its lock, storage refuses lock writes.
    crate::common::wait_until_async("the writer's lock", Duration::from_secs(30), || async {
        faulty.list("locks").await.is_ok_and(|l| !l.is_empty())
    })
    .await;
    faulty.inject(Fault::FailWritesUnder("locks/".into()));
    let r = task.await.unwrap();
    assert!(
        matches!(r, Err(Error::LockLost(ref m)) if m.contains("could not be refreshed")),
        "{r:?}"
    );
    assert!(
        repo.list_ids(kvault::repo::FileKind::Snapshot)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn prune_keeps_young_unindexed_packs_and_deletes_them_once_old() {
    let mem = MemoryBackend::new();
    let repo = init_on(Arc::new(mem.clone())).await;
    put_bytes(&repo, &random_bytes(300_000, 43)).await.unwrap();
    // A write in progress (or a crashed one): a pack no index names.
    let orphan = kvault::Id::hash(b"orphan pack");
    let path = kvault::repo::pack_path(&orphan);
    mem.write_new(&path, vec![7; 1000].into()).await.unwrap();
    mem.write_new(".tmp/partial-upload", vec![1; 500].into())
        .await
        .unwrap();
    let r = prune(&repo, &PruneOptions::default(), &NoProgress).await.unwrap();
    assert_eq!(
        (
            r.unindexed_packs_deleted,
            r.unindexed_packs_kept,
            r.tmp_files_deleted
        ),
        (0, 1, 0)
    );
    assert!(mem.stat(&path).await.unwrap().is_some());
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3700);
    mem.touch(&path, hour_ago);
    mem.touch(".tmp/partial-upload", hour_ago);
    let r = prune(&repo, &PruneOptions::default(), &NoProgress).await.unwrap();
    assert_eq!(
        (
            r.unindexed_packs_deleted,
            r.unindexed_packs_kept,
            r.tmp_files_deleted
        ),
        (1, 0, 1)
    );
    assert!(mem.stat(&path).await.unwrap().is_none());
    assert!(mem.stat(".tmp/partial-upload").await.unwrap().is_none());
}

#[tokio::test]
async fn a_full_disk_is_freed_by_prune_deleting_what_needs_no_new_index_first() {
    let mem = MemoryBackend::new();
    let faulty = Arc::new(FaultBackend::new(mem.clone()));
    let repo = Repository::init(faulty.clone(), b"pw", &small_opts())
        .await
        .unwrap();
    let keep = random_bytes(200_000, 44);
    let s = put_bytes(&repo, &keep).await.unwrap();
    let gone = put_bytes(&repo, &random_bytes(600_000, 45)).await.unwrap();
    // Leftovers of crashed writes, an hour old.
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3700);
    for i in 0..4u8 {
        let p = kvault::repo::pack_path(&kvault::Id::hash(&[i]));
        mem.write_new(&p, vec![i; 300_000].into()).await.unwrap();
        mem.touch(&p, hour_ago);
    }
    kvault::ops::forget::forget(
        &repo,
        &kvault::ops::forget::ForgetOptions {
            ids: vec![gone.snapshot],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // The disk is full: not one more byte.
    let used: u64 = mem.total_size();
    faulty.inject(Fault::DiskFull(used));
    assert!(put_bytes(&repo, b"no room").await.is_err(), "the disk is full");
    let r = prune(&repo, &PruneOptions::default(), &NoProgress).await.unwrap();
    assert_eq!(r.unindexed_packs_deleted, 4);
    assert!(r.packs_deleted > 0 || r.packs_repacked > 0, "{r:?}");
    assert!(mem.total_size() < used / 2);
    faulty.clear();
    assert_eq!(get_bytes(&repo, &s.snapshot).await.unwrap(), keep);
    assert_clean(&repo, true).await;
}

#[tokio::test]
async fn hostile_key_files_are_skipped_not_tried_and_not_fatal() {
    let mem = MemoryBackend::new();
    let repo = init_on(Arc::new(mem.clone())).await;
    let good = repo.list_ids(kvault::repo::FileKind::Key).await.unwrap()[0];
    let text = String::from_utf8(mem.read(&format!("keys/{good}")).await.unwrap()).unwrap();
    let mut kf: serde_json::Value = serde_json::from_str(&text).unwrap();
    // 4 GiB and 64 passes; and a 1-byte salt; and junk.
    kf["kdf"]["m_cost_kib"] = serde_json::json!(4u64 << 20);
    kf["kdf"]["t_cost"] = serde_json::json!(64);
    let huge = serde_json::to_vec(&kf).unwrap();
    let mut bad_salt: serde_json::Value = serde_json::from_str(&text).unwrap();
    bad_salt["kdf"]["salt"] = serde_json::json!("00");
    let bad_salt = serde_json::to_vec(&bad_salt).unwrap();
    for b in [huge, bad_salt, b"not a key".to_vec()] {
        mem.write_new(&format!("keys/{}", kvault::Id::hash(&b)), b.into())
            .await
            .unwrap();
    }
    let warnings = std::sync::Mutex::new(Vec::new());
    let t0 = Instant::now();
    let r = Repository::open_warning(Arc::new(mem.clone()), b"pw", &|w| {
        warnings.lock().unwrap().push(w.to_string())
    })
    .await
    .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(r.key_id(), good);
    assert_eq!(
        warnings.lock().unwrap().len(),
        3,
        "{:?}",
        warnings.lock().unwrap()
    );
    assert!(matches!(
        Repository::open(Arc::new(mem), b"wrong").await,
        Err(Error::WrongPassword)
    ));
}

/// Runs kvault with a deadline, sampling its peak RSS: (output, seconds, MiB).
fn bounded(c: &mut Command, limit: Duration) -> (std::process::Output, f64, f64) {
    let t0 = Instant::now();
    let mut child = c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0f64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(st) = std::fs::read_to_string(&status) {
            if let Some(v) = st.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
                peak = peak.max(v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0.0));
            }
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("{c:?} hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (out, t0.elapsed().as_secs_f64(), peak / 1024.0)
}

#[test]
fn huge_and_special_files_get_clean_errors_in_bounded_time_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    let f = dir.path().join("f");
    std::fs::write(&f, random_bytes(300_000, 46)).unwrap();
    let id = json_lines(&ok(kvault(&repo).args(["put", f.to_str().unwrap(), "--json"])))[0]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    // A 3 GiB sparse index file: skipped with a warning by readers and
    // writers; prune refuses; repair index rebuilds without it.
    let junk = repo.join("index").join("a".repeat(64));
    std::fs::File::create(&junk).unwrap().set_len(3 << 30).unwrap();
    let (o, secs, mib) = bounded(kvault(&repo).args(["get", &id]), Duration::from_secs(30));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("index file aaaaaaaa skipped"),
        "{}",
        stderr(&o)
    );
    assert!(secs < 10.0 && mib < 512.0, "{secs} s, {mib} MiB");
    let p = crate::cli::run(kvault(&repo).arg("prune"));
    assert_eq!(code(&p), 1);
    assert!(stderr(&p).contains("kvault repair index"), "{}", stderr(&p));
    let lines = json_lines(&ok(kvault(&repo).args(["repair", "index", "--json"])));
    assert!(
        lines.iter().any(|l| l["message_type"] == "warning"),
        "the junk file is warned about"
    );
    let r = lines
        .iter()
        .find(|l| l["message_type"] == "repair_index")
        .unwrap();
    assert_eq!(
        r["index_files_removed"].as_u64().map(|n| n >= 1),
        Some(true),
        "{r}"
    );
    assert!(!junk.exists());
    ok(kvault(&repo).arg("prune"));
    // FIFOs named like a key, an index file and a pack: never opened.
    let fifo = |p: &Path| {
        assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
    };
    fifo(&repo.join("keys").join("b".repeat(64)));
    fifo(&repo.join("index").join("c".repeat(64)));
    std::fs::create_dir_all(repo.join("data").join("dd")).unwrap();
    fifo(&repo.join("data").join("dd").join("d".repeat(64)));
    let (o, secs, _) = bounded(kvault(&repo).args(["get", &id]), Duration::from_secs(30));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(secs < 10.0, "{secs}");
    let (o, secs, _) = bounded(
        kvault(&repo).args(["check", "--read-data"]),
        Duration::from_secs(30),
    );
    assert_eq!(code(&o), 1, "check names the special files: {}", stderr(&o));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    assert!(secs < 10.0);
    // A 3 GiB sparse config: refused, not read.
    std::fs::remove_file(repo.join("config")).unwrap();
    std::fs::File::create(repo.join("config"))
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let (o, secs, mib) = bounded(kvault(&repo).arg("snapshots"), Duration::from_secs(30));
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("config is corrupt or tampered"),
        "{}",
        stderr(&o)
    );
    assert!(secs < 10.0 && mib < 512.0, "{secs} s, {mib} MiB");
}

#[test]
fn a_deleted_index_is_rebuilt_from_the_packs_and_every_snapshot_reads_again() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    let mut snaps = Vec::new();
    for i in 0..3u64 {
        let f = dir.path().join(format!("f{i}"));
        let data = random_bytes(2_000_000, 50 + i);
        std::fs::write(&f, &data).unwrap();
        let id = json_lines(&ok(kvault(&repo).args(["put", f.to_str().unwrap(), "--json"])))[0]["snapshot"]
            .as_str()
            .unwrap()
            .to_string();
        snaps.push((id, data));
    }
    for f in crate::common::files(&repo.join("index")) {
        std::fs::remove_file(f).unwrap();
    }
    assert_ne!(
        code(&crate::cli::run(kvault(&repo).args(["get", &snaps[0].0]))),
        0
    );
    ok(kvault(&repo).args(["repair", "index"]));
    let rep = &json_lines(&ok(kvault(&repo).args(["check", "--read-data", "--json"])))[0];
    assert!(rep["errors"].as_array().unwrap().is_empty(), "{rep}");
    for (id, data) in &snaps {
        assert!(ok(kvault(&repo).args(["get", id])).stdout == *data);
    }
}

#[test]
fn reads_hold_a_shared_lock_so_prune_cannot_cut_them_short() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    let f = dir.path().join("f");
    let data = random_bytes(8 << 20, 47);
    std::fs::write(&f, &data).unwrap();
    let id = json_lines(&ok(kvault(&repo).args(["put", f.to_str().unwrap(), "--json"])))[0]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    // A slow reader: nobody drains get's stdout yet, so it blocks mid-way;
    // its first bytes show it is reading (under its lock).
    let mut get = kvault(&repo)
        .args(["get", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(get.stdout.as_mut().unwrap(), &mut first).unwrap();
    let p = crate::cli::run(kvault(&repo).args(["prune", "--max-unused", "0%"]));
    assert_eq!(code(&p), 11, "{}", stderr(&p));
    let mut out = first.to_vec();
    std::io::Read::read_to_end(get.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(get.wait().unwrap().success());
    assert!(out == data);
    // --no-lock reads without a lock (read-only storage).
    let o = ok(kvault(&repo).args(["--no-lock", "check"]));
    assert!(o.status.success());
}

#[test]
fn signals_timeouts_secrets_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    // SIGTERM during `get -o`: no partial file, exit 130. The signal goes
    // out once the partial file exists, so the get is caught mid-write
    // however fast this machine opens blobs (64 MiB took under 300 ms).
    let f = dir.path().join("f");
    std::fs::write(&f, random_bytes(128 << 20, 48)).unwrap();
    let id = json_lines(&ok(kvault(&repo).args(["put", f.to_str().unwrap(), "--json"])))[0]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let out = dir.path().join("out");
    let child = kvault(&repo)
        .args(["get", &id, "-o", out.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let partial = dir.path().join("out.kvault-partial");
    let t0 = Instant::now();
    while !partial.exists() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(partial.exists(), "get never started writing");
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.exists());
    assert!(!dir.path().join("out.kvault-partial").exists());
    // A password command that never finishes.
    let t0 = Instant::now();
    let o = crate::cli::run(kvault(&repo).env_remove("KVAULT_PASSWORD").args([
        "--password-command",
        "sleep 30",
        "--password-command-timeout",
        "1s",
        "snapshots",
    ]));
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("did not finish within 1s"), "{}", stderr(&o));
    assert!(t0.elapsed() < Duration::from_secs(10));
    // Secrets are not taken on the command line.
    let o = crate::cli::run(kvault(&repo).args(["--s3-secret-access-key", "hunter2", "snapshots"]));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    // Usage errors exit 2.
    let other = dir.path().join("other");
    for args in [
        vec!["init", "--pack-size", "0"],
        vec!["init", "--chunk-size", "1000"],
        vec!["init", "--compression", "99"],
    ] {
        let o = crate::cli::run(kvault(&other).args(&args));
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
    }
    let o = crate::cli::run(kvault(&repo).args(["forget", "--keep-last=-1"]));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

/// An argument that is not UTF-8 (`kvault -r $'repo-\xff' snapshots`) is a
/// usage error in one line, exit 2, never a panic (101).
#[cfg(unix)]
#[test]
fn a_non_utf8_argument_is_a_usage_error_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"repo-\xff");
    let (repo, snapshots, tag) = (dir.path().as_os_str(), "snapshots".as_ref(), "--tag".as_ref());
    for args in [
        vec!["-r".as_ref(), bad, snapshots],
        vec!["-r".as_ref(), repo, snapshots, tag, bad],
    ] {
        let mut c = crate::cli::bare();
        c.env("KVAULT_PASSWORD", "pw");
        let o = crate::cli::run(c.args(&args));
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{err}");
        assert!(err.contains("UTF-8"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[cfg(unix)]
#[test]
fn a_local_repository_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    init(&repo);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&repo), 0o700);
    for d in ["keys", "data", "index", "snapshots", "locks"] {
        assert_eq!(mode(&repo.join(d)), 0o700, "{d}");
    }
    for k in crate::common::files(&repo.join("keys")) {
        assert_eq!(mode(&k), 0o600, "{}", k.display());
    }
    assert_eq!(mode(&repo.join("config")), 0o600);
}

#[tokio::test]
async fn check_reads_without_a_lock_on_storage_that_refuses_writes() {
    let mem = MemoryBackend::new();
    let repo = init_on(Arc::new(mem.clone())).await;
    put_bytes(&repo, b"read only").await.unwrap();
    let ro = Arc::new(FaultBackend::new(mem));
    ro.inject(Fault::FailMutationsFrom(0));
    let repo = Repository::open(ro, b"pw").await.unwrap();
    assert!(
        RepoLock::acquire(&repo, false).await.is_err(),
        "a lock needs a write"
    );
    let rep = kvault::ops::check::check(&repo, &Default::default(), &NoProgress)
        .await
        .unwrap();
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
}

/// A storage failure is one short line: what failed, where, why, after how
/// many attempts — not the storage library's whole request context, and
/// not twice. The context comes under `-v`.
#[test]
fn an_unreachable_s3_endpoint_is_reported_in_one_short_line() {
    let run = |verbose: bool| {
        let mut c = crate::cli::kvault(Path::new("s3://bucket/prefix"));
        c.args(["--s3-endpoint", "http://127.0.0.1:1", "snapshots"])
            .env("AWS_ACCESS_KEY_ID", "id")
            .env("AWS_SECRET_ACCESS_KEY", "secret");
        if verbose {
            c.arg("-v");
        }
        crate::cli::run(&mut c)
    };
    let o = run(false);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let line = err.trim_end();
    assert!(line.len() < 200, "{} characters: {line}", line.len());
    for want in [
        "read config",
        "s3://bucket/prefix",
        "Connection refused",
        "after 5 attempts",
    ] {
        assert!(line.contains(want), "{want:?} missing: {line}");
    }
    assert!(!line.contains("context:"), "{line}");
    // The whole account is there for whoever asks.
    let err = stderr(&run(true));
    assert!(
        err.contains("context:") && err.contains("http://127.0.0.1:1"),
        "{err}"
    );
}
