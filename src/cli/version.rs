//! `kvault version`: what a bug report needs — kvault's version, the commit
//! it was built from, its optional features, the linked librdkafka (with
//! the mechanisms it was built with) and the compiler.

use anyhow::Result;
use kvault::error::exit;
use serde_json::json;

use super::Ctx;

/// kvault's optional cargo features and whether this build has them.
fn features() -> Vec<(&'static str, bool)> {
    vec![
        ("oidc", cfg!(feature = "oidc")),
        ("gssapi", cfg!(feature = "gssapi")),
    ]
}

/// Prints the build's facts (one JSON object under `--json`).
pub fn run(ctx: &Ctx) -> Result<i32> {
    let lib = kvault::kafka::client_library();
    let enabled: Vec<&str> = features()
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| n)
        .collect();
    let value = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("KVAULT_GIT_COMMIT"),
        "features": enabled,
        "librdkafka": lib.version,
        "librdkafka_features": lib.builtin_features,
        "rustc": env!("KVAULT_RUSTC_VERSION"),
        "target": format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
    });
    ctx.out.emit("version", value, || {
        let feats = features()
            .iter()
            .map(|(n, on)| format!("{}{n}", if *on { "+" } else { "-" }))
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "kvault {} (commit {})\nfeatures: {feats}\nlibrdkafka {} ({})\n{} on {}-{}",
            env!("CARGO_PKG_VERSION"),
            env!("KVAULT_GIT_COMMIT"),
            lib.version,
            lib.builtin_features.join(","),
            env!("KVAULT_RUSTC_VERSION"),
            std::env::consts::ARCH,
            std::env::consts::OS,
        )
    });
    Ok(exit::OK)
}
