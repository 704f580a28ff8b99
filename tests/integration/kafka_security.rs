//! Secured clusters, as a platform team runs them: the "secure" broker of
//! `scripts/kafka` listens with SASL_SSL (SCRAM-SHA-512), with mutual TLS,
//! with SASL_SSL OAUTHBEARER validating OIDC tokens of a local identity
//! provider (`scripts/oidc-provider`) and with SASL GSSAPI against a local
//! MIT KDC, with certificates made by openssl when it starts. kvault reaches it
//! with librdkafka properties from a file (`--kafka-config`, so the SASL
//! password is never in argv), snapshots and restores byte for byte, and
//! a wrong password or a missing client certificate fails in seconds with
//! one line naming the reason.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::kafka::*;
use crate::kafka_restore::read_partition;

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| {
        panic!("{k} is not set: run `scripts/test`, or `eval \"$(scripts/kafka start secure)\"` first")
    })
}

/// The secure cluster's plaintext listener (to set up topics and read
/// back), its SASL_SSL and mTLS listeners, and its certificate directory.
fn secure() -> (String, String, String, String) {
    (
        env("KVAULT_KAFKA_SECURE"),
        env("KVAULT_KAFKA_SECURE_SASL_SSL"),
        env("KVAULT_KAFKA_SECURE_MTLS"),
        env("KVAULT_KAFKA_SECURE_CERTS"),
    )
}

fn kvault(repo: &Path, args: &[&str]) -> Output {
    crate::cli::run(crate::cli::kvault(repo).args(args))
}

