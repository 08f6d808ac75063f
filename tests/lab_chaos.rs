//! Chaos in the lab: seeded injection of cancellations, virtual delays,
//! spurious wakeups and budget exhaustion at poll boundaries, each recorded
//! as a `TraceKind::Chaos` event.
//!
//! Injections happen when the lab dispatches a spawned task (just before it
//! is polled); the root body of `block_on` is polled by `block_on` itself
//! and is never targeted, except by spurious wakeups (any live task).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use asupersync::lab::{ChaosConfig, LabConfig, LabRuntime};
use asupersync::time::{sleep, timeout};
use asupersync::trace::{TraceEvent, TraceKind};
use asupersync::types::CancelKind;
use asupersync::{Cx, Outcome, Time};

const KINDS: [&str; 4] = ["cancel", "delay", "spurious_wake", "budget_exhaustion"];

fn chaos_events(trace: &[TraceEvent]) -> Vec<(usize, asupersync::types::TaskId, &'static str)> {
    trace
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e.kind {
            TraceKind::Chaos { task, what } => Some((i, task, what)),
            _ => None,
        })
        .collect()
}

/// Workers that sleep, yield and check for cancellation, handling every
/// `Err`; returns how many finished their work.
async fn workload(cx: Cx) -> u64 {
    let hs: Vec<_> = (0..6u64)
        .map(|i| {
            cx.spawn(move |cx| async move {
                for step in 0..6u64 {
                    if sleep(&cx, Duration::from_millis(1 + (i + step) % 4))
                        .await
                        .is_err()
                    {
                        return false;
                    }
                    asupersync::yield_now().await;
                    if cx.checkpoint().is_err() {
                        return false;
                    }
                }
                true
            })
            .unwrap()
        })
        .collect();
    let mut finished = 0;
    for h in hs {
        if let Ok(true) = h.join(&cx).await {
            finished += 1;
        }
    }
    finished
}

fn run(config: LabConfig) -> (LabRuntime, u64) {
    let lab = LabRuntime::new(config);
    let r = lab.block_on(workload);
    (lab, r)
}

// ----- every kind is injected and recorded -------------------------------------

#[test]
fn heavy_chaos_injects_every_kind_and_records_it() {
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    for seed in 0..40 {
        let (lab, _) = run(LabConfig::new(seed).chaos(ChaosConfig::heavy()));
        for (_, _, what) in chaos_events(&lab.trace()) {
            *seen.entry(what).or_default() += 1;
        }
    }
    for kind in KINDS {
        assert!(
            seen.get(kind).copied().unwrap_or(0) > 0,
            "no {kind:?} injection in 40 heavy runs: {seen:?}"
        );
    }
}

#[test]
fn light_chaos_injects_less_than_heavy() {
    let count = |chaos: ChaosConfig| -> usize {
        (0..40)
            .map(|seed| {
                chaos_events(&run(LabConfig::new(seed).chaos(chaos.clone())).0.trace()).len()
            })
            .sum()
    };
    let (light, heavy) = (count(ChaosConfig::light()), count(ChaosConfig::heavy()));
    assert!(light > 0, "light chaos injected nothing in 40 runs");
    assert!(heavy > 3 * light, "light {light}, heavy {heavy}");
}

/// Only the given kind, with probability `p`.
fn only(kind: &str, p: f64) -> ChaosConfig {
    let mut c = ChaosConfig::off();
    match kind {
        "cancel" => c.cancel = p,
        "delay" => {
            c.delay = p;
            c.max_delay = Duration::from_millis(50);
        }
        "spurious_wake" => c.spurious_wake = p,
        "budget_exhaustion" => c.budget_exhaustion = p,
        _ => unreachable!(),
    }
    c
}

