//! `Handle`: spawning into a running runtime from outside any task, and the
//! *service region* those tasks live in.
//!
//! Rules:
//! - H1: tasks spawned through a handle belong to the runtime's service
//!   region, a root region created on first use. They are owned like any
//!   task: the service region closes only when they completed.
//! - H2: on the multi-thread runtime they run on the workers at once; on the
//!   current-thread runtime they run while some thread is inside `block_on`
//!   (or during shutdown).
//! - H3: shutdown cancels the service region with `Shutdown` (every task in
//!   it gets `Shutdown`, nested regions `ParentCancelled`), then drives it
//!   until it is closed — finalizers included — or the timeout expires.
//!   Tasks that ignore cancellation are force-dropped by their grace period.

use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::exec::core::Core;
use crate::exec::cx::{Capabilities, Cx};
use crate::exec::task_handle::TaskHandle;
use crate::kernel::{LightTasks, SpawnError};
use crate::types::{Budget, RegionId};

/// Where handle-spawned tasks live; created on first use.
#[derive(Default)]
pub(crate) struct ServiceRegion {
    state: Mutex<ServiceState>,
}

#[derive(Default)]
struct ServiceState {
    /// The region and its light-task set (rule LT4 in `kernel::light`).
    region: Option<(RegionId, Option<Arc<LightTasks>>)>,
    shut_down: bool,
}

impl ServiceRegion {
    /// The service region and its light-task set, creating it if needed.
    pub(crate) fn get_or_create(
        &self,
        core: &Arc<Core>,
        budget: Budget,
    ) -> Result<(RegionId, Option<Arc<LightTasks>>), SpawnError> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.shut_down {
            return Err(SpawnError::RuntimeShutdown);
        }
        let (region, light) = st.region.get_or_insert_with(|| {
            core.with_kernel_recent(|k, _| {
                let region = k.create_root_region(budget);
                (region, k.light_tasks(region))
            })
        });
        Ok((*region, light.clone()))
    }

    /// Marks the runtime as shutting down and returns the service region if
    /// it was ever created. Later spawns are refused.
    pub(crate) fn shut_down(&self) -> Option<RegionId> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.shut_down = true;
        st.region.take().map(|(region, _)| region)
    }
}

/// A cheap, cloneable reference to a runtime for spawning from plain threads.
#[derive(Clone)]
pub struct Handle {
    pub(crate) core: Arc<Core>,
    pub(crate) service: Arc<ServiceRegion>,
    pub(crate) budget: Budget,
}

impl Handle {
    /// Spawns `f(cx)` into the runtime's service region (rule H1) from any
    /// thread. The closure runs on the calling thread to build the future.
    ///
    /// Errors: `SpawnError::RuntimeShutdown` once shutdown began.
    pub fn spawn<F, Fut>(&self, f: F) -> Result<TaskHandle<Fut::Output>, SpawnError>
    where
        F: FnOnce(Cx) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let (region, light) = self.service.get_or_create(&self.core, self.budget)?;
        self.core.spawn(
            region,
            light.as_ref(),
            Budget::INFINITE,
            Capabilities::ALL,
            f,
        )
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl super::Runtime {
    /// Spawns `f(cx)` into the runtime's service region, as
    /// [`Handle::spawn`] does (rules H1–H3), without going through a
    /// handle. The closure runs on the calling thread to build the future.
    ///
    /// On the multi-thread runtime the task starts on a worker at once; on
    /// the current-thread runtime it runs while some thread is inside
    /// [`block_on`](super::Runtime::block_on) (H2). Join it from a task with
    /// `handle.join(&cx).await` (e.g. inside `block_on`); shutdown or
    /// dropping the runtime cancels it with `Shutdown` and drains it (H3).
    ///
    /// Errors: `SpawnError::RuntimeShutdown` once shutdown began.
    pub fn spawn<F, Fut>(&self, f: F) -> Result<TaskHandle<Fut::Output>, SpawnError>
    where
        F: FnOnce(Cx) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let (region, light) = self.service.get_or_create(&self.core, self.root_budget)?;
        self.core.spawn(
            region,
            light.as_ref(),
            Budget::INFINITE,
            Capabilities::ALL,
            f,
        )
    }
}
