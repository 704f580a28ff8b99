//! The cluster's own state on real brokers with Kafka's StandardAuthorizer
//! (`scripts/kafka start authz` and `authz-target`): ACLs, SCRAM users,
//! client quotas and dynamic broker configs set by independent tools
//! (confluent-kafka's AdminClient, Kafka's own ConfigCommand), captured by
//! a snapshot, restored with `--metadata-only` to an authorizer cluster
//! that lacks them, and read back by the same independent tools; a client
//! authenticating as a restored user is allowed and refused as on the
//! source. A principal that may not describe everything gets a warning per
//! kind and the rest.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::kafka::unique;

const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/cluster_state.py");

fn env(k: &str) -> String {
    std::env::var(k)
        .unwrap_or_else(|_| panic!("{k} is not set: run `scripts/test` (it starts the authz clusters)"))
}

/// Runs the independent helper; its stdout.
fn helper(args: &[&str]) -> String {
    let o = Command::new("python3").arg(HELPER).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "cluster_state.py {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Runs kvault; (exit code, stdout, stderr).
fn kvault(repo: &Path, args: &[&str]) -> (i32, String, String) {
    let o = crate::cli::kvault(repo).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The JSON line of `message_type` in a `--json` output.
fn line(out: &str, message_type: &str) -> Value {
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message_type"] == message_type)
        .unwrap_or_else(|| panic!("no {message_type} line in {out}"))
}

/// A new tag (`prefix-…`) whose state `cluster_state.py setup` puts on
/// `src`, and an empty repository: (tag, its directory, the repository).
fn set_up(src: &str, prefix: &str) -> (String, tempfile::TempDir, std::path::PathBuf) {
    let tag = unique(prefix);
    helper(&["setup", src, &tag]);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    assert_eq!(kvault(&repo, &["init", "--insecure-fast-kdf"]).0, 0);
    (tag, dir, repo)
}

#[test]
fn acls_users_quotas_and_broker_configs_come_back_on_an_empty_authorizer_cluster() {
    let (src, tgt) = (env("KVAULT_KAFKA_AUTHZ"), env("KVAULT_KAFKA_AUTHZ_TARGET"));
    let (tag, dir, repo) = set_up(&src, "cs");
    let pattern = format!("{tag}-*");
    let (code, out, err) = kvault(&repo, &["snapshot", "-b", &src, "--topic", &pattern, "--json"]);
    assert_eq!(code, 0, "{err}");
    let counts = &line(&out, "summary")["cluster_state"];
    assert!(counts["acls"].as_u64().unwrap() >= 10, "{counts}");
    assert!(counts["scram_users"].as_u64().unwrap() >= 2, "{counts}");

    // ls names every kind, in text.
    let (code, ls, err) = kvault(&repo, &["ls", "latest"]);
    assert_eq!(code, 0, "{err}");
    for want in [
        format!("acl DENY User:{tag}-alice WRITE topic:{tag}-denied from *"),
        format!("acl ALLOW User:{tag}-alice READ topic:{tag}-pre (prefixed) from *"),
        format!("acl ALLOW User:{tag}-bob DESCRIBE cluster:kafka-cluster from *"),
        format!("scram user {tag}-alice SCRAM-SHA-512 (8192 iterations)"),
        format!("quota client-id={tag}-app, user={tag}-bob: request_percentage=50"),
        "quota user=<default>: producer_byte_rate=99000000".to_string(),
        "broker config default log.retention.ms=604800001".to_string(),
        "broker config 1 max.connections=10000".to_string(),
    ] {
        assert!(ls.contains(&want), "ls lacks {want:?}:\n{ls}");
    }

    let creds = dir.path().join("scram");
    std::fs::write(
        &creds,
        format!(
            "# user mechanism password\n{tag}-alice SCRAM-SHA-512 alice-pw\n{tag}-bob SCRAM-SHA-256 bob-pw\n"
        ),
    )
    .unwrap();
    let creds = creds.to_str().unwrap();
    dry_runs_change_nothing(&repo, &tgt, &tag, creds);

    let restore_metadata = || {
        kvault(
            &repo,
            &[
                "restore",
                "-b",
                &tgt,
                "--metadata-only",
                "--scram-credentials",
                creds,
                "--json",
            ],
        )
    };
    let (code, out, err) = restore_metadata();
    assert_eq!(code, 0, "{err}");
    let done = &line(&out, "restore")["metadata"];
    assert!(
        done["users_created"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(format!("{tag}-alice SCRAM-SHA-512"))),
        "{done}"
    );
    same_state_and_access(&src, &tgt, &tag);
    // Again: nothing to do, the users reported as existing.
    let (code, out, _) = restore_metadata();
    assert_eq!(code, 0);
    let again = &line(&out, "restore")["metadata"];
    assert!(again["acls_created"].as_array().unwrap().is_empty(), "{again}");
    assert!(
        again["conflicts"].to_string().contains(&format!("{tag}-alice")),
        "{again}"
    );
    state_is_verified(&repo, &tgt, &tag);

    restricted_principal_is_warned_per_kind(&repo, &tag);
}

/// `verify` compares the cluster state too (beside the topic's records,
/// not restored here): equal once restored; with one principal's ACLs
/// deleted on the target, each named as missing (exit 4); `--no-metadata`
/// leaves the state uncompared.
fn state_is_verified(repo: &Path, tgt: &str, tag: &str) {
    let topic = format!("{tag}-t");
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "-b", tgt, "--topic", &topic, "--no-groups", "--json"];
        args.extend_from_slice(extra);
        kvault(repo, &args)
    };
    // The clusters are shared with the other cluster-state tests, whose
    // users (restored without passwords) this snapshot holds too: only
    // this test's entities are asserted.
    let mine = |c: &Value, kind: &str| -> Vec<String> {
        c[kind]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .filter(|e| e.contains(&format!("{tag}-")))
            .collect()
    };
    let kinds = [
        "acls_missing",
        "users_missing",
        "quotas_differing",
        "configs_differing",
    ];
    let (_, out, err) = verify(&[]);
    let c = &line(&out, "verify")["cluster_state"];
    for kind in kinds {
        assert_eq!(mine(c, kind), Vec::<String>::new(), "{kind}: {c} {err}");
    }
    helper(&["drop-acls", tgt, &format!("User:{tag}-alice")]);
    let (code, out, _) = verify(&[]);
    assert_eq!(code, 4);
    let v = line(&out, "verify");
    let c = &v["cluster_state"];
    assert_eq!(c["equal"], false, "{c}");
    let missing = mine(c, "acls_missing");
    assert_eq!(missing.len(), 6, "alice's six bindings: {c}");
    assert!(
        missing.iter().all(|a| a.contains(&format!("User:{tag}-alice "))),
        "{c}"
    );
    for kind in ["users_missing", "quotas_differing", "configs_differing"] {
        assert_eq!(mine(c, kind), Vec::<String>::new(), "{kind}: {c}");
    }
    let (_, out, _) = verify(&["--no-metadata"]);
    assert!(line(&out, "verify").get("cluster_state").is_none(), "{out}");
}

