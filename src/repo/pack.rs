//! Blobs and packs (format-spec/README.md §"Blobs" and §"Packs").
//!
//! A blob is one chunk of data or one manifest tree node, compressed with
//! zstd when that shrinks it and sealed with the repository key. The
//! associated data binds the blob's type, compression, length and id, so a
//! blob cannot be moved to another id or reinterpreted.
//!
//! A pack is `blob_1 .. blob_n || sealed header || header length (u32 LE)`.
//! The header lists every blob's type, compression, stored and raw lengths
//! and id; offsets are the running sum of stored lengths. A pack's name is
//! the unkeyed BLAKE3 of all its bytes.

use bytes::Bytes;
use serde::Serialize;

use super::crypto::{Keys, SEAL_OVERHEAD};
use crate::backend::Payload;
use crate::error::{Error, Result};
use crate::id::{ID_LEN, Id};

/// Blob type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobType {
    /// Record-stream (or byte-stream) content.
    Data = 0,
    /// A manifest tree node.
    Tree = 1,
}

impl BlobType {
    /// Decodes the type byte.
    pub fn from_u8(b: u8) -> Option<BlobType> {
        match b {
            0 => Some(BlobType::Data),
            1 => Some(BlobType::Tree),
            _ => None,
        }
    }
}

/// Compression byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as is (compression did not shrink it).
    None = 0,
    /// A single zstd frame.
    Zstd = 1,
}

impl Compression {
    /// Decodes the compression byte.
    pub fn from_u8(b: u8) -> Option<Compression> {
        match b {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// What the pack header (and the index) says of one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct BlobEntry {
    /// Data or tree.
    pub blob_type: BlobType,
    /// How the payload is compressed.
    pub compression: Compression,
    /// Bytes in the pack (sealed).
    pub stored_len: u32,
    /// Bytes of plaintext.
    pub raw_len: u32,
    /// Keyed BLAKE3 of the plaintext.
    pub id: Id,
}

/// Size of one header entry.
pub const HEADER_ENTRY_LEN: usize = 1 + 1 + 4 + 4 + ID_LEN;
const HEADER_MAGIC: &[u8; 4] = b"KVPK";
const HEADER_VERSION: u8 = 1;
const HEADER_FIXED: usize = 4 + 1 + 4;
const HEADER_AAD: &[u8] = b"kvault-pack-header-v1";
const BLOB_AAD_PREFIX: &[u8] = b"kvault-blob-v1";

/// Largest blob plaintext accepted (fits the u32 length fields with room).
pub const MAX_BLOB_LEN: usize = 1 << 30;

/// The associated data of a sealed blob.
pub fn blob_aad(t: BlobType, c: Compression, raw_len: u32, id: &Id) -> Vec<u8> {
    let mut a = Vec::with_capacity(BLOB_AAD_PREFIX.len() + 6 + ID_LEN);
    a.extend_from_slice(BLOB_AAD_PREFIX);
    a.push(t as u8);
    a.push(c as u8);
    a.extend_from_slice(&raw_len.to_le_bytes());
    a.extend_from_slice(&id.0);
    a
}

/// Compresses (when it helps) and seals a blob whose id is already known.
///
/// # Errors
/// A blob over [`MAX_BLOB_LEN`], or no randomness.
pub fn seal_blob(
    keys: &Keys,
    t: BlobType,
    id: &Id,
    plain: &[u8],
    level: i32,
) -> Result<(BlobEntry, Vec<u8>)> {
    if plain.len() > MAX_BLOB_LEN {
        return Err(Error::bad_value("blob size", plain.len(), "at most 1 GiB"));
    }
    let raw_len = plain.len() as u32;
    let compressed = compress(plain, level).filter(|c| c.len() < plain.len());
    let (compression, payload) = match &compressed {
        Some(c) => (Compression::Zstd, c.as_slice()),
        None => (Compression::None, plain),
    };
    let sealed = keys.seal(&blob_aad(t, compression, raw_len, id), payload)?;
    let entry = BlobEntry {
        blob_type: t,
        compression,
        stored_len: u32::try_from(sealed.len()).map_err(|_| Error::bug("blob too large"))?,
        raw_len,
        id: *id,
    };
    Ok((entry, sealed))
}

thread_local! {
    /// One zstd compression context per thread (and level): creating one
    /// per blob cost ~5% of a copy's CPU time.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    /// One zstd decompression context per thread.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Blobs at least this large are tried on a sample first.
const SAMPLE_FROM: usize = 256 << 10;
/// Bytes of each of the three samples.
const SAMPLE_LEN: usize = 16 << 10;

/// zstd-compresses with this thread's context; `None` if zstd fails or
/// the data does not compress. A large blob is first tried on three 16 KiB
/// samples (start; then middle and end, unless the start alone halves):
/// when they shrink by less than 3% the blob
/// is stored as is, sparing zstd's full pass over incompressible data
/// (already compressed or encrypted payloads; ~15% of `put`'s CPU on random
/// bytes). Deterministic: the same bytes always get the same decision.
fn compress(plain: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let z = &mut c.as_mut()?.1;
        if plain.len() >= SAMPLE_FROM {
            // A first sample that halves settles it (the three together
            // would shrink by far more than 3%): most compressible data
            // is tried on 16 KiB, not 48.
            let first = z.compress(plain.get(..SAMPLE_LEN)?).ok()?;
            if first.len() * 2 > SAMPLE_LEN {
                let mid = plain.len() / 2 - SAMPLE_LEN / 2;
                let mut rest = Vec::with_capacity(2 * SAMPLE_LEN);
                for at in [mid, plain.len() - SAMPLE_LEN] {
                    rest.extend_from_slice(plain.get(at..at + SAMPLE_LEN)?);
                }
                let small = first.len() + z.compress(&rest).ok()?.len();
                if small * 100 > 3 * SAMPLE_LEN * 97 {
                    return None;
                }
            }
        }
        z.compress(plain).ok()
    })
}

/// zstd-decompresses at most `capacity` bytes with this thread's context.
fn decompress(payload: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut d = d
            .try_borrow_mut()
            .map_err(|_| std::io::Error::other("decompressor busy"))?;
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        match d.as_mut() {
            Some(d) => d.decompress(payload, capacity),
            None => Err(std::io::Error::other("no decompressor")),
        }
    })
}

