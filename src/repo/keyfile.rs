//! Key files: the master key wrapped per password (format-spec/README.md
//! §"Key files").
//!
//! A key file is JSON. Only the KDF parameters are in the clear; they are
//! bound as associated data to the wrapped master key, so changing them
//! makes the file fail to open. Who made the key and when is sealed with the
//! repository's own encryption key, so `key list` can show it for every key.

use serde::{Deserialize, Serialize};

use super::crypto::{self, Keys};
use crate::error::{Error, Result};

/// Key file format version.
pub const KEY_FILE_VERSION: u32 = 1;
/// The only KDF: Argon2id version 0x13.
pub const KDF_ALGORITHM: &str = "argon2id";
/// Argon2 version 1.3.
pub const ARGON2_VERSION: u32 = 0x13;

/// Limits a reader enforces, so a hostile key file (storage an attacker
/// can write to) cannot take more than ~256 MiB and a few seconds per
/// open: keys above them are skipped unread, and none can be created.
pub const MAX_M_COST_KIB: u32 = 256 * 1024;
/// Upper bound on Argon2 passes.
pub const MAX_T_COST: u32 = 16;
/// Upper bound on Argon2 lanes.
pub const MAX_P_COST: u32 = 16;

/// Argon2id parameters, stored in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 4 lanes: RFC 9106's second recommended option.
    /// The lanes are filled in parallel: ~0.1 s on this project's
    /// reference machine (2 cores), where 1 lane took ~0.2 s.
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 4,
        }
    }
}

impl KdfParams {
    /// The cheapest accepted parameters (64 KiB, 1 pass). Only for tests
    /// and throwaway repositories: they make passwords easy to brute-force.
    pub fn insecure_fast() -> KdfParams {
        KdfParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    /// The work an open costs (memory × passes), to try cheap keys first.
    pub fn cost(&self) -> u64 {
        u64::from(self.m_cost_kib) * u64::from(self.t_cost)
    }

    /// Checks the parameters are within what a reader accepts.
    ///
    /// # Errors
    /// [`Error::BadValue`] when outside the limits.
    pub fn validate(&self) -> Result<()> {
        let ok = (8..=MAX_M_COST_KIB).contains(&self.m_cost_kib)
            && (1..=MAX_T_COST).contains(&self.t_cost)
            && (1..=MAX_P_COST).contains(&self.p_cost)
            && self.m_cost_kib >= 8 * self.p_cost;
        if ok {
            Ok(())
        } else {
            Err(Error::bad_value(
                "argon2id parameters",
                format!("m={} KiB t={} p={}", self.m_cost_kib, self.t_cost, self.p_cost),
                format!("m<={MAX_M_COST_KIB}, t<={MAX_T_COST}, p<={MAX_P_COST}"),
            ))
        }
    }
}

/// The KDF block of a key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kdf {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Always 19 (0x13).
    pub version: u32,
    /// Cost parameters.
    #[serde(flatten)]
    pub params: KdfParams,
    /// Salt, hex (16..=64 bytes).
    pub salt: String,
}

/// Who created a key, sealed under the repository key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// RFC 3339 creation time.
    pub created: String,
    /// Host that created it.
    pub hostname: String,
    /// User that created it.
    pub username: String,
}

/// A key file as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Format version, 1.
    pub kvault_key: u32,
    /// KDF and its parameters.
    pub kdf: Kdf,
    /// hex(seal(argon2id(password), aad, master key)).
    pub wrapped: String,
    /// hex(seal(encryption key, "kvault-key-meta-v1", JSON KeyMeta)).
    pub meta: String,
}

const META_AAD: &[u8] = b"kvault-key-meta-v1";

/// The associated data binding the clear-text part of a key file.
fn kdf_aad(version: u32, kdf: &Kdf) -> Vec<u8> {
    format!(
        "kvault-key-v{version}|{}|{}|{}|{}|{}|{}",
        kdf.algorithm, kdf.version, kdf.params.m_cost_kib, kdf.params.t_cost, kdf.params.p_cost, kdf.salt
    )
    .into_bytes()
}

