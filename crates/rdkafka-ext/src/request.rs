//! One raw request of any API sent through the client's own connection
//! (`csrc/request.c`): kvault encodes the body and decodes the answer
//! (`kvault::kafka::protocol`); librdkafka writes the header, the
//! flexible versions' tags, and owns the connection with its TLS and SASL.
//! Used for the cluster's own state (ACLs, SCRAM users, client quotas,
//! broker configs), which librdkafka's admin API covers only in part.

use std::time::Duration;

pub use crate::fetch::FetchError as RequestError;

/// Which broker to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// Any broker that is up (KRaft forwards controller requests).
    Any,
    /// The broker with this node id.
    Id(i32),
}

impl Broker {
    #[cfg(kvault_headers_shim)]
    fn id(self) -> i32 {
        match self {
            Broker::Any => -1,
            Broker::Id(i) => i,
        }
    }
}

#[cfg(kvault_headers_shim)]
fn millis(t: Duration) -> i32 {
    i32::try_from(t.as_millis()).unwrap_or(i32::MAX)
}

/// The highest version of `api` in `min..=max` that `broker` speaks.
///
/// # Errors
/// No shim in this build; no broker up in time; no version in the range.
#[cfg(kvault_headers_shim)]
pub fn api_version<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
    broker: Broker,
    api: i16,
    (min, max): (i16, i16),
    timeout: Duration,
) -> Result<i16, RequestError> {
    use rdkafka_sys as rd;
    let mut ver = -1i16;
    // SAFETY: the client is live for the call; the out-pointer is ours.
    let err = unsafe {
        kvault_api_version(
            client.native_ptr(),
            broker.id(),
            api,
            min,
            max,
            millis(timeout),
            &mut ver,
        )
    };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(RequestError::Kafka(err.into()));
    }
    Ok(ver)
}

/// Sends `body` as a request of `api` version `version` (`flexible`: a
/// flexible version, whose top-level tags librdkafka appends) to
/// `broker`; returns the response after its header.
///
/// # Errors
/// No shim in this build; no broker up in time; the version unsupported;
/// the request failing or timing out.
#[cfg(kvault_headers_shim)]
pub fn request_raw<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
    broker: Broker,
    (api, version, flexible): (i16, i16, bool),
    body: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, RequestError> {
    use rdkafka_sys as rd;
    let (mut out, mut len) = (std::ptr::null_mut(), 0usize);
    // SAFETY: the client is live for the call; `body` is read for
    // `body.len()` bytes during it; the out-pointers are ours.
    let err = unsafe {
        kvault_request_raw(
            client.native_ptr(),
            broker.id(),
            api,
            version,
            i8::from(flexible),
            body.as_ptr().cast(),
            body.len(),
            millis(timeout),
            &mut out,
            &mut len,
        )
    };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(RequestError::Kafka(err.into()));
    }
    let bytes = if out.is_null() {
        Vec::new()
    } else {
        // SAFETY: the shim returned `len` bytes at `out`, ours until freed.
        unsafe { std::slice::from_raw_parts(out.cast::<u8>(), len) }.to_vec()
    };
    // SAFETY: `out` came from kvault_request_raw and is freed once.
    unsafe { kvault_request_free(out) };
    Ok(bytes)
}

/// Without the shim there are no raw requests.
///
/// # Errors
/// Always [`RequestError::Unavailable`].
#[cfg(not(kvault_headers_shim))]
pub fn api_version<C: rdkafka::client::ClientContext>(
    _client: &rdkafka::client::Client<C>,
    _broker: Broker,
    _api: i16,
    _range: (i16, i16),
    _timeout: Duration,
) -> Result<i16, RequestError> {
    Err(RequestError::Unavailable)
}

/// Without the shim there are no raw requests.
///
/// # Errors
/// Always [`RequestError::Unavailable`].
#[cfg(not(kvault_headers_shim))]
pub fn request_raw<C: rdkafka::client::ClientContext>(
    _client: &rdkafka::client::Client<C>,
    _broker: Broker,
    _api: (i16, i16, bool),
    _body: &[u8],
    _timeout: Duration,
) -> Result<Vec<u8>, RequestError> {
    Err(RequestError::Unavailable)
}

#[cfg(kvault_headers_shim)]
unsafe extern "C" {
    fn kvault_api_version(
        rk: *mut rdkafka_sys::rd_kafka_t,
        broker_id: i32,
        api: i16,
        minv: i16,
        maxv: i16,
        timeout_ms: i32,
        ver: *mut i16,
    ) -> rdkafka_sys::rd_kafka_resp_err_t;
    fn kvault_request_raw(
        rk: *mut rdkafka_sys::rd_kafka_t,
        broker_id: i32,
        api: i16,
        ver: i16,
        flexible: i8,
        req: *const std::ffi::c_char,
        req_len: usize,
        timeout_ms: i32,
        body: *mut *mut std::ffi::c_char,
        len: *mut usize,
    ) -> rdkafka_sys::rd_kafka_resp_err_t;
    fn kvault_request_free(body: *mut std::ffi::c_char);
}

/// Whether this build can send raw requests (it has the shim).
pub const fn available() -> bool {
    cfg!(kvault_headers_shim)
}
