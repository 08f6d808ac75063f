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
//!    lost wake-ups. (The future remembers the count of `notify_waiters`
//!    calls modulo 2^32: only exactly a multiple of 2^32 calls between its
//!    creation and its first poll would go unseen.)
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
//!
//! The queue is intrusive (`sync::waiters`, WL1–WL6): a waiter's node
//! (links, waker, grant) lives inside its pinned [`Notified`] future, so a
//! parked task costs nothing in the `Notify`, and [`Notified`] is `!Unpin`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use super::waiters::{Left, WaitGuard, WaitLock, Waiter, WaiterGuard};
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
    /// The state and the intrusive queue of waiters (`sync::waiters`,
    /// WL1–WL6): each waiter's node lives in its [`Notified`] future, so a
    /// parked task costs nothing here. A node carries the broadcast count
    /// its future was created at (N2).
    lock: WaitLock<State, u32, Grant>,
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
    /// How many `notify_waiters` calls happened so far, modulo 2^32 (N2:
    /// a future created before a call sees a different count when it is
    /// first polled, unless exactly a multiple of 2^32 calls came between).
    broadcasts: u32,
}

type Guard<'a> = WaitGuard<'a, State, u32, Grant>;

impl Notify {
    /// A `Notify` with no permit and no waiters.
    #[cfg(not(all(test, loom)))]
    pub const fn new() -> Self {
        Self {
            lock: WaitLock::new(State {
                permit: false,
                broadcasts: 0,
            }),
        }
    }

    /// A `Notify` with no permit and no waiters (loom's lock: not `const`).
    #[cfg(all(test, loom))]
    pub fn new() -> Self {
        Self {
            lock: WaitLock::new(State {
                permit: false,
                broadcasts: 0,
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
        let broadcasts = self.lock.lock().broadcasts;
        Notified {
            waiter: Waiter::new(&self.lock, broadcasts),
            cx,
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
        let waker = dispatch_one(&mut self.lock.lock());
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Wakes every waiter registered now (and every [`Notified`] created
    /// before this call and not yet polled); stores no permit (N2).
    pub fn notify_waiters(&self) {
        let wakers = {
            let mut st = self.lock.lock();
            st.broadcasts = st.broadcasts.wrapping_add(1);
            st.notify_all(Grant::All)
        };
        wakers.wake();
    }

    /// Whether a permit is stored.
    pub fn has_permit(&self) -> bool {
        self.lock.lock().permit
    }

    /// How many tasks are registered and not yet served.
    pub fn waiters(&self) -> usize {
        self.lock.lock().len()
    }
}

/// Serves the oldest waiter with a `notify_one`, or stores the permit
/// (N1); the waker is to be woken after the lock is released.
fn dispatch_one(st: &mut Guard<'_>) -> Option<Waker> {
    let waker = st.notify_front(Grant::One);
    if waker.is_none() {
        st.permit = true;
    }
    waker
}

/// Completes without blocking if a permit or a broadcast is available.
fn try_now(st: &mut Guard<'_>, broadcasts: u32) -> bool {
    if st.broadcasts != broadcasts {
        return true;
    }
    std::mem::take(&mut st.permit)
}

impl Default for Notify {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock.lock();
        f.debug_struct("Notify")
            .field("permit", &st.permit)
            .field("waiters", &st.len())
            .finish()
    }
}

pin_project! {
    /// The future returned by [`Notify::notified`].
    ///
    /// It holds its own place in the queue (the waiter's node, linked while
    /// it waits), so it is `!Unpin`: pin it (`.await`, `pin!`, `Box::pin`)
    /// to poll it.
    ///
    /// # Cancellation
    /// See [`Notify::notified`]: dropping it leaves the queue and passes on a
    /// `notify_one` it was handed but never returned.
    #[must_use = "futures do nothing unless awaited; dropping a Notified that was \
                  already served by notify_one passes the notification on"]
    pub struct Notified<'a> {
        #[pin]
        waiter: Waiter<'a, State, u32, Grant>,
        cx: &'a Cx,
    }

    impl PinnedDrop for Notified<'_> {
        fn drop(this: Pin<&mut Self>) {
            let waiter = this.project().waiter.into_ref();
            if waiter.is_registered() {
                leave(waiter);
            }
        }
    }
}

/// Takes a registered waiter out of the queue; a `notify_one` it was handed
/// and never returned goes to the next waiter or back into the permit (N5).
fn leave(waiter: Pin<&Waiter<'_, State, u32, Grant>>) {
    let waker = {
        let mut st = waiter.lock();
        match st.leave() {
            Left::Notified(Grant::One) => dispatch_one(&mut st),
            Left::Notified(Grant::All) | Left::Waiting | Left::Unregistered => None,
        }
    };
    if let Some(w) = waker {
        w.wake();
    }
}

/// An unregistered waiter completes at once if a permit or a broadcast is
/// there (`None`: it is finished); otherwise its state comes back locked,
/// to register under that lock.
fn take_now<'w>(
    waiter: Pin<&'w Waiter<'_, State, u32, Grant>>,
) -> Option<WaiterGuard<'w, State, u32, Grant>> {
    let mut st = waiter.lock();
    let created_at = *st.data();
    if try_now(&mut st, created_at) {
        drop(st);
        waiter.finish();
        return None;
    }
    Some(st)
}

impl Future for Notified<'_> {
    type Output = Result<(), Cancelled>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let waiter = this.waiter.into_ref();
        if waiter.is_finished() {
            panic!("`Notified` polled after completion");
        }
        if !waiter.is_registered() {
            if take_now(waiter).is_none() {
                return Poll::Ready(Ok(()));
            }
            // The wait would block: observe cancellation (outside our
            // lock: the kernel lock is never taken under it).
            if let Some(reason) = this.cx.observe_cancel() {
                waiter.finish();
                return Poll::Ready(Err(Cancelled::new(reason)));
            }
            // Looked at again: a notify may have come meanwhile.
            return match take_now(waiter) {
                None => Poll::Ready(Ok(())),
                Some(mut st) => {
                    st.register(task_cx.waker());
                    Poll::Pending
                }
            };
        }
        // Registered: collect a grant, or refresh the waker.
        if waiter.lock().poll_grant(task_cx.waker()).is_some() {
            waiter.finish();
            return Poll::Ready(Ok(()));
        }
        if let Some(reason) = this.cx.observe_cancel() {
            // N4: acknowledged, so Err; a notify_one that raced in
            // meanwhile is passed on (N5).
            leave(waiter);
            waiter.finish();
            return Poll::Ready(Err(Cancelled::new(reason)));
        }
        Poll::Pending
    }
}

impl fmt::Debug for Notified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notified")
            .field("waiter", &self.waiter)
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
        let mut st = n.lock.lock();
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
