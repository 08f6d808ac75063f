//! A FIFO, all-or-nothing, cancel-aware counting semaphore whose permits
//! are obligations.
//!
//! ```
//! use std::sync::Arc;
//! use asupersync::sync::Semaphore;
//!
//! asupersync::RuntimeBuilder::current_thread().build().unwrap().block_on(|cx| async move {
//!     let sem = Arc::new(Semaphore::new(3));
//!     let two = sem.acquire(&cx, 2).await.unwrap();
//!     assert_eq!(sem.available_permits(), 1);
//!     assert!(sem.try_acquire(&cx, 2).is_err()); // all or nothing
//!     drop(two); // returns the permits (and aborts the obligation)
//!     let one = sem.clone().acquire_owned(&cx, 1).await.unwrap();
//!     one.forget(); // removes the permit for good (commits the obligation)
//!     assert_eq!(sem.total_permits(), 2);
//! });
//! ```
//!
//! Rules:
//! - S1 (all or nothing): an acquisition of `n` permits takes all `n` at
//!   once or waits; it never holds part of them.
//! - S2 (FIFO, no starvation): waiters are served strictly in the order
//!   they waited. A waiter at the head that needs more permits than are
//!   available blocks the smaller requests behind it (head-of-line
//!   blocking), so a large request is never starved by small ones. A new
//!   request never jumps the queue: it is granted at once only if nobody is
//!   queued ([`Semaphore::try_acquire`] likewise).
//! - S3 (permits are obligations): every permit holder reserves an
//!   obligation `"semaphore_permit"` with the acquiring task's `Cx`.
//!   Dropping a permit returns its permits and aborts the obligation;
//!   [`SemaphorePermit::forget`] removes the permits from the semaphore for
//!   good and commits it. A permit that is `mem::forget`-ed is an
//!   obligation leak the kernel reports (see [`crate::obligation`]); it is
//!   never counted as aborted, also when its task is then cancelled (its
//!   permits are not given back, so the leak is what tells).
//!   - A [`SemaphorePermit`] belongs to the acquiring task: one still held
//!     when that task completes is a leak reported by the task's join.
//!   - An [`OwnedSemaphorePermit`] ([`Semaphore::acquire_owned`]) follows
//!     its holder: it may move into another task (tokio's
//!     concurrency-limit idiom: an acceptor acquires, each connection's
//!     task holds and drops its permit) and the acquiring task may finish
//!     first. Its obligation is held by the region of the `Cx` it was
//!     acquired with; it must be dropped or forgotten (through
//!     [`OwnedSemaphorePermit::forget`]) by some task before that region
//!     closes, or the region's close reports it as a leak.
//! - S4 (a gate waits): a request that the semaphore could ever serve
//!   waits, whatever its current total: `Semaphore::new(0)` is a gate whose
//!   `acquire` waits until [`Semaphore::add_permits`] makes room, and a
//!   queued request larger than the total (after
//!   [`SemaphorePermit::forget`]) waits for permits to be added. A request
//!   fails at once only when it can never be met: with `Closed` (S5), or
//!   with `TooMany` when it asks for more than
//!   [`Semaphore::MAX_PERMITS`].
//! - S5 (close): [`Semaphore::close`] fails every queued waiter and every
//!   later acquisition with `Closed`. Permits already held stay valid, and
//!   dropping them still returns them.
//! - S6 (cancel-safe wait): a cancelled or dropped waiter leaves the queue
//!   without disturbing the others' order; permits it had been granted go
//!   back and are granted on, and its leaving can unblock the waiters behind
//!   it. Waits observe cancellation only when they would block; a grant
//!   that came before the poll observing the cancellation is returned as
//!   `Ok`.
//!
//! Implementation: the available count lives in one atomic word together
//! with a `QUEUED` bit (the wait queue is not empty) and a `CLOSED` bit. An
//! acquisition that finds enough permits, nobody queued and the semaphore
//! open takes them with one compare-and-swap, and a release while nobody is
//! queued returns them with one, without the queue's lock. `QUEUED` and
//! `CLOSED` are only changed under the queue's lock, and while `QUEUED` is
//! set every change of the count goes through that lock (S2: a newcomer's
//! compare-and-swap fails and it queues behind). Each queued waiter holds a
//! ticket (increasing in queue order); a waiter granted its permits is
//! removed from the queue and `served` advances to its ticket, so the woken
//! waiter learns of its grant from one atomic load, without the lock. The
//! error grant (`Closed`) stays in the queue entry and sets the sticky
//! `errors_issued` flag, after which waiters collect under the lock (a
//! ticket below `served` may then be an error).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdMutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::waiters::{WaitQueue, WaiterKey, WaiterState, WakeList};
use crate::exec::cx::Cx;
use crate::obligation::Obligation;
use crate::types::cancel::Cancelled;

