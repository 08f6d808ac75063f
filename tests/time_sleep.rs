//! `time::sleep` / `time::sleep_until` and the runtime clock (`cx.now()`).
//!
//! Rules under test (src/time/mod.rs): T1 a timer never completes before its
//! deadline; T2 a cancelled wait returns `Err(Cancelled)` promptly and
//! deregisters its timer; T3 dropping a timer future deregisters it.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use asupersync::time::{sleep, sleep_until};
use asupersync::types::CancelKind;
use asupersync::{Cx, Time};
use support::{Gate, XorShift, for_each_driver, poll_once};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn a_sleep_never_completes_before_its_deadline_for_random_durations() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let mut rng = XorShift::new(0x5EED_0001);
            for i in 0..25 {
                let d = Duration::from_micros(rng.below(20_000));
                let wall = Instant::now();
                let before = cx.now();
                let s = sleep(&cx, d);
                let deadline = s.deadline();
                assert!(
                    deadline >= before + d,
                    "[{name}] #{i}: sleep({d:?}) deadline {deadline:?} is before now+d"
                );
                s.await.expect("not cancelled");
                let after = cx.now();
                assert!(
                    after >= deadline,
                    "[{name}] #{i}: sleep({d:?}) returned at {after:?}, before its deadline {deadline:?}"
                );
                assert!(
                    wall.elapsed() >= d,
                    "[{name}] #{i}: sleep({d:?}) returned after only {:?} of wall time",
                    wall.elapsed()
                );
            }
        });
    });
}

#[test]
fn many_concurrent_sleepers_never_wake_before_their_deadlines() {
    for_each_driver(|name, rt| {
        const N: usize = 150;
        let done = Arc::new(AtomicUsize::new(0));
        let early = Arc::new(Mutex::new(Vec::new()));
        let (d2, e2) = (done.clone(), early.clone());
        rt.block_on(move |cx: Cx| async move {
            let mut rng = XorShift::new(0x5EED_0002);
            for i in 0..N {
                let d = Duration::from_micros(rng.below(20_000));
                let (done, early) = (d2.clone(), e2.clone());
                let _ = cx
                    .spawn(move |cx| async move {
                        let s = sleep(&cx, d);
                        let deadline = s.deadline();
                        s.await.expect("not cancelled");
                        let now = cx.now();
                        if now < deadline {
                            early.lock().unwrap().push((i, d, deadline, now));
                        }
                        done.fetch_add(1, Ordering::SeqCst);
                    })
                    .expect("spawn");
            }
        });
        assert_eq!(
            done.load(Ordering::SeqCst),
            N,
            "[{name}] every sleeper completes before block_on returns"
        );
        // Late is allowed (a loaded machine may run them late); a sleeper
        // that never wakes hangs `block_on`, which the watchdog reports.
        let early = early.lock().unwrap();
        assert!(
            early.is_empty(),
            "[{name}] sleepers woke before their deadline (index, dur, deadline, now): {early:?}"
        );
    });
}

#[test]
fn sleep_until_a_past_time_and_a_zero_sleep_are_ready_on_the_first_poll() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            // Let some time pass so that "the past" is not the epoch itself.
            sleep(&cx, Duration::from_millis(2)).await.unwrap();
            let past = [Time::ZERO, Time::from_millis(1), cx.now()];
            for t in past {
                let mut s = Box::pin(sleep_until(&cx, t));
                assert!(
                    matches!(poll_once(&mut s).await, Poll::Ready(Ok(()))),
                    "[{name}] sleep_until({t:?}) (a past time) must be ready at once"
                );
            }
            let mut s = Box::pin(sleep(&cx, Duration::ZERO));
            assert!(
                matches!(poll_once(&mut s).await, Poll::Ready(Ok(()))),
                "[{name}] sleep(0) must be ready at once"
            );
            // And awaiting one from scratch completes in that first poll.
            let mut s = Box::pin(sleep_until(&cx, Time::ZERO));
            assert!(
                matches!(poll_once(&mut s).await, Poll::Ready(Ok(()))),
                "[{name}] awaiting a past sleep_until"
            );
        });
    });
}

#[test]
fn a_pending_sleep_is_not_ready_before_its_deadline() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let mut s = Box::pin(sleep(&cx, HOUR));
            assert!(
                poll_once(&mut s).await.is_pending(),
                "[{name}] a one-hour sleep is pending"
            );
            assert!(
                poll_once(&mut s).await.is_pending(),
                "[{name}] still pending"
            );
        });
    });
}

