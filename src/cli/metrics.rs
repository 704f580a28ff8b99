//! Metrics of a run in Prometheus' text format, so a nightly job that
//! stops working is seen: `--metrics-file PATH` writes them atomically for
//! node_exporter's textfile collector, `--metrics-push URL` PUTs them to a
//! Pushgateway (`URL/metrics/job/kvault/command/<command>`).
//!
//! Every run records its command, exit code, end time and duration; the
//! commands add their results (records and bytes read or written, offsets
//! expired, commits captured), and the typed progress events (records,
//! partitions, gaps by cause) are counted as they happen.
//!
//! Own code, not a crate: a run writes one gauge map once at exit, which is
//! a few lines of the text format; `prometheus-client` would add a registry
//! and typed metric families to build the same lines.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::{Context, Result};
use kvault::{Event, GapCause};

/// Values of this run: name -> (help, value).
static VALUES: Mutex<BTreeMap<&'static str, (&'static str, f64)>> = Mutex::new(BTreeMap::new());

/// The cluster the run worked on, when it knows (a label of every value
/// and a Pushgateway grouping key, so two clusters' jobs do not overwrite
/// each other).
static CLUSTER: Mutex<Option<String>> = Mutex::new(None);

/// The metric carried over from earlier runs: when the command last
/// succeeded.
const LAST_SUCCESS: &str = "kvault_last_success_timestamp_seconds";

/// Labels this run's values with the cluster it worked on.
pub fn set_cluster(cluster: &str) {
    if let Ok(mut c) = CLUSTER.lock() {
        *c = Some(cluster.to_string());
    }
}

fn cluster() -> Option<String> {
    CLUSTER.lock().ok().and_then(|c| c.clone())
}

/// Sets a gauge.
pub fn set(name: &'static str, help: &'static str, v: f64) {
    if let Ok(mut m) = VALUES.lock() {
        m.insert(name, (help, v));
    }
}

fn add(name: &'static str, help: &'static str, v: f64) {
    if let Ok(mut m) = VALUES.lock() {
        m.entry(name).or_insert((help, 0.0)).1 += v;
    }
}

/// Counts a typed progress event.
pub fn event(e: &Event<'_>) {
    match e {
        Event::Records { records, bytes } => {
            add(
                "kvault_records",
                "Records read or written by this run.",
                *records as f64,
            );
            add(
                "kvault_record_bytes",
                "Bytes of the records read or written by this run.",
                *bytes as f64,
            );
        }
        Event::PartitionDone { .. } => add(
            "kvault_partitions_done",
            "Partitions read or restored by this run.",
            1.0,
        ),
        Event::Gap { from, to, cause, .. } => {
            let (name, help) = match cause {
                GapCause::Expired => (
                    "kvault_gap_offsets_expired",
                    "Offsets deleted by retention before any snapshot read them.",
                ),
                GapCause::DeletedWhileReading => (
                    "kvault_gap_offsets_deleted_while_reading",
                    "Offsets deleted by retention while this snapshot read them.",
                ),
            };
            add(name, help, (to - from).max(0) as f64);
        }
    }
}

/// Where to send the metrics.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    /// A textfile to write.
    pub file: Option<String>,
    /// A Pushgateway base URL.
    pub push: Option<String>,
}

