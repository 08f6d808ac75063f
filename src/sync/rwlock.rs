//! A cancel-aware async reader-writer lock with writer preference and a
//! bound on reader starvation.
//!
//! ```
//! use asupersync::sync::RwLock;
//!
//! asupersync::RuntimeBuilder::current_thread().build().unwrap().block_on(|cx| async move {
//!     let lock = RwLock::new(vec![1, 2]);
//!     {
//!         let a = lock.read(&cx).await.unwrap();
//!         let b = lock.read(&cx).await.unwrap(); // readers share
//!         assert_eq!(a.len() + b.len(), 4);
//!     }
//!     lock.write(&cx).await.unwrap().push(3);
//!     assert_eq!(*lock.read(&cx).await.unwrap(), [1, 2, 3]);
//! });
//! ```
//!
//! Rules:
//! - RW1 (exclusion): at any time there is either one writer or any number
//!   of readers, never both.
//! - RW2 (FIFO per kind): readers are admitted in the order they waited,
//!   writers likewise.
//! - RW3 (writer preference): a reader that arrives while a writer holds
//!   the lock *or waits for it* queues behind that writer, so a stream of
//!   readers cannot keep a writer out. When the lock comes free and both
//!   kinds wait, the oldest writer goes first…
//! - RW4 (reader-starvation bound): …unless `K` writers in a row were
//!   admitted while readers waited; then every waiting reader is admitted
//!   together, and the count starts over. `K` is
//!   [`DEFAULT_MAX_CONSECUTIVE_WRITERS`] (8) unless set with
//!   [`RwLock::with_max_consecutive_writers`]. So a waiting reader gets in
//!   after at most `K` writers, and a waiting writer after at most one batch
//!   of readers: neither kind starves.
//! - RW5 (no queue jumping): [`RwLock::try_read`] and
//!   [`RwLock::try_write`] succeed only when the lock call would succeed
//!   at once: `try_read` fails while a writer holds the lock or anyone is
//!   queued ahead of a reader; `try_write` fails unless the lock is free
//!   and nobody is queued.
//! - RW6 (cancel-safe wait): a cancelled or dropped waiter leaves its queue
//!   without disturbing the others; if it was already admitted it releases
//!   its admission as if it had dropped a guard. A writer that leaves while
//!   readers wait behind it lets those readers join the current ones (if
//!   no other writer waits). Waits observe cancellation only when they
//!   would block; an admission that came before the poll observing the
//!   cancellation is returned as `Ok`.
//! - RW7 (no poisoning): unlike [`super::Mutex`], a panic while holding a
//!   guard does not poison the lock.

use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdMutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::waiters::{WaitQueue, WaiterKey, WakeList};
use crate::exec::cx::Cx;
use crate::types::cancel::Cancelled;

/// The default reader-starvation bound `K` (rule RW4).
pub const DEFAULT_MAX_CONSECUTIVE_WRITERS: usize = 8;

/// An async reader-writer lock. See the module rules.
pub struct RwLock<T: ?Sized> {
    state: StdMutex<State>,
    max_consecutive_writers: usize,
    data: UnsafeCell<T>,
}

// SAFETY: the value is reached through guards obeying RW1, or through
// `&mut self`. Sending the lock sends `T`.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: readers on several threads share `&T` (needs `T: Sync`); a
// writer on another thread gets `&mut T` (needs `T: Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

struct State {
    /// Admitted readers (holding a guard or admitted and not yet collected).
    readers: usize,
    /// A writer is admitted.
    writer: bool,
    read_waiters: WaitQueue<(), ()>,
    write_waiters: WaitQueue<(), ()>,
    /// Writers admitted in a row while readers waited (RW4).
    writer_streak: usize,
}

/// Which side of the lock a wait is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Read,
    Write,
}

/// Wakers of the waiters admitted in one step (woken after the state lock
/// is released).
type Admitted = WakeList;

impl State {
    fn queue(&mut self, side: Side) -> &mut WaitQueue<(), ()> {
        match side {
            Side::Read => &mut self.read_waiters,
            Side::Write => &mut self.write_waiters,
        }
    }

    /// Whether `side` could take the lock now without jumping a queue.
    fn can_take(&self, side: Side) -> bool {
        match side {
            Side::Read => {
                !self.writer && self.write_waiters.is_empty() && self.read_waiters.is_empty()
            }
            Side::Write => {
                !self.writer
                    && self.readers == 0
                    && self.write_waiters.is_empty()
                    && self.read_waiters.is_empty()
            }
        }
    }

