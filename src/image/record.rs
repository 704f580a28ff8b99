//! Canonical serialization of Kafka records (format-spec/README.md §13).
//!
//! A partition's records are written as one byte stream **without absolute
//! offsets**, so the same record sequence produces the same bytes (and so
//! the same chunks) in any topic, partition, cluster or snapshot. Offsets
//! live beside the stream as runs (`[first, count]`): offsets not covered
//! by a run are gaps (compaction, aborted transactions, control records).
//!
//! ```text
//! record := flags(1) ts_delta(zigzag varint)
//!           [key_len(varint) key] [value_len(varint) value]
//!           header_count(varint) { name_len(varint) name value_len+1(varint, 0 = null) value }
//! flags  := bit0 key present | bit1 value present | bit2 LogAppendTime | bit3 no timestamp
//! ```
//!
//! `ts_delta` is the timestamp minus the previous record's in the same
//! stream (0 before the first). Null and empty keys, values and header
//! values stay distinct; header order and duplicate names are kept.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a record's timestamp was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when appended.
    LogAppendTime,
    /// No timestamp.
    None,
}

/// One record, as kvault stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Milliseconds since the epoch (or -1 with [`TimestampType::None`]).
    pub timestamp: i64,
    /// Timestamp type.
    pub timestamp_type: TimestampType,
    /// Key; `None` is a null key (distinct from empty).
    pub key: Option<Vec<u8>>,
    /// Value; `None` is a null value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers in order; duplicates and null values kept.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

const KEY: u8 = 1;
const VALUE: u8 = 2;
const LOG_APPEND: u8 = 4;
const NO_TS: u8 = 8;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes records into a stream; keeps the previous timestamp.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    prev_ts: i64,
}

impl Encoder {
    /// An encoder whose previous timestamp is `prev_ts` (a chunk's
    /// `ts_base`: re-encoding part of a stream from there).
    pub fn starting_at(prev_ts: i64) -> Encoder {
        Encoder { prev_ts }
    }

    /// Appends one record's encoding to `out`.
    pub fn encode(&mut self, r: &RecordRef<'_>, out: &mut Vec<u8>) {
        let mut flags = 0u8;
        if r.key.is_some() {
            flags |= KEY;
        }
        if r.value.is_some() {
            flags |= VALUE;
        }
        match r.timestamp_type {
            TimestampType::LogAppendTime => flags |= LOG_APPEND,
            TimestampType::None => flags |= NO_TS,
            TimestampType::CreateTime => {}
        }
        out.push(flags);
        put_varint(out, zigzag(r.timestamp.wrapping_sub(self.prev_ts)));
        self.prev_ts = r.timestamp;
        for part in [r.key, r.value].into_iter().flatten() {
            put_varint(out, part.len() as u64);
            out.extend_from_slice(part);
        }
        put_varint(out, r.headers.len() as u64);
        for (name, value) in &r.headers {
            put_varint(out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
            match value {
                None => put_varint(out, 0),
                Some(v) => {
                    put_varint(out, v.len() as u64 + 1);
                    out.extend_from_slice(v);
                }
            }
        }
    }
}

impl Record {
    /// The record borrowed, to encode.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_deref()))
                .collect(),
        }
    }
}

/// A borrowed record (what a consumer hands out), to encode without copying.
#[derive(Debug, Clone)]
pub struct RecordRef<'a> {
    /// Timestamp.
    pub timestamp: i64,
    /// Timestamp type.
    pub timestamp_type: TimestampType,
    /// Key.
    pub key: Option<&'a [u8]>,
    /// Value.
    pub value: Option<&'a [u8]>,
    /// Headers.
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

impl RecordRef<'_> {
    /// The record, owned.
    pub fn to_record(&self) -> Record {
        Record {
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| ((*n).to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
        }
    }
}

/// Decodes records from a stream (or a chunk of one, given the previous
/// timestamp the encoder had at the chunk's start).
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    prev_ts: i64,
    what: &'a str,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf`; `prev_ts` is the timestamp before the first
    /// record (0 at a stream's start); `what` names the data in errors.
    pub fn new(buf: &'a [u8], prev_ts: i64, what: &'a str) -> Self {
        Decoder {
            buf,
            pos: 0,
            prev_ts,
            what,
        }
    }

    fn err(&self, msg: &str) -> Error {
        Error::corrupt(self.what, format!("record stream at byte {}: {msg}", self.pos))
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.err("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| self.err("length overflows"))?;
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.err("length overflows"))?;
        let buf: &'a [u8] = self.buf;
        let s = buf
            .get(self.pos..end)
            .ok_or_else(|| self.err("length past the end"))?;
        self.pos = end;
        Ok(s)
    }

    /// The timestamp of the last decoded record.
    pub fn prev_ts(&self) -> i64 {
        self.prev_ts
    }
}

impl Iterator for Decoder<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        self.next_ref().map(|r| r.map(|r| r.to_record()))
    }
}

