//! `Pool`: a bounded pool of reusable resources (connections, buffers, ...)
//! created on demand by an async factory and health-checked on checkout.
//!
//! ```
//! use std::sync::Arc;
//! use asupersync::sync::Pool;
//! use asupersync::RuntimeBuilder;
//!
//! let rt = RuntimeBuilder::current_thread().build().unwrap();
//! rt.block_on(|cx| async move {
//!     let pool = Arc::new(
//!         Pool::builder(2, |_cx| async { Ok::<_, std::io::Error>(Vec::<u8>::with_capacity(1024)) })
//!             .health_check(|buf: &mut Vec<u8>| {
//!                 buf.clear();
//!                 buf.capacity() >= 1024
//!             })
//!             .build(),
//!     );
//!     {
//!         let mut buf = pool.acquire(&cx).await.unwrap();
//!         buf.extend_from_slice(b"hello");
//!     } // dropped: the buffer goes back to the pool
//!     let buf = pool.acquire(&cx).await.unwrap(); // reused, and cleared
//!     assert!(buf.is_empty());
//!     assert_eq!(pool.status().created, 1);
//! });
//! ```
//!
//! Rules:
//! 1. P1 (bounded): at most `max_size` resources exist at once, counting
//!    idle ones, checked-out ones and ones being created. Always
//!    `size == idle + in_use + creating` ([`PoolStatus`]).
//! 2. P2 (FIFO): when the pool is exhausted, acquirers wait and are served
//!    in arrival order; a returned resource (or a freed slot) goes to the
//!    oldest waiter before anyone else. A new acquirer never overtakes a
//!    waiter.
//! 3. P3 (health on checkout): a resource that was used before is checked
//!    with the health check when it is checked out again; an unhealthy one
//!    is dropped and the acquirer creates a replacement in its slot (keeping
//!    its turn). Freshly created resources are not checked.
//! 4. P4 (return on drop): a [`Pooled`] dereferences to the resource;
//!    dropping it returns the resource to the pool.
//!    [`Pooled::discard`] drops the resource instead and frees its slot;
//!    [`Pooled::detach`] takes it out of the pool for good.
//! 5. P5 (the slot is an obligation): each checkout reserves a `"pool_slot"`
//!    obligation held by the acquiring task; returning, discarding or
//!    detaching resolves it. A `Pooled` that outlives its task (sent to
//!    another task, or `mem::forget`) is reported as an obligation leak.
//! 6. P6 (a cancelled acquire leaks nothing): if an acquire is cancelled or
//!    dropped while it waits, it leaves the queue; if a resource or slot
//!    was handed to it meanwhile, that goes to the next waiter (or back to
//!    the pool). If it is dropped while the factory runs, the half-created
//!    resource (the factory's future) is dropped and the slot is freed. A
//!    factory error frees the slot too. The accounting of P1 always returns
//!    to `size == idle` once nothing is checked out.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use super::waiters::{Left, WaitGuard, WaitLock, Waiter};
use crate::exec::cx::Cx;
use crate::kernel::SpawnError;
use crate::obligation::Obligation;
use crate::types::cancel::Cancelled;

type Factory<R, E> =
    Box<dyn Fn(Cx) -> Pin<Box<dyn Future<Output = Result<R, E>> + Send>> + Send + Sync>;
type HealthCheck<R> = Box<dyn Fn(&mut R) -> bool + Send + Sync>;

/// The obligation kind each checkout reserves (P5).
pub const POOL_SLOT: &str = "pool_slot";

/// A bounded pool of resources `R` created by an async factory that fails
/// with `E`. See the [module docs](self) for the rules.
///
/// # Cancellation
/// [`Pool::acquire`] has two await points: waiting while the pool is
/// exhausted (cancel-aware: `Err(PoolError::Cancelled)`, leaves the queue,
/// passes on anything handed to it) and running the factory (dropping the
/// acquire drops the half-created resource and frees its slot). Nothing
/// else blocks; a cancelled task's [`Pooled`] is returned when its frame is
/// dropped.
pub struct Pool<R, E> {
    shared: Shared<R>,
    factory: Factory<R, E>,
}

