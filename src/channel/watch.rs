//! A single-producer, multi-consumer channel that holds one value, the
//! latest, with a version: receivers wait for *changes*, not for messages.
//!
//! ```
//! use asupersync::RuntimeBuilder;
//! use asupersync::channel::watch;
//!
//! let rt = RuntimeBuilder::current_thread().build().unwrap();
//! rt.block_on(|cx| async move {
//!     let (tx, mut rx) = watch::channel("idle");
//!     assert!(!rx.has_changed()); // the initial value counts as seen
//!     tx.send("busy").unwrap();
//!     tx.send("done").unwrap(); // coalesced with "busy"
//!     rx.changed(&cx).await.unwrap(); // returns at once: a newer version exists
//!     assert_eq!(*rx.borrow_and_update(), "done");
//!     drop(tx);
//!     assert!(rx.changed(&cx).await.unwrap_err().is_closed());
//!     assert_eq!(*rx.borrow(), "done"); // the last value outlives the sender
//! });
//! ```
//!
//! Rules:
//! 1. W1 (versions): the channel holds one value and a version, bumped by
//!    every `send`, `send_replace`, `send_modify` (and `send_if_modified`
//!    that reports a change). Each receiver remembers the version it last
//!    saw; a receiver created by [`channel`], [`Sender::subscribe`] or
//!    [`Clone`] starts having seen the current one.
//! 2. W2 (coalescing, nothing missed): updates between two looks coalesce;
//!    a receiver never sees the same version twice, and never misses the
//!    last one: [`Receiver::changed`] returns `Ok` as long as a version newer
//!    than the last seen exists — even after the sender is gone.
//! 3. W3 (close): when the [`Sender`] is dropped, `changed` returns
//!    [`RecvError::Closed`] once the receiver has seen the last version; the
//!    value stays readable. When every receiver is gone, `send` fails and
//!    gives the value back, and [`Sender::closed`] completes.
//! 4. W4 (cancellation consumes nothing): `changed` and `closed` observe
//!    cancellation only when they would wait. A `changed` that returns
//!    [`RecvError::Cancelled`], or whose future is dropped before it
//!    completes, leaves the seen version unchanged: the change it was
//!    waiting for is still reported to the next call.
//! 5. W5 (FIFO wakeups): waiting receivers (and waiting `closed` calls) are
//!    woken in the order they started waiting (the shared [`WaitQueue`]);
//!    one that stops waiting leaves without disturbing the others.
//! 6. W6 (guards): [`Receiver::borrow`] and friends return a read guard
//!    ([`Ref`]); while one is held, senders wait for it (a blocking wait,
//!    not an async one). Keep guards short and never hold one across an
//!    `.await` (the guard is not `Send`, which catches most mistakes).
//!    Taking a guard and then sending on the same thread deadlocks.
//! 7. W7 (no steady-state allocation): sending and waiting allocate
//!    nothing (the wait queue reuses its slots).
//!
//! # Streams
//! [`Receiver`] implements [`Stream`]: each item is a clone of the latest
//! value, yielded when a version newer than the last seen exists (updates
//! in between coalesce, W2), and marks it seen; the stream ends where
//! `changed` would return `Closed`. To start with the current value, call
//! [`Receiver::mark_changed`] first. That path has no [`Cx`], so **it does
//! not observe cancellation**: a cancelled task awaiting the next item keeps
//! waiting until a change, the sender's drop, or the runtime force-drops the
//! task when its cleanup grace period ends. Dropping a pending `next()`
//! changes nothing (W4). For a cancel-aware stream, use
//! [`Receiver::stream`], which ends when the task is cancelled while it
//! waits.
//!
//! [`WaitQueue`]: crate::sync
//! [`Stream`]: futures_core::Stream

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use super::broadcast::{WakeBatch, enter_queue, leave_queue};
use crate::exec::cx::Cx;
use crate::sync::waiters::{WaitQueue, WaiterKey};
use crate::types::cancel::Cancelled;

/// The version of the initial value. A receiver whose seen version is
/// [`UNSEEN`] (below every real version) has a change pending.
const FIRST_VERSION: u64 = 1;
const UNSEEN: u64 = 0;

