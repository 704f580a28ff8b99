//! `restore --shard K/N` (format-spec §14, "Sharded restore"): N workers
//! restore disjoint partitions of one snapshot into one cluster, each
//! resumable on its own, and every group is committed once all its
//! partitions are in, whichever worker finishes them.
//!
//! - **Assignment** ([`narrow`]): every worker plans the whole restore
//!   (the same inputs give the same plan) and keeps the target partitions
//!   [`crate::ops::snapshot::shard::assign`] gives its index, weighted by
//!   records. Topics spread by key are refused: every worker would write
//!   every target partition.
//! - **Marks** ([`finish`]): a worker whose partitions are all confirmed
//!   commits, in a coordination group of the target cluster
//!   (`kvault-restore-<hash of the restore>`, never joined), one offset per
//!   partition it restored: that partition's target start. It then reads
//!   every mark: a group whose partitions are all marked is translated
//!   (mark + index, or verbatim with `--offsets exact`) and committed, and
//!   once every partition is marked the LogAppendTime topics are switched.
//!   Each worker writes its marks before it reads, so the last to finish
//!   sees all of them; two that finish together commit the same offsets.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::{GroupOffsetPlan, Offsets, RestorePlan, RestoreResult, Run, ShardOutcome, TIMESTAMP_TYPE};
use crate::error::{Error, Refusal, Result};
use crate::image::types::TopicPartition;
use crate::kafka::admin::Cluster;
use crate::ops::snapshot::shard::{Share, assign};

/// Metadata of a coordination mark.
const MARK: &str = "kvault-restore: partition restored";
/// Metadata of a mark of a topic created with CreateTime.
const CREATED: &str = "kvault-restore: created with CreateTime";

/// Keeps the target partitions of `share` in `plan`, the whole restore in
/// `plan.run`; `restore_key` names its coordination group.
///
/// # Errors
/// A topic spread by key.
pub(super) fn narrow(plan: &mut RestorePlan, share: Share, restore_key: &str) -> Result<()> {
    if let Some(s) = plan.res.spread.first() {
        return Err(Error::Refused(Refusal::ShardSpread {
            topic: s.topic.clone(),
        }));
    }
    let mut log_append = BTreeMap::new();
    for p in &plan.res.partitions {
        if let Some(t) = plan.m.topics.get(&p.source_topic)
            && t.meta
                .configs
                .get(TIMESTAMP_TYPE)
                .is_some_and(|v| v == "LogAppendTime")
        {
            log_append.insert(p.target_topic.clone(), t.meta.configs.clone());
        }
    }
    plan.run = Some(Run {
        targets: plan.targets.clone(),
        log_append,
        group: format!(
            "kvault-restore-{}",
            &blake3::hash(restore_key.as_bytes()).to_hex()[..32]
        ),
    });
    let weight: BTreeMap<TopicPartition, u64> = plan
        .res
        .partitions
        .iter()
        .filter_map(|p| {
            Some((
                TopicPartition::new(p.target_topic.clone(), p.target_partition?),
                p.records,
            ))
        })
        .collect();
    let parts: Vec<TopicPartition> = weight.keys().cloned().collect();
    let of = assign(&parts, &weight, &BTreeMap::new(), share.count);
    let mine = |tp: &TopicPartition| of.get(tp) == Some(&share.index);
    plan.res.partitions.retain(|p| {
        p.target_partition
            .is_some_and(|q| mine(&TopicPartition::new(p.target_topic.clone(), q)))
    });
    let sources: BTreeSet<TopicPartition> = plan
        .res
        .partitions
        .iter()
        .map(|p| TopicPartition::new(p.source_topic.clone(), p.partition))
        .collect();
    plan.layouts.retain(|tp, _| sources.contains(tp));
    plan.targets.retain(|tp| mine(tp));
    plan.existing_targets.retain(|tp| mine(tp));
    plan.res.shard = Some(ShardOutcome {
        index: share.index,
        count: share.count,
        partitions_total: weight.len(),
        ..Default::default()
    });
    Ok(())
}

/// The group whose commits on partition 0 of a topic say a worker created
/// it with CreateTime, to be switched to LogAppendTime at the end.
fn created_group(run: &Run) -> String {
    format!("{}-created", run.group)
}

/// Marks the topics this worker created that take LogAppendTime once
/// every worker is done (the worker that finishes last switches them).
///
/// # Errors
/// The commit failing.
pub(super) async fn mark_created<'a>(
    cluster: &Cluster,
    run: &Run,
    topics: impl IntoIterator<Item = &'a String>,
) -> Result<()> {
    let marks: Vec<(String, i32, i64, String)> = topics
        .into_iter()
        .map(|t| (t.clone(), 0, 0, CREATED.to_string()))
        .collect();
    if marks.is_empty() {
        return Ok(());
    }
    cluster.commit_group(&created_group(run), &marks).await
}

