//! Issue #5 stress test: up to 1,000,000 tiny tasks spawned across nested
//! regions on the 2-worker multi-thread runtime, with random aborts, random
//! region failures and random obligations (reserved, then committed or
//! dropped), all chosen by a deterministic xorshift PRNG.
//!
//! Shape (`N` = total leaf tasks, 1000 level-2 regions):
//! - the root spawns 100 *group* tasks, in batches of 10 (joined per batch
//!   to bound memory); each opens a region (level 1);
//! - each group spawns 10 *subgroup* tasks; each opens a region (level 2)
//!   and spawns `N / 1000` leaves, then aborts / joins / drops their
//!   handles at random and fails its region body 10% of the time;
//! - 1 leaf in 50 opens its own region (level 3) with two inner tasks.
//!
//! Afterwards: `tasks_spawned == tasks_completed`, `regions_created ==
//! regions_closed`, `obligations_leaked == 0`, no live task, region or
//! obligation, every spawned future dropped exactly once, and every task
//! body either finished or was cancelled (exactly one of the two), and
//! every reserved obligation was committed or aborted.
//!
//! Size: the full 1,000,000 leaves by default (3–12 s of run time in the
//! debug test profile with 2 workers on a shared 2-CPU machine, measured;
//! ~1.01M tasks in total with the level-3 ones).
//! `ASUPERSYNC_STRESS_TASKS=<n>` changes the count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use asupersync::types::CancelReason;
use asupersync::{Cx, Runtime, RuntimeBuilder, yield_now};

const GROUPS: u64 = 100;
const BATCH: u64 = 10;
const SUBGROUPS: u64 = 10;
const DEFAULT_TASKS: u64 = 1_000_000;

/// Deterministic xorshift64* PRNG.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Default)]
struct Counters {
    /// Successful spawns (each made exactly one `Body` guard).
    spawned: AtomicU64,
    /// Guards dropped (each spawned future dropped exactly once).
    dropped: AtomicU64,
    /// Bodies that reached their end.
    finished: AtomicU64,
    /// Bodies dropped before reaching their end (cancelled / force-dropped).
    cancelled: AtomicU64,
    /// Region bodies that ran.
    region_bodies: AtomicU64,
    obligations_reserved: AtomicU64,
    obligations_committed: AtomicU64,
    obligations_dropped: AtomicU64,
}

/// Lives inside every spawned future. `done()` marks the body finished;
/// dropping the guard counts the outcome (finished or cancelled) once.
struct Body {
    c: Arc<Counters>,
    finished: AtomicBool,
}

