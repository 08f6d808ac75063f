//! K9: a region's budget bounds everything in the region, its body included
//! (the body runs inline in the calling task). Past the region's deadline
//! the body's waits and checkpoints fail with `Deadline`; once the body has
//! used up the region's poll quota they fail with `PollQuota`; the region's
//! outcome is then `Cancelled` with that reason, and the calling task is not
//! cancelled. Every scenario runs on both production drivers and in the lab
//! (where the times are exact).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use asupersync::lab::{LabConfig, LabRuntime};
use asupersync::time::sleep;
use asupersync::types::{CancelKind, Outcome};
use asupersync::{Budget, Cx, JoinError, Runtime, yield_now};
use support::for_each_driver;

const HOUR: Duration = Duration::from_secs(3600);

fn lab(seed: u64) -> LabRuntime {
    LabRuntime::new(LabConfig::new(seed))
}

/// Asserts that nothing is left behind (the region's deadline timer
/// included) once `block_on` returned.
fn assert_clean(name: &str, rt: &Runtime) {
    assert_eq!(rt.live_tasks(), 0, "[{name}]");
    assert_eq!(rt.live_regions(), 0, "[{name}]");
    assert_eq!(
        rt.pending_timers(),
        0,
        "[{name}] a timer outlived its region"
    );
}

// ----- deadline -----------------------------------------------------------

/// A region with a 20 ms deadline whose body sleeps 200 ms: the sleep fails
/// with `Deadline` (not before the deadline; exactly at it when `exact`),
/// later checkpoints fail, a child of the region is cancelled too, and the
/// body's `Err` makes the outcome `Cancelled(Deadline)`. The caller is not
/// cancelled.
async fn a_region_deadline_bounds_the_body(cx: Cx, name: &'static str, exact: bool) {
    let deadline = cx.now() + Duration::from_millis(20);
    let child = Arc::new(Mutex::new(None));
    let child_saw = Arc::new(Mutex::new(None));
    let (slot, saw) = (child.clone(), child_saw.clone());
    let out = cx
        .region_with_budget(Budget::new().with_deadline(deadline), |cx| async move {
            let h = cx
                .spawn(move |cx| async move {
                    sleep(&cx, HOUR).await.expect_err("an hour");
                    *saw.lock().unwrap() = Some(cx.now());
                })
                .unwrap();
            *slot.lock().unwrap() = Some(h);
            let slept = sleep(&cx, Duration::from_millis(200)).await;
            let woke = cx.now();
            let err = slept.expect_err("a 200 ms sleep outlived the region's 20 ms deadline");
            assert_eq!(err.reason().kind, CancelKind::Deadline, "[{name}] {err:?}");
            assert!(
                woke >= deadline,
                "[{name}] cancelled at {woke}, before {deadline}"
            );
            if exact {
                assert_eq!(woke, deadline, "[{name}]");
            }
            let again = cx
                .checkpoint()
                .expect_err("a checkpoint past the deadline passed");
            assert_eq!(again.reason().kind, CancelKind::Deadline, "[{name}]");
            Err::<(), _>(err)
        })
        .await;
    match &out {
        Outcome::Cancelled(r) => assert_eq!(r.kind, CancelKind::Deadline, "[{name}] {r:?}"),
        other => panic!("[{name}] expected Cancelled(Deadline), got {other:?}"),
    }
    if exact {
        assert_eq!(
            cx.now(),
            deadline,
            "[{name}] the region closed at its deadline"
        );
    }
    // The region's child was cancelled with it, at the deadline (with the
    // strongest reason it got by then: `Deadline`, or the `FailFast` of the
    // body's `Err` if the body ran first). On a loaded machine it may not
    // have been polled before the deadline, and is then dropped unpolled.
    let h = child
        .lock()
        .unwrap()
        .take()
        .expect("the body spawned a child");
    let joined = h.join(&cx).await;
    assert!(
        matches!(joined, Err(JoinError::Cancelled(_))),
        "[{name}] {joined:?}"
    );
    let saw = *child_saw.lock().unwrap();
    if exact {
        assert_eq!(saw, Some(deadline), "[{name}] the region's child");
    } else if let Some(at) = saw {
        assert!(
            at >= deadline,
            "[{name}] the child was cancelled early, at {at}"
        );
    }
    // The calling task goes on under its own (unlimited) budget.
    cx.checkpoint().expect("the caller is not cancelled");
    sleep(&cx, Duration::from_millis(1))
        .await
        .expect("the caller's own sleep");
}

