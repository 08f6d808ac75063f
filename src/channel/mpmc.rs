//! Multi-producer, multi-consumer channels: a work queue. Both halves are
//! `Clone`; every value goes to exactly one receiver.
//!
//! ```
//! use asupersync::RuntimeBuilder;
//! use asupersync::channel::mpmc;
//!
//! let rt = RuntimeBuilder::new().worker_threads(2).build().unwrap();
//! let total = rt.block_on(|cx| async move {
//!     let (jobs, queue) = mpmc::channel::<u64>(8);
//!     let mut workers = Vec::new();
//!     for _ in 0..3 {
//!         let queue = queue.clone();
//!         workers.push(
//!             cx.spawn(move |cx| async move {
//!                 let mut sum = 0;
//!                 // Each job is taken by exactly one worker; the loop ends
//!                 // once every sender is gone and the queue is drained.
//!                 while let Ok(job) = queue.recv(&cx).await {
//!                     sum += job;
//!                 }
//!                 sum
//!             })
//!             .unwrap(),
//!         );
//!     }
//!     drop(queue);
//!     for job in 1..=100 {
//!         jobs.send(&cx, job).await.unwrap();
//!     }
//!     drop(jobs); // workers drain the queue, then see Disconnected
//!     let mut total = 0;
//!     for w in workers {
//!         total += w.join(&cx).await.unwrap();
//!     }
//!     total
//! });
//! assert_eq!(total, 5050);
//! ```
//!
//! Why a separate channel rather than a cloneable [`mpsc`](super::mpsc)
//! receiver: mpsc's receive path is lock-free because there is exactly one
//! consumer (one registered waker, one popper). Several consumers need a
//! FIFO queue of waiting receivers and a hand-off protocol so that a value is
//! never taken twice nor lost when a waiting receiver is cancelled; keeping
//! that here leaves mpsc's fast path and its rules as they are. An mpmc
//! channel takes one short lock per operation.
//!
//! Rules:
//! 1. **Capacity.** A bounded channel of capacity `n` never holds more than
//!    `n` values: queued ones plus values already handed to a waiting
//!    receiver that has not picked them up yet. An unbounded channel never
//!    waits for capacity.
//! 2. **FIFO values.** Values are received in the order they entered the
//!    channel (a waiting `send`'s value enters when its turn comes). One
//!    sender's values are received in the order it sent them (by whichever
//!    receivers take them).
//! 3. **FIFO senders.** Senders waiting for capacity are served in the order
//!    they started waiting; while one waits, `try_send` returns `Full` and
//!    a new `send` queues behind it.
//! 4. **FIFO receivers, exactly once.** Receivers waiting for a value are
//!    served in the order they started waiting: a value sent while receivers
//!    wait is handed to the oldest one at once (it is that receiver's from
//!    then on). Every value is received by exactly one receiver, or comes
//!    back to its sender in an error, or is dropped with the channel when the
//!    last receiver goes.
//! 5. **Cancellation.** Every wait takes `&Cx` and is cancel-aware. A
//!    cancelled `recv` consumes nothing: if a value was handed to it but not
//!    returned, it goes to the next waiting receiver, or back to the front of
//!    the queue. (A value handed over before the cancellation was observed
//!    is returned as `Ok`, as a queued value is returned even in a cancelled
//!    task.) A cancelled `send` returns its value and holds no slot. Dropping
//!    a wait future is like cancelling it, except that a dropped `send`
//!    future drops its value unsent.
//! 6. **Disconnection.** When every [`Sender`] is dropped, or either side
//!    calls `close`, no more values can be sent (sends fail with
//!    `Disconnected` and give the value back; waiting senders are woken);
//!    receivers get the queued values, then `Disconnected`. When every
//!    [`Receiver`] is dropped, sends fail with `Disconnected` and queued
//!    values are dropped.
//! 7. **Plain threads.** [`Sender::blocking_send`] and
//!    [`Receiver::blocking_recv`] park the calling thread and queue in the
//!    same FIFO order as async waiters; they panic on a thread that runs
//!    runtime tasks (rule TB1).
//!
//! Errors are the [`mpsc`](super::mpsc) types.
//!
//! Receivers do not implement `Stream`: a pending stream poll would have to
//! keep the value handed to it (rule 4) until the receiver is polled again,
//! which a receiver that stops polling would hold forever. Loop on
//! [`Receiver::recv`] instead.

