use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use asupersync::types::CancelKind;
use asupersync::{Cx, RuntimeBuilder, time};

fn rt() -> asupersync::Runtime {
    RuntimeBuilder::current_thread().build().unwrap()
}

#[test]
fn block_on_returns_the_body_value() {
    assert_eq!(rt().block_on(|_cx: Cx| async { 7 }), 7);
}

#[test]
fn spawned_task_joins_with_its_value() {
    let v = rt().block_on(|cx: Cx| async move {
        let h = cx.spawn(|_cx| async { 40 + 2 }).unwrap();
        h.join(&cx).await.unwrap()
    });
    assert_eq!(v, 42);
}

#[test]
fn block_on_waits_for_unjoined_children() {
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    rt().block_on(move |cx: Cx| async move {
        for _ in 0..10 {
            let d = d.clone();
            let _ = cx.spawn(move |cx| async move {
                time::sleep(&cx, Duration::from_millis(5)).await.unwrap();
                d.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    assert_eq!(done.load(Ordering::SeqCst), 10);
}

#[test]
fn aborted_sleeper_joins_cancelled_user() {
    rt().block_on(|cx: Cx| async move {
        let h = cx
            .spawn(|cx| async move {
                let _ = time::sleep(&cx, Duration::from_secs(3600)).await;
            })
            .unwrap();
        asupersync::yield_now().await;
        h.abort();
        let err = h.join(&cx).await.unwrap_err();
        assert_eq!(err.cancel_reason().unwrap().kind, CancelKind::User);
    });
}

#[test]
fn multi_thread_runtime_runs_tasks() {
    let rt = RuntimeBuilder::new().worker_threads(2).build().unwrap();
    let sum = rt.block_on(|cx: Cx| async move {
        let mut hs = Vec::new();
        for i in 0..100u64 {
            hs.push(cx.spawn(move |_| async move { i }).unwrap());
        }
        let mut s = 0;
        for h in hs {
            s += h.join(&cx).await.unwrap();
        }
        s
    });
    assert_eq!(sum, 4950);
}

#[test]
fn region_outcome_and_failfast() {
    rt().block_on(|cx: Cx| async move {
        let out = cx
            .region(|cx| async move {
                let h = cx
                    .spawn(|cx| async move { time::sleep(&cx, Duration::from_secs(3600)).await })
                    .unwrap();
                let _ = h;
                Err::<(), _>("boom")
            })
            .await;
        assert!(out.is_err());
    });
}
