//! `sync::Semaphore`: all-or-nothing FIFO acquisition with head-of-line
//! blocking, immediate errors for impossible requests (above
//! `MAX_PERMITS`; a gate waits: see `sync_semaphore_gate.rs`), close, add_permits
//! and forget accounting, permits as obligations, cancel-safe waits — on
//! both drivers, in the lab (cancellation injection at every await point,
//! obligation oracles) and under OS-thread stress with random aborts.

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use asupersync::lab::{InjectionConfig, LabConfig, LabRuntime, cancel_injection, oracle};
use asupersync::sync::semaphore::PERMIT_OBLIGATION;
use asupersync::sync::{AcquireError, Semaphore, TryAcquireError};
use asupersync::{Cx, RuntimeBuilder, TaskHandle, yield_now};
use support::{Gate, Log, counting_waker, until, wakes, with_watchdog};

async fn join_tolerating_cancel<T: Send + 'static>(cx: &Cx, h: TaskHandle<T>) -> Option<T> {
    match h.join(cx).await {
        Ok(v) => Some(v),
        Err(e) if e.is_cancelled() => None,
        Err(e) => panic!("task failed: {e:?}"),
    }
}

/// Spawns a task that acquires `n` permits, logs `name`, holds them until
/// `release` opens, and returns the acquisition's result; returns once the
/// task is queued.
async fn spawn_acquirer(
    cx: &Cx,
    sem: &Arc<Semaphore>,
    n: usize,
    name: &'static str,
    log: &Log,
    release: &Gate,
) -> TaskHandle<Result<(), AcquireError>> {
    let before = sem.waiters();
    let (sem2, log, release) = (sem.clone(), log.clone(), release.clone());
    let h = cx
        .spawn(move |cx| async move {
            let permit = sem2.acquire(&cx, n).await?;
            assert_eq!(permit.num_permits(), n);
            log.push(name);
            release.wait().await;
            Ok(())
        })
        .unwrap();
    let sem = sem.clone();
    until(move || sem.waiters() > before).await;
    h
}

fn open_gate() -> Gate {
    let g = Gate::new();
    g.open();
    g
}

