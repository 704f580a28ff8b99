//! `prune`: free the data no snapshot references (format-spec §12 "Prune").
//!
//! Under an exclusive lock (no snapshot, restore or copy runs meanwhile):
//!
//! 1. every live index file and every snapshot's trees give the packs and
//!    the blobs still referenced (each blob's first copy, in pack order,
//!    is the one kept);
//! 2. packs with no referenced blob are deleted; packs partly referenced
//!    are repacked (their referenced blobs written to new packs), most
//!    wasteful first, until the unused bytes left are at most
//!    `max_unused` percent of the used bytes (and at most
//!    `max_repack_bytes` are rewritten); packs no index names are garbage
//!    from interrupted writes and are deleted;
//! 3. the order makes a kill at any point safe: new packs, then their
//!    index, then a new set of index files of which only the last names
//!    every older index file in `supersedes`, then the older index files
//!    are removed, and only then packs. Until the last new index file
//!    exists the old index is authoritative and every pack it names still
//!    exists; after it, nothing that remains indexed is removed. A rerun
//!    finishes the job.
//!
//! Garbage no index names — packs of interrupted writes, the fs backend's
//! `.tmp/` leftovers — is deleted first (it needs no new index, so a full
//! disk can be freed), and only once it is older than the safety window
//! ([`PruneOptions::unindexed_grace`], by the storage's clock: the time it
//! wrote prune's own lock file). Younger garbage may be a live writer's
//! whose lock prune could not see: it is kept and reported. Before the new
//! index and before any deletion prune verifies its lock still holds.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use serde::Serialize;

use super::progress::{Progress, Unit};
use crate::backend::ObjectInfo;
use crate::error::{Error, Refusal, Result};
use crate::id::Id;
use crate::repo::index::IndexPack;
use crate::repo::pack::BlobType;
use crate::repo::retention::{Waiting, locked_until};
use crate::repo::walk::{TreeWalker, Visit};
use crate::repo::writer::SaveSession;
use crate::repo::{FileKind, IndexFiles, Repository};

/// How to prune.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Unused bytes tolerated in kept packs, in percent of used bytes.
    pub max_unused_percent: f64,
    /// Rewrite at most this many bytes of packs (`None`: no limit).
    pub max_repack_bytes: Option<u64>,
    /// Only report what would be done.
    pub dry_run: bool,
    /// Unindexed packs and temporary files younger than this (by the
    /// storage's clock) are kept: they may belong to a write in progress.
    pub unindexed_grace: std::time::Duration,
    /// Packs to rewrite whatever their use (damaged packs whose intact blobs
    /// `repair snapshots` moves out).
    pub repack: Vec<Id>,
}

/// Default safety window for unindexed packs and temporary files.
pub const DEFAULT_UNINDEXED_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused_percent: 5.0,
            max_repack_bytes: None,
            dry_run: false,
            unindexed_grace: DEFAULT_UNINDEXED_GRACE,
            repack: Vec::new(),
        }
    }
}

/// What prune found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Snapshots whose data is kept.
    pub snapshots: usize,
    /// Packs in storage before.
    pub packs_before: usize,
    /// Bytes of packs in storage before.
    pub bytes_before: u64,
    /// Blobs still referenced.
    pub blobs_used: usize,
    /// Blobs (and duplicate copies) dropped.
    pub blobs_removed: usize,
    /// Packs with nothing referenced, deleted.
    pub packs_deleted: usize,
    /// Partly used packs rewritten.
    pub packs_repacked: usize,
    /// Packs no index named (interrupted writes), deleted.
    pub unindexed_packs_deleted: usize,
    /// Unindexed packs younger than the safety window, kept.
    pub unindexed_packs_kept: usize,
    /// Temporary files of interrupted writes, deleted.
    pub tmp_files_deleted: usize,
    /// New packs written by repacking.
    pub packs_written: usize,
    /// Index files written.
    pub index_files_written: usize,
    /// Index files removed.
    pub index_files_removed: usize,
    /// Unused bytes left in kept packs.
    pub unused_bytes_left: u64,
    /// Bytes of packs in storage after.
    pub bytes_after: u64,
    /// `bytes_before - bytes_after`.
    pub bytes_freed: u64,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// In a locked repository: objects prune would remove whose retention
    /// has not ended, kept until then.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<Waiting>,
}

