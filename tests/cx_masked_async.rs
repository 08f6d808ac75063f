//! `Cx::masked_async`: cancellation deferred across the `.await`s of one
//! future. Both production drivers (under a watchdog), the lab with exact
//! virtual times, and cancellation injected at every await point.

mod support;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Poll;
use std::time::Duration;

use asupersync::lab::{InjectionConfig, LabConfig, LabRuntime, cancel_injection};
use asupersync::time::sleep;
use asupersync::types::CancelKind;
use asupersync::{Cx, Time, yield_now};
use support::{Flag, Slot, assert_quiescent, until};

/// What a masked section saw, and what the task saw right after it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Seen {
    sleep_inside: Option<bool>,
    checkpoint_inside: Option<bool>,
    checkpoint_after: Option<Option<CancelKind>>,
}

on_both_drivers! {
    fn a_cancel_during_a_masked_sleep_is_observed_after_the_mask(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let entered = Flag::new();
            let seen = Slot::<Seen>::new();
            let task = {
                let (entered, seen) = (entered.clone(), seen.clone());
                cx.spawn(move |cx| async move {
                    let mut s = Seen::default();
                    let (slept, checked) = cx
                        .masked_async(async {
                            entered.set();
                            let slept = sleep(&cx, Duration::from_millis(30)).await.is_ok();
                            (slept, cx.checkpoint().is_ok())
                        })
                        .await;
                    s.sleep_inside = Some(slept);
                    s.checkpoint_inside = Some(checked);
                    s.checkpoint_after = Some(cx.checkpoint().err().map(|c| c.reason().kind));
                    seen.set(s);
                })
                .unwrap()
            };
            until(|| entered.is_set()).await;
            task.abort();
            assert!(task.join(&cx).await.unwrap_err().is_cancelled());
            assert_eq!(
                seen.take(),
                Some(Seen {
                    sleep_inside: Some(true),
                    checkpoint_inside: Some(true),
                    checkpoint_after: Some(Some(CancelKind::User)),
                })
            );
        });
        assert_quiescent(&rt);
    }

    /// The mask covers the masked future's polls only: a branch polled
    /// beside it observes the cancellation.
    fn code_polled_beside_a_masked_future_is_not_masked(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let outcome = Slot::new();
            let entered = Flag::new();
            let task = {
                let (outcome, entered) = (outcome.clone(), entered.clone());
                cx.spawn(move |cx| async move {
                    let mut masked = Box::pin(cx.masked_async(async {
                        entered.set();
                        loop {
                            if cx.is_cancel_requested() {
                                return cx.checkpoint().is_ok();
                            }
                            yield_now().await;
                        }
                    }));
                    let (inside, beside) = std::future::poll_fn(|tcx| {
                        let inside = masked.as_mut().poll(tcx);
                        let beside = cx.checkpoint();
                        match (inside, beside) {
                            (Poll::Ready(i), b) => Poll::Ready((i, b.is_ok())),
                            (Poll::Pending, _) => Poll::Pending,
                        }
                    })
                    .await;
                    outcome.set((inside, beside));
                })
                .unwrap()
            };
            until(|| entered.is_set()).await;
            task.abort();
            let _ = task.join(&cx).await;
            assert_eq!(outcome.take(), Some((true, false)), "(inside the mask, beside it)");
        });
        assert_quiescent(&rt);
    }

    /// The mask ends when the masked future is dropped half-way, and when
    /// its poll panics.
    fn the_mask_ends_on_drop_and_on_panic(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let ready = Flag::new();
            let observed = Slot::new();
            let task = {
                let (ready, observed) = (ready.clone(), observed.clone());
                cx.spawn(move |cx| async move {
                    // A masked future that panics in its first poll.
                    let mut bomb = Box::pin(cx.masked_async(async {
                        panic!("boom inside the mask");
                    }));
                    let caught = std::future::poll_fn(|tcx| {
                        Poll::Ready(catch_unwind(AssertUnwindSafe(|| bomb.as_mut().poll(tcx))).is_err())
                    })
                    .await;
                    assert!(caught);
                    // A masked future dropped while pending.
                    {
                        let mut pending = Box::pin(cx.masked_async(sleep(&cx, Duration::from_secs(3600))));
                        let first = std::future::poll_fn(|tcx| Poll::Ready(pending.as_mut().poll(tcx))).await;
                        assert!(first.is_pending());
                        ready.set();
                        // Wait (unmasked, not cancel-aware) for the abort.
                        while !cx.is_cancel_requested() {
                            yield_now().await;
                        }
                        let still_masked = std::future::poll_fn(|tcx| Poll::Ready(pending.as_mut().poll(tcx))).await;
                        assert!(still_masked.is_pending(), "inside the mask the sleep goes on");
                    }
                    observed.set(cx.checkpoint().is_err());
                })
                .unwrap()
            };
            until(|| ready.is_set()).await;
            task.abort();
            let _ = task.join(&cx).await;
            assert_eq!(observed.take(), Some(true), "unmasked after the drop (and the panic)");
        });
        assert_quiescent(&rt);
    }

    /// Masking defers observation, not the grace period (K4).
    fn a_masked_task_is_still_force_dropped_after_its_grace_period(d: Driver) {
        let rt = d.rt_with_grace(Duration::from_millis(20));
        rt.block_on(|cx| async move {
            let entered = Flag::new();
            let task = {
                let entered = entered.clone();
                cx.spawn(move |cx| async move {
                    cx.masked_async(async {
                        entered.set();
                        sleep(&cx, Duration::from_secs(3600)).await
                    })
                    .await
                })
                .unwrap()
            };
            until(|| entered.is_set()).await;
            task.abort();
            assert!(task.join(&cx).await.unwrap_err().is_cancelled());
        });
        assert!(!rt.stats().forced_drops.is_empty(), "the masked task was force-dropped");
        assert_quiescent(&rt);
    }
}

