//! A FIFO, cancel-aware, poisoning async mutex.
//!
//! ```
//! use std::sync::Arc;
//! use asupersync::sync::Mutex;
//!
//! asupersync::RuntimeBuilder::current_thread().build().unwrap().block_on(|cx| async move {
//!     let counter = Arc::new(Mutex::new(0u32));
//!     let mut handles = Vec::new();
//!     for _ in 0..4 {
//!         let counter = counter.clone();
//!         handles.push(cx.spawn(move |cx| async move {
//!             let mut n = counter.lock(&cx).await.expect("not cancelled, not poisoned");
//!             let read = *n;
//!             asupersync::yield_now().await; // held across an await: still exclusive
//!             *n = read + 1;
//!         }).unwrap());
//!     }
//!     for h in handles {
//!         h.join(&cx).await.unwrap();
//!     }
//!     assert_eq!(*counter.lock(&cx).await.unwrap(), 4);
//! });
//! ```
//!
//! Rules:
//! - M1 (mutual exclusion): at most one guard ([`MutexGuard`] or
//!   [`OwnedMutexGuard`]) exists at a time.
//! - M2 (FIFO, no barging): waiters are served in the order they first
//!   waited. Unlocking hands the lock *directly* to the oldest waiter (it is
//!   never free in between), so a task that arrives later cannot take it
//!   first — neither with [`Mutex::lock`] nor with [`Mutex::try_lock`],
//!   which fails whenever anyone is queued.
//! - M3 (cancel-safe wait): a waiter that is cancelled (its task's
//!   cancellation observed while queued) or dropped leaves the queue without
//!   disturbing the order of the others. If the lock had already been handed
//!   to it, it passes the lock on to the next waiter: nothing is leaked.
//! - M4 (acknowledgement): the wait observes cancellation only when it would
//!   block. A free, unqueued lock is taken even by a task whose cancellation
//!   is pending (so cleanup code can lock). A waiter whose turn came before
//!   the poll that observes the cancellation gets the lock (`Ok`); the
//!   cancellation stays pending for its next checkpoint.
//! - M5 (poisoning): a guard dropped while its thread is panicking poisons
//!   the mutex. [`Mutex::lock`] and [`Mutex::try_lock`] then fail with
//!   `Poisoned` — the lock is not held and passes on to the next waiter, in
//!   order — until [`Mutex::clear_poison`]. Repair under the lock with
//!   [`Mutex::lock_ignoring_poison`], then clear. Cancellation (a dropped
//!   guard without a panic) never poisons.
//! - M6 (exclusive access): [`Mutex::get_mut`] and [`Mutex::into_inner`]
//!   need no lock and ignore poisoning (check [`Mutex::is_poisoned`]).
//!
//! Implementation: one atomic word says whether the lock is held (`LOCKED`)
//! and whether anyone is queued (`QUEUED`, which implies `LOCKED`). Taking a
//! free, unqueued lock is one compare-and-swap from `0`, and releasing a lock
//! nobody waits for is one compare-and-swap back to `0`; neither touches the
//! wait queue's lock. `QUEUED` is only set or cleared under the queue's lock,
//! and while it is set the lock is never free (it is handed over, M2), so a
//! late arrival's compare-and-swap from `0` cannot barge. Each queued waiter
//! holds a ticket (unique per mutex); a hand-off removes the oldest waiter
//! from the queue and publishes its ticket in `granted`, so the woken waiter
//! learns that it holds the lock from one atomic load, without the queue's
//! lock. Only the waiter itself can move `granted` on (by releasing the lock
//! or by abandoning the hand-off), so a ticket seen there is never stale.

use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdMutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::waiters::{WaitQueue, WaiterKey};
use crate::exec::cx::Cx;
use crate::types::cancel::Cancelled;

/// An async mutex: FIFO, cancel-aware, poisoning. See the module rules.
pub struct Mutex<T: ?Sized> {
    /// `LOCKED` and `QUEUED` bits (see the module's implementation note).
    state: AtomicU8,
    poisoned: AtomicBool,
    /// The ticket of the waiter the lock was last handed to.
    granted: AtomicU64,
    waiters: StdMutex<Queue>,
    data: UnsafeCell<T>,
}

/// The waiters (each entry's data is its ticket) and the next ticket.
struct Queue {
    waiters: WaitQueue<u64, ()>,
    next_ticket: u64,
}

/// Held by a guard, or handed to a waiter that has not collected it yet.
const LOCKED: u8 = 1;
/// The wait queue is not empty (only changed under its lock; implies
/// `LOCKED`).
const QUEUED: u8 = 2;

