//! `sync::Pool`: reuse, bounds, health checks, FIFO waiting, obligations,
//! and cancellation that leaks nothing.
//!
//! Rules under test (src/sync/pool.rs): P1 at most `max_size` resources and
//! `size == idle + in_use + creating`; P2 FIFO waiters, no overtaking; P3
//! health check on checkout of a used resource; P4 drop returns, `discard`
//! destroys, `detach` takes; P5 each checkout is a `"pool_slot"`
//! obligation; P6 a cancelled or dropped acquire (waiting or mid-factory)
//! leaks no slot and drops the half-created resource.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use asupersync::lab::{InjectionConfig, LabConfig, LabRuntime, cancel_injection};
use asupersync::sync::{Pool, PoolError, PoolStatus};
use asupersync::time::{sleep, timeout};
use asupersync::trace::TraceKind;
use asupersync::{Cx, RuntimeBuilder, yield_now};
use support::{Gate, SOON, XorShift, for_each_driver, poll_once, with_watchdog, yield_until};

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

const HOUR: Duration = Duration::from_secs(3600);

/// Yields until `cond` holds (lab-friendly: no wall clock).
async fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        yield_now().await;
    }
}

/// A fake connection that knows how many of its kind are alive and
/// detects being checked out twice at once.
struct Conn {
    id: usize,
    uses: usize,
    broken: bool,
    busy: AtomicBool,
    live: Arc<AtomicUsize>,
}

impl Conn {
    /// Marks the start of a use; panics if someone else holds it.
    fn enter(&mut self) {
        assert!(
            !self.busy.swap(true, Ordering::SeqCst),
            "connection {} checked out twice at once",
            self.id
        );
        self.uses += 1;
    }

    fn leave(&self) {
        self.busy.store(false, Ordering::SeqCst);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counters shared by a factory and the test.
#[derive(Clone, Default)]
struct Factory {
    next_id: Arc<AtomicUsize>,
    live: Arc<AtomicUsize>,
}

impl Factory {
    fn conn(&self) -> Conn {
        self.live.fetch_add(1, Ordering::SeqCst);
        Conn {
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
            uses: 0,
            broken: false,
            busy: AtomicBool::new(false),
            live: self.live.clone(),
        }
    }

    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

type ConnPool = Pool<Conn, String>;

/// A pool whose factory creates a connection at once.
fn instant_pool(max: usize, f: &Factory) -> ConnPool {
    let f = f.clone();
    Pool::new(max, move |_cx| {
        let c = f.conn();
        async move { Ok(c) }
    })
}

/// P1 at rest: nothing checked out, nothing being created, nobody waiting.
fn assert_at_rest(s: PoolStatus, live: usize) {
    assert_eq!(s.in_use, 0, "{s:?}");
    assert_eq!(s.creating, 0, "{s:?}");
    assert_eq!(s.waiters, 0, "{s:?}");
    assert_eq!(s.size, s.idle, "{s:?}");
    assert!(s.size <= s.max_size, "{s:?}");
    assert_eq!(live, s.size, "resources alive vs pool size: {s:?}");
}

// ===== semantics on both drivers ==========================================

#[test]
fn a_returned_resource_is_reused_instead_of_creating_a_new_one() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let f = Factory::default();
            let pool = instant_pool(2, &f);
            let first = pool.acquire(&cx).await.unwrap();
            let id = first.id;
            assert_eq!(pool.status().in_use, 1);
            drop(first);
            assert_eq!(pool.status().idle, 1);
            let again = pool.acquire(&cx).await.unwrap();
            assert_eq!(again.id, id, "[{name}] the same connection came back");
            drop(again);
            let s = pool.status();
            assert_eq!((s.created, s.reused), (1, 1), "[{name}] {s:?}");
            assert_at_rest(s, f.live());
        });
    });
}

