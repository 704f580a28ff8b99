//! Storage backends: where repository files live.
//!
//! # Contract (every implementation MUST keep it; `tests/backend_suite.rs`
//! checks it against memory, fs and a real S3 server)
//!
//! - Paths are `/`-separated, relative to the repository root, and never end
//!   in `/` (e.g. `data/3f/3fa2…`, `keys/09bc…`, `config`).
//! - [`Backend::write_new`] is atomic: a reader sees the whole object or none
//!   of it. It never overwrites: when the path exists it returns
//!   [`BackendErrorKind::AlreadyExists`] and leaves the old object untouched.
//!   Everything kvault writes is either content-addressed (same name, same
//!   bytes) or named by a fresh random id, so no object is ever rewritten.
//!   Object stores make the create exclusive (S3 `If-None-Match: *`); on the
//!   fs service two processes racing to create one path may both succeed,
//!   one replacing the other atomically, which is harmless for
//!   content-addressed names and impossible for random ones.
//! - [`Backend::read`] of a missing path returns [`BackendErrorKind::NotFound`].
//! - [`Backend::remove`] of a missing path succeeds.
//! - [`Backend::list`] lists every object below a directory, recursively,
//!   with its size, in no particular order.
//! - Errors are classed transient (worth retrying: timeouts, 5xx, throttling)
//!   or permanent; [`retry::RetryBackend`] retries the former.
//!
//! This module knows nothing of encryption or of the repository format:
//! `repo` depends on `backend`, never the reverse.

pub mod fault;
pub mod location;
pub mod memory;
pub mod opendal;
pub mod retry;

use std::fmt;

use async_trait::async_trait;

/// The class of a storage failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The object does not exist.
    NotFound,
    /// `write_new` found an object already at the path.
    AlreadyExists,
    /// Worth retrying (timeouts, throttling, server errors).
    Transient,
    /// Retrying will not help (permissions, bad configuration, bad request).
    Permanent,
}

/// A storage failure, naming the operation and the path.
#[derive(Debug, Clone)]
pub struct BackendError {
    /// The class of failure.
    pub kind: BackendErrorKind,
    /// The operation (`read`, `write`, `list`, `remove`, `stat`).
    pub op: &'static str,
    /// The path the operation was on.
    pub path: String,
    /// The underlying message.
    pub message: String,
}

impl BackendError {
    /// Builds an error.
    pub fn new(kind: BackendErrorKind, op: &'static str, path: &str, message: impl fmt::Display) -> Self {
        BackendError {
            kind,
            op,
            path: path.to_string(),
            message: message.to_string(),
        }
    }

    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        self.kind == BackendErrorKind::Transient
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path, self.message)
    }
}

impl std::error::Error for BackendError {}

/// Result of backend operations.
pub type BackendResult<T> = std::result::Result<T, BackendError>;

/// An object found by [`Backend::list`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectInfo {
    /// Full path relative to the repository root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// A place to keep repository files. See the module documentation for the
/// contract every implementation keeps.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// A human-readable location, e.g. `s3://bucket/prefix`.
    fn location(&self) -> String;

    /// Reads a whole object.
    async fn read(&self, path: &str) -> BackendResult<Vec<u8>>;

    /// Reads `len` bytes at `offset`. Reading past the end is an error.
    async fn read_range(&self, path: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>>;

    /// Writes a new object atomically; fails with `AlreadyExists` rather than
    /// overwrite.
    async fn write_new(&self, path: &str, data: Vec<u8>) -> BackendResult<()>;

    /// The size of an object, or `None` when it does not exist.
    async fn stat(&self, path: &str) -> BackendResult<Option<u64>>;

    /// Lists all objects below `dir` (recursively). A missing directory is empty.
    async fn list(&self, dir: &str) -> BackendResult<Vec<ObjectInfo>>;

    /// Removes an object; removing a missing object succeeds.
    async fn remove(&self, path: &str) -> BackendResult<()>;
}
