//! Sharded snapshots (format-spec §15): N workers (a Kubernetes Indexed
//! Job) each snapshot a share of one cluster's partitions into the same
//! repository, and the run becomes one snapshot.
//!
//! - **Assignment** ([`assign`]): every shard computes the same assignment
//!   from the same inputs, all taken from the parent snapshot (the latest
//!   complete one of the cluster): each partition's weight is the bytes it
//!   added in the parent's interval (its size in the parent minus its size
//!   in the parent's parent), and a partition stays on the shard the
//!   parent's run gave it unless the balance needs the move.
//! - **Parts**: a shard writes an ordinary Kafka image of its partitions
//!   (and their group offsets; shard 0 also reads the group commit log) as
//!   a snapshot of kind `kafka-shard` carrying the run id and its index.
//! - **Combining** ([`complete_run`]): the shard that finds every shard's
//!   part present writes the run's snapshot (kind `kafka`): the union of the
//!   parts' partition nodes (reused, not copied), their group offsets, shard
//!   0's commit log and cluster state, and the parts' ids. Two shards finishing together may
//!   both write it; the one with the larger id is deleted by whoever sees
//!   both, and readers take the smallest.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Refusal, Result};
use crate::id::Id;
use crate::image::manifest::{self, KAFKA_KIND, KAFKA_SHARD_KIND, Manifest, ManifestWriter};
use crate::image::types::TopicPartition;
use crate::repo::snapshot::{RunInfo, SNAPSHOT_VERSION, Snapshot, SnapshotSummary};
use crate::repo::writer::SaveSession;
use crate::repo::{FileKind, Repository, hostname, username};

/// One shard of a run: `--shard INDEX/COUNT --run ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    /// This shard, `0..count`.
    pub index: u32,
    /// Shards in the run.
    pub count: u32,
    /// The run's id, the same for every shard.
    pub run: String,
}

/// Worker K of N: `--shard K/N` of a snapshot or a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// This worker, `0..count`.
    pub index: u32,
    /// Workers in all.
    pub count: u32,
}

