//! `#[asupersync::lab_test]` and the seed sweep behind it
//! (`asupersync::lab::run_seeds`).
//!
//! Process environment variables are never set here (tests run in
//! parallel): the `ASUPERSYNC_LAB_SEED` / `ASUPERSYNC_LAB_SEEDS` handling is
//! tested through `run_seeds_with` / `try_run_seeds`, which take the
//! overrides as a parameter.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asupersync::lab::{
    ChaosConfig, LabConfig, LabRuntime, SEED_ENV, SeedOverrides, SeedRange, libtest_name,
    replay_command, run_seeds_with, try_run_seeds,
};
use asupersync::time::sleep;
use asupersync::{Cx, Time};

// ----- the attribute on real tests ------------------------------------------

#[asupersync::lab_test(seeds = 200)]
async fn a_passing_body_passes_on_every_seed(cx: Cx) {
    let hs: Vec<_> = (0..4u64)
        .map(|i| {
            cx.spawn(move |cx| async move {
                sleep(&cx, Duration::from_millis(i + 1)).await.unwrap();
                asupersync::yield_now().await;
                i
            })
            .unwrap()
        })
        .collect();
    let mut sum = 0;
    for h in hs {
        sum += h.join(&cx).await.unwrap();
    }
    assert_eq!(sum, 6);
    assert_eq!(cx.now(), Time::from_millis(4));
}

/// Two tasks race to append to a log; the body (wrongly) assumes the first
/// spawned always goes first. Some schedules break that.
async fn first_spawned_goes_first(cx: Cx) {
    let log = Arc::new(Mutex::new(Vec::new()));
    for id in 0..2u32 {
        let log = log.clone();
        let _ = cx
            .spawn(move |_| async move {
                asupersync::yield_now().await;
                log.lock().unwrap().push(id);
            })
            .unwrap();
    }
    // Wait for both (the root region would wait anyway; we need the log).
    while log.lock().unwrap().len() < 2 {
        asupersync::yield_now().await;
    }
    assert_eq!(
        log.lock().unwrap()[0],
        0,
        "the second task overtook the first"
    );
}

/// The sweep fails on the first bad schedule, and the body's own panic
/// reaches `#[should_panic]`.
#[asupersync::lab_test(seeds = 100)]
#[should_panic(expected = "the second task overtook the first")]
async fn a_schedule_dependent_failure_fails_the_test(cx: Cx) {
    first_spawned_goes_first(cx).await;
}

/// Seeds `0..100` on which [`first_spawned_goes_first`] fails, each run
/// alone as a replay.
fn race_failures() -> Vec<u64> {
    (0..100)
        .filter(|&seed| {
            try_run_seeds(
                SeedRange::new(0, 100),
                SeedOverrides::replay(seed),
                LabConfig::new,
                first_spawned_goes_first,
            )
            .is_err()
        })
        .collect()
}

#[test]
fn the_race_fails_on_some_seeds_but_not_all() {
    let failing = race_failures();
    assert!(
        !failing.is_empty() && failing.len() < 100,
        "{} of 100 seeds fail",
        failing.len()
    );
}

/// Runs one test of this binary in a child process with `env` set (the
/// only way to test the real environment variables without racing the
/// other tests of this process).
fn run_this_binary(test: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env_remove(SEED_ENV)
        .env_remove(asupersync::lab::SEEDS_ENV)
        .env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the test binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_seed_env_var_replays_one_seed_of_a_generated_test() {
    let failing = race_failures();
    let bad = failing[0];
    let good = (0..100).find(|s| !failing.contains(s)).unwrap();
    let test = "a_schedule_dependent_failure_fails_the_test";

    // The failing seed alone still fails (so the should_panic test passes),
    // and the report says it was a replay, with the same command.
    let (ok, text) = run_this_binary(test, &[(SEED_ENV, &bad.to_string())]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("{test}: replaying seed {bad} only")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "asupersync lab: {test} failed with seed {bad} (replayed from ASUPERSYNC_LAB_SEED)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "replay: ASUPERSYNC_LAB_SEED={bad} cargo test {test}"
        )),
        "{text}"
    );

    // A good seed alone passes the body, so the should_panic test fails.
    let (ok, text) = run_this_binary(test, &[(SEED_ENV, &good.to_string())]);
    assert!(!ok, "{text}");
    assert!(text.contains("did not panic"), "{text}");
}

