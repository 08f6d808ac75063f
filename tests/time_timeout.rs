//! `time::timeout` / `time::timeout_at`.

mod support;

use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use asupersync::time::{Elapsed, sleep, sleep_until, timeout, timeout_at};
use asupersync::types::CancelKind;
use asupersync::{Cx, Time};
use support::{DropFlag, Gate, XorShift, for_each_driver, poll_once};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn timeout_returns_ok_when_the_future_finishes_first() {
    for_each_driver(|name, rt| {
        let rt_ref = &rt;
        rt.block_on(|cx: Cx| async move {
            assert_eq!(timeout(&cx, HOUR, async { 42 }).await, Ok(42), "[{name}]");
            let c = cx.clone();
            let r = timeout(&cx, Duration::from_secs(30), async move {
                sleep(&c, Duration::from_millis(2)).await.unwrap();
                "slept"
            })
            .await;
            assert_eq!(r, Ok("slept"), "[{name}]");
            assert_eq!(
                rt_ref.pending_timers(),
                0,
                "[{name}] a timeout whose future won releases its timer"
            );
        });
    });
}

#[test]
fn timeout_elapses_when_the_future_does_not_finish_and_drops_the_future() {
    for_each_driver(|name, rt| {
        let rt_ref = &rt;
        rt.block_on(|cx: Cx| async move {
            let (flag, dropped) = DropFlag::new();
            let c = cx.clone();
            let start = cx.now();
            let r = timeout(&cx, Duration::from_millis(10), async move {
                let _keep = flag;
                sleep(&c, HOUR).await.unwrap();
                unreachable!("the inner sleep never finishes");
            })
            .await;
            let now = cx.now();
            let e: Elapsed = r.expect_err("the one-hour future cannot win");
            assert!(
                e.deadline() >= start + Duration::from_millis(10),
                "[{name}] deadline {:?} is too early (start {start:?})",
                e.deadline()
            );
            assert!(
                now >= e.deadline(),
                "[{name}] Elapsed reported at {now:?}, before the deadline {:?}",
                e.deadline()
            );
            assert!(
                dropped.is_dropped(),
                "[{name}] the inner future is dropped once the timeout elapsed"
            );
            assert!(e.to_string().contains("elapsed"), "[{name}] Display: {e}");
            assert_eq!(
                rt_ref.pending_timers(),
                0,
                "[{name}] neither the timeout's nor the inner sleep's timer survives"
            );
        });
    });
}

#[test]
fn timeout_never_elapses_early_for_random_durations() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let mut rng = XorShift::new(0x7173_0003);
            for i in 0..20 {
                let d = Duration::from_micros(rng.below(15_000));
                let wall = Instant::now();
                let start = cx.now();
                let r = timeout(&cx, d, std::future::pending::<()>()).await;
                let now = cx.now();
                let e = r.expect_err("pending() never wins");
                assert!(e.deadline() >= start + d, "[{name}] #{i}");
                assert!(
                    now >= e.deadline(),
                    "[{name}] #{i}: timeout({d:?}) elapsed at {now:?} < deadline {:?}",
                    e.deadline()
                );
                assert!(
                    wall.elapsed() >= d,
                    "[{name}] #{i}: only {:?}",
                    wall.elapsed()
                );
            }
        });
    });
}

#[test]
fn a_ready_future_wins_a_tie_with_the_deadline() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            assert_eq!(
                timeout(&cx, Duration::ZERO, async { 7 }).await,
                Ok(7),
                "[{name}] zero timeout, ready future"
            );
            assert_eq!(
                timeout_at(&cx, Time::ZERO, async { 8 }).await,
                Ok(8),
                "[{name}] deadline in the past, ready future"
            );
            // Same deadline for the timeout and for the future it wraps:
            // when the deadline passes both are due, and the future (polled
            // first) must win.
            for _ in 0..10 {
                let d = cx.now() + Duration::from_millis(2);
                let r = timeout_at(&cx, d, sleep_until(&cx, d)).await;
                assert_eq!(r, Ok(Ok(())), "[{name}] tie at {d:?}");
            }
            // And polled once with everything already due: Ready(Ok).
            let mut t = std::pin::pin!(timeout_at(&cx, Time::ZERO, sleep_until(&cx, Time::ZERO)));
            assert!(
                matches!(poll_once(&mut t).await, Poll::Ready(Ok(Ok(())))),
                "[{name}]"
            );
        });
    });
}

#[test]
fn a_pending_timeout_is_not_ready_before_its_deadline() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let mut t = std::pin::pin!(timeout(&cx, HOUR, std::future::pending::<u8>()));
            assert!(poll_once(&mut t).await.is_pending(), "[{name}]");
        });
    });
}

#[test]
fn the_inner_cancel_aware_wait_still_sees_task_cancellation() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let seen = Arc::new(Mutex::new(None));
            let started = Gate::new();
            let (s2, st) = (seen.clone(), started.clone());
            let h = cx
                .spawn(move |cx| async move {
                    st.open();
                    let r = timeout(&cx, HOUR, sleep(&cx, HOUR)).await;
                    let summary = match r {
                        Ok(Err(c)) => Ok(Err(c.reason().kind)),
                        Ok(Ok(())) => Ok(Ok(())),
                        Err(e) => Err(e),
                    };
                    *s2.lock().unwrap() = Some(summary);
                })
                .unwrap();
            started.wait().await;
            h.abort();
            let err = h.join(&cx).await.expect_err("cancelled");
            assert_eq!(
                err.cancel_reason().map(|r| r.kind),
                Some(CancelKind::User),
                "[{name}]"
            );
            assert_eq!(
                *seen.lock().unwrap(),
                Some(Ok(Err(CancelKind::User))),
                "[{name}] timeout passes the inner cancellation through as Ok(Err(Cancelled))"
            );
        });
    });
}

#[test]
fn timeouts_nest_and_the_inner_shorter_one_fires_first() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let c = cx.clone();
            let r = timeout(&cx, HOUR, async move {
                timeout(&c, Duration::from_millis(3), std::future::pending::<()>()).await
            })
            .await;
            assert!(
                matches!(r, Ok(Err(_))),
                "[{name}] outer Ok, inner Elapsed: {r:?}"
            );
        });
    });
}
