//! Side-by-side benchmarks: the same workloads on asupersync and on tokio, in
//! one process, alternating runs.
//!
//! `cargo bench --bench vs_tokio` (full) or `cargo bench --bench vs_tokio -- --quick`.
//! One line per workload, for scripts:
//! `<workload> ours=<median ns> tokio=<median ns> ratio=<median of per-run ours/tokio>`
//!
//! Every workload checks its own result in the loop, so neither side can get
//! faster by skipping work.
//!
//! The channel workloads run first on both runtimes' current-thread flavour
//! (original names), then again on the multi-thread flavour (`*_mt`). The
//! scheduler workloads (`spawn_many`, `spawn_remote`, `yield_many`,
//! `ping_pong`, `chained_spawn`, `request_reply`, `timers_100k`,
//! `cancel_storm`, `ext_wake_rtt`, and the shapes of issue 12: `spawn_tree`
//! (a binary tree of depth 12, each node spawning and joining two children),
//! `sleep_storm` (10k tasks sleeping 1 ms at once), `oneshot_ring` (a token
//! passed around a ring of 10k tasks over oneshots), `abort_sleepers` (10k
//! tasks sleeping an hour, each aborted through its handle and joined)),
//! `region_per_task` (2k tasks, each opening a region that spawns and joins
//! two tasks; tokio: the two spawns and joins) and `deadline_region_per_task`
//! (the same with a 10 s deadline: a region budget; tokio: `timeout`) run
//! on the multi-thread flavour only.
//! Both multi-thread runtimes get the same worker count: `--workers N`
//! (default: available parallelism).
//!
//! Extra lines:
//! - `region_overhead ours_region=<ns> ours_bare=<ns> ratio=<median of per-run region/bare>`
//!   (ours only: one task in a fresh `cx.region` vs a bare spawn + join).
//! - `region_open_close ours_region=<ns> ours_bare=<ns> ratio=<..>` (ours
//!   only: an empty region opened and closed vs a bare spawn + join).
//! - From a counting global allocator, enabled only for these passes
//!   (allocation counts, not timing, so immune to machine noise):
//!   `allocs_per_spawn ours=<n> tokio=<n>`: heap allocations per task for
//!   spawning and joining 10k trivial tasks from inside `block_on`;
//!   `bytes_per_task ours=<n> tokio=<n>`: live heap bytes per task while 10k
//!   tasks are parked on a `Notify` (each runtime's own);
//!   `bytes_per_spawn ours=<n> tokio=<n>`: bytes allocated (not net) per
//!   task in the spawn-and-join pass (reallocs count their new size).
//!
//! - `idle_cpu ours=<pct>% tokio=<pct>%`: CPU time (user + system, all
//!   threads) the process uses while a 2-worker runtime sits idle for 5 s
//!   (a `block_on` parked on a 5 s sleep), as a percentage of one core;
//!   Linux only (`/proc/self/task/*/schedstat`), `n/a` elsewhere.
//!
//! `--only a,b` runs just the named workloads (for profiling one of them).
//!
//! Without `--bench` (which `cargo bench` passes), `main` returns at once:
//! `cargo test --all-targets` builds and runs benches with no arguments.
//!
//! A watchdog aborts the process (exit 2, naming the workload) if one
//! workload takes more than 120 s, so a hang fails loudly instead of stalling.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use asupersync::channel::{mpsc, oneshot};
use asupersync::sync::{Mutex, Semaphore};
use asupersync::{Cx, RuntimeBuilder};

// ------------------------------------------------- counting allocator

/// Counts allocations and bytes while `COUNTING` is set; otherwise a plain
/// pass-through to the system allocator.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to `System` unchanged; the counters have no
// effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            FREED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
            FREED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Runs `f` with counting on; returns (allocations, bytes) it caused.
fn count_allocs(f: impl FnOnce()) -> (u64, u64) {
    start_counting();
    f();
    COUNTING.store(false, Ordering::SeqCst);
    (ALLOCS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst))
}

fn start_counting() {
    ALLOCS.store(0, Ordering::SeqCst);
    BYTES.store(0, Ordering::SeqCst);
    FREED.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
}

/// Stops counting; returns bytes allocated minus bytes freed meanwhile.
fn stop_counting_live() -> i64 {
    COUNTING.store(false, Ordering::SeqCst);
    BYTES.load(Ordering::SeqCst) as i64 - FREED.load(Ordering::SeqCst) as i64
}

// ------------------------------------------------------------ settings

struct Settings {
    runs: usize,
    scale: u64,
    workers: usize,
    /// Runs per multi-thread workload (their per-run noise is larger).
    mt_runs: usize,
}

fn settings() -> Settings {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let workers = args
        .iter()
        .position(|a| a == "--workers")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse::<usize>().expect("--workers N"))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    if quick {
        Settings {
            runs: 7,
            scale: 1,
            workers,
            mt_runs: 15,
        }
    } else {
        Settings {
            runs: 21,
            scale: 4,
            workers,
            mt_runs: 31,
        }
    }
}

// ------------------------------------------------------------ watchdog

static WATCH: StdMutex<Option<(String, Instant)>> = StdMutex::new(None);
/// Signalled whenever the watched workload changes.
static WATCH_CHANGED: std::sync::Condvar = std::sync::Condvar::new();
const WATCHDOG_LIMIT: Duration = Duration::from_secs(120);

fn start_watchdog() {
    std::thread::spawn(|| {
        let mut w = WATCH.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            // Sleeps until the current workload's deadline or a change.
            let left = match &*w {
                Some((name, since)) => {
                    if since.elapsed() > WATCHDOG_LIMIT {
                        eprintln!(
                            "vs_tokio: workload `{name}` exceeded {WATCHDOG_LIMIT:?}; aborting"
                        );
                        std::process::exit(2);
                    }
                    WATCHDOG_LIMIT - since.elapsed()
                }
                None => WATCHDOG_LIMIT,
            };
            w = WATCH_CHANGED
                .wait_timeout(w, left + Duration::from_millis(1))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    });
}

fn watch(name: &str) {
    set_watched(Some((name.to_string(), Instant::now())));
}

fn set_watched(w: Option<(String, Instant)>) {
    *WATCH.lock().unwrap_or_else(|e| e.into_inner()) = w;
    WATCH_CHANGED.notify_one();
}

