//! `time::interval` / `time::interval_at` and `MissedTickBehavior`.

mod support;

use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use asupersync::cx::Capabilities;
use asupersync::time::{MissedTickBehavior, interval, interval_at, sleep, timeout};
use asupersync::types::CancelKind;
use asupersync::{Cx, Time};
use support::{Gate, for_each_driver, poll_once};

const HOUR: Duration = Duration::from_secs(3600);
/// Period used by the late-consumer scenarios.
const P: Duration = Duration::from_millis(4);

fn t_plus(t: Time, periods: u32) -> Time {
    t + P * periods
}

#[test]
fn the_first_tick_is_immediate_and_returns_the_start_time() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let before = cx.now();
            let mut iv = interval(&cx, HOUR);
            let after = cx.now();
            let mut first = iv.tick();
            let t0 = match poll_once(&mut first).await {
                Poll::Ready(Ok(t)) => t,
                other => panic!("[{name}] first tick not ready at once: {other:?}"),
            };
            drop(first);
            assert!(before <= t0 && t0 <= after, "[{name}] first tick at {t0:?}");
            assert_eq!(iv.next_deadline(), t0 + HOUR, "[{name}]");
            assert_eq!(iv.period(), HOUR);
            let mut second = iv.tick();
            assert!(
                poll_once(&mut second).await.is_pending(),
                "[{name}] the second tick waits a full period"
            );
        });
    });
}

#[test]
fn ticks_are_spaced_by_the_period_and_never_early() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let period = Duration::from_millis(3);
            let mut iv = interval(&cx, period);
            let wall = Instant::now();
            let mut ticks = Vec::new();
            for _ in 0..6 {
                let t = iv.tick().await.expect("not cancelled");
                let now = cx.now();
                assert!(
                    now >= t,
                    "[{name}] tick scheduled at {t:?} fired early at {now:?}"
                );
                ticks.push(t);
            }
            for w in ticks.windows(2) {
                assert_eq!(w[1].duration_since(w[0]), period, "[{name}] {ticks:?}");
            }
            assert!(
                wall.elapsed() >= period * 5,
                "[{name}] six ticks took only {:?}",
                wall.elapsed()
            );
        });
    });
}

#[test]
fn interval_at_a_future_start_does_not_tick_before_it() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let start = cx.now() + Duration::from_millis(5);
            let mut iv = interval_at(&cx, start, HOUR);
            let mut t = iv.tick();
            assert!(poll_once(&mut t).await.is_pending(), "[{name}]");
            let fired = t.await.unwrap();
            assert_eq!(fired, start, "[{name}]");
            assert!(cx.now() >= start, "[{name}] first tick fired before start");
        });
    });
}

#[test]
fn burst_fires_every_missed_tick_back_to_back_on_the_original_phase() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let mut iv = interval(&cx, P);
            assert_eq!(
                iv.missed_tick_behavior(),
                MissedTickBehavior::Burst,
                "default"
            );
            let t0 = iv.tick().await.unwrap();
            // A late consumer: five and a half periods pass between ticks.
            sleep(&cx, P * 11 / 2).await.unwrap();
            for k in 1..=5 {
                let mut t = iv.tick();
                match poll_once(&mut t).await {
                    Poll::Ready(Ok(v)) => assert_eq!(
                        v,
                        t_plus(t0, k),
                        "[{name}] missed tick #{k} keeps its scheduled time"
                    ),
                    other => panic!("[{name}] missed tick #{k} must fire at once, got {other:?}"),
                }
            }
            let v6 = iv.tick().await.unwrap();
            assert_eq!(
                v6,
                t_plus(t0, 6),
                "[{name}] the phase is unchanged after the burst"
            );
            assert!(cx.now() >= v6, "[{name}]");
        });
    });
}

#[test]
fn delay_restarts_the_schedule_one_period_after_the_late_tick() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let mut iv = interval(&cx, P);
            iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
            assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Delay);
            let t0 = iv.tick().await.unwrap();
            sleep(&cx, P * 11 / 2).await.unwrap();
            let before = cx.now();
            let mut t = iv.tick();
            let late = match poll_once(&mut t).await {
                Poll::Ready(Ok(v)) => v,
                other => panic!("[{name}] the overdue tick must fire at once, got {other:?}"),
            };
            drop(t);
            let after = cx.now();
            assert_eq!(
                late,
                t_plus(t0, 1),
                "[{name}] the late tick reports its own slot"
            );
            let next = iv.next_deadline();
            assert!(
                next >= before + P && next <= after + P,
                "[{name}] Delay: next tick {next:?} must be one period after the late tick \
                 was taken (between {:?} and {:?})",
                before + P,
                after + P
            );
            let fired = iv.tick().await.unwrap();
            assert_eq!(fired, next, "[{name}]");
            assert!(cx.now() >= fired, "[{name}] fired early");
            assert!(
                iv.next_deadline() >= fired + P,
                "[{name}] the schedule keeps moving forward"
            );
        });
    });
}

