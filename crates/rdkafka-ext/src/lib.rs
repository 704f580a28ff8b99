//! librdkafka calls that rdkafka does not make: batched reads for an
//! assign-only consumer (this file), record headers without a parse buffer
//! per record (`csrc/headers.c`), and DescribeConfigs on a queue of the
//! caller's own ([`configs`]).
//!
//! rdkafka hands out one message per `poll`: each one is an event taken
//! from the consumer queue under its lock, a fresh `Arc`, the poll clock
//! librdkafka reads for `max.poll.interval.ms`, and a UTF-8 check of the
//! topic name. For records of ~150 B that was a third of a snapshot's CPU
//! (BENCHMARKS.md). Here the assigned partitions' messages go to a queue
//! of their own ([`FetchQueue::route`], librdkafka's
//! `rd_kafka_queue_forward`, which survives `assign`), read a batch at a
//! time with `rd_kafka_consume_batch_queue`. Everything else (logs,
//! errors, statistics, token refreshes) stays on the consumer queue, which
//! the caller keeps polling through rdkafka as before.
//!
//! Reading a record's headers skips librdkafka's parse of an empty header
//! list (`csrc/headers.c`, compiled against the librdkafka tree that is
//! linked: a calloc'd parse buffer per record was ~12% of a snapshot's CPU
//! on small records).
//!
//! [`configs`] makes the one admin request a snapshot needs without
//! rdkafka's `AdminClient` and its polling thread; [`request`] sends a raw
//! request of any API (the cluster's ACLs, SCRAM users, quotas and broker
//! configs) on the client's own connection.
//!
//! This crate holds those foreign calls, so the kvault crate itself stays
//! free of `unsafe`.

pub mod configs;
pub mod fetch;
pub mod request;

use std::ffi::{CStr, CString, c_char, c_void};
use std::marker::PhantomData;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaErrorCode;

/// A queue of this client's own that assigned partitions' messages are
/// routed to, read in batches.
pub struct FetchQueue<'c> {
    q: *mut rd::rd_kafka_queue_t,
    rk: *mut rd::rd_kafka_t,
    _consumer: PhantomData<&'c ()>,
}

impl<'c> FetchQueue<'c> {
    /// A new, empty queue on `consumer`'s client. `None` if librdkafka
    /// could not make one.
    pub fn new<C: ConsumerContext>(consumer: &'c BaseConsumer<C>) -> Option<FetchQueue<'c>> {
        let rk = consumer.client().native_ptr();
        // SAFETY: `consumer` is borrowed for `'c`, which this queue cannot
        // outlive, so the client handle is alive; the new queue holds a
        // reference of its own, released in `drop`.
        let q = unsafe { rd::rd_kafka_queue_new(rk) };
        (!q.is_null()).then_some(FetchQueue {
            q,
            rk,
            _consumer: PhantomData,
        })
    }

    /// Routes the messages (and per-partition errors: end of partition,
    /// fetch failures) of `topic`/`partition` to this queue. Call it
    /// before assigning the partition; librdkafka keeps a route set by the
    /// application when the partition is assigned. False if the topic
    /// name holds a NUL byte or librdkafka has no such partition handle.
    pub fn route(&self, topic: &str, partition: i32) -> bool {
        let Ok(name) = CString::new(topic) else {
            return false;
        };
        // SAFETY: the client is alive (see `new`); `name` is NUL-terminated
        // and outlives the call. The returned handle is ours to destroy.
        let pq = unsafe { rd::rd_kafka_queue_get_partition(self.rk, name.as_ptr(), partition) };
        if pq.is_null() {
            return false;
        }
        // SAFETY: `pq` and `self.q` are live queue handles; forwarding
        // takes its own reference on `self.q`, and destroying the
        // partition's handle keeps the route (it belongs to the partition).
        unsafe {
            rd::rd_kafka_queue_forward(pq, self.q);
            rd::rd_kafka_queue_destroy(pq);
        }
        true
    }

    /// An empty batch with room for `capacity` messages per read; it
    /// cannot outlive the consumer (its messages must be destroyed first).
    pub fn batch(&self, capacity: usize) -> Batch<'c> {
        Batch {
            buf: Vec::with_capacity(capacity.max(1)),
            _consumer: PhantomData,
        }
    }

