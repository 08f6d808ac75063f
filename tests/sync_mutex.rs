//! `sync::Mutex`: FIFO hand-off, no queue jumping, poisoning, owned guards,
//! cancel-safe waits — on both drivers, in the lab (deterministic FIFO,
//! cancellation injection at every await point, schedule exploration) and
//! under OS-thread stress with random aborts.

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use asupersync::lab::{
    ExploreConfig, ExploreMode, InjectionConfig, LabConfig, LabRuntime, cancel_injection, explore,
};
use asupersync::sync::{LockError, Mutex, TryLockError};
use asupersync::{Cx, RuntimeBuilder, TaskHandle, yield_now};
use support::{Gate, Log, Slot, counting_waker, until, wakes, with_watchdog};

/// Joins a task that may have been cancelled; any other failure fails the
/// test.
async fn join_tolerating_cancel<T: Send + 'static>(cx: &Cx, h: TaskHandle<T>) -> Option<T> {
    match h.join(cx).await {
        Ok(v) => Some(v),
        Err(e) if e.is_cancelled() => None,
        Err(e) => panic!("task failed: {e:?}"),
    }
}

/// Spawns a task that locks `m` and records `name` in `log` once it holds
/// the lock, then holds it until `release` opens; returns its handle once
/// it is queued (or holds the lock).
async fn spawn_locker(
    cx: &Cx,
    m: &Arc<Mutex<Vec<&'static str>>>,
    name: &'static str,
    log: &Log,
    release: &Gate,
) -> TaskHandle<Result<(), LockError>> {
    let before = m.waiters();
    let (m2, log, release) = (m.clone(), log.clone(), release.clone());
    let h = cx
        .spawn(move |cx| async move {
            let mut g = m2.lock(&cx).await?;
            log.push(name);
            g.push(name);
            release.wait().await;
            Ok(())
        })
        .unwrap();
    let m = m.clone();
    until(move || m.waiters() > before).await;
    h
}

// ===== semantics on both drivers =========================================

