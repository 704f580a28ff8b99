//! Diagnostics on stderr: kvault's own (retries, phases) and librdkafka's
//! (TLS and SASL failures, broker connections), through the `log` facade.
//!
//! The level is `-v` (info), `-vv` (debug), `-vvv` (trace, with
//! librdkafka's `debug=broker,security,protocol`), `-q` (errors only),
//! warnings by default; `KVAULT_LOG=error|warn|info|debug|trace`
//! overrides. Lines are `TIME LEVEL TARGET: message`, or JSON lines
//! (`message_type` `log`) under `--json`.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger {
    json: bool,
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        if m.level() > log::max_level() {
            return false;
        }
        // librdkafka's lines from -v on (its errors reach the user as
        // kvault's one-line message anyway); other crates' info and debug
        // lines only at -vvv.
        if m.target() == "librdkafka" {
            return log::max_level() >= LevelFilter::Info;
        }
        m.target().starts_with("kvault") || m.level() <= Level::Warn || log::max_level() == LevelFilter::Trace
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let level = match r.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        if self.json {
            let line = serde_json::json!({
                "message_type": "log",
                "kvault_json": super::output::JSON_SCHEMA,
                "time": time.to_string(),
                "level": level.to_ascii_lowercase(),
                "target": r.target(),
                "message": r.args().to_string(),
            });
            eprintln!("{line}");
        } else {
            eprintln!("{time} {level:<5} {}: {}", r.target(), r.args());
        }
    }

    fn flush(&self) {}
}

/// The level for `-v` count, `-q` and `KVAULT_LOG`.
pub fn level(verbose: u8, quiet: bool) -> LevelFilter {
    if let Some(l) = std::env::var("KVAULT_LOG").ok().and_then(|v| v.parse().ok()) {
        return l;
    }
    match (quiet, verbose) {
        (true, _) => LevelFilter::Error,
        (false, 0) => LevelFilter::Warn,
        (false, 1) => LevelFilter::Info,
        (false, 2) => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Installs the logger (once).
pub fn init(level: LevelFilter, json: bool) {
    if log::set_boxed_logger(Box::new(Logger { json })).is_ok() {
        log::set_max_level(level);
    }
}
