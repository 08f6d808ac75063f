//! `OnceCell`: a value initialized at most once, by one async initializer
//! at a time.
//!
//! ```
//! use std::sync::Arc;
//! use asupersync::sync::OnceCell;
//! use asupersync::RuntimeBuilder;
//!
//! let rt = RuntimeBuilder::current_thread().build().unwrap();
//! rt.block_on(|cx| async move {
//!     let config: Arc<OnceCell<String>> = Arc::new(OnceCell::new());
//!     let value = config
//!         .get_or_init(&cx, || async { "loaded".to_string() })
//!         .await
//!         .unwrap();
//!     assert_eq!(value, "loaded");
//!     // Later callers get the stored value; their initializer never runs.
//!     let again = config.get_or_init(&cx, || async { unreachable!() }).await;
//!     assert_eq!(again.unwrap(), "loaded");
//! });
//! ```
//!
//! Rules:
//! 1. C1 (at most once): the cell is written at most once; once it holds a
//!    value, [`OnceCell::get`] returns it forever (until `into_inner`/`take`
//!    with exclusive access).
//! 2. C2 (one initializer at a time): among concurrent
//!    [`get_or_init`](OnceCell::get_or_init) /
//!    [`get_or_try_init`](OnceCell::get_or_try_init) callers on an empty
//!    cell, exactly one runs its initializer; the others wait in FIFO order.
//!    Each caller's initializer runs at most once.
//! 3. C3 (a failed initializer leaves the cell empty): if the initializer
//!    returns an error, panics, or is dropped before finishing (its task was
//!    cancelled and dropped, the call lost a race or a timeout), the cell
//!    stays empty and the *oldest* waiter becomes the initializer. The
//!    caller whose initializer failed gets the error; it does not retry.
//! 4. C4 (cancel-aware waiting): a caller waiting for another's initializer
//!    returns `Err(Cancelled)` when its task is cancelled, and leaves the
//!    queue without disturbing the others' order. A waiter that finds the
//!    value (or the role) already handed to it when polled takes it, even if
//!    cancellation was requested meanwhile (the cancellation is seen at the
//!    next checkpoint). A waiter that was handed the role but never takes it
//!    — dropped first, or observing its cancellation in a race with the
//!    hand-over — passes the role to the next waiter.
//! 5. C5 (`set`): [`OnceCell::set`] stores a value only if the cell is empty
//!    and nobody is initializing it; waiters are then released with it.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use super::waiters::{Left, WaitGuard, WaitLock, Waiter, WakeList};
use crate::exec::cx::Cx;
use crate::types::cancel::Cancelled;

/// A cell written at most once, by one async initializer at a time. See the
/// [module docs](self) for the rules.
///
/// # Cancellation
/// [`get_or_init`](OnceCell::get_or_init) and
/// [`get_or_try_init`](OnceCell::get_or_try_init) have two await points:
/// waiting for another initializer (cancel-aware: `Err(Cancelled)`, leaves
/// the queue) and running the caller's own initializer (if that is
/// cancelled, fails, panics or is dropped, the cell stays empty and the
/// oldest waiter takes over). `get`, `set` and the rest never block.
pub struct OnceCell<T> {
    value: OnceLock<T>,
    /// The state and the intrusive queue of waiters (`sync::waiters`,
    /// WL1–WL6: each node lives in its waiting future).
    state: WaitLock<State, (), Turn>,
}

/// What a waiter is handed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Turn {
    /// The value is stored.
    Ready,
    /// The initializer failed: the role is yours (C3).
    Initialize,
}

struct State {
    /// Someone holds the initializer role (or it was handed to a waiter
    /// that has not collected it yet).
    initializing: bool,
}

type Guard<'a> = WaitGuard<'a, State, (), Turn>;

fn lock(m: &WaitLock<State, (), Turn>) -> Guard<'_> {
    // No user code runs under the lock: a poisoned state is still consistent.
    m.lock()
}

/// Why [`OnceCell::get_or_try_init`] returned without a value.
#[derive(Debug, PartialEq, Eq)]
pub enum InitError<E> {
    /// The task was cancelled while waiting for another initializer.
    Cancelled(Cancelled),
    /// This caller's initializer returned an error; the cell stays empty.
    Failed(E),
}

