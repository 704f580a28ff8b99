//! `verify`: does a cluster hold what a restore of a snapshot writes?
//!
//! The restore is planned as `restore` plans it (nothing is written), then
//! each partition is digested twice, streaming: the records the restore
//! writes, read from the repository, and the target partition, read
//! assign-only and read_committed with the snapshot reader. A record's
//! encoding covers its timestamp, key, value and headers (and, with
//! `--offsets exact`, its offset); each block of [`BLOCK`] records is
//! hashed over its records' encodings in order, and a partition's digest
//! over its block digests, so a partition that differs is read again in
//! its first differing block only, to name the first differing offset and
//! what differs. Group offsets are compared
//! with the restore's translation (target log start + the group's index in
//! the restored log; verbatim with exact offsets). Memory: 32 bytes per
//! block per partition, up to 8 KiB of encodings per partition being
//! read, and one block when a partition differs.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::plan::{
    GroupOffsetPlan, Metadata, Offsets, PartitionPlan, RestoreOptions, RestorePlan, fill_group_targets,
};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::image::reader::{RecordFilter, for_each_record, for_each_record_ref};
use crate::image::record::{Record, RecordRef};
use crate::image::types::TopicPartition;
use crate::kafka::admin::Cluster;
use crate::kafka::source::{Handler, ReadJob, read};
use crate::ops::progress::Progress;
use crate::repo::Repository;

/// Records per block digest.
pub const BLOCK: u64 = 4096;

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The restore whose result is checked (its target cluster, `--at`,
    /// topics, renames, offsets mode).
    pub restore: RestoreOptions,
    /// Records after the restored ones on the target are not a difference.
    pub allow_newer: bool,
}

/// How a partition differs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// The target lacks records from here on.
    Missing,
    /// The target holds records the restore does not write, from here on.
    Extra,
    /// The record here differs.
    Changed,
}

/// The first difference of a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Offset on the target (where the record is, or would be).
    pub offset: i64,
    /// What differs.
    pub kind: DiffKind,
    /// For a changed record: which of `timestamp`, `key`, `value`,
    /// `headers`, `offset` differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<&'static str>,
}

/// One partition verified.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionCheck {
    /// Source `topic/partition`.
    pub source: String,
    /// Target `topic/partition`.
    pub target: String,
    /// Records a restore writes.
    pub expected: u64,
    /// Records the target holds (from its log start).
    pub found: u64,
    /// Digest of the expected records.
    pub digest: String,
    /// Digest of the target's first `expected` records (all of them
    /// without `allow_newer`).
    pub target_digest: String,
    /// Whether they match.
    pub equal: bool,
    /// The first difference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difference: Option<Difference>,
}

/// One group offset verified.
#[derive(Debug, Clone, Serialize)]
pub struct GroupCheck {
    /// Group.
    pub group: String,
    /// Target `topic/partition`.
    pub partition: String,
    /// The offset a restore commits.
    pub expected: Option<i64>,
    /// The offset committed on the target.
    pub found: Option<i64>,
    /// Whether they match.
    pub equal: bool,
}

/// One restored topic's shape and configs verified.
#[derive(Debug, Clone, Serialize)]
pub struct TopicCheck {
    /// Target topic.
    pub topic: String,
    /// Its partitions: the snapshot's, and the target's (`None`: absent).
    pub partitions: (i32, Option<i32>),
    /// Configs the snapshot's topic sets that the target's lacks or sets
    /// otherwise: `key: snapshot VALUE, target VALUE`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs_differing: Vec<String>,
    /// Whether they match.
    pub equal: bool,
}

pub use super::metadata::ClusterCheck;

