//! Fuzz the key file decoder and unwrapping (with the cheapest KDF).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(kf) = kvault::repo::keyfile::KeyFile::decode(data, "fuzz") {
        // Never run an expensive KDF on fuzzed parameters.
        if kf.kdf.params.m_cost_kib <= 256 && kf.kdf.params.t_cost <= 2 {
            let _ = kf.open(b"pw", "fuzz");
        }
    }
});
