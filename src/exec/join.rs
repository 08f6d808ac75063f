//! The output side of a task: the join slot a task cell completes and a
//! [`TaskHandle`](super::TaskHandle) (`task_handle`) joins, and
//! [`JoinError`]. Below the task cell, so it knows neither cells nor `Cx`.
//!
//! Rules (J2 is upheld by the handle in `task_handle`):
//! - J1: a task's output is delivered at most once, to the first `join`
//!   that sees it.
//! - J2: dropping a `TaskHandle` never orphans the task: its region still
//!   owns and awaits it.
//! - J3: a child panic is *handled* when a `join` receives it. A panic whose
//!   handle is gone (dropped before or after the panic, without joining) is
//!   escalated: the region's other children are cancelled with `FailFast`
//!   and the region's outcome becomes `Panicked`.
//! - J4: a value nobody will read (its handle is gone, or the task ended
//!   cancelled or panicked so the joiner gets an error) is dropped without
//!   letting a panic escape into the runtime: by the task's completion if
//!   the handle is already gone (a destructor panic makes the task
//!   `Panicked`, escalated as in J3), otherwise by the joiner or the
//!   handle's drop, where a destructor panic fails the task's region the
//!   same way (contract 3).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use super::core::Core;
use super::runnable::wake_catching;
use crate::kernel::{Finish, LightCancel, LightTasks, ObligationHome, TaskEnd, TaskOutcome};
use crate::types::{CancelReason, PanicPayload, RegionId, TaskId};

/// Why a joined task produced no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinError {
    /// The task was cancelled (or, if the joiner itself was cancelled while
    /// waiting, the joiner's reason — see [`TaskHandle::join`](super::TaskHandle::join)).
    Cancelled(CancelReason),
    /// The task panicked.
    Panicked(PanicPayload),
}

impl JoinError {
    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled(_))
    }

    /// Whether the task panicked.
    pub fn is_panicked(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }

    /// The cancellation reason, if cancelled.
    pub fn cancel_reason(&self) -> Option<&CancelReason> {
        match self {
            JoinError::Cancelled(r) => Some(r),
            JoinError::Panicked(_) => None,
        }
    }

    /// The panic payload, if panicked.
    pub fn panic_payload(&self) -> Option<&PanicPayload> {
        match self {
            JoinError::Panicked(p) => Some(p),
            JoinError::Cancelled(_) => None,
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Cancelled(r) => write!(f, "task cancelled: {r}"),
            JoinError::Panicked(p) => write!(f, "task {p}"),
        }
    }
}

impl std::error::Error for JoinError {}

/// A failed task's end as the slot keeps it.
enum SlotError {
    Cancelled(Arc<CancelReason>),
    Panicked(crate::types::PanicPayload),
}

impl SlotError {
    fn into_join_error(self) -> JoinError {
        match self {
            SlotError::Cancelled(r) => JoinError::Cancelled(Arc::unwrap_or_clone(r)),
            SlotError::Panicked(p) => JoinError::Panicked(p),
        }
    }
}

/// What a light task's completion brings to its join slot (LT1, LT8 in
/// `kernel::light`).
pub(crate) struct LightEnd<'a> {
    /// The task's region's light-task set.
    pub(crate) set: &'a LightTasks,
    /// The task's cell, linked in `set` while the task is light (LT1).
    pub(crate) cell: &'a (dyn crate::kernel::Attention + 'static),
    /// The cell's REGISTERED bit (SW7) as the completion read it.
    pub(crate) registered: bool,
    /// The cell's obligation home, swept here (K5, OB4).
    pub(crate) home: &'a ObligationHome,
    /// The cancellation its cancel slot held, read after the cell was
    /// marked COMPLETE (LT7).
    pub(crate) cancel: Option<LightCancel>,
}

/// The output side of a task, shared by the task and its handle.
pub(crate) struct JoinSlot<T> {
    inner: Mutex<SlotInner<T>>,
    finished: AtomicBool,
}

