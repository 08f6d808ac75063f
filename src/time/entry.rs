//! A registration in the kernel's timer wheel, shared by every timer future.

use std::task::Waker;

use crate::exec::cx::Cx;
use crate::timer_wheel::TimerKey;
use crate::types::Time;
use crate::types::cancel::Cancelled;

/// What a timer poll found.
pub(crate) enum TimerPoll {
    Elapsed,
    Cancelled(Cancelled),
    Pending,
}

#[derive(Default)]
pub(crate) struct TimerEntry {
    key: Option<TimerKey>,
}

impl TimerEntry {
    /// Checks the deadline (and, if `cancel_aware`, the task's cancellation)
    /// and otherwise (re-)registers `waker`, in one kernel call.
    pub(crate) fn poll(
        &mut self,
        cx: &Cx,
        deadline: Time,
        waker: &Waker,
        cancel_aware: bool,
    ) -> TimerPoll {
        let (task, region) = (cx.task_id(), cx.region_id());
        crate::exec::context::check_cx(cx.core(), task); // rule CX1
        let in_finalizer = crate::exec::context::in_finalizer();
        let key = &mut self.key;
        // CL1: the recent clock reading. It is never ahead of the clock, so
        // a timer never completes early (T1); if it lags, the timer is
        // registered and fires at the driver's next fresh reading.
        let observed = cx.core().with_kernel_recent(|k, now| {
            if !in_finalizer && !k.task_alive(task, region) {
                return Err(None); // CX1: nothing would ever wake it
            }
            if cancel_aware && let Some(reason) = k.observe_cancel(task, region, now) {
                if let Some(old) = key.take() {
                    k.cancel_timer(old);
                }
                return Err(Some(reason));
            }
            if now >= deadline {
                if let Some(old) = key.take() {
                    k.cancel_timer(old);
                }
                return Ok(TimerPoll::Elapsed);
            }
            match key {
                Some(existing) if k.update_timer_waker(*existing, waker) => {}
                slot => *slot = Some(k.insert_timer(deadline, waker.clone())),
            }
            Ok(TimerPoll::Pending)
        });
        // T4: a driver parked with a later deadline would oversleep a timer
        // armed by a thread that runs no task (runtime threads look at the
        // hint before they park).
        if matches!(observed, Ok(TimerPoll::Pending)) && !crate::exec::context::in_task() {
            cx.core().timer_armed_outside();
        }
        // The shared reason is copied after the kernel lock is released.
        match observed {
            Ok(poll) => poll,
            Err(Some(reason)) => {
                TimerPoll::Cancelled(Cancelled::new(std::sync::Arc::unwrap_or_clone(reason)))
            }
            Err(None) => crate::exec::context::completed_task_cx(task),
        }
    }

    /// Removes the registration, if any (rule T3).
    pub(crate) fn clear(&mut self, cx: &Cx) {
        if let Some(key) = self.key.take() {
            cx.core().lock().cancel_timer(key);
        }
    }
}