fn ours_rt() -> asupersync::Runtime {
    RuntimeBuilder::current_thread()
        .build()
        .expect("asupersync runtime")
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn ours_mt(workers: usize) -> asupersync::Runtime {
    RuntimeBuilder::new()
        .worker_threads(workers)
        .build()
        .expect("asupersync runtime")
}

fn tokio_mt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// Runs both sides `runs` times, alternating, and prints the result line.
fn compare(
    name: &str,
    s: &Settings,
    mut ours: impl FnMut() -> Duration,
    mut theirs: impl FnMut() -> Duration,
) {
    if let Some((o, t, r)) = alternate(name, s, &mut ours, &mut theirs) {
        println!("{name} ours={o:.0} tokio={t:.0} ratio={r:.3}");
    }
}

/// Whether `--only` (if given) names this workload.
fn selected(name: &str) -> bool {
    static ONLY: std::sync::OnceLock<Option<Vec<String>>> = std::sync::OnceLock::new();
    let only = ONLY.get_or_init(|| {
        let args: Vec<String> = std::env::args().collect();
        let i = args.iter().position(|a| a == "--only")?;
        let list = args.get(i + 1).expect("--only a,b,...");
        Some(list.split(',').map(str::to_string).collect())
    });
    only.as_ref()
        .is_none_or(|names| names.iter().any(|n| n == name))
}

/// Alternating runs; returns (median a, median b, median of per-run a/b),
/// or `None` when `--only` excludes `name`.
fn alternate(
    name: &str,
    s: &Settings,
    mut ours: impl FnMut() -> Duration,
    mut theirs: impl FnMut() -> Duration,
) -> Option<(f64, f64, f64)> {
    if !selected(name) {
        return None;
    }
    watch(name);
    // Warm up both (allocator, caches, lazy statics).
    ours();
    theirs();
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..s.runs {
        let (o, t) = if i % 2 == 0 {
            let o = ours();
            (o, theirs())
        } else {
            let t = theirs();
            (ours(), t)
        };
        let (o, t) = (o.as_nanos() as f64, t.as_nanos() as f64);
        a.push(o);
        b.push(t);
        ratios.push(o / t);
    }
    Some((median(a), median(b), median(ratios)))
}

// ---------------------------------------------------------------- mpsc

fn mpsc_ours(rt: &asupersync::Runtime, producers: u64, per_producer: u64) -> Duration {
    let start = Instant::now();
    let sum = rt.block_on(move |cx: Cx| async move {
        let (tx, mut rx) = mpsc::channel::<u64>(128);
        for p in 0..producers {
            let tx = tx.clone();
            drop(
                cx.spawn(move |cx| async move {
                    for i in 0..per_producer {
                        tx.send(&cx, p * per_producer + i)
                            .await
                            .expect("receiver alive");
                    }
                })
                .expect("spawn"),
            );
        }
        drop(tx);
        let mut sum = 0u64;
        while let Ok(v) = rx.recv(&cx).await {
            sum += v;
        }
        sum
    });
    let n = producers * per_producer;
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    start.elapsed()
}

fn mpsc_tokio(rt: &tokio::runtime::Runtime, producers: u64, per_producer: u64) -> Duration {
    let start = Instant::now();
    let sum = rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(128);
        for p in 0..producers {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..per_producer {
                    tx.send(p * per_producer + i).await.expect("receiver alive");
                }
            });
        }
        drop(tx);
        let mut sum = 0u64;
        while let Some(v) = rx.recv().await {
            sum += v;
        }
        sum
    });
    let n = producers * per_producer;
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    start.elapsed()
}

// ------------------------------------------------------------- oneshot

fn oneshot_ours(rt: &asupersync::Runtime, pairs: u64) -> Duration {
    let start = Instant::now();
    let total = rt.block_on(move |cx: Cx| async move {
        let mut total = 0u64;
        for i in 0..pairs {
            let (tx, mut rx) = oneshot::channel::<u64>();
            drop(
                cx.spawn(move |_cx| async move {
                    let _ = tx.send(i);
                })
                .expect("spawn"),
            );
            total += rx.recv(&cx).await.expect("sent");
        }
        total
    });
    assert_eq!(black_box(total), pairs * (pairs - 1) / 2);
    start.elapsed()
}

fn oneshot_tokio(rt: &tokio::runtime::Runtime, pairs: u64) -> Duration {
    let start = Instant::now();
    let total = rt.block_on(async move {
        let mut total = 0u64;
        for i in 0..pairs {
            let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
            tokio::spawn(async move {
                let _ = tx.send(i);
            });
            total += rx.await.expect("sent");
        }
        total
    });
    assert_eq!(black_box(total), pairs * (pairs - 1) / 2);
    start.elapsed()
}

// ----------------------------------------------------------- semaphore

fn semaphore_ours(rt: &asupersync::Runtime, tasks: u64, rounds: u64) -> Duration {
    let start = Instant::now();
    let done = rt.block_on(move |cx: Cx| async move {
        let sem = Arc::new(Semaphore::new(2));
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let sem = sem.clone();
            handles.push(
                cx.spawn(move |cx| async move {
                    for _ in 0..rounds {
                        let permit = sem.acquire(&cx, 1).await.expect("not closed");
                        asupersync::yield_now().await;
                        drop(permit);
                    }
                    rounds
                })
                .expect("spawn"),
            );
        }
        let mut done = 0;
        for h in handles {
            done += h.join(&cx).await.expect("joined");
        }
        done
    });
    assert_eq!(black_box(done), tasks * rounds);
    start.elapsed()
}

fn semaphore_tokio(rt: &tokio::runtime::Runtime, tasks: u64, rounds: u64) -> Duration {
    let start = Instant::now();
    let done = rt.block_on(async move {
        let sem = Arc::new(tokio::sync::Semaphore::new(2));
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let sem = sem.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..rounds {
                    let permit = sem.acquire().await.expect("not closed");
                    tokio::task::yield_now().await;
                    drop(permit);
                }
                rounds
            }));
        }
        let mut done = 0;
        for h in handles {
            done += h.await.expect("joined");
        }
        done
    });
    assert_eq!(black_box(done), tasks * rounds);
    start.elapsed()
}

// --------------------------------------------------------------- mutex

fn mutex_ours(rt: &asupersync::Runtime, tasks: u64, rounds: u64) -> Duration {
    let start = Instant::now();
    let total = rt.block_on(move |cx: Cx| async move {
        let m = Arc::new(Mutex::new(0u64));
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let m = m.clone();
            handles.push(
                cx.spawn(move |cx| async move {
                    for _ in 0..rounds {
                        let mut g = m.lock(&cx).await.expect("not poisoned");
                        *g += 1;
                        drop(g);
                        asupersync::yield_now().await;
                    }
                })
                .expect("spawn"),
            );
        }
        for h in handles {
            h.join(&cx).await.expect("joined");
        }
        *m.lock(&cx).await.expect("lock")
    });
    assert_eq!(black_box(total), tasks * rounds);
    start.elapsed()
}

