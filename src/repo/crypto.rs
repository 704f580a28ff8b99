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

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

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
/// Context of the key that hashes erased record keys (`kvault rewrite`).
pub const CONTEXT_ERASED_KEY: &str = "kvault 2026-12-07 v1 erased key hash";
/// Context of the key that signs verification reports (`kvault verify --report`).
pub const CONTEXT_REPORT: &str = "kvault 2026-12-07 v1 report signature";
/// Context of the key that hashes record keys into chunk key filters.
pub const CONTEXT_KEY_FILTER: &str = "kvault 2026-12-07 v1 key filter";

/// Fills `buf` from the operating system's random source.
///
/// # Errors
/// When no randomness is available.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Seal(format!("no randomness from the OS: {e}")))
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

    /// The hash a rewrite records for a record key it erased: keyed
    /// BLAKE3-256 under a subkey of its own, so the key is never stored in
    /// clear and the hash cannot be tested without the repository key.
    pub fn erased_key_hash(&self, key: &[u8]) -> Id {
        let k = blake3::derive_key(CONTEXT_ERASED_KEY, &self.master);
        Id(*blake3::keyed_hash(&k, key).as_bytes())
    }

    /// The detached signature of a verification report: keyed BLAKE3-256
    /// of its bytes under a subkey of its own, so anyone holding the
    /// repository password can tell an edited report from the one kvault
    /// wrote, and nobody without it can sign one.
    pub fn report_signature(&self, report: &[u8]) -> Id {
        let k = blake3::derive_key(CONTEXT_REPORT, &self.master);
        Id(*blake3::keyed_hash(&k, report).as_bytes())
    }

    /// The key-filter key (`find` and `rewrite` skip chunks by it): record
    /// keys hashed under a subkey of its own.
    pub fn key_filter_key(&self) -> [u8; 32] {
        blake3::derive_key(CONTEXT_KEY_FILTER, &self.master)
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
/// [`Error::Seal`] when no randomness is available or the AEAD refuses the
/// message: nothing is returned that could be stored in its place.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    seal_with_nonce(key, &nonce, aad, plaintext)
}

/// Seals with a given nonce. Only golden-vector tests may pick a nonce.
///
/// # Errors
/// [`Error::Seal`] when the AEAD refuses the message (over its 256 GiB
/// limit; blobs are < 4 GiB) or the key cannot be set up.
pub fn seal_with_nonce(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let refused = |why: &str| Error::Seal(format!("{} bytes: {why}", plaintext.len()));
    #[cfg(test)]
    if tests::seal_fails_under(key) {
        return Err(refused("injected failure"));
    }
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    let body = out
        .get_mut(NONCE_LEN..)
        .ok_or_else(|| refused("no room for the nonce"))?;
    let (k, n) = xchacha(key, nonce).ok_or_else(|| refused("the XChaCha20 subkey was refused"))?;
    let tag = k
        .seal_in_place_separate_tag(n, Aad::from(aad), body)
        .map_err(|_| refused("ChaCha20-Poly1305 refused the message"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens a sealed message; `None` when it is too short or not authentic.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().ok()?;
    let (k, n) = xchacha(key, nonce)?;
    // `rest` is ciphertext || tag, the layout `open_in_place` takes.
    let mut buf = rest.to_vec();
    let plain_len = k.open_in_place(n, Aad::from(aad), &mut buf).ok()?.len();
    buf.truncate(plain_len);
    Some(buf)
}

/// XChaCha20-Poly1305 as its definition builds it from the IETF
/// ChaCha20-Poly1305 (draft-irtf-cfrg-xchacha §2.3): the subkey is
/// HChaCha20 of the key and the nonce's first 16 bytes; the 96-bit nonce is
/// four zero bytes and the nonce's last 8. The IETF construction is
/// aws-lc's assembly (1.6x the portable Rust crate on this project's
/// reference machine); the bytes are the same (tested against the
/// RustCrypto `XChaCha20Poly1305` and the golden vectors).
fn xchacha(key: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> Option<(LessSafeKey, Nonce)> {
    let (head, tail) = nonce.split_at(16);
    let head: &[u8; 16] = head.try_into().ok()?;
    let mut sub = chacha20::hchacha::<chacha20::R20>(key.into(), head.into());
    let k = UnboundKey::new(&CHACHA20_POLY1305, sub.as_slice()).ok();
    {
        use zeroize::Zeroize;
        sub.as_mut_slice().zeroize();
    }
    let mut n = [0u8; 12];
    n.get_mut(4..)?.copy_from_slice(tail);
    Some((LessSafeKey::new(k?), Nonce::assume_unique_for_key(n)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Fault injection: seals under these keys fail (any thread, so the
    /// writer's CPU pool sees it; other tests' keys are unaffected).
    static FAILING_KEYS: std::sync::Mutex<Vec<[u8; 32]>> = std::sync::Mutex::new(Vec::new());

    pub(crate) fn seal_fails_under(key: &[u8; 32]) -> bool {
        FAILING_KEYS.lock().is_ok_and(|k| k.contains(key))
    }

    /// Makes every later seal with this repository's encryption key fail.
    pub(crate) fn fail_seals_of(keys: &Keys) {
        FAILING_KEYS.lock().unwrap().push(keys.enc);
    }

    #[test]
    fn a_failed_seal_is_an_error_never_an_empty_blob() {
        let key = [0x5e; 32];
        FAILING_KEYS.lock().unwrap().push(key);
        let e = seal(&key, b"aad", b"hello").unwrap_err();
        assert!(matches!(e, Error::Seal(_)), "{e}");
        assert_eq!(e.kind(), "seal");
        assert!(seal_with_nonce(&key, &[0; NONCE_LEN], b"", b"").is_err());
        // Another key seals as ever.
        assert_eq!(
            seal(&[1u8; 32], b"aad", b"hello").unwrap().len(),
            5 + SEAL_OVERHEAD
        );
    }

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
        /// The construction from HChaCha20 and aws-lc's IETF
        /// ChaCha20-Poly1305 is XChaCha20-Poly1305: the same bytes as the
        /// RustCrypto implementation, which opens what we seal.
        #[test]
        fn sealing_matches_the_reference_xchacha20_poly1305(
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            aad in proptest::collection::vec(any::<u8>(), 0..64),
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 24]>(),
        ) {
            use chacha20poly1305::aead::{Aead, KeyInit, Payload};
            let reference = chacha20poly1305::XChaCha20Poly1305::new((&key).into());
            let n = chacha20poly1305::XNonce::from(nonce);
            let ours = seal_with_nonce(&key, &nonce, &aad, &data).unwrap();
            let theirs = reference.encrypt(&n, Payload { msg: &data, aad: &aad }).unwrap();
            prop_assert_eq!(ours.get(..NONCE_LEN).unwrap(), &nonce[..]);
            prop_assert_eq!(ours.get(NONCE_LEN..).unwrap(), &theirs[..]);
            prop_assert_eq!(open(&key, &aad, &ours).unwrap(), data);
        }

        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2048), aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = [9u8; 32];
            let s = seal(&key, &aad, &data).unwrap();
            prop_assert_eq!(open(&key, &aad, &s).unwrap(), data);
        }
    }
}