// SAFETY: the data is only reached through a guard (one at a time, M1) or
// through `&mut self`, so sharing the mutex only ever moves `T` between
// threads; `T: Send` is enough, as for `std::sync::Mutex`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Why [`Mutex::lock`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockError {
    /// The task was cancelled while waiting (see `# Cancellation`).
    Cancelled(Cancelled),
    /// The mutex is poisoned (rule M5): a holder panicked. The lock is not
    /// held; use [`Mutex::lock_ignoring_poison`] to repair the data.
    Poisoned,
}

impl LockError {
    /// Whether the wait was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, LockError::Cancelled(_))
    }

    /// Whether the mutex was poisoned.
    pub fn is_poisoned(&self) -> bool {
        matches!(self, LockError::Poisoned)
    }
}

impl From<Cancelled> for LockError {
    fn from(c: Cancelled) -> Self {
        LockError::Cancelled(c)
    }
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Cancelled(c) => write!(f, "mutex lock {c}"),
            LockError::Poisoned => f.write_str("mutex poisoned: a holder panicked"),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Cancelled(c) => Some(c),
            LockError::Poisoned => None,
        }
    }
}

/// Why [`Mutex::try_lock`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryLockError {
    /// The mutex is held, or other tasks are queued for it (rule M2).
    WouldBlock,
    /// The mutex is free but poisoned (rule M5).
    Poisoned,
}

impl fmt::Display for TryLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("mutex is held or has waiters"),
            TryLockError::Poisoned => f.write_str("mutex poisoned: a holder panicked"),
        }
    }
}

impl std::error::Error for TryLockError {}

impl<T> Mutex<T> {
    /// A new, unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Self {
            state: AtomicU8::new(0),
            poisoned: AtomicBool::new(false),
            granted: AtomicU64::new(0),
            waiters: StdMutex::new(Queue {
                waiters: WaitQueue::new(),
                next_ticket: 1,
            }),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the value (rule M6: poisoning is
    /// ignored).
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    fn queue(&self) -> StdMutexGuard<'_, Queue> {
        // No user code runs under this lock, so it is never poisoned in
        // practice; recover anyway rather than propagate.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the lock if it is free and nobody is queued (M2): one
    /// compare-and-swap, no queue lock.
    fn acquire_if_free(&self) -> bool {
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Waits for the lock.
    ///
    /// Returns `Err(LockError::Poisoned)` if the mutex is poisoned when the
    /// lock reaches this waiter (rule M5); the lock then passes on.
    ///
    /// # Cancellation
    /// Cancel-aware while queued (rules M3, M4): once the task's
    /// cancellation is requested, the next poll returns
    /// `Err(LockError::Cancelled)` (acknowledging it), the waiter leaves the
    /// queue, and the other waiters keep their order. If the lock is free
    /// and nobody is queued it is taken at the first poll without looking
    /// at cancellation; if the lock was handed to this waiter before the
    /// cancellation was observed, the result is `Ok`. Dropping the future at
    /// any point releases whatever it was handed: no lock is leaked.
    pub fn lock(&self, cx: &Cx) -> Lock<'_, T> {
        Lock {
            mutex: self,
            cx: cx.clone(),
            wait: Wait::Start,
        }
    }

    /// Like [`lock`](Self::lock), but ignores poisoning: for repairing the
    /// data after a panic (call [`clear_poison`](Self::clear_poison) while
    /// holding the guard).
    ///
    /// # Cancellation
    /// As for [`lock`](Self::lock); the only error is `Cancelled`.
    pub fn lock_ignoring_poison(&self, cx: &Cx) -> LockIgnoringPoison<'_, T> {
        LockIgnoringPoison {
            mutex: self,
            cx: cx.clone(),
            wait: Wait::Start,
        }
    }

    /// Like [`lock`](Self::lock), for a mutex in an `Arc`: the guard owns a
    /// reference and is `'static` (if `T` is).
    ///
    /// # Cancellation
    /// As for [`lock`](Self::lock).
    pub fn lock_owned(self: Arc<Self>, cx: &Cx) -> LockOwned<T> {
        LockOwned {
            mutex: Some(self),
            cx: cx.clone(),
            wait: Wait::Start,
        }
    }

