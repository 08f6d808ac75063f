//! A multi-producer, multi-consumer broadcast channel: every receiver sees
//! every value sent after it subscribed, unless it falls too far behind.
//!
//! ```
//! use asupersync::RuntimeBuilder;
//! use asupersync::channel::broadcast::{self, RecvError};
//!
//! let rt = RuntimeBuilder::current_thread().build().unwrap();
//! rt.block_on(|cx| async move {
//!     let (tx, mut a) = broadcast::channel(2);
//!     let mut b = tx.subscribe();
//!     assert_eq!(tx.send(1), Ok(2)); // two receivers will see it
//!     tx.send(2).unwrap();
//!     tx.send(3).unwrap(); // the ring holds 2: value 1 is overwritten
//!     assert_eq!(a.recv(&cx).await, Err(RecvError::Lagged(1))); // reported once
//!     assert_eq!(a.recv(&cx).await, Ok(2)); // then resumes at the oldest kept
//!     assert_eq!(b.try_recv(), Err(broadcast::TryRecvError::Lagged(1)));
//!     drop(tx);
//!     assert_eq!(a.recv(&cx).await, Ok(3));
//!     assert_eq!(a.recv(&cx).await, Err(RecvError::Closed)); // drained, then closed
//! });
//! ```
//!
//! Rules:
//! 1. B1 (one copy): the channel is a ring of `capacity` slots. Each value
//!    is stored once, with the number of receivers that have not read it
//!    yet; a receive clones it, except the last reader's, which moves it
//!    out. A value that no receiver still needs is dropped at once.
//! 2. B2 (never blocks): [`Sender::send`] never waits. When the ring is full
//!    the oldest value is overwritten. With no receiver, `send` fails and
//!    gives the value back ([`SendError`]).
//! 3. B3 (one order): values are numbered in the order their `send`s took
//!    effect (one total order across all senders); every receiver sees them
//!    in that order, starting with the first value sent after it
//!    subscribed.
//! 4. B4 (lag, once): a receiver that fell behind by more than `capacity`
//!    values gets [`RecvError::Lagged`]`(n)` once, `n` being how many values
//!    it lost, and then resumes from the oldest value still retained. So each
//!    receiver sees a gap-free subsequence, except for exactly the gaps it
//!    was told about.
//! 5. B5 (independence): a slow (or stuck) receiver never blocks the
//!    senders or the other receivers; it only lags.
//! 6. B6 (close): when the last [`Sender`] is dropped, each receiver first
//!    receives what is retained for it, then gets [`RecvError::Closed`].
//! 7. B7 (cancellation consumes nothing): [`Receiver::recv`] observes
//!    cancellation only when it would wait. A `recv` that returns
//!    [`RecvError::Cancelled`], or whose future is dropped before it
//!    completes, consumed nothing: the next receive returns what this one
//!    would have. A value, a lag or the closure that is already there is
//!    returned even to a cancelled task, so it can drain during cleanup.
//! 8. B8 (FIFO wakeups): waiting receivers are woken in the order they
//!    started waiting (the shared [`WaitQueue`]); one that stops waiting
//!    (cancelled, dropped) leaves without disturbing the others.
//! 9. B9 (no steady-state allocation): `send` and `recv` allocate nothing
//!    beyond what `T::clone` does; the ring is allocated once.
//!
//! # Streams
//! [`Receiver`] implements [`Stream`] with items `Result<T, Lagged>`: a lag
//! is reported in the stream (once, as in B4) rather than skipped silently,
//! and the stream ends (`None`) where `recv` would return `Closed`. That
//! path has no [`Cx`], so **it does not observe cancellation**: a cancelled
//! task awaiting the next item keeps waiting until a value arrives, the
//! channel closes, or the runtime force-drops the task when its cleanup
//! grace period ends. Dropping a pending `next()` consumes nothing (B7).
//! For a cancel-aware stream, use [`Receiver::stream`], which ends when the
//! task is cancelled while it waits.
//!
//! [`WaitQueue`]: crate::sync
//! [`Stream`]: futures_core::Stream

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use crate::exec::cx::Cx;
use crate::sync::waiters::{WaitQueue, WaiterKey, WaiterState};
use crate::types::cancel::Cancelled;

