//! The [`Cx`] type and the methods that need only the core below it (time,
//! cancellation, masking, finalizers, randomness, tracing). Spawning
//! (`exec::spawn`) and regions (`region`) add their methods from above.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::caps::Capabilities;
use crate::exec::core::Core;
use crate::kernel::{Finalizer, LightTasks};
use crate::types::cancel::Cancelled;
use crate::types::{Budget, CancelReason, RegionId, TaskId, Time};

/// `Cx::deadline`'s "no deadline": the latest instant, which no clock
/// reaches.
const NO_DEADLINE: Time = Time::from_nanos(u64::MAX);

/// The capability context of a task: the only route to runtime effects.
#[derive(Clone)]
pub struct Cx {
    /// Rule CXH1: what this `Cx` reaches the runtime through: the core and
    /// the light-task set its spawns join (see [`CxHome`]).
    home: Arc<dyn CxHome>,
    task: TaskId,
    region: RegionId,
    caps: Capabilities,
    /// This is the `Cx` a spawned task was given (or a clone): its region
    /// is the task's own, whose cancellation reaches the task itself, so
    /// the task's cancel hint alone says whether there is anything to
    /// observe (rule A2's per-task test).
    own_region: bool,
}

/// A finalizer could not be registered because its region already closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeferError {
    region: RegionId,
}

impl fmt::Display for DeferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot register a finalizer: region {} is already closed",
            self.region
        )
    }
}

impl std::error::Error for DeferError {}

/// What a [`Cx`] reaches the runtime through (rules CXH1, CXH2): the core,
/// and the light-task set of its region if that region takes light spawns
/// (rules LT1–LT6 in `kernel::light`: spawns through the `Cx` then skip
/// the kernel lock).
///
/// - CXH1: a `Cx` holds one `Arc` to its home, so cloning or dropping one
///   (a sleep keeps a clone) writes only the home's count.
/// - CXH2: a light task's own `Cx` has the task's cell as its home (the
///   cell holds the core and its region's set anyway), so spawning it and
///   every clone of its `Cx` write the cell's count, a line the task's
///   worker has to itself, not the core's and the set's, which every
///   worker shares. The cycle cell → future → `Cx` → cell ends when the
///   future is dropped (completion, forced drop); any other `Cx` (a
///   region body's, a root task's, a registered task's) has a
///   [`SharedHome`] of its own.
pub(crate) trait CxHome: Send + Sync + 'static {
    fn core(&self) -> &Arc<Core>;
    fn light(&self) -> Option<&Arc<LightTasks>>;
    /// The earliest budget deadline that bounds a `Cx` of this home: its
    /// task's (its budget met with its region's, fixed at spawn), met with
    /// the deadline of every region body it runs in. Rule A2's exception:
    /// a `Cx` with a deadline reads the clock on the lock-free path.
    /// [`NO_DEADLINE`] (the latest instant) stands for none. A light task
    /// has none (LT4: no budget), so its cell keeps no deadline.
    fn deadline(&self) -> Time {
        NO_DEADLINE
    }
}

/// A home made for a `Cx` of its own (CXH2).
pub(crate) struct SharedHome {
    core: Arc<Core>,
    light: Option<Arc<LightTasks>>,
    deadline: Time,
}

impl SharedHome {
    pub(crate) fn arc(
        core: Arc<Core>,
        light: Option<Arc<LightTasks>>,
        deadline: Option<Time>,
    ) -> Arc<dyn CxHome> {
        let deadline = deadline.unwrap_or(NO_DEADLINE);
        Arc::new(Self {
            core,
            light,
            deadline,
        })
    }
}

impl CxHome for SharedHome {
    fn core(&self) -> &Arc<Core> {
        &self.core
    }

    fn light(&self) -> Option<&Arc<LightTasks>> {
        self.light.as_ref()
    }

    fn deadline(&self) -> Time {
        self.deadline
    }
}

impl Cx {
    pub(crate) fn new(
        home: Arc<dyn CxHome>,
        task: TaskId,
        region: RegionId,
        caps: Capabilities,
    ) -> Self {
        Self {
            home,
            task,
            region,
            caps,
            own_region: false,
        }
    }

    /// Marks this `Cx` as its spawned task's own (see `own_region`).
    pub(crate) fn of_spawned_task(mut self) -> Self {
        self.own_region = true;
        self
    }

    #[inline]
    pub(crate) fn core(&self) -> &Arc<Core> {
        self.home.core()
    }

    /// The light-task set spawns through this `Cx` join, if any (rules
    /// LT1–LT6 in `kernel::light`).
    #[inline]
    pub(crate) fn light(&self) -> Option<&Arc<LightTasks>> {
        self.home.light()
    }

