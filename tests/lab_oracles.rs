//! The lab's oracles: for each one, a run where it fires and one where it
//! passes having checked something (`tracked > 0`). Violations the kernel
//! prevents are built by hand as traces and fed to the oracle functions.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use asupersync::Cx;
use asupersync::kernel::LeakPolicy;
use asupersync::lab::oracle::{self, EndState, LiveTask};
use asupersync::lab::{
    ChaosConfig, LabConfig, LabRuntime, OracleReport, OracleResult, SchedulePolicy,
};
use asupersync::time::{sleep, timeout};
use asupersync::trace::{CompletionKind, TraceKind};
use asupersync::types::{Budget, CancelKind, CancelReason, RegionId, TaskId, Time};

use support::traces::{o, r, t, trace};

// ----- helpers ------------------------------------------------------------

fn spawn(task: TaskId, region: RegionId) -> TraceKind {
    TraceKind::Spawn { task, region }
}

fn complete(task: TaskId) -> TraceKind {
    TraceKind::Complete {
        task,
        outcome: CompletionKind::Ok,
    }
}

fn create(region: RegionId, parent: Option<RegionId>) -> TraceKind {
    TraceKind::RegionCreate { region, parent }
}

fn close(region: RegionId) -> TraceKind {
    TraceKind::RegionClose { region }
}

/// Yields until `flag` is set (another task reached a point).
async fn wait_until(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        asupersync::yield_now().await;
    }
}

/// Runs `body` under `config` and returns the lab's oracle report.
fn report_of<F, Fut>(config: LabConfig, body: F) -> OracleReport
where
    F: FnOnce(Cx) -> Fut,
    Fut: Future,
{
    let lab = LabRuntime::new(config);
    lab.block_on(body);
    lab.oracle_report()
}

#[track_caller]
fn assert_passes_tracking(result: &OracleResult, at_least: usize) {
    assert!(result.passed, "{result}");
    assert!(
        result.tracked >= at_least,
        "{} tracked {} entities, expected at least {at_least}",
        result.name,
        result.tracked
    );
}

#[track_caller]
fn assert_fires(result: &OracleResult, needle: &str) {
    assert!(
        !result.passed,
        "{} should have fired: {result}",
        result.name
    );
    assert!(
        result.violations.iter().any(|v| v.contains(needle)),
        "{} fired, but no violation mentions {needle:?}: {result}",
        result.name
    );
}

#[track_caller]
fn only_failure(report: &OracleReport) -> &OracleResult {
    let failures = report.failures();
    assert_eq!(
        failures.len(),
        1,
        "expected exactly one oracle to fail:\n{report}"
    );
    failures[0]
}

// ----- the report ---------------------------------------------------------

#[test]
fn the_report_lists_every_oracle_with_its_verdict_and_tracked_count() {
    let report = report_of(LabConfig::new(1), |cx| async move {
        let h = cx.spawn(|_cx| async { 1 }).unwrap();
        h.join(&cx).await.unwrap();
    });
    assert!(report.passed(), "{report}");
    let names: Vec<&str> = report.results.iter().map(|r| r.name).collect();
    assert_eq!(names, oracle::ALL);
    let text = report.to_string();
    assert_eq!(text.lines().count(), oracle::ALL.len(), "{text}");
    assert!(text.contains("PASS no_orphan_tasks (tracked 2)"), "{text}");
}

#[test]
fn a_vacuous_pass_shows_as_tracked_zero() {
    let report = report_of(LabConfig::new(2), |_cx| async {});
    assert!(report.passed(), "{report}");
    let text = report.to_string();
    assert!(text.contains("PASS obligation_leaks (tracked 0)"), "{text}");
    assert!(text.contains("PASS finalizers_ran (tracked 0)"), "{text}");
    assert_eq!(report.result(oracle::FUTURELOCK).unwrap().tracked, 0);
}

