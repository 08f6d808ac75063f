//! Spawning: the layer above the core, the task cell, `Cx` and the task
//! handle, which puts them together. [`Core::spawn`] allocates a cell (a
//! light one, rules LT1–LT5 in `kernel::light`, or one with a kernel
//! record), builds the task's `Cx`, fills the cell, queues it and returns
//! its [`TaskHandle`]; `Cx::spawn` is its public face.
//! [`start_finalizer_task`] is the
//! [`FinalizerStarter`](super::core::FinalizerStarter) every core is built
//! with ([`Core::new`]), so the core starts finalizer tasks (K6) without
//! knowing task cells.

use std::future::Future;
use std::sync::Arc;

use super::core::{Core, CoreOptions};
use super::cx::{Capabilities, Cx, CxHome, SharedHome};
use super::finalizer::FinalizerRun;
use super::runnable::{Clock, Runnable, Schedule};
use super::task_cell::TaskCell;
use super::task_handle::TaskHandle;
use crate::kernel::{Attention, KernelConfig, LightTasks, SpawnError, TaskEnd, TaskKind};
use crate::types::{Budget, CancelReason, RegionId, TaskId, Time};

impl Core {
    /// A core for a driver: its regions' finalizers run in task cells
    /// started by [`start_finalizer_task`].
    pub(crate) fn new(
        config: KernelConfig,
        clock: Arc<dyn Clock>,
        scheduler: Arc<dyn Schedule>,
        options: CoreOptions,
    ) -> Arc<Self> {
        Self::with_finalizer_starter(config, clock, scheduler, options, start_finalizer_task)
    }

    /// Spawns a task running `f(cx)` in `region`. A task that may be light
    /// (rule LT4 in `kernel::light`) joins `light`, its region's set, and
    /// takes no kernel lock; any other takes the kernel lock once: the cell
    /// is allocated first, so the kernel record gets its waker and
    /// attention flag at creation.
    pub(crate) fn spawn<F, Fut>(
        self: &Arc<Self>,
        region: RegionId,
        light: Option<&Arc<LightTasks>>,
        budget: Budget,
        caps: Capabilities,
        f: F,
    ) -> Result<TaskHandle<Fut::Output>, SpawnError>
    where
        F: FnOnce(Cx) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let light_cell = light
            .filter(|_| budget == Budget::INFINITE)
            .and_then(|set| self.create_light_cell::<Fut>(region, set));
        let (cell, home): (_, Arc<dyn CxHome>) = match light_cell {
            // CXH2: a light task's own `Cx` lives in its cell (with no
            // deadline: a light task has no budget, LT4).
            Some(cell) => (cell.clone(), cell),
            None => {
                let cell = self.create_cell_in::<Fut>(region, light, budget)?;
                // Rule A2's deadline exception: the budget deadline the
                // kernel settled on (its timed-lane hint, set when the
                // record was made).
                let deadline = Runnable::deadline_hint(&*cell).map(Time::from_nanos);
                let home = SharedHome::arc(self.clone(), light.cloned(), deadline);
                (cell, home)
            }
        };
        let id = cell.task_id();
        let cx = Cx::new(home, id, region, caps).of_spawned_task();
        // If the closure panics, the half-made task must not linger.
        let guard = UnspawnOnUnwind {
            core: self,
            id,
            region,
            light,
        };
        let future = f(cx);
        std::mem::forget(guard);
        cell.fill(future);
        self.schedule(cell.clone());
        Ok(TaskHandle::new(id, cell))
    }

    /// Rule LT1–LT5: a cell for a light task, listed in `set` under a fresh
    /// id, its first poll free to skip the kernel (A1). `None` if the set's
    /// gate is shut (LT2): the caller spawns through the kernel instead.
    fn create_light_cell<Fut>(
        self: &Arc<Self>,
        region: RegionId,
        set: &Arc<LightTasks>,
    ) -> Option<Arc<TaskCell<Fut>>>
    where
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let id = self.counters.next_id();
        let cell = TaskCell::<Fut>::vacant_light(region, self.clone(), set.clone(), id);
        if !set.spawn(cell.clone()) {
            self.counters.id_unused();
            return None;
        }
        Some(cell)
    }

    /// [`create_cell`](Self::create_cell) for a spawned task, in a region
    /// that may be an unregistered light one (LR1: registered first).
    fn create_cell_in<Fut>(
        self: &Arc<Self>,
        region: RegionId,
        light: Option<&Arc<LightTasks>>,
        budget: Budget,
    ) -> Result<Arc<TaskCell<Fut>>, SpawnError>
    where
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        if let Some(set) = light
            && set.light_parent().is_some()
        {
            self.with_kernel_recent(|k, _| k.ensure_region(set));
        }
        self.create_cell::<Fut>(region, TaskKind::Spawned, budget)
    }

    /// Allocates an empty cell and creates its kernel record, registered
    /// with the cell's waker (and, for spawned tasks, its attention flag).
    fn create_cell<Fut>(
        self: &Arc<Self>,
        region: RegionId,
        kind: TaskKind,
        budget: Budget,
    ) -> Result<Arc<TaskCell<Fut>>, SpawnError>
    where
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let fast_polls = kind == TaskKind::Spawned;
        let cell = TaskCell::<Fut>::vacant(region, self.clone(), fast_polls, None);
        let waker = cell.waker();
        let attention = fast_polls.then(|| cell.clone() as Arc<dyn Attention>);
        self.with_kernel_recent(|k, now| {
            let id = k.create_task_with(region, kind, waker, attention, budget, now)?;
            cell.set_id(id, k.may_skip_first_poll(id));
            Ok(cell)
        })
    }

    fn spawn_finalizer_task(self: &Arc<Self>, region: RegionId) {
        let created =
            self.create_cell::<FinalizerRun>(region, TaskKind::Finalizer, Budget::INFINITE);
        let Ok(cell) = created else {
            // Cannot happen while the region is Finalizing; never leave it stuck.
            self.with_kernel(|k, now| k.finalizers_not_started(region, now));
            return;
        };
        cell.fill(FinalizerRun::new(self.clone(), region));
        self.schedule(cell);
    }
}

