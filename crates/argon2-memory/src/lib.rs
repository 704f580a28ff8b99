//! Memory for Argon2's blocks that costs only what the hash itself costs.
//!
//! `argon2::Argon2::hash_password_into` allocates its blocks with
//! `alloc_zeroed` at 64-byte alignment, which the system allocator serves
//! as `posix_memalign` followed by a `memset` of the whole area: for
//! kvault's 64 MiB that is 16,384 page faults and a zeroing pass on one
//! thread before any lane starts, and as many page frees after it — about
//! half of the 0.2 s a repository takes to open on 2 cores
//! (BENCHMARKS.md).
//!
//! [`Blocks`] maps the area directly (`mmap` of anonymous memory, which the
//! kernel hands out zeroed and only when touched) and, on Linux, asks for
//! transparent huge pages (`MADV_HUGEPAGE`), so the area is 32 faults of
//! 2 MiB. All-zero bytes are a valid [`Block`] (it is `[u64; 128]`), and the
//! hash writes every block before it reads it, so the result is the same as
//! with the crate's own allocation (tested below).
//!
//! This crate holds those foreign calls, so the kvault crate itself stays
//! free of `unsafe`.

use argon2::Block;

/// Huge-page size the area is aligned to (x86-64 and arm64 with 4 KiB
/// pages).
const ALIGN: usize = 2 << 20;

/// Argon2 block memory, unmapped on drop.
pub struct Blocks {
    /// The mapping as `mmap` returned it.
    base: *mut libc::c_void,
    /// Its length.
    map_len: usize,
    /// The first block, `ALIGN`-aligned inside the mapping.
    first: *mut Block,
    /// Blocks.
    len: usize,
}

// SAFETY: `Blocks` owns its mapping exclusively, like a `Box<[Block]>`.
unsafe impl Send for Blocks {}

impl Blocks {
    /// Maps `count` blocks; `None` when `count` is zero, its size overflows
    /// or the kernel refuses the mapping (the caller then falls back to the
    /// argon2 crate's allocation, which reports out-of-memory itself).
    pub fn new(count: usize) -> Option<Blocks> {
        if count == 0 {
            return None;
        }
        let bytes = count.checked_mul(std::mem::size_of::<Block>())?;
        let map_len = bytes.checked_add(ALIGN)?;
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED || base.is_null() {
            return None;
        }
        let pad = (ALIGN - (base as usize) % ALIGN) % ALIGN;
        // SAFETY: `pad < ALIGN`, so the offset stays inside the mapping.
        let first = unsafe { base.cast::<u8>().add(pad) }.cast::<Block>();
        #[cfg(target_os = "linux")]
        {
            // SAFETY: the range lies inside our mapping. Advice only: when
            // the kernel has huge pages off, the area stays 4 KiB pages.
            let _ = unsafe { libc::madvise(first.cast(), bytes, libc::MADV_HUGEPAGE) };
        }
        Some(Blocks {
            base,
            map_len,
            first,
            len: count,
        })
    }
}

impl AsMut<[Block]> for Blocks {
    fn as_mut(&mut self) -> &mut [Block] {
        // SAFETY: `first` is aligned for `Block` (2 MiB), `len` blocks lie
        // inside the mapping, which is zero-filled readable and writable
        // memory (all-zero bytes are a valid `Block`) owned by `self`,
        // borrowed mutably here.
        unsafe { std::slice::from_raw_parts_mut(self.first, self.len) }
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` made, unmapped once; no slice of it
        // outlives `self`.
        let _ = unsafe { libc::munmap(self.base, self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{Algorithm, Argon2, Params, Version};

    /// Argon2id (2 passes) of a fixed password, in `mem` or, with `None`,
    /// in the argon2 crate's own allocation.
    fn hash(m_kib: u32, p: u32, mem: Option<&mut Blocks>) -> [u8; 32] {
        let params = Params::new(m_kib, 2, p, Some(32)).unwrap_or_else(|e| panic!("{e}"));
        let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut out = [0u8; 32];
        let r = match mem {
            Some(m) => a.hash_password_into_with_memory(b"password", b"saltsaltsaltsalt", &mut out, m),
            None => a.hash_password_into(b"password", b"saltsaltsaltsalt", &mut out),
        };
        r.unwrap_or_else(|e| panic!("{e}"));
        out
    }

    #[test]
    fn the_hash_is_the_one_the_crate_computes_with_its_own_memory() {
        for (m, p) in [(8u32, 1u32), (4096, 1), (4096, 4), (65536, 4)] {
            let want = hash(m, p, None);
            let mut blocks = Blocks::new(m as usize).unwrap_or_else(|| panic!("mmap of {m} KiB"));
            assert_eq!(hash(m, p, Some(&mut blocks)), want, "m={m} KiB p={p}");
        }
    }

    #[test]
    fn reused_memory_gives_the_same_hash() {
        let mut blocks = Blocks::new(1024).unwrap_or_else(|| panic!("mmap"));
        let x = hash(1024, 1, Some(&mut blocks));
        let y = hash(1024, 1, Some(&mut blocks));
        assert_eq!(x, y);
        assert_eq!(x, hash(1024, 1, None));
    }

    #[test]
    fn no_memory_for_zero_or_overflowing_counts() {
        assert!(Blocks::new(0).is_none());
        assert!(Blocks::new(usize::MAX / 512).is_none());
    }

    #[test]
    fn the_blocks_are_aligned_and_zero() {
        let mut b = Blocks::new(3).unwrap_or_else(|| panic!("mmap"));
        let s = b.as_mut();
        assert_eq!(s.len(), 3);
        assert_eq!(s.as_ptr() as usize % ALIGN, 0);
        assert!(s.iter().all(|blk| blk.as_ref().iter().all(|w| *w == 0)));
    }
}
