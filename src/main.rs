//! The `kvault` binary: parses the command line, runs the command on a
//! tokio runtime, and turns errors into one line on stderr and a documented
//! exit code (README "Exit codes").

mod cli;

fn main() {
    let args = cli::parse();
    let json = args.json();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kvault: cannot start the async runtime: {e}");
            std::process::exit(kvault::error::exit::ERROR);
        }
    };
    let own_signals = args.handles_signals();
    let (sinks, command) = args.metrics();
    let started = std::time::Instant::now();
    let code = rt.block_on(async {
        if own_signals {
            // A long-lived command stops on its own terms.
            return match cli::run(args).await {
                Ok(code) => code,
                Err(e) => cli::report(&e, json),
            };
        }
        // SIGINT and SIGTERM (Kubernetes, systemd) alike drop the command,
        // which removes partial outputs, and exit 130.
        tokio::select! {
            r = cli::run(args) => match r {
                Ok(code) => code,
                Err(e) => cli::report(&e, json),
            },
            s = cli::signal() => {
                cli::report_line(&format!("interrupted ({s})"), "interrupted", kvault::error::exit::INTERRUPTED, json)
            }
        }
    });
    // `snapshot --every` reports after each snapshot itself.
    if sinks.any() && !own_signals {
        let secs = started.elapsed().as_secs_f64();
        if let Err(e) = rt.block_on(cli::metrics::emit(&sinks, &command, code, secs)) {
            eprintln!("kvault: {e:#}");
        }
    }
    // Do not wait for background tasks (lock refreshers, uploads of a failed run).
    rt.shutdown_background();
    std::process::exit(code);
}
