//! Repository locks (format-spec/README.md §11 "Locks"), restic's scheme made
//! safe against clock skew and lost refreshes.
//!
//! Writers (snapshot, restore, copy, key changes) and readers take shared
//! locks; prune takes an exclusive lock. To lock: write our lock file, then
//! list the locks and back off (removing ours) if a conflicting live lock
//! exists.
//!
//! Staleness is judged by the **storage's** clock: a lock whose file the
//! storage last wrote more than [`STALE_AFTER`] before our own lock file
//! was written is stale (so a host whose clock is 40 minutes behind does not
//! look dead), as is a lock of this host whose process is gone. Where the
//! storage keeps no modification times, the time inside the lock is used.
//!
//! A held lock is refreshed (a new file, then the old one removed) every
//! [`REFRESH_INTERVAL`]. Before anything that makes data visible (an index
//! file, a snapshot file, prune's deletions) the holder verifies its lock
//! ([`Repository::verify_locks`]): the lock file must still exist, and the
//! last successful refresh must be recent enough that nobody can have judged
//! it stale. Otherwise the operation stops with [`Error::LockLost`] and
//! reports nothing as saved: a concurrent prune may have removed data it
//! wrote.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::envelope::FileType;
use super::{LOCKS_DIR, Repository, hostname, now_rfc3339, username};
use crate::error::{Error, Result};
use crate::id::Id;

/// How often a held lock is rewritten.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Age (by the storage's clock) after which a lock that was not refreshed
/// is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// Lock timing; tests shorten it ([`Repository::set_lock_timing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockTiming {
    /// How often a held lock is rewritten.
    pub refresh: Duration,
    /// When an unrefreshed lock is stale.
    pub stale_after: Duration,
}

impl Default for LockTiming {
    fn default() -> Self {
        LockTiming {
            refresh: REFRESH_INTERVAL,
            stale_after: STALE_AFTER,
        }
    }
}

impl LockTiming {
    /// How long a holder may go without a successful refresh before it must
    /// assume others see its lock as stale: half the stale age, so a lock is
    /// given up well before anyone may remove what it protects.
    pub fn trust(&self) -> Duration {
        self.stale_after / 2
    }
}

