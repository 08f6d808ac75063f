//! Multi-producer, single-consumer channels, bounded and unbounded, whose
//! sends can be two-phase: reserve a slot (an obligation), then commit the
//! value.
//!
//! ```
//! use asupersync::RuntimeBuilder;
//! use asupersync::channel::mpsc;
//!
//! let rt = RuntimeBuilder::current_thread().build().unwrap();
//! let received = rt.block_on(|cx| async move {
//!     let (tx, mut rx) = mpsc::channel::<u32>(2);
//!     let producer = cx
//!         .spawn(move |cx| async move {
//!             for i in 0..5 {
//!                 // Two-phase: wait for a slot (cancel-aware), then commit.
//!                 let Ok(permit) = tx.reserve(&cx).await else { return };
//!                 if let Err(e) = permit.send(i) {
//!                     let _unsent: u32 = e.into_inner(); // receiver gone
//!                     return;
//!                 }
//!             }
//!         })
//!         .unwrap();
//!     let mut got = Vec::new();
//!     while let Ok(v) = rx.recv(&cx).await {
//!         got.push(v); // ends with Disconnected once `tx` is dropped
//!     }
//!     producer.join(&cx).await.unwrap();
//!     got
//! });
//! assert_eq!(received, [0, 1, 2, 3, 4]);
//! ```
//!
//! Rules:
//! 1. **Two-phase send.** [`Sender::reserve`] waits for a free slot and
//!    returns a [`SendPermit`] that holds the slot and an obligation of kind
//!    `"send_permit"` in the reserving task. [`SendPermit::send`] commits:
//!    it never blocks, and if the receiver is gone it gives the value back
//!    (and aborts the obligation instead of committing it). Dropping an
//!    unused permit returns its slot (to the oldest waiting sender, if any)
//!    and aborts the obligation. A forgotten permit (`mem::forget`) is an
//!    obligation leak, and its slot stays taken.
//! 2. **Capacity.** A bounded channel of capacity `n` never holds more than
//!    `n` queued messages plus reserved slots. An unbounded channel never
//!    waits for capacity.
//! 3. **FIFO senders.** Senders waiting for capacity (`reserve` or `send`)
//!    are served strictly in the order they started waiting: a freed slot
//!    goes to the oldest waiter at once — a waiting `send`'s value enters
//!    the queue at that moment, a waiting `reserve` gets the slot for its
//!    permit. While anyone waits, [`Sender::try_send`] returns `Full` and a
//!    new `send`/`reserve` queues behind: nobody overtakes a waiting sender.
//! 4. **FIFO messages.** Messages are received in the order they entered
//!    the queue: a `send` or `try_send` that found room enters it
//!    immediately, a waiting `send` when it is served (so waiting sends are
//!    received in the order they started waiting), a permit's value when
//!    [`SendPermit::send`] is called. One sender's messages arrive in the
//!    order it sent them.
//! 5. **Cancellation.** Every wait takes `&Cx` and is cancel-aware: if the
//!    task is cancelled while `reserve`, `send`, `recv` or `recv_many`
//!    waits, it returns its `Cancelled` error (acknowledging the
//!    cancellation) and holds nothing: a cancelled `reserve` holds no slot (a
//!    slot granted in the meantime passes to the next waiter), a cancelled
//!    `send` returns its value, a cancelled `recv` consumes nothing. An
//!    operation that can complete without waiting completes, even in a
//!    cancelled task. Dropping a wait future is like cancelling it, except
//!    that a dropped `send` future that was not yet served drops its value
//!    (one that was served already delivered it).
//! 6. **Disconnection.** When every [`Sender`] is dropped ([`WeakSender`]s do
//!    not count), the receiver gets the queued messages, then
//!    `Disconnected`. When the receiver is dropped or
//!    [closed](Receiver::close), sends and reservations fail with
//!    `Disconnected` (sends give the value back) and every waiting sender is
//!    woken at once. Permits granted before a `close` may still send; `recv`
//!    returns `Disconnected` once the queue is empty and no permit is
//!    outstanding. Messages still queued when the receiver is dropped are
//!    dropped.
//! 7. **Streams.** [`Receiver`] implements [`futures_core::Stream`]: it
//!    yields messages and ends when the channel is disconnected and drained.
//!    A stream poll is *not* cancel-aware (it has no `Cx`): it just waits.
//!    Dropping a pending `next()` consumes nothing.
//! 8. **Cost.** A bounded channel keeps its messages in a ring
//!    preallocated at creation (capacities above 1024 grow it on demand up
//!    to the capacity; it never shrinks), so the steady state allocates
//!    nothing per message; waiting senders (with a waiting `send`'s value)
//!    live in the crate's shared FIFO waiter queue, whose slots are reused,
//!    so a wait allocates only when the queue grows past its largest size.
//!    `reserve` records one obligation (reserve, then commit or abort: two
//!    short ledger updates under the kernel lock); `send`, `try_send`,
//!    `recv` and `try_recv` record none, since the value changes hands at
//!    once. An unbounded channel's ring grows as needed.

