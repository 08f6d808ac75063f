//! `Cx` capabilities (`restrict`) and budgets (`spawn_with_budget`, poll
//! quota, deadline, cost quota, cleanup budget).

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use asupersync::cx::Capabilities;
use asupersync::time::{sleep, timeout};
use asupersync::types::{CancelKind, CancelReason};
use asupersync::{Budget, Cx, JoinError, RuntimeBuilder, SpawnError, Time, yield_now};
use support::{Gate, for_each_driver};

const HOUR: Duration = Duration::from_secs(3600);

fn panic_message(e: &JoinError) -> String {
    e.panic_payload()
        .unwrap_or_else(|| panic!("expected a panic, got {e:?}"))
        .message()
        .to_string()
}

// ----- capabilities ----------------------------------------------------------

#[test]
fn a_cx_without_spawn_cannot_spawn() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            assert_eq!(
                cx.capabilities(),
                Capabilities::ALL,
                "[{name}] root has everything"
            );
            let narrowed = cx.restrict(Capabilities::ALL.without(Capabilities::SPAWN));
            assert!(!narrowed.capabilities().contains(Capabilities::SPAWN));
            assert!(narrowed.capabilities().contains(Capabilities::TIME));
            match narrowed.spawn(|_| async { 1 }) {
                Err(SpawnError::CapabilityDenied(cap)) => {
                    assert!(cap.contains("spawn"), "[{name}] {cap}")
                }
                other => panic!("[{name}] expected CapabilityDenied, got {other:?}"),
            }
            match narrowed.spawn_with_budget(Budget::new(), |_| async { 1 }) {
                Err(e @ SpawnError::CapabilityDenied(_)) => {
                    assert!(e.to_string().contains("spawn"), "[{name}] Display: {e}")
                }
                other => panic!("[{name}] expected CapabilityDenied, got {other:?}"),
            }
            // Narrowing is per-Cx: the original still spawns.
            let h = cx
                .spawn(|_| async { 2 })
                .expect("the unrestricted cx still spawns");
            assert_eq!(h.join(&cx).await, Ok(2));
            // Other effects of the narrowed cx still work.
            sleep(&narrowed, Duration::from_millis(1)).await.unwrap();
            assert!(narrowed.try_now().is_some());
        });
    });
}

#[test]
fn narrowing_can_never_widen() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let narrowed = cx.restrict(Capabilities::ALL.without(Capabilities::SPAWN));
            let again = narrowed.restrict(Capabilities::ALL);
            assert_eq!(again.capabilities(), narrowed.capabilities(), "[{name}]");
            assert!(
                matches!(
                    again.spawn(|_| async {}),
                    Err(SpawnError::CapabilityDenied(_))
                ),
                "[{name}] restrict(ALL) must not give SPAWN back"
            );
            let none = cx.restrict(Capabilities::NONE);
            assert_eq!(
                none.restrict(Capabilities::ALL).capabilities(),
                Capabilities::NONE
            );
            assert_eq!(
                cx.restrict(Capabilities::TIME)
                    .restrict(Capabilities::SPAWN)
                    .capabilities(),
                Capabilities::NONE,
                "[{name}] successive restrictions intersect"
            );
            // A clone keeps the narrowing.
            assert_eq!(narrowed.clone().capabilities(), narrowed.capabilities());
        });
    });
}

#[test]
fn tasks_and_regions_inherit_the_narrowed_capabilities() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let no_time = cx.restrict(Capabilities::ALL.without(Capabilities::TIME));
            let h = no_time
                .spawn(|cx| async move { (cx.capabilities(), cx.try_now()) })
                .unwrap();
            let (caps, now) = h.join(&cx).await.unwrap();
            assert!(
                !caps.contains(Capabilities::TIME) && now.is_none(),
                "[{name}] a child of a Cx without TIME must not regain it ({caps:?})"
            );
            let out = no_time
                .region(|cx| async move { Ok::<_, ()>(cx.capabilities()) })
                .await;
            match out {
                asupersync::Outcome::Ok(caps) => {
                    assert!(
                        !caps.contains(Capabilities::TIME),
                        "[{name}] region body {caps:?}"
                    )
                }
                other => panic!("[{name}] {other:?}"),
            }
        });
    });
}

