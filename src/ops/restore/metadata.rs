//! Restoring the cluster's own state (format-spec §14 "Cluster state"):
//! ACL bindings, SCRAM users, client quotas and dynamic broker configs,
//! planned as a value against what the target holds, then applied before
//! any record is written.
//!
//! - ACLs: resource names of topics follow `--rename`/`--prefix` (a
//!   prefixed pattern takes the prefix), principals follow
//!   `--acl-principal-map`; a binding the target has is left alone.
//! - SCRAM users: re-created only with a password from
//!   `--scram-credentials` (Kafka never returns credentials), with the
//!   source's iteration count; users without one are listed.
//! - Quotas and broker configs: a target entry with another value is a
//!   conflict, reported and kept (`--if-exists keep`) or replaced
//!   (`--if-exists replace`); sensitive broker configs (hidden by the
//!   source broker) are listed, never set.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::plan::{IfExists, MetadataResult, RestoreOptions, ScramPassword, target_name};
use crate::error::{Error, Result};
use crate::image::cluster::{
    AclBinding, ClusterState, QuotaEntry, ScramUser, mechanism_code, mechanism_name, pattern, resource,
};
use crate::kafka::admin::Cluster;
use crate::kafka::protocol::{ProtoError, ScramUpsert, code, salted_password};

/// Parses a credentials file: one `USER MECHANISM PASSWORD` a line
/// (blank lines and `#` comments skipped; the password is the rest of the
/// line).
///
/// # Errors
/// A line that is not three fields, or an unknown mechanism (named by
/// line number, never with its password).
pub fn parse_scram_credentials(text: &str) -> Result<Vec<ScramPassword>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.splitn(3, char::is_whitespace);
        let (Some(user), Some(mech), Some(password)) = (it.next(), it.next(), it.next()) else {
            return Err(Error::bad_value(
                "SCRAM credentials line",
                format!("line {}", i + 1),
                "USER MECHANISM PASSWORD",
            ));
        };
        let mechanism = mechanism_code(mech)
            .ok_or_else(|| Error::bad_value("SCRAM mechanism", mech, "SCRAM-SHA-256 or SCRAM-SHA-512"))?;
        out.push(ScramPassword {
            user: user.into(),
            mechanism,
            password: password.trim_start().into(),
        });
    }
    Ok(out)
}

/// The changes a restore makes to the target's cluster state.
#[derive(Debug, Default)]
pub(super) struct MetadataPlan {
    acls: Vec<AclBinding>,
    users: Vec<ScramUpsert>,
    quotas: Vec<(QuotaEntry, Vec<String>)>,
    configs: Vec<(Option<i32>, BTreeMap<String, String>)>,
    /// What is reported.
    pub(super) res: MetadataResult,
}

/// Plans the changes: `source` as captured, `target` as it is now.
pub(super) fn plan(
    source: &ClusterState,
    target: &ClusterState,
    opts: &RestoreOptions,
) -> Result<MetadataPlan> {
    let mut p = MetadataPlan::default();
    p.res.captured = true;
    for m in &source.missing {
        p.res.not_restored.push(format!(
            "{}: not captured by the snapshot ({})",
            m.kind.name(),
            m.reason
        ));
    }
    plan_acls(source, target, opts, &mut p);
    plan_users(source, target, opts, &mut p)?;
    plan_quotas(source, target, opts, &mut p);
    plan_configs(source, target, opts, &mut p);
    Ok(p)
}

/// The cluster's own state verified against the snapshot's, as a restore
/// would set it (principal map, topic renames): what the target lacks or
/// holds otherwise. Extra entries on the target are not differences.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterCheck {
    /// ACL bindings the target lacks.
    pub acls_missing: Vec<String>,
    /// SCRAM users (`user mechanism`) the target lacks (their passwords
    /// cannot be compared: Kafka returns none).
    pub users_missing: Vec<String>,
    /// Client quotas the target lacks or sets otherwise.
    pub quotas_differing: Vec<String>,
    /// Dynamic broker configs the target lacks or sets otherwise.
    pub configs_differing: Vec<String>,
    /// What could not be compared (sensitive configs, absent brokers,
    /// kinds the snapshot lacks).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_compared: Vec<String>,
    /// Whether the target holds all of it.
    pub equal: bool,
}

