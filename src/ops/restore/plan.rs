//! Planning a restore: the source records of each partition (retention,
//! compaction and `--at` by [`crate::image::select`]), the target's shape
//! (topics to create, partition counts, `--repartition`), and the group
//! offsets to translate. `RestorePlan` holds all of it as a value for
//! `execute`; its serializable half is [`RestoreResult`], which `--dry-run`
//! prints with predicted target offsets.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::error::{Error, Refusal, Result};
use crate::id::Id;
use crate::image::cluster::mechanism_name;
use crate::image::layout::{Layout, layout};
use crate::image::manifest::{self, KAFKA_KIND, Manifest};
use crate::image::select::{SelectOptions, Selection, as_of, select};
use crate::image::types::TopicPartition;
use crate::kafka::KafkaOptions;
use crate::kafka::admin::{Cluster, TopicSpec};
use crate::kafka::filter::NameFilter;
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
            _ => Err(Error::bad_value(
                "non-empty target policy",
                s,
                "fail, append or purge",
            )),
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
    /// Where records land: after the target's, or at their source offsets.
    pub offsets: Offsets,
    /// What to do with the cluster's own state (ACLs, users, quotas,
    /// broker configs): with the records, not at all, or only it.
    pub metadata: Metadata,
    /// Principals of restored ACLs and quota users to rewrite (`FROM=TO`).
    pub acl_principal_map: Vec<(String, String)>,
    /// Passwords of SCRAM users to re-create.
    pub scram_credentials: Vec<ScramPassword>,
    /// A target entry (quota, broker config, SCRAM user) that differs.
    pub if_exists: IfExists,
    /// Restore only this worker's share of the partitions (`--shard K/N`);
    /// groups are committed once every worker's partitions of a group are
    /// in.
    pub shard: Option<crate::ops::snapshot::shard::Share>,
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
    /// With `--offsets exact`: how the partition is written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<ExactPlan>,
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

/// Where restored records land on the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Offsets {
    /// After what the target partition holds, one after the other; group
    /// offsets translated (the default).
    #[default]
    Translate,
    /// At their source offsets, gaps reproduced (format-spec §14
    /// "Offset-exact restore"); group offsets committed verbatim. Every
    /// target partition must be new.
    Exact,
}

impl std::str::FromStr for Offsets {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "translate" => Ok(Offsets::Translate),
            "exact" => Ok(Offsets::Exact),
            _ => Err(Error::bad_value("offsets mode", s, "translate or exact")),
        }
    }
}

/// How an offset-exact restore writes one partition (`--dry-run` shows it).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ExactPlan {
    /// The log start it sets (DeleteRecords after placeholders below it).
    pub log_start: i64,
    /// The end it leaves.
    pub end: i64,
    /// Gaps it reproduces, one transaction each.
    pub transactions: usize,
    /// Placeholder records it writes (below the log start, or aborted).
    pub placeholders: u64,
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
    /// With `--at`: where the group offsets come from (the commit history
    /// up to the time, or the base snapshot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_from: Option<String>,
    /// Topics whose source stamps records with the broker's time
    /// (LogAppendTime): created with CreateTime so the original timestamps
    /// are kept, then switched to LogAppendTime once restored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log_append_time: Vec<String>,
    /// The resume state file.
    pub state_file: Option<String>,
    /// With `--shard K/N`: this worker's part in the whole restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardOutcome>,
    /// The cluster's own state restored (absent with `--no-metadata`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetadataResult>,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// The topic config naming who stamps record timestamps.
pub(super) const TIMESTAMP_TYPE: &str = "message.timestamp.type";

