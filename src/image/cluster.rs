//! A cluster's own state, as a snapshot captures it (format-spec §14,
//! "Cluster state"): ACL bindings, SCRAM users (mechanism and iterations:
//! Kafka never returns credentials), client quotas, dynamic broker
//! configs, and the cluster id and brokers for the report. Stored as one
//! JSON blob under the root's `cluster` node; an unchanged state is the
//! same blob, stored once.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Everything captured of a cluster besides its topics and groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The cluster id.
    pub cluster_id: String,
    /// Broker node ids.
    pub brokers: Vec<i32>,
    /// ACL bindings, sorted.
    pub acls: Vec<AclBinding>,
    /// SCRAM users, by name.
    pub scram_users: Vec<ScramUser>,
    /// Client quotas, sorted by entity.
    pub quotas: Vec<QuotaEntry>,
    /// Dynamic broker configs: the cluster default first, then per broker.
    pub broker_configs: Vec<BrokerConfigs>,
    /// Kinds of state that could not be captured, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<Missing>,
}

/// How much of the cluster's own state a snapshot captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClusterCounts {
    /// ACL bindings.
    pub acls: usize,
    /// SCRAM users.
    pub scram_users: usize,
    /// Client quota entities.
    pub quotas: usize,
    /// Dynamic broker configs (the cluster default's and every broker's).
    pub broker_configs: usize,
}

impl ClusterState {
    /// How many bindings, users, quota entities and broker configs it
    /// holds (the root node's meta, the snapshot's summary).
    pub fn counts(&self) -> ClusterCounts {
        ClusterCounts {
            acls: self.acls.len(),
            scram_users: self.scram_users.len(),
            quotas: self.quotas.len(),
            broker_configs: self.broker_configs.iter().map(|b| b.configs.len()).sum(),
        }
    }
}

impl ClusterState {
    /// The state as `ls` prints it: a summary line, then one line per
    /// binding, user credential, quota entity and broker config.
    pub fn report(&self) -> String {
        let s = self;
        let mut out = format!(
            "cluster {}  brokers {:?}  {} ACL binding(s), {} SCRAM user(s), {} quota entit(ies), {} broker config(s)",
            s.cluster_id,
            s.brokers,
            s.acls.len(),
            s.scram_users.len(),
            s.quotas.len(),
            s.broker_configs.iter().map(|b| b.configs.len()).sum::<usize>()
        );
        for a in &s.acls {
            out.push_str(&format!("\n  acl {}", a.describe()));
        }
        for u in &s.scram_users {
            for c in &u.credentials {
                out.push_str(&format!(
                    "\n  scram user {} {} ({} iterations)",
                    u.name,
                    mechanism_name(c.mechanism),
                    c.iterations
                ));
            }
        }
        for q in &s.quotas {
            let v: Vec<String> = q.values.iter().map(|(k, x)| format!("{k}={x}")).collect();
            out.push_str(&format!("\n  quota {}: {}", q.entity_name(), v.join(" ")));
        }
        for b in &s.broker_configs {
            let who = b.broker.map_or_else(|| "default".to_string(), |i| i.to_string());
            for (k, v) in &b.configs {
                out.push_str(&format!(
                    "\n  broker config {who} {k}={}",
                    v.value.as_deref().unwrap_or("<sensitive, not stored>")
                ));
            }
        }
        for m in &s.missing {
            out.push_str(&format!("\n  not captured: {} ({})", m.kind.name(), m.reason));
        }
        out
    }
}

/// A kind of cluster state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    /// ACL bindings.
    Acls,
    /// SCRAM users.
    ScramUsers,
    /// Client quotas.
    Quotas,
    /// Dynamic broker configs.
    BrokerConfigs,
}

impl StateKind {
    /// Every kind, in capture order.
    pub const ALL: [StateKind; 4] = [
        StateKind::Acls,
        StateKind::ScramUsers,
        StateKind::Quotas,
        StateKind::BrokerConfigs,
    ];

