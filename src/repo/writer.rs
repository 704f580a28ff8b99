//! The write path: byte streams and tree blobs into packs.
//!
//! ```text
//! bytes -> keyed FastCDC (caller's task) -> rayon: keyed BLAKE3, dedup
//!   check, zstd, seal -> in-order results -> pack builder -> tokio: upload
//!   (bounded concurrency) -> index file at commit
//! ```
//!
//! Memory is bounded by configuration: at most 2·threads+2 chunks of at most
//! `max_size` bytes are being processed, one `max_size` buffer waits to be cut, one pack is being filled, and at
//! most `uploads` finished packs wait for storage.
//!
//! Ordering (format-spec/README.md §"Write ordering"): an index entry is
//! recorded only once its pack is stored; the index file is written only at
//! [`SaveSession::commit`] (or every [`INDEX_FLUSH_PACKS`] packs), after
//! every pack it names. A crash leaves at worst unindexed packs, which
//! `check` reports and prune removes.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;

use super::envelope::FileType;
use super::index::{IndexFile, IndexPack, MasterIndex};
use super::pack::{BlobEntry, BlobType, PackBuilder, seal_blob};
use super::{Repository, pack_path};
use crate::backend::BackendErrorKind;
use crate::error::{Error, Result};
use crate::id::Id;

/// An index file is written after this many packs even before commit.
pub const INDEX_FLUSH_PACKS: usize = 256;

/// What a save session did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SaveStats {
    /// Plaintext bytes given to the session (data and trees).
    pub raw_bytes: u64,
    /// Blobs given (including duplicates).
    pub blobs: u64,
    /// Blobs that were new and stored.
    pub new_blobs: u64,
    /// Plaintext bytes of new blobs.
    pub new_raw_bytes: u64,
    /// Sealed bytes of new blobs.
    pub new_stored_bytes: u64,
    /// Packs written.
    pub packs: u64,
    /// Index files written.
    pub index_files: u64,
}

struct Processed {
    id: Id,
    raw_len: u64,
    sealed: Option<(BlobEntry, Vec<u8>)>,
}

/// Collects new blobs into packs and indexes them. Use one session per
/// operation; [`SaveSession::commit`] must be called, or nothing is indexed.
pub struct SaveSession {
    repo: Repository,
    index: Arc<MasterIndex>,
    claimed: Arc<Mutex<HashSet<Id>>>,
    packer: PackBuilder,
    uploads: JoinSet<Result<IndexPack>>,
    slots: Arc<Semaphore>,
    done: Vec<IndexPack>,
    written_index: Vec<IndexPack>,
    stats: SaveStats,
    inflight: usize,
    pool: Option<Arc<rayon::ThreadPool>>,
    pending: VecDeque<(u64, oneshot::Receiver<Result<Processed>>)>,
    completed: Vec<(u64, Id)>,
}

impl std::fmt::Debug for SaveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SaveSession({:?})", self.stats)
    }
}

impl SaveSession {
    /// Starts a session against the repository's current master index;
    /// CPU work runs on rayon's global pool (all cores).
    pub fn new(repo: &Repository) -> SaveSession {
        Self::build(repo, None)
    }

    /// Starts a session that stores every blob given to it once, even blobs
    /// the repository already holds (prune moves blobs out of packs it is
    /// about to delete).
    pub fn for_repack(repo: &Repository) -> SaveSession {
        let mut s = Self::build(repo, None);
        s.index = Arc::new(MasterIndex::default());
        s
    }

    /// Starts a session whose CPU work runs on `pool` (to bound or measure
    /// the cores used).
    pub fn with_pool(repo: &Repository, pool: Arc<rayon::ThreadPool>) -> SaveSession {
        Self::build(repo, Some(pool))
    }

    fn build(repo: &Repository, pool: Option<Arc<rayon::ThreadPool>>) -> SaveSession {
        let threads = pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
            .max(1);
        SaveSession {
            repo: repo.clone(),
            index: repo.index(),
            claimed: Arc::new(Mutex::new(HashSet::new())),
            packer: PackBuilder::default(),
            uploads: JoinSet::new(),
            slots: Arc::new(Semaphore::new(2)),
            done: Vec::new(),
            written_index: Vec::new(),
            stats: SaveStats::default(),
            inflight: 2 * threads + 2,
            pool,
            pending: VecDeque::new(),
            completed: Vec::new(),
        }
    }

    /// Whether the repository (as of the session's start) or this session
    /// already holds blob `id`.
    pub fn holds(&self, id: &Id) -> bool {
        self.index.contains(id) || self.claimed.lock().is_ok_and(|c| c.contains(id))
    }

    /// Counters so far.
    pub fn stats(&self) -> &SaveStats {
        &self.stats
    }