/// The bytes of every pack in storage.
async fn pack_bytes(repo: &Repository) -> Result<u64> {
    Ok(repo
        .list_files(FileKind::Pack)
        .await?
        .iter()
        .map(|(_, o)| o.size)
        .sum())
}

/// The storage's present: when it wrote the newest lock file (ours, just
/// written or refreshed).
async fn storage_now(repo: &Repository) -> Option<SystemTime> {
    repo.list_files(FileKind::Lock)
        .await
        .ok()?
        .into_iter()
        .filter_map(|(_, o)| o.modified)
        .max()
}

/// Every blob (tree or data) the snapshots reference.
///
/// # Errors
/// A snapshot or tree that cannot be read, or a referenced blob the index
/// lacks: prune then stops before changing anything.
async fn referenced(repo: &Repository) -> Result<(usize, HashSet<Id>)> {
    let index = repo.index();
    let mut used = HashSet::new();
    let snaps = repo.load_snapshots().await?;
    let mut walk = TreeWalker::new(repo).read_ahead(8);
    for (sid, s) in &snaps {
        walk.push(s.tree);
        let mut missing = None;
        while let Some(v) = walk
            .next(&mut |t, _| {
                let known = index.contains(t);
                if !known {
                    missing = Some(*t);
                }
                known
            })
            .await
        {
            let (t, tree) = match v {
                Visit::Tree(t, tree) => (t, tree),
                Visit::Failed(_, e) => return Err(e),
            };
            used.insert(t);
            for b in tree.nodes.into_iter().flat_map(|n| n.content) {
                if !index.contains(&b) {
                    return Err(Error::corrupt(
                        format!("snapshot {}", sid.short()),
                        format!("data blob {} is not in the index; run `kvault check`", b.short()),
                    ));
                }
                used.insert(b);
            }
        }
        if let Some(t) = missing {
            return Err(Error::corrupt(
                format!("snapshot {}", sid.short()),
                format!("tree {} is not in the index; run `kvault check`", t.short()),
            ));
        }
    }
    Ok((snaps.len(), used))
}

/// Prunes, taking an exclusive lock.
///
/// # Errors
/// [`Error::Locked`] while anything else uses the repository; damage that
/// makes pruning unsafe; storage errors (a rerun continues).
pub async fn prune(repo: &Repository, opts: &PruneOptions, progress: &dyn Progress) -> Result<PruneReport> {
    super::with_lock(repo, true, || prune_locked(repo, opts, progress)).await
}

/// Prunes; the caller holds an exclusive lock. Dry run is the plan alone.
///
/// # Errors
/// As [`prune`].
pub async fn prune_locked(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    let plan = plan_prune(repo, opts).await?;
    if opts.dry_run {
        return Ok(plan.report);
    }
    execute_prune(repo, plan, progress).await
}

/// What prune will do, decided before anything changes (restic's
/// `PrunePlan`): [`execute_prune`] carries it out; a dry run reports it.
#[derive(Debug, Clone)]
pub struct PrunePlan {
    /// The live index's packs (superseded index files left out).
    packs: HashMap<Id, IndexPack>,
    /// Every blob a snapshot references.
    used: HashSet<Id>,
    /// Whether an index file that exists is already superseded (a new
    /// index is written to finish that prune's work).
    lingering_index: bool,
    /// The packs' fate.
    choice: PackChoice,
    /// Garbage no index names, old enough to go.
    unindexed: Vec<Id>,
    tmp: Vec<ObjectInfo>,
    /// The figures as planned (the dry run's answer).
    pub report: PruneReport,
}

/// Packs sorted by what happens to them.
#[derive(Debug, Clone, Default, PartialEq)]
struct PackChoice {
    /// Packs kept as they are, with the bytes of their kept blobs.
    keep: Vec<(Id, u64)>,
    /// Packs with nothing referenced.
    delete: Vec<Id>,
    /// Packs whose referenced blobs move to new packs.
    repack: Vec<Id>,
    /// Bytes of the packs repacked, and of the blobs they move.
    repack_bytes: u64,
    moved_bytes: u64,
    /// Unused bytes left in kept packs.
    unused_left: u64,
    /// Blobs (and duplicate copies) dropped.
    blobs_removed: usize,
}

/// A pack partly referenced: `(pack, used bytes, unused bytes, blobs dropped)`.
type Partial = (Id, u64, u64, usize);

