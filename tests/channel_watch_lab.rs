//! `channel::watch` in the lab: cancellation injected at every await point
//! of every task (`changed`, `closed`, the cancel-aware stream, yields), and
//! random interleavings, each checked against the invariants:
//!
//! - each receiver observes strictly increasing values (coalesced, never
//!   the same version twice);
//! - the final value is observed: by every receiver that ran to the end,
//!   and, for a receiver cancelled mid-wait, after it is handed back (a
//!   cancelled `changed` consumed nothing);
//! - `closed` completes once every receiver is gone; the oracles pass.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use asupersync::channel::watch::{self, RecvError};
use asupersync::lab::{
    ExploreConfig, ExploreMode, InjectionConfig, LabConfig, LabRuntime, cancel_injection, explore,
};
use asupersync::{Cx, yield_now};
use futures_core::Stream;
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
struct Params {
    last: u64,
    receivers: usize,
    /// Bit i: receiver i yields after every observation.
    slow: u32,
    /// Send with `send_modify` (else `send`).
    modify: bool,
}

type Seen = Arc<Mutex<Vec<u64>>>;
type Back = Arc<Mutex<Option<watch::Receiver<u64>>>>;

async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    poll_fn(|task_cx| Pin::new(&mut *s).poll_next(task_cx)).await
}

/// Watches until it sees `last` or the channel closes; hands the receiver
/// back if cancelled. Every third receiver uses the cancel-aware stream.
async fn watch_until(
    cx: Cx,
    mut rx: watch::Receiver<u64>,
    p: Params,
    i: usize,
    seen: Seen,
    back: Back,
) {
    let slow = p.slow & (1 << i) != 0;
    if i % 3 == 2 {
        let cancelled = {
            let mut s = rx.stream(&cx);
            while let Some(v) = next(&mut s).await {
                seen.lock().unwrap().push(v);
                if v == p.last {
                    return;
                }
                if slow {
                    yield_now().await;
                }
            }
            s.cancelled().is_some()
        };
        if cancelled {
            *back.lock().unwrap() = Some(rx);
        }
        return;
    }
    loop {
        match rx.changed(&cx).await {
            Ok(()) => {
                let v = *rx.borrow_and_update();
                seen.lock().unwrap().push(v);
                if v == p.last {
                    return; // dropping the receiver
                }
            }
            Err(RecvError::Closed) => return,
            Err(RecvError::Cancelled(_)) => {
                *back.lock().unwrap() = Some(rx);
                return;
            }
        }
        if slow {
            yield_now().await;
            if cx.checkpoint().is_err() {
                *back.lock().unwrap() = Some(rx);
                return;
            }
        }
    }
}

async fn program(cx: Cx, p: Params) {
    let (tx, rx) = watch::channel(0u64);
    let final_value = Arc::new(Mutex::new(0u64));
    let mut watchers = Vec::new();
    let mut logs = Vec::new();
    let rxs: Vec<_> = (0..p.receivers).map(|_| rx.clone()).collect();
    drop(rx);
    for (i, rx) in rxs.into_iter().enumerate() {
        let (seen, back) = (Seen::default(), Back::default());
        logs.push((seen.clone(), back.clone()));
        watchers.push(
            cx.spawn(move |cx| watch_until(cx, rx, p, i, seen, back))
                .unwrap(),
        );
    }
    let fv = final_value.clone();
    let sender = cx
        .spawn(move |cx| async move {
            for v in 1..=p.last {
                if p.modify {
                    tx.send_modify(|x| *x = v);
                } else if tx.send(v).is_err() {
                    break; // every receiver is gone
                }
                *fv.lock().unwrap() = v;
                yield_now().await;
                if cx.checkpoint().is_err() {
                    return; // drops the sender: receivers see Closed
                }
            }
            // Lingers until every receiver is gone (W3).
            let _ = tx.closed(&cx).await;
        })
        .unwrap();
    for h in watchers {
        let _ = h.join(&cx).await;
    }
    // Receivers cancelled mid-wait are handed back: they resume exactly
    // where they were and still reach the final value.
    for (i, (seen, back)) in logs.iter().enumerate() {
        let rx = back.lock().unwrap().take();
        if let Some(mut rx) = rx {
            loop {
                match rx.changed(&cx).await {
                    Ok(()) => {
                        let v = *rx.borrow_and_update();
                        seen.lock().unwrap().push(v);
                        if v == p.last {
                            break;
                        }
                    }
                    Err(RecvError::Closed) => break,
                    Err(e) => panic!("receiver {i}: {e:?}"),
                }
            }
        }
        // Every receiver is gone now (joined or dropped above).
    }
    let _ = sender.join(&cx).await;
    let last = *final_value.lock().unwrap();
    for (i, (seen, _)) in logs.iter().enumerate() {
        let seen = seen.lock().unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "receiver {i}: not strictly increasing: {seen:?}"
        );
        // A receiver cancelled before its first poll never ran and
        // dropped its receiver; any other one ends at the final value.
        let ran = !seen.is_empty() || last == 0;
        if ran {
            assert_eq!(
                seen.last().copied().unwrap_or(0),
                last,
                "receiver {i} missed the final value: {seen:?}"
            );
        }
    }
}

const BASE: Params = Params {
    last: 6,
    receivers: 3,
    slow: 0b011,
    modify: false,
};

#[test]
fn cancelling_any_task_at_any_await_point_never_hides_the_final_value() {
    for seed in 0..4 {
        let report = cancel_injection(InjectionConfig::new(seed), |cx| program(cx, BASE));
        assert!(report.passed(), "{report}");
        assert!(report.points_found().len() >= 10, "{report}");
        assert_eq!(report.points_tried(), report.points_found());
    }
    let modify = Params {
        modify: true,
        slow: 0b110,
        ..BASE
    };
    for seed in 4..6 {
        let report = cancel_injection(InjectionConfig::new(seed), move |cx| program(cx, modify));
        assert!(report.passed(), "{report}");
    }
}

#[test]
fn random_and_pct_schedules_keep_observations_increasing_and_final() {
    explore(
        ExploreConfig::new().schedules(150).mode(ExploreMode::Mixed),
        |cx| program(cx, BASE),
    )
    .assert_ok();
}

fn params() -> impl Strategy<Value = Params> {
    (1..12u64, 1..5usize, any::<u32>(), any::<bool>()).prop_map(
        |(last, receivers, slow, modify)| Params {
            last,
            receivers,
            slow,
            modify,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_interleavings_keep_the_invariants(seed in any::<u64>(), p in params()) {
        let lab = LabRuntime::new(LabConfig::new(seed));
        lab.block_on(|cx| program(cx, p));
        lab.oracle_report().assert_passed();
    }
}
