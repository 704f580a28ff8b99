//! AWS MSK IAM tokens: a SigV4-presigned `kafka-cluster:Connect` request,
//! made here because reqsign's signer takes no signing time outside its own
//! tests, so AWS's golden vectors (fixed time) could not check it.
//!
//! The credentials come from reqsign's AWS default chain; the signing is
//! the few lines of SigV4 a presigned GET with one signed header needs.

use super::token::{Token, now_ms};
use crate::error::{Error, Result};

/// How long an MSK IAM token is valid (AWS's signers use 900 s).
pub const MSK_TOKEN_SECONDS: u64 = 900;

/// The MSK IAM token for `region` with the default AWS credential chain.
pub(super) fn msk_iam_token_now(region: &str) -> Result<Token> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Error::Kafka {
        op: format!("MSK IAM: {what}"),
        detail: e.to_string(),
        code: None,
        transient: false,
    };
    // Called from librdkafka's threads as well as kvault's: a small runtime
    // of its own runs the (asynchronous) credential chain.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail("starting a runtime", &e))?;
    let region = region.to_string();
    let run = move || {
        rt.block_on(async {
            use reqsign_core::ProvideCredential;
            let ctx = reqsign_core::Context::new()
                .with_file_read(reqsign_file_read_tokio::TokioFileRead)
                .with_env(reqsign_core::OsEnv)
                .with_http_send(opendal::HttpTransporter::default());
            let cred = reqsign_aws_v4::DefaultCredentialProvider::new()
                .provide_credential(&ctx)
                .await
                .map_err(|e| fail("loading AWS credentials", &e))?
                .ok_or_else(|| {
                    fail(
                        "loading AWS credentials",
                        &"none found (environment, profile, web identity, container or instance metadata)",
                    )
                })?;
            msk_iam_token(
                &region,
                &cred.access_key_id,
                &cred.secret_access_key,
                cred.session_token.as_deref(),
                now_ms() / 1000,
            )
        })
    };
    // block_on refuses to run inside another runtime's thread.
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(run).join())
            .map_err(|_| Error::worker("the MSK IAM signing thread", "it panicked"))?
    } else {
        run()
    }
}

/// Every byte but SigV4's unreserved characters (`A-Za-z0-9-_.~`) is
/// `%XX`-encoded, upper case.
const AWS_ENCODED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// AWS's URI encoding of `s`.
fn aws_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, AWS_ENCODED).to_string()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    use hmac::Mac as _;
    // HMAC takes a key of any length.
    let mut m =
        <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The MSK IAM token for `region`, credentials and signing time `now`
