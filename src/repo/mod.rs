//! The repository: an encrypted, deduplicating, content-addressed store of
//! blobs in packs, with index files, trees, snapshots, keys and locks, over
//! any [`Backend`] (format-spec/README.md is the normative description).
//!
//! Layout (relative to the repository root):
//!
//! ```text
//! config                 sealed Config
//! keys/<id>              key files (JSON; id = BLAKE3 of the file)
//! locks/<id>             sealed lock files (random id)
//! snapshots/<id>         sealed snapshots (id = BLAKE3 of the file)
//! index/<id>             sealed index files (id = BLAKE3 of the file)
//! data/<id[0..2]>/<id>   packs (id = BLAKE3 of the file)
//! ```
//!
//! Write ordering (MUST): packs, then the index naming them, then the
//! snapshot naming their blobs. Every object but `config` is named by a hash
//! of its bytes or a random id, and never rewritten.

pub mod chunker;
pub mod config;
pub mod crypto;
pub mod envelope;
pub mod index;
pub mod keyfile;
pub mod lock;
pub mod pack;
pub mod retention;
pub mod snapshot;
pub mod tree;
pub mod walk;
pub mod writer;

use std::sync::{Arc, Mutex, RwLock};

use crate::backend::{Backend, BackendErrorKind, ObjectInfo};
use crate::error::{Error, Result};
use crate::id::Id;

use chunker::Chunker;
use config::Config;
use crypto::Keys;
use envelope::FileType;
use index::{IndexFile, MasterIndex};
use keyfile::{KdfParams, KeyFile, KeyMeta};
use pack::{BlobType, open_blob};
use snapshot::Snapshot;
use tree::Tree;

/// Directory of key files.
pub const KEYS_DIR: &str = "keys";
/// Directory of lock files.
pub const LOCKS_DIR: &str = "locks";
/// Directory of snapshots.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// Directory of index files.
pub const INDEX_DIR: &str = "index";
/// Directory of packs.
pub const DATA_DIR: &str = "data";
/// Path of the config.
pub const CONFIG_PATH: &str = "config";
/// Where interrupted writes leave partial files (the fs backend's atomic
/// write directory).
pub const TMP_DIR: &str = ".tmp";

/// The kinds of file a repository stores, by where they live. Operations
/// name files by kind and id; only the repository builds paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A key file (`keys/<id>`).
    Key,
    /// A lock (`locks/<id>`).
    Lock,
    /// A snapshot (`snapshots/<id>`).
    Snapshot,
    /// An index file (`index/<id>`).
    Index,
    /// A pack (`data/<2 hex>/<id>`).
    Pack,
}

impl FileKind {
    /// The directory the kind lives in.
    pub fn dir(self) -> &'static str {
        match self {
            FileKind::Key => KEYS_DIR,
            FileKind::Lock => LOCKS_DIR,
            FileKind::Snapshot => SNAPSHOTS_DIR,
            FileKind::Index => INDEX_DIR,
            FileKind::Pack => DATA_DIR,
        }
    }

    /// The storage path of file `id` of this kind.
    pub fn path(self, id: &Id) -> String {
        match self {
            FileKind::Pack => pack_path(id),
            k => format!("{}/{id}", k.dir()),
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Key => "key",
            FileKind::Lock => "lock",
            FileKind::Snapshot => "snapshot",
            FileKind::Index => "index",
            FileKind::Pack => "pack",
        }
    }
}

impl From<FileType> for FileKind {
    fn from(t: FileType) -> Self {
        match t {
            FileType::Index => FileKind::Index,
            FileType::Snapshot => FileKind::Snapshot,
            FileType::Lock => FileKind::Lock,
            // The config has no id; its envelope is read by path.
            FileType::Config => FileKind::Key,
        }
    }
}

/// The storage path of a pack.
pub fn pack_path(id: &Id) -> String {
    let h = id.to_hex();
    format!("{DATA_DIR}/{}/{h}", &h[..2])
}

/// Every index file of a repository, as [`Repository::read_index_files`]
/// found them (each list in id order).
#[derive(Debug, Default)]
pub struct IndexFiles {
    /// The files that opened.
    pub files: Vec<(Id, IndexFile)>,
    /// The files that did not, and why.
    pub unreadable: Vec<(Id, Error)>,
}

