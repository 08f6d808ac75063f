//! The obligation ledger's records.
//!
//! ```text
//! Reserved ──► Committed
//!     ├──────► Aborted
//!     └──────► Leaked
//! ```
//!
//! Rules:
//! 1. An obligation is resolved exactly once; resolving it again is a bug in
//!    the caller and panics naming the rule.
//! 2. A task that completes normally while still holding a reserved
//!    obligation leaks it; a cancelled task's obligations are aborted.
//! 3. Each region counts its pending obligations; a region never reaches
//!    `Closed` with a pending one (leftovers are recorded as leaks first).
//! 4. An obligation belongs to the task that reserved it until it is
//!    explicitly transferred (`Obligation::transfer`); only its holder's
//!    completion can leak it.

use crate::types::{ObligationId, RegionId, TaskId, Time};

/// State of an obligation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObligationState {
    /// Reserved, not yet resolved.
    Reserved,
    /// The effect happened.
    Committed,
    /// The reservation was released without effect.
    Aborted,
    /// Nobody resolved it: a bug that the runtime reports.
    Leaked,
}

pub(crate) struct ObligationRecord {
    pub(crate) kind: &'static str,
    pub(crate) holder: TaskId,
    pub(crate) region: RegionId,
    pub(crate) reserved_at: Time,
}

/// A leaked obligation, as reported by the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakReport {
    /// The leaked obligation.
    pub obligation: ObligationId,
    /// What kind of effect it reserved (`"send_permit"`, ...).
    pub kind: &'static str,
    /// The task that reserved it.
    pub holder: TaskId,
    /// The region it was reserved in.
    pub region: RegionId,
    /// When it was reserved.
    pub reserved_at: Time,
    /// When the leak was detected.
    pub detected_at: Time,
}

impl std::fmt::Display for LeakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "obligation leak: {} ({}) reserved by task {} in region {} at {} was never committed or aborted (detected at {})",
            self.obligation,
            self.kind,
            self.holder,
            self.region,
            self.reserved_at,
            self.detected_at
        )
    }
}
