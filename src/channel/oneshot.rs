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
//!
//! # The protocol (no lock)
//!
//! A channel is one allocation (`Inner`, behind an `Arc` shared by the two
//! halves): a state word and three cells, the value and the two wakers
//! (the receiver's, woken by a send or a disconnect; the sender's, woken
//! by a close, for [`Sender::closed`]). The word's bits say who may touch
//! which cell; no operation takes a lock or waits for the other side. The
//! bits:
//!
//! - `TX_DONE`: the sending side is finished: it sent (the value is in its
//!   cell) or ended without sending (the cell is empty).
//! - `CLOSED`: the receiver closed or was dropped.
//! - `RX_WAKER` / `TX_WAKER`: the receiver's / the sender's waker cell holds
//!   a waker the other side may read.
//!
//! Rules (cited in the code as OS1..OS7; the loom models in `loom_tests`
//! check them, `docs/ARCHITECTURE.md` "Oneshot"):
//!
//! - **OS1 (the word).** `TX_DONE` and `CLOSED` are each set once and never
//!   cleared: `TX_DONE` only by the sending side (a send, a disconnect),
//!   `CLOSED` only by the receiver. `RX_WAKER` is set and cleared only by
//!   the receiver, `TX_WAKER` only by the sender. Every change is one
//!   acquire-release read-modify-write; every read is an acquire load, so a
//!   cell written before a change is visible to whoever sees the change.
//! - **OS2 (the value).** Until `TX_DONE` is set the value cell belongs to
//!   the sender: a send writes the value, then sets `TX_DONE` with a CAS
//!   that fails if `CLOSED` is set, and on failure takes the value back
//!   (the cell is still its own) to return it to the caller. A disconnect
//!   sets `TX_DONE` with the cell empty. Once `TX_DONE` is set the cell
//!   belongs to the receiver alone, which reads it only after seeing
//!   `TX_DONE`. So the value has exactly one owner at a time and is dropped
//!   exactly once: by whoever receives it, by the receiver's drop, by the
//!   caller of a failed send, or (never in practice) by `Inner`'s drop.
//! - **OS3 (the receiver's waker).** Only the receiver writes its waker
//!   cell, and only while `RX_WAKER` is clear and no change of the word it
//!   made or saw had `TX_DONE`: it writes, then sets `RX_WAKER`. To replace
//!   a stored waker it first clears `RX_WAKER`; it writes only if the value
//!   that clearing replaced had no `TX_DONE` (else the sender may be reading
//!   the old waker; the receiver leaves the cell alone and takes the value).
//!   The receiver may read its own cell (to compare wakers) at any time.
//! - **OS4 (the sender's waker).** The mirror of OS3: only the sender writes
//!   its cell, only while `TX_WAKER` is clear and it has seen no `CLOSED`;
//!   it clears `TX_WAKER` before replacing a stored waker and writes only if
//!   that change saw no `CLOSED`.
//! - **OS5 (who wakes whom).** The side whose finishing change (`TX_DONE`,
//!   `CLOSED`) comes first in the word's order wakes the other side: the
//!   change that sets `TX_DONE` wakes the receiver's waker iff it replaced a
//!   value with `RX_WAKER` set and `CLOSED` clear; the change that sets
//!   `CLOSED` wakes the sender's iff it replaced one with `TX_WAKER` set and
//!   `TX_DONE` clear. The waker is woken by reference (the owner may be
//!   comparing it), never taken. A poll that sets its waker bit and finds
//!   the other side's finishing bit already set does not wait: it returns
//!   the outcome itself, so no wake is lost.
//! - **OS6 (a finished side's own waker).** A side whose finishing change
//!   replaced a value without the other side's finishing bit owns its own
//!   waker cell again (by OS5 the other side, which will see this bit, never
//!   reads it) and drops the waker at once.
//! - **OS7 (the end).** Whatever is left (a waker, a value) is dropped by
//!   `Inner`'s drop, which runs after the last `Arc` is gone and so has
//!   every cell to itself.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

