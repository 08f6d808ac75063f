//! Rule A2's deadline exception: a `Cx` bounded by a budget deadline (its
//! task's, or the region's whose body it runs) reads the clock on the
//! lock-free checkpoint path, so a task that runs past its deadline without
//! yielding sees the cancellation at its very next checkpoint — before the
//! deadline's timer had a chance to fire — and so does a `sleep(0)` after
//! it. On both production drivers, and in the lab with exact virtual times.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use asupersync::lab::{LabConfig, LabRuntime};
use asupersync::time::sleep;
use asupersync::types::{CancelKind, Outcome};
use asupersync::{Budget, Cx, JoinError, Time};
use support::{Gate, for_each_driver};

type Seen = Arc<Mutex<Option<(Option<CancelKind>, Option<CancelKind>)>>>;

/// Spins (without yielding) until `cx.now()` reaches `deadline`, then
/// records what a checkpoint and a `sleep(0)` return.
async fn run_past(cx: &Cx, deadline: Time, seen: &Seen) {
    while cx.now() < deadline {
        std::hint::spin_loop();
    }
    let checkpoint = cx.checkpoint().err().map(|c| c.reason().kind);
    let slept = sleep(cx, Duration::ZERO)
        .await
        .err()
        .map(|c| c.reason().kind);
    *seen.lock().unwrap() = Some((checkpoint, slept));
}

fn assert_both_failed(name: &str, seen: &Seen) {
    assert_eq!(
        *seen.lock().unwrap(),
        Some((Some(CancelKind::Deadline), Some(CancelKind::Deadline))),
        "[{name}] (checkpoint, sleep(0)) after running past the deadline"
    );
}

#[test]
fn a_task_that_runs_past_its_deadline_fails_its_next_checkpoint_and_sleep() {
    for_each_driver(|name, rt| {
        let seen = Seen::default();
        let s = seen.clone();
        rt.block_on(move |cx: Cx| async move {
            let budget = Budget::new().with_deadline(cx.now() + Duration::from_millis(10));
            let h = cx
                .spawn_with_budget(budget, move |cx| async move {
                    let deadline = cx.budget().deadline.expect("a budget deadline");
                    run_past(&cx, deadline, &s).await;
                })
                .unwrap();
            match h.join(&cx).await {
                Err(JoinError::Cancelled(r)) => assert_eq!(r.kind, CancelKind::Deadline),
                other => panic!("[{name}] {other:?}"),
            }
        });
        assert_both_failed(name, &seen);
    });
}

#[test]
fn a_region_body_that_runs_past_the_regions_deadline_fails_its_next_checkpoint_and_sleep() {
    for_each_driver(|name, rt| {
        let seen = Seen::default();
        let s = seen.clone();
        rt.block_on(move |cx: Cx| async move {
            let deadline = cx.now() + Duration::from_millis(10);
            let out = cx
                .region_with_budget(Budget::new().with_deadline(deadline), |cx| async move {
                    run_past(&cx, deadline, &s).await;
                    cx.checkpoint()
                })
                .await;
            match out {
                Outcome::Cancelled(r) => assert_eq!(r.kind, CancelKind::Deadline, "[{name}]"),
                other => panic!("[{name}] {other:?}"),
            }
            // The owner task itself has no deadline and is not cancelled.
            cx.checkpoint().expect("the owner is not cancelled");
        });
        assert_both_failed(name, &seen);
    });
}

/// In the lab time moves only between polls and the due timers fire as it
/// moves, so a task cannot run past its deadline unseen; this pins the
/// exact semantics instead: a task with a 10 ms deadline parked on a wait
/// that ignores cancellation until 30 ms finds the deadline (stamped at
/// exactly 10 ms) at its next checkpoint and `sleep(0)`.
#[test]
fn in_the_lab_a_task_woken_past_its_deadline_fails_its_checkpoint_and_sleep() {
    for seed in 0..4 {
        let lab = LabRuntime::new(LabConfig::new(seed));
        let seen = Seen::default();
        let s = seen.clone();
        lab.block_on(move |cx: Cx| async move {
            let gate = Gate::new();
            let g = gate.clone();
            let budget = Budget::new().with_deadline(Time::from_millis(10));
            let h = cx
                .spawn_with_budget(budget, move |cx| async move {
                    g.wait().await; // not cancel-aware
                    assert_eq!(cx.now(), Time::from_millis(30));
                    let reason = cx.checkpoint().expect_err("past the deadline");
                    assert_eq!(reason.reason().timestamp, Time::from_millis(10));
                    run_past(&cx, Time::from_millis(10), &s).await;
                })
                .unwrap();
            sleep(&cx, Duration::from_millis(30)).await.unwrap();
            gate.open();
            assert!(h.join(&cx).await.is_err());
        });
        // The first checkpoint acknowledged; the recorded pair comes after.
        assert_both_failed("lab", &seen);
    }
}

/// A region entered with its deadline already due: nothing yields between
/// the entry and the body's first checkpoint, so in the lab the deadline's
/// timer cannot have fired yet; the checkpoint must fail anyway.
#[test]
fn in_the_lab_a_region_body_past_its_deadline_at_entry_fails_its_first_checkpoint() {
    for seed in 0..4 {
        let lab = LabRuntime::new(LabConfig::new(seed));
        lab.block_on(|cx: Cx| async move {
            sleep(&cx, Duration::from_millis(5)).await.unwrap();
            let deadline = cx.now();
            let out = cx
                .region_with_budget(Budget::new().with_deadline(deadline), |cx| async move {
                    let c = cx.checkpoint().expect_err("the deadline is due");
                    assert_eq!(c.reason().kind, CancelKind::Deadline);
                    assert_eq!(c.reason().timestamp, deadline);
                    let s = sleep(&cx, Duration::ZERO).await.expect_err("sleep(0)");
                    assert_eq!(s.reason().kind, CancelKind::Deadline);
                    Err::<(), _>(c)
                })
                .await;
            assert!(
                matches!(&out, Outcome::Cancelled(r) if r.kind == CancelKind::Deadline),
                "{out:?}"
            );
            assert_eq!(cx.now(), deadline);
            cx.checkpoint().expect("the owner is not cancelled");
        });
    }
}
