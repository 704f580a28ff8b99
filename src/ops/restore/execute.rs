//! Executing a restore plan: refuse live groups, save the resume state,
//! handle target partitions that hold records (`--if-not-empty`), create
//! topics and wait until they can take records, produce every selected
//! record (checking every delivery against its expected offset), commit the
//! groups only after every record is confirmed, and on failure say what was
//! left behind.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::inputs::{Inputs, partition_done};
use super::plan::{
    GroupOffsetPlan, IfNotEmpty, Offsets, RestoreOptions, RestorePlan, RestoreResult, SpreadGroup,
    fill_group_targets,
};
use super::state::{ResumeState, stable_ends, state_file};
use crate::error::{Error, Refusal, Result};
use crate::id::Id;
use crate::image::layout::Layout;
use crate::image::reader::for_each_record;
use crate::image::record::Record;
use crate::image::types::TopicPartition;
use crate::kafka::admin::{Cluster, End};
use crate::kafka::partitioner::Router;
use crate::kafka::sink::{Sink, Throttle};
use crate::ops::progress::{Progress, Unit};
use crate::repo::Repository;

/// Runs the plan against the target.
///
/// # Errors
/// See [`super::restore`].
pub(super) async fn execute(
    repo: &Repository,
    cluster: &Cluster,
    snapshot: &Id,
    opts: &RestoreOptions,
    plan: RestorePlan,
    progress: &dyn Progress,
) -> Result<RestoreResult> {
    let RestorePlan {
        mut res,
        m,
        sel_of,
        spread,
        spread_groups,
        to_create,
        log_append,
        targets,
        existing_targets,
        layouts,
        run,
    } = plan;
    let exact = opts.offsets == Offsets::Exact;
    refuse_live_groups(cluster, opts, &res, &spread_groups).await?;

    // Resume state: each target partition's start offset, written before
    // the first record is produced (format-spec §14 "Restore state").
    let state_path = state_file(opts, snapshot)?;
    res.state_file = Some(state_path.display().to_string());
    let mut state = ResumeState::load(&state_path)?;
    if state.completed {
        return Err(Error::Refused(Refusal::RestoreCompleted {
            state: state_path.display().to_string(),
        }));
    }
    if exact {
        refuse_used(cluster, &existing_targets, &state).await?;
    } else {
        handle_non_empty(cluster, opts, &existing_targets, &state, &mut res).await?;
    }

    if !to_create.is_empty() {
        // Remembered before the topics exist: a rerun of a killed restore
        // still switches them.
        state.log_append_time.extend(log_append);
        state.save(&state_path)?;
        cluster.create_topics(&to_create).await?;
        res.created_topics = to_create.iter().map(|t| t.name.clone()).collect();
        let ready: Vec<(String, i32)> = to_create.iter().map(|t| (t.name.clone(), t.partitions)).collect();
        cluster.wait_ready(&ready).await?;
    }
    if let Some(run) = &run {
        super::shard::mark_created(cluster, run, state.log_append_time.keys()).await?;
    }

    let starts = resume_starts(cluster, &targets, &mut state, &mut res).await?;
    state.save(&state_path)?;

    // Produce, checking every delivery; on failure, say what was left.
    let total: u64 = res.partitions.iter().map(|p| p.records).sum();
    progress.start("restoring records", Some(total), Unit::Items);
    progress.inc(res.resumed_records);
    let inputs = Inputs {
        repo,
        m: &m,
        sel_of: &sel_of,
        spread: &spread,
        spread_groups: &spread_groups,
        starts: &starts,
    };
    let flushed = produce_records(
        cluster,
        opts,
        &inputs,
        (&layouts, &state_path),
        &mut res,
        progress,
    )
    .await;
    progress.finish();
    match flushed {
        Ok(n) => res.records_written = n,
        // A refusal comes before this run wrote anything.
        Err(e @ Error::Refused(_)) => return Err(e),
        Err(e) => return Err(left_behind(cluster, e, &targets, &starts, &res, &state_path).await),
    }

    finish(cluster, opts, run.as_ref(), &state, &mut res).await?;
    state.completed = true;
    state.save(&state_path)?;
    Ok(res)
}

