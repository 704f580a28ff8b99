//! Output: data and results on stdout, messages and progress on stderr.
//!
//! With `--json` every result is one JSON object per line (JSON Lines) with
//! a `message_type` and the schema version `kvault_json` (README "JSON
//! output"). Progress bars appear only on a terminal, never with `--json`,
//! `--quiet` or `--no-progress`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kvault::ops::progress::{Progress, Unit};
use serde_json::{Value, json};

/// Version of the JSON Lines schema.
pub const JSON_SCHEMA: u32 = 1;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// JSON Lines instead of text.
    pub json: bool,
    /// Only errors.
    pub quiet: bool,
    /// Draw progress bars.
    pub progress: bool,
}

impl Out {
    /// Prints one result: `value` as a JSON line, or `text` for humans.
    pub fn emit(&self, message_type: &str, value: Value, text: impl FnOnce() -> String) {
        let mut stdout = std::io::stdout().lock();
        let r = if self.json {
            let mut v = value;
            if let Value::Object(m) = &mut v {
                m.insert("message_type".into(), json!(message_type));
                m.insert("kvault_json".into(), json!(JSON_SCHEMA));
            }
            writeln!(stdout, "{v}")
        } else if self.quiet {
            Ok(())
        } else {
            let t = text();
            if t.is_empty() {
                Ok(())
            } else {
                writeln!(stdout, "{t}")
            }
        };
        if let Err(e) = r {
            quit_on_broken_pipe(&e);
        }
    }

    /// A warning: a JSON line with `--json`, else `warning: …` on stderr
    /// (not suppressed by `--quiet`).
    pub fn warn(&self, msg: &str) {
        if self.json {
            println!(
                "{}",
                json!({"message_type": "warning", "kvault_json": JSON_SCHEMA, "message": msg})
            );
        } else {
            eprintln!("warning: {msg}");
        }
    }

    /// A message for humans on stderr (suppressed by `--quiet` and `--json`).
    pub fn note(&self, msg: &str) {
        if !self.quiet && !self.json {
            eprintln!("{msg}");
        }
    }

    /// A progress reporter for an operation.
    pub fn progress(&self) -> Bar {
        Bar {
            enabled: self.progress && !self.json && !self.quiet && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
            json: self.json,
        }
    }
}

/// Exits quietly when stdout is a closed pipe (`kvault … | head`), as ripgrep does.
pub fn quit_on_broken_pipe(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
}

/// An indicatif progress bar behind the library's [`Progress`] trait.
#[derive(Debug)]
pub struct Bar {
    enabled: bool,
    bar: Mutex<Option<ProgressBar>>,
    json: bool,
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: Option<u64>, unit: Unit) {
        if !self.enabled {
            return;
        }
        let pb = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        pb.set_draw_target(ProgressDrawTarget::stderr());
        let tpl = match (total.is_some(), unit) {
            (true, Unit::Bytes) => {
                "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}"
            }
            (false, Unit::Bytes) => "{spinner} {msg} {binary_bytes} {binary_bytes_per_sec} {elapsed}",
            (true, Unit::Items) => "{msg} [{bar:30}] {human_pos}/{human_len} {per_sec} ETA {eta}",
            (false, Unit::Items) => "{spinner} {msg} {pos} {elapsed}",
        };
        if let Ok(s) = ProgressStyle::with_template(tpl) {
            pb.set_style(s.progress_chars("=> "));
        }
        pb.set_message(phase.to_string());
        pb.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut g) = self.bar.lock() {
            *g = Some(pb);
        }
    }

    fn inc(&self, n: u64) {
        if let Ok(g) = self.bar.lock() {
            if let Some(b) = g.as_ref() {
                b.inc(n);
            }
        }
    }

    fn set_message(&self, msg: &str) {
        if let Ok(g) = self.bar.lock() {
            if let Some(b) = g.as_ref() {
                b.set_message(msg.to_string());
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut g) = self.bar.lock() {
            if let Some(b) = g.take() {
                b.finish_and_clear();
            }
        }
    }

    fn event(&self, e: &kvault::Event<'_>) {
        super::metrics::event(e);
    }

    fn warn(&self, msg: &str) {
        if self.json {
            println!(
                "{}",
                json!({"message_type": "warning", "kvault_json": JSON_SCHEMA, "message": msg})
            );
            return;
        }
        match self.bar.lock().ok().and_then(|g| g.clone()) {
            Some(b) => b.suspend(|| eprintln!("warning: {msg}")),
            None => eprintln!("warning: {msg}"),
        }
    }
}

/// Bytes for humans: `1.50 GiB` (indicatif's binary units).
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