/// What `verify` found: the evidence report (`--report`).
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The snapshot (with `--at`, the one the time resolved to).
    pub snapshot: Option<Id>,
    /// Its time.
    pub snapshot_time: String,
    /// `--at`, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The verified cluster's id.
    pub cluster_id: String,
    /// When the verification started (RFC 3339).
    pub verified_at: String,
    /// How long it took.
    pub verify_ms: u64,
    /// The age of the data at the restored time (`--at`, else the
    /// verification's start): how much a restore of this snapshot loses.
    pub rpo_ms: u64,
    /// A drill's restore time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_ms: Option<u64>,
    /// A drill's restore and verification time: the recovery time it shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rto_ms: Option<u64>,
    /// Records verified.
    pub records: u64,
    /// Offsets mode compared.
    pub offsets: Offsets,
    /// Per partition.
    pub partitions: Vec<PartitionCheck>,
    /// Per group offset.
    pub groups: Vec<GroupCheck>,
    /// Per topic: partition count and configs.
    pub topics: Vec<TopicCheck>,
    /// The cluster's own state, when the snapshot has one and it is
    /// compared (not `--no-metadata`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_state: Option<ClusterCheck>,
    /// Whether everything matched.
    pub equal: bool,
    /// Warnings of the plan.
    pub warnings: Vec<String>,
}

/// Running digests of one partition's records: each block's BLAKE3 over
/// its records' encodings ([`encode_record`]), fed in slices of
/// [`FEED`] bytes (BLAKE3 hashes a long input on every SIMD lane at once,
/// a short one on one), and the whole partition's BLAKE3 over its block
/// digests in order.
#[derive(Debug, Clone, Default)]
struct Digests {
    count: u64,
    whole: blake3::Hasher,
    block: blake3::Hasher,
    /// Encodings not yet fed to `block`.
    buf: Vec<u8>,
    blocks: Vec<[u8; 32]>,
    /// Offset of each block's first record.
    starts: Vec<i64>,
    /// Records past the compared count (target, `allow_newer`).
    beyond: u64,
}

/// Bytes of record encodings fed to a block's hasher at once.
const FEED: usize = 8 << 10;

/// Appends a record's digest encoding to `out`: its offset (exact mode),
/// timestamp, key, value and headers, each length-prefixed, so that
/// encodings one after the other read back one way only.
fn encode_record(r: &RecordRef<'_>, offset: Option<i64>, out: &mut Vec<u8>) {
    let bytes = |out: &mut Vec<u8>, b: Option<&[u8]>| match b {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        }
    };
    if let Some(o) = offset {
        out.extend_from_slice(&o.to_le_bytes());
    }
    out.extend_from_slice(&r.timestamp.to_le_bytes());
    bytes(out, r.key);
    bytes(out, r.value);
    out.extend_from_slice(&(r.headers.len() as u64).to_le_bytes());
    for (k, v) in &r.headers {
        out.extend_from_slice(&(k.len() as u64).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        bytes(out, *v);
    }
}

/// The hash of one record (with its offset in exact mode).
fn record_hash(r: &RecordRef<'_>, offset: Option<i64>) -> [u8; 32] {
    let mut buf = Vec::new();
    encode_record(r, offset, &mut buf);
    *blake3::hash(&buf).as_bytes()
}

impl Digests {
    fn add(&mut self, offset: i64, r: &RecordRef<'_>, exact: bool) {
        if self.count % BLOCK == 0 {
            self.starts.push(offset);
        }
        encode_record(r, exact.then_some(offset), &mut self.buf);
        if self.buf.len() >= FEED {
            self.block.update(&self.buf);
            self.buf.clear();
        }
        self.count += 1;
        if self.count % BLOCK == 0 {
            self.close_block();
        }
    }

    fn close_block(&mut self) {
        self.block.update(&self.buf);
        self.buf.clear();
        let digest = *self.block.finalize().as_bytes();
        self.whole.update(&digest);
        self.blocks.push(digest);
        self.block = blake3::Hasher::new();
    }

    /// Closes the last partial block.
    fn finish(mut self) -> Digests {
        if self.count % BLOCK != 0 {
            self.close_block();
        }
        self.buf = Vec::new();
        self
    }

    fn hex(&self) -> String {
        self.whole.finalize().to_hex().to_string()
    }
}

