//! The kernel: regions, tasks, cancellation, obligations and timers.
//!
//! The kernel is plain data behind one lock (the timer wheel is not: it is
//! the timer service's, under its own lock, see `timers.rs`; nor are light
//! tasks, which live in their region's set until the kernel registers
//! them, see `light.rs`; nor are light regions, listed in their parent's
//! set until registered, see `light_region.rs`; nor are obligation counts, which live in their
//! home words, see `obligation.rs`). It knows nothing about threads,
//! clocks or how futures are stored: drivers (the current-thread runtime, the
//! multi-thread runtime, the lab) own the futures, read their own clock and
//! call into the kernel with the current [`Time`]. Side effects the kernel
//! decides on (waking a task, starting a region's finalizers) are queued as
//! `Actions` that the caller performs *after* releasing the lock, so no user
//! code ever runs while the kernel is locked.
//!
//! The `impl Kernel` is split along its seams, one file each, and every
//! numbered invariant (as in `docs/ARCHITECTURE.md`) is stated in full at
//! the top of the file that upholds it:
//! - `spawn.rs`: creating and completing tasks; K1 (ownership).
//! - `cancel.rs`: cancel requests, acknowledgement, masking, budgets; K2
//!   (downward cancellation), K3 (monotone), K4 (termination).
//! - `close.rs`: regions from creation to `Closed`, finalizers; K1
//!   (a region closes only when quiescent), K6 (finalizers), K9 (region
//!   budgets).
//! - `ledger.rs`: the obligation ledger; K5 (obligations).
//! - `timers.rs`: the timer service (the wheel under its own lock, shared
//!   with the execution core, and its hint) and the kernel's own timers;
//!   K8 (timer hint), TL1 (lock order kernel → wheel).
//! - `light.rs`: light tasks, outside the kernel lock until registered
//!   (LT1–LT8), and the sets that hold them (a region's shared part).
//! - `light_region.rs`: light regions, opened and closed outside the
//!   kernel lock until registered (LR1–LR6).
//! - This file: the kernel's data, lookups, time and trace plumbing.

mod cancel;
mod close;
mod ledger;
pub(crate) mod light;
mod light_region;
pub(crate) mod obligation;
pub(crate) mod region;
mod spawn;
pub(crate) mod task;
mod timers;

use std::task::Waker;
use std::time::Duration;

use crate::timer_wheel::TimerWheel;
use crate::trace::{CompletionKind, TraceBuffer, TraceEvent, TraceKind};
pub use crate::types::ForceDropCause;
use crate::types::IdMap;
pub(crate) use crate::types::intrusive::Links;
use crate::types::{
    Budget, CancelKind, CancelReason, ObligationId, PanicPayload, RegionId, TaskId, Time,
};
pub(crate) use light::{Finish, LightCancel, LightClose, LightRequest, LightTasks, TaskCounters};
use obligation::ObligationRecord;
pub(crate) use obligation::{
    Held, HomeHost, HomeSource, ObligationCounters, ObligationHome, StandaloneHome,
};
pub use obligation::{LeakReport, ObligationState};
pub use region::RegionState;
pub(crate) use region::{BodyEnd, Finalizer, RegionRecord, RegionReport};
use std::sync::Arc;
pub use task::TaskState;
pub(crate) use task::{TaskEnd, TaskKind, TaskRecord};
use timers::GraceQueue;
pub(crate) use timers::{Pinned, Sleeper, TimerKey, Timers};

