//! Running one test body over many seeds, and replaying the one that failed.
//!
//! This is the runtime half of `#[asupersync::lab_test]`: the attribute
//! expands to a `#[test] fn` that calls [`run_seeds`].
//!
//! ```
//! use asupersync::lab::{LabConfig, SeedRange, run_seeds};
//!
//! let seeds_run = run_seeds(
//!     "doc_example",
//!     SeedRange::new(0, 16),
//!     LabConfig::new,
//!     |cx| async move {
//!         let h = cx.spawn(|_| async { 1 + 1 }).unwrap();
//!         assert_eq!(h.join(&cx).await.unwrap(), 2);
//!     },
//! );
//! # let _ = seeds_run;
//! ```
//!
//! Rules:
//! - S1 (one fresh lab per seed): each seed gets its own
//!   [`LabRuntime`] built from `config(seed)`, so runs never share state and
//!   a failing seed replays alone exactly as it ran in the sweep.
//! - S2 (first failure stops the sweep): the first seed whose run panics —
//!   in the body, in an unjoined child, or in the lab itself (deadlock, step
//!   limit) — or whose body returns `Err` ends the sweep. The seed, the range
//!   and a one-line replay command are written to stderr, then the original
//!   panic is resumed, so `#[should_panic]` sees the body's own message.
//! - S3 (environment overrides): [`SEED_ENV`]`=<n>` runs only seed `n`
//!   (a replay); otherwise [`SEEDS_ENV`]`=<count>` changes how many seeds
//!   are run from the range's start. A malformed value panics naming the
//!   variable rather than being ignored.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::{LabConfig, LabRuntime};
use crate::exec::cx::Cx;

/// `ASUPERSYNC_LAB_SEED=<n>`: run only seed `n` (decimal, or hex with `0x`).
pub const SEED_ENV: &str = "ASUPERSYNC_LAB_SEED";

/// `ASUPERSYNC_LAB_SEEDS=<count>`: run `count` seeds instead of the test's
/// own number (ignored when [`SEED_ENV`] is set).
pub const SEEDS_ENV: &str = "ASUPERSYNC_LAB_SEEDS";

/// A contiguous range of seeds: `count` seeds starting at `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeedRange {
    start: u64,
    count: u64,
}

impl SeedRange {
    /// How many seeds `#[asupersync::lab_test]` runs by default.
    pub const DEFAULT_COUNT: u64 = 64;

    /// `count` seeds starting at `start` (`start..start + count`, clamped at
    /// `u64::MAX`).
    pub const fn new(start: u64, count: u64) -> Self {
        Self {
            start,
            count: if count > u64::MAX - start {
                u64::MAX - start
            } else {
                count
            },
        }
    }

    /// Exactly one seed.
    pub const fn single(seed: u64) -> Self {
        Self::new(seed, 1)
    }

    /// The first seed.
    pub const fn start(&self) -> u64 {
        self.start
    }

    /// How many seeds.
    pub const fn count(&self) -> u64 {
        self.count
    }

    /// One past the last seed.
    pub const fn end(&self) -> u64 {
        self.start + self.count
    }

    /// Whether `seed` is in the range.
    pub const fn contains(&self, seed: u64) -> bool {
        seed >= self.start && seed < self.end()
    }

    /// The seeds, in increasing order.
    pub fn iter(&self) -> Range<u64> {
        self.start..self.end()
    }
}

impl Default for SeedRange {
    /// `0..64`.
    fn default() -> Self {
        Self::new(0, Self::DEFAULT_COUNT)
    }
}

impl From<Range<u64>> for SeedRange {
    fn from(r: Range<u64>) -> Self {
        Self::new(r.start, r.end.saturating_sub(r.start))
    }
}

impl fmt::Display for SeedRange {
    /// `0..64`, the way a Rust range is written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end())
    }
}

/// What the environment (or a test of this module) asks for instead of the
/// test's own seeds. See rule S3.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeedOverrides {
    /// Run only this seed (a replay).
    pub seed: Option<u64>,
    /// Run this many seeds from the range's start.
    pub count: Option<u64>,
}

impl SeedOverrides {
    /// No override: the test's own range.
    pub const fn none() -> Self {
        Self {
            seed: None,
            count: None,
        }
    }

    /// Replays `seed` only (what [`SEED_ENV`] does).
    pub const fn replay(seed: u64) -> Self {
        Self {
            seed: Some(seed),
            count: None,
        }
    }

    /// Runs `count` seeds (what [`SEEDS_ENV`] does).
    pub const fn count(count: u64) -> Self {
        Self {
            seed: None,
            count: Some(count),
        }
    }