    fn take(&mut self, side: Side) {
        match side {
            Side::Read => self.readers += 1,
            Side::Write => self.writer = true,
        }
    }

    fn release(&mut self, side: Side, k: usize) -> Admitted {
        match side {
            Side::Read => {
                debug_assert!(self.readers > 0, "releasing a read lock nobody holds");
                self.readers -= 1;
            }
            Side::Write => {
                debug_assert!(self.writer, "releasing a write lock nobody holds");
                self.writer = false;
            }
        }
        self.dispatch(k)
    }

    /// Admits whoever RW3/RW4 say should go next.
    fn dispatch(&mut self, k: usize) -> Admitted {
        let mut admitted = Admitted::default();
        if self.writer {
            return admitted;
        }
        if self.readers > 0 {
            // Readers hold the lock: waiting readers may join only if no
            // writer waits (one just left, RW6).
            if self.write_waiters.is_empty() {
                self.admit_readers(&mut admitted);
            }
            return admitted;
        }
        let readers_wait = !self.read_waiters.is_empty();
        if !self.write_waiters.is_empty() && (!readers_wait || self.writer_streak < k) {
            admitted.push(self.write_waiters.notify_front(()));
            self.writer = true;
            self.writer_streak = if readers_wait {
                self.writer_streak + 1
            } else {
                0
            };
        } else if readers_wait {
            self.admit_readers(&mut admitted);
        }
        admitted
    }

    fn admit_readers(&mut self, admitted: &mut Admitted) {
        if self.read_waiters.is_empty() {
            return;
        }
        let wakers = self.read_waiters.notify_all(());
        self.readers += wakers.len();
        self.writer_streak = 0;
        admitted.extend(wakers);
    }
}

impl<T> RwLock<T> {
    /// A new, unlocked lock with the default starvation bound
    /// ([`DEFAULT_MAX_CONSECUTIVE_WRITERS`]).
    pub const fn new(value: T) -> Self {
        Self::with_max_consecutive_writers(value, DEFAULT_MAX_CONSECUTIVE_WRITERS)
    }

    /// A new lock admitting at most `k` writers in a row while readers wait
    /// (rule RW4).
    ///
    /// # Panics
    /// If `k` is 0 (writers could then starve).
    pub const fn with_max_consecutive_writers(value: T, k: usize) -> Self {
        assert!(
            k > 0,
            "RwLock: max_consecutive_writers must be at least 1, or writers could starve"
        );
        Self {
            state: StdMutex::new(State {
                readers: 0,
                writer: false,
                read_waiters: WaitQueue::new(),
                write_waiters: WaitQueue::new(),
                writer_streak: 0,
            }),
            max_consecutive_writers: k,
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns the value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    fn state(&self) -> StdMutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reader-starvation bound `K` (rule RW4).
    pub fn max_consecutive_writers(&self) -> usize {
        self.max_consecutive_writers
    }

    /// Waits for shared access.
    ///
    /// # Cancellation
    /// Cancel-aware while queued (RW6): once the task's cancellation is
    /// requested, the next poll returns `Err(Cancelled)` (acknowledging it)
    /// and the reader leaves the queue without disturbing the others. If it
    /// can read at once it does so without looking at cancellation; if it
    /// was admitted before the cancellation was observed, the result is
    /// `Ok`. Dropping the future at any point releases whatever admission
    /// it was given.
    pub fn read(&self, cx: &Cx) -> Read<'_, T> {
        Read {
            lock: self,
            cx: cx.clone(),
            wait: Wait::Start,
        }
    }

    /// Waits for exclusive access.
    ///
    /// # Cancellation
    /// As for [`read`](Self::read). A writer that leaves the queue lets the
    /// readers queued behind it in, if no other writer waits (RW6).
    pub fn write(&self, cx: &Cx) -> Write<'_, T> {
        Write {
            lock: self,
            cx: cx.clone(),
            wait: Wait::Start,
        }
    }

    /// [`read`](Self::read) for a lock in an `Arc`; the guard owns a
    /// reference.
    ///
    /// # Cancellation
    /// As for [`read`](Self::read).
    pub fn read_owned(self: Arc<Self>, cx: &Cx) -> ReadOwned<T> {
        ReadOwned {
            lock: Some(self),
            cx: cx.clone(),
            wait: Wait::Start,
        }
    }

    /// [`write`](Self::write) for a lock in an `Arc`; the guard owns a
    /// reference.
    ///
    /// # Cancellation
    /// As for [`write`](Self::write).
    pub fn write_owned(self: Arc<Self>, cx: &Cx) -> WriteOwned<T> {
        WriteOwned {
            lock: Some(self),
            cx: cx.clone(),
            wait: Wait::Start,
        }
    }

