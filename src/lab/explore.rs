//! Schedule exploration: run one program under many schedules, report the
//! runs that fail with what reproduces them, and shrink a failing schedule.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use asupersync::lab::{ExploreConfig, LabConfig, LabRuntime, explore};
//!
//! // Two tasks increment a counter with a yield between the read and the
//! // write: a lost update, under some schedules.
//! let program = |cx: asupersync::Cx| async move {
//!     let counter = Arc::new(Mutex::new(0));
//!     let mut handles = Vec::new();
//!     for _ in 0..2 {
//!         let counter = counter.clone();
//!         handles.push(cx.spawn(move |_cx| async move {
//!             let read = *counter.lock().unwrap();
//!             asupersync::yield_now().await;
//!             *counter.lock().unwrap() = read + 1;
//!         }).unwrap());
//!     }
//!     for h in handles {
//!         h.join(&cx).await.unwrap();
//!     }
//!     assert_eq!(*counter.lock().unwrap(), 2, "lost update");
//! };
//! let report = explore(ExploreConfig::new().schedules(200), program);
//! assert!(!report.is_ok());
//! let seed = report.failures()[0].seed();
//! // The seed alone replays the failure.
//! let replay = std::panic::catch_unwind(|| {
//!     LabRuntime::new(LabConfig::new(seed)).block_on(program)
//! });
//! assert!(replay.is_err());
//! ```
//!
//! Rules:
//! 1. E1 (fresh runs): every run gets its own [`LabRuntime`]; the body is
//!    called once per run; nothing is shared between runs except what the
//!    body's captures share.
//! 2. E2 (seeds): run `i` of a seeded mode (`Random`, `Pct`, `Mixed`) uses
//!    seed `base_seed + i` (wrapping). In `Random` mode with no chaos and the
//!    default step limit its configuration is exactly `LabConfig::new(seed)`,
//!    so the seed alone replays it; in every mode
//!    [`ExploreFailure::config`] is the exact configuration that ran and
//!    [`ExploreFailure::replay_config`] forces the recorded dispatch order.
//! 3. E3 (failure): a run fails when `block_on` panics — a panic in the body,
//!    an unjoined child's panic, a deadlock or a step-limit livelock (the
//!    lab's rule L3) — or when a lab oracle
//!    ([`LabRuntime::oracle_report`]) fails on a run that returned.
//! 4. E4 (deduplication): runs are identified by their canonical (Foata)
//!    fingerprint: [`ExploreReport::distinct_schedules`] counts distinct
//!    canonical fingerprints, and a failure whose canonical fingerprint was
//!    already reported is not reported again. Only effects recorded in the
//!    trace count: two runs that differ only in untraced memory effects have
//!    the same fingerprint unless their traces differ (record what tasks
//!    observe with `Cx::trace` to tell them apart).
//! 5. E5 (determinism): the same configuration and the same program give
//!    the same report (the report holds no wall-clock data).
//! 6. E6 (quiet): while a run executes, panics on the exploring thread are
//!    not printed (a process-wide hook, installed once, forwards every other
//!    panic — other threads, or this one outside a run — to the hook that
//!    was installed before it).
//! 7. E7 (minimization): a failing schedule is shrunk by forcing prefixes of
//!    it and letting FIFO order finish the run, and by replacing context
//!    switches with "keep running the previous task"; a candidate is kept
//!    only if it fails with the same message (digits ignored), is no longer
//!    and has fewer context switches or fewer steps. The result is verified
//!    by replaying it with `LabConfig::replay_schedule`: it must fail again
//!    without diverging.
//! 8. E8 (DPOR): `ExploreMode::Dpor` replaces seeds with a systematic search:
//!    stateless source-DPOR with sleep sets (Abdulla, Aronis, Jonsson,
//!    Sagonas, POPL 2014), each run replaying a forced prefix and finishing
//!    in FIFO order, its races computed on the complete run. A step is one
//!    dispatch. What it guarantees is stated on [`ExploreMode::Dpor`].
//! 9. E9 (honest completeness): the search reconstructs, from the trace, the
//!    runnable set before every step; it checks each reconstruction against
//!    what the lab ran (the task dispatched must be in it; a forced choice
//!    must not diverge). If any check fails it keeps exploring, but
//!    [`ExploreReport::is_exhaustive`] stays false and
//!    [`ExploreReport::unconfirmed_runs`] counts the runs concerned.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Once};
use std::task::{Context, Poll, Wake, Waker};

use super::{ChaosConfig, Divergence, LabConfig, LabRuntime, SchedulePolicy};
use crate::exec::cx::Cx;
use crate::trace::{Resource, TraceEvent, TraceKind};
use crate::types::TaskId;

// ===== configuration =====================================================

/// How [`explore`] chooses the schedules it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExploreMode {
    /// Run `i` uses `LabConfig::new(base_seed + i)`: seeded uniformly random
    /// choice among the runnable tasks at every step.
    Random,
    /// Run `i` uses seed `base_seed + i` with the PCT policy
    /// (`SchedulePolicy::Pct`) at this bug depth: random task priorities and
    /// `depth - 1` priority change points, placed among the number of steps
    /// the longest run so far took. A bug that needs `d - 1` preemptions at
    /// the right places is found with probability at least `1 / (n k^(d-1))`
    /// per run (`n` tasks, `k` steps).
    Pct {
        /// Bug depth to target (1 = no preemption).
        depth: u32,
    },
    /// Cycles run by run through `Random`, `Pct { depth: 2 }` and
    /// `Pct { depth: 3 }` (run `i` uses `i % 3`).
    Mixed,
    /// Systematic search by dynamic partial-order reduction instead of
    /// seeds: source-DPOR with sleep sets (Abdulla et al., POPL 2014), run
    /// statelessly. Every run uses seed `base_seed` and FIFO order after a
    /// forced prefix (`LabConfig::replay_schedule`). A step is one dispatch
    /// (one poll). After each run, for every race — steps `i < j` of
    /// different tasks that are dependent under [`Dependence`], `j` not made
    /// runnable by `i`, and no step between them ordered after `i` and
    /// before `j` — the node before `i` gets a backtrack choice that starts
    /// a reordering putting `j` first, unless it already has one; a choice
    /// whose step commutes with an explored sibling's is put to sleep. The
    /// search goes depth first until no choice is left
    /// ([`ExploreReport::is_exhaustive`]) or the schedule budget runs out.
    ///
    /// Guarantee, when `is_exhaustive()` is true: for a program whose only
    /// nondeterminism is the lab's scheduling (this mode ignores
    /// [`ExploreConfig::chaos`]; no wall clock, no threads outside the lab,
    /// no state carried between runs) and whose steps interfere only as
    /// [`Dependence`] says, at least one schedule of every Mazurkiewicz
    /// trace of dispatches was run, so every reachable panic and deadlock
    /// was reported. With [`Dependence::Opaque`] that is every dispatch
    /// order the lab can produce, each run exactly once. The guarantee is
    /// claimed for programs that do not wait on timers: a time jump is
    /// attributed to the step before it and treated as touching everything,
    /// which is conservative but not proven complete. A run that fails ends
    /// its branch; with `stop_after_failures` reached the search stops (not
    /// exhaustive).
    Dpor {
        /// Which steps are considered to interfere.
        dependence: Dependence,
    },
}

