//! `lab::explore` finds scheduling bugs within a bounded number of
//! schedules, and every reported seed replays its failure.

use std::collections::BTreeSet;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use asupersync::lab::{
    Access, Dependence, ExploreConfig, ExploreMode, ExploreReport, LabConfig, LabRuntime,
    declare_access, explore,
};
use asupersync::{Cx, yield_now};

// ----- programs --------------------------------------------------------

/// Two tasks read a shared counter, yield, and write back `read + 1`; the
/// second yields once first, so the FIFO order happens to pass. `fixed`
/// does the read-modify-write in one step.
async fn counter_program(cx: Cx, fixed: bool) {
    let counter = Arc::new(Mutex::new(0u32));
    let mut handles = Vec::new();
    for i in 0..2 {
        let counter = counter.clone();
        handles.push(
            cx.spawn(move |cx| async move {
                if i == 1 {
                    yield_now().await;
                }
                if fixed {
                    yield_now().await;
                    *counter.lock().unwrap() += 1;
                } else {
                    let read = *counter.lock().unwrap();
                    cx.trace(format!("read {read}"));
                    yield_now().await;
                    *counter.lock().unwrap() = read + 1;
                }
            })
            .unwrap(),
        );
    }
    for h in handles {
        h.join(&cx).await.unwrap();
    }
    assert_eq!(*counter.lock().unwrap(), 2, "lost update");
}

fn lost_update(cx: Cx) -> impl Future<Output = ()> {
    counter_program(cx, false)
}

fn fixed_counter(cx: Cx) -> impl Future<Output = ()> {
    counter_program(cx, true)
}

/// A one-shot flag with a waker slot, written by hand. The buggy waiter
/// checks the flag, yields, and then registers its waker *without checking
/// again*: a `set` in between finds no waker, and the waiter sleeps forever.
/// The setter yields once before setting, so the FIFO order passes.
#[derive(Default)]
struct Flag {
    set: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Flag {
    fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }
}

/// Registers the waker; with `recheck`, looks at the flag again after
/// registering (the fix).
struct WaitFlag {
    flag: Arc<Flag>,
    recheck: bool,
    registered: bool,
}

impl Future for WaitFlag {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.registered {
            return if self.flag.set.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                *self.flag.waker.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            };
        }
        *self.flag.waker.lock().unwrap() = Some(cx.waker().clone());
        self.registered = true;
        if self.recheck && self.flag.set.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

async fn wakeup_program(cx: Cx, recheck: bool) {
    let flag = Arc::new(Flag::default());
    let waiter = {
        let flag = flag.clone();
        cx.spawn(move |_cx| async move {
            if !flag.set.load(Ordering::SeqCst) {
                yield_now().await; // the window between check and register
                WaitFlag {
                    flag,
                    recheck,
                    registered: false,
                }
                .await;
            }
        })
        .unwrap()
    };
    let setter = {
        let flag = flag.clone();
        cx.spawn(move |_cx| async move {
            yield_now().await;
            flag.set();
        })
        .unwrap()
    };
    waiter.join(&cx).await.unwrap();
    setter.join(&cx).await.unwrap();
}

fn missed_wakeup(cx: Cx) -> impl Future<Output = ()> {
    wakeup_program(cx, false)
}

fn fixed_wakeup(cx: Cx) -> impl Future<Output = ()> {
    wakeup_program(cx, true)
}

/// An async mutex from a std mutex and a queue of wakers.
#[derive(Default)]
struct AsyncLock {
    state: Mutex<(bool, Vec<Waker>)>,
}

impl AsyncLock {
    fn lock(self: &Arc<Self>) -> LockFuture {
        LockFuture { lock: self.clone() }
    }

    fn unlock(&self) {
        let waiters = {
            let mut state = self.state.lock().unwrap();
            state.0 = false;
            std::mem::take(&mut state.1)
        };
        for w in waiters {
            w.wake();
        }
    }
}

struct LockFuture {
    lock: Arc<AsyncLock>,
}

