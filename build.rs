//! Build facts for `kvault version`: the git commit the binary was built
//! from and the compiler's version. Twenty lines of our own instead of a
//! build-info crate (vergen and kin pull in git libraries we do not need).
//!
//! It also stops a build with feature `oidc` that would silently lack it.
//!
//! `KVAULT_GIT_COMMIT` set in the environment wins (a container build
//! copies the sources without `.git`); outside a checkout it is "unknown".

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !s.trim().is_empty()).then(|| s.trim().to_string())
}

fn main() {
    // Feature `oidc` needs librdkafka built with libcurl, which its
    // configure step finds only through pkg-config; curl-sys building its
    // own copy (`static=1`) means it found none, and librdkafka would
    // silently leave OIDC out (ARCHITECTURE.md "Build dependencies").
    if std::env::var_os("CARGO_FEATURE_OIDC").is_some()
        && std::env::var("DEP_CURL_STATIC").as_deref() == Ok("1")
    {
        // Fails the build with this one line.
        println!(
            "cargo::error=feature oidc needs libcurl's development files (pkg-config finds no libcurl): \
             apt-get install libcurl4-openssl-dev pkg-config"
        );
        return;
    }
    println!("cargo:rerun-if-env-changed=KVAULT_GIT_COMMIT");
    for f in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        println!("cargo:rerun-if-changed={f}");
    }
    let commit = std::env::var("KVAULT_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| output("git", &["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=KVAULT_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=KVAULT_RUSTC_VERSION={rustc_version}");
}
