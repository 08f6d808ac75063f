//! Cancelling light tasks in place (rules LT7 and LT8 in `kernel::light`):
//! an abort or a region cancel of a task the kernel keeps no record of is
//! stored in the task's cell, observed there, and settled by the task's
//! completion; the kernel takes over only when the task needs more than
//! the poll that observes it. These tests pin the protocol's visible
//! promises on both drivers: the reason each join reports, K3's
//! strengthening, K4's grace periods (individual and the region's), a
//! cancel that is never observed, and the A2 gauge returning to zero
//! (`assert_quiescent` checks it after every run).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use asupersync::kernel::TaskState;
use asupersync::types::{CancelKind, CancelReason, ForceDropCause};
use asupersync::{Cx, Outcome, TaskHandle, time, yield_now};
use support::*;

const HOUR: Duration = Duration::from_secs(3600);

fn forced_drops(rt: &asupersync::Runtime, cause: ForceDropCause) -> usize {
    rt.stats()
        .forced_drops
        .iter()
        .filter(|d| d.cause == cause)
        .count()
}

on_both_drivers! {
    /// An abort reaches a light task parked in a cancel-aware wait: the
    /// wait returns the reason, and the join reports it, timed and
    /// attributed to the aborted task (K3's stamp).
    fn an_aborted_light_task_joins_cancelled_with_the_reason_it_observed(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (id, reason, seen) =
                abort_a_sleeper(&cx, |h| h.abort_with(CancelReason::user("stop that"))).await;
            assert_eq!(reason.kind, CancelKind::User);
            assert_eq!(reason.message.as_deref(), Some("stop that"));
            assert_eq!(reason.origin_task, Some(id), "attributed to the aborted task");
            assert!(reason.timestamp > asupersync::types::Time::ZERO, "stamped");
            assert_eq!(seen, Some(reason), "the task observed the same reason");
        });
        assert_quiescent(&rt);
    }

    /// K3: requests only strengthen the reason; a weaker one after a
    /// stronger one changes nothing, whether the requests land in the cell
    /// or (after the task went pending and was registered) in the kernel.
    fn repeated_aborts_of_a_light_task_only_strengthen_its_reason(d: Driver) {
        let rt = d.rt();
        let rt_ref = &rt;
        rt.block_on(|cx: Cx| async move {
            let gate = Gate::new();
            let g = gate.clone();
            let h = spawn_started(&cx, move |cx| async move {
                g.wait().await; // not cancel-aware
                cx.checkpoint().map_err(|c| c.reason().kind)
            })
            .await;
            h.abort_with(CancelReason::user("first"));
            h.abort_with(CancelReason::shutdown());
            h.abort_with(CancelReason::user("weaker, later"));
            assert_eq!(rt_ref.task_state(h.task_id()), Some(TaskState::CancelRequested));
            gate.open();
            let err = h.join(&cx).await.expect_err("it observed the cancel");
            assert_eq!(err.cancel_reason().map(|r| r.kind), Some(CancelKind::Shutdown));
        });
        assert_quiescent(&rt);
    }

    /// A task asked to cancel that finishes without ever observing the
    /// request joins with its value (as a registered task would), and its
    /// `Cx` reports the request before any checkpoint.
    fn a_light_task_that_never_observes_its_abort_joins_with_its_value(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let gate = Gate::new();
            let g = gate.clone();
            let h = spawn_started(&cx, move |cx| async move {
                g.wait().await;
                let reported = cx.cancel_reason().map(|r| r.kind);
                (cx.is_cancel_requested(), reported)
            })
            .await;
            h.abort();
            gate.open();
            let (requested, kind) = h.join(&cx).await.expect("finished with its value");
            assert!(requested, "the Cx reports the pending request");
            assert_eq!(kind, Some(CancelKind::User));
        });
        assert_quiescent(&rt);
    }

    /// A light task whose cleanup takes several polls after observing its
    /// abort (the kernel registers it at its first pending poll, LT8) still
    /// ends `Cancelled`, with the cleanup budget installed by the
    /// acknowledgement.
    fn a_light_task_whose_cleanup_takes_several_polls_ends_cancelled(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let cleaned = Arc::new(AtomicU64::new(0));
            let c = cleaned.clone();
            let h = spawn_started(&cx, move |cx| async move {
                    let err = time::sleep(&cx, HOUR).await.expect_err("aborted");
                    let budget = cx.budget();
                    assert!(budget.poll_quota <= err.reason().kind.cleanup_budget().poll_quota);
                    for _ in 0..3 {
                        yield_now().await;
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    assert_eq!(cx.budget().poll_quota, budget.poll_quota.saturating_sub(3));
            })
            .await;
            h.abort();
            let err = h.join(&cx).await.expect_err("cancelled");
            assert!(err.is_cancelled());
            assert_eq!(cleaned.load(Ordering::Relaxed), 3, "the whole cleanup ran");
        });
        assert_quiescent(&rt);
    }

    /// K4 for an abort stored in the cell: a light task that ignores it is
    /// registered at its next pending poll and force-dropped when its grace
    /// period ends, its future dropped exactly once.
    fn a_light_task_ignoring_its_abort_is_force_dropped_after_its_grace(d: Driver) {
        let rt = d.rt_with_grace(Duration::from_millis(20));
        rt.block_on(|cx: Cx| async move {
            let dropped = Arc::new(AtomicU64::new(0));
            let counter = dropped.clone();
            let h = spawn_started(&cx, move |_cx| async move {
                let _guard = CountDrop(counter);
                std::future::pending::<()>().await; // never observes
            })
            .await;
            h.abort();
            let err = h.join(&cx).await.expect_err("force-dropped");
            assert!(err.is_cancelled(), "{err}");
            assert_eq!(dropped.load(Ordering::Relaxed), 1, "dropped exactly once");
        });
        assert_eq!(forced_drops(&rt, ForceDropCause::GraceExpired), 1);
        assert_quiescent(&rt);
    }

    /// K4 for a region cancel: light tasks cancelled in place share the
    /// region's grace timer, which registers and force-drops those that
    /// ignore it (LT8), while the ones that observe it end on their own.
    fn a_region_cancel_force_drops_the_light_tasks_that_ignore_it_at_its_grace(d: Driver) {
        let rt = d.rt_with_grace(Duration::from_millis(20));
        let observed = Arc::new(AtomicU64::new(0));
        let seen = observed.clone();
        rt.block_on(move |cx: Cx| async move {
            let parked = Arc::new(AtomicU64::new(0));
            let all = Gate::new();
            let outcome = cx
                .region({
                    let (parked, all) = (parked.clone(), all.clone());
                    move |cx| async move {
                        for i in 0..8u64 {
                            let (parked, all, seen) = (parked.clone(), all.clone(), seen.clone());
                            drop(cx.spawn(move |cx| async move {
                                let sleep = time::sleep(&cx, HOUR);
                                if parked.fetch_add(1, Ordering::AcqRel) + 1 == 8 {
                                    all.open();
                                }
                                if i % 2 == 0 {
                                    std::future::pending::<()>().await; // ignores it
                                }
                                sleep.await.expect_err("cancelled with the region");
                                seen.fetch_add(1, Ordering::Relaxed);
                            }));
                        }
                        all.wait().await;
                        Err::<(), &str>("fail")
                    }
                })
                .await;
            assert!(matches!(outcome, Outcome::Err("fail")), "{outcome:?}");
        });
        assert_eq!(observed.load(Ordering::Relaxed), 4);
        assert_eq!(forced_drops(&rt, ForceDropCause::GraceExpired), 4);
        assert_quiescent(&rt);
    }

    /// An `AbortHandle` outliving its task does nothing when used, and
    /// does not keep the task's cell alive.
    fn an_abort_handle_used_after_its_task_finished_does_nothing(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let h = cx.spawn(|_| async { 5u32 }).expect("spawn");
            let abort = h.abort_handle();
            assert_eq!(h.join(&cx).await, Ok(5));
            assert!(abort.is_finished());
            abort.abort();
            abort.abort_with(CancelReason::shutdown());
        });
        assert_quiescent(&rt);
    }
}

