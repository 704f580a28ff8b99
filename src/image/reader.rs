//! Reading a partition's records back out of the image: chunk by chunk
//! (chunks hold whole records), offsets from the segment's runs, chunks
//! outside a filter's offsets or times skipped unread (their metadata
//! says). Used by `dump`, restore and repair.

use super::manifest::{Partition, Segment};
use super::record::{Decoder, Record, RecordRef};
use crate::error::{Error, Result};
use crate::repo::Repository;

/// Which records to return.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// First offset (inclusive).
    pub from_offset: Option<i64>,
    /// Last offset (exclusive).
    pub to_offset: Option<i64>,
    /// Earliest timestamp (inclusive, ms).
    pub from_time: Option<i64>,
    /// Latest timestamp (inclusive, ms).
    pub to_time: Option<i64>,
}

impl RecordFilter {
    pub(crate) fn wants(&self, offset: i64, ts: i64) -> bool {
        self.from_offset.is_none_or(|o| offset >= o)
            && self.to_offset.is_none_or(|o| offset < o)
            && self.from_time.is_none_or(|t| ts >= t)
            && self.to_time.is_none_or(|t| ts <= t)
    }
}

/// Calls `f(offset, record)` for every record of a partition the filter
/// wants, in offset order. Chunks whose offsets or timestamps lie outside
/// the filter are skipped without being read.
///
/// # Errors
/// Unreadable or corrupt blobs; a segment whose runs and chunks disagree.
pub async fn for_each_record(
    repo: &Repository,
    what: &str,
    p: &Partition,
    filter: &RecordFilter,
    f: &mut (dyn FnMut(i64, Record) -> Result<()> + Send),
) -> Result<()> {
    for_each_record_ref(repo, what, p, filter, &mut |o, r| f(o, r.to_record())).await
}

/// [`for_each_record`] handing out each record borrowed from its chunk (no
/// copy of its key, value and headers).
///
/// # Errors
/// As [`for_each_record`].
pub async fn for_each_record_ref(
    repo: &Repository,
    what: &str,
    p: &Partition,
    filter: &RecordFilter,
    f: &mut (dyn FnMut(i64, &RecordRef<'_>) -> Result<()> + Send),
) -> Result<()> {
    for seg in &p.segments {
        for_each_in_segment(repo, what, seg, filter, f).await?;
    }
    Ok(())
}

async fn for_each_in_segment(
    repo: &Repository,
    what: &str,
    seg: &Segment,
    filter: &RecordFilter,
    f: &mut (dyn FnMut(i64, &RecordRef<'_>) -> Result<()> + Send),
) -> Result<()> {
    if seg.chunks.len() != seg.meta.chunks.len() {
        return Err(Error::corrupt(
            what,
            "segment chunk list and chunk metadata differ",
        ));
    }
    for (id, cm, chunk_offsets) in seg.chunks_with_offsets() {
        let (Some(first), Some(last)) = (chunk_offsets.first().copied(), chunk_offsets.last().copied())
        else {
            continue;
        };
        let skip = filter.to_offset.is_some_and(|o| first >= o)
            || filter.from_offset.is_some_and(|o| last < o)
            || filter.from_time.is_some_and(|t| cm.max_ts() < t)
            || filter.to_time.is_some_and(|t| cm.min_ts() > t);
        if skip {
            continue;
        }
        let data = repo.read_blob(id).await?;
        let mut dec = Decoder::new(&data, cm.ts_base(), what);
        for off in &chunk_offsets {
            let r = dec
                .next_ref()
                .ok_or_else(|| Error::corrupt(what, "chunk holds fewer records than its metadata"))??;
            if filter.wants(*off, r.timestamp) {
                f(*off, &r)?;
            }
        }
        if dec.next_ref().is_some() {
            return Err(Error::corrupt(what, "chunk holds more records than its metadata"));
        }
    }
    Ok(())
}