/// Verifies `snapshot` against the cluster of `opts.restore.kafka`.
///
/// # Errors
/// As a restore's plan (no such snapshot or topic, unreachable cluster),
/// a topic spread by key (`--repartition`), unreadable data.
pub async fn verify(
    repo: &Repository,
    snapshot: &Id,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let started = std::time::Instant::now();
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let cluster = Cluster::connect(&opts.restore.kafka).await?;
    super::super::with_lock(repo, false, || async {
        let mut plan = super::plan::plan(repo, &cluster, snapshot, &opts.restore).await?;
        if let Some(pp) = plan.res.partitions.iter().find(|p| p.target_partition.is_none()) {
            return Err(Error::Unsupported(format!(
                "verifying {} spread by key over another partition count",
                pp.source_topic
            )));
        }
        let exact = opts.restore.offsets == Offsets::Exact;
        let (_, existing) = cluster.layout().await?;
        let targets: Vec<TopicPartition> = plan
            .res
            .partitions
            .iter()
            .filter_map(|p| Some(TopicPartition::new(p.target_topic.clone(), p.target_partition?)))
            .collect();
        let present: Vec<TopicPartition> = targets
            .iter()
            .filter(|tp| existing.get(&tp.topic).is_some_and(|n| tp.partition < *n))
            .cloned()
            .collect();
        let bounds: HashMap<TopicPartition, (i64, i64)> = present
            .iter()
            .cloned()
            .zip(cluster.bounds(&present).await?)
            .collect();
        // The target's first `records` of each partition are compared (the
        // rest, with allow_newer, only counted): both sides read at once.
        let limits: Vec<Option<u64>> = plan
            .res
            .partitions
            .iter()
            .map(|p| opts.allow_newer.then_some(p.records))
            .collect();
        progress.start(
            "reading the snapshot and the cluster",
            None,
            crate::ops::progress::Unit::Items,
        );
        let (expected, found) = tokio::try_join!(
            expected_digests(repo, &plan, exact),
            target_digests(&opts.restore, &targets, &bounds, limits, exact)
        )?;
        progress.finish();
        let mut partitions = Vec::new();
        for ((pp, e), f) in plan.res.partitions.iter().zip(&expected).zip(&found) {
            let modes = (opts.allow_newer, exact);
            partitions.push(compare(repo, &plan, &opts.restore, pp, (e, f), &bounds, modes).await?);
        }
        let groups = check_groups(&cluster, &mut plan, &bounds, exact).await?;
        let topics = check_topics(&cluster, &plan).await?;
        // The snapshot's cluster state is read only when it is compared.
        let snapshot_state = match opts.restore.metadata {
            Metadata::Without => None,
            _ => plan.m.cluster_state(repo).await?,
        };
        let cluster_state = match snapshot_state {
            Some(s) => Some(super::metadata::differences(
                &s,
                &cluster.cluster_state().await?,
                &opts.restore,
            )?),
            None => None,
        };
        let equal = partitions.iter().all(|p| p.equal)
            && groups.iter().all(|g| g.equal)
            && topics.iter().all(|t| t.equal)
            && cluster_state.as_ref().is_none_or(|c| c.equal);
        let snap = match plan.res.snapshot {
            Some(id) => repo.load_snapshot(&id).await?,
            None => repo.load_snapshot(snapshot).await?,
        };
        let data_time = opts.restore.at.unwrap_or(started_ms);
        Ok(VerifyReport {
            snapshot: plan.res.snapshot,
            snapshot_time: snap.time.clone(),
            at: opts.restore.at.map(ms_rfc3339),
            cluster_id: cluster.cluster_id().await?,
            verified_at: ms_rfc3339(started_ms),
            verify_ms: started.elapsed().as_millis() as u64,
            rpo_ms: u64::try_from(data_time - snap.unix_ms()).unwrap_or(0),
            restore_ms: None,
            rto_ms: None,
            records: partitions.iter().map(|p| p.expected).sum(),
            offsets: opts.restore.offsets,
            partitions,
            groups,
            topics,
            cluster_state,
            equal,
            warnings: plan.res.warnings.clone(),
        })
    })
    .await
}

