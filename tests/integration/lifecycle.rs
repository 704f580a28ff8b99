//! forget, prune and copy through the library: prune on memory, fs and the
//! real S3 server, a crash at every write or delete of a prune, copy to a
//! repository with other keys (S3), incremental and after a crash.

use std::sync::Arc;

use kvault::backend::Backend;
use kvault::backend::fault::{Fault, FaultBackend};
use kvault::backend::memory::MemoryBackend;
use kvault::ops::copy::copy;
use kvault::ops::forget::{ForgetOptions, Policy, forget};
use kvault::ops::prune::{PruneOptions, prune};
use kvault::ops::stats::stats;
use kvault::repo::Repository;
use kvault::{Id, NoProgress};

use crate::common::{init_on, json_events, random_bytes, s3_backend, small_opts};
use crate::repository::{assert_clean, get_bytes, put_bytes};

/// Three snapshots: A, B (half of A plus new data), C (unrelated).
async fn three(repo: &Repository) -> [(Id, Vec<u8>); 3] {
    let a = json_events(6_000, 11);
    let mut b = a[..a.len() / 2].to_vec();
    b.extend_from_slice(&json_events(3_000, 12));
    let c = random_bytes(300_000, 13);
    let mut out = Vec::new();
    for d in [a, b, c] {
        let s = put_bytes(repo, &d).await.unwrap();
        out.push((s.snapshot, d));
    }
    out.try_into().unwrap()
}

fn forget_ids(ids: &[Id]) -> ForgetOptions {
    ForgetOptions {
        ids: ids.to_vec(),
        ..Default::default()
    }
}

/// Repacks everything and deletes garbage of any age (the crash tests make
/// their garbage moments before pruning).
fn all_repacked() -> PruneOptions {
    PruneOptions {
        max_unused_percent: 0.0,
        unindexed_grace: std::time::Duration::ZERO,
        ..Default::default()
    }
}

async fn prune_frees_forgotten_data(backend: Arc<dyn Backend>) {
    let repo = init_on(backend).await;
    let [a, b, c] = three(&repo).await;
    let before = stats(&repo).await.unwrap();
    let f = forget(&repo, &forget_ids(&[a.0, c.0])).await.unwrap();
    assert_eq!(f.removed.len(), 2);
    let r = prune(&repo, &all_repacked(), &NoProgress).await.unwrap();
    assert_eq!(r.snapshots, 1);
    assert!(r.packs_deleted > 0, "{r:?}");
    assert!(r.packs_repacked > 0, "A's packs hold B's first half: {r:?}");
    assert!(r.bytes_freed > 0 && r.bytes_after < r.bytes_before, "{r:?}");
    assert_eq!(r.unused_bytes_left, 0);
    let rep = assert_clean(&repo, true).await;
    assert_eq!(rep.unused_blobs, 0);
    assert!(rep.notes.is_empty(), "{:?}", rep.notes);
    assert_eq!(get_bytes(&repo, &b.0).await.unwrap(), b.1);
    let after = stats(&repo).await.unwrap();
    assert!(
        after.pack_bytes < before.pack_bytes * 6 / 10,
        "{} -> {}",
        before.pack_bytes,
        after.pack_bytes
    );
    // Nothing left to do.
    let again = prune(&repo, &all_repacked(), &NoProgress).await.unwrap();
    assert_eq!(
        (
            again.packs_deleted,
            again.packs_repacked,
            again.bytes_freed,
            again.index_files_written
        ),
        (0, 0, 0, 0),
        "{again:?}"
    );
}

#[tokio::test]
async fn prune_frees_forgotten_data_on_memory() {
    prune_frees_forgotten_data(Arc::new(MemoryBackend::new())).await;
}

#[tokio::test]
async fn prune_frees_forgotten_data_on_fs() {
    let dir = tempfile::tempdir().unwrap();
    let b = kvault::open_backend(dir.path().join("repo").to_str().unwrap(), &Default::default()).unwrap();
    prune_frees_forgotten_data(b).await;
}

#[tokio::test]
async fn prune_frees_forgotten_data_on_s3() {
    prune_frees_forgotten_data(s3_backend(&format!("prune-{}", Id::random().unwrap().short()))).await;
}

