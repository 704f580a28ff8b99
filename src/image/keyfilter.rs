//! Key filters (format-spec §14 "Key filters"): per chunk, a Bloom filter
//! of its records' keyed key hashes, so `find` and `rewrite` read only the
//! chunks that may hold a key. A segment's filters are one data blob.
//!
//! A record key is hashed once, SipHash-1-3-128 under the repository's
//! key-filter key ([`KeyHasher`]); its two halves drive Kirsch–Mitzenmacher
//! double hashing: the `i`th of `k` bits is `h1 + i·h2` mapped onto the `m`
//! bits by a multiplication. The blob starts with a fingerprint of the key that made it, so
//! a filter copied into a repository with other keys is recognised and
//! not trusted (the chunks are then read). Pure: no storage.

use crate::error::{Error, Result};

/// Bits per distinct key (1 % false positives with [`HASHES`]).
pub const BITS_PER_KEY: usize = 10;
/// Bits set per key.
pub const HASHES: u8 = 7;
/// Segments with fewer chunks share filter blobs with the other small
/// segments of their snapshot: a blob of their own would cost about what
/// reading their chunks does.
pub const MIN_CHUNKS: usize = 4;
/// Encoded filter bytes a shared blob takes before the next one starts.
pub const SHARED_BYTES: usize = 1 << 20;
const MAGIC: &[u8; 4] = b"KVKF";
const VERSION: u8 = 1;
/// Context of the fingerprint of a key-filter key.
const CONTEXT_FINGERPRINT: &str = "kvault 2026-12-07 v1 key filter fingerprint";

/// A record key's hash in a filter: its keyed SipHash-1-3-128, as two
/// little-endian u64.
pub type KeyHash = [u64; 2];

/// Hashes record keys under a repository's key-filter key.
#[derive(Clone)]
pub struct KeyHasher {
    key: [u8; 32],
    sip: [u8; 16],
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

impl Drop for KeyHasher {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.key.zeroize();
        self.sip.zeroize();
    }
}

impl KeyHasher {
    /// A hasher under `key` (the repository's key-filter key).
    pub fn new(key: [u8; 32]) -> KeyHasher {
        let mut sip = [0u8; 16];
        sip.copy_from_slice(&key[..16]);
        KeyHasher { key, sip }
    }

    /// The hash of record key `k`: SipHash-1-3-128 under the key's first
    /// 16 bytes, as its two little-endian u64 halves.
    pub fn hash(&self, k: &[u8]) -> KeyHash {
        use std::hash::Hasher;
        let mut h = siphasher::sip128::SipHasher13::new_with_key(&self.sip);
        h.write(k);
        let b = siphasher::sip128::Hasher128::finish128(&h).as_bytes();
        [u64_le(&b[..8]), u64_le(&b[8..16])]
    }

    /// The 8 bytes that tell filters made under this key.
    pub fn fingerprint(&self) -> [u8; 8] {
        let d = blake3::derive_key(CONTEXT_FINGERPRINT, &self.key);
        let mut f = [0u8; 8];
        f.copy_from_slice(&d[..8]);
        f
    }
}

/// The little-endian u64 of the first 8 bytes of `b` (0 when shorter).
fn u64_le(b: &[u8]) -> u64 {
    b.get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// One chunk's Bloom filter: `m = 64 · words.len()` bits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkFilter {
    words: Vec<u64>,
}

impl ChunkFilter {
    /// Its encoded bytes in a filter blob.
    pub fn encoded_len(&self) -> usize {
        4 + 8 * self.words.len()
    }

    /// The filter of `hashes`: [`BITS_PER_KEY`] bits per hash (a repeated
    /// key counts each time: sorting them out cost more on the reader's
    /// thread than the bits save), rounded up to whole 64-bit words; none
    /// for none.
    pub fn build(hashes: &[KeyHash]) -> ChunkFilter {
        let words = (hashes.len() * BITS_PER_KEY).div_ceil(64);
        let mut f = ChunkFilter {
            words: vec![0; words],
        };
        let m = (words * 64) as u64;
        for h in hashes.iter() {
            for bit in bits(m, *h) {
                if let Some(w) = f.words.get_mut(bit / 64) {
                    *w |= 1 << (bit % 64);
                }
            }
        }
        f
    }

    /// Whether a record with key hash `h` may be in the chunk (never false
    /// for one that is).
    pub fn may_hold(&self, h: KeyHash) -> bool {
        let m = (self.words.len() * 64) as u64;
        m > 0 && bits(m, h).all(|b| self.words.get(b / 64).is_some_and(|w| w & (1 << (b % 64)) != 0))
    }
}

