//! Erasing records by key (`kvault rewrite`, format-spec §14 "Erased
//! records"): one chunk's records without those whose key is to go, the
//! rest re-encoded with their bytes and timestamps unchanged, and a
//! segment's metadata without the erased offsets. Pure: no storage.
//!
//! A chunk holds no absolute offsets, so what is erased from it is the
//! same record positions wherever it is referenced: [`erase_chunk`] is
//! computed once per chunk id and applied to every segment holding it with
//! [`erase_segment`].

use std::collections::HashSet;

use super::manifest::SegmentMeta;
use super::record::{Decoder, Encoder, OffsetRuns, Record};
use super::types::ChunkMeta;
use crate::error::Result;

/// The keys to erase, compared as exact bytes.
#[derive(Debug, Clone, Default)]
pub struct KeySet(HashSet<Vec<u8>>);

impl KeySet {
    /// A set of keys.
    pub fn new(keys: impl IntoIterator<Item = Vec<u8>>) -> KeySet {
        KeySet(keys.into_iter().collect())
    }

    /// Whether `key` is one to erase (a null key never is).
    pub fn matches(&self, key: Option<&[u8]>) -> bool {
        key.is_some_and(|k| self.0.contains(k))
    }

    /// The keys.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(Vec::as_slice)
    }

    /// Whether any key's bytes occur anywhere in `data` (when none does,
    /// no record there can have one as its key).
    pub fn any_in(&self, data: &[u8]) -> bool {
        self.0.iter().any(|k| memchr::memmem::find(data, k).is_some())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What erasing keys from one chunk leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkErasure {
    /// Positions (0-based, in the chunk's record order) of the erased records.
    pub erased: Vec<usize>,
    /// The chunk's remaining records re-encoded (timestamp deltas from the
    /// original `ts_base`); `None` when no record remains.
    pub data: Option<Vec<u8>>,
    /// Smallest and largest timestamp of the remaining records.
    pub ts_range: Option<(i64, i64)>,
    /// Encoded bytes of the erased records' keys and values.
    pub erased_bytes: u64,
}

/// Erases the records whose key is in `keys` from a chunk; `None` when the
/// chunk holds none (it is reused as it is).
///
/// # Errors
/// A chunk that does not decode.
pub fn erase_chunk(data: &[u8], ts_base: i64, keys: &KeySet, what: &str) -> Result<Option<ChunkErasure>> {
    // Most chunks hold no key's bytes at all: no decoding for them.
    if !keys.any_in(data) {
        return Ok(None);
    }
    let records: Vec<Record> = Decoder::new(data, ts_base, what).collect::<Result<_>>()?;
    let erased: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| keys.matches(r.key.as_deref()))
        .map(|(i, _)| i)
        .collect();
    if erased.is_empty() {
        return Ok(None);
    }
    // Deltas from the chunk's base, as the segment writer's were.
    let mut enc = Encoder::starting_at(ts_base);
    let (mut out, mut ts_range, mut erased_bytes) = (Vec::new(), None::<(i64, i64)>, 0u64);
    for (i, r) in records.iter().enumerate() {
        if erased.binary_search(&i).is_ok() {
            erased_bytes +=
                (r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len)) as u64;
            continue;
        }
        enc.encode(&r.as_ref(), &mut out);
        ts_range = Some(ts_range.map_or((r.timestamp, r.timestamp), |(lo, hi)| {
            (lo.min(r.timestamp), hi.max(r.timestamp))
        }));
    }
    Ok(Some(ChunkErasure {
        erased,
        data: (!out.is_empty()).then_some(out),
        ts_range,
        erased_bytes,
    }))
}

