//! `rewrite`: erase records by key from Kafka snapshots (format-spec §14
//! "Erased records").
//!
//! Each snapshot that holds a record of a selected topic with one of the
//! keys gets a new snapshot whose image lacks those records: every other
//! record keeps its offset, bytes and timestamp, the erased offsets become
//! gaps recorded in their segment's `erased`, groups and commit history
//! are the original's. A chunk without such a record is reused by id; one
//! with some is re-encoded without them. Partition subtrees and chunks are
//! shared between incremental snapshots, so each is read and erased once.
//! The new snapshot keeps the original's time, tags and source and records
//! the erasure (time, count, a keyed hash of each key); with `forget` the
//! originals (and a run's parts) are removed, and a `prune --max-unused 0`
//! afterwards deletes the erased bytes from storage.
//!
//! Two phases: `Eraser` erases partitions (reads chunks, stores the new
//! ones) and remembers each partition subtree's result; then each
//! snapshot's trees above them are written again
//! ([`manifest::rebuild_partitions`], shared with `repair snapshots`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use super::progress::{Progress, Unit};
use crate::error::{Error, Result};
use crate::id::Id;
pub use crate::image::erase::KeySet;
use crate::image::erase::{ChunkErasure, ChunkFate, erase_chunk, erase_segment, merge_ranges};
use crate::image::keyfilter::KeyHash;
use crate::image::manifest::{self, FilterCache, KAFKA_KIND, PartitionMeta, SegmentMeta};
use crate::kafka::filter::NameFilter;
use crate::repo::pack::BlobType;
use crate::repo::snapshot::{Erasure, Snapshot};
use crate::repo::tree::{Node, Tree};
use crate::repo::writer::SaveSession;
use crate::repo::{Repository, now_rfc3339};

/// What to erase, and where.
#[derive(Debug, Clone, Default)]
pub struct RewriteOptions {
    /// The snapshots to rewrite (empty: every Kafka snapshot).
    pub snapshots: Vec<Id>,
    /// The topics whose records are matched (patterns; none: all).
    pub topics: Vec<String>,
    /// The keys whose records are erased.
    pub keys: KeySet,
    /// Remove each rewritten snapshot's original (and a run's parts).
    pub forget: bool,
    /// Only report what would be erased.
    pub dry_run: bool,
}

/// The records erased from one partition of a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct ErasedPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Records erased.
    pub records: u64,
    /// Their offsets, as `[first, end)` ranges.
    pub offsets: Vec<[i64; 2]>,
}

/// One snapshot rewritten.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRewrite {
    /// The original.
    pub snapshot: Id,
    /// Its time (kept by the new snapshot).
    pub time: String,
    /// The new snapshot (absent in a dry run).
    pub new_snapshot: Option<Id>,
    /// Records erased from it.
    pub records: u64,
    /// Per partition.
    pub partitions: Vec<ErasedPartition>,
}

/// What `rewrite` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RewriteReport {
    /// Snapshots that held matching records.
    pub rewritten: Vec<SnapshotRewrite>,
    /// Snapshots examined that held none.
    pub untouched: Vec<Id>,
    /// Originals removed (`forget`; a run's parts go with it).
    pub forgotten: Vec<Id>,
    /// Originals `forget` keeps until their retention ends (a locked
    /// repository).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<crate::repo::retention::Waiting>,
    /// Distinct chunks read.
    pub chunks_read: u64,
    /// Distinct chunks not read: their key filter holds none of the keys.
    pub chunks_skipped: u64,
    /// Chunks re-encoded without their erased records.
    pub chunks_rewritten: u64,
    /// Plaintext bytes of keys and values erased (each chunk counted once).
    pub bytes_erased: u64,
    /// Bytes the new packs take in storage.
    pub bytes_written: u64,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

/// Erases records by key, under a shared lock (an exclusive one with
/// `forget`, which removes snapshot files).
///
/// # Errors
/// [`Error::BadValue`] for no key; [`Error::NotFound`] for a named snapshot
/// that is not there; [`Error::Locked`]; unreadable data; storage errors
/// (nothing is removed before every new snapshot is stored).
pub async fn rewrite(
    repo: &Repository,
    opts: &RewriteOptions,
    progress: &dyn Progress,
) -> Result<RewriteReport> {
    if opts.keys.is_empty() {
        return Err(Error::BadValue {
            what: "keys to erase",
            value: String::new(),
            expected: "at least one key".into(),
        });
    }
    super::with_lock(repo, opts.forget && !opts.dry_run, || {
        rewrite_locked(repo, opts, progress)
    })
    .await
}

