//! The output side of a task: the join slot a task cell completes and a
//! [`TaskHandle`](super::TaskHandle) (`task_handle`) joins, and
//! [`JoinError`]. Below the task cell, so it knows neither cells nor `Cx`;
//! it is handed the cell's state word, whose JOIN_INTEREST, JOIN_WAKER and
//! FINISHED bits (rules SW9–SW12 in `state`) hand the output and the
//! joiner's waker between the completion and the handle without a lock.
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
use std::sync::Arc;
use std::task::{Poll, Waker};

use super::cancel_slot::{LightCancelSeen, PlainReason, SlotReason};
use super::core::Core;
use super::state::{CellState, Snapshot};
use crate::kernel::{Finish, LightTasks, ObligationHome, TaskEnd, TaskOutcome};
use crate::loom::cell::UnsafeCell;
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
pub(crate) enum SlotError {
    /// The reason; `None` for the default one (no allocation), or where no
    /// handle will read it (a light task whose handle was gone at its
    /// completion, SW10: the shared reason's count is not touched).
    Cancelled(Option<Arc<CancelReason>>),
    /// A light task's plain abort reason (LT7), kept without an allocation;
    /// the join fills in its origin, the task itself.
    Aborted(PlainReason),
    /// Boxed: a pointer like the reason, so an end costs 16 bytes, not 32
    /// (panics are rare; the box is made only for one that is stored).
    Panicked(Box<PanicPayload>),
}

