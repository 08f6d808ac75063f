//! Timer firing in the lab (rule TL3 in `src/kernel/timers.rs`): a firing
//! pass wakes its sleepers in `(deadline, insertion)` order, then processes
//! the kernel's own timers (here a budget deadline) in that order; the
//! whole trace is a function of the seed.

use std::time::Duration;

use asupersync::lab::{LabConfig, LabRuntime};
use asupersync::trace::{TraceEvent, TraceKind};
use asupersync::types::{CancelKind, TaskId};
use asupersync::{Budget, Cx, Time, time};

const AT: Time = Time::from_nanos(10_000_000);

/// A task whose budget deadline is `AT` waits an hour; three sleepers
/// sleep until `AT`. Returns the trace, its fingerprint, the deadline
/// task's id and the sleepers' ids.
fn run(seed: u64) -> (Vec<TraceEvent>, u64, TaskId, Vec<TaskId>) {
    let lab = LabRuntime::new(LabConfig::new(seed));
    let (bounded, sleepers) = lab.block_on(|cx: Cx| async move {
        let bounded = cx
            .spawn_with_budget(Budget::INFINITE.with_deadline(AT), |cx| async move {
                let r = time::sleep(&cx, Duration::from_secs(3600)).await;
                assert!(r.is_err(), "the budget deadline cancels the wait");
            })
            .expect("spawn");
        let sleepers: Vec<_> = (0..3)
            .map(|_| {
                cx.spawn(|cx| async move {
                    time::sleep_until(&cx, AT).await.expect("not cancelled");
                    assert!(cx.now() >= AT, "T1");
                })
                .expect("spawn")
            })
            .collect();
        let ids = (
            bounded.task_id(),
            sleepers.iter().map(|h| h.task_id()).collect::<Vec<_>>(),
        );
        assert!(
            bounded.join(&cx).await.is_err(),
            "cancelled by its deadline"
        );
        for h in sleepers {
            h.join(&cx).await.expect("slept");
        }
        ids
    });
    (lab.trace(), lab.trace_fingerprint(), bounded, sleepers)
}

#[test]
fn a_firing_pass_wakes_its_sleepers_before_it_processes_kernel_timers() {
    for seed in 0..20 {
        let (trace, _, bounded, sleepers) = run(seed);
        let fire = trace
            .iter()
            .position(|e| e.time == AT && matches!(e.kind, TraceKind::TimerFire { count: 4 }))
            .expect("one pass fires the deadline timer and the three sleeps");
        let after = &trace[fire..];
        let cancel = after
            .iter()
            .position(|e| {
                matches!(e.kind, TraceKind::CancelRequest { task, kind: CancelKind::Deadline }
                    if task == bounded)
            })
            .expect("the deadline timer cancels its task");
        for s in &sleepers {
            let woken = after
                .iter()
                .position(|e| matches!(e.kind, TraceKind::Wake { task } if task == *s))
                .expect("every sleeper is woken");
            assert!(
                woken < cancel,
                "seed {seed}: a sleeper was woken after the kernel timer"
            );
        }
    }
}

#[test]
fn timer_firing_is_a_function_of_the_seed() {
    for seed in 0..20 {
        let (ta, fa, ..) = run(seed);
        let (tb, fb, ..) = run(seed);
        assert_eq!(fa, fb, "seed {seed}");
        assert_eq!(ta, tb, "seed {seed}");
    }
}
