//! Repository behaviour through the library API: round trips on every
//! backend, dedup, keys, locks.

use std::sync::Arc;

use kvault::backend::Backend;
use kvault::backend::memory::MemoryBackend;
use kvault::ops::check::{CheckOptions, check};
use kvault::ops::stream::{PutOptions, get, put};
use kvault::repo::lock::RepoLock;
use kvault::repo::{DATA_DIR, Repository};
use kvault::{Error, KdfParams, NoProgress};

use crate::common::{init_on, json_events, random_bytes, s3_backend};

pub fn opts(name: &str) -> PutOptions {
    PutOptions {
        name: name.into(),
        tags: vec![],
    }
}

pub async fn put_bytes(repo: &Repository, data: &[u8]) -> kvault::Result<kvault::ops::stream::PutSummary> {
    put(repo, data, &opts("t"), &NoProgress).await
}

pub async fn get_bytes(repo: &Repository, id: &kvault::Id) -> kvault::Result<Vec<u8>> {
    let mut out = Vec::new();
    get(repo, id, &mut out, &NoProgress).await?;
    Ok(out)
}

pub async fn assert_clean(repo: &Repository, read_data: bool) -> kvault::ops::check::CheckReport {
    let rep = check(
        repo,
        &CheckOptions {
            read_data,
            subset_percent: None,
            ..Default::default()
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(rep.errors.is_empty(), "check found errors: {:#?}", rep.errors);
    rep
}

async fn round_trip(backend: Arc<dyn Backend>) {
    let repo = init_on(backend.clone()).await;
    let data = json_events(20_000, 1);
    let s = put_bytes(&repo, &data).await.unwrap();
    assert!(s.chunks > 10, "{} chunks", s.chunks);
    assert!(s.stats.packs > 1);
    assert!(
        s.stats.new_stored_bytes < data.len() as u64 / 2,
        "JSON events compress"
    );
    // Reopen from storage alone, as another process would.
    let again = Repository::open(backend.clone(), b"pw").await.unwrap();
    assert_eq!(get_bytes(&again, &s.snapshot).await.unwrap(), data);
    let rep = assert_clean(&again, true).await;
    assert_eq!(rep.snapshots, 1);
    assert_eq!(rep.blobs_verified, rep.blobs);
    assert!(matches!(
        Repository::open(backend, b"nope").await,
        Err(Error::WrongPassword)
    ));
}

#[tokio::test]
async fn round_trip_on_memory() {
    round_trip(Arc::new(MemoryBackend::new())).await;
}

#[tokio::test]
async fn round_trip_on_fs() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(kvault::open_backend(dir.path().to_str().unwrap(), &Default::default()).unwrap()).await;
}

#[tokio::test]
async fn round_trip_on_s3() {
    round_trip(s3_backend("repo")).await;
}

#[tokio::test]
async fn the_same_bytes_take_no_new_space() {
    let mem = MemoryBackend::new();
    let repo = init_on(Arc::new(mem.clone())).await;
    let data = random_bytes(600_000, 2);
    let first = put_bytes(&repo, &data).await.unwrap();
    let size = mem.total_size();
    let second = put_bytes(&repo, &data).await.unwrap();
    assert_eq!(second.stats.new_blobs, 0, "{:?}", second.stats);
    assert_eq!(second.stats.packs, 0);
    // Only the new snapshot file (the tree is the same blob) was added.
    assert!(
        mem.total_size() - size < 2_000,
        "grew by {}",
        mem.total_size() - size
    );
    assert_eq!(get_bytes(&repo, &first.snapshot).await.unwrap(), data);

    // An insertion near the start costs only the chunks around it.
    let mut shifted = b"a few new bytes".to_vec();
    shifted.extend_from_slice(&data);
    let third = put_bytes(&repo, &shifted).await.unwrap();
    assert!(
        third.stats.new_raw_bytes < data.len() as u64 / 5,
        "{:?}",
        third.stats
    );
    assert_eq!(get_bytes(&repo, &third.snapshot).await.unwrap(), shifted);
}

#[tokio::test]
async fn empty_stream_round_trips() {
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let s = put_bytes(&repo, b"").await.unwrap();
    assert_eq!(s.chunks, 0);
    assert_eq!(get_bytes(&repo, &s.snapshot).await.unwrap(), b"");
    assert_clean(&repo, true).await;
}

#[tokio::test]
async fn keys_add_remove_passwd() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let repo = init_on(backend.clone()).await;
    let first = repo.key_id();
    // The last key and the key in use cannot be removed.
    assert!(kvault::ops::key::remove(&repo, &first.to_hex()).await.is_err());
    let second = kvault::ops::key::add(&repo, b"pw2", KdfParams::insecure_fast())
        .await
        .unwrap();
    let keys = kvault::ops::key::list(&repo).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k.current).count(), 1);
    let via2 = Repository::open(backend.clone(), b"pw2").await.unwrap();
    assert_eq!(via2.key_id(), second);
    assert_eq!(via2.config().id, repo.config().id);
    kvault::ops::key::remove(&via2, &first.short()).await.unwrap();
    assert!(matches!(
        Repository::open(backend.clone(), b"pw").await,
        Err(Error::WrongPassword)
    ));
    let (old, _new) = kvault::ops::key::passwd(&via2, b"pw3", KdfParams::insecure_fast())
        .await
        .unwrap();
    assert_eq!(old, second);
    assert!(matches!(
        Repository::open(backend.clone(), b"pw2").await,
        Err(Error::WrongPassword)
    ));
    Repository::open(backend, b"pw3").await.unwrap();
}

