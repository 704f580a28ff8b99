//! `find`: every version of one record key across all Kafka snapshots.
//!
//! Each snapshot's image is walked (its segments' chunks, for the topics
//! selected); a chunk is read once however many snapshots share it, and
//! chunks whose timestamps lie outside `--from/--to` are not read. Every
//! record with exactly the key's bytes becomes a version, named by topic,
//! partition and offset, with the snapshots that hold it (those whose
//! image has it at or above their log start). Versions are listed oldest
//! first. `--at T` adds the value a consumer of a compacted topic saw at T:
//! the latest version stamped at or before T (a null value: deleted).
//!
//! A segment with key filters (format-spec §14 "Key filters") reads only
//! the chunks whose filter may hold the key; a segment without (older
//! snapshots, segments of few chunks, filters made under another
//! repository's key) reads every chunk in the time range. The report
//! counts both.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::dump::DumpedRecord;
use crate::error::Result;
use crate::id::Id;
use crate::image::keyfilter::{KeyHash, SegmentFilters};
use crate::image::manifest::{self, FilterCache, KAFKA_KIND, Segment};
use crate::image::record::{Decoder, Record};
use crate::kafka::filter::NameFilter;
use crate::repo::Repository;

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    /// Topic patterns (globs; none: every topic).
    pub topics: Vec<String>,
    /// The key's exact bytes.
    pub key: Vec<u8>,
    /// Earliest record timestamp (ms, inclusive).
    pub from: Option<i64>,
    /// Latest record timestamp (ms, inclusive).
    pub to: Option<i64>,
    /// The value as of this time (ms).
    pub at: Option<i64>,
    /// Read every chunk, ignoring key filters.
    pub no_filters: bool,
}

/// One version of the key.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    /// The record, as `dump` prints it.
    #[serde(flatten)]
    pub record: DumpedRecord,
    /// Snapshots whose image holds it, oldest first.
    pub snapshots: Vec<Id>,
}

/// What `find` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FindReport {
    /// Every version, oldest first (by timestamp, then position).
    pub versions: Vec<Version>,
    /// With `at`: the version a compacted-topic consumer saw then (its
    /// index in `versions`), `None` when the key had no version yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<AtValue>,
    /// Kafka snapshots examined.
    pub snapshots: usize,
    /// Distinct chunks read.
    pub chunks_read: u64,
    /// Distinct chunks skipped by their times.
    pub chunks_skipped: u64,
    /// Distinct chunks skipped by their key filters.
    pub chunks_filtered: u64,
    /// Segments read without key filters (snapshots older than them,
    /// segments changed by `rewrite` or `repair`, copies, `no_filters`).
    pub segments_unfiltered: u64,
}

/// The key as of a time.
#[derive(Debug, Clone, Serialize)]
pub struct AtValue {
    /// The time (ms).
    pub time: i64,
    /// Index of the version then current, if any.
    pub version: Option<usize>,
    /// Whether that version deleted the key (a null value, a tombstone).
    pub deleted: bool,
}

/// A version's place: topic, partition, offset, and its record's hash
/// (a topic deleted and made again reuses offsets).
type Place = (String, i32, i64, [u8; 32]);

/// Records of the key per chunk: `(offset, record)`.
type ChunkHits = Vec<(i64, Record)>;

/// What one run of `find` reads once: chunks (by id, timestamp base and
/// first offset: the same bytes can sit at other offsets), key filters
/// (by their tree), and the key's hash in filters.
struct Seen {
    chunks: HashMap<(Id, i64, i64), ChunkHits>,
    /// Chunks skipped by their times and by a filter, and segments read
    /// without one (by their first chunk), each counted once however many
    /// snapshots share it.
    skipped: HashSet<(Id, i64, i64)>,
    filtered: HashSet<(Id, i64, i64)>,
    unfiltered: HashSet<Id>,
    filters: FilterCache,
    key_hash: KeyHash,
}

/// Lists every version of `opts.key`.
///
/// # Errors
/// Unreadable snapshots or data; a bad topic pattern.
pub async fn find(repo: &Repository, opts: &FindOptions) -> Result<FindReport> {
    super::with_lock(repo, false, || find_locked(repo, opts)).await
}

