//! `check`: verify the repository's structure and, optionally, its data.
//!
//! Structure: every index file opens; every indexed pack exists with the
//! size its entries imply; every snapshot opens and every tree and data blob
//! its trees reference is indexed with the right type. Packs no index names
//! are reported (an interrupted write leaves them; prune removes them) but
//! are not errors. With `read_data`, every pack (or a random subset) is
//! read whole: its name must be the hash of its bytes, its header must
//! match the index, and every blob must decrypt and hash to its id.
//!
//! Damage is traced to what it costs: every snapshot whose data lies in a
//! damaged, missing or unindexed blob is listed with the topic, partition
//! and source offsets (Kafka) or stream it affects ([`Affected`]); `kvault
//! repair snapshots` rewrites them. Leftovers of interrupted writes (packs
//! no index names, `.tmp/` files) are notes.

mod finding;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

pub use finding::{Finding, Note};

use super::progress::{Progress, Unit};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repo::crypto::SEAL_OVERHEAD;
use crate::repo::envelope::FileType;
use crate::repo::pack::{BlobType, HEADER_ENTRY_LEN, decode_pack_entries, open_blob};
use crate::repo::walk::{TreeWalker, Visit};
use crate::repo::{FileKind, IndexFiles, Repository};

/// Data a damaged blob costs one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Affected {
    /// The snapshot.
    pub snapshot: Id,
    /// Kafka: the topic; a byte stream: its name.
    pub what: String,
    /// Kafka: the partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Kafka: source offsets `[first, end)` whose records are lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets: Option<[i64; 2]>,
    /// The damaged blob.
    pub blob: Id,
}

impl std::fmt::Display for Affected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.partition, self.offsets) {
            (Some(p), Some([a, b])) => write!(
                f,
                "snapshot {}: {}/{p} offsets {a}..{b} (blob {})",
                self.snapshot.short(),
                self.what,
                self.blob.short()
            ),
            _ => write!(
                f,
                "snapshot {}: {} (blob {})",
                self.snapshot.short(),
                self.what,
                self.blob.short()
            ),
        }
    }
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Read and verify pack contents.
    pub read_data: bool,
    /// With `read_data`, only this percentage (0 < p <= 100) of packs.
    pub subset_percent: Option<f64>,
    /// Bytes that must be nowhere in the repository (erased keys and
    /// values, after `rewrite` and `prune`): every blob of every pack read,
    /// and every index and snapshot file, is searched once decrypted and
    /// decompressed; each hit is a [`Finding::ErasedBytesPresent`].
    pub absent: Arc<Vec<Vec<u8>>>,
}

/// The outcome; the repository is sound when `errors` is empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Damage: data missing or not what it should be.
    #[serde(serialize_with = "finding::with_messages")]
    pub errors: Vec<Finding>,
    /// Things worth knowing that are not damage (unreferenced packs).
    #[serde(serialize_with = "finding::with_messages")]
    pub notes: Vec<Note>,
    /// Index files read.
    pub index_files: usize,
    /// Packs in storage.
    pub packs: usize,
    /// Distinct blobs indexed.
    pub blobs: usize,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Trees walked.
    pub trees: usize,
    /// Packs read with `read_data`.
    pub packs_read: usize,
    /// Blobs verified with `read_data`.
    pub blobs_verified: usize,
    /// Indexed blobs no snapshot references (prune frees them).
    pub unused_blobs: usize,
    /// Blobs found damaged or missing.
    pub damaged_blobs: Vec<Id>,
    /// Packs found damaged (their intact blobs can be moved out: `repair
    /// snapshots`).
    pub damaged_packs: Vec<Id>,
    /// What the damage costs each snapshot.
    pub affected: Vec<Affected>,
}

