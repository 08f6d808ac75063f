//! A channel for exactly one value, with an optional two-phase send and a
//! cancel-safe receive.
//!
//! ```
//! use asupersync::RuntimeBuilder;
//! use asupersync::channel::oneshot;
//!
//! let rt = RuntimeBuilder::current_thread().build().unwrap();
//! let answer = rt.block_on(|cx| async move {
//!     let (tx, mut rx) = oneshot::channel::<u32>();
//!     cx.spawn(move |cx| async move {
//!         // The reply is an obligation from here on: it must be sent or
//!         // explicitly dropped, never forgotten.
//!         let permit = tx.reserve(&cx).expect("the requester is waiting");
//!         let _ = permit.send(42);
//!     })
//!     .unwrap();
//!     rx.recv(&cx).await
//! });
//! assert_eq!(answer, Ok(42));
//! ```
//!
//! Rules:
//! 1. **Sending never waits.** [`Sender::send`] stores the value at once, or
//!    gives it back (`SendError::Disconnected`) if the receiver is gone or
//!    closed. It consumes the sender: at most one value is ever sent.
//! 2. **Two-phase send.** [`Sender::reserve`] turns the sender into a
//!    [`OneshotPermit`] carrying an obligation (kind `"oneshot_permit"`) of
//!    the reserving task. [`OneshotPermit::send`] commits it (or aborts it
//!    and returns the value if the receiver is gone). Dropping the permit
//!    aborts the obligation and disconnects the receiver; forgetting it
//!    (`mem::forget`) is an obligation leak.
//! 3. **Disconnection.** Dropping the sender (or an unused permit) without
//!    sending disconnects: the receiver gets `Disconnected`. Dropping or
//!    [closing](Receiver::close) the receiver makes sends fail with the
//!    value back and wakes a sender waiting in [`Sender::closed`].
//! 4. **Cancel-safe receive.** [`Receiver::recv`] takes `&Cx` and is
//!    cancel-aware; a cancelled (or dropped) receive consumes nothing, so
//!    the value stays retrievable by a later `recv` or `try_recv`. A value
//!    that is already there is returned even in a cancelled task.
//! 5. **Once.** After the value has been received, further receives return
//!    `Disconnected`.
//! 6. **Stream.** [`Receiver`] implements [`futures_core::Stream`]: it
//!    yields the value (if one is sent) and then ends. A stream poll is not
//!    cancel-aware (it has no `Cx`) and consumes nothing when dropped.
//!
//! Errors are the [`mpsc`](super::mpsc) types ([`SendError`], [`RecvError`],
//! [`TryRecvError`], [`ReserveError`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

pub use super::mpsc::{RecvError, ReserveError, SendError, TryRecvError};
use crate::exec::cx::Cx;
use crate::obligation::Obligation;
use crate::types::CancelReason;
use crate::types::cancel::Cancelled;

/// The obligation kind of a [`OneshotPermit`].
pub const PERMIT_KIND: &str = "oneshot_permit";

/// Creates a oneshot channel.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            value: None,
            tx_done: false,
            rx_closed: false,
            rx_waker: None,
            tx_waker: None,
        }),
    });
    (
        Sender {
            inner: Some(inner.clone()),
        },
        Receiver { inner },
    )
}

struct Inner<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    value: Option<T>,
    /// The sender side is finished: it sent, or was dropped without sending.
    tx_done: bool,
    /// The receiver closed or was dropped.
    rx_closed: bool,
    rx_waker: Option<Waker>,
    tx_waker: Option<Waker>,
}