#[test]
fn an_aborted_sleeper_joins_cancelled_user_promptly() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let started = Gate::new();
            let seen = Arc::new(Mutex::new(None));
            let (st, seen2) = (started.clone(), seen.clone());
            let h = cx
                .spawn(move |cx| async move {
                    st.open();
                    let r = sleep(&cx, HOUR).await;
                    *seen2.lock().unwrap() = Some(r.map_err(|c| c.reason().kind));
                })
                .unwrap();
            started.wait().await;
            let start = cx.now();
            h.abort();
            let err = h
                .join(&cx)
                .await
                .expect_err("an aborted task does not return Ok");
            assert!(err.is_cancelled(), "[{name}] {err:?}");
            assert_eq!(
                err.cancel_reason().map(|r| r.kind),
                Some(CancelKind::User),
                "[{name}]"
            );
            // Promptly: long before the hour the sleep asked for (the sleep
            // itself returned its cancelled error, checked below).
            assert!(
                cx.now() < start + HOUR,
                "[{name}] the aborted 1h sleeper joined only after the hour"
            );
            assert_eq!(
                *seen.lock().unwrap(),
                Some(Err(CancelKind::User)),
                "[{name}] the sleep itself returned Err(Cancelled(User))"
            );
        });
    });
}

#[test]
fn aborted_one_hour_sleepers_release_their_timers_and_do_not_hold_up_block_on() {
    for_each_driver(|name, rt| {
        const N: usize = 400;
        let rt_ref = &rt;
        let cancelled = rt.block_on(|cx: Cx| async move {
            let asleep = Arc::new(AtomicUsize::new(0));
            let all_started = Gate::new();
            let mut handles = Vec::new();
            for _ in 0..N {
                let (asleep, all) = (asleep.clone(), all_started.clone());
                handles.push(
                    cx.spawn(move |cx| async move {
                        let s = sleep(&cx, HOUR);
                        if asleep.fetch_add(1, Ordering::SeqCst) + 1 == N {
                            all.open();
                        }
                        s.await
                    })
                    .unwrap(),
                );
            }
            all_started.wait().await;
            // Make sure the sleeps are really parked on their timers.
            support::yield_until("all sleepers registered", support::SOON, || {
                rt_ref.pending_timers() >= N
            })
            .await;
            let mut cancelled = 0;
            for (i, h) in handles.into_iter().enumerate() {
                h.abort();
                if i % 2 == 0 {
                    // Half are joined, half are just dropped: the region
                    // still owns them.
                    if h.join(&cx).await.is_err() {
                        cancelled += 1;
                    }
                }
            }
            cancelled
        });
        // `block_on` returned, so the aborted 1h sleepers did not hold it up
        // (had they, the watchdog would have reported a hang).
        assert_eq!(
            cancelled,
            N / 2,
            "[{name}] every joined sleeper was cancelled"
        );
        assert_eq!(
            rt.pending_timers(),
            0,
            "[{name}] cancelled sleeps must deregister their timers (T2)"
        );
        assert_eq!(rt.live_tasks(), 0, "[{name}]");
    });
}

#[test]
fn dropping_a_pending_sleep_deregisters_its_timer() {
    for_each_driver(|name, rt| {
        let rt_ref = &rt;
        rt.block_on(|cx: Cx| async move {
            let base = rt_ref.pending_timers();
            let mut s = Box::pin(sleep(&cx, HOUR));
            assert!(poll_once(&mut s).await.is_pending());
            assert_eq!(
                rt_ref.pending_timers(),
                base + 1,
                "[{name}] a polled sleep registers one timer"
            );
            // Polling again re-uses the registration.
            assert!(poll_once(&mut s).await.is_pending());
            assert_eq!(
                rt_ref.pending_timers(),
                base + 1,
                "[{name}] no duplicate timer"
            );
            drop(s);
            assert_eq!(
                rt_ref.pending_timers(),
                base,
                "[{name}] dropping the sleep deregisters its timer (T3)"
            );
            // A sleep that completed leaves nothing behind either.
            sleep(&cx, Duration::from_millis(2)).await.unwrap();
            assert_eq!(rt_ref.pending_timers(), base, "[{name}] elapsed sleep");
        });
    });
}

#[test]
fn cx_now_is_monotonic_within_a_task_and_across_worker_threads() {
    for_each_driver(|name, rt| {
        let log = Arc::new(Mutex::new(Vec::<Time>::new()));
        let l2 = log.clone();
        rt.block_on(move |cx: Cx| async move {
            let mut last = cx.now();
            for _ in 0..10_000 {
                let now = cx.now();
                assert!(
                    now >= last,
                    "[{name}] cx.now() went backwards: {last:?} -> {now:?}"
                );
                last = now;
            }
            // Many tasks (on several threads for the multi-thread driver)
            // read the clock under one lock: the readings, in lock order,
            // never decrease.
            for _ in 0..8 {
                let log = l2.clone();
                let _ = cx.spawn(move |cx| async move {
                    for _ in 0..500 {
                        {
                            let mut g = log.lock().unwrap();
                            g.push(cx.now());
                        }
                        asupersync::yield_now().await;
                    }
                });
            }
        });
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 8 * 500);
        for w in log.windows(2) {
            assert!(
                w[0] <= w[1],
                "[{name}] clock went backwards across tasks: {w:?}"
            );
        }
    });
}