    /// Takes the lock if it is free *and nobody is queued* (rule M2: never
    /// jumps the queue).
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        self.try_acquire()?;
        Ok(MutexGuard::new(self))
    }

    /// [`try_lock`](Self::try_lock) for a mutex in an `Arc`.
    pub fn try_lock_owned(self: Arc<Self>) -> Result<OwnedMutexGuard<T>, TryLockError> {
        self.try_acquire()?;
        Ok(OwnedMutexGuard::new(self))
    }

    fn try_acquire(&self) -> Result<(), TryLockError> {
        if self.state.load(Ordering::Relaxed) != 0 {
            return Err(TryLockError::WouldBlock);
        }
        if self.is_poisoned() {
            return Err(TryLockError::Poisoned);
        }
        if self.acquire_if_free() {
            Ok(())
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Whether a holder panicked (rule M5) and the poison was not cleared.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Clears the poison (rule M5). Call it while holding a guard from
    /// [`lock_ignoring_poison`](Self::lock_ignoring_poison), once the data
    /// is consistent again.
    pub fn clear_poison(&self) {
        self.poisoned.store(false, Ordering::Release);
    }

    /// Whether the lock is held (or being handed to a waiter).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Acquire) & LOCKED != 0
    }

    /// How many tasks are queued for the lock.
    pub fn waiters(&self) -> usize {
        self.queue().waiters.len()
    }

    /// The value, through exclusive access: no locking needed (rule M6).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// One step of a lock wait: `Ready(Ok)` once this waiter holds the lock.
    fn poll_acquire(&self, cx: &Cx, wait: &mut Wait, waker: &Waker) -> Poll<Result<(), Cancelled>> {
        match *wait {
            Wait::Done => panic!("a mutex lock future was polled after it completed"),
            Wait::Start => {
                if self.acquire_if_free() {
                    *wait = Wait::Done;
                    return Poll::Ready(Ok(()));
                }
                // Would block: this is where cancellation is observed (M4).
                // Never while holding `state` (the kernel has its own lock).
                if let Some(reason) = cx.observe_cancel() {
                    *wait = Wait::Done;
                    return Poll::Ready(Err(Cancelled::new(reason)));
                }
                let mut q = self.queue();
                if !self.mark_queued() {
                    // Freed meanwhile, and nobody is queued (we hold the
                    // queue's lock): ours.
                    *wait = Wait::Done;
                    return Poll::Ready(Ok(()));
                }
                let ticket = q.next_ticket;
                q.next_ticket += 1;
                let key = q.waiters.push_back(waker.clone(), ticket);
                *wait = Wait::Queued { key, ticket };
                Poll::Pending
            }
            Wait::Queued { key, ticket } => {
                // Handed to us? One load, no lock (see the module note).
                if self.granted.load(Ordering::Acquire) == ticket {
                    *wait = Wait::Done;
                    return Poll::Ready(Ok(()));
                }
                if let Some(reason) = cx.observe_cancel() {
                    *wait = Wait::Done;
                    self.abandon(key, ticket);
                    return Poll::Ready(Err(Cancelled::new(reason)));
                }
                let mut q = self.queue();
                // `granted` only changes under the queue's lock.
                if self.granted.load(Ordering::Acquire) == ticket {
                    *wait = Wait::Done;
                    return Poll::Ready(Ok(()));
                }
                q.waiters.update_waker(key, waker);
                Poll::Pending
            }
        }
    }

    /// Called under the queue's lock by a task about to queue: sets `QUEUED`
    /// (so the holder's release goes through the queue), or takes the lock
    /// if it was freed meanwhile (returns false then).
    fn mark_queued(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let (next, ordering) = match s {
                // Only changed under the queue's lock, which we hold.
                s if s & QUEUED != 0 => return true,
                0 => (LOCKED, Ordering::Acquire),
                _ => (LOCKED | QUEUED, Ordering::Relaxed),
            };
            match self
                .state
                .compare_exchange_weak(s, next, ordering, Ordering::Relaxed)
            {
                Ok(_) => return next & QUEUED != 0,
                Err(actual) => s = actual,
            }
        }
    }

    /// A queued waiter leaves (M3); a lock it was handed goes to the next.
    fn abandon(&self, key: WaiterKey, ticket: u64) {
        let waker = {
            let mut q = self.queue();
            if self.granted.load(Ordering::Relaxed) == ticket {
                // Handed to us (and already out of the queue): pass it on.
                self.hand_on(&mut q)
            } else {
                let removed = q.waiters.remove(key);
                debug_assert!(removed.is_some(), "a waiter not handed the lock is queued");
                if q.waiters.is_empty() {
                    self.state.fetch_and(!QUEUED, Ordering::Relaxed);
                }
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Releases the lock held by the caller, with the queue's lock held:
    /// straight to the oldest waiter (M2), or free if nobody waits.
    fn hand_on(&self, q: &mut Queue) -> Option<Waker> {
        debug_assert!(self.is_locked(), "releasing a mutex that is not locked");
        // While `QUEUED` is set nobody else changes the state (the fast paths
        // need it clear, and we are the holder), so plain stores suffice.
        match q.waiters.pop_front() {
            Some((ticket, waker)) => {
                // Publishes our writes to the data along with the lock.
                self.granted.store(ticket, Ordering::Release);
                if q.waiters.is_empty() {
                    // Handed over (still `LOCKED`); the queue is now empty.
                    self.state.store(LOCKED, Ordering::Relaxed);
                }
                Some(waker)
            }
            None => {
                self.state.store(0, Ordering::Release);
                None
            }
        }
    }

    fn unlock(&self) {
        if std::thread::panicking() {
            self.poisoned.store(true, Ordering::Release);
        }
        self.release();
    }

    /// Releases the lock the caller holds: one compare-and-swap if nobody is
    /// queued, else a hand-off under the queue's lock.
    fn release(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        let waker = self.hand_on(&mut self.queue());
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// A waiter that holds the lock but will not keep it (poisoned).
    fn release_unpoisoned(&self) {
        self.release();
    }

    /// After acquiring for `lock`: fail on poison, passing the lock on.
    fn check_poison(&self) -> Result<(), LockError> {
        if self.is_poisoned() {
            self.release_unpoisoned();
            Err(LockError::Poisoned)
        } else {
            Ok(())
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: ?Sized> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("locked", &self.is_locked())
            .field("waiters", &self.waiters())
            .field("poisoned", &self.is_poisoned())
            .finish_non_exhaustive()
    }
}

/// Progress of one lock wait.
#[derive(Clone, Copy, Debug)]
enum Wait {
    Start,
    Queued { key: WaiterKey, ticket: u64 },
    Done,
}

/// The future returned by [`Mutex::lock`].
///
/// # Cancellation
/// See [`Mutex::lock`]: dropping it leaves the queue and passes on a
/// lock it was handed.
#[must_use = "futures do nothing unless awaited; dropping this one leaves the queue (and passes on a lock it was handed)"]
pub struct Lock<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    cx: Cx,
    wait: Wait,
}

impl<'a, T: ?Sized> Future for Lock<'a, T> {
    type Output = Result<MutexGuard<'a, T>, LockError>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mutex = this.mutex;
        match mutex.poll_acquire(&this.cx, &mut this.wait, task_cx.waker()) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(c)) => Poll::Ready(Err(LockError::Cancelled(c))),
            Poll::Ready(Ok(())) => {
                Poll::Ready(mutex.check_poison().map(|()| MutexGuard::new(mutex)))
            }
        }
    }
}

