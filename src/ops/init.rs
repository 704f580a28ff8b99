//! `init`: create a repository.

use serde::Serialize;

use crate::backend::location::{BackendOptions, open_backend};
use crate::error::Result;
use crate::id::Id;
/// What `init` is configured with.
pub use crate::repo::chunker::ChunkerParams;
pub use crate::repo::config::{DEFAULT_COMPRESSION_LEVEL, DEFAULT_PACK_SIZE};
use crate::repo::{InitOptions, Repository};

/// What `init` created.
#[derive(Debug, Clone, Serialize)]
pub struct InitSummary {
    /// Where.
    pub location: String,
    /// The new repository's id.
    pub repository_id: Id,
    /// The first key's id.
    pub key_id: Id,
}

/// Creates a repository at `location`.
///
/// # Errors
/// [`crate::Error::AlreadyInitialized`], bad options, storage errors.
pub async fn init(
    location: &str,
    bopts: &BackendOptions,
    password: &[u8],
    opts: &InitOptions,
) -> Result<(Repository, InitSummary)> {
    let backend = open_backend(location, bopts)?;
    let repo = Repository::init(backend, password, opts).await?;
    let s = InitSummary {
        location: location.to_string(),
        repository_id: repo.config().id,
        key_id: repo.key_id(),
    };
    Ok((repo, s))
}
