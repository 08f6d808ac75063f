//! K5: the obligation ledger. Commit / abort / drop resolve exactly once;
//! `mem::forget` or holding an obligation when a task completes normally is
//! a leak (a panic containing "obligation leak" by default, a record with
//! `LeakPolicy::Log`); a cancelled task aborts what it drops, and what it
//! forgot or stashed away is a leak too (nothing is counted as aborted that
//! was not given back); ids print as `O<n>` and stale ids never resolve.
//! Every test runs on both drivers.

mod support;

use std::time::Duration;

use asupersync::kernel::ObligationState;
use asupersync::obligation::{LeakPolicy, Obligation};
use asupersync::types::{CancelKind, ObligationId, Outcome};
use asupersync::{Cx, JoinError, time};
use support::*;

const HOUR: Duration = Duration::from_secs(3600);

fn is_o_id(text: &str) -> bool {
    text.starts_with('O') && text.len() > 1 && text[1..].chars().all(|c| c.is_ascii_digit())
}

on_both_drivers! {
    /// `commit`, `abort` and dropping each resolve an obligation once; the
    /// ledger and the counters agree.
    fn commit_abort_and_drop_each_resolve_the_obligation(d: Driver) {
        let rt = d.rt();
        let rtr = &rt;
        rt.block_on(|cx: Cx| async move {
            let a = cx.reserve_obligation("a").unwrap();
            let b = cx.reserve_obligation("b").unwrap();
            let c = cx.reserve_obligation("c").unwrap();
            let ids = [a.id(), b.id(), c.id()];
            assert_eq!(a.kind(), "a");
            for id in ids {
                assert_eq!(cx.obligation_state(id), Some(ObligationState::Reserved));
            }
            assert_eq!(rtr.pending_obligations(), 3);
            a.commit();
            b.abort();
            drop(c);
            for id in ids {
                assert_eq!(cx.obligation_state(id), None, "{id} must be resolved");
            }
            assert_eq!(rtr.pending_obligations(), 0);

            // The same from a spawned task.
            let h = cx.spawn(|c| async move {
                let p = c.reserve_obligation("permit").unwrap();
                time::sleep(&c, Duration::from_millis(1)).await.unwrap();
                p.commit();
                let q = c.reserve_obligation("permit").unwrap();
                q.abort();
            }).unwrap();
            h.join(&cx).await.unwrap();
        });
        let s = rt.stats();
        assert_eq!(s.obligations_committed, 2, "{s:?}");
        assert_eq!(s.obligations_aborted, 3, "{s:?}");
        assert_eq!(s.obligations_leaked, 0, "{s:?}");
        assert!(s.leaks.is_empty());
        assert_quiescent(&rt);
    }

    /// `mem::forget` in a task that then returns normally: the task's
    /// outcome is a panic naming the leak; the join receives it.
    fn forgotten_obligation_makes_the_task_panic_with_obligation_leak(d: Driver) {
        let rt = d.rt();
        let ids = Slot::new();
        let i = ids.clone();
        rt.block_on(move |cx: Cx| async move {
            let h = cx.spawn(move |c| async move {
                let p = c.reserve_obligation("send_permit").unwrap();
                let q = c.reserve_obligation("reply").unwrap();
                i.set((p.id(), q.id()));
                std::mem::forget(p);
                std::mem::forget(q);
                1
            }).unwrap();
            match h.join(&cx).await {
                Err(JoinError::Panicked(p)) => {
                    let (a, b) = ids.get().unwrap();
                    let m = p.message();
                    assert!(m.contains("obligation leak"), "{m}");
                    assert!(m.contains(&a.to_string()) && m.contains(&b.to_string()), "both leaks are named: {m}");
                    assert!(m.contains("send_permit"), "{m}");
                }
                other => panic!("a leaking task must join Panicked, got {other:?}"),
            }
        });
        let s = rt.stats();
        assert_eq!(s.obligations_leaked, 2);
        assert_eq!(s.leaks.len(), 2);
        assert_quiescent(&rt);
    }

    /// A leak in the root body is resumed by `block_on` as a panic.
    fn forgotten_obligation_in_the_root_body_panics_out_of_block_on(d: Driver) {
        let rt = d.rt();
        let msg = expect_panic(|| {
            rt.block_on(|cx: Cx| async move {
                std::mem::forget(cx.reserve_obligation("lease").unwrap());
                5
            })
        });
        assert!(msg.contains("obligation leak"), "{msg}");
        assert_eq!(rt.stats().obligations_leaked, 1);
        // The runtime is still usable.
        assert_eq!(rt.block_on(|_cx: Cx| async { 6 }), 6);
        assert_quiescent(&rt);
    }

    /// A leak in a task nobody joins is an unjoined panic: it fails the root
    /// region (siblings get `FailFast`) and `block_on` resumes it.
    fn forgotten_obligation_in_an_unjoined_task_fails_block_on(d: Driver) {
        let rt = d.rt();
        let sibling = Slot::new();
        let sb = sibling.clone();
        let msg = expect_panic(|| {
            rt.block_on(move |cx: Cx| async move {
                let started = Flag::new();
                let st = started.clone();
                drop(cx.spawn(move |c| async move {
                    st.set();
                    if let Err(e) = time::sleep(&c, HOUR).await {
                        sb.set(e.reason().kind);
                    }
                }).unwrap());
                until(|| started.is_set()).await;
                drop(cx.spawn(|c| async move {
                    std::mem::forget(c.reserve_obligation("permit").unwrap());
                }).unwrap());
            })
        });
        assert!(msg.contains("obligation leak"), "{msg}");
        assert_eq!(sibling.get(), Some(CancelKind::FailFast));
        assert_quiescent(&rt);
    }

    /// Holding an obligation when the task completes normally (here: it was
    /// stashed outside the task) is a leak; resolving it later does not
    /// count it a second time.
    fn holding_an_obligation_at_normal_completion_is_a_leak(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let stash: Slot<Obligation> = Slot::new();
            let st = stash.clone();
            let h = cx.spawn(move |c| async move {
                st.set(c.reserve_obligation("held").unwrap());
                "done"
            }).unwrap();
            let r = h.join(&cx).await;
            assert!(
                matches!(&r, Err(JoinError::Panicked(p)) if p.message().contains("obligation leak")),
                "{r:?}"
            );
            let late = stash.take().unwrap();
            assert_eq!(cx.obligation_state(late.id()), None, "a leaked obligation is no longer pending");
            late.commit();

            // Returning it as the task's value is holding it, too.
            let h = cx.spawn(|c| async move { c.reserve_obligation("returned").unwrap() }).unwrap();
            let r = h.join(&cx).await;
            assert!(
                matches!(&r, Err(JoinError::Panicked(p)) if p.message().contains("obligation leak")),
                "{r:?}"
            );
        });
        let s = rt.stats();
        assert_eq!(s.obligations_leaked, 2, "{s:?}");
        assert_eq!(s.obligations_committed, 0, "a leaked obligation cannot be committed later: {s:?}");
        assert_eq!(s.obligations_aborted, 0, "{s:?}");
        assert_quiescent(&rt);
    }

    /// K5: a cancelled task's obligations that it did not give back —
    /// stashed away or forgotten — are leaks, not aborts (it used to count
    /// them as aborted, so a forgotten permit vanished silently), whether
    /// it acknowledged and returned or was force-dropped. Under the panic
    /// policy its outcome becomes `Panicked` naming the leak.
    fn cancelled_holder_leaks_what_it_did_not_give_back(d: Driver) {
        let rt = d.rt_with_grace(Duration::from_millis(50));
        rt.block_on(|cx: Cx| async move {
            // Acknowledges, then finishes while still holding (stashed) obligations.
            let stash: Slot<Obligation> = Slot::new();
            let started = Flag::new();
            let (st2, sh) = (started.clone(), stash.clone());
            let h = cx.spawn(move |c| async move {
                let p = c.reserve_obligation("held").unwrap();
                std::mem::forget(c.reserve_obligation("forgotten").unwrap());
                // Dropped when the future is: aborted, not a leak.
                let _dropped = c.reserve_obligation("dropped").unwrap();
                st2.set();
                let r = time::sleep(&c, HOUR).await;
                sh.set(p);
                r
            }).unwrap();
            until(|| started.is_set()).await;
            h.abort();
            match h.join(&cx).await {
                Err(JoinError::Panicked(p)) => {
                    let m = p.message();
                    assert!(m.contains("obligation leak") && m.contains("held") && m.contains("forgotten"), "{m}");
                    assert!(!m.contains("dropped"), "{m}");
                }
                other => panic!("a cancelled task that leaked must join Panicked, got {other:?}"),
            }
            let late = stash.take().unwrap();
            assert_eq!(cx.obligation_state(late.id()), None, "settled as a leak");
            drop(late);

            // Ignores cancellation and is force-dropped after the grace period.
            let started = Flag::new();
            let st = started.clone();
            let h = cx.spawn(move |c| async move {
                std::mem::forget(c.reserve_obligation("stuck").unwrap());
                st.set();
                std::future::pending::<()>().await;
            }).unwrap();
            until(|| started.is_set()).await;
            h.abort();
            let err = h.join(&cx).await.unwrap_err();
            assert!(err.is_panicked() && err.to_string().contains("stuck"), "{err}");
        });
        let s = rt.stats();
        assert_eq!(s.obligations_leaked, 3, "{:?}", s.leaks);
        assert_eq!(s.obligations_aborted, 1, "only the dropped one: {s:?}");
        assert_eq!(s.forced_drop_count, 1);
        assert_quiescent(&rt);
    }

    /// With `LeakPolicy::Log` a cancelled task that leaked still joins
    /// `Cancelled`; the leak is recorded.
    fn cancelled_holder_under_the_log_policy_joins_cancelled_and_records_the_leak(d: Driver) {
        let rt = d.builder().obligation_leak_policy(LeakPolicy::Log).build().unwrap();
        let oid = Slot::new();
        let o2 = oid.clone();
        rt.block_on(move |cx: Cx| async move {
            let started = Flag::new();
            let st = started.clone();
            let h = cx.spawn(move |c| async move {
                let p = c.reserve_obligation("forgotten").unwrap();
                o2.set(p.id());
                std::mem::forget(p);
                st.set();
                time::sleep(&c, HOUR).await
            }).unwrap();
            until(|| started.is_set()).await;
            h.abort();
            assert!(h.join(&cx).await.unwrap_err().is_cancelled());
        });
        let s = rt.stats();
        assert_eq!((s.obligations_leaked, s.obligations_aborted), (1, 0), "{s:?}");
        assert_eq!(s.leaks[0].obligation, oid.get().unwrap());
        assert_quiescent(&rt);
    }

    /// Tasks cancelled by a failing region abort their obligations too.
    fn obligations_of_fail_fast_children_are_aborted(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let out = cx
                .region(|rcx| async move {
                    let started = Counter::new();
                    for _ in 0..3 {
                        let st = started.clone();
                        drop(rcx.spawn(move |c| async move {
                            let p = c.reserve_obligation("permit").unwrap();
                            st.incr();
                            time::sleep(&c, HOUR).await?;
                            p.commit();
                            Ok::<_, asupersync::types::cancel::Cancelled>(())
                        }).unwrap());
                    }
                    until(|| started.get() == 3).await;
                    Err::<(), _>("stop")
                })
                .await;
            assert_eq!(out, Outcome::Err("stop"));
        });
        let s = rt.stats();
        assert_eq!((s.obligations_committed, s.obligations_aborted, s.obligations_leaked), (0, 3, 0));
        assert_quiescent(&rt);
    }

    /// With `LeakPolicy::Log` a leak is recorded (with its id, kind, holder,
    /// region and times) and execution goes on: the task joins `Ok`.
    fn log_policy_records_the_leak_without_panicking(d: Driver) {
        let rt = d.builder().obligation_leak_policy(LeakPolicy::Log).build().unwrap();
        let info = Slot::new();
        let inf = info.clone();
        let v = rt.block_on(move |cx: Cx| async move {
            let h = cx.spawn(move |c| async move {
                let p = c.reserve_obligation("send_permit").unwrap();
                inf.set((p.id(), c.task_id(), c.region_id(), c.now()));
                std::mem::forget(p);
                5
            }).unwrap();
            let before = cx.now();
            let r = h.join(&cx).await;
            assert_eq!(r, Ok(5), "Log policy must not turn the leak into a panic");
            assert!(cx.now() >= before);
            7
        });
        assert_eq!(v, 7);
        let (oid, tid, rid, reserved_after) = info.get().unwrap();
        let s = rt.stats();
        assert_eq!(s.obligations_leaked, 1);
        assert_eq!(s.leaks.len(), 1);
        let leak = &s.leaks[0];
        assert_eq!(leak.obligation, oid);
        assert_eq!(leak.kind, "send_permit");
        assert_eq!(leak.holder, tid);
        assert_eq!(leak.region, rid);
        assert!(leak.reserved_at <= reserved_after, "{leak:?}");
        assert!(leak.detected_at >= leak.reserved_at, "{leak:?}");
        assert!(leak.to_string().contains("obligation leak"), "{leak}");
        assert_quiescent(&rt);
    }

    /// Obligation ids print as `O<n>`, are distinct while held, and a
    /// resolved id stays unresolvable even when its slot is reused.
    fn obligation_ids_display_and_stale_ids_never_resolve(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let a = cx.reserve_obligation("x").unwrap();
            let b = cx.reserve_obligation("x").unwrap();
            assert_ne!(a.id(), b.id());
            for id in [a.id(), b.id()] {
                assert!(is_o_id(&id.to_string()), "{id}");
            }
            let a_id: ObligationId = a.id();
            assert_eq!(cx.obligation_state(a_id), Some(ObligationState::Reserved));
            a.commit();
            assert_eq!(cx.obligation_state(a_id), None);
            let c = cx.reserve_obligation("x").unwrap();
            assert_ne!(c.id(), a_id, "a new obligation never reuses a resolved id");
            assert_eq!(cx.obligation_state(a_id), None, "stale id must not resolve to the newcomer");
            assert_eq!(cx.obligation_state(c.id()), Some(ObligationState::Reserved));
            b.abort();
            c.commit();
        });
        assert_quiescent(&rt);
    }

    /// K5: a region never closes with a pending obligation. One that escapes
    /// its region (returned from the body) is recorded as a leak of that
    /// region when it closes, and nothing stays pending.
    fn obligation_escaping_its_region_is_settled_when_the_region_closes(d: Driver) {
        let rt = d.builder().obligation_leak_policy(LeakPolicy::Log).build().unwrap();
        let rtr = &rt;
        let rid = rt.block_on(|cx: Cx| async move {
            let (ob, rid) = cx
                .region(|rcx| async move {
                    Ok::<_, ()>((rcx.reserve_obligation("escaped").unwrap(), rcx.region_id()))
                })
                .await
                .unwrap();
            assert_eq!(cx.obligation_state(ob.id()), None, "the closed region settled it");
            assert_eq!(rtr.pending_obligations(), 0);
            ob.commit();
            rid
        });
        let s = rt.stats();
        assert_eq!(s.obligations_leaked, 1, "{s:?}");
        assert_eq!(s.leaks[0].region, rid);
        assert_eq!(s.leaks[0].kind, "escaped");
        assert_eq!(s.obligations_committed, 0);
        assert_quiescent(&rt);
    }
}

