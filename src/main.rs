//! The `kvault` binary: parses the command line, runs the command on a
//! tokio runtime, and turns errors into one line on stderr and a documented
//! exit code (README "Exit codes").

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kvault: cannot start the async runtime: {e}");
            std::process::exit(kvault::error::exit::ERROR);
        }
    };
    let code = rt.block_on(async {
        // SIGINT and SIGTERM (Kubernetes, systemd) alike drop the command,
        // which removes partial outputs, and exit 130.
        tokio::select! {
            r = cli::run(args) => match r {
                Ok(code) => code,
                Err(e) => cli::report(&e),
            },
            s = interrupted() => {
                eprintln!("kvault: interrupted ({s})");
                kvault::error::exit::INTERRUPTED
            }
        }
    });
    // Do not wait for background tasks (lock refreshers, uploads of a failed run).
    rt.shutdown_background();
    std::process::exit(code);
}

/// Waits for SIGINT or (on Unix) SIGTERM; names the one that came.
async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}