/// The core's [`FinalizerStarter`](super::core::FinalizerStarter): starts the task that runs `region`'s
/// finalizers (K6), or, if no task can be made, tells the kernel so the
/// region is never left stuck.
pub(crate) fn start_finalizer_task(core: &Arc<Core>, region: RegionId) {
    core.spawn_finalizer_task(region);
}

impl Cx {
    /// Spawns `f(cx)` as a new task in this context's region.
    ///
    /// The closure runs immediately, on the caller's thread, to build the
    /// future; the future then runs on the runtime. The region will not close
    /// until the task completes, whether or not the handle is kept.
    ///
    /// Errors: the region no longer accepts tasks (finalizing/closed), is
    /// being cancelled, or this `Cx` lacks [`Capabilities::SPAWN`].
    ///
    /// # Cancellation
    /// A task cancelled before its first poll (its region cancelled, or
    /// [`TaskHandle::abort`] right after the spawn) is dropped unpolled: its
    /// code never runs, it holds nothing to clean up, and it joins as
    /// `Err(JoinError::Cancelled(..))`. Cleanup that must run whatever
    /// happens belongs in a region finalizer ([`defer_sync`](Self::defer_sync)
    /// / [`defer_async`](Self::defer_async)), not at the start of the task.
    /// Once started, the task sees a cancel request at its next checkpoint or
    /// cancel-aware wait; one that finishes without observing it returns its
    /// value.
    ///
    /// [`TaskHandle::abort`]: crate::TaskHandle::abort
    pub fn spawn<F, Fut>(&self, f: F) -> Result<TaskHandle<Fut::Output>, SpawnError>
    where
        F: FnOnce(Cx) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        self.spawn_with_budget(Budget::INFINITE, f)
    }

    /// Like [`spawn`](Self::spawn), with a budget (met with the region's).
    pub fn spawn_with_budget<F, Fut>(
        &self,
        budget: Budget,
        f: F,
    ) -> Result<TaskHandle<Fut::Output>, SpawnError>
    where
        F: FnOnce(Cx) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let caps = self.capabilities();
        if !caps.contains(Capabilities::SPAWN) {
            return Err(SpawnError::CapabilityDenied("spawn"));
        }
        self.core()
            .spawn(self.region_id(), self.light(), budget, caps, f)
    }
}

/// Completes a task record whose spawn closure panicked.
struct UnspawnOnUnwind<'a> {
    core: &'a Arc<Core>,
    id: TaskId,
    region: RegionId,
    light: Option<&'a Arc<LightTasks>>,
}

impl Drop for UnspawnOnUnwind<'_> {
    fn drop(&mut self) {
        let (id, region) = (self.id, self.region);
        self.core.with_kernel(|k, now| {
            k.ensure_region_of(self.light.map(|s| &**s)); // LR1
            // LT1: a light task is registered by the request.
            k.request_cancel_of(
                id,
                region,
                CancelReason::user("spawn closure panicked"),
                now,
            );
            k.complete_task(id, TaskEnd::Dropped, false, now)
        });
    }
}

/// CXH2: a light task's cell is its own `Cx`'s home: the core and the
/// region's set it holds anyway.
impl<F> CxHome for TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn core(&self) -> &Arc<Core> {
        TaskCell::core(self)
    }

    fn light(&self) -> Option<&Arc<LightTasks>> {
        self.light_arc()
    }
}