fn mutex_tokio(rt: &tokio::runtime::Runtime, tasks: u64, rounds: u64) -> Duration {
    let start = Instant::now();
    let total = rt.block_on(async move {
        let m = Arc::new(tokio::sync::Mutex::new(0u64));
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let m = m.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..rounds {
                    let mut g = m.lock().await;
                    *g += 1;
                    drop(g);
                    tokio::task::yield_now().await;
                }
            }));
        }
        for h in handles {
            h.await.expect("joined");
        }
        *m.lock().await
    });
    assert_eq!(black_box(total), tasks * rounds);
    start.elapsed()
}

// ================================================ scheduler workloads
// (multi-thread flavour on both sides)

type Ours = asupersync::Runtime;
type Tokio = tokio::runtime::Runtime;

// ---------------------------------------------------------- spawn_many

fn spawn_many_ours(rt: &Ours, n: u64) -> Duration {
    let start = Instant::now();
    let sum = rt.block_on(move |cx: Cx| async move {
        let handles: Vec<_> = (0..n)
            .map(|i| cx.spawn(move |_cx| async move { i }).expect("spawn"))
            .collect();
        let mut sum = 0u64;
        for h in handles {
            sum += h.join(&cx).await.expect("joined");
        }
        sum
    });
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    start.elapsed()
}

fn spawn_many_tokio(rt: &Tokio, n: u64) -> Duration {
    let start = Instant::now();
    let sum = rt.block_on(async move {
        let handles: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
        let mut sum = 0u64;
        for h in handles {
            sum += h.await.expect("joined");
        }
        sum
    });
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    start.elapsed()
}

// -------------------------------------------------------- spawn_remote
// Spawned through a runtime handle from this (plain) thread; each task
// reports on a std channel the plain thread drains.

fn spawn_remote_ours(rt: &Ours, n: u64) -> Duration {
    let handle = rt.handle();
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    for i in 0..n {
        let tx = tx.clone();
        drop(
            handle
                .spawn(move |_cx| async move {
                    tx.send(i).expect("bench thread alive");
                })
                .expect("spawn"),
        );
    }
    drop(tx);
    let sum: u64 = rx.iter().sum();
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    start.elapsed()
}

fn spawn_remote_tokio(rt: &Tokio, n: u64) -> Duration {
    let handle = rt.handle().clone();
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    for i in 0..n {
        let tx = tx.clone();
        drop(handle.spawn(async move {
            tx.send(i).expect("bench thread alive");
        }));
    }
    drop(tx);
    let sum: u64 = rx.iter().sum();
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    start.elapsed()
}

// ---------------------------------------------------------- yield_many

fn yield_many_ours(rt: &Ours, tasks: u64, yields: u64) -> Duration {
    let start = Instant::now();
    let done = rt.block_on(move |cx: Cx| async move {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                cx.spawn(move |_cx| async move {
                    let mut n = 0u64;
                    for _ in 0..yields {
                        asupersync::yield_now().await;
                        n += 1;
                    }
                    n
                })
                .expect("spawn")
            })
            .collect();
        let mut done = 0u64;
        for h in handles {
            done += h.join(&cx).await.expect("joined");
        }
        done
    });
    assert_eq!(black_box(done), tasks * yields);
    start.elapsed()
}