/// The obligation kind every permit reserves (rule S3).
pub const PERMIT_OBLIGATION: &str = "semaphore_permit";

/// An async counting semaphore. See the module rules.
pub struct Semaphore {
    /// `available << SHIFT | CLOSED | QUEUED` (see the implementation note).
    permits: AtomicUsize,
    grants: Grants,
    state: StdMutex<State>,
}

/// How queued waiters learn of their grants without the lock (see the
/// implementation note). Written only under the queue's lock.
struct Grants {
    /// The ticket of the last waiter served with permits (FIFO: every
    /// earlier ticket was served, with permits or an error, or left).
    served: AtomicU64,
    /// An error grant was ever issued: `served` alone no longer proves a
    /// ticket got permits.
    errors_issued: AtomicBool,
}

/// The wait queue is not empty (changed only under the queue's lock).
const QUEUED: usize = 1;
/// [`Semaphore::close`] was called (set only under the queue's lock).
const CLOSED: usize = 2;
/// The available count sits above the two flag bits.
const SHIFT: u32 = 2;

struct State {
    /// Available plus held by permits ([`Semaphore::total_permits`]).
    total: usize,
    /// Each waiter's request and ticket; error grants say how it failed.
    waiters: WaitQueue<(usize, u64), Closed>,
    next_ticket: u64,
}

/// How a queued waiter failed: the semaphore was closed (S5). (A waiter
/// served with permits leaves the queue instead; see `Grants`.)
#[derive(Clone, Copy, Debug)]
struct Closed;

/// Why [`Semaphore::acquire`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcquireError {
    /// The task was cancelled while waiting (see `# Cancellation`).
    Cancelled(Cancelled),
    /// The semaphore is closed (rule S5).
    Closed,
    /// More permits were requested than any semaphore can have
    /// ([`Semaphore::MAX_PERMITS`]): the request can never be met (S4).
    TooMany {
        /// How many were requested.
        requested: usize,
        /// [`Semaphore::MAX_PERMITS`].
        max: usize,
    },
}

impl AcquireError {
    /// Whether the wait was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, AcquireError::Cancelled(_))
    }

    /// Whether the semaphore was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, AcquireError::Closed)
    }
}

impl From<Cancelled> for AcquireError {
    fn from(c: Cancelled) -> Self {
        AcquireError::Cancelled(c)
    }
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::Cancelled(c) => write!(f, "semaphore acquire {c}"),
            AcquireError::Closed => f.write_str("semaphore closed"),
            AcquireError::TooMany { requested, max } => write!(
                f,
                "requested {requested} permits, more than a semaphore can have (Semaphore::MAX_PERMITS = {max})"
            ),
        }
    }
}

impl std::error::Error for AcquireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AcquireError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}

/// Why [`Semaphore::try_acquire`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryAcquireError {
    /// Not enough permits available, or others are queued (rule S2).
    NoPermits,
    /// The semaphore is closed (rule S5).
    Closed,
    /// More permits were requested than any semaphore can have
    /// ([`Semaphore::MAX_PERMITS`], S4).
    TooMany {
        /// How many were requested.
        requested: usize,
        /// [`Semaphore::MAX_PERMITS`].
        max: usize,
    },
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::NoPermits => {
                f.write_str("not enough permits available, or other tasks are queued")
            }
            TryAcquireError::Closed => f.write_str("semaphore closed"),
            TryAcquireError::TooMany { requested, max } => write!(
                f,
                "requested {requested} permits, more than a semaphore can have (Semaphore::MAX_PERMITS = {max})"
            ),
        }
    }
}

