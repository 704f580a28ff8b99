//! Consumer group commit history: the records of Kafka's
//! `__consumer_offsets` topic decoded (every key and value version Kafka
//! 2.x–4.x writes, format-spec §14 "Group commit history"), and the commit
//! log a snapshot stores — every offset commit made since the previous
//! snapshot — so `restore --at T` can commit each group's position as of T,
//! not only as of a snapshot.
//!
//! Pure data: no rdkafka; the decoder is fuzzed (`fuzz/fuzz_targets/consumer_offsets.rs`).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::types::GroupOffset;
use super::wire::{Cursor, WireError};

/// One decoded `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    /// An offset commit (`value` present) or its deletion (a tombstone:
    /// offsets expired or deleted, or the group deleted).
    Commit {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The committed value; `None` for a tombstone.
        value: Option<CommitValue>,
    },
    /// A group's metadata was deleted (the group is gone).
    GroupDeleted {
        /// Group id.
        group: String,
    },
    /// Anything else (group metadata, the new consumer group protocol's
    /// records, share groups): not an offset.
    Other,
}

/// The value of an offset commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitValue {
    /// The committed offset (the next record the group will read).
    pub offset: i64,
    /// The leader epoch (-1 when the version has none).
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When the coordinator accepted the commit (ms since the epoch).
    pub commit_ts: i64,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("__consumer_offsets record: {0}")]
pub struct DecodeError(pub String);

impl From<WireError> for DecodeError {
    fn from(e: WireError) -> Self {
        DecodeError(e.0)
    }
}

/// Decodes one `__consumer_offsets` record from its key and value.
///
/// Keys start with an i16 record type: 0 and 1 are offset commits (group,
/// topic, partition as i16-length strings and an i32), 2 is group
/// metadata; later types belong to other coordinators' records. Offset
/// commit values start with an i16 version: 0 (offset, metadata, commit
/// time), 1 (… and an expire time), 2 (as 0), 3 (offset, leader epoch,
/// metadata, commit time) and 4 (as 3, flexible: compact string and tagged
/// fields).
///
/// # Errors
/// A truncated or malformed key or value, or an unknown value version.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<OffsetsRecord, DecodeError> {
    let mut k = Cursor::new(key);
    let kind = k.i16("key type")?;
    match kind {
        0 | 1 => {
            let group = k.string("group")?;
            let topic = k.string("topic")?;
            let partition = k.i32("partition")?;
            let value = value.map(decode_value).transpose()?;
            Ok(OffsetsRecord::Commit {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group = k.string("group")?;
            Ok(match value {
                None => OffsetsRecord::GroupDeleted { group },
                Some(_) => OffsetsRecord::Other,
            })
        }
        _ => Ok(OffsetsRecord::Other),
    }
}

fn decode_value(v: &[u8]) -> Result<CommitValue, DecodeError> {
    let mut c = Cursor::new(v);
    let version = c.i16("value version")?;
    let offset = c.i64("offset")?;
    let (leader_epoch, metadata, commit_ts) = match version {
        0..=2 => {
            let metadata = c.string("metadata")?;
            let ts = c.i64("commit timestamp")?;
            if version == 1 {
                c.i64("expire timestamp")?;
            }
            (-1, metadata, ts)
        }
        3 => {
            let epoch = c.i32("leader epoch")?;
            let metadata = c.string("metadata")?;
            (epoch, metadata, c.i64("commit timestamp")?)
        }
        4 => {
            let epoch = c.i32("leader epoch")?;
            let metadata = c.compact_string("metadata")?;
            let ts = c.i64("commit timestamp")?;
            c.skip_tags()?;
            (epoch, metadata, ts)
        }
        v => return Err(DecodeError(format!("unknown offset commit value version {v}"))),
    };
    Ok(CommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_ts,
    })
}

/// One entry of a snapshot's commit log (stored as a JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// When: the coordinator's commit time, or for a deletion the record's
    /// timestamp (ms since the epoch).
    pub ts: i64,
    /// Group id.
    pub group: String,
    /// Topic; absent when the whole group was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Partition (with `topic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// The committed offset; absent for a deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// The client's metadata.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
}

