//! Writing one partition's records as a segment (format-spec §13): the
//! canonical record stream, cut into record-aligned content-defined chunks,
//! each returned with its metadata (first offset, records, min/max
//! timestamps, timestamp base), and the offsets as runs.
//!
//! The stream is scanned for its next cut as records arrive
//! ([`Chunker::scan`]): when a cut point (or the maximum size) falls inside
//! the record just added, the chunk ends at that record's end, so a chunk
//! is always the whole buffer and leaves without a copy. Pure: no Kafka
//! client, no storage.

use bytes::Bytes;

use super::keyfilter::{ChunkFilter, KeyHash, KeyHasher};
use super::record::{Encoder, OffsetRuns, RecordRef};
use super::types::ChunkMeta;
use crate::repo::chunker::{Chunker, ScanState};

/// A finished chunk of encoded records and its metadata.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Encoded records (whole records only).
    pub data: Bytes,
    /// First offset, record count, timestamps.
    pub meta: ChunkMeta,
    /// Its records' key filter, when the writer hashes keys.
    pub filter: Option<ChunkFilter>,
}

/// Builds one segment's chunks from records in offset order.
#[derive(Debug)]
pub struct SegmentWriter {
    enc: Encoder,
    buf: Vec<u8>,
    scan: ScanState,
    first_offset: i64,
    records: i64,
    min_ts: i64,
    max_ts: i64,
    ts_base: i64,
    last_ts: i64,
    runs: OffsetRuns,
    bytes: u64,
    last_chunk: usize,
    /// Hashes keys into each chunk's filter when set.
    hasher: Option<KeyHasher>,
    key_hashes: Vec<KeyHash>,
}

impl Default for SegmentWriter {
    fn default() -> Self {
        SegmentWriter {
            enc: Encoder::default(),
            buf: Vec::new(),
            scan: ScanState::default(),
            first_offset: 0,
            records: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            ts_base: 0,
            last_ts: 0,
            runs: OffsetRuns::default(),
            bytes: 0,
            last_chunk: 64 * 1024,
            hasher: None,
            key_hashes: Vec::new(),
        }
    }
}

impl SegmentWriter {
    /// A writer whose chunks carry a key filter made with `hasher`.
    pub fn with_key_filters(hasher: KeyHasher) -> SegmentWriter {
        SegmentWriter {
            hasher: Some(hasher),
            ..SegmentWriter::default()
        }
    }

    /// Adds the record at `offset`; returns a chunk when one is complete.
    pub fn push(&mut self, chunker: &Chunker, offset: i64, r: &RecordRef<'_>) -> Option<Chunk> {
        if self.records == 0 {
            self.first_offset = offset;
            if self.buf.capacity() == 0 {
                // Room for a chunk like the last one and then some: growing
                // a megabyte buffer by doubling copies it each time.
                self.buf
                    .reserve((self.last_chunk.saturating_mul(2)).min(chunker.max_size() + (64 << 10)));
            }
        }
        let before = self.buf.len();
        self.enc.encode(r, &mut self.buf);
        self.bytes += (self.buf.len() - before) as u64;
        self.records += 1;
        self.min_ts = self.min_ts.min(r.timestamp);
        self.max_ts = self.max_ts.max(r.timestamp);
        self.last_ts = r.timestamp;
        self.runs.push(offset);
        if let (Some(h), Some(k)) = (&self.hasher, r.key) {
            self.key_hashes.push(h.hash(k));
        }
        chunker.scan(&mut self.scan, &self.buf).and_then(|_| self.cut())
    }

