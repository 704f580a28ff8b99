//! `kvault rewrite`: erase a key's records from every snapshot (or those
//! named), for an erasure request (GDPR art. 17).

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kvault::error::exit;
use kvault::ops::rewrite::{KeySet, RewriteOptions, RewriteReport, rewrite};
use serde_json::json;

use super::Ctx;
use super::output::human_bytes;

/// How `--drop-key` values (and the lines of `--drop-key-file`) are written.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum KeyEncoding {
    /// The key's bytes are the UTF-8 text as given.
    #[default]
    Utf8,
    /// Standard base64 (with padding).
    Base64,
    /// Hexadecimal.
    Hex,
}

impl KeyEncoding {
    /// The key's bytes.
    ///
    /// # Errors
    /// Text that is not valid in the encoding.
    pub fn decode(self, s: &str) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        match self {
            KeyEncoding::Utf8 => Ok(s.as_bytes().to_vec()),
            KeyEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("{s:?} is not base64: {e}")),
            KeyEncoding::Hex => hex::decode(s).map_err(|e| format!("{s:?} is not hex: {e}")),
        }
    }
}

#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// Snapshots to rewrite (ids, prefixes or `latest`; none: every Kafka snapshot).
    snapshots: Vec<String>,
    /// Topics whose records are matched (glob or /regex/; repeatable; none: all).
    #[arg(long = "topic", value_name = "PATTERN")]
    topics: Vec<String>,
    /// A record key to erase: every record with exactly these bytes as key (repeatable).
    #[arg(long = "drop-key", value_name = "KEY")]
    drop_keys: Vec<String>,
    /// A file of keys to erase, one per line (empty lines skipped).
    #[arg(long, value_name = "FILE")]
    drop_key_file: Option<std::path::PathBuf>,
    /// How the keys are written.
    #[arg(long, value_enum, default_value_t = KeyEncoding::Utf8)]
    key_encoding: KeyEncoding,
    /// Remove each rewritten snapshot's original (a run's parts too); `prune --max-unused 0` then deletes the erased bytes.
    #[arg(long)]
    forget: bool,
    /// Show what would be erased; change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
}

impl RewriteArgs {
    /// The keys, from the flags and the file.
    fn keys(&self) -> Result<KeySet> {
        let keys = byte_strings(
            "--drop-key",
            &self.drop_keys,
            self.drop_key_file.as_deref(),
            self.key_encoding,
        )?;
        if keys.is_empty() {
            anyhow::bail!(kvault::Error::BadValue {
                what: "--drop-key",
                value: String::new(),
                expected: "at least one key (--drop-key or --drop-key-file)".into(),
            });
        }
        Ok(KeySet::new(keys))
    }
}

/// Byte strings given as `flag` values and as the lines of `file` (empty
/// lines skipped), decoded with `enc`.
///
/// # Errors
/// An unreadable file; a value not valid in the encoding (named by `flag`).
pub fn byte_strings(
    flag: &'static str,
    values: &[String],
    file: Option<&std::path::Path>,
    enc: KeyEncoding,
) -> Result<Vec<Vec<u8>>> {
    let mut texts: Vec<String> = values.to_vec();
    if let Some(f) = file {
        let s = std::fs::read_to_string(f).with_context(|| format!("{flag}-file {}", f.display()))?;
        texts.extend(
            s.lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    let out = texts
        .iter()
        .map(|t| {
            enc.decode(t).map_err(|e| kvault::Error::BadValue {
                what: flag,
                value: t.clone(),
                expected: e,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(out)
}

pub async fn run(ctx: &Ctx, a: RewriteArgs) -> Result<i32> {
    let keys = a.keys()?;
    let repo = ctx.open().await?;
    let mut ids = Vec::new();
    for s in &a.snapshots {
        ids.push(repo.find_id(kvault::FileKind::Snapshot, s).await?);
    }
    let opts = RewriteOptions {
        snapshots: ids,
        topics: a.topics.clone(),
        keys,
        forget: a.forget,
        dry_run: a.dry_run,
    };
    let bar = ctx.out.progress();
    let r = rewrite(&repo, &opts, &bar).await?;
    ctx.out.emit("rewrite", json!(r), || text(&r));
    super::metrics::set(
        "kvault_rewrite_records_erased",
        "Records the last rewrite erased (over all snapshots).",
        r.rewritten.iter().map(|s| s.records).sum::<u64>() as f64,
    );
    Ok(exit::OK)
}

fn text(r: &RewriteReport) -> String {
    let verb = if r.dry_run { "would erase" } else { "erased" };
    let mut s = String::new();
    for w in &r.rewritten {
        let to = w
            .new_snapshot
            .map_or_else(String::new, |n| format!(" -> {}", n.short()));
        s.push_str(&format!(
            "snapshot {}{to} ({}): {verb} {} record(s)\n",
            w.snapshot.short(),
            w.time,
            w.records
        ));
        for p in &w.partitions {
            let offs: Vec<String> = p
                .offsets
                .iter()
                .map(|o| {
                    if o[1] == o[0] + 1 {
                        o[0].to_string()
                    } else {
                        format!("{}..{}", o[0], o[1])
                    }
                })
                .collect();
            s.push_str(&format!(
                "  {}/{}: {} at {}\n",
                p.topic,
                p.partition,
                p.records,
                offs.join(",")
            ));
        }
    }
    s.push_str(&format!(
        "{} snapshot(s) rewritten, {} without the keys; {} chunk(s) read ({} skipped by their key filters), {} re-encoded, {} of keys and values {verb}, {} written",
        r.rewritten.len(),
        r.untouched.len(),
        r.chunks_read,
        r.chunks_skipped,
        r.chunks_rewritten,
        human_bytes(r.bytes_erased),
        human_bytes(r.bytes_written)
    ));
    if !r.forgotten.is_empty() {
        s.push_str(&format!(
            "\nremoved {} original snapshot file(s); `kvault prune --max-unused 0` deletes the erased bytes from storage",
            r.forgotten.len()
        ));
    } else if !r.dry_run && !r.rewritten.is_empty() {
        s.push_str("\nthe originals are kept: `kvault forget` them, then `kvault prune --max-unused 0`, to delete the erased bytes");
    }
    s
}
