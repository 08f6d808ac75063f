//! The lab runtime's API: the same programs as the production runtime,
//! virtual time, explicit driving (`spawn` / `run_until_idle` /
//! `run_until_quiescent` / `advance_time`), livelock and deadlock detection,
//! schedule policies, seeded randomness and the trace.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use asupersync::lab::{LabConfig, LabRuntime, SchedulePolicy};
use asupersync::time::{sleep, timeout};
use asupersync::trace::{
    CompletionKind, Resource, TraceEvent, TraceKind, canonical_fingerprint, schedule_fingerprint,
};
use asupersync::types::{CancelKind, CancelReason, RegionId, TaskId};
use asupersync::{Cx, Outcome, RuntimeBuilder, Time};

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_default()
}

fn kinds(lab: &LabRuntime) -> Vec<TraceKind> {
    lab.trace().into_iter().map(|e| e.kind).collect()
}

// ----- the same program on both runtimes ------------------------------------

/// Spawns, joins, regions, sleeps, a timeout, an abort and obligations; the
/// result does not depend on the schedule.
async fn program(cx: Cx) -> u64 {
    // Children that sleep a little and return a value.
    let hs: Vec<_> = (1..=5u64)
        .map(|i| {
            cx.spawn(move |cx| async move {
                sleep(&cx, Duration::from_millis(i)).await.unwrap();
                asupersync::yield_now().await;
                i * i
            })
            .unwrap()
        })
        .collect();
    let mut sum = 0;
    for h in hs {
        sum += h.join(&cx).await.unwrap();
    }
    // A region whose children are drained before it returns.
    let done = Arc::new(AtomicU64::new(0));
    let d = done.clone();
    let region = cx
        .region(move |cx| async move {
            for k in 0..3u64 {
                let d = d.clone();
                let _ = cx
                    .spawn(move |_| async move {
                        asupersync::yield_now().await;
                        d.fetch_add(10 + k, Ordering::SeqCst);
                    })
                    .unwrap();
            }
            Ok::<u64, ()>(100)
        })
        .await;
    let Outcome::Ok(from_region) = region else {
        panic!("region failed: {region:?}")
    };
    sum += from_region + done.load(Ordering::SeqCst);
    // A timeout that fires, and one that does not.
    let slow = timeout(&cx, Duration::from_millis(1), async {
        std::future::pending::<()>().await
    })
    .await;
    let fast = timeout(&cx, Duration::from_secs(60), async { 7u64 }).await;
    sum += u64::from(slow.is_err()) + fast.unwrap();
    // An aborted sleeper joins as cancelled.
    let sleeper = cx
        .spawn(|cx| async move { sleep(&cx, Duration::from_secs(3600)).await })
        .unwrap();
    asupersync::yield_now().await;
    sleeper.abort();
    let aborted = sleeper.join(&cx).await;
    sum += u64::from(aborted.is_err_and(|e| e.is_cancelled()));
    // Obligations: one committed, one aborted by drop.
    cx.reserve_obligation("reply").unwrap().commit();
    drop(cx.reserve_obligation("permit").unwrap());
    sum
}

const PROGRAM_RESULT: u64 = 55 + 100 + 33 + 1 + 7 + 1;

#[test]
fn lab_block_on_runs_the_same_program_as_the_production_runtimes() {
    let current = RuntimeBuilder::current_thread()
        .build()
        .unwrap()
        .block_on(program);
    let multi = RuntimeBuilder::new()
        .worker_threads(2)
        .build()
        .unwrap()
        .block_on(program);
    assert_eq!(current, PROGRAM_RESULT);
    assert_eq!(multi, PROGRAM_RESULT);
    for seed in 0..20 {
        let lab = LabRuntime::new(LabConfig::new(seed));
        assert_eq!(lab.block_on(program), PROGRAM_RESULT, "seed {seed}");
        let stats = lab.stats();
        assert_eq!(stats.tasks_spawned, stats.tasks_completed, "seed {seed}");
        assert_eq!(stats.regions_created, stats.regions_closed, "seed {seed}");
        assert_eq!(stats.obligations_committed, 1);
        assert_eq!(stats.obligations_aborted, 1);
        assert_eq!(stats.obligations_leaked, 0);
        assert!(lab.live_tasks().is_empty());
    }
}

// ----- virtual time ---------------------------------------------------------