pub(super) fn target_name(opts: &RestoreOptions, source: &str) -> String {
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

/// Per source partition, the records it restores.
pub(super) type Selections = BTreeMap<TopicPartition, Selection>;

/// Source topics whose records are spread by key: source name -> target
/// partition count.
pub(super) type Spread = BTreeMap<String, i32>;

/// One group's committed offsets on a topic restored with `--repartition`.
#[derive(Debug, Clone)]
pub(super) struct SpreadGroup {
    pub(super) group: String,
    pub(super) source_topic: String,
    pub(super) target_topic: String,
    /// Committed source offset per source partition, with its metadata.
    pub(super) committed: HashMap<i32, (i64, String)>,
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
) -> Result<Vec<SpreadGroup>> {
    let mut out: Vec<SpreadGroup> = Vec::new();
    if opts.no_groups {
        return Ok(out);
    }
    let groups = NameFilter::new("group pattern", &opts.groups, &[])?;
    for (g, offs) in m.groups.iter().filter(|(g, _)| groups.matches(g)) {
        for o in offs.iter().filter(|o| topics.iter().any(|t| t.name == o.topic)) {
            let Some(sel) = sel_of.get(&TopicPartition::new(o.topic.clone(), o.partition)) else {
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
    Ok(out)
}

/// One worker's part in a sharded restore, for its result.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ShardOutcome {
    /// This worker.
    pub index: u32,
    /// Workers in all.
    pub count: u32,
    /// Target partitions of the whole restore.
    pub partitions_total: usize,
    /// Of them, confirmed by every worker so far (this one included).
    pub partitions_done: usize,
    /// Groups committed by this worker.
    pub groups_committed: Vec<String>,
    /// Groups still waiting for other workers' partitions.
    pub groups_waiting: Vec<String>,
    /// The coordination group holding the marks.
    pub coordination_group: String,
}

/// The whole of a sharded restore, as each worker sees it.
pub(super) struct Run {
    /// Every target partition.
    pub(super) targets: Vec<TopicPartition>,
    /// Every target topic whose source stamps LogAppendTime, with the
    /// source's configs: the last worker switches those a worker created.
    pub(super) log_append: BTreeMap<String, BTreeMap<String, String>>,
    /// The coordination group.
    pub(super) group: String,
}

/// What a restore does with the cluster state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Metadata {
    /// Restore it, then the records (the default).
    #[default]
    With,
    /// Records only (`--no-metadata`).
    Without,
    /// Only the cluster state (`--metadata-only`).
    Only,
}

/// A target entry that differs from the source's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IfExists {
    /// Report it and leave it (the default).
    #[default]
    Keep,
    /// Replace it with the source's.
    Replace,
}

impl std::str::FromStr for IfExists {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "keep" => Ok(IfExists::Keep),
            "replace" => Ok(IfExists::Replace),
            _ => Err(Error::bad_value("existing-entry policy", s, "keep or replace")),
        }
    }
}

/// A SCRAM user's password for a restore (`USER MECHANISM PASSWORD`).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramPassword {
    /// User name.
    pub user: String,
    /// 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.
    pub mechanism: i8,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for ScramPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ScramPassword({} {})",
            self.user,
            mechanism_name(self.mechanism)
        )
    }
}

/// The cluster-state part of a restore, as planned and as done.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MetadataResult {
    /// The snapshot had a cluster state.
    pub captured: bool,
    /// ACL bindings created (or to create, in a dry run).
    pub acls_created: Vec<String>,
    /// ACL bindings the target already had.
    pub acls_present: usize,
    /// SCRAM users (`user mechanism`) created or replaced.
    pub users_created: Vec<String>,
    /// SCRAM users not re-created, and why.
    pub users_not_created: Vec<String>,
    /// Quota entities set.
    pub quotas_set: Vec<String>,
    /// Broker configs set (`broker key`).
    pub configs_set: Vec<String>,
    /// Target entries that differ from the source's and were kept
    /// (`--if-exists keep`) or replaced.
    pub conflicts: Vec<String>,
    /// What could not be restored (sensitive configs, absent brokers,
    /// kinds the snapshot lacks, refusals).
    pub not_restored: Vec<String>,
}

/// Everything a restore decided before it writes: the plan shown to the
/// user (`res`) and what executing it needs.
pub(super) struct RestorePlan {
    /// The plan (and, once executed, what was done).
    pub(super) res: RestoreResult,
    /// The source log.
    pub(super) m: Manifest,
    /// Per source partition, the records restored.
    pub(super) sel_of: Selections,
    /// Topics spread by key over a different partition count.
    pub(super) spread: Spread,
    /// Group commits on spread topics (translated while producing).
    pub(super) spread_groups: Vec<SpreadGroup>,
    /// Topics to create on the target.
    pub(super) to_create: Vec<TopicSpec>,
    /// Created topics to switch to LogAppendTime afterwards, with their
    /// source configs.
    pub(super) log_append: BTreeMap<String, BTreeMap<String, String>>,
    /// Every target partition written to, in plan order.
    pub(super) targets: Vec<TopicPartition>,
    /// Those of them that exist already.
    pub(super) existing_targets: Vec<TopicPartition>,
    /// With `--offsets exact`: how each source partition is written.
    pub(super) layouts: BTreeMap<TopicPartition, Layout>,
    /// With `--shard`: the whole restore, of which `targets` is this
    /// worker's share.
    pub(super) run: Option<Run>,
}

