//! `AbortHandle`: cancel a task from anywhere without owning its
//! `TaskHandle`.

use std::fmt;
use std::sync::Weak;

use crate::types::{CancelKind, CancelReason, TaskId};

/// What can be aborted: a task cell, without its output type. A light task
/// (rule LT7 in `kernel::light`) stores the request in its cell; any
/// other goes through the kernel.
pub(crate) trait AbortTarget: Send + Sync {
    /// Requests the task's cancellation with `reason` (K3: repeated
    /// requests only strengthen it).
    fn abort_with(&self, reason: CancelReason);

    /// Whether the task has completed: its cell's lifecycle is COMPLETE
    /// (SW2, set before the kernel hears of the completion), read without
    /// a lock.
    fn is_finished(&self) -> bool;
}

/// A cloneable handle that can request a task's cancellation and ask
/// whether it finished, from any thread; it cannot join the task. Get one
/// from [`TaskHandle::abort_handle`](super::TaskHandle::abort_handle).
///
/// It does not keep the task's output alive, and dropping it does nothing.
/// Aborting a task that already finished does nothing.
#[derive(Clone)]
pub struct AbortHandle {
    id: TaskId,
    /// The task's cell, while it exists (a cell is dropped only once its
    /// task has completed, or with the runtime): the handle does not keep
    /// it, nor the task's output, alive.
    target: Weak<dyn AbortTarget>,
}

impl AbortHandle {
    pub(crate) fn new(id: TaskId, target: Weak<dyn AbortTarget>) -> Self {
        Self { id, target }
    }

    /// The task's id.
    pub fn task_id(&self) -> TaskId {
        self.id
    }

    /// Requests cancellation with a `User` reason (as
    /// [`TaskHandle::abort`](super::TaskHandle::abort)).
    pub fn abort(&self) {
        self.abort_with(CancelReason::new(CancelKind::User));
    }

    /// Requests cancellation with `reason`. Repeated requests only
    /// strengthen the reason.
    pub fn abort_with(&self, reason: CancelReason) {
        if let Some(target) = self.target.upgrade() {
            target.abort_with(reason);
        }
    }

    /// Whether the task has completed (its future returned, panicked or
    /// was dropped; a `TaskHandle` reports it a moment later, once the
    /// output is stored). Takes no lock: it reads the task cell's state
    /// word, or finds the cell gone (a cell is dropped only once its task
    /// has completed, or with the runtime).
    pub fn is_finished(&self) -> bool {
        self.target
            .upgrade()
            .is_none_or(|target| target.is_finished())
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("task", &self.id)
            .finish()
    }
}

const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<AbortHandle>();
};
