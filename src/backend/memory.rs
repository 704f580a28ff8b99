//! An in-memory backend, for tests and for benchmarks that must not measure
//! a disk.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Backend, BackendError, BackendErrorKind, BackendResult, ObjectInfo, Payload};

/// Objects in a map; clones share the same store.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    objects: Arc<Mutex<BTreeMap<String, Bytes>>>,
    modified: Arc<Mutex<BTreeMap<String, SystemTime>>>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(
        &self,
        op: &'static str,
        path: &str,
    ) -> BackendResult<std::sync::MutexGuard<'_, BTreeMap<String, Bytes>>> {
        self.objects
            .lock()
            .map_err(|_| BackendError::new(BackendErrorKind::Permanent, op, path, "memory store poisoned"))
    }

    /// Replaces an object's bytes regardless of the no-overwrite rule (tests
    /// use it to simulate corruption by the storage provider).
    pub fn tamper(&self, path: &str, data: Vec<u8>) {
        if let Ok(mut m) = self.objects.lock() {
            m.insert(path.to_string(), Bytes::from(data));
        }
        self.touch(path, SystemTime::now());
    }

    /// Sets an object's modification time (tests age objects with it).
    pub fn touch(&self, path: &str, t: SystemTime) {
        if let Ok(mut m) = self.modified.lock() {
            m.insert(path.to_string(), t);
        }
    }

    fn mtime(&self, path: &str) -> Option<SystemTime> {
        self.modified.lock().ok().and_then(|m| m.get(path).copied())
    }

    /// Total bytes stored.
    pub fn total_size(&self) -> u64 {
        self.objects
            .lock()
            .map(|m| m.values().map(|v| v.len() as u64).sum())
            .unwrap_or(0)
    }
}

fn not_found(op: &'static str, path: &str) -> BackendError {
    BackendError::new(BackendErrorKind::NotFound, op, path, "no such object")
}

#[async_trait]
impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory:".to_string()
    }

    async fn read(&self, path: &str) -> BackendResult<Vec<u8>> {
        let m = self.map("read", path)?;
        m.get(path)
            .map(|v| v.to_vec())
            .ok_or_else(|| not_found("read", path))
    }

    async fn read_range(&self, path: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>> {
        let m = self.map("read", path)?;
        let v = m.get(path).ok_or_else(|| not_found("read", path))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        v.get(start..end).map(<[u8]>::to_vec).ok_or_else(|| {
            BackendError::new(
                BackendErrorKind::Permanent,
                "read",
                path,
                format!("range {offset}+{len} past end of {}-byte object", v.len()),
            )
        })
    }

    async fn write_new(&self, path: &str, data: Payload) -> BackendResult<()> {
        let mut m = self.map("write", path)?;
        if m.contains_key(path) {
            return Err(BackendError::new(
                BackendErrorKind::AlreadyExists,
                "write",
                path,
                "object exists",
            ));
        }
        m.insert(path.to_string(), data.to_bytes());
        drop(m);
        self.touch(path, SystemTime::now());
        Ok(())
    }

    async fn info(&self, path: &str) -> BackendResult<Option<ObjectInfo>> {
        let size = self.map("stat", path)?.get(path).map(|v| v.len() as u64);
        Ok(size.map(|size| ObjectInfo {
            path: path.to_string(),
            size,
            modified: self.mtime(path),
        }))
    }

    async fn stat(&self, path: &str) -> BackendResult<Option<u64>> {
        let m = self.map("stat", path)?;
        Ok(m.get(path).map(|v| v.len() as u64))
    }

    async fn list(&self, dir: &str) -> BackendResult<Vec<ObjectInfo>> {
        let m = self.map("list", dir)?;
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let times = self.modified.lock().map(|t| t.clone()).unwrap_or_default();
        Ok(m.iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| ObjectInfo {
                path: k.clone(),
                size: v.len() as u64,
                modified: times.get(k).copied(),
            })
            .collect())
    }

    async fn remove(&self, path: &str) -> BackendResult<()> {
        let mut m = self.map("remove", path)?;
        m.remove(path);
        drop(m);
        if let Ok(mut t) = self.modified.lock() {
            t.remove(path);
        }
        Ok(())
    }
}
