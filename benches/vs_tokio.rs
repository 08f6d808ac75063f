//! Side-by-side benchmarks: the same workloads on asupersync and on tokio, in
//! one process, alternating runs.
//!
//! `cargo bench --bench vs_tokio` (full) or `cargo bench --bench vs_tokio -- --quick`.
//! One line per workload, for scripts:
//! `<workload> ours=<median ns> tokio=<median ns> ratio=<median of per-run ours/tokio>`
//!
//! Every workload checks its own result in the loop, so neither side can get
//! faster by skipping work. Both runtimes use their current-thread flavour.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use asupersync::channel::{mpsc, oneshot};
use asupersync::sync::{Mutex, Semaphore};
use asupersync::{Cx, RuntimeBuilder};

struct Settings {
    runs: usize,
    scale: u64,
}

fn settings() -> Settings {
    let quick = std::env::args().any(|a| a == "--quick");
    if quick {
        Settings { runs: 7, scale: 1 }
    } else {
        Settings { runs: 21, scale: 4 }
    }
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
    println!(
        "{name} ours={:.0} tokio={:.0} ratio={:.3}",
        median(a),
        median(b),
        median(ratios)
    );
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

fn main() {
    let s = settings();
    let k = s.scale;
    let (ours, theirs) = (ours_rt(), tokio_rt());
    compare(
        "mpsc_uncontended",
        &s,
        || mpsc_ours(&ours, 1, 10_000 * k),
        || mpsc_tokio(&theirs, 1, 10_000 * k),
    );
    compare(
        "mpsc_contended",
        &s,
        || mpsc_ours(&ours, 8, 1_250 * k),
        || mpsc_tokio(&theirs, 8, 1_250 * k),
    );
    compare(
        "oneshot",
        &s,
        || oneshot_ours(&ours, 2_000 * k),
        || oneshot_tokio(&theirs, 2_000 * k),
    );
    compare(
        "semaphore_contended",
        &s,
        || semaphore_ours(&ours, 16, 250 * k),
        || semaphore_tokio(&theirs, 16, 250 * k),
    );
    compare(
        "mutex_contended",
        &s,
        || mutex_ours(&ours, 16, 250 * k),
        || mutex_tokio(&theirs, 16, 250 * k),
    );
}