    /// Shared access if [`read`](Self::read) would get it at once (RW5):
    /// `None` while a writer holds or waits for the lock.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.try_take(Side::Read)
            .then(|| RwLockReadGuard::new(self))
    }

    /// Exclusive access if the lock is free and nobody is queued (RW5).
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        self.try_take(Side::Write)
            .then(|| RwLockWriteGuard::new(self))
    }

    fn try_take(&self, side: Side) -> bool {
        let mut st = self.state();
        let ok = st.can_take(side);
        if ok {
            st.take(side);
        }
        ok
    }

    /// How many readers hold the lock (or were admitted and are about to).
    pub fn readers(&self) -> usize {
        self.state().readers
    }

    /// Whether a writer holds the lock (or was admitted and is about to).
    pub fn is_write_locked(&self) -> bool {
        self.state().writer
    }

    /// How many tasks are queued: `(readers, writers)`.
    pub fn waiters(&self) -> (usize, usize) {
        let st = self.state();
        (st.read_waiters.len(), st.write_waiters.len())
    }

    /// The value, through exclusive access: no locking needed.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn poll_acquire(
        &self,
        side: Side,
        cx: &Cx,
        wait: &mut Wait,
        waker: &Waker,
    ) -> Poll<Result<(), Cancelled>> {
        match *wait {
            Wait::Done => panic!("an RwLock future was polled after it completed"),
            Wait::Start => {
                if self.try_take(side) {
                    *wait = Wait::Done;
                    return Poll::Ready(Ok(()));
                }
                // Would block: observe cancellation, never under `state`.
                if let Some(reason) = cx.observe_cancel() {
                    *wait = Wait::Done;
                    return Poll::Ready(Err(Cancelled::new(reason)));
                }
                let mut st = self.state();
                if st.can_take(side) {
                    st.take(side);
                    *wait = Wait::Done;
                    return Poll::Ready(Ok(()));
                }
                *wait = Wait::Queued(st.queue(side).push_back(waker.clone(), ()));
                Poll::Pending
            }
            Wait::Queued(key) => {
                if self.state().queue(side).take_grant(key).is_some() {
                    *wait = Wait::Done;
                    return Poll::Ready(Ok(()));
                }
                if let Some(reason) = cx.observe_cancel() {
                    *wait = Wait::Done;
                    self.abandon(side, key);
                    return Poll::Ready(Err(Cancelled::new(reason)));
                }
                let mut st = self.state();
                if st.queue(side).take_grant(key).is_some() {
                    *wait = Wait::Done;
                    return Poll::Ready(Ok(()));
                }
                st.queue(side).update_waker(key, waker);
                Poll::Pending
            }
        }
    }

    /// A queued waiter leaves (RW6).
    fn abandon(&self, side: Side, key: WaiterKey) {
        let k = self.max_consecutive_writers;
        let admitted = {
            let mut st = self.state();
            match st.queue(side).remove(key) {
                Some((_, Some(()))) => st.release(side, k),
                Some((_, None)) if side == Side::Write => st.dispatch(k),
                _ => Admitted::default(),
            }
        };
        admitted.wake();
    }

    fn unlock(&self, side: Side) {
        let k = self.max_consecutive_writers;
        let admitted = self.state().release(side, k);
        admitted.wake();
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: ?Sized> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("RwLock")
            .field("readers", &st.readers)
            .field("writer", &st.writer)
            .field("read_waiters", &st.read_waiters.len())
            .field("write_waiters", &st.write_waiters.len())
            .field("max_consecutive_writers", &self.max_consecutive_writers)
            .finish_non_exhaustive()
    }
}

/// Progress of one wait.
#[derive(Clone, Copy, Debug)]
enum Wait {
    Start,
    Queued(WaiterKey),
    Done,
}

macro_rules! borrowed_future {
    ($(#[$doc:meta])* $name:ident, $side:expr, $guard:ident) => {
        $(#[$doc])*
        #[must_use = "futures do nothing unless awaited; dropping this one leaves the queue (and releases an admission it was given)"]
        pub struct $name<'a, T: ?Sized> {
            lock: &'a RwLock<T>,
            cx: Cx,
            wait: Wait,
        }

        impl<'a, T: ?Sized> Future for $name<'a, T> {
            type Output = Result<$guard<'a, T>, Cancelled>;

            fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
                let this = self.get_mut();
                let lock = this.lock;
                lock.poll_acquire($side, &this.cx, &mut this.wait, task_cx.waker())
                    .map_ok(|()| $guard::new(lock))
            }
        }

        impl<T: ?Sized> Drop for $name<'_, T> {
            fn drop(&mut self) {
                if let Wait::Queued(key) = self.wait {
                    self.lock.abandon($side, key);
                }
            }
        }

        impl<T: ?Sized> fmt::Debug for $name<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("wait", &self.wait).finish()
            }
        }
    };
}

