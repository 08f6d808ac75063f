//! Oracles: properties every lab run must satisfy, checked on its trace and
//! on the kernel's state at the end of the run.
//!
//! ```
//! use asupersync::lab::{LabConfig, LabRuntime};
//!
//! let lab = LabRuntime::new(LabConfig::new(1));
//! lab.block_on(|cx| async move {
//!     let h = cx.spawn(|_cx| async { 7 }).unwrap();
//!     h.join(&cx).await.unwrap();
//! });
//! let report = lab.oracle_report();
//! assert!(report.passed(), "{report}");
//! assert!(report.result("no_orphan_tasks").unwrap().tracked >= 2);
//! ```
//!
//! Each oracle is a plain function of `(&[TraceEvent], &EndState)` (see
//! [`check_all`]), so it can be run on a hand-built trace; that is how the
//! violations the kernel itself prevents are tested. Each reports how many
//! entities it checked (`tracked`), so a vacuous pass shows as `tracked 0`.
//!
//! Rules (one oracle each):
//! 1. `no_orphan_tasks`: every spawned task completes exactly once, before
//!    its region closes; no task is live at the end of the run. Tracks tasks.
//! 2. `obligation_leaks`: no obligation leaks; every reservation is resolved
//!    (committed, aborted) exactly once, and only after it was made; only a
//!    pending obligation is transferred; the kernel's leak counter agrees
//!    with the trace. Tracks obligations.
//! 3. `region_quiescence`: when a region closes, every task spawned in it has
//!    completed, every child region has closed and every obligation it
//!    holds is resolved (one reserved in it, unless transferred away; one
//!    transferred to it); every region closes by the end of the run. Tracks
//!    regions.
//! 4. `region_tree`: each region is created once, under a parent that was
//!    created earlier and is not closed; a region closes once, after all its
//!    children; tasks are spawned only into existing, unclosed regions; the
//!    kernel's live regions agree with the trace. Tracks regions.
//! 5. `cancel_protocol`: per task, an acknowledgement only follows a request,
//!    at most once and for the requested kind; `Complete(Cancelled(k))` only
//!    follows a request of kind `k`, and an acknowledgement unless the task
//!    was force-dropped or never polled; no request after completion;
//!    successive request kinds never weaken (`CancelKind::severity`), per
//!    task and per region. Tracks tasks and regions with cancel events.
//! 6. `race_losers_drained`: every task whose cancellation was requested (a
//!    race or timeout loser, an aborted or fail-fast sibling) is drained: it
//!    completes before its region closes and before the run ends. Tracks
//!    cancelled tasks.
//! 7. `finalizers_ran`: every registered finalizer runs exactly once, before
//!    its region closes; none registers or runs after the close. Tracks
//!    finalizers.
//! 8. `deadline_monotonicity`: a task's budget deadline is no later than its
//!    region's, and a region's no later than its parent's (no deadline =
//!    infinitely late). Tracks the tasks and regions compared.
//! 9. `futurelock`: a task holding at least one obligation is not left
//!    unpolled for longer than `futurelock_after` (virtual time) while other
//!    tasks are polled, nor at the end of the run. Tracks tasks that held an
//!    obligation. Holders follow transfers; an obligation its region holds
//!    (an owned permit, which any task may hold) counts for no task.
//!
//! Every oracle that tracks obligations follows `ObligationTransfer`
//! events: the obligation then belongs to the new task and region.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use super::LabRuntime;
use crate::kernel::{RegionState, TaskState};
use crate::trace::{CompletionKind, TraceEvent, TraceKind};
use crate::types::{CancelKind, ObligationId, RegionId, TaskId, Time};

/// Name of rule 1.
pub const NO_ORPHAN_TASKS: &str = "no_orphan_tasks";
/// Name of rule 2.
pub const OBLIGATION_LEAKS: &str = "obligation_leaks";
/// Name of rule 3.
pub const REGION_QUIESCENCE: &str = "region_quiescence";
/// Name of rule 4.
pub const REGION_TREE: &str = "region_tree";
/// Name of rule 5.
pub const CANCEL_PROTOCOL: &str = "cancel_protocol";
/// Name of rule 6.
pub const RACE_LOSERS_DRAINED: &str = "race_losers_drained";
/// Name of rule 7.
pub const FINALIZERS_RAN: &str = "finalizers_ran";
/// Name of rule 8.
pub const DEADLINE_MONOTONICITY: &str = "deadline_monotonicity";
/// Name of rule 9.
pub const FUTURELOCK: &str = "futurelock";