/// The current time, RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// A time, RFC 3339 with nanoseconds, UTC.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Whether a process of this host is alive (for lock staleness), by
/// `kill(pid, 0)` on every Unix (no `/proc` needed). Where it cannot be
/// told, it is assumed alive: a lock then goes stale by age only, never by
/// mistake.
pub fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
            return false;
        };
        // kill(pid, 0): no such process is ESRCH; one we may not signal
        // (EPERM) is alive all the same.
        match rustix::process::test_kill_process(pid) {
            Ok(()) => true,
            Err(e) => e != rustix::io::Errno::SRCH,
        }
    }
    #[cfg(not(unix))]
    {
        // No portable liveness check: a lock is judged by its age only.
        let _ = pid;
        true
    }
}

/// Largest key file accepted (a hostile one is refused unread).
pub const MAX_KEY_FILE: u64 = 64 << 10;
/// Largest lock file accepted.
pub const MAX_LOCK_FILE: u64 = 64 << 10;
/// Largest config accepted.
pub const MAX_CONFIG_FILE: u64 = 1 << 20;
/// Largest snapshot file accepted.
pub const MAX_SNAPSHOT_FILE: u64 = 16 << 20;
/// Largest index file accepted.
pub const MAX_INDEX_FILE: u64 = 256 << 20;
/// Key files tried when opening, cheapest first (a hostile storage could
/// plant many).
pub const MAX_KEYS_TRIED: usize = 64;

/// The largest object of a directory's kind.
fn max_size_of(dir: &str) -> u64 {
    match dir {
        KEYS_DIR => MAX_KEY_FILE,
        LOCKS_DIR => MAX_LOCK_FILE,
        SNAPSHOTS_DIR => MAX_SNAPSHOT_FILE,
        INDEX_DIR => MAX_INDEX_FILE,
        _ => MAX_CONFIG_FILE,
    }
}

/// A backend error reading `what`: hostile objects read as corrupt.
fn read_error(e: crate::backend::BackendError, what: String) -> Error {
    match e.kind {
        BackendErrorKind::NotFound => Error::NotFound(what),
        BackendErrorKind::Refused => Error::corrupt(what, e.message),
        _ => Error::Backend(e),
    }
}

/// This host's name (for snapshots, keys, locks).
pub fn hostname() -> String {
    #[cfg(unix)]
    let name = Some(rustix::system::uname().nodename().to_string_lossy().into_owned());
    #[cfg(not(unix))]
    let name = std::env::var("COMPUTERNAME").ok();
    name.filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The current user's name.
pub fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

struct Inner {
    backend: Arc<dyn Backend>,
    keys: Keys,
    config: Config,
    chunker: Chunker,
    key_id: Id,
    /// The backend itself, when the repository is locked (Object Lock).
    retaining: Option<Arc<retention::RetainingBackend>>,
    index: RwLock<Arc<MasterIndex>>,
    /// How long lock acquisition retries while a conflicting lock is held
    /// (milliseconds; 0: fail at once).
    lock_wait_ms: std::sync::atomic::AtomicU64,
    /// Lock timing (tests shorten it).
    lock_timing: Mutex<lock::LockTiming>,
    /// Locks this process holds on the repository.
    held: Mutex<Vec<Arc<lock::LockHealth>>>,
    /// Index files that could not be read (their packs' blobs count as
    /// missing until `repair index`).
    bad_index: Mutex<Vec<(Id, String)>>,
    /// Where warnings go (the CLI prints them; nothing by default).
    warn: Mutex<Option<Warn>>,
}

/// Receives warnings the repository layer has no other way to report.
pub type Warn = Arc<dyn Fn(&str) + Send + Sync>;

/// An open repository. Cheap to clone; clones share the index.
#[derive(Clone)]
pub struct Repository {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.inner.backend.location())
    }
}

/// Options for `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Chunker parameters.
    pub chunker: chunker::ChunkerParams,
    /// Target pack size.
    pub pack_size: u32,
    /// zstd level.
    pub compression_level: i32,
    /// Argon2id parameters of the first key.
    pub kdf: KdfParams,
    /// Object Lock retention of every object (an S3 bucket with Object
    /// Lock enabled).
    pub object_lock: Option<retention::LockPolicy>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: chunker::ChunkerParams::default(),
            pack_size: config::DEFAULT_PACK_SIZE,
            compression_level: config::DEFAULT_COMPRESSION_LEVEL,
            kdf: KdfParams::default(),
            object_lock: None,
        }
    }
}