    /// Its name in the stored state and in messages.
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Acls => "acls",
            StateKind::ScramUsers => "scram_users",
            StateKind::Quotas => "quotas",
            StateKind::BrokerConfigs => "broker_configs",
        }
    }

    /// The operation on the cluster resource that describing it takes.
    pub fn needs(self) -> &'static str {
        match self {
            StateKind::Acls | StateKind::ScramUsers => "Describe",
            StateKind::Quotas | StateKind::BrokerConfigs => "DescribeConfigs",
        }
    }
}

/// One kind of state left out of a capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// Which kind.
    pub kind: StateKind,
    /// Why (the broker's error).
    pub reason: String,
}

/// One ACL binding, with Kafka's protocol codes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// Resource type: 2 topic, 3 group, 4 cluster, 5 transactional id,
    /// 6 delegation token, 7 user.
    pub resource_type: i8,
    /// Resource name (`kafka-cluster` for the cluster).
    pub name: String,
    /// Pattern type: 3 literal, 4 prefixed.
    pub pattern_type: i8,
    /// Principal, e.g. `User:alice`.
    pub principal: String,
    /// Host, `*` for any.
    pub host: String,
    /// Operation: 2 all, 3 read, 4 write, 5 create, 6 delete, 7 alter,
    /// 8 describe, 9 cluster action, 10 describe configs, 11 alter
    /// configs, 12 idempotent write, 13 create tokens, 14 describe tokens.
    pub operation: i8,
    /// Permission: 2 deny, 3 allow.
    pub permission: i8,
}

/// Resource type codes.
pub mod resource {
    /// A topic.
    pub const TOPIC: i8 = 2;
    /// A consumer group.
    pub const GROUP: i8 = 3;
    /// The cluster.
    pub const CLUSTER: i8 = 4;
    /// A transactional id.
    pub const TRANSACTIONAL_ID: i8 = 5;
}

/// Pattern type codes.
pub mod pattern {
    /// The name itself.
    pub const LITERAL: i8 = 3;
    /// Every name starting with it.
    pub const PREFIXED: i8 = 4;
}

impl AclBinding {
    /// `ALLOW User:alice READ topic:orders (prefixed) from *`, for reports.
    pub fn describe(&self) -> String {
        let pattern = if self.pattern_type == pattern::PREFIXED {
            " (prefixed)"
        } else {
            ""
        };
        format!(
            "{} {} {} {}:{}{pattern} from {}",
            permission_name(self.permission),
            self.principal,
            operation_name(self.operation),
            resource_name(self.resource_type),
            self.name,
            self.host
        )
    }
}

/// A resource type's name.
pub fn resource_name(code: i8) -> String {
    match code {
        2 => "topic".into(),
        3 => "group".into(),
        4 => "cluster".into(),
        5 => "transactional-id".into(),
        6 => "delegation-token".into(),
        7 => "user".into(),
        c => format!("resource-{c}"),
    }
}

/// An operation's name.
pub fn operation_name(code: i8) -> String {
    const NAMES: [&str; 15] = [
        "UNKNOWN",
        "ANY",
        "ALL",
        "READ",
        "WRITE",
        "CREATE",
        "DELETE",
        "ALTER",
        "DESCRIBE",
        "CLUSTER_ACTION",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
        "IDEMPOTENT_WRITE",
        "CREATE_TOKENS",
        "DESCRIBE_TOKENS",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("OPERATION_{code}"), |s| (*s).to_string())
}

/// A permission's name.
pub fn permission_name(code: i8) -> String {
    match code {
        2 => "DENY".into(),
        3 => "ALLOW".into(),
        c => format!("PERMISSION_{c}"),
    }
}

/// A SCRAM user: its mechanisms and iteration counts, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramUser {
    /// User name.
    pub name: String,
    /// One per mechanism it has.
    pub credentials: Vec<ScramCredential>,
}

/// One SCRAM credential's public part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.
    pub mechanism: i8,
    /// PBKDF2 iterations.
    pub iterations: i32,
}

/// A SCRAM mechanism's name, and back.
pub fn mechanism_name(code: i8) -> &'static str {
    match code {
        1 => "SCRAM-SHA-256",
        2 => "SCRAM-SHA-512",
        _ => "UNKNOWN",
    }
}