/// A task cell's "poll through the kernel next time" flag.
///
/// Rule A1 (fast polls): a task whose budget is unlimited, that is not
/// cancelled and not traced, is polled without taking the kernel lock, its
/// first poll included (the flag is registered when the task is created, so
/// spawning takes the lock once).
/// Whenever the kernel changes something its next poll must see (a cancel
/// request, a forced drop, an exhausted budget) it raises the flag; the
/// cell then routes that poll through `before_poll`.
pub(crate) trait Attention: Send + Sync {
    fn request_attention(&self);
    /// The task is cancel-requested. Its next poll must go through
    /// `before_poll` if the task has not started (so it is dropped
    /// unpolled); a started one needs no kernel visit for this alone (A1).
    /// Also a scheduler lane hint: the multi-thread scheduler queues it in
    /// its cancel lane, at the cleanup priority of its (strongest) reason:
    /// `CancelKind::severity`, 0..=5, higher first. Raised by
    /// `request_cancel` each time the stored reason is set or strengthened.
    fn cancel_requested(&self, severity: u8);
    /// Scheduler lane hint: the task's budget deadline (its timed-lane
    /// key). Given once, when the task is created.
    fn deadline_hint(&self, _deadline: Time) {}
    /// The task's waker (a light task's, when it is registered: rule LT1).
    fn to_waker(self: Arc<Self>) -> Waker;
    /// LT1 (SW7 in `exec::state`): the kernel registered this light task;
    /// called while the kernel holds the task's light-set lock.
    fn mark_registered(&self) {}
    /// LR5 (SW15 in `exec::state`): called by this light task, in its own
    /// poll, before it opens a light region. `true`: it may do so without
    /// being registered (no cancel requested, not registered); `false`:
    /// it registers first.
    fn mark_owner(&self) -> bool {
        false
    }
    /// LR5 (SW15): whether this light task marked itself the owner of a
    /// light region.
    fn owns_regions(&self) -> bool {
        false
    }
    /// The task's obligation home word, in its cell (rules OB1–OB9 in
    /// `obligation`): swept by `complete_task`.
    fn obligation_home(&self) -> Option<&ObligationHome> {
        None
    }
    /// LT7, LT10: a region cancel's request, stored in this light task's
    /// cell by the region's sweep (which holds a reference to the cell and
    /// no lock). Only light tasks' cells store one. `true`: the request was
    /// stored and made the task's wake edge (SW14), so the caller must
    /// [`queue`](Self::queue) it.
    fn cancel_light(&self, _reason: &Arc<CancelReason>, _grace_deadline: Time) -> bool {
        false
    }
    /// SW14: queues this task, whose wake edge a
    /// [`cancel_light`](Self::cancel_light) made.
    fn queue(&self) {}
    /// LT7: the cancellation stored in this light task's cell, if any
    /// (copied into its record when the kernel registers it).
    fn light_cancel(&self) -> Option<LightCancel> {
        None
    }
    /// LT1: the task's id (a light task's set finds it by id on the rare
    /// by-id paths: registration, diagnostics).
    fn light_id(&self) -> TaskId;
    /// LT9: the shard of its set a light cell joins and leaves; the same
    /// on every call. By default its id's (a task cell keeps the shard of
    /// the thread that made it).
    fn light_shard(&self) -> usize {
        self.light_id().index() as usize
    }
    /// LT1: the one light-task set this cell may be linked into (its
    /// region's, if it was spawned light); checked by every link and
    /// unlink (rule IL3 in `types::intrusive`).
    fn light_set(&self) -> Option<&LightTasks> {
        None
    }
    /// LT1: the cell's links in its light set's list. Must be a field of
    /// the cell, the same one on every call (IL5 in `types::intrusive`);
    /// only the holder of the set's lock touches them (IL2).
    fn light_links(&self) -> &Links<dyn Attention>;
}

/// Most nested `Cx::masked` sections a task may have open at once.
pub const MAX_MASK_DEPTH: u32 = 64;

/// What the runtime does when it detects an obligation leak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeakPolicy {
    /// The leaking task's outcome becomes a panic whose message contains
    /// "obligation leak" (it then propagates like any unjoined panic), also
    /// when the task was cancelled; a leak found when a region closes (an
    /// owned permit, an escaped obligation) makes the region's outcome
    /// such a panic.
    #[default]
    Panic,
    /// The leak is recorded and logged (`tracing::error!`); execution goes on.
    Log,
}

/// Kernel settings chosen on the runtime builder or `LabConfig`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KernelConfig {
    /// Overrides every kind's grace period when set.
    pub(crate) cleanup_grace: Option<Duration>,
    pub(crate) leak_policy: LeakPolicy,
    /// Shards of the timer service (TL4; 0 is taken as 1).
    pub(crate) timer_shards: usize,
    /// How many of them are workers' home shards (TL5; at least one shard
    /// stays shared).
    pub(crate) timer_home_shards: usize,
}