#[test]
fn the_pool_never_holds_more_than_max_size_resources_under_concurrency() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            const MAX: usize = 3;
            let f = Factory::default();
            let pool = Arc::new(instant_pool(MAX, &f));
            let in_use = Arc::new(AtomicUsize::new(0));
            let peak = Arc::new(AtomicUsize::new(0));
            let mut handles = Vec::new();
            for _ in 0..10 {
                let (p, u, pk) = (pool.clone(), in_use.clone(), peak.clone());
                handles.push(
                    cx.spawn(move |cx| async move {
                        for _ in 0..20 {
                            let mut c = p.acquire(&cx).await.unwrap();
                            c.enter();
                            let now = u.fetch_add(1, Ordering::SeqCst) + 1;
                            pk.fetch_max(now, Ordering::SeqCst);
                            yield_now().await;
                            u.fetch_sub(1, Ordering::SeqCst);
                            c.leave();
                        }
                    })
                    .unwrap(),
                );
            }
            for h in handles {
                h.join(&cx).await.unwrap();
            }
            assert!(peak.load(Ordering::SeqCst) <= MAX, "[{name}]");
            let s = pool.status();
            assert!(s.created <= MAX as u64, "[{name}] {s:?}");
            assert_eq!(s.reused + s.created, 200, "[{name}] {s:?}");
            assert_at_rest(s, f.live());
        });
    });
}

#[test]
fn an_unhealthy_resource_is_discarded_on_checkout_and_replaced() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let f = Factory::default();
            let checks = Arc::new(AtomicUsize::new(0));
            let f2 = f.clone();
            let ch = checks.clone();
            let pool: ConnPool = Pool::builder(1, move |_cx| {
                let c = f2.conn();
                async move { Ok(c) }
            })
            .health_check(move |c: &mut Conn| {
                ch.fetch_add(1, Ordering::SeqCst);
                !c.broken
            })
            .build();
            let mut c = pool.acquire(&cx).await.unwrap();
            assert_eq!(
                checks.load(Ordering::SeqCst),
                0,
                "[{name}] fresh: not checked"
            );
            c.broken = true;
            drop(c);
            let c = pool.acquire(&cx).await.unwrap();
            assert_eq!(checks.load(Ordering::SeqCst), 1);
            assert_eq!(c.id, 1, "[{name}] a replacement was created");
            assert!(!c.broken);
            drop(c);
            let s = pool.status();
            assert_eq!((s.created, s.discarded), (2, 1), "[{name}] {s:?}");
            assert_at_rest(s, f.live());
        });
    });
}

#[test]
fn an_exhausted_pool_makes_acquirers_wait_and_a_cancelled_waiter_leaves_the_queue() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let f = Factory::default();
            let pool = Arc::new(instant_pool(1, &f));
            let held = pool.acquire(&cx).await.unwrap();
            let spawn_acquirer = |cx: &Cx| {
                let p = pool.clone();
                cx.spawn(move |cx| async move { p.acquire(&cx).await.map(|c| c.id) })
                    .unwrap()
            };
            let a = spawn_acquirer(&cx);
            yield_until("a waits", SOON, || pool.status().waiters == 1).await;
            let b = spawn_acquirer(&cx);
            yield_until("b waits", SOON, || pool.status().waiters == 2).await;
            a.abort();
            assert!(a.join(&cx).await.unwrap_err().is_cancelled(), "[{name}]");
            assert_eq!(pool.status().waiters, 1, "[{name}] a left the queue");
            drop(held);
            assert_eq!(
                b.join(&cx).await.unwrap(),
                Ok(0),
                "[{name}] b got the connection"
            );
            assert_at_rest(pool.status(), f.live());
        });
    });
}

#[test]
fn a_waiter_whose_wait_times_out_gets_a_cancelled_error_free_of_side_effects() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let f = Factory::default();
            let pool = instant_pool(1, &f);
            let held = pool.acquire(&cx).await.unwrap();
            let r = timeout(&cx, Duration::from_millis(5), pool.acquire(&cx)).await;
            assert!(r.is_err(), "[{name}] still exhausted");
            assert_eq!(pool.status().waiters, 0);
            drop(held);
            assert_at_rest(pool.status(), f.live());
        });
    });
}