/// The code of a SCRAM mechanism name (`SCRAM-SHA-256` or `SCRAM-SHA-512`).
pub fn mechanism_code(name: &str) -> Option<i8> {
    match name.to_ascii_uppercase().as_str() {
        "SCRAM-SHA-256" => Some(1),
        "SCRAM-SHA-512" => Some(2),
        _ => None,
    }
}

/// One quota entity and its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaEntry {
    /// Entity components (`user`, `client-id`, `ip`), each with a name or
    /// `None` for the default entity of that type.
    pub entity: Vec<(String, Option<String>)>,
    /// Quota values, e.g. `producer_byte_rate`.
    pub values: BTreeMap<String, f64>,
}

impl QuotaEntry {
    /// `user=alice, client-id=<default>`, for reports.
    pub fn entity_name(&self) -> String {
        self.entity
            .iter()
            .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Dynamic configs of one broker, or the cluster-wide default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerConfigs {
    /// The broker id; `None` for the cluster-wide default.
    pub broker: Option<i32>,
    /// Config name -> value.
    pub configs: BTreeMap<String, ConfigValue>,
}

/// A dynamic config's value as the broker gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValue {
    /// The value; `None` when the broker hides it (sensitive).
    pub value: Option<String>,
    /// Marked sensitive by the broker (its value is never stored).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// One difference between two cluster states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateChange {
    /// Which kind of state.
    pub kind: StateKind,
    /// `+` added, `-` removed, `M` changed.
    pub change: char,
    /// What (an ACL binding, `user mechanism`, a quota entity, `broker
    /// key`), with the old and new values where they changed.
    pub what: String,
}

impl ClusterState {
    /// What changed from `self` to `later`: ACL bindings and SCRAM
    /// credentials added or removed (or their iterations changed), quota
    /// entities and broker configs added, removed or changed.
    pub fn diff(&self, later: &ClusterState) -> Vec<StateChange> {
        let mut out = Vec::new();
        let mut push = |kind, change, what: String| out.push(StateChange { kind, change, what });
        let (a, b): (BTreeSet<&AclBinding>, BTreeSet<&AclBinding>) =
            (self.acls.iter().collect(), later.acls.iter().collect());
        for x in a.difference(&b) {
            push(StateKind::Acls, '-', x.describe());
        }
        for x in b.difference(&a) {
            push(StateKind::Acls, '+', x.describe());
        }
        let creds = |s: &ClusterState| -> BTreeMap<(String, i8), i32> {
            s.scram_users
                .iter()
                .flat_map(|u| {
                    u.credentials
                        .iter()
                        .map(move |c| ((u.name.clone(), c.mechanism), c.iterations))
                })
                .collect()
        };
        let name = |(u, m): &(String, i8)| format!("{u} {}", mechanism_name(*m));
        for_each_change(&creds(self), &creds(later), |k, x, y| match (x, y) {
            (Some(_), None) => push(StateKind::ScramUsers, '-', name(k)),
            (None, Some(_)) => push(StateKind::ScramUsers, '+', name(k)),
            (Some(x), Some(y)) => push(
                StateKind::ScramUsers,
                'M',
                format!("{}: {x} -> {y} iterations", name(k)),
            ),
            (None, None) => {}
        });
        let quotas = |s: &ClusterState| -> BTreeMap<String, String> {
            s.quotas
                .iter()
                .map(|q| {
                    let v: Vec<String> = q.values.iter().map(|(k, x)| format!("{k}={x}")).collect();
                    (q.entity_name(), v.join(" "))
                })
                .collect()
        };
        for_each_change(&quotas(self), &quotas(later), |k, x, y| {
            push_kv(&mut push, StateKind::Quotas, k, x, y);
        });
        let configs = |s: &ClusterState| -> BTreeMap<String, String> {
            s.broker_configs
                .iter()
                .flat_map(|b| {
                    let who = b.broker.map_or_else(|| "default".to_string(), |i| i.to_string());
                    b.configs.iter().map(move |(k, v)| {
                        (
                            format!("{who} {k}"),
                            v.value.clone().unwrap_or_else(|| "<sensitive>".into()),
                        )
                    })
                })
                .collect()
        };
        for_each_change(&configs(self), &configs(later), |k, x, y| {
            push_kv(&mut push, StateKind::BrokerConfigs, k, x, y);
        });
        out
    }
}

/// Calls `f` with each key whose value differs between `a` and `b`.
fn for_each_change<K: Ord, V: PartialEq>(
    a: &BTreeMap<K, V>,
    b: &BTreeMap<K, V>,
    mut f: impl FnMut(&K, Option<&V>, Option<&V>),
) {
    let keys: BTreeSet<&K> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x != y {
            f(k, x, y);
        }
    }
}

