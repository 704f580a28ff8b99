//! Record batches as the broker stores them, decoded from a raw Fetch
//! answer (`Cluster::batches` gets one through librdkafka's own connection,
//! `kvault_rdkafka_ext::fetch`) down to each batch's header and each control
//! record.
//!
//! librdkafka's consumer gives records, never their batches: a batch's
//! producer id and transactional flag, and the control batches (commit and
//! abort markers, their offsets and timestamps), stay inside it. They are
//! what tells which records one transaction wrote and when it became
//! visible.
//!
//! The decoder reads Fetch v4..v11 (the versions the request asks for;
//! their layout has no tagged fields) and the v2 record batch format; it is
//! total over its input: any byte string gives a value or a
//! [`DecodeError`], never a panic (fuzz target `kafka_batches`).

use std::collections::HashMap;

use crate::image::types::{OpenTxn, TxnSpan};

/// One record batch's header (and, for a control batch, its marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of its first record.
    pub base_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// The producer id (-1 when the producer had none).
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// Written inside a transaction.
    pub transactional: bool,
    /// The marker, when this is a control batch.
    pub control: Option<Marker>,
    /// Timestamp of its first record.
    pub first_timestamp: i64,
    /// Its largest timestamp (for a marker: when the broker wrote it).
    pub max_timestamp: i64,
}

/// A control record: the end of a transaction on this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// The transaction committed.
    Commit,
    /// The transaction aborted.
    Abort,
    /// A control type this decoder does not know.
    Other(i16),
}

/// The partition's part of a Fetch answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedPartition {
    /// The partition's error code (0: none).
    pub error_code: i16,
    /// High watermark.
    pub high_watermark: i64,
    /// Last stable offset.
    pub last_stable_offset: i64,
    /// Log start offset (-1 before v5).
    pub log_start_offset: i64,
    /// Every whole batch in the answer, in offset order; a batch cut off
    /// at the size limit is left out.
    pub batches: Vec<BatchHeader>,
}

/// Why a Fetch answer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The answer ends inside a field.
    #[error("Fetch answer truncated at byte {0}")]
    Truncated(usize),
    /// A length or count that cannot be.
    #[error("Fetch answer has a bad length at byte {0}")]
    BadLength(usize),
    /// A Fetch version the decoder does not read.
    #[error("Fetch version {0} is not one kvault decodes (4..=11)")]
    Version(i16),
    /// The answer is not about the one partition asked for.
    #[error("Fetch answer has no partition")]
    NoPartition,
}

/// A reader over a byte slice that reports where it ran out.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::BadLength(self.at))?;
        let s = self.b.get(self.at..end).ok_or(DecodeError::Truncated(self.at))?;
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A length or count: -1 (null) is 0.
    fn len(&mut self, len: i32) -> Result<usize, DecodeError> {
        match len {
            -1 => Ok(0),
            n if n >= 0 => Ok(n as usize),
            _ => Err(DecodeError::BadLength(self.at)),
        }
    }

    fn skip_string(&mut self) -> Result<(), DecodeError> {
        let n = self.i16()?;
        let n = self.len(i32::from(n))?;
        self.take(n).map(|_| ())
    }

    /// A zigzag varint (records' own fields).
    fn varint(&mut self) -> Result<i64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let [b] = self.array::<1>()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
            }
        }
        Err(DecodeError::BadLength(self.at))
    }
}

