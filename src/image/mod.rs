//! The Kafka log image: how a cluster's records, topics and groups are laid
//! out in the repository, independent of the Kafka client (so it builds
//! and fuzzes without librdkafka).
//!
//! - [`segment`]: one partition's records as record-aligned chunks.

pub mod segment;
