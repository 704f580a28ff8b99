//! DescribeConfigs for topics, answered on a queue of the caller's own.
//!
//! rdkafka's `AdminClient` serves its replies from a polling thread that
//! sleeps in 100 ms polls and notices it should stop only after one of
//! them ends: dropping it took ~90 ms, a third of an unchanged snapshot
//! (BENCHMARKS.md). A snapshot's only admin request is this one, so it is
//! made here on the snapshot's existing client with a temporary queue
//! polled by the calling thread, and a snapshot needs no admin client.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// One config entry of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Name.
    pub name: String,
    /// Value (`None` when the broker withholds it).
    pub value: Option<String>,
    /// Set on the topic itself (`DYNAMIC_TOPIC_CONFIG`), not inherited.
    pub topic_level: bool,
    /// Marked sensitive by the broker.
    pub sensitive: bool,
}

/// A topic's entries, or the error the broker gave for it (for example an
/// unknown topic).
pub type TopicConfigs = Result<Vec<ConfigEntry>, RDKafkaErrorCode>;

/// Owned admin handles, destroyed on drop in any order of return.
struct Handles {
    resources: Vec<*mut rd::rd_kafka_ConfigResource_t>,
    options: *mut rd::rd_kafka_AdminOptions_t,
    queue: *mut rd::rd_kafka_queue_t,
    event: *mut rd::rd_kafka_event_t,
}

impl Drop for Handles {
    fn drop(&mut self) {
        // SAFETY: each handle is null or was created by this module and is
        // destroyed exactly once here; the event's results are not used
        // after this point.
        unsafe {
            if !self.event.is_null() {
                rd::rd_kafka_event_destroy(self.event);
            }
            for r in &self.resources {
                rd::rd_kafka_ConfigResource_destroy(*r);
            }
            if !self.options.is_null() {
                rd::rd_kafka_AdminOptions_destroy(self.options);
            }
            if !self.queue.is_null() {
                rd::rd_kafka_queue_destroy(self.queue);
            }
        }
    }
}

/// The configs of `topics`, in the order asked, from one DescribeConfigs
/// request on `client`. Blocks the calling thread for up to
/// `request_timeout` (librdkafka then answers with a timeout error) and a
/// grace second beyond it.
///
/// # Errors
/// The request failed as a whole: [`KafkaError::AdminOp`] with
/// librdkafka's code (timeouts and transport errors included), or
/// [`KafkaError::AdminOpCreation`] for a topic name holding a NUL byte.
pub fn describe_topic_configs<C: ClientContext>(
    client: &Client<C>,
    topics: &[&str],
    request_timeout: Duration,
) -> Result<Vec<TopicConfigs>, KafkaError> {
    let names: Vec<CString> = topics
        .iter()
        .map(|t| {
            CString::new(*t)
                .map_err(|_| KafkaError::AdminOpCreation(format!("topic name {t:?} holds a NUL byte")))
        })
        .collect::<Result<_, _>>()?;
    let mut h = Handles {
        resources: Vec::with_capacity(names.len()),
        options: std::ptr::null_mut(),
        queue: std::ptr::null_mut(),
        event: std::ptr::null_mut(),
    };
    send(client.native_ptr(), &names, request_timeout, &mut h)?;
    h.event = wait_for_result(h.queue, request_timeout + Duration::from_secs(1))?;
    let mut by_name = read_result(h.event)?;
    // In the order asked; a topic the answer leaves out is unknown to it.
    Ok(topics
        .iter()
        .map(|t| {
            by_name
                .remove(*t)
                .unwrap_or(Err(RDKafkaErrorCode::UnknownTopicOrPartition))
        })
        .collect())
}

/// Sends DescribeConfigs for the topics `names` from the client `rk`,
/// answered on a queue of its own; `h` owns what it creates.
fn send(
    rk: *mut rd::rd_kafka_t,
    names: &[CString],
    request_timeout: Duration,
    h: &mut Handles,
) -> Result<(), KafkaError> {
    for n in names {
        // SAFETY: `n` is NUL-terminated; librdkafka copies the name.
        let r = unsafe {
            rd::rd_kafka_ConfigResource_new(rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC, n.as_ptr())
        };
        if r.is_null() {
            return Err(KafkaError::AdminOpCreation("no config resource".into()));
        }
        h.resources.push(r);
    }
    // SAFETY: `rk` is the live client borrowed for this call.
    h.options = unsafe {
        rd::rd_kafka_AdminOptions_new(rk, rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS)
    };
    if h.options.is_null() {
        return Err(KafkaError::AdminOpCreation("no admin options".into()));
    }
    let ms = i32::try_from(request_timeout.as_millis()).unwrap_or(i32::MAX);
    let mut errstr = [0 as c_char; 256];
    // SAFETY: `errstr` is writable for its length.
    let e = unsafe {
        rd::rd_kafka_AdminOptions_set_request_timeout(h.options, ms, errstr.as_mut_ptr(), errstr.len())
    };
    if e != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        // SAFETY: librdkafka wrote a NUL-terminated message into `errstr`.
        let why = unsafe { owned(errstr.as_ptr()) }.unwrap_or_default();
        return Err(KafkaError::AdminOpCreation(why));
    }
    // SAFETY: as above.
    h.queue = unsafe { rd::rd_kafka_queue_new(rk) };
    if h.queue.is_null() {
        return Err(KafkaError::AdminOpCreation("no queue".into()));
    }
    // SAFETY: the resources, options and queue are live; librdkafka copies
    // what it needs from the resources and answers on `queue`.
    unsafe {
        rd::rd_kafka_DescribeConfigs(
            rk,
            h.resources.as_mut_ptr(),
            h.resources.len(),
            h.options,
            h.queue,
        )
    };
    Ok(())
}

