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
//! Plain threads (no `Cx`) use [`Sender::blocking_send`] and
//! [`Receiver::blocking_recv`], which park the thread and panic on a thread
//! that runs runtime tasks; [`Sender::send_timeout`] bounds how long a send
//! waits for capacity. Both queue with the async senders (rule 3).
//!
//! Rules:
//! 1. **Two-phase send.** [`Sender::reserve`] waits for a free slot and
//!    returns a [`SendPermit`] that holds the slot and an obligation of kind
//!    `"send_permit"` in the reserving task. [`SendPermit::send`] commits:
//!    it never blocks, and if the receiver is gone it gives the value back
//!    (and aborts the obligation instead of committing it). Dropping an
//!    unused permit returns its slot (to the oldest waiting sender, if any)
//!    and aborts the obligation. A forgotten permit (`mem::forget`) is an
//!    obligation leak, and its slot stays taken. A [`SendPermit`] belongs
//!    to the reserving task: one still held (forgotten, stashed) when that
//!    task completes is reported as a leak, also when the task was
//!    cancelled. For a permit that moves into another task, see rule 9.
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
//!    once. An unbounded channel's ring grows as needed. While no sender
//!    waits for capacity, a send or reservation that finds room and a
//!    receive take no lock: an atomic slot count, a lock-free ring up to
//!    capacity 1024 (larger and unbounded rings sit behind their own short
//!    lock) and an atomic receiver waker.
//! 9. **Owned permits.** [`Sender::reserve_owned`] consumes a sender and
//!    gives an [`OwnedSendPermit`], which owns it and is `'static`: it can
//!    move into another task. [`OwnedSendPermit::send`] commits and gives
//!    the sender back; [`OwnedSendPermit::release`] gives the slot and the
//!    sender back without sending; dropping it returns the slot. Its
//!    obligation follows its holder: it is held by the region of the `Cx`
//!    it was reserved with, so the reserving task may finish first; it must
//!    be used or dropped before that region closes, and one forgotten is
//!    reported as an obligation leak by the region's close. Waits and
//!    cancellation are as for [`Sender::reserve`]; an error gives the
//!    sender back ([`ReserveOwnedError`]).

mod blocking;
mod error;
mod owned;
mod send_timeout;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crossbeam_queue::ArrayQueue;
use futures_core::Stream;

pub use error::{RecvError, ReserveError, SendError, TryRecvError, TrySendError};
pub use owned::{OwnedSendPermit, ReserveOwned, ReserveOwnedError};
pub use send_timeout::{SendTimeout, SendTimeoutError};

use crate::exec::cx::Cx;
use crate::kernel::SpawnError;
use crate::obligation::Obligation;
use crate::sync::atomic_waker::AtomicWaker;
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
    let ring = if capacity <= PREALLOC_LIMIT {
        Ring::Fixed(ArrayQueue::new(capacity))
    } else {
        Ring::Growable(Mutex::new(VecDeque::with_capacity(PREALLOC_LIMIT)))
    };
    new_chan(capacity, ring)
}

/// Creates an unbounded channel: sends never wait for capacity.
pub fn unbounded_channel<T>() -> (Sender<T>, Receiver<T>) {
    new_chan(usize::MAX, Ring::Growable(Mutex::new(VecDeque::new())))
}

fn new_chan<T>(bound: usize, ring: Ring<T>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        slots: AtomicUsize::new(0),
        bound,
        ring,
        rx_waker: AtomicWaker::new(),
        senders: AtomicUsize::new(1),
        rx_dropped: AtomicBool::new(false),
        state: Mutex::new(State {
            send_waiters: WaitQueue::new(),
        }),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

// ----- shared state ---------------------------------------------------------
//
// Implementation. `slots` is one atomic word: the slots in use (queued
// messages, reserved slots, and sends between taking a slot and queueing
// their value) shifted above two flags, `QUEUED` (senders are waiting) and
// `CLOSED`. A send or reservation that finds room, nobody waiting and the
// channel open takes a slot with one compare-and-swap and queues its value
// in the ring (a lock-free `ArrayQueue` up to `PREALLOC_LIMIT`, else a
// `VecDeque` behind its own short lock), then wakes the receiver through an
// `AtomicWaker`; the receiver pops without a lock and returns the slot with
// one compare-and-swap while nobody waits. `QUEUED` and `CLOSED` change only
// under `state`'s lock, and while `QUEUED` is set every slot change goes
// through that lock: a freed slot passes straight to the oldest waiter
// (rule 3; a waiting send's value enters the ring then, rule 4) and a
// newcomer's compare-and-swap fails, so it queues behind.

/// Senders are waiting (changed only under `state`'s lock).
const QUEUED: usize = 1;
/// The channel was closed or the receiver dropped (set under the lock).
const CLOSED: usize = 2;
/// The slot count sits above the two flags.
const SHIFT: u32 = 2;
/// One slot in the `slots` word.
const ONE: usize = 1 << SHIFT;

/// What a waiting sender is handed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grant {
    /// One slot for a waiting `reserve`, already counted in `slots`.
    Slot,
    /// A waiting `send`'s value was moved into the ring at grant time.
    Sent,
    /// The receiver is gone or closed: give up.
    Closed,
}

