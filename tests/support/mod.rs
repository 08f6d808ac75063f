//! Shared helpers for the `time_*`, `task_*`, `cx_*` and `runtime_*` suites.
//!
//! - [`on_both_drivers`]: run a scenario on the current-thread runtime and on
//!   a 2-worker multi-thread runtime, each under a watchdog so that a lost
//!   wakeup fails the test instead of hanging the suite.
//! - [`Signal`]: a tiny async one-shot event (a real signal to wait on
//!   instead of sleeping).
//! - [`DropFlag`]: observes that a value was dropped (with a blocking,
//!   condvar-based wait for drops that happen on another thread).
//! - [`XorShift`]: a deterministic PRNG for randomized-but-reproducible tests.
//! - [`poll_once`], [`yield_until`]: small async utilities.
#![allow(dead_code)]

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use asupersync::{Runtime, RuntimeBuilder};

/// Bound for a whole scenario: minutes, so that only a true hang reaches it
/// (never a slow run on a loaded machine).
pub const WATCHDOG: Duration = Duration::from_secs(180);

/// A current-thread runtime.
pub fn current_thread() -> Runtime {
    RuntimeBuilder::current_thread()
        .build()
        .expect("current_thread runtime builds")
}

/// A multi-thread runtime with two workers.
pub fn multi_thread() -> Runtime {
    RuntimeBuilder::new()
        .worker_threads(2)
        .build()
        .expect("2-worker runtime builds")
}

/// The two production drivers, by name.
/// A named runtime constructor.
pub type Driver = (&'static str, fn() -> Runtime);

pub const DRIVERS: [Driver; 2] = [
    ("current_thread", current_thread),
    ("multi_thread(2)", multi_thread),
];

/// Runs `f` on a fresh thread and fails (instead of hanging) if it does not
/// finish within `limit`. A panic in `f` is resumed on the caller's thread
/// with its original payload.
pub fn watchdog<T: Send + 'static>(
    label: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(label.to_string())
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(f));
            let _ = tx.send(r);
        })
        .expect("spawn watchdog thread");
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => {
            let _ = handle.join();
            v
        }
        Ok(Err(payload)) => {
            let _ = handle.join();
            resume_unwind(payload)
        }
        Err(_) => panic!(
            "[{label}] did not finish within {limit:?}: a task or the driver is stuck \
             (lost wakeup?)"
        ),
    }
}

/// Runs `f(driver_name, runtime)` on both drivers, each under the watchdog.
/// Both drivers always run; if either fails, the test fails with every
/// driver's failure message.
pub fn on_both_drivers<F>(f: F)
where
    F: Fn(&'static str, Runtime) + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let mut failures = Vec::new();
    for (name, make) in DRIVERS {
        let f = f.clone();
        let r = catch_unwind(AssertUnwindSafe(|| {
            watchdog(name, WATCHDOG, move || f(name, make()))
        }));
        if let Err(payload) = r {
            failures.push(format!("[{name}] {}", panic_text(&*payload)));
        }
    }
    if !failures.is_empty() {
        panic!("{}", failures.join("\n"));
    }
}

/// The text of a panic payload (`&str` or `String`).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// An async one-shot event: `set` once, any number of waiters.
#[derive(Clone, Default)]
pub struct Signal(Arc<SignalInner>);

#[derive(Default)]
struct SignalInner {
    set: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Signal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the event and wakes every waiter.
    pub fn set(&self) {
        self.0.set.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *self.0.wakers.lock().unwrap());
        for w in wakers {
            w.wake();
        }
    }

    pub fn is_set(&self) -> bool {
        self.0.set.load(Ordering::SeqCst)
    }

    /// Resolves once the event is set. Not cancel-aware.
    pub fn wait(&self) -> SignalWait {
        SignalWait(self.0.clone())
    }
}

pub struct SignalWait(Arc<SignalInner>);

impl Future for SignalWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.set.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let mut wakers = self.0.wakers.lock().unwrap();
        if self.0.set.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Records that it was dropped. Clone the observer with [`DropFlag::observer`].
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
        *m.lock().unwrap() = true;
        c.notify_all();
    }
}

impl DropObserver {
    pub fn is_dropped(&self) -> bool {
        *self.0.0.lock().unwrap()
    }

    /// Blocks until the flag is dropped or `limit` passes; returns whether it
    /// was dropped. For drops that legitimately happen on another thread.
    pub fn wait_dropped(&self, limit: Duration) -> bool {
        let (m, c) = &*self.0;
        let guard = m.lock().unwrap();
        let (guard, _) = c.wait_timeout_while(guard, limit, |d| !*d).unwrap();
        *guard
    }
}

/// xorshift64: deterministic, seedable, good enough for test inputs.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Polls `fut` exactly once from inside a task and reports what it returned.
pub async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|tcx| Poll::Ready(Pin::new(&mut *fut).poll(tcx))).await
}

/// Yields to the scheduler until `cond` holds; panics (naming `what`) if it
/// does not within `limit` of wall time.
pub async fn yield_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        asupersync::yield_now().await;
    }
}

/// The limit for [`yield_until`]: a hang detector (a lost wakeup), long
/// enough that no slow run on a loaded machine reaches it, and shorter than
/// [`WATCHDOG`] so that it names what never happened.
pub const SOON: Duration = Duration::from_secs(90);