impl std::error::Error for TryAcquireError {}

/// Wakers of the waiters served in one step, woken after the state lock is
/// released.
type Served = WakeList;

impl State {
    /// Serves the head of the queue while it can be served (S2), taking
    /// the permits from `permits`; clears `QUEUED` once nobody is left.
    /// Called under the queue's lock.
    fn serve(&mut self, permits: &AtomicUsize, grants: &Grants) -> Served {
        let mut served = Served::default();
        while let Some(&(n, ticket)) = self.waiters.front() {
            if n <= permits.load(Ordering::Acquire) >> SHIFT {
                // `QUEUED` is set: nobody changes the count without the
                // queue's lock, so it cannot drop below `n` meanwhile.
                permits.fetch_sub(n << SHIFT, Ordering::AcqRel);
                let (_, waker) = self.waiters.pop_front().expect("front exists");
                grants.served.store(ticket, Ordering::Release);
                served.push(waker);
            } else {
                break;
            }
        }
        if self.waiters.is_empty() {
            permits.fetch_and(!QUEUED, Ordering::AcqRel);
        }
        served
    }

    /// What an acquisition of `n` that has not queued gets right now, under
    /// the queue's lock: `Ok(result)`, or `Err(s)` if it must wait (`s` is
    /// the permit word it saw).
    fn try_take(
        &self,
        permits: &AtomicUsize,
        n: usize,
    ) -> Result<Result<(), TryAcquireError>, usize> {
        let mut s = permits.load(Ordering::Acquire);
        loop {
            if s & CLOSED != 0 {
                return Ok(Err(TryAcquireError::Closed));
            }
            if n > Semaphore::MAX_PERMITS {
                return Ok(Err(TryAcquireError::TooMany {
                    requested: n,
                    max: Semaphore::MAX_PERMITS,
                }));
            }
            if s & QUEUED != 0 || s >> SHIFT < n {
                return Err(s);
            }
            match permits.compare_exchange_weak(
                s,
                s - (n << SHIFT),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(Ok(())),
                Err(actual) => s = actual,
            }
        }
    }
}

impl Semaphore {
    /// The most permits a semaphore can have in total; a request for more
    /// fails at once with `TooMany` (S4).
    pub const MAX_PERMITS: usize = usize::MAX >> 4;

    /// A semaphore with `permits` permits. `Semaphore::new(0)` is a gate:
    /// acquisitions wait until [`add_permits`](Self::add_permits) makes room
    /// (S4).
    ///
    /// # Panics
    /// If `permits` exceeds [`Semaphore::MAX_PERMITS`].
    pub const fn new(permits: usize) -> Self {
        assert!(
            permits <= Self::MAX_PERMITS,
            "Semaphore::new: more than Semaphore::MAX_PERMITS permits"
        );
        Self {
            permits: AtomicUsize::new(permits << SHIFT),
            grants: Grants {
                served: AtomicU64::new(0),
                errors_issued: AtomicBool::new(false),
            },
            state: StdMutex::new(State {
                total: permits,
                waiters: WaitQueue::new(),
                next_ticket: 1,
            }),
        }
    }

    fn state(&self) -> StdMutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `n` permits without the queue's lock if they are available,
    /// nobody is queued and the semaphore is open (S2); false otherwise
    /// (including every failure case, which the locked path sorts out).
    fn take_fast(&self, n: usize) -> bool {
        let mut s = self.permits.load(Ordering::Relaxed);
        loop {
            if s & (QUEUED | CLOSED) != 0 || s >> SHIFT < n {
                return false;
            }
            match self.permits.compare_exchange_weak(
                s,
                s - (n << SHIFT),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => s = actual,
            }
        }
    }

    /// Returns `n` permits without the queue's lock if nobody is queued;
    /// false if someone is (the caller then serves the queue under it).
    fn release_fast(&self, n: usize) -> bool {
        let mut s = self.permits.load(Ordering::Relaxed);
        loop {
            if s & QUEUED != 0 {
                return false;
            }
            match self.permits.compare_exchange_weak(
                s,
                s + (n << SHIFT),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => s = actual,
            }
        }
    }

