//! Identifiers.
//!
//! An id is the pair `(index, generation)`. Task and region ids come from
//! per-runtime counters (the counter's low and high halves), so they are
//! never reused and an id that outlived its entity (a *stale* id) never
//! resolves to a newcomer (K7); other ids are slots of generational arenas,
//! whose generation is bumped when a slot is reused, to the same effect.
//!
//! Ordering is by index first, then generation (the derive order of the
//! fields), which keeps ordered containers of ids deterministic.

use std::fmt;

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name {
            // Field order matters: the derived `Ord` compares index first.
            index: u32,
            generation: u32,
        }

        impl $name {
            /// The least id (for ranges of ordered containers).
            #[allow(dead_code)]
            pub(crate) const MIN: Self = Self::from_parts(0, 0);
            /// The greatest id (for ranges of ordered containers).
            #[allow(dead_code)]
            pub(crate) const MAX: Self = Self::from_parts(u32::MAX, u32::MAX);

            /// Builds an id from its arena slot and generation.
            pub(crate) const fn from_parts(index: u32, generation: u32) -> Self {
                Self { index, generation }
            }

            /// Builds an arbitrary id for tests.
            #[cfg(any(test, feature = "test-internals"))]
            pub const fn new_for_test(index: u32, generation: u32) -> Self {
                Self::from_parts(index, generation)
            }

            /// Packs the id into one word (for atomics).
            #[allow(dead_code)]
            pub(crate) const fn to_bits(self) -> u64 {
                ((self.generation as u64) << 32) | self.index as u64
            }

            /// Unpacks [`to_bits`](Self::to_bits).
            #[allow(dead_code)]
            pub(crate) const fn from_bits(bits: u64) -> Self {
                Self::from_parts(bits as u32, (bits >> 32) as u32)
            }

            /// The arena slot this id points at.
            pub const fn index(self) -> u32 {
                self.index
            }

            /// The generation of the slot when this id was issued.
            pub const fn generation(self) -> u32 {
                self.generation
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.index)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if self.generation == 0 {
                    write!(f, concat!($prefix, "{}"), self.index)
                } else {
                    write!(f, concat!($prefix, "{}g{}"), self.index, self.generation)
                }
            }
        }
    };
}

define_id!(
    /// Identifies a task (a unit of concurrent work owned by a region).
    TaskId,
    "T"
);
define_id!(
    /// Identifies a region (a node of the structured-concurrency tree).
    RegionId,
    "R"
);
define_id!(
    /// Identifies an obligation (a reserved two-phase effect).
    ObligationId,
    "O"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_prefix_and_index_only() {
        assert_eq!(TaskId::new_for_test(3, 9).to_string(), "T3");
        assert_eq!(RegionId::new_for_test(0, 0).to_string(), "R0");
        assert_eq!(ObligationId::new_for_test(7, 1).to_string(), "O7");
    }

    #[test]
    fn ordering_is_index_then_generation() {
        let a = TaskId::new_for_test(1, 5);
        let b = TaskId::new_for_test(2, 0);
        let c = TaskId::new_for_test(2, 1);
        assert!(a < b && b < c);
    }

    #[test]
    fn same_index_different_generation_is_a_different_id() {
        assert_ne!(RegionId::new_for_test(4, 0), RegionId::new_for_test(4, 1));
    }
}

/// A hasher for ids (FxHash's mixing step): fast, and deterministic, so a
/// map keyed by ids iterates in an order fixed by its operations alone.
/// Counter-made ids are sequential; the multiply spreads them over the high
/// bits the map's probing uses.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A map keyed by ids, hashed with [`IdHasher`].
pub(crate) type IdMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;