#[test]
fn skip_drops_missed_ticks_and_resumes_on_the_original_phase() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let mut iv = interval(&cx, P);
            iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let t0 = iv.tick().await.unwrap();
            sleep(&cx, P * 11 / 2).await.unwrap();
            let before = cx.now();
            let mut t = iv.tick();
            let late = match poll_once(&mut t).await {
                Poll::Ready(Ok(v)) => v,
                other => panic!("[{name}] the overdue tick must fire at once, got {other:?}"),
            };
            drop(t);
            let after = cx.now();
            assert_eq!(late, t_plus(t0, 1), "[{name}]");
            let next = iv.next_deadline();
            let offset = next.duration_since(t0).as_nanos();
            assert_eq!(
                offset % P.as_nanos(),
                0,
                "[{name}] Skip keeps the original phase: next {next:?}, t0 {t0:?}"
            );
            assert!(
                next > before,
                "[{name}] Skip: next tick {next:?} must lie in the future"
            );
            assert!(
                next <= after + P,
                "[{name}] Skip: next tick {next:?} must be the first on-schedule point after now"
            );
            assert!(
                next >= t_plus(t0, 6),
                "[{name}] missed ticks 2..=5 were dropped"
            );
            let fired = iv.tick().await.unwrap();
            assert_eq!(fired, next, "[{name}]");
            assert!(cx.now() >= fired, "[{name}] fired early");
        });
    });
}

#[test]
fn a_cancelled_tick_returns_err_and_leaves_the_schedule_unchanged() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let seen = Arc::new(Mutex::new(None));
            let started = Gate::new();
            let (s2, st) = (seen.clone(), started.clone());
            let h = cx
                .spawn(move |cx| async move {
                    let mut iv = interval(&cx, HOUR);
                    iv.tick().await.unwrap();
                    let before = iv.next_deadline();
                    st.open();
                    let r = iv.tick().await;
                    *s2.lock().unwrap() =
                        Some((r.map_err(|c| c.reason().kind), before, iv.next_deadline()));
                })
                .unwrap();
            started.wait().await;
            h.abort();
            let err = h.join(&cx).await.expect_err("cancelled");
            assert!(err.is_cancelled(), "[{name}]");
            let (r, before, after) = (*seen.lock().unwrap()).expect("recorded");
            assert_eq!(
                r,
                Err(CancelKind::User),
                "[{name}] a cancelled tick returns Err"
            );
            assert_eq!(
                before, after,
                "[{name}] the schedule is untouched by the cancelled tick"
            );
        });
    });
}

#[test]
fn a_dropped_tick_leaves_the_schedule_unchanged() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let period = Duration::from_millis(20);
            let mut iv = interval(&cx, period);
            let t0 = iv.tick().await.unwrap();
            let before = iv.next_deadline();
            let r = timeout(&cx, Duration::from_millis(1), iv.tick()).await;
            match r {
                Err(_elapsed) => {
                    assert_eq!(
                        iv.next_deadline(),
                        before,
                        "[{name}] a dropped tick changes nothing"
                    );
                    assert_eq!(iv.tick().await.unwrap(), t0 + period, "[{name}]");
                }
                // Only on a badly stalled machine: the tick won the race.
                Ok(tick) => assert_eq!(tick.unwrap(), t0 + period, "[{name}]"),
            }
        });
    });
}

#[test]
fn dropping_a_pending_tick_releases_its_timer() {
    for_each_driver(|name, rt| {
        let rt_ref = &rt;
        rt.block_on(|cx: Cx| async move {
            let base = rt_ref.pending_timers();
            let mut iv = interval(&cx, HOUR);
            iv.tick().await.unwrap();
            {
                let mut t = iv.tick();
                assert!(poll_once(&mut t).await.is_pending());
                assert_eq!(rt_ref.pending_timers(), base + 1, "[{name}] registered");
            }
            assert_eq!(
                rt_ref.pending_timers(),
                base,
                "[{name}] rule T3: dropping the pending Tick future deregisters its timer"
            );
            drop(iv);
            assert_eq!(rt_ref.pending_timers(), base, "[{name}]");
        });
    });
}

#[test]
fn dropping_the_interval_releases_its_timer() {
    for_each_driver(|name, rt| {
        let rt_ref = &rt;
        rt.block_on(|cx: Cx| async move {
            let base = rt_ref.pending_timers();
            let mut iv = interval(&cx, HOUR);
            iv.tick().await.unwrap();
            let _ = timeout(&cx, Duration::from_millis(1), iv.tick()).await;
            drop(iv);
            assert_eq!(rt_ref.pending_timers(), base, "[{name}]");
        });
    });
}

#[test]
fn reset_restarts_the_schedule_one_period_from_now() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let mut iv = interval(&cx, HOUR);
            iv.tick().await.unwrap();
            sleep(&cx, Duration::from_millis(2)).await.unwrap();
            let before = cx.now();
            iv.reset();
            let after = cx.now();
            let next = iv.next_deadline();
            assert!(
                next >= before + HOUR && next <= after + HOUR,
                "[{name}] reset: {next:?}"
            );
        });
    });
}

#[test]
fn a_zero_period_panics_with_a_clear_message() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            for at in [false, true] {
                let h = cx
                    .spawn(move |cx| async move {
                        if at {
                            let _ = interval_at(&cx, cx.now(), Duration::ZERO);
                        } else {
                            let _ = interval(&cx, Duration::ZERO);
                        }
                    })
                    .unwrap();
                let err = h.join(&cx).await.expect_err("zero period must panic");
                let msg = err.panic_payload().expect("a panic").message().to_string();
                assert!(
                    msg.contains("period") && msg.contains("zero"),
                    "[{name}] unclear zero-period message: {msg:?}"
                );
            }
        });
    });
}

#[test]
fn an_interval_needs_the_time_capability() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let h = cx
                .spawn(|cx| async move {
                    let narrowed = cx.restrict(Capabilities::ALL.without(Capabilities::TIME));
                    let _ = interval(&narrowed, HOUR);
                })
                .unwrap();
            let err = h.join(&cx).await.expect_err("must panic");
            let msg = err.panic_payload().expect("a panic").message().to_string();
            assert!(msg.contains("capability"), "[{name}] {msg:?}");
        });
    });
}
