//! Transactions in a snapshot: the committed ones among each range read
//! (raw fetches of its batches, `Cluster::transactions`) and when each had
//! committed on all its partitions (the coordinators' CompleteCommit
//! records in `__transaction_state`, [`crate::image::txnlog`]), so that a
//! restore as of any time takes a transaction on every partition or on none.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::image::record::OffsetRuns;
use crate::image::txnlog::{self, Completions, TRANSACTION_STATE};
use crate::image::types::{OpenTxn, TopicPartition, TxnSpan};
use crate::kafka::KafkaOptions;
use crate::kafka::admin::{Cluster, End};
use crate::kafka::source::{self, Handler, ReadJob};
use crate::ops::progress::Progress;

use super::SnapshotResult;
use super::plan::SnapshotPlan;

/// How far before the earliest marker to be dated the coordinators' log is
/// read: a coordinator's clock may lag a partition leader's by this much.
const CLOCK_MARGIN_MS: i64 = 60_000;

/// The committed transactions among each read partition's records (`runs`
/// by plan index, read from topics not in `gone_topics`), dated by
/// `clock`. Only a range with gaps can hold any (every transaction's
/// marker takes an offset the records do not): a range
/// without needs no scan and stays `None`, as does one whose scan failed
/// (no librdkafka shim, no permission: `--at` then cuts that segment by
/// record time, and this warns once).
pub(super) async fn transactions(
    cluster: &Cluster,
    plan: &SnapshotPlan,
    (runs, gone_topics): (&[&OffsetRuns], &BTreeSet<String>),
    clock: &mut TxnClock<'_>,
    progress: &dyn Progress,
    res: &mut SnapshotResult,
) -> Vec<Option<Vec<TxnSpan>>> {
    let mut out = Vec::with_capacity(runs.len());
    let mut failed: Option<String> = None;
    for (pp, runs) in plan.partitions.iter().zip(runs) {
        let gone = gone_topics.contains(&pp.topic);
        if gone || !pp.reads() || runs.gaps(pp.start, pp.end).is_empty() {
            out.push(None);
            continue;
        }
        match cluster.transactions(&pp.key(), pp.start, pp.end).await {
            Ok(spans) => out.push(Some(spans)),
            Err(e) => {
                failed.get_or_insert_with(|| format!("{}: {e}", pp.key()));
                out.push(None);
            }
        }
    }
    if let Some(why) = failed {
        let w = format!(
            "transaction markers not captured ({why}): a point-in-time restore cuts those partitions by \
             record time, which can split a transaction"
        );
        progress.warn(&w);
        res.warnings.push(w);
    }
    clock
        .date(out.iter_mut().flatten().flatten().collect(), progress)
        .await;
    out
}

/// The transactions open at the snapshot's time on each planned partition,
/// by plan index: where the high watermark was above the last stable
/// offset, from a raw fetch of the records in between. A fetch that fails
/// leaves that partition's list empty and warns once.
pub(super) async fn open_transactions(
    cluster: &Cluster,
    plan: &SnapshotPlan,
    progress: &dyn Progress,
    res: &mut SnapshotResult,
) -> Vec<Vec<OpenTxn>> {
    let mut out = Vec::with_capacity(plan.partitions.len());
    let mut failed: Option<String> = None;
    for pp in &plan.partitions {
        if pp.reuse.is_some() || pp.high <= pp.end {
            out.push(Vec::new());
            continue;
        }
        match cluster.open_transactions(&pp.key(), pp.end, pp.high).await {
            Ok(open) => out.push(open),
            Err(e) => {
                failed.get_or_insert_with(|| format!("{}: {e}", pp.key()));
                out.push(Vec::new());
            }
        }
    }
    if let Some(why) = failed {
        let w = format!("open transactions not listed ({why})");
        progress.warn(&w);
        res.warnings.push(w);
    }
    out
}

/// Dates captured transactions by their coordinators' completions, reading
/// `__transaction_state` once (again only for an earlier marker).
pub struct TxnClock<'a> {
    kafka: &'a KafkaOptions,
    cluster: &'a Cluster,
    /// The completions read, and the time the read started from.
    read: Option<(i64, Completions)>,
    /// The warning given when the log could not be read (given once).
    warning: Option<String>,
}

impl<'a> TxnClock<'a> {
    /// A clock that has read nothing yet.
    pub fn new(kafka: &'a KafkaOptions, cluster: &'a Cluster) -> Self {
        TxnClock {
            kafka,
            cluster,
            read: None,
            warning: None,
        }
    }

    /// The warning this clock gave, if any.
    pub fn warning(&self) -> Option<&String> {
        self.warning.as_ref()
    }