/// What `target` lacks or holds otherwise of `source` as a restore with
/// `opts` would set it (`verify`): the restore's plan, with every entry
/// that differs to be replaced, is the list of differences. SCRAM users
/// are compared by name and mechanism only.
///
/// # Errors
/// Never in practice (the plan needs no password).
pub(super) fn differences(
    source: &ClusterState,
    target: &ClusterState,
    opts: &RestoreOptions,
) -> Result<ClusterCheck> {
    let opts = RestoreOptions {
        if_exists: IfExists::Replace,
        scram_credentials: Vec::new(),
        ..opts.clone()
    };
    let p = plan(source, target, &opts)?;
    let users_missing: Vec<String> = source
        .scram_users
        .iter()
        .flat_map(|u| {
            u.credentials
                .iter()
                .filter(|c| {
                    !target
                        .scram_users
                        .iter()
                        .any(|t| t.name == u.name && t.credentials.iter().any(|x| x.mechanism == c.mechanism))
                })
                .map(|c| format!("{} {}", u.name, mechanism_name(c.mechanism)))
        })
        .collect();
    let mut not_compared = p.res.not_restored;
    not_compared.extend(target.missing.iter().map(|m| {
        format!(
            "{}: the target refused to describe them ({})",
            m.kind.name(),
            m.reason
        )
    }));
    let r = ClusterCheck {
        equal: p.res.acls_created.is_empty()
            && users_missing.is_empty()
            && p.res.quotas_set.is_empty()
            && p.res.configs_set.is_empty(),
        acls_missing: p.res.acls_created,
        users_missing,
        quotas_differing: p.res.quotas_set,
        configs_differing: p.res.configs_set,
        not_compared,
    };
    Ok(r)
}

/// A principal as `--acl-principal-map` says.
fn principal(opts: &RestoreOptions, p: &str) -> String {
    opts.acl_principal_map
        .iter()
        .find(|(f, _)| f == p)
        .map_or_else(|| p.to_string(), |(_, t)| t.clone())
}

fn plan_acls(source: &ClusterState, target: &ClusterState, opts: &RestoreOptions, p: &mut MetadataPlan) {
    let have: BTreeSet<&AclBinding> = target.acls.iter().collect();
    let mut want: BTreeSet<AclBinding> = BTreeSet::new();
    for a in &source.acls {
        let mut a = a.clone();
        a.principal = principal(opts, &a.principal);
        if a.resource_type == resource::TOPIC && a.name != "*" {
            a.name = if a.pattern_type == pattern::PREFIXED {
                format!("{}{}", opts.prefix, a.name)
            } else {
                target_name(opts, &a.name)
            };
        }
        want.insert(a);
    }
    for a in want {
        if have.contains(&a) {
            p.res.acls_present += 1;
        } else {
            p.res.acls_created.push(a.describe());
            p.acls.push(a);
        }
    }
}

fn plan_users(
    source: &ClusterState,
    target: &ClusterState,
    opts: &RestoreOptions,
    p: &mut MetadataPlan,
) -> Result<()> {
    let existing = |u: &str, mech: i8| {
        target
            .scram_users
            .iter()
            .any(|t| t.name == u && t.credentials.iter().any(|c| c.mechanism == mech))
    };
    for ScramUser { name, credentials } in &source.scram_users {
        for c in credentials {
            let what = format!("{name} {}", mechanism_name(c.mechanism));
            let Some(pw) = opts
                .scram_credentials
                .iter()
                .find(|s| &s.user == name && s.mechanism == c.mechanism)
            else {
                p.res
                    .users_not_created
                    .push(format!("{what}: no password given (--scram-credentials)"));
                continue;
            };
            if existing(name, c.mechanism) {
                p.res
                    .conflicts
                    .push(format!("SCRAM user {what} exists on the target"));
                if opts.if_exists == IfExists::Keep {
                    continue;
                }
            }
            let mut salt = vec![0u8; 32];
            getrandom::fill(&mut salt)
                .map_err(|e| Error::bug(format!("no randomness for a SCRAM salt: {e}")))?;
            let salted = salted_password(c.mechanism, &pw.password, &salt, c.iterations)
                .ok_or_else(|| Error::bug(format!("{what}: mechanism or iterations")))?;
            p.res.users_created.push(what);
            p.users.push(ScramUpsert {
                name: name.clone(),
                mechanism: c.mechanism,
                iterations: c.iterations,
                salt,
                salted_password: salted,
            });
        }
    }
    Ok(())
}