impl Commit {
    /// The commit log entry a decoded record makes: a commit, a deleted
    /// offset or a deleted group (dated by `record_ts`, the record's
    /// timestamp, as deletions carry no commit time); `None` for records
    /// that are not about offsets.
    pub fn from_record(rec: OffsetsRecord, record_ts: i64) -> Option<Commit> {
        match rec {
            OffsetsRecord::Commit {
                group,
                topic,
                partition,
                value,
            } => {
                let (ts, offset, metadata) = match value {
                    Some(v) => (v.commit_ts, Some(v.offset), v.metadata),
                    None => (record_ts, None, String::new()),
                };
                Some(Commit {
                    ts,
                    group,
                    topic: Some(topic),
                    partition: Some(partition),
                    offset,
                    metadata,
                })
            }
            OffsetsRecord::GroupDeleted { group } => Some(Commit {
                ts: record_ts,
                group,
                topic: None,
                partition: None,
                offset: None,
                metadata: String::new(),
            }),
            OffsetsRecord::Other => None,
        }
    }
}

/// A snapshot's record of the commit log it read (the `commits` node's
/// metadata, format-spec §14).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitsMeta {
    /// Per `__consumer_offsets` partition, the offset the next snapshot
    /// reads from.
    pub positions: BTreeMap<i32, i64>,
    /// Commits stored.
    pub commits: u64,
    /// Whether the log holds every commit since the previous snapshot's
    /// positions (false: the first snapshot, a log start past a position,
    /// or no permission to read `__consumer_offsets`).
    pub complete: bool,
    /// Why it is not complete.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Applies commits (in log order) with `ts <= t` to group offsets: a commit
/// sets a group's offset on a partition, a deletion removes it, a deleted
/// group disappears. Groups left with no offset are removed.
pub fn apply(groups: &mut BTreeMap<String, Vec<GroupOffset>>, commits: &[Commit], t: i64) {
    for c in commits.iter().filter(|c| c.ts <= t) {
        match (&c.topic, c.partition) {
            (None, _) | (_, None) => {
                groups.remove(&c.group);
            }
            (Some(topic), Some(partition)) => {
                let offs = groups.entry(c.group.clone()).or_default();
                offs.retain(|o| !(o.topic == *topic && o.partition == partition));
                if let Some(offset) = c.offset {
                    offs.push(GroupOffset {
                        topic: topic.clone(),
                        partition,
                        offset,
                        metadata: c.metadata.clone(),
                    });
                    offs.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                }
            }
        }
    }
    groups.retain(|_, o| !o.is_empty());
}

/// Takes back, in groups fetched from the cluster, every position that a
/// commit dated after `t` set (and no commit at or before `t` set too): an
/// offset committed inside a transaction is visible to OffsetFetch once
/// the coordinator has written its marker to the commit log, which can be
/// before it logs the transaction complete, the time the commit is dated
/// by. Such a position goes back to the last commit at or before `t` in
/// `history` (in log order), when there is one.
pub fn roll_back_late(groups: &mut BTreeMap<String, Vec<GroupOffset>>, history: &[Commit], t: i64) {
    let mut by_place: HashMap<(&str, &str, i32), Vec<&Commit>> = HashMap::new();
    for c in history {
        if let (Some(topic), Some(partition)) = (c.topic.as_deref(), c.partition) {
            by_place.entry((&c.group, topic, partition)).or_default().push(c);
        }
    }
    for (g, offs) in groups.iter_mut() {
        for o in offs.iter_mut() {
            let Some(cs) = by_place.get(&(g.as_str(), o.topic.as_str(), o.partition)) else {
                continue;
            };
            let set_by = |on_time: bool| {
                cs.iter()
                    .any(|c| c.offset == Some(o.offset) && (c.ts <= t) == on_time)
            };
            if set_by(false) && !set_by(true) {
                if let Some(c) = cs.iter().rev().find(|c| c.ts <= t && c.offset.is_some()) {
                    o.offset = c.offset.unwrap_or(o.offset);
                    o.metadata = c.metadata.clone();
                }
            }
        }
    }
}