/// The message ring. Every value pushed holds a slot, so a push never
/// finds it full (`len <= slots in use <= bound`).
// One per channel, inside its `Arc`: boxing the (cache-padded) `ArrayQueue`
// would only add an indirection to every message.
#[allow(clippy::large_enum_variant)]
enum Ring<T> {
    Fixed(ArrayQueue<T>),
    Growable(Mutex<VecDeque<T>>),
}

impl<T> Ring<T> {
    fn push(&self, value: T) {
        match self {
            Ring::Fixed(q) => {
                if q.push(value).is_err() {
                    unreachable!("a pushed value holds a slot");
                }
            }
            Ring::Growable(q) => q
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(value),
        }
    }

    fn pop(&self) -> Option<T> {
        match self {
            Ring::Fixed(q) => q.pop(),
            Ring::Growable(q) => q.lock().unwrap_or_else(PoisonError::into_inner).pop_front(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Ring::Fixed(q) => q.len(),
            Ring::Growable(q) => q.lock().unwrap_or_else(PoisonError::into_inner).len(),
        }
    }
}

/// What a new send or reservation finds.
enum Claim {
    /// It took a slot.
    Taken,
    /// No free slot, or senders are waiting: it must queue.
    Wait,
    Closed,
}

struct Chan<T> {
    /// `in_use << SHIFT | CLOSED | QUEUED` (see the implementation note).
    slots: AtomicUsize,
    /// `usize::MAX` when unbounded.
    bound: usize,
    ring: Ring<T>,
    rx_waker: AtomicWaker,
    /// Strong senders.
    senders: AtomicUsize,
    rx_dropped: AtomicBool,
    state: Mutex<State<T>>,
}

struct State<T> {
    /// Waiting senders; a waiting `send` parks its value in its entry so
    /// that it is queued the moment a slot is granted (rule 3).
    send_waiters: WaitQueue<Option<T>, Grant>,
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing that can panic runs under the lock while the state is
        // inconsistent, so a poisoned lock still holds a valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn in_use(&self) -> usize {
        self.slots.load(Ordering::Acquire) >> SHIFT
    }