/// Creates a broadcast channel whose ring holds `capacity` values.
///
/// The returned receiver sees every value sent from now on; more receivers
/// come from [`Sender::subscribe`] and [`Receiver::resubscribe`].
///
/// # Panics
/// If `capacity` is 0.
pub fn channel<T: Clone>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        capacity > 0,
        "broadcast::channel: capacity must be at least 1"
    );
    let ring = (0..capacity)
        .map(|_| Slot {
            seq: 0,
            remaining: 0,
            value: None,
        })
        .collect();
    let shared = Arc::new(Shared {
        capacity: capacity as u64,
        state: Mutex::new(State {
            ring,
            tail: 0,
            retained: 0,
            senders: 1,
            receivers: 1,
            waiters: WaitQueue::new(),
        }),
    });
    let rx = Receiver {
        shared: shared.clone(),
        next: 0,
        waiter: None,
    };
    (Sender { shared }, rx)
}

// ===== errors ==============================================================

/// A [`Sender::send`] that found no receiver; the value is inside.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// A reference to the value that was not sent.
    pub fn inner(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("broadcasting on a channel with no receivers")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// A [`Receiver::recv`] that returned no value.
#[derive(Clone, PartialEq, Eq)]
pub enum RecvError {
    /// The receiver fell behind and this many values were overwritten
    /// before it read them (rule B4). Reported once; the next receive
    /// returns the oldest value still retained.
    Lagged(u64),
    /// Every sender is gone and this receiver has received everything that
    /// was retained for it (rule B6).
    Closed,
    /// The receiving task was cancelled while it waited; nothing was
    /// consumed (rule B7).
    Cancelled(Cancelled),
}

impl RecvError {
    /// How many values were lost, if this is a lag report.
    pub fn lagged(&self) -> Option<u64> {
        match self {
            RecvError::Lagged(n) => Some(*n),
            _ => None,
        }
    }

    /// Whether the channel is closed and drained for this receiver.
    pub fn is_closed(&self) -> bool {
        matches!(self, RecvError::Closed)
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
            RecvError::Lagged(n) => f.debug_tuple("Lagged").field(n).finish(),
            RecvError::Closed => f.write_str("Closed"),
            RecvError::Cancelled(c) => f.debug_tuple("Cancelled").field(c).finish(),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged(n) => write!(f, "receiver lagged behind and lost {n} values"),
            RecvError::Closed => f.write_str("receiving on a closed, drained broadcast channel"),
            RecvError::Cancelled(c) => write!(f, "receive {c}"),
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecvError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

/// A [`Receiver::try_recv`] that returned no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TryRecvError {
    /// Nothing new right now, but a sender may still send.
    Empty,
    /// As [`RecvError::Lagged`].
    Lagged(u64),
    /// As [`RecvError::Closed`].
    Closed,
}

impl TryRecvError {
    /// Whether there was merely nothing new.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }

    /// Whether the channel is closed and drained for this receiver.
    pub fn is_closed(&self) -> bool {
        matches!(self, TryRecvError::Closed)
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty broadcast channel"),
            TryRecvError::Lagged(n) => write!(f, "receiver lagged behind and lost {n} values"),
            TryRecvError::Closed => f.write_str("receiving on a closed, drained broadcast channel"),
        }
    }
}

impl std::error::Error for TryRecvError {}

/// A stream item reporting a lag (rule B4): this many values were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lagged(pub u64);

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "receiver lagged behind and lost {} values", self.0)
    }
}

impl std::error::Error for Lagged {}

// ===== shared state ========================================================

struct Shared<T> {
    capacity: u64,
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    /// The state. A panic while it was held (only `T::clone` or `T::drop`
    /// can panic there, before or after an update) leaves it consistent, so
    /// poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Slot<T> {
    /// The sequence number of the value in `value` (or last held).
    seq: u64,
    /// Receivers that have not read it yet (B1).
    remaining: usize,
    value: Option<T>,
}