/// The part of the pool a [`Pooled`] needs to find its way back.
struct Shared<R> {
    max_size: usize,
    health: Option<HealthCheck<R>>,
    /// The state and the intrusive queue of waiters (`sync::waiters`,
    /// WL1–WL6: each node lives in its waiting future).
    state: WaitLock<State<R>, (), Grant<R>>,
}

/// What a waiter is handed.
enum Grant<R> {
    /// A returned resource (counted in `in_use`).
    Resource(R),
    /// A free slot to create a resource in (counted in `creating`).
    Slot,
}

struct State<R> {
    /// Most recently returned last (reused first).
    idle: VecDeque<R>,
    in_use: usize,
    creating: usize,
    size: usize,
    created: u64,
    reused: u64,
    discarded: u64,
    create_failures: u64,
}

type Guard<'a, R> = WaitGuard<'a, State<R>, (), Grant<R>>;

fn check_counts<R>(st: &Guard<'_, R>, max_size: usize) {
    debug_assert_eq!(st.size, st.idle.len() + st.in_use + st.creating);
    debug_assert!(st.size <= max_size);
    debug_assert!(st.len() == 0 || (st.idle.is_empty() && st.size == max_size));
}

fn lock<R>(m: &WaitLock<State<R>, (), Grant<R>>) -> Guard<'_, R> {
    // No user code runs under the lock (resources are dropped after it is
    // released): a poisoned state is still consistent.
    m.lock()
}

/// Gauges and counters of a [`Pool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PoolStatus {
    /// The bound on `size`.
    pub max_size: usize,
    /// Resources in existence or being created: `idle + in_use + creating`.
    pub size: usize,
    /// Resources waiting in the pool.
    pub idle: usize,
    /// Resources checked out (including ones handed to a waiter that has
    /// not picked them up yet).
    pub in_use: usize,
    /// Slots whose resource is being created.
    pub creating: usize,
    /// Acquirers waiting for a resource.
    pub waiters: usize,
    /// Resources the factory created (total).
    pub created: u64,
    /// Checkouts of a previously used resource (total).
    pub reused: u64,
    /// Resources dropped by the pool: failed health checks and
    /// [`Pooled::discard`] (total).
    pub discarded: u64,
    /// Factory calls that returned an error (total).
    pub create_failures: u64,
}

/// Why [`Pool::acquire`] returned without a resource.
#[derive(Debug, PartialEq, Eq)]
pub enum PoolError<E> {
    /// The task was cancelled while waiting for a resource.
    Cancelled(Cancelled),
    /// The factory failed; the slot was freed for the next acquirer.
    Create(E),
    /// The slot's obligation could not be reserved: the `Cx`'s region is
    /// already closed. Nothing was taken from the pool.
    Obligation(SpawnError),
}

impl<E> PoolError<E> {
    /// Whether the acquire was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, PoolError::Cancelled(_))
    }
}

impl<E> From<Cancelled> for PoolError<E> {
    fn from(c: Cancelled) -> Self {
        PoolError::Cancelled(c)
    }
}

