//! Fuzz the reading of S3's Object Lock answers (a retention date, a
//! bucket's lock configuration, an error's code): never a panic on any
//! bytes a hostile or broken server sends.
#![no_main]
use kvault::backend::objectlock::{parse_s3_date, xml_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for tag in ["RetainUntilDate", "ObjectLockEnabled", "Code", "Message"] {
        if let Some(t) = xml_text(&text, tag) {
            let _ = parse_s3_date(t);
        }
    }
});