fn yield_many_tokio(rt: &Tokio, tasks: u64, yields: u64) -> Duration {
    let start = Instant::now();
    let done = rt.block_on(async move {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                tokio::spawn(async move {
                    let mut n = 0u64;
                    for _ in 0..yields {
                        tokio::task::yield_now().await;
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut done = 0u64;
        for h in handles {
            done += h.await.expect("joined");
        }
        done
    });
    assert_eq!(black_box(done), tasks * yields);
    start.elapsed()
}

// ----------------------------------------------------------- ping_pong
// `pairs` concurrent tasks; each does `rounds` ping/pong exchanges with a
// freshly spawned partner over two oneshots.

fn ping_pong_ours(rt: &Ours, pairs: u64, rounds: u64) -> Duration {
    let start = Instant::now();
    let total = rt.block_on(move |cx: Cx| async move {
        let handles: Vec<_> = (0..pairs)
            .map(|p| {
                cx.spawn(move |cx| async move {
                    let mut total = 0u64;
                    for r in 0..rounds {
                        let (ping_tx, mut ping_rx) = oneshot::channel::<u64>();
                        let (pong_tx, mut pong_rx) = oneshot::channel::<u64>();
                        drop(
                            cx.spawn(move |cx| async move {
                                let v = ping_rx.recv(&cx).await.expect("ping");
                                pong_tx.send(v + 1).expect("pinger alive");
                            })
                            .expect("spawn"),
                        );
                        let v = p * rounds + r;
                        ping_tx.send(v).expect("ponger alive");
                        let back = pong_rx.recv(&cx).await.expect("pong");
                        assert_eq!(back, v + 1);
                        total += 1;
                    }
                    total
                })
                .expect("spawn")
            })
            .collect();
        let mut total = 0u64;
        for h in handles {
            total += h.join(&cx).await.expect("joined");
        }
        total
    });
    assert_eq!(black_box(total), pairs * rounds);
    start.elapsed()
}

fn ping_pong_tokio(rt: &Tokio, pairs: u64, rounds: u64) -> Duration {
    let start = Instant::now();
    let total = rt.block_on(async move {
        let handles: Vec<_> = (0..pairs)
            .map(|p| {
                tokio::spawn(async move {
                    let mut total = 0u64;
                    for r in 0..rounds {
                        let (ping_tx, ping_rx) = tokio::sync::oneshot::channel::<u64>();
                        let (pong_tx, pong_rx) = tokio::sync::oneshot::channel::<u64>();
                        tokio::spawn(async move {
                            let v = ping_rx.await.expect("ping");
                            pong_tx.send(v + 1).expect("pinger alive");
                        });
                        let v = p * rounds + r;
                        ping_tx.send(v).expect("ponger alive");
                        let back = pong_rx.await.expect("pong");
                        assert_eq!(back, v + 1);
                        total += 1;
                    }
                    total
                })
            })
            .collect();
        let mut total = 0u64;
        for h in handles {
            total += h.await.expect("joined");
        }
        total
    });
    assert_eq!(black_box(total), pairs * rounds);
    start.elapsed()
}

// ------------------------------------------------------- chained_spawn
// Each task spawns the next; the last reports the chain length.

fn chain_ours(cx: &Cx, left: u64, depth: u64, done: oneshot::Sender<u64>) {
    if left == 0 {
        done.send(depth).expect("waiter alive");
        return;
    }
    drop(
        cx.spawn(move |cx| async move { chain_ours(&cx, left - 1, depth + 1, done) })
            .expect("spawn"),
    );
}

fn chained_spawn_ours(rt: &Ours, depth: u64) -> Duration {
    let start = Instant::now();
    let got = rt.block_on(move |cx: Cx| async move {
        let (tx, mut rx) = oneshot::channel::<u64>();
        chain_ours(&cx, depth, 0, tx);
        rx.recv(&cx).await.expect("chain finished")
    });
    assert_eq!(black_box(got), depth);
    start.elapsed()
}

fn chain_tokio(left: u64, depth: u64, done: tokio::sync::oneshot::Sender<u64>) {
    if left == 0 {
        done.send(depth).expect("waiter alive");
        return;
    }
    tokio::spawn(async move { chain_tokio(left - 1, depth + 1, done) });
}

fn chained_spawn_tokio(rt: &Tokio, depth: u64) -> Duration {
    let start = Instant::now();
    let got = rt.block_on(async move {
        let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
        chain_tokio(depth, 0, tx);
        rx.await.expect("chain finished")
    });
    assert_eq!(black_box(got), depth);
    start.elapsed()
}

// ------------------------------------------------------- request_reply
// `clients` tasks send requests over one mpsc to a server task, which
// answers each on the request's own oneshot.

fn request_reply_ours(rt: &Ours, clients: u64, requests: u64) -> Duration {
    let start = Instant::now();
    let (served, answered) = rt.block_on(move |cx: Cx| async move {
        let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(128);
        let server = cx
            .spawn(move |cx| async move {
                let mut served = 0u64;
                while let Ok((v, reply)) = rx.recv(&cx).await {
                    reply.send(v * 3).expect("client alive");
                    served += 1;
                }
                served
            })
            .expect("spawn");
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let tx = tx.clone();
                cx.spawn(move |cx| async move {
                    for i in 0..requests {
                        let v = c * requests + i;
                        let (rtx, mut rrx) = oneshot::channel::<u64>();
                        tx.send(&cx, (v, rtx)).await.expect("server alive");
                        assert_eq!(rrx.recv(&cx).await.expect("reply"), v * 3);
                    }
                    requests
                })
                .expect("spawn")
            })
            .collect();
        drop(tx);
        let mut answered = 0u64;
        for h in handles {
            answered += h.join(&cx).await.expect("joined");
        }
        (server.join(&cx).await.expect("server joined"), answered)
    });
    assert_eq!(black_box(served), clients * requests);
    assert_eq!(answered, clients * requests);
    start.elapsed()
}

fn request_reply_tokio(rt: &Tokio, clients: u64, requests: u64) -> Duration {
    let start = Instant::now();
    let (served, answered) = rt.block_on(async move {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<(u64, tokio::sync::oneshot::Sender<u64>)>(128);
        let server = tokio::spawn(async move {
            let mut served = 0u64;
            while let Some((v, reply)) = rx.recv().await {
                reply.send(v * 3).expect("client alive");
                served += 1;
            }
            served
        });
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0..requests {
                        let v = c * requests + i;
                        let (rtx, rrx) = tokio::sync::oneshot::channel::<u64>();
                        tx.send((v, rtx)).await.expect("server alive");
                        assert_eq!(rrx.await.expect("reply"), v * 3);
                    }
                    requests
                })
            })
            .collect();
        drop(tx);
        let mut answered = 0u64;
        for h in handles {
            answered += h.await.expect("joined");
        }
        (server.await.expect("server joined"), answered)
    });
    assert_eq!(black_box(served), clients * requests);
    assert_eq!(answered, clients * requests);
    start.elapsed()
}

// --------------------------------------------------------- timers_100k
// `tasks` tasks each register `per_task` far-future sleeps in batches
// (each polled once, must be pending) and cancel them by dropping.

const TIMER_BATCH: u64 = 1_000;

/// Polls `fut` once; whether it was pending.
async fn poll_once_pending<F: Future + ?Sized>(fut: Pin<&mut F>) -> bool {
    let mut fut = Some(fut);
    std::future::poll_fn(move |c| {
        let f = fut.take().expect("polled once");
        Poll::Ready(f.poll(c).is_pending())
    })
    .await
}

fn timers_ours(rt: &Ours, tasks: u64, per_task: u64) -> Duration {
    let start = Instant::now();
    let cancelled = rt.block_on(move |cx: Cx| async move {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                cx.spawn(move |cx| async move {
                    let mut cancelled = 0u64;
                    let mut left = per_task;
                    while left > 0 {
                        let batch = left.min(TIMER_BATCH);
                        let mut sleeps: Vec<_> = (0..batch)
                            .map(|i| {
                                Box::pin(asupersync::time::sleep(
                                    &cx,
                                    Duration::from_secs(3600 + i),
                                ))
                            })
                            .collect();
                        for s in &mut sleeps {
                            assert!(poll_once_pending(s.as_mut()).await, "timer fired early");
                        }
                        cancelled += sleeps.len() as u64;
                        drop(sleeps);
                        left -= batch;
                    }
                    cancelled
                })
                .expect("spawn")
            })
            .collect();
        let mut cancelled = 0u64;
        for h in handles {
            cancelled += h.join(&cx).await.expect("joined");
        }
        cancelled
    });
    assert_eq!(black_box(cancelled), tasks * per_task);
    assert_eq!(rt.pending_timers(), 0, "cancelled timers still registered");
    start.elapsed()
}

fn timers_tokio(rt: &Tokio, tasks: u64, per_task: u64) -> Duration {
    let start = Instant::now();
    let cancelled = rt.block_on(async move {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                tokio::spawn(async move {
                    let mut cancelled = 0u64;
                    let mut left = per_task;
                    while left > 0 {
                        let batch = left.min(TIMER_BATCH);
                        let mut sleeps: Vec<_> = (0..batch)
                            .map(|i| Box::pin(tokio::time::sleep(Duration::from_secs(3600 + i))))
                            .collect();
                        for s in &mut sleeps {
                            assert!(poll_once_pending(s.as_mut()).await, "timer fired early");
                        }
                        cancelled += sleeps.len() as u64;
                        drop(sleeps);
                        left -= batch;
                    }
                    cancelled
                })
            })
            .collect();
        let mut cancelled = 0u64;
        for h in handles {
            cancelled += h.await.expect("joined");
        }
        cancelled
    });
    assert_eq!(black_box(cancelled), tasks * per_task);
    start.elapsed()
}

// -------------------------------------------------------- cancel_storm
// `n` tasks park in a cancel-aware wait (a one-hour sleep) inside one
// region; once all are parked the region is cancelled. Timed: from the
// cancel until the region returned. Checked: every task saw the sleep
// fail, and every finalizer ran (ours: one `defer_sync` per task on the
// region; tokio: a drop guard per task, tasks aborted and awaited).