impl Future for LockFuture {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock.state.lock().unwrap();
        if state.0 {
            state.1.push(cx.waker().clone());
            Poll::Pending
        } else {
            state.0 = true;
            Poll::Ready(())
        }
    }
}

/// Task A locks `a` then `b`; task B yields, then locks `b` then `a` (or,
/// fixed, `a` then `b`); each yields while holding its first lock. In FIFO
/// order A is done with both locks before B takes its first.
async fn locks_program(cx: Cx, fixed: bool) {
    let a = Arc::new(AsyncLock::default());
    let b = Arc::new(AsyncLock::default());
    let mut handles = Vec::new();
    for (i, swap) in [false, !fixed].into_iter().enumerate() {
        let (first, second) = if swap {
            (b.clone(), a.clone())
        } else {
            (a.clone(), b.clone())
        };
        handles.push(
            cx.spawn(move |_cx| async move {
                if i == 1 {
                    yield_now().await;
                }
                first.lock().await;
                yield_now().await;
                second.lock().await;
                second.unlock();
                first.unlock();
            })
            .unwrap(),
        );
    }
    for h in handles {
        h.join(&cx).await.unwrap();
    }
}

fn lock_order_deadlock(cx: Cx) -> impl Future<Output = ()> {
    locks_program(cx, false)
}

fn same_lock_order(cx: Cx) -> impl Future<Output = ()> {
    locks_program(cx, true)
}

/// A depth-2 ordering bug: task A sets `x` then, after a yield, `y`; task B
/// yields, then checks that `x` set implies `y` set. Only a preemption of A
/// between its two steps, with B running both its steps right then, breaks
/// it (in FIFO order B's check comes after A's second step).
async fn ordering_program(cx: Cx) {
    let state = Arc::new(Mutex::new((false, false)));
    let s = state.clone();
    let a = cx
        .spawn(move |_cx| async move {
            s.lock().unwrap().0 = true;
            yield_now().await;
            s.lock().unwrap().1 = true;
        })
        .unwrap();
    let s = state.clone();
    let b = cx
        .spawn(move |_cx| async move {
            yield_now().await;
            let (x, y) = *s.lock().unwrap();
            assert!(!x || y, "saw x without y");
        })
        .unwrap();
    a.join(&cx).await.unwrap();
    b.join(&cx).await.unwrap();
}

/// Runs `body` once under `config`; true if it panicked.
fn fails<F, Fut>(config: LabConfig, body: F) -> bool
where
    F: FnOnce(Cx) -> Fut,
    Fut: Future,
{
    catch_unwind(AssertUnwindSafe(|| {
        LabRuntime::new(config).block_on(body);
    }))
    .is_err()
}

/// The bug programs are written so that the plain FIFO order passes: the
/// bug needs a different interleaving.
fn assert_fifo_passes<F, Fut>(program: F)
where
    F: FnOnce(Cx) -> Fut,
    Fut: Future,
{
    let config = LabConfig::new(0).policy(asupersync::lab::SchedulePolicy::Fifo);
    assert!(!fails(config, program), "the FIFO order should pass");
}

fn assert_found(report: &ExploreReport, within: usize, what: &str) {
    assert!(!report.is_ok(), "{what} not found: {report}");
    assert!(
        report.failures()[0].run_index() < within,
        "{what} found only at run {}",
        report.failures()[0].run_index()
    );
}

// ----- finding seeded bugs --------------------------------------------

#[test]
fn a_lost_update_is_found_and_its_seed_replays_it() {
    assert_fifo_passes(lost_update);
    let report = explore(ExploreConfig::new().schedules(500), lost_update);
    assert_found(&report, 100, "lost update");
    let failure = &report.failures()[0];
    assert!(failure.message().contains("lost update"), "{failure}");
    // The seed alone reproduces it, through the plain lab API.
    let seed = failure.seed();
    let again = catch_unwind(|| {
        LabRuntime::new(LabConfig::new(seed)).block_on(lost_update);
    });
    let message = again.expect_err("the seed replays the failure");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("lost update"), "{message}");
}