#[test]
fn a_failing_report_names_the_oracle_and_its_violations() {
    let lab = LabRuntime::new(LabConfig::new(3));
    let _parked = lab.spawn(|_cx| std::future::pending::<()>());
    lab.run_until_idle();
    let report = lab.oracle_report();
    assert!(!report.passed());
    let text = report.to_string();
    assert!(text.contains("FAIL no_orphan_tasks (tracked 1)"), "{text}");
    assert!(text.contains("never completed"), "{text}");
    let panic = std::panic::catch_unwind(|| report.assert_passed()).unwrap_err();
    let msg = panic.downcast_ref::<String>().unwrap();
    assert!(msg.contains("lab oracles failed"), "{msg}");
}

/// Uses every feature the oracles watch and tolerates cancellation
/// anywhere (chaos cancels tasks and exhausts budgets at random).
async fn tolerant_program(cx: Cx) {
    cx.defer_sync(|| {}).unwrap();
    let mut handles = Vec::new();
    for id in 0..4u64 {
        handles.push(
            cx.spawn(move |cx| async move {
                for _ in 0..3 {
                    let permit = cx.reserve_obligation("send_permit").unwrap();
                    if sleep(&cx, Duration::from_millis(id + 1)).await.is_err() {
                        return;
                    }
                    permit.commit();
                }
            })
            .unwrap(),
        );
    }
    let loser = cx
        .spawn(|cx| async move {
            let _ = sleep(&cx, Duration::from_secs(5)).await;
        })
        .unwrap();
    let budget = Budget::INFINITE.with_deadline(Time::from_secs(30));
    let _ = cx
        .region_with_budget(budget, |cx| async move {
            cx.defer_async(async {}).unwrap();
            let inner = cx.spawn(|cx| async move {
                let _ = timeout(
                    &cx,
                    Duration::from_millis(3),
                    sleep(&cx, Duration::from_secs(1)),
                )
                .await;
            });
            let _ = cx
                .region(|cx| async move {
                    let _ = cx.spawn(|cx| async move { cx.checkpoint() });
                    Ok::<_, ()>(())
                })
                .await;
            if let Ok(h) = inner {
                let _ = h.join(&cx).await;
            }
            Ok::<_, ()>(())
        })
        .await;
    loser.abort_with(CancelReason::race_lost());
    let _ = loser.join(&cx).await;
    for h in handles {
        let _ = h.join(&cx).await;
    }
}

#[test]
fn every_oracle_passes_a_correct_program_under_many_seeds_policies_and_chaos() {
    for seed in 0..30 {
        let configs = [
            LabConfig::new(seed),
            LabConfig::new(seed).policy(SchedulePolicy::Pct {
                depth: 3,
                expected_steps: 200,
            }),
            LabConfig::new(seed).workers(3),
            LabConfig::new(seed).chaos(ChaosConfig::heavy()),
        ];
        for config in configs {
            let described = format!("{config:?}");
            let report = report_of(config, tolerant_program);
            assert!(report.passed(), "{described}:\n{report}");
            for name in [
                oracle::NO_ORPHAN_TASKS,
                oracle::REGION_QUIESCENCE,
                oracle::REGION_TREE,
                oracle::DEADLINE_MONOTONICITY,
            ] {
                assert!(report.result(name).unwrap().tracked > 0, "{report}");
            }
        }
    }
}

// ----- 1. no_orphan_tasks -------------------------------------------------

#[test]
fn no_orphan_tasks_passes_when_every_spawned_task_completes_joined_or_not() {
    let report = report_of(LabConfig::new(10), |cx| async move {
        let joined = cx.spawn(|_cx| async { 1 }).unwrap();
        let _detached = cx.spawn(|cx| async move {
            sleep(&cx, Duration::from_millis(5)).await.unwrap();
        });
        joined.join(&cx).await.unwrap();
    });
    assert_passes_tracking(report.result(oracle::NO_ORPHAN_TASKS).unwrap(), 3);
}

