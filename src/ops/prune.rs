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
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repo::envelope::FileType;
use crate::repo::index::{IndexFile, IndexPack};
use crate::repo::pack::BlobType;
use crate::repo::walk::{TreeWalker, Visit};
use crate::repo::writer::SaveSession;
use crate::repo::{FileKind, Repository};

/// Packs per index file written by prune.
const PACKS_PER_INDEX: usize = 2000;

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

/// Prunes; the caller holds an exclusive lock.
///
/// # Errors
/// As [`prune`].
pub async fn prune_locked(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    let mut rep = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    // 1. The index as it stands, and what is referenced.
    let old_files = repo.list_ids(crate::repo::FileKind::Index).await?;
    let mut files = Vec::new();
    for id in &old_files {
        match repo.load_index_file(id).await {
            Ok(f) => files.push((*id, f)),
            Err(e @ Error::Corrupt { .. }) => {
                // Packs only it names would look unindexed: deleting them
                // could destroy data. Rebuild the index first.
                return Err(Error::Invalid(format!(
                    "{e}; prune changes nothing while an index file is unreadable: run `kvault repair index`"
                )));
            }
            Err(e) => return Err(e),
        }
    }
    let superseded: HashSet<Id> = files
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let mut packs: HashMap<Id, IndexPack> = HashMap::new();
    for (id, f) in &files {
        if superseded.contains(id) {
            continue;
        }
        for p in &f.packs {
            packs.entry(p.id).or_insert_with(|| p.clone());
        }
    }
    repo.load_index().await?;
    let (snapshots, used) = referenced(repo).await?;
    rep.snapshots = snapshots;
    rep.blobs_used = used.len();

    let mut stored: HashMap<Id, u64> = HashMap::new();
    let mut written_at: HashMap<Id, SystemTime> = HashMap::new();
    for (id, o) in repo.list_files(FileKind::Pack).await? {
        stored.insert(id, o.size);
        if let Some(t) = o.modified {
            written_at.insert(id, t);
        }
    }
    let now = storage_now(repo).await;
    let old_enough = |t: Option<SystemTime>| match (t, now) {
        (Some(t), Some(n)) => n.duration_since(t).is_ok_and(|d| d >= opts.unindexed_grace),
        // Without the storage's times only a zero window deletes.
        _ => opts.unindexed_grace.is_zero(),
    };
    rep.packs_before = stored.len();
    rep.bytes_before = stored.values().sum();
    let mut ids: Vec<Id> = packs.keys().copied().collect();
    ids.sort();
    if let Some(missing) = ids.iter().find(|p| !stored.contains_key(p)) {
        return Err(Error::corrupt(
            format!("pack {missing}"),
            "indexed but missing from storage; run `kvault check` (prune changes nothing)",
        ));
    }

    // 2. Classify packs by the blobs kept in them.
    let mut kept_copy: HashSet<Id> = HashSet::new();
    let (mut keep, mut delete, mut partial) = (Vec::new(), Vec::new(), Vec::new());
    for pid in &ids {
        let Some(p) = packs.get(pid) else { continue };
        // Blobs kept in this pack: used, and not already kept in an
        // earlier pack (a duplicate's first copy wins).
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
            delete.push(*pid);
            rep.blobs_removed += p.blobs.len();
        } else if opts.repack.contains(pid) {
            // Forced: rewritten first, before the unused-space budget.
            partial.push((*pid, used_b, unused_b.max(1), p.blobs.len() - used_n));
        } else if used_n == p.blobs.len() {
            keep.push((*pid, used_b));
        } else {
            partial.push((*pid, used_b, unused_b, p.blobs.len() - used_n));
        }
    }
    let used_bytes: u64 = keep.iter().map(|k| k.1).sum::<u64>() + partial.iter().map(|p| p.1).sum::<u64>();
    let mut unused_left: u64 = partial.iter().map(|p| p.2).sum();
    let allowed = (used_bytes as f64 * opts.max_unused_percent / 100.0) as u64;
    // Most wasteful first.
    partial.sort_by(|a, b| {
        let fa = a.2 as f64 / (a.1 + a.2).max(1) as f64;
        let fb = b.2 as f64 / (b.1 + b.2).max(1) as f64;
        fb.total_cmp(&fa).then(a.0.cmp(&b.0))
    });
    // Bytes of used blobs moved into new packs.
    let (mut repack, mut repack_bytes, mut moved_bytes) = (Vec::new(), 0u64, 0u64);
    for (pid, u, w, dropped) in &partial {
        let budget_ok = opts.max_repack_bytes.is_none_or(|m| repack_bytes + u + w <= m);
        if opts.repack.contains(pid) || (unused_left > allowed && budget_ok) {
            repack.push(*pid);
            repack_bytes += u + w;
            moved_bytes += u;
            unused_left -= w;
            rep.blobs_removed += dropped;
        } else {
            keep.push((*pid, *u));
        }
    }
    rep.unused_bytes_left = unused_left;
    rep.packs_deleted = delete.len();
    rep.packs_repacked = repack.len();
    let unindexed: Vec<Id> = {
        let mut v: Vec<Id> = stored
            .keys()
            .filter(|p| !packs.contains_key(p))
            .copied()
            .collect();
        v.sort();
        v
    };
    let (unindexed, young): (Vec<Id>, Vec<Id>) = unindexed
        .into_iter()
        .partition(|p| old_enough(written_at.get(p).copied()));
    rep.unindexed_packs_deleted = unindexed.len();
    rep.unindexed_packs_kept = young.len();
    let tmp: Vec<ObjectInfo> = repo
        .list_temp()
        .await?
        .into_iter()
        .filter(|o| old_enough(o.modified))
        .collect();
    rep.tmp_files_deleted = tmp.len();
    let size_of = |p: &Id| stored.get(p).copied().unwrap_or(0);
    let freed_guess: u64 = delete.iter().chain(&repack).chain(&unindexed).map(size_of).sum();
    if opts.dry_run {
        rep.bytes_after = rep.bytes_before.saturating_sub(freed_guess) + moved_bytes;
        rep.bytes_freed = rep.bytes_before.saturating_sub(rep.bytes_after);
        return Ok(rep);
    }

    // 3. First what needs no new index (a full disk frees this way):
    // garbage no index names, old enough not to be a live write's.
    repo.verify_locks().await?;
    for o in &tmp {
        repo.remove_temp(o).await?;
    }
    for p in &unindexed {
        repo.remove_file(FileKind::Pack, p).await?;
    }
    let lingering = old_files.iter().any(|id| superseded.contains(id));
    if delete.is_empty() && repack.is_empty() && !lingering {
        // Nothing else to free: leave the index as it is.
        rep.bytes_after = pack_bytes(repo).await?;
        rep.bytes_freed = rep.bytes_before.saturating_sub(rep.bytes_after);
        return Ok(rep);
    }

    // 3a. Repack: referenced blobs of the chosen packs into new packs (and
    // their index, which names nothing superseded).
    let mut new_packs: Vec<IndexPack> = Vec::new();
    if !repack.is_empty() {
        progress.start("repacking", Some(repack_bytes), Unit::Bytes);
        let mut session = SaveSession::for_repack(repo);
        // Blobs a kept pack holds need no move.
        let mut moved: HashSet<Id> = keep
            .iter()
            .filter_map(|(p, _)| packs.get(p))
            .flat_map(|p| p.blobs.iter().map(|(e, _)| e.id))
            .collect();
        for pid in &repack {
            let Some(p) = packs.get(pid) else { continue };
            for (e, _) in &p.blobs {
                // Only the copy classification chose, once.
                if used.contains(&e.id) && !moved.contains(&e.id) {
                    let plain = repo.read_blob(&e.id).await?;
                    session
                        .save_blob(
                            if e.blob_type == BlobType::Tree {
                                BlobType::Tree
                            } else {
                                BlobType::Data
                            },
                            plain,
                        )
                        .await?;
                    moved.insert(e.id);
                }
                progress.inc(u64::from(e.stored_len));
            }
        }
        let (_, written) = session.commit_packs().await?;
        progress.finish();
        rep.packs_written = written.len();
        new_packs = written;
    }

    // 3b. The new index: kept packs and new packs; the last file supersedes
    // every index file that exists now.
    repo.verify_locks().await?;
    let before = repo.list_ids(crate::repo::FileKind::Index).await?;
    let mut all: Vec<IndexPack> = keep.iter().filter_map(|(p, _)| packs.get(p).cloned()).collect();
    all.extend(new_packs);
    let chunks: Vec<Vec<IndexPack>> = if all.is_empty() {
        vec![Vec::new()]
    } else {
        all.chunks(PACKS_PER_INDEX).map(<[IndexPack]>::to_vec).collect()
    };
    let n = chunks.len();
    let mut written_ids = HashSet::new();
    for (i, c) in chunks.into_iter().enumerate() {
        let f = IndexFile {
            supersedes: if i + 1 == n { before.clone() } else { Vec::new() },
            packs: c,
        };
        written_ids.insert(repo.save_file(FileType::Index, &f.encode()).await?);
        rep.index_files_written += 1;
    }
    // 3c. Older index files, then 3d. packs.
    repo.verify_locks().await?;
    for id in before.iter().filter(|id| !written_ids.contains(id)) {
        repo.remove_file(FileKind::Index, id).await?;
        rep.index_files_removed += 1;
    }
    progress.start(
        "deleting packs",
        Some((delete.len() + repack.len()) as u64),
        Unit::Items,
    );
    for p in delete.iter().chain(&repack) {
        repo.remove_file(FileKind::Pack, p).await?;
        progress.inc(1);
    }
    progress.finish();
    repo.load_index().await?;
    rep.bytes_after = pack_bytes(repo).await?;
    rep.bytes_freed = rep.bytes_before.saturating_sub(rep.bytes_after);
    Ok(rep)
}
