//! A timer future's entry in the timer wheel, shared by every timer future
//! (`Sleep`, `Timeout`, `Interval`'s ticks).
//!
//! The entry has two halves. The owner half ([`TimerEntry`]) lives in the
//! future and holds the wheel key of the current arming. The shared half
//! (`Shared`, allocated at the first arming and reused by later ones) is what
//! the wheel holds while the entry is armed: a deadline-or-`FIRED` state word
//! and an [`AtomicWaker`] (in the style of tokio's `StateCell`). The wheel
//! lives in the timer service (`kernel::timers`), under its own lock:
//! arming, re-polling, firing and disarming do not take the kernel lock (a
//! cancel-aware poll asks the kernel only when a cancellation may be
//! observable, TE5).
//!
//! Protocol:
//! - TE1 (one owner): the owner half is reached only through `&mut` (a
//!   future's poll or drop), so arming, disarming and the key have one
//!   writer; the waker slot has one registrant (AW2).
//! - TE2 (state): `state` is `FIRED` while the entry is not armed; the owner
//!   stores the (clamped) deadline just before it inserts the entry into
//!   the wheel (under the wheel lock), and the firing pass that takes the
//!   entry out of the wheel as due stores `FIRED` under the same lock
//!   (`Sleeper::fire`). Nothing else writes it. An arming starts only after
//!   the previous one ended, and a previous arming ends either by the owner
//!   seeing `FIRED` (the store is done) or by the owner's removal under the
//!   wheel lock (which either removed it, so it never fires, or comes after
//!   the pass that took it out and stored `FIRED`): a `FIRED` meant for an
//!   earlier arming can never land on a later one.
//! - TE3 (no lost wake): the owner registers its waker before it arms the
//!   entry, and on later polls before it reads the state a second time; the
//!   firing pass stores `FIRED` (under the lock, before releasing it) before
//!   it wakes (after releasing it). By AW1 the task is polled again after
//!   `FIRED` is visible to it. A pass of an earlier arming may still wake
//!   the slot after a re-arming: a spurious wake, never a lost one.
//! - TE4 (never early, rule T1): a poll completes when the state is `FIRED`
//!   (the wheel was advanced to a driver's clock reading at or past the
//!   deadline) or the clock's recent reading (CL1, never ahead of the
//!   clock) is at or past the deadline; a poll that completes on the clock
//!   while the entry is still armed removes it (wheel lock; rule T3).
//! - TE5 (locks): a first poll that arms takes the wheel lock only; a poll
//!   of an armed entry takes no lock; a drop (or a completion on the clock,
//!   or a cancellation) takes the wheel lock only if the entry is armed and
//!   not fired. A cancel-aware poll observes cancellation through
//!   `Cx::observe_cancel`, which asks the kernel only when rule A2 says a
//!   cancellation may be observable (the gauge, the task's cancel hint, the
//!   `Cx`'s deadline) and the task is not a light one whose cancel waits
//!   in its cell (LT7); an observed cancellation then removes the arming
//!   (wheel lock, after the kernel's is released). A poll from outside any
//!   task asks the kernel whether the task is still live (rule CX1).
//! - TE6 (allocation): at most one per entry (the shared half, at the first
//!   arming); re-armings reuse it, and the wheel holds a reference-count
//!   clone. A dropped entry whose shared half nobody else holds any more
//!   (`Arc::get_mut`: not in the wheel, no firing pass holding it) gives it,
//!   emptied of its waker, to a small per-thread pool that the next first
//!   arming on that thread takes it from, so steady-state arming allocates
//!   nothing. A pooled half is unique and holds no waker (it keeps no task
//!   alive).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

use crate::exec::cx::Cx;
use crate::kernel::Sleeper;
use crate::kernel::TimerKey;
use crate::sync::atomic_waker::AtomicWaker;
use crate::types::Time;
use crate::types::cancel::Cancelled;

/// What a timer poll found.
pub(crate) enum TimerPoll {
    Elapsed,
    Cancelled(Cancelled),
    Pending,
}

/// The state of an entry that is not armed, or whose arming fired (TE2).
const FIRED: u64 = u64::MAX;

/// The state word of an entry armed for `deadline` (TE2). `Time::MAX` is
/// clamped below `FIRED`; the wheel and the owner keep the exact deadline.
fn armed(deadline: Time) -> u64 {
    deadline.as_nanos().min(FIRED - 1)
}

/// The half of an entry the wheel holds while it is armed.
struct Shared {
    /// `armed(deadline)` while armed and not fired, else `FIRED` (TE2).
    state: AtomicU64,
    /// The owner's waker (TE3).
    waker: AtomicWaker,
}

