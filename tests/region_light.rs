//! Light regions (rules LR1–LR6 in `kernel::light_region`): regions opened,
//! used and closed without the kernel lock, registered with the kernel
//! only when it must act on them. These tests aim at the hand-offs: a
//! cancel of the parent or of the owner reaching a light region's tasks,
//! registration on demand (a budgeted spawn, a finalizer, a body that
//! fails or returns with tasks still running), the close racing a parent
//! cancel, and the diagnostics that must still see every region.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use asupersync::kernel::RegionState;
use asupersync::types::{Budget, CancelKind};
use asupersync::{Cx, Outcome, Runtime, time, yield_now};
use support::*;

const HOUR: Duration = Duration::from_secs(3600);

/// Runs `body` as the body of a region that a spawned task opens (so the
/// region is light), logging "region returned" once the region future
/// resolved (it must resolve `Ok`); returns the log.
fn open_from_a_task<B, Fut>(rt: &Runtime, body: B) -> Vec<String>
where
    B: FnOnce(Cx, Log) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), ()>> + Send + 'static,
{
    let log = Log::new();
    let l = log.clone();
    rt.block_on(move |cx: Cx| async move {
        let h = cx
            .spawn(move |cx| async move {
                let lb = l.clone();
                let out = cx.region(move |cx| body(cx, lb)).await;
                l.push("region returned");
                out
            })
            .unwrap();
        assert!(matches!(h.join(&cx).await.unwrap(), Outcome::Ok(())));
    });
    log.snapshot()
}

/// A task body that parks on an hour's sleep, calls `parked` once it is
/// parked, and expects its region's parent to be cancelled (counted in
/// `seen`).
async fn parked_until_parent_cancel(cx: Cx, parked: impl FnOnce(), seen: Arc<AtomicU64>) {
    let sleep = time::sleep(&cx, HOUR);
    parked();
    let err = sleep.await.expect_err("cancelled");
    assert_eq!(err.reason().kind, CancelKind::ParentCancelled);
    seen.fetch_add(1, Ordering::Relaxed);
}

