//! Which records of a partition a restore replays (format-spec §14
//! "Restore selection").
//!
//! Per partition: from the captured log start (moved by the topic's time
//! and size retention to what was eligible for deletion by `--at T`), up to
//! the cut at T, and for compacted topics only the latest record of each
//! key, with tombstones kept while `delete.retention.ms` says they live.
//! Offsets of the selection become runs, so group offsets translate
//! against exactly the records that are produced.

use std::collections::{BTreeMap, HashMap};

use super::manifest::{self, KAFKA_KIND, Manifest, Partition, Segment, TopicMeta};
use super::reader::{RecordFilter, for_each_record};
use super::record::{Decoder, OffsetRuns};
use super::types::{TopicPartition, TxnSpan};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repo::Repository;

/// Kafka's default `delete.retention.ms` (24 hours).
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 86_400_000;

/// The records of one partition a restore replays.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// First offset restored from (log start, after retention at T).
    pub start: i64,
    /// First offset not restored (`None`: the end of what is known).
    pub cut: Option<i64>,
    /// For compacted topics: exactly the offsets kept, ascending.
    pub kept: Option<Vec<i64>>,
    /// The restored offsets as runs `[first, count]`.
    pub runs: Vec<[i64; 2]>,
    /// Records left out by compaction.
    pub compacted_away: u64,
    /// Offsets in `[start, cut)` whose records were erased (`kvault
    /// rewrite`), as runs `[first, count]`.
    pub erased: Vec<[i64; 2]>,
}

impl Selection {
    /// Whether the record at source offset `o` is restored.
    pub fn wants(&self, o: i64) -> bool {
        o >= self.start
            && self.cut.is_none_or(|c| o < c)
            && self.kept.as_ref().is_none_or(|k| k.binary_search(&o).is_ok())
    }

    /// Records restored.
    pub fn records(&self) -> u64 {
        self.runs.iter().map(|r| r[1] as u64).sum()
    }

    /// A filter that lets chunks outside `[start, cut)` go unread.
    pub fn filter(&self) -> RecordFilter {
        RecordFilter {
            from_offset: Some(self.start),
            to_offset: self.cut,
            ..Default::default()
        }
    }
}

/// How to select.
#[derive(Debug, Clone, Copy)]
pub struct SelectOptions {
    /// `--at T` (ms), when given: retention is applied as of T.
    pub at: Option<i64>,
    /// The time compaction is applied at (T, or the snapshot's time).
    pub now: i64,
    /// Apply compaction to compacted topics.
    pub compact: bool,
}

fn config_i64(t: &TopicMeta, name: &str) -> Option<i64> {
    t.configs.get(name).and_then(|v| v.trim().parse().ok())
}

/// `(compact, delete)` from `cleanup.policy` ([`super::types::CleanupPolicy`]).
pub fn cleanup_policy(t: &TopicMeta) -> (bool, bool) {
    let p = super::types::CleanupPolicy::of(&t.configs);
    (p.compact, p.delete)
}

/// The offsets of a partition at or above `start` and below `cut`.
fn offsets_between(p: &Partition, start: i64, cut: Option<i64>) -> Vec<[i64; 2]> {
    clip(
        p.segments.iter().flat_map(|s| s.meta.runs.0.iter().copied()),
        start,
        cut,
    )
}

/// Runs `[first, count]` cut to `[start, cut)`.
fn clip(runs: impl Iterator<Item = [i64; 2]>, start: i64, cut: Option<i64>) -> Vec<[i64; 2]> {
    runs.filter_map(|[first, count]| {
        let (lo, hi) = (first.max(start), (first + count).min(cut.unwrap_or(i64::MAX)));
        (hi > lo).then_some([lo, hi - lo])
    })
    .collect()
}

