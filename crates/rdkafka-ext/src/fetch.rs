//! One raw Fetch request sent through the client's own connection
//! (`csrc/fetch.c`), its answer handed back undecoded: the producer ids,
//! transactional flags and transaction markers the consumer keeps to
//! itself are in it. kvault decodes it (`kvault::kafka::batches`).

use std::time::Duration;

/// A Fetch answer, undecoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFetch {
    /// The Fetch version it answers (4..=11).
    pub version: i16,
    /// The answer after its response header.
    pub body: Vec<u8>,
}

/// Why a raw fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// This build has no shim (linked against a system librdkafka).
    #[error("raw fetches need kvault's librdkafka shim, which this build lacks")]
    Unavailable,
    /// librdkafka or the broker refused or failed the request.
    #[error("fetch failed: {0}")]
    Kafka(rdkafka::types::RDKafkaErrorCode),
}

/// Fetches what the leader of partition `partition` of `topic` holds from `offset`
/// (at most `max_bytes`, uncommitted records included).
///
/// # Errors
/// No shim in this build, or the request failing.
#[cfg(kvault_headers_shim)]
pub fn fetch_raw<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    partition: i32,
    offset: i64,
    max_bytes: i32,
    timeout: Duration,
) -> Result<RawFetch, FetchError> {
    use rdkafka_sys as rd;
    let name = std::ffi::CString::new(topic)
        .map_err(|_| FetchError::Kafka(rdkafka::types::RDKafkaErrorCode::InvalidTopic))?;
    let (mut body, mut len, mut version) = (std::ptr::null_mut(), 0usize, 0i16);
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the client is live for the call; the out-pointers are ours.
    let err = unsafe {
        kvault_fetch_raw(
            client.native_ptr(),
            name.as_ptr(),
            partition,
            offset,
            max_bytes,
            0,
            ms,
            &mut body,
            &mut len,
            &mut version,
        )
    };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(FetchError::Kafka(err.into()));
    }
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        // SAFETY: the shim returned `len` bytes at `body`, ours until freed.
        unsafe { std::slice::from_raw_parts(body.cast::<u8>(), len) }.to_vec()
    };
    // SAFETY: `body` came from kvault_fetch_raw and is freed once.
    unsafe { kvault_fetch_free(body) };
    Ok(RawFetch { version, body: bytes })
}

/// Without the shim there is no raw fetch.
///
/// # Errors
/// Always [`FetchError::Unavailable`].
#[cfg(not(kvault_headers_shim))]
pub fn fetch_raw<C: rdkafka::client::ClientContext>(
    _client: &rdkafka::client::Client<C>,
    _topic: &str,
    _partition: i32,
    _offset: i64,
    _max_bytes: i32,
    _timeout: Duration,
) -> Result<RawFetch, FetchError> {
    Err(FetchError::Unavailable)
}

#[cfg(kvault_headers_shim)]
unsafe extern "C" {
    fn kvault_fetch_raw(
        rk: *mut rdkafka_sys::rd_kafka_t,
        topic: *const std::ffi::c_char,
        partition: i32,
        offset: i64,
        max_bytes: i32,
        isolation: i8,
        timeout_ms: i32,
        body: *mut *mut std::ffi::c_char,
        len: *mut usize,
        version: *mut i16,
    ) -> rdkafka_sys::rd_kafka_resp_err_t;
    fn kvault_fetch_free(body: *mut std::ffi::c_char);
}