impl<E> InitError<E> {
    /// Whether the wait was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, InitError::Cancelled(_))
    }

    /// The initializer's error, if that is what happened.
    pub fn into_failed(self) -> Option<E> {
        match self {
            InitError::Failed(e) => Some(e),
            InitError::Cancelled(_) => None,
        }
    }
}

impl<E> From<Cancelled> for InitError<E> {
    fn from(c: Cancelled) -> Self {
        InitError::Cancelled(c)
    }
}

impl<E: fmt::Display> fmt::Display for InitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Cancelled(c) => write!(f, "OnceCell initialization: {c}"),
            InitError::Failed(e) => write!(f, "OnceCell initializer failed: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for InitError<E> {}

/// Why [`OnceCell::set`] refused a value; the value comes back.
#[derive(PartialEq, Eq)]
pub enum SetError<T> {
    /// The cell already holds a value.
    AlreadyInitialized(T),
    /// An initializer is running.
    Initializing(T),
}

impl<T> SetError<T> {
    /// The value that was not stored.
    pub fn into_inner(self) -> T {
        match self {
            SetError::AlreadyInitialized(v) | SetError::Initializing(v) => v,
        }
    }
}

impl<T> fmt::Debug for SetError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetError::AlreadyInitialized(_) => f.write_str("AlreadyInitialized(..)"),
            SetError::Initializing(_) => f.write_str("Initializing(..)"),
        }
    }
}

impl<T> fmt::Display for SetError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetError::AlreadyInitialized(_) => f.write_str("the OnceCell is already initialized"),
            SetError::Initializing(_) => f.write_str("the OnceCell is being initialized"),
        }
    }
}

impl<T> std::error::Error for SetError<T> {}

impl<T> OnceCell<T> {
    /// An empty cell.
    #[cfg(not(all(test, loom)))]
    pub const fn new() -> Self {
        Self {
            value: OnceLock::new(),
            state: WaitLock::new(State {
                initializing: false,
            }),
        }
    }

    /// An empty cell (loom's lock: not `const`).
    #[cfg(all(test, loom))]
    pub fn new() -> Self {
        Self {
            value: OnceLock::new(),
            state: WaitLock::new(State {
                initializing: false,
            }),
        }
    }

    /// The value, if the cell is initialized. Never waits.
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// Whether the cell holds a value.
    pub fn is_initialized(&self) -> bool {
        self.value.get().is_some()
    }