/// One chunk of a segment after erasure: kept as it was, replaced, or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkFate<'a, I> {
    /// No record erased.
    Kept,
    /// Some records erased: the new chunk's id and what was erased.
    Replaced(I, &'a ChunkErasure),
    /// Every record erased.
    Gone(&'a ChunkErasure),
}

/// A segment's metadata and chunk ids after erasure, given each chunk's
/// fate in order; `None` when nothing was erased. The erased offsets leave
/// the runs and join `erased` (as `[first, end)` ranges).
pub fn erase_segment<I: Copy>(
    meta: &SegmentMeta,
    ids: &[I],
    fates: &[ChunkFate<'_, I>],
) -> Option<(SegmentMeta, Vec<I>, Vec<i64>)> {
    if fates.iter().all(|f| matches!(f, ChunkFate::Kept)) {
        return None;
    }
    let (mut runs, mut chunks, mut new_ids, mut gone) =
        (OffsetRuns::default(), Vec::new(), Vec::new(), Vec::new());
    for ((id, (cm, offs)), fate) in ids.iter().zip(meta.chunk_offsets()).zip(fates) {
        let (new_id, e) = match *fate {
            ChunkFate::Kept => {
                offs.iter().for_each(|&o| runs.push(o));
                chunks.push(*cm);
                new_ids.push(*id);
                continue;
            }
            ChunkFate::Replaced(new_id, e) => (Some(new_id), e),
            ChunkFate::Gone(e) => (None, e),
        };
        let kept: Vec<i64> = offs
            .iter()
            .enumerate()
            .filter(|(i, _)| e.erased.binary_search(i).is_err())
            .map(|(_, &o)| o)
            .collect();
        gone.extend(e.erased.iter().filter_map(|&i| offs.get(i).copied()));
        if let (Some(new_id), Some(&first), Some((lo, hi))) = (new_id, kept.first(), e.ts_range) {
            kept.iter().for_each(|&o| runs.push(o));
            chunks.push(ChunkMeta([first, kept.len() as i64, lo, hi, cm.ts_base()]));
            new_ids.push(new_id);
        }
    }
    let mut erased = meta.erased.clone();
    erased.extend(gone.iter().map(|&o| [o, o + 1]));
    let new = SegmentMeta {
        records: runs.count(),
        runs,
        chunks,
        erased: merge_ranges(erased),
        // The segment's key filters are dropped with it (they would still
        // answer for the erased keys).
        filter_at: None,
        ..meta.clone()
    };
    Some((new, new_ids, gone))
}

/// Sorted, non-overlapping `[first, end)` ranges covering the same offsets.
pub fn merge_ranges(mut v: Vec<[i64; 2]>) -> Vec<[i64; 2]> {
    v.sort_unstable();
    let mut out: Vec<[i64; 2]> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if r[0] <= last[1] => last[1] = last[1].max(r[1]),
            _ => out.push(r),
        }
    }
    out
}