/// The committed transactions among `batches` (in offset order, as a
/// partition holds them): each run of a transaction's data batches, with
/// the offset and time of the commit marker that follows it. Aborted
/// transactions, and those whose marker is not among the batches (still
/// open), give none.
pub fn committed_spans(batches: &[BatchHeader]) -> Vec<TxnSpan> {
    // From the end: the marker that ends each producer's open transaction
    // is the last one seen of its producer id (linear, however many
    // batches a range holds).
    let mut next_marker: HashMap<i64, &BatchHeader> = HashMap::new();
    let mut runs: Vec<TxnSpan> = Vec::new();
    for b in batches.iter().rev() {
        if b.control.is_some() {
            next_marker.insert(b.producer_id, b);
            continue;
        }
        if !b.transactional {
            continue;
        }
        let Some(m) = next_marker
            .get(&b.producer_id)
            .filter(|m| m.control == Some(Marker::Commit))
        else {
            continue;
        };
        runs.push(TxnSpan::new([
            b.base_offset,
            b.last_offset,
            m.base_offset,
            m.max_timestamp,
            b.producer_id,
            i64::from(b.producer_epoch),
        ]));
    }
    runs.reverse();
    // The same transaction's batches, one right after the other, are one run.
    let mut spans: Vec<TxnSpan> = Vec::with_capacity(runs.len());
    for r in runs {
        match spans.last_mut() {
            Some(last) if last.marker() == r.marker() && last.last() + 1 == r.first() => last.0[1] = r.last(),
            _ => spans.push(r),
        }
    }
    spans
}

/// The transactions still open after `batches` (in offset order): each
/// producer whose last transactional data batch has no marker after it,
/// with the offset of the open transaction's first record, in offset order.
pub fn open_transactions(batches: &[BatchHeader]) -> Vec<OpenTxn> {
    let mut open: HashMap<i64, OpenTxn> = HashMap::new();
    for b in batches {
        if b.control.is_some() {
            open.remove(&b.producer_id);
        } else if b.transactional {
            open.entry(b.producer_id).or_insert(OpenTxn([
                b.base_offset,
                b.producer_id,
                i64::from(b.producer_epoch),
            ]));
        }
    }
    let mut v: Vec<OpenTxn> = open.into_values().collect();
    v.sort_by_key(OpenTxn::first);
    v
}

/// Decodes a Fetch answer of `version` for one partition (the body after
/// the response header, as `csrc/fetch.c` returns it).
///
/// # Errors
/// A version outside 4..=11, or bytes that are not such an answer.
pub fn decode(version: i16, body: &[u8]) -> Result<FetchedPartition, DecodeError> {
    if !(4..=11).contains(&version) {
        return Err(DecodeError::Version(version));
    }
    let mut c = Cursor { b: body, at: 0 };
    c.i32()?; // ThrottleTimeMs
    if version >= 7 {
        c.i16()?; // ErrorCode
        c.i32()?; // SessionId
    }
    let topics = c.i32()?;
    if c.len(topics)? == 0 {
        return Err(DecodeError::NoPartition);
    }
    c.skip_string()?;
    let partitions = c.i32()?;
    if c.len(partitions)? == 0 {
        return Err(DecodeError::NoPartition);
    }
    c.i32()?; // PartitionIndex
    let mut p = FetchedPartition {
        error_code: c.i16()?,
        high_watermark: c.i64()?,
        last_stable_offset: c.i64()?,
        log_start_offset: -1,
        batches: Vec::new(),
    };
    if version >= 5 {
        p.log_start_offset = c.i64()?;
    }
    let aborted = c.i32()?;
    let aborted = c.len(aborted)?;
    c.take(aborted.checked_mul(16).ok_or(DecodeError::BadLength(c.at))?)?;
    if version >= 11 {
        c.i32()?; // PreferredReadReplica
    }
    let size = c.i32()?;
    let size = c.len(size)?;
    let records = c.take(size)?;
    p.batches = batches(records)?;
    Ok(p)
}

