//! Light tasks (rules LT1–LT6 in `kernel::light`): plain tasks spawned and
//! completed without the kernel lock, registered with the kernel only when
//! it must act on them. These tests aim at the hand-offs: a region cancel
//! racing spawns and completions, the last light task out closing its
//! region, a light task aborted, masked, or holding an obligation, and the
//! statistics and diagnostics that must still count every task.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use asupersync::kernel::TaskState;
use asupersync::types::CancelKind;
use asupersync::{Cx, Outcome, SpawnError, time, yield_now};
use support::*;

const HOUR: Duration = Duration::from_secs(3600);

on_both_drivers! {
    /// A region cancel finds every task spawned before it, light or not,
    /// and every spawn after it is refused with the region's reason (LT2).
    fn a_region_cancel_reaches_every_task_spawned_before_it_and_refuses_later_spawns(d: Driver) {
        let rt = d.rt();
        let cancelled = Arc::new(AtomicU64::new(0));
        let seen = cancelled.clone();
        rt.block_on(move |cx: Cx| async move {
            let outcome = cx
                .region(move |cx| async move {
                    for _ in 0..200 {
                        let seen = seen.clone();
                        drop(cx.spawn(move |cx| async move {
                            let err = time::sleep(&cx, HOUR).await.expect_err("cancelled");
                            assert_eq!(err.reason().kind, CancelKind::FailFast);
                            seen.fetch_add(1, Ordering::Relaxed);
                        }));
                    }
                    // Let some of them start: light tasks may be running
                    // or not yet polled when the cancel comes.
                    yield_now().await;
                    Err::<(), &str>("fail the region")
                })
                .await;
            assert!(matches!(outcome, Outcome::Err("fail the region")), "{outcome:?}");
        });
        assert_eq!(cancelled.load(Ordering::Relaxed) + dropped_unpolled(&rt), 200);
        assert_quiescent(&rt);
        let stats = rt.stats();
        assert_eq!(stats.tasks_spawned, stats.tasks_completed);
    }

    /// A spawn from a task of a cancelled region is refused (LT2), also
    /// when the region's earlier tasks were all light.
    fn a_spawn_into_a_cancelled_region_is_refused_with_its_reason(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let refused = Slot::new();
            let slot = refused.clone();
            let started = Gate::new();
            let opened = started.clone();
            let outcome = cx
                .region(move |cx| async move {
                    let spawner = cx.clone();
                    let child = cx
                        .spawn(move |cx| async move {
                            opened.open();
                            // Wait (cancel-aware) until the region is cancelled,
                            // then try to spawn into it.
                            let _ = time::sleep(&cx, HOUR).await;
                            let again = spawner.spawn(|_| async {});
                            slot.set(again.err());
                        })
                        .expect("open region");
                    drop(child);
                    started.wait().await;
                    Err::<(), ()>(())
                })
                .await;
            assert!(matches!(outcome, Outcome::Err(())));
            let err = refused.take().flatten().expect("the late spawn was refused");
            assert!(
                matches!(err, SpawnError::RegionCancelled(_, ref reason) if reason.kind == CancelKind::FailFast),
                "{err:?}"
            );
        });
        assert_quiescent(&rt);
    }

    /// The body returns while its light children still run: the region
    /// closes when the last one finishes, not before (LT3), many times over
    /// so the last completion races the close on the multi-thread runtime.
    fn the_last_light_task_out_closes_its_region(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            for round in 0..300u64 {
                let done = Arc::new(AtomicU64::new(0));
                let counted = done.clone();
                let outcome = cx
                    .region(move |cx| async move {
                        for i in 0..4 {
                            let counted = counted.clone();
                            drop(cx.spawn(move |_| async move {
                                for _ in 0..(round + i) % 3 {
                                    yield_now().await;
                                }
                                counted.fetch_add(1, Ordering::Release);
                            }));
                        }
                        Ok::<(), ()>(())
                    })
                    .await;
                assert!(matches!(outcome, Outcome::Ok(())));
                assert_eq!(done.load(Ordering::Acquire), 4, "round {round}: closed early");
            }
        });
        assert_quiescent(&rt);
        let stats = rt.stats();
        assert_eq!(stats.tasks_spawned, stats.tasks_completed);
        assert_eq!(stats.regions_created, stats.regions_closed);
    }

    /// An abort right after the spawn registers the light task and drops it
    /// unpolled (on the current-thread runtime nothing can run it first; on
    /// the multi-thread one a worker may have run it to its end already, and
    /// then it joins with its value); an abort of a running one cancels it
    /// at its next wait.
    fn aborting_a_light_task_drops_it_unpolled_or_cancels_it(d: Driver) {
        let rt = d.rt();
        let single = matches!(d, Driver::CurrentThread);
        rt.block_on(move |cx: Cx| async move {
            let ran = Flag::new();
            let r = ran.clone();
            let early = cx.spawn(move |_| async move { r.set() }).expect("spawn");
            early.abort();
            match early.join(&cx).await {
                Err(err) => {
                    assert!(err.is_cancelled());
                    assert!(!ran.is_set(), "a task dropped by the abort was polled");
                }
                Ok(()) => {
                    assert!(!single, "nothing could run it before the abort");
                    assert!(ran.is_set(), "it joined Ok without running");
                }
            }

            let started = Gate::new();
            let s = started.clone();
            let running = cx
                .spawn(move |cx| async move {
                    s.open();
                    time::sleep(&cx, HOUR).await
                })
                .expect("spawn");
            started.wait().await;
            let abort = running.abort_handle();
            assert!(!abort.is_finished(), "a live light task looked finished");
            abort.abort();
            let err = running.join(&cx).await.expect_err("aborted while waiting");
            assert!(err.is_cancelled());
            assert!(abort.is_finished());
        });
        assert_quiescent(&rt);
    }

    /// A light task that masks or opens a region is registered and behaves
    /// as any registered task; one that leaks an obligation (reserved in its
    /// cell's home without the kernel, OB9) has its home swept by its light
    /// completion, which sends it to the kernel to report the leak.
    fn a_light_task_that_needs_the_kernel_is_registered_and_fully_checked(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let leaker = cx
                .spawn(|cx| async move {
                    std::mem::forget(cx.reserve_obligation("forgotten").expect("reserve"));
                })
                .expect("spawn");
            let err = leaker.join(&cx).await.expect_err("the leak fails the task");
            let message = err.panic_payload().expect("a panic").message().to_string();
            assert!(message.contains("obligation leak"), "{message}");

            let outcome = cx
                .region(|cx| async move {
                    let masked = cx
                        .spawn(|cx| async move {
                            cx.masked(|| cx.checkpoint().is_ok())
                        })
                        .expect("spawn");
                    let nested = cx
                        .spawn(|cx| async move {
                            cx.region(|cx| async move { cx.checkpoint().map_err(|_| ()) })
                                .await
                                .is_ok()
                        })
                        .expect("spawn");
                    let masked = masked.join(&cx).await.expect("joined");
                    let nested = nested.join(&cx).await.expect("joined");
                    Ok::<_, ()>((masked, nested))
                })
                .await;
            assert!(matches!(outcome, Outcome::Ok((true, true))), "{outcome:?}");
        });
        assert_quiescent(&rt);
    }

    /// Rule A2's per-task test (W7): while a sibling is cancelled, a task
    /// nobody cancelled passes its checkpoints, and the cancelled one fails
    /// its own, also when the cancel arrives while it spins.
    fn a_checkpoint_sees_its_own_tasks_cancel_and_not_a_siblings(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let started = Gate::new();
            let s = started.clone();
            let victim = cx
                .spawn(move |cx| async move {
                    s.open();
                    loop {
                        if let Err(c) = cx.checkpoint() {
                            return c.reason().kind;
                        }
                        yield_now().await;
                    }
                })
                .expect("spawn");
            started.wait().await;
            victim.abort();
            let bystander = cx
                .spawn(|cx| async move {
                    for _ in 0..50 {
                        cx.checkpoint().expect("nobody cancelled this task");
                        yield_now().await;
                    }
                })
                .expect("spawn");
            let err = victim.join(&cx).await.expect_err("observed its cancel");
            assert!(err.is_cancelled());
            bystander.join(&cx).await.expect("the bystander finished");
            cx.checkpoint().expect("the root was not cancelled either");
        });
        assert_quiescent(&rt);
    }

    /// Diagnostics see light tasks: a live one is `Running` and counted
    /// live; the statistics count it spawned and, once done, completed.
    fn light_tasks_are_counted_and_visible_to_diagnostics(d: Driver) {
        let rt = Arc::new(d.rt());
        let before = rt.stats();
        let seen = rt.clone();
        rt.block_on(move |cx: Cx| async move {
            let gate = Gate::new();
            let g = gate.clone();
            let task = cx.spawn(move |_| async move { g.wait().await }).expect("spawn");
            let id = task.task_id();
            assert_eq!(seen.task_state(id), Some(TaskState::Running));
            assert!(seen.live_tasks() >= 2, "the root task and the light one");
            gate.open();
            task.join(&cx).await.expect("joined");
            assert_eq!(seen.task_state(id), None, "completed");
        });
        let after = rt.stats();
        assert!(after.tasks_spawned >= before.tasks_spawned + 2);
        assert_eq!(after.tasks_spawned, after.tasks_completed);
        assert_quiescent(&rt);
    }
}

