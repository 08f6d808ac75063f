//! Issue 11, item 11: owned semaphore permits follow their holder (S3).
//! tokio's concurrency-limit idiom — an acceptor takes `acquire_owned`
//! permits and moves each into the task serving the connection — used to be
//! reported as an obligation leak when the acceptor finished first. Now the
//! permit's obligation is held by its region: nothing is reported while
//! some task still holds it, every permit comes back, and a forgotten one is
//! still reported (by the region's close). Both drivers and the lab.

mod support;

use std::sync::Arc;

use asupersync::kernel::LeakPolicy;
use asupersync::lab::{ExploreConfig, explore};
use asupersync::sync::{OwnedSemaphorePermit, Semaphore};
use asupersync::types::Outcome;
use asupersync::{Cx, TaskHandle, yield_now};
use support::*;

/// The acceptor: takes `connections` permits one at a time (at most
/// `limit` outstanding) and moves each into a new task serving the
/// connection; the tasks serving connection `hold_from..` wait for `gate`
/// before releasing. Returns the serving tasks' handles, without waiting
/// for them.
fn spawn_acceptor(
    cx: &Cx,
    sem: &Arc<Semaphore>,
    connections: usize,
    hold_from: usize,
    gate: &Gate,
) -> TaskHandle<Vec<TaskHandle<usize>>> {
    let (sem, gate) = (sem.clone(), gate.clone());
    cx.spawn(move |cx| async move {
        let mut served = Vec::new();
        for i in 0..connections {
            let permit: OwnedSemaphorePermit = sem.clone().acquire_owned(&cx, 1).await.unwrap();
            let gate = gate.clone();
            served.push(
                cx.spawn(move |_cx| async move {
                    if i >= hold_from {
                        gate.wait().await;
                    }
                    yield_now().await;
                    drop(permit);
                    i
                })
                .unwrap(),
            );
        }
        served
    })
    .unwrap()
}

