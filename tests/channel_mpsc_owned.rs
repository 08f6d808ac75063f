//! Issue 11, item 11: `Sender::reserve_owned` consumes a sender and gives a
//! `'static` `OwnedSendPermit` that can move into another task (mpsc rule
//! 9). Its obligation follows its holder: the reserving task may finish
//! first; a forgotten one is reported by the region's close. `send` gives
//! the sender back, `release` gives the slot and the sender back, errors
//! give the sender back. Both drivers and the lab.

mod support;

use std::time::Duration;

use asupersync::channel::mpsc::{self, OwnedSendPermit, ReserveError, SendError};
use asupersync::kernel::LeakPolicy;
use asupersync::lab::{ExploreConfig, explore};
use asupersync::types::Outcome;
use asupersync::{Cx, time, yield_now};
use support::*;

on_both_drivers! {
    /// tokio's idiom: reserve the slot, move the permit into a task that
    /// produces the value later. The reserving task finishes first without
    /// a leak; the value arrives; the permit's `send` gives the sender back.
    fn an_owned_send_permit_moved_into_a_task_sends_after_the_reserver_finished(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            let gate = Gate::new();
            let g = gate.clone();
            let reserver = cx.spawn(move |cx| async move {
                let permit: OwnedSendPermit<u32> = tx.reserve_owned(&cx).await.unwrap();
                cx.spawn(move |_cx| async move {
                    g.wait().await;
                    let tx = permit.send(7).unwrap();
                    assert!(tx.try_send(8).is_err(), "the one slot is taken by 7");
                    tx.capacity()
                }).unwrap()
            }).unwrap();
            let producer = reserver.join(&cx).await.expect("the reserver holds nothing");
            gate.open();
            // Joined before receiving: until 7 is received, the one slot is
            // full for the producer's `try_send(8)`.
            assert_eq!(producer.join(&cx).await.unwrap(), 0);
            assert_eq!(rx.recv(&cx).await.unwrap(), 7);
            assert!(rx.recv(&cx).await.unwrap_err().is_disconnected(), "the sender was dropped");
        });
        let s = rt.stats();
        assert_eq!((s.obligations_committed, s.obligations_leaked), (1, 0), "{s:?}");
        assert_quiescent(&rt);
    }

    /// Capacity accounting: a permit holds a slot; `release` and dropping
    /// return it (aborting the obligation); `release` gives the sender back.
    fn release_and_drop_give_the_slot_back(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(2);
            let keep = tx.clone();
            let permit = tx.reserve_owned(&cx).await.unwrap();
            assert_eq!(keep.capacity(), 1);
            let id = permit.obligation().id();
            assert!(cx.obligation_state(id).is_some());
            assert!(format!("{permit:?}").contains("OwnedSendPermit"));
            let tx = permit.release();
            assert_eq!(cx.obligation_state(id), None);
            assert_eq!(keep.capacity(), 2);
            let permit = tx.reserve_owned(&cx).await.unwrap();
            assert_eq!(keep.capacity(), 1);
            drop(permit); // drops the sender too
            assert_eq!(keep.capacity(), 2);
            keep.try_send(1).unwrap();
            drop(keep);
            assert_eq!(rx.recv(&cx).await.unwrap(), 1);
            assert!(rx.recv(&cx).await.unwrap_err().is_disconnected());
        });
        let s = rt.stats();
        assert_eq!((s.obligations_aborted, s.obligations_leaked), (2, 0), "{s:?}");
        assert_quiescent(&rt);
    }

    /// A receiver gone before the send: the value comes back and the
    /// obligation is aborted; a reservation on a closed channel gives the
    /// sender back with `Disconnected`.
    fn disconnection_gives_the_value_or_the_sender_back(d: Driver) {
        d.rt().block_on(|cx: Cx| async move {
            let (tx, rx) = mpsc::channel::<String>(1);
            let keep = tx.clone();
            let permit = tx.reserve_owned(&cx).await.unwrap();
            drop(rx);
            match permit.send("lost?".to_string()) {
                Err(SendError::Disconnected(v)) => assert_eq!(v, "lost?"),
                other => panic!("expected the value back, got {other:?}"),
            }
            let err = keep.reserve_owned(&cx).await.unwrap_err();
            assert!(err.is_disconnected(), "{err:?}");
            assert!(err.to_string().contains("disconnected"), "{err}");
            let tx = err.into_sender();
            assert!(tx.is_closed());
        });
    }

    /// `reserve_owned` waits for capacity in FIFO order with the other
    /// senders; cancelled while waiting it holds nothing and gives the
    /// sender back, and the next waiter is served.
    fn a_cancelled_reserve_owned_holds_nothing_and_gives_the_sender_back(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            tx.try_send(0).unwrap();
            let (t1, t2) = (tx.clone(), tx.clone());
            let started = Flag::new();
            let (st, back) = (started.clone(), Slot::new());
            let bk = back.clone();
            let first = cx.spawn(move |cx| async move {
                st.set();
                match t1.reserve_owned(&cx).await {
                    Err(e) if e.is_cancelled() => {
                        let (sender, why) = e.into_parts();
                        assert!(matches!(why, ReserveError::Cancelled(_)));
                        bk.set(sender.try_send(99).unwrap_err().into_inner());
                    }
                    other => panic!("expected a cancelled reservation, got {other:?}"),
                }
            }).unwrap();
            until(|| started.is_set()).await;
            let second = cx.spawn(move |cx| async move {
                t2.reserve_owned(&cx).await.unwrap().send(2).map(drop).unwrap();
            }).unwrap();
            // The first is queued or about to be: either way, cancelled
            // while it would wait (the channel is full).
            yield_now().await;
            first.abort();
            assert!(first.join(&cx).await.unwrap_err().is_cancelled());
            assert_eq!(back.take(), Some(99), "the sender came back (the channel is full)");
            assert_eq!(rx.recv(&cx).await.unwrap(), 0);
            assert_eq!(rx.recv(&cx).await.unwrap(), 2);
            second.join(&cx).await.unwrap();
        });
        assert_eq!(rt.stats().obligations_leaked, 0);
        assert_quiescent(&rt);
    }

    /// A forgotten owned permit is still reported: not by the tasks (they
    /// join `Ok`), by the close of the region it was reserved in.
    fn a_forgotten_owned_send_permit_is_reported_when_its_region_closes(d: Driver) {
        let rt = d.rt();
        let joins: Slot<(bool, bool)> = Slot::new();
        let jn = joins.clone();
        rt.block_on(move |cx: Cx| async move {
            let (tx, _rx) = mpsc::channel::<u32>(1);
            let out = cx.region(move |rcx| async move {
                let reserver = rcx.spawn(move |cx| async move {
                    let permit = tx.reserve_owned(&cx).await.unwrap();
                    cx.spawn(move |_cx| async move { std::mem::forget(permit) }).unwrap()
                }).unwrap();
                match reserver.join(&rcx).await {
                    Ok(holder) => jn.set((true, holder.join(&rcx).await.is_ok())),
                    Err(_) => jn.set((false, false)),
                }
                Ok::<_, ()>(())
            }).await;
            assert_eq!(joins.get(), Some((true, true)), "neither task holds the owned permit");
            match out {
                Outcome::Panicked(p) => assert!(
                    p.message().contains("obligation leak") && p.message().contains("send_permit"),
                    "{}", p.message()
                ),
                other => panic!("the region's close must report the leak, got {other:?}"),
            }
        });
        assert_eq!(rt.stats().obligations_leaked, 1);
        assert_quiescent(&rt);
    }

    /// Under the log policy: recorded, the region ends `Ok`.
    fn a_forgotten_owned_send_permit_under_the_log_policy_is_recorded(d: Driver) {
        let rt = d.builder().obligation_leak_policy(LeakPolicy::Log).build().unwrap();
        rt.block_on(|cx: Cx| async move {
            let (tx, _rx) = mpsc::unbounded_channel::<u32>();
            let out = cx.region(move |rcx| async move {
                std::mem::forget(tx.reserve_owned(&rcx).await.unwrap());
                Ok::<_, ()>(())
            }).await;
            assert_eq!(out, Outcome::Ok(()));
        });
        let s = rt.stats();
        assert_eq!(s.obligations_leaked, 1);
        assert_eq!(s.leaks[0].kind, "send_permit");
        assert_quiescent(&rt);
    }
}