/// Packs by their use, before the repack budget is applied.
#[derive(Debug, Clone, Default, PartialEq)]
struct ByUse {
    /// Every blob kept: `(pack, bytes)`.
    keep: Vec<(Id, u64)>,
    /// Nothing kept.
    delete: Vec<Id>,
    /// Some kept (or forced).
    partial: Vec<Partial>,
    /// Blobs in the packs to delete.
    dropped: usize,
}

/// Reads the index, the snapshots and the storage listing, and decides.
///
/// # Errors
/// An unreadable index file (run `repair index`), a pack indexed but
/// missing, a snapshot whose data is not indexed: prune changes nothing.
pub async fn plan_prune(repo: &Repository, opts: &PruneOptions) -> Result<PrunePlan> {
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let (lingering_index, packs) = live_index(repo).await?;
    let (snapshots, used) = referenced(repo).await?;
    report.snapshots = snapshots;
    report.blobs_used = used.len();

    let stored = repo.list_files(FileKind::Pack).await?;
    let size: HashMap<Id, u64> = stored.iter().map(|(id, o)| (*id, o.size)).collect();
    report.packs_before = size.len();
    report.bytes_before = size.values().sum();
    let mut ids: Vec<Id> = packs.keys().copied().collect();
    ids.sort();
    if let Some(missing) = ids.iter().find(|p| !size.contains_key(p)) {
        return Err(Error::corrupt(
            format!("pack {missing}"),
            "indexed but missing from storage; run `kvault check` (prune changes nothing)",
        ));
    }
    let mut choice = decide_repack(decide_packs(&ids, &packs, &used, &opts.repack), opts);
    let mut waiting = hold_locked_packs(repo, &mut choice, &packs, &used).await?;

    let now = storage_now(repo).await;
    let old_enough = |t: Option<SystemTime>| match (t, now) {
        (Some(t), Some(n)) => n.duration_since(t).is_ok_and(|d| d >= opts.unindexed_grace),
        // Without the storage's times only a zero window deletes.
        _ => opts.unindexed_grace.is_zero(),
    };
    // Packs no index names: garbage once old enough; younger ones may be
    // a live writer's.
    let (mut unindexed, mut young) = (Vec::new(), 0usize);
    for (id, o) in stored.iter().filter(|(id, _)| !packs.contains_key(id)) {
        if old_enough(o.modified) {
            unindexed.push(*id);
        } else {
            young += 1;
        }
    }
    unindexed.sort();
    waiting.extend(hold_locked(repo, &mut unindexed).await?);
    report.waiting = waiting;
    let tmp: Vec<ObjectInfo> = repo
        .list_temp()
        .await?
        .into_iter()
        .filter(|o| old_enough(o.modified))
        .collect();

    report.blobs_removed = choice.blobs_removed;
    report.unused_bytes_left = choice.unused_left;
    report.packs_deleted = choice.delete.len();
    report.packs_repacked = choice.repack.len();
    report.unindexed_packs_deleted = unindexed.len();
    report.unindexed_packs_kept = young;
    report.tmp_files_deleted = tmp.len();
    let size_of = |p: &Id| size.get(p).copied().unwrap_or(0);
    let freed: u64 = choice
        .delete
        .iter()
        .chain(&choice.repack)
        .chain(&unindexed)
        .map(size_of)
        .sum();
    report.bytes_after = report.bytes_before.saturating_sub(freed) + choice.moved_bytes;
    report.bytes_freed = report.bytes_before.saturating_sub(report.bytes_after);
    Ok(PrunePlan {
        lingering_index,
        packs,
        used,
        choice,
        unindexed,
        tmp,
        report,
    })
}

/// Whether an existing index file is already superseded (an earlier prune
/// to finish), and the live index's packs; the master index is set from
/// the same reads (no second pass).
///
/// # Errors
/// An index file that does not open: packs only it names would look
/// unindexed and be deleted, so prune refuses until `repair index`.
async fn live_index(repo: &Repository) -> Result<(bool, HashMap<Id, IndexPack>)> {
    let IndexFiles { files, unreadable } = repo.read_index_files().await?;
    if let Some((_, e)) = unreadable.into_iter().next() {
        return Err(match e {
            e @ Error::Corrupt { .. } => Error::Refused(Refusal::UnreadableIndex { cause: Box::new(e) }),
            e => e,
        });
    }
    let superseded: HashSet<Id> = files
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let mut packs: HashMap<Id, IndexPack> = HashMap::new();
    for (_, f) in files.iter().filter(|(id, _)| !superseded.contains(id)) {
        for p in &f.packs {
            packs.entry(p.id).or_insert_with(|| p.clone());
        }
    }
    repo.use_index_files(&files);
    let lingering = files.iter().any(|(id, _)| superseded.contains(id));
    Ok((lingering, packs))
}