/// Counts parked tasks; the last one fires `all_parked`.
struct ParkGate {
    parked: AtomicU64,
    n: u64,
    all_parked: StdMutex<Option<oneshot::Sender<()>>>,
}

fn cancel_storm_ours(rt: &Ours, n: u64) -> Duration {
    let finalized = Arc::new(AtomicU64::new(0));
    let cleaned = Arc::new(AtomicU64::new(0));
    let (fin, cln) = (finalized.clone(), cleaned.clone());
    let elapsed = rt.block_on(move |cx: Cx| async move {
        let (gate_tx, mut gate_rx) = oneshot::channel::<()>();
        let gate = Arc::new(ParkGate {
            parked: AtomicU64::new(0),
            n,
            all_parked: StdMutex::new(Some(gate_tx)),
        });
        let cancel_at = Arc::new(StdMutex::new(None::<Instant>));
        let at = cancel_at.clone();
        let outcome = cx
            .region(move |cx| async move {
                for _ in 0..n {
                    let (fin, cln, gate) = (fin.clone(), cln.clone(), gate.clone());
                    drop(
                        cx.spawn(move |cx| async move {
                            cx.defer_sync(move || {
                                fin.fetch_add(1, Ordering::Relaxed);
                            })
                            .expect("region open");
                            let sleep = asupersync::time::sleep(&cx, Duration::from_secs(3600));
                            if gate.parked.fetch_add(1, Ordering::AcqRel) + 1 == gate.n {
                                let tx = gate.all_parked.lock().expect("gate").take();
                                tx.expect("fired once").send(()).expect("body alive");
                            }
                            let r = sleep.await;
                            assert!(r.is_err(), "sleep ended without cancellation");
                            cln.fetch_add(1, Ordering::Relaxed);
                        })
                        .expect("spawn"),
                    );
                }
                gate_rx.recv(&cx).await.expect("all parked");
                *at.lock().expect("cancel_at") = Some(Instant::now());
                Err::<(), ()>(()) // FailFast: cancels every child
            })
            .await;
        assert!(
            matches!(outcome, asupersync::Outcome::Err(())),
            "region outcome: {outcome:?}"
        );
        let t = cancel_at.lock().expect("cancel_at").expect("cancelled");
        t.elapsed()
    });
    assert_eq!(finalized.load(Ordering::SeqCst), n, "finalizers ran");
    assert_eq!(cleaned.load(Ordering::SeqCst), n, "tasks saw cancellation");
    black_box(elapsed)
}

struct DropGuard(Arc<AtomicU64>);
impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn cancel_storm_tokio(rt: &Tokio, n: u64) -> Duration {
    let finalized = Arc::new(AtomicU64::new(0));
    let fin = finalized.clone();
    let elapsed = rt.block_on(async move {
        let parked = Arc::new(AtomicU64::new(0));
        let notify = Arc::new(tokio::sync::Notify::new());
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (fin, parked, notify) = (fin.clone(), parked.clone(), notify.clone());
                tokio::spawn(async move {
                    let _guard = DropGuard(fin);
                    let sleep = tokio::time::sleep(Duration::from_secs(3600));
                    if parked.fetch_add(1, Ordering::AcqRel) + 1 == n {
                        notify.notify_one();
                    }
                    sleep.await;
                    panic!("sleep ended without cancellation");
                })
            })
            .collect();
        notify.notified().await;
        let start = Instant::now();
        for h in &handles {
            h.abort();
        }
        for h in handles {
            let e = h.await.expect_err("aborted");
            assert!(e.is_cancelled(), "task: {e}");
        }
        start.elapsed()
    });
    assert_eq!(finalized.load(Ordering::SeqCst), n, "drop guards ran");
    black_box(elapsed)
}

// -------------------------------------------------------- ext_wake_rtt
// Plain thread -> task over a oneshot (one per round trip, made up
// front), task -> plain thread over a std channel.

fn ext_wake_ours(rt: &Ours, rounds: u64) -> Duration {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..rounds).map(|_| oneshot::channel::<u64>()).unzip();
    let (back_tx, back_rx) = std::sync::mpsc::channel::<u64>();
    let server = rt
        .handle()
        .spawn(move |cx| async move {
            for mut rx in rxs {
                let v = rx.recv(&cx).await.expect("plain thread alive");
                back_tx.send(v + 1).expect("plain thread alive");
            }
        })
        .expect("spawn");
    drop(server);
    let start = Instant::now();
    for (i, tx) in (0..rounds).zip(txs) {
        tx.send(i).expect("server alive");
        assert_eq!(back_rx.recv().expect("reply"), i + 1);
    }
    start.elapsed()
}

fn ext_wake_tokio(rt: &Tokio, rounds: u64) -> Duration {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..rounds)
        .map(|_| tokio::sync::oneshot::channel::<u64>())
        .unzip();
    let (back_tx, back_rx) = std::sync::mpsc::channel::<u64>();
    drop(rt.spawn(async move {
        for rx in rxs {
            let v = rx.await.expect("plain thread alive");
            back_tx.send(v + 1).expect("plain thread alive");
        }
    }));
    let start = Instant::now();
    for (i, tx) in (0..rounds).zip(txs) {
        tx.send(i).expect("server alive");
        assert_eq!(back_rx.recv().expect("reply"), i + 1);
    }
    start.elapsed()
}

// ----------------------------------------------------- region_overhead
// Ours only: one task in a fresh region (awaiting the region) vs a bare
// spawn + join, `n` times in sequence.

fn region_one_task(rt: &Ours, n: u64) -> Duration {
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let start = Instant::now();
    rt.block_on(move |cx: Cx| async move {
        for _ in 0..n {
            let r = r.clone();
            let out = cx
                .region(move |cx| async move {
                    drop(
                        cx.spawn(move |_cx| async move {
                            r.fetch_add(1, Ordering::Relaxed);
                        })
                        .expect("spawn"),
                    );
                    Ok::<(), ()>(())
                })
                .await;
            assert!(matches!(out, asupersync::Outcome::Ok(())));
        }
    });
    let elapsed = start.elapsed();
    assert_eq!(
        ran.load(Ordering::SeqCst) as u64,
        n,
        "region waited for its task"
    );
    elapsed
}

fn bare_spawn_join(rt: &Ours, n: u64) -> Duration {
    let start = Instant::now();
    let sum = rt.block_on(move |cx: Cx| async move {
        let mut sum = 0u64;
        for i in 0..n {
            sum += cx
                .spawn(move |_cx| async move { i })
                .expect("spawn")
                .join(&cx)
                .await
                .expect("joined");
        }
        sum
    });
    assert_eq!(black_box(sum), n * (n - 1) / 2);
    start.elapsed()
}

