//! Deterministic correlationIds for the benches: random-looking ones, as clients send,
//! and adversarial ones whose two 64-bit halves are equal.

/// A splitmix64 stream: fast, deterministic, and every output is a distinct value.
pub struct Ids(u64);

impl Ids {
    pub fn new(seed: u64) -> Ids {
        Ids(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A random 128-bit id, like a client's UUIDv4 value.
    pub fn random(&mut self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }

    /// An id whose high and low halves are the same random 64-bit value.
    pub fn equal_halves(&mut self) -> u128 {
        let h = self.next_u64();
        (u128::from(h) << 64) | u128::from(h)
    }

    /// A random value below `n` (n > 0), for jitter and choices.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
