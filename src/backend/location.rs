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
//! [`BackendOptions`], which the CLI fills from flags and the usual
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
use super::opendal::OpendalBackend;
use super::retry::RetryBackend;

/// Why a location could not be turned into a backend. The backend layer
/// depends on nothing above it; `crate::Error` converts from this.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    /// A malformed location, or settings the provider rejects.
    #[error("{0}")]
    Invalid(String),
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

/// Settings for object-store backends. Empty fields fall back to the
/// provider's defaults.
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    /// S3 endpoint URL with scheme, e.g. `http://127.0.0.1:8333`.
    pub s3_endpoint: Option<String>,
    /// S3 region (default `us-east-1`).
    pub s3_region: Option<String>,
    /// S3 access key id.
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key.
    pub s3_secret_access_key: Option<String>,
    /// S3 session token.
    pub s3_session_token: Option<String>,
    /// Profile of the shared AWS config files.
    pub s3_profile: Option<String>,
    /// Role to assume with the credentials found.
    pub s3_role_arn: Option<String>,
    /// Storage class of new objects.
    pub s3_storage_class: Option<String>,
    /// KMS key for server-side encryption of new objects.
    pub s3_sse_kms_key_id: Option<String>,
    /// GCS endpoint override.
    pub gcs_endpoint: Option<String>,
    /// Path of a GCS service-account credential file.
    pub gcs_credential_path: Option<String>,
    /// Azure endpoint (default `https://ACCOUNT.blob.core.windows.net`).
    pub azure_endpoint: Option<String>,
    /// Azure storage account name.
    pub azure_account_name: Option<String>,
    /// Azure storage account key.
    pub azure_account_key: Option<String>,
    /// Azure SAS token.
    pub azure_sas_token: Option<String>,
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
        return Err(Error::Invalid(format!(
            "repository location {scheme}://{rest} names no bucket (expected {scheme}://BUCKET/PREFIX)"
        )));
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
            return Err(Error::Invalid(
                "empty repository location (use -r or KVAULT_REPOSITORY)".into(),
            ));
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
                return Err(Error::Invalid("fs: location names no directory".into()));
            }
            return Ok(Location::Fs(rest.to_string()));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(Error::Invalid(format!(
                "unknown repository scheme {scheme:?} (supported: fs, s3, gcs, azblob)"
            )));
        }
        Ok(Location::Fs(s.to_string()))
    }
}

fn opendal_err(location: &str, e: opendal::Error) -> Error {
    Error::Invalid(format!("cannot use repository location {location}: {e}"))
}

fn root_of(prefix: &str) -> String {
    if prefix.is_empty() {
        "/".to_string()
    } else {
        format!("/{prefix}/")
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
            let op = Operator::new(b).map_err(|e| opendal_err(location, e))?;
            Arc::new(OpendalBackend::local(op, location.to_string(), abs))
        }
        Location::S3 { bucket, prefix } => {
            let mut b = opendal::services::S3::default()
                .bucket(&bucket)
                .root(&root_of(&prefix))
                .region(opts.s3_region.as_deref().unwrap_or("us-east-1"));
            if let Some(p) = &opts.s3_profile {
                b = b.profile(p);
            }
            if let Some(r) = &opts.s3_role_arn {
                b = b.role_arn(r);
            }
            if let Some(c) = &opts.s3_storage_class {
                b = b.default_storage_class(c);
            }
            if let Some(k) = &opts.s3_sse_kms_key_id {
                b = b.server_side_encryption_with_customer_managed_kms_key(k);
            }
            if let Some(e) = &opts.s3_endpoint {
                b = b.endpoint(e);
            }
            if let Some(k) = &opts.s3_access_key_id {
                b = b.access_key_id(k);
            }
            if let Some(k) = &opts.s3_secret_access_key {
                b = b.secret_access_key(k);
            }
            if let Some(t) = &opts.s3_session_token {
                b = b.session_token(t);
            }
            let op = Operator::new(b).map_err(|e| opendal_err(location, e))?;
            Arc::new(RetryBackend::new(OpendalBackend::new(
                op,
                location.to_string(),
                true,
            )))
        }
        Location::Gcs { bucket, prefix } => {
            let mut b = opendal::services::Gcs::default()
                .bucket(&bucket)
                .root(&root_of(&prefix));
            if let Some(e) = &opts.gcs_endpoint {
                b = b.endpoint(e);
            }
            if let Some(p) = &opts.gcs_credential_path {
                b = b.credential_path(p);
            }
            let op = Operator::new(b).map_err(|e| opendal_err(location, e))?;
            Arc::new(RetryBackend::new(OpendalBackend::new(
                op,
                location.to_string(),
                true,
            )))
        }
        Location::Azblob { container, prefix } => {
            let mut b = opendal::services::Azblob::default()
                .container(&container)
                .root(&root_of(&prefix));
            if let Some(a) = &opts.azure_account_name {
                b = b.account_name(a);
                let ep = opts
                    .azure_endpoint
                    .clone()
                    .unwrap_or_else(|| format!("https://{a}.blob.core.windows.net"));
                b = b.endpoint(&ep);
            } else if let Some(ep) = &opts.azure_endpoint {
                b = b.endpoint(ep);
            }
            if let Some(k) = &opts.azure_account_key {
                b = b.account_key(k);
            }
            if let Some(t) = &opts.azure_sas_token {
                b = b.sas_token(t);
            }
            let op = Operator::new(b).map_err(|e| opendal_err(location, e))?;
            Arc::new(RetryBackend::new(OpendalBackend::new(
                op,
                location.to_string(),
                true,
            )))
        }
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