/// Why a spawn (or a region entry) was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// The region no longer accepts tasks (it is finalizing or closed).
    RegionClosed(RegionId),
    /// The region is being cancelled; new work would only be cancelled too.
    RegionCancelled(RegionId, CancelReason),
    /// The `Cx` was narrowed without the `spawn` capability.
    CapabilityDenied(&'static str),
    /// The runtime is shutting down (spawns through a `Handle`).
    RuntimeShutdown,
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::RegionClosed(r) => {
                write!(
                    f,
                    "cannot spawn into region {r}: it is finalizing or closed"
                )
            }
            SpawnError::RegionCancelled(r, reason) => {
                write!(
                    f,
                    "cannot spawn into region {r}: it is cancelled ({reason})"
                )
            }
            SpawnError::RuntimeShutdown => write!(f, "cannot spawn: the runtime is shutting down"),
            SpawnError::CapabilityDenied(cap) => {
                write!(
                    f,
                    "cannot spawn: this Cx was narrowed without the `{cap}` capability"
                )
            }
        }
    }
}

impl std::error::Error for SpawnError {}

/// A task whose future the runtime dropped instead of letting it finish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForcedDrop {
    /// The task.
    pub task: TaskId,
    /// Its region.
    pub region: RegionId,
    /// Why it was dropped.
    pub cause: ForceDropCause,
    /// The cancellation reason it ended with.
    pub reason: CancelReason,
    /// When.
    pub at: Time,
}

/// Side effects decided under the kernel lock, performed after releasing it.
#[derive(Default)]
pub(crate) struct Actions {
    pub(crate) wakes: Vec<Waker>,
    /// Regions whose finalizers must start running (in a finalizer task).
    pub(crate) start_finalizers: Vec<RegionId>,
    /// Region cancels' sweeps of their light tasks (LT10).
    pub(crate) sweeps: Vec<LightSweep>,
}

impl Actions {
    pub(crate) fn is_empty(&self) -> bool {
        self.wakes.is_empty() && self.start_finalizers.is_empty() && self.sweeps.is_empty()
    }
}

/// LT10: a region cancel's sweep of its light tasks, queued by the kernel
/// and run once its lock is released.
pub(crate) struct LightSweep {
    set: Arc<LightTasks>,
    reason: Arc<CancelReason>,
    grace_deadline: Time,
}

impl LightSweep {
    /// Cancels every light task of the set in place and wakes it
    /// ([`LightTasks::sweep_cancel`]); how many it visited.
    pub(crate) fn run(self) -> usize {
        self.set.sweep_cancel(&self.reason, self.grace_deadline)
    }
}

/// What a pre-poll check decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PollDecision {
    /// Poll it; `fast_next` says the following polls may skip the kernel
    /// until attention is requested (rule A1).
    Poll {
        fast_next: bool,
    },
    Drop(ForceDropCause),
}

/// How a task ended, as the kernel classifies it.
#[derive(Clone, Debug)]
pub(crate) enum TaskOutcome {
    Ok,
    /// Shared with the task record (and, for a region cancel, its siblings);
    /// deep-copied only when someone reads it.
    Cancelled(Arc<CancelReason>),
    Panicked(PanicPayload),
}

/// One of the kernel's own timers (sleeps have their own entries, see
/// `timers.rs`).
pub(crate) enum TimerEvent {
    /// The earliest entry of the grace queue (K4) is due.
    GraceQueue,
    /// The shared grace deadline of the tasks a region cancel cancelled.
    RegionGrace(RegionId),
    Deadline(TaskId),
    /// A region's budget deadline (K9).
    RegionDeadline(RegionId),
}