/// Derives the 32-byte wrapping key from a password.
///
/// # Errors
/// Parameters out of range.
pub fn derive_wrapping_key(password: &[u8], salt: &[u8], p: &KdfParams) -> Result<[u8; 32]> {
    p.validate()?;
    let params = argon2::Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(32))
        .map_err(|e| Error::bad_value("argon2id parameters", format!("{p:?}"), e))?;
    let blocks = params.block_count();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    // Lazily mapped huge pages instead of the crate's zeroed allocation:
    // the same hash, half the time to open a repository (BENCHMARKS.md).
    match kvault_argon2_memory::Blocks::new(blocks) {
        Some(blocks) => a.hash_password_into_with_memory(password, salt, &mut out, blocks),
        None => a.hash_password_into(password, salt, &mut out),
    }
    .map_err(|e| Error::bad_value("argon2id input", "", e))?;
    Ok(out)
}

impl KeyFile {
    /// Wraps `keys` under `password` with a fresh salt.
    ///
    /// # Errors
    /// Bad parameters or no randomness.
    pub fn create(keys: &Keys, password: &[u8], params: KdfParams, meta: &KeyMeta) -> Result<KeyFile> {
        let mut salt = [0u8; 16];
        crypto::fill_random(&mut salt)?;
        let kdf = Kdf {
            algorithm: KDF_ALGORITHM.into(),
            version: ARGON2_VERSION,
            params,
            salt: hex::encode(salt),
        };
        let wk = zeroize::Zeroizing::new(derive_wrapping_key(password, &salt, &params)?);
        let wrapped = crypto::seal(&wk, &kdf_aad(KEY_FILE_VERSION, &kdf), keys.master())?;
        let meta_json = serde_json::to_vec(meta).map_err(Error::encode)?;
        let meta = keys.seal(META_AAD, &meta_json)?;
        Ok(KeyFile {
            kvault_key: KEY_FILE_VERSION,
            kdf,
            wrapped: hex::encode(wrapped),
            meta: hex::encode(meta),
        })
    }

