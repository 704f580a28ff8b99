//! Fuzz the canonical Kafka record decoder (format-spec §13) and the Kafka
//! manifest metadata decoders (§14).
#![no_main]
use kvault::image::record::Decoder;
use kvault::image::manifest::{from_meta, PartitionMeta, SegmentMeta, TopicMeta};
use kvault::repo::tree::Tree;
use kvault::Id;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for r in Decoder::new(data, 0, "fuzz") {
        if r.is_err() {
            break;
        }
    }
    if let Ok(t) = Tree::decode(data, &Id::default()) {
        for n in &t.nodes {
            let _ = from_meta::<SegmentMeta>(n);
            let _ = from_meta::<PartitionMeta>(n);
            let _ = from_meta::<TopicMeta>(n);
        }
    }
});