// ============================================ issue-12 shapes (multi-thread)

// ---------------------------------------------------------- spawn_tree
// A binary tree of tasks: every node spawns two children and joins both.

fn tree_ours(cx: Cx, depth: u32) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if depth == 0 {
            return 1;
        }
        let left = cx.spawn(move |cx| tree_ours(cx, depth - 1)).expect("spawn");
        let right = cx.spawn(move |cx| tree_ours(cx, depth - 1)).expect("spawn");
        1 + left.join(&cx).await.expect("joined") + right.join(&cx).await.expect("joined")
    })
}

fn spawn_tree_ours(rt: &Ours, depth: u32) -> Duration {
    let start = Instant::now();
    let nodes = rt.block_on(move |cx: Cx| tree_ours(cx, depth));
    assert_eq!(black_box(nodes), (1u64 << (depth + 1)) - 1);
    start.elapsed()
}

fn tree_tokio(depth: u32) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if depth == 0 {
            return 1;
        }
        let left = tokio::spawn(tree_tokio(depth - 1));
        let right = tokio::spawn(tree_tokio(depth - 1));
        1 + left.await.expect("joined") + right.await.expect("joined")
    })
}

fn spawn_tree_tokio(rt: &Tokio, depth: u32) -> Duration {
    let start = Instant::now();
    let nodes = rt.block_on(tree_tokio(depth));
    assert_eq!(black_box(nodes), (1u64 << (depth + 1)) - 1);
    start.elapsed()
}

// --------------------------------------------------------- sleep_storm
// `n` tasks each sleep `ms` milliseconds at once; the root joins them all.

fn sleep_storm_ours(rt: &Ours, n: u64, ms: u64) -> Duration {
    let start = Instant::now();
    let woke = rt.block_on(move |cx: Cx| async move {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                cx.spawn(move |cx| async move {
                    asupersync::time::sleep(&cx, Duration::from_millis(ms))
                        .await
                        .expect("not cancelled");
                    1u64
                })
                .expect("spawn")
            })
            .collect();
        let mut woke = 0u64;
        for h in handles {
            woke += h.join(&cx).await.expect("joined");
        }
        woke
    });
    assert_eq!(black_box(woke), n);
    start.elapsed()
}

fn sleep_storm_tokio(rt: &Tokio, n: u64, ms: u64) -> Duration {
    let start = Instant::now();
    let woke = rt.block_on(async move {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    1u64
                })
            })
            .collect();
        let mut woke = 0u64;
        for h in handles {
            woke += h.await.expect("joined");
        }
        woke
    });
    assert_eq!(black_box(woke), n);
    start.elapsed()
}

// -------------------------------------------------------- oneshot_ring
// `n` tasks in a ring of oneshot channels: each waits for the token from
// its predecessor and passes it on incremented; the root closes the ring.

fn oneshot_ring_ours(rt: &Ours, n: u64) -> Duration {
    let start = Instant::now();
    let token = rt.block_on(move |cx: Cx| async move {
        let (first_tx, mut prev_rx) = oneshot::channel::<u64>();
        for _ in 0..n {
            let (tx, rx) = oneshot::channel::<u64>();
            let mut rx_in = std::mem::replace(&mut prev_rx, rx);
            drop(
                cx.spawn(move |cx| async move {
                    let t = rx_in.recv(&cx).await.expect("token");
                    tx.send(t + 1).expect("next alive");
                })
                .expect("spawn"),
            );
        }
        first_tx.send(0).expect("ring alive");
        prev_rx.recv(&cx).await.expect("token back")
    });
    assert_eq!(black_box(token), n);
    start.elapsed()
}

fn oneshot_ring_tokio(rt: &Tokio, n: u64) -> Duration {
    let start = Instant::now();
    let token = rt.block_on(async move {
        let (first_tx, mut prev_rx) = tokio::sync::oneshot::channel::<u64>();
        for _ in 0..n {
            let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
            let rx_in = std::mem::replace(&mut prev_rx, rx);
            tokio::spawn(async move {
                let t = rx_in.await.expect("token");
                tx.send(t + 1).expect("next alive");
            });
        }
        first_tx.send(0).expect("ring alive");
        prev_rx.await.expect("token back")
    });
    assert_eq!(black_box(token), n);
    start.elapsed()
}

// ------------------------------------------------------ abort_sleepers
// `n` tasks sleep an hour; once all are parked each is aborted through its
// handle and joined (timed from the first abort to the last join).

fn abort_sleepers_ours(rt: &Ours, n: u64) -> Duration {
    let elapsed = rt.block_on(move |cx: Cx| async move {
        let parked = Arc::new(AtomicU64::new(0));
        let notify = Arc::new(asupersync::sync::Notify::new());
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (parked, notify) = (parked.clone(), notify.clone());
                cx.spawn(move |cx| async move {
                    let sleep = asupersync::time::sleep(&cx, Duration::from_secs(3600));
                    if parked.fetch_add(1, Ordering::AcqRel) + 1 == n {
                        notify.notify_one();
                    }
                    let r = sleep.await;
                    assert!(r.is_err(), "sleep ended without cancellation");
                })
                .expect("spawn")
            })
            .collect();
        notify.notified(&cx).await.expect("not cancelled");
        let start = Instant::now();
        for h in &handles {
            h.abort();
        }
        for h in handles {
            let e = h.join(&cx).await.expect_err("aborted");
            assert!(e.is_cancelled(), "task: {e}");
        }
        start.elapsed()
    });
    black_box(elapsed)
}

fn abort_sleepers_tokio(rt: &Tokio, n: u64) -> Duration {
    let elapsed = rt.block_on(async move {
        let parked = Arc::new(AtomicU64::new(0));
        let notify = Arc::new(tokio::sync::Notify::new());
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (parked, notify) = (parked.clone(), notify.clone());
                tokio::spawn(async move {
                    let sleep = tokio::time::sleep(Duration::from_secs(3600));
                    if parked.fetch_add(1, Ordering::AcqRel) + 1 == n {
                        notify.notify_one();
                    }
                    sleep.await;
                    panic!("sleep ended without cancellation");
                })
            })
            .collect();
        notify.notified().await;
        let start = Instant::now();
        for h in &handles {
            h.abort();
        }
        for h in handles {
            let e = h.await.expect_err("aborted");
            assert!(e.is_cancelled(), "task: {e}");
        }
        start.elapsed()
    });
    black_box(elapsed)
}