#[test]
fn virtual_time_starts_at_zero_and_moves_only_by_timers() {
    let lab = LabRuntime::new(LabConfig::new(3));
    assert_eq!(lab.now(), Time::ZERO);
    let wall = Instant::now();
    let wakeups = lab.block_on(|cx| async move {
        assert_eq!(cx.now(), Time::ZERO);
        // Work that never sleeps does not move time.
        for _ in 0..100 {
            asupersync::yield_now().await;
        }
        assert_eq!(cx.now(), Time::ZERO);
        // 500 concurrent sleepers spread over an hour, each checking it woke
        // exactly at its deadline.
        let hs: Vec<_> = (0..500u64)
            .map(|i| {
                cx.spawn(move |cx| async move {
                    let d = Duration::from_millis((i * 7_919) % 3_600_000 + 1);
                    let start = cx.now();
                    sleep(&cx, d).await.unwrap();
                    assert_eq!(cx.now(), start + d, "sleeper {i} woke late or early");
                    cx.now()
                })
                .unwrap()
            })
            .collect();
        let mut ends = Vec::new();
        for h in hs {
            ends.push(h.join(&cx).await.unwrap());
        }
        ends
    });
    let latest = wakeups.iter().max().copied().unwrap();
    assert!(latest > Time::from_secs(3000), "{latest}");
    // Time stopped at the last deadline: no further tick was invented.
    assert_eq!(lab.now(), latest);
    // Virtual: the run took far less wall time than the hour it simulated
    // (a lab that really slept would take an hour; no bound on how fast a
    // loaded machine runs it).
    assert!(
        wall.elapsed() < latest.duration_since(Time::ZERO),
        "an hour of sleeps took {:?} of wall time",
        wall.elapsed()
    );
    // Every time step in the trace is a jump to a deadline that existed.
    let deadlines: BTreeSet<Time> = wakeups.into_iter().collect();
    for e in lab.trace() {
        if let TraceKind::TimeAdvance { to } = e.kind {
            assert!(
                deadlines.contains(&to),
                "time moved to {to}, not a deadline"
            );
        }
    }
}

#[test]
fn an_hour_of_sleeps_costs_no_wall_time() {
    let wall = Instant::now();
    let lab = LabRuntime::new(LabConfig::new(1));
    lab.block_on(|cx| async move {
        for _ in 0..3600 {
            sleep(&cx, Duration::from_secs(1)).await.unwrap();
        }
    });
    assert_eq!(lab.now(), Time::from_secs(3600));
    // A lab that really slept would take the hour; how fast a (loaded)
    // machine gets through the simulation is not bounded here.
    assert!(
        wall.elapsed() < Duration::from_secs(3600),
        "{:?}",
        wall.elapsed()
    );
}

#[test]
fn spawn_run_until_idle_advance_time_and_run_until_quiescent() {
    let lab = LabRuntime::new(LabConfig::new(9));
    let progress = Arc::new(AtomicU64::new(0));
    let p = progress.clone();
    let h = lab.spawn(move |cx| async move {
        p.store(1, Ordering::SeqCst);
        sleep(&cx, Duration::from_secs(10)).await.unwrap();
        p.store(2, Ordering::SeqCst);
        sleep(&cx, Duration::from_secs(10)).await.unwrap();
        p.store(3, Ordering::SeqCst);
        cx.now()
    });
    // Spawning runs nothing.
    assert_eq!(progress.load(Ordering::SeqCst), 0);
    // run_until_idle runs what is runnable and never moves time.
    assert!(lab.run_until_idle() > 0);
    assert_eq!(progress.load(Ordering::SeqCst), 1);
    assert_eq!(lab.now(), Time::ZERO);
    assert_eq!(lab.run_until_idle(), 0, "nothing is runnable");
    assert_eq!(lab.now(), Time::ZERO);
    // advance_time moves time and fires due timers, but runs nothing.
    lab.advance_time(Duration::from_secs(4));
    assert_eq!(lab.now(), Time::from_secs(4));
    assert_eq!(lab.run_until_idle(), 0, "the timer is not due yet");
    lab.advance_time(Duration::from_secs(6));
    assert_eq!(lab.now(), Time::from_secs(10));
    assert_eq!(
        progress.load(Ordering::SeqCst),
        1,
        "advance_time runs nothing"
    );
    assert!(lab.run_until_idle() > 0);
    assert_eq!(progress.load(Ordering::SeqCst), 2);
    assert!(!h.is_finished());
    // run_until_quiescent moves time to the next deadline and finishes.
    assert!(lab.run_until_quiescent() > 0);
    assert_eq!(progress.load(Ordering::SeqCst), 3);
    assert_eq!(lab.now(), Time::from_secs(20));
    assert!(h.is_finished());
    assert!(lab.live_tasks().is_empty());
    // The handle still joins (from a block_on on the same lab).
    let end = lab.block_on(move |cx| async move { h.join(&cx).await.unwrap() });
    assert_eq!(end, Time::from_secs(20));
}