fn plan_quotas(source: &ClusterState, target: &ClusterState, opts: &RestoreOptions, p: &mut MetadataPlan) {
    for q in &source.quotas {
        let mut q = q.clone();
        for (t, n) in &mut q.entity {
            if let (true, Some(u)) = (t == "user", n.as_mut()) {
                let mapped = principal(opts, &format!("User:{u}"));
                *u = mapped.strip_prefix("User:").unwrap_or(&mapped).to_string();
            }
        }
        q.entity.sort();
        let name = q.entity_name();
        let remove = match target.quotas.iter().find(|t| t.entity == q.entity) {
            Some(t) if t.values == q.values => continue,
            Some(t) => {
                p.res
                    .conflicts
                    .push(format!("quota {name}: the target has {}", values_text(&t.values)));
                if opts.if_exists == IfExists::Keep {
                    continue;
                }
                t.values
                    .keys()
                    .filter(|k| !q.values.contains_key(*k))
                    .cloned()
                    .collect()
            }
            None => Vec::new(),
        };
        p.res
            .quotas_set
            .push(format!("{name}: {}", values_text(&q.values)));
        p.quotas.push((q, remove));
    }
}

fn values_text(v: &BTreeMap<String, f64>) -> String {
    v.iter()
        .map(|(k, x)| format!("{k}={x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn plan_configs(source: &ClusterState, target: &ClusterState, opts: &RestoreOptions, p: &mut MetadataPlan) {
    for b in &source.broker_configs {
        let who = b
            .broker
            .map_or_else(|| "cluster default".to_string(), |i| format!("broker {i}"));
        if let Some(id) = b.broker
            && !target.brokers.contains(&id)
        {
            p.res.not_restored.push(format!(
                "{who}: no such broker on the target ({} config(s))",
                b.configs.len()
            ));
            continue;
        }
        let theirs = target.broker_configs.iter().find(|t| t.broker == b.broker);
        let mut set = BTreeMap::new();
        for (k, v) in &b.configs {
            let Some(value) = &v.value else {
                p.res.not_restored.push(format!(
                    "{who} {k}: sensitive, hidden by the source broker (set it by hand)"
                ));
                continue;
            };
            match theirs.and_then(|t| t.configs.get(k)) {
                Some(t) if t.value.as_ref() == Some(value) => continue,
                Some(_) => {
                    p.res
                        .conflicts
                        .push(format!("{who} {k}: the target has another value"));
                    if opts.if_exists == IfExists::Keep {
                        continue;
                    }
                }
                None => {}
            }
            p.res.configs_set.push(format!("{who} {k}={value}"));
            set.insert(k.clone(), value.clone());
        }
        if !set.is_empty() {
            p.configs.push((b.broker, set));
        }
    }
}

/// Applies a plan, in order: broker configs, quotas, users, ACLs (the
/// ACLs last: a principal is usable only once all of it is in). Refusals
/// of single entries are listed in `not_restored`.
///
/// # Errors
/// Requests failing past their retries.
pub(super) async fn apply(cluster: &Cluster, plan: MetadataPlan) -> Result<MetadataResult> {
    let MetadataPlan {
        acls,
        users,
        quotas,
        configs,
        mut res,
    } = plan;
    for (broker, set) in configs {
        if let Err(e) = cluster.alter_broker_configs(broker, set).await? {
            res.not_restored.push(format!(
                "{}: configs refused: {e}",
                broker.map_or_else(|| "cluster default".to_string(), |i| format!("broker {i}"))
            ));
        }
    }
    let names: Vec<String> = quotas.iter().map(|(q, _)| q.entity_name()).collect();
    for (name, r) in names.iter().zip(cluster.alter_quotas(quotas).await?) {
        if let Err(e) = r {
            res.not_restored.push(format!("quota {name}: {e}"));
        }
    }
    for (user, r) in cluster.upsert_scram(users).await? {
        if let Err(e) = r {
            res.users_not_created.push(format!("{user}: {e}"));
            res.users_created
                .retain(|u| u.split(' ').next() != Some(user.as_str()));
        }
    }
    // The plan described each binding, in order.
    let described = res.acls_created.clone();
    let mut no_authorizer = 0;
    for (a, r) in described.iter().zip(cluster.create_acls(acls).await?) {
        match r {
            Ok(()) => {}
            Err(ProtoError::Broker {
                code: code::SECURITY_DISABLED,
                ..
            }) => no_authorizer += 1,
            Err(e) => {
                res.not_restored.push(format!("ACL {a}: {e}"));
                res.acls_created.retain(|x| x != a);
            }
        }
    }
    if no_authorizer > 0 {
        res.not_restored.push(format!(
            "{no_authorizer} ACL binding(s): the target has no authorizer (SECURITY_DISABLED)"
        ));
        res.acls_created.clear();
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::cluster::{BrokerConfigs, ConfigValue, ScramCredential};

    fn acl(rt: i8, name: &str, pt: i8, principal: &str) -> AclBinding {
        AclBinding {
            resource_type: rt,
            name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: "*".into(),
            operation: 4,
            permission: 3,
        }
    }

    /// Topic ACLs follow renames and the prefix, principals the map; a
    /// binding the target has is left; users need a password; a quota or
    /// config the target holds otherwise is a conflict, kept by default;
    /// a sensitive config is never set.
    #[test]
    fn a_plan_maps_names_and_reports_what_it_cannot_do() {
        let source = ClusterState {
            brokers: vec![1],
            acls: vec![
                acl(resource::TOPIC, "orders", pattern::LITERAL, "User:a"),
                acl(resource::TOPIC, "pay.", pattern::PREFIXED, "User:a"),
                acl(resource::GROUP, "g", pattern::LITERAL, "User:b"),
            ],
            scram_users: vec![
                ScramUser {
                    name: "a".into(),
                    credentials: vec![ScramCredential {
                        mechanism: 2,
                        iterations: 4096,
                    }],
                },
                ScramUser {
                    name: "b".into(),
                    credentials: vec![ScramCredential {
                        mechanism: 1,
                        iterations: 8192,
                    }],
                },
            ],
            quotas: vec![QuotaEntry {
                entity: vec![("user".into(), Some("a".into()))],
                values: BTreeMap::from([("producer_byte_rate".into(), 100.0)]),
            }],
            broker_configs: vec![BrokerConfigs {
                broker: None,
                configs: BTreeMap::from([
                    (
                        "a".into(),
                        ConfigValue {
                            value: Some("1".into()),
                            sensitive: false,
                        },
                    ),
                    (
                        "s".into(),
                        ConfigValue {
                            value: None,
                            sensitive: true,
                        },
                    ),
                ]),
            }],
            ..Default::default()
        };
        let target = ClusterState {
            brokers: vec![7],
            acls: vec![acl(resource::GROUP, "g", pattern::LITERAL, "User:b")],
            quotas: vec![QuotaEntry {
                entity: vec![("user".into(), Some("x".into()))],
                values: BTreeMap::from([("producer_byte_rate".into(), 5.0)]),
            }],
            ..Default::default()
        };
        let opts = RestoreOptions {
            prefix: "dr-".into(),
            rename: vec![("orders".into(), "orders2".into())],
            acl_principal_map: vec![("User:a".into(), "User:x".into())],
            scram_credentials: parse_scram_credentials("# users\na SCRAM-SHA-512 pass word\n").unwrap(),
            ..Default::default()
        };
        let p = plan(&source, &target, &opts).unwrap();
        let names: Vec<&str> = p.acls.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, vec!["dr-orders2", "dr-pay."]);
        assert!(p.acls.iter().all(|a| a.principal == "User:x"));
        assert_eq!(p.res.acls_present, 1);
        assert_eq!(p.res.users_created, vec!["a SCRAM-SHA-512"]);
        assert_eq!(p.users[0].salted_password.len(), 64);
        assert_eq!(p.res.users_not_created.len(), 1, "{:?}", p.res.users_not_created);
        // user a is user x on the target, whose quota differs: kept.
        assert!(p.quotas.is_empty());
        assert_eq!(p.res.conflicts.len(), 1, "{:?}", p.res.conflicts);
        assert_eq!(
            p.configs,
            vec![(None, BTreeMap::from([("a".into(), "1".into())]))]
        );
        assert!(p.res.not_restored.iter().any(|n| n.contains("sensitive")));

        let replace = RestoreOptions {
            if_exists: IfExists::Replace,
            ..opts
        };
        let p = plan(&source, &target, &replace).unwrap();
        assert_eq!(p.quotas.len(), 1);
        assert!(p.quotas[0].1.is_empty(), "the same key: set, not removed");
    }

    #[test]
    fn credentials_files_name_bad_lines_without_their_passwords() {
        let e = parse_scram_credentials("a SCRAM-SHA-256\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
        let e = parse_scram_credentials("a MD5 secret\n").unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
        let ok = parse_scram_credentials("a scram-sha-256 p\n").unwrap();
        assert_eq!(format!("{:?}", ok[0]), "ScramPassword(a SCRAM-SHA-256)");
    }
}