impl SlotError {
    fn into_join_error(self, region: RegionId, id: TaskId) -> JoinError {
        match self {
            SlotError::Aborted(plain) => JoinError::Cancelled(plain.to_reason(region, id)),
            SlotError::Cancelled(r) => {
                JoinError::Cancelled(r.map(Arc::unwrap_or_clone).unwrap_or_default())
            }
            SlotError::Panicked(p) => JoinError::Panicked(*p),
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
    /// marked COMPLETE (LT7), without its reason if the handle was gone
    /// then (SW10).
    pub(crate) cancel: Option<LightCancelSeen>,
}

/// A task's end as the output cell holds it: the result for the joiner,
/// and a value the task returned that its joiner will not get (the task
/// ended cancelled or panicked anyway): dropped by the joiner or with the
/// handle, outside the runtime's own code (J4).
pub(crate) type Stored<T> = (Result<T, SlotError>, Option<T>);

/// Where a task's end lies between its completion and its join (SW9): in
/// a task cell, the storage its future had (the cell's stage), as tokio
/// does, so the output costs the cell no bytes of its own when it is no
/// larger than the future.
///
/// It holds `None` before the completion's `put` and once taken. A cancel
/// reason stays shared with the kernel's copy until a joiner reads it
/// (most cancelled tasks are never joined).
pub(crate) trait OutputCell<T> {
    /// Stores the task's end.
    ///
    /// # Safety
    /// The caller owns the cell under SW9 (the completion, before
    /// FINISHED), and the future has been dropped.
    unsafe fn put(&self, stored: Stored<T>);

    /// Takes the task's end, if it is there.
    ///
    /// # Safety
    /// The caller owns the cell under SW9 (the handle after an acquiring
    /// reading of FINISHED, or the completion when the handle was gone at
    /// FINISHED).
    unsafe fn take(&self) -> Option<Stored<T>>;
}

/// The output side of a task, shared by the task and its handle: the
/// joiner's waker here and the output in the cell's [`OutputCell`], whose
/// ownership moves with the bits of the cell's state word (`state`, rules
/// SW9–SW12), so neither completing nor joining takes a lock.
pub(crate) struct JoinSlot<T> {
    /// SW11, SW12: the joiner's waker.
    waker: UnsafeCell<Option<Waker>>,
    /// The output type, which lives in the [`OutputCell`].
    output: std::marker::PhantomData<fn(T) -> T>,
}

/// What the completion must still do after publishing the output.
pub(crate) struct Published<T> {
    /// SW12: wake the joiner ([`JoinSlot::wake_joiner`]).
    wake: bool,
    /// SW9: the handle was gone at FINISHED: the output is the
    /// completion's to dispose of.
    unclaimed: Option<Stored<T>>,
}

impl<T> Published<T> {
    /// For the loom models: whether to wake, and the unclaimed output.
    #[cfg(all(test, loom))]
    pub(crate) fn into_parts(self) -> (bool, Option<Stored<T>>) {
        (self.wake, self.unclaimed)
    }
}

impl<T> JoinSlot<T> {
    pub(crate) fn new() -> Self {
        Self {
            waker: UnsafeCell::new(None),
            output: std::marker::PhantomData,
        }
    }

    /// Whether the output is stored (it may have been taken already).
    pub(crate) fn is_finished(state: &CellState) -> bool {
        state.load_acquire().is_finished()
    }

    /// Records the task's end with the kernel and publishes the output.
    /// The kernel takes no slot lock (there is none): the hand-off is the
    /// state word's (SW9–SW12).
    ///
    /// J4: if the handle is gone, nobody can read the value, so it is
    /// dropped here, before the kernel hears of the completion; a panic in
    /// its destructor makes the task `Panicked` (escalated to its region,
    /// which is still open). A value the kernel discards (the task ended
    /// cancelled, or panicked by leaking) stays in the slot for the joiner
    /// or the handle's drop. A handle dropped after that reading but before
    /// the output is published leaves the output to this completion (SW9),
    /// which disposes of it as the handle's drop would have.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn complete(
        &self,
        state: &CellState,
        output: &(impl OutputCell<T> + ?Sized),
        core: &Arc<Core>,
        id: TaskId,
        region: RegionId,
        light: Option<LightEnd<'_>>,
        end: TaskEnd,
        value: Option<T>,
    ) {
        let (mut end, mut value) = (end, value);
        // SW10: JOIN_INTEREST, once cleared, stays clear.
        let handle_alive = state.load_acquire().is_join_interested();
        if !handle_alive
            && let Some(Err(payload)) = value.take().map(drop_catching)
            && matches!(end, TaskEnd::Returned)
        {
            end = TaskEnd::Panicked(PanicPayload::from_panic(payload));
        }
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
            let leaked = light.home.close_own(); // OB11
            if leaked.is_empty()
                && let (Finish::Light { advance }, entry) = light.set.finish(light.cell, false)
            {
                // SW10: with the handle gone for good (its value dropped
                // above), nobody reads the output: no output is made, and
                // FINISHED, which only hands it to the handle, is not set.
                let published = handle_alive.then(|| {
                    let stored = match light.cancel {
                        Some(cancel) if cancel.acked => {
                            let error = match cancel.reason {
                                SlotReason::Plain(plain) => SlotError::Aborted(plain),
                                SlotReason::Shared(reason) => SlotError::Cancelled(Some(reason)),
                                SlotReason::Lent(_) => {
                                    unreachable!("CS4: a slot hands its reason out shared")
                                }
                                SlotReason::None => SlotError::Cancelled(None),
                            };
                            (Err(error), value)
                        }
                        _ => (value.ok_or(SlotError::Cancelled(None)), None),
                    };
                    self.publish(state, output, stored)
                });
                if advance {
                    // LT3: the kernel waits for this region's last light task.
                    core.with_kernel_recent(|k, now| k.light_tasks_drained(region, now));
                }
                drop(entry);
                if let Some(published) = published {
                    self.after_publish(state, core, id, region, published);
                }
                return;
            }
            swept = Some(leaked);
        }
        let ((outcome, _leaks), actions) = core.with_kernel_recent_deferred(|k, now| {
            if let Some(cell) = cell {
                k.registered_cell(id, region, cell); // LT1: O(1)
            }
            match swept {
                Some(leaked) => k.complete_swept_task(id, end, handle_alive, leaked, now),
                None => k.complete_task(id, end, handle_alive, now),
            }
        });
        let stored = match (outcome, value) {
            (TaskOutcome::Ok, Some(v)) => (Ok(v), None),
            (TaskOutcome::Ok, None) => (Err(SlotError::Cancelled(None)), None),
            (TaskOutcome::Cancelled(r), v) => (Err(SlotError::Cancelled(Some(r))), v),
            (TaskOutcome::Panicked(p), v) => (Err(SlotError::Panicked(Box::new(p))), v),
        };
        let published = self.publish(state, output, stored);
        core.run_actions(actions);
        self.after_publish(state, core, id, region, published);
    }