#[test]
fn advance_time_past_several_deadlines_fires_them_all_at_once() {
    let lab = LabRuntime::new(LabConfig::new(2));
    let woke = Arc::new(Mutex::new(Vec::new()));
    for s in [3u64, 1, 2] {
        let woke = woke.clone();
        let _ = lab.spawn(move |cx| async move {
            sleep(&cx, Duration::from_secs(s)).await.unwrap();
            woke.lock().unwrap().push((s, cx.now()));
        });
    }
    lab.run_until_idle();
    lab.advance_time(Duration::from_secs(5));
    lab.run_until_idle();
    let mut woke = woke.lock().unwrap().clone();
    woke.sort();
    // All woke after the jump, at the time the lab was moved to.
    assert_eq!(
        woke,
        vec![
            (1, Time::from_secs(5)),
            (2, Time::from_secs(5)),
            (3, Time::from_secs(5))
        ]
    );
}

// ----- livelock and deadlock ------------------------------------------------

#[test]
fn the_step_limit_reports_a_livelock() {
    let lab = LabRuntime::new(LabConfig::new(4).step_limit(500));
    let err = catch_unwind(AssertUnwindSafe(|| {
        lab.block_on(|cx| async move {
            let spinner = cx
                .spawn(|_| async {
                    loop {
                        asupersync::yield_now().await;
                    }
                })
                .unwrap();
            let _ = spinner.join(&cx).await;
        })
    }))
    .unwrap_err();
    let msg = panic_message(&*err);
    assert!(
        msg.contains("step limit of 500 dispatches exceeded"),
        "{msg}"
    );
    assert!(msg.contains("seed 4"), "{msg}");
    assert_eq!(lab.steps(), 501);
}

#[test]
fn run_until_quiescent_has_the_same_step_limit() {
    let lab = LabRuntime::new(LabConfig::new(4).step_limit(100));
    let _ = lab.spawn(|_| async {
        loop {
            asupersync::yield_now().await;
        }
    });
    let err = catch_unwind(AssertUnwindSafe(|| lab.run_until_quiescent())).unwrap_err();
    assert!(panic_message(&*err).contains("step limit"));
}

/// A one-shot gate: `wait` completes once `open` was called.
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<(bool, Option<Waker>)>>);

