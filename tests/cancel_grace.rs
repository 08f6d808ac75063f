//! K4: a region's shared grace deadline only ever shortens. A region
//! cancelled with `FailFast` whose owner is aborted later (which re-cancels
//! the region with the stronger `ParentCancelled`) keeps the deadline of the
//! first cancel when the new one would end later. Checked in the lab, with
//! exact virtual times.

use std::time::Duration;

use asupersync::kernel::ForceDropCause;
use asupersync::lab::{LabConfig, LabRuntime};
use asupersync::time::sleep;
use asupersync::types::{CancelKind, Outcome};
use asupersync::{Cx, Time};

/// The owner task opens a region whose body spawns a child that never
/// observes cancellation and fails at 1 ms (FailFast, 1 s grace); the owner
/// is aborted at 900 ms. Returns when the stubborn child was force-dropped.
fn run(lab: &LabRuntime) -> Time {
    lab.block_on(|cx: Cx| async move {
        let owner = cx
            .spawn(|cx| async move {
                cx.region(|rcx| async move {
                    drop(rcx.spawn(|_| std::future::pending::<()>()).unwrap());
                    sleep(&rcx, Duration::from_millis(1)).await.unwrap();
                    Err::<(), _>("fail at 1 ms")
                })
                .await
            })
            .unwrap();
        sleep(&cx, Duration::from_millis(900)).await.unwrap();
        owner.abort();
        // The owner only awaits its region: it returns the region's outcome
        // once the stubborn child is gone.
        let out = owner.join(&cx).await.expect("the owner returns normally");
        assert!(matches!(out, Outcome::Err("fail at 1 ms")), "{out:?}");
    });
    let stats = lab.stats();
    assert_eq!(stats.forced_drop_count, 1, "{:?}", stats.forced_drops);
    let drop = &stats.forced_drops[0];
    assert_eq!(drop.cause, ForceDropCause::GraceExpired);
    assert_eq!(drop.reason.kind, CancelKind::ParentCancelled);
    drop.at
}

#[test]
fn strengthening_a_region_cancel_never_extends_its_grace_period() {
    // FailFast at 1 ms: 1 s of grace. ParentCancelled at 900 ms would give
    // 500 ms more, until 1.4 s.
    let lab = LabRuntime::new(LabConfig::new(1));
    assert_eq!(run(&lab), Time::from_millis(1_001));
}

#[test]
fn with_a_uniform_grace_the_later_cancel_keeps_the_first_deadline() {
    // Uniform 1 s: the abort at 900 ms would move the deadline to 1.9 s.
    let lab = LabRuntime::new(LabConfig::new(2).cleanup_grace(Duration::from_secs(1)));
    assert_eq!(run(&lab), Time::from_millis(1_001));
}
