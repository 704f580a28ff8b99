//! Requests kvault encodes itself and the answers it decodes, for the
//! cluster's own state (ACLs, SCRAM users, client quotas, broker configs):
//! librdkafka has no client-quota calls, so all of them go the same way,
//! as raw requests on librdkafka's connection
//! (`kvault_rdkafka_ext::request`).
//!
//! Each API is encoded for any version in its range, classic or flexible
//! (compact strings and arrays, tagged fields) as the version says. The
//! decoders are total over their input: any bytes give a value or a
//! [`ProtoError`], never a panic (fuzz target `kafka_admin_responses`).

use std::collections::BTreeMap;

use crate::image::cluster::{AclBinding, QuotaEntry, ScramCredential, ScramUser};
use crate::image::wire::{Cursor, WireError, Writer};

/// One API: its key, the versions kvault speaks, and the first flexible
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    /// API key.
    pub key: i16,
    /// Lowest version kvault encodes.
    pub min: i16,
    /// Highest version kvault encodes.
    pub max: i16,
    /// The first flexible version.
    pub flexible_from: i16,
    /// Its name, for messages.
    pub name: &'static str,
}

impl Api {
    /// Whether `v` is a flexible version.
    pub fn flexible(&self, v: i16) -> bool {
        v >= self.flexible_from
    }
}

/// DescribeAcls.
pub const DESCRIBE_ACLS: Api = Api {
    key: 29,
    min: 1,
    max: 3,
    flexible_from: 2,
    name: "DescribeAcls",
};
/// CreateAcls.
pub const CREATE_ACLS: Api = Api {
    key: 30,
    min: 1,
    max: 3,
    flexible_from: 2,
    name: "CreateAcls",
};
/// DescribeConfigs.
pub const DESCRIBE_CONFIGS: Api = Api {
    key: 32,
    min: 1,
    max: 4,
    flexible_from: 4,
    name: "DescribeConfigs",
};
/// IncrementalAlterConfigs.
pub const INCREMENTAL_ALTER_CONFIGS: Api = Api {
    key: 44,
    min: 0,
    max: 1,
    flexible_from: 1,
    name: "IncrementalAlterConfigs",
};
/// DescribeClientQuotas.
pub const DESCRIBE_CLIENT_QUOTAS: Api = Api {
    key: 48,
    min: 0,
    max: 1,
    flexible_from: 1,
    name: "DescribeClientQuotas",
};
/// AlterClientQuotas.
pub const ALTER_CLIENT_QUOTAS: Api = Api {
    key: 49,
    min: 0,
    max: 1,
    flexible_from: 1,
    name: "AlterClientQuotas",
};
/// DescribeUserScramCredentials.
pub const DESCRIBE_SCRAM: Api = Api {
    key: 50,
    min: 0,
    max: 0,
    flexible_from: 0,
    name: "DescribeUserScramCredentials",
};
/// AlterUserScramCredentials.
pub const ALTER_SCRAM: Api = Api {
    key: 51,
    min: 0,
    max: 0,
    flexible_from: 0,
    name: "AlterUserScramCredentials",
};

/// Kafka error codes kvault decides on.
pub mod code {
    /// Not authorized for the cluster resource.
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    /// The broker has no authorizer.
    pub const SECURITY_DISABLED: i16 = 54;
    /// No such resource (a SCRAM user without credentials).
    pub const RESOURCE_NOT_FOUND: i16 = 91;
}

/// Why an answer did not decode, or what the broker refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// Bytes that are not a valid answer.
    #[error("malformed answer: {0}")]
    Malformed(#[from] WireError),
    /// The broker speaks no version of the API that kvault does.
    #[error("the broker does not support {api}")]
    Unsupported {
        /// The API's name.
        api: &'static str,
    },
    /// The broker answered with an error.
    #[error("{}", broker_error(*code, message.as_deref()))]
    Broker {
        /// Kafka's error code.
        code: i16,
        /// The broker's message.
        message: Option<String>,
    },
}

