//! `TaskHandle`: join, is_finished, abort, abort_with, drop; `JoinError`.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asupersync::cx::Capabilities;
use asupersync::time::sleep;
use asupersync::types::outcome::PanicPayload;
use asupersync::types::{CancelKind, CancelReason, ObligationId, RegionId, TaskId};
use asupersync::{
    Budget, Cx, JoinError, Outcome, Runtime, SpawnError, TaskHandle, Time, yield_now,
};
use support::{DropFlag, Gate, SOON, for_each_driver, yield_until};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn join_returns_the_task_value() {
    for_each_driver(|name, rt| {
        let v = rt.block_on(|cx: Cx| async move {
            let hs: Vec<TaskHandle<u64>> = (0..20u64)
                .map(|i| cx.spawn(move |_| async move { i * i }).unwrap())
                .collect();
            let mut out = Vec::new();
            for h in hs {
                out.push(h.join(&cx).await.unwrap());
            }
            out
        });
        assert_eq!(v, (0..20u64).map(|i| i * i).collect::<Vec<_>>(), "[{name}]");
    });
}

#[test]
fn is_finished_is_false_while_running_and_true_once_done() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let gate = Gate::new();
            let g = gate.clone();
            let h = cx
                .spawn(move |_| async move {
                    g.wait().await;
                    5u32
                })
                .unwrap();
            for _ in 0..5 {
                yield_now().await;
                assert!(
                    !h.is_finished(),
                    "[{name}] the task is still waiting on its gate"
                );
            }
            gate.open();
            yield_until("the task to finish", SOON, || h.is_finished()).await;
            assert!(h.is_finished(), "[{name}]");
            assert_eq!(
                h.join(&cx).await,
                Ok(5),
                "[{name}] finished output still joinable"
            );
        });
    });
}

#[test]
fn abort_makes_join_return_cancelled_with_kind_user() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let started = Gate::new();
            let st = started.clone();
            let h = cx
                .spawn(move |cx| async move {
                    st.open();
                    sleep(&cx, HOUR).await.ok();
                    1u8
                })
                .unwrap();
            started.wait().await;
            h.abort();
            let e = h.join(&cx).await.expect_err("aborted");
            match &e {
                JoinError::Cancelled(r) => assert_eq!(r.kind, CancelKind::User, "[{name}]"),
                other => panic!("[{name}] expected Cancelled(User), got {other:?}"),
            }
        });
    });
}

#[test]
fn a_task_aborted_before_its_first_poll_never_runs_and_joins_cancelled() {
    // Deterministic only on the current-thread driver: nothing runs until
    // the root task yields.
    let rt = support::Driver::CurrentThread.rt();
    rt.block_on(|cx: Cx| async move {
        let ran = Arc::new(AtomicBool::new(false));
        let r2 = ran.clone();
        let h = cx
            .spawn(move |_| async move {
                r2.store(true, Ordering::SeqCst);
            })
            .unwrap();
        h.abort();
        let e = h.join(&cx).await.expect_err("aborted before start");
        assert_eq!(e.cancel_reason().map(|r| r.kind), Some(CancelKind::User));
        assert!(!ran.load(Ordering::SeqCst), "the body never started");
    });
}

#[test]
fn abort_with_keeps_the_kind_and_the_message() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            for reason in [
                CancelReason::timeout().with_message("too slow"),
                CancelReason::shutdown().with_message("bye"),
                CancelReason::user("stop it"),
                CancelReason::race_lost(),
            ] {
                let seen = Arc::new(Mutex::new(None));
                let started = Gate::new();
                let (s2, st) = (seen.clone(), started.clone());
                let h = cx
                    .spawn(move |cx| async move {
                        st.open();
                        let r = sleep(&cx, HOUR).await;
                        *s2.lock().unwrap() = r.err().map(|c| c.into_reason());
                    })
                    .unwrap();
                started.wait().await;
                h.abort_with(reason.clone());
                let e = h.join(&cx).await.expect_err("aborted");
                let got = e.cancel_reason().expect("cancelled").clone();
                assert_eq!(got.kind, reason.kind, "[{name}]");
                assert_eq!(got.message, reason.message, "[{name}]");
                let inner = seen.lock().unwrap().clone().expect("sleep saw the cancel");
                assert_eq!(
                    inner.kind, reason.kind,
                    "[{name}] the task sees the same reason"
                );
                assert_eq!(inner.message, reason.message, "[{name}]");
            }
        });
    });
}

#[test]
fn repeated_aborts_only_strengthen_the_reason() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let started = Gate::new();
            let gate = Gate::new();
            let (st, g) = (started.clone(), gate.clone());
            let h = cx
                .spawn(move |cx| async move {
                    st.open();
                    g.wait().await; // not cancel-aware: cannot acknowledge yet
                    cx.checkpoint().map_err(|c| c.into_reason())
                })
                .unwrap();
            started.wait().await;
            h.abort();
            h.abort_with(CancelReason::shutdown().with_message("bye"));
            h.abort(); // weaker: must not replace Shutdown
            h.abort_with(CancelReason::timeout());
            gate.open();
            let e = h.join(&cx).await.expect_err("cancelled");
            let r = e.cancel_reason().unwrap();
            assert_eq!(r.kind, CancelKind::Shutdown, "[{name}] {r:?}");
            assert_eq!(r.message.as_deref(), Some("bye"), "[{name}]");
        });
    });
}