#[test]
fn a_missed_wakeup_is_found_as_a_deadlock_and_its_seed_replays_it() {
    assert_fifo_passes(missed_wakeup);
    let report = explore(ExploreConfig::new().schedules(500), missed_wakeup);
    assert_found(&report, 100, "missed wakeup");
    let failure = &report.failures()[0];
    assert!(failure.message().contains("deadlock"), "{failure}");
    assert!(fails(LabConfig::new(failure.seed()), missed_wakeup));
}

#[test]
fn a_lock_order_deadlock_is_found_and_its_seed_replays_it() {
    assert_fifo_passes(lock_order_deadlock);
    let report = explore(ExploreConfig::new().schedules(500), lock_order_deadlock);
    assert_found(&report, 100, "lock-order deadlock");
    let failure = &report.failures()[0];
    assert!(failure.message().contains("deadlock"), "{failure}");
    assert!(fails(LabConfig::new(failure.seed()), lock_order_deadlock));
    // The exact config with the forced schedule replays it too.
    assert!(fails(failure.replay_config(), lock_order_deadlock));
}

#[test]
fn a_child_panic_nobody_joins_is_a_failure() {
    let report = explore(ExploreConfig::new().schedules(20), |cx| async move {
        drop(cx.spawn(|_cx| async { panic!("child failed") }).unwrap());
    });
    assert!(!report.is_ok());
    assert!(report.failures()[0].message().contains("child failed"));
}

#[test]
fn the_fixed_programs_pass_every_explored_schedule() {
    for (name, report) in [
        (
            "counter",
            explore(ExploreConfig::new().schedules(300), fixed_counter),
        ),
        (
            "wakeup",
            explore(ExploreConfig::new().schedules(300), fixed_wakeup),
        ),
        (
            "locks",
            explore(ExploreConfig::new().schedules(300), same_lock_order),
        ),
    ] {
        assert!(report.is_ok(), "{name}: {report}");
        assert_eq!(report.schedules_run(), 300, "{name}");
        assert!(report.distinct_traces() > 1, "{name}: {report}");
    }
}

#[test]
fn pct_mode_finds_a_depth_two_bug() {
    assert_fifo_passes(ordering_program);
    let report = explore(
        ExploreConfig::new()
            .schedules(300)
            .mode(ExploreMode::Pct { depth: 2 }),
        ordering_program,
    );
    assert_found(&report, 300, "depth-2 ordering bug");
    // PCT failures replay from their exact config.
    let failure = &report.failures()[0];
    assert!(fails(failure.config().clone(), ordering_program));
}

#[test]
fn pct_depth_one_never_preempts_so_it_misses_the_depth_two_bug() {
    let report = explore(
        ExploreConfig::new()
            .schedules(200)
            .mode(ExploreMode::Pct { depth: 1 }),
        ordering_program,
    );
    assert!(report.is_ok(), "{report}");
}

#[test]
fn mixed_mode_finds_the_lost_update() {
    let report = explore(
        ExploreConfig::new().schedules(300).mode(ExploreMode::Mixed),
        lost_update,
    );
    assert_found(&report, 300, "lost update");
    assert!(fails(report.failures()[0].config().clone(), lost_update));
}

// ----- counting and determinism ----------------------------------------

#[test]
fn a_racy_program_has_more_than_one_distinct_schedule() {
    let report = explore(
        ExploreConfig::new()
            .schedules(200)
            .stop_after_failures(usize::MAX),
        lost_update,
    );
    assert!(report.distinct_schedules() > 1, "{report}");
    assert!(report.distinct_traces() >= report.distinct_schedules());
}

#[test]
fn a_single_sequential_task_has_exactly_one_distinct_schedule() {
    let report = explore(ExploreConfig::new().schedules(100), |cx| async move {
        for i in 0..5 {
            cx.trace(format!("step {i}"));
            yield_now().await;
        }
    });
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.distinct_schedules(), 1);
    assert_eq!(report.distinct_traces(), 1);
}

#[test]
fn the_same_config_twice_gives_identical_reports() {
    let config = ExploreConfig::new()
        .schedules(200)
        .base_seed(42)
        .mode(ExploreMode::Mixed)
        .stop_after_failures(3);
    let a = explore(config.clone(), lost_update);
    let b = explore(config, lost_update);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(a.to_string(), b.to_string());
}