/// The headers of the whole batches in `records` (v2 format); a last
/// batch cut off by the size limit is left out. Older formats (magic 0
/// and 1) carry no producer ids: their batches are skipped.
///
/// # Errors
/// A batch whose header does not hold together.
pub fn batches(records: &[u8]) -> Result<Vec<BatchHeader>, DecodeError> {
    let mut out = Vec::new();
    let mut c = Cursor { b: records, at: 0 };
    // BaseOffset (8) and BatchLength (4) lead every batch.
    while records.len() - c.at >= 12 {
        let start = c.at;
        let base_offset = c.i64()?;
        let length = c.i32()?;
        let length = c.len(length)?;
        if records.len() - c.at < length {
            break; // cut off at the size limit
        }
        let mut b = Cursor {
            b: c.take(length)?,
            at: 0,
        };
        b.i32()?; // PartitionLeaderEpoch
        if b.i8()? != 2 {
            continue;
        }
        b.i32()?; // CRC
        let attributes = b.i16()?;
        let last_delta = b.i32()?;
        let first_timestamp = b.i64()?;
        let max_timestamp = b.i64()?;
        let producer_id = b.i64()?;
        let producer_epoch = b.i16()?;
        b.i32()?; // BaseSequence
        let count = b.i32()?;
        let control = if attributes & 0x20 != 0 && count > 0 {
            Some(marker(&mut b)?)
        } else {
            None
        };
        out.push(BatchHeader {
            base_offset,
            last_offset: base_offset
                .checked_add(i64::from(last_delta))
                .ok_or(DecodeError::BadLength(start))?,
            producer_id,
            producer_epoch,
            transactional: attributes & 0x10 != 0,
            control,
            first_timestamp,
            max_timestamp,
        });
    }
    Ok(out)
}