impl Gate {
    fn open(&self) {
        let waker = {
            let mut g = self.0.lock().unwrap();
            g.0 = true;
            g.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn wait(&self) -> GateWait {
        GateWait(self.clone())
    }
}

struct GateWait(Gate);

impl Future for GateWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = (self.0).0.lock().unwrap();
        if g.0 {
            Poll::Ready(())
        } else {
            g.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[test]
fn a_handshake_deadlock_panics_and_lists_the_live_tasks() {
    for seed in 0..10 {
        let lab = LabRuntime::new(LabConfig::new(seed));
        let ids = Arc::new(Mutex::new(Vec::new()));
        let ids2 = ids.clone();
        let err = catch_unwind(AssertUnwindSafe(|| {
            lab.block_on(move |cx| async move {
                let (a_done, b_done) = (Gate::default(), Gate::default());
                // A waits for B before signalling, and B for A.
                let a = {
                    let (a_done, b_done) = (a_done.clone(), b_done.clone());
                    cx.spawn(move |_| async move {
                        b_done.wait().await;
                        a_done.open();
                    })
                    .unwrap()
                };
                let b = cx
                    .spawn(move |_| async move {
                        a_done.wait().await;
                        b_done.open();
                    })
                    .unwrap();
                ids2.lock().unwrap().extend([a.task_id(), b.task_id()]);
                let _ = a.join(&cx).await;
                let _ = b.join(&cx).await;
            })
        }))
        .unwrap_err();
        let msg = panic_message(&*err);
        assert!(msg.contains("deadlock"), "seed {seed}: {msg}");
        assert!(msg.contains("live tasks"), "seed {seed}: {msg}");
        for id in ids.lock().unwrap().iter() {
            assert!(
                msg.contains(&id.to_string()),
                "seed {seed}: {id} missing in {msg}"
            );
        }
        assert!(msg.contains(&format!("seed {seed}")), "{msg}");
    }
}

#[test]
fn a_join_cycle_is_a_deadlock() {
    type Slot = Arc<Mutex<Option<asupersync::TaskHandle<()>>>>;
    let lab = LabRuntime::new(LabConfig::new(11));
    let err = catch_unwind(AssertUnwindSafe(|| {
        lab.block_on(|cx| async move {
            let (slot_a, slot_b): (Slot, Slot) = Default::default();
            let a = {
                let slot_b = slot_b.clone();
                cx.spawn(move |cx| async move {
                    let b = slot_b.lock().unwrap().take().unwrap();
                    let _ = b.join(&cx).await;
                })
                .unwrap()
            };
            let b = {
                let slot_a = slot_a.clone();
                cx.spawn(move |cx| async move {
                    let a = slot_a.lock().unwrap().take().unwrap();
                    let _ = a.join(&cx).await;
                })
                .unwrap()
            };
            *slot_a.lock().unwrap() = Some(a);
            *slot_b.lock().unwrap() = Some(b);
        })
    }))
    .unwrap_err();
    let msg = panic_message(&*err);
    assert!(msg.contains("deadlock"), "{msg}");
    assert_eq!(lab.live_tasks().len(), 2, "{:?}", lab.live_tasks());
}

#[test]
fn run_until_quiescent_reports_a_deadlock_too() {
    let lab = LabRuntime::new(LabConfig::new(5));
    let gate = Gate::default();
    let g = gate.clone();
    let h = lab.spawn(move |_| async move { g.wait().await });
    let err = catch_unwind(AssertUnwindSafe(|| lab.run_until_quiescent())).unwrap_err();
    let msg = panic_message(&*err);
    assert!(msg.contains("deadlock"), "{msg}");
    assert!(msg.contains(&h.task_id().to_string()), "{msg}");
    // Not a permanent state: opening the gate lets it finish.
    gate.open();
    lab.run_until_quiescent();
    assert!(h.is_finished());
}

// ----- policies and workers -------------------------------------------------

/// Four tasks that each log three steps, yielding in between, plus a task
/// spawned mid-way. Returns the log.
async fn interleaving(cx: Cx) -> Vec<(u32, u32)> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut hs = Vec::new();
    for id in 0..4u32 {
        let log = log.clone();
        hs.push(
            cx.spawn(move |cx| async move {
                for step in 0..3 {
                    log.lock().unwrap().push((id, step));
                    if id == 1 && step == 1 {
                        let log = log.clone();
                        let _ = cx
                            .spawn(move |_| async move {
                                log.lock().unwrap().push((9, 0));
                                asupersync::yield_now().await;
                                log.lock().unwrap().push((9, 1));
                            })
                            .unwrap();
                    }
                    asupersync::yield_now().await;
                }
            })
            .unwrap(),
        );
    }
    for h in hs {
        h.join(&cx).await.unwrap();
    }
    // The grandchild is in the root region too; wait for it through a
    // fresh yield loop so the log is complete when we return.
    while log.lock().unwrap().len() < 14 {
        asupersync::yield_now().await;
    }
    log.lock().unwrap().clone()
}

#[test]
fn fifo_reproduces_the_current_thread_order() {
    let production = RuntimeBuilder::current_thread()
        .build()
        .unwrap()
        .block_on(interleaving);
    for seed in 0..10 {
        let lab = LabRuntime::new(LabConfig::new(seed).policy(SchedulePolicy::Fifo));
        assert_eq!(lab.block_on(interleaving), production, "seed {seed}");
    }
    // The round-robin order itself.
    assert_eq!(&production[..4], &[(0, 0), (1, 0), (2, 0), (3, 0)]);
}

#[test]
fn random_scheduling_explores_other_orders() {
    let fifo =
        LabRuntime::new(LabConfig::new(0).policy(SchedulePolicy::Fifo)).block_on(interleaving);
    let orders: BTreeSet<Vec<(u32, u32)>> = (0..30)
        .map(|seed| LabRuntime::new(LabConfig::new(seed)).block_on(interleaving))
        .collect();
    assert!(orders.len() > 5, "{} orders", orders.len());
    assert!(orders.iter().any(|o| *o != fifo));
}

#[test]
fn simulated_workers_run_programs_deterministically() {
    for workers in [1, 2, 4] {
        for seed in 0..10 {
            let run = || {
                let lab = LabRuntime::new(LabConfig::new(seed).workers(workers));
                let r = lab.block_on(program);
                (r, lab.trace_fingerprint())
            };
            let (r, fp) = run();
            assert_eq!(r, PROGRAM_RESULT, "workers {workers} seed {seed}");
            assert_eq!(run().1, fp, "workers {workers} seed {seed}");
        }
    }
    // Each worker runs its own queue in FIFO order, so with one worker the
    // schedule is the FIFO schedule.
    let one = LabRuntime::new(LabConfig::new(7).workers(1)).block_on(interleaving);
    let fifo =
        LabRuntime::new(LabConfig::new(7).policy(SchedulePolicy::Fifo)).block_on(interleaving);
    assert_eq!(one, fifo);
}

#[test]
fn pct_runs_programs_deterministically() {
    for seed in 0..10 {
        let cfg = || {
            LabConfig::new(seed).policy(SchedulePolicy::Pct {
                depth: 3,
                expected_steps: 100,
            })
        };
        let a = LabRuntime::new(cfg());
        assert_eq!(a.block_on(program), PROGRAM_RESULT);
        let b = LabRuntime::new(cfg());
        b.block_on(program);
        assert_eq!(a.trace(), b.trace(), "seed {seed}");
    }
}

// ----- seeded randomness and user trace events --------------------------------

fn draws(seed: u64) -> Vec<u64> {
    LabRuntime::new(LabConfig::new(seed)).block_on(|cx| async move {
        let mut v = vec![cx.random_u64(), cx.random_u64()];
        let h = cx
            .spawn(|cx| async move { (cx.random_u64(), cx.random_u64()) })
            .unwrap();
        let (a, b) = h.join(&cx).await.unwrap();
        v.extend([a, b, cx.random_u64()]);
        v
    })
}

#[test]
fn random_u64_is_deterministic_per_seed_and_differs_across_seeds() {
    for seed in 0..50 {
        assert_eq!(draws(seed), draws(seed), "seed {seed}");
    }
    let firsts: BTreeSet<Vec<u64>> = (0..50).map(draws).collect();
    assert_eq!(firsts.len(), 50, "two seeds drew the same numbers");
    // Not a constant stream within one run either.
    let d = draws(0);
    assert_eq!(d.iter().collect::<BTreeSet<_>>().len(), d.len());
}

#[test]
fn cx_trace_records_a_user_event() {
    let lab = LabRuntime::new(LabConfig::new(0));
    let (root, child) = lab.block_on(|cx| async move {
        cx.trace("from the root");
        let h = cx
            .spawn(|cx| async move {
                cx.trace(format!("child {}", 42));
                cx.task_id()
            })
            .unwrap();
        (cx.task_id(), h.join(&cx).await.unwrap())
    });
    let users: Vec<(TaskId, String)> = lab
        .trace()
        .into_iter()
        .filter_map(|e| match e.kind {
            TraceKind::User { task, message } => Some((task, message)),
            _ => None,
        })
        .collect();
    assert_eq!(
        users,
        vec![
            (root, "from the root".to_string()),
            (child, "child 42".to_string())
        ]
    );
}

// ----- the trace --------------------------------------------------------------

#[test]
fn the_trace_records_every_kind_of_kernel_event() {
    let lab = LabRuntime::new(LabConfig::new(21));
    type Ids = (TaskId, TaskId, TaskId, RegionId, RegionId);
    let ids: Ids = lab.block_on(|cx| async move {
        let root_region = cx.region_id();
        let sleeper = cx
            .spawn(|cx| async move {
                sleep(&cx, Duration::from_millis(5)).await.unwrap();
            })
            .unwrap();
        let victim = cx
            .spawn(|cx| async move { sleep(&cx, Duration::from_secs(60)).await })
            .unwrap();
        let (sleeper_id, victim_id) = (sleeper.task_id(), victim.task_id());
        sleeper.join(&cx).await.unwrap();
        victim.abort_with(CancelReason::user("stop"));
        assert!(victim.join(&cx).await.unwrap_err().is_cancelled());
        let child_region = Arc::new(Mutex::new(None));
        let cr = child_region.clone();
        let _ = cx
            .region(move |cx| async move {
                *cr.lock().unwrap() = Some(cx.region_id());
                let ob = cx.reserve_obligation("reply").unwrap();
                ob.commit();
                let ob = cx.reserve_obligation("permit").unwrap();
                ob.abort();
                Ok::<(), ()>(())
            })
            .await;
        let child_region = child_region.lock().unwrap().unwrap();
        (
            cx.task_id(),
            sleeper_id,
            victim_id,
            root_region,
            child_region,
        )
    });
    let (root, sleeper, victim, root_region, child_region) = ids;
    let trace = kinds(&lab);
    let has = |pred: &dyn Fn(&TraceKind) -> bool| trace.iter().any(pred);
    use TraceKind as K;
    assert!(has(
        &|k| matches!(k, K::Spawn { task, region } if *task == sleeper && *region == root_region)
    ));
    assert!(has(&|k| matches!(k, K::Poll { task } if *task == sleeper)));
    assert!(has(
        &|k| matches!(k, K::Pending { task } if *task == sleeper)
    ));
    assert!(has(&|k| matches!(k, K::Wake { task } if *task == sleeper)));
    assert!(has(
        &|k| matches!(k, K::Complete { task, outcome: CompletionKind::Ok } if *task == sleeper)
    ));
    assert!(has(
        &|k| matches!(k, K::CancelRequest { task, kind: CancelKind::User } if *task == victim)
    ));
    assert!(has(
        &|k| matches!(k, K::CancelAck { task, kind: CancelKind::User } if *task == victim)
    ));
    assert!(has(
        &|k| matches!(k, K::Complete { task, outcome: CompletionKind::Cancelled(CancelKind::User) } if *task == victim)
    ));
    assert!(has(
        &|k| matches!(k, K::RegionCreate { region, parent: None } if *region == root_region)
    ));
    assert!(has(
        &|k| matches!(k, K::RegionCreate { region, parent: Some(p) } if *region == child_region && *p == root_region)
    ));
    assert!(has(
        &|k| matches!(k, K::RegionClose { region } if *region == child_region)
    ));
    assert!(has(
        &|k| matches!(k, K::RegionClose { region } if *region == root_region)
    ));
    assert!(has(
        &|k| matches!(k, K::TimeAdvance { to } if *to == Time::from_millis(5))
    ));
    assert!(has(&|k| matches!(k, K::Poll { task } if *task == root)));
    // The two obligations: reserved by the root task in the child region,
    // one committed and one aborted.
    let reserved: Vec<_> = trace
        .iter()
        .filter_map(|k| match k {
            K::ObligationReserve {
                obligation,
                task,
                region,
            } => Some((*obligation, *task, *region)),
            _ => None,
        })
        .collect();
    assert_eq!(reserved.len(), 2);
    assert!(reserved.iter().all(|r| r.1 == root && r.2 == child_region));
    assert!(has(
        &|k| matches!(k, K::ObligationCommit { obligation } if *obligation == reserved[0].0)
    ));
    assert!(has(
        &|k| matches!(k, K::ObligationAbort { obligation } if *obligation == reserved[1].0)
    ));

    // Causal order within the trace.
    let pos = |pred: &dyn Fn(&TraceKind) -> bool| trace.iter().position(pred).unwrap();
    let last = |pred: &dyn Fn(&TraceKind) -> bool| trace.iter().rposition(pred).unwrap();
    assert!(
        pos(&|k| matches!(k, K::Spawn { task, .. } if *task == victim))
            < pos(&|k| matches!(k, K::Poll { task } if *task == victim))
    );
    assert!(
        pos(&|k| matches!(k, K::CancelRequest { task, .. } if *task == victim))
            < pos(&|k| matches!(k, K::CancelAck { task, .. } if *task == victim))
    );
    assert!(
        pos(&|k| matches!(k, K::CancelAck { task, .. } if *task == victim))
            < pos(&|k| matches!(k, K::Complete { task, .. } if *task == victim))
    );
    assert!(
        pos(&|k| matches!(k, K::RegionCreate { region, .. } if *region == child_region))
            < pos(&|k| matches!(k, K::ObligationReserve { .. }))
    );
    assert!(
        last(&|k| matches!(k, K::ObligationAbort { .. }))
            < pos(&|k| matches!(k, K::RegionClose { region } if *region == child_region))
    );
    // The root region is the last to close.
    assert!(
        pos(&|k| matches!(k, K::RegionClose { region } if *region == root_region))
            > last(&|k| matches!(k, K::Complete { .. }))
    );
    // seq numbers are positions; times never go backwards.
    let events = lab.trace();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64);
    }
    assert!(events.windows(2).all(|w| w[0].time <= w[1].time));
}