#[test]
fn a_cancelled_acquire_while_the_factory_runs_frees_the_slot() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let started = Gate::new();
            let st = started.clone();
            let pool: Arc<Pool<u32, String>> = Arc::new(Pool::new(1, move |cx: Cx| {
                let st = st.clone();
                async move {
                    st.open();
                    // A cancel-aware factory: its error comes back.
                    sleep(&cx, HOUR).await.map_err(|c| c.to_string())?;
                    Ok(1)
                }
            }));
            let p = pool.clone();
            let h = cx
                .spawn(move |cx| async move { p.acquire(&cx).await.map(|r| *r) })
                .unwrap();
            yield_until("the factory runs", SOON, || started.is_open()).await;
            assert_eq!(pool.status().creating, 1);
            h.abort();
            match h.join(&cx).await {
                Ok(Err(PoolError::Create(msg))) => assert!(msg.contains("cancelled"), "{msg}"),
                Err(e) => assert!(e.is_cancelled(), "[{name}] {e:?}"),
                other => panic!("[{name}] unexpected {other:?}"),
            }
            let s = pool.status();
            assert_eq!(
                (s.size, s.creating, s.create_failures),
                (0, 0, 1),
                "[{name}] {s:?}"
            );
        });
    });
}

#[test]
fn an_acquire_dropped_while_the_factory_runs_drops_the_half_created_resource_and_frees_the_slot() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let calls = Arc::new(AtomicUsize::new(0));
            let half_dropped = Arc::new(AtomicBool::new(false));
            let (c2, hd) = (calls.clone(), half_dropped.clone());
            let pool: Pool<u32, String> = Pool::new(1, move |_cx| {
                let n = c2.fetch_add(1, Ordering::SeqCst);
                let hd = hd.clone();
                async move {
                    struct Half(Arc<AtomicBool>);
                    impl Drop for Half {
                        fn drop(&mut self) {
                            self.0.store(true, Ordering::SeqCst);
                        }
                    }
                    let half = Half(hd);
                    if n == 0 {
                        // Ignores cancellation: only dropping stops it.
                        Gate::new().wait().await;
                    }
                    std::mem::forget(half);
                    Ok(n as u32)
                }
            });
            let r = timeout(&cx, Duration::from_millis(10), pool.acquire(&cx)).await;
            assert!(r.is_err(), "[{name}] the factory never finished");
            assert!(
                half_dropped.load(Ordering::SeqCst),
                "[{name}] half-created resource dropped"
            );
            let s = pool.status();
            assert_eq!(
                (s.size, s.creating),
                (0, 0),
                "[{name}] the slot was freed: {s:?}"
            );
            assert_eq!(
                *pool.acquire(&cx).await.unwrap(),
                1,
                "[{name}] usable again"
            );
        });
    });
}

#[test]
fn a_factory_error_frees_the_slot_for_the_next_acquirer() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let calls = Arc::new(AtomicUsize::new(0));
            let c2 = calls.clone();
            let pool: Pool<u32, String> = Pool::new(1, move |_cx| {
                let n = c2.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err("database down".to_string())
                    } else {
                        Ok(7)
                    }
                }
            });
            assert_eq!(
                pool.acquire(&cx).await.unwrap_err(),
                PoolError::Create("database down".to_string()),
                "[{name}]"
            );
            assert_eq!(pool.status().size, 0);
            assert_eq!(*pool.acquire(&cx).await.unwrap(), 7, "[{name}]");
            let s = pool.status();
            assert_eq!((s.created, s.create_failures), (1, 1), "[{name}] {s:?}");
        });
    });
}

