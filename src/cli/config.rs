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
//! # [gcs] and [azure] alike: a section's keys are its flags without the
//! # prefix (--s3-role-arn is [s3] role-arn, --gcs-endpoint [gcs] endpoint)
//!
//! [kafka]            # librdkafka properties, as -X takes them
//! "security.protocol" = "SASL_SSL"
//! "sasl.mechanism" = "SCRAM-SHA-512"
//! "sasl.username" = "kvault"
//! "sasl.password" = "${KAFKA_PASSWORD}"      # from the environment
//!
//! [profile.payments]  # --profile payments: overrides the keys above
//! brokers = "pay-1:9093"
//! repository = "s3://backups/payments"
//! topics = ["payments.*"]                     # snapshot's --topic
//! topic-regex = ['payments\.(eu|us)\..*']   # snapshot's --topic-regex
//! exclude = ["*.dlq"]
//! groups = ["pay-*"]
//! [profile.payments.kafka]
//! "sasl.password" = "file:/run/secrets/payments-kafka"   # a file's content
//! [profile.payments.keep]                     # forget's --keep-* policy
//! daily = 7
//! weekly = 4
//! within = "2d"
//! ```
//!
//! Found at `--config FILE`, else `KVAULT_CONFIG`, else
//! `$XDG_CONFIG_HOME/kvault/kvault.toml` (`~/.config/kvault/kvault.toml`)
//! when it exists; `--profile NAME` / `KVAULT_PROFILE` picks a profile.
//! Precedence: flags, then environment, then the profile, then the file's
//! top level (their values become the flags' defaults); `-X` wins over
//! `[kafka]`. In every string value `${NAME}` is the environment variable
//! NAME (unset: an error naming it; `$$` is a literal `$`), and a value
//! `file:PATH` is that file's content without its trailing newline. An
//! unknown key or profile is an error naming it.

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
    ("retry-lock", "retry_lock"),
];
/// Keys of the Kafka commands' flags.
const KAFKA_FLAGS: &[(&str, &str)] = &[
    ("brokers", "brokers"),
    ("kafka-config", "kafka_config"),
    ("kafka-timeout", "kafka_timeout"),
    ("kafka-auth", "kafka_auth"),
    ("msk-region", "msk_region"),
    ("kafka-token-command", "kafka_token_command"),
];
/// Sections of the object-store services: `[s3] KEY` is the flag
/// `--s3-KEY` (`cli::StorageArgs`), so a new flag is a new key.
const STORAGE: &[&str] = &["s3", "gcs", "azure"];

/// The flag id a storage section's key stands for, if there is one.
fn storage_flag(cmd: &clap::Command, section: &str, key: &str) -> Option<String> {
    let id = format!("{section}_{}", key.replace('-', "_"));
    cmd.get_arguments()
        .any(|a| a.get_id() == id.as_str())
        .then_some(id)
}

/// Snapshot's selection keys (arrays or strings).
const SELECTION: &[(&str, &str)] = &[
    ("topics", "topics"),
    ("topic-regex", "topic_regex"),
    ("exclude", "exclude"),
    ("groups", "groups"),
];
/// `[keep]` keys: forget's policy.
const KEEP: &[(&str, &str)] = &[
    ("last", "keep_last"),
    ("hourly", "keep_hourly"),
    ("daily", "keep_daily"),
    ("weekly", "keep_weekly"),
    ("monthly", "keep_monthly"),
    ("yearly", "keep_yearly"),
    ("within", "keep_within"),
    ("tags", "keep_tags"),
];
/// Keys of restore's own flags.
const RESTORE_FLAGS: &[(&str, &str)] = &[("scram-credentials", "scram_credentials")];
/// Commands that take the Kafka flags.
const KAFKA_COMMANDS: &[&str] = &["snapshot", "restore"];