on_both_drivers! {
    /// Many tasks increment a counter, holding the lock across an await.
    fn the_lock_is_exclusive_across_awaits(d: Driver) {
        d.rt().block_on(|cx| async move {
            let m = Arc::new(Mutex::new(0u32));
            let inside = Arc::new(AtomicBool::new(false));
            let mut hs = Vec::new();
            for _ in 0..8 {
                let (m, inside) = (m.clone(), inside.clone());
                hs.push(cx.spawn(move |cx| async move {
                    for _ in 0..20 {
                        let mut g = m.lock(&cx).await.unwrap();
                        assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                        let read = *g;
                        yield_now().await;
                        *g = read + 1;
                        inside.store(false, Ordering::SeqCst);
                    }
                }).unwrap());
            }
            for h in hs {
                h.join(&cx).await.unwrap();
            }
            assert_eq!(*m.lock(&cx).await.unwrap(), 160);
            assert!(!m.is_locked());
        });
    }

    /// Waiters get the lock in the order they queued; unlocking hands it
    /// straight to the next one.
    fn waiters_are_served_in_queue_order(d: Driver) {
        d.rt().block_on(|cx| async move {
            let m = Arc::new(Mutex::new(Vec::new()));
            let log = Log::new();
            let open = Gate::new();
            open.open(); // waiters release at once
            let holder = m.lock(&cx).await.unwrap();
            let mut hs = Vec::new();
            for name in ["a", "b", "c", "d"] {
                hs.push(spawn_locker(&cx, &m, name, &log, &open).await);
            }
            drop(holder);
            for h in hs {
                h.join(&cx).await.unwrap().unwrap();
            }
            assert_eq!(log.snapshot(), ["a", "b", "c", "d"]);
            assert_eq!(*m.lock(&cx).await.unwrap(), ["a", "b", "c", "d"]);
        });
    }

    /// `try_lock` fails while anyone is queued, and a released lock goes to
    /// the queued waiter, not to a `try_lock` that comes after the release.
    fn try_lock_never_jumps_the_queue(d: Driver) {
        d.rt().block_on(|cx| async move {
            let m = Arc::new(Mutex::new(Vec::new()));
            let log = Log::new();
            let release = Gate::new();
            let holder = m.lock(&cx).await.unwrap();
            let waiter = spawn_locker(&cx, &m, "waiter", &log, &release).await;
            assert_eq!(m.try_lock().unwrap_err(), TryLockError::WouldBlock);
            drop(holder);
            // Handed over, not freed: no window for barging.
            assert!(m.is_locked());
            assert_eq!(m.try_lock().unwrap_err(), TryLockError::WouldBlock);
            assert!(m.clone().try_lock_owned().is_err());
            release.open();
            waiter.join(&cx).await.unwrap().unwrap();
            assert_eq!(log.snapshot(), ["waiter"]);
            assert!(m.try_lock().is_ok());
        });
    }

    /// Cancelling a queued waiter removes it; the waiters before and after
    /// it keep their order.
    fn a_cancelled_waiter_leaves_the_others_in_order(d: Driver) {
        d.rt().block_on(|cx| async move {
            let m = Arc::new(Mutex::new(Vec::new()));
            let log = Log::new();
            let open = Gate::new();
            open.open();
            let holder = m.lock(&cx).await.unwrap();
            let a = spawn_locker(&cx, &m, "a", &log, &open).await;
            let b = spawn_locker(&cx, &m, "b", &log, &open).await;
            let c = spawn_locker(&cx, &m, "c", &log, &open).await;
            b.abort();
            let err = b.join(&cx).await.unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
            assert_eq!(m.waiters(), 2);
            drop(holder);
            a.join(&cx).await.unwrap().unwrap();
            c.join(&cx).await.unwrap().unwrap();
            assert_eq!(log.snapshot(), ["a", "c"]);
            assert!(!m.is_locked());
        });
    }

    /// The lock was handed to a waiting future that is then dropped before
    /// it looked: the lock passes on to the next waiter (no leak).
    fn a_waiter_dropped_after_the_hand_off_passes_the_lock_on(d: Driver) {
        d.rt().block_on(|cx| async move {
            let m = Arc::new(Mutex::new(Vec::new()));
            let log = Log::new();
            let open = Gate::new();
            open.open();
            let holder = m.lock(&cx).await.unwrap();
            let mut first = Box::pin(m.lock(&cx));
            let mut task_cx = Context::from_waker(Waker::noop());
            assert!(first.as_mut().poll(&mut task_cx).is_pending());
            let next = spawn_locker(&cx, &m, "next", &log, &open).await;
            drop(holder); // handed to `first`
            assert!(m.is_locked());
            drop(first); // never collected: passes it on
            next.join(&cx).await.unwrap().unwrap();
            assert_eq!(log.snapshot(), ["next"]);
            assert!(!m.is_locked());
        });
    }

    /// A task whose cancellation is pending can still take a *free* lock
    /// (for cleanup), but does not wait for a held one.
    fn a_cancelled_task_takes_a_free_lock_but_does_not_wait(d: Driver) {
        d.rt().block_on(|cx| async move {
            let m = Arc::new(Mutex::new(0));
            let (parked, go, results) = (Gate::new(), Gate::new(), Slot::new());
            let (m2, parked2, go2, results2) = (m.clone(), parked.clone(), go.clone(), results.clone());
            let h = cx.spawn(move |cx| async move {
                parked2.open();
                go2.wait().await; // not cancel-aware: the request stays pending
                assert!(cx.is_cancel_requested());
                let free = m2.lock(&cx).await.map(|mut g| *g += 1);
                let held = m2.try_lock().unwrap();
                let blocked = m2.lock(&cx).await.map(drop);
                drop(held);
                results2.set((free, blocked));
            }).unwrap();
            parked.wait().await;
            h.abort();
            go.open();
            assert!(h.join(&cx).await.unwrap_err().is_cancelled());
            let (free, blocked) = results.take().unwrap();
            assert!(free.is_ok(), "a free lock is taken");
            assert!(blocked.unwrap_err().is_cancelled(), "a held lock is not waited for");
            assert_eq!(*m.lock(&cx).await.unwrap(), 1);
        });
    }

    /// A guard dropped while its task panics poisons the mutex: every
    /// queued waiter gets `Poisoned`, in order, without holding the lock;
    /// `lock_ignoring_poison` + `clear_poison` repair it.
    fn a_panicking_holder_poisons_the_mutex_until_cleared(d: Driver) {
        d.rt().block_on(|cx| async move {
            let m = Arc::new(Mutex::new(Vec::new()));
            let go = Gate::new();
            let (m2, go2) = (m.clone(), go.clone());
            let holder = cx.spawn(move |cx| async move {
                let mut g = m2.lock(&cx).await.unwrap();
                g.push("half-done");
                go2.wait().await;
                panic!("holder panics mid-update");
            }).unwrap();
            until(|| m.is_locked()).await;
            let log = Log::new();
            let open = Gate::new();
            open.open();
            let a = spawn_locker(&cx, &m, "a", &log, &open).await;
            let b = spawn_locker(&cx, &m, "b", &log, &open).await;
            go.open();
            assert!(holder.join(&cx).await.unwrap_err().is_panicked());
            assert_eq!(a.join(&cx).await.unwrap(), Err(LockError::Poisoned));
            assert_eq!(b.join(&cx).await.unwrap(), Err(LockError::Poisoned));
            assert!(log.snapshot().is_empty());
            assert!(m.is_poisoned());
            assert!(!m.is_locked(), "a poisoned lock is passed on, not kept");
            assert_eq!(m.try_lock().unwrap_err(), TryLockError::Poisoned);
            assert!(m.lock(&cx).await.unwrap_err().is_poisoned());
            {
                let mut g = m.lock_ignoring_poison(&cx).await.unwrap();
                assert_eq!(*g, ["half-done"]);
                g.clear();
                m.clear_poison();
            }
            assert!(m.lock(&cx).await.unwrap().is_empty());
        });
    }

    /// Cancellation is not a panic: a holder that is cancelled and drops
    /// its guard does not poison.
    fn a_cancelled_holder_does_not_poison(d: Driver) {
        d.rt().block_on(|cx| async move {
            let m = Arc::new(Mutex::new(0));
            let m2 = m.clone();
            let holder = cx.spawn(move |cx| async move {
                let _g = m2.lock(&cx).await.unwrap();
                let _ = asupersync::time::sleep(&cx, Duration::from_secs(3600)).await;
            }).unwrap();
            until(|| m.is_locked()).await;
            holder.abort();
            assert!(holder.join(&cx).await.unwrap_err().is_cancelled());
            assert!(!m.is_poisoned());
            *m.lock(&cx).await.unwrap() += 1;
        });
    }

    /// An owned guard is `'static`: it can move into another task, which
    /// releases the lock when it drops it.
    fn an_owned_guard_moves_into_another_task(d: Driver) {
        d.rt().block_on(|cx| async move {
            let m = Arc::new(Mutex::new(0u32));
            let mut g = m.clone().lock_owned(&cx).await.unwrap();
            *g += 1;
            let go = Gate::new();
            let go2 = go.clone();
            let h = cx.spawn(move |_cx| async move {
                go2.wait().await;
                *g += 1;
                drop(g);
            }).unwrap();
            assert!(m.try_lock().is_err());
            go.open();
            assert_eq!(*m.lock(&cx).await.unwrap(), 2);
            h.join(&cx).await.unwrap();
            let owned = m.clone().try_lock_owned().unwrap();
            assert_eq!(*owned, 2);
        });
    }
}

