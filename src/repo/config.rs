//! The repository config object (format-spec/README.md §"Config").
//!
//! Written once by `init`, never changed: the format version, the
//! repository id, chunker parameters, target pack size, compression level
//! and feature flags. A reader refuses a version or a feature it does not
//! know rather than guess.

use serde::{Deserialize, Serialize};

use super::chunker::ChunkerParams;
use crate::error::{Error, Result};
use crate::id::Id;

/// The repository format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Feature flags this build understands (none yet in version 1).
pub const KNOWN_FEATURES: &[&str] = &[OBJECT_LOCK_FEATURE];
/// The feature of a repository on an Object Lock bucket: a kvault that does
/// not know it would write objects without retention dates.
pub const OBJECT_LOCK_FEATURE: &str = "object-lock";

/// Default target pack size: 16 MiB.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;
/// Default zstd level.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 1;

/// The decrypted config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Repository format version.
    pub version: u32,
    /// Random repository id.
    pub id: Id,
    /// RFC 3339 creation time.
    pub created: String,
    /// Chunker parameters.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level for new blobs (-7..=22).
    pub compression_level: i32,
    /// Features a reader must understand.
    pub features: Vec<String>,
    /// Object Lock retention (with the feature `object-lock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<super::retention::LockPolicy>,
}

impl Config {
    /// A fresh config with a random id.
    ///
    /// # Errors
    /// Invalid parameters or no randomness.
    pub fn new(chunker: ChunkerParams, pack_size: u32, compression_level: i32) -> Result<Config> {
        let c = Config {
            version: FORMAT_VERSION,
            id: Id::random()?,
            created: crate::repo::now_rfc3339(),
            chunker,
            pack_size,
            compression_level,
            features: Vec::new(),
            object_lock: None,
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks the values a writer will rely on.
    ///
    /// # Errors
    /// [`Error::BadValue`] or [`Error::Unsupported`].
    pub fn validate(&self) -> Result<()> {
        if self.version != FORMAT_VERSION {
            return Err(Error::Unsupported(format!(
                "repository format version {} (this kvault reads version {FORMAT_VERSION})",
                self.version
            )));
        }
        if let Some(f) = self
            .features
            .iter()
            .find(|f| !KNOWN_FEATURES.contains(&f.as_str()))
        {
            return Err(Error::Unsupported(format!("repository needs feature {f:?}")));
        }
        if self.object_lock.is_some() != self.features.iter().any(|f| f == OBJECT_LOCK_FEATURE) {
            return Err(Error::corrupt(
                "config",
                "object lock settings without their feature, or the reverse",
            ));
        }
        if let Some(p) = &self.object_lock
            && p.period_secs == 0
        {
            return Err(Error::bad_value("object lock period", "0 s", "at least 1 s"));
        }
        self.chunker.validate()?;
        if !(64 * 1024..=1024 * 1024 * 1024).contains(&self.pack_size) {
            return Err(Error::bad_value("pack size", self.pack_size, "64 KiB..1 GiB"));
        }
        if !(-7..=22).contains(&self.compression_level) {
            return Err(Error::bad_value("zstd level", self.compression_level, "-7..22"));
        }
        Ok(())
    }

    /// Parses and validates a decrypted config.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for malformed JSON.
    pub fn decode(plain: &[u8]) -> Result<Config> {
        let c: Config = serde_json::from_slice(plain).map_err(|e| Error::corrupt("config", e))?;
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_versions_and_features_are_refused() {
        let mut c = Config::new(ChunkerParams::default(), DEFAULT_PACK_SIZE, 3).unwrap();
        let j = serde_json::to_vec(&c).unwrap();
        assert_eq!(Config::decode(&j).unwrap(), c);
        c.version = 2;
        assert!(matches!(
            Config::decode(&serde_json::to_vec(&c).unwrap()),
            Err(Error::Unsupported(_))
        ));
        c.version = 1;
        c.features.push("time-travel".into());
        assert!(matches!(
            Config::decode(&serde_json::to_vec(&c).unwrap()),
            Err(Error::Unsupported(_))
        ));
        assert!(Config::decode(b"[]").is_err());
    }
}