impl<T> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores the value (rule 1); gives it back if the receiver is gone.
    fn send(&self, value: T) -> Result<(), T> {
        let waker = {
            let mut st = self.lock();
            st.tx_done = true;
            if st.rx_closed {
                return Err(value);
            }
            st.value = Some(value);
            st.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// The sending side ends without a value (rule 3).
    fn disconnect(&self) {
        let waker = {
            let mut st = self.lock();
            st.tx_done = true;
            st.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn is_closed(&self) -> bool {
        self.lock().rx_closed
    }

    fn poll_closed(&self, waker: &Waker) -> Poll<()> {
        let mut st = self.lock();
        if st.rx_closed {
            return Poll::Ready(());
        }
        match &st.tx_waker {
            Some(w) if w.will_wake(waker) => {}
            _ => st.tx_waker = Some(waker.clone()),
        }
        Poll::Pending
    }
}

// ----- Sender ---------------------------------------------------------------

/// The sending half. Dropping it without sending disconnects the receiver.
pub struct Sender<T> {
    /// `None` once consumed by `send` or `reserve`.
    inner: Option<Arc<Inner<T>>>,
}

impl<T> Sender<T> {
    fn inner(&self) -> &Inner<T> {
        self.inner.as_ref().expect("a live sender")
    }

    /// Sends `value` (rule 1). Never waits.
    ///
    /// Errors: `SendError::Disconnected(value)` if the receiver is gone or
    /// closed.
    pub fn send(mut self, value: T) -> Result<(), SendError<T>> {
        let inner = self.inner.take().expect("a live sender");
        inner.send(value).map_err(SendError::Disconnected)
    }

    /// Turns the sender into a permit whose obligation (kind
    /// `"oneshot_permit"`) belongs to `cx`'s task (rule 2). Never waits.
    ///
    /// Errors: `Disconnected` if the receiver is gone or closed; `Cancelled`
    /// if `cx`'s region is already closed and can record no obligation. The
    /// sender is consumed either way (the receiver sees `Disconnected`).
    ///
    /// # Cancellation
    /// Not an await point: cancellation is not observed here. A permit held
    /// by a task that is then cancelled is aborted with its other
    /// obligations.
    pub fn reserve(mut self, cx: &Cx) -> Result<OneshotPermit<T>, ReserveError> {
        let inner = self.inner.take().expect("a live sender");
        if inner.is_closed() {
            inner.disconnect();
            return Err(ReserveError::Disconnected);
        }
        match cx.reserve_obligation(PERMIT_KIND) {
            Ok(obligation) => Ok(OneshotPermit {
                inner: Some(inner),
                obligation: Some(obligation),
            }),
            Err(e) => {
                inner.disconnect();
                Err(ReserveError::Cancelled(Cancelled::new(
                    CancelReason::resource_unavailable()
                        .with_message(format!("cannot record a oneshot permit: {e}")),
                )))
            }
        }
    }

    /// Whether the receiver is gone or closed (a send would fail).
    pub fn is_closed(&self) -> bool {
        self.inner().is_closed()
    }

    /// Waits until the receiver is dropped or closed, e.g. to stop
    /// computing a reply nobody will read.
    ///
    /// # Cancellation
    /// Cancel-aware: returns `Err(Cancelled)` if the task is cancelled while
    /// waiting. Nothing is held; the sender is untouched.
    pub fn closed<'a>(&'a mut self, cx: &'a Cx) -> Closed<'a, T> {
        Closed { tx: self, cx }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.disconnect();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// The future returned by [`Sender::closed`].
#[must_use = "futures do nothing unless awaited"]
pub struct Closed<'a, T> {
    tx: &'a mut Sender<T>,
    cx: &'a Cx,
}

impl<T> Future for Closed<'_, T> {
    type Output = Result<(), Cancelled>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.tx.inner().poll_closed(task_cx.waker()) {
            Poll::Ready(()) => Poll::Ready(Ok(())),
            Poll::Pending => match this.cx.observe_cancel() {
                Some(reason) => Poll::Ready(Err(Cancelled::new(reason))),
                None => Poll::Pending,
            },
        }
    }
}

impl<T> fmt::Debug for Closed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closed").finish_non_exhaustive()
    }
}

// ----- OneshotPermit --------------------------------------------------------

/// A reserved send (rule 2): commit it with [`send`](Self::send); dropping it
/// aborts the obligation and disconnects the receiver.
#[must_use = "dropping a OneshotPermit disconnects the receiver without sending"]
pub struct OneshotPermit<T> {
    inner: Option<Arc<Inner<T>>>,
    obligation: Option<Obligation>,
}

impl<T> OneshotPermit<T> {
    /// Sends `value`, committing the obligation. Never waits.
    ///
    /// Errors: `SendError::Disconnected(value)` if the receiver is gone or
    /// closed; the obligation is then aborted (nothing was delivered).
    pub fn send(mut self, value: T) -> Result<(), SendError<T>> {
        let inner = self.inner.take().expect("a permit is used once");
        let obligation = self.obligation.take().expect("a permit is used once");
        match inner.send(value) {
            Ok(()) => {
                obligation.commit();
                Ok(())
            }
            Err(value) => {
                obligation.abort();
                Err(SendError::Disconnected(value))
            }
        }
    }

