//! A fault-injecting decorator for tests: fail writes from the Nth on (a
//! crash), fail writes transiently, flip or truncate bytes on read (a
//! storage provider that corrupts data).
//!
//! Each fault is checked on every call; the repository's job is to detect
//! (authentication, length checks) or survive (retry, ordering) every one.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::{Backend, BackendError, BackendErrorKind, BackendResult, ObjectInfo, Payload};

/// A fault to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Writes number N and later (0-based) fail permanently, as if the
    /// process had died before making them.
    FailWritesFrom(u64),
    /// Mutations (writes and removes) number N and later fail permanently:
    /// a crash of an operation that also deletes (prune).
    FailMutationsFrom(u64),
    /// The next N writes fail with a transient error.
    TransientWrites(u64),
    /// Reads of paths starting with the prefix get the byte at `offset`
    /// (modulo the read length) XOR-ed with 0x01.
    FlipByte {
        /// Path prefix the fault applies to.
        prefix: String,
        /// Byte position in the returned buffer.
        offset: u64,
    },
    /// Reads of paths starting with the prefix return at most `len` bytes.
    Truncate {
        /// Path prefix the fault applies to.
        prefix: String,
        /// Bytes kept.
        len: u64,
    },
    /// Writes to paths starting with the prefix fail permanently (e.g.
    /// `locks/`: lock refreshes failing during a storage outage).
    FailWritesUnder(String),
    /// A full disk: a write that would take the stored bytes (all objects)
    /// above the limit fails with "no space left"; removes free space.
    DiskFull(u64),
}

/// Wraps a backend and injects [`Fault`]s.
#[derive(Debug)]
pub struct FaultBackend<B> {
    inner: B,
    faults: Mutex<Vec<Fault>>,
    writes: AtomicU64,
    mutations: AtomicU64,
}

impl<B: Backend> FaultBackend<B> {
    /// No faults yet.
    pub fn new(inner: B) -> Self {
        FaultBackend {
            inner,
            faults: Mutex::new(Vec::new()),
            writes: AtomicU64::new(0),
            mutations: AtomicU64::new(0),
        }
    }

    /// Adds a fault.
    pub fn inject(&self, f: Fault) {
        if let Ok(mut v) = self.faults.lock() {
            v.push(f);
        }
    }

    /// Removes every fault.
    pub fn clear(&self) {
        if let Ok(mut v) = self.faults.lock() {
            v.clear();
        }
    }

    /// Writes attempted so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Writes and removes attempted so far.
    pub fn mutations(&self) -> u64 {
        self.mutations.load(Ordering::SeqCst)
    }

    /// Counts a mutation; fails it when a [`Fault::FailMutationsFrom`] says so.
    fn mutation_fault(&self, op: &'static str, path: &str) -> Option<BackendError> {
        let n = self.mutations.fetch_add(1, Ordering::SeqCst);
        let hit = self
            .faults()
            .iter()
            .any(|f| matches!(f, Fault::FailMutationsFrom(from) if n >= *from));
        hit.then(|| {
            BackendError::new(
                BackendErrorKind::Permanent,
                op,
                path,
                "injected failure (simulated crash)",
            )
        })
    }

    fn faults(&self) -> Vec<Fault> {
        self.faults.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn write_fault(&self, path: &str) -> Option<BackendError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        let Ok(mut faults) = self.faults.lock() else {
            return Some(BackendError::new(
                BackendErrorKind::Permanent,
                "write",
                path,
                "fault list poisoned",
            ));
        };
        for f in faults.iter_mut() {
            match f {
                Fault::FailWritesFrom(from) if n >= *from => {
                    return Some(BackendError::new(
                        BackendErrorKind::Permanent,
                        "write",
                        path,
                        "injected failure (simulated crash)",
                    ));
                }
                Fault::TransientWrites(k) if *k > 0 => {
                    *k -= 1;
                    return Some(BackendError::new(
                        BackendErrorKind::Transient,
                        "write",
                        path,
                        "injected transient failure",
                    ));
                }
                _ => {}
            }
        }
        None
    }

    fn mangle(&self, path: &str, mut data: Vec<u8>) -> Vec<u8> {
        for f in self.faults() {
            match f {
                Fault::FlipByte { prefix, offset } if path.starts_with(&prefix) && !data.is_empty() => {
                    let i = usize::try_from(offset % data.len() as u64).unwrap_or(0);
                    if let Some(b) = data.get_mut(i) {
                        *b ^= 0x01;
                    }
                }
                Fault::Truncate { prefix, len } if path.starts_with(&prefix) => {
                    data.truncate(usize::try_from(len).unwrap_or(usize::MAX));
                }
                _ => {}
            }
        }
        data
    }
}

#[async_trait]
impl<B: Backend> Backend for FaultBackend<B> {
    fn location(&self) -> String {
        format!("fault:{}", self.inner.location())
    }

    async fn read(&self, path: &str) -> BackendResult<Vec<u8>> {
        let d = self.inner.read(path).await?;
        Ok(self.mangle(path, d))
    }

    async fn read_range(&self, path: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>> {
        let d = self.inner.read_range(path, offset, len).await?;
        Ok(self.mangle(path, d))
    }

    async fn read_max(&self, path: &str, max: u64) -> BackendResult<Vec<u8>> {
        let d = self.inner.read_max(path, max).await?;
        Ok(self.mangle(path, d))
    }

    async fn info(&self, path: &str) -> BackendResult<Option<ObjectInfo>> {
        self.inner.info(path).await
    }

    async fn prepare_new(&self) -> BackendResult<()> {
        self.inner.prepare_new().await
    }

    async fn write_new(&self, path: &str, data: Payload) -> BackendResult<()> {
        if let Some(e) = self.mutation_fault("write", path) {
            return Err(e);
        }
        if let Some(e) = self.write_fault(path) {
            return Err(e);
        }
        for f in self.faults() {
            match f {
                Fault::FailWritesUnder(prefix) if path.starts_with(&prefix) => {
                    return Err(BackendError::new(
                        BackendErrorKind::Permanent,
                        "write",
                        path,
                        "injected failure (storage unreachable)",
                    ));
                }
                Fault::DiskFull(limit) => {
                    let mut used = 0;
                    for d in ["config", "keys", "data", "index", "snapshots", "locks", ".tmp"] {
                        used += self.inner.list(d).await?.iter().map(|o| o.size).sum::<u64>();
                    }
                    if used + data.len() as u64 > limit {
                        return Err(BackendError::new(
                            BackendErrorKind::Permanent,
                            "write",
                            path,
                            "No space left on device (os error 28)",
                        ));
                    }
                }
                _ => {}
            }
        }
        self.inner.write_new(path, data).await
    }

    async fn stat(&self, path: &str) -> BackendResult<Option<u64>> {
        self.inner.stat(path).await
    }

    async fn list(&self, dir: &str) -> BackendResult<Vec<ObjectInfo>> {
        self.inner.list(dir).await
    }

    async fn remove(&self, path: &str) -> BackendResult<()> {
        if let Some(e) = self.mutation_fault("remove", path) {
            return Err(e);
        }
        self.inner.remove(path).await
    }

    fn object_lock(&self) -> Option<super::worm::SharedLock> {
        self.inner.object_lock()
    }
}
