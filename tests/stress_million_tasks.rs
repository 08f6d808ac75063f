//! Issue 12 (item 6): a million tasks in a tree of regions, on both
//! production drivers, with random region cancels, task aborts, sleeps,
//! obligations and finalizers, all chosen up front by a seeded PRNG.
//!
//! Shape (`N` leaves; `N` is 1,000,000 in release builds and 100,000 in
//! debug builds, `ASUPERSYNC_STRESS_TASKS=<n>` overrides it):
//! - the root spawns 100 *group* tasks in batches of 10 (joined per batch
//!   to bound memory) and aborts 3 % of them: each group opens a region
//!   (level 1), so an abort cancels a whole subtree;
//! - each group spawns 10 *subgroup* tasks, aborts 5 % of them (a region
//!   cancel one level down), joins 60 % and drops the other handles; each
//!   subgroup opens a region (level 2) and spawns `N / 1000` *leaves*,
//!   aborting 8 % of them (some with a `Timeout` reason), joining 15 %;
//!   a group fails its region body 5 % of the time and a subgroup 10 %
//!   (fail-fast cancels the children it did not join);
//! - a leaf yields, sleeps briefly (1 in 33), lingers at cancel-aware
//!   checkpoints (1 in 20), reserves an obligation (1 in 8) that it
//!   commits or aborts at its end (an abort or a region cancel while it is
//!   held aborts it by drop), and 1 leaf in 50 opens its own region
//!   (level 3) with two children;
//! - every region body registers a finalizer (`defer_sync`).
//!
//! A task is *exposed* if the plan aborts it or an ancestor, or leaves it
//! unjoined in a region whose body fails: only exposed tasks may end
//! cancelled. Afterwards: every spawned future dropped exactly once, as
//! finished or cancelled; the kernel's counts equal ours (tasks, regions,
//! obligations); nothing live, pending or leaked; every finalizer ran
//! exactly once, after every task of its region had ended; every join and
//! region outcome is the one the plan allows.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asupersync::types::{CancelKind, CancelReason};
use asupersync::{Cx, JoinError, Outcome, Runtime, TaskHandle, yield_now};
use support::{Driver, XorShift, assert_quiescent};

const GROUPS: u64 = 100;
const BATCH: u64 = 10;
const SUBGROUPS: u64 = 10;

fn leaves_requested() -> u64 {
    std::env::var("ASUPERSYNC_STRESS_TASKS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        })
}

#[derive(Default)]
struct Counters {
    /// Successful spawns (each made exactly one `Body`).
    spawned: AtomicU64,
    /// Bodies dropped (each spawned future dropped once).
    dropped: AtomicU64,
    /// Bodies that reached their end.
    finished: AtomicU64,
    /// Bodies dropped before their end (cancelled).
    cancelled: AtomicU64,
    /// Region bodies that ran.
    regions: AtomicU64,
    finalizers_registered: AtomicU64,
    finalizers_run: AtomicU64,
    obligations_reserved: AtomicU64,
    obligations_committed: AtomicU64,
    /// Aborted by the leaf's own choice.
    obligations_aborted: AtomicU64,
    /// Still held when the leaf was cancelled: aborted by the drop.
    obligations_cancelled: AtomicU64,
    sleeps: AtomicU64,
    joins_ok: AtomicU64,
    joins_cancelled: AtomicU64,
    /// Broken expectations, the first few kept verbatim.
    violations: AtomicU64,
    first_violations: Mutex<Vec<String>>,
}

impl Counters {
    fn violation(&self, what: String) {
        self.violations.fetch_add(1, SeqCst);
        let mut first = self.first_violations.lock().unwrap();
        if first.len() < 10 {
            first.push(what);
        }
    }
}

/// Tasks of one region that have not ended yet (their `Body` lives).
#[derive(Clone, Default)]
struct Live(Arc<AtomicU64>);

/// Lives inside every spawned future: dropping it counts the outcome once.
struct Body {
    c: Arc<Counters>,
    region: Live,
    exposed: bool,
    finished: bool,
}

impl Body {
    fn done(mut self) {
        self.finished = true;
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        let c = &self.c;
        c.dropped.fetch_add(1, SeqCst);
        if self.finished {
            c.finished.fetch_add(1, SeqCst);
        } else {
            c.cancelled.fetch_add(1, SeqCst);
            if !self.exposed {
                c.violation("a task no cancel could reach ended cancelled".into());
            }
        }
        self.region.0.fetch_sub(1, SeqCst);
    }
}

/// Spawns a task in `cx`'s region (whose tasks `live` counts) whose
/// future owns a `Body`.
fn spawn_counted<Fut>(
    cx: &Cx,
    c: &Arc<Counters>,
    live: &Live,
    exposed: bool,
    f: impl FnOnce(Cx, Body) -> Fut + Send + 'static,
) -> Option<TaskHandle<()>>
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (c2, live2) = (c.clone(), live.clone());
    match cx.spawn(move |cx| {
        live2.0.fetch_add(1, SeqCst);
        let body = Body {
            c: c2,
            region: live2,
            exposed,
            finished: false,
        };
        f(cx, body)
    }) {
        Ok(h) => {
            c.spawned.fetch_add(1, SeqCst);
            Some(h)
        }
        // Only a closing (cancelled) region refuses a spawn.
        Err(e) => {
            if !exposed {
                c.violation(format!("a spawn in an unexposed region failed: {e:?}"));
            }
            None
        }
    }
}