struct State<T> {
    ring: Box<[Slot<T>]>,
    /// The sequence number of the next value sent (= values sent so far).
    tail: u64,
    /// Slots holding a value.
    retained: usize,
    senders: usize,
    receivers: usize,
    waiters: WaitQueue<(), ()>,
}

// Invariant: a receiver with cursor `next` is counted in `remaining` of
// exactly the retained slots with `seq >= next`. It existed when each of
// them was sent (it subscribed at a `tail <= next`), it reads in order, and
// a lag moves `next` past the overwritten ones only. So `remaining > 0` (and
// the value is present) for every slot it can still read.

impl<T> State<T> {
    /// The oldest sequence number still in the ring.
    fn oldest(&self, capacity: u64) -> u64 {
        self.tail.saturating_sub(capacity)
    }

    fn try_recv(&mut self, next: &mut u64, capacity: u64) -> Result<T, TryRecvError>
    where
        T: Clone,
    {
        if *next >= self.tail {
            return Err(if self.senders == 0 {
                TryRecvError::Closed
            } else {
                TryRecvError::Empty
            });
        }
        let oldest = self.oldest(capacity);
        if *next < oldest {
            let lost = oldest - *next;
            *next = oldest;
            return Err(TryRecvError::Lagged(lost));
        }
        let slot = &mut self.ring[(*next % capacity) as usize];
        debug_assert_eq!(slot.seq, *next, "a readable slot holds the expected value");
        debug_assert!(slot.remaining > 0, "the reader is counted in its slot");
        let value = if slot.remaining == 1 {
            self.retained -= 1;
            slot.value
                .take()
                .expect("a slot with readers holds its value")
        } else {
            // Cloned before anything changes: a panicking clone leaves the
            // state as it was.
            slot.value
                .as_ref()
                .expect("a slot with readers holds its value")
                .clone()
        };
        slot.remaining -= 1;
        *next += 1;
        Ok(value)
    }

    /// A receiver at `next` leaves: it no longer holds the values it did
    /// not read.
    fn release(&mut self, next: u64, capacity: u64) {
        for seq in next.max(self.oldest(capacity))..self.tail {
            let slot = &mut self.ring[(seq % capacity) as usize];
            debug_assert_eq!(slot.seq, seq);
            slot.remaining -= 1;
            if slot.remaining == 0 {
                self.retained -= 1;
                drop(slot.value.take());
            }
        }
    }
}

/// How many wakers are collected under the lock before it is released to
/// wake them (no allocation per send, rule B9).
const WAKE_BATCH: usize = 32;

/// Wakes every waiter of a queue without allocating: notifies up to
/// [`WAKE_BATCH`] under the lock, wakes them with the lock released, and
/// repeats while waiters remain.
pub(super) struct WakeBatch {
    wakers: [Option<Waker>; WAKE_BATCH],
    len: usize,
}

impl WakeBatch {
    pub(super) const fn new() -> Self {
        Self {
            wakers: [const { None }; WAKE_BATCH],
            len: 0,
        }
    }

    /// Notifies waiters (oldest first) until the batch is full; returns
    /// whether some are still waiting.
    pub(super) fn fill<D>(&mut self, queue: &mut WaitQueue<D, ()>) -> bool {
        while self.len < WAKE_BATCH {
            match queue.notify_front(()) {
                Some(w) => {
                    self.wakers[self.len] = Some(w);
                    self.len += 1;
                }
                None => return false,
            }
        }
        !queue.is_empty()
    }