// ===== the lab: deterministic FIFO, injection, exploration ===============

/// `n` tasks contend for a lock the root holds; each records when it
/// queues (in the same poll as its first `lock` poll, so in the lab the
/// record order is the queue order) and when it gets the lock.
async fn contend(cx: Cx, n: usize) -> (Vec<String>, Vec<String>) {
    let m = Arc::new(Mutex::new(()));
    let (queued, acquired) = (Log::new(), Log::new());
    let holder = m.lock(&cx).await.unwrap();
    let mut hs = Vec::new();
    for i in 0..n {
        let (m, queued, acquired) = (m.clone(), queued.clone(), acquired.clone());
        hs.push(
            cx.spawn(move |cx| async move {
                yield_now().await; // let the schedule pick the queue order
                queued.push(i.to_string());
                let _g = m.lock(&cx).await.unwrap();
                acquired.push(i.to_string());
                yield_now().await;
            })
            .unwrap(),
        );
    }
    let m2 = m.clone();
    until(move || m2.waiters() == n).await;
    drop(holder);
    for h in hs {
        h.join(&cx).await.unwrap();
    }
    (queued.snapshot(), acquired.snapshot())
}

#[test]
fn in_the_lab_waiters_acquire_in_exactly_the_order_they_queued() {
    let mut orders = std::collections::BTreeSet::new();
    for seed in 0..60 {
        let (queued, acquired) =
            LabRuntime::new(LabConfig::new(seed)).block_on(|cx| contend(cx, 5));
        assert_eq!(acquired, queued, "seed {seed}");
        orders.insert(queued);
    }
    assert!(
        orders.len() > 10,
        "the seeds produced different queue orders"
    );
}