impl<E: fmt::Display> fmt::Display for PoolError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Cancelled(c) => write!(f, "pool acquire {c}"),
            PoolError::Create(e) => write!(f, "pool factory failed: {e}"),
            PoolError::Obligation(e) => write!(f, "pool slot not reserved: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for PoolError<E> {}

/// Configures a [`Pool`]; from [`Pool::builder`].
#[must_use = "a PoolBuilder does nothing until build() is called"]
pub struct PoolBuilder<R, E> {
    max_size: usize,
    factory: Factory<R, E>,
    health: Option<HealthCheck<R>>,
}

impl<R, E> PoolBuilder<R, E> {
    /// Checks a previously used resource on checkout; `false` discards it
    /// and a replacement is created (P3). The check may also reset the
    /// resource (it gets `&mut R`).
    pub fn health_check(mut self, check: impl Fn(&mut R) -> bool + Send + Sync + 'static) -> Self {
        self.health = Some(Box::new(check));
        self
    }

    /// The pool.
    pub fn build(self) -> Pool<R, E> {
        Pool {
            shared: Shared {
                max_size: self.max_size,
                health: self.health,
                state: WaitLock::new(State {
                    idle: VecDeque::new(),
                    in_use: 0,
                    creating: 0,
                    size: 0,
                    created: 0,
                    reused: 0,
                    discarded: 0,
                    create_failures: 0,
                }),
            },
            factory: self.factory,
        }
    }
}

impl<R, E> fmt::Debug for PoolBuilder<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("max_size", &self.max_size)
            .field("health_check", &self.health.is_some())
            .finish()
    }
}

impl<R, E> Pool<R, E> {
    /// Starts configuring a pool of at most `max_size` resources created by
    /// `factory` (called with a clone of the acquiring task's `Cx`).
    ///
    /// # Panics
    /// If `max_size` is 0 (such a pool could never hand anything out).
    pub fn builder<F, Fut>(max_size: usize, factory: F) -> PoolBuilder<R, E>
    where
        F: Fn(Cx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        assert!(max_size > 0, "a Pool needs max_size >= 1");
        PoolBuilder {
            max_size,
            factory: Box::new(move |cx| Box::pin(factory(cx))),
            health: None,
        }
    }

    /// A pool with no health check; see [`builder`](Self::builder).
    ///
    /// # Panics
    /// If `max_size` is 0.
    pub fn new<F, Fut>(max_size: usize, factory: F) -> Self
    where
        F: Fn(Cx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        Self::builder(max_size, factory).build()
    }

    /// Checks out a resource: an idle one (health-checked, P3), a new one
    /// from the factory if the pool is below `max_size`, or, when the pool
    /// is exhausted, the next one returned, in FIFO order (P2).
    ///
    /// # Cancellation
    /// Two await points:
    /// - Waiting for a resource (pool exhausted): cancel-aware. A cancelled
    ///   task gets `Err(PoolError::Cancelled)` and leaves the queue; the
    ///   others keep their order, and a resource or slot handed to it in a
    ///   race with the cancellation goes to the next waiter (P6). If the
    ///   resource was already handed to it when it is polled, the acquire
    ///   completes `Ok` (the cancellation is seen at the next checkpoint;
    ///   dropping the `Pooled` returns the resource).
    /// - Running the factory (a slot was free): the factory gets the task's
    ///   `Cx` and decides how to react to cancellation; its error comes back
    ///   as `Err(PoolError::Create(e))` and frees the slot. Dropping the
    ///   acquire future meanwhile drops the half-created resource and frees
    ///   the slot (P6).
    ///
    /// The health check runs synchronously (no await point).
    pub async fn acquire(&self, cx: &Cx) -> Result<Pooled<'_, R>, PoolError<E>> {
        let shared = &self.shared;
        let mut checkout = Acquire {
            shared,
            waiter: Waiter::new(&shared.state, ()),
            cx,
        }
        .await?;
        let obligation = cx
            .reserve_obligation(POOL_SLOT)
            .map_err(PoolError::Obligation)?; // dropping `checkout` gives it back
        if let Checkout::Resource(held) = checkout {
            match held.check_health() {
                Ok(resource) => return Ok(Pooled::new(shared, resource, obligation)),
                Err(slot) => checkout = Checkout::Slot(slot),
            }
        }
        let Checkout::Slot(slot) = checkout else {
            unreachable!("handled above")
        };
        match (self.factory)(cx.clone()).await {
            Ok(resource) => {
                slot.into_in_use();
                Ok(Pooled::new(shared, resource, obligation))
            }
            Err(e) => {
                slot.failed();
                Err(PoolError::Create(e))
            }
        }
    }

    /// A snapshot of the gauges and counters.
    pub fn status(&self) -> PoolStatus {
        let st = lock(&self.shared.state);
        PoolStatus {
            max_size: self.shared.max_size,
            size: st.size,
            idle: st.idle.len(),
            in_use: st.in_use,
            creating: st.creating,
            waiters: st.len(),
            created: st.created,
            reused: st.reused,
            discarded: st.discarded,
            create_failures: st.create_failures,
        }
    }

    /// The bound on the number of resources.
    pub fn max_size(&self) -> usize {
        self.shared.max_size
    }

    /// Drops every idle resource (checked-out ones are unaffected).
    pub fn clear_idle(&self) {
        let dropped: VecDeque<R> = {
            let mut st = lock(&self.shared.state);
            let idle = std::mem::take(&mut st.idle);
            st.size -= idle.len();
            check_counts(&st, self.shared.max_size);
            idle
        };
        drop(dropped);
    }
}

