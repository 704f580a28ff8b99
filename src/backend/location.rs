//! Parsing repository locations into backends.
//!
//! | form | backend |
//! |---|---|
//! | `/path`, `./path`, `fs:///path`, `fs:path` | local directory (the default) |
//! | `s3://bucket/prefix` | S3 or any S3-compatible server |
//! | `gcs://bucket/prefix` | Google Cloud Storage |
//! | `azblob://container/prefix` | Azure Blob Storage |
//! | `memory:` | in-process memory (tests) |
//!
//! Credentials never come from the location string: they come from
//! [`BackendOptions`] (one struct per service, [`super::services`]), which the CLI fills from flags and the usual
//! environment variables (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*).
//! Without explicit keys each cloud's default chain applies: for S3 the
//! environment, the shared config and credentials files (`--s3-profile`),
//! SSO, web identity (IRSA), the ECS container and the EC2 instance
//! metadata; for GCS application default credentials; for Azure a key, a
//! SAS token in the environment, or the default chain.

use std::sync::Arc;

use opendal::Operator;

use super::Backend;
use super::memory::MemoryBackend;
use super::objectlock::S3ObjectLock;
use super::opendal::OpendalBackend;
use super::retry::RetryBackend;
use super::services::{AzureOptions, GcsOptions, S3Options};

/// Why a location could not be turned into a backend. The backend layer
/// depends on nothing above it; `crate::Error` converts from this.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    /// No location at all.
    #[error("empty repository location")]
    Empty,
    /// An object-store URL without its bucket.
    #[error("repository location {scheme}://{rest} names no bucket (expected {scheme}://BUCKET/PREFIX)")]
    NoBucket {
        /// The scheme, e.g. `s3`.
        scheme: String,
        /// What followed it.
        rest: String,
    },
    /// `fs:` without a directory.
    #[error("fs: location names no directory")]
    NoDirectory,
    /// A scheme kvault has no backend for.
    #[error("unknown repository scheme {0:?} (supported: fs, s3, gcs, azblob)")]
    UnknownScheme(String),
    /// Settings the storage provider refuses.
    #[error("cannot use repository location {location}: {reason}")]
    Refused {
        /// The location as given.
        location: String,
        /// The provider's reason.
        reason: String,
    },
    /// A local path could not be resolved.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, LocationError>;
use LocationError as Error;

/// Settings for object-store backends, one struct per service.
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    /// S3 and S3-compatible servers.
    pub s3: S3Options,
    /// Google Cloud Storage.
    pub gcs: GcsOptions,
    /// Azure Blob Storage.
    pub azure: AzureOptions,
}

/// A parsed location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Fs(String),
    /// S3 bucket and key prefix.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Prefix inside the bucket ("" for the root).
        prefix: String,
    },
    /// GCS bucket and prefix.
    Gcs {
        /// Bucket name.
        bucket: String,
        /// Prefix inside the bucket.
        prefix: String,
    },
    /// Azure container and prefix.
    Azblob {
        /// Container name.
        container: String,
        /// Prefix inside the container.
        prefix: String,
    },
    /// Process memory.
    Memory,
}

fn bucket_and_prefix(rest: &str, scheme: &str) -> Result<(String, String)> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::NoBucket {
            scheme: scheme.to_string(),
            rest: rest.to_string(),
        });
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

impl Location {
    /// Parses a location string (see the module table).
    ///
    /// # Errors
    /// An empty location, an unknown scheme, or a URL without a bucket.
    pub fn parse(s: &str) -> Result<Location> {
        if s.is_empty() {
            return Err(Error::Empty);
        }
        if s == "memory:" {
            return Ok(Location::Memory);
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = bucket_and_prefix(rest, "s3")?;
            return Ok(Location::S3 { bucket, prefix });
        }
        if let Some(rest) = s.strip_prefix("gcs://").or_else(|| s.strip_prefix("gs://")) {
            let (bucket, prefix) = bucket_and_prefix(rest, "gcs")?;
            return Ok(Location::Gcs { bucket, prefix });
        }
        if let Some(rest) = s.strip_prefix("azblob://") {
            let (container, prefix) = bucket_and_prefix(rest, "azblob")?;
            return Ok(Location::Azblob { container, prefix });
        }
        if let Some(rest) = s.strip_prefix("fs://").or_else(|| s.strip_prefix("fs:")) {
            if rest.is_empty() {
                return Err(Error::NoDirectory);
            }
            return Ok(Location::Fs(rest.to_string()));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(Error::UnknownScheme(scheme.to_string()));
        }
        Ok(Location::Fs(s.to_string()))
    }
}

