//! `timeout` and `timeout_at`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use super::entry::{TimerEntry, TimerPoll};
use crate::exec::cx::{Capabilities, Cx};
use crate::types::Time;

/// The error of a [`timeout`] whose deadline passed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed {
    deadline: Time,
}

impl Elapsed {
    /// The deadline that passed.
    pub fn deadline(&self) -> Time {
        self.deadline
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deadline {} elapsed", self.deadline)
    }
}

impl std::error::Error for Elapsed {}

/// Runs `future` for at most `duration`.
///
/// Returns `Ok(output)` if the future finished first, `Err(Elapsed)` if
/// the deadline passed first; the future is then dropped. The future is
/// always polled before the deadline is checked, so a future that is ready
/// wins a tie.
///
/// # Cancellation
/// `timeout` itself does not observe cancellation: the inner future does
/// (its cancel-aware waits return their cancelled error, which `timeout`
/// passes through as `Ok(Err(..))`). Dropping the `Timeout` drops the inner
/// future and releases the timer.
///
/// # Panics
/// If `cx` was narrowed without [`Capabilities::TIME`].
#[track_caller]
pub fn timeout<F: Future>(cx: &Cx, duration: Duration, future: F) -> Timeout<F> {
    let deadline = cx.now() + duration;
    timeout_at(cx, deadline, future)
}

/// Runs `future` until runtime time reaches `deadline`. See [`timeout`].
///
/// # Cancellation
/// As for [`timeout`].
#[track_caller]
pub fn timeout_at<F: Future>(cx: &Cx, deadline: Time, future: F) -> Timeout<F> {
    cx.require(Capabilities::TIME, "time");
    Timeout {
        cx: cx.clone(),
        deadline,
        entry: TimerEntry::default(),
        future,
    }
}

pin_project! {
    /// The future returned by [`timeout`] and [`timeout_at`].
    ///
    /// `!Unpin`, like [`Sleep`](super::Sleep): its timer entry lives inside
    /// it (rule TE7 in `time::entry`). Pin it to poll it by hand.
    #[must_use = "futures do nothing unless awaited"]
    pub struct Timeout<F> {
        cx: Cx,
        deadline: Time,
        // TE7: pinned, the wheel points at it while armed.
        #[pin]
        entry: TimerEntry,
        #[pin]
        future: F,
    }

    impl<F> PinnedDrop for Timeout<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.entry.clear(this.cx);
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.future.poll(task_cx) {
            this.entry.clear(this.cx);
            return Poll::Ready(Ok(v));
        }
        match this
            .entry
            .poll(this.cx, *this.deadline, task_cx.waker(), false)
        {
            TimerPoll::Elapsed => Poll::Ready(Err(Elapsed {
                deadline: *this.deadline,
            })),
            TimerPoll::Cancelled(_) | TimerPoll::Pending => Poll::Pending,
        }
    }
}
