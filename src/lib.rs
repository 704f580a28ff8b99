//! kvault: encrypted, deduplicating, point-in-time backups of Apache Kafka.
//!
//! The crate is layered as its folders show: `ops` (what the commands do)
//! uses `repo` (the repository format: keys, chunker, packs, index, trees,
//! snapshots, locks), which stores files through `backend` (fs, S3, GCS,
//! Azure via OpenDAL; memory; decorators). The CLI is a thin layer over
//! `ops`. The on-disk format is specified in `format-spec/`.
//!
//! ```no_run
//! # async fn demo() -> kvault::Result<()> {
//! use kvault::{ops, BackendOptions, InitOptions, NoProgress};
//! let (repo, _) = ops::init::init("/tmp/repo", &BackendOptions::default(), b"pw", &InitOptions::default()).await?;
//! let data: &[u8] = b"some bytes";
//! let put = ops::stream::put(&repo, data, &ops::stream::PutOptions { name: "demo".into(), tags: vec![] }, &NoProgress).await?;
//! let mut out = Vec::new();
//! ops::stream::get(&repo, &put.snapshot, &mut out, &NoProgress).await?;
//! assert_eq!(out, data);
//! # Ok(()) }
//! ```

pub mod backend;
pub mod error;
pub mod id;
pub mod image;
pub mod kafka;
pub mod ops;
pub mod repo;

pub use backend::Backend;
pub use backend::location::{BackendOptions, Location, open_backend};
pub use error::{Error, Result};
pub use id::Id;
pub use ops::progress::{NoProgress, Progress};
pub use repo::keyfile::KdfParams;
pub use repo::{InitOptions, Repository};