/// The size a pack with these blob lengths has.
fn expected_pack_size(stored: impl Iterator<Item = u32>) -> u64 {
    let mut n = 0u64;
    let mut total = 0u64;
    for s in stored {
        n += 1;
        total += u64::from(s);
    }
    total + (SEAL_OVERHEAD + 9) as u64 + n * HEADER_ENTRY_LEN as u64 + 4
}

/// Blob entries of each indexed pack.
type IndexPacks = HashMap<Id, Vec<(crate::repo::pack::BlobEntry, u32)>>;

/// Checks the repository: index files, packs against the index, snapshots
/// and their trees, with `read_data` every pack's bytes, then what the
/// damage costs each snapshot.
///
/// # Errors
/// Only when checking cannot proceed (listing fails); damage is reported in
/// [`CheckReport::errors`].
pub async fn check(repo: &Repository, opts: &CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
    let mut rep = CheckReport::default();

    // 1. Index files.
    let IndexFiles { files, unreadable } = repo.read_index_files().await?;
    for (id, e) in unreadable {
        rep.errors.push(Finding::IndexFile {
            index: id,
            error: e.to_string(),
        });
    }
    rep.index_files = files.len();
    let index = repo.use_index_files(&files);
    rep.blobs = index.len();
    let mut index_packs: IndexPacks = HashMap::new();
    for (_, f) in &files {
        for p in &f.packs {
            index_packs.entry(p.id).or_insert_with(|| p.blobs.clone());
        }
    }

    // 2. Packs in storage against the index.
    let mut damaged: HashSet<Id> = HashSet::new();
    let stored = check_packs(repo, &index_packs, &mut rep, &mut damaged).await?;

    // 3. Snapshots and trees.
    let used = check_snapshots(repo, &index, &mut rep, &mut damaged).await?;
    rep.unused_blobs = index.blobs().filter(|l| !used.contains(&l.entry.id)).count();

    // 4. Data.
    if opts.read_data {
        read_data(
            repo,
            opts,
            &index_packs,
            &stored,
            &mut rep,
            &mut damaged,
            progress,
        )
        .await?;
    }

    if !opts.absent.is_empty() {
        absent_in_files(repo, &opts.absent, &mut rep).await?;
    }

    // 5. What the damage costs.
    if !damaged.is_empty() {
        let mut d: Vec<Id> = damaged.iter().copied().collect();
        d.sort();
        rep.damaged_blobs = d;
        rep.affected = affected(repo, &damaged).await?;
        for a in &rep.affected {
            rep.errors.push(Finding::Lost(a.clone()));
        }
    }
    Ok(rep)
}

/// Packs in storage against the index: missing ones (their blobs are
/// damaged), sizes that differ from what the index implies, and notes on
/// packs no index names, stray files and temporary files. Returns each
/// stored pack's size.
async fn check_packs(
    repo: &Repository,
    index_packs: &IndexPacks,
    rep: &mut CheckReport,
    damaged: &mut HashSet<Id>,
) -> Result<HashMap<Id, u64>> {
    let (packs, strays) = repo.list_all(FileKind::Pack).await?;
    let stored: HashMap<Id, u64> = packs.into_iter().map(|(id, o)| (id, o.size)).collect();
    for o in strays {
        rep.notes.push(Note::StrayFile { path: o.path });
    }
    rep.packs = stored.len();
    let mut sorted: Vec<(&Id, &Vec<_>)> = index_packs.iter().collect();
    sorted.sort_by_key(|(id, _)| **id);
    for (pid, blobs) in sorted {
        let want = expected_pack_size(blobs.iter().map(|(e, _)| e.stored_len));
        match stored.get(pid) {
            None => {
                rep.errors.push(Finding::MissingPack { pack: *pid });
                damaged.extend(blobs.iter().map(|(e, _)| e.id));
            }
            Some(&size) if size != want => rep.errors.push(Finding::PackSize {
                pack: *pid,
                stored: size,
                expected: want,
            }),
            Some(_) => {}
        }
    }
    let mut unref: Vec<&Id> = stored.keys().filter(|id| !index_packs.contains_key(id)).collect();
    unref.sort();
    for id in unref {
        rep.notes.push(Note::UnindexedPack { pack: *id });
    }
    match repo.list_temp().await {
        Ok(tmp) if !tmp.is_empty() => rep.notes.push(Note::TempFiles {
            count: tmp.len(),
            bytes: tmp.iter().map(|o| o.size).sum::<u64>(),
        }),
        _ => {}
    }
    Ok(stored)
}