/// `CLUSTER_AUTHORIZATION_FAILED (31): message`.
pub fn broker_error(code: i16, message: Option<&str>) -> String {
    let name = match code {
        29 => "TOPIC_AUTHORIZATION_FAILED",
        30 => "GROUP_AUTHORIZATION_FAILED",
        31 => "CLUSTER_AUTHORIZATION_FAILED",
        35 => "UNSUPPORTED_VERSION",
        42 => "INVALID_REQUEST",
        44 => "POLICY_VIOLATION",
        54 => "SECURITY_DISABLED",
        91 => "RESOURCE_NOT_FOUND",
        _ => "ERROR",
    };
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{name} ({code}): {m}"),
        None => format!("{name} ({code})"),
    }
}

fn check(code: i16, message: Option<String>) -> Result<(), ProtoError> {
    if code == 0 {
        Ok(())
    } else {
        Err(ProtoError::Broker { code, message })
    }
}

/// A request body in one version's encoding.
struct Enc {
    w: Writer,
    flex: bool,
}

impl Enc {
    fn new(api: Api, v: i16) -> Enc {
        Enc {
            w: Writer::default(),
            flex: api.flexible(v),
        }
    }
    fn str(&mut self, s: Option<&str>) -> &mut Self {
        if self.flex {
            self.w.compact_string(s);
        } else {
            self.w.string(s);
        }
        self
    }
    fn len(&mut self, n: Option<usize>) -> &mut Self {
        match (self.flex, n) {
            (true, n) => {
                self.w.compact_array_len(n);
            }
            (false, Some(n)) => {
                self.w.array_len(n);
            }
            (false, None) => {
                self.w.i32(-1);
            }
        }
        self
    }
    /// The end of a struct inside the body (the body's own tags are
    /// librdkafka's).
    fn tags(&mut self) -> &mut Self {
        if self.flex {
            self.w.no_tags();
        }
        self
    }
    fn done(self) -> Vec<u8> {
        self.w.buf
    }
}

/// An answer in one version's encoding.
struct Dec<'a> {
    c: Cursor<'a>,
    flex: bool,
}