    /// SW9: stores the task's end and publishes it (FINISHED).
    pub(crate) fn publish(
        &self,
        state: &CellState,
        output: &(impl OutputCell<T> + ?Sized),
        stored: Stored<T>,
    ) -> Published<T> {
        // SAFETY: SW9: before FINISHED only the completion (this thread)
        // touches the output cell; the handle waits for FINISHED.
        unsafe { output.put(stored) };
        let prev = state.publish_output();
        let unclaimed = if prev.is_join_interested() {
            None
        } else {
            // SAFETY: SW9, SW10: the handle's drop came before FINISHED
            // and left the output to this completion; nobody else reads it.
            unsafe { output.take() }
        };
        Published {
            wake: prev.is_join_waker_set(),
            unclaimed,
        }
    }

    /// The completion's last steps, after the kernel's deferred actions:
    /// the joiner's wake (SW12) and, if the handle was gone at FINISHED,
    /// what its drop would have done (J3, J4) with the output.
    fn after_publish(
        &self,
        state: &CellState,
        core: &Arc<Core>,
        id: TaskId,
        region: RegionId,
        published: Published<T>,
    ) {
        if published.wake {
            self.wake_joiner(state);
        }
        if let Some(stored) = published.unclaimed {
            dispose(stored, core, id, region, Unwind::Never);
        }
    }

