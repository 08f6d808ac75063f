//! Issue 11, item 12: obligations that change hands are traced
//! (`TraceKind::ObligationTransfer`) and every oracle that tracks
//! obligations follows them. A correct program that hands an obligation to
//! a task in another region with `Obligation::transfer` and commits it there
//! used to fail `region_quiescence` (the oracle kept the reserving region,
//! which closed first) although the kernel counted no leak. Owned permits
//! are traced as handed to their region, so `futurelock` no longer blames
//! the task that acquired one and gave it away.

mod support;

use std::sync::Arc;
use std::time::Duration;

use asupersync::Cx;
use asupersync::channel::mpsc;
use asupersync::lab::oracle::{self, EndState};
use asupersync::lab::{ExploreConfig, LabConfig, LabRuntime, explore};
use asupersync::obligation::Obligation;
use asupersync::sync::Semaphore;
use asupersync::time::sleep;
use asupersync::trace::{CompletionKind, TraceKind};
use asupersync::types::{ObligationId, RegionId, TaskId};
use support::Gate;
use support::traces::{o, r, t, trace};

fn reserve(obligation: ObligationId, task: TaskId, region: RegionId) -> TraceKind {
    TraceKind::ObligationReserve {
        obligation,
        task,
        region,
    }
}

fn transfer(
    obligation: ObligationId,
    from: Option<TaskId>,
    to: Option<TaskId>,
    from_region: RegionId,
    region: RegionId,
) -> TraceKind {
    TraceKind::ObligationTransfer {
        obligation,
        from,
        to,
        from_region,
        region,
    }
}

fn complete(task: TaskId) -> TraceKind {
    TraceKind::Complete {
        task,
        outcome: CompletionKind::Ok,
    }
}

/// The program of item 12: a task in a child region reserves an obligation
/// and hands it, through a channel, to a task of the root region, which
/// takes it over with `transfer`; the child region closes; only then is the
/// obligation committed.
async fn hand_off_across_regions(cx: Cx) -> (RegionId, RegionId) {
    let (tx, mut rx) = mpsc::channel::<Obligation>(1);
    let (taken, closed) = (Gate::new(), Gate::new());
    let (tk, cl) = (taken.clone(), closed.clone());
    let receiver = cx
        .spawn(move |cx| async move {
            let mut ob = rx.recv(&cx).await.unwrap();
            ob.transfer(&cx).unwrap();
            tk.open();
            cl.wait().await;
            ob.commit();
        })
        .unwrap();
    let child = cx
        .region(move |rcx| async move {
            let reserver = rcx
                .spawn(move |cx| async move {
                    let ob = cx.reserve_obligation("handoff").unwrap();
                    tx.send(&cx, ob).await.unwrap();
                    taken.wait().await;
                })
                .unwrap();
            reserver.join(&rcx).await.unwrap();
            Ok::<_, ()>(rcx.region_id())
        })
        .await
        .unwrap();
    closed.open();
    receiver.join(&cx).await.unwrap();
    (child, cx.region_id())
}

#[test]
fn an_obligation_transferred_to_another_region_and_committed_there_passes_every_oracle() {
    for seed in 0..50 {
        let lab = LabRuntime::new(LabConfig::new(seed));
        let (child, root) = lab.block_on(hand_off_across_regions);
        let stats = lab.stats();
        assert_eq!(
            (stats.obligations_leaked, stats.obligations_committed),
            (0, 1)
        );
        let report = lab.oracle_report();
        assert!(report.passed(), "seed {seed}:\n{report}");
        assert!(
            report.result(oracle::REGION_QUIESCENCE).unwrap().tracked >= 2,
            "{report}"
        );
        let events = lab.trace();
        let moved = events.iter().find_map(|e| match &e.kind {
            TraceKind::ObligationTransfer {
                from,
                to,
                from_region,
                region,
                ..
            } => Some((from.is_some(), to.is_some(), *from_region, *region)),
            _ => None,
        });
        assert_eq!(
            moved,
            Some((true, true, child, root)),
            "seed {seed}: the transfer is traced"
        );
    }
}

/// The same program over many schedules with `explore`, which fails a run
/// whose oracles fail.
#[test]
fn a_cross_region_hand_off_passes_every_oracle_in_every_explored_schedule() {
    let report = explore(ExploreConfig::new().schedules(100), |cx: Cx| async move {
        hand_off_across_regions(cx).await;
    });
    assert!(report.is_ok(), "{report}");
    assert!(report.distinct_schedules() > 1, "{report}");
}

/// An owned permit is traced as its region's right after its reservation:
/// the acquiring task, which gave it away and then waits a long (virtual)
/// time, is not taken for a futurelocked holder.
#[test]
fn futurelock_does_not_blame_the_task_that_gave_an_owned_permit_away() {
    let lab = LabRuntime::new(LabConfig::new(5).futurelock_after(Duration::from_secs(10)));
    lab.block_on(|cx: Cx| async move {
        let sem = Arc::new(Semaphore::new(1));
        let acceptor = cx
            .spawn(move |cx| async move {
                let permit = sem.acquire_owned(&cx, 1).await.unwrap();
                let worker = cx
                    .spawn(move |cx| async move {
                        for _ in 0..120 {
                            sleep(&cx, Duration::from_secs(1)).await.unwrap();
                        }
                        drop(permit);
                    })
                    .unwrap();
                sleep(&cx, Duration::from_secs(120)).await.unwrap();
                worker.join(&cx).await.unwrap();
            })
            .unwrap();
        acceptor.join(&cx).await.unwrap();
    });
    let report = lab.oracle_report();
    assert!(report.passed(), "{report}");
    let moved = lab.trace().iter().any(|e| {
        matches!(
            e.kind,
            TraceKind::ObligationTransfer {
                from: Some(_),
                to: None,
                ..
            }
        )
    });
    assert!(moved, "the owned permit is traced as handed to its region");
}