impl ExploreMode {
    /// `Dpor` with [`Dependence::Opaque`]: every dispatch order, no
    /// annotations needed.
    pub const fn dpor() -> Self {
        ExploreMode::Dpor {
            dependence: Dependence::Opaque,
        }
    }
}

/// Which pairs of steps `ExploreMode::Dpor` treats as dependent (their
/// order may matter). Steps of the same task are always ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dependence {
    /// Any two steps of different tasks may interfere (through memory the
    /// lab cannot see). Needs no annotations and holds for every program;
    /// the search then enumerates dispatch orders (bounded model checking),
    /// never running one twice.
    Opaque,
    /// Two steps of different tasks interfere only if (a) their trace events
    /// touch a common task, region or obligation (`TraceKind::footprint`),
    /// (b) either contains a completion, a region close or a time event
    /// (treated as touching everything, because joins and region waits read
    /// them without a trace event), (c) one wakes the root task while the
    /// other is a root step, or (d) they declared conflicting accesses to
    /// the same object with [`declare_access`] (at least one `Write`).
    /// Complete only if every other interaction between tasks — shared
    /// memory, wakers stored in user data, `Cx::random_u64` draws (one
    /// shared stream) — is declared; an undeclared one can make the search
    /// skip the schedule that exposes a bug.
    Declared,
}

/// Settings of [`explore`]. Start from [`ExploreConfig::new`].
#[derive(Clone, Debug)]
pub struct ExploreConfig {
    schedules: usize,
    base_seed: u64,
    mode: ExploreMode,
    chaos: ChaosConfig,
    step_limit: Option<u64>,
    stop_after_failures: usize,
    minimize: bool,
    minimize_budget: usize,
    oracles: bool,
}

impl Default for ExploreConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ExploreConfig {
    /// 1000 schedules, base seed 0, `Random` mode, no chaos, the lab's
    /// default step limit, stop after the first failure, minimize it, check
    /// the lab's oracles.
    pub fn new() -> Self {
        Self {
            schedules: 1000,
            base_seed: 0,
            mode: ExploreMode::Random,
            chaos: ChaosConfig::off(),
            step_limit: None,
            stop_after_failures: 1,
            minimize: true,
            minimize_budget: 200,
            oracles: true,
        }
    }

    /// Most runs to make (minimization runs are not counted).
    pub fn schedules(mut self, n: usize) -> Self {
        self.schedules = n;
        self
    }

    /// Seed of run 0 (run `i` uses `base_seed + i`; `Dpor` uses it for every
    /// run).
    pub fn base_seed(mut self, seed: u64) -> Self {
        self.base_seed = seed;
        self
    }

    /// How schedules are chosen.
    pub fn mode(mut self, mode: ExploreMode) -> Self {
        self.mode = mode;
        self
    }

    /// Seeded fault injection in every run of a seeded mode (ignored by
    /// `Dpor`).
    pub fn chaos(mut self, chaos: ChaosConfig) -> Self {
        self.chaos = chaos;
        self
    }

    /// Most dispatches per run before the run fails as a livelock.
    pub fn step_limit(mut self, steps: u64) -> Self {
        self.step_limit = Some(steps);
        self
    }

    /// Stop once this many distinct failures were found (`usize::MAX`: run
    /// every schedule). Default 1.
    pub fn stop_after_failures(mut self, k: usize) -> Self {
        self.stop_after_failures = k.max(1);
        self
    }

    /// Whether to minimize each reported failure (default `true`).
    pub fn minimize(mut self, on: bool) -> Self {
        self.minimize = on;
        self
    }

    /// Most runs spent minimizing one failure (default 200).
    pub fn minimize_budget(mut self, runs: usize) -> Self {
        self.minimize_budget = runs;
        self
    }

    /// Whether a run that returned but fails a lab oracle counts as a
    /// failure (default `true`).
    pub fn oracles(mut self, on: bool) -> Self {
        self.oracles = on;
        self
    }

    fn apply_common(&self, mut config: LabConfig, chaos: bool) -> LabConfig {
        if chaos && self.chaos.is_enabled() {
            config = config.chaos(self.chaos.clone());
        }
        if let Some(limit) = self.step_limit {
            config = config.step_limit(limit);
        }
        config
    }
}

// ===== declared accesses (for `Dependence::Declared`) ====================

/// The kind of access declared with [`declare_access`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Reads the object (two reads never conflict).
    Read,
    /// Writes the object (conflicts with every access to it).
    Write,
}

/// Declares that the current step reads or writes `object` (identified by
/// its address), for `ExploreMode::Dpor { dependence: Dependence::Declared }`.
/// A no-op outside such an exploration, so annotated code runs anywhere.
///
/// ```
/// use std::sync::Mutex;
/// use asupersync::lab::{Access, declare_access};
///
/// let counter = Mutex::new(0);
/// declare_access(&counter, Access::Write);
/// *counter.lock().unwrap() += 1;
/// ```
pub fn declare_access<T: ?Sized>(object: &T, access: Access) {
    let key = (object as *const T).cast::<()>() as usize;
    let _ = PROBE.try_with(|p| {
        if let Ok(mut slot) = p.try_borrow_mut()
            && let Some(probe) = slot.as_mut()
        {
            let step = probe.lab.steps();
            probe.log.accesses.push((step, key, access));
        }
    });
}

// ===== running one schedule ==============================================

