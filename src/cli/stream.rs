//! `kvault put` and `kvault get`: byte streams in and out of the repository.

use anyhow::{Context, Result};
use clap::Args;
use kvault::error::exit;
use kvault::ops::stream::{self, PutOptions};
use serde_json::json;

use super::Ctx;
use super::output::human_bytes;

#[derive(Debug, Args)]
pub struct PutArgs {
    /// File to store; `-` or nothing reads stdin.
    file: Option<String>,
    /// Name recorded for the stream (default: the file name, or `stdin`).
    #[arg(long)]
    name: Option<String>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Snapshot id, unique prefix, or `latest`.
    snapshot: String,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<String>,
}

pub async fn put(ctx: &Ctx, a: PutArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let path = a.file.filter(|f| f != "-");
    let name = a.name.or_else(|| path.clone()).unwrap_or_else(|| "stdin".into());
    let opts = PutOptions { name, tags: a.tags };
    let bar = ctx.out.progress();
    let s = match &path {
        Some(p) => {
            let f = tokio::fs::File::open(p)
                .await
                .with_context(|| format!("opening {p}"))?;
            stream::put(&repo, f, &opts, &bar).await?
        }
        None => stream::put(&repo, tokio::io::stdin(), &opts, &bar).await?,
    };
    ctx.out.emit("summary", json!(s), || {
        format!(
            "snapshot {} saved: {} in {} chunks, {} new ({} stored), {} pack(s)",
            s.snapshot.short(),
            human_bytes(s.bytes),
            s.chunks,
            human_bytes(s.stats.new_raw_bytes),
            human_bytes(s.stats.new_stored_bytes),
            s.stats.packs
        )
    });
    Ok(exit::OK)
}

/// A file being written that is removed unless finished (also when the
/// command is interrupted: SIGINT and SIGTERM drop the command's future).
struct Partial(Option<std::path::PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

pub async fn get(ctx: &Ctx, a: GetArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let id = repo.find_id(kvault::FileKind::Snapshot, &a.snapshot).await?;
    let bar = ctx.out.progress();
    match &a.output {
        Some(p) => {
            // Write beside the target and rename, so a failed or interrupted
            // read leaves nothing half-written.
            let tmp = format!("{p}.kvault-partial");
            let mut partial = Partial(Some(tmp.clone().into()));
            let f = tokio::fs::File::create(&tmp)
                .await
                .with_context(|| format!("creating {tmp}"))?;
            let n = ctx.reading(&repo, || stream::get(&repo, &id, f, &bar)).await?;
            tokio::fs::rename(&tmp, p)
                .await
                .with_context(|| format!("renaming {tmp} to {p}"))?;
            partial.0 = None;
            ctx.out.note(&format!("wrote {} to {p}", human_bytes(n)));
        }
        None => {
            ctx.reading(&repo, || stream::get(&repo, &id, tokio::io::stdout(), &bar))
                .await?;
        }
    }
    Ok(exit::OK)
}