use pin_project_lite::pin_project;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

pub use super::mpsc::{RecvError, SendError, SendTimeoutError, TryRecvError, TrySendError};

use crate::exec::cx::Cx;
use crate::runtime::park::{assert_may_block, park_until};
use crate::sync::waiters::{WaitQueue, WaiterKey, WaiterState, WakeList};
use crate::time::Sleep;
use crate::types::cancel::Cancelled;

/// Creates a bounded multi-consumer channel holding at most `capacity`
/// values (rule 1).
///
/// # Panics
/// If `capacity` is 0 (a rendezvous channel is not supported).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "mpmc::channel: capacity must be at least 1");
    new_chan(capacity)
}

/// Creates an unbounded multi-consumer channel: sends never wait.
pub fn unbounded_channel<T>() -> (Sender<T>, Receiver<T>) {
    new_chan(usize::MAX)
}

fn new_chan<T>(bound: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        bound,
        state: Mutex::new(State {
            queue: VecDeque::new(),
            handed: 0,
            send_waiters: WaitQueue::new(),
            recv_waiters: WaitQueue::new(),
            senders: 1,
            receivers: 1,
            closed: false,
        }),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

// ----- shared state ---------------------------------------------------------

/// What a waiting sender is handed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendGrant {
    /// Its parked value entered the channel.
    Sent,
    /// No more sends: the value is still parked, to be given back.
    Closed,
}

/// What a waiting receiver is handed.
enum RecvGrant<T> {
    Value(T),
    /// Disconnected and drained.
    Closed,
}

struct Chan<T> {
    /// `usize::MAX` when unbounded.
    bound: usize,
    state: Mutex<State<T>>,
}

struct State<T> {
    queue: VecDeque<T>,
    /// Values handed to a waiting receiver and not collected yet; they still
    /// count against the capacity (rule 1).
    handed: usize,
    /// Waiting senders, each with its parked value (`None` once sent).
    send_waiters: WaitQueue<Option<T>, SendGrant>,
    /// Waiting receivers. Non-empty only while `queue` is empty.
    recv_waiters: WaitQueue<(), RecvGrant<T>>,
    senders: usize,
    receivers: usize,
    /// `close` was called.
    closed: bool,
}

impl<T> State<T> {
    fn in_use(&self) -> usize {
        self.queue.len() + self.handed
    }

    /// No more values can be sent.
    fn send_closed(&self) -> bool {
        self.closed || self.receivers == 0 || self.senders == 0
    }

    /// Nothing queued and nothing can ever be.
    fn drained(&self) -> bool {
        self.queue.is_empty() && (self.closed || self.senders == 0)
    }

    /// A value enters the channel (its slot is accounted for by the
    /// caller): to the oldest waiting receiver, else the back of the queue.
    fn offer(&mut self, value: T, wakers: &mut WakeList) {
        if self.recv_waiters.is_empty() {
            self.queue.push_back(value);
        } else {
            self.handed += 1;
            wakers.push(self.recv_waiters.notify_front(RecvGrant::Value(value)));
        }
    }

    /// A value handed to a receiver that gave up goes to the next waiting
    /// receiver, else back to the front of the queue (rule 5). Its slot
    /// stays taken.
    fn give_back(&mut self, value: T, wakers: &mut WakeList) {
        if self.recv_waiters.is_empty() {
            self.handed -= 1;
            self.queue.push_front(value);
        } else {
            wakers.push(self.recv_waiters.notify_front(RecvGrant::Value(value)));
        }
    }

    /// One slot was freed: the oldest waiting sender's value takes it.
    fn slot_freed(&mut self, wakers: &mut WakeList) {
        if self.send_closed() {
            return;
        }
        let Some(value) = self.send_waiters.front_mut().and_then(Option::take) else {
            return;
        };
        wakers.push(self.send_waiters.notify_front(SendGrant::Sent));
        self.offer(value, wakers);
    }

    /// No more sends: waiting senders get their values back; if nothing is
    /// queued, waiting receivers learn it is over.
    fn close_senders(&mut self, wakers: &mut WakeList) {
        wakers.extend(self.send_waiters.notify_all(SendGrant::Closed));
        self.close_receivers_if_drained(wakers);
    }

    fn close_receivers_if_drained(&mut self, wakers: &mut WakeList) {
        if self.drained() {
            while let Some(w) = self.recv_waiters.notify_front(RecvGrant::Closed) {
                wakers.push(w);
            }
        }
    }

