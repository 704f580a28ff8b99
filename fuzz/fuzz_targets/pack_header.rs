//! Fuzz the pack header reader `repair index` uses: a pack's tail (the
//! header length, then the sealed header) read on its own, and the whole-
//! pack entry decoder that works without the pack's name.
#![no_main]
use kvault::repo::crypto::Keys;
use kvault::repo::pack::{decode_header, decode_pack_entries, header_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = Keys::from_master([7; 32]);
    let len = data.len() as u64;
    if let Ok(hl) = header_len(len, data, "fuzz") {
        let hl = u64::from(hl);
        let start = (len - 4 - hl) as usize;
        if let Some(sealed) = data.get(start..start + hl as usize) {
            if let Ok(entries) = decode_header(&keys, sealed, len - 4 - hl, "fuzz") {
                // Entries must account for exactly the bytes before the header.
                let total: u64 = entries.iter().map(|(e, _)| u64::from(e.stored_len)).sum();
                assert_eq!(total, len - 4 - hl);
            }
        }
    }
    let _ = decode_pack_entries(&keys, data, "fuzz");
});
