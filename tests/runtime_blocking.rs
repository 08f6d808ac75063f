//! `spawn_blocking`: a region-owned task whose closure runs on the bounded
//! blocking pool (rules B1–B5 in `src/runtime/blocking.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use asupersync::lab::{LabConfig, LabRuntime};
use asupersync::time::sleep;
use asupersync::{Cx, RuntimeBuilder, spawn_blocking};

fn runtimes() -> Vec<(&'static str, asupersync::Runtime)> {
    vec![
        (
            "current_thread",
            RuntimeBuilder::current_thread().build().unwrap(),
        ),
        (
            "multi_thread",
            RuntimeBuilder::new().worker_threads(2).build().unwrap(),
        ),
    ]
}

#[test]
fn a_blocking_closure_returns_its_value_through_the_handle() {
    for (name, rt) in runtimes() {
        let v = rt.block_on(|cx: Cx| async move {
            let h = spawn_blocking(&cx, || (1..=10u64).product::<u64>()).unwrap();
            h.join(&cx).await.unwrap()
        });
        assert_eq!(v, 3_628_800, "{name}");
    }
}

#[test]
fn the_region_waits_for_the_blocking_closure_to_finish() {
    for (name, rt) in runtimes() {
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        rt.block_on(move |cx: Cx| async move {
            let out = cx
                .region(|cx| async move {
                    let d = d.clone();
                    // The handle is dropped: the region still owns the task.
                    drop(spawn_blocking(&cx, move || {
                        let spin = Instant::now();
                        while spin.elapsed() < Duration::from_millis(5) {
                            std::hint::spin_loop();
                        }
                        d.fetch_add(1, Ordering::SeqCst);
                    })?);
                    Ok::<_, asupersync::SpawnError>(())
                })
                .await;
            assert!(out.is_ok());
            assert_eq!(
                done.load(Ordering::SeqCst),
                1,
                "{name}: closed before the closure ended"
            );
        });
    }
}

#[test]
fn a_panicking_closure_joins_as_panicked_and_the_pool_survives() {
    for (name, rt) in runtimes() {
        rt.block_on(|cx: Cx| async move {
            let h = spawn_blocking(&cx, || -> u32 { panic!("blocking boom") }).unwrap();
            let err = h.join(&cx).await.unwrap_err();
            assert_eq!(
                err.panic_payload().unwrap().message(),
                "blocking boom",
                "{name}"
            );
            let again = spawn_blocking(&cx, || 7).unwrap();
            assert_eq!(again.join(&cx).await.unwrap(), 7, "{name}");
        });
    }
}

#[test]
fn cancelling_a_running_closure_neither_interrupts_it_nor_loses_its_result() {
    for (name, _) in runtimes() {
        let rt = if name == "current_thread" {
            RuntimeBuilder::current_thread()
        } else {
            RuntimeBuilder::new().worker_threads(2)
        }
        .cleanup_grace(Duration::from_millis(5))
        .build()
        .unwrap();
        rt.block_on(|cx: Cx| async move {
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
            let h = spawn_blocking(&cx, move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap(); // blocks until released
                99
            })
            .unwrap();
            // Wait (cooperatively) until the closure is running.
            while started_rx.try_recv().is_err() {
                sleep(&cx, Duration::from_millis(1)).await.unwrap();
            }
            h.abort();
            // Far past the 5 ms grace period: an interruptible task would be dropped.
            sleep(&cx, Duration::from_millis(50)).await.unwrap();
            assert!(!h.is_finished(), "{name}: the closure is still blocked");
            release_tx.send(()).unwrap();
            assert_eq!(h.join(&cx).await.unwrap(), 99, "{name}");
        });
    }
}

#[test]
fn the_pool_never_runs_more_closures_than_its_bound() {
    let rt = RuntimeBuilder::current_thread()
        .max_blocking_threads(2)
        .build()
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let total = rt.block_on(move |cx: Cx| async move {
        let mut handles = Vec::new();
        for i in 0..8u64 {
            let (r, p) = (r.clone(), p.clone());
            handles.push(
                spawn_blocking(&cx, move || {
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    let spin = Instant::now();
                    while spin.elapsed() < Duration::from_millis(2) {
                        std::hint::spin_loop();
                    }
                    r.fetch_sub(1, Ordering::SeqCst);
                    i
                })
                .unwrap(),
            );
        }
        let mut total = 0;
        for h in handles {
            total += h.join(&cx).await.unwrap();
        }
        total
    });
    assert_eq!(total, 28);
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert!(rt.blocking_threads() <= 2);
}

#[test]
fn idle_pool_threads_retire_after_their_keep_alive() {
    let rt = RuntimeBuilder::current_thread()
        .blocking_keep_alive(Duration::from_millis(5))
        .build()
        .unwrap();
    let rt_ref = &rt;
    rt.block_on(|cx: Cx| async move {
        spawn_blocking(&cx, || ()).unwrap().join(&cx).await.unwrap();
        assert_eq!(rt_ref.blocking_threads(), 1, "started lazily, exactly one");
        // Cooperative, bounded wait (runtime timer) for the thread to retire.
        for _ in 0..500 {
            if rt_ref.blocking_threads() == 0 {
                break;
            }
            sleep(&cx, Duration::from_millis(10)).await.unwrap();
        }
    });
    assert_eq!(rt.blocking_threads(), 0);
}

#[test]
fn in_the_lab_blocking_closures_run_inline_and_deterministically() {
    let run = |seed| {
        let lab = LabRuntime::new(LabConfig::new(seed));
        let v = lab.block_on(|cx| async move {
            let a = spawn_blocking(&cx, || 2).unwrap();
            let b = spawn_blocking(&cx, || 3).unwrap();
            a.join(&cx).await.unwrap() * b.join(&cx).await.unwrap()
        });
        (v, lab.trace_fingerprint())
    };
    assert_eq!(run(5), run(5));
    assert_eq!(run(5).0, 6);
}