/// Every oracle, in report order.
pub const ALL: [&str; 9] = [
    NO_ORPHAN_TASKS,
    OBLIGATION_LEAKS,
    REGION_QUIESCENCE,
    REGION_TREE,
    CANCEL_PROTOCOL,
    RACE_LOSERS_DRAINED,
    FINALIZERS_RAN,
    DEADLINE_MONOTONICITY,
    FUTURELOCK,
];

/// Most violations [`OracleReport`]'s `Display` prints per oracle.
const SHOWN_VIOLATIONS: usize = 10;

/// What one oracle found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OracleResult {
    /// The oracle (one of [`ALL`]).
    pub name: &'static str,
    /// Whether no violation was found.
    pub passed: bool,
    /// How many entities it checked (0 means the pass is vacuous).
    pub tracked: usize,
    /// One line per violation, naming the entities and trace positions.
    pub violations: Vec<String>,
}

impl OracleResult {
    fn new(name: &'static str, tracked: usize, violations: Vec<String>) -> Self {
        Self {
            name,
            passed: violations.is_empty(),
            tracked,
            violations,
        }
    }
}

impl fmt::Display for OracleResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        write!(f, "{verdict} {} (tracked {})", self.name, self.tracked)?;
        for v in self.violations.iter().take(SHOWN_VIOLATIONS) {
            write!(f, "\n    - {v}")?;
        }
        if self.violations.len() > SHOWN_VIOLATIONS {
            write!(
                f,
                "\n    ... and {} more",
                self.violations.len() - SHOWN_VIOLATIONS
            )?;
        }
        Ok(())
    }
}

/// The verdict of every oracle on one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OracleReport {
    /// One result per oracle, in the order of [`ALL`].
    pub results: Vec<OracleResult>,
}

impl OracleReport {
    /// Whether every oracle passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    /// The oracles that failed.
    pub fn failures(&self) -> Vec<&OracleResult> {
        self.results.iter().filter(|r| !r.passed).collect()
    }

    /// The result of the oracle called `name`.
    pub fn result(&self, name: &str) -> Option<&OracleResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// Panics with the whole report if an oracle failed.
    ///
    /// # Panics
    /// If any oracle failed.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(self.passed(), "lab oracles failed:\n{self}");
    }
}

impl fmt::Display for OracleReport {
    /// One line per oracle (`PASS no_orphan_tasks (tracked 12)`), each
    /// failing one followed by its violations.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.results.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// A task still live at the end of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveTask {
    /// The task.
    pub id: TaskId,
    /// Its region.
    pub region: RegionId,
    /// Its lifecycle state.
    pub state: TaskState,
    /// How many obligations it holds.
    pub obligations: usize,
    /// When it was last polled (its spawn time if never).
    pub last_polled: Time,
}

/// A region still open (or closed but not yet collected) at the end of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveRegion {
    /// The region.
    pub id: RegionId,
    /// Its parent.
    pub parent: Option<RegionId>,
    /// Its lifecycle state.
    pub state: RegionState,
}

/// The kernel's state at the end of a run: what the oracles check the trace
/// against. `EndState::default()` (nothing live, time zero) suits a
/// hand-built trace that describes a finished run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndState {
    /// Virtual time at the end.
    pub now: Time,
    /// Tasks not yet completed.
    pub live_tasks: Vec<LiveTask>,
    /// Regions the kernel still has a record of.
    pub live_regions: Vec<LiveRegion>,
    /// Obligation leaks the kernel counted.
    pub leaks_reported: u64,
}

/// Runs every oracle (rules 1–9) on `trace` and `end`; `futurelock_after` is
/// the futurelock threshold.
pub fn check_all(trace: &[TraceEvent], end: &EndState, futurelock_after: Duration) -> OracleReport {
    OracleReport {
        results: vec![
            no_orphan_tasks(trace, end),
            obligation_leaks(trace, end),
            region_quiescence(trace, end),
            region_tree(trace, end),
            cancel_protocol(trace, end),
            race_losers_drained(trace, end),
            finalizers_ran(trace, end),
            deadline_monotonicity(trace, end),
            futurelock(trace, end, futurelock_after),
        ],
    }
}