#[tokio::test]
async fn a_dry_run_and_the_unused_threshold_change_nothing_they_should_not() {
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let [a, b, _] = three(&repo).await;
    forget(&repo, &forget_ids(&[a.0])).await.unwrap();
    let dry = prune(
        &repo,
        &PruneOptions {
            dry_run: true,
            ..all_repacked()
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(dry.packs_repacked > 0 && dry.bytes_freed > 0);
    let unused_before = assert_clean(&repo, false).await.unused_blobs;
    assert!(unused_before > 0, "a dry run removed data");
    // A repack budget smaller than any pack: nothing is repacked.
    let capped = prune(
        &repo,
        &PruneOptions {
            max_repack_bytes: Some(1),
            dry_run: true,
            ..all_repacked()
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(capped.packs_repacked, 0);
    assert!(capped.unused_bytes_left > 0);
    // 100% unused tolerated: whole unused packs go, partly used packs stay.
    let r = prune(
        &repo,
        &PruneOptions {
            max_unused_percent: 100.0,
            ..Default::default()
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(r.packs_repacked, 0);
    assert!(r.unused_bytes_left > 0);
    assert_clean(&repo, true).await;
    assert_eq!(get_bytes(&repo, &b.0).await.unwrap(), b.1);
}

#[tokio::test]
async fn forget_by_policy_keeps_the_newest_and_reports_why() {
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let [_, _, c] = three(&repo).await;
    let opts = ForgetOptions {
        policy: Policy {
            last: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let r = forget(&repo, &opts).await.unwrap();
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].keep.len(), 1);
    assert_eq!(r.groups[0].keep[0].id, c.0);
    assert_eq!(r.groups[0].keep[0].reasons, vec!["last snapshot".to_string()]);
    assert_eq!(r.removed.len(), 2);
    assert_eq!(repo.load_snapshots().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_crash_at_any_write_or_delete_of_prune_loses_nothing_and_a_rerun_finishes() {
    // How many mutations does a clean prune make?
    let setup = || async {
        let mem = MemoryBackend::new();
        let repo = init_on(Arc::new(mem.clone())).await;
        let [a, b, c] = three(&repo).await;
        forget(&repo, &forget_ids(&[a.0, c.0])).await.unwrap();
        (mem, b)
    };
    let (mem, _) = setup().await;
    let counting = Arc::new(FaultBackend::new(mem.clone()));
    let repo = Repository::open(counting.clone(), b"pw").await.unwrap();
    prune(&repo, &all_repacked(), &NoProgress).await.unwrap();
    let total = counting.mutations();
    assert!(total >= 8, "only {total} mutations");

    // Pack ids (random nonces) order the repack, so a run may make one
    // pack more or less: go a little past the count, and a run that ends
    // before the failing mutation must succeed.
    for n in 0..total + 2 {
        let (mem, b) = setup().await;
        let faulty = Arc::new(FaultBackend::new(mem.clone()));
        let repo = Repository::open(faulty.clone(), b"pw").await.unwrap();
        let m0 = faulty.mutations();
        faulty.inject(Fault::FailMutationsFrom(m0 + n));
        let r = prune(&repo, &all_repacked(), &NoProgress).await;
        let made = faulty.mutations() - m0;
        if r.is_ok() {
            assert!(made <= n, "mutation {n} of {made} failed but prune succeeded");
            continue;
        }

        // The process is gone: its lock is stale.
        let after = Repository::open(Arc::new(mem.clone()), b"pw").await.unwrap();
        kvault::repo::lock::unlock(&after, true).await.unwrap();
        assert_clean(&after, true).await;
        assert_eq!(
            get_bytes(&after, &b.0).await.unwrap(),
            b.1,
            "after a crash at mutation {n}"
        );
        let r = prune(&after, &all_repacked(), &NoProgress).await.unwrap();
        let rep = assert_clean(&after, true).await;
        assert!(rep.notes.is_empty(), "crash at {n}: {:?} {r:?}", rep.notes);
        assert_eq!(rep.unused_blobs, 0);
        assert_eq!(get_bytes(&after, &b.0).await.unwrap(), b.1);
    }
}

#[tokio::test]
async fn copy_to_s3_with_other_keys_is_incremental_and_idempotent() {
    let src = init_on(Arc::new(MemoryBackend::new())).await;
    let [a, b, _] = three(&src).await;
    let dst_backend = s3_backend(&format!("copy-{}", Id::random().unwrap().short()));
    let dst = Repository::init(dst_backend, b"offsite password", &small_opts())
        .await
        .unwrap();
    // A, then B: B's first half is A's and is not read again.
    let r1 = copy(&src, &dst, &[a.0], &NoProgress).await.unwrap();
    assert_eq!(r1.copied.len(), 1);
    let r2 = copy(&src, &dst, &[b.0], &NoProgress).await.unwrap();
    assert_eq!(r2.copied.len(), 1);
    // Measured in bytes: blob counts of a few dozen chunks vary too much
    // with the random chunker key (15 of 21 once).
    assert!(r2.bytes_read < r1.bytes_read * 3 / 4, "{r1:?} {r2:?}");
    let all = copy(&src, &dst, &[], &NoProgress).await.unwrap();
    assert_eq!((all.copied.len(), all.skipped.len()), (1, 2));
    let b_copy = r2.copied[0].1;
    let a_copy = r1.copied[0].1;
    assert_eq!(get_bytes(&dst, &a_copy).await.unwrap(), a.1);
    assert_eq!(get_bytes(&dst, &b_copy).await.unwrap(), b.1);
    let snap = dst.load_snapshot(&b_copy).await.unwrap();
    assert_eq!(snap.original, Some(b.0));
    assert_clean(&dst, true).await;
    // Again: nothing to do.
    let r3 = copy(&src, &dst, &[], &NoProgress).await.unwrap();
    assert_eq!((r3.copied.len(), r3.skipped.len(), r3.blobs_read), (0, 3, 0));
    // Dedup across the copy: the destination stores about what the source does.
    let (s, d) = (stats(&src).await.unwrap(), stats(&dst).await.unwrap());
    assert!(
        d.pack_bytes <= s.pack_bytes * 11 / 10,
        "{} vs {}",
        d.pack_bytes,
        s.pack_bytes
    );
}

#[tokio::test]
async fn a_copy_killed_at_any_write_resumes() {
    let src = init_on(Arc::new(MemoryBackend::new())).await;
    let [a, b, c] = three(&src).await;
    for n in [0u64, 1, 3, 7, 15, 30] {
        let mem = MemoryBackend::new();
        Repository::init(Arc::new(mem.clone()), b"dst", &small_opts())
            .await
            .unwrap();
        let faulty = Arc::new(FaultBackend::new(mem.clone()));
        let dst = Repository::open(faulty.clone(), b"dst").await.unwrap();
        faulty.inject(Fault::FailWritesFrom(faulty.writes() + n));
        let failed = copy(&src, &dst, &[], &NoProgress).await;
        let dst = Repository::open(Arc::new(mem.clone()), b"dst").await.unwrap();
        kvault::repo::lock::unlock(&dst, true).await.unwrap();
        if failed.is_ok() {
            continue;
        }
        assert_clean(&dst, true).await;
        let r = copy(&src, &dst, &[], &NoProgress).await.unwrap();
        assert_eq!(r.copied.len() + r.skipped.len(), 3);
        let snaps = dst.load_snapshots().await.unwrap();
        assert_eq!(snaps.len(), 3, "each snapshot copied once (crash at write {n})");
        for (id, s) in snaps {
            let want = [&a, &b, &c]
                .into_iter()
                .find(|x| Some(x.0) == s.original)
                .unwrap();
            assert_eq!(get_bytes(&dst, &id).await.unwrap(), want.1);
        }
        assert_clean(&dst, true).await;
    }
}

#[tokio::test]
async fn a_kafka_snapshot_copied_to_s3_restores_equal_to_the_source() {
    use crate::kafka::*;
    use crate::kafka_restore::{read_partition, ropts, snap_opts};
    let b = source();
    let topic = unique("cp");
    create_topic(&b, &topic, 2, &[("retention.ms", "-1")]).await;
    produce(&b, &topic, &crate::kafka_snapshot::shapes_for_fixture(300, 2));
    let group = unique("cpg");
    commit_group(&b, &group, &[(&topic, 1, 40, "m")]);
    let local = init_on(Arc::new(MemoryBackend::new())).await;
    let so = snap_opts(&b, &topic, &group);
    kvault::ops::snapshot::snapshot(&local, &so, &NoProgress)
        .await
        .unwrap();
    produce(&b, &topic, &crate::kafka_snapshot::shapes_for_fixture(100, 2));
    kvault::ops::snapshot::snapshot(&local, &so, &NoProgress)
        .await
        .unwrap();

    let offsite = Repository::init(
        s3_backend(&format!("kcopy-{}", Id::random().unwrap().short())),
        b"offsite",
        &small_opts(),
    )
    .await
    .unwrap();
    let r = copy(&local, &offsite, &[], &NoProgress).await.unwrap();
    assert_eq!(r.copied.len(), 2);
    assert_clean(&offsite, true).await;
    let latest = r.copied[1].1;
    let res = kvault::ops::restore::restore(&offsite, &latest, &ropts("fromcopy-", &topic), &NoProgress)
        .await
        .unwrap();
    assert_eq!(res.records_written, 400);
    for p in 0..2 {
        assert_eq!(
            read_partition(&b, &topic, p, None),
            read_partition(&b, &format!("fromcopy-{topic}"), p, None),
            "partition {p}"
        );
    }
    let g = res.groups.iter().find(|g| g.group == group).unwrap();
    assert_eq!(g.target_offset, Some(40));
}

#[tokio::test]
async fn records_kafka_deleted_are_freed_once_no_snapshot_holds_them() {
    use crate::kafka::*;
    use crate::kafka_restore::snap_opts;
    let b = source();
    let topic = unique("ret-prune");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    produce_events(&b, &topic, 1, 20_000);
    let repo = init_on(Arc::new(MemoryBackend::new())).await;
    let so = snap_opts(&b, &topic, "none");
    let s1 = kvault::ops::snapshot::snapshot(&repo, &so, &NoProgress)
        .await
        .unwrap();
    // Kafka deletes the first 15,000 records; the next snapshot no longer
    // references them, but the first still does.
    delete_records(&b, &topic, 0, 15_000).await;
    let s2 = kvault::ops::snapshot::snapshot(&repo, &so, &NoProgress)
        .await
        .unwrap();
    let kept = prune(&repo, &all_repacked(), &NoProgress).await.unwrap();
    assert_eq!(
        kept.bytes_freed, 0,
        "the first snapshot still needs them: {kept:?}"
    );
    forget(&repo, &forget_ids(&[s1.snapshot])).await.unwrap();
    let r = prune(&repo, &all_repacked(), &NoProgress).await.unwrap();
    assert!(r.blobs_removed > 0 && r.bytes_freed > 0, "{r:?}");
    assert_clean(&repo, true).await;
    let m = kvault::image::manifest::load(&repo, &repo.load_snapshot(&s2.snapshot).await.unwrap().tree, true)
        .await
        .unwrap();
    let p = &m.topics[&topic].partitions[&0];
    let mut n = 0u64;
    let mut f = |o: i64, _r: kvault::image::record::Record| {
        assert!(o >= 15_000);
        n += 1;
        Ok(())
    };
    kvault::image::reader::for_each_record(
        &repo,
        "t/0",
        p,
        &kvault::image::reader::RecordFilter {
            from_offset: Some(p.meta.log_start),
            ..Default::default()
        },
        &mut f,
    )
    .await
    .unwrap();
    assert_eq!(n, 5_000);
}

#[tokio::test]
async fn prune_waits_for_a_snapshot_with_retry_lock_and_fails_at_once_without() {
    let mem = MemoryBackend::new();
    let repo = init_on(Arc::new(mem.clone())).await;
    let [a, _, _] = three(&repo).await;
    forget(&repo, &forget_ids(&[a.0])).await.unwrap();
    // Another process (its own Repository) holds a shared lock, as a running snapshot does.
    let other = Repository::open(Arc::new(mem.clone()), b"pw").await.unwrap();
    let held = kvault::repo::lock::RepoLock::acquire(&other, false)
        .await
        .unwrap();
    let e = prune(&repo, &all_repacked(), &NoProgress).await.unwrap_err();
    assert!(matches!(e, kvault::Error::Locked(_)), "{e}");
    repo.set_lock_wait(std::time::Duration::from_secs(20));
    let releaser = tokio::spawn(async move {
        // The other process's work: it holds its lock for 0.7 s (the
        // scenario, not a wait for something to happen).
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        held.release().await.unwrap();
    });
    let t0 = std::time::Instant::now();
    let r = prune(&repo, &all_repacked(), &NoProgress).await.unwrap();
    assert!(t0.elapsed() >= std::time::Duration::from_millis(600));
    assert!(r.bytes_freed > 0);
    releaser.await.unwrap();
    assert_clean(&repo, true).await;
}
