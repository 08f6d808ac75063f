//! The kernel: regions, tasks, cancellation, obligations and timers.
//!
//! The kernel is plain data behind one lock. It knows nothing about threads,
//! clocks or how futures are stored: drivers (the current-thread runtime, the
//! multi-thread runtime, the lab) own the futures, read their own clock and
//! call into the kernel with the current [`Time`]. Side effects the kernel
//! decides on (waking a task, starting a region's finalizers) are queued as
//! `Actions` that the caller performs *after* releasing the lock, so no user
//! code ever runs while the kernel is locked.
//!
//! Invariants (numbered as in `docs/ARCHITECTURE.md`):
//! - K1 (ownership): every task belongs to exactly one region, every region
//!   but a root has a parent; a region closes only when quiescent (its body is
//!   done, no live task, no open child region).
//! - K2 (downward cancellation): cancelling a region cancels its tasks with
//!   the region's reason and its child regions with `ParentCancelled` caused
//!   by it; cancelling a task cancels the regions its body opened. Nothing
//!   flows to a parent.
//! - K3 (monotone cancellation): a second request only strengthens the stored
//!   reason (see `CancelReason::strengthen`).
//! - K4 (termination): a task whose cancellation was requested is force-
//!   dropped when its grace period expires or its cleanup poll quota runs out.
//!   Grace periods only ever shorten: a later, stronger request may move a
//!   task's deadline earlier, never later; the tasks a region cancel
//!   cancels together share the region's grace deadline (one timer), which
//!   likewise only moves earlier when the region's reason is strengthened.
//! - K5 (obligations): a region never closes with a pending obligation
//!   (leftovers are leaks). A task's unresolved obligations are leaks when
//!   it completes, whatever its outcome: its future, and every permit in
//!   it, is dropped first (a dropped permit aborts itself), so what is left
//!   was forgotten or escaped; under `LeakPolicy::Panic` the task's outcome
//!   becomes `Panicked` (a cancelled one's too). Owned obligations (owned
//!   permits, which move between tasks) are held by their region from the
//!   start: no task's completion counts them, the region's close reports
//!   one still pending. Transfers and owned reservations are traced
//!   (`ObligationTransfer`). See `obligation.rs` for the numbered rules.
//! - K6 (finalizers): run after the last child, LIFO, masked, exactly once.
//! - K7 (ids): stale ids never resolve (generational arenas).
//! - K8 (timer hint): the shared hint never lies late: no pending timer is
//!   due before it, so a driver that reads it without the lock, and locks
//!   only once it has passed, never fires a timer late.
//! - K9 (region budgets): a region's budget (its own met with its
//!   parent's) bounds its body as well as its tasks. A region whose
//!   deadline is tighter than its parent's has a deadline timer that
//!   cancels it with `Deadline` (its tasks, its child regions, and the
//!   checkpoints and waits of its body, which runs in the owner task); an
//!   inherited deadline is enforced by the ancestor's timer or, for the
//!   root region, by the root task's own deadline. A checkpoint that finds
//!   a region deadline passed before its timer fired fires it at once. The
//!   body's polls count against a poll quota the region asked for
//!   (`RegionFuture`): the poll that finds it spent cancels the region with
//!   `PollQuota`. The owner task itself is not cancelled.

mod arena;
pub(crate) mod obligation;
pub(crate) mod region;
pub(crate) mod task;

use std::task::Waker;
use std::time::Duration;

use crate::timer_wheel::{TimerKey, TimerWheel};
use crate::trace::{CompletionKind, TraceBuffer, TraceEvent, TraceKind};
pub use crate::types::ForceDropCause;
use crate::types::{
    Budget, CancelKind, CancelReason, ObligationId, PanicPayload, RegionId, TaskId, Time,
};
use arena::Arena;
use obligation::ObligationRecord;
pub use obligation::{LeakReport, ObligationState};
pub use region::RegionState;
pub(crate) use region::{BodyEnd, Finalizer, RegionRecord, RegionReport};
use std::sync::Arc;
pub use task::TaskState;
pub(crate) use task::{TaskEnd, TaskKind, TaskRecord};

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
}

