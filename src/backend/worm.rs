//! Write-once storage: what a backend with object retention offers (S3
//! Object Lock, [`super::objectlock`]), so the repository can lock what it
//! writes and extend what its snapshots reuse.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use super::BackendResult;

/// How a retention binds: governance (a principal with
/// `s3:BypassGovernanceRetention` may shorten or lift it) or compliance
/// (nobody may, not even the account's root user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Bypassable by a principal allowed to.
    Governance,
    /// Binding on everyone until the date.
    Compliance,
}

impl LockMode {
    /// S3's name of the mode.
    pub fn s3_name(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        })
    }
}

/// Object Lock on a storage that has it.
#[async_trait]
pub trait ObjectLock: Send + Sync + fmt::Debug {
    /// Whether the bucket has Object Lock enabled (it can only be enabled
    /// when the bucket is created, or on a versioned bucket afterwards).
    async fn enabled(&self) -> BackendResult<bool>;

    /// Sets the retention of the current version of `path` to `until`. The
    /// storage refuses to shorten a compliance retention.
    async fn retain(&self, path: &str, mode: LockMode, until: SystemTime) -> BackendResult<()>;

    /// The retention date of the current version of `path`: `None` when it
    /// has none or does not exist.
    async fn retained_until(&self, path: &str) -> BackendResult<Option<SystemTime>>;

    /// Removes every version of `path` and every delete marker: what frees
    /// the space of an object in a versioned bucket. A locked version
    /// refuses ([`super::BackendErrorKind::Denied`]).
    async fn purge(&self, path: &str) -> BackendResult<()>;

    /// Whether this credential may delete objects at `path`: one delete of
    /// an object that does not exist (its delete marker then purged).
    async fn may_delete(&self, path: &str) -> BackendResult<bool>;
}

/// A shared handle to a storage's Object Lock.
pub type SharedLock = Arc<dyn ObjectLock>;
