//! Capability sets carried by a `Cx`.

use std::fmt;

/// The effects a `Cx` may perform. Narrow with [`crate::Cx::restrict`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities(u8);

impl Capabilities {
    /// No effects at all.
    pub const NONE: Capabilities = Capabilities(0);
    /// Spawn tasks.
    pub const SPAWN: Capabilities = Capabilities(1);
    /// Read time and wait on timers.
    pub const TIME: Capabilities = Capabilities(1 << 1);
    /// Perform I/O.
    pub const IO: Capabilities = Capabilities(1 << 2);
    /// Draw randomness.
    pub const RANDOM: Capabilities = Capabilities(1 << 3);
    /// Everything.
    pub const ALL: Capabilities = Capabilities(0b1111);

    /// Whether every capability in `other` is present.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// Capabilities present in both.
    pub const fn intersect(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & other.0)
    }

    /// `self` without `other`.
    pub const fn without(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & !other.0)
    }

    /// Capabilities present in either.
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::SPAWN, "spawn"),
            (Self::TIME, "time"),
            (Self::IO, "io"),
            (Self::RANDOM, "random"),
        ];
        let present: Vec<&str> = names
            .iter()
            .filter(|(c, _)| self.contains(*c))
            .map(|(_, n)| *n)
            .collect();
        write!(f, "Capabilities({})", present.join("|"))
    }
}
