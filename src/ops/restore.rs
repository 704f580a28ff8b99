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
//! The target: absent topics are created and awaited until every partition
//! has a leader that answers ListOffsets; a target partition that already
//! holds records is refused unless `--if-not-empty append` (continue after
//! them) or `purge` (DeleteRecords to its end first); a target topic with a
//! different partition count is refused unless `--repartition` (records
//! spread by the Java client's key hash, [`crate::kafka::partitioner`]).
//! A failed restore says what it left behind and how to resume or undo it.
//!
//! Retention (as of T) and compaction (latest value per key, tombstones per
//! `delete.retention.ms`) choose the records of each partition:
//! [`super::restore_log`]. A killed restore resumes from its state file
//! ([`super::restore_state`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use super::dump::for_each_record;
use super::manifest::{self, KAFKA_KIND, Manifest};
use super::progress::{Progress, Unit};
use super::restore_log::{SelectOptions, Selection, first_newer, select};
use super::restore_state::{ResumeState, stable_ends, state_file};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::kafka::admin::{Cluster, End, TopicSpec};
use crate::kafka::partitioner::Router;
use crate::kafka::record::Record;
use crate::kafka::sink::{Sink, Throttle};
use crate::kafka::{KafkaOptions, selected};
use crate::repo::Repository;

/// What to do with a target partition that already holds records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IfNotEmpty {
    /// Refuse, before anything is written (the default).
    #[default]
    Fail,
    /// Restore after the records already there.
    Append,
    /// Delete the records already there (DeleteRecords), then restore.
    Purge,
}

impl std::str::FromStr for IfNotEmpty {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fail" => Ok(IfNotEmpty::Fail),
            "append" => Ok(IfNotEmpty::Append),
            "purge" => Ok(IfNotEmpty::Purge),
            _ => Err(Error::Invalid(format!(
                "--if-not-empty {s:?}: expected fail, append or purge"
            ))),
        }
    }
}

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
    /// A target partition that already holds records.
    pub if_not_empty: IfNotEmpty,
    /// Spread records over a target topic's different partition count by
    /// key hash (group offsets become approximate across partitions).
    pub repartition: bool,
    /// Rate cap in records per second.
    pub max_records_per_sec: Option<u64>,
    /// Rate cap in bytes (keys, values, headers) per second.
    pub max_bytes_per_sec: Option<u64>,
}

/// One source partition of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionPlan {
    /// Source topic.
    pub source_topic: String,
    /// Target topic.
    pub target_topic: String,
    /// Source partition number.
    pub partition: i32,
    /// Target partition: the same number, or none when the topic's records
    /// are spread by key (`--repartition`; see `spread`).
    pub target_partition: Option<i32>,
    /// Records to restore.
    pub records: u64,
    /// Source offsets restored, `[first, end)`.
    pub source_range: [i64; 2],
    /// Target offset of the first restored record (known after the restore starts).
    pub target_start: Option<i64>,
    /// Records left out because compaction removes them (compacted topics).
    pub compacted_away: u64,
}

/// A target partition of a topic restored with `--repartition`.
#[derive(Debug, Clone, Serialize)]
pub struct SpreadPartition {
    /// Target topic.
    pub topic: String,
    /// Target partition.
    pub partition: i32,
    /// Its end before the restore.
    pub target_start: Option<i64>,
    /// Records routed to it (known after the restore).
    pub records: u64,
}

/// One group offset, before and after translation.
#[derive(Debug, Clone, Serialize)]
pub struct GroupOffsetPlan {
    /// Group id.
    pub group: String,
    /// Target topic.
    pub topic: String,
    /// Target partition.
    pub partition: i32,
    /// Committed offset in the source (-1 for a repartitioned topic, whose
    /// target partitions mix source partitions).
    pub source_offset: i64,
    /// Restored records before it (its index in the restored log).
    pub index: u64,
    /// Offset committed on the target (`target_start + index`).
    pub target_offset: Option<i64>,
    /// Commit metadata.
    pub metadata: String,
    /// Translated across partitions (`--repartition`): the first record
    /// of the target partition the group had not consumed; records after
    /// it that the group had consumed are delivered again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub approximate: bool,
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
    /// Target partitions of topics spread by key (`--repartition`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<SpreadPartition>,
    /// Group offsets.
    pub groups: Vec<GroupOffsetPlan>,
    /// Records written (confirmed by delivery reports).
    pub records_written: u64,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Records found already restored by an interrupted run and skipped.
    pub resumed_records: u64,
    /// Target partitions that held records before the restore
    /// (`topic/partition: records`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub non_empty: Vec<String>,
    /// Records deleted from target partitions by `--if-not-empty purge`.
    pub purged_records: u64,
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
    super::with_lock(repo, false, || {
        restore_locked(repo, &cluster, snapshot, opts, progress)
    })
    .await
}

