//! `kvault snapshot` and `kvault restore` against independent baselines with
//! their own default settings, measured in the same run on the same
//! brokers (BENCHMARKS.md "Kafka snapshot"):
//!
//! - kcat (Debian package) consuming every partition to /dev/null:
//!   `kcat -C -b B -t T -o beginning -e -q -f '%k%s'`, one run per topic;
//! - Kafka's own `org.apache.kafka.tools.ConsumerPerformance` from the
//!   broker's jars (wall time, and its own fetch time);
//! - for restore, kcat producing the same records from a dump file with the
//!   same producer settings as kvault's (`-P -l`).
//!
//! Workloads W1–W4 (benches/support/workloads.rs). Per run: wall time,
//! MB/s of keys+values (10^6 B), peak RSS (VmHWM sampled every 10 ms), and
//! the broker's CPU seconds (utime+stime from /proc/PID/stat).
//!
//! Needs `scripts/kafka start source` and `target` and kcat:
//! `eval "$(scripts/kafka start source)"; eval "$(scripts/kafka start target)"; cargo bench --bench snapshot`.
//! `KVAULT_BENCH_WORKLOADS=W1,W3` picks workloads; `KVAULT_BENCH_RESTORE=0`
//! skips restores; `KVAULT_BENCH_ROUNDS` (default 2) interleaved rounds.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "common.rs"]
mod common;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/workloads.rs"]
mod workloads;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use workloads::{W1, W2, W3, W4, Workload};

/// utime+stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// The broker's CPU seconds per second while nothing reads or writes (3 s).
fn idle_rate(pid: u32) -> f64 {
    let c0 = cpu_secs(pid);
    std::thread::sleep(std::time::Duration::from_secs(3));
    (cpu_secs(pid) - c0) / 3.0
}

fn broker_pid(name: &str) -> u32 {
    std::fs::read_to_string(format!(".state/kafka/{name}/pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no .state/kafka/{name}/pid: start the broker with scripts/kafka"))
}

/// One measured run.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    secs: f64,
    rss_mib: f64,
    broker_cpu: f64,
    /// A second time where the tool reports its own (ConsumerPerformance's fetch time).
    own_secs: f64,
}

fn run_child(mut cmd: Command, broker: u32) -> (Run, std::process::Output) {
    let c0 = cpu_secs(broker);
    let t0 = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (rss, out) = common::wait_sampling_rss(child).unwrap();
    let run = Run {
        secs: t0.elapsed().as_secs_f64(),
        rss_mib: rss,
        broker_cpu: cpu_secs(broker) - c0,
        own_secs: 0.0,
    };
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (run, out)
}

fn sum(runs: &[Run]) -> Run {
    runs.iter().fold(Run::default(), |a, r| Run {
        secs: a.secs + r.secs,
        rss_mib: a.rss_mib.max(r.rss_mib),
        broker_cpu: a.broker_cpu + r.broker_cpu,
        own_secs: a.own_secs + r.own_secs,
    })
}

fn kcat_consume(b: &str, w: &Workload, broker: u32) -> Run {
    let runs: Vec<Run> = w
        .topic_names()
        .iter()
        .map(|t| {
            let mut c = Command::new("kcat");
            c.args([
                "-C",
                "-b",
                b,
                "-t",
                t,
                "-o",
                "beginning",
                "-e",
                "-q",
                "-f",
                "%k%s",
            ]);
            let (mut r, _) = run_child_to_null(c, broker);
            r.own_secs = r.secs;
            r
        })
        .collect();
    sum(&runs)
}

fn run_child_to_null(mut cmd: Command, broker: u32) -> (Run, std::process::Output) {
    cmd.stdout(Stdio::null());
    let c0 = cpu_secs(broker);
    let t0 = Instant::now();
    let child = cmd.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (rss, out) = common::wait_sampling_rss(child).unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        Run {
            secs: t0.elapsed().as_secs_f64(),
            rss_mib: rss,
            broker_cpu: cpu_secs(broker) - c0,
            own_secs: 0.0,
        },
        out,
    )
}

