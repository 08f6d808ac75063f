//! Issue 11, item 13: `Semaphore::new(0)` is a gate (S4). An `acquire`
//! waits until `add_permits` makes room; it used to fail at once with
//! "requested 1 permits from a semaphore that has 0 in total". A request
//! fails at once only when it can never be met: a closed semaphore, or more
//! than `Semaphore::MAX_PERMITS`. Both drivers and the lab.

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use asupersync::lab::{InjectionConfig, cancel_injection};
use asupersync::sync::{AcquireError, Semaphore, TryAcquireError};
use asupersync::{Cx, TaskHandle, yield_now};
use support::*;

/// A task waiting on `gate` for `n` permits; logs `name` once through.
/// Returns once it is queued.
async fn spawn_waiter(
    cx: &Cx,
    gate: &Arc<Semaphore>,
    n: usize,
    name: &'static str,
    log: &Log,
) -> TaskHandle<Result<(), AcquireError>> {
    let before = gate.waiters();
    let (g, log) = (gate.clone(), log.clone());
    let h = cx
        .spawn(move |cx| async move {
            let _permit = g.acquire(&cx, n).await?;
            log.push(name);
            Ok(())
        })
        .unwrap();
    let g = gate.clone();
    until(move || g.waiters() > before).await;
    h
}

on_both_drivers! {
    /// Waiters queue on a closed gate; another task opens it with
    /// `add_permits`; they get through in FIFO order.
    fn a_gate_opened_by_add_permits_from_another_task_lets_the_waiters_through(d: Driver) {
        d.rt().block_on(|cx: Cx| async move {
            let gate = Arc::new(Semaphore::new(0));
            let log = Log::new();
            let a = spawn_waiter(&cx, &gate, 1, "a", &log).await;
            let b = spawn_waiter(&cx, &gate, 2, "b", &log).await;
            let c = spawn_waiter(&cx, &gate, 1, "c", &log).await;
            assert_eq!(gate.waiters(), 3);
            assert!(log.snapshot().is_empty(), "nobody passes a closed gate");
            let g = gate.clone();
            let opener = cx.spawn(move |_cx| async move { g.add_permits(2) }).unwrap();
            opener.join(&cx).await.unwrap();
            for h in [a, b, c] {
                h.join(&cx).await.unwrap().unwrap();
            }
            assert_eq!(log.snapshot(), ["a", "b", "c"]);
            assert_eq!((gate.available_permits(), gate.total_permits()), (2, 2));
        });
    }

    /// A cancelled waiter leaves the gate's queue; the next one gets the
    /// permit when the gate opens, and nothing is lost.
    fn a_cancelled_waiter_on_a_gate_leaves_the_queue(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let gate = Arc::new(Semaphore::new(0));
            let log = Log::new();
            let a = spawn_waiter(&cx, &gate, 1, "a", &log).await;
            let b = spawn_waiter(&cx, &gate, 1, "b", &log).await;
            a.abort();
            let err = a.join(&cx).await.unwrap_err();
            assert!(err.is_cancelled(), "{err:?}");
            let g = gate.clone();
            until(move || g.waiters() == 1).await;
            gate.add_permits(1);
            b.join(&cx).await.unwrap().unwrap();
            assert_eq!(log.snapshot(), ["b"]);
            assert_eq!(gate.available_permits(), 1);
        });
        let st = rt.stats();
        assert_eq!((st.obligations_leaked, st.obligations_aborted), (0, 1), "{st:?}");
        assert_quiescent(&rt);
    }

    /// A request above `MAX_PERMITS` fails at once (`acquire` and
    /// `try_acquire`); one above the current total but within the maximum
    /// waits; closing the gate fails its waiters.
    fn only_a_request_that_can_never_be_met_fails_at_once(d: Driver) {
        d.rt().block_on(|cx: Cx| async move {
            let gate = Semaphore::new(0);
            let n = Semaphore::MAX_PERMITS + 1;
            let too_many = AcquireError::TooMany { requested: n, max: Semaphore::MAX_PERMITS };
            assert_eq!(gate.acquire(&cx, n).await.unwrap_err(), too_many);
            assert!(too_many.to_string().contains("MAX_PERMITS"), "{too_many}");
            assert_eq!(
                gate.try_acquire(&cx, n).unwrap_err(),
                TryAcquireError::TooMany { requested: n, max: Semaphore::MAX_PERMITS }
            );
            assert_eq!(gate.try_acquire(&cx, 1).unwrap_err(), TryAcquireError::NoPermits);
            let mut waiting = pin!(gate.acquire(&cx, Semaphore::MAX_PERMITS));
            assert!(waiting.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
            assert_eq!(gate.waiters(), 1);
            gate.close();
            assert!(matches!(
                waiting.as_mut().poll(&mut Context::from_waker(Waker::noop())),
                Poll::Ready(Err(AcquireError::Closed))
            ));
            assert_eq!(gate.acquire(&cx, 1).await.unwrap_err(), AcquireError::Closed);
        });
    }
}

/// The lab, cancelling each waiter at each of its await points on a gate
/// that the root body opens: every run passes the oracles (no permit
/// lost, nothing leaked), and the permits all come back.
#[test]
fn in_the_lab_cancelling_waiters_on_a_gate_at_any_point_loses_nothing() {
    async fn body(cx: Cx) {
        let gate = Arc::new(Semaphore::new(0));
        let mut waiters = Vec::new();
        for _ in 0..3 {
            let g = gate.clone();
            waiters.push(
                cx.spawn(move |cx| async move {
                    let permit = g.acquire(&cx, 1).await?;
                    yield_now().await;
                    drop(permit);
                    Ok::<_, AcquireError>(())
                })
                .unwrap(),
            );
        }
        // The root body opens the gate (it is not an injection target).
        yield_now().await;
        gate.add_permits(1);
        yield_now().await;
        gate.add_permits(2);
        for w in waiters {
            match w.join(&cx).await {
                Ok(Ok(())) | Ok(Err(AcquireError::Cancelled(_))) => {}
                Err(e) if e.is_cancelled() => {}
                other => panic!("unexpected: {other:?}"),
            }
        }
        // Whatever was cancelled, the permits added are all back.
        let added = gate.total_permits();
        assert_eq!(gate.available_permits(), added);
        assert_eq!(gate.waiters(), 0);
    }
    for seed in 0..4 {
        let report = cancel_injection(InjectionConfig::new(seed), body);
        assert!(report.passed(), "{report}");
        assert!(report.points_tried().len() >= 3, "{report}");
    }
}
