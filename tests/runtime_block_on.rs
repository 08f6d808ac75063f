//! `block_on` itself (contract 2): a nested call panics at once naming rule
//! BO1 (every runtime, the lab included); calls from several threads run
//! side by side; a failure that never went through the panic hook (an
//! obligation leak, an escalated child failure) still prints a message when
//! it ends the process.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;

use asupersync::lab::{LabConfig, LabRuntime};
use asupersync::runtime::spawn_blocking;
use asupersync::{Cx, JoinError, RuntimeBuilder};
use support::*;

// ----- BO1: no nested block_on --------------------------------------------

fn assert_bo1(msg: &str) {
    assert!(
        msg.contains("rule BO1") && msg.contains("block_on"),
        "expected the BO1 panic, got: {msg}"
    );
}

fn assert_bo1_join<T: std::fmt::Debug>(joined: Result<T, JoinError>) {
    match joined {
        Err(JoinError::Panicked(p)) => assert_bo1(p.message()),
        other => panic!("expected the task to panic with BO1, got {other:?}"),
    }
}

on_both_drivers! {
    /// `block_on` of the same runtime inside its root task.
    fn nested_block_on_in_the_root_task_panics(d: Driver) {
        let rt = d.rt();
        let msg = expect_panic(|| rt.block_on(|_cx: Cx| async { rt.block_on(|_| async { 1 }) }));
        assert_bo1(&msg);
        assert_eq!(rt.block_on(|_| async { 2 }), 2);
        assert_quiescent(&rt);
    }

    /// `block_on` of the same runtime, and of a lab, inside a spawned task.
    fn nested_block_on_in_a_spawned_task_panics(d: Driver) {
        let rt = Arc::new(d.rt());
        let inner = rt.clone();
        rt.block_on(|cx: Cx| async move {
            let h = cx.spawn(move |_| async move { inner.block_on(|_| async { 1 }) }).unwrap();
            assert_bo1_join(h.join(&cx).await);
            let h = cx.spawn(|_| async {
                LabRuntime::new(LabConfig::new(1)).block_on(|_| async { 1 })
            }).unwrap();
            assert_bo1_join(h.join(&cx).await);
            let h = cx.spawn(|_| async {
                RuntimeBuilder::current_thread().build().unwrap().block_on(|_| async { 1 })
            }).unwrap();
            assert_bo1_join(h.join(&cx).await);
        });
        assert_quiescent(&rt);
    }

    /// A `spawn_blocking` closure is not inside a task: it may run another
    /// runtime's `block_on`.
    fn block_on_in_a_blocking_closure_works(d: Driver) {
        let rt = d.rt();
        let v = rt.block_on(|cx: Cx| async move {
            let h = spawn_blocking(&cx, || {
                let other = RuntimeBuilder::current_thread().build().unwrap();
                other.block_on(|cx: Cx| async move {
                    cx.spawn(|_| async { 20 }).unwrap().join(&cx).await.unwrap() + 1
                })
            }).unwrap();
            h.join(&cx).await.unwrap()
        });
        assert_eq!(v, 21);
        assert_quiescent(&rt);
    }
}

#[test]
fn nested_lab_block_on_panics() {
    with_watchdog("nested_lab_block_on_panics", || {
        let lab = LabRuntime::new(LabConfig::new(5));
        let msg = expect_panic(|| lab.block_on(|_cx: Cx| async { lab.block_on(|_| async { 1 }) }));
        assert_bo1(&msg);
        let msg = expect_panic(|| {
            lab.block_on(|_cx: Cx| async {
                RuntimeBuilder::current_thread()
                    .build()
                    .unwrap()
                    .block_on(|_| async { 1 })
            })
        });
        assert_bo1(&msg);
        // The lab goes on, and its inline blocking closures are not inside
        // a task.
        let v = lab.block_on(|cx: Cx| async move {
            let h = spawn_blocking(&cx, || {
                let other = RuntimeBuilder::current_thread().build().unwrap();
                other.block_on(|_| async { 3 })
            })
            .unwrap();
            h.join(&cx).await.unwrap()
        });
        assert_eq!(v, 3);
        assert!(lab.live_tasks().is_empty());
    });
}

// ----- concurrent block_on ------------------------------------------------