/// Three more programs for the determinism sweep.
async fn cancelling(cx: Cx) -> u64 {
    let mut hs = Vec::new();
    for i in 0..4u64 {
        hs.push(
            cx.spawn(move |cx| async move {
                let mut n = 0;
                while n < 20 && cx.checkpoint().is_ok() {
                    n += 1;
                    if sleep(&cx, Duration::from_millis(1 + i)).await.is_err() {
                        break;
                    }
                }
                n
            })
            .unwrap(),
        );
    }
    sleep(&cx, Duration::from_millis(10)).await.unwrap();
    let r = cx.random_u64() % 4;
    hs[r as usize].abort();
    let out = cx
        .region(|cx| async move {
            let _ = cx
                .spawn(|cx| async move { sleep(&cx, Duration::from_secs(1)).await })
                .unwrap();
            asupersync::yield_now().await;
            Err::<(), _>("fail fast")
        })
        .await;
    assert!(out.is_err());
    let mut total = 0;
    for h in hs {
        total += h.join(&cx).await.unwrap_or(1000);
    }
    total
}

async fn obligations(cx: Cx) -> u64 {
    let hs: Vec<_> = (0..3)
        .map(|i| {
            cx.spawn(move |cx| async move {
                for k in 0..3 {
                    let ob = cx.reserve_obligation("permit").unwrap();
                    asupersync::yield_now().await;
                    if (i + k) % 2 == 0 {
                        ob.commit();
                    } else {
                        drop(ob);
                    }
                }
                cx.trace(format!("worker {i} done"));
            })
            .unwrap()
        })
        .collect();
    for h in hs {
        h.join(&cx).await.unwrap();
    }
    cx.random_u64()
}

