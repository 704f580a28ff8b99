//! `put` and `get`: store a byte stream as a snapshot and read it back.
//!
//! This is the repository's data path without Kafka: the same chunker,
//! packs, index, trees and snapshots that Kafka snapshots use. It backs the
//! quick start, the benchmarks and the crash tests.

use std::collections::VecDeque;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::progress::{Progress, Unit};
use super::with_lock;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repo::pack::BlobType;
use crate::repo::snapshot::{SNAPSHOT_VERSION, Snapshot, SnapshotSummary};
use crate::repo::tree::{Node, Tree};
use crate::repo::writer::{SaveSession, SaveStats};
use crate::repo::{Repository, hostname, now_rfc3339, username};

/// Snapshot kind of a stored byte stream.
pub const STREAM_KIND: &str = "stream";

/// Options of `put`.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Name of the stream (a file name, or `stdin`).
    pub name: String,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
}

/// What `put` did.
#[derive(Debug, Clone, Serialize)]
pub struct PutSummary {
    /// The new snapshot.
    pub snapshot: Id,
    /// Bytes read.
    pub bytes: u64,
    /// Chunks the stream was cut into.
    pub chunks: usize,
    /// Session counters (new blobs, stored bytes).
    pub stats: SaveStats,
}

/// Reads `src` to its end and stores it as a `stream` snapshot.
///
/// # Errors
/// Read errors from `src`, storage errors, [`Error::Locked`].
pub async fn put<R: AsyncRead + Unpin>(
    repo: &Repository,
    mut src: R,
    opts: &PutOptions,
    progress: &dyn Progress,
) -> Result<PutSummary> {
    with_lock(repo, false, || async {
        repo.load_index().await?;
        let mut session = SaveSession::new(repo);
        progress.start("storing", None, Unit::Bytes);
        let mut w = session.stream();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = src
                .read(&mut buf)
                .await
                .map_err(|e| Error::io(format!("reading {}", opts.name), e))?;
            if n == 0 {
                break;
            }
            w.write(buf.get(..n).unwrap_or_default()).await?;
            progress.inc(n as u64);
        }
        let result = w.finish().await?;
        progress.finish();
        let data_stats = session.stats().clone();
        let tree = Tree {
            nodes: vec![Node {
                name: opts.name.clone(),
                kind: STREAM_KIND.into(),
                size: result.size,
                subtree: None,
                content: result.ids.clone(),
                meta: Default::default(),
            }],
        };
        let tree_id = session.save_blob(BlobType::Tree, tree.encode()?).await?;
        let stats = session.commit().await?;
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            time: now_rfc3339(),
            hostname: hostname(),
            username: username(),
            kind: STREAM_KIND.into(),
            source: opts.name.clone(),
            tags: opts.tags.clone(),
            tree: tree_id,
            parent: None,
            original: None,
            run: None,
            erasures: Vec::new(),
            retained_until: None,
            summary: SnapshotSummary {
                logical_bytes: result.size,
                data_blobs: data_stats.blobs,
                new_data_blobs: data_stats.new_blobs,
                new_raw_bytes: data_stats.new_raw_bytes,
                new_stored_bytes: data_stats.new_stored_bytes,
            },
        };
        let id = repo.save_snapshot(&snap).await?;
        Ok(PutSummary {
            snapshot: id,
            bytes: result.size,
            chunks: result.ids.len(),
            stats,
        })
    })
    .await
}

/// Writes the stream of a `stream` snapshot to `dst`; returns the bytes written.
/// Blobs are fetched a few at a time ahead of the writer; each is verified
/// before a byte of it is written.
///
/// # Errors
/// [`Error::Refused`] for another kind of snapshot, [`Error::Corrupt`] when
/// a blob does not check out, write errors.
pub async fn get<W: AsyncWrite + Unpin>(
    repo: &Repository,
    snapshot: &Id,
    mut dst: W,
    progress: &dyn Progress,
) -> Result<u64> {
    let snap = repo.load_snapshot(snapshot).await?;
    snap.expect_kind(snapshot, STREAM_KIND, "a stream")?;
    repo.load_index().await?;
    let tree = repo.load_tree(&snap.tree).await?;
    let node = tree
        .nodes
        .first()
        .ok_or_else(|| Error::corrupt(format!("tree {}", snap.tree.short()), "empty stream tree"))?;
    progress.start("reading", Some(node.size), Unit::Bytes);
    let mut ahead = VecDeque::new();
    let mut ids = node.content.iter();
    let mut written = 0u64;
    loop {
        while ahead.len() < 4 {
            let Some(id) = ids.next() else { break };
            let (r, id) = (repo.clone(), *id);
            ahead.push_back(tokio::spawn(async move { r.read_blob(&id).await }));
        }
        let Some(h) = ahead.pop_front() else { break };
        let data = h.await.map_err(|e| Error::worker("a read task", e))??;
        dst.write_all(&data)
            .await
            .map_err(|e| Error::io("writing output", e))?;
        written += data.len() as u64;
        progress.inc(data.len() as u64);
    }
    dst.flush().await.map_err(|e| Error::io("writing output", e))?;
    progress.finish();
    if written != node.size {
        return Err(Error::corrupt(
            format!("snapshot {}", snapshot.short()),
            format!("stream has {written} bytes, tree says {}", node.size),
        ));
    }
    Ok(written)
}
