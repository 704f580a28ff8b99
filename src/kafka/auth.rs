//! SASL/OAUTHBEARER tokens kvault makes itself, for clusters whose tokens
//! librdkafka cannot fetch on its own (OIDC it can: those are plain
//! `sasl.oauthbearer.*` properties):
//!
//! - **AWS MSK IAM** (`--kafka-auth msk-iam`): a SigV4-presigned
//!   `kafka-cluster:Connect` request to `https://kafka.REGION.amazonaws.com/`,
//!   valid 15 minutes, base64url-encoded without padding, exactly as AWS's
//!   `aws-msk-iam-sasl-signer` libraries make it. Credentials come from the
//!   AWS default chain (environment, shared profile / `AWS_PROFILE`, SSO,
//!   web identity / IRSA, ECS container, EC2 instance metadata). The
//!   signing is in [`super::msk`].
//! - **A token command** (`--kafka-token-command CMD`): the token is what
//!   `sh -c CMD` prints (e.g. `gcloud auth print-access-token`); a JWT's
//!   `exp` and `sub` give its lifetime and principal.
//!
//! Every client gets a token when it is created (so blocking metadata
//! calls work before any poll) and a fresh one before it expires: from
//! rdkafka's refresh callback on polled clients ([`Tokens::rdkafka_token`]),
//! from [`keep_fresh`] on the admin client, which rdkafka never polls.

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use super::msk::MSK_TOKEN_SECONDS;
pub use super::token::Token;
use super::token::now_ms;
use crate::error::{Error, Result};

/// Lifetime assumed for a command's token that is not a JWT.
const OPAQUE_TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// How long a token command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Where OAUTHBEARER tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// AWS MSK IAM for the cluster's region.
    MskIam {
        /// The cluster's AWS region.
        region: String,
    },
    /// The output of a shell command.
    Command(String),
}

/// A token source shared by every client of one set of options; tokens are
/// cached until 80% of their lifetime.
pub struct Tokens {
    kind: TokenKind,
    cache: Mutex<Option<(Token, i64)>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({:?})", self.kind)
    }
}

impl Tokens {
    /// A source of `kind`.
    pub fn new(kind: TokenKind) -> Arc<Tokens> {
        Arc::new(Tokens {
            kind,
            cache: Mutex::new(None),
        })
    }

    /// What kind of source this is.
    pub fn kind(&self) -> &TokenKind {
        &self.kind
    }

    /// A valid token: the cached one, or a new one.
    ///
    /// # Errors
    /// No AWS credentials, signing failing, the command failing.
    pub fn token(&self) -> Result<Token> {
        if let Ok(c) = self.cache.lock() {
            if let Some((t, issued)) = c.as_ref() {
                if t.fresh(*issued) {
                    return Ok(t.clone());
                }
            }
        }
        let issued = now_ms();
        let t = match &self.kind {
            TokenKind::MskIam { region } => super::msk::msk_iam_token_now(region)?,
            TokenKind::Command(cmd) => command_token(cmd)?,
        };
        if let Ok(mut c) = self.cache.lock() {
            *c = Some((t.clone(), issued));
        }
        Ok(t)
    }

    /// The token as rdkafka's refresh callback returns it.
    ///
    /// # Errors
    /// As [`Tokens::token`], boxed for rdkafka.
    #[cfg(feature = "kafka")]
    pub fn rdkafka_token(
        &self,
    ) -> std::result::Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        let t = self.token()?;
        Ok(rdkafka::client::OAuthToken {
            token: t.value,
            principal_name: t.principal,
            lifetime_ms: t.expires_ms,
        })
    }
}

/// Gives a client its token now (blocking calls need one before any poll).
///
/// # Errors
/// No token could be made; librdkafka refusing it (the client is not set
/// up for SASL/OAUTHBEARER).
#[cfg(feature = "kafka")]
pub fn prime<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
    tokens: &Tokens,
) -> Result<()> {
    match tokens.token() {
        Ok(t) => kvault_rdkafka_token::set_token(client, &t.value, t.expires_ms, &t.principal).map_err(|e| {
            Error::Kafka {
                op: "setting the OAUTHBEARER token".into(),
                detail: format!("librdkafka refused it: {e}"),
                code: None,
                transient: false,
            }
        }),
        Err(e) => {
            kvault_rdkafka_token::set_token_failure(client, &e.to_string());
            Err(e)
        }
    }
}