    /// Ends the current chunk now, at the last record (the stream's end, or
    /// memory pressure).
    pub fn cut(&mut self) -> Option<Chunk> {
        if self.records == 0 {
            return None;
        }
        let meta = ChunkMeta([
            self.first_offset,
            self.records,
            self.min_ts,
            self.max_ts,
            self.ts_base,
        ]);
        self.last_chunk = self.buf.len();
        let data = Bytes::from(std::mem::take(&mut self.buf));
        self.ts_base = self.last_ts;
        self.records = 0;
        self.min_ts = i64::MAX;
        self.max_ts = i64::MIN;
        self.scan = ScanState::default();
        let filter = self.hasher.as_ref().map(|_| {
            let f = ChunkFilter::build(&self.key_hashes);
            self.key_hashes.clear();
            f
        });
        Some(Chunk { data, meta, filter })
    }

    /// Bytes buffered for the current chunk.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Encoded bytes of every record pushed.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The offsets of every record pushed.
    pub fn runs(&self) -> &OffsetRuns {
        &self.runs
    }

    /// Ends the segment: its last chunk (if records are buffered), the
    /// offsets and the encoded byte count.
    pub fn finish(mut self) -> (Option<Chunk>, OffsetRuns, u64) {
        let last = self.cut();
        (last, self.runs, self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::record::{Decoder, TimestampType};
    use crate::repo::chunker::ChunkerParams;

    fn chunker() -> Chunker {
        Chunker::new(
            &[9u8; 32],
            ChunkerParams {
                min_size: 256,
                avg_size: 1024,
                max_size: 4096,
            },
        )
        .unwrap()
    }

    fn value(i: i64) -> Vec<u8> {
        format!(
            "{{\"n\":{i},\"pad\":\"{}\"}}",
            "x".repeat((i as usize * 7919) % 300)
        )
        .into_bytes()
    }

    fn write(offsets: &[i64]) -> (Vec<Chunk>, OffsetRuns, u64) {
        let c = chunker();
        let mut w = SegmentWriter::default();
        let mut chunks = Vec::new();
        for (i, &o) in offsets.iter().enumerate() {
            let v = value(i as i64);
            let r = RecordRef {
                timestamp: 1_000 + i as i64,
                timestamp_type: TimestampType::CreateTime,
                key: Some(b"k"),
                value: Some(&v),
                headers: vec![],
            };
            chunks.extend(w.push(&c, o, &r));
        }
        let (last, runs, bytes) = w.finish();
        chunks.extend(last);
        (chunks, runs, bytes)
    }

    #[test]
    fn chunks_hold_whole_records_that_decode_alone_with_their_metadata() {
        let offsets: Vec<i64> = (0..3000).filter(|o| o % 17 != 3).collect();
        let (chunks, runs, bytes) = write(&offsets);
        assert!(chunks.len() > 10, "{} chunks", chunks.len());
        assert_eq!(runs.count(), offsets.len() as u64);
        assert_eq!(bytes, chunks.iter().map(|c| c.data.len() as u64).sum::<u64>());
        let mut next = offsets.iter().enumerate();
        for c in &chunks {
            assert!(c.data.len() <= 4096 + 400, "{}", c.data.len());
            let d = Decoder::new(&c.data, c.meta.ts_base(), "test");
            let mut n = 0;
            for r in d {
                let r = r.unwrap();
                let (i, &o) = next.next().unwrap();
                if n == 0 {
                    assert_eq!(c.meta.first_offset(), o);
                }
                assert_eq!(r.timestamp, 1_000 + i as i64);
                assert_eq!(r.value.as_deref(), Some(value(i as i64).as_slice()));
                assert!((c.meta.min_ts()..=c.meta.max_ts()).contains(&r.timestamp));
                n += 1;
            }
            assert_eq!(n, c.meta.records());
        }
        assert!(next.next().is_none());
    }

    #[test]
    fn the_same_records_make_the_same_chunks_at_any_offsets() {
        // No absolute offsets in the bytes: the same records dedupe wherever
        // they sit (another partition, cluster or snapshot).
        let (a, ..) = write(&(0..2000).collect::<Vec<_>>());
        let (b, ..) = write(&(0..4000).step_by(2).map(|o| o + 1_000_000).collect::<Vec<_>>());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.data, y.data);
            assert_eq!(x.meta.records(), y.meta.records());
        }
    }
}