/// Switches to LogAppendTime every topic of the run a worker marked as
/// created with CreateTime.
///
/// # Errors
/// Reading the marks or altering a topic failing.
async fn switch_created(cluster: &Cluster, run: &Run) -> Result<()> {
    if run.log_append.is_empty() {
        return Ok(());
    }
    let zeros: Vec<TopicPartition> = run
        .log_append
        .keys()
        .map(|t| TopicPartition::new(t.clone(), 0))
        .collect();
    for o in cluster.group_committed(&created_group(run), &zeros).await? {
        if let (CREATED, Some(configs)) = (o.metadata.as_str(), run.log_append.get(&o.topic)) {
            cluster.set_topic_configs(&o.topic, configs).await?;
        }
    }
    Ok(())
}

/// What a worker does once its partitions are confirmed: marks them,
/// commits every group whose partitions are all marked, and switches the
/// LogAppendTime topics once every partition is.
///
/// # Errors
/// A mark, a read of the marks, a group commit or a topic switch failing.
pub(super) async fn finish(
    cluster: &Cluster,
    run: &Run,
    offsets: Offsets,
    res: &mut RestoreResult,
) -> Result<()> {
    let (group, run_targets) = (&run.group, &run.targets);
    let marks: Vec<(String, i32, i64, String)> = res
        .partitions
        .iter()
        .filter_map(|p| {
            Some((
                p.target_topic.clone(),
                p.target_partition?,
                p.target_start?,
                MARK.to_string(),
            ))
        })
        .collect();
    if !marks.is_empty() {
        cluster.commit_group(group, &marks).await?;
    }
    let starts: BTreeMap<TopicPartition, i64> = cluster
        .group_committed(group, run_targets)
        .await?
        .into_iter()
        .filter(|o| o.metadata == MARK)
        .map(|o| (TopicPartition::new(o.topic, o.partition), o.offset))
        .collect();
    let (ready, waiting) = ready_groups(res, &starts, offsets);
    commit_groups(cluster, res.groups.iter().filter(|g| ready.contains(&g.group))).await?;
    if run_targets.iter().all(|tp| starts.contains_key(tp)) {
        switch_created(cluster, run).await?;
    }
    if let Some(o) = &mut res.shard {
        o.partitions_done = run_targets.iter().filter(|tp| starts.contains_key(tp)).count();
        o.groups_committed = ready.into_iter().collect();
        o.groups_waiting = waiting.into_iter().collect();
        o.coordination_group = group.clone();
    }
    Ok(())
}

/// The groups whose partitions are all marked (their target offsets
/// filled in), and those still waiting.
fn ready_groups(
    res: &mut RestoreResult,
    starts: &BTreeMap<TopicPartition, i64>,
    offsets: Offsets,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut waiting = BTreeSet::new();
    for g in &mut res.groups {
        match starts.get(&TopicPartition::new(g.topic.clone(), g.partition)) {
            Some(s) if offsets == Offsets::Translate => g.target_offset = Some(s + g.index as i64),
            Some(_) => {}
            None => {
                waiting.insert(g.group.clone());
            }
        }
    }
    let ready = res
        .groups
        .iter()
        .map(|g| g.group.clone())
        .filter(|g| !waiting.contains(g))
        .collect();
    (ready, waiting)
}

/// Commits each group's target offsets (every record is confirmed).
pub(super) async fn commit_groups<'a>(
    cluster: &Cluster,
    groups: impl IntoIterator<Item = &'a GroupOffsetPlan>,
) -> Result<()> {
    let mut by_group: BTreeMap<String, Vec<(String, i32, i64, String)>> = BTreeMap::new();
    for g in groups {
        let t = g
            .target_offset
            .ok_or_else(|| Error::bug(format!("no target offset for {}/{}", g.topic, g.partition)))?;
        by_group.entry(g.group.clone()).or_default().push((
            g.topic.clone(),
            g.partition,
            t,
            g.metadata.clone(),
        ));
    }
    for (group, offs) in by_group {
        cluster.commit_group(&group, &offs).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::restore::GroupOffsetPlan;

    fn g(group: &str, partition: i32, index: u64, source: i64) -> GroupOffsetPlan {
        GroupOffsetPlan {
            group: group.into(),
            topic: "t".into(),
            partition,
            source_offset: source,
            index,
            target_offset: (source >= 0).then_some(source),
            metadata: String::new(),
            approximate: false,
        }
    }

    /// A group waits while any of its partitions is unmarked; a marked one
    /// is translated from its mark (or kept verbatim when exact).
    #[test]
    fn a_group_is_ready_only_when_every_partition_is_marked() {
        let mut res = RestoreResult {
            groups: vec![g("a", 0, 5, 7), g("a", 1, 2, 3), g("b", 0, 1, 1)],
            ..Default::default()
        };
        let starts = BTreeMap::from([(TopicPartition::new("t", 0), 100)]);
        let (ready, waiting) = ready_groups(&mut res, &starts, Offsets::Translate);
        assert_eq!(ready.into_iter().collect::<Vec<_>>(), vec!["b".to_string()]);
        assert_eq!(waiting.into_iter().collect::<Vec<_>>(), vec!["a".to_string()]);
        assert_eq!(res.groups[2].target_offset, Some(101));

        let mut res = RestoreResult {
            groups: vec![g("a", 0, 5, 7)],
            ..Default::default()
        };
        let (ready, _) = ready_groups(&mut res, &starts, Offsets::Exact);
        assert!(ready.contains("a"));
        assert_eq!(res.groups[0].target_offset, Some(7));
    }
}