/// The erased offsets of `p`'s segments in `[start, cut)`, as runs.
fn erased_between(p: &Partition, start: i64, cut: Option<i64>) -> Vec<[i64; 2]> {
    let ranges: Vec<[i64; 2]> = p
        .segments
        .iter()
        .flat_map(|s| s.meta.erased.iter().copied())
        .collect();
    let merged = crate::image::erase::merge_ranges(ranges);
    clip(merged.into_iter().map(|[a, b]| [a, b - a]), start, cut)
}

/// Selects the records of partition `p` of topic `t` to restore.
///
/// # Errors
/// Unreadable or corrupt chunks (read only where retention or compaction
/// needs record contents).
pub async fn select(
    repo: &Repository,
    what: &str,
    t: &TopicMeta,
    p: &Partition,
    cut: Option<i64>,
    o: SelectOptions,
) -> Result<Selection> {
    let (compact, delete) = cleanup_policy(t);
    let known_end = cut.unwrap_or(p.meta.end);
    let mut start = p.meta.log_start;
    if let (Some(at), true) = (o.at, delete) {
        if let Some(ms) = config_i64(t, "retention.ms").filter(|ms| *ms >= 0) {
            let first_kept = first_newer(repo, what, p, at.saturating_sub(ms).saturating_sub(1)).await?;
            start = start.max(first_kept.unwrap_or(known_end));
        }
        if let Some(bytes) = config_i64(t, "retention.bytes").filter(|b| *b >= 0) {
            start = start.max(size_retention_start(repo, what, p, start, known_end, bytes)?);
        }
    }
    let mut sel = Selection {
        start,
        cut,
        erased: erased_between(p, start, cut),
        ..Default::default()
    };
    if compact && o.compact {
        let tombstone_horizon = o.now.saturating_sub(
            config_i64(t, "delete.retention.ms")
                .filter(|v| *v >= 0)
                .unwrap_or(DEFAULT_DELETE_RETENTION_MS),
        );
        // Latest record per key (keys by a 128-bit hash: memory stays small).
        let mut latest: HashMap<[u8; 16], (i64, bool, i64)> = HashMap::new();
        let mut kept = Vec::new();
        let mut total = 0u64;
        let mut f = |off: i64, r: crate::image::record::Record| -> Result<()> {
            total += 1;
            match &r.key {
                // A keyless record is never compacted away.
                None => kept.push(off),
                Some(k) => {
                    let h = blake3::hash(k);
                    let mut short = [0u8; 16];
                    short.copy_from_slice(h.as_bytes().get(..16).unwrap_or(&[0; 16]));
                    latest.insert(short, (off, r.value.is_none(), r.timestamp));
                }
            }
            Ok(())
        };
        for_each_record(repo, what, p, &sel.filter(), &mut f).await?;
        kept.extend(
            latest
                .into_values()
                .filter(|(_, tombstone, ts)| !tombstone || *ts >= tombstone_horizon)
                .map(|(off, _, _)| off),
        );
        kept.sort_unstable();
        let mut runs = OffsetRuns::default();
        for k in &kept {
            runs.push(*k);
        }
        sel.compacted_away = total.saturating_sub(kept.len() as u64);
        sel.runs = runs.0;
        sel.kept = Some(kept);
    } else {
        sel.runs = offsets_between(p, start, cut);
    }
    Ok(sel)
}

/// Size retention at chunk granularity: the oldest chunks are dropped while
/// the plaintext of the records in `[start, end)` exceeds `bytes`.
fn size_retention_start(
    repo: &Repository,
    what: &str,
    p: &Partition,
    start: i64,
    end: i64,
    bytes: i64,
) -> Result<i64> {
    let index = repo.index();
    let mut chunks = Vec::new();
    for seg in &p.segments {
        for (id, _, chunk_offsets) in seg.chunks_with_offsets() {
            let (Some(&first), Some(&last)) = (chunk_offsets.first(), chunk_offsets.last()) else {
                continue;
            };
            if last < start || first >= end {
                continue;
            }
            let len = index
                .get(id)
                .ok_or_else(|| Error::corrupt(what, format!("chunk {} is not in the index", id.short())))?
                .entry
                .raw_len;
            chunks.push((first, i64::from(len)));
        }
    }
    let mut total: i64 = chunks.iter().map(|c| c.1).sum();
    let mut i = 0;
    while total > bytes {
        let Some(c) = chunks.get(i) else { break };
        total -= c.1;
        i += 1;
    }
    Ok(chunks.get(i).map_or(end, |c| c.0))
}

