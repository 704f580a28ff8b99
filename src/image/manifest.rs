//! The Kafka manifest: how a Kafka snapshot's trees are laid out
//! (format-spec/README.md §14), and reading it back.
//!
//! ```text
//! root        nodes "topics" (type topics) and "groups" (type groups)
//! topics      one node per topic (type topic): partitions, replication factor, configs
//! topic       one node per partition (type partition): log_start, end, records, expired gaps
//! partition   one node per segment (type segment): content = chunk ids,
//!             meta start, end, records, runs, chunks (filter_at: its
//!             first chunk's filter in a shared blob); subtree = a tree of
//!             one node (type key-filter) whose content is the key filter
//!             blob, the segment's own (4 chunks or more) or shared by the
//!             snapshot's small segments
//! groups      one node per consumer group (type group): offsets
//! commits     (a root node, type commits) content = the commit log's chunks
//!             (JSON lines), meta = CommitsMeta (positions in __consumer_offsets)
//! cluster     (a root node, type cluster) content = the cluster state blob
//!             (JSON), meta = its counts
//! ```
//!
//! An unchanged partition keeps its node (and subtree id); an unchanged
//! topic keeps its subtree id: an incremental snapshot of an unchanged
//! cluster writes only the small root and topics trees.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cluster::ClusterState;
use super::commits::{Commit, CommitsMeta};
use super::keyfilter::{self, ChunkFilter, KeyHasher, Placement, SegmentFilter, SegmentFilters};
use super::record::OffsetRuns;
use super::types::{ChunkMeta, GroupOffset, OpenTxn, TxnSpan};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repo::Repository;
use crate::repo::pack::BlobType;
use crate::repo::tree::{Node, Tree};
use crate::repo::writer::SaveSession;

/// Snapshot kind of Kafka snapshots.
pub const KAFKA_KIND: &str = "kafka";

/// Snapshot kind of one shard's part of a sharded run (format-spec §15).
pub const KAFKA_SHARD_KIND: &str = "kafka-shard";

/// The kinds of node in a Kafka image's trees (a node's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// The root's node of the topics tree.
    Topics,
    /// The root's node of the groups tree.
    Groups,
    /// A topic: settings, and its partitions tree.
    Topic,
    /// A partition: bounds, and its segments tree.
    Partition,
    /// A segment: records read by one snapshot, as chunks.
    Segment,
    /// A consumer group's committed offsets.
    Group,
    /// The root's node of the group commit log read since the previous
    /// snapshot.
    Commits,
    /// The root's node of the cluster's own state (ACLs, users, quotas,
    /// broker configs).
    Cluster,
    /// A segment's key filters (its subtree's one node; format-spec §14
    /// "Key filters").
    KeyFilter,
}

impl NodeKind {
    /// The `type` string stored in nodes (format-spec §14).
    pub const fn as_str(self) -> &'static str {
        match self {
            NodeKind::Topics => "topics",
            NodeKind::Groups => "groups",
            NodeKind::Topic => "topic",
            NodeKind::Partition => "partition",
            NodeKind::Segment => "segment",
            NodeKind::Group => "group",
            NodeKind::Commits => "commits",
            NodeKind::Cluster => "cluster",
            NodeKind::KeyFilter => "key-filter",
        }
    }

    /// Whether `n` is of this kind.
    pub fn is(self, n: &Node) -> bool {
        n.kind == self.as_str()
    }

    /// A node of this kind.
    fn node(
        self,
        name: String,
        size: u64,
        subtree: Option<Id>,
        content: Vec<Id>,
        meta: BTreeMap<String, Value>,
    ) -> Node {
        Node {
            name,
            kind: self.as_str().into(),
            size,
            subtree,
            content,
            meta,
        }
    }
}

/// A segment: the records of `[start, end)` read by one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// First offset asked for.
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
    /// Records stored.
    pub records: u64,
    /// Offsets of the records.
    pub runs: OffsetRuns,
    /// Per-chunk metadata, in order.
    pub chunks: Vec<ChunkMeta>,
    /// The committed transactions whose records are in the segment, when
    /// they were captured (a segment without gaps has none; `None` on a
    /// segment with gaps: not captured, so `--at` cuts it by record time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txns: Option<Vec<TxnSpan>>,
    /// Offsets inside `[start, end)` whose records `kvault rewrite` erased,
    /// as sorted `[first, end)` ranges (format-spec §14 "Erased records").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erased: Vec<[i64; 2]>,
    /// When its key-filter blob is shared with the other small segments of
    /// its snapshot: the index of its first chunk's filter there (none: the
    /// blob is its own; format-spec §14 "Key filters").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_at: Option<u32>,
}