/// The report of `lab`'s run so far (see [`LabRuntime::oracle_report`]).
pub(crate) fn report(lab: &LabRuntime) -> OracleReport {
    let now = lab.now();
    let kernel = lab.core().lock();
    let end = EndState {
        now,
        live_tasks: kernel
            .live_tasks()
            .into_iter()
            .map(|(id, region, state, obligations)| LiveTask {
                id,
                region,
                state,
                obligations,
                last_polled: kernel.last_polled(id).unwrap_or(now),
            })
            .collect(),
        live_regions: kernel
            .live_regions()
            .into_iter()
            .map(|(id, parent, state)| LiveRegion { id, parent, state })
            .collect(),
        leaks_reported: kernel.stats().obligations_leaked,
    };
    check_all(kernel.trace_events(), &end, lab.config().futurelock_after)
}

fn at(e: &TraceEvent) -> String {
    format!("#{} @{}", e.seq, e.time)
}

/// Rule 1: every spawned task completes exactly once, before its region
/// closes, and nothing is live at the end.
pub fn no_orphan_tasks(trace: &[TraceEvent], end: &EndState) -> OracleResult {
    let mut v = Vec::new();
    let mut spawned: BTreeMap<TaskId, (RegionId, u64)> = BTreeMap::new();
    let mut completed: BTreeSet<TaskId> = BTreeSet::new();
    let mut running: BTreeMap<RegionId, BTreeSet<TaskId>> = BTreeMap::new();
    let mut reported: BTreeSet<TaskId> = BTreeSet::new();
    for e in trace {
        match &e.kind {
            TraceKind::Spawn { task, region } => {
                if spawned.insert(*task, (*region, e.seq)).is_some() {
                    v.push(format!("{task} spawned twice ({})", at(e)));
                }
                running.entry(*region).or_default().insert(*task);
            }
            TraceKind::Complete { task, .. } => {
                match spawned.get(task) {
                    None => v.push(format!(
                        "{task} completed but was never spawned ({})",
                        at(e)
                    )),
                    Some((region, _)) => {
                        if let Some(set) = running.get_mut(region) {
                            set.remove(task);
                        }
                    }
                }
                if !completed.insert(*task) {
                    v.push(format!("{task} completed twice ({})", at(e)));
                }
            }
            TraceKind::RegionClose { region } => {
                for t in running.remove(region).unwrap_or_default() {
                    let spawn_seq = spawned[&t].1;
                    v.push(format!(
                        "{t} (spawned at #{spawn_seq}) was still running when its region {region} closed ({})",
                        at(e)
                    ));
                    reported.insert(t);
                }
            }
            _ => {}
        }
    }
    let mut orphans: BTreeMap<TaskId, Option<RegionId>> = spawned
        .iter()
        .filter(|(t, _)| !completed.contains(t))
        .map(|(t, (r, _))| (*t, Some(*r)))
        .collect();
    for live in &end.live_tasks {
        orphans.insert(live.id, Some(live.region));
        if completed.contains(&live.id) {
            v.push(format!(
                "{} is live in the kernel but its completion is in the trace",
                live.id
            ));
        }
    }
    for (t, region) in &orphans {
        if reported.contains(t) {
            continue;
        }
        let state = end
            .live_tasks
            .iter()
            .find(|l| l.id == *t)
            .map_or(String::new(), |l| format!(", {:?}", l.state));
        let region = region.map_or("?".to_string(), |r| r.to_string());
        v.push(format!(
            "{t} in {region} never completed (still live at the end of the run{state})"
        ));
    }
    let tracked = spawned
        .keys()
        .chain(end.live_tasks.iter().map(|l| &l.id))
        .collect::<BTreeSet<_>>()
        .len();
    OracleResult::new(NO_ORPHAN_TASKS, tracked, v)
}

