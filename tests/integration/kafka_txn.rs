//! Transaction markers as a real broker writes them, read raw through the
//! client's own connection (`Cluster::batches`): the facts a
//! transaction-exact point in time and an offset-exact restore rest on.
//! Each transaction's records carry its producer id; its commit or abort
//! marker takes exactly one offset right after them, stamped with the
//! broker's clock when it was written — which can be after the producer's
//! `commit_transaction` returned (the coordinator answers EndTxn once it
//! logged PrepareCommit and writes the markers after; seen here 13 ms
//! late). What a read_committed consumer could see at T is decided by the
//! marker's time, not by the producer's.

use kvault::TopicPartition;
use kvault::kafka::KafkaOptions;
use kvault::kafka::admin::Cluster;
use kvault::kafka::batches::Marker;

use crate::kafka::*;

#[tokio::test]
async fn commit_and_abort_markers_follow_their_transactions_with_the_broker_s_time() {
    let b = source();
    let topic = unique("txm");
    create_topic(&b, &topic, 1, &[("retention.ms", "-1")]).await;
    let recs = |tag: &str, n: i64| -> Vec<(i32, kvault::image::record::Record)> {
        (0..n)
            .map(|i| {
                (
                    0,
                    rec(now_ms(), Some(b"k"), Some(format!("{tag}{i}").as_bytes()), &[]),
                )
            })
            .collect()
    };
    let t0 = now_ms();
    produce_transaction(&b, &topic, &recs("a", 3), true);
    let t1 = now_ms();
    produce_transaction(&b, &topic, &recs("b", 2), false);
    produce(&b, &topic, &recs("c", 1));
    let t3 = now_ms();

    let cluster = Cluster::connect(&KafkaOptions::new(&b)).await.unwrap();
    let p = cluster
        .batches(&TopicPartition::new(topic.clone(), 0), 0, 1 << 20)
        .await
        .unwrap();
    assert_eq!(p.high_watermark, 8, "3 + marker + 2 + marker + 1: {p:?}");
    assert_eq!(p.last_stable_offset, 8);
    let markers: Vec<_> = p
        .batches
        .iter()
        .filter_map(|x| {
            x.control
                .map(|m| (x.base_offset, m, x.producer_id, x.max_timestamp))
        })
        .collect();
    let data: Vec<_> = p
        .batches
        .iter()
        .filter(|x| x.control.is_none())
        .map(|x| (x.base_offset, x.last_offset, x.transactional, x.producer_id))
        .collect();
    // Committed: offsets 0..=2, its marker at 3.
    assert_eq!(data[0].0, 0);
    assert!(data[0].2, "{data:?}");
    assert_eq!((markers[0].0, markers[0].1), (3, Marker::Commit), "{markers:?}");
    assert_eq!(
        markers[0].2, data[0].3,
        "the marker names the transaction's producer"
    );
    assert!(
        (t0..=t3).contains(&markers[0].3),
        "{t0} <= {} <= {t3}",
        markers[0].3
    );
    // Aborted: offsets 4..=5, its marker at 6, another producer.
    let aborted = data.iter().find(|d| d.0 == 4).unwrap();
    assert!(aborted.2 && aborted.1 == 5, "{data:?}");
    assert_eq!((markers[1].0, markers[1].1), (6, Marker::Abort), "{markers:?}");
    assert_eq!(markers[1].2, aborted.3);
    assert_ne!(aborted.3, data[0].3);
    assert!(
        (t1..=t3).contains(&markers[1].3),
        "{t1} <= {} <= {t3}",
        markers[1].3
    );
    assert!(markers[0].3 <= markers[1].3);
    // Plain: offset 7, not transactional.
    let plain = data.last().unwrap();
    assert_eq!((plain.0, plain.2), (7, false), "{data:?}");
    assert_eq!(markers.len(), 2);
}