on_both_drivers! {
    /// Acquiring takes permits, dropping returns them.
    fn permits_are_taken_and_returned(d: Driver) {
        d.rt().block_on(|cx| async move {
            let sem = Semaphore::new(5);
            let a = sem.acquire(&cx, 2).await.unwrap();
            let b = sem.try_acquire(&cx, 3).unwrap();
            assert_eq!(sem.available_permits(), 0);
            assert_eq!(sem.try_acquire(&cx, 1).unwrap_err(), TryAcquireError::NoPermits);
            drop(a);
            assert_eq!(sem.available_permits(), 2);
            drop(b);
            assert_eq!((sem.available_permits(), sem.total_permits()), (5, 5));
            let none = sem.acquire(&cx, 0).await.unwrap();
            assert_eq!(none.num_permits(), 0);
        });
    }

    /// All or nothing, strictly FIFO: a large request at the head is not
    /// overtaken by a small one behind it even though permits for the small
    /// one are free; nor by `try_acquire`.
    fn a_large_request_at_the_head_blocks_smaller_ones_behind_it(d: Driver) {
        d.rt().block_on(|cx| async move {
            let sem = Arc::new(Semaphore::new(4));
            let log = Log::new();
            let open = open_gate();
            let held = sem.acquire(&cx, 3).await.unwrap();
            let big = spawn_acquirer(&cx, &sem, 4, "big", &log, &open).await;
            let small = spawn_acquirer(&cx, &sem, 1, "small", &log, &open).await;
            assert_eq!(sem.available_permits(), 1);
            assert_eq!(sem.waiters(), 2, "the small one waits although 1 is free");
            assert!(format!("{sem:?}").contains("queued: [4, 1]"), "{sem:?}");
            assert_eq!(sem.try_acquire(&cx, 1).unwrap_err(), TryAcquireError::NoPermits);
            drop(held);
            big.join(&cx).await.unwrap().unwrap();
            small.join(&cx).await.unwrap().unwrap();
            assert_eq!(log.snapshot(), ["big", "small"]);
            assert_eq!(sem.available_permits(), 4);
        });
    }

    /// When the large head is cancelled, the small waiter behind it is
    /// served from the permits already free; the queue stays in order.
    fn a_cancelled_head_unblocks_the_waiters_behind_it(d: Driver) {
        d.rt().block_on(|cx| async move {
            let sem = Arc::new(Semaphore::new(4));
            let log = Log::new();
            let release = Gate::new();
            let held = sem.acquire(&cx, 2).await.unwrap();
            let big = spawn_acquirer(&cx, &sem, 4, "big", &log, &release).await;
            let s1 = spawn_acquirer(&cx, &sem, 1, "s1", &log, &release).await;
            let s2 = spawn_acquirer(&cx, &sem, 2, "s2", &log, &release).await;
            big.abort();
            assert!(big.join(&cx).await.unwrap_err().is_cancelled());
            let log2 = log.clone();
            until(move || log2.snapshot() == ["s1"]).await; // s1 served
            assert_eq!(sem.available_permits(), 1);
            assert_eq!(sem.waiters(), 1, "s2 (2) still waits: only 1 left");
            drop(held);
            release.open();
            s1.join(&cx).await.unwrap().unwrap();
            s2.join(&cx).await.unwrap().unwrap();
            assert_eq!(log.snapshot(), ["s1", "s2"]);
            assert_eq!(sem.available_permits(), 4);
        });
    }

    /// Permits granted to a waiting future that is dropped before it
    /// collected them go back and on to the next waiter (no leak, no
    /// obligation: it was never reserved).
    fn a_waiter_dropped_after_its_grant_passes_the_permits_on(d: Driver) {
        d.rt().block_on(|cx| async move {
            let sem = Arc::new(Semaphore::new(2));
            let log = Log::new();
            let held = sem.acquire(&cx, 2).await.unwrap();
            let mut first = Box::pin(sem.acquire(&cx, 2));
            assert!(first.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
            let next = spawn_acquirer(&cx, &sem, 1, "next", &log, &open_gate()).await;
            drop(held); // granted to `first`, which holds both
            assert_eq!(sem.available_permits(), 0);
            drop(first); // never collected: both go back, one on to `next`
            next.join(&cx).await.unwrap().unwrap();
            assert_eq!(log.snapshot(), ["next"]);
            assert_eq!(sem.available_permits(), 2);
        });
    }

    /// Asking for more than any semaphore can have is an immediate, clear
    /// error, never a hang (a request above the current total waits: S4).
    fn an_impossible_request_fails_at_once(d: Driver) {
        d.rt().block_on(|cx| async move {
            let sem = Semaphore::new(3);
            let _held = sem.acquire(&cx, 3).await.unwrap();
            let too_many = Semaphore::MAX_PERMITS + 1;
            let err = sem.acquire(&cx, too_many).await.unwrap_err();
            assert_eq!(
                err,
                AcquireError::TooMany { requested: too_many, max: Semaphore::MAX_PERMITS }
            );
            assert!(err.to_string().contains("MAX_PERMITS"), "{err}");
            assert_eq!(
                sem.try_acquire(&cx, too_many).unwrap_err(),
                TryAcquireError::TooMany { requested: too_many, max: Semaphore::MAX_PERMITS }
            );
            assert_eq!(sem.try_acquire(&cx, 4).unwrap_err(), TryAcquireError::NoPermits);
        });
    }

    /// Forgetting permits shrinks the total; a queued request larger than
    /// the new total keeps waiting at the head (blocking smaller ones,
    /// S2) until `add_permits` makes room (S4).
    fn forget_shrinks_the_total_and_a_larger_queued_request_waits_for_add_permits(d: Driver) {
        d.rt().block_on(|cx| async move {
            let sem = Arc::new(Semaphore::new(3));
            let log = Log::new();
            let release = open_gate();
            let p = sem.acquire(&cx, 2).await.unwrap();
            let three = spawn_acquirer(&cx, &sem, 3, "three", &log, &release).await;
            let one = spawn_acquirer(&cx, &sem, 1, "one", &log, &release).await;
            p.forget();
            assert_eq!((sem.total_permits(), sem.available_permits()), (1, 1));
            assert_eq!(sem.waiters(), 2, "nobody failed or overtook the head");
            sem.add_permits(2);
            three.join(&cx).await.unwrap().unwrap();
            one.join(&cx).await.unwrap().unwrap();
            assert_eq!(log.snapshot(), ["three", "one"]);
            assert_eq!((sem.total_permits(), sem.available_permits()), (3, 3));
        });
    }

    /// `add_permits` serves waiters in order, all or nothing.
    fn add_permits_serves_the_queue_in_order(d: Driver) {
        d.rt().block_on(|cx| async move {
            let sem = Arc::new(Semaphore::new(2));
            let log = Log::new();
            let open = open_gate();
            let held = sem.acquire(&cx, 2).await.unwrap();
            let two = spawn_acquirer(&cx, &sem, 2, "two", &log, &open).await;
            let one = spawn_acquirer(&cx, &sem, 1, "one", &log, &open).await;
            sem.add_permits(1);
            assert_eq!(sem.waiters(), 2, "the head needs 2");
            sem.add_permits(1);
            two.join(&cx).await.unwrap().unwrap();
            sem.add_permits(1);
            one.join(&cx).await.unwrap().unwrap();
            drop(held);
            assert_eq!(log.snapshot(), ["two", "one"]);
            assert_eq!((sem.total_permits(), sem.available_permits()), (5, 5));
        });
    }

    /// `close` fails every waiter and every later acquisition with
    /// `Closed`; held permits stay valid and still come back.
    fn close_wakes_every_waiter_with_closed(d: Driver) {
        d.rt().block_on(|cx| async move {
            let sem = Arc::new(Semaphore::new(2));
            let log = Log::new();
            let open = open_gate();
            let held = sem.acquire(&cx, 2).await.unwrap();
            let a = spawn_acquirer(&cx, &sem, 1, "a", &log, &open).await;
            let b = spawn_acquirer(&cx, &sem, 2, "b", &log, &open).await;
            sem.close();
            assert!(sem.is_closed());
            assert_eq!(a.join(&cx).await.unwrap(), Err(AcquireError::Closed));
            assert_eq!(b.join(&cx).await.unwrap(), Err(AcquireError::Closed));
            assert_eq!(sem.acquire(&cx, 1).await.unwrap_err(), AcquireError::Closed);
            assert_eq!(sem.try_acquire(&cx, 1).unwrap_err(), TryAcquireError::Closed);
            drop(held);
            assert_eq!(sem.available_permits(), 2);
            assert!(log.snapshot().is_empty());
        });
    }

    /// An owned permit is `'static` and can be dropped by another task (the
    /// acquiring task outlives it, so its obligation is not leaked).
    fn an_owned_permit_is_released_by_another_task(d: Driver) {
        d.rt().block_on(|cx| async move {
            let sem = Arc::new(Semaphore::new(1));
            let p = sem.clone().acquire_owned(&cx, 1).await.unwrap();
            assert!(Arc::ptr_eq(p.semaphore(), &sem));
            let h = cx.spawn(move |_cx| async move { drop(p) }).unwrap();
            h.join(&cx).await.unwrap();
            let q = sem.clone().try_acquire_owned(&cx, 1).unwrap();
            assert_eq!(q.num_permits(), 1);
        });
    }

    /// Every permit is an obligation: dropping aborts it, `forget` commits
    /// it, and none is pending afterwards.
    fn permits_are_obligations_aborted_on_drop_and_committed_by_forget(d: Driver) {
        let rt = d.rt();
        let before = rt.stats();
        rt.block_on(|cx| async move {
            let sem = Semaphore::new(3);
            let p = sem.acquire(&cx, 1).await.unwrap();
            assert!(format!("{p:?}").contains("obligation: Some"), "{p:?}");
            drop(p);
            sem.try_acquire(&cx, 1).unwrap().forget();
            assert_eq!(sem.total_permits(), 2);
        });
        let after = rt.stats();
        assert_eq!(after.obligations_aborted - before.obligations_aborted, 1);
        assert_eq!(after.obligations_committed - before.obligations_committed, 1);
        assert_eq!(after.obligations_leaked, 0);
        assert_eq!(rt.pending_obligations(), 0);
    }
}

// ===== the lab ===========================================================

#[test]
fn a_forgotten_permit_is_reported_as_an_obligation_leak() {
    let lab = LabRuntime::new(LabConfig::new(1));
    lab.block_on(|cx| async move {
        let sem = Arc::new(Semaphore::new(1));
        let sem2 = sem.clone();
        let h = cx
            .spawn(move |cx| async move {
                let p = sem2.acquire(&cx, 1).await.unwrap();
                std::mem::forget(p); // BUG: neither dropped nor forget()-ed
            })
            .unwrap();
        let err = h.join(&cx).await.unwrap_err();
        assert!(err.is_panicked(), "{err:?}");
        assert!(format!("{err:?}").contains("obligation leak"), "{err:?}");
    });
    let report = lab.oracle_report();
    let failed: Vec<&str> = report.failures().iter().map(|r| r.name).collect();
    assert_eq!(failed, [oracle::OBLIGATION_LEAKS], "{report}");
    let stats = lab.stats();
    assert_eq!(stats.obligations_leaked, 1);
    assert_eq!(stats.leaks[0].kind, PERMIT_OBLIGATION);
}

/// `n` tasks ask for 2 or 3 permits of 3 (so one holds at a time), after a
/// yield that lets the schedule pick the queue order. In the lab the order
/// they record before acquiring is the queue order.
async fn contend(cx: Cx, n: usize) -> (Vec<String>, Vec<String>) {
    let sem = Arc::new(Semaphore::new(3));
    let (queued, acquired) = (Log::new(), Log::new());
    let held = sem.acquire(&cx, 3).await.unwrap();
    let mut hs = Vec::new();
    for i in 0..n {
        let (sem, queued, acquired) = (sem.clone(), queued.clone(), acquired.clone());
        hs.push(
            cx.spawn(move |cx| async move {
                yield_now().await;
                queued.push(i.to_string());
                let _p = sem.acquire(&cx, 2 + i % 2).await.unwrap();
                acquired.push(i.to_string());
                yield_now().await;
            })
            .unwrap(),
        );
    }
    let sem2 = sem.clone();
    until(move || sem2.waiters() == n).await;
    drop(held);
    for h in hs {
        h.join(&cx).await.unwrap();
    }
    assert_eq!(sem.available_permits(), 3);
    (queued.snapshot(), acquired.snapshot())
}

#[test]
fn in_the_lab_waiters_are_served_in_exactly_the_order_they_queued() {
    let mut orders = std::collections::BTreeSet::new();
    for seed in 0..60 {
        let lab = LabRuntime::new(LabConfig::new(seed));
        let (queued, acquired) = lab.block_on(|cx| contend(cx, 5));
        assert_eq!(acquired, queued, "seed {seed}");
        lab.oracle_report().assert_passed();
        orders.insert(queued);
    }
    assert!(
        orders.len() > 10,
        "the seeds produced different queue orders"
    );
}

#[derive(Default)]
struct Seen {
    cancelled_waits: AtomicUsize,
}

const TOTAL: usize = 4;

/// Five tasks acquire 1..=3 permits of 4 (twice each), holding them across
/// an await, while one may be cancelled at any await point. Checks: never
/// more permits in use than exist; at the end every permit is back and no
/// waiter is left; the oracles check that no obligation leaked. (Queue
/// order is checked by `injected_fifo`, where grants cannot overlap.)
async fn injected_contention(cx: Cx, seen: Arc<Seen>) {
    let sem = Arc::new(Semaphore::new(TOTAL));
    let in_use = Arc::new(AtomicUsize::new(0));
    let mut hs = Vec::new();
    for i in 0..5usize {
        let (sem, in_use, seen) = (sem.clone(), in_use.clone(), seen.clone());
        hs.push(
            cx.spawn(move |cx| async move {
                for round in 0..2 {
                    let n = 1 + (i + round) % 3;
                    let permit = match sem.acquire(&cx, n).await {
                        Ok(p) => p,
                        Err(AcquireError::Cancelled(_)) => {
                            seen.cancelled_waits.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        Err(e) => panic!("unexpected {e}"),
                    };
                    let now = in_use.fetch_add(n, Ordering::SeqCst) + n;
                    assert!(now <= TOTAL, "{now} permits in use of {TOTAL}");
                    yield_now().await;
                    in_use.fetch_sub(n, Ordering::SeqCst);
                    drop(permit);
                    if cx.checkpoint().is_err() {
                        return;
                    }
                }
            })
            .unwrap(),
        );
    }
    for h in hs {
        join_tolerating_cancel(&cx, h).await;
    }
    assert_eq!(sem.available_permits(), TOTAL, "permits leaked");
    assert_eq!(sem.total_permits(), TOTAL);
    assert_eq!(sem.waiters(), 0, "waiter leaked");
}

#[test]
fn cancelling_at_every_await_point_leaks_no_permit_and_no_obligation() {
    let seen = Arc::new(Seen::default());
    let mut points = 0;
    for seed in [1, 2, 3, 4] {
        let s = seen.clone();
        let report = cancel_injection(InjectionConfig::new(seed), move |cx| {
            injected_contention(cx, s.clone())
        });
        assert!(report.passed(), "{report}");
        assert_eq!(report.points_tried(), report.points_found());
        points += report.points_tried().len();
    }
    let cancelled = seen.cancelled_waits.load(Ordering::Relaxed);
    eprintln!("semaphore injection: {points} points, {cancelled} cancelled waits");
    assert!(points >= 40, "only {points} await points");
    assert!(cancelled >= 4, "injection hit queued waits");
}

/// One holder and three queued waiters (3, 2, 2 permits of 3: no two can
/// hold at once, so the log order is the grant order); cancelling any one
/// of them at any await point leaves the others served in their queue
/// order, and every permit comes back.
async fn injected_fifo(cx: Cx) {
    let sem = Arc::new(Semaphore::new(3));
    let acquired = Log::new();
    let started = Arc::new(AtomicUsize::new(0));
    let held = sem.acquire(&cx, 3).await.unwrap();
    let mut hs = Vec::new();
    for (i, (name, n)) in [("a", 3), ("b", 2), ("c", 2)].into_iter().enumerate() {
        let (sem2, acquired, started2) = (sem.clone(), acquired.clone(), started.clone());
        hs.push(
            cx.spawn(move |cx| async move {
                // Counted in the same poll as the first `acquire` poll, so
                // the spawn order is the queue order.
                started2.fetch_add(1, Ordering::SeqCst);
                let Ok(_p) = sem2.acquire(&cx, n).await else {
                    return;
                };
                acquired.push(name);
                yield_now().await;
                let _ = cx.checkpoint();
            })
            .unwrap(),
        );
        let started3 = started.clone();
        until(move || started3.load(Ordering::SeqCst) > i).await;
    }
    drop(held);
    for h in hs {
        join_tolerating_cancel(&cx, h).await;
    }
    let got = acquired.snapshot();
    let expected: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|s| s.to_string())
        .filter(|s| got.contains(s))
        .collect();
    assert_eq!(got, expected, "FIFO order disturbed");
    assert!(
        got.len() >= 2,
        "only the cancelled one may be missing: {got:?}"
    );
    assert_eq!(sem.available_permits(), 3, "permits leaked");
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn cancelling_any_waiter_at_any_await_point_keeps_the_others_in_queue_order() {
    for seed in [5, 6, 7] {
        let report = cancel_injection(InjectionConfig::new(seed), injected_fifo);
        assert!(report.passed(), "{report}");
        assert!(report.points_tried().len() >= 6, "{report}");
    }
}

// ===== OS-thread stress ==================================================

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A minimal executor for a plain OS thread: parks until woken.
fn block_on_thread<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut task_cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut task_cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

#[test]
fn permit_accounting_holds_across_worker_and_plain_threads_with_random_aborts() {
    with_watchdog("semaphore stress", || {
        let rt = RuntimeBuilder::new().worker_threads(2).build().unwrap();
        let before = rt.stats();
        rt.block_on(|cx| async move {
            const PERMITS: usize = 5;
            let sem = Arc::new(Semaphore::new(PERMITS));
            let in_use = Arc::new(AtomicUsize::new(0));
            let grants = Arc::new(AtomicUsize::new(0));
            let hold = {
                let (in_use, grants) = (in_use.clone(), grants.clone());
                move |n: usize| {
                    let now = in_use.fetch_add(n, Ordering::SeqCst) + n;
                    assert!(now <= PERMITS, "{now} in use of {PERMITS}");
                    grants.fetch_add(1, Ordering::SeqCst);
                }
            };
            let unhold = {
                let in_use = in_use.clone();
                move |n: usize| {
                    in_use.fetch_sub(n, Ordering::SeqCst);
                }
            };
            let mut hs = Vec::new();
            for t in 0..32u64 {
                let (sem, hold, unhold) = (sem.clone(), hold.clone(), unhold.clone());
                hs.push(
                    cx.spawn(move |cx| async move {
                        let mut rng = XorShift(t + 1);
                        for _ in 0..200 {
                            let n = 1 + rng.below(PERMITS as u64) as usize;
                            let Ok(p) = sem.acquire(&cx, n).await else {
                                return;
                            };
                            hold(n);
                            if rng.below(3) == 0 {
                                yield_now().await;
                            }
                            unhold(n);
                            drop(p);
                        }
                    })
                    .unwrap(),
                );
            }
            let threads_done = Arc::new(AtomicUsize::new(0));
            for s in 0..2u64 {
                let (sem, cx, hold, unhold, threads_done) = (
                    sem.clone(),
                    cx.clone(),
                    hold.clone(),
                    unhold.clone(),
                    threads_done.clone(),
                );
                std::thread::spawn(move || {
                    let mut rng = XorShift(100 + s);
                    for _ in 0..500 {
                        let n = 1 + rng.below(PERMITS as u64) as usize;
                        let p = block_on_thread(sem.acquire(&cx, n)).unwrap();
                        hold(n);
                        unhold(n);
                        drop(p);
                    }
                    threads_done.fetch_add(1, Ordering::SeqCst);
                });
            }
            // Random aborts spread over the run (by work done), hitting
            // tasks that hold, wait for or are between acquisitions.
            let mut rng = XorShift(0xC0FFEE);
            for k in 1..=20 {
                while grants.load(Ordering::SeqCst) < k * 200 && !hs.iter().all(|h| h.is_finished())
                {
                    yield_now().await;
                }
                hs[rng.below(32) as usize].abort();
            }
            for h in hs {
                join_tolerating_cancel(&cx, h).await;
            }
            let td = threads_done.clone();
            until(move || td.load(Ordering::SeqCst) == 2).await;
            assert_eq!(sem.available_permits(), PERMITS, "permits leaked");
            assert_eq!(sem.waiters(), 0);
            assert_eq!(in_use.load(Ordering::SeqCst), 0);
            eprintln!("semaphore stress: {} grants", grants.load(Ordering::SeqCst));
        });
        let after = rt.stats();
        assert_eq!(
            after.obligations_leaked, before.obligations_leaked,
            "obligation leak"
        );
        assert_eq!(rt.pending_obligations(), 0);
    });
}

// ===== fast paths and hand-off accounting =================================

#[test]
fn released_permits_go_to_the_queue_not_to_newcomers_and_each_waiter_is_woken_once() {
    RuntimeBuilder::current_thread()
        .build()
        .unwrap()
        .block_on(|cx| async move {
            let sem = Semaphore::new(2);
            // Nobody queued: taken and returned without waiting.
            drop(sem.acquire(&cx, 2).await.unwrap());
            assert_eq!(sem.available_permits(), 2);

            let one = sem.acquire(&cx, 1).await.unwrap();
            let (ca, wa) = counting_waker();
            let (cb, wb) = counting_waker();
            let mut a = pin!(sem.acquire(&cx, 2));
            let mut b = pin!(sem.acquire(&cx, 1));
            assert!(a.as_mut().poll(&mut Context::from_waker(&wa)).is_pending());
            assert!(b.as_mut().poll(&mut Context::from_waker(&wb)).is_pending());
            assert_eq!(sem.waiters(), 2);
            // A permit is available, but a newcomer may not jump the queue.
            assert_eq!(sem.available_permits(), 1);
            assert!(matches!(
                sem.try_acquire(&cx, 1),
                Err(TryAcquireError::NoPermits)
            ));

            drop(one);
            assert_eq!((wakes(&ca), wakes(&cb)), (1, 0), "the head got both");
            assert_eq!(sem.available_permits(), 0);
            let Poll::Ready(Ok(pa)) = a.as_mut().poll(&mut Context::from_waker(&wa)) else {
                panic!("the grant was lost")
            };
            assert!(b.as_mut().poll(&mut Context::from_waker(&wb)).is_pending());
            drop(pa);
            assert_eq!((wakes(&ca), wakes(&cb)), (1, 1));
            assert_eq!(sem.waiters(), 0);
            assert_eq!(sem.available_permits(), 1, "one went to `b`");
            let Poll::Ready(Ok(pb)) = b.as_mut().poll(&mut Context::from_waker(&wb)) else {
                panic!("the grant was lost")
            };
            drop(pb);
            // The queue drained: newcomers take permits directly again.
            assert_eq!(sem.available_permits(), 2);
            drop(sem.try_acquire(&cx, 2).unwrap());
            assert_eq!((wakes(&ca), wakes(&cb)), (1, 1), "no stray wakes");
        });
}

#[test]
fn a_departing_last_waiter_reopens_the_fast_path_and_close_stops_it() {
    RuntimeBuilder::current_thread()
        .build()
        .unwrap()
        .block_on(|cx| async move {
            let sem = Semaphore::new(1);
            let held = sem.acquire(&cx, 1).await.unwrap();
            let (c, w) = counting_waker();
            {
                let mut a = pin!(sem.acquire(&cx, 1));
                assert!(a.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
                assert_eq!(sem.waiters(), 1);
            } // dropped while queued
            assert_eq!(sem.waiters(), 0);
            drop(held);
            assert_eq!(wakes(&c), 0);
            assert_eq!(sem.available_permits(), 1);
            let p = sem.try_acquire(&cx, 1).unwrap();
            drop(p);
            sem.close();
            assert!(matches!(
                sem.try_acquire(&cx, 1),
                Err(TryAcquireError::Closed)
            ));
            assert!(matches!(
                sem.acquire(&cx, 1).await,
                Err(AcquireError::Closed)
            ));
            assert!(matches!(
                sem.acquire(&cx, 2).await,
                Err(AcquireError::Closed)
            ));
            assert_eq!(
                sem.available_permits(),
                1,
                "a closed semaphore keeps its count"
            );
        });
}

#[test]
fn fast_and_queued_acquisitions_never_exceed_the_permits_on_two_workers() {
    with_watchdog("semaphore fast-path stress", || {
        for round in 0..3u64 {
            let rt = RuntimeBuilder::new().worker_threads(2).build().unwrap();
            rt.block_on(move |cx| async move {
                const PERMITS: usize = 3;
                let sem = Arc::new(Semaphore::new(PERMITS));
                let in_use = Arc::new(AtomicUsize::new(0));
                let mut hs = Vec::new();
                for t in 0..8u64 {
                    let (sem, in_use) = (sem.clone(), in_use.clone());
                    hs.push(
                        cx.spawn(move |cx| async move {
                            let mut rng = XorShift(round * 100 + t + 1);
                            for _ in 0..1_000 {
                                let n = 1 + rng.below(PERMITS as u64) as usize;
                                let p = if rng.below(8) == 0 {
                                    match sem.try_acquire(&cx, n) {
                                        Ok(p) => p,
                                        Err(_) => sem.acquire(&cx, n).await.unwrap(),
                                    }
                                } else {
                                    sem.acquire(&cx, n).await.unwrap()
                                };
                                let now = in_use.fetch_add(n, Ordering::SeqCst) + n;
                                assert!(now <= PERMITS, "{now} permits in use");
                                if rng.below(2) == 0 {
                                    yield_now().await;
                                }
                                in_use.fetch_sub(n, Ordering::SeqCst);
                                drop(p);
                            }
                        })
                        .unwrap(),
                    );
                }
                for h in hs {
                    h.join(&cx).await.unwrap();
                }
                assert_eq!(sem.waiters(), 0);
                assert_eq!(sem.available_permits(), PERMITS);
                assert_eq!(sem.total_permits(), PERMITS);
            });
            assert_eq!(rt.pending_obligations(), 0);
        }
    });
}

#[test]
fn a_waiter_failed_by_close_is_not_mistaken_for_one_served_before_it() {
    RuntimeBuilder::current_thread()
        .build()
        .unwrap()
        .block_on(|cx| async move {
            let sem = Semaphore::new(1);
            let held = sem.acquire(&cx, 1).await.unwrap();
            let (cs, ws) = counting_waker();
            let (cl, wl) = counting_waker();
            let mut served = pin!(sem.acquire(&cx, 1));
            let mut late = pin!(sem.acquire(&cx, 1));
            assert!(
                served
                    .as_mut()
                    .poll(&mut Context::from_waker(&ws))
                    .is_pending()
            );
            assert!(
                late.as_mut()
                    .poll(&mut Context::from_waker(&wl))
                    .is_pending()
            );
            // `served` gets the permit (its ticket is published), then the
            // close fails `late`, which sits after it.
            drop(held);
            assert_eq!(wakes(&cs), 1);
            sem.close();
            assert_eq!(wakes(&cl), 1);
            assert!(matches!(
                late.as_mut().poll(&mut Context::from_waker(&wl)),
                Poll::Ready(Err(AcquireError::Closed))
            ));
            let Poll::Ready(Ok(p)) = served.as_mut().poll(&mut Context::from_waker(&ws)) else {
                panic!("`served` got its permit before the close")
            };
            drop(p);
            assert_eq!(sem.available_permits(), 1);
        });
}
