//! Contract 3, "panics never kill the runtime", for the user code the
//! runtime runs *outside* a future's poll: the drop of an output nobody
//! reads, the drop of a finalizer future or of the root future, a waker
//! the runtime wakes (a joiner's, a timer's), and futures left over when a
//! runtime is dropped. Each scenario runs on the current-thread runtime, the
//! multi-thread runtime and the lab, under a watchdog; afterwards the same
//! runtime must run a second `block_on` cleanly and be quiescent.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use asupersync::lab::{LabConfig, LabRuntime};
use asupersync::types::Outcome;
use asupersync::{Cx, time, yield_now};
use support::*;

/// Panics when dropped (outside an unwind, so a test never aborts).
struct Bomb(&'static str);

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("bomb: {}", self.0);
        }
    }
}

/// A future that is ready at once and panics when dropped.
struct BombFuture<T>(Option<T>, &'static str);

impl<T: Unpin> Future for BombFuture<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        Poll::Ready(self.0.take().expect("polled after completion"))
    }
}

impl<T> Drop for BombFuture<T> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("bomb: {}", self.1);
        }
    }
}

/// A waker that counts its wakes and then panics.
struct PanickingWaker(Counter);

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.incr();
        panic!("bomb: waker");
    }
}

/// The runtime still works: a second `block_on` with tasks, joins and a
/// timer, then nothing is left live.
fn assert_still_works(rt: &AnyRt) {
    let sum = rt.block_on(|cx: Cx| async move {
        let hs: Vec<_> = (0..10u64)
            .map(|i| {
                cx.spawn(move |c| async move {
                    yield_now().await;
                    time::sleep(&c, Duration::from_millis(1)).await.unwrap();
                    i
                })
                .unwrap()
            })
            .collect();
        let mut sum = 0;
        for h in hs {
            sum += h.join(&cx).await.unwrap();
        }
        sum
    });
    assert_eq!(sum, 45);
    if let AnyRt::Rt(r) = rt
        && r.worker_threads() == 2
    {
        // Both workers are alive: two tasks that can only finish together
        // (each blocks its worker until the other arrives).
        let barrier = Arc::new(std::sync::Barrier::new(2));
        rt.block_on(|cx: Cx| async move {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let b = barrier.clone();
                    cx.spawn(move |_| async move {
                        b.wait();
                    })
                    .unwrap()
                })
                .collect();
            for h in hs {
                h.join(&cx).await.unwrap();
            }
        });
    }
    rt.assert_quiescent();
}

fn panicked_with(outcome: &Outcome<(), ()>, text: &str) -> bool {
    matches!(outcome, Outcome::Panicked(p) if p.message().contains(text))
}