on_both_drivers! {
    /// An empty region opened from a task closes with `Ok`, is seen as
    /// `Open` while its body runs and never again after, and is counted
    /// in the statistics like any region.
    fn a_light_region_is_open_while_its_body_runs_and_counted_when_closed(d: Driver) {
        let rt = d.rt();
        let rtr = &rt;
        let before = rt.stats().regions_created;
        rt.block_on(|cx: Cx| async move {
            let h = cx
                .spawn(move |cx| async move {
                    let mut ids = Vec::new();
                    for _ in 0..50 {
                        let id = cx
                            .region(|rcx| async move { Ok::<_, ()>(rcx.region_id()) })
                            .await
                            .unwrap();
                        ids.push(id);
                    }
                    ids
                })
                .unwrap();
            let ids = h.join(&cx).await.unwrap();
            let mut sorted = ids.clone();
            sorted.dedup();
            assert_eq!(sorted.len(), 50, "every region gets a fresh id");
            for id in ids {
                assert_eq!(rtr.region_state(id), None, "a closed region id is stale");
            }
            let seen = cx
                .region(|rcx| async move { Ok::<_, ()>(rtr.region_state(rcx.region_id())) })
                .await
                .unwrap();
            assert_eq!(seen, Some(RegionState::Open));
        });
        assert_quiescent(&rt);
        assert_eq!(rt.stats().regions_created - before, 52, "the root, 50 and one more");
    }

    /// LR3: a cancel of the region a light region was opened in reaches
    /// the tasks spawned in the light region (ParentCancelled), and the
    /// owner's region future returns once they drained.
    fn a_parent_cancel_reaches_the_tasks_of_its_light_child_regions(d: Driver) {
        let rt = d.rt();
        let cancelled = Arc::new(AtomicU64::new(0));
        let seen = cancelled.clone();
        rt.block_on(move |cx: Cx| async move {
            let parked = Arc::new(AtomicU64::new(0));
            let all_parked = Gate::new();
            let outcome = cx
                .region(move |cx| async move {
                    for _ in 0..8 {
                        let (seen, parked, all) = (seen.clone(), parked.clone(), all_parked.clone());
                        drop(cx.spawn(move |cx| async move {
                            let inner = cx
                                .region(move |cx| async move {
                                    for _ in 0..4 {
                                        let (seen, parked, all) =
                                            (seen.clone(), parked.clone(), all.clone());
                                        let parked = move || {
                                            if parked.fetch_add(1, Ordering::AcqRel) + 1 == 32 {
                                                all.open();
                                            }
                                        };
                                        drop(cx.spawn(move |cx| {
                                            parked_until_parent_cancel(cx, parked, seen)
                                        }));
                                    }
                                    Ok::<(), ()>(())
                                })
                                .await;
                            assert!(matches!(inner, Outcome::Ok(())), "{inner:?}");
                        }));
                    }
                    all_parked.wait().await;
                    Err::<(), &str>("fail the outer region")
                })
                .await;
            assert!(matches!(outcome, Outcome::Err(_)), "{outcome:?}");
        });
        assert_eq!(cancelled.load(Ordering::Relaxed), 32);
        assert_quiescent(&rt);
    }

    /// LR5: aborting the task whose body runs a light region cancels the
    /// region's tasks (K2: a cancelled task's regions are cancelled), and
    /// the task itself ends cancelled.
    fn aborting_the_owner_of_a_light_region_cancels_the_region_s_tasks(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let parked = Gate::new();
            let p = parked.clone();
            let reason = Slot::new();
            let r = reason.clone();
            let owner = cx
                .spawn(move |cx| async move {
                    let _ = cx
                        .region(move |cx| async move {
                            drop(cx.spawn(move |cx| async move {
                                let sleep = time::sleep(&cx, HOUR);
                                p.open();
                                let err = sleep.await.expect_err("cancelled");
                                r.set(err.reason().kind);
                            }));
                            // The body waits too, cancel-aware.
                            time::sleep(&cx, HOUR).await.map_err(|_| ())
                        })
                        .await;
                })
                .unwrap();
            parked.wait().await;
            owner.abort();
            let joined = owner.join(&cx).await;
            assert!(joined.expect_err("aborted").is_cancelled());
            assert_eq!(reason.take(), Some(CancelKind::ParentCancelled));
        });
        assert_quiescent(&rt);
    }

    /// LR5: a light task that opens light regions (and spawns and joins
    /// in them) stays light: the kernel keeps no record of it, so a region
    /// per request takes no kernel lock.
    fn a_light_task_that_opens_light_regions_stays_unregistered(d: Driver) {
        let rt = d.rt();
        let rtr = &rt;
        rt.block_on(|cx: Cx| async move {
            let before = rtr.registered_tasks();
            let (done, release) = (Gate::new(), Gate::new());
            let (dn, rl) = (done.clone(), release.clone());
            let owner = cx
                .spawn(move |cx| async move {
                    let mut sum = 0;
                    for i in 0..20u64 {
                        sum += cx
                            .region(move |rcx| async move {
                                let child = rcx.spawn(move |_| async move { i }).unwrap();
                                child.join(&rcx).await.map_err(|_| ())
                            })
                            .await
                            .unwrap();
                    }
                    dn.open();
                    rl.wait().await;
                    sum
                })
                .unwrap();
            done.wait().await;
            assert_eq!(rtr.registered_tasks(), before, "no record of the owner");
            release.open();
            assert_eq!(owner.join(&cx).await.unwrap(), 190);
        });
        assert_quiescent(&rt);
    }

    /// LR5: light owners nest: a task opens a region whose task opens a
    /// region whose task opens one, all without a kernel record; aborting
    /// the outermost owner reaches the innermost task (K2, three levels of
    /// ParentCancelled) and leaves nothing behind.
    fn owners_three_light_levels_deep_are_reached_by_an_abort_of_the_outermost(d: Driver) {
        fn level(cx: Cx, depth: u32, parked: Gate, seen: Slot<CancelKind>) -> BoxedUnit {
            Box::pin(async move {
                let _ = cx
                    .region(move |rcx| async move {
                        let inner = rcx.clone();
                        let child = rcx
                            .spawn(move |tcx| async move {
                                if depth == 0 {
                                    let sleep = time::sleep(&tcx, HOUR);
                                    parked.open();
                                    let err = sleep.await.expect_err("cancelled");
                                    seen.set(err.reason().kind);
                                } else {
                                    level(tcx, depth - 1, parked, seen).await;
                                }
                            })
                            .unwrap();
                        let _ = child.join(&inner).await;
                        Ok::<_, ()>(())
                    })
                    .await;
            })
        }
        type BoxedUnit = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;
        let rt = d.rt();
        let rtr = &rt;
        rt.block_on(|cx: Cx| async move {
            let before = rtr.registered_tasks();
            let (parked, seen) = (Gate::new(), Slot::new());
            let (p, s) = (parked.clone(), seen.clone());
            let outer = cx.spawn(move |cx| level(cx, 2, p, s)).unwrap();
            parked.wait().await;
            assert_eq!(rtr.registered_tasks(), before, "every owner light");
            outer.abort();
            // The outer task joins cancelled only if one of its waits saw
            // the abort first: a body whose child finished first returns
            // that output (see `TaskHandle::join`).
            let _ = outer.join(&cx).await;
            assert_eq!(seen.take(), Some(CancelKind::ParentCancelled));
        });
        assert_quiescent(&rt);
    }

    /// SW15, LR5 raced: owners are aborted at random moments around the
    /// opening of their first region, whose task and body wait an hour
    /// (cancel-aware), so only the cascade of the abort can end them: each
    /// owner's join must come back (no task of a region left behind, which
    /// would keep it waiting for an hour), and every task that started saw
    /// the cancel.
    fn aborts_racing_an_owner_s_first_region_open_always_reach_its_tasks(d: Driver) {
        let rt = d.rt();
        let mut rng = XorShift::new(0x0a11_ce15);
        let plan: Vec<(bool, u64)> = (0..200).map(|_| (rng.below(2) == 0, rng.below(6))).collect();
        rt.block_on(move |cx: Cx| async move {
            let started = Arc::new(AtomicU64::new(0));
            let cancelled = Arc::new(AtomicU64::new(0));
            for (after_start, yields) in plan {
                let (st, ca) = (started.clone(), cancelled.clone());
                let running = Flag::new();
                let r = running.clone();
                let owner = cx
                    .spawn(move |cx| async move {
                        r.set();
                        let _ = cx
                            .region(move |rcx| async move {
                                drop(rcx.spawn(move |tcx| async move {
                                    st.fetch_add(1, Ordering::SeqCst);
                                    if time::sleep(&tcx, HOUR).await.is_err() {
                                        ca.fetch_add(1, Ordering::SeqCst);
                                    }
                                }));
                                time::sleep(&rcx, HOUR).await.map_err(|_| ())
                            })
                            .await;
                    })
                    .unwrap();
                if after_start {
                    until(|| running.is_set()).await;
                }
                for _ in 0..yields {
                    yield_now().await;
                }
                owner.abort();
                let joined = time::timeout(&cx, Duration::from_secs(20), owner.join(&cx)).await;
                assert!(joined.is_ok(), "an owner's region kept a task after its abort");
            }
            assert!(started.load(Ordering::SeqCst) > 0, "some regions opened");
            assert_eq!(
                started.load(Ordering::SeqCst),
                cancelled.load(Ordering::SeqCst),
                "every task that started saw the cancel"
            );
        });
        assert_quiescent(&rt);
    }

    /// LR5, SW15: a light task aborted before it opens a region (the
    /// cancel stored in its cell, unseen: it was at no checkpoint) gets
    /// `Cancelled(User)` from the region without its body running.
    fn a_light_task_aborted_before_it_opens_a_region_gets_a_cancelled_region(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (waiting, go) = (Gate::new(), Flag::new());
            let (outcome, ran) = (Slot::new(), Flag::new());
            let (w, g, o, r) = (waiting.clone(), go.clone(), outcome.clone(), ran.clone());
            let owner = cx
                .spawn(move |cx| async move {
                    w.open();
                    until(|| g.is_set()).await; // not a checkpoint
                    let out = cx
                        .region(move |_| async move {
                            r.set();
                            Ok::<_, ()>(())
                        })
                        .await;
                    o.set(match out {
                        Outcome::Cancelled(reason) => Some(reason.kind),
                        _ => None,
                    });
                })
                .unwrap();
            waiting.wait().await;
            owner.abort();
            go.set();
            let _ = owner.join(&cx).await;
            assert_eq!(outcome.take(), Some(Some(CancelKind::User)));
            assert!(!ran.is_set(), "the body never ran");
        });
        assert_quiescent(&rt);
    }

    /// LR1: a task spawned with a budget into a light region registers
    /// the region; it keeps running, and the region waits for it.
    fn a_budgeted_spawn_into_a_light_region_registers_it_and_the_region_waits(d: Driver) {
        let rt = d.rt();
        let events = open_from_a_task(&rt, |cx, log| async move {
            let l = log.clone();
            let budget = Budget::INFINITE.with_poll_quota(1_000);
            let task = cx.spawn_with_budget(budget, move |_| async move {
                yield_now().await;
                l.push("budgeted task done");
            });
            drop(task.unwrap());
            log.push("body done");
            Ok(())
        });
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[2], "region returned", "after the task: {events:?}");
        assert!(events.contains(&"budgeted task done".to_string()), "{events:?}");
        assert_quiescent(&rt);
    }

    /// LR4: a light region with finalizers closes through the kernel,
    /// which runs them after its last task, LIFO, before the region
    /// future returns.
    fn a_light_region_s_finalizers_run_after_its_tasks_before_it_returns(d: Driver) {
        let rt = d.rt();
        let events = open_from_a_task(&rt, |cx, log| async move {
            let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
            cx.defer_sync(move || l1.push("first finalizer")).unwrap();
            cx.defer_sync(move || l2.push("second finalizer")).unwrap();
            drop(cx.spawn(move |_| async move {
                yield_now().await;
                l3.push("task done");
            }));
            Ok(())
        });
        assert_eq!(
            events,
            ["task done", "second finalizer", "first finalizer", "region returned"]
        );
        assert_quiescent(&rt);
    }

    /// LR1–LR3 under contention: many tasks open and close light regions
    /// (nested two deep, each with a few tasks) while their common parent
    /// is cancelled; every task ends (cancelled or done), nothing is left
    /// behind, and every region is counted closed.
    fn light_regions_opening_and_closing_while_their_parent_is_cancelled_leave_nothing_behind(d: Driver) {
        let rt = d.rt();
        for round in 0..20u64 {
            let finished = Arc::new(AtomicU64::new(0));
            let f = finished.clone();
            rt.block_on(move |cx: Cx| async move {
                let outcome = cx
                    .region(move |cx| async move {
                        for _ in 0..16 {
                            let f = f.clone();
                            drop(cx.spawn(move |cx| async move {
                                for _ in 0..4 {
                                    let f = f.clone();
                                    let _ = cx
                                        .region(move |cx| async move {
                                            let f2 = f.clone();
                                            let _ = cx
                                                .region(move |cx| async move {
                                                    let f3 = f2.clone();
                                                    drop(cx.spawn(move |cx| async move {
                                                        let _ = time::sleep(&cx, Duration::from_micros(50)).await;
                                                        f3.fetch_add(1, Ordering::Relaxed);
                                                    }));
                                                    yield_now().await;
                                                    Ok::<(), ()>(())
                                                })
                                                .await;
                                            f.fetch_add(1, Ordering::Relaxed);
                                            Ok::<(), ()>(())
                                        })
                                        .await;
                                    if cx.checkpoint().is_err() {
                                        return;
                                    }
                                }
                            }));
                        }
                        // Cancel after a varying number of yields.
                        for _ in 0..round % 5 {
                            yield_now().await;
                        }
                        Err::<(), ()>(())
                    })
                    .await;
                assert!(matches!(outcome, Outcome::Err(())), "{outcome:?}");
            });
            assert_quiescent(&rt);
            assert!(finished.load(Ordering::Relaxed) <= 16 * 4 * 2);
        }
    }
}

