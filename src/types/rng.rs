//! Seeded randomness for every layer (the lab's schedule, chaos and worker
//! streams, `Cx::random_u64`): a SplitMix64 generator, re-exported as
//! `lab::DetRng`.

/// A small, fast, seedable generator (SplitMix64). Same seed, same stream,
/// on every platform.
#[derive(Clone, Debug)]
pub struct DetRng {
    state: u64,
}

impl DetRng {
    /// A generator seeded with `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// An independent stream derived from this seed and a stream label
    /// (so the scheduler, chaos and `Cx` randomness do not perturb each
    /// other when one of them draws more numbers).
    pub fn derive(seed: u64, stream: u64) -> Self {
        let mut mixer = DetRng::new(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        DetRng::new(mixer.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), without modulo bias worth caring about
    /// at these sizes (Lemire's multiply-shift).
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0, "DetRng::below(0)");
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// `true` with probability `p` (clamped to 0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let mut a = DetRng::new(42);
        let mut b = DetRng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = DetRng::new(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let v = r.below(5);
            seen[v] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn derived_streams_differ() {
        let mut a = DetRng::derive(1, 1);
        let mut b = DetRng::derive(1, 2);
        assert_ne!(a.next_u64(), b.next_u64());
    }
}
