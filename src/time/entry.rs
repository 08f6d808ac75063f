//! A timer future's entry in the timer wheel, shared by every timer future
//! (`Sleep`, `Timeout`, `Interval`'s ticks).
//!
//! The entry lives inside the timer future, as tokio's does: the future is
//! pinned once polled, and while the entry is armed the wheel holds a
//! [`Pinned`] to its shared half (`Shared`: a deadline-or-fired state
//! word and an [`AtomicWaker`], in the style of tokio's `StateCell`). So
//! arming a timer allocates nothing, and the entry's memory is the task's
//! own, already in the cache of the worker polling it. The wheel lives in
//! the timer service (`kernel::timers`), under its own lock: arming,
//! re-polling, firing and disarming do not take the kernel lock (a
//! cancel-aware poll asks the kernel only when a cancellation may be
//! observable, TE5).
//!
//! Protocol:
//! - TE1 (one owner): the entry is reached only through `Pin<&mut>` (a
//!   future's poll or drop), so arming, disarming and the key have one
//!   writer; the waker slot has one registrant (AW2).
//! - TE2 (state): `state` is `FIRED` while the entry is not armed; the owner
//!   stores the (clamped) deadline just before it inserts the entry into
//!   the wheel (under the wheel lock), and the firing pass that takes the
//!   entry out of the wheel as due stores `FIRING`, takes the waker out and
//!   stores `FIRED`, all under the same lock (`Shared::fire`). Nothing else
//!   writes it. An arming starts only after the previous one ended (TE7),
//!   so a pass meant for an earlier arming never lands on a later one.
//! - TE3 (no lost wake): the owner registers its waker before it arms the
//!   entry, and on later polls before it reads the state a second time; the
//!   firing pass stores `FIRING` before it takes the waker (AW1: a take
//!   that races with the registration makes the registration wake). So the
//!   task is polled again after the fired state is visible to it.
//! - TE4 (never early, rule T1): a poll completes when the state is fired
//!   (the wheel was advanced to a driver's clock reading at or past the
//!   deadline) or the clock's recent reading (CL1, never ahead of the
//!   clock) is at or past the deadline; a poll that completes on the clock
//!   while the entry is still armed removes it (wheel lock; rule T3).
//! - TE5 (locks): a first poll that arms takes the wheel lock only; a poll
//!   of an armed entry takes no lock; a drop (or a completion on the clock,
//!   or a cancellation) takes the wheel lock only if the entry is armed and
//!   not `FIRED`. A cancel-aware poll observes cancellation through
//!   `Cx::observe_cancel`, which asks the kernel only when rule A2 says a
//!   cancellation may be observable (the gauge, the task's cancel hint, the
//!   `Cx`'s deadline) and the task is not a light one whose cancel waits
//!   in its cell (LT7); an observed cancellation then removes the arming
//!   (wheel lock, after the kernel's is released). A poll from outside any
//!   task asks the kernel whether the task is still live (rule CX1).
//! - TE6 (allocation): none. The shared half is a field of the entry.
//! - TE7 (release, PR1): the wheel's reference is used only under the
//!   wheel lock, by a pass (`fire`, whose last access is the `FIRED`
//!   store, Release) or by nothing at all once `cancel` removed it. An
//!   arming ends, and the entry may be armed again or go, only when the
//!   owner has seen `FIRED` (Acquire) or has itself held the wheel lock
//!   after the arming (`Timers::cancel`: it either removes the entry, so no
//!   pass ever reaches it, or finds it gone, taken by a pass that finished
//!   under that lock). `key` stays `Some` until then. Every owner clears
//!   its entry in its own drop, before the entry's fields go; an entry
//!   dropped while armed would leave the wheel pointing at freed memory,
//!   so that (a bug in an owner) aborts the process.

use std::marker::PhantomPinned;
use std::pin::Pin;
use std::task::Waker;

use pin_project_lite::pin_project;

use crate::exec::cx::Cx;
use crate::kernel::{Pinned, Sleeper, TimerKey};
// The types the loom model (`loom_tests` below) replaces.
use crate::loom::sync::atomic::{AtomicU64, Ordering};
use crate::sync::atomic_waker::AtomicWaker;
use crate::types::Time;
use crate::types::cancel::Cancelled;

/// What a timer poll found.
pub(crate) enum TimerPoll {
    Elapsed,
    Cancelled(Cancelled),
    Pending,
}

/// The state of an entry that is not armed, or whose arming fired and was
/// released by its pass (TE2, TE7).
const FIRED: u64 = u64::MAX;
/// The state a firing pass stores before it takes the waker (TE2, TE3):
/// fired, but the pass may still touch the entry (TE7).
const FIRING: u64 = u64::MAX - 1;