/// Per source partition, the records it restores.
type Selections = BTreeMap<(String, i32), Selection>;

/// Source topics whose records are spread by key: source name -> target
/// partition count.
type Spread = BTreeMap<String, i32>;

async fn restore_locked(
    repo: &Repository,
    cluster: &Cluster,
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
    let mut sel_of: Selections = BTreeMap::new();
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
                target_partition: Some(p.meta.partition),
                records: sel.records(),
                source_range: [first, cut.unwrap_or(p.meta.end)],
                target_start: None,
                compacted_away: sel.compacted_away,
            });
            sel_of.insert((t.name.clone(), p.meta.partition), sel);
        }
    }

    // The target: which topics exist, with how many partitions.
    let (brokers, existing) = cluster.layout().await?;
    let mut to_create = Vec::new();
    let mut spread: Spread = BTreeMap::new();
    for t in &topics {
        let name = target_name(opts, &t.name);
        let want = t.meta.partitions;
        match existing.get(&name) {
            Some(&have) if have != want && opts.repartition => {
                spread.insert(t.name.clone(), have);
            }
            Some(&have) if have < want => {
                return Err(Error::Invalid(format!(
                    "target topic {name} has {have} partitions; the snapshot needs {want} \
                     (--repartition spreads the records over {have} by key)"
                )));
            }
            Some(_) => {}
            None => {
                let rf = t.meta.replication_factor;
                let rf_t = rf.min(brokers as i32).max(1);
                if rf_t < rf {
                    res.warnings.push(format!(
                        "{name}: replication factor {rf} capped to {rf_t} (the target has {brokers} broker(s))"
                    ));
                }
                to_create.push(TopicSpec {
                    name,
                    partitions: want,
                    replication_factor: rf_t,
                    configs: t.meta.configs.clone(),
                });
            }
        }
    }
    for pp in &mut res.partitions {
        if let Some(&n) = spread.get(&pp.source_topic) {
            pp.target_partition = None;
            if !res.spread.iter().any(|s| s.topic == pp.target_topic) {
                res.spread.extend((0..n).map(|q| SpreadPartition {
                    topic: pp.target_topic.clone(),
                    partition: q,
                    target_start: None,
                    records: 0,
                }));
            }
        }
    }
    let spread_groups = plan_groups(opts, &m, &topics, &sel_of, &spread, &mut res);

    // Every target partition written to, in plan order.
    let targets: Vec<(String, i32)> = res
        .partitions
        .iter()
        .filter_map(|p| p.target_partition.map(|q| (p.target_topic.clone(), q)))
        .chain(res.spread.iter().map(|s| (s.topic.clone(), s.partition)))
        .collect();
    let existing_targets: Vec<(String, i32)> = targets
        .iter()
        .filter(|(t, _)| existing.contains_key(t))
        .cloned()
        .collect();

    if opts.dry_run {
        // Predict: existing targets continue at their end, new ones at 0.
        let bounds = cluster.bounds(&existing_targets).await?;
        let ends: HashMap<(String, i32), (i64, i64)> = existing_targets.into_iter().zip(bounds).collect();
        for ((t, p), (s, e)) in &ends {
            if e > s {
                res.non_empty.push(format!("{t}/{p}: {} records", e - s));
            }
        }
        res.non_empty.sort();
        if !res.non_empty.is_empty() {
            res.warnings.push(format!(
                "{} target partition(s) hold records; the restore will {}",
                res.non_empty.len(),
                match opts.if_not_empty {
                    IfNotEmpty::Fail => "refuse (--if-not-empty append|purge)",
                    IfNotEmpty::Append => "append after them",
                    IfNotEmpty::Purge => "delete them first",
                }
            ));
        }
        let predict = |t: &str, p: i32| ends.get(&(t.to_string(), p)).map_or(0, |b| b.1);
        for pp in &mut res.partitions {
            pp.target_start = pp.target_partition.map(|q| predict(&pp.target_topic, q));
        }
        for s in &mut res.spread {
            s.target_start = Some(predict(&s.topic, s.partition));
        }
        fill_group_targets(&mut res);
        res.created_topics = to_create.into_iter().map(|t| t.name).collect();
        return Ok(res);
    }

    // Groups must not be live on the target.
    if !opts.no_groups && !opts.force {
        let mut names: Vec<String> = res.groups.iter().map(|g| g.group.clone()).collect();
        names.extend(spread_groups.iter().map(|g| g.group.clone()));
        if let Some((g, n)) = cluster.live_groups(&names).await?.first() {
            return Err(Error::Invalid(format!(
                "group {g} has {n} active member(s) on the target; stop its consumers or use --force"
            )));
        }
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
    let in_state = |t: &str, p: i32| state.starts.contains_key(&format!("{t}/{p}"));

    // Target partitions that already hold records (a rerun's own records
    // are not counted: they are in the state file).
    let fresh: Vec<(String, i32)> = existing_targets
        .iter()
        .filter(|(t, p)| !in_state(t, *p))
        .cloned()
        .collect();
    let mut full: Vec<(String, i32, i64)> = Vec::new();
    let mut held = 0i64;
    for ((t, p), (s, e)) in fresh.iter().zip(cluster.bounds(&fresh).await?) {
        if e > s {
            res.non_empty.push(format!("{t}/{p}: {} records", e - s));
            full.push((t.clone(), *p, e));
            held += e - s;
        }
    }
    if !full.is_empty() {
        match opts.if_not_empty {
            IfNotEmpty::Fail => {
                let shown: Vec<&str> = res.non_empty.iter().take(5).map(String::as_str).collect();
                return Err(Error::Invalid(format!(
                    "{} target partition(s) already hold records ({}{}); nothing was written: \
                     restore into new topics (--prefix, --rename), or use --if-not-empty append or purge",
                    full.len(),
                    shown.join(", "),
                    if full.len() > 5 { ", …" } else { "" }
                )));
            }
            IfNotEmpty::Append => {}
            IfNotEmpty::Purge => {
                cluster.delete_records(&full).await?;
                res.purged_records = held.max(0) as u64;
            }
        }
    }

    if !to_create.is_empty() {
        cluster.create_topics(&to_create).await?;
        res.created_topics = to_create.iter().map(|t| t.name.clone()).collect();
        let ready: Vec<(String, i32)> = to_create.iter().map(|t| (t.name.clone(), t.partitions)).collect();
        cluster.wait_ready(&ready).await?;
    }

    // Only a rerun can have its own records still landing: then wait until
    // every end stops moving (one pause for all partitions).
    let rerun = targets.iter().any(|(t, p)| in_state(t, *p));
    let ends = stable_ends(cluster, &targets, rerun).await?;
    let mut starts: HashMap<(String, i32), (i64, i64)> = HashMap::new();
    for ((t, p), end) in targets.iter().zip(ends) {
        let start = *state.starts.entry(format!("{t}/{p}")).or_insert(end);
        starts.insert((t.clone(), *p), (start, (end - start).max(0)));
    }
    for pp in &mut res.partitions {
        if let Some(q) = pp.target_partition {
            let (start, done) = starts
                .get(&(pp.target_topic.clone(), q))
                .copied()
                .unwrap_or((0, 0));
            pp.target_start = Some(start);
            res.resumed_records += done.min(pp.records as i64) as u64;
        }
    }
    for s in &mut res.spread {
        let (start, done) = starts
            .get(&(s.topic.clone(), s.partition))
            .copied()
            .unwrap_or((0, 0));
        s.target_start = Some(start);
        res.resumed_records += done as u64;
    }
    state.save(&state_path)?;

    // Produce, checking every delivery; on failure, say what was left.
    let total: u64 = res.partitions.iter().map(|p| p.records).sum();
    progress.start("restoring records", Some(total), Unit::Items);
    progress.inc(res.resumed_records);
    let throttle = Throttle::new(opts.max_records_per_sec, opts.max_bytes_per_sec);
    let mut sink = Sink::with_throttle(&opts.kafka, throttle)?;
    let produced = produce(
        repo,
        &m,
        &sel_of,
        &spread,
        &spread_groups,
        &starts,
        &mut sink,
        &mut res,
        progress,
    )
    .await;
    // On failure, what was queued still lands (or not) before the report.
    let flushed = tokio::task::spawn_blocking(move || match produced {
        Ok(()) => sink.flush(),
        Err(e) => {
            let _ = sink.flush_within(Duration::from_secs(30));
            Err(e)
        }
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    progress.finish();
    match flushed {
        Ok(n) => res.records_written = n,
        Err(e) => return Err(left_behind(cluster, e, &targets, &starts, &res, &state_path).await),
    }

    // Groups, only after every record is confirmed.
    fill_group_targets(&mut res);
    let mut by_group: BTreeMap<String, Vec<(String, i32, i64, String)>> = BTreeMap::new();
    for g in &res.groups {
        let t = g
            .target_offset
            .ok_or_else(|| Error::Internal(format!("no target offset for {}/{}", g.topic, g.partition)))?;
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
    state.completed = true;
    state.save(&state_path)?;
    Ok(res)
}

/// One group's committed offsets on a topic restored with `--repartition`.
#[derive(Debug, Clone)]
struct SpreadGroup {
    group: String,
    source_topic: String,
    target_topic: String,
    /// Committed source offset per source partition, with its metadata.
    committed: HashMap<i32, (i64, String)>,
}

/// Group offsets: exact translations for partitions restored to the same
/// number (into `res.groups`), and the commits of repartitioned topics,
/// translated while their records are produced.
fn plan_groups(
    opts: &RestoreOptions,
    m: &Manifest,
    topics: &[&manifest::Topic],
    sel_of: &Selections,
    spread: &Spread,
    res: &mut RestoreResult,
) -> Vec<SpreadGroup> {
    let mut out: Vec<SpreadGroup> = Vec::new();
    if opts.no_groups {
        return out;
    }
    for (g, offs) in m.groups.iter().filter(|(g, _)| selected(g, &opts.groups, &[])) {
        for o in offs.iter().filter(|o| topics.iter().any(|t| t.name == o.topic)) {
            let Some(sel) = sel_of.get(&(o.topic.clone(), o.partition)) else {
                continue;
            };
            if spread.contains_key(&o.topic) {
                let pos = out
                    .iter()
                    .position(|s| &s.group == g && s.source_topic == o.topic);
                let sg = match pos.and_then(|i| out.get_mut(i)) {
                    Some(sg) => sg,
                    None => {
                        out.push(SpreadGroup {
                            group: g.clone(),
                            source_topic: o.topic.clone(),
                            target_topic: target_name(opts, &o.topic),
                            committed: HashMap::new(),
                        });
                        let Some(sg) = out.last_mut() else { continue };
                        sg
                    }
                };
                sg.committed.insert(o.partition, (o.offset, o.metadata.clone()));
                continue;
            }
            res.groups.push(GroupOffsetPlan {
                group: g.clone(),
                topic: target_name(opts, &o.topic),
                partition: o.partition,
                source_offset: o.offset,
                index: index_of(&sel.runs, o.offset),
                target_offset: None,
                metadata: o.metadata.clone(),
                approximate: false,
            });
        }
    }
    out
}

/// Produces every selected record, skipping what a killed run already
/// landed (per target partition, `done` of `starts`).
#[allow(clippy::too_many_arguments)]
async fn produce(
    repo: &Repository,
    m: &Manifest,
    sel_of: &Selections,
    spread: &Spread,
    spread_groups: &[SpreadGroup],
    starts: &HashMap<(String, i32), (i64, i64)>,
    sink: &mut Sink,
    res: &mut RestoreResult,
    progress: &dyn Progress,
) -> Result<()> {
    // Topics spread by key: one router and per-target counters each.
    let mut routed: HashMap<String, (Router, Vec<i64>)> = HashMap::new();
    // (group, target partition) -> index of the first record it had not consumed.
    let mut first_new: HashMap<(usize, i32), i64> = HashMap::new();
    for pp in &res.partitions {
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
        let topic = pp.target_topic.clone();
        match pp.target_partition {
            Some(q) => {
                let (start, skip) = starts.get(&(topic.clone(), q)).copied().unwrap_or((0, 0));
                if skip as u64 >= pp.records {
                    continue;
                }
                let mut i = 0i64;
                let mut f = |o: i64, r: Record| -> Result<()> {
                    if !sel.wants(o) {
                        return Ok(());
                    }
                    if i >= skip {
                        sink.send(&topic, q, &r, start + i)?;
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
            None => {
                let n = spread.get(&pp.source_topic).copied().unwrap_or(1);
                let (router, counts) = routed
                    .entry(topic.clone())
                    .or_insert_with(|| (Router::new(n), vec![0; n.max(1) as usize]));
                let groups: Vec<(usize, i64)> = spread_groups
                    .iter()
                    .enumerate()
                    .filter(|(_, g)| g.source_topic == pp.source_topic)
                    .filter_map(|(gi, g)| g.committed.get(&pp.partition).map(|c| (gi, c.0)))
                    .collect();
                let mut sent = 0u64;
                let mut f = |o: i64, r: Record| -> Result<()> {
                    if !sel.wants(o) {
                        return Ok(());
                    }
                    let q = router.route(r.key.as_deref());
                    let Some(i) = counts.get_mut(q as usize) else {
                        return Err(Error::Internal(format!("{topic}: routed to partition {q}")));
                    };
                    for (gi, committed) in &groups {
                        if o >= *committed {
                            first_new.entry((*gi, q)).or_insert(*i);
                        }
                    }
                    let (start, skip) = starts.get(&(topic.clone(), q)).copied().unwrap_or((0, 0));
                    if *i >= skip {
                        sink.send(&topic, q, &r, start + *i)?;
                        sent += 1;
                        if sent % 4096 == 0 {
                            progress.inc(4096);
                        }
                    }
                    *i += 1;
                    Ok(())
                };
                for_each_record(repo, &what, part, &filter, &mut f).await?;
                progress.inc(sent % 4096);
            }
        }
    }
    // Spread topics: records per target partition, and each group's offset
    // at its first record not yet consumed (or the end).
    for s in &mut res.spread {
        if let Some((_, counts)) = routed.get(&s.topic) {
            s.records = counts.get(s.partition as usize).copied().unwrap_or(0).max(0) as u64;
        }
    }
    for (gi, g) in spread_groups.iter().enumerate() {
        for s in res.spread.iter().filter(|s| s.topic == g.target_topic) {
            let index = first_new
                .get(&(gi, s.partition))
                .copied()
                .unwrap_or(s.records as i64);
            let metadata = g
                .committed
                .get(&s.partition)
                .map(|c| c.1.clone())
                .unwrap_or_default();
            res.groups.push(GroupOffsetPlan {
                group: g.group.clone(),
                topic: s.topic.clone(),
                partition: s.partition,
                source_offset: -1,
                index: index.max(0) as u64,
                target_offset: None,
                metadata,
                approximate: true,
            });
        }
    }
    Ok(())
}

/// The error of a failed restore, with what it left on the target and how
/// to resume or undo it.
async fn left_behind(
    cluster: &Cluster,
    e: Error,
    targets: &[(String, i32)],
    starts: &HashMap<(String, i32), (i64, i64)>,
    res: &RestoreResult,
    state_path: &std::path::Path,
) -> Error {
    let ends = tokio::time::timeout(Duration::from_secs(30), cluster.offsets(targets, End::Latest)).await;
    let mut written: Vec<String> = Vec::new();
    let mut total = 0i64;
    if let Ok(Ok(ends)) = ends {
        for ((t, p), end) in targets.iter().zip(ends) {
            let start = starts.get(&(t.clone(), *p)).map_or(end, |s| s.0);
            if end > start {
                total += end - start;
                written.push(format!("{t}/{p}: {}", end - start));
            }
        }
    }
    let mut left = if written.is_empty() {
        "no restored records reached the target".to_string()
    } else {
        let more = if written.len() > 8 { ", …" } else { "" };
        written.truncate(8);
        format!(
            "the target holds {total} restored record(s) ({}{more})",
            written.join(", ")
        )
    };
    if !res.created_topics.is_empty() {
        left.push_str(&format!(
            " in topics kvault created ({})",
            res.created_topics.join(", ")
        ));
    }
    Error::RestoreFailed {
        error: Box::new(e),
        left_behind: format!(
            "{left}; run the same command again to resume (state in {}), or undo with --if-not-empty purge or by deleting the topics",
            state_path.display()
        ),
    }
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

fn fill_group_targets(res: &mut RestoreResult) {
    let starts: BTreeMap<(String, i32), i64> = res
        .partitions
        .iter()
        .filter_map(|p| Some(((p.target_topic.clone(), p.target_partition?), p.target_start?)))
        .chain(
            res.spread
                .iter()
                .filter_map(|s| Some(((s.topic.clone(), s.partition), s.target_start?))),
        )
        .collect();
    for g in &mut res.groups {
        g.target_offset = starts
            .get(&(g.topic.clone(), g.partition))
            .map(|s| s + g.index as i64);
    }
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

    #[test]
    fn if_not_empty_parses() {
        assert_eq!("purge".parse::<IfNotEmpty>().unwrap(), IfNotEmpty::Purge);
        assert!("maybe".parse::<IfNotEmpty>().is_err());
    }
}