#[test]
fn the_clock_keeps_running_across_block_on_calls_and_sleeps_advance_it() {
    for_each_driver(|name, rt| {
        let t1 = rt.block_on(|cx: Cx| async move { cx.now() });
        let (t2, t3) = rt.block_on(|cx: Cx| async move {
            let a = cx.now();
            sleep(&cx, Duration::from_millis(5)).await.unwrap();
            (a, cx.now())
        });
        assert!(
            t2 >= t1,
            "[{name}] runtime clock restarted: {t1:?} then {t2:?}"
        );
        assert!(
            t3.duration_since(t2) >= Duration::from_millis(5),
            "[{name}] a 5ms sleep advanced the clock by only {:?}",
            t3.duration_since(t2)
        );
    });
}

#[test]
fn time_arithmetic_is_saturating_and_totally_ordered() {
    assert_eq!(Time::from_millis(5).as_nanos(), 5_000_000);
    assert_eq!(Time::from_secs(2), Time::from_millis(2_000));
    assert_eq!(Time::from_nanos(7).as_nanos(), 7);
    assert_eq!(Time::ZERO + Duration::from_millis(3), Time::from_millis(3));
    assert_eq!(
        Time::MAX + Duration::from_secs(1),
        Time::MAX,
        "addition saturates"
    );
    assert_eq!(
        Time::from_nanos(u64::MAX - 1) + Duration::from_nanos(5),
        Time::MAX
    );
    assert_eq!(
        Time::from_millis(10).duration_since(Time::from_millis(4)),
        Duration::from_millis(6)
    );
    assert_eq!(
        Time::from_millis(4).duration_since(Time::from_millis(10)),
        Duration::ZERO,
        "duration_since a later time is zero, not a panic"
    );
    let mut ts = vec![
        Time::from_secs(1),
        Time::ZERO,
        Time::MAX,
        Time::from_nanos(1),
        Time::from_millis(999),
    ];
    ts.sort();
    assert_eq!(
        ts,
        vec![
            Time::ZERO,
            Time::from_nanos(1),
            Time::from_millis(999),
            Time::from_secs(1),
            Time::MAX
        ]
    );
}

#[test]
fn a_sleep_of_duration_max_saturates_and_stays_cancellable() {
    for_each_driver(|name, rt| {
        let rt_ref = &rt;
        rt.block_on(|cx: Cx| async move {
            let s = sleep(&cx, Duration::MAX);
            assert_eq!(s.deadline(), Time::MAX, "[{name}] the deadline saturates");
            let mut s = Box::pin(s);
            assert!(poll_once(&mut s).await.is_pending(), "[{name}]");
            drop(s);
            assert_eq!(rt_ref.pending_timers(), 0, "[{name}]");

            let started = Gate::new();
            let st = started.clone();
            let h = cx
                .spawn(move |cx| async move {
                    st.open();
                    sleep_until(&cx, Time::MAX).await
                })
                .unwrap();
            started.wait().await;
            h.abort();
            let e = h.join(&cx).await.expect_err("cancelled");
            assert_eq!(
                e.cancel_reason().map(|r| r.kind),
                Some(CancelKind::User),
                "[{name}]"
            );
            assert_eq!(rt_ref.pending_timers(), 0, "[{name}]");
        });
    });
}

#[test]
fn a_sleeper_wakes_while_busy_tasks_keep_every_worker_from_parking() {
    for_each_driver(|name, rt| {
        let woke_while_busy = rt.block_on(move |cx: Cx| async move {
            let stop = Arc::new(AtomicUsize::new(0));
            let mut busy = Vec::new();
            for _ in 0..4 {
                let stop = stop.clone();
                busy.push(
                    cx.spawn(move |_| async move {
                        // Busy until the sleeper wakes. The give-up is a poll
                        // count, not a wall-clock limit: a loaded machine
                        // runs fewer polls in the sleeper's 20 ms, never
                        // more, so only a timer that does not fire while
                        // every worker is busy exhausts it.
                        let mut polls: u64 = 0;
                        while stop.load(Ordering::SeqCst) == 0 && polls < 10_000_000 {
                            polls += 1;
                            asupersync::yield_now().await;
                        }
                        stop.load(Ordering::SeqCst) == 1
                    })
                    .unwrap(),
                );
            }
            let s = stop.clone();
            let sleeper = cx
                .spawn(move |cx| async move {
                    sleep(&cx, Duration::from_millis(20)).await.unwrap();
                    s.store(1, Ordering::SeqCst);
                })
                .unwrap();
            sleeper.join(&cx).await.unwrap();
            let mut all = true;
            for b in busy {
                all &= b.join(&cx).await.unwrap();
            }
            all
        });
        assert!(
            woke_while_busy,
            "[{name}] the timer fired only after the busy tasks gave up"
        );
    });
}