/// The state word of an entry armed for `deadline` (TE2). Deadlines from
/// `FIRING` up are clamped below it; the wheel and the owner keep the exact
/// deadline.
fn armed(deadline: Time) -> u64 {
    deadline.as_nanos().min(FIRING - 1)
}

/// The half of an entry the wheel reaches while it is armed.
struct Shared {
    /// `armed(deadline)` while armed and not fired, then `FIRING` and
    /// `FIRED` (TE2).
    state: AtomicU64,
    /// The owner's waker (TE3).
    waker: AtomicWaker,
}

impl Sleeper for Shared {
    fn fire(&self) -> Option<Waker> {
        // TE2, TE3: under the wheel lock, as the entry leaves the wheel.
        self.state.store(FIRING, Ordering::SeqCst);
        let waker = self.waker.take();
        // TE7: the pass's last access to the entry. Release: the owner's
        // Acquire load that sees it may reuse or free the entry.
        self.state.store(FIRED, Ordering::Release);
        waker
    }
}

pin_project! {
    /// The owner half of a timer entry (TE1): lives in a pinned timer
    /// future.
    pub(crate) struct TimerEntry {
        // TE7, PR1: the wheel may point here while armed.
        #[pin]
        shared: Shared,
        // The key of the current arming; `None` once it ended (TE7).
        key: Option<TimerKey>,
        // The exact deadline of the current arming (while `key` is `Some`).
        armed_for: Time,
        // TE7, PR1: the wheel may point at `shared` while armed.
        #[pin]
        _pinned: PhantomPinned,
    }

    impl PinnedDrop for TimerEntry {
        fn drop(this: Pin<&mut Self>) {
            if this.key.is_some() {
                // TE7: the wheel still points here; going on would free
                // memory it reaches. Only an owner that failed to clear
                // its entry in its own drop gets here.
                eprintln!("asupersync: a timer entry was dropped while armed (rule TE7); aborting");
                std::process::abort();
            }
        }
    }
}

impl Default for TimerEntry {
    fn default() -> Self {
        Self {
            shared: Shared {
                state: AtomicU64::new(FIRED),
                waker: AtomicWaker::new(),
            },
            key: None,
            armed_for: Time::ZERO,
            _pinned: PhantomPinned,
        }
    }
}

impl TimerEntry {
    /// Checks the deadline (and, if `cancel_aware`, the task's
    /// cancellation) and otherwise arms the entry or registers `waker`.
    pub(crate) fn poll(
        mut self: Pin<&mut Self>,
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
            self.as_mut().clear(cx);
            return TimerPoll::Cancelled(Cancelled::new(reason));
        }
        // TE4 / CL1: the recent reading is never ahead of the clock, so the
        // entry never completes early; if it lags, the entry is armed and
        // fires at the driver's next fresh reading.
        let now = core.recent_now();
        if self.key.is_some() {
            if self.fired() {
                self.as_mut().clear(cx); // TE7: no lock once `FIRED`
                return TimerPoll::Elapsed;
            }
            if self.armed_for == deadline {
                if now >= deadline {
                    self.as_mut().clear(cx);
                    return TimerPoll::Elapsed;
                }
                // TE3: register, then look again (no lock: TE5).
                self.shared.waker.register(waker);
                if self.fired() {
                    self.as_mut().clear(cx);
                    return TimerPoll::Elapsed;
                }
                return Self::pending(cx, outside);
            }
            // Armed for another deadline: disarm, then arm anew.
            self.as_mut().clear(cx);
        }
        if now >= deadline {
            return TimerPoll::Elapsed;
        }
        let this = self.project();
        // TE3: the waker is in place before a firing pass can see the entry.
        this.shared.waker.register(waker);
        // TE2, TE7: the previous arming has ended (`key` is `None`), so no
        // pass touches this word until the entry is in the wheel again.
        this.shared.state.store(armed(deadline), Ordering::Relaxed);
        let shared: Pin<&dyn Sleeper> = this.shared.into_ref();
        // SAFETY: PR1 via TE7: the entry is pinned, and its arming ends
        // (`clear`, which every owner calls before the entry goes; an entry
        // dropped armed aborts) only once the wheel can no longer reach it.
        let entry = unsafe { Pinned::new(shared) };
        *this.key = Some(core.timers().arm_sleep(deadline, entry, task.to_bits()));
        *this.armed_for = deadline;
        Self::pending(cx, outside)
    }

    /// Whether a pass fired the current arming (`FIRING` or `FIRED`).
    fn fired(&self) -> bool {
        self.shared.state.load(Ordering::Acquire) >= FIRING
    }

    /// Rule T4: a driver parked with a later deadline would oversleep a
    /// timer armed by a thread that runs no task (runtime threads look at
    /// the hint before they park).
    fn pending(cx: &Cx, outside: bool) -> TimerPoll {
        if outside {
            cx.core().timer_armed_outside();
        }
        TimerPoll::Pending
    }

    /// Ends the arming, if any (rules T3, TE7): takes the wheel lock unless
    /// the state is `FIRED` (TE5), so that afterwards the wheel can no
    /// longer reach the entry.
    pub(crate) fn clear(self: Pin<&mut Self>, cx: &Cx) {
        let this = self.project();
        if let Some(key) = this.key.take()
            && this.shared.state.load(Ordering::Acquire) != FIRED
        {
            // Removes it, or finds it taken by a pass that finished under
            // the lock this takes (TE7).
            cx.core().timers().cancel(key);
        }
    }
}