/// Creates a watch channel holding `init`; the receiver has seen it (W1).
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        value: RwLock::new(init),
        version: AtomicU64::new(FIRST_VERSION),
        state: Mutex::new(State {
            closed: false,
            receivers: 1,
            changed_waiters: WaitQueue::new(),
            closed_waiters: WaitQueue::new(),
        }),
    });
    let rx = Receiver {
        shared: shared.clone(),
        seen: FIRST_VERSION,
        waiter: None,
    };
    (Sender { shared }, rx)
}

// ===== errors ==============================================================

/// A [`Sender::send`] that found no receiver; the value is inside and was
/// not stored.
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
        f.write_str("sending on a watch channel with no receivers")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// A [`Receiver::changed`] that saw no change.
#[derive(Clone, PartialEq, Eq)]
pub enum RecvError {
    /// The sender is gone and this receiver has seen the last version (W3).
    Closed,
    /// The waiting task was cancelled; the seen version is unchanged (W4).
    Cancelled(Cancelled),
}

impl RecvError {
    /// Whether the sender is gone and the last version was seen.
    pub fn is_closed(&self) -> bool {
        matches!(self, RecvError::Closed)
    }

    /// Whether the wait observed the task's cancellation.
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
            RecvError::Closed => f.write_str("Closed"),
            RecvError::Cancelled(c) => f.debug_tuple("Cancelled").field(c).finish(),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str("watching a closed channel with no newer version"),
            RecvError::Cancelled(c) => write!(f, "wait for a change {c}"),
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecvError::Cancelled(c) => Some(c),
            RecvError::Closed => None,
        }
    }
}

// ===== shared state ========================================================

struct Shared<T> {
    value: RwLock<T>,
    /// Bumped while `value` is write-locked, so a reader holding the read
    /// lock sees the version of the value it reads.
    version: AtomicU64,
    state: Mutex<State>,
}

struct State {
    /// The sender is gone.
    closed: bool,
    receivers: usize,
    /// Receivers waiting in `changed` (or a stream).
    changed_waiters: WaitQueue<(), ()>,
    /// `Sender::closed` calls waiting for the last receiver to go.
    closed_waiters: WaitQueue<(), ()>,
}

// Lock order: never acquire `value` while holding `state` (a reader holding
// a `Ref` may call into `state`), and never the reverse while waiting on the
// other. Wake-ups cannot be lost: a sender bumps `version` before it locks
// `state` to notify, and a waiter reads `version` and registers under `state`.

impl<T> Shared<T> {
    /// `state` holds counters and queues only; no user code runs under it.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A panic in `send_modify`'s closure poisons the value's lock; the
    /// (possibly partly modified) value stays usable, as documented there.
    fn read(&self) -> RwLockReadGuard<'_, T> {
        self.value.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Applies `modify` under the write lock; bumps the version if it
    /// reports a change, then wakes the waiting receivers.
    fn update<R>(&self, modify: impl FnOnce(&mut T) -> (bool, R)) -> R {
        let (changed, r) = {
            let mut value = self.value.write().unwrap_or_else(PoisonError::into_inner);
            let (changed, r) = modify(&mut value);
            if changed {
                self.version.fetch_add(1, Ordering::SeqCst);
            }
            (changed, r)
        };
        if changed {
            self.wake_changed(self.lock());
        }
        r
    }

    fn wake_changed(&self, st: MutexGuard<'_, State>) {
        WakeBatch::wake_all(st, || self.lock(), |s| &mut s.changed_waiters);
    }
}

// ===== read guard ==========================================================

/// A read guard on the channel's value (see rule W6: keep it short).
pub struct Ref<'a, T> {
    guard: RwLockReadGuard<'a, T>,
    has_changed: bool,
}

impl<T> Ref<'_, T> {
    /// Whether this value was new to the receiver that borrowed it (always
    /// `false` for [`Sender::borrow`]).
    pub fn has_changed(&self) -> bool {
        self.has_changed
    }
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

// ===== sender ==============================================================