#[tokio::test]
async fn init_refuses_an_existing_repository() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    init_on(backend.clone()).await;
    let e = Repository::init(backend, b"x", &crate::common::small_opts())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyInitialized(_)), "{e}");
}

#[tokio::test]
async fn an_empty_location_is_not_a_repository() {
    let e = Repository::open(Arc::new(MemoryBackend::new()), b"pw")
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 10, "{e}");
}

#[tokio::test]
async fn locks_conflict_as_documented() {
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let a = RepoLock::acquire(&repo, false).await.unwrap();
    let b = RepoLock::acquire(&repo, false).await.unwrap();
    let e = RepoLock::acquire(&repo, true).await.unwrap_err();
    assert_eq!(e.exit_code(), 11, "{e}");
    assert!(e.to_string().contains("shared lock"), "{e}");
    a.release().await.unwrap();
    b.release().await.unwrap();
    let x = RepoLock::acquire(&repo, true).await.unwrap();
    assert!(matches!(
        RepoLock::acquire(&repo, false).await,
        Err(Error::Locked(_))
    ));
    // A writer fails with Locked and leaves nothing behind.
    assert!(matches!(put_bytes(&repo, b"data").await, Err(Error::Locked(_))));
    x.release().await.unwrap();
    assert!(
        repo.list_ids(kvault::repo::FileKind::Lock)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(repo.backend().list(DATA_DIR).await.unwrap().is_empty());
}

#[tokio::test]
async fn stale_locks_are_ignored_and_unlock_removes_them() {
    let mem = MemoryBackend::new();
    let repo = init_on(Arc::new(mem.clone())).await;
    // A lock of a process on this host that no longer exists.
    let dead = serde_json::json!({
        "time": kvault::repo::now_rfc3339(), "exclusive": true,
        "hostname": kvault::repo::hostname(), "username": "x", "pid": 4_000_000_000u32
    });
    repo.save_file(
        kvault::repo::envelope::FileType::Lock,
        dead.to_string().as_bytes(),
    )
    .await
    .unwrap();
    // An old lock from another host: the storage wrote it long ago (its
    // own clock decides, not the time inside).
    let old = serde_json::json!({
        "time": "2020-01-01T00:00:00Z", "exclusive": true, "hostname": "elsewhere", "username": "x", "pid": 1
    });
    let old_id = repo
        .save_file(kvault::repo::envelope::FileType::Lock, old.to_string().as_bytes())
        .await
        .unwrap();
    mem.touch(
        &format!("locks/{old_id}"),
        std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
    );
    put_bytes(&repo, b"works despite stale locks").await.unwrap();
    let removed = kvault::repo::lock::unlock(&repo, false).await.unwrap();
    assert_eq!(removed.len(), 2);
    assert!(
        repo.list_ids(kvault::repo::FileKind::Lock)
            .await
            .unwrap()
            .is_empty()
    );
}
