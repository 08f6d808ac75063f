//! The task cell: one allocation holding a spawned task's future, its wake
//! state and its join slot.
//!
//! Wake state machine (rule W1–W4), the lifecycle field of the cell's
//! state word (`super::state`, rules SW1–SW12: one `AtomicU64` that also
//! holds STARTED, the A1 attention bits, the cancel lane hint and the join
//! hand-off's bits; the task's output, once its future is dropped, lies in
//! the future's storage, the stage, until the join takes it: SW9):
//! ```text
//!   IDLE ──wake──► SCHEDULED ──run──► RUNNING ──pending──► IDLE
//!                                       │  ▲
//!                                  wake │  │ pending (re-queue)
//!                                       ▼  │
//!                                     NOTIFIED
//!   any ──complete──► COMPLETE (terminal)
//! ```
//! - W1: a task is in the run queue at most once (only the IDLE→SCHEDULED
//!   and NOTIFIED→SCHEDULED edges push it). Every edge is one RMW of the
//!   word that keeps its other bits (SW1).
//! - W2: a wake during a poll is never lost (RUNNING→NOTIFIED re-queues it
//!   when the poll returns).
//! - W3: waking an ordinary task takes no lock: one compare-and-swap plus a
//!   lock-free queue push. (On the multi-thread runtime a task with a budget
//!   deadline goes to the timed lane, a small mutex-guarded heap.)
//! - W4: waking a completed task does nothing.
//! - W5: the future is touched only by the thread that holds the RUNNING
//!   state (plus the spawner before the first queueing, and `Drop`), so it
//!   lives in an `UnsafeCell`: a poll takes no lock.
//! - W6: every waker of the cell points at its `Arc` allocation through one
//!   vtable; an owned waker holds one strong reference, the waker lent to
//!   a poll holds none (`waker_ref`), so a poll changes no reference count.
//! - W7: while a cell polls its future, the thread's task context
//!   (`context`) names the cell's task and points at its state word (set
//!   around the poll by `Core::poll_task`, called from `run`, which holds
//!   a reference to the cell, and restored before `run` moves the state
//!   on), so code inside the poll reads its own task's cancel hint without
//!   a lock (`context::polled_task_cancel_hint`; rule A2's per-task test in
//!   `Cx`).
//! - W8: a cell lives only in an `Arc` (`build` is its one constructor and
//!   returns it inside one), so a `&TaskCell` always points into a live
//!   `Arc` allocation holding at least the reference the borrow came
//!   through: `arc_from_ref` can take a new strong reference from it. An
//!   abort through a handle borrows the cell this way and queues it with
//!   the one reference the queue needs (no clone and drop of the handle's).

use std::cell::UnsafeCell;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::abort::AbortTarget;
use super::cancel_slot::{CancelSlot, LentReason, PlainReason, SlotReason};
use super::context::CellWords;
use super::core::{Core, Step};
use super::join::{JoinSlot, JoinTarget, LightEnd, OutputCell, Stored};
use super::runnable::Runnable;
use super::state::{CellState, Pending, Wake};
use crate::kernel::{Attention, LightCancel, LightRequest, LightTasks, Links, TaskEnd};
use crate::types::{CancelReason, PanicPayload, RegionId, TaskId};

/// Where the future is in its life.
enum Stage<F: Future> {
    /// The cell exists (and is registered with the kernel) but the spawn
    /// closure has not produced the future yet; never queued in this stage.
    Vacant,
    Running(F),
    /// The future is gone; the storage holds the task's end from the
    /// completion until the join takes it (the join slot's output cell,
    /// rule SW9 in `state`), so the output costs no bytes of its own.
    Done(Option<Stored<F::Output>>),
}