impl Sleeper for Shared {
    fn fire(&self) {
        // TE2: under the wheel lock, as the entry leaves the wheel. Release:
        // the owner's Acquire load that sees it sees the pass's time.
        self.state.store(FIRED, Ordering::Release);
    }

    fn wake(&self) {
        // TE3: after the lock is released; a panicking waker is contained
        // (contract 3).
        if let Some(waker) = self.waker.take() {
            crate::exec::runnable::wake_catching(waker);
        }
    }
}

/// TE6: how many unused shared halves a thread keeps (64 bytes each with
/// their allocation's header, so at most 1 MiB, and only up to the most a
/// thread ever dropped at once): enough for a region of ten thousand
/// sleeping tasks cancelled at once, whose drain would otherwise free
/// each half between the frees of the task cells (with glibc's allocator
/// every such free of a cell then consolidated the fast bins: a seventh
/// of the drain).
const POOL_MAX: usize = 16 * 1024;

thread_local! {
    /// TE6: unused shared halves (each unique, without a waker).
    static POOL: RefCell<Vec<Arc<Shared>>> = const { RefCell::new(Vec::new()) };
}

/// A shared half armed for `deadline` with `waker` registered (TE2, TE3):
/// from this thread's pool if it has one (TE6), else a new allocation.
fn new_shared(deadline: Time, waker: &Waker) -> Arc<Shared> {
    let pooled = POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten();
    match pooled {
        Some(mut shared) => {
            let s = Arc::get_mut(&mut shared).expect("TE6: a pooled half is unique");
            *s.state.get_mut() = armed(deadline);
            s.waker = AtomicWaker::with_waker(waker.clone());
            shared
        }
        None => Arc::new(Shared {
            state: AtomicU64::new(armed(deadline)),
            waker: AtomicWaker::with_waker(waker.clone()),
        }),
    }
}

/// The owner half of a timer entry (TE1).
#[derive(Default)]
pub(crate) struct TimerEntry {
    /// Allocated at the first arming, reused after (TE6).
    shared: Option<Arc<Shared>>,
    /// The key of the current arming; `None` when not armed or seen fired.
    key: Option<TimerKey>,
    /// The exact deadline of the current arming (while `key` is `Some`).
    armed_for: Time,
}

impl TimerEntry {
    /// Checks the deadline (and, if `cancel_aware`, the task's
    /// cancellation) and otherwise arms the entry or registers `waker`.
    pub(crate) fn poll(
        &mut self,
        cx: &Cx,
        deadline: Time,
        waker: &Waker,
        cancel_aware: bool,
    ) -> TimerPoll {
        let core = cx.core();
        let (task, region) = (cx.task_id(), cx.region_id());
        crate::exec::context::check_cx(core.key(), task); // rule CX1
        let outside = !crate::exec::context::in_task();
        if outside
            && !core
                .lock()
                .task_alive(task, region, cx.light().map(|s| &**s))
        {
            // CX1: a plain thread's timer on a completed task's `Cx`: nothing
            // would ever wake it. (Inside a task, `check_cx` established
            // that the task is the one being polled, or a finalizer runs.)
            crate::exec::context::completed_task_cx(task);
        }
        // TE5: the kernel only if rule A2 says a cancellation may be
        // observable, and not even then for a light task, which observes
        // a cancel stored in its cell (LT7). An observed cancel removes
        // the arming, as the wait deregisters (T2).
        if cancel_aware && let Some(reason) = cx.observe_cancel() {
            if let Some(key) = self.key.take()
                && self
                    .shared
                    .as_ref()
                    .is_some_and(|s| s.state.load(Ordering::Acquire) != FIRED)
            {
                core.timers().cancel(key);
            }
            return TimerPoll::Cancelled(Cancelled::new(reason));
        }
        // TE4 / CL1: the recent reading is never ahead of the clock, so the
        // entry never completes early; if it lags, the entry is armed and
        // fires at the driver's next fresh reading.
        let now = core.recent_now();
        if let (Some(shared), Some(_)) = (&self.shared, self.key) {
            let state = shared.state.load(Ordering::Acquire);
            if state == FIRED {
                self.key = None; // TE2: the wheel no longer holds it.
                return TimerPoll::Elapsed;
            }
            if self.armed_for == deadline {
                if now >= deadline {
                    self.clear(cx);
                    return TimerPoll::Elapsed;
                }
                // TE3: register, then look again (no lock: TE5).
                shared.waker.register(waker);
                if shared.state.load(Ordering::Acquire) == FIRED {
                    self.key = None;
                    return TimerPoll::Elapsed;
                }
                return self.pending(cx, outside);
            }
            // Armed for another deadline: disarm, then arm anew.
            self.clear(cx);
        }
        if now >= deadline {
            return TimerPoll::Elapsed;
        }
        // TE3: the waker is in place before a firing pass can see the entry.
        let shared = match &self.shared {
            Some(shared) => {
                shared.waker.register(waker);
                // TE2: the previous arming has ended (`key` is `None`), so
                // no pass writes this word until the entry is in the wheel
                // again.
                shared.state.store(armed(deadline), Ordering::Relaxed);
                shared
            }
            None => self.shared.insert(new_shared(deadline, waker)),
        };
        let entry: Arc<dyn Sleeper> = shared.clone();
        self.key = Some(core.timers().arm_sleep(deadline, entry, task.to_bits()));
        self.armed_for = deadline;
        self.pending(cx, outside)
    }

