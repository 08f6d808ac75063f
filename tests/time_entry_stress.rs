//! The timer entry protocol (TE1–TE6 in `src/time/entry.rs`) under
//! contention: workers arm, re-poll, drop and fire entries concurrently,
//! plain threads arm entries on a live task's `Cx`, and tasks are aborted
//! mid-sleep. Checked: every awaited sleep completes exactly once and never
//! early (T1), no completion is lost (a lost wake hangs, which the watchdog
//! turns into a failure), and no registration is left in the wheel (T3).

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use asupersync::prelude::Cancelled;
use asupersync::{Cx, Runtime, RuntimeBuilder, Time, time};
use support::{XorShift, assert_quiescent, poll_once, with_watchdog};

/// Completes once; a poll after completion fails the test ("exactly once").
struct Once<F> {
    // Boxed: timer futures are `!Unpin` (their entry lives in them).
    inner: Option<Pin<Box<F>>>,
}

impl<F: Future> Future for Once<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self
            .inner
            .as_mut()
            .expect("a timer future was polled after it completed");
        let out = inner.as_mut().poll(cx);
        if out.is_ready() {
            self.inner = None;
        }
        out
    }
}

fn once<F>(f: F) -> Once<F> {
    Once {
        inner: Some(Box::pin(f)),
    }
}

#[derive(Default)]
struct Totals {
    slept: AtomicU64,
    dropped: AtomicU64,
    timeouts_elapsed: AtomicU64,
    timeouts_won: AtomicU64,
    ticks: AtomicU64,
    rounds: AtomicU64,
}

const ROUNDS: u64 = 24;

/// One task's rounds: sleeps awaited to the end, sleeps armed and dropped,
/// timeouts that elapse or are beaten, interval ticks. Every completion is
/// checked against the clock (T1). An aborted task stops at the first wait
/// that observes its cancellation.
async fn rounds(cx: Cx, seed: u64, totals: Arc<Totals>) -> Result<(), Cancelled> {
    let mut rng = XorShift::new(seed);
    for _ in 0..ROUNDS {
        let micros = rng.below(2_500);
        let d = Duration::from_micros(micros);
        match rng.below(5) {
            0 | 1 => {
                let deadline = cx.now() + d;
                once(time::sleep_until(&cx, deadline)).await?;
                assert!(cx.now() >= deadline, "T1: a sleep completed early");
                totals.slept.fetch_add(1, Ordering::Relaxed);
            }
            2 => {
                // Armed on its first poll, then dropped (T3), perhaps while
                // a worker is firing it.
                let mut s = Box::pin(time::sleep(&cx, d));
                if let Poll::Ready(r) = poll_once(&mut s).await {
                    r?;
                    assert!(cx.now() >= s.deadline(), "T1: a sleep completed early");
                }
                drop(s);
                asupersync::yield_now().await;
                totals.dropped.fetch_add(1, Ordering::Relaxed);
            }
            3 => {
                let long = time::sleep(&cx, Duration::from_secs(3600));
                let start = cx.now();
                match once(time::timeout(&cx, d, long)).await {
                    Err(_elapsed) => {}
                    Ok(r) => {
                        r?;
                        panic!("an hour-long sleep beat its timeout");
                    }
                }
                assert!(cx.now().duration_since(start) >= d, "T1: early timeout");
                totals.timeouts_elapsed.fetch_add(1, Ordering::Relaxed);
                let short = time::sleep(&cx, d);
                let r = once(time::timeout(&cx, Duration::from_secs(3600), short)).await;
                r.expect("the short sleep lost its timeout")?;
                totals.timeouts_won.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                let period = d.max(Duration::from_micros(100));
                let mut iv = time::interval(&cx, period);
                let first = iv.tick().await?;
                for k in 1..=3u32 {
                    let at = once(iv.tick()).await?;
                    assert!(cx.now() >= at, "T1: a tick came early");
                    assert!(at >= first + period * k, "ticks keep their schedule");
                }
                totals.ticks.fetch_add(3, Ordering::Relaxed);
            }
        }
        totals.rounds.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Spawns `tasks` round-runners, aborts every `abort_every`-th one while it
/// runs (mid-sleep, most likely), and checks the totals of the others.
fn storm(rt: &Runtime, tasks: u64, abort_every: u64, seed: u64) {
    let totals = Arc::new(Totals::default());
    let t = totals.clone();
    let (finished, aborted) = rt.block_on(move |cx: Cx| async move {
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let t = t.clone();
                cx.spawn(move |cx| rounds(cx, seed ^ (i + 1).wrapping_mul(0x9E37_79B9), t))
                    .expect("spawn")
            })
            .collect();
        // Let the storm get going, so the aborts land on armed sleeps.
        time::sleep(&cx, Duration::from_millis(2)).await.unwrap();
        let (mut finished, mut aborted) = (0u64, 0u64);
        for (i, h) in handles.into_iter().enumerate() {
            if (i as u64).is_multiple_of(abort_every) {
                h.abort();
            }
            match h.join(&cx).await {
                Ok(Ok(())) => finished += 1,
                Ok(Err(c)) => panic!("a task saw a cancellation it was not sent: {c}"),
                Err(e) => {
                    assert!(e.is_cancelled(), "a task failed: {e}");
                    aborted += 1;
                }
            }
        }
        (finished, aborted)
    });
    assert_eq!(finished + aborted, tasks);
    assert!(
        totals.rounds.load(Ordering::Relaxed) >= finished * ROUNDS,
        "a finished task skipped rounds"
    );
    assert_quiescent(rt); // includes: no timer left in the wheel (T3)
}