thread_local! {
    /// Non-zero while this thread executes a run (rule E6).
    static QUIET: Cell<u32> = const { Cell::new(0) };
    /// Where the last panic seen during the current run happened.
    static LAST_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The probe of the DPOR run executing on this thread.
    static PROBE: RefCell<Option<Probe>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

fn install_quiet_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let quiet = QUIET.try_with(|q| q.get() > 0).unwrap_or(false);
            if quiet {
                let _ = LAST_LOCATION.try_with(|l| {
                    if let Ok(mut l) = l.try_borrow_mut() {
                        *l = info.location().map(ToString::to_string);
                    }
                });
            } else {
                previous(info);
            }
        }));
    });
}

/// Marks this thread as running a schedule for as long as it lives.
struct QuietGuard;

impl QuietGuard {
    fn enter() -> Self {
        install_quiet_hook();
        QUIET.with(|q| q.set(q.get() + 1));
        LAST_LOCATION.with(|l| *l.borrow_mut() = None);
        QuietGuard
    }
}

impl Drop for QuietGuard {
    fn drop(&mut self) {
        QUIET.with(|q| q.set(q.get().saturating_sub(1)));
    }
}

/// What a DPOR run observes beyond the trace: when the root task was woken
/// and which objects each step declared.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProbeLog {
    /// `lab.steps()` at each wake of the root task (the wake happened during
    /// step `n - 1` or right after it).
    root_wakes: Vec<u64>,
    /// `(lab.steps(), object, access)` per declaration.
    accesses: Vec<(u64, usize, Access)>,
}

struct Probe {
    lab: Rc<LabRuntime>,
    log: ProbeLog,
}

/// Installs a probe for the duration of a run, restoring the previous one.
struct ProbeGuard {
    previous: Option<Probe>,
}

impl ProbeGuard {
    fn install(lab: &Rc<LabRuntime>) -> Self {
        let probe = Probe {
            lab: lab.clone(),
            log: ProbeLog::default(),
        };
        let previous = PROBE.with(|p| p.borrow_mut().replace(probe));
        ProbeGuard { previous }
    }

    fn finish(mut self) -> ProbeLog {
        let probe = PROBE.with(|p| std::mem::replace(&mut *p.borrow_mut(), self.previous.take()));
        probe.map(|p| p.log).unwrap_or_default()
    }
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            PROBE.with(|p| *p.borrow_mut() = Some(previous));
        }
    }
}

fn note_root_wake() {
    let _ = PROBE.try_with(|p| {
        if let Ok(mut slot) = p.try_borrow_mut()
            && let Some(probe) = slot.as_mut()
        {
            let step = probe.lab.steps();
            probe.log.root_wakes.push(step);
        }
    });
}

/// A waker around the root task's that tells the probe when it fires.
struct SpyWake {
    inner: Waker,
}

impl Wake for SpyWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        note_root_wake();
        self.inner.wake_by_ref();
    }
}

/// The root body, polled with a [`SpyWake`] in place of the root's waker.
struct RootSpy<Fut> {
    inner: Pin<Box<Fut>>,
    wakers: Option<(Waker, Waker)>,
}

impl<Fut: Future> Future for RootSpy<Fut> {
    type Output = Fut::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fut::Output> {
        let this = self.get_mut();
        let fresh = match &this.wakers {
            Some((inner, _)) => !inner.will_wake(cx.waker()),
            None => true,
        };
        if fresh {
            let inner = cx.waker().clone();
            let spy = Waker::from(Arc::new(SpyWake {
                inner: inner.clone(),
            }));
            this.wakers = Some((inner, spy));
        }
        let spy = &this.wakers.as_ref().expect("set above").1;
        this.inner.as_mut().poll(&mut Context::from_waker(spy))
    }
}

/// What to keep from a run.
#[derive(Clone, Copy, Default)]
pub(crate) struct Capture {
    /// Keep the full trace.
    pub(crate) trace: bool,
    /// Probe root wakes and declared accesses (DPOR).
    pub(crate) probe: bool,
    /// Check the oracles when the run returned.
    pub(crate) oracles: bool,
}

