//! `Barrier`: `n` tasks wait until all of them arrived, then all proceed;
//! one of them is elected leader.
//!
//! ```
//! use std::sync::Arc;
//! use asupersync::sync::Barrier;
//! use asupersync::RuntimeBuilder;
//!
//! let rt = RuntimeBuilder::current_thread().build().unwrap();
//! let leaders = rt.block_on(|cx| async move {
//!     let barrier = Arc::new(Barrier::new(3));
//!     let mut handles = Vec::new();
//!     for _ in 0..3 {
//!         let b = barrier.clone();
//!         handles.push(
//!             cx.spawn(move |cx| async move { b.wait(&cx).await.unwrap().is_leader() })
//!                 .unwrap(),
//!         );
//!     }
//!     let mut leaders = 0;
//!     for h in handles {
//!         leaders += usize::from(h.join(&cx).await.unwrap());
//!     }
//!     leaders
//! });
//! assert_eq!(leaders, 1);
//! ```
//!
//! Rules:
//! 1. B1 (generations): arrivals are counted per generation. The `n`-th
//!    arrival completes the generation: every waiter of that generation is
//!    released (in arrival order, FIFO), the count restarts at zero and the
//!    generation number increases by one. A `Barrier` is reusable.
//! 2. B2 (one leader): exactly one wait per completed generation returns a
//!    result with [`BarrierWaitResult::is_leader`] — the arrival that
//!    completed it, which does not block.
//! 3. B3 (a cancelled waiter leaves): a wait that is cancelled (or dropped)
//!    before its generation completed withdraws its arrival, so the
//!    generation still needs `n` *live* arrivals; the other waiters keep
//!    waiting, undisturbed.
//! 4. B4 (served wins): a waiter whose generation completed returns `Ok`
//!    even if its task was cancelled meanwhile (its arrival was counted and
//!    the others proceeded; the cancellation is seen at the task's next
//!    checkpoint). Dropping such a waiter before it observed the release
//!    changes nothing for the others.
//! 5. B5 (arrival on first poll): a [`BarrierWait`] arrives when it is first
//!    polled, not when it is created; a future that is never polled never
//!    arrives.
//! 6. `Barrier::new(0)` behaves like `Barrier::new(1)`: every wait is its
//!    own generation and leader.
//!
//! The queue is intrusive (`sync::waiters`, WL1–WL6): a waiter's node lives
//! inside its pinned [`BarrierWait`], so a waiting task costs nothing in the
//! `Barrier`, and [`BarrierWait`] is `!Unpin`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::waiters::{Left, WaitGuard, WaitLock, Waiter, WakeList};
use crate::exec::cx::Cx;
use crate::types::cancel::Cancelled;

/// A reusable barrier for `n` tasks with leader election. See the
/// [module docs](self) for the rules.
///
/// # Cancellation
/// The only await point is [`Barrier::wait`]: cancel-aware; a cancelled or
/// dropped wait withdraws its arrival (B3), a wait whose generation already
/// completed returns `Ok` (B4).
pub struct Barrier {
    /// The state and the intrusive queue of the current generation's
    /// waiters (`sync::waiters`, WL1–WL6: each node lives in its
    /// [`BarrierWait`]); the grant is the generation that released them.
    lock: WaitLock<State, (), u64>,
}

struct State {
    /// Arrivals per generation (at least 1).
    parties: usize,
    /// Live arrivals in the current generation (waiting, not yet released).
    arrived: usize,
    generation: u64,
}

type Guard<'a> = WaitGuard<'a, State, (), u64>;

/// What a completed [`Barrier::wait`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BarrierWaitResult {
    leader: bool,
    generation: u64,
}

impl BarrierWaitResult {
    /// Whether this wait was elected leader of its generation: exactly one
    /// per generation (B2).
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The generation this wait took part in (0 for the first).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

const fn state(n: usize) -> State {
    State {
        parties: if n == 0 { 1 } else { n },
        arrived: 0,
        generation: 0,
    }
}

impl Barrier {
    /// A barrier that releases its waiters once `n` of them arrived
    /// (`n == 0` behaves like `n == 1`).
    #[cfg(not(all(test, loom)))]
    pub const fn new(n: usize) -> Self {
        Self {
            lock: WaitLock::new(state(n)),
        }
    }

    /// A barrier that releases its waiters once `n` of them arrived
    /// (`n == 0` behaves like `n == 1`; loom's lock: not `const`).
    #[cfg(all(test, loom))]
    pub fn new(n: usize) -> Self {
        Self {
            lock: WaitLock::new(state(n)),
        }
    }

    /// Arrives at the barrier and waits until the current generation has `n`
    /// live arrivals (B1, B5).
    ///
    /// # Cancellation
    /// One await point, cancel-aware: if the task is cancelled while it
    /// waits for the others, the wait returns `Err(Cancelled)`
    /// (acknowledging the cancellation) and its arrival is withdrawn — the
    /// generation still needs `n` live arrivals (B3). Dropping the future
    /// while it waits also withdraws the arrival. A wait whose generation
    /// already completed returns `Ok` (B4) — even if it observed the
    /// cancellation in a race with the release, since its counted arrival
    /// cannot be taken back from a generation that proceeded. The arrival
    /// that completes a generation never blocks, so it is never cancelled.
    pub fn wait<'a>(&'a self, cx: &'a Cx) -> BarrierWait<'a> {
        BarrierWait {
            waiter: Waiter::new(&self.lock, ()),
            cx,
        }
    }

