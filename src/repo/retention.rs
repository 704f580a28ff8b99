//! Immutable repositories: every object kvault writes to an Object Lock
//! bucket carries a retention date, and every snapshot extends the dates
//! of the objects it reuses (format-spec §"Object Lock").
//!
//! The rule: a snapshot saved at `t` needs every object it reads (its
//! packs, the index, the keys, the config) locked until at least `t + P`
//! (P, the repository's retention period). New objects are locked at write
//! until `now + P + S` (S, the slack). A snapshot records the date `R` up to
//! which all it needs is locked, and its own file is locked until `R`. The
//! next snapshot finds one (usually its parent) whose `R` still reaches its
//! own `t + P`: the objects that one needs are already locked long enough,
//! so only the packs of trees it does not share are extended. Once no
//! snapshot's `R` reaches (every S), one snapshot extends all it needs. So a
//! snapshot costs one retention request per new object, plus one per
//! reused object once per S.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::walk::{TreeWalker, Visit};
use super::{CONFIG_PATH, FileKind, Repository};
use crate::backend::worm::{LockMode, SharedLock};
use crate::backend::{Backend, BackendResult, ObjectInfo, Payload};
use crate::error::{Error, Result};
use crate::id::Id;

/// The Object Lock settings of a repository (in its config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockPolicy {
    /// Governance or compliance.
    pub mode: LockMode,
    /// P: how long every snapshot stays undeletable, in seconds.
    pub period_secs: u64,
    /// S: how much longer than P objects are locked, so that reused
    /// objects are extended once per S rather than by every snapshot.
    pub slack_secs: u64,
}

impl LockPolicy {
    /// A policy for `period` with the default slack (a quarter of it).
    pub fn new(mode: LockMode, period: Duration) -> LockPolicy {
        LockPolicy {
            mode,
            period_secs: period.as_secs(),
            slack_secs: period.as_secs() / 4,
        }
    }

    fn period(&self) -> Duration {
        Duration::from_secs(self.period_secs)
    }

    fn slack(&self) -> Duration {
        Duration::from_secs(self.slack_secs)
    }

    /// Until when an object written now is locked.
    pub fn new_until(&self, now: SystemTime) -> SystemTime {
        now + self.period() + self.slack()
    }
}

/// Clock difference tolerated between kvault and the storage: a date
/// derived from the storage's modification time is trusted this much less.
const CLOCK_MARGIN: Duration = Duration::from_secs(600);

/// Whether objects at `path` are locked when written (locks stay
/// deletable; a snapshot file is locked with its own date).
fn locked_at_write(path: &str) -> bool {
    !(path.starts_with("locks/") || path.starts_with("snapshots/") || path.starts_with(".tmp"))
}

/// The backend of a locked repository: each object written is locked at
/// once, and a removal removes every version (what frees the space in a
/// versioned bucket; the storage refuses while a version is locked).
#[derive(Debug)]
pub struct RetainingBackend {
    inner: Arc<dyn Backend>,
    lock: SharedLock,
    policy: LockPolicy,
    /// Dates this process set, by path.
    known: Mutex<HashMap<String, SystemTime>>,
}

