//! `stats`: how much the snapshots hold, and what they take in storage.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::error::Result;
use crate::id::Id;
use crate::repo::walk::{TreeWalker, Visit};
use crate::repo::{FileKind, Repository};

/// Repository statistics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Snapshots.
    pub snapshots: usize,
    /// Bytes a restore of every snapshot would produce (duplicates counted).
    pub logical_bytes: u64,
    /// Distinct data and tree blobs referenced by snapshots.
    pub unique_blobs: usize,
    /// Plaintext bytes of those blobs (after dedup, before compression).
    pub unique_raw_bytes: u64,
    /// Sealed bytes of those blobs in packs (after compression).
    pub unique_stored_bytes: u64,
    /// Packs in storage.
    pub packs: usize,
    /// Bytes of all packs in storage (including unused blobs and headers).
    pub pack_bytes: u64,
    /// logical / unique raw.
    pub dedup_ratio: f64,
    /// unique raw / unique stored.
    pub compression_ratio: f64,
    /// logical / pack bytes.
    pub total_ratio: f64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Computes the statistics by walking every snapshot's trees.
///
/// # Errors
/// Unreadable index, snapshot or tree.
pub async fn stats(repo: &Repository) -> Result<Stats> {
    let index = repo.load_index().await?;
    let snaps = repo.load_snapshots().await?;
    let mut s = Stats {
        snapshots: snaps.len(),
        ..Default::default()
    };
    // Logical size counts every reference: a tree shared by many snapshots
    // counts once per snapshot. Each distinct tree is read once; its
    // logical size (content plus subtrees) is remembered.
    let mut unique: HashSet<Id> = HashSet::new();
    let mut logical: HashMap<Id, u64> = HashMap::new();
    let mut walk = TreeWalker::new(repo).read_ahead(8);
    for (_, snap) in &snaps {
        walk.push(snap.tree);
        // Post-order: a tree's subtrees are summed before it.
        while let Some(v) = walk.next(&mut |_, _| true).await {
            let (t, tree) = match v {
                Visit::Tree(t, tree) => (t, tree),
                Visit::Failed(_, e) => return Err(e),
            };
            unique.insert(t);
            let mut n = 0u64;
            for node in &tree.nodes {
                for b in &node.content {
                    unique.insert(*b);
                    n += index.get(b).map_or(0, |l| u64::from(l.entry.raw_len));
                }
                if let Some(st) = node.subtree {
                    n += logical.get(&st).copied().unwrap_or(0);
                }
            }
            logical.insert(t, n);
        }
        s.logical_bytes += logical.get(&snap.tree).copied().unwrap_or(0);
    }
    for b in &unique {
        if let Some(l) = index.get(b) {
            s.unique_raw_bytes += u64::from(l.entry.raw_len);
            s.unique_stored_bytes += u64::from(l.entry.stored_len);
        }
    }
    s.unique_blobs = unique.len();
    let packs = repo.list_files(FileKind::Pack).await?;
    s.packs = packs.len();
    s.pack_bytes = packs.iter().map(|(_, p)| p.size).sum();
    s.dedup_ratio = ratio(s.logical_bytes, s.unique_raw_bytes);
    s.compression_ratio = ratio(s.unique_raw_bytes, s.unique_stored_bytes);
    s.total_ratio = ratio(s.logical_bytes, s.pack_bytes);
    Ok(s)
}