#[test]
fn now_without_time_panics_naming_the_capability_and_try_now_is_none() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let none = cx.restrict(Capabilities::NONE);
            assert_eq!(none.try_now(), None, "[{name}]");
            assert!(cx.try_now().is_some(), "[{name}]");

            let h = cx
                .spawn(|cx| async move {
                    let _ = cx
                        .restrict(Capabilities::ALL.without(Capabilities::TIME))
                        .now();
                })
                .unwrap();
            let e = h.join(&cx).await.expect_err("now() without TIME panics");
            let msg = panic_message(&e);
            assert!(msg.contains("capability"), "[{name}] {msg:?}");
            assert!(
                msg.contains("time"),
                "[{name}] names the missing capability: {msg:?}"
            );

            // The timer constructors need TIME as well.
            let h = cx
                .spawn(|cx| async move {
                    let c = cx.restrict(Capabilities::SPAWN);
                    drop(sleep(&c, HOUR));
                })
                .unwrap();
            let msg = panic_message(&h.join(&cx).await.expect_err("sleep needs TIME"));
            assert!(msg.contains("capability"), "[{name}] {msg:?}");
            let h = cx
                .spawn(|cx| async move {
                    let c = cx.restrict(Capabilities::SPAWN);
                    drop(timeout(&c, HOUR, async {}));
                })
                .unwrap();
            let msg = panic_message(&h.join(&cx).await.expect_err("timeout needs TIME"));
            assert!(msg.contains("capability"), "[{name}] {msg:?}");
        });
    });
}

#[test]
fn capabilities_set_algebra() {
    let all = Capabilities::ALL;
    for c in [
        Capabilities::SPAWN,
        Capabilities::TIME,
        Capabilities::IO,
        Capabilities::RANDOM,
    ] {
        assert!(all.contains(c));
        assert!(!all.without(c).contains(c));
        assert!(!Capabilities::NONE.contains(c));
        assert_eq!(all.without(c).union(c), all);
        assert_eq!(all.intersect(c), c);
    }
    assert!(all.contains(Capabilities::NONE));
    let dbg = format!("{:?}", Capabilities::SPAWN.union(Capabilities::TIME));
    assert!(dbg.contains("spawn") && dbg.contains("time"), "{dbg}");
}

// ----- budgets -----------------------------------------------------------------

#[test]
fn spawn_with_budget_is_met_with_the_region_budget() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            assert_eq!(
                cx.budget(),
                Budget::INFINITE,
                "[{name}] default root budget"
            );
            let far = cx.now() + HOUR;
            let farther = far + HOUR;
            let region_budget = Budget::new()
                .with_poll_quota(1_000)
                .with_priority(3)
                .with_deadline(far);
            let out = cx
                .region_with_budget(region_budget, |cx| async move {
                    let asked = Budget::new()
                        .with_poll_quota(5_000)
                        .with_cost_quota(10)
                        .with_priority(1)
                        .with_deadline(farther);
                    let h = cx
                        .spawn_with_budget(asked, |cx| async move { cx.budget() })
                        .unwrap();
                    let child = h.join(&cx).await.unwrap();
                    let plain = cx.spawn(|cx| async move { cx.budget() }).unwrap();
                    let plain = plain.join(&cx).await.unwrap();
                    Ok::<_, ()>((child, plain))
                })
                .await;
            let (child, plain) = match out {
                asupersync::Outcome::Ok(v) => v,
                other => panic!("[{name}] {other:?}"),
            };
            // `poll_quota` is the remaining allowance: the poll that read it used one.
            assert_eq!(
                child.poll_quota, 999,
                "[{name}] min of the poll quotas, minus one poll"
            );
            assert_eq!(
                child.cost_quota,
                Some(10),
                "[{name}] only the child asked for one"
            );
            assert_eq!(child.priority, 3, "[{name}] max of the priorities");
            assert_eq!(child.deadline, Some(far), "[{name}] the earlier deadline");
            let mut expected = region_budget;
            expected.poll_quota -= 1; // the poll that read it
            assert_eq!(plain, expected, "[{name}] spawn() gets the region's budget");

            // A tighter request wins over a looser region.
            let h = cx
                .spawn_with_budget(Budget::new().with_poll_quota(77), |cx| async move {
                    cx.budget()
                })
                .unwrap();
            assert_eq!(
                h.join(&cx).await.unwrap().poll_quota,
                76,
                "[{name}] 77 minus the poll that read it"
            );
        });
    });
}