impl Actions {
    pub(crate) fn is_empty(&self) -> bool {
        self.wakes.is_empty() && self.start_finalizers.is_empty()
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

/// Something the timer wheel fires.
pub(crate) enum TimerEvent {
    Wake(Waker),
    Grace(TaskId),
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
    tasks: Arena<TaskRecord>,
    regions: Arena<RegionRecord>,
    obligations: Arena<ObligationRecord>,
    timers: TimerWheel<TimerEvent>,
    config: KernelConfig,
    actions: Actions,
    stats: KernelStats,
    /// The time of the current kernel call (set by the core before each).
    now: Time,
    /// Tasks with a pending/acknowledged cancellation plus cancelled open
    /// regions. Zero means no checkpoint anywhere can observe anything, so
    /// `Cx` skips the kernel lock (rule A2), unless its budget deadline has
    /// passed (a deadline is a cancellation even before its timer fires).
    cancel_gauge: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Rule K8 (see [`Kernel::timer_hint`]).
    timer_hint: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Whether `now` came from the driver's recent clock reading (rule CL1
    /// in `exec::core`) rather than a fresh one.
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

/// Whether [`Kernel::stamp`] would change `reason`.
fn needs_stamp(reason: &CancelReason) -> bool {
    reason.timestamp == Time::ZERO
        || (reason.origin_region.is_none() && reason.origin_task.is_none())
}

fn task_key(t: TaskId) -> (u32, u32) {
    (t.index(), t.generation())
}

fn region_key(r: RegionId) -> (u32, u32) {
    (r.index(), r.generation())
}

impl Kernel {
    pub(crate) fn new(config: KernelConfig, start: Time) -> Self {
        Self {
            tasks: Arena::new(),
            regions: Arena::new(),
            obligations: Arena::new(),
            timers: TimerWheel::new(start),
            config,
            actions: Actions::default(),
            stats: KernelStats::default(),
            now: start,
            cancel_gauge: Default::default(),
            timer_hint: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
            now_is_recent: false,
            fresh_clock: None,
            trace: None,
        }
    }

    /// Rule K8: no timer is due before this instant (nanoseconds;
    /// `u64::MAX`: no timer). Drivers read it without the lock and take the
    /// lock to fire timers only once it has passed.
    pub(crate) fn timer_hint(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.timer_hint.clone()
    }

    /// Inserts a timer, lowering the K8 hint if it is now the earliest.
    fn arm_timer(&mut self, deadline: Time, event: TimerEvent) -> TimerKey {
        self.timer_hint
            .fetch_min(deadline.as_nanos(), std::sync::atomic::Ordering::Release);
        self.timers.insert(deadline, event)
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

    /// Live tasks in id order, with their region and state (diagnostics).
    pub(crate) fn live_tasks(&self) -> Vec<(TaskId, RegionId, TaskState, usize)> {
        self.tasks
            .iter()
            .map(|((i, g), rec)| {
                (
                    TaskId::from_parts(i, g),
                    rec.region,
                    rec.state,
                    rec.obligations.len(),
                )
            })
            .collect()
    }

    /// Exempts task `t` from grace-period force drops (blocking closures).
    pub(crate) fn mark_uninterruptible(&mut self, t: TaskId) {
        if let Some(rec) = self.task_mut(t) {
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

    /// Drops every waker and timer the kernel holds, breaking the reference
    /// cycles between tasks and the core of a runtime abandoned mid-run.
    /// Returns them so they are dropped outside the lock.
    #[allow(clippy::type_complexity)]
    pub(crate) fn teardown(
        &mut self,
    ) -> (
        Vec<(Waker, Option<std::sync::Arc<dyn Attention>>)>,
        TimerWheel<TimerEvent>,
    ) {
        let wakers = self
            .tasks
            .iter_mut()
            .map(|rec| {
                let waker = std::mem::replace(&mut rec.waker, Waker::noop().clone());
                (waker, rec.attention.take())
            })
            .collect();
        let timers = std::mem::replace(&mut self.timers, TimerWheel::new(self.now));
        self.timer_hint
            .store(u64::MAX, std::sync::atomic::Ordering::Release);
        (wakers, timers)
    }

    /// Live regions in id order, with their parent and state (diagnostics).
    pub(crate) fn live_regions(&self) -> Vec<(RegionId, Option<RegionId>, RegionState)> {
        self.regions
            .iter()
            .map(|((i, g), rec)| (RegionId::from_parts(i, g), rec.parent, rec.state))
            .collect()
    }

    pub(crate) fn take_actions(&mut self) -> Actions {
        if self.actions.is_empty() {
            Actions::default()
        } else {
            std::mem::take(&mut self.actions)
        }
    }

    pub(crate) fn stats(&self) -> &KernelStats {
        &self.stats
    }

    // ----- lookups -------------------------------------------------------

    pub(crate) fn task(&self, t: TaskId) -> Option<&TaskRecord> {
        let (i, g) = task_key(t);
        self.tasks.get(i, g)
    }

    fn task_mut(&mut self, t: TaskId) -> Option<&mut TaskRecord> {
        let (i, g) = task_key(t);
        self.tasks.get_mut(i, g)
    }

    pub(crate) fn region(&self, r: RegionId) -> Option<&RegionRecord> {
        let (i, g) = region_key(r);
        self.regions.get(i, g)
    }

    fn region_mut(&mut self, r: RegionId) -> Option<&mut RegionRecord> {
        let (i, g) = region_key(r);
        self.regions.get_mut(i, g)
    }

    pub(crate) fn task_state(&self, t: TaskId) -> Option<TaskState> {
        self.task(t).map(|r| r.state)
    }

    pub(crate) fn region_state(&self, r: RegionId) -> Option<RegionState> {
        self.region(r).map(|r| r.state)
    }

    pub(crate) fn live_task_count(&self) -> usize {
        self.tasks.len()
    }

    pub(crate) fn live_region_count(&self) -> usize {
        self.regions.len()
    }

    pub(crate) fn pending_obligation_count(&self) -> usize {
        self.obligations.len()
    }

    pub(crate) fn next_timer_deadline(&self) -> Option<Time> {
        self.timers.next_deadline()
    }

    pub(crate) fn pending_timer_count(&self) -> usize {
        self.timers.len()
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

    // ----- regions -------------------------------------------------------

    /// Creates a root region (one per `block_on`).
    pub(crate) fn create_root_region(&mut self, budget: Budget) -> RegionId {
        let (i, g) = self.regions.insert(RegionRecord::new(None, None, budget));
        self.stats.regions_created += 1;
        let region = RegionId::from_parts(i, g);
        self.emit(TraceKind::RegionCreate {
            region,
            parent: None,
        });
        self.emit(TraceKind::RegionBudget { region, budget });
        region
    }

    /// Creates a region under `parent` whose body runs in task `owner`.
    pub(crate) fn create_child_region(
        &mut self,
        parent: RegionId,
        owner: TaskId,
        budget: Budget,
    ) -> Result<RegionId, SpawnError> {
        let parent_rec = self
            .region(parent)
            .ok_or(SpawnError::RegionClosed(parent))?;
        if !parent_rec.state.accepts_spawns() {
            return Err(SpawnError::RegionClosed(parent));
        }
        if let Some(reason) = &parent_rec.cancel {
            return Err(SpawnError::RegionCancelled(parent, reason.clone()));
        }
        let parent_deadline = parent_rec.budget.deadline;
        let budget = parent_rec.budget.meet(budget);
        let (i, g) = self
            .regions
            .insert(RegionRecord::new(Some(parent), Some(owner), budget));
        let r = RegionId::from_parts(i, g);
        self.stats.regions_created += 1;
        self.emit(TraceKind::RegionCreate {
            region: r,
            parent: Some(parent),
        });
        self.emit(TraceKind::RegionBudget { region: r, budget });
        if let Some(p) = self.region_mut(parent) {
            p.children.push(r);
        }
        if let Some(o) = self.task_mut(owner) {
            o.owned_regions.push(r);
        }
        // K9: a deadline tighter than the parent's gets its own timer (an
        // inherited one is covered by the ancestor's timer, or for the root
        // region by the root task's own deadline timer).
        if let Some(deadline) = budget.deadline
            && parent_deadline.is_none_or(|p| deadline < p)
        {
            let key = self.arm_timer(deadline.max(self.now), TimerEvent::RegionDeadline(r));
            self.region_mut(r).expect("just inserted").deadline_timer = Some(key);
        }
        Ok(r)
    }

    /// The budget of region `r` (its own, met with its ancestors').
    pub(crate) fn region_budget(&self, r: RegionId) -> Budget {
        self.region(r).map_or(Budget::INFINITE, |rec| rec.budget)
    }

    /// K9: region `r`'s deadline passed: cancel it with `Deadline` (its
    /// tasks, its child regions and the checkpoints and waits of its body).
    fn region_deadline_passed(&mut self, r: RegionId, now: Time) {
        if let Some(key) = self.region_mut(r).and_then(|rec| rec.deadline_timer.take()) {
            self.timers.cancel(key);
        }
        self.cancel_region(
            r,
            CancelReason::deadline().with_message("region deadline passed"),
            now,
        );
    }

    /// K9 without waiting for the timer: a checkpoint in region `r` found
    /// its deadline passed (rule A2's deadline exception reads the clock).
    /// Fires the deadline of `r` and of every ancestor whose deadline also
    /// passed, innermost first, as the timers would.
    fn region_deadlines_due(&mut self, r: RegionId, now: Time) {
        let mut cursor = Some(r);
        while let Some(x) = cursor {
            let Some(rec) = self.region(x) else { return };
            if !rec.budget.is_past_deadline(now) {
                return; // ancestors' deadlines are no earlier
            }
            cursor = rec.parent;
            if rec.deadline_timer.is_some() {
                self.region_deadline_passed(x, now);
            }
        }
    }

    /// K9 for a region body's polls: the body of a region with a poll quota
    /// used it up; cancel the region with `PollQuota`.
    pub(crate) fn region_polls_exhausted(&mut self, r: RegionId, now: Time) {
        self.cancel_region(
            r,
            CancelReason::poll_quota().with_message("region poll quota exhausted"),
            now,
        );
    }

    /// Sets which task runs a root region's body.
    pub(crate) fn set_region_owner(&mut self, r: RegionId, owner: TaskId) {
        if let Some(rec) = self.region_mut(r) {
            rec.owner = Some(owner);
        }
    }

    /// Records that region `r`'s body finished and starts closing it.
    pub(crate) fn region_body_done(&mut self, r: RegionId, end: BodyEnd, now: Time) {
        let Some(rec) = self.region_mut(r) else {
            return;
        };
        if rec.body_done {
            return;
        }
        rec.body_done = true;
        let failure = match &end {
            BodyEnd::Ok => None,
            BodyEnd::Err => {
                Some(CancelReason::fail_fast().with_message("region body returned an error"))
            }
            BodyEnd::Panicked(p) => Some(
                CancelReason::fail_fast()
                    .with_message(format!("region body panicked: {}", p.message())),
            ),
            BodyEnd::Abandoned => Some(
                CancelReason::fail_fast()
                    .with_message("region future dropped before its body finished"),
            ),
        };
        if matches!(end, BodyEnd::Abandoned) {
            rec.awaited = false;
        }
        if let Some(reason) = failure {
            self.cancel_region(r, reason.with_origin(Some(r), None), now);
        }
        self.advance_region(r, now);
    }

    /// The region future was dropped: finish its body (if needed) and let the
    /// kernel close it without anyone awaiting the report.
    pub(crate) fn abandon_region(&mut self, r: RegionId, now: Time) {
        self.unmask_owner(r);
        let Some(rec) = self.region_mut(r) else {
            return;
        };
        rec.awaited = false;
        if rec.state == RegionState::Closed {
            self.remove_region(r);
        } else if !rec.body_done {
            self.region_body_done(r, BodyEnd::Abandoned, now);
        }
    }

    /// Polls for closure: `Some(report)` once closed (the record is then
    /// released); otherwise stores `waker` to be woken on close.
    pub(crate) fn poll_region_closed(
        &mut self,
        r: RegionId,
        waker: &Waker,
    ) -> Option<RegionReport> {
        let rec = self.region_mut(r)?;
        if rec.state == RegionState::Closed {
            let report = std::mem::take(&mut rec.report);
            self.remove_region(r);
            return Some(report);
        }
        match &mut rec.close_waker {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        None
    }

    fn remove_region(&mut self, r: RegionId) {
        let (i, g) = region_key(r);
        self.regions.remove(i, g);
    }

    /// Registers a finalizer on `r`; gives it back if `r` already closed.
    pub(crate) fn register_finalizer(
        &mut self,
        r: RegionId,
        fin: Finalizer,
    ) -> Result<(), Finalizer> {
        match self.region_mut(r) {
            Some(rec) if rec.state != RegionState::Closed => {
                rec.finalizers.push(fin);
                self.emit(TraceKind::FinalizerRegister { region: r });
                Ok(())
            }
            _ => Err(fin),
        }
    }

    /// Takes the most recently registered finalizer of `r` (LIFO).
    pub(crate) fn pop_finalizer(&mut self, r: RegionId) -> Option<Finalizer> {
        let fin = self.region_mut(r)?.finalizers.pop()?;
        self.emit(TraceKind::FinalizerRun { region: r });
        Some(fin)
    }

    pub(crate) fn finalizer_panicked(&mut self, r: RegionId, payload: PanicPayload) {
        if let Some(rec) = self.region_mut(r) {
            rec.report.panic.get_or_insert(payload);
        }
    }

    /// Walks `r` (and, as regions close, its ancestors) forward through
    /// Open → Closing → Draining → Finalizing → Closed as far as possible.
    fn advance_region(&mut self, r: RegionId, now: Time) {
        let mut current = Some(r);
        while let Some(r) = current.take() {
            let Some(rec) = self.region_mut(r) else {
                return;
            };
            loop {
                match rec.state {
                    RegionState::Open if rec.body_done => rec.advance(r),
                    RegionState::Closing => rec.advance(r),
                    RegionState::Draining if rec.is_quiescent() => {
                        rec.advance(r);
                        if !rec.finalizers.is_empty() {
                            rec.finalizers_running = true;
                            self.actions.start_finalizers.push(r);
                            self.mask_waiting_owner(r);
                            return;
                        }
                    }
                    RegionState::Finalizing if !rec.finalizers_running => {
                        current = self.close_region(r, now);
                        break;
                    }
                    _ => return,
                }
            }
        }
    }

    /// K6: while a region's finalizers run, the owner task (which is only
    /// awaiting the region future) is masked, so finalizers that wait on the
    /// owner's `Cx` are not cancelled. Unmasked on close or abandonment.
    fn mask_waiting_owner(&mut self, r: RegionId) {
        let Some(rec) = self.region(r) else { return };
        let owner = rec.owner.filter(|_| rec.awaited && rec.parent.is_some());
        if let Some(o) = owner.and_then(|o| self.task_mut(o)) {
            o.mask_depth += 1;
            self.region_mut(r).expect("looked up above").owner_masked = true;
        }
    }

    fn unmask_owner(&mut self, r: RegionId) {
        let Some(rec) = self.region_mut(r) else {
            return;
        };
        if !std::mem::take(&mut rec.owner_masked) {
            return;
        }
        if let Some(o) = rec.owner.and_then(|o| self.task_mut(o)) {
            o.mask_depth = o.mask_depth.saturating_sub(1);
        }
    }

    /// The finalizer task could not be created: close without it.
    pub(crate) fn finalizers_not_started(&mut self, r: RegionId, now: Time) {
        if let Some(rec) = self.region_mut(r) {
            rec.finalizers_running = false;
        }
        self.advance_region(r, now);
    }

    /// Finalizing → Closed. Returns the parent, which may now be quiescent.
    fn close_region(&mut self, r: RegionId, now: Time) -> Option<RegionId> {
        self.unmask_owner(r);
        self.leak_region_obligations(r, now);
        if self.region(r)?.cancel.is_some() {
            self.gauge_sub();
        }
        let rec = self.region_mut(r)?;
        rec.advance(r);
        let timers = [rec.grace_timer.take(), rec.deadline_timer.take()];
        for key in timers.into_iter().flatten() {
            self.timers.cancel(key);
        }
        let rec = self.region_mut(r)?;
        if rec.report.panic.is_none()
            && let Some((_, p)) = rec.pending_panics.first()
        {
            rec.report.panic = Some(p.clone());
        }
        rec.pending_panics.clear();
        let parent = rec.parent;
        let owner = rec.owner;
        let awaited = rec.awaited;
        if let Some(w) = rec.close_waker.take() {
            self.actions.wakes.push(w);
        }
        self.stats.regions_closed += 1;
        self.emit(TraceKind::RegionClose { region: r });
        if !awaited {
            self.remove_region(r);
        }
        if let Some(o) = owner.and_then(|o| self.task_mut(o)) {
            o.owned_regions.retain(|&x| x != r);
        }
        let p = self.region_mut(parent?)?;
        p.children.retain(|&c| c != r);
        parent
    }

    // ----- tasks ---------------------------------------------------------

    /// Creates a task record in region `r`. `Finalizer` tasks may be created
    /// in a finalizing region; others only while it accepts spawns.
    pub(crate) fn create_task(
        &mut self,
        r: RegionId,
        kind: TaskKind,
        waker: Waker,
        budget: Budget,
        now: Time,
    ) -> Result<TaskId, SpawnError> {
        self.create_task_with(r, kind, waker, None, budget, now)
    }

    /// [`create_task`](Self::create_task) that also registers the task's
    /// attention flag (rule A1), so the spawner takes the lock only once.
    pub(crate) fn create_task_with(
        &mut self,
        r: RegionId,
        kind: TaskKind,
        waker: Waker,
        attention: Option<std::sync::Arc<dyn Attention>>,
        budget: Budget,
        now: Time,
    ) -> Result<TaskId, SpawnError> {
        let rec = self.region(r).ok_or(SpawnError::RegionClosed(r))?;
        match kind {
            TaskKind::Finalizer => {
                if rec.state != RegionState::Finalizing {
                    return Err(SpawnError::RegionClosed(r));
                }
            }
            _ => {
                if !rec.state.accepts_spawns() {
                    return Err(SpawnError::RegionClosed(r));
                }
                if let Some(reason) = &rec.cancel {
                    return Err(SpawnError::RegionCancelled(r, reason.clone()));
                }
            }
        }
        let budget = rec.budget.meet(budget);
        let mut record = TaskRecord::new(r, kind, waker, budget);
        record.last_polled = now;
        if let (Some(a), Some(deadline)) = (&attention, budget.deadline) {
            a.deadline_hint(deadline); // the timed lane's key
        }
        record.attention = attention;
        let (i, g) = self.tasks.insert(record);
        let t = TaskId::from_parts(i, g);
        self.stats.tasks_spawned += 1;
        self.emit(TraceKind::Spawn { task: t, region: r });
        self.emit(TraceKind::TaskBudget { task: t, budget });
        if kind == TaskKind::Finalizer {
            self.region_mut(r).expect("checked above").finalizer_task = Some(t);
        } else {
            self.link_task(r, t);
        }
        if let Some(deadline) = budget.deadline {
            let key = self.arm_timer(deadline.max(now), TimerEvent::Deadline(t));
            self.task_mut(t).expect("just inserted").deadline_timer = Some(key);
        }
        Ok(t)
    }

    fn link_task(&mut self, r: RegionId, t: TaskId) {
        let rec = self.region_mut(r).expect("region checked by caller");
        let prev = rec.last_task;
        rec.last_task = Some(t);
        if rec.first_task.is_none() {
            rec.first_task = Some(t);
        }
        rec.live_tasks += 1;
        if let Some(p) = prev {
            self.task_mut(p).expect("list is consistent").next = Some(t);
        }
        self.task_mut(t).expect("just inserted").prev = prev;
    }

    fn unlink_task(&mut self, r: RegionId, t: TaskId) {
        let (prev, next) = {
            let rec = self.task(t).expect("unlinking a live task");
            (rec.prev, rec.next)
        };
        if let Some(p) = prev {
            self.task_mut(p).expect("list is consistent").next = next;
        }
        if let Some(n) = next {
            self.task_mut(n).expect("list is consistent").prev = prev;
        }
        if let Some(rec) = self.region_mut(r) {
            if rec.first_task == Some(t) {
                rec.first_task = next;
            }
            if rec.last_task == Some(t) {
                rec.last_task = prev;
            }
            rec.live_tasks -= 1;
        }
    }

    /// Rule A1 at spawn: whether task `t`'s first poll may skip
    /// [`before_poll`](Self::before_poll). The Created → Running step is
    /// then recorded by whichever kernel call comes first (the task's next
    /// `before_poll` or its `complete_task`).
    pub(crate) fn may_skip_first_poll(&self, t: TaskId) -> bool {
        self.task(t).is_some_and(|rec| {
            rec.attention.is_some()
                && rec.budget.deadline.is_none()
                && self.polls_may_skip(rec, TaskState::Created)
        })
    }

    /// Rule A1's common condition: nothing traces polls, none needs
    /// counting, no drop is pending, and the task is in `state`.
    fn polls_may_skip(&self, rec: &TaskRecord, state: TaskState) -> bool {
        self.trace.is_none()
            && rec.state == state
            && rec.budget.poll_quota == u32::MAX
            && rec.force_drop.is_none()
    }

    /// Bookkeeping before each poll: first-poll transition, poll quota,
    /// deadline, and whether the future must be dropped instead.
    /// `polled_before` says the driver polled the future already, possibly
    /// without telling the kernel (a first poll that skipped it, rule A1).
    pub(crate) fn before_poll(
        &mut self,
        t: TaskId,
        now: Time,
        polled_before: bool,
    ) -> PollDecision {
        let Some(rec) = self.task_mut(t) else {
            return PollDecision::Drop(ForceDropCause::CancelledBeforeStart);
        };
        if polled_before && rec.polls == 0 {
            // Its first poll skipped the kernel (A1): it has started.
            rec.polls = 1;
            if rec.state == TaskState::Created {
                rec.transition(t, TaskState::Running);
            }
        }
        if let Some(cause) = rec.force_drop {
            return PollDecision::Drop(cause);
        }
        match rec.state {
            TaskState::Created => rec.transition(t, TaskState::Running),
            TaskState::CancelRequested if rec.polls == 0 => {
                rec.force_drop = Some(ForceDropCause::CancelledBeforeStart);
                return PollDecision::Drop(ForceDropCause::CancelledBeforeStart);
            }
            _ => {}
        }
        rec.polls = rec.polls.saturating_add(1);
        rec.last_polled = now;
        // `poll_quota` is the remaining allowance (u32::MAX = unlimited).
        let exhausted = rec.budget.poll_quota == 0;
        if exhausted && rec.state == TaskState::Cancelling {
            rec.force_drop = Some(ForceDropCause::CleanupPollsExhausted);
            return PollDecision::Drop(ForceDropCause::CleanupPollsExhausted);
        }
        if rec.budget.poll_quota != u32::MAX && !exhausted {
            rec.budget.poll_quota -= 1;
        }
        let over_quota = exhausted && !rec.state.is_cancel_requested();
        self.emit(TraceKind::Poll { task: t });
        let rec = self.task_mut(t).expect("looked up above");
        let past_deadline = rec.budget.is_past_deadline(now);
        if over_quota {
            self.request_cancel(
                t,
                CancelReason::poll_quota().with_message("poll quota exhausted"),
                now,
            );
        }
        if past_deadline {
            self.request_cancel(
                t,
                CancelReason::deadline().with_message("budget deadline passed"),
                now,
            );
        }
        // Rule A1: polls may skip the kernel while nothing is pending. Poll
        // quotas need counting and the lab's trace needs every poll; deadlines
        // and cancellations raise attention themselves.
        let fast_next = self
            .task(t)
            .is_some_and(|rec| self.polls_may_skip(rec, TaskState::Running));
        PollDecision::Poll { fast_next }
    }

    /// Records the end of task `t` and returns how it ended. `handle_alive`
    /// says whether a `TaskHandle` may still join it (decides whether a panic
    /// is escalated now or left for the joiner).
    pub(crate) fn complete_task(
        &mut self,
        t: TaskId,
        end: TaskEnd,
        handle_alive: bool,
        now: Time,
    ) -> (TaskOutcome, Vec<LeakReport>) {
        let Some(rec) = self.task_mut(t) else {
            return (TaskOutcome::Cancelled(Arc::default()), Vec::new());
        };
        if rec.state == TaskState::Created {
            // Its only polls skipped the kernel (A1; an unpolled task is
            // always cancel-requested before it completes).
            rec.transition(t, TaskState::Running);
        }
        // Exact stamps for what this completion may report or cancel: a
        // forced drop, leaked obligations, a panic that fails the region.
        let reports = rec.force_drop.is_some()
            || !rec.obligations.is_empty()
            || matches!(end, TaskEnd::Panicked(_));
        let now = if reports { self.exact_now(now) } else { now };
        let rec = self.task(t).expect("looked up above");
        let region = rec.region;
        let kind = rec.kind;
        let mut outcome = match &end {
            TaskEnd::Panicked(p) => TaskOutcome::Panicked(p.clone()),
            TaskEnd::Dropped => TaskOutcome::Cancelled(rec.cancel.clone().unwrap_or_default()),
            TaskEnd::Returned if rec.state == TaskState::Cancelling => {
                TaskOutcome::Cancelled(rec.cancel.clone().unwrap_or_default())
            }
            TaskEnd::Returned => TaskOutcome::Ok,
        };
        if let (TaskEnd::Dropped, Some(cause)) = (&end, rec.force_drop) {
            let reason = rec.cancel.as_deref().cloned().unwrap_or_default();
            self.stats.forced_drop_count += 1;
            self.emit(TraceKind::ForceDrop { task: t, cause });
            if self.stats.forced_drops.len() < KernelStats::MAX_REPORTS {
                self.stats.forced_drops.push(ForcedDrop {
                    task: t,
                    region,
                    cause,
                    reason,
                    at: now,
                });
            }
        }
        let rec = self.task_mut(t).expect("looked up above");
        let was_cancelled = rec.state.is_cancel_requested();
        rec.transition(t, TaskState::Finalizing);
        if was_cancelled {
            self.gauge_sub();
        }
        let rec = self.task_mut(t).expect("looked up above");
        let held = std::mem::take(&mut rec.obligations);
        let timers = [rec.grace_timer.take(), rec.deadline_timer.take()];
        for key in timers.into_iter().flatten() {
            self.timers.cancel(key);
        }
        let leaks = self.settle_obligations(held, now);
        // K5: a leak fails the task also when it was cancelled (a panic
        // outcome is kept as it is).
        if !leaks.is_empty()
            && self.config.leak_policy == LeakPolicy::Panic
            && !matches!(outcome, TaskOutcome::Panicked(_))
        {
            let msg = leaks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            outcome = TaskOutcome::Panicked(PanicPayload::new(msg));
        }
        if kind != TaskKind::Finalizer {
            self.unlink_task(region, t);
        }
        let rec = self.task_mut(t).expect("looked up above");
        rec.transition(t, TaskState::Completed);
        let (i, g) = task_key(t);
        self.tasks.discard(i, g);
        self.stats.tasks_completed += 1;
        let completion = match &outcome {
            TaskOutcome::Ok => CompletionKind::Ok,
            TaskOutcome::Cancelled(r) => CompletionKind::Cancelled(r.kind),
            TaskOutcome::Panicked(_) => CompletionKind::Panicked,
        };
        self.emit(TraceKind::Complete {
            task: t,
            outcome: completion,
        });

        match kind {
            TaskKind::RootBody => {
                let body_end = match &outcome {
                    TaskOutcome::Ok => BodyEnd::Ok,
                    TaskOutcome::Cancelled(_) => BodyEnd::Err,
                    TaskOutcome::Panicked(p) => BodyEnd::Panicked(p.clone()),
                };
                self.region_body_done(region, body_end, now);
            }
            TaskKind::Finalizer => {
                if let Some(r) = self.region_mut(region) {
                    r.finalizer_task = None;
                    r.finalizers_running = false;
                }
            }
            TaskKind::Spawned => {
                if let TaskOutcome::Panicked(p) = &outcome {
                    if handle_alive {
                        if let Some(r) = self.region_mut(region) {
                            r.pending_panics.push((t, p.clone()));
                        }
                    } else {
                        self.escalate_panic(region, t, p.clone(), now);
                    }
                }
            }
        }
        self.advance_region(region, now);
        (outcome, leaks)
    }

    /// A child panic nobody will join: fail the region fast.
    fn escalate_panic(&mut self, r: RegionId, t: TaskId, payload: PanicPayload, now: Time) {
        let Some(rec) = self.region_mut(r) else {
            return;
        };
        if rec.state == RegionState::Closed {
            return;
        }
        let msg = format!("task {t} panicked: {}", payload.message());
        rec.report.panic.get_or_insert(payload);
        let reason = CancelReason::fail_fast()
            .with_message(msg)
            .with_origin(Some(r), Some(t));
        self.cancel_region(r, reason, now);
    }

    /// A handle joined task `t` and received its panic: it is handled.
    pub(crate) fn panic_joined(&mut self, r: RegionId, t: TaskId) {
        if let Some(rec) = self.region_mut(r) {
            rec.pending_panics.retain(|(x, _)| *x != t);
        }
    }

    /// The handle of panicked task `t` was dropped without joining it.
    pub(crate) fn panic_handle_dropped(&mut self, r: RegionId, t: TaskId, now: Time) {
        let Some(rec) = self.region_mut(r) else {
            return;
        };
        let Some(pos) = rec.pending_panics.iter().position(|(x, _)| *x == t) else {
            return;
        };
        let (_, payload) = rec.pending_panics.remove(pos);
        self.escalate_panic(r, t, payload, now);
    }

    /// Completed task `t`'s unread value panicked when dropped (rule J4 in
    /// `exec::join`): fail its region like an unjoined panic. Returns
    /// false if the region has closed already (nothing to fail).
    pub(crate) fn late_task_panic(
        &mut self,
        r: RegionId,
        t: TaskId,
        payload: PanicPayload,
        now: Time,
    ) -> bool {
        let open = self
            .region(r)
            .is_some_and(|rec| rec.state != RegionState::Closed);
        if open {
            self.escalate_panic(r, t, payload, now);
        }
        open
    }

    /// Rule A1: make task `t`'s next poll go through `before_poll`.
    fn raise_attention(&self, t: TaskId) {
        if let Some(a) = self.task(t).and_then(|rec| rec.attention.as_ref()) {
            a.request_attention();
        }
    }

    // ----- cancellation --------------------------------------------------

    #[allow(clippy::unused_self)]
    fn stamp(
        &self,
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

    fn grace_for(&self, kind: CancelKind) -> Duration {
        self.config
            .cleanup_grace
            .unwrap_or_else(|| kind.grace_period())
    }

    /// Requests cancellation of task `t` (K2, K3). Returns whether anything
    /// changed.
    pub(crate) fn request_cancel(&mut self, t: TaskId, reason: CancelReason, now: Time) -> bool {
        self.request_cancel_shared(t, Arc::new(reason), now, None)
    }

    /// [`request_cancel`](Self::request_cancel) with a reason shared by many
    /// tasks (a region cancel stores one `Arc` per task, not a deep copy).
    fn request_cancel_shared(
        &mut self,
        t: TaskId,
        mut reason: Arc<CancelReason>,
        now: Time,
        region_grace: Option<Time>,
    ) -> bool {
        let Some(rec) = self.task(t) else {
            return false;
        };
        if rec.kind == TaskKind::Finalizer || rec.state >= TaskState::Finalizing {
            return false;
        }
        let now = self.exact_now(now);
        let rec = self.task(t).expect("looked up above");
        if needs_stamp(&reason) {
            let region = rec.region;
            let stamped = self.stamp((*reason).clone(), now, region, Some(t));
            reason = Arc::new(stamped);
        }
        let grace = self.grace_for(reason.kind);
        let rec = self.task_mut(t).expect("looked up above");
        let first = !rec.state.is_cancel_requested();
        let changed = match &mut rec.cancel {
            Some(existing) if reason.outranks(existing) => {
                *existing = reason;
                true
            }
            Some(_) => false,
            None => {
                rec.cancel = Some(reason);
                true
            }
        };
        if !first && !changed {
            return false;
        }
        if first {
            rec.transition(t, TaskState::CancelRequested);
            self.gauge_add();
        }
        let rec = self.task_mut(t).expect("looked up above");
        let effective = rec.cancel.clone().expect("set above");
        let stored_kind = effective.kind;
        // K4: the grace period only ever shortens; a region cancel's tasks
        // get at most the region's shared deadline.
        let deadline = region_grace.map_or(now + grace, |shared| shared.min(now + grace));
        let old_timer = if rec.grace_deadline.is_none_or(|d| deadline < d) {
            rec.grace_deadline = Some(deadline);
            Some(rec.grace_timer.take())
        } else {
            None
        };
        let waker = rec.waker.clone();
        let owned = (!rec.owned_regions.is_empty()).then(|| rec.owned_regions.clone());
        self.actions.wakes.push(waker);
        self.emit(TraceKind::CancelRequest {
            task: t,
            kind: stored_kind,
        });
        // A1: a started task with an unlimited poll quota needs nothing
        // from `before_poll` until it acknowledges (the cancel hint alone
        // routes an unstarted one through it, to be dropped unpolled).
        let counted = self
            .task(t)
            .is_some_and(|rec| rec.budget.poll_quota != u32::MAX);
        if counted || self.trace.is_some() {
            self.raise_attention(t);
        }
        if let Some(a) = self.task(t).and_then(|rec| rec.attention.as_ref()) {
            a.cancel_requested(stored_kind.severity());
        }
        if let Some(old) = old_timer {
            if let Some(key) = old {
                self.timers.cancel(key);
            }
            // K4: the region's shared timer covers this deadline, if it is
            // the same; otherwise the task gets its own.
            if region_grace != Some(deadline) {
                let key = self.arm_timer(deadline, TimerEvent::Grace(t));
                self.task_mut(t).expect("still live").grace_timer = Some(key);
            }
        }
        if let Some(owned) = owned {
            let child_reason = effective.to_parent_cancelled();
            for r in owned {
                self.cancel_region(r, child_reason.clone(), now);
            }
        }
        true
    }

    /// Cancels region `r`: its tasks get `reason`, its child regions get
    /// `ParentCancelled` caused by it (K2).
    pub(crate) fn cancel_region(&mut self, r: RegionId, reason: CancelReason, now: Time) {
        let Some(rec) = self.region(r) else { return };
        if rec.state == RegionState::Closed {
            return;
        }
        let now = self.exact_now(now);
        let reason = self.stamp(reason, now, r, None);
        let rec = self.region_mut(r).expect("looked up above");
        let (changed, first) = match &mut rec.cancel {
            Some(existing) => (existing.strengthen(&reason), false),
            None => {
                rec.cancel = Some(reason);
                (true, true)
            }
        };
        if first {
            self.gauge_add();
        }
        if !changed {
            return;
        }
        let rec = self.region_mut(r).expect("looked up above");
        let effective = rec.cancel.clone().expect("set above");
        let body_done = rec.body_done;
        self.emit(TraceKind::RegionCancel {
            region: r,
            kind: effective.kind,
        });
        let rec = self.region_mut(r).expect("looked up above");
        if !body_done {
            match &mut rec.report.cancelled_during_body {
                Some(existing) => {
                    existing.strengthen(&effective);
                }
                slot => *slot = Some(effective.clone()),
            }
        }
        let owner = if rec.body_done { None } else { rec.owner };
        let children = rec.children.clone();
        // The body runs in the owner task; wake it so a parked wait sees this.
        if let Some(w) = owner.and_then(|o| self.task(o)).map(|o| o.waker.clone()) {
            self.actions.wakes.push(w);
        }
        let child_reason = effective.to_parent_cancelled();
        let tasks = self.region_tasks(r);
        // One grace timer for the whole batch (K4): every task cancelled
        // here shares the region's grace deadline, which only ever moves
        // earlier (a stronger reason arriving later may shorten it, never
        // lengthen it).
        let grace = if tasks.is_empty() {
            None
        } else {
            let proposed = now + self.grace_for(effective.kind);
            let rec = self.region_mut(r).expect("looked up above");
            match rec.grace_deadline {
                Some(current) if current <= proposed => Some(current),
                _ => {
                    rec.grace_deadline = Some(proposed);
                    if let Some(key) = rec.grace_timer.take() {
                        self.timers.cancel(key);
                    }
                    let key = self.arm_timer(proposed, TimerEvent::RegionGrace(r));
                    self.region_mut(r).expect("looked up above").grace_timer = Some(key);
                    Some(proposed)
                }
            }
        };
        let shared = Arc::new(effective);
        for t in tasks {
            self.request_cancel_shared(t, shared.clone(), now, grace);
        }
        for c in children {
            self.cancel_region(c, child_reason.clone(), now);
        }
    }

    /// What a checkpoint on a `Cx` of task `t` in region `r` observes. An
    /// observation of the task's own cancellation is its acknowledgement:
    /// the task moves to `Cancelling` under the reason's cleanup budget.
    /// The reason is shared: the caller copies it after releasing the lock.
    pub(crate) fn observe_cancel(
        &mut self,
        t: TaskId,
        r: RegionId,
        now: Time,
    ) -> Option<Arc<CancelReason>> {
        if self
            .region(r)
            .is_some_and(|rec| rec.state == RegionState::Finalizing)
        {
            return None; // K6: finalizers run masked.
        }
        let rec = self.task(t)?;
        if rec.mask_depth > 0 {
            return None;
        }
        if rec.budget.is_past_deadline(now) && !rec.state.is_cancel_requested() {
            self.request_cancel(
                t,
                CancelReason::deadline().with_message("budget deadline passed"),
                now,
            );
        }
        if self
            .region(r)
            .is_some_and(|rec| rec.budget.is_past_deadline(now))
        {
            self.region_deadlines_due(r, now);
        }
        let rec = self.task_mut(t).expect("looked up above");
        if rec.state == TaskState::CancelRequested {
            rec.transition(t, TaskState::Cancelling);
            let reason = rec
                .cancel
                .clone()
                .expect("cancel requested implies a reason");
            rec.budget = cleanup_budget_on_ack(rec.budget, reason.cleanup_budget());
            self.emit(TraceKind::CancelAck {
                task: t,
                kind: reason.kind,
            });
            // A1: cleanup polls are counted against the cleanup budget.
            self.raise_attention(t);
            return Some(reason);
        }
        if rec.state == TaskState::Cancelling {
            return rec.cancel.clone();
        }
        self.region(r)
            .and_then(|rec| rec.cancel.clone())
            .map(Arc::new)
    }

    /// The cancellation visible to task `t` in region `r`, ignoring masks and
    /// without acknowledging it.
    pub(crate) fn cancel_requested(&self, t: TaskId, r: RegionId) -> Option<CancelReason> {
        let task_reason = self.task(t).and_then(|rec| rec.cancel.as_deref().cloned());
        let region_reason = self.region(r).and_then(|rec| rec.cancel.clone());
        match (task_reason, region_reason) {
            (Some(mut a), Some(b)) => {
                a.strengthen(b);
                Some(a)
            }
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn mask_enter(&mut self, t: TaskId) {
        if let Some(rec) = self.task_mut(t) {
            assert!(
                rec.mask_depth < MAX_MASK_DEPTH,
                "task {t}: Cx::masked nested deeper than {MAX_MASK_DEPTH} levels (rule: mask nesting is bounded)"
            );
            rec.mask_depth += 1;
        }
    }

    pub(crate) fn mask_exit(&mut self, t: TaskId) {
        if let Some(rec) = self.task_mut(t) {
            rec.mask_depth = rec.mask_depth.saturating_sub(1);
        }
    }

    pub(crate) fn task_budget(&self, t: TaskId) -> Budget {
        self.task(t).map_or(Budget::INFINITE, |rec| rec.budget)
    }

    /// Charges `cost` to task `t`; past its cost quota it is cancelled with
    /// `CostBudget`. Returns whether the quota still holds.
    pub(crate) fn charge_cost(&mut self, t: TaskId, cost: u64, now: Time) -> bool {
        let Some(rec) = self.task_mut(t) else {
            return true;
        };
        rec.cost = rec.cost.saturating_add(cost);
        let over = rec.budget.cost_quota.is_some_and(|q| rec.cost > q);
        if over {
            self.request_cancel(
                t,
                CancelReason::cost_budget().with_message("cost quota exhausted"),
                now,
            );
        }
        !over
    }

    // ----- obligations ---------------------------------------------------

    /// Reserves an obligation by task `t` in region `r`. A task-held one
    /// (`owned == false`) is `t`'s until it is resolved or transferred; an
    /// owned one (rule 5 of `obligation.rs`: an owned permit, which may move
    /// to any task) is held by region `r` from the start, so no task's
    /// completion counts it, and `r`'s close reports it if still pending.
    pub(crate) fn reserve_obligation(
        &mut self,
        t: TaskId,
        r: RegionId,
        kind: &'static str,
        owned: bool,
        now: Time,
    ) -> Result<ObligationId, SpawnError> {
        let region = self.region(r).ok_or(SpawnError::RegionClosed(r))?;
        if region.state == RegionState::Closed {
            return Err(SpawnError::RegionClosed(r));
        }
        let (i, g) = self.obligations.insert(ObligationRecord {
            kind,
            holder: t,
            region: r,
            reserved_at: now,
            owned,
        });
        let o = ObligationId::from_parts(i, g);
        self.region_mut(r)
            .expect("checked above")
            .pending_obligations += 1;
        self.emit(TraceKind::ObligationReserve {
            obligation: o,
            task: t,
            region: r,
        });
        if owned {
            // Traced as handed to the region at once (the oracles follow
            // holders through transfers).
            self.emit(TraceKind::ObligationTransfer {
                obligation: o,
                from: Some(t),
                to: None,
                from_region: r,
                region: r,
            });
        } else if let Some(rec) = self.task_mut(t) {
            rec.obligations.push(o);
        }
        Ok(o)
    }

    /// Resolves obligation `o` as committed or aborted. Returns false if it
    /// was no longer pending (already reported as leaked).
    pub(crate) fn resolve_obligation(&mut self, o: ObligationId, state: ObligationState) -> bool {
        debug_assert!(matches!(
            state,
            ObligationState::Committed | ObligationState::Aborted
        ));
        let Some(rec) = self.obligations.remove(o.index(), o.generation()) else {
            return false;
        };
        if let Some(t) = self.task_mut(rec.holder) {
            t.obligations.retain(|&x| x != o);
        }
        if let Some(r) = self.region_mut(rec.region) {
            r.pending_obligations -= 1;
        }
        match state {
            ObligationState::Committed => {
                self.stats.obligations_committed += 1;
                self.emit(TraceKind::ObligationCommit { obligation: o });
            }
            _ => {
                self.stats.obligations_aborted += 1;
                self.emit(TraceKind::ObligationAbort { obligation: o });
            }
        }
        true
    }

    /// Hands obligation `o` to task `t` in region `r` (rule 4 of
    /// `obligation.rs`): from now on `t`, not the reserver, must resolve it.
    /// Returns false if `o` is no longer pending or `t`/`r` are gone.
    pub(crate) fn transfer_obligation(&mut self, o: ObligationId, t: TaskId, r: RegionId) -> bool {
        if self.task(t).is_none()
            || self
                .region(r)
                .is_none_or(|rec| rec.state == RegionState::Closed)
        {
            return false;
        }
        let Some(rec) = self.obligations.get_mut(o.index(), o.generation()) else {
            return false;
        };
        let (old_task, old_region, was_owned) = (rec.holder, rec.region, rec.owned);
        rec.holder = t;
        rec.region = r;
        rec.owned = false;
        // A region-held (owned) obligation is in no task's list.
        let from = if was_owned {
            None
        } else {
            self.task_mut(old_task).map(|old| {
                old.obligations.retain(|&x| x != o);
                old_task
            })
        };
        if let Some(old) = self.region_mut(old_region) {
            old.pending_obligations -= 1;
        }
        self.task_mut(t).expect("checked above").obligations.push(o);
        self.region_mut(r)
            .expect("checked above")
            .pending_obligations += 1;
        self.emit(TraceKind::ObligationTransfer {
            obligation: o,
            from,
            to: Some(t),
            from_region: old_region,
            region: r,
        });
        true
    }

    pub(crate) fn obligation_state(&self, o: ObligationId) -> Option<ObligationState> {
        self.obligations
            .get(o.index(), o.generation())
            .map(|_| ObligationState::Reserved)
    }

    /// K5: a finished task's leftovers are leaks, whatever its outcome. Its
    /// future (and every permit it still owned) was dropped before it
    /// completed, and dropping a permit resolves it; so whatever is still
    /// pending here was forgotten or escaped the task (stashed, returned),
    /// also when the task was cancelled. Owned obligations are not in the
    /// list: their region holds them.
    fn settle_obligations(&mut self, held: Vec<ObligationId>, now: Time) -> Vec<LeakReport> {
        held.into_iter()
            .filter_map(|o| self.leak_obligation(o, now))
            .collect()
    }

    fn leak_obligation(&mut self, o: ObligationId, now: Time) -> Option<LeakReport> {
        let rec = self.obligations.remove(o.index(), o.generation())?;
        let now = self.exact_now(now);
        if let Some(r) = self.region_mut(rec.region) {
            r.pending_obligations -= 1;
        }
        if let Some(t) = self.task_mut(rec.holder) {
            t.obligations.retain(|&x| x != o);
        }
        let report = LeakReport {
            obligation: o,
            kind: rec.kind,
            holder: rec.holder,
            region: rec.region,
            reserved_at: rec.reserved_at,
            detected_at: now,
        };
        self.stats.obligations_leaked += 1;
        self.emit(TraceKind::ObligationLeak {
            obligation: o,
            task: rec.holder,
        });
        if self.stats.leaks.len() < KernelStats::MAX_REPORTS {
            self.stats.leaks.push(report.clone());
        }
        tracing::error!(target: "asupersync::obligation", "{report}");
        Some(report)
    }

    /// K5 at close: anything still pending in `r` is a leak.
    fn leak_region_obligations(&mut self, r: RegionId, now: Time) {
        if self
            .region(r)
            .is_none_or(|rec| rec.pending_obligations == 0)
        {
            return;
        }
        let ids: Vec<ObligationId> = self
            .obligations
            .iter()
            .filter(|(_, rec)| rec.region == r)
            .map(|((i, g), _)| ObligationId::from_parts(i, g))
            .collect();
        let mut messages = Vec::new();
        for o in ids {
            if let Some(report) = self.leak_obligation(o, now) {
                messages.push(report.to_string());
            }
        }
        if self.config.leak_policy == LeakPolicy::Panic
            && !messages.is_empty()
            && let Some(rec) = self.region_mut(r)
        {
            rec.report
                .panic
                .get_or_insert(PanicPayload::new(messages.join("; ")));
        }
    }

    // ----- timers --------------------------------------------------------

    pub(crate) fn insert_timer(&mut self, deadline: Time, waker: Waker) -> TimerKey {
        self.arm_timer(deadline, TimerEvent::Wake(waker))
    }

    /// Points timer `key` at `waker`; false if the timer is gone (fired).
    pub(crate) fn update_timer_waker(&mut self, key: TimerKey, waker: &Waker) -> bool {
        match self.timers.get_mut(key) {
            Some(TimerEvent::Wake(w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            _ => false,
        }
    }

    pub(crate) fn cancel_timer(&mut self, key: TimerKey) {
        self.timers.cancel(key);
    }

    /// K4: task `t`'s grace period is over if its deadline passed: it is
    /// force-dropped at its next poll (unless it is finishing already or
    /// runs uninterruptible code).
    fn grace_expired(&mut self, t: TaskId, now: Time) {
        let Some(rec) = self.task_mut(t) else { return };
        if rec.grace_deadline.is_some_and(|d| d <= now)
            && rec.state.is_cancel_requested()
            && rec.force_drop.is_none()
            && !rec.uninterruptible
        {
            rec.force_drop = Some(ForceDropCause::GraceExpired);
            if let Some(a) = &rec.attention {
                a.request_attention();
            }
            let waker = rec.waker.clone();
            self.actions.wakes.push(waker);
        }
    }

    /// Fires every timer due at `now`.
    pub(crate) fn fire_timers(&mut self, now: Time) -> usize {
        let mut fired = Vec::new();
        self.timers.advance(now, &mut fired);
        let n = fired.len();
        if n > 0 {
            self.emit(TraceKind::TimerFire { count: n });
        }
        for (_, event) in fired {
            match event {
                TimerEvent::Wake(w) => self.actions.wakes.push(w),
                TimerEvent::Grace(t) => {
                    if let Some(rec) = self.task_mut(t) {
                        rec.grace_timer = None;
                    }
                    self.grace_expired(t, now);
                }
                TimerEvent::RegionGrace(r) => {
                    if let Some(rec) = self.region_mut(r) {
                        rec.grace_timer = None;
                    }
                    for t in self.region_tasks(r) {
                        self.grace_expired(t, now);
                    }
                }
                TimerEvent::RegionDeadline(r) => {
                    if let Some(rec) = self.region_mut(r) {
                        rec.deadline_timer = None;
                    }
                    self.region_deadline_passed(r, now);
                }
                TimerEvent::Deadline(t) => {
                    if let Some(rec) = self.task_mut(t) {
                        rec.deadline_timer = None;
                    }
                    self.request_cancel(
                        t,
                        CancelReason::deadline().with_message("budget deadline passed"),
                        now,
                    );
                }
            }
        }
        // K8: a fresh lower bound (O(levels); cancelled timers and the
        // wheel's slot granularity only ever make it early). When the cursor
        // already sits in the slot of a pending deadline the bound is `now`,
        // which would make an idle driver spin until it; the exact deadline
        // (a scan of that one small slot) lets it sleep instead.
        let next = match self.timers.next_deadline_bound() {
            Some(bound) if bound <= now => self.timers.next_deadline(),
            other => other,
        }
        .map_or(u64::MAX, Time::as_nanos);
        self.timer_hint
            .store(next, std::sync::atomic::Ordering::Release);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn ms(n: u64) -> Time {
        Time::from_nanos(n * 1_000_000)
    }

    fn spawn(k: &mut Kernel, r: RegionId) -> TaskId {
        k.create_task(
            r,
            TaskKind::Spawned,
            Waker::noop().clone(),
            Budget::INFINITE,
            Time::ZERO,
        )
        .expect("open region")
    }

    /// K4 with the region's shared grace timer: a region cancel arms one
    /// timer for all its tasks, shortens a longer individual grace period,
    /// leaves a shorter one alone, and force-drops exactly the tasks whose
    /// deadline passed.
    #[test]
    fn a_region_cancel_shares_one_grace_timer_and_grace_only_shortens() {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let r = k.create_root_region(Budget::INFINITE);
        let (long, short, plain) = (spawn(&mut k, r), spawn(&mut k, r), spawn(&mut k, r));
        // `long`: a User cancel (10 s grace) before the region's FailFast (1 s).
        k.request_cancel(long, CancelReason::user("first"), ms(0));
        // `short`: a Shutdown cancel (200 ms grace) that the region must keep.
        k.request_cancel(short, CancelReason::shutdown(), ms(500));
        assert_eq!(k.pending_timer_count(), 2);
        k.cancel_region(r, CancelReason::fail_fast(), ms(1_000));
        let deadline = |k: &Kernel, t| k.task(t).unwrap().grace_deadline;
        assert_eq!(
            deadline(&k, long),
            Some(ms(2_000)),
            "shortened to the region's"
        );
        assert_eq!(deadline(&k, plain), Some(ms(2_000)));
        assert_eq!(
            deadline(&k, short),
            Some(ms(700)),
            "a shorter grace is kept"
        );
        // `short`'s own timer and the region's: `long`'s timer is gone.
        assert_eq!(k.pending_timer_count(), 2);
        let dropped = |k: &Kernel, t| k.task(t).unwrap().force_drop;
        k.fire_timers(ms(700));
        assert_eq!(dropped(&k, short), Some(ForceDropCause::GraceExpired));
        assert_eq!(dropped(&k, long), None);
        k.fire_timers(ms(1_999));
        assert_eq!(dropped(&k, plain), None);
        k.fire_timers(ms(2_000));
        assert_eq!(dropped(&k, long), Some(ForceDropCause::GraceExpired));
        assert_eq!(dropped(&k, plain), Some(ForceDropCause::GraceExpired));
        assert_eq!(k.pending_timer_count(), 0);
    }

    /// K4 for the region's shared grace deadline: a stronger reason arriving
    /// later (here the owner aborted, which re-cancels the region with
    /// `ParentCancelled`) may shorten it but never lengthen it, with the
    /// default per-kind grace periods and with a uniform one.
    #[test]
    fn a_region_grace_deadline_only_shortens_when_the_cancel_is_strengthened() {
        for (uniform, later_grace) in [(None, 500), (Some(Duration::from_secs(1)), 1_000)] {
            let config = KernelConfig {
                cleanup_grace: uniform,
                ..KernelConfig::default()
            };
            let mut k = Kernel::new(config, Time::ZERO);
            let root = k.create_root_region(Budget::INFINITE);
            let owner = spawn(&mut k, root);
            let r = k
                .create_child_region(root, owner, Budget::INFINITE)
                .expect("open parent");
            let stubborn = spawn(&mut k, r);
            // The body fails at 1 ms: FailFast, 1 s of grace.
            k.region_body_done(r, BodyEnd::Err, ms(1));
            let first = ms(1) + Duration::from_secs(1);
            assert_eq!(k.region(r).unwrap().grace_deadline, Some(first));
            assert_eq!(k.task(stubborn).unwrap().grace_deadline, Some(first));
            // The owner is aborted at 900 ms: the region's reason becomes
            // ParentCancelled, whose own grace would end later.
            k.request_cancel(owner, CancelReason::user("abort"), ms(900));
            let reason = k.region(r).unwrap().cancel.clone().unwrap();
            assert_eq!(reason.kind, CancelKind::ParentCancelled);
            assert!(ms(900 + later_grace) > first);
            assert_eq!(
                k.region(r).unwrap().grace_deadline,
                Some(first),
                "lengthened"
            );
            assert_eq!(k.task(stubborn).unwrap().grace_deadline, Some(first));
            let dropped = |k: &Kernel| k.task(stubborn).unwrap().force_drop;
            k.fire_timers(Time::from_nanos(first.as_nanos() - 1));
            assert_eq!(dropped(&k), None, "dropped before its grace ended");
            k.fire_timers(first);
            assert_eq!(
                dropped(&k),
                Some(ForceDropCause::GraceExpired),
                "{uniform:?}"
            );
        }
        // A stronger reason with a shorter grace does shorten it.
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let r = k.create_root_region(Budget::INFINITE);
        let t = spawn(&mut k, r);
        k.cancel_region(r, CancelReason::fail_fast(), ms(0));
        k.cancel_region(r, CancelReason::shutdown(), ms(100));
        assert_eq!(k.region(r).unwrap().grace_deadline, Some(ms(300)));
        assert_eq!(k.task(t).unwrap().grace_deadline, Some(ms(300)));
        assert_eq!(k.pending_timer_count(), 1, "the old region timer is gone");
        k.fire_timers(ms(300));
        assert_eq!(
            k.task(t).unwrap().force_drop,
            Some(ForceDropCause::GraceExpired)
        );
    }

    /// K9: only a region whose deadline is tighter than its parent's gets a
    /// deadline timer; it cancels the region with `Deadline` and cascades;
    /// a checkpoint that finds the deadline passed first fires it itself.
    #[test]
    fn a_region_deadline_timer_is_armed_only_when_tighter_and_cancels_the_region() {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let root = k.create_root_region(Budget::INFINITE);
        let owner = spawn(&mut k, root);
        let at = |n| Budget::INFINITE.with_deadline(ms(n));
        let outer = k.create_child_region(root, owner, at(30)).unwrap();
        let same = k.create_child_region(outer, owner, at(50)).unwrap();
        let inner = k.create_child_region(outer, owner, at(10)).unwrap();
        let timer = |k: &Kernel, r| k.region(r).unwrap().deadline_timer.is_some();
        assert!(timer(&k, outer) && timer(&k, inner));
        assert!(
            !timer(&k, same),
            "an inherited deadline needs no timer of its own"
        );
        assert_eq!(k.region(same).unwrap().budget.deadline, Some(ms(30)));
        let kind = |k: &Kernel, r| k.region(r).unwrap().cancel.as_ref().map(|c| c.kind);
        k.fire_timers(ms(10));
        assert_eq!(kind(&k, inner), Some(CancelKind::Deadline));
        assert_eq!(kind(&k, outer), None);
        // A checkpoint in `same` at 30 ms, before any timer fired.
        let seen = k.observe_cancel(owner, same, ms(30)).map(|r| r.kind);
        assert_eq!(seen, Some(CancelKind::ParentCancelled));
        assert_eq!(kind(&k, outer), Some(CancelKind::Deadline));
        assert!(!timer(&k, outer), "fired early, so disarmed");
        assert_eq!(k.pending_timer_count(), 0);
        let owner_state = k.task_state(owner).unwrap();
        assert!(
            !owner_state.is_cancel_requested(),
            "the owner is not cancelled"
        );
    }

    /// K8: the hint never passes the next deadline, and once the wheel's
    /// cursor is inside the deadline's millisecond it is the exact deadline
    /// (not `now`, which would keep an idle driver from sleeping).
    #[test]
    fn the_timer_hint_is_early_but_exact_inside_the_deadlines_millisecond() {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let hint = k.timer_hint();
        assert_eq!(hint.load(Ordering::Acquire), u64::MAX, "no timer: no hint");
        let deadline = ms(20) + Duration::from_micros(500);
        k.insert_timer(deadline, Waker::noop().clone());
        assert_eq!(hint.load(Ordering::Acquire), deadline.as_nanos());
        k.fire_timers(ms(5));
        let early = hint.load(Ordering::Acquire);
        assert!(early <= deadline.as_nanos(), "the hint passed the deadline");
        k.fire_timers(ms(20) + Duration::from_micros(100));
        assert_eq!(hint.load(Ordering::Acquire), deadline.as_nanos());
        assert_eq!(k.fire_timers(deadline), 1);
        assert_eq!(hint.load(Ordering::Acquire), u64::MAX);
    }
}