/// Every snapshot and the trees it reaches: each tree indexed as a tree,
/// each data blob indexed as data. Returns every blob referenced.
async fn check_snapshots(
    repo: &Repository,
    index: &crate::repo::index::MasterIndex,
    rep: &mut CheckReport,
    damaged: &mut HashSet<Id>,
) -> Result<HashSet<Id>> {
    let mut used: HashSet<Id> = HashSet::new();
    // Every snapshot's root at once: the walker reads ahead across
    // snapshots, and tags attribute each tree to the first snapshot that
    // reaches it.
    let mut walk = TreeWalker::new(repo).read_ahead(16);
    let mut sids = Vec::new();
    for sid in repo.list_ids(crate::repo::FileKind::Snapshot).await? {
        match repo.load_snapshot(&sid).await {
            Ok(s) => {
                sids.push((sid, s.tree));
                rep.snapshots += 1;
            }
            Err(e) => rep.errors.push(Finding::SnapshotFile {
                snapshot: sid,
                error: e.to_string(),
            }),
        }
    }
    for (tag, (_, root)) in sids.iter().enumerate().rev() {
        walk.push_tagged(*root, tag);
    }
    let sid_of = |tag: usize| sids.get(tag).map_or(Id([0; 32]), |s| s.0);
    loop {
        let errors = &mut rep.errors;
        let mut enter = |tid: &Id, tag: usize| {
            used.insert(*tid);
            let finding = match index.get(tid) {
                None => Finding::TreeNotIndexed {
                    snapshot: sid_of(tag),
                    tree: *tid,
                },
                Some(l) if l.entry.blob_type != BlobType::Tree => Finding::TreeIndexedAsData {
                    snapshot: sid_of(tag),
                    tree: *tid,
                },
                Some(_) => return true,
            };
            errors.push(finding);
            false
        };
        let tree = match walk.next(&mut enter).await {
            None => break,
            Some(Visit::Failed(_, e)) => {
                rep.errors.push(Finding::TreeUnreadable {
                    snapshot: sid_of(walk.tag()),
                    error: e.to_string(),
                });
                continue;
            }
            Some(Visit::Tree(_, t)) => t,
        };
        let sid = sid_of(walk.tag());
        rep.trees += 1;
        for node in &tree.nodes {
            for b in &node.content {
                used.insert(*b);
                match index.get(b) {
                    None => {
                        damaged.insert(*b);
                        rep.errors.push(Finding::DataNotIndexed {
                            snapshot: sid,
                            node_kind: node.kind.to_string(),
                            node: node.name.clone(),
                            blob: *b,
                        });
                    }
                    Some(l) if l.entry.blob_type != BlobType::Data => {
                        rep.errors.push(Finding::DataIndexedAsTree {
                            snapshot: sid,
                            blob: *b,
                        });
                    }
                    Some(_) => {}
                }
            }
        }
    }
    Ok(used)
}

