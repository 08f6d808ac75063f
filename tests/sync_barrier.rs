//! `sync::Barrier`: generations, leader election, cancellation.
//!
//! Rules under test (src/sync/barrier.rs): B1 generations release together
//! and the barrier is reusable; B2 exactly one leader per generation; B3 a
//! cancelled (or dropped) waiter withdraws its arrival, so a generation
//! still needs `n` live arrivals; B4 a waiter whose generation completed
//! returns `Ok` even if cancelled meanwhile; B5 arrival happens on the first
//! poll.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use asupersync::lab::{InjectionConfig, LabConfig, LabRuntime, SchedulePolicy, cancel_injection};
use asupersync::sync::{Barrier, BarrierWaitResult};
use asupersync::time::timeout;
use asupersync::{Cx, RuntimeBuilder, yield_now};
use support::{SOON, XorShift, for_each_driver, poll_once, with_watchdog, yield_until};

/// Yields until `cond` holds (lab-friendly: no wall clock).
async fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        yield_now().await;
    }
}

/// One observed `Ok` wait: (task, generation, leader).
type Arrival = (usize, u64, bool);

/// Every completed generation `< generations` has exactly `n` observed
/// arrivals from distinct tasks, exactly one of them the leader; no
/// arrival is observed for a later generation.
fn check_generations(arrivals: &[Arrival], n: usize, generations: u64) {
    let mut by_gen: BTreeMap<u64, Vec<(usize, bool)>> = BTreeMap::new();
    for &(task, g, leader) in arrivals {
        by_gen.entry(g).or_default().push((task, leader));
    }
    for g in 0..generations {
        let members = by_gen.remove(&g).unwrap_or_default();
        assert_eq!(
            members.len(),
            n,
            "generation {g} released {} observed waiters, expected {n}: {members:?}",
            members.len()
        );
        let leaders = members.iter().filter(|(_, l)| *l).count();
        assert_eq!(
            leaders, 1,
            "generation {g} has {leaders} leaders: {members:?}"
        );
        let mut tasks: Vec<_> = members.iter().map(|(t, _)| *t).collect();
        tasks.sort_unstable();
        tasks.dedup();
        assert_eq!(tasks.len(), n, "a task took part twice in generation {g}");
    }
    assert!(
        by_gen.is_empty(),
        "arrivals observed for generations that never completed: {by_gen:?}"
    );
}

// ===== semantics on both drivers ==========================================

#[test]
fn exactly_one_leader_is_elected_per_generation() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            const N: usize = 4;
            const ROUNDS: u64 = 10;
            let barrier = Arc::new(Barrier::new(N));
            let log = Arc::new(Mutex::new(Vec::new()));
            let mut handles = Vec::new();
            for t in 0..N {
                let (b, log) = (barrier.clone(), log.clone());
                handles.push(
                    cx.spawn(move |cx| async move {
                        for _ in 0..ROUNDS {
                            let r = b.wait(&cx).await.unwrap();
                            log.lock().unwrap().push((t, r.generation(), r.is_leader()));
                        }
                    })
                    .unwrap(),
                );
            }
            for h in handles {
                h.join(&cx).await.unwrap();
            }
            assert_eq!(barrier.generation(), ROUNDS, "[{name}]");
            assert_eq!(barrier.waiting(), 0, "[{name}]");
            check_generations(&log.lock().unwrap(), N, ROUNDS);
        });
    });
}

#[test]
fn the_barrier_releases_nobody_until_n_tasks_arrived_and_the_last_one_leads() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let barrier = Arc::new(Barrier::new(3));
            let mut handles = Vec::new();
            for _ in 0..2 {
                let b = barrier.clone();
                handles.push(
                    cx.spawn(move |cx| async move { b.wait(&cx).await })
                        .unwrap(),
                );
            }
            yield_until("two arrivals", SOON, || barrier.waiting() == 2).await;
            for _ in 0..50 {
                yield_now().await;
            }
            assert!(
                handles.iter().all(|h| !h.is_finished()),
                "[{name}] released early"
            );
            let last = barrier.wait(&cx).await.unwrap();
            assert!(last.is_leader(), "[{name}] the completing arrival leads");
            assert_eq!(last.generation(), 0);
            for h in handles {
                let r = h.join(&cx).await.unwrap().unwrap();
                assert_eq!((r.is_leader(), r.generation()), (false, 0), "[{name}]");
            }
            assert_eq!(barrier.generation(), 1);
        });
    });
}

