//! Kafka helpers of the benches: client settings, creating and deleting
//! topics.
#![allow(dead_code)]

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

pub fn cfg(b: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b).set("log_level", "3");
    c
}

pub async fn create(b: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = cfg(b).create().unwrap();
    let t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for r in admin.create_topics([&t], &AdminOptions::new()).await.unwrap() {
        r.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Deletes a topic (best effort).
pub async fn delete(b: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> = cfg(b).create().unwrap();
    let _ = admin.delete_topics(&[name], &AdminOptions::new()).await;
}
