//! S3 Object Lock ([`super::worm::ObjectLock`] for S3): retention dates on
//! objects, read and extended, and the removal of every version of an
//! object (a versioned bucket keeps a deleted object's versions; only
//! deleting each frees the space).
//!
//! OpenDAL 0.59's S3 service sends no Object Lock headers and has no
//! retention calls, so the three requests it lacks (`PUT`/`GET ?retention`,
//! `GET ?object-lock`) are made here: reqwest, signed by reqsign's SigV4
//! signer (the one OpenDAL itself uses) with the same credentials. Versions
//! are listed and deleted through OpenDAL.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use opendal::Operator;
use reqsign_aws_v4::Credential;

use super::worm::{LockMode, ObjectLock};
use super::{BackendError, BackendErrorKind, BackendResult};

/// Object Lock on S3 or an S3-compatible server, path-style requests.
pub struct S3ObjectLock {
    http: reqwest::Client,
    signer: reqsign_core::Signer<Credential>,
    /// `https://endpoint/bucket`.
    base: String,
    /// Key prefix of the repository, with its trailing `/` ("" for none).
    prefix: String,
    op: Operator,
}

impl fmt::Debug for S3ObjectLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3ObjectLock({}/{})", self.base, self.prefix)
    }
}

/// What [`S3ObjectLock::new`] needs to reach and sign for the bucket.
#[derive(Debug, Clone, Default)]
pub struct S3Target {
    /// Endpoint URL (default `https://s3.REGION.amazonaws.com`).
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
    /// Bucket.
    pub bucket: String,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Access key id; without it, the AWS default chain.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token.
    pub session_token: Option<String>,
}

impl S3ObjectLock {
    /// The client for `target`, versions through `op`; no request is made.
    pub fn new(target: &S3Target, op: Operator) -> Self {
        let region = target.region.clone().unwrap_or_else(|| "us-east-1".into());
        let endpoint = target
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let ctx = reqsign_core::Context::new()
            .with_file_read(reqsign_file_read_tokio::TokioFileRead)
            .with_env(reqsign_core::OsEnv)
            .with_http_send(opendal::HttpTransporter::default());
        let sign = reqsign_aws_v4::RequestSigner::new("s3", &region);
        let signer = match (&target.access_key_id, &target.secret_access_key) {
            (Some(k), Some(s)) => {
                let mut p = reqsign_aws_v4::StaticCredentialProvider::new(k, s);
                if let Some(t) = &target.session_token {
                    p = p.with_session_token(t);
                }
                reqsign_core::Signer::new(ctx, p, sign)
            }
            _ => reqsign_core::Signer::new(ctx, reqsign_aws_v4::DefaultCredentialProvider::new(), sign),
        };
        let prefix = target.prefix.trim_matches('/');
        S3ObjectLock {
            http: reqwest::Client::new(),
            signer,
            base: format!("{}/{}", endpoint.trim_end_matches('/'), target.bucket),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            op,
        }
    }

    fn url(&self, path: &str, query: &str) -> String {
        let key = percent_encoding::utf8_percent_encode(&format!("{}{path}", self.prefix), KEY).to_string();
        format!("{}/{key}?{query}", self.base)
    }

    /// Sends one signed request; the status and body come back, or a
    /// transport failure as a transient error.
    async fn send(
        &self,
        op: &'static str,
        path: &str,
        method: http::Method,
        url: &str,
        body: Vec<u8>,
    ) -> BackendResult<(u16, String)> {
        use sha2::Digest as _;
        let fail = |kind, e: &dyn fmt::Display| BackendError::new(kind, op, path, e);
        let mut req = http::Request::builder()
            .method(method)
            .uri(url)
            .header("x-amz-content-sha256", hex::encode(sha2::Sha256::digest(&body)));
        if !body.is_empty() {
            use base64::Engine as _;
            use md5::Digest as _;
            let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
            req = req.header("content-md5", md5);
        }
        let (mut parts, ()) = req
            .body(())
            .map_err(|e| fail(BackendErrorKind::Permanent, &e))?
            .into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|e| fail(BackendErrorKind::Permanent, &format!("signing: {e}")))?;
        let mut rb = self.http.request(parts.method, parts.uri.to_string()).body(body);
        for (k, v) in &parts.headers {
            rb = rb.header(k, v);
        }
        let resp = rb
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| fail(BackendErrorKind::Transient, &e))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| fail(BackendErrorKind::Transient, &e))?;
        Ok((status, text))
    }
}

/// What a key may keep unencoded in a URL path: SigV4's unreserved
/// characters and `/`.
const KEY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// The text of the first `<tag>…</tag>` in an S3 XML answer.
pub fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..start + len].trim())
}