impl<'a> Dec<'a> {
    fn new(api: Api, v: i16, b: &'a [u8]) -> Dec<'a> {
        Dec {
            c: Cursor::new(b),
            flex: api.flexible(v),
        }
    }
    fn nstr(&mut self, what: &str) -> Result<Option<String>, WireError> {
        if self.flex {
            self.c.compact_nullable_string(what)
        } else {
            self.c.nullable_string(what)
        }
    }
    fn str(&mut self, what: &str) -> Result<String, WireError> {
        Ok(self.nstr(what)?.unwrap_or_default())
    }
    fn len(&mut self, what: &str) -> Result<usize, WireError> {
        if self.flex {
            self.c.compact_array_len(what)
        } else {
            self.c.array_len(what)
        }
    }
    fn tags(&mut self) -> Result<(), WireError> {
        if self.flex {
            self.c.skip_tags()?;
        }
        Ok(())
    }
    /// An error code and its message: none, or the broker's error.
    fn error(&mut self) -> Result<Result<(), ProtoError>, WireError> {
        let (code, msg) = (self.c.i16("error code")?, self.nstr("error message")?);
        Ok(check(code, msg))
    }
    /// The throttle time and the answer's own error, which fails it.
    fn header(&mut self) -> Result<(), ProtoError> {
        self.c.i32("throttle time")?;
        self.error()?
    }
}

/// DescribeAcls for every binding (every filter ANY).
pub fn describe_acls_request(v: i16) -> Vec<u8> {
    let mut e = Enc::new(DESCRIBE_ACLS, v);
    // resource type ANY, name any, pattern ANY, principal and host any,
    // operation ANY, permission ANY.
    e.w.i8(1);
    e.str(None);
    e.w.i8(1);
    e.str(None).str(None);
    e.w.i8(1).i8(1);
    e.done()
}

/// Every binding a DescribeAcls answer holds, sorted.
///
/// # Errors
/// Malformed bytes; the broker's error.
pub fn describe_acls_response(v: i16, b: &[u8]) -> Result<Vec<AclBinding>, ProtoError> {
    let mut d = Dec::new(DESCRIBE_ACLS, v, b);
    d.header()?;
    let mut out = Vec::new();
    for _ in 0..d.len("resources")? {
        let resource_type = d.c.i8("resource type")?;
        let name = d.str("resource name")?;
        let pattern_type = d.c.i8("pattern type")?;
        for _ in 0..d.len("acls")? {
            out.push(AclBinding {
                resource_type,
                name: name.clone(),
                pattern_type,
                principal: d.str("principal")?,
                host: d.str("host")?,
                operation: d.c.i8("operation")?,
                permission: d.c.i8("permission")?,
            });
            d.tags()?;
        }
        d.tags()?;
    }
    out.sort();
    Ok(out)
}

/// CreateAcls of `acls`.
pub fn create_acls_request(v: i16, acls: &[AclBinding]) -> Vec<u8> {
    let mut e = Enc::new(CREATE_ACLS, v);
    e.len(Some(acls.len()));
    for a in acls {
        e.w.i8(a.resource_type);
        e.str(Some(&a.name));
        e.w.i8(a.pattern_type);
        e.str(Some(&a.principal)).str(Some(&a.host));
        e.w.i8(a.operation).i8(a.permission);
        e.tags();
    }
    e.done()
}

/// Per binding asked for, in order: created, or the broker's error.
///
/// # Errors
/// Malformed bytes.
pub fn create_acls_response(v: i16, b: &[u8]) -> Result<Vec<Result<(), ProtoError>>, ProtoError> {
    let mut d = Dec::new(CREATE_ACLS, v, b);
    d.c.i32("throttle time")?;
    let mut out = Vec::new();
    for _ in 0..d.len("results")? {
        let r = d.error()?;
        d.tags()?;
        out.push(r);
    }
    Ok(out)
}

/// DescribeUserScramCredentials of every user.
pub fn describe_scram_request() -> Vec<u8> {
    let mut e = Enc::new(DESCRIBE_SCRAM, 0);
    e.len(None);
    e.done()
}

/// The users of a DescribeUserScramCredentials answer, by name.
///
/// # Errors
/// Malformed bytes; the broker's error (for the request, or a user's
/// other than "no credentials").
pub fn describe_scram_response(b: &[u8]) -> Result<Vec<ScramUser>, ProtoError> {
    let mut d = Dec::new(DESCRIBE_SCRAM, 0, b);
    d.header()?;
    let mut out = Vec::new();
    for _ in 0..d.len("results")? {
        let name = d.str("user")?;
        let r = d.error()?;
        let mut credentials = Vec::new();
        for _ in 0..d.len("credential infos")? {
            credentials.push(ScramCredential {
                mechanism: d.c.i8("mechanism")?,
                iterations: d.c.i32("iterations")?,
            });
            d.tags()?;
        }
        d.tags()?;
        match r {
            Ok(()) => out.push(ScramUser { name, credentials }),
            Err(ProtoError::Broker {
                code: code::RESOURCE_NOT_FOUND,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A user's outcome in an answer: done, or the broker's error.
pub type PerUser = (String, Result<(), ProtoError>);

/// A config resource's name and entries, or its error.
pub type PerResource = (String, Result<Vec<ConfigEntry>, ProtoError>);

/// One SCRAM credential to set: the salted password, never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramUpsert {
    /// User name.
    pub name: String,
    /// 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.
    pub mechanism: i8,
    /// PBKDF2 iterations.
    pub iterations: i32,
    /// Salt.
    pub salt: Vec<u8>,
    /// PBKDF2-HMAC of the password with the salt.
    pub salted_password: Vec<u8>,
}

/// AlterUserScramCredentials setting `upserts`.
pub fn alter_scram_request(upserts: &[ScramUpsert]) -> Vec<u8> {
    let mut e = Enc::new(ALTER_SCRAM, 0);
    e.len(Some(0));
    e.len(Some(upserts.len()));
    for u in upserts {
        e.str(Some(&u.name));
        e.w.i8(u.mechanism).i32(u.iterations);
        e.w.compact_bytes(Some(&u.salt))
            .compact_bytes(Some(&u.salted_password));
        e.tags();
    }
    e.done()
}

/// Per user: set, or the broker's error.
///
/// # Errors
/// Malformed bytes.
pub fn alter_scram_response(b: &[u8]) -> Result<Vec<PerUser>, ProtoError> {
    let mut d = Dec::new(ALTER_SCRAM, 0, b);
    d.c.i32("throttle time")?;
    let mut out = Vec::new();
    for _ in 0..d.len("results")? {
        let user = d.str("user")?;
        let r = d.error()?;
        d.tags()?;
        out.push((user, r));
    }
    Ok(out)
}

/// DescribeClientQuotas of every entity (no component, not strict).
pub fn describe_quotas_request(v: i16) -> Vec<u8> {
    let mut e = Enc::new(DESCRIBE_CLIENT_QUOTAS, v);
    e.len(Some(0));
    e.w.bool(false);
    e.done()
}

/// The entities of a DescribeClientQuotas answer, sorted.
///
/// # Errors
/// Malformed bytes; the broker's error.
pub fn describe_quotas_response(v: i16, b: &[u8]) -> Result<Vec<QuotaEntry>, ProtoError> {
    let mut d = Dec::new(DESCRIBE_CLIENT_QUOTAS, v, b);
    d.header()?;
    let mut out = Vec::new();
    for _ in 0..d.len("entries")? {
        let mut entity = Vec::new();
        for _ in 0..d.len("entity")? {
            entity.push((d.str("entity type")?, d.nstr("entity name")?));
            d.tags()?;
        }
        let mut values = BTreeMap::new();
        for _ in 0..d.len("values")? {
            let k = d.str("quota key")?;
            values.insert(k, d.c.f64("quota value")?);
            d.tags()?;
        }
        d.tags()?;
        entity.sort();
        out.push(QuotaEntry { entity, values });
    }
    out.sort_by(|a, b| a.entity.cmp(&b.entity));
    Ok(out)
}

/// AlterClientQuotas: per entity, the values to set and the keys to
/// remove.
pub fn alter_quotas_request(v: i16, entries: &[(QuotaEntry, Vec<String>)]) -> Vec<u8> {
    let mut e = Enc::new(ALTER_CLIENT_QUOTAS, v);
    e.len(Some(entries.len()));
    for (q, remove) in entries {
        e.len(Some(q.entity.len()));
        for (t, n) in &q.entity {
            e.str(Some(t)).str(n.as_deref());
            e.tags();
        }
        e.len(Some(q.values.len() + remove.len()));
        for (k, val) in &q.values {
            e.str(Some(k));
            e.w.f64(*val).bool(false);
            e.tags();
        }
        for k in remove {
            e.str(Some(k));
            e.w.f64(0.0).bool(true);
            e.tags();
        }
        e.tags();
    }
    e.w.bool(false);
    e.done()
}

/// Per entity asked for: altered, or the broker's error.
///
/// # Errors
/// Malformed bytes.
pub fn alter_quotas_response(v: i16, b: &[u8]) -> Result<Vec<Result<(), ProtoError>>, ProtoError> {
    let mut d = Dec::new(ALTER_CLIENT_QUOTAS, v, b);
    d.c.i32("throttle time")?;
    let mut out = Vec::new();
    for _ in 0..d.len("entries")? {
        let r = d.error()?;
        for _ in 0..d.len("entity")? {
            d.str("entity type")?;
            d.nstr("entity name")?;
            d.tags()?;
        }
        d.tags()?;
        out.push(r);
    }
    Ok(out)
}

/// The broker resource type of DescribeConfigs and IncrementalAlterConfigs.
pub const BROKER_RESOURCE: i8 = 4;

/// Config sources that are dynamic broker configs.
pub mod source {
    /// Set for one broker.
    pub const DYNAMIC_BROKER: i8 = 2;
    /// Set as the cluster-wide default.
    pub const DYNAMIC_DEFAULT_BROKER: i8 = 3;
}

/// One config entry of a DescribeConfigs answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Name.
    pub name: String,
    /// Value (`None` when hidden: sensitive).
    pub value: Option<String>,
    /// Where it comes from (see [`source`]).
    pub source: i8,
    /// Marked sensitive.
    pub sensitive: bool,
}

/// DescribeConfigs of broker resources (`""`: the cluster default).
pub fn describe_configs_request(v: i16, brokers: &[String]) -> Vec<u8> {
    let mut e = Enc::new(DESCRIBE_CONFIGS, v);
    e.len(Some(brokers.len()));
    for b in brokers {
        e.w.i8(BROKER_RESOURCE);
        e.str(Some(b));
        e.len(None);
        e.tags();
    }
    e.w.bool(false);
    if v >= 3 {
        e.w.bool(false);
    }
    e.done()
}

/// Per resource of a DescribeConfigs answer: its name and its entries, or
/// its error.
///
/// # Errors
/// Malformed bytes.
pub fn describe_configs_response(v: i16, b: &[u8]) -> Result<Vec<PerResource>, ProtoError> {
    let mut d = Dec::new(DESCRIBE_CONFIGS, v, b);
    d.c.i32("throttle time")?;
    let mut out = Vec::new();
    for _ in 0..d.len("results")? {
        let r = d.error()?;
        d.c.i8("resource type")?;
        let name = d.str("resource name")?;
        let mut entries = Vec::new();
        for _ in 0..d.len("configs")? {
            let name = d.str("config name")?;
            let value = d.nstr("config value")?;
            d.c.bool("read only")?;
            let source = d.c.i8("config source")?;
            let sensitive = d.c.bool("sensitive")?;
            for _ in 0..d.len("synonyms")? {
                d.str("synonym name")?;
                d.nstr("synonym value")?;
                d.c.i8("synonym source")?;
                d.tags()?;
            }
            if v >= 3 {
                d.c.i8("config type")?;
                d.nstr("documentation")?;
            }
            d.tags()?;
            entries.push(ConfigEntry {
                name,
                value,
                source,
                sensitive,
            });
        }
        d.tags()?;
        out.push((name, r.map(|()| entries)));
    }
    Ok(out)
}

/// IncrementalAlterConfigs SETting `configs` on broker resource `broker`
/// (`""`: the cluster default).
pub fn alter_broker_configs_request(v: i16, broker: &str, configs: &BTreeMap<String, String>) -> Vec<u8> {
    let mut e = Enc::new(INCREMENTAL_ALTER_CONFIGS, v);
    e.len(Some(1));
    e.w.i8(BROKER_RESOURCE);
    e.str(Some(broker));
    e.len(Some(configs.len()));
    for (k, val) in configs {
        e.str(Some(k));
        e.w.i8(0);
        e.str(Some(val));
        e.tags();
    }
    e.tags();
    e.w.bool(false);
    e.done()
}

/// The one resource's result of an IncrementalAlterConfigs answer.
///
/// # Errors
/// Malformed bytes; the broker's error.
pub fn alter_configs_response(v: i16, b: &[u8]) -> Result<(), ProtoError> {
    let mut d = Dec::new(INCREMENTAL_ALTER_CONFIGS, v, b);
    d.c.i32("throttle time")?;
    for _ in 0..d.len("responses")? {
        let r = d.error()?;
        d.c.i8("resource type")?;
        d.str("resource name")?;
        d.tags()?;
        r?;
    }
    Ok(())
}

/// The salted password of SCRAM (RFC 5802 `Hi`): PBKDF2 with HMAC-SHA-256
/// (mechanism 1) or HMAC-SHA-512 (2).
pub fn salted_password(mechanism: i8, password: &str, salt: &[u8], iterations: i32) -> Option<Vec<u8>> {
    let rounds = u32::try_from(iterations).ok()?;
    match mechanism {
        1 => {
            let mut out = vec![0u8; 32];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, rounds, &mut out);
            Some(out)
        }
        2 => {
            let mut out = vec![0u8; 64];
            pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), salt, rounds, &mut out);
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(name: &str) -> AclBinding {
        AclBinding {
            resource_type: 2,
            name: name.into(),
            pattern_type: 3,
            principal: "User:a".into(),
            host: "*".into(),
            operation: 3,
            permission: 3,
        }
    }

    /// A DescribeAcls answer as the broker writes it, classic and
    /// flexible, decodes to its bindings.
    #[test]
    fn describe_acls_answers_decode_in_both_encodings() {
        for v in [1i16, 2] {
            let flex = DESCRIBE_ACLS.flexible(v);
            let mut w = Enc {
                w: Writer::default(),
                flex,
            };
            w.w.i32(0).i16(0);
            w.str(None);
            w.len(Some(1));
            w.w.i8(2);
            w.str(Some("t"));
            w.w.i8(3);
            w.len(Some(1));
            w.str(Some("User:a")).str(Some("*"));
            w.w.i8(3).i8(3);
            w.tags().tags().tags();
            assert_eq!(
                describe_acls_response(v, &w.done()).unwrap(),
                vec![acl("t")],
                "v{v}"
            );
        }
        let refused = [0, 0, 0, 0, 0, 31, 255, 255, 0, 0, 0, 0];
        assert!(matches!(
            describe_acls_response(1, &refused),
            Err(ProtoError::Broker { code: 31, .. })
        ));
    }

    /// Requests have the layout Kafka's schemas give them.
    #[test]
    fn requests_follow_the_schemas() {
        assert_eq!(
            describe_acls_request(1),
            vec![1, 255, 255, 1, 255, 255, 255, 255, 1, 1]
        );
        assert_eq!(describe_acls_request(2), vec![1, 0, 1, 0, 0, 1, 1]);
        assert_eq!(describe_scram_request(), vec![0]);
        assert_eq!(describe_quotas_request(0), vec![0, 0, 0, 0, 0]);
        let c = create_acls_request(2, &[acl("t")]);
        assert_eq!(
            c,
            vec![
                2, 2, 2, b't', 3, 7, b'U', b's', b'e', b'r', b':', b'a', 2, b'*', 3, 3, 0
            ]
        );
    }

    /// Known PBKDF2-HMAC-SHA-256 output (RFC 7914 §11's first vector is
    /// for scrypt; this is RFC 6070's style with SHA-256, one iteration).
    #[test]
    fn salted_passwords_are_pbkdf2() {
        let sp = salted_password(1, "password", b"salt", 1).unwrap();
        assert_eq!(
            sp[..8],
            [0x12, 0x0f, 0xb6, 0xcf, 0xfc, 0xf8, 0xb3, 0x2c],
            "PBKDF2-HMAC-SHA256(password, salt, 1)"
        );
        assert_eq!(salted_password(2, "p", b"s", 4096).unwrap().len(), 64);
        assert!(salted_password(3, "p", b"s", 1).is_none());
        assert!(salted_password(1, "p", b"s", -1).is_none());
    }

    /// Garbage never panics.
    #[test]
    fn truncated_answers_are_errors() {
        for n in 0..12 {
            let b = vec![0u8; n];
            let _ = describe_acls_response(1, &b);
            let _ = describe_scram_response(&b);
            let _ = describe_quotas_response(1, &b);
            let _ = describe_configs_response(4, &b);
        }
        assert!(describe_scram_response(&[0, 0]).is_err());
    }
}