    /// Appends to `batch` what the queue holds, up to `batch`'s capacity;
    /// when it holds nothing, waits up to `wait` for one message. Returns
    /// how many were appended. Per-partition errors come as messages whose
    /// [`Msg::error`] is set.
    pub fn consume(&self, batch: &mut Batch<'_>, wait: Duration) -> usize {
        batch.clear();
        let room = batch.buf.capacity();
        // SAFETY: `buf` has room for `room` pointers, which librdkafka
        // fills from the start; it returns how many it wrote (or -1).
        let n = unsafe { self.batch_into(batch, 0, room) };
        if n > 0 {
            return n;
        }
        // Nothing yet: wait for a single message (librdkafka waits for a
        // full batch, or the whole timeout, when asked for more).
        let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: as above, for one pointer.
        unsafe { self.batch_into(batch, ms, 1) }
    }

    /// # Safety
    /// `batch.buf` must be empty with a capacity of at least `max`.
    unsafe fn batch_into(&self, batch: &mut Batch<'_>, timeout_ms: i32, max: usize) -> usize {
        let max = max.min(batch.buf.capacity());
        // SAFETY: the caller guarantees room for `max` pointers; the queue
        // is alive (see `new`).
        let n = unsafe { rd::rd_kafka_consume_batch_queue(self.q, timeout_ms, batch.buf.as_mut_ptr(), max) };
        let n = usize::try_from(n).unwrap_or(0).min(max);
        // SAFETY: librdkafka initialised the first `n` slots with messages
        // we now own (destroyed by `Batch::clear`/`drop`).
        unsafe { batch.buf.set_len(n) };
        n
    }
}

impl Drop for FetchQueue<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_queue_new` and is
        // released once; the client outlives it (lifetime `'c`).
        unsafe { rd::rd_kafka_queue_destroy(self.q) }
    }
}

/// Messages read by one [`FetchQueue::consume`], owned until the next one
/// (or until dropped).
pub struct Batch<'c> {
    buf: Vec<*mut rd::rd_kafka_message_t>,
    _consumer: PhantomData<&'c ()>,
}

impl Batch<'_> {
    /// The messages, in queue order (per partition: offset order).
    pub fn iter(&self) -> impl Iterator<Item = Msg<'_>> + '_ {
        // SAFETY: every pointer is a live message owned by this batch.
        self.buf.iter().map(|m| Msg { m: unsafe { &**m } })
    }

    /// Destroys the messages held.
    pub fn clear(&mut self) {
        for m in self.buf.drain(..) {
            // SAFETY: each message is owned by this batch and destroyed
            // exactly once (drained).
            unsafe { rd::rd_kafka_message_destroy(m) };
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A message's timestamp kind, as librdkafka reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKind {
    /// None (or -1).
    NotAvailable,
    /// Set by the producer.
    CreateTime,
    /// Set by the broker.
    LogAppendTime,
}

/// One message of a [`Batch`].
#[derive(Clone, Copy)]
pub struct Msg<'b> {
    m: &'b rd::rd_kafka_message_t,
}

impl<'b> Msg<'b> {
    /// The error code when this is an error rather than a record (end of
    /// partition, unknown topic or partition, a failed fetch, …).
    pub fn error(&self) -> Option<RDKafkaErrorCode> {
        (self.m.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR).then(|| self.m.err.into())
    }

    /// The error as text: librdkafka's message when it gave one, else the
    /// code's description.
    pub fn error_text(&self) -> String {
        // SAFETY: err2str returns a static C string for any code.
        let base = unsafe { CStr::from_ptr(rd::rd_kafka_err2str(self.m.err)) }
            .to_string_lossy()
            .into_owned();
        match self.payload() {
            Some(p) if !p.is_empty() => format!("{base}: {}", String::from_utf8_lossy(p)),
            _ => base,
        }
    }