/// Counters for diagnostics and the lab's oracles.
#[derive(Clone, Debug, Default)]
pub struct KernelStats {
    /// Tasks spawned.
    pub tasks_spawned: u64,
    /// Tasks completed.
    pub tasks_completed: u64,
    /// Regions created.
    pub regions_created: u64,
    /// Regions closed.
    pub regions_closed: u64,
    /// Obligations committed.
    pub obligations_committed: u64,
    /// Obligations aborted.
    pub obligations_aborted: u64,
    /// Obligation leaks detected (the first reports are kept in `leaks`).
    pub obligations_leaked: u64,
    /// Forced drops (the first reports are kept in `forced_drops`).
    pub forced_drop_count: u64,
    /// The first [`KernelStats::MAX_REPORTS`] leak reports.
    pub leaks: Vec<LeakReport>,
    /// The first [`KernelStats::MAX_REPORTS`] forced drops.
    pub forced_drops: Vec<ForcedDrop>,
}

impl KernelStats {
    /// How many detailed reports of each kind are kept.
    pub const MAX_REPORTS: usize = 1024;
}

pub(crate) struct Kernel {
    /// Registered tasks (light ones live in their region's set: LT1).
    tasks: IdMap<TaskId, TaskRecord>,
    /// Task ids and the light tasks' statistics (LT5).
    counters: Arc<TaskCounters>,
    /// Registered regions (light ones live in their parent's set until
    /// registered: LR1), keyed by ids from `counters` (K7: never reused).
    regions: IdMap<RegionId, RegionRecord>,
    /// The lab's obligation ledger (rule OB8): filled only when tracing.
    obligations: std::collections::BTreeMap<ObligationId, ObligationRecord>,
    /// Region homes (rule 5 of `obligation`), created on first use and
    /// swept when their region closes.
    region_homes: std::collections::BTreeMap<RegionId, Arc<StandaloneHome>>,
    /// Obligation ids and resolve totals, shared with every home (OB7).
    obligation_counters: Arc<ObligationCounters>,
    /// The timer service, shared with the execution core (`timers.rs`).
    timers: Arc<Timers>,
    /// K4: the individual grace deadlines of cancelled tasks, earliest
    /// first, behind one wheel timer (`timers.rs`, rules GQ1–GQ3).
    grace: GraceQueue,
    config: KernelConfig,
    actions: Actions,
    stats: KernelStats,
    /// The time of the current kernel call (set by the core before each).
    now: Time,
    /// Registered tasks with a pending/acknowledged cancellation plus
    /// cancelled open regions. Zero means no region body's `Cx` can observe
    /// anything, so it skips the kernel lock (rule A2), unless its budget
    /// deadline has passed (a deadline is a cancellation even before its
    /// timer fires). A task's own `Cx` reads its cancel hint instead, and
    /// light tasks cancelled in place (LT7) count only once registered.
    cancel_gauge: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Whether `now` came from the driver's recent clock reading (rule CL1
    /// in `exec::runnable`) rather than a fresh one.
    now_is_recent: bool,
    /// The driver's clock, read only to replace a recent `now` where a
    /// stamp must be exact (see [`Kernel::exact_now`]).
    fresh_clock: Option<Arc<dyn Fn() -> Time + Send + Sync>>,
    trace: Option<TraceBuffer>,
}

/// The budget a task keeps after acknowledging cancellation: the meet with
/// the cleanup budget, except that a task whose poll allowance is already
/// used up (it is being cancelled *for* that) gets the cleanup allowance to
/// clean up with.
fn cleanup_budget_on_ack(current: Budget, cleanup: Budget) -> Budget {
    let mut budget = current.meet(cleanup);
    if current.poll_quota == 0 {
        budget.poll_quota = cleanup.poll_quota;
    }
    budget
}

/// Whether [`stamp`] would change `reason`.
fn needs_stamp(reason: &CancelReason) -> bool {
    reason.timestamp == Time::ZERO
        || (reason.origin_region.is_none() && reason.origin_task.is_none())
}

/// A request's reason as stored: timed `now` and attributed to region `r`
/// (and task `t`) unless it says otherwise already.
pub(crate) fn stamp(
    mut reason: CancelReason,
    now: Time,
    r: RegionId,
    t: Option<TaskId>,
) -> CancelReason {
    if reason.timestamp == Time::ZERO {
        reason.timestamp = now;
    }
    if reason.origin_region.is_none() && reason.origin_task.is_none() {
        reason.origin_region = Some(r);
        reason.origin_task = t;
    }
    reason
}