async fn racy(cx: Cx) -> Vec<(u32, u32)> {
    interleaving(cx).await
}

fn assert_reproducible<T, F, Fut>(name: &str, f: F)
where
    T: PartialEq + std::fmt::Debug,
    F: Fn(Cx) -> Fut,
    Fut: Future<Output = T>,
{
    let mut fingerprints = BTreeSet::new();
    for seed in 0..100 {
        let a = LabRuntime::new(LabConfig::new(seed));
        let ra = a.block_on(&f);
        let b = LabRuntime::new(LabConfig::new(seed));
        let rb = b.block_on(&f);
        assert_eq!(ra, rb, "{name}: seed {seed} result");
        assert_eq!(a.trace(), b.trace(), "{name}: seed {seed} trace");
        assert_eq!(a.trace_fingerprint(), b.trace_fingerprint());
        assert_eq!(a.canonical_fingerprint(), b.canonical_fingerprint());
        assert_eq!(a.schedule(), b.schedule());
        assert_eq!(a.now(), b.now());
        fingerprints.insert(a.trace_fingerprint());
    }
    assert!(
        fingerprints.len() > 10,
        "{name}: only {} distinct schedules in 100 seeds",
        fingerprints.len()
    );
}

#[test]
fn the_same_seed_gives_the_same_trace_for_every_program() {
    assert_reproducible("program", program);
    assert_reproducible("cancelling", cancelling);
    assert_reproducible("obligations", obligations);
    assert_reproducible("racy", racy);
}