#[test]
fn an_injected_cancellation_is_a_recorded_cancel_request_of_that_task() {
    let mut injected = 0;
    for seed in 0..40 {
        let (lab, _) = run(LabConfig::new(seed).chaos(only("cancel", 0.2)));
        let trace = lab.trace();
        let chaos = chaos_events(&trace);
        for &(i, task, what) in &chaos {
            assert_eq!(what, "cancel");
            // Right after the record: the request itself (unless the task
            // was already cancelled, which a User request cannot strengthen).
            let already = trace[..i]
                .iter()
                .any(|e| matches!(e.kind, TraceKind::CancelRequest { task: t, .. } if t == task));
            match &trace[i + 1].kind {
                TraceKind::CancelRequest {
                    task: t,
                    kind: CancelKind::User,
                } if *t == task => injected += 1,
                other => assert!(
                    already,
                    "seed {seed}: chaos cancel of {task} followed by {other:?}"
                ),
            }
        }
        // And the reverse: this workload never cancels anything itself, so
        // every User cancellation in the trace was an injection.
        for (i, e) in trace.iter().enumerate() {
            if let TraceKind::CancelRequest {
                task,
                kind: CancelKind::User,
            } = e.kind
            {
                assert!(
                    matches!(trace[i - 1].kind, TraceKind::Chaos { task: t, what: "cancel" } if t == task),
                    "seed {seed}: an unrecorded cancellation of {task}"
                );
            }
        }
    }
    assert!(injected > 10, "{injected}");
}

#[test]
fn injected_cancellations_reach_the_task_as_user_cancellations() {
    let mut cancelled = 0;
    for seed in 0..30 {
        let lab = LabRuntime::new(LabConfig::new(seed).chaos(only("cancel", 0.2)));
        let reasons = lab.block_on(|cx| async move {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    cx.spawn(|cx| async move {
                        for _ in 0..5 {
                            sleep(&cx, Duration::from_millis(2)).await?;
                        }
                        Ok::<(), asupersync::types::cancel::Cancelled>(())
                    })
                    .unwrap()
                })
                .collect();
            let mut reasons = Vec::new();
            for h in hs {
                match h.join(&cx).await {
                    Ok(_) => {}
                    Err(e) => {
                        reasons.push(e.cancel_reason().cloned().expect("cancelled, not panicked"))
                    }
                }
            }
            reasons
        });
        for r in reasons {
            assert_eq!(r.kind, CancelKind::User);
            assert!(
                r.message.as_deref().is_some_and(|m| m.contains("chaos")),
                "{r:?}"
            );
            cancelled += 1;
        }
    }
    assert!(cancelled > 5, "{cancelled}");
}

#[test]
fn an_injected_delay_moves_virtual_time_and_is_recorded() {
    // Tasks that only yield: nothing but chaos can move time.
    let yielders = |cx: Cx| async move {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                cx.spawn(|_| async {
                    for _ in 0..10 {
                        asupersync::yield_now().await;
                    }
                })
                .unwrap()
            })
            .collect();
        for h in hs {
            h.join(&cx).await.unwrap();
        }
    };
    let calm = LabRuntime::new(LabConfig::new(1));
    calm.block_on(yielders);
    assert_eq!(calm.now(), Time::ZERO);

    for seed in 0..20 {
        let lab = LabRuntime::new(LabConfig::new(seed).chaos(only("delay", 0.5)));
        lab.block_on(yielders);
        let trace = lab.trace();
        let chaos = chaos_events(&trace);
        assert!(!chaos.is_empty(), "seed {seed}");
        let mut total = Duration::ZERO;
        for &(i, _, what) in &chaos {
            assert_eq!(what, "delay");
            // The delay is the next event: a time step of at most max_delay.
            let TraceKind::TimeAdvance { to } = trace[i + 1].kind else {
                panic!(
                    "seed {seed}: delay not followed by a time step: {:?}",
                    trace[i + 1]
                );
            };
            let from = trace[i].time;
            assert!(to > from);
            assert!(to.duration_since(from) < Duration::from_millis(50));
            total += to.duration_since(from);
        }
        // Every time step was a recorded delay.
        let steps = trace
            .iter()
            .filter(|e| matches!(e.kind, TraceKind::TimeAdvance { .. }))
            .count();
        assert_eq!(steps, chaos.len(), "seed {seed}");
        assert_eq!(lab.now(), Time::ZERO + total, "seed {seed}");
    }
}

