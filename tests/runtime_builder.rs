//! `RuntimeBuilder` and `Runtime::block_on`: configuration errors, reuse,
//! concurrent callers, non-`Send` roots, and a structured-concurrency stress
//! run checked against the kernel's counters.

mod support;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use asupersync::time::sleep;
use asupersync::types::CancelReason;
use asupersync::{Cx, Runtime, RuntimeBuilder, yield_now};
use support::{DRIVERS, XorShift, for_each_driver};

#[test]
fn zero_worker_threads_is_a_build_error_with_a_clear_message() {
    let err = RuntimeBuilder::new()
        .worker_threads(0)
        .build()
        .expect_err("0 workers cannot run anything");
    let msg = err.to_string();
    assert!(
        msg.contains("worker_threads") && msg.contains("at least 1"),
        "unclear message: {msg:?}"
    );
    // It is a std error.
    let _: &dyn std::error::Error = &err;
}

#[test]
fn worker_threads_on_a_current_thread_builder_is_an_error() {
    for n in [1, 2, 8] {
        let err = RuntimeBuilder::current_thread()
            .worker_threads(n)
            .build()
            .expect_err("current_thread has no workers");
        let msg = err.to_string();
        assert!(
            msg.contains("worker_threads") && msg.contains("current_thread"),
            "unclear message: {msg:?}"
        );
    }
}

#[test]
fn the_builder_reports_the_worker_count() {
    assert_eq!(support::Driver::CurrentThread.rt().worker_threads(), 0);
    assert_eq!(support::Driver::MultiThread.rt().worker_threads(), 2);
    let rt = RuntimeBuilder::new().worker_threads(1).build().unwrap();
    assert_eq!(rt.worker_threads(), 1);
    assert_eq!(rt.block_on(|_cx: Cx| async { 5 }), 5);
    let rt = RuntimeBuilder::default().build().unwrap();
    assert!(
        rt.worker_threads() >= 1,
        "defaults to the available parallelism"
    );
    assert_eq!(rt.block_on(|_cx: Cx| async { 6 }), 6);
}

#[test]
fn block_on_can_be_called_many_times_on_one_runtime() {
    for_each_driver(|name, rt| {
        let mut roots = Vec::new();
        for round in 0..5u32 {
            let (v, region) = rt.block_on(|cx: Cx| async move {
                let h = cx
                    .spawn(move |cx| async move {
                        sleep(&cx, Duration::from_millis(1)).await.unwrap();
                        round * 10
                    })
                    .unwrap();
                (h.join(&cx).await.unwrap(), cx.region_id())
            });
            assert_eq!(v, round * 10, "[{name}] round {round}");
            roots.push(region);
        }
        let stats = rt.stats();
        assert_eq!(stats.tasks_spawned, stats.tasks_completed, "[{name}]");
        assert_eq!(
            stats.regions_created, 5,
            "[{name}] one root region per block_on"
        );
        assert_eq!(stats.regions_closed, 5, "[{name}]");
        assert_eq!(rt.live_tasks(), 0, "[{name}]");
        assert_eq!(rt.live_regions(), 0, "[{name}]");
        for r in roots {
            assert_eq!(
                rt.region_state(r),
                None,
                "[{name}] closed root {r} no longer resolves"
            );
        }
    });
}

#[test]
fn a_panicking_block_on_body_is_resumed_and_the_runtime_stays_usable() {
    for_each_driver(|name, rt| {
        let r = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(|_cx: Cx| async {
                panic!("root body failed");
            })
        }));
        let payload = r.expect_err("the body's panic reaches the caller");
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(
            msg.contains("root body failed"),
            "[{name}] payload: {msg:?}"
        );
        assert_eq!(
            rt.block_on(|_cx: Cx| async { 1 }),
            1,
            "[{name}] still usable"
        );
        assert_eq!(rt.live_tasks(), 0, "[{name}]");
    });
}

