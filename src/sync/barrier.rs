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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use super::waiters::{WaitQueue, WaiterKey, WaiterState, WakeList};
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
    n: usize,
    state: Mutex<State>,
}

struct State {
    /// Live arrivals in the current generation (waiting, not yet released).
    arrived: usize,
    generation: u64,
    /// Waiters of the current generation; the grant is the generation that
    /// released them.
    waiters: WaitQueue<(), u64>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // No user code runs under the lock: a poisoned state is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

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

impl Barrier {
    /// A barrier that releases its waiters once `n` of them arrived
    /// (`n == 0` behaves like `n == 1`).
    pub const fn new(n: usize) -> Self {
        Self {
            n: if n == 0 { 1 } else { n },
            state: Mutex::new(State {
                arrived: 0,
                generation: 0,
                waiters: WaitQueue::new(),
            }),
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
            barrier: self,
            cx,
            stage: Stage::Init,
        }
    }

    /// How many arrivals the barrier needs per generation.
    pub fn parties(&self) -> usize {
        self.n
    }

    /// Live arrivals waiting in the current generation.
    pub fn waiting(&self) -> usize {
        lock(&self.state).arrived
    }

    /// The current generation (how many generations completed so far).
    pub fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    /// Counts one arrival; if it completes the generation, releases it and
    /// returns the leader's result and the wakers to wake after unlocking.
    fn arrive_and_release(&self, st: &mut State) -> Option<(BarrierWaitResult, WakeList)> {
        if st.arrived + 1 < self.n {
            return None;
        }
        let generation = st.generation;
        st.generation += 1;
        st.arrived = 0;
        let wakers = st.waiters.notify_all(generation);
        debug_assert!(st.waiters.is_empty());
        Some((
            BarrierWaitResult {
                leader: true,
                generation,
            },
            wakers,
        ))
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.state);
        f.debug_struct("Barrier")
            .field("parties", &self.n)
            .field("waiting", &st.arrived)
            .field("generation", &st.generation)
            .finish()
    }
}

#[derive(Clone, Copy, Debug)]
enum Stage {
    Init,
    Waiting(WaiterKey),
    Done,
}

/// The future returned by [`Barrier::wait`].
///
/// # Cancellation
/// See [`Barrier::wait`]: dropping it before its generation completed
/// withdraws its arrival.
#[must_use = "futures do nothing unless awaited; a BarrierWait arrives on its first poll, \
              and dropping it before its generation completes withdraws the arrival"]
pub struct BarrierWait<'a> {
    barrier: &'a Barrier,
    cx: &'a Cx,
    stage: Stage,
}

fn release(result: BarrierWaitResult, wakers: WakeList) -> BarrierWaitResult {
    wakers.wake();
    result
}

impl Future for BarrierWait<'_> {
    type Output = Result<BarrierWaitResult, Cancelled>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let barrier = this.barrier;
        match this.stage {
            Stage::Done => panic!("`BarrierWait` polled after completion"),
            Stage::Init => {
                let released = barrier.arrive_and_release(&mut lock(&barrier.state));
                if let Some((result, wakers)) = released {
                    this.stage = Stage::Done;
                    return Poll::Ready(Ok(release(result, wakers)));
                }
                // The wait would block: observe cancellation first (outside
                // our lock), so a cancelled task never arrives.
                if let Some(reason) = this.cx.observe_cancel() {
                    this.stage = Stage::Done;
                    return Poll::Ready(Err(Cancelled::new(reason)));
                }
                let mut st = lock(&barrier.state);
                if let Some((result, wakers)) = barrier.arrive_and_release(&mut st) {
                    drop(st);
                    this.stage = Stage::Done;
                    return Poll::Ready(Ok(release(result, wakers)));
                }
                st.arrived += 1;
                let key = st.waiters.push_back(task_cx.waker().clone(), ());
                this.stage = Stage::Waiting(key);
                Poll::Pending
            }
            Stage::Waiting(key) => {
                let follower = |generation| BarrierWaitResult {
                    leader: false,
                    generation,
                };
                {
                    let mut st = lock(&barrier.state);
                    match st.waiters.state(key) {
                        Some(WaiterState::Notified(_)) => {
                            let generation = st.waiters.take_grant(key).expect("notified");
                            this.stage = Stage::Done;
                            return Poll::Ready(Ok(follower(generation)));
                        }
                        Some(WaiterState::Waiting) => {
                            st.waiters.update_waker(key, task_cx.waker());
                        }
                        None => unreachable!("only this future removes its key"),
                    }
                }
                if let Some(reason) = this.cx.observe_cancel() {
                    this.stage = Stage::Done;
                    let mut st = lock(&barrier.state);
                    return Poll::Ready(match st.waiters.remove(key) {
                        // B4: the generation completed meanwhile.
                        Some((_, Some(generation))) => Ok(follower(generation)),
                        _ => {
                            // B3: withdraw the arrival.
                            st.arrived -= 1;
                            Err(Cancelled::new(reason))
                        }
                    });
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for BarrierWait<'_> {
    fn drop(&mut self) {
        let Stage::Waiting(key) = self.stage else {
            return;
        };
        let mut st = lock(&self.barrier.state);
        if let Some((_, None)) = st.waiters.remove(key) {
            // B3: still waiting, so it leaves the count. (Served but
            // uncollected: the generation completed; nothing to undo.)
            st.arrived -= 1;
        }
    }
}

impl fmt::Debug for BarrierWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWait")
            .field("stage", &self.stage)
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