on_both_drivers! {
    /// LR4: a body that returns `Ok` while its tasks still run leaves the
    /// region waiting without the kernel; the last task out lets it close,
    /// and the region future returns only then.
    fn a_light_region_whose_body_returns_early_waits_for_its_last_task(d: Driver) {
        let rt = d.rt();
        let log = Log::new();
        let l = log.clone();
        rt.block_on(move |cx: Cx| async move {
            let gate = Gate::new();
            let g = gate.clone();
            let opener = cx
                .spawn(move |cx| async move {
                    let lb = l.clone();
                    let out = cx
                        .region(move |cx| async move {
                            for n in 0..3 {
                                let (g, l) = (g.clone(), lb.clone());
                                drop(cx.spawn(move |_| async move {
                                    g.wait().await;
                                    l.push(format!("task {n} done"));
                                }));
                            }
                            lb.push("body done");
                            Ok::<(), ()>(())
                        })
                        .await;
                    l.push("region closed");
                    out
                })
                .unwrap();
            // Let the body return and the region wait, then release its tasks.
            for _ in 0..10 {
                yield_now().await;
            }
            gate.open();
            assert!(matches!(opener.join(&cx).await.unwrap(), Outcome::Ok(())));
        });
        let events = log.snapshot();
        assert_eq!(events.first().map(String::as_str), Some("body done"), "{events:?}");
        assert_eq!(events.last().map(String::as_str), Some("region closed"), "{events:?}");
        assert_eq!(events.len(), 5, "{events:?}");
        assert_quiescent(&rt);
    }

    /// LR3, LR4: a region waiting without the kernel for its tasks (its
    /// body returned `Ok`) is registered by a cancel of its parent, which
    /// cancels the tasks; the waiting region future is woken and closes
    /// through the kernel.
    fn a_parent_cancel_reaches_a_light_region_waiting_for_its_tasks(d: Driver) {
        let rt = d.rt();
        let cancelled = Arc::new(AtomicU64::new(0));
        let seen = cancelled.clone();
        rt.block_on(move |cx: Cx| async move {
            let parked = Gate::new();
            let p = parked.clone();
            let outcome = cx
                .region(move |cx| async move {
                    drop(cx.spawn(move |cx| async move {
                        let inner = cx
                            .region(move |cx| async move {
                                drop(cx.spawn(move |cx| {
                                    parked_until_parent_cancel(cx, move || p.open(), seen)
                                }));
                                Ok::<(), ()>(())
                            })
                            .await;
                        assert!(matches!(inner, Outcome::Ok(())), "{inner:?}");
                    }));
                    parked.wait().await;
                    for _ in 0..5 {
                        yield_now().await;
                    }
                    Err::<(), ()>(())
                })
                .await;
            assert!(matches!(outcome, Outcome::Err(())), "{outcome:?}");
        });
        assert_eq!(cancelled.load(Ordering::Relaxed), 1);
        assert_quiescent(&rt);
    }
}