#[test]
fn exploration_stops_after_the_requested_number_of_failures() {
    let report = explore(
        ExploreConfig::new()
            .schedules(1000)
            .stop_after_failures(1)
            .minimize(false),
        lost_update,
    );
    assert_eq!(report.failures().len(), 1);
    assert_eq!(report.schedules_run(), report.failures()[0].run_index() + 1);
}

// ----- minimization ----------------------------------------------------

#[test]
fn minimization_yields_a_no_longer_schedule_that_still_fails_on_replay() {
    let report = explore(ExploreConfig::new().schedules(500), lost_update);
    let failure = &report.failures()[0];
    let min = failure.minimized().expect("minimized");
    assert!(min.schedule().len() <= failure.schedule().len());
    let original_switches = failure
        .schedule()
        .windows(2)
        .filter(|w| w[0] != w[1])
        .count();
    assert!(min.context_switches() <= original_switches);
    assert!(fails(min.config().clone(), lost_update));
    // Replaying the minimized schedule follows it exactly.
    let lab = LabRuntime::new(min.config().clone());
    let _ = catch_unwind(AssertUnwindSafe(|| lab.block_on(lost_update)));
    assert_eq!(lab.divergence(), None);
    assert_eq!(lab.schedule(), min.schedule());
}

#[test]
fn minimization_of_a_deadlock_keeps_it_a_deadlock() {
    let report = explore(ExploreConfig::new().schedules(500), lock_order_deadlock);
    let failure = &report.failures()[0];
    let min = failure.minimized().expect("minimized");
    assert!(min.schedule().len() <= failure.schedule().len());
    let lab = LabRuntime::new(min.config().clone());
    let err = catch_unwind(AssertUnwindSafe(|| lab.block_on(lock_order_deadlock)))
        .expect_err("still fails");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("deadlock"), "{msg}");
}

// ----- DPOR ------------------------------------------------------------

#[test]
fn dpor_finds_the_lost_update_without_annotations() {
    let report = explore(
        ExploreConfig::new()
            .schedules(500)
            .mode(ExploreMode::dpor()),
        lost_update,
    );
    assert!(!report.is_ok(), "{report}");
    assert!(fails(report.failures()[0].replay_config(), lost_update));
}

#[test]
fn dpor_exhausts_the_fixed_counter_and_reports_it() {
    let report = explore(
        ExploreConfig::new()
            .schedules(5000)
            .mode(ExploreMode::dpor()),
        fixed_counter,
    );
    assert!(report.is_ok(), "{report}");
    assert!(report.is_exhaustive(), "{report}");
    assert_eq!(report.unconfirmed_runs(), 0);
    // Opaque dependence: every run is a different dispatch order.
    assert_eq!(report.distinct_traces(), report.schedules_run());
}

#[test]
fn dpor_opaque_runs_exactly_the_dispatch_orders_random_sampling_finds() {
    let sampled: BTreeSet<Vec<u32>> = (0..2000u64)
        .map(|seed| {
            let lab = LabRuntime::new(LabConfig::new(seed));
            lab.block_on(fixed_counter);
            lab.schedule().iter().map(|t| t.index()).collect()
        })
        .collect();
    let report = explore(
        ExploreConfig::new()
            .schedules(5000)
            .mode(ExploreMode::dpor()),
        fixed_counter,
    );
    assert!(report.is_exhaustive(), "{report}");
    // Every DPOR run is a distinct dispatch order, and there are as many
    // as 2000 random seeds find (the space is small enough to saturate).
    assert_eq!(report.distinct_traces(), report.schedules_run());
    assert_eq!(report.schedules_run(), sampled.len(), "{report}");
}

fn dpor_finds_a_deadlock<F, Fut>(name: &str, program: F)
where
    F: Fn(Cx) -> Fut + Copy,
    Fut: Future<Output = ()>,
{
    let report = explore(
        ExploreConfig::new()
            .schedules(2000)
            .mode(ExploreMode::dpor()),
        program,
    );
    assert!(!report.is_ok(), "{name}: {report}");
    let failure = &report.failures()[0];
    assert!(failure.message().contains("deadlock"), "{name}: {failure}");
    assert!(fails(failure.replay_config(), program), "{name}");
}

