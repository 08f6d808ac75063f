//! `channel::broadcast` in the lab: cancellation injected at every await
//! point of every task, and random interleavings (seeded schedules, PCT),
//! each checked against the invariants:
//!
//! - every receiver sees a gap-free run of sequence numbers, except for
//!   exactly the gaps reported by `Lagged(n)` (nothing lost, nothing
//!   duplicated, nothing reported twice): received + lost == sent;
//! - a cancelled `recv` consumes nothing: the receiver, handed back and
//!   drained, continues exactly where the cancelled call stood;
//! - the other receivers are not disturbed, and every run ends with
//!   `Closed` once all senders are gone; the lab's oracles pass.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use asupersync::channel::broadcast::{self, RecvError, TryRecvError};
use asupersync::lab::{
    ExploreConfig, ExploreMode, InjectionConfig, LabConfig, LabRuntime, cancel_injection, explore,
};
use asupersync::{Cx, yield_now};
use futures_core::Stream;
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
struct Params {
    capacity: usize,
    senders: u64,
    per_sender: u64,
    receivers: usize,
    /// Bit i: receiver i yields after every item (falls behind).
    slow: u32,
    /// A receiver that subscribes while the senders run.
    late: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Value(u64),
    Lagged(u64),
    Closed,
    Cancelled,
}

type Events = Arc<Mutex<Vec<Event>>>;
type Back = Arc<Mutex<Option<broadcast::Receiver<u64>>>>;

fn push(log: &Events, e: Event) {
    log.lock().unwrap().push(e);
}

/// Checks one receiver's log: starting at `start`, values are consecutive
/// except for reported lags, and the log ends with `Closed` at `total`.
fn check(events: &[Event], start: u64, total: u64, who: &str) {
    let mut cur = start;
    for (i, e) in events.iter().enumerate() {
        match *e {
            Event::Value(v) => {
                assert_eq!(
                    v, cur,
                    "{who}: expected {cur}, got {v} (lost or duplicated): {events:?}"
                );
                cur += 1;
            }
            Event::Lagged(n) => {
                assert!(n > 0, "{who}: empty lag: {events:?}");
                cur += n;
            }
            Event::Cancelled => {}
            Event::Closed => assert_eq!(i, events.len() - 1, "{who}: closed twice: {events:?}"),
        }
    }
    assert_eq!(
        events.last(),
        Some(&Event::Closed),
        "{who}: never closed: {events:?}"
    );
    assert_eq!(
        cur, total,
        "{who}: received + lost != sent ({start}..{total}): {events:?}"
    );
}

async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    poll_fn(|task_cx| Pin::new(&mut *s).poll_next(task_cx)).await
}

/// One receiver task: `recv` (or, for every third one, the cancel-aware
/// stream) until closed or cancelled; when cancelled, hands the receiver
/// back so the root can drain it.
async fn receive(
    cx: Cx,
    mut rx: broadcast::Receiver<u64>,
    slow: bool,
    stream: bool,
    log: Events,
    back: Back,
) {
    if stream {
        let mut s = rx.stream(&cx);
        while let Some(item) = next(&mut s).await {
            push(
                &log,
                match item {
                    Ok(v) => Event::Value(v),
                    Err(broadcast::Lagged(n)) => Event::Lagged(n),
                },
            );
            if slow {
                yield_now().await;
            }
        }
        let cancelled = s.cancelled().is_some();
        drop(s);
        if cancelled {
            push(&log, Event::Cancelled);
            *back.lock().unwrap() = Some(rx);
        } else {
            push(&log, Event::Closed);
        }
        return;
    }
    loop {
        match rx.recv(&cx).await {
            Ok(v) => push(&log, Event::Value(v)),
            Err(RecvError::Lagged(n)) => push(&log, Event::Lagged(n)),
            Err(RecvError::Closed) => return push(&log, Event::Closed),
            Err(RecvError::Cancelled(_)) => {
                push(&log, Event::Cancelled);
                *back.lock().unwrap() = Some(rx);
                return;
            }
        }
        if slow {
            yield_now().await;
            if cx.checkpoint().is_err() {
                push(&log, Event::Cancelled);
                *back.lock().unwrap() = Some(rx);
                return;
            }
        }
    }
}