/// Once every record is confirmed: the groups (verbatim when the offsets
/// are the source's), and topics created with CreateTime for their
/// original timestamps switched to the source's LogAppendTime; sharded,
/// once every worker's partitions are in.
async fn finish(
    cluster: &Cluster,
    opts: &RestoreOptions,
    run: Option<&super::plan::Run>,
    state: &ResumeState,
    res: &mut RestoreResult,
) -> Result<()> {
    if let Some(run) = run {
        return super::shard::finish(cluster, run, opts.offsets, res).await;
    }
    if opts.offsets == Offsets::Translate {
        fill_group_targets(res);
    }
    super::shard::commit_groups(cluster, &res.groups).await?;
    for (topic, configs) in &state.log_append_time {
        cluster.set_topic_configs(topic, configs).await?;
    }
    Ok(())
}
/// Produces every selected record in the chosen mode, every delivery
/// confirmed: after what the target holds (waiting, on failure, for what
/// was queued), or at the source offsets (`exact`, with the layouts and the
/// transactional id from the state file's name). Returns the records
/// written.
async fn produce_records(
    cluster: &Cluster,
    opts: &RestoreOptions,
    inputs: &Inputs<'_>,
    (layouts, state_path): (&BTreeMap<TopicPartition, Layout>, &std::path::Path),
    res: &mut RestoreResult,
    progress: &dyn Progress,
) -> Result<u64> {
    let throttle = Throttle::new(opts.max_records_per_sec, opts.max_bytes_per_sec);
    let mut sink = Sink::with_throttle(&opts.kafka, throttle)?;
    if opts.offsets == Offsets::Exact {
        let id = format!(
            "kvault-restore-{}",
            state_path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
        );
        return super::exact::produce(cluster, inputs, layouts, (sink, &id), res, progress).await;
    }
    let produced = produce(inputs, &mut sink, res, progress).await;
    // On failure, what was queued still lands (or not) before the report.
    tokio::task::spawn_blocking(move || match produced {
        Ok(()) => sink.flush(),
        Err(e) => {
            let _ = sink.flush_within(Duration::from_secs(30));
            Err(e)
        }
    })
    .await
    .map_err(|e| Error::worker("the producing task", e))?
}

/// Refuses a restore whose groups have live members on the target (unless
/// `--force`): committing under them would move a running consumer.
async fn refuse_live_groups(
    cluster: &Cluster,
    opts: &RestoreOptions,
    res: &RestoreResult,
    spread_groups: &[SpreadGroup],
) -> Result<()> {
    if opts.no_groups || opts.force {
        return Ok(());
    }
    let mut names: Vec<String> = res.groups.iter().map(|g| g.group.clone()).collect();
    names.extend(spread_groups.iter().map(|g| g.group.clone()));
    if let Some((g, n)) = cluster.live_groups(&names).await?.first() {
        return Err(Error::Refused(Refusal::GroupActive {
            group: g.clone(),
            members: *n,
        }));
    }
    Ok(())
}

/// The existing target partitions a killed run of this restore did not
/// write to (its own are in the state file).
fn not_ours(existing_targets: &[TopicPartition], state: &ResumeState) -> Vec<TopicPartition> {
    existing_targets
        .iter()
        .filter(|tp| !state.starts.contains_key(&tp.to_string()))
        .cloned()
        .collect()
}

/// Target partitions that already hold records (a rerun's own records
/// are not counted: they are in the state file), as `--if-not-empty`
/// says: refuse, append, or purge them.
async fn handle_non_empty(
    cluster: &Cluster,
    opts: &RestoreOptions,
    existing_targets: &[TopicPartition],
    state: &ResumeState,
    res: &mut RestoreResult,
) -> Result<()> {
    let fresh = not_ours(existing_targets, state);
    let mut full: Vec<(String, i32, i64)> = Vec::new();
    let mut held = 0i64;
    for (tp, (s, e)) in fresh.iter().zip(cluster.bounds(&fresh).await?) {
        if e > s {
            res.non_empty.push(format!("{tp}: {} records", e - s));
            full.push((tp.topic.clone(), tp.partition, e));
            held += e - s;
        }
    }
    if full.is_empty() {
        return Ok(());
    }
    match opts.if_not_empty {
        IfNotEmpty::Fail => Err(Error::Refused(Refusal::TargetNotEmpty {
            partitions: res.non_empty.clone(),
        })),
        IfNotEmpty::Append => Ok(()),
        IfNotEmpty::Purge => {
            cluster.delete_records(&full).await?;
            res.purged_records = held.max(0) as u64;
            Ok(())
        }
    }
}

