//! A light task's cancel slot: where a cancel request waits, in the task's
//! cell, until the task observes it or the kernel registers the task (rules
//! LT7 and LT8 in `kernel::light`). With it, aborting a light task, the
//! task's acknowledgement and its cancelled completion take no kernel lock:
//! only this slot's lock, which nothing else contends for but the task
//! itself and whoever cancels it.
//!
//! Every operation takes the slot's lock and then reads the cell's state
//! word (`state`): COMPLETE means there is nothing left to cancel, and
//! REGISTERED (SW7) means the kernel owns the task's cancel state now. The
//! kernel sets REGISTERED before it reads the slot (`current`) to copy it,
//! so a request either lands in the slot before that reading or sees the
//! bit and goes to the kernel; the completion sets COMPLETE before its own
//! reading, so a request either is in what the completion reads or sees
//! COMPLETE and does nothing (the A2 gauge stays balanced: LT8).

// The imports the loom model (`loom_tests` below) replaces.
use crate::loom::sync::{Mutex, MutexGuard};

use super::state::{COMPLETE, CellState};
use crate::kernel::{LightCancel, LightRequest};
use crate::types::{CancelReason, Time};

/// What a light task's own checkpoint found in its slot (LT7).
#[derive(Debug)]
pub(crate) enum LightAck {
    /// The task is cancelled: this observation acknowledges it (the
    /// record's `Cancelling`; repeated observations return it again).
    Cancelled(std::sync::Arc<CancelReason>),
    /// Nothing was requested.
    Quiet,
    /// The kernel registered the task: ask the kernel.
    Registered,
}

/// A [`LightCancel`] as the slot stores it: the reason (`None`: nothing
/// requested), and the grace deadline's nanoseconds with the
/// acknowledgement in the top bit, so the slot takes 24 bytes instead of
/// 32 (a deadline past 2^63 ns, 292 years, is kept as that).
#[derive(Default)]
struct Stored {
    reason: Option<std::sync::Arc<CancelReason>>,
    deadline_acked: u64,
}

const ACKED: u64 = 1 << 63;

impl Stored {
    fn deadline(&self) -> Time {
        Time::from_nanos(self.deadline_acked & !ACKED)
    }

    fn set_deadline(&mut self, deadline: Time) {
        self.deadline_acked = (self.deadline_acked & ACKED) | deadline.as_nanos().min(!ACKED);
    }

    fn get(&self) -> Option<LightCancel> {
        self.reason.as_ref().map(|reason| LightCancel {
            reason: reason.clone(),
            grace_deadline: self.deadline(),
            acked: self.deadline_acked & ACKED != 0,
        })
    }
}

/// The slot (see the module doc).
pub(crate) struct CancelSlot(Mutex<Stored>);

impl CancelSlot {
    pub(crate) fn new() -> Self {
        Self(Mutex::new(Stored::default()))
    }

    fn lock(&self) -> MutexGuard<'_, Stored> {
        // No user code runs under this lock.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// LT7: a cancel request with `reason`, its cleanup bounded by
    /// `grace_deadline`, on the light task whose state word is `state`. A
    /// request that does not outrank the stored reason changes nothing (K3);
    /// one that does also moves the grace deadline earlier, never later
    /// (K4), and raises the cell's cancel hint (SW5).
    pub(crate) fn request(
        &self,
        state: &CellState,
        reason: &std::sync::Arc<CancelReason>,
        grace_deadline: Time,
    ) -> LightRequest {
        let mut slot = self.lock();
        let word = state.load_acquire();
        if word.lifecycle() == COMPLETE {
            return LightRequest::Complete;
        }
        if word.is_registered() {
            return LightRequest::Registered;
        }
        let first = match &slot.reason {
            None => {
                slot.reason = Some(reason.clone());
                slot.set_deadline(grace_deadline);
                true
            }
            Some(stored) if reason.outranks(stored) => {
                slot.reason = Some(reason.clone());
                let deadline = slot.deadline().min(grace_deadline);
                slot.set_deadline(deadline);
                false
            }
            Some(_) => {
                return LightRequest::Stored {
                    first: false,
                    changed: false,
                };
            }
        };
        state.cancel_requested(reason.kind.severity());
        LightRequest::Stored {
            first,
            changed: true,
        }
    }

    /// LT7: the task's own checkpoint: acknowledges a stored request.
    pub(crate) fn acknowledge(&self, state: &CellState) -> LightAck {
        let mut slot = self.lock();
        if state.load_acquire().is_registered() {
            return LightAck::Registered;
        }
        match &slot.reason {
            Some(reason) => {
                let reason = reason.clone();
                slot.deadline_acked |= ACKED;
                LightAck::Cancelled(reason)
            }
            None => LightAck::Quiet,
        }
    }

    /// The stored cancellation: for the kernel registering the task, for
    /// `Cx::cancel_reason`, and for the completion (after it set COMPLETE).
    pub(crate) fn current(&self) -> Option<LightCancel> {
        self.lock().get()
    }
}

/// Loom model of LT7 (run by `.ci/run` with `--cfg loom`): an abort, the
/// task's acknowledgement and completion, and the kernel's registration
/// race on the real slot and state word.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::{model, thread};
    use crate::types::CancelKind;

    /// Every abort is accounted exactly once: stored in the slot the
    /// completion reads (and then counted there), or refused because the
    /// task completed, or handed to the kernel because it registered the
    /// task, in which case the kernel's copy, taken after REGISTERED was
    /// set, holds every request stored before.
    #[test]
    fn an_abort_lands_in_exactly_one_place() {
        model(|| {
            let state = Arc::new(CellState::new());
            let slot = Arc::new(CancelSlot::new());
            assert!(state.start_running().is_some());
            let aborter = {
                let (state, slot) = (state.clone(), slot.clone());
                thread::spawn(move || {
                    let reason = std::sync::Arc::new(CancelReason::new(CancelKind::User));
                    slot.request(&state, &reason, Time::from_nanos(10))
                })
            };
            let registrar = {
                let (state, slot) = (state.clone(), slot.clone());
                thread::spawn(move || {
                    state.mark_registered();
                    slot.current().is_some()
                })
            };
            // The task completes and reads its slot.
            state.complete();
            let read_by_completion = slot.current().is_some();
            let outcome = aborter.join().unwrap();
            let kernel_copy = registrar.join().unwrap();
            match outcome {
                LightRequest::Stored { first, changed } => {
                    assert!(first && changed);
                    assert!(read_by_completion, "stored before COMPLETE was set");
                }
                LightRequest::Complete => assert!(!read_by_completion && !kernel_copy),
                LightRequest::Registered => assert!(!kernel_copy && !read_by_completion),
            }
            if kernel_copy {
                assert!(read_by_completion, "the kernel copied a stored request");
            }
        });
    }
}
