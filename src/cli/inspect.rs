//! `kvault snapshots`, `stats` and `cat`: looking into a repository.

use std::io::Write;

use anyhow::Result;
use clap::{Args, ValueEnum};
use kvault::error::exit;
use kvault::ops::cat::{self, CatKind};
use serde_json::json;

use super::Ctx;
use super::output::{human_bytes, quit_on_broken_pipe};

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Only snapshots with this tag (repeatable: any of them).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Only snapshots of this kind (`stream`, `kafka`).
    #[arg(long)]
    kind: Option<String>,
    /// Only the newest N.
    #[arg(long)]
    latest: Option<usize>,
    /// Also list the shard parts of sharded runs (kind kafka-shard).
    #[arg(long)]
    parts: bool,
}

pub async fn snapshots(ctx: &Ctx, a: SnapshotsArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let all = repo.load_snapshots().await?;
    let incomplete = kvault::ops::snapshot::shard::incomplete_runs(&all);
    let mut snaps: Vec<_> = all
        .into_iter()
        // A run is one snapshot: its parts only on request.
        .filter(|(_, s)| a.parts || !s.is_shard_part())
        .filter(|(_, s)| a.tags.is_empty() || s.tags.iter().any(|t| a.tags.contains(t)))
        .filter(|(_, s)| a.kind.as_ref().is_none_or(|k| &s.kind == k))
        .collect();
    if let Some(n) = a.latest {
        let skip = snaps.len().saturating_sub(n);
        snaps.drain(..skip);
    }
    if !ctx.out.json && !ctx.out.quiet {
        println!(
            "{:<10} {:<20} {:<8} {:<24} {:>12}  TAGS",
            "ID", "TIME", "KIND", "SOURCE", "SIZE"
        );
    }
    let n = snaps.len();
    for (id, s) in snaps {
        ctx.out.emit("snapshot", json!({"id": id, "snapshot": s}), || {
            format!(
                "{:<10} {:<20} {:<8} {:<24} {:>12}  {}",
                id.short(),
                s.time.get(..19).unwrap_or(&s.time).replace('T', " "),
                s.kind,
                match &s.run {
                    Some(r) if r.shard.is_none() =>
                        format!("{} (run {}, {} shards)", s.source, r.id, r.shards),
                    _ => s.source.clone(),
                },
                human_bytes(s.summary.logical_bytes),
                s.tags.join(",")
            )
        });
    }
    if !ctx.out.json && !ctx.out.quiet {
        println!("{n} snapshot(s)");
    }
    for (run, cluster, shards, have) in incomplete {
        let missing: Vec<String> = (0..shards)
            .filter(|k| !have.contains(k))
            .map(|k| k.to_string())
            .collect();
        ctx.out.emit(
            "incomplete_run",
            json!({"run": run, "cluster": cluster, "shards": shards, "shards_done": have}),
            || {
                format!(
                    "incomplete run {run} of cluster {cluster}: {} of {shards} shards done; rerun shard(s) {} to complete it",
                    have.len(),
                    missing.join(", ")
                )
            },
        );
    }
    Ok(exit::OK)
}

pub async fn stats(ctx: &Ctx) -> Result<i32> {
    let repo = ctx.open().await?;
    let s = kvault::ops::stats::stats(&repo).await?;
    ctx.out.emit("stats", json!(s), || {
        format!(
            "snapshots:          {}\n\
             logical size:       {}  (what restoring every snapshot yields)\n\
             unique data:        {}  in {} blobs (after dedup)\n\
             stored blobs:       {}  (after compression and encryption)\n\
             packs:              {}  in {} pack(s)\n\
             dedup ratio:        {:.2}x\n\
             compression ratio:  {:.2}x\n\
             total ratio:        {:.2}x",
            s.snapshots,
            human_bytes(s.logical_bytes),
            human_bytes(s.unique_raw_bytes),
            s.unique_blobs,
            human_bytes(s.unique_stored_bytes),
            human_bytes(s.pack_bytes),
            s.packs,
            s.dedup_ratio,
            s.compression_ratio,
            s.total_ratio
        )
    });
    Ok(exit::OK)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Config,
    Key,
    Lock,
    Snapshot,
    Index,
    Pack,
    Blob,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    /// What to print.
    #[arg(value_enum)]
    kind: Kind,
    /// Object id or unique prefix (`latest` for snapshots); not for config.
    id: Option<String>,
}

pub async fn cat(ctx: &Ctx, a: CatArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let kind = match a.kind {
        Kind::Config => CatKind::Config,
        Kind::Key => CatKind::Key,
        Kind::Lock => CatKind::Lock,
        Kind::Snapshot => CatKind::Snapshot,
        Kind::Index => CatKind::Index,
        Kind::Pack => CatKind::Pack,
        Kind::Blob => CatKind::Blob,
    };
    let bytes = cat::cat(&repo, kind, a.id.as_deref()).await?;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(&bytes).and_then(|()| out.flush()) {
        quit_on_broken_pipe(&e);
        return Err(e.into());
    }
    Ok(exit::OK)
}
