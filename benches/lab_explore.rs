//! Schedules explored per second on a small 3-task program.
//!
//! `cargo bench --bench lab_explore` prints
//! `lab_explore schedules_per_sec=<n> schedules=<k> elapsed_ms=<t>`.
//!
//! Without `--bench` (which `cargo bench` passes), `main` returns at once:
//! `cargo test --all-targets` builds and runs benches with no arguments.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use asupersync::lab::{ExploreConfig, ExploreMode, explore};
use asupersync::{Cx, yield_now};

/// Three tasks, each touching a shared mutex around two yields.
async fn three_tasks(cx: Cx) {
    let shared = Arc::new(Mutex::new(0u64));
    let mut handles = Vec::with_capacity(3);
    for _ in 0..3 {
        let shared = shared.clone();
        handles.push(
            cx.spawn(move |_cx| async move {
                *shared.lock().unwrap() += 1;
                yield_now().await;
                *shared.lock().unwrap() += 1;
                yield_now().await;
                *shared.lock().unwrap() += 1;
            })
            .unwrap(),
        );
    }
    for h in handles {
        h.join(&cx).await.unwrap();
    }
    assert_eq!(*shared.lock().unwrap(), 9);
}

fn measure(label: &str, config: ExploreConfig) {
    let start = Instant::now();
    let report = explore(config, three_tasks);
    let elapsed = start.elapsed();
    assert!(report.is_ok(), "{report}");
    let schedules = report.schedules_run();
    let per_sec = schedules as f64 / elapsed.as_secs_f64();
    println!(
        "{label} schedules_per_sec={per_sec:.0} schedules={schedules} elapsed_ms={} distinct_traces={} exhaustive={}",
        elapsed.as_millis(),
        report.distinct_traces(),
        report.is_exhaustive()
    );
}

/// The first line is the headline number (default settings: `Random`
/// mode, oracles on); the others show what oracles cost and how PCT and
/// DPOR compare.
fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // Warm-up (allocator, page faults), not reported.
    let _ = explore(ExploreConfig::new().schedules(500), three_tasks);
    measure("lab_explore", ExploreConfig::new().schedules(150_000));
    measure(
        "lab_explore_no_oracles",
        ExploreConfig::new().schedules(50_000).oracles(false),
    );
    measure(
        "lab_explore_pct",
        ExploreConfig::new()
            .schedules(50_000)
            .mode(ExploreMode::Pct { depth: 3 }),
    );
    measure(
        "lab_explore_dpor",
        ExploreConfig::new()
            .schedules(20_000)
            .mode(ExploreMode::dpor()),
    );
}
