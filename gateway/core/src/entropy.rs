//! Randomness enters the core only as bytes inside inputs; this expands such a
//! seed deterministically (SplitMix64), so replays and the model are exact.

/// A SplitMix64 stream seeded from input bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entropy(u64);

impl Entropy {
    /// A stream from seed bytes.
    #[must_use]
    pub const fn from_seed(seed: [u8; 8]) -> Self {
        Self(u64::from_le_bytes(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next 16 random bytes (for a token).
    pub fn next_bytes16(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let (a, b) = out.split_at_mut(8);
        a.copy_from_slice(&self.next_u64().to_le_bytes());
        b.copy_from_slice(&self.next_u64().to_le_bytes());
        out
    }
}
