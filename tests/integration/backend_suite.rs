//! The storage contract (src/backend/mod.rs), checked against every backend:
//! memory, fs and a real S3 server.

use std::sync::Arc;

use kvault::backend::memory::MemoryBackend;
use kvault::backend::{Backend, BackendErrorKind, Payload};

use crate::common::{random_bytes, s3_backend};

async fn conformance(b: Arc<dyn Backend>, exclusive_create: bool) {
    // Missing objects.
    assert_eq!(
        b.read("keys/missing").await.unwrap_err().kind,
        BackendErrorKind::NotFound
    );
    assert_eq!(b.stat("keys/missing").await.unwrap(), None);
    b.remove("keys/missing").await.unwrap();
    assert!(b.list("nothing-here").await.unwrap().is_empty());

    // Write, read, ranges.
    let big = random_bytes(5 * 1024 * 1024 + 17, 1);
    b.write_new("data/ab/abcdef", big.clone().into()).await.unwrap();
    assert_eq!(b.read("data/ab/abcdef").await.unwrap(), big);
    assert_eq!(b.stat("data/ab/abcdef").await.unwrap(), Some(big.len() as u64));
    assert_eq!(
        b.read_range("data/ab/abcdef", 1000, 4096).await.unwrap(),
        big[1000..5096]
    );
    let end = big.len() as u64;
    assert_eq!(
        b.read_range("data/ab/abcdef", end - 4, 4).await.unwrap(),
        big[big.len() - 4..]
    );
    assert!(
        b.read_range("data/ab/abcdef", end - 4, 100).await.is_err(),
        "read past the end must fail"
    );

    // An object written in pieces (a pack: its sealed blobs, then its
    // header) is the pieces in order, one object.
    let pieces: Vec<bytes::Bytes> = [3 * 1024 * 1024 + 5, 0, 1, 2 * 1024 * 1024, 57]
        .iter()
        .enumerate()
        .map(|(i, n)| random_bytes(*n, 10 + i as u64).into())
        .collect();
    let whole: Vec<u8> = pieces.iter().flat_map(|p| p.to_vec()).collect();
    b.write_new("data/cd/cd0123", Payload::from_parts(pieces))
        .await
        .unwrap();
    assert_eq!(b.stat("data/cd/cd0123").await.unwrap(), Some(whole.len() as u64));
    assert_eq!(b.read("data/cd/cd0123").await.unwrap(), whole);
    b.remove("data/cd/cd0123").await.unwrap();

    // Never overwrite.
    let e = b
        .write_new("data/ab/abcdef", vec![1, 2, 3].into())
        .await
        .unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::AlreadyExists, "{e}");
    assert_eq!(b.read("data/ab/abcdef").await.unwrap().len(), big.len());

    // Racing creators: exactly one wins.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..4u8 {
        let b = b.clone();
        set.spawn(async move { b.write_new("locks/race", vec![i; 1000].into()).await });
    }
    let mut wins = 0;
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(()) => wins += 1,
            Err(e) => assert_eq!(e.kind, BackendErrorKind::AlreadyExists, "{e}"),
        }
    }
    if exclusive_create {
        assert_eq!(wins, 1);
    } else {
        assert!(wins >= 1);
    }
    // Whoever won, the object is one writer's bytes, whole.
    let raced = b.read("locks/race").await.unwrap();
    assert_eq!(raced.len(), 1000);
    assert!(raced.iter().all(|&x| x == raced[0]));

    // Recursive listing with sizes.
    b.write_new("data/cd/cdef", vec![7; 10].into()).await.unwrap();
    b.write_new("keys/k1", vec![1; 3].into()).await.unwrap();
    b.write_new("config", vec![0; 2].into()).await.unwrap();
    let mut l = b.list("data").await.unwrap();
    l.sort();
    let got: Vec<(String, u64)> = l.into_iter().map(|o| (o.path, o.size)).collect();
    assert_eq!(
        got,
        vec![
            ("data/ab/abcdef".to_string(), big.len() as u64),
            ("data/cd/cdef".to_string(), 10)
        ]
    );
    let keys = b.list("keys").await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].path, "keys/k1");

    // Remove.
    b.remove("data/cd/cdef").await.unwrap();
    assert_eq!(
        b.read("data/cd/cdef").await.unwrap_err().kind,
        BackendErrorKind::NotFound
    );
    assert_eq!(b.list("data").await.unwrap().len(), 1);
    b.remove("data/cd/cdef").await.unwrap();

    // An empty object.
    b.write_new("index/empty", Vec::new().into()).await.unwrap();
    assert_eq!(b.read("index/empty").await.unwrap(), Vec::<u8>::new());
}

#[tokio::test]
async fn memory_backend_keeps_the_contract() {
    conformance(Arc::new(MemoryBackend::new()), true).await;
}

#[tokio::test]
async fn fs_backend_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let b = kvault::open_backend(dir.path().to_str().unwrap(), &Default::default()).unwrap();
    // OpenDAL's fs service checks, then renames: racing creators of one
    // path may both succeed (see the contract in src/backend/mod.rs).
    conformance(b, false).await;
    // No temporary files are left where a listing would see them.
    let leftovers: Vec<_> = crate::common::files(dir.path())
        .into_iter()
        .map(|p| p.to_string_lossy().to_string())
        .filter(|p| p.contains("tmp") && !p.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn s3_backend_keeps_the_contract() {
    conformance(s3_backend("suite"), true).await;
}
