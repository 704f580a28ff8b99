//! `stats`: how much the snapshots hold, and what they take in storage.

use std::collections::HashSet;

use serde::Serialize;

use crate::error::Result;
use crate::id::Id;
use crate::repo::{DATA_DIR, Repository};

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
    let mut unique: HashSet<Id> = HashSet::new();
    let mut walked: HashSet<Id> = HashSet::new();
    for (_, snap) in &snaps {
        // Logical size per snapshot counts every reference, so walk each
        // snapshot fully; tree blobs themselves count once.
        let mut stack = vec![snap.tree];
        while let Some(t) = stack.pop() {
            unique.insert(t);
            let tree = repo.load_tree(&t).await?;
            walked.insert(t);
            for n in &tree.nodes {
                if let Some(st) = n.subtree {
                    stack.push(st);
                }
                for b in &n.content {
                    unique.insert(*b);
                    if let Some(l) = index.get(b) {
                        s.logical_bytes += u64::from(l.entry.raw_len);
                    }
                }
            }
        }
    }
    for b in &unique {
        if let Some(l) = index.get(b) {
            s.unique_raw_bytes += u64::from(l.entry.raw_len);
            s.unique_stored_bytes += u64::from(l.entry.stored_len);
        }
    }
    s.unique_blobs = unique.len();
    let packs = repo.backend().list(DATA_DIR).await?;
    s.packs = packs.len();
    s.pack_bytes = packs.iter().map(|p| p.size).sum();
    s.dedup_ratio = ratio(s.logical_bytes, s.unique_raw_bytes);
    s.compression_ratio = ratio(s.unique_raw_bytes, s.unique_stored_bytes);
    s.total_ratio = ratio(s.logical_bytes, s.pack_bytes);
    Ok(s)
}