/// Refuses an offset-exact restore into partitions that are not new (their
/// end above 0), unless they are this restore's own from a killed run.
async fn refuse_used(
    cluster: &Cluster,
    existing_targets: &[TopicPartition],
    state: &ResumeState,
) -> Result<()> {
    let fresh = not_ours(existing_targets, state);
    let used: Vec<String> = fresh
        .iter()
        .zip(cluster.bounds(&fresh).await?)
        .filter(|(_, (_, e))| *e > 0)
        .map(|(tp, (_, e))| format!("{tp}: end {e}"))
        .collect();
    if used.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(Refusal::TargetUsed { partitions: used }))
}

/// Each target partition's start offset, from the state file (a rerun)
/// or its end now, recorded in the state and the result with what a
/// killed run already landed. Only a rerun can have its own records still
/// landing: then it waits until every end stops moving.
async fn resume_starts(
    cluster: &Cluster,
    targets: &[TopicPartition],
    state: &mut ResumeState,
    res: &mut RestoreResult,
) -> Result<HashMap<TopicPartition, (i64, i64)>> {
    let rerun = targets
        .iter()
        .any(|tp| state.starts.contains_key(&tp.to_string()));
    let ends = stable_ends(cluster, targets, rerun).await?;
    let mut starts: HashMap<TopicPartition, (i64, i64)> = HashMap::new();
    for (tp, end) in targets.iter().zip(ends) {
        let start = *state.starts.entry(tp.to_string()).or_insert(end);
        starts.insert(tp.clone(), (start, (end - start).max(0)));
    }
    for pp in &mut res.partitions {
        if let Some(q) = pp.target_partition {
            let (start, done) = starts
                .get(&TopicPartition::new(pp.target_topic.clone(), q))
                .copied()
                .unwrap_or((0, 0));
            pp.target_start = Some(start);
            res.resumed_records += done.min(pp.records as i64) as u64;
        }
    }
    for s in &mut res.spread {
        let (start, done) = starts
            .get(&TopicPartition::new(s.topic.clone(), s.partition))
            .copied()
            .unwrap_or((0, 0));
        s.target_start = Some(start);
        res.resumed_records += done as u64;
    }
    Ok(starts)
}

/// Topics spread by key: one router and per-target counters each, and per
/// (group, target partition) the index of the first record it had not
/// consumed.
#[derive(Default)]
struct SpreadState {
    routed: HashMap<String, (Router, Vec<i64>)>,
    first_new: HashMap<(usize, i32), i64>,
}

/// Produces every selected record, skipping what a killed run already
/// landed (per target partition, `done` of `starts`).
async fn produce(
    inp: &Inputs<'_>,
    sink: &mut Sink,
    res: &mut RestoreResult,
    progress: &dyn Progress,
) -> Result<()> {
    let mut st = SpreadState::default();
    for pp in &res.partitions {
        match pp.target_partition {
            Some(q) => produce_kept(inp, pp, q, sink, progress).await?,
            None => produce_spread(inp, pp, &mut st, sink, progress).await?,
        }
    }
    spread_results(inp.spread_groups, &st, res);
    Ok(())
}

