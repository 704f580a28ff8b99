//! An OAUTHBEARER token as librdkafka takes it, whoever made it
//! ([`super::auth`] for token commands, [`super::msk`] for MSK IAM).

use std::time::{SystemTime, UNIX_EPOCH};

/// A token and what librdkafka needs to know about it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The bearer token.
    pub value: String,
    /// The principal it authenticates.
    pub principal: String,
    /// When it expires, milliseconds since the Unix epoch.
    pub expires_ms: i64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("principal", &self.principal)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

/// Now, in milliseconds since the Unix epoch.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Token {
    /// Whether a token issued at `issued_ms` is still fresh: a cached token
    /// is reused until 80% of its lifetime has passed.
    pub(super) fn fresh(&self, issued_ms: i64) -> bool {
        let life = (self.expires_ms - issued_ms).max(0);
        now_ms() < issued_ms + life * 4 / 5
    }
}