on_both_drivers! {
    /// Two threads in `block_on` at once: the first one's root waits for
    /// something that the second releases only after its own `block_on`
    /// (with a spawned task) returned. Serialized calls would deadlock.
    fn concurrent_block_on_calls_run_side_by_side(d: Driver) {
        let rt = Arc::new(d.rt());
        let released = Gate::new();
        let (entered_tx, entered_rx) = mpsc::channel();
        let first = {
            let (rt, released) = (rt.clone(), released.clone());
            std::thread::spawn(move || {
                rt.block_on(|cx: Cx| async move {
                    entered_tx.send(()).unwrap();
                    let h = cx.spawn(move |_| async move {
                        released.wait().await;
                        1
                    }).unwrap();
                    h.join(&cx).await.unwrap()
                })
            })
        };
        entered_rx.recv().unwrap();
        let second = rt.block_on(|cx: Cx| async move {
            cx.spawn(|_| async { 2 }).unwrap().join(&cx).await.unwrap()
        });
        assert_eq!(second, 2);
        released.open();
        assert_eq!(first.join().unwrap(), 1);
        assert_quiescent(&rt);
    }

    /// The thread whose `block_on` drives the tasks returns first; the
    /// other caller's tasks keep running (on the current-thread runtime
    /// it takes over driving).
    fn a_waiting_block_on_takes_over_when_the_other_returns(d: Driver) {
        let rt = Arc::new(d.rt());
        let first_may_return = Gate::new();
        let first_returned = Gate::new();
        let (entered_tx, entered_rx) = mpsc::channel();
        let first = {
            let (rt, may_return) = (rt.clone(), first_may_return.clone());
            std::thread::spawn(move || {
                rt.block_on(|_cx: Cx| async move {
                    entered_tx.send(()).unwrap();
                    may_return.wait().await;
                });
            })
        };
        entered_rx.recv().unwrap();
        // Opens `first_returned` once the first `block_on` has returned.
        let watcher = {
            let returned = first_returned.clone();
            std::thread::spawn(move || {
                first.join().unwrap();
                returned.open();
            })
        };
        let v = rt.block_on(|cx: Cx| async move {
            let h = cx.spawn(move |_| async move {
                first_returned.wait().await;
                5
            }).unwrap();
            first_may_return.open();
            h.join(&cx).await.unwrap()
        });
        assert_eq!(v, 5);
        watcher.join().unwrap();
        assert_quiescent(&rt);
    }
}

// ----- failures that end the process print a message ------------------------

/// Set in the child process to the scenario it must run.
const CHILD_ENV: &str = "ASUPERSYNC_BLOCK_ON_CHILD";

async fn leak_in_root(cx: Cx) {
    std::mem::forget(cx.reserve_obligation("x").unwrap());
}

async fn leak_in_unjoined_child(cx: Cx) {
    drop(
        cx.spawn(|c| async move {
            std::mem::forget(c.reserve_obligation("y").unwrap());
        })
        .unwrap(),
    );
}

/// The scenarios a child process runs; each ends by panicking out of
/// `block_on` without a hook message of its own before the fix.
fn run_child_scenario(name: &str) {
    let rt = |d: Driver| d.rt();
    match name {
        "root_current" => rt(Driver::CurrentThread).block_on(leak_in_root),
        "root_multi" => rt(Driver::MultiThread).block_on(leak_in_root),
        "root_lab" => LabRuntime::new(LabConfig::new(1)).block_on(leak_in_root),
        "child_current" => rt(Driver::CurrentThread).block_on(leak_in_unjoined_child),
        "child_multi" => rt(Driver::MultiThread).block_on(leak_in_unjoined_child),
        "child_lab" => LabRuntime::new(LabConfig::new(1)).block_on(leak_in_unjoined_child),
        other => panic!("unknown scenario {other}"),
    }
}

/// Entry point of the child process (a no-op in the parent).
#[test]
fn child_process_entry() {
    if let Ok(name) = std::env::var(CHILD_ENV) {
        run_child_scenario(&name);
    }
}

/// Issue 11 item 2: a leaked obligation in the root task (or in an unjoined
/// child, reaching the root) used to end the process with status 101 and
/// no message. The process must fail *and* say why.
#[test]
fn an_obligation_leak_that_fails_block_on_prints_a_message() {
    let exe = std::env::current_exe().expect("test binary path");
    let mut failures = Vec::new();
    for scenario in [
        "root_current",
        "root_multi",
        "root_lab",
        "child_current",
        "child_multi",
        "child_lab",
    ] {
        let out = Command::new(&exe)
            .args([
                "--exact",
                "child_process_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, scenario)
            .output()
            .expect("run the test binary as a child");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains("obligation leak") {
            failures.push(format!(
                "{scenario}: status {:?}, stderr:\n{stderr}",
                out.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// A real panic of the root body is resumed with its original payload.
#[test]
fn a_root_panic_keeps_its_payload() {
    for d in [Driver::CurrentThread, Driver::MultiThread] {
        let rt = d.rt();
        let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(|_cx: Cx| async { std::panic::panic_any(42_u32) })
        }))
        .expect_err("the body panicked");
        assert_eq!(payload.downcast_ref::<u32>(), Some(&42));
    }
    let payload = std::panic::catch_unwind(|| {
        LabRuntime::new(LabConfig::new(2))
            .block_on(|_cx: Cx| async { std::panic::panic_any(43_u32) })
    })
    .expect_err("the body panicked");
    assert_eq!(payload.downcast_ref::<u32>(), Some(&43));
}