impl Share {
    /// Parses `K/N`.
    ///
    /// # Errors
    /// Not `K/N` with `K < N`.
    pub fn parse(spec: &str) -> Result<Share> {
        let bad = || Error::bad_value("shard", spec, "K/N with 0 <= K < N");
        let (k, n) = spec.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Share { index, count })
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl ShardSpec {
    /// Parses `K/N` and the run id.
    ///
    /// # Errors
    /// Not `K/N` with `K < N`; an empty run id or one with `/`.
    pub fn parse(spec: &str, run: &str) -> Result<ShardSpec> {
        let Share { index, count } = Share::parse(spec)?;
        if run.is_empty() || run.contains(['/', '\n']) {
            return Err(Error::bad_value(
                "run id",
                run,
                "a non-empty name without / or a line break",
            ));
        }
        Ok(ShardSpec {
            index,
            count,
            run: run.to_string(),
        })
    }
}

/// A partition key.
pub type Part = TopicPartition;

/// Assigns partitions to `n` shards: partitions keep their `previous` shard
/// when it exists, new ones go to the least loaded shard (heaviest first),
/// then, while the most loaded shard carries more than 5/4 of the mean,
/// the heaviest partition that narrows the gap moves from it to the least
/// loaded. Deterministic: ties break by shard index and partition name.
pub fn assign(
    parts: &[Part],
    weight: &BTreeMap<Part, u64>,
    previous: &BTreeMap<Part, u32>,
    n: u32,
) -> BTreeMap<Part, u32> {
    let n = n.max(1);
    let w = |p: &Part| weight.get(p).copied().unwrap_or(1).max(1);
    let mut load = vec![0u64; n as usize];
    let mut out: BTreeMap<Part, u32> = BTreeMap::new();
    let mut fresh: Vec<&Part> = Vec::new();
    for p in parts {
        match previous.get(p) {
            Some(&s) if s < n => {
                out.insert(p.clone(), s);
                if let Some(l) = load.get_mut(s as usize) {
                    *l += w(p);
                }
            }
            _ => fresh.push(p),
        }
    }
    fresh.sort_by(|a, b| w(b).cmp(&w(a)).then_with(|| a.cmp(b)));
    let least = |load: &[u64]| {
        load.iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .map_or(0, |(i, _)| i as u32)
    };
    for p in fresh {
        let s = least(&load);
        out.insert(p.clone(), s);
        if let Some(l) = load.get_mut(s as usize) {
            *l += w(p);
        }
    }
    let total: u64 = load.iter().sum();
    for _ in 0..parts.len() {
        let (max_s, max_l) = load
            .iter()
            .enumerate()
            .max_by_key(|(i, l)| (**l, std::cmp::Reverse(*i)))
            .map_or((0, 0), |(i, l)| (i as u32, *l));
        let min_s = least(&load);
        let min_l = load.get(min_s as usize).copied().unwrap_or(0);
        // Balanced enough: max <= 5/4 of the mean.
        if max_l * 4 * u64::from(n) <= total * 5 {
            break;
        }
        // The heaviest partition whose move lowers the maximum.
        let mv = out
            .iter()
            .filter(|(p, s)| **s == max_s && w(p) < max_l - min_l)
            .max_by(|a, b| w(a.0).cmp(&w(b.0)).then_with(|| b.0.cmp(a.0)))
            .map(|(p, _)| p.clone());
        let Some(p) = mv else { break };
        let pw = w(&p);
        out.insert(p, min_s);
        if let Some(l) = load.get_mut(max_s as usize) {
            *l -= pw;
        }
        if let Some(l) = load.get_mut(min_s as usize) {
            *l += pw;
        }
    }
    out
}

/// Per-partition logical sizes of a manifest.
fn sizes(m: &Manifest) -> BTreeMap<Part, u64> {
    m.topics
        .values()
        .flat_map(|t| {
            t.partitions
                .values()
                .map(|p| (TopicPartition::new(t.name.clone(), p.meta.partition), p.node.size))
        })
        .collect()
}

/// The inputs of [`assign`] from the parent snapshot: weights (bytes added
/// in the parent's interval) and the parent run's assignment (when the
/// parent is a run of the same width).
///
/// # Errors
/// Unreadable snapshots or trees.
pub async fn inputs_from_parent(
    repo: &Repository,
    parent: Option<&Snapshot>,
    prev: &Manifest,
    shards: u32,
) -> Result<(BTreeMap<Part, u64>, BTreeMap<Part, u32>)> {
    let mut weight = sizes(prev);
    let Some(parent) = parent else {
        return Ok((weight, BTreeMap::new()));
    };
    if let Some(gp) = &parent.parent {
        if let Ok(g) = repo.load_snapshot(gp).await {
            let before = sizes(&manifest::load(repo, &g.tree, false).await?);
            for (p, w) in weight.iter_mut() {
                *w = w.saturating_sub(before.get(p).copied().unwrap_or(0));
            }
        }
    }
    let mut previous = BTreeMap::new();
    if let Some(run) = parent.run.as_ref().filter(|r| r.shards == shards) {
        for part in &run.parts {
            // A part removed or not copied: its partitions are placed anew.
            let Ok(s) = repo.load_snapshot(part).await else {
                continue;
            };
            let Some(k) = s.run.as_ref().and_then(|r| r.shard) else {
                continue;
            };
            for t in manifest::load(repo, &s.tree, false).await?.topics.values() {
                for p in t.partitions.keys() {
                    previous.insert(TopicPartition::new(t.name.clone(), *p), k);
                }
            }
        }
    }
    Ok((weight, previous))
}

/// What [`complete_run`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Every shard's part is there: the run's snapshot.
    Complete(Id),
    /// These shard indexes have no part yet.
    Waiting(Vec<u32>),
}

/// The parts of run `run` of `cluster`, newest per shard index.
fn parts_of<'a>(snaps: &'a [(Id, Snapshot)], run: &str, cluster: &str) -> BTreeMap<u32, &'a (Id, Snapshot)> {
    let mut by: BTreeMap<u32, &(Id, Snapshot)> = BTreeMap::new();
    for e in snaps {
        let s = &e.1;
        if s.kind != KAFKA_SHARD_KIND || s.run_key() != Some((run, cluster)) {
            continue;
        }
        let Some(k) = s.run.as_ref().and_then(|r| r.shard) else {
            continue;
        };
        // A rerun of a shard supersedes its earlier part.
        if by.get(&k).is_none_or(|o| o.1.system_time() <= s.system_time()) {
            by.insert(k, e);
        }
    }
    by
}

/// The run's combined snapshots (normally one), smallest id first.
fn combined_of(snaps: &[(Id, Snapshot)], run: &str, cluster: &str) -> Vec<Id> {
    let mut v: Vec<Id> = snaps
        .iter()
        .filter(|(_, s)| s.kind == KAFKA_KIND && s.is_run() && s.run_key() == Some((run, cluster)))
        .map(|(id, _)| *id)
        .collect();
    v.sort();
    v
}