#[test]
fn a_region_deadline_cancels_the_bodys_sleep_on_both_drivers() {
    for_each_driver(|name, rt| {
        rt.block_on(move |cx: Cx| a_region_deadline_bounds_the_body(cx, name, false));
        assert_clean(name, &rt);
    });
}

#[test]
fn a_region_deadline_cancels_the_bodys_sleep_in_the_lab_exactly_at_the_deadline() {
    for seed in 0..4 {
        let lab = lab(seed);
        lab.block_on(|cx: Cx| a_region_deadline_bounds_the_body(cx, "lab", true));
        assert_eq!(lab.stats().forced_drop_count, 0);
    }
}

/// A body that returns `Ok` although its deadline passed: the outcome is
/// `Ok` (the body decided), after the region's cancelled children drained.
#[test]
fn a_body_that_returns_ok_after_its_deadline_yields_ok() {
    let lab = lab(7);
    lab.block_on(|cx: Cx| async move {
        let deadline = cx.now() + Duration::from_millis(5);
        let out = cx
            .region_with_budget(Budget::new().with_deadline(deadline), |cx| async move {
                let child = cx
                    .spawn(|cx| async move {
                        let e = sleep(&cx, HOUR).await.expect_err("an hour");
                        assert_eq!(e.reason().kind, CancelKind::Deadline);
                        assert_eq!(cx.now(), deadline);
                    })
                    .unwrap();
                let slept = sleep(&cx, HOUR).await;
                assert!(slept.is_err());
                Ok::<_, ()>(child)
            })
            .await;
        let child = match out {
            Outcome::Ok(h) => h,
            other => panic!("expected Ok, got {other:?}"),
        };
        assert!(child.is_finished(), "the region drained its child first");
        match child.join(&cx).await {
            Err(JoinError::Cancelled(r)) => assert_eq!(r.kind, CancelKind::Deadline),
            other => panic!("the region's child: {other:?}"),
        }
        assert_eq!(cx.now(), deadline);
    });
}

/// Nested regions: a plain region inside a budgeted one is bounded by the
/// outer deadline (its body sees `ParentCancelled` caused by `Deadline`);
/// an inner deadline tighter than the outer one fires first, as `Deadline`.
async fn nested_regions_inherit_and_tighten(cx: Cx, name: &'static str, exact: bool) {
    let start = cx.now();
    let outer = start + Duration::from_millis(30);
    let inner = start + Duration::from_millis(10);
    let out = cx
        .region_with_budget(Budget::new().with_deadline(outer), |cx| async move {
            let tight = cx
                .region_with_budget(Budget::new().with_deadline(inner), |cx| async move {
                    let e = sleep(&cx, HOUR).await.expect_err("inner deadline");
                    Err::<(), _>((e.reason().kind, cx.now()))
                })
                .await;
            match &tight {
                Outcome::Cancelled(r) => assert_eq!(r.kind, CancelKind::Deadline, "[{name}]"),
                other => panic!("[{name}] inner region: {other:?}"),
            }
            if exact {
                // The outer region is still open until its own deadline.
                cx.checkpoint().expect("the outer deadline has not passed");
            }
            let plain = cx
                .region(|cx| async move {
                    let e = sleep(&cx, HOUR).await.expect_err("outer deadline");
                    Err::<(), _>((e.reason().clone(), cx.now()))
                })
                .await;
            let reason = match plain {
                Outcome::Cancelled(r) => r,
                other => panic!("[{name}] plain region: {other:?}"),
            };
            assert_eq!(reason.root_cause().kind, CancelKind::Deadline, "[{name}]");
            if exact {
                // (On a loaded machine the outer deadline may pass before the
                // plain region opens: it then never runs its body, and its
                // reason is the outer region's own `Deadline`.)
                assert_eq!(reason.kind, CancelKind::ParentCancelled, "[{name}]");
                assert_eq!(cx.now(), outer, "[{name}]");
            }
            Err::<(), _>("outer body done")
        })
        .await;
    match &out {
        Outcome::Cancelled(r) => assert_eq!(r.kind, CancelKind::Deadline, "[{name}]"),
        other => panic!("[{name}] outer region: {other:?}"),
    }
    assert!(cx.now() >= outer, "[{name}]");
}