impl<T: ?Sized> Drop for Lock<'_, T> {
    fn drop(&mut self) {
        if let Wait::Queued { key, ticket } = self.wait {
            self.mutex.abandon(key, ticket);
        }
    }
}

impl<T: ?Sized> fmt::Debug for Lock<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").field("wait", &self.wait).finish()
    }
}

/// The future returned by [`Mutex::lock_ignoring_poison`].
///
/// # Cancellation
/// See [`Mutex::lock_ignoring_poison`]: dropping it leaves the queue and passes on a
/// lock it was handed.
#[must_use = "futures do nothing unless awaited; dropping this one leaves the queue (and passes on a lock it was handed)"]
pub struct LockIgnoringPoison<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    cx: Cx,
    wait: Wait,
}

impl<'a, T: ?Sized> Future for LockIgnoringPoison<'a, T> {
    type Output = Result<MutexGuard<'a, T>, Cancelled>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mutex = this.mutex;
        mutex
            .poll_acquire(&this.cx, &mut this.wait, task_cx.waker())
            .map_ok(|()| MutexGuard::new(mutex))
    }
}

impl<T: ?Sized> Drop for LockIgnoringPoison<'_, T> {
    fn drop(&mut self) {
        if let Wait::Queued { key, ticket } = self.wait {
            self.mutex.abandon(key, ticket);
        }
    }
}

impl<T: ?Sized> fmt::Debug for LockIgnoringPoison<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockIgnoringPoison")
            .field("wait", &self.wait)
            .finish()
    }
}

/// The future returned by [`Mutex::lock_owned`].
///
/// # Cancellation
/// See [`Mutex::lock_owned`]: dropping it leaves the queue and passes on a
/// lock it was handed.
#[must_use = "futures do nothing unless awaited; dropping this one leaves the queue (and passes on a lock it was handed)"]
pub struct LockOwned<T: ?Sized> {
    /// `None` once the guard took it.
    mutex: Option<Arc<Mutex<T>>>,
    cx: Cx,
    wait: Wait,
}

