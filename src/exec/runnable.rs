//! The bottom of the execution core: what a driver plugs in and what every
//! layer above runs through. Nothing here knows the kernel, a task cell or a
//! `Cx`.
//!
//! - [`Runnable`] / [`TaskRef`]: a task a scheduler can run (implemented by
//!   `task_cell::TaskCell`).
//! - [`Schedule`], [`Clock`], [`BlockingRunner`]: the driver's queue, time
//!   and blocking pool, which `core::Core` holds.
//! - [`poll_catching`], [`wake_catching`]: a poll and a wake that turn a
//!   panic of user code into a value (contract 3).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use crate::types::{TaskId, Time};

/// A task the scheduler can run.
pub(crate) trait Runnable: Send + Sync {
    /// Polls the task once (or drops it if the kernel says so).
    fn run(self: Arc<Self>);
    /// The task's id.
    #[allow(dead_code)]
    fn id(&self) -> TaskId;
    /// Scheduler lane hint: the cleanup priority (`CancelKind::severity`,
    /// higher first) if the kernel requested this task's cancellation (the
    /// multi-thread scheduler's cancel lane).
    fn cancel_hint(&self) -> Option<u8> {
        None
    }
    /// Scheduler lane hint: the task's budget deadline in nanoseconds, if
    /// it has one (the multi-thread scheduler's timed lane).
    fn deadline_hint(&self) -> Option<u64> {
        None
    }
}

/// Type-erased run-queue entry.
pub(crate) type TaskRef = Arc<dyn Runnable>;

/// Where runnable tasks go. Each driver has its own queue discipline.
pub(crate) trait Schedule: Send + Sync {
    /// Makes `task` runnable. Must not block and must not run the task inline.
    fn schedule(&self, task: TaskRef);

    /// A timer was armed by a thread that runs no task (rule T4): wake a
    /// parked driver so it parks again with the new deadline in view.
    fn timer_armed(&self) {}
}

/// Where a production driver runs blocking closures (`spawn_blocking`,
/// `block_in_place` helpers; rules B1–B5 in `runtime::blocking`). The lab
/// has none: it runs blocking closures inline.
pub(crate) trait BlockingRunner: Send + Sync {
    /// Queues `job` to run on a thread that may block.
    fn submit(self: Arc<Self>, job: Box<dyn FnOnce() + Send>);
}

/// The driver's notion of "now".
pub(crate) trait Clock: Send + Sync {
    fn now(&self) -> Time;

    /// Rule CL1: a recent reading, never ahead of [`now`](Self::now) and
    /// behind it by at most what a driver runs between fresh readings (up
    /// to a batch, or one long poll). For stamps that only record when
    /// something happened and for timer polls, which a lagging time can
    /// only delay (never complete early). The kernel replaces it with a
    /// fresh reading for stamps that must be exact (`Kernel::exact_now`).
    fn recent(&self) -> Time {
        self.now()
    }

    /// A fresh reading that is not published as the recent one: for exact
    /// stamps taken in storms (an abort's, LT7), which would otherwise
    /// write one line that every worker reads, once per stamp.
    fn quiet(&self) -> Time {
        self.now()
    }
}

/// Monotonic wall clock; its epoch is the runtime's creation.
pub(crate) struct MonotonicClock {
    start: std::time::Instant,
    /// The latest reading (CL1): refreshed by every `now`, which each driver
    /// calls at least once per batch and after every park.
    latest: std::sync::atomic::AtomicU64,
}

impl MonotonicClock {
    pub(crate) fn new() -> Self {
        Self {
            start: std::time::Instant::now(),
            latest: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Time {
        let now = self.quiet();
        // CL1: every fresh reading becomes the recent one (a timer polled
        // right after `Cx::now` sees it); the line is written only when the
        // reading moves it forward.
        if self.latest.load(Ordering::Relaxed) < now.as_nanos() {
            self.latest.fetch_max(now.as_nanos(), Ordering::Relaxed);
        }
        now
    }

    fn recent(&self) -> Time {
        Time::from_nanos(self.latest.load(Ordering::Relaxed))
    }

    fn quiet(&self) -> Time {
        Time::from_nanos(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

/// Wakes `waker`, catching a panic from its `wake` (or its drop): the
/// runtime wakes wakers outside any task (completions, timers), where a
/// panic must not unwind (contract 3). The panic hook already reported it;
/// the waker's owner is unknown here, so nothing else is done with it.
pub(crate) fn wake_catching(waker: Waker) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
}

/// Polls `future` once, turning a panic into `Err(payload)`.
pub(crate) fn poll_catching<F: Future + ?Sized>(
    future: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Result<Poll<F::Output>, Box<dyn std::any::Any + Send>> {
    catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
}
