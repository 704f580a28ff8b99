//! Sets a SASL/OAUTHBEARER token on an rdkafka client directly.
//!
//! rdkafka hands librdkafka's token refresh request to
//! `ClientContext::generate_oauth_token` only while the client's queue is
//! polled, and its `AdminClient` never polls the queue the request lands
//! on (fede1024/rust-rdkafka#757): an admin client, or a consumer used only
//! for blocking metadata calls, would wait for a token forever. kvault sets
//! the token itself, right after creating a client and again before it
//! expires, through `rd_kafka_oauthbearer_set_token`. This crate holds that
//! one foreign call, so the kvault crate itself stays free of `unsafe`.

use std::ffi::{CStr, CString, c_char};

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

/// Sets `token` (valid until `expires_ms`, milliseconds since the Unix
/// epoch) for `principal` on the client; librdkafka uses it for every
/// broker connection that authenticates from now on.
///
/// # Errors
/// librdkafka's reason when it refuses the token (e.g. the client is not
/// configured for SASL/OAUTHBEARER, or the token is malformed); a token or
/// principal containing a NUL byte.
pub fn set_token<C: ClientContext>(
    client: &Client<C>,
    token: &str,
    expires_ms: i64,
    principal: &str,
) -> Result<(), String> {
    let token = CString::new(token).map_err(|_| "the token contains a NUL byte".to_string())?;
    let principal = CString::new(principal).map_err(|_| "the principal contains a NUL byte".to_string())?;
    let mut err: [c_char; 512] = [0; 512];
    // SAFETY: `client` is borrowed for the call, so its native handle is
    // alive; `token` and `principal` are NUL-terminated and outlive the
    // call; there are no extensions (null, 0); `err` is writable for its
    // length, which is what librdkafka is told.
    let code = unsafe {
        rd::rd_kafka_oauthbearer_set_token(
            client.native_ptr(),
            token.as_ptr(),
            expires_ms,
            principal.as_ptr(),
            std::ptr::null_mut(),
            0,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if code == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        // SAFETY: librdkafka NUL-terminates what it writes into `err`, and
        // the buffer was zeroed, so it holds a C string either way.
        let reason = unsafe { CStr::from_ptr(err.as_ptr()) };
        Err(reason.to_string_lossy().into_owned())
    }
}

/// Tells librdkafka that no token could be made (`reason` is logged and
/// reported on the client's connections), so it fails authentication
/// instead of waiting.
pub fn set_token_failure<C: ClientContext>(client: &Client<C>, reason: &str) {
    let reason = CString::new(reason.replace('\0', " ")).unwrap_or_default();
    // SAFETY: `client` is borrowed, so its handle is alive; `reason` is
    // NUL-terminated and outlives the call.
    unsafe {
        rd::rd_kafka_oauthbearer_set_token_failure(client.native_ptr(), reason.as_ptr());
    }
}
