//! Content-defined chunking: FastCDC (Xia et al. 2016, normalized chunking
//! level 1) with a gear table derived from the repository key
//! (format-spec/README.md §"Chunker").
//!
//! Deriving all 256 table entries from the key (not a 64-bit seed) means
//! chunk boundaries reveal nothing about the content to someone without the
//! key, and two repositories cut the same stream differently.
//!
//! Invariants: every chunk but the last of a stream is `min..=max` bytes;
//! cut points depend only on the key, the parameters and the bytes since the
//! previous cut.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Chunker parameters stored in the repository config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Smallest chunk (except a stream's last).
    pub min_size: u32,
    /// Target average; a power of two.
    pub avg_size: u32,
    /// Largest chunk.
    pub max_size: u32,
}

impl Default for ChunkerParams {
    /// 256 KiB / 1 MiB / 4 MiB.
    fn default() -> Self {
        ChunkerParams {
            min_size: 256 * 1024,
            avg_size: 1024 * 1024,
            max_size: 4 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Parameters for a given average (min = avg/4, max = avg*4).
    ///
    /// # Errors
    /// `avg` not a power of two in 4 KiB..=64 MiB.
    pub fn with_average(avg: u32) -> Result<ChunkerParams> {
        let p = ChunkerParams {
            min_size: avg / 4,
            avg_size: avg,
            max_size: avg.saturating_mul(4),
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`Error::BadValue`] when inconsistent.
    pub fn validate(&self) -> Result<()> {
        let ok = self.avg_size.is_power_of_two()
            && (64..=64 * 1024 * 1024).contains(&self.avg_size)
            && self.min_size >= 1
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.max_size <= 256 * 1024 * 1024;
        if ok {
            Ok(())
        } else {
            Err(Error::bad_value(
                "chunker parameters",
                format!("{self:?}"),
                "64 B..64 MiB average, min <= avg <= max <= 256 MiB",
            ))
        }
    }
}

/// Where [`Chunker::scan`] stopped in a growing chunk.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanState {
    pos: usize,
    hash: u64,
}

/// A keyed FastCDC chunker.
#[derive(Clone)]
pub struct Chunker {
    gear: Box<[u64; 256]>,
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chunker({}/{}/{})", self.min, self.avg, self.max)
    }
}

/// A mask of the `bits` most significant bits of a u64.
fn top_bits(bits: u32) -> u64 {
    if bits == 0 {
        0
    } else {
        u64::MAX << (64 - bits.min(64))
    }
}

/// Expands the chunker key into the gear table: BLAKE3 keyed with it, XOF
/// output over the empty input, 2048 bytes read as 256 little-endian u64.
pub fn gear_table(chunker_key: &[u8; 32]) -> Box<[u64; 256]> {
    let mut bytes = [0u8; 2048];
    blake3::Hasher::new_keyed(chunker_key)
        .finalize_xof()
        .fill(&mut bytes);
    let mut t = Box::new([0u64; 256]);
    for (slot, c) in t.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        *slot = u64::from_le_bytes(w);
    }
    t
}

impl Chunker {
    /// A chunker for the given key and parameters.
    ///
    /// # Errors
    /// Invalid parameters.
    pub fn new(chunker_key: &[u8; 32], p: ChunkerParams) -> Result<Chunker> {
        p.validate()?;
        let bits = p.avg_size.trailing_zeros();
        Ok(Chunker {
            gear: gear_table(chunker_key),
            min: p.min_size as usize,
            avg: p.avg_size as usize,
            max: p.max_size as usize,
            // Normalized chunking level 1: harder to cut before the average,
            // easier after. The hash shifts left, so its top bits depend on
            // the most bytes: the masks take the top bits.
            mask_s: top_bits(bits + 1),
            mask_l: top_bits(bits - 1),
        })
    }

    /// The largest chunk this chunker emits.
    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Length of the next chunk at the start of `data`. When `data` holds
    /// fewer than `max` bytes the result is only final at end of stream
    /// (then it may be all of `data`).
    pub fn next_cut(&self, data: &[u8]) -> usize {
        let n = data.len().min(self.max);
        if n <= self.min {
            return n;
        }
        let normal = self.avg.min(n);
        let mut hash: u64 = 0;
        if let Some(k) = data
            .get(self.min..normal)
            .and_then(|p| self.roll(p, &mut hash, self.mask_s))
        {
            return self.min + k;
        }
        let i = normal.max(self.min);
        if let Some(k) = data.get(i..n).and_then(|p| self.roll(p, &mut hash, self.mask_l)) {
            return i + k;
        }
        n
    }

