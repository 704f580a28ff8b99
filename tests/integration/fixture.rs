//! The committed fixture repository (tests/fixtures/repo-v1.tar.gz, format
//! version 1) must open, check clean and yield its exact bytes in every
//! later version of kvault. Broken copies of it (a flipped byte, a missing
//! pack, a truncated index) must be reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kvault::repo::Repository;
use kvault::repo::chunker::ChunkerParams;
use kvault::{InitOptions, KdfParams, NoProgress};

use crate::common::{files, json_events, random_bytes};
use crate::repository::{get_bytes, put_bytes};

const PASSWORD: &[u8] = b"kvault fixture v1";
const TARBALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/repo-v1.tar.gz");

fn extract() -> (tempfile::TempDir, PathBuf) {
    crate::common::extract_fixture(TARBALL, "repo-v1")
}

async fn open(root: &Path) -> Repository {
    kvault::ops::open(root.to_str().unwrap(), &Default::default(), PASSWORD)
        .await
        .unwrap()
}

async fn errors(repo: &Repository) -> Vec<String> {
    let opts = kvault::ops::check::CheckOptions {
        read_data: true,
        subset_percent: None,
        ..Default::default()
    };
    kvault::ops::check::check(repo, &opts, &NoProgress)
        .await
        .unwrap()
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[tokio::test]
async fn the_v1_fixture_still_reads() {
    let (_d, root) = extract();
    let repo = open(&root).await;
    assert_eq!(repo.config().version, 1);
    assert!(errors(&repo).await.is_empty());
    let snaps = repo.load_snapshots().await.unwrap();
    assert_eq!(snaps.len(), 2);
    repo.load_index().await.unwrap();
    assert_eq!(
        get_bytes(&repo, &snaps[0].0).await.unwrap(),
        json_events(3_000, 42)
    );
    assert_eq!(
        get_bytes(&repo, &snaps[1].0).await.unwrap(),
        random_bytes(300_000, 7)
    );
    // And it accepts new writes that dedupe against the old data.
    let s = put_bytes(&repo, &json_events(3_000, 42)).await.unwrap();
    assert_eq!(s.stats.new_blobs, 0);
}

#[tokio::test]
async fn broken_copies_of_the_fixture_are_reported() {
    // A flipped byte in a pack.
    let (_d, root) = extract();
    let pack = files(&root.join("data"))[0].clone();
    let mut b = std::fs::read(&pack).unwrap();
    b[10] ^= 1;
    std::fs::write(&pack, b).unwrap();
    let e = errors(&open(&root).await).await;
    assert!(e.iter().any(|x| x.contains("corrupt or tampered")), "{e:?}");

    // A missing pack.
    let (_d, root) = extract();
    std::fs::remove_file(&files(&root.join("data"))[0]).unwrap();
    let e = errors(&open(&root).await).await;
    assert!(e.iter().any(|x| x.contains("missing from storage")), "{e:?}");

    // A truncated index.
    let (_d, root) = extract();
    let idx = files(&root.join("index"))[0].clone();
    let b = std::fs::read(&idx).unwrap();
    std::fs::write(&idx, &b[..b.len() / 2]).unwrap();
    let e = errors(&open(&root).await).await;
    assert!(
        e.iter()
            .any(|x| x.contains("index") && x.contains("corrupt or tampered")),
        "{e:?}"
    );
}

/// Regenerates the fixture (only for a new format version, into a new
/// file): `cargo test -- --ignored make_fixture`.
#[tokio::test]
#[ignore]
async fn make_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo-v1");
    let opts = InitOptions {
        chunker: ChunkerParams::with_average(16 * 1024).unwrap(),
        pack_size: 64 * 1024,
        compression_level: 3,
        kdf: KdfParams::insecure_fast(),
        object_lock: None,
    };
    let b = kvault::open_backend(root.to_str().unwrap(), &Default::default()).unwrap();
    let repo = Repository::init(Arc::clone(&b), PASSWORD, &opts).await.unwrap();
    let first = put_bytes(&repo, &json_events(3_000, 42)).await.unwrap();
    // The second snapshot's time is strictly later.
    crate::common::clock_after(repo.load_snapshot(&first.snapshot).await.unwrap().unix_ms());
    put_bytes(&repo, &random_bytes(300_000, 7)).await.unwrap();
    crate::common::tar_fixture(dir.path(), "repo-v1", &format!("{TARBALL}.new"));
}