impl<R, E> fmt::Debug for Pool<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.status())
            .finish()
    }
}

impl<R> Shared<R> {
    /// A checked-out resource comes back: to the oldest waiter, or idle
    /// (P2, P4). `in_use` is transferred to the waiter.
    fn give_back(&self, resource: R) {
        let waker = {
            let mut st = lock(&self.state);
            let waker = self.give_back_locked(&mut st, resource);
            check_counts(&st, self.max_size);
            waker
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn give_back_locked(&self, st: &mut Guard<'_, R>, resource: R) -> Option<Waker> {
        if st.len() == 0 {
            st.in_use -= 1;
            st.idle.push_back(resource);
            None
        } else {
            st.notify_front(Grant::Resource(resource))
        }
    }

    /// A slot counted in `creating` is freed: to the oldest waiter (still
    /// `creating`), or the pool shrinks.
    fn free_creating_locked(st: &mut Guard<'_, R>) -> Option<Waker> {
        if st.len() == 0 {
            st.creating -= 1;
            st.size -= 1;
            None
        } else {
            st.notify_front(Grant::Slot)
        }
    }

    /// A checked-out resource leaves the pool (discarded or detached): its
    /// slot goes to the oldest waiter, or the pool shrinks.
    fn free_in_use(&self, discarded: bool) {
        let waker = {
            let mut st = lock(&self.state);
            st.in_use -= 1;
            st.creating += 1;
            st.discarded += u64::from(discarded);
            let waker = Self::free_creating_locked(&mut st);
            check_counts(&st, self.max_size);
            waker
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Removes a registered waiter (cancelled or dropped); a grant handed
    /// to it but never collected goes to the next waiter or back to the
    /// pool (P6).
    fn leave(&self, waiter: Pin<&Waiter<'_, State<R>, (), Grant<R>>>) {
        let waker = {
            let mut st = waiter.lock();
            let waker = match st.leave() {
                Left::Notified(Grant::Resource(r)) => self.give_back_locked(&mut st, r),
                Left::Notified(Grant::Slot) => Self::free_creating_locked(&mut st),
                Left::Waiting | Left::Unregistered => None,
            };
            check_counts(&st, self.max_size);
            waker
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// What a finished wait yields; each variant gives its share back when
/// dropped.
enum Checkout<'a, R> {
    Resource(Held<'a, R>),
    Slot(SlotGuard<'a, R>),
}

/// A previously used resource being checked out (counted in `in_use`).
/// Dropped: returned to the pool.
struct Held<'a, R> {
    shared: &'a Shared<R>,
    resource: Option<R>,
}

impl<'a, R> Held<'a, R> {
    /// P3: `Ok` with the resource if healthy; otherwise it is dropped and
    /// its slot converts into a creation slot for this acquirer. A panicking
    /// health check discards the resource and frees its slot.
    fn check_health(mut self) -> Result<R, SlotGuard<'a, R>> {
        let shared = self.shared;
        let Some(check) = &shared.health else {
            return Ok(self.resource.take().expect("present"));
        };
        struct DiscardOnUnwind<'b, R>(&'b Shared<R>, bool);
        impl<R> Drop for DiscardOnUnwind<'_, R> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.free_in_use(true);
                }
            }
        }
        let mut resource = self.resource.take().expect("present");
        let mut unwind = DiscardOnUnwind(shared, true);
        let healthy = check(&mut resource);
        unwind.1 = false;
        if healthy {
            return Ok(resource);
        }
        {
            let mut st = lock(&shared.state);
            st.in_use -= 1;
            st.creating += 1;
            st.discarded += 1;
            check_counts(&st, shared.max_size);
        }
        drop(resource); // outside the lock: user code
        Err(SlotGuard {
            shared,
            armed: true,
        })
    }
}

impl<R> Drop for Held<'_, R> {
    fn drop(&mut self) {
        if let Some(r) = self.resource.take() {
            self.shared.give_back(r);
        }
    }
}

/// A slot reserved for creating a resource (counted in `creating`).
/// Dropped while armed: the slot is freed (P6).
struct SlotGuard<'a, R> {
    shared: &'a Shared<R>,
    armed: bool,
}

