//! The deterministic lab: the *same* kernel and user code, driven by a
//! seeded single-threaded scheduler over virtual time.
//!
//! ```
//! use std::time::Duration;
//! use asupersync::lab::{LabConfig, LabRuntime};
//!
//! let lab = LabRuntime::new(LabConfig::new(7));
//! let slept = lab.block_on(|cx| async move {
//!     asupersync::time::sleep(&cx, Duration::from_secs(3600)).await.unwrap();
//!     cx.now()
//! });
//! assert_eq!(slept, asupersync::Time::from_secs(3600)); // an hour, instantly
//! ```
//!
//! Rules:
//! - L1 (determinism): every choice — which task runs next, worker
//!   assignment, chaos, `Cx::random_u64` — comes from streams derived from
//!   the one seed; time moves only when the lab moves it. Same seed and same
//!   program ⇒ same trace and same fingerprints.
//! - L2 (virtual time): when nothing is runnable, time jumps to the next
//!   timer deadline exactly; it never moves while a task is runnable (except
//!   for chaos delays, which are recorded).
//! - L3 (no silent hang): a run in which nothing is runnable, no timer is
//!   pending and the root region is not closed is a deadlock and panics with
//!   the live tasks listed; a run past its step limit panics as a livelock.
//! - L4 (same code): the lab runs the production kernel, task cells, wakers
//!   and `Cx`; only the queue discipline and the clock differ.

mod clock;
mod config;
mod explore;
mod inject;
pub mod oracle;
mod queue;
mod replay;
mod seeds;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use crate::types::rng::DetRng;
pub use config::{ChaosConfig, LabConfig, SchedulePolicy};
pub use explore::{
    Access, Dependence, ExploreConfig, ExploreFailure, ExploreMode, ExploreReport,
    MinimizedSchedule, declare_access, explore,
};
pub use inject::{
    AwaitPoint, InjectionConfig, InjectionFailure, InjectionReport, cancel_injection,
};
pub use oracle::{OracleReport, OracleResult};
pub use replay::{
    Recording, ReplayMismatch, TraceDivergence, check_replay, first_divergence, replay,
};
pub use seeds::{
    LabTestOutput, SEED_ENV, SEEDS_ENV, SeedFailure, SeedOverrides, SeedRange, libtest_name,
    replay_command, run_seeds, run_seeds_with, try_run_seeds,
};

use self::clock::VirtualClock;
use self::queue::{LabQueue, ReadyTask};
use crate::exec::core::{Core, CoreOptions};
use crate::exec::cx::Cx;
use crate::exec::root::RootTask;
use crate::exec::runnable::Clock;
use crate::kernel::{KernelStats, TaskState};
use crate::trace::{TraceEvent, TraceKind, canonical_fingerprint, schedule_fingerprint};
use crate::types::{CancelReason, RegionId, TaskId, Time};

/// Stream labels for `DetRng::derive` (one per consumer of randomness).
const STREAM_SCHEDULE: u64 = 1;
const STREAM_CHAOS: u64 = 2;
const STREAM_WORKERS: u64 = 3;

/// The first step at which a replayed schedule could not be followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The step (dispatch index).
    pub step: u64,
    /// The task the recorded schedule ran at this step.
    pub expected: TaskId,
    /// The tasks that were runnable instead.
    pub runnable: Vec<TaskId>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "schedule diverged at step {}: expected {} to run, runnable were {:?}",
            self.step, self.expected, self.runnable
        )
    }
}

/// What can be dispatched next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    Root,
    Task(usize),
}

/// Mutable driver state (the runtime itself is used through `&self`).
struct DriverState {
    schedule_rng: DetRng,
    chaos_rng: DetRng,
    worker_rng: DetRng,
    steps: u64,
    decisions: Vec<TaskId>,
    divergence: Option<Divergence>,
    pct_priorities: BTreeMap<TaskId, u64>,
    pct_change_points: Vec<u64>,
    pct_next_low: u64,
    /// `LabConfig::cancel_at` has fired.
    cancel_at_done: bool,
    /// Scratch buffer for `pick`.
    candidates: Vec<(TaskId, usize, Pick)>,
}

