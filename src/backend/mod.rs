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
//!   with its size and (where the storage keeps one) its modification time,
//!   in no particular order. Modification times are the storage's clock,
//!   never the client's: lock staleness and prune's safety window compare
//!   them only with each other.
//! - [`Backend::read_max`] refuses an object larger than the caller's limit
//!   without reading it, and anything that is not a regular file (a FIFO
//!   would block forever); hostile storage costs bounded time and memory.
//! - On local storage the repository's directories are private (0700) and
//!   its files 0600.
//! - Errors are classed transient (worth retrying: timeouts, 5xx, throttling)
//!   or permanent; [`retry::RetryBackend`] retries the former.
//!
//! This module knows nothing of encryption or of the repository format:
//! `repo` depends on `backend`, never the reverse.

pub mod fault;
pub mod location;
pub mod memory;
pub mod objectlock;
pub mod opendal;
pub mod retry;
pub mod services;
pub mod worm;

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

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
    /// Not a regular file, or larger than its kind of object may be.
    Refused,
    /// The storage refused the credential this operation (a writer
    /// credential asked to delete, a locked object version).
    Denied,
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
    /// Why, in a few words (the root cause: "Connection refused (os
    /// error 111)", "no such object").
    pub message: String,
    /// The storage library's whole account (request context, every
    /// cause), logged under `-v`, never part of the one-line error.
    pub detail: Option<String>,
    /// The repository's location, once a decorator that knows it (retry)
    /// has seen the error.
    pub location: Option<String>,
    /// How many times the operation was tried.
    pub attempts: u32,
}

impl BackendError {
    /// Builds an error.
    pub fn new(kind: BackendErrorKind, op: &'static str, path: &str, message: impl fmt::Display) -> Self {
        BackendError {
            kind,
            op,
            path: path.to_string(),
            message: message.to_string(),
            detail: None,
            location: None,
            attempts: 1,
        }
    }

    /// The same error with the storage library's whole account attached.
    #[must_use]
    pub fn with_detail(mut self, detail: impl fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        self.kind == BackendErrorKind::Transient
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, self.path)?;
        if let Some(l) = &self.location {
            write!(f, " at {l}")?;
        }
        write!(f, ": {}", self.message)?;
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

impl std::error::Error for BackendError {}

/// Result of backend operations.
pub type BackendResult<T> = std::result::Result<T, BackendError>;

/// The error for an object larger than `max`.
pub fn too_large(path: &str, size: u64, max: u64) -> BackendError {
    BackendError::new(
        BackendErrorKind::Refused,
        "read",
        path,
        format!("{size} bytes or more, over the {max} such an object may have"),
    )
}

/// The bytes of an object to write: pieces written in order as one object.
///
/// Cheap to clone (the pieces are reference-counted), so a layer that may
/// send it again (retries) keeps it without copying; in pieces, so a pack
/// is written from the sealed blobs it is made of without first copying
/// them into one buffer (a whole extra pass over every byte a snapshot
/// stores).
#[derive(Debug, Clone, Default)]
pub struct Payload {
    parts: Vec<Bytes>,
    len: usize,
}

impl Payload {
    /// An object made of `parts`, in order.
    pub fn from_parts(parts: Vec<Bytes>) -> Payload {
        let mut p = Payload {
            parts: Vec::with_capacity(parts.len()),
            len: 0,
        };
        for b in parts {
            p.push(b);
        }
        p
    }

    /// Appends a piece. An empty one is dropped: opendal's fs writer loops
    /// forever on one (a write of zero bytes).
    pub fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.len += piece.len();
            self.parts.push(piece);
        }
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The pieces, in order.
    pub fn into_parts(self) -> Vec<Bytes> {
        self.parts
    }

    /// The whole object in one buffer: without copying when it is one
    /// piece (every object but a pack).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut v = Vec::with_capacity(self.len);
                for p in many {
                    v.extend_from_slice(p);
                }
                v.into()
            }
        }
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Payload {
        Payload::from_parts(vec![b])
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Payload {
        Bytes::from(v).into()
    }
}

/// An object found by [`Backend::list`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectInfo {
    /// Full path relative to the repository root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// When the storage last wrote it (its own clock), when it says.
    pub modified: Option<SystemTime>,
}

/// A place to keep repository files. See the module documentation for the
/// contract every implementation keeps.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// A human-readable location, e.g. `s3://bucket/prefix`.
    fn location(&self) -> String;

    /// Reads a whole object.
    async fn read(&self, path: &str) -> BackendResult<Vec<u8>>;

    /// Reads a whole object of at most `max` bytes. A larger object, or one
    /// that is not a regular file, is [`BackendErrorKind::Refused`] without
    /// being read.
    async fn read_max(&self, path: &str, max: u64) -> BackendResult<Vec<u8>> {
        match self.info(path).await? {
            None => Err(BackendError::new(
                BackendErrorKind::NotFound,
                "read",
                path,
                "no such object",
            )),
            Some(i) if i.size > max => Err(too_large(path, i.size, max)),
            Some(_) => self.read(path).await,
        }
    }

    /// Reads `len` bytes at `offset`. Reading past the end is an error.
    async fn read_range(&self, path: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>>;

    /// Size and modification time of an object, or `None` when it does not
    /// exist; anything but a regular file is [`BackendErrorKind::Refused`].
    async fn info(&self, path: &str) -> BackendResult<Option<ObjectInfo>> {
        Ok(self.stat(path).await?.map(|size| ObjectInfo {
            path: path.to_string(),
            size,
            modified: None,
        }))
    }

    /// Prepares an empty location for a new repository (local storage:
    /// private directories). Called by `init` before anything is written.
    async fn prepare_new(&self) -> BackendResult<()> {
        Ok(())
    }

    /// Writes a new object atomically; fails with `AlreadyExists` rather than
    /// overwrite. A [`Payload`], so a layer that may send it again
    /// (retries) keeps it without copying: a 16 MiB pack copied per
    /// attempt was a whole extra pass over every byte a snapshot stores.
    async fn write_new(&self, path: &str, data: Payload) -> BackendResult<()>;

    /// The size of an object, or `None` when it does not exist.
    async fn stat(&self, path: &str) -> BackendResult<Option<u64>>;

    /// Lists all objects below `dir` (recursively). A missing directory is empty.
    async fn list(&self, dir: &str) -> BackendResult<Vec<ObjectInfo>>;

    /// Removes an object; removing a missing object succeeds.
    async fn remove(&self, path: &str) -> BackendResult<()>;

    /// The storage's Object Lock, when it has one (S3).
    fn object_lock(&self) -> Option<worm::SharedLock> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_its_pieces_in_order_without_empty_ones() {
        let p = Payload::from_parts(vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"c"),
            Bytes::new(),
        ]);
        assert_eq!(p.len(), 3);
        assert_eq!(
            p.parts().len(),
            2,
            "an empty piece would hang opendal's fs writer"
        );
        assert_eq!(&p.to_bytes()[..], b"abc");
        let one = Bytes::from_static(b"xyz");
        let q = Payload::from(one.clone());
        assert_eq!(q.to_bytes().as_ptr(), one.as_ptr(), "one piece is not copied");
        let empty = Payload::from(Vec::new());
        assert!(empty.is_empty() && empty.parts().is_empty());
        assert!(empty.to_bytes().is_empty());
    }
}
