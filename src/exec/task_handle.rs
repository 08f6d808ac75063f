//! [`TaskHandle`], [`Join`], [`JoinMut`]: joining and aborting a task
//! through its join slot (`join`, rules J1–J4; J2 is upheld here, by
//! `TaskHandle`'s drop). Above `cx`, since joining observes the joiner's
//! cancellation.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::abort::AbortHandle;
use super::cx::Cx;
use super::join::{JoinError, JoinTarget};
use crate::types::{CancelReason, TaskId};

/// A handle to a spawned task: join it, abort it, or ask whether it is done.
///
/// Dropping the handle does not cancel or detach the task: its region still
/// owns it and waits for it before closing (rule J2). If the task panics and
/// its handle is dropped without joining, the panic fails the region (J3).
#[must_use = "dropping a TaskHandle keeps the task running in its region, but an unjoined panic will fail the region"]
pub struct TaskHandle<T> {
    id: TaskId,
    target: Arc<dyn JoinTarget<T>>,
}

impl<T: Send + 'static> TaskHandle<T> {
    pub(crate) fn new(id: TaskId, target: Arc<dyn JoinTarget<T>>) -> Self {
        Self { id, target }
    }

    /// The task's id.
    pub fn task_id(&self) -> TaskId {
        self.id
    }

    /// Whether the task has completed (its output may not be taken yet).
    pub fn is_finished(&self) -> bool {
        super::join::JoinSlot::<T>::is_finished(self.target.state())
    }

    /// Requests cancellation with a `User` reason.
    pub fn abort(&self) {
        self.abort_with(CancelReason::new(crate::types::CancelKind::User));
    }

    /// Requests cancellation with `reason`. Repeated requests only
    /// strengthen the reason.
    pub fn abort_with(&self, reason: CancelReason) {
        self.target.abort_with(reason);
    }

    /// Waits for the task and returns its output.
    ///
    /// A task that *observed* its cancellation (a checkpoint or a
    /// cancel-aware wait returned its cancelled error) joins as
    /// `Err(JoinError::Cancelled(reason))` even if it then returned a value:
    /// the value was computed while cleaning up and is dropped. A task that
    /// was asked to cancel but finished without ever observing the request
    /// joins with its value (`Ok`). A task dropped unpolled (cancelled before
    /// its first poll) or force-dropped after its grace period joins as
    /// `Cancelled` too.
    ///
    /// # Cancellation
    /// The wait is cancel-aware. If the *joining* task is cancelled while
    /// waiting, `join` returns `Err(JoinError::Cancelled(reason))` with the
    /// joiner's own reason; the joined task is not cancelled by this (its
    /// region still owns it) and its output is dropped when it finishes.
    /// An output that is already available is always returned, even to a
    /// cancelled joiner.
    pub fn join(self, cx: &Cx) -> Join<T> {
        Join {
            handle: self,
            cx: cx.clone(),
        }
    }
}

impl<T> Drop for TaskHandle<T> {
    fn drop(&mut self) {
        let region = self.target.region();
        self.target.slot().release_handle(
            self.target.state(),
            self.target.output(),
            self.target.core(),
            self.id,
            region,
        );
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("task", &self.id)
            .finish()
    }
}

/// The future returned by [`TaskHandle::join`].
#[must_use = "futures do nothing unless awaited"]
pub struct Join<T> {
    handle: TaskHandle<T>,
    cx: Cx,
}

impl<T: Send + 'static> Future for Join<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.handle.poll_join_as(&this.cx, cx.waker())
    }
}

impl<T> fmt::Debug for Join<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("task", &self.handle.id)
            .finish()
    }
}

impl<T: Send + 'static> TaskHandle<T> {
    /// One poll of a join by the task of `joiner`: the output if it is
    /// there (even for a cancelled joiner), else the joiner's cancellation,
    /// else `Pending` with `waker` registered.
    fn poll_join_as(&self, joiner: &Cx, waker: &Waker) -> Poll<Result<T, JoinError>> {
        let target = &self.target;
        if let Poll::Ready(out) = target.slot().poll_join(
            target.state(),
            target.output(),
            target.core(),
            self.id,
            target.region(),
            waker,
        ) {
            return Poll::Ready(out);
        }
        match joiner.observe_cancel() {
            Some(reason) => Poll::Ready(Err(JoinError::Cancelled(reason))),
            None => Poll::Pending,
        }
    }
}

// ----- abort handles and joining by reference --------------------------------

impl<T: Send + 'static> TaskHandle<T> {
    /// A cloneable [`AbortHandle`](AbortHandle) for this task: it can
    /// abort the task and ask whether it finished from anywhere, without
    /// owning this handle (which alone can join).
    pub fn abort_handle(&self) -> AbortHandle {
        let target: Arc<dyn super::abort::AbortTarget> = self.target.clone();
        AbortHandle::new(self.id, Arc::downgrade(&target))
    }

    /// Waits for the task without consuming the handle: for joining from a
    /// `select` loop, where a wait that loses a round must leave the handle
    /// usable.
    ///
    /// Once it has returned the task's result (`Ok`, or the task's own
    /// `Err`), the handle is spent: joining it again panics (rule J1, the
    /// output is delivered once); [`is_finished`](Self::is_finished) tells
    /// whether a join would return at once. A wait that ends because the
    /// *joiner* was cancelled, or that is dropped, leaves the handle as it
    /// was.
    ///
    /// # Cancellation
    /// As for [`join`](Self::join): if the joining task is cancelled while
    /// waiting, this returns `Err(JoinError::Cancelled(reason))` with the
    /// joiner's reason and the joined task is not affected; the handle can
    /// still be joined (e.g. in the joiner's cleanup, where cancellation is
    /// already acknowledged and an available output is returned at once).
    pub fn join_mut<'a>(&'a mut self, cx: &'a Cx) -> JoinMut<'a, T> {
        JoinMut { handle: self, cx }
    }
}

/// The future returned by [`TaskHandle::join_mut`].
#[must_use = "futures do nothing unless awaited"]
pub struct JoinMut<'a, T> {
    handle: &'a mut TaskHandle<T>,
    cx: &'a Cx,
}

impl<T: Send + 'static> Future for JoinMut<'_, T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.handle.poll_join_as(this.cx, cx.waker())
    }
}

impl<T> fmt::Debug for JoinMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinMut")
            .field("task", &self.handle.id)
            .finish()
    }
}