/// Called first in every region body: counts the body and registers a
/// finalizer that must run once, after every task of the region ended.
fn enter_region(cx: &Cx, c: &Arc<Counters>, live: &Live) {
    c.regions.fetch_add(1, SeqCst);
    let (c2, live2) = (c.clone(), live.clone());
    let ran = AtomicBool::new(false);
    let registered = cx.defer_sync(move || {
        if ran.swap(true, SeqCst) {
            c2.violation("a finalizer ran twice".into());
        }
        let left = live2.0.load(SeqCst);
        if left != 0 {
            c2.violation(format!(
                "a finalizer ran with {left} tasks of its region alive"
            ));
        }
        c2.finalizers_run.fetch_add(1, SeqCst);
    });
    if registered.is_ok() {
        c.finalizers_registered.fetch_add(1, SeqCst);
    }
}

/// What the plan does with a child's handle.
#[derive(Clone, Copy, PartialEq)]
enum Fate {
    Abort,
    AbortTimeout,
    Join,
    Drop,
}

/// Checks a join against the plan: an unexposed child returns, an aborted
/// one returns or ends cancelled with the abort's reason kind.
fn check_join(
    c: &Counters,
    what: &str,
    fate: Fate,
    parent_exposed: bool,
    r: Result<(), JoinError>,
) {
    match &r {
        Ok(()) => {
            c.joins_ok.fetch_add(1, SeqCst);
        }
        Err(JoinError::Cancelled(_)) => {
            c.joins_cancelled.fetch_add(1, SeqCst);
        }
        Err(e) => c.violation(format!("{what}: joined as {e:?}")),
    }
    if parent_exposed {
        return; // the joiner's own cancel may end the join too
    }
    let expected_kind = match fate {
        Fate::Abort => Some(CancelKind::User),
        Fate::AbortTimeout => Some(CancelKind::Timeout),
        Fate::Join | Fate::Drop => None,
    };
    match (&r, expected_kind) {
        (Ok(()), _) => {}
        (Err(JoinError::Cancelled(reason)), Some(kind)) if reason.kind == kind => {}
        (r, kind) => c.violation(format!(
            "{what}: joined as {r:?}, the plan allows Ok or a {kind:?} cancel"
        )),
    }
}