    /// The value, mutably (exclusive access: nobody can be initializing).
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.value.get_mut()
    }

    /// Stores `value` if the cell is empty and no initializer runs (C5).
    pub fn set(&self, value: T) -> Result<(), SetError<T>> {
        let wakers = {
            let mut st = lock(&self.state);
            if self.value.get().is_some() {
                return Err(SetError::AlreadyInitialized(value));
            }
            if st.initializing {
                return Err(SetError::Initializing(value));
            }
            if let Err(v) = self.value.set(value) {
                return Err(SetError::AlreadyInitialized(v));
            }
            st.notify_all(Turn::Ready)
        };
        wake_all(wakers);
        Ok(())
    }

    /// Empties the cell, returning its value (exclusive access).
    pub fn take(&mut self) -> Option<T> {
        self.value.take()
    }

    /// The value, consuming the cell.
    pub fn into_inner(self) -> Option<T> {
        self.value.into_inner()
    }

    /// How many callers wait for an initializer.
    pub fn waiters(&self) -> usize {
        lock(&self.state).len()
    }

    /// Returns the value, running `init` to produce it if the cell is empty
    /// and no other caller is initializing it; otherwise waits (FIFO) for
    /// the running initializer (C2).
    ///
    /// # Cancellation
    /// Two await points:
    /// - Waiting for another caller's initializer: cancel-aware. A cancelled
    ///   task gets `Err(Cancelled)` and leaves the queue (C4); if the value
    ///   was already handed to it when it is polled, it gets `Ok`.
    /// - Running `init`: its own awaits decide (it has no error channel, so
    ///   it runs to completion unless its future is dropped). If the
    ///   `get_or_init` future is dropped while `init` runs, `init` is
    ///   dropped, the cell stays empty and the oldest waiter becomes the
    ///   initializer (C3). A panic in `init` does the same, then unwinds.
    pub async fn get_or_init<F, Fut>(&self, cx: &Cx, init: F) -> Result<&T, Cancelled>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let result = self
            .get_or_try_init(cx, move || async move { Ok::<T, Infallible>(init().await) })
            .await;
        match result {
            Ok(v) => Ok(v),
            Err(InitError::Cancelled(c)) => Err(c),
            Err(InitError::Failed(never)) => match never {},
        }
    }

    /// Like [`get_or_init`](Self::get_or_init) with a fallible initializer:
    /// if `init` returns `Err(e)`, the cell stays empty, the oldest waiter
    /// becomes the initializer and this call returns
    /// `Err(InitError::Failed(e))` (C3).
    ///
    /// # Cancellation
    /// As for [`get_or_init`](Self::get_or_init): waiting is cancel-aware
    /// (`Err(InitError::Cancelled(_))`); while `init` runs, cancellation is
    /// whatever `init` does with it (typically it returns an error built
    /// from `Cancelled`, which leaves the cell empty); dropping the future
    /// mid-`init` leaves the cell empty and hands the role on.
    pub async fn get_or_try_init<E, F, Fut>(&self, cx: &Cx, init: F) -> Result<&T, InitError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(v) = self.get() {
            return Ok(v);
        }
        let role = InitWait {
            cell: self,
            waiter: Waiter::new(&self.state, ()),
            cx,
        }
        .await?;
        let guard = match role {
            Role::Ready => {
                return Ok(self
                    .get()
                    .expect("released with Ready: the value is stored"));
            }
            Role::Initializer(guard) => guard,
        };
        match init().await {
            Ok(value) => Ok(guard.complete(value)),
            Err(e) => {
                drop(guard); // C3: empty, and the role passes on.
                Err(InitError::Failed(e))
            }
        }
    }

    /// Gives up the initializer role without a value: to the oldest waiter,
    /// or back to nobody (C3).
    fn hand_on(&self) {
        let waker = {
            let mut st = lock(&self.state);
            Self::hand_on_locked(&mut st)
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn hand_on_locked(st: &mut Guard<'_>) -> Option<Waker> {
        debug_assert!(st.initializing);
        let waker = st.notify_front(Turn::Initialize);
        if waker.is_none() {
            st.initializing = false;
        }
        waker
    }
}

fn wake_all(wakers: WakeList) {
    wakers.wake();
}

impl<T> Default for OnceCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> From<T> for OnceCell<T> {
    fn from(value: T) -> Self {
        let cell = Self::new();
        let _ = cell.value.set(value);
        cell
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnceCell")
            .field("value", &self.get())
            .finish()
    }
}

/// The initializer role, held while `init` runs. Dropping it without a
/// value hands the role on (C3).
struct InitGuard<'a, T> {
    cell: &'a OnceCell<T>,
    done: bool,
}

impl<'a, T> InitGuard<'a, T> {
    fn complete(mut self, value: T) -> &'a T {
        self.done = true;
        let cell = self.cell;
        let wakers = {
            let mut st = lock(&cell.state);
            debug_assert!(st.initializing);
            if cell.value.set(value).is_err() {
                unreachable!("C1: only the initializer writes the cell");
            }
            st.initializing = false;
            st.notify_all(Turn::Ready)
        };
        wake_all(wakers);
        cell.value.get().expect("just stored")
    }
}

impl<T> Drop for InitGuard<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.cell.hand_on();
        }
    }
}

enum Role<'a, T> {
    Ready,
    Initializer(InitGuard<'a, T>),
}