#[test]
fn the_same_seed_gives_the_same_queue_order_and_trace() {
    let run = |seed| {
        let lab = LabRuntime::new(LabConfig::new(seed));
        let out = lab.block_on(|cx| contend(cx, 4));
        (out, lab.trace_fingerprint())
    };
    assert_eq!(run(11), run(11));
}

/// Counts, across all runs of an injection, what the waits returned.
#[derive(Default)]
struct Seen {
    cancelled_waits: AtomicUsize,
    acquired: AtomicUsize,
}

/// Four tasks take the lock twice each, holding it across an await, while
/// one of them may be cancelled at any await point. Checks, at every step
/// and at the end: mutual exclusion, no lost update, the lock is free with
/// no waiter left, and those that acquired did so in queue order.
async fn injected_contention(cx: Cx, seen: Arc<Seen>) {
    let m = Arc::new(Mutex::new(0usize));
    let inside = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let (queued, acquired) = (Log::new(), Log::new());
    let mut hs = Vec::new();
    for i in 0..4 {
        let (m, inside, done, seen) = (m.clone(), inside.clone(), done.clone(), seen.clone());
        let (queued, acquired) = (queued.clone(), acquired.clone());
        hs.push(
            cx.spawn(move |cx| async move {
                for round in 0..2 {
                    let me = format!("{i}.{round}");
                    queued.push(me.clone());
                    let mut g = match m.lock(&cx).await {
                        Ok(g) => g,
                        Err(LockError::Cancelled(_)) => {
                            seen.cancelled_waits.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        Err(e) => panic!("unexpected {e}"),
                    };
                    seen.acquired.fetch_add(1, Ordering::Relaxed);
                    acquired.push(me);
                    assert!(
                        !inside.swap(true, Ordering::SeqCst),
                        "mutual exclusion violated"
                    );
                    let read = *g;
                    yield_now().await;
                    *g = read + 1;
                    done.fetch_add(1, Ordering::SeqCst);
                    inside.store(false, Ordering::SeqCst);
                    drop(g);
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
    assert!(!m.is_locked(), "lock leaked");
    assert_eq!(m.waiters(), 0, "waiter leaked");
    assert_eq!(
        *m.try_lock().unwrap(),
        done.load(Ordering::SeqCst),
        "lost update"
    );
    let acquired = acquired.snapshot();
    let in_queue_order: Vec<String> = queued
        .snapshot()
        .into_iter()
        .filter(|q| acquired.contains(q))
        .collect();
    assert_eq!(acquired, in_queue_order, "FIFO order disturbed");
}

#[test]
fn cancelling_at_every_await_point_never_breaks_exclusion_leaks_the_lock_or_reorders_waiters() {
    let seen = Arc::new(Seen::default());
    let mut points = 0;
    for seed in [1, 2, 3, 4] {
        let s = seen.clone();
        let report = cancel_injection(InjectionConfig::new(seed), move |cx| {
            injected_contention(cx, s.clone())
        });
        assert!(report.passed(), "{report}");
        assert_eq!(report.points_tried(), report.points_found());
        assert!(report.not_applied().is_empty(), "{report}");
        points += report.points_tried().len();
    }
    eprintln!(
        "mutex injection: {points} points, {} cancelled waits, {} acquisitions",
        seen.cancelled_waits.load(Ordering::Relaxed),
        seen.acquired.load(Ordering::Relaxed)
    );
    assert!(points >= 40, "only {points} await points");
    assert!(
        seen.cancelled_waits.load(Ordering::Relaxed) >= 4,
        "injection hit queued lock waits"
    );
}

/// Three tasks do read-yield-write on a counter. With `fixed`, the guard
/// is held across the yield; without, the lock is dropped in between.
async fn counter(cx: Cx, fixed: bool) {
    let m = Arc::new(Mutex::new(0u32));
    let mut hs = Vec::new();
    for _ in 0..3 {
        let m = m.clone();
        hs.push(
            cx.spawn(move |cx| async move {
                if fixed {
                    let mut g = m.lock(&cx).await.unwrap();
                    let read = *g;
                    yield_now().await;
                    *g = read + 1;
                } else {
                    let read = *m.lock(&cx).await.unwrap();
                    yield_now().await;
                    *m.lock(&cx).await.unwrap() = read + 1;
                }
            })
            .unwrap(),
        );
    }
    for h in hs {
        h.join(&cx).await.unwrap();
    }
    assert_eq!(*m.lock(&cx).await.unwrap(), 3, "lost update");
}

#[test]
fn explore_finds_the_lost_update_and_the_mutex_fixes_it_under_every_schedule() {
    let broken = explore(ExploreConfig::new().schedules(300).minimize(false), |cx| {
        counter(cx, false)
    });
    assert!(!broken.is_ok(), "the unlocked read-modify-write must fail");
    assert!(broken.failures()[0].message().contains("lost update"));

    let fixed = explore(
        ExploreConfig::new()
            .mode(ExploreMode::dpor())
            .schedules(20_000),
        |cx| counter(cx, true),
    );
    fixed.assert_ok();
    assert!(fixed.is_exhaustive(), "DPOR covered every schedule");
    assert!(fixed.schedules_run() > 1);
    eprintln!(
        "explore: broken found after {} schedules; fixed: {} schedules, {} distinct, exhaustive",
        broken.schedules_run(),
        fixed.schedules_run(),
        fixed.distinct_schedules()
    );
}

// ===== OS-thread stress ===================================================

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
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
fn mutual_exclusion_holds_across_worker_and_plain_threads_with_random_aborts() {
    with_watchdog("mutex stress", || {
        let rt = RuntimeBuilder::new().worker_threads(2).build().unwrap();
        rt.block_on(|cx| async move {
            let m = Arc::new(Mutex::new(0u64));
            let inside = Arc::new(AtomicUsize::new(0));
            let done = Arc::new(AtomicUsize::new(0));
            let cancelled = Arc::new(AtomicUsize::new(0));
            let critical = {
                let (inside, done) = (inside.clone(), done.clone());
                move |g: &mut u64| {
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    *g += 1;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            };
            let mut hs = Vec::new();
            for t in 0..32u64 {
                let (m, cancelled, critical) = (m.clone(), cancelled.clone(), critical.clone());
                hs.push(
                    cx.spawn(move |cx| async move {
                        let mut rng = XorShift(t + 1);
                        for _ in 0..200 {
                            let mut g = match m.lock(&cx).await {
                                Ok(g) => g,
                                Err(LockError::Cancelled(_)) => {
                                    cancelled.fetch_add(1, Ordering::Relaxed);
                                    return;
                                }
                                Err(e) => panic!("{e}"),
                            };
                            critical(&mut g);
                            if rng.below(4) == 0 {
                                yield_now().await; // hold across an await
                            }
                            drop(g);
                            if rng.below(2) == 0 {
                                yield_now().await;
                            }
                        }
                    })
                    .unwrap(),
                );
            }
            // Plain OS threads contend too, through the same waits.
            let threads_done = Arc::new(AtomicUsize::new(0));
            for _ in 0..2 {
                let (m, cx, critical, threads_done) = (
                    m.clone(),
                    cx.clone(),
                    critical.clone(),
                    threads_done.clone(),
                );
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        let mut g = block_on_thread(m.lock(&cx)).unwrap();
                        critical(&mut g);
                    }
                    threads_done.fetch_add(1, Ordering::SeqCst);
                });
            }
            // Random aborts spread over the run (by work done), hitting
            // tasks that hold, wait for or are between acquisitions.
            let mut rng = XorShift(0x5EED);
            for k in 1..=20 {
                while done.load(Ordering::SeqCst) < k * 200 && !hs.iter().all(|h| h.is_finished()) {
                    yield_now().await;
                }
                hs[rng.below(32) as usize].abort();
            }
            for h in hs {
                join_tolerating_cancel(&cx, h).await;
            }
            let td = threads_done.clone();
            until(move || td.load(Ordering::SeqCst) == 2).await;
            assert!(!m.is_locked() && m.waiters() == 0, "{m:?}");
            assert_eq!(*m.try_lock().unwrap() as usize, done.load(Ordering::SeqCst));
            eprintln!(
                "mutex stress: {} critical sections, {} waits cancelled",
                done.load(Ordering::SeqCst),
                cancelled.load(Ordering::Relaxed)
            );
        });
        assert_eq!(rt.pending_obligations(), 0);
    });
}

// ===== fast paths and hand-off accounting =================================

#[test]
fn the_uncontended_fast_path_and_the_hand_off_keep_fifo_and_wake_each_waiter_once() {
    RuntimeBuilder::current_thread()
        .build()
        .unwrap()
        .block_on(|cx| async move {
            let m = Mutex::new(0u32);
            // Free and unqueued: taken and released without waiting.
            *m.lock(&cx).await.unwrap() += 1;
            assert!(!m.is_locked() && m.waiters() == 0);

            let held = m.lock(&cx).await.unwrap();
            let (ca, wa) = counting_waker();
            let (cb, wb) = counting_waker();
            let mut a = pin!(m.lock(&cx));
            let mut b = pin!(m.lock(&cx));
            assert!(a.as_mut().poll(&mut Context::from_waker(&wa)).is_pending());
            assert!(b.as_mut().poll(&mut Context::from_waker(&wb)).is_pending());
            assert_eq!(m.waiters(), 2);
            assert_eq!(m.try_lock().unwrap_err(), TryLockError::WouldBlock);

            // Release: handed straight to `a` (never free in between, M2).
            drop(held);
            assert_eq!((wakes(&ca), wakes(&cb)), (1, 0));
            assert!(m.is_locked(), "handed over, not freed");
            assert_eq!(m.waiters(), 1);
            assert_eq!(m.try_lock().unwrap_err(), TryLockError::WouldBlock);
            // A re-poll of a waiter still queued neither wakes nor serves it.
            assert!(b.as_mut().poll(&mut Context::from_waker(&wb)).is_pending());
            assert_eq!(wakes(&cb), 0);

            let Poll::Ready(Ok(mut ga)) = a.as_mut().poll(&mut Context::from_waker(&wa)) else {
                panic!("the hand-off was lost")
            };
            *ga += 1;
            drop(ga);
            assert_eq!((wakes(&ca), wakes(&cb)), (1, 1));
            assert_eq!(m.waiters(), 0);
            assert!(m.is_locked(), "handed to `b`");
            let Poll::Ready(Ok(mut gb)) = b.as_mut().poll(&mut Context::from_waker(&wb)) else {
                panic!("the hand-off was lost")
            };
            *gb += 1;
            drop(gb);
            // The queue drained: the lock is free again and the fast path
            // takes it.
            assert!(!m.is_locked());
            assert_eq!(*m.try_lock().unwrap(), 3);
            assert_eq!((wakes(&ca), wakes(&cb)), (1, 1), "no stray wakes");
        });
}

#[test]
fn a_queued_waiter_that_leaves_lets_the_holder_free_the_lock() {
    RuntimeBuilder::current_thread()
        .build()
        .unwrap()
        .block_on(|cx| async move {
            let m = Mutex::new(());
            let held = m.lock(&cx).await.unwrap();
            let (c, w) = counting_waker();
            {
                let mut a = pin!(m.lock(&cx));
                assert!(a.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
                assert_eq!(m.waiters(), 1);
            } // dropped while queued
            assert_eq!(m.waiters(), 0);
            drop(held);
            assert!(!m.is_locked(), "nobody is queued: released, not handed");
            assert_eq!(wakes(&c), 0);
            assert!(m.try_lock().is_ok());
        });
}

#[test]
fn fast_and_queued_acquisitions_stay_exclusive_on_two_workers() {
    with_watchdog("mutex fast-path stress", || {
        for round in 0..3u64 {
            let rt = RuntimeBuilder::new().worker_threads(2).build().unwrap();
            rt.block_on(move |cx| async move {
                let m = Arc::new(Mutex::new(0u64));
                let inside = Arc::new(AtomicBool::new(false));
                let mut hs = Vec::new();
                for t in 0..8u64 {
                    let (m, inside) = (m.clone(), inside.clone());
                    hs.push(
                        cx.spawn(move |cx| async move {
                            let mut rng = XorShift(round * 100 + t + 1);
                            for _ in 0..2_000 {
                                let mut g = if rng.below(8) == 0 {
                                    match m.try_lock() {
                                        Ok(g) => g,
                                        Err(_) => m.lock(&cx).await.unwrap(),
                                    }
                                } else {
                                    m.lock(&cx).await.unwrap()
                                };
                                assert!(!inside.swap(true, Ordering::SeqCst), "two holders");
                                *g += 1;
                                inside.store(false, Ordering::SeqCst);
                                drop(g);
                                if rng.below(2) == 0 {
                                    yield_now().await;
                                }
                            }
                        })
                        .unwrap(),
                    );
                }
                for h in hs {
                    h.join(&cx).await.unwrap();
                }
                assert!(!m.is_locked() && m.waiters() == 0, "{m:?}");
                assert_eq!(*m.try_lock().unwrap(), 8 * 2_000);
            });
        }
    });
}