#[test]
fn discard_drops_the_resource_and_hands_its_slot_to_the_oldest_waiter() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let f = Factory::default();
            let pool = Arc::new(instant_pool(1, &f));
            let held = pool.acquire(&cx).await.unwrap();
            let p = pool.clone();
            let waiter = cx
                .spawn(move |cx| async move { p.acquire(&cx).await.map(|c| c.id) })
                .unwrap();
            yield_until("the waiter queues", SOON, || pool.status().waiters == 1).await;
            held.discard();
            assert_eq!(
                waiter.join(&cx).await.unwrap(),
                Ok(1),
                "[{name}] a new connection"
            );
            let s = pool.status();
            assert_eq!((s.created, s.discarded), (2, 1), "[{name}] {s:?}");
            assert_at_rest(s, f.live());
        });
    });
}

#[test]
fn detach_takes_the_resource_out_of_the_pool_for_good() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let f = Factory::default();
            let pool = instant_pool(1, &f);
            let conn = pool.acquire(&cx).await.unwrap().detach();
            assert_eq!(conn.id, 0);
            assert_eq!(pool.status().size, 0, "[{name}] its slot is free");
            let other = pool.acquire(&cx).await.unwrap();
            assert_eq!(other.id, 1, "[{name}]");
            drop(other);
            drop(conn);
            assert_at_rest(pool.status(), f.live());
        });
    });
}

#[test]
fn a_panicking_health_check_discards_the_resource_and_frees_its_slot() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let f = Factory::default();
            let f2 = f.clone();
            let pool: Arc<ConnPool> = Arc::new(
                Pool::builder(1, move |_cx| {
                    let c = f2.conn();
                    async move { Ok(c) }
                })
                .health_check(|c: &mut Conn| {
                    assert!(!c.broken, "health check exploded");
                    true
                })
                .build(),
            );
            pool.acquire(&cx).await.unwrap().broken = true;
            let p = pool.clone();
            let h = cx
                .spawn(move |cx| async move { p.acquire(&cx).await.map(|c| c.id) })
                .unwrap();
            assert!(h.join(&cx).await.unwrap_err().is_panicked(), "[{name}]");
            let s = pool.status();
            assert_eq!((s.size, s.discarded), (0, 1), "[{name}] {s:?}");
            assert_at_rest(s, f.live());
        });
    });
}

#[test]
fn a_waiter_dropped_after_being_handed_a_resource_passes_it_to_the_next_waiter() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let f = Factory::default();
            let pool = instant_pool(1, &f);
            let held = pool.acquire(&cx).await.unwrap();
            let mut a: Boxed<'_, _> = Box::pin(pool.acquire(&cx));
            let mut b: Boxed<'_, _> = Box::pin(pool.acquire(&cx));
            assert!(poll_once(&mut a).await.is_pending());
            assert!(poll_once(&mut b).await.is_pending());
            drop(held); // handed to `a` (the oldest waiter)...
            assert_eq!(pool.status().waiters, 1);
            drop(a); // ...which never picks it up
            match poll_once(&mut b).await {
                Poll::Ready(Ok(conn)) => assert_eq!(conn.id, 0, "[{name}]"),
                other => panic!(
                    "[{name}] b should have inherited it: {:?}",
                    other.is_ready()
                ),
            }
            drop(b);
            assert_at_rest(pool.status(), f.live());
        });
    });
}

