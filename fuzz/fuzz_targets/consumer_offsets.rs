//! Fuzz the `__consumer_offsets` record decoder (every key and value
//! version) and the commit log's JSON lines: never a panic, and a decoded
//! log re-encodes to lines that decode the same.
#![no_main]
use kvault::image::commits::{decode, decode_log, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (key, value) = data.split_at(split);
    let _ = decode(key, Some(value));
    let _ = decode(key, None);
    if let Ok(log) = decode_log(data) {
        let again = encode(&log).expect("encode");
        assert_eq!(decode_log(&again).expect("re-decode"), log);
    }
});