    /// A writer for one byte stream. It borrows the session until
    /// [`StreamWriter::finish`], which drains every pending chunk of the
    /// session: do not leave [`SaveSession::submit`] chunks undrained before
    /// starting a stream.
    pub fn stream(&mut self) -> StreamWriter<'_> {
        StreamWriter {
            session: self,
            buf: BytesMut::new(),
            size: 0,
        }
    }

    /// Sends one already-cut data chunk through the pipeline, labelled with
    /// `tag` (e.g. a partition). Results come back in submission order from
    /// [`SaveSession::take_completed`] and [`SaveSession::drain`], so each
    /// tag's ids keep their order while many tags share the CPU pool.
    ///
    /// # Errors
    /// Storage errors from packs stored meanwhile.
    pub async fn submit(&mut self, tag: u64, chunk: Bytes) -> Result<()> {
        while self.pending.len() >= self.inflight {
            self.take_oldest().await?;
        }
        let (tx, rx) = oneshot::channel();
        let (repo, index, claimed) = self.claim_ctx();
        self.spawn_cpu(move || {
            let _ = tx.send(process(&repo, &index, &claimed, BlobType::Data, &chunk));
        });
        self.pending.push_back((tag, rx));
        Ok(())
    }

    async fn take_oldest(&mut self) -> Result<()> {
        if let Some((tag, rx)) = self.pending.pop_front() {
            let p = rx
                .await
                .map_err(|_| Error::worker("a chunk worker", "its channel closed"))??;
            self.completed.push((tag, p.id));
            self.accept(p).await?;
        }
        Ok(())
    }

    /// The `(tag, id)` of chunks finished so far, in submission order.
    pub fn take_completed(&mut self) -> Vec<(u64, Id)> {
        std::mem::take(&mut self.completed)
    }

    /// Waits for every submitted chunk; returns all not yet taken.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn drain(&mut self) -> Result<Vec<(u64, Id)>> {
        while !self.pending.is_empty() {
            self.take_oldest().await?;
        }
        Ok(self.take_completed())
    }

    /// Stores one blob (e.g. a tree) directly; returns its id.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn save_blob(&mut self, t: BlobType, plain: Vec<u8>) -> Result<Id> {
        let p = process(&self.repo, &self.index, &self.claimed, t, &plain)?;
        let id = p.id;
        self.accept(p).await?;
        Ok(id)
    }

    fn claim_ctx(&self) -> (Repository, Arc<MasterIndex>, Arc<Mutex<HashSet<Id>>>) {
        (self.repo.clone(), self.index.clone(), self.claimed.clone())
    }

    /// Runs CPU work on the session's pool (or rayon's global pool).
    fn spawn_cpu(&self, job: impl FnOnce() + Send + 'static) {
        match &self.pool {
            Some(p) => p.spawn(job),
            None => rayon::spawn(job),
        }
    }

    async fn accept(&mut self, p: Processed) -> Result<()> {
        self.stats.blobs += 1;
        self.stats.raw_bytes += p.raw_len;
        if let Some((entry, sealed)) = p.sealed {
            self.stats.new_blobs += 1;
            self.stats.new_raw_bytes += p.raw_len;
            self.stats.new_stored_bytes += sealed.len() as u64;
            self.packer.add(entry, sealed.into());
            if self.packer.len() >= self.repo.config().pack_size as usize {
                self.flush_pack().await?;
            }
        }
        Ok(())
    }

    async fn reap(&mut self, wait_all: bool) -> Result<()> {
        loop {
            let r = if wait_all {
                self.uploads.join_next().await
            } else {
                self.uploads.try_join_next()
            };
            match r {
                Some(r) => self
                    .done
                    .push(r.map_err(|e| Error::worker("an upload task", e))??),
                None => return Ok(()),
            }
        }
    }

    async fn flush_pack(&mut self) -> Result<()> {
        if self.packer.is_empty() {
            return Ok(());
        }
        let full = std::mem::take(&mut self.packer);
        let pack = full.finish(self.repo.keys())?;
        self.stats.packs += 1;
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::worker("the upload limiter", e))?;
        let backend = self.repo.backend().clone();
        self.uploads.spawn(async move {
            let path = pack_path(&pack.id);
            match backend.write_new(&path, pack.payload).await {
                Ok(()) => {}
                // Same name, same bytes: already stored.
                Err(e) if e.kind == BackendErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            drop(permit);
            Ok(IndexPack {
                id: pack.id,
                blobs: pack.blobs,
            })
        });
        self.reap(false).await?;
        if self.done.len() >= INDEX_FLUSH_PACKS {
            self.write_index().await?;
        }
        Ok(())
    }

    async fn write_index(&mut self) -> Result<()> {
        if self.done.is_empty() {
            return Ok(());
        }
        // An index file makes packs visible to prune's accounting: only
        // while our lock still protects them (repo::lock).
        self.repo.verify_locks().await?;
        let packs = std::mem::take(&mut self.done);
        let f = IndexFile {
            supersedes: Vec::new(),
            packs,
        };
        self.repo.save_file(FileType::Index, &f.encode()).await?;
        self.stats.index_files += 1;
        self.written_index.extend(f.packs);
        Ok(())
    }

    /// Stores the last pack, waits for every upload, writes the index file
    /// and adds the new packs to the repository's master index.
    ///
    /// # Errors
    /// The first storage error; then nothing of this session is indexed
    /// beyond index files already written.
    pub async fn commit(self) -> Result<SaveStats> {
        self.commit_packs().await.map(|(s, _)| s)
    }

    /// As [`SaveSession::commit`], also returning the packs written.
    ///
    /// # Errors
    /// As [`SaveSession::commit`].
    pub async fn commit_packs(mut self) -> Result<(SaveStats, Vec<IndexPack>)> {
        self.flush_pack().await?;
        self.reap(true).await?;
        self.write_index().await?;
        let mut m = (*self.repo.index()).clone();
        for p in &self.written_index {
            m.add_pack(p);
        }
        self.repo.set_index(Arc::new(m));
        Ok((self.stats, self.written_index))
    }
}