#[test]
fn no_orphan_tasks_fires_for_a_task_still_parked_when_the_run_stops() {
    let lab = LabRuntime::new(LabConfig::new(11));
    let parked = lab.spawn(|_cx| std::future::pending::<()>());
    lab.run_until_idle();
    let report = lab.oracle_report();
    let result = report.result(oracle::NO_ORPHAN_TASKS).unwrap();
    assert_fires(result, &format!("{} in", parked.task_id()));
    assert_fires(result, "never completed");
}

#[test]
fn no_orphan_tasks_fires_when_a_region_closes_before_its_task_completes() {
    let events = trace(vec![
        (0, create(r(0), None)),
        (0, spawn(t(0), r(0))),
        (0, spawn(t(1), r(0))),
        (0, complete(t(0))),
        (1, close(r(0))),
        (2, complete(t(1))),
    ]);
    let result = oracle::no_orphan_tasks(&events, &EndState::default());
    assert_fires(
        &result,
        "T1 (spawned at #2) was still running when its region R0 closed",
    );
    assert_eq!(result.tracked, 2);
}

// ----- 2. obligation_leaks ------------------------------------------------

#[test]
fn obligation_leaks_passes_when_every_reservation_is_committed_or_aborted() {
    let report = report_of(LabConfig::new(20), |cx| async move {
        cx.reserve_obligation("send_permit").unwrap().commit();
        cx.reserve_obligation("send_permit").unwrap().abort();
        let dropped = cx.reserve_obligation("lease").unwrap();
        drop(dropped);
        let started = Arc::new(AtomicBool::new(false));
        let flag = started.clone();
        let h = cx
            .spawn(|cx| async move {
                let _held = cx.reserve_obligation("reply").unwrap();
                flag.store(true, Ordering::SeqCst);
                std::future::pending::<()>().await;
            })
            .unwrap();
        wait_until(&started).await;
        h.abort(); // a cancelled holder's obligations are aborted, not leaked
        assert!(h.join(&cx).await.is_err());
    });
    assert_passes_tracking(report.result(oracle::OBLIGATION_LEAKS).unwrap(), 4);
}

#[test]
fn obligation_leaks_fires_for_a_forgotten_permit() {
    let config = LabConfig::new(21).obligation_leak_policy(LeakPolicy::Log);
    let report = report_of(config, |cx| async move {
        let h = cx
            .spawn(|cx| async move {
                std::mem::forget(cx.reserve_obligation("send_permit").unwrap());
            })
            .unwrap();
        h.join(&cx).await.unwrap();
    });
    let result = only_failure(&report);
    assert_eq!(result.name, oracle::OBLIGATION_LEAKS);
    assert_fires(result, "leaked");
}

#[test]
fn obligation_leaks_fires_for_a_double_resolution_and_an_unresolved_reservation() {
    let events = trace(vec![
        (
            0,
            TraceKind::ObligationReserve {
                obligation: o(0),
                task: t(0),
                region: r(0),
            },
        ),
        (0, TraceKind::ObligationCommit { obligation: o(0) }),
        (0, TraceKind::ObligationAbort { obligation: o(0) }),
        (
            1,
            TraceKind::ObligationReserve {
                obligation: o(1),
                task: t(0),
                region: r(0),
            },
        ),
    ]);
    let result = oracle::obligation_leaks(&events, &EndState::default());
    assert_fires(&result, "O0 aborted after it was already resolved");
    assert_fires(&result, "O1 reserved by T0 in R0 at #3 was never resolved");
    assert_eq!(result.tracked, 2);
}

// ----- 3. region_quiescence -----------------------------------------------

#[test]
fn region_quiescence_passes_for_nested_regions_with_tasks() {
    let report = report_of(LabConfig::new(30), |cx| async move {
        let outcome = cx
            .region(|cx| async move {
                let _detached = cx
                    .spawn(|cx| async move {
                        sleep(&cx, Duration::from_millis(3)).await.unwrap();
                    })
                    .unwrap();
                let inner = cx
                    .region(|cx| async move {
                        let _detached = cx.spawn(|_cx| async {}).unwrap();
                        Ok::<_, ()>(())
                    })
                    .await;
                assert!(inner.is_ok());
                Ok::<_, ()>(())
            })
            .await;
        assert!(outcome.is_ok());
    });
    // The root region and the two nested ones closed, each quiescent.
    assert_passes_tracking(report.result(oracle::REGION_QUIESCENCE).unwrap(), 3);
}

