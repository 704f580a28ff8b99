//! Where passwords come from: `--password-file`, `--password-command`,
//! `KVAULT_PASSWORD`, or a terminal prompt (twice when creating a key).
//! A file's or command's single trailing newline is not part of the password.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};

use super::GlobalArgs;

fn strip_newline(mut s: Vec<u8>) -> Vec<u8> {
    if s.last() == Some(&b'\n') {
        s.pop();
        if s.last() == Some(&b'\r') {
            s.pop();
        }
    }
    s
}

fn from_file(path: &str) -> Result<Vec<u8>> {
    let b = std::fs::read(path).with_context(|| format!("reading password file {path}"))?;
    Ok(strip_newline(b))
}

/// Runs a password command, killing it (and all it started) after
/// `timeout`: a command waiting for input that never comes must not hang a
/// nightly job.
fn from_command(cmd: &str, timeout: std::time::Duration) -> Result<Vec<u8>> {
    use kvault::process::{CommandError, Stderr, run_shell_blocking};
    match run_shell_blocking(cmd, timeout, Stderr::Inherit) {
        Ok(out) => Ok(strip_newline(out)),
        Err(CommandError::TimedOut(_)) => bail!(
            "password command {cmd:?} did not finish within {} (--password-command-timeout)",
            humantime::format_duration(timeout)
        ),
        Err(e) => bail!("password command {cmd:?}: {e}"),
    }
}

fn prompt(msg: &str) -> Result<Vec<u8>> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password given: use --password-file, --password-command or KVAULT_PASSWORD (no terminal to ask on)"
        );
    }
    Ok(rpassword::prompt_password(msg)
        .context("reading password")?
        .into_bytes())
}

fn prompt_twice(what: &str) -> Result<Vec<u8>> {
    let a = prompt(&format!("enter {what}: "))?;
    let b = prompt(&format!("enter {what} again: "))?;
    if a != b {
        bail!("passwords do not match");
    }
    Ok(a)
}

/// The password to open (or, with `create`, to initialise) the repository.
pub fn repository_password(g: &GlobalArgs, create: bool) -> Result<Vec<u8>> {
    let pw = if let Some(f) = &g.password_file {
        from_file(f)?
    } else if let Some(c) = &g.password_command {
        from_command(c, g.password_command_timeout)?
    } else if let Ok(p) = std::env::var("KVAULT_PASSWORD") {
        p.into_bytes()
    } else if create {
        prompt_twice("password for new repository")?
    } else {
        prompt("enter password for repository: ")?
    };
    if create && pw.is_empty() {
        bail!("an empty password is not allowed");
    }
    Ok(pw)
}

/// A new password for `key add` / `key passwd`.
pub fn new_password(file: Option<&str>) -> Result<Vec<u8>> {
    let pw = match file {
        Some(f) => from_file(f)?,
        None => match std::env::var("KVAULT_NEW_PASSWORD") {
            Ok(p) => p.into_bytes(),
            Err(_) => prompt_twice("new password")?,
        },
    };
    if pw.is_empty() {
        bail!("an empty password is not allowed");
    }
    Ok(pw)
}

/// The source repository's password for `copy`: `--from-password-file`,
/// `--from-password-command`, `KVAULT_FROM_PASSWORD`, or a prompt.
pub fn source_password(
    file: Option<&str>,
    command: Option<&str>,
    timeout: std::time::Duration,
) -> Result<Vec<u8>> {
    if let Some(f) = file {
        from_file(f)
    } else if let Some(c) = command {
        from_command(c, timeout)
    } else if let Ok(p) = std::env::var("KVAULT_FROM_PASSWORD") {
        Ok(p.into_bytes())
    } else {
        prompt("enter password for the source repository: ")
    }
}