#[test]
fn block_on_from_two_threads_at_once_completes_both() {
    for d in DRIVERS {
        let name = d.name();
        let rt: Arc<Runtime> = Arc::new(d.rt());
        support::with_watchdog(name, move || {
            let barrier = Arc::new(Barrier::new(2));
            let handles: Vec<_> = (0..2u64)
                .map(|t| {
                    let (rt, barrier) = (rt.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        rt.block_on(|cx: Cx| async move {
                            let mut hs = Vec::new();
                            for i in 0..20u64 {
                                hs.push(
                                    cx.spawn(move |cx| async move {
                                        sleep(&cx, Duration::from_millis(1)).await.unwrap();
                                        yield_now().await;
                                        t * 1000 + i
                                    })
                                    .unwrap(),
                                );
                            }
                            let mut sum = 0;
                            for h in hs {
                                sum += h.join(&cx).await.unwrap();
                            }
                            sum
                        })
                    })
                })
                .collect();
            let sums: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(sums, vec![190, 20_190], "[{name}]");
            let stats = rt.stats();
            assert_eq!(stats.tasks_spawned, stats.tasks_completed, "[{name}]");
            assert_eq!(stats.regions_created, stats.regions_closed, "[{name}]");
        });
    }
}

#[test]
fn the_root_future_need_not_be_send() {
    for d in DRIVERS {
        let name = d.name();
        // The closure below is Send; the future it builds is not.
        support::with_watchdog(name, move || {
            let rt = d.rt();
            let v = rt.block_on(|cx: Cx| async move {
                let shared = Rc::new(RefCell::new(Vec::new()));
                for i in 0..5u32 {
                    let h = cx.spawn(move |_| async move { i }).unwrap();
                    let v = h.join(&cx).await.unwrap();
                    // The Rc lives across awaits on the block_on thread.
                    shared.borrow_mut().push(v);
                    yield_now().await;
                    sleep(&cx, Duration::from_millis(1)).await.unwrap();
                }
                let total: u32 = shared.borrow().iter().sum();
                Rc::strong_count(&shared) as u32 * 100 + total
            });
            assert_eq!(v, 110, "[{name}]");
        });
    }
}

// ----- stress ------------------------------------------------------------------

/// Counts drops of the futures of spawned tasks: every spawned future must
/// be dropped exactly once (ran to completion, cancelled, or force-dropped).
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Counters {
    spawned: AtomicUsize,
    region_bodies: AtomicUsize,
    dropped: Arc<AtomicUsize>,
    leaves_ok: AtomicUsize,
}

async fn leaf(cx: Cx, guard: Dropped, seed: u64, c: Arc<Counters>) -> u64 {
    let _guard = guard;
    let mut rng = XorShift::new(seed);
    match rng.below(10) {
        0 => {
            let _ = sleep(&cx, Duration::from_micros(rng.below(1_500))).await;
        }
        1..=4 => {
            for _ in 0..rng.below(4) {
                yield_now().await;
            }
        }
        _ => {}
    }
    if cx.checkpoint().is_ok() {
        c.leaves_ok.fetch_add(1, Ordering::SeqCst);
    }
    seed
}

/// Opens a region, spawns `leaves` leaf tasks in it (aborting, joining or
/// dropping their handles at random), and randomly fails the region body.
async fn subgroup(cx: Cx, guard: Dropped, seed: u64, leaves: u64, c: Arc<Counters>) {
    let _guard = guard;
    let c2 = c.clone();
    let _ = cx
        .region(move |cx| async move {
            c2.region_bodies.fetch_add(1, Ordering::SeqCst);
            let mut rng = XorShift::new(seed);
            let mut handles = Vec::new();
            for i in 0..leaves {
                let c3 = c2.clone();
                let s = seed.wrapping_mul(31).wrapping_add(i + 1);
                // The guard is made inside the closure, which only runs
                // when the spawn succeeds.
                match cx.spawn(move |cx| leaf(cx, Dropped(c3.dropped.clone()), s, c3)) {
                    Ok(h) => {
                        c2.spawned.fetch_add(1, Ordering::SeqCst);
                        handles.push(h);
                    }
                    Err(_) => break, // the region is being cancelled
                }
                if rng.chance(5) {
                    yield_now().await;
                }
            }
            for h in handles {
                match rng.below(10) {
                    0 | 1 => h.abort(),
                    2 => h.abort_with(CancelReason::timeout().with_message("stress")),
                    3..=5 => {
                        let _ = h.join(&cx).await;
                    }
                    _ => drop(h),
                }
            }
            if rng.chance(10) {
                Err("random region failure")
            } else {
                Ok(())
            }
        })
        .await;
}