mod transfer {
    use std::time::Duration;

    use asupersync::obligation::Obligation;
    use asupersync::time::sleep;
    use asupersync::{Cx, RuntimeBuilder};

    /// Polls a std channel cooperatively (runtime timer between tries).
    async fn recv_cooperatively<T>(
        cx: &Cx,
        rx: &std::sync::Mutex<std::sync::mpsc::Receiver<T>>,
    ) -> T {
        loop {
            if let Ok(v) = rx.lock().unwrap().try_recv() {
                return v;
            }
            sleep(cx, Duration::from_millis(1)).await.unwrap();
        }
    }

    #[test]
    fn a_handed_off_obligation_is_the_receivers_to_resolve_not_a_leak_of_the_reserver() {
        let rt = RuntimeBuilder::current_thread().build().unwrap();
        rt.block_on(|cx: Cx| async move {
            let (permit_tx, permit_rx) = std::sync::mpsc::channel::<Obligation>();
            let (taken_tx, taken_rx) = std::sync::mpsc::channel::<()>();
            let (permit_rx, taken_rx) = (
                std::sync::Mutex::new(permit_rx),
                std::sync::Mutex::new(taken_rx),
            );
            let reserver = cx
                .spawn(move |cx| async move {
                    permit_tx
                        .send(cx.reserve_obligation("handoff").unwrap())
                        .unwrap();
                    // Finish only after the receiver took responsibility.
                    recv_cooperatively(&cx, &taken_rx).await;
                })
                .unwrap();
            let receiver = cx
                .spawn(move |cx| async move {
                    let mut permit = recv_cooperatively(&cx, &permit_rx).await;
                    permit.transfer(&cx).unwrap();
                    taken_tx.send(()).unwrap();
                    sleep(&cx, Duration::from_millis(5)).await.unwrap(); // outlives the reserver
                    permit.commit();
                })
                .unwrap();
            reserver.join(&cx).await.unwrap();
            receiver.join(&cx).await.unwrap();
        });
        let stats = rt.stats();
        assert_eq!(stats.obligations_leaked, 0);
        assert_eq!(stats.obligations_committed, 1);
    }

    #[test]
    fn without_a_transfer_the_reserver_finishing_first_is_reported_as_a_leak() {
        let rt = RuntimeBuilder::current_thread()
            .obligation_leak_policy(asupersync::obligation::LeakPolicy::Log)
            .build()
            .unwrap();
        rt.block_on(|cx: Cx| async move {
            let (permit_tx, permit_rx) = std::sync::mpsc::channel::<Obligation>();
            let reserver = cx
                .spawn(move |cx| async move {
                    permit_tx
                        .send(cx.reserve_obligation("handoff").unwrap())
                        .unwrap();
                })
                .unwrap();
            reserver.join(&cx).await.unwrap();
            // The late receiver can still resolve the handle harmlessly.
            permit_rx.recv().unwrap().commit();
        });
        assert_eq!(rt.stats().obligations_leaked, 1);
    }
}
