//! K2 (downward cancellation with cause chains), K3 (monotone cancellation),
//! K4 (termination by forced drop), the request → acknowledge protocol,
//! masking, and cancel-before-first-poll. Every test runs on both drivers.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use asupersync::kernel::{ForceDropCause, MAX_MASK_DEPTH};
use asupersync::types::cancel::MAX_CAUSE_DEPTH;
use asupersync::types::{CancelKind, CancelReason, Outcome};
use asupersync::{Cx, JoinError, TaskHandle, time, yield_now};
use support::*;

/// CPU work that takes `d` (a long poll), without sleeping the thread.
fn busy_for(d: Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// A shared map `name → reason observed`.
#[derive(Clone, Default)]
struct Seen(Slot<BTreeMap<&'static str, CancelReason>>);

impl Seen {
    fn record(&self, name: &'static str, reason: CancelReason) {
        self.0.with(|m| {
            m.get_or_insert_with(BTreeMap::new).insert(name, reason);
        });
    }
    fn get(&self, name: &str) -> CancelReason {
        self.0
            .with(|m| m.as_ref().and_then(|m| m.get(name).cloned()))
            .unwrap_or_else(|| panic!("{name} never observed a cancellation"))
    }
}

/// Sleeps "forever" and records the reason the sleep was cancelled with.
async fn park_and_record(cx: &Cx, name: &'static str, seen: &Seen, ready: &Counter) {
    ready.incr();
    match time::sleep(cx, HOUR).await {
        Ok(()) => panic!("{name}: a 1h sleep returned Ok"),
        Err(c) => seen.record(name, c.reason().clone()),
    }
}

fn nest_masks(cx: &Cx, n: u32) -> u32 {
    if n == 0 {
        0
    } else {
        cx.masked(|| 1 + nest_masks(cx, n - 1))
    }
}

fn assert_chain(r: &CancelReason, depth: usize, who: &str) {
    assert_eq!(
        r.cause_depth(),
        depth,
        "{who}: one ParentCancelled link per region: {r}"
    );
    for (i, link) in r.chain().enumerate() {
        let expected = if i == depth {
            CancelKind::User
        } else {
            CancelKind::ParentCancelled
        };
        assert_eq!(link.kind, expected, "{who}: link {i} of {r}");
    }
    assert_eq!(r.root_cause().kind, CancelKind::User, "{who}: {r}");
    assert_eq!(
        r.root_cause().message.as_deref(),
        Some("stop"),
        "{who}: {r}"
    );
}

type Boxed = Pin<Box<dyn Future<Output = ()> + Send>>;

/// `levels` nested regions under `cx`; the innermost spawns a recorder.
fn deep(cx: Cx, levels: usize, seen: Seen, ready: Counter) -> Boxed {
    Box::pin(async move {
        let _ = cx
            .region(move |rcx| async move {
                if levels == 0 {
                    let (s, r) = (seen.clone(), ready.clone());
                    drop(
                        rcx.spawn(
                            move |c| async move { park_and_record(&c, "leaf", &s, &r).await },
                        )
                        .unwrap(),
                    );
                    let _ = time::sleep(&rcx, HOUR).await;
                } else {
                    deep(rcx.clone(), levels - 1, seen, ready).await;
                }
                Err::<(), ()>(())
            })
            .await;
    })
}

on_both_drivers! {
    /// Aborting a task cancels the region its body opened, that region's
    /// tasks, their regions and tasks, ...: every descendant observes
    /// `ParentCancelled`, nested one cause level per region, rooted at the
    /// original `User` reason; the task itself observes its own reason.
    fn abort_cancels_every_descendant_with_a_cause_chain_rooted_at_the_reason(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let seen = Seen::default();
            let ready = Counter::new();
            let (s, r) = (seen.clone(), ready.clone());
            let t = cx
                .spawn(move |tcx| async move {
                    let out = tcx
                        .region(move |r1| async move {
                            let (s1, rd1) = (s.clone(), r.clone());
                            drop(r1.spawn(move |c1| async move {
                                park_and_record(&c1, "C1", &s1, &rd1).await
                            }).unwrap());
                            let (s2, rd2) = (s.clone(), r.clone());
                            drop(r1.spawn(move |c2| async move {
                                let _ = c2.region(move |r2| async move {
                                    let (s3, rd3) = (s2.clone(), rd2.clone());
                                    drop(r2.spawn(move |g| async move {
                                        let _ = g.region(move |r3| async move {
                                            let (s4, rd4) = (s3.clone(), rd3.clone());
                                            drop(r3.spawn(move |h| async move {
                                                park_and_record(&h, "H", &s4, &rd4).await
                                            }).unwrap());
                                            park_and_record(&r3, "R3.body", &s3, &rd3).await;
                                            Err::<(), ()>(())
                                        }).await;
                                        let _ = g.checkpoint();
                                    }).unwrap());
                                    park_and_record(&r2, "R2.body", &s2, &rd2).await;
                                    Err::<(), ()>(())
                                }).await;
                            }).unwrap());
                            park_and_record(&r1, "R1.body", &s, &r).await;
                            Err::<(), ()>(())
                        })
                        .await;
                    assert!(out.is_cancelled(), "the aborted task's region: {out:?}");
                })
                .unwrap();
            // Five recorders park: R1.body, C1, R2.body, R3.body (run by G), H.
            until(|| ready.get() == 5).await;
            t.abort_with(CancelReason::user("stop"));
            let joined = t.join(&cx).await;
            match &joined {
                Err(JoinError::Cancelled(r)) => assert_chain(r, 0, "T (joined)"),
                other => panic!("the aborted task must join Cancelled(User): {other:?}"),
            }

            // The task's own region body sees the task's reason.
            assert_chain(&seen.get("R1.body"), 0, "R1.body");
            // R1's tasks: ParentCancelled <- User.
            let c1 = seen.get("C1");
            assert_chain(&c1, 1, "C1");
            // C2's region body sees C2's reason (it is a task of R1).
            let r2_body = seen.get("R2.body");
            assert_chain(&r2_body, 1, "R2.body");
            // G is a task of R2 (a child region of R1): two levels. Its
            // region body (R3.body) sees G's reason.
            let g = seen.get("R3.body");
            assert_chain(&g, 2, "G / R3.body");
            // H is a task of R3: three levels.
            let h = seen.get("H");
            assert_chain(&h, 3, "H");
            // Each level's cause is exactly the level above.
            assert_eq!(h.cause.as_deref(), Some(&g), "H's cause is R3's parent reason");
            assert_eq!(g.cause.as_deref(), Some(&c1), "G's cause is R1's task reason");
            assert_eq!(c1.cause.as_deref(), joined.unwrap_err().cancel_reason());
        });
        assert_quiescent(&rt);
    }

    /// 24 nested regions: the leaf still sees `ParentCancelled` whose root
    /// cause is the original reason, with a bounded cause chain.
    fn deep_cancellation_keeps_the_root_cause_with_a_bounded_chain(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let seen = Seen::default();
            let ready = Counter::new();
            let (s, r) = (seen.clone(), ready.clone());
            let t = cx.spawn(move |tcx| deep(tcx, 24, s, r)).unwrap();
            until(|| ready.get() == 1).await;
            t.abort_with(CancelReason::user("stop"));
            let _ = t.join(&cx).await;
            let leaf = seen.get("leaf");
            assert_eq!(leaf.kind, CancelKind::ParentCancelled);
            assert_eq!(leaf.root_cause().kind, CancelKind::User);
            assert_eq!(leaf.root_cause().message.as_deref(), Some("stop"));
            assert!(leaf.cause_depth() <= MAX_CAUSE_DEPTH, "{}", leaf.cause_depth());
        });
        assert_quiescent(&rt);
    }

    /// A child region failing (body `Err` → `FailFast`, or an unjoined panic)
    /// cancels only that region: the owner and its siblings keep running.
    fn cancellation_never_flows_upward(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let sibling = cx
                .spawn(|c| async move {
                    time::sleep(&c, Duration::from_millis(30)).await.map(|()| c.is_cancel_requested())
                })
                .unwrap();
            let child_reason = Slot::new();
            let cr = child_reason.clone();
            let failed = cx
                .region(move |rcx| async move {
                    let started = Flag::new();
                    let st = started.clone();
                    drop(rcx.spawn(move |c| async move {
                        st.set();
                        if let Err(e) = time::sleep(&c, HOUR).await {
                            cr.set(e.reason().clone());
                        }
                    }).unwrap());
                    until(|| started.is_set()).await;
                    Err::<(), _>("inner failure")
                })
                .await;
            assert_eq!(failed, Outcome::Err("inner failure"));
            assert_eq!(child_reason.get().map(|r| r.kind), Some(CancelKind::FailFast));
            let panicked = cx
                .region(|rcx| async move {
                    drop(rcx.spawn(|_| async { panic!("inner panic") }).unwrap());
                    Ok::<_, ()>(())
                })
                .await;
            assert!(panicked.is_panicked(), "{panicked:?}");

            // Nothing reached the owner task or its region.
            assert!(cx.checkpoint().is_ok(), "the owner must not be cancelled");
            assert_eq!(cx.cancel_reason(), None);
            assert_eq!(
                sibling.join(&cx).await,
                Ok(Ok(false)),
                "a sibling of the failed regions must finish normally"
            );
            // Aborting a task that owns a region does not touch its siblings.
            let started = Flag::new();
            let st = started.clone();
            let doomed = cx
                .spawn(move |tcx| async move {
                    let _ = tcx.region(move |rcx| async move {
                        st.set();
                        time::sleep(&rcx, HOUR).await?;
                        Ok::<(), asupersync::types::cancel::Cancelled>(())
                    }).await;
                })
                .unwrap();
            let bystander = cx
                .spawn(|c| async move { time::sleep(&c, Duration::from_millis(20)).await.is_ok() })
                .unwrap();
            until(|| started.is_set()).await;
            doomed.abort();
            assert!(doomed.join(&cx).await.unwrap_err().is_cancelled());
            assert_eq!(bystander.join(&cx).await, Ok(true));
            assert!(cx.checkpoint().is_ok());
        });
        assert_quiescent(&rt);
    }

    /// K3: `abort` then `abort_with(shutdown)` → the task ends `Shutdown`,
    /// even if it already acknowledged the first request.
    fn abort_then_shutdown_strengthens_to_shutdown(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (started, second) = (Flag::new(), Gate::new());
            let (st, sc) = (started.clone(), second.clone());
            let h = cx
                .spawn(move |c| async move {
                    st.set();
                    let first = time::sleep(&c, HOUR).await.unwrap_err();
                    // Cleanup lasts until the second request was issued (a
                    // parked wait: spinning here would use up the cleanup
                    // poll quota if this thread is descheduled).
                    sc.wait().await;
                    (first.reason().kind, c.cancel_reason().map(|r| r.kind))
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort();
            h.abort_with(CancelReason::shutdown());
            second.open();
            match h.join(&cx).await {
                Err(JoinError::Cancelled(r)) => assert_eq!(r.kind, CancelKind::Shutdown, "{r}"),
                other => panic!("expected Cancelled(Shutdown), got {other:?}"),
            }
        });
        assert_quiescent(&rt);
    }

    /// K3: `abort_with(shutdown)` then `abort` (weaker) → still `Shutdown`,
    /// both in what the task sees and in how it joins.
    fn shutdown_then_abort_stays_shutdown(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (started, second) = (Flag::new(), Gate::new());
            let (st, sc) = (started.clone(), second.clone());
            let h = cx
                .spawn(move |c| async move {
                    st.set();
                    sc.wait().await;
                    let seen = c.cancel_reason().map(|r| r.kind);
                    let observed = c.checkpoint().unwrap_err().reason().kind;
                    (seen, observed)
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort_with(CancelReason::shutdown());
            h.abort();
            h.abort_with(CancelReason::timeout());
            second.open();
            match h.join(&cx).await {
                Err(JoinError::Cancelled(r)) => assert_eq!(r.kind, CancelKind::Shutdown, "{r}"),
                other => panic!("expected Cancelled(Shutdown), got {other:?}"),
            }
        });
        assert_quiescent(&rt);
    }

    /// A task cancelled after it was registered but before its first poll is
    /// never polled: its future is dropped, it joins `Cancelled`, and the drop
    /// is recorded as `CancelledBeforeStart`.
    ///
    /// The cancel is issued from inside the spawn closure (which runs after
    /// the task is registered and before it is scheduled) by aborting the
    /// task that owns the region, so the order is deterministic on both drivers.
    fn task_cancelled_before_its_first_poll_is_never_polled(d: Driver) {
        let rt = d.rt();
        let child_id = Slot::new();
        let cid = child_id.clone();
        rt.block_on(move |cx: Cx| async move {
            let owner_slot: Slot<TaskHandle<()>> = Slot::new();
            let child_slot: Slot<TaskHandle<()>> = Slot::new();
            let (polled, dropped) = (Flag::new(), Flag::new());
            let (os, cs, p, dr) = (owner_slot.clone(), child_slot.clone(), polled.clone(), dropped.clone());
            let owner = cx
                .spawn(move |tcx| async move {
                    until(|| os.is_set()).await;
                    let _ = tcx
                        .region(move |rcx| async move {
                            let os2 = os.clone();
                            let h = rcx
                                .spawn(move |_c| {
                                    os2.with(|h| h.as_ref().expect("owner handle").abort());
                                    let guard = SetOnDrop(dr);
                                    async move {
                                        let _g = guard;
                                        p.set();
                                    }
                                })
                                .expect("the region was not cancelled yet when the task was created");
                            cs.set(h);
                            Ok::<_, ()>(())
                        })
                        .await;
                })
                .unwrap();
            owner_slot.set(owner);
            until(|| child_slot.is_set()).await;
            let child = child_slot.take().unwrap();
            cid.set(child.task_id());
            match child.join(&cx).await {
                Err(JoinError::Cancelled(r)) => {
                    assert_eq!(r.kind, CancelKind::ParentCancelled, "{r}");
                    assert_eq!(r.root_cause().kind, CancelKind::User, "{r}");
                }
                other => panic!("expected Cancelled, got {other:?}"),
            }
            assert!(!polled.is_set(), "a task cancelled before its first poll must never be polled");
            assert!(dropped.is_set(), "its future must have been dropped");
            let owner = owner_slot.take().unwrap();
            let _ = owner.join(&cx).await;
        });
        let child = child_id.get().unwrap();
        let s = rt.stats();
        assert!(
            s.forced_drops
                .iter()
                .any(|f| f.task == child && f.cause == ForceDropCause::CancelledBeforeStart),
            "forced drops: {:?}",
            s.forced_drops
        );
        assert_quiescent(&rt);
    }

    /// A cancel request that the task never observes (no checkpoint, no
    /// cancel-aware wait) does not change a normal return: it joins `Ok`.
    fn unobserved_cancel_with_normal_return_joins_ok(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (started, aborted) = (Flag::new(), Gate::new());
            let (st, ab) = (started.clone(), aborted.clone());
            let h = cx
                .spawn(move |c| async move {
                    st.set();
                    ab.wait().await; // a plain (not cancel-aware) wait
                    let requested = c.cancel_reason().map(|r| r.kind);
                    (7, requested)
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort();
            aborted.open();
            assert_eq!(
                h.join(&cx).await,
                Ok((7, Some(CancelKind::User))),
                "the request is visible but unobserved; the return value is delivered"
            );
        });
        assert_quiescent(&rt);
    }

    /// `masked`: checkpoints inside (also nested) return `Ok` while the
    /// request stays visible; the first checkpoint after unmask returns `Err`
    /// and the task then joins `Cancelled`.
    fn masked_checkpoint_is_ok_and_unmasked_checkpoint_is_err(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (started, aborted) = (Flag::new(), Gate::new());
            let report = Slot::new();
            let (st, ab, rp) = (started.clone(), aborted.clone(), report.clone());
            let h = cx
                .spawn(move |c| async move {
                    st.set();
                    ab.wait().await;
                    let masked = c.masked(|| c.checkpoint().is_ok());
                    let nested = c.masked(|| {
                        let inner = c.masked(|| c.checkpoint().is_ok());
                        // The outer mask still holds after the inner one ends.
                        (inner, c.checkpoint().is_ok(), c.is_cancel_requested())
                    });
                    let after = c.checkpoint().map_err(|e| e.reason().kind);
                    rp.set((masked, nested, after));
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort();
            aborted.open();
            let joined = h.join(&cx).await;
            let (masked, nested, after) = report.take().unwrap();
            assert!(masked, "checkpoint inside masked must be Ok");
            assert_eq!(nested, (true, true, true), "nested masks; request visible");
            assert_eq!(after, Err(CancelKind::User), "checkpoint after unmask must be Err");
            assert!(
                matches!(&joined, Err(JoinError::Cancelled(r)) if r.kind == CancelKind::User),
                "{joined:?}"
            );
        });
        assert_quiescent(&rt);
    }

    /// Mask nesting is bounded: `MAX_MASK_DEPTH` levels are fine, one more
    /// panics with a message naming the bound; the masks entered before the
    /// panic are released while unwinding. The same panic in a `block_on`
    /// body is resumed on the caller.
    fn masked_nesting_beyond_the_bound_panics_clearly(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (started, aborted) = (Flag::new(), Gate::new());
            let (st, ab) = (started.clone(), aborted.clone());
            let h = cx
                .spawn(move |c| async move {
                    assert_eq!(nest_masks(&c, MAX_MASK_DEPTH), MAX_MASK_DEPTH);
                    let msg = expect_panic(|| nest_masks(&c, MAX_MASK_DEPTH + 1));
                    st.set();
                    ab.wait().await;
                    // All masks were released by the unwind: cancellation is visible.
                    let after = c.checkpoint().is_err();
                    (msg, after)
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort();
            aborted.open();
            // The task observed the cancel, so it joins Cancelled; read the
            // message via a second, uncancelled task instead.
            assert!(h.join(&cx).await.unwrap_err().is_cancelled(),
                "checkpoint after the unwound masks must observe the cancel");
            let h2 = cx
                .spawn(|c| async move { expect_panic(|| nest_masks(&c, MAX_MASK_DEPTH + 1)) })
                .unwrap();
            let msg = h2.join(&cx).await.unwrap();
            assert!(msg.contains("masked"), "unclear mask-bound message: {msg}");
            assert!(msg.contains(&MAX_MASK_DEPTH.to_string()), "message must name the bound: {msg}");
        });
        let msg = expect_panic(|| {
            rt.block_on(|cx: Cx| async move {
                nest_masks(&cx, MAX_MASK_DEPTH + 1);
            })
        });
        assert!(msg.contains("masked") && msg.contains(&MAX_MASK_DEPTH.to_string()), "{msg}");
        // The runtime keeps working afterwards.
        assert_eq!(rt.block_on(|cx: Cx| async move { nest_masks(&cx, 3) }), 3);
    }

    /// K4: a task parked on a future that never observes its `Cx` is dropped
    /// when the grace period expires; it joins `Cancelled` and the drop is
    /// recorded in `stats().forced_drops`.
    fn task_ignoring_cancel_is_force_dropped_after_grace(d: Driver) {
        let grace = Duration::from_millis(50);
        let rt = d.rt_with_grace(grace);
        let tid = Slot::new();
        let t = tid.clone();
        let dropped = Flag::new();
        let dr = dropped.clone();
        rt.block_on(move |cx: Cx| async move {
            let started = Flag::new();
            let st = started.clone();
            let h = cx
                .spawn(move |_c| async move {
                    let _g = SetOnDrop(dr);
                    st.set();
                    std::future::pending::<()>().await;
                })
                .unwrap();
            t.set(h.task_id());
            until(|| started.is_set()).await;
            let t0 = cx.now();
            h.abort();
            let joined = h.join(&cx).await;
            let waited = cx.now().duration_since(t0);
            assert!(
                matches!(&joined, Err(JoinError::Cancelled(r)) if r.kind == CancelKind::User),
                "{joined:?}"
            );
            assert!(waited >= grace, "dropped after {waited:?}, before the {grace:?} grace");
        });
        assert!(dropped.is_set(), "the parked future must be dropped");
        let s = rt.stats();
        assert_eq!(s.forced_drop_count, 1, "{:?}", s.forced_drops);
        let f = &s.forced_drops[0];
        assert_eq!(f.task, tid.get().unwrap());
        assert_eq!(f.cause, ForceDropCause::GraceExpired);
        assert_eq!(f.reason.kind, CancelKind::User);
        assert_quiescent(&rt);
    }

    /// A region whose body fails while a child ignores cancellation returns
    /// only after that child was force-dropped (with the region's `FailFast`).
    fn failed_region_waits_for_the_forced_drop_of_a_stuck_child(d: Driver) {
        let rt = d.rt_with_grace(Duration::from_millis(50));
        let dropped = Flag::new();
        let dr = dropped.clone();
        rt.block_on(move |cx: Cx| async move {
            let dr2 = dr.clone();
            let out = cx
                .region(move |rcx| async move {
                    let started = Flag::new();
                    let st = started.clone();
                    drop(rcx.spawn(move |_| async move {
                        let _g = SetOnDrop(dr2);
                        st.set();
                        std::future::pending::<()>().await;
                    }).unwrap());
                    until(|| started.is_set()).await;
                    Err::<(), _>("give up")
                })
                .await;
            assert_eq!(out, Outcome::Err("give up"));
            assert!(dr.is_set(), "region returned before its stuck child was dropped");
        });
        let s = rt.stats();
        assert_eq!(s.forced_drop_count, 1);
        assert_eq!(s.forced_drops[0].cause, ForceDropCause::GraceExpired);
        assert_eq!(s.forced_drops[0].reason.kind, CancelKind::FailFast);
        assert_quiescent(&rt);
    }

    /// A cancel-aware wait in a region body (sleep, join) observes the
    /// region's `FailFast` when an unjoined sibling panics; the region ends
    /// `Panicked` and the owner task itself is not cancelled.
    fn region_body_wait_observes_fail_fast_from_an_unjoined_sibling_panic(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let seen = Slot::new();
            let sn = seen.clone();
            let out = cx
                .region(move |rcx| async move {
                    drop(rcx.spawn(|_| async {
                        yield_now().await;
                        panic!("sibling crashed")
                    }).unwrap());
                    let e = time::sleep(&rcx, HOUR).await.unwrap_err();
                    sn.set(e.reason().clone());
                    Err::<(), _>(e)
                })
                .await;
            let r = seen.get().expect("the body's sleep was cancelled");
            assert_eq!(r.kind, CancelKind::FailFast, "{r}");
            assert!(r.message.as_deref().unwrap_or("").contains("sibling crashed"), "{r}");
            match out {
                Outcome::Panicked(p) => assert_eq!(p.message(), "sibling crashed"),
                other => panic!("expected Panicked, got {other:?}"),
            }
            assert!(cx.checkpoint().is_ok(), "FailFast must not reach the owner's region");

            // Same with a join as the cancel-aware wait.
            let seen = Slot::new();
            let sn = seen.clone();
            let out = cx
                .region(move |rcx| async move {
                    let long = rcx.spawn(|c| async move {
                        let _ = time::sleep(&c, HOUR).await;
                    }).unwrap();
                    drop(rcx.spawn(|_| async {
                        yield_now().await;
                        panic!("second crash")
                    }).unwrap());
                    let e = long.join(&rcx).await.unwrap_err();
                    sn.set(e.clone());
                    Ok::<_, ()>(())
                })
                .await;
            match seen.get() {
                Some(JoinError::Cancelled(r)) => assert_eq!(r.kind, CancelKind::FailFast),
                other => panic!("join must observe FailFast, got {other:?}"),
            }
            assert!(out.is_panicked(), "{out:?}");
        });
        assert_quiescent(&rt);
    }

    /// Observing the request (a checkpoint returning `Err`) is the
    /// acknowledgement: the task joins `Cancelled` even if it then returns a
    /// value instead of propagating the error.
    fn observed_cancel_joins_cancelled_even_if_the_task_returns_a_value(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (started, aborted) = (Flag::new(), Gate::new());
            let (st, ab) = (started.clone(), aborted.clone());
            let h = cx
                .spawn(move |c| async move {
                    st.set();
                    ab.wait().await;
                    let _ignored = c.checkpoint();
                    99
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort_with(CancelReason::user("stop"));
            aborted.open();
            match h.join(&cx).await {
                Err(JoinError::Cancelled(r)) => {
                    assert_eq!(r.kind, CancelKind::User);
                    assert_eq!(r.message.as_deref(), Some("stop"));
                }
                other => panic!("an acknowledged cancel must join Cancelled, got {other:?}"),
            }
        });
        assert_quiescent(&rt);
    }

    /// Aborting a task that already finished changes nothing: it still
    /// joins with its value.
    fn abort_after_completion_does_not_change_the_outcome(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let h = cx.spawn(|_| async { 11 }).unwrap();
            until(|| h.is_finished()).await;
            h.abort();
            h.abort_with(CancelReason::shutdown());
            assert_eq!(h.join(&cx).await, Ok(11));
        });
        assert_quiescent(&rt);
    }

    /// Rule CL1 regression: a cancel request made by a completion (here an
    /// unjoined panic failing its region) is stamped with the time of the
    /// panic and gets its full grace period, even though completions run
    /// on the driver's recent clock reading, which lags behind a long poll.
    fn a_cancel_made_by_a_completion_is_stamped_now_and_gets_its_full_grace(d: Driver) {
        let rt = d.rt_with_grace(Duration::from_millis(300));
        let (cleaned, stamp, start) = (Flag::new(), Slot::new(), Slot::new());
        let (c2, s2, st) = (cleaned.clone(), stamp.clone(), start.clone());
        rt.block_on(move |cx: Cx| async move {
            st.set(cx.now());
            let _ = cx
                .region(move |rcx| async move {
                    drop(
                        rcx.spawn(move |c| async move {
                            let e = time::sleep(&c, Duration::from_secs(3600))
                                .await
                                .unwrap_err();
                            s2.set((e.reason().kind, e.reason().timestamp));
                            yield_now().await; // the grace timer may fire here
                            busy_for(Duration::from_millis(100)); // cleanup work
                            c2.set();
                        })
                        .unwrap(),
                    );
                    drop(
                        rcx.spawn(|_| async {
                            yield_now().await;
                            busy_for(Duration::from_millis(400)); // one long poll
                            panic!("sibling crashed");
                        })
                        .unwrap(),
                    );
                    Ok::<(), ()>(())
                })
                .await;
        });
        let (kind, at) = stamp.get().expect("the sleeper saw its cancellation");
        assert_eq!(kind, CancelKind::FailFast);
        let start = start.get().unwrap();
        assert!(
            at >= start + Duration::from_millis(400),
            "stamped {:?} after start, before the panic",
            at.duration_since(start)
        );
        assert!(
            cleaned.is_set(),
            "cleanup cut short: {:?}",
            rt.stats().forced_drops
        );
    }

    /// K4, second arm: a task that acknowledged cancellation but keeps
    /// running (yielding forever) is dropped once it exhausts its cleanup
    /// poll quota, long before the (here: long) grace period.
    fn runaway_cleanup_is_dropped_when_its_poll_quota_runs_out(d: Driver) {
        let rt = d.rt_with_grace(Duration::from_secs(20));
        let dropped = Flag::new();
        let dr = dropped.clone();
        rt.block_on(move |cx: Cx| async move {
            let (started, aborted) = (Flag::new(), Gate::new());
            let (st, ab) = (started.clone(), aborted.clone());
            let h = cx
                .spawn(move |c| async move {
                    let _g = SetOnDrop(dr);
                    st.set();
                    ab.wait().await;
                    assert!(c.checkpoint().is_err());
                    loop {
                        yield_now().await; // cleanup that never ends
                    }
                })
                .unwrap();
            until(|| started.is_set()).await;
            h.abort_with(CancelReason::shutdown());
            aborted.open();
            let r = h.join(&cx).await;
            assert!(
                matches!(&r, Err(JoinError::Cancelled(x)) if x.kind == CancelKind::Shutdown),
                "{r:?}"
            );
        });
        assert!(dropped.is_set());
        let s = rt.stats();
        assert_eq!(s.forced_drop_count, 1);
        assert_eq!(s.forced_drops[0].cause, ForceDropCause::CleanupPollsExhausted);
        assert_quiescent(&rt);
    }

    /// The cleanup budget installed on acknowledgement bounds the *cleanup*:
    /// a task that had been running for a long time (more polls than the
    /// cleanup poll quota) and is aborted by the user, acknowledges, and
    /// cleans up within a couple of polls must still join with the `User`
    /// reason — not be re-cancelled as `PollQuota` for polls it made before
    /// the cancellation.
    fn long_running_task_keeps_its_reason_after_acknowledging(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let quota = CancelKind::User.cleanup_budget().poll_quota;
            let (busy, aborted) = (Gate::new(), Gate::new());
            let (bz, ab) = (busy.clone(), aborted.clone());
            let h = cx
                .spawn(move |c| async move {
                    // Legitimate long-running work: many polls, no cancel yet.
                    for _ in 0..quota + 500 {
                        yield_now().await;
                    }
                    assert!(c.checkpoint().is_ok());
                    bz.open();
                    ab.wait().await;
                    let observed = c.checkpoint().unwrap_err().reason().kind;
                    yield_now().await; // one poll of cleanup
                    observed
                })
                .unwrap();
            busy.wait().await;
            h.abort_with(CancelReason::user("stop"));
            aborted.open();
            match h.join(&cx).await {
                Err(JoinError::Cancelled(r)) => assert_eq!(
                    (r.kind, r.message.as_deref()),
                    (CancelKind::User, Some("stop")),
                    "the reason was rewritten: {r}"
                ),
                other => panic!("expected Cancelled(User), got {other:?}"),
            }
        });
        assert_quiescent(&rt);
    }
}