#[test]
fn dpor_finds_the_missed_wakeup_and_the_lock_order_deadlock() {
    dpor_finds_a_deadlock("missed wakeup", missed_wakeup);
    dpor_finds_a_deadlock("lock order", lock_order_deadlock);
}

/// Two tasks that each do two steps on their own object (declared), or on
/// the same object.
async fn declared_program(cx: Cx, shared: bool) {
    let x = Arc::new(Mutex::new(0u32));
    let y = Arc::new(Mutex::new(0u32));
    let mut handles = Vec::new();
    for i in 0..2 {
        let cell = if shared || i == 0 {
            x.clone()
        } else {
            y.clone()
        };
        handles.push(
            cx.spawn(move |_cx| async move {
                for _ in 0..4 {
                    declare_access(&*cell, Access::Read);
                    let read = *cell.lock().unwrap();
                    yield_now().await;
                    declare_access(&*cell, Access::Write);
                    *cell.lock().unwrap() = read + 1;
                }
            })
            .unwrap(),
        );
    }
    for h in handles {
        h.join(&cx).await.unwrap();
    }
    assert_eq!(*x.lock().unwrap() + *y.lock().unwrap(), 8, "lost update");
}

#[test]
fn dpor_with_declared_accesses_explores_fewer_schedules_than_opaque_and_still_finds_the_race() {
    let declared = ExploreMode::Dpor {
        dependence: Dependence::Declared,
    };
    let independent = explore(ExploreConfig::new().schedules(5000).mode(declared), |cx| {
        declared_program(cx, false)
    });
    let opaque = explore(
        ExploreConfig::new()
            .schedules(5000)
            .mode(ExploreMode::dpor()),
        |cx| declared_program(cx, false),
    );
    assert!(independent.is_ok() && opaque.is_ok());
    assert!(independent.is_exhaustive() && opaque.is_exhaustive());
    assert!(
        independent.schedules_run() < opaque.schedules_run(),
        "declared {} vs opaque {}",
        independent.schedules_run(),
        opaque.schedules_run()
    );
    let racy = explore(ExploreConfig::new().schedules(5000).mode(declared), |cx| {
        declared_program(cx, true)
    });
    assert!(!racy.is_ok(), "{racy}");
}

// ----- quiet panics ----------------------------------------------------

#[test]
fn panics_on_other_threads_still_reach_the_previous_hook() {
    // Exploration installs its hook; a panic outside a run on this thread
    // must still be reported normally (it is caught here, so the test only
    // checks that exploring did not break `catch_unwind`).
    let _ = explore(ExploreConfig::new().schedules(5), lost_update);
    let outside = std::thread::spawn(|| panic!("outside exploration")).join();
    assert!(outside.is_err());
}

/// Tasks A and B increment `x` twice each (read, yield, write); task C
/// increments `y` once. Every access is declared. Records what each task
/// read and the final values.
async fn observed_program(cx: Cx, outcomes: Arc<Mutex<BTreeSet<String>>>) {
    let x = Arc::new(Mutex::new(0u32));
    let y = Arc::new(Mutex::new(0u32));
    let mut handles = Vec::new();
    for (cell, rounds) in [(x.clone(), 2), (x.clone(), 2), (y.clone(), 1)] {
        handles.push(
            cx.spawn(move |_cx| async move {
                let mut reads = Vec::new();
                for _ in 0..rounds {
                    declare_access(&*cell, Access::Read);
                    let read = *cell.lock().unwrap();
                    reads.push(read);
                    yield_now().await;
                    declare_access(&*cell, Access::Write);
                    *cell.lock().unwrap() = read + 1;
                }
                reads
            })
            .unwrap(),
        );
    }
    let mut seen = Vec::new();
    for h in handles {
        seen.push(h.join(&cx).await.unwrap());
    }
    let outcome = format!("{seen:?} x={} y={}", x.lock().unwrap(), y.lock().unwrap());
    outcomes.lock().unwrap().insert(outcome);
}

