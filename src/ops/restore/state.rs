//! Resume state of a restore (format-spec/README.md §14, "Restore
//! state"): each target partition's start offset, written durably before
//! the first record is produced. A rerun of the same command finds
//! `end - start` records already restored, skips them and continues at the
//! right offsets; a completed restore is marked so a rerun changes nothing.

use std::collections::BTreeMap;

use super::plan::RestoreOptions;
use crate::error::{Error, Refusal, Result};
use crate::id::Id;
use crate::image::types::TopicPartition;
use crate::kafka::admin::{Cluster, End};

/// What survives a killed restore.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ResumeState {
    /// Target start offset per `topic/partition`.
    pub(crate) starts: BTreeMap<String, i64>,
    /// Set once every record and group offset is in.
    pub(crate) completed: bool,
    /// Topics this restore created with CreateTime that are switched to
    /// LogAppendTime at the end, with the configs to set (format-spec §14).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) log_append_time: BTreeMap<String, BTreeMap<String, String>>,
}

impl ResumeState {
    pub(crate) fn load(path: &std::path::Path) -> Result<ResumeState> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::corrupt(format!("restore state {}", path.display()), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ResumeState::default()),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Atomic and durable: write a temporary file, fsync, rename.
    pub(crate) fn save(&self, path: &std::path::Path) -> Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec_pretty(self).map_err(Error::encode)?;
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        f.write_all(&body)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))
    }
}

/// The resume state file of this restore: one per snapshot, time and
/// target (brokers, topic names).
pub(crate) fn state_file(opts: &RestoreOptions, snapshot: &Id) -> Result<std::path::PathBuf> {
    let mut key = restore_key(opts, snapshot);
    // Each worker of a sharded restore resumes its own share.
    if let Some(share) = opts.shard {
        key.push_str(&format!("|shard {share}"));
    }
    let dir = match &opts.state_dir {
        Some(d) => d.clone(),
        None => std::env::var_os("XDG_STATE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".local/state")))
            .unwrap_or_else(std::env::temp_dir)
            .join("kvault/restore"),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    Ok(dir.join(format!("{}.json", &blake3::hash(key.as_bytes()).to_hex()[..32])))
}

/// What makes two restores the same restore: the snapshot, the time, the
/// target and every choice that changes which records land where.
pub(crate) fn restore_key(opts: &RestoreOptions, snapshot: &Id) -> String {
    let mut key = format!(
        "{snapshot}|{:?}|{}|{:?}|{:?}|{}",
        opts.at, opts.kafka.brokers, opts.topics, opts.rename, opts.prefix
    );
    // A different record set: a different restore.
    if opts.no_compact {
        key.push_str("|no-compact");
    }
    // Records routed by key to other partitions: another restore.
    if opts.repartition {
        key.push_str("|repartition");
    }
    // Records at their source offsets, gaps and all: another restore.
    if opts.offsets == super::plan::Offsets::Exact {
        key.push_str("|offsets-exact");
    }
    key
}

/// The end offsets of target partitions (one batched request); with
/// `stable`, once none of them moves for 250 ms (a killed run's last
/// produce requests may still be landing), checking every partition each
/// round.
pub(crate) async fn stable_ends(c: &Cluster, parts: &[TopicPartition], stable: bool) -> Result<Vec<i64>> {
    let mut last = c.offsets(parts, End::Latest).await?;
    if !stable {
        return Ok(last);
    }
    let mut moving = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let now = c.offsets(parts, End::Latest).await?;
        moving = parts
            .iter()
            .zip(now.iter().zip(&last))
            .filter(|(_, (a, b))| a != b)
            .map(|(tp, _)| tp.to_string())
            .collect();
        if moving.is_empty() {
            return Ok(now);
        }
        last = now;
    }
    Err(Error::Refused(Refusal::TargetGrowing { partitions: moving }))
}