    /// Wakes what was collected (call with the lock released).
    pub(super) fn wake(&mut self) {
        for w in &mut self.wakers[..self.len] {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
        self.len = 0;
    }

    /// Wakes every waiter of the queue behind `lock`, starting with the
    /// already-held `guard`.
    pub(super) fn wake_all<'a, S, D>(
        guard: MutexGuard<'a, S>,
        lock: impl Fn() -> MutexGuard<'a, S>,
        queue: impl Fn(&mut S) -> &mut WaitQueue<D, ()>,
    ) {
        let mut batch = WakeBatch::new();
        let mut guard = guard;
        loop {
            let more = batch.fill(queue(&mut guard));
            drop(guard);
            batch.wake();
            if !more {
                return;
            }
            guard = lock();
        }
    }
}

/// Joins (or stays in) the queue with `waker`. A waiter that was notified
/// but found nothing re-joins at the back.
pub(super) fn enter_queue<D: Default>(
    waiter: &mut Option<WaiterKey>,
    queue: &mut WaitQueue<D, ()>,
    waker: &Waker,
) {
    if let Some(key) = *waiter {
        if matches!(queue.state(key), Some(WaiterState::Waiting)) {
            queue.update_waker(key, waker);
            return;
        }
        queue.remove(key);
    }
    *waiter = Some(queue.push_back(waker.clone(), D::default()));
}

/// Leaves the queue, if in it. The grant is `()`: nothing to hand back.
pub(super) fn leave_queue<D>(waiter: &mut Option<WaiterKey>, queue: &mut WaitQueue<D, ()>) {
    if let Some(key) = waiter.take() {
        queue.remove(key);
    }
}

// ===== sender ==============================================================

/// The sending half. Cloning it adds a sender; the channel closes when the
/// last one is dropped (rule B6).
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Sends `value` to every current receiver and returns how many there
    /// are. Never waits (rule B2): when the ring is full the oldest value
    /// is overwritten, and receivers that had not read it will lag.
    ///
    /// Errors: there is no receiver; the value is returned and not stored.
    pub fn send(&self, value: T) -> Result<usize, SendError<T>> {
        let capacity = self.shared.capacity;
        let mut st = self.shared.lock();
        if st.receivers == 0 {
            return Err(SendError(value));
        }
        let seq = st.tail;
        let receivers = st.receivers;
        let slot = &mut st.ring[(seq % capacity) as usize];
        let overwritten = slot.value.replace(value);
        slot.seq = seq;
        slot.remaining = receivers;
        if overwritten.is_none() {
            st.retained += 1;
        }
        st.tail = seq + 1;
        WakeBatch::wake_all(st, || self.shared.lock(), |s| &mut s.waiters);
        // Dropped outside the lock.
        drop(overwritten);
        Ok(receivers)
    }

    /// A new receiver that sees every value sent from now on.
    pub fn subscribe(&self) -> Receiver<T> {
        new_receiver(&self.shared)
    }

    /// How many receivers exist.
    pub fn receiver_count(&self) -> usize {
        self.shared.lock().receivers
    }

    /// How many values the ring holds that some receiver has not read yet
    /// (at most the capacity).
    pub fn len(&self) -> usize {
        self.shared.lock().retained
    }

    /// Whether every retained value has been read by every receiver.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.shared.capacity as usize
    }

    /// Whether `self` and `other` send on the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.senders -= 1;
        if st.senders == 0 {
            WakeBatch::wake_all(st, || self.shared.lock(), |s| &mut s.waiters);
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("broadcast::Sender")
            .field("capacity", &self.shared.capacity)
            .field("sent", &st.tail)
            .field("retained", &st.retained)
            .field("receivers", &st.receivers)
            .finish()
    }
}

fn new_receiver<T>(shared: &Arc<Shared<T>>) -> Receiver<T> {
    let mut st = shared.lock();
    st.receivers += 1;
    let next = st.tail;
    drop(st);
    Receiver {
        shared: shared.clone(),
        next,
        waiter: None,
    }
}

// ===== receiver ============================================================

/// The receiving half: a cursor into the ring.
///
/// Receivers are independent (rule B5); each sees the values sent after it
/// subscribed. It is not `Clone`; [`resubscribe`](Self::resubscribe) makes a
/// new receiver starting at the newest position.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The sequence number of the next value to receive.
    next: u64,
    /// This receiver's place in the wait queue, while it waits.
    waiter: Option<WaiterKey>,
}

