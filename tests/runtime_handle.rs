//! `Handle::spawn` from plain threads and runtime shutdown (rules H1–H3 in
//! `src/runtime/handle.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use asupersync::time::sleep;
use asupersync::types::CancelKind;
use asupersync::{Cx, RuntimeBuilder};

#[test]
fn a_plain_thread_spawns_through_a_handle_onto_the_workers() {
    let rt = RuntimeBuilder::new().worker_threads(2).build().unwrap();
    let handle = rt.handle();
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        for i in 0..10u64 {
            let tx = tx.clone();
            drop(
                handle
                    .spawn(move |_cx| async move { tx.send(i * i).unwrap() })
                    .unwrap(),
            );
        }
    })
    .join()
    .unwrap();
    let sum: u64 = (0..10).map(|_| rx.recv().unwrap()).sum();
    assert_eq!(sum, 285);
    assert!(rt.shutdown_timeout(Duration::from_secs(5)));
}

#[test]
fn on_the_current_thread_runtime_handle_tasks_run_inside_block_on() {
    let rt = RuntimeBuilder::current_thread().build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let h = rt
        .handle()
        .spawn(move |_cx| async move { r.fetch_add(1, Ordering::SeqCst) })
        .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "nothing drives it yet");
    let v = rt.block_on(|cx: Cx| async move { h.join(&cx).await.unwrap() });
    assert_eq!(v, 0);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn shutdown_cancels_handle_tasks_with_shutdown_and_runs_their_finalizers() {
    for multi in [false, true] {
        let builder = if multi {
            RuntimeBuilder::new().worker_threads(2)
        } else {
            RuntimeBuilder::current_thread()
        };
        let rt = builder.build().unwrap();
        let (tx, rx) = std_mpsc::channel();
        let finalized = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..4 {
            let (tx, f, s) = (tx.clone(), finalized.clone(), started.clone());
            drop(
                rt.handle()
                    .spawn(move |cx| async move {
                        s.fetch_add(1, Ordering::SeqCst);
                        cx.defer_sync(move || {
                            f.fetch_add(1, Ordering::SeqCst);
                        })
                        .unwrap();
                        let err = sleep(&cx, Duration::from_secs(3600)).await.unwrap_err();
                        tx.send(err.reason().kind).unwrap();
                    })
                    .unwrap(),
            );
        }
        drop(tx);
        // Let them start (a task cancelled before its first poll never runs);
        // on the current-thread runtime, handle tasks run inside block_on.
        let s = started.clone();
        rt.block_on(|_cx: Cx| async move {
            while s.load(Ordering::SeqCst) < 4 {
                asupersync::yield_now().await;
            }
        });
        assert!(rt.shutdown_timeout(Duration::from_secs(5)), "multi={multi}");
        let kinds: Vec<CancelKind> = rx.iter().collect();
        assert_eq!(kinds, vec![CancelKind::Shutdown; 4], "multi={multi}");
        assert_eq!(
            finalized.load(Ordering::SeqCst),
            4,
            "multi={multi}: finalizers ran"
        );
    }
}

#[test]
fn shutdown_force_drops_a_task_that_ignores_cancellation() {
    let rt = RuntimeBuilder::new()
        .worker_threads(2)
        .cleanup_grace(Duration::from_millis(20))
        .build()
        .unwrap();
    let (started_tx, started_rx) = std_mpsc::channel();
    drop(
        rt.handle()
            .spawn(move |_cx| async move {
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await
            })
            .unwrap(),
    );
    started_rx.recv().unwrap();
    assert!(rt.shutdown_timeout(Duration::from_secs(5)));
}

#[test]
fn shutdown_reports_a_timeout_it_could_not_meet() {
    let rt = RuntimeBuilder::new().worker_threads(1).build().unwrap();
    let (started_tx, started_rx) = std_mpsc::channel();
    drop(
        rt.handle()
            .spawn(move |_cx| async move {
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await // default Shutdown grace: 200 ms
            })
            .unwrap(),
    );
    started_rx.recv().unwrap();
    assert!(!rt.shutdown_timeout(Duration::from_millis(10)));
}

#[test]
fn dropping_the_runtime_cancels_and_drains_handle_tasks() {
    let rt = RuntimeBuilder::new().worker_threads(2).build().unwrap();
    let (tx, rx) = std_mpsc::channel();
    let (started_tx, started_rx) = std_mpsc::channel();
    drop(
        rt.handle()
            .spawn(move |cx| async move {
                started_tx.send(()).unwrap();
                let r = sleep(&cx, Duration::from_secs(3600)).await;
                tx.send(r.is_err()).unwrap();
            })
            .unwrap(),
    );
    started_rx.recv().unwrap();
    drop(rt);
    assert!(rx.recv().unwrap(), "the task observed the shutdown");
}

#[test]
fn a_handle_refuses_spawns_once_shutdown_began() {
    let rt = RuntimeBuilder::current_thread().build().unwrap();
    let handle = rt.handle();
    drop(handle.spawn(|_cx| async {}).unwrap());
    assert!(rt.shutdown_timeout(Duration::from_secs(1)));
    let refused = handle.spawn(|_cx| async {}).unwrap_err();
    assert_eq!(refused, asupersync::SpawnError::RuntimeShutdown);
    assert!(refused.to_string().contains("shutting down"));
}