/// Plans a restore: the source records per partition (retention,
/// compaction, `--at`), the target's shape (topics to create, partition
/// counts, repartitioning) and the group offsets to translate.
///
/// # Errors
/// A non-Kafka snapshot, no selected topic, a target topic with fewer
/// partitions (without `--repartition`), unreadable data.
pub(super) async fn plan(
    repo: &Repository,
    cluster: &Cluster,
    snapshot: &Id,
    opts: &RestoreOptions,
) -> Result<RestorePlan> {
    let snap = repo.load_snapshot(snapshot).await?;
    snap.expect_kind(snapshot, KAFKA_KIND, "a Kafka snapshot")?;
    repo.load_index().await?;
    let mut res = RestoreResult {
        snapshot: Some(*snapshot),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let selected = NameFilter::new("topic pattern", &opts.topics, &[])?;
    let (m, cuts) = source_image(repo, &snap, opts, &selected, &mut res).await?;
    let topics: Vec<_> = m.topics.values().filter(|t| selected.matches(&t.name)).collect();
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
        // An offset-exact restore writes every retained record: the
        // source's own compaction is in its gaps.
        compact: !opts.no_compact && opts.offsets == Offsets::Translate,
    };
    let sel_of = select_partitions(repo, &topics, &cuts, opts, sel_opts, &mut res).await?;

    // The target: which topics exist, with how many partitions.
    let (brokers, existing) = cluster.layout().await?;
    let shape = target_shape(&topics, &existing, brokers, opts, &mut res)?;
    let TargetShape {
        to_create,
        log_append,
        spread,
    } = shape;
    let spread_groups = plan_groups(opts, &m, &topics, &sel_of, &spread, &mut res)?;
    let layouts = match opts.offsets {
        Offsets::Exact => exact_layouts(&m, &sel_of, &spread, &mut res)?,
        Offsets::Translate => BTreeMap::new(),
    };

    // Every target partition written to, in plan order.
    let targets: Vec<TopicPartition> = res
        .partitions
        .iter()
        .filter_map(|p| {
            p.target_partition
                .map(|q| TopicPartition::new(p.target_topic.clone(), q))
        })
        .chain(
            res.spread
                .iter()
                .map(|s| TopicPartition::new(s.topic.clone(), s.partition)),
        )
        .collect();
    let existing_targets: Vec<TopicPartition> = targets
        .iter()
        .filter(|tp| existing.contains_key(&tp.topic))
        .cloned()
        .collect();
    drop(topics);
    Ok(RestorePlan {
        res,
        m,
        sel_of,
        spread,
        spread_groups,
        to_create,
        log_append,
        run: None,
        targets,
        existing_targets,
        layouts,
    })
}

/// Per source partition, how an offset-exact restore writes it (into
/// `res.partitions[..].exact`); group offsets are taken verbatim.
///
/// # Errors
/// A topic spread by key; a gap that cannot be reproduced.
fn exact_layouts(
    m: &Manifest,
    sel_of: &Selections,
    spread: &Spread,
    res: &mut RestoreResult,
) -> Result<BTreeMap<TopicPartition, Layout>> {
    if let Some(topic) = spread.keys().next() {
        return Err(Error::Refused(Refusal::ExactNeedsPartitions {
            topic: topic.clone(),
        }));
    }
    let mut out = BTreeMap::new();
    for pp in &mut res.partitions {
        let tp = TopicPartition::new(pp.source_topic.clone(), pp.partition);
        let (Some(sel), Some(p)) = (
            sel_of.get(&tp),
            m.topics
                .get(&pp.source_topic)
                .and_then(|t| t.partitions.get(&pp.partition)),
        ) else {
            continue;
        };
        let end = sel.cut.unwrap_or(p.meta.end);
        let l = layout(&sel.runs, &sel.erased, sel.start.min(end), end).map_err(|u| {
            Error::Refused(Refusal::GapNotReproducible {
                partition: tp.to_string(),
                offset: u.offset,
            })
        })?;
        pp.exact = Some(ExactPlan {
            log_start: l.log_start,
            end: l.end,
            transactions: l.transactions(),
            placeholders: l.placeholders(),
        });
        out.insert(tp, l);
    }
    for g in &mut res.groups {
        g.target_offset = Some(g.source_offset);
    }
    Ok(out)
}