/// Sorts packs (in id order) by the blobs kept in them: each used blob's
/// first copy is kept, so a pack is kept whole, deleted (nothing kept), or
/// partial. Packs in `forced` are partial whatever their use (`repair
/// snapshots` moves intact blobs out of damaged packs).
fn decide_packs(ids: &[Id], packs: &HashMap<Id, IndexPack>, used: &HashSet<Id>, forced: &[Id]) -> ByUse {
    let mut kept_copy: HashSet<Id> = HashSet::new();
    let mut by = ByUse::default();
    for pid in ids {
        let Some(p) = packs.get(pid) else { continue };
        let (mut used_n, mut used_b, mut unused_b) = (0usize, 0u64, 0u64);
        for (e, _) in &p.blobs {
            if used.contains(&e.id) && kept_copy.insert(e.id) {
                used_n += 1;
                used_b += u64::from(e.stored_len);
            } else {
                unused_b += u64::from(e.stored_len);
            }
        }
        if used_n == 0 {
            by.delete.push(*pid);
            by.dropped += p.blobs.len();
        } else if forced.contains(pid) {
            // Forced: rewritten first, before the unused-space budget.
            by.partial
                .push((*pid, used_b, unused_b.max(1), p.blobs.len() - used_n));
        } else if used_n == p.blobs.len() {
            by.keep.push((*pid, used_b));
        } else {
            by.partial.push((*pid, used_b, unused_b, p.blobs.len() - used_n));
        }
    }
    by
}

/// Chooses which partial packs to repack: forced ones, then the most
/// wasteful first while the unused bytes left exceed `max_unused_percent`
/// of the used bytes and the `max_repack_bytes` budget allows.
fn decide_repack(by: ByUse, opts: &PruneOptions) -> PackChoice {
    let ByUse {
        mut keep,
        delete,
        mut partial,
        dropped,
    } = by;
    let used_bytes: u64 = keep.iter().map(|k| k.1).sum::<u64>() + partial.iter().map(|p| p.1).sum::<u64>();
    let allowed = (used_bytes as f64 * opts.max_unused_percent / 100.0) as u64;
    let mut c = PackChoice {
        unused_left: partial.iter().map(|p| p.2).sum(),
        blobs_removed: dropped,
        ..Default::default()
    };
    partial.sort_by(|a, b| {
        let fa = a.2 as f64 / (a.1 + a.2).max(1) as f64;
        let fb = b.2 as f64 / (b.1 + b.2).max(1) as f64;
        fb.total_cmp(&fa).then(a.0.cmp(&b.0))
    });
    for (pid, u, w, gone) in partial {
        let budget_ok = opts.max_repack_bytes.is_none_or(|m| c.repack_bytes + u + w <= m);
        if opts.repack.contains(&pid) || (c.unused_left > allowed && budget_ok) {
            c.repack.push(pid);
            c.repack_bytes += u + w;
            c.moved_bytes += u;
            c.unused_left -= w;
            c.blobs_removed += gone;
        } else {
            keep.push((pid, u));
        }
    }
    c.keep = keep;
    c.delete = delete;
    c
}