/// A deterministic, single-threaded runtime over virtual time.
pub struct LabRuntime {
    core: Arc<Core>,
    clock: Arc<VirtualClock>,
    queue: Arc<LabQueue>,
    config: LabConfig,
    state: RefCell<DriverState>,
}

impl LabRuntime {
    /// A lab runtime configured by `config`.
    pub fn new(config: LabConfig) -> Self {
        let clock = Arc::new(VirtualClock::default());
        let queue = Arc::new(LabQueue::default());
        let kernel_config = config.kernel;
        let core = Core::new(
            kernel_config,
            clock.clone(),
            queue.clone(),
            CoreOptions {
                tracing: true,
                seed: config.seed,
                blocking: None, // blocking closures run inline (deterministic)
                retire: drop,   // RT1: freed where they complete
            },
        );
        queue.attach(&core);
        let mut schedule_rng = DetRng::derive(config.seed, STREAM_SCHEDULE);
        let pct_change_points = match config.policy {
            SchedulePolicy::Pct {
                depth,
                expected_steps,
            } => (1..depth.max(1))
                .map(|_| schedule_rng.below(expected_steps.max(1) as usize) as u64)
                .collect(),
            _ => Vec::new(),
        };
        let state = DriverState {
            schedule_rng,
            chaos_rng: DetRng::derive(config.seed, STREAM_CHAOS),
            worker_rng: DetRng::derive(config.seed, STREAM_WORKERS),
            steps: 0,
            decisions: Vec::new(),
            divergence: None,
            pct_priorities: BTreeMap::new(),
            pct_change_points,
            pct_next_low: 0,
            candidates: Vec::new(),
            cancel_at_done: false,
        };
        Self {
            core,
            clock,
            queue,
            config,
            state: RefCell::new(state),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// Current virtual time.
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    /// Runs `f(cx)` as the root task of a fresh root region until that
    /// region is quiescent, exactly like `Runtime::block_on`, under the
    /// seeded scheduler and virtual time.
    ///
    /// # Panics
    /// Resumes the body's panic (or an unjoined child panic); panics on a
    /// deadlock or when the step limit is exceeded (rule L3). Panics at once
    /// when called from inside a task of any runtime, this lab included
    /// (rule BO1, see `Runtime::block_on`).
    #[track_caller]
    pub fn block_on<F, Fut>(&self, f: F) -> Fut::Output
    where
        F: FnOnce(Cx) -> Fut,
        Fut: Future,
    {
        crate::exec::context::assert_not_in_task("LabRuntime::block_on");
        let mut root = RootTask::new(&self.core, crate::types::Budget::INFINITE, Vec::new(), f);
        while !root.is_done() {
            let root_ready = root.is_woken();
            match self.pick(root_ready, root.task) {
                Some(Pick::Root) => {
                    self.record(root.task);
                    root.step();
                }
                Some(Pick::Task(i)) => self.dispatch(i),
                None => {
                    if !self.advance_idle() {
                        self.deadlock(Some(root.region));
                    }
                }
            }
        }
        root.into_output()
    }

    /// Spawns `f(cx)` in a fresh root region without running it; drive it
    /// with [`run_until_idle`](Self::run_until_idle) or
    /// [`run_until_quiescent`](Self::run_until_quiescent).
    pub fn spawn<F, Fut>(&self, f: F) -> crate::exec::TaskHandle<Fut::Output>
    where
        F: FnOnce(Cx) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let region = self
            .core
            .with_kernel_recent(|k, _| k.create_root_region(crate::types::Budget::INFINITE));
        let handle = self
            .core
            .spawn(
                region,
                None,
                crate::types::Budget::INFINITE,
                crate::exec::cx::Capabilities::ALL,
                f,
            )
            .expect("a fresh root region accepts tasks");
        self.core.with_kernel(|k, now| {
            k.region_body_done(region, crate::kernel::BodyEnd::Ok, now);
            k.abandon_region(region, now);
        });
        handle
    }

    /// Runs runnable tasks until none is left, without moving time.
    /// Returns the number of dispatches.
    pub fn run_until_idle(&self) -> u64 {
        let start = self.steps();
        while let Some(pick) = self.pick(false, TaskId::from_parts(u32::MAX, u32::MAX)) {
            if let Pick::Task(i) = pick {
                self.dispatch(i);
            }
        }
        self.steps() - start
    }

    /// Runs tasks and moves time until no task is live. Returns the number of
    /// dispatches.
    ///
    /// # Panics
    /// On a deadlock (live tasks, nothing runnable, no timer).
    pub fn run_until_quiescent(&self) -> u64 {
        let start = self.steps();
        loop {
            self.run_until_idle();
            if self.core.lock().live_task_count() == 0 {
                return self.steps() - start;
            }
            if !self.advance_idle() {
                self.deadlock(None);
            }
        }
    }

    /// Moves virtual time forward by `d` and fires the timers that are due
    /// (their tasks become runnable; nothing runs).
    pub fn advance_time(&self, d: Duration) {
        let to = self.now() + d;
        self.advance_to(to);
    }

    /// Dispatches taken so far.
    pub fn steps(&self) -> u64 {
        self.state.borrow().steps
    }

    /// The task run at each step so far (feed it to
    /// [`LabConfig::replay_schedule`] to replay this run exactly).
    pub fn schedule(&self) -> Vec<TaskId> {
        self.state.borrow().decisions.clone()
    }

    /// Where a replayed schedule could not be followed, if it could not.
    pub fn divergence(&self) -> Option<Divergence> {
        self.state.borrow().divergence.clone()
    }

    /// Every event recorded so far.
    pub fn trace(&self) -> Vec<TraceEvent> {
        self.core.lock().trace_events().to_vec()
    }

    /// Identifies the schedule that ran: same seed and same program ⇒ same
    /// fingerprint.
    pub fn trace_fingerprint(&self) -> u64 {
        schedule_fingerprint(self.core.lock().trace_events())
    }

    /// Identifies the run up to reordering of independent events (Foata
    /// normal form; see [`crate::trace`]).
    pub fn canonical_fingerprint(&self) -> u64 {
        canonical_fingerprint(self.core.lock().trace_events())
    }

    /// Kernel counters (tasks, regions, obligations, leaks, forced drops).
    pub fn stats(&self) -> KernelStats {
        self.core.lock().stats().clone()
    }

    /// Tasks not yet completed: id, region, state, obligations held.
    pub fn live_tasks(&self) -> Vec<(TaskId, RegionId, TaskState, usize)> {
        self.core.lock().live_tasks()
    }

    /// Regions not yet closed: id, parent, state.
    pub fn live_regions(&self) -> Vec<(RegionId, Option<RegionId>, crate::kernel::RegionState)> {
        self.core.lock().live_regions()
    }

    /// Checks the oracles (see [`oracle`]) against this run's trace and the
    /// kernel's current state; call it when the run is over.
    pub fn oracle_report(&self) -> OracleReport {
        oracle::report(self)
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    // ----- driving ------------------------------------------------------

    fn record(&self, task: TaskId) {
        let mut st = self.state.borrow_mut();
        st.steps += 1;
        st.decisions.push(task);
        if st.steps > self.config.step_limit {
            drop(st);
            panic!(
                "lab: step limit of {} dispatches exceeded (livelock?) at virtual time {}; seed {}",
                self.config.step_limit,
                self.now(),
                self.config.seed
            );
        }
    }

    /// Chooses what runs next among the runnable tasks (and the root).
    fn pick(&self, root_ready: bool, root: TaskId) -> Option<Pick> {
        // Reuse one buffer across steps (a step must not allocate).
        let mut candidates = std::mem::take(&mut self.state.borrow_mut().candidates);
        candidates.clear();
        candidates.extend(
            self.queue
                .lock()
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id, r.worker, Pick::Task(i))),
        );
        if root_ready {
            candidates.push((root, 0, Pick::Root));
        }
        let pick = self.choose(&candidates);
        self.state.borrow_mut().candidates = candidates;
        pick
    }

