//! Diagnostics on stderr: kvault's own (retries, phases) and librdkafka's
//! (TLS and SASL failures, broker connections), through the `log` facade.
//!
//! The level is `-v` (info), `-vv` (debug), `-vvv` (trace, with
//! librdkafka's `debug=broker,security,protocol`), `-q` (errors only),
//! warnings by default. `KVAULT_LOG` or `RUST_LOG` override it with
//! `env_logger`-style directives: a level (`debug`), or per target
//! (`warn,kvault::kafka=debug,librdkafka=info`; the longest matching
//! target prefix wins). Lines are `TIME LEVEL TARGET: message`, or JSON
//! lines (`message_type` `log`) with `--log-format json` or under `--json`.

use log::{Level, LevelFilter, Log, Metadata, Record};

/// What is logged: a default level and per-target levels.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    default: LevelFilter,
    /// `(target prefix, level)`, from `target=level` directives.
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// The level of a record's target, when a directive names it.
    fn of(&self, target: &str) -> Option<LevelFilter> {
        self.targets
            .iter()
            .filter(|(t, _)| {
                target == t
                    || target
                        .strip_prefix(t.as_str())
                        .is_some_and(|r| r.starts_with("::"))
            })
            .max_by_key(|(t, _)| t.len())
            .map(|(_, l)| *l)
    }

    /// The most verbose level any directive asks for.
    fn max(&self) -> LevelFilter {
        self.targets.iter().map(|(_, l)| *l).fold(self.default, Ord::max)
    }

    /// Parses `level` or `[level,]target=level,…`; `None` when any part is
    /// not a level (the variable is then ignored, as env_logger does).
    pub fn parse(s: &str) -> Option<Filter> {
        let mut f = Filter {
            default: LevelFilter::Warn,
            targets: Vec::new(),
        };
        for d in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match d.split_once('=') {
                Some((t, l)) => f.targets.push((t.trim().to_string(), l.trim().parse().ok()?)),
                None => f.default = d.parse().ok()?,
            }
        }
        Some(f)
    }
}

struct Logger {
    json: bool,
    filter: Filter,
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        if let Some(l) = self.filter.of(m.target()) {
            return m.level() <= l;
        }
        if m.level() > self.filter.default {
            return false;
        }
        // librdkafka's lines from -v on (its errors reach the user as
        // kvault's one-line message anyway); other crates' info and debug
        // lines only at -vvv.
        if m.target() == "librdkafka" {
            return self.filter.default >= LevelFilter::Info;
        }
        m.target().starts_with("kvault")
            || m.level() <= Level::Warn
            || self.filter.default == LevelFilter::Trace
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

/// The filter for `-v` count and `-q`, unless `KVAULT_LOG` or `RUST_LOG`
/// (in that order) holds directives.
pub fn filter(verbose: u8, quiet: bool) -> Filter {
    let from_env = ["KVAULT_LOG", "RUST_LOG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().and_then(|s| Filter::parse(&s)));
    if let Some(f) = from_env {
        return f;
    }
    let default = match (quiet, verbose) {
        (true, _) => LevelFilter::Error,
        (false, 0) => LevelFilter::Warn,
        (false, 1) => LevelFilter::Info,
        (false, 2) => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    Filter {
        default,
        targets: Vec::new(),
    }
}

/// Installs the logger (once).
pub fn init(filter: Filter, json: bool) {
    let max = filter.max();
    if log::set_boxed_logger(Box::new(Logger { json, filter })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_set_levels_per_target_with_the_longest_prefix_winning() {
        let f = Filter::parse("info, kvault::kafka=trace,kvault::kafka::admin=error").expect("valid");
        assert_eq!(f.default, LevelFilter::Info);
        assert_eq!(f.of("kvault::kafka::source"), Some(LevelFilter::Trace));
        assert_eq!(f.of("kvault::kafka::admin"), Some(LevelFilter::Error));
        assert_eq!(f.of("kvault::kafkaesque"), None, "a prefix ends at ::");
        assert_eq!(f.of("librdkafka"), None);
        assert_eq!(f.max(), LevelFilter::Trace);
        assert_eq!(
            Filter::parse("debug").map(|f| f.default),
            Some(LevelFilter::Debug)
        );
        assert_eq!(Filter::parse("kvault=loud"), None);
        let quiet = Logger {
            json: false,
            filter: Filter::parse("librdkafka=off").expect("valid"),
        };
        let m = Metadata::builder()
            .level(Level::Error)
            .target("librdkafka")
            .build();
        assert!(!quiet.enabled(&m));
    }
}