/// Checks a region's outcome: unexposed, it is the body's result.
fn check_region(c: &Counters, what: &str, exposed: bool, fails: bool, o: &Outcome<(), &str>) {
    let as_planned = match o {
        Outcome::Ok(()) => !fails,
        Outcome::Err(_) => fails,
        Outcome::Cancelled(_) => exposed,
        Outcome::Panicked(p) => {
            c.violation(format!("{what}: panicked: {p:?}"));
            true
        }
    };
    if !as_planned {
        c.violation(format!(
            "{what}: ended {o:?} (exposed {exposed}, body fails {fails})"
        ));
    }
}

async fn leaf(cx: Cx, body: Body, seed: u64) {
    let c = body.c.clone();
    let mut rng = XorShift::new(seed);
    /// Aborts (by drop) an obligation still held when the leaf is dropped.
    struct Held(Option<asupersync::obligation::Obligation>, Arc<Counters>);
    impl Drop for Held {
        fn drop(&mut self) {
            if self.0.take().is_some() {
                self.1.obligations_cancelled.fetch_add(1, SeqCst);
            }
        }
    }
    let mut held = Held(None, c.clone());
    if rng.chance(12) {
        match cx.reserve_obligation("stress_permit") {
            Ok(o) => {
                c.obligations_reserved.fetch_add(1, SeqCst);
                held.0 = Some(o);
            }
            Err(e) => {
                if !body.exposed {
                    c.violation(format!("reserve in an open region failed: {e:?}"));
                }
            }
        }
    }
    for _ in 0..rng.below(3) {
        yield_now().await; // a cancel may drop the body here
    }
    if rng.chance(3) {
        c.sleeps.fetch_add(1, SeqCst);
        let micros = 200 + rng.below(800);
        if asupersync::time::sleep(&cx, Duration::from_micros(micros))
            .await
            .is_err()
        {
            return; // cancelled while asleep: the body drops unfinished
        }
    }
    if rng.chance(5) {
        for _ in 0..10 {
            if cx.checkpoint().is_err() {
                return;
            }
            yield_now().await;
        }
    }
    if rng.chance(2) {
        // Level 3: a small region with two children.
        let c3 = c.clone();
        let exposed = body.exposed;
        let sleeper = rng.chance(50);
        let outcome = cx
            .region(move |cx| async move {
                let live = Live::default();
                enter_region(&cx, &c3, &live);
                for i in 0..2 {
                    let sleeps = sleeper && i == 0;
                    spawn_counted(&cx, &c3, &live, exposed, move |cx, body| async move {
                        if sleeps {
                            if asupersync::time::sleep(&cx, Duration::from_micros(300))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        } else {
                            yield_now().await;
                        }
                        body.done();
                    });
                }
                Ok::<_, &str>(())
            })
            .await;
        check_region(&c, "level-3 region", body.exposed, false, &outcome);
    }
    if let Some(o) = held.0.take() {
        if rng.chance(50) {
            o.commit();
            c.obligations_committed.fetch_add(1, SeqCst);
        } else {
            o.abort();
            c.obligations_aborted.fetch_add(1, SeqCst);
        }
    }
    body.done();
}

/// The fates of `n` children, drawn before any is spawned.
fn plan(rng: &mut XorShift, n: u64, abort: u64, timeout: u64, join: u64) -> Vec<Fate> {
    (0..n)
        .map(|_| {
            let r = rng.below(100);
            if r < abort {
                Fate::Abort
            } else if r < abort + timeout {
                Fate::AbortTimeout
            } else if r < abort + timeout + join {
                Fate::Join
            } else {
                Fate::Drop
            }
        })
        .collect()
}

/// Where `fan_out` spawns: the region's tasks, what they are, whether the
/// region is exposed to a cancel, and whether its body will fail.
struct Fan<'a> {
    c: &'a Arc<Counters>,
    live: &'a Live,
    what: &'static str,
    exposed: bool,
    /// The region body fails after `fan_out`, so the children it does not
    /// join are exposed to its fail-fast cancel.
    fails: bool,
}

