//! `sleep` and `sleep_until`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use super::entry::{TimerEntry, TimerPoll};
use crate::exec::cx::{Capabilities, Cx};
use crate::types::Time;
use crate::types::cancel::Cancelled;

/// Waits until `duration` has passed.
///
/// # Cancellation
/// Cancel-aware: if the task is cancelled while sleeping, the sleep returns
/// `Err(Cancelled)` at once (this acknowledges the cancellation) and its
/// timer is released. Nothing else is held.
///
/// # Panics
/// If `cx` was narrowed without [`Capabilities::TIME`].
#[track_caller]
pub fn sleep(cx: &Cx, duration: Duration) -> Sleep {
    let deadline = cx.now() + duration;
    sleep_until(cx, deadline)
}

/// Waits until runtime time reaches `deadline`. See [`sleep`].
///
/// # Cancellation
/// As for [`sleep`].
#[track_caller]
pub fn sleep_until(cx: &Cx, deadline: Time) -> Sleep {
    cx.require(Capabilities::TIME, "time");
    Sleep {
        cx: cx.clone(),
        deadline,
        entry: TimerEntry::default(),
    }
}

pin_project! {
    /// The future returned by [`sleep`] and [`sleep_until`].
    ///
    /// Like tokio's, it is `!Unpin`: its timer entry lives inside it and the
    /// timer wheel points at it while it waits (rule TE7 in `time::entry`),
    /// so arming allocates nothing. Pin it to poll it by hand
    /// (`std::pin::pin!`, or `Box::pin`); `.await` does that for you.
    #[must_use = "futures do nothing unless awaited"]
    pub struct Sleep {
        cx: Cx,
        deadline: Time,
        #[pin]
        entry: TimerEntry,
    }

    impl PinnedDrop for Sleep {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.entry.clear(this.cx); // TE7
        }
    }
}

impl Sleep {
    /// When the sleep ends.
    pub fn deadline(&self) -> Time {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = Result<(), Cancelled>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this
            .entry
            .poll(this.cx, *this.deadline, task_cx.waker(), true)
        {
            TimerPoll::Elapsed => Poll::Ready(Ok(())),
            TimerPoll::Cancelled(c) => Poll::Ready(Err(c)),
            TimerPoll::Pending => Poll::Pending,
        }
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}
