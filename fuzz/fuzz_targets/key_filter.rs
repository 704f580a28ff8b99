//! Fuzz the key-filter blob decoder (format-spec §14 "Key filters"):
//! never a panic, a decoded filter re-encodes to the same bytes, and
//! querying it never panics.
#![no_main]
use kvault::image::keyfilter::SegmentFilter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = SegmentFilter::decode(data, "fuzz") {
        assert_eq!(f.encode(), data);
        for c in &f.chunks {
            let _ = c.may_hold([data.len() as u64, 7]);
        }
    }
});
