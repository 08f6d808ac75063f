//! `block_in_place`: blocking code on a worker does not starve the tasks
//! queued behind it (rules BP1–BP3), on one and two workers (under a
//! watchdog: a starved task shows up as a hang), inline in the lab and in a
//! multi-thread root task, and refused on the current-thread runtime.

mod support;

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use asupersync::channel::mpsc;
use asupersync::lab::{LabConfig, LabRuntime};
use asupersync::time::sleep;
use asupersync::{Cx, Runtime, RuntimeBuilder, block_in_place};
use support::{assert_quiescent, expect_panic, with_watchdog};

fn multi(workers: usize) -> Runtime {
    RuntimeBuilder::new()
        .worker_threads(workers)
        .build()
        .unwrap()
}

/// A task spawns a child (which lands in its own worker's LIFO slot, where
/// no other worker can steal it) and then blocks in `block_in_place` until
/// the child has run. Without the hand-off (BP1) the child never runs on
/// two workers; without the helper (BP2) it never runs on one.
fn a_task_queued_behind_a_blocked_worker_still_runs(workers: usize) {
    let rt = multi(workers);
    let got = rt.block_on(|cx| async move {
        let outer = cx
            .spawn(|cx: Cx| async move {
                let (tx, rx) = std_mpsc::channel::<u32>();
                let child = cx
                    .spawn(move |_| async move { tx.send(7).unwrap() })
                    .unwrap();
                let v = block_in_place(&cx, || rx.recv().unwrap());
                child.join(&cx).await.unwrap();
                v
            })
            .unwrap();
        outer.join(&cx).await.unwrap()
    });
    assert_eq!(got, 7);
    assert_quiescent(&rt);
}

#[test]
fn on_one_worker_a_queued_task_runs_while_the_worker_blocks() {
    with_watchdog("one worker", || {
        a_task_queued_behind_a_blocked_worker_still_runs(1)
    });
}

#[test]
fn on_two_workers_a_task_in_the_lifo_slot_runs_while_the_worker_blocks() {
    with_watchdog("two workers", || {
        a_task_queued_behind_a_blocked_worker_still_runs(2)
    });
}

/// Timers keep firing while the only worker blocks: the helper fires them.
#[test]
fn timers_fire_while_the_only_worker_blocks() {
    with_watchdog("timers", || {
        let rt = multi(1);
        rt.block_on(|cx| async move {
            let h = cx
                .spawn(|cx: Cx| async move {
                    let (tx, rx) = std_mpsc::channel::<()>();
                    let sleeper = cx
                        .spawn(move |cx| async move {
                            sleep(&cx, Duration::from_millis(5)).await.unwrap();
                            tx.send(()).unwrap();
                        })
                        .unwrap();
                    block_in_place(&cx, || rx.recv().unwrap());
                    sleeper.join(&cx).await.unwrap();
                })
                .unwrap();
            h.join(&cx).await.unwrap();
        });
        assert_quiescent(&rt);
    });
}

/// Inside the closure the thread is a plain thread (TB1 allows blocking
/// calls); after it, the worker is a worker again (TB1 refuses them).
#[test]
fn blocking_calls_are_allowed_inside_and_refused_after() {
    with_watchdog("tb1", || {
        let rt = multi(1);
        rt.block_on(|cx| async move {
            let h = cx
                .spawn(|cx: Cx| async move {
                    let (tx, mut rx) = mpsc::channel::<u32>(1);
                    let producer = cx
                        .spawn(move |cx| async move { tx.send(&cx, 5).await.unwrap() })
                        .unwrap();
                    let inside = block_in_place(&cx, || rx.blocking_recv().unwrap());
                    producer.join(&cx).await.unwrap();
                    let after = expect_panic(|| rx.blocking_recv());
                    (inside, after)
                })
                .unwrap();
            let (inside, after) = h.join(&cx).await.unwrap();
            assert_eq!(inside, 5);
            assert!(after.contains("rule TB1"), "{after}");
        });
    });
}

/// A panic in the closure propagates; the worker takes its place back and
/// the runtime keeps running tasks.
#[test]
fn a_panic_in_the_closure_propagates_and_the_worker_recovers() {
    with_watchdog("panic", || {
        let rt = multi(1);
        rt.block_on(|cx| async move {
            let h = cx
                .spawn(|cx: Cx| async move {
                    block_in_place(&cx, || panic!("blocked and failed"));
                })
                .unwrap();
            let e = h.join(&cx).await.unwrap_err();
            assert!(e.is_panicked());
            assert!(e.to_string().contains("blocked and failed"), "{e}");
            // The worker is back: later tasks run, and blocking calls on it
            // are refused again.
            let h = cx
                .spawn(|_| async move {
                    let (_tx, mut rx) = mpsc::channel::<u32>(1);
                    expect_panic(|| rx.blocking_recv())
                })
                .unwrap();
            assert!(h.join(&cx).await.unwrap().contains("rule TB1"));
        });
    });
}