#[test]
fn a_waiter_dropped_after_being_handed_a_free_slot_passes_it_on_or_shrinks_the_pool() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let f = Factory::default();
            let pool = instant_pool(1, &f);
            let held = pool.acquire(&cx).await.unwrap();
            let mut a: Boxed<'_, _> = Box::pin(pool.acquire(&cx));
            let mut b: Boxed<'_, _> = Box::pin(pool.acquire(&cx));
            assert!(poll_once(&mut a).await.is_pending());
            assert!(poll_once(&mut b).await.is_pending());
            held.discard(); // the freed slot goes to `a`...
            drop(a); // ...and on to `b`
            match poll_once(&mut b).await {
                Poll::Ready(Ok(conn)) => assert_eq!(conn.id, 1, "[{name}] created in the slot"),
                other => panic!(
                    "[{name}] b should have inherited the slot: {:?}",
                    other.is_ready()
                ),
            }
            drop(b);
            // With nobody behind it, a dropped slot shrinks the pool.
            let held = pool.acquire(&cx).await.unwrap();
            let mut c: Boxed<'_, _> = Box::pin(pool.acquire(&cx));
            assert!(poll_once(&mut c).await.is_pending());
            held.discard();
            drop(c);
            let s = pool.status();
            assert_eq!((s.size, s.creating), (0, 0), "[{name}] {s:?}");
            assert_at_rest(s, f.live());
        });
    });
}

// ===== obligations (lab) ==================================================

#[test]
fn each_checkout_reserves_a_pool_slot_obligation_that_is_resolved_when_it_is_returned() {
    let lab = LabRuntime::new(LabConfig::new(3));
    lab.block_on(|cx| async move {
        let f = Factory::default();
        let pool = instant_pool(2, &f);
        for _ in 0..3 {
            let a = pool.acquire(&cx).await.unwrap();
            let b = pool.acquire(&cx).await.unwrap();
            drop(a);
            b.discard();
        }
        pool.acquire(&cx).await.unwrap().detach();
    });
    let trace = lab.trace();
    let count = |p: fn(&TraceKind) -> bool| trace.iter().filter(|e| p(&e.kind)).count();
    assert_eq!(
        count(|k| matches!(k, TraceKind::ObligationReserve { .. })),
        7
    );
    assert_eq!(
        count(|k| matches!(k, TraceKind::ObligationCommit { .. })),
        7
    );
    lab.oracle_report().assert_passed();
}

#[test]
fn a_checked_out_resource_forgotten_by_its_task_is_reported_as_an_obligation_leak() {
    let lab = LabRuntime::new(LabConfig::new(4));
    let message = lab.block_on(|cx| async move {
        let pool = Arc::new(instant_pool(1, &Factory::default()));
        let p = pool.clone();
        let h = cx
            .spawn(move |cx| async move {
                let conn = p.acquire(&cx).await.unwrap();
                std::mem::forget(conn); // BUG under test: the slot never returns
            })
            .unwrap();
        let err = h.join(&cx).await.unwrap_err();
        assert!(err.is_panicked());
        err.panic_payload().unwrap().message().to_string()
    });
    assert!(message.contains("obligation leak"), "{message}");
}

// ===== FIFO and cancellation injection (lab) ==============================

/// `k` acquirers queue on a pool of one that the root holds; they register
/// in a logged order, and each holds the connection only long enough to log
/// that it got it. Returns (registration order, service order, cancelled).
async fn fifo_program(cx: Cx, k: usize) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let f = Factory::default();
    let pool = Arc::new(instant_pool(1, &f));
    let held = pool.acquire(&cx).await.unwrap();
    let registered = Arc::new(Mutex::new(Vec::new()));
    let served = Arc::new(Mutex::new(Vec::new()));
    let cancelled = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for i in 0..k {
        let (p, r, s, c) = (
            pool.clone(),
            registered.clone(),
            served.clone(),
            cancelled.clone(),
        );
        handles.push(
            cx.spawn(move |cx| async move {
                for _ in 0..(i * 3) % k {
                    yield_now().await;
                }
                // One dispatch: the log order is the queue order.
                r.lock().unwrap().push(i);
                match p.acquire(&cx).await {
                    Ok(conn) => {
                        s.lock().unwrap().push(i);
                        drop(conn);
                    }
                    Err(_) => c.lock().unwrap().push(i),
                }
            })
            .unwrap(),
        );
    }
    until(|| {
        pool.status().waiters + cancelled.lock().unwrap().len() == k
            && registered.lock().unwrap().len() == k
    })
    .await;
    drop(held);
    for h in handles {
        let _ = h.join(&cx).await;
    }
    assert_at_rest(pool.status(), f.live());
    let r = registered.lock().unwrap().clone();
    let s = served.lock().unwrap().clone();
    let c = cancelled.lock().unwrap().clone();
    (r, s, c)
}