fn no_repo(backend: &dyn Backend, reason: impl std::fmt::Display) -> Error {
    Error::NoRepository {
        location: backend.location(),
        reason: reason.to_string(),
    }
}

/// Reads a content-addressed file (at most its kind's largest size) and
/// checks its bytes hash to its name.
async fn read_named(backend: &dyn Backend, dir: &str, id: &Id, what: &str) -> Result<Vec<u8>> {
    let b = backend
        .read_max(&format!("{dir}/{id}"), max_size_of(dir))
        .await
        .map_err(|e| read_error(e, format!("{what} {id}")))?;
    if Id::hash(&b) != *id {
        return Err(Error::corrupt(
            format!("{what} {id}"),
            "content does not match its name",
        ));
    }
    Ok(b)
}

/// Writes a content-addressed file; an existing one is the same bytes.
async fn write_named(backend: &dyn Backend, dir: &str, bytes: Vec<u8>) -> Result<Id> {
    let id = Id::hash(&bytes);
    match backend.write_new(&format!("{dir}/{id}"), bytes.into()).await {
        Ok(()) => Ok(id),
        Err(e) if e.kind == BackendErrorKind::AlreadyExists => Ok(id),
        Err(e) => Err(e.into()),
    }
}

/// Lists the ids in a directory, ignoring names that are not ids.
async fn list_ids_in(backend: &dyn Backend, dir: &str) -> Result<Vec<Id>> {
    let mut ids: Vec<Id> = backend
        .list(dir)
        .await?
        .iter()
        .filter_map(|o| o.path.rsplit('/').next().and_then(|n| n.parse().ok()))
        .collect();
    ids.sort();
    Ok(ids)
}

impl Repository {
    /// Creates a repository: a key for `password`, then the config (written
    /// last, so a repository exists only once it is complete).
    ///
    /// # Errors
    /// [`Error::AlreadyInitialized`] when a config exists; storage errors.
    pub async fn init(backend: Arc<dyn Backend>, password: &[u8], opts: &InitOptions) -> Result<Repository> {
        if backend.stat(CONFIG_PATH).await?.is_some() {
            return Err(Error::AlreadyInitialized(backend.location()));
        }
        let mut config = Config::new(opts.chunker, opts.pack_size, opts.compression_level)?;
        opts.kdf.validate()?;
        let raw = backend.clone();
        let backend = match opts.object_lock {
            None => backend,
            Some(policy) => {
                config.features.push(config::OBJECT_LOCK_FEATURE.to_string());
                config.object_lock = Some(policy);
                config.validate()?;
                retention::locking_backend(backend, policy).await?
            }
        };
        backend.prepare_new().await?;
        let keys = Keys::generate()?;
        let key_id = add_key_file(backend.as_ref(), &keys, password, opts.kdf).await?;
        let payload = serde_json::to_vec(&config).map_err(Error::encode)?;
        let sealed = envelope::seal_file(&keys, FileType::Config, &payload)?;
        match backend.write_new(CONFIG_PATH, sealed.into()).await {
            Err(e) if e.kind == BackendErrorKind::AlreadyExists => {
                return Err(Error::AlreadyInitialized(backend.location()));
            }
            r => r?,
        }
        Repository::assemble(raw, keys, config, key_id)
    }

    fn assemble(backend: Arc<dyn Backend>, keys: Keys, config: Config, key_id: Id) -> Result<Repository> {
        let chunker = Chunker::new(keys.chunker_key(), config.chunker)?;
        let retaining = match config.object_lock {
            None => None,
            Some(policy) => {
                let lock = backend.object_lock().ok_or_else(|| {
                    Error::Unsupported(format!(
                        "Object Lock on {} (the repository's config asks for it)",
                        backend.location()
                    ))
                })?;
                Some(Arc::new(retention::RetainingBackend::new(
                    backend.clone(),
                    lock,
                    policy,
                )))
            }
        };
        let backend = match &retaining {
            Some(r) => r.clone() as Arc<dyn Backend>,
            None => backend,
        };
        Ok(Repository {
            inner: Arc::new(Inner {
                backend,
                keys,
                config,
                chunker,
                key_id,
                retaining,
                index: RwLock::new(Arc::new(MasterIndex::default())),
                lock_wait_ms: std::sync::atomic::AtomicU64::new(0),
                lock_timing: Mutex::new(lock::LockTiming::default()),
                held: Mutex::new(Vec::new()),
                bad_index: Mutex::new(Vec::new()),
                warn: Mutex::new(None),
            }),
        })
    }

