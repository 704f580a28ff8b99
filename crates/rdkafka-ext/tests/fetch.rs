//! Raw fetches of record batches through a client's own connection
//! (`csrc/fetch.c`): an answer of a version kvault decodes, holding the
//! records. librdkafka's mock cluster stands in for a broker here; kvault
//! decodes the answers and its suite proves the markers on a real broker.

use std::time::Duration;

use kvault_rdkafka_ext::fetch::fetch_raw;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

#[test]
fn a_transaction_s_batch_shows_its_producer_and_flag() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("t", 1, 1).expect("topic");
    let servers = mock.bootstrap_servers();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("transactional.id", "a")
        .create()
        .expect("producer");
    let t = Duration::from_secs(10);
    producer.init_transactions(t).expect("init");
    producer.begin_transaction().expect("begin");
    for v in ["1", "2", "3"] {
        producer
            .send(BaseRecord::<str, str>::to("t").partition(0).payload(v))
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.commit_transaction(t).expect("commit");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .create()
        .expect("consumer");
    let raw = fetch_raw(c.client(), "t", 0, 0, 1 << 20, Duration::from_secs(10));
    if !kvault_rdkafka_ext::headers_shim() {
        assert!(raw.is_err());
        return;
    }
    let raw = raw.expect("fetched");
    assert!((4..=11).contains(&raw.version), "{}", raw.version);
    // The three values are in the answer (uncompressed, as produced).
    for v in [b"1", b"2", b"3"] {
        assert!(raw.body.windows(1).any(|w| w == v));
    }
    assert!(raw.body.len() > 61, "{} bytes", raw.body.len());
}