#[test]
fn stress_ten_thousand_tasks_in_nested_regions_with_random_aborts_leaks_nothing() {
    for seed in [
        0xA5A5_1234_5678_9ABC_u64,
        0x0123_4567_89AB_CDEF,
        0xDEAD_BEEF_F00D_0001,
    ] {
        for d in DRIVERS {
            let name = d.name();
            support::with_watchdog(name, move || stress_run(name, d.rt(), seed));
        }
    }
}

fn stress_run(name: &str, rt: Runtime, seed: u64) {
    let name = format!("{name}, seed {seed:#x}");
    {
        const GROUPS: u64 = 40;
        const SUBGROUPS: u64 = 5;
        const LEAVES: u64 = 60;
        let c = Arc::new(Counters::default());
        let c_root = c.clone();
        rt.block_on(move |cx: Cx| async move {
            let c = c_root;
            let mut rng = XorShift::new(seed);
            let mut groups = Vec::new();
            for g in 0..GROUPS {
                let c2 = c.clone();
                let seed = rng.next_u64();
                let h = cx
                    .spawn(move |cx| {
                        let guard = Dropped(c2.dropped.clone());
                        async move {
                            let _guard = guard;
                            let c3 = c2.clone();
                            let _ = cx
                                .region(move |cx| async move {
                                    c3.region_bodies.fetch_add(1, Ordering::SeqCst);
                                    let mut rng = XorShift::new(seed);
                                    let mut subs = Vec::new();
                                    for s in 0..SUBGROUPS {
                                        let c4 = c3.clone();
                                        let sseed = seed ^ (s + 1).wrapping_mul(0x9E37_79B9);
                                        match cx.spawn(move |cx| {
                                            let guard = Dropped(c4.dropped.clone());
                                            subgroup(cx, guard, sseed, LEAVES, c4)
                                        }) {
                                            Ok(h) => {
                                                c3.spawned.fetch_add(1, Ordering::SeqCst);
                                                subs.push(h);
                                            }
                                            Err(_) => break,
                                        }
                                    }
                                    for h in subs {
                                        match rng.below(20) {
                                            0 => h.abort(), // cancels its region's leaves too
                                            1..=9 => {
                                                let _ = h.join(&cx).await;
                                            }
                                            _ => drop(h),
                                        }
                                    }
                                    Ok::<_, ()>(g)
                                })
                                .await;
                        }
                    })
                    .unwrap();
                c.spawned.fetch_add(1, Ordering::SeqCst);
                if rng.chance(5) {
                    h.abort();
                }
                groups.push(h);
            }
            // Join half, drop the rest (the root region still waits).
            for (i, h) in groups.into_iter().enumerate() {
                if i % 2 == 0 {
                    let _ = h.join(&cx).await;
                }
            }
        });
        let spawned = c.spawned.load(Ordering::SeqCst) as u64;
        let stats = rt.stats();
        assert!(
            spawned >= 10_000,
            "[{name}] the stress run spawned only {spawned} tasks"
        );
        assert_eq!(
            c.dropped.load(Ordering::SeqCst) as u64,
            spawned,
            "[{name}] every spawned future was dropped exactly once"
        );
        assert_eq!(
            stats.tasks_spawned,
            spawned + 1,
            "[{name}] kernel task count = our spawns + the root body task"
        );
        assert_eq!(
            stats.tasks_spawned, stats.tasks_completed,
            "[{name}] every task completed: {stats:?}"
        );
        assert_eq!(
            stats.regions_created,
            c.region_bodies.load(Ordering::SeqCst) as u64 + 1,
            "[{name}] regions = region bodies run + the root region"
        );
        assert_eq!(
            stats.regions_created, stats.regions_closed,
            "[{name}] every region closed"
        );
        assert_eq!(stats.obligations_leaked, 0, "[{name}]");
        assert_eq!(rt.live_tasks(), 0, "[{name}]");
        assert_eq!(rt.live_regions(), 0, "[{name}]");
        assert_eq!(
            rt.pending_timers(),
            0,
            "[{name}] no timer outlives its task"
        );
        assert!(
            c.leaves_ok.load(Ordering::SeqCst) > 0,
            "[{name}] some leaves ran normally"
        );
    }
}

