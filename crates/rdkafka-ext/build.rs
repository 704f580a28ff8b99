//! Compiles `csrc/headers.c`, `csrc/fetch.c` and `csrc/request.c` against the librdkafka source tree that
//! rdkafka-sys built (its `DEP_RDKAFKA_ROOT`), when there is one: the shim
//! reads a field of librdkafka's private message struct, so it must see
//! the exact headers of the library it links. Linked against a system
//! librdkafka (rdkafka's `dynamic-linking`) there is no tree: the crate then
//! calls `rd_kafka_message_headers` for every message, as before; setting
//! `KVAULT_NO_HEADER_SHIM=1` builds that path on purpose, so its tests run
//! too (`.ci/run`). The shim compiles with warnings as errors.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kvault_headers_shim)");
    println!("cargo::rerun-if-changed=csrc/headers.c");
    println!("cargo::rerun-if-changed=csrc/fetch.c");
    println!("cargo::rerun-if-changed=csrc/request.c");
    println!("cargo::rerun-if-changed=csrc/kvault_raw.h");
    println!("cargo::rerun-if-env-changed=DEP_RDKAFKA_ROOT");
    println!("cargo::rerun-if-env-changed=KVAULT_NO_HEADER_SHIM");
    if std::env::var_os("KVAULT_NO_HEADER_SHIM").is_some_and(|v| !v.is_empty()) {
        return;
    }
    let Some(root) = std::env::var_os("DEP_RDKAFKA_ROOT").map(PathBuf::from) else {
        return;
    };
    let src = root.join("src");
    if !src.join("rdkafka_msg.h").exists() || !root.join("config.h").exists() {
        return;
    }
    cc::Build::new()
        .file("csrc/headers.c")
        .file("csrc/fetch.c")
        .file("csrc/request.c")
        // librdkafka's private headers as system headers: their own
        // warnings are theirs; ours (headers.c) are errors.
        .flag("-isystem")
        .flag(src.to_string_lossy().as_ref())
        .flag("-isystem")
        .flag(root.to_string_lossy().as_ref())
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("kvault_rdkafka_headers");
    println!("cargo::rustc-cfg=kvault_headers_shim");
}
