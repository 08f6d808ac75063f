//! `Notify`: wake one waiting task, or all of them, without data.
//!
//! ```
//! use std::sync::Arc;
//! use asupersync::sync::Notify;
//! use asupersync::RuntimeBuilder;
//!
//! let rt = RuntimeBuilder::current_thread().build().unwrap();
//! rt.block_on(|cx| async move {
//!     let notify = Arc::new(Notify::new());
//!     let n = notify.clone();
//!     let waiter = cx
//!         .spawn(move |cx| async move { n.notified(&cx).await })
//!         .unwrap();
//!     notify.notify_one(); // wakes the waiter, or stores a permit for it
//!     assert!(waiter.join(&cx).await.unwrap().is_ok());
//! });
//! ```
//!
//! Rules:
//! 1. N1 (one permit): [`Notify::notify_one`] serves the oldest registered
//!    waiter; if nobody is waiting it stores a permit. At most one permit is
//!    stored: notifying twice with nobody waiting still lets only one later
//!    wait through.
//! 2. N2 (broadcast): [`Notify::notify_waiters`] serves every waiter that is
//!    registered at the time of the call, plus every [`Notified`] future
//!    *created* before the call and not yet polled; it stores no permit.
//!    This makes "create the future, check the condition, await" free of
//!    lost wake-ups.
//! 3. N3 (FIFO): waiters register on their first poll and are served by
//!    `notify_one` in registration order.
//! 4. N4 (cancellation): a wait that would block observes the task's
//!    cancellation (`Cx`): it returns `Err(Cancelled)` (acknowledging it)
//!    and leaves the queue without disturbing the others' order. A wait
//!    that finds itself already served when polled completes `Ok`, even if
//!    cancellation was requested meanwhile (the cancellation is then seen at
//!    the task's next checkpoint).
//! 5. N5 (no lost `notify_one`): a waiter served by `notify_one` that never
//!    returns it — dropped first (its task was dropped, it lost a race), or
//!    observing its cancellation in a race with the notification — passes
//!    it on: to the next waiter, or back into the permit. A
//!    `notify_waiters` notification is not passed on (it was meant for the
//!    waiters of that moment).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::waiters::{WaitQueue, WaiterKey, WaiterState};
use crate::exec::cx::Cx;
use crate::types::cancel::Cancelled;

/// Notifies one waiting task (storing a permit if none waits) or all of
/// them. See the [module docs](self) for the rules.
///
/// # Cancellation
/// The only await point is [`Notify::notified`] (alias [`Notify::wait`]):
/// cancel-aware, it returns `Err(Cancelled)` and leaves the queue; no
/// `notify_one` is ever lost to a cancelled or dropped waiter (N4, N5).
/// `notify_one` and `notify_waiters` never block.
pub struct Notify {
    state: Mutex<State>,
}

/// What a served waiter was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grant {
    /// A `notify_one`: passed on if the waiter is dropped uncollected (N5).
    One,
    /// A `notify_waiters`: not passed on.
    All,
}

