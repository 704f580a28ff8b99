//! `copy`: copy snapshots to another repository (e.g. local -> S3
//! offsite), which has its own keys (format-spec §10 "Copied snapshots").
//!
//! Blob ids are keyed, so the same bytes have different ids in the two
//! repositories: trees are rewritten bottom-up with the destination's ids,
//! and every data blob the destination may lack is read, re-hashed with the
//! destination's key and stored only when the destination lacks it. A
//! snapshot is copied once: the copy records `original` (the source
//! snapshot's own `original`, else its id), and snapshots whose original
//! the destination already holds are skipped.
//!
//! Incremental copies read little: every earlier copy pairs a source tree
//! with a destination tree of the same shape, so walking those pairs maps
//! source ids to destination ids, and a subtree or chunk already mapped
//! (and present in the destination) is not read again. Each snapshot's data
//! is indexed before its snapshot file is written; a killed copy leaves at
//! most unindexed packs (prune removes them) and a rerun continues.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use super::progress::{Progress, Unit};
use crate::error::Result;
use crate::id::Id;
use crate::repo::Repository;
use crate::repo::lock::RepoLock;
use crate::repo::pack::BlobType;
use crate::repo::snapshot::Snapshot;
use crate::repo::walk::{TreeWalker, Visit};
use crate::repo::writer::SaveSession;

/// Chunks read ahead of the one being stored.
const READ_AHEAD: usize = 4;

/// What `copy` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// (source snapshot, new destination snapshot).
    pub copied: Vec<(Id, Id)>,
    /// Source snapshots the destination already holds.
    pub skipped: Vec<Id>,
    /// Data blobs read from the source.
    pub blobs_read: u64,
    /// Blobs (data and trees) stored in the destination.
    pub blobs_stored: u64,
    /// Plaintext bytes read from the source.
    pub bytes_read: u64,
    /// Bytes the new blobs take in the destination.
    pub bytes_stored: u64,
}

/// Source ids mapped to destination ids, and the copy's counters.
struct Copier<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    map: HashMap<Id, Id>,
    paired: HashSet<Id>,
    rep: CopyReport,
    progress: &'a dyn Progress,
}

impl Copier<'_> {
    /// Learns ids from a source tree and a destination tree of the same
    /// shape (an earlier copy); a mismatch ends the walk of that branch.
    fn pair<'s>(&'s mut self, s: Id, d: Id) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 's>> {
        Box::pin(async move {
            if !self.paired.insert(s) {
                return Ok(());
            }
            self.map.insert(s, d);
            let (st, dt) = (self.src.load_tree(&s).await?, self.dst.load_tree(&d).await?);
            if st.nodes.len() != dt.nodes.len() {
                return Ok(());
            }
            for (a, b) in st.nodes.iter().zip(&dt.nodes) {
                if a.name != b.name || a.content.len() != b.content.len() {
                    continue;
                }
                for (x, y) in a.content.iter().zip(&b.content) {
                    self.map.insert(*x, *y);
                }
                if let (Some(x), Some(y)) = (a.subtree, b.subtree) {
                    self.pair(x, y).await?;
                }
            }
            Ok(())
        })
    }

    /// The destination id of source blob `s`, when the destination holds it.
    fn known(&self, session: &SaveSession, s: &Id) -> Option<Id> {
        self.map.get(s).copied().filter(|d| session.holds(d))
    }

    /// Maps a node's chunk list to destination ids, copying the chunks the
    /// destination lacks: reads (decrypt, decompress) run a few chunks
    /// ahead on other workers, and re-hashing, compression and sealing run
    /// on the session's CPU pool; ids come back in order.
    async fn chunks(&mut self, session: &mut SaveSession, content: &mut [Id]) -> Result<()> {
        let missing: Vec<usize> = (0..content.len())
            .filter(|&i| content.get(i).is_some_and(|c| self.known(session, c).is_none()))
            .collect();
        let mut ahead = VecDeque::new();
        let mut queue = missing.iter().copied();
        loop {
            while ahead.len() < READ_AHEAD {
                let Some(i) = queue.next() else { break };
                let Some(c) = content.get(i).copied() else {
                    continue;
                };
                let src = self.src.clone();
                ahead.push_back((i, tokio::spawn(async move { src.read_blob(&c).await })));
            }
            let Some((i, h)) = ahead.pop_front() else { break };
            let plain = h.await.map_err(|e| crate::Error::worker("a chunk read", e))??;
            self.rep.blobs_read += 1;
            self.rep.bytes_read += plain.len() as u64;
            self.progress.inc(plain.len() as u64);
            session.submit(i as u64, bytes::Bytes::from(plain)).await?;
        }
        let copied: HashMap<usize, Id> = session
            .drain()
            .await?
            .into_iter()
            .map(|(i, d)| (i as usize, d))
            .collect();
        for (i, c) in content.iter_mut().enumerate() {
            let d = match copied.get(&i) {
                Some(d) => *d,
                None => self
                    .known(session, c)
                    .ok_or_else(|| crate::Error::bug(format!("chunk {} was not copied", c.short())))?,
            };
            self.map.insert(*c, d);
            *c = d;
        }
        Ok(())
    }

    /// Copies a tree and everything below it the destination lacks,
    /// subtrees first; returns its destination id.
    async fn tree(&mut self, session: &mut SaveSession, root: Id) -> Result<Id> {
        let src = self.src.clone();
        let mut walk = TreeWalker::new(&src);
        walk.push(root);
        loop {
            let copier = &*self;
            let session_ref = &*session;
            let v = walk
                .next(&mut |id, _| copier.known(session_ref, id).is_none())
                .await;
            let (id, mut t) = match v {
                None => break,
                Some(Visit::Failed(_, e)) => return Err(e),
                Some(Visit::Tree(id, t)) => (id, t),
            };
            for node in &mut t.nodes {
                self.chunks(session, &mut node.content).await?;
                if let Some(sub) = node.subtree {
                    let d = self
                        .known(session, &sub)
                        .ok_or_else(|| crate::Error::bug(format!("tree {} was not copied", sub.short())))?;
                    node.subtree = Some(d);
                }
            }
            let d = session.save_blob(BlobType::Tree, t.encode()?).await?;
            self.map.insert(id, d);
        }
        self.known(session, &root)
            .ok_or_else(|| crate::Error::bug(format!("tree {} was not copied", root.short())))
    }
}