/// A dry run lists every change and makes none; the prefix and the
/// principal map rename what they should.
fn dry_runs_change_nothing(repo: &Path, tgt: &str, tag: &str, creds: &str) {
    let before = helper(&["describe", tgt, tag]);
    // A dry run lists every change and makes none.
    let (code, out, err) = kvault(
        repo,
        &[
            "restore",
            "-b",
            tgt,
            "--metadata-only",
            "--scram-credentials",
            creds,
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let planned = &line(&out, "restore_plan")["metadata"];
    assert!(
        planned["acls_created"].as_array().unwrap().len() >= 10,
        "{planned}"
    );
    assert_eq!(
        helper(&["describe", tgt, tag]),
        before,
        "a dry run changes nothing"
    );
    // Prefix and principal map rename what they should (dry run).
    let (_, out, _) = kvault(
        repo,
        &[
            "restore",
            "-b",
            tgt,
            "--metadata-only",
            "--dry-run",
            "--json",
            "--prefix",
            "dr-",
            "--acl-principal-map",
            &format!("User:{tag}-alice=User:{tag}-carol"),
        ],
    );
    let acls = line(&out, "restore_plan")["metadata"]["acls_created"].to_string();
    assert!(
        acls.contains(&format!("ALLOW User:{tag}-carol WRITE topic:dr-{tag}-t from *")),
        "{acls}"
    );
    assert!(!acls.contains(&format!("User:{tag}-alice ")), "{acls}");
}

/// The independent tools see the same state on both clusters, and a
/// client authenticating as a restored user is allowed where its ACLs
/// allow, refused where they deny, and only with its own password.
fn same_state_and_access(src: &str, tgt: &str, tag: &str) {
    let tgt_scram = env("KVAULT_KAFKA_AUTHZ_TARGET_SCRAM");
    // The independent tools see the same state on both clusters.
    let (a, b): (Value, Value) = (
        serde_json::from_str(&helper(&["describe", src, tag])).unwrap(),
        serde_json::from_str(&helper(&["describe", tgt, tag])).unwrap(),
    );
    for kind in ["acls", "scram_users", "quotas", "broker_configs"] {
        assert_eq!(a[kind], b[kind], "{kind} differ");
    }
    assert_eq!(a["acls"].as_array().unwrap().len(), 10);
    // A client authenticating as a restored user: allowed where its ACLs
    // allow, refused where they deny, and only with its own password.
    helper(&["topics", tgt, tag]);
    let produce = |pw: &str, topic: &str| {
        helper(&[
            "produce",
            &tgt_scram,
            &format!("{tag}-alice"),
            pw,
            "SCRAM-SHA-512",
            &format!("{tag}-{topic}"),
        ])
    };
    assert_eq!(produce("alice-pw", "t"), "ok");
    assert_eq!(produce("alice-pw", "denied"), "TOPIC_AUTHORIZATION_FAILED");
    assert_eq!(produce("wrong", "t"), "_AUTHENTICATION");
}

/// A snapshot by a principal that may describe the cluster (ACLs, SCRAM
/// users) and read its topic but not describe configs: quotas and broker
/// configs are named as missing, one warning each; the rest is captured.
fn restricted_principal_is_warned_per_kind(repo: &Path, tag: &str) {
    let props = repo.parent().unwrap().join("bob.properties");
    std::fs::write(
        &props,
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\nsasl.username={tag}-bob\nsasl.password=bob-pw\n"
        ),
    )
    .unwrap();
    let (code, out, err) = kvault(
        repo,
        &[
            "snapshot",
            "-b",
            &env("KVAULT_KAFKA_AUTHZ_SCRAM"),
            "--kafka-config",
            props.to_str().unwrap(),
            "--topic",
            &format!("{tag}-t"),
            "--group",
            "none",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let s = line(&out, "summary");
    let warnings = s["warnings"].to_string();
    for kind in ["quotas", "broker_configs"] {
        assert!(
            warnings.contains(&format!(
                "cluster state: {kind} not captured: CLUSTER_AUTHORIZATION_FAILED"
            )),
            "{kind}: {warnings}"
        );
    }
    assert!(
        warnings.contains("needs DescribeConfigs on the cluster"),
        "{warnings}"
    );
    assert!(!warnings.contains("acls not captured"), "{warnings}");
    assert!(!warnings.contains("scram_users not captured"), "{warnings}");
    assert!(s["cluster_state"]["acls"].as_u64().unwrap() >= 10, "{s}");
}

const FIXTURE_PASSWORD: &str = "kvault kafka fixture cluster state v1";
const FIXTURE_TARBALL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/kafka-cluster-state-v1.tar.gz"
);

/// Runs kvault on a fixture repository; (exit code, stdout, stderr).
fn on_fixture(root: &Path, args: &[&str]) -> (i32, String, String) {
    let o = crate::cli::bare()
        .arg("-r")
        .arg(root)
        .arg("--no-progress")
        .args(args)
        .env("KVAULT_PASSWORD", FIXTURE_PASSWORD)
        .env_remove("KVAULT_REPOSITORY")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The cluster-state fixture (tests/fixtures/kafka-cluster-state-v1.tar.gz,
/// one snapshot of an authorizer cluster set up by `cluster_state.py setup
/// … fx`): `ls` shows its ACLs, users, quotas and broker configs, and a
/// dry-run restore to a cluster without an authorizer plans all of it,
/// with the users it cannot re-create without passwords listed. The
/// fixtures of before the cluster state restore and say they hold none.
#[test]
fn the_cluster_state_fixture_lists_and_plans_its_state() {
    let (_dir, root) = crate::common::extract_fixture(FIXTURE_TARBALL, "kafka-cluster-state-v1");
    let (code, ls, err) = on_fixture(&root, &["ls", "latest"]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "acl DENY User:fx-alice WRITE topic:fx-denied from *",
        "acl ALLOW User:fx-alice READ topic:fx-pre (prefixed) from *",
        "scram user fx-bob SCRAM-SHA-256 (4096 iterations)",
        "quota user=fx-alice: consumer_byte_rate=2097152 producer_byte_rate=1048576",
        "quota ip=127.0.0.9: connection_creation_rate=100",
        "broker config default log.cleaner.threads=2",
        "broker config 1 max.connections=10000",
    ] {
        assert!(ls.contains(want), "ls lacks {want:?}:\n{ls}");
    }
    let b = crate::kafka::source();
    let (code, out, err) = on_fixture(
        &root,
        &[
            "restore",
            "latest",
            "-b",
            &b,
            "--metadata-only",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let m = &line(&out, "restore_plan")["metadata"];
    assert_eq!(m["acls_created"].as_array().unwrap().len(), 10, "{m}");
    assert_eq!(m["users_not_created"].as_array().unwrap().len(), 2, "{m}");
    assert!(m["quotas_set"].to_string().contains("user=fx-alice"), "{m}");

    let (_old, old_root) = crate::common::extract_fixture(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kafka-txn-v2.tar.gz"),
        "kafka-txn-v2",
    );
    let o = crate::cli::bare()
        .arg("-r")
        .arg(&old_root)
        .args([
            "--no-progress",
            "restore",
            "latest",
            "-b",
            &b,
            "--metadata-only",
            "--dry-run",
            "--json",
        ])
        .env("KVAULT_PASSWORD", "kvault kafka fixture txn v2")
        .env_remove("KVAULT_REPOSITORY")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let m = &line(&out, "restore_plan")["metadata"];
    assert_eq!(m["captured"], false, "{m}");
    assert!(
        m["not_restored"].to_string().contains("holds no cluster state"),
        "{m}"
    );
}

/// Regenerates the cluster-state fixture, from a freshly started authz
/// cluster (`scripts/kafka stop authz; scripts/kafka start authz`), only
/// for a new format version, into a new file:
/// `cargo test -- --ignored make_cluster_state_fixture`.
#[test]
#[ignore]
fn make_cluster_state_fixture() {
    let src = env("KVAULT_KAFKA_AUTHZ");
    helper(&["setup", &src, "fx"]);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("kafka-cluster-state-v1");
    for args in [
        vec!["init", "--insecure-fast-kdf"],
        vec!["snapshot", "-b", &src, "--topic", "fx-*", "--group", "none"],
    ] {
        let (code, _, err) = on_fixture(&root, &args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    crate::common::tar_fixture(
        dir.path(),
        "kafka-cluster-state-v1",
        &format!("{FIXTURE_TARBALL}.new"),
    );
}

/// `restore --at T` takes the cluster state of the latest snapshot at or
/// before T: an ACL added after the first snapshot is not in a restore as
/// of a time between the two, and is in one as of now.
#[test]
fn a_restore_at_a_time_takes_the_state_of_the_snapshot_before_it() {
    let (src, tgt) = (env("KVAULT_KAFKA_AUTHZ"), env("KVAULT_KAFKA_AUTHZ_TARGET"));
    let (tag, _dir, repo) = set_up(&src, "cs-at");
    let pattern = format!("{tag}-*");
    let snap = |repo: &Path| {
        let (code, _, err) = kvault(
            repo,
            &["snapshot", "-b", &src, "--topic", &pattern, "--group", "none"],
        );
        assert_eq!(code, 0, "{err}");
    };
    snap(&repo);
    let between = crate::common::clock_after(crate::kafka::now_ms());
    crate::common::clock_after(between);
    helper(&["late-acl", &src, &tag]);
    snap(&repo);
    let planned = |at: &str| {
        let mut args = vec!["restore", "-b", &tgt, "--metadata-only", "--dry-run", "--json"];
        if !at.is_empty() {
            args.extend(["--at", at]);
        }
        let (code, out, err) = kvault(&repo, &args);
        assert_eq!(code, 0, "{err}");
        line(&out, "restore_plan")["metadata"]["acls_created"].to_string()
    };
    let late = format!("ALLOW User:{tag}-late READ topic:{tag}-t from *");
    let then = planned(&between.to_string());
    assert!(then.contains(&format!("User:{tag}-alice")), "{then}");
    assert!(!then.contains(&late), "{then}");
    assert!(planned("").contains(&late));
}
