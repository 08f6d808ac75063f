//! K1 (ownership / no orphans), the region outcome matrix, spawn refusal on
//! closed or cancelled regions, id relationships (K7) and deep nesting.
//! Every test runs on both production drivers.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use asupersync::kernel::RegionState;
use asupersync::types::{CancelKind, RegionId, TaskId};
use asupersync::{Cx, Outcome, SpawnError, time, yield_now};
use support::*;

const HOUR: Duration = Duration::from_secs(3600);

/// Spawns `n` tasks into `cx`'s region that sleep a few ms and then count
/// themselves done. Returns nothing: the handles are dropped on purpose.
fn spawn_sleepers(cx: &Cx, n: u64, spawned: &Counter, done: &Counter) {
    for i in 0..n {
        spawned.incr();
        let done = done.clone();
        drop(
            cx.spawn(move |cx| async move {
                for _ in 0..i {
                    yield_now().await;
                }
                time::sleep(&cx, Duration::from_millis(1 + i % 4))
                    .await
                    .expect("sleeper is never cancelled");
                done.incr();
            })
            .expect("spawn into an open region"),
        );
    }
}

fn id_text_is(prefix: char, text: &str) -> bool {
    text.starts_with(prefix) && text.len() > 1 && text[1..].chars().all(|c| c.is_ascii_digit())
}