/// The sending half. There is one; share it (`Arc`) to send from several
/// tasks. Dropping it closes the channel (W3).
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Replaces the value and notifies the receivers, if there are any.
    ///
    /// Errors: there is no receiver; `value` is returned and not stored.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.shared.lock().receivers == 0 {
            return Err(SendError(value));
        }
        drop(self.send_replace(value));
        Ok(())
    }

    /// Replaces the value, notifies the receivers, and returns the old
    /// value; works with no receiver too (a later [`subscribe`] sees it).
    ///
    /// [`subscribe`]: Self::subscribe
    pub fn send_replace(&self, value: T) -> T {
        self.shared.update(|v| (true, std::mem::replace(v, value)))
    }

    /// Modifies the value in place and notifies the receivers (with or
    /// without receivers).
    ///
    /// # Panics
    /// If `modify` panics, the panic propagates; the changes it made before
    /// panicking stay visible to later borrows, but the version is not
    /// bumped and nobody is notified.
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        self.shared.update(|v| {
            modify(v);
            (true, ())
        });
    }

    /// Modifies the value in place and, if `modify` returns `true`, bumps
    /// the version and notifies the receivers. Returns what `modify`
    /// returned.
    ///
    /// # Panics
    /// As [`send_modify`](Self::send_modify).
    pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
        self.shared.update(|v| {
            let changed = modify(v);
            (changed, changed)
        })
    }

    /// A read guard on the current value (W6).
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: self.shared.read(),
            has_changed: false,
        }
    }

    /// A new receiver that has seen the current version.
    pub fn subscribe(&self) -> Receiver<T> {
        let mut st = self.shared.lock();
        st.receivers += 1;
        // Read under `state`: a concurrent send either bumped it already
        // (seen) or will notify after we release `state`.
        let seen = self.shared.version();
        drop(st);
        Receiver {
            shared: self.shared.clone(),
            seen,
            waiter: None,
        }
    }

    /// How many receivers exist.
    pub fn receiver_count(&self) -> usize {
        self.shared.lock().receivers
    }

    /// Whether every receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.receiver_count() == 0
    }

    /// Waits until every receiver is gone.
    ///
    /// # Cancellation
    /// Cancel-aware: if the task is cancelled while it waits, the future
    /// returns `Err(Cancelled)` (acknowledging the cancellation) and leaves
    /// the wait queue; dropping it does the same. Nothing else is held. If
    /// the receivers are already gone it returns `Ok` even to a cancelled
    /// task.
    pub fn closed<'a>(&'a self, cx: &'a Cx) -> Closed<'a, T> {
        Closed {
            tx: self,
            cx,
            waiter: None,
        }
    }

    /// Whether `self` and `rx` are the two ends of the same channel.
    pub fn same_channel(&self, rx: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.shared, &rx.shared)
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.closed = true;
        self.shared.wake_changed(st);
    }
}

impl<T: fmt::Debug> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("watch::Sender")
            .field("version", &self.shared.version())
            .field("receivers", &self.receiver_count())
            .finish()
    }
}

// ===== receiver ============================================================

/// The receiving half. Cloning it gives a receiver that has seen the same
/// version.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The version this receiver last saw.
    seen: u64,
    /// This receiver's place in the wait queue, while it waits.
    waiter: Option<WaiterKey>,
}