mod error;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

pub use error::{RecvError, ReserveError, SendError, TryRecvError, TrySendError};

use crate::cx::Cx;
use crate::kernel::SpawnError;
use crate::obligation::Obligation;
use crate::sync::waiters::{WaitQueue, WaiterKey, WaiterState, WakeList};
use crate::types::CancelReason;
use crate::types::cancel::Cancelled;

/// The obligation kind of a [`SendPermit`].
pub const PERMIT_KIND: &str = "send_permit";

/// Slots preallocated up front; larger capacities grow the ring on demand
/// (once: it never shrinks).
const PREALLOC_LIMIT: usize = 1024;

/// Creates a bounded channel holding at most `capacity` messages (queued
/// plus reserved).
///
/// # Panics
/// If `capacity` is 0 (a rendezvous channel is not supported).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "mpsc::channel: capacity must be at least 1");
    new_chan(capacity, capacity.min(PREALLOC_LIMIT))
}

/// Creates an unbounded channel: sends never wait for capacity.
pub fn unbounded_channel<T>() -> (Sender<T>, Receiver<T>) {
    new_chan(usize::MAX, 0)
}

fn new_chan<T>(bound: usize, prealloc: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            queue: VecDeque::with_capacity(prealloc),
            bound,
            reserved: 0,
            senders: 1,
            closed: false,
            rx_dropped: false,
            send_waiters: WaitQueue::new(),
            recv_waker: None,
        }),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

// ----- shared state ---------------------------------------------------------

/// What a waiting sender is handed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grant {
    /// One slot for a waiting `reserve`, already counted in `reserved`.
    Slot,
    /// A waiting `send`'s value was moved into the queue at grant time.
    Sent,
    /// The receiver is gone or closed: give up.
    Closed,
}

