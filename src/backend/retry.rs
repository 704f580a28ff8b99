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

    /// The pauses between attempts: doubling from the first delay, with
    /// jitter so that many writers failing together do not retry in step
    /// (backon, the backoff crate OpenDAL itself uses).
    fn delays(&self) -> impl Iterator<Item = Duration> {
        use backon::BackoffBuilder;
        backon::ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.base_delay.saturating_mul(16))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.attempts as usize)
            .build()
    }
}

/// Runs `$call` until it succeeds, fails for good, or has been tried
/// `attempts` times; the last error names the location and the attempts,
/// and its whole account is logged (`-v`).
macro_rules! retrying {
    ($self:ident, $call:expr) => {{
        let mut delays = $self.delays();
        let mut attempt = 1;
        loop {
            match $call.await {
                Err(e) if e.is_transient() && attempt < $self.attempts => {
                    let delay = delays.next().unwrap_or($self.base_delay);
                    log::info!(
                        "storage {e} (attempt {attempt}); retrying in {} ms",
                        delay.as_millis()
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(mut e) => {
                    e.attempts = attempt;
                    e.location = Some($self.inner.location());
                    if let Some(d) = &e.detail {
                        log::info!("storage {} {}: {d}", e.op, e.path);
                    }
                    break Err(e);
                }
                ok => break ok,
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

    fn object_lock(&self) -> Option<super::worm::SharedLock> {
        self.inner.object_lock()
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