async fn rewrite_locked(
    repo: &Repository,
    opts: &RewriteOptions,
    progress: &dyn Progress,
) -> Result<RewriteReport> {
    let topics = NameFilter::new("topic pattern", &opts.topics, &[])?;
    let snaps = selected(repo, &opts.snapshots).await?;
    repo.load_index().await?;
    let mut session = (!opts.dry_run).then(|| SaveSession::new(repo));
    let filters = FilterCache::new(repo);
    let mut eraser = Eraser {
        repo,
        keys: &opts.keys,
        session: session.as_mut(),
        chunks: HashMap::new(),
        partitions: HashMap::new(),
        hashes: opts.keys.iter().map(|k| filters.hasher().hash(k)).collect(),
        filters,
        skipped: HashSet::new(),
        rep: RewriteReport {
            dry_run: opts.dry_run,
            ..Default::default()
        },
    };
    progress.start("reading chunks", None, Unit::Items);
    let mut found = Vec::new();
    for (sid, snap) in &snaps {
        let erased = eraser.snapshot(&snap.tree, &topics, progress).await?;
        if erased.is_empty() {
            eraser.rep.untouched.push(*sid);
        } else {
            found.push((*sid, snap, erased));
        }
    }
    progress.finish();
    let (partitions, mut rep) = (eraser.partitions, eraser.rep);
    let Some(mut session) = session else {
        rep.rewritten = found
            .into_iter()
            .map(|(sid, s, e)| report(sid, s, None, e))
            .collect();
        return Ok(rep);
    };
    let mut new_ids: HashMap<Id, Id> = HashMap::new();
    let mut trees = Vec::new();
    for (sid, snap, erased) in found {
        let mut edit = |_: &str, pn: &mut Node| erased_node(pn, &partitions);
        let root = manifest::rebuild_partitions(repo, &mut session, &snap.tree, &mut edit).await?;
        trees.push((sid, snap, root, erased));
    }
    let stats = session.commit().await?;
    rep.bytes_written = stats.new_stored_bytes;
    let mut hashes: Vec<Id> = opts.keys.iter().map(|k| repo.keys().erased_key_hash(k)).collect();
    hashes.sort();
    // Oldest first: a rewritten parent's new id is known before its child's.
    for (sid, snap, root, erased) in trees {
        let erasure = Erasure {
            time: now_rfc3339(),
            from: sid,
            records: erased.iter().map(|e| e.2.len() as u64).sum(),
            keys: hashes.clone(),
        };
        let new = repo
            .save_snapshot(&new_snapshot(snap, root, erasure, &new_ids))
            .await?;
        new_ids.insert(sid, new);
        rep.rewritten.push(report(sid, snap, Some(new), erased));
    }
    if opts.forget && !rep.rewritten.is_empty() {
        // forget's own removal: a run's parts go with it.
        let ids = rep.rewritten.iter().map(|r| r.snapshot).collect();
        let f = super::forget::forget(
            repo,
            &super::forget::ForgetOptions {
                ids,
                ..Default::default()
            },
        )
        .await?;
        rep.forgotten = f.removed;
        rep.waiting = f.waiting;
    }
    Ok(rep)
}