    /// Takes the next queued value, refilling its slot from a waiting sender.
    fn pop(&mut self, wakers: &mut WakeList) -> Option<T> {
        let v = self.queue.pop_front()?;
        self.slot_freed(wakers);
        Some(v)
    }
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No user code runs under the lock (values are dropped outside it),
        // so a poisoned lock still holds a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One step of a send: deliver now, park the value in the sender queue,
    /// or collect the outcome of a parked one.
    fn poll_send(
        &self,
        key: &mut Option<WaiterKey>,
        value: &mut Option<T>,
        waker: &Waker,
    ) -> Poll<Result<(), SendError<T>>> {
        let mut wakers = WakeList::default();
        let polled = {
            let mut st = self.lock();
            if let Some(k) = *key {
                match st.send_waiters.state(k) {
                    Some(WaiterState::Waiting) => {
                        st.send_waiters.update_waker(k, waker);
                        return Poll::Pending;
                    }
                    Some(WaiterState::Notified(_)) => {
                        *key = None;
                        let (parked, grant) = st.send_waiters.remove(k).expect("a live key");
                        return Poll::Ready(match (grant, parked) {
                            (Some(SendGrant::Sent), _) => Ok(()),
                            (_, Some(v)) => Err(SendError::Disconnected(v)),
                            (_, None) => unreachable!("an unsent value is still parked"),
                        });
                    }
                    None => *key = None,
                }
            }
            let v = value.take().expect("send polled after completion");
            if st.send_closed() {
                Poll::Ready(Err(SendError::Disconnected(v)))
            } else if st.send_waiters.is_empty() && st.in_use() < self.bound {
                st.offer(v, &mut wakers);
                Poll::Ready(Ok(()))
            } else {
                *key = Some(st.send_waiters.push_back(waker.clone(), Some(v)));
                Poll::Pending
            }
        };
        wakers.wake();
        polled
    }

    /// Gives up a send registration. Returns the parked value (if it was not
    /// sent) and the grant, if any.
    fn abandon_send(&self, key: WaiterKey) -> (Option<T>, Option<SendGrant>) {
        self.lock().send_waiters.remove(key).unwrap_or((None, None))
    }

    /// One step of a receive: take a queued value, collect one handed to
    /// this waiter, or register (refresh) the waiter. `Ready(None)`:
    /// disconnected and drained.
    fn poll_recv(&self, key: &mut Option<WaiterKey>, waker: &Waker) -> Poll<Option<T>> {
        let mut wakers = WakeList::default();
        let polled = {
            let mut st = self.lock();
            self.poll_recv_locked(&mut st, key, waker, &mut wakers)
        };
        wakers.wake();
        polled
    }

    fn poll_recv_locked(
        &self,
        st: &mut State<T>,
        key: &mut Option<WaiterKey>,
        waker: &Waker,
        wakers: &mut WakeList,
    ) -> Poll<Option<T>> {
        if let Some(k) = *key {
            match st.recv_waiters.state(k) {
                Some(WaiterState::Waiting) => {
                    st.recv_waiters.update_waker(k, waker);
                    return Poll::Pending;
                }
                Some(WaiterState::Notified(_)) => {
                    *key = None;
                    return Poll::Ready(match st.recv_waiters.take_grant(k) {
                        Some(RecvGrant::Value(v)) => {
                            st.handed -= 1;
                            st.slot_freed(wakers);
                            Some(v)
                        }
                        Some(RecvGrant::Closed) | None => None,
                    });
                }
                None => *key = None,
            }
        }
        if let Some(v) = st.pop(wakers) {
            return Poll::Ready(Some(v));
        }
        if st.drained() {
            return Poll::Ready(None);
        }
        *key = Some(st.recv_waiters.push_back(waker.clone(), ()));
        Poll::Pending
    }

    /// Gives up a receive registration. A value handed to it is returned if
    /// `keep` (the caller takes it), otherwise passed on (rule 5).
    fn abandon_recv(&self, key: WaiterKey, keep: bool) -> Option<T> {
        let mut wakers = WakeList::default();
        let kept = {
            let mut st = self.lock();
            match st.recv_waiters.remove(key) {
                Some((_, Some(RecvGrant::Value(v)))) if keep => {
                    st.handed -= 1;
                    st.slot_freed(&mut wakers);
                    Some(v)
                }
                Some((_, Some(RecvGrant::Value(v)))) => {
                    st.give_back(v, &mut wakers);
                    None
                }
                _ => None,
            }
        };
        wakers.wake();
        kept
    }

