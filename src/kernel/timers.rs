//! Timers: the wheel, the shared hint, grace and deadline timers firing.
//!
//! Invariants upheld here (numbered as in `docs/ARCHITECTURE.md`):
//! - K8 (timer hint): the shared hint never lies late: no pending timer is
//!   due before it, so a driver that reads it without the lock, and locks
//!   only once it has passed, never fires a timer late.

use super::*;

impl Kernel {
    pub(crate) fn insert_timer(&mut self, deadline: Time, waker: Waker) -> TimerKey {
        self.arm_timer(deadline, TimerEvent::Wake(waker))
    }

    /// Points timer `key` at `waker`; false if the timer is gone (fired).
    pub(crate) fn update_timer_waker(&mut self, key: TimerKey, waker: &Waker) -> bool {
        match self.timers.get_mut(key) {
            Some(TimerEvent::Wake(w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            _ => false,
        }
    }

    pub(crate) fn cancel_timer(&mut self, key: TimerKey) {
        self.timers.cancel(key);
    }

    /// K4: task `t`'s grace period is over if its deadline passed: it is
    /// force-dropped at its next poll (unless it is finishing already or
    /// runs uninterruptible code).
    pub(super) fn grace_expired(&mut self, t: TaskId, now: Time) {
        let Some(rec) = self.task_mut(t) else { return };
        if rec.grace_deadline.is_some_and(|d| d <= now)
            && rec.state.is_cancel_requested()
            && rec.force_drop.is_none()
            && !rec.uninterruptible
        {
            rec.force_drop = Some(ForceDropCause::GraceExpired);
            if let Some(a) = &rec.attention {
                a.request_attention();
            }
            let waker = rec.waker.clone();
            self.actions.wakes.push(waker);
        }
    }

    /// Fires every timer due at `now`.
    pub(crate) fn fire_timers(&mut self, now: Time) -> usize {
        let mut fired = Vec::new();
        self.timers.advance(now, &mut fired);
        let n = fired.len();
        if n > 0 {
            self.emit(TraceKind::TimerFire { count: n });
        }
        for (_, event) in fired {
            match event {
                TimerEvent::Wake(w) => self.actions.wakes.push(w),
                TimerEvent::Grace(t) => {
                    if let Some(rec) = self.task_mut(t) {
                        rec.grace_timer = None;
                    }
                    self.grace_expired(t, now);
                }
                TimerEvent::RegionGrace(r) => {
                    if let Some(rec) = self.region_mut(r) {
                        rec.grace_timer = None;
                    }
                    for t in self.region_tasks(r) {
                        self.grace_expired(t, now);
                    }
                }
                TimerEvent::RegionDeadline(r) => {
                    if let Some(rec) = self.region_mut(r) {
                        rec.deadline_timer = None;
                    }
                    self.region_deadline_passed(r, now);
                }
                TimerEvent::Deadline(t) => {
                    if let Some(rec) = self.task_mut(t) {
                        rec.deadline_timer = None;
                    }
                    self.request_cancel(
                        t,
                        CancelReason::deadline().with_message("budget deadline passed"),
                        now,
                    );
                }
            }
        }
        // K8: a fresh lower bound (O(levels); cancelled timers and the
        // wheel's slot granularity only ever make it early). When the cursor
        // already sits in the slot of a pending deadline the bound is `now`,
        // which would make an idle driver spin until it; the exact deadline
        // (a scan of that one small slot) lets it sleep instead.
        let next = match self.timers.next_deadline_bound() {
            Some(bound) if bound <= now => self.timers.next_deadline(),
            other => other,
        }
        .map_or(u64::MAX, Time::as_nanos);
        self.timer_hint
            .store(next, std::sync::atomic::Ordering::Release);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use std::sync::atomic::Ordering;

    /// K8: the hint never passes the next deadline, and once the wheel's
    /// cursor is inside the deadline's millisecond it is the exact deadline
    /// (not `now`, which would keep an idle driver from sleeping).
    #[test]
    fn the_timer_hint_is_early_but_exact_inside_the_deadlines_millisecond() {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let hint = k.timer_hint();
        assert_eq!(hint.load(Ordering::Acquire), u64::MAX, "no timer: no hint");
        let deadline = ms(20) + Duration::from_micros(500);
        k.insert_timer(deadline, Waker::noop().clone());
        assert_eq!(hint.load(Ordering::Acquire), deadline.as_nanos());
        k.fire_timers(ms(5));
        let early = hint.load(Ordering::Acquire);
        assert!(early <= deadline.as_nanos(), "the hint passed the deadline");
        k.fire_timers(ms(20) + Duration::from_micros(100));
        assert_eq!(hint.load(Ordering::Acquire), deadline.as_nanos());
        assert_eq!(k.fire_timers(deadline), 1);
        assert_eq!(hint.load(Ordering::Acquire), u64::MAX);
    }
}
