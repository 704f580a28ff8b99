//! `repair index` and `repair snapshots`: recover what damaged storage left.
//!
//! - **repair index** rebuilds the index from the packs themselves: every
//!   pack's sealed header names its blobs. New index files are written, the
//!   last superseding every index file that exists (unreadable ones
//!   included), then the old ones are removed — prune's order, so a kill at
//!   any point leaves a usable index. Packs whose header does not open are
//!   reported; their blobs are lost.
//! - **repair snapshots** reads every pack (as `check --read-data`), finds
//!   the blobs that are damaged or missing, and rewrites each Kafka snapshot
//!   that references one: the chunk leaves its segment, its records' offsets
//!   leave the segment's runs and are recorded in the partition's `lost`
//!   ranges (format-spec §14), so restore replays every undamaged record and
//!   offsets still translate exactly around the gap. The new snapshot keeps
//!   the old one's time and tags (plus `repaired`); the old snapshot file is
//!   removed after the new one is stored. Byte-stream snapshots cannot be
//!   mended (a stream with a hole is not the stream): they are reported.
//!
//! Both take an exclusive lock.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::check::{CheckOptions, Finding, check};
use super::progress::{Progress, Unit};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::image::manifest::{self, KAFKA_KIND, PartitionMeta, SegmentMeta};
use crate::image::record::OffsetRuns;
use crate::repo::index::IndexPack;
use crate::repo::pack::BlobType;
use crate::repo::tree::{Node, Tree};
use crate::repo::writer::SaveSession;
use crate::repo::{FileKind, Repository};

/// What `repair index` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairIndexReport {
    /// Packs in storage.
    pub packs: usize,
    /// Packs indexed (their headers opened).
    pub packs_indexed: usize,
    /// Packs the old index did not name (now indexed).
    pub packs_added: usize,
    /// Packs whose header is damaged: `pack: why` (their blobs are lost).
    pub damaged_packs: Vec<String>,
    /// Index files written.
    pub index_files_written: usize,
    /// Index files removed (including unreadable ones).
    pub index_files_removed: usize,
}

/// Rebuilds the index from the pack headers, under an exclusive lock.
///
/// # Errors
/// [`Error::Locked`]; storage errors (a rerun continues).
pub async fn repair_index(repo: &Repository, progress: &dyn Progress) -> Result<RepairIndexReport> {
    super::with_lock(repo, true, || repair_index_locked(repo, progress)).await
}

async fn repair_index_locked(repo: &Repository, progress: &dyn Progress) -> Result<RepairIndexReport> {
    let mut rep = RepairIndexReport::default();
    repo.load_index().await?;
    let old = repo.index();
    let ids: Vec<Id> = repo.list_ids(FileKind::Pack).await?;
    rep.packs = ids.len();
    progress.start("reading pack headers", Some(ids.len() as u64), Unit::Items);
    let mut packs = Vec::new();
    for id in ids {
        match repo.read_pack_header(&id).await {
            Ok(blobs) => {
                if !old.packs().contains_key(&id) {
                    rep.packs_added += 1;
                }
                packs.push(IndexPack { id, blobs });
            }
            Err(e @ (Error::Corrupt { .. } | Error::Unsupported(_))) => {
                rep.damaged_packs.push(format!("{id}: {e}"))
            }
            Err(e) => return Err(e),
        }
        progress.inc(1);
    }
    progress.finish();
    rep.packs_indexed = packs.len();

    // Prune's order: the new index, the last file superseding every index
    // file there is now, then the old files.
    repo.verify_locks().await?;
    let before = repo.list_ids(crate::repo::FileKind::Index).await?;
    let written = repo.write_index_superseding(packs, &before).await?;
    rep.index_files_written = written.len();
    repo.verify_locks().await?;
    for id in before.iter().filter(|id| !written.contains(id)) {
        repo.remove_file(FileKind::Index, id).await?;
        rep.index_files_removed += 1;
    }
    repo.load_index().await?;
    Ok(rep)
}

/// How to repair snapshots.
#[derive(Debug, Clone, Default)]
pub struct RepairSnapshotsOptions {
    /// Only report what would be done.
    pub dry_run: bool,
}