struct SlotInner<T> {
    /// A cancel reason stays shared with the kernel's copy until a joiner
    /// reads it (most cancelled tasks are never joined).
    output: Option<Result<T, SlotError>>,
    /// A value the task returned that its joiner will not get (the task
    /// ended cancelled or panicked anyway): dropped by the joiner or with
    /// the handle, outside the runtime's own code (J4).
    discarded: Option<T>,
    waker: Option<Waker>,
    handle_alive: bool,
}

impl<T> JoinSlot<T> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(SlotInner {
                output: None,
                discarded: None,
                waker: None,
                handle_alive: true,
            }),
            finished: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotInner<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Records the task's end with the kernel and stores the output.
    /// Lock order: slot, then kernel (the kernel never takes a slot lock).
    ///
    /// J4: if the handle is gone, nobody can read the value, so it is
    /// dropped here, before the kernel hears of the completion; a panic in
    /// its destructor makes the task `Panicked` (escalated to its region,
    /// which is still open). A value the kernel discards (the task ended
    /// cancelled, or panicked by leaking) stays in the slot for the joiner
    /// or the handle's drop.
    pub(crate) fn complete(
        &self,
        core: &Arc<Core>,
        id: TaskId,
        region: RegionId,
        light: Option<LightEnd<'_>>,
        end: TaskEnd,
        value: Option<T>,
    ) {
        let (mut end, mut value) = (end, value);
        let inner = loop {
            let inner = self.lock();
            if inner.handle_alive || value.is_none() {
                break inner;
            }
            // The handle is gone for good: nobody can read the value.
            drop(inner);
            if let Some(Err(payload)) = value.take().map(drop_catching)
                && matches!(end, TaskEnd::Returned)
            {
                end = TaskEnd::Panicked(PanicPayload::from_panic(payload));
            }
        };
        // LT1: a light task that simply returned, holding no obligation,
        // leaves its region's set and is done; nothing else of it is in the
        // kernel. Its home is swept first (K5, OB4: closed to transfers
        // from now on); what it leaked, any other end, or a task the kernel
        // registered meanwhile goes to the kernel, which registers a light
        // task first. LT8: a cancel stored in its cell decides the outcome
        // as the kernel would (acknowledged: `Cancelled`, the value
        // discarded; not: the value).
        let mut swept = None;
        let cell = light.as_ref().map(|l| l.cell);
        if let Some(light) = light
            && !light.registered
            && matches!(end, TaskEnd::Returned)
        {
            let leaked = light.home.close();
            if leaked.is_empty()
                && let (Finish::Light { advance }, entry) = light.set.finish(light.cell, false)
            {
                let (output, discarded) = match light.cancel {
                    Some(cancel) if cancel.acked => {
                        (Err(SlotError::Cancelled(cancel.reason)), value)
                    }
                    _ => (
                        value.ok_or_else(|| SlotError::Cancelled(Arc::default())),
                        None,
                    ),
                };
                let waker = self.deliver(inner, output, discarded);
                if advance {
                    // LT3: the kernel waits for this region's last light task.
                    core.with_kernel_recent(|k, now| k.light_tasks_drained(region, now));
                }
                drop(entry);
                if let Some(w) = waker {
                    wake_catching(w);
                }
                return;
            }
            swept = Some(leaked);
        }
        let handle_alive = inner.handle_alive;
        let ((outcome, _leaks), actions) = core.with_kernel_recent_deferred(|k, now| {
            if let Some(cell) = cell {
                k.registered_cell(id, region, cell); // LT1: O(1)
            }
            match swept {
                Some(leaked) => k.complete_swept_task(id, end, handle_alive, leaked, now),
                None => k.complete_task(id, end, handle_alive, now),
            }
        });
        let (result, discarded) = match (outcome, value) {
            (TaskOutcome::Ok, Some(v)) => (Ok(v), None),
            (TaskOutcome::Ok, None) => (Err(SlotError::Cancelled(Arc::default())), None),
            (TaskOutcome::Cancelled(r), v) => (Err(SlotError::Cancelled(r)), v),
            (TaskOutcome::Panicked(p), v) => (Err(SlotError::Panicked(p)), v),
        };
        let waker = self.deliver(inner, result, discarded);
        core.run_actions(actions);
        if let Some(w) = waker {
            wake_catching(w);
        }
    }

    /// Stores the task's end in the slot, marks it finished and releases
    /// the slot's lock; hands back the joiner's waker, to be woken once the
    /// caller has done what must come first (the value is in place before
    /// anyone can see `finished`).
    fn deliver(
        &self,
        mut inner: std::sync::MutexGuard<'_, SlotInner<T>>,
        output: Result<T, SlotError>,
        discarded: Option<T>,
    ) -> Option<Waker> {
        inner.output = Some(output);
        inner.discarded = discarded;
        self.finished.store(true, Ordering::Release);
        inner.waker.take()
    }

    pub(crate) fn poll_join(
        &self,
        core: &Arc<Core>,
        id: TaskId,
        region: RegionId,
        waker: &Waker,
    ) -> Poll<Result<T, JoinError>> {
        let mut inner = self.lock();
        match inner.output.take() {
            Some(out) => {
                let panicked = matches!(out, Err(SlotError::Panicked(_)));
                let discarded = inner.discarded.take();
                drop(inner);
                if panicked {
                    core.with_kernel_recent(|k, _| k.panic_joined(region, id));
                }
                drop_unread(discarded, core, id, region);
                Poll::Ready(out.map_err(SlotError::into_join_error))
            }
            None => {
                assert!(
                    !self.is_finished(),
                    "task {id}: output already taken (rule J1: a task's output is delivered once)"
                );
                match &mut inner.waker {
                    Some(w) if w.will_wake(waker) => {}
                    slot => *slot = Some(waker.clone()),
                }
                Poll::Pending
            }
        }
    }

    pub(crate) fn release_handle(&self, core: &Arc<Core>, id: TaskId, region: RegionId) {
        let mut inner = self.lock();
        inner.handle_alive = false;
        let unjoined_panic = matches!(inner.output, Some(Err(SlotError::Panicked(_))));
        // J4: a value nobody will read now (the task already completed).
        let unread = match inner.output.take() {
            Some(Ok(v)) => Some(v),
            other => {
                inner.output = other;
                inner.discarded.take()
            }
        };
        let waker = inner.waker.take();
        if unjoined_panic {
            let ((), actions) =
                core.with_kernel_deferred(|k, now| k.panic_handle_dropped(region, id, now));
            drop(inner);
            core.run_actions(actions);
        } else {
            drop(inner);
        }
        drop(waker);
        drop_unread(unread, core, id, region);
    }

    /// Drops whatever the slot still holds (the cell is going away),
    /// catching panics: the runtime may be the one dropping it.
    pub(crate) fn clear(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let held = (
            inner.output.take(),
            inner.discarded.take(),
            inner.waker.take(),
        );
        if !matches!(held, (None, None, None)) {
            let _ = drop_catching(held);
        }
    }
}

/// Drops `value`, returning the panic its destructor raised, if any.
fn drop_catching<V>(value: V) -> Result<(), Box<dyn std::any::Any + Send>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value)))
}

/// J4: drops a completed task's value that nobody will read. A panic in its
/// destructor fails the task's region like an unjoined panic; if that
/// region has closed already (the handle outlived it), the panic continues
/// in the code that dropped the handle or joined, which is user code.
fn drop_unread<T>(value: Option<T>, core: &Arc<Core>, id: TaskId, region: RegionId) {
    let Some(Err(payload)) = value.map(drop_catching) else {
        return;
    };
    let report = PanicPayload::from_panic_ref(&*payload);
    let reported = core.with_kernel(|k, now| k.late_task_panic(region, id, report, now));
    if !reported && !std::thread::panicking() {
        std::panic::resume_unwind(payload);
    }
}

/// What a handle needs from its task, independent of the future's type.
pub(crate) trait JoinTarget<T>: super::abort::AbortTarget {
    fn slot(&self) -> &JoinSlot<T>;
    fn core(&self) -> &Arc<Core>;
    fn region(&self) -> RegionId;
}
