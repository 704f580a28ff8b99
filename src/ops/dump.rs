//! `dump`: records rendered as JSON lines (keys, values and header values as
//! UTF-8 when valid, else base64, each with its encoding; null distinct
//! from empty), and [`dump`], which streams a snapshot's records to a sink.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::manifest::Manifest;
pub use crate::image::reader::RecordFilter;
use crate::image::reader::for_each_record;
use crate::image::record::{Record, TimestampType};
use crate::repo::Repository;

/// Which records `dump` streams.
#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    /// The topic.
    pub topic: String,
    /// One partition, or all.
    pub partition: Option<i32>,
    /// Offsets and times.
    pub filter: RecordFilter,
}

/// Streams the records of `m` that `opts` selects to `sink`, partition by
/// partition, each in offset order. The caller holds a shared lock for the
/// whole stream (a prune must not cut it short).
///
/// # Errors
/// [`Error::NotFound`] for a topic the snapshot lacks; unreadable data;
/// the sink's own errors (a closed pipe) stop the stream.
pub async fn dump(
    repo: &Repository,
    m: &Manifest,
    opts: &DumpOptions,
    sink: &mut (dyn FnMut(DumpedRecord) -> Result<()> + Send),
) -> Result<()> {
    let t = m
        .topics
        .get(&opts.topic)
        .ok_or_else(|| Error::NotFound(format!("topic {} in the snapshot", opts.topic)))?;
    let parts = t
        .partitions
        .values()
        .filter(|p| opts.partition.is_none_or(|x| x == p.meta.partition));
    for p in parts {
        let part = p.meta.partition;
        let what = format!("{}/{part}", t.name);
        let mut f = |off: i64, r: Record| sink(DumpedRecord::new(&t.name, part, off, &r));
        for_each_record(repo, &what, p, &opts.filter, &mut f).await?;
    }
    Ok(())
}

/// One record with its position, as `dump` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpedRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Timestamp (ms).
    pub timestamp: i64,
    /// Timestamp type.
    pub timestamp_type: TimestampType,
    /// Key as UTF-8 when valid, else base64 (see `key_encoding`).
    pub key: Option<String>,
    /// `utf8` or `base64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_encoding: Option<&'static str>,
    /// Value as UTF-8 when valid, else base64.
    pub value: Option<String>,
    /// `utf8` or `base64`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_encoding: Option<&'static str>,
    /// Headers in order (duplicates kept).
    pub headers: Vec<DumpedHeader>,
}

/// One header of a dumped record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpedHeader {
    /// Header name.
    pub key: String,
    /// Value as UTF-8 when valid, else base64; null stays null.
    pub value: Option<String>,
    /// `utf8` or `base64` (absent for a null value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_encoding: Option<&'static str>,
}

fn text(b: &Option<Vec<u8>>) -> (Option<String>, Option<&'static str>) {
    match b {
        None => (None, None),
        Some(v) => match std::str::from_utf8(v) {
            Ok(s) => (Some(s.to_string()), Some("utf8")),
            Err(_) => (Some(b64(v)), Some("base64")),
        },
    }
}

/// Standard base64 with padding (RFC 4648 §4), as `dump`'s JSON documents.
fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

impl DumpedRecord {
    /// Renders a record for output.
    pub fn new(topic: &str, partition: i32, offset: i64, r: &Record) -> Self {
        let (key, key_encoding) = text(&r.key);
        let (value, value_encoding) = text(&r.value);
        DumpedRecord {
            topic: topic.to_string(),
            partition,
            offset,
            timestamp: r.timestamp,
            timestamp_type: r.timestamp_type,
            key,
            key_encoding,
            value,
            value_encoding,
            headers: r
                .headers
                .iter()
                .map(|(n, v)| {
                    let (value, value_encoding) = text(v);
                    DumpedHeader {
                        key: n.clone(),
                        value,
                        value_encoding,
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_say_how_they_are_encoded() {
        let r = Record {
            timestamp: 1,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: None,
            headers: vec![
                ("t".into(), Some(b"/wD+".to_vec())),
                ("b".into(), Some(vec![0xff, 0x00, 0xfe])),
                ("n".into(), None),
            ],
        };
        let j = serde_json::to_value(DumpedRecord::new("x", 0, 0, &r)).unwrap();
        assert_eq!(
            j["headers"],
            serde_json::json!([
                {"key": "t", "value": "/wD+", "value_encoding": "utf8"},
                {"key": "b", "value": "/wD+", "value_encoding": "base64"},
                {"key": "n", "value": null}
            ])
        );
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(b64(b""), "");
        assert_eq!(b64(b"f"), "Zg==");
        assert_eq!(b64(b"fo"), "Zm8=");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(b"foob"), "Zm9vYg==");
        assert_eq!(b64(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