/// The offset of the first record newer than `t`, reading only the chunk
/// whose metadata says it holds one.
///
/// # Errors
/// Unreadable or corrupt chunks.
pub async fn first_newer(repo: &Repository, what: &str, p: &Partition, t: i64) -> Result<Option<i64>> {
    for seg in &p.segments {
        for (id, cm, chunk_offsets) in seg.chunks_with_offsets() {
            if cm.max_ts() <= t {
                continue;
            }
            let data = repo.read_blob(id).await?;
            let dec = Decoder::new(&data, cm.ts_base(), what);
            for (off, r) in chunk_offsets.iter().zip(dec) {
                if r?.timestamp > t {
                    return Ok(Some(*off));
                }
            }
        }
    }
    Ok(None)
}

/// Where the log as of `t` ends on partition `p`: the first offset a
/// read_committed consumer could not have read at `t`. That is the first
/// record newer than `t` outside a transaction, or the first record of a
/// transaction that had not committed on all its partitions by `t` (its
/// `commit_ts`: its records, even older ones, were not visible before it,
/// on some partition at least). Records of a transaction committed at or
/// before `t` are visible whatever their own timestamps.
/// Segments whose transactions were not captured are cut by record time
/// alone ([`uncaptured`]).
///
/// # Errors
/// Unreadable or corrupt chunks.
pub async fn visible_cut(repo: &Repository, what: &str, p: &Partition, t: i64) -> Result<Option<i64>> {
    let spans: Vec<TxnSpan> = p
        .segments
        .iter()
        .filter_map(|s| s.meta.txns.as_ref())
        .flatten()
        .copied()
        .collect();
    let txn_cut = spans
        .iter()
        .filter(|s| s.commit_ts() > t)
        .map(TxnSpan::first)
        .min();
    let visible = |o: i64| spans.iter().any(|s| s.commit_ts() <= t && s.holds(o));
    for seg in &p.segments {
        for (id, cm, offsets) in seg.chunks_with_offsets() {
            if offsets.first().is_some_and(|&o| txn_cut.is_some_and(|c| o >= c)) {
                return Ok(txn_cut);
            }
            if cm.max_ts() <= t {
                continue;
            }
            let data = repo.read_blob(id).await?;
            let dec = Decoder::new(&data, cm.ts_base(), what);
            for (&off, r) in offsets.iter().zip(dec) {
                if r?.timestamp > t && !visible(off) {
                    return Ok(Some(txn_cut.map_or(off, |c| c.min(off))));
                }
            }
        }
    }
    Ok(txn_cut)
}

/// Whether one of `segments` has gaps but no captured transactions (a
/// snapshot older than the capture, or one whose scan failed): its
/// transactions cannot be told from other records.
pub fn uncaptured(segments: &[Segment]) -> bool {
    segments
        .iter()
        .any(|s| s.meta.txns.is_none() && !s.meta.runs.gaps(s.meta.start, s.meta.end).is_empty())
}