    fn is_closed(&self) -> bool {
        self.slots.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Nothing queued and nothing can ever be (read without the lock; a
    /// reader that then registers re-checks, see `poll_take`).
    fn is_disconnected(&self) -> bool {
        // Senders first: once none is left (final, `upgrade` refuses), every
        // send they made is counted in `slots`, read after.
        if self.senders.load(Ordering::Acquire) == 0 {
            return self.in_use() == 0;
        }
        // Otherwise only `CLOSED` ends it, and no slot is taken after it is
        // set, so one load decides.
        let s = self.slots.load(Ordering::Acquire);
        s >> SHIFT == 0 && s & CLOSED != 0
    }

    /// Takes a slot without the lock if one is free and nobody waits.
    fn claim(&self) -> Claim {
        let mut s = self.slots.load(Ordering::Relaxed);
        loop {
            if s & CLOSED != 0 {
                return Claim::Closed;
            }
            if s & QUEUED != 0 || s >> SHIFT >= self.bound {
                return Claim::Wait;
            }
            match self
                .slots
                .compare_exchange_weak(s, s + ONE, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Claim::Taken,
                Err(actual) => s = actual,
            }
        }
    }

    /// Under the lock, for a sender about to queue: takes a slot if one is
    /// free after all (`Taken`), fails on `Closed`, or sets `QUEUED` so that
    /// from now on freed slots come through the queue (`Wait`).
    fn claim_or_mark_queued(&self) -> Claim {
        let mut s = self.slots.load(Ordering::Acquire);
        loop {
            if s & CLOSED != 0 {
                return Claim::Closed;
            }
            let (next, claim) = if s & QUEUED == 0 && s >> SHIFT < self.bound {
                (s + ONE, Claim::Taken)
            } else if s & QUEUED == 0 {
                (s | QUEUED, Claim::Wait)
            } else {
                // Only changed under the lock, which we hold.
                return Claim::Wait;
            };
            match self
                .slots
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return claim,
                Err(actual) => s = actual,
            }
        }
    }

    /// Queues a value whose slot the caller holds and wakes the receiver.
    fn deliver(&self, value: T) {
        self.ring.push(value);
        // Pairs with the fence in `Receiver::drop`: either its drain sees
        // this value, or we see `rx_dropped` and drain it ourselves (so no
        // message outlives the receiver, rule 6).
        fence(Ordering::SeqCst);
        if self.rx_dropped.load(Ordering::Relaxed) {
            while let Some(v) = self.ring.pop() {
                drop(v);
            }
            return;
        }
        self.rx_waker.wake();
    }

    /// Returns `n` slots: without the lock while nobody waits, else each
    /// goes to the oldest waiting sender (rule 3). Wakes the receiver if a
    /// waiting send's value entered the ring and `wake_rx`, or if the
    /// channel may have become disconnected.
    fn release_slots(&self, n: usize, wake_rx: bool) {
        if n == 0 {
            return;
        }
        let mut s = self.slots.load(Ordering::Relaxed);
        loop {
            if s & QUEUED != 0 {
                break;
            }
            match self.slots.compare_exchange_weak(
                s,
                s - n * ONE,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if wake_rx && s >> SHIFT == n {
                        // Last slot returned: the receiver may be waiting
                        // for the disconnection.
                        self.rx_waker.wake();
                    }
                    return;
                }
                Err(actual) => s = actual,
            }
        }
        let mut wakers = WakeList::default();
        let mut rx = false;
        {
            let mut st = self.lock();
            for _ in 0..n {
                rx |= self.free_slot_locked(&mut st, &mut wakers);
            }
        }
        wakers.wake();
        if wake_rx && (rx || self.in_use() == 0) {
            self.rx_waker.wake();
        }
    }

    /// Under the lock: one slot is free. Hands it to the oldest waiting
    /// sender (a waiting `send`'s value is queued right away, a waiting
    /// `reserve` gets the slot), or returns it. Returns whether a value
    /// entered the ring.
    fn free_slot_locked(&self, st: &mut State<T>, wakers: &mut WakeList) -> bool {
        let parked = if self.is_closed() {
            None
        } else {
            st.send_waiters.front_mut().map(Option::take)
        };
        let Some(parked) = parked else {
            self.slots.fetch_sub(ONE, Ordering::AcqRel);
            return false;
        };
        let (grant, queued) = match parked {
            Some(value) => {
                self.ring.push(value);
                (Grant::Sent, true)
            }
            None => (Grant::Slot, false),
        };
        wakers.push(st.send_waiters.notify_front(grant));
        if st.send_waiters.is_empty() {
            self.slots.fetch_and(!QUEUED, Ordering::AcqRel);
        }
        queued
    }

    /// Gives up a waiter registration (cancelled or dropped wait); a slot
    /// granted in the meantime goes to the next waiter (WQ3). Returns the
    /// parked value (if it was not sent) and the grant, if any.
    fn abandon_wait(&self, key: WaiterKey) -> (Option<T>, Option<Grant>) {
        let mut wakers = WakeList::default();
        let mut rx = false;
        let removed = {
            let mut st = self.lock();
            let removed = st.send_waiters.remove(key);
            if let Some((_, Some(Grant::Slot))) = removed {
                rx = self.free_slot_locked(&mut st, &mut wakers);
            }
            if st.send_waiters.is_empty() {
                self.slots.fetch_and(!QUEUED, Ordering::AcqRel);
            }
            removed
        };
        wakers.wake();
        if rx || self.is_disconnected() {
            self.rx_waker.wake();
        }
        removed.unwrap_or((None, None))
    }

    /// Returns a reserved slot that will not be used.
    fn release_slot(&self) {
        self.release_slots(1, true);
    }

    /// Commits a reserved slot with `value`.
    fn commit(&self, value: T) -> Result<(), T> {
        if self.rx_dropped.load(Ordering::Acquire) {
            self.slots.fetch_sub(ONE, Ordering::AcqRel);
            return Err(value);
        }
        self.deliver(value);
        Ok(())
    }

