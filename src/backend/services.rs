//! One options struct per object-store service, each building its own
//! OpenDAL operator: a new service is a struct here, a variant of
//! [`super::location::Location`] and a group of flags in `cli/` (whose
//! config-file section follows from the flags' names).
//!
//! Empty fields fall back to the provider's defaults. Credentials never
//! come from the location string.

use opendal::Operator;

use opendal::Result;

/// The OpenDAL root of a key prefix inside a bucket.
fn root_of(prefix: &str) -> String {
    if prefix.is_empty() {
        "/".to_string()
    } else {
        format!("/{prefix}/")
    }
}

/// A setter of OpenDAL's S3 builder.
type SetS3 = fn(opendal::services::S3, &str) -> opendal::services::S3;

/// S3 or any S3-compatible server.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Endpoint URL with scheme, e.g. `http://127.0.0.1:8333`.
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token.
    pub session_token: Option<String>,
    /// Profile of the shared AWS config files.
    pub profile: Option<String>,
    /// Role to assume with the credentials found.
    pub role_arn: Option<String>,
    /// Storage class of new objects.
    pub storage_class: Option<String>,
    /// KMS key for server-side encryption of new objects.
    pub sse_kms_key_id: Option<String>,
}

impl S3Options {
    /// The operator for `bucket` and `prefix`; no request is made.
    ///
    /// # Errors
    /// Settings OpenDAL refuses.
    pub fn operator(&self, bucket: &str, prefix: &str) -> Result<Operator> {
        let mut b = opendal::services::S3::default()
            .bucket(bucket)
            .root(&root_of(prefix))
            .region(self.region.as_deref().unwrap_or("us-east-1"));
        let set: [(&Option<String>, SetS3); 8] = [
            (&self.profile, opendal::services::S3::profile),
            (&self.role_arn, opendal::services::S3::role_arn),
            (&self.storage_class, opendal::services::S3::default_storage_class),
            (
                &self.sse_kms_key_id,
                opendal::services::S3::server_side_encryption_with_customer_managed_kms_key,
            ),
            (&self.endpoint, opendal::services::S3::endpoint),
            (&self.access_key_id, opendal::services::S3::access_key_id),
            (&self.secret_access_key, opendal::services::S3::secret_access_key),
            (&self.session_token, opendal::services::S3::session_token),
        ];
        for (value, apply) in set {
            if let Some(v) = value {
                b = apply(b, v);
            }
        }
        Operator::new(b)
    }

    /// Where Object Lock requests go for `bucket` and `prefix`.
    pub fn target(&self, bucket: &str, prefix: &str) -> super::objectlock::S3Target {
        super::objectlock::S3Target {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: self.session_token.clone(),
        }
    }
}

/// Google Cloud Storage.
#[derive(Debug, Clone, Default)]
pub struct GcsOptions {
    /// Endpoint override.
    pub endpoint: Option<String>,
    /// Path of a service-account credential file.
    pub credential_path: Option<String>,
}

impl GcsOptions {
    /// The operator for `bucket` and `prefix`; no request is made.
    ///
    /// # Errors
    /// Settings OpenDAL refuses.
    pub fn operator(&self, bucket: &str, prefix: &str) -> Result<Operator> {
        let mut b = opendal::services::Gcs::default()
            .bucket(bucket)
            .root(&root_of(prefix));
        if let Some(e) = &self.endpoint {
            b = b.endpoint(e);
        }
        if let Some(p) = &self.credential_path {
            b = b.credential_path(p);
        }
        Operator::new(b)
    }
}

/// Azure Blob Storage.
#[derive(Debug, Clone, Default)]
pub struct AzureOptions {
    /// Endpoint (default `https://ACCOUNT.blob.core.windows.net`).
    pub endpoint: Option<String>,
    /// Storage account name.
    pub account_name: Option<String>,
    /// Storage account key.
    pub account_key: Option<String>,
    /// SAS token.
    pub sas_token: Option<String>,
}

impl AzureOptions {
    /// The operator for `container` and `prefix`; no request is made.
    ///
    /// # Errors
    /// Settings OpenDAL refuses.
    pub fn operator(&self, container: &str, prefix: &str) -> Result<Operator> {
        let mut b = opendal::services::Azblob::default()
            .container(container)
            .root(&root_of(prefix));
        let endpoint = self.endpoint.clone().or_else(|| {
            self.account_name
                .as_ref()
                .map(|a| format!("https://{a}.blob.core.windows.net"))
        });
        if let Some(a) = &self.account_name {
            b = b.account_name(a);
        }
        if let Some(ep) = &endpoint {
            b = b.endpoint(ep);
        }
        if let Some(k) = &self.account_key {
            b = b.account_key(k);
        }
        if let Some(t) = &self.sas_token {
            b = b.sas_token(t);
        }
        Operator::new(b)
    }
}
