//! A light task's cancel slot: where a cancel request waits, in the task's
//! cell, until the task observes it or the kernel registers the task (rules
//! LT7 and LT8 in `kernel::light`). With it, aborting a light task, the
//! task's acknowledgement and its cancelled completion take no kernel lock:
//! only this slot's lock, which nothing else contends for but the task
//! itself and whoever cancels it.
//!
//! A request takes the slot's lock and raises the cell's cancel hint (one
//! RMW of the state word, `state`) before it stores anything; the value
//! that RMW replaced decides: COMPLETE means there is nothing left to
//! cancel, REGISTERED (SW7) that the kernel owns the task's cancel state
//! now. The kernel sets REGISTERED before it reads the slot (`current`) to
//! copy it, so a request either lands in the slot before that reading or
//! sees the bit and goes to the kernel. The completion's RMW that sets
//! COMPLETE is ordered with the request's: if the request's came first,
//! the completion sees the hint and reads the slot (waiting for the lock
//! the request holds while it stores); if not, the request sees COMPLETE
//! and stores nothing. A completion that sees no hint reads no slot, so a
//! task never cancelled takes no lock here.

// The imports the loom model (`loom_tests` below) replaces.
use crate::loom::sync::{Mutex, MutexGuard};

use super::state::{COMPLETE, CellState};
use crate::kernel::{LightCancel, LightRequest};
use crate::types::{CancelReason, Time};

/// What a light task's own checkpoint found in its slot (LT7).
#[derive(Debug)]
pub(crate) enum LightAck {
    /// The task is cancelled: this observation acknowledges it (the
    /// record's `Cancelled`; repeated observations return it again). The
    /// reason is copied out of the stored one under the slot's lock, with
    /// no reference-count traffic: a region cancel stores one `Arc` in
    /// every task it reaches, whose count would otherwise be one cache
    /// line written by every draining task on every worker.
    Cancelled(CancelReason),
    /// Nothing was requested.
    Quiet,
    /// The kernel registered the task: ask the kernel.
    Registered,
}

/// A light task's cancel as its completion read it ([`CancelSlot::completion`]).
#[derive(Debug)]
pub(crate) struct LightCancelSeen {
    /// The task observed it: it ends `Cancelled`.
    pub(crate) acked: bool,
    /// The reason, unless no handle will read the task's end.
    pub(crate) reason: Option<std::sync::Arc<CancelReason>>,
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
        if slot
            .reason
            .as_ref()
            .is_some_and(|stored| !reason.outranks(stored))
        {
            return LightRequest::Unchanged;
        }
        // The hint first: the value it replaces decides (module doc).
        let before = state.cancel_requested(reason.kind.severity());
        if before.lifecycle() == COMPLETE {
            return LightRequest::Complete;
        }
        if before.is_registered() {
            return LightRequest::Registered;
        }
        let deadline = match &slot.reason {
            Some(_) => slot.deadline().min(grace_deadline),
            None => grace_deadline,
        };
        slot.reason = Some(reason.clone());
        slot.set_deadline(deadline);
        LightRequest::Stored
    }

    /// LT7: the task's own checkpoint: acknowledges a stored request.
    pub(crate) fn acknowledge(&self, state: &CellState) -> LightAck {
        let mut slot = self.lock();
        if state.load_acquire().is_registered() {
            return LightAck::Registered;
        }
        match &slot.reason {
            Some(reason) => {
                let reason = CancelReason::clone(reason);
                slot.deadline_acked |= ACKED;
                LightAck::Cancelled(reason)
            }
            None => LightAck::Quiet,
        }
    }

    /// LT8: what the task's completion (after it set COMPLETE) needs: whether
    /// the task acknowledged the stored cancel and, if `with_reason`, the
    /// reason. Without it (no handle will read the task's end, SW10) the
    /// shared reason's count is not touched.
    pub(crate) fn completion(&self, with_reason: bool) -> Option<LightCancelSeen> {
        let slot = self.lock();
        slot.reason.as_ref().map(|reason| LightCancelSeen {
            acked: slot.deadline_acked & ACKED != 0,
            reason: with_reason.then(|| reason.clone()),
        })
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

    /// A light task's state word (running) and cancel slot.
    fn running_task() -> (Arc<CellState>, Arc<CancelSlot>) {
        let state = Arc::new(CellState::new());
        assert!(state.start_running().is_some());
        (state, Arc::new(CancelSlot::new()))
    }

    /// A thread that aborts the task with a `kind` reason.
    fn spawn_aborter(
        state: &Arc<CellState>,
        slot: &Arc<CancelSlot>,
        kind: CancelKind,
    ) -> thread::JoinHandle<LightRequest> {
        let (state, slot) = (state.clone(), slot.clone());
        thread::spawn(move || {
            let reason = std::sync::Arc::new(CancelReason::new(kind));
            slot.request(&state, &reason, Time::from_nanos(10))
        })
    }

    /// Every abort is accounted exactly once: stored in the slot the
    /// completion reads (and then counted there), or refused because the
    /// task completed, or handed to the kernel because it registered the
    /// task, in which case the kernel's copy, taken after REGISTERED was
    /// set, holds every request stored before.
    #[test]
    fn an_abort_lands_in_exactly_one_place() {
        model(|| {
            let (state, slot) = running_task();
            let aborter = spawn_aborter(&state, &slot, CancelKind::User);
            let registrar = {
                let (state, slot) = (state.clone(), slot.clone());
                thread::spawn(move || {
                    state.mark_registered();
                    slot.current().is_some()
                })
            };
            // The task completes and reads its slot if the hint says so.
            let before = state.complete();
            let read_by_completion = before.cancel_severity().is_some() && slot.current().is_some();
            let outcome = aborter.join().unwrap();
            let kernel_copy = registrar.join().unwrap();
            match outcome {
                LightRequest::Stored => {
                    assert!(read_by_completion, "stored before COMPLETE was set");
                }
                LightRequest::Unchanged => unreachable!("the only request"),
                LightRequest::Complete => assert!(!read_by_completion && !kernel_copy),
                LightRequest::Registered => assert!(!kernel_copy && !read_by_completion),
            }
            if kernel_copy {
                assert!(read_by_completion, "the kernel copied a stored request");
            }
        });
    }

    /// The task acknowledges while an abort arrives, then completes: the
    /// completion reports exactly what the task saw. An acknowledged
    /// cancel is read back as acknowledged (the task ends `Cancelled`); a
    /// cancel stored after the task's checkpoint is read back unacknowledged
    /// (the task returned its value without observing it), or is refused
    /// if it came after the completion.
    #[test]
    fn the_completion_reports_the_acknowledgement_the_task_made() {
        model(|| {
            let (state, slot) = running_task();
            let aborter = spawn_aborter(&state, &slot, CancelKind::Shutdown);
            let acked = matches!(slot.acknowledge(&state), LightAck::Cancelled(_));
            let before = state.complete();
            let read = before
                .cancel_severity()
                .and_then(|_| slot.current())
                .map(|c| c.acked);
            let outcome = aborter.join().unwrap();
            if acked {
                assert_eq!(read, Some(true), "acknowledged: the task ends Cancelled");
            }
            match outcome {
                LightRequest::Stored => assert!(read.is_some(), "a stored cancel is read"),
                LightRequest::Complete => assert_eq!(read, None),
                other => unreachable!("{other:?}"),
            }
        });
    }
}