#[test]
fn the_builder_root_budget_reaches_every_task() {
    let rt = RuntimeBuilder::current_thread()
        .root_budget(Budget::new().with_priority(7).with_cost_quota(1_000))
        .build()
        .unwrap();
    let (root, child) = rt.block_on(|cx: Cx| async move {
        let h = cx.spawn(|cx| async move { cx.budget() }).unwrap();
        (cx.budget(), h.join(&cx).await.unwrap())
    });
    assert_eq!(root.priority, 7);
    assert_eq!(child.priority, 7);
    assert_eq!(child.cost_quota, Some(1_000));
}

/// On every poll: checkpoint; Ok → count it and yield (self-wake); Err →
/// finish with the reason and the number of polls that passed.
struct CheckpointSpinner {
    cx: Cx,
    ok_polls: Arc<AtomicU32>,
}

impl Future for CheckpointSpinner {
    type Output = CancelReason;
    fn poll(self: Pin<&mut Self>, tcx: &mut Context<'_>) -> Poll<CancelReason> {
        match self.cx.checkpoint() {
            Ok(()) => {
                self.ok_polls.fetch_add(1, Ordering::SeqCst);
                tcx.waker().wake_by_ref();
                Poll::Pending
            }
            Err(c) => Poll::Ready(c.into_reason()),
        }
    }
}

#[test]
fn exhausting_the_poll_quota_cancels_with_poll_quota() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            for quota in [1u32, 5, 40] {
                let ok_polls = Arc::new(AtomicU32::new(0));
                let seen = Arc::new(Mutex::new(None));
                let (op, s2) = (ok_polls.clone(), seen.clone());
                let h = cx
                    .spawn_with_budget(Budget::new().with_poll_quota(quota), move |cx| {
                        let spinner = CheckpointSpinner { cx, ok_polls: op };
                        async move {
                            let r = spinner.await;
                            *s2.lock().unwrap() = Some(r);
                        }
                    })
                    .unwrap();
                let e = h.join(&cx).await.expect_err("over quota");
                assert_eq!(
                    e.cancel_reason().map(|r| r.kind),
                    Some(CancelKind::PollQuota),
                    "[{name}] quota {quota}: {e:?}"
                );
                let r = seen
                    .lock()
                    .unwrap()
                    .clone()
                    .expect("the task saw its checkpoint fail");
                assert_eq!(r.kind, CancelKind::PollQuota, "[{name}]");
                assert_eq!(
                    ok_polls.load(Ordering::SeqCst),
                    quota,
                    "[{name}] exactly `poll_quota` polls run before the PollQuota cancel"
                );
            }
        });
    });
}

#[test]
fn a_task_yielding_forever_under_a_poll_quota_hits_a_checkpoint_error() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let h = cx
                .spawn_with_budget(Budget::new().with_poll_quota(5), |cx| async move {
                    let mut iterations = 0u32;
                    loop {
                        yield_now().await;
                        iterations += 1;
                        if let Err(c) = cx.checkpoint() {
                            return (c.reason().kind, iterations);
                        }
                        assert!(iterations < 10_000, "the poll quota never fired");
                    }
                })
                .unwrap();
            let e = h.join(&cx).await.expect_err("cancelled");
            assert_eq!(
                e.cancel_reason().unwrap().kind,
                CancelKind::PollQuota,
                "[{name}]"
            );
        });
    });
}