impl<T> Receiver<T> {
    /// Receives the next value.
    ///
    /// Returns at once with a value, with [`RecvError::Lagged`] if this
    /// receiver lost values (then the next call resumes at the oldest
    /// retained one, rule B4), or with [`RecvError::Closed`] once every
    /// sender is gone and everything retained for it was received.
    /// Otherwise waits for the next `send`.
    ///
    /// # Cancellation
    /// Cancel-aware, and consumes nothing when cancelled (rule B7): if the
    /// task is cancelled while the receive would wait, it returns
    /// [`RecvError::Cancelled`] (acknowledging the cancellation) and the
    /// receiver's position is unchanged; dropping the future before it
    /// completes likewise leaves the position unchanged and removes it from
    /// the wait queue without disturbing the other waiters. Only a wait
    /// observes cancellation: what is already available is returned even to
    /// a cancelled task.
    pub fn recv<'a>(&'a mut self, cx: &'a Cx) -> Recv<'a, T> {
        Recv { rx: self, cx }
    }

    /// Receives the next value if one is available now; never waits.
    ///
    /// Errors: [`TryRecvError::Empty`] (nothing new yet),
    /// [`TryRecvError::Lagged`] (reported once, rule B4) or
    /// [`TryRecvError::Closed`].
    pub fn try_recv(&mut self) -> Result<T, TryRecvError>
    where
        T: Clone,
    {
        let capacity = self.shared.capacity;
        self.shared.lock().try_recv(&mut self.next, capacity)
    }

    /// A stream over this receiver that observes cancellation through `cx`:
    /// items as for the receiver's own [`Stream`] implementation.
    ///
    /// # Cancellation
    /// If the task is cancelled while the stream would wait, the stream
    /// ends (`None`) having consumed nothing, and
    /// [`RecvStream::cancelled`] returns the observed cancellation.
    pub fn stream<'a>(&'a mut self, cx: &'a Cx) -> RecvStream<'a, T> {
        RecvStream {
            rx: self,
            cx,
            cancelled: None,
        }
    }

    /// A new receiver on the same channel that sees every value sent from
    /// now on (not the ones this receiver has yet to read).
    pub fn resubscribe(&self) -> Receiver<T> {
        new_receiver(&self.shared)
    }

    /// How many receivers exist.
    pub fn receiver_count(&self) -> usize {
        self.shared.lock().receivers
    }

    /// How many retained values this receiver has not received yet (values
    /// it already lost to lag are not counted).
    pub fn len(&self) -> usize {
        let st = self.shared.lock();
        let from = self.next.max(st.oldest(self.shared.capacity));
        (st.tail - from) as usize
    }

    /// Whether this receiver has received every retained value.
    pub fn is_empty(&self) -> bool {
        let st = self.shared.lock();
        self.next >= st.tail
    }

    /// Whether every sender is gone (values may still be left to receive).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().senders == 0
    }

    /// Whether `self` and `other` receive from the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    fn leave_queue(&mut self) {
        if self.waiter.is_some() {
            leave_queue(&mut self.waiter, &mut self.shared.lock().waiters);
        }
    }

    /// The receive step shared by [`Recv`], the stream and [`RecvStream`]:
    /// take what is there, else wait, observing cancellation through `cx`
    /// when it is given.
    fn poll_recv(&mut self, waker: &Waker, cx: Option<&Cx>) -> Poll<Result<T, RecvError>>
    where
        T: Clone,
    {
        let capacity = self.shared.capacity;
        let mut st = self.shared.lock();
        let result = match st.try_recv(&mut self.next, capacity) {
            Ok(v) => Ok(v),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Empty) => {
                // Registered before the lock is released: a send after this
                // point wakes us (no lost wakeup).
                enter_queue(&mut self.waiter, &mut st.waiters, waker);
                drop(st);
                let Some(reason) = cx.and_then(Cx::observe_cancel) else {
                    return Poll::Pending;
                };
                // Cancelled while we would wait: leave, having taken nothing.
                self.leave_queue();
                return Poll::Ready(Err(RecvError::Cancelled(Cancelled::new(reason))));
            }
        };
        leave_queue(&mut self.waiter, &mut st.waiters);
        Poll::Ready(result)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let capacity = self.shared.capacity;
        let mut st = self.shared.lock();
        leave_queue(&mut self.waiter, &mut st.waiters);
        st.receivers -= 1;
        st.release(self.next, capacity);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Receiver")
            .field("next", &self.next)
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}