on_both_drivers! {
    /// Children, tasks that children spawn into the same region, and tasks of
    /// regions nested inside children have all completed when `region` returns.
    fn region_returns_only_after_every_descendant_completed(d: Driver) {
        let rt = d.rt();
        let (spawned, done) = (Counter::new(), Counter::new());
        let (s, dn) = (spawned.clone(), done.clone());
        rt.block_on(move |cx: Cx| async move {
            let (s1, d1) = (s.clone(), dn.clone());
            let out = cx
                .region(move |rcx| async move {
                    for _ in 0..4 {
                        let (s2, d2) = (s1.clone(), d1.clone());
                        s1.incr();
                        drop(rcx.spawn(move |ccx| async move {
                            // A grandchild spawned by the child into the same region.
                            spawn_sleepers(&ccx, 1, &s2, &d2);
                            // A nested region with its own children.
                            let (s3, d3) = (s2.clone(), d2.clone());
                            let inner = ccx
                                .region(move |icx| async move {
                                    spawn_sleepers(&icx, 3, &s3, &d3);
                                    Ok::<_, ()>(())
                                })
                                .await;
                            assert!(inner.is_ok(), "inner region: {inner:?}");
                            time::sleep(&ccx, Duration::from_millis(2)).await.unwrap();
                            d2.incr();
                        }).unwrap());
                    }
                    Ok::<_, ()>(())
                })
                .await;
            assert!(out.is_ok(), "region outcome: {out:?}");
            assert_eq!(
                dn.get(),
                s.get(),
                "region returned while some of its descendants were still running"
            );
        });
        assert_eq!(spawned.get(), 4 * (1 + 1 + 3));
        assert_eq!(done.get(), spawned.get());
        assert_quiescent(&rt);
    }

    /// `block_on` returns only once every task spawned under the root region
    /// (whose handles were all dropped) has completed, grandchildren included.
    fn block_on_waits_for_unjoined_children_and_grandchildren(d: Driver) {
        let rt = d.rt();
        let (spawned, done) = (Counter::new(), Counter::new());
        let (s, dn) = (spawned.clone(), done.clone());
        let v = rt.block_on(move |cx: Cx| async move {
            for _ in 0..3 {
                let (s2, d2) = (s.clone(), dn.clone());
                s.incr();
                drop(cx.spawn(move |ccx| async move {
                    spawn_sleepers(&ccx, 2, &s2, &d2);
                    let (s3, d3) = (s2.clone(), d2.clone());
                    let _ = ccx
                        .region(move |icx| async move {
                            spawn_sleepers(&icx, 2, &s3, &d3);
                            Ok::<_, ()>(())
                        })
                        .await;
                    d2.incr();
                }).unwrap());
            }
            "body done"
        });
        assert_eq!(v, "body done");
        assert_eq!(spawned.get(), 3 * (1 + 2 + 2));
        assert_eq!(done.get(), spawned.get(), "block_on returned before its tasks completed");
        assert_quiescent(&rt);
    }

    /// Body `Ok(v)` → `Outcome::Ok(v)`, after the children finished.
    fn region_body_ok_yields_ok_after_children(d: Driver) {
        let rt = d.rt();
        let (spawned, done) = (Counter::new(), Counter::new());
        let (s, dn) = (spawned.clone(), done.clone());
        rt.block_on(move |cx: Cx| async move {
            let (s1, d1) = (s.clone(), dn.clone());
            let out = cx
                .region(move |rcx| async move {
                    spawn_sleepers(&rcx, 5, &s1, &d1);
                    Ok::<_, &str>(42)
                })
                .await;
            assert_eq!(out, Outcome::Ok(42));
            assert_eq!(dn.get(), 5);
        });
        assert_quiescent(&rt);
    }

    /// Body `Err(e)` → `Outcome::Err(e)`; the remaining children were cancelled
    /// with `FailFast` and had finished their cleanup before `region` returned.
    fn region_body_err_yields_err_and_fail_fasts_children(d: Driver) {
        let rt = d.rt();
        let log = Log::new();
        let l = log.clone();
        rt.block_on(move |cx: Cx| async move {
            let l1 = l.clone();
            let out = cx
                .region(move |rcx| async move {
                    let started = Counter::new();
                    for i in 0..3 {
                        let (l2, st) = (l1.clone(), started.clone());
                        drop(rcx.spawn(move |c| async move {
                            st.incr();
                            let r = time::sleep(&c, HOUR).await;
                            let reason = r.expect_err("a 1h sleep can only end by cancellation");
                            yield_now().await; // cleanup takes a scheduling round
                            l2.push(format!("child{i}:{}", reason.reason().kind));
                        }).unwrap());
                    }
                    // Fail only once every child is running (a child cancelled
                    // before its first poll is never polled, by design).
                    until(|| started.get() == 3).await;
                    Err::<(), _>("bad input")
                })
                .await;
            assert_eq!(out, Outcome::Err("bad input"));
            let mut events = l.snapshot();
            events.sort();
            assert_eq!(
                events,
                vec!["child0:fail_fast", "child1:fail_fast", "child2:fail_fast"],
                "every child must have been cancelled with FailFast and drained before region returned"
            );
        });
        assert_quiescent(&rt);
    }

    /// Body panic → `Outcome::Panicked` with the body's message; children
    /// cancelled with `FailFast`.
    fn region_body_panic_yields_panicked_and_fail_fasts_children(d: Driver) {
        let rt = d.rt();
        let reason = Slot::new();
        let r = reason.clone();
        rt.block_on(move |cx: Cx| async move {
            let r1 = r.clone();
            let out = cx
                .region(move |rcx| async move {
                    let started = Flag::new();
                    let st = started.clone();
                    drop(rcx.spawn(move |c| async move {
                        st.set();
                        if let Err(e) = time::sleep(&c, HOUR).await {
                            r1.set(e.reason().clone());
                        }
                    }).unwrap());
                    until(|| started.is_set()).await;
                    explode::<Result<(), ()>>("body exploded")
                })
                .await;
            match out {
                Outcome::Panicked(p) => assert_eq!(p.message(), "body exploded"),
                other => panic!("expected Panicked, got {other:?}"),
            }
            let seen = r.get().expect("the child was cancelled before region returned");
            assert_eq!(seen.kind, CancelKind::FailFast);
        });
        assert_quiescent(&rt);
    }

    /// A child panic whose handle was dropped makes the region `Panicked`
    /// even though the body returned `Ok`.
    fn region_with_unjoined_child_panic_is_panicked(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let out = cx
                .region(|rcx| async move {
                    drop(rcx.spawn(|_| async { panic!("child went down") }).unwrap());
                    Ok::<_, ()>(7)
                })
                .await;
            match out {
                Outcome::Panicked(p) => assert_eq!(p.message(), "child went down"),
                other => panic!("expected Panicked, got {other:?}"),
            }
        });
        assert_quiescent(&rt);
    }

    /// Cancelling the task that runs a region body while the body is running:
    /// the body observes it, returns `Err`, and the outcome is `Cancelled`
    /// with a reason rooted at the original request.
    fn region_cancelled_while_body_runs_is_cancelled(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let started = Flag::new();
            let outcome = Slot::new();
            let (st, oc) = (started.clone(), outcome.clone());
            let h = cx
                .spawn(move |tcx| async move {
                    let out = tcx
                        .region(move |rcx| async move {
                            st.set();
                            time::sleep(&rcx, HOUR).await?;
                            Ok::<(), asupersync::types::cancel::Cancelled>(())
                        })
                        .await;
                    oc.set(out);
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort_with(asupersync::types::CancelReason::user("stop"));
            let _ = h.join(&cx).await;
            let out = outcome.take().expect("the task recorded the region outcome");
            match out {
                Outcome::Cancelled(r) => {
                    assert_eq!(r.root_cause().kind, CancelKind::User, "{r:?}");
                    assert_eq!(r.root_cause().message.as_deref(), Some("stop"));
                }
                other => panic!("expected Cancelled, got {other:?}"),
            }
        });
        assert_quiescent(&rt);
    }

    /// A task whose cancellation is already pending does not run a region
    /// body at all: the outcome is `Cancelled` with the task's reason.
    fn region_opened_by_a_cancelled_task_never_runs_its_body(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (started, aborted, ran) = (Flag::new(), Gate::new(), Flag::new());
            let outcome = Slot::new();
            let (st, ab, rn, oc) = (started.clone(), aborted.clone(), ran.clone(), outcome.clone());
            let h = cx
                .spawn(move |tcx| async move {
                    st.set();
                    ab.wait().await;
                    let out = tcx
                        .region(move |_rcx| {
                            rn.set();
                            async move { Ok::<_, ()>(1) }
                        })
                        .await;
                    oc.set(out);
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort();
            aborted.open();
            let joined = h.join(&cx).await;
            assert!(
                joined.as_ref().is_err_and(|e| e.is_cancelled()),
                "observing the cancel at region entry acknowledges it: {joined:?}"
            );
            assert!(!ran.is_set(), "the body of a region entered after cancel must not run");
            match outcome.take().expect("outcome recorded") {
                Outcome::Cancelled(r) => assert_eq!(r.kind, CancelKind::User),
                other => panic!("expected Cancelled, got {other:?}"),
            }
        });
        assert_quiescent(&rt);
    }

    /// Dropping an un-awaited region future (here: a `timeout` around it
    /// elapses) cancels the region's tasks with `FailFast`, and the enclosing
    /// region still waits for them to finish their cleanup.
    fn dropped_region_future_cancels_its_tasks_and_parent_still_waits(d: Driver) {
        let rt = d.rt();
        let rtr = &rt;
        let log = Log::new();
        let done = Counter::new();
        let (l, dn) = (log.clone(), done.clone());
        rt.block_on(move |cx: Cx| async move {
            let (l1, d1) = (l.clone(), dn.clone());
            let inner_id = Slot::new();
            let iid = inner_id.clone();
            let outer = cx
                .region(move |ocx| async move {
                    let started = Counter::new();
                    let st = started.clone();
                    let inner = ocx.region(move |icx| async move {
                        iid.set(icx.region_id());
                        for i in 0..3 {
                            let (l2, d2, st2) = (l1.clone(), d1.clone(), st.clone());
                            drop(icx.spawn(move |c| async move {
                                st2.incr();
                                let r = time::sleep(&c, HOUR).await;
                                let e = r.expect_err("only cancellation ends a 1h sleep");
                                // Cleanup spanning several scheduling rounds.
                                for _ in 0..5 {
                                    yield_now().await;
                                }
                                l2.push(format!("task{i}:{}", e.reason().kind));
                                d2.incr();
                            }).unwrap());
                        }
                        std::future::pending::<()>().await;
                        Ok::<(), ()>(())
                    });
                    let r = time::timeout(&ocx, Duration::from_millis(20), inner).await;
                    assert!(r.is_err(), "the region body never finishes, so timeout elapses");
                    assert_eq!(started.get(), 3);
                    Ok::<_, ()>(())
                })
                .await;
            assert!(outer.is_ok(), "{outer:?}");
            assert_eq!(
                dn.get(),
                3,
                "the enclosing region closed before the abandoned region's tasks finished"
            );
            let mut events = l.snapshot();
            events.sort();
            assert_eq!(events, vec!["task0:fail_fast", "task1:fail_fast", "task2:fail_fast"]);
            let iid = inner_id.get().expect("the inner body ran");
            assert_eq!(rtr.region_state(iid), None, "the abandoned region must be closed and released");
        });
        assert_eq!(done.get(), 3);
        assert_quiescent(&rt);
    }

    /// A `Cx` whose region has closed can no longer spawn (`RegionClosed`),
    /// open a region, register a finalizer or reserve an obligation.
    fn spawn_into_a_closed_region_is_refused(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (inner_cx, rid) = cx
                .region(|rcx| async move {
                    let id = rcx.region_id();
                    Ok::<_, ()>((rcx, id))
                })
                .await
                .unwrap();
            match inner_cx.spawn(|_| async { 1 }) {
                Err(SpawnError::RegionClosed(r)) => assert_eq!(r, rid),
                other => panic!("expected RegionClosed({rid}), got {other:?}"),
            }
            let ran = Flag::new();
            let rn = ran.clone();
            let nested = inner_cx
                .region(move |_| {
                    rn.set();
                    async { Ok::<_, ()>(()) }
                })
                .await;
            assert!(!nested.is_ok(), "a region cannot open inside a closed region: {nested:?}");
            assert!(!ran.is_set(), "the body of a region under a closed region must not run");
            assert!(inner_cx.defer_sync(|| ()).is_err());
            assert!(inner_cx.reserve_obligation("late").is_err());
            // The enclosing (root) region is unaffected.
            let h = cx.spawn(|_| async { 5 }).unwrap();
            assert_eq!(h.join(&cx).await.unwrap(), 5);
        });
        assert_quiescent(&rt);
    }

    /// A finalizer runs while its region is `Finalizing`: spawning into the
    /// region from there is refused with `RegionClosed`.
    fn spawn_from_a_finalizer_into_its_finalizing_region_is_refused(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let result = Slot::new();
            let res = result.clone();
            let out = cx
                .region(move |rcx| async move {
                    let fcx = rcx.clone();
                    let rid = rcx.region_id();
                    rcx.defer_sync(move || {
                        let r = fcx.spawn(|_| async {});
                        res.set(matches!(r, Err(SpawnError::RegionClosed(x)) if x == rid));
                    })
                    .unwrap();
                    Ok::<_, ()>(())
                })
                .await;
            assert!(out.is_ok(), "{out:?}");
            assert_eq!(result.get(), Some(true), "spawn from a finalizer must be RegionClosed");
        });
        assert_quiescent(&rt);
    }

    /// After an unjoined sibling panic the region is cancelled (`FailFast`):
    /// spawning into it returns `RegionCancelled` with that reason.
    fn spawn_into_a_fail_fast_region_is_refused(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let out = cx
                .region(|rcx| async move {
                    drop(rcx.spawn(|_| async { panic!("sibling down") }).unwrap());
                    until(|| rcx.is_cancel_requested()).await;
                    match rcx.spawn(|_| async {}) {
                        Err(SpawnError::RegionCancelled(r, reason)) => {
                            assert_eq!(r, rcx.region_id());
                            assert_eq!(reason.kind, CancelKind::FailFast);
                        }
                        other => panic!("expected RegionCancelled, got {other:?}"),
                    }
                    Ok::<_, ()>(())
                })
                .await;
            assert!(out.is_panicked(), "{out:?}");
        });
        assert_quiescent(&rt);
    }

    /// A region whose owner task was aborted refuses spawns with
    /// `RegionCancelled(ParentCancelled <- User)`.
    fn spawn_into_a_region_of_an_aborted_task_is_refused(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let started = Flag::new();
            let verdict = Slot::new();
            let (st, v) = (started.clone(), verdict.clone());
            let h = cx
                .spawn(move |tcx| async move {
                    let _ = tcx
                        .region(move |rcx| async move {
                            st.set();
                            until(|| rcx.is_cancel_requested()).await;
                            v.set(match rcx.spawn(|_| async {}) {
                                Err(SpawnError::RegionCancelled(r, reason)) => {
                                    r == rcx.region_id()
                                        && reason.kind == CancelKind::ParentCancelled
                                        && reason.root_cause().kind == CancelKind::User
                                }
                                _ => false,
                            });
                            Ok::<_, ()>(())
                        })
                        .await;
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort();
            let _ = h.join(&cx).await;
            assert_eq!(
                verdict.get(),
                Some(true),
                "spawn must be refused with RegionCancelled(ParentCancelled <- User)"
            );
        });
        assert_quiescent(&rt);
    }

    /// `task_id`/`region_id`: a spawned task is a new task in the spawner's
    /// region; a region body runs in the same task with a new region; ids
    /// print as `T<n>` / `R<n>`.
    fn cx_ids_reflect_the_task_and_region_tree(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (root_task, root_region) = (cx.task_id(), cx.region_id());
            assert!(id_text_is('T', &root_task.to_string()), "{root_task}");
            assert!(id_text_is('R', &root_region.to_string()), "{root_region}");

            let h = cx.spawn(|c| async move { (c.task_id(), c.region_id()) }).unwrap();
            let hid = h.task_id();
            let (child_task, child_region) = h.join(&cx).await.unwrap();
            assert_eq!(child_task, hid);
            assert_ne!(child_task, root_task);
            assert_eq!(child_region, root_region, "spawn puts the task in the spawner's region");

            let (inner_region, grandchild) = cx
                .region(move |rcx| async move {
                    assert_eq!(rcx.task_id(), root_task, "a region body runs in the calling task");
                    assert_ne!(rcx.region_id(), root_region);
                    let g = rcx.spawn(|c| async move { (c.task_id(), c.region_id()) }).unwrap();
                    let gid = g.task_id();
                    let (gt, gr) = g.join(&rcx).await.unwrap();
                    assert_eq!(gt, gid);
                    assert_eq!(gr, rcx.region_id(), "tasks spawned in a region body belong to it");
                    Ok::<_, ()>((rcx.region_id(), gt))
                })
                .await
                .unwrap();
            let ids: std::collections::BTreeSet<TaskId> = [root_task, child_task, grandchild].into();
            assert_eq!(ids.len(), 3, "task ids are distinct");
            assert_ne!(inner_region, root_region);
            assert!(id_text_is('R', &inner_region.to_string()), "{inner_region}");
        });
        assert_quiescent(&rt);
    }

    /// Live ids resolve, completed/closed ids never do — even after their
    /// arena slot is reused by a newer task or region (K7).
    fn stale_task_and_region_ids_never_resolve(d: Driver) {
        let rt = d.rt();
        let rtr = &rt;
        rt.block_on(|cx: Cx| async move {
            let release = Gate::new();
            let rel = release.clone();
            let h = cx.spawn(move |_| async move { rel.wait().await }).unwrap();
            let t1 = h.task_id();
            assert!(rtr.task_state(t1).is_some(), "a live task resolves");
            release.open();
            h.join(&cx).await.unwrap();
            assert_eq!(rtr.task_state(t1), None, "a completed task id is stale");

            let r1: RegionId = cx.region(|rcx| async move {
                assert_eq!(rtr.region_state(rcx.region_id()), Some(RegionState::Open));
                Ok::<_, ()>(rcx.region_id())
            }).await.unwrap();
            assert_eq!(rtr.region_state(r1), None, "a closed region id is stale");

            // New entities (which may reuse the freed slots) get new ids.
            let rel2 = Gate::new();
            let rl = rel2.clone();
            let h2 = cx.spawn(move |_| async move { rl.wait().await }).unwrap();
            let t2 = h2.task_id();
            assert_ne!(t2, t1);
            assert_eq!(rtr.task_state(t1), None, "stale id must not resolve to the newcomer");
            assert!(rtr.task_state(t2).is_some());
            rel2.open();
            h2.join(&cx).await.unwrap();

            cx.region(|rcx| async move {
                let r2 = rcx.region_id();
                assert_ne!(r2, r1);
                assert_eq!(rtr.region_state(r1), None, "stale id must not resolve to the newcomer");
                assert_eq!(rtr.region_state(r2), Some(RegionState::Open));
                Ok::<_, ()>(())
            }).await.unwrap();
        });
        assert_quiescent(&rt);
    }

    /// 50 nested regions, each with a child task, all close; the outcome
    /// propagates back up and every region is accounted for.
    fn fifty_nested_regions_all_close(d: Driver) {
        let rt = d.rt();
        let done = Counter::new();
        let log = Log::new();
        let (dn, l) = (done.clone(), log.clone());
        let depth = rt.block_on(move |cx: Cx| async move { nest(cx, 49, dn, l).await });
        assert_eq!(depth, Outcome::Ok(49));
        assert_eq!(done.get(), 50);
        // Regions close innermost first.
        let closes: Vec<String> = log.snapshot();
        let expected: Vec<String> = (0..50).map(|d| format!("close{d}")).collect();
        assert_eq!(closes, expected);
        let s = rt.stats();
        assert_eq!(s.regions_created, 51, "root + 50 nested regions");
        assert_quiescent(&rt);
    }
}

/// Panics with `msg`; typed so it can end a region body.
fn explode<T>(msg: &str) -> T {
    panic!("{msg}")
}

type BoxedOutcome = Pin<Box<dyn Future<Output = Outcome<usize, ()>> + Send>>;

fn nest(cx: Cx, depth: usize, done: Counter, log: Log) -> BoxedOutcome {
    Box::pin(async move {
        cx.region(move |rcx| async move {
            let d = done.clone();
            drop(
                rcx.spawn(move |_| async move {
                    yield_now().await;
                    d.incr();
                })
                .unwrap(),
            );
            let l = log.clone();
            rcx.defer_sync(move || l.push(format!("close{depth}")))
                .unwrap();
            if depth == 0 {
                return Ok(0);
            }
            match nest(rcx.clone(), depth - 1, done, log).await {
                Outcome::Ok(n) => Ok(n + 1),
                other => panic!("level {} failed: {other:?}", depth - 1),
            }
        })
        .await
    })
}