#[test]
fn the_seeds_env_var_changes_the_count_and_bad_values_are_named() {
    // The full sweep fails on seed `bad`; a sweep that stops before it passes
    // the body, so the should_panic test fails.
    let bad = race_failures()[0];
    let test = "a_schedule_dependent_failure_fails_the_test";
    if bad > 0 {
        let (ok, text) = run_this_binary(test, &[("ASUPERSYNC_LAB_SEEDS", &bad.to_string())]);
        assert!(!ok, "{text}");
    }
    let (ok, text) = run_this_binary(test, &[("ASUPERSYNC_LAB_SEEDS", &(bad + 1).to_string())]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("of 0..{}, after {bad} passed", bad + 1)),
        "{text}"
    );

    let (ok, text) = run_this_binary(
        "a_lab_test_without_a_cx_parameter_is_allowed",
        &[(SEED_ENV, "seventeen")],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("ASUPERSYNC_LAB_SEED=\"seventeen\" is not a seed"),
        "{text}"
    );
}

#[asupersync::lab_test(seeds = 20)]
async fn a_body_may_return_a_result(cx: Cx) -> Result<(), asupersync::types::cancel::Cancelled> {
    sleep(&cx, Duration::from_secs(5)).await?;
    cx.checkpoint()?;
    Ok(())
}

#[asupersync::lab_test(seeds = 5)]
#[should_panic(expected = "the test body returned Err(\"nope\")")]
async fn a_body_returning_err_fails_the_test(_cx: Cx) -> Result<(), &'static str> {
    Err("nope")
}

#[asupersync::lab_test(seeds = 3)]
async fn a_lab_test_without_a_cx_parameter_is_allowed() {
    asupersync::yield_now().await;
}

#[asupersync::lab_test(
    seeds = 40,
    base_seed = 1000,
    chaos = "heavy",
    policy = "pct",
    workers = 3
)]
async fn options_reach_the_lab(cx: Cx) {
    // A cancel-correct body: every wait handles cancellation.
    let hs: Vec<_> = (0..3u64)
        .map(|i| {
            cx.spawn(move |cx| async move {
                for _ in 0..5 {
                    if sleep(&cx, Duration::from_millis(i + 1)).await.is_err() {
                        return None;
                    }
                }
                Some(i)
            })
            .unwrap()
        })
        .collect();
    for h in hs {
        // Chaos may cancel the child: that is an outcome, not a failure.
        let _ = h.join(&cx).await;
    }
}

#[asupersync::lab_test(seeds = 4, policy = "fifo", step_limit = 10)]
#[should_panic(expected = "step limit of 10 dispatches exceeded")]
async fn the_step_limit_option_reaches_the_lab(cx: Cx) {
    let h = cx
        .spawn(|_| async {
            loop {
                asupersync::yield_now().await;
            }
        })
        .unwrap();
    let _ = h.join(&cx).await;
}