/// A time in ms since the epoch, RFC 3339.
fn ms_rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// The report as written to a file, and its detached signature (hex, the
/// `.sig` file's line): keyed with a subkey of the repository key
/// (format-spec §3), so an auditor with the password can check it.
///
/// # Errors
/// The report not encoding.
pub fn signed_report(repo: &Repository, report: &VerifyReport) -> Result<(Vec<u8>, String)> {
    let mut bytes = serde_json::to_vec_pretty(report).map_err(Error::encode)?;
    bytes.push(b'\n');
    let sig = repo.keys().report_signature(&bytes).to_hex();
    Ok((bytes, sig))
}

/// Whether `signature` (a `.sig` file's text) signs `report` for this
/// repository.
pub fn signature_valid(repo: &Repository, report: &[u8], signature: &str) -> bool {
    repo.keys().report_signature(report).to_hex() == signature.trim()
}

/// Digests of the records the restore writes, per planned partition.
async fn expected_digests(repo: &Repository, plan: &RestorePlan, exact: bool) -> Result<Vec<Digests>> {
    use futures_util::StreamExt as _;
    let mut jobs = Vec::with_capacity(plan.res.partitions.len());
    for pp in &plan.res.partitions {
        let (part, sel, what) = source_of(plan, pp)?;
        jobs.push((part.clone(), sel.clone(), what));
    }
    // Two partitions at once, each on a task of its own: decrypting,
    // inflating and hashing use a core each.
    let mut done = futures_util::stream::iter(jobs)
        .map(|(part, sel, what)| {
            let repo = repo.clone();
            tokio::spawn(async move { partition_digests(&repo, &part, &sel, &what, exact).await })
        })
        .buffered(EXPECTED_AT_ONCE);
    let mut out = Vec::with_capacity(plan.res.partitions.len());
    while let Some(d) = done.next().await {
        out.push(d.map_err(|e| Error::worker("a snapshot reader", e))??);
    }
    Ok(out)
}

/// Partitions of the snapshot digested at once.
const EXPECTED_AT_ONCE: usize = 2;

/// Digests of the records a restore writes of one partition.
async fn partition_digests(
    repo: &Repository,
    part: &crate::image::manifest::Partition,
    sel: &crate::image::select::Selection,
    what: &str,
    exact: bool,
) -> Result<Digests> {
    let mut d = Digests::default();
    let mut f = |o: i64, r: &RecordRef<'_>| -> Result<()> {
        if sel.wants(o) {
            d.add(o, r, exact);
        }
        Ok(())
    };
    for_each_record_ref(repo, what, part, &sel.filter(), &mut f).await?;
    Ok(d.finish())
}

/// The source partition of a planned one, its selection and its name.
fn source_of<'a>(
    plan: &'a RestorePlan,
    pp: &PartitionPlan,
) -> Result<(
    &'a crate::image::manifest::Partition,
    &'a crate::image::select::Selection,
    String,
)> {
    super::inputs::source_of(&plan.m, &plan.sel_of, pp)
}

/// The snapshot reader's handler: digests per job, the first `limit` of
/// each (the rest counted as beyond).
struct TargetDigests {
    exact: bool,
    limits: Vec<Option<u64>>,
    digests: Vec<Digests>,
}

impl Handler for TargetDigests {
    fn admit(&mut self, _job: &ReadJob) -> bool {
        true
    }

    fn record(&mut self, tag: u64, offset: i64, r: &RecordRef<'_>) -> Result<()> {
        let i = tag as usize;
        let limit = self.limits.get(i).copied().flatten();
        let Some(d) = self.digests.get_mut(i) else {
            return Err(Error::bug("a record of an unknown job"));
        };
        if limit.is_some_and(|l| d.count >= l) {
            d.beyond += 1;
        } else {
            d.add(offset, r, self.exact);
        }
        Ok(())
    }

    fn done(&mut self, _tag: u64) -> Result<()> {
        Ok(())
    }

    fn gone(&mut self, _tag: u64) {}
}