/// The error of an S3 answer that is not a success, classed by status and
/// code.
fn answer_error(op: &'static str, path: &str, status: u16, body: &str) -> BackendError {
    let code = xml_text(body, "Code").unwrap_or("");
    let message = xml_text(body, "Message").unwrap_or(code);
    let kind = match status {
        403 => BackendErrorKind::Denied,
        404 => BackendErrorKind::NotFound,
        429 | 500..=599 => BackendErrorKind::Transient,
        _ => BackendErrorKind::Permanent,
    };
    BackendError::new(kind, op, path, format!("{code} ({status}): {message}"))
}

/// S3's answer for an object or bucket without a lock configuration.
fn no_lock_configuration(body: &str) -> bool {
    matches!(
        xml_text(body, "Code"),
        Some(
            "NoSuchObjectLockConfiguration"
                | "ObjectLockConfigurationNotFoundError"
                | "NoSuchKey"
                | "InvalidRequest"
        )
    )
}

/// An RFC 3339 date, rounded up to the second, as S3 takes it.
fn s3_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
        .unwrap_or(0);
    jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A date S3 wrote.
pub fn parse_s3_date(s: &str) -> Option<SystemTime> {
    let t: jiff::Timestamp = s.parse().ok()?;
    Some(SystemTime::from(t))
}

#[async_trait]
impl ObjectLock for S3ObjectLock {
    async fn enabled(&self) -> BackendResult<bool> {
        let url = format!("{}?object-lock", self.base);
        let (status, body) = self
            .send("object lock", "", http::Method::GET, &url, Vec::new())
            .await?;
        match status {
            200 => Ok(xml_text(&body, "ObjectLockEnabled") == Some("Enabled")),
            404 if no_lock_configuration(&body) => Ok(false),
            _ => Err(answer_error("object lock", "", status, &body)),
        }
    }

    async fn retain(&self, path: &str, mode: LockMode, until: SystemTime) -> BackendResult<()> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            mode.s3_name(),
            s3_date(until)
        );
        let url = self.url(path, "retention");
        let (status, answer) = self
            .send("retain", path, http::Method::PUT, &url, body.into_bytes())
            .await?;
        match status {
            200 | 204 => Ok(()),
            _ => Err(answer_error("retain", path, status, &answer)),
        }
    }

    async fn retained_until(&self, path: &str) -> BackendResult<Option<SystemTime>> {
        let url = self.url(path, "retention");
        let (status, body) = self
            .send("retention", path, http::Method::GET, &url, Vec::new())
            .await?;
        match status {
            200 => Ok(xml_text(&body, "RetainUntilDate").and_then(parse_s3_date)),
            400 | 404 if no_lock_configuration(&body) => Ok(None),
            _ => Err(answer_error("retention", path, status, &body)),
        }
    }

    async fn purge(&self, path: &str) -> BackendResult<()> {
        let map = |e: opendal::Error| super::opendal::map_err("remove", path, &e);
        let entries = self
            .op
            .list_with(path)
            .versions(true)
            .deleted(true)
            .await
            .map_err(map)?;
        for e in entries.iter().filter(|e| e.path() == path) {
            match e.metadata().version() {
                Some(v) => self.op.delete_with(path).version(v).await.map_err(map)?,
                None => self.op.delete(path).await.map_err(map)?,
            }
        }
        Ok(())
    }

    async fn may_delete(&self, path: &str) -> BackendResult<bool> {
        match self.op.delete(path).await {
            Ok(()) => {}
            Err(e) if e.kind() == opendal::ErrorKind::PermissionDenied => return Ok(false),
            Err(e) => return Err(super::opendal::map_err("remove", path, &e)),
        }
        self.purge(path).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_up_to_the_second_and_read_back() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_250);
        assert_eq!(s3_date(t), "2027-01-15T08:00:01Z");
        assert_eq!(
            parse_s3_date("2027-01-15T08:00:01Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_001))
        );
        assert_eq!(
            parse_s3_date("2027-01-15T08:00:01.000Z"),
            parse_s3_date("2027-01-15T08:00:01Z")
        );
        assert_eq!(parse_s3_date("yesterday"), None);
    }

    #[test]
    fn answers_are_classed_by_status_and_code() {
        let denied = "<Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>";
        let e = answer_error("retain", "data/ab/x", 403, denied);
        assert_eq!(e.kind, BackendErrorKind::Denied);
        assert_eq!(
            e.to_string(),
            "retain data/ab/x: AccessDenied (403): Access Denied."
        );
        assert!(no_lock_configuration(
            "<Error><Code>ObjectLockConfigurationNotFoundError</Code></Error>"
        ));
        assert_eq!(xml_text("<a><b> x </b></a>", "b"), Some("x"));
        assert_eq!(xml_text("<a><b>x</a>", "b"), None);
    }
}
