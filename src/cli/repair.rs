//! `kvault repair index` and `kvault repair snapshots [--dry-run]`.

use anyhow::Result;
use clap::Subcommand;
use kvault::error::exit;
use kvault::ops::repair::{RepairSnapshotsOptions, repair_index, repair_snapshots};
use serde_json::json;

use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum RepairCmd {
    /// Rebuild the index from the pack headers (a lost or damaged index file).
    Index,
    /// Rewrite snapshots that reference damaged or missing data: the lost
    /// records become recorded gaps, everything else stays restorable.
    Snapshots {
        /// Show what would be rewritten; change nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
}

pub async fn run(ctx: &Ctx, cmd: RepairCmd) -> Result<i32> {
    let repo = ctx.open().await?;
    let bar = ctx.out.progress();
    match cmd {
        RepairCmd::Index => {
            let r = repair_index(&repo, &bar).await?;
            for d in &r.damaged_packs {
                ctx.out.warn(&format!("pack {d}: its blobs are lost"));
            }
            ctx.out.emit("repair_index", json!(r), || {
                format!(
                    "indexed {} of {} pack(s) ({} not indexed before); wrote {} index file(s), removed {}",
                    r.packs_indexed, r.packs, r.packs_added, r.index_files_written, r.index_files_removed
                )
            });
            Ok(exit::OK)
        }
        RepairCmd::Snapshots { dry_run } => {
            let r = repair_snapshots(&repo, &RepairSnapshotsOptions { dry_run }, &bar).await?;
            for u in &r.unrepairable {
                ctx.out.warn(u);
            }
            ctx.out.emit("repair_snapshots", json!(r), || {
                let mut s = format!("{} damaged blob(s)", r.damaged_blobs);
                for l in &r.lost {
                    s.push_str(&format!(
                        "\n{}lost {l}",
                        if dry_run { "would record as " } else { "" }
                    ));
                }
                for (old, new) in &r.rewritten {
                    match new {
                        Some(n) => {
                            s.push_str(&format!("\nsnapshot {} rewritten as {}", old.short(), n.short()))
                        }
                        None => s.push_str(&format!("\nsnapshot {} would be rewritten", old.short())),
                    }
                }
                s
            });
            Ok(if r.unrepairable.is_empty() {
                exit::OK
            } else {
                exit::INCOMPLETE
            })
        }
    }
}