/// Digests of the target partitions, read from their log start to their
/// last stable offset.
async fn target_digests(
    opts: &RestoreOptions,
    targets: &[TopicPartition],
    bounds: &HashMap<TopicPartition, (i64, i64)>,
    limits: Vec<Option<u64>>,
    exact: bool,
) -> Result<Vec<Digests>> {
    let jobs: Vec<ReadJob> = targets
        .iter()
        .enumerate()
        .filter_map(|(i, tp)| {
            let (start, end) = *bounds.get(tp)?;
            (end > start).then(|| ReadJob {
                tag: i as u64,
                topic: tp.topic.clone(),
                partition: tp.partition,
                start,
                end,
            })
        })
        .collect();
    let mut h = TargetDigests {
        exact,
        limits,
        digests: vec![Digests::default(); targets.len()],
    };
    let kafka = opts.kafka.clone();
    let h = tokio::task::spawn_blocking(move || read(&kafka, jobs, &mut h).map(|_| h))
        .await
        .map_err(|e| Error::worker("the cluster reader", e))??;
    Ok(h.digests.into_iter().map(Digests::finish).collect())
}

/// One partition's verdict, reading its first differing block again when
/// it differs.
async fn compare(
    repo: &Repository,
    plan: &RestorePlan,
    opts: &RestoreOptions,
    pp: &PartitionPlan,
    (e, f): (&Digests, &Digests),
    bounds: &HashMap<TopicPartition, (i64, i64)>,
    (allow_newer, exact): (bool, bool),
) -> Result<PartitionCheck> {
    let q = pp.target_partition.unwrap_or(pp.partition);
    let equal = e.count == f.count && e.hex() == f.hex() && (allow_newer || f.beyond == 0);
    let mut check = PartitionCheck {
        source: format!("{}/{}", pp.source_topic, pp.partition),
        target: format!("{}/{q}", pp.target_topic),
        expected: e.count,
        found: f.count + f.beyond,
        digest: e.hex(),
        target_digest: f.hex(),
        equal,
        difference: None,
    };
    if !equal {
        let tp = TopicPartition::new(pp.target_topic.clone(), q);
        let end = bounds.get(&tp).map_or(0, |b| b.1);
        check.difference = Some(first_difference(repo, plan, opts, pp, (&tp, end), (e, f), exact).await?);
    }
    Ok(check)
}

/// One record of a block read again: its offset and the hashes of its
/// parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parts {
    offset: i64,
    timestamp: i64,
    key: [u8; 32],
    value: [u8; 32],
    headers: [u8; 32],
}

impl Parts {
    fn of(offset: i64, r: &RecordRef<'_>) -> Parts {
        let opt = |b: Option<&[u8]>| match b {
            None => *blake3::hash(b"\x00null").as_bytes(),
            Some(b) => *blake3::hash(b).as_bytes(),
        };
        let headers = RecordRef {
            key: None,
            value: None,
            timestamp: 0,
            timestamp_type: r.timestamp_type,
            headers: r.headers.clone(),
        };
        Parts {
            offset,
            timestamp: r.timestamp,
            key: opt(r.key),
            value: opt(r.value),
            headers: record_hash(&headers, None),
        }
    }

    fn differing(&self, o: &Parts, exact: bool) -> Vec<&'static str> {
        let mut v = Vec::new();
        if exact && self.offset != o.offset {
            v.push("offset");
        }
        if self.timestamp != o.timestamp {
            v.push("timestamp");
        }
        if self.key != o.key {
            v.push("key");
        }
        if self.value != o.value {
            v.push("value");
        }
        if self.headers != o.headers {
            v.push("headers");
        }
        v
    }
}

/// Collects one block's records as [`Parts`] (the snapshot reader's
/// handler).
struct BlockParts(Vec<Parts>, usize);

impl Handler for BlockParts {
    fn admit(&mut self, _job: &ReadJob) -> bool {
        true
    }
    fn record(&mut self, _tag: u64, offset: i64, r: &RecordRef<'_>) -> Result<()> {
        if self.0.len() < self.1 {
            self.0.push(Parts::of(offset, r));
        }
        Ok(())
    }
    fn done(&mut self, _tag: u64) -> Result<()> {
        Ok(())
    }
    fn gone(&mut self, _tag: u64) {}
}

