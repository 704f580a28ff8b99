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

// The layers, bottom up (scripts/check-layers enforces the direction and
// the absence of cycles): `backend` stores bytes; `repo` is the repository
// format; `image` is the Kafka log image format on top of it; `kafka` is
// the client (it sees only `image::record` and `image::types`); `ops` is
// what the commands do. The modules stay public because the format's
// decoders are exercised from outside the crate — golden vectors in
// `tests/`, fuzz targets in `fuzz/`, benches — and the curated surface
// below is the API to build on.
pub mod backend;
pub mod error;
pub mod id;
pub mod image;
pub mod kafka;
pub mod ops;
pub mod process;
pub mod repo;

pub use backend::Backend;
pub use backend::location::{BackendOptions, Location, LocationError, open_backend};
pub use backend::services::{AzureOptions, GcsOptions, S3Options};
pub use backend::worm::LockMode;
pub use error::{Error, Refusal, Result};
pub use id::Id;
pub use image::cluster::ClusterState;
pub use image::manifest::Manifest;
pub use image::types::TopicPartition;
pub use ops::check::{CheckOptions, CheckReport, check};
pub use ops::copy::{CopyReport, copy};
pub use ops::forget::{ForgetOptions, ForgetReport, Policy, forget};
pub use ops::progress::{Event, GapCause, NoProgress, Progress, Unit};
pub use ops::prune::{PruneOptions, PruneReport, prune};
#[cfg(feature = "kafka")]
pub use ops::restore::{RestoreOptions, RestoreResult, restore};
#[cfg(feature = "kafka")]
pub use ops::snapshot::{SnapshotOptions, SnapshotPlan, SnapshotResult, snapshot};
pub use ops::stats::{Stats, stats};
pub use ops::stream::{PutOptions, PutSummary, get, put};
pub use repo::keyfile::KdfParams;
pub use repo::retention::LockPolicy;
pub use repo::{FileKind, InitOptions, Repository};