impl<T> Receiver<T> {
    /// A read guard on the current value; does not mark it seen (W6).
    /// [`Ref::has_changed`] tells whether it is newer than the last seen.
    pub fn borrow(&self) -> Ref<'_, T> {
        let guard = self.shared.read();
        let version = self.shared.version();
        Ref {
            guard,
            has_changed: version != self.seen,
        }
    }

    /// A read guard on the current value, which is marked seen (W6).
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let guard = self.shared.read();
        let version = self.shared.version();
        let has_changed = version != self.seen;
        self.seen = version;
        Ref { guard, has_changed }
    }

    /// Whether a version newer than the last seen exists (W2); stays
    /// meaningful after the sender is gone (see [`is_closed`](Self::is_closed)).
    pub fn has_changed(&self) -> bool {
        self.shared.version() != self.seen
    }

    /// Marks the current version seen without reading it.
    pub fn mark_unchanged(&mut self) {
        self.seen = self.shared.version();
    }

    /// Marks the current value unseen: the next `changed` returns at once
    /// (and the stream yields it).
    pub fn mark_changed(&mut self) {
        self.seen = UNSEEN;
    }

    /// Waits for a version newer than the last seen, and marks it seen.
    ///
    /// Returns `Ok` at once if one exists already (W2); then read it with
    /// [`borrow_and_update`](Self::borrow_and_update) (which may show a
    /// still newer one). Returns [`RecvError::Closed`] when the sender is
    /// gone and the last version was seen.
    ///
    /// # Cancellation
    /// Cancel-aware, and consumes nothing when cancelled (W4): if the task
    /// is cancelled while it would wait, it returns
    /// [`RecvError::Cancelled`] (acknowledging the cancellation) with the
    /// seen version unchanged, so the change is reported to the next call;
    /// dropping the future before it completes likewise changes nothing and
    /// leaves the wait queue without disturbing the other waiters. A change
    /// (or the closure) that is already there is reported even to a
    /// cancelled task.
    pub fn changed<'a>(&'a mut self, cx: &'a Cx) -> Changed<'a, T> {
        Changed { rx: self, cx }
    }

    /// A stream over this receiver that observes cancellation through `cx`:
    /// items as for the receiver's own [`Stream`] implementation.
    ///
    /// # Cancellation
    /// If the task is cancelled while the stream would wait, the stream
    /// ends (`None`) with the seen version unchanged, and
    /// [`ChangeStream::cancelled`] returns the observed cancellation.
    pub fn stream<'a>(&'a mut self, cx: &'a Cx) -> ChangeStream<'a, T> {
        ChangeStream {
            rx: self,
            cx,
            cancelled: None,
        }
    }

    /// Whether the sender is gone (a newer version may still be unseen).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Whether `self` and `other` watch the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    fn leave_queue(&mut self) {
        if self.waiter.is_some() {
            leave_queue(&mut self.waiter, &mut self.shared.lock().changed_waiters);
        }
    }

    /// The step shared by [`Changed`] and the streams: report a newer
    /// version (marking it seen) or the closure, else wait, observing
    /// cancellation through `cx` when it is given.
    fn poll_changed(&mut self, waker: &Waker, cx: Option<&Cx>) -> Poll<Result<(), RecvError>> {
        let mut st = self.shared.lock();
        let version = self.shared.version();
        let result = if version != self.seen {
            self.seen = version;
            Ok(())
        } else if st.closed {
            Err(RecvError::Closed)
        } else {
            // Registered before `state` is released: a later send wakes us.
            enter_queue(&mut self.waiter, &mut st.changed_waiters, waker);
            drop(st);
            let Some(reason) = cx.and_then(Cx::observe_cancel) else {
                return Poll::Pending;
            };
            self.leave_queue();
            return Poll::Ready(Err(RecvError::Cancelled(Cancelled::new(reason))));
        };
        leave_queue(&mut self.waiter, &mut st.changed_waiters);
        Poll::Ready(result)
    }

    /// A clone of the latest value, marked seen, after a change.
    fn poll_next_value(&mut self, waker: &Waker, cx: Option<&Cx>) -> Poll<Result<T, RecvError>>
    where
        T: Clone,
    {
        match self.poll_changed(waker, cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(self.borrow_and_update().clone())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.lock().receivers += 1;
        Receiver {
            shared: self.shared.clone(),
            seen: self.seen,
            waiter: None,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        leave_queue(&mut self.waiter, &mut st.changed_waiters);
        st.receivers -= 1;
        if st.receivers == 0 {
            WakeBatch::wake_all(st, || self.shared.lock(), |s| &mut s.closed_waiters);
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("watch::Receiver")
            .field("seen", &self.seen)
            .field("has_changed", &self.has_changed())
            .finish()
    }
}

/// Items: a clone of the latest value each time a newer version exists
/// (marking it seen); ends where [`Receiver::changed`] would return
/// `Closed`.
///
/// # Cancellation
/// Not cancel-aware (there is no [`Cx`]): see the [module docs](self#streams).
/// Dropping a pending `next()` changes nothing. Use [`Receiver::stream`]
/// for a stream that ends on cancellation.
impl<T: Clone> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut()
            .poll_next_value(task_cx.waker(), None)
            .map(Result::ok)
    }
}