/// Rule 2: no leaks; every reservation resolved exactly once.
pub fn obligation_leaks(trace: &[TraceEvent], end: &EndState) -> OracleResult {
    let mut v = Vec::new();
    let mut reserved: BTreeMap<ObligationId, (TaskId, RegionId, u64)> = BTreeMap::new();
    let mut resolved: BTreeSet<ObligationId> = BTreeSet::new();
    let mut leaks = 0u64;
    let resolve = |o: &ObligationId,
                   e: &TraceEvent,
                   reserved: &BTreeMap<ObligationId, (TaskId, RegionId, u64)>,
                   resolved: &mut BTreeSet<ObligationId>,
                   v: &mut Vec<String>,
                   how: &str| {
        if !reserved.contains_key(o) {
            v.push(format!("{o} {how} but never reserved ({})", at(e)));
        } else if !resolved.insert(*o) {
            v.push(format!(
                "{o} {how} after it was already resolved ({})",
                at(e)
            ));
        }
    };
    for e in trace {
        match &e.kind {
            TraceKind::ObligationReserve {
                obligation,
                task,
                region,
            } => {
                let previous = reserved.insert(*obligation, (*task, *region, e.seq));
                if previous.is_some() {
                    v.push(format!("{obligation} reserved twice ({})", at(e)));
                }
            }
            TraceKind::ObligationCommit { obligation } => {
                resolve(obligation, e, &reserved, &mut resolved, &mut v, "committed");
            }
            TraceKind::ObligationAbort { obligation } => {
                resolve(obligation, e, &reserved, &mut resolved, &mut v, "aborted");
            }
            TraceKind::ObligationTransfer { obligation, .. } => {
                if !reserved.contains_key(obligation) {
                    v.push(format!(
                        "{obligation} transferred but never reserved ({})",
                        at(e)
                    ));
                } else if resolved.contains(obligation) {
                    v.push(format!(
                        "{obligation} transferred after it was resolved ({})",
                        at(e)
                    ));
                }
            }
            TraceKind::ObligationLeak { obligation, task } => {
                leaks += 1;
                let kind = reserved.get(obligation).map_or(String::new(), |(_, r, s)| {
                    format!(" (reserved in {r} at #{s})")
                });
                v.push(format!(
                    "{obligation} held by {task} leaked{kind}: never committed or aborted ({})",
                    at(e)
                ));
                resolve(obligation, e, &reserved, &mut resolved, &mut v, "leaked");
            }
            _ => {}
        }
    }
    for (o, (t, r, s)) in &reserved {
        if !resolved.contains(o) {
            v.push(format!(
                "{o} reserved by {t} in {r} at #{s} was never resolved (pending at the end of the run)"
            ));
        }
    }
    if end.leaks_reported > leaks {
        v.push(format!(
            "the kernel counted {} obligation leaks but the trace records {leaks}",
            end.leaks_reported
        ));
    }
    OracleResult::new(OBLIGATION_LEAKS, reserved.len(), v)
}

/// Rule 3: a region closes only when quiescent; every region closes.
pub fn region_quiescence(trace: &[TraceEvent], end: &EndState) -> OracleResult {
    #[derive(Default)]
    struct Region {
        parent: Option<RegionId>,
        tasks: BTreeSet<TaskId>,
        children: BTreeSet<RegionId>,
        obligations: BTreeSet<ObligationId>,
        closed: bool,
    }
    let mut v = Vec::new();
    let mut regions: BTreeMap<RegionId, Region> = BTreeMap::new();
    let mut task_region: BTreeMap<TaskId, RegionId> = BTreeMap::new();
    let mut obligation_region: BTreeMap<ObligationId, RegionId> = BTreeMap::new();
    for e in trace {
        match &e.kind {
            TraceKind::RegionCreate { region, parent } => {
                regions.entry(*region).or_default().parent = *parent;
                if let Some(p) = parent {
                    regions.entry(*p).or_default().children.insert(*region);
                }
            }
            TraceKind::Spawn { task, region } => {
                task_region.insert(*task, *region);
                regions.entry(*region).or_default().tasks.insert(*task);
            }
            TraceKind::Complete { task, .. } => {
                if let Some(r) = task_region.get(task) {
                    regions.entry(*r).or_default().tasks.remove(task);
                }
            }
            TraceKind::ObligationReserve {
                obligation, region, ..
            } => {
                obligation_region.insert(*obligation, *region);
                regions
                    .entry(*region)
                    .or_default()
                    .obligations
                    .insert(*obligation);
            }
            TraceKind::ObligationTransfer {
                obligation, region, ..
            } => {
                if let Some(r) = obligation_region.insert(*obligation, *region) {
                    regions.entry(r).or_default().obligations.remove(obligation);
                }
                regions
                    .entry(*region)
                    .or_default()
                    .obligations
                    .insert(*obligation);
            }
            TraceKind::ObligationCommit { obligation }
            | TraceKind::ObligationAbort { obligation }
            | TraceKind::ObligationLeak { obligation, .. } => {
                if let Some(r) = obligation_region.get(obligation) {
                    regions
                        .entry(*r)
                        .or_default()
                        .obligations
                        .remove(obligation);
                }
            }
            TraceKind::RegionClose { region } => {
                let rec = regions.entry(*region).or_default();
                for t in &rec.tasks {
                    v.push(format!(
                        "{region} closed ({}) while its task {t} had not completed",
                        at(e)
                    ));
                }
                for c in &rec.children {
                    v.push(format!(
                        "{region} closed ({}) while its child region {c} was open",
                        at(e)
                    ));
                }
                for o in &rec.obligations {
                    v.push(format!(
                        "{region} closed ({}) with obligation {o} pending",
                        at(e)
                    ));
                }
                rec.closed = true;
                if let Some(p) = rec.parent {
                    regions.entry(p).or_default().children.remove(region);
                }
            }
            _ => {}
        }
    }
    let mut open: BTreeSet<RegionId> = regions
        .iter()
        .filter(|(_, r)| !r.closed)
        .map(|(id, _)| *id)
        .collect();
    open.extend(
        end.live_regions
            .iter()
            .filter(|r| r.state != RegionState::Closed)
            .map(|r| r.id),
    );
    let tracked = regions
        .keys()
        .chain(end.live_regions.iter().map(|r| &r.id))
        .collect::<BTreeSet<_>>()
        .len();
    for r in open {
        v.push(format!(
            "{r} never closed (still open at the end of the run)"
        ));
    }
    OracleResult::new(REGION_QUIESCENCE, tracked, v)
}