thread_local! {
    static RUNS: Cell<u64> = const { Cell::new(0) };
    static DRAWS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Counts its runs on the calling thread (the lab runs everything there).
#[asupersync::lab_test(seeds = 37, base_seed = 5)]
async fn counts_its_runs(cx: Cx) {
    RUNS.with(|r| r.set(r.get() + 1));
    DRAWS.with(|d| d.borrow_mut().push(cx.random_u64()));
}

#[test]
fn the_generated_test_runs_one_fresh_lab_per_seed() {
    RUNS.with(|r| r.set(0));
    DRAWS.with(|d| d.borrow_mut().clear());
    counts_its_runs();
    // Whatever the environment asks for (normally: the attribute's 37).
    let (range, _) = SeedOverrides::from_env().apply(SeedRange::new(5, 37));
    assert_eq!(RUNS.with(Cell::get), range.count());
    // One fresh lab per seed: the first draw of each run is that seed's
    // first draw, so they are all distinct, and they are exactly what
    // `LabConfig::new(seed)` draws.
    let draws = DRAWS.with(|d| d.borrow().clone());
    let distinct: BTreeSet<u64> = draws.iter().copied().collect();
    assert_eq!(distinct.len(), draws.len());
    let expected: Vec<u64> = range
        .iter()
        .map(|seed| {
            LabRuntime::new(LabConfig::new(seed)).block_on(|cx| async move { cx.random_u64() })
        })
        .collect();
    assert_eq!(draws, expected);
}

mod nested {
    #[asupersync::lab_test(seeds = 2)]
    async fn in_a_module(cx: asupersync::Cx) {
        let _ = cx.task_id();
    }

    #[test]
    fn the_replay_filter_is_the_libtest_name() {
        // In an integration test the crate is the test target.
        assert_eq!(
            asupersync::lab::libtest_name(module_path!(), "in_a_module"),
            "nested::in_a_module"
        );
        in_a_module();
    }
}

// ----- run_seeds with explicit overrides --------------------------------------

/// Seeds seen by a body, via a marker drawn from the lab (`random_u64`'s first
/// value identifies the seed).
fn seed_marker(seed: u64) -> u64 {
    LabRuntime::new(LabConfig::new(seed)).block_on(|cx| async move { cx.random_u64() })
}

fn seeds_seen(range: SeedRange, overrides: SeedOverrides) -> (u64, Vec<u64>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let ran = run_seeds_with("t", range, overrides, LabConfig::new, move |cx| {
        let s = s.clone();
        async move {
            s.lock().unwrap().push(cx.random_u64());
        }
    });
    let markers = seen.lock().unwrap().clone();
    (ran, markers)
}

#[test]
fn without_overrides_every_seed_of_the_range_runs_in_order() {
    let (ran, markers) = seeds_seen(SeedRange::new(10, 8), SeedOverrides::none());
    assert_eq!(ran, 8);
    let expected: Vec<u64> = (10..18).map(seed_marker).collect();
    assert_eq!(markers, expected);
}

#[test]
fn the_seed_override_runs_only_that_seed() {
    // Even one outside the test's own range: it replays a report.
    let (ran, markers) = seeds_seen(SeedRange::new(0, 50), SeedOverrides::replay(777));
    assert_eq!(ran, 1);
    assert_eq!(markers, vec![seed_marker(777)]);
}

#[test]
fn the_count_override_changes_how_many_seeds_run() {
    let (ran, markers) = seeds_seen(SeedRange::new(3, 50), SeedOverrides::count(4));
    assert_eq!(ran, 4);
    assert_eq!(markers, (3..7).map(seed_marker).collect::<Vec<_>>());
}

#[test]
fn env_values_are_parsed_like_the_variables() {
    assert_eq!(
        SeedOverrides::parse(Some("17"), None)
            .unwrap()
            .apply(SeedRange::new(0, 100)),
        (SeedRange::single(17), true)
    );
    assert_eq!(
        SeedOverrides::parse(None, Some("1000"))
            .unwrap()
            .apply(SeedRange::new(0, 100)),
        (SeedRange::new(0, 1000), false)
    );
    let err = SeedOverrides::parse(Some("17x"), None).unwrap_err();
    assert!(err.contains("ASUPERSYNC_LAB_SEED=\"17x\""), "{err}");
    let err = SeedOverrides::parse(None, Some("lots")).unwrap_err();
    assert!(err.contains("ASUPERSYNC_LAB_SEEDS=\"lots\""), "{err}");
}

/// A body that fails exactly on the seeds whose first random draw is even
/// (about half of them), so which seed fails first is known in advance.
async fn fails_on_even_draws(cx: Cx) {
    let draw = cx.random_u64();
    // Something real happens first, so the failure is mid-run.
    let h = cx.spawn(|cx| async move { cx.task_id() }).unwrap();
    h.join(&cx).await.unwrap();
    assert!(draw % 2 == 1, "even draw {draw}");
}

#[test]
fn the_first_failing_seed_is_reported_with_a_replay_command() {
    let first_even = (0..)
        .find(|&s| seed_marker(s).is_multiple_of(2))
        .expect("some seed draws an even number");
    let failure = try_run_seeds(
        SeedRange::new(0, 100),
        SeedOverrides::none(),
        LabConfig::new,
        fails_on_even_draws,
    )
    .unwrap_err();
    assert_eq!(failure.seed(), first_even);
    assert_eq!(failure.seeds_passed(), first_even);
    assert!(!failure.is_replay());
    assert_eq!(failure.range(), SeedRange::new(0, 100));
    assert_eq!(
        failure.message(),
        format!("even draw {}", seed_marker(first_even))
    );
    let report = failure.report("my_mod::my_test");
    assert_eq!(
        report,
        format!(
            "asupersync lab: my_mod::my_test failed with seed {s} (of 0..100, after {s} passed): even draw {d}\n  replay: ASUPERSYNC_LAB_SEED={s} cargo test my_mod::my_test",
            s = first_even,
            d = seed_marker(first_even)
        )
    );
    assert_eq!(
        replay_command("x::y", first_even),
        format!("{SEED_ENV}={first_even} cargo test x::y")
    );
}

#[test]
fn replaying_the_reported_seed_reproduces_the_failure() {
    let failure = try_run_seeds(
        SeedRange::new(0, 100),
        SeedOverrides::none(),
        LabConfig::new,
        fails_on_even_draws,
    )
    .unwrap_err();
    let replay = try_run_seeds(
        SeedRange::new(0, 100),
        SeedOverrides::replay(failure.seed()),
        LabConfig::new,
        fails_on_even_draws,
    )
    .unwrap_err();
    assert_eq!(replay.seed(), failure.seed());
    assert_eq!(replay.message(), failure.message());
    assert!(replay.is_replay());
    assert_eq!(replay.seeds_passed(), 0);
    assert!(
        replay.report("t").contains(&format!(
            "failed with seed {} (replayed from ASUPERSYNC_LAB_SEED)",
            failure.seed()
        )),
        "{}",
        replay.report("t")
    );
    // A passing seed replays as a pass.
    let passing = (0..).find(|&s| seed_marker(s) % 2 == 1).unwrap();
    assert_eq!(
        try_run_seeds(
            SeedRange::new(0, 100),
            SeedOverrides::replay(passing),
            LabConfig::new,
            fails_on_even_draws,
        )
        .unwrap(),
        1
    );
}

#[test]
fn the_sweep_stops_at_the_first_failure() {
    let runs = Arc::new(Mutex::new(0u64));
    let r = runs.clone();
    let failure = try_run_seeds(
        SeedRange::new(0, 100),
        SeedOverrides::none(),
        LabConfig::new,
        move |cx| {
            let r = r.clone();
            async move {
                *r.lock().unwrap() += 1;
                fails_on_even_draws(cx).await;
            }
        },
    )
    .unwrap_err();
    assert_eq!(*runs.lock().unwrap(), failure.seed() + 1);
}

#[derive(Debug, PartialEq)]
struct CustomPayload(u32);

#[test]
fn the_original_panic_payload_is_resumed() {
    let caught = catch_unwind(AssertUnwindSafe(|| {
        run_seeds_with(
            "payload_test",
            SeedRange::new(0, 10),
            SeedOverrides::none(),
            LabConfig::new,
            |cx| async move {
                if cx.random_u64() % 3 == 0 {
                    std::panic::panic_any(CustomPayload(7));
                }
            },
        )
    }))
    .unwrap_err();
    assert_eq!(
        caught.downcast_ref::<CustomPayload>(),
        Some(&CustomPayload(7))
    );
}

#[test]
fn an_unjoined_child_panic_fails_the_seed() {
    let failure = try_run_seeds(
        SeedRange::new(0, 3),
        SeedOverrides::none(),
        LabConfig::new,
        |cx| async move {
            let _ = cx.spawn(|_| async { panic!("child exploded") }).unwrap();
        },
    )
    .unwrap_err();
    assert_eq!(failure.seed(), 0);
    assert!(
        failure.message().contains("child exploded"),
        "{}",
        failure.message()
    );
}

#[test]
fn a_lab_deadlock_fails_the_seed_with_its_diagnosis() {
    let failure = try_run_seeds(
        SeedRange::new(0, 3),
        SeedOverrides::none(),
        LabConfig::new,
        |_cx| std::future::pending::<()>(),
    )
    .unwrap_err();
    assert!(
        failure.message().contains("deadlock"),
        "{}",
        failure.message()
    );
}

#[test]
fn the_config_closure_sees_each_seed_and_can_enable_chaos() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let ran = try_run_seeds(
        SeedRange::new(40, 5),
        SeedOverrides::none(),
        move |seed| {
            s.lock().unwrap().push(seed);
            LabConfig::new(seed).chaos(ChaosConfig::light())
        },
        |cx| async move {
            let _ = cx
                .spawn(|cx| async move { cx.checkpoint() })
                .unwrap()
                .join(&cx)
                .await;
        },
    )
    .unwrap();
    assert_eq!(ran, 5);
    assert_eq!(*seen.lock().unwrap(), vec![40, 41, 42, 43, 44]);
}

#[test]
#[should_panic(expected = "build it with LabConfig::new(seed)")]
fn a_config_that_ignores_the_seed_is_rejected() {
    let _ = try_run_seeds(
        SeedRange::new(0, 3),
        SeedOverrides::none(),
        |_seed| LabConfig::new(42),
        |_cx| async {},
    );
}

#[test]
fn libtest_names_strip_the_crate_name() {
    assert_eq!(libtest_name("lab_test_attribute", "t"), "t");
    assert_eq!(libtest_name("my_crate::a::b", "t"), "a::b::t");
}