/// Layout (`repr(C)`, the order below): what an abort or a wake touches
/// first (the state word, the cancel slot, the core) sits right after the
/// `Arc`'s counts, contiguous (one cache line, or two as the 16-byte
/// aligned block falls), not wherever the compiler would put each field;
/// the future (the stage) comes last.
#[repr(C)]
pub(crate) struct TaskCell<F: Future> {
    /// Rules SW1–SW13 (`state`): the wake state (W1–W4); STARTED, set by
    /// the first run; the A1 attention bits (`kernel`): whether the next
    /// poll must go through the kernel (ATTENTION), or only if the task
    /// has not started (CANCEL_ATTENTION); the cancel lane hint, the
    /// severity of the strongest cancel request (set by the kernel on a
    /// cancel request and raised when the reason is strengthened, never
    /// reset; read by the scheduler on each schedule); and, constant
    /// (SW13), whether the kernel may use the attention flag (FAST_POLLS:
    /// spawned tasks) and the shard of `light` this cell joins (LIGHT_SHARD,
    /// LT9: the spawning thread's).
    state: CellState,
    /// A light task's pending cancellation (rules LT7, LT8 in
    /// `kernel::light`), until the kernel registers the task; in a cell
    /// spawned through the kernel, which stores no cancel here, the budget
    /// deadline that is the timed lane's hint (CS3 in `cancel_slot`: a
    /// light task has no budget, LT4).
    cancel: CancelSlot,
    core: Arc<Core>,
    /// The region's light-task set, if this task was spawned light (rules
    /// LT1–LT6 in `kernel::light`): its completion looks there first.
    light: Option<Arc<LightTasks>>,
    /// The kernel's id (`TaskId::to_bits`): set once, right after the kernel
    /// creates the record and before the cell is first queued.
    id: AtomicU64,
    region: RegionId,
    /// A light task's links in `light`'s list (rules IL1–IL5 in
    /// `types::intrusive`): owned by that set, read and written only by
    /// the holder of its lock (IL2); unlinked in any other cell.
    light_links: Links<dyn Attention>,
    pub(crate) join: JoinSlot<F::Output>,
    /// The task's obligation home word (rules OB1–OB10 in
    /// `kernel::obligation`): in the cell, so spawning allocates nothing
    /// more. Reached during the task's polls through the thread-local
    /// context (OB9), by permits through a `Weak`, by the kernel through
    /// `Attention::obligation_home`.
    home: crate::kernel::ObligationHome,
    /// Rule W5: touched only by the thread that owns the cell's RUNNING
    /// state (won the SCHEDULED → RUNNING swap, until it leaves RUNNING),
    /// by the spawner in `fill` before the cell is first queued, and by
    /// `Drop`. The state's acquire/release transitions order the accesses.
    /// Once the future is dropped (`Done`), the stage is the join's output
    /// cell (rule SW9 in `state`): the completion's until it sets FINISHED,
    /// then the handle's (or the completion's, if the handle was gone).
    stage: UnsafeCell<Stage<F>>,
}

// SAFETY: the only field that is not `Sync` on its own is the stage, and
// W5 (then SW9, for the output) gives one thread at a time access to it;
// the future (`F: Send`) only ever moves between threads with the RUNNING
// state, and the output (`F::Output: Send`) with the FINISHED bit, as in a
// `Mutex`. The join slot is `Sync` by its own rules (SW11, SW12).
unsafe impl<F: Future + Send> Sync for TaskCell<F> where F::Output: Send {}

