//! The lab's ready set: every runnable task, in wake order, each tagged with
//! the simulated worker it was queued on. The lab's policy picks which one
//! runs next; nothing here decides.

use std::sync::{Mutex, OnceLock, Weak};

use crate::exec::core::Core;
use crate::exec::runnable::{Schedule, TaskRef};
use crate::trace::TraceKind;
use crate::types::TaskId;

pub(crate) struct ReadyTask {
    pub(crate) task: TaskRef,
    pub(crate) id: TaskId,
    /// Simulated worker the task was queued on (for `LabConfig::workers`).
    pub(crate) worker: usize,
}

#[derive(Default)]
pub(crate) struct LabQueue {
    ready: Mutex<Vec<ReadyTask>>,
    /// Set once the core exists, so wakes can be traced.
    core: OnceLock<Weak<Core>>,
    /// Worker assignment for the next wake (chosen by the lab from its seed).
    pub(crate) next_worker: std::sync::atomic::AtomicUsize,
}

impl LabQueue {
    pub(crate) fn attach(&self, core: &std::sync::Arc<Core>) {
        let _ = self.core.set(std::sync::Arc::downgrade(core));
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ReadyTask>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Schedule for LabQueue {
    fn schedule(&self, task: TaskRef) {
        let id = task.id();
        let worker = self.next_worker.load(std::sync::atomic::Ordering::Relaxed);
        self.lock().push(ReadyTask { task, id, worker });
        if let Some(core) = self.core.get().and_then(Weak::upgrade) {
            core.trace(TraceKind::Wake { task: id });
        }
    }
}