fn process(
    repo: &Repository,
    index: &MasterIndex,
    claimed: &Mutex<HashSet<Id>>,
    t: BlobType,
    plain: &[u8],
) -> Result<Processed> {
    let keys = repo.keys();
    let id = keys.blob_id(plain);
    let raw_len = plain.len() as u64;
    let is_new = !index.contains(&id)
        && claimed
            .lock()
            .map_err(|_| Error::worker("a blob writer", "it panicked holding the claimed set"))?
            .insert(id);
    let sealed = if is_new {
        Some(seal_blob(keys, t, &id, plain, repo.config().compression_level)?)
    } else {
        None
    };
    Ok(Processed { id, raw_len, sealed })
}

/// The result of writing one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamResult {
    /// Data blob ids, in order.
    pub ids: Vec<Id>,
    /// Stream length in bytes.
    pub size: u64,
}

/// Cuts one byte stream into chunks and feeds them through the session.
///
/// Finding cut points runs on the CPU pool too (not on the caller's task),
/// so on a small machine the caller does not compete with the workers;
/// chunks are split off the buffer without copying.
pub struct StreamWriter<'s> {
    session: &'s mut SaveSession,
    buf: BytesMut,
    size: u64,
}

impl std::fmt::Debug for StreamWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamWriter({} bytes)", self.size)
    }
}

impl StreamWriter<'_> {
    /// Appends bytes to the stream.
    ///
    /// # Errors
    /// Storage errors from packs stored meanwhile.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() < self.session.repo.chunker().max_size() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let (tx, rx) = oneshot::channel();
        let repo = self.session.repo.clone();
        self.session.spawn_cpu(move || {
            let c = repo.chunker();
            let mut cuts = Vec::new();
            let mut start = 0;
            while buf.len() - start >= c.max_size() {
                let cut = c.next_cut(buf.get(start..).unwrap_or_default());
                cuts.push(cut);
                start += cut;
            }
            let _ = tx.send((buf, cuts));
        });
        let (mut buf, cuts) = rx
            .await
            .map_err(|_| Error::worker("a chunker worker", "its channel closed"))?;
        for cut in cuts {
            self.dispatch(buf.split_to(cut).freeze()).await?;
        }
        self.buf = buf;
        Ok(())
    }

    async fn dispatch(&mut self, chunk: Bytes) -> Result<()> {
        self.session.submit(0, chunk).await
    }

    /// Cuts the rest of the stream and waits for every chunk.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn finish(mut self) -> Result<StreamResult> {
        let mut rest = std::mem::take(&mut self.buf);
        while !rest.is_empty() {
            let cut = self.session.repo.chunker().next_cut(&rest);
            self.dispatch(rest.split_to(cut).freeze()).await?;
        }
        let ids = self
            .session
            .drain()
            .await?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        Ok(StreamResult { ids, size: self.size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryBackend;
    use crate::repo::InitOptions;
    use crate::repo::keyfile::KdfParams;

    /// A seal that fails stops the write with that error: no pack, no
    /// index, no empty blob stored in the chunk's place (issue: a failed
    /// AEAD once came back as an empty `Ok`).
    #[tokio::test]
    async fn a_failed_seal_stops_the_write_and_stores_nothing() {
        let backend: Arc<dyn crate::backend::Backend> = Arc::new(MemoryBackend::new());
        let opts = InitOptions {
            kdf: KdfParams::insecure_fast(),
            ..InitOptions::default()
        };
        let repo = Repository::init(backend.clone(), b"pw", &opts).await.unwrap();
        crate::repo::crypto::tests::fail_seals_of(repo.keys());
        let mut s = SaveSession::new(&repo);
        s.submit(0, Bytes::from_static(b"some records")).await.unwrap();
        let e = s.drain().await.unwrap_err();
        assert!(matches!(e, Error::Seal(_)), "{e}");
        let e = SaveSession::new(&repo)
            .save_blob(BlobType::Tree, b"a tree".to_vec())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Seal(_)), "{e}");
        assert!(backend.list("data").await.unwrap().is_empty());
        assert!(backend.list("index").await.unwrap().is_empty());
    }
}