    fn choose(&self, candidates: &[(TaskId, usize, Pick)]) -> Option<Pick> {
        if candidates.is_empty() {
            return None;
        }
        let mut st = self.state.borrow_mut();
        let step = st.steps;
        if let Some(forced) = &self.config.forced_schedule
            && st.divergence.is_none()
            && let Some(&want) = forced.get(step as usize)
        {
            if let Some(c) = candidates.iter().find(|c| c.0 == want) {
                return Some(c.2);
            }
            st.divergence = Some(Divergence {
                step,
                expected: want,
                runnable: candidates.iter().map(|c| c.0).collect(),
            });
        }
        let chosen = match &self.config.policy {
            SchedulePolicy::Fifo => 0,
            SchedulePolicy::Random if self.config.workers > 0 => {
                // Pick a worker that has work, then its oldest task.
                let mut workers: Vec<usize> = candidates
                    .iter()
                    .map(|c| c.1 % self.config.workers)
                    .collect();
                workers.sort_unstable();
                workers.dedup();
                let w = workers[st.schedule_rng.below(workers.len())];
                candidates
                    .iter()
                    .position(|c| c.1 % self.config.workers == w)
                    .expect("worker has a candidate")
            }
            SchedulePolicy::Random => st.schedule_rng.below(candidates.len()),
            SchedulePolicy::Pct { depth, .. } => {
                let depth = u64::from(*depth);
                for c in candidates {
                    if !st.pct_priorities.contains_key(&c.0) {
                        let p = depth + 1 + (st.schedule_rng.next_u64() >> 1);
                        st.pct_priorities.insert(c.0, p);
                    }
                }
                let best = (0..candidates.len())
                    .max_by_key(|&i| (st.pct_priorities[&candidates[i].0], std::cmp::Reverse(i)))
                    .expect("non-empty");
                if st.pct_change_points.contains(&step) {
                    // A change point: the running task drops below everyone.
                    st.pct_next_low += 1;
                    let low = depth.saturating_sub(st.pct_next_low);
                    st.pct_priorities.insert(candidates[best].0, low);
                }
                best
            }
        };
        Some(candidates[chosen].2)
    }