/// How many tasks a run dropped before their first poll (a cancel that
/// arrives first): they never reach their own accounting.
fn dropped_unpolled(rt: &asupersync::Runtime) -> u64 {
    rt.stats()
        .forced_drops
        .iter()
        .filter(|d| d.cause == asupersync::types::ForceDropCause::CancelledBeforeStart)
        .count() as u64
}

/// Many spawners fill one region while its body fails it from another
/// worker: each task is either refused at spawn, dropped unpolled, cancelled
/// or finished — exactly one — and the region still closes with nothing
/// live (LT1, LT2: the kernel's sweep and the spawns never miss each other).
#[test]
fn spawns_racing_a_region_cancel_are_each_refused_or_accounted_for_once() {
    with_watchdog("spawns racing a region cancel", || {
        let rt = Driver::MultiThread.rt();
        let mut rng = XorShift::new(0x5EED);
        for round in 0..60 {
            let spawned = Arc::new(AtomicU64::new(0));
            let refused = Arc::new(AtomicU64::new(0));
            let ended = Arc::new(AtomicU64::new(0));
            let dropped = Arc::new(AtomicU64::new(0));
            let yields = rng.below(40);
            let (s, f, e, x) = (
                spawned.clone(),
                refused.clone(),
                ended.clone(),
                dropped.clone(),
            );
            rt.block_on(move |cx: Cx| async move {
                let outcome = cx
                    .region(move |cx| async move {
                        for _ in 0..2 {
                            let (s, f, e, x) = (s.clone(), f.clone(), e.clone(), x.clone());
                            let into = cx.clone();
                            drop(cx.spawn(move |_| async move {
                                for i in 0..200u64 {
                                    let (e, x) = (e.clone(), x.clone());
                                    match into.spawn(move |cx| {
                                        // Owned by the future from its creation,
                                        // so dropped with it, polled or not.
                                        let armed = Bump(x);
                                        async move {
                                            let _armed = armed;
                                            let _ = time::sleep(&cx, Duration::from_micros(i % 7))
                                                .await;
                                            e.fetch_add(1, Ordering::Relaxed);
                                        }
                                    }) {
                                        Ok(handle) => {
                                            s.fetch_add(1, Ordering::Relaxed);
                                            drop(handle);
                                        }
                                        Err(SpawnError::RegionCancelled(..)) => {
                                            f.fetch_add(1, Ordering::Relaxed);
                                        }
                                        Err(other) => panic!("unexpected refusal: {other}"),
                                    }
                                    if i % 16 == 0 {
                                        yield_now().await;
                                    }
                                }
                            }));
                        }
                        for _ in 0..yields {
                            yield_now().await;
                        }
                        Err::<(), ()>(())
                    })
                    .await;
                assert!(matches!(outcome, Outcome::Err(())));
            });
            let (spawned, refused) = (
                spawned.load(Ordering::Relaxed),
                refused.load(Ordering::Relaxed),
            );
            // A spawner cancelled mid-loop stops early: fewer than 400 tries.
            assert!(spawned + refused <= 400, "round {round}");
            // Every accepted task's future was dropped exactly once: after
            // finishing its sleep (`ended`) or not.
            assert_eq!(
                dropped.load(Ordering::Relaxed),
                spawned,
                "round {round}: a spawned future was lost or dropped twice"
            );
            assert!(ended.load(Ordering::Relaxed) <= spawned, "round {round}");
            assert_quiescent(&rt);
            let stats = rt.stats();
            assert_eq!(stats.tasks_spawned, stats.tasks_completed, "round {round}");
        }
    });
}

/// Counts a drop (of a task's future, here).
struct Bump(Arc<AtomicU64>);

impl Drop for Bump {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}
