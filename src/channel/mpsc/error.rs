//! Error types shared by [`mpsc`](super) and [`oneshot`](crate::channel::oneshot).
//!
//! Every error of an operation that was handed a value gives the value back
//! (`into_inner`), so a message is never lost silently. `Debug` does not
//! require `T: Debug` (as in `std::sync::mpsc`): it prints the variant only.

use std::fmt;

use crate::types::cancel::Cancelled;

/// A send that did not deliver its value; the value is inside.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendError<T> {
    /// The receiver is gone (dropped or closed): nobody will ever read it.
    Disconnected(T),
    /// The sending task was cancelled while it waited for capacity.
    Cancelled(T),
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Disconnected(v) | SendError::Cancelled(v) => v,
        }
    }

    /// A reference to the value that was not sent.
    pub fn inner(&self) -> &T {
        match self {
            SendError::Disconnected(v) | SendError::Cancelled(v) => v,
        }
    }

    /// Whether the receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendError::Disconnected(_))
    }

    /// Whether the send observed the task's cancellation.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, SendError::Cancelled(_))
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Disconnected(_) => f.write_str("Disconnected(..)"),
            SendError::Cancelled(_) => f.write_str("Cancelled(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
            SendError::Cancelled(_) => f.write_str("send cancelled while waiting for capacity"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

/// A `try_send` that did not deliver its value; the value is inside.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// No slot is free right now, or senders are already waiting for one
    /// (a `try_send` never overtakes a waiting sender).
    Full(T),
    /// The receiver is gone (dropped or closed).
    Disconnected(T),
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }

    /// A reference to the value that was not sent.
    pub fn inner(&self) -> &T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }

    /// Whether the channel was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether the receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    /// A `Cancelled` send maps to `Full` (it was waiting for capacity).
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Disconnected(v) => TrySendError::Disconnected(v),
            SendError::Cancelled(v) => TrySendError::Full(v),
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

/// A receive that returned no value. Nothing was consumed.
#[derive(Clone, PartialEq, Eq)]
pub enum RecvError {
    /// Every sender is gone (or the channel was closed) and nothing is left.
    Disconnected,
    /// The receiving task was cancelled while it waited; the channel is as
    /// it was (a message that arrives later stays queued).
    Cancelled(Cancelled),
}

impl RecvError {
    /// Whether the channel is disconnected and drained.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvError::Disconnected)
    }

    /// Whether the receive observed the task's cancellation.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, RecvError::Cancelled(_))
    }
}

impl From<Cancelled> for RecvError {
    fn from(c: Cancelled) -> Self {
        RecvError::Cancelled(c)
    }
}

impl fmt::Debug for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Disconnected => f.write_str("Disconnected"),
            RecvError::Cancelled(c) => f.debug_tuple("Cancelled").field(c).finish(),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Disconnected => f.write_str("receiving on a disconnected, empty channel"),
            RecvError::Cancelled(c) => write!(f, "receive {c}"),
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecvError::Cancelled(c) => Some(c),
            RecvError::Disconnected => None,
        }
    }
}

/// A `try_recv` that returned no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TryRecvError {
    /// Nothing is queued right now, but a sender may still send.
    Empty,
    /// Every sender is gone (or the channel was closed) and nothing is left.
    Disconnected,
}

impl TryRecvError {
    /// Whether the channel was merely empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }

    /// Whether the channel is disconnected and drained.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => f.write_str("receiving on a disconnected, empty channel"),
        }
    }
}

impl std::error::Error for TryRecvError {}

/// A reservation that returned no permit. Nothing is held.
#[derive(Clone, PartialEq, Eq)]
pub enum ReserveError {
    /// The receiver is gone (dropped or closed).
    Disconnected,
    /// The reserving task was cancelled while it waited for capacity (or
    /// its region could no longer record the permit's obligation).
    Cancelled(Cancelled),
}

impl ReserveError {
    /// Whether the receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, ReserveError::Disconnected)
    }

    /// Whether the reservation observed the task's cancellation.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ReserveError::Cancelled(_))
    }
}

impl From<Cancelled> for ReserveError {
    fn from(c: Cancelled) -> Self {
        ReserveError::Cancelled(c)
    }
}

impl fmt::Debug for ReserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReserveError::Disconnected => f.write_str("Disconnected"),
            ReserveError::Cancelled(c) => f.debug_tuple("Cancelled").field(c).finish(),
        }
    }
}

impl fmt::Display for ReserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReserveError::Disconnected => f.write_str("reserving on a disconnected channel"),
            ReserveError::Cancelled(c) => write!(f, "reservation {c}"),
        }
    }
}

impl std::error::Error for ReserveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReserveError::Cancelled(c) => Some(c),
            ReserveError::Disconnected => None,
        }
    }
}
