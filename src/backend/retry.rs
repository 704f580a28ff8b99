//! A decorator that retries transient failures with exponential backoff.
//!
//! Only errors the inner backend classes as transient are retried; a retried
//! `write_new` that meets `AlreadyExists` is a success only if the object is
//! content-addressed, which the caller decides (the repository treats
//! `AlreadyExists` on a pack or index as "already stored").

use std::time::Duration;

use async_trait::async_trait;

use super::{Backend, BackendResult, ObjectInfo, Payload};

/// Retries transient errors of the inner backend.
#[derive(Debug)]
pub struct RetryBackend<B> {
    inner: B,
    attempts: u32,
    base_delay: Duration,
}

impl<B: Backend> RetryBackend<B> {
    /// Five attempts, starting at 200 ms and doubling.
    pub fn new(inner: B) -> Self {
        RetryBackend {
            inner,
            attempts: 5,
            base_delay: Duration::from_millis(200),
        }
    }

    /// Sets the number of attempts and the first delay.
    pub fn with_policy(mut self, attempts: u32, base_delay: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.base_delay = base_delay;
        self
    }
}

macro_rules! retrying {
    ($self:ident, $call:expr) => {{
        let mut delay = $self.base_delay;
        let mut attempt = 1;
        loop {
            match $call.await {
                Err(e) if e.is_transient() && attempt < $self.attempts => {
                    log::info!(
                        "storage {}: {} (attempt {attempt}); retrying in {} ms",
                        e.op,
                        e,
                        delay.as_millis()
                    );
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}

#[async_trait]
impl<B: Backend> Backend for RetryBackend<B> {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn read(&self, path: &str) -> BackendResult<Vec<u8>> {
        retrying!(self, self.inner.read(path))
    }
    async fn read_range(&self, path: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>> {
        retrying!(self, self.inner.read_range(path, offset, len))
    }
    async fn read_max(&self, path: &str, max: u64) -> BackendResult<Vec<u8>> {
        retrying!(self, self.inner.read_max(path, max))
    }
    async fn info(&self, path: &str) -> BackendResult<Option<ObjectInfo>> {
        retrying!(self, self.inner.info(path))
    }
    async fn prepare_new(&self) -> BackendResult<()> {
        retrying!(self, self.inner.prepare_new())
    }
    async fn write_new(&self, path: &str, data: Payload) -> BackendResult<()> {
        retrying!(self, self.inner.write_new(path, data.clone()))
    }
    async fn stat(&self, path: &str) -> BackendResult<Option<u64>> {
        retrying!(self, self.inner.stat(path))
    }
    async fn list(&self, dir: &str) -> BackendResult<Vec<ObjectInfo>> {
        retrying!(self, self.inner.list(dir))
    }
    async fn remove(&self, path: &str) -> BackendResult<()> {
        retrying!(self, self.inner.remove(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fault::{Fault, FaultBackend};
    use crate::backend::memory::MemoryBackend;

    #[tokio::test]
    async fn transient_write_failures_are_retried() {
        let mem = MemoryBackend::new();
        let faulty = FaultBackend::new(mem.clone());
        faulty.inject(Fault::TransientWrites(2));
        let b = RetryBackend::new(faulty).with_policy(3, Duration::from_millis(1));
        b.write_new("a", vec![1].into()).await.unwrap();
        assert_eq!(mem.read("a").await.unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn gives_up_after_the_last_attempt() {
        let faulty = FaultBackend::new(MemoryBackend::new());
        faulty.inject(Fault::TransientWrites(5));
        let b = RetryBackend::new(faulty).with_policy(3, Duration::from_millis(1));
        assert!(b.write_new("a", vec![1].into()).await.unwrap_err().is_transient());
    }
}
