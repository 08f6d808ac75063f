//! `channel::mpsc` under cancellation injection: programs with several
//! producers and consumers are rerun cancelling one task at each of its
//! await points (`lab::cancel_injection`), with the oracles (obligation
//! leaks, quiescence, ...) checked on every run and the channel's own
//! invariants asserted by the program:
//! - no message is lost or duplicated: every committed message is received
//!   exactly once, every message that was not delivered came back to its
//!   sender, and nothing is both;
//! - no permit or slot leaks: capacity is full again at the end;
//! - the FIFO order of the other waiters survives a cancelled waiter.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use asupersync::channel::mpsc::{self, RecvError, SendError};
use asupersync::lab::{
    ChaosConfig, ExploreConfig, InjectionConfig, InjectionReport, cancel_injection, explore,
};
use asupersync::{Cx, yield_now};

/// What happened to each message `(producer, seq)`.
#[derive(Default)]
struct Ledger {
    /// The sender learned it was delivered (send `Ok` / permit send `Ok`).
    committed: BTreeSet<(u32, u32)>,
    /// The value came back to the sender (send error).
    returned: BTreeSet<(u32, u32)>,
    /// Received, in order.
    received: Vec<(u32, u32)>,
    /// `send`s in the order they started (logged in the same poll as the
    /// first poll of the send, so it is the waiter registration order).
    started: Vec<(u32, u32)>,
}

type Shared<T> = Arc<Mutex<T>>;

/// Polls `inner`, and while it is pending makes the task runnable again
/// (up to `ticks` times): each such poll is one more await point at which
/// injection can cancel the task while the wait is in some state.
struct Ticks<F> {
    inner: F,
    ticks: u32,
}

fn ticks<F: Future + Unpin>(inner: F, ticks: u32) -> Ticks<F> {
    Ticks { inner, ticks }
}

impl<F: Future + Unpin> Future for Ticks<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let out = Pin::new(&mut self.inner).poll(cx);
        if out.is_pending() && self.ticks > 0 {
            self.ticks -= 1;
            cx.waker().wake_by_ref();
        }
        out
    }
}

fn check_ledger(ledger: &Ledger) {
    let received: BTreeSet<_> = ledger.received.iter().copied().collect();
    assert_eq!(
        received.len(),
        ledger.received.len(),
        "duplicated message: {:?}",
        ledger.received
    );
    assert_eq!(
        received, ledger.committed,
        "committed messages must be received exactly once (received {:?}, committed {:?})",
        ledger.received, ledger.committed
    );
    assert!(
        received.is_disjoint(&ledger.returned),
        "a message was both received and returned: {:?} / {:?}",
        ledger.received,
        ledger.returned
    );
    let mut last: BTreeMap<u32, u32> = BTreeMap::new();
    for &(p, i) in &ledger.received {
        if let Some(prev) = last.insert(p, i) {
            assert!(prev < i, "producer {p}: {i} received after {prev}");
        }
    }
}

fn assert_injection_passed(report: &InjectionReport, min_points: usize) {
    eprintln!("{report}");
    assert!(report.passed(), "{report}");
    assert!(
        report.points_found().len() >= min_points,
        "expected at least {min_points} await points: {report}"
    );
    assert_eq!(report.points_tried(), report.points_found(), "{report}");
}

