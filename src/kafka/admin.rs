//! What a snapshot captures about a cluster besides records: its id, the
//! selected topics with partition counts, replication factors, non-default
//! configs and log bounds, and consumer groups' committed offsets.

use std::collections::BTreeMap;

use rdkafka::admin::{AdminClient, AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

pub use super::types::{GroupOffset, TopicInfo};
use super::{KafkaOptions, selected};
use crate::error::{Error, Result};

fn kafka_err(what: &str, brokers: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("kafka {what} at {brokers}: {e}"))
}

/// A consumer for metadata and reads: no group, no commits, read_committed.
///
/// # Errors
/// Invalid librdkafka properties.
pub fn metadata_consumer(opts: &KafkaOptions) -> Result<BaseConsumer> {
    let mut c = opts.client_config();
    c.set("enable.auto.commit", "false");
    c.set("isolation.level", "read_committed");
    c.create().map_err(|e| kafka_err("client", &opts.brokers, e))
}

/// The cluster id; fails clearly when no broker answers.
///
/// # Errors
/// An unreachable cluster.
pub fn cluster_id(consumer: &BaseConsumer, opts: &KafkaOptions) -> Result<String> {
    consumer
        .fetch_metadata(None, opts.timeout())
        .map_err(|e| Error::Invalid(format!("cannot reach Kafka at {}: {e}", opts.brokers)))?;
    consumer
        .client()
        .fetch_cluster_id(opts.timeout())
        .ok_or_else(|| Error::Invalid(format!("Kafka at {} did not give a cluster id", opts.brokers)))
}

/// Selected topics (internal `__` topics never), sorted by name.
///
/// # Errors
/// Metadata or admin requests failing.
pub async fn topics(
    consumer: &BaseConsumer,
    opts: &KafkaOptions,
    include: &[String],
    exclude: &[String],
) -> Result<Vec<TopicInfo>> {
    let md = consumer
        .fetch_metadata(None, opts.timeout())
        .map_err(|e| Error::Invalid(format!("cannot reach Kafka at {}: {e}", opts.brokers)))?;
    let mut out = Vec::new();
    for t in md.topics() {
        if t.name().starts_with("__") || !selected(t.name(), include, exclude) || t.error().is_some() {
            continue;
        }
        let rf = t
            .partitions()
            .iter()
            .find(|p| p.id() == 0)
            .map_or(1, |p| p.replicas().len() as i32);
        out.push(TopicInfo {
            name: t.name().to_string(),
            partitions: t.partitions().len() as i32,
            replication_factor: rf,
            configs: BTreeMap::new(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    let missing: Vec<&String> = include
        .iter()
        .filter(|p| !p.contains(['*', '?']) && !out.iter().any(|t| &t.name == *p))
        .collect();
    if let Some(m) = missing.first() {
        return Err(Error::NotFound(format!("topic {m} on {}", opts.brokers)));
    }
    if out.is_empty() {
        return Ok(out);
    }
    let admin: AdminClient<DefaultClientContext> = opts
        .client_config()
        .create()
        .map_err(|e| kafka_err("admin client", &opts.brokers, e))?;
    let specs: Vec<ResourceSpecifier<'_>> = out.iter().map(|t| ResourceSpecifier::Topic(&t.name)).collect();
    let results = admin
        .describe_configs(
            specs.iter(),
            &AdminOptions::new().request_timeout(Some(opts.timeout())),
        )
        .await
        .map_err(|e| kafka_err("describe configs", &opts.brokers, e))?;
    for (t, r) in out.iter_mut().zip(results) {
        // A topic deleted meanwhile has no configs; the read will notice.
        if let Ok(res) = r {
            for e in res.entries {
                if matches!(e.source, ConfigSource::DynamicTopic) && !e.is_sensitive {
                    if let Some(v) = e.value {
                        t.configs.insert(e.name, v);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// (log start, last stable offset) of a partition.
///
/// # Errors
/// The partition is gone or the broker does not answer.
pub fn bounds(consumer: &BaseConsumer, opts: &KafkaOptions, topic: &str, p: i32) -> Result<(i64, i64)> {
    // With isolation.level=read_committed, ListOffsets(latest) returns the
    // last stable offset, not the high watermark.
    consumer
        .fetch_watermarks(topic, p, opts.timeout())
        .map_err(|e| kafka_err(&format!("offsets of {topic}/{p}"), &opts.brokers, e))
}

/// Committed offsets of every selected group for the given partitions.
///
/// # Errors
/// Listing groups or fetching offsets failing.
pub fn group_offsets(
    opts: &KafkaOptions,
    partitions: &[(String, i32)],
    include: &[String],
) -> Result<BTreeMap<String, Vec<GroupOffset>>> {
    let lister = metadata_consumer(opts)?;
    let groups = lister
        .fetch_group_list(None, opts.timeout())
        .map_err(|e| kafka_err("list groups", &opts.brokers, e))?;
    let mut names: Vec<String> = groups
        .groups()
        .iter()
        .map(|g| g.name().to_string())
        .filter(|g| selected(g, include, &[]))
        .collect();
    names.sort();
    let mut tpl = TopicPartitionList::new();
    for (t, p) in partitions {
        tpl.add_partition(t, *p);
    }
    let mut out = BTreeMap::new();
    for g in names {
        // Reads the group's commits (OffsetFetch) without joining it.
        let mut cfg = opts.client_config();
        cfg.set("group.id", &g).set("enable.auto.commit", "false");
        let c: BaseConsumer = cfg.create().map_err(|e| kafka_err("client", &opts.brokers, e))?;
        let committed = c
            .committed_offsets(tpl.clone(), opts.timeout())
            .map_err(|e| kafka_err(&format!("offsets of group {g}"), &opts.brokers, e))?;
        let offs: Vec<GroupOffset> = committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(GroupOffset {
                    topic: e.topic().to_string(),
                    partition: e.partition(),
                    offset: o,
                    metadata: e.metadata().to_string(),
                }),
                _ => None,
            })
            .collect();
        if !offs.is_empty() {
            out.insert(g, offs);
        }
    }
    Ok(out)
}