    /// Rolls the gear hash over `part`: the length up to and including the
    /// first byte after which `hash & mask == 0`, or `None` (and `hash`
    /// after every byte of `part`). Eight bytes per loop turn with one
    /// bounds check: the loop is the chunker's whole cost, and per byte it
    /// is a load, a shift, an add from the table and a test.
    #[inline(always)]
    fn roll(&self, part: &[u8], hash: &mut u64, mask: u64) -> Option<usize> {
        let gear = &*self.gear;
        let mut h = *hash;
        // A u8 index into a 256-entry table is always in bounds.
        #[allow(clippy::indexing_slicing)]
        let step = |h: u64, b: u8| (h << 1).wrapping_add(gear[b as usize]);
        let mut blocks = part.chunks_exact(8);
        let mut done = 0;
        for block in blocks.by_ref() {
            // Bytes loaded one by one from memory: one load each, where a
            // word in a register costs a shift and a move per byte.
            for (k, &x) in block.iter().enumerate() {
                h = step(h, x);
                if h & mask == 0 {
                    return Some(done + k + 1);
                }
            }
            done += 8;
        }
        for (k, &x) in blocks.remainder().iter().enumerate() {
            h = step(h, x);
            if h & mask == 0 {
                return Some(done + k + 1);
            }
        }
        *hash = h;
        None
    }

    /// Scans a growing chunk for its cut, resuming where the last call
    /// stopped: `data` is everything since the previous cut (it only grows
    /// between calls with the same `state`). Returns the chunk's length once
    /// a cut point is found or `max` bytes are reached — the same cut
    /// [`Chunker::next_cut`] finds in the complete stream — and `None` while
    /// the chunk may still grow. Reset `state` after each cut.
    pub fn scan(&self, state: &mut ScanState, data: &[u8]) -> Option<usize> {
        let n = data.len().min(self.max);
        let mut i = state.pos.max(self.min);
        let mut hash = state.hash;
        if i < self.avg {
            let end = n.min(self.avg);
            if let Some(part) = data.get(i..end) {
                if let Some(k) = self.roll(part, &mut hash, self.mask_s) {
                    return Some(i + k);
                }
                i = end;
            }
        }
        if let Some(part) = data.get(i..n) {
            if let Some(k) = self.roll(part, &mut hash, self.mask_l) {
                return Some(i + k);
            }
            i = n;
        }
        if n == self.max {
            return Some(self.max);
        }
        state.pos = i.max(state.pos);
        state.hash = hash;
        None
    }