impl<R> SlotGuard<'_, R> {
    /// The factory produced the resource: now checked out.
    fn into_in_use(mut self) {
        self.armed = false;
        let mut st = lock(&self.shared.state);
        st.creating -= 1;
        st.in_use += 1;
        st.created += 1;
        check_counts(&st, self.shared.max_size);
    }

    /// The factory failed: count it and free the slot.
    fn failed(self) {
        lock(&self.shared.state).create_failures += 1;
        drop(self);
    }
}

impl<R> Drop for SlotGuard<'_, R> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let waker = {
            let mut st = lock(&self.shared.state);
            let waker = Shared::free_creating_locked(&mut st);
            check_counts(&st, self.shared.max_size);
            waker
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

pin_project! {
    /// Waits for an idle resource, a free slot, or a grant (FIFO). Its
    /// waiter node (WL1–WL6) is linked while it waits.
    struct Acquire<'a, 'c, R> {
        shared: &'a Shared<R>,
        #[pin]
        waiter: Waiter<'a, State<R>, (), Grant<R>>,
        cx: &'c Cx,
    }

    impl<R> PinnedDrop for Acquire<'_, '_, R> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let waiter = this.waiter.into_ref();
            if waiter.is_registered() {
                this.shared.leave(waiter);
            }
        }
    }
}

fn try_now<'a, R>(shared: &'a Shared<R>, st: &mut Guard<'_, R>) -> Option<Checkout<'a, R>> {
    if st.len() != 0 {
        return None; // P2: never overtake a waiter.
    }
    if let Some(r) = st.idle.pop_back() {
        st.in_use += 1;
        st.reused += 1;
        return Some(held(shared, r));
    }
    if st.size < shared.max_size {
        st.size += 1;
        st.creating += 1;
        return Some(slot(shared));
    }
    None
}

fn held<R>(shared: &Shared<R>, r: R) -> Checkout<'_, R> {
    Checkout::Resource(Held {
        shared,
        resource: Some(r),
    })
}

fn slot<R>(shared: &Shared<R>) -> Checkout<'_, R> {
    Checkout::Slot(SlotGuard {
        shared,
        armed: true,
    })
}

fn granted<'a, R>(shared: &'a Shared<R>, st: &mut State<R>, grant: Grant<R>) -> Checkout<'a, R> {
    match grant {
        Grant::Resource(r) => {
            st.reused += 1;
            held(shared, r)
        }
        Grant::Slot => slot(shared),
    }
}