/// Many tasks block at once (more than the workers), each waiting for
/// work that other tasks must do; everything completes.
#[test]
fn many_tasks_blocking_at_once_all_complete() {
    with_watchdog("many", || {
        let rt = multi(2);
        rt.block_on(|cx| async move {
            let mut handles = Vec::new();
            for i in 0..4u64 {
                handles.push(
                    cx.spawn(move |cx: Cx| async move {
                        let (tx, rx) = std_mpsc::channel::<u64>();
                        let child = cx
                            .spawn(move |cx| async move {
                                asupersync::yield_now().await;
                                sleep(&cx, Duration::from_millis(1)).await.unwrap();
                                tx.send(i * 10).unwrap();
                            })
                            .unwrap();
                        let v = block_in_place(&cx, || rx.recv().unwrap());
                        child.join(&cx).await.unwrap();
                        v
                    })
                    .unwrap(),
                );
            }
            for _ in 0..200 {
                drop(
                    cx.spawn(|_| async { asupersync::yield_now().await })
                        .unwrap(),
                );
            }
            let mut sum = 0;
            for h in handles {
                sum += h.join(&cx).await.unwrap();
            }
            assert_eq!(sum, 60);
        });
        assert_quiescent(&rt);
    });
}

/// A cancellation requested while the closure runs is observed at the next
/// checkpoint; the closure itself is not interrupted.
#[test]
fn a_cancel_during_the_closure_is_observed_after_it() {
    with_watchdog("cancel", || {
        let rt = multi(2);
        rt.block_on(|cx| async move {
            let (go_tx, go_rx) = std_mpsc::channel::<()>();
            let (entered_tx, entered_rx) = std_mpsc::channel::<()>();
            let result = support::Slot::new();
            let r2 = result.clone();
            let h = cx
                .spawn(move |cx: Cx| async move {
                    let finished = block_in_place(&cx, || {
                        entered_tx.send(()).unwrap();
                        go_rx.recv().unwrap();
                        true
                    });
                    r2.set((finished, cx.checkpoint().is_err()));
                })
                .unwrap();
            // Wait (blocking this root thread, which runs no task on the
            // multi-thread runtime) for the closure to start, then abort.
            block_in_place(&cx, || entered_rx.recv().unwrap());
            h.abort();
            go_tx.send(()).unwrap();
            assert!(h.join(&cx).await.unwrap_err().is_cancelled());
            assert_eq!(result.take(), Some((true, true)));
        });
    });
}

#[test]
fn the_current_thread_runtime_refuses_naming_bp3() {
    let rt = RuntimeBuilder::current_thread().build().unwrap();
    rt.block_on(|cx| async move {
        let msg = expect_panic(|| block_in_place(&cx, || ()));
        assert!(msg.contains("rule BP3"), "{msg}");
        let h = cx
            .spawn(|cx: Cx| async move { block_in_place(&cx, || 1) })
            .unwrap();
        let e = h.join(&cx).await.unwrap_err();
        assert!(e.to_string().contains("rule BP3"), "{e}");
    });
}

#[test]
fn the_lab_runs_the_closure_inline_without_moving_time() {
    let lab = LabRuntime::new(LabConfig::new(4));
    let out = lab.block_on(|cx| async move {
        let h = cx
            .spawn(|cx: Cx| async move {
                sleep(&cx, Duration::from_secs(1)).await.unwrap();
                let before = cx.now();
                let v = block_in_place(&cx, || 2 + 2);
                (v, before, cx.now())
            })
            .unwrap();
        h.join(&cx).await.unwrap()
    });
    assert_eq!(out.0, 4);
    assert_eq!(
        out.1, out.2,
        "virtual time does not move inside the closure"
    );
}

#[test]
fn a_cx_of_another_runtime_is_refused() {
    with_watchdog("foreign cx", || {
        let other = multi(1);
        let foreign = other.block_on(|cx| async move { cx });
        let rt = multi(1);
        rt.block_on(|cx| async move {
            let h = cx
                .spawn(move |_| async move { expect_panic(|| block_in_place(&foreign, || ())) })
                .unwrap();
            let msg = h.join(&cx).await.unwrap();
            assert!(msg.contains("another runtime"), "{msg}");
        });
    });
}