fn outcomes_under(mode: ExploreMode, schedules: usize) -> (BTreeSet<String>, ExploreReport) {
    let outcomes = Arc::new(Mutex::new(BTreeSet::new()));
    let o = outcomes.clone();
    let report = explore(
        ExploreConfig::new().schedules(schedules).mode(mode),
        move |cx| observed_program(cx, o.clone()),
    );
    let set = outcomes.lock().unwrap().clone();
    (set, report)
}

#[test]
fn dpor_with_declared_dependence_reaches_every_outcome_the_exhaustive_search_reaches() {
    let (all, opaque) = outcomes_under(ExploreMode::dpor(), 20_000);
    let (reduced, declared) = outcomes_under(
        ExploreMode::Dpor {
            dependence: Dependence::Declared,
        },
        20_000,
    );
    assert!(opaque.is_exhaustive() && declared.is_exhaustive());
    assert!(opaque.is_ok() && declared.is_ok());
    assert!(all.len() > 1, "{all:?}");
    assert_eq!(reduced, all);
    assert!(
        declared.schedules_run() * 3 < opaque.schedules_run(),
        "declared {} vs opaque {}",
        declared.schedules_run(),
        opaque.schedules_run()
    );
}

#[test]
fn seeded_random_exploration_reaches_only_outcomes_the_exhaustive_search_reaches() {
    let (all, _) = outcomes_under(ExploreMode::dpor(), 20_000);
    let (sampled, random) = outcomes_under(ExploreMode::Random, 3000);
    assert_eq!(random.schedules_run(), 3000);
    assert!(sampled.is_subset(&all), "{sampled:?} vs {all:?}");
}

/// Timers, a nested region with a finalizer, an aborted task and a
/// cancelled sleeper: everything the runnable-set reconstruction has to
/// follow.
async fn kernel_heavy_program(cx: Cx) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let sleeper = cx
        .spawn(move |cx| async move {
            let _ = asupersync::time::sleep(&cx, std::time::Duration::from_secs(10)).await;
            l.lock().unwrap().push("sleeper");
        })
        .unwrap();
    let l = log.clone();
    let outcome = cx
        .region(move |cx| async move {
            let l2 = l.clone();
            cx.defer_sync(move || l2.lock().unwrap().push("finalizer"))
                .unwrap();
            let a = cx
                .spawn(|cx| async move {
                    asupersync::time::sleep(&cx, std::time::Duration::from_millis(1))
                        .await
                        .unwrap();
                    yield_now().await;
                })
                .unwrap();
            let b = cx.spawn(|_cx| async { yield_now().await }).unwrap();
            a.join(&cx).await.unwrap();
            b.join(&cx).await.unwrap();
            Ok::<(), ()>(())
        })
        .await;
    assert!(outcome.is_ok(), "{outcome:?}");
    yield_now().await;
    sleeper.abort();
    let _ = sleeper.join(&cx).await;
}

#[test]
fn dpor_bookkeeping_matches_the_lab_on_timers_regions_finalizers_and_cancellation() {
    for dependence in [Dependence::Opaque, Dependence::Declared] {
        let report = explore(
            ExploreConfig::new()
                .schedules(3000)
                .mode(ExploreMode::Dpor { dependence }),
            kernel_heavy_program,
        );
        assert!(report.is_ok(), "{report}");
        assert!(report.is_exhaustive(), "{report}");
        assert_eq!(report.unconfirmed_runs(), 0, "{dependence:?}: {report}");
        assert!(report.schedules_run() > 1, "{report}");
        if dependence == Dependence::Opaque {
            // Every dispatch order, as many as random sampling saturates to.
            let sampled: BTreeSet<Vec<u32>> = (0..1000u64)
                .map(|seed| {
                    let lab = LabRuntime::new(LabConfig::new(seed));
                    lab.block_on(kernel_heavy_program);
                    lab.schedule().iter().map(|t| t.index()).collect()
                })
                .collect();
            assert_eq!(report.schedules_run(), sampled.len(), "{report}");
        }
    }
}