#[test]
fn region_quiescence_fires_when_a_region_closes_with_live_work() {
    let events = trace(vec![
        (0, create(r(0), None)),
        (0, create(r(1), Some(r(0)))),
        (0, spawn(t(0), r(0))),
        (
            0,
            TraceKind::ObligationReserve {
                obligation: o(0),
                task: t(0),
                region: r(0),
            },
        ),
        (1, close(r(0))),
    ]);
    let result = oracle::region_quiescence(&events, &EndState::default());
    assert_fires(
        &result,
        "R0 closed (#4 @1s) while its task T0 had not completed",
    );
    assert_fires(&result, "while its child region R1 was open");
    assert_fires(&result, "with obligation O0 pending");
    assert_fires(&result, "R1 never closed");
}

// ----- 4. region_tree -----------------------------------------------------

#[test]
fn region_tree_passes_for_a_tree_of_regions() {
    let report = report_of(LabConfig::new(40), |cx| async move {
        for _ in 0..2 {
            let outcome = cx
                .region(|cx| async move {
                    let inner = cx.region(|_cx| async { Ok::<_, ()>(()) }).await;
                    assert!(inner.is_ok());
                    Ok::<_, ()>(())
                })
                .await;
            assert!(outcome.is_ok());
        }
    });
    assert_passes_tracking(report.result(oracle::REGION_TREE).unwrap(), 5);
}

#[test]
fn region_tree_fires_for_a_missing_parent_and_a_parent_closed_before_its_child() {
    let events = trace(vec![
        (0, create(r(0), None)),
        (0, create(r(1), Some(r(0)))),
        (0, create(r(2), Some(r(9)))),
        (1, close(r(0))),
        (1, spawn(t(0), r(0))),
        (2, close(r(1))),
    ]);
    let result = oracle::region_tree(&events, &EndState::default());
    assert_fires(
        &result,
        "R2 created (#2 @0s) under R9, which does not exist yet",
    );
    assert_fires(&result, "R0 closed (#3 @1s) before its child region R1");
    assert_fires(&result, "T0 spawned (#4 @1s) into R0, which is closed");
    assert_eq!(result.tracked, 3);
}

// ----- 5. cancel_protocol -------------------------------------------------

#[test]
fn cancel_protocol_passes_when_cancelled_tasks_acknowledge_and_complete() {
    let report = report_of(LabConfig::new(50), |cx| async move {
        let sleeper = cx
            .spawn(|cx| async move {
                // Acknowledges by returning Err from the cancel-aware sleep.
                let _ = sleep(&cx, Duration::from_secs(60)).await;
            })
            .unwrap();
        let never_started = cx.spawn(|_cx| async {}).unwrap();
        never_started.abort_with(CancelReason::shutdown());
        asupersync::yield_now().await;
        sleeper.abort();
        sleeper.abort_with(CancelReason::shutdown()); // strengthens
        assert!(sleeper.join(&cx).await.unwrap_err().is_cancelled());
        assert!(never_started.join(&cx).await.is_err());
    });
    assert_passes_tracking(report.result(oracle::CANCEL_PROTOCOL).unwrap(), 2);
}