/// One partition into the same partition number of the target: record i
/// of the selection lands at `start + i`.
async fn produce_kept(
    inp: &Inputs<'_>,
    pp: &super::plan::PartitionPlan,
    q: i32,
    sink: &mut Sink,
    progress: &dyn Progress,
) -> Result<()> {
    let (part, sel, what) = inp.source(pp)?;
    let topic = pp.target_topic.clone();
    let (start, skip) = inp
        .starts
        .get(&TopicPartition::new(topic.clone(), q))
        .copied()
        .unwrap_or((0, 0));
    if skip as u64 >= pp.records {
        return Ok(());
    }
    let (mut i, mut bytes) = (0i64, 0u64);
    let mut f = |o: i64, r: Record| -> Result<()> {
        if !sel.wants(o) {
            return Ok(());
        }
        if i >= skip {
            bytes += kv_len(&r);
            sink.send(&topic, q, &r, start + i)?;
            if (i - skip) % 4096 == 4095 {
                progress.inc(4096);
            }
        }
        i += 1;
        Ok(())
    };
    for_each_record(inp.repo, &what, part, &sel.filter(), &mut f).await?;
    progress.inc(((i - skip).max(0) % 4096) as u64);
    partition_done(progress, &topic, q, (i - skip).max(0) as u64, bytes);
    Ok(())
}

/// One partition spread over the target's partitions by key (the target
/// has fewer): each group's position is the first record it had not
/// consumed, per target partition.
async fn produce_spread(
    inp: &Inputs<'_>,
    pp: &super::plan::PartitionPlan,
    st: &mut SpreadState,
    sink: &mut Sink,
    progress: &dyn Progress,
) -> Result<()> {
    let (part, sel, what) = inp.source(pp)?;
    let topic = pp.target_topic.clone();
    let n = inp.spread.get(&pp.source_topic).copied().unwrap_or(1);
    let (router, counts) = st
        .routed
        .entry(topic.clone())
        .or_insert_with(|| (Router::new(n), vec![0; n.max(1) as usize]));
    let first_new = &mut st.first_new;
    let groups: Vec<(usize, i64)> = inp
        .spread_groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.source_topic == pp.source_topic)
        .filter_map(|(gi, g)| g.committed.get(&pp.partition).map(|c| (gi, c.0)))
        .collect();
    let (mut sent, mut bytes) = (0u64, 0u64);
    let mut f = |o: i64, r: Record| -> Result<()> {
        if !sel.wants(o) {
            return Ok(());
        }
        let q = router.route(r.key.as_deref());
        let Some(i) = counts.get_mut(q as usize) else {
            return Err(Error::bug(format!("{topic}: routed to partition {q}")));
        };
        for (gi, committed) in &groups {
            if o >= *committed {
                first_new.entry((*gi, q)).or_insert(*i);
            }
        }
        let (start, skip) = inp
            .starts
            .get(&TopicPartition::new(topic.clone(), q))
            .copied()
            .unwrap_or((0, 0));
        if *i >= skip {
            bytes += kv_len(&r);
            sink.send(&topic, q, &r, start + *i)?;
            sent += 1;
            if sent % 4096 == 0 {
                progress.inc(4096);
            }
        }
        *i += 1;
        Ok(())
    };
    for_each_record(inp.repo, &what, part, &sel.filter(), &mut f).await?;
    progress.inc(sent % 4096);
    // Spread over the target's partitions: reported under the source
    // partition.
    partition_done(progress, &topic, pp.partition, sent, bytes);
    Ok(())
}

/// Spread topics' records per target partition, and each group's offset
/// at its first record not yet consumed (or the end).
fn spread_results(spread_groups: &[SpreadGroup], st: &SpreadState, res: &mut RestoreResult) {
    let (routed, first_new) = (&st.routed, &st.first_new);
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
}

/// The error of a failed restore, with what it left on the target and how
/// to resume or undo it.
async fn left_behind(
    cluster: &Cluster,
    e: Error,
    targets: &[TopicPartition],
    starts: &HashMap<TopicPartition, (i64, i64)>,
    res: &RestoreResult,
    state_path: &std::path::Path,
) -> Error {
    let ends = tokio::time::timeout(Duration::from_secs(30), cluster.offsets(targets, End::Latest)).await;
    let mut written: Vec<String> = Vec::new();
    let mut total = 0i64;
    if let Ok(Ok(ends)) = ends {
        for (tp, end) in targets.iter().zip(ends) {
            let start = starts.get(tp).map_or(end, |s| s.0);
            if end > start {
                total += end - start;
                written.push(format!("{tp}: {}", end - start));
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
            "{left}; run the same command again to resume (state in {})",
            state_path.display()
        ),
    }
}

/// Key and value bytes of a record.
fn kv_len(r: &Record) -> u64 {
    (r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len)) as u64
}