/// Spawns one child per fate (`child(i)` makes the i-th), then aborts,
/// joins or drops the handles as the fates say.
async fn fan_out<F, G, Fut>(
    cx: &Cx,
    fan: Fan<'_>,
    fates: Vec<Fate>,
    rng: &mut XorShift,
    mut child: F,
) where
    F: FnMut(usize) -> G,
    G: FnOnce(Cx, Body) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut handles = Vec::with_capacity(fates.len());
    for (i, fate) in fates.into_iter().enumerate() {
        let exposed = fan.exposed || fate != Fate::Join && (fate != Fate::Drop || fan.fails);
        match spawn_counted(cx, fan.c, fan.live, exposed, child(i)) {
            Some(h) => handles.push((h, fate)),
            None => break,
        }
        if rng.chance(2) {
            yield_now().await;
        }
    }
    for (h, fate) in &handles {
        match fate {
            Fate::Abort => h.abort(),
            Fate::AbortTimeout => h.abort_with(CancelReason::timeout().with_message("stress")),
            Fate::Join | Fate::Drop => {}
        }
    }
    for (h, fate) in handles {
        // Aborted children are joined half of the time.
        if fate == Fate::Join || fate != Fate::Drop && rng.chance(50) {
            let r = h.join(cx).await;
            check_join(fan.c, fan.what, fate, fan.exposed, r);
        }
    }
}

async fn subgroup(cx: Cx, body: Body, seed: u64, leaves: u64) {
    let c = body.c.clone();
    let exposed = body.exposed;
    let mut rng = XorShift::new(seed);
    let fails = rng.chance(10);
    let fates = plan(&mut rng, leaves, 5, 3, 15);
    let c2 = c.clone();
    let outcome = cx
        .region(move |cx| async move {
            let live = Live::default();
            enter_region(&cx, &c2, &live);
            let fan = Fan {
                c: &c2,
                live: &live,
                what: "leaf",
                exposed,
                fails,
            };
            fan_out(&cx, fan, fates, &mut rng, |i| {
                let s = seed.wrapping_mul(31).wrapping_add(i as u64 + 1);
                move |cx, body| leaf(cx, body, s)
            })
            .await;
            if fails {
                Err("subgroup failure")
            } else {
                Ok(())
            }
        })
        .await;
    check_region(&c, "subgroup region", exposed, fails, &outcome);
    body.done();
}

async fn group(cx: Cx, body: Body, seed: u64, leaves: u64) {
    let c = body.c.clone();
    let exposed = body.exposed;
    let mut rng = XorShift::new(seed);
    let fails = rng.chance(5);
    let fates = plan(&mut rng, SUBGROUPS, 5, 0, 60);
    let c2 = c.clone();
    let outcome = cx
        .region(move |cx| async move {
            let live = Live::default();
            enter_region(&cx, &c2, &live);
            let fan = Fan {
                c: &c2,
                live: &live,
                what: "subgroup",
                exposed,
                fails,
            };
            fan_out(&cx, fan, fates, &mut rng, |i| {
                let s = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9);
                move |cx, body| subgroup(cx, body, s, leaves)
            })
            .await;
            if fails { Err("group failure") } else { Ok(()) }
        })
        .await;
    check_region(&c, "group region", exposed, fails, &outcome);
    body.done();
}

fn stress(rt: &Runtime, total: u64, seed: u64) -> Arc<Counters> {
    let leaves = (total / (GROUPS * SUBGROUPS)).max(1);
    let c = Arc::new(Counters::default());
    let c_root = c.clone();
    rt.block_on(move |cx: Cx| async move {
        let c = c_root;
        let live = Live::default();
        let mut rng = XorShift::new(seed);
        for _ in 0..GROUPS / BATCH {
            let fates = plan(&mut rng, BATCH, 3, 0, 100);
            let seeds: Vec<u64> = (0..BATCH).map(|_| rng.next_u64()).collect();
            let fan = Fan {
                c: &c,
                live: &live,
                what: "group",
                exposed: false,
                fails: false,
            };
            fan_out(&cx, fan, fates, &mut rng, |i| {
                let s = seeds[i];
                move |cx, body| group(cx, body, s, leaves)
            })
            .await;
        }
    });
    c
}