/// What one owner task of the race below does with its light region.
#[derive(Clone, Copy)]
enum Shape {
    /// The body joins its tasks, then returns `Ok` (closes light).
    JoinThenOk,
    /// The body returns `Ok` at once; the region waits for its tasks (LR4).
    ReturnEarly,
    /// The body returns `Err` (FailFast: registered and cancelled).
    Fail,
    /// A task spawned with a budget registers the region (LR1).
    Budgeted,
}

on_both_drivers! {
    /// LR1–LR5 raced: owners open light regions of random shapes, with
    /// tasks that sleep a random few microseconds, while some owners are
    /// aborted at random moments (LR5) and, every other round, the common
    /// parent is cancelled too (LR3). Every owner's join ends (done or
    /// cancelled), every region closes, and nothing is left behind.
    fn light_regions_of_every_shape_racing_owner_aborts_and_a_parent_cancel_leave_nothing_behind(d: Driver) {
        let rt = d.rt();
        let mut rng = XorShift::new(0x5eed_11de);
        for round in 0..12u64 {
            let plan: Vec<(Shape, u64, bool)> = (0..24)
                .map(|_| {
                    let shape = match rng.below(4) {
                        0 => Shape::JoinThenOk,
                        1 => Shape::ReturnEarly,
                        2 => Shape::Fail,
                        _ => Shape::Budgeted,
                    };
                    (shape, rng.below(80), rng.below(3) == 0)
                })
                .collect();
            let fail_parent = round % 2 == 1;
            rt.block_on(move |cx: Cx| async move {
                let outcome = cx
                    .region(move |cx| async move {
                        let mut owners = Vec::new();
                        for (shape, micros, abort) in plan {
                            let owner = cx
                                .spawn(move |cx| async move {
                                    let _ = cx
                                        .region(move |cx| async move {
                                            let nap = Duration::from_micros(micros);
                                            let mut tasks = Vec::new();
                                            for _ in 0..3 {
                                                let task = match shape {
                                                    Shape::Budgeted => cx.spawn_with_budget(
                                                        Budget::INFINITE.with_poll_quota(10_000),
                                                        move |cx| async move {
                                                            let _ = time::sleep(&cx, nap).await;
                                                        },
                                                    ),
                                                    _ => cx.spawn(move |cx| async move {
                                                        let _ = time::sleep(&cx, nap).await;
                                                    }),
                                                };
                                                tasks.push(task.expect("spawn"));
                                            }
                                            match shape {
                                                Shape::JoinThenOk => {
                                                    for t in tasks {
                                                        let _ = t.join(&cx).await;
                                                    }
                                                    Ok(())
                                                }
                                                Shape::Fail => Err(()),
                                                Shape::ReturnEarly | Shape::Budgeted => Ok(()),
                                            }
                                        })
                                        .await;
                                })
                                .expect("spawn owner");
                            owners.push((owner, abort));
                        }
                        yield_now().await;
                        for (owner, abort) in &owners {
                            if *abort {
                                owner.abort();
                            }
                        }
                        if fail_parent {
                            return Err(());
                        }
                        for (owner, _) in owners {
                            let _ = owner.join(&cx).await;
                        }
                        Ok(())
                    })
                    .await;
                let expected_err = fail_parent;
                assert_eq!(matches!(outcome, Outcome::Err(())), expected_err, "{outcome:?}");
            });
            assert_quiescent(&rt);
        }
    }
}
