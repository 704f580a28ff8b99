//! Transaction coordinators' log: the records of Kafka's
//! `__transaction_state` topic decoded as far as a point in time needs
//! them (format-spec §14 "Transaction commit times").
//!
//! A transaction's commit markers reach its partitions one by one (about a
//! millisecond apart on one broker, more across brokers); only when its
//! coordinator logs CompleteCommit has every partition its marker. That
//! record's time is the one instant at which the whole transaction is
//! visible, so a restore as of T that uses it for every partition never
//! splits a transaction. Each commit marker a snapshot captures is matched
//! to the first CompleteCommit of its producer id and epoch at or after the
//! marker's time: a producer's transactions follow one another (the next
//! one may add partitions only once the previous one completed), so that
//! completion is its own.
//!
//! Pure data: no rdkafka; the decoder is fuzzed
//! (`fuzz/fuzz_targets/transaction_state.rs`).

use std::collections::BTreeMap;

use super::types::TxnSpan;
use super::wire::{Cursor, WireError};

/// The coordinators' log topic.
pub const TRANSACTION_STATE: &str = "__transaction_state";

/// A transaction's end as its coordinator logged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The transaction's producer id.
    pub producer_id: i64,
    /// Its producer epoch as the coordinator logged it (with transactions
    /// version 2 one above the data batches' epoch).
    pub producer_epoch: i16,
    /// CompleteCommit (true) or CompleteAbort.
    pub committed: bool,
    /// When the coordinator logged it, after every marker had been
    /// written: the record's timestamp (its `TransactionLastUpdateTimestampMs`
    /// is earlier, from when the markers were sent; seen 11 ms earlier).
    pub ts: i64,
}

/// Decodes one `__transaction_state` record written at `record_ts`: its
/// completion, or `None` for
/// every other state (empty, ongoing, prepare, dead, fencing), a tombstone
/// (an expired transactional id) or a key version kvault does not know.
///
/// Key: i16 version 0, then the transactional id. Value: i16 version (0, or
/// 1 flexible), producer id i64, epoch i16, timeout i32, status i8 (4
/// CompleteCommit, 5 CompleteAbort), the partitions (null or an array of
/// topic and partition ids), last update i64, start i64.
///
/// # Errors
/// A truncated or malformed value, or an unknown value version.
pub fn decode(key: &[u8], value: Option<&[u8]>, record_ts: i64) -> Result<Option<Completion>, WireError> {
    if Cursor::new(key).i16("key version")? != 0 {
        return Ok(None);
    }
    let Some(value) = value else { return Ok(None) };
    let mut c = Cursor::new(value);
    let version = c.i16("value version")?;
    if !(0..=1).contains(&version) {
        return Err(WireError(format!(
            "unknown transaction state value version {version}"
        )));
    }
    let producer_id = c.i64("producer id")?;
    let producer_epoch = c.i16("producer epoch")?;
    c.i32("transaction timeout")?;
    let committed = match c.i8("transaction status")? {
        4 => true,
        5 => false,
        _ => return Ok(None),
    };
    skip_partitions(&mut c, version == 1)?;
    c.i64("last update timestamp")?;
    Ok(Some(Completion {
        producer_id,
        producer_epoch,
        committed,
        ts: record_ts,
    }))
}

/// Skips the transaction's partitions (empty once it completed).
fn skip_partitions(c: &mut Cursor<'_>, flexible: bool) -> Result<(), WireError> {
    let topics = length(c, flexible, "partitions")?;
    for _ in 0..topics {
        if flexible {
            c.compact_string("topic")?;
        } else {
            c.string("topic")?;
        }
        let ids = length(c, flexible, "partition ids")?;
        let bytes = ids
            .checked_mul(4)
            .ok_or_else(|| WireError("partition ids: length".into()))?;
        c.take(bytes, "partition ids")?;
        if flexible {
            c.skip_tags()?;
        }
    }
    Ok(())
}

/// An array's length: i32 (−1 null), or in flexible versions an unsigned
/// varint of length + 1 (0 null). Null reads as empty.
fn length(c: &mut Cursor<'_>, flexible: bool, what: &str) -> Result<usize, WireError> {
    let n = if flexible {
        i64::try_from(c.uvarint(what)?).unwrap_or(i64::MAX) - 1
    } else {
        i64::from(c.i32(what)?)
    };
    usize::try_from(n.max(0)).map_err(|_| WireError(format!("{what}: length")))
}

/// The commit completions read from the coordinators' log, per producer id
/// and epoch, in time order.
#[derive(Debug, Clone, Default)]
pub struct Completions {
    by: BTreeMap<(i64, i16), Vec<i64>>,
}

impl Completions {
    /// Adds one completion (aborts are of no use: aborted records are
    /// never restored).
    pub fn add(&mut self, c: Completion) {
        if c.committed {
            let v = self.by.entry((c.producer_id, c.producer_epoch)).or_default();
            let at = v.partition_point(|t| *t <= c.ts);
            v.insert(at, c.ts);
        }
    }