    /// Opens a repository with a password: tries every key file until one
    /// unwraps a master key that opens the config.
    ///
    /// # Errors
    /// [`Error::NoRepository`], [`Error::WrongPassword`], or
    /// [`Error::Corrupt`] naming a damaged key file or config.
    pub async fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        Self::open_warning(backend, password, &|_| {}).await
    }

    /// [`Repository::open`], reporting key files it skipped (malformed,
    /// over the KDF limits, beyond [`MAX_KEYS_TRIED`]) through `warn`.
    ///
    /// # Errors
    /// As [`Repository::open`].
    pub async fn open_warning(
        backend: Arc<dyn Backend>,
        password: &[u8],
        warn: &(dyn Fn(&str) + Sync),
    ) -> Result<Repository> {
        let config_bytes = match backend.read_max(CONFIG_PATH, MAX_CONFIG_FILE).await {
            Ok(b) => b,
            Err(e) if e.kind == BackendErrorKind::NotFound => {
                return Err(no_repo(backend.as_ref(), "no config object"));
            }
            Err(e) => return Err(read_error(e, "config".into())),
        };
        let key_ids = list_ids_in(backend.as_ref(), KEYS_DIR).await?;
        // Read and check every key file first, then try them cheapest
        // first: a planted key with huge KDF costs (hostile storage picks
        // its name, so its place in id order) must not go first.
        let mut first_corrupt = None;
        let mut candidates: Vec<(u64, Id, KeyFile)> = Vec::new();
        for kid in &key_ids {
            let decoded = match read_named(backend.as_ref(), KEYS_DIR, kid, "key").await {
                Ok(b) => KeyFile::decode(&b, &kid.to_hex()),
                Err(e) => Err(e),
            };
            match decoded {
                Ok(kf) => candidates.push((kf.kdf.params.cost(), *kid, kf)),
                Err(Error::NotFound(_)) => {}
                Err(e @ (Error::Backend(_) | Error::Io { .. })) => return Err(e),
                // Malformed, over the KDF limits, unknown version: skipped.
                Err(e) => {
                    warn(&format!("key {} skipped: {e}", kid.short()));
                    first_corrupt.get_or_insert(e);
                }
            }
        }
        candidates.sort_by_key(|c| (c.0, c.1));
        if candidates.len() > MAX_KEYS_TRIED {
            warn(&format!(
                "{} key files; only the {MAX_KEYS_TRIED} cheapest to try are tried",
                candidates.len()
            ));
            candidates.truncate(MAX_KEYS_TRIED);
        }
        let mut config_err = None;
        for (_, kid, kf) in candidates {
            let (pw, name) = (password.to_vec(), kid.to_hex());
            let opened = tokio::task::spawn_blocking(move || {
                let pw = zeroize::Zeroizing::new(pw);
                kf.open(&pw, &name)
            })
            .await
            .map_err(|e| Error::worker("the key derivation", e))?;
            let keys = match opened {
                Ok(Some(k)) => k,
                Ok(None) => continue,
                Err(e) => {
                    warn(&format!("key {} skipped: {e}", kid.short()));
                    continue;
                }
            };
            // A key left behind by an interrupted init wraps another master
            // key: it opens, but the config does not. Try the next one.
            match envelope::open_file(&keys, FileType::Config, &config_bytes, "config") {
                Ok(plain) => {
                    let config = Config::decode(&plain)?;
                    return Repository::assemble(backend, keys, config, kid);
                }
                Err(e) => {
                    config_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = config_err {
            return Err(e);
        }
        if key_ids.is_empty() {
            return Err(no_repo(backend.as_ref(), "no key files"));
        }
        if let Some(e) = first_corrupt.filter(|_| key_ids.len() == 1) {
            return Err(e);
        }
        Err(Error::WrongPassword)
    }

    /// Sends the repository's warnings (unreadable index files) to `w`.
    pub fn set_warn(&self, w: Warn) {
        if let Ok(mut g) = self.inner.warn.lock() {
            *g = Some(w);
        }
    }

    fn warn(&self, msg: &str) {
        if let Some(w) = self.inner.warn.lock().ok().and_then(|g| g.clone()) {
            w(msg);
        }
    }

    /// Index files the last [`Repository::load_index`] could not read.
    pub fn bad_index_files(&self) -> Vec<(Id, String)> {
        self.inner.bad_index.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// The lock timing.
    pub fn lock_timing(&self) -> lock::LockTiming {
        self.inner.lock_timing.lock().map(|g| *g).unwrap_or_default()
    }

    /// Sets the lock timing (tests shorten refreshes and staleness).
    pub fn set_lock_timing(&self, t: lock::LockTiming) {
        if let Ok(mut g) = self.inner.lock_timing.lock() {
            *g = t;
        }
    }

    pub(crate) fn hold_lock(&self, h: Arc<lock::LockHealth>) {
        if let Ok(mut g) = self.inner.held.lock() {
            g.push(h);
        }
    }

    pub(crate) fn drop_lock(&self, h: &Arc<lock::LockHealth>) {
        if let Ok(mut g) = self.inner.held.lock() {
            g.retain(|x| !Arc::ptr_eq(x, h));
        }
    }

    /// Checks that every lock this process holds still protects it (before
    /// an index or snapshot file makes data visible, and before prune
    /// deletes): see [`lock`].
    ///
    /// # Errors
    /// [`Error::LockLost`].
    pub async fn verify_locks(&self) -> Result<()> {
        let held: Vec<Arc<lock::LockHealth>> = self.inner.held.lock().map(|g| g.clone()).unwrap_or_default();
        for h in held {
            h.verify(self).await?;
        }
        Ok(())
    }

    /// The storage backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The repository keys.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The keyed chunker.
    pub fn chunker(&self) -> &Chunker {
        &self.inner.chunker
    }

    /// Makes lock acquisition retry for up to `wait` while another process
    /// holds a conflicting lock (`--retry-lock`).
    pub fn set_lock_wait(&self, wait: std::time::Duration) {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.inner
            .lock_wait_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long lock acquisition retries.
    pub fn lock_wait(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.inner.lock_wait_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The id of the key file that opened the repository.
    pub fn key_id(&self) -> Id {
        self.inner.key_id
    }

    /// Adds a key file for another password.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<Id> {
        add_key_file(self.backend().as_ref(), self.keys(), password, kdf).await
    }

    /// The ids of the files of a kind (packs included), sorted.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_ids(&self, kind: FileKind) -> Result<Vec<Id>> {
        list_ids_in(self.backend().as_ref(), kind.dir()).await
    }

    /// The files of a kind with their sizes and times, by id. Objects that
    /// are not files of the kind (a name that is not an id, a pack in the
    /// wrong fan-out directory) are left out; [`Repository::list_all`]
    /// returns them too.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_files(&self, kind: FileKind) -> Result<Vec<(Id, ObjectInfo)>> {
        Ok(self.list_all(kind).await?.0)
    }

    /// The files of a kind, and the stray objects in its directory.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_all(&self, kind: FileKind) -> Result<(Vec<(Id, ObjectInfo)>, Vec<ObjectInfo>)> {
        let mut files = Vec::new();
        let mut strays = Vec::new();
        for o in self.backend().list(kind.dir()).await? {
            match o.path.rsplit('/').next().and_then(|n| n.parse::<Id>().ok()) {
                Some(id) if o.path == kind.path(&id) => files.push((id, o)),
                _ => strays.push(o),
            }
        }
        files.sort_by_key(|(id, _)| *id);
        Ok((files, strays))
    }

    /// The temporary files interrupted writes left behind (`.tmp/`).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_temp(&self) -> Result<Vec<ObjectInfo>> {
        Ok(self.backend().list(TMP_DIR).await?)
    }

    /// Removes a temporary file listed by [`Repository::list_temp`].
    ///
    /// # Errors
    /// A path outside `.tmp/`; storage errors.
    pub async fn remove_temp(&self, o: &ObjectInfo) -> Result<()> {
        if !o.path.starts_with(&format!("{TMP_DIR}/")) {
            return Err(Error::bug(format!("{} is not a temporary file", o.path)));
        }
        Ok(self.backend().remove(&o.path).await?)
    }

    /// Removes a file (gone already is fine).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn remove_file(&self, kind: FileKind, id: &Id) -> Result<()> {
        Ok(self.backend().remove(&kind.path(id)).await?)
    }

    /// The stored bytes of a file, bounded by its kind's size limit, not
    /// verified against its name.
    ///
    /// # Errors
    /// [`Error::NotFound`], a file over the limit (corrupt), storage errors.
    pub async fn read_raw(&self, kind: FileKind, id: &Id) -> Result<Vec<u8>> {
        self.read_raw_max(kind, id, self.max_size(kind)).await
    }

    /// [`Repository::read_raw`] with an explicit limit.
    ///
    /// # Errors
    /// As [`Repository::read_raw`].
    pub async fn read_raw_max(&self, kind: FileKind, id: &Id, max: u64) -> Result<Vec<u8>> {
        self.backend()
            .read_max(&kind.path(id), max)
            .await
            .map_err(|e| read_error(e, format!("{} {id}", kind.name())))
    }

    /// The largest file of a kind this repository accepts: packs at most a
    /// full pack plus a largest chunk and slack.
    pub fn max_size(&self, kind: FileKind) -> u64 {
        match kind {
            FileKind::Pack => {
                u64::from(self.config().pack_size) + u64::from(self.config().chunker.max_size) + (64 << 20)
            }
            k => max_size_of(k.dir()),
        }
    }

    /// Resolves a unique id prefix (or `latest` for snapshots).
    ///
    /// # Errors
    /// [`Error::NotFound`] or an ambiguous prefix.
    pub async fn find_id(&self, kind: FileKind, prefix: &str) -> Result<Id> {
        if let Ok(id) = prefix.parse::<Id>() {
            return Ok(id);
        }
        let what = kind.name();
        if kind == FileKind::Snapshot && prefix == "latest" {
            // A shard's part of a run is never "latest": its run is, once
            // complete.
            let mut snaps: Vec<_> = self
                .load_snapshots()
                .await?
                .into_iter()
                .filter(|(_, s)| !s.is_shard_part())
                .collect();
            snaps.sort_by(|a, b| a.1.time.cmp(&b.1.time));
            return snaps
                .last()
                .map(|(id, _)| *id)
                .ok_or_else(|| Error::NotFound("any snapshot".into()));
        }
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::bad_value(
                "id prefix",
                prefix,
                format!("hex digits of a {what} id"),
            ));
        }
        let p = prefix.to_ascii_lowercase();
        let m: Vec<Id> = self
            .list_ids(kind)
            .await?
            .into_iter()
            .filter(|i| i.to_hex().starts_with(&p))
            .collect();
        match m.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NotFound(format!("{what} {prefix}"))),
            _ => Err(Error::bad_value(
                "id prefix",
                prefix,
                format!("a prefix of one {what} ({} match)", m.len()),
            )),
        }
    }

    /// Seals and stores a content-addressed file of type `t` in `dir`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn save_file(&self, t: FileType, payload: &[u8]) -> Result<Id> {
        let sealed = envelope::seal_file(self.keys(), t, payload)?;
        write_named(self.backend().as_ref(), FileKind::from(t).dir(), sealed).await
    }

    /// Reads, verifies and opens a content-addressed file.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Corrupt`], storage errors.
    pub async fn load_file(&self, t: FileType, id: &Id) -> Result<Vec<u8>> {
        let b = read_named(self.backend().as_ref(), FileKind::from(t).dir(), id, t.name()).await?;
        envelope::open_file(self.keys(), t, &b, &format!("{} {id}", t.name()))
    }

    /// Reads and decodes one index file.
    ///
    /// # Errors
    /// As [`Repository::load_file`].
    pub async fn load_index_file(&self, id: &Id) -> Result<IndexFile> {
        let p = self.load_file(FileType::Index, id).await?;
        IndexFile::decode(&p, &format!("index {id}"))
    }

    /// Reads every index file, in parallel: the one index loader. Files
    /// that do not open go to [`IndexFiles::unreadable`] with the error;
    /// what that means is each caller's policy (the master index skips
    /// corrupt ones with a warning, `check` reports each, prune refuses).
    ///
    /// # Errors
    /// Listing the index files failing.
    pub async fn read_index_files(&self) -> Result<IndexFiles> {
        let ids = self.list_ids(FileKind::Index).await?;
        let mut set = tokio::task::JoinSet::new();
        for id in ids {
            let r = self.clone();
            set.spawn(async move { (id, r.load_index_file(&id).await) });
        }
        let mut out = IndexFiles::default();
        while let Some(r) = set.join_next().await {
            match r.map_err(|e| Error::worker("an index read", e))? {
                (id, Ok(f)) => out.files.push((id, f)),
                (id, Err(e)) => out.unreadable.push((id, e)),
            }
        }
        out.files.sort_by_key(|(id, _)| *id);
        out.unreadable.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// Writes `packs` as new index files of at most 2,000 packs each, the
    /// last superseding `before` (every index file that existed): prune's
    /// and `repair index`'s order, so until the last one exists the old
    /// index stays authoritative (format-spec §12). Returns the ids written.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn write_index_superseding(
        &self,
        packs: Vec<index::IndexPack>,
        before: &[Id],
    ) -> Result<std::collections::HashSet<Id>> {
        const PACKS_PER_INDEX: usize = 2000;
        let chunks: Vec<Vec<index::IndexPack>> = if packs.is_empty() {
            vec![Vec::new()]
        } else {
            packs
                .chunks(PACKS_PER_INDEX)
                .map(<[index::IndexPack]>::to_vec)
                .collect()
        };
        let n = chunks.len();
        let mut written = std::collections::HashSet::new();
        for (i, c) in chunks.into_iter().enumerate() {
            let f = IndexFile {
                supersedes: if i + 1 == n { before.to_vec() } else { Vec::new() },
                packs: c,
            };
            written.insert(self.save_file(FileType::Index, &f.encode()).await?);
        }
        Ok(written)
    }

    /// Makes `files` the master index (superseded files left out).
    pub fn use_index_files(&self, files: &[(Id, IndexFile)]) -> Arc<MasterIndex> {
        let m = Arc::new(MasterIndex::from_files(files));
        self.set_index(m.clone());
        m
    }

    /// Reads every index file into the master index.
    ///
    /// # Errors
    /// An index file that cannot be read for another reason than damage
    /// (storage errors). Damaged or planted ones are skipped with a
    /// warning: their packs' blobs count as missing (reads fail naming
    /// them, writers store them again); prune refuses until `kvault repair
    /// index`.
    pub async fn load_index(&self) -> Result<Arc<MasterIndex>> {
        let IndexFiles { files, unreadable } = self.read_index_files().await?;
        let mut bad = Vec::new();
        for (id, e) in unreadable {
            match e {
                Error::Corrupt { .. } => bad.push((id, e.to_string())),
                e => return Err(e),
            }
        }
        for (id, e) in &bad {
            self.warn(&format!(
                "index file {} skipped ({e}); run `kvault repair index`",
                id.short()
            ));
        }
        if let Ok(mut g) = self.inner.bad_index.lock() {
            *g = bad;
        }
        Ok(self.use_index_files(&files))
    }

    /// The current master index.
    pub fn index(&self) -> Arc<MasterIndex> {
        self.inner.index.read().map(|g| g.clone()).unwrap_or_default()
    }

    pub(crate) fn set_index(&self, m: Arc<MasterIndex>) {
        if let Ok(mut g) = self.inner.index.write() {
            *g = m;
        }
    }

    /// Reads, opens and verifies one blob.
    ///
    /// # Errors
    /// [`Error::NotFound`] when not indexed, [`Error::Corrupt`] naming the
    /// blob and pack when the bytes do not check out.
    pub async fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let loc = *self
            .index()
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("blob {id} in the index")))?;
        let sealed = self
            .backend()
            .read_range(
                &pack_path(&loc.pack),
                u64::from(loc.offset),
                u64::from(loc.entry.stored_len),
            )
            .await
            .map_err(|e| match e.kind {
                BackendErrorKind::NotFound => {
                    Error::NotFound(format!("pack {} (holding blob {})", loc.pack, id.short()))
                }
                _ => Error::Backend(e),
            })?;
        open_blob(self.keys(), &loc.entry, &sealed, &format!("pack {}", loc.pack))
    }

    /// Reads a pack's header (two ranged reads: its length, then the
    /// sealed header): its blobs with their offsets.
    ///
    /// # Errors
    /// [`Error::NotFound`], or [`Error::Corrupt`] for a header that does
    /// not open or does not add up.
    pub async fn read_pack_header(&self, id: &Id) -> Result<Vec<(pack::BlobEntry, u32)>> {
        let path = pack_path(id);
        let object = format!("pack {id}");
        let size = self
            .backend()
            .info(&path)
            .await
            .map_err(|e| read_error(e, object.clone()))?
            .ok_or_else(|| Error::NotFound(object.clone()))?
            .size;
        let tail = self
            .backend()
            .read_range(&path, size.saturating_sub(4), 4.min(size))
            .await?;
        let hl = u64::from(pack::header_len(size, &tail, &object)?);
        let sealed = self.backend().read_range(&path, size - 4 - hl, hl).await?;
        pack::decode_header(self.keys(), &sealed, size - 4 - hl, &object)
    }

    /// Reads a tree blob.
    ///
    /// # Errors
    /// As [`Repository::read_blob`]; a data blob where a tree is expected is corrupt.
    pub async fn load_tree(&self, id: &Id) -> Result<Tree> {
        if let Some(l) = self.index().get(id) {
            if l.entry.blob_type != BlobType::Tree {
                return Err(Error::corrupt(
                    format!("tree {}", id.short()),
                    "indexed as a data blob",
                ));
            }
        }
        Tree::decode(&self.read_blob(id).await?, id)
    }

    /// Reads one snapshot.
    ///
    /// # Errors
    /// As [`Repository::load_file`].
    pub async fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let p = self.load_file(FileType::Snapshot, id).await?;
        Snapshot::decode(&p, id)
    }

    /// Reads every snapshot, oldest first.
    ///
    /// # Errors
    /// The first unreadable snapshot.
    pub async fn load_snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let mut out = Vec::new();
        for id in self.list_ids(FileKind::Snapshot).await? {
            match self.load_snapshot(&id).await {
                Ok(s) => out.push((id, s)),
                // Removed since it was listed (a forget, or a shard removing
                // the duplicate of a run another shard combined at the same
                // moment): it is no longer a snapshot.
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time));
        Ok(out)
    }

    /// Reads every snapshot that can be read, oldest first, skipping
    /// damaged ones (for reports and repairs).
    ///
    /// # Errors
    /// Listing errors.
    pub async fn load_snapshots_lenient(&self) -> Result<Vec<(Id, Snapshot)>> {
        let mut out = Vec::new();
        for id in self.list_ids(FileKind::Snapshot).await? {
            if let Ok(s) = self.load_snapshot(&id).await {
                out.push((id, s));
            }
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time));
        Ok(out)
    }

    /// Stores a snapshot file (call only after its data is indexed).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn save_snapshot(&self, s: &Snapshot) -> Result<Id> {
        let Some(rb) = &self.inner.retaining else {
            // Nothing is reported saved unless the lock still protected its data.
            self.verify_locks().await?;
            return self.save_file(FileType::Snapshot, &s.encode()?).await;
        };
        let (until, sealed) = retention::seal(self, rb, s.tree, s.parent).await?;
        log::info!(
            "retention: {} objects extended, {} locked long enough, all until {}",
            sealed.extended,
            sealed.already,
            sealed.until
        );
        let mut s = s.clone();
        s.retained_until = Some(sealed.until);
        self.verify_locks().await?;
        let id = self.save_file(FileType::Snapshot, &s.encode()?).await?;
        rb.retain(&FileKind::Snapshot.path(&id), until).await?;
        Ok(id)
    }

    /// The repository's Object Lock policy, when it is locked.
    pub fn lock_policy(&self) -> Option<retention::LockPolicy> {
        self.inner.config.object_lock
    }
}

async fn add_key_file(backend: &dyn Backend, keys: &Keys, password: &[u8], kdf: KdfParams) -> Result<Id> {
    let meta = KeyMeta {
        created: now_rfc3339(),
        hostname: hostname(),
        username: username(),
    };
    // Argon2 is CPU-bound for a noticeable time: keep it off the runtime.
    let keys2 = keys.clone();
    let pw = password.to_vec();
    let kf = tokio::task::spawn_blocking(move || KeyFile::create(&keys2, &pw, kdf, &meta))
        .await
        .map_err(|e| Error::worker("the key derivation", e))??;
    write_named(backend, KEYS_DIR, kf.encode()?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_and_host_name_come_from_the_system_not_proc() {
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("reaped");
        assert!(!process_alive(pid), "a reaped child is not alive");
        // Process 1 exists and is not ours to signal: alive all the same.
        assert!(process_alive(1));
        let uname = std::process::Command::new("uname")
            .arg("-n")
            .output()
            .expect("uname");
        assert_eq!(hostname(), String::from_utf8_lossy(&uname.stdout).trim());
    }
}