/// Every snapshot's data in `damaged` blobs: Kafka segments by topic,
/// partition and source offsets; byte streams by name.
///
/// # Errors
/// Listing snapshots failing (unreadable ones are skipped: check reports them).
pub async fn affected(repo: &Repository, damaged: &HashSet<Id>) -> Result<Vec<Affected>> {
    let mut out = Vec::new();
    for (sid, snap) in repo.load_snapshots_lenient().await? {
        if snap.kind == crate::image::manifest::KAFKA_KIND {
            let Ok(m) = crate::image::manifest::load(repo, &snap.tree, true).await else {
                continue;
            };
            for t in m.topics.values() {
                for p in t.partitions.values() {
                    for seg in &p.segments {
                        for (id, _, offs) in seg.chunks_with_offsets() {
                            if damaged.contains(id) {
                                let (Some(a), Some(b)) = (offs.first(), offs.last()) else {
                                    continue;
                                };
                                out.push(Affected {
                                    snapshot: sid,
                                    what: t.name.clone(),
                                    partition: Some(p.meta.partition),
                                    offsets: Some([*a, b + 1]),
                                    blob: *id,
                                });
                            }
                        }
                    }
                }
            }
        } else if let Ok(tree) = repo.load_tree(&snap.tree).await {
            for n in tree.nodes {
                for b in n.content.iter().filter(|b| damaged.contains(b)) {
                    out.push(Affected {
                        snapshot: sid,
                        what: n.name.clone(),
                        partition: None,
                        offsets: None,
                        blob: *b,
                    });
                }
            }
        }
    }
    Ok(out)
}

async fn read_data(
    repo: &Repository,
    opts: &CheckOptions,
    index_packs: &IndexPacks,
    stored: &HashMap<Id, u64>,
    rep: &mut CheckReport,
    damaged: &mut HashSet<Id>,
    progress: &dyn Progress,
) -> Result<()> {
    let mut ids: Vec<Id> = stored.keys().copied().collect();
    ids.sort();
    if let Some(p) = opts.subset_percent {
        if !(p > 0.0 && p <= 100.0) {
            return Err(Error::bad_value("subset percentage", p, "a number in (0, 100]"));
        }
        let want = ((ids.len() as f64 * p / 100.0).ceil() as usize).clamp(1.min(ids.len()), ids.len());
        // Random choice, so repeated runs cover the whole repository.
        let mut keyed: Vec<(u64, Id)> = Vec::with_capacity(ids.len());
        for id in ids {
            let mut r = [0u8; 8];
            crate::repo::crypto::fill_random(&mut r)?;
            keyed.push((u64::from_le_bytes(r), id));
        }
        keyed.sort();
        ids = keyed.into_iter().take(want).map(|(_, id)| id).collect();
    }
    let total: u64 = ids.iter().filter_map(|id| stored.get(id)).sum();
    progress.start("reading packs", Some(total), Unit::Bytes);
    let mut set = tokio::task::JoinSet::new();
    let mut queue = ids.into_iter();
    loop {
        while set.len() < 4 {
            let Some(pid) = queue.next() else { break };
            let r = repo.clone();
            let expected = index_packs.get(&pid).cloned();
            let absent = opts.absent.clone();
            // A pack is at most what its index entries imply (the size
            // check above reports a larger one); unindexed ones at most a
            // full pack plus a largest chunk. Never a hostile 3 GiB read.
            let max = expected.as_ref().map_or_else(
                || u64::from(r.config().pack_size) + u64::from(r.config().chunker.max_size) + (64 << 20),
                |e| expected_pack_size(e.iter().map(|(b, _)| b.stored_len)),
            );
            set.spawn(async move {
                let bytes = r.backend().read_max(&FileKind::Pack.path(&pid), max).await;
                let len = bytes.as_ref().map(|b| b.len() as u64).unwrap_or(0);
                let out =
                    tokio::task::spawn_blocking(move || verify_pack(&r, &pid, bytes, expected, &absent))
                        .await
                        .unwrap_or_else(|e| {
                            (
                                Vec::new(),
                                vec![Finding::VerifierCrashed {
                                    pack: pid,
                                    error: e.to_string(),
                                }],
                                Vec::new(),
                            )
                        });
                (pid, len, out)
            });
        }
        let Some(done) = set.join_next().await else { break };
        let (pid, len, (verified, errors, bad)) = done.map_err(|e| Error::worker("a pack check", e))?;
        rep.packs_read += 1;
        rep.blobs_verified += verified.len();
        if !errors.is_empty() {
            rep.damaged_packs.push(pid);
        }
        rep.errors.extend(errors);
        damaged.extend(bad);
        progress.inc(len);
    }
    progress.finish();
    Ok(())
}