pin_project! {
    /// Waits to either see the value or get the initializer role. Its
    /// waiter node (WL1–WL6) is linked while it waits.
    struct InitWait<'a, 'c, T> {
        cell: &'a OnceCell<T>,
        #[pin]
        waiter: Waiter<'a, State, (), Turn>,
        cx: &'c Cx,
    }

    impl<T> PinnedDrop for InitWait<'_, '_, T> {
        fn drop(this: Pin<&mut Self>) {
            let waiter = this.project().waiter.into_ref();
            if waiter.is_registered() {
                leave(waiter);
            }
        }
    }
}

/// Takes a registered waiter out of the queue; a role handed to it but
/// never taken passes on (C4).
fn leave(waiter: Pin<&Waiter<'_, State, (), Turn>>) {
    let waker = {
        let mut st = waiter.lock();
        match st.leave() {
            Left::Notified(Turn::Initialize) => OnceCell::<()>::hand_on_locked(&mut st),
            Left::Notified(Turn::Ready) | Left::Waiting | Left::Unregistered => None,
        }
    };
    if let Some(w) = waker {
        w.wake();
    }
}

/// Without blocking: the value, or the role if nobody holds it.
fn try_now<'a, T>(cell: &'a OnceCell<T>, st: &mut State) -> Option<Role<'a, T>> {
    if cell.value.get().is_some() {
        return Some(Role::Ready);
    }
    if st.initializing {
        return None;
    }
    st.initializing = true;
    Some(Role::Initializer(InitGuard { cell, done: false }))
}

fn role<T>(cell: &OnceCell<T>, turn: Turn) -> Role<'_, T> {
    match turn {
        Turn::Ready => Role::Ready,
        Turn::Initialize => Role::Initializer(InitGuard { cell, done: false }),
    }
}

impl<'a, T> Future for InitWait<'a, '_, T> {
    type Output = Result<Role<'a, T>, Cancelled>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let cell: &'a OnceCell<T> = this.cell;
        let waiter = this.waiter.into_ref();
        if waiter.is_finished() {
            panic!("`InitWait` polled after completion");
        }
        if !waiter.is_registered() {
            let now = try_now(cell, &mut waiter.lock());
            if let Some(role) = now {
                waiter.finish();
                return Poll::Ready(Ok(role));
            }
            if let Some(reason) = this.cx.observe_cancel() {
                waiter.finish();
                return Poll::Ready(Err(Cancelled::new(reason)));
            }
            let mut st = waiter.lock();
            if let Some(role) = try_now(cell, &mut st) {
                drop(st);
                waiter.finish();
                return Poll::Ready(Ok(role));
            }
            st.register(task_cx.waker());
            return Poll::Pending;
        }
        let turn = waiter.lock().poll_grant(task_cx.waker());
        if let Some(turn) = turn {
            waiter.finish();
            return Poll::Ready(Ok(role(cell, turn)));
        }
        if let Some(reason) = this.cx.observe_cancel() {
            // C4: acknowledged, so Err; a role handed over in the
            // meantime passes on.
            leave(waiter);
            waiter.finish();
            return Poll::Ready(Err(Cancelled::new(reason)));
        }
        Poll::Pending
    }
}

// Compile-time guarantees: a cell of a `Send + Sync` value can be shared
// across threads, and its initialization future can be held across await
// points of a `Send` task.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<OnceCell<String>>();
    send_sync::<InitError<String>>();
};

#[allow(dead_code)]
fn get_or_init_future_is_send(cell: &OnceCell<u64>, cx: &Cx) {
    fn send<T: Send>(_: T) {}
    send(cell.get_or_init(cx, || std::future::ready(1)));
    send(cell.get_or_try_init(cx, || std::future::ready(Ok::<_, String>(1))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_stores_once_and_returns_the_value_otherwise() {
        let cell = OnceCell::new();
        assert!(cell.set(1).is_ok());
        assert_eq!(cell.set(2).unwrap_err().into_inner(), 2);
        assert_eq!(cell.get(), Some(&1));
        assert_eq!(cell.into_inner(), Some(1));
    }

    #[test]
    fn set_is_refused_while_initializing() {
        let cell = OnceCell::new();
        lock(&cell.state).initializing = true;
        assert!(matches!(cell.set(5), Err(SetError::Initializing(5))));
    }
}