#[test]
fn in_the_lab_a_masked_sleep_runs_to_its_deadline_and_the_cancel_is_seen_right_after() {
    let lab = LabRuntime::new(LabConfig::new(9));
    lab.block_on(|cx| async move {
        let task = cx
            .spawn(|cx| async move {
                let inner = cx
                    .masked_async(async {
                        let r = sleep(&cx, Duration::from_secs(5)).await;
                        (r.is_ok(), cx.now())
                    })
                    .await;
                let after = sleep(&cx, Duration::from_secs(5)).await;
                (inner, after.is_err(), cx.now())
            })
            .unwrap();
        sleep(&cx, Duration::from_secs(1)).await.unwrap();
        let abort = task.abort_handle();
        abort.abort();
        // The task's output is dropped (it was cancelled); look at its
        // effect on time instead: it ended at 5 s, not at 1 s nor at 10 s.
        assert!(task.join(&cx).await.unwrap_err().is_cancelled());
        assert_eq!(cx.now(), Time::from_secs(5));
        assert!(abort.is_finished());
    });
}

/// Tasks with masked sections holding several await points; cancellation is
/// injected at each. Inside a mask nothing observes it; right after the mask
/// a requested cancellation is observed.
async fn masked_sections(cx: Cx) {
    let mut tasks = Vec::new();
    for t in 0..2u64 {
        tasks.push(
            cx.spawn(move |cx| async move {
                for round in 0..2u64 {
                    yield_now().await; // unmasked await point
                    if cx.checkpoint().is_err() {
                        return;
                    }
                    cx.masked_async(async {
                        yield_now().await;
                        assert!(cx.checkpoint().is_ok(), "masked: no cancellation observed");
                        let slept = sleep(&cx, Duration::from_millis(1 + t + round)).await;
                        assert!(slept.is_ok(), "masked: the sleep runs to its deadline");
                        yield_now().await;
                        assert!(cx.checkpoint().is_ok());
                    })
                    .await;
                    if cx.is_cancel_requested() {
                        assert!(cx.checkpoint().is_err(), "observed right after the mask");
                        return;
                    }
                }
            })
            .unwrap(),
        );
    }
    for t in tasks {
        let _ = t.join(&cx).await;
    }
}

#[test]
fn cancellation_injected_at_every_await_point_is_deferred_by_the_mask() {
    for seed in [1, 2] {
        let report = cancel_injection(InjectionConfig::new(seed), masked_sections);
        assert!(report.passed(), "{report}");
        assert!(report.points_found().len() >= 10, "{report}");
        assert_eq!(report.points_tried(), report.points_found(), "{report}");
    }
}
