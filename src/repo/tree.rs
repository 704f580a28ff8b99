//! Manifest trees: content-addressed nodes (format-spec/README.md §"Trees").
//!
//! A tree blob is JSON: an ordered list of nodes. A node names either a
//! subtree (another tree blob) or content (data blobs in stream order), plus
//! free-form metadata. An unchanged part of a snapshot is one subtree id in
//! the next snapshot. The generic walk in `check` follows `subtree` and
//! `content`; kinds of node (a byte stream, a Kafka topic, a partition) are
//! told apart by `type`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Name, unique within its tree.
    pub name: String,
    /// Kind of node: `dir`, `stream`, later `topic`, `partition`, ….
    #[serde(rename = "type")]
    pub kind: String,
    /// Logical bytes below this node.
    #[serde(default)]
    pub size: u64,
    /// A child tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Data blobs, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// Kind-specific metadata (sorted keys, so encoding is canonical).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, serde_json::Value>,
}

/// A tree: the payload of a tree blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    /// Nodes, in order.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Canonical encoding (compact JSON, fixed field order, sorted meta).
    ///
    /// # Errors
    /// Never in practice.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(Error::encode)
    }

    /// Decodes a tree blob; `id` names it in errors.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for malformed JSON.
    pub fn decode(b: &[u8], id: &Id) -> Result<Tree> {
        serde_json::from_slice(b).map_err(|e| Error::corrupt(format!("tree {}", id.short()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_canonical() {
        let mut meta = BTreeMap::new();
        meta.insert("z".to_string(), serde_json::json!(1));
        meta.insert("a".to_string(), serde_json::json!("x"));
        let t = Tree {
            nodes: vec![Node {
                name: "n".into(),
                kind: "stream".into(),
                size: 3,
                subtree: None,
                content: vec![Id([1; 32])],
                meta,
            }],
        };
        let e = t.encode().unwrap();
        let s = String::from_utf8(e.clone()).unwrap();
        assert!(s.find("\"a\"").unwrap() < s.find("\"z\"").unwrap());
        assert_eq!(Tree::decode(&e, &Id::default()).unwrap(), t);
        assert_eq!(Tree::decode(&e, &Id::default()).unwrap().encode().unwrap(), e);
        assert!(Tree::decode(b"{\"nodes\":[],\"x\":1}", &Id::default()).is_err());
    }
}