#[test]
fn cancel_protocol_fires_for_an_acknowledgement_without_request_and_a_weakened_request() {
    let events = trace(vec![
        (0, spawn(t(1), r(0))),
        (0, TraceKind::Poll { task: t(1) }),
        (
            0,
            TraceKind::CancelAck {
                task: t(1),
                kind: CancelKind::User,
            },
        ),
        (0, spawn(t(2), r(0))),
        (
            0,
            TraceKind::CancelRequest {
                task: t(2),
                kind: CancelKind::Shutdown,
            },
        ),
        (
            1,
            TraceKind::CancelRequest {
                task: t(2),
                kind: CancelKind::User,
            },
        ),
        (1, TraceKind::Poll { task: t(2) }),
        (
            1,
            TraceKind::Complete {
                task: t(2),
                outcome: CompletionKind::Cancelled(CancelKind::User),
            },
        ),
    ]);
    let result = oracle::cancel_protocol(&events, &EndState::default());
    assert_fires(&result, "T1: acknowledged User without a request");
    assert_fires(&result, "T2: cancellation weakened from Shutdown to User");
    assert_fires(
        &result,
        "T2: completed Cancelled(User) without acknowledging",
    );
    assert_eq!(result.tracked, 2);
}

// ----- 6. race_losers_drained ---------------------------------------------

#[test]
fn race_losers_drained_passes_when_the_loser_is_cancelled_and_joined() {
    let report = report_of(LabConfig::new(60), |cx| async move {
        let fast = cx
            .spawn(|cx| async move { sleep(&cx, Duration::from_millis(1)).await.map(|_| "fast") })
            .unwrap();
        let slow = cx
            .spawn(|cx| async move { sleep(&cx, Duration::from_secs(10)).await.map(|_| "slow") })
            .unwrap();
        assert_eq!(fast.join(&cx).await.unwrap().unwrap(), "fast");
        slow.abort_with(CancelReason::race_lost());
        assert!(slow.join(&cx).await.unwrap_err().is_cancelled());
        // A timeout is a race too: its loser is the inner future.
        let lost = timeout(
            &cx,
            Duration::from_millis(1),
            sleep(&cx, Duration::from_secs(1)),
        )
        .await;
        assert!(lost.is_err());
    });
    assert_passes_tracking(report.result(oracle::RACE_LOSERS_DRAINED).unwrap(), 1);
}

#[test]
fn race_losers_drained_fires_for_a_loser_that_ignores_cancellation() {
    let lab = LabRuntime::new(LabConfig::new(61));
    let racer = lab.spawn(|cx| async move {
        let started = Arc::new(AtomicBool::new(false));
        let flag = started.clone();
        let loser = cx
            .spawn(|_cx| async move {
                flag.store(true, Ordering::SeqCst);
                std::future::pending::<()>().await // never looks at its Cx
            })
            .unwrap();
        wait_until(&started).await;
        loser.abort_with(CancelReason::race_lost());
        loser.task_id() // returns without draining the loser
    });
    lab.run_until_idle(); // time does not move: the grace period never ends
    assert!(racer.is_finished());
    let report = lab.oracle_report();
    let result = report.result(oracle::RACE_LOSERS_DRAINED).unwrap();
    assert_fires(
        result,
        "was never drained: still running at the end of the run",
    );
    assert_eq!(result.tracked, 1);
}

#[test]
fn race_losers_drained_fires_when_a_region_closes_before_its_loser_completes() {
    let events = trace(vec![
        (0, create(r(0), None)),
        (0, spawn(t(0), r(0))),
        (0, spawn(t(1), r(0))),
        (0, TraceKind::Poll { task: t(0) }),
        (
            0,
            TraceKind::CancelRequest {
                task: t(1),
                kind: CancelKind::RaceLost,
            },
        ),
        (0, complete(t(0))),
        (1, close(r(0))),
    ]);
    let result = oracle::race_losers_drained(&events, &EndState::default());
    assert_fires(
        &result,
        "T1 (cancelled at #4 while T0 ran) was not drained before its region R0 closed",
    );
}

// ----- 7. finalizers_ran --------------------------------------------------

#[test]
fn finalizers_ran_passes_when_every_deferred_finalizer_runs() {
    let report = report_of(LabConfig::new(70), |cx| async move {
        cx.defer_sync(|| {}).unwrap();
        let outcome = cx
            .region(|cx| async move {
                cx.defer_sync(|| {}).unwrap();
                cx.defer_async(async {}).unwrap();
                Ok::<_, ()>(())
            })
            .await;
        assert!(outcome.is_ok());
    });
    assert_passes_tracking(report.result(oracle::FINALIZERS_RAN).unwrap(), 3);
}

