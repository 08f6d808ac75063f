//! `Sender::send_timeout` and its error, [`SendTimeoutError`] (shared with
//! [`mpmc`](crate::channel::mpmc)).

use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{Grant, SendError, Sender};
use crate::exec::cx::Cx;
use crate::sync::waiters::WaiterKey;
use crate::time::Sleep;

/// A send with a time limit that did not deliver its value; the value is
/// inside.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendTimeoutError<T> {
    /// No slot became free before the time limit.
    Timeout(T),
    /// The receiving side is gone (dropped or closed).
    Disconnected(T),
    /// The sending task was cancelled while it waited.
    Cancelled(T),
}

impl<T> SendTimeoutError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Timeout(v) | Self::Disconnected(v) | Self::Cancelled(v) => v,
        }
    }

    /// A reference to the value that was not sent.
    pub fn inner(&self) -> &T {
        match self {
            Self::Timeout(v) | Self::Disconnected(v) | Self::Cancelled(v) => v,
        }
    }

    /// Whether the time limit passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// Whether the receiving side is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Self::Disconnected(_))
    }

    /// Whether the send observed the task's cancellation.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Cancelled(_))
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Disconnected(v) => Self::Disconnected(v),
            SendError::Cancelled(v) => Self::Cancelled(v),
        }
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(_) => f.write_str("Timeout(..)"),
            Self::Disconnected(_) => f.write_str("Disconnected(..)"),
            Self::Cancelled(_) => f.write_str("Cancelled(..)"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(_) => f.write_str("send timed out waiting for capacity"),
            Self::Disconnected(_) => f.write_str("sending on a disconnected channel"),
            Self::Cancelled(_) => f.write_str("send cancelled while waiting for capacity"),
        }
    }
}

impl<T> std::error::Error for SendTimeoutError<T> {}

impl<T> Sender<T> {
    /// Sends `value`, waiting at most `timeout` for a free slot.
    ///
    /// Like [`send`](Self::send) — the value waits in the FIFO sender queue
    /// (rule 3) and enters the channel when its turn comes — but gives up
    /// once `timeout` has passed on the runtime's clock (virtual time in
    /// the lab). A slot that is free at the first poll is used at once, even
    /// with a zero `timeout`; no timer is registered unless the send has to
    /// wait.
    ///
    /// Errors give the value back: `Timeout(value)` if no slot was granted in
    /// time, `Disconnected(value)` if the receiver is gone or closed,
    /// `Cancelled(value)` as below. A value whose turn came before the time
    /// limit was observed is delivered (`Ok`), never returned as well.
    ///
    /// # Cancellation
    /// Cancel-aware: if the task is cancelled while waiting, the send returns
    /// `Err(SendTimeoutError::Cancelled(value))` (acknowledging the
    /// cancellation): nothing was sent, no slot or timer is held, and the
    /// other waiters keep their order. Dropping the future while it waits
    /// drops `value` unsent and releases the timer.
    ///
    /// # Panics
    /// If `cx` was narrowed without the time capability.
    #[track_caller]
    pub fn send_timeout<'a>(
        &'a self,
        cx: &'a Cx,
        value: T,
        timeout: Duration,
    ) -> SendTimeout<'a, T> {
        SendTimeout {
            sender: self,
            key: None,
            value: Some(value),
            sleep: crate::time::sleep(cx, timeout),
        }
    }
}

pin_project! {
    /// The future returned by [`Sender::send_timeout`]. `!Unpin`: it holds
    /// a [`Sleep`](crate::time::Sleep); pin it to poll it by hand.
    #[must_use = "futures do nothing unless awaited"]
    pub struct SendTimeout<'a, T> {
        sender: &'a Sender<T>,
        key: Option<WaiterKey>,
        // Moved out when the send ends, never pinned.
        value: Option<T>,
        // Cancel-aware: its cancellation is the send's. Pinned: its timer
        // entry lives in it (rule TE7 in `time::entry`).
        #[pin]
        sleep: Sleep,
    }

    impl<T> PinnedDrop for SendTimeout<'_, T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(k) = this.key.take() {
                // The parked value (if unsent) is dropped here, outside the lock.
                drop(this.sender.chan.abandon_wait(k));
            }
        }
    }
}

impl<T> Future for SendTimeout<'_, T> {
    type Output = Result<(), SendTimeoutError<T>>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let chan = &*this.sender.chan;
        if let Poll::Ready(r) = chan.poll_send(this.key, this.value, task_cx.waker()) {
            return Poll::Ready(r.map_err(SendTimeoutError::from));
        }
        let timed_out = match this.sleep.poll(task_cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(_cancelled)) => false,
        };
        let key = this.key.take().expect("a pending send is registered");
        Poll::Ready(match chan.abandon_wait(key) {
            // Granted before the limit or the cancellation was seen.
            (_, Some(Grant::Sent)) => Ok(()),
            (Some(v), Some(Grant::Closed)) => Err(SendTimeoutError::Disconnected(v)),
            (Some(v), _) if timed_out => Err(SendTimeoutError::Timeout(v)),
            (Some(v), _) => Err(SendTimeoutError::Cancelled(v)),
            (None, _) => unreachable!("an unsent value is still parked"),
        })
    }
}

impl<T> fmt::Debug for SendTimeout<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendTimeout")
            .field("waiting", &self.key.is_some())
            .field("deadline", &self.sleep.deadline())
            .finish()
    }
}
