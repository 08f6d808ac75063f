//! Region records and the region lifecycle.
//!
//! ```text
//! Open ──► Closing ──► Draining ──► Finalizing ──► Closed
//! ```
//!
//! - `Open`: the body is running; spawns are accepted.
//! - `Closing`: the body finished; if it failed (error, panic, or its future
//!   was dropped) the remaining children are cancelled with `FailFast`.
//! - `Draining`: waiting for every child task and child region to finish.
//! - `Finalizing`: no child is left; finalizers run LIFO in a masked task.
//! - `Closed`: quiescent; the outcome is fixed.
//!
//! Rules:
//! 1. States advance strictly in the order above (each is visited once).
//! 2. A region reaches `Finalizing` only when its body is done and it has no
//!    live child task and no open child region (quiescence).
//! 3. A region reaches `Closed` only after its finalizers ran, each exactly
//!    once, and with no pending obligation (any left are recorded as leaks).
//! 4. A parent region cannot leave `Draining` while a child region is open.
//! 5. Cancellation flows from a region to its tasks and child regions, never
//!    to its parent.

use std::future::Future;
use std::pin::Pin;
use std::task::Waker;

use crate::types::{Budget, CancelReason, PanicPayload, RegionId, TaskId};

/// Lifecycle state of a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegionState {
    /// The body is running.
    Open,
    /// The body finished; closing has begun.
    Closing,
    /// Waiting for children to finish.
    Draining,
    /// Running finalizers.
    Finalizing,
    /// Quiescent and done.
    Closed,
}

impl RegionState {
    /// The state that follows `self` (rule 1).
    pub fn successor(self) -> Option<RegionState> {
        use RegionState::*;
        match self {
            Open => Some(Closing),
            Closing => Some(Draining),
            Draining => Some(Finalizing),
            Finalizing => Some(Closed),
            Closed => None,
        }
    }

    /// Whether new tasks may be spawned into a region in this state.
    pub fn accepts_spawns(self) -> bool {
        matches!(
            self,
            RegionState::Open | RegionState::Closing | RegionState::Draining
        )
    }
}

/// A region finalizer registered with `defer_sync` / `defer_async`.
pub(crate) enum Finalizer {
    Sync(Box<dyn FnOnce() + Send>),
    Async(Pin<Box<dyn Future<Output = ()> + Send>>),
}

/// How the region's body ended.
#[derive(Debug, Clone)]
pub(crate) enum BodyEnd {
    Ok,
    Err,
    Panicked(PanicPayload),
    /// The region future was dropped before the body finished.
    Abandoned,
}

/// What a closed region reports to whoever awaits it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RegionReport {
    /// The first child panic nobody joined, or a finalizer panic.
    pub(crate) panic: Option<PanicPayload>,
    /// The cancellation that hit the region while its body was still running.
    pub(crate) cancelled_during_body: Option<CancelReason>,
}

/// The kernel's record of one region.
pub(crate) struct RegionRecord {
    pub(crate) parent: Option<RegionId>,
    /// The task whose future runs the body (for the root: the root body task).
    pub(crate) owner: Option<TaskId>,
    pub(crate) state: RegionState,
    pub(crate) cancel: Option<CancelReason>,
    pub(crate) budget: Budget,
    pub(crate) body_done: bool,
    /// Intrusive list of live tasks (insertion order).
    pub(crate) first_task: Option<TaskId>,
    pub(crate) last_task: Option<TaskId>,
    pub(crate) live_tasks: usize,
    /// Open child regions, in creation order.
    pub(crate) children: Vec<RegionId>,
    pub(crate) finalizer_task: Option<TaskId>,
    /// Finalizers were handed to a finalizer task that has not finished.
    pub(crate) finalizers_running: bool,
    /// The owner was masked for the finalizers (see `Kernel::mask_waiting_owner`).
    pub(crate) owner_masked: bool,
    pub(crate) close_waker: Option<Waker>,
    /// Whether someone (the region future, `block_on`) will collect the report.
    pub(crate) awaited: bool,
    pub(crate) report: RegionReport,
    /// Panicked children whose handle may still join them.
    pub(crate) pending_panics: Vec<(TaskId, PanicPayload)>,
    /// One grace timer for the tasks a region cancel cancelled together
    /// (they share a grace deadline): fires as `TimerEvent::RegionGrace`.
    pub(crate) grace_timer: Option<super::TimerKey>,
    /// The shared grace deadline of the region's cancelled tasks (K4): set
    /// by the first cancel, afterwards only ever moved earlier.
    pub(crate) grace_deadline: Option<crate::types::Time>,
    /// The budget deadline of a region whose deadline is tighter than its
    /// parent's: cancels the region with `Deadline` (kernel rule K9).
    pub(crate) deadline_timer: Option<super::TimerKey>,
    /// Its light tasks (rules LT1–LT6 in `light`): counted and listed
    /// here, outside the kernel lock, until the kernel registers them.
    pub(crate) light: std::sync::Arc<super::LightTasks>,
}

impl RegionRecord {
    pub(crate) fn new(
        id: RegionId,
        parent: Option<RegionId>,
        owner: Option<TaskId>,
        budget: Budget,
    ) -> Self {
        // LT4: a region with a budget of its own counts its tasks' polls.
        let light = super::LightTasks::new(id, budget == Budget::INFINITE);
        Self::with_set(parent, owner, budget, light)
    }

    /// The record of a region opened light (LR1), registered now: its set
    /// is the one it was opened with.
    pub(crate) fn with_set(
        parent: Option<RegionId>,
        owner: Option<TaskId>,
        budget: Budget,
        light: std::sync::Arc<super::LightTasks>,
    ) -> Self {
        Self {
            parent,
            owner,
            state: RegionState::Open,
            cancel: None,
            budget,
            body_done: false,
            first_task: None,
            last_task: None,
            live_tasks: 0,
            children: Vec::new(),
            finalizer_task: None,
            finalizers_running: false,
            owner_masked: false,
            close_waker: None,
            awaited: true,
            report: RegionReport::default(),
            pending_panics: Vec::new(),
            grace_timer: None,
            grace_deadline: None,
            deadline_timer: None,
            light,
        }
    }

    /// Advances to the next state (rule 1).
    pub(crate) fn advance(&mut self, id: RegionId) {
        let next = self
            .state
            .successor()
            .unwrap_or_else(|| panic!("region {id}: cannot advance past Closed"));
        self.state = next;
    }

    /// Rule 2: body done, no live task, no open child region. The light
    /// tasks are checked, and the gate shut, last (LT3): only when the
    /// rest is quiescent, since sealing stops light spawns for good.
    pub(crate) fn is_quiescent(&self) -> bool {
        self.body_done
            && self.live_tasks == 0
            && self.children.is_empty()
            && self.light.seal_if_empty()
    }
}
