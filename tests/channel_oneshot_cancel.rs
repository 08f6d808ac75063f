//! `channel::oneshot` under cancellation injection and chaos: requesters
//! and responders are cancelled at each of their await points; a reply is
//! never lost or duplicated (a cancelled receive leaves it retrievable),
//! and every permit is committed or aborted (the oracles check the ledger).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use asupersync::channel::oneshot;
use asupersync::lab::{ChaosConfig, ExploreConfig, InjectionConfig, cancel_injection, explore};
use asupersync::{Cx, yield_now};

/// Polls `inner`, re-waking the task up to `ticks` times while it is
/// pending: more await points during the wait.
struct Ticks<F> {
    inner: F,
    ticks: u32,
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

#[derive(Default)]
struct Ledger {
    /// Replies the responders reported as sent.
    sent: Vec<u32>,
    /// Replies received (by a requester or, afterwards, by the root).
    received: Vec<u32>,
}

/// Three request/reply pairs. Each responder reserves its reply (an
/// obligation), holds the permit across an await point, then sends; each
/// requester waits for the reply and, if cancelled, hands the receiver back
/// so the root can still collect a reply that arrives later.
async fn requests_and_replies(cx: Cx) {
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let mut tasks = Vec::new();
    let mut slots = Vec::new();
    for i in 0..3u32 {
        let (tx, rx) = oneshot::channel::<u32>();
        let slot = Arc::new(Mutex::new(Some(rx)));
        slots.push(slot.clone());
        let l = ledger.clone();
        tasks.push(
            cx.spawn(move |cx| async move {
                yield_now().await;
                let Ok(permit) = tx.reserve(&cx) else {
                    return; // the requester is gone
                };
                yield_now().await; // holding the permit
                if cx.checkpoint().is_err() {
                    return; // dropped: aborted, the requester sees Disconnected
                }
                if permit.send(100 + i).is_ok() {
                    l.lock().unwrap().sent.push(100 + i);
                }
            })
            .unwrap(),
        );
        let l = ledger.clone();
        tasks.push(
            cx.spawn(move |cx| async move {
                let mut rx = slot.lock().unwrap().take().unwrap();
                let got = Ticks {
                    inner: rx.recv(&cx),
                    ticks: 2,
                }
                .await;
                *slot.lock().unwrap() = Some(rx);
                if let Ok(v) = got {
                    l.lock().unwrap().received.push(v);
                }
            })
            .unwrap(),
        );
    }
    for t in tasks {
        let _ = t.join(&cx).await;
    }
    // Every responder is done: whatever was sent and not yet received is
    // still in its channel.
    for slot in slots {
        let mut rx = slot.lock().unwrap().take().expect("handed back");
        if let Ok(v) = rx.try_recv() {
            ledger.lock().unwrap().received.push(v);
        }
        assert!(rx.is_terminated());
    }
    let ledger = ledger.lock().unwrap();
    let (mut sent, mut received) = (ledger.sent.clone(), ledger.received.clone());
    sent.sort_unstable();
    received.sort_unstable();
    assert_eq!(sent, received, "every reply sent is received exactly once");
}

#[test]
fn requests_and_replies_lose_nothing_when_cancelled_at_any_await_point() {
    for seed in [1, 2, 3] {
        let report = cancel_injection(InjectionConfig::new(seed), requests_and_replies);
        assert!(report.passed(), "{report}");
        assert!(report.points_found().len() >= 8, "{report}");
        assert_eq!(report.points_tried(), report.points_found());
    }
}

#[test]
fn requests_and_replies_survive_random_schedules_with_chaos() {
    let report = explore(
        ExploreConfig::new().schedules(300).chaos(ChaosConfig {
            cancel: 0.05,
            spurious_wake: 0.1,
            ..ChaosConfig::off()
        }),
        requests_and_replies,
    );
    let failures: Vec<String> = report
        .failures()
        .iter()
        .map(|f| format!("seed {}: {}", f.seed(), f.message()))
        .collect();
    assert!(report.is_ok(), "{}", failures.join("\n"));
}
