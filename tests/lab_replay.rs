//! Replay: a lab run replays from its seed and config, a recorded schedule
//! replays exactly, and the first divergence names the expected and the
//! actual event.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asupersync::lab::{
    LabConfig, LabRuntime, Recording, SchedulePolicy, check_replay, first_divergence, replay,
};
use asupersync::time::sleep;
use asupersync::trace::{TraceEvent, TraceKind};
use asupersync::{Cx, Time, yield_now};

/// Three tasks that interleave through yields and a sleep, and record
/// `label` in the trace.
async fn program(cx: Cx, label: &'static str) {
    let mut handles = Vec::new();
    for i in 0..3u64 {
        handles.push(
            cx.spawn(move |cx| async move {
                yield_now().await;
                cx.trace(format!("{label} {i}"));
                sleep(&cx, Duration::from_millis(i + 1)).await.unwrap();
                yield_now().await;
            })
            .unwrap(),
        );
    }
    for h in handles {
        h.join(&cx).await.unwrap();
    }
}

fn original(cx: Cx) -> impl std::future::Future<Output = ()> {
    program(cx, "original")
}

fn changed(cx: Cx) -> impl std::future::Future<Output = ()> {
    program(cx, "changed")
}

#[test]
fn a_run_replays_from_its_seed_and_config() {
    for seed in 0..20 {
        let recording = replay(LabConfig::new(seed), original).expect("deterministic");
        assert!(!recording.panicked());
        assert!(!recording.schedule().is_empty());
        assert_eq!(recording.config().seed(), seed);
    }
}

#[test]
fn a_recorded_schedule_replays_exactly() {
    for seed in 0..20 {
        let recording = Recording::record(LabConfig::new(seed), original);
        let rerun = check_replay(&recording, original).expect("replays");
        assert_eq!(rerun.schedule(), recording.schedule());
        assert_eq!(rerun.trace(), recording.trace());
        assert_eq!(rerun.fingerprint(), recording.fingerprint());
        assert_eq!(
            rerun.canonical_fingerprint(),
            recording.canonical_fingerprint()
        );
    }
}

#[test]
fn a_forced_schedule_overrides_a_different_seed_and_policy() {
    let recording = Recording::record(LabConfig::new(3), original);
    let lab = LabRuntime::new(
        LabConfig::new(99)
            .policy(SchedulePolicy::Fifo)
            .replay_schedule(recording.schedule().to_vec()),
    );
    lab.block_on(original);
    assert_eq!(lab.divergence(), None);
    assert_eq!(lab.schedule(), recording.schedule());
    assert_eq!(lab.trace_fingerprint(), recording.fingerprint());
}

#[test]
fn a_changed_program_reports_the_first_divergence_with_expected_and_actual_event() {
    let recording = Recording::record(LabConfig::new(7), original);
    let mismatch = check_replay(&recording, changed).expect_err("the program changed");
    let divergence = mismatch.trace_divergence.clone().expect("traces differ");
    let expected = divergence.expected.clone().expect("an expected event");
    let actual = divergence.actual.clone().expect("an actual event");
    assert!(
        matches!(&expected.kind, TraceKind::User { message, .. } if message.starts_with("original")),
        "{expected}"
    );
    assert!(
        matches!(&actual.kind, TraceKind::User { message, .. } if message.starts_with("changed")),
        "{actual}"
    );
    // It is the first difference: everything before it matches.
    assert_eq!(
        recording.trace()[..divergence.index],
        mismatch.rerun.trace()[..divergence.index]
    );
    assert_eq!(expected.seq as usize, divergence.index);
    assert_ne!(mismatch.expected_fingerprint, mismatch.actual_fingerprint);
    let shown = mismatch.to_string();
    assert!(
        shown.contains(&format!("event #{}", divergence.index)),
        "{shown}"
    );
    assert!(
        shown.contains("original") && shown.contains("changed"),
        "{shown}"
    );
}

#[test]
fn a_program_that_takes_a_different_path_reports_the_schedule_divergence() {
    // The rerun spawns one task fewer: the recorded schedule asks for a
    // task that is never runnable.
    let recording = Recording::record(LabConfig::new(1), original);
    let mismatch = check_replay(&recording, |cx: Cx| async move {
        let h = cx.spawn(|_cx| async {}).unwrap();
        h.join(&cx).await.unwrap();
    })
    .expect_err("different program");
    assert!(mismatch.schedule_divergence.is_some(), "{mismatch}");
    assert!(mismatch.trace_divergence.is_some(), "{mismatch}");
}