/// The log as of a time ([`as_of`]).
#[derive(Debug, Clone)]
pub struct AsOf {
    /// Topics and groups of the base snapshot, with every segment any
    /// snapshot of the cluster holds.
    pub manifest: Manifest,
    /// Per partition, the first offset whose record is newer than the time
    /// (`None` when every known record is older).
    pub cuts: BTreeMap<TopicPartition, Option<i64>>,
    /// The base snapshot: the latest at or before the time (else the earliest).
    pub base: Id,
    /// Said when no snapshot is that old, and when partitions' transactions
    /// were not captured.
    pub warnings: Vec<String>,
    /// Per partition, the transactions committed after the time that the
    /// cut leaves out: how many, and the offset the first one starts at.
    pub late_transactions: Vec<(TopicPartition, usize, i64)>,
    /// Topics created after the base snapshot with records at or before
    /// the time, taken from the first later snapshot that holds them.
    pub born: Vec<String>,
    /// Where the group offsets come from: the commit history up to the
    /// time, or (when there is none) the base snapshot.
    pub groups_from: String,
}

/// The log as of `t`: topics and groups from the latest snapshot of the
/// cluster at or before `t` (else the earliest), plus the topics created
/// after it that have records at or before `t` (with the settings of the
/// first snapshot that holds them), segments from the base and the
/// snapshots after it up to the one after the first one after `t`, and
/// per partition the first offset a read_committed consumer could not have
/// read at `t` (the cut, [`visible_cut`]). Each snapshot's trees are read
/// once, and each partition's segments once however many snapshots share
/// them.
///
/// # Errors
/// No snapshot of the cluster; unreadable trees.
pub async fn as_of(repo: &Repository, cluster: &str, t: i64) -> Result<AsOf> {
    let snaps: Vec<_> = repo
        .load_snapshots()
        .await?
        .into_iter()
        .filter(|(_, s)| s.kind == KAFKA_KIND && s.source == cluster)
        .collect();
    let base_idx = snaps.iter().rposition(|(_, s)| s.unix_ms() <= t).unwrap_or(0);
    let (base_id, base) = snaps
        .get(base_idx)
        .ok_or_else(|| Error::NotFound(format!("a snapshot of cluster {cluster}")))?;
    let warning = (base.unix_ms() > t).then(|| {
        format!(
            "no snapshot of cluster {cluster} at or before the requested time; using the earliest ({}) for settings and groups",
            base_id.short()
        )
    });
    let mut m = Manifest::default();
    // Only the base and the snapshots after it up to the first one after
    // `t` (and the one after that, `next` below) can hold what the log was
    // at `t`: records below the base's log start are not restored, and the
    // base's segments hold everything from there to its end; later
    // snapshots read on from its end (format-spec §14 "Restore
    // selection"). However many snapshots the cluster has, planning reads
    // a few.
    let last = snaps
        .iter()
        .enumerate()
        .skip(base_idx + 1)
        .find(|(_, (_, s))| s.unix_ms() > t)
        .map_or(snaps.len().saturating_sub(1), |(i, _)| i);
    let window = snaps.get(base_idx..=last).unwrap_or_default();
    let mut pending = load_window(repo, window, &mut m).await?;
    // The snapshot after the first one after `t` can still hold what was
    // decided before `t`: commits in its commit log (the first one read
    // the log's ends before its own time), and transactions committed by
    // their coordinator before `t` whose markers reached a partition only
    // after the first one read it (their records were not yet readable).
    let next = match window.last() {
        Some((_, s)) if s.unix_ms() > t && base.unix_ms() <= t => match snaps.get(last + 1) {
            Some((_, s)) => Some(manifest::load(repo, &s.tree, false).await?),
            None => None,
        },
        _ => None,
    };
    let before = base_idx.checked_sub(1).and_then(|i| snaps.get(i));
    let groups_from = group_positions(
        repo,
        &mut m.groups,
        (base_id, base),
        (before, next.as_ref()),
        &pending,
        t,
    )
    .await?;
    // Topics born between the base and `t`: kept below only if one of
    // their records is that old.
    let born = add_born_topics(&mut m, &pending);
    // Every segment any snapshot holds: the log as the repository knows it
    // (the cut below keeps what was visible at `t`).
    pending.extend(next);
    gather_segments(repo, &mut m, pending).await?;
    let born = keep_born_before(&mut m, born, t);
    let cuts = cuts_at(repo, &m, t).await?;
    let late_transactions = late_transactions(&m, t);
    let warnings: Vec<String> = warning.into_iter().chain(uncaptured_warning(&m)).collect();
    Ok(AsOf {
        manifest: m,
        cuts,
        base: *base_id,
        warnings,
        late_transactions,
        born,
        groups_from,
    })
}