// ----- canonical fingerprints -------------------------------------------------

/// The projection of a trace onto each resource: the sequence of events
/// that touch it (global events touch every resource). Two traces are
/// equivalent up to swapping adjacent independent events exactly when these
/// projections are equal.
fn projections(events: &[TraceEvent]) -> BTreeMap<Resource, Vec<TraceKind>> {
    let resources: BTreeSet<Resource> = events
        .iter()
        .filter_map(|e| e.kind.footprint())
        .flatten()
        .collect();
    let mut out: BTreeMap<Resource, Vec<TraceKind>> = BTreeMap::new();
    for e in events {
        match e.kind.footprint() {
            Some(fp) => {
                for r in fp {
                    out.entry(r).or_default().push(e.kind.clone());
                }
            }
            None => {
                for r in &resources {
                    out.entry(*r).or_default().push(e.kind.clone());
                }
            }
        }
    }
    out
}

/// Two independent children in the root region that do not interact.
async fn independent_children(cx: Cx) {
    for i in 0..2u32 {
        let _ = cx
            .spawn(move |cx| async move {
                cx.trace(format!("child {i} step 0"));
                asupersync::yield_now().await;
                cx.trace(format!("child {i} step 1"));
            })
            .unwrap();
    }
}

#[test]
fn canonical_fingerprints_identify_runs_up_to_independent_reorderings() {
    let runs: Vec<(u64, u64, Vec<TraceEvent>)> = (0..60)
        .map(|seed| {
            let lab = LabRuntime::new(LabConfig::new(seed));
            lab.block_on(independent_children);
            (
                lab.trace_fingerprint(),
                lab.canonical_fingerprint(),
                lab.trace(),
            )
        })
        .collect();
    // The seeds do produce different interleavings...
    let schedules: BTreeSet<u64> = runs.iter().map(|r| r.0).collect();
    assert!(schedules.len() > 1);
    // ...and the canonical fingerprint matches exactly when the runs are the
    // same up to reordering independent events.
    let mut merged = false;
    for a in &runs {
        for b in &runs {
            let equivalent = projections(&a.2) == projections(&b.2);
            assert_eq!(
                a.1 == b.1,
                equivalent,
                "canonical fingerprints disagree with trace equivalence"
            );
            merged |= equivalent && a.0 != b.0;
        }
    }
    assert!(
        merged,
        "no two different interleavings were recognised as equivalent"
    );
    // The schedule fingerprint is the plain hash of the trace.
    for r in &runs {
        assert_eq!(schedule_fingerprint(&r.2), r.0);
        assert_eq!(canonical_fingerprint(&r.2), r.1);
    }
}