impl Body {
    fn new(c: &Arc<Counters>) -> Self {
        Self {
            c: c.clone(),
            finished: AtomicBool::new(false),
        }
    }
    fn done(&self) {
        assert!(
            !self.finished.swap(true, Ordering::SeqCst),
            "a body finished twice"
        );
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        self.c.dropped.fetch_add(1, Ordering::SeqCst);
        if self.finished.load(Ordering::SeqCst) {
            self.c.finished.fetch_add(1, Ordering::SeqCst);
        } else {
            self.c.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Spawns a task whose future carries a `Body` guard, counting the spawn.
fn spawn_counted<Fut>(
    cx: &Cx,
    c: &Arc<Counters>,
    f: impl FnOnce(Cx, Body) -> Fut,
) -> Option<asupersync::TaskHandle<()>>
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let c2 = c.clone();
    // The guard is created inside the closure, which only runs on success.
    match cx.spawn(move |cx| f(cx, Body::new(&c2))) {
        Ok(h) => {
            c.spawned.fetch_add(1, Ordering::SeqCst);
            Some(h)
        }
        Err(_) => None, // the region is closing (cancelled)
    }
}

async fn leaf(cx: Cx, body: Body, seed: u64) {
    let c = body.c.clone();
    let mut rng = XorShift::new(seed);
    let obligation = if rng.chance(12) {
        match cx.reserve_obligation("stress_permit") {
            Ok(o) => {
                c.obligations_reserved.fetch_add(1, Ordering::SeqCst);
                Some(o)
            }
            Err(_) => None,
        }
    } else {
        None
    };
    for _ in 0..rng.below(3) {
        yield_now().await; // a cancellation may drop the body here
    }
    if rng.chance(5) {
        // Linger, cancel-aware: an abort or region failure that arrives now
        // is observed at a checkpoint and ends the body early (cancelled).
        for _ in 0..20 {
            if cx.checkpoint().is_err() {
                return; // `body` drops unfinished: counted as cancelled
            }
            yield_now().await;
        }
    }
    if rng.chance(2) {
        // Level 3: a small nested region.
        let c3 = c.clone();
        let _ = cx
            .region(move |cx| async move {
                c3.region_bodies.fetch_add(1, Ordering::SeqCst);
                for _ in 0..2 {
                    let _ = spawn_counted(&cx, &c3, |_cx, body| async move {
                        yield_now().await;
                        body.done();
                    });
                }
                Ok::<_, ()>(())
            })
            .await;
    }
    if let Some(o) = obligation {
        if rng.chance(50) {
            o.commit();
            c.obligations_committed.fetch_add(1, Ordering::SeqCst);
        } else {
            drop(o); // aborts the reservation
            c.obligations_dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
    body.done();
}

async fn subgroup(cx: Cx, body: Body, seed: u64, leaves: u64) {
    let c = body.c.clone();
    let _ = cx
        .region(move |cx| async move {
            c.region_bodies.fetch_add(1, Ordering::SeqCst);
            let mut rng = XorShift::new(seed);
            let mut handles = Vec::with_capacity(leaves as usize);
            for i in 0..leaves {
                let s = seed.wrapping_mul(31).wrapping_add(i + 1);
                match spawn_counted(&cx, &c, move |cx, body| leaf(cx, body, s)) {
                    Some(h) => handles.push(h),
                    None => break,
                }
                if rng.chance(2) {
                    yield_now().await;
                }
            }
            for h in handles {
                match rng.below(20) {
                    0 => h.abort(),
                    1 => h.abort_with(CancelReason::timeout().with_message("stress")),
                    2..=4 => {
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
    body.done();
}

async fn group(cx: Cx, body: Body, seed: u64, leaves: u64) {
    let c = body.c.clone();
    let _ = cx
        .region(move |cx| async move {
            c.region_bodies.fetch_add(1, Ordering::SeqCst);
            let mut rng = XorShift::new(seed);
            let mut subs = Vec::new();
            for s in 0..SUBGROUPS {
                let sseed = seed ^ (s + 1).wrapping_mul(0x9E37_79B9);
                match spawn_counted(&cx, &c, move |cx, body| subgroup(cx, body, sseed, leaves)) {
                    Some(h) => subs.push(h),
                    None => break,
                }
            }
            for h in subs {
                match rng.below(20) {
                    0 => h.abort(), // cancels its region's leaves too
                    1..=12 => {
                        let _ = h.join(&cx).await;
                    }
                    _ => drop(h),
                }
            }
            if rng.chance(5) {
                Err("random group failure")
            } else {
                Ok(())
            }
        })
        .await;
    body.done();
}

fn stress(rt: &Runtime, total_leaves: u64, seed: u64) -> Arc<Counters> {
    let leaves = (total_leaves / (GROUPS * SUBGROUPS)).max(1);
    let c = Arc::new(Counters::default());
    let c_root = c.clone();
    rt.block_on(move |cx: Cx| async move {
        let c = c_root;
        let mut rng = XorShift::new(seed);
        for _batch in 0..GROUPS / BATCH {
            let mut handles = Vec::new();
            for _ in 0..BATCH {
                let gseed = rng.next_u64();
                let h = spawn_counted(&cx, &c, move |cx, body| group(cx, body, gseed, leaves))
                    .expect("the root region is open");
                if rng.chance(3) {
                    h.abort();
                }
                handles.push(h);
            }
            for h in handles {
                let _ = h.join(&cx).await;
            }
        }
    });
    c
}

#[test]
fn a_million_tasks_in_nested_regions_with_random_cancellation_leak_nothing() {
    let total: u64 = std::env::var("ASUPERSYNC_STRESS_TASKS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(DEFAULT_TASKS);
    let seed = 0x5EED_0005_1337_C0DE_u64;
    let rt = RuntimeBuilder::new()
        .worker_threads(2)
        .build()
        .expect("2-worker runtime builds");

    // Watchdog: a hang fails the test instead of stalling CI.
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    let worker = std::thread::spawn(move || {
        let c = stress(&rt, total, seed);
        let _ = tx.send(());
        (rt, c)
    });
    let limit = Duration::from_secs(60 + total / 5_000);
    if rx.recv_timeout(limit).is_err() && !worker.is_finished() {
        panic!("the stress run with {total} leaves did not finish within {limit:?} (hang?)");
    }
    let (rt, c) = match worker.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    };
    let elapsed = started.elapsed();
    eprintln!("stress: {total} leaves requested, elapsed {elapsed:?}");

    let spawned = c.spawned.load(Ordering::SeqCst);
    let stats = rt.stats();
    eprintln!(
        "stress: spawned {spawned}, finished {}, cancelled {}, regions {}, obligations reserved {} (committed {}, dropped {}), kernel {:?}",
        c.finished.load(Ordering::SeqCst),
        c.cancelled.load(Ordering::SeqCst),
        c.region_bodies.load(Ordering::SeqCst),
        c.obligations_reserved.load(Ordering::SeqCst),
        c.obligations_committed.load(Ordering::SeqCst),
        c.obligations_dropped.load(Ordering::SeqCst),
        (
            stats.tasks_spawned,
            stats.tasks_completed,
            stats.regions_created,
            stats.regions_closed,
            stats.obligations_committed,
            stats.obligations_aborted,
            stats.obligations_leaked,
            stats.forced_drop_count
        ),
    );

    // Random cancellation stops some spawning, but most of it happens.
    assert!(
        spawned >= total / 2,
        "only {spawned} tasks spawned of {total} requested"
    );
    assert_eq!(
        stats.tasks_spawned,
        spawned + 1,
        "kernel task count = our spawns + the root body task"
    );
    assert_eq!(
        stats.tasks_spawned, stats.tasks_completed,
        "every task completed"
    );
    assert_eq!(
        stats.regions_created,
        c.region_bodies.load(Ordering::SeqCst) + 1,
        "regions = region bodies run + the root region"
    );
    assert_eq!(
        stats.regions_created, stats.regions_closed,
        "every region closed"
    );
    assert_eq!(stats.obligations_leaked, 0, "leaks: {:?}", stats.leaks);
    assert_eq!(rt.live_tasks(), 0);
    assert_eq!(rt.live_regions(), 0);
    assert_eq!(rt.pending_obligations(), 0);

    // Our own accounting.
    assert_eq!(
        c.dropped.load(Ordering::SeqCst),
        spawned,
        "every spawned future was dropped exactly once"
    );
    let finished = c.finished.load(Ordering::SeqCst);
    let cancelled = c.cancelled.load(Ordering::SeqCst);
    assert_eq!(
        finished + cancelled,
        spawned,
        "every body finished or was cancelled, exactly once"
    );
    assert!(finished > spawned / 2, "most bodies finished ({finished})");
    let reserved = c.obligations_reserved.load(Ordering::SeqCst);
    if total >= 100_000 {
        // Large enough that the random choices surely hit these paths.
        assert!(cancelled > 0, "the random aborts cancelled some bodies");
        assert!(reserved > 0, "some obligations were reserved");
    }
    assert_eq!(
        stats.obligations_committed + stats.obligations_aborted,
        reserved,
        "every reserved obligation was committed or aborted"
    );
    assert_eq!(
        stats.obligations_committed,
        c.obligations_committed.load(Ordering::SeqCst),
        "the kernel saw exactly our commits"
    );
    assert!(
        stats.obligations_aborted >= c.obligations_dropped.load(Ordering::SeqCst),
        "dropped permits abort (cancelled holders abort theirs too)"
    );
}
