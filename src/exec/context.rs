//! Which task this thread is polling: one thread-local value, set by
//! `Core::poll_task` around every poll (spawned tasks, finalizer tasks and
//! the root task alike) and restored afterwards. It also points at the
//! polled task's obligation home (rule OB9 in `kernel::obligation`), so a
//! task's own `Cx` reserves there without a lock or a reference count.
//!
//! Rules:
//! - BO1 (no nested `block_on`): `Runtime::block_on` and
//!   `LabRuntime::block_on` panic at once, naming this rule, when called
//!   while the thread is polling a task of any runtime: the call would block
//!   the thread that runs the task (and, on the current-thread runtime, the
//!   only thread that runs any task), so it could never finish. Code in a
//!   `spawn_blocking` closure is not inside a task (in the lab, where the
//!   closure runs inline, the context is cleared while it runs), so it may
//!   call `block_on` of another runtime.
//! - CX1 (a `Cx` is used by its own task): a cancel-aware wait or checkpoint
//!   (`Cx::observe_cancel`, timer polls) on a `Cx` must run inside the task
//!   that `Cx` belongs to (a region body runs in its owner task, so its `Cx`
//!   qualifies). A wait on another task's `Cx` — a child sleeping on its
//!   parent's `cx` — would watch the wrong task's cancellation: the waiting
//!   task's own abort would not wake it. Such a use panics naming this rule
//!   (the task then completes `Panicked`). A region's finalizers run in the
//!   finalizer task but may wait on the `Cx` they captured (the region
//!   owner's, whose task may already have completed), so the check is off
//!   while a finalizer runs. Code outside any task (plain threads, the
//!   blocking pool) is not checked, except that a timer on the `Cx` of a
//!   task that has completed panics too (nothing would ever wake it).
//!
//! The cost is a thread-local read per checked wait and two writes per poll.
//!
//! OB9's safety argument: the home pointer is installed by `enter_task`,
//! whose caller (the cell's run, the root task) keeps the home alive
//! until the returned guard is dropped, and that guard restores the
//! previous context; readers run synchronously on this thread inside the
//! poll, so they never see a dangling pointer.

use std::cell::Cell;

use super::cancel_slot::{CancelSlot, LightAck};
use super::state::{CellState, Snapshot};
use crate::kernel::Attention;
use crate::kernel::{HomeHost, HomeSource};
use crate::types::{RegionId, TaskId};

/// A runtime core's identity (`Core::key`: the address of its allocation,
/// compared and never dereferenced). Opaque here, so this module needs
/// nothing above the task cell's state word.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct CoreKey(usize);

impl CoreKey {
    /// The key of the core at `addr` (a live `Arc<Core>`'s `as_ptr`, never 0).
    pub(crate) fn from_addr(addr: *const ()) -> Self {
        Self(addr as usize)
    }
}

/// What the thread is polling. `core == 0`: no task.
#[derive(Clone, Copy)]
struct Current {
    /// The task's `CoreKey` (identity only, never dereferenced).
    core: usize,
    task: u64,
    /// A region finalizer is running (CX1 does not apply).
    finalizer: bool,
    /// Rule OB9 (`kernel::obligation`): the polled task's obligation home,
    /// valid until the `ContextGuard` of this poll is dropped.
    home: Option<*const (dyn HomeSource + 'static)>,
    /// Rule W7 (`task_cell`): the polled cell's state word, valid as `home`
    /// is; null for tasks that are not task cells (the root task).
    state: *const CellState,
    /// Rule LT7 (`kernel::light`): a light task's cancel slot, valid as
    /// `state` is; null for tasks that were not spawned light.
    cancel: *const CancelSlot,
    /// Rule LT1: a light task's cell, valid as `state` is, so the kernel
    /// can register it in O(1) when its own `Cx` needs a record.
    light_cell: Option<*const (dyn Attention + 'static)>,
}

const NONE: Current = Current {
    core: 0,
    task: 0,
    finalizer: false,
    home: None,
    state: std::ptr::null(),
    cancel: std::ptr::null(),
    light_cell: None,
};

thread_local! {
    static CURRENT: Cell<Current> = const { Cell::new(NONE) };
}

fn core_key(core: CoreKey) -> usize {
    core.0
}

/// Restores the previous context when dropped.
pub(crate) struct ContextGuard {
    previous: Current,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        let previous = self.previous;
        let _ = CURRENT.try_with(|c| c.set(previous));
    }
}

fn replace(next: Current) -> ContextGuard {
    ContextGuard {
        previous: CURRENT.with(|c| c.replace(next)),
    }
}

/// The polled cell's words the context points at (rules W7, LT7), kept
/// alive by the caller of [`enter_task`] until its guard drops.
#[derive(Clone, Copy)]
pub(crate) struct CellWords<'a> {
    pub(crate) state: &'a CellState,
    /// Only for a task spawned light.
    pub(crate) cancel: Option<&'a CancelSlot>,
    /// The value the poll's run edge replaced (SW3, SW4): its attention
    /// bits say whether the poll must take them (not kept in the context).
    pub(crate) seen: Snapshot,
    /// Only for a task spawned light: the cell as the kernel sees it (LT1).
    pub(crate) light_cell: Option<&'a (dyn Attention + 'static)>,
}