/// Rule 4: the region tree is well formed.
pub fn region_tree(trace: &[TraceEvent], end: &EndState) -> OracleResult {
    let mut v = Vec::new();
    let mut created: BTreeMap<RegionId, Option<RegionId>> = BTreeMap::new();
    let mut children: BTreeMap<RegionId, Vec<RegionId>> = BTreeMap::new();
    let mut closed: BTreeSet<RegionId> = BTreeSet::new();
    for e in trace {
        match &e.kind {
            TraceKind::RegionCreate { region, parent } => {
                if created.insert(*region, *parent).is_some() {
                    v.push(format!("{region} created twice ({})", at(e)));
                }
                if let Some(p) = parent {
                    if !created.contains_key(p) {
                        v.push(format!(
                            "{region} created ({}) under {p}, which does not exist yet",
                            at(e)
                        ));
                    } else if closed.contains(p) {
                        v.push(format!(
                            "{region} created ({}) under {p}, which is already closed",
                            at(e)
                        ));
                    }
                    children.entry(*p).or_default().push(*region);
                }
            }
            TraceKind::RegionClose { region } => {
                if !created.contains_key(region) {
                    v.push(format!("{region} closed ({}) but never created", at(e)));
                }
                if !closed.insert(*region) {
                    v.push(format!("{region} closed twice ({})", at(e)));
                }
                for c in children.get(region).into_iter().flatten() {
                    if !closed.contains(c) {
                        v.push(format!(
                            "{region} closed ({}) before its child region {c}",
                            at(e)
                        ));
                    }
                }
            }
            TraceKind::Spawn { task, region } => {
                if !created.contains_key(region) {
                    v.push(format!(
                        "{task} spawned ({}) into {region}, which does not exist",
                        at(e)
                    ));
                } else if closed.contains(region) {
                    v.push(format!(
                        "{task} spawned ({}) into {region}, which is closed",
                        at(e)
                    ));
                }
            }
            _ => {}
        }
    }
    for live in &end.live_regions {
        match created.get(&live.id) {
            None => v.push(format!(
                "the kernel has region {} but the trace never created it",
                live.id
            )),
            Some(parent) if *parent != live.parent => v.push(format!(
                "the kernel records {}'s parent as {:?} but the trace created it under {:?}",
                live.id, live.parent, parent
            )),
            Some(_) => {}
        }
    }
    OracleResult::new(REGION_TREE, created.len(), v)
}