fn multi(workers: usize) -> Runtime {
    RuntimeBuilder::new()
        .worker_threads(workers)
        .build()
        .expect("runtime builds")
}

#[test]
fn sleeps_armed_dropped_and_fired_on_four_workers_each_complete_exactly_once() {
    with_watchdog("storm_four_workers", || {
        let rt = multi(4);
        for seed in 1..=8 {
            storm(&rt, 600, 7, seed);
        }
    });
}

#[test]
fn sleeps_armed_dropped_and_fired_on_the_current_thread_driver_each_complete_exactly_once() {
    with_watchdog("storm_current_thread", || {
        let rt = RuntimeBuilder::current_thread()
            .build()
            .expect("runtime builds");
        storm(&rt, 200, 5, 42);
    });
}

/// Unparks the plain thread that polls its sleeps.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor for one future on the calling (plain) thread.
fn run_here<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut tcx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut tcx) {
            return v;
        }
        std::thread::park();
    }
}

/// Plain threads arm, drop and await sleeps on the root task's `Cx` (rule
/// T4: the workers must see their deadlines) while worker tasks run their
/// own storm; every plain-thread sleep completes, never early.
#[test]
fn plain_threads_arming_sleeps_beside_a_worker_storm_lose_no_completion() {
    with_watchdog("plain_threads_beside_storm", || {
        let rt = multi(2);
        let done = Arc::new(AtomicU64::new(0));
        let d = done.clone();
        rt.block_on(move |cx: Cx| async move {
            let totals = Arc::new(Totals::default());
            let workers: Vec<_> = (0..100u64)
                .map(|i| {
                    let t = totals.clone();
                    cx.spawn(move |cx| rounds(cx, 0xABCD ^ i, t))
                        .expect("spawn")
                })
                .collect();
            let threads: Vec<_> = (0..4u64)
                .map(|p| {
                    let (c, done) = (cx.clone(), d.clone());
                    std::thread::spawn(move || {
                        let mut rng = XorShift::new(p + 11);
                        for _ in 0..50 {
                            let deadline: Time = c.now() + Duration::from_micros(rng.below(1_500));
                            if rng.chance(30) {
                                // Armed, then dropped before it fires.
                                let mut s = Box::pin(time::sleep_until(&c, deadline));
                                let _ = s.as_mut().poll(&mut Context::from_waker(Waker::noop()));
                                continue;
                            }
                            run_here(once(time::sleep_until(&c, deadline))).expect("not cancelled");
                            assert!(c.now() >= deadline, "T1: a sleep completed early");
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for h in workers {
                h.join(&cx)
                    .await
                    .expect("worker task")
                    .expect("not cancelled");
            }
            // The plain threads finish on their own; the root's `Cx` stays
            // live until they are joined (a blocking join off the runtime).
            let joined = asupersync::spawn_blocking(&cx, move || {
                threads.into_iter().all(|t| t.join().is_ok())
            })
            .expect("spawn_blocking")
            .join(&cx)
            .await
            .expect("joined");
            assert!(joined, "a plain thread failed");
        });
        assert!(done.load(Ordering::Relaxed) > 0);
        assert_quiescent(&rt);
    });
}