    /// Waits for `n` permits, all at once (S1), in FIFO order (S2).
    ///
    /// Waits also when `n` exceeds the permits the semaphore has now (a
    /// gate, S4): [`add_permits`](Self::add_permits) may make room. Errors
    /// at once with `TooMany` if `n` exceeds [`Semaphore::MAX_PERMITS`]
    /// (S4) and with `Closed` once the semaphore is closed (S5).
    ///
    /// The permit is an obligation of `cx`'s task (S3): it must be dropped
    /// (or forgotten through [`SemaphorePermit::forget`]) before that task
    /// completes. Use [`acquire_owned`](Self::acquire_owned) for a permit
    /// that moves into another task.
    ///
    /// # Cancellation
    /// Cancel-aware while queued (S6): once the task's cancellation is
    /// requested, the next poll returns `Err(AcquireError::Cancelled)`
    /// (acknowledging it) and the waiter leaves the queue without disturbing
    /// the others; permits granted to it meanwhile go to the next waiters.
    /// If the permits are available and nobody is queued they are taken at
    /// the first poll without looking at cancellation; a grant that came
    /// before the cancellation was observed is returned as `Ok`. Dropping
    /// the future at any point returns whatever it was granted: no permit
    /// is leaked. The obligation is reserved only once the permits are in
    /// hand.
    ///
    /// # Panics
    /// If `cx`'s region is already closed (a `Cx` used after its region
    /// ended cannot hold an obligation); the permits are returned first.
    pub fn acquire(&self, cx: &Cx, n: usize) -> Acquire<'_> {
        Acquire {
            sem: self,
            cx: cx.clone(),
            n,
            wait: Wait::Start,
        }
    }

    /// [`acquire`](Self::acquire) for a semaphore in an `Arc`: the permit
    /// owns a reference, is `'static` and follows its holder (S3): it may
    /// be moved into another task, which drops it when done, and the
    /// acquiring task may finish first. It must be dropped before the region
    /// of `cx` closes (else that close reports a leak).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use asupersync::sync::Semaphore;
    ///
    /// asupersync::RuntimeBuilder::current_thread().build().unwrap().block_on(|cx| async move {
    ///     let limit = Arc::new(Semaphore::new(2));
    ///     let acceptor = {
    ///         let limit = limit.clone();
    ///         cx.spawn(move |cx| async move {
    ///             for _connection in 0..5 {
    ///                 let permit = limit.clone().acquire_owned(&cx, 1).await.unwrap();
    ///                 // Served in its own task, which releases the permit.
    ///                 cx.spawn(move |_cx| async move { drop(permit) }).unwrap();
    ///             }
    ///             // Returns before the last connections are served: fine.
    ///         })
    ///         .unwrap()
    ///     };
    ///     acceptor.join(&cx).await.unwrap();
    /// });
    /// ```
    ///
    /// # Cancellation
    /// As for [`acquire`](Self::acquire).
    pub fn acquire_owned(self: Arc<Self>, cx: &Cx, n: usize) -> AcquireOwned {
        AcquireOwned {
            sem: Some(self),
            cx: cx.clone(),
            n,
            wait: Wait::Start,
        }
    }

    /// Takes `n` permits if they are available *and nobody is queued* (S2).
    /// The permit is an obligation of `cx`'s task (S3), which is why this
    /// takes a `Cx` although it never waits.
    ///
    /// Errors: `NoPermits` if it would have to wait, `Closed` (S5),
    /// `TooMany` above [`Semaphore::MAX_PERMITS`] (S4).
    ///
    /// # Panics
    /// As for [`acquire`](Self::acquire).
    pub fn try_acquire(&self, cx: &Cx, n: usize) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_take(n)?;
        Ok(SemaphorePermit {
            sem: self,
            n,
            obligation: Some(self.reserve(cx, n, false)),
        })
    }

    /// [`try_acquire`](Self::try_acquire) for a semaphore in an `Arc`; the
    /// permit follows its holder as for
    /// [`acquire_owned`](Self::acquire_owned).
    ///
    /// # Panics
    /// As for [`acquire`](Self::acquire).
    pub fn try_acquire_owned(
        self: Arc<Self>,
        cx: &Cx,
        n: usize,
    ) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_take(n)?;
        let obligation = Some(self.reserve(cx, n, true));
        Ok(OwnedSemaphorePermit {
            sem: self,
            n,
            obligation,
        })
    }

    fn try_take(&self, n: usize) -> Result<(), TryAcquireError> {
        if self.take_fast(n) {
            return Ok(());
        }
        self.state()
            .try_take(&self.permits, n)
            .unwrap_or(Err(TryAcquireError::NoPermits))
    }

    /// Adds `n` permits (to the available count and the total) and serves
    /// the waiters they satisfy.
    ///
    /// # Panics
    /// If the total would exceed [`Semaphore::MAX_PERMITS`].
    pub fn add_permits(&self, n: usize) {
        let served = {
            let mut st = self.state();
            assert!(
                st.total
                    .checked_add(n)
                    .is_some_and(|t| t <= Self::MAX_PERMITS),
                "Semaphore::add_permits: more than Semaphore::MAX_PERMITS permits"
            );
            st.total += n;
            self.permits.fetch_add(n << SHIFT, Ordering::AcqRel);
            st.serve(&self.permits, &self.grants)
        };
        served.wake();
    }

    /// Closes the semaphore (S5): every queued waiter and every later
    /// acquisition fails with `Closed`. Held permits stay valid.
    pub fn close(&self) {
        let wakers = {
            let mut st = self.state();
            self.permits.fetch_or(CLOSED, Ordering::AcqRel);
            self.grants.errors_issued.store(true, Ordering::Release);
            let wakers = st.waiters.notify_all(Closed);
            self.permits.fetch_and(!QUEUED, Ordering::AcqRel);
            wakers
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.permits.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Permits that could be acquired now (ignoring the queue).
    pub fn available_permits(&self) -> usize {
        self.permits.load(Ordering::Acquire) >> SHIFT
    }

    /// Permits in total: available plus held. Changed only by
    /// [`add_permits`](Self::add_permits) and
    /// [`SemaphorePermit::forget`]. A request for more waits (S4).
    pub fn total_permits(&self) -> usize {
        self.state().total
    }

    /// How many tasks are queued.
    pub fn waiters(&self) -> usize {
        self.state().waiters.len()
    }

    /// Reserves the obligation for `n` permits just taken (an owned one,
    /// held by `cx`'s region, for an owned permit: S3); on failure gives
    /// them back and panics.
    fn reserve(&self, cx: &Cx, n: usize, owned: bool) -> Obligation {
        let reserved = if owned {
            cx.reserve_owned_obligation(PERMIT_OBLIGATION)
        } else {
            cx.reserve_obligation(PERMIT_OBLIGATION)
        };
        match reserved {
            Ok(o) => o,
            Err(e) => {
                self.release(n);
                panic!("semaphore permit: cannot reserve its obligation ({e})");
            }
        }
    }

    fn release(&self, n: usize) {
        if n == 0 || self.release_fast(n) {
            return;
        }
        let served = {
            let mut st = self.state();
            self.permits.fetch_add(n << SHIFT, Ordering::AcqRel);
            st.serve(&self.permits, &self.grants)
        };
        served.wake();
    }

    /// The total shrinks; nothing is served (no permit became available),
    /// and no queued request fails: more may be added (S4).
    fn forget_held(&self, n: usize) {
        if n > 0 {
            self.state().total -= n;
        }
    }

    fn poll_acquire(
        &self,
        cx: &Cx,
        n: usize,
        wait: &mut Wait,
        waker: &Waker,
        owned: bool,
    ) -> Poll<Result<Obligation, AcquireError>> {
        let taken = match *wait {
            Wait::Done => panic!("a semaphore acquire future was polled after it completed"),
            Wait::Start => self.poll_start(cx, n, wait, waker),
            Wait::Queued { key, ticket } => self.poll_queued(cx, n, key, ticket, wait, waker),
        };
        taken.map_ok(|()| self.reserve(cx, n, owned))
    }

    fn poll_start(
        &self,
        cx: &Cx,
        n: usize,
        wait: &mut Wait,
        waker: &Waker,
    ) -> Poll<Result<(), AcquireError>> {
        let now = |r: Result<(), TryAcquireError>| match r {
            Ok(()) => Ok(()),
            Err(TryAcquireError::Closed) => Err(AcquireError::Closed),
            Err(TryAcquireError::TooMany { requested, max }) => {
                Err(AcquireError::TooMany { requested, max })
            }
            Err(TryAcquireError::NoPermits) => unreachable!("try_take never says NoPermits"),
        };
        if self.take_fast(n) {
            *wait = Wait::Done;
            return Poll::Ready(Ok(()));
        }
        // A request that fails at once (S4, S5) never looks at
        // cancellation.
        if self.permits.load(Ordering::Acquire) & CLOSED != 0 {
            *wait = Wait::Done;
            return Poll::Ready(Err(AcquireError::Closed));
        }
        if n > Self::MAX_PERMITS {
            *wait = Wait::Done;
            return Poll::Ready(Err(AcquireError::TooMany {
                requested: n,
                max: Self::MAX_PERMITS,
            }));
        }
        // Would block: observe cancellation, never under `state`.
        if let Some(reason) = cx.observe_cancel() {
            *wait = Wait::Done;
            return Poll::Ready(Err(AcquireError::Cancelled(Cancelled::new(reason))));
        }
        let mut st = self.state();
        let mut s = match st.try_take(&self.permits, n) {
            Ok(r) => {
                *wait = Wait::Done;
                return Poll::Ready(now(r));
            }
            Err(s) => s,
        };
        // Queue behind (S2): set `QUEUED` first, so that a release from now
        // on goes through the queue's lock (which we hold).
        while s & QUEUED == 0 {
            match self.permits.compare_exchange_weak(
                s,
                s | QUEUED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                // A release may have made room meanwhile: take it if so.
                Err(_) => match st.try_take(&self.permits, n) {
                    Ok(r) => {
                        *wait = Wait::Done;
                        return Poll::Ready(now(r));
                    }
                    Err(actual) => s = actual,
                },
            }
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        let key = st.waiters.push_back(waker.clone(), (n, ticket));
        *wait = Wait::Queued { key, ticket };
        Poll::Pending
    }

    fn poll_queued(
        &self,
        cx: &Cx,
        n: usize,
        key: WaiterKey,
        ticket: u64,
        wait: &mut Wait,
        waker: &Waker,
    ) -> Poll<Result<(), AcquireError>> {
        // Served with permits? One load, no lock, unless an error grant was
        // ever issued (`served` first: see `Grants`).
        if self.grants.served.load(Ordering::Acquire) >= ticket
            && !self.grants.errors_issued.load(Ordering::Acquire)
        {
            *wait = Wait::Done;
            return Poll::Ready(Ok(()));
        }
        if let Some(r) = self.collect(&mut self.state(), key, ticket) {
            *wait = Wait::Done;
            return Poll::Ready(r);
        }
        if let Some(reason) = cx.observe_cancel() {
            *wait = Wait::Done;
            self.abandon(key, ticket, n);
            return Poll::Ready(Err(AcquireError::Cancelled(Cancelled::new(reason))));
        }
        let mut st = self.state();
        if let Some(r) = self.collect(&mut st, key, ticket) {
            *wait = Wait::Done;
            return Poll::Ready(r);
        }
        st.waiters.update_waker(key, waker);
        Poll::Pending
    }

    /// Under the queue's lock: the outcome for a queued waiter, if it was
    /// served. Its entry is gone once it got permits; an error grant waits
    /// in the entry.
    fn collect(
        &self,
        st: &mut State,
        key: WaiterKey,
        ticket: u64,
    ) -> Option<Result<(), AcquireError>> {
        match st.waiters.state(key) {
            Some(WaiterState::Waiting) => None,
            Some(WaiterState::Notified(_)) => Some(match st.waiters.take_grant(key) {
                Some(Closed) => Err(AcquireError::Closed),
                None => unreachable!("a notified entry holds its grant"),
            }),
            None => {
                debug_assert!(self.grants.served.load(Ordering::Relaxed) >= ticket);
                Some(Ok(()))
            }
        }
    }

    /// A queued waiter leaves (S6).
    fn abandon(&self, key: WaiterKey, ticket: u64, n: usize) {
        let served = {
            let mut st = self.state();
            match st.waiters.remove(key) {
                // It may have been the head blocking smaller requests (and
                // if it was the last one, `QUEUED` is cleared).
                Some((_, None)) => st.serve(&self.permits, &self.grants),
                // An error grant: nothing to give back.
                Some((_, Some(_))) => Served::default(),
                // Served with permits (the entry left the queue): they go on.
                None => {
                    debug_assert!(self.grants.served.load(Ordering::Relaxed) >= ticket);
                    self.permits.fetch_add(n << SHIFT, Ordering::AcqRel);
                    st.serve(&self.permits, &self.grants)
                }
            }
        };
        served.wake();
    }
}

impl Default for Semaphore {
    /// A semaphore with no permits (add them with `add_permits`).
    fn default() -> Self {
        Self::new(0)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// The queued requests, oldest first.
        struct Queued<'a>(&'a WaitQueue<(usize, u64), Closed>);
        impl fmt::Debug for Queued<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|(n, _)| n))
                    .finish()
            }
        }
        let st = self.state();
        f.debug_struct("Semaphore")
            .field("available", &self.available_permits())
            .field("total", &st.total)
            .field("closed", &self.is_closed())
            .field("queued", &Queued(&st.waiters))
            .finish()
    }
}