impl Sinks {
    /// Whether any sink is set.
    pub fn any(&self) -> bool {
        self.file.is_some() || self.push.is_some()
    }
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The exposition text: every value, labelled with the command (and the
/// cluster). A successful run sets `kvault_last_success_timestamp_seconds`
/// to now; a failed one carries `last_success` over (from the previous
/// textfile), or leaves it out.
pub fn render(command: &str, code: i32, seconds: f64, last_success: Option<f64>) -> String {
    set(
        "kvault_exit_code",
        "Exit code of the last run (0 success, 3 incomplete).",
        f64::from(code),
    );
    set(
        "kvault_success",
        "1 when the last run exited 0.",
        if code == 0 { 1.0 } else { 0.0 },
    );
    set("kvault_duration_seconds", "Duration of the last run.", seconds);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    set(
        "kvault_last_run_timestamp_seconds",
        "When the last run ended (Unix time).",
        now,
    );
    let success_help = "When the command last exited 0 (Unix time): alert when it is too old.";
    if code == 0 {
        set(LAST_SUCCESS, success_help, now);
    } else if let Some(t) = last_success {
        set(LAST_SUCCESS, success_help, t);
    }
    let labels = match cluster() {
        Some(c) => format!("command=\"{}\",cluster=\"{}\"", label(command), label(&c)),
        None => format!("command=\"{}\"", label(command)),
    };
    let mut out = String::new();
    if let Ok(m) = VALUES.lock() {
        for (name, (help, v)) in m.iter() {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{labels}}} {v}\n"
            ));
        }
    }
    out
}

/// `kvault_last_success_timestamp_seconds` of an earlier textfile.
fn previous_success(text: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{LAST_SUCCESS}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Writes and pushes the metrics of a run.
///
/// # Errors
/// The file cannot be written, or the Pushgateway refuses.
pub async fn emit(sinks: &Sinks, command: &str, code: i32, seconds: f64) -> Result<()> {
    if !sinks.any() {
        return Ok(());
    }
    let before = sinks.file.as_ref().and_then(|f| std::fs::read_to_string(f).ok());
    let text = render(
        command,
        code,
        seconds,
        before.as_deref().and_then(previous_success),
    );
    if let Some(f) = &sinks.file {
        let tmp = format!("{f}.tmp.{}", std::process::id());
        std::fs::write(&tmp, &text).with_context(|| format!("writing metrics to {tmp}"))?;
        std::fs::rename(&tmp, f).with_context(|| format!("writing metrics to {f}"))?;
    }
    if let Some(base) = &sinks.push {
        let mut url = format!(
            "{}/metrics/job/kvault/command/{}",
            base.trim_end_matches('/'),
            command
        );
        if let Some(c) = cluster() {
            // Any value, even one with "/" or ":", as Pushgateway's base64
            // form of a grouping label.
            use base64::Engine as _;
            let v = base64::engine::general_purpose::URL_SAFE.encode(c.as_bytes());
            url.push_str(&format!("/cluster@base64/{v}"));
        }
        // POST replaces only the metrics pushed, so a failed run keeps the
        // group's last success time.
        let r = reqwest::Client::new()
            .post(&url)
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(text)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("pushing metrics to {url}"))?;
        if !r.status().is_success() {
            anyhow::bail!("pushing metrics to {url}: {}", r.status());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        event(&Event::Gap {
            topic: "t",
            partition: 0,
            from: 10,
            to: 25,
            cause: GapCause::Expired,
        });
        set("kvault_snapshot_records_read", "Records read.", 42.0);
        let t = render("snap\"shot", 3, 1.5, Some(1234.0));
        assert_eq!(
            previous_success(&t),
            Some(1234.0),
            "a failed run carries the last success over"
        );
        assert!(
            t.contains("kvault_exit_code{command=\"snap\\\"shot\"} 3\n"),
            "{t}"
        );
        assert!(
            t.contains("kvault_gap_offsets_expired{command=\"snap\\\"shot\"} 15\n"),
            "{t}"
        );
        assert!(
            t.contains("# TYPE kvault_success gauge\nkvault_success{command=\"snap\\\"shot\"} 0\n"),
            "{t}"
        );
        assert!(
            t.contains("kvault_snapshot_records_read{command=\"snap\\\"shot\"} 42\n"),
            "{t}"
        );
        set_cluster("c1");
        let t = render("snapshot", 0, 1.0, None);
        assert!(
            t.contains("kvault_success{command=\"snapshot\",cluster=\"c1\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("kvault_last_success_timestamp_seconds{command=\"snapshot\",cluster=\"c1\"} "),
            "{t}"
        );
    }
}
