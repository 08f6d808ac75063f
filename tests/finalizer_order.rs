//! K6: region finalizers (`defer_sync` / `defer_async`) run after the last
//! child, LIFO, masked, exactly once — also when the region failed, panicked
//! or was cancelled — and a panicking finalizer does not stop the others.
//! Every test runs on both drivers.

mod support;

use std::time::Duration;

use asupersync::types::{CancelKind, Outcome};
use asupersync::{Cx, time, yield_now};
use support::*;

const HOUR: Duration = Duration::from_secs(3600);

/// Registers a sync finalizer that logs `name`.
fn fin(cx: &Cx, log: &Log, name: &str) {
    let (l, n) = (log.clone(), name.to_string());
    cx.defer_sync(move || l.push(n)).expect("region is open");
}

fn explode<T>(msg: &str) -> T {
    panic!("{msg}")
}

on_both_drivers! {
    /// Sync and async finalizers run in reverse registration order, each
    /// exactly once, and all of them before `region` returns.
    fn finalizers_run_lifo_and_exactly_once(d: Driver) {
        let rt = d.rt();
        let log = Log::new();
        let l = log.clone();
        rt.block_on(move |cx: Cx| async move {
            let l1 = l.clone();
            let out = cx
                .region(move |rcx| async move {
                    fin(&rcx, &l1, "1");
                    let (l2, c2) = (l1.clone(), rcx.clone());
                    rcx.defer_async(async move {
                        yield_now().await;
                        time::sleep(&c2, Duration::from_millis(2)).await.unwrap();
                        l2.push("2");
                    })
                    .unwrap();
                    fin(&rcx, &l1, "3");
                    let l4 = l1.clone();
                    rcx.defer_async(async move { l4.push("4") }).unwrap();
                    l1.push("body");
                    Ok::<_, ()>(())
                })
                .await;
            assert!(out.is_ok(), "{out:?}");
            assert_eq!(l.snapshot(), ["body", "4", "3", "2", "1"], "at region return");
        });
        assert_eq!(log.snapshot(), ["body", "4", "3", "2", "1"], "finalizers ran again");
        assert_quiescent(&rt);
    }

    /// Finalizers wait for every child, including tasks spawned late by
    /// children and tasks of regions nested in children.
    fn finalizers_run_after_the_last_child(d: Driver) {
        let rt = d.rt();
        let log = Log::new();
        let l = log.clone();
        rt.block_on(move |cx: Cx| async move {
            let l1 = l.clone();
            let out = cx
                .region(move |rcx| async move {
                    fin(&rcx, &l1, "fin");
                    let l2 = l1.clone();
                    drop(rcx.spawn(move |c| async move {
                        let l3 = l2.clone();
                        // Spawned by the child into the same region, late.
                        time::sleep(&c, Duration::from_millis(5)).await.unwrap();
                        drop(c.spawn(move |g| async move {
                            time::sleep(&g, Duration::from_millis(10)).await.unwrap();
                            l3.push("grandchild");
                        }).unwrap());
                        let l4 = l2.clone();
                        let _ = c.region(move |ic| async move {
                            drop(ic.spawn(move |t| async move {
                                time::sleep(&t, Duration::from_millis(3)).await.unwrap();
                                l4.push("nested-task");
                            }).unwrap());
                            Ok::<_, ()>(())
                        }).await;
                        l2.push("child");
                    }).unwrap());
                    l1.push("body");
                    Ok::<_, ()>(())
                })
                .await;
            assert!(out.is_ok(), "{out:?}");
        });
        let events = log.snapshot();
        assert_eq!(events.len(), 5, "{events:?}");
        assert_eq!(events.last().map(String::as_str), Some("fin"), "{events:?}");
        assert_eq!(events.iter().filter(|e| *e == "fin").count(), 1);
        assert_quiescent(&rt);
    }

    /// A finalizer runs after a stuck child was force-dropped, not before.
    fn finalizers_run_after_a_force_dropped_child(d: Driver) {
        let rt = d.rt_with_grace(Duration::from_millis(50));
        let log = Log::new();
        let l = log.clone();
        rt.block_on(move |cx: Cx| async move {
            let l1 = l.clone();
            let out = cx
                .region(move |rcx| async move {
                    fin(&rcx, &l1, "fin");
                    let started = Flag::new();
                    let (st, l2) = (started.clone(), l1.clone());
                    drop(rcx.spawn(move |_| async move {
                        struct LogOnDrop(Log);
                        impl Drop for LogOnDrop {
                            fn drop(&mut self) {
                                self.0.push("child dropped");
                            }
                        }
                        let _g = LogOnDrop(l2);
                        st.set();
                        std::future::pending::<()>().await;
                    }).unwrap());
                    until(|| started.is_set()).await;
                    Err::<(), _>("fail")
                })
                .await;
            assert_eq!(out, Outcome::Err("fail"));
        });
        assert_eq!(log.snapshot(), ["child dropped", "fin"]);
        assert_eq!(rt.stats().forced_drop_count, 1);
        assert_quiescent(&rt);
    }

    /// An async finalizer that sleeps and checkpoints runs masked although
    /// its region (and the task that owns it) was cancelled: the sleep
    /// completes and the checkpoint is `Ok`.
    fn async_finalizer_runs_masked_in_a_cancelled_region(d: Driver) {
        let rt = d.rt();
        let report = Slot::new();
        let sync_ok = Slot::new();
        let (rp, sk0) = (report.clone(), sync_ok.clone());
        rt.block_on(move |cx: Cx| async move {
            let started = Flag::new();
            let outcome = Slot::new();
            let (st, oc, rp1, sk) = (started.clone(), outcome.clone(), rp.clone(), sk0.clone());
            let h = cx
                .spawn(move |tcx| async move {
                    let out = tcx
                        .region(move |rcx| async move {
                            let fcx = rcx.clone();
                            rcx.defer_async(async move {
                                let t0 = fcx.now();
                                let slept = time::sleep(&fcx, Duration::from_millis(10)).await;
                                let elapsed = fcx.now().duration_since(t0);
                                let checkpoint = fcx.checkpoint();
                                yield_now().await;
                                rp1.set((slept.is_ok(), checkpoint.is_ok(), elapsed));
                            })
                            .unwrap();
                            let sync_cx = rcx.clone();
                            rcx.defer_sync(move || {
                                // Runs first (LIFO): a checkpoint here is masked too.
                                sk.set(sync_cx.checkpoint().is_ok());
                            })
                            .unwrap();
                            st.set();
                            time::sleep(&rcx, HOUR).await?;
                            Ok::<(), asupersync::types::cancel::Cancelled>(())
                        })
                        .await;
                    oc.set(out);
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort();
            let _ = h.join(&cx).await;
            let out = outcome.take().expect("region outcome recorded");
            assert!(out.is_cancelled(), "{out:?}");
        });
        let (slept_ok, checkpoint_ok, elapsed) = report.get().expect("the async finalizer ran to the end");
        assert!(slept_ok, "sleep inside a finalizer of a cancelled region must not be cancelled");
        assert!(checkpoint_ok, "checkpoint inside a finalizer must be Ok (masked)");
        assert!(elapsed >= Duration::from_millis(10), "slept only {elapsed:?}");
        assert_eq!(sync_ok.get(), Some(true), "checkpoint in a sync finalizer must be Ok (masked)");
        assert_quiescent(&rt);
    }

    /// The mask covers the finalizer, not just one particular `Cx`: an async
    /// finalizer that sleeps on the owner task's `Cx` (captured from outside
    /// the region) while the owner's cancellation is pending is not
    /// cancelled either.
    fn async_finalizer_is_masked_whichever_cx_it_waits_on(d: Driver) {
        let rt = d.rt();
        let report = Slot::new();
        let rp = report.clone();
        rt.block_on(move |cx: Cx| async move {
            let (started, aborted) = (Flag::new(), Gate::new());
            let (st, ab, rp1) = (started.clone(), aborted.clone(), rp.clone());
            let h = cx
                .spawn(move |tcx| async move {
                    let owner_cx = tcx.clone();
                    let _ = tcx
                        .region(move |rcx| async move {
                            rcx.defer_async(async move {
                                let slept =
                                    time::sleep(&owner_cx, Duration::from_millis(5)).await;
                                rp1.set(slept.map_err(|e| e.reason().kind));
                            })
                            .unwrap();
                            st.set();
                            // The owner's cancel arrives here; the body
                            // returns without observing it.
                            ab.wait().await;
                            Ok::<(), ()>(())
                        })
                        .await;
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort();
            aborted.open();
            let _ = h.join(&cx).await;
        });
        assert_eq!(
            report.get(),
            Some(Ok(())),
            "a sleep inside a finalizer must not be cancelled, whatever Cx it uses"
        );
        assert_quiescent(&rt);
    }

    /// Finalizers run exactly once whether the body returns `Err`, panics,
    /// or the region is failed by an unjoined child panic.
    fn finalizers_run_when_the_body_fails_or_panics(d: Driver) {
        let rt = d.rt();
        let log = Log::new();
        let l = log.clone();
        rt.block_on(move |cx: Cx| async move {
            let l1 = l.clone();
            let out = cx
                .region(move |rcx| async move {
                    fin(&rcx, &l1, "err");
                    Err::<(), _>("e")
                })
                .await;
            assert_eq!(out, Outcome::Err("e"));

            let l1 = l.clone();
            let out = cx
                .region(move |rcx| async move {
                    fin(&rcx, &l1, "panic");
                    yield_now().await;
                    explode::<Result<(), ()>>("body panic")
                })
                .await;
            assert!(out.is_panicked(), "{out:?}");

            let l1 = l.clone();
            let out = cx
                .region(move |rcx| async move {
                    fin(&rcx, &l1, "child-panic");
                    drop(rcx.spawn(|_| async { panic!("child panic") }).unwrap());
                    Ok::<_, ()>(())
                })
                .await;
            assert!(out.is_panicked(), "{out:?}");
            assert_eq!(l.snapshot(), ["err", "panic", "child-panic"]);
        });
        assert_eq!(log.snapshot(), ["err", "panic", "child-panic"]);
        assert_quiescent(&rt);
    }

    /// A finalizer runs when the region future is dropped before its body
    /// finished, and when the task that owns the region is force-dropped.
    fn finalizers_run_when_the_region_is_abandoned_or_its_owner_force_dropped(d: Driver) {
        let rt = d.rt_with_grace(Duration::from_millis(50));
        let log = Log::new();
        let l = log.clone();
        rt.block_on(move |cx: Cx| async move {
            let l1 = l.clone();
            let r = time::timeout(
                &cx,
                Duration::from_millis(10),
                cx.region(move |rcx| async move {
                    fin(&rcx, &l1, "abandoned");
                    std::future::pending::<()>().await;
                    Ok::<(), ()>(())
                }),
            )
            .await;
            assert!(r.is_err());

            let started = Flag::new();
            let (st, l2) = (started.clone(), l.clone());
            let h = cx
                .spawn(move |tcx| async move {
                    let _ = tcx
                        .region(move |rcx| async move {
                            fin(&rcx, &l2, "owner-dropped");
                            st.set();
                            std::future::pending::<()>().await;
                            Ok::<(), ()>(())
                        })
                        .await;
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort();
            assert!(h.join(&cx).await.unwrap_err().is_cancelled());
        });
        let mut events = log.snapshot();
        events.sort();
        assert_eq!(events, ["abandoned", "owner-dropped"]);
        assert_quiescent(&rt);
    }

    /// A panicking finalizer (sync or async) makes the region `Panicked` with
    /// its message, and the remaining finalizers still run, in order.
    fn panicking_finalizer_fails_the_region_but_the_others_run(d: Driver) {
        let rt = d.rt();
        let log = Log::new();
        let l = log.clone();
        rt.block_on(move |cx: Cx| async move {
            let l1 = l.clone();
            let out = cx
                .region(move |rcx| async move {
                    fin(&rcx, &l1, "1");
                    let c = rcx.clone();
                    rcx.defer_async(async move {
                        time::sleep(&c, Duration::from_millis(1)).await.unwrap();
                        panic!("async finalizer failed");
                    })
                    .unwrap();
                    fin(&rcx, &l1, "3");
                    rcx.defer_sync(|| panic!("sync finalizer failed")).unwrap();
                    fin(&rcx, &l1, "5");
                    Ok::<_, ()>(1)
                })
                .await;
            match out {
                Outcome::Panicked(p) => assert!(
                    p.message().contains("finalizer failed"),
                    "unexpected panic message {:?}",
                    p.message()
                ),
                other => panic!("a panicking finalizer must make the region Panicked: {other:?}"),
            }
            assert_eq!(l.snapshot(), ["5", "3", "1"]);
        });
        assert_quiescent(&rt);
    }

    /// Inner regions finalize before outer ones, even when the outer body
    /// finishes first and the inner region lives in a child task.
    fn nested_region_finalizers_run_inner_before_outer(d: Driver) {
        let rt = d.rt();
        let log = Log::new();
        let l = log.clone();
        rt.block_on(move |cx: Cx| async move {
            let l1 = l.clone();
            let out = cx
                .region(move |ocx| async move {
                    fin(&ocx, &l1, "outer");
                    let l2 = l1.clone();
                    drop(ocx.spawn(move |c| async move {
                        let _ = c
                            .region(move |icx| async move {
                                fin(&icx, &l2, "inner");
                                let l3 = l2.clone();
                                let _ = icx
                                    .region(move |iicx| async move {
                                        fin(&iicx, &l3, "innermost");
                                        time::sleep(&iicx, Duration::from_millis(10)).await.unwrap();
                                        Ok::<_, ()>(())
                                    })
                                    .await;
                                Ok::<_, ()>(())
                            })
                            .await;
                    }).unwrap());
                    Ok::<_, ()>(())
                })
                .await;
            assert!(out.is_ok(), "{out:?}");
            assert_eq!(l.snapshot(), ["innermost", "inner", "outer"]);
        });
        assert_eq!(log.snapshot(), ["innermost", "inner", "outer"]);
        assert_quiescent(&rt);
    }

    /// Finalizers registered from a child task's `Cx` belong to the region
    /// and take part in its LIFO order; a finalizer registered by a running
    /// finalizer still runs before the region closes.
    fn finalizers_from_children_and_from_finalizers_run_once_in_lifo_order(d: Driver) {
        let rt = d.rt();
        let log = Log::new();
        let l = log.clone();
        rt.block_on(move |cx: Cx| async move {
            let l1 = l.clone();
            let out = cx
                .region(move |rcx| async move {
                    fin(&rcx, &l1, "body-first");
                    let l2 = l1.clone();
                    let h = rcx.spawn(move |c| async move {
                        fin(&c, &l2, "from-child");
                        let (c2, l3) = (c.clone(), l2.clone());
                        c.defer_sync(move || {
                            l3.push("registers-another");
                            let l4 = l3.clone();
                            c2.defer_sync(move || l4.push("registered-while-finalizing"))
                                .expect("the region is finalizing, not closed");
                        })
                        .unwrap();
                    }).unwrap();
                    h.join(&rcx).await.unwrap();
                    fin(&rcx, &l1, "body-last");
                    Ok::<_, ()>(())
                })
                .await;
            assert!(out.is_ok(), "{out:?}");
        });
        assert_eq!(
            log.snapshot(),
            ["body-last", "registers-another", "registered-while-finalizing", "from-child", "body-first"]
        );
        assert_quiescent(&rt);
    }

    /// Root-region finalizers (sync and async) run, LIFO, before `block_on`
    /// returns, when the body is the last thing to finish in the root region.
    fn root_finalizers_run_before_block_on_returns(d: Driver) {
        let rt = d.rt();
        let log = Log::new();
        let l = log.clone();
        let v = rt.block_on(move |cx: Cx| async move {
            fin(&cx, &l, "a");
            let (c, l2) = (cx.clone(), l.clone());
            cx.defer_async(async move {
                time::sleep(&c, Duration::from_millis(2)).await.unwrap();
                l2.push("b");
            })
            .unwrap();
            3
        });
        assert_eq!(v, 3);
        assert_eq!(log.snapshot(), ["b", "a"], "root finalizers must run exactly once before block_on returns");
        assert_quiescent(&rt);
    }

    /// Root-region finalizers run when a child of the root outlives the body.
    fn root_finalizers_run_after_root_children_outliving_the_body(d: Driver) {
        let rt = d.rt();
        let log = Log::new();
        let l = log.clone();
        rt.block_on(move |cx: Cx| async move {
            fin(&cx, &l, "root-fin");
            let l2 = l.clone();
            drop(cx.spawn(move |c| async move {
                time::sleep(&c, Duration::from_millis(5)).await.unwrap();
                l2.push("child");
            }).unwrap());
        });
        assert_eq!(log.snapshot(), ["child", "root-fin"]);
        assert_quiescent(&rt);
    }

    /// Root-region finalizers also run when the body panics; the panic is
    /// resumed by `block_on` after they ran.
    fn root_finalizers_run_even_when_the_body_panics(d: Driver) {
        let rt = d.rt();
        let log = Log::new();
        let l = log.clone();
        let msg = expect_panic(|| {
            rt.block_on(move |cx: Cx| async move {
                fin(&cx, &l, "after-panic");
                yield_now().await;
                explode::<()>("root body panic");
            })
        });
        assert_eq!(msg, "root body panic");
        assert_eq!(log.snapshot(), ["after-panic"], "root finalizer must run despite the body panic");
        assert_quiescent(&rt);
    }

    /// A sync finalizer of a region failing with `FailFast` sees the request
    /// (`cancel_reason`) but its checkpoint is `Ok`: finalizers are masked.
    fn finalizer_sees_the_region_reason_but_its_checkpoint_is_masked(d: Driver) {
        let rt = d.rt();
        let seen = Slot::new();
        let s = seen.clone();
        rt.block_on(move |cx: Cx| async move {
            let out = cx
                .region(move |rcx| async move {
                    let c = rcx.clone();
                    rcx.defer_sync(move || {
                        s.set((c.checkpoint().is_ok(), c.cancel_reason().map(|r| r.kind)))
                    })
                    .unwrap();
                    Err::<(), _>(())
                })
                .await;
            assert!(out.is_err());
        });
        assert_eq!(seen.get(), Some((true, Some(CancelKind::FailFast))));
        assert_quiescent(&rt);
    }
}

/// RF1, RF2 (`kernel::light`): a plain thread registers finalizers on a
/// region through a clone of its `Cx` while the region closes: each
/// registration is either refused (the region has closed) or its finalizer
/// runs exactly once before `region` returns; none is accepted and lost.
#[test]
fn finalizers_registered_from_a_plain_thread_while_the_region_closes_run_or_are_refused() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    with_watchdog("finalizers racing a region close", || {
        let rt = Driver::MultiThread.rt();
        for round in 0..100u64 {
            let accepted = Arc::new(AtomicU64::new(0));
            let ran = Arc::new(AtomicU64::new(0));
            let (acc, r) = (accepted.clone(), ran.clone());
            let registrar = rt.block_on(move |cx: Cx| async move {
                let (started, go) = std::sync::mpsc::channel::<()>();
                let outcome = cx
                    .region(move |rcx| async move {
                        let thread_cx = rcx.clone();
                        let registrar = std::thread::spawn(move || {
                            started.send(()).expect("the body waits");
                            // Bounded: an endless stream of registrations
                            // would keep the region finalizing forever (each
                            // runs before the close).
                            for _ in 0..500 {
                                let r = r.clone();
                                let defer = thread_cx.defer_sync(move || {
                                    r.fetch_add(1, Ordering::SeqCst);
                                });
                                if defer.is_err() {
                                    break;
                                }
                                acc.fetch_add(1, Ordering::SeqCst);
                            }
                        });
                        go.recv().expect("the registrar started");
                        for _ in 0..round % 5 {
                            yield_now().await;
                        }
                        Ok::<_, ()>(registrar)
                    })
                    .await;
                match outcome {
                    Outcome::Ok(registrar) => registrar,
                    other => panic!("round {round}: {other:?}"),
                }
            });
            registrar.join().expect("the registrar thread");
            assert_eq!(
                ran.load(Ordering::SeqCst),
                accepted.load(Ordering::SeqCst),
                "round {round}: every accepted finalizer ran exactly once"
            );
            assert_quiescent(&rt);
        }
    });
}