/// The offsets of `ranges` that are not in `minus` (both sorted and
/// non-overlapping), as ranges.
pub fn subtract_ranges(ranges: &[[i64; 2]], minus: &[[i64; 2]]) -> Vec<[i64; 2]> {
    let mut out = Vec::new();
    for &[mut a, b] in ranges {
        for m in minus.iter().filter(|m| m[0] < b) {
            if m[1] <= a {
                continue;
            }
            if m[0] > a {
                out.push([a, m[0]]);
            }
            a = a.max(m[1]);
        }
        if a < b {
            out.push([a, b]);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::image::record::TimestampType;

    fn rec(i: i64, key: &str) -> Record {
        Record {
            timestamp: 1_000 + i * 7 - (i % 3) * 5,
            timestamp_type: TimestampType::CreateTime,
            key: Some(key.as_bytes().to_vec()),
            value: Some(format!("value {i} of {key}").into_bytes()),
            headers: vec![("h".into(), Some(vec![i as u8]))],
        }
    }

    fn encode(records: &[Record], ts_base: i64) -> Vec<u8> {
        let mut enc = Encoder::starting_at(ts_base);
        let mut out = Vec::new();
        for r in records {
            enc.encode(&r.as_ref(), &mut out);
        }
        out
    }

    #[test]
    fn erasing_keeps_every_other_record_byte_for_byte_with_its_timestamp() {
        let records: Vec<Record> = (0..20)
            .map(|i| rec(i, if i % 4 == 1 { "alice" } else { "bob" }))
            .collect();
        let data = encode(&records, 900);
        let keys = KeySet::new([b"alice".to_vec()]);
        let e = erase_chunk(&data, 900, &keys, "test").unwrap().unwrap();
        assert_eq!(e.erased, vec![1, 5, 9, 13, 17]);
        let kept: Vec<Record> = Decoder::new(e.data.as_deref().unwrap(), 900, "t")
            .collect::<Result<_>>()
            .unwrap();
        let want: Vec<Record> = records
            .iter()
            .filter(|r| r.key.as_deref() != Some(b"alice"))
            .cloned()
            .collect();
        assert_eq!(kept, want);
        assert_eq!(
            e.ts_range,
            Some((
                want.iter().map(|r| r.timestamp).min().unwrap(),
                want.iter().map(|r| r.timestamp).max().unwrap()
            ))
        );
        assert!(!e.data.unwrap().windows(5).any(|w| w == b"alice"));
    }

    #[test]
    fn a_chunk_without_the_key_is_untouched_and_one_with_only_it_is_gone() {
        let data = encode(&[rec(0, "bob")], 0);
        assert_eq!(
            erase_chunk(&data, 0, &KeySet::new([b"alice".to_vec()]), "t").unwrap(),
            None
        );
        let e = erase_chunk(&data, 0, &KeySet::new([b"bob".to_vec()]), "t")
            .unwrap()
            .unwrap();
        assert_eq!((e.data, e.ts_range), (None, None));
    }

    #[test]
    fn a_segment_loses_the_erased_offsets_from_its_runs_and_records_them() {
        // Two chunks over offsets 10..13 and 15..18 (14 is a gap).
        let meta = SegmentMeta {
            start: 10,
            end: 18,
            records: 6,
            runs: OffsetRuns(vec![[10, 3], [15, 3]]),
            chunks: vec![ChunkMeta([10, 3, 1, 3, 0]), ChunkMeta([15, 3, 4, 6, 3])],
            txns: None,
            erased: vec![],
            filter_at: None,
        };
        let first = ChunkErasure {
            erased: vec![1],
            data: Some(vec![1]),
            ts_range: Some((1, 3)),
            erased_bytes: 5,
        };
        let second = ChunkErasure {
            erased: vec![0, 1, 2],
            data: None,
            ts_range: None,
            erased_bytes: 9,
        };
        let (m, ids, gone) = erase_segment(
            &meta,
            &["a", "b"],
            &[ChunkFate::Replaced("a2", &first), ChunkFate::Gone(&second)],
        )
        .unwrap();
        assert_eq!(ids, vec!["a2"]);
        assert_eq!(gone, vec![11, 15, 16, 17]);
        assert_eq!(m.runs, OffsetRuns(vec![[10, 1], [12, 1]]));
        assert_eq!(m.records, 2);
        assert_eq!(m.chunks, vec![ChunkMeta([10, 2, 1, 3, 0])]);
        assert_eq!(m.erased, vec![[11, 12], [15, 18]]);
        assert_eq!(
            erase_segment(&meta, &["a", "b"], &[ChunkFate::Kept, ChunkFate::Kept]),
            None
        );
    }

    #[test]
    fn ranges_merge_and_subtract() {
        assert_eq!(
            merge_ranges(vec![[5, 6], [1, 2], [2, 4], [6, 7]]),
            vec![[1, 4], [5, 7]]
        );
        assert_eq!(
            subtract_ranges(&[[0, 10], [20, 30]], &[[2, 3], [5, 25]]),
            vec![[0, 2], [3, 5], [25, 30]]
        );
    }
}
