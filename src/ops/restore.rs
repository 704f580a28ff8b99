//! `restore`: replay a Kafka snapshot into a cluster (the same or another),
//! with exact consumer-group offset translation.
//!
//! Per partition, the restored records are the snapshot's records at or
//! above its log start, in offset order, to the same partition number. The
//! target offset of the i-th restored record is `start + i`, where `start`
//! is the target partition's end before the restore; every delivery report
//! is checked against it. A committed source offset O becomes the target
//! offset of the first restored record whose source offset is >= O (or the
//! end). Groups are committed only after every partition is flushed.
//!
//! With `--at T` the log is the union of every snapshot of the cluster; per
//! partition it is cut before the first record with a timestamp after T
//! (chunk metadata finds the one chunk to decode) and starts at the log
//! start of the latest snapshot at or before T; topic settings and group
//! offsets come from that snapshot too, offsets clamped to the cut.
//!
//! Retention (as of T) and compaction (latest value per key, tombstones per
//! `delete.retention.ms`) choose the records of each partition:
//! [`super::restore_log`]. A killed restore resumes from its state file
//! ([`super::restore_state`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::dump::for_each_record;
use super::manifest::{self, KAFKA_KIND, Manifest};
use super::progress::{Progress, Unit};
use super::restore_log::{SelectOptions, Selection, first_newer, select};
use super::restore_state::{ResumeState, end_offsets, state_file};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::kafka::admin::metadata_consumer;
use crate::kafka::sink::Sink;
use crate::kafka::{KafkaOptions, selected};
use crate::repo::Repository;

/// What to restore, and where.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// The target cluster.
    pub kafka: KafkaOptions,
    /// Source topic globs (all when empty).
    pub topics: Vec<String>,
    /// Renames `(from, to)` of source topics.
    pub rename: Vec<(String, String)>,
    /// A prefix for every target topic (after renames).
    pub prefix: String,
    /// Group globs (all when empty).
    pub groups: Vec<String>,
    /// Restore no group offsets.
    pub no_groups: bool,
    /// Commit even when a group has active members on the target.
    pub force: bool,
    /// Only compute and return the plan.
    pub dry_run: bool,
    /// Where resume state lives (default `$XDG_STATE_HOME/kvault/restore`
    /// or `~/.local/state/kvault/restore`).
    pub state_dir: Option<std::path::PathBuf>,
    /// Restore the log as of this time (ms since the epoch), combining
    /// every snapshot of the cluster: per partition the longest prefix whose
    /// records all have timestamps <= it, from the log start at that time.
    pub at: Option<i64>,
    /// Restore compacted topics as they are, without applying compaction.
    pub no_compact: bool,
}

/// One partition of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionPlan {
    /// Source topic.
    pub source_topic: String,
    /// Target topic.
    pub target_topic: String,
    /// Partition number (the same on both sides).
    pub partition: i32,
    /// Records to restore.
    pub records: u64,
    /// Source offsets restored, `[first, end)`.
    pub source_range: [i64; 2],
    /// Target offset of the first restored record (known after the restore starts).
    pub target_start: Option<i64>,
    /// Records left out because compaction removes them (compacted topics).
    pub compacted_away: u64,
}

/// One group offset, before and after translation.
#[derive(Debug, Clone, Serialize)]
pub struct GroupOffsetPlan {
    /// Group id.
    pub group: String,
    /// Target topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Committed offset in the source.
    pub source_offset: i64,
    /// Restored records before it (its index in the restored log).
    pub index: u64,
    /// Offset committed on the target (`target_start + index`).
    pub target_offset: Option<i64>,
    /// Commit metadata.
    pub metadata: String,
}

/// The plan, and what was done.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreResult {
    /// Snapshot restored.
    pub snapshot: Option<Id>,
    /// Topics created on the target.
    pub created_topics: Vec<String>,
    /// Partitions.
    pub partitions: Vec<PartitionPlan>,
    /// Group offsets.
    pub groups: Vec<GroupOffsetPlan>,
    /// Records written (confirmed by delivery reports).
    pub records_written: u64,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Records found already restored by an interrupted run and skipped.
    pub resumed_records: u64,
    /// The resume state file.
    pub state_file: Option<String>,
    /// Warnings.
    pub warnings: Vec<String>,
}

