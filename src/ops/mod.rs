//! Operations: what the commands do, as a library API. Operations never
//! print and never see clap; they take options structs, report progress
//! through [`progress::Progress`] and return serializable results that the
//! CLI renders (as text or JSON lines).

pub mod cat;
pub mod check;
pub mod copy;
pub mod dump;
pub mod find;
pub mod forget;
pub mod init;
pub mod key;
pub mod ls;
pub mod progress;
pub mod prune;
pub mod repair;
#[cfg(feature = "kafka")]
pub mod restore;
pub mod rewrite;
#[cfg(feature = "kafka")]
pub mod snapshot;
pub mod stats;
pub mod stream;

use std::sync::Arc;

use crate::backend::Backend;
use crate::backend::location::{BackendOptions, open_backend};
use crate::error::Result;
use crate::repo::Repository;
use crate::repo::lock::RepoLock;

/// Opens the repository at `location` with `password`.
///
/// # Errors
/// As [`Repository::open`] and [`open_backend`].
pub async fn open(location: &str, opts: &BackendOptions, password: &[u8]) -> Result<Repository> {
    let backend: Arc<dyn Backend> = open_backend(location, opts)?;
    Repository::open(backend, password).await
}

/// `unlock`: removes stale locks (every lock with `all`); returns the ids
/// removed.
///
/// # Errors
/// Storage errors.
pub async fn unlock(repo: &Repository, all: bool) -> Result<Vec<crate::id::Id>> {
    crate::repo::lock::unlock(repo, all).await
}

/// Runs `f` holding a lock, releasing it afterwards whatever `f` returned.
///
/// # Errors
/// [`crate::Error::Locked`], or `f`'s error.
pub async fn with_lock<T, F, Fut>(repo: &Repository, exclusive: bool, f: F) -> Result<T>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let lock = RepoLock::acquire(repo, exclusive).await?;
    let r = f().await;
    let released = lock.release().await;
    let v = r?;
    released?;
    Ok(v)
}