/// Opens, decompresses and verifies a blob. `object` names where it came
/// from (pack id) for errors.
///
/// # Errors
/// [`Error::Corrupt`] on any mismatch.
pub fn open_blob(keys: &Keys, e: &BlobEntry, sealed: &[u8], object: &str) -> Result<Vec<u8>> {
    let what = format!("blob {} in {object}", e.id.short());
    if sealed.len() != e.stored_len as usize {
        return Err(Error::corrupt(
            &what,
            format!("length {} != {}", sealed.len(), e.stored_len),
        ));
    }
    let payload = keys.open(
        &blob_aad(e.blob_type, e.compression, e.raw_len, &e.id),
        sealed,
        &what,
    )?;
    let plain = match e.compression {
        Compression::None => payload,
        Compression::Zstd => decompress(&payload, e.raw_len as usize)
            .map_err(|err| Error::corrupt(&what, format!("zstd: {err}")))?,
    };
    if plain.len() != e.raw_len as usize {
        return Err(Error::corrupt(
            &what,
            format!("plaintext length {} != {}", plain.len(), e.raw_len),
        ));
    }
    if keys.blob_id(&plain) != e.id {
        return Err(Error::corrupt(&what, "content does not match its id"));
    }
    Ok(plain)
}

/// Accumulates sealed blobs into one pack. The blobs stay the buffers
/// they were sealed into, and the pack is written from them as pieces:
/// copying each into one pack buffer was a whole extra pass over every
/// byte a snapshot stores.
#[derive(Debug, Default)]
pub struct PackBuilder {
    pieces: Payload,
    entries: Vec<BlobEntry>,
}

/// A finished pack: its id, bytes, and each blob's entry with its offset.
#[derive(Debug)]
pub struct FinishedPack {
    /// BLAKE3 of the whole pack.
    pub id: Id,
    /// The whole pack file: the sealed blobs, then the sealed header and
    /// its length.
    pub payload: Payload,
    /// Blobs with their offsets.
    pub blobs: Vec<(BlobEntry, u32)>,
}