#[test]
fn abort_after_completion_is_a_no_op() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let h = cx.spawn(|_| async { String::from("done") }).unwrap();
            yield_until("the task to finish", SOON, || h.is_finished()).await;
            h.abort();
            h.abort_with(CancelReason::shutdown());
            assert_eq!(
                h.join(&cx).await,
                Ok(String::from("done")),
                "[{name}] aborting a finished task must not turn its value into a cancellation"
            );
        });
    });
}

#[test]
fn dropping_a_handle_does_not_cancel_the_task_and_the_region_waits_for_it() {
    for_each_driver(|name, rt| {
        const N: usize = 40;
        let completed = Arc::new(AtomicUsize::new(0));
        let slept_ok = Arc::new(AtomicUsize::new(0));
        let (c2, s2) = (completed.clone(), slept_ok.clone());
        rt.block_on(move |cx: Cx| async move {
            let (c3, s3) = (c2.clone(), s2.clone());
            let out = cx
                .region(move |cx| async move {
                    for i in 0..N {
                        let (c, s) = (c3.clone(), s3.clone());
                        let h = cx
                            .spawn(move |cx| async move {
                                let d = Duration::from_millis(1 + (i as u64 % 3));
                                if sleep(&cx, d).await.is_ok() {
                                    s.fetch_add(1, Ordering::SeqCst);
                                }
                                c.fetch_add(1, Ordering::SeqCst);
                            })
                            .unwrap();
                        drop(h);
                    }
                    Ok::<_, ()>(())
                })
                .await;
            assert!(out.is_ok(), "[{name}] {out:?}");
            assert_eq!(
                c2.load(Ordering::SeqCst),
                N,
                "[{name}] the region waited for every task whose handle was dropped"
            );
            // And the root region too, for tasks spawned straight into it.
            for _ in 0..N {
                let c = c2.clone();
                drop(
                    cx.spawn(move |cx| async move {
                        sleep(&cx, Duration::from_millis(1)).await.unwrap();
                        c.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap(),
                );
            }
        });
        assert_eq!(completed.load(Ordering::SeqCst), 2 * N, "[{name}]");
        assert_eq!(
            slept_ok.load(Ordering::SeqCst),
            N,
            "[{name}] none was cancelled"
        );
    });
}

#[test]
fn a_cancelled_joiner_gets_its_own_reason_and_the_joined_task_runs_on() {
    for_each_driver(|name, rt| {
        let (payload, payload_dropped) = DropFlag::new();
        let b_finished_normally = Arc::new(AtomicBool::new(false));
        let joiner_saw = Arc::new(Mutex::new(None));
        let (bfn, js) = (b_finished_normally.clone(), joiner_saw.clone());
        rt.block_on(move |cx: Cx| async move {
            let b_gate = Gate::new();
            let bg = b_gate.clone();
            let bfn2 = bfn.clone();
            let hb = cx
                .spawn(move |cx| async move {
                    bg.wait().await;
                    if cx.checkpoint().is_ok() {
                        bfn2.store(true, Ordering::SeqCst);
                    }
                    payload
                })
                .unwrap();
            let a_started = Gate::new();
            let ast = a_started.clone();
            let ha = cx
                .spawn(move |cx| async move {
                    ast.open();
                    let r = hb.join(&cx).await;
                    *js.lock().unwrap() = Some(r.map(|_| ()));
                })
                .unwrap();
            a_started.wait().await;
            ha.abort_with(CancelReason::user("joiner stop"));
            let ea = ha.join(&cx).await.expect_err("the joiner was cancelled");
            assert_eq!(
                ea.cancel_reason().unwrap().message.as_deref(),
                Some("joiner stop")
            );
            b_gate.open();
            yield_until("B to finish", SOON, || bfn.load(Ordering::SeqCst)).await;
        });
        let seen = joiner_saw
            .lock()
            .unwrap()
            .clone()
            .expect("the joiner recorded its join");
        match seen {
            Err(JoinError::Cancelled(r)) => {
                assert_eq!(r.kind, CancelKind::User, "[{name}]");
                assert_eq!(
                    r.message.as_deref(),
                    Some("joiner stop"),
                    "[{name}] join returns the joiner's own reason"
                );
            }
            other => panic!("[{name}] expected Err(Cancelled(joiner's reason)), got {other:?}"),
        }
        assert!(
            b_finished_normally.load(Ordering::SeqCst),
            "[{name}] the joined task is not cancelled by its joiner's cancellation"
        );
        assert!(
            payload_dropped.wait_dropped(SOON),
            "[{name}] the unjoined output is dropped once the task finished"
        );
    });
}

#[test]
fn an_output_already_available_is_returned_even_to_a_cancelled_joiner() {
    for_each_driver(|name, rt| {
        let slot = Arc::new(Mutex::new(None));
        let s2 = slot.clone();
        rt.block_on(move |cx: Cx| async move {
            let hb = cx.spawn(|_| async { 11u32 }).unwrap();
            let a_started = Gate::new();
            let gate = Gate::new();
            let (ast, g) = (a_started.clone(), gate.clone());
            let ha = cx
                .spawn(move |cx| async move {
                    ast.open();
                    g.wait().await; // not cancel-aware
                    assert!(cx.is_cancel_requested());
                    yield_until("B to finish", SOON, || hb.is_finished()).await;
                    let r = hb.join(&cx).await;
                    *s2.lock().unwrap() = Some(r);
                })
                .unwrap();
            a_started.wait().await;
            ha.abort();
            gate.open();
            let _ = ha.join(&cx).await;
        });
        assert_eq!(
            *slot.lock().unwrap(),
            Some(Ok(11)),
            "[{name}] a finished task's value is delivered even to a cancelled joiner"
        );
    });
}

#[test]
fn a_panicking_task_joins_as_panicked_with_its_message() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let h = cx
                .spawn(|_| async {
                    if true {
                        panic!("kaboom {}", 42);
                    }
                    0u8
                })
                .unwrap();
            let e = h.join(&cx).await.expect_err("panicked");
            assert!(e.is_panicked() && !e.is_cancelled(), "[{name}] {e:?}");
            assert_eq!(
                e.panic_payload().unwrap().message(),
                "kaboom 42",
                "[{name}]"
            );
            assert!(e.cancel_reason().is_none());
        });
    });
}