impl SegmentMeta {
    /// Each chunk's metadata with the source offsets of its records (taken
    /// from the runs, in order).
    pub fn chunk_offsets(&self) -> impl Iterator<Item = (&ChunkMeta, Vec<i64>)> + '_ {
        let mut offsets = self.runs.offsets();
        self.chunks.iter().map(move |cm| {
            let n = usize::try_from(cm.records()).unwrap_or(0);
            (cm, offsets.by_ref().take(n).collect())
        })
    }
}

/// A partition as captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// Partition number.
    pub partition: i32,
    /// Log start offset when captured.
    pub log_start: i64,
    /// End (last stable offset) when captured.
    pub end: i64,
    /// Records in the retained segments.
    pub records: u64,
    /// Offsets that expired before kvault read them (recorded, warned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<[i64; 2]>,
    /// Offsets whose stored chunks were damaged and removed by `repair
    /// snapshots` (their records are lost).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<[i64; 2]>,
    /// Transactions open at `end` when captured (none of their records is
    /// held), in offset order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open: Vec<OpenTxn>,
}

/// A topic's captured settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// Non-default configs.
    pub configs: BTreeMap<String, String>,
}

/// Serializes a meta struct into a node's meta map.
///
/// # Errors
/// Never in practice.
pub fn to_meta<T: Serialize>(v: &T) -> Result<BTreeMap<String, Value>> {
    match serde_json::to_value(v).map_err(Error::encode)? {
        Value::Object(m) => Ok(m.into_iter().collect()),
        _ => Err(Error::bug("meta is not an object")),
    }
}

/// Reads a node's meta map as `T`.
///
/// # Errors
/// [`Error::Corrupt`] when it does not fit.
pub fn from_meta<T: for<'de> Deserialize<'de>>(n: &Node) -> Result<T> {
    let v = Value::Object(n.meta.clone().into_iter().collect());
    serde_json::from_value(v).map_err(|e| Error::corrupt(format!("{} node {:?}", n.kind, n.name), e))
}

/// A segment with its chunk ids.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Metadata.
    pub meta: SegmentMeta,
    /// Chunk blob ids.
    pub chunks: Vec<Id>,
    /// Encoded bytes.
    pub size: u64,
    /// The tree of its key filters, when it has them.
    pub filter: Option<Id>,
}

impl Segment {
    /// Each chunk with its metadata and the source offsets of its records
    /// (taken from the segment's runs, in order).
    pub fn chunks_with_offsets(&self) -> impl Iterator<Item = (&Id, &ChunkMeta, Vec<i64>)> + '_ {
        self.chunks
            .iter()
            .zip(self.meta.chunk_offsets())
            .map(|(id, (cm, offs))| (id, cm, offs))
    }
}

/// A partition with its segments.
#[derive(Debug, Clone)]
pub struct Partition {
    /// Metadata.
    pub meta: PartitionMeta,
    /// The node as stored (reused verbatim when unchanged).
    pub node: Node,
    /// Segments, oldest first (loaded on demand).
    pub segments: Vec<Segment>,
}

/// A topic with its partitions.
#[derive(Debug, Clone)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Settings.
    pub meta: TopicMeta,
    /// The node as stored.
    pub node: Node,
    /// Partitions by number.
    pub partitions: BTreeMap<i32, Partition>,
}

/// A whole Kafka snapshot's manifest.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Topics by name.
    pub topics: BTreeMap<String, Topic>,
    /// Group offsets by group.
    pub groups: BTreeMap<String, Vec<GroupOffset>>,
    /// The group commit log this snapshot read (absent in snapshots of
    /// older versions).
    pub commits: Option<CommitLog>,
    /// The cluster state's node (absent in snapshots of older versions and
    /// in shard parts other than shard 0's).
    pub cluster: Option<Node>,
}