fn consumer_perf(b: &str, w: &Workload, broker: u32) -> Run {
    let cp =
        std::fs::read_to_string(".state/kafka/classpath.txt").expect("scripts/kafka writes the classpath");
    let runs: Vec<Run> = w
        .topic_names()
        .iter()
        .map(|t| {
            let mut c = Command::new("java");
            c.args(["-cp", cp.trim(), "org.apache.kafka.tools.ConsumerPerformance"])
                .args([
                    "--bootstrap-server",
                    b,
                    "--topic",
                    t,
                    "--messages",
                    &w.records.to_string(),
                ])
                .args([
                    "--group",
                    &format!("bench-cp-{}", kvault::Id::random().unwrap().short()),
                ]);
            let (mut r, out) = run_child(c, broker);
            // start.time, end.time, MB, MB.sec, nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, …
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().rfind(|l| l.matches(',').count() >= 8).unwrap_or("");
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            r.own_secs = f.get(7).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 1000.0;
            r
        })
        .collect();
    sum(&runs)
}

struct Kv {
    bin: PathBuf,
}

impl Kv {
    fn cmd(&self, repo: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(["-r", repo.to_str().unwrap(), "--no-progress"])
            .args(args)
            .env("KVAULT_PASSWORD", "pw");
        c
    }

