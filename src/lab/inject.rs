//! Cancellation injection: rerun a program cancelling one task at each of
//! its await points, and check the oracles every time.
//!
//! ```
//! use asupersync::lab::{InjectionConfig, cancel_injection};
//!
//! let report = cancel_injection(InjectionConfig::new(3), |cx| async move {
//!     let child = cx
//!         .spawn(|cx| async move {
//!             let permit = cx.reserve_obligation("send_permit").unwrap();
//!             asupersync::yield_now().await; // an await point
//!             if cx.checkpoint().is_err() {
//!                 return; // dropping the permit aborts it: cancel-correct
//!             }
//!             permit.commit();
//!         })
//!         .unwrap();
//!     let _ = child.join(&cx).await; // a cancelled child joins as Err
//! });
//! assert!(report.passed(), "{report}");
//! assert_eq!(report.points_tried().len(), 1);
//! ```
//!
//! Rules:
//! 1. The body runs once without injection (the *recording*). Every
//!    `Pending` of a task the lab dispatches is an await point `(task, k)`:
//!    the task's k-th poll returned `Pending`. The root body of `block_on`
//!    is not a target (cancelling it makes `block_on` panic by contract) and
//!    neither are finalizer tasks (they cannot be cancelled).
//! 2. Each chosen point is rerun with the same [`LabConfig`] plus
//!    [`LabConfig::cancel_at`]`(task, k)`: the same seed gives the same ids
//!    and the same schedule up to the point, where cancellation (`User`) is
//!    requested right after that poll.
//! 3. A run fails if it panics (caught and reported with its message), if an
//!    oracle fails, or, for a rerun, if it did not reproduce the recording
//!    up to the point (the program is not deterministic under its seed).
//! 4. A rerun in which the kernel refused the request (the task was already
//!    cancelled at least as severely) is counted in
//!    [`InjectionReport::not_applied`], not as a failure.
//! 5. With [`InjectionConfig::max_points`], a sample of that many points,
//!    drawn from the seed, is tried, in trace order; otherwise every point.
//! 6. The recording itself is checked like a rerun; its failure is reported
//!    with no point.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::oracle::OracleReport;
use super::{DetRng, LabConfig, LabRuntime};
use crate::exec::cx::Cx;
use crate::trace::{TraceEvent, TraceKind};
use crate::types::TaskId;

/// Stream label for sampling await points.
const STREAM_SAMPLE: u64 = 0x1A7E_C7ED;

/// Settings of a [`cancel_injection`] run.
#[derive(Clone, Debug)]
pub struct InjectionConfig {
    lab: LabConfig,
    max_points: Option<usize>,
}

impl InjectionConfig {
    /// Every await point, under `LabConfig::new(seed)`.
    pub fn new(seed: u64) -> Self {
        Self::from_lab_config(LabConfig::new(seed))
    }

    /// Every await point, under `lab` (its seed, policy, leak policy,
    /// futurelock threshold, ...). A `cancel_at` already set is replaced.
    pub fn from_lab_config(lab: LabConfig) -> Self {
        Self {
            lab,
            max_points: None,
        }
    }

    /// Tries at most `n` points: a sample drawn from the seed (rule 5).
    pub fn max_points(mut self, n: usize) -> Self {
        self.max_points = Some(n);
        self
    }

    /// The lab configuration every run uses.
    pub fn lab_config(&self) -> &LabConfig {
        &self.lab
    }
}

/// An await point: task `task`'s `poll`-th poll returned `Pending`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AwaitPoint {
    /// The task (its id in every run with this seed).
    pub task: TaskId,
    /// Which spawn it was, counting from 0 (the root body is spawn 0).
    pub spawn_index: usize,
    /// The poll (1-based) that returned `Pending`.
    pub poll: u32,
    /// The position of that `Pending` event in the recording's trace.
    pub trace_index: usize,
}

impl fmt::Display for AwaitPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} after poll {} (spawn #{}, trace #{})",
            self.task, self.poll, self.spawn_index, self.trace_index
        )
    }
}

/// A run that failed.
#[derive(Clone, Debug)]
pub struct InjectionFailure {
    /// The point cancelled at (`None`: the recording, without injection).
    pub point: Option<AwaitPoint>,
    /// The panic message, if the run panicked.
    pub panic: Option<String>,
    /// Set when the rerun did not reproduce the recording up to the point.
    pub not_reproduced: Option<String>,
    /// The oracles' verdict on the run.
    pub oracles: OracleReport,
}

impl fmt::Display for InjectionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.point {
            Some(p) => write!(f, "cancelled at {p}:")?,
            None => write!(f, "without injection:")?,
        }
        if let Some(msg) = &self.not_reproduced {
            write!(f, "\n  not reproduced: {msg}")?;
        }
        if let Some(msg) = &self.panic {
            write!(f, "\n  panicked: {msg}")?;
        }
        for r in self.oracles.failures() {
            for line in r.to_string().lines() {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

/// What [`cancel_injection`] found.
#[derive(Clone, Debug)]
pub struct InjectionReport {
    seed: u64,
    points: Vec<AwaitPoint>,
    tried: Vec<AwaitPoint>,
    not_applied: Vec<AwaitPoint>,
    failures: Vec<InjectionFailure>,
}

impl InjectionReport {
    /// Whether the recording and every rerun passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The runs that failed.
    pub fn failures(&self) -> &[InjectionFailure] {
        &self.failures
    }

    /// The failure of the rerun cancelled at `point`, if it failed.
    pub fn failure_at(&self, point: &AwaitPoint) -> Option<&InjectionFailure> {
        self.failures
            .iter()
            .find(|f| f.point.as_ref() == Some(point))
    }

    /// Every await point the recording found.
    pub fn points_found(&self) -> &[AwaitPoint] {
        &self.points
    }

    /// The points that were rerun.
    pub fn points_tried(&self) -> &[AwaitPoint] {
        &self.tried
    }

    /// Tried points where the kernel refused the injected request (rule 4).
    pub fn not_applied(&self) -> &[AwaitPoint] {
        &self.not_applied
    }

    /// The seed every run used.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl fmt::Display for InjectionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cancellation injection, seed {}: {} await points found, {} tried, {} not applied, {} failed",
            self.seed,
            self.points.len(),
            self.tried.len(),
            self.not_applied.len(),
            self.failures.len()
        )?;
        for failure in &self.failures {
            write!(f, "\n{failure}")?;
        }
        Ok(())
    }
}