#[test]
fn cleanup_grace_bounds_how_long_a_task_ignoring_its_cancel_can_run() {
    for (name, flavor) in [("current_thread", 0usize), ("multi_thread(2)", 2)] {
        support::with_watchdog(name, move || {
            let grace = Duration::from_millis(20);
            let builder = if flavor == 0 {
                RuntimeBuilder::current_thread()
            } else {
                RuntimeBuilder::new().worker_threads(flavor)
            };
            let rt = builder.cleanup_grace(grace).build().unwrap();
            let (flag, dropped) = support::DropFlag::new();
            let rt_ref = &rt;
            rt.block_on(|cx: Cx| async move {
                let started = support::Gate::new();
                let st = started.clone();
                let h = cx
                    .spawn(move |_| async move {
                        let _keep = flag;
                        st.open();
                        // Never observes its Cx: only the grace period ends it.
                        std::future::pending::<()>().await;
                    })
                    .unwrap();
                started.wait().await;
                let t0 = std::time::Instant::now();
                h.abort();
                let e = h.join(&cx).await.expect_err("force-dropped");
                let took = t0.elapsed();
                assert_eq!(
                    e.cancel_reason().map(|r| r.kind),
                    Some(asupersync::types::CancelKind::User),
                    "[{name}] a force-dropped task still joins as Cancelled(reason)"
                );
                assert!(
                    took >= grace,
                    "[{name}] dropped after {took:?}, before the grace"
                );
                // The task never ends on its own: that it joined at all shows
                // the grace period bounded it (how late on a loaded machine is
                // not bounded here; a drop that never comes hangs, and the
                // watchdog reports it).
                let stats = rt_ref.stats();
                assert_eq!(stats.forced_drop_count, 1, "[{name}]");
                assert_eq!(
                    stats.forced_drops[0].cause,
                    asupersync::kernel::ForceDropCause::GraceExpired,
                    "[{name}]"
                );
            });
            assert!(dropped.is_dropped(), "[{name}] the future was dropped");
            assert_eq!(rt.pending_timers(), 0, "[{name}]");
        });
    }
}

#[test]
fn worker_threads_carry_the_configured_name() {
    support::with_watchdog("thread_name", || {
        let rt = RuntimeBuilder::new()
            .worker_threads(2)
            .thread_name("tester-pool")
            .build()
            .unwrap();
        let names = rt.block_on(|cx: Cx| async move {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    cx.spawn(|_| async { std::thread::current().name().map(str::to_string) })
                        .unwrap()
                })
                .collect();
            let mut names = Vec::new();
            for h in hs {
                names.push(h.join(&cx).await.unwrap());
            }
            names
        });
        for n in names {
            let n = n.expect("worker threads are named");
            assert!(n.starts_with("tester-pool"), "spawned task ran on {n:?}");
        }
    });
}