    /// One poll of a `reserve`: take a slot or wait for one, observing
    /// cancellation when it would block. `Ready(Ok)` means a slot is now
    /// counted in `slots` for the caller.
    fn poll_slot(
        &self,
        cx: &Cx,
        key: &mut Option<WaiterKey>,
        waker: &Waker,
    ) -> Poll<Result<(), ReserveError>> {
        let polled = self.poll_acquire(key, waker);
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

    /// Takes a slot for a sender, or registers (refreshes) its waiter.
    fn poll_acquire(
        &self,
        key: &mut Option<WaiterKey>,
        waker: &Waker,
    ) -> Poll<Result<(), ReserveError>> {
        if let Some(k) = *key {
            let mut st = self.lock();
            match st.send_waiters.state(k) {
                Some(WaiterState::Waiting) => {
                    st.send_waiters.update_waker(k, waker);
                    return Poll::Pending;
                }
                Some(WaiterState::Notified(_)) => {
                    *key = None;
                    return Poll::Ready(match st.send_waiters.take_grant(k) {
                        Some(Grant::Slot) => Ok(()),
                        Some(Grant::Sent) => unreachable!("a reserve parks no value"),
                        Some(Grant::Closed) | None => Err(ReserveError::Disconnected),
                    });
                }
                None => *key = None,
            }
        }
        match self.claim() {
            Claim::Taken => return Poll::Ready(Ok(())),
            Claim::Closed => return Poll::Ready(Err(ReserveError::Disconnected)),
            Claim::Wait => {}
        }
        let mut st = self.lock();
        match self.claim_or_mark_queued() {
            Claim::Taken => Poll::Ready(Ok(())),
            Claim::Closed => Poll::Ready(Err(ReserveError::Disconnected)),
            Claim::Wait => {
                *key = Some(st.send_waiters.push_back(waker.clone(), None));
                Poll::Pending
            }
        }
    }

    /// One step of a `send`: queue the value now, or park it in a waiter
    /// entry, or collect the outcome of a parked one.
    fn poll_send(
        &self,
        key: &mut Option<WaiterKey>,
        value: &mut Option<T>,
        waker: &Waker,
    ) -> Poll<Result<(), SendError<T>>> {
        if let Some(k) = *key {
            let mut st = self.lock();
            match st.send_waiters.state(k) {
                Some(WaiterState::Waiting) => {
                    st.send_waiters.update_waker(k, waker);
                    return Poll::Pending;
                }
                Some(WaiterState::Notified(_)) => {
                    *key = None;
                    let (parked, grant) = st.send_waiters.remove(k).expect("a live key");
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
        match self.claim() {
            Claim::Taken => {
                self.deliver(v);
                return Poll::Ready(Ok(()));
            }
            Claim::Closed => return Poll::Ready(Err(SendError::Disconnected(v))),
            Claim::Wait => {}
        }
        let mut st = self.lock();
        match self.claim_or_mark_queued() {
            Claim::Taken => {
                drop(st);
                self.deliver(v);
                Poll::Ready(Ok(()))
            }
            Claim::Closed => Poll::Ready(Err(SendError::Disconnected(v))),
            Claim::Wait => {
                *key = Some(st.send_waiters.push_back(waker.clone(), Some(v)));
                Poll::Pending
            }
        }
    }

    /// One poll of a receive: `take` moves queued messages out (one or up
    /// to a limit, via `pop`) and returns how many; their slots are returned
    /// (granted to waiting senders first). If nothing is queued the
    /// receiver's waker is registered. `Ready(false)`: disconnected and
    /// drained.
    fn poll_take(
        &self,
        waker: &Waker,
        mut take: impl FnMut(&dyn Fn() -> Option<T>) -> usize,
    ) -> Poll<bool> {
        let pop = || self.ring.pop();
        for attempt in 0..2 {
            let n = take(&pop);
            if n > 0 {
                self.release_slots(n, false);
                return Poll::Ready(true);
            }
            if self.is_disconnected() {
                return Poll::Ready(false);
            }
            if attempt == 0 {
                // Register, then look again (AW1): a value queued or a
                // disconnection after the first look wakes this waker.
                self.rx_waker.register(waker);
            }
        }
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
        match self.chan.claim() {
            Claim::Taken => {
                self.chan.deliver(value);
                Ok(())
            }
            Claim::Wait => Err(TrySendError::Full(value)),
            Claim::Closed => Err(TrySendError::Disconnected(value)),
        }
    }

    /// Whether the receiver is gone or closed (sends will fail).
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Free slots right now (`usize::MAX` minus the queue for an unbounded
    /// channel).
    pub fn capacity(&self) -> usize {
        self.chan.bound - self.chan.in_use()
    }

    /// The capacity given at creation (`usize::MAX` when unbounded).
    pub fn max_capacity(&self) -> usize {
        self.chan.bound
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
        self.chan.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.rx_waker.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chan.fmt_fields(f.debug_struct("Sender"))
    }
}

impl<T> Chan<T> {
    fn fmt_fields(&self, mut d: fmt::DebugStruct<'_, '_>) -> fmt::Result {
        let queued = self.ring.len();
        d.field("max_capacity", &self.bound)
            .field("queued", &queued)
            .field("reserved", &self.in_use().saturating_sub(queued))
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T> WeakSender<T> {
    /// A strong sender, unless every strong sender is already gone (then
    /// the channel is disconnected for good and this returns `None`).
    pub fn upgrade(&self) -> Option<Sender<T>> {
        let mut n = self.chan.senders.load(Ordering::Acquire);
        loop {
            // Zero is final: the channel is disconnected for good.
            if n == 0 {
                return None;
            }
            match self.chan.senders.compare_exchange_weak(
                n,
                n + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Sender {
                        chan: self.chan.clone(),
                    });
                }
                Err(actual) => n = actual,
            }
        }
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
        let polled = chan.poll_send(&mut this.key, &mut this.value, task_cx.waker());
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
        match self.chan.ring.pop() {
            Some(v) => {
                self.chan.release_slots(1, false);
                Ok(v)
            }
            None if self.chan.is_disconnected() => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Closes the channel without dropping the receiver: sends and
    /// reservations fail with `Disconnected` from now on and every waiting
    /// sender is woken. Queued messages, and those committed through permits
    /// granted earlier, can still be received.
    pub fn close(&mut self) {
        self.chan.close().wake();
    }

    /// Whether no more messages can be sent (closed, or every sender gone).
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed() || self.chan.senders.load(Ordering::Acquire) == 0
    }

    /// Messages queued now.
    pub fn len(&self) -> usize {
        self.chan.ring.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free slots right now (see [`Sender::capacity`]).
    pub fn capacity(&self) -> usize {
        self.chan.bound - self.chan.in_use()
    }

    /// The capacity given at creation (`usize::MAX` when unbounded).
    pub fn max_capacity(&self) -> usize {
        self.chan.bound
    }

    fn poll_recv(&mut self, waker: &Waker) -> Poll<Option<T>> {
        let mut got = None;
        match self.chan.poll_take(waker, |pop| {
            got = pop();
            usize::from(got.is_some())
        }) {
            Poll::Ready(true) => Poll::Ready(got),
            Poll::Ready(false) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.rx_dropped.store(true, Ordering::Release);
        let wakers = self.chan.close();
        // Pairs with the fence in `Chan::deliver`: a value queued after our
        // drain is drained by its sender (rule 6).
        fence(Ordering::SeqCst);
        // Dropped outside every lock: a message may own a sender of this
        // channel.
        while let Some(v) = self.chan.ring.pop() {
            drop(v);
        }
        drop(self.chan.rx_waker.take());
        wakers.wake();
    }
}

impl<T> Chan<T> {
    /// Sets `CLOSED` and serves every waiting sender with `Closed`; returns
    /// their wakers.
    fn close(&self) -> WakeList {
        let mut st = self.lock();
        self.slots.fetch_or(CLOSED, Ordering::AcqRel);
        let wakers = st.send_waiters.notify_all(Grant::Closed);
        self.slots.fetch_and(!QUEUED, Ordering::AcqRel);
        wakers
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chan.fmt_fields(f.debug_struct("Receiver"))
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
        match this.rx.chan.poll_take(task_cx.waker(), |pop| {
            while moved < limit {
                match pop() {
                    Some(v) => buf.push(v),
                    None => break,
                }
                moved += 1;
            }
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
    send::<SendTimeout<'static, u8>>();
    send_sync::<SendTimeoutError<u8>>();
    send_sync::<SendError<u8>>();
    send_sync::<TrySendError<u8>>();
    send_sync::<RecvError>();
    send_sync::<TryRecvError>();
    send_sync::<ReserveError>();
};