    fn init(&self, repo: &Path) {
        let st = self
            .cmd(repo, &["init", "--insecure-fast-kdf", "-q"])
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn snapshot(&self, repo: &Path, b: &str, w: &Workload, broker: u32) -> (Run, serde_json::Value) {
        let glob = if w.topics == 1 {
            w.prefix.to_string()
        } else {
            format!("{}-*", w.prefix)
        };
        let (r, out) = run_child(
            self.cmd(
                repo,
                &["snapshot", "-b", b, "--topic", &glob, "--group", "none", "--json"],
            ),
            broker,
        );
        let v: serde_json::Value = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message_type"] == "summary")
            .unwrap();
        (r, v)
    }

    fn check(&self, repo: &Path) {
        let out = self.cmd(repo, &["check", "--read-data"]).output().unwrap();
        assert!(
            out.status.success(),
            "check --read-data: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

fn mb(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// `rounds` runs of kcat and of a kvault snapshot (each into a new
/// repository) of workload `w`; the last run's repository.
fn rounds_of(
    kv: &Kv,
    b: &str,
    w: &Workload,
    broker: u32,
    rounds: usize,
    tmp: &Path,
) -> (Vec<Run>, Vec<Run>, PathBuf) {
    let bytes = w.exact_bytes();
    let (mut kc, mut kvs) = (Vec::new(), Vec::new());
    let mut last_repo = PathBuf::new();
    for round in 0..rounds {
        let k = kcat_consume(b, w, broker);
        println!(
            "kcat        {:6.2} s {:7.1} MB/s  RSS {:5.0} MiB  broker CPU {:5.2} s",
            k.secs,
            mb(bytes, k.secs),
            k.rss_mib,
            k.broker_cpu
        );
        kc.push(k);
        let repo = tmp.join(format!("{}-{round}", w.name));
        kv.init(&repo);
        let (s, v) = kv.snapshot(&repo, b, w, broker);
        assert_eq!(
            v["records_read"].as_u64(),
            Some(w.records * w.topics as u64),
            "{v}"
        );
        println!(
            "kvault      {:6.2} s {:7.1} MB/s  RSS {:5.0} MiB  broker CPU {:5.2} s  stored {:.0} MiB",
            s.secs,
            mb(bytes, s.secs),
            s.rss_mib,
            s.broker_cpu,
            v["new_bytes_stored"].as_f64().unwrap_or(0.0) / 1048576.0
        );
        kvs.push(s);
        last_repo = repo;
    }
    (kc, kvs, last_repo)
}

/// The write pipeline's own ceiling: `kvault put` of the bytes a W2
/// snapshot read (`snapshot_secs`), as a table line.
fn w2_put_ceiling(
    kv: &Kv,
    b: &str,
    w: &Workload,
    broker: u32,
    bytes: u64,
    snapshot_secs: f64,
    tmp: &Path,
) -> String {
    // The write pipeline's own ceiling: `kvault put` of the same bytes.
    let dump = tmp.join("w2.bytes");
    let f = std::fs::File::create(&dump).unwrap();
    let st = Command::new("kcat")
        .args([
            "-C",
            "-b",
            b,
            "-t",
            w.prefix,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k%s",
        ])
        .stdout(f)
        .status()
        .unwrap();
    assert!(st.success());
    let repo = tmp.join("w2-put");
    kv.init(&repo);
    let (p, _) = run_child(kv.cmd(&repo, &["put", dump.to_str().unwrap()]), broker);
    println!(
        "kvault put  {:6.2} s {:7.1} MB/s  RSS {:5.0} MiB",
        p.secs,
        mb(bytes, p.secs),
        p.rss_mib
    );
    std::fs::remove_file(&dump).ok();
    format!(
        "| W2 snapshot vs `kvault put` of the same bytes | {:.2} s | {:.2} s | **{:.2}×** | | |",
        snapshot_secs,
        p.secs,
        p.secs / snapshot_secs
    )
}

/// W3's incrementals: unchanged (three runs: the first follows the full
/// snapshots and kcat runs while the broker still flushes; the table gives
/// each), then +1% records; table lines.
fn w3_incrementals(
    kv: &Kv,
    b: &str,
    w: &Workload,
    broker: u32,
    last_repo: &Path,
    rt: &tokio::runtime::Runtime,
) -> Vec<String> {
    let mut table = Vec::new();
    // Incrementals: unchanged (three runs: the first follows the
    // full snapshots and kcat runs while the broker still flushes;
    // the table gives each), then +1% records.
    let mut unchanged = Vec::new();
    for _ in 0..3 {
        let (u, v) = kv.snapshot(last_repo, b, w, broker);
        assert_eq!(v["partitions_read"].as_u64(), Some(0), "{v}");
        println!("unchanged   {:6.2} s, RSS {:.0} MiB", u.secs, u.rss_mib);
        unchanged.push(u.secs);
    }
    for (t, name) in w.topic_names().iter().enumerate() {
        w.produce(b, t, name, w.records..w.records + w.records / 100);
    }
    let (inc, v) = kv.snapshot(last_repo, b, w, broker);
    assert_eq!(
        v["records_read"].as_u64(),
        Some(w.records / 100 * w.topics as u64),
        "{v}"
    );
    println!("+1%         {:6.2} s, RSS {:.0} MiB", inc.secs, inc.rss_mib);
    table.push(format!(
        "| W3 unchanged second snapshot (3 runs) | {} | | | | |",
        unchanged
            .iter()
            .map(|s| format!("{s:.2} s"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    table.push(format!(
        "| W3 after +1% records | {:.2} s, {:.0} MiB | | | | |",
        inc.secs, inc.rss_mib
    ));
    // Put the topics back to the workload (delete the extra records' topics and regenerate next run).
    drop_topics(rt, b, w);
    table
}

/// Deletes a workload's topics.
fn drop_topics(rt: &tokio::runtime::Runtime, b: &str, w: &Workload) {
    for name in w.topic_names() {
        rt.block_on(kafka::delete(b, &name));
    }
}

/// W4: 10,000 partitions, first and unchanged snapshot; table lines.
fn w4_partitions(kv: &Kv, b: &str, broker: u32, tmp: &Path, rt: &tokio::runtime::Runtime) -> Vec<String> {
    let mut table = Vec::new();
    let w = W4;
    rt.block_on(w.ensure(b));
    let repo = tmp.join("w4");
    kv.init(&repo);
    let (first, _) = kv.snapshot(&repo, b, &w, broker);
    let (again, v) = kv.snapshot(&repo, b, &w, broker);
    assert_eq!(v["partitions"].as_u64(), Some(10_000));
    assert_eq!(v["partitions_read"].as_u64(), Some(0));
    println!(
        "\n== W4: first snapshot of 10,000 partitions {:.2} s (RSS {:.0} MiB); unchanged {:.2} s (RSS {:.0} MiB)",
        first.secs, first.rss_mib, again.secs, again.rss_mib
    );
    table.push(format!(
        "| W4 (10,000 partitions) first snapshot | {:.2} s, {:.0} MiB | | | | |",
        first.secs, first.rss_mib
    ));
    table.push(format!(
        "| W4 unchanged second snapshot | {:.2} s, {:.0} MiB | | | | |",
        again.secs, again.rss_mib
    ));
    // 10,000 idle partitions make the broker busier in the background:
    // leave none behind for the next run's other workloads.
    drop_topics(rt, b, &w);
    table
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let b = std::env::var("KVAULT_KAFKA_SOURCE")
        .expect("KVAULT_KAFKA_SOURCE is not set: run `eval \"$(scripts/kafka start source)\"` first");
    let broker = broker_pid("source");
    let rounds: usize = std::env::var("KVAULT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let chosen = std::env::var("KVAULT_BENCH_WORKLOADS").unwrap_or_else(|_| "W1,W2,W3,W4".into());
    let kv = Kv {
        bin: PathBuf::from(env!("CARGO_BIN_EXE_kvault")),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut table: Vec<String> = Vec::new();

    for w in [W1, W2, W3] {
        if !chosen.split(',').any(|c| c == w.name) {
            continue;
        }
        rt.block_on(w.ensure(&b));
        let bytes = w.exact_bytes();
        println!(
            "\n== {}: {} topic(s) × {} partitions, {} records, {:.0} MB of keys+values",
            w.name,
            w.topics,
            w.partitions,
            w.records * w.topics as u64,
            bytes as f64 / 1e6
        );
        // Warm the page cache once, as every run after it sees it.
        let _ = kcat_consume(&b, &w, broker);
        // What the broker burns doing nothing (KRaft heartbeats, the JVM):
        // a slower run pays it longer, so the table also shows broker CPU
        // above idle.
        let idle = idle_rate(broker);
        println!("broker idle {idle:.3} CPU s per s");
        let (kc, kvs, last_repo) = rounds_of(&kv, &b, &w, broker, rounds, tmp.path());
        let cp = consumer_perf(&b, &w, broker);
        println!(
            "ConsumerPerformance {:6.2} s wall, {:6.2} s own fetch time ({:.1} MB/s)",
            cp.secs,
            cp.own_secs,
            mb(bytes, cp.own_secs)
        );
        kv.check(&last_repo);
        let best = |v: &[Run]| *v.iter().min_by(|a, b| a.secs.total_cmp(&b.secs)).unwrap();
        let (k, s) = (best(&kc), best(&kvs));
        table.push(format!(
            "| {} snapshot | {:.2} s, {:.0} MB/s, {:.0} MiB, broker {:.2} s | {:.2} s, {:.0} MB/s, {:.0} MiB, broker {:.2} s | **{:.2}×** | {:.2} s wall / {:.2} s own ({:.0} MB/s) | {:.2}× ({:.2}× above idle) |",
            w.name, s.secs, mb(bytes, s.secs), s.rss_mib, s.broker_cpu, k.secs, mb(bytes, k.secs), k.rss_mib, k.broker_cpu,
            k.secs / s.secs, cp.secs, cp.own_secs, mb(bytes, cp.own_secs), s.broker_cpu / k.broker_cpu.max(0.01),
            (s.broker_cpu - idle * s.secs).max(0.0) / (k.broker_cpu - idle * k.secs).max(0.01)
        ));

        if w.name == "W2" {
            table.push(w2_put_ceiling(&kv, &b, &w, broker, bytes, s.secs, tmp.path()));
        }

        if w.name == "W3" {
            table.extend(w3_incrementals(&kv, &b, &w, broker, &last_repo, &rt));
        }

        if std::env::var("KVAULT_BENCH_RESTORE").as_deref() != Ok("0") && w.topics == 1 {
            restore_vs_kcat(&kv, &last_repo, &w, bytes, &mut table, &tmp);
        }
    }

    if chosen.split(',').any(|c| c == "W4") {
        table.extend(w4_partitions(&kv, &b, broker, tmp.path(), &rt));
    }

    println!(
        "\n| run | kvault | kcat | kcat/kvault time | ConsumerPerformance | broker CPU kvault/kcat |\n|---|---|---|---|---|---|"
    );
    for l in table {
        println!("{l}");
    }
}

/// kvault restore of a workload's snapshot into the target cluster, against
/// kcat producing the same records (dumped to a file) with kvault's producer
/// settings.
fn restore_vs_kcat(
    kv: &Kv,
    repo: &Path,
    w: &Workload,
    bytes: u64,
    table: &mut Vec<String>,
    tmp: &tempfile::TempDir,
) {
    let Ok(t) = std::env::var("KVAULT_KAFKA_TARGET") else {
        println!("KVAULT_KAFKA_TARGET not set: restore skipped");
        return;
    };
    let tbroker = broker_pid("target");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The dump: key KD value RD, for kcat -P -l.
    let dump = tmp.path().join(format!("{}.kcat", w.name));
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&dump).unwrap());
        for i in 0..w.records {
            let (_, k, v) = w.record(0, i);
            f.write_all(&k).unwrap();
            f.write_all(b"|kvaultK|").unwrap();
            f.write_all(&v).unwrap();
            f.write_all(b"|kvaultD|").unwrap();
        }
    }
    let mut x_args: Vec<String> = Vec::new();
    for (k, v) in kvault::kafka::sink::PRODUCER_DEFAULTS {
        x_args.push("-X".into());
        x_args.push(format!("{k}={v}"));
    }
    let (mut kc, mut kr) = (Vec::new(), Vec::new());
    for round in 0..2 {
        let id = kvault::Id::random().unwrap().short();
        let topic = format!("bench-kcatp-{id}");
        rt.block_on(kafka::create(&t, &topic, w.partitions));
        let mut c = Command::new("kcat");
        c.args([
            "-P",
            "-b",
            &t,
            "-t",
            &topic,
            "-K",
            "|kvaultK|",
            "-D",
            "|kvaultD|",
            "-l",
            dump.to_str().unwrap(),
        ])
        .args(["-X", "partitioner=murmur2_random"])
        .args(&x_args);
        let (r, _) = run_child(c, tbroker);
        println!(
            "kcat -P     {:6.2} s {:7.1} MB/s  RSS {:5.0} MiB  (round {round})",
            r.secs,
            mb(bytes, r.secs),
            r.rss_mib
        );
        kc.push(r);
        rt.block_on(kafka::delete(&t, &topic));
        let prefix = format!("bench-r{id}-");
        let state = tmp.path().join(format!("state-{id}"));
        let (r, _) = run_child(
            kv.cmd(
                repo,
                &[
                    "restore",
                    "latest",
                    "-b",
                    &t,
                    "--prefix",
                    &prefix,
                    "--no-groups",
                    "--state-dir",
                    state.to_str().unwrap(),
                ],
            ),
            tbroker,
        );
        println!(
            "kvault      {:6.2} s {:7.1} MB/s  RSS {:5.0} MiB  (restore, round {round})",
            r.secs,
            mb(bytes, r.secs),
            r.rss_mib
        );
        kr.push(r);
        rt.block_on(kafka::delete(&t, &format!("{prefix}{}", w.prefix)));
    }
    std::fs::remove_file(&dump).ok();
    let best = |v: &[Run]| *v.iter().min_by(|a, b| a.secs.total_cmp(&b.secs)).unwrap();
    let (k, r) = (best(&kc), best(&kr));
    table.push(format!(
        "| {} restore | {:.2} s, {:.0} MB/s, {:.0} MiB | {:.2} s, {:.0} MB/s, {:.0} MiB (kcat -P -l) | **{:.2}×** | | |",
        w.name, r.secs, mb(bytes, r.secs), r.rss_mib, k.secs, mb(bytes, k.secs), k.rss_mib, k.secs / r.secs
    ));
}