#[test]
fn injected_delays_never_make_a_sleep_end_early() {
    for seed in 0..30 {
        let lab = LabRuntime::new(LabConfig::new(seed).chaos(only("delay", 0.7)));
        lab.block_on(|cx| async move {
            let hs: Vec<_> = (1..=5u64)
                .map(|i| {
                    cx.spawn(move |cx| async move {
                        for _ in 0..4 {
                            let deadline = cx.now() + Duration::from_millis(10 * i);
                            sleep(&cx, Duration::from_millis(10 * i)).await.unwrap();
                            assert!(
                                cx.now() >= deadline,
                                "woke at {} before {deadline}",
                                cx.now()
                            );
                        }
                    })
                    .unwrap()
                })
                .collect();
            for h in hs {
                h.join(&cx).await.unwrap();
            }
        });
        assert!(lab.now() >= Time::from_millis(200));
    }
}

#[test]
fn an_injected_budget_exhaustion_becomes_a_poll_quota_cancellation() {
    let mut converted = 0;
    for seed in 0..40 {
        let (lab, _) = run(LabConfig::new(seed).chaos(only("budget_exhaustion", 0.1)));
        let trace = lab.trace();
        for &(i, task, what) in &chaos_events(&trace) {
            assert_eq!(what, "budget_exhaustion");
            let already = trace[..i]
                .iter()
                .any(|e| matches!(e.kind, TraceKind::CancelRequest { task: t, .. } if t == task));
            if already {
                continue;
            }
            // The very next poll of that task runs out of budget.
            assert!(
                matches!(trace[i + 1].kind, TraceKind::Poll { task: t } if t == task),
                "seed {seed}: {:?}",
                trace[i + 1]
            );
            assert!(
                matches!(trace[i + 2].kind, TraceKind::CancelRequest { task: t, kind: CancelKind::PollQuota } if t == task),
                "seed {seed}: {:?}",
                trace[i + 2]
            );
            converted += 1;
        }
        // Every PollQuota cancellation was an injection (no budgets here).
        for (i, e) in trace.iter().enumerate() {
            if let TraceKind::CancelRequest {
                task,
                kind: CancelKind::PollQuota,
            } = e.kind
            {
                assert!(
                    trace[..i].iter().rev().any(|p| matches!(p.kind, TraceKind::Chaos { task: t, what: "budget_exhaustion" } if t == task)),
                    "seed {seed}: an unrecorded budget exhaustion of {task}"
                );
            }
        }
    }
    assert!(converted > 10, "{converted}");
}

// ----- spurious wakeups ---------------------------------------------------------

/// A flag future that re-checks its condition on every poll, counting the
/// polls where the flag was still down (spurious ones).
struct WaitFlag {
    flag: Arc<AtomicBool>,
    wakers: Arc<Mutex<Vec<std::task::Waker>>>,
    spurious: Arc<AtomicU64>,
    polled: bool,
}