#[test]
fn nested_regions_are_bounded_by_the_tightest_deadline_on_both_drivers() {
    for_each_driver(|name, rt| {
        rt.block_on(move |cx: Cx| nested_regions_inherit_and_tighten(cx, name, false));
        assert_clean(name, &rt);
    });
}

#[test]
fn nested_regions_are_bounded_by_the_tightest_deadline_in_the_lab() {
    let lab = lab(3);
    lab.block_on(|cx: Cx| nested_regions_inherit_and_tighten(cx, "lab", true));
}

/// A region that closes before its deadline leaves no timer behind and is
/// not cancelled later.
#[test]
fn a_region_that_finishes_in_time_is_not_cancelled_and_leaves_no_timer() {
    for_each_driver(|name, rt| {
        rt.block_on(move |cx: Cx| async move {
            let budget = Budget::new().with_deadline(cx.now() + HOUR);
            let out = cx
                .region_with_budget(budget, |cx| async move {
                    cx.checkpoint().expect("before the deadline");
                    sleep(&cx, Duration::from_millis(1))
                        .await
                        .expect("short sleep");
                    Ok::<_, ()>(7)
                })
                .await;
            assert_eq!(out, Outcome::Ok(7), "[{name}]");
        });
        assert_clean(name, &rt);
    });
}

// ----- poll quota ---------------------------------------------------------

/// A region with a poll quota of 5 whose body checkpoints and yields 100
/// times: the body's first 5 polls pass, the 6th poll's checkpoint fails
/// with `PollQuota`, and the outcome is `Cancelled(PollQuota)`.
async fn a_region_poll_quota_bounds_the_body(cx: Cx, name: &'static str) {
    let passed = Arc::new(Mutex::new(0u32));
    let count = passed.clone();
    let out = cx
        .region_with_budget(Budget::new().with_poll_quota(5), |cx| async move {
            for _ in 0..100 {
                cx.checkpoint()?;
                *count.lock().unwrap() += 1;
                yield_now().await;
            }
            Ok::<_, asupersync::types::cancel::Cancelled>(())
        })
        .await;
    match &out {
        Outcome::Cancelled(r) => assert_eq!(r.kind, CancelKind::PollQuota, "[{name}] {r:?}"),
        other => panic!("[{name}] expected Cancelled(PollQuota), got {other:?}"),
    }
    assert_eq!(
        *passed.lock().unwrap(),
        5,
        "[{name}] checkpoints that passed"
    );
    // The caller keeps its own unlimited quota.
    for _ in 0..10 {
        cx.checkpoint().expect("the caller is not cancelled");
        yield_now().await;
    }
}

#[test]
fn a_region_poll_quota_counts_the_bodys_polls_on_both_drivers() {
    for_each_driver(|name, rt| {
        rt.block_on(move |cx: Cx| a_region_poll_quota_bounds_the_body(cx, name));
        assert_clean(name, &rt);
    });
}

#[test]
fn a_region_poll_quota_counts_the_bodys_polls_in_the_lab() {
    for seed in 0..4 {
        lab(seed).block_on(|cx: Cx| a_region_poll_quota_bounds_the_body(cx, "lab"));
    }
}

/// The body of a region spawned-task-style: the quota is counted in the
/// task that runs the body, here a spawned task rather than the root.
#[test]
fn a_region_poll_quota_counts_the_bodys_polls_in_a_spawned_task() {
    for_each_driver(|name, rt| {
        rt.block_on(move |cx: Cx| async move {
            let h = cx
                .spawn(move |cx| async move { a_region_poll_quota_bounds_the_body(cx, name).await })
                .unwrap();
            h.join(&cx).await.unwrap();
        });
        assert_clean(name, &rt);
    });
}