    /// Sets each span's commit time (see [`txnlog`]). A log that cannot be
    /// read leaves the spans at their markers' times and warns once.
    pub async fn date(&mut self, mut spans: Vec<&mut TxnSpan>, progress: &dyn Progress) {
        let Some(earliest) = spans.iter().map(|s| s.marker_ts()).min() else {
            return;
        };
        let since = earliest.saturating_sub(CLOCK_MARGIN_MS);
        if self.read.as_ref().is_none_or(|(from, _)| *from > since) {
            if self.warning.is_some() {
                return;
            }
            match completions_since(self.kafka, self.cluster, since).await {
                Ok(c) => self.read = Some((since, c)),
                Err(e) => {
                    let w = format!(
                        "transaction commit times not read from {TRANSACTION_STATE} ({e}): each partition \
                         dates a transaction by its own marker, and a point-in-time restore as of the \
                         milliseconds between one transaction's markers can take it on some partitions only"
                    );
                    progress.warn(&w);
                    self.warning = Some(w);
                    return;
                }
            }
        }
        if let Some((_, c)) = &self.read {
            let n = spans.len();
            let undated = c.date(spans.iter_mut().map(|s| &mut **s));
            log::debug!(
                "{} of {n} transaction run(s) dated by their coordinators' completions",
                n - undated
            );
        }
        self.await_completions(spans).await;
    }

    /// Reads the log again, a few times, while a recent span has no
    /// completion: its markers are written (the span was read), and the
    /// coordinator logs the completion after the last of them, which takes
    /// longer under load. Dating it by its marker instead would put its
    /// commit on another partition at another time.
    async fn await_completions(&mut self, mut spans: Vec<&mut TxnSpan>) {
        let recent = now_ms() - RECENT_MS;
        for attempt in 1..=COMPLETION_READS {
            let Some((since, c)) = &self.read else { return };
            let waiting = spans
                .iter()
                .filter(|s| s.marker_ts() > recent && c.commit_time(s).is_none())
                .count();
            if waiting == 0 {
                return;
            }
            let since = *since;
            log::debug!("{waiting} transaction run(s) await their completion (read {attempt})");
            tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt))).await;
            let Ok(c) = completions_since(self.kafka, self.cluster, since).await else {
                return;
            };
            c.date(spans.iter_mut().map(|s| &mut **s));
            self.read = Some((since, c));
        }
    }
}

/// Markers newer than this (ms before now) have a completion coming.
const RECENT_MS: i64 = 120_000;

/// Reads of the log, after the first, while a recent span has no
/// completion (200, 400, ... ms apart: 3 s in all).
const COMPLETION_READS: u32 = 5;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The commit completions logged in `__transaction_state` at or after
/// `since` (by record time), up to each partition's end.
async fn completions_since(kafka: &KafkaOptions, cluster: &Cluster, since: i64) -> Result<Completions> {
    let (_, topics) = cluster.layout().await?;
    // Only called with committed transactions in hand: the log exists, so
    // not seeing it means not being allowed to.
    let partitions = topics
        .get(TRANSACTION_STATE)
        .copied()
        .ok_or_else(|| Error::Kafka {
            op: format!("describing {TRANSACTION_STATE}"),
            detail: "not in the metadata (no permission to describe it)".into(),
            code: None,
            transient: false,
        })?;
    let parts: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(TRANSACTION_STATE, p))
        .collect();
    let (bounds, from) = tokio::try_join!(cluster.bounds(&parts), cluster.offsets(&parts, End::At(since)))?;
    let jobs: Vec<ReadJob> = parts
        .iter()
        .zip(bounds.iter().zip(&from))
        .map(|(tp, ((start, end), from))| ReadJob {
            tag: tp.partition as u64,
            topic: TRANSACTION_STATE.into(),
            partition: tp.partition,
            start: if *from < 0 {
                *end
            } else {
                (*from).clamp(*start, *end)
            },
            end: *end,
        })
        .filter(|j| j.end > j.start)
        .collect();
    if jobs.is_empty() {
        return Ok(Completions::default());
    }
    let k = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = CompletionCollector::default();
        source::read(&k, jobs, &mut c).map(|_| c.completions)
    })
    .await
    .map_err(|e| Error::worker("reading __transaction_state", e))?
}

/// Collects the completions among `__transaction_state` records.
#[derive(Default)]
struct CompletionCollector {
    completions: Completions,
}

impl Handler for CompletionCollector {
    fn admit(&mut self, _job: &ReadJob) -> bool {
        true
    }

    fn record(&mut self, _tag: u64, _offset: i64, r: &crate::image::record::RecordRef<'_>) -> Result<()> {
        // A record that does not decode (a later Kafka's) dates nothing: the
        // spans it would have dated keep their markers' times.
        if let Some(Ok(Some(c))) = r.key.map(|k| txnlog::decode(k, r.value, r.timestamp)) {
            self.completions.add(c);
        }
        Ok(())
    }

    fn done(&mut self, _tag: u64) -> Result<()> {
        Ok(())
    }

    fn gone(&mut self, _tag: u64) {}
}