/// An object store's backend, behind the retry decorator.
fn remote(op: opendal::Result<Operator>, location: &str) -> Result<Arc<dyn Backend>> {
    let op = op.map_err(|e| refused(location, &e))?;
    Ok(Arc::new(RetryBackend::new(OpendalBackend::new(
        op,
        location.to_string(),
        true,
    ))))
}

/// An S3 backend with its bucket's Object Lock, behind the retry decorator.
fn s3(opts: &BackendOptions, bucket: &str, prefix: &str, location: &str) -> Result<Arc<dyn Backend>> {
    let op = opts
        .s3
        .operator(bucket, prefix)
        .map_err(|e| refused(location, &e))?;
    let lock = S3ObjectLock::new(&opts.s3.target(bucket, prefix), op.clone());
    let b = OpendalBackend::new(op, location.to_string(), true).with_lock(Arc::new(lock));
    Ok(Arc::new(RetryBackend::new(b)))
}

/// The provider refused the settings of `location`.
fn refused(location: &str, e: &opendal::Error) -> Error {
    Error::Refused {
        location: location.to_string(),
        reason: e.to_string(),
    }
}

/// Opens the backend for a location string. Object stores get the retry
/// decorator; no network request is made here.
///
/// # Errors
/// A malformed location or incomplete credentials.
pub fn open_backend(location: &str, opts: &BackendOptions) -> Result<Arc<dyn Backend>> {
    let loc = Location::parse(location)?;
    let backend: Arc<dyn Backend> = match loc {
        Location::Memory => Arc::new(MemoryBackend::new()),
        Location::Fs(dir) => {
            let abs = std::path::absolute(&dir).map_err(|e| Error::Io {
                context: format!("resolving repository path {dir}"),
                source: e,
            })?;
            let root = abs.to_string_lossy().to_string();
            let tmp = abs.join(".tmp").to_string_lossy().to_string();
            let b = opendal::services::Fs::default()
                .root(&root)
                .atomic_write_dir(&tmp);
            let op = Operator::new(b).map_err(|e| refused(location, &e))?;
            Arc::new(OpendalBackend::local(op, location.to_string(), abs))
        }
        Location::S3 { bucket, prefix } => s3(opts, &bucket, &prefix, location)?,
        Location::Gcs { bucket, prefix } => remote(opts.gcs.operator(&bucket, &prefix), location)?,
        Location::Azblob { container, prefix } => remote(opts.azure.operator(&container, &prefix), location)?,
    };
    Ok(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(Location::parse("/tmp/r").unwrap(), Location::Fs("/tmp/r".into()));
        assert_eq!(
            Location::parse("fs:///tmp/r").unwrap(),
            Location::Fs("/tmp/r".into())
        );
        assert_eq!(Location::parse("fs:rel").unwrap(), Location::Fs("rel".into()));
        assert_eq!(
            Location::parse("s3://b/p/q/").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert_eq!(
            Location::parse("s3://b").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: "".into()
            }
        );
        assert!(matches!(
            Location::parse("gcs://b/x").unwrap(),
            Location::Gcs { .. }
        ));
        assert!(matches!(
            Location::parse("azblob://c/x").unwrap(),
            Location::Azblob { .. }
        ));
        assert_eq!(Location::parse("memory:").unwrap(), Location::Memory);
        assert!(Location::parse("").is_err());
        assert!(Location::parse("s3://").is_err());
        assert!(Location::parse("ftp://x").is_err());
    }
}