struct Chan<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    queue: VecDeque<T>,
    /// `usize::MAX` when unbounded.
    bound: usize,
    /// Slots held by permits and by notified waiters that have not yet
    /// collected their grant. Invariant: `queue.len() + reserved <= bound`.
    reserved: usize,
    /// Strong senders.
    senders: usize,
    /// `close()` was called or the receiver was dropped.
    closed: bool,
    rx_dropped: bool,
    /// Waiting senders; a waiting `send` parks its value in its entry so
    /// that it is queued the moment a slot is granted (rule 3).
    send_waiters: WaitQueue<Option<T>, Grant>,
    recv_waker: Option<Waker>,
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing that can panic runs under the lock while the state is
        // inconsistent, so a poisoned lock still holds a valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives up a waiter registration (cancelled or dropped wait); a slot
    /// granted in the meantime goes to the next waiter (WQ3). Returns the
    /// parked value (if it was not sent) and the grant, if any.
    fn abandon_wait(&self, key: WaiterKey) -> (Option<T>, Option<Grant>) {
        let mut wakers = WakeList::default();
        let removed = {
            let mut st = self.lock();
            let removed = st.send_waiters.remove(key);
            if let Some((_, Some(Grant::Slot))) = removed {
                st.release_slot(&mut wakers);
            }
            removed
        };
        wakers.wake();
        removed.unwrap_or((None, None))
    }

    /// Returns a reserved slot that will not be used.
    fn release_slot(&self) {
        let mut wakers = WakeList::default();
        self.lock().release_slot(&mut wakers);
        wakers.wake();
    }

    /// Commits a reserved slot with `value`.
    fn commit(&self, value: T) -> Result<(), T> {
        let waker = self.lock().commit(value)?;
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// One poll of a `reserve`: take a slot or wait for one, observing
    /// cancellation when it would block. `Ready(Ok)` means a slot is now
    /// counted in `reserved` for the caller.
    fn poll_slot(
        &self,
        cx: &Cx,
        key: &mut Option<WaiterKey>,
        waker: &Waker,
    ) -> Poll<Result<(), ReserveError>> {
        let polled = self.lock().poll_acquire(key, waker);
        match polled {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => match cx.observe_cancel() {
                Some(reason) => {
                    if let Some(k) = key.take() {
                        self.abandon_wait(k);
                    }
                    Poll::Ready(Err(ReserveError::Cancelled(Cancelled::new(reason))))
                }
                None => Poll::Pending,
            },
        }
    }

    /// One poll of a receive: if anything is queued, `take` moves some of
    /// it out (returning how many) and as many freed slots are granted to
    /// waiting senders; otherwise the receiver's waker is registered.
    /// `Ready(false)`: disconnected and drained.
    fn poll_take(
        &self,
        waker: &Waker,
        mut take: impl FnMut(&mut VecDeque<T>) -> usize,
    ) -> Poll<bool> {
        let mut wakers = WakeList::default();
        let ready = {
            let mut st = self.lock();
            if !st.queue.is_empty() {
                let n = take(&mut st.queue);
                for _ in 0..n {
                    if !st.grant_one(&mut wakers, false) {
                        break;
                    }
                }
                Poll::Ready(true)
            } else if st.is_disconnected() {
                Poll::Ready(false)
            } else {
                match &st.recv_waker {
                    Some(w) if w.will_wake(waker) => {}
                    _ => st.recv_waker = Some(waker.clone()),
                }
                Poll::Pending
            }
        };
        wakers.wake();
        ready
    }
}

impl<T> State<T> {
    fn has_room(&self) -> bool {
        self.queue.len() + self.reserved < self.bound
    }

    /// Nothing queued and nothing can ever be.
    fn is_disconnected(&self) -> bool {
        self.queue.is_empty() && self.reserved == 0 && (self.senders == 0 || self.closed)
    }

    /// Hands one free slot to the oldest waiting sender (rule 3): a
    /// waiting `send`'s value is queued right away, a waiting `reserve` gets
    /// the slot. Returns whether anyone was served.
    fn grant_one(&mut self, wakers: &mut WakeList, wake_rx: bool) -> bool {
        if self.closed || !self.has_room() {
            return false;
        }
        let Some(parked) = self.send_waiters.front_mut().map(Option::take) else {
            return false;
        };
        let grant = match parked {
            Some(value) => {
                self.queue.push_back(value);
                if wake_rx {
                    wakers.push(self.recv_waker.take());
                }
                Grant::Sent
            }
            None => {
                self.reserved += 1;
                Grant::Slot
            }
        };
        wakers.push(self.send_waiters.notify_front(grant));
        true
    }

    fn release_slot(&mut self, wakers: &mut WakeList) {
        self.reserved -= 1;
        if self.closed {
            if self.is_disconnected() {
                wakers.push(self.recv_waker.take());
            }
        } else {
            self.grant_one(wakers, true);
        }
    }

    fn commit(&mut self, value: T) -> Result<Option<Waker>, T> {
        self.reserved -= 1;
        if self.rx_dropped {
            return Err(value);
        }
        self.queue.push_back(value);
        Ok(self.recv_waker.take())
    }

    /// Takes a slot for a sender, or registers (refreshes) its waiter.
    fn poll_acquire(
        &mut self,
        key: &mut Option<WaiterKey>,
        waker: &Waker,
    ) -> Poll<Result<(), ReserveError>> {
        if let Some(k) = *key {
            match self.send_waiters.state(k) {
                Some(WaiterState::Waiting) => {
                    self.send_waiters.update_waker(k, waker);
                    return Poll::Pending;
                }
                Some(WaiterState::Notified(_)) => {
                    *key = None;
                    return Poll::Ready(match self.send_waiters.take_grant(k) {
                        Some(Grant::Slot) => Ok(()),
                        Some(Grant::Sent) => unreachable!("a reserve parks no value"),
                        Some(Grant::Closed) | None => Err(ReserveError::Disconnected),
                    });
                }
                None => *key = None,
            }
        }
        if self.closed {
            return Poll::Ready(Err(ReserveError::Disconnected));
        }
        if self.send_waiters.is_empty() && self.has_room() {
            self.reserved += 1;
            return Poll::Ready(Ok(()));
        }
        *key = Some(self.send_waiters.push_back(waker.clone(), None));
        Poll::Pending
    }