/// Carries out a plan, in the order that makes a kill at any point safe
/// (module docs): garbage, repack, new index, old index files, packs.
///
/// # Errors
/// The lock lost; storage errors (a rerun continues).
pub async fn execute_prune(
    repo: &Repository,
    plan: PrunePlan,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    let mut rep = plan.report.clone();
    crate::repo::retention::require_delete(repo).await?;
    // First what needs no new index (a full disk frees this way).
    repo.verify_locks().await?;
    for o in &plan.tmp {
        repo.remove_temp(o).await?;
    }
    for p in &plan.unindexed {
        repo.remove_file(FileKind::Pack, p).await?;
    }
    let c = &plan.choice;
    if c.delete.is_empty() && c.repack.is_empty() && !plan.lingering_index {
        // Nothing else to free: leave the index as it is.
        return finish(repo, rep).await;
    }
    let new_packs = repack(repo, &plan, progress).await?;
    rep.packs_written = new_packs.len();
    repo.verify_locks().await?;
    let before = repo.list_ids(FileKind::Index).await?;
    let mut all: Vec<IndexPack> = c
        .keep
        .iter()
        .filter_map(|(p, _)| plan.packs.get(p).cloned())
        .collect();
    all.extend(new_packs);
    let written = repo.write_index_superseding(all, &before).await?;
    rep.index_files_written = written.len();
    repo.verify_locks().await?;
    for id in before.iter().filter(|id| !written.contains(id)) {
        // A locked one stays, superseded, until its retention ends.
        let path = FileKind::Index.path(id);
        if let Some(until) = locked_until(repo, &path).await? {
            rep.waiting.push(Waiting::new(path, until));
            continue;
        }
        repo.remove_file(FileKind::Index, id).await?;
        rep.index_files_removed += 1;
    }
    progress.start(
        "deleting packs",
        Some((c.delete.len() + c.repack.len()) as u64),
        Unit::Items,
    );
    for p in c.delete.iter().chain(&c.repack) {
        repo.remove_file(FileKind::Pack, p).await?;
        progress.inc(1);
    }
    progress.finish();
    repo.load_index().await?;
    finish(repo, rep).await
}

/// In a locked repository, drops from `ids` the packs whose retention has
/// not ended, and says until when.
async fn hold_locked(repo: &Repository, ids: &mut Vec<Id>) -> Result<Vec<Waiting>> {
    use futures_util::StreamExt as _;
    let mut waiting = Vec::new();
    if repo.lock_policy().is_none() {
        return Ok(waiting);
    }
    let mut dates = futures_util::stream::iter(std::mem::take(ids))
        .map(|id| async move {
            let path = FileKind::Pack.path(&id);
            let until = locked_until(repo, &path).await;
            (id, path, until)
        })
        .buffered(crate::repo::retention::RETAIN_CONCURRENCY);
    while let Some((id, path, until)) = dates.next().await {
        match until? {
            Some(until) => waiting.push(Waiting::new(path, until)),
            None => ids.push(id),
        }
    }
    Ok(waiting)
}

/// Keeps, as they are, the packs to delete or repack that are still locked
/// (their blobs stay indexed, so a later prune finds them again).
async fn hold_locked_packs(
    repo: &Repository,
    c: &mut PackChoice,
    packs: &HashMap<Id, IndexPack>,
    used: &HashSet<Id>,
) -> Result<Vec<Waiting>> {
    let mut waiting = hold_locked(repo, &mut c.delete).await?;
    let repack_waiting = hold_locked(repo, &mut c.repack).await?;
    for w in &waiting {
        let Some(p) = pack_of(&w.path, packs) else {
            continue;
        };
        c.blobs_removed = c.blobs_removed.saturating_sub(p.1.blobs.len());
        c.keep.push((p.0, 0));
    }
    for w in &repack_waiting {
        let Some((id, p)) = pack_of(&w.path, packs) else {
            continue;
        };
        let (mut used_b, mut unused_b) = (0u64, 0u64);
        for (e, _) in &p.blobs {
            if used.contains(&e.id) {
                used_b += u64::from(e.stored_len);
            } else {
                unused_b += u64::from(e.stored_len);
                c.blobs_removed = c.blobs_removed.saturating_sub(1);
            }
        }
        c.repack_bytes = c.repack_bytes.saturating_sub(used_b + unused_b);
        c.moved_bytes = c.moved_bytes.saturating_sub(used_b);
        c.unused_left += unused_b;
        c.keep.push((id, used_b));
    }
    waiting.extend(repack_waiting);
    Ok(waiting)
}

/// The pack stored at `path`, from the index.
fn pack_of<'a>(path: &str, packs: &'a HashMap<Id, IndexPack>) -> Option<(Id, &'a IndexPack)> {
    let id: Id = path.rsplit('/').next()?.parse().ok()?;
    packs.get(&id).map(|p| (id, p))
}

/// The report with the storage's bytes after.
async fn finish(repo: &Repository, mut rep: PruneReport) -> Result<PruneReport> {
    rep.bytes_after = pack_bytes(repo).await?;
    rep.bytes_freed = rep.bytes_before.saturating_sub(rep.bytes_after);
    Ok(rep)
}