pub use super::mpsc::{RecvError, ReserveError, SendError, TryRecvError};
use crate::exec::cx::Cx;
// The types the loom models (`loom_tests` below) replace.
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::Arc;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// Wakes the waker stored in `cell`, if any, by reference.
///
/// # Safety
/// Nobody writes `cell` meanwhile (the caller cites the rule, OS3–OS5).
unsafe fn wake_stored(cell: &UnsafeCell<Option<Waker>>) {
    cell.with(|w| {
        // SAFETY: the caller's contract: the cell is only read meanwhile.
        if let Some(w) = unsafe { &*w } {
            w.wake_by_ref();
        }
    });
}

/// Drops the waker stored in `cell`, if any.
///
/// # Safety
/// The caller is the cell's only writer and nobody reads it meanwhile
/// (the caller cites the rule, OS6).
unsafe fn drop_stored(cell: &UnsafeCell<Option<Waker>>) {
    // SAFETY: the caller's contract: exclusive access to the cell.
    drop(cell.with_mut(|w| unsafe { (*w).take() }));
}
use crate::obligation::Obligation;
use crate::types::CancelReason;
use crate::types::cancel::Cancelled;

/// The obligation kind of a [`OneshotPermit`].
pub const PERMIT_KIND: &str = "oneshot_permit";

/// Creates a oneshot channel.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: AtomicUsize::new(0),
        value: UnsafeCell::new(None),
        rx_waker: UnsafeCell::new(None),
        tx_waker: UnsafeCell::new(None),
    });
    (
        Sender {
            inner: Some(inner.clone()),
        },
        Receiver { inner },
    )
}

// The state word's bits (module doc, "The protocol").
/// The sending side is finished (sent, or ended without sending).
const TX_DONE: usize = 0b0001;
/// The receiver closed or was dropped.
const CLOSED: usize = 0b0010;
/// The receiver's waker cell holds a waker the sender may wake.
const RX_WAKER: usize = 0b0100;
/// The sender's waker cell holds a waker the receiver may wake.
const TX_WAKER: usize = 0b1000;

/// The shared part of a channel (module doc, "The protocol"). It has no
/// `Drop` of its own: OS7, the cells drop what they hold once the last
/// `Arc` is gone (that drop synchronises with every other).
struct Inner<T> {
    state: AtomicUsize,
    /// OS2: the sender's until `TX_DONE`, the receiver's after.
    value: UnsafeCell<Option<T>>,
    /// OS3: written by the receiver only, woken by the sender (OS5).
    rx_waker: UnsafeCell<Option<Waker>>,
    /// OS4: written by the sender only, woken by the receiver (OS5).
    tx_waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the cells are accessed only as OS1–OS7 allow, so a `T` is moved
// between threads (hence `T: Send`) but never shared: no `&T` is ever handed
// out to two threads, so `T: Sync` is not needed. Wakers are `Send + Sync`.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: as above; every shared access goes through the word (OS1).
unsafe impl<T: Send> Sync for Inner<T> {}

impl<T> Inner<T> {
    fn load(&self) -> usize {
        // OS1: acquire, so the cells written before a change are visible.
        self.state.load(Ordering::Acquire)
    }

