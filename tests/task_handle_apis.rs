//! `AbortHandle`, `TaskHandle::join_mut` and `Runtime::spawn`, on both
//! production drivers (each under a watchdog).

mod support;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use asupersync::channel::mpsc;
use asupersync::time::sleep;
use asupersync::types::{CancelKind, CancelReason};
use asupersync::{AbortHandle, JoinError, SpawnError};
use support::{Driver, Flag, Gate, Slot, assert_quiescent, panic_message, until};

const HOUR: Duration = Duration::from_secs(3600);

on_both_drivers! {
    fn an_abort_handle_cancels_from_another_task(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let target = cx
                .spawn(|cx| async move { sleep(&cx, HOUR).await.map(|()| 1u32) })
                .unwrap();
            let abort = target.abort_handle();
            assert_eq!(abort.task_id(), target.task_id());
            assert!(!abort.is_finished());
            // Clone + Send + Sync: move a clone into another task.
            let remote: AbortHandle = abort.clone();
            let aborter = cx.spawn(move |_| async move { remote.abort() }).unwrap();
            aborter.join(&cx).await.unwrap();
            match target.join(&cx).await {
                Err(JoinError::Cancelled(r)) => assert_eq!(r.kind, CancelKind::User),
                other => panic!("expected a User cancel, got {other:?}"),
            }
            assert!(abort.is_finished(), "finished once joined");
            abort.abort(); // a finished task: nothing happens
        });
        assert_quiescent(&rt);
    }

    fn abort_with_gives_the_reason_and_repeated_aborts_only_strengthen(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let gate = Gate::new();
            let g = gate.clone();
            let target = cx
                .spawn(move |cx| async move {
                    g.wait().await; // not cancel-aware: both requests land first
                    cx.checkpoint()
                })
                .unwrap();
            let abort = target.abort_handle();
            abort.abort_with(CancelReason::shutdown().with_message("going down"));
            abort.abort(); // weaker: does not replace Shutdown
            gate.open();
            match target.join(&cx).await {
                Err(JoinError::Cancelled(r)) => {
                    assert_eq!(r.kind, CancelKind::Shutdown);
                    assert_eq!(r.message.as_deref(), Some("going down"));
                }
                other => panic!("expected Shutdown, got {other:?}"),
            }
        });
        assert_quiescent(&rt);
    }

    fn an_abort_handle_outlives_the_task_handle_without_keeping_anything(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let done = Flag::new();
            let d2 = done.clone();
            let abort = {
                let target = cx.spawn(move |_| async move { d2.set() }).unwrap();
                target.abort_handle()
                // The TaskHandle is dropped here; the region still owns the task.
            };
            until(|| abort.is_finished()).await;
            assert!(done.is_set());
            abort.abort();
        });
        assert_quiescent(&rt);
    }

    /// `join_mut` in a select loop: handle messages until the task ends,
    /// without consuming the handle in a losing round.
    fn join_mut_joins_from_a_select_loop(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(2);
            let mut worker = cx
                .spawn(move |cx| async move {
                    for i in 0..10 {
                        tx.send(&cx, i).await.unwrap();
                    }
                    "done"
                })
                .unwrap();
            let mut messages = Vec::new();
            let mut open = true;
            let mut rounds_lost_by_join = 0;
            let result = loop {
                let mut join = worker.join_mut(&cx);
                let mut recv = rx.recv(&cx);
                // A minimal biased select over the two futures.
                let event = std::future::poll_fn(|tcx| {
                    if open && let Poll::Ready(m) = Pin::new(&mut recv).poll(tcx) {
                        return Poll::Ready(Err(m));
                    }
                    Pin::new(&mut join).poll(tcx).map(Ok)
                })
                .await;
                match event {
                    Err(Ok(m)) => {
                        messages.push(m);
                        rounds_lost_by_join += 1;
                    }
                    Err(Err(_)) => open = false, // disconnected: the worker ended
                    Ok(joined) => break joined,
                }
            };
            assert!(rounds_lost_by_join > 0, "the join lost rounds and the handle survived them");
            assert_eq!(result, Ok("done"));
            // Whatever the worker queued before ending is still there.
            while let Ok(m) = rx.try_recv() {
                messages.push(m);
            }
            assert_eq!(messages, (0..10).collect::<Vec<_>>());
            assert!(worker.is_finished());
        });
        assert_quiescent(&rt);
    }

    /// A joiner cancelled while in `join_mut` keeps the handle; the task can
    /// still be joined by whoever gets the handle next.
    fn a_cancelled_join_mut_leaves_the_handle_joinable(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let gate = Gate::new();
            let g = gate.clone();
            let target = cx
                .spawn(move |_| async move {
                    g.wait().await;
                    42u32
                })
                .unwrap();
            let handed_back = Slot::new();
            let waiting = Flag::new();
            let joiner = {
                let (handed_back, waiting) = (handed_back.clone(), waiting.clone());
                cx.spawn(move |cx| async move {
                    let mut target = target;
                    let mut join = target.join_mut(&cx);
                    let first = std::future::poll_fn(|tcx| Poll::Ready(Pin::new(&mut join).poll(tcx))).await;
                    assert!(first.is_pending(), "the target waits on its gate");
                    waiting.set();
                    let r = join.await;
                    handed_back.set(target);
                    r
                })
                .unwrap()
            };
            until(|| waiting.is_set()).await;
            joiner.abort();
            // The joiner observed its own cancellation in join_mut and
            // returned; its output is dropped (a cancelled task joins Err).
            assert!(joiner.join(&cx).await.unwrap_err().is_cancelled());
            let target = handed_back.take().expect("the joiner handed the handle back");
            assert!(!target.is_finished(), "the target was not affected");
            gate.open();
            assert_eq!(target.join(&cx).await, Ok(42));
        });
        assert_quiescent(&rt);
    }

    /// Once `join_mut` returned the task's result the handle is spent:
    /// joining again panics naming rule J1.
    fn joining_a_spent_handle_panics_naming_j1(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let mut h = cx.spawn(|_| async { 7u8 }).unwrap();
            assert_eq!(h.join_mut(&cx).await, Ok(7));
            assert!(h.is_finished());
            let mut again = h.join_mut(&cx);
            let mut tcx = Context::from_waker(Waker::noop());
            let panicked = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut again).poll(&mut tcx)));
            let msg = panic_message(&*panicked.expect_err("a second join must panic"));
            assert!(msg.contains("rule J1"), "{msg}");
        });
    }

    fn runtime_spawn_runs_a_task_joinable_from_block_on(d: Driver) {
        let rt = d.rt();
        let h = rt.spawn(|cx| async move {
            asupersync::yield_now().await;
            cx.task_id()
        })
        .unwrap();
        let id = h.task_id();
        let joined = rt.block_on(|cx| async move { h.join(&cx).await });
        assert_eq!(joined, Ok(id));
    }

    fn dropping_the_runtime_cancels_runtime_spawned_tasks_with_shutdown(d: Driver) {
        let rt = d.rt();
        let seen = Slot::new();
        let s = seen.clone();
        let started = Flag::new();
        let st = started.clone();
        let _h = rt
            .spawn(move |cx| async move {
                st.set();
                if let Err(c) = sleep(&cx, HOUR).await {
                    s.set(c.reason().kind);
                }
            })
            .unwrap();
        // Let it start (the current-thread runtime runs it inside block_on).
        rt.block_on(|_cx| async move { until(|| started.is_set()).await });
        drop(rt);
        assert_eq!(seen.take(), Some(CancelKind::Shutdown));
    }
}

#[test]
fn runtime_spawn_refuses_once_shutdown_began() {
    // Shutdown consumes the runtime, so check through a handle made before:
    // both paths share the service region.
    let rt = Driver::MultiThread.rt();
    let handle = rt.handle();
    assert!(rt.shutdown_timeout(Duration::from_secs(5)));
    assert!(matches!(
        handle.spawn(|_| async {}),
        Err(SpawnError::RuntimeShutdown)
    ));
}