on_all_drivers! {
    after = assert_still_works;

    /// Issue 11 item 1: `drop(cx.spawn(|_| async { Bomb }))`, the handle
    /// dropped before the task completes. The discarded output's drop panic
    /// fails the task's region like an unjoined panic; the body goes on.
    fn output_dropped_by_the_runtime_panics(rt: &AnyRt) {
        let after_drop = Flag::new();
        let seen = after_drop.clone();
        let outcome = rt.block_on(|cx: Cx| async move {
            cx.region(|cx| async move {
                let gate = Gate::new();
                let g = gate.clone();
                drop(cx.spawn(move |_| async move {
                    g.wait().await;
                    Bomb("unread output")
                }).unwrap());
                gate.open();
                seen.set();
                Ok::<(), ()>(())
            }).await
        });
        assert!(after_drop.is_set());
        assert!(panicked_with(&outcome, "bomb: unread output"), "got {outcome:?}");
    }

    /// The same output dropped with its handle after the task completed:
    /// the drop panic is caught and fails the task's region; the code that
    /// dropped the handle goes on.
    fn output_dropped_with_a_late_handle_panics(rt: &AnyRt) {
        let after_drop = Flag::new();
        let seen = after_drop.clone();
        let outcome = rt.block_on(|cx: Cx| async move {
            cx.region(|cx| async move {
                let h = cx.spawn(|_| async { Bomb("late handle") }).unwrap();
                until(|| h.is_finished()).await;
                drop(h);
                seen.set();
                Ok::<(), ()>(())
            }).await
        });
        assert!(after_drop.is_set(), "dropping the handle must not unwind into its owner");
        assert!(panicked_with(&outcome, "bomb: late handle"), "got {outcome:?}");
    }

    /// A cancelled task's value (returned while cancelling, so discarded
    /// for its joiner) panics when dropped: the joiner sees `Cancelled`,
    /// the region fails.
    fn discarded_value_of_a_cancelled_task_panics(rt: &AnyRt) {
        let outcome = rt.block_on(|cx: Cx| async move {
            cx.region(|cx| async move {
                let started = Flag::new();
                let s = started.clone();
                let h = cx.spawn(move |c| async move {
                    s.set();
                    loop {
                        if c.checkpoint().is_err() {
                            return Bomb("cancelled value");
                        }
                        yield_now().await;
                    }
                }).unwrap();
                until(|| started.is_set()).await;
                h.abort();
                let joined = h.join(&cx).await;
                assert!(joined.as_ref().is_err_and(|e| e.is_cancelled()), "{:?}", joined.map(|_| ()));
                Ok::<(), ()>(())
            }).await
        });
        assert!(panicked_with(&outcome, "bomb: cancelled value"), "got {outcome:?}");
    }

    /// A joiner's waker that panics when the runtime wakes it on the joined
    /// task's completion: caught; the runtime and the joiner go on.
    fn a_joiners_waker_panics(rt: &AnyRt) {
        let v = rt.block_on(|cx: Cx| async move {
            let gate = Gate::new();
            let g = gate.clone();
            let h = cx.spawn(move |_| async move {
                g.wait().await;
                7
            }).unwrap();
            let wakes = Counter::new();
            let bad = Waker::from(Arc::new(PanickingWaker(wakes.clone())));
            let mut join = Box::pin(h.join(&cx));
            assert!(join.as_mut().poll(&mut Context::from_waker(&bad)).is_pending());
            gate.open();
            until(|| wakes.get() == 1).await;
            join.await.unwrap()
        });
        assert_eq!(v, 7);
    }

    /// A timer's waker that panics when the driver fires the timer.
    fn a_timer_waker_panics(rt: &AnyRt) {
        rt.block_on(|cx: Cx| async move {
            let wakes = Counter::new();
            let bad = Waker::from(Arc::new(PanickingWaker(wakes.clone())));
            let mut sleep = Box::pin(time::sleep(&cx, Duration::from_millis(1)));
            assert!(sleep.as_mut().poll(&mut Context::from_waker(&bad)).is_pending());
            // A later timer: when it fires, the first one has fired too (T1
            // and one `fire_timers` pass per driver turn; in the lab, time
            // jumps to each deadline in turn).
            time::sleep(&cx, Duration::from_millis(5)).await.unwrap();
            assert_eq!(wakes.get(), 1, "the panicking timer waker was not woken");
            assert!(sleep.await.is_ok());
        });
    }

    /// A finalizer future whose drop panics after it completed: the region
    /// is `Panicked` and the finalizers registered before it still run.
    fn a_finalizer_futures_drop_panics(rt: &AnyRt) {
        let log = Log::new();
        let l = log.clone();
        let outcome = rt.block_on(|cx: Cx| async move {
            cx.region(|cx| async move {
                let l2 = l.clone();
                cx.defer_sync(move || l2.push("earlier finalizer")).unwrap();
                cx.defer_async(BombFuture(Some(()), "finalizer future")).unwrap();
                Ok::<(), ()>(())
            }).await
        });
        assert!(panicked_with(&outcome, "bomb: finalizer future"), "got {outcome:?}");
        assert_eq!(log.snapshot(), ["earlier finalizer"]);
    }

    /// The root future's drop panics after it returned: `block_on` drains
    /// the root region, then resumes that panic.
    fn the_root_futures_drop_panics(rt: &AnyRt) {
        let msg = expect_panic(|| rt.block_on(|_cx: Cx| BombFuture(Some(5), "root future")));
        assert_eq!(msg, "bomb: root future");
    }
}

/// Futures still alive when a lab is dropped (a run abandoned while a task
/// waits forever) are dropped with it; a panic in one does not escape.
#[test]
fn leftover_futures_dropped_with_the_lab_may_panic() {
    with_watchdog("leftover_futures_dropped_with_the_lab_may_panic", || {
        let lab = LabRuntime::new(LabConfig::new(3));
        let dropped = Flag::new();
        let d = dropped.clone();
        let h = lab.spawn(move |_| async move {
            let _bomb = Bomb("leftover");
            let _flag = SetOnDrop(d);
            std::future::pending::<()>().await;
        });
        lab.run_until_idle();
        drop(h);
        drop(lab);
        assert!(dropped.is_set(), "the leftover future was not dropped");
    });
}
