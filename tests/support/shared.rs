//! Small shared-state utilities for tests: a one-shot async [`Gate`], an
//! ordered [`Log`], a value [`Slot`], a [`Counter`], a [`Flag`], and drop
//! observers ([`SetOnDrop`], [`DropFlag`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A one-shot async event built on std: `wait()` parks (no spinning, no
/// polling) until `open()` is called; any number of waiters. It does not
/// observe cancellation, so a task parked on it behaves like one parked on
/// a plain channel.
#[derive(Clone, Default)]
pub struct Gate(Arc<Mutex<(bool, Vec<Waker>)>>);

impl Gate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the gate and wakes every waiter.
    pub fn open(&self) {
        let wakers = {
            let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            g.0 = true;
            std::mem::take(&mut g.1)
        };
        for w in wakers {
            w.wake();
        }
    }

    pub fn is_open(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// Resolves once the gate is open. Not cancel-aware.
    pub fn wait(&self) -> GateWait {
        GateWait(self.clone())
    }
}

/// The future returned by [`Gate::wait`].
pub struct GateWait(Gate);

impl Future for GateWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = (self.0).0.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 {
            return Poll::Ready(());
        }
        if !g.1.iter().any(|w| w.will_wake(cx.waker())) {
            g.1.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A shared, ordered event log.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, event: impl Into<String>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.into());
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn position(&self, event: &str) -> Option<usize> {
        self.snapshot().iter().position(|e| e == event)
    }
}

/// A shared slot for passing one value between tasks (e.g. an observed
/// cancellation reason).
pub struct Slot<T>(Arc<Mutex<Option<T>>>);

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(None)))
    }
}

impl<T> Slot<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, v: T) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
    }

    pub fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub fn is_set(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Option<T>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl<T: Clone> Slot<T> {
    pub fn get(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A shared counter.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn incr(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A shared boolean flag.
#[derive(Clone, Default)]
pub struct Flag(Arc<AtomicBool>);

impl Flag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Sets a flag when dropped: proves a future was dropped (not leaked).
pub struct SetOnDrop(pub Flag);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// Records that it was dropped, for drops that may happen on another thread
/// (its [`DropObserver`] can block until then).
pub struct DropFlag(Arc<(Mutex<bool>, Condvar)>);

/// The observing side of a [`DropFlag`].
#[derive(Clone)]
pub struct DropObserver(Arc<(Mutex<bool>, Condvar)>);

impl DropFlag {
    pub fn new() -> (DropFlag, DropObserver) {
        let inner = Arc::new((Mutex::new(false), Condvar::new()));
        (DropFlag(inner.clone()), DropObserver(inner))
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        let (m, c) = &*self.0;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
        c.notify_all();
    }
}

impl DropObserver {
    pub fn is_dropped(&self) -> bool {
        *self.0.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks until the flag is dropped or `limit` passes; returns whether it
    /// was dropped. For drops that legitimately happen on another thread.
    pub fn wait_dropped(&self, limit: Duration) -> bool {
        let (m, c) = &*self.0;
        let guard = m.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = c
            .wait_timeout_while(guard, limit, |d| !*d)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}