async fn find_locked(repo: &Repository, opts: &FindOptions) -> Result<FindReport> {
    let topics = NameFilter::new("topic pattern", &opts.topics, &[])?;
    let mut snaps: Vec<(Id, crate::repo::snapshot::Snapshot)> = repo
        .load_snapshots()
        .await?
        .into_iter()
        .filter(|(_, s)| s.kind == KAFKA_KIND && !s.is_shard_part())
        .collect();
    snaps.sort_by_key(|(_, s)| s.system_time());
    repo.load_index().await?;
    let mut rep = FindReport {
        snapshots: snaps.len(),
        ..Default::default()
    };
    let filters = FilterCache::new(repo);
    let mut seen = Seen {
        chunks: HashMap::new(),
        skipped: HashSet::new(),
        filtered: HashSet::new(),
        unfiltered: HashSet::new(),
        key_hash: filters.hasher().hash(&opts.key),
        filters,
    };
    let mut found: BTreeMap<Place, (Record, Vec<Id>)> = BTreeMap::new();
    for (sid, s) in &snaps {
        let m = manifest::load(repo, &s.tree, true).await?;
        for t in m.topics.values().filter(|t| topics.matches(&t.name)) {
            for p in t.partitions.values() {
                for seg in &p.segments {
                    let hits = segment_hits(repo, seg, opts, &mut seen, &mut rep).await?;
                    for (offset, r) in hits.into_iter().filter(|(o, _)| *o >= p.meta.log_start) {
                        let place = (t.name.clone(), p.meta.partition, offset, record_id(&r));
                        let entry = found.entry(place).or_insert_with(|| (r, Vec::new()));
                        if !entry.1.contains(sid) {
                            entry.1.push(*sid);
                        }
                    }
                }
            }
        }
    }
    let mut versions: Vec<Version> = found
        .into_iter()
        .map(|((topic, partition, offset, _), (r, snapshots))| Version {
            record: DumpedRecord::new(&topic, partition, offset, &r),
            snapshots,
        })
        .collect();
    versions.sort_by(|a, b| {
        (
            a.record.timestamp,
            &a.record.topic,
            a.record.partition,
            a.record.offset,
        )
            .cmp(&(
                b.record.timestamp,
                &b.record.topic,
                b.record.partition,
                b.record.offset,
            ))
    });
    rep.at = opts.at.map(|t| {
        let version = versions.iter().rposition(|v| v.record.timestamp <= t);
        AtValue {
            time: t,
            version,
            deleted: version
                .and_then(|i| versions.get(i))
                .is_some_and(|v| v.record.value.is_none()),
        }
    });
    rep.versions = versions;
    Ok(rep)
}

/// A segment's usable key filters (each filter tree read once per run).
async fn filter_of(
    repo: &Repository,
    seg: &Segment,
    opts: &FindOptions,
    seen: &mut Seen,
    rep: &mut FindReport,
) -> Result<Option<SegmentFilters>> {
    let f = match opts.no_filters {
        true => None,
        false => {
            let at = seg.meta.filter_at;
            seen.filters.get(repo, seg.filter, at, seg.chunks.len()).await?
        }
    };
    if f.is_none()
        && let Some(first) = seg.chunks.first()
        && seen.unfiltered.insert(*first)
    {
        rep.segments_unfiltered += 1;
    }
    Ok(f)
}

/// The records of the key in a segment's chunks (each chunk read once per
/// run of `find`: shared chunks come from `seen`), skipping chunks outside
/// the time range and those whose key filter does not hold the key.
async fn segment_hits(
    repo: &Repository,
    seg: &Segment,
    opts: &FindOptions,
    seen: &mut Seen,
    rep: &mut FindReport,
) -> Result<ChunkHits> {
    let key_hash = seen.key_hash;
    let filters = filter_of(repo, seg, opts, seen, rep).await?;
    let mut out = Vec::new();
    for (i, (id, cm, offsets)) in seg.chunks_with_offsets().enumerate() {
        let at = (*id, cm.ts_base(), offsets.first().copied().unwrap_or(-1));
        let outside = opts.from.is_some_and(|f| cm.max_ts() < f) || opts.to.is_some_and(|t| cm.min_ts() > t);
        if outside {
            rep.chunks_skipped += u64::from(seen.skipped.insert(at));
            continue;
        }
        if filters.as_ref().is_some_and(|f| f.rules_out(i, &[key_hash])) {
            rep.chunks_filtered += u64::from(seen.filtered.insert(at));
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(v) = seen.chunks.entry(at) {
            let data = repo.read_blob(id).await?;
            rep.chunks_read += 1;
            v.insert(key_records(&data, cm.ts_base(), &offsets, &opts.key, id)?);
        }
        if let Some(hits) = seen.chunks.get(&at) {
            out.extend(
                hits.iter()
                    .filter(|(_, r)| {
                        opts.from.is_none_or(|f| r.timestamp >= f) && opts.to.is_none_or(|t| r.timestamp <= t)
                    })
                    .cloned(),
            );
        }
    }
    Ok(out)
}

/// The records of a chunk (`offsets` theirs) whose key is `key`.
fn key_records(data: &[u8], ts_base: i64, offsets: &[i64], key: &[u8], id: &Id) -> Result<ChunkHits> {
    let what = format!("chunk {}", id.short());
    let mut dec = Decoder::new(data, ts_base, &what);
    let mut hits = Vec::new();
    for o in offsets {
        let Some(r) = dec.next() else { break };
        let r = r?;
        if r.key.as_deref() == Some(key) {
            hits.push((*o, r));
        }
    }
    Ok(hits)
}

/// A record's identity beside its place: BLAKE3 of its encoding.
fn record_id(r: &Record) -> [u8; 32] {
    let mut buf = Vec::new();
    crate::image::record::Encoder::starting_at(0).encode(&r.as_ref(), &mut buf);
    *blake3::hash(&buf).as_bytes()
}