impl<F> TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// Creates an empty cell in the SCHEDULED state, so wakes that arrive
    /// before the spawner queues it are absorbed (W1). Next: the kernel
    /// record ([`set_id`](Self::set_id)), then [`fill`](Self::fill).
    pub(crate) fn vacant(
        region: RegionId,
        core: Arc<Core>,
        fast_polls: bool,
        light: Option<Arc<LightTasks>>,
    ) -> Arc<Self> {
        let state = CellState::vacant(false, fast_polls, crate::kernel::light::thread_shard());
        Self::build(region, core, light, u64::MAX, state)
    }

    /// An empty cell for light task `id` of `set` (rules LT1–LT5): its id
    /// and its attention-free state (A1) set at construction, so the spawn
    /// writes neither afterwards.
    pub(crate) fn vacant_light(
        region: RegionId,
        core: Arc<Core>,
        set: Arc<LightTasks>,
        id: TaskId,
    ) -> Arc<Self> {
        let state = CellState::vacant(true, true, crate::kernel::light::thread_shard());
        Self::build(region, core, Some(set), id.to_bits(), state)
    }

    /// CXH2: the region's set, if this task was spawned light.
    pub(crate) fn light_arc(&self) -> Option<&Arc<LightTasks>> {
        self.light.as_ref()
    }

    fn build(
        region: RegionId,
        core: Arc<Core>,
        light: Option<Arc<LightTasks>>,
        id: u64,
        state: CellState,
    ) -> Arc<Self> {
        Arc::new(Self {
            id: AtomicU64::new(id),
            region,
            core,
            state,
            light,
            light_links: Links::new(),
            stage: UnsafeCell::new(Stage::Vacant),
            join: JoinSlot::new(),
            home: crate::kernel::ObligationHome::new(),
            cancel: CancelSlot::new(),
        })
    }

    /// Records the kernel's id. `fast_start` (rule A1, decided under the
    /// kernel lock so that no later `request_attention` is overwritten)
    /// lets the first poll skip the kernel.
    pub(crate) fn set_id(&self, id: TaskId, fast_start: bool) {
        self.id.store(id.to_bits(), Ordering::Relaxed);
        if fast_start {
            self.state.clear_attention();
        }
    }

    /// Installs the future; the spawner queues the cell next. Must be
    /// called once, before the cell is first queued.
    pub(crate) fn fill(&self, future: F) {
        // SAFETY: W5: the cell has not been queued yet, and wakes before
        // that find it SCHEDULED and never run it, so nobody else touches
        // the stage; the queue push that follows publishes the write.
        unsafe { *self.stage.get() = Stage::Running(future) };
    }

    /// A waker owning one reference to the cell (rule W6).
    pub(crate) fn waker(self: &Arc<Self>) -> Waker {
        Self::into_waker(self.clone())
    }

    /// A waker owning the reference `this` was (rule W6): no count change
    /// (a region cancel turns each cell it reached into a waker this way).
    fn into_waker(this: Arc<Self>) -> Waker {
        let data = Arc::into_raw(this).cast::<()>();
        // SAFETY: W6: `data` is an `Arc<Self>` reference from `into_raw`,
        // which this waker owns; the vtable's functions treat it as such.
        unsafe { Waker::from_raw(RawWaker::new(data, &Self::WAKER_VTABLE)) }
    }

    /// A waker borrowing the caller's reference (no count change): valid
    /// while `self` is, and never dropped as an owner (`ManuallyDrop`).
    fn waker_ref(self: &Arc<Self>) -> ManuallyDrop<Waker> {
        let data = Arc::as_ptr(self).cast::<()>();
        // SAFETY: W6: `data` points at a live `Arc<Self>` allocation for
        // as long as `self` is borrowed; the `ManuallyDrop` keeps the drop
        // function from releasing a reference this waker does not own, and
        // clones take their own reference.
        ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(data, &Self::WAKER_VTABLE)) })
    }

    /// W6: every waker of a task cell: the data pointer is an
    /// `Arc<TaskCell<F>>` reference (owned, except in `waker_ref`).
    const WAKER_VTABLE: RawWakerVTable = RawWakerVTable::new(
        Self::clone_raw,
        Self::wake_raw,
        Self::wake_by_ref_raw,
        Self::drop_raw,
    );

    unsafe fn clone_raw(data: *const ()) -> RawWaker {
        // SAFETY: W6: `data` is a live `Arc<Self>` pointer; the new waker
        // owns the reference taken here.
        unsafe { Arc::increment_strong_count(data.cast::<Self>()) };
        RawWaker::new(data, &Self::WAKER_VTABLE)
    }

    unsafe fn wake_raw(data: *const ()) {
        // SAFETY: W6: waking by value consumes the waker's own reference.
        let cell = unsafe { Arc::from_raw(data.cast::<Self>()) };
        cell.schedule();
    }

    unsafe fn wake_by_ref_raw(data: *const ()) {
        // SAFETY: W6: borrowed, so the reference is not released
        // (`ManuallyDrop`).
        let cell = ManuallyDrop::new(unsafe { Arc::from_raw(data.cast::<Self>()) });
        cell.schedule();
    }

    unsafe fn drop_raw(data: *const ()) {
        // SAFETY: W6: dropping a waker releases the reference it owns.
        drop(unsafe { Arc::from_raw(data.cast::<Self>()) });
    }

    pub(crate) fn task_id(&self) -> TaskId {
        TaskId::from_bits(self.id.load(Ordering::Relaxed))
    }

    pub(crate) fn region(&self) -> RegionId {
        self.region
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// RT1 (`exec::core`): the completed task's run reference goes to the
    /// driver's retire hook, which may drop it later, in a batch, unless
    /// the cell's recorded shard (its spawning thread's, LT9, SW13) is this
    /// thread's, so this thread most likely spawned it: then it is dropped
    /// at once, so its memory goes back to this thread's allocator cache,
    /// where the next spawn finds it (with more threads than shards, a
    /// cell of a thread sharing the shard is dropped at once too, as
    /// before RT1) (a ping-pong that spawns a task per round was 5%
    /// slower with every cell batched).
    fn retire(self: Arc<Self>) {
        let spawned_here = self.state.load().light_shard() == crate::kernel::light::thread_shard();
        if spawned_here {
            return;
        }
        let retire = self.core.retire_hook();
        retire(self);
    }

    /// W1–W4: the lock-free wake transition.
    fn schedule(self: &Arc<Self>) {
        if self.state.wake() == Wake::Queue {
            self.core.schedule(self.clone());
        }
    }

    /// A new strong reference to this cell, from a borrow (rule W8).
    fn arc_from_ref(&self) -> Arc<Self> {
        let ptr: *const Self = self;
        // SAFETY: W8: `self` lies in a live `Arc` allocation (the cell's one
        // constructor returns it inside one) whose count is at least the
        // reference this borrow came through; the count raised here is the
        // returned `Arc`'s own.
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }

    /// LT8: a light task that is still pending with a cancel stored in its
    /// cell is registered, so the kernel arms its grace deadline (K4) and
    /// counts its cleanup polls. Called before the poll's pending edge, so
    /// the next poll sees what the registration asked of it.
    fn register_if_draining(&self) {
        if self.light.is_none() {
            return;
        }
        let word = self.state.load();
        if word.cancel_severity().is_some() && !word.is_registered() {
            self.register_cell();
        }
    }

    /// LT1: registers this light task with the kernel (O(1): the kernel
    /// unlinks this cell from its set), unless it is registered already.
    fn register_cell(&self) {
        if self.state.registered() {
            return;
        }
        let (id, region) = (self.task_id(), self.region);
        self.core.with_kernel_recent(|k, _| {
            k.registered_cell(id, region, self);
        });
    }

    /// LT7: an abort of a light task the kernel has not registered is
    /// stored in the cell; `Err` hands the reason back for the kernel.
    fn abort_in_place(&self, reason: CancelReason) -> Result<(), CancelReason> {
        // LR5: the owner of light regions is cancelled through the kernel,
        // which carries the cancel to its regions before anyone sees it.
        let word = self.state.load_acquire();
        if self.light.is_none() || word.is_registered() || word.owns_regions() {
            return Err(reason);
        }
        // CL1: a cancel's stamp and grace deadline are exact (a recent
        // reading could lag by a whole batch or a long poll and cut the
        // grace period short by as much).
        let now = self.core.now_quiet();
        let deadline = now + self.core.grace_for(reason.kind);
        // LT7: a plain reason (an `abort()`'s) is stored as its kind and
        // stamp, allocating nothing; any other is stamped and shared.
        let (id, region) = (self.task_id(), self.region);
        let plain = PlainReason::of(&reason, now);
        let (stored, shared) = match plain {
            Some(plain) => (SlotReason::Plain(plain), None),
            None => {
                let shared = Arc::new(crate::kernel::stamp(reason, now, region, Some(id)));
                (SlotReason::Shared(shared.clone()), Some(shared))
            }
        };
        // SW14: the hint and the wake edge in one RMW; queued (to observe
        // it) once the reason is stored. W8: the queue's reference is the
        // only one taken.
        match self.cancel.request(&self.state, stored, deadline) {
            (LightRequest::Stored, wake) => {
                // SW15, LR5: an owner of light regions is registered now;
                // the registration carries the stored cancel to them (K2).
                if self.state.load().owns_regions() {
                    self.register_cell();
                }
                if wake == Wake::Queue {
                    self.queue();
                }
                Ok(())
            }
            (LightRequest::Unchanged | LightRequest::Complete, _) => Ok(()),
            // The slot dropped its copy: the reason goes to the kernel.
            (LightRequest::Registered, _) => Err(match (shared, plain) {
                (Some(shared), _) => Arc::unwrap_or_clone(shared),
                (None, Some(plain)) => plain.to_reason(region, id),
                (None, None) => unreachable!("a reason is plain or shared"),
            }),
        }
    }

    /// Drops the future in place (never moving it) and reports panics from
    /// its destructor.
    fn drop_future(stage: &mut Stage<F>) -> Option<PanicPayload> {
        // Assigning drops the old value where it lies, so the pinning
        // guarantee (never moved before drop) holds.
        catch_unwind(AssertUnwindSafe(|| *stage = Stage::Done(None)))
            .err()
            .map(PanicPayload::from_panic)
    }

    fn finish(self: &Arc<Self>, end: TaskEnd, value: Option<F::Output>) {
        let before = self.state.complete();
        // LT7: the slot is read after COMPLETE is set, and only if a request
        // raised the hint first; a later request sees COMPLETE and stores
        // nothing.
        let light = self.light.as_deref().map(|set| LightEnd {
            set,
            cell: &**self,
            registered: self.state.registered(),
            home: &self.home,
            // SW10: a handle gone at COMPLETE never returns, so its
            // task's end is never read: no reason is copied for it.
            cancel: before
                .cancel_severity()
                .and_then(|_| self.cancel.completion(before.is_join_interested())),
        });
        self.join.complete(
            &self.state,
            &**self,
            &self.core,
            self.task_id(),
            self.region,
            light,
            end,
            value,
        );
    }
}