impl PackBuilder {
    /// Appends a sealed blob.
    pub fn add(&mut self, entry: BlobEntry, sealed: Bytes) {
        self.pieces.push(sealed);
        self.entries.push(entry);
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seals the header and returns the pack.
    ///
    /// # Errors
    /// No randomness, or a pack over 4 GiB.
    pub fn finish(mut self, keys: &Keys) -> Result<FinishedPack> {
        let mut h = Vec::with_capacity(HEADER_FIXED + self.entries.len() * HEADER_ENTRY_LEN);
        h.extend_from_slice(HEADER_MAGIC);
        h.push(HEADER_VERSION);
        h.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        let mut blobs = Vec::with_capacity(self.entries.len());
        let mut offset: u64 = 0;
        for e in &self.entries {
            encode_entry(&mut h, e);
            let off = u32::try_from(offset).map_err(|_| Error::bug("pack over 4 GiB"))?;
            blobs.push((*e, off));
            offset += u64::from(e.stored_len);
        }
        let mut tail = keys.seal(HEADER_AAD, &h)?;
        let hlen = tail.len() as u32;
        tail.extend_from_slice(&hlen.to_le_bytes());
        self.pieces.push(tail.into());
        Ok(FinishedPack {
            id: Id::hash_pieces(self.pieces.parts().iter().map(|p| &p[..])),
            payload: self.pieces,
            blobs,
        })
    }
}

fn encode_entry(h: &mut Vec<u8>, e: &BlobEntry) {
    h.push(e.blob_type as u8);
    h.push(e.compression as u8);
    h.extend_from_slice(&e.stored_len.to_le_bytes());
    h.extend_from_slice(&e.raw_len.to_le_bytes());
    h.extend_from_slice(&e.id.0);
}

/// Reads a little-endian u32 at `at`.
pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([
        *s.first()?,
        *s.get(1)?,
        *s.get(2)?,
        *s.get(3)?,
    ]))
}

/// Decodes one header/index entry of the layout `type, compression,
/// stored_len, raw_len, id` at the start of `b`.
pub(crate) fn decode_entry(b: &[u8]) -> Option<BlobEntry> {
    Some(BlobEntry {
        blob_type: BlobType::from_u8(*b.first()?)?,
        compression: Compression::from_u8(*b.get(1)?)?,
        stored_len: le_u32(b, 2)?,
        raw_len: le_u32(b, 6)?,
        id: Id::from_slice(b.get(10..10 + ID_LEN)?)?,
    })
}

/// Length of the sealed header of a pack, read from its last 4 bytes, and
/// checked against the pack length.
///
/// # Errors
/// [`Error::Corrupt`] when impossible.
pub fn header_len(pack_len: u64, tail: &[u8], object: &str) -> Result<u32> {
    let l = le_u32(tail, tail.len().saturating_sub(4))
        .ok_or_else(|| Error::corrupt(object, "shorter than 4 bytes"))?;
    let min = (SEAL_OVERHEAD + HEADER_FIXED) as u64;
    if u64::from(l) < min
        || u64::from(l) + 4 > pack_len
        || (l as usize - SEAL_OVERHEAD - HEADER_FIXED) % HEADER_ENTRY_LEN != 0
    {
        return Err(Error::corrupt(object, format!("impossible header length {l}")));
    }
    Ok(l)
}

