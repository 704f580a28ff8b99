//! Repository locks (format-spec/README.md §"Locks"), restic's scheme.
//!
//! Writers (snapshot, restore state, key changes) take shared locks; prune
//! takes an exclusive lock. To lock: refuse if a conflicting live lock
//! exists, write our lock, list again and back off if a conflicting live
//! lock appeared meanwhile. A lock is refreshed (a new file, then the old
//! one removed) every [`REFRESH_INTERVAL`]; one older than [`STALE_AFTER`],
//! or one from this host whose process is gone, is stale and ignored, and
//! `kvault unlock` removes it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::envelope::FileType;
use super::{LOCKS_DIR, Repository, hostname, now_rfc3339, username};
use crate::error::{Error, Result};
use crate::id::Id;

/// How often a held lock is rewritten.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Age after which a lock that was not refreshed is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// The content of a lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// RFC 3339 time written.
    pub time: String,
    /// Exclusive (prune) or shared.
    pub exclusive: bool,
    /// Host of the holder.
    pub hostname: String,
    /// User of the holder.
    pub username: String,
    /// Process id of the holder.
    pub pid: u32,
}

impl LockInfo {
    fn mine(exclusive: bool) -> LockInfo {
        LockInfo {
            time: now_rfc3339(),
            exclusive,
            hostname: hostname(),
            username: username(),
            pid: std::process::id(),
        }
    }

    /// Whether the lock is stale: too old, or this host's process is gone.
    pub fn is_stale(&self) -> bool {
        let old = match humantime::parse_rfc3339_weak(&self.time) {
            Ok(t) => SystemTime::now()
                .duration_since(t)
                .map(|d| d > STALE_AFTER)
                .unwrap_or(false),
            Err(_) => true,
        };
        let dead_here =
            self.hostname == hostname() && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists();
        old || dead_here
    }

    fn describe(&self, id: &Id) -> String {
        format!(
            "{} lock {} by {}@{} (pid {}) since {}",
            if self.exclusive { "exclusive" } else { "shared" },
            id.short(),
            self.username,
            self.hostname,
            self.pid,
            self.time
        )
    }
}

/// Reads every lock: `(id, Ok(info))`, or the error for one unreadable.
///
/// # Errors
/// Listing errors.
pub async fn list_locks(repo: &Repository) -> Result<Vec<(Id, Result<LockInfo>)>> {
    let mut out = Vec::new();
    for id in repo.list_ids(LOCKS_DIR).await? {
        let r = repo
            .load_file(FileType::Lock, LOCKS_DIR, &id)
            .await
            .and_then(|p| {
                serde_json::from_slice::<LockInfo>(&p).map_err(|e| Error::corrupt(format!("lock {id}"), e))
            });
        match r {
            // Removed between listing and reading: released meanwhile.
            Err(Error::NotFound(_)) => {}
            r => out.push((id, r)),
        }
    }
    Ok(out)
}

async fn conflict(repo: &Repository, exclusive: bool, ours: Option<Id>) -> Result<Option<String>> {
    for (id, info) in list_locks(repo).await? {
        if Some(id) == ours {
            continue;
        }
        match info {
            Ok(l) if l.is_stale() => {}
            Ok(l) if exclusive || l.exclusive => return Ok(Some(l.describe(&id))),
            Ok(_) => {}
            Err(e) => {
                return Ok(Some(format!(
                    "unreadable lock {} ({e}); `kvault unlock --remove-all` removes it",
                    id.short()
                )));
            }
        }
    }
    Ok(None)
}

/// A held lock; call [`RepoLock::release`] when done. Dropping it without
/// releasing stops the refresh, and the lock goes stale.
#[derive(Debug)]
pub struct RepoLock {
    repo: Repository,
    current: Arc<Mutex<Id>>,
    refresher: tokio::task::JoinHandle<()>,
}

impl RepoLock {
    /// Takes a shared or exclusive lock.
    ///
    /// # Errors
    /// [`Error::Locked`] naming the holder of a conflicting lock.
    pub async fn acquire(repo: &Repository, exclusive: bool) -> Result<RepoLock> {
        // With a lock wait (`--retry-lock`), retry conflicts until it runs out.
        let deadline = std::time::Instant::now() + repo.lock_wait();
        let mut pause = std::time::Duration::from_millis(100);
        let id = loop {
            match try_lock(repo, exclusive).await {
                Err(Error::Locked(_)) if std::time::Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(10));
                }
                r => break r?,
            }
        };
        let current = Arc::new(Mutex::new(id));
        let (r, c) = (repo.clone(), current.clone());
        let refresher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_INTERVAL).await;
                if let Ok(new) = write_lock(&r, exclusive).await {
                    let old = c.lock().ok().map(|mut g| std::mem::replace(&mut *g, new));
                    if let Some(old) = old {
                        let _ = r.backend().remove(&format!("{LOCKS_DIR}/{old}")).await;
                    }
                }
            }
        });
        Ok(RepoLock {
            repo: repo.clone(),
            current,
            refresher,
        })
    }

    /// The id of the current lock file.
    pub fn id(&self) -> Option<Id> {
        self.current.lock().ok().map(|g| *g)
    }

    /// Removes the lock.
    ///
    /// # Errors
    /// Storage errors (the lock then goes stale by itself).
    pub async fn release(self) -> Result<()> {
        self.refresher.abort();
        if let Some(id) = self.id() {
            self.repo.backend().remove(&format!("{LOCKS_DIR}/{id}")).await?;
        }
        Ok(())
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

/// One attempt: check, write, check again (removing ours on a conflict).
async fn try_lock(repo: &Repository, exclusive: bool) -> Result<Id> {
    if let Some(who) = conflict(repo, exclusive, None).await? {
        return Err(Error::Locked(who));
    }
    let id = write_lock(repo, exclusive).await?;
    if let Some(who) = conflict(repo, exclusive, Some(id)).await? {
        let _ = repo.backend().remove(&format!("{LOCKS_DIR}/{id}")).await;
        return Err(Error::Locked(who));
    }
    Ok(id)
}

async fn write_lock(repo: &Repository, exclusive: bool) -> Result<Id> {
    let info = serde_json::to_vec(&LockInfo::mine(exclusive)).map_err(|e| Error::Internal(e.to_string()))?;
    repo.save_file(FileType::Lock, LOCKS_DIR, &info).await
}

/// Removes stale locks (or all locks with `all`); returns the removed ids.
///
/// # Errors
/// Storage errors.
pub async fn unlock(repo: &Repository, all: bool) -> Result<Vec<Id>> {
    let mut removed = Vec::new();
    for (id, info) in list_locks(repo).await? {
        let stale = matches!(&info, Ok(l) if l.is_stale());
        if all || stale {
            repo.backend().remove(&format!("{LOCKS_DIR}/{id}")).await?;
            removed.push(id);
        }
    }
    Ok(removed)
}
