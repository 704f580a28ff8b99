//! Fuzz the pack decoder: the header length, the sealed header and blobs.
#![no_main]
use kvault::repo::crypto::Keys;
use kvault::repo::pack::{decode_pack, open_blob};
use kvault::Id;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = Keys::from_master([7; 32]);
    if let Ok(entries) = decode_pack(&keys, &Id::hash(data), data) {
        for (e, off) in entries {
            let start = off as usize;
            if let Some(s) = data.get(start..start.saturating_add(e.stored_len as usize)) {
                let _ = open_blob(&keys, &e, s, "fuzz");
            }
        }
    }
});