async fn program(cx: Cx, p: Params) {
    let (tx, rx) = broadcast::channel::<u64>(p.capacity);
    // The ticket is the next sequence number; every send happens under it,
    // so values are the channel's own sequence numbers (B3).
    let ticket = Arc::new(Mutex::new(0u64));
    let mut rxs = vec![rx];
    while rxs.len() < p.receivers {
        rxs.push(tx.subscribe());
    }
    let mut logs: Vec<(Events, Back, u64)> = Vec::new();
    let mut handles = Vec::new();
    for (i, rx) in rxs.into_iter().enumerate() {
        let (log, back) = (Events::default(), Back::default());
        logs.push((log.clone(), back.clone(), 0));
        let slow = p.slow & (1 << i) != 0;
        handles.push(
            cx.spawn(move |cx| receive(cx, rx, slow, i % 3 == 2, log, back))
                .unwrap(),
        );
    }
    let late_start = Arc::new(Mutex::new(None));
    let late_log = (Events::default(), Back::default());
    if p.late {
        let (tx, ticket, start) = (tx.clone(), ticket.clone(), late_start.clone());
        let (log, back) = late_log.clone();
        handles.push(
            cx.spawn(move |cx| async move {
                yield_now().await;
                yield_now().await;
                let rx = {
                    let t = ticket.lock().unwrap();
                    *start.lock().unwrap() = Some(*t);
                    tx.subscribe()
                };
                drop(tx);
                receive(cx, rx, false, false, log, back).await;
            })
            .unwrap(),
        );
    }
    for _ in 0..p.senders {
        let (tx, ticket) = (tx.clone(), ticket.clone());
        handles.push(
            cx.spawn(move |cx| async move {
                for _ in 0..p.per_sender {
                    {
                        let mut t = ticket.lock().unwrap();
                        if tx.send(*t).is_err() {
                            return; // every receiver is gone
                        }
                        *t += 1;
                    }
                    yield_now().await;
                    if cx.checkpoint().is_err() {
                        return;
                    }
                }
            })
            .unwrap(),
        );
    }
    drop(tx);
    for h in handles {
        let _ = h.join(&cx).await; // cancelled tasks join as Err
    }
    let total = *ticket.lock().unwrap();
    if let Some(start) = *late_start.lock().unwrap() {
        logs.push((late_log.0, late_log.1, start));
    }
    for (i, (log, back, start)) in logs.iter().enumerate() {
        // A receiver handed back after cancellation resumes where it was.
        if let Some(mut rx) = back.lock().unwrap().take() {
            loop {
                match rx.try_recv() {
                    Ok(v) => push(log, Event::Value(v)),
                    Err(TryRecvError::Lagged(n)) => push(log, Event::Lagged(n)),
                    Err(TryRecvError::Closed) => break push(log, Event::Closed),
                    Err(TryRecvError::Empty) => panic!("empty but every sender is gone"),
                }
            }
        }
        let events = log.lock().unwrap().clone();
        // A task cancelled before its first poll never ran: no log, and its
        // receiver was dropped with it.
        if !events.is_empty() {
            check(&events, *start, total, &format!("receiver {i}"));
        }
    }
}

const BASE: Params = Params {
    capacity: 2,
    senders: 2,
    per_sender: 4,
    receivers: 3,
    slow: 0b010,
    late: true,
};

#[test]
fn cancelling_any_task_at_any_await_point_loses_and_duplicates_nothing() {
    for seed in 0..4 {
        let report = cancel_injection(InjectionConfig::new(seed), |cx| program(cx, BASE));
        assert!(report.passed(), "{report}");
        assert!(report.points_found().len() >= 20, "{report}");
        assert_eq!(report.points_tried(), report.points_found());
    }
}

#[test]
fn cancelling_a_receiver_that_never_lags_at_any_await_point_loses_nothing() {
    let p = Params {
        capacity: 16,
        senders: 1,
        per_sender: 6,
        receivers: 3,
        slow: 0b111,
        late: false,
    };
    for seed in 10..13 {
        let report = cancel_injection(InjectionConfig::new(seed), move |cx| program(cx, p));
        assert!(report.passed(), "{report}");
    }
}

#[test]
fn random_and_pct_schedules_keep_every_receiver_gap_free_modulo_reported_lags() {
    explore(
        ExploreConfig::new().schedules(150).mode(ExploreMode::Mixed),
        |cx| program(cx, BASE),
    )
    .assert_ok();
}

fn params() -> impl Strategy<Value = Params> {
    (
        1..5usize,
        1..4u64,
        0..10u64,
        1..5usize,
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(
            |(capacity, senders, per_sender, receivers, slow, late)| Params {
                capacity,
                senders,
                per_sender,
                receivers,
                slow,
                late,
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