/// Rule 5: the cancellation protocol (request → acknowledge → drain →
/// complete) is followed, and requests never weaken.
pub fn cancel_protocol(trace: &[TraceEvent], end: &EndState) -> OracleResult {
    let _ = end;
    #[derive(Default)]
    struct Task {
        requested: Option<CancelKind>,
        acked: bool,
        polled: bool,
        force_dropped: bool,
        completed: bool,
    }
    let mut v = Vec::new();
    let mut tasks: BTreeMap<TaskId, Task> = BTreeMap::new();
    let mut touched: BTreeSet<TaskId> = BTreeSet::new();
    let mut regions: BTreeMap<RegionId, CancelKind> = BTreeMap::new();
    for e in trace {
        match &e.kind {
            TraceKind::Poll { task } => tasks.entry(*task).or_default().polled = true,
            TraceKind::ForceDrop { task, .. } => {
                tasks.entry(*task).or_default().force_dropped = true;
            }
            TraceKind::CancelRequest { task, kind } => {
                touched.insert(*task);
                let rec = tasks.entry(*task).or_default();
                if rec.completed {
                    v.push(format!(
                        "{task}: cancellation ({kind:?}) requested after it completed ({})",
                        at(e)
                    ));
                }
                if let Some(prev) = rec.requested
                    && kind.severity() < prev.severity()
                {
                    v.push(format!(
                        "{task}: cancellation weakened from {prev:?} to {kind:?} ({})",
                        at(e)
                    ));
                }
                rec.requested = Some(*kind);
            }
            TraceKind::CancelAck { task, kind } => {
                touched.insert(*task);
                let rec = tasks.entry(*task).or_default();
                match rec.requested {
                    None => v.push(format!(
                        "{task}: acknowledged {kind:?} without a request ({})",
                        at(e)
                    )),
                    Some(req) if req != *kind => v.push(format!(
                        "{task}: acknowledged {kind:?} but {req:?} was requested ({})",
                        at(e)
                    )),
                    Some(_) => {}
                }
                if rec.acked {
                    v.push(format!("{task}: acknowledged twice ({})", at(e)));
                }
                rec.acked = true;
            }
            TraceKind::Complete { task, outcome } => {
                let rec = tasks.entry(*task).or_default();
                if let CompletionKind::Cancelled(kind) = outcome {
                    touched.insert(*task);
                    match rec.requested {
                        None => v.push(format!(
                            "{task}: completed Cancelled({kind:?}) without a request ({})",
                            at(e)
                        )),
                        Some(req) if req != *kind => v.push(format!(
                            "{task}: completed Cancelled({kind:?}) but {req:?} was requested ({})",
                            at(e)
                        )),
                        Some(_) => {}
                    }
                    if rec.requested.is_some() && !rec.acked && !rec.force_dropped && rec.polled {
                        v.push(format!(
                            "{task}: completed Cancelled({kind:?}) without acknowledging and without being force-dropped ({})",
                            at(e)
                        ));
                    }
                }
                rec.completed = true;
            }
            TraceKind::RegionCancel { region, kind } => {
                if let Some(prev) = regions.get(region)
                    && kind.severity() < prev.severity()
                {
                    v.push(format!(
                        "{region}: cancellation weakened from {prev:?} to {kind:?} ({})",
                        at(e)
                    ));
                }
                regions.insert(*region, *kind);
            }
            _ => {}
        }
    }
    OracleResult::new(CANCEL_PROTOCOL, touched.len() + regions.len(), v)
}

/// Rule 6: every task whose cancellation was requested is drained (it
/// completes) before its region closes and before the run ends.
pub fn race_losers_drained(trace: &[TraceEvent], end: &EndState) -> OracleResult {
    struct Loser {
        region: Option<RegionId>,
        requested_at: u64,
        requester: Option<TaskId>,
    }
    let describe = |t: &TaskId, l: &Loser| match l.requester {
        Some(w) => format!("{t} (cancelled at #{} while {w} ran)", l.requested_at),
        None => format!("{t} (cancelled at #{})", l.requested_at),
    };
    let mut v = Vec::new();
    let mut task_region: BTreeMap<TaskId, RegionId> = BTreeMap::new();
    let mut losers: BTreeMap<TaskId, Loser> = BTreeMap::new();
    let mut undrained: BTreeSet<TaskId> = BTreeSet::new();
    let mut current: Option<TaskId> = None;
    for e in trace {
        match &e.kind {
            TraceKind::Spawn { task, region } => {
                task_region.insert(*task, *region);
            }
            TraceKind::Poll { task } => current = Some(*task),
            TraceKind::Pending { task } if current == Some(*task) => current = None,
            TraceKind::CancelRequest { task, .. } => {
                let first = !losers.contains_key(task);
                if first {
                    losers.insert(
                        *task,
                        Loser {
                            region: task_region.get(task).copied(),
                            requested_at: e.seq,
                            requester: current.filter(|c| c != task),
                        },
                    );
                    undrained.insert(*task);
                }
            }
            TraceKind::Complete { task, .. } => {
                undrained.remove(task);
                if current == Some(*task) {
                    current = None;
                }
            }
            TraceKind::RegionClose { region } => {
                let stuck: Vec<TaskId> = undrained
                    .iter()
                    .filter(|t| losers[t].region == Some(*region))
                    .copied()
                    .collect();
                for t in stuck {
                    v.push(format!(
                        "{} was not drained before its region {region} closed ({})",
                        describe(&t, &losers[&t]),
                        at(e)
                    ));
                    undrained.remove(&t);
                }
            }
            _ => {}
        }
    }
    for t in &undrained {
        let state = end
            .live_tasks
            .iter()
            .find(|l| l.id == *t)
            .map_or(String::new(), |l| format!(" ({:?})", l.state));
        v.push(format!(
            "{} was never drained: still running at the end of the run{state}",
            describe(t, &losers[t])
        ));
    }
    OracleResult::new(RACE_LOSERS_DRAINED, losers.len(), v)
}