/// (seconds since the Unix epoch): a SigV4 query-signed (presigned) GET of
/// `https://kafka.REGION.amazonaws.com/?Action=kafka-cluster:Connect`,
/// valid [`MSK_TOKEN_SECONDS`], with kvault's User-Agent appended
/// unsigned, base64url-encoded without padding — byte for byte what AWS's
/// signer libraries make (golden vectors in the tests).
pub fn msk_iam_token(
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
    now: i64,
) -> Result<Token> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let t = time_parts(now)?;
    let (date, stamp) = (&t[..8], t.as_str());
    let host = format!("kafka.{region}.amazonaws.com");
    let scope = format!("{date}/{region}/kafka-cluster/aws4_request");
    let mut query: Vec<(String, String)> = vec![
        ("Action".into(), "kafka-cluster:Connect".into()),
        ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
        ("X-Amz-Credential".into(), format!("{access_key_id}/{scope}")),
        ("X-Amz-Date".into(), stamp.to_string()),
        ("X-Amz-Expires".into(), MSK_TOKEN_SECONDS.to_string()),
        ("X-Amz-SignedHeaders".into(), "host".into()),
    ];
    if let Some(tok) = session_token {
        query.push(("X-Amz-Security-Token".into(), tok.to_string()));
    }
    let encode = |q: &[(String, String)]| {
        q.iter()
            .map(|(k, v)| format!("{}={}", aws_encode(k), aws_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    // The URL lists the parameters in the order AWS's signers do; the
    // signature covers them sorted.
    let in_url = encode(&query);
    query.sort();
    let canonical_query = encode(&query);
    let empty_payload = hex::encode(sha2::Sha256::digest(b""));
    let creq = format!("GET\n/\n{canonical_query}\nhost:{host}\n\nhost\n{empty_payload}");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex::encode(sha2::Sha256::digest(creq.as_bytes()))
    );
    let key = ["kafka-cluster", "aws4_request"].iter().fold(
        hmac(&hmac(format!("AWS4{secret_access_key}").as_bytes(), date), region),
        |k, part| hmac(&k, part),
    );
    let signature = hex::encode(hmac(&key, &to_sign));
    let url = format!(
        "https://{host}/?{in_url}&X-Amz-Signature={signature}&User-Agent={}",
        aws_encode(&format!("kvault/{}", env!("CARGO_PKG_VERSION")))
    );
    Ok(Token {
        value: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_bytes()),
        principal: access_key_id.to_string(),
        expires_ms: (now + MSK_TOKEN_SECONDS as i64) * 1000,
    })
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time.
fn time_parts(unix: i64) -> Result<String> {
    let t = jiff::Timestamp::from_second(unix).map_err(|e| Error::bad_value("signing time", unix, e))?;
    Ok(t.strftime("%Y%m%dT%H%M%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a token back to the signed URL.
    fn url_of(t: &Token) -> String {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&t.value)
            .expect("base64url without padding");
        String::from_utf8(bytes).expect("a URL")
    }

    /// The query's parameters, without the User-Agent (each library puts
    /// its own name there; it is not signed).
    fn params(url: &str) -> Vec<(String, String)> {
        let (base, query) = url.split_once('?').expect("a query");
        assert_eq!(base, "https://kafka.eu-west-1.amazonaws.com/");
        let mut v: Vec<(String, String)> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k != "User-Agent")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        v
    }

    /// Golden vectors from AWS's own signer, aws-msk-iam-sasl-signer-python
    /// 1.0.2 on botocore, with the same credentials and signing time
    /// (scripts/golden/msk-iam-token.py prints them).
    const GOLDEN_STATIC: &str = "https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261129%2Feu-west-1%2Fkafka-cluster%2Faws4_request&X-Amz-Date=20261129T093000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=da7ab978cb517e717b00598ef7267517873b9b7535d1049a223e58ef49175bce&User-Agent=aws-msk-iam-sasl-signer-python%2F1.0.2";
    const GOLDEN_SESSION: &str = "https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLE%2F20261129%2Feu-west-1%2Fkafka-cluster%2Faws4_request&X-Amz-Date=20261129T093000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE%2F%2Ftoken%2B%2F%3D&X-Amz-Signature=34c0078090caa815341f9ed66925d0846aad1379b1c0c9632fe48df19368fa2d&User-Agent=aws-msk-iam-sasl-signer-python%2F1.0.2";

    #[test]
    fn msk_iam_tokens_match_aws_signer() {
        let at = 1_795_944_600; // 2026-11-29T09:30:00Z
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        for (key, session, golden) in [
            ("AKIDEXAMPLE", None, GOLDEN_STATIC),
            (
                "ASIAEXAMPLE",
                Some("FwoGZXIvYXdzEXAMPLE//token+/="),
                GOLDEN_SESSION,
            ),
        ] {
            let t = msk_iam_token("eu-west-1", key, secret, session, at).expect("signed");
            assert!(
                !t.value.contains(['=', '+', '/']),
                "base64url without padding: {}",
                t.value
            );
            let url = url_of(&t);
            assert_eq!(params(&url), params(golden), "{url}");
            // Byte for byte up to the User-Agent, which names the library.
            let cut = |u: &str| u.split("&User-Agent=").next().map(str::to_string);
            assert_eq!(cut(&url), cut(golden));
            assert!(url.ends_with(&format!("&User-Agent=kvault%2F{}", env!("CARGO_PKG_VERSION"))));
            // AWS's signer reports expiry as signing time + 900 s, in ms.
            assert_eq!(t.expires_ms, 1_795_945_500_000);
            assert_eq!(t.principal, key);
        }
    }
}