#[test]
fn a_cancelled_waiter_leaves_the_count_so_the_barrier_still_needs_n_live_arrivals() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let barrier = Arc::new(Barrier::new(3));
            let spawn_waiter = |cx: &Cx| {
                let b = barrier.clone();
                cx.spawn(move |cx| async move { b.wait(&cx).await })
                    .unwrap()
            };
            let a = spawn_waiter(&cx);
            let b = spawn_waiter(&cx);
            yield_until("two arrivals", SOON, || barrier.waiting() == 2).await;
            a.abort();
            let joined = a.join(&cx).await;
            assert!(joined.unwrap_err().is_cancelled(), "[{name}]");
            assert_eq!(barrier.waiting(), 1, "[{name}] the cancelled waiter left");
            // The root's arrival makes 2 live arrivals of 3: still waiting.
            let mut root = Box::pin(barrier.wait(&cx));
            assert!(
                poll_once(&mut root).await.is_pending(),
                "[{name}] released with 2 of 3"
            );
            assert_eq!(barrier.waiting(), 2);
            let c = spawn_waiter(&cx);
            let r = root.await.unwrap();
            let rb = b.join(&cx).await.unwrap().unwrap();
            let rc = c.join(&cx).await.unwrap().unwrap();
            assert_eq!(
                [r.generation(), rb.generation(), rc.generation()],
                [0, 0, 0]
            );
            let leaders = [r, rb, rc].iter().filter(|x| x.is_leader()).count();
            assert_eq!(leaders, 1, "[{name}]");
            assert!(
                rc.is_leader(),
                "[{name}] the third live arrival completed it"
            );
        });
    });
}

#[test]
fn a_dropped_wait_withdraws_its_arrival() {
    for_each_driver(|_name, rt| {
        rt.block_on(|cx: Cx| async move {
            let barrier = Barrier::new(2);
            let mut w = Box::pin(barrier.wait(&cx));
            assert!(poll_once(&mut w).await.is_pending());
            assert_eq!(barrier.waiting(), 1);
            drop(w);
            assert_eq!(barrier.waiting(), 0);
            let mut again = Box::pin(barrier.wait(&cx));
            assert!(
                poll_once(&mut again).await.is_pending(),
                "one live arrival of 2"
            );
        });
    });
}

#[test]
fn a_wait_that_times_out_withdraws_its_arrival() {
    for_each_driver(|_name, rt| {
        rt.block_on(|cx: Cx| async move {
            let barrier = Barrier::new(2);
            let r = timeout(&cx, Duration::from_millis(3), barrier.wait(&cx)).await;
            assert!(r.is_err());
            assert_eq!(barrier.waiting(), 0);
            assert_eq!(barrier.generation(), 0);
        });
    });
}

#[test]
fn a_wait_future_arrives_on_its_first_poll_not_when_it_is_created() {
    for_each_driver(|_name, rt| {
        rt.block_on(|cx: Cx| async move {
            let barrier = Barrier::new(2);
            let created = barrier.wait(&cx);
            assert_eq!(barrier.waiting(), 0);
            drop(created);
            let mut first = Box::pin(barrier.wait(&cx));
            assert!(poll_once(&mut first).await.is_pending());
            assert_eq!(barrier.waiting(), 1);
            let second = barrier.wait(&cx).await.unwrap();
            assert!(second.is_leader());
            assert!(matches!(poll_once(&mut first).await, Poll::Ready(Ok(r)) if !r.is_leader()));
        });
    });
}

#[test]
fn a_barrier_of_one_or_zero_parties_never_blocks_and_every_wait_leads() {
    for_each_driver(|_name, rt| {
        rt.block_on(|cx: Cx| async move {
            for parties in [0, 1] {
                let barrier = Barrier::new(parties);
                for g in 0..3 {
                    let r = barrier.wait(&cx).await.unwrap();
                    assert!(r.is_leader());
                    assert_eq!(r.generation(), g);
                }
            }
        });
    });
}

