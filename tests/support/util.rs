//! Async and panic utilities, and a deterministic PRNG.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::SOON;

/// Yields to the scheduler until `cond()` holds. A real signal wait: the
/// condition is set by another task or thread (never a wall-clock sleep).
/// Fails after [`SOON`] (a hang detector only).
pub async fn until(cond: impl FnMut() -> bool) {
    yield_until("the condition", SOON, cond).await
}

/// Yields to the scheduler until `cond` holds; panics (naming `what`) if it
/// does not within `limit` of wall time (a hang detector: pass [`SOON`]).
pub async fn yield_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what} (the signalling side never ran?)"
        );
        asupersync::yield_now().await;
    }
}

/// Polls `fut` exactly once from inside a task and reports what it returned.
pub async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|tcx| Poll::Ready(Pin::new(&mut *fut).poll(tcx))).await
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