/// Writes the referenced blobs of the packs to repack into new packs
/// (each once: blobs a kept pack holds stay there); returns the new packs.
///
/// # Errors
/// Reading a blob or storing a pack failing.
async fn repack(repo: &Repository, plan: &PrunePlan, progress: &dyn Progress) -> Result<Vec<IndexPack>> {
    let c = &plan.choice;
    if c.repack.is_empty() {
        return Ok(Vec::new());
    }
    progress.start("repacking", Some(c.repack_bytes), Unit::Bytes);
    let mut session = SaveSession::for_repack(repo);
    let mut moved: HashSet<Id> = c
        .keep
        .iter()
        .filter_map(|(p, _)| plan.packs.get(p))
        .flat_map(|p| p.blobs.iter().map(|(e, _)| e.id))
        .collect();
    for p in c.repack.iter().filter_map(|pid| plan.packs.get(pid)) {
        for (e, _) in &p.blobs {
            if plan.used.contains(&e.id) && moved.insert(e.id) {
                let t = if e.blob_type == BlobType::Tree {
                    BlobType::Tree
                } else {
                    BlobType::Data
                };
                session.save_blob(t, repo.read_blob(&e.id).await?).await?;
            }
            progress.inc(u64::from(e.stored_len));
        }
    }
    let (_, written) = session.commit_packs().await?;
    progress.finish();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::pack::BlobEntry;

    fn pack(n: u8, blobs: &[(u8, u32)]) -> (Id, IndexPack) {
        let id = Id([n; 32]);
        let blobs = blobs
            .iter()
            .map(|&(b, len)| {
                let e = BlobEntry {
                    blob_type: BlobType::Data,
                    compression: crate::repo::pack::Compression::None,
                    stored_len: len,
                    raw_len: len,
                    id: Id([b; 32]),
                };
                (e, 0)
            })
            .collect();
        (id, IndexPack { id, blobs })
    }

    /// The plan's decisions are pure functions of the index and the
    /// references: whole, empty and partial packs, a duplicate's first
    /// copy kept, and repacking only while the waste exceeds the budget.
    #[test]
    fn packs_are_kept_deleted_or_repacked_by_their_use() {
        let packs: HashMap<Id, IndexPack> = [
            pack(1, &[(10, 100), (11, 100)]), // both used: kept
            pack(2, &[(20, 100)]),            // unused: deleted
            pack(3, &[(30, 100), (31, 900)]), // 31 unused: very wasteful
            pack(4, &[(10, 100), (40, 100)]), // 10 is a second copy
        ]
        .into_iter()
        .collect();
        let used: HashSet<Id> = [10, 11, 30, 40].map(|b| Id([b; 32])).into_iter().collect();
        let mut ids: Vec<Id> = packs.keys().copied().collect();
        ids.sort();
        let by = decide_packs(&ids, &packs, &used, &[]);
        assert_eq!(by.keep, vec![(Id([1; 32]), 200)]);
        assert_eq!(by.delete, vec![Id([2; 32])]);
        assert_eq!(
            by.partial,
            vec![(Id([3; 32]), 100, 900, 1), (Id([4; 32]), 100, 100, 1)]
        );
        assert_eq!(by.dropped, 1);

        let opts = PruneOptions::default();
        let c = decide_repack(by.clone(), &opts);
        // 1000 unused bytes against 5% of 400 used: both partial packs go,
        // the most wasteful first.
        assert_eq!(c.repack, vec![Id([3; 32]), Id([4; 32])]);
        assert_eq!(
            (c.repack_bytes, c.moved_bytes, c.unused_left, c.blobs_removed),
            (1200, 200, 0, 3)
        );
        // A budget that fits only the first.
        let tight = PruneOptions {
            max_repack_bytes: Some(1000),
            ..PruneOptions::default()
        };
        let c = decide_repack(by.clone(), &tight);
        assert_eq!(c.repack, vec![Id([3; 32])]);
        assert_eq!(c.keep, vec![(Id([1; 32]), 200), (Id([4; 32]), 100)]);
        // Tolerating all the waste repacks nothing.
        let lax = PruneOptions {
            max_unused_percent: 1000.0,
            ..PruneOptions::default()
        };
        assert!(decide_repack(by, &lax).repack.is_empty());
    }
}