/// Progress of one acquisition.
#[derive(Clone, Copy, Debug)]
enum Wait {
    Start,
    Queued { key: WaiterKey, ticket: u64 },
    Done,
}

/// The future returned by [`Semaphore::acquire`].
///
/// # Cancellation
/// See [`Semaphore::acquire`]: dropping it leaves the queue and returns
/// permits it was granted.
#[must_use = "futures do nothing unless awaited; dropping this one leaves the queue (and returns permits it was granted)"]
pub struct Acquire<'a> {
    sem: &'a Semaphore,
    cx: Cx,
    n: usize,
    wait: Wait,
}

impl<'a> Future for Acquire<'a> {
    type Output = Result<SemaphorePermit<'a>, AcquireError>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let sem = this.sem;
        let n = this.n;
        sem.poll_acquire(&this.cx, n, &mut this.wait, task_cx.waker(), false)
            .map(|r| {
                r.map(|obligation| SemaphorePermit {
                    sem,
                    n,
                    obligation: Some(obligation),
                })
            })
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if let Wait::Queued { key, ticket } = self.wait {
            self.sem.abandon(key, ticket, self.n);
        }
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("n", &self.n)
            .field("wait", &self.wait)
            .finish()
    }
}

/// The future returned by [`Semaphore::acquire_owned`].
///
/// # Cancellation
/// See [`Semaphore::acquire_owned`]: dropping it leaves the queue and returns
/// permits it was granted.
#[must_use = "futures do nothing unless awaited; dropping this one leaves the queue (and returns permits it was granted)"]
pub struct AcquireOwned {
    /// `None` once the permit took it.
    sem: Option<Arc<Semaphore>>,
    cx: Cx,
    n: usize,
    wait: Wait,
}