/// The parts of a run merged into one image, with the run's figures.
struct Merged {
    m: Manifest,
    summary: SnapshotSummary,
    /// The last shard's capture time.
    time: String,
    /// Shard 0's tags and parent (the commit log continues its parent).
    tags: Vec<String>,
    parent: Option<Id>,
}

/// Merges the shards' images: each partition from the part with the
/// newest end (shards that planned against different parents may both
/// hold one), each group offset once, the commit log of shard 0.
async fn merge_parts(repo: &Repository, parts: &BTreeMap<u32, &(Id, Snapshot)>) -> Result<Merged> {
    let mut out = Merged {
        m: Manifest::default(),
        summary: SnapshotSummary::default(),
        time: String::new(),
        tags: Vec::new(),
        parent: None,
    };
    for (k, (_, s)) in parts {
        let pm = manifest::load(repo, &s.tree, false).await?;
        for (name, t) in pm.topics {
            let e = out.m.topics.entry(name).or_insert_with(|| manifest::Topic {
                partitions: BTreeMap::new(),
                ..t.clone()
            });
            for (p, part) in t.partitions {
                if e.partitions.get(&p).is_none_or(|o| o.meta.end < part.meta.end) {
                    e.partitions.insert(p, part);
                }
            }
        }
        for (g, offs) in pm.groups {
            let e = out.m.groups.entry(g).or_default();
            for o in offs {
                if !e.iter().any(|x| x.topic == o.topic && x.partition == o.partition) {
                    e.push(o);
                }
            }
        }
        if *k == 0 {
            out.m.commits = pm.commits;
            out.m.cluster = pm.cluster;
            out.tags.clone_from(&s.tags);
            out.parent = s.parent;
        }
        out.summary += &s.summary;
        if s.time > out.time {
            out.time.clone_from(&s.time);
        }
    }
    Ok(out)
}

/// Completes run `run` of `cluster` with `shards` shards if every shard's
/// part is present: writes the run's snapshot (once), and removes a
/// duplicate another shard wrote at the same time.
///
/// # Errors
/// Shards that planned against different parents (two runs' shards
/// interleaved with a third run finishing); storage errors.
pub async fn complete_run(repo: &Repository, run: &str, cluster: &str, shards: u32) -> Result<RunState> {
    let snaps = repo.load_snapshots().await?;
    if let Some(id) = combined_of(&snaps, run, cluster).first() {
        return Ok(RunState::Complete(*id));
    }
    let parts = parts_of(&snaps, run, cluster);
    let missing: Vec<u32> = (0..shards).filter(|k| !parts.contains_key(k)).collect();
    if !missing.is_empty() {
        return Ok(RunState::Waiting(missing));
    }
    // The other shards' index files appeared after this process read the
    // index: read it again to reach their trees.
    repo.load_index().await?;
    let Merged {
        mut m,
        summary,
        time,
        tags,
        parent,
    } = merge_parts(repo, &parts).await?;
    // Every partition of every topic must be in some part.
    let uncovered: Vec<String> = m
        .topics
        .values()
        .flat_map(|t| {
            (0..t.meta.partitions)
                .filter(|p| !t.partitions.contains_key(p))
                .map(move |p| format!("{}/{p}", t.name))
        })
        .collect();
    if !uncovered.is_empty() {
        return Err(Error::Refused(Refusal::RunIncomplete {
            run: run.to_string(),
            uncovered,
        }));
    }
    for offs in m.groups.values_mut() {
        offs.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    }
    let mut session = SaveSession::new(repo);
    let mut w = ManifestWriter::new(&mut session);
    let mut topic_nodes = Vec::new();
    for t in m.topics.values() {
        let pnodes = t.partitions.values().map(|p| p.node.clone()).collect();
        topic_nodes.push(w.topic(&t.name, &t.meta, pnodes).await?);
    }
    let (root, _) = w
        .root_reusing_log(topic_nodes, m.groups, m.commits, m.cluster)
        .await?;
    session.commit().await?;
    let snap = Snapshot {
        version: SNAPSHOT_VERSION,
        time,
        hostname: hostname(),
        username: username(),
        kind: KAFKA_KIND.into(),
        source: cluster.to_string(),
        tags,
        tree: root,
        parent,
        original: None,
        summary,
        run: Some(RunInfo {
            id: run.to_string(),
            shard: None,
            shards,
            parts: parts.values().map(|(id, _)| *id).collect(),
        }),
        erasures: Vec::new(),
        retained_until: None,
    };
    let mine = repo.save_snapshot(&snap).await?;
    // Another shard may have combined the run at the same moment: keep the
    // smallest id, remove the others.
    let snaps = repo.load_snapshots().await?;
    let all = combined_of(&snaps, run, cluster);
    let keep = all.first().copied().unwrap_or(mine);
    for id in all.iter().filter(|i| **i != keep) {
        repo.remove_file(FileKind::Snapshot, id).await?;
    }
    Ok(RunState::Complete(keep))
}