#[test]
fn a_budget_deadline_cancels_a_sleeping_task_with_deadline_never_early() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let deadline = cx.now() + Duration::from_millis(15);
            let seen = Arc::new(Mutex::new(None));
            let s2 = seen.clone();
            let h = cx
                .spawn_with_budget(
                    Budget::new().with_deadline(deadline),
                    move |cx| async move {
                        let r = sleep(&cx, HOUR).await;
                        *s2.lock().unwrap() = Some((r.map_err(|c| c.reason().kind), cx.now()));
                    },
                )
                .unwrap();
            let e = h
                .join(&cx)
                .await
                .expect_err("the deadline cancels the task");
            assert_eq!(
                e.cancel_reason().unwrap().kind,
                CancelKind::Deadline,
                "[{name}] {e:?}"
            );
            let (r, at) = (*seen.lock().unwrap()).expect("the sleep returned");
            assert_eq!(r, Err(CancelKind::Deadline), "[{name}]");
            assert!(
                at >= deadline,
                "[{name}] cancelled at {at:?}, before the deadline {deadline:?}"
            );
        });
    });
}

#[test]
fn a_task_spawned_with_a_past_deadline_joins_cancelled_deadline() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            sleep(&cx, Duration::from_millis(1)).await.unwrap();
            let h = cx
                .spawn_with_budget(Budget::new().with_deadline(Time::ZERO), |cx| async move {
                    cx.checkpoint().map_err(|c| c.into_reason())?;
                    sleep(&cx, HOUR).await.map_err(|c| c.into_reason())
                })
                .unwrap();
            let e = h.join(&cx).await.expect_err("already past its deadline");
            assert_eq!(
                e.cancel_reason().unwrap().kind,
                CancelKind::Deadline,
                "[{name}]"
            );
        });
    });
}

#[test]
fn a_task_that_finishes_before_its_deadline_is_not_cancelled() {
    for_each_driver(|name, rt| {
        let rt_ref = &rt;
        rt.block_on(|cx: Cx| async move {
            let h = cx
                .spawn_with_budget(
                    Budget::new().with_deadline(cx.now() + HOUR),
                    |cx| async move {
                        sleep(&cx, Duration::from_millis(1)).await.unwrap();
                        cx.checkpoint().is_ok()
                    },
                )
                .unwrap();
            assert_eq!(h.join(&cx).await, Ok(true), "[{name}]");
            assert_eq!(
                rt_ref.pending_timers(),
                0,
                "[{name}] a finished task's deadline timer is released"
            );
        });
    });
}

#[test]
fn charging_past_the_cost_quota_cancels_with_cost_budget() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let s2 = seen.clone();
            let h = cx
                .spawn_with_budget(Budget::new().with_cost_quota(10), move |cx| async move {
                    for cost in [4u64, 6, 1] {
                        let r = cx.charge(cost).map_err(|c| c.reason().kind);
                        s2.lock().unwrap().push(r);
                    }
                })
                .unwrap();
            let e = h.join(&cx).await.expect_err("over the cost quota");
            assert_eq!(
                e.cancel_reason().unwrap().kind,
                CancelKind::CostBudget,
                "[{name}]"
            );
            assert_eq!(
                *seen.lock().unwrap(),
                vec![Ok(()), Ok(()), Err(CancelKind::CostBudget)],
                "[{name}] charging up to the quota is fine; past it is not"
            );
            // Without a cost quota, charging never cancels.
            let h = cx
                .spawn(
                    |cx| async move { cx.charge(u64::MAX).is_ok() && cx.charge(u64::MAX).is_ok() },
                )
                .unwrap();
            assert_eq!(h.join(&cx).await, Ok(true), "[{name}]");
        });
    });
}

