//! Cancellation injection: a program is rerun cancelling one task at each of
//! its await points, with the oracles checked every time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asupersync::lab::{InjectionConfig, LabConfig, LabRuntime, cancel_injection, oracle};
use asupersync::time::{sleep, timeout};
use asupersync::trace::TraceKind;
use asupersync::{Cx, yield_now};

/// Cancel-correct: every wait is cancel-aware or followed by a checkpoint,
/// permits are dropped (aborted) on the way out, and joins tolerate
/// cancelled children.
async fn cancel_correct(cx: Cx) {
    let mut workers = Vec::new();
    for id in 0..3u64 {
        workers.push(
            cx.spawn(move |cx| async move {
                for _round in 0..2 {
                    let permit = cx.reserve_obligation("send_permit").unwrap();
                    if sleep(&cx, Duration::from_millis(id + 1)).await.is_err() {
                        return; // the permit is dropped: aborted
                    }
                    permit.commit();
                    yield_now().await;
                    if cx.checkpoint().is_err() {
                        return;
                    }
                }
            })
            .unwrap(),
        );
    }
    let racer = cx
        .spawn(|cx| async move {
            // The inner sleep loses the race and is dropped.
            let _ = timeout(
                &cx,
                Duration::from_millis(2),
                sleep(&cx, Duration::from_secs(1)),
            )
            .await;
        })
        .unwrap();
    let outcome = cx
        .region(|cx| async move {
            cx.defer_sync(|| {}).unwrap();
            let child = cx
                .spawn(|cx| async move {
                    let _ = sleep(&cx, Duration::from_millis(2)).await;
                })
                .unwrap();
            let _ = child.join(&cx).await;
            Ok::<_, ()>(())
        })
        .await;
    assert!(outcome.is_ok());
    for w in workers {
        let _ = w.join(&cx).await;
    }
    let _ = racer.join(&cx).await;
}

#[test]
fn a_cancel_correct_program_passes_injection_at_every_await_point() {
    for seed in [1, 2, 3] {
        let report = cancel_injection(InjectionConfig::new(seed), cancel_correct);
        assert!(report.passed(), "{report}");
        assert!(report.points_found().len() >= 10, "{report}");
        assert_eq!(report.points_tried(), report.points_found());
        assert!(report.not_applied().is_empty(), "{report}");
    }
}

/// Forgets its permit when cancelled at its second await point (and only
/// there): a leaked obligation.
async fn forgets_permit_when_cancelled_mid_send(cx: Cx) {
    let sender = cx
        .spawn(|cx| async move {
            yield_now().await; // poll 1: nothing held yet
            if cx.checkpoint().is_err() {
                return;
            }
            let permit = cx.reserve_obligation("send_permit").unwrap();
            yield_now().await; // poll 2: holds the permit
            if cx.is_cancel_requested() {
                // BUG: bails out without acknowledging or aborting.
                std::mem::forget(permit);
                return;
            }
            permit.commit();
            yield_now().await; // poll 3: committed
        })
        .unwrap();
    let _ = sender.join(&cx).await;
}

#[test]
fn a_permit_forgotten_when_cancelled_at_one_await_point_is_caught_and_the_point_named() {
    let report = cancel_injection(
        InjectionConfig::new(7),
        forgets_permit_when_cancelled_mid_send,
    );
    assert!(!report.passed());
    assert_eq!(report.points_tried().len(), 3, "{report}");
    assert_eq!(report.failures().len(), 1, "{report}");
    let failure = &report.failures()[0];
    let point = failure.point.expect("an injected run");
    assert_eq!((point.spawn_index, point.poll), (1, 2), "{report}");
    let failed: Vec<&str> = failure.oracles.failures().iter().map(|r| r.name).collect();
    assert_eq!(failed, [oracle::OBLIGATION_LEAKS], "{report}");
    let text = report.to_string();
    assert!(
        text.contains(&format!("cancelled at {} after poll 2", point.task)),
        "{text}"
    );
    assert!(text.contains("leaked"), "{text}");
}

/// Takes a message off the queue and holds it across an await point; when
/// cancelled there, the message is lost.
async fn consumer_holding_a_message_across_an_await(cx: Cx) {
    let queue = Arc::new(Mutex::new(VecDeque::from([7u32])));
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let (q, d) = (queue.clone(), delivered.clone());
    let consumer = cx
        .spawn(move |cx| async move {
            yield_now().await; // poll 1
            if cx.checkpoint().is_err() {
                return;
            }
            let msg = q.lock().unwrap().pop_front();
            yield_now().await; // poll 2: BUG, the message is only in this frame
            if cx.checkpoint().is_err() {
                return; // the message is dropped with the frame
            }
            d.lock().unwrap().extend(msg);
            yield_now().await; // poll 3
        })
        .unwrap();
    let _ = consumer.join(&cx).await;
    let accounted = delivered.lock().unwrap().len() + queue.lock().unwrap().len();
    assert_eq!(
        accounted, 1,
        "lost message: 7 left the queue but was never delivered"
    );
}