impl Manifest {
    /// The cluster state this snapshot captured, if it has one.
    ///
    /// # Errors
    /// An unreadable or corrupt blob.
    pub async fn cluster_state(&self, repo: &Repository) -> Result<Option<ClusterState>> {
        let Some(id) = self.cluster.as_ref().and_then(|n| n.content.first()) else {
            return Ok(None);
        };
        let b = repo.read_blob(id).await?;
        super::cluster::decode(&b)
            .map(Some)
            .map_err(|e| Error::corrupt(format!("cluster state blob {id}"), e))
    }
}

/// A snapshot's group commit log: where it read up to, and its chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitLog {
    /// Positions, completeness.
    pub meta: CommitsMeta,
    /// Chunks of JSON lines, in log order.
    pub chunks: Vec<Id>,
    /// Their plaintext bytes.
    pub size: u64,
}

impl CommitLog {
    /// Reads the commits, in log order.
    ///
    /// # Errors
    /// Unreadable or corrupt chunks.
    pub async fn load(&self, repo: &Repository) -> Result<Vec<Commit>> {
        let mut out = Vec::new();
        for id in &self.chunks {
            let b = repo.read_blob(id).await?;
            out.extend(
                super::commits::decode_log(&b)
                    .map_err(|e| Error::corrupt(format!("commit log chunk {id}"), e))?,
            );
        }
        Ok(out)
    }
}

fn child(t: &Tree, kind: NodeKind) -> Option<&Node> {
    t.nodes.iter().find(|n| kind.is(n))
}

/// Loads a Kafka manifest from its root tree. With `segments`, partition
/// segment lists are loaded too (needed to read data; not for planning).
///
/// # Errors
/// Unreadable or malformed trees.
pub async fn load(repo: &Repository, root: &Id, segments: bool) -> Result<Manifest> {
    let root_tree = repo.load_tree(root).await?;
    let mut m = Manifest::default();
    if let Some(t) = child(&root_tree, NodeKind::Topics).and_then(|n| n.subtree) {
        for tn in repo.load_tree(&t).await?.nodes {
            let meta: TopicMeta = from_meta(&tn)?;
            let mut partitions = BTreeMap::new();
            if let Some(pt) = tn.subtree {
                for pn in repo.load_tree(&pt).await?.nodes {
                    let pm: PartitionMeta = from_meta(&pn)?;
                    let segs = if segments {
                        load_segments(repo, &pn).await?
                    } else {
                        Vec::new()
                    };
                    partitions.insert(
                        pm.partition,
                        Partition {
                            meta: pm,
                            node: pn,
                            segments: segs,
                        },
                    );
                }
            }
            m.topics.insert(
                tn.name.clone(),
                Topic {
                    name: tn.name.clone(),
                    meta,
                    node: tn,
                    partitions,
                },
            );
        }
    }
    if let Some(g) = child(&root_tree, NodeKind::Groups).and_then(|n| n.subtree) {
        for gn in repo.load_tree(&g).await?.nodes {
            #[derive(Deserialize)]
            struct G {
                offsets: Vec<GroupOffset>,
            }
            let gm: G = from_meta(&gn)?;
            m.groups.insert(gn.name.clone(), gm.offsets);
        }
    }
    if let Some(c) = child(&root_tree, NodeKind::Commits) {
        m.commits = Some(CommitLog {
            meta: from_meta(c)?,
            chunks: c.content.clone(),
            size: c.size,
        });
    }
    m.cluster = child(&root_tree, NodeKind::Cluster).cloned();
    Ok(m)
}

/// Loads the segments of one partition node.
///
/// # Errors
/// Unreadable trees.
pub async fn load_segments(repo: &Repository, node: &Node) -> Result<Vec<Segment>> {
    let mut out = Vec::new();
    if let Some(st) = node.subtree {
        for sn in repo.load_tree(&st).await?.nodes {
            out.push(Segment {
                meta: from_meta(&sn)?,
                chunks: sn.content.clone(),
                size: sn.size,
                filter: sn.subtree,
            });
        }
    }
    Ok(out)
}

/// Where a segment's key filters are: its filter tree, and its first
/// chunk's index in the blob when the blob is shared.
pub type FilterRef = (Id, Option<u32>);

/// Segments' key filters as `find` and `rewrite` use them: each filter
/// tree read once however many segments and snapshots share it, and only
/// those usable here (present, fitting the segment's chunks, made under
/// this repository's key: a segment copied from another repository has
/// filters under that one's key, which say nothing here).
#[derive(Debug)]
pub struct FilterCache {
    hasher: KeyHasher,
    loaded: std::collections::HashMap<Id, Option<std::sync::Arc<SegmentFilter>>>,
}