    /// SW12: wakes the waker the completion's FINISHED RMW found set, then
    /// hands the cell back (dropping the waker if the handle is gone).
    pub(crate) fn wake_joiner(&self, state: &CellState) {
        // SAFETY: SW12: JOIN_WAKER is set and FINISHED is set, so the
        // handle only reads the cell (`will_wake`) until `waker_woken`.
        self.waker.with(|w| {
            if let Some(w) = unsafe { &*w } {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake_by_ref()));
            }
        });
        if !state.waker_woken().is_join_interested() {
            // SAFETY: SW12: the handle's drop came after FINISHED with
            // JOIN_WAKER set and left the waker cell alone; it is gone.
            let waker = self.waker.with_mut(|w| unsafe { (*w).take() });
            if waker.is_some() {
                let _ = drop_catching(waker);
            }
        }
    }

    /// The joiner's side: the stored end if FINISHED (`None` if it was
    /// taken already), else `Pending` with `waker` stored (SW11). Only the
    /// handle calls it, and the handle is not shared (`Join` owns it,
    /// `JoinMut` borrows it mutably).
    pub(crate) fn try_read(
        &self,
        state: &CellState,
        output: &(impl OutputCell<T> + ?Sized),
        waker: &Waker,
    ) -> Poll<Option<Stored<T>>> {
        let snapshot = state.load_acquire();
        if !snapshot.is_finished() {
            let stored = if snapshot.is_join_waker_set() {
                // SAFETY: SW12: while JOIN_WAKER is set the cell is only
                // read, by this handle and the completion.
                let same = self
                    .waker
                    .with(|w| unsafe { (*w).as_ref().is_some_and(|w| w.will_wake(waker)) });
                if same {
                    return Poll::Pending;
                }
                state
                    .unset_join_waker()
                    .and_then(|()| self.set_join_waker(state, waker))
            } else {
                self.set_join_waker(state, waker)
            };
            if stored.is_ok() {
                return Poll::Pending;
            }
        }
        // SAFETY: SW9: FINISHED was read with acquire by the handle, which
        // owns the output cell from then on (its drop has not run).
        let stored = unsafe { output.take() };
        if !state.load_acquire().is_join_waker_set() {
            // SAFETY: SW11, SW12: JOIN_WAKER is clear after FINISHED: the
            // completion is done with the waker cell; it is the handle's.
            let waker = self.waker.with_mut(|w| unsafe { (*w).take() });
            drop(waker);
        }
        Poll::Ready(stored)
    }

    /// SW11: stores `waker` (JOIN_WAKER is clear: the cell is the
    /// handle's) and publishes it; `Err` if the output is there.
    fn set_join_waker(&self, state: &CellState, waker: &Waker) -> Result<(), Snapshot> {
        // SAFETY: SW11: JOIN_WAKER is clear, so the completion does not
        // touch the cell, and only this handle sets the bit.
        self.waker.with_mut(|w| unsafe { *w = Some(waker.clone()) });
        state.set_join_waker().inspect_err(|_| {
            // SAFETY: SW11: FINISHED came with JOIN_WAKER clear, so the
            // completion will not read the cell; it is still the handle's.
            let waker = self.waker.with_mut(|w| unsafe { (*w).take() });
            drop(waker);
        })
    }

    pub(crate) fn poll_join(
        &self,
        state: &CellState,
        output: &(impl OutputCell<T> + ?Sized),
        core: &Arc<Core>,
        id: TaskId,
        region: RegionId,
        waker: &Waker,
    ) -> Poll<Result<T, JoinError>> {
        let Poll::Ready(stored) = self.try_read(state, output, waker) else {
            return Poll::Pending;
        };
        let Some((out, discarded)) = stored else {
            panic!("task {id}: output already taken (rule J1: a task's output is delivered once)");
        };
        if matches!(out, Err(SlotError::Panicked(_))) {
            core.with_kernel_recent(|k, _| k.panic_joined(region, id));
        }
        drop_unread(discarded, core, id, region, Unwind::InUserCode);
        Poll::Ready(out.map_err(|e| e.into_join_error(region, id)))
    }

    /// The handle's side of its drop (SW10): what it still owns. `Some`:
    /// the output (FINISHED came first; `None` inside if it was joined).
    pub(crate) fn release(
        &self,
        state: &CellState,
        output: &(impl OutputCell<T> + ?Sized),
    ) -> Option<Option<Stored<T>>> {
        let prev = state.drop_join_interest();
        if !prev.is_finished() || !prev.is_join_waker_set() {
            // SAFETY: SW10, SW11: JOIN_WAKER is clear now (this RMW cleared
            // it, or FINISHED came with it clear): the cell is the handle's.
            let waker = self.waker.with_mut(|w| unsafe { (*w).take() });
            if waker.is_some() {
                let _ = drop_catching(waker);
            }
        }
        // SAFETY: SW9, SW10: FINISHED came before this drop, which owns
        // the output now; without it the completion will.
        prev.is_finished().then(|| unsafe { output.take() })
    }

    pub(crate) fn release_handle(
        &self,
        state: &CellState,
        output: &(impl OutputCell<T> + ?Sized),
        core: &Arc<Core>,
        id: TaskId,
        region: RegionId,
    ) {
        if let Some(Some(stored)) = self.release(state, output) {
            dispose(stored, core, id, region, Unwind::InUserCode);
        }
    }

    /// Drops a waker the slot still holds (the cell is going away),
    /// catching panics: the runtime may be the one dropping it. (The
    /// output, if any, goes with the cell's stage.)
    pub(crate) fn clear(&mut self) {
        // SAFETY: `&mut self`: nobody else can reach the cell.
        let held = self.waker.with_mut(|w| unsafe { (*w).take() });
        if held.is_some() {
            let _ = drop_catching(held);
        }
    }
}

// SAFETY: the waker cell is reached only as rules SW11 and SW12 allow:
// one side at a time for writes, shared reads only while JOIN_WAKER is
// set; a `Waker` is `Send` and `Sync`. No `T` is stored here.
unsafe impl<T> Sync for JoinSlot<T> {}