/// Loads the manifests of `window` (the base first); `m` takes the base's
/// groups, cluster state and topics (without segments).
async fn load_window(
    repo: &Repository,
    window: &[(Id, crate::repo::snapshot::Snapshot)],
    m: &mut Manifest,
) -> Result<Vec<Manifest>> {
    let mut pending = Vec::with_capacity(window.len());
    for (i, (_, s)) in window.iter().enumerate() {
        let other = manifest::load(repo, &s.tree, false).await?;
        if i == 0 {
            m.groups = other.groups.clone();
            // The cluster's own state: the base's, as of at or before `t`.
            m.cluster = other.cluster.clone();
            for (name, t) in &other.topics {
                let mut t = t.clone();
                for p in t.partitions.values_mut() {
                    p.segments.clear();
                }
                m.topics.insert(name.clone(), t);
            }
        }
        pending.push(other);
    }
    Ok(pending)
}

/// The warning naming the partitions whose transactions were not
/// captured ([`uncaptured`]), when there are any.
fn uncaptured_warning(m: &Manifest) -> Option<String> {
    let uncaptured: Vec<String> = m
        .topics
        .values()
        .flat_map(|t| {
            t.partitions
                .values()
                .filter(|p| uncaptured(&p.segments))
                .map(move |p| TopicPartition::new(t.name.clone(), p.meta.partition).to_string())
        })
        .collect();
    (!uncaptured.is_empty()).then(|| {
        format!(
            "transactions of {} partition(s) were not captured (snapshots before kvault read transaction markers, \
             or the scan failed): cut by record time, which can split a transaction ({}{})",
            uncaptured.len(),
            uncaptured.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
            if uncaptured.len() > 5 { ", …" } else { "" }
        )
    })
}

/// The snapshot before the base, when there is one.
type Neighbour<'a> = Option<&'a (Id, crate::repo::snapshot::Snapshot)>;

