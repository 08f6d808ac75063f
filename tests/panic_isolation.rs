//! Panic isolation (J3): panics never kill the runtime; a joined panic is
//! handled; an unjoined one fails its region (siblings `FailFast`, outcome
//! `Panicked`) and nothing above it; `block_on` drains, then resumes a body
//! panic with the original payload. Every test runs on both drivers.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use asupersync::types::{CancelKind, CancelReason, Outcome};
use asupersync::{Cx, JoinError, time, yield_now};
use support::*;

const HOUR: Duration = Duration::from_secs(3600);

/// Spawns a sibling that sleeps for an hour and records how it was cancelled.
fn spawn_sleeping_sibling(cx: &Cx, started: &Counter, seen: &Slot<CancelReason>) {
    let (st, sn) = (started.clone(), seen.clone());
    drop(
        cx.spawn(move |c| async move {
            st.incr();
            match time::sleep(&c, HOUR).await {
                Ok(()) => panic!("sibling slept an hour"),
                Err(e) => sn.set(e.reason().clone()),
            }
        })
        .unwrap(),
    );
}

on_both_drivers! {
    /// After panicking tasks (joined and unjoined, even one that fails a whole
    /// `block_on`), the runtime keeps running spawns, and a second `block_on`
    /// on the same runtime works.
    fn panics_never_kill_the_runtime(d: Driver) {
        let rt = d.rt();
        let sum = rt.block_on(|cx: Cx| async move {
            let bad = cx.spawn(|_| async { panic!("task boom") }).unwrap();
            match bad.join(&cx).await {
                Err(JoinError::Panicked(p)) => assert_eq!(p.message(), "task boom"),
                other => panic!("expected the panic, got {other:?}"),
            }
            let hs: Vec<_> = (0..20u64)
                .map(|i| cx.spawn(move |_| async move {
                    yield_now().await;
                    i
                }).unwrap())
                .collect();
            let mut sum = 0;
            for h in hs {
                sum += h.join(&cx).await.unwrap();
            }
            sum
        });
        assert_eq!(sum, 190);

        let msg = expect_panic(|| {
            rt.block_on(|cx: Cx| async move {
                drop(cx.spawn(|_| async { panic!("unjoined boom") }).unwrap());
            })
        });
        assert_eq!(msg, "unjoined boom");

        let v = rt.block_on(|cx: Cx| async move {
            let h = cx.spawn(|c| async move {
                time::sleep(&c, Duration::from_millis(1)).await.unwrap();
                21
            }).unwrap();
            h.join(&cx).await.unwrap() * 2
        });
        assert_eq!(v, 42);
        if d == Driver::MultiThread {
            assert_eq!(rt.worker_threads(), 2);
        }
        assert_quiescent(&rt);
    }

    /// A panic received by `join` is handled: the region ends `Ok` and its
    /// other children are not cancelled — whether the join started before
    /// or after the panic.
    fn joined_panic_does_not_fail_the_region(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let out = cx
                .region(|rcx| async move {
                    let sibling = rcx.spawn(|c| async move {
                        time::sleep(&c, Duration::from_millis(20)).await.is_ok() && !c.is_cancel_requested()
                    }).unwrap();
                    // Join waiting before the panic happens.
                    let early = rcx.spawn(|_| async {
                        yield_now().await;
                        panic!("early")
                    }).unwrap();
                    let e1 = early.join(&rcx).await.unwrap_err();
                    // Join after the task already panicked.
                    let late = rcx.spawn(|_| async { panic!("late") }).unwrap();
                    until(|| late.is_finished()).await;
                    yield_now().await;
                    let e2 = late.join(&rcx).await.unwrap_err();
                    let undisturbed = sibling.join(&rcx).await.unwrap();
                    Ok::<_, ()>((e1, e2, undisturbed))
                })
                .await;
            match out {
                Outcome::Ok((e1, e2, undisturbed)) => {
                    assert_eq!(e1.panic_payload().map(|p| p.message()), Some("early"));
                    assert_eq!(e2.panic_payload().map(|p| p.message()), Some("late"));
                    assert!(undisturbed, "a handled panic must not cancel siblings");
                }
                other => panic!("joined panics must not fail the region: {other:?}"),
            }
            assert!(cx.checkpoint().is_ok());
        });
        assert_quiescent(&rt);
    }

    /// A panic whose handle was dropped *before* it happened fails the
    /// region: siblings are cancelled with `FailFast` (originating from the
    /// panicking task) and the outcome is `Panicked` with the message.
    fn unjoined_panic_fails_the_region_and_fail_fasts_siblings(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let seen = Slot::new();
            let panicker = Slot::new();
            let (sn, pk) = (seen.clone(), panicker.clone());
            let out = cx
                .region(move |rcx| async move {
                    let started = Counter::new();
                    spawn_sleeping_sibling(&rcx, &started, &sn);
                    until(|| started.get() == 1).await;
                    let h = rcx.spawn(|_| async {
                        yield_now().await;
                        panic!("kaboom")
                    }).unwrap();
                    pk.set(h.task_id());
                    drop(h);
                    Ok::<_, ()>(())
                })
                .await;
            match out {
                Outcome::Panicked(p) => assert_eq!(p.message(), "kaboom"),
                other => panic!("expected Panicked, got {other:?}"),
            }
            let r = seen.get().expect("the sibling was cancelled");
            assert_eq!(r.kind, CancelKind::FailFast, "{r}");
            assert!(r.message.as_deref().unwrap_or("").contains("kaboom"), "{r}");
            assert_eq!(r.origin_task, panicker.get(), "FailFast originates from the panicking task");
            assert!(cx.checkpoint().is_ok(), "the failure must not reach the parent");
        });
        assert_quiescent(&rt);
    }

    /// A panic whose handle is dropped *after* the panic (without joining)
    /// fails the region just the same.
    fn panic_with_handle_dropped_after_the_panic_fails_the_region(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let seen = Slot::new();
            let sn = seen.clone();
            let out = cx
                .region(move |rcx| async move {
                    let started = Counter::new();
                    spawn_sleeping_sibling(&rcx, &started, &sn);
                    let h = rcx.spawn(|_| async { panic!("dropped later") }).unwrap();
                    until(|| h.is_finished() && started.get() == 1).await;
                    yield_now().await;
                    assert!(
                        !rcx.is_cancel_requested(),
                        "a panic with a live handle is not escalated yet"
                    );
                    drop(h);
                    Ok::<_, ()>(())
                })
                .await;
            match out {
                Outcome::Panicked(p) => assert_eq!(p.message(), "dropped later"),
                other => panic!("expected Panicked, got {other:?}"),
            }
            assert_eq!(seen.get().map(|r| r.kind), Some(CancelKind::FailFast));
        });
        assert_quiescent(&rt);
    }

    /// An unjoined panic inside a nested region fails that region only: the
    /// enclosing region's other tasks finish normally and its outcome is `Ok`.
    fn panic_in_a_nested_region_stays_inside_it(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let out = cx
                .region(|ocx| async move {
                    let bystander = ocx.spawn(|c| async move {
                        time::sleep(&c, Duration::from_millis(20)).await.is_ok()
                    }).unwrap();
                    let inner = ocx
                        .region(|icx| async move {
                            drop(icx.spawn(|_| async { panic!("inner only") }).unwrap());
                            Ok::<_, ()>(())
                        })
                        .await;
                    assert!(inner.is_panicked(), "{inner:?}");
                    assert!(ocx.checkpoint().is_ok(), "the outer region must not be cancelled");
                    Ok::<_, ()>(bystander.join(&ocx).await.unwrap())
                })
                .await;
            assert_eq!(out, Outcome::Ok(true));
        });
        assert_quiescent(&rt);
    }

    /// Many concurrent panics, all joined, are all delivered to their
    /// joiners and none fails the region.
    fn many_concurrent_joined_panics_are_all_isolated(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let out = cx
                .region(|rcx| async move {
                    let hs: Vec<_> = (0..32)
                        .map(|i| rcx.spawn(move |_| async move {
                            yield_now().await;
                            if i % 2 == 0 {
                                panic!("p{i}");
                            }
                            i
                        }).unwrap())
                        .collect();
                    let mut ok = 0;
                    for (i, h) in hs.into_iter().enumerate() {
                        match h.join(&rcx).await {
                            Ok(v) => {
                                assert_eq!(v, i);
                                ok += 1;
                            }
                            Err(JoinError::Panicked(p)) => assert_eq!(p.message(), format!("p{i}")),
                            Err(e) => panic!("task {i}: {e}"),
                        }
                    }
                    Ok::<_, ()>(ok)
                })
                .await;
            assert_eq!(out, Outcome::Ok(16));
        });
        assert_quiescent(&rt);
    }

    /// `block_on` resumes a body panic on the caller with the original
    /// payload (`&str`, `String`, or any other type).
    fn body_panic_is_resumed_with_the_original_payload(d: Driver) {
        let rt = d.rt();
        let r = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(|_cx: Cx| async move {
                yield_now().await;
                panic!("original message");
            })
        }));
        let payload = r.expect_err("the body panicked");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"original message"));

        let r = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(|_cx: Cx| async move {
                let n = std::hint::black_box(42);
                panic!("formatted {n}");
            })
        }));
        let payload = r.expect_err("the body panicked");
        assert_eq!(payload.downcast_ref::<String>().map(String::as_str), Some("formatted 42"));

        let r = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(|_cx: Cx| async move {
                std::panic::panic_any(0xdead_u32);
            })
        }));
        let payload = r.expect_err("the body panicked");
        assert_eq!(payload.downcast_ref::<u32>(), Some(&0xdead));
        assert_quiescent(&rt);
    }

    /// Before resuming a body panic, `block_on` cancels the root region's
    /// children (`FailFast`) and waits for their cleanup to finish.
    fn block_on_drains_children_before_resuming_a_body_panic(d: Driver) {
        let rt = d.rt();
        let (done, seen) = (Counter::new(), Slot::new());
        let (dn, sn) = (done.clone(), seen.clone());
        let msg = expect_panic(|| {
            rt.block_on(move |cx: Cx| async move {
                let started = Counter::new();
                for _ in 0..3 {
                    let (st, dn, sn) = (started.clone(), dn.clone(), sn.clone());
                    drop(cx.spawn(move |c| async move {
                        st.incr();
                        let e = time::sleep(&c, HOUR).await.unwrap_err();
                        for _ in 0..3 {
                            yield_now().await;
                        }
                        sn.set(e.reason().kind);
                        dn.incr();
                    }).unwrap());
                }
                until(|| started.get() == 3).await;
                panic!("body gave up");
            })
        });
        assert_eq!(msg, "body gave up");
        assert_eq!(done.get(), 3, "block_on resumed the panic before its children finished");
        assert_eq!(seen.get(), Some(CancelKind::FailFast));
        assert_quiescent(&rt);
    }

    /// A panic in a `spawn` closure (which runs on the caller) propagates to
    /// the caller and leaves no half-made task behind; the region is fine.
    fn panic_in_a_spawn_closure_leaves_no_task_behind(d: Driver) {
        let rt = d.rt();
        let v = rt.block_on(|cx: Cx| async move {
            let r = catch_unwind(AssertUnwindSafe(|| {
                cx.spawn(|_c| -> std::future::Ready<u8> { panic!("closure boom") })
            }));
            let msg = panic_message(&*r.expect_err("the closure panicked"));
            assert_eq!(msg, "closure boom");
            assert!(cx.checkpoint().is_ok());
            let h = cx.spawn(|_| async { 9 }).unwrap();
            h.join(&cx).await.unwrap()
        });
        assert_eq!(v, 9);
        assert_quiescent(&rt);
    }
}