/// Encodes commits as JSON lines.
///
/// # Errors
/// Never in practice (serialization of plain data).
pub fn encode(commits: &[Commit]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    for c in commits {
        serde_json::to_writer(&mut out, c).map_err(|e| DecodeError(e.to_string()))?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Decodes JSON lines written by [`encode`].
///
/// # Errors
/// A line that is not a commit.
pub fn decode_log(bytes: &[u8]) -> Result<Vec<Commit>, DecodeError> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(|e| DecodeError(format!("commit log line: {e}"))))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_position_from_a_commit_completed_after_t_goes_back_to_the_one_before() {
        let c = |ts: i64, offset: i64| Commit {
            ts,
            group: "g".into(),
            topic: Some("t".into()),
            partition: Some(0),
            offset: Some(offset),
            metadata: String::new(),
        };
        let fetched = |offset: i64| {
            BTreeMap::from([(
                "g".to_string(),
                vec![GroupOffset {
                    topic: "t".into(),
                    partition: 0,
                    offset,
                    metadata: String::new(),
                }],
            )])
        };
        let history = [c(100, 6), c(200, 12), c(300, 18)];
        // Fetched at 18, whose transaction completed at 300: as of 250, 12.
        let mut g = fetched(18);
        roll_back_late(&mut g, &history, 250);
        assert_eq!(g["g"][0].offset, 12);
        // A position also set on time is kept; one the history never saw too.
        for (start, want) in [(12, 12), (7, 7)] {
            let mut g = fetched(start);
            roll_back_late(&mut g, &history, 250);
            assert_eq!(g["g"][0].offset, want);
        }
        // Nothing on time to go back to: kept as it is.
        let mut g = fetched(6);
        roll_back_late(&mut g, &history, 50);
        assert_eq!(g["g"][0].offset, 6);
    }

    fn s16(s: &str) -> Vec<u8> {
        let mut v = (s.len() as i16).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn key(kind: i16, g: &str, t: &str, p: i32) -> Vec<u8> {
        let mut k = kind.to_be_bytes().to_vec();
        k.extend(s16(g));
        k.extend(s16(t));
        k.extend(p.to_be_bytes());
        k
    }

    #[test]
    fn every_value_version_decodes() {
        let k = key(1, "g", "orders", 3);
        let mut v1 = 1i16.to_be_bytes().to_vec();
        v1.extend(42i64.to_be_bytes());
        v1.extend(s16("meta"));
        v1.extend(1000i64.to_be_bytes());
        v1.extend(2000i64.to_be_bytes());
        let mut v3 = 3i16.to_be_bytes().to_vec();
        v3.extend(43i64.to_be_bytes());
        v3.extend(7i32.to_be_bytes());
        v3.extend(s16(""));
        v3.extend(1001i64.to_be_bytes());
        let mut v4 = 4i16.to_be_bytes().to_vec();
        v4.extend(44i64.to_be_bytes());
        v4.extend(8i32.to_be_bytes());
        v4.push(5); // compact string "abcd"
        v4.extend(b"abcd");
        v4.extend(1002i64.to_be_bytes());
        v4.extend([1, 9, 2, 0xaa, 0xbb]); // one tagged field
        let got: Vec<(i64, i32, String, i64)> = [v1, v3, v4]
            .iter()
            .map(|v| match decode(&k, Some(v)).unwrap() {
                OffsetsRecord::Commit {
                    group,
                    topic,
                    partition,
                    value: Some(c),
                } => {
                    assert_eq!((group.as_str(), topic.as_str(), partition), ("g", "orders", 3));
                    (c.offset, c.leader_epoch, c.metadata, c.commit_ts)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (42, -1, "meta".into(), 1000),
                (43, 7, String::new(), 1001),
                (44, 8, "abcd".into(), 1002)
            ]
        );
        assert!(matches!(
            decode(&k, None).unwrap(),
            OffsetsRecord::Commit { value: None, .. }
        ));
        let mut gk = 2i16.to_be_bytes().to_vec();
        gk.extend(s16("g"));
        assert_eq!(
            decode(&gk, None).unwrap(),
            OffsetsRecord::GroupDeleted { group: "g".into() }
        );
        assert_eq!(decode(&gk, Some(b"x")).unwrap(), OffsetsRecord::Other);
        assert!(decode(&k, Some(&[0, 9, 0])).is_err());
        assert!(decode(&[0], None).is_err());
    }

    #[test]
    fn commits_apply_up_to_a_time() {
        let c = |ts, g: &str, p: Option<i32>, o: Option<i64>| Commit {
            ts,
            group: g.into(),
            topic: p.map(|_| "t".into()),
            partition: p,
            offset: o,
            metadata: String::new(),
        };
        let log = vec![
            c(10, "a", Some(0), Some(5)),
            c(20, "a", Some(0), Some(9)),
            c(20, "b", Some(1), Some(3)),
            c(30, "b", None, None),
            c(40, "a", Some(0), None),
        ];
        let at = |t| {
            let mut g = BTreeMap::new();
            apply(&mut g, &log, t);
            g.iter()
                .map(|(k, v): (&String, &Vec<GroupOffset>)| {
                    (k.clone(), v.iter().map(|o| o.offset).collect::<Vec<_>>())
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(at(15), vec![("a".into(), vec![5])]);
        assert_eq!(at(25), vec![("a".into(), vec![9]), ("b".into(), vec![3])]);
        assert_eq!(at(35), vec![("a".into(), vec![9])], "b deleted");
        assert!(at(45).is_empty(), "a's offset deleted");
        assert_eq!(decode_log(&encode(&log).unwrap()).unwrap(), log);
    }
}
