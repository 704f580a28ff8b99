//! `drill`: a restore proved and undone. The snapshot is restored under a
//! scratch prefix (or into a scratch cluster), verified as `verify` does,
//! and what the drill created is deleted again: its topics, and the groups
//! it committed that did not exist before. A group the target already has
//! is never committed to (on a production cluster it is a live
//! application's): its position is verified only on a scratch cluster
//! where it does not exist, and the report says which were left out. No
//! cluster state (ACLs, users, quotas, broker configs) is applied.

use serde::Serialize;

use super::plan::{Metadata, RestoreOptions};
use super::verify::{VerifyOptions, VerifyReport, verify};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::kafka::admin::Cluster;
use crate::ops::progress::Progress;
use crate::repo::Repository;

/// What to drill.
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// The restore to prove (its `prefix` names the scratch topics).
    pub restore: RestoreOptions,
    /// Leave the restored topics and groups (to look at a difference).
    pub keep: bool,
}

/// What a drill did and found.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// The verification, with the restore's time and the RTO.
    pub verify: VerifyReport,
    /// Topics the restore created.
    pub created_topics: Vec<String>,
    /// Groups the restore committed (they did not exist before).
    pub created_groups: Vec<String>,
    /// Groups of the snapshot the target already had: not committed, not
    /// verified.
    pub groups_left_out: Vec<String>,
    /// Whether the created topics and groups were deleted.
    pub cleaned_up: bool,
}

/// Restores, verifies and cleans up.
///
/// # Errors
/// No scratch prefix; anything a restore or a verification fails with (the
/// topics already created are deleted first, unless `keep`).
pub async fn drill(
    repo: &Repository,
    snapshot: &Id,
    opts: &DrillOptions,
    progress: &dyn Progress,
) -> Result<DrillReport> {
    if opts.restore.prefix.is_empty() {
        return Err(Error::bad_value(
            "drill prefix",
            "",
            "a scratch prefix for the restored topics",
        ));
    }
    let cluster = Cluster::connect(&opts.restore.kafka).await?;
    let mut ropts = RestoreOptions {
        metadata: Metadata::Without,
        dry_run: true,
        ..opts.restore.clone()
    };
    let existing = cluster.group_names().await?;
    let planned = super::restore(repo, snapshot, &ropts, progress).await?;
    let mut groups: Vec<String> = planned.groups.iter().map(|g| g.group.clone()).collect();
    groups.sort();
    groups.dedup();
    let (left_out, created): (Vec<String>, Vec<String>) =
        groups.into_iter().partition(|g| existing.contains(g));
    // Exact names as patterns: a group name with glob characters in it is
    // matched by itself and perhaps others the snapshot has (none here:
    // those are in `left_out` or `created` already).
    ropts.groups = created.clone();
    ropts.no_groups = opts.restore.no_groups || created.is_empty();
    ropts.dry_run = false;
    let started = std::time::Instant::now();
    let restored = super::restore(repo, snapshot, &ropts, progress).await;
    let restore_ms = started.elapsed().as_millis() as u64;
    // The topics the plan found missing: what the restore creates, also
    // when it fails halfway.
    let created_topics = planned.created_topics.clone();
    let verified = match restored {
        Ok(_) => {
            let v = VerifyOptions {
                restore: ropts.clone(),
                allow_newer: false,
            };
            verify(repo, snapshot, &v, progress).await
        }
        Err(e) => Err(e),
    };
    let cleaned_up = !opts.keep;
    if cleaned_up {
        cluster.delete_groups(&created).await?;
        cluster.delete_topics(&created_topics).await?;
    }
    let mut report = verified?;
    report.restore_ms = Some(restore_ms);
    report.rto_ms = Some(restore_ms + report.verify_ms);
    Ok(DrillReport {
        verify: report,
        created_topics,
        created_groups: if ropts.no_groups { Vec::new() } else { created },
        groups_left_out: left_out,
        cleaned_up,
    })
}