/// Opens and decodes a sealed pack header; returns blobs with offsets.
/// `blobs_len` is the pack length minus header and length field: the
/// entries must account for it exactly.
///
/// # Errors
/// [`Error::Corrupt`] on any inconsistency.
pub fn decode_header(
    keys: &Keys,
    sealed: &[u8],
    blobs_len: u64,
    object: &str,
) -> Result<Vec<(BlobEntry, u32)>> {
    let h = keys.open(HEADER_AAD, sealed, &format!("header of {object}"))?;
    if h.get(..4) != Some(HEADER_MAGIC.as_slice()) {
        return Err(Error::corrupt(object, "bad header magic"));
    }
    if h.get(4) != Some(&HEADER_VERSION) {
        return Err(Error::Unsupported(format!(
            "{object} has header version {:?}",
            h.get(4)
        )));
    }
    let n = le_u32(&h, 5).ok_or_else(|| Error::corrupt(object, "truncated header"))? as usize;
    let body = h.get(HEADER_FIXED..).unwrap_or_default();
    if body.len() != n.saturating_mul(HEADER_ENTRY_LEN) {
        return Err(Error::corrupt(
            object,
            format!("header says {n} blobs but holds {} bytes", body.len()),
        ));
    }
    let mut out = Vec::with_capacity(n);
    let mut offset: u64 = 0;
    for c in body.chunks_exact(HEADER_ENTRY_LEN) {
        let e = decode_entry(c).ok_or_else(|| Error::corrupt(object, "bad header entry"))?;
        let off = u32::try_from(offset).map_err(|_| Error::corrupt(object, "offset over 4 GiB"))?;
        out.push((e, off));
        offset += u64::from(e.stored_len);
    }
    if offset != blobs_len {
        return Err(Error::corrupt(
            object,
            format!("blobs take {offset} bytes but the pack holds {blobs_len}"),
        ));
    }
    Ok(out)
}

/// Decodes a whole pack file: checks its id, its header, and returns the
/// entries with offsets (blobs are not opened).
///
/// # Errors
/// [`Error::Corrupt`] on any inconsistency.
pub fn decode_pack(keys: &Keys, id: &Id, bytes: &[u8]) -> Result<Vec<(BlobEntry, u32)>> {
    let object = format!("pack {id}");
    if Id::hash(bytes) != *id {
        return Err(Error::corrupt(&object, "content does not match its name"));
    }
    decode_pack_entries(keys, bytes, &object)
}

