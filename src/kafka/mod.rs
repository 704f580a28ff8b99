//! Kafka clients: configuration shared by every client kvault makes, the
//! cluster's description (admin), and reading partitions (source).
//!
//! kvault reads with `assign` only: it never joins, and never commits for,
//! a consumer group on the source cluster. Group offsets are read with
//! OffsetFetch (a consumer configured with the group's id that neither
//! subscribes nor commits).

#[cfg(feature = "kafka")]
pub mod admin;
pub mod auth;
pub mod batches;
#[cfg(feature = "kafka")]
pub mod cluster_state;
#[cfg(feature = "kafka")]
pub mod exact;
pub mod filter;
pub mod msk;
pub mod partitioner;
pub mod protocol;
#[cfg(feature = "kafka")]
pub mod retry;
#[cfg(feature = "kafka")]
pub mod sink;
#[cfg(feature = "kafka")]
pub mod source;
pub mod token;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result};

/// The Kafka client library linked into this build, for `kvault version`
/// and bug reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientLibrary {
    /// librdkafka's version string (`2.12.1`).
    pub version: String,
    /// librdkafka's `builtin.features`: the compression codecs and SASL
    /// mechanisms it was built with (`sasl_gssapi`, `http`, `oidc`, …).
    pub builtin_features: Vec<String>,
}

/// Describes the linked librdkafka.
#[cfg(feature = "kafka")]
#[must_use]
pub fn client_library() -> ClientLibrary {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let builtin_features = rdkafka::ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .map(|f| f.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    ClientLibrary {
        version,
        builtin_features,
    }
}

/// Default deadline for retrying transient Kafka errors (`--kafka-timeout`).
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(120);

/// Default deadline for the first contact with a cluster: an unreachable
/// or refusing broker is reported within it (README "Exit codes").
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(8);

/// How to reach a cluster: bootstrap servers plus librdkafka properties
/// (`-X key=value` and a properties file, as kcat takes them).
#[derive(Debug, Clone, Default)]
pub struct KafkaOptions {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// librdkafka properties; later entries win.
    pub properties: BTreeMap<String, String>,
    /// `--kafka-timeout`: how long transient errors are retried (default
    /// 2 min); when set, also how long the first contact may take.
    pub timeout: Option<Duration>,
    /// SASL/OAUTHBEARER tokens kvault makes itself (`--kafka-auth
    /// msk-iam`, `--kafka-token-command`); none when librdkafka's
    /// properties say everything.
    pub tokens: Option<std::sync::Arc<auth::Tokens>>,
}

impl KafkaOptions {
    /// Options for a broker list.
    pub fn new(brokers: &str) -> Self {
        KafkaOptions {
            brokers: brokers.to_string(),
            ..Default::default()
        }
    }

    /// Adds `key=value` properties (from `-X`).
    ///
    /// # Errors
    /// A property without `=`.
    pub fn with_property(mut self, kv: &str) -> Result<Self> {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| Error::bad_value("librdkafka property", kv, "key=value"))?;
        self.properties.insert(k.trim().to_string(), v.trim().to_string());
        Ok(self)
    }

    /// Adds the properties of a Java-style properties file (`key=value`
    /// lines, `#` comments).
    ///
    /// # Errors
    /// An unreadable file or a malformed line.
    pub fn with_properties_file(mut self, path: &str) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(format!("reading {path}"), e))?;
        // UTF-8 (what kcat and librdkafka read), not Java's ISO-8859-1.
        java_properties::PropertiesIter::new_with_encoding(std::io::BufReader::new(f), encoding_rs::UTF_8)
            .read_into(|k, v| {
                self.properties.insert(k.trim().to_string(), v.trim().to_string());
            })
            .map_err(|e| Error::bad_value("properties file", path, format!("Java properties ({e})")))?;
        Ok(self)
    }

    /// How long transient errors are retried ([`retry`]): `--kafka-timeout`,
    /// default [`DEFAULT_RETRY_TIMEOUT`].
    pub fn retry_timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_RETRY_TIMEOUT)
    }

    /// How long the first contact with the cluster may take before it is
    /// reported unreachable: `--kafka-timeout` when given, else
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn connect_timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    /// The timeout of one request attempt (at most 30 s, at most the retry
    /// deadline).
    pub fn request_timeout(&self) -> Duration {
        self.retry_timeout().min(Duration::from_secs(30))
    }

    /// A client config with the user's properties applied last.
    #[cfg(feature = "kafka")]
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        self.config_with(&[])
    }

    /// A client config: kvault's base settings, then `defaults` (what a
    /// kind of client needs to perform well), then the user's properties,
    /// which win over both.
    #[cfg(feature = "kafka")]
    pub fn config_with(&self, defaults: &[(&str, &str)]) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        c.set("client.id", "kvault");
        // Fail fast when no broker answers rather than retrying forever.
        c.set("socket.connection.setup.timeout.ms", "10000");
        // librdkafka's own diagnostics go to the `log` facade when the user
        // asks (-v: its warnings and notices, -vv: debug); by default errors
        // reach the user as kvault's one-line message instead.
        c.set(
            "log_level",
            match log::max_level() {
                log::LevelFilter::Off | log::LevelFilter::Error | log::LevelFilter::Warn => "0",
                log::LevelFilter::Info => "6",
                log::LevelFilter::Debug | log::LevelFilter::Trace => "7",
            },
        );
        if log::max_level() == log::LevelFilter::Trace {
            c.set("debug", "broker,security,protocol");
        }
        if self.tokens.is_some() {
            // MSK's IAM listener (port 9098) and any OAUTHBEARER cluster:
            // TLS plus tokens; the user's properties may still say otherwise.
            c.set("security.protocol", "SASL_SSL");
            c.set("sasl.mechanism", "OAUTHBEARER");
        }
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties() {
        let o = KafkaOptions::new("b:1")
            .with_property("security.protocol=SASL_SSL")
            .unwrap();
        assert_eq!(o.properties["security.protocol"], "SASL_SSL");
        assert!(KafkaOptions::new("b").with_property("novalue").is_err());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p");
        std::fs::write(&f, "# c\nsasl.mechanism = PLAIN\nclient.id: me\n").unwrap();
        let o = KafkaOptions::new("b")
            .with_properties_file(f.to_str().unwrap())
            .unwrap();
        assert_eq!(o.properties["sasl.mechanism"], "PLAIN");
        assert_eq!(o.client_config().get("client.id"), Some("me"));
        // Java properties as the Java clients' files have them: `!`
        // comments, escapes, continuation lines, UTF-8.
        std::fs::write(
            &f,
            "! c\nssl.key.password = a\\=b\\\\c\nsasl.jaas.config = one \\\n    two\nclient.id=caf\u{e9}\n",
        )
        .unwrap();
        let o = KafkaOptions::new("b")
            .with_properties_file(f.to_str().unwrap())
            .unwrap();
        assert_eq!(o.properties["ssl.key.password"], "a=b\\c");
        assert_eq!(o.properties["sasl.jaas.config"], "one two");
        assert_eq!(o.properties["client.id"], "caf\u{e9}");
    }
}
