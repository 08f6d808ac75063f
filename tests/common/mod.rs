//! Shared helpers for the region / cancel / finalizer / obligation / panic
//! integration tests.
//!
//! - [`Driver`]: the two production drivers every runtime-level test runs on.
//! - [`on_both_drivers!`]: turns `fn name(d: Driver) { .. }` into a module
//!   `name` with two tests, `on_current_thread` and `on_multi_thread`, each
//!   run under a watchdog so that a runtime hang fails the test with a clear
//!   message instead of stalling the whole suite.
//! - Small signalling utilities (`until`, `Log`, `panic_message`).
#![allow(dead_code)]

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use asupersync::{Runtime, RuntimeBuilder};

/// How long one test may run before the watchdog declares a hang: minutes,
/// so that only a true hang reaches it (never a slow run on a loaded
/// machine).
pub const WATCHDOG: Duration = Duration::from_secs(180);

/// Which production driver a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// `RuntimeBuilder::current_thread()`.
    CurrentThread,
    /// `RuntimeBuilder::new().worker_threads(2)`.
    MultiThread,
}

impl Driver {
    /// A builder for this driver, to customise (grace, leak policy, ...).
    pub fn builder(self) -> RuntimeBuilder {
        match self {
            Driver::CurrentThread => RuntimeBuilder::current_thread(),
            Driver::MultiThread => RuntimeBuilder::new().worker_threads(2),
        }
    }

    /// A runtime for this driver with default settings.
    pub fn rt(self) -> Runtime {
        self.builder().build().expect("runtime builds")
    }

    /// A runtime for this driver with a short cleanup grace period.
    pub fn rt_with_grace(self, grace: Duration) -> Runtime {
        self.builder()
            .cleanup_grace(grace)
            .build()
            .expect("runtime builds")
    }
}

/// Runs `f` on a fresh thread and fails if it does not finish within
/// [`WATCHDOG`]. A panic in `f` is resumed on the test thread unchanged.
pub fn with_watchdog(name: &str, f: impl FnOnce() + Send + 'static) {
    struct Done(mpsc::Sender<()>);
    impl Drop for Done {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _done = Done(tx);
            f();
        })
        .expect("spawn test thread");
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(payload) = handle.join() {
                std::panic::resume_unwind(payload);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!(
            "{name}: did not finish within {WATCHDOG:?}; the runtime appears to hang \
             (a region that never closes, a lost wakeup, or a task that is never dropped)"
        ),
    }
}

/// `fn name(d: Driver) { .. }` → module `name` with one test per driver.
#[macro_export]
macro_rules! on_both_drivers {
    ($( $(#[doc = $doc:literal])* fn $name:ident($d:ident : Driver) $body:block )*) => {
        $(
            $(#[doc = $doc])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                fn run($d: $crate::common::Driver) $body

                #[test]
                fn on_current_thread() {
                    $crate::common::with_watchdog(
                        concat!(stringify!($name), "::on_current_thread"),
                        || run($crate::common::Driver::CurrentThread),
                    );
                }

                #[test]
                fn on_multi_thread() {
                    $crate::common::with_watchdog(
                        concat!(stringify!($name), "::on_multi_thread"),
                        || run($crate::common::Driver::MultiThread),
                    );
                }
            }
        )*
    };
}

/// Yields to the scheduler until `cond()` holds. A real signal wait: the
/// condition is set by another task (never a wall-clock sleep).
pub async fn until(mut cond: impl FnMut() -> bool) {
    let mut spins: u64 = 0;
    while !cond() {
        spins += 1;
        assert!(
            spins < 50_000_000,
            "until(): condition never became true (the signalling task never ran)"
        );
        asupersync::yield_now().await;
    }
}

/// A one-shot gate built on std: `wait()` parks (no spinning, no polling)
/// until `open()` is called. It does not observe cancellation, so a task
/// parked on it behaves like one parked on a plain channel.
#[derive(Clone, Default)]
pub struct Gate(Arc<Mutex<(bool, Vec<Waker>)>>);

impl Gate {
    pub fn new() -> Self {
        Self::default()
    }

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

/// The text of a panic payload (`&str` or `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// Runs `f` expecting it to panic; returns the panic message.
pub fn expect_panic<R>(f: impl FnOnce() -> R) -> String {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic, but the call returned normally"),
        Err(payload) => panic_message(&*payload),
    }
}

/// Post-conditions every `block_on` must leave behind: nothing live.
pub fn assert_quiescent(rt: &Runtime) {
    assert_eq!(rt.live_tasks(), 0, "tasks outlived block_on");
    assert_eq!(rt.live_regions(), 0, "regions outlived block_on");
    assert_eq!(
        rt.pending_obligations(),
        0,
        "obligations still pending after block_on"
    );
    assert_eq!(
        rt.pending_timers(),
        0,
        "timers still registered after block_on"
    );
    let s = rt.stats();
    assert_eq!(
        s.tasks_spawned, s.tasks_completed,
        "every spawned task must complete: {s:?}"
    );
    assert_eq!(
        s.regions_created, s.regions_closed,
        "every region must close: {s:?}"
    );
}