/// The content of a lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// RFC 3339 time written (the writer's clock: for people, not for
    /// staleness when the storage keeps times).
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

    /// Whether the lock is stale. `written` is when the storage wrote the
    /// lock file and `now` the storage's present (the time it wrote our own
    /// newest file); without them, the lock's own time and the local clock.
    pub fn is_stale(
        &self,
        written: Option<SystemTime>,
        now: Option<SystemTime>,
        stale_after: Duration,
    ) -> bool {
        let old = match (written, now) {
            (Some(w), Some(n)) => n.duration_since(w).is_ok_and(|d| d > stale_after),
            _ => match humantime::parse_rfc3339_weak(&self.time) {
                Ok(t) => SystemTime::now().duration_since(t).is_ok_and(|d| d > stale_after),
                Err(_) => true,
            },
        };
        let dead_here = self.hostname == hostname() && !super::process_alive(self.pid);
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

/// A lock file as found: its id, when the storage wrote it, and its content
/// (or why it could not be read).
pub type FoundLock = (Id, Option<SystemTime>, Result<LockInfo>);

/// Reads every lock.
///
/// # Errors
/// Listing errors.
pub async fn list_locks(repo: &Repository) -> Result<Vec<FoundLock>> {
    let mut out = Vec::new();
    for o in repo.backend().list(LOCKS_DIR).await? {
        let Some(id) = o.path.rsplit('/').next().and_then(|n| n.parse::<Id>().ok()) else {
            continue;
        };
        let r = repo.load_file(FileType::Lock, &id).await.and_then(|p| {
            serde_json::from_slice::<LockInfo>(&p).map_err(|e| Error::corrupt(format!("lock {id}"), e))
        });
        match r {
            // Removed between listing and reading: released meanwhile.
            Err(Error::NotFound(_)) => {}
            r => out.push((id, o.modified, r)),
        }
    }
    Ok(out)
}

/// The storage's present: when it wrote our lock file `ours`, else `None`.
fn storage_now(locks: &[FoundLock], ours: Option<Id>) -> Option<SystemTime> {
    locks.iter().find(|l| Some(l.0) == ours).and_then(|l| l.1)
}

fn conflict(locks: &[FoundLock], exclusive: bool, ours: Option<Id>, timing: LockTiming) -> Option<String> {
    let now = storage_now(locks, ours);
    for (id, written, info) in locks {
        if Some(*id) == ours {
            continue;
        }
        match info {
            Ok(l) if l.is_stale(*written, now, timing.stale_after) => {}
            Ok(l) if exclusive || l.exclusive => return Some(l.describe(id)),
            Ok(_) => {}
            Err(e) => {
                return Some(format!("unreadable lock {} ({e})", id.short()));
            }
        }
    }
    None
}

/// What a holder knows about its lock.
#[derive(Debug)]
pub(crate) struct LockHealth {
    /// The current lock file.
    current: Mutex<Id>,
    /// When the lock file was last written successfully (monotonic clock).
    refreshed: Mutex<Instant>,
    /// Why the lock can no longer be relied on.
    lost: Mutex<Option<String>>,
    timing: LockTiming,
}

impl LockHealth {
    fn id(&self) -> Option<Id> {
        self.current.lock().ok().map(|g| *g)
    }

    fn lose(&self, why: String) {
        if let Ok(mut g) = self.lost.lock() {
            g.get_or_insert(why);
        }
    }

    /// Whether the lock still protects us: not lost, refreshed recently
    /// enough, and its file still in storage.
    pub(crate) async fn verify(&self, repo: &Repository) -> Result<()> {
        if let Some(why) = self.lost.lock().ok().and_then(|g| g.clone()) {
            return Err(Error::LockLost(why));
        }
        let since = self
            .refreshed
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or(Duration::MAX);
        if since > self.timing.trust() {
            let why = format!(
                "the lock could not be refreshed for {}; another process may have taken it for stale",
                humantime::format_duration(Duration::from_secs(since.as_secs()))
            );
            self.lose(why.clone());
            return Err(Error::LockLost(why));
        }
        let Some(id) = self.id() else {
            return Err(Error::LockLost("lock state unavailable".into()));
        };
        match repo.backend().info(&format!("{LOCKS_DIR}/{id}")).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                let why = format!("lock {} was removed by another process", id.short());
                self.lose(why.clone());
                Err(Error::LockLost(why))
            }
            // Storage unreachable right now: the refresh age decides.
            Err(_) => Ok(()),
        }
    }
}

/// A held lock; call [`RepoLock::release`] when done. Dropping it without
/// releasing stops the refresh, and the lock goes stale.
#[derive(Debug)]
pub struct RepoLock {
    repo: Repository,
    health: Arc<LockHealth>,
    refresher: tokio::task::JoinHandle<()>,
}

impl RepoLock {
    /// Takes a shared or exclusive lock.
    ///
    /// # Errors
    /// [`Error::Locked`] naming the holder of a conflicting lock.
    pub async fn acquire(repo: &Repository, exclusive: bool) -> Result<RepoLock> {
        // With a lock wait (`--retry-lock`), retry conflicts until it runs out.
        let deadline = Instant::now() + repo.lock_wait();
        let mut pause = Duration::from_millis(100);
        let timing = repo.lock_timing();
        let id = loop {
            match try_lock(repo, exclusive, timing).await {
                Err(Error::Locked(_)) if Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
                r => break r?,
            }
        };
        let health = Arc::new(LockHealth {
            current: Mutex::new(id),
            refreshed: Mutex::new(Instant::now()),
            lost: Mutex::new(None),
            timing,
        });
        let (r, h) = (repo.clone(), health.clone());
        let refresher = tokio::spawn(async move { refresh(r, h, exclusive).await });
        repo.hold_lock(health.clone());
        Ok(RepoLock {
            repo: repo.clone(),
            health,
            refresher,
        })
    }

    /// The id of the current lock file.
    pub fn id(&self) -> Option<Id> {
        self.health.id()
    }

    /// Removes the lock.
    ///
    /// # Errors
    /// Storage errors (the lock then goes stale by itself).
    pub async fn release(self) -> Result<()> {
        self.refresher.abort();
        self.repo.drop_lock(&self.health);
        if let Some(id) = self.id() {
            self.repo.backend().remove(&format!("{LOCKS_DIR}/{id}")).await?;
        }
        Ok(())
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        self.refresher.abort();
        self.repo.drop_lock(&self.health);
    }
}