#[test]
fn a_task_cancelled_before_it_arrives_never_arrives() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let barrier = Arc::new(Barrier::new(2));
            let b = barrier.clone();
            let gate = support::Gate::new();
            let g = gate.clone();
            let h = cx
                .spawn(move |cx| async move {
                    g.wait().await; // not cancel-aware: runs on after abort
                    b.wait(&cx).await
                })
                .unwrap();
            yield_now().await;
            h.abort();
            gate.open();
            let r = h.join(&cx).await;
            assert!(r.unwrap_err().is_cancelled(), "[{name}]");
            assert_eq!(
                barrier.waiting(),
                0,
                "[{name}] a cancelled task does not arrive"
            );
        });
    });
}

// ===== deterministic lab scenarios ========================================

#[test]
fn a_waiter_whose_generation_completed_returns_ok_even_if_cancelled_meanwhile() {
    for seed in 0..10 {
        let lab = LabRuntime::new(LabConfig::new(seed));
        let result = lab.block_on(|cx| async move {
            let barrier = Arc::new(Barrier::new(2));
            let seen = Arc::new(Mutex::new(None));
            let (b, s) = (barrier.clone(), seen.clone());
            let h = cx
                .spawn(move |cx| async move {
                    let r = b.wait(&cx).await;
                    *s.lock().unwrap() = Some(r.clone());
                    // The cancellation is seen at the next checkpoint.
                    assert!(cx.checkpoint().is_err());
                })
                .unwrap();
            until(|| barrier.waiting() == 1).await;
            // In one step: cancel the waiter, then complete its generation.
            h.abort();
            let leader = barrier.wait(&cx).await.unwrap();
            assert!(leader.is_leader());
            let _ = h.join(&cx).await;
            seen.lock().unwrap().take()
        });
        let r: Result<BarrierWaitResult, _> = result.expect("the waiter ran");
        let r = r.expect("B4: served wins over a later cancellation");
        assert!(!r.is_leader());
        assert_eq!(r.generation(), 0);
        lab.oracle_report().assert_passed();
    }
}

#[test]
fn waiters_are_released_in_arrival_order() {
    for seed in 0..10 {
        let lab = LabRuntime::new(LabConfig::new(seed).policy(SchedulePolicy::Fifo));
        let (arrived, released) = lab.block_on(|cx| async move {
            const K: usize = 5;
            let barrier = Arc::new(Barrier::new(K + 1));
            let arrived = Arc::new(Mutex::new(Vec::new()));
            let released = Arc::new(Mutex::new(Vec::new()));
            let mut handles = Vec::new();
            // Spawned in reverse so that arrival order is not spawn order.
            for i in (0..K).rev() {
                let (b, a, r) = (barrier.clone(), arrived.clone(), released.clone());
                handles.push(
                    cx.spawn(move |cx| async move {
                        for _ in 0..i {
                            yield_now().await;
                        }
                        a.lock().unwrap().push(i);
                        b.wait(&cx).await.unwrap();
                        r.lock().unwrap().push(i);
                    })
                    .unwrap(),
                );
            }
            until(|| barrier.waiting() == K).await;
            barrier.wait(&cx).await.unwrap();
            for h in handles {
                h.join(&cx).await.unwrap();
            }
            let a = arrived.lock().unwrap().clone();
            let r = released.lock().unwrap().clone();
            (a, r)
        });
        assert_eq!(arrived, vec![0, 1, 2, 3, 4], "seed {seed}");
        assert_eq!(released, arrived, "seed {seed}: woken in arrival order");
    }
}