/// A finding for each of `absent` that `plain` holds.
fn present(absent: &[Vec<u8>], plain: &[u8], object: impl Fn() -> String) -> Vec<Finding> {
    absent
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.is_empty() && memchr::memmem::find(plain, n).is_some())
        .map(|(i, _)| Finding::ErasedBytesPresent {
            object: object(),
            needle: i + 1,
        })
        .collect()
}

/// Searches every index and snapshot file, decrypted, for `absent`.
async fn absent_in_files(repo: &Repository, absent: &[Vec<u8>], rep: &mut CheckReport) -> Result<()> {
    for (kind, t) in [
        (FileKind::Index, FileType::Index),
        (FileKind::Snapshot, FileType::Snapshot),
    ] {
        for id in repo.list_ids(kind).await? {
            // Unreadable files are findings of their own (above).
            if let Ok(plain) = repo.load_file(t, &id).await {
                rep.errors
                    .extend(present(absent, &plain, || format!("{} file {id}", kind.name())));
            }
        }
    }
    Ok(())
}

/// Verifies one pack: `(blobs verified, errors, blobs damaged)`. When the
/// pack cannot be read or decoded every blob the index puts in it is damaged.
fn verify_pack(
    repo: &Repository,
    pid: &Id,
    bytes: std::result::Result<Vec<u8>, crate::backend::BackendError>,
    expected: Option<Vec<(crate::repo::pack::BlobEntry, u32)>>,
    absent: &[Vec<u8>],
) -> (Vec<Id>, Vec<Finding>, Vec<Id>) {
    let mut errors = Vec::new();
    let mut ok = Vec::new();
    let all_of = |exp: &Option<Vec<(crate::repo::pack::BlobEntry, u32)>>| -> Vec<Id> {
        exp.iter().flatten().map(|(e, _)| e.id).collect()
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            let error = e.to_string();
            return (
                ok,
                vec![Finding::PackUnreadable { pack: *pid, error }],
                all_of(&expected),
            );
        }
    };
    if Id::hash(&bytes) != *pid {
        errors.push(Finding::PackNameMismatch { pack: *pid });
    }
    // Blob by blob: a flipped byte costs one blob, not the whole pack.
    let entries = match decode_pack_entries(repo.keys(), &bytes, &format!("pack {pid}")) {
        Ok(e) => e,
        Err(e) => {
            errors.push(Finding::PackHeader {
                pack: *pid,
                error: e.to_string(),
            });
            return (ok, errors, all_of(&expected));
        }
    };
    let mut bad = Vec::new();
    if let Some(exp) = expected {
        let have: HashSet<_> = entries.iter().collect();
        for e in &exp {
            if !have.contains(e) {
                errors.push(Finding::IndexEntryMismatch {
                    pack: *pid,
                    blob: e.0.id,
                });
                bad.push(e.0.id);
            }
        }
    }
    let object = format!("pack {pid}");
    for (e, off) in &entries {
        let start = *off as usize;
        let Some(sealed) = bytes.get(start..start + e.stored_len as usize) else {
            errors.push(Finding::BlobOutsidePack {
                pack: *pid,
                blob: e.id,
            });
            bad.push(e.id);
            continue;
        };
        match open_blob(repo.keys(), e, sealed, &object) {
            Ok(plain) => {
                ok.push(e.id);
                errors.extend(present(absent, &plain, || format!("blob {} in pack {pid}", e.id)));
            }
            Err(err) => {
                errors.push(Finding::CorruptBlob {
                    pack: *pid,
                    blob: e.id,
                    error: err.to_string(),
                });
                bad.push(e.id);
            }
        }
    }
    (ok, errors, bad)
}
