//! `forget`, `prune` and `copy`: the repository's lifecycle.

use anyhow::Result;
use clap::Args;
use kvault::error::exit;
use kvault::ops::forget::{CalendarDuration, ForgetOptions, GroupBy, Policy};
use kvault::ops::prune::{PruneOptions, PruneReport};
use serde_json::json;

use super::output::human_bytes;
use super::{Ctx, password};

/// A count flag: a number, or `unlimited` (-1).
fn count(s: &str) -> Result<i64, String> {
    if s == "unlimited" {
        return Ok(-1);
    }
    match s.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(format!("{s:?} is not a count (a number, or unlimited)")),
    }
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshots to remove (besides those the policy removes).
    snapshots: Vec<String>,
    /// Keep the last N snapshots (unlimited: all).
    #[arg(short = 'l', long, value_name = "N", value_parser = count, default_value = "0")]
    keep_last: i64,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(short = 'H', long, value_name = "N", value_parser = count, default_value = "0")]
    keep_hourly: i64,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(short = 'd', long, value_name = "N", value_parser = count, default_value = "0")]
    keep_daily: i64,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    #[arg(short = 'w', long, value_name = "N", value_parser = count, default_value = "0")]
    keep_weekly: i64,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(short = 'm', long, value_name = "N", value_parser = count, default_value = "0")]
    keep_monthly: i64,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[arg(short = 'y', long, value_name = "N", value_parser = count, default_value = "0")]
    keep_yearly: i64,
    /// Keep snapshots newer than this (e.g. 1y5m7d2h) before the group's newest snapshot.
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep snapshots with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "TAG")]
    keep_tags: Vec<String>,
    /// Group snapshots by any of cluster, topics, tags (comma-separated).
    #[arg(long, default_value = "cluster")]
    group_by: String,
    /// Run prune afterwards (under the same lock).
    #[arg(long)]
    prune: bool,
    /// Show what would be removed; change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    #[command(flatten)]
    prune_args: PruneArgs,
}

#[derive(Debug, Args, Clone)]
pub struct PruneArgs {
    /// Unused space tolerated in kept packs, in percent of used space.
    #[arg(long, default_value = "5%", value_name = "PERCENT")]
    max_unused: String,
    /// Rewrite at most this much (e.g. 2G, 500M).
    #[arg(long, value_name = "SIZE")]
    max_repack_size: Option<String>,
    /// Keep packs no index names and temporary files younger than this, by
    /// the storage's clock (a write in progress may own them).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    unindexed_grace: std::time::Duration,
}

impl PruneArgs {
    fn options(&self, dry_run: bool) -> Result<PruneOptions> {
        let p = super::check::parse_percent("--max-unused", &self.max_unused, true)?;
        let max_repack_bytes = self
            .max_repack_size
            .as_deref()
            .map(super::size::parse_size)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--max-repack-size: {e}"))?;
        Ok(PruneOptions {
            max_unused_percent: p,
            max_repack_bytes,
            dry_run,
            unindexed_grace: self.unindexed_grace,
            repack: Vec::new(),
        })
    }
}

#[derive(Debug, Args)]
pub struct PruneCmd {
    #[command(flatten)]
    args: PruneArgs,
    /// Show what would be removed; change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
}

fn prune_metrics(r: &PruneReport) {
    use super::metrics::set;
    set(
        "kvault_prune_bytes_freed",
        "Bytes the last prune freed.",
        r.bytes_freed as f64,
    );
    set(
        "kvault_prune_bytes_after",
        "Repository size after the last prune.",
        r.bytes_after as f64,
    );
    set(
        "kvault_prune_unused_bytes_left",
        "Unused bytes the last prune left in kept packs.",
        r.unused_bytes_left as f64,
    );
}

/// The line naming objects a locked repository keeps until their
/// retention ends ("" for none).
fn waiting_text<'a>(what: &str, untils: impl Iterator<Item = &'a str>) -> String {
    let untils: Vec<&str> = untils.collect();
    let wait = |date: &str| {
        let left = humantime::parse_rfc3339(date)
            .ok()
            .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
            .unwrap_or_default();
        let left = std::time::Duration::from_secs(left.as_secs());
        format!("{date} (in {})", humantime::format_duration(left))
    };
    match (untils.iter().min(), untils.iter().max()) {
        (Some(first), Some(last)) => format!(
            "\n{} {what} locked (Object Lock) kept: the first can go at {}, the last at {}",
            untils.len(),
            wait(first),
            wait(last)
        ),
        _ => String::new(),
    }
}

fn prune_text(r: &PruneReport) -> String {
    let verb = if r.dry_run { "would " } else { "" };
    let waiting = waiting_text("objects", r.waiting.iter().map(|w| w.until.as_str()));
    format!(
        "{} snapshots, {} blobs in use; {} packs ({}) before\n\
         {verb}delete {} unused packs, {verb}repack {} partly used packs into {} new, {verb}delete {} packs and {} temporary files left by interrupted writes{}\n\
         {} unused left in kept packs; {} after, {} {}freed{waiting}",
        r.snapshots,
        r.blobs_used,
        r.packs_before,
        human_bytes(r.bytes_before),
        r.packs_deleted,
        r.packs_repacked,
        r.packs_written,
        r.unindexed_packs_deleted,
        r.tmp_files_deleted,
        if r.unindexed_packs_kept > 0 {
            format!(
                " ({} younger than --unindexed-grace kept)",
                r.unindexed_packs_kept
            )
        } else {
            String::new()
        },
        human_bytes(r.unused_bytes_left),
        human_bytes(r.bytes_after),
        human_bytes(r.bytes_freed),
        if r.dry_run { "would be " } else { "" }
    )
}