    /// Stores the value (rule 1); gives it back if the receiver is gone.
    fn send(&self, value: T) -> Result<(), T> {
        // SAFETY: OS2: `TX_DONE` is not set yet (only this sender sets it,
        // once), so the value cell is the sender's.
        self.value.with_mut(|v| unsafe { *v = Some(value) });
        // A guess instead of a load: a receiver already waiting (the word
        // last written on its thread) costs one CAS; a wrong guess costs a
        // retry with the value the CAS read.
        let mut state = RX_WAKER;
        loop {
            if state & CLOSED != 0 {
                // SAFETY: OS2: the CAS did not set `TX_DONE`: still ours.
                let value = self.value.with_mut(|v| unsafe { (*v).take() });
                return Err(value.expect("the value stored above"));
            }
            // OS1, OS2: release publishes the value with `TX_DONE`.
            match self.state.compare_exchange_weak(
                state,
                state | TX_DONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        self.finished_sending(state);
        Ok(())
    }

    /// The sending side ends without a value (rule 3).
    fn disconnect(&self) {
        // OS1, OS2: the value cell stays empty.
        let before = self.state.fetch_or(TX_DONE, Ordering::AcqRel);
        if before & CLOSED == 0 {
            self.finished_sending(before);
        }
    }

    /// After the change that set `TX_DONE`, replacing `before` (which had
    /// no `CLOSED`): wake the receiver (OS5), drop the sender's own waker
    /// (OS6).
    fn finished_sending(&self, before: usize) {
        debug_assert_eq!(before & (TX_DONE | CLOSED), 0);
        if before & RX_WAKER != 0 {
            // SAFETY: OS3, OS5: `RX_WAKER` was set and our change came
            // before any `CLOSED`: the receiver will not write its cell
            // again (it sees `TX_DONE` before writing); it may only read.
            unsafe { wake_stored(&self.rx_waker) };
        }
        if before & TX_WAKER != 0 {
            // SAFETY: OS6: a later `CLOSED` sees `TX_DONE` and does not
            // read the sender's cell; the sender (us) is the only writer.
            unsafe { drop_stored(&self.tx_waker) };
        }
    }

    /// Sets `CLOSED` (rule 3); returns the value the change replaced.
    fn close(&self) -> usize {
        let before = self.state.fetch_or(CLOSED, Ordering::AcqRel);
        if before & (CLOSED | TX_DONE) == 0 {
            if before & TX_WAKER != 0 {
                // SAFETY: OS4, OS5: the sender stores no waker after seeing
                // `CLOSED`, and clears `TX_WAKER` before replacing one: with
                // the bit set the cell is only read.
                unsafe { wake_stored(&self.tx_waker) };
            }
            if before & RX_WAKER != 0 {
                // SAFETY: OS6: `TX_DONE` will see `CLOSED` and not read the
                // receiver's cell; the receiver (us) is the only writer.
                unsafe { drop_stored(&self.rx_waker) };
            }
        }
        before
    }

    fn is_closed(&self) -> bool {
        self.load() & CLOSED != 0
    }

    /// Takes the value after seeing `TX_DONE` (receiver side only).
    ///
    /// # Safety
    /// The caller is the receiver (`&mut Receiver` or its drop) and has seen
    /// `TX_DONE` in the word (OS2).
    unsafe fn take_value(&self) -> Option<T> {
        // SAFETY: OS2, by the caller's contract.
        self.value.with_mut(|v| unsafe { (*v).take() })
    }

    /// Whether a value is waiting (receiver side, any reference).
    fn has_value(&self, state: usize) -> bool {
        // SAFETY: OS2: after `TX_DONE` only the receiver touches the cell,
        // and it writes only through `&mut Receiver`, which a caller holding
        // `&Receiver` rules out.
        state & TX_DONE != 0 && self.value.with(|v| unsafe { (*v).is_some() })
    }

    /// The receiver's poll (rules 4, 5; OS3, OS5).
    ///
    /// # Safety
    /// The caller is the receiver, through `&mut Receiver`.
    unsafe fn poll_recv(&self, waker: &Waker) -> Poll<Option<T>> {
        let state = self.load();
        if state & TX_DONE != 0 {
            // SAFETY: OS2: seen `TX_DONE`; the caller is the receiver.
            return Poll::Ready(unsafe { self.take_value() });
        }
        if state & CLOSED != 0 {
            // No value was sent before the close (OS2: a send after it fails).
            return Poll::Ready(None);
        }
        if state & RX_WAKER != 0 {
            // SAFETY: OS3: the receiver may always read its own cell.
            let same = self.rx_waker.with(|w| {
                unsafe { &*w }
                    .as_ref()
                    .is_some_and(|stored| stored.will_wake(waker))
            });
            if same {
                return Poll::Pending;
            }
            // OS3: take the cell back before writing it.
            let before = self.state.fetch_and(!RX_WAKER, Ordering::AcqRel);
            if before & TX_DONE != 0 {
                // The sender may be waking the old waker: leave it (OS7).
                // SAFETY: OS2: seen `TX_DONE`; the caller is the receiver.
                return Poll::Ready(unsafe { self.take_value() });
            }
        }
        // SAFETY: OS3: `RX_WAKER` is clear and no `TX_DONE` was seen: the
        // sender does not read the cell until we set the bit.
        self.rx_waker
            .with_mut(|w| unsafe { *w = Some(waker.clone()) });
        // OS1: release publishes the waker with the bit.
        let before = self.state.fetch_or(RX_WAKER, Ordering::AcqRel);
        if before & TX_DONE != 0 {
            // OS5: the sender finished before the bit was set and woke
            // nobody: return its outcome now.
            // SAFETY: OS2: seen `TX_DONE`; the caller is the receiver.
            return Poll::Ready(unsafe { self.take_value() });
        }
        Poll::Pending
    }

    /// The sender's wait for `CLOSED` (OS4, OS5).
    ///
    /// # Safety
    /// The caller is the sender, through `&mut Sender`.
    unsafe fn poll_closed(&self, waker: &Waker) -> Poll<()> {
        let state = self.load();
        if state & CLOSED != 0 {
            return Poll::Ready(());
        }
        if state & TX_WAKER != 0 {
            // SAFETY: OS4: the sender may always read its own cell.
            let same = self.tx_waker.with(|w| {
                unsafe { &*w }
                    .as_ref()
                    .is_some_and(|stored| stored.will_wake(waker))
            });
            if same {
                return Poll::Pending;
            }
            // OS4: take the cell back before writing it.
            let before = self.state.fetch_and(!TX_WAKER, Ordering::AcqRel);
            if before & CLOSED != 0 {
                // The receiver may be waking the old waker: leave it (OS7).
                return Poll::Ready(());
            }
        }
        // SAFETY: OS4: `TX_WAKER` is clear and no `CLOSED` was seen: the
        // receiver does not read the cell until we set the bit.
        self.tx_waker
            .with_mut(|w| unsafe { *w = Some(waker.clone()) });
        let before = self.state.fetch_or(TX_WAKER, Ordering::AcqRel);
        if before & CLOSED != 0 {
            // OS5: closed before the bit was set; nobody woke us.
            return Poll::Ready(());
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

    /// One poll of the wait in [`closed`](Self::closed), without the cancel
    /// check.
    fn poll_closed(&mut self, waker: &Waker) -> Poll<()> {
        // SAFETY: `&mut self`: the caller is the sender (OS4).
        unsafe { self.inner().poll_closed(waker) }
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
        match this.tx.poll_closed(task_cx.waker()) {
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
        let state = self.inner.load();
        if state & TX_DONE != 0 {
            // SAFETY: OS2: seen `TX_DONE`, through `&mut self`.
            return unsafe { self.inner.take_value() }.ok_or(TryRecvError::Disconnected);
        }
        if state & CLOSED != 0 {
            return Err(TryRecvError::Disconnected);
        }
        Err(TryRecvError::Empty)
    }

    /// Refuses any future send (it fails with the value back) and wakes a
    /// sender waiting in [`Sender::closed`]. A value sent before is still
    /// retrievable.
    pub fn close(&mut self) {
        self.inner.close();
    }

    /// Whether no value will ever be received: the sender ended (or the
    /// channel was closed) and no value is waiting.
    pub fn is_terminated(&self) -> bool {
        let state = self.inner.load();
        state & (TX_DONE | CLOSED) != 0 && !self.inner.has_value(state)
    }

    fn poll_recv(&mut self, waker: &Waker) -> Poll<Option<T>> {
        // SAFETY: `&mut self`: the caller is the receiver (OS2, OS3).
        unsafe { self.inner.poll_recv(waker) }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let before = self.inner.close();
        if before & TX_DONE != 0 {
            // OS2: a value sent before the close is the receiver's to drop,
            // now rather than with the last `Arc` (it may own anything,
            // such as other channels' halves).
            // SAFETY: OS2: seen `TX_DONE`; this is the receiver's drop.
            drop(unsafe { self.inner.take_value() });
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.load();
        f.debug_struct("Receiver")
            .field("has_value", &self.inner.has_value(state))
            .field("sender_done", &(state & TX_DONE != 0))
            .field("closed", &(state & CLOSED != 0))
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

/// Loom models of the protocol (OS1–OS7; run by `.ci/run` with
/// `--cfg loom`): the real channel, its halves on separate threads. The
/// cells are loom cells, so an access the word does not order is reported
/// as a data race.
#[cfg(all(test, loom))]
mod loom_tests {
    // Bookkeeping, outside the model (loom explores only its own types).
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::{Poll, Waker};

    use super::*;
    use crate::loom::{model, thread};

    /// A value that counts its drops.
    struct Val(std::sync::Arc<AtomicUsize>);

    impl Drop for Val {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn waker() -> (std::sync::Arc<Wakes>, Waker) {
        let w = std::sync::Arc::new(Wakes::default());
        (w.clone(), Waker::from(w))
    }

    fn wakes(w: &Wakes) -> usize {
        w.0.load(SeqCst)
    }

    /// Sends a counted value on its own thread; the value comes back if
    /// the send failed.
    fn spawn_send(
        tx: Sender<Val>,
        drops: &std::sync::Arc<AtomicUsize>,
    ) -> thread::JoinHandle<Result<(), Val>> {
        let val = Val(drops.clone());
        thread::spawn(move || tx.send(val).map_err(SendError::into_inner))
    }

    /// OS2, OS3, OS5, OS6: a send racing the receiver's poll and then its
    /// drop: the value is received, dropped with the receiver, or given
    /// back to the sender, exactly once; a poll that returned `Pending` is
    /// woken iff the send succeeded; no waker reference is leaked.
    #[test]
    fn loom_a_send_racing_a_poll_and_the_receivers_drop_hands_the_value_off_once() {
        model(|| {
            let drops = std::sync::Arc::new(AtomicUsize::new(0));
            let (tx, mut rx) = channel::<Val>();
            let sender = spawn_send(tx, &drops);
            let (w, wk) = waker();
            let polled = rx.poll_recv(&wk);
            drop(rx);
            let sent = sender.join().unwrap();
            match polled {
                Poll::Ready(Some(v)) => {
                    assert!(sent.is_ok(), "a received value was sent");
                    drop(v);
                }
                Poll::Ready(None) => panic!("nothing disconnects before the drop"),
                Poll::Pending => assert_eq!(
                    wakes(&w),
                    usize::from(sent.is_ok()),
                    "OS5: woken iff the send came before the close"
                ),
            }
            drop(sent);
            assert_eq!(drops.load(SeqCst), 1, "OS2: the value dropped exactly once");
            drop(wk);
            assert_eq!(std::sync::Arc::strong_count(&w), 1, "a waker leaked");
        });
    }

    /// OS2, OS4, OS5: a sender waiting in `closed` and then sending, racing
    /// a close: a send before the close delivers (the value stays
    /// retrievable), one after it fails with the value back; the waiting
    /// sender is woken iff the close came first.
    #[test]
    fn loom_a_send_racing_a_close_either_delivers_or_gets_the_value_back() {
        model(|| {
            let drops = std::sync::Arc::new(AtomicUsize::new(0));
            let (mut tx, mut rx) = channel::<Val>();
            let val = Val(drops.clone());
            let (w, wk) = waker();
            let sender = thread::spawn(move || {
                let waited = tx.poll_closed(&wk).is_pending();
                let sent = tx.send(val).map_err(SendError::into_inner);
                (waited, sent)
            });
            rx.close();
            let (waited, sent) = sender.join().unwrap();
            match &sent {
                Ok(()) => assert!(rx.try_recv().is_ok(), "a value sent before the close stays"),
                Err(_) => assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected))),
            }
            if waited {
                assert_eq!(
                    wakes(&w),
                    usize::from(sent.is_err()),
                    "OS5: the waiting sender is woken iff the close came first"
                );
            } else {
                assert!(sent.is_err(), "`closed` was ready: the send must fail");
                assert_eq!(wakes(&w), 0);
            }
            drop(sent);
            drop(rx);
            assert_eq!(drops.load(SeqCst), 1, "OS2: the value dropped exactly once");
            assert_eq!(std::sync::Arc::strong_count(&w), 1, "a waker leaked");
        });
    }

    /// OS3, OS5: the sender dropped unsent while the receiver polls: a
    /// poll that returned `Pending` is woken exactly once and the next
    /// poll reports the disconnection.
    #[test]
    fn loom_a_sender_dropped_unsent_wakes_a_waiting_receiver_exactly_once() {
        model(|| {
            let (tx, mut rx) = channel::<u8>();
            let dropper = thread::spawn(move || drop(tx));
            let (w, wk) = waker();
            let first = rx.poll_recv(&wk);
            dropper.join().unwrap();
            match first {
                Poll::Ready(v) => {
                    assert!(v.is_none(), "nothing was sent");
                    assert_eq!(wakes(&w), 0);
                }
                Poll::Pending => {
                    assert_eq!(wakes(&w), 1, "OS5: the disconnect wakes the receiver");
                    assert!(matches!(rx.poll_recv(&wk), Poll::Ready(None)));
                }
            }
            drop(rx);
            drop(wk);
            assert_eq!(std::sync::Arc::strong_count(&w), 1, "a waker leaked");
        });
    }

    /// OS3, OS5: the receiver re-polls with another waker while the value
    /// is sent: the replaced waker is never woken once the new one is
    /// stored, a poll that returns `Pending` has its waker woken exactly
    /// once, there is at most one wake in all, and the value arrives.
    #[test]
    fn loom_replacing_the_receivers_waker_races_the_send_safely() {
        model(|| {
            let drops = std::sync::Arc::new(AtomicUsize::new(0));
            let (tx, mut rx) = channel::<Val>();
            let (w1, wk1) = waker();
            let (w2, wk2) = waker();
            assert!(rx.poll_recv(&wk1).is_pending());
            let sender = spawn_send(tx, &drops);
            let second = rx.poll_recv(&wk2);
            assert!(sender.join().unwrap().is_ok(), "the receiver is alive");
            let (a, b) = (wakes(&w1), wakes(&w2));
            assert!(a + b <= 1, "one send wakes at most once");
            match second {
                Poll::Ready(v) => {
                    assert!(v.is_some());
                    assert_eq!(b, 0, "the second waker was never needed");
                }
                Poll::Pending => {
                    assert_eq!((a, b), (0, 1), "OS3: only the stored waker is woken");
                    assert!(matches!(rx.poll_recv(&wk2), Poll::Ready(Some(_))));
                }
            }
            drop(rx);
            assert_eq!(drops.load(SeqCst), 1, "the value dropped exactly once");
            drop((wk1, wk2));
            assert_eq!(std::sync::Arc::strong_count(&w1), 1, "a waker leaked");
            assert_eq!(std::sync::Arc::strong_count(&w2), 1, "a waker leaked");
        });
    }

    /// OS4, OS5, OS6: the sender re-polls `closed` with another waker while
    /// the receiver is dropped: only the waker stored last is woken, at
    /// most once, and both are released.
    #[test]
    fn loom_replacing_the_senders_waker_races_the_receivers_drop_safely() {
        model(|| {
            let (mut tx, rx) = channel::<u8>();
            let (w1, wk1) = waker();
            let (w2, wk2) = waker();
            assert!(tx.poll_closed(&wk1).is_pending());
            let dropper = thread::spawn(move || drop(rx));
            let second = tx.poll_closed(&wk2);
            dropper.join().unwrap();
            let (a, b) = (wakes(&w1), wakes(&w2));
            assert!(a + b <= 1, "one close wakes at most once");
            match second {
                Poll::Ready(()) => assert_eq!(b, 0),
                Poll::Pending => {
                    assert_eq!((a, b), (0, 1), "OS4: only the stored waker is woken");
                    assert!(tx.poll_closed(&wk2).is_ready());
                }
            }
            drop(tx);
            drop((wk1, wk2));
            assert_eq!(std::sync::Arc::strong_count(&w1), 1, "a waker leaked");
            assert_eq!(std::sync::Arc::strong_count(&w2), 1, "a waker leaked");
        });
    }
}