fn ok(repo: &Path, args: &[&str]) -> String {
    let o = kvault(repo, args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn props(dir: &Path, name: &str, lines: &[String]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p.to_str().unwrap().to_string()
}

/// A two-partition topic holding `n` fixture records on the secure
/// cluster (through its plaintext listener), and a fresh repository.
async fn topic_and_repo(plain: &str, prefix: &str, n: usize) -> (String, tempfile::TempDir, PathBuf) {
    let topic = unique(prefix);
    create_topic(plain, &topic, 2, &[("retention.ms", "-1")]).await;
    produce(plain, &topic, &crate::kafka_snapshot::shapes_for_fixture(n, 2));
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(&repo, &["init", "--insecure-fast-kdf"]);
    (topic, dir, repo)
}

/// A refused connection as a user sees it: exit 1 and one line on stderr
/// naming every part of `why`, within 10 s of `t0` when given.
fn fails_in_one_line(o: &Output, t0: Option<Instant>, why: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(why.iter().all(|w| err.contains(w)), "{err}");
    if let Some(t0) = t0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    }
}

/// Both partitions of the restored copy equal the source topic's, byte for
/// byte.
fn assert_restored(plain: &str, topic: &str, restored: &str) {
    for p in 0..2 {
        assert_eq!(
            read_partition(plain, topic, p, None),
            read_partition(plain, restored, p, None),
            "{restored}/{p} byte for byte"
        );
    }
}

#[tokio::test]
async fn sasl_ssl_scram_and_mutual_tls_snapshot_and_restore_byte_for_byte() {
    let (plain, sasl, mtls, certs) = secure();
    let (topic, dir, repo) = topic_and_repo(&plain, "sec", 200).await;
    let scram = props(
        dir.path(),
        "scram.properties",
        &[
            "security.protocol=SASL_SSL".into(),
            "sasl.mechanism=SCRAM-SHA-512".into(),
            "sasl.username=kvault".into(),
            "sasl.password=kvault-secret".into(),
            format!("ssl.ca.location={certs}/ca.pem"),
        ],
    );
    let tls = props(
        dir.path(),
        "mtls.properties",
        &[
            "security.protocol=SSL".into(),
            format!("ssl.ca.location={certs}/ca.pem"),
            format!("ssl.certificate.location={certs}/client.pem"),
            format!("ssl.key.location={certs}/client.key"),
        ],
    );
    // Snapshot over SASL_SSL, restore over mutual TLS.
    let out = ok(
        &repo,
        &[
            "snapshot",
            "-b",
            &sasl,
            "--kafka-config",
            &scram,
            "--topic",
            &topic,
            "--group",
            "none",
            "--json",
        ],
    );
    assert!(out.contains("\"records_read\":200"), "{out}");
    ok(
        &repo,
        &[
            "restore",
            "latest",
            "-b",
            &mtls,
            "--kafka-config",
            &tls,
            "--prefix",
            "tls-",
            "--no-groups",
        ],
    );
    assert_restored(&plain, &topic, &format!("tls-{topic}"));
    // An incremental snapshot over mutual TLS reads nothing new.
    let out = ok(
        &repo,
        &[
            "snapshot",
            "-b",
            &mtls,
            "--kafka-config",
            &tls,
            "--topic",
            &topic,
            "--group",
            "none",
            "--json",
        ],
    );
    assert!(out.contains("\"records_read\":0"), "{out}");

    // A wrong password, a missing client certificate: one line, the reason.
    let bad_scram = props(
        dir.path(),
        "bad-scram.properties",
        &std::fs::read_to_string(&scram)
            .unwrap()
            .lines()
            .map(|l| l.replace("kvault-secret", "wrong"))
            .collect::<Vec<_>>(),
    );
    let no_cert = props(
        dir.path(),
        "no-cert.properties",
        &[
            "security.protocol=SSL".into(),
            format!("ssl.ca.location={certs}/ca.pem"),
        ],
    );
    for (broker, file, why) in [
        (&sasl, &bad_scram, "SASL authentication error"),
        (&mtls, &no_cert, "certificate"),
    ] {
        let t0 = Instant::now();
        let o = kvault(
            &repo,
            &[
                "snapshot",
                "-b",
                broker,
                "--kafka-config",
                file,
                "--topic",
                &topic,
            ],
        );
        fails_in_one_line(&o, Some(t0), &[why]);
    }
}

/// SASL_SSL with OAUTHBEARER/OIDC: librdkafka fetches a token from the
/// local identity provider (client credentials), the broker validates it
/// against the provider's JWKS. Everything comes from a profile of the
/// configuration file, with the client id from the environment and the
/// secret from a file, and topics selected by a regular expression.
/// Needs the `oidc` feature (scripts/test turns it on).
#[cfg(feature = "oidc")]
#[tokio::test]
async fn oauthbearer_oidc_from_a_configuration_profile_snapshots_and_restores() {
    let (plain, _, _, certs) = secure();
    let (oidc, token_url) = (env("KVAULT_KAFKA_SECURE_OIDC"), env("KVAULT_OIDC_TOKEN_URL"));
    let base = unique("oidc");
    let (eu, us, dlq) = (
        format!("{base}-eu"),
        format!("{base}-us"),
        format!("{base}-eu-dlq"),
    );
    for t in [&eu, &us, &dlq] {
        create_topic(&plain, t, 1, &[("retention.ms", "-1")]).await;
        produce(&plain, t, &crate::kafka_snapshot::shapes_for_fixture(50, 1));
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(&repo, &["init", "--insecure-fast-kdf"]);
    let secret = dir.path().join("oidc-secret");
    std::fs::write(&secret, "kvault-oidc-secret\n").unwrap();
    let cfg = dir.path().join("kvault.toml");
    let write_cfg = |secret_file: &Path| {
        std::fs::write(
            &cfg,
            format!(
                r#"brokers = "{plain}"
[profile.oidc]
brokers = "{oidc}"
topic-regex = ['{base}-(eu|us)']
groups = ["none"]
[profile.oidc.kafka]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "OAUTHBEARER"
"sasl.oauthbearer.method" = "oidc"
"sasl.oauthbearer.client.id" = "${{KVAULT_TEST_OIDC_CLIENT}}"
"sasl.oauthbearer.client.secret" = "file:{secret}"
"sasl.oauthbearer.token.endpoint.url" = "{token_url}"
"ssl.ca.location" = "{certs}/ca.pem"
"#,
                secret = secret_file.display()
            ),
        )
        .unwrap();
    };
    write_cfg(&secret);
    let with_profile = |args: &[&str]| {
        crate::cli::run(
            crate::cli::kvault(&repo)
                .env("KVAULT_TEST_OIDC_CLIENT", "kvault")
                .args(["--config", cfg.to_str().unwrap(), "--profile", "oidc"])
                .args(args),
        )
    };
    let o = with_profile(&["snapshot", "--json"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("\"records_read\":100"),
        "the regex selects eu and us, not eu-dlq: {out}"
    );
    let o = with_profile(&["restore", "latest", "--prefix", "oidc-", "--no-groups"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for t in [&eu, &us] {
        assert_eq!(
            read_partition(&plain, t, 0, None),
            read_partition(&plain, &format!("oidc-{t}"), 0, None),
            "{t} byte for byte over OIDC"
        );
    }
    // The provider issued the tokens the broker accepted.
    let issued = std::fs::read_to_string(Path::new(&certs).parent().unwrap().join("oidc.log")).unwrap();
    assert!(issued.contains("issued sub=kvault"), "{issued}");

    // A wrong client secret: one line, the identity provider's refusal, fast.
    let wrong = dir.path().join("wrong-secret");
    std::fs::write(&wrong, "nope\n").unwrap();
    write_cfg(&wrong);
    let t0 = Instant::now();
    let o = with_profile(&["snapshot"]);
    fails_in_one_line(&o, Some(t0), &["OAUTHBEARER token", "invalid_client"]);
    // An unset variable the file names: exit 2, naming it.
    let o = crate::cli::run(crate::cli::kvault(&repo).args([
        "--config",
        cfg.to_str().unwrap(),
        "--profile",
        "oidc",
        "snapshots",
    ]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("KVAULT_TEST_OIDC_CLIENT is not set"), "{err}");
}

/// SASL/OAUTHBEARER with tokens kvault makes itself, through the same
/// refresh path MSK IAM uses: `--kafka-token-command` fetches a JWT from
/// the identity provider, every client (the admin client too, which rdkafka
/// never polls for tokens) gets it, and a snapshot and a restore go through
/// byte for byte. `--kafka-auth msk-iam` makes and presents an MSK IAM
/// token from AWS credentials in the environment; a broker that is not MSK
/// refuses it, in one line and in seconds.
#[tokio::test]
async fn tokens_from_a_command_and_msk_iam_go_through_the_oauthbearer_callback() {
    let (plain, _, _, certs) = secure();
    let (oidc, token_url) = (env("KVAULT_KAFKA_SECURE_OIDC"), env("KVAULT_OIDC_TOKEN_URL"));
    let (topic, _dir, repo) = topic_and_repo(&plain, "tokcmd", 80).await;
    let cmd = format!(
        "curl -fsS -u kvault:kvault-oidc-secret -d grant_type=client_credentials {token_url} \
         | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
    );
    let ca = format!("ssl.ca.location={certs}/ca.pem");
    let out = ok(
        &repo,
        &[
            "snapshot",
            "-b",
            &oidc,
            "-X",
            &ca,
            "--kafka-token-command",
            &cmd,
            "--topic",
            &topic,
            "--group",
            "none",
            "--json",
        ],
    );
    assert!(out.contains("\"records_read\":80"), "{out}");
    // Restore creates topics (admin client) and produces (producer).
    ok(
        &repo,
        &[
            "restore",
            "latest",
            "-b",
            &oidc,
            "-X",
            &ca,
            "--kafka-token-command",
            &cmd,
            "--prefix",
            "tok-",
            "--no-groups",
        ],
    );
    assert_restored(&plain, &topic, &format!("tok-{topic}"));
    // A failing command: its own words, one line, exit 1.
    let o = kvault(
        &repo,
        &[
            "snapshot",
            "-b",
            &oidc,
            "-X",
            &ca,
            "--kafka-token-command",
            "echo no token for you >&2; exit 7",
        ],
    );
    fails_in_one_line(&o, None, &["no token for you"]);

    // MSK IAM: AWS credentials from the environment; this broker is not
    // MSK, so it refuses the (well-formed) token.
    let t0 = Instant::now();
    let o = crate::cli::run(
        crate::cli::kvault(&repo)
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args([
                "snapshot",
                "-b",
                &oidc,
                "-X",
                &ca,
                "--kafka-auth",
                "msk-iam",
                "--msk-region",
                "eu-west-1",
            ]),
    );
    fails_in_one_line(&o, Some(t0), &["SASL authentication error"]);
    // Without a region: exit 2, saying what is missing.
    let o =
        crate::cli::run(crate::cli::kvault(&repo).args(["snapshot", "-b", &oidc, "--kafka-auth", "msk-iam"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--msk-region"), "{err}");
}

/// Kerberos (SASL GSSAPI): the secure broker's KERBEROS listener
/// authenticates against a local MIT KDC; librdkafka gets its ticket with
/// `kinit` from the client keytab. Snapshot and restore byte for byte; a
/// principal the keytab does not hold fails in one line, in seconds.
/// Needs the `gssapi` feature (scripts/test turns it on).
#[cfg(feature = "gssapi")]
#[tokio::test]
async fn kerberos_gssapi_snapshot_and_restore_byte_for_byte() {
    let (plain, _, _, _) = secure();
    let (krb, kdir) = (env("KVAULT_KAFKA_SECURE_KERBEROS"), env("KVAULT_KERBEROS_DIR"));
    let (topic, dir, repo) = topic_and_repo(&plain, "krb", 60).await;
    let gssapi = |principal: &str| {
        props(
            dir.path(),
            &format!("{}.properties", principal.replace('@', "_")),
            &[
                "security.protocol=SASL_PLAINTEXT".into(),
                "sasl.mechanism=GSSAPI".into(),
                "sasl.kerberos.service.name=kafka".into(),
                format!("sasl.kerberos.keytab={kdir}/client.keytab"),
                format!("sasl.kerberos.principal={principal}"),
            ],
        )
    };
    let good = gssapi("kvault@KVAULT.TEST");
    // The realm's krb5.conf, and a ticket cache of this test's own.
    let cache = format!("FILE:{}", dir.path().join("krb5cc").display());
    let run = |args: &[&str]| {
        crate::cli::run(
            crate::cli::kvault(&repo)
                .env("KRB5_CONFIG", format!("{kdir}/krb5.conf"))
                .env("KRB5CCNAME", &cache)
                .args(args),
        )
    };
    let o = run(&[
        "snapshot",
        "-b",
        &krb,
        "--kafka-config",
        &good,
        "--topic",
        &topic,
        "--group",
        "none",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"records_read\":60"));
    let o = run(&[
        "restore",
        "latest",
        "-b",
        &krb,
        "--kafka-config",
        &good,
        "--prefix",
        "krb-",
        "--no-groups",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_restored(&plain, &topic, &format!("krb-{topic}"));
    let bad = gssapi("nobody@KVAULT.TEST");
    let t0 = Instant::now();
    let o = crate::cli::run(
        crate::cli::kvault(&repo)
            .env("KRB5_CONFIG", format!("{kdir}/krb5.conf"))
            .env(
                "KRB5CCNAME",
                format!("FILE:{}", dir.path().join("krb5cc-bad").display()),
            )
            .args(["snapshot", "-b", &krb, "--kafka-config", &bad, "--topic", &topic]),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // kinit (run by librdkafka) says why on its own stderr; kvault's one
    // line comes last and names the missing credentials.
    assert!(err.contains("no suitable keys for nobody@KVAULT.TEST"), "{err}");
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("kvault: cannot reach Kafka") && last.contains("No Kerberos credentials"),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}
