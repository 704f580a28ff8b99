//! Fuzz the manifest decoders: tree blobs and snapshot files.
#![no_main]
use kvault::repo::snapshot::Snapshot;
use kvault::repo::tree::Tree;
use kvault::Id;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tree::decode(data, &Id::default()) {
        let again = Tree::decode(&t.encode().expect("encodes"), &Id::default()).expect("re-decodes");
        assert_eq!(again, t);
    }
    let _ = Snapshot::decode(data, &Id::default());
});