/// Three producers mixing `send`, `reserve` + commit and a permit held
/// across an await point; one consumer mixing `recv` and `recv_many`. The
/// root (never cancelled) finishes draining after the consumer stops.
async fn producers_and_a_consumer(cx: Cx) {
    const CAP: usize = 2;
    let (tx, rx) = mpsc::channel::<(u32, u32)>(CAP);
    let ledger: Shared<Ledger> = Shared::default();
    let rx_slot: Shared<Option<mpsc::Receiver<(u32, u32)>>> = Arc::new(Mutex::new(Some(rx)));

    let mut producers = Vec::new();
    for p in 0..3u32 {
        let (tx, ledger) = (tx.clone(), ledger.clone());
        producers.push(
            cx.spawn(move |cx| async move {
                for i in 0..4u32 {
                    let msg = (p, i);
                    match (p + i) % 3 {
                        0 => match ticks(tx.send(&cx, msg), 2).await {
                            Ok(()) => ledger.lock().unwrap().committed.insert(msg),
                            Err(e) => {
                                let cancelled = e.is_cancelled();
                                assert_eq!(e.into_inner(), msg, "the value comes back");
                                ledger.lock().unwrap().returned.insert(msg);
                                assert!(cancelled, "the receiver outlives the producers");
                                return;
                            }
                        },
                        1 => {
                            let Ok(permit) = ticks(tx.reserve(&cx), 2).await else {
                                return; // cancelled: nothing held
                            };
                            permit.send(msg).unwrap();
                            ledger.lock().unwrap().committed.insert(msg)
                        }
                        _ => {
                            let Ok(permit) = tx.reserve(&cx).await else {
                                return;
                            };
                            // Hold the permit across an await point; when
                            // cancelled there, dropping it aborts and frees
                            // the slot.
                            yield_now().await;
                            if cx.checkpoint().is_err() {
                                return;
                            }
                            permit.send(msg).unwrap();
                            ledger.lock().unwrap().committed.insert(msg)
                        }
                    };
                }
            })
            .unwrap(),
        );
    }
    drop(tx);

    let consumer = {
        let (ledger, rx_slot) = (ledger.clone(), rx_slot.clone());
        cx.spawn(move |cx| async move {
            let mut rx = rx_slot.lock().unwrap().take().unwrap();
            let mut buf = Vec::new();
            let mut round = 0;
            loop {
                round += 1;
                let r = if round % 2 == 0 {
                    buf.clear();
                    rx.recv_many(&cx, &mut buf, 2).await.map(|_| ())
                } else {
                    ticks(rx.recv(&cx), 2).await.map(|m| buf = vec![m])
                };
                match r {
                    Ok(()) => ledger.lock().unwrap().received.extend_from_slice(&buf),
                    Err(_) => {
                        // Cancelled or disconnected: nothing was consumed.
                        *rx_slot.lock().unwrap() = Some(rx);
                        return;
                    }
                }
                if round == 3 {
                    // Let producers pile up behind a full channel.
                    yield_now().await;
                    yield_now().await;
                }
            }
        })
        .unwrap()
    };
    let _ = consumer.join(&cx).await;

    // The root drains whatever is left (the consumer may have been cancelled).
    let mut rx = rx_slot
        .lock()
        .unwrap()
        .take()
        .expect("the consumer hands the receiver back");
    loop {
        match rx.recv(&cx).await {
            Ok(m) => ledger.lock().unwrap().received.push(m),
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("the root is never cancelled: {e}"),
        }
    }
    for h in producers {
        let _ = h.join(&cx).await;
    }
    assert_eq!(rx.capacity(), CAP, "every slot came back");
    check_ledger(&ledger.lock().unwrap());
}

#[test]
fn producers_and_a_consumer_lose_or_duplicate_nothing_when_cancelled_at_any_await_point() {
    for seed in [1, 2, 3, 4] {
        let report = cancel_injection(InjectionConfig::new(seed), producers_and_a_consumer);
        assert_injection_passed(&report, 10);
    }
}