/// Decodes a pack's header from the whole pack without checking the
/// pack's name (a damaged pack's intact blobs can still be found and
/// verified one by one).
///
/// # Errors
/// [`Error::Corrupt`] when the header does not open or add up.
pub fn decode_pack_entries(keys: &Keys, bytes: &[u8], object: &str) -> Result<Vec<(BlobEntry, u32)>> {
    let object = object.to_string();
    let hl = header_len(bytes.len() as u64, bytes, &object)? as usize;
    let hstart = bytes.len() - 4 - hl;
    let sealed = bytes.get(hstart..bytes.len() - 4).unwrap_or_default();
    decode_header(keys, sealed, hstart as u64, &object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::from_master([4u8; 32])
    }

    #[test]
    fn a_pack_is_its_pieces_and_its_name_is_their_hash() {
        let k = keys();
        let mut b = PackBuilder::default();
        let mut sealed = Vec::new();
        for d in [&b"one"[..], b"two", b"three"] {
            let (e, s) = seal_blob(&k, BlobType::Data, &k.blob_id(d), d, 3).unwrap();
            sealed.extend_from_slice(&s);
            b.add(e, s.into());
        }
        let blobs_len = b.len();
        assert_eq!(blobs_len, sealed.len());
        let p = b.finish(&k).unwrap();
        // One piece per blob, then the header: written as they are.
        assert_eq!(p.payload.parts().len(), 4);
        let bytes = p.payload.to_bytes();
        assert_eq!(bytes.get(..blobs_len).unwrap(), &sealed[..]);
        assert_eq!(p.id, Id::hash(&bytes));
        assert_eq!(decode_pack(&k, &p.id, &bytes).unwrap(), p.blobs);
    }

    #[test]
    fn incompressible_blobs_are_stored_raw() {
        let k = keys();
        let mut data = vec![0u8; 4096];
        blake3::Hasher::new().finalize_xof().fill(&mut data);
        let id = k.blob_id(&data);
        let (e, s) = seal_blob(&k, BlobType::Data, &id, &data, 3).unwrap();
        assert_eq!(e.compression, Compression::None);
        assert_eq!(open_blob(&k, &e, &s, "p").unwrap(), data);
        let zeros = vec![0u8; 4096];
        let (e, s) = seal_blob(&k, BlobType::Data, &k.blob_id(&zeros), &zeros, 3).unwrap();
        assert_eq!(e.compression, Compression::Zstd);
        assert!(s.len() < 200);
        assert_eq!(open_blob(&k, &e, &s, "p").unwrap(), zeros);
    }

    #[test]
    fn large_blobs_are_compressed_when_their_samples_compress() {
        let k = keys();
        let mut random = vec![0u8; 1 << 20];
        blake3::Hasher::new().finalize_xof().fill(&mut random);
        let (e, _) = seal_blob(&k, BlobType::Data, &k.blob_id(&random), &random, 1).unwrap();
        assert_eq!(
            e.compression,
            Compression::None,
            "random samples: not tried whole"
        );
        // Text with a random stretch in the middle: two samples compress.
        let mut mixed: Vec<u8> = b"{\"event\":\"click\",\"user\":42}\n".repeat(40_000);
        let mid = mixed.len() / 2;
        mixed[mid - 20_000..mid + 20_000].copy_from_slice(&random[..40_000]);
        let (e, s) = seal_blob(&k, BlobType::Data, &k.blob_id(&mixed), &mixed, 1).unwrap();
        assert_eq!(e.compression, Compression::Zstd);
        assert_eq!(open_blob(&k, &e, &s, "p").unwrap(), mixed);
        // A random start (the first sample does not halve): the middle and
        // end decide.
        let mut late: Vec<u8> = b"{\"event\":\"view\",\"user\":7}\n".repeat(40_000);
        late[..40_000].copy_from_slice(&random[..40_000]);
        let (e, s) = seal_blob(&k, BlobType::Data, &k.blob_id(&late), &late, 1).unwrap();
        assert_eq!(e.compression, Compression::Zstd);
        assert_eq!(open_blob(&k, &e, &s, "p").unwrap(), late);
    }

    #[test]
    fn a_blob_cannot_be_reinterpreted() {
        let k = keys();
        let data = b"tree or data?".to_vec();
        let id = k.blob_id(&data);
        let (e, s) = seal_blob(&k, BlobType::Data, &id, &data, 3).unwrap();
        let mut other = e;
        other.blob_type = BlobType::Tree;
        assert!(matches!(
            open_blob(&k, &other, &s, "p"),
            Err(Error::Corrupt { .. })
        ));
        let mut other = e;
        other.id = k.blob_id(b"x");
        assert!(open_blob(&k, &other, &s, "p").is_err());
    }

    #[test]
    fn every_flipped_byte_of_a_pack_is_detected() {
        let k = keys();
        let mut b = PackBuilder::default();
        for d in [&b"one"[..], b"two", b"three"] {
            let (e, s) = seal_blob(&k, BlobType::Data, &k.blob_id(d), d, 3).unwrap();
            b.add(e, s.into());
        }
        let p = b.finish(&k).unwrap();
        let bytes = p.payload.to_bytes().to_vec();
        let entries = decode_pack(&k, &p.id, &bytes).unwrap();
        assert_eq!(entries, p.blobs);
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 1;
            assert!(decode_pack(&k, &p.id, &t).is_err());
            // Even with a matching name, header or blob authentication fails.
            let tid = Id::hash(&t);
            let ok_header = decode_pack(&k, &tid, &t);
            if let Ok(es) = ok_header {
                let bad = es.iter().any(|(e, off)| {
                    let s = &t[*off as usize..*off as usize + e.stored_len as usize];
                    open_blob(&k, e, s, "p").is_err()
                });
                assert!(bad, "flip at {i} undetected");
            }
        }
        assert!(decode_pack(&k, &p.id, &bytes[..10]).is_err());
    }

    proptest! {
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..12)) {
            let k = keys();
            let mut b = PackBuilder::default();
            for d in &blobs {
                let (e, s) = seal_blob(&k, BlobType::Data, &k.blob_id(d), d, 1).unwrap();
                b.add(e, s.into());
            }
            let p = b.finish(&k).unwrap();
            let bytes = p.payload.to_bytes();
            let entries = decode_pack(&k, &p.id, &bytes).unwrap();
            prop_assert_eq!(entries.len(), blobs.len());
            for ((e, off), d) in entries.iter().zip(&blobs) {
                let s = &bytes[*off as usize..*off as usize + e.stored_len as usize];
                prop_assert_eq!(&open_blob(&k, e, s, "p").unwrap(), d);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let k = keys();
            let _ = decode_pack(&k, &Id::hash(&bytes), &bytes);
        }
    }
}