on_both_drivers! {
    /// The acceptor finishes while two connections still hold their
    /// permits: it joins `Ok` (no leak), the permits come back when the
    /// connections end, and the stats show no leak.
    fn an_acceptor_that_finishes_first_leaks_nothing_and_every_permit_comes_back(d: Driver) {
        let rt = d.rt();
        let sem = Arc::new(Semaphore::new(2));
        let s = sem.clone();
        rt.block_on(move |cx: Cx| async move {
            let gate = Gate::new();
            let acceptor = spawn_acceptor(&cx, &s, 6, 4, &gate);
            let served = acceptor.join(&cx).await.expect("the acceptor finishing first is no leak");
            assert_eq!(s.available_permits(), 0, "connections 4 and 5 still hold theirs");
            gate.open();
            let mut ids = Vec::new();
            for h in served {
                ids.push(h.join(&cx).await.unwrap());
            }
            assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
            assert_eq!(s.available_permits(), 2);
        });
        let st = rt.stats();
        assert_eq!(st.obligations_leaked, 0, "{:?}", st.leaks);
        assert_eq!(st.obligations_aborted, 6, "{st:?}");
        assert_eq!(sem.available_permits(), 2);
        assert_quiescent(&rt);
    }

    /// `try_acquire_owned` permits follow their holder too, also across a
    /// child region: handed to a task of a nested region, released there
    /// after the acquiring task ended.
    fn try_acquire_owned_permits_move_into_tasks_of_nested_regions(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let sem = Arc::new(Semaphore::new(1));
            let slot: Slot<OwnedSemaphorePermit> = Slot::new();
            let sl = slot.clone();
            let s = sem.clone();
            cx.spawn(move |cx| async move { sl.set(s.try_acquire_owned(&cx, 1).unwrap()) })
                .unwrap()
                .join(&cx)
                .await
                .expect("the acquirer may finish holding an owned permit");
            let permit = slot.take().unwrap();
            let out = cx.region(move |rcx| async move {
                rcx.spawn(move |_cx| async move { drop(permit) }).unwrap().join(&rcx).await.unwrap();
                Ok::<_, ()>(())
            }).await;
            assert_eq!(out, Outcome::Ok(()));
            assert_eq!(sem.available_permits(), 1);
        });
        assert_eq!(rt.stats().obligations_leaked, 0);
        assert_quiescent(&rt);
    }

    /// `OwnedSemaphorePermit::forget` in the task it moved to commits the
    /// obligation (the total shrinks): no leak.
    fn forgetting_through_the_api_in_another_task_commits(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let sem = Arc::new(Semaphore::new(3));
            let permit = sem.clone().acquire_owned(&cx, 2).await.unwrap();
            cx.spawn(move |_cx| async move { permit.forget() }).unwrap().join(&cx).await.unwrap();
            assert_eq!((sem.total_permits(), sem.available_permits()), (1, 1));
        });
        let st = rt.stats();
        assert_eq!((st.obligations_committed, st.obligations_leaked), (1, 0), "{st:?}");
        assert_quiescent(&rt);
    }

    /// A forgotten owned permit is still reported: the tasks involved join
    /// `Ok` (neither holds it), and the close of the region it was acquired
    /// in reports the leak (a panic naming it; the stats name the region).
    fn a_forgotten_owned_permit_is_reported_when_its_region_closes(d: Driver) {
        let rt = d.rt();
        let region = Slot::new();
        let joins: Slot<(bool, bool)> = Slot::new();
        let (rg, jn) = (region.clone(), joins.clone());
        rt.block_on(move |cx: Cx| async move {
            let sem = Arc::new(Semaphore::new(2));
            let s = sem.clone();
            let out = cx.region(move |rcx| async move {
                rg.set(rcx.region_id());
                let acceptor = rcx.spawn(move |cx| async move {
                    let permit = s.acquire_owned(&cx, 1).await.unwrap();
                    cx.spawn(move |_cx| async move { std::mem::forget(permit) }).unwrap()
                }).unwrap();
                match acceptor.join(&rcx).await {
                    Ok(holder) => jn.set((true, holder.join(&rcx).await.is_ok())),
                    Err(_) => jn.set((false, false)),
                }
                Ok::<_, ()>(())
            }).await;
            assert_eq!(joins.get(), Some((true, true)), "neither task holds the owned permit");
            match out {
                Outcome::Panicked(p) => assert!(
                    p.message().contains("obligation leak") && p.message().contains("semaphore_permit"),
                    "{}", p.message()
                ),
                other => panic!("the region's close must report the leak, got {other:?}"),
            }
            assert_eq!(sem.available_permits(), 1);
        });
        let st = rt.stats();
        assert_eq!(st.obligations_leaked, 1);
        assert_eq!(st.leaks[0].region, region.get().unwrap());
        assert_quiescent(&rt);
    }

    /// Under the log policy the same leak is recorded and the region ends
    /// `Ok`.
    fn a_forgotten_owned_permit_under_the_log_policy_is_recorded(d: Driver) {
        let rt = d.builder().obligation_leak_policy(LeakPolicy::Log).build().unwrap();
        rt.block_on(|cx: Cx| async move {
            let sem = Arc::new(Semaphore::new(1));
            let out = cx.region(move |rcx| async move {
                std::mem::forget(sem.acquire_owned(&rcx, 1).await.unwrap());
                Ok::<_, ()>(())
            }).await;
            assert_eq!(out, Outcome::Ok(()));
        });
        assert_eq!(rt.stats().obligations_leaked, 1);
        assert_quiescent(&rt);
    }
}

/// The idiom in the lab over many schedules (`explore` checks every
/// oracle: obligation leaks, region quiescence, futurelock, ...), whatever
/// order the acceptor and the connections run in.
#[test]
fn in_the_lab_the_acceptor_idiom_passes_every_oracle() {
    let report = explore(ExploreConfig::new().schedules(100), |cx: Cx| async move {
        let sem = Arc::new(Semaphore::new(2));
        let gate = Gate::new();
        gate.open();
        let acceptor = spawn_acceptor(&cx, &sem, 5, 5, &gate);
        let served = acceptor.join(&cx).await.unwrap();
        for h in served {
            h.join(&cx).await.unwrap();
        }
        assert_eq!(sem.available_permits(), 2);
    });
    assert!(report.is_ok(), "{report}");
    assert!(report.distinct_schedules() > 1, "{report}");
}
