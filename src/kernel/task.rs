//! Task records and the task lifecycle state machine.
//!
//! ```text
//! Created ──► Running ──► CancelRequested ──► Cancelling ──► Finalizing ──► Completed
//!    │           │               │                               ▲
//!    │           └───────────────┴───────────────────────────────┤
//!    └──► CancelRequested (cancel before the first poll)         │
//! ```
//!
//! Rules:
//! 1. Only the transitions in [`TaskState::can_transition_to`] happen; any
//!    other is a kernel bug and panics naming both states.
//! 2. `CancelRequested` is entered at most once; later requests only
//!    strengthen the stored reason.
//! 3. `Cancelling` (acknowledged) is entered only from `CancelRequested`, and
//!    installs the reason's cleanup budget.
//! 4. Every task ends in `Completed`, reached only through `Finalizing`.

use std::task::Waker;

use super::TimerKey;
use crate::types::{Budget, CancelReason, ForceDropCause, RegionId, TaskId};

/// Lifecycle state of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskState {
    /// Spawned, never polled.
    Created,
    /// Polled at least once; no cancellation requested.
    Running,
    /// Cancellation requested, not yet observed by the task.
    CancelRequested,
    /// The task observed cancellation and is running its cleanup.
    Cancelling,
    /// The future is finished or dropped; resources are being released.
    Finalizing,
    /// Done; the outcome is recorded.
    Completed,
}

impl TaskState {
    /// The legal transition table (rule 1).
    pub fn can_transition_to(self, next: TaskState) -> bool {
        use TaskState::*;
        matches!(
            (self, next),
            (Created, Running)
                | (Created, CancelRequested)
                | (Running, CancelRequested)
                | (Running, Finalizing)
                | (CancelRequested, Cancelling)
                | (CancelRequested, Finalizing)
                | (Cancelling, Finalizing)
                | (Finalizing, Completed)
        )
    }

    /// Whether cancellation has been requested (in any later state too).
    pub fn is_cancel_requested(self) -> bool {
        matches!(self, TaskState::CancelRequested | TaskState::Cancelling)
    }
}

/// What role a task plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskKind {
    /// A task spawned through `Cx::spawn`.
    Spawned,
    /// The body of `block_on`; its completion ends the root region's body.
    RootBody,
    /// Runs a closing region's finalizers; masked and never cancelled.
    Finalizer,
}

/// How a task's future ended, as reported by the driver.
#[derive(Debug)]
pub(crate) enum TaskEnd {
    /// The future returned a value.
    Returned,
    /// The future panicked.
    Panicked(crate::types::PanicPayload),
    /// The runtime dropped the future (cancelled before its first poll, or
    /// its cleanup grace period ran out).
    Dropped,
}

/// The kernel's record of one task.
pub(crate) struct TaskRecord {
    pub(crate) region: RegionId,
    pub(crate) kind: TaskKind,
    pub(crate) state: TaskState,
    /// Schedules the task; used to make a parked task observe cancellation.
    pub(crate) waker: Waker,
    /// Tells the task's cell that its next poll must go through
    /// `Kernel::before_poll` (rule A1 in `kernel/mod.rs`).
    pub(crate) attention: Option<std::sync::Arc<dyn super::Attention>>,
    /// Shared with the other tasks of a cancelled region (no deep copy
    /// per task).
    pub(crate) cancel: Option<std::sync::Arc<CancelReason>>,
    pub(crate) mask_depth: u32,
    pub(crate) budget: Budget,
    pub(crate) polls: u32,
    /// When the task was last polled (spawn time before its first poll).
    pub(crate) last_polled: crate::types::Time,
    pub(crate) cost: u64,
    /// The task has an entry in the kernel's grace queue (K4; `timers.rs`).
    pub(crate) in_grace_queue: bool,
    pub(crate) grace_deadline: Option<crate::types::Time>,
    pub(crate) deadline_timer: Option<TimerKey>,
    /// Runs code that cannot be interrupted (a blocking closure): never
    /// force-dropped when its grace period expires.
    pub(crate) uninterruptible: bool,
    /// Set when the runtime must drop the future instead of polling it.
    pub(crate) force_drop: Option<ForceDropCause>,
    /// Regions whose body runs inside this task's future.
    pub(crate) owned_regions: Vec<RegionId>,
    /// The root body's obligation home (rules OB1–OB9 in
    /// `kernel::obligation`), swept when it completes; a spawned task's is
    /// in its cell, reached through `attention`.
    pub(crate) obligation_home: Option<std::sync::Arc<dyn super::HomeHost>>,
    /// Intrusive sibling list within the region (insertion order).
    pub(crate) prev: Option<TaskId>,
    pub(crate) next: Option<TaskId>,
}

impl TaskRecord {
    /// The task's obligation home (rule OB4: swept when it completes).
    pub(crate) fn obligation_home(&self) -> Option<&super::ObligationHome> {
        match &self.obligation_home {
            Some(root) => Some(root.obligation_home()),
            None => self.attention.as_deref().and_then(|a| a.obligation_home()),
        }
    }

    pub(crate) fn new(region: RegionId, kind: TaskKind, waker: Waker, budget: Budget) -> Self {
        Self {
            region,
            kind,
            state: TaskState::Created,
            waker,
            attention: None,
            cancel: None,
            mask_depth: u32::from(kind == TaskKind::Finalizer),
            budget,
            polls: 0,
            last_polled: crate::types::Time::ZERO,
            cost: 0,
            in_grace_queue: false,
            grace_deadline: None,
            deadline_timer: None,
            uninterruptible: false,
            force_drop: None,
            owned_regions: Vec::new(),
            obligation_home: None,
            prev: None,
            next: None,
        }
    }

    /// Moves to `next`, enforcing rule 1.
    pub(crate) fn transition(&mut self, id: TaskId, next: TaskState) {
        assert!(
            self.state.can_transition_to(next),
            "task {id}: illegal state transition {:?} -> {:?} (kernel rule: task transitions follow the table in kernel::task)",
            self.state,
            next
        );
        self.state = next;
    }
}

#[cfg(test)]
mod tests {
    use super::TaskState::*;
    use super::*;

    const ALL: [TaskState; 6] = [
        Created,
        Running,
        CancelRequested,
        Cancelling,
        Finalizing,
        Completed,
    ];

    #[test]
    fn the_transition_table_is_exactly_the_documented_one() {
        let legal: Vec<(TaskState, TaskState)> = ALL
            .iter()
            .flat_map(|&a| ALL.iter().map(move |&b| (a, b)))
            .filter(|(a, b)| a.can_transition_to(*b))
            .collect();
        assert_eq!(
            legal,
            vec![
                (Created, Running),
                (Created, CancelRequested),
                (Running, CancelRequested),
                (Running, Finalizing),
                (CancelRequested, Cancelling),
                (CancelRequested, Finalizing),
                (Cancelling, Finalizing),
                (Finalizing, Completed),
            ]
        );
    }

    #[test]
    fn completed_is_terminal_and_finalizing_leads_only_to_completed() {
        assert!(ALL.iter().all(|&s| !Completed.can_transition_to(s)));
        assert!(
            ALL.iter()
                .filter(|&&s| Finalizing.can_transition_to(s))
                .eq([Completed].iter())
        );
    }
}
