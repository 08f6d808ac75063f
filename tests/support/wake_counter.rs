//! A waker that counts its wakes, for tests that prove each waiter is woken
//! exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};

/// Counts every wake of the wakers made by [`counting_waker`].
pub struct CountWakes(AtomicUsize);

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A fresh counter and a waker that bumps it.
pub fn counting_waker() -> (Arc<CountWakes>, Waker) {
    let c = Arc::new(CountWakes(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

/// How many times the counter's wakers were woken.
pub fn wakes(c: &CountWakes) -> usize {
    c.0.load(Ordering::SeqCst)
}
