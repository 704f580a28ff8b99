//! Running a user's shell command for a secret (a repository password, an
//! OAUTHBEARER token) with a deadline, on `tokio::process`.
//!
//! The command runs as `sh -c CMD` in a process group of its own, with no
//! standard input. Its stdout is the answer; its stderr is read all along
//! (a chatty command never blocks on a full pipe) and either passed to
//! ours (a password command may talk to the user) or kept for the error.
//! At the deadline the whole group is killed, so a command that forked
//! (`gpg` starting an agent, `sh` running a pipeline) leaves nothing
//! behind and nothing holds the pipe open.

use std::time::Duration;

/// What becomes of the command's stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// Passed through to ours (prompts and complaints reach the user).
    Inherit,
    /// Read and kept: its first line goes into the error of a failure.
    Capture,
}

/// Why a command gave no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// It could not be started.
    #[error("cannot run it: {0}")]
    Spawn(std::io::Error),
    /// It ran past its deadline (it and everything it started were killed).
    #[error("did not finish within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// It exited unsuccessfully.
    #[error("exited with {status}{}", if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) })]
    Failed {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The first line of its stderr (with [`Stderr::Capture`]).
        stderr: String,
    },
    /// Waiting for it or reading its output failed.
    #[error("reading its output: {0}")]
    Io(std::io::Error),
}

/// Runs `sh -c cmd`; returns its stdout once it exits successfully within
/// `timeout`.
///
/// # Errors
/// [`CommandError`]: not started, timed out (the process group killed),
/// failed, or unreadable.
pub async fn run_shell(cmd: &str, timeout: Duration, stderr: Stderr) -> Result<Vec<u8>, CommandError> {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(match stderr {
            Stderr::Inherit => std::process::Stdio::inherit(),
            Stderr::Capture => std::process::Stdio::piped(),
        })
        .kill_on_drop(true);
    #[cfg(unix)]
    c.process_group(0);
    let child = c.spawn().map_err(CommandError::Spawn)?;
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => Ok(out.stdout),
        Ok(Ok(out)) => Err(CommandError::Failed {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        }),
        Ok(Err(e)) => Err(CommandError::Io(e)),
        Err(_) => {
            kill_group(pid);
            Err(CommandError::TimedOut(timeout))
        }
    }
}

/// [`run_shell`] for callers without a runtime of their own, or on one
/// (librdkafka's token callback threads; the CLI's password prompt): a
/// small runtime on a thread of its own.
///
/// # Errors
/// As [`run_shell`].
pub fn run_shell_blocking(cmd: &str, timeout: Duration, stderr: Stderr) -> Result<Vec<u8>, CommandError> {
    let run = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(CommandError::Io)?
            .block_on(run_shell(cmd, timeout, stderr))
    };
    // block_on refuses to run on another runtime's thread.
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(run).join()).unwrap_or_else(|_| {
            Err(CommandError::Io(std::io::Error::other(
                "the command's thread panicked",
            )))
        })
    } else {
        run()
    }
}

/// Kills the process group the command leads.
fn kill_group(pid: Option<u32>) {
    #[cfg(unix)]
    if let Some(p) = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
    }
    #[cfg(not(unix))]
    let _ = pid;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A command that writes far more to stderr than a pipe holds still
    /// finishes (its stderr is read all along) and its stdout is the answer.
    #[tokio::test]
    async fn a_chatty_command_does_not_hang() {
        let t0 = Instant::now();
        let out = run_shell(
            "head -c 1000000 /dev/zero | tr '\\\\0' x >&2; echo token",
            Duration::from_secs(20),
            Stderr::Capture,
        )
        .await
        .unwrap();
        assert_eq!(out, b"token\n");
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    /// Whether a process is gone (or dead, awaiting its parent's wait).
    #[cfg(target_os = "linux")]
    fn gone(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
    }

    /// At the deadline the whole group goes: a background child that holds
    /// stdout open is killed too, and the error comes at the deadline.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_forking_command_is_killed_with_everything_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let cmd = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let t0 = Instant::now();
        let e = run_shell_blocking(&cmd, Duration::from_millis(500), Stderr::Capture).unwrap_err();
        assert!(matches!(e, CommandError::TimedOut(_)), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
        let dead = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            gone(&pid)
        });
        assert!(dead, "the background sleep {pid} survived");
    }

    #[tokio::test]
    async fn a_failure_names_its_status_and_first_stderr_line() {
        let e = run_shell(
            "echo nope >&2; echo more >&2; exit 3",
            Duration::from_secs(5),
            Stderr::Capture,
        )
        .await
        .unwrap_err();
        assert_eq!(e.to_string(), "exited with exit status: 3: nope");
        let e = run_shell("exit 1", Duration::from_secs(5), Stderr::Capture)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "exited with exit status: 1");
    }
}