impl<'a> Decoder<'a> {
    /// The next record, borrowed from the buffer (no copy).
    pub fn next_ref(&mut self) -> Option<Result<RecordRef<'a>>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        Some(self.decode_one())
    }

    fn decode_one(&mut self) -> Result<RecordRef<'a>> {
        let flags = self.byte()?;
        if flags & !(KEY | VALUE | LOG_APPEND | NO_TS) != 0
            || flags & (LOG_APPEND | NO_TS) == LOG_APPEND | NO_TS
        {
            return Err(self.err("bad flags"));
        }
        let delta = unzigzag(self.varint()?);
        let timestamp = self.prev_ts.wrapping_add(delta);
        self.prev_ts = timestamp;
        let key = if flags & KEY != 0 {
            Some(self.bytes_len()?)
        } else {
            None
        };
        let value = if flags & VALUE != 0 {
            Some(self.bytes_len()?)
        } else {
            None
        };
        let n = self.varint()?;
        let mut headers = Vec::new();
        for _ in 0..n {
            let name = self.bytes_len()?;
            let name = std::str::from_utf8(name).map_err(|_| self.err("header name is not UTF-8"))?;
            let vl = self.varint()?;
            let value = if vl == 0 { None } else { Some(self.bytes(vl - 1)?) };
            headers.push((name, value));
        }
        let timestamp_type = if flags & LOG_APPEND != 0 {
            TimestampType::LogAppendTime
        } else if flags & NO_TS != 0 {
            TimestampType::None
        } else {
            TimestampType::CreateTime
        };
        Ok(RecordRef {
            timestamp,
            timestamp_type,
            key,
            value,
            headers,
        })
    }

    fn bytes_len(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()?;
        self.bytes(n)
    }
}

/// Offsets of a stream's records: runs of consecutive offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRuns(pub Vec<[i64; 2]>);

impl OffsetRuns {
    /// Records the next record's offset (must increase).
    pub fn push(&mut self, offset: i64) {
        if let Some(last) = self.0.last_mut() {
            if last[0] + last[1] == offset {
                last[1] += 1;
                return;
            }
        }
        self.0.push([offset, 1]);
    }

    /// Number of records.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|r| r[1].max(0) as u64).sum()
    }

    /// Iterates over every offset.
    pub fn offsets(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().flat_map(|r| r[0]..r[0] + r[1])
    }

    /// The gaps inside `[start, end)` not covered by a run.
    pub fn gaps(&self, start: i64, end: i64) -> Vec<[i64; 2]> {
        let mut out = Vec::new();
        let mut at = start;
        for r in &self.0 {
            if r[0] > at {
                out.push([at, r[0]]);
            }
            at = at.max(r[0] + r[1]);
        }
        if at < end {
            out.push([at, end]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec() -> impl Strategy<Value = Record> {
        let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20));
        (
            any::<i64>(),
            prop_oneof![
                Just(TimestampType::CreateTime),
                Just(TimestampType::LogAppendTime),
                Just(TimestampType::None)
            ],
            bytes(),
            bytes(),
            proptest::collection::vec(("[a-z]{0,4}", bytes()), 0..4),
        )
            .prop_map(|(timestamp, timestamp_type, key, value, headers)| Record {
                timestamp,
                timestamp_type,
                key,
                value,
                headers,
            })
    }

    fn encode_all(rs: &[Record]) -> Vec<u8> {
        let mut e = Encoder::default();
        let mut out = Vec::new();
        for r in rs {
            e.encode(&r.as_ref(), &mut out);
        }
        out
    }

    #[test]
    fn null_and_empty_are_distinct() {
        let a = Record {
            timestamp: 5,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: Some(vec![]),
            headers: vec![("h".into(), None), ("h".into(), Some(vec![]))],
        };
        let b = Record {
            key: Some(vec![]),
            value: None,
            ..a.clone()
        };
        let ea = encode_all(std::slice::from_ref(&a));
        let eb = encode_all(std::slice::from_ref(&b));
        assert_ne!(ea, eb);
        assert_eq!(Decoder::new(&ea, 0, "t").next().unwrap().unwrap(), a);
        assert_eq!(Decoder::new(&eb, 0, "t").next().unwrap().unwrap(), b);
    }

    #[test]
    fn runs_and_gaps() {
        let mut r = OffsetRuns::default();
        for o in [3, 4, 5, 9, 10, 12] {
            r.push(o);
        }
        assert_eq!(r.0, vec![[3, 3], [9, 2], [12, 1]]);
        assert_eq!(r.count(), 6);
        assert_eq!(r.gaps(0, 15), vec![[0, 3], [6, 9], [11, 12], [13, 15]]);
        assert_eq!(r.offsets().collect::<Vec<_>>(), vec![3, 4, 5, 9, 10, 12]);
    }

    proptest! {
        #[test]
        fn round_trip(rs in proptest::collection::vec(rec(), 0..20)) {
            let bytes = encode_all(&rs);
            let back: Vec<Record> = Decoder::new(&bytes, 0, "t").collect::<Result<_>>().unwrap();
            prop_assert_eq!(back, rs);
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            for r in Decoder::new(&b, 0, "t") {
                if r.is_err() { break; }
            }
        }
    }
}