    fn close(&self) {
        let mut wakers = WakeList::default();
        {
            let mut st = self.lock();
            st.closed = true;
            st.close_senders(&mut wakers);
        }
        wakers.wake();
    }
}

// ----- Sender ---------------------------------------------------------------

/// The sending half. Cloning it adds a sender; no more values can be sent
/// once the last one is dropped (rule 6).
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting for a free slot if there is none.
    ///
    /// The value goes to the oldest waiting receiver if one waits, else to
    /// the back of the queue. While it waits for capacity, the value is
    /// parked in the FIFO sender queue and enters the channel when its turn
    /// comes (rule 3).
    ///
    /// Errors give the value back: `Disconnected(value)` if no more values
    /// can be sent (every receiver gone, or closed), `Cancelled(value)` as
    /// below.
    ///
    /// # Cancellation
    /// Cancel-aware. If the task is cancelled while waiting for a slot, the
    /// send returns `Err(SendError::Cancelled(value))`: nothing was sent and
    /// no slot is held; the other waiters keep their order. If the value
    /// entered the channel before the cancellation was observed, the send
    /// returns `Ok(())`. A slot that is free at the first poll is used even
    /// in a cancelled task. Dropping the future while it waits drops `value`
    /// unsent.
    pub fn send<'a>(&'a self, cx: &'a Cx, value: T) -> SendFuture<'a, T> {
        SendFuture {
            chan: &self.chan,
            cx,
            key: None,
            value: Some(value),
        }
    }

    /// Sends `value`, waiting at most `timeout` for a free slot.
    ///
    /// As [`send`](Self::send), but gives up once `timeout` has passed on
    /// the runtime's clock: `Err(SendTimeoutError::Timeout(value))`. A slot
    /// that is free at the first poll is used at once, even with a zero
    /// `timeout`.
    ///
    /// # Cancellation
    /// As [`send`](Self::send): a cancelled wait returns
    /// `Err(SendTimeoutError::Cancelled(value))` and holds nothing.
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
            chan: &self.chan,
            key: None,
            value: Some(value),
            sleep: crate::time::sleep(cx, timeout),
        }
    }

    /// Sends `value` if a slot is free right now and no sender is waiting.
    ///
    /// Errors give the value back: `Full(value)` if there is no free slot or
    /// senders are waiting (rule 3), `Disconnected(value)` if no more values
    /// can be sent.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut wakers = WakeList::default();
        let result = {
            let mut st = self.chan.lock();
            if st.send_closed() {
                Err(TrySendError::Disconnected(value))
            } else if !st.send_waiters.is_empty() || st.in_use() >= self.chan.bound {
                Err(TrySendError::Full(value))
            } else {
                st.offer(value, &mut wakers);
                Ok(())
            }
        };
        wakers.wake();
        result
    }

    /// Sends `value` from a plain thread (no `Cx`), blocking the thread until
    /// a slot is free. Queues with the async senders (rule 3). No
    /// cancellation; `Err(SendError::Disconnected(value))` gives the value
    /// back if no more values can be sent.
    ///
    /// # Panics
    /// If called on a thread that runs runtime tasks (rule TB1): inside a
    /// task use [`send`](Self::send).
    #[track_caller]
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        assert_may_block("mpmc::Sender::blocking_send");
        let mut wait = SendRegistration {
            chan: &self.chan,
            key: None,
        };
        let mut value = Some(value);
        park_until(|waker| wait.chan.poll_send(&mut wait.key, &mut value, waker))
    }

    /// Stops the channel: no more values can be sent, waiting senders get
    /// their values back, receivers drain what is queued and then get
    /// `Disconnected` (rule 6).
    pub fn close(&self) {
        self.chan.close();
    }

    /// Whether no more values can be sent (closed, or every receiver gone).
    pub fn is_closed(&self) -> bool {
        let st = self.chan.lock();
        st.closed || st.receivers == 0
    }

    /// Values queued now (not counting those already handed to a receiver).
    pub fn len(&self) -> usize {
        self.chan.lock().queue.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free slots right now (`usize::MAX` minus the values held when
    /// unbounded).
    pub fn capacity(&self) -> usize {
        self.chan.bound - self.chan.lock().in_use()
    }

    /// The capacity given at creation (`usize::MAX` when unbounded).
    pub fn max_capacity(&self) -> usize {
        self.chan.bound
    }

    /// Whether both senders belong to the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
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
        let mut wakers = WakeList::default();
        {
            let mut st = self.chan.lock();
            st.senders -= 1;
            if st.senders == 0 {
                st.close_senders(&mut wakers);
            }
        }
        wakers.wake();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chan.fmt_fields(f.debug_struct("Sender"))
    }
}

