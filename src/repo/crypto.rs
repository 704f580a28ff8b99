//! Key hierarchy, sealing and opening (format-spec/README.md §"Cryptography").
//!
//! One random 256-bit master key per repository. Three subkeys are derived
//! from it with BLAKE3's key derivation mode, each with its own context
//! string, so no key is ever used for two purposes:
//!
//! - the encryption key (XChaCha20-Poly1305, random 192-bit nonces),
//! - the blob-id key (keyed BLAKE3-256 of a blob's plaintext),
//! - the chunker key (expanded to the 256-entry FastCDC gear table).
//!
//! A sealed message is `nonce (24) || ciphertext || tag (16)`; the caller's
//! associated data binds what the bytes are (their type, header, id), so a
//! blob cannot be replayed as another blob or a file as another file.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};
use crate::id::Id;

/// Nonce length of XChaCha20-Poly1305.
pub const NONCE_LEN: usize = 24;
/// Authentication tag length of Poly1305.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed message adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// BLAKE3 derive_key contexts (format-spec/README.md §"Key hierarchy").
pub const CONTEXT_ENCRYPTION: &str = "kvault 2026-11-28 v1 encryption key";
/// Context for the blob-id key.
pub const CONTEXT_BLOB_ID: &str = "kvault 2026-11-28 v1 blob id key";
/// Context for the chunker key.
pub const CONTEXT_CHUNKER: &str = "kvault 2026-11-28 v1 chunker gear table";

/// Fills `buf` from the operating system's random source.
///
/// # Errors
/// When no randomness is available.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Internal(format!("no randomness from the OS: {e}")))
}

/// The repository's master key and the keys derived from it.
#[derive(Clone)]
pub struct Keys {
    master: [u8; 32],
    enc: [u8; 32],
    id: [u8; 32],
    chunker: [u8; 32],
}

impl Drop for Keys {
    /// Key material does not outlive its use in this process's memory.
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.master.zeroize();
        self.enc.zeroize();
        self.id.zeroize();
        self.chunker.zeroize();
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Derives the subkeys of a master key.
    pub fn from_master(master: [u8; 32]) -> Keys {
        Keys {
            master,
            enc: blake3::derive_key(CONTEXT_ENCRYPTION, &master),
            id: blake3::derive_key(CONTEXT_BLOB_ID, &master),
            chunker: blake3::derive_key(CONTEXT_CHUNKER, &master),
        }
    }

    /// A fresh random master key.
    ///
    /// # Errors
    /// When no randomness is available.
    pub fn generate() -> Result<Keys> {
        let mut m = [0u8; 32];
        fill_random(&mut m)?;
        Ok(Keys::from_master(m))
    }

    /// The master key (only key files store it, wrapped).
    pub fn master(&self) -> &[u8; 32] {
        &self.master
    }

    /// The chunker key.
    pub fn chunker_key(&self) -> &[u8; 32] {
        &self.chunker
    }

    /// The id of a blob: keyed BLAKE3-256 of its plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id, plaintext).as_bytes())
    }

    /// Seals with the repository encryption key.
    ///
    /// # Errors
    /// When no randomness is available.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        seal(&self.enc, aad, plaintext)
    }

    /// Opens a message sealed with the repository encryption key.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `object` when authentication fails.
    pub fn open(&self, aad: &[u8], sealed: &[u8], object: &dyn std::fmt::Display) -> Result<Vec<u8>> {
        open(&self.enc, aad, sealed).ok_or_else(|| Error::corrupt(object, "authentication failed"))
    }
}

/// Seals `plaintext` under `key` with a random nonce.
///
/// # Errors
/// When no randomness is available.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    Ok(seal_with_nonce(key, &nonce, aad, plaintext))
}

/// Seals with a given nonce. Only golden-vector tests may pick a nonce.
pub fn seal_with_nonce(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    let n = XNonce::from(*nonce);
    let body = out.get_mut(NONCE_LEN..).unwrap_or_default();
    // Encryption cannot fail for messages under 256 GiB; blobs are < 4 GiB.
    match cipher.encrypt_inout_detached(&n, aad, body.into()) {
        Ok(tag) => out.extend_from_slice(tag.as_slice()),
        Err(_) => out.clear(),
    }
    out
}

/// Opens a sealed message; `None` when it is too short or not authentic.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    let tag: [u8; TAG_LEN] = tag.try_into().ok()?;
    let mut buf = ct.to_vec();
    cipher
        .decrypt_inout_detached(&XNonce::from(nonce), aad, buf.as_mut_slice().into(), &tag.into())
        .ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn subkeys_differ() {
        let k = Keys::from_master([7u8; 32]);
        assert_ne!(k.enc, k.id);
        assert_ne!(k.id, k.chunker);
        assert_ne!(k.enc, k.master);
    }

    #[test]
    fn tampering_is_detected() {
        let key = [1u8; 32];
        let s = seal(&key, b"aad", b"hello").unwrap();
        assert_eq!(s.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(open(&key, b"aad", &s).unwrap(), b"hello");
        assert!(open(&key, b"other", &s).is_none());
        assert!(open(&[2u8; 32], b"aad", &s).is_none());
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 0x80;
            assert!(open(&key, b"aad", &t).is_none(), "flip at {i} undetected");
        }
        assert!(open(&key, b"aad", &s[..SEAL_OVERHEAD - 1]).is_none());
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2048), aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = [9u8; 32];
            let s = seal(&key, &aad, &data).unwrap();
            prop_assert_eq!(open(&key, &aad, &s).unwrap(), data);
        }
    }
}