impl<F: Future> Drop for TaskCell<F> {
    /// The cell's last reference may be dropped by the runtime (a worker
    /// after a poll, a queue or kernel teardown dropping leftover tasks):
    /// a future that never completed, a value or a waker left in the join
    /// slot are user code whose panic must not unwind there (contract 3).
    /// The panic hook reported it; the task has completed or the runtime is
    /// going away, so there is no outcome left to report it in.
    fn drop(&mut self) {
        let stage = self.stage.get_mut();
        if !matches!(stage, Stage::Vacant | Stage::Done(None)) {
            // Dropped in place (the pinning guarantee).
            let _ = catch_unwind(AssertUnwindSafe(|| *stage = Stage::Done(None)));
        }
        self.join.clear();
    }
}

impl<F> Runnable for TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn run(self: Arc<Self>) {
        // SW3: the run edge sets STARTED; the snapshot it replaced says
        // whether the future was polled before.
        let Some(before) = self.state.start_running() else {
            return; // W4: completed (or a stale queue entry).
        };
        // SAFETY: W5: this thread won SCHEDULED -> RUNNING, so it alone
        // touches the stage until it moves the state on (every exit below
        // ends its use of `stage` first).
        let stage = unsafe { &mut *self.stage.get() };
        let Stage::Running(future) = stage else {
            return;
        };
        // SAFETY: the future lives inside this Arc allocation and is never
        // moved out of it: it is only ever dropped in place (`drop_future`
        // assigns `Stage::Done` over it). So pinning it here is sound.
        let pinned = unsafe { Pin::new_unchecked(future) };
        let waker = self.waker_ref();
        if self.light.is_some() && before.has_cancel_attention() && !before.is_started() {
            // LT8: cancelled before it started; the kernel drops it unpolled
            // in `before_poll`, registered here in O(1) from the cell.
            self.register_cell();
        }
        // SW13: a constant of the word, in the run edge's snapshot.
        let fast_polls = before.fast_polls();
        let cell = fast_polls.then_some(CellWords {
            state: &self.state,
            cancel: self.light.is_some().then_some(&self.cancel),
            seen: before,
            light_cell: self
                .light
                .is_some()
                .then_some(&*self as &(dyn crate::kernel::Attention + 'static)),
        });
        let polled_before = before.is_started();
        // OB9: the task's own `Cx` finds its home in the context.
        let home = fast_polls.then_some(&self as &(dyn crate::kernel::HomeSource + 'static));
        let step = self.core.poll_task(
            self.task_id(),
            self.region,
            pinned,
            &waker,
            cell,
            polled_before,
            home,
        );
        match step {
            Step::Pending => {
                self.register_if_draining();
                if self.state.pending() == Pending::Requeue {
                    // W2: woken while running; run again.
                    self.core.schedule(self.clone());
                }
            }
            Step::Ready(value) => {
                let drop_panic = Self::drop_future(stage);
                let end = drop_panic.map_or(TaskEnd::Returned, TaskEnd::Panicked);
                self.finish(end, Some(value));
                self.retire();
            }
            Step::Panicked(payload) => {
                Self::drop_future(stage);
                self.finish(TaskEnd::Panicked(PanicPayload::from_panic(payload)), None);
                self.retire();
            }
            Step::Drop => {
                let drop_panic = Self::drop_future(stage);
                let end = drop_panic.map_or(TaskEnd::Dropped, TaskEnd::Panicked);
                self.finish(end, None);
                self.retire();
            }
        }
    }

    fn id(&self) -> TaskId {
        self.task_id()
    }

    fn cancel_hint(&self) -> Option<u8> {
        self.state.load().cancel_severity()
    }

    fn deadline_hint(&self) -> Option<u64> {
        // CS3: only a cell spawned through the kernel keeps one (a light
        // cell's slot deadline is a cancel's grace deadline).
        if self.light.is_some() {
            return None;
        }
        self.cancel.lane_deadline()
    }
}

impl<F> crate::kernel::HomeHost for TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn obligation_home(&self) -> &crate::kernel::ObligationHome {
        &self.home
    }

    fn obligation_counters(&self) -> &crate::kernel::ObligationCounters {
        self.core.obligation_counters()
    }
}

impl<F> crate::kernel::HomeSource for Arc<TaskCell<F>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn host(&self) -> &dyn crate::kernel::HomeHost {
        &**self
    }

    fn downgrade(&self) -> std::sync::Weak<dyn crate::kernel::HomeHost> {
        Arc::downgrade(self) as std::sync::Weak<dyn crate::kernel::HomeHost>
    }

    fn region(&self) -> RegionId {
        self.region
    }
}

impl<F> crate::kernel::Attention for TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn obligation_home(&self) -> Option<&crate::kernel::ObligationHome> {
        Some(&self.home)
    }

