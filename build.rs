//! Build facts for `kvault version`: the git commit the binary was built
//! from and the compiler's version. Twenty lines of our own instead of a
//! build-info crate (vergen and kin pull in git libraries we do not need).
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