/// The librdkafka client inside each kind of rdkafka client kvault makes.
#[cfg(feature = "kafka")]
pub trait HasClient<C: rdkafka::client::ClientContext> {
    /// The client.
    fn native(&self) -> &rdkafka::client::Client<C>;
}

#[cfg(feature = "kafka")]
impl<C: rdkafka::consumer::ConsumerContext> HasClient<C> for rdkafka::consumer::BaseConsumer<C> {
    fn native(&self) -> &rdkafka::client::Client<C> {
        rdkafka::consumer::Consumer::client(self)
    }
}

#[cfg(feature = "kafka")]
impl<C: rdkafka::producer::ProducerContext + 'static> HasClient<C>
    for rdkafka::producer::ThreadedProducer<C>
{
    fn native(&self) -> &rdkafka::client::Client<C> {
        rdkafka::producer::Producer::client(self)
    }
}

#[cfg(feature = "kafka")]
impl<C: rdkafka::client::ClientContext> HasClient<C> for rdkafka::admin::AdminClient<C> {
    fn native(&self) -> &rdkafka::client::Client<C> {
        self.inner()
    }
}

/// Creates an rdkafka client of `cfg` with `context`, and gives it a token
/// when kvault makes the tokens (`what` names the client in errors).
///
/// # Errors
/// Invalid properties; no token.
#[cfg(feature = "kafka")]
pub fn create<C, T>(
    cfg: &rdkafka::ClientConfig,
    context: C,
    opts: &super::KafkaOptions,
    what: &str,
) -> Result<T>
where
    C: rdkafka::client::ClientContext,
    T: rdkafka::config::FromClientConfigAndContext<C> + HasClient<C>,
{
    let client: T = cfg.create_with_context(context).map_err(|e| Error::Kafka {
        op: format!("{what} for {}", opts.brokers),
        detail: e.to_string(),
        code: None,
        transient: false,
    })?;
    if let Some(tokens) = &opts.tokens {
        prime(client.native(), tokens)?;
    }
    Ok(client)
}

/// What rdkafka's refresh callback gets: a token from `tokens`, or the
/// reason there is none.
///
/// # Errors
/// No token source (SASL/OAUTHBEARER set by properties without
/// `sasl.oauthbearer.method=oidc`), or the source failing.
#[cfg(feature = "kafka")]
pub fn refresh(
    tokens: Option<&Tokens>,
) -> std::result::Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
    match tokens {
        Some(t) => t.rdkafka_token(),
        None => Err(
            "SASL/OAUTHBEARER needs a token: --kafka-auth msk-iam, --kafka-token-command, or \
                     sasl.oauthbearer.method=oidc with its sasl.oauthbearer.* properties"
                .into(),
        ),
    }
}

