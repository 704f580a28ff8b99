//! Producing an offset-exact restore (`--offsets exact`): each partition
//! written by its [`Layout`] with [`ExactWriter`], from where a killed run
//! left it (the target's end is where a step of the layout ends), then the
//! log starts moved by DeleteRecords.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::inputs::{Inputs, partition_done};
use super::plan::RestoreResult;
use crate::error::{Error, Refusal, Result};
use crate::image::layout::{Layout, Step};
use crate::image::reader::for_each_record;
use crate::image::record::Record;
use crate::image::types::TopicPartition;
use crate::kafka::admin::{Cluster, End};
use crate::kafka::batches::Marker;
use crate::kafka::exact::ExactWriter;
use crate::kafka::sink::Sink;
use crate::ops::progress::Progress;

/// Writes every planned partition at its source offsets; returns the
/// records written by this run.
///
/// # Errors
/// A target partition a killed run left where no step ends; the
/// producers' and the target's errors.
pub(super) async fn produce(
    cluster: &Cluster,
    inp: &Inputs<'_>,
    layouts: &BTreeMap<TopicPartition, Layout>,
    (sink, id): (Sink, &str),
    res: &mut RestoreResult,
    progress: &dyn Progress,
) -> Result<u64> {
    let opts = cluster.options().clone();
    let id = id.to_string();
    let mut w = tokio::task::spawn_blocking(move || ExactWriter::new(&opts, sink, &id))
        .await
        .map_err(|e| Error::worker("starting the restore's producers", e))??;
    // Starting the transactional producer aborted what a killed run left
    // open: wait until no target has an open transaction.
    let targets: Vec<TopicPartition> = res
        .partitions
        .iter()
        .filter_map(|p| Some(TopicPartition::new(p.target_topic.clone(), p.target_partition?)))
        .collect();
    let ends = settled_ends(cluster, &targets).await?;
    // Every partition's steps before any is written: a refusal writes
    // nothing.
    let mut todo = Vec::with_capacity(targets.len());
    for (pp, target) in res.partitions.iter().zip(&targets) {
        let source = TopicPartition::new(pp.source_topic.clone(), pp.partition);
        let Some(l) = layouts.get(&source) else { continue };
        let end = ends.get(target).copied().unwrap_or(0);
        todo.push((pp, target, end, resumable(cluster, target, l, end).await?));
    }
    let mut written = 0u64;
    for (pp, target, end, steps) in todo {
        let (part, sel, what) = inp.source(pp)?;
        let mut wp = w.partition(&target.topic, target.partition, steps);
        let (mut n, mut bytes) = (0u64, 0u64);
        let mut f = |o: i64, r: Record| -> Result<()> {
            if o < end || !sel.wants(o) {
                return Ok(());
            }
            wp.record(o, &r)?;
            n += 1;
            bytes += (r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len)) as u64;
            if n % 4096 == 0 {
                progress.inc(4096);
            }
            Ok(())
        };
        for_each_record(inp.repo, &what, part, &sel.filter(), &mut f).await?;
        wp.finish()?;
        progress.inc(n % 4096);
        partition_done(progress, &target.topic, target.partition, n, bytes);
        written += n;
    }
    res.resumed_records = res
        .partitions
        .iter()
        .map(|p| p.records)
        .sum::<u64>()
        .saturating_sub(written);
    w.flush()?;
    let below: Vec<(String, i32, i64)> = res
        .partitions
        .iter()
        .zip(&targets)
        .filter_map(|(pp, t)| {
            let l = layouts.get(&TopicPartition::new(pp.source_topic.clone(), pp.partition))?;
            (l.log_start > 0).then(|| (t.topic.clone(), t.partition, l.log_start))
        })
        .collect();
    cluster.delete_records(&below).await?;
    Ok(written)
}

/// The steps left for a target partition that ends at `end`: a rerun goes
/// on after the step that ends there, unless no step does (a killed run's
/// open transaction, aborted by this run's start, took offsets) or that
/// step's record should have committed and was aborted.
async fn resumable(
    cluster: &Cluster,
    target: &TopicPartition,
    l: &Layout,
    end: i64,
) -> Result<VecDeque<Step>> {
    let refused = || {
        Error::Refused(Refusal::NotExactlyResumable {
            partition: target.to_string(),
            end,
        })
    };
    let steps = l.after(end).ok_or_else(refused)?;
    if let Some(Step::Commit { offset, .. }) = l.step_ending_at(end) {
        let got = cluster.batches(target, offset + 1, 1 << 16).await?;
        let marker = got
            .batches
            .iter()
            .find(|b| b.base_offset == offset + 1)
            .and_then(|b| b.control);
        if marker != Some(Marker::Commit) {
            return Err(refused());
        }
    }
    Ok(steps)
}

/// Each target's end once none has an open transaction (its high watermark
/// equals its last stable offset).
async fn settled_ends(
    cluster: &Cluster,
    targets: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, i64>> {
    let deadline = Instant::now() + cluster.options().retry_timeout();
    loop {
        let (high, stable) = tokio::try_join!(
            cluster.offsets(targets, End::High),
            cluster.offsets(targets, End::Latest)
        )?;
        if high == stable || Instant::now() > deadline {
            return Ok(targets.iter().cloned().zip(high).collect());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