#[test]
fn finalizers_ran_fires_for_a_finalizer_whose_region_never_closed() {
    let lab = LabRuntime::new(LabConfig::new(71));
    let _parked = lab.spawn(|cx| async move {
        cx.defer_sync(|| {}).unwrap();
        std::future::pending::<()>().await;
    });
    lab.run_until_idle();
    let report = lab.oracle_report();
    let result = report.result(oracle::FINALIZERS_RAN).unwrap();
    assert_fires(result, "never ran (the region never closed)");
}

#[test]
fn finalizers_ran_fires_for_a_finalizer_run_twice_or_skipped() {
    let events = trace(vec![
        (0, create(r(0), None)),
        (0, create(r(1), Some(r(0)))),
        (0, TraceKind::FinalizerRegister { region: r(0) }),
        (0, TraceKind::FinalizerRun { region: r(0) }),
        (0, TraceKind::FinalizerRun { region: r(0) }),
        (0, TraceKind::FinalizerRegister { region: r(1) }),
        (1, close(r(1))),
        (1, close(r(0))),
    ]);
    let result = oracle::finalizers_ran(&events, &EndState::default());
    assert_fires(&result, "R0 ran finalizer #2 but only 1 were registered");
    assert_fires(
        &result,
        "R1 closed (#6 @1s) with 1 of its 1 finalizers not run",
    );
    assert_eq!(result.tracked, 2);
}

// ----- 8. deadline_monotonicity -------------------------------------------

#[test]
fn deadline_monotonicity_passes_when_children_get_tighter_deadlines() {
    let report = report_of(LabConfig::new(80), |cx| async move {
        let region_budget = Budget::INFINITE.with_deadline(Time::from_secs(100));
        let outcome = cx
            .region_with_budget(region_budget, |cx| async move {
                // Asks for a later deadline: met with the region's, so 100s.
                let late = Budget::INFINITE.with_deadline(Time::from_secs(500));
                let h = cx
                    .spawn_with_budget(late, |cx| async move { cx.budget() })
                    .unwrap();
                let tighter = Budget::INFINITE.with_deadline(Time::from_secs(10));
                let g = cx.spawn_with_budget(tighter, |_cx| async {}).unwrap();
                g.join(&cx).await.unwrap();
                Ok::<_, ()>(h.join(&cx).await.unwrap())
            })
            .await;
        assert_eq!(
            outcome.into_result().unwrap().deadline,
            Some(Time::from_secs(100))
        );
    });
    // The nested region, its two tasks, and the root task.
    assert_passes_tracking(report.result(oracle::DEADLINE_MONOTONICITY).unwrap(), 4);
}

#[test]
fn deadline_monotonicity_fires_for_a_child_deadline_past_its_parent() {
    let at = |secs| Budget::INFINITE.with_deadline(Time::from_secs(secs));
    let events = trace(vec![
        (0, create(r(0), None)),
        (
            0,
            TraceKind::RegionBudget {
                region: r(0),
                budget: at(10),
            },
        ),
        (0, create(r(1), Some(r(0)))),
        (
            0,
            TraceKind::RegionBudget {
                region: r(1),
                budget: Budget::INFINITE,
            },
        ),
        (0, spawn(t(0), r(0))),
        (
            0,
            TraceKind::TaskBudget {
                task: t(0),
                budget: at(20),
            },
        ),
        (0, spawn(t(1), r(0))),
        (
            0,
            TraceKind::TaskBudget {
                task: t(1),
                budget: at(5),
            },
        ),
    ]);
    let result = oracle::deadline_monotonicity(&events, &EndState::default());
    assert_fires(
        &result,
        "R1's deadline none is later than its parent R0's 10s",
    );
    assert_fires(
        &result,
        "T0's deadline 20s is later than its region R0's 10s",
    );
    assert_eq!(result.violations.len(), 2, "{result}");
    assert_eq!(result.tracked, 3);
}