    /// Runs ready task `i` (after chaos, if enabled).
    fn dispatch(&self, i: usize) {
        let ReadyTask { task, id, worker } = self.queue.lock().remove(i);
        // Tasks this one wakes queue on its worker (message-passing locality).
        self.queue.next_worker.store(worker, Ordering::Relaxed);
        if self.config.chaos.is_enabled() {
            self.inject_chaos(id);
        }
        self.record(id);
        task.run();
        self.inject_cancel_at(id);
    }

    /// `LabConfig::cancel_at`: once the target's k-th poll has returned
    /// `Pending` (it is still live after exactly k polls), request its
    /// cancellation, once.
    fn inject_cancel_at(&self, id: TaskId) {
        let Some((target, poll)) = self.config.cancel_at else {
            return;
        };
        if target != id || self.state.borrow().cancel_at_done {
            return;
        }
        if self.core.lock().poll_count(id) != Some(poll) {
            return;
        }
        self.state.borrow_mut().cancel_at_done = true;
        self.core.trace(TraceKind::Chaos {
            task: id,
            what: "cancel_at",
        });
        let reason = CancelReason::user("lab: cancellation injected at an await point");
        self.core
            .with_kernel(|k, now| k.request_cancel(id, reason, now));
    }

    fn inject_chaos(&self, task: TaskId) {
        let chaos = &self.config.chaos;
        let mut st = self.state.borrow_mut();
        let rng = &mut st.chaos_rng;
        let cancel = rng.chance(chaos.cancel);
        let delay = rng.chance(chaos.delay).then(|| {
            let max = chaos.max_delay.as_nanos().min(u128::from(u64::MAX)) as usize;
            Duration::from_nanos(rng.below(max.max(1)) as u64)
        });
        let spurious = rng.chance(chaos.spurious_wake);
        let exhaust = rng.chance(chaos.budget_exhaustion);
        let spurious_pick = rng.next_u64();
        drop(st);
        if cancel {
            let reason = CancelReason::user("chaos: injected cancellation");
            self.core
                .with_kernel(|k, now| k.chaos_cancel(task, reason, now));
        }
        if let Some(d) = delay {
            self.core.trace(TraceKind::Chaos {
                task,
                what: "delay",
            });
            self.advance_to(self.now() + d);
        }
        if spurious {
            let waker = {
                let k = self.core.lock();
                let live = k.live_tasks();
                (!live.is_empty())
                    .then(|| live[(spurious_pick % live.len() as u64) as usize].0)
                    .and_then(|t| k.task_waker(t).map(|w| (t, w)))
            };
            if let Some((target, w)) = waker {
                self.core.trace(TraceKind::Chaos {
                    task: target,
                    what: "spurious_wake",
                });
                w.wake();
            }
        }
        // Only a task not yet cancelled: cleanup is never cut short by chaos.
        if exhaust && self.core.lock().exhaust_poll_budget(task) {
            self.core.trace(TraceKind::Chaos {
                task,
                what: "budget_exhaustion",
            });
        }
    }