impl<T: ?Sized> Future for LockOwned<T> {
    type Output = Result<OwnedMutexGuard<T>, LockError>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mutex = this
            .mutex
            .as_ref()
            .expect("a mutex lock future was polled after it completed");
        match mutex.poll_acquire(&this.cx, &mut this.wait, task_cx.waker()) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(c)) => Poll::Ready(Err(LockError::Cancelled(c))),
            Poll::Ready(Ok(())) => {
                let mutex = this.mutex.take().expect("checked above");
                Poll::Ready(mutex.check_poison().map(|()| OwnedMutexGuard::new(mutex)))
            }
        }
    }
}

impl<T: ?Sized> Drop for LockOwned<T> {
    fn drop(&mut self) {
        if let (Wait::Queued { key, ticket }, Some(mutex)) = (self.wait, &self.mutex) {
            mutex.abandon(key, ticket);
        }
    }
}

impl<T: ?Sized> fmt::Debug for LockOwned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockOwned")
            .field("wait", &self.wait)
            .finish()
    }
}

/// Exclusive access to a [`Mutex`]'s value; the lock is released (handed
/// to the next waiter) when the guard is dropped.
#[must_use = "dropping a MutexGuard unlocks the mutex at once and hands it to the next waiter; bind it (`let guard = ...`) to keep the lock"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    /// Send/Sync as `&mut T`: moving the guard moves access to `T`.
    _marker: PhantomData<&'a mut T>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    fn new(mutex: &'a Mutex<T>) -> Self {
        Self {
            mutex,
            _marker: PhantomData,
        }
    }

    /// The mutex this guard locks (an associated function, so that it
    /// does not shadow a method of `T`).
    pub fn mutex(guard: &Self) -> &'a Mutex<T> {
        guard.mutex
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (M1) and it is borrowed shared.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one (M1) and it is borrowed mutably.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// Like [`MutexGuard`], holding an `Arc` of the mutex.
#[must_use = "dropping an OwnedMutexGuard unlocks the mutex at once and hands it to the next waiter; bind it (`let guard = ...`) to keep the lock"]
pub struct OwnedMutexGuard<T: ?Sized> {
    mutex: Arc<Mutex<T>>,
    /// Sync only if `T: Sync` (a shared guard hands out `&T`).
    _marker: PhantomData<T>,
}

impl<T: ?Sized> OwnedMutexGuard<T> {
    fn new(mutex: Arc<Mutex<T>>) -> Self {
        Self {
            mutex,
            _marker: PhantomData,
        }
    }

    /// The mutex this guard locks (an associated function, so that it
    /// does not shadow a method of `T`).
    pub fn mutex(guard: &Self) -> &Arc<Mutex<T>> {
        &guard.mutex
    }
}

impl<T: ?Sized> Deref for OwnedMutexGuard<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (M1) and it is borrowed shared.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for OwnedMutexGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one (M1) and it is borrowed mutably.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for OwnedMutexGuard<T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for OwnedMutexGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for OwnedMutexGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

// Compile-time Send/Sync guarantees.
const _: () = {
    const fn send<T: Send>() {}
    const fn sync<T: Sync>() {}
    send::<Mutex<Vec<u8>>>();
    sync::<Mutex<Vec<u8>>>();
    sync::<Mutex<std::cell::Cell<u8>>>(); // Send is enough to share a mutex
    send::<MutexGuard<'static, Vec<u8>>>();
    sync::<MutexGuard<'static, Vec<u8>>>();
    send::<OwnedMutexGuard<Vec<u8>>>();
    sync::<OwnedMutexGuard<Vec<u8>>>();
    send::<Lock<'static, Vec<u8>>>();
    send::<LockOwned<Vec<u8>>>();
    send::<LockIgnoringPoison<'static, Vec<u8>>>();
    send::<LockError>();
    sync::<LockError>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_lock_takes_a_free_lock_and_fails_while_held() {
        let m = Mutex::new(1);
        let g = m.try_lock().unwrap();
        assert_eq!(m.try_lock().unwrap_err(), TryLockError::WouldBlock);
        drop(g);
        assert!(!m.is_locked());
        *m.try_lock().unwrap() += 1;
        assert_eq!(m.into_inner(), 2);
    }

    #[test]
    fn a_guard_dropped_during_a_panic_poisons() {
        let m = Mutex::new(0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = m.try_lock().unwrap();
            panic!("boom");
        }));
        assert!(r.is_err());
        assert!(m.is_poisoned());
        assert_eq!(m.try_lock().unwrap_err(), TryLockError::Poisoned);
        m.clear_poison();
        assert!(m.try_lock().is_ok());
    }
}