    /// The same task seen from another region (used for region bodies),
    /// bounded also by that region's deadline.
    pub(crate) fn with_region(
        &self,
        region: RegionId,
        deadline: Option<Time>,
        light: Option<Arc<LightTasks>>,
    ) -> Cx {
        let deadline = self.home.deadline().min(deadline.unwrap_or(NO_DEADLINE));
        Cx {
            home: SharedHome::arc(self.core().clone(), light, Some(deadline)),
            region,
            own_region: false,
            ..self.clone()
        }
    }

    /// The task this context belongs to.
    pub fn task_id(&self) -> TaskId {
        self.task
    }

    /// The region new tasks are spawned into.
    pub fn region_id(&self) -> RegionId {
        self.region
    }

    /// The capabilities this context carries.
    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// A copy of this context that keeps only the capabilities in `caps`
    /// (narrowing only: capabilities can never be added back).
    pub fn restrict(&self, caps: Capabilities) -> Cx {
        Cx {
            caps: self.caps.intersect(caps),
            ..self.clone()
        }
    }

    #[track_caller]
    pub(crate) fn require(&self, cap: Capabilities, name: &'static str) {
        assert!(
            self.caps.contains(cap),
            "capability violation: this Cx was narrowed without the `{name}` capability"
        );
    }

    /// Current runtime time (virtual in the lab).
    ///
    /// # Panics
    /// If this `Cx` was narrowed without [`Capabilities::TIME`].
    #[track_caller]
    pub fn now(&self) -> Time {
        self.require(Capabilities::TIME, "time");
        self.core().now()
    }

    /// Current runtime time, or `None` without [`Capabilities::TIME`].
    pub fn try_now(&self) -> Option<Time> {
        self.caps
            .contains(Capabilities::TIME)
            .then(|| self.core().now())
    }

    /// The task's current budget (tightened by cleanup once cancelled).
    pub fn budget(&self) -> Budget {
        let (task, region) = (self.task, self.region);
        crate::exec::context::with_polled_light_cell(self.core().key(), task, |cell| {
            let mut kernel = self.core().lock();
            kernel.ensure_region_of(self.own_light()); // LR1
            kernel.task_budget(task, region, cell)
        })
    }

    /// LR1: the set of this `Cx`'s region if it is the task's own (whose
    /// task may be light in an unregistered light region, which the
    /// kernel must register before it can find the task); a region body's
    /// task is its owner, which the kernel finds from the owner's cell in
    /// its poll (LR5).
    pub(crate) fn own_light(&self) -> Option<&LightTasks> {
        self.light().map(|s| &**s).filter(|_| self.own_region)
    }

    /// Returns `Err` once cancellation is requested (for this task or its
    /// region) and not masked. Observing the task's own cancellation here
    /// acknowledges it: the task enters its cleanup under the reason's
    /// cleanup budget, and its outcome will be `Cancelled`.
    pub fn checkpoint(&self) -> Result<(), Cancelled> {
        match self.observe_cancel() {
            Some(reason) => Err(Cancelled::new(reason)),
            None => Ok(()),
        }
    }

    /// The acknowledgement step shared by every cancel-aware wait.
    pub(crate) fn observe_cancel(&self) -> Option<CancelReason> {
        crate::exec::context::check_cx(self.core().key(), self.task); // rule CX1
        if !self.may_observe_cancel() {
            return None;
        }
        if self.own_region {
            // LT7: a light task's own checkpoint acknowledges the cancel
            // stored in its cell, without the kernel.
            use crate::exec::cancel_slot::LightAck;
            match crate::exec::context::polled_light_acknowledge(
                self.core().key(),
                self.task,
                self.region,
            ) {
                Some(LightAck::Cancelled(reason)) => return Some(reason),
                Some(LightAck::Quiet) => return None,
                Some(LightAck::Registered) | None => {}
            }
        }
        let (task, region) = (self.task, self.region);
        crate::exec::context::with_polled_light_cell(self.core().key(), task, |cell| {
            self.core().with_kernel(|k, now| {
                k.ensure_region_of(self.own_light()); // LR1
                k.observe_cancel_hinted(task, region, cell, now)
            })
        })
        .map(std::sync::Arc::unwrap_or_clone) // copied outside the lock
    }

