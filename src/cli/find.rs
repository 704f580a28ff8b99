//! `kvault find`: every version of a record key across all snapshots.

use anyhow::Result;
use clap::Args;
use kvault::error::exit;
use kvault::ops::find::{FindOptions, FindReport, find};
use serde_json::json;

use super::Ctx;
use super::kafka::parse_at;
use super::rewrite::KeyEncoding;

#[derive(Debug, Args)]
pub struct FindArgs {
    /// Topics to search (glob, repeatable; none: all).
    #[arg(long = "topic", value_name = "PATTERN")]
    topics: Vec<String>,
    /// The record key: exactly these bytes.
    #[arg(long, value_name = "KEY")]
    key: String,
    /// How the key is written.
    #[arg(long, value_enum, default_value_t = KeyEncoding::Utf8)]
    key_encoding: KeyEncoding,
    /// Only versions stamped at or after this time (RFC 3339, epoch ms, "2h ago").
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Only versions stamped at or before this time.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Also say which version a compacted-topic consumer saw at this time.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Read every chunk, ignoring the chunks' key filters.
    #[arg(long)]
    no_filters: bool,
}

/// One line per version, and the value as of `--at`.
fn text(r: &FindReport) -> String {
    let mut s = String::new();
    for v in &r.versions {
        s.push_str(&format!(
            "{}/{} offset {} at {}: {}  (in {} snapshot(s))\n",
            v.record.topic,
            v.record.partition,
            v.record.offset,
            v.record.timestamp,
            v.record.value.as_deref().unwrap_or("null (deleted)"),
            v.snapshots.len()
        ));
    }
    if let Some(a) = &r.at {
        s.push_str(&match a.version.and_then(|i| r.versions.get(i)) {
            None => format!("at {}: no version yet\n", a.time),
            Some(_) if a.deleted => format!("at {}: deleted (a tombstone)\n", a.time),
            Some(v) => format!(
                "at {}: offset {} of {}/{}\n",
                a.time, v.record.offset, v.record.topic, v.record.partition
            ),
        });
    }
    s.push_str(&format!(
        "{} version(s) in {} snapshot(s); {} chunk(s) read, {} skipped by their key filters, {} by time",
        r.versions.len(),
        r.snapshots,
        r.chunks_read,
        r.chunks_filtered,
        r.chunks_skipped
    ));
    if r.segments_unfiltered > 0 {
        s.push_str(&format!(
            "\n{} segment(s) without key filters (older snapshots, rewritten or repaired segments, copies, or --no-filters) were read in full",
            r.segments_unfiltered
        ));
    }
    s
}

pub async fn run(ctx: &Ctx, a: FindArgs) -> Result<i32> {
    let key = a.key_encoding.decode(&a.key).map_err(|e| {
        super::flag_error(
            "--key",
            kvault::Error::BadValue {
                what: "--key",
                value: a.key.clone(),
                expected: e,
            },
        )
    })?;
    let opts = FindOptions {
        topics: a.topics,
        key,
        from: a.from.as_deref().map(parse_at).transpose()?,
        to: a.to.as_deref().map(parse_at).transpose()?,
        at: a.at.as_deref().map(parse_at).transpose()?,
        no_filters: a.no_filters,
    };
    let repo = ctx.open().await?;
    let r = find(&repo, &opts).await?;
    ctx.out.emit("find", json!(r), || text(&r));
    Ok(exit::OK)
}