    /// The topic's name (empty for client-wide errors, or a name that is
    /// not UTF-8).
    pub fn topic(&self) -> &'b str {
        if self.m.rkt.is_null() {
            return "";
        }
        // SAFETY: `rkt` is the message's topic handle, alive while the
        // message is; librdkafka returns its NUL-terminated name.
        let p: *const c_char = unsafe { rd::rd_kafka_topic_name(self.m.rkt) };
        if p.is_null() {
            return "";
        }
        // SAFETY: non-null, NUL-terminated, owned by the topic handle.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
    }

    /// Whether `other` belongs to the same topic: the same topic handle,
    /// which each message holds a reference to. Cheaper than comparing
    /// [`Msg::topic`]s, which measures and checks the name.
    pub fn same_topic(&self, other: &Msg<'_>) -> bool {
        std::ptr::eq(self.m.rkt, other.m.rkt)
    }

    /// Partition.
    pub fn partition(&self) -> i32 {
        self.m.partition
    }

    /// Offset.
    pub fn offset(&self) -> i64 {
        self.m.offset
    }

    /// Key (`None`: a null key).
    pub fn key(&self) -> Option<&'b [u8]> {
        // SAFETY: librdkafka's key pointer and length describe bytes the
        // message owns.
        unsafe { slice(self.m.key, self.m.key_len) }
    }

    /// Value (`None`: a null value, a tombstone).
    pub fn payload(&self) -> Option<&'b [u8]> {
        // SAFETY: as for the key.
        unsafe { slice(self.m.payload, self.m.len) }
    }

    /// Timestamp in milliseconds and its kind (-1 with `NotAvailable`).
    pub fn timestamp(&self) -> (i64, TimestampKind) {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        let ptr: *const rd::rd_kafka_message_t = self.m;
        // SAFETY: the message is alive; `kind` is writable.
        let ts = unsafe { rd::rd_kafka_message_timestamp(ptr, &mut kind) };
        if ts == -1 {
            return (-1, TimestampKind::NotAvailable);
        }
        match kind {
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_CREATE_TIME => (ts, TimestampKind::CreateTime),
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => {
                (ts, TimestampKind::LogAppendTime)
            }
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => {
                (-1, TimestampKind::NotAvailable)
            }
        }
    }

    /// Appends the record's headers (name, value; `None`: a null value)
    /// to `out`, in order.
    ///
    /// # Errors
    /// A header librdkafka cannot parse, or a header name that is not
    /// UTF-8: never "no headers" in their place, so a record is never kept
    /// without the headers it has.
    pub fn headers_into(&self, out: &mut Vec<(&'b str, Option<&'b [u8]>)>) -> Result<(), HeaderError> {
        let mut hdrs: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
        let ptr: *const rd::rd_kafka_message_t = self.m;
        // SAFETY: the message is alive; the headers librdkafka parses stay
        // owned by the message.
        let err = unsafe { message_headers(ptr, &mut hdrs) };
        // SAFETY: `hdrs` is null or the message's own headers, which live
        // as long as the message (`'b`).
        unsafe { headers_from(err, hdrs, out) }
    }
}

