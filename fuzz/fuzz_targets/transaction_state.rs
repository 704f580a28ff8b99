//! Fuzz the `__transaction_state` record decoder (both value versions):
//! never a panic, and a completion it finds is one of the two end states.
#![no_main]
use kvault::image::txnlog::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (key, value) = data.split_at(split);
    let _ = decode(key, None, 0);
    if let Ok(Some(c)) = decode(key, Some(value), 7) {
        assert_eq!(c.ts, 7, "dated by the record");
        // Status byte 4 or 5 only; the flag says which.
        let status = value.get(16).copied();
        assert!(status.is_none() || status == Some(if c.committed { 4 } else { 5 }));
    }
});
