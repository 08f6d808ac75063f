//! `sync::RwLock`: shared readers, exclusive writers, writer preference with
//! a reader-starvation bound, no queue jumping, cancel-safe waits — on both
//! drivers, in the lab (cancellation injection at every await point) and
//! under OS-thread stress with random aborts.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use asupersync::lab::{InjectionConfig, LabConfig, LabRuntime, cancel_injection};
use asupersync::sync::RwLock;
use asupersync::sync::rwlock::DEFAULT_MAX_CONSECUTIVE_WRITERS;
use asupersync::{Cx, RuntimeBuilder, TaskHandle, yield_now};
use support::{Gate, Log, until, with_watchdog};

async fn join_tolerating_cancel<T: Send + 'static>(cx: &Cx, h: TaskHandle<T>) -> Option<T> {
    match h.join(cx).await {
        Ok(v) => Some(v),
        Err(e) if e.is_cancelled() => None,
        Err(e) => panic!("task failed: {e:?}"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

/// Spawns a task that takes `kind` access, logs `name` (with the number of
/// readers at that moment for a reader), holds it until `release` opens,
/// and returns once the task is queued.
async fn spawn_waiter(
    cx: &Cx,
    lock: &Arc<RwLock<()>>,
    kind: Kind,
    name: String,
    log: &Log,
    release: &Gate,
) -> TaskHandle<()> {
    let (r0, w0) = lock.waiters();
    let (lock2, log, release) = (lock.clone(), log.clone(), release.clone());
    let h = cx
        .spawn(move |cx| async move {
            match kind {
                Kind::Read => {
                    let Ok(_g) = lock2.read(&cx).await else {
                        return;
                    };
                    log.push(name);
                    release.wait().await;
                }
                Kind::Write => {
                    let Ok(_g) = lock2.write(&cx).await else {
                        return;
                    };
                    assert_eq!(lock2.readers(), 0);
                    log.push(name);
                    release.wait().await;
                }
            }
        })
        .unwrap();
    let lock = lock.clone();
    until(move || {
        let (r, w) = lock.waiters();
        r + w > r0 + w0
    })
    .await;
    h
}

fn open_gate() -> Gate {
    let g = Gate::new();
    g.open();
    g
}

on_both_drivers! {
    /// Readers hold the lock together; a writer waits for all of them.
    fn readers_share_and_a_writer_waits_for_all_of_them(d: Driver) {
        d.rt().block_on(|cx| async move {
            let lock = Arc::new(RwLock::new(()));
            let log = Log::new();
            let a = lock.read(&cx).await.unwrap();
            let b = lock.read(&cx).await.unwrap();
            assert_eq!(lock.readers(), 2);
            let w = spawn_waiter(&cx, &lock, Kind::Write, "w".into(), &log, &open_gate()).await;
            drop(a);
            assert_eq!(lock.waiters(), (0, 1), "one reader still holds it");
            drop(b);
            w.join(&cx).await.unwrap();
            assert_eq!(log.snapshot(), ["w"]);
            assert!(!lock.is_write_locked() && lock.readers() == 0);
        });
    }

    /// Writer preference: a reader that arrives while a writer waits
    /// queues behind it (try_read fails too), and the writer goes first.
    fn a_reader_arriving_behind_a_waiting_writer_queues_behind_it(d: Driver) {
        d.rt().block_on(|cx| async move {
            let lock = Arc::new(RwLock::new(()));
            let log = Log::new();
            let open = open_gate();
            let held = lock.read(&cx).await.unwrap();
            let w = spawn_waiter(&cx, &lock, Kind::Write, "w".into(), &log, &open).await;
            assert!(lock.try_read().is_none(), "a new reader does not pass a waiting writer");
            let r = spawn_waiter(&cx, &lock, Kind::Read, "r".into(), &log, &open).await;
            assert_eq!(lock.waiters(), (1, 1));
            drop(held);
            w.join(&cx).await.unwrap();
            r.join(&cx).await.unwrap();
            assert_eq!(log.snapshot(), ["w", "r"]);
        });
    }

    /// `try_write` needs a free lock and an empty queue; `try_read` fails
    /// while a writer holds or waits.
    fn try_read_and_try_write_never_jump_the_queue(d: Driver) {
        d.rt().block_on(|cx| async move {
            let lock = Arc::new(RwLock::new(()));
            let log = Log::new();
            let release = Gate::new();
            let held = lock.write(&cx).await.unwrap();
            let r = spawn_waiter(&cx, &lock, Kind::Read, "r".into(), &log, &release).await;
            drop(held); // admitted reader, not yet run (or running)
            assert!(lock.try_write().is_none());
            release.open();
            r.join(&cx).await.unwrap();
            let w = lock.write(&cx).await.unwrap();
            let release = Gate::new();
            let w2 = spawn_waiter(&cx, &lock, Kind::Write, "w2".into(), &log, &release).await;
            drop(w); // handed to w2
            assert!(lock.try_read().is_none() && lock.try_write().is_none());
            release.open();
            w2.join(&cx).await.unwrap();
            assert!(lock.try_write().is_some());
        });
    }

    /// A waiting writer that is cancelled lets the readers queued behind it
    /// join the readers holding the lock.
    fn a_cancelled_writer_lets_the_readers_behind_it_in(d: Driver) {
        d.rt().block_on(|cx| async move {
            let lock = Arc::new(RwLock::new(()));
            let log = Log::new();
            let release = Gate::new();
            let held = lock.read(&cx).await.unwrap();
            let w = spawn_waiter(&cx, &lock, Kind::Write, "w".into(), &log, &release).await;
            let r = spawn_waiter(&cx, &lock, Kind::Read, "r".into(), &log, &release).await;
            w.abort();
            assert!(w.join(&cx).await.unwrap_err().is_cancelled());
            let lock2 = lock.clone();
            until(move || lock2.readers() == 2).await;
            assert_eq!(lock.waiters(), (0, 0));
            release.open();
            r.join(&cx).await.unwrap();
            drop(held);
            assert_eq!(log.snapshot(), ["r"]);
            assert!(lock.try_write().is_some());
        });
    }

    /// A writer admitted but dropped before it looked releases its
    /// admission: the readers behind it get in.
    fn a_writer_dropped_after_admission_releases_it(d: Driver) {
        d.rt().block_on(|cx| async move {
            use std::future::Future;
            use std::task::{Context, Waker};
            let lock = Arc::new(RwLock::new(()));
            let log = Log::new();
            let held = lock.write(&cx).await.unwrap();
            let mut w = Box::pin(lock.write(&cx));
            assert!(w.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
            let r = spawn_waiter(&cx, &lock, Kind::Read, "r".into(), &log, &open_gate()).await;
            drop(held);
            assert!(lock.is_write_locked(), "handed to the queued writer");
            drop(w);
            r.join(&cx).await.unwrap();
            assert_eq!(log.snapshot(), ["r"]);
        });
    }

    /// The starvation bound: with K = k, at most k writers pass waiting
    /// readers; then every waiting reader is admitted at once, and the
    /// remaining writers follow.
    fn waiting_readers_get_in_after_at_most_k_writers(d: Driver) {
        for k in [1, 2, 3] {
            d.rt().block_on(|cx| async move {
                let lock = Arc::new(RwLock::with_max_consecutive_writers((), k));
                let log = Log::new();
                let open = open_gate();
                let held = lock.write(&cx).await.unwrap();
                let mut hs = Vec::new();
                for i in 0..2 {
                    hs.push(spawn_waiter(&cx, &lock, Kind::Read, format!("r{i}"), &log, &open).await);
                }
                for i in 0..k + 2 {
                    hs.push(spawn_waiter(&cx, &lock, Kind::Write, format!("w{i}"), &log, &open).await);
                }
                drop(held);
                for h in hs {
                    h.join(&cx).await.unwrap();
                }
                let got = log.snapshot();
                let mut expected: Vec<String> = (0..k).map(|i| format!("w{i}")).collect();
                let readers: Vec<String> = got[k..k + 2].to_vec();
                assert!(readers.contains(&"r0".into()) && readers.contains(&"r1".into()), "k={k}: {got:?}");
                expected.extend(readers);
                expected.extend((k..k + 2).map(|i| format!("w{i}")));
                assert_eq!(got, expected, "k={k}");
            });
        }
    }

    /// Owned guards are `'static` and release when dropped in another task.
    fn owned_guards_move_into_other_tasks(d: Driver) {
        d.rt().block_on(|cx| async move {
            let lock = Arc::new(RwLock::new(1));
            let r = lock.clone().read_owned(&cx).await.unwrap();
            let h = cx.spawn(move |_cx| async move { *r }).unwrap();
            assert_eq!(h.join(&cx).await.unwrap(), 1);
            let mut w = lock.clone().write_owned(&cx).await.unwrap();
            *w += 1;
            let h = cx.spawn(move |_cx| async move { drop(w) }).unwrap();
            h.join(&cx).await.unwrap();
            assert_eq!(*lock.read(&cx).await.unwrap(), 2);
        });
    }
}

#[test]
fn the_default_starvation_bound_is_eight() {
    assert_eq!(DEFAULT_MAX_CONSECUTIVE_WRITERS, 8);
    assert_eq!(RwLock::new(()).max_consecutive_writers(), 8);
    let r = std::panic::catch_unwind(|| RwLock::with_max_consecutive_writers((), 0));
    assert!(r.is_err(), "K = 0 would starve writers");
}

// ===== the lab ===========================================================

#[derive(Default)]
struct Seen {
    cancelled_waits: AtomicUsize,
}

/// Readers and writers (each twice) contend while one may be cancelled at
/// any await point. Checks RW1 at every step, and at the end: the lock is
/// free with no waiter left, no write is lost, and writers acquired in the
/// order they queued.
async fn injected_contention(cx: Cx, seen: Arc<Seen>) {
    let lock = Arc::new(RwLock::new(0usize));
    let readers = Arc::new(AtomicUsize::new(0));
    let writers = Arc::new(AtomicUsize::new(0));
    let writes = Arc::new(AtomicUsize::new(0));
    let (queued, acquired) = (Log::new(), Log::new());
    let mut hs = Vec::new();
    for i in 0..5 {
        let kind = if i % 2 == 0 { Kind::Write } else { Kind::Read };
        let (lock, readers, writers, writes, seen) = (
            lock.clone(),
            readers.clone(),
            writers.clone(),
            writes.clone(),
            seen.clone(),
        );
        let (queued, acquired) = (queued.clone(), acquired.clone());
        hs.push(
            cx.spawn(move |cx| async move {
                for round in 0..2 {
                    let me = format!("{kind:?}{i}.{round}");
                    queued.push(me.clone());
                    match kind {
                        Kind::Write => {
                            let Ok(mut g) = lock.write(&cx).await else {
                                seen.cancelled_waits.fetch_add(1, Ordering::Relaxed);
                                return;
                            };
                            acquired.push(me);
                            assert_eq!(writers.fetch_add(1, Ordering::SeqCst), 0, "two writers");
                            assert_eq!(readers.load(Ordering::SeqCst), 0, "writer with readers");
                            let read = *g;
                            yield_now().await;
                            *g = read + 1;
                            writes.fetch_add(1, Ordering::SeqCst);
                            writers.fetch_sub(1, Ordering::SeqCst);
                        }
                        Kind::Read => {
                            let Ok(g) = lock.read(&cx).await else {
                                seen.cancelled_waits.fetch_add(1, Ordering::Relaxed);
                                return;
                            };
                            acquired.push(me);
                            readers.fetch_add(1, Ordering::SeqCst);
                            assert_eq!(writers.load(Ordering::SeqCst), 0, "reader with a writer");
                            let before = *g;
                            yield_now().await;
                            assert_eq!(*g, before, "changed under a reader");
                            readers.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                    if cx.checkpoint().is_err() {
                        return;
                    }
                }
            })
            .unwrap(),
        );
    }
    for h in hs {
        join_tolerating_cancel(&cx, h).await;
    }
    assert_eq!(lock.readers(), 0, "read admission leaked");
    assert!(!lock.is_write_locked(), "write admission leaked");
    assert_eq!(lock.waiters(), (0, 0), "waiter leaked");
    assert_eq!(
        *lock.try_write().unwrap(),
        writes.load(Ordering::SeqCst),
        "lost write"
    );
    let writers_acquired: Vec<String> = acquired
        .snapshot()
        .into_iter()
        .filter(|a| a.starts_with("Write"))
        .collect();
    let writers_queued: Vec<String> = queued
        .snapshot()
        .into_iter()
        .filter(|q| writers_acquired.contains(q))
        .collect();
    assert_eq!(
        writers_acquired, writers_queued,
        "writer FIFO order disturbed"
    );
}

#[test]
fn cancelling_at_every_await_point_keeps_exclusion_and_leaks_no_admission() {
    let seen = Arc::new(Seen::default());
    let mut points = 0;
    for seed in [1, 2, 3, 4] {
        let s = seen.clone();
        let report = cancel_injection(InjectionConfig::new(seed), move |cx| {
            injected_contention(cx, s.clone())
        });
        assert!(report.passed(), "{report}");
        assert_eq!(report.points_tried(), report.points_found());
        points += report.points_tried().len();
    }
    let cancelled = seen.cancelled_waits.load(Ordering::Relaxed);
    eprintln!("rwlock injection: {points} points, {cancelled} cancelled waits");
    assert!(points >= 40, "only {points} await points");
    assert!(cancelled >= 4, "injection hit queued waits");
}

#[test]
fn in_the_lab_readers_and_writers_keep_exclusion_under_many_seeds() {
    for seed in 0..40 {
        LabRuntime::new(LabConfig::new(seed))
            .block_on(|cx| injected_contention(cx, Arc::new(Seen::default())));
    }
}

// ===== OS-thread stress ==================================================

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn exclusion_holds_on_the_multi_thread_runtime_with_random_aborts() {
    with_watchdog("rwlock stress", || {
        let rt = RuntimeBuilder::new().worker_threads(2).build().unwrap();
        rt.block_on(|cx| async move {
            let lock = Arc::new(RwLock::with_max_consecutive_writers(0u64, 3));
            let readers = Arc::new(AtomicUsize::new(0));
            let writers = Arc::new(AtomicUsize::new(0));
            let writes = Arc::new(AtomicUsize::new(0));
            let ops = Arc::new(AtomicUsize::new(0));
            let mut hs = Vec::new();
            for t in 0..32u64 {
                let (lock, readers, writers, writes, ops) = (
                    lock.clone(),
                    readers.clone(),
                    writers.clone(),
                    writes.clone(),
                    ops.clone(),
                );
                hs.push(
                    cx.spawn(move |cx| async move {
                        let mut rng = XorShift(t + 1);
                        for _ in 0..200 {
                            if rng.below(3) == 0 {
                                let Ok(mut g) = lock.write(&cx).await else {
                                    return;
                                };
                                assert_eq!(writers.fetch_add(1, Ordering::SeqCst), 0);
                                assert_eq!(readers.load(Ordering::SeqCst), 0);
                                *g += 1;
                                if rng.below(3) == 0 {
                                    yield_now().await;
                                }
                                writes.fetch_add(1, Ordering::SeqCst);
                                writers.fetch_sub(1, Ordering::SeqCst);
                            } else {
                                let Ok(g) = lock.read(&cx).await else { return };
                                readers.fetch_add(1, Ordering::SeqCst);
                                assert_eq!(writers.load(Ordering::SeqCst), 0);
                                let before = *g;
                                if rng.below(2) == 0 {
                                    yield_now().await;
                                }
                                assert_eq!(*g, before);
                                readers.fetch_sub(1, Ordering::SeqCst);
                            }
                            ops.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                    .unwrap(),
                );
            }
            // Random aborts spread over the run (by work done), hitting
            // tasks that hold, wait for or are between acquisitions.
            let mut rng = XorShift(0xFEED);
            for k in 1..=20 {
                while ops.load(Ordering::SeqCst) < k * 200 && !hs.iter().all(|h| h.is_finished()) {
                    yield_now().await;
                }
                hs[rng.below(32) as usize].abort();
            }
            for h in hs {
                join_tolerating_cancel(&cx, h).await;
            }
            assert_eq!(lock.readers(), 0);
            assert!(!lock.is_write_locked());
            assert_eq!(lock.waiters(), (0, 0));
            assert_eq!(
                *lock.try_write().unwrap() as usize,
                writes.load(Ordering::SeqCst)
            );
            eprintln!("rwlock stress: {} operations", ops.load(Ordering::SeqCst));
        });
    });
}