    /// Reads [`SEED_ENV`] and [`SEEDS_ENV`] from the process environment.
    ///
    /// # Panics
    /// If either is set to something that is not a number (or a count of 0),
    /// naming the variable: a typo must not silently run the full sweep.
    pub fn from_env() -> Self {
        let seed = std::env::var(SEED_ENV).ok();
        let count = std::env::var(SEEDS_ENV).ok();
        Self::parse(seed.as_deref(), count.as_deref()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Parses the two variables' values (`None` or empty = unset). Seeds are
    /// decimal or hex with a `0x` prefix; the count must be at least 1.
    pub fn parse(seed: Option<&str>, count: Option<&str>) -> Result<Self, String> {
        let seed = match seed.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(parse_u64(s).ok_or_else(|| {
                format!(
                    "{SEED_ENV}={s:?} is not a seed: expected a decimal number or 0x-prefixed hex"
                )
            })?),
        };
        let count = match count.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => match parse_u64(s) {
                Some(0) | None => {
                    return Err(format!(
                        "{SEEDS_ENV}={s:?} is not a seed count: expected a number of at least 1"
                    ));
                }
                Some(n) => Some(n),
            },
        };
        Ok(Self { seed, count })
    }

    /// The seeds to run for a test whose own range is `range`, and whether
    /// that is a replay of one seed.
    pub fn apply(&self, range: SeedRange) -> (SeedRange, bool) {
        match (self.seed, self.count) {
            (Some(seed), _) => (SeedRange::single(seed), true),
            (None, Some(count)) => (SeedRange::new(range.start(), count), false),
            (None, None) => (range, false),
        }
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// What a lab test body may return: `()`, or `Result<(), E>` where an `Err`
/// fails the seed like a panic does.
#[diagnostic::on_unimplemented(
    message = "a lab test body must return `()` or `Result<(), E>` with `E: Debug`, not `{Self}`",
    label = "the body's output"
)]
pub trait LabTestOutput {
    /// `None` if the run passed, else why it failed.
    fn into_failure(self) -> Option<String>;
}

impl LabTestOutput for () {
    fn into_failure(self) -> Option<String> {
        None
    }
}

impl<E: fmt::Debug> LabTestOutput for Result<(), E> {
    fn into_failure(self) -> Option<String> {
        self.err()
            .map(|e| format!("the test body returned Err({e:?})"))
    }
}

/// The first seed that failed in a sweep (rule S2).
pub struct SeedFailure {
    seed: u64,
    /// The seeds that were being swept.
    range: SeedRange,
    /// Whether the run was a replay of one seed (from [`SEED_ENV`]).
    replay: bool,
    /// Seeds that passed before this one.
    passed: u64,
    message: String,
    payload: Box<dyn Any + Send>,
}

impl SeedFailure {
    /// The seed that failed: `LabConfig::new(seed)` (or the test's own
    /// config for that seed) reproduces it.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The range being swept (a single seed for a replay).
    pub fn range(&self) -> SeedRange {
        self.range
    }

    /// Whether this was a replay of one seed.
    pub fn is_replay(&self) -> bool {
        self.replay
    }

    /// How many seeds passed before this one failed.
    pub fn seeds_passed(&self) -> u64 {
        self.passed
    }

    /// The panic message (or the body's `Err`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The report written to stderr: the test, the seed, the range, the
    /// message, and the one-line command that replays the seed.
    pub fn report(&self, test: &str) -> String {
        let whence = if self.replay {
            format!("replayed from {SEED_ENV}")
        } else {
            format!("of {}, after {} passed", self.range, self.passed)
        };
        format!(
            "asupersync lab: {test} failed with seed {seed} ({whence}): {msg}\n  replay: {cmd}",
            seed = self.seed,
            msg = self.message,
            cmd = replay_command(test, self.seed),
        )
    }

    /// The original panic payload (to resume it).
    pub fn into_panic(self) -> Box<dyn Any + Send> {
        self.payload
    }
}

impl fmt::Debug for SeedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedFailure")
            .field("seed", &self.seed)
            .field("range", &self.range)
            .field("replay", &self.replay)
            .field("passed", &self.passed)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

/// `ASUPERSYNC_LAB_SEED=<seed> cargo test <test>`.
pub fn replay_command(test: &str, seed: u64) -> String {
    format!("{SEED_ENV}={seed} cargo test {test}")
}

/// The name libtest gives a `#[test] fn` named `fn_name` declared in
/// `module_path` (`module_path!()`): the path without the crate's name, which
/// is what `cargo test <filter>` matches.
pub fn libtest_name(module_path: &str, fn_name: &str) -> String {
    match module_path.split_once("::") {
        Some((_crate, rest)) => format!("{rest}::{fn_name}"),
        None => fn_name.to_string(),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic payload that is not a string)".to_string()
    }
}