/// The observable result of one run.
#[derive(Clone, Debug)]
pub(crate) struct RunRecord {
    /// The panic message if the run failed.
    pub(crate) panic: Option<String>,
    /// Where the last panic of the run happened.
    pub(crate) location: Option<String>,
    /// Dispatch order.
    pub(crate) schedule: Vec<TaskId>,
    /// Where a forced schedule could not be followed.
    pub(crate) divergence: Option<Divergence>,
    pub(crate) schedule_fingerprint: u64,
    pub(crate) canonical_fingerprint: u64,
    pub(crate) trace: Option<Vec<TraceEvent>>,
    pub(crate) probe: Option<ProbeLog>,
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(p) = payload.downcast_ref::<crate::types::PanicPayload>() {
        p.message().to_string()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// Runs `body` once under `config`, catching (and silencing) its panic.
pub(crate) fn run_lab<F, Fut>(config: LabConfig, body: F, capture: Capture) -> RunRecord
where
    F: FnOnce(Cx) -> Fut,
    Fut: Future,
{
    let quiet = QuietGuard::enter();
    let lab = Rc::new(LabRuntime::new(config));
    let probe = capture.probe.then(|| ProbeGuard::install(&lab));
    let result = catch_unwind(AssertUnwindSafe(|| {
        if capture.probe {
            let _ = lab.block_on(|cx| RootSpy {
                inner: Box::pin(body(cx)),
                wakers: None,
            });
        } else {
            let _ = lab.block_on(body);
        }
    }));
    let probe = probe.map(ProbeGuard::finish);
    let mut panic = match result {
        Ok(()) => None,
        Err(payload) => {
            let message = panic_message(&*payload);
            // The payload's destructor is user code too.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            Some(message)
        }
    };
    if panic.is_none() && capture.oracles {
        let report = catch_unwind(AssertUnwindSafe(|| lab.oracle_report()));
        match report {
            Ok(report) if !report.passed() => {
                panic = Some(format!("lab oracle failed:\n{report}"));
            }
            Ok(_) => {}
            Err(payload) => {
                panic = Some(format!("lab oracle panicked: {}", panic_message(&*payload)));
            }
        }
    }
    let location = LAST_LOCATION.with(|l| l.borrow_mut().take());
    let record = RunRecord {
        location: if panic.is_some() { location } else { None },
        panic,
        schedule: lab.schedule(),
        divergence: lab.divergence(),
        schedule_fingerprint: lab.trace_fingerprint(),
        canonical_fingerprint: lab.canonical_fingerprint(),
        trace: capture.trace.then(|| lab.trace()),
        probe,
    };
    // Tearing down drops leftover futures: user code, still quiet.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(lab)));
    drop(quiet);
    record
}

// ===== report ============================================================

/// A failing schedule shrunk by minimization (rule E7).
#[derive(Clone, Debug)]
pub struct MinimizedSchedule {
    schedule: Vec<TaskId>,
    config: LabConfig,
    context_switches: usize,
    attempts: usize,
}

impl MinimizedSchedule {
    /// The dispatch order (no longer than the original).
    pub fn schedule(&self) -> &[TaskId] {
        &self.schedule
    }

    /// A configuration that replays it exactly (the failure's seed, FIFO
    /// order, `replay_schedule(schedule)`); verified to fail again.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// How many times the running task changes along the schedule.
    pub fn context_switches(&self) -> usize {
        self.context_switches
    }

    /// Runs spent minimizing.
    pub fn attempts(&self) -> usize {
        self.attempts
    }
}

/// One failing run.
#[derive(Clone, Debug)]
pub struct ExploreFailure {
    run: usize,
    seed: u64,
    config: LabConfig,
    message: String,
    location: Option<String>,
    schedule: Vec<TaskId>,
    schedule_fingerprint: u64,
    canonical_fingerprint: u64,
    minimized: Option<MinimizedSchedule>,
}

impl ExploreFailure {
    /// The seed of the run. In `Random` mode with default settings,
    /// `LabConfig::new(seed)` replays it (rule E2).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The exact configuration the run used.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// [`config`](Self::config) with the recorded dispatch order forced
    /// (`LabConfig::replay_schedule`): replays the run exactly.
    pub fn replay_config(&self) -> LabConfig {
        self.config.clone().replay_schedule(self.schedule.clone())
    }

    /// Index of the run among the explored ones (0-based).
    pub fn run_index(&self) -> usize {
        self.run
    }

    /// The panic message (or the oracle report).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the last panic of the run was raised, if known.
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The task dispatched at each step.
    pub fn schedule(&self) -> &[TaskId] {
        &self.schedule
    }

    /// Schedule fingerprint of the run.
    pub fn schedule_fingerprint(&self) -> u64 {
        self.schedule_fingerprint
    }

    /// Canonical (Foata) fingerprint of the run.
    pub fn canonical_fingerprint(&self) -> u64 {
        self.canonical_fingerprint
    }

    /// The minimized schedule, if minimization ran and succeeded.
    pub fn minimized(&self) -> Option<&MinimizedSchedule> {
        self.minimized.as_ref()
    }
}

impl fmt::Display for ExploreFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "run {} (seed {}) failed: {}",
            self.run, self.seed, self.message
        )?;
        if let Some(location) = &self.location {
            write!(f, "\n  at {location}")?;
        }
        write!(
            f,
            "\n  schedule: {} steps, {} context switches",
            self.schedule.len(),
            context_switches(&self.schedule)
        )?;
        if let Some(m) = &self.minimized {
            write!(
                f,
                "; minimized to {} steps, {} context switches: {:?}",
                m.schedule.len(),
                m.context_switches,
                m.schedule
            )?;
        }
        let plain = format!("{:?}", LabConfig::new(self.seed));
        if format!("{:?}", self.config) == plain {
            write!(
                f,
                "\n  replay: LabRuntime::new(LabConfig::new({})).block_on(..)",
                self.seed
            )
        } else {
            write!(
                f,
                "\n  replay with ExploreFailure::config(): {:?}",
                self.config
            )
        }
    }
}

/// What [`explore`] found.
#[derive(Clone, Debug)]
pub struct ExploreReport {
    mode: ExploreMode,
    schedules_run: usize,
    distinct_schedules: usize,
    distinct_traces: usize,
    failures: Vec<ExploreFailure>,
    exhaustive: bool,
    minimization_runs: usize,
    unconfirmed_runs: usize,
}

impl ExploreReport {
    /// The failing runs, one per distinct canonical fingerprint, in the
    /// order found.
    pub fn failures(&self) -> &[ExploreFailure] {
        &self.failures
    }

    /// Runs made (minimization runs excluded).
    pub fn schedules_run(&self) -> usize {
        self.schedules_run
    }

    /// Distinct canonical (Foata) fingerprints among the runs: runs that
    /// differ only by reordering independent events count once.
    pub fn distinct_schedules(&self) -> usize {
        self.distinct_schedules
    }

    /// Distinct schedule fingerprints (event order and time) among the runs.
    pub fn distinct_traces(&self) -> usize {
        self.distinct_traces
    }

    /// Whether no run failed.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// Whether a `Dpor` search finished with every backtrack point explored
    /// and every run confirmed (see [`ExploreMode::Dpor`] for what that
    /// guarantees). Always `false` for seeded modes.
    pub fn is_exhaustive(&self) -> bool {
        self.exhaustive
    }

    /// The mode that ran.
    pub fn mode(&self) -> ExploreMode {
        self.mode
    }

    /// Runs spent minimizing failures.
    pub fn minimization_runs(&self) -> usize {
        self.minimization_runs
    }

    /// `Dpor` runs whose runnable sets could not be confirmed (0 when the
    /// search's bookkeeping matched the lab on every run).
    pub fn unconfirmed_runs(&self) -> usize {
        self.unconfirmed_runs
    }

    /// Panics with the report if a run failed.
    ///
    /// # Panics
    /// If [`is_ok`](Self::is_ok) is false.
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.is_ok(), "{self}");
    }
}

impl fmt::Display for ExploreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "explored {} schedules ({:?}): {} distinct canonical, {} distinct traces, {} failure{}",
            self.schedules_run,
            self.mode,
            self.distinct_schedules,
            self.distinct_traces,
            self.failures.len(),
            if self.failures.len() == 1 { "" } else { "s" }
        )?;
        if self.exhaustive {
            write!(f, " (search exhausted)")?;
        }
        for failure in &self.failures {
            write!(f, "\n{failure}")?;
        }
        Ok(())
    }
}

fn context_switches(schedule: &[TaskId]) -> usize {
    schedule.windows(2).filter(|w| w[0] != w[1]).count()
}

/// The part of a failure message that identifies the failure: its first
/// line, up to the first `;`, without digits (ids and times vary).
fn failure_signature(message: &str) -> String {
    let line = message.lines().next().unwrap_or("");
    let head = line.split(';').next().unwrap_or("");
    head.chars().filter(|c| !c.is_ascii_digit()).collect()
}

// ===== exploration =======================================================