/// Incomplete runs: `(run, cluster, shards, shard indexes present)` of
/// parts with no combined snapshot.
pub fn incomplete_runs(snaps: &[(Id, Snapshot)]) -> Vec<(String, String, u32, Vec<u32>)> {
    // One pass: a month of hourly runs is thousands of snapshots.
    let mut runs: BTreeMap<(&str, &str), (u32, BTreeSet<u32>)> = BTreeMap::new();
    let mut complete: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (_, s) in snaps {
        let (Some(key), Some(r)) = (s.run_key(), s.run.as_ref()) else {
            continue;
        };
        if s.is_shard_part() {
            let e = runs.entry(key).or_default();
            e.0 = r.shards;
            e.1.extend(r.shard);
        } else if s.kind == KAFKA_KIND {
            complete.insert(key);
        }
    }
    runs.into_iter()
        .filter(|(key, _)| !complete.contains(key))
        .map(|((run, cluster), (n, have))| {
            (
                run.to_string(),
                cluster.to_string(),
                n,
                have.into_iter().collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(n: i32) -> Vec<Part> {
        (0..n).map(|p| TopicPartition::new("t", p)).collect()
    }

    fn loads(a: &BTreeMap<Part, u32>, w: &BTreeMap<Part, u64>, n: u32) -> Vec<u64> {
        let mut l = vec![0u64; n as usize];
        for (p, s) in a {
            l[*s as usize] += w.get(p).copied().unwrap_or(1);
        }
        l
    }

    #[test]
    fn a_fresh_assignment_is_balanced_by_weight() {
        let ps = parts(12);
        let w: BTreeMap<Part, u64> = ps
            .iter()
            .map(|p| (p.clone(), 1 + (p.partition as u64 % 4) * 100))
            .collect();
        let a = assign(&ps, &w, &BTreeMap::new(), 4);
        assert_eq!(a.len(), 12, "every partition has exactly one shard");
        let l = loads(&a, &w, 4);
        let (max, min) = (*l.iter().max().unwrap(), *l.iter().min().unwrap());
        assert!(max - min <= 100, "{l:?}");
        // Deterministic: the same inputs, the same answer.
        assert_eq!(a, assign(&ps, &w, &BTreeMap::new(), 4));
    }

    #[test]
    fn partitions_stay_on_their_shard_unless_the_balance_needs_a_move() {
        let ps = parts(8);
        let even: BTreeMap<Part, u64> = ps.iter().map(|p| (p.clone(), 10)).collect();
        let first = assign(&ps, &even, &BTreeMap::new(), 4);
        // Same traffic, a new partition: nothing moves, the new one fills in.
        let mut more = ps.clone();
        more.push(TopicPartition::new("u", 0));
        let second = assign(&more, &even, &first, 4);
        for p in &ps {
            assert_eq!(first[p], second[p], "{p:?} moved without need");
        }
        // One partition becomes very busy: some others move off its shard.
        let mut skew = even.clone();
        skew.insert(TopicPartition::new("t", 0), 1_000);
        let third = assign(&ps, &skew, &first, 4);
        let moved = ps.iter().filter(|p| first[*p] != third[*p]).count();
        assert!(moved >= 1, "the busy shard shed load");
        assert_eq!(
            third[&TopicPartition::new("t", 0)],
            first[&TopicPartition::new("t", 0)],
            "the heavy one stays"
        );
        let l = loads(&third, &skew, 4);
        assert_eq!(l.iter().filter(|x| **x > 0).count(), 4, "{l:?}");
    }

    #[test]
    fn shard_specs_parse() {
        assert_eq!(ShardSpec::parse("2/4", "r1").unwrap().index, 2);
        assert!(ShardSpec::parse("4/4", "r1").is_err());
        assert!(ShardSpec::parse("x", "r1").is_err());
        assert!(ShardSpec::parse("0/2", "").is_err());
    }
}