#[test]
fn an_exhausted_pool_serves_its_waiters_in_fifo_order() {
    for seed in 0..20 {
        let lab = LabRuntime::new(LabConfig::new(seed));
        let (registered, served, cancelled) = lab.block_on(|cx| fifo_program(cx, 6));
        assert!(cancelled.is_empty());
        assert_eq!(served, registered, "seed {seed}");
        lab.oracle_report().assert_passed();
    }
}

#[test]
fn cancellation_injected_at_every_await_point_of_queued_acquirers_keeps_the_others_in_fifo_order() {
    for seed in [1, 2, 3] {
        let report = cancel_injection(
            InjectionConfig::from_lab_config(LabConfig::new(seed).step_limit(100_000)),
            |cx| async move {
                let (registered, served, cancelled) = fifo_program(cx, 4).await;
                let expected: Vec<_> = registered
                    .iter()
                    .filter(|i| !cancelled.contains(i))
                    .copied()
                    .collect();
                assert_eq!(
                    served, expected,
                    "FIFO order disturbed by a cancelled waiter"
                );
            },
        );
        assert!(report.passed(), "{report}");
        assert!(report.points_tried().len() >= 4, "{report}");
    }
}

/// Four workers, two rounds each, on a pool of two whose factory yields and
/// sleeps (cancel-aware) and whose health check retires a connection after
/// two uses. Workers hold the connection across a sleep. Checked at the end:
/// the accounting is back at rest, the live connections are exactly the
/// pooled ones, at most two were ever in use at once, and (oracles)
/// every slot obligation was resolved.
async fn churn_program(cx: Cx) {
    const MAX: usize = 2;
    let f = Factory::default();
    let f2 = f.clone();
    let pool: Arc<ConnPool> = Arc::new(
        Pool::builder(MAX, move |cx: Cx| {
            let f = f2.clone();
            async move {
                yield_now().await;
                sleep(&cx, Duration::from_millis(1))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(f.conn())
            }
        })
        .health_check(|c: &mut Conn| c.uses < 2)
        .build(),
    );
    let in_use = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..4u64 {
        let (p, u, pk) = (pool.clone(), in_use.clone(), peak.clone());
        handles.push(
            cx.spawn(move |cx| async move {
                for _ in 0..2 {
                    let mut conn = match p.acquire(&cx).await {
                        Ok(c) => c,
                        Err(_) => return, // cancelled, or the factory was
                    };
                    conn.enter();
                    let now = u.fetch_add(1, Ordering::SeqCst) + 1;
                    pk.fetch_max(now, Ordering::SeqCst);
                    let slept = sleep(&cx, Duration::from_millis(1 + w)).await;
                    u.fetch_sub(1, Ordering::SeqCst);
                    conn.leave();
                    if slept.is_err() {
                        return; // the connection goes back on the way out
                    }
                }
            })
            .unwrap(),
        );
    }
    for h in handles {
        let _ = h.join(&cx).await;
    }
    assert!(peak.load(Ordering::SeqCst) <= MAX);
    assert_at_rest(pool.status(), f.live());
}

#[test]
fn cancellation_injected_at_every_await_point_of_acquire_and_the_factory_leaks_no_slot() {
    for seed in [1, 2, 3] {
        let report = cancel_injection(
            InjectionConfig::from_lab_config(LabConfig::new(seed).step_limit(100_000)),
            churn_program,
        );
        assert!(report.passed(), "{report}");
        assert!(report.points_tried().len() >= 15, "{report}");
    }
}

