//! Rule T4: a timer armed from a thread that runs no task (a plain thread
//! polling a sleep on a live task's `Cx`) fires on an idle runtime. Before
//! the rule, every driver was parked without that deadline in view, so the
//! sleep ended only when something else happened to wake the runtime.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use asupersync::channel::oneshot;
use asupersync::{Cx, time};

/// Unparks the plain thread that polls the sleep.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor for one future on the calling (plain) thread.
fn run_on_this_thread<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

on_both_drivers! {
    /// The root waits on a channel only the plain thread's sleep can fill.
    fn a_sleep_polled_by_a_plain_thread_fires_on_an_idle_runtime(d: Driver) {
            let rt = d.rt();
            rt.block_on(|cx: Cx| async move {
                let (tx, mut rx) = oneshot::channel();
                let c = cx.clone();
                let sleeper = std::thread::spawn(move || {
                    let start = c.now();
                    let slept = run_on_this_thread(time::sleep(&c, Duration::from_millis(30)));
                    let waited = c.now().duration_since(start);
                    tx.send((slept.is_ok(), waited)).ok();
                });
                // The root parks here: nothing in the runtime is runnable,
                // and no timer of its own is pending.
                let (slept, waited) = rx.recv(&cx).await.expect("the sleeper reports");
                sleeper.join().expect("the sleeper thread");
                assert!(slept, "the sleep was not cancelled");
                assert!(waited >= Duration::from_millis(30), "T1: never early");
            });
    }
}
