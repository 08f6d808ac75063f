//! Issue 11 item 9, rule CX1: a `Cx` is used only by its own task. A wait
//! on another task's `Cx` (a child sleeping on its parent's `cx`) or on the
//! `Cx` of a task that has completed fails at once with a message naming
//! the rule, instead of ignoring the waiting task's cancellation or pending
//! forever. Legitimate uses — a region body's `cx`, a finalizer waiting on
//! the `Cx` it captured, code outside any task — keep working. Every
//! scenario runs on both production drivers and the lab.

mod support;

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use asupersync::sync::Notify;
use asupersync::types::Outcome;
use asupersync::{Cx, JoinError, time};
use support::*;

const HOUR: Duration = Duration::from_secs(3600);

fn assert_cx1(joined: Result<(), JoinError>) {
    match joined {
        Err(JoinError::Panicked(p)) => assert!(
            p.message().contains("rule CX1") && p.message().contains("spawn closure"),
            "unclear message: {}",
            p.message()
        ),
        other => panic!("expected the CX1 panic, got {other:?}"),
    }
}

/// A child sleeping on its parent's `cx`, a child checkpointing on it, and
/// a child waiting on a `Notify` with it: each panics naming CX1.
async fn a_child_using_its_parents_cx(cx: Cx) {
    let parent = cx.clone();
    let h = cx
        .spawn(move |_child| async move {
            let _ = time::sleep(&parent, HOUR).await;
        })
        .unwrap();
    assert_cx1(h.join(&cx).await);

    let parent = cx.clone();
    let h = cx
        .spawn(move |_child| async move {
            let _ = parent.checkpoint();
        })
        .unwrap();
    assert_cx1(h.join(&cx).await);

    let parent = cx.clone();
    let h = cx
        .spawn(move |_child| async move {
            let notify = Notify::new();
            let _ = notify.notified(&parent).await;
        })
        .unwrap();
    assert_cx1(h.join(&cx).await);
}

/// What the rule allows: a region body's `cx` (same task), the child's own
/// `cx`, finalizers waiting on the `Cx` they captured (also after the owner
/// completed: the root's finalizers run after the root body returned).
async fn legitimate_uses(cx: Cx, log: Log) {
    let outcome = cx
        .region(|rcx| {
            let log = log.clone();
            async move {
                time::sleep(&rcx, Duration::from_millis(1)).await.unwrap();
                rcx.checkpoint().unwrap();
                let owner = rcx.clone();
                let l = log.clone();
                rcx.defer_async(async move {
                    time::sleep(&owner, Duration::from_millis(1)).await.unwrap();
                    owner.checkpoint().unwrap();
                    l.push("region finalizer");
                })
                .unwrap();
                let h = rcx
                    .spawn(|own| async move {
                        time::sleep(&own, Duration::from_millis(1)).await.unwrap();
                        own.checkpoint().unwrap();
                        9
                    })
                    .unwrap();
                assert_eq!(h.join(&rcx).await.unwrap(), 9);
                Ok::<(), ()>(())
            }
        })
        .await;
    assert!(matches!(outcome, Outcome::Ok(())), "{outcome:?}");
    let root = cx.clone();
    let l = log.clone();
    cx.defer_async(async move {
        time::sleep(&root, Duration::from_millis(1)).await.unwrap();
        l.push("root finalizer");
    })
    .unwrap();
}

/// Polls `fut` once with a no-op waker.
fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut fut = Box::pin(fut);
    fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

fn nothing_after(_: &AnyRt) {}

on_all_drivers! {
    after = nothing_after;

    /// A child waiting or checkpointing on its parent's `cx` panics (CX1)
    /// at once, instead of sleeping an hour unaware of its own abort.
    fn a_child_using_its_parents_cx_panics(rt: &AnyRt) {
        rt.block_on(a_child_using_its_parents_cx);
        rt.assert_quiescent();
    }

    /// Region bodies, own `cx`s and finalizers with captured `Cx`s pass.
    fn legitimate_uses_pass(rt: &AnyRt) {
        let log = rt.block_on(|cx: Cx| async move {
            let log = Log::new();
            legitimate_uses(cx, log.clone()).await;
            log
        });
        assert_eq!(log.snapshot(), ["region finalizer", "root finalizer"]);
        rt.assert_quiescent();
    }

    /// The `Cx` of a task that completed (here the root task of a finished
    /// `block_on`) used for a timer: outside any task, and inside another
    /// `block_on`'s task. Both panic (CX1) instead of pending forever.
    fn a_completed_tasks_cx_panics(rt: &AnyRt) {
        let stale = rt.block_on(|cx: Cx| async move { cx });
        let msg = expect_panic(|| poll_once(time::sleep(&stale, HOUR)).is_pending());
        assert!(msg.contains("rule CX1") && msg.contains("completed"), "unclear message: {msg}");
        let msg = rt.block_on(|_cx: Cx| async move {
            expect_panic(|| poll_once(time::sleep(&stale, HOUR)).is_pending())
        });
        assert!(msg.contains("rule CX1"), "unclear message: {msg}");
        rt.assert_quiescent();
    }
}

/// Code outside any task is not checked: a plain thread may checkpoint and
/// register a timer on the `Cx` of a running task.
#[test]
fn a_plain_thread_may_use_a_live_tasks_cx() {
    with_watchdog("a_plain_thread_may_use_a_live_tasks_cx", || {
        for d in [Driver::CurrentThread, Driver::MultiThread] {
            let rt = d.rt();
            rt.block_on(|cx: Cx| async move {
                let c = cx.clone();
                let used = std::thread::spawn(move || {
                    c.checkpoint().is_ok() && poll_once(time::sleep(&c, HOUR)).is_pending()
                })
                .join();
                assert!(
                    matches!(used, Ok(true)),
                    "a plain thread could not use a live Cx"
                );
            });
            assert_quiescent(&rt);
        }
    });
}