#[test]
fn a_failing_run_replays_its_panic() {
    let body = |cx: Cx| async move {
        let h = cx.spawn(|_cx| async { 1 }).unwrap();
        let v = h.join(&cx).await.unwrap();
        assert_eq!(v, 2, "wrong value");
    };
    let recording = Recording::record(LabConfig::new(4), body);
    assert!(recording.panicked());
    assert!(recording.panic_message().unwrap().contains("wrong value"));
    let rerun = check_replay(&recording, body).expect("the panic replays");
    assert_eq!(rerun.panic_message(), recording.panic_message());
}

#[test]
fn a_panic_that_disappears_is_a_mismatch() {
    let recording = Recording::record(LabConfig::new(4), |_cx: Cx| async move {
        panic!("boom");
    });
    let mismatch = check_replay(&recording, |_cx: Cx| async move {}).expect_err("no panic now");
    assert_eq!(mismatch.expected_panic.as_deref(), Some("boom"));
    assert_eq!(mismatch.actual_panic, None);
}

#[test]
fn a_deadlock_is_recorded_as_the_run_outcome() {
    let recording = Recording::record(LabConfig::new(0), |cx: Cx| async move {
        let h = cx.spawn(|_cx| std::future::pending::<()>()).unwrap();
        h.join(&cx).await.unwrap();
    });
    assert!(recording.panic_message().unwrap().contains("deadlock"));
}

#[test]
fn nondeterminism_outside_the_lab_is_caught_by_replay() {
    // A body whose behaviour depends on state that survives between runs.
    let runs = Arc::new(Mutex::new(0u32));
    let r = runs.clone();
    let result = replay(LabConfig::new(0), move |cx: Cx| {
        let r = r.clone();
        async move {
            let n = {
                let mut n = r.lock().unwrap();
                *n += 1;
                *n
            };
            cx.trace(format!("run {n}"));
        }
    });
    let mismatch = result.expect_err("the second run differs");
    let d = mismatch.trace_divergence.expect("traces differ");
    assert!(
        format!("{d}").contains("run 1") && format!("{d}").contains("run 2"),
        "{d}"
    );
}

fn ev(seq: u64, kind: TraceKind) -> TraceEvent {
    TraceEvent {
        seq,
        time: Time::ZERO,
        kind,
    }
}

fn user(message: &str) -> TraceKind {
    TraceKind::User {
        task: asupersync::types::TaskId::new_for_test(1, 0),
        message: message.into(),
    }
}

#[test]
fn identical_traces_have_no_divergence() {
    let a = vec![ev(0, user("a")), ev(1, user("b"))];
    assert_eq!(first_divergence(&a, &a.clone()), None);
}

#[test]
fn a_trace_that_ends_early_diverges_at_its_end() {
    let long = vec![ev(0, user("a")), ev(1, user("b"))];
    let short = vec![ev(0, user("a"))];
    let d = first_divergence(&long, &short).expect("differs");
    assert_eq!(d.index, 1);
    assert_eq!(d.expected, Some(long[1].clone()));
    assert_eq!(d.actual, None);
    assert!(d.to_string().contains("the end of the trace"));
    let d = first_divergence(&short, &long).expect("differs");
    assert_eq!(
        (d.index, d.expected.clone(), d.actual.clone()),
        (1, None, Some(long[1].clone()))
    );
}

#[test]
fn events_differing_only_in_time_diverge() {
    let a = vec![ev(0, user("a"))];
    let mut b = a.clone();
    b[0].time = Time::from_secs(1);
    assert_eq!(first_divergence(&a, &b).map(|d| d.index), Some(0));
}

#[test]
fn replaying_does_not_print_the_recorded_panic() {
    // Recording catches and silences the panic; the test harness would
    // fail on an uncaught one, so reaching the end is the check.
    let recording = catch_unwind(AssertUnwindSafe(|| {
        Recording::record(LabConfig::new(0), |_cx: Cx| async move { panic!("quiet") })
    }))
    .expect("record never unwinds");
    assert_eq!(recording.panic_message(), Some("quiet"));
}