// ----- hand-built traces -----------------------------------------------------

#[test]
fn region_quiescence_follows_a_transfer_to_another_region() {
    let base = vec![
        (
            0,
            TraceKind::RegionCreate {
                region: r(0),
                parent: None,
            },
        ),
        (
            0,
            TraceKind::RegionCreate {
                region: r(1),
                parent: Some(r(0)),
            },
        ),
        (
            0,
            TraceKind::Spawn {
                task: t(1),
                region: r(1),
            },
        ),
        (
            0,
            TraceKind::Spawn {
                task: t(2),
                region: r(0),
            },
        ),
        (0, reserve(o(1), t(1), r(1))),
        (1, transfer(o(1), Some(t(1)), Some(t(2)), r(1), r(0))),
        (1, complete(t(1))),
        (2, TraceKind::RegionClose { region: r(1) }),
    ];
    let mut ok = base.clone();
    ok.extend([
        (3, TraceKind::ObligationCommit { obligation: o(1) }),
        (3, complete(t(2))),
        (4, TraceKind::RegionClose { region: r(0) }),
    ]);
    let result = oracle::region_quiescence(&trace(ok), &EndState::default());
    assert!(result.passed, "{result}");
    assert_eq!(result.tracked, 2);

    // The receiving region closing with it pending is a violation.
    let mut bad = base;
    bad.extend([
        (3, complete(t(2))),
        (4, TraceKind::RegionClose { region: r(0) }),
    ]);
    let result = oracle::region_quiescence(&trace(bad), &EndState::default());
    assert!(!result.passed, "{result}");
    assert!(
        result
            .violations
            .iter()
            .any(|v| v.contains("R0 closed") && v.contains("with obligation O1 pending")),
        "{result}"
    );
    assert!(
        !result.violations.iter().any(|v| v.contains("R1 closed")),
        "{result}"
    );
}

#[test]
fn obligation_leaks_fires_for_a_transfer_of_an_obligation_that_is_not_pending() {
    let events = trace(vec![
        (0, transfer(o(0), Some(t(0)), Some(t(1)), r(0), r(0))),
        (0, reserve(o(1), t(0), r(0))),
        (0, TraceKind::ObligationCommit { obligation: o(1) }),
        (1, transfer(o(1), Some(t(0)), Some(t(1)), r(0), r(0))),
    ]);
    let result = oracle::obligation_leaks(&events, &EndState::default());
    assert!(!result.passed, "{result}");
    for needle in [
        "O0 transferred but never reserved",
        "O1 transferred after it was resolved",
    ] {
        assert!(
            result.violations.iter().any(|v| v.contains(needle)),
            "{needle}: {result}"
        );
    }
}

#[test]
fn futurelock_follows_the_holder_through_transfers() {
    let after = Duration::from_secs(10);
    let poll = |task| TraceKind::Poll { task };
    // T1 reserves, hands O1 to T2; T2 then sits unpolled while T1 runs.
    let events = trace(vec![
        (
            0,
            TraceKind::Spawn {
                task: t(1),
                region: r(0),
            },
        ),
        (
            0,
            TraceKind::Spawn {
                task: t(2),
                region: r(0),
            },
        ),
        (0, reserve(o(1), t(1), r(0))),
        (0, transfer(o(1), Some(t(1)), Some(t(2)), r(0), r(0))),
        (0, poll(t(2))),
        (30, poll(t(1))),
    ]);
    let result = oracle::futurelock(&events, &EndState::default(), after);
    assert!(!result.passed, "{result}");
    assert!(
        result.violations.iter().all(|v| v.starts_with("T2 holds")),
        "{result}"
    );

    // Handed to its region (an owned permit): nobody is blamed.
    let events = trace(vec![
        (
            0,
            TraceKind::Spawn {
                task: t(1),
                region: r(0),
            },
        ),
        (
            0,
            TraceKind::Spawn {
                task: t(2),
                region: r(0),
            },
        ),
        (0, reserve(o(1), t(1), r(0))),
        (0, transfer(o(1), Some(t(1)), None, r(0), r(0))),
        (0, poll(t(1))),
        (30, poll(t(2))),
        (60, TraceKind::ObligationAbort { obligation: o(1) }),
    ]);
    let result = oracle::futurelock(&events, &EndState::default(), after);
    assert!(result.passed, "{result}");
}

#[test]
fn a_transfer_depends_on_both_holders_and_both_regions() {
    let kind = transfer(o(1), Some(t(1)), Some(t(2)), r(1), r(0));
    let footprint = kind.footprint().unwrap();
    assert_eq!(footprint.iter().count(), 5);
    for other in [
        TraceKind::Poll { task: t(1) },
        TraceKind::Poll { task: t(2) },
        TraceKind::RegionClose { region: r(1) },
        TraceKind::RegionClose { region: r(0) },
        TraceKind::ObligationCommit { obligation: o(1) },
    ] {
        assert!(!kind.independent_of(&other), "{other:?}");
    }
    assert!(kind.independent_of(&TraceKind::Poll { task: t(3) }));
    // To its own region: no repeats in the footprint.
    let rehome = transfer(o(1), Some(t(1)), None, r(0), r(0));
    assert_eq!(rehome.footprint().unwrap().iter().count(), 3);
}