impl FilterCache {
    /// A cache for the repository's key-filter key.
    pub fn new(repo: &Repository) -> FilterCache {
        FilterCache {
            hasher: KeyHasher::new(repo.keys().key_filter_key()),
            loaded: std::collections::HashMap::new(),
        }
    }

    /// The hasher of record keys in this repository's filters.
    pub fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    /// The usable filters of a segment of `chunks` chunks whose node's
    /// subtree is `filter`, from chunk filter `at` when it shares the blob;
    /// `None`: read every chunk.
    ///
    /// # Errors
    /// Unreadable or corrupt trees and blobs.
    pub async fn get(
        &mut self,
        repo: &Repository,
        filter: Option<Id>,
        at: Option<u32>,
        chunks: usize,
    ) -> Result<Option<SegmentFilters>> {
        let Some(tree) = filter else { return Ok(None) };
        let blob = match self.loaded.get(&tree) {
            Some(f) => f.clone(),
            None => self.load(repo, tree).await?,
        };
        Ok(blob.and_then(|b| SegmentFilters::of(b, at, chunks)))
    }

    /// A filter tree's blob, when made under this repository's key.
    async fn load(&mut self, repo: &Repository, tree: Id) -> Result<Option<std::sync::Arc<SegmentFilter>>> {
        let t = repo.load_tree(&tree).await?;
        let blob = t
            .nodes
            .iter()
            .find(|n| NodeKind::KeyFilter.is(n))
            .and_then(|n| n.content.first());
        let f = match blob {
            Some(b) => Some(SegmentFilter::decode(&repo.read_blob(b).await?, &b.short())?),
            None => None,
        };
        let usable = f
            .filter(|f| f.fingerprint == self.hasher.fingerprint())
            .map(std::sync::Arc::new);
        self.loaded.insert(tree, usable.clone());
        Ok(usable)
    }
}

/// Writes a Kafka image's trees above its partition nodes again, for the
/// commands that change partitions of stored snapshots (`rewrite`, `repair
/// snapshots`): `edit` is given each partition node with its topic's name
/// and says whether it changed it; a topic with a changed partition gets a
/// new partitions tree and size, and the root is stored anew (groups, the
/// commit log and the cluster state are its nodes as they were). Returns
/// the new root and the image's logical size.
///
/// # Errors
/// Unreadable trees; `edit`'s errors; storage errors.
pub async fn rebuild_partitions(
    repo: &Repository,
    session: &mut SaveSession,
    root: &Id,
    edit: &mut (dyn FnMut(&str, &mut Node) -> Result<bool> + Send),
) -> Result<(Id, u64)> {
    let mut root_tree = repo.load_tree(root).await?;
    let mut logical = 0;
    for rn in &mut root_tree.nodes {
        if let (true, Some(tt)) = (NodeKind::Topics.is(rn), rn.subtree) {
            let mut topics = repo.load_tree(&tt).await?;
            for tn in &mut topics.nodes {
                let Some(pt) = tn.subtree else { continue };
                let mut parts = repo.load_tree(&pt).await?;
                let mut changed = false;
                for pn in &mut parts.nodes {
                    changed |= edit(&tn.name, pn)?;
                }
                if changed {
                    tn.size = parts.nodes.iter().map(|n| n.size).sum();
                    tn.subtree = Some(session.save_blob(BlobType::Tree, parts.encode()?).await?);
                }
            }
            rn.size = topics.nodes.iter().map(|n| n.size).sum();
            rn.subtree = Some(session.save_blob(BlobType::Tree, topics.encode()?).await?);
        }
        logical += rn.size;
    }
    Ok((
        session.save_blob(BlobType::Tree, root_tree.encode()?).await?,
        logical,
    ))
}

/// Writes a Kafka image's trees, bottom up, through a save session:
/// segments into partition nodes, partitions into topic nodes, topics and
/// groups into the root (format-spec §14).
pub struct ManifestWriter<'s> {
    session: &'s mut SaveSession,
}

impl std::fmt::Debug for ManifestWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManifestWriter")
    }
}

impl<'s> ManifestWriter<'s> {
    /// Writes trees through `session` (committed by the caller).
    pub fn new(session: &'s mut SaveSession) -> Self {
        ManifestWriter { session }
    }