/// Why a record's headers could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// librdkafka could not parse them (its error, e.g. "Local: Bad
    /// message format").
    Unreadable(String),
    /// The header at this position has a name that is not UTF-8.
    NameNotUtf8 {
        /// The header's position in the record (0-based).
        index: usize,
    },
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Unreadable(e) => write!(f, "the record's headers cannot be parsed: {e}"),
            HeaderError::NameNotUtf8 { index } => write!(f, "the name of record header {index} is not UTF-8"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// librdkafka's description of an error code.
fn describe(e: rd::rd_kafka_resp_err_t) -> String {
    // SAFETY: rd_kafka_err2str returns a static NUL-terminated string for
    // every code.
    let p = unsafe { rd::rd_kafka_err2str(e) };
    if p.is_null() {
        return format!("{e:?}");
    }
    // SAFETY: non-null, static, NUL-terminated.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The headers behind librdkafka's answer `err` to "the message's
/// headers": none (`__NOENT`, or no list), all of them, or the error.
///
/// # Safety
/// `hdrs` is null or a headers list that lives for `'b`.
unsafe fn headers_from<'b>(
    err: rd::rd_kafka_resp_err_t,
    hdrs: *mut rd::rd_kafka_headers_t,
    out: &mut Vec<(&'b str, Option<&'b [u8]>)>,
) -> Result<(), HeaderError> {
    use rd::rd_kafka_resp_err_t::{RD_KAFKA_RESP_ERR__NOENT as NOENT, RD_KAFKA_RESP_ERR_NO_ERROR as OK};
    match err {
        OK if !hdrs.is_null() => {}
        OK | NOENT => return Ok(()),
        e => return Err(HeaderError::Unreadable(describe(e))),
    }
    let mut idx = 0usize;
    loop {
        let mut name: *const c_char = std::ptr::null();
        let mut value: *const c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: `hdrs` is a live headers list (the caller's contract);
        // the out pointers are writable.
        let e = unsafe { rd::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size) };
        match e {
            NOENT => return Ok(()),
            OK if !name.is_null() => {}
            OK => return Err(HeaderError::Unreadable(format!("header {idx} has no name"))),
            e => return Err(HeaderError::Unreadable(describe(e))),
        }
        // SAFETY: librdkafka gives a NUL-terminated name owned by the
        // headers.
        let n = (unsafe { CStr::from_ptr(name) })
            .to_str()
            .map_err(|_| HeaderError::NameNotUtf8 { index: idx })?;
        // SAFETY: value and size describe bytes owned by the headers.
        out.push((n, unsafe { slice(value, size) }));
        idx += 1;
    }
}

#[cfg(kvault_headers_shim)]
unsafe extern "C" {
    /// `rd_kafka_message_headers`, answering a header count of zero without
    /// librdkafka's per-message parse buffer (`csrc/headers.c`).
    #[link_name = "kvault_message_headers"]
    fn message_headers(
        m: *const rd::rd_kafka_message_t,
        hdrs: *mut *mut rd::rd_kafka_headers_t,
    ) -> rd::rd_kafka_resp_err_t;
}

#[cfg(not(kvault_headers_shim))]
use rd::rd_kafka_message_headers as message_headers;

/// Whether headers are read through the shim of `csrc/headers.c` (false
/// when linked against a system librdkafka, whose private headers are not
/// at hand).
pub fn headers_shim() -> bool {
    cfg!(kvault_headers_shim)
}

/// # Safety
/// `p` is null or points to `len` readable bytes that live for `'a`.
unsafe fn slice<'a>(p: *const c_void, len: usize) -> Option<&'a [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    Some(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka's answer for headers it cannot parse (`__BAD_MSG`) is
    /// an error naming it, never an empty header list.
    #[test]
    fn unparsable_headers_are_an_error_not_none() {
        let mut out = Vec::new();
        let bad = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__BAD_MSG;
        // SAFETY: a null list.
        let e = unsafe { headers_from(bad, std::ptr::null_mut(), &mut out) }.unwrap_err();
        assert!(
            matches!(&e, HeaderError::Unreadable(m) if m.contains("Bad message")),
            "{e}"
        );
        assert!(out.is_empty());
        // No headers at all is fine.
        let none = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__NOENT;
        // SAFETY: a null list.
        unsafe { headers_from(none, std::ptr::null_mut(), &mut out) }.unwrap();
        assert!(out.is_empty());
    }

    /// Real header lists: names and values in order, and a name that is
    /// not UTF-8 reported with its position.
    #[test]
    fn header_lists_are_read_in_order_and_bad_names_named() {
        // SAFETY: a fresh list, destroyed below; names are NUL-terminated
        // with explicit lengths (-1: up to the NUL).
        unsafe {
            let h = rd::rd_kafka_headers_new(3);
            rd::rd_kafka_header_add(h, c"a".as_ptr(), -1, b"1".as_ptr().cast(), 1);
            rd::rd_kafka_header_add(h, c"n".as_ptr(), -1, std::ptr::null(), 0);
            let mut out = Vec::new();
            headers_from(rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR, h, &mut out).unwrap();
            assert_eq!(out, vec![("a", Some(&b"1"[..])), ("n", None)]);
            rd::rd_kafka_header_add(h, c"\xff".as_ptr(), -1, b"x".as_ptr().cast(), 1);
            let mut out = Vec::new();
            let e =
                headers_from(rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR, h, &mut out).unwrap_err();
            assert_eq!(e, HeaderError::NameNotUtf8 { index: 2 });
            rd::rd_kafka_headers_destroy(h);
        }
    }
    /// Built as kvault ships (librdkafka bundled by rdkafka-sys), headers
    /// are read through the shim: the path every Kafka test exercises.
    /// `KVAULT_NO_HEADER_SHIM=1` builds the other path on purpose.
    #[test]
    fn the_header_shim_is_built_against_the_bundled_librdkafka() {
        assert_eq!(
            super::headers_shim(),
            option_env!("KVAULT_NO_HEADER_SHIM").is_none_or(str::is_empty)
        );
    }
}