    /// One step of a `send`: queue the value now, or park it in a waiter
    /// entry, or collect the outcome of a parked one.
    fn poll_send(
        &mut self,
        key: &mut Option<WaiterKey>,
        value: &mut Option<T>,
        waker: &Waker,
        wakers: &mut WakeList,
    ) -> Poll<Result<(), SendError<T>>> {
        if let Some(k) = *key {
            match self.send_waiters.state(k) {
                Some(WaiterState::Waiting) => {
                    self.send_waiters.update_waker(k, waker);
                    return Poll::Pending;
                }
                Some(WaiterState::Notified(_)) => {
                    *key = None;
                    let (parked, grant) = self.send_waiters.remove(k).expect("a live key");
                    return Poll::Ready(match (grant, parked) {
                        (Some(Grant::Sent), _) => Ok(()),
                        (_, Some(v)) => Err(SendError::Disconnected(v)),
                        (_, None) => unreachable!("an unsent value is still parked"),
                    });
                }
                None => *key = None,
            }
        }
        let v = value.take().expect("SendFuture polled after completion");
        if self.closed {
            return Poll::Ready(Err(SendError::Disconnected(v)));
        }
        if self.send_waiters.is_empty() && self.has_room() {
            self.queue.push_back(v);
            wakers.push(self.recv_waker.take());
            return Poll::Ready(Ok(()));
        }
        *key = Some(self.send_waiters.push_back(waker.clone(), Some(v)));
        Poll::Pending
    }
}

fn region_closed(e: SpawnError) -> Cancelled {
    Cancelled::new(
        CancelReason::resource_unavailable()
            .with_message(format!("cannot record a send permit: {e}")),
    )
}

// ----- Sender ---------------------------------------------------------------