/// The bits of `m` a key hash sets: `x_i = h1 + i·h2` (wrapping) mapped
/// onto `0..m` by `(x_i · m) >> 64` (a multiplication, not a division).
fn bits(m: u64, [h1, h2]: KeyHash) -> impl Iterator<Item = usize> {
    (0..u64::from(HASHES)).map(move |i| {
        let x = h1.wrapping_add(i.wrapping_mul(h2));
        ((u128::from(x) * u128::from(m)) >> 64) as usize
    })
}

/// Where a segment's key filters are stored (format-spec §14 "Key
/// filters").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Nowhere: the segment has no chunk.
    None,
    /// A blob of its own.
    Own,
    /// Shared blob number `blob`, from its chunk filter `at` on.
    Shared {
        /// Which shared blob (in the order they are made).
        blob: usize,
        /// The index of the segment's first chunk filter in it.
        at: u32,
    },
}

/// Places a snapshot's segments' filters, given per segment its chunk
/// count and the filters' encoded bytes: [`MIN_CHUNKS`] or more, a blob of
/// their own; fewer, in order into shared blobs, the next one begun once
/// one holds [`SHARED_BYTES`].
pub fn place(segments: &[(usize, usize)]) -> Vec<Placement> {
    let (mut blob, mut at, mut bytes) = (0usize, 0u32, 0usize);
    let mut out = Vec::with_capacity(segments.len());
    for &(chunks, size) in segments {
        out.push(match chunks {
            0 => Placement::None,
            n if n >= MIN_CHUNKS => Placement::Own,
            n => {
                if bytes >= SHARED_BYTES {
                    (blob, at, bytes) = (blob + 1, 0, 0);
                }
                let p = Placement::Shared { blob, at };
                at += n as u32;
                bytes += size;
                p
            }
        });
    }
    out
}

/// A segment's key filters as a reader uses them: its chunks' slice of a
/// filter blob, its own or shared.
#[derive(Debug, Clone)]
pub struct SegmentFilters {
    blob: std::sync::Arc<SegmentFilter>,
    at: usize,
    len: usize,
}

impl SegmentFilters {
    /// The filters of a segment of `chunks` chunks in `blob`: from `at`
    /// when shared, else the whole blob; `None` when the counts do not fit.
    pub fn of(blob: std::sync::Arc<SegmentFilter>, at: Option<u32>, chunks: usize) -> Option<SegmentFilters> {
        let fits = match at {
            None => blob.chunks.len() == chunks,
            Some(a) => (a as usize)
                .checked_add(chunks)
                .is_some_and(|e| e <= blob.chunks.len()),
        };
        fits.then(|| SegmentFilters {
            blob,
            at: at.map_or(0, |a| a as usize),
            len: chunks,
        })
    }

    /// The filter of the segment's `i`th chunk.
    pub fn chunk(&self, i: usize) -> Option<&ChunkFilter> {
        (i < self.len)
            .then(|| self.blob.chunks.get(self.at + i))
            .flatten()
    }

    /// Whether the segment's `i`th chunk certainly holds none of the keys
    /// hashed as `keys` (so it need not be read).
    pub fn rules_out(&self, i: usize, keys: &[KeyHash]) -> bool {
        self.chunk(i)
            .is_some_and(|c| !keys.iter().any(|h| c.may_hold(*h)))
    }
}

/// Key filters, one per chunk in order, as stored: one segment's, or
/// several small segments' one after the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFilter {
    /// [`KeyHasher::fingerprint`] of the key the hashes were made under.
    pub fingerprint: [u8; 8],
    /// Per chunk, in the segment's order.
    pub chunks: Vec<ChunkFilter>,
}

