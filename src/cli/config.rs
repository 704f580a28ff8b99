//! The configuration file: the settings a nightly job repeats on every run,
//! in one TOML file, so the command line stays short and no secret is in
//! argv.
//!
//! ```toml
//! repository = "s3://backups/kafka"
//! password-file = "/etc/kvault/password"
//! brokers = "kafka-1:9093,kafka-2:9093"
//! kafka-timeout = "2m"
//! metrics-file = "/var/lib/node_exporter/textfile/kvault.prom"
//!
//! [s3]
//! endpoint = "https://s3.eu-west-1.amazonaws.com"
//! region = "eu-west-1"
//! profile = "backup"
//!
//! [kafka]            # librdkafka properties, as -X takes them
//! "security.protocol" = "SASL_SSL"
//! "sasl.mechanism" = "SCRAM-SHA-512"
//! "sasl.username" = "kvault"
//! "sasl.password" = "…"
//! ```
//!
//! Found at `--config FILE`, else `KVAULT_CONFIG`, else
//! `$XDG_CONFIG_HOME/kvault/config.toml` (`~/.config/kvault/config.toml`)
//! when it exists. Precedence: flags, then environment, then the file (its
//! values become the flags' defaults); `-X` wins over `[kafka]`. An unknown
//! key is an error naming it.

use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// `[kafka]` properties of the file, applied before `-X`.
static KAFKA: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// The `[kafka]` properties of the configuration file.
pub fn kafka_properties() -> &'static [(String, String)] {
    KAFKA.get().map_or(&[], Vec::as_slice)
}

/// Top-level keys: (key, the global flag it defaults).
const GLOBAL: &[(&str, &str)] = &[
    ("repository", "repo"),
    ("password-file", "password_file"),
    ("password-command", "password_command"),
    ("metrics-file", "metrics_file"),
    ("metrics-push", "metrics_push"),
];
/// Keys of the Kafka commands' flags.
const KAFKA_FLAGS: &[(&str, &str)] = &[
    ("brokers", "brokers"),
    ("kafka-config", "kafka_config"),
    ("kafka-timeout", "kafka_timeout"),
];
/// `[s3]` keys.
const S3: &[(&str, &str)] = &[
    ("endpoint", "s3_endpoint"),
    ("region", "s3_region"),
    ("profile", "s3_profile"),
    ("role-arn", "s3_role_arn"),
    ("storage-class", "s3_storage_class"),
    ("sse-kms-key-id", "s3_sse_kms_key_id"),
    ("access-key-id", "s3_access_key_id"),
    ("secret-access-key-file", "s3_secret_access_key_file"),
];
/// Commands that take the Kafka flags.
const KAFKA_COMMANDS: &[&str] = &["snapshot", "restore"];

/// The path given by `--config`, `KVAULT_CONFIG`, or the default when it
/// exists.
fn path(args: &[String]) -> Option<(String, bool)> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(|p| (p.clone(), true));
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some((p.to_string(), true));
        }
    }
    if let Ok(p) = std::env::var("KVAULT_CONFIG") {
        if !p.is_empty() {
            return Some((p, true));
        }
    }
    let base = std::env::var("XDG_CONFIG_HOME")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.config")))?;
    let p = format!("{base}/kvault/config.toml");
    std::path::Path::new(&p).exists().then_some((p, false))
}

fn text(v: &toml::Value, key: &str) -> Result<String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => bail!("{key}: expected a string"),
    }
}

/// Applies the configuration file (if any) to the command definition: its
/// values become defaults of the flags they name.
///
/// # Errors
/// An unreadable or malformed file, an unknown key.
pub fn apply(mut cmd: clap::Command, args: &[String]) -> Result<clap::Command> {
    let Some((path, explicit)) = path(args) else {
        return Ok(cmd);
    };
    let body = match std::fs::read_to_string(&path) {
        Ok(b) => b,
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => return Ok(cmd),
        Err(e) => return Err(e).with_context(|| format!("reading the configuration file {path}")),
    };
    let table: toml::Table = body
        .parse()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("configuration file {path}: {}", e.message()))?;
    let mut defaults: Vec<(&'static str, String)> = Vec::new();
    let mut kafka_flags: Vec<(&'static str, String)> = Vec::new();
    let mut kafka = Vec::new();
    for (k, v) in &table {
        if let Some((_, id)) = GLOBAL.iter().find(|(key, _)| key == k) {
            defaults.push((id, text(v, k)?));
        } else if let Some((_, id)) = KAFKA_FLAGS.iter().find(|(key, _)| key == k) {
            kafka_flags.push((id, text(v, k)?));
        } else if k == "s3" || k == "kafka" {
            let toml::Value::Table(t) = v else {
                bail!("configuration file {path}: [{k}] must be a table");
            };
            for (sk, sv) in t {
                if k == "kafka" {
                    kafka.push((sk.clone(), text(sv, sk)?));
                } else if let Some((_, id)) = S3.iter().find(|(key, _)| key == sk) {
                    defaults.push((id, text(sv, sk)?));
                } else {
                    bail!("configuration file {path}: unknown key s3.{sk}");
                }
            }
        } else {
            bail!("configuration file {path}: unknown key {k}");
        }
    }
    let _ = KAFKA.set(kafka);
    for (id, v) in defaults {
        cmd = cmd.mut_arg(id, |a| a.default_value(v).required(false));
    }
    for name in KAFKA_COMMANDS {
        for (id, v) in &kafka_flags {
            let v = v.clone();
            cmd = cmd.mut_subcommand(*name, |s| s.mut_arg(*id, |a| a.default_value(v).required(false)));
        }
    }
    Ok(cmd)
}