pub async fn run_forget(ctx: &Ctx, a: ForgetArgs) -> Result<i32> {
    let repo = ctx.open().await?;
    let mut ids = Vec::new();
    for s in &a.snapshots {
        ids.push(repo.find_id(kvault::FileKind::Snapshot, s).await?);
    }
    let policy = Policy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a
            .keep_within
            .as_deref()
            .map(|w| super::flag_value::<CalendarDuration>("--keep-within", w))
            .transpose()?,
        tags: a.keep_tags.clone(),
    };
    if policy.is_empty() && ids.is_empty() {
        ctx.out
            .note("no policy (--keep-*) and no snapshots given: nothing is removed");
        return Ok(exit::OK);
    }
    let opts = ForgetOptions {
        policy,
        group_by: Some(super::flag_value::<GroupBy>("--group-by", &a.group_by)?),
        ids,
        dry_run: a.dry_run,
    };
    let prune_opts = a.prune_args.options(a.dry_run)?;
    let bar = ctx.out.progress();
    let (f, p) = kvault::ops::with_lock(&repo, true, || async {
        let f = kvault::ops::forget::forget(&repo, &opts).await?;
        let p = if a.prune {
            Some(kvault::ops::prune::prune_locked(&repo, &prune_opts, &bar).await?)
        } else {
            None
        };
        Ok((f, p))
    })
    .await?;
    ctx.out.emit("forget", json!(f), || {
        let mut s = String::new();
        for g in &f.groups {
            let key: Vec<String> = g.key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("group {}\n", key.join(" ")));
            for v in &g.keep {
                s.push_str(&format!(
                    "  keep   {} {}  {}\n",
                    v.id.short(),
                    v.time,
                    v.reasons.join(", ")
                ));
            }
            for v in &g.remove {
                s.push_str(&format!("  remove {} {}\n", v.id.short(), v.time));
            }
        }
        let n: usize = f.groups.iter().map(|g| g.remove.len()).sum();
        if f.dry_run {
            s.push_str(&format!("would remove {n} snapshot(s)"));
        } else {
            s.push_str(&format!("removed {} snapshot(s)", f.removed.len()));
        }
        s.push_str(&waiting_text(
            "snapshots",
            f.waiting.iter().map(|w| w.until.as_str()),
        ));
        s
    });
    super::metrics::set(
        "kvault_forget_snapshots_removed",
        "Snapshots removed by the last forget.",
        f.removed.len() as f64,
    );
    if let Some(p) = p {
        prune_metrics(&p);
        ctx.out.emit("prune", json!(p), || prune_text(&p));
    }
    Ok(exit::OK)
}

pub async fn run_prune(ctx: &Ctx, a: PruneCmd) -> Result<i32> {
    let repo = ctx.open().await?;
    let opts = a.args.options(a.dry_run)?;
    let bar = ctx.out.progress();
    let r = kvault::ops::prune::prune(&repo, &opts, &bar).await?;
    prune_metrics(&r);
    ctx.out.emit("prune", json!(r), || prune_text(&r));
    Ok(exit::OK)
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Snapshots to copy (default: all).
    snapshots: Vec<String>,
    /// The repository to copy from.
    #[arg(long, env = "KVAULT_FROM_REPOSITORY", value_name = "REPO")]
    from_repo: String,
    /// The repository to copy to (default: -r/--repo). Its password comes from
    /// the usual sources (--password-file, KVAULT_PASSWORD, ...).
    #[arg(long, value_name = "REPO")]
    to_repo: Option<String>,
    /// Read the source repository's password from this file.
    #[arg(long, env = "KVAULT_FROM_PASSWORD_FILE")]
    from_password_file: Option<String>,
    /// Run this shell command for the source repository's password.
    #[arg(long, env = "KVAULT_FROM_PASSWORD_COMMAND")]
    from_password_command: Option<String>,
}

pub async fn run_copy(ctx: &Ctx, a: CopyArgs) -> Result<i32> {
    let storage = ctx.global.storage.options()?;
    let dst_loc = match &a.to_repo {
        Some(t) => t.clone(),
        None => ctx.location()?.to_string(),
    };
    let src_pw = password::source_password(
        a.from_password_file.as_deref(),
        a.from_password_command.as_deref(),
        ctx.global.password_command_timeout,
    )?;
    let src = kvault::ops::open(&a.from_repo, &storage, &src_pw).await?;
    let dst_pw = password::repository_password(&ctx.global, false)?;
    let dst = kvault::ops::open(&dst_loc, &storage, &dst_pw).await?;
    ctx.lock_wait(&src);
    ctx.lock_wait(&dst);
    let mut ids = Vec::new();
    for s in &a.snapshots {
        ids.push(src.find_id(kvault::FileKind::Snapshot, s).await?);
    }
    let bar = ctx.out.progress();
    let r = kvault::ops::copy::copy(&src, &dst, &ids, &bar).await?;
    ctx.out.emit("copy", json!(r), || {
        let mut s = String::new();
        for (from, to) in &r.copied {
            s.push_str(&format!("copied snapshot {} -> {}\n", from.short(), to.short()));
        }
        for id in &r.skipped {
            s.push_str(&format!(
                "skipped snapshot {} (already in the destination)\n",
                id.short()
            ));
        }
        s.push_str(&format!(
            "{} chunks read ({}), {} new blobs stored ({})",
            r.blobs_read,
            human_bytes(r.bytes_read),
            r.blobs_stored,
            human_bytes(r.bytes_stored)
        ));
        s
    });
    Ok(exit::OK)
}