/// Runs `body` under many schedules (see [`ExploreConfig`] and
/// [`ExploreMode`]) and reports the runs that failed — a panic in the body
/// or an unjoined child, a deadlock, a step-limit livelock, or a failed lab
/// oracle — each with the seed and configuration that reproduce it.
///
/// The body is called once per run; it must build everything the run
/// shares (counters, locks) itself, or capture `Arc`s it resets.
///
/// - Seeds: run `i` of `Random`, `Pct` and `Mixed` uses seed
///   `base_seed + i`; in `Random` mode with default settings
///   `LabConfig::new(failure.seed())` replays a failure, and in every mode
///   [`ExploreFailure::config`] (exact configuration) and
///   [`ExploreFailure::replay_config`] (recorded dispatch order forced) do.
/// - Deduplication: [`ExploreReport::distinct_schedules`] counts canonical
///   (Foata) fingerprints; a failure whose canonical fingerprint was already
///   reported is not reported twice.
/// - Determinism: the same configuration and program give the same report.
/// - Quiet: panics raised on this thread while a run executes are not
///   printed; other threads' panics still reach the previous panic hook.
/// - Minimization (on by default): each failure gets a
///   [`MinimizedSchedule`] no longer than the original, with fewer context
///   switches where possible, verified to fail again on forced replay.
/// - `ExploreMode::Dpor` searches systematically; see its documentation for
///   what [`ExploreReport::is_exhaustive`] guarantees.
///
/// ```
/// use asupersync::lab::{ExploreConfig, explore};
///
/// let report = explore(ExploreConfig::new().schedules(50), |cx| async move {
///     let h = cx.spawn(|_cx| async { 1 + 1 }).unwrap();
///     assert_eq!(h.join(&cx).await.unwrap(), 2);
/// });
/// assert!(report.is_ok(), "{report}");
/// assert_eq!(report.schedules_run(), 50);
/// ```
pub fn explore<F, Fut>(config: ExploreConfig, body: F) -> ExploreReport
where
    F: Fn(Cx) -> Fut,
    Fut: Future,
{
    let mut explorer = Explorer {
        config,
        body: &body,
        runs: 0,
        canonical: HashSet::new(),
        traces: HashSet::new(),
        failures: Vec::new(),
        failure_fingerprints: HashSet::new(),
        max_steps: 0,
        exhaustive: false,
        minimization_runs: 0,
        unconfirmed_runs: 0,
        _fut: PhantomData,
    };
    match explorer.config.mode {
        ExploreMode::Dpor { dependence } => explorer.run_dpor(dependence),
        _ => explorer.run_seeded(),
    }
    if explorer.config.minimize {
        explorer.minimize_failures();
    }
    ExploreReport {
        mode: explorer.config.mode,
        schedules_run: explorer.runs,
        distinct_schedules: explorer.canonical.len(),
        distinct_traces: explorer.traces.len(),
        failures: explorer.failures,
        exhaustive: explorer.exhaustive,
        minimization_runs: explorer.minimization_runs,
        unconfirmed_runs: explorer.unconfirmed_runs,
    }
}

struct Explorer<'a, F, Fut> {
    config: ExploreConfig,
    body: &'a F,
    runs: usize,
    canonical: HashSet<u64>,
    traces: HashSet<u64>,
    failures: Vec<ExploreFailure>,
    failure_fingerprints: HashSet<u64>,
    max_steps: usize,
    exhaustive: bool,
    minimization_runs: usize,
    unconfirmed_runs: usize,
    _fut: PhantomData<fn() -> Fut>,
}