/// The value of `--NAME VALUE` / `--NAME=VALUE` in the raw arguments.
fn flag(args: &[String], name: &str) -> Option<String> {
    let long = format!("--{name}");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == long {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(&long).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}

/// The path given by `--config`, `KVAULT_CONFIG`, or the default when it
/// exists.
fn path(args: &[String]) -> Option<(String, bool)> {
    if let Some(p) = flag(args, "config") {
        return Some((p, true));
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
    // kvault.toml; config.toml is still read where an older setup has it.
    ["kvault.toml", "config.toml"]
        .iter()
        .map(|f| format!("{base}/kvault/{f}"))
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| (p, false))
}

/// `${NAME}` from the environment (`$$` is `$`); a whole value `file:PATH`
/// is the file's content without its trailing newline.
fn expand(raw: &str, key: &str) -> Result<String> {
    if let Some(f) = raw.strip_prefix("file:") {
        let body = std::fs::read_to_string(f).with_context(|| format!("{key}: reading {f}"))?;
        return Ok(body.trim_end_matches(['\n', '\r']).to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let Some(end) = r.find('}') else {
                bail!("{key}: unclosed ${{ in {raw:?}");
            };
            let name = &r[..end];
            let v = std::env::var(name)
                .map_err(|_| anyhow::anyhow!("{key}: environment variable {name} is not set"))?;
            out.push_str(&v);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn text(v: &toml::Value, key: &str) -> Result<String> {
    match v {
        toml::Value::String(s) => expand(s, key),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => bail!("{key}: expected a string"),
    }
}

/// A string or an array of strings.
fn texts(v: &toml::Value, key: &str) -> Result<Vec<String>> {
    match v {
        toml::Value::Array(a) => a.iter().map(|x| text(x, key)).collect(),
        other => Ok(vec![text(other, key)?]),
    }
}

/// The file's top level with the chosen profile laid over it: a profile's
/// key replaces the top-level one; its `[kafka]`, `[s3]` and `[keep]`
/// entries replace those of the same name.
fn effective(mut table: toml::Table, profile: Option<&str>, path: &str) -> Result<toml::Table> {
    let profiles = match table.remove("profile") {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) => t,
        Some(_) => bail!("configuration file {path}: [profile.NAME] must be tables"),
    };
    let Some(name) = profile else {
        return Ok(table);
    };
    let Some(p) = profiles.get(name) else {
        let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
        bail!(
            "configuration file {path}: no profile {name:?} (profiles: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    let toml::Value::Table(p) = p else {
        bail!("configuration file {path}: profile.{name} must be a table");
    };
    for (k, v) in p {
        match (table.get_mut(k), v) {
            (Some(toml::Value::Table(base)), toml::Value::Table(over)) => {
                base.extend(over.iter().map(|(a, b)| (a.clone(), b.clone())));
            }
            _ => {
                table.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(table)
}

/// Applies the configuration file (if any) to the command definition: its
/// values become defaults of the flags they name.
///
/// # Errors
/// An unreadable or malformed file, an unknown key or profile, an unset
/// environment variable or unreadable `file:` a value names.
pub fn apply(mut cmd: clap::Command, args: &[String]) -> Result<clap::Command> {
    let profile =
        flag(args, "profile").or_else(|| std::env::var("KVAULT_PROFILE").ok().filter(|p| !p.is_empty()));
    let Some((path, explicit)) = path(args) else {
        if let Some(p) = profile {
            bail!(
                "--profile {p}: no configuration file (--config FILE, KVAULT_CONFIG or ~/.config/kvault/kvault.toml)"
            );
        }
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
    let table = effective(table, profile.as_deref(), &path)?;
    let mut defaults: Vec<(String, String)> = Vec::new();
    let mut kafka_flags: Vec<(&'static str, String)> = Vec::new();
    let mut restore_flags: Vec<(&'static str, String)> = Vec::new();
    let mut selection: Vec<(&'static str, Vec<String>)> = Vec::new();
    let mut keep: Vec<(&'static str, Vec<String>)> = Vec::new();
    let mut kafka = Vec::new();
    let in_file = |e: anyhow::Error| e.context(format!("configuration file {path}"));
    for (k, v) in &table {
        if let Some((_, id)) = GLOBAL.iter().find(|(key, _)| key == k) {
            defaults.push((id.to_string(), text(v, k).map_err(in_file)?));
        } else if let Some((_, id)) = KAFKA_FLAGS.iter().find(|(key, _)| key == k) {
            kafka_flags.push((id, text(v, k).map_err(in_file)?));
        } else if let Some((_, id)) = RESTORE_FLAGS.iter().find(|(key, _)| key == k) {
            restore_flags.push((id, text(v, k).map_err(in_file)?));
        } else if let Some((_, id)) = SELECTION.iter().find(|(key, _)| key == k) {
            selection.push((id, texts(v, k).map_err(in_file)?));
        } else if STORAGE.contains(&k.as_str()) || k == "kafka" || k == "keep" {
            let toml::Value::Table(t) = v else {
                bail!("configuration file {path}: [{k}] must be a table");
            };
            for (sk, sv) in t {
                let key = format!("{k}.{sk}");
                if k == "kafka" {
                    kafka.push((sk.clone(), text(sv, &key).map_err(in_file)?));
                } else if let Some(id) = storage_flag(&cmd, k, sk) {
                    defaults.push((id, text(sv, &key).map_err(in_file)?));
                } else if let Some((_, id)) = KEEP.iter().find(|(key, _)| key == sk).filter(|_| k == "keep") {
                    keep.push((id, texts(sv, &key).map_err(in_file)?));
                } else {
                    bail!("configuration file {path}: unknown key {key}");
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
    for (id, v) in restore_flags {
        cmd = cmd.mut_subcommand("restore", |s| s.mut_arg(id, |a| a.default_value(v)));
    }
    for (id, v) in selection {
        cmd = cmd.mut_subcommand("snapshot", |s| s.mut_arg(id, |a| a.default_values(v)));
    }
    for (id, v) in keep {
        cmd = cmd.mut_subcommand("forget", |s| s.mut_arg(id, |a| a.default_values(v)));
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expand_environment_variables_and_files() {
        let path = std::env::var("PATH").unwrap();
        assert_eq!(expand("a-${PATH}-b", "k").unwrap(), format!("a-{path}-b"));
        assert_eq!(expand("cost $$5 $x", "k").unwrap(), "cost $5 $x");
        let e = expand("${KVAULT_CONFIG_TEST_UNSET}", "kafka.sasl.password").unwrap_err();
        assert_eq!(
            e.to_string(),
            "kafka.sasl.password: environment variable KVAULT_CONFIG_TEST_UNSET is not set"
        );
        assert!(expand("${OPEN", "k").is_err());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "from-a-file\n").unwrap();
        assert_eq!(
            expand(&format!("file:{}", f.display()), "k").unwrap(),
            "from-a-file"
        );
        assert!(expand("file:/nonexistent/kvault", "k").is_err());
    }

    #[test]
    fn a_storage_section_takes_its_flags_without_the_prefix() {
        let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
        for (section, key, id) in [
            ("s3", "endpoint", "s3_endpoint"),
            ("s3", "secret-access-key-file", "s3_secret_access_key_file"),
            ("s3", "sse-kms-key-id", "s3_sse_kms_key_id"),
            ("gcs", "credential-path", "gcs_credential_path"),
            ("azure", "account-key-file", "azure_account_key_file"),
        ] {
            assert_eq!(storage_flag(&cmd, section, key).as_deref(), Some(id));
        }
        assert_eq!(storage_flag(&cmd, "s3", "secret-access-key"), None);
        assert_eq!(storage_flag(&cmd, "gcs", "region"), None);
    }

    /// `scram-credentials` is restore's `--scram-credentials`.
    #[test]
    fn the_scram_credentials_key_defaults_restores_flag() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("kvault.toml");
        std::fs::write(&f, "scram-credentials = \"/etc/kvault/scram\"\n").unwrap();
        let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
        let args = ["kvault".to_string(), "--config".into(), f.display().to_string()];
        let cmd = apply(cmd, &args).unwrap();
        let restore = cmd.find_subcommand("restore").unwrap();
        let a = restore
            .get_arguments()
            .find(|a| a.get_id() == "scram_credentials")
            .unwrap();
        assert_eq!(
            a.get_default_values().first().and_then(|v| v.to_str()),
            Some("/etc/kvault/scram")
        );
    }

    #[test]
    fn a_profile_overrides_the_top_level_key_by_key() {
        let t: toml::Table = r#"
            brokers = "top:9092"
            repository = "/top"
            [kafka]
            "client.id" = "top"
            "sasl.username" = "u"
            [profile.p]
            brokers = "p:9092"
            [profile.p.kafka]
            "client.id" = "p"
        "#
        .parse()
        .unwrap();
        let e = effective(t.clone(), Some("p"), "f").unwrap();
        assert_eq!(e["brokers"].as_str(), Some("p:9092"));
        assert_eq!(e["repository"].as_str(), Some("/top"));
        assert_eq!(e["kafka"]["client.id"].as_str(), Some("p"));
        assert_eq!(e["kafka"]["sasl.username"].as_str(), Some("u"));
        assert!(!effective(t.clone(), None, "f").unwrap().contains_key("profile"));
        let err = effective(t, Some("q"), "f").unwrap_err().to_string();
        assert!(err.contains("no profile \"q\" (profiles: p)"), "{err}");
    }
}