/// Group positions as of `t` into `groups` (the base's): every commit up
/// to `t` that the snapshots after the base read from the commit log. A
/// snapshot reads the log's ends before its groups' offsets and its
/// partitions' ends (its time), so the commits between its log's end and
/// `t` are in the next snapshot's log: the logs up to the one after the
/// first snapshot after `t` are read (`next`). Those groups, fetched a
/// moment before the base's partitions' ends, can hold an offset committed
/// in a transaction that completed only after `t`; with the base's own log
/// complete, the positions start from the snapshot before it (`before`)
/// and the base's log is applied too. Returns where the positions come
/// from, for the plan.
async fn group_positions(
    repo: &Repository,
    groups: &mut BTreeMap<String, Vec<crate::image::types::GroupOffset>>,
    (base_id, base): (&Id, &crate::repo::snapshot::Snapshot),
    (before, next): (Neighbour<'_>, Option<&Manifest>),
    pending: &[Manifest],
    t: i64,
) -> Result<String> {
    let mut logs = Vec::new();
    // The log before the starting groups' fetch: where the position a
    // late-completed commit replaced is found.
    let mut earlier = None;
    let mut history_complete = true;
    if base.unix_ms() <= t {
        let before = match before {
            Some((_, s)) => Some(manifest::load(repo, &s.tree, false).await?),
            None => None,
        };
        // The base's groups were fetched a moment before its partitions'
        // ends: they can hold an offset committed inside a transaction that
        // completed after `t`. When the base's own log is complete, start
        // from the snapshot before it instead and apply the base's log too:
        // every commit then counts from its own (transaction's) time.
        let own = pending
            .first()
            .and_then(|m| m.commits.as_ref())
            .filter(|c| c.meta.complete);
        match (own, before) {
            (Some(c), Some(prev)) => {
                *groups = prev.groups;
                earlier = prev.commits;
                logs.push(c.clone());
            }
            _ => earlier = pending.first().and_then(|m| m.commits.clone()),
        }
        for other in pending.iter().skip(1).chain(next) {
            match &other.commits {
                Some(c) => {
                    history_complete &= c.meta.complete;
                    logs.push(c.clone());
                }
                None => history_complete = false,
            }
        }
    }
    if logs.is_empty() {
        return Ok(format!(
            "group offsets as of snapshot {} (no commit history after it)",
            base_id.short()
        ));
    }
    let mut loaded = Vec::with_capacity(logs.len());
    for log in &logs {
        loaded.push(log.load(repo).await?);
    }
    let mut history = match &earlier {
        Some(log) => log.load(repo).await?,
        None => Vec::new(),
    };
    history.extend(loaded.iter().flatten().cloned());
    super::commits::roll_back_late(groups, &history, t);
    let mut n = 0usize;
    for commits in &loaded {
        n += commits.iter().filter(|c| c.ts <= t).count();
        super::commits::apply(groups, commits, t);
    }
    Ok(if history_complete {
        format!(
            "group offsets as of the requested time: snapshot {} plus {n} later commit(s)",
            base_id.short()
        )
    } else {
        format!(
            "group offsets from snapshot {} plus {n} later commit(s); the commit history is incomplete \
             (compacted, unreadable, or older snapshots), so a position may be older than it was",
            base_id.short()
        )
    })
}

/// Adds (without segments) the topics the later snapshots have and `m`
/// lacks; returns their names.
fn add_born_topics(m: &mut Manifest, pending: &[Manifest]) -> Vec<String> {
    let mut born: Vec<String> = Vec::new();
    for other in pending.iter().skip(1) {
        for (name, t) in &other.topics {
            if m.topics.contains_key(name) {
                continue;
            }
            let mut t = t.clone();
            for p in t.partitions.values_mut() {
                p.segments.clear();
            }
            m.topics.insert(name.clone(), t);
            born.push(name.clone());
        }
    }
    born
}

/// Gives each of `m`'s partitions every segment the snapshots hold, in
/// order and once; each partition subtree is read once however many
/// snapshots share it.
async fn gather_segments(repo: &Repository, m: &mut Manifest, pending: Vec<Manifest>) -> Result<()> {
    let mut segments: HashMap<Id, Vec<Segment>> = HashMap::new();
    for other in pending {
        for (name, ot) in other.topics {
            let Some(bt) = m.topics.get_mut(&name) else {
                continue;
            };
            for (p, op) in ot.partitions {
                let Some(bp) = bt.partitions.get_mut(&p) else {
                    continue;
                };
                let Some(sub) = op.node.subtree else { continue };
                if let std::collections::hash_map::Entry::Vacant(v) = segments.entry(sub) {
                    v.insert(manifest::load_segments(repo, &op.node).await?);
                }
                for seg in segments.get(&sub).into_iter().flatten() {
                    if !bp.segments.iter().any(|x| x.meta.start == seg.meta.start) {
                        bp.segments.push(seg.clone());
                    }
                }
                bp.segments.sort_by_key(|x| x.meta.start);
            }
        }
    }
    Ok(())
}

/// Keeps the born topics that have a record at or before `t` (removing
/// the others from `m`); returns their names.
fn keep_born_before(m: &mut Manifest, mut born: Vec<String>, t: i64) -> Vec<String> {
    born.retain(|name| {
        let old = m.topics.get(name).is_some_and(|tp| {
            tp.partitions.values().any(|p| {
                p.segments.iter().any(|seg| {
                    seg.meta
                        .chunks
                        .iter()
                        .any(|cm| cm.records() > 0 && cm.min_ts() <= t)
                })
            })
        });
        if !old {
            m.topics.remove(name);
        }
        old
    });
    born
}

/// Per partition with any, the transactions committed after `t` (told
/// apart by their marker's offset), and the first offset they hold.
fn late_transactions(m: &Manifest, t: i64) -> Vec<(TopicPartition, usize, i64)> {
    let mut out = Vec::new();
    for topic in m.topics.values() {
        for p in topic.partitions.values() {
            let late: Vec<TxnSpan> = p
                .segments
                .iter()
                .filter_map(|s| s.meta.txns.as_ref())
                .flatten()
                .filter(|s| s.commit_ts() > t)
                .copied()
                .collect();
            let Some(first) = late.iter().map(TxnSpan::first).min() else {
                continue;
            };
            let mut markers: Vec<i64> = late.iter().map(TxnSpan::marker).collect();
            markers.sort_unstable();
            markers.dedup();
            out.push((
                TopicPartition::new(topic.name.clone(), p.meta.partition),
                markers.len(),
                first,
            ));
        }
    }
    out
}

/// Per partition, the first offset whose record is newer than `t`.
async fn cuts_at(repo: &Repository, m: &Manifest, t: i64) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
    let mut cuts = BTreeMap::new();
    for t_ in m.topics.values() {
        for p in t_.partitions.values() {
            let tp = TopicPartition::new(t_.name.clone(), p.meta.partition);
            let cut = visible_cut(repo, &tp.to_string(), p, t).await?;
            cuts.insert(tp, cut);
        }
    }
    Ok(cuts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_segment_with_gaps_and_no_capture_is_uncaptured() {
        let seg = |runs: Vec<[i64; 2]>, txns: Option<Vec<TxnSpan>>| Segment {
            meta: manifest::SegmentMeta {
                start: 0,
                end: 10,
                records: 0,
                runs: OffsetRuns(runs),
                chunks: vec![],
                txns,
                erased: vec![],
                filter_at: None,
            },
            chunks: vec![],
            size: 0,
            filter: None,
        };
        // No gaps: no transaction can be there, captured or not.
        assert!(!uncaptured(&[seg(vec![[0, 10]], None)]));
        // Gaps (a marker at 3), captured: none or some.
        assert!(!uncaptured(&[seg(vec![[0, 3], [4, 6]], Some(vec![]))]));
        assert!(!uncaptured(&[seg(
            vec![[0, 3], [4, 6]],
            Some(vec![TxnSpan::new([0, 2, 3, 9, 1, 0])])
        )]));
        // Gaps, not captured (an older snapshot): cut by record time.
        assert!(uncaptured(&[
            seg(vec![[0, 10]], None),
            seg(vec![[0, 3], [4, 6]], None)
        ]));
    }

    #[test]
    fn cleanup_policy_defaults_to_delete() {
        let mut t = TopicMeta {
            partitions: 1,
            replication_factor: 1,
            configs: Default::default(),
        };
        assert_eq!(cleanup_policy(&t), (false, true));
        t.configs.insert("cleanup.policy".into(), "compact".into());
        assert_eq!(cleanup_policy(&t), (true, false));
        t.configs.insert("cleanup.policy".into(), "compact,delete".into());
        assert_eq!(cleanup_policy(&t), (true, true));
    }

    #[test]
    fn selection_wants_only_kept_offsets_inside_the_range() {
        let s = Selection {
            start: 2,
            cut: Some(9),
            kept: Some(vec![1, 3, 5, 9]),
            runs: vec![[3, 1], [5, 1]],
            compacted_away: 0,
            erased: vec![],
        };
        assert!(!s.wants(1) && s.wants(3) && !s.wants(4) && s.wants(5) && !s.wants(9));
        assert_eq!(s.records(), 2);
    }
}