impl<F, Fut> Explorer<'_, F, Fut>
where
    F: Fn(Cx) -> Fut,
    Fut: Future,
{
    fn run(&self, config: LabConfig, capture: Capture) -> RunRecord {
        let body = self.body;
        run_lab(
            config,
            body,
            Capture {
                oracles: self.config.oracles,
                ..capture
            },
        )
    }

    /// Counts a run; returns whether it added a failure.
    fn observe(&mut self, config: &LabConfig, record: &RunRecord) -> bool {
        let run = self.runs;
        self.runs += 1;
        self.canonical.insert(record.canonical_fingerprint);
        self.traces.insert(record.schedule_fingerprint);
        self.max_steps = self.max_steps.max(record.schedule.len());
        let Some(message) = &record.panic else {
            return false;
        };
        if !self
            .failure_fingerprints
            .insert(record.canonical_fingerprint)
        {
            return false;
        }
        self.failures.push(ExploreFailure {
            run,
            seed: config.seed(),
            config: config.clone(),
            message: message.clone(),
            location: record.location.clone(),
            schedule: record.schedule.clone(),
            schedule_fingerprint: record.schedule_fingerprint,
            canonical_fingerprint: record.canonical_fingerprint,
            minimized: None,
        });
        true
    }

    fn done_failing(&self) -> bool {
        self.failures.len() >= self.config.stop_after_failures
    }

    /// The configuration of run `i` of a seeded mode (rule E2).
    fn seeded_config(&self, i: usize) -> LabConfig {
        let seed = self.config.base_seed.wrapping_add(i as u64);
        let depth = match self.config.mode {
            ExploreMode::Pct { depth } => Some(depth.max(1)),
            ExploreMode::Mixed => match i % 3 {
                0 => None,
                1 => Some(2),
                _ => Some(3),
            },
            _ => None,
        };
        let mut config = LabConfig::new(seed);
        if let Some(depth) = depth {
            let expected_steps = if self.max_steps == 0 {
                64
            } else {
                self.max_steps as u64
            };
            config = config.policy(SchedulePolicy::Pct {
                depth,
                expected_steps,
            });
        }
        self.config.apply_common(config, true)
    }

    fn run_seeded(&mut self) {
        for i in 0..self.config.schedules {
            let config = self.seeded_config(i);
            let record = self.run(config.clone(), Capture::default());
            if self.observe(&config, &record) && self.done_failing() {
                return;
            }
        }
    }

    // ----- DPOR ----------------------------------------------------------

    fn dpor_config(&self, prefix: &[TaskId]) -> LabConfig {
        let mut config = LabConfig::new(self.config.base_seed).policy(SchedulePolicy::Fifo);
        if !prefix.is_empty() {
            config = config.replay_schedule(prefix.to_vec());
        }
        self.config.apply_common(config, false)
    }

    /// Source-DPOR with sleep sets (Abdulla et al., POPL 2014), stateless:
    /// each run replays a forced prefix, then FIFO order finishes it.
    fn run_dpor(&mut self, dependence: Dependence) {
        let mut stack: Vec<Node> = Vec::new();
        let mut prefix: Vec<TaskId> = Vec::new();
        let mut confirmed = true;
        loop {
            if self.runs >= self.config.schedules {
                return;
            }
            let config = self.dpor_config(&prefix);
            let record = self.run(
                config.clone(),
                Capture {
                    trace: true,
                    probe: true,
                    ..Capture::default()
                },
            );
            let new_failure = self.observe(&config, &record);
            if let Some(div) = &record.divergence {
                // The forced choice was not runnable: our runnable set for
                // that node was wrong. Correct it; the run is not used.
                confirmed = false;
                self.unconfirmed_runs += 1;
                if let Some(node) = stack.get_mut(div.step as usize) {
                    node.enabled = div.runnable.iter().copied().collect();
                }
            } else {
                let probe = record.probe.clone().unwrap_or_default();
                let trace = record.trace.as_deref().unwrap_or(&[]);
                let exec = Execution::analyze(&record.schedule, trace, &probe, dependence);
                if !exec.consistent {
                    confirmed = false;
                    self.unconfirmed_runs += 1;
                }
                extend_search(&mut stack, &prefix, &exec);
            }
            if new_failure && self.done_failing() {
                return;
            }
            // Deepest node with an unexplored, runnable, awake choice.
            let next = (0..stack.len()).rev().find_map(|d| {
                let node = &stack[d];
                node.backtrack
                    .iter()
                    .find(|t| {
                        node.enabled.contains(t)
                            && !node.done.contains(t)
                            && !node.sleep.contains(t)
                    })
                    .map(|&t| (d, t))
            });
            let Some((d, task)) = next else {
                self.exhaustive = confirmed;
                return;
            };
            stack.truncate(d + 1);
            stack[d].done.insert(task);
            stack[d].taken = Some(task);
            prefix = stack.iter().filter_map(|n| n.taken).collect();
            debug_assert_eq!(prefix.len(), d + 1);
        }
    }

    // ----- minimization (rule E7) -----------------------------------------

    fn minimize_failures(&mut self) {
        for i in 0..self.failures.len() {
            let (minimized, attempts) = self.minimize_one(&self.failures[i]);
            self.minimization_runs += attempts;
            self.failures[i].minimized = minimized;
        }
    }

    /// Runs `prefix` forced, then FIFO. Returns the run's schedule if it
    /// failed with `signature`.
    fn try_candidate(
        &self,
        base: &LabConfig,
        prefix: &[TaskId],
        signature: &str,
        attempts: &mut usize,
    ) -> Option<Vec<TaskId>> {
        *attempts += 1;
        let config = base
            .clone()
            .policy(SchedulePolicy::Fifo)
            .replay_schedule(prefix.to_vec());
        let record = self.run(config, Capture::default());
        match &record.panic {
            Some(message) if failure_signature(message) == signature => Some(record.schedule),
            _ => None,
        }
    }

    fn minimize_one(&self, failure: &ExploreFailure) -> (Option<MinimizedSchedule>, usize) {
        let budget = self.config.minimize_budget;
        let signature = failure_signature(&failure.message);
        let base = &failure.config;
        let mut attempts = 0;
        // The original schedule, fully forced, must fail under FIFO
        // continuation (it never needs the continuation).
        let Some(mut current) =
            self.try_candidate(base, &failure.schedule, &signature, &mut attempts)
        else {
            return (None, attempts);
        };
        let better = |cand: &[TaskId], cur: &[TaskId]| {
            cand.len() <= cur.len()
                && (context_switches(cand) < context_switches(cur) || cand.len() < cur.len())
        };
        // Phase 1: shortest forced prefix (bisection; every accepted
        // candidate was run and failed).
        let (mut lo, mut hi) = (0usize, current.len());
        while lo < hi && attempts < budget {
            let mid = (lo + hi) / 2;
            let prefix = current[..mid].to_vec();
            match self.try_candidate(base, &prefix, &signature, &mut attempts) {
                Some(candidate) => {
                    hi = mid;
                    if better(&candidate, &current) {
                        current = candidate;
                        hi = hi.min(current.len());
                    }
                }
                None => lo = mid + 1,
            }
        }
        // Phase 2: replace context switches by "keep running the previous
        // task", until no switch can be removed.
        let mut improved = true;
        while improved && attempts < budget {
            improved = false;
            for i in 1..current.len() {
                if attempts >= budget {
                    break;
                }
                if current[i] == current[i - 1] {
                    continue;
                }
                let mut prefix = current[..i].to_vec();
                prefix.push(current[i - 1]);
                if let Some(candidate) =
                    self.try_candidate(base, &prefix, &signature, &mut attempts)
                    && better(&candidate, &current)
                {
                    current = candidate;
                    improved = true;
                    break;
                }
            }
        }
        // Verify: the result replays exactly and fails again.
        attempts += 1;
        let config = base
            .clone()
            .policy(SchedulePolicy::Fifo)
            .replay_schedule(current.clone());
        let record = self.run(config.clone(), Capture::default());
        let verified = record.divergence.is_none()
            && record.schedule == current
            && record
                .panic
                .as_deref()
                .is_some_and(|m| failure_signature(m) == signature);
        let minimized = verified.then(|| MinimizedSchedule {
            context_switches: context_switches(&current),
            schedule: current,
            config,
            attempts,
        });
        (minimized, attempts)
    }
}

// ===== DPOR bookkeeping ==================================================

/// A node of the DPOR search: the state after a prefix.
#[derive(Debug)]
struct Node {
    /// Tasks runnable here (the root included).
    enabled: BTreeSet<TaskId>,
    /// Choices to explore from here.
    backtrack: BTreeSet<TaskId>,
    /// Choices explored (or being explored) from here.
    done: BTreeSet<TaskId>,
    /// Tasks whose step here is covered by an explored sibling branch.
    sleep: BTreeSet<TaskId>,
    /// The choice on the current path (`None`: none explored yet).
    taken: Option<TaskId>,
}

