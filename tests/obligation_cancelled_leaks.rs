//! Issue 11, item 10: a permit forgotten by a task that is then cancelled
//! must not vanish. The kernel used to count such an obligation as
//! *aborted* (no leak, the lab oracle passed) while the semaphore's permit
//! or the channel's slot stayed taken forever. Now it is reported as an
//! obligation leak: the task's outcome is a panic naming it (panic policy),
//! the stats and the lab's obligation oracle see it. An owned permit
//! forgotten that way is reported by its region's close.
//! Runtime tests run on both drivers; the lab explores the schedules.

mod support;

use std::sync::Arc;
use std::time::Duration;

use asupersync::channel::mpsc;
use asupersync::kernel::LeakPolicy;
use asupersync::lab::{InjectionConfig, LabConfig, LabRuntime, cancel_injection, oracle};
use asupersync::sync::Semaphore;
use asupersync::types::Outcome;
use asupersync::{Cx, JoinError, time, yield_now};
use support::*;

const HOUR: Duration = Duration::from_secs(3600);

fn assert_leak_panic(r: &Result<impl std::fmt::Debug, JoinError>, kind: &str) {
    match r {
        Err(JoinError::Panicked(p)) => {
            let m = p.message();
            assert!(m.contains("obligation leak") && m.contains(kind), "{m}");
        }
        other => panic!("expected a Panicked join naming the {kind} leak, got {other:?}"),
    }
}

on_both_drivers! {
    /// `mem::forget` of a semaphore permit, then `abort()` while the task
    /// waits: a leak (the join says so), not an abort; the permit is not
    /// given back, so the report is what tells.
    fn a_semaphore_permit_forgotten_then_cancelled_is_reported_as_a_leak(d: Driver) {
        let rt = d.rt();
        let sem = Arc::new(Semaphore::new(1));
        let s = sem.clone();
        rt.block_on(move |cx: Cx| async move {
            let started = Flag::new();
            let st = started.clone();
            let h = cx.spawn(move |cx| async move {
                std::mem::forget(s.acquire(&cx, 1).await.unwrap());
                st.set();
                time::sleep(&cx, HOUR).await
            }).unwrap();
            until(|| started.is_set()).await;
            h.abort();
            assert_leak_panic(&h.join(&cx).await, "semaphore_permit");
        });
        assert_eq!(sem.available_permits(), 0, "forgotten: never given back");
        let s = rt.stats();
        assert_eq!((s.obligations_leaked, s.obligations_aborted), (1, 0), "{s:?}");
        assert_eq!(s.leaks[0].kind, "semaphore_permit");
        assert_quiescent(&rt);
    }

    /// The same with an mpsc `SendPermit` in a task that ignores the
    /// cancellation and is force-dropped when its grace period ends.
    fn an_mpsc_permit_forgotten_by_a_force_dropped_task_is_reported_as_a_leak(d: Driver) {
        let rt = d.rt_with_grace(Duration::from_millis(20));
        rt.block_on(|cx: Cx| async move {
            let (tx, _rx) = mpsc::channel::<u32>(1);
            let tx2 = tx.clone();
            let started = Flag::new();
            let st = started.clone();
            let h = cx.spawn(move |cx| async move {
                std::mem::forget(tx2.reserve(&cx).await.unwrap());
                st.set();
                std::future::pending::<()>().await;
            }).unwrap();
            until(|| started.is_set()).await;
            h.abort();
            assert_leak_panic(&h.join(&cx).await, "send_permit");
            assert_eq!(tx.capacity(), 0, "the forgotten slot stays taken");
        });
        let s = rt.stats();
        assert_eq!((s.obligations_leaked, s.obligations_aborted), (1, 0), "{s:?}");
        assert_eq!(s.forced_drop_count, 1);
        assert_quiescent(&rt);
    }

    /// A cancelled task that dropped its permits (the normal case) aborts
    /// them: no leak, everything back.
    fn a_cancelled_task_that_drops_its_permits_aborts_them(d: Driver) {
        let rt = d.rt();
        let sem = Arc::new(Semaphore::new(2));
        let s = sem.clone();
        rt.block_on(move |cx: Cx| async move {
            let started = Flag::new();
            let st = started.clone();
            let h = cx.spawn(move |cx| async move {
                let _p = s.acquire(&cx, 1).await.unwrap();
                let _q = s.clone().acquire_owned(&cx, 1).await.unwrap();
                st.set();
                time::sleep(&cx, HOUR).await
            }).unwrap();
            until(|| started.is_set()).await;
            h.abort();
            assert!(h.join(&cx).await.unwrap_err().is_cancelled());
        });
        assert_eq!(sem.available_permits(), 2);
        let s = rt.stats();
        assert_eq!((s.obligations_leaked, s.obligations_aborted), (0, 2), "{s:?}");
        assert_quiescent(&rt);
    }

    /// An owned permit forgotten by a task that is then cancelled: the task
    /// does not hold owned permits (they follow their holder), so its region
    /// reports the leak when it closes.
    fn an_owned_permit_forgotten_then_cancelled_is_reported_by_its_region(d: Driver) {
        let rt = d.rt();
        let sem = Arc::new(Semaphore::new(1));
        let s = sem.clone();
        rt.block_on(move |cx: Cx| async move {
            let out = cx.region(move |rcx| async move {
                let started = Flag::new();
                let st = started.clone();
                let h = rcx.spawn(move |cx| async move {
                    std::mem::forget(s.acquire_owned(&cx, 1).await.unwrap());
                    st.set();
                    time::sleep(&cx, HOUR).await
                }).unwrap();
                until(|| started.is_set()).await;
                h.abort();
                let r = h.join(&rcx).await;
                assert!(r.as_ref().is_err_and(JoinError::is_cancelled), "{r:?}");
                Ok::<_, ()>(())
            }).await;
            match out {
                Outcome::Panicked(p) => {
                    assert!(p.message().contains("obligation leak"), "{}", p.message());
                    assert!(p.message().contains("semaphore_permit"), "{}", p.message());
                }
                other => panic!("the region must report the leak, got {other:?}"),
            }
        });
        assert_eq!(rt.stats().obligations_leaked, 1);
        assert_quiescent(&rt);
    }
}

