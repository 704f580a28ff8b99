//! Transient Kafka errors are retried, permanent ones fail at once.
//!
//! A cluster under load, a partition whose leader is moving, a topic created
//! a moment ago or a broker restarting all answer with errors that go away by
//! themselves (NotLeaderForPartition, LeaderNotAvailable, NotController,
//! request timeouts, coordinator loading, …). Every request kvault makes is
//! retried with exponential backoff (100 ms doubling to 2 s) while such an
//! error persists, up to the deadline [`KafkaOptions::retry_timeout`]
//! (`--kafka-timeout`, default 2 min). UnknownTopicOrPartition is transient
//! only right after kvault created the topic ([`Transient::AfterCreate`]).
//! The first contact with a cluster has its own, shorter deadline
//! ([`KafkaOptions::connect_timeout`], 10 s), so an unreachable broker is
//! reported in seconds.

use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode as C;

use super::KafkaOptions;
use crate::error::{Error, Result};

/// Which errors count as transient for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transient {
    /// The usual set: leadership moves, timeouts, coordinators loading,
    /// connections lost.
    Usual,
    /// Also UnknownTopicOrPartition: the topic was just created and not
    /// every broker knows it yet.
    AfterCreate,
}

/// Whether a librdkafka error code is worth retrying.
pub fn is_transient_code(code: C, when: Transient) -> bool {
    let usual = matches!(
        code,
        C::NotLeaderForPartition
            | C::LeaderNotAvailable
            | C::NotController
            | C::RequestTimedOut
            | C::OperationTimedOut
            | C::TimedOutQueue
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::WaitingForCoordinator
            | C::BrokerNotAvailable
            | C::ReplicaNotAvailable
            | C::NetworkException
            | C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::KafkaStorageError
            | C::OffsetNotAvailable
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::ThrottlingQuotaExceeded
            | C::UnstableOffsetCommit
            | C::PreferredLeaderNotAvailable
            | C::EligibleLeadersNotAvailable
            | C::Retry
            | C::InProgress
            | C::PreviousInProgress
            | C::WaitCache
            | C::UnknownPartition
            | C::RebootstrapRequired
    );
    usual
        || (when == Transient::AfterCreate
            && matches!(
                code,
                C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownTopicId
            ))
}

/// Whether an rdkafka error is worth retrying.
pub fn is_transient(e: &KafkaError, when: Transient) -> bool {
    match e {
        // Local timeouts of a blocking call: the request may succeed later.
        KafkaError::MetadataFetch(c)
        | KafkaError::OffsetFetch(c)
        | KafkaError::ConsumerCommit(c)
        | KafkaError::GroupListFetch(c)
        | KafkaError::AdminOp(c)
        | KafkaError::MessageConsumption(c)
        | KafkaError::MessageProduction(c)
        | KafkaError::SetPartitionOffset(c)
        | KafkaError::Global(c) => is_transient_code(*c, when),
        KafkaError::AdminOpCreation(_) | KafkaError::ClientCreation(_) | KafkaError::ClientConfig(..) => {
            false
        }
        other => other
            .rdkafka_error_code()
            .is_some_and(|c| is_transient_code(c, when)),
    }
}

/// Backoff between attempts: 100 ms doubling to 2 s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    deadline: Instant,
}

impl Backoff {
    /// A backoff that gives up at `deadline`.
    pub fn until(deadline: Instant) -> Backoff {
        Backoff {
            next: Duration::from_millis(100),
            deadline,
        }
    }

    /// The pause before the next attempt, or `None` once the deadline is
    /// reached.
    pub fn next_pause(&mut self) -> Option<Duration> {
        let left = self.deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        let d = self.next.min(left);
        self.next = (self.next * 2).min(Duration::from_secs(2));
        Some(d)
    }

    /// Time left until the deadline (at least 1 ms, so it can serve as a
    /// request timeout).
    pub fn remaining(&self) -> Duration {
        self.deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_default()
            .max(Duration::from_millis(1))
    }
}