macro_rules! owned_future {
    ($(#[$doc:meta])* $name:ident, $side:expr, $guard:ident) => {
        $(#[$doc])*
        #[must_use = "futures do nothing unless awaited; dropping this one leaves the queue (and releases an admission it was given)"]
        pub struct $name<T: ?Sized> {
            /// `None` once the guard took it.
            lock: Option<Arc<RwLock<T>>>,
            cx: Cx,
            wait: Wait,
        }

        impl<T: ?Sized> Future for $name<T> {
            type Output = Result<$guard<T>, Cancelled>;

            fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
                let this = self.get_mut();
                let lock = this
                    .lock
                    .as_ref()
                    .expect("an RwLock future was polled after it completed");
                match lock.poll_acquire($side, &this.cx, &mut this.wait, task_cx.waker()) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(c)) => Poll::Ready(Err(c)),
                    Poll::Ready(Ok(())) => {
                        let lock = this.lock.take().expect("checked above");
                        Poll::Ready(Ok($guard::new(lock)))
                    }
                }
            }
        }

        impl<T: ?Sized> Drop for $name<T> {
            fn drop(&mut self) {
                if let (Wait::Queued(key), Some(lock)) = (self.wait, &self.lock) {
                    lock.abandon($side, key);
                }
            }
        }

        impl<T: ?Sized> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("wait", &self.wait).finish()
            }
        }
    };
}

borrowed_future!(
    /// The future returned by [`RwLock::read`].
    ///
    /// # Cancellation
    /// See [`RwLock::read`]: dropping it leaves the queue and releases
    /// an admission it was given.
    Read, Side::Read, RwLockReadGuard
);
borrowed_future!(
    /// The future returned by [`RwLock::write`].
    ///
    /// # Cancellation
    /// See [`RwLock::write`]: dropping it leaves the queue and releases
    /// an admission it was given.
    Write, Side::Write, RwLockWriteGuard
);
owned_future!(
    /// The future returned by [`RwLock::read_owned`].
    ///
    /// # Cancellation
    /// See [`RwLock::read_owned`]: dropping it leaves the queue and releases
    /// an admission it was given.
    ReadOwned, Side::Read, OwnedRwLockReadGuard
);
owned_future!(
    /// The future returned by [`RwLock::write_owned`].
    ///
    /// # Cancellation
    /// See [`RwLock::write_owned`]: dropping it leaves the queue and releases
    /// an admission it was given.
    WriteOwned, Side::Write, OwnedRwLockWriteGuard
);

/// Shared access to an [`RwLock`]'s value, released when dropped.
#[must_use = "dropping a read guard releases the shared lock at once (and may admit a waiting writer); bind it (`let guard = ...`) to keep it"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _marker: PhantomData<&'a T>,
}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    fn new(lock: &'a RwLock<T>) -> Self {
        Self {
            lock,
            _marker: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: a read admission excludes writers (RW1).
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock(Side::Read);
    }
}

/// Exclusive access to an [`RwLock`]'s value, released when dropped.
#[must_use = "dropping a write guard releases the lock at once (and admits the next waiters); bind it (`let guard = ...`) to keep it"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _marker: PhantomData<&'a mut T>,
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    fn new(lock: &'a RwLock<T>) -> Self {
        Self {
            lock,
            _marker: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the write admission is exclusive (RW1).
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write admission is exclusive (RW1).
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock(Side::Write);
    }
}

/// Like [`RwLockReadGuard`], holding an `Arc` of the lock.
#[must_use = "dropping a read guard releases the shared lock at once (and may admit a waiting writer); bind it (`let guard = ...`) to keep it"]
pub struct OwnedRwLockReadGuard<T: ?Sized> {
    lock: Arc<RwLock<T>>,
    /// Send and Sync only if `T: Sync` (as `&T`).
    _marker: PhantomData<*const T>,
}

// SAFETY: the guard gives out only `&T`; `T: Send + Sync` makes both moving
// and sharing it sound (and `Arc<RwLock<T>>` is then Send + Sync).
unsafe impl<T: ?Sized + Send + Sync> Send for OwnedRwLockReadGuard<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for OwnedRwLockReadGuard<T> {}