/// Four senders queue behind a full channel of capacity 1, logging the
/// order in which they started waiting; the root receives. Whichever sender
/// is cancelled, the others are received in the order they started, and the
/// cancelled one's value comes back to it.
async fn waiting_senders_in_fifo_order(cx: Cx, use_reserve: bool) {
    let (tx, mut rx) = mpsc::channel::<(u32, u32)>(1);
    tx.try_send((99, 0)).unwrap();
    let ledger: Shared<Ledger> = Shared::default();
    let mut senders = Vec::new();
    for p in 0..4u32 {
        let (tx, ledger) = (tx.clone(), ledger.clone());
        senders.push(
            cx.spawn(move |cx| async move {
                let msg = (p, 0);
                ledger.lock().unwrap().started.push(msg);
                if use_reserve && p % 2 == 1 {
                    // Committed right after the grant, in the same poll.
                    match ticks(tx.reserve(&cx), 3).await {
                        Ok(permit) => {
                            permit.send(msg).unwrap();
                            ledger.lock().unwrap().committed.insert(msg);
                        }
                        Err(e) => assert!(e.is_cancelled()),
                    }
                } else {
                    match ticks(tx.send(&cx, msg), 3).await {
                        Ok(()) => {
                            ledger.lock().unwrap().committed.insert(msg);
                        }
                        Err(SendError::Cancelled(v)) => {
                            assert_eq!(v, msg);
                            ledger.lock().unwrap().returned.insert(v);
                        }
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
            })
            .unwrap(),
        );
    }
    drop(tx);
    // Every sender registers in its first poll (the channel is full); one
    // cancelled before it ever ran (chaos) never starts.
    while !senders
        .iter()
        .enumerate()
        .all(|(p, h)| h.is_finished() || ledger.lock().unwrap().started.contains(&(p as u32, 0)))
    {
        yield_now().await;
    }
    assert_eq!(rx.recv(&cx).await, Ok((99, 0)));
    loop {
        match rx.recv(&cx).await {
            Ok(m) => ledger.lock().unwrap().received.push(m),
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("the root is never cancelled: {e}"),
        }
        yield_now().await; // give cancelled waiters a chance to leave mid-way
    }
    for h in senders {
        let _ = h.join(&cx).await;
    }
    assert_eq!(rx.capacity(), 1, "every slot came back");
    let ledger = ledger.lock().unwrap();
    check_ledger(&ledger);
    let expected: Vec<_> = ledger
        .started
        .iter()
        .filter(|m| ledger.committed.contains(m))
        .copied()
        .collect();
    assert_eq!(
        ledger.received, expected,
        "the remaining waiters are served in the order they started waiting"
    );
}

#[test]
fn a_cancelled_waiting_send_leaves_the_other_senders_in_fifo_order() {
    for seed in [5, 6, 7] {
        let report = cancel_injection(InjectionConfig::new(seed), |cx| {
            waiting_senders_in_fifo_order(cx, false)
        });
        assert_injection_passed(&report, 4);
    }
}

#[test]
fn a_cancelled_waiting_reserve_leaves_the_other_waiters_in_fifo_order() {
    for seed in [8, 9, 10] {
        let report = cancel_injection(InjectionConfig::new(seed), |cx| {
            waiting_senders_in_fifo_order(cx, true)
        });
        assert_injection_passed(&report, 4);
    }
}

/// Two consumers share the receiver in turns (one at a time, handing it
/// over through a slot) while a producer sends; cancelling either consumer
/// at any point loses nothing: a cancelled recv consumes nothing.
async fn consumers_taking_turns(cx: Cx) {
    let (tx, rx) = mpsc::channel::<(u32, u32)>(1);
    let ledger: Shared<Ledger> = Shared::default();
    let rx_slot: Shared<Option<mpsc::Receiver<(u32, u32)>>> = Arc::new(Mutex::new(Some(rx)));
    let producer = {
        let ledger = ledger.clone();
        cx.spawn(move |cx| async move {
            for i in 0..6u32 {
                match tx.send(&cx, (0, i)).await {
                    Ok(()) => ledger.lock().unwrap().committed.insert((0, i)),
                    Err(e) => {
                        ledger.lock().unwrap().returned.insert(e.into_inner());
                        return;
                    }
                };
            }
        })
        .unwrap()
    };
    let mut consumers = Vec::new();
    for _ in 0..2 {
        let (ledger, rx_slot) = (ledger.clone(), rx_slot.clone());
        consumers.push(
            cx.spawn(move |cx| async move {
                for _ in 0..3 {
                    let Some(mut rx) = rx_slot.lock().unwrap().take() else {
                        yield_now().await;
                        continue;
                    };
                    let r = rx.recv(&cx).await;
                    *rx_slot.lock().unwrap() = Some(rx);
                    match r {
                        Ok(m) => ledger.lock().unwrap().received.push(m),
                        Err(_) => return,
                    }
                    yield_now().await;
                }
            })
            .unwrap(),
        );
    }
    for h in consumers {
        let _ = h.join(&cx).await;
    }
    let mut rx = rx_slot.lock().unwrap().take().expect("handed back");
    while let Ok(m) = rx.recv(&cx).await {
        ledger.lock().unwrap().received.push(m);
    }
    let _ = producer.join(&cx).await;
    assert_eq!(rx.capacity(), 1);
    check_ledger(&ledger.lock().unwrap());
}

#[test]
fn consumers_cancelled_at_any_await_point_consume_nothing() {
    for seed in [11, 12, 13] {
        let report = cancel_injection(InjectionConfig::new(seed), consumers_taking_turns);
        assert_injection_passed(&report, 4);
    }
}

#[test]
fn random_schedules_with_chaos_cancellations_and_spurious_wakes_keep_every_invariant() {
    let chaos = ChaosConfig {
        cancel: 0.05,
        spurious_wake: 0.1,
        ..ChaosConfig::off()
    };
    let report = explore(
        ExploreConfig::new().schedules(400).chaos(chaos.clone()),
        producers_and_a_consumer,
    );
    assert!(report.is_ok(), "{}", explore_failures(&report));
    let report = explore(
        ExploreConfig::new()
            .schedules(400)
            .base_seed(1000)
            .chaos(chaos),
        |cx| waiting_senders_in_fifo_order(cx, true),
    );
    assert!(report.is_ok(), "{}", explore_failures(&report));
}

fn explore_failures(report: &asupersync::lab::ExploreReport) -> String {
    report
        .failures()
        .iter()
        .map(|f| format!("seed {}: {}", f.seed(), f.message()))
        .collect::<Vec<_>>()
        .join("\n")
}