    fn request_attention(&self) {
        self.state.request_attention();
    }

    fn cancel_requested(&self, severity: u8) {
        let _ = self.state.cancel_requested(severity);
    }

    fn deadline_hint(&self, deadline: crate::types::Time) {
        // CS3: a light task has no budget (LT4), so its slot is free of it.
        debug_assert!(self.light.is_none(), "LT4: a light task has no budget");
        self.cancel.set_lane_deadline(deadline);
    }

    fn to_waker(self: Arc<Self>) -> Waker {
        Self::into_waker(self)
    }

    fn mark_registered(&self) {
        self.state.mark_registered();
    }

    fn mark_owner(&self) -> bool {
        let before = self.state.mark_owner(); // SW15
        before.cancel_severity().is_none() && !before.is_registered()
    }

    fn owns_regions(&self) -> bool {
        self.state.load().owns_regions()
    }

    fn cancel_light(&self, reason: &Arc<CancelReason>, grace_deadline: crate::types::Time) -> bool {
        // SW14: the hint and the wake edge in one RMW; a registered task
        // (which the kernel cancels) or a completed one gets neither.
        // SAFETY: CS4: the sweep's set lent the reason (`LightTasks::lend`)
        // and keeps it as long as the set lives; this cell keeps its set
        // (`light`) as long as it lives, slot included.
        let stored = SlotReason::Lent(unsafe { LentReason::new(reason) });
        let (request, wake) = self.cancel.request(&self.state, stored, grace_deadline);
        request == LightRequest::Stored && wake == Wake::Queue
    }