// ----- 9. futurelock ------------------------------------------------------

/// A holder parked on a long sleep while a ticker keeps running.
async fn holder_and_ticker(cx: Cx, park: Duration) -> TaskId {
    let holder = cx
        .spawn(move |cx| async move {
            let permit = cx.reserve_obligation("send_permit").unwrap();
            sleep(&cx, park).await.unwrap();
            permit.commit();
        })
        .unwrap();
    let ticker = cx
        .spawn(|cx| async move {
            for _ in 0..30 {
                sleep(&cx, Duration::from_secs(1)).await.unwrap();
            }
        })
        .unwrap();
    let id = holder.task_id();
    holder.join(&cx).await.unwrap();
    ticker.join(&cx).await.unwrap();
    id
}

#[test]
fn futurelock_fires_for_a_holder_parked_on_a_long_sleep_while_others_run() {
    let lab = LabRuntime::new(LabConfig::new(90).futurelock_after(Duration::from_secs(10)));
    let holder = lab.block_on(|cx| holder_and_ticker(cx, Duration::from_secs(3600)));
    let report = lab.oracle_report();
    let result = only_failure(&report);
    assert_eq!(result.name, oracle::FUTURELOCK);
    assert_fires(result, &format!("{holder} holds 1 obligation(s)"));
    assert_fires(result, "was not polled for 11s");
}

#[test]
fn futurelock_passes_for_a_holder_that_keeps_being_polled() {
    let lab = LabRuntime::new(LabConfig::new(91).futurelock_after(Duration::from_secs(10)));
    lab.block_on(|cx| holder_and_ticker(cx, Duration::from_secs(5)));
    let report = lab.oracle_report();
    assert!(report.passed(), "{report}");
    assert_passes_tracking(report.result(oracle::FUTURELOCK).unwrap(), 1);
}

#[test]
fn futurelock_fires_at_the_end_of_a_run_for_a_holder_never_polled_again() {
    let lab = LabRuntime::new(LabConfig::new(92).futurelock_after(Duration::from_secs(10)));
    let holder = lab.spawn(|cx| async move {
        let _permit = cx.reserve_obligation("send_permit").unwrap();
        std::future::pending::<()>().await;
    });
    lab.run_until_idle();
    lab.advance_time(Duration::from_secs(30));
    let report = lab.oracle_report();
    let result = report.result(oracle::FUTURELOCK).unwrap();
    assert_fires(
        result,
        &format!("{holder} holds 1 obligation(s)", holder = holder.task_id()),
    );
    assert_fires(result, "when the run ended at 30s");
}

#[test]
fn futurelock_checks_a_hand_built_trace_with_the_end_state() {
    let events = trace(vec![
        (0, spawn(t(0), r(0))),
        (0, spawn(t(1), r(0))),
        (0, TraceKind::Poll { task: t(0) }),
        (
            0,
            TraceKind::ObligationReserve {
                obligation: o(0),
                task: t(0),
                region: r(0),
            },
        ),
        (0, TraceKind::Pending { task: t(0) }),
        (5, TraceKind::Poll { task: t(1) }),
        (5, TraceKind::Pending { task: t(1) }),
    ]);
    let early = oracle::futurelock(&events, &EndState::default(), Duration::from_secs(10));
    assert!(early.passed, "{early}");
    let end = EndState {
        now: Time::from_secs(60),
        live_tasks: vec![LiveTask {
            id: t(0),
            region: r(0),
            state: asupersync::kernel::TaskState::Running,
            obligations: 1,
            last_polled: Time::ZERO,
        }],
        ..EndState::default()
    };
    let late = oracle::futurelock(&events, &end, Duration::from_secs(10));
    assert_fires(
        &late,
        "T0 holds 1 obligation(s) and had not been polled for 60s",
    );
    assert_eq!(late.tracked, 1);
}
