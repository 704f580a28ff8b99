//! Fuzz the key-filter blob decoder (format-spec §14 "Key filters"):
//! never a panic, a decoded filter re-encodes to the same bytes, and
//! querying it, whole or as a segment's slice of a shared blob
//! (`filter_at` and the chunk count from the input's length), never
//! panics.
#![no_main]
use kvault::image::keyfilter::{SegmentFilter, SegmentFilters};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = SegmentFilter::decode(data, "fuzz") {
        assert_eq!(f.encode(), data);
        for c in &f.chunks {
            let _ = c.may_hold([data.len() as u64, 7]);
        }
        let at = (data.len() % 3 != 0).then_some((data.len() % 5) as u32);
        let chunks = data.len() % 7;
        if let Some(s) = SegmentFilters::of(std::sync::Arc::new(f), at, chunks) {
            for i in 0..chunks + 2 {
                let _ = s.chunk(i).map(|c| c.may_hold([7, data.len() as u64]));
            }
        }
    }
});