/// The sending half. Cloning it adds a sender; the channel disconnects (for
/// the receiver) when the last one is dropped.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// A sender that does not keep the channel open; [`upgrade`](Self::upgrade)
/// it to send.
pub struct WeakSender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Waits for a free slot and reserves it (rule 1).
    ///
    /// The permit holds the slot and an obligation (kind `"send_permit"`)
    /// of the task `cx` belongs to: commit it with [`SendPermit::send`] or
    /// drop it to give the slot back. Waiting reservers are served in FIFO
    /// order with waiting `send`s (rule 3).
    ///
    /// Errors: `Disconnected` if the receiver is gone or closed;
    /// `Cancelled` as below (or if `cx`'s region is already closed and can
    /// record no obligation).
    ///
    /// # Cancellation
    /// Cancel-aware. If the task is cancelled while waiting for a slot, the
    /// reservation returns `Err(ReserveError::Cancelled)` and holds nothing:
    /// it leaves the queue without disturbing the other waiters' order, and a
    /// slot that was granted to it just before is passed on to the next
    /// waiter. A slot that is free at the first poll is reserved even in a
    /// cancelled task. Dropping the future has the same effect.
    pub fn reserve(&self, cx: &Cx) -> Reserve<'_, T> {
        Reserve {
            sender: self,
            cx: cx.clone(),
            key: None,
        }
    }

    /// Sends `value`, waiting for a free slot if there is none.
    ///
    /// While it waits, the value is parked in the waiter queue; when its
    /// turn comes (rule 3) the value enters the channel at that moment, so
    /// waiting sends are received in the order they started waiting.
    ///
    /// Errors give the value back: `Disconnected(value)` if the receiver is
    /// gone or closed, `Cancelled(value)` as below. No obligation is
    /// recorded: the value is handed over in the same step as the slot.
    ///
    /// # Cancellation
    /// Cancel-aware. If the task is cancelled while waiting for a slot, the
    /// send returns `Err(SendError::Cancelled(value))`: nothing was sent and
    /// no slot is held; the other waiters keep their order. If the value was
    /// already queued when the cancellation is observed, the send returns
    /// `Ok(())` (it was delivered; nothing is sent twice). A slot that is
    /// free at the first poll is used even in a cancelled task. Dropping the
    /// future while it still waits drops `value` unsent; to get the value
    /// back, let the cancellation be observed instead.
    pub fn send<'a>(&'a self, cx: &'a Cx, value: T) -> SendFuture<'a, T> {
        SendFuture {
            sender: self,
            cx,
            key: None,
            value: Some(value),
        }
    }

    /// Sends `value` if a slot is free right now and no sender is waiting.
    ///
    /// Errors give the value back: `Full(value)` if there is no free slot or
    /// senders are waiting (rule 3), `Disconnected(value)` if the receiver is
    /// gone or closed.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let waker = {
            let mut st = self.chan.lock();
            if st.closed {
                return Err(TrySendError::Disconnected(value));
            }
            if !st.send_waiters.is_empty() || !st.has_room() {
                return Err(TrySendError::Full(value));
            }
            st.queue.push_back(value);
            st.recv_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Whether the receiver is gone or closed (sends will fail).
    pub fn is_closed(&self) -> bool {
        self.chan.lock().closed
    }

    /// Free slots right now (`usize::MAX` minus the queue for an unbounded
    /// channel).
    pub fn capacity(&self) -> usize {
        let st = self.chan.lock();
        st.bound - st.queue.len() - st.reserved
    }

    /// The capacity given at creation (`usize::MAX` when unbounded).
    pub fn max_capacity(&self) -> usize {
        self.chan.lock().bound
    }

    /// Whether both senders belong to the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }

    /// A [`WeakSender`] for this channel (it does not keep it open).
    pub fn downgrade(&self) -> WeakSender<T> {
        WeakSender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.lock().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut st = self.chan.lock();
            st.senders -= 1;
            if st.senders == 0 {
                st.recv_waker.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.chan.lock();
        f.debug_struct("Sender")
            .field("max_capacity", &st.bound)
            .field("queued", &st.queue.len())
            .field("reserved", &st.reserved)
            .field("closed", &st.closed)
            .finish()
    }
}

impl<T> WeakSender<T> {
    /// A strong sender, unless every strong sender is already gone (then
    /// the channel is disconnected for good and this returns `None`).
    pub fn upgrade(&self) -> Option<Sender<T>> {
        let mut st = self.chan.lock();
        if st.senders == 0 {
            return None;
        }
        st.senders += 1;
        Some(Sender {
            chan: self.chan.clone(),
        })
    }
}

impl<T> Clone for WeakSender<T> {
    fn clone(&self) -> Self {
        WeakSender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> fmt::Debug for WeakSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakSender").finish_non_exhaustive()
    }
}

// ----- SendPermit -----------------------------------------------------------

/// A reserved slot: commit it with [`send`](Self::send), or drop it to give
/// the slot back (rule 1).
#[must_use = "dropping a SendPermit gives its slot back without sending"]
pub struct SendPermit<'a, T> {
    chan: &'a Chan<T>,
    /// `None` once the permit was used.
    obligation: Option<Obligation>,
}

impl<T> SendPermit<'_, T> {
    /// Commits `value` into the reserved slot. Never blocks.
    ///
    /// The obligation is committed when the value is queued. If the receiver
    /// is gone, the value comes back as `Err(SendError::Disconnected(value))`
    /// and the obligation is aborted (nothing was delivered). After a
    /// `close` (receiver still alive) the value is queued and will be
    /// received.
    pub fn send(mut self, value: T) -> Result<(), SendError<T>> {
        let obligation = self.obligation.take().expect("a permit is used once");
        match self.chan.commit(value) {
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

    /// The obligation recorded for this permit.
    pub fn obligation(&self) -> &Obligation {
        self.obligation.as_ref().expect("a permit is used once")
    }
}

impl<T> Drop for SendPermit<'_, T> {
    fn drop(&mut self) {
        if let Some(obligation) = self.obligation.take() {
            self.chan.release_slot();
            obligation.abort();
        }
    }
}

impl<T> fmt::Debug for SendPermit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendPermit")
            .field("obligation", &self.obligation)
            .finish()
    }
}

// ----- futures --------------------------------------------------------------