/// Runs a blocking Kafka request, retrying transient errors with backoff
/// until `opts.retry_timeout()` has passed. `f` gets the timeout for one
/// attempt (the time left, at most the per-request timeout).
///
/// # Errors
/// The request's permanent error, or its last transient error once the
/// deadline passed, as [`Error::Kafka`] naming `op`.
pub fn retry<T>(
    opts: &KafkaOptions,
    op: &str,
    when: Transient,
    mut f: impl FnMut(Duration) -> std::result::Result<T, KafkaError>,
) -> Result<T> {
    let mut backoff = Backoff::until(Instant::now() + opts.retry_timeout());
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let timeout = backoff.remaining().min(opts.request_timeout());
        match f(timeout) {
            Ok(v) => return Ok(v),
            Err(e) if is_transient(&e, when) => match backoff.next_pause() {
                Some(d) => {
                    log::info!("{op}: {e} (attempt {attempts}); retrying in {} ms", d.as_millis());
                    std::thread::sleep(d);
                }
                None => return Err(kafka_error(opts, op, &e, attempts)),
            },
            Err(e) => return Err(kafka_error(opts, op, &e, attempts)),
        }
    }
}

/// An [`Error::Kafka`] for a failed request.
pub fn kafka_error(opts: &KafkaOptions, op: &str, e: &KafkaError, attempts: u32) -> Error {
    let retried = if attempts > 1 {
        format!(
            " (retried {attempts} times for {})",
            humantime::format_duration(opts.retry_timeout())
        )
    } else {
        String::new()
    };
    Error::Kafka {
        op: op.to_string(),
        detail: format!("{e}{retried}"),
        code: e.rdkafka_error_code().map(|c| format!("{c:?}")),
        transient: is_transient(e, Transient::Usual),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_the_ones_that_go_away() {
        let t = |c| is_transient(&KafkaError::MetadataFetch(c), Transient::Usual);
        assert!(t(C::NotLeaderForPartition));
        assert!(t(C::LeaderNotAvailable));
        assert!(t(C::NotController));
        assert!(t(C::RequestTimedOut));
        assert!(t(C::OperationTimedOut));
        assert!(t(C::CoordinatorLoadInProgress));
        assert!(!t(C::UnknownTopicOrPartition));
        assert!(!t(C::TopicAuthorizationFailed));
        assert!(!t(C::SaslAuthenticationFailed));
        assert!(is_transient(
            &KafkaError::MetadataFetch(C::UnknownTopicOrPartition),
            Transient::AfterCreate
        ));
    }

    #[test]
    fn backoff_doubles_to_two_seconds_and_stops_at_the_deadline() {
        let mut b = Backoff::until(Instant::now() + Duration::from_secs(60));
        let pauses: Vec<u128> = (0..7).map(|_| b.next_pause().unwrap().as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1600, 2000, 2000]);
        let mut done = Backoff::until(Instant::now());
        assert!(done.next_pause().is_none());
    }

    #[test]
    fn retry_gives_up_on_permanent_errors_at_once_and_on_transient_ones_at_the_deadline() {
        let mut o = KafkaOptions::new("b:1");
        o.timeout = Some(Duration::from_millis(350));
        let mut n = 0;
        let r: Result<()> = retry(&o, "probe", Transient::Usual, |_| {
            n += 1;
            Err(KafkaError::MetadataFetch(C::TopicAuthorizationFailed))
        });
        assert_eq!(n, 1);
        assert!(matches!(r, Err(Error::Kafka { transient: false, .. })));
        let (mut n, t0) = (0, Instant::now());
        let r: Result<()> = retry(&o, "probe", Transient::Usual, |_| {
            n += 1;
            Err(KafkaError::MetadataFetch(C::NotLeaderForPartition))
        });
        assert!(n >= 3, "{n} attempts");
        assert!(t0.elapsed() < Duration::from_secs(2));
        let e = r.unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("probe") && msg.contains("retried"), "{msg}");
        assert!(
            matches!(e, Error::Kafka { transient: true, .. }),
            "the CLI adds --kafka-timeout"
        );
        let mut n = 0;
        let r = retry(&o, "probe", Transient::Usual, |_| {
            n += 1;
            if n < 3 {
                Err(KafkaError::MetadataFetch(C::LeaderNotAvailable))
            } else {
                Ok(n)
            }
        });
        assert_eq!(r.unwrap(), 3);
    }
}