/// Spawns `body` and waits until the task has started (a task aborted
/// before its first poll is dropped unpolled, which these tests are not
/// about).
/// Spawns a light task parked on an hour's sleep, aborts it with `abort`
/// and joins it: its id, the reason its join reported and the one its
/// sleep returned.
async fn abort_a_sleeper(
    cx: &Cx,
    abort: impl FnOnce(&TaskHandle<()>),
) -> (
    asupersync::types::TaskId,
    CancelReason,
    Option<CancelReason>,
) {
    let seen = Slot::new();
    let slot = seen.clone();
    let h = spawn_started(cx, move |cx| async move {
        let err = time::sleep(&cx, HOUR).await.expect_err("aborted");
        slot.set(err.reason().clone());
    })
    .await;
    let id = h.task_id();
    abort(&h);
    let err = h.join(cx).await.expect_err("cancelled");
    let reason = err.cancel_reason().expect("a cancel").clone();
    (id, reason, seen.take())
}

async fn spawn_started<T, Fut>(
    cx: &Cx,
    body: impl FnOnce(Cx) -> Fut + Send + 'static,
) -> TaskHandle<T>
where
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let started = Gate::new();
    let opened = started.clone();
    let h = cx
        .spawn(move |cx| async move {
            opened.open();
            body(cx).await
        })
        .expect("spawn");
    started.wait().await;
    h
}