/// Loom model of TE2, TE3 and TE7 (run by `.ci/run` with `--cfg loom`):
/// the real shared half (`Shared::fire`, the `AtomicWaker`) between an
/// owner that arms, re-polls, ends its arming and arms again, as
/// `TimerEntry` does, and a firing pass that takes whatever arming the
/// wheel holds, under the wheel's lock (a loom `Mutex` standing for it).
#[cfg(all(test, loom))]
mod loom_tests {
    // Bookkeeping, read after the threads joined (loom explores only its
    // own types).
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::{Wake, Waker};

    use super::*;
    use crate::loom::sync::{Arc, Mutex};
    use crate::loom::{model, thread};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn counter() -> (std::sync::Arc<Count>, Waker) {
        let count = std::sync::Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    /// The owner's end of an arming (`TimerEntry::clear`): no lock once
    /// `FIRED`, else the wheel's lock, which removes the arming or finds
    /// it taken by a pass that finished under that lock.
    fn end_arming(shared: &Shared, wheel: &Mutex<Option<u32>>) {
        if shared.state.load(Ordering::Acquire) != FIRED {
            wheel.lock().unwrap().take();
        }
    }

    #[test]
    fn loom_a_fired_arming_wakes_its_owner_and_never_lands_on_the_next() {
        model(|| {
            let shared = Arc::new(Shared {
                state: AtomicU64::new(FIRED),
                waker: AtomicWaker::new(),
            });
            let wheel = Arc::new(Mutex::new(None::<u32>));
            let fired = std::sync::Arc::new(AtomicUsize::new(0));
            let (first_count, first) = counter();
            let (second_count, second) = counter();
            // Arming 1 (TE3: the waker first, then the state, then the
            // wheel, under its lock).
            shared.waker.register(&first);
            shared
                .state
                .store(armed(Time::from_nanos(10)), Ordering::Relaxed);
            *wheel.lock().unwrap() = Some(1);
            let pass = {
                let (shared, wheel, fired) = (shared.clone(), wheel.clone(), fired.clone());
                thread::spawn(move || {
                    let mut wheel = wheel.lock().unwrap();
                    let Some(arming) = wheel.take() else { return };
                    let waker = shared.fire(); // TE7: under the lock
                    fired.store(arming as usize, SeqCst);
                    drop(wheel);
                    if let Some(w) = waker {
                        w.wake();
                    }
                })
            };
            // A re-poll (TE3: register, then look).
            shared.waker.register(&first);
            let saw_fired = shared.state.load(Ordering::Acquire) >= FIRING;
            // TE7: the arming ends; then arming 2 reuses the entry.
            end_arming(&shared, &wheel);
            shared.waker.register(&second);
            shared
                .state
                .store(armed(Time::from_nanos(20)), Ordering::Relaxed);
            {
                let mut wheel = wheel.lock().unwrap();
                assert!(wheel.is_none(), "TE7: the first arming is out of the wheel");
                *wheel = Some(2);
            }
            pass.join().unwrap();
            match fired.load(SeqCst) {
                2 => assert_eq!(second_count.0.load(SeqCst), 1, "arming 2's owner woken"),
                fired => {
                    // TE2, TE7: no pass wrote the second arming's state.
                    assert_eq!(
                        shared.state.load(Ordering::Acquire),
                        armed(Time::from_nanos(20)),
                        "a FIRED of arming {fired} landed on arming 2"
                    );
                    if fired == 1 && !saw_fired {
                        // TE3: the owner that looked too early is woken.
                        assert_eq!(first_count.0.load(SeqCst), 1, "a lost wake");
                    }
                }
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