impl<'a, R> Future for Acquire<'a, '_, R> {
    type Output = Result<Checkout<'a, R>, Cancelled>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let shared: &'a Shared<R> = this.shared;
        let waiter = this.waiter.into_ref();
        if waiter.is_finished() {
            panic!("pool `Acquire` polled after completion");
        }
        if !waiter.is_registered() {
            let now = try_now(shared, &mut waiter.lock());
            if let Some(c) = now {
                waiter.finish();
                return Poll::Ready(Ok(c));
            }
            if let Some(reason) = this.cx.observe_cancel() {
                waiter.finish();
                return Poll::Ready(Err(Cancelled::new(reason)));
            }
            let mut st = waiter.lock();
            if let Some(c) = try_now(shared, &mut st) {
                drop(st);
                waiter.finish();
                return Poll::Ready(Ok(c));
            }
            st.register(task_cx.waker());
            return Poll::Pending;
        }
        {
            let mut st = waiter.lock();
            if let Some(grant) = st.poll_grant(task_cx.waker()) {
                let checkout = granted(shared, &mut st, grant);
                drop(st);
                waiter.finish();
                return Poll::Ready(Ok(checkout));
            }
        }
        if let Some(reason) = this.cx.observe_cancel() {
            // Acknowledged, so Err; a resource or slot handed over in the
            // meantime goes to the next waiter (P6).
            shared.leave(waiter);
            waiter.finish();
            return Poll::Ready(Err(Cancelled::new(reason)));
        }
        Poll::Pending
    }
}

/// A checked-out resource. Dereferences to `R`; dropping it returns the
/// resource to its pool (P4) and resolves the slot's obligation (P5).
///
/// # Cancellation
/// Not a wait: holding it across await points is fine. When the holding
/// task is cancelled, unwinding its frame drops the `Pooled`, which returns
/// the resource (and resolves the obligation) — nothing leaks.
#[must_use = "dropping a Pooled returns the resource to the pool at once; \
              call discard() to destroy it instead"]
pub struct Pooled<'a, R> {
    shared: &'a Shared<R>,
    resource: Option<R>,
    obligation: Option<Obligation>,
}

impl<'a, R> Pooled<'a, R> {
    fn new(shared: &'a Shared<R>, resource: R, obligation: Obligation) -> Self {
        Self {
            shared,
            resource: Some(resource),
            obligation: Some(obligation),
        }
    }

    /// Drops the resource instead of returning it (it is broken); its slot
    /// is freed for a replacement.
    pub fn discard(mut self) {
        let resource = self.resource.take().expect("present until dropped");
        drop(resource);
        self.shared.free_in_use(true);
        if let Some(o) = self.obligation.take() {
            o.commit();
        }
    }

    /// Takes the resource out of the pool for good; its slot is freed.
    pub fn detach(mut self) -> R {
        let resource = self.resource.take().expect("present until dropped");
        self.shared.free_in_use(false);
        if let Some(o) = self.obligation.take() {
            o.commit();
        }
        resource
    }
}

impl<R> Deref for Pooled<'_, R> {
    type Target = R;

    fn deref(&self) -> &R {
        self.resource.as_ref().expect("present until dropped")
    }
}

impl<R> DerefMut for Pooled<'_, R> {
    fn deref_mut(&mut self) -> &mut R {
        self.resource.as_mut().expect("present until dropped")
    }
}

impl<R> Drop for Pooled<'_, R> {
    fn drop(&mut self) {
        if let Some(r) = self.resource.take() {
            self.shared.give_back(r);
        }
        if let Some(o) = self.obligation.take() {
            o.commit();
        }
    }
}

impl<R: fmt::Debug> fmt::Debug for Pooled<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pooled").field(&self.resource).finish()
    }
}

// Compile-time guarantees: a pool of `Send` resources is shareable across
// threads, a checked-out resource can move with its task, and `acquire`'s
// future can be held across await points of a `Send` task.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<Pool<Vec<u8>, std::io::Error>>();
    send::<Pooled<'static, Vec<u8>>>();
    send_sync::<Pooled<'static, String>>();
    send_sync::<PoolStatus>();
};

#[allow(dead_code)]
fn acquire_future_is_send(pool: &Pool<Vec<u8>, std::io::Error>, cx: &Cx) {
    fn send<T: Send>(_: T) {}
    send(pool.acquire(cx));
}