    /// Nothing runnable: fire due timers, else jump to the next deadline.
    /// Returns false if there is nothing left that could ever run.
    fn advance_idle(&self) -> bool {
        self.pick_worker_for_timer_wakes();
        if self.core.fire_timers(self.now()) > 0 || !self.queue.lock().is_empty() {
            return true;
        }
        let next = self.core.timers().next_deadline();
        match next {
            Some(deadline) => {
                self.advance_to(deadline);
                true
            }
            None => false,
        }
    }

    fn pick_worker_for_timer_wakes(&self) {
        if self.config.workers > 0 {
            let w = self
                .state
                .borrow_mut()
                .worker_rng
                .below(self.config.workers);
            self.queue.next_worker.store(w, Ordering::Relaxed);
        }
    }

    fn advance_to(&self, to: Time) {
        if to > self.now() {
            self.clock.advance_to(to);
            self.core.trace(TraceKind::TimeAdvance { to });
        }
        self.pick_worker_for_timer_wakes();
        self.core.fire_timers(self.now());
    }

    fn deadlock(&self, root: Option<RegionId>) -> ! {
        let live = self.live_tasks();
        let listing: Vec<String> = live
            .iter()
            .map(|(t, r, s, o)| format!("{t} in {r} ({s:?}, {o} obligations)"))
            .collect();
        panic!(
            "lab: deadlock — nothing is runnable and no timer is pending, but {} is not closed; live tasks: [{}]; seed {} at virtual time {}",
            root.map_or("the lab".to_string(), |r| format!("root region {r}")),
            listing.join(", "),
            self.config.seed,
            self.now()
        );
    }
}

impl Drop for LabRuntime {
    fn drop(&mut self) {
        // A run abandoned mid-way (deadlock, panic) leaves tasks whose
        // wakers and futures point back at the core; break the cycles.
        // Task cells catch panics of the futures they drop; timer wakers
        // may be anyone's (contract 3: never unwind out of the runtime).
        let ready: Vec<ReadyTask> = std::mem::take(&mut *self.queue.lock());
        let wakers = self.core.lock().teardown();
        let timers = self.core.timers().teardown();
        drop(ready);
        drop(wakers);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(timers)));
    }
}

impl std::fmt::Debug for LabRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabRuntime")
            .field("seed", &self.config.seed)
            .field("now", &self.now())
            .field("steps", &self.steps())
            .finish()
    }
}