    /// Rule A2: whether a cancellation could be observed through this `Cx`
    /// now. A task's own-region `Cx` (the one its spawn gave it, or a
    /// clone), used inside that task's poll, reads the task's cancel hint
    /// (W7): a cancel of the task, of its region or of any ancestor reaches
    /// the task itself, so the hint alone decides; used anywhere else it
    /// always asks (the kernel finds a cancel stored in a light task's
    /// cell, LT7, which no gauge counts). Any other `Cx` (a region body's)
    /// asks only while the kernel's gauge counts a cancellation. Either
    /// way a deadline that has passed is a cancellation even before its
    /// timer fires (the task may not have yielded since), so a `Cx` with a
    /// deadline reads the clock first.
    pub(crate) fn may_observe_cancel(&self) -> bool {
        let deadline = self.home.deadline();
        if deadline != NO_DEADLINE && self.core().now() >= deadline {
            return true;
        }
        if self.own_region {
            return crate::exec::context::polled_task_cancel_hint(self.core().key(), self.task)
                .is_none_or(|hint| hint.is_some());
        }
        self.core().any_cancellation()
    }

    /// Whether cancellation was requested for this task or region (masking
    /// does not hide it here).
    pub fn is_cancel_requested(&self) -> bool {
        self.cancel_reason().is_some()
    }

    /// The requested cancellation reason, if any.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        let (task, region) = (self.task, self.region);
        crate::exec::context::with_polled_light_cell(self.core().key(), task, |cell| {
            let mut kernel = self.core().lock();
            kernel.ensure_region_of(self.own_light()); // LR1
            if !self.own_region {
                // LR5: a light owner cancelled in place carries the cancel
                // to its regions (registered) before its body sees it.
                kernel.registered_if_cancelled_hinted(task, region, cell);
            }
            kernel.cancel_requested(task, region, cell)
        })
    }

    /// Runs `f` with cancellation masked: checkpoints inside return `Ok`,
    /// and the request stays pending until the mask ends. Masks nest up to
    /// [`MAX_MASK_DEPTH`](crate::cx::MAX_MASK_DEPTH) levels.
    ///
    /// # Panics
    /// If nesting exceeds the bound (a bug in the caller).
    pub fn masked<R>(&self, f: impl FnOnce() -> R) -> R {
        let (task, region) = (self.task, self.region);
        crate::exec::context::with_polled_light_cell(self.core().key(), task, |cell| {
            let mut kernel = self.core().lock();
            kernel.ensure_region_of(self.own_light()); // LR1
            kernel.registered_hinted(task, region, cell); // LT1: O(1) in its poll
            kernel.mask_enter(task, region);
        });
        struct Unmask<'a>(&'a Cx);
        impl Drop for Unmask<'_> {
            fn drop(&mut self) {
                let task = self.0.task;
                self.0.core().lock().mask_exit(task);
            }
        }
        let _unmask = Unmask(self);
        f()
    }

    /// Registers `f` to run when this context's region closes: after every
    /// child finished, in LIFO order with the other finalizers, masked,
    /// exactly once.
    pub fn defer_sync(&self, f: impl FnOnce() + Send + 'static) -> Result<(), DeferError> {
        self.defer(Finalizer::Sync(Box::new(f)))
    }

    /// Registers `fut` to be awaited when this context's region closes (see
    /// [`defer_sync`](Self::defer_sync)). Cancellation is masked while it runs.
    pub fn defer_async(
        &self,
        fut: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DeferError> {
        self.defer(Finalizer::Async(Box::pin(fut)))
    }

    fn defer(&self, fin: Finalizer) -> Result<(), DeferError> {
        let region = self.region;
        let registered = match self.light() {
            // RF1: the region's list, under its set's lock alone.
            Some(set) => set.defer(fin),
            None => self.core().lock().register_finalizer(region, fin),
        };
        registered.map_err(|_| DeferError { region })
    }

    /// 64 random bits. In the lab they come from the run's seed, so a
    /// replay draws the same numbers.
    ///
    /// # Panics
    /// If this `Cx` was narrowed without [`Capabilities::RANDOM`].
    #[track_caller]
    pub fn random_u64(&self) -> u64 {
        self.require(Capabilities::RANDOM, "random");
        self.core().random_u64()
    }

    /// Records `message` in the trace (the lab's; a no-op elsewhere).
    pub fn trace(&self, message: impl Into<String>) {
        if self.core().is_tracing() {
            self.core().trace(crate::trace::TraceKind::User {
                task: self.task,
                message: message.into(),
            });
        }
    }

    /// Charges `cost` units against the task's cost quota; past the quota
    /// the task is cancelled with `CostBudget` and this returns `Err`.
    pub fn charge(&self, cost: u64) -> Result<(), Cancelled> {
        let task = self.task;
        self.core()
            .with_kernel(|k, now| k.charge_cost(task, cost, now));
        self.checkpoint()
    }
}

impl fmt::Debug for Cx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cx")
            .field("task", &self.task)
            .field("region", &self.region)
            .field("caps", &self.caps)
            .finish()
    }
}