/// Runs `body` in a fresh [`LabRuntime`] built from `config(seed)`, once
/// per seed of `seeds` after applying `overrides` (rules S1–S3), and stops
/// at the first failure. Returns how many seeds passed, or the failure.
///
/// # Panics
/// If `config(seed)` is not seeded with `seed` (build it with
/// `LabConfig::new(seed)`): the reported seed would not replay the run.
pub fn try_run_seeds<C, F, Fut>(
    seeds: SeedRange,
    overrides: SeedOverrides,
    config: C,
    body: F,
) -> Result<u64, SeedFailure>
where
    C: Fn(u64) -> LabConfig,
    F: Fn(Cx) -> Fut,
    Fut: Future,
    Fut::Output: LabTestOutput,
{
    let (range, replay) = overrides.apply(seeds);
    let mut passed = 0;
    for seed in range.iter() {
        let cfg = config(seed);
        assert_eq!(
            cfg.seed(),
            seed,
            "the lab config for seed {seed} is seeded with {}; build it with LabConfig::new(seed)",
            cfg.seed()
        );
        let run = catch_unwind(AssertUnwindSafe(|| {
            let lab = LabRuntime::new(cfg);
            let output = lab.block_on(&body);
            drop(lab);
            if let Some(why) = output.into_failure() {
                panic!("{why}");
            }
        }));
        match run {
            Ok(()) => passed += 1,
            Err(payload) => {
                return Err(SeedFailure {
                    seed,
                    range,
                    replay,
                    passed,
                    message: panic_message(&*payload),
                    payload,
                });
            }
        }
    }
    Ok(passed)
}

/// [`try_run_seeds`] with explicit `overrides`; on a failure, writes
/// [`SeedFailure::report`] to stderr and resumes the original panic.
/// Returns how many seeds ran (all passed).
pub fn run_seeds_with<C, F, Fut>(
    test: &str,
    seeds: SeedRange,
    overrides: SeedOverrides,
    config: C,
    body: F,
) -> u64
where
    C: Fn(u64) -> LabConfig,
    F: Fn(Cx) -> Fut,
    Fut: Future,
    Fut::Output: LabTestOutput,
{
    if let Some(seed) = overrides.seed {
        eprintln!("asupersync lab: {test}: replaying seed {seed} only ({SEED_ENV} is set)");
    }
    match try_run_seeds(seeds, overrides, config, body) {
        Ok(n) => n,
        Err(failure) => {
            eprintln!("{}", failure.report(test));
            resume_unwind(failure.into_panic())
        }
    }
}

/// Runs a lab test: `body` once per seed of `seeds` (or as [`SEED_ENV`] /
/// [`SEEDS_ENV`] say), each in a fresh lab built from `config(seed)`. On the
/// first failure, prints the seed and the command that replays it to stderr
/// and resumes the panic. `test` is the `cargo test` filter that selects
/// this test (the macro passes [`libtest_name`]). Returns how many seeds ran.
///
/// ```text
/// asupersync lab: my_mod::my_test failed with seed 17 (of 0..64, after 17 passed): boom
///   replay: ASUPERSYNC_LAB_SEED=17 cargo test my_mod::my_test
/// ```
///
/// # Panics
/// Resumes the failing seed's panic; panics if an environment override is
/// malformed.
pub fn run_seeds<C, F, Fut>(test: &str, seeds: SeedRange, config: C, body: F) -> u64
where
    C: Fn(u64) -> LabConfig,
    F: Fn(Cx) -> Fut,
    Fut: Future,
    Fut::Output: LabTestOutput,
{
    run_seeds_with(test, seeds, SeedOverrides::from_env(), config, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_display_like_rust_ranges_and_clamp() {
        assert_eq!(SeedRange::new(0, 100).to_string(), "0..100");
        assert_eq!(SeedRange::from(5..9), SeedRange::new(5, 4));
        assert_eq!(SeedRange::new(u64::MAX - 1, 10).count(), 1);
        assert_eq!(SeedRange::default(), SeedRange::new(0, 64));
        assert!(SeedRange::new(3, 2).contains(4) && !SeedRange::new(3, 2).contains(5));
    }

    #[test]
    fn env_values_parse_or_name_the_variable() {
        assert_eq!(
            SeedOverrides::parse(Some("17"), None),
            Ok(SeedOverrides::replay(17))
        );
        assert_eq!(
            SeedOverrides::parse(Some("0x1f"), Some("5")),
            Ok(SeedOverrides {
                seed: Some(31),
                count: Some(5)
            })
        );
        assert_eq!(
            SeedOverrides::parse(Some(""), Some(" ")),
            Ok(SeedOverrides::none())
        );
        let e = SeedOverrides::parse(Some("seventeen"), None).unwrap_err();
        assert!(e.contains(SEED_ENV), "{e}");
        let e = SeedOverrides::parse(None, Some("0")).unwrap_err();
        assert!(e.contains(SEEDS_ENV), "{e}");
    }

    #[test]
    fn a_replay_wins_over_a_count() {
        let range = SeedRange::new(10, 50);
        assert_eq!(
            SeedOverrides::replay(3).apply(range),
            (SeedRange::single(3), true)
        );
        assert_eq!(
            SeedOverrides {
                seed: Some(3),
                count: Some(9)
            }
            .apply(range),
            (SeedRange::single(3), true)
        );
        assert_eq!(
            SeedOverrides::count(5).apply(range),
            (SeedRange::new(10, 5), false)
        );
        assert_eq!(SeedOverrides::none().apply(range), (range, false));
    }

    #[test]
    fn libtest_names_drop_the_crate() {
        assert_eq!(
            libtest_name("asupersync::lab::seeds::tests", "t"),
            "lab::seeds::tests::t"
        );
        assert_eq!(libtest_name("lab_test_attribute", "t"), "t");
    }
}
