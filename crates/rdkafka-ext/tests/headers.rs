//! Headers of real messages, read through whichever path this build has:
//! the shim (`csrc/headers.c`) or `rd_kafka_message_headers` for every
//! message (`KVAULT_NO_HEADER_SHIM=1`, as with a system librdkafka).
//! librdkafka's mock cluster stands in for a broker: this is the crate's
//! own contract, the Kafka suite proves the rest on a real broker.

use std::time::{Duration, Instant};

use kvault_rdkafka_ext::FetchQueue;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

type Headers = Vec<(String, Option<Vec<u8>>)>;

#[test]
fn headers_are_read_in_order_with_null_values_and_none_is_empty() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("t", 1, 1).expect("topic");
    let servers = mock.bootstrap_servers();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .create()
        .expect("producer");
    let with = OwnedHeaders::new()
        .insert(Header {
            key: "a",
            value: Some("1"),
        })
        .insert(Header {
            key: "n",
            value: None::<&[u8]>,
        })
        .insert(Header {
            key: "a",
            value: Some(""),
        });
    producer
        .send(BaseRecord::<str, str>::to("t").partition(0).payload("none"))
        .expect("send");
    producer
        .send(
            BaseRecord::<str, str>::to("t")
                .partition(0)
                .payload("three")
                .headers(with),
        )
        .expect("send");
    producer.flush(Duration::from_secs(10)).expect("flush");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("group.id", "kvault-rdkafka-ext-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let q = FetchQueue::new(&consumer).expect("queue");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("t", 0, Offset::Beginning).expect("tpl");
    // As kvault's reader does: route first, then assign.
    assert!(q.route("t", 0));
    consumer.assign(&tpl).expect("assign");
    let mut got: Vec<Headers> = Vec::new();
    let mut batch = q.batch(16);
    let t0 = Instant::now();
    while got.len() < 2 && t0.elapsed() < Duration::from_secs(30) {
        consumer.poll(Duration::ZERO);
        q.consume(&mut batch, Duration::from_millis(100));
        for m in batch.iter().filter(|m| m.error().is_none()) {
            let mut h = Vec::new();
            m.headers_into(&mut h).expect("headers");
            got.push(
                h.into_iter()
                    .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                    .collect(),
            );
        }
    }
    assert_eq!(
        got,
        vec![
            vec![],
            vec![
                ("a".to_string(), Some(b"1".to_vec())),
                ("n".to_string(), None),
                ("a".to_string(), Some(Vec::new())),
            ],
        ]
    );
}