    fn queue(&self) {
        // W8: the queue's reference is the only one taken.
        self.core.schedule(self.arc_from_ref());
    }

    fn light_cancel(&self) -> Option<LightCancel> {
        self.cancel.current(self.region, self.task_id())
    }

    fn light_shard(&self) -> usize {
        self.state.load().light_shard() // SW13
    }

    fn light_id(&self) -> TaskId {
        self.task_id()
    }

    fn light_set(&self) -> Option<&LightTasks> {
        self.light.as_deref()
    }

    fn light_links(&self) -> &Links<dyn Attention> {
        &self.light_links
    }
}

impl<F> AbortTarget for TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn abort_with(&self, reason: CancelReason) {
        if let Err(reason) = self.abort_in_place(reason) {
            let (id, region) = (self.task_id(), self.region);
            self.core
                .with_kernel(|k, now| k.request_cancel_of(id, region, reason, now));
        }
    }

    fn is_finished(&self) -> bool {
        self.state.load_acquire().lifecycle() == super::state::COMPLETE
    }
}

/// SW9 (`state`): the output lies where the future was.
impl<F: Future> OutputCell<F::Output> for TaskCell<F> {
    unsafe fn put(&self, stored: Stored<F::Output>) {
        // SAFETY: SW9 (the caller's contract): the completing thread, which
        // made the last run edge (W5) and dropped the future, owns the
        // stage until it sets FINISHED; no run touches it after COMPLETE.
        let stage = unsafe { &mut *self.stage.get() };
        debug_assert!(matches!(stage, Stage::Done(None)), "SW9: put twice");
        *stage = Stage::Done(Some(stored));
    }

    unsafe fn take(&self) -> Option<Stored<F::Output>> {
        // SAFETY: SW9 (the caller's contract): the output's owner alone
        // touches the stage once it is `Done`.
        match unsafe { &mut *self.stage.get() } {
            Stage::Done(stored) => stored.take(),
            _ => None,
        }
    }
}

/// A task handle's view of its cell (`join`, `task_handle`).
impl<F> JoinTarget<F::Output> for TaskCell<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn slot(&self) -> &JoinSlot<F::Output> {
        &self.join
    }
    fn state(&self) -> &CellState {
        &self.state
    }
    fn output(&self) -> &dyn OutputCell<F::Output> {
        self
    }
    fn core(&self) -> &Arc<Core> {
        TaskCell::core(self)
    }
    fn region(&self) -> RegionId {
        TaskCell::region(self)
    }
}