/// In the lab over many schedules (`explore` checks every oracle):
/// producers reserve owned permits and hand them to worker tasks that send
/// after a virtual delay; the producers finish first. Every value arrives.
#[test]
fn in_the_lab_owned_send_permits_moved_into_tasks_pass_every_oracle() {
    let report = explore(ExploreConfig::new().schedules(100), |cx: Cx| async move {
        let (tx, mut rx) = mpsc::channel::<u64>(2);
        for p in 0..3u64 {
            let tx = tx.clone();
            drop(
                cx.spawn(move |cx| async move {
                    for i in 0..2u64 {
                        let permit = tx.clone().reserve_owned(&cx).await.unwrap();
                        drop(
                            cx.spawn(move |cx| async move {
                                time::sleep(&cx, Duration::from_millis(1 + i))
                                    .await
                                    .unwrap();
                                drop(permit.send(p * 10 + i).unwrap());
                            })
                            .unwrap(),
                        );
                    }
                })
                .unwrap(),
            );
        }
        drop(tx);
        let mut got = Vec::new();
        while let Ok(v) = rx.recv(&cx).await {
            got.push(v);
        }
        got.sort_unstable();
        assert_eq!(got, [0, 1, 10, 11, 20, 21]);
    });
    assert!(report.is_ok(), "{report}");
    assert!(report.distinct_schedules() > 1, "{report}");
}