impl<T: ?Sized> OwnedRwLockReadGuard<T> {
    fn new(lock: Arc<RwLock<T>>) -> Self {
        Self {
            lock,
            _marker: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for OwnedRwLockReadGuard<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: a read admission excludes writers (RW1).
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for OwnedRwLockReadGuard<T> {
    fn drop(&mut self) {
        self.lock.unlock(Side::Read);
    }
}

/// Like [`RwLockWriteGuard`], holding an `Arc` of the lock.
#[must_use = "dropping a write guard releases the lock at once (and admits the next waiters); bind it (`let guard = ...`) to keep it"]
pub struct OwnedRwLockWriteGuard<T: ?Sized> {
    lock: Arc<RwLock<T>>,
    /// Sync only if `T: Sync` (a shared guard hands out `&T`).
    _marker: PhantomData<T>,
}

impl<T: ?Sized> OwnedRwLockWriteGuard<T> {
    fn new(lock: Arc<RwLock<T>>) -> Self {
        Self {
            lock,
            _marker: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for OwnedRwLockWriteGuard<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the write admission is exclusive (RW1).
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for OwnedRwLockWriteGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write admission is exclusive (RW1).
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for OwnedRwLockWriteGuard<T> {
    fn drop(&mut self) {
        self.lock.unlock(Side::Write);
    }
}

macro_rules! debug_display_via_deref {
    ($($guard:ident<$($lt:lifetime,)? T>),*) => {$(
        impl<$($lt,)? T: ?Sized + fmt::Debug> fmt::Debug for $guard<$($lt,)? T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&**self, f)
            }
        }

        impl<$($lt,)? T: ?Sized + fmt::Display> fmt::Display for $guard<$($lt,)? T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&**self, f)
            }
        }
    )*};
}

debug_display_via_deref!(
    RwLockReadGuard<'a, T>,
    RwLockWriteGuard<'a, T>,
    OwnedRwLockReadGuard<T>,
    OwnedRwLockWriteGuard<T>
);

// Compile-time Send/Sync guarantees.
const _: () = {
    const fn send<T: Send>() {}
    const fn sync<T: Sync>() {}
    send::<RwLock<Vec<u8>>>();
    sync::<RwLock<Vec<u8>>>();
    send::<RwLockReadGuard<'static, Vec<u8>>>();
    sync::<RwLockReadGuard<'static, Vec<u8>>>();
    send::<RwLockWriteGuard<'static, Vec<u8>>>();
    sync::<RwLockWriteGuard<'static, Vec<u8>>>();
    send::<OwnedRwLockReadGuard<Vec<u8>>>();
    sync::<OwnedRwLockReadGuard<Vec<u8>>>();
    send::<OwnedRwLockWriteGuard<Vec<u8>>>();
    sync::<OwnedRwLockWriteGuard<Vec<u8>>>();
    send::<Read<'static, Vec<u8>>>();
    send::<Write<'static, Vec<u8>>>();
    send::<ReadOwned<Vec<u8>>>();
    send::<WriteOwned<Vec<u8>>>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_read_shares_and_try_write_excludes() {
        let l = RwLock::new(5);
        let a = l.try_read().unwrap();
        let b = l.try_read().unwrap();
        assert!(l.try_write().is_none());
        assert_eq!(*a + *b, 10);
        drop((a, b));
        let mut w = l.try_write().unwrap();
        *w = 6;
        assert!(l.try_read().is_none());
        drop(w);
        assert_eq!(l.into_inner(), 6);
    }

    fn w() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn dispatch_prefers_writers_up_to_the_bound_then_admits_readers() {
        let k = 2;
        let mut st = State {
            readers: 0,
            writer: true,
            read_waiters: WaitQueue::new(),
            write_waiters: WaitQueue::new(),
            writer_streak: 0,
        };
        let r = st.read_waiters.push_back(w(), ());
        let writers: Vec<_> = (0..4)
            .map(|_| st.write_waiters.push_back(w(), ()))
            .collect();
        for &writer in &writers[..k] {
            st.release(Side::Write, k);
            assert!(st.writer);
            assert!(st.write_waiters.take_grant(writer).is_some());
        }
        st.release(Side::Write, k);
        assert!(!st.writer, "after k writers the readers go");
        assert_eq!(st.readers, 1);
        assert!(st.read_waiters.take_grant(r).is_some());
        st.release(Side::Read, k);
        assert!(st.writer, "then the next writer");
    }
}