/// Copies snapshots (all when `ids` is empty) from `src` to `dst`, holding
/// a shared lock on each.
///
/// # Errors
/// Locks held exclusively (a prune), unreadable or corrupt source data
/// (nothing of that snapshot becomes visible in the destination), storage
/// errors.
pub async fn copy(
    src: &Repository,
    dst: &Repository,
    ids: &[Id],
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let l1 = RepoLock::acquire(src, false).await?;
    let l2 = match RepoLock::acquire(dst, false).await {
        Ok(l) => l,
        Err(e) => {
            let _ = l1.release().await;
            return Err(e);
        }
    };
    let r = copy_locked(src, dst, ids, progress).await;
    let (a, b) = (l2.release().await, l1.release().await);
    let r = r?;
    a?;
    b?;
    Ok(r)
}

async fn copy_locked(
    src: &Repository,
    dst: &Repository,
    ids: &[Id],
    progress: &dyn Progress,
) -> Result<CopyReport> {
    src.load_index().await?;
    dst.load_index().await?;
    let src_snaps = src.load_snapshots().await?;
    for id in ids {
        if !src_snaps.iter().any(|(s, _)| s == id) {
            return Err(crate::Error::NotFound(format!(
                "snapshot {} in the source",
                id.short()
            )));
        }
    }
    let origin = |id: &Id, s: &Snapshot| s.original.unwrap_or(*id);
    // Destination snapshots by the original they stand for.
    let mut have: HashMap<Id, Id> = HashMap::new();
    let mut dst_snaps = dst.load_snapshots().await?;
    for (id, s) in &dst_snaps {
        have.insert(origin(id, s), *id);
    }
    let mut c = Copier {
        src,
        dst,
        map: HashMap::new(),
        paired: HashSet::new(),
        rep: CopyReport::default(),
        progress,
    };
    // Learn ids from earlier copies whose source snapshot is still here.
    for (sid, s) in &src_snaps {
        let Some(did) = have.get(&origin(sid, s)) else {
            continue;
        };
        if let Some((_, d)) = dst_snaps.iter().find(|(i, _)| i == did) {
            c.pair(s.tree, d.tree).await?;
        }
    }
    let todo: Vec<&(Id, Snapshot)> = src_snaps
        .iter()
        // Every snapshot, a sharded run as its combined snapshot (which
        // holds all its data); a part only when named.
        .filter(|(id, s)| {
            if ids.is_empty() {
                !s.is_shard_part()
            } else {
                ids.contains(id)
            }
        })
        .collect();
    let logical: u64 = todo
        .iter()
        .filter(|(id, s)| !have.contains_key(&origin(id, s)))
        .map(|(_, s)| s.summary.logical_bytes)
        .sum();
    progress.start("copying", Some(logical), Unit::Bytes);
    for (sid, s) in todo {
        let orig = origin(sid, s);
        if have.contains_key(&orig) {
            c.rep.skipped.push(*sid);
            continue;
        }
        let mut session = SaveSession::new(dst);
        let tree = c.tree(&mut session, s.tree).await?;
        let stats = session.commit().await?;
        c.rep.blobs_stored += stats.new_blobs;
        c.rep.bytes_stored += stats.new_stored_bytes;
        let mut copy = s.clone();
        copy.tree = tree;
        copy.original = Some(orig);
        copy.parent = s
            .parent
            .and_then(|p| src_snaps.iter().find(|(i, _)| *i == p))
            .and_then(|(i, ps)| have.get(&origin(i, ps)).copied());
        let new_id = dst.save_snapshot(&copy).await?;
        have.insert(orig, new_id);
        dst_snaps.push((new_id, copy));
        c.rep.copied.push((*sid, new_id));
    }
    progress.finish();
    Ok(c.rep)
}