/// Where a disposal runs: in user code (a join, a handle's drop), where a
/// panic of a value's destructor may continue once the region can no
/// longer take it, or in the runtime's completion, where it never does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unwind {
    InUserCode,
    Never,
}

/// What a handle's drop does with an output nobody joined: an unjoined
/// panic fails the region (J3), an unread value is dropped (J4).
fn dispose<T>(stored: Stored<T>, core: &Arc<Core>, id: TaskId, region: RegionId, unwind: Unwind) {
    let (out, discarded) = stored;
    let unjoined_panic = matches!(out, Err(SlotError::Panicked(_)));
    let unread = match out {
        Ok(v) => Some(v),
        Err(_) => discarded,
    };
    if unjoined_panic {
        let ((), actions) =
            core.with_kernel_deferred(|k, now| k.panic_handle_dropped(region, id, now));
        core.run_actions(actions);
    }
    drop_unread(unread, core, id, region, unwind);
}

/// Drops `value`, returning the panic its destructor raised, if any.
fn drop_catching<V>(value: V) -> Result<(), Box<dyn std::any::Any + Send>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value)))
}

/// J4: drops a completed task's value that nobody will read. A panic in its
/// destructor fails the task's region like an unjoined panic; if that
/// region has closed already (the handle outlived it), the panic continues
/// in the code that dropped the handle or joined, which is user code (in
/// the runtime's own completion, `Unwind::Never`, the panic hook's report
/// is all there is).
fn drop_unread<T>(
    value: Option<T>,
    core: &Arc<Core>,
    id: TaskId,
    region: RegionId,
    unwind: Unwind,
) {
    let Some(Err(payload)) = value.map(drop_catching) else {
        return;
    };
    let report = PanicPayload::from_panic_ref(&*payload);
    let reported = core.with_kernel(|k, now| k.late_task_panic(region, id, report, now));
    if !reported && unwind == Unwind::InUserCode && !std::thread::panicking() {
        std::panic::resume_unwind(payload);
    }
}

/// What a handle needs from its task, independent of the future's type.
pub(crate) trait JoinTarget<T>: super::abort::AbortTarget {
    fn slot(&self) -> &JoinSlot<T>;
    /// The cell's state word, whose bits guard the slot (SW9–SW12).
    fn state(&self) -> &CellState;
    /// Where the output lies (SW9).
    fn output(&self) -> &dyn OutputCell<T>;
    fn core(&self) -> &Arc<Core>;
    fn region(&self) -> RegionId;
}

/// Loom models of the join hand-off (rules SW9–SW12 in `state`, run by
/// `.ci/run` with `--cfg loom`): the real word and the real slot, the
/// completion, a join poll and the handle's drop on separate threads.
#[cfg(all(test, loom))]
mod loom_tests {
    // Bookkeeping, outside the model (loom explores only its own types).
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::{Poll, Waker};

    use super::*;
    use crate::exec::state::CellState;
    use crate::loom::cell::UnsafeCell;
    use crate::loom::sync::Arc;
    use crate::loom::{model, thread};

    // ----- the join hand-off (SW9–SW12) --------------------------------

    /// A task's output that counts its drops (std, outside the model).
    struct Out(std::sync::Arc<AtomicUsize>);

    impl Drop for Out {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// A joiner's waker that counts its wakes.
    #[derive(Default)]
    struct Joiner {
        wakes: AtomicUsize,
    }

    impl std::task::Wake for Joiner {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.wakes.fetch_add(1, SeqCst);
        }
    }

    fn joiner() -> (std::sync::Arc<Joiner>, Waker) {
        let j = std::sync::Arc::new(Joiner::default());
        (j.clone(), Waker::from(j))
    }

    /// The output cell (a task cell's stage), as a loom cell, so an access
    /// the word does not order is reported as a data race.
    struct Output(UnsafeCell<Option<Stored<Out>>>);