impl Future for AcquireOwned {
    type Output = Result<OwnedSemaphorePermit, AcquireError>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let n = this.n;
        let sem = this
            .sem
            .as_ref()
            .expect("a semaphore acquire future was polled after it completed");
        match sem.poll_acquire(&this.cx, n, &mut this.wait, task_cx.waker(), true) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(obligation)) => Poll::Ready(Ok(OwnedSemaphorePermit {
                sem: this.sem.take().expect("checked above"),
                n,
                obligation: Some(obligation),
            })),
        }
    }
}

impl Drop for AcquireOwned {
    fn drop(&mut self) {
        if let (Wait::Queued { key, ticket }, Some(sem)) = (self.wait, &self.sem) {
            sem.abandon(key, ticket, self.n);
        }
    }
}

impl fmt::Debug for AcquireOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("n", &self.n)
            .field("wait", &self.wait)
            .finish()
    }
}

/// Permits held from a [`Semaphore`]: an obligation (S3).
#[must_use = "dropping a SemaphorePermit returns its permits at once and aborts its obligation; bind it (`let permit = ...`) to hold them, or call forget() to remove them for good"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    n: usize,
    /// `None` only after `forget` committed it.
    obligation: Option<Obligation>,
}

impl SemaphorePermit<'_> {
    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// Removes the permits from the semaphore for good (its total shrinks)
    /// and commits the obligation (S3).
    pub fn forget(mut self) {
        let n = std::mem::take(&mut self.n);
        self.sem.forget_held(n);
        if let Some(o) = self.obligation.take() {
            o.commit();
        }
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(self.n);
        // The obligation field drops next: aborted.
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.n)
            .field("obligation", &self.obligation.as_ref().map(Obligation::id))
            .finish()
    }
}

