//! The OpenDAL backend: local disk (`fs`), S3, GCS and Azure Blob behind one
//! operator.
//!
//! Non-overwriting writes use OpenDAL's `if_not_exists` (S3 `If-None-Match: *`,
//! the fs service's create-new); fs writes go through a temporary directory
//! inside the repository and a rename, so they are atomic.
//!
//! On local disk (`fs_root` set) reads go to the file directly, after
//! checking that the path is a regular file (opening a FIFO would block
//! forever); new files are made 0600 and a new repository's directories
//! 0700.

use std::path::PathBuf;
use std::time::SystemTime;

use async_trait::async_trait;
use futures_util::StreamExt;
use opendal::{EntryMode, ErrorKind, Operator};

use super::{Backend, BackendError, BackendErrorKind, BackendResult, ObjectInfo, Payload, too_large};

/// Directories a new repository starts with (format-spec §"Layout").
const LAYOUT: &[&str] = &["data", "index", "keys", "snapshots", "locks", ".tmp"];

/// A backend over an OpenDAL operator.
#[derive(Debug, Clone)]
pub struct OpendalBackend {
    op: Operator,
    location: String,
    /// Whether listing returns sizes (object stores do; fs needs a stat).
    list_has_size: bool,
    /// The repository directory, on local disk.
    fs_root: Option<PathBuf>,
    /// The bucket's Object Lock (S3).
    lock: Option<super::worm::SharedLock>,
}

impl OpendalBackend {
    /// Wraps an operator; `location` is what the user typed, for messages.
    pub fn new(op: Operator, location: String, list_has_size: bool) -> Self {
        OpendalBackend {
            op,
            location,
            list_has_size,
            fs_root: None,
            lock: None,
        }
    }

    /// The same backend with the bucket's Object Lock.
    #[must_use]
    pub fn with_lock(mut self, lock: super::worm::SharedLock) -> Self {
        self.lock = Some(lock);
        self
    }

    /// The operator (shared: cloning it is cheap).
    pub fn operator(&self) -> &Operator {
        &self.op
    }

    /// Wraps an fs operator rooted at `root`.
    pub fn local(op: Operator, location: String, root: PathBuf) -> Self {
        OpendalBackend {
            op,
            location,
            list_has_size: false,
            fs_root: Some(root),
            lock: None,
        }
    }
}

/// What to read from a local file.
#[derive(Clone, Copy)]
enum Want {
    /// The whole file, refused when larger than this.
    All(u64),
    /// `len` bytes at `offset`.
    Range(u64, u64),
}

/// Reads a local file directly (OpenDAL's fs reader costs about a
/// millisecond per read in buffer set-up, which thousands of small tree and
/// snapshot reads feel): a regular file only, bounded, exact ranges. One
/// stat decides all three; reads of at most [`INLINE_READ`] bytes then run
/// on the calling task (a thread hand-off costs more than reading a
/// page-cached file), larger ones on the blocking pool.
async fn local_read(root: PathBuf, path: String, want: Want) -> BackendResult<Vec<u8>> {
    let full = root.join(&path);
    let md = std::fs::metadata(&full).map_err(|e| read_err(&path, e))?;
    if !md.is_file() {
        return Err(not_regular(&path));
    }
    let len = match want {
        Want::All(max) if md.len() > max => return Err(too_large(&path, md.len(), max)),
        Want::All(_) => md.len(),
        Want::Range(_, len) => len,
    };
    if len <= INLINE_READ {
        return read_file(&full, &path, want, md.len());
    }
    tokio::task::spawn_blocking(move || read_file(&full, &path, want, md.len()))
        .await
        .map_err(|e| BackendError::new(BackendErrorKind::Permanent, "read", "", e))?
}

/// A local read error: missing is NotFound, interruptions are transient.
fn read_err(path: &str, e: std::io::Error) -> BackendError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => BackendErrorKind::NotFound,
        std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut => BackendErrorKind::Transient,
        _ => BackendErrorKind::Permanent,
    };
    BackendError::new(kind, "read", path, e)
}

/// Reads what `want` asks of a regular file `size` bytes long (checked by
/// [`local_read`]); a file that grew past an `All` bound is still refused.
fn read_file(full: &std::path::Path, path: &str, want: Want, size: u64) -> BackendResult<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e| read_err(path, e);
    let mut f = std::fs::File::open(full).map_err(io)?;
    match want {
        Want::All(max) => {
            let mut v = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            f.by_ref()
                .take(max.saturating_add(1))
                .read_to_end(&mut v)
                .map_err(io)?;
            if v.len() as u64 > max {
                return Err(too_large(path, v.len() as u64, max));
            }
            Ok(v)
        }
        Want::Range(offset, len) => {
            f.seek(SeekFrom::Start(offset)).map_err(io)?;
            let mut v = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            f.take(len).read_to_end(&mut v).map_err(io)?;
            exact(path, offset, len, v)
        }
    }
}