    /// Whether the receiver is gone or closed (a send would fail).
    pub fn is_closed(&self) -> bool {
        self.inner.as_ref().expect("a live permit").is_closed()
    }

    /// The obligation recorded for this permit.
    pub fn obligation(&self) -> &Obligation {
        self.obligation.as_ref().expect("a live permit")
    }
}

impl<T> Drop for OneshotPermit<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.disconnect();
        }
        // The obligation (if unused) aborts as it drops.
    }
}

impl<T> fmt::Debug for OneshotPermit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneshotPermit")
            .field("obligation", &self.obligation)
            .finish()
    }
}

// ----- Receiver -------------------------------------------------------------

/// The receiving half.
pub struct Receiver<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Receiver<T> {
    /// Waits for the value.
    ///
    /// Errors: `Disconnected` if the sender ended without sending, or the
    /// value was already received; `Cancelled` as below.
    ///
    /// # Cancellation
    /// Cancel-aware and cancel-safe (rule 4). If the task is cancelled while
    /// waiting, `recv` returns `Err(RecvError::Cancelled)` and consumes
    /// nothing: a value sent later stays retrievable by another `recv` or
    /// `try_recv`. A value that is already there is returned even in a
    /// cancelled task. Dropping the future consumes nothing either.
    pub fn recv<'a>(&'a mut self, cx: &'a Cx) -> Recv<'a, T> {
        Recv { rx: self, cx }
    }

    /// Takes the value if it has been sent.
    ///
    /// Errors: `Empty` if the sender may still send, `Disconnected` if it
    /// never will (it ended, the receiver was closed, or the value was
    /// already received).
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut st = self.inner.lock();
        match st.value.take() {
            Some(v) => Ok(v),
            None if st.tx_done || st.rx_closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Refuses any future send (it fails with the value back) and wakes a
    /// sender waiting in [`Sender::closed`]. A value sent before is still
    /// retrievable.
    pub fn close(&mut self) {
        let waker = {
            let mut st = self.inner.lock();
            st.rx_closed = true;
            st.tx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether no value will ever be received: the sender ended (or the
    /// channel was closed) and no value is waiting.
    pub fn is_terminated(&self) -> bool {
        let st = self.inner.lock();
        st.value.is_none() && (st.tx_done || st.rx_closed)
    }

    fn poll_recv(&mut self, waker: &Waker) -> Poll<Option<T>> {
        let mut st = self.inner.lock();
        if let Some(v) = st.value.take() {
            return Poll::Ready(Some(v));
        }
        if st.tx_done || st.rx_closed {
            return Poll::Ready(None);
        }
        match &st.rx_waker {
            Some(w) if w.will_wake(waker) => {}
            _ => st.rx_waker = Some(waker.clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (value, waker) = {
            let mut st = self.inner.lock();
            st.rx_closed = true;
            st.rx_waker = None;
            (st.value.take(), st.tx_waker.take())
        };
        // Dropped outside the lock: the value may own this channel's sender.
        drop(value);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("Receiver")
            .field("has_value", &st.value.is_some())
            .field("sender_done", &st.tx_done)
            .field("closed", &st.rx_closed)
            .finish()
    }
}

/// Rule 6: yields the value once, then ends. Not cancel-aware; dropping a
/// pending poll consumes nothing.
impl<T> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(task_cx.waker())
    }
}

/// The future returned by [`Receiver::recv`].
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, T> {
    rx: &'a mut Receiver<T>,
    cx: &'a Cx,
}

impl<T> Future for Recv<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.rx.poll_recv(task_cx.waker()) {
            Poll::Ready(Some(v)) => Poll::Ready(Ok(v)),
            Poll::Ready(None) => Poll::Ready(Err(RecvError::Disconnected)),
            Poll::Pending => match this.cx.observe_cancel() {
                Some(reason) => Poll::Ready(Err(RecvError::Cancelled(Cancelled::new(reason)))),
                None => Poll::Pending,
            },
        }
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}

// Compile-time auto-trait checks (with `T: Send`).
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    const fn send<X: Send>() {}
    send_sync::<Sender<u8>>();
    send_sync::<Receiver<u8>>();
    send_sync::<OneshotPermit<u8>>();
    send::<Recv<'static, u8>>();
    send::<Closed<'static, u8>>();
};