/// The lab, cancelling the task at each of its await points: only the
/// cancellation that finds it holding the permit (and forgetting it, the bug
/// under test) is reported, by the obligation oracle, and only that one.
#[test]
fn cancellation_injection_catches_the_permit_forgotten_on_cancel() {
    async fn body(cx: Cx) {
        let sem = Arc::new(Semaphore::new(1));
        let s = sem.clone();
        let child = cx
            .spawn(move |cx| async move {
                yield_now().await; // point 1: holds nothing
                if cx.checkpoint().is_err() {
                    return;
                }
                let permit = s.acquire(&cx, 1).await.unwrap();
                yield_now().await; // point 2: holds the permit
                if cx.checkpoint().is_err() {
                    std::mem::forget(permit); // BUG: acknowledges, forgets
                    return;
                }
                drop(permit);
                yield_now().await; // point 3: gave it back
            })
            .unwrap();
        let _ = child.join(&cx).await;
    }
    for seed in 0..8 {
        let report = cancel_injection(InjectionConfig::new(seed), body);
        assert_eq!(report.points_tried().len(), 3, "{report}");
        assert_eq!(report.failures().len(), 1, "{report}");
        let failure = &report.failures()[0];
        assert_eq!(failure.point.expect("an injected run").poll, 2, "{report}");
        let failed: Vec<&str> = failure.oracles.failures().iter().map(|r| r.name).collect();
        assert_eq!(failed, [oracle::OBLIGATION_LEAKS], "{report}");
    }
}

/// Over many seeds the child is cancelled before it starts (nothing is
/// held) or after it forgot its permit: the permit is then either back or
/// the leak is reported (the join, the stats and the oracle agree) —
/// never lost silently. Both cases must occur.
#[test]
fn in_the_lab_a_forgotten_permit_is_given_back_or_reported_on_every_seed() {
    let (mut unstarted, mut leaked) = (0, 0);
    for seed in 0..200 {
        let lab = LabRuntime::new(LabConfig::new(seed).obligation_leak_policy(LeakPolicy::Log));
        let sem = Arc::new(Semaphore::new(1));
        let s = sem.clone();
        let joined = lab.block_on(move |cx: Cx| async move {
            let h = cx
                .spawn(move |cx| async move {
                    std::mem::forget(s.acquire(&cx, 1).await.unwrap());
                    time::sleep(&cx, HOUR).await
                })
                .unwrap();
            yield_now().await;
            h.abort();
            h.join(&cx).await
        });
        assert!(joined.unwrap_err().is_cancelled(), "seed {seed}");
        let stats = lab.stats();
        let report = lab.oracle_report();
        let oracle_ok = report.result(oracle::OBLIGATION_LEAKS).unwrap().passed;
        if sem.available_permits() == 1 {
            unstarted += 1;
            assert_eq!(stats.obligations_leaked, 0, "seed {seed}");
            assert!(report.passed(), "seed {seed}: {report}");
        } else {
            leaked += 1;
            assert_eq!(stats.obligations_leaked, 1, "seed {seed}: lost silently");
            assert!(
                !oracle_ok,
                "seed {seed}: the oracle must see the leak\n{report}"
            );
        }
    }
    assert!(
        unstarted > 0 && leaked > 0,
        "{unstarted} unstarted, {leaked} leaked"
    );
}
