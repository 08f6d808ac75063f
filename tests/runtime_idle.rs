//! An idle runtime parks for good: while the only pending thing is one
//! timer, no thread wakes up again and again (no polling tick, no spin
//! that never ends). Counted with `Runtime::metrics()` parks, never with
//! CPU time or wall-clock limits: a slow machine only makes the bound
//! easier to meet.

mod support;

use std::time::Duration;

use asupersync::Cx;
use asupersync::runtime::RuntimeMetrics;
use support::*;

/// How long the runtime sits idle (a sleep on the runtime's own clock).
const IDLE: Duration = Duration::from_millis(500);

/// Generous: each thread parks a few times around the one timer (before
/// it, after it fires, after the root's wake). A 10 ms polling tick would
/// park about 50 times per thread over [`IDLE`].
const MAX_PARKS_PER_THREAD: u64 = 8;

fn worker_parks(m: &RuntimeMetrics) -> Vec<u64> {
    m.workers.iter().map(|w| w.parks).collect()
}

on_both_drivers! {
    /// Work first (so every worker has run and gone idle), then a 500 ms
    /// sleep with nothing else pending: every worker and the `block_on`
    /// thread park only a handful of times.
    fn an_idle_runtime_does_not_wake_repeatedly(d: Driver) {
        let rt = d.rt();
        let (before, after) = rt.block_on(|cx: Cx| {
            let rt = &rt;
            async move {
                let handles: Vec<_> = (0..64u64)
                    .map(|i| cx.spawn(move |_cx| async move { i * 2 }).unwrap())
                    .collect();
                let mut sum = 0;
                for h in handles {
                    sum += h.join(&cx).await.unwrap();
                }
                assert_eq!(sum, 64 * 63);
                let before = rt.metrics();
                asupersync::time::sleep(&cx, IDLE).await.unwrap();
                (before, rt.metrics())
            }
        });
        let (w0, w1) = (worker_parks(&before), worker_parks(&after));
        for (i, (p0, p1)) in w0.iter().zip(&w1).enumerate() {
            assert!(
                p1 - p0 <= MAX_PARKS_PER_THREAD,
                "worker {i} parked {} times during an idle {IDLE:?} (it keeps waking up): \
                 {before:?} -> {after:?}",
                p1 - p0
            );
        }
        let b = after.block_on_parks - before.block_on_parks;
        assert!(
            b <= MAX_PARKS_PER_THREAD,
            "the block_on thread parked {b} times during an idle {IDLE:?}: \
             {before:?} -> {after:?}"
        );
        assert_quiescent(&rt);
    }
}