struct State {
    permit: bool,
    /// How many `notify_waiters` calls happened so far (N2).
    broadcasts: u64,
    waiters: WaitQueue<(), Grant>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // No user code runs under the lock, so a poisoned lock still holds a
    // consistent state.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Notify {
    /// A `Notify` with no permit and no waiters.
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(State {
                permit: false,
                broadcasts: 0,
                waiters: WaitQueue::new(),
            }),
        }
    }

    /// Waits for a notification.
    ///
    /// The future registers as a waiter on its first poll (N3); it also
    /// completes if [`notify_waiters`](Self::notify_waiters) is called after
    /// it was created, even before it was polled (N2).
    ///
    /// # Cancellation
    /// One await point, cancel-aware: if the task is cancelled while the
    /// wait would block, it returns `Err(Cancelled)` (acknowledging the
    /// cancellation) and leaves the queue; a stored permit is not consumed.
    /// A waiter that is already served when polled returns `Ok(())` (N4).
    /// A `notify_one` handed to a waiter that then returns `Err` or is
    /// dropped is passed on (N5): none is lost.
    pub fn notified<'a>(&'a self, cx: &'a Cx) -> Notified<'a> {
        let broadcasts = lock(&self.state).broadcasts;
        Notified {
            notify: self,
            cx,
            broadcasts,
            stage: Stage::Init,
        }
    }

    /// The same as [`notified`](Self::notified).
    ///
    /// # Cancellation
    /// As for [`notified`](Self::notified).
    pub fn wait<'a>(&'a self, cx: &'a Cx) -> Notified<'a> {
        self.notified(cx)
    }

    /// Wakes the oldest waiter, or stores one permit if nobody waits (N1).
    pub fn notify_one(&self) {
        let waker = {
            let mut st = lock(&self.state);
            Self::dispatch_one(&mut st)
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn dispatch_one(st: &mut State) -> Option<Waker> {
        let waker = st.waiters.notify_front(Grant::One);
        if waker.is_none() {
            st.permit = true;
        }
        waker
    }

    /// Wakes every waiter registered now (and every [`Notified`] created
    /// before this call and not yet polled); stores no permit (N2).
    pub fn notify_waiters(&self) {
        let wakers = {
            let mut st = lock(&self.state);
            st.broadcasts += 1;
            st.waiters.notify_all(Grant::All)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Removes a waiter (cancelled or dropped); an uncollected `notify_one`
    /// goes to the next waiter or back into the permit (N5).
    fn leave(&self, key: WaiterKey) {
        let waker = {
            let mut st = lock(&self.state);
            match st.waiters.remove(key) {
                Some((_, Some(Grant::One))) => Self::dispatch_one(&mut st),
                _ => None,
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether a permit is stored.
    pub fn has_permit(&self) -> bool {
        lock(&self.state).permit
    }

    /// How many tasks are registered and not yet served.
    pub fn waiters(&self) -> usize {
        lock(&self.state).waiters.len()
    }
}

impl Default for Notify {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.state);
        f.debug_struct("Notify")
            .field("permit", &st.permit)
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

#[derive(Clone, Copy, Debug)]
enum Stage {
    Init,
    Waiting(WaiterKey),
    Done,
}

/// The future returned by [`Notify::notified`].
///
/// # Cancellation
/// See [`Notify::notified`]: dropping it leaves the queue and passes on a
/// `notify_one` it was handed but never returned.
#[must_use = "futures do nothing unless awaited; dropping a Notified that was \
              already served by notify_one passes the notification on"]
pub struct Notified<'a> {
    notify: &'a Notify,
    cx: &'a Cx,
    broadcasts: u64,
    stage: Stage,
}

impl Notified<'_> {
    /// Completes without blocking if a permit or a broadcast is available.
    fn try_now(&self, st: &mut State) -> bool {
        if st.broadcasts != self.broadcasts {
            return true;
        }
        std::mem::take(&mut st.permit)
    }
}

impl Future for Notified<'_> {
    type Output = Result<(), Cancelled>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.stage {
            Stage::Done => panic!("`Notified` polled after completion"),
            Stage::Init => {
                if this.try_now(&mut lock(&this.notify.state)) {
                    this.stage = Stage::Done;
                    return Poll::Ready(Ok(()));
                }
                // The wait would block: observe cancellation (outside our
                // lock: the kernel lock is never taken under it).
                if let Some(reason) = this.cx.observe_cancel() {
                    this.stage = Stage::Done;
                    return Poll::Ready(Err(Cancelled::new(reason)));
                }
                let mut st = lock(&this.notify.state);
                if this.try_now(&mut st) {
                    this.stage = Stage::Done;
                    return Poll::Ready(Ok(()));
                }
                let key = st.waiters.push_back(task_cx.waker().clone(), ());
                this.stage = Stage::Waiting(key);
                Poll::Pending
            }
            Stage::Waiting(key) => {
                {
                    let mut st = lock(&this.notify.state);
                    match st.waiters.state(key) {
                        Some(WaiterState::Notified(_)) => {
                            st.waiters.take_grant(key);
                            this.stage = Stage::Done;
                            return Poll::Ready(Ok(()));
                        }
                        Some(WaiterState::Waiting) => {
                            st.waiters.update_waker(key, task_cx.waker());
                        }
                        None => unreachable!("only this future removes its key"),
                    }
                }
                if let Some(reason) = this.cx.observe_cancel() {
                    // N4: acknowledged, so Err; a notify_one that raced in
                    // meanwhile is passed on (N5).
                    this.stage = Stage::Done;
                    this.notify.leave(key);
                    return Poll::Ready(Err(Cancelled::new(reason)));
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        if let Stage::Waiting(key) = self.stage {
            self.notify.leave(key);
        }
    }
}

impl fmt::Debug for Notified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notified")
            .field("stage", &self.stage)
            .finish()
    }
}

// Compile-time guarantees: a `Notify` can be shared across threads and its
// wait future can be held across await points of a `Send` task.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Notify>();
    send_sync::<Notified<'static>>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_permit_is_stored() {
        let n = Notify::new();
        n.notify_one();
        n.notify_one();
        assert!(n.has_permit());
        let mut st = lock(&n.state);
        assert!(std::mem::take(&mut st.permit));
        assert!(!st.permit);
    }

    #[test]
    fn notify_waiters_stores_no_permit() {
        let n = Notify::new();
        n.notify_waiters();
        assert!(!n.has_permit());
        assert_eq!(n.waiters(), 0);
    }
}