// ===== OS-thread stress ===================================================

/// Races `fut` against a sleep, polling the sleep *first* (a biased
/// select): when both are ready, `fut` is dropped even if it was already
/// served — the hand-back path (`timeout` polls its inner future first, so
/// it never drops a served wait).
async fn unless_slept<F: Future>(cx: &Cx, d: Duration, fut: F) -> Option<F::Output> {
    let mut nap = std::pin::pin!(sleep(cx, d));
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|tcx| {
        if nap.as_mut().poll(tcx).is_ready() {
            return Poll::Ready(None);
        }
        fut.as_mut().poll(tcx).map(Some)
    })
    .await
}

#[test]
fn stress_on_four_worker_threads_with_random_cancellation_keeps_the_accounting_exact() {
    with_watchdog("pool stress", || {
        let rt = RuntimeBuilder::new().worker_threads(4).build().unwrap();
        let f = Factory::default();
        let f_check = f.clone();
        rt.block_on(move |cx: Cx| async move {
            const MAX: usize = 3;
            const TASKS: usize = 12;
            const ITERS: usize = 400;
            let calls = Arc::new(AtomicUsize::new(0));
            let f2 = f.clone();
            let pool: Arc<ConnPool> = Arc::new(
                Pool::builder(MAX, move |_cx| {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    let f = f2.clone();
                    async move {
                        if n % 4 == 1 {
                            yield_now().await;
                        }
                        if n % 10 == 3 {
                            return Err("flaky factory".to_string());
                        }
                        Ok(f.conn())
                    }
                })
                .health_check(|c: &mut Conn| c.uses < 5 && !c.broken)
                .build(),
            );
            let in_use = Arc::new(AtomicUsize::new(0));
            let mut handles = Vec::new();
            for t in 0..TASKS {
                let (p, u) = (pool.clone(), in_use.clone());
                handles.push(
                    cx.spawn(move |cx| async move {
                        let mut rng = XorShift::new(0x9001 + t as u64);
                        for _ in 0..ITERS {
                            let d = Duration::from_micros(rng.below(300));
                            let acquired = if rng.chance(15) {
                                match timeout(&cx, d, p.acquire(&cx)).await {
                                    Ok(r) => r,
                                    Err(_) => continue,
                                }
                            } else if rng.chance(20) {
                                match unless_slept(&cx, d, p.acquire(&cx)).await {
                                    Some(r) => r,
                                    None => continue,
                                }
                            } else {
                                p.acquire(&cx).await
                            };
                            let mut conn = match acquired {
                                Ok(c) => c,
                                Err(PoolError::Create(_)) => continue,
                                Err(_) => return,
                            };
                            conn.enter();
                            let now = u.fetch_add(1, Ordering::SeqCst) + 1;
                            assert!(now <= MAX, "{now} connections in use at once");
                            if rng.chance(50) {
                                yield_now().await;
                            }
                            u.fetch_sub(1, Ordering::SeqCst);
                            conn.leave();
                            match rng.below(20) {
                                0 => conn.discard(),
                                1 => conn.broken = true,
                                _ => {}
                            }
                        }
                    })
                    .unwrap(),
                );
            }
            let mut rng = XorShift::new(0xAB0);
            for _ in 0..3 {
                for _ in 0..rng.below(50) {
                    yield_now().await;
                }
                handles[rng.below(TASKS as u64) as usize].abort();
            }
            for h in handles {
                let _ = h.join(&cx).await;
            }
            let s = pool.status();
            assert!(s.created >= MAX as u64, "{s:?}");
            assert!(
                s.discarded > 0 && s.create_failures > 0,
                "paths not exercised: {s:?}"
            );
            assert_at_rest(s, f.live());
        });
        assert_eq!(f_check.live(), 0, "every connection dropped with the pool");
        assert_eq!(rt.pending_obligations(), 0);
    });
}