/// What one run produced.
struct Run {
    trace: Vec<TraceEvent>,
    panic: Option<String>,
    oracles: OracleReport,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

fn run_once<F, Fut>(config: LabConfig, body: &F) -> Run
where
    F: Fn(Cx) -> Fut,
    Fut: Future,
{
    let lab = LabRuntime::new(config);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        lab.block_on(body);
    }));
    Run {
        trace: lab.trace(),
        panic: outcome.err().map(|p| panic_message(&*p)),
        oracles: lab.oracle_report(),
    }
}

/// Rule 1: the await points of the recording.
fn await_points(trace: &[TraceEvent]) -> Vec<AwaitPoint> {
    let mut spawn_index: BTreeMap<TaskId, usize> = BTreeMap::new();
    let mut polls: BTreeMap<TaskId, u32> = BTreeMap::new();
    let mut finalizer_tasks: BTreeSet<TaskId> = BTreeSet::new();
    let mut current: Option<TaskId> = None;
    let mut pending: Vec<(TaskId, u32, usize)> = Vec::new();
    for (i, e) in trace.iter().enumerate() {
        match &e.kind {
            TraceKind::Spawn { task, .. } => {
                let n = spawn_index.len();
                spawn_index.entry(*task).or_insert(n);
            }
            TraceKind::Poll { task } => {
                *polls.entry(*task).or_default() += 1;
                current = Some(*task);
            }
            TraceKind::FinalizerRun { .. } => {
                finalizer_tasks.extend(current);
            }
            TraceKind::Pending { task } => {
                pending.push((*task, polls.get(task).copied().unwrap_or(0), i));
                current = None;
            }
            TraceKind::Complete { .. } => current = None,
            _ => {}
        }
    }
    pending
        .into_iter()
        .filter_map(|(task, poll, trace_index)| {
            let spawn_index = *spawn_index.get(&task)?;
            (spawn_index > 0 && !finalizer_tasks.contains(&task)).then_some(AwaitPoint {
                task,
                spawn_index,
                poll,
                trace_index,
            })
        })
        .collect()
}

/// Rule 5: at most `max` points, sampled from `seed`, in trace order.
fn sample(mut points: Vec<AwaitPoint>, max: Option<usize>, seed: u64) -> Vec<AwaitPoint> {
    let Some(max) = max.filter(|&m| m < points.len()) else {
        return points;
    };
    let mut rng = DetRng::derive(seed, STREAM_SAMPLE);
    for i in 0..max {
        let j = i + rng.below(points.len() - i);
        points.swap(i, j);
    }
    points.truncate(max);
    points.sort_by_key(|p| p.trace_index);
    points
}

/// Runs `body` once to find its await points, then once per point (or per
/// sampled point) cancelling that task right after that poll, checking for
/// panics and running the oracles each time. See the module rules.
pub fn cancel_injection<F, Fut>(config: InjectionConfig, body: F) -> InjectionReport
where
    F: Fn(Cx) -> Fut,
    Fut: Future,
{
    let mut base = config.lab;
    base.cancel_at = None;
    let seed = base.seed;
    let recording = run_once(base.clone(), &body);
    let mut failures = Vec::new();
    if recording.panic.is_some() || !recording.oracles.passed() {
        failures.push(InjectionFailure {
            point: None,
            panic: recording.panic,
            not_reproduced: None,
            oracles: recording.oracles,
        });
    }
    let points = await_points(&recording.trace);
    let tried = sample(points.clone(), config.max_points, seed);
    let mut not_applied = Vec::new();
    for point in &tried {
        let run = run_once(base.clone().cancel_at(point.task, point.poll), &body);
        let prefix = point.trace_index + 1;
        let reproduced =
            run.trace.len() >= prefix && run.trace[..prefix] == recording.trace[..prefix];
        let injected = run.trace[prefix.min(run.trace.len())..]
            .iter()
            .position(|e| {
                matches!(&e.kind, TraceKind::Chaos { task, what: "cancel_at" } if *task == point.task)
            })
            .map(|i| prefix + i);
        let not_reproduced = match (reproduced, injected) {
            (false, _) => Some(format!(
                "the run differs from the recording before trace #{}",
                point.trace_index
            )),
            (true, None) => Some("the point was reached but no cancellation was injected".into()),
            (true, Some(_)) => None,
        };
        let applied = injected.is_some_and(|i| {
            matches!(
                run.trace.get(i + 1).map(|e| &e.kind),
                Some(TraceKind::CancelRequest { task, .. }) if *task == point.task
            )
        });
        if injected.is_some() && !applied {
            not_applied.push(*point);
        }
        if run.panic.is_some() || !run.oracles.passed() || not_reproduced.is_some() {
            failures.push(InjectionFailure {
                point: Some(*point),
                panic: run.panic,
                not_reproduced,
                oracles: run.oracles,
            });
        }
    }
    InjectionReport {
        seed,
        points,
        tried,
        not_applied,
        failures,
    }
}