impl Future for WaitFlag {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.flag.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        if self.polled {
            self.spurious.fetch_add(1, Ordering::SeqCst);
        }
        self.polled = true;
        self.wakers.lock().unwrap().push(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn spurious_wakeups_do_not_break_futures_that_recheck_their_condition() {
    let mut spurious_total = 0;
    for seed in 0..30 {
        let lab = LabRuntime::new(LabConfig::new(seed).chaos(only("spurious_wake", 0.8)));
        let spurious = Arc::new(AtomicU64::new(0));
        let s = spurious.clone();
        let order = lab.block_on(move |cx| async move {
            let flag = Arc::new(AtomicBool::new(false));
            let wakers = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::new(Mutex::new(Vec::new()));
            let waiters: Vec<_> = (0..3)
                .map(|i| {
                    let (flag, wakers, s, log) =
                        (flag.clone(), wakers.clone(), s.clone(), log.clone());
                    cx.spawn(move |_| async move {
                        WaitFlag {
                            flag,
                            wakers,
                            spurious: s,
                            polled: false,
                        }
                        .await;
                        log.lock().unwrap().push(format!("waiter {i}"));
                    })
                    .unwrap()
                })
                .collect();
            let setter = {
                let (flag, wakers, log) = (flag.clone(), wakers.clone(), log.clone());
                cx.spawn(move |cx| async move {
                    for _ in 0..20 {
                        asupersync::yield_now().await;
                    }
                    sleep(&cx, Duration::from_millis(5)).await.unwrap();
                    log.lock().unwrap().push("set".to_string());
                    flag.store(true, Ordering::SeqCst);
                    for w in wakers.lock().unwrap().drain(..) {
                        w.wake();
                    }
                })
                .unwrap()
            };
            setter.join(&cx).await.unwrap();
            for w in waiters {
                w.join(&cx).await.unwrap();
            }
            log.lock().unwrap().clone()
        });
        // Nobody got past the flag before it was set.
        assert_eq!(order[0], "set", "seed {seed}: {order:?}");
        assert_eq!(order.len(), 4);
        spurious_total += spurious.load(Ordering::SeqCst);
        // The wakeups are in the trace, targeted at live tasks.
        let trace = lab.trace();
        for (_, _, what) in chaos_events(&trace) {
            assert_eq!(what, "spurious_wake");
        }
    }
    assert!(
        spurious_total > 10,
        "spurious wakeups never re-polled a waiting future ({spurious_total})"
    );
}

#[test]
fn a_spurious_wakeup_of_a_parked_task_is_followed_by_its_wake() {
    let mut seen = 0;
    for seed in 0..20 {
        let (lab, _) = run(LabConfig::new(seed).chaos(only("spurious_wake", 0.5)));
        let trace = lab.trace();
        // The root body is not queued by the lab, so its wakes (injected or
        // not) are not `Wake` events; it is the first task spawned.
        let root = trace
            .iter()
            .find_map(|e| match e.kind {
                TraceKind::Spawn { task, .. } => Some(task),
                _ => None,
            })
            .unwrap();
        for &(i, task, _) in &chaos_events(&trace) {
            if task == root {
                continue;
            }
            // A task that was parked (its last event a `Pending`) is queued
            // by the injected wake.
            let last = trace[..i].iter().rev().find(|e| {
                matches!(&e.kind,
                    TraceKind::Pending { task: t } | TraceKind::Wake { task: t } | TraceKind::Poll { task: t }
                    if *t == task)
            });
            if matches!(last.map(|e| &e.kind), Some(TraceKind::Pending { .. })) {
                assert!(
                    matches!(trace[i + 1].kind, TraceKind::Wake { task: t } if t == task),
                    "seed {seed}: {:?}",
                    trace[i + 1]
                );
                seen += 1;
            }
        }
    }
    assert!(seen > 10, "{seen}");
}

// ----- determinism ----------------------------------------------------------------

#[test]
fn the_same_seed_and_chaos_give_the_same_trace() {
    for chaos in [ChaosConfig::light(), ChaosConfig::heavy()] {
        let mut fingerprints = BTreeSet::new();
        for seed in 0..60 {
            let (a, ra) = run(LabConfig::new(seed).chaos(chaos.clone()));
            let (b, rb) = run(LabConfig::new(seed).chaos(chaos.clone()));
            assert_eq!(ra, rb);
            assert_eq!(a.trace(), b.trace(), "seed {seed} {chaos:?}");
            assert_eq!(a.trace_fingerprint(), b.trace_fingerprint());
            assert_eq!(a.now(), b.now());
            fingerprints.insert(a.trace_fingerprint());
        }
        assert!(fingerprints.len() > 30);
    }
}

#[test]
fn chaos_changes_the_run_but_off_is_exactly_no_chaos() {
    let mut differ = 0;
    for seed in 0..30 {
        let (plain, _) = run(LabConfig::new(seed));
        let (off, _) = run(LabConfig::new(seed).chaos(ChaosConfig::off()));
        let (heavy, _) = run(LabConfig::new(seed).chaos(ChaosConfig::heavy()));
        assert!(chaos_events(&plain.trace()).is_empty());
        assert!(chaos_events(&off.trace()).is_empty());
        assert_eq!(plain.trace(), off.trace(), "seed {seed}");
        differ += usize::from(plain.trace_fingerprint() != heavy.trace_fingerprint());
    }
    assert!(differ > 20, "{differ}");
}

// ----- a cancel-correct program survives ----------------------------------------------

#[derive(Default)]
struct Tally {
    finalizers_registered: AtomicU64,
    finalizers_run: AtomicU64,
    acked: AtomicU64,
    cleaned: AtomicU64,
    committed: AtomicU64,
}

/// Regions, nested regions, obligations, finalizers, timeouts and masks; every
/// wait handles `Err`; a task that observes its cancellation does a short
/// (two-poll) cleanup and records that it finished it.
async fn cancel_correct(cx: Cx, tally: Arc<Tally>) -> u64 {
    let t = tally.clone();
    let outcome = cx
        .region(move |cx| async move {
            let mut hs = Vec::new();
            for i in 0..5u64 {
                let t = t.clone();
                hs.push(
                    cx.spawn(move |cx| async move {
                        let t2 = t.clone();
                        if cx
                            .defer_sync(move || {
                                t2.finalizers_run.fetch_add(1, Ordering::SeqCst);
                            })
                            .is_ok()
                        {
                            t.finalizers_registered.fetch_add(1, Ordering::SeqCst);
                        }
                        let inner = {
                            let t = t.clone();
                            cx.region(move |cx| async move {
                                let h = cx
                                    .spawn(move |cx| async move {
                                        sleep(&cx, Duration::from_millis(3 + i)).await
                                    })
                                    .map_err(|_| ())?;
                                for _ in 0..4 {
                                    let ob = cx.reserve_obligation("permit").map_err(|_| ())?;
                                    if sleep(&cx, Duration::from_millis(1 + i)).await.is_err() {
                                        t.acked.fetch_add(1, Ordering::SeqCst);
                                        drop(ob);
                                        asupersync::yield_now().await;
                                        asupersync::yield_now().await;
                                        t.cleaned.fetch_add(1, Ordering::SeqCst);
                                        return Err(());
                                    }
                                    cx.masked(|| ob.commit());
                                    t.committed.fetch_add(1, Ordering::SeqCst);
                                }
                                let _ = timeout(&cx, Duration::from_millis(2), async {
                                    std::future::pending::<()>().await
                                })
                                .await;
                                let _ = h.join(&cx).await;
                                Ok::<u64, ()>(i)
                            })
                            .await
                        };
                        match inner {
                            Outcome::Ok(v) => Some(v),
                            Outcome::Panicked(p) => panic!("unexpected panic: {p:?}"),
                            _ => None,
                        }
                    })
                    .map_err(|_| ())?,
                );
            }
            let mut done = 0;
            for h in hs {
                match h.join(&cx).await {
                    Ok(Some(_)) => done += 1,
                    Ok(None) => {}
                    Err(e) => assert!(e.is_cancelled(), "{e:?}"),
                }
            }
            Ok::<u64, ()>(done)
        })
        .await;
    match outcome {
        Outcome::Ok(done) => done,
        other => panic!("the root's region failed: {other:?}"),
    }
}

#[test]
fn a_cancel_correct_program_survives_heavy_chaos() {
    let mut injections = 0;
    let mut all_done = 0;
    for seed in 0..150 {
        let lab = LabRuntime::new(LabConfig::new(seed).chaos(ChaosConfig::heavy()));
        let tally = Arc::new(Tally::default());
        let t = tally.clone();
        let done = lab.block_on(move |cx| cancel_correct(cx, t));
        all_done += u64::from(done == 5);
        injections += chaos_events(&lab.trace()).len();
        let stats = lab.stats();
        assert_eq!(stats.regions_created, stats.regions_closed, "seed {seed}");
        assert_eq!(stats.tasks_spawned, stats.tasks_completed, "seed {seed}");
        assert_eq!(stats.obligations_leaked, 0, "seed {seed}");
        let reserved = lab
            .trace()
            .iter()
            .filter(|e| matches!(e.kind, TraceKind::ObligationReserve { .. }))
            .count() as u64;
        assert_eq!(
            stats.obligations_committed + stats.obligations_aborted,
            reserved,
            "seed {seed}"
        );
        assert_eq!(
            stats.obligations_committed,
            tally.committed.load(Ordering::SeqCst),
            "seed {seed}"
        );
        assert!(lab.live_tasks().is_empty(), "seed {seed}");
        assert!(lab.live_regions().is_empty(), "seed {seed}");
        assert_eq!(
            tally.finalizers_run.load(Ordering::SeqCst),
            tally.finalizers_registered.load(Ordering::SeqCst),
            "seed {seed}: finalizers run exactly once"
        );
    }
    assert!(injections > 1000, "{injections}");
    assert!(all_done < 150, "chaos never cancelled anything");
}

#[test]
fn an_acknowledged_cancellation_gets_to_finish_its_cleanup_under_chaos() {
    // Contract §3: after acknowledging, a task drains "under the kind's
    // cleanup budget" (10 000 polls and a 10 s grace for `User`). A two-poll
    // cleanup must therefore always complete; chaos must not cut it short.
    let mut acked = 0;
    let mut failures = Vec::new();
    for seed in 0..150 {
        let lab = LabRuntime::new(LabConfig::new(seed).chaos(ChaosConfig::heavy()));
        let tally = Arc::new(Tally::default());
        let t = tally.clone();
        lab.block_on(move |cx| cancel_correct(cx, t));
        let (a, c) = (
            tally.acked.load(Ordering::SeqCst),
            tally.cleaned.load(Ordering::SeqCst),
        );
        acked += a;
        if a != c {
            let drops: Vec<String> = lab
                .trace()
                .iter()
                .filter(|e| matches!(e.kind, TraceKind::ForceDrop { .. }))
                .map(|e| format!("{e}"))
                .collect();
            failures.push(format!("seed {seed}: {a} acked, {c} cleaned up; {drops:?}"));
        }
    }
    assert!(acked > 20, "{acked}");
    assert!(
        failures.is_empty(),
        "{} of 150 seeds cut a cleanup short:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn chaos_budget_exhaustion_never_force_drops_a_task_in_cleanup() {
    // The same rule at the trace level: an injected budget exhaustion may
    // turn into a `PollQuota` cancellation, but a task already draining
    // after an acknowledged cancellation keeps its cleanup budget, so the
    // injection is never followed by a `CleanupPollsExhausted` drop.
    let mut cut = Vec::new();
    for seed in 0..200 {
        let lab = LabRuntime::new(LabConfig::new(seed).chaos(ChaosConfig::heavy()));
        lab.block_on(|cx| async move {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    cx.spawn(|cx| async move {
                        if sleep(&cx, Duration::from_millis(50)).await.is_err() {
                            // A two-poll cleanup.
                            asupersync::yield_now().await;
                            asupersync::yield_now().await;
                        }
                    })
                    .unwrap()
                })
                .collect();
            for h in hs {
                let _ = h.join(&cx).await;
            }
        });
        let trace = lab.trace();
        for (i, e) in trace.iter().enumerate() {
            if let TraceKind::ForceDrop {
                task,
                cause: asupersync::kernel::ForceDropCause::CleanupPollsExhausted,
            } = e.kind
            {
                let injected = matches!(
                    trace[i - 1].kind,
                    TraceKind::Chaos { task: t, what: "budget_exhaustion" } if t == task
                );
                cut.push(format!(
                    "seed {seed}: {task} force-dropped in cleanup{}",
                    if injected {
                        " right after a chaos budget exhaustion"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    assert!(
        cut.is_empty(),
        "{} cleanups cut short:\n{}",
        cut.len(),
        cut.join("\n")
    );
}