/// Adds the nodes of a run that followed `prefix` to the search stack,
/// with their sleep sets, and the backtrack points of its races.
fn extend_search(stack: &mut Vec<Node>, prefix: &[TaskId], exec: &Execution) {
    let n = exec.steps.len();
    // The node the run branched at (its choice is new), or the root.
    let branch = prefix.len().saturating_sub(1);
    let (mut sleep, mut explored) = match stack.get(branch) {
        Some(node) if !prefix.is_empty() => {
            let mut explored = node.done.clone();
            if let Some(t) = node.taken {
                explored.remove(&t);
            }
            (node.sleep.clone(), explored)
        }
        _ => (BTreeSet::new(), BTreeSet::new()),
    };
    let mut end = n;
    for d in branch..n {
        let task = exec.steps[d].task;
        if d >= prefix.len() {
            if sleep.contains(&task) {
                // Sleep-set blocked: the run is equivalent to an explored
                // one from here. Start this node over with an awake choice.
                let awake = exec.enabled[d].iter().find(|t| !sleep.contains(t));
                stack.push(Node {
                    enabled: exec.enabled[d].clone(),
                    backtrack: awake.into_iter().copied().collect(),
                    done: BTreeSet::new(),
                    sleep: sleep.clone(),
                    taken: None,
                });
                end = d;
                break;
            }
            stack.push(Node {
                enabled: exec.enabled[d].clone(),
                backtrack: BTreeSet::from([task]),
                done: BTreeSet::from([task]),
                sleep: sleep.clone(),
                taken: Some(task),
            });
        }
        // Sleep set after step d: sleeping (or already explored) tasks whose
        // next step commutes with step d stay asleep.
        let candidates: Vec<TaskId> = sleep.union(&explored).copied().collect();
        sleep = candidates
            .into_iter()
            .filter(|&q| {
                q != task
                    && exec
                        .next_step_of(q, d + 1)
                        .is_some_and(|e| !exec.dependent(e, d))
            })
            .collect();
        explored.clear();
    }
    for (i, initials) in exec.races(branch, end) {
        let Some(node) = stack.get_mut(i) else {
            continue;
        };
        if initials.iter().any(|t| node.backtrack.contains(t)) {
            continue;
        }
        match initials.iter().find(|t| node.enabled.contains(t)) {
            Some(&t) => {
                node.backtrack.insert(t);
            }
            // Our runnable set disagrees: be conservative.
            None => node.backtrack.extend(node.enabled.iter().copied()),
        }
    }
}

/// One dispatch of an execution, as DPOR sees it.
#[derive(Debug)]
struct StepInfo {
    task: TaskId,
    /// Resources its trace events touch (sorted, deduplicated).
    resources: Vec<Resource>,
    /// Touches everything (time, completion, region close).
    global: bool,
    /// Declared accesses.
    accesses: Vec<(usize, Access)>,
    /// The step whose wake made this dispatch possible.
    enabler: Option<usize>,
}

/// A complete execution, split into steps, with the runnable set before
/// each step.
#[derive(Debug)]
struct Execution {
    steps: Vec<StepInfo>,
    enabled: Vec<BTreeSet<TaskId>>,
    /// Whether the reconstruction agreed with what the lab ran.
    consistent: bool,
    dependence: Dependence,
    /// Dense index of each step's task.
    tix: Vec<usize>,
    /// 1-based position of each step among its task's steps.
    local: Vec<u32>,
    /// Vector clock of each step (happens-before: program order, enabling
    /// and dependence).
    clocks: Vec<Vec<u32>>,
}

fn marker_task(kind: &TraceKind) -> Option<TaskId> {
    match kind {
        TraceKind::Poll { task } | TraceKind::ForceDrop { task, .. } => Some(*task),
        _ => None,
    }
}

impl Execution {
    /// Splits `trace` into the steps of `schedule` and reconstructs the
    /// runnable set before each step.
    ///
    /// A step of a spawned task starts with its `Poll` (or `ForceDrop`)
    /// event; a root step after the root body completed emits nothing.
    /// Events between two step starts belong to the earlier step (including
    /// timer and time events the lab emits while idle). Spawned tasks are
    /// runnable between their `Wake` event and their dispatch; the root from
    /// the start, after its waker fires (probe), after its body completes
    /// and after its region closes, until its next dispatch.
    fn analyze(
        schedule: &[TaskId],
        trace: &[TraceEvent],
        probe: &ProbeLog,
        dependence: Dependence,
    ) -> Self {
        let n = schedule.len();
        let mut consistent = true;
        let Some(&root) = schedule.first() else {
            return Execution {
                steps: Vec::new(),
                enabled: Vec::new(),
                consistent,
                dependence,
                tix: Vec::new(),
                local: Vec::new(),
                clocks: Vec::new(),
            };
        };
        let root_region = trace.iter().find_map(|e| match &e.kind {
            TraceKind::Spawn { task, region } if *task == root => Some(*region),
            _ => None,
        });
        let root_complete = trace
            .iter()
            .position(|e| matches!(&e.kind, TraceKind::Complete { task, .. } if *task == root));

        // 1. Step starts.
        let mut starts: Vec<Option<usize>> = vec![None; n];
        let mut cursor = 0usize;
        for (k, &task) in schedule.iter().enumerate() {
            let next = (cursor..trace.len()).find(|&e| marker_task(&trace[e].kind).is_some());
            let root_done =
                task == root && root_complete.is_some_and(|c| c < next.unwrap_or(trace.len()));
            match next {
                Some(e) if !root_done && marker_task(&trace[e].kind) == Some(task) => {
                    starts[k] = Some(e);
                    cursor = e + 1;
                }
                _ => {
                    if task != root || !root_done {
                        // A dispatch that emitted nothing we recognise.
                        consistent = false;
                    }
                }
            }
        }
        // Ranges: a step with a start runs to the next start.
        let mut ranges = vec![(0usize, 0usize); n];
        let mut next_start = trace.len();
        for k in (0..n).rev() {
            if let Some(s) = starts[k] {
                ranges[k] = (s, next_start);
                next_start = s;
            } else {
                ranges[k] = (next_start, next_start);
            }
        }
        // Markerless steps sit where the previous step ends.
        let mut steps: Vec<StepInfo> = schedule
            .iter()
            .map(|&task| StepInfo {
                task,
                resources: Vec::new(),
                global: false,
                accesses: Vec::new(),
                enabler: None,
            })
            .collect();

        // 2. Probe data: root wakes and declared accesses, by step.
        let step_of = |count: u64| (count.saturating_sub(1) as usize).min(n - 1);
        for &(count, object, access) in &probe.accesses {
            steps[step_of(count)].accesses.push((object, access));
        }
        let mut root_wakes: Vec<u64> = probe.root_wakes.clone();
        root_wakes.sort_unstable();
        for &count in &root_wakes {
            steps[step_of(count)].resources.push(Resource::Task(root));
        }

        // 3. Replay the ready set.
        let mut pending: BTreeMap<TaskId, u32> = BTreeMap::new();
        let mut woken_by: BTreeMap<TaskId, usize> = BTreeMap::new();
        let mut root_ready = true;
        let mut root_enabler: Option<usize> = None;
        let mut wake_cursor = 0usize;
        let mut enabled = Vec::with_capacity(n);
        for k in 0..n {
            while wake_cursor < root_wakes.len() && root_wakes[wake_cursor] <= k as u64 {
                root_ready = true;
                root_enabler = Some(step_of(root_wakes[wake_cursor]));
                wake_cursor += 1;
            }
            let mut ready: BTreeSet<TaskId> = pending
                .iter()
                .filter(|(_, c)| **c > 0)
                .map(|(t, _)| *t)
                .collect();
            if root_ready {
                ready.insert(root);
            }
            let task = schedule[k];
            if !ready.contains(&task) {
                consistent = false;
                ready.insert(task);
            }
            enabled.push(ready);
            if task == root {
                steps[k].enabler = root_enabler;
                root_ready = false;
            } else {
                steps[k].enabler = woken_by.get(&task).copied();
                if let Some(c) = pending.get_mut(&task) {
                    *c = c.saturating_sub(1);
                }
            }
            let (from, to) = ranges[k];
            for event in &trace[from..to] {
                let kind = &event.kind;
                match kind {
                    TraceKind::Wake { task } if *task != root => {
                        *pending.entry(*task).or_insert(0) += 1;
                        woken_by.insert(*task, k);
                    }
                    TraceKind::Complete { task, .. } if *task == root => {
                        root_ready = true;
                        root_enabler = Some(k);
                    }
                    TraceKind::RegionClose { region } if Some(*region) == root_region => {
                        root_ready = true;
                        root_enabler = Some(k);
                    }
                    TraceKind::CancelRequest { task, .. } if *task == root => {
                        root_ready = true;
                        root_enabler = Some(k);
                    }
                    _ => {}
                }
                if matches!(
                    kind,
                    TraceKind::Complete { .. } | TraceKind::RegionClose { .. }
                ) {
                    steps[k].global = true;
                }
                match kind.footprint() {
                    Some(resources) => steps[k].resources.extend(resources),
                    None => steps[k].global = true,
                }
            }
        }
        for step in &mut steps {
            step.resources.sort_unstable();
            step.resources.dedup();
        }
        let mut exec = Execution {
            steps,
            enabled,
            consistent,
            dependence,
            tix: Vec::new(),
            local: Vec::new(),
            clocks: Vec::new(),
        };
        exec.compute_clocks();
        exec
    }