/// Cut offsets per partition (`--at`), none for the snapshot as it is.
type Cuts = BTreeMap<TopicPartition, Option<i64>>;

/// The image to restore: the snapshot's, or (with `--at`) the log as of
/// that time with its cuts; warnings and where the group positions come
/// from go into `res`.
async fn source_image(
    repo: &Repository,
    snap: &crate::repo::snapshot::Snapshot,
    opts: &RestoreOptions,
    selected: &NameFilter,
    res: &mut RestoreResult,
) -> Result<(Manifest, Cuts)> {
    let Some(t) = opts.at else {
        return Ok((manifest::load(repo, &snap.tree, true).await?, BTreeMap::new()));
    };
    let a = as_of(repo, &snap.source, t).await?;
    res.snapshot = Some(a.base);
    res.warnings.extend(a.warnings);
    for (tp, n, first) in a
        .late_transactions
        .iter()
        .filter(|(tp, ..)| selected.matches(&tp.topic))
    {
        res.warnings.push(format!(
            "{tp}: {n} transaction(s) committed after the requested time are left out, with everything \
             from offset {first} on (they were not visible then)"
        ));
    }
    if !opts.no_groups {
        res.groups_from = Some(a.groups_from.clone());
    }
    for t in a.born.iter().filter(|t| selected.matches(t)) {
        res.warnings.push(format!(
            "{t}: created after snapshot {} and before the requested time; its records up to that \
             time and its settings come from the first later snapshot that holds it",
            a.base.short()
        ));
    }
    Ok((a.manifest, a.cuts))
}

/// The snapshot's (or with `--at`, the base snapshot's) cluster state,
/// for a restore of that alone.
///
/// # Errors
/// A non-Kafka snapshot; unreadable data.
pub(super) async fn source_state(
    repo: &Repository,
    snapshot: &Id,
    opts: &RestoreOptions,
    res: &mut RestoreResult,
) -> Result<Option<crate::image::cluster::ClusterState>> {
    let snap = repo.load_snapshot(snapshot).await?;
    snap.expect_kind(snapshot, KAFKA_KIND, "a Kafka snapshot")?;
    repo.load_index().await?;
    let m = match opts.at {
        None => manifest::load(repo, &snap.tree, false).await?,
        Some(t) => {
            let a = as_of(repo, &snap.source, t).await?;
            res.snapshot = Some(a.base);
            a.manifest
        }
    };
    m.cluster_state(repo).await
}

/// Each selected partition's records (retention, compaction, the cut),
/// planned into `res.partitions`.
async fn select_partitions(
    repo: &Repository,
    topics: &[&manifest::Topic],
    cuts: &Cuts,
    opts: &RestoreOptions,
    sel_opts: SelectOptions,
    res: &mut RestoreResult,
) -> Result<Selections> {
    let mut sel_of: Selections = BTreeMap::new();
    for t in topics {
        for p in t.partitions.values() {
            let tp = TopicPartition::new(t.name.clone(), p.meta.partition);
            let cut = cuts.get(&tp).copied().flatten();
            let what = tp.to_string();
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
                exact: None,
            });
            sel_of.insert(tp, sel);
        }
    }
    Ok(sel_of)
}

/// What the target needs: topics to create (replication capped to its
/// brokers, LogAppendTime created as CreateTime and switched later), and
/// topics spread by key over fewer partitions (`--repartition`).
struct TargetShape {
    to_create: Vec<TopicSpec>,
    log_append: BTreeMap<String, BTreeMap<String, String>>,
    spread: Spread,
}