    /// How many arrivals the barrier needs per generation.
    pub fn parties(&self) -> usize {
        self.lock.lock().parties
    }

    /// Live arrivals waiting in the current generation.
    pub fn waiting(&self) -> usize {
        self.lock.lock().arrived
    }

    /// The current generation (how many generations completed so far).
    pub fn generation(&self) -> u64 {
        self.lock.lock().generation
    }
}

/// Counts one arrival; if it completes the generation, releases it and
/// returns the leader's result and the wakers to wake after unlocking.
fn arrive_and_release(st: &mut Guard<'_>) -> Option<(BarrierWaitResult, WakeList)> {
    if st.arrived + 1 < st.parties {
        return None;
    }
    let generation = st.generation;
    st.generation += 1;
    st.arrived = 0;
    let wakers = st.notify_all(generation);
    debug_assert_eq!(st.len(), 0);
    Some((
        BarrierWaitResult {
            leader: true,
            generation,
        },
        wakers,
    ))
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock.lock();
        f.debug_struct("Barrier")
            .field("parties", &st.parties)
            .field("waiting", &st.arrived)
            .field("generation", &st.generation)
            .finish()
    }
}

pin_project! {
    /// The future returned by [`Barrier::wait`].
    ///
    /// It holds its own place in the queue (the waiter's node), so it is
    /// `!Unpin`: pin it (`.await`, `pin!`, `Box::pin`) to poll it.
    ///
    /// # Cancellation
    /// See [`Barrier::wait`]: dropping it before its generation completed
    /// withdraws its arrival.
    #[must_use = "futures do nothing unless awaited; a BarrierWait arrives on its first poll, \
                  and dropping it before its generation completes withdraws the arrival"]
    pub struct BarrierWait<'a> {
        #[pin]
        waiter: Waiter<'a, State, (), u64>,
        cx: &'a Cx,
    }

    impl PinnedDrop for BarrierWait<'_> {
        fn drop(this: Pin<&mut Self>) {
            let waiter = this.project().waiter.into_ref();
            if !waiter.is_registered() {
                return;
            }
            let mut st = waiter.lock();
            if st.leave() == Left::Waiting {
                // B3: still waiting, so it leaves the count. (Served but
                // uncollected: the generation completed; nothing to undo.)
                st.arrived -= 1;
            }
        }
    }
}

fn release(result: BarrierWaitResult, wakers: WakeList) -> BarrierWaitResult {
    wakers.wake();
    result
}

fn follower(generation: u64) -> BarrierWaitResult {
    BarrierWaitResult {
        leader: false,
        generation,
    }
}

impl Future for BarrierWait<'_> {
    type Output = Result<BarrierWaitResult, Cancelled>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let waiter = this.waiter.into_ref();
        if waiter.is_finished() {
            panic!("`BarrierWait` polled after completion");
        }
        if !waiter.is_registered() {
            let released = arrive_and_release(&mut waiter.lock());
            if let Some((result, wakers)) = released {
                waiter.finish();
                return Poll::Ready(Ok(release(result, wakers)));
            }
            // The wait would block: observe cancellation first (outside
            // our lock), so a cancelled task never arrives.
            if let Some(reason) = this.cx.observe_cancel() {
                waiter.finish();
                return Poll::Ready(Err(Cancelled::new(reason)));
            }
            let mut st = waiter.lock();
            if let Some((result, wakers)) = arrive_and_release(&mut st) {
                drop(st);
                waiter.finish();
                return Poll::Ready(Ok(release(result, wakers)));
            }
            st.arrived += 1;
            st.register(task_cx.waker());
            return Poll::Pending;
        }
        let served = waiter.lock().poll_grant(task_cx.waker());
        if let Some(generation) = served {
            waiter.finish();
            return Poll::Ready(Ok(follower(generation)));
        }
        if let Some(reason) = this.cx.observe_cancel() {
            let outcome = {
                let mut st = waiter.lock();
                match st.leave() {
                    // B4: the generation completed meanwhile.
                    Left::Notified(generation) => Ok(follower(generation)),
                    Left::Waiting | Left::Unregistered => {
                        // B3: withdraw the arrival.
                        st.arrived -= 1;
                        Err(Cancelled::new(reason))
                    }
                }
            };
            waiter.finish();
            return Poll::Ready(outcome);
        }
        Poll::Pending
    }
}

impl fmt::Debug for BarrierWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWait")
            .field("waiter", &self.waiter)
            .finish()
    }
}

// Compile-time guarantees: shareable across threads, and the wait future
// can be held across await points of a `Send` task.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Barrier>();
    send_sync::<BarrierWait<'static>>();
    send_sync::<BarrierWaitResult>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_parties_behaves_like_one() {
        assert_eq!(Barrier::new(0).parties(), 1);
    }
}
