//! The Java client's default partitioner for keyed records, so a restore
//! with `--repartition` puts each key where a Java producer (and
//! librdkafka's `murmur2_random`) would: `(murmur2(key) & 0x7fffffff) % n`.
//! Keyless records go round-robin (deterministic, so a resumed restore
//! routes them the same way).

/// Kafka's `Utils.murmur2`: MurmurHash2, 32 bits, seed `0x9747b28c`.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = 0x9747_b28c ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes(<[u8; 4]>::try_from(c).unwrap_or_default());
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Routes records of one topic to `partitions` target partitions.
#[derive(Debug, Clone)]
pub struct Router {
    partitions: i32,
    next_keyless: u64,
}

impl Router {
    /// A router over `partitions` (at least 1) partitions.
    pub fn new(partitions: i32) -> Router {
        Router {
            partitions: partitions.max(1),
            next_keyless: 0,
        }
    }

    /// The target partition of a record with this key.
    pub fn route(&mut self, key: Option<&[u8]>) -> i32 {
        match key {
            Some(k) => (murmur2(k) & 0x7fff_ffff) % self.partitions,
            None => {
                let p = (self.next_keyless % self.partitions as u64) as i32;
                self.next_keyless += 1;
                p
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Vectors from Apache Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }

    #[test]
    fn keyless_records_go_round_robin_and_keys_stay_put() {
        let mut r = Router::new(3);
        let ks: Vec<i32> = (0..6).map(|_| r.route(None)).collect();
        assert_eq!(ks, [0, 1, 2, 0, 1, 2]);
        let a = r.route(Some(b"user-1"));
        assert_eq!(r.route(Some(b"user-1")), a);
        assert!((0..3).contains(&a));
    }
}