/// Marks the thread as polling `task` of `core` until the guard drops;
/// `home` (rule OB9) is the task's obligation home and `cell` (rules W7,
/// LT7) its cell's state word and cancel slot, which the caller keeps
/// alive until then.
#[inline]
pub(crate) fn enter_task(
    core: CoreKey,
    task: TaskId,
    home: Option<&(dyn HomeSource + 'static)>,
    cell: Option<CellWords<'_>>,
) -> ContextGuard {
    replace(Current {
        core: core_key(core),
        task: task.to_bits(),
        finalizer: false,
        home: home.map(|h| h as *const (dyn HomeSource + 'static)),
        state: cell.map_or(std::ptr::null(), |c| std::ptr::from_ref(c.state)),
        cancel: cell
            .and_then(|c| c.cancel)
            .map_or(std::ptr::null(), std::ptr::from_ref),
        light_cell: cell
            .and_then(|c| c.light_cell)
            .map(|c| c as *const (dyn Attention + 'static)),
    })
}

/// Rule LT1: runs `f` with the cell of the light task this thread is
/// polling, if that is `task` of `core` (its own `Cx` asking the kernel for
/// something that needs a record: the kernel then registers it from the
/// cell, in O(1)); `None` otherwise.
#[inline]
pub(crate) fn with_polled_light_cell<R>(
    core: CoreKey,
    task: TaskId,
    f: impl FnOnce(Option<&(dyn Attention + 'static)>) -> R,
) -> R {
    let current = CURRENT.try_with(Cell::get).unwrap_or(NONE);
    let cell = current
        .light_cell
        .filter(|_| current.core == core_key(core) && current.task == task.to_bits());
    // SAFETY: LT1, as W7: `enter_task`'s caller (the cell's run, which
    // holds a reference to the cell) keeps the cell alive until the guard
    // restores the previous context, and `f` runs synchronously on this
    // thread inside that poll.
    f(cell.map(|c| unsafe { &*c }))
}

/// Rule LT7 (`kernel::light`): if this thread is polling task `task` of
/// `core` and it was spawned light, its checkpoint's acknowledgement
/// through the cell's cancel slot. `None` otherwise: ask the kernel.
#[inline]
pub(crate) fn polled_light_acknowledge(
    core: CoreKey,
    task: TaskId,
    region: RegionId,
) -> Option<LightAck> {
    let current = CURRENT.try_with(Cell::get).ok()?;
    if current.cancel.is_null() || current.core != core_key(core) || current.task != task.to_bits()
    {
        return None;
    }
    // SAFETY: LT7, as W7 below: `enter_task`'s caller (the cell's run,
    // which holds a reference to the cell) keeps the slot and the state
    // word alive until the guard restores the previous context, and we
    // run synchronously on this thread inside that poll.
    let (slot, state) = unsafe { (&*current.cancel, &*current.state) };
    Some(slot.acknowledge(state, region, task))
}

/// Rule W7 (`task_cell`): if this thread is polling task `task` of `core`
/// and it is a task cell, the severity of the strongest cancel request the
/// kernel made of it (`Some(None)`: none). `None` otherwise (a root task,
/// a plain thread, another task): the caller must not conclude anything.
#[inline]
pub(crate) fn polled_task_cancel_hint(core: CoreKey, task: TaskId) -> Option<Option<u8>> {
    let current = CURRENT.try_with(Cell::get).ok()?;
    if current.state.is_null() || current.core != core_key(core) || current.task != task.to_bits() {
        return None;
    }
    // SAFETY: W7, as OB9 below: `enter_task`'s caller (the cell's run,
    // which holds a reference to the cell) keeps the state word alive until
    // the guard restores the previous context, and we run synchronously on
    // this thread inside that poll. The word is only read, atomically.
    let state = unsafe { &*current.state };
    Some(state.load().cancel_severity())
}

/// Rule LR5 (`kernel::light_region`): if this thread is polling task
/// `task` of `core`, whether the kernel has its record: `true` for a task
/// not spawned light (every other task is registered when it is made), or
/// a light one the kernel registered (SW7). `None` otherwise: ask the
/// kernel.
#[inline]
pub(crate) fn polled_task_registered(core: CoreKey, task: TaskId) -> Option<bool> {
    let current = CURRENT.try_with(Cell::get).ok()?;
    if current.core != core_key(core) || current.task != task.to_bits() || current.core == 0 {
        return None;
    }
    if current.light_cell.is_none() || current.state.is_null() {
        return Some(true);
    }
    // SAFETY: W7, as in `polled_task_cancel_hint`: the state word is alive
    // for the whole poll, which runs synchronously on this thread; it is
    // only read, atomically.
    let state = unsafe { &*current.state };
    Some(state.load_acquire().is_registered())
}

/// Marks the current poll as running a region finalizer (CX1 exemption)
/// until the guard drops.
pub(crate) fn enter_finalizer() -> ContextGuard {
    let mut current = CURRENT.with(Cell::get);
    current.finalizer = true;
    replace(current)
}

/// Clears the context until the guard drops: code run inline that is not
/// part of the task (the lab's blocking closures).
pub(crate) fn exit_task() -> ContextGuard {
    replace(NONE)
}

/// Whether the thread is polling a task (of any runtime).
pub(crate) fn in_task() -> bool {
    CURRENT.try_with(|c| c.get().core != 0).unwrap_or(false)
}

/// Rule BO1: panics if the thread is polling a task. `what` names the
/// caller (`Runtime::block_on`, `LabRuntime::block_on`).
#[track_caller]
pub(crate) fn assert_not_in_task(what: &str) {
    if in_task() {
        nested_block_on(what);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn nested_block_on(what: &str) -> ! {
    panic!(
        "{what} called from inside a task (rule BO1: block_on cannot be nested in a task; \
         it would block the thread that runs the task and never finish). Await the future \
         instead, or call block_on from a spawn_blocking closure or a plain thread"
    )
}

/// Rule CX1: panics if the thread is polling a task other than `task` of
/// `core` (outside finalizers). Outside any task nothing is checked.
#[inline]
#[track_caller]
pub(crate) fn check_cx(core: CoreKey, task: TaskId) {
    let current = CURRENT.try_with(Cell::get).unwrap_or(NONE);
    if current.core == 0 {
        return;
    }
    let same_core = current.core == core_key(core);
    if same_core && (current.finalizer || current.task == task.to_bits()) {
        return;
    }
    foreign_cx(task, TaskId::from_bits(current.task), same_core);
}

#[cold]
#[inline(never)]
#[track_caller]
fn foreign_cx(owner: TaskId, running: TaskId, same_core: bool) -> ! {
    if same_core {
        panic!(
            "a Cx of task {owner} was used to wait inside task {running} (rule CX1: a Cx is used \
             only by its own task, whose cancellation it observes). Use the cx the spawn closure \
             receives (`cx.spawn(|cx| async move {{ .. }})`), not a captured parent's"
        )
    }
    panic!(
        "a Cx of another runtime was used to wait inside task {running} (rule CX1: a Cx is used \
         only by its own task, on its own runtime)"
    )
}

/// Rule CX1: a timer on the `Cx` of task `task`, which has completed, can
/// never be woken for it (outside finalizers, which may use a completed
/// owner's `Cx`).
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn completed_task_cx(task: TaskId) -> ! {
    panic!(
        "a Cx of task {task}, which has completed, was used to wait (rule CX1: a Cx is used only \
         by its own task, while it runs; its region has closed and nothing would wake the wait)"
    )
}

/// OB9: runs `f` on the home of the task being polled, if that is `task`
/// of `core`.
#[inline]
pub(crate) fn with_task_home<R>(
    core: CoreKey,
    task: TaskId,
    f: impl FnOnce(&dyn HomeSource) -> R,
) -> Option<R> {
    let current = CURRENT.try_with(Cell::get).ok()?;
    if current.core != core_key(core) || current.task != task.to_bits() {
        return None;
    }
    let source = current.home?;
    // SAFETY: OB9: `enter_task`'s caller keeps the source alive until the
    // `ContextGuard` it got is dropped (which restores the previous
    // context), and `f` runs synchronously on this thread within that poll.
    Some(f(unsafe { &*source }))
}

/// OB9: runs `f` on the home of the task being polled, if that home is
/// the one at address `home` (a permit's `Weak::as_ptr`, which keeps the
/// address from being reused while the permit lives).
#[inline]
pub(crate) fn with_home_at<R>(home: *const (), f: impl FnOnce(&dyn HomeHost) -> R) -> Option<R> {
    let source = CURRENT.try_with(Cell::get).ok()?.home?;
    // SAFETY: as in `with_task_home`.
    let source = unsafe { &*source };
    let host = source.host();
    std::ptr::addr_eq(host as *const dyn HomeHost, home).then(|| f(host))
}