/// K4: how long a task cancelled for `kind` may clean up (`uniform`: the
/// runtime's `cleanup_grace`, if set, for every kind).
pub(crate) fn grace_period(uniform: Option<Duration>, kind: CancelKind) -> Duration {
    uniform.unwrap_or_else(|| kind.grace_period())
}

impl Kernel {
    pub(crate) fn new(config: KernelConfig, start: Time) -> Self {
        Self {
            tasks: IdMap::default(),
            counters: Arc::default(),
            regions: IdMap::default(),
            obligations: Default::default(),
            region_homes: Default::default(),
            obligation_counters: Default::default(),
            timers: Arc::new(Timers::sharded(
                start,
                config.timer_shards,
                config.timer_home_shards,
            )),
            grace: GraceQueue::default(),
            config,
            actions: Actions::default(),
            stats: KernelStats::default(),
            now: start,
            cancel_gauge: Default::default(),
            now_is_recent: false,
            fresh_clock: None,
            trace: None,
        }
    }

    /// The shared cancellation gauge (rule A2).
    pub(crate) fn cancel_gauge(&self) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
        self.cancel_gauge.clone()
    }

    fn gauge_add(&self) {
        self.cancel_gauge
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    fn gauge_sub(&self) {
        self.cancel_gauge
            .fetch_sub(1, std::sync::atomic::Ordering::Release);
    }

    /// The time of the latest kernel call.
    pub(crate) fn now(&self) -> Time {
        self.now
    }

    /// Sets the time of the current kernel call.
    pub(crate) fn set_now(&mut self, now: Time) {
        self.now = now;
        self.now_is_recent = false;
    }

    /// Sets the time of the current kernel call from the driver's recent
    /// clock reading (rule CL1): good for stamps that only record roughly
    /// when something happened; [`exact_now`](Self::exact_now) replaces it
    /// where a stamp must be exact.
    pub(crate) fn set_now_recent(&mut self, now: Time) {
        self.now = now;
        self.now_is_recent = true;
    }

    /// Gives the kernel the driver's clock, for [`exact_now`](Self::exact_now).
    pub(crate) fn set_fresh_clock(&mut self, clock: Arc<dyn Fn() -> Time + Send + Sync>) {
        self.fresh_clock = Some(clock);
    }

    /// The time for a stamp that must be exact (a cancel request's
    /// timestamp and grace deadline, a forced drop, a leak report): `now`,
    /// unless this call runs on a recent reading, which is then refreshed
    /// once from the driver's clock.
    fn exact_now(&mut self, now: Time) -> Time {
        if !self.now_is_recent {
            return now;
        }
        if let Some(clock) = &self.fresh_clock {
            self.now = self.now.max(clock());
        }
        self.now_is_recent = false;
        self.now.max(now)
    }

    /// Starts recording trace events.
    pub(crate) fn enable_trace(&mut self) {
        self.trace.get_or_insert_with(TraceBuffer::default);
    }

    /// Records `kind` if tracing is enabled.
    pub(crate) fn emit(&mut self, kind: TraceKind) {
        if let Some(trace) = &mut self.trace {
            trace.push(self.now, kind);
        }
    }

    pub(crate) fn trace_events(&self) -> &[TraceEvent] {
        self.trace.as_ref().map_or(&[], |t| t.events())
    }

    /// Live tasks in id order, with their region, state and the number of
    /// obligations they hold (diagnostics; when tracing, as the lab's
    /// ledger sees holders, rule 4 — else their home word's count). Light
    /// tasks (LT1) are listed as `Running`.
    pub(crate) fn live_tasks(&self) -> Vec<(TaskId, RegionId, TaskState, usize)> {
        let mut out: Vec<_> = self
            .tasks
            .iter()
            .map(|(&t, rec)| {
                let held = if self.trace.is_some() {
                    self.ledger_held_by(t)
                } else {
                    self.task_pending_obligations(t)
                };
                (t, rec.region, rec.state, held)
            })
            .collect();
        for set in self.all_sets() {
            let r = set.region();
            out.extend(
                set.held()
                    .into_iter()
                    .map(|(t, held)| (t, r, TaskState::Running, held)),
            );
        }
        out.sort_by_key(|entry| entry.0);
        out
    }

    /// The task counters shared with the light spawn path (LT5).
    pub(crate) fn counters(&self) -> Arc<TaskCounters> {
        self.counters.clone()
    }

    /// Exempts task `t` of region `r` from grace-period force drops
    /// (blocking closures; LT1: registered first).
    pub(crate) fn mark_uninterruptible(&mut self, t: TaskId, r: RegionId) {
        if let Some(rec) = self.registered(t, r) {
            rec.uninterruptible = true;
        }
    }

    /// The waker of task `t` (the lab uses it for spurious wakeups).
    pub(crate) fn task_waker(&self, t: TaskId) -> Option<Waker> {
        self.task(t).map(|rec| rec.waker.clone())
    }

    /// Exhausts task `t`'s poll allowance (lab chaos): its next poll turns
    /// into a `PollQuota` cancellation.
    /// Lab chaos: cancels task `t` if it is running and not yet cancelled,
    /// recording the injection just before the request. Returns whether it
    /// applied.
    pub(crate) fn chaos_cancel(&mut self, t: TaskId, reason: CancelReason, now: Time) -> bool {
        let applies = self.task(t).is_some_and(|rec| {
            rec.kind != TaskKind::Finalizer
                && matches!(rec.state, TaskState::Created | TaskState::Running)
        });
        if applies {
            self.emit(TraceKind::Chaos {
                task: t,
                what: "cancel",
            });
            self.request_cancel(t, reason, now);
        }
        applies
    }

    /// Returns whether it applied: a task already cancelled keeps its
    /// cleanup budget (draining is never cut short by chaos).
    pub(crate) fn exhaust_poll_budget(&mut self, t: TaskId) -> bool {
        match self.task_mut(t) {
            Some(rec) if !rec.state.is_cancel_requested() && rec.state < TaskState::Finalizing => {
                rec.budget.poll_quota = 0;
                if let Some(a) = &rec.attention {
                    a.request_attention();
                }
                true
            }
            _ => false,
        }
    }

    /// When task `t` was last polled (its spawn time if never).
    pub(crate) fn last_polled(&self, t: TaskId) -> Option<Time> {
        self.task(t).map(|rec| rec.last_polled)
    }

    /// How many times task `t` has been polled (the lab's `cancel_at` hook).
    pub(crate) fn poll_count(&self, t: TaskId) -> Option<u32> {
        self.task(t).map(|rec| rec.polls)
    }

    /// Drops every waker the kernel holds, breaking the reference cycles
    /// between tasks and the core of a runtime abandoned mid-run. Returns
    /// them so they are dropped outside the lock. (The timers are the timer
    /// service's: `Timers::teardown`.)
    pub(crate) fn teardown(&mut self) -> Vec<(Waker, Option<std::sync::Arc<dyn Attention>>)> {
        // In id order, so what they release is dropped in an order fixed
        // by the run alone (the lab's determinism).
        let mut records: Vec<_> = self.tasks.iter_mut().collect();
        records.sort_unstable_by_key(|(t, _)| **t);
        let mut wakers: Vec<_> = records
            .into_iter()
            .map(|(_, rec)| {
                let waker = std::mem::replace(&mut rec.waker, Waker::noop().clone());
                (waker, rec.attention.take())
            })
            .collect();
        for set in self.all_sets() {
            let light = set.clear().into_iter();
            wakers.extend(light.map(|a| (Waker::noop().clone(), Some(a))));
        }
        wakers
    }

    /// Live regions in id order, with their parent and state (diagnostics).
    pub(crate) fn live_regions(&self) -> Vec<(RegionId, Option<RegionId>, RegionState)> {
        self.regions_in_order()
            .map(|(r, rec)| (r, rec.parent, rec.state))
            .collect()
    }

    /// The registered regions in id order (creation order): for every
    /// walk whose order can show (the lab's determinism).
    fn regions_in_order(&self) -> impl Iterator<Item = (RegionId, &RegionRecord)> {
        let mut all: Vec<_> = self.regions.iter().map(|(&r, rec)| (r, rec)).collect();
        all.sort_unstable_by_key(|entry| entry.0);
        all.into_iter()
    }

    pub(crate) fn take_actions(&mut self) -> Actions {
        if self.actions.is_empty() {
            Actions::default()
        } else {
            std::mem::take(&mut self.actions)
        }
    }

    /// The statistics. Task counts are derived (LT5): every task spawned
    /// took an id and is live or completed, so the completed ones are the
    /// spawned ones not live (exact whenever no spawn runs concurrently);
    /// obligation totals are the homes' (OB3).
    pub(crate) fn stats(&self) -> KernelStats {
        let mut stats = self.stats.clone();
        stats.tasks_spawned = self.counters.spawned();
        let live = u64::try_from(self.live_task_count()).unwrap_or(u64::MAX);
        stats.tasks_completed = stats.tasks_spawned.saturating_sub(live);
        // LR2: likewise for regions, light ones included.
        stats.regions_created = self.counters.regions_created();
        let closed_records = self
            .regions
            .values()
            .filter(|rec| rec.state == RegionState::Closed)
            .count();
        let live = self.live_region_count() - closed_records;
        let live = u64::try_from(live).unwrap_or(u64::MAX);
        stats.regions_closed = stats.regions_created.saturating_sub(live);
        (stats.obligations_committed, stats.obligations_aborted) =
            self.obligation_counters.totals();
        stats
    }

    // ----- lookups -------------------------------------------------------

    pub(crate) fn task(&self, t: TaskId) -> Option<&TaskRecord> {
        self.tasks.get(&t)
    }

    fn task_mut(&mut self, t: TaskId) -> Option<&mut TaskRecord> {
        self.tasks.get_mut(&t)
    }

    /// Task `t`'s record, registering it first if it is a light task of
    /// region `r` (LT1; `r` is the region of the `Cx` the call came
    /// through: the task's own region, or a region it owns, LR5, whose
    /// owners are looked up the tree to the task's own).
    pub(crate) fn registered(&mut self, t: TaskId, r: RegionId) -> Option<&mut TaskRecord> {
        if !self.tasks.contains_key(&t) {
            let mut home = r;
            let entry = loop {
                let rec = self.region(home)?;
                if let Some(entry) = rec.light.take(t) {
                    break entry;
                }
                match (rec.owner, rec.parent) {
                    (Some(owner), Some(parent)) if owner == t => home = parent,
                    _ => return None,
                }
            };
            self.register_light(t, home, entry);
        }
        self.tasks.get_mut(&t)
    }

    /// [`registered`](Self::registered) for a caller that holds task `t`'s
    /// cell: an O(1) registration (LT1) instead of a walk of the set.
    pub(crate) fn registered_cell(
        &mut self,
        t: TaskId,
        r: RegionId,
        cell: &(dyn Attention + 'static),
    ) -> Option<&mut TaskRecord> {
        if !self.tasks.contains_key(&t) {
            // LR1: a light region's task registers its region first.
            self.ensure_region_of(cell.light_set());
            // LR5: `r` may be a region the task owns; its cell knows its own.
            let home = cell.light_set().map(LightTasks::region).unwrap_or(r);
            let set = &self.region(home)?.light;
            if !cell
                .light_set()
                .is_some_and(|own| std::ptr::eq(own, &**set))
            {
                return self.registered(t, r); // not a cell of `r`'s set
            }
            let entry = set.clone().take_cell(cell)?;
            self.register_light(t, home, entry);
        }
        self.tasks.get_mut(&t)
    }

    /// [`registered`](Self::registered), in O(1) if `cell` (task `t`'s
    /// light cell, from the polled task's context) is given.
    pub(crate) fn registered_hinted(
        &mut self,
        t: TaskId,
        r: RegionId,
        cell: Option<&(dyn Attention + 'static)>,
    ) -> Option<&mut TaskRecord> {
        match cell {
            Some(cell) => self.registered_cell(t, r, cell),
            None => self.registered(t, r),
        }
    }

    /// Region `r`'s set, whatever its eligibility (its finalizers, RF1):
    /// for a finalizer task that takes them without the kernel lock.
    pub(crate) fn region_set(&self, r: RegionId) -> Option<Arc<LightTasks>> {
        self.region(r).map(|rec| rec.light.clone())
    }

    /// Region `r`'s light-task set, if it takes light spawns (LT4): given
    /// to the `Cx`s that spawn into `r`.
    pub(crate) fn light_tasks(&self, r: RegionId) -> Option<Arc<LightTasks>> {
        let rec = self.region(r)?;
        (self.trace.is_none() && rec.light.is_eligible()).then(|| rec.light.clone())
    }

    /// Whether task `t` (of region `r`, as in [`registered`](Self::registered))
    /// is still live.
    /// `set`: region `r`'s set, if the caller holds it (LR1: an
    /// unregistered light region has no record to find it by).
    pub(crate) fn task_alive(&self, t: TaskId, r: RegionId, set: Option<&LightTasks>) -> bool {
        self.tasks.contains_key(&t)
            || match self.region(r) {
                Some(rec) => rec.light.contains(t),
                None => set.is_some_and(|set| set.region() == r && set.contains(t)),
            }
    }

    pub(crate) fn region(&self, r: RegionId) -> Option<&RegionRecord> {
        self.regions.get(&r)
    }

    fn region_mut(&mut self, r: RegionId) -> Option<&mut RegionRecord> {
        self.regions.get_mut(&r)
    }

    pub(crate) fn task_state(&self, t: TaskId) -> Option<TaskState> {
        self.task(t).map(|r| r.state)
    }

    /// [`task_state`](Self::task_state) that also finds light tasks,
    /// looking through every region's set: reported `Running`, or, with a
    /// cancel stored in the cell (LT7), `CancelRequested` or `Cancelling`
    /// as their record would say.
    pub(crate) fn any_task_state(&self, t: TaskId) -> Option<TaskState> {
        self.task_state(t).or_else(|| {
            let cell = self.all_sets().iter().find_map(|set| set.get(t))?;
            Some(match cell.light_cancel() {
                None => TaskState::Running,
                Some(c) if c.acked => TaskState::Cancelling,
                Some(_) => TaskState::CancelRequested,
            })
        })
    }

    /// Region `r`'s state; an unregistered light region (LR1) is `Open`
    /// (its body runs: it is registered before anything else happens to
    /// it) and is found by a walk of the light regions (diagnostics).
    pub(crate) fn region_state(&self, r: RegionId) -> Option<RegionState> {
        match self.region(r) {
            Some(rec) => Some(rec.state),
            None => self
                .light_region_sets()
                .iter()
                .any(|set| set.region() == r)
                .then_some(RegionState::Open),
        }
    }

    /// LT1: the tasks with a record (light ones have none until registered).
    #[cfg(any(test, feature = "test-internals"))]
    pub(crate) fn registered_task_count(&self) -> usize {
        self.tasks.len()
    }

    pub(crate) fn live_task_count(&self) -> usize {
        let mut light = 0;
        self.for_each_set(|set| light += set.len());
        self.tasks.len() + light
    }

    /// Live regions, registered and light (LR1).
    pub(crate) fn live_region_count(&self) -> usize {
        let mut sets = 0;
        self.for_each_set(|_| sets += 1);
        sets // every registered region has a set, and every light one is one
    }

    /// Tasks of region `r`, in spawn order.
    fn region_tasks(&self, r: RegionId) -> Vec<TaskId> {
        let mut out = Vec::new();
        let mut cursor = self.region(r).and_then(|rec| rec.first_task);
        while let Some(t) = cursor {
            out.push(t);
            cursor = self.task(t).and_then(|rec| rec.next);
        }
        out
    }
}

#[cfg(test)]
pub(super) mod test_util {
    use super::*;

    pub(crate) fn ms(n: u64) -> Time {
        Time::from_nanos(n * 1_000_000)
    }

    pub(crate) fn spawn(k: &mut Kernel, r: RegionId) -> TaskId {
        k.create_task(
            r,
            TaskKind::Spawned,
            Waker::noop().clone(),
            Budget::INFINITE,
            Time::ZERO,
        )
        .expect("open region")
    }
}