/// Four workers, a barrier of three, three rounds each: twelve arrivals,
/// four generations when nobody is cancelled. Every wait has a (virtual)
/// timeout so that a generation left short by a cancelled worker times out
/// instead of deadlocking; a timed-out worker stops.
async fn injection_program(cx: Cx) {
    const WORKERS: usize = 4;
    const N: usize = 3;
    const ROUNDS: usize = 3;
    let barrier = Arc::new(Barrier::new(N));
    let arrivals = Arc::new(Mutex::new(Vec::<Arrival>::new()));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let timed_out = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for t in 0..WORKERS {
        let (b, log, c, to) = (
            barrier.clone(),
            arrivals.clone(),
            cancelled.clone(),
            timed_out.clone(),
        );
        handles.push(
            cx.spawn(move |cx| async move {
                for _ in 0..ROUNDS {
                    match timeout(&cx, Duration::from_millis(5), b.wait(&cx)).await {
                        Ok(Ok(r)) => log.lock().unwrap().push((t, r.generation(), r.is_leader())),
                        Ok(Err(_)) => {
                            c.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Err(_) => {
                            to.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                    yield_now().await;
                    if cx.checkpoint().is_err() {
                        c.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            })
            .unwrap(),
        );
    }
    for h in handles {
        let _ = h.join(&cx).await;
    }
    let arrivals = arrivals.lock().unwrap().clone();
    let generations = barrier.generation();
    check_generations(&arrivals, N, generations);
    assert_eq!(barrier.waiting(), 0, "a withdrawn arrival is still counted");
    // Virtual time only moves when every live worker is parked, so the
    // waits that time out are the members of one short generation: fewer
    // than N of them (N live arrivals would have been released).
    let timed_out = timed_out.load(Ordering::SeqCst);
    assert!(
        timed_out < N,
        "{timed_out} waits timed out in a generation of {N}"
    );
}

#[test]
fn cancellation_injected_at_every_await_point_keeps_n_live_arrivals_and_one_leader_per_generation()
{
    for seed in [1, 2, 3] {
        let report = cancel_injection(
            InjectionConfig::from_lab_config(LabConfig::new(seed).step_limit(100_000)),
            injection_program,
        );
        assert!(report.passed(), "{report}");
        assert!(report.points_tried().len() >= 12, "{report}");
    }
}

// ===== OS-thread stress ===================================================

/// Counts a task as finished however it ends.
struct DoneOnDrop(Arc<AtomicUsize>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Wraps a task body so that it is counted as finished however it ends —
/// including when it is cancelled before its first poll (the guard lives in
/// the future, not in the body).
fn counted<F: Future>(finished: Arc<AtomicUsize>, body: F) -> impl Future<Output = F::Output> {
    let done = DoneOnDrop(finished);
    async move {
        let _done = done;
        body.await
    }
}

#[test]
fn stress_on_four_worker_threads_with_random_aborts_keeps_one_leader_and_n_arrivals_per_generation()
{
    with_watchdog("barrier stress", || {
        let rt = RuntimeBuilder::new().worker_threads(4).build().unwrap();
        rt.block_on(|cx: Cx| async move {
            const TASKS: usize = 12;
            const N: usize = 4;
            const ROUNDS: usize = 1000;
            let barrier = Arc::new(Barrier::new(N));
            let arrivals = Arc::new(Mutex::new(Vec::<Arrival>::new()));
            let finished = Arc::new(AtomicUsize::new(0));
            let mut handles = Vec::new();
            for t in 0..TASKS {
                let (b, log, fin) = (barrier.clone(), arrivals.clone(), finished.clone());
                handles.push(
                    cx.spawn(move |cx| {
                        counted(fin, async move {
                            for _ in 0..ROUNDS {
                                match b.wait(&cx).await {
                                    Ok(r) => {
                                        log.lock().unwrap().push((t, r.generation(), r.is_leader()))
                                    }
                                    Err(_) => return,
                                }
                                if t % 3 == 0 {
                                    yield_now().await;
                                }
                            }
                        })
                    })
                    .unwrap(),
                );
            }
            let mut rng = XorShift::new(0xBA55);
            let mut aborted = 0;
            while finished.load(Ordering::SeqCst) < TASKS {
                // Random cancellation while the barrier is busy.
                if aborted < 3 && rng.chance(3) {
                    handles[rng.below(TASKS as u64) as usize].abort();
                    aborted += 1;
                }
                // Everyone left is parked at the barrier with fewer than N
                // live arrivals: nobody can complete the generation, so
                // cancel them (they withdraw and stop).
                let waiting = barrier.waiting();
                if waiting > 0 && finished.load(Ordering::SeqCst) + waiting == TASKS {
                    for h in &handles {
                        h.abort();
                    }
                }
                assert!(barrier.waiting() < N, "a full generation was not released");
                yield_now().await;
            }
            for h in handles {
                let _ = h.join(&cx).await;
            }
            assert_eq!(barrier.waiting(), 0);
            let arrivals = arrivals.lock().unwrap();
            check_generations(&arrivals, N, barrier.generation());
            assert!(
                barrier.generation() >= 100,
                "only {} generations",
                barrier.generation()
            );
        });
    });
}