// ------------------------------------- region_per_task / deadline_region_per_task
// `n` tasks at once; each opens a region (ours) that spawns two tasks and
// joins both, as a request handler scoping its sub-tasks would; tokio's
// task spawns and joins the two directly. The deadline variant gives each
// region a 10 s deadline (ours: a region budget; tokio: `timeout` around
// the same two spawns). Checked: the sum of every task's children.

fn region_per_task_ours(rt: &Ours, n: u64, deadline: bool) -> Duration {
    let start = Instant::now();
    let sum = rt.block_on(move |cx: Cx| async move {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                cx.spawn(move |cx| async move {
                    let body = move |rcx: Cx| async move {
                        let a = rcx.spawn(move |_| async move { 2 * i }).expect("spawn");
                        let b = rcx.spawn(move |_| async move { 3 * i }).expect("spawn");
                        let a = a.join(&rcx).await.expect("joined");
                        Ok::<u64, ()>(a + b.join(&rcx).await.expect("joined"))
                    };
                    let outcome = if deadline {
                        let budget = asupersync::types::Budget::new()
                            .with_deadline(cx.now() + Duration::from_secs(10));
                        cx.region_with_budget(budget, body).await
                    } else {
                        cx.region(body).await
                    };
                    match outcome {
                        asupersync::Outcome::Ok(v) => v,
                        other => panic!("region: {other:?}"),
                    }
                })
                .expect("spawn")
            })
            .collect();
        let mut sum = 0u64;
        for h in handles {
            sum += h.join(&cx).await.expect("joined");
        }
        sum
    });
    assert_eq!(black_box(sum), 5 * n * (n - 1) / 2);
    start.elapsed()
}

fn region_per_task_tokio(rt: &Tokio, n: u64, deadline: bool) -> Duration {
    let start = Instant::now();
    let sum = rt.block_on(async move {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                tokio::spawn(async move {
                    let body = async move {
                        let a = tokio::spawn(async move { 2 * i });
                        let b = tokio::spawn(async move { 3 * i });
                        a.await.expect("joined") + b.await.expect("joined")
                    };
                    if deadline {
                        tokio::time::timeout(Duration::from_secs(10), body)
                            .await
                            .expect("in time")
                    } else {
                        body.await
                    }
                })
            })
            .collect();
        let mut sum = 0u64;
        for h in handles {
            sum += h.await.expect("joined");
        }
        sum
    });
    assert_eq!(black_box(sum), 5 * n * (n - 1) / 2);
    start.elapsed()
}

// ---------------------------------------------------- region_open_close
// An empty region opened and closed (ours only; compared with a bare
// spawn + join on the same runtime).

fn region_open_close(rt: &Ours, n: u64) -> Duration {
    let start = Instant::now();
    rt.block_on(move |cx: Cx| async move {
        for _ in 0..n {
            let out = cx.region(|_cx| async move { Ok::<(), ()>(()) }).await;
            assert!(matches!(out, asupersync::Outcome::Ok(())));
        }
    });
    start.elapsed()
}

// ------------------------------------------------------- allocation pass

/// Live heap bytes while `n` tasks are parked on a `Notify` (counted from
/// before the first spawn until every task is registered as a waiter),
/// then releases them and checks every task finished.
fn parked_bytes_ours(rt: &Ours, n: u64) -> i64 {
    let (live, woke) = rt.block_on(move |cx: Cx| async move {
        let notify = Arc::new(asupersync::sync::Notify::new());
        let mut handles = Vec::with_capacity(n as usize);
        start_counting();
        for _ in 0..n {
            let notify = notify.clone();
            handles.push(
                cx.spawn(move |cx| async move {
                    notify.notified(&cx).await.expect("not cancelled");
                    1u64
                })
                .expect("spawn"),
            );
        }
        while (notify.waiters() as u64) < n {
            asupersync::time::sleep(&cx, Duration::from_millis(1))
                .await
                .expect("not cancelled");
        }
        let live = stop_counting_live();
        notify.notify_waiters();
        let mut woke = 0u64;
        for h in handles {
            woke += h.join(&cx).await.expect("joined");
        }
        (live, woke)
    });
    assert_eq!(woke, n);
    live
}

fn parked_bytes_tokio(rt: &Tokio, n: u64) -> i64 {
    let (live, woke) = rt.block_on(async move {
        let notify = Arc::new(tokio::sync::Notify::new());
        let parked = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::with_capacity(n as usize);
        start_counting();
        for _ in 0..n {
            let (notify, parked) = (notify.clone(), parked.clone());
            handles.push(tokio::spawn(async move {
                let notified = notify.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable(); // registered as a waiter
                parked.fetch_add(1, Ordering::AcqRel);
                notified.await;
                1u64
            }));
        }
        while parked.load(Ordering::Acquire) < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let live = stop_counting_live();
        notify.notify_waiters();
        let mut woke = 0u64;
        for h in handles {
            woke += h.await.expect("joined");
        }
        (live, woke)
    });
    assert_eq!(woke, n);
    live
}

fn alloc_pass(workers: usize, n: u64) {
    let ours = ours_mt(workers);
    let theirs = tokio_mt(workers);
    // Warm both (lazy statics, queue growth) outside the count.
    spawn_many_ours(&ours, n);
    spawn_many_tokio(&theirs, n);
    let (oa, ob) = count_allocs(|| {
        spawn_many_ours(&ours, n);
    });
    let (ta, tb) = count_allocs(|| {
        spawn_many_tokio(&theirs, n);
    });
    let per = |x: u64| x as f64 / n as f64;
    parked_bytes_ours(&ours, n);
    parked_bytes_tokio(&theirs, n);
    let ol = parked_bytes_ours(&ours, n);
    let tl = parked_bytes_tokio(&theirs, n);
    let per_live = |x: i64| x as f64 / n as f64;
    println!("allocs_per_spawn ours={:.2} tokio={:.2}", per(oa), per(ta));
    println!(
        "bytes_per_task ours={:.0} tokio={:.0}",
        per_live(ol),
        per_live(tl)
    );
    println!("bytes_per_spawn ours={:.0} tokio={:.0}", per(ob), per(tb));
}

// ------------------------------------------------------------ idle CPU

/// How long each runtime sits idle in `idle_cpu`.
const IDLE_FOR: Duration = Duration::from_secs(5);

/// On-CPU time of every live thread of this process so far (the first field
/// of each `/proc/self/task/<tid>/schedstat`, in nanoseconds), or `None`
/// where that is not available (not Linux).
fn process_cpu_time() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread that exited since `read_dir` has no file any more.
        if let Ok(stat) = std::fs::read_to_string(path) {
            total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(Duration::from_nanos(total))
}