/// Counts its drops (a future dropped exactly once).
struct CountDrop(Arc<AtomicU64>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Aborts race completions and a region cancel on the multi-thread
/// runtime: every task's join agrees with what the task did (it returned
/// its value unless it observed a cancel), each task is counted once, and
/// the A2 gauge returns to zero (LT7, LT8).
#[test]
fn aborts_racing_completions_and_a_region_cancel_settle_every_task_once() {
    with_watchdog("aborts racing completions", || {
        let rt = Driver::MultiThread.rt();
        let mut rng = XorShift::new(0xAB0B_7ED5);
        for round in 0..40 {
            let seeds: Vec<u64> = (0..64).map(|_| rng.next_u64()).collect();
            rt.block_on(move |cx: Cx| async move {
                let outcome = cx
                    .region(move |cx| async move {
                        let mut handles = Vec::new();
                        for &seed in &seeds {
                            let h = cx
                                .spawn(move |cx| async move {
                                    for _ in 0..seed % 4 {
                                        yield_now().await;
                                    }
                                    if seed % 3 == 0 {
                                        // Observes a cancel if one came.
                                        cx.checkpoint().map(|()| seed).map_err(|c| c.reason().kind)
                                    } else {
                                        Ok(seed)
                                    }
                                })
                                .expect("spawn");
                            handles.push((seed, h));
                        }
                        for (i, (seed, h)) in handles.iter().enumerate() {
                            if seed % 5 < 2 {
                                h.abort();
                            }
                            if i % 16 == 0 {
                                yield_now().await;
                            }
                        }
                        for (seed, h) in handles {
                            match h.join(&cx).await {
                                Ok(Ok(v)) => assert_eq!(v, seed),
                                Ok(Err(kind)) => panic!("the task's own Err escaped: {kind:?}"),
                                Err(e) => assert!(e.is_cancelled(), "round {round}: {e}"),
                            }
                        }
                        Err::<(), ()>(()) // and a region cancel for any left
                    })
                    .await;
                assert!(matches!(outcome, Outcome::Err(())), "{outcome:?}");
            });
            assert_quiescent(&rt);
        }
    });
}

on_both_drivers! {
    /// CS1: a plain `abort()` (no message, cause or origin of its own) is
    /// stored without an allocation, yet the reason the task observes and
    /// the one its join reports are the same full reason: `User`, no
    /// message or cause, attributed to the aborted task and its region,
    /// stamped no later than the join's clock reading.
    fn a_plain_abort_joins_with_a_user_reason_attributed_to_the_task(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (id, reason, seen) = abort_a_sleeper(&cx, |h| h.abort()).await;
            let after = cx.now();
            assert_eq!(reason.kind, CancelKind::User);
            assert_eq!(reason.message, None);
            assert_eq!(reason.cause, None);
            assert_eq!(reason.origin_task, Some(id), "attributed to the aborted task");
            assert_eq!(reason.origin_region, Some(cx.region_id()), "and its region");
            assert!(reason.timestamp > asupersync::types::Time::ZERO, "stamped");
            assert!(reason.timestamp <= after, "never after the request");
            assert_eq!(seen, Some(reason), "the task observed the same reason");
        });
        assert_quiescent(&rt);
    }

    /// An abort from a plain thread (no driver keeps a recent clock
    /// reading there) is stamped from the clock: between a reading taken
    /// before the thread started and one taken after the join.
    fn an_abort_from_a_plain_thread_is_stamped_from_the_clock(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let h = spawn_started(&cx, move |cx| async move {
                let _ = time::sleep(&cx, HOUR).await;
            })
            .await;
            let (abort, id) = (h.abort_handle(), h.task_id());
            let before = cx.now();
            std::thread::spawn(move || abort.abort())
                .join()
                .expect("the aborting thread");
            let err = h.join(&cx).await.expect_err("cancelled");
            let after = cx.now();
            let reason = err.cancel_reason().expect("a cancel");
            assert_eq!(reason.origin_task, Some(id), "attributed to the aborted task");
            assert!(
                before <= reason.timestamp && reason.timestamp <= after,
                "stamped at the request: {before} <= {} <= {after}",
                reason.timestamp
            );
        });
        assert_quiescent(&rt);
    }

    /// K3 across both forms of a stored reason: a plain abort (`User`),
    /// then the region failing (`FailFast`, one shared reason, stronger):
    /// the task observes the region's reason, message and origin intact.
    fn a_region_cancel_outranks_a_plain_abort_stored_before_it(d: Driver) {
        let rt = d.rt();
        let seen = Slot::new();
        let slot = seen.clone();
        rt.block_on(|cx: Cx| async move {
            let region = Slot::new();
            let region_slot = region.clone();
            let outcome = cx
                .region(move |cx| async move {
                    region_slot.set(cx.region_id());
                    let h = spawn_started(&cx, move |cx| async move {
                        // Not cancel-aware until the region's cancel has
                        // arrived (asking the kernel each time).
                        while cx.cancel_reason().map(|r| r.kind) != Some(CancelKind::FailFast) {
                            yield_now().await;
                        }
                        slot.set(cx.checkpoint().expect_err("cancelled").into_reason());
                    })
                    .await;
                    h.abort();
                    drop(h);
                    Err::<(), ()>(()) // FailFast
                })
                .await;
            assert!(matches!(outcome, Outcome::Err(())), "region: {outcome:?}");
            let reason = seen.take().expect("observed");
            assert_eq!(reason.kind, CancelKind::FailFast, "the stronger reason");
            assert_eq!(reason.origin_region, region.take(), "the region's own");
        });
        assert_quiescent(&rt);
    }

    /// A region cancel reaches every light task of the region, most with
    /// their handles dropped (their completions read no reason, SW10):
    /// every task observes the region's `FailFast`, every finalizer runs,
    /// and the tasks still joined report the same reason.
    fn a_failing_region_cancels_its_light_tasks_whether_or_not_a_handle_remains(d: Driver) {
        let rt = d.rt();
        let observed = Arc::new(AtomicU64::new(0));
        let finalized = Arc::new(AtomicU64::new(0));
        let (obs, fin) = (observed.clone(), finalized.clone());
        rt.block_on(|cx: Cx| async move {
            let outcome = cx
                .region(move |cx| async move {
                    let mut kept = Vec::new();
                    for i in 0..64u64 {
                        let (obs, fin) = (obs.clone(), fin.clone());
                        let h = spawn_started(&cx, move |cx| async move {
                            cx.defer_sync(move || {
                                fin.fetch_add(1, Ordering::Relaxed);
                            })
                            .expect("region open");
                            let err = time::sleep(&cx, HOUR).await.expect_err("cancelled");
                            assert_eq!(err.reason().kind, CancelKind::FailFast);
                            obs.fetch_add(1, Ordering::Relaxed);
                        })
                        .await;
                        if i % 8 == 0 {
                            kept.push(h);
                        }
                    }
                    // The kept handles go with the body's failure; the
                    // tasks are still cancelled and drained.
                    drop(kept);
                    Err::<(), ()>(())
                })
                .await;
            assert!(matches!(outcome, Outcome::Err(())), "region: {outcome:?}");
        });
        assert_eq!(observed.load(Ordering::SeqCst), 64, "every task observed it");
        assert_eq!(finalized.load(Ordering::SeqCst), 64, "every finalizer ran");
        assert_quiescent(&rt);
    }

    /// LT10: a region cancel, whose sweep runs after the kernel lock is
    /// released, races tasks that keep spawning into the region, tasks that
    /// the kernel registers (a masked section needs a record) and tasks
    /// that complete on their own. Every spawn is refused (the region's
    /// reason) or accepted, and every accepted task ends exactly once, as
    /// its join says: completed on its own, or cancelled with the region's
    /// reason (observed by its sleep, or dropped before its first poll),
    /// whether it was light or registered when the cancel came.
    fn a_region_cancel_racing_spawns_registrations_and_completions_ends_every_task_once(d: Driver) {
        let rt = d.rt();
        for round in 0..20u64 {
            let handles = Arc::new(std::sync::Mutex::new(Vec::new()));
            let observed = Arc::new(AtomicU64::new(0));
            let (hs, obs, seen) = (handles.clone(), observed.clone(), handles.clone());
            let joins = handles;
            let cancelled = rt.block_on(move |cx: Cx| async move {
                let outcome = cx
                    .region(move |rcx| async move {
                        for s in 0..3u64 {
                            let (hs, obs) = (hs.clone(), obs.clone());
                            let spawner = rcx.spawn(move |scx| async move {
                                for i in 0u64.. {
                                    let obs = obs.clone();
                                    let kind = (s + i + round) % 3;
                                    let spawned = scx.spawn(move |tcx| async move {
                                        let slept = match kind {
                                            0 => time::sleep(&tcx, HOUR).await,
                                            // Registered by its mask, cancelled after it.
                                            1 => {
                                                tcx.masked_async(yield_now()).await;
                                                time::sleep(&tcx, HOUR).await
                                            }
                                            _ => return true,
                                        };
                                        let err = slept.expect_err("only a cancel ends the sleep");
                                        assert_eq!(err.reason().kind, CancelKind::FailFast);
                                        obs.fetch_add(1, Ordering::Relaxed);
                                        false
                                    });
                                    match spawned {
                                        Ok(h) => hs.lock().unwrap().push(h),
                                        Err(e) => {
                                            assert!(
                                                matches!(e, asupersync::SpawnError::RegionCancelled(..)),
                                                "refused with the region's reason: {e}"
                                            );
                                            return;
                                        }
                                    }
                                    if scx.checkpoint().is_err() {
                                        return;
                                    }
                                    yield_now().await;
                                }
                            });
                            drop(spawner.expect("the region is open"));
                        }
                        // Let the spawners get going, then fail the region.
                        let target = (round as usize + 1) * 10;
                        until(|| seen.lock().unwrap().len() >= target).await;
                        Err::<(), ()>(())
                    })
                    .await;
                assert!(matches!(outcome, Outcome::Err(())), "region: {outcome:?}");
                // The region is closed: every accepted task has ended, and
                // its join says how. A task that observed the cancel ends
                // `Cancelled` (its acknowledgement decides, LT8).
                let handles = std::mem::take(&mut *joins.lock().unwrap());
                let accepted = handles.len();
                let (mut completed, mut cancelled) = (0usize, 0u64);
                for h in handles {
                    match h.join(&cx).await {
                        Ok(ran) => {
                            assert!(ran, "a task that saw the cancel ends cancelled");
                            completed += 1;
                        }
                        Err(e) => {
                            let reason = e.cancel_reason().expect("cancelled, not panicked");
                            assert_eq!(reason.kind, CancelKind::FailFast);
                            cancelled += 1;
                        }
                    }
                }
                assert_eq!(completed + cancelled as usize, accepted, "round {round}: each ended once");
                cancelled
            });
            let observed = observed.load(Ordering::SeqCst);
            assert!(observed <= cancelled, "round {round}: observed {observed} of {cancelled}");
        }
        assert_quiescent(&rt);
    }
}