impl<T> Chan<T> {
    fn fmt_fields(&self, mut d: fmt::DebugStruct<'_, '_>) -> fmt::Result {
        let st = self.lock();
        d.field("max_capacity", &self.bound)
            .field("queued", &st.queue.len())
            .field("senders", &st.senders)
            .field("receivers", &st.receivers)
            .field("closed", &st.closed)
            .finish()
    }
}

// ----- Receiver -------------------------------------------------------------

/// The receiving half. Cloning it adds a receiver; each value goes to
/// exactly one of them (rule 4).
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Receiver<T> {
    /// Waits for the next value.
    ///
    /// Receivers that wait are served in FIFO order (rule 4). Takes `&self`:
    /// one receiver may also be shared by reference between futures.
    ///
    /// Errors: `Disconnected` once no more values can be sent (every sender
    /// gone, or closed) and the queue is empty; `Cancelled` as below.
    ///
    /// # Cancellation
    /// Cancel-aware. If the task is cancelled while waiting, `recv` returns
    /// `Err(RecvError::Cancelled)` and consumes nothing: a value handed to it
    /// in the meantime goes to the next waiting receiver, or back to the
    /// front of the queue (rule 5). A value that is already queued (or was
    /// handed to it before the cancellation was observed) is returned even in
    /// a cancelled task. Dropping the future consumes nothing either.
    pub fn recv<'a>(&'a self, cx: &'a Cx) -> Recv<'a, T> {
        Recv {
            chan: &self.chan,
            cx,
            key: None,
        }
    }

    /// Takes the next value if one is queued.
    ///
    /// Errors: `Empty` if nothing is queued now but more may come,
    /// `Disconnected` if nothing ever will.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut wakers = WakeList::default();
        let result = {
            let mut st = self.chan.lock();
            match st.pop(&mut wakers) {
                Some(v) => Ok(v),
                None if st.drained() => Err(TryRecvError::Disconnected),
                None => Err(TryRecvError::Empty),
            }
        };
        wakers.wake();
        result
    }

    /// Receives the next value on a plain thread (no `Cx`), blocking the
    /// thread until one is available. Queues with the async receivers
    /// (rule 4). No cancellation; `Err(RecvError::Disconnected)` once nothing
    /// more can come.
    ///
    /// # Panics
    /// If called on a thread that runs runtime tasks (rule TB1): inside a
    /// task use [`recv`](Self::recv).
    #[track_caller]
    pub fn blocking_recv(&self) -> Result<T, RecvError> {
        assert_may_block("mpmc::Receiver::blocking_recv");
        let mut wait = RecvRegistration {
            chan: &self.chan,
            key: None,
        };
        park_until(|waker| wait.chan.poll_recv(&mut wait.key, waker)).ok_or(RecvError::Disconnected)
    }

    /// Stops the channel (see [`Sender::close`]).
    pub fn close(&self) {
        self.chan.close();
    }

    /// Whether no more values can be sent (closed, or every sender gone).
    /// Queued values can still be received.
    pub fn is_closed(&self) -> bool {
        let st = self.chan.lock();
        st.closed || st.senders == 0
    }

    /// Values queued now.
    pub fn len(&self) -> usize {
        self.chan.lock().queue.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free slots right now (see [`Sender::capacity`]).
    pub fn capacity(&self) -> usize {
        self.chan.bound - self.chan.lock().in_use()
    }

    /// The capacity given at creation (`usize::MAX` when unbounded).
    pub fn max_capacity(&self) -> usize {
        self.chan.bound
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.lock().receivers += 1;
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut wakers = WakeList::default();
        let dropped = {
            let mut st = self.chan.lock();
            st.receivers -= 1;
            if st.receivers > 0 {
                return;
            }
            wakers.extend(st.send_waiters.notify_all(SendGrant::Closed));
            std::mem::take(&mut st.queue)
        };
        wakers.wake();
        // Dropped outside the lock: a value may own a handle of this channel.
        drop(dropped);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chan.fmt_fields(f.debug_struct("Receiver"))
    }
}