    /// Rule T4: a driver parked with a later deadline would oversleep a
    /// timer armed by a thread that runs no task (runtime threads look at
    /// the hint before they park).
    fn pending(&self, cx: &Cx, outside: bool) -> TimerPoll {
        if outside {
            cx.core().timer_armed_outside();
        }
        TimerPoll::Pending
    }

    /// Removes the arming, if any (rule T3); takes the wheel lock only if
    /// the entry is armed and not fired (TE5).
    pub(crate) fn clear(&mut self, cx: &Cx) {
        if let Some(key) = self.key.take()
            && let Some(shared) = &self.shared
            && shared.state.load(Ordering::Acquire) != FIRED
        {
            // A pass may take it out meanwhile; then this finds nothing.
            cx.core().timers().cancel(key);
        }
    }
}

impl Drop for TimerEntry {
    /// TE6: recycles the shared half if nothing else holds it (the owner's
    /// `clear`, rule T3, ran in the timer future's own `Drop` first).
    fn drop(&mut self) {
        let Some(mut shared) = self.shared.take() else {
            return;
        };
        let Some(s) = Arc::get_mut(&mut shared) else {
            return; // still in the wheel, or a firing pass holds it
        };
        // The pool keeps no task alive: drop the waker here.
        s.waker = AtomicWaker::new();
        *s.state.get_mut() = FIRED;
        // A half the pool does not take (full, or the thread is exiting)
        // is freed.
        let _ = POOL.try_with(move |p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_MAX {
                p.push(shared);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::mpsc;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use crate::runtime::RuntimeBuilder;
    use crate::time;

    /// Holds the kernel lock on another thread until released (or, as a
    /// hang detector only, until a minute passed); says whether it was
    /// released by the test.
    fn hold_kernel_lock(cx: &crate::Cx) -> (mpsc::Sender<()>, std::thread::JoinHandle<bool>) {
        let core = cx.core().clone();
        let (locked_tx, locked_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _kernel = core.lock();
            locked_tx.send(()).expect("the test waits");
            release_rx.recv_timeout(Duration::from_secs(60)).is_ok()
        });
        locked_rx.recv().expect("the holder locked");
        (release_tx, holder)
    }

    /// TE5 and TL1: with nothing cancelled, a task arms, re-polls and drops
    /// a sleep, and a firing pass fires and wakes another, while a thread
    /// holds the kernel lock the whole time (any of them waiting for it
    /// would deadlock with the holder, which the holder reports).
    #[test]
    fn sleeps_arm_repoll_fire_and_drop_while_another_thread_holds_the_kernel_lock() {
        let rt = RuntimeBuilder::current_thread().build().expect("runtime");
        rt.block_on(|cx| async move {
            let (release, holder) = hold_kernel_lock(&cx);
            let mut tcx = Context::from_waker(std::task::Waker::noop());
            let mut far = Box::pin(time::sleep(&cx, Duration::from_secs(3600)));
            assert!(far.as_mut().poll(&mut tcx).is_pending(), "armed");
            assert!(far.as_mut().poll(&mut tcx).is_pending(), "re-polled");
            drop(far);
            let deadline = cx.now() + Duration::from_nanos(1);
            let mut near = Box::pin(time::sleep_until(&cx, deadline));
            // The recent reading (CL1) is behind the deadline: armed.
            assert!(near.as_mut().poll(&mut tcx).is_pending(), "armed");
            // A fresh clock reading at or past the deadline (a few
            // nanoseconds of spinning on the clock, not a wait).
            let core = cx.core();
            let now = std::iter::repeat_with(|| core.now())
                .find(|&now| now >= deadline)
                .expect("the clock moves");
            assert_eq!(core.fire_timers(now), 1, "the pass fired the sleep");
            assert!(
                matches!(near.as_mut().poll(&mut tcx), Poll::Ready(Ok(()))),
                "the fired sleep completes"
            );
            drop(near);
            release.send(()).expect("the holder waits");
            assert!(
                holder.join().expect("the holder"),
                "a timer operation waited for the kernel lock"
            );
        });
    }
}
