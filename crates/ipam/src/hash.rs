//! A small, fast, non-cryptographic hasher for the allocator's in-memory indexes.
//!
//! The allocator looks up handles (pod UIDs), node names, namespaces and pool names several times
//! per allocation; the standard SipHash costs more than the rest of an allocation. The keys are
//! chosen by the API server (UIDs) or by cluster admins (names), not by anonymous clients, so
//! resistance to hash flooding is not needed here.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Multiply-rotate hasher in the style of rustc's FxHasher: one multiply per 8 input bytes.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher {
    state: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // Assembled by hand: a variable-length `copy_from_slice` here becomes a `memcpy`
            // call, which costs more than hashing a short key.
            let word = rest
                .iter()
                .rev()
                .fold(0u64, |w, b| (w << 8) | u64::from(*b));
            self.add(word);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// Multiplication only carries entropy upwards, but hashbrown picks buckets with the low
    /// bits: a final xor-shift-multiply (MurmurHash3's finaliser) spreads it over all bits.
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.state;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// The 64-bit hash of a string, computed once and used as a key of a [`HashKeyed`] map.
#[inline]
pub(crate) fn hash_str(s: &str) -> u64 {
    BuildHasherDefault::<FastHasher>::default().hash_one(s)
}

/// Passes an already well-mixed `u64` key through unchanged.
#[derive(Default, Clone, Copy)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed with this; fold anything else in to stay correct.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by [`hash_str`] values: small buckets, and the string is hashed only once.
/// Two strings may share a hash, so values must be checked against the real key.
pub(crate) type HashKeyed<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::FastHasher;

    #[test]
    fn similar_keys_spread_over_low_bits() {
        // Keys that differ only in a few characters (like pod UIDs) must not pile up in a few
        // buckets: hashbrown indexes with the low bits.
        let build = BuildHasherDefault::<FastHasher>::default();
        let mut buckets = std::collections::HashSet::new();
        for i in 0..4096u32 {
            let key = format!("{i:08x}-0000-4000-8000-000000000000");
            buckets.insert(build.hash_one(key.as_str()) & 0xfff);
        }
        assert!(
            buckets.len() > 2400,
            "only {} of 4096 buckets used",
            buckets.len()
        );
    }
}