/// Like [`SemaphorePermit`], holding an `Arc` of the semaphore.
#[must_use = "dropping an OwnedSemaphorePermit returns its permits at once and aborts its obligation; bind it (`let permit = ...`) to hold them, or call forget() to remove them for good"]
pub struct OwnedSemaphorePermit {
    sem: Arc<Semaphore>,
    n: usize,
    /// `None` only after `forget` committed it.
    obligation: Option<Obligation>,
}

impl OwnedSemaphorePermit {
    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// The semaphore the permits belong to.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }

    /// As [`SemaphorePermit::forget`].
    pub fn forget(mut self) {
        let n = std::mem::take(&mut self.n);
        self.sem.forget_held(n);
        if let Some(o) = self.obligation.take() {
            o.commit();
        }
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.sem.release(self.n);
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.n)
            .field("obligation", &self.obligation.as_ref().map(Obligation::id))
            .finish()
    }
}

// Compile-time Send/Sync guarantees.
const _: () = {
    const fn send<T: Send>() {}
    const fn sync<T: Sync>() {}
    send::<Semaphore>();
    sync::<Semaphore>();
    send::<SemaphorePermit<'static>>();
    sync::<SemaphorePermit<'static>>();
    send::<OwnedSemaphorePermit>();
    sync::<OwnedSemaphorePermit>();
    send::<Acquire<'static>>();
    send::<AcquireOwned>();
    send::<AcquireError>();
    sync::<AcquireError>();
};