/// Names the first difference of a partition whose digests differ.
async fn first_difference(
    repo: &Repository,
    plan: &RestorePlan,
    opts: &RestoreOptions,
    pp: &PartitionPlan,
    (tp, end): (&TopicPartition, i64),
    (e, f): (&Digests, &Digests),
    exact: bool,
) -> Result<Difference> {
    let b = e
        .blocks
        .iter()
        .zip(&f.blocks)
        .position(|(x, y)| x != y)
        .unwrap_or(e.blocks.len().min(f.blocks.len()));
    // The snapshot's records of block b.
    let (part, sel, what) = source_of(plan, pp)?;
    let mut mine = Vec::new();
    if let Some(from) = e.starts.get(b).copied() {
        let mut i = 0u64;
        let mut cb = |o: i64, r: Record| -> Result<()> {
            if sel.wants(o) && (i as usize) < BLOCK as usize {
                mine.push(Parts::of(o, &r.as_ref()));
                i += 1;
            }
            Ok(())
        };
        let filter = RecordFilter {
            from_offset: Some(from),
            ..sel.filter()
        };
        for_each_record(repo, &what, part, &filter, &mut cb).await?;
    }
    // The target's records of block b.
    let theirs = match f.starts.get(b).copied() {
        None => Vec::new(),
        Some(from) => {
            let job = ReadJob {
                tag: 0,
                topic: tp.topic.clone(),
                partition: tp.partition,
                start: from,
                // Translated, the block's records are consecutive; exact,
                // they end before the snapshot's next block.
                end: if exact {
                    e.starts.get(b + 1).copied().unwrap_or(end).min(end)
                } else {
                    (from + BLOCK as i64).min(end)
                },
            };
            let mut h = BlockParts(Vec::new(), BLOCK as usize);
            let kafka = opts.kafka.clone();
            let h = tokio::task::spawn_blocking(move || read(&kafka, vec![job], &mut h).map(|_| h))
                .await
                .map_err(|e| Error::worker("the cluster reader", e))??;
            h.0
        }
    };
    Ok(first_in_block(&mine, &theirs, exact, f.starts.get(b).copied()))
}

/// The first difference of two blocks' records.
fn first_in_block(mine: &[Parts], theirs: &[Parts], exact: bool, target_start: Option<i64>) -> Difference {
    for (a, t) in mine.iter().zip(theirs) {
        let fields = a.differing(t, exact);
        if !fields.is_empty() {
            return Difference {
                offset: t.offset,
                kind: DiffKind::Changed,
                fields,
            };
        }
    }
    let n = mine.len().min(theirs.len());
    let next = |v: &[Parts]| v.get(n).map(|p| p.offset);
    let after_last = theirs.last().map(|p| p.offset + 1).or(target_start).unwrap_or(0);
    if mine.len() > theirs.len() {
        let offset = if exact {
            next(mine).unwrap_or(after_last)
        } else {
            after_last
        };
        Difference {
            offset,
            kind: DiffKind::Missing,
            fields: Vec::new(),
        }
    } else {
        Difference {
            offset: next(theirs).unwrap_or(after_last),
            kind: DiffKind::Extra,
            fields: Vec::new(),
        }
    }
}

/// Each restored topic's partition count and the configs its snapshot
/// sets (a LogAppendTime source is created with CreateTime and switched
/// once restored, so the source's value is expected after a whole
/// restore).
async fn check_topics(cluster: &Cluster, plan: &RestorePlan) -> Result<Vec<TopicCheck>> {
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    for pp in &plan.res.partitions {
        names.insert(pp.target_topic.clone(), &pp.source_topic);
    }
    let wanted: Vec<String> = names.keys().cloned().collect();
    let found: BTreeMap<String, crate::image::types::TopicInfo> = cluster
        .topics(&wanted, &[])
        .await?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let mut out = Vec::new();
    for (target, source) in names {
        let Some(t) = plan.m.topics.get(source) else {
            continue;
        };
        let f = found.get(&target);
        let configs_differing: Vec<String> = t
            .meta
            .configs
            .iter()
            .filter(|(k, v)| f.and_then(|f| f.configs.get(*k)) != Some(*v))
            .map(|(k, v)| {
                let there = f.and_then(|f| f.configs.get(k)).map_or("unset", String::as_str);
                format!("{k}: snapshot {v}, target {there}")
            })
            .collect();
        let partitions = (t.meta.partitions, f.map(|f| f.partitions));
        out.push(TopicCheck {
            equal: configs_differing.is_empty() && partitions.1 == Some(partitions.0),
            topic: target,
            partitions,
            configs_differing,
        });
    }
    Ok(out)
}