// ===== futures =============================================================

/// The future returned by [`Receiver::changed`].
#[must_use = "futures do nothing unless awaited"]
pub struct Changed<'a, T> {
    rx: &'a mut Receiver<T>,
    cx: &'a Cx,
}

impl<T> Future for Changed<'_, T> {
    type Output = Result<(), RecvError>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.rx.poll_changed(task_cx.waker(), Some(this.cx))
    }
}

impl<T> Drop for Changed<'_, T> {
    fn drop(&mut self) {
        self.rx.leave_queue();
    }
}

impl<T> fmt::Debug for Changed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("watch::Changed")
            .field("seen", &self.rx.seen)
            .finish()
    }
}

/// The future returned by [`Sender::closed`].
#[must_use = "futures do nothing unless awaited"]
pub struct Closed<'a, T> {
    tx: &'a Sender<T>,
    cx: &'a Cx,
    waiter: Option<WaiterKey>,
}

impl<T> Future for Closed<'_, T> {
    type Output = Result<(), Cancelled>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let shared = &this.tx.shared;
        let mut st = shared.lock();
        if st.receivers == 0 {
            leave_queue(&mut this.waiter, &mut st.closed_waiters);
            return Poll::Ready(Ok(()));
        }
        enter_queue(&mut this.waiter, &mut st.closed_waiters, task_cx.waker());
        drop(st);
        match this.cx.observe_cancel() {
            None => Poll::Pending,
            Some(reason) => {
                leave_queue(&mut this.waiter, &mut shared.lock().closed_waiters);
                Poll::Ready(Err(Cancelled::new(reason)))
            }
        }
    }
}

impl<T> Drop for Closed<'_, T> {
    fn drop(&mut self) {
        if self.waiter.is_some() {
            leave_queue(&mut self.waiter, &mut self.tx.shared.lock().closed_waiters);
        }
    }
}

impl<T> fmt::Debug for Closed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("watch::Closed")
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}

/// The cancel-aware stream returned by [`Receiver::stream`].
#[must_use = "streams do nothing unless polled"]
pub struct ChangeStream<'a, T> {
    rx: &'a mut Receiver<T>,
    cx: &'a Cx,
    cancelled: Option<Cancelled>,
}

impl<T> ChangeStream<'_, T> {
    /// The cancellation that ended the stream, if that is why it ended.
    pub fn cancelled(&self) -> Option<&Cancelled> {
        self.cancelled.as_ref()
    }
}

/// As the receiver's own [`Stream`], except that the stream ends when the
/// task is cancelled while it waits.
///
/// # Cancellation
/// See [`Receiver::stream`]. Once ended by cancellation it stays ended.
impl<T: Clone> Stream for ChangeStream<'_, T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        if this.cancelled.is_some() {
            return Poll::Ready(None);
        }
        this.rx
            .poll_next_value(task_cx.waker(), Some(this.cx))
            .map(|r| match r {
                Ok(v) => Some(v),
                Err(RecvError::Closed) => None,
                Err(RecvError::Cancelled(c)) => {
                    this.cancelled = Some(c);
                    None
                }
            })
    }
}

impl<T> Drop for ChangeStream<'_, T> {
    fn drop(&mut self) {
        self.rx.leave_queue();
    }
}

impl<T> fmt::Debug for ChangeStream<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("watch::ChangeStream")
            .field("seen", &self.rx.seen)
            .field("cancelled", &self.cancelled)
            .finish()
    }
}

// Compile-time: the halves and futures move between and are shared across
// threads whenever `T: Send + Sync` (receivers read the value in place).
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    const fn send<X: Send>() {}
    send_sync::<Sender<Vec<u8>>>();
    send_sync::<Receiver<Vec<u8>>>();
    send::<Changed<'static, Vec<u8>>>();
    send::<Closed<'static, Vec<u8>>>();
    send::<ChangeStream<'static, Vec<u8>>>();
    send_sync::<SendError<Vec<u8>>>();
    send_sync::<RecvError>();
};
