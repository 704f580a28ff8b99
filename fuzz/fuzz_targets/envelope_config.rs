//! Fuzz the encrypted-file envelope (config, index, snapshot, lock) and the
//! config decoder. Inputs are sealed with a fixed key so the fuzzer reaches
//! the decoders behind authentication: the first byte picks the path.
#![no_main]
use kvault::repo::config::Config;
use kvault::repo::crypto::Keys;
use kvault::repo::envelope::{open_file, seal_file, FileType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = Keys::from_master([7; 32]);
    let Some((first, rest)) = data.split_first() else { return };
    if first & 1 == 0 {
        let _ = open_file(&keys, FileType::Config, rest, "fuzz");
    } else if let Ok(f) = seal_file(&keys, FileType::Config, rest) {
        let plain = open_file(&keys, FileType::Config, &f, "fuzz").expect("own seal opens");
        let _ = Config::decode(&plain);
    }
});
