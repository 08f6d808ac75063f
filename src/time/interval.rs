//! `interval`: a periodic ticker.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::entry::{TimerEntry, TimerPoll};
use crate::exec::cx::{Capabilities, Cx};
use crate::types::Time;
use crate::types::cancel::Cancelled;

/// What an [`Interval`] does when ticks were missed (the consumer was late).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks back to back until caught up (the schedule keeps
    /// its original phase).
    #[default]
    Burst,
    /// Restart the schedule from now: the next tick is one period after the
    /// late tick was taken.
    Delay,
    /// Drop the missed ticks: the next tick is the next one on the original
    /// schedule that lies in the future.
    Skip,
}

/// A ticker that completes first immediately, then every `period`.
///
/// # Panics
/// If `period` is zero (a zero period would spin) or `cx` lacks
/// [`Capabilities::TIME`].
#[track_caller]
pub fn interval(cx: &Cx, period: Duration) -> Interval {
    let start = cx.now();
    interval_at(cx, start, period)
}

/// A ticker whose first tick is at `start`, then every `period`.
///
/// # Panics
/// As for [`interval`].
#[track_caller]
pub fn interval_at(cx: &Cx, start: Time, period: Duration) -> Interval {
    cx.require(Capabilities::TIME, "time");
    assert!(!period.is_zero(), "interval period must be non-zero");
    Interval {
        cx: cx.clone(),
        period,
        next: start,
        behavior: MissedTickBehavior::default(),
        entry: Box::pin(TimerEntry::default()),
    }
}

/// A periodic ticker; see [`interval`].
pub struct Interval {
    cx: Cx,
    period: Duration,
    next: Time,
    behavior: MissedTickBehavior,
    /// Boxed (TE7): an `Interval` is not pinned and may move between ticks
    /// (a forgotten `Tick` can leave the entry armed), the entry may not.
    entry: Pin<Box<TimerEntry>>,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled time.
    ///
    /// # Cancellation
    /// Cancel-aware: returns `Err(Cancelled)` if the task is cancelled while
    /// waiting. The schedule is untouched by a cancelled or dropped `tick`:
    /// the same tick is still due on the next call.
    pub fn tick(&mut self) -> Tick<'_> {
        Tick { interval: self }
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// When the next tick is due.
    pub fn next_deadline(&self) -> Time {
        self.next
    }

    /// The current missed-tick behaviour.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.behavior
    }

    /// Sets the missed-tick behaviour.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.behavior = behavior;
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.next = self.cx.now() + self.period;
        self.entry.as_mut().clear(&self.cx);
    }

    /// Computes the tick after the one scheduled at `fired`, taken at `now`.
    fn schedule_after(&self, fired: Time, now: Time) -> Time {
        let period = self.period;
        let on_schedule = fired + period;
        if on_schedule > now {
            return on_schedule;
        }
        match self.behavior {
            MissedTickBehavior::Burst => on_schedule,
            MissedTickBehavior::Delay => now + period,
            MissedTickBehavior::Skip => {
                let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
                let late = now.duration_since(fired).as_nanos() as u64;
                let skipped = late / period_ns + 1;
                Time::from_nanos(
                    fired
                        .as_nanos()
                        .saturating_add(skipped.saturating_mul(period_ns)),
                )
            }
        }
    }
}

impl Drop for Interval {
    fn drop(&mut self) {
        self.entry.as_mut().clear(&self.cx);
    }
}

impl std::fmt::Debug for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .field("next", &self.next)
            .field("behavior", &self.behavior)
            .finish()
    }
}

/// The future returned by [`Interval::tick`].
#[must_use = "futures do nothing unless awaited"]
pub struct Tick<'a> {
    interval: &'a mut Interval,
}

impl Drop for Tick<'_> {
    fn drop(&mut self) {
        // Rule T3; the schedule (`next`) is untouched.
        self.interval.entry.as_mut().clear(&self.interval.cx);
    }
}

impl Future for Tick<'_> {
    type Output = Result<Time, Cancelled>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let iv = &mut *self.get_mut().interval;
        match iv
            .entry
            .as_mut()
            .poll(&iv.cx, iv.next, task_cx.waker(), true)
        {
            TimerPoll::Pending => Poll::Pending,
            TimerPoll::Cancelled(c) => Poll::Ready(Err(c)),
            TimerPoll::Elapsed => {
                let fired = iv.next;
                let now = iv.cx.now();
                iv.next = iv.schedule_after(fired, now);
                Poll::Ready(Ok(fired))
            }
        }
    }
}
