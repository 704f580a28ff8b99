//! What producing a restore's partitions reads ([`Inputs`]), and how a
//! restored partition is reported; shared by both ways of producing
//! (`execute`, after the target's records; `exact`, at the source offsets).

use std::collections::HashMap;

use super::plan::{Selections, Spread, SpreadGroup};
use crate::error::{Error, Result};
use crate::image::manifest::{Manifest, Partition};
use crate::image::types::TopicPartition;
use crate::ops::progress::{Event as ProgressEvent, Progress};
use crate::repo::Repository;

/// What producing every partition reads.
pub(super) struct Inputs<'a> {
    pub(super) repo: &'a Repository,
    pub(super) m: &'a Manifest,
    pub(super) sel_of: &'a Selections,
    pub(super) spread: &'a Spread,
    pub(super) spread_groups: &'a [SpreadGroup],
    /// Per target partition: `(start offset, records a killed run landed)`.
    pub(super) starts: &'a HashMap<TopicPartition, (i64, i64)>,
}

impl Inputs<'_> {
    /// The source partition of a planned one, its selection and its name.
    pub(super) fn source(
        &self,
        pp: &super::plan::PartitionPlan,
    ) -> Result<(&Partition, &crate::image::select::Selection, String)> {
        source_of(self.m, self.sel_of, pp)
    }
}

/// The source partition of a planned one in `m`, its selection and its
/// name (`topic/partition`).
///
/// # Errors
/// A plan naming a partition the manifest or the selections lack (a bug).
pub(super) fn source_of<'a>(
    m: &'a Manifest,
    sel_of: &'a Selections,
    pp: &super::plan::PartitionPlan,
) -> Result<(&'a Partition, &'a crate::image::select::Selection, String)> {
    let what = format!("{}/{}", pp.source_topic, pp.partition);
    let part = m
        .topics
        .get(&pp.source_topic)
        .and_then(|t| t.partitions.get(&pp.partition))
        .ok_or_else(|| Error::bug(format!("plan names {what} not in the manifest")))?;
    let sel = sel_of
        .get(&TopicPartition::new(pp.source_topic.clone(), pp.partition))
        .ok_or_else(|| Error::bug(format!("no selection for {what}")))?;
    Ok((part, sel, what))
}

/// Reports a restored partition as typed events.
pub(super) fn partition_done(progress: &dyn Progress, topic: &str, partition: i32, records: u64, bytes: u64) {
    progress.event(&ProgressEvent::Records { records, bytes });
    progress.event(&ProgressEvent::PartitionDone {
        topic,
        partition,
        bytes,
    });
}