#[test]
fn join_error_predicates_accessors_and_display() {
    let c = JoinError::Cancelled(CancelReason::user("bye"));
    assert!(c.is_cancelled() && !c.is_panicked());
    assert_eq!(c.cancel_reason().unwrap().kind, CancelKind::User);
    assert!(c.panic_payload().is_none());
    let s = c.to_string();
    assert!(s.contains("cancel") && s.contains("bye"), "Display: {s:?}");

    let p = JoinError::Panicked(PanicPayload::new("kaboom"));
    assert!(p.is_panicked() && !p.is_cancelled());
    assert_eq!(p.panic_payload().unwrap().message(), "kaboom");
    assert!(p.cancel_reason().is_none());
    let s = p.to_string();
    assert!(
        s.contains("panic") && s.contains("kaboom"),
        "Display: {s:?}"
    );

    // It is a std error and comparable.
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(p.clone());
    assert!(boxed.to_string().contains("kaboom"));
    assert_ne!(c, p);
}

#[test]
fn task_ids_are_distinct_and_match_the_spawned_task() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let mut ids = std::collections::HashSet::new();
            let mut hs = Vec::new();
            for _ in 0..50 {
                let h = cx.spawn(|cx| async move { cx.task_id() }).unwrap();
                assert!(ids.insert(h.task_id()), "[{name}] duplicate live task id");
                hs.push(h);
            }
            for h in hs {
                let id = h.task_id();
                assert_eq!(
                    h.join(&cx).await.unwrap(),
                    id,
                    "[{name}] cx.task_id() == handle id"
                );
            }
            assert!(
                !ids.contains(&cx.task_id()),
                "[{name}] root id differs from children"
            );
        });
    });
}

// ----- compile-time auto-trait assertions ----------------------------------

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<Cx>();
    assert_send_sync::<TaskHandle<u32>>();
    assert_send_sync::<Runtime>();
    assert_send_sync::<JoinError>();
    assert_send_sync::<Outcome<u8, String>>();
    assert_send_sync::<CancelReason>();
    assert_send_sync::<CancelKind>();
    assert_send_sync::<Budget>();
    assert_send_sync::<Time>();
    assert_send_sync::<TaskId>();
    assert_send_sync::<RegionId>();
    assert_send_sync::<ObligationId>();
    assert_send_sync::<SpawnError>();
    assert_send_sync::<PanicPayload>();
    assert_send_sync::<Capabilities>();
    assert_send_sync::<asupersync::time::Elapsed>();
    assert_send_sync::<asupersync::time::Sleep>();
    assert_send_sync::<asupersync::time::Interval>();
    assert_send_sync::<asupersync::types::cancel::Cancelled>();
}

#[test]
fn a_handle_can_be_joined_from_another_task() {
    for_each_driver(|name, rt| {
        let v = rt.block_on(|cx: Cx| async move {
            let h = cx
                .spawn(|cx| async move {
                    sleep(&cx, Duration::from_millis(2)).await.unwrap();
                    9u8
                })
                .unwrap();
            // The handle is Send: move it into another task and join there.
            let j = cx
                .spawn(move |cx| async move { h.join(&cx).await })
                .unwrap();
            j.join(&cx).await.unwrap()
        });
        assert_eq!(v, Ok(9), "[{name}]");
    });
}