/// What `repair snapshots` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairSnapshotsReport {
    /// Blobs found damaged or missing.
    pub damaged_blobs: usize,
    /// Snapshots rewritten: `(old, new)` (`new` absent in a dry run).
    pub rewritten: Vec<(Id, Option<Id>)>,
    /// Offsets recorded as lost: `snapshot topic/partition a..b`.
    pub lost: Vec<String>,
    /// Snapshots that could not be mended (a damaged tree, a byte stream).
    pub unrepairable: Vec<String>,
    /// Damaged packs whose intact blobs were moved to new packs.
    pub packs_rewritten: usize,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

/// Rewrites snapshots that reference damaged or missing blobs, under an
/// exclusive lock.
///
/// # Errors
/// [`Error::Locked`]; storage errors.
pub async fn repair_snapshots(
    repo: &Repository,
    opts: &RepairSnapshotsOptions,
    progress: &dyn Progress,
) -> Result<RepairSnapshotsReport> {
    super::with_lock(repo, true, || repair_snapshots_locked(repo, opts, progress)).await
}

async fn repair_snapshots_locked(
    repo: &Repository,
    opts: &RepairSnapshotsOptions,
    progress: &dyn Progress,
) -> Result<RepairSnapshotsReport> {
    let mut rep = RepairSnapshotsReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let report = check(
        repo,
        &CheckOptions {
            read_data: true,
            ..Default::default()
        },
        progress,
    )
    .await?;
    let damaged: HashSet<Id> = report.damaged_blobs.iter().copied().collect();
    rep.damaged_blobs = damaged.len();
    if damaged.is_empty() {
        return Ok(rep);
    }
    if report
        .errors
        .iter()
        .any(|f| matches!(f, Finding::MissingPack { .. }))
    {
        // Packs that are gone leave the index first (prune needs that).
        if !opts.dry_run {
            repair_index_locked(repo, progress).await?;
        }
    }
    repo.load_index().await?;
    let mut session = SaveSession::new(repo);
    // Partition subtrees are shared between incremental snapshots: mend each once.
    let mut mended: HashMap<Id, Mended> = HashMap::new();
    let mut plans = Vec::new();
    for (sid, snap) in repo.load_snapshots_lenient().await? {
        let hit = report.affected.iter().any(|a| a.snapshot == sid);
        if !hit {
            continue;
        }
        if snap.kind != KAFKA_KIND {
            rep.unrepairable.push(format!(
                "snapshot {}: a {} snapshot with damaged data cannot be mended; `kvault forget {}` removes it",
                sid.short(),
                snap.kind,
                sid.short()
            ));
            continue;
        }
        match mend_kafka(
            repo,
            &mut session,
            &snap.tree,
            &damaged,
            &mut mended,
            &mut rep,
            sid,
            opts.dry_run,
        )
        .await
        {
            Ok(new_root) => plans.push((sid, snap, new_root)),
            Err(e) => rep.unrepairable.push(format!("snapshot {}: {e}", sid.short())),
        }
    }
    if opts.dry_run {
        rep.rewritten = plans.iter().map(|(sid, ..)| (*sid, None)).collect();
        return Ok(rep);
    }
    session.commit().await?;
    for (sid, snap, new_root) in plans {
        let mut s = snap.clone();
        s.tree = new_root;
        if !s.tags.iter().any(|t| t == "repaired") {
            s.tags.push("repaired".into());
        }
        let new = repo.save_snapshot(&s).await?;
        if new != sid {
            repo.remove_file(FileKind::Snapshot, &sid).await?;
        }
        rep.rewritten.push((sid, Some(new)));
    }
    // The damaged packs' intact blobs move to new packs; the packs go.
    if rep.unrepairable.is_empty() && !report.damaged_packs.is_empty() {
        let p = super::prune::prune_locked(
            repo,
            &super::prune::PruneOptions {
                repack: report.damaged_packs.clone(),
                ..Default::default()
            },
            progress,
        )
        .await?;
        rep.packs_rewritten = p.packs_repacked;
    }
    Ok(rep)
}

/// A partition's segments mended: `(new subtree, records, bytes, lost
/// ranges)`.
type Mended = (Option<Id>, u64, u64, Vec<[i64; 2]>);