    /// Commit completions held.
    pub fn len(&self) -> usize {
        self.by.values().map(Vec::len).sum()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by.is_empty()
    }

    /// When the transaction of `span` completed on all its partitions: the
    /// first commit completion of its producer id, with the batches' epoch
    /// (transactions version 1) or the next (version 2 bumps it at each
    /// commit), at or after the marker's time.
    pub fn commit_time(&self, span: &TxnSpan) -> Option<i64> {
        let epoch = i16::try_from(span.producer_epoch()).ok()?;
        [Some(epoch), epoch.checked_add(1)]
            .into_iter()
            .flatten()
            .filter_map(|e| self.by.get(&(span.producer_id(), e)))
            .filter_map(|v| v.get(v.partition_point(|t| *t < span.marker_ts())).copied())
            .min()
    }

    /// Dates every span whose completion is held; returns how many were
    /// not (they keep their marker's time).
    pub fn date<'a>(&self, spans: impl IntoIterator<Item = &'a mut TxnSpan>) -> usize {
        let mut undated = 0;
        for s in spans {
            match self.commit_time(s) {
                Some(t) => s.set_commit_ts(t),
                None => undated += 1,
            }
        }
        undated
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key() -> Vec<u8> {
        let mut k = 0i16.to_be_bytes().to_vec();
        k.extend(3i16.to_be_bytes());
        k.extend(b"tid");
        k
    }

    /// A value of `version` with one partition of topic "t" (as Ongoing and
    /// Prepare records carry them).
    fn value(version: i16, status: i8, last_update: i64) -> Vec<u8> {
        let mut v = version.to_be_bytes().to_vec();
        v.extend(42i64.to_be_bytes());
        v.extend(7i16.to_be_bytes());
        v.extend(60_000i32.to_be_bytes());
        v.push(status as u8);
        if version == 0 {
            v.extend(1i32.to_be_bytes());
            v.extend(1i16.to_be_bytes());
            v.extend(b"t");
            v.extend(2i32.to_be_bytes());
            v.extend(0i32.to_be_bytes());
            v.extend(1i32.to_be_bytes());
        } else {
            v.extend([2, 2, b't', 3]);
            v.extend(0i32.to_be_bytes());
            v.extend(1i32.to_be_bytes());
            v.push(0); // the partition entry's tagged fields
        }
        v.extend(last_update.to_be_bytes());
        v.extend(5i64.to_be_bytes());
        if version == 1 {
            v.push(0);
        }
        v
    }

    #[test]
    fn completions_decode_in_both_value_versions_and_other_states_do_not() {
        for version in [0, 1] {
            let c = decode(&key(), Some(&value(version, 4, 990)), 1_000)
                .unwrap()
                .unwrap();
            assert_eq!(
                (c.producer_id, c.producer_epoch, c.committed, c.ts),
                (42, 7, true, 1_000)
            );
            let c = decode(&key(), Some(&value(version, 5, 990)), 1_001)
                .unwrap()
                .unwrap();
            assert!(!c.committed);
            for status in [0, 1, 2, 3, 6, 7] {
                assert_eq!(decode(&key(), Some(&value(version, status, 1)), 1).unwrap(), None);
            }
        }
        assert_eq!(decode(&key(), None, 1).unwrap(), None, "tombstone");
        assert!(decode(&key(), Some(&value(2, 4, 1)), 1).is_err());
        let v = value(1, 4, 1);
        assert!(decode(&key(), Some(&v[..v.len() - 10]), 1).is_err(), "truncated");
    }

    #[test]
    fn each_marker_takes_the_first_completion_of_its_producer_at_or_after_it() {
        let mut c = Completions::default();
        for (pid, epoch, ts) in [(42, 7, 1_002), (42, 7, 2_003), (43, 1, 1_500)] {
            c.add(Completion {
                producer_id: pid,
                producer_epoch: epoch,
                committed: true,
                ts,
            });
        }
        c.add(Completion {
            producer_id: 42,
            producer_epoch: 7,
            committed: false,
            ts: 1_600,
        });
        let span = |marker_ts, pid, epoch| TxnSpan::new([0, 1, 2, marker_ts, pid, epoch]);
        assert_eq!(c.commit_time(&span(1_001, 42, 7)), Some(1_002));
        assert_eq!(c.commit_time(&span(1_002, 42, 7)), Some(1_002));
        assert_eq!(c.commit_time(&span(1_003, 42, 7)), Some(2_003));
        assert_eq!(
            c.commit_time(&span(1_400, 43, 0)),
            Some(1_500),
            "version 2: epoch + 1"
        );
        assert_eq!(c.commit_time(&span(2_004, 42, 7)), None);
        let mut spans = vec![span(1_001, 42, 7), span(9_000, 42, 7)];
        assert_eq!(c.date(&mut spans), 1);
        assert_eq!(spans[0].commit_ts(), 1_002);
        assert_eq!(spans[1].commit_ts(), 9_000, "undated: its marker's time");
    }
}