/// CPU used while `idle` runs (it should just wait), as a percentage of
/// one core over its wall time.
fn idle_percent(idle: impl FnOnce()) -> Option<f64> {
    let (cpu0, t0) = (process_cpu_time()?, Instant::now());
    idle();
    let (cpu1, wall) = (process_cpu_time()?, t0.elapsed());
    Some(cpu1.saturating_sub(cpu0).as_secs_f64() / wall.as_secs_f64() * 100.0)
}

/// An idle 2-worker runtime of each kind: the workers have run once (so
/// they exist and went idle), then the only thing pending is one 5 s sleep
/// in `block_on`. Each runtime is measured alone (the other one is dropped).
fn idle_cpu() {
    let ours = {
        let rt = ours_mt(2);
        spawn_many_ours(&rt, 100);
        idle_percent(|| {
            rt.block_on(|cx: Cx| async move {
                asupersync::time::sleep(&cx, IDLE_FOR)
                    .await
                    .expect("idle sleep");
            })
        })
    };
    let theirs = {
        let rt = tokio_mt(2);
        spawn_many_tokio(&rt, 100);
        idle_percent(|| rt.block_on(async { tokio::time::sleep(IDLE_FOR).await }))
    };
    let show = |p: Option<f64>| p.map_or_else(|| "n/a".to_string(), |p| format!("{p:.2}%"));
    println!("idle_cpu ours={} tokio={}", show(ours), show(theirs));
}

fn channel_workloads(s: &Settings, suffix: &str, ours: &Ours, theirs: &Tokio) {
    let k = s.scale;
    compare(
        &format!("mpsc_uncontended{suffix}"),
        s,
        || mpsc_ours(ours, 1, 10_000 * k),
        || mpsc_tokio(theirs, 1, 10_000 * k),
    );
    compare(
        &format!("mpsc_contended{suffix}"),
        s,
        || mpsc_ours(ours, 8, 1_250 * k),
        || mpsc_tokio(theirs, 8, 1_250 * k),
    );
    compare(
        &format!("oneshot{suffix}"),
        s,
        || oneshot_ours(ours, 2_000 * k),
        || oneshot_tokio(theirs, 2_000 * k),
    );
    compare(
        &format!("semaphore_contended{suffix}"),
        s,
        || semaphore_ours(ours, 16, 250 * k),
        || semaphore_tokio(theirs, 16, 250 * k),
    );
    compare(
        &format!("mutex_contended{suffix}"),
        s,
        || mutex_ours(ours, 16, 250 * k),
        || mutex_tokio(theirs, 16, 250 * k),
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    start_watchdog();
    let s = settings();
    let k = s.scale;
    {
        let (ours, theirs) = (ours_rt(), tokio_rt());
        channel_workloads(&s, "", &ours, &theirs);
    }
    let w = s.workers;
    println!("# multi-thread: workers={w}");
    let s = Settings {
        runs: s.mt_runs,
        ..s
    };
    let (ours, theirs) = (ours_mt(w), tokio_mt(w));
    channel_workloads(&s, "_mt", &ours, &theirs);
    compare(
        "spawn_many",
        &s,
        || spawn_many_ours(&ours, 10_000),
        || spawn_many_tokio(&theirs, 10_000),
    );
    compare(
        "spawn_remote",
        &s,
        || spawn_remote_ours(&ours, 10_000),
        || spawn_remote_tokio(&theirs, 10_000),
    );
    compare(
        "yield_many",
        &s,
        || yield_many_ours(&ours, 100, 200 * k),
        || yield_many_tokio(&theirs, 100, 200 * k),
    );
    compare(
        "ping_pong",
        &s,
        || ping_pong_ours(&ours, 100, 20 * k),
        || ping_pong_tokio(&theirs, 100, 20 * k),
    );
    compare(
        "chained_spawn",
        &s,
        || chained_spawn_ours(&ours, 2_000 * k),
        || chained_spawn_tokio(&theirs, 2_000 * k),
    );
    compare(
        "request_reply",
        &s,
        || request_reply_ours(&ours, 8, 250 * k),
        || request_reply_tokio(&theirs, 8, 250 * k),
    );
    let timer_tasks = w as u64;
    compare(
        "timers_100k",
        &s,
        || timers_ours(&ours, timer_tasks, 100_000 / timer_tasks),
        || timers_tokio(&theirs, timer_tasks, 100_000 / timer_tasks),
    );
    compare(
        "cancel_storm",
        &s,
        || cancel_storm_ours(&ours, 10_000),
        || cancel_storm_tokio(&theirs, 10_000),
    );
    compare(
        "ext_wake_rtt",
        &s,
        || ext_wake_ours(&ours, 2_000 * k),
        || ext_wake_tokio(&theirs, 2_000 * k),
    );
    if let Some((region, bare, ratio)) = alternate(
        "region_overhead",
        &s,
        || region_one_task(&ours, 2_000 * k),
        || bare_spawn_join(&ours, 2_000 * k),
    ) {
        println!("region_overhead ours_region={region:.0} ours_bare={bare:.0} ratio={ratio:.3}");
    }
    if let Some((region, bare, ratio)) = alternate(
        "region_open_close",
        &s,
        || region_open_close(&ours, 2_000 * k),
        || bare_spawn_join(&ours, 2_000 * k),
    ) {
        println!("region_open_close ours_region={region:.0} ours_bare={bare:.0} ratio={ratio:.3}");
    }
    compare(
        "spawn_tree",
        &s,
        || spawn_tree_ours(&ours, 12),
        || spawn_tree_tokio(&theirs, 12),
    );
    compare(
        "sleep_storm",
        &s,
        || sleep_storm_ours(&ours, 10_000, 1),
        || sleep_storm_tokio(&theirs, 10_000, 1),
    );
    compare(
        "oneshot_ring",
        &s,
        || oneshot_ring_ours(&ours, 10_000),
        || oneshot_ring_tokio(&theirs, 10_000),
    );
    compare(
        "abort_sleepers",
        &s,
        || abort_sleepers_ours(&ours, 10_000),
        || abort_sleepers_tokio(&theirs, 10_000),
    );
    compare(
        "region_per_task",
        &s,
        || region_per_task_ours(&ours, 2_000, false),
        || region_per_task_tokio(&theirs, 2_000, false),
    );
    compare(
        "deadline_region_per_task",
        &s,
        || region_per_task_ours(&ours, 2_000, true),
        || region_per_task_tokio(&theirs, 2_000, true),
    );
    drop((ours, theirs));
    if selected("alloc_pass") {
        watch("alloc_pass");
        alloc_pass(w, 10_000);
    }
    if selected("idle_cpu") {
        watch("idle_cpu");
        idle_cpu();
    }
    set_watched(None);
}