impl SegmentFilter {
    /// The blob's plaintext: `"KVKF"`, version 1, hashes per key, the
    /// fingerprint, the chunk count (u32 LE), then per chunk its word count
    /// (u32 LE) and words (u64 LE).
    pub fn encode(&self) -> Vec<u8> {
        let words: usize = self.chunks.iter().map(ChunkFilter::encoded_len).sum();
        let mut out = Vec::with_capacity(18 + words);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(HASHES);
        out.extend_from_slice(&self.fingerprint);
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        for c in &self.chunks {
            out.extend_from_slice(&(c.words.len() as u32).to_le_bytes());
            for w in &c.words {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    /// Decodes a filter blob; `what` names it in errors.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for anything but what [`SegmentFilter::encode`] writes.
    pub fn decode(b: &[u8], what: &str) -> Result<SegmentFilter> {
        let bad = |why: &str| Error::corrupt(format!("key filter {what}"), why);
        let mut r = Reader { b, at: 0 };
        if r.take(4).ok_or_else(|| bad("truncated"))? != MAGIC {
            return Err(bad("not a key filter"));
        }
        let head = r.take(2).ok_or_else(|| bad("truncated"))?;
        if head != [VERSION, HASHES] {
            return Err(bad("unknown version or hash count"));
        }
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(r.take(8).ok_or_else(|| bad("truncated"))?);
        let n = r.u32().ok_or_else(|| bad("truncated"))?;
        let mut chunks = Vec::new();
        for _ in 0..n {
            let w = r.u32().ok_or_else(|| bad("truncated"))? as usize;
            let bytes = r.take(w.checked_mul(8).ok_or_else(|| bad("too long"))?);
            let bytes = bytes.ok_or_else(|| bad("truncated"))?;
            chunks.push(ChunkFilter {
                words: bytes.chunks_exact(8).map(u64_le).collect(),
            });
        }
        if r.at != b.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(SegmentFilter { fingerprint, chunks })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> KeyHasher {
        KeyHasher::new([7; 32])
    }

    #[test]
    fn every_key_put_in_is_found_and_few_others_are() {
        let h = hasher();
        let hs: Vec<KeyHash> = (0..1000).map(|i| h.hash(format!("k{i}").as_bytes())).collect();
        let f = ChunkFilter::build(&hs);
        assert!((0..1000).all(|i| f.may_hold(h.hash(format!("k{i}").as_bytes()))));
        let false_hits = (0..10_000)
            .filter(|i| f.may_hold(h.hash(format!("other{i}").as_bytes())))
            .count();
        assert!(false_hits < 300, "{false_hits} of 10000 (about 1 % expected)");
    }

    #[test]
    fn a_chunk_without_keys_holds_none() {
        let f = ChunkFilter::build(&[]);
        assert!(!f.may_hold(hasher().hash(b"k")));
    }

    #[test]
    fn filters_round_trip_and_damage_is_refused() {
        let h = hasher();
        let s = SegmentFilter {
            fingerprint: h.fingerprint(),
            chunks: vec![
                ChunkFilter::build(&[h.hash(b"a"), h.hash(b"b")]),
                ChunkFilter::default(),
            ],
        };
        let b = s.encode();
        assert_eq!(SegmentFilter::decode(&b, "t").unwrap(), s);
        for cut in 0..b.len() {
            assert!(SegmentFilter::decode(&b[..cut], "t").is_err(), "{cut}");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(SegmentFilter::decode(&longer, "t").is_err());
        assert!(SegmentFilter::decode(&[b"KVKF".as_slice(), &[2, 7]].concat(), "t").is_err());
    }

    #[test]
    fn small_segments_share_blobs_of_bounded_size_and_large_ones_have_their_own() {
        use Placement::*;
        let p = place(&[
            (0, 0),
            (1, 100),
            (MIN_CHUNKS, 10),
            (3, SHARED_BYTES),
            (2, 8),
            (1, 8),
        ]);
        assert_eq!(
            p,
            vec![
                None,
                Shared { blob: 0, at: 0 },
                Own,
                Shared { blob: 0, at: 1 },
                Shared { blob: 1, at: 0 },
                Shared { blob: 1, at: 2 },
            ]
        );
    }

    #[test]
    fn a_segment_reads_only_its_own_slice_of_a_shared_blob() {
        let h = hasher();
        let blob = std::sync::Arc::new(SegmentFilter {
            fingerprint: h.fingerprint(),
            chunks: vec![
                ChunkFilter::build(&[h.hash(b"a")]),
                ChunkFilter::build(&[h.hash(b"b")]),
                ChunkFilter::build(&[h.hash(b"c")]),
            ],
        });
        let f = SegmentFilters::of(blob.clone(), Some(1), 2).unwrap();
        assert!(f.chunk(0).unwrap().may_hold(h.hash(b"b")));
        assert!(f.chunk(1).unwrap().may_hold(h.hash(b"c")));
        assert!(f.chunk(2).is_none());
        assert!(f.rules_out(0, &[h.hash(b"a"), h.hash(b"c")]));
        assert!(!f.rules_out(0, &[h.hash(b"a"), h.hash(b"b")]));
        assert!(!f.rules_out(2, &[h.hash(b"a")]), "no filter: not ruled out");
        assert!(SegmentFilters::of(blob.clone(), Some(2), 2).is_none());
        assert!(SegmentFilters::of(blob.clone(), None, 2).is_none());
        assert!(SegmentFilters::of(blob.clone(), Some(u32::MAX), 2).is_none());
        assert!(SegmentFilters::of(blob, None, 3).is_some());
    }

    #[test]
    fn another_key_has_another_fingerprint() {
        assert_ne!(hasher().fingerprint(), KeyHasher::new([8; 32]).fingerprint());
    }
}