fn ev(seq: u64, kind: TraceKind) -> TraceEvent {
    TraceEvent {
        seq,
        time: Time::ZERO,
        kind,
    }
}

#[test]
fn canonical_fingerprints_of_hand_built_traces() {
    let t = |i| TaskId::new_for_test(i, 0);
    let r = RegionId::new_for_test(0, 0);
    let poll = |i| TraceKind::Poll { task: t(i) };
    let pending = |i| TraceKind::Pending { task: t(i) };
    let spawn = |i| TraceKind::Spawn {
        task: t(i),
        region: r,
    };
    let build = |kinds: Vec<TraceKind>| -> Vec<TraceEvent> {
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, k)| ev(i as u64, k))
            .collect()
    };
    // Two tasks' polls interleaved differently after the same spawns.
    let a = build(vec![
        spawn(1),
        spawn(2),
        poll(1),
        pending(1),
        poll(2),
        pending(2),
    ]);
    let b = build(vec![
        spawn(1),
        spawn(2),
        poll(2),
        poll(1),
        pending(2),
        pending(1),
    ]);
    let c = build(vec![
        spawn(1),
        spawn(2),
        poll(2),
        pending(2),
        poll(1),
        pending(1),
    ]);
    assert_eq!(canonical_fingerprint(&a), canonical_fingerprint(&b));
    assert_eq!(canonical_fingerprint(&a), canonical_fingerprint(&c));
    assert_ne!(schedule_fingerprint(&a), schedule_fingerprint(&b));
    // Spawns share their region: their order matters.
    let d = build(vec![
        spawn(2),
        spawn(1),
        poll(1),
        pending(1),
        poll(2),
        pending(2),
    ]);
    assert_ne!(canonical_fingerprint(&a), canonical_fingerprint(&d));
    // A time step is a barrier: moving a poll across it changes the run.
    let adv = TraceKind::TimeAdvance {
        to: Time::from_secs(1),
    };
    let e = build(vec![spawn(1), spawn(2), poll(1), adv.clone(), poll(2)]);
    let f = build(vec![spawn(1), spawn(2), poll(2), adv, poll(1)]);
    assert_ne!(canonical_fingerprint(&e), canonical_fingerprint(&f));
    // Time itself is not part of the canonical fingerprint.
    let mut g = a.clone();
    for e in &mut g {
        e.time = Time::from_secs(9);
    }
    assert_eq!(canonical_fingerprint(&a), canonical_fingerprint(&g));
    assert_ne!(schedule_fingerprint(&a), schedule_fingerprint(&g));
}