/// Group offsets a restore commits, against the target's committed ones.
async fn check_groups(
    cluster: &Cluster,
    plan: &mut RestorePlan,
    bounds: &HashMap<TopicPartition, (i64, i64)>,
    exact: bool,
) -> Result<Vec<GroupCheck>> {
    if !exact {
        for pp in &mut plan.res.partitions {
            pp.target_start = pp
                .target_partition
                .and_then(|q| bounds.get(&TopicPartition::new(pp.target_topic.clone(), q)))
                .map(|b| b.0);
        }
        fill_group_targets(&mut plan.res);
    }
    let mut by_group: BTreeMap<&str, Vec<&GroupOffsetPlan>> = BTreeMap::new();
    for g in &plan.res.groups {
        by_group.entry(&g.group).or_default().push(g);
    }
    let mut out = Vec::new();
    for (group, offs) in by_group {
        let tps: Vec<TopicPartition> = offs
            .iter()
            .map(|g| TopicPartition::new(g.topic.clone(), g.partition))
            .collect();
        let committed = cluster.group_committed(group, &tps).await?;
        for g in offs {
            let found = committed
                .iter()
                .find(|c| c.topic == g.topic && c.partition == g.partition)
                .map(|c| c.offset);
            out.push(GroupCheck {
                group: group.to_string(),
                partition: format!("{}/{}", g.topic, g.partition),
                expected: g.target_offset,
                found,
                equal: found == g.target_offset,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::record::TimestampType;

    fn rec<'a>(ts: i64, key: &'a [u8], value: &'a [u8]) -> RecordRef<'a> {
        RecordRef {
            timestamp: ts,
            timestamp_type: TimestampType::CreateTime,
            key: Some(key),
            value: Some(value),
            headers: vec![("h", Some(b"1"))],
        }
    }

    #[test]
    fn a_record_hash_covers_every_part_and_its_offset_only_when_exact() {
        let base = record_hash(&rec(5, b"k", b"v"), None);
        assert_ne!(base, record_hash(&rec(6, b"k", b"v"), None));
        assert_ne!(base, record_hash(&rec(5, b"K", b"v"), None));
        assert_ne!(base, record_hash(&rec(5, b"k", b"w"), None));
        let mut h = rec(5, b"k", b"v");
        h.headers[0].1 = None;
        assert_ne!(base, record_hash(&h, None));
        // Moving a byte between key and value is a change.
        assert_ne!(
            record_hash(&rec(5, b"kv", b""), None),
            record_hash(&rec(5, b"k", b"v"), None)
        );
        assert_ne!(base, record_hash(&rec(5, b"k", b"v"), Some(0)));
    }

    #[test]
    fn blocks_locate_the_first_difference() {
        let parts =
            |n: i64| -> Vec<Parts> { (0..n).map(|i| Parts::of(100 + i, &rec(i, b"k", b"v"))).collect() };
        let mine = parts(10);
        let mut theirs = parts(10);
        theirs[4] = Parts::of(104, &rec(4, b"k", b"changed"));
        let d = first_in_block(&mine, &theirs, false, Some(100));
        assert_eq!(
            (d.offset, d.kind, d.fields),
            (104, DiffKind::Changed, vec!["value"])
        );
        let d = first_in_block(&mine, &parts(7), false, Some(100));
        assert_eq!((d.offset, d.kind), (107, DiffKind::Missing));
        let d = first_in_block(&parts(7), &mine, false, Some(100));
        assert_eq!((d.offset, d.kind), (107, DiffKind::Extra));
        let d = first_in_block(&mine, &[], true, None);
        assert_eq!((d.offset, d.kind), (100, DiffKind::Missing));
    }
}