/// A keyed value's change: `k: v`, or `k: old -> new`.
fn push_kv(
    push: &mut impl FnMut(StateKind, char, String),
    kind: StateKind,
    k: &String,
    x: Option<&String>,
    y: Option<&String>,
) {
    match (x, y) {
        (Some(x), None) => push(kind, '-', format!("{k}: {x}")),
        (None, Some(y)) => push(kind, '+', format!("{k}: {y}")),
        (Some(x), Some(y)) => push(kind, 'M', format!("{k}: {x} -> {y}")),
        (None, None) => {}
    }
}

/// Encodes a state as its stored blob (JSON, canonical: fields in order,
/// lists sorted by the capture).
///
/// # Errors
/// Never in practice.
pub fn encode(s: &ClusterState) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(s)
}

/// Decodes a stored blob.
///
/// # Errors
/// Bytes that are not a cluster state.
pub fn decode(b: &[u8]) -> Result<ClusterState, serde_json::Error> {
    serde_json::from_slice(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_names_read_well() {
        let s = ClusterState {
            cluster_id: "c".into(),
            brokers: vec![1],
            acls: vec![AclBinding {
                resource_type: resource::TOPIC,
                name: "orders".into(),
                pattern_type: pattern::PREFIXED,
                principal: "User:alice".into(),
                host: "*".into(),
                operation: 3,
                permission: 3,
            }],
            scram_users: vec![ScramUser {
                name: "alice".into(),
                credentials: vec![ScramCredential {
                    mechanism: 2,
                    iterations: 4096,
                }],
            }],
            quotas: vec![QuotaEntry {
                entity: vec![("user".into(), None)],
                values: BTreeMap::from([("producer_byte_rate".into(), 1024.0)]),
            }],
            broker_configs: vec![BrokerConfigs {
                broker: None,
                configs: BTreeMap::from([(
                    "log.cleaner.threads".into(),
                    ConfigValue {
                        value: Some("2".into()),
                        sensitive: false,
                    },
                )]),
            }],
            missing: Vec::new(),
        };
        assert_eq!(decode(&encode(&s).unwrap()).unwrap(), s);
        assert_eq!(
            s.acls[0].describe(),
            "ALLOW User:alice READ topic:orders (prefixed) from *"
        );
        assert_eq!(s.quotas[0].entity_name(), "user=<default>");
        assert_eq!(mechanism_code("scram-sha-512"), Some(2));
        assert!(decode(b"{").is_err());

        // What changed: an ACL removed, a user's iterations, a quota value,
        // a config added.
        let mut later = s.clone();
        later.acls.clear();
        later.scram_users[0].credentials[0].iterations = 8192;
        later.quotas[0].values.insert("producer_byte_rate".into(), 2048.0);
        later.broker_configs[0].configs.insert(
            "log.retention.ms".into(),
            ConfigValue {
                value: Some("1".into()),
                sensitive: false,
            },
        );
        let d: Vec<String> = s
            .diff(&later)
            .iter()
            .map(|c| format!("{} {} {}", c.change, c.kind.name(), c.what))
            .collect();
        assert_eq!(
            d,
            vec![
                "- acls ALLOW User:alice READ topic:orders (prefixed) from *",
                "M scram_users alice SCRAM-SHA-512: 4096 -> 8192 iterations",
                "M quotas user=<default>: producer_byte_rate=1024 -> producer_byte_rate=2048",
                "+ broker_configs default log.retention.ms: 1",
            ]
        );
        assert!(s.diff(&s).is_empty());
    }
}
