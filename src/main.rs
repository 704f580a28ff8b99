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
    // Join the runtime's threads before `exit` runs the C exit handlers:
    // OpenSSL's (librdkafka links it) frees global state that a thread still
    // exiting would free again, corrupting the heap (`malloc_consolidate():
    // invalid chunk size`, 1 run in about 30 with eight processes at once).
    // Async tasks left behind (lock refreshers, uploads of a failed run) are
    // dropped at once; only a blocking Kafka call still in flight after an
    // interrupt can hold the exit up, for at most this long.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}