/// Rule 7: every registered finalizer runs exactly once, before its region
/// closes.
pub fn finalizers_ran(trace: &[TraceEvent], end: &EndState) -> OracleResult {
    let _ = end;
    #[derive(Default)]
    struct Region {
        registered: usize,
        ran: usize,
        closed: bool,
    }
    let mut v = Vec::new();
    let mut regions: BTreeMap<RegionId, Region> = BTreeMap::new();
    let mut tracked = 0usize;
    for e in trace {
        match &e.kind {
            TraceKind::FinalizerRegister { region } => {
                tracked += 1;
                let rec = regions.entry(*region).or_default();
                if rec.closed {
                    v.push(format!(
                        "a finalizer was registered on {region} after it closed ({})",
                        at(e)
                    ));
                }
                rec.registered += 1;
            }
            TraceKind::FinalizerRun { region } => {
                let rec = regions.entry(*region).or_default();
                if rec.closed {
                    v.push(format!(
                        "a finalizer of {region} ran after the region closed ({})",
                        at(e)
                    ));
                }
                if rec.ran >= rec.registered {
                    v.push(format!(
                        "{region} ran finalizer #{} but only {} were registered: a finalizer ran twice ({})",
                        rec.ran + 1,
                        rec.registered,
                        at(e)
                    ));
                }
                rec.ran += 1;
            }
            TraceKind::RegionClose { region } => {
                let rec = regions.entry(*region).or_default();
                if rec.ran < rec.registered {
                    v.push(format!(
                        "{region} closed ({}) with {} of its {} finalizers not run",
                        at(e),
                        rec.registered - rec.ran,
                        rec.registered
                    ));
                }
                rec.closed = true;
            }
            _ => {}
        }
    }
    for (region, rec) in &regions {
        if !rec.closed && rec.ran < rec.registered {
            v.push(format!(
                "{} of the {} finalizers of {region} never ran (the region never closed)",
                rec.registered - rec.ran,
                rec.registered
            ));
        }
    }
    OracleResult::new(FINALIZERS_RAN, tracked, v)
}

/// `a` is no later than `b` (`None` = no deadline = infinitely late).
fn deadline_le(a: Option<Time>, b: Option<Time>) -> bool {
    match (a, b) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => a <= b,
    }
}

fn show_deadline(d: Option<Time>) -> String {
    d.map_or("none".to_string(), |t| t.to_string())
}

/// Rule 8: deadlines only tighten down the tree (child ≤ parent).
pub fn deadline_monotonicity(trace: &[TraceEvent], end: &EndState) -> OracleResult {
    let _ = end;
    let mut v = Vec::new();
    let mut parent: BTreeMap<RegionId, Option<RegionId>> = BTreeMap::new();
    let mut deadline: BTreeMap<RegionId, Option<Time>> = BTreeMap::new();
    let mut task_region: BTreeMap<TaskId, RegionId> = BTreeMap::new();
    let mut tracked = 0usize;
    for e in trace {
        match &e.kind {
            TraceKind::RegionCreate { region, parent: p } => {
                parent.insert(*region, *p);
            }
            TraceKind::Spawn { task, region } => {
                task_region.insert(*task, *region);
            }
            TraceKind::RegionBudget { region, budget } => {
                deadline.insert(*region, budget.deadline);
                let Some(p) = parent.get(region).copied().flatten() else {
                    continue;
                };
                let Some(&pd) = deadline.get(&p) else {
                    continue;
                };
                tracked += 1;
                if !deadline_le(budget.deadline, pd) {
                    v.push(format!(
                        "{region}'s deadline {} is later than its parent {p}'s {} ({})",
                        show_deadline(budget.deadline),
                        show_deadline(pd),
                        at(e)
                    ));
                }
            }
            TraceKind::TaskBudget { task, budget } => {
                let Some(r) = task_region.get(task) else {
                    continue;
                };
                let Some(&rd) = deadline.get(r) else {
                    continue;
                };
                tracked += 1;
                if !deadline_le(budget.deadline, rd) {
                    v.push(format!(
                        "{task}'s deadline {} is later than its region {r}'s {} ({})",
                        show_deadline(budget.deadline),
                        show_deadline(rd),
                        at(e)
                    ));
                }
            }
            _ => {}
        }
    }
    OracleResult::new(DEADLINE_MONOTONICITY, tracked, v)
}

