//! A cluster's own state (ACLs, SCRAM users, client quotas, dynamic broker
//! configs): read for a snapshot, written by a restore, through raw
//! requests ([`super::protocol`]).
//!
//! Reading is per kind: a kind the principal may not describe (or the
//! cluster does not have) is left out and named in
//! [`ClusterState::missing`], and the rest is still read.

use std::collections::BTreeMap;

use kvault_rdkafka_ext::request::{self, Broker};

use super::admin::Cluster;
use super::protocol::{self as p, ProtoError, ScramUpsert, code};
use crate::error::Result;
use crate::image::cluster::{
    AclBinding, BrokerConfigs, ClusterState, ConfigValue, Missing, QuotaEntry, StateKind,
};

/// One kind's answer: its value, or why it is missing (a cluster without
/// an authorizer has no ACLs: empty, not missing).
fn kind<T: Default>(what: StateKind, r: std::result::Result<T, ProtoError>, missing: &mut Vec<Missing>) -> T {
    match r {
        Ok(v) => v,
        Err(ProtoError::Broker {
            code: code::SECURITY_DISABLED,
            ..
        }) => T::default(),
        Err(e) => {
            missing.push(Missing {
                kind: what,
                reason: e.to_string(),
            });
            T::default()
        }
    }
}

impl Cluster {
    /// The cluster's state as of now.
    ///
    /// # Errors
    /// The cluster id or broker list unreadable; a request failing past
    /// its retries (a refusal of one kind is not an error: it is missing).
    pub async fn cluster_state(&self) -> Result<ClusterState> {
        let mut s = ClusterState {
            cluster_id: self.cluster_id().await?,
            brokers: self.broker_ids().await?,
            ..Default::default()
        };
        if !request::available() {
            for kind in StateKind::ALL {
                s.missing.push(Missing {
                    kind,
                    reason: "this build has no raw-request shim (it links a system librdkafka)".into(),
                });
            }
            return Ok(s);
        }
        let m = &mut s.missing;
        let acls = self
            .request(
                Broker::Any,
                p::DESCRIBE_ACLS,
                p::describe_acls_request,
                p::describe_acls_response,
            )
            .await?;
        s.acls = kind(StateKind::Acls, acls, m);
        let users = self
            .request(
                Broker::Any,
                p::DESCRIBE_SCRAM,
                |_| p::describe_scram_request(),
                |_, b| p::describe_scram_response(b),
            )
            .await?;
        s.scram_users = kind(StateKind::ScramUsers, users, m);
        let quotas = self
            .request(
                Broker::Any,
                p::DESCRIBE_CLIENT_QUOTAS,
                p::describe_quotas_request,
                p::describe_quotas_response,
            )
            .await?;
        s.quotas = kind(StateKind::Quotas, quotas, m);
        let configs = self.broker_configs(&s.brokers).await?;
        s.broker_configs = kind(StateKind::BrokerConfigs, configs, m);
        Ok(s)
    }

    /// The dynamic configs of the cluster default and of every broker.
    async fn broker_configs(
        &self,
        brokers: &[i32],
    ) -> Result<std::result::Result<Vec<BrokerConfigs>, ProtoError>> {
        let mut out = Vec::new();
        let targets =
            std::iter::once((Broker::Any, None)).chain(brokers.iter().map(|b| (Broker::Id(*b), Some(*b))));
        for (to, id) in targets {
            let name = id.map_or_else(String::new, |b| b.to_string());
            let got = self
                .request(
                    to,
                    p::DESCRIBE_CONFIGS,
                    move |v| p::describe_configs_request(v, std::slice::from_ref(&name)),
                    p::describe_configs_response,
                )
                .await?;
            let entries = match got.and_then(|r| r.into_iter().next().map_or(Ok(Vec::new()), |(_, e)| e)) {
                Ok(e) => e,
                Err(e) => return Ok(Err(e)),
            };
            let wanted = if id.is_some() {
                p::source::DYNAMIC_BROKER
            } else {
                p::source::DYNAMIC_DEFAULT_BROKER
            };
            let configs: BTreeMap<String, ConfigValue> = entries
                .into_iter()
                .filter(|e| e.source == wanted)
                .map(|e| {
                    let value = if e.sensitive { None } else { e.value };
                    (
                        e.name,
                        ConfigValue {
                            value,
                            sensitive: e.sensitive,
                        },
                    )
                })
                .collect();
            if !configs.is_empty() {
                out.push(BrokerConfigs { broker: id, configs });
            }
        }
        Ok(Ok(out))
    }

    /// Creates ACL bindings; per binding, created or the broker's error.
    ///
    /// # Errors
    /// The request failing past its retries, or refused as a whole.
    pub async fn create_acls(
        &self,
        acls: Vec<AclBinding>,
    ) -> Result<Vec<std::result::Result<(), ProtoError>>> {
        if acls.is_empty() {
            return Ok(Vec::new());
        }
        let r = self
            .request(
                Broker::Any,
                p::CREATE_ACLS,
                move |v| p::create_acls_request(v, &acls),
                p::create_acls_response,
            )
            .await?;
        Ok(r.unwrap_or_else(|e| vec![Err(e)]))
    }

    /// Sets SCRAM credentials; per user, set or the broker's error.
    ///
    /// # Errors
    /// The request failing past its retries.
    pub async fn upsert_scram(&self, upserts: Vec<ScramUpsert>) -> Result<Vec<p::PerUser>> {
        if upserts.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = upserts.iter().map(|u| u.name.clone()).collect();
        let r = self
            .request(
                Broker::Any,
                p::ALTER_SCRAM,
                move |_| p::alter_scram_request(&upserts),
                |_, b| p::alter_scram_response(b),
            )
            .await?;
        Ok(r.unwrap_or_else(|e| names.into_iter().map(|n| (n, Err(e.clone()))).collect()))
    }

    /// Sets client quotas (values to set, keys to remove, per entity); per
    /// entity, altered or the broker's error.
    ///
    /// # Errors
    /// The request failing past its retries.
    pub async fn alter_quotas(
        &self,
        entries: Vec<(QuotaEntry, Vec<String>)>,
    ) -> Result<Vec<std::result::Result<(), ProtoError>>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let n = entries.len();
        let r = self
            .request(
                Broker::Any,
                p::ALTER_CLIENT_QUOTAS,
                move |v| p::alter_quotas_request(v, &entries),
                p::alter_quotas_response,
            )
            .await?;
        Ok(r.unwrap_or_else(|e| vec![Err(e); n]))
    }

    /// Sets dynamic configs of one broker (`None`: the cluster default).
    ///
    /// # Errors
    /// The request failing past its retries.
    pub async fn alter_broker_configs(
        &self,
        broker: Option<i32>,
        configs: BTreeMap<String, String>,
    ) -> Result<std::result::Result<(), ProtoError>> {
        let (to, name) = match broker {
            Some(b) => (Broker::Id(b), b.to_string()),
            None => (Broker::Any, String::new()),
        };
        self.request(
            to,
            p::INCREMENTAL_ALTER_CONFIGS,
            move |v| p::alter_broker_configs_request(v, &name, &configs),
            p::alter_configs_response,
        )
        .await
    }
}