    /// Parses a key file. `name` is used in error messages.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for malformed JSON, [`Error::Unsupported`] for an
    /// unknown version or KDF.
    pub fn decode(bytes: &[u8], name: &str) -> Result<KeyFile> {
        let kf: KeyFile = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(format!("key {name}"), format!("not a key file: {e}")))?;
        if kf.kvault_key != KEY_FILE_VERSION {
            return Err(Error::Unsupported(format!(
                "key {name} has version {}",
                kf.kvault_key
            )));
        }
        if kf.kdf.algorithm != KDF_ALGORITHM || kf.kdf.version != ARGON2_VERSION {
            return Err(Error::Unsupported(format!(
                "key {name} uses KDF {} v{}",
                kf.kdf.algorithm, kf.kdf.version
            )));
        }
        kf.kdf.params.validate()?;
        kf.salt(name)?;
        kf.wrapped_bytes(name)?;
        Ok(kf)
    }

    fn salt(&self, name: &str) -> Result<Vec<u8>> {
        hex::decode(&self.kdf.salt)
            .ok()
            .filter(|s| (16..=64).contains(&s.len()))
            .ok_or_else(|| Error::corrupt(format!("key {name}"), "salt is not 16..64 hex bytes"))
    }

    fn wrapped_bytes(&self, name: &str) -> Result<Vec<u8>> {
        hex::decode(&self.wrapped)
            .ok()
            .filter(|w| w.len() == 32 + crypto::SEAL_OVERHEAD)
            .ok_or_else(|| Error::corrupt(format!("key {name}"), "wrapped key is not 72 hex bytes"))
    }

    /// Serializes the key file (pretty JSON, as restic does).
    ///
    /// # Errors
    /// Never in practice.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(Error::encode)
    }

    /// Unwraps the master key with `password`. `Ok(None)` means the password
    /// does not open this key (or the file was tampered with; the two cannot
    /// be told apart, by design).
    ///
    /// # Errors
    /// Malformed hex, salt or parameters.
    pub fn open(&self, password: &[u8], name: &str) -> Result<Option<Keys>> {
        let salt = self.salt(name)?;
        let wrapped = self.wrapped_bytes(name)?;
        let wk = zeroize::Zeroizing::new(derive_wrapping_key(password, &salt, &self.kdf.params)?);
        let Some(master) = crypto::open(&wk, &kdf_aad(self.kvault_key, &self.kdf), &wrapped) else {
            return Ok(None);
        };
        let master = zeroize::Zeroizing::new(master);
        let master: [u8; 32] = master
            .as_slice()
            .try_into()
            .map_err(|_| Error::corrupt(format!("key {name}"), "master key is not 32 bytes"))?;
        Ok(Some(Keys::from_master(master)))
    }

    /// Reads the creation metadata with the repository keys.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when it does not authenticate.
    pub fn meta(&self, keys: &Keys, name: &str) -> Result<KeyMeta> {
        let object = format!("key {name}");
        let sealed = hex::decode(&self.meta).map_err(|_| Error::corrupt(&object, "meta is not hex"))?;
        let plain = keys.open(META_AAD, &sealed, &object)?;
        serde_json::from_slice(&plain).map_err(|e| Error::corrupt(&object, format!("meta: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams::insecure_fast()
    }

    fn meta() -> KeyMeta {
        KeyMeta {
            created: "2026-11-28T00:00:00Z".into(),
            hostname: "h".into(),
            username: "u".into(),
        }
    }

    #[test]
    fn wrap_and_unwrap() {
        let keys = Keys::generate().unwrap();
        let kf = KeyFile::create(&keys, b"pw", fast(), &meta()).unwrap();
        let bytes = kf.encode().unwrap();
        let back = KeyFile::decode(&bytes, "k").unwrap();
        let opened = back.open(b"pw", "k").unwrap().unwrap();
        assert_eq!(opened.master(), keys.master());
        assert!(back.open(b"wrong", "k").unwrap().is_none());
        assert_eq!(back.meta(&opened, "k").unwrap(), meta());
    }

    #[test]
    fn changed_kdf_parameters_fail_to_open() {
        let keys = Keys::generate().unwrap();
        let mut kf = KeyFile::create(&keys, b"pw", fast(), &meta()).unwrap();
        kf.kdf.params.t_cost = 2;
        assert!(kf.open(b"pw", "k").unwrap().is_none());
    }

    #[test]
    fn hostile_parameters_are_refused_before_use() {
        let keys = Keys::generate().unwrap();
        let mut kf = KeyFile::create(&keys, b"pw", fast(), &meta()).unwrap();
        kf.kdf.params.m_cost_kib = u32::MAX;
        let bytes = kf.encode().unwrap();
        assert!(KeyFile::decode(&bytes, "k").is_err());
        assert!(KeyFile::decode(b"{", "k").is_err());
        assert!(KeyFile::decode(b"", "k").is_err());
        // The campaign's planted key: 4 GiB and 64 passes.
        kf.kdf.params = KdfParams {
            m_cost_kib: 4 << 20,
            t_cost: 64,
            p_cost: 1,
        };
        assert!(KeyFile::decode(&kf.encode().unwrap(), "k").is_err());
    }

    #[test]
    fn a_malformed_salt_or_wrapped_key_is_refused_when_decoded() {
        let keys = Keys::generate().unwrap();
        let good = KeyFile::create(&keys, b"pw", fast(), &meta()).unwrap();
        let mut k = good.clone();
        k.kdf.salt = "00".into();
        assert!(KeyFile::decode(&k.encode().unwrap(), "k").is_err());
        let mut k = good;
        k.wrapped = "zz".into();
        assert!(KeyFile::decode(&k.encode().unwrap(), "k").is_err());
    }
}