/// A range read must return exactly `len` bytes.
fn exact(path: &str, offset: u64, len: u64, v: Vec<u8>) -> BackendResult<Vec<u8>> {
    if v.len() as u64 != len {
        return Err(BackendError::new(
            BackendErrorKind::Permanent,
            "read",
            path,
            format!("short read: wanted {len} bytes at {offset}, got {}", v.len()),
        ));
    }
    Ok(v)
}

/// Lists the files below `dir` (recursively) with sizes and times, in one
/// pass over the directories (a stat per file through OpenDAL costs a
/// thread hand-off each). Special files are listed with size 0, so check
/// and prune can name them; they are never read.
fn local_list(root: &std::path::Path, dir: &str) -> BackendResult<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_string()];
    while let Some(d) = dirs.pop() {
        let rd = match std::fs::read_dir(root.join(&d)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BackendError::new(BackendErrorKind::Permanent, "list", &d, e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| BackendError::new(BackendErrorKind::Permanent, "list", &d, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let path = format!("{d}/{name}");
            // Follows symlinks, as reads do.
            let md = match std::fs::metadata(entry.path()) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(BackendError::new(BackendErrorKind::Permanent, "list", &path, e)),
            };
            if md.is_dir() {
                dirs.push(path);
            } else if md.is_file() {
                out.push(ObjectInfo {
                    path,
                    size: md.len(),
                    modified: md.modified().ok(),
                });
            } else {
                out.push(ObjectInfo {
                    path,
                    size: 0,
                    modified: None,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Reads up to this many bytes without leaving the task.
const INLINE_READ: u64 = 256 << 10;

fn not_regular(path: &str) -> BackendError {
    BackendError::new(BackendErrorKind::Refused, "read", path, "not a regular file")
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &std::path::Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

pub(super) fn map_err(op: &'static str, path: &str, e: &opendal::Error) -> BackendError {
    let kind = match e.kind() {
        ErrorKind::NotFound => BackendErrorKind::NotFound,
        ErrorKind::AlreadyExists | ErrorKind::ConditionNotMatch => BackendErrorKind::AlreadyExists,
        _ if e.is_temporary() => BackendErrorKind::Transient,
        ErrorKind::RateLimited => BackendErrorKind::Transient,
        ErrorKind::PermissionDenied => BackendErrorKind::Denied,
        _ => BackendErrorKind::Permanent,
    };
    BackendError::new(kind, op, path, short_reason(e)).with_detail(e)
}

/// An error of an object's byte stream: OpenDAL's own inside an I/O error
/// is classed as any other (an object deleted since it was listed, a
/// released lock, is NotFound); a bare I/O error is transient.
fn stream_err(path: &str, e: &std::io::Error) -> BackendError {
    match e.get_ref().and_then(|i| i.downcast_ref::<opendal::Error>()) {
        Some(o) => map_err("read", path, o),
        None if e.kind() == std::io::ErrorKind::NotFound => {
            BackendError::new(BackendErrorKind::NotFound, "read", path, e)
        }
        None => BackendError::new(BackendErrorKind::Transient, "read", path, e),
    }
}

/// Why an OpenDAL call failed, in a few words: its own message and the
/// innermost cause ("send http request: Connection refused (os error
/// 111)"), without the request context its `Display` adds (the whole of
/// it goes to [`BackendError::detail`]).
fn short_reason(e: &opendal::Error) -> String {
    let mut root: Option<&dyn std::error::Error> = None;
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        root = Some(c);
        cur = c.source();
    }
    let mut s = match root {
        Some(r) => format!("{}: {r}", e.message()),
        None => format!("{} ({})", e.message(), e.kind()),
    };
    if s.chars().count() > 160 {
        s = s.chars().take(157).collect::<String>() + "...";
    }
    s
}

#[async_trait]
impl Backend for OpendalBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn read(&self, path: &str) -> BackendResult<Vec<u8>> {
        if let Some(root) = &self.fs_root {
            return local_read(root.clone(), path.to_string(), Want::All(u64::MAX)).await;
        }
        let buf = self.op.read(path).await.map_err(|e| map_err("read", path, &e))?;
        Ok(buf.to_vec())
    }

    async fn read_max(&self, path: &str, max: u64) -> BackendResult<Vec<u8>> {
        if let Some(root) = &self.fs_root {
            return local_read(root.clone(), path.to_string(), Want::All(max)).await;
        }
        // Object stores: stream the object and stop once it is too large
        // (no extra HEAD per read; never more than the limit in memory).
        let reader = self
            .op
            .reader(path)
            .await
            .map_err(|e| map_err("read", path, &e))?;
        let mut stream = reader
            .into_bytes_stream(..)
            .await
            .map_err(|e| map_err("read", path, &e))?;
        let mut out: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            // The GET is sent with the first chunk: an object deleted since
            // it was listed (a released lock) is NotFound here, not a
            // transient failure.
            let chunk = chunk.map_err(|e| stream_err(path, &e))?;
            if (out.len() + chunk.len()) as u64 > max {
                return Err(too_large(path, (out.len() + chunk.len()) as u64, max));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    async fn info(&self, path: &str) -> BackendResult<Option<ObjectInfo>> {
        match self.op.stat(path).await {
            Ok(m) => {
                if m.mode() != EntryMode::FILE {
                    return Err(not_regular(path));
                }
                Ok(Some(ObjectInfo {
                    path: path.to_string(),
                    size: m.content_length(),
                    modified: m.last_modified().map(SystemTime::from),
                }))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(map_err("stat", path, &e)),
        }
    }

    async fn prepare_new(&self) -> BackendResult<()> {
        let Some(root) = &self.fs_root else { return Ok(()) };
        for d in std::iter::once("").chain(LAYOUT.iter().copied()) {
            let p = root.join(d);
            std::fs::create_dir_all(&p)
                .and_then(|()| set_mode(&p, 0o700))
                .map_err(|e| BackendError::new(BackendErrorKind::Permanent, "mkdir", d, e))?;
        }
        Ok(())
    }

    async fn read_range(&self, path: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>> {
        if let Some(root) = &self.fs_root {
            return local_read(root.clone(), path.to_string(), Want::Range(offset, len)).await;
        }
        let end = offset.saturating_add(len);
        let buf = self
            .op
            .read_with(path)
            .range(offset..end)
            .await
            .map_err(|e| map_err("read", path, &e))?;
        exact(path, offset, len, buf.to_vec())
    }

    async fn write_new(&self, path: &str, data: Payload) -> BackendResult<()> {
        // A pack goes out as its pieces: opendal writes a non-contiguous
        // buffer piece by piece (fs: one pwrite each; S3: one body).
        self.op
            .write_with(path, opendal::Buffer::from(data.into_parts()))
            .if_not_exists(true)
            .await
            .map(|_| ())
            .map_err(|e| map_err("write", path, &e))?;
        if let Some(root) = &self.fs_root {
            // Private: key files wrap the master key (offline guessing).
            set_mode(&root.join(path), 0o600)
                .map_err(|e| BackendError::new(BackendErrorKind::Permanent, "chmod", path, e))?;
        }
        Ok(())
    }

    async fn stat(&self, path: &str) -> BackendResult<Option<u64>> {
        match self.op.stat(path).await {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(map_err("stat", path, &e)),
        }
    }

    async fn list(&self, dir: &str) -> BackendResult<Vec<ObjectInfo>> {
        if let Some(root) = &self.fs_root {
            let (root, dir) = (root.clone(), dir.trim_end_matches('/').to_string());
            return tokio::task::spawn_blocking(move || local_list(&root, &dir))
                .await
                .map_err(|e| BackendError::new(BackendErrorKind::Permanent, "list", "", e))?;
        }
        let d = format!("{}/", dir.trim_end_matches('/'));
        let entries = match self.op.list_with(&d).recursive(true).await {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(map_err("list", dir, &e)),
        };
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let path = e.path().to_string();
            if path.ends_with('/') || e.metadata().is_dir() {
                continue;
            }
            if self.list_has_size {
                out.push(ObjectInfo {
                    size: e.metadata().content_length(),
                    modified: e.metadata().last_modified().map(SystemTime::from),
                    path,
                });
                continue;
            }
            match self.info(&path).await {
                Ok(Some(i)) => out.push(i),
                Ok(None) => {} // removed between list and stat
                // Not a regular file: listed, so check and prune can name it,
                // never read.
                Err(e) if e.kind == BackendErrorKind::Refused => out.push(ObjectInfo {
                    path,
                    size: 0,
                    modified: None,
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn remove(&self, path: &str) -> BackendResult<()> {
        match self.op.delete(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(map_err("remove", path, &e)),
        }
    }

    fn object_lock(&self) -> Option<super::worm::SharedLock> {
        self.lock.clone()
    }
}
