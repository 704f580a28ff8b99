//! Fuzz the key file decoder and unwrapping (with the cheapest KDF); a key
//! with parameters over the limits must never decode.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(kf) = kvault::repo::keyfile::KeyFile::decode(data, "fuzz") {
        // Hostile parameters never get past decoding (format-spec §4).
        let p = kf.kdf.params;
        assert!(p.m_cost_kib <= kvault::repo::keyfile::MAX_M_COST_KIB);
        assert!(p.t_cost <= kvault::repo::keyfile::MAX_T_COST);
        assert!(p.p_cost <= kvault::repo::keyfile::MAX_P_COST);
        // Never run an expensive KDF on fuzzed parameters.
        if kf.kdf.params.m_cost_kib <= 256 && kf.kdf.params.t_cost <= 2 {
            let _ = kf.open(b"pw", "fuzz");
        }
    }
});
