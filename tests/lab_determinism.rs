//! The lab is deterministic: same seed and same program, same trace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use asupersync::lab::{LabConfig, LabRuntime};
use asupersync::time::sleep;
use asupersync::{Cx, Time};

/// Three tasks that interleave through yields and short sleeps, recording
/// the order in which they made progress.
async fn racy_program(cx: Cx, log: Arc<Mutex<Vec<u32>>>) {
    {
        let mut handles = Vec::new();
        for id in 0..3u32 {
            let log = log.clone();
            handles.push(
                cx.spawn(move |cx| async move {
                    for step in 0..3 {
                        log.lock().unwrap().push(id * 10 + step);
                        if step == 1 {
                            sleep(&cx, Duration::from_millis(u64::from(id) + 1))
                                .await
                                .unwrap();
                        } else {
                            asupersync::yield_now().await;
                        }
                    }
                })
                .unwrap(),
            );
        }
        for h in handles {
            h.join(&cx).await.unwrap();
        }
    }
}

fn run(seed: u64) -> (u64, Vec<asupersync::trace::TraceEvent>, Vec<u32>) {
    let lab = LabRuntime::new(LabConfig::new(seed));
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    lab.block_on(move |cx| racy_program(cx, l));
    let order = log.lock().unwrap().clone();
    (lab.trace_fingerprint(), lab.trace(), order)
}

#[test]
fn the_same_seed_gives_the_same_trace_and_fingerprint() {
    for seed in 0..50 {
        let (fa, ta, oa) = run(seed);
        let (fb, tb, ob) = run(seed);
        assert_eq!(fa, fb, "seed {seed}");
        assert_eq!(ta, tb, "seed {seed}");
        assert_eq!(oa, ob, "seed {seed}");
    }
}

#[test]
fn different_seeds_explore_different_schedules() {
    let fingerprints: std::collections::BTreeSet<u64> = (0..50).map(|s| run(s).0).collect();
    assert!(
        fingerprints.len() > 10,
        "only {} distinct schedules",
        fingerprints.len()
    );
}

#[test]
fn an_hour_of_virtual_sleep_takes_no_real_hour() {
    let wall = std::time::Instant::now();
    let lab = LabRuntime::new(LabConfig::new(1));
    let end = lab.block_on(|cx| async move {
        for _ in 0..60 {
            sleep(&cx, Duration::from_secs(60)).await.unwrap();
        }
        cx.now()
    });
    assert_eq!(end, Time::from_secs(3600));
    assert_eq!(lab.now(), Time::from_secs(3600));
    // A lab that really slept would take the hour (no bound on how fast a
    // loaded machine gets through the simulation).
    assert!(
        wall.elapsed() < Duration::from_secs(3600),
        "took {:?}",
        wall.elapsed()
    );
}