/// Rule 9: no task holds obligations while left unpolled for longer than
/// `after` as others run (or at the end of the run).
pub fn futurelock(trace: &[TraceEvent], end: &EndState, after: Duration) -> OracleResult {
    let mut v = Vec::new();
    let mut last_polled: BTreeMap<TaskId, Time> = BTreeMap::new();
    let mut held: BTreeMap<TaskId, BTreeSet<ObligationId>> = BTreeMap::new();
    let mut holder: BTreeMap<ObligationId, TaskId> = BTreeMap::new();
    let mut ever_held: BTreeSet<TaskId> = BTreeSet::new();
    let mut flagged: BTreeSet<TaskId> = BTreeSet::new();
    let list = |set: &BTreeSet<ObligationId>| {
        set.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for e in trace {
        match &e.kind {
            TraceKind::Spawn { task, .. } => {
                last_polled.insert(*task, e.time);
            }
            TraceKind::Poll { task } => {
                for (t, set) in &held {
                    if t == task || flagged.contains(t) {
                        continue;
                    }
                    let since = last_polled.get(t).copied().unwrap_or(Time::ZERO);
                    let idle = e.time.duration_since(since);
                    if idle > after {
                        v.push(format!(
                            "{t} holds {} obligation(s) [{}] and was not polled for {idle:?} (since {since}; threshold {after:?}) while {task} ran ({})",
                            set.len(),
                            list(set),
                            at(e)
                        ));
                        flagged.insert(*t);
                    }
                }
                last_polled.insert(*task, e.time);
            }
            TraceKind::ObligationReserve {
                obligation, task, ..
            } => {
                holder.insert(*obligation, *task);
                held.entry(*task).or_default().insert(*obligation);
                ever_held.insert(*task);
            }
            TraceKind::ObligationCommit { obligation }
            | TraceKind::ObligationAbort { obligation }
            | TraceKind::ObligationLeak { obligation, .. }
            | TraceKind::ObligationTransfer { obligation, .. } => {
                if let Some(t) = holder.remove(obligation)
                    && let Some(set) = held.get_mut(&t)
                {
                    set.remove(obligation);
                    if set.is_empty() {
                        held.remove(&t);
                    }
                }
                if let TraceKind::ObligationTransfer { to: Some(t), .. } = &e.kind {
                    holder.insert(*obligation, *t);
                    held.entry(*t).or_default().insert(*obligation);
                    ever_held.insert(*t);
                }
            }
            TraceKind::Complete { task, .. } => {
                held.remove(task);
            }
            _ => {}
        }
    }
    let end_time = trace.last().map_or(end.now, |e| e.time.max(end.now));
    let mut at_end: BTreeMap<TaskId, (usize, Time)> = held
        .iter()
        .map(|(t, set)| {
            let since = last_polled.get(t).copied().unwrap_or(Time::ZERO);
            (*t, (set.len(), since))
        })
        .collect();
    for live in end.live_tasks.iter().filter(|l| l.obligations > 0) {
        ever_held.insert(live.id);
        at_end.insert(live.id, (live.obligations, live.last_polled));
    }
    for (t, (count, since)) in at_end {
        if flagged.contains(&t) {
            continue;
        }
        let idle = end_time.duration_since(since);
        if idle > after {
            v.push(format!(
                "{t} holds {count} obligation(s) and had not been polled for {idle:?} (since {since}; threshold {after:?}) when the run ended at {end_time}"
            ));
        }
    }
    OracleResult::new(FUTURELOCK, ever_held.len(), v)
}