/// Keeps a lock fresh: a new lock file every refresh interval (retried
/// sooner when it fails), the old one removed. A lock file that vanished
/// was removed by someone else: the lock is lost.
async fn refresh(repo: Repository, h: Arc<LockHealth>, exclusive: bool) {
    let mut wait = h.timing.refresh;
    loop {
        tokio::time::sleep(wait).await;
        let Some(old) = h.id() else { return };
        if let Ok(None) = repo.backend().info(&format!("{LOCKS_DIR}/{old}")).await {
            h.lose(format!("lock {} was removed by another process", old.short()));
            return;
        }
        match write_lock(&repo, exclusive).await {
            Ok(new) => {
                if let Ok(mut g) = h.current.lock() {
                    *g = new;
                }
                if let Ok(mut t) = h.refreshed.lock() {
                    *t = Instant::now();
                }
                let _ = repo.backend().remove(&format!("{LOCKS_DIR}/{old}")).await;
                wait = h.timing.refresh;
            }
            // Try again soon; `verify` gives the lock up once it is too old.
            Err(_) => wait = (h.timing.refresh / 10).max(Duration::from_millis(50)),
        }
    }
}

/// One attempt: write ours, then look for a conflicting live lock (removing
/// ours when there is one). Ours also tells the storage's present time.
async fn try_lock(repo: &Repository, exclusive: bool, timing: LockTiming) -> Result<Id> {
    let id = write_lock(repo, exclusive).await?;
    let locks = match list_locks(repo).await {
        Ok(l) => l,
        Err(e) => {
            let _ = repo.backend().remove(&format!("{LOCKS_DIR}/{id}")).await;
            return Err(e);
        }
    };
    if let Some(who) = conflict(&locks, exclusive, Some(id), timing) {
        let _ = repo.backend().remove(&format!("{LOCKS_DIR}/{id}")).await;
        return Err(Error::Locked(who));
    }
    Ok(id)
}

async fn write_lock(repo: &Repository, exclusive: bool) -> Result<Id> {
    let info = serde_json::to_vec(&LockInfo::mine(exclusive)).map_err(Error::encode)?;
    repo.save_file(FileType::Lock, &info).await
}

/// Removes stale locks (or all locks with `all`); returns the removed ids.
/// Staleness is judged against the storage's present, learnt by writing
/// (and removing) a lock of our own.
///
/// # Errors
/// Storage errors.
pub async fn unlock(repo: &Repository, all: bool) -> Result<Vec<Id>> {
    let probe = write_lock(repo, false).await?;
    let locks = list_locks(repo).await;
    let _ = repo.backend().remove(&format!("{LOCKS_DIR}/{probe}")).await;
    let locks = locks?;
    let now = storage_now(&locks, Some(probe));
    let stale_after = repo.lock_timing().stale_after;
    let mut removed = Vec::new();
    for (id, written, info) in locks {
        if id == probe {
            continue;
        }
        let stale = matches!(&info, Ok(l) if l.is_stale(written, now, stale_after));
        if all || stale {
            repo.backend().remove(&format!("{LOCKS_DIR}/{id}")).await?;
            removed.push(id);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(time: &str) -> LockInfo {
        LockInfo {
            time: time.into(),
            exclusive: false,
            hostname: "elsewhere-host".into(),
            username: "u".into(),
            pid: 1,
        }
    }

    #[test]
    fn staleness_follows_the_storage_clock_not_the_writers() {
        let now = SystemTime::now();
        let stale_after = Duration::from_secs(30 * 60);
        // A writer 40 minutes behind: its lock reads old, storage wrote it now.
        let skewed = info(&humantime::format_rfc3339(now - Duration::from_secs(40 * 60)).to_string());
        assert!(!skewed.is_stale(Some(now), Some(now), stale_after));
        // Without storage times the lock's own time decides.
        assert!(skewed.is_stale(None, None, stale_after));
        // Storage wrote it 31 minutes before its present: stale.
        let fresh = info(&humantime::format_rfc3339(now).to_string());
        assert!(fresh.is_stale(Some(now - Duration::from_secs(31 * 60)), Some(now), stale_after));
        assert!(!fresh.is_stale(Some(now - Duration::from_secs(29 * 60)), Some(now), stale_after));
    }
}