#[test]
fn acknowledging_a_cancel_tightens_the_budget_to_the_cleanup_budget() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            for reason in [
                CancelReason::user("u"),
                CancelReason::timeout(),
                CancelReason::fail_fast(),
                CancelReason::shutdown(),
            ] {
                let kind = reason.kind;
                let seen = Arc::new(Mutex::new(None));
                let started = Gate::new();
                let gate = Gate::new();
                let (s2, st, g) = (seen.clone(), started.clone(), gate.clone());
                let h = cx
                    .spawn(move |cx| async move {
                        let before = cx.budget();
                        st.open();
                        g.wait().await;
                        let ack = cx.checkpoint().map_err(|c| c.reason().kind);
                        *s2.lock().unwrap() = Some((before, ack, cx.budget()));
                    })
                    .unwrap();
                started.wait().await;
                h.abort_with(reason);
                gate.open();
                let e = h.join(&cx).await.expect_err("cancelled");
                assert_eq!(e.cancel_reason().unwrap().kind, kind, "[{name}]");
                let (before, ack, after) = (*seen.lock().unwrap()).unwrap();
                assert_eq!(before.poll_quota, u32::MAX, "[{name}]");
                assert_eq!(ack, Err(kind), "[{name}]");
                let cleanup = kind.cleanup_budget();
                assert!(
                    after.poll_quota <= cleanup.poll_quota,
                    "[{name}] {kind:?}: poll quota {} after acknowledging, cleanup allows {}",
                    after.poll_quota,
                    cleanup.poll_quota
                );
            }
        });
    });
}

/// A task that has already been polled more often than the cleanup poll
/// quota of `reason`'s kind is cancelled with `reason`, acknowledges it and
/// cleans up for a few polls. Its cleanup polls must not be mistaken for an
/// exhausted poll quota (that would replace the reason it joins with).
fn cancel_after_many_polls(reason: CancelReason, polls_before: u32) {
    for_each_driver(move |name, rt| {
        let reason = reason.clone();
        rt.block_on(|cx: Cx| async move {
            let kind = reason.kind;
            let msg = reason.message.clone();
            let spinning = Gate::new();
            let sp = spinning.clone();
            let h = cx
                .spawn(move |cx| async move {
                    for i in 0..polls_before {
                        if i == polls_before - 1 {
                            sp.open();
                        }
                        yield_now().await;
                    }
                    // Spin until the cancel arrives, then clean up for a few
                    // polls.
                    while cx.checkpoint().is_ok() {
                        yield_now().await;
                    }
                    for _ in 0..3 {
                        yield_now().await;
                    }
                })
                .unwrap();
            spinning.wait().await;
            h.abort_with(reason);
            let e = h.join(&cx).await.expect_err("cancelled");
            let r = e.cancel_reason().unwrap();
            assert_eq!(
                (r.kind, r.message.clone()),
                (kind, msg),
                "[{name}] a task cancelled with {kind:?} after {polls_before} polls must join \
                 with that reason, got {r:?}"
            );
        });
    });
}

#[test]
fn a_task_aborted_after_few_polls_joins_with_the_abort_reason() {
    // Control case: fewer polls than any cleanup quota.
    cancel_after_many_polls(CancelReason::user("stop"), 10);
    cancel_after_many_polls(CancelReason::timeout().with_message("late"), 10);
}

#[test]
fn a_long_running_task_aborted_by_the_user_still_joins_with_its_own_reason() {
    // User's cleanup budget allows 10_000 polls.
    cancel_after_many_polls(CancelReason::user("stop"), 10_050);
}

#[test]
fn a_long_running_task_cancelled_with_timeout_still_joins_with_its_own_reason() {
    // Timeout's cleanup budget allows 5_000 polls.
    cancel_after_many_polls(CancelReason::timeout().with_message("late"), 5_050);
}

#[test]
fn masked_sections_defer_the_checkpoint_error() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let seen = Arc::new(Mutex::new(None));
            let started = Gate::new();
            let gate = Gate::new();
            let (s2, st, g) = (seen.clone(), started.clone(), gate.clone());
            let h = cx
                .spawn(move |cx| async move {
                    st.open();
                    g.wait().await;
                    let inside = cx.masked(|| cx.checkpoint().is_ok());
                    let requested = cx.is_cancel_requested();
                    let outside = cx.checkpoint().is_ok();
                    *s2.lock().unwrap() = Some((inside, requested, outside));
                })
                .unwrap();
            started.wait().await;
            h.abort();
            gate.open();
            let _ = h.join(&cx).await;
            assert_eq!(
                *seen.lock().unwrap(),
                Some((true, true, false)),
                "[{name}] (checkpoint inside mask ok, request visible, checkpoint after mask err)"
            );
        });
    });
}
