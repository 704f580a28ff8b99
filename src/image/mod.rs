//! The Kafka log image: how a cluster's records, topics and groups are laid
//! out in the repository, independent of the Kafka client (so it builds
//! and fuzzes without librdkafka).
//!
//! - [`record`]: the canonical record encoding, and offsets as runs;
//! - [`types`]: topics, group offsets and chunk metadata as captured;
//! - [`segment`]: one partition's records as record-aligned chunks;
//! - [`manifest`]: the snapshot's trees (topics, partitions, segments,
//!   groups), read and built;
//! - [`commits`]: consumer group commit history (`__consumer_offsets`
//!   decoded, and the commit log a snapshot stores);
//! - [`erase`]: records erased by key from chunks and segments
//!   (`kvault rewrite`);
//! - [`keyfilter`]: per-chunk filters of record keys (`find`, `rewrite`);
//! - [`layout`]: how an offset-exact restore writes a partition (its
//!   gaps as placeholders and transaction markers);
//! - [`txnlog`]: transaction coordinators' completions
//!   (`__transaction_state` decoded): when each transaction committed on
//!   all its partitions;
//! - [`cluster`]: the cluster's own state (ACLs, SCRAM users, quotas,
//!   broker configs) as a snapshot stores it;
//! - [`wire`]: Kafka's encoding of those internal records and of the
//!   requests kvault encodes itself;
//! - [`reader`]: a partition's records read back, filtered;
//! - [`select`]: which records a restore replays (retention, compaction,
//!   the log as of a time).
//!
//! Layering: `image` uses `repo` (blobs, trees) and nothing of `kafka` or
//! `ops`; the Kafka client uses `image::record` to hand records over.

pub mod cluster;
pub mod commits;
pub mod erase;
pub mod keyfilter;
pub mod layout;
pub mod manifest;
pub mod reader;
pub mod record;
pub mod segment;
pub mod select;
pub mod txnlog;
pub mod types;
pub mod wire;