/// The future returned by [`Sender::reserve`].
#[must_use = "futures do nothing unless awaited"]
pub struct Reserve<'a, T> {
    sender: &'a Sender<T>,
    cx: Cx,
    key: Option<WaiterKey>,
}

impl<'a, T> Future for Reserve<'a, T> {
    type Output = Result<SendPermit<'a, T>, ReserveError>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let chan: &'a Chan<T> = &this.sender.chan;
        match chan.poll_slot(&this.cx, &mut this.key, task_cx.waker()) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => match this.cx.reserve_obligation(PERMIT_KIND) {
                Ok(obligation) => Poll::Ready(Ok(SendPermit {
                    chan,
                    obligation: Some(obligation),
                })),
                Err(e) => {
                    chan.release_slot();
                    Poll::Ready(Err(ReserveError::Cancelled(region_closed(e))))
                }
            },
        }
    }
}

impl<T> Drop for Reserve<'_, T> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.sender.chan.abandon_wait(k);
        }
    }
}

impl<T> fmt::Debug for Reserve<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reserve")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}

/// The future returned by [`Sender::send`].
#[must_use = "futures do nothing unless awaited"]
pub struct SendFuture<'a, T> {
    sender: &'a Sender<T>,
    cx: &'a Cx,
    key: Option<WaiterKey>,
    value: Option<T>,
}

// The value is moved out, never pinned.
impl<T> Unpin for SendFuture<'_, T> {}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let chan = &*this.sender.chan;
        let mut wakers = WakeList::default();
        let polled =
            chan.lock()
                .poll_send(&mut this.key, &mut this.value, task_cx.waker(), &mut wakers);
        wakers.wake();
        if polled.is_ready() {
            return polled;
        }
        if this.cx.observe_cancel().is_none() {
            return Poll::Pending;
        }
        let key = this.key.take().expect("a pending send is registered");
        Poll::Ready(match chan.abandon_wait(key) {
            // Granted before the cancellation was seen: it was delivered.
            (_, Some(Grant::Sent)) => Ok(()),
            (Some(v), Some(Grant::Closed)) => Err(SendError::Disconnected(v)),
            (Some(v), _) => Err(SendError::Cancelled(v)),
            (None, _) => unreachable!("an unsent value is still parked"),
        })
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            // The parked value (if unsent) is dropped here, outside the lock.
            drop(self.sender.chan.abandon_wait(k));
        }
    }
}

impl<T> fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFuture")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}

// ----- Receiver -------------------------------------------------------------

