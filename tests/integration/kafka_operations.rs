//! What a nightly job needs around the Kafka commands: `-v` logs retries
//! and librdkafka's diagnostics on stderr, and a configuration file
//! replaces the repeated flags.

use crate::kafka::*;
use crate::kafka_target::keyed;

#[test]
fn verbose_runs_log_retries_and_librdkafka_diagnostics_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    // The shared helper clears KVAULT_* (KVAULT_LOG too) from the environment.
    let run = |args: &[&str]| crate::cli::run(crate::cli::kvault(&repo).args(args));
    assert!(run(&["init", "--insecure-fast-kdf"]).status.success());
    // Unreachable with -v: librdkafka says why, and kvault's error is still
    // the last line.
    let o = run(&["-v", "snapshot", "-b", "127.0.0.1:1", "--kafka-timeout", "3s"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("librdkafka") && l.contains("Connection refused")),
        "{err}"
    );
    assert!(
        err.trim()
            .lines()
            .last()
            .unwrap()
            .starts_with("kvault: cannot reach Kafka"),
        "{err}"
    );
    // A snapshot with -v logs its phases; --json makes them JSON lines.
    let b = source();
    let o = run(&[
        "-v",
        "--json",
        "snapshot",
        "-b",
        &b,
        "--topic",
        "none-such-*",
        "--group",
        "none",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let logs: Vec<serde_json::Value> = err.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        logs.iter().any(|l| l["message_type"] == "log"
            && l["level"] == "info"
            && l["message"].as_str().unwrap_or_default().contains("saved")),
        "{err}"
    );
    // RUST_LOG directives per target, and JSON log lines without --json.
    let snap = |env: &str| {
        crate::cli::run(
            crate::cli::kvault(&repo)
                .env("RUST_LOG", env)
                .args([
                    "--log-format",
                    "json",
                    "snapshot",
                    "-b",
                    &b,
                    "--topic",
                    "none-such-*",
                ])
                .args(["--group", "none"]),
        )
    };
    let o = snap("warn,kvault::ops=info");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| l["target"]
                .as_str()
                .unwrap_or_default()
                .starts_with("kvault::ops")
                && l["level"] == "info"),
        "{err}"
    );
    let o = snap("info,kvault::ops=error");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("kvault::ops"), "{err}");
}

#[tokio::test]
async fn a_configuration_file_replaces_the_repeated_flags() {
    let b = source();
    let topic = unique("cfg");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    produce(&b, &topic, &keyed(20, 1, "cfg"));
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "from-the-file\n").unwrap();
    let cfg = dir.path().join("kvault.toml");
    std::fs::write(
        &cfg,
        format!(
            "repository = \"{}\"\npassword-file = \"{}\"\nbrokers = \"{b}\"\nkafka-timeout = \"30s\"\n\n\
             [kafka]\n\"client.id\" = \"kvault-from-config\"\n",
            repo.display(),
            pw.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        crate::cli::bare()
            .args(["--config", cfg.to_str().unwrap(), "--no-progress"])
            .args(args)
            .env_remove("KVAULT_PASSWORD")
            .env_remove("KVAULT_REPOSITORY")
            .env_remove("KVAULT_BROKERS")
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let o = run(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    ok(&["init", "--insecure-fast-kdf"]);
    // No -r, no -b, no password in the environment: all from the file.
    let out = ok(&["snapshot", "--topic", &topic, "--group", "none", "--json"]);
    assert!(out.contains("\"records_read\":20"), "{out}");
    // A flag still wins over the file.
    let other = dir.path().join("other");
    let o = run(&["-r", other.to_str().unwrap(), "snapshots"]);
    assert_eq!(
        o.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A malformed or unknown key: one line naming it, usage exit code.
    std::fs::write(&cfg, "repostory = \"x\"\n").unwrap();
    let o = run(&["snapshots"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown key repostory") && err.trim().lines().count() == 1,
        "{err}"
    );
    std::fs::write(&cfg, "repository = [\n").unwrap();
    let o = run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("kvault: configuration file"));
}