    /// The save session (to submit data chunks meanwhile).
    pub fn session(&mut self) -> &mut SaveSession {
        self.session
    }

    /// The key filters of a snapshot's new segments (per segment, one per
    /// chunk), stored as [`keyfilter::place`] says: each blob (data) under
    /// a tree of one `key-filter` node, whose id becomes the segment node's
    /// subtree (so every walk keeps, checks and copies it). Returns per
    /// segment its tree and, in a shared blob, its first chunk's index.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn key_filters(
        &mut self,
        fingerprint: [u8; 8],
        segments: Vec<Vec<ChunkFilter>>,
    ) -> Result<Vec<Option<FilterRef>>> {
        let sizes: Vec<(usize, usize)> = segments
            .iter()
            .map(|c| (c.len(), c.iter().map(ChunkFilter::encoded_len).sum()))
            .collect();
        let places = keyfilter::place(&sizes);
        let mut shared: Vec<Vec<ChunkFilter>> = Vec::new();
        let mut own: Vec<Option<Id>> = vec![None; segments.len()];
        for ((chunks, p), own) in segments.into_iter().zip(&places).zip(own.iter_mut()) {
            match *p {
                Placement::None => {}
                Placement::Own => *own = Some(self.key_filter(&SegmentFilter { fingerprint, chunks }).await?),
                Placement::Shared { blob, .. } => {
                    if shared.len() <= blob {
                        shared.resize_with(blob + 1, Vec::new);
                    }
                    if let Some(s) = shared.get_mut(blob) {
                        s.extend(chunks);
                    }
                }
            }
        }
        let mut trees = Vec::with_capacity(shared.len());
        for chunks in shared {
            trees.push(self.key_filter(&SegmentFilter { fingerprint, chunks }).await?);
        }
        Ok(places
            .iter()
            .zip(own)
            .map(|(p, own)| match *p {
                Placement::None => None,
                Placement::Own => own.map(|t| (t, None)),
                Placement::Shared { blob, at } => trees.get(blob).map(|t| (*t, Some(at))),
            })
            .collect())
    }

    /// One filter blob under its `key-filter` tree.
    async fn key_filter(&mut self, filter: &SegmentFilter) -> Result<Id> {
        let bytes = filter.encode();
        let size = bytes.len() as u64;
        let blob = self.session.save_blob(BlobType::Data, bytes).await?;
        let node = NodeKind::KeyFilter.node("keys".into(), size, None, vec![blob], BTreeMap::new());
        let tree = Tree { nodes: vec![node] }.encode()?;
        self.session.save_blob(BlobType::Tree, tree).await
    }

    /// A segment node: the chunks of `[meta.start, meta.end)`, each id with
    /// its metadata, and its key filters ([`ManifestWriter::key_filters`]).
    ///
    /// # Errors
    /// Never in practice.
    pub fn segment(meta_of: SegmentParts, bytes: u64, filter: Option<FilterRef>) -> Result<Node> {
        let (ids, chunks): (Vec<Id>, Vec<ChunkMeta>) = meta_of.chunks.into_iter().unzip();
        let meta = SegmentMeta {
            start: meta_of.start,
            end: meta_of.end,
            records: meta_of.runs.count(),
            runs: meta_of.runs,
            chunks,
            txns: meta_of.txns,
            erased: Vec::new(),
            filter_at: filter.and_then(|f| f.1),
        };
        let subtree = filter.map(|f| f.0);
        Ok(NodeKind::Segment.node(meta.start.to_string(), bytes, subtree, ids, to_meta(&meta)?))
    }

    /// A partition node over its segments (stored as a tree when any).
    /// `meta.records` is recomputed from the segments.
    ///
    /// # Errors
    /// Storage errors; malformed segment nodes.
    pub async fn partition(&mut self, mut meta: PartitionMeta, segments: Vec<Node>) -> Result<Node> {
        let mut records = 0u64;
        let mut size = 0u64;
        for s in &segments {
            records += from_meta::<SegmentMeta>(s)?.records;
            size += s.size;
        }
        meta.records = records;
        let subtree = if segments.is_empty() {
            None
        } else {
            Some(
                self.session
                    .save_blob(BlobType::Tree, Tree { nodes: segments }.encode()?)
                    .await?,
            )
        };
        Ok(NodeKind::Partition.node(
            meta.partition.to_string(),
            size,
            subtree,
            Vec::new(),
            to_meta(&meta)?,
        ))
    }

    /// A topic node over its partition nodes.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn topic(&mut self, name: &str, meta: &TopicMeta, partitions: Vec<Node>) -> Result<Node> {
        let size = partitions.iter().map(|n| n.size).sum();
        let sub = self
            .session
            .save_blob(BlobType::Tree, Tree { nodes: partitions }.encode()?)
            .await?;
        Ok(NodeKind::Topic.node(name.to_string(), size, Some(sub), Vec::new(), to_meta(meta)?))
    }

    /// The root's node of a cluster state: its blob (stored once while the
    /// state is unchanged) and its counts.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn cluster(&mut self, s: &ClusterState) -> Result<Node> {
        let bytes = super::cluster::encode(s).map_err(Error::encode)?;
        let size = bytes.len() as u64;
        let id = self.session.save_blob(BlobType::Data, bytes).await?;
        let meta = to_meta(&s.counts())?;
        Ok(NodeKind::Cluster.node("cluster".into(), size, None, vec![id], meta))
    }

    /// The root over topic nodes, groups, the commit log and the cluster
    /// state's node; returns its id and the image's logical size.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn root(
        &mut self,
        topics: Vec<Node>,
        groups: BTreeMap<String, Vec<GroupOffset>>,
        commits: Option<(CommitsMeta, Vec<Commit>)>,
        cluster: Option<Node>,
    ) -> Result<(Id, u64)> {
        let log = match commits {
            Some((meta, log)) => {
                // JSON lines in chunks of about 1 MiB, cut between lines.
                let mut chunks = Vec::new();
                let mut size = 0u64;
                for part in log.chunks(4096) {
                    let bytes = super::commits::encode(part).map_err(Error::encode)?;
                    size += bytes.len() as u64;
                    chunks.push(self.session.save_blob(BlobType::Data, bytes).await?);
                }
                Some(CommitLog { meta, chunks, size })
            }
            None => None,
        };
        self.root_reusing_log(topics, groups, log, cluster).await
    }

    /// [`ManifestWriter::root`] with a commit log already stored (a
    /// sharded run's combined snapshot takes shard 0's).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn root_reusing_log(
        &mut self,
        topics: Vec<Node>,
        groups: BTreeMap<String, Vec<GroupOffset>>,
        log: Option<CommitLog>,
        cluster: Option<Node>,
    ) -> Result<(Id, u64)> {
        let logical: u64 = topics.iter().map(|n| n.size).sum();
        let topics_tree = self
            .session
            .save_blob(BlobType::Tree, Tree { nodes: topics }.encode()?)
            .await?;
        let mut gnodes = Vec::new();
        for (g, offs) in groups {
            let mut meta = BTreeMap::new();
            meta.insert(
                "offsets".to_string(),
                serde_json::to_value(offs).map_err(Error::encode)?,
            );
            gnodes.push(NodeKind::Group.node(g, 0, None, Vec::new(), meta));
        }
        let groups_tree = self
            .session
            .save_blob(BlobType::Tree, Tree { nodes: gnodes }.encode()?)
            .await?;
        let mut root = Tree {
            nodes: vec![
                NodeKind::Topics.node(
                    "topics".into(),
                    logical,
                    Some(topics_tree),
                    Vec::new(),
                    BTreeMap::new(),
                ),
                NodeKind::Groups.node("groups".into(), 0, Some(groups_tree), Vec::new(), BTreeMap::new()),
            ],
        };
        if let Some(l) = log {
            root.nodes.push(NodeKind::Commits.node(
                "commits".into(),
                l.size,
                None,
                l.chunks,
                to_meta(&l.meta)?,
            ));
        }
        root.nodes.extend(cluster);
        let id = self.session.save_blob(BlobType::Tree, root.encode()?).await?;
        Ok((id, logical))
    }
}

/// What a segment is made of, before it becomes a node.
#[derive(Debug, Clone, Default)]
pub struct SegmentParts {
    /// First offset asked for.
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
    /// Offsets of the records read.
    pub runs: OffsetRuns,
    /// Each chunk's id with its metadata, in order.
    pub chunks: Vec<(Id, ChunkMeta)>,
    /// The committed transactions among the records, when captured.
    pub txns: Option<Vec<TxnSpan>>,
}
