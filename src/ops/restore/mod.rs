//! `restore`: replay a Kafka snapshot into a cluster (the same or another),
//! with exact consumer-group offset translation, as plan then execute.
//!
//! Per partition, the restored records are the snapshot's records at or
//! above its log start, in offset order, to the same partition number. The
//! target offset of the i-th restored record is `start + i`, where `start`
//! is the target partition's end before the restore; every delivery report
//! is checked against it. A committed source offset O becomes the target
//! offset of the first restored record whose source offset is >= O (or the
//! end). Groups are committed only after every partition is flushed.
//!
//! - [`plan`]: the source records per partition ([`crate::image::select`]:
//!   retention, compaction, `--at`), the target's shape, group offsets;
//!   `--dry-run` stops here, with predicted target offsets.
//! - `execute`: target checks (live groups, non-empty partitions), resume
//!   state (`state`), topic creation, producing, group commits, and a
//!   report of what a failure left behind.
//! - `metadata`: the cluster's own state (ACLs, SCRAM users, quotas,
//!   broker configs), planned against the target and applied before the
//!   records.
//! - `shard`: `--shard K/N`, one worker's share of the partitions, and
//!   group commits once every worker's partitions of a group are in.

pub mod drill;
mod exact;
mod execute;
mod inputs;
mod metadata;
pub mod plan;
mod shard;
pub(crate) mod state;
pub mod verify;

pub use self::metadata::parse_scram_credentials;
pub use self::plan::{
    ExactPlan, GroupOffsetPlan, IfExists, IfNotEmpty, Metadata, MetadataResult, Offsets, PartitionPlan,
    RestoreOptions, RestoreResult, ScramPassword, ShardOutcome, SpreadPartition,
};
use crate::error::Result;
use crate::id::Id;
use crate::kafka::admin::Cluster;
use crate::ops::progress::Progress;
use crate::repo::Repository;

/// Restores a Kafka snapshot.
///
/// # Errors
/// A non-Kafka snapshot; an unreachable target; a target partition that
/// holds records (with `--if-not-empty fail`); a target topic with another
/// partition count (without `--repartition`); an active group (without
/// `force`); corrupt data (before anything of that group is committed); a
/// delivery the target does not confirm.
pub async fn restore(
    repo: &Repository,
    snapshot: &Id,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreResult> {
    // Reach the target first: an unreachable broker is reported in seconds.
    let cluster = Cluster::connect(&opts.kafka).await?;
    // A shared lock: prune cannot remove data while it is being restored.
    super::with_lock(repo, false, || async {
        if opts.metadata == Metadata::Only {
            return metadata_only(repo, &cluster, snapshot, opts).await;
        }
        let mut p = plan::plan(repo, &cluster, snapshot, opts).await?;
        if let Some(share) = opts.shard {
            shard::narrow(&mut p, share, &state::restore_key(opts, snapshot))?;
        }
        // The cluster's own state first (one worker of a sharded restore
        // does it): records land in a cluster its clients can use.
        let first_worker = opts.shard.is_none_or(|s| s.index == 0);
        let source = if opts.metadata == Metadata::With && first_worker {
            Some(p.m.cluster_state(repo).await?)
        } else {
            None
        };
        let meta = match &source {
            Some(s) => Some(plan_metadata(&cluster, s.as_ref(), opts).await?),
            None => None,
        };
        if opts.dry_run {
            let mut r = plan::predict(&cluster, opts, p).await?;
            r.metadata = meta.map(|m| m.res);
            return Ok(r);
        }
        let applied = match meta {
            Some(m) => Some(metadata::apply(&cluster, m).await?),
            None => None,
        };
        p.res.metadata = applied;
        log::info!(
            "restore of snapshot {}: {} partition(s), {} record(s), {} group(s)",
            snapshot.short(),
            p.res.partitions.len(),
            p.res.partitions.iter().map(|x| x.records).sum::<u64>(),
            p.res.groups.len()
        );
        let r = execute::execute(repo, &cluster, snapshot, opts, p, progress).await?;
        log::info!(
            "restore done: {} record(s) written, {} resumed",
            r.records_written,
            r.resumed_records
        );
        Ok(r)
    })
    .await
}

/// The metadata plan for a snapshot's cluster state (`None`: the snapshot
/// has none, which the result says).
async fn plan_metadata(
    cluster: &Cluster,
    source: Option<&crate::image::cluster::ClusterState>,
    opts: &RestoreOptions,
) -> Result<metadata::MetadataPlan> {
    match source {
        Some(s) => metadata::plan(s, &cluster.cluster_state().await?, opts),
        None => {
            let mut p = metadata::MetadataPlan::default();
            p.res.not_restored.push(
                "the snapshot holds no cluster state (taken before kvault captured ACLs, users, quotas and broker configs)"
                    .into(),
            );
            Ok(p)
        }
    }
}

/// `--metadata-only`: the cluster's own state, no records.
async fn metadata_only(
    repo: &Repository,
    cluster: &Cluster,
    snapshot: &Id,
    opts: &RestoreOptions,
) -> Result<RestoreResult> {
    let mut res = RestoreResult {
        snapshot: Some(*snapshot),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let source = plan::source_state(repo, snapshot, opts, &mut res).await?;
    let p = plan_metadata(cluster, source.as_ref(), opts).await?;
    res.metadata = Some(if opts.dry_run {
        p.res
    } else {
        metadata::apply(cluster, p).await?
    });
    Ok(res)
}