/// The Kafka snapshots to examine, oldest first (never a run's parts
/// unless named).
async fn selected(repo: &Repository, ids: &[Id]) -> Result<Vec<(Id, Snapshot)>> {
    let all = repo.load_snapshots().await?;
    for id in ids {
        match all.iter().find(|(s, _)| s == id) {
            None => return Err(Error::NotFound(format!("snapshot {}", id.short()))),
            Some((_, s)) if s.kind != KAFKA_KIND => {
                return Err(Error::bad_value(
                    "snapshot",
                    id.short(),
                    format!(
                        "a Kafka snapshot (this is a {} snapshot; a run's part goes with its run)",
                        s.kind
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(all
        .into_iter()
        .filter(|(id, s)| s.kind == KAFKA_KIND && (ids.is_empty() || ids.contains(id)))
        .collect())
}

/// Erased records of one partition: `(topic, partition, offsets)`.
type Erased = Vec<(String, i32, Vec<i64>)>;

fn report(sid: Id, s: &Snapshot, new: Option<Id>, erased: Erased) -> SnapshotRewrite {
    let partitions: Vec<ErasedPartition> = erased
        .into_iter()
        .map(|(topic, partition, offs)| ErasedPartition {
            topic,
            partition,
            records: offs.len() as u64,
            offsets: merge_ranges(offs.iter().map(|&o| [o, o + 1]).collect()),
        })
        .collect();
    SnapshotRewrite {
        snapshot: sid,
        time: s.time.clone(),
        new_snapshot: new,
        records: partitions.iter().map(|p| p.records).sum(),
        partitions,
    }
}

/// The new snapshot: the original's, with the new tree, the rewritten
/// parent's new id, no run (its parts keep the erased records), and the
/// erasure recorded.
fn new_snapshot(
    snap: &Snapshot,
    (root, logical): (Id, u64),
    erasure: Erasure,
    new_ids: &HashMap<Id, Id>,
) -> Snapshot {
    let mut s = snap.clone();
    s.tree = root;
    s.kind = KAFKA_KIND.into();
    s.run = None;
    s.parent = snap.parent.map(|p| new_ids.get(&p).copied().unwrap_or(p));
    s.summary.logical_bytes = logical;
    s.erasures.push(erasure);
    s
}

/// A chunk erased: what went (without the new bytes, stored already),
/// its replacement's id, its old and new lengths.
#[derive(Debug)]
struct ErasedChunk {
    erasure: ChunkErasure,
    new_id: Option<Id>,
    old_len: u64,
    new_len: u64,
}

/// A partition subtree erased: the new subtree, records and bytes left,
/// the erased offsets.
#[derive(Debug, Clone)]
struct NewPartition {
    subtree: Id,
    records: u64,
    size: u64,
    erased: Vec<i64>,
}

/// Erases partitions, each chunk and partition subtree once.
struct Eraser<'a> {
    repo: &'a Repository,
    keys: &'a KeySet,
    /// Where new chunks and trees go (`None`: a dry run).
    session: Option<&'a mut SaveSession>,
    /// By chunk id and timestamp base; `None`: nothing erased.
    chunks: HashMap<(Id, i64), Option<Arc<ErasedChunk>>>,
    /// By partition subtree id; `None`: nothing erased.
    partitions: HashMap<Id, Option<NewPartition>>,
    /// The keys' hashes in key filters: chunks whose filter holds none
    /// are not read.
    filters: FilterCache,
    hashes: Vec<KeyHash>,
    /// Chunks skipped by their filters (counted once).
    skipped: HashSet<(Id, i64)>,
    rep: RewriteReport,
}

impl Eraser<'_> {
    /// Erases the selected topics' partitions of one snapshot; returns what
    /// it erased.
    async fn snapshot(&mut self, root: &Id, topics: &NameFilter, progress: &dyn Progress) -> Result<Erased> {
        let m = manifest::load(self.repo, root, false).await?;
        let mut erased = Vec::new();
        for t in m.topics.values().filter(|t| topics.matches(&t.name)) {
            for p in t.partitions.values() {
                let Some(sub) = p.node.subtree else { continue };
                if !self.partitions.contains_key(&sub) {
                    let done = self.partition(&sub, progress).await?;
                    self.partitions.insert(sub, done);
                }
                if let Some(Some(np)) = self.partitions.get(&sub) {
                    erased.push((t.name.clone(), p.meta.partition, np.erased.clone()));
                }
            }
        }
        Ok(erased)
    }

    /// One partition's segments with the keys' records erased.
    async fn partition(&mut self, subtree: &Id, progress: &dyn Progress) -> Result<Option<NewPartition>> {
        let tree = self.repo.load_tree(subtree).await?;
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        let (mut records, mut size, mut erased) = (0u64, 0u64, Vec::new());
        for mut n in tree.nodes {
            let meta: SegmentMeta = manifest::from_meta(&n)?;
            let at = meta.filter_at;
            let filter = self
                .filters
                .get(self.repo, n.subtree, at, n.content.len())
                .await?;
            let mut done = Vec::with_capacity(n.content.len());
            for (i, (id, cm)) in n.content.iter().zip(&meta.chunks).enumerate() {
                if filter.as_ref().is_some_and(|f| f.rules_out(i, &self.hashes)) {
                    self.rep.chunks_skipped += u64::from(self.skipped.insert((*id, cm.ts_base())));
                    done.push(None);
                    continue;
                }
                done.push(self.chunk(id, cm.ts_base(), progress).await?);
            }
            let fates: Vec<ChunkFate<'_, Id>> = done
                .iter()
                .map(|d| match d.as_deref() {
                    None => ChunkFate::Kept,
                    Some(ErasedChunk {
                        erasure,
                        new_id: Some(id),
                        ..
                    }) => ChunkFate::Replaced(*id, erasure),
                    Some(ErasedChunk { erasure, .. }) => ChunkFate::Gone(erasure),
                })
                .collect();
            let mut seg_records = meta.records;
            if let Some((new_meta, ids, gone)) = erase_segment(&meta, &n.content, &fates) {
                n.size = done
                    .iter()
                    .flatten()
                    .fold(n.size, |s, d| s.saturating_sub(d.old_len) + d.new_len);
                n.content = ids;
                // Its key filters were per chunk and still answer for the
                // erased keys: the new segment has none.
                n.subtree = None;
                n.meta = manifest::to_meta(&new_meta)?;
                seg_records = new_meta.records;
                erased.extend(gone);
            }
            records += seg_records;
            size += n.size;
            nodes.push(n);
        }
        if erased.is_empty() {
            return Ok(None);
        }
        let tree = Tree { nodes }.encode()?;
        let subtree = match self.session.as_deref_mut() {
            Some(s) => s.save_blob(BlobType::Tree, tree).await?,
            None => self.repo.keys().blob_id(&tree),
        };
        Ok(Some(NewPartition {
            subtree,
            records,
            size,
            erased,
        }))
    }

    /// One chunk erased (read once per id and timestamp base).
    async fn chunk(
        &mut self,
        id: &Id,
        ts_base: i64,
        progress: &dyn Progress,
    ) -> Result<Option<Arc<ErasedChunk>>> {
        if let Some(d) = self.chunks.get(&(*id, ts_base)) {
            return Ok(d.clone());
        }
        let data = self.repo.read_blob(id).await?;
        self.rep.chunks_read += 1;
        progress.inc(1);
        let what = format!("chunk {}", id.short());
        let done = match erase_chunk(&data, ts_base, self.keys, &what)? {
            None => None,
            Some(mut erasure) => {
                self.rep.chunks_rewritten += u64::from(erasure.data.is_some());
                self.rep.bytes_erased += erasure.erased_bytes;
                // The new bytes go to storage now; only their id stays.
                let new = erasure.data.take();
                let new_len = new.as_ref().map_or(0, |b| b.len() as u64);
                let new_id = match (new, self.session.as_deref_mut()) {
                    (Some(b), Some(s)) => Some(s.save_blob(BlobType::Data, b).await?),
                    (Some(b), None) => Some(self.repo.keys().blob_id(&b)),
                    (None, _) => None,
                };
                Some(Arc::new(ErasedChunk {
                    erasure,
                    new_id,
                    old_len: data.len() as u64,
                    new_len,
                }))
            }
        };
        self.chunks.insert((*id, ts_base), done.clone());
        Ok(done)
    }
}

/// A partition node with its erased subtree, if it has one; whether it
/// changed (for [`manifest::rebuild_partitions`]).
fn erased_node(pn: &mut Node, partitions: &HashMap<Id, Option<NewPartition>>) -> Result<bool> {
    let Some(Some(np)) = pn.subtree.and_then(|s| partitions.get(&s)) else {
        return Ok(false);
    };
    let mut pm: PartitionMeta = manifest::from_meta(pn)?;
    pm.records = np.records;
    pn.meta = manifest::to_meta(&pm)?;
    pn.subtree = Some(np.subtree);
    pn.size = np.size;
    Ok(true)
}