/// The receiving half (there is exactly one).
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Receiver<T> {
    /// Waits for the next message.
    ///
    /// Errors: `Disconnected` once every sender is gone (or the channel was
    /// closed), the queue is empty and no permit is outstanding;
    /// `Cancelled` as below.
    ///
    /// # Cancellation
    /// Cancel-aware. If the task is cancelled while waiting, `recv` returns
    /// `Err(RecvError::Cancelled)` and consumes nothing: a message that
    /// arrives later stays queued for the next `recv`. A message that is
    /// already queued is returned even in a cancelled task. Dropping the
    /// future consumes nothing either.
    pub fn recv<'a>(&'a mut self, cx: &'a Cx) -> Recv<'a, T> {
        Recv { rx: self, cx }
    }

    /// Waits for at least one message, then moves up to `limit` queued
    /// messages into `buf` (appended, in order) and returns how many.
    /// `limit == 0` returns `Ok(0)` at once.
    ///
    /// Errors: as for [`recv`](Self::recv).
    ///
    /// # Cancellation
    /// As for [`recv`](Self::recv): a cancelled `recv_many` moves nothing
    /// and leaves `buf` untouched.
    pub fn recv_many<'a>(
        &'a mut self,
        cx: &'a Cx,
        buf: &'a mut Vec<T>,
        limit: usize,
    ) -> RecvMany<'a, T> {
        RecvMany {
            rx: self,
            cx,
            buf,
            limit,
        }
    }

    /// Takes the next message if one is queued.
    ///
    /// Errors: `Empty` if nothing is queued now but more may come,
    /// `Disconnected` if nothing ever will.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut wakers = WakeList::default();
        let result = {
            let mut st = self.chan.lock();
            match st.queue.pop_front() {
                Some(v) => {
                    st.grant_one(&mut wakers, false);
                    Ok(v)
                }
                None if st.is_disconnected() => Err(TryRecvError::Disconnected),
                None => Err(TryRecvError::Empty),
            }
        };
        wakers.wake();
        result
    }

    /// Closes the channel without dropping the receiver: sends and
    /// reservations fail with `Disconnected` from now on and every waiting
    /// sender is woken. Queued messages, and those committed through permits
    /// granted earlier, can still be received.
    pub fn close(&mut self) {
        let wakers = {
            let mut st = self.chan.lock();
            st.closed = true;
            st.send_waiters.notify_all(Grant::Closed)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Whether no more messages can be sent (closed, or every sender gone).
    pub fn is_closed(&self) -> bool {
        let st = self.chan.lock();
        st.closed || st.senders == 0
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.chan.lock().queue.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free slots right now (see [`Sender::capacity`]).
    pub fn capacity(&self) -> usize {
        let st = self.chan.lock();
        st.bound - st.queue.len() - st.reserved
    }

    /// The capacity given at creation (`usize::MAX` when unbounded).
    pub fn max_capacity(&self) -> usize {
        self.chan.lock().bound
    }

    fn poll_recv(&mut self, waker: &Waker) -> Poll<Option<T>> {
        let mut got = None;
        match self.chan.poll_take(waker, |q| {
            got = q.pop_front();
            1
        }) {
            Poll::Ready(true) => Poll::Ready(got),
            Poll::Ready(false) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (queued, wakers) = {
            let mut st = self.chan.lock();
            st.closed = true;
            st.rx_dropped = true;
            st.recv_waker = None;
            (
                std::mem::take(&mut st.queue),
                st.send_waiters.notify_all(Grant::Closed),
            )
        };
        // Dropped outside the lock: a message may own a sender of this channel.
        drop(queued);
        for w in wakers {
            w.wake();
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.chan.lock();
        f.debug_struct("Receiver")
            .field("max_capacity", &st.bound)
            .field("queued", &st.queue.len())
            .field("reserved", &st.reserved)
            .field("closed", &st.closed)
            .finish()
    }
}

/// Rule 7: yields messages, ends when disconnected and drained. Not
/// cancel-aware; dropping a pending poll consumes nothing.
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

/// The future returned by [`Receiver::recv_many`].
#[must_use = "futures do nothing unless awaited"]
pub struct RecvMany<'a, T> {
    rx: &'a mut Receiver<T>,
    cx: &'a Cx,
    buf: &'a mut Vec<T>,
    limit: usize,
}

impl<T> Future for RecvMany<'_, T> {
    type Output = Result<usize, RecvError>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.limit == 0 {
            return Poll::Ready(Ok(0));
        }
        let (buf, limit) = (&mut *this.buf, this.limit);
        let mut moved = 0;
        match this.rx.chan.poll_take(task_cx.waker(), |q| {
            moved = q.len().min(limit);
            buf.extend(q.drain(..moved));
            moved
        }) {
            Poll::Ready(true) => Poll::Ready(Ok(moved)),
            Poll::Ready(false) => Poll::Ready(Err(RecvError::Disconnected)),
            Poll::Pending => match this.cx.observe_cancel() {
                Some(reason) => Poll::Ready(Err(RecvError::Cancelled(Cancelled::new(reason)))),
                None => Poll::Pending,
            },
        }
    }
}

impl<T> fmt::Debug for RecvMany<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvMany")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

// Compile-time auto-trait checks: with `T: Send` every handle, permit and
// future can cross threads (spawned tasks on the multi-thread runtime).
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    const fn send<X: Send>() {}
    send_sync::<Sender<u8>>();
    send_sync::<WeakSender<u8>>();
    send_sync::<Receiver<u8>>();
    send_sync::<SendPermit<'static, u8>>();
    send::<Reserve<'static, u8>>();
    send::<SendFuture<'static, u8>>();
    send::<Recv<'static, u8>>();
    send::<RecvMany<'static, u8>>();
    send_sync::<SendError<u8>>();
    send_sync::<TrySendError<u8>>();
    send_sync::<RecvError>();
    send_sync::<TryRecvError>();
    send_sync::<ReserveError>();
};