/// The DescribeConfigs result event from `queue`, within `limit`; the
/// caller owns it.
fn wait_for_result(
    queue: *mut rd::rd_kafka_queue_t,
    limit: Duration,
) -> Result<*mut rd::rd_kafka_event_t, KafkaError> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut));
        }
        let wait = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: the queue is live; the event, if any, is ours.
        let ev = unsafe { rd::rd_kafka_queue_poll(queue, wait) };
        if ev.is_null() {
            continue;
        }
        // SAFETY: `ev` is a live event.
        if unsafe { rd::rd_kafka_event_type(ev) } == rd::RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT {
            return Ok(ev);
        }
        // SAFETY: an event of another kind (none is expected on this
        // queue), released.
        unsafe { rd::rd_kafka_event_destroy(ev) };
    }
}

/// Each topic's configs (or error) in a live DescribeConfigs result event.
fn read_result(event: *mut rd::rd_kafka_event_t) -> Result<HashMap<String, TopicConfigs>, KafkaError> {
    // SAFETY: the event is live.
    let err = unsafe { rd::rd_kafka_event_error(event) };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(KafkaError::AdminOp(err.into()));
    }
    // SAFETY: a DESCRIBECONFIGS_RESULT event.
    let res = unsafe { rd::rd_kafka_event_DescribeConfigs_result(event) };
    if res.is_null() {
        return Err(KafkaError::AdminOpCreation("describe configs: no result".into()));
    }
    let mut n = 0usize;
    // SAFETY: `res` lives as long as the event; `n` is written.
    let resources = unsafe { rd::rd_kafka_DescribeConfigs_result_resources(res, &mut n) };
    let mut by_name: HashMap<String, TopicConfigs> = HashMap::with_capacity(n);
    for i in 0..n {
        // SAFETY: `resources` holds `n` live resource pointers.
        let r = unsafe { *resources.add(i) };
        // SAFETY: names are NUL-terminated strings owned by the event,
        // copied before it is destroyed.
        let name = unsafe { owned(rd::rd_kafka_ConfigResource_name(r)) }.unwrap_or_default();
        // SAFETY: `r` is live.
        let e = unsafe { rd::rd_kafka_ConfigResource_error(r) };
        if e != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            by_name.insert(name, Err(e.into()));
            continue;
        }
        // SAFETY: `r` is a live resource of the event.
        by_name.insert(name, Ok(unsafe { entries_of(r) }));
    }
    Ok(by_name)
}

/// The config entries of a resource, copied.
///
/// # Safety
/// `r` is a live resource of a live DescribeConfigs result.
unsafe fn entries_of(r: *const rd::rd_kafka_ConfigResource_t) -> Vec<ConfigEntry> {
    let mut m = 0usize;
    // SAFETY: `r` is live; `m` is written.
    let entries = unsafe { rd::rd_kafka_ConfigResource_configs(r, &mut m) };
    let mut out = Vec::with_capacity(m);
    for j in 0..m {
        // SAFETY: `entries` holds `m` live entry pointers.
        let c = unsafe { *entries.add(j) };
        // SAFETY: `c` is a live entry; its strings are copied before the
        // event is destroyed.
        let entry = unsafe {
            ConfigEntry {
                name: owned(rd::rd_kafka_ConfigEntry_name(c)).unwrap_or_default(),
                value: owned(rd::rd_kafka_ConfigEntry_value(c)),
                topic_level: rd::rd_kafka_ConfigEntry_source(c)
                    == rd::rd_kafka_ConfigSource_t::RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG,
                sensitive: rd::rd_kafka_ConfigEntry_is_sensitive(c) != 0,
            }
        };
        out.push(entry);
    }
    out
}

/// # Safety
/// `p` is null or a NUL-terminated string.
unsafe fn owned(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}
