//! Virtual time: moves only when the lab moves it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::exec::runnable::Clock;
use crate::types::Time;

/// A clock that reads whatever the lab set last.
#[derive(Debug, Default)]
pub(crate) struct VirtualClock {
    nanos: AtomicU64,
}

impl VirtualClock {
    /// Moves time forward to `to` (never backwards).
    pub(crate) fn advance_to(&self, to: Time) {
        self.nanos.fetch_max(to.as_nanos(), Ordering::AcqRel);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Time {
        Time::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}