#[cfg(test)]
mod tests {
    use super::*;

    fn w() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn serve_is_fifo_all_or_nothing_and_a_head_larger_than_the_total_waits() {
        const ONE: usize = 1 << SHIFT;
        let permits = AtomicUsize::new(ONE | QUEUED);
        let grants = Grants {
            served: AtomicU64::new(0),
            errors_issued: AtomicBool::new(false),
        };
        let mut st = State {
            total: 1,
            waiters: WaitQueue::new(),
            next_ticket: 3,
        };
        let big = st.waiters.push_back(w(), (3, 1));
        let small = st.waiters.push_back(w(), (1, 2));
        assert!(
            st.serve(&permits, &grants).len() == 0,
            "the big head blocks the small one, although the total is below it (S4: it waits)"
        );
        assert_eq!(permits.load(Ordering::Relaxed), ONE | QUEUED);
        assert!(!grants.errors_issued.load(Ordering::Relaxed));
        // Two more permits added: the head takes all three, then nothing is
        // left for `small`.
        st.total = 3;
        permits.fetch_add(2 * ONE, Ordering::Relaxed);
        assert_eq!(st.serve(&permits, &grants).len(), 1);
        assert!(st.waiters.state(big).is_none(), "served: out of the queue");
        assert_eq!(grants.served.load(Ordering::Relaxed), 1);
        assert!(matches!(
            st.waiters.state(small),
            Some(WaiterState::Waiting)
        ));
        assert_eq!(permits.load(Ordering::Relaxed), QUEUED);
        // One comes back: `small` is served and `QUEUED` is cleared.
        permits.fetch_add(ONE, Ordering::Relaxed);
        assert_eq!(st.serve(&permits, &grants).len(), 1);
        assert_eq!(grants.served.load(Ordering::Relaxed), 2);
        assert_eq!(permits.load(Ordering::Relaxed), 0);
    }
}