    /// All cut lengths of a complete stream.
    pub fn cuts(&self, mut data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let c = self.next_cut(data);
            out.push(c);
            data = data.get(c..).unwrap_or_default();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_size: 64,
            avg_size: 256,
            max_size: 1024,
        }
    }

    fn pseudo_random(n: usize, seed: u8) -> Vec<u8> {
        let mut out = vec![0u8; n];
        blake3::Hasher::new()
            .update(&[seed])
            .finalize_xof()
            .fill(&mut out);
        out
    }

    #[test]
    fn sizes_are_bounded_and_average_is_near_target() {
        let c = Chunker::new(&[3u8; 32], small()).unwrap();
        let data = pseudo_random(1 << 20, 1);
        let cuts = c.cuts(&data);
        assert_eq!(cuts.iter().sum::<usize>(), data.len());
        for &l in &cuts[..cuts.len() - 1] {
            assert!((64..=1024).contains(&l), "{l}");
        }
        let avg = data.len() / cuts.len();
        assert!((200..=400).contains(&avg), "average {avg}");
    }

    #[test]
    fn boundaries_resynchronise_after_an_insertion() {
        let c = Chunker::new(&[3u8; 32], small()).unwrap();
        let data = pseudo_random(64 * 1024, 2);
        let mut changed = b"inserted!".to_vec();
        changed.extend_from_slice(&data);
        let ends = |cuts: Vec<usize>, shift: usize| -> Vec<usize> {
            cuts.iter()
                .scan(0, |s, &l| {
                    *s += l;
                    Some(*s - shift)
                })
                .collect()
        };
        let a = ends(c.cuts(&data), 0);
        let b = ends(c.cuts(&changed), 9);
        let common = a.iter().filter(|x| b.contains(x)).count();
        assert!(common * 10 >= a.len() * 8, "{common} of {}", a.len());
    }

    #[test]
    fn the_key_changes_the_cuts() {
        let data = pseudo_random(64 * 1024, 4);
        let a = Chunker::new(&[1u8; 32], small()).unwrap().cuts(&data);
        let b = Chunker::new(&[2u8; 32], small()).unwrap().cuts(&data);
        assert_ne!(a, b);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(ChunkerParams::with_average(1000).is_err());
        assert!(ChunkerParams::with_average(1 << 20).is_ok());
        assert!(
            ChunkerParams {
                min_size: 0,
                avg_size: 256,
                max_size: 1024
            }
            .validate()
            .is_err()
        );
    }

    /// Cuts found by scanning a stream that arrives in pieces.
    fn scanned_cuts(c: &Chunker, data: &[u8], pieces: &[usize]) -> Vec<usize> {
        let (mut out, mut start, mut end, mut st) = (Vec::new(), 0, 0, ScanState::default());
        let mut steps = pieces.iter().cycle();
        while end < data.len() {
            end = (end + steps.next().copied().unwrap_or(1).max(1)).min(data.len());
            while let Some(cut) = c.scan(&mut st, &data[start..end]) {
                out.push(cut);
                start += cut;
                st = ScanState::default();
            }
        }
        if start < data.len() {
            out.push(data.len() - start);
        }
        out
    }

    #[test]
    fn scanning_as_bytes_arrive_cuts_where_the_whole_stream_is_cut() {
        let c = Chunker::new(&[3u8; 32], small()).unwrap();
        let data = pseudo_random(256 * 1024, 7);
        assert_eq!(scanned_cuts(&c, &data, &[1]), c.cuts(&data));
        assert_eq!(scanned_cuts(&c, &data, &[100, 7, 3000]), c.cuts(&data));
        let zeros = vec![0u8; 10_000];
        assert_eq!(scanned_cuts(&c, &zeros, &[33]), c.cuts(&zeros));
    }

    /// The definition: one byte at a time (format-spec §"Chunker").
    fn reference_cuts(c: &Chunker, mut data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let n = data.len().min(c.max);
            let mut cut = n;
            if n > c.min {
                let mut h: u64 = 0;
                for (i, &b) in data.iter().enumerate().take(n).skip(c.min) {
                    h = (h << 1).wrapping_add(c.gear[b as usize]);
                    let mask = if i < c.avg { c.mask_s } else { c.mask_l };
                    if h & mask == 0 {
                        cut = i + 1;
                        break;
                    }
                }
            }
            out.push(cut);
            data = &data[cut..];
        }
        out
    }

    #[test]
    fn cuts_follow_the_format_specs_definition() {
        let c = Chunker::new(&[3u8; 32], small()).unwrap();
        for seed in 0..8 {
            let data = pseudo_random(64 * 1024 + seed as usize, seed);
            assert_eq!(c.cuts(&data), reference_cuts(&c, &data));
        }
        let big = Chunker::new(&[9u8; 32], ChunkerParams::default()).unwrap();
        let data = pseudo_random(8 << 20, 9);
        assert_eq!(big.cuts(&data), reference_cuts(&big, &data));
    }

    proptest! {
        #[test]
        fn cutting_matches_the_byte_at_a_time_definition(data in proptest::collection::vec(any::<u8>(), 0..8192)) {
            let c = Chunker::new(&[5u8; 32], small()).unwrap();
            prop_assert_eq!(c.cuts(&data), reference_cuts(&c, &data));
        }

        #[test]
        fn scanning_in_any_pieces_matches_cutting_the_whole(
            data in proptest::collection::vec(any::<u8>(), 0..8192),
            pieces in proptest::collection::vec(1usize..2000, 1..8),
        ) {
            let c = Chunker::new(&[5u8; 32], small()).unwrap();
            prop_assert_eq!(scanned_cuts(&c, &data, &pieces), c.cuts(&data));
        }

        #[test]
        fn cuts_cover_the_input(data in proptest::collection::vec(any::<u8>(), 0..8192)) {
            let c = Chunker::new(&[5u8; 32], small()).unwrap();
            let cuts = c.cuts(&data);
            prop_assert_eq!(cuts.iter().sum::<usize>(), data.len());
            prop_assert!(cuts.iter().all(|&l| (1..=1024).contains(&l)));
        }
    }
}