/// Keeps the clients `owner` holds supplied with fresh tokens until the
/// owner is dropped: a thread wakes every second, and gives each client
/// (from `clients`) a new token when the cached one is due for renewal.
#[cfg(feature = "kafka")]
pub fn keep_fresh<T: Send + Sync + 'static>(
    owner: std::sync::Weak<T>,
    tokens: Arc<Tokens>,
    apply: fn(&T, &Tokens) -> Result<()>,
) {
    let spawned = std::thread::Builder::new()
        .name("kvault-oauth-refresh".into())
        .spawn(move || {
            let mut last: Option<Token> = None;
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let Some(o) = owner.upgrade() else { return };
                match tokens.token() {
                    Ok(t) if last.as_ref() == Some(&t) => {}
                    Ok(t) => {
                        if let Err(e) = apply(&o, &tokens) {
                            log::warn!("kafka: refreshing the OAUTHBEARER token: {e}");
                        }
                        last = Some(t);
                    }
                    Err(e) => log::warn!("kafka: refreshing the OAUTHBEARER token: {e}"),
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("kafka: no thread to refresh OAUTHBEARER tokens: {e}");
    }
}

/// The token a command prints.
fn command_token(cmd: &str) -> Result<Token> {
    let fail = |what: String| Error::Kafka {
        op: "running the token command".into(),
        detail: what,
        code: None,
        transient: false,
    };
    let out = crate::process::run_shell_blocking(cmd, COMMAND_TIMEOUT, crate::process::Stderr::Capture)
        .map_err(|e| fail(e.to_string()))?;
    let value = String::from_utf8(out)
        .map_err(|_| fail("printed something that is not text".into()))?
        .trim()
        .to_string();
    if value.is_empty() {
        return Err(fail("printed nothing".into()));
    }
    let (exp, sub) = jwt_claims(&value);
    Ok(Token {
        principal: sub.unwrap_or_else(|| "kvault".into()),
        expires_ms: exp.map_or_else(
            || now_ms() + OPAQUE_TOKEN_LIFETIME.as_millis() as i64,
            |s| s * 1000,
        ),
        value,
    })
}

/// `exp` (seconds) and `sub` of a JWT's payload, when the token is one.
fn jwt_claims(token: &str) -> (Option<i64>, Option<String>) {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return (None, None);
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return (None, None);
    };
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return (None, None);
    };
    (
        claims.get("exp").and_then(serde_json::Value::as_i64),
        claims.get("sub").and_then(|s| s.as_str()).map(str::to_string),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_token_takes_lifetime_and_principal_from_its_jwt() {
        use base64::Engine as _;
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.{}",
            enc(r#"{"alg":"RS256"}"#),
            enc(r#"{"sub":"svc-backup","exp":1900000000}"#),
            enc("sig")
        );
        let t = command_token(&format!("printf '%s\\n' '{jwt}'")).expect("token");
        assert_eq!(
            (t.principal.as_str(), t.expires_ms),
            ("svc-backup", 1_900_000_000_000)
        );
        assert_eq!(t.value, jwt);
        let t = command_token("echo opaque-token").expect("token");
        assert_eq!(t.principal, "kvault");
        assert!(t.expires_ms > now_ms() + 500_000);
        let e = command_token("echo denied >&2; exit 3").expect_err("fails");
        assert!(e.to_string().contains("denied"), "{e}");
        let e = command_token("true").expect_err("empty");
        assert!(e.to_string().contains("printed nothing"), "{e}");
    }

    #[test]
    fn tokens_are_cached_until_most_of_their_life_has_passed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let count = dir.path().join("n");
        let src = Tokens::new(TokenKind::Command(format!(
            "echo x >> {0}; wc -l < {0}",
            count.display()
        )));
        let a = src.token().expect("token");
        let b = src.token().expect("token");
        assert_eq!(a, b, "the second call reuses the first token");
        assert_eq!(a.value, "1");
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn keep_fresh_renews_before_expiry_and_stops_with_its_owner() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // A JWT valid for 3 s, new on every run of the command.
        let cmd = r#"python3 -c '
import base64, json, time
e = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
print(e({"alg": "none"}) + "." + e({"sub": "s", "exp": int(time.time()) + 3, "n": time.time()}) + ".x")'"#;
        let tokens = Tokens::new(TokenKind::Command(cmd.into()));
        let owner = Arc::new(AtomicUsize::new(0));
        keep_fresh(Arc::downgrade(&owner), tokens.clone(), |n, _| {
            n.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        std::thread::sleep(Duration::from_millis(6_500));
        let renewed = owner.load(Ordering::SeqCst);
        assert!(renewed >= 2, "renewed {renewed} times in 6.5 s of 3 s tokens");
        let weak = Arc::downgrade(&owner);
        drop(owner);
        std::thread::sleep(Duration::from_millis(1_500));
        assert!(
            weak.upgrade().is_none(),
            "the refresher holds no strong reference"
        );
    }
}
