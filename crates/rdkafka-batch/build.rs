//! Compiles `csrc/headers.c` against the librdkafka source tree that
//! rdkafka-sys built (its `DEP_RDKAFKA_ROOT`), when there is one: the shim
//! reads a field of librdkafka's private message struct, so it must see
//! the exact headers of the library it links. Linked against a system
//! librdkafka (rdkafka's `dynamic-linking`) there is no tree: the crate then
//! calls `rd_kafka_message_headers` for every message, as before.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kvault_headers_shim)");
    println!("cargo::rerun-if-changed=csrc/headers.c");
    println!("cargo::rerun-if-env-changed=DEP_RDKAFKA_ROOT");
    let Some(root) = std::env::var_os("DEP_RDKAFKA_ROOT").map(PathBuf::from) else {
        return;
    };
    let src = root.join("src");
    if !src.join("rdkafka_msg.h").exists() || !root.join("config.h").exists() {
        return;
    }
    cc::Build::new()
        .file("csrc/headers.c")
        .include(&src)
        .include(&root)
        .warnings(false)
        .compile("kvault_rdkafka_headers");
    println!("cargo::rustc-cfg=kvault_headers_shim");
}