fn target_name(opts: &RestoreOptions, source: &str) -> String {
    let renamed = opts
        .rename
        .iter()
        .find(|(f, _)| f == source)
        .map_or(source, |(_, t)| t.as_str());
    format!("{}{renamed}", opts.prefix)
}

/// Restored records below source offset `o`.
fn index_of(runs: &[[i64; 2]], o: i64) -> u64 {
    runs.iter().map(|r| (o - r[0]).clamp(0, r[1]) as u64).sum()
}

/// Restores a Kafka snapshot.
///
/// # Errors
/// A non-Kafka snapshot, a target with fewer partitions, an active group
/// (without `force`), corrupt data (before anything of that group is
/// committed), a delivery the target does not confirm.
pub async fn restore(
    repo: &Repository,
    snapshot: &Id,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreResult> {
    // A shared lock: prune cannot remove data while it is being restored.
    super::with_lock(repo, false, || restore_locked(repo, snapshot, opts, progress)).await
}

async fn restore_locked(
    repo: &Repository,
    snapshot: &Id,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreResult> {
    let snap = repo.load_snapshot(snapshot).await?;
    snap.expect_kind(snapshot, KAFKA_KIND, "a Kafka snapshot")?;
    repo.load_index().await?;
    let mut res = RestoreResult {
        snapshot: Some(*snapshot),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let (m, cuts): (Manifest, BTreeMap<(String, i32), Option<i64>>) = match opts.at {
        None => (manifest::load(repo, &snap.tree, true).await?, BTreeMap::new()),
        Some(t) => as_of(repo, &snap.source, t, &mut res).await?,
    };
    let topics: Vec<_> = m
        .topics
        .values()
        .filter(|t| selected(&t.name, &opts.topics, &[]))
        .collect();
    if topics.is_empty() {
        return Err(Error::NotFound(format!(
            "topics matching {:?} in snapshot {}",
            opts.topics,
            snapshot.short()
        )));
    }
    let sel_opts = SelectOptions {
        at: opts.at,
        now: opts.at.unwrap_or_else(|| snap.unix_ms()),
        compact: !opts.no_compact,
    };
    let mut sel_of: BTreeMap<(String, i32), Selection> = BTreeMap::new();
    for t in &topics {
        for p in t.partitions.values() {
            let cut = cuts.get(&(t.name.clone(), p.meta.partition)).copied().flatten();
            let what = format!("{}/{}", t.name, p.meta.partition);
            let sel = select(repo, &what, &t.meta, p, cut, sel_opts).await?;
            let first = sel.runs.first().map_or(sel.start.min(p.meta.end), |r| r[0]);
            res.partitions.push(PartitionPlan {
                source_topic: t.name.clone(),
                target_topic: target_name(opts, &t.name),
                partition: p.meta.partition,
                records: sel.records(),
                source_range: [first, cut.unwrap_or(p.meta.end)],
                target_start: None,
                compacted_away: sel.compacted_away,
            });
            sel_of.insert((t.name.clone(), p.meta.partition), sel);
        }
    }
    if !opts.no_groups {
        for (g, offs) in m.groups.iter().filter(|(g, _)| selected(g, &opts.groups, &[])) {
            for o in offs.iter().filter(|o| topics.iter().any(|t| t.name == o.topic)) {
                let Some(sel) = sel_of.get(&(o.topic.clone(), o.partition)) else {
                    continue;
                };
                res.groups.push(GroupOffsetPlan {
                    group: g.clone(),
                    topic: target_name(opts, &o.topic),
                    partition: o.partition,
                    source_offset: o.offset,
                    index: index_of(&sel.runs, o.offset),
                    target_offset: None,
                    metadata: o.metadata.clone(),
                });
            }
        }
    }

    // Target state: bounds (or absence) of every target partition.
    let k = opts.kafka.clone();
    // (target name, partitions, replication factor, configs)
    let wanted: Vec<(String, i32, i32, &BTreeMap<String, String>)> = topics
        .iter()
        .map(|t| {
            (
                target_name(opts, &t.name),
                t.meta.partitions,
                t.meta.replication_factor,
                &t.meta.configs,
            )
        })
        .collect();
    // One metadata client serves every lookup of this restore.
    let probe = {
        let k = k.clone();
        Arc::new(
            tokio::task::spawn_blocking(move || metadata_consumer(&k))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??,
        )
    };
    let c = probe.clone();
    let (brokers, existing) =
        tokio::task::spawn_blocking(move || -> Result<(usize, BTreeMap<String, i32>)> {
            let md = c
                .fetch_metadata(None, k.timeout())
                .map_err(|e| Error::Invalid(format!("cannot reach Kafka at {}: {e}", k.brokers)))?;
            let existing = md
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .map(|t| (t.name().to_string(), t.partitions().len() as i32))
                .collect();
            Ok((md.brokers().len().max(1), existing))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    let mut to_create = Vec::new();
    for (name, parts, rf, configs) in &wanted {
        match existing.get(name) {
            Some(have) if have < parts => {
                return Err(Error::Invalid(format!(
                    "target topic {name} has {have} partitions; the snapshot needs {parts}"
                )));
            }
            Some(_) => {}
            None => {
                let rf_t = (*rf).min(brokers as i32).max(1);
                if rf_t < *rf {
                    res.warnings.push(format!("{name}: replication factor {rf} capped to {rf_t} (the target has {brokers} broker(s))"));
                }
                to_create.push((name.clone(), *parts, rf_t, (*configs).clone()));
            }
        }
    }
    if opts.dry_run {
        // Predict: existing targets continue at their end, new ones at 0.
        let present: Vec<(String, i32)> = res
            .partitions
            .iter()
            .filter(|p| existing.contains_key(&p.target_topic))
            .map(|p| (p.target_topic.clone(), p.partition))
            .collect();
        let mut ends = end_offsets(&probe, &opts.kafka, &present, false)
            .await?
            .into_iter();
        for p in &mut res.partitions {
            p.target_start = Some(if existing.contains_key(&p.target_topic) {
                ends.next().unwrap_or(0)
            } else {
                0
            });
        }
        fill_group_targets(&mut res);
        res.created_topics = to_create.into_iter().map(|t| t.0).collect();
        return Ok(res);
    }

    // Groups must not be live on the target.
    if !opts.no_groups && !opts.force {
        let k = opts.kafka.clone();
        let names: Vec<String> = res.groups.iter().map(|g| g.group.clone()).collect();
        let c = probe.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let list = c
                .fetch_group_list(None, k.timeout())
                .map_err(|e| Error::Invalid(format!("listing groups on {}: {e}", k.brokers)))?;
            for g in list.groups() {
                if names.iter().any(|n| n == g.name()) && !g.members().is_empty() {
                    return Err(Error::Invalid(format!(
                        "group {} has {} active member(s) on the target; stop its consumers or use --force",
                        g.name(),
                        g.members().len()
                    )));
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    }

    if !to_create.is_empty() {
        let admin: AdminClient<DefaultClientContext> = opts
            .kafka
            .client_config()
            .create()
            .map_err(|e| Error::Invalid(format!("kafka admin client: {e}")))?;
        let specs: Vec<NewTopic<'_>> = to_create
            .iter()
            .map(|(n, p, rf, cfg)| {
                let mut t = NewTopic::new(n, *p, TopicReplication::Fixed(*rf));
                for (k, v) in cfg {
                    t = t.set(k, v);
                }
                t
            })
            .collect();
        for r in admin
            .create_topics(&specs, &AdminOptions::new())
            .await
            .map_err(|e| Error::Invalid(format!("creating topics: {e}")))?
        {
            r.map_err(|(t, e)| Error::Invalid(format!("creating topic {t}: {e}")))?;
        }
        res.created_topics = to_create.iter().map(|t| t.0.clone()).collect();
        wait_for_topics(&probe, &opts.kafka, &res.created_topics).await?;
    }

    // Resume state: each target partition's start offset, written before
    // the first record is produced (format-spec §14 "Restore state").
    let state_path = state_file(opts, snapshot)?;
    res.state_file = Some(state_path.display().to_string());
    let mut state = ResumeState::load(&state_path)?;
    if state.completed {
        return Err(Error::Invalid(format!(
            "this restore already completed (state in {}); delete that file to restore again",
            state_path.display()
        )));
    }
    let mut already: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let parts: Vec<(String, i32)> = res
        .partitions
        .iter()
        .map(|pp| (pp.target_topic.clone(), pp.partition))
        .collect();
    // Only a rerun can have its own records still landing: then wait until
    // every end stops moving (one pause for all partitions).
    let rerun = parts
        .iter()
        .any(|(t, p)| state.starts.contains_key(&format!("{t}/{p}")));
    let ends = end_offsets(&probe, &opts.kafka, &parts, rerun).await?;
    for (pp, end) in res.partitions.iter_mut().zip(ends) {
        let key = format!("{}/{}", pp.target_topic, pp.partition);
        let start = *state.starts.entry(key).or_insert(end);
        let done = (end - start).clamp(0, pp.records as i64);
        pp.target_start = Some(start);
        already.insert((pp.target_topic.clone(), pp.partition), done);
        res.resumed_records += done as u64;
    }
    state.save(&state_path)?;

    // Produce, partition by partition, checking every delivery.
    let total: u64 = res.partitions.iter().map(|p| p.records).sum();
    progress.start("restoring records", Some(total), Unit::Items);
    progress.inc(res.resumed_records);
    let mut sink = Sink::new(&opts.kafka)?;
    for pp in &res.partitions {
        let start = pp.target_start.unwrap_or(0);
        let skip = already
            .get(&(pp.target_topic.clone(), pp.partition))
            .copied()
            .unwrap_or(0);
        if skip as u64 >= pp.records {
            continue;
        }
        let part = m
            .topics
            .get(&pp.source_topic)
            .and_then(|t| t.partitions.get(&pp.partition))
            .ok_or_else(|| {
                Error::Internal(format!(
                    "plan names {}/{} not in the manifest",
                    pp.source_topic, pp.partition
                ))
            })?;
        let what = format!("{}/{}", pp.source_topic, pp.partition);
        let sel = sel_of
            .get(&(pp.source_topic.clone(), pp.partition))
            .ok_or_else(|| Error::Internal(format!("no selection for {what}")))?;
        let filter = sel.filter();
        let mut i = 0i64;
        let (topic, partition) = (pp.target_topic.clone(), pp.partition);
        let mut f = |o: i64, r: crate::kafka::record::Record| -> Result<()> {
            if !sel.wants(o) {
                return Ok(());
            }
            if i >= skip {
                sink.send(&topic, partition, &r, start + i)?;
                if (i - skip) % 4096 == 4095 {
                    progress.inc(4096);
                }
            }
            i += 1;
            Ok(())
        };
        for_each_record(repo, &what, part, &filter, &mut f).await?;
        progress.inc(((i - skip).max(0) % 4096) as u64);
    }
    res.records_written = tokio::task::spawn_blocking(move || sink.flush())
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    progress.finish();

    // Groups, only after every record is confirmed.
    fill_group_targets(&mut res);
    let mut by_group: BTreeMap<String, Vec<&GroupOffsetPlan>> = BTreeMap::new();
    for g in &res.groups {
        by_group.entry(g.group.clone()).or_default().push(g);
    }
    for (group, offs) in by_group {
        let mut tpl = TopicPartitionList::new();
        for o in offs {
            let t = o.target_offset.ok_or_else(|| {
                Error::Internal(format!("no target offset for {}/{}", o.topic, o.partition))
            })?;
            tpl.add_partition_offset(&o.topic, o.partition, Offset::Offset(t))
                .map_err(|e| Error::Internal(e.to_string()))?;
            if let Some(el) = tpl.find_partition(&o.topic, o.partition) {
                let mut el = el;
                el.set_metadata(o.metadata.clone());
            }
        }
        let mut cfg = opts.kafka.client_config();
        cfg.set("group.id", &group).set("enable.auto.commit", "false");
        let c: BaseConsumer = cfg
            .create()
            .map_err(|e| Error::Invalid(format!("kafka client: {e}")))?;
        tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| commit_error(&group, &e))?;
    }
    state.completed = true;
    state.save(&state_path)?;
    Ok(res)
}

/// The log as of `t`: topics and groups from the latest snapshot of the
/// cluster at or before `t` (else the earliest), segments from every
/// snapshot, and per partition the first offset whose record is newer than
/// `t` (the cut; `None` when every known record is older).
async fn as_of(
    repo: &Repository,
    cluster: &str,
    t: i64,
    res: &mut RestoreResult,
) -> Result<(Manifest, BTreeMap<(String, i32), Option<i64>>)> {
    let snaps: Vec<_> = repo
        .load_snapshots()
        .await?
        .into_iter()
        .filter(|(_, s)| s.kind == KAFKA_KIND && s.source == cluster)
        .collect();
    let base_idx = snaps.iter().rposition(|(_, s)| s.unix_ms() <= t).unwrap_or(0);
    let (base_id, base) = snaps
        .get(base_idx)
        .ok_or_else(|| Error::NotFound(format!("a snapshot of cluster {cluster}")))?;
    if base.unix_ms() > t {
        res.warnings.push(format!(
            "no snapshot of cluster {cluster} at or before the requested time; using the earliest ({}) for settings and groups",
            base_id.short()
        ));
    }
    res.snapshot = Some(*base_id);
    let mut m = manifest::load(repo, &base.tree, true).await?;
    // Every segment any snapshot holds: the log as the repository knows it.
    for (_, s) in &snaps {
        let other = manifest::load(repo, &s.tree, true).await?;
        for (name, ot) in other.topics {
            let Some(bt) = m.topics.get_mut(&name) else {
                continue;
            };
            for (p, op) in ot.partitions {
                let Some(bp) = bt.partitions.get_mut(&p) else {
                    continue;
                };
                for seg in op.segments {
                    if !bp.segments.iter().any(|x| x.meta.start == seg.meta.start) {
                        bp.segments.push(seg);
                    }
                }
                bp.segments.sort_by_key(|x| x.meta.start);
            }
        }
    }
    let mut cuts = BTreeMap::new();
    for t_ in m.topics.values() {
        for p in t_.partitions.values() {
            cuts.insert(
                (t_.name.clone(), p.meta.partition),
                first_newer(repo, &format!("{}/{}", t_.name, p.meta.partition), p, t).await?,
            );
        }
    }
    Ok((m, cuts))
}

/// A refused group commit. A live group refuses commits from outside its
/// generation; the records are restored by then, so a rerun of the same
/// command (once the consumers stop) only commits the groups.
fn commit_error(group: &str, e: &rdkafka::error::KafkaError) -> Error {
    use rdkafka::types::RDKafkaErrorCode as C;
    let live = matches!(
        e.rdkafka_error_code(),
        Some(C::UnknownMemberId | C::IllegalGeneration | C::RebalanceInProgress)
    );
    if live {
        Error::Invalid(format!(
            "group {group} has active members on the target, and the broker refuses offsets from outside them; \
             the records are restored: stop the group's consumers and run the same command again to commit its offsets"
        ))
    } else {
        Error::Invalid(format!("committing offsets of group {group}: {e}"))
    }
}

fn fill_group_targets(res: &mut RestoreResult) {
    let starts: BTreeMap<(String, i32), i64> = res
        .partitions
        .iter()
        .filter_map(|p| p.target_start.map(|s| ((p.target_topic.clone(), p.partition), s)))
        .collect();
    for g in &mut res.groups {
        g.target_offset = starts
            .get(&(g.topic.clone(), g.partition))
            .map(|s| s + g.index as i64);
    }
}

async fn wait_for_topics(probe: &Arc<BaseConsumer>, k: &KafkaOptions, names: &[String]) -> Result<()> {
    for _ in 0..100 {
        let k2 = k.clone();
        let names2 = names.to_vec();
        let c = probe.clone();
        let ready = tokio::task::spawn_blocking(move || -> Result<bool> {
            let md = c
                .fetch_metadata(None, k2.timeout())
                .map_err(|e| Error::Invalid(e.to_string()))?;
            Ok(names2.iter().all(|n| {
                md.topics()
                    .iter()
                    .any(|t| t.name() == n && t.error().is_none() && !t.partitions().is_empty())
            }))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        if ready {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(Error::Invalid(format!(
        "topics {names:?} did not become ready on the target"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_translate_to_the_first_restored_record_at_or_after() {
        // Restored offsets 3,4,5, 9,10, 12.
        let runs = vec![[3, 3], [9, 2], [12, 1]];
        assert_eq!(index_of(&runs, 0), 0);
        assert_eq!(index_of(&runs, 3), 0);
        assert_eq!(index_of(&runs, 5), 2);
        assert_eq!(index_of(&runs, 6), 3);
        assert_eq!(index_of(&runs, 8), 3);
        assert_eq!(index_of(&runs, 10), 4);
        assert_eq!(index_of(&runs, 13), 6);
        assert_eq!(index_of(&runs, 100), 6);
    }
}
