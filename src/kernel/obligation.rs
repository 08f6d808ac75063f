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
//! 2. A task that completes while still holding a reserved obligation leaks
//!    it, whatever its outcome (returned, cancelled, force-dropped). Its
//!    future, and every permit the future owned, is dropped before it
//!    completes, and dropping a permit aborts it; so an obligation still
//!    held then was forgotten (`mem::forget`) or escaped the task (stashed
//!    elsewhere, returned as its output). Nothing is counted as aborted that
//!    was not given back.
//! 3. Each region counts its pending obligations; a region never reaches
//!    `Closed` with a pending one (leftovers are recorded as leaks first).
//! 4. A task-held obligation belongs to the task that reserved it until it
//!    is explicitly transferred (`Obligation::transfer`, traced as
//!    `ObligationTransfer`); only its holder's completion can leak it.
//! 5. An *owned* obligation (reserved for an owned permit:
//!    `Semaphore::acquire_owned`, `Sender::reserve_owned`) may move to any
//!    task, so no task holds it: from its reservation on it is held by the
//!    region it was reserved in (traced as an `ObligationTransfer` to no
//!    task right after the `ObligationReserve`). No task's completion
//!    counts it; if it is still pending when that region closes (the
//!    permit was forgotten, or moved out of the region), it is a leak. The
//!    cost is a flag: nothing is scanned when a task completes.

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
    /// Rule 5: held by `region`, not by `holder` (which is then only the
    /// task that reserved it, for reports).
    pub(crate) owned: bool,
}

/// A leaked obligation, as reported by the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakReport {
    /// The leaked obligation.
    pub obligation: ObligationId,
    /// What kind of effect it reserved (`"send_permit"`, ...).
    pub kind: &'static str,
    /// The task that held it last: the one that reserved it (or received
    /// it by transfer); for an owned permit, the task that reserved it.
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