fn stress_on(d: Driver) {
    let total = leaves_requested();
    let seed = 0x5EED_0012_0006_u64;
    let rt = d.rt();
    let started = Instant::now();
    let c = stress(&rt, total, seed);
    let elapsed = started.elapsed();
    let s = rt.stats();
    let n = |a: &AtomicU64| a.load(SeqCst);
    let spawned = n(&c.spawned);
    eprintln!(
        "stress_million_tasks [{}]: {total} leaves requested, {spawned} tasks spawned in \
         {elapsed:?}: finished {}, cancelled {}, regions {}, finalizers {}/{}, sleeps {}, \
         joins ok {} cancelled {}, obligations reserved {} (committed {}, aborted {}, \
         aborted by cancel {}), forced drops {}",
        d.name(),
        n(&c.finished),
        n(&c.cancelled),
        n(&c.regions),
        n(&c.finalizers_run),
        n(&c.finalizers_registered),
        n(&c.sleeps),
        n(&c.joins_ok),
        n(&c.joins_cancelled),
        n(&c.obligations_reserved),
        n(&c.obligations_committed),
        n(&c.obligations_aborted),
        n(&c.obligations_cancelled),
        s.forced_drop_count,
    );

    let violations = c.first_violations.lock().unwrap().clone();
    assert_eq!(
        n(&c.violations),
        0,
        "outcomes the plan does not allow: {violations:#?}"
    );
    // Nothing live, pending or leaked; spawned == completed, created == closed.
    assert_quiescent(&rt);
    assert!(s.leaks.is_empty(), "leak reports: {:?}", s.leaks);

    // Every task accounted for, by us and by the kernel.
    assert!(
        spawned > total / 2,
        "only {spawned} of ~{total} tasks spawned"
    );
    assert_eq!(n(&c.dropped), spawned, "every future dropped exactly once");
    assert_eq!(n(&c.finished) + n(&c.cancelled), spawned);
    // The kernel also counts the root task and the task that runs a
    // region's finalizers (today one per region that has any).
    let kernel_extra = s.tasks_spawned.checked_sub(spawned + 1);
    assert!(
        kernel_extra.is_some_and(|x| x <= n(&c.regions)),
        "kernel tasks {} = ours {spawned} + the root + at most one finalizer task per region",
        s.tasks_spawned
    );
    assert_eq!(s.tasks_completed, s.tasks_spawned);

    // No orphan: every region closed, its finalizer ran once, after its tasks.
    assert_eq!(
        s.regions_created,
        n(&c.regions) + 1,
        "ours + the root region"
    );
    assert_eq!(s.regions_closed, s.regions_created);
    assert_eq!(n(&c.finalizers_run), n(&c.finalizers_registered));
    assert_eq!(
        n(&c.finalizers_registered),
        n(&c.regions),
        "every region body registered its finalizer"
    );

    // Obligations: each reserved one committed or aborted, exactly once.
    let reserved = n(&c.obligations_reserved);
    assert_eq!(s.obligations_committed, n(&c.obligations_committed));
    assert_eq!(
        s.obligations_aborted,
        n(&c.obligations_aborted) + n(&c.obligations_cancelled),
        "aborted by choice + aborted by a cancel"
    );
    assert_eq!(s.obligations_committed + s.obligations_aborted, reserved);

    // The random plan reached every path.
    assert!(n(&c.cancelled) > 0, "some tasks were cancelled");
    assert!(
        n(&c.obligations_cancelled) > 0,
        "a cancel aborted a held obligation"
    );
    assert!(n(&c.obligations_committed) > 0 && n(&c.obligations_aborted) > 0);
    assert!(n(&c.sleeps) > 0 && n(&c.joins_cancelled) > 0);
}

on_both_drivers! {
    /// The full tree (1,000,000 leaves in release, 100,000 in debug).
    fn a_million_tasks_in_a_tree_of_regions_with_random_cancels_end_with_nothing_leaked_or_orphaned(d: Driver) {
        stress_on(d);
    }
}