#[test]
fn a_message_lost_when_cancelled_at_one_await_point_is_caught_as_a_panic_at_that_point() {
    let report = cancel_injection(
        InjectionConfig::new(8),
        consumer_holding_a_message_across_an_await,
    );
    assert_eq!(report.failures().len(), 1, "{report}");
    let failure = &report.failures()[0];
    let point = failure.point.expect("an injected run");
    assert_eq!((point.spawn_index, point.poll), (1, 2), "{report}");
    assert!(
        failure.panic.as_deref().unwrap().contains("lost message"),
        "{report}"
    );
    assert!(report.to_string().contains("panicked: "), "{report}");
}

#[test]
fn max_points_tries_a_seeded_sample_in_trace_order() {
    let config = InjectionConfig::new(5).max_points(4);
    let a = cancel_injection(config.clone(), cancel_correct);
    let b = cancel_injection(config, cancel_correct);
    assert!(a.passed(), "{a}");
    assert_eq!(a.points_tried().len(), 4);
    assert_eq!(a.points_tried(), b.points_tried());
    assert!(
        a.points_tried()
            .iter()
            .all(|p| a.points_found().contains(p))
    );
    assert!(
        a.points_tried()
            .windows(2)
            .all(|w| w[0].trace_index < w[1].trace_index)
    );
}

#[test]
fn a_failing_recording_is_reported_without_a_point() {
    let report = cancel_injection(InjectionConfig::new(9), |cx| async move {
        let h = cx.spawn(|_cx| async {
            panic!("broken even without cancellation");
        });
        h.unwrap().join(&cx).await.unwrap();
    });
    let baseline = report
        .failures()
        .iter()
        .find(|f| f.point.is_none())
        .expect("the recording failed");
    assert!(
        baseline
            .panic
            .as_deref()
            .unwrap()
            .contains("broken even without cancellation")
    );
    assert!(
        report.to_string().contains("without injection:"),
        "{report}"
    );
}

#[test]
fn a_program_that_is_not_deterministic_under_its_seed_is_reported_as_not_reproduced() {
    let runs = Arc::new(AtomicUsize::new(0));
    let report = cancel_injection(InjectionConfig::new(10), move |cx| {
        // Depends on something outside the seed: how often it ran before.
        let extra_yields = runs.fetch_add(1, Ordering::SeqCst);
        async move {
            for _ in 0..extra_yields {
                yield_now().await;
            }
            let h = cx.spawn(|_cx| async { yield_now().await }).unwrap();
            let _ = h.join(&cx).await;
        }
    });
    assert_eq!(report.points_tried().len(), 1, "{report}");
    assert_eq!(report.failures().len(), 1, "{report}");
    let failure = &report.failures()[0];
    assert!(failure.not_reproduced.is_some(), "{report}");
    assert!(report.to_string().contains("not reproduced: "), "{report}");
}

#[test]
fn cancel_at_requests_cancellation_right_after_the_kth_poll_returned_pending() {
    let body = |cx: Cx| async move {
        let h = cx
            .spawn(|cx| async move {
                for _ in 0..3 {
                    yield_now().await;
                }
                cx.checkpoint().is_err()
            })
            .unwrap();
        (h.task_id(), h.join(&cx).await)
    };
    let (task, joined) = LabRuntime::new(LabConfig::new(4)).block_on(body);
    assert!(!joined.unwrap(), "not cancelled without injection");

    let lab = LabRuntime::new(LabConfig::new(4).cancel_at(task, 2));
    let (_, joined) = lab.block_on(body);
    assert!(joined.unwrap_err().is_cancelled());
    let trace = lab.trace();
    let second_pending = trace
        .iter()
        .filter(|e| matches!(e.kind, TraceKind::Pending { task: t } if t == task))
        .nth(1)
        .unwrap()
        .seq as usize;
    let injected = trace
        .iter()
        .position(
            |e| matches!(e.kind, TraceKind::Chaos { task: t, what: "cancel_at" } if t == task),
        )
        .unwrap();
    assert!(injected > second_pending);
    let between = &trace[second_pending + 1..injected];
    assert!(
        between
            .iter()
            .all(|e| matches!(e.kind, TraceKind::Wake { .. })),
        "only wakes between the poll and the injection: {between:?}"
    );
    assert!(matches!(
        trace[injected + 1].kind,
        TraceKind::CancelRequest { task: t, .. } if t == task
    ));
    lab.oracle_report().assert_passed();
}