/// Items: `Ok(value)`, or `Err(Lagged(n))` once per lag (rule B4); ends
/// where [`Receiver::recv`] would return `Closed`.
///
/// # Cancellation
/// Not cancel-aware (there is no [`Cx`]): see the [module docs](self#streams).
/// Dropping a pending `next()` consumes nothing. Use [`Receiver::stream`]
/// for a stream that ends on cancellation.
impl<T: Clone> Stream for Receiver<T> {
    type Item = Result<T, Lagged>;

    fn poll_next(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .poll_recv(task_cx.waker(), None)
            .map(stream_item)
    }
}

fn stream_item<T>(r: Result<T, RecvError>) -> Option<Result<T, Lagged>> {
    match r {
        Ok(v) => Some(Ok(v)),
        Err(RecvError::Lagged(n)) => Some(Err(Lagged(n))),
        Err(RecvError::Closed | RecvError::Cancelled(_)) => None,
    }
}

// ===== futures =============================================================

/// The future returned by [`Receiver::recv`].
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, T> {
    rx: &'a mut Receiver<T>,
    cx: &'a Cx,
}

impl<T: Clone> Future for Recv<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.rx.poll_recv(task_cx.waker(), Some(this.cx))
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        self.rx.leave_queue();
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Recv")
            .field("rx", &self.rx)
            .finish()
    }
}

/// The cancel-aware stream returned by [`Receiver::stream`].
#[must_use = "streams do nothing unless polled"]
pub struct RecvStream<'a, T> {
    rx: &'a mut Receiver<T>,
    cx: &'a Cx,
    cancelled: Option<Cancelled>,
}

impl<T> RecvStream<'_, T> {
    /// The cancellation that ended the stream, if that is why it ended.
    pub fn cancelled(&self) -> Option<&Cancelled> {
        self.cancelled.as_ref()
    }
}

/// As the [`Stream` of `Receiver`](Receiver#impl-Stream-for-Receiver<T>),
/// except that the stream ends when the task is cancelled while it waits.
///
/// # Cancellation
/// See [`Receiver::stream`]. Once ended by cancellation it stays ended.
impl<T: Clone> Stream for RecvStream<'_, T> {
    type Item = Result<T, Lagged>;

    fn poll_next(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.cancelled.is_some() {
            return Poll::Ready(None);
        }
        this.rx
            .poll_recv(task_cx.waker(), Some(this.cx))
            .map(|r| match r {
                Err(RecvError::Cancelled(c)) => {
                    this.cancelled = Some(c);
                    None
                }
                other => stream_item(other),
            })
    }
}

impl<T> Drop for RecvStream<'_, T> {
    fn drop(&mut self) {
        self.rx.leave_queue();
    }
}

impl<T> fmt::Debug for RecvStream<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::RecvStream")
            .field("rx", &self.rx)
            .field("cancelled", &self.cancelled)
            .finish()
    }
}

// Compile-time: the halves and futures move between and are shared across
// threads whenever `T: Send`.
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    const fn send<X: Send>() {}
    send_sync::<Sender<Vec<u8>>>();
    send_sync::<Receiver<Vec<u8>>>();
    send::<Recv<'static, Vec<u8>>>();
    send::<RecvStream<'static, Vec<u8>>>();
    send_sync::<SendError<Vec<u8>>>();
    send_sync::<RecvError>();
};
