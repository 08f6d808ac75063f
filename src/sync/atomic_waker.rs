//! One waker slot that a single consumer registers into and any number of
//! producers wake, without a lock (the classic `AtomicWaker` protocol).
//!
//! Rules:
//! - AW1 (no lost wake): a consumer registers, then re-checks its
//!   condition. A `wake`/`take` that starts after `register` returned wakes
//!   the registered waker; one that races with `register` makes `register`
//!   wake the new waker itself. Either way the consumer is polled again
//!   after every producer action it may have missed.
//! - AW2 (single registrant): only one task registers at a time (the
//!   receiver of a channel). Concurrent registrations are not lost but may
//!   leave the slot holding either waker.
//! - AW3 (no user code under the slot): the waker is woken after the slot
//!   is released; only `Waker::clone`/`will_wake` run while it is held.

use std::task::Waker;

// The types the loom model of the timer entry (`time::entry`) replaces.
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// Nobody is touching the slot.
const WAITING: usize = 0;
/// The consumer is storing a waker.
const REGISTERING: usize = 0b01;
/// A producer is taking the waker (or asked the registrant to wake).
const WAKING: usize = 0b10;

pub(crate) struct AtomicWaker {
    state: AtomicUsize,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the cell is only accessed by whoever moved `state` out of
// `WAITING` (into `REGISTERING` or `WAKING`), which at most one thread can do
// at a time; `Waker` is `Send + Sync`.
unsafe impl Send for AtomicWaker {}
// SAFETY: as above.
unsafe impl Sync for AtomicWaker {}

impl AtomicWaker {
    #[cfg(not(all(test, loom)))]
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicUsize::new(WAITING),
            waker: UnsafeCell::new(None),
        }
    }

    /// Loom's cells and atomics cannot be made in a `const fn`.
    #[cfg(all(test, loom))]
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicUsize::new(WAITING),
            waker: UnsafeCell::new(None),
        }
    }

    /// Stores `waker` to be woken by the next `wake` (AW1).
    pub(crate) fn register(&self, waker: &Waker) {
        match self
            .state
            .compare_exchange(WAITING, REGISTERING, Ordering::Acquire, Ordering::Acquire)
            .unwrap_or_else(|actual| actual)
        {
            WAITING => {
                // SAFETY: we moved the state from WAITING to REGISTERING, so
                // we have exclusive access to the cell until we move it back.
                // AW3: a replaced waker is dropped after the slot is released.
                let replaced = self.waker.with_mut(|slot| match unsafe { &mut *slot } {
                    Some(old) if old.will_wake(waker) => None,
                    slot => slot.replace(waker.clone()),
                });
                if let Err(actual) = self.state.compare_exchange(
                    REGISTERING,
                    WAITING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    // A producer called `wake` meanwhile and left the waking
                    // to us (it saw REGISTERING and only set WAKING).
                    debug_assert_eq!(actual, REGISTERING | WAKING);
                    // SAFETY: still REGISTERING: the cell is ours.
                    let w = self.waker.with_mut(|slot| unsafe { (*slot).take() });
                    self.state.swap(WAITING, Ordering::AcqRel);
                    if let Some(w) = w {
                        w.wake();
                    }
                }
                drop(replaced);
            }
            WAKING => {
                // A producer is taking the old waker right now: it may not
                // see the new one, so wake it here (AW1).
                waker.wake_by_ref();
            }
            state => {
                // Another registration is in progress (AW2): nothing to do.
                debug_assert!(state == REGISTERING || state == REGISTERING | WAKING);
            }
        }
    }

    /// Takes the registered waker, if any, for the caller to wake.
    pub(crate) fn take(&self) -> Option<Waker> {
        match self.state.fetch_or(WAKING, Ordering::AcqRel) {
            WAITING => {
                // SAFETY: we moved the state from WAITING to WAKING, so we
                // have exclusive access to the cell until we clear WAKING.
                let w = self.waker.with_mut(|slot| unsafe { (*slot).take() });
                self.state.fetch_and(!WAKING, Ordering::Release);
                w
            }
            state => {
                // A registration in progress will see WAKING and wake its
                // waker itself; a concurrent `take` will wake the old one.
                debug_assert!(
                    state == REGISTERING || state == REGISTERING | WAKING || state == WAKING
                );
                None
            }
        }
    }

    /// Wakes the registered waker, if any (outside the slot, AW3).
    pub(crate) fn wake(&self) {
        if let Some(w) = self.take() {
            w.wake();
        }
    }
}

impl std::fmt::Debug for AtomicWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicWaker").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn wake_wakes_the_registered_waker_once() {
        let aw = AtomicWaker::new();
        let (c, w) = counting();
        aw.wake(); // nothing registered: no-op
        aw.register(&w);
        aw.register(&w); // same waker: kept
        aw.wake();
        aw.wake(); // taken already
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_new_waker_replaces_the_old_one() {
        let aw = AtomicWaker::new();
        let (c1, w1) = counting();
        let (c2, w2) = counting();
        aw.register(&w1);
        aw.register(&w2);
        aw.wake();
        assert_eq!(c1.0.load(Ordering::SeqCst), 0);
        assert_eq!(c2.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn wakes_racing_with_registration_are_never_lost() {
        // The consumer registers, then checks a flag; a producer sets the
        // flag, then wakes. If the check misses the flag, the wake must
        // reach the registered waker (AW1), or the consumer waits forever.
        for _ in 0..300 {
            let aw = Arc::new(AtomicWaker::new());
            let flag = Arc::new(AtomicUsize::new(0));
            let (c, w) = counting();
            let producer = {
                let (aw, flag) = (aw.clone(), flag.clone());
                std::thread::spawn(move || {
                    flag.store(1, Ordering::SeqCst);
                    aw.wake();
                })
            };
            // Minutes: only a lost wake (a consumer that would wait
            // forever) reaches it, never a slow run on a loaded machine.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
            loop {
                let woken = c.0.load(Ordering::SeqCst);
                aw.register(&w);
                if flag.load(Ordering::SeqCst) == 1 {
                    break;
                }
                while c.0.load(Ordering::SeqCst) == woken {
                    assert!(std::time::Instant::now() < deadline, "lost wake");
                    std::hint::spin_loop();
                }
            }
            producer.join().unwrap();
        }
    }
}
