//! Fuzz the index payload decoder; decoded files must re-encode identically.
#![no_main]
use kvault::repo::index::IndexFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = IndexFile::decode(data, "fuzz") {
        assert_eq!(f.encode(), data, "decode/encode is not a bijection");
    }
});