    fn compute_clocks(&mut self) {
        let n = self.steps.len();
        let mut index: BTreeMap<TaskId, usize> = BTreeMap::new();
        for s in &self.steps {
            let next = index.len();
            index.entry(s.task).or_insert(next);
        }
        let tasks = index.len();
        self.tix = self.steps.iter().map(|s| index[&s.task]).collect();
        self.local = vec![0; n];
        let mut counts = vec![0u32; tasks];
        let mut last: Vec<Option<usize>> = vec![None; tasks];
        self.clocks = Vec::with_capacity(n);
        for j in 0..n {
            let p = self.tix[j];
            counts[p] += 1;
            self.local[j] = counts[p];
            let mut clock = last[p].map_or_else(|| vec![0; tasks], |q| self.clocks[q].clone());
            for k in 0..j {
                if self.tix[k] != p && (self.steps[j].enabler == Some(k) || self.dependent(k, j)) {
                    for (c, v) in clock.iter_mut().zip(&self.clocks[k]) {
                        *c = (*c).max(*v);
                    }
                }
            }
            clock[p] = self.local[j];
            self.clocks.push(clock);
            last[p] = Some(j);
        }
    }

    fn dependent(&self, i: usize, j: usize) -> bool {
        let (a, b) = (&self.steps[i], &self.steps[j]);
        if a.task == b.task {
            return true;
        }
        match self.dependence {
            Dependence::Opaque => true,
            Dependence::Declared => {
                a.global
                    || b.global
                    || sorted_intersect(&a.resources, &b.resources)
                    || a.accesses.iter().any(|(oa, ka)| {
                        b.accesses.iter().any(|(ob, kb)| {
                            oa == ob && (*ka == Access::Write || *kb == Access::Write)
                        })
                    })
            }
        }
    }

    /// The first step at or after `from` of `task`.
    fn next_step_of(&self, task: TaskId, from: usize) -> Option<usize> {
        (from..self.steps.len()).find(|&e| self.steps[e].task == task)
    }

    /// Whether step `i` happens before step `k` (`i < k`).
    fn happens_before(&self, i: usize, k: usize) -> bool {
        self.clocks[k][self.tix[i]] >= self.local[i]
    }

    /// The races whose later step is in `from..to`, each with the initials
    /// of `notdep(i).j` (source-DPOR): `i` and `j` are steps of different
    /// tasks, dependent, `i` did not make `j` runnable, and no step between
    /// them is ordered after `i` and before `j`. The initials are the tasks
    /// that can start a reordering putting `j` before `i`.
    fn races(&self, from: usize, to: usize) -> Vec<(usize, Vec<TaskId>)> {
        let mut out = Vec::new();
        for j in from..to.min(self.steps.len()) {
            // Direct predecessors of j: its task's previous step, its
            // enabler, and every earlier dependent step.
            let preds: Vec<usize> = (0..j)
                .filter(|&k| {
                    self.tix[k] == self.tix[j]
                        || self.steps[j].enabler == Some(k)
                        || self.dependent(k, j)
                })
                .collect();
            for (x, &i) in preds.iter().enumerate() {
                // `preds` is sorted: the later predecessors follow `i`.
                if self.tix[i] == self.tix[j]
                    || self.steps[j].enabler == Some(i)
                    || !self.dependent(i, j)
                    || preds[x + 1..].iter().any(|&k| self.happens_before(i, k))
                {
                    continue;
                }
                // v = notdep(i).j; its initials: steps of v with no
                // predecessor in v.
                let v: Vec<usize> = (i + 1..j)
                    .filter(|&k| !self.happens_before(i, k))
                    .chain(std::iter::once(j))
                    .collect();
                let mut initials: Vec<TaskId> = Vec::new();
                for (x, &k) in v.iter().enumerate() {
                    let task = self.steps[k].task;
                    if initials.contains(&task) {
                        continue;
                    }
                    if !v[..x].iter().any(|&m| self.happens_before(m, k)) {
                        initials.push(task);
                    }
                }
                out.push((i, initials));
            }
        }
        out
    }
}

fn sorted_intersect(a: &[Resource], b: &[Resource]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}