    impl OutputCell<Out> for Output {
        unsafe fn put(&self, stored: Stored<Out>) {
            // SAFETY: the caller owns the cell (SW9); loom checks it.
            self.0.with_mut(|o| unsafe { *o = Some(stored) });
        }

        unsafe fn take(&self) -> Option<Stored<Out>> {
            // SAFETY: as for `put`.
            self.0.with_mut(|o| unsafe { (*o).take() })
        }
    }

    /// A cell's join side: the real word and the real slot (`join`), with
    /// what the completion and the handle did with the output.
    struct Joined {
        state: CellState,
        slot: JoinSlot<Out>,
        output: Output,
        /// Outputs the handle read (J1: at most 1).
        reads: AtomicUsize,
        /// Outputs disposed of unjoined, by the completion or the drop.
        disposals: AtomicUsize,
        /// Drops of the output value.
        dropped: std::sync::Arc<AtomicUsize>,
    }

    impl Joined {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                state: CellState::new(),
                slot: JoinSlot::new(),
                output: Output(UnsafeCell::new(None)),
                reads: AtomicUsize::new(0),
                disposals: AtomicUsize::new(0),
                dropped: std::sync::Arc::default(),
            })
        }

        /// `JoinSlot::complete`'s hand-off: publish, wake, dispose.
        fn complete(&self) {
            self.state.complete();
            let stored = (Ok(Out(self.dropped.clone())), None);
            let published = self.slot.publish(&self.state, &self.output, stored);
            let (wake, unclaimed) = published.into_parts();
            if wake {
                self.slot.wake_joiner(&self.state);
            }
            if let Some(stored) = unclaimed {
                self.dispose(stored);
            }
        }

        fn dispose(&self, stored: Stored<Out>) {
            assert!(stored.0.is_ok());
            self.disposals.fetch_add(1, SeqCst);
        }

        /// One poll of the join: `true` if it returned the output.
        fn poll(&self, waker: &Waker) -> bool {
            match self.slot.try_read(&self.state, &self.output, waker) {
                Poll::Pending => false,
                Poll::Ready(stored) => {
                    let stored = stored.expect("J1: the output was taken already");
                    let (Ok(out), None) = stored else {
                        unreachable!("the model's task returns a value")
                    };
                    drop(out);
                    self.reads.fetch_add(1, SeqCst);
                    true
                }
            }
        }

        /// The handle's drop (`release_handle`).
        fn drop_handle(&self) {
            if let Some(Some(stored)) = self.slot.release(&self.state, &self.output) {
                self.dispose(stored);
            }
        }

        /// After every thread is done and the last reference dropped: the
        /// output was read or disposed of exactly once and dropped exactly
        /// once.
        fn assert_handed_off_once(this: Arc<Self>) {
            let dropped = this.dropped.clone();
            let handed = this.reads.load(SeqCst) + this.disposals.load(SeqCst);
            assert_eq!(handed, 1, "the output read or disposed of exactly once");
            drop(this);
            assert_eq!(dropped.load(SeqCst), 1, "the output dropped exactly once");
        }
    }

    impl Drop for Joined {
        fn drop(&mut self) {
            // The cell's destructor (`TaskCell::drop`).
            self.slot.clear();
            // SAFETY: `&mut self`: nobody else reaches the cell.
            drop(unsafe { self.output.take() });
        }
    }

    /// SW9, SW11, SW12: a join poll racing the completion: the poll either
    /// stores its waker before FINISHED, and then the waker is woken
    /// exactly once and a later poll reads the output, or it reads the
    /// output itself; the output is read once (J1) and the waker is
    /// released (no reference leaked).
    /// The completion, on its own thread.
    fn spawn_completer(cell: &Arc<Joined>) -> thread::JoinHandle<()> {
        let cell = cell.clone();
        thread::spawn(move || cell.complete())
    }

    #[test]
    fn loom_a_join_poll_racing_the_completion_is_woken_iff_it_waited() {
        model(|| {
            let cell = Joined::new();
            let completer = spawn_completer(&cell);
            let (j, waker) = joiner();
            let first = cell.poll(&waker);
            completer.join().unwrap();
            let woken = j.wakes.load(SeqCst);
            if first {
                assert_eq!(woken, 0, "SW12: no waker was stored");
            } else {
                assert_eq!(woken, 1, "SW12: a waker stored before FINISHED is woken");
                assert!(cell.poll(&waker), "the wake leads to the output");
            }
            cell.drop_handle();
            drop(waker);
            Joined::assert_handed_off_once(cell);
            assert_eq!(std::sync::Arc::strong_count(&j), 1, "a waker leaked");
        });
    }

    /// SW9, SW10: the handle's drop racing the completion, after a poll
    /// that stored a waker: exactly one side disposes of the output (the
    /// drop if FINISHED came first, else the completion), the waker is
    /// dropped exactly once by whichever side owns it, and never woken
    /// after the handle is gone.
    #[test]
    fn loom_a_handle_drop_racing_the_completion_disposes_of_the_output_once() {
        model(|| {
            let cell = Joined::new();
            let (j, waker) = joiner();
            assert!(!cell.poll(&waker), "not complete yet");
            drop(waker);
            let completer = spawn_completer(&cell);
            cell.drop_handle();
            completer.join().unwrap();
            assert_eq!(cell.reads.load(SeqCst), 0);
            assert!(j.wakes.load(SeqCst) <= 1);
            Joined::assert_handed_off_once(cell);
            assert_eq!(std::sync::Arc::strong_count(&j), 1, "a waker leaked");
        });
    }

    /// SW11, SW12: a joiner replacing its waker (a poll from another task)
    /// while the completion reads the stored one: the replaced waker is
    /// never woken once the new one is stored, a poll that returns
    /// `Pending` has its waker woken exactly once, at most one wake in all,
    /// and every waker clone is released.
    #[test]
    fn loom_replacing_the_join_waker_races_the_completion_safely() {
        model(|| {
            let cell = Joined::new();
            let (j1, w1) = joiner();
            let (j2, w2) = joiner();
            assert!(!cell.poll(&w1));
            let completer = spawn_completer(&cell);
            let second = cell.poll(&w2);
            completer.join().unwrap();
            let (a, b) = (j1.wakes.load(SeqCst), j2.wakes.load(SeqCst));
            assert!(a + b <= 1, "one completion wakes at most once");
            if !second {
                assert_eq!((a, b), (0, 1), "SW12: the stored waker is the one woken");
                assert!(cell.poll(&w2));
            }
            cell.drop_handle();
            drop((w1, w2));
            Joined::assert_handed_off_once(cell);
            assert_eq!(std::sync::Arc::strong_count(&j1), 1, "a waker leaked");
            assert_eq!(std::sync::Arc::strong_count(&j2), 1, "a waker leaked");
        });
    }

    /// SW10 with a join poll and the completion on three threads: the
    /// handle polls on one thread and is dropped on another (it is `Send`),
    /// while the task completes on a third.
    #[test]
    fn loom_complete_join_poll_and_handle_drop_on_three_threads() {
        model(|| {
            let cell = Joined::new();
            let (j, waker) = joiner();
            let completer = spawn_completer(&cell);
            let handle = {
                let cell = cell.clone();
                thread::spawn(move || {
                    let read = cell.poll(&waker);
                    drop(waker);
                    read
                })
            };
            let read = handle.join().unwrap();
            let dropper = {
                let cell = cell.clone();
                thread::spawn(move || cell.drop_handle())
            };
            dropper.join().unwrap();
            completer.join().unwrap();
            assert_eq!(cell.reads.load(SeqCst), usize::from(read));
            if read {
                assert_eq!(j.wakes.load(SeqCst), 0);
            }
            Joined::assert_handed_off_once(cell);
            assert_eq!(std::sync::Arc::strong_count(&j), 1, "a waker leaked");
        });
    }
}