// ----- futures --------------------------------------------------------------

/// Leaves the sender queue when a blocked thread unwinds while registered.
struct SendRegistration<'a, T> {
    chan: &'a Chan<T>,
    key: Option<WaiterKey>,
}

impl<T> Drop for SendRegistration<'_, T> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            drop(self.chan.abandon_send(k));
        }
    }
}

/// Leaves the receiver queue when a blocked thread unwinds while registered.
struct RecvRegistration<'a, T> {
    chan: &'a Chan<T>,
    key: Option<WaiterKey>,
}

impl<T> Drop for RecvRegistration<'_, T> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.chan.abandon_recv(k, false);
        }
    }
}

/// The future returned by [`Sender::send`].
#[must_use = "futures do nothing unless awaited"]
pub struct SendFuture<'a, T> {
    chan: &'a Chan<T>,
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
        let polled = this
            .chan
            .poll_send(&mut this.key, &mut this.value, task_cx.waker());
        if polled.is_ready() || this.cx.observe_cancel().is_none() {
            return polled;
        }
        let key = this.key.take().expect("a pending send is registered");
        Poll::Ready(match this.chan.abandon_send(key) {
            (_, Some(SendGrant::Sent)) => Ok(()),
            (Some(v), Some(SendGrant::Closed)) => Err(SendError::Disconnected(v)),
            (Some(v), None) => Err(SendError::Cancelled(v)),
            (None, _) => unreachable!("an unsent value is still parked"),
        })
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            // The parked value (if unsent) is dropped here, outside the lock.
            drop(self.chan.abandon_send(k));
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

pin_project! {
    /// The future returned by [`Sender::send_timeout`]. `!Unpin`: it holds
    /// a [`Sleep`](crate::time::Sleep); pin it to poll it by hand.
    #[must_use = "futures do nothing unless awaited"]
    pub struct SendTimeout<'a, T> {
        chan: &'a Chan<T>,
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
                drop(this.chan.abandon_send(k));
            }
        }
    }
}

impl<T> Future for SendTimeout<'_, T> {
    type Output = Result<(), SendTimeoutError<T>>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(r) = this.chan.poll_send(this.key, this.value, task_cx.waker()) {
            return Poll::Ready(r.map_err(SendTimeoutError::from));
        }
        let timed_out = match this.sleep.poll(task_cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(_cancelled)) => false,
        };
        let key = this.key.take().expect("a pending send is registered");
        Poll::Ready(match this.chan.abandon_send(key) {
            (_, Some(SendGrant::Sent)) => Ok(()),
            (Some(v), Some(SendGrant::Closed)) => Err(SendTimeoutError::Disconnected(v)),
            (Some(v), None) if timed_out => Err(SendTimeoutError::Timeout(v)),
            (Some(v), None) => Err(SendTimeoutError::Cancelled(v)),
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

/// The future returned by [`Receiver::recv`].
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, T> {
    chan: &'a Chan<T>,
    cx: &'a Cx,
    key: Option<WaiterKey>,
}

impl<T> Future for Recv<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.chan.poll_recv(&mut this.key, task_cx.waker()) {
            Poll::Ready(Some(v)) => return Poll::Ready(Ok(v)),
            Poll::Ready(None) => return Poll::Ready(Err(RecvError::Disconnected)),
            Poll::Pending => {}
        }
        let Some(reason) = this.cx.observe_cancel() else {
            return Poll::Pending;
        };
        let key = this.key.take().expect("a pending receive is registered");
        // A value handed over before the cancellation was seen is returned.
        Poll::Ready(match this.chan.abandon_recv(key, true) {
            Some(v) => Ok(v),
            None => Err(RecvError::Cancelled(Cancelled::new(reason))),
        })
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.chan.abandon_recv(k, false);
        }
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}

// Compile-time auto-trait checks: with `T: Send` every handle and future
// can cross threads.
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    const fn send<X: Send>() {}
    send_sync::<Sender<u8>>();
    send_sync::<Receiver<u8>>();
    send::<SendFuture<'static, u8>>();
    send::<SendTimeout<'static, u8>>();
    send::<Recv<'static, u8>>();
};
