//! Blocking forms for plain threads: [`Sender::blocking_send`] and
//! [`Receiver::blocking_recv`] (rules TB1–TB2 of `runtime::park`).

use super::{Chan, Receiver, RecvError, SendError, Sender};
use crate::runtime::park::{assert_may_block, park_until};
use crate::sync::waiters::WaiterKey;

/// Leaves the sender queue if the blocked thread unwinds while registered.
struct Registration<'a, T> {
    chan: &'a Chan<T>,
    key: Option<WaiterKey>,
}

impl<T> Drop for Registration<'_, T> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            drop(self.chan.abandon_wait(k));
        }
    }
}

impl<T> Sender<T> {
    /// Sends `value` from a plain thread (no `Cx`), blocking the thread until
    /// a slot is free.
    ///
    /// The thread queues with the async senders, in the same FIFO order
    /// (rule 3); its value enters the channel when its turn comes. There is
    /// no cancellation: the call returns when the value was queued or the
    /// receiver is gone (`Err(SendError::Disconnected(value))`, the value
    /// comes back).
    ///
    /// # Panics
    /// If called on a thread that runs runtime tasks (rule TB1): inside a
    /// task use [`send`](Self::send) with the task's `&cx`.
    #[track_caller]
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        assert_may_block("mpsc::Sender::blocking_send");
        let mut reg = Registration {
            chan: &self.chan,
            key: None,
        };
        let mut value = Some(value);
        park_until(|waker| reg.chan.poll_send(&mut reg.key, &mut value, waker))
    }
}

impl<T> Receiver<T> {
    /// Receives the next message on a plain thread (no `Cx`), blocking the
    /// thread until one is queued.
    ///
    /// Errors: `Disconnected` once every sender is gone (or the channel was
    /// closed), the queue is empty and no permit is outstanding. There is
    /// no cancellation.
    ///
    /// # Panics
    /// If called on a thread that runs runtime tasks (rule TB1): inside a
    /// task use [`recv`](Self::recv) with the task's `&cx`.
    #[track_caller]
    pub fn blocking_recv(&mut self) -> Result<T, RecvError> {
        assert_may_block("mpsc::Receiver::blocking_recv");
        park_until(|waker| self.poll_recv(waker)).ok_or(RecvError::Disconnected)
    }
}