impl RetainingBackend {
    /// Wraps `inner`, whose storage has `lock`.
    pub fn new(inner: Arc<dyn Backend>, lock: SharedLock, policy: LockPolicy) -> Self {
        RetainingBackend {
            inner,
            lock,
            policy,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Locks `path` until `until`, and remembers it.
    pub async fn retain(&self, path: &str, until: SystemTime) -> BackendResult<()> {
        self.lock.retain(path, self.policy.mode, until).await?;
        self.known_dates().insert(path.to_string(), until);
        Ok(())
    }

    /// The date this process set on `path`, if it did.
    pub fn known(&self, path: &str) -> Option<SystemTime> {
        self.known_dates().get(path).copied()
    }

    fn known_dates(&self) -> std::sync::MutexGuard<'_, HashMap<String, SystemTime>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The repository's policy.
    pub fn policy(&self) -> LockPolicy {
        self.policy
    }
}

#[async_trait]
impl Backend for RetainingBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn read(&self, path: &str) -> BackendResult<Vec<u8>> {
        self.inner.read(path).await
    }
    async fn read_max(&self, path: &str, max: u64) -> BackendResult<Vec<u8>> {
        self.inner.read_max(path, max).await
    }
    async fn read_range(&self, path: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>> {
        self.inner.read_range(path, offset, len).await
    }
    async fn info(&self, path: &str) -> BackendResult<Option<ObjectInfo>> {
        self.inner.info(path).await
    }
    async fn prepare_new(&self) -> BackendResult<()> {
        self.inner.prepare_new().await
    }
    async fn write_new(&self, path: &str, data: Payload) -> BackendResult<()> {
        self.inner.write_new(path, data).await?;
        if locked_at_write(path) {
            self.retain(path, self.policy.new_until(SystemTime::now()))
                .await?;
        }
        Ok(())
    }
    async fn stat(&self, path: &str) -> BackendResult<Option<u64>> {
        self.inner.stat(path).await
    }
    async fn list(&self, dir: &str) -> BackendResult<Vec<ObjectInfo>> {
        self.inner.list(dir).await
    }
    async fn remove(&self, path: &str) -> BackendResult<()> {
        self.lock.purge(path).await
    }
    fn object_lock(&self) -> Option<SharedLock> {
        Some(self.lock.clone())
    }
}

/// `backend` locking every object written, once its storage is found to
/// have Object Lock enabled.
///
/// # Errors
/// [`Error::Unsupported`] for a storage without Object Lock (not S3, or a
/// bucket without it), storage errors.
pub async fn locking_backend(backend: Arc<dyn Backend>, policy: LockPolicy) -> Result<Arc<dyn Backend>> {
    let location = backend.location();
    let lock = backend
        .object_lock()
        .ok_or_else(|| Error::Unsupported(format!("Object Lock on {location}: only S3 buckets have it")))?;
    if !lock.enabled().await? {
        return Err(Error::Unsupported(format!(
            "Object Lock on {location}: the bucket does not have it enabled (create it with Object Lock)"
        )));
    }
    Ok(Arc::new(RetainingBackend::new(backend, lock, policy)))
}

/// What one snapshot's retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sealed {
    /// R: until when all the snapshot needs is locked.
    pub until: String,
    /// Retention requests made.
    pub extended: u64,
    /// Objects found locked long enough already.
    pub already: u64,
}

/// A snapshot already saved, with the date its objects are locked until.
struct Covering {
    tree: Id,
    until: SystemTime,
}

/// The saved snapshot whose date reaches `target`, the parent first.
async fn covering(repo: &Repository, parent: Option<Id>, target: SystemTime) -> Result<Option<Covering>> {
    let mut best: Option<Covering> = None;
    for (id, s) in repo.load_snapshots_lenient().await? {
        let Some(until) = s
            .retained_until
            .as_deref()
            .and_then(crate::backend::objectlock::parse_s3_date)
        else {
            continue;
        };
        if until < target {
            continue;
        }
        let c = Covering { tree: s.tree, until };
        if Some(id) == parent {
            return Ok(Some(c));
        }
        if best.as_ref().is_none_or(|b| b.until < c.until) {
            best = Some(c);
        }
    }
    Ok(best)
}

/// The packs holding the trees of `root` and their data that `covered` (a
/// walked root) does not share.
async fn packs_of(repo: &Repository, root: Id, covered: Option<Id>) -> Result<HashSet<Id>> {
    let index = repo.index();
    let mut walk = TreeWalker::new(repo).read_ahead(8);
    if let Some(c) = covered {
        walk.push(c);
        while let Some(v) = walk.next(&mut |t, _| index.contains(t)).await {
            if let Visit::Failed(_, e) = v {
                return Err(e);
            }
        }
    }
    walk.push(root);
    let mut packs = HashSet::new();
    let mut add = |b: &Id| -> Result<()> {
        let loc = index
            .get(b)
            .ok_or_else(|| Error::corrupt("snapshot", format!("blob {} is not in the index", b.short())))?;
        packs.insert(loc.pack);
        Ok(())
    };
    while let Some(v) = walk.next(&mut |t, _| index.contains(t)).await {
        match v {
            Visit::Tree(t, tree) => {
                add(&t)?;
                for b in tree.nodes.iter().flat_map(|n| n.content.iter()) {
                    add(b)?;
                }
            }
            Visit::Failed(_, e) => return Err(e),
        }
    }
    Ok(packs)
}

/// Locks everything a snapshot of `tree` (child of `parent`) needs until
/// at least now + P, extending only what is not locked long enough; the
/// date it can promise comes back.
///
/// # Errors
/// Storage errors (a writer credential without `s3:PutObjectRetention`
/// fails here, before the snapshot file is written).
pub async fn seal(
    repo: &Repository,
    rb: &RetainingBackend,
    tree: Id,
    parent: Option<Id>,
) -> Result<(SystemTime, Sealed)> {
    let policy = rb.policy();
    let now = SystemTime::now();
    let target = now + policy.period();
    let fresh = policy.new_until(now);
    let cover = covering(repo, parent, target).await?;
    let mut promise = cover.as_ref().map_or(fresh, |c| c.until.min(fresh));
    let mut report = Sealed::default();
    let mut paths: Vec<(String, Option<SystemTime>)> = packs_of(repo, tree, cover.as_ref().map(|c| c.tree))
        .await?
        .into_iter()
        .map(|p| (FileKind::Pack.path(&p), None))
        .collect();
    for kind in [FileKind::Index, FileKind::Key] {
        for (_, info) in repo.list_files(kind).await? {
            paths.push((info.path, info.modified));
        }
    }
    let config = repo.backend().info(CONFIG_PATH).await?.and_then(|i| i.modified);
    paths.push((CONFIG_PATH.to_string(), config));
    let mut extend = Vec::new();
    for (path, modified) in paths {
        // A date this process set, or one set at write (its storage time,
        // less the clock margin), that reaches the target needs nothing.
        let known = rb
            .known(&path)
            .or_else(|| modified.map(|m| policy.new_until(m).checked_sub(CLOCK_MARGIN).unwrap_or(m)));
        match known {
            Some(k) if k >= target => {
                promise = promise.min(k);
                report.already += 1;
            }
            _ => extend.push(path),
        }
    }
    report.extended = extend.len() as u64;
    extend_all(rb, extend, fresh).await?;
    report.until = crate::repo::rfc3339(promise);
    Ok((promise, report))
}

/// Retention requests in flight at once.
pub const RETAIN_CONCURRENCY: usize = 32;

/// Locks every path until `until`, [`RETAIN_CONCURRENCY`] requests at once.
async fn extend_all(rb: &RetainingBackend, paths: Vec<String>, until: SystemTime) -> Result<()> {
    use futures_util::StreamExt as _;
    let mut done = futures_util::stream::iter(paths)
        .map(|p| async move { rb.retain(&p, until).await })
        .buffer_unordered(RETAIN_CONCURRENCY);
    while let Some(r) = done.next().await {
        r?;
    }
    Ok(())
}

/// Until when the storage keeps `path` locked; `None` when it is not.
///
/// # Errors
/// Storage errors.
pub async fn locked_until(repo: &Repository, path: &str) -> Result<Option<SystemTime>> {
    let Some(lock) = repo.backend().object_lock() else {
        return Ok(None);
    };
    let until = lock.retained_until(path).await?;
    Ok(until.filter(|u| *u > SystemTime::now()))
}

/// One object a removal had to leave, locked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    /// Storage path.
    pub path: String,
    /// RFC 3339 date its retention ends.
    pub until: String,
}

impl Waiting {
    /// `path`, waiting until `until`.
    pub fn new(path: String, until: SystemTime) -> Waiting {
        Waiting {
            path,
            until: crate::repo::rfc3339(until),
        }
    }
}

/// Path of the delete probe: where no object lives, and where an
/// append-only writer may not delete.
const DELETE_PROBE: &str = "index/kvault-delete-probe";

/// Fails with [`crate::Refusal::CannotDelete`] when the repository is locked and
/// this credential may not delete (checked before forget or prune change
/// anything).
///
/// # Errors
/// The refusal, storage errors.
pub async fn require_delete(repo: &Repository) -> Result<()> {
    if repo.lock_policy().is_none() {
        return Ok(());
    }
    let Some(lock) = repo.backend().object_lock() else {
        return Ok(());
    };
    if lock.may_delete(DELETE_PROBE).await? {
        Ok(())
    } else {
        Err(Error::Refused(crate::Refusal::CannotDelete {
            location: repo.backend().location(),
        }))
    }
}
