//! Integration tests: one binary, one module per area.
//!
//! Tests that need the S3 server read `KVAULT_TEST_S3_*` (set by
//! `scripts/test`, or `eval "$(scripts/s3-server start)"`) and fail loudly
//! when it is missing; they never pass without having run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
// A scenario test reads top to bottom as the user's session it replays
// (snapshot, kill, rerun, prune, restore); splitting it would hide that.
#![allow(clippy::too_many_lines)]

mod backend_suite;
mod cli;
mod common;
mod faults;
mod fixture;
mod golden;
mod hardening;
mod kafka;
mod kafka_cluster_state;
mod kafka_every;
mod kafka_exact;
mod kafka_find;
mod kafka_fixture;
mod kafka_history;
mod kafka_operations;
mod kafka_restart;
mod kafka_restore;
mod kafka_restore_select;
mod kafka_rewrite;
mod kafka_security;
mod kafka_shards;
mod kafka_snapshot;
mod kafka_target;
mod kafka_txn;
mod kafka_verify;
mod lifecycle;
mod object_lock;
mod repository;