/// Rewrites a Kafka snapshot's trees without its damaged chunks; returns
/// the new root tree id.
#[allow(clippy::too_many_arguments)]
async fn mend_kafka(
    repo: &Repository,
    session: &mut SaveSession,
    root: &Id,
    damaged: &HashSet<Id>,
    mended: &mut HashMap<Id, Mended>,
    rep: &mut RepairSnapshotsReport,
    sid: Id,
    dry_run: bool,
) -> Result<Id> {
    // Each partition subtree mended once (incremental snapshots share them).
    let m = manifest::load(repo, root, false).await?;
    for st in m
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter_map(|p| p.node.subtree)
    {
        if let std::collections::hash_map::Entry::Vacant(v) = mended.entry(st) {
            v.insert(mend_segments(repo, session, &st, damaged, dry_run).await?);
        }
    }
    let mut edit = |topic: &str, pn: &mut Node| -> Result<bool> {
        let Some((new_sub, records, bytes, lost)) = pn.subtree.and_then(|st| mended.get(&st)) else {
            return Ok(false);
        };
        if lost.is_empty() {
            return Ok(false);
        }
        let mut pm: PartitionMeta = manifest::from_meta(pn)?;
        for l in lost {
            rep.lost.push(format!(
                "snapshot {}: {topic}/{} offsets {}..{}",
                sid.short(),
                pm.partition,
                l[0],
                l[1]
            ));
            if !pm.lost.contains(l) {
                pm.lost.push(*l);
            }
        }
        pm.records = *records;
        pn.meta = manifest::to_meta(&pm)?;
        pn.subtree = *new_sub;
        pn.size = *bytes;
        Ok(true)
    };
    Ok(manifest::rebuild_partitions(repo, session, root, &mut edit)
        .await?
        .0)
}

/// One partition's segments without damaged chunks.
async fn mend_segments(
    repo: &Repository,
    session: &mut SaveSession,
    subtree: &Id,
    damaged: &HashSet<Id>,
    dry_run: bool,
) -> Result<Mended> {
    let tree = repo.load_tree(subtree).await?;
    let mut nodes = Vec::new();
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut lost: Vec<[i64; 2]> = Vec::new();
    for mut n in tree.nodes {
        let meta: SegmentMeta = manifest::from_meta(&n)?;
        if !n.content.iter().any(|c| damaged.contains(c)) {
            records += meta.records;
            bytes += n.size;
            nodes.push(n);
            continue;
        }
        let seg = manifest::Segment {
            meta: meta.clone(),
            chunks: n.content.clone(),
            size: n.size,
            filter: n.subtree,
        };
        let mut keep_ids = Vec::new();
        let mut keep_meta = Vec::new();
        let mut gone: BTreeMap<i64, ()> = BTreeMap::new();
        let mut kept_bytes = 0u64;
        for (id, cm, offs) in seg.chunks_with_offsets() {
            if damaged.contains(id) {
                if let (Some(a), Some(b)) = (offs.first(), offs.last()) {
                    lost.push([*a, b + 1]);
                }
                for o in offs {
                    gone.insert(o, ());
                }
            } else {
                keep_ids.push(*id);
                keep_meta.push(*cm);
                if let Some(l) = repo.index().get(id) {
                    kept_bytes += u64::from(l.entry.raw_len);
                }
            }
        }
        let mut runs = OffsetRuns::default();
        for o in meta.runs.offsets().filter(|o| !gone.contains_key(o)) {
            runs.push(o);
        }
        let new_meta = SegmentMeta {
            start: meta.start,
            end: meta.end,
            records: runs.count(),
            runs,
            chunks: keep_meta,
            txns: meta.txns.clone(),
            erased: meta.erased.clone(),
            filter_at: None,
        };
        records += new_meta.records;
        bytes += kept_bytes;
        n.content = keep_ids;
        // The key filters were per chunk of the segment as it was.
        n.subtree = None;
        n.size = kept_bytes;
        n.meta = manifest::to_meta(&new_meta)?;
        nodes.push(n);
    }
    if lost.is_empty() || dry_run {
        return Ok((Some(*subtree), records, bytes, lost));
    }
    let id = session
        .save_blob(BlobType::Tree, Tree { nodes }.encode()?)
        .await?;
    Ok((Some(id), records, bytes, lost))
}