/// The marker of a control batch's first record (control batches are never
/// compressed).
fn marker(b: &mut Cursor<'_>) -> Result<Marker, DecodeError> {
    b.varint()?; // Length
    b.i8()?; // Attributes
    b.varint()?; // TimestampDelta
    b.varint()?; // OffsetDelta
    let key_len = b.varint()?;
    if key_len < 4 {
        return Err(DecodeError::BadLength(b.at));
    }
    b.i16()?; // control record version
    Ok(match b.i16()? {
        0 => Marker::Abort,
        1 => Marker::Commit,
        t => Marker::Other(t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 batch: header fields as given, then `body` as its records.
    fn batch(base: i64, last_delta: i32, attrs: i16, pid: i64, ts: i64, count: i32, body: &[u8]) -> Vec<u8> {
        let mut inner = Vec::new();
        inner.extend(0i32.to_be_bytes()); // leader epoch
        inner.push(2); // magic
        inner.extend(0i32.to_be_bytes()); // crc (not checked here)
        inner.extend(attrs.to_be_bytes());
        inner.extend(last_delta.to_be_bytes());
        inner.extend(ts.to_be_bytes());
        inner.extend((ts + 5).to_be_bytes());
        inner.extend(pid.to_be_bytes());
        inner.extend(3i16.to_be_bytes());
        inner.extend(0i32.to_be_bytes());
        inner.extend(count.to_be_bytes());
        inner.extend(body);
        let mut out = base.to_be_bytes().to_vec();
        out.extend((inner.len() as i32).to_be_bytes());
        out.extend(inner);
        out
    }

    /// A control record whose key is (version 0, `kind`), as zigzag varints.
    fn control_record(kind: i16) -> Vec<u8> {
        let mut r = vec![0u8]; // attributes
        r.extend([0, 0]); // timestamp delta 0, offset delta 0
        r.push(8); // key length 4, zigzag
        r.extend(0i16.to_be_bytes());
        r.extend(kind.to_be_bytes());
        r.extend([2, 0, 0, 0, 0, 0]); // value length 1 .. (not read)
        let mut out = vec![(r.len() as u8) << 1];
        out.extend(r);
        out
    }

    /// A Fetch v`version` answer for one partition holding `records`.
    fn answer(version: i16, records: &[u8]) -> Vec<u8> {
        let mut b = 0i32.to_be_bytes().to_vec();
        if version >= 7 {
            b.extend(0i16.to_be_bytes());
            b.extend(0i32.to_be_bytes());
        }
        b.extend(1i32.to_be_bytes());
        b.extend(1i16.to_be_bytes());
        b.push(b't');
        b.extend(1i32.to_be_bytes());
        b.extend(0i32.to_be_bytes()); // partition
        b.extend(0i16.to_be_bytes()); // error
        b.extend(42i64.to_be_bytes()); // hw
        b.extend(40i64.to_be_bytes()); // lso
        if version >= 5 {
            b.extend(7i64.to_be_bytes());
        }
        b.extend(1i32.to_be_bytes()); // one aborted transaction
        b.extend(9i64.to_be_bytes());
        b.extend(20i64.to_be_bytes());
        if version >= 11 {
            b.extend((-1i32).to_be_bytes());
        }
        b.extend((records.len() as i32).to_be_bytes());
        b.extend(records);
        b
    }

    #[test]
    fn batch_headers_and_markers_are_decoded_in_every_version() {
        let mut records = batch(10, 2, 0x10, 9, 1_000, 3, &[]);
        records.extend(batch(13, 0, 0x30, 9, 2_000, 1, &control_record(1)));
        records.extend(batch(14, 0, 0x30, 8, 3_000, 1, &control_record(0)));
        records.extend(batch(15, 4, 0, -1, 4_000, 5, &[]));
        // A last batch cut off at the size limit.
        records.extend(&batch(20, 0, 0, -1, 5_000, 1, &[])[..20]);
        for version in 4..=11 {
            let p = decode(version, &answer(version, &records)).unwrap();
            assert_eq!((p.high_watermark, p.last_stable_offset), (42, 40));
            assert_eq!(p.log_start_offset, if version >= 5 { 7 } else { -1 });
            let got: Vec<_> = p
                .batches
                .iter()
                .map(|b| {
                    (
                        b.base_offset,
                        b.last_offset,
                        b.producer_id,
                        b.transactional,
                        b.control,
                    )
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    (10, 12, 9, true, None),
                    (13, 13, 9, true, Some(Marker::Commit)),
                    (14, 14, 8, true, Some(Marker::Abort)),
                    (15, 19, -1, false, None),
                ],
                "v{version}"
            );
            assert_eq!(p.batches[1].max_timestamp, 2_005);
        }
    }

    #[test]
    fn committed_runs_get_their_marker_and_aborted_or_open_ones_none() {
        let h = |base, last, pid, tx, control| BatchHeader {
            base_offset: base,
            last_offset: last,
            producer_id: pid,
            producer_epoch: 0,
            transactional: tx,
            control,
            first_timestamp: 0,
            max_timestamp: base * 10,
        };
        let log = [
            h(0, 1, 7, true, None),
            h(2, 2, 8, true, None), // aborted below
            h(3, 4, 7, true, None),
            h(5, 5, -1, false, None),
            h(6, 6, 7, true, Some(Marker::Commit)),
            h(7, 7, 8, true, Some(Marker::Abort)),
            h(8, 9, 9, true, None), // open: no marker yet
        ];
        assert_eq!(
            committed_spans(&log),
            vec![
                TxnSpan::new([0, 1, 6, 60, 7, 0]),
                TxnSpan::new([3, 4, 6, 60, 7, 0])
            ],
            "runs interrupted by another producer stay apart"
        );
        let joined = [
            h(0, 1, 7, true, None),
            h(2, 3, 7, true, None),
            h(4, 4, 7, true, Some(Marker::Commit)),
        ];
        assert_eq!(committed_spans(&joined), vec![TxnSpan::new([0, 3, 4, 40, 7, 0])]);
        assert_eq!(
            open_transactions(&log),
            vec![OpenTxn([8, 9, 0])],
            "ended transactions are not open"
        );
        let two = [
            h(0, 0, 7, true, None),
            h(1, 1, 8, true, None),
            h(2, 2, 7, true, None),
        ];
        assert_eq!(
            open_transactions(&two),
            vec![OpenTxn([0, 7, 0]), OpenTxn([1, 8, 0])]
        );
    }

    #[test]
    fn what_is_not_an_answer_is_an_error_never_a_panic() {
        let good = answer(11, &batch(0, 0, 0x30, 1, 1, 1, &control_record(1)));
        assert!(decode(11, &good).is_ok());
        for cut in 0..good.len() {
            let _ = decode(11, &good[..cut]);
        }
        assert_eq!(decode(12, &good), Err(DecodeError::Version(12)));
        let mut bad = good.clone();
        let at = bad.len() - 4 - 61 - 13;
        bad[at..at + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode(11, &bad).is_err());
    }
}