/// Plans the target's topics against what exists (`existing`: name ->
/// partitions) on `brokers` brokers; spread partitions go into `res`.
///
/// # Errors
/// A target topic with fewer partitions, without `--repartition`.
fn target_shape(
    topics: &[&manifest::Topic],
    existing: &BTreeMap<String, i32>,
    brokers: usize,
    opts: &RestoreOptions,
    res: &mut RestoreResult,
) -> Result<TargetShape> {
    let mut shape = TargetShape {
        to_create: Vec::new(),
        log_append: BTreeMap::new(),
        spread: BTreeMap::new(),
    };
    for t in topics {
        let name = target_name(opts, &t.name);
        let want = t.meta.partitions;
        match existing.get(&name) {
            Some(&have) if have != want && opts.repartition => {
                shape.spread.insert(t.name.clone(), have);
            }
            Some(&have) if have < want => {
                return Err(Error::Refused(Refusal::TooFewPartitions {
                    topic: name,
                    have,
                    need: want,
                }));
            }
            Some(_) => {}
            None => shape
                .to_create
                .push(new_topic(t, name, brokers, &mut shape.log_append, res)),
        }
    }
    for pp in &mut res.partitions {
        if let Some(&n) = shape.spread.get(&pp.source_topic) {
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
    Ok(shape)
}

/// A topic to create like the source's: its partitions, its replication
/// factor capped to the target's brokers, its configs (LogAppendTime as
/// CreateTime until the records are in, remembered in `log_append`).
fn new_topic(
    t: &manifest::Topic,
    name: String,
    brokers: usize,
    log_append: &mut BTreeMap<String, BTreeMap<String, String>>,
    res: &mut RestoreResult,
) -> TopicSpec {
    let rf = t.meta.replication_factor;
    let rf_t = rf.min(brokers as i32).max(1);
    if rf_t < rf {
        res.warnings.push(format!(
            "{name}: replication factor {rf} capped to {rf_t} (the target has {brokers} broker(s))"
        ));
    }
    let mut configs = t.meta.configs.clone();
    if configs.get(TIMESTAMP_TYPE).is_some_and(|v| v == "LogAppendTime") {
        configs.insert(TIMESTAMP_TYPE.into(), "CreateTime".into());
        res.warnings.push(format!(
            "{name}: LogAppendTime in the source; created with CreateTime so every record keeps \
             its original timestamp, and set to LogAppendTime once the records are in"
        ));
        res.log_append_time.push(name.clone());
        log_append.insert(name.clone(), t.meta.configs.clone());
    }
    TopicSpec {
        name,
        partitions: t.meta.partitions,
        replication_factor: rf_t,
        configs,
    }
}

/// A dry run's predictions: existing targets continue at their end, new
/// ones at 0; partitions that hold records are listed.
///
/// # Errors
/// Kafka requests failing.
pub(super) async fn predict(
    cluster: &Cluster,
    opts: &RestoreOptions,
    plan: RestorePlan,
) -> Result<RestoreResult> {
    let RestorePlan {
        mut res,
        to_create,
        existing_targets,
        ..
    } = plan;
    let bounds = cluster.bounds(&existing_targets).await?;
    let ends: HashMap<TopicPartition, (i64, i64)> = existing_targets.into_iter().zip(bounds).collect();
    for (tp, (s, e)) in &ends {
        if e > s {
            res.non_empty.push(format!("{tp}: {} records", e - s));
        }
    }
    res.non_empty.sort();
    if !res.non_empty.is_empty() {
        res.warnings.push(format!(
            "{} target partition(s) hold records; the restore will {}",
            res.non_empty.len(),
            match opts.if_not_empty {
                _ if opts.offsets == Offsets::Exact =>
                    "refuse (an offset-exact restore needs new partitions)",
                IfNotEmpty::Fail => "refuse (--if-not-empty append|purge)",
                IfNotEmpty::Append => "append after them",
                IfNotEmpty::Purge => "delete them first",
            }
        ));
    }
    let predict = |t: &str, p: i32| ends.get(&TopicPartition::new(t, p)).map_or(0, |b| b.1);
    for pp in &mut res.partitions {
        pp.target_start = pp.target_partition.map(|q| predict(&pp.target_topic, q));
    }
    for s in &mut res.spread {
        s.target_start = Some(predict(&s.topic, s.partition));
    }
    match opts.offsets {
        Offsets::Translate => fill_group_targets(&mut res),
        Offsets::Exact => {
            for pp in &mut res.partitions {
                pp.target_start = pp.exact.map(|e| e.log_start);
            }
        }
    }
    res.created_topics = to_create.into_iter().map(|t| t.name).collect();
    Ok(res)
}

/// Target offsets of group commits: each partition's start plus the
/// group's index in the restored log.
pub(super) fn fill_group_targets(res: &mut RestoreResult) {
    let starts: BTreeMap<TopicPartition, i64> = res
        .partitions
        .iter()
        .filter_map(|p| {
            Some((
                TopicPartition::new(p.target_topic.clone(), p.target_partition?),
                p.target_start?,
            ))
        })
        .chain(
            res.spread
                .iter()
                .filter_map(|s| Some((TopicPartition::new(s.topic.clone(), s.partition), s.target_start?))),
        )
        .collect();
    for g in &mut res.groups {
        g.target_offset = starts
            .get(&TopicPartition::new(g.topic.clone(), g.partition))
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
