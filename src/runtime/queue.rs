//! The production run queue.
//!
//! Current-thread runtime: the thread inside `block_on` drains a plain local
//! FIFO of the tasks it woke itself (no atomics; a thread-local set only
//! while it drives, by [`RunQueue::enter_driver`]) and the injector
//! (`inject`, rules IJ1–IJ3) for wakes from other threads, which it looks at first every
//! [`INJECTOR_INTERVAL`] dispatches and whenever the local FIFO is empty.
//! Only injector pushes unpark it: the driver re-checks its local FIFO
//! after firing timers, just before it would park.
//!
//! Multi-thread runtime, per worker:
//! - a **LIFO slot** holding the task most recently woken *by this worker*
//!   (message-passing locality: the receiver runs next, on the same cache);
//!   at most [`MAX_LIFO_STREAK`] LIFO dispatches in a row, so a ping-pong
//!   pair cannot starve the local queue;
//! - a **local FIFO deque** (`crossbeam-deque`), whose other end is stolen
//!   in batches by idle workers;
//! - the shared **injector** for tasks scheduled from outside any worker
//!   (the `block_on` thread, plain threads, timers fired off-worker), looked
//!   at first every [`INJECTOR_INTERVAL`] dispatches so it cannot starve;
//! - the shared **cancel lane** (see "Lanes" below).
//!
//! Which worker (if any) is scheduling is known through a thread-local set
//! only on worker threads, only by [`RunQueue::enter`]. It is private to
//! the scheduler: user code never looks a runtime up through it, and a
//! worker of runtime A waking a task of runtime B goes through B's
//! injector (the thread-local is tagged with the queue it belongs to).
//! A task re-scheduled while it is the one running (a self-wake such as
//! `yield_now`) goes to the worker's private deferred list, run after its
//! LIFO slot and deque, and wakes no sleeping worker (like tokio's deferred
//! yields): the worker that pushed it is awake and runs it. Every
//! [`INJECTOR_INTERVAL`] dispatches the deferred tasks move into the
//! stealable deque, so an idle worker can still share a yielding workload.
//!
//! Lanes (multi-thread only): `cancel lane > timed lane > ready lane`.
//! - A task whose cell reports a cancel hint (`Runnable::cancel_hint`: the
//!   kernel requested its cancellation, see `Attention::cancel_requested`)
//!   is scheduled into the **cancel lane**, shared by all workers and
//!   ordered by cleanup priority: one lock-free FIFO per
//!   `CancelKind::severity` tier (the order of the cleanup budgets'
//!   priorities), the most severe tier first (a `Shutdown` cleanup runs
//!   before a `User` one: it has the shortest grace period), FIFO within a
//!   tier.
//! - A task whose cell reports a budget deadline (`Runnable::deadline_hint`,
//!   given by the kernel when it creates the task) goes to the **timed
//!   lane**, an
//!   earliest-deadline-first heap shared by all workers (FIFO among equal
//!   deadlines).
//! - Everything else is **ready-lane** work (LIFO slot, deque, injector).
//!
//! The lanes are shared (cancel and deadline work is rare and latency
//! critical: any idle worker should take it); the priority rules and the
//! streak accounting are per worker. The cancel-streak limit
//! ([`CANCEL_STREAK_LIMIT`], 16) bounds a worker's consecutive cancel
//! dispatches: after `limit` of them it looks for timed or ready work
//! first, so waiting timed/ready work gets a dispatch within `limit + 1`
//! dispatches of that worker. The same limit bounds consecutive timed
//! dispatches against ready work, so a deadline task that yields in a loop
//! cannot starve ready work (with both upper lanes saturated, ready work
//! waits at most `(limit + 1) * limit + 1` dispatches). When a worker finds
//! no lower-lane work, its streak restarts.
//!
//! `block_in_place` helpers (see "block_in_place support" below) run the
//! same loop as workers, each with its own sleep slot and deque.
//!
//! Rule Q2 (cancel batches): a worker that finds the cancel lane's most
//! severe non-empty tier and holds no cancel batch takes up to
//! [`CANCEL_BATCH`] of its tasks at once (one lock of the tier's injector
//! ring, in order) into a private FIFO and runs them from there, so a storm
//! of cancellations costs one lock per batch instead of one per task, the
//! private FIFO costs no atomic per task (it is never stolen), and the
//! tier's ring allocates nothing once grown (IJ1), where a segmented queue
//! allocates a block every few dozen pushes and its consumer frees it. Priority holds: a
//! worker with a batch of tier `t` still looks at the more severe tiers
//! first and takes such a task alone; the streak limit counts batch
//! dispatches like any other cancel dispatch. A worker does not sleep
//! with a batch (Q1's re-check counts it as its own work), and a worker
//! leaving for `block_in_place` hands the batch back to its tier.
//!
//! Rule Q1 (no lost wakeups): a worker announces it is going to sleep
//! (`prepare_sleep`: its `sleeping` flag, the `sleepers` count, a SeqCst
//! fence), then re-checks the injector, the cancel lane and every local
//! deque. A scheduler pushes, issues a SeqCst fence, then reads the
//! announcements (`wake_one`) and claims a sleeper by swapping its flag
//! off before unparking it. One of the two sides always sees the other,
//! and parkers keep an unpark token, so a task pushed while every worker
//! dozes off always gets a worker. Pushes to a worker's own LIFO slot or
//! deque need no wakeup for Q1 (that worker is awake and runs them), but
//! a task displaced from the LIFO slot into the deque still unparks one
//! sleeper so it can steal.
//!
//! Rule RT1 (retired cells): a worker collects the references its runs
//! held to the tasks they completed and drops them in batches, one worker
//! at a time; see [`retire`].
//!
//! Before announcing sleep, an idle worker looks for visible work a few
//! times (`spin_for_work`: a sub-microsecond busy spin, then four looks
//! that each yield the CPU first): hand-offs between workers then rarely
//! cost a futex park and unpark, and a spinning worker does not starve the
//! thread it is waiting for when threads outnumber cores. The spin only
//! reads, so Q1 is unaffected.

use std::cell::{Cell, RefCell};
use std::collections::BinaryHeap;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex};

use crossbeam_deque::{Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;
use crossbeam_utils::sync::Unparker;

use super::inject::Inject;
use super::metrics::{RuntimeMetrics, WorkerCounters};
use crate::exec::runnable::{Schedule, TaskRef};

/// Consecutive cancel-lane dispatches after which a worker looks for ready
/// work first.
pub(crate) const CANCEL_STREAK_LIMIT: u32 = 16;
/// Consecutive LIFO-slot dispatches after which the local deque goes first.
const MAX_LIFO_STREAK: u32 = 3;
/// How often an idle worker looks for work while busy-spinning before it
/// sleeps, the CPU pause hints between two looks, and how many more looks
/// it takes after yielding its CPU.
const SPIN_CHECKS: u32 = 4;
const SPIN_PAUSES: u32 = 8;
const YIELD_CHECKS: u32 = 4;
/// Every this many dispatches a worker checks the injector first.
const INJECTOR_INTERVAL: u32 = 61;

/// `block_in_place` helper slots per worker: how many threads can be
/// blocked in it at once while the runtime keeps its full set of runners.
const HELPERS_PER_WORKER: usize = 2;

/// Cleanup-priority tiers of the cancel lane (`CancelKind::severity` 0..=5).
const CANCEL_TIERS: usize = 6;
/// Most cancel-lane tasks a worker takes at once into its private batch
/// (rule Q2).
const CANCEL_BATCH: usize = 16;
/// RT1: completed tasks a worker collects before it tries to drop them,
/// and how many it may hold while another worker is dropping its own.
const RETIRE_BATCH: usize = 32;
const RETIRE_CAP: usize = 256;

pub(crate) struct RunQueue {
    injector: Inject,
    /// Indexed by severity; popped from the highest tier down.
    /// Each tier an injector ring (IJ1–IJ3): no block to allocate and free
    /// as a storm of cancellations passes through, and a batch leaves
    /// under one lock (Q2).
    cancel_lane: [Inject; CANCEL_TIERS],
    timed_lane: Mutex<BinaryHeap<Timed>>,
    /// Entries in `timed_lane`, read without its lock.
    timed_len: AtomicUsize,
    timed_seq: AtomicU64,
    /// Whether worker threads run the tasks (the multi-thread runtime).
    multi: bool,
    stealers: Vec<Stealer<TaskRef>>,
    /// The local deques, taken by each worker in `enter`.
    locals: Mutex<Vec<Option<Worker<TaskRef>>>>,
    /// One per worker; for the current-thread runtime, the `block_on` thread.
    unparkers: Vec<Unparker>,
    /// Sleep announcements (rule Q1), one per slot: the workers', then the
    /// `block_in_place` helpers' (multi-thread only).
    sleeping: Vec<AtomicBool>,
    /// The parked helper behind each helper slot (`None` while unused).
    helper_unparkers: Vec<Mutex<Option<Unparker>>>,
    /// Helper slots not in use.
    helper_free: Mutex<Vec<usize>>,
    /// Helpers running (their deques are looked at only while some run).
    helpers_active: AtomicUsize,
    sleepers: AtomicUsize,
    next_wake: AtomicUsize,
    /// One per worker, each on cache lines of its own: a worker writes its
    /// counters on every poll, which must not invalidate another worker's.
    counters: Vec<CachePadded<WorkerCounters>>,
    /// Parks of the thread inside `block_on` (`RuntimeMetrics::block_on_parks`),
    /// apart from `sleepers`, which every schedule reads.
    block_on_parks: CachePadded<AtomicU64>,
    /// RT1: a worker is dropping its batch of completed tasks.
    reaping: CachePadded<AtomicBool>,
}

impl WorkerCtx {
    /// The worker this context runs for: its own index, or, for a
    /// `block_in_place` helper, the worker it stands in for (TL5).
    pub(crate) fn worker(&self) -> usize {
        self.counter
    }
}

/// One worker's private scheduling state, reachable from its thread-local.
pub(crate) struct WorkerCtx {
    /// Identity of the queue this worker belongs to (compared, never read).
    queue: *const RunQueue,
    /// The same queue, owned (for `block_in_place` helpers).
    owner: Arc<RunQueue>,
    /// Slot: sleep flag and local deque (a worker's index, or a helper slot).
    index: usize,
    /// Which worker's metrics its dispatches count towards.
    counter: usize,
    local: Worker<TaskRef>,
    /// Q2: cancel-lane tasks this worker took in one batch, all of tier
    /// `cancel_tier`, run before that tier's shared queue (never stolen,
    /// so a plain FIFO: no atomic per task).
    cancel_local: RefCell<VecDeque<TaskRef>>,
    cancel_tier: Cell<usize>,
    lifo: Cell<Option<TaskRef>>,
    /// Tasks that woke themselves while running (`yield_now`), in order:
    /// private to this worker until the next flush into the local deque
    /// (see `next_ready`), so a yielding task is not stolen right away.
    deferred: std::cell::RefCell<std::collections::VecDeque<TaskRef>>,
    /// The task being run, to tell self-wakes apart (identity only).
    running: Cell<*const ()>,
    lifo_streak: Cell<u32>,
    cancel_streak: Cell<u32>,
    timed_streak: Cell<u32>,
    tick: Cell<u32>,
    /// RT1: completed tasks whose run references this worker holds, to
    /// drop in a batch.
    retired: RefCell<Vec<TaskRef>>,
}

thread_local! {
    /// Set on worker threads only, by `RunQueue::enter` (scheduler-internal).
    static CURRENT: RefCell<Option<Rc<WorkerCtx>>> = const { RefCell::new(None) };
    /// Current-thread runtime: set on the thread inside `block_on` while it
    /// drives the queue (`RunQueue::enter_driver`): the queue it drives and
    /// the tasks that thread woke itself, run before the injector (no
    /// atomic read-modify-write per schedule or dispatch).
    static DRIVER: RefCell<Option<(*const RunQueue, VecDeque<TaskRef>)>> =
        const { RefCell::new(None) };
}

/// Whether the calling thread runs runtime tasks right now: it is a
/// multi-thread worker, or it is driving a current-thread runtime inside
/// `block_on` (rule TB1 in `park`).
pub(crate) fn runs_tasks_on_this_thread() -> bool {
    let worker = CURRENT
        .try_with(|c| c.try_borrow().map_or(true, |c| c.is_some()))
        .unwrap_or(false);
    worker
        || DRIVER
            .try_with(|d| d.try_borrow().map_or(true, |d| d.is_some()))
            .unwrap_or(false)
}

/// Uninstalls the current-thread driver context when `block_on` returns;
/// tasks still in its local queue move to the injector.
pub(crate) struct DriverGuard<'a> {
    queue: &'a RunQueue,
    previous: Option<(*const RunQueue, VecDeque<TaskRef>)>,
}

impl Drop for DriverGuard<'_> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let ours = DRIVER.try_with(|d| std::mem::replace(&mut *d.borrow_mut(), previous));
        if let Ok(Some((_, leftover))) = ours {
            let moved = !leftover.is_empty();
            for task in leftover {
                self.queue.injector.push(task);
            }
            if moved {
                fence(Ordering::SeqCst); // IJ2, Q1: the pushes' fence.
            }
        }
    }
}

/// Uninstalls the worker context when the worker loop ends.
pub(crate) struct WorkerGuard {
    ctx: Rc<WorkerCtx>,
}

impl WorkerGuard {
    pub(crate) fn ctx(&self) -> &WorkerCtx {
        &self.ctx
    }
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.borrow_mut().take());
        // Leftover tasks are dropped here, after the thread-local is clear,
        // so a destructor that wakes something goes through the injector.
        drop(self.ctx.lifo.take());
        self.ctx.deferred.borrow_mut().clear();
        while self.ctx.local.pop().is_some() {}
        // Taken first, so the batch's tasks drop with the cell unborrowed.
        let batch = std::mem::take(&mut *self.ctx.cancel_local.borrow_mut());
        drop(batch);
        self.ctx.reap(true);
    }
}

/// RT1 (`exec::core::CoreOptions::retire`): the multi-thread runtime's
/// retire hook. On a worker (or helper) thread the completed task's
/// reference joins the worker's batch; a full batch is dropped by the
/// worker that finds no other worker dropping one (glibc's allocator, for
/// one, serializes frees into the arena of the thread that allocated a
/// cell, typically the spawner's: one worker at a time keeps that lock
/// uncontended), or regardless once the batch reaches [`RETIRE_CAP`].
/// Idle, exiting or blocking workers drop their batch (`reap(true)`), so
/// only a busy worker holds completed cells, at most `RETIRE_CAP`.
/// Anywhere else the reference is dropped at once. (A cell the completing
/// thread spawned itself never gets here: the cell drops it at once.)
pub(crate) fn retire(task: TaskRef) {
    // The context is cloned out, so a destructor run by the batch's drop
    // finds the thread-local unborrowed.
    let ctx = CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten();
    match ctx {
        Some(ctx) => {
            ctx.retired.borrow_mut().push(task);
            ctx.reap(false);
        }
        None => drop(task),
    }
}

impl WorkerCtx {
    /// RT1: drops this worker's completed tasks if `force`, or if the batch
    /// is full and no other worker is dropping one, or it reached the cap.
    fn reap(&self, force: bool) {
        let len = self.retired.borrow().len();
        if len == 0 || (!force && len < RETIRE_BATCH) {
            return;
        }
        let reaping = &self.owner.reaping;
        let exclusive = reaping
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if !exclusive && !force && len < RETIRE_CAP {
            return;
        }
        // Taken out first: a cell's destructor runs user code (a value
        // left in it), which must find the list unborrowed.
        let mut batch = std::mem::take(&mut *self.retired.borrow_mut());
        batch.clear();
        let mut list = self.retired.borrow_mut();
        if list.is_empty() {
            *list = batch; // keeps its capacity
        }
        drop(list);
        if exclusive {
            reaping.store(false, Ordering::Release);
        }
    }
}

fn task_addr(task: &TaskRef) -> *const () {
    std::sync::Arc::as_ptr(task).cast::<()>()
}

impl RunQueue {
    /// `workers == 0`: the current-thread runtime (`unparkers` holds the
    /// `block_on` thread's); otherwise one unparker per worker.
    pub(crate) fn new(unparkers: Vec<Unparker>, workers: usize) -> Self {
        // `block_in_place` helper slots (see "block_in_place support").
        let helpers = workers * HELPERS_PER_WORKER;
        let sleeping = (0..unparkers.len() + helpers)
            .map(|_| AtomicBool::new(false))
            .collect();
        let locals: Vec<Worker<TaskRef>> =
            (0..workers + helpers).map(|_| Worker::new_fifo()).collect();
        let stealers = locals.iter().map(Worker::stealer).collect();
        let counters = unparkers
            .iter()
            .map(|_| CachePadded::new(WorkerCounters::default()))
            .collect();
        Self {
            injector: Inject::new(),
            cancel_lane: std::array::from_fn(|_| Inject::new()),
            timed_lane: Mutex::new(BinaryHeap::new()),
            timed_len: AtomicUsize::new(0),
            timed_seq: AtomicU64::new(0),
            multi: workers > 0,
            stealers,
            locals: Mutex::new(locals.into_iter().map(Some).collect()),
            unparkers,
            sleeping,
            helper_unparkers: (0..helpers).map(|_| Mutex::new(None)).collect(),
            helper_free: Mutex::new((workers..workers + helpers).rev().collect()),
            helpers_active: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            next_wake: AtomicUsize::new(0),
            counters,
            block_on_parks: CachePadded::new(AtomicU64::new(0)),
            reaping: CachePadded::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        // Only the current-thread runtime has a driver-local queue.
        (self.multi || self.with_driver_local(|local| local.is_empty()) != Some(false))
            && self.injector.is_empty()
            && self.cancel_lane.iter().all(Inject::is_empty)
            && self.timed_len.load(Ordering::SeqCst) == 0
    }

    pub(crate) fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics {
            workers: self.counters.iter().map(|c| c.snapshot()).collect(),
            block_on_parks: self.block_on_parks.load(Ordering::Relaxed),
        }
    }

    /// Current-thread driver: makes the calling thread (inside
    /// `block_on`) the driver of this queue until the guard drops, so the
    /// tasks it wakes go to its plain local queue.
    pub(crate) fn enter_driver(&self) -> DriverGuard<'_> {
        let me: *const RunQueue = self;
        let previous = DRIVER.with(|d| d.borrow_mut().replace((me, VecDeque::new())));
        DriverGuard {
            queue: self,
            previous,
        }
    }

    /// Runs `f` on the calling thread's local queue if it is this queue's
    /// current-thread driver (`None` on any other thread).
    fn with_driver_local<R>(&self, f: impl FnOnce(&mut VecDeque<TaskRef>) -> R) -> Option<R> {
        let me: *const RunQueue = self;
        DRIVER
            .try_with(|d| match d.borrow_mut().as_mut() {
                Some((queue, local)) if std::ptr::eq(*queue, me) => Some(f(local)),
                _ => None,
            })
            .ok()
            .flatten()
    }

    /// Pushes `task` onto the driver thread's local queue if the caller is
    /// this queue's driver; hands it back otherwise.
    fn push_driver_local(&self, task: TaskRef) -> Option<TaskRef> {
        let mut task = Some(task);
        self.with_driver_local(|local| local.push_back(task.take().expect("set above")));
        task
    }

    /// The driver thread's next local task (none on other threads).
    fn pop_driver_local(&self) -> Option<TaskRef> {
        self.with_driver_local(VecDeque::pop_front).flatten()
    }

    /// Current-thread driver: runs up to `max` queued tasks (local ones
    /// first, the injector every [`INJECTOR_INTERVAL`] dispatches and when
    /// the local queue is empty); returns how many ran.
    pub(crate) fn run_batch(&self, max: usize) -> usize {
        let mut ran = 0;
        while ran < max {
            let injector_turn = ran % INJECTOR_INTERVAL as usize == INJECTOR_INTERVAL as usize - 1;
            let next = if injector_turn {
                self.injector.pop().or_else(|| self.pop_driver_local())
            } else {
                self.pop_driver_local().or_else(|| self.injector.pop())
            };
            let Some(task) = next else { break };
            self.counters[0].poll();
            task.run();
            ran += 1;
        }
        ran
    }

    /// Counts a park of the `block_on` thread (on the current-thread
    /// runtime it is also the one worker).
    pub(crate) fn driver_parked(&self) {
        self.block_on_parked();
        if !self.multi {
            self.counters[0].park();
        }
    }

    /// Counts a park of a thread inside `block_on` that only waits for its
    /// root (multi-thread runtime, or a current-thread call that does not
    /// hold the driver).
    pub(crate) fn block_on_parked(&self) {
        self.block_on_parks.fetch_add(1, Ordering::Relaxed);
    }

    /// Makes the calling thread worker `index` (once, at worker start).
    pub(crate) fn enter(self: &Arc<Self>, index: usize) -> WorkerGuard {
        let ctx = self.new_ctx(index, index);
        CURRENT.with(|c| *c.borrow_mut() = Some(ctx.clone()));
        WorkerGuard { ctx }
    }

    /// A scheduling context for slot `index` (its deque is taken), counting
    /// towards worker `counter`'s metrics.
    fn new_ctx(self: &Arc<Self>, index: usize, counter: usize) -> Rc<WorkerCtx> {
        let local = self.locals.lock().unwrap_or_else(|e| e.into_inner())[index]
            .take()
            .expect("a slot's deque is used by one thread at a time");
        Rc::new(WorkerCtx {
            queue: Arc::as_ptr(self),
            owner: self.clone(),
            index,
            counter,
            local,
            cancel_local: RefCell::new(VecDeque::new()),
            cancel_tier: Cell::new(0),
            lifo: Cell::new(None),
            deferred: std::cell::RefCell::new(std::collections::VecDeque::new()),
            running: Cell::new(std::ptr::null()),
            lifo_streak: Cell::new(0),
            cancel_streak: Cell::new(0),
            timed_streak: Cell::new(0),
            tick: Cell::new(0),
            retired: RefCell::new(Vec::new()),
        })
    }

    /// Worker driver: runs up to `max` tasks; returns how many ran.
    pub(crate) fn run_worker_batch(&self, ctx: &WorkerCtx, max: usize) -> usize {
        let mut ran = 0;
        while ran < max {
            let Some(task) = self.next_task(ctx) else {
                break;
            };
            self.counters[ctx.counter].poll();
            ctx.running.set(task_addr(&task));
            task.run();
            ctx.running.set(std::ptr::null());
            ran += 1;
        }
        ran
    }

    /// The next task for worker `ctx`: cancel lane, timed lane, ready
    /// work, each upper lane bounded by the streak limit.
    fn next_task(&self, ctx: &WorkerCtx) -> Option<TaskRef> {
        let counters = &self.counters[ctx.counter];
        let streak = ctx.cancel_streak.get();
        if streak < CANCEL_STREAK_LIMIT
            && let Some(task) = self.pop_cancel(ctx)
        {
            ctx.cancel_streak.set(streak + 1);
            counters.cancel_dispatch(u64::from(streak + 1));
            return Some(task);
        }
        // Streak limit reached (or no cancel work): lower lanes go first,
        // and either way the streak restarts.
        ctx.cancel_streak.set(0);
        if let Some(task) = self.next_timed_or_ready(ctx) {
            return Some(task);
        }
        let task = self.pop_cancel(ctx)?;
        ctx.cancel_streak.set(1);
        counters.cancel_dispatch(1);
        Some(task)
    }

    fn next_timed_or_ready(&self, ctx: &WorkerCtx) -> Option<TaskRef> {
        let streak = ctx.timed_streak.get();
        if streak < CANCEL_STREAK_LIMIT
            && let Some(task) = self.pop_timed()
        {
            ctx.timed_streak.set(streak + 1);
            self.counters[ctx.counter].timed_dispatch();
            return Some(task);
        }
        ctx.timed_streak.set(0);
        if let Some(task) = self.next_ready(ctx) {
            return Some(task);
        }
        let task = self.pop_timed()?;
        ctx.timed_streak.set(1);
        self.counters[ctx.counter].timed_dispatch();
        Some(task)
    }

    /// The cancel lane's next task for worker `ctx`: the most severe tier
    /// first, from the worker's private batch when nothing more severe
    /// waits in the shared tiers (rule Q2).
    fn pop_cancel(&self, ctx: &WorkerCtx) -> Option<TaskRef> {
        // An empty tier is skipped on its indices alone: a steal from an
        // empty injector issues a SeqCst fence, which a pop would otherwise
        // pay once per empty tier above the one holding work (a `User`
        // cancel sits in the lowest). No shared counter is kept beside
        // the tiers: the pusher and every worker's dispatch would write
        // and read it, and those lines would move between the cores on
        // every abort of a storm. A push this misses is found by the next
        // dispatch (Q1's re-check reads the same indices, `is_empty`,
        // after its fence).
        let batched = !ctx.cancel_local.borrow().is_empty();
        let held = ctx.cancel_tier.get();
        for (i, tier) in self.cancel_lane.iter().enumerate().rev() {
            if batched && i <= held {
                return ctx.cancel_local.borrow_mut().pop_front();
            }
            if tier.is_empty() {
                continue;
            }
            if batched {
                // Q2: a more severe cleanup goes before the batch, alone.
                if let Some(task) = tier.pop() {
                    return Some(task);
                }
                continue;
            }
            let taken = tier.pop_up_to(&mut ctx.cancel_local.borrow_mut(), CANCEL_BATCH);
            if let Some(task) = taken {
                ctx.cancel_tier.set(i);
                return Some(task);
            }
        }
        // A batch is served by the loop (its tier is at least 0).
        None
    }

    fn pop_timed(&self) -> Option<TaskRef> {
        if self.timed_len.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let entry = self
            .timed_lane
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()?;
        self.timed_len.fetch_sub(1, Ordering::SeqCst);
        Some(entry.task)
    }

    fn push_timed(&self, deadline: u64, task: TaskRef) {
        let seq = self.timed_seq.fetch_add(1, Ordering::Relaxed);
        let mut heap = self.timed_lane.lock().unwrap_or_else(|e| e.into_inner());
        heap.push(Timed {
            deadline,
            seq,
            task,
        });
        self.timed_len.fetch_add(1, Ordering::SeqCst);
    }

    fn next_ready(&self, ctx: &WorkerCtx) -> Option<TaskRef> {
        let tick = ctx.tick.get().wrapping_add(1);
        ctx.tick.set(tick);
        if tick.is_multiple_of(INJECTOR_INTERVAL) {
            // Deferred tasks become stealable now and then, so an idle
            // worker can still take over part of a yielding workload.
            self.flush_deferred(ctx);
            if let Some(task) = self.steal_injector(ctx) {
                return Some(task);
            }
        }
        if ctx.lifo_streak.get() < MAX_LIFO_STREAK
            && let Some(task) = ctx.lifo.take()
        {
            ctx.lifo_streak.set(ctx.lifo_streak.get() + 1);
            return Some(task);
        }
        ctx.lifo_streak.set(0);
        if let Some(task) = ctx.local.pop() {
            return Some(task);
        }
        let deferred = ctx.deferred.borrow_mut().pop_front();
        if let Some(task) = deferred {
            return Some(task);
        }
        if let Some(task) = self.steal_injector(ctx) {
            return Some(task);
        }
        if let Some(task) = self.steal_other(ctx) {
            return Some(task);
        }
        ctx.lifo.take()
    }

    /// Moves this worker's deferred (self-woken) tasks into its stealable
    /// deque, in order.
    fn flush_deferred(&self, ctx: &WorkerCtx) {
        let mut deferred = ctx.deferred.borrow_mut();
        if deferred.is_empty() {
            return;
        }
        for task in deferred.drain(..) {
            ctx.local.push(task);
        }
        drop(deferred);
        fence(Ordering::SeqCst);
        self.wake_one();
    }

    fn steal_injector(&self, ctx: &WorkerCtx) -> Option<TaskRef> {
        let task = self.injector.pop_batch(&ctx.local)?;
        if !ctx.local.is_empty() {
            // More than this worker can start at once: share.
            self.wake_one();
        }
        Some(task)
    }

    /// The deques worth looking at: the workers', plus the helpers' while
    /// any helper runs (an unused helper deque is empty).
    fn live_stealers(&self) -> &[Stealer<TaskRef>] {
        if self.helpers_active.load(Ordering::SeqCst) == 0 {
            &self.stealers[..self.stealers.len().min(self.unparkers.len())]
        } else {
            &self.stealers
        }
    }

    fn steal_other(&self, ctx: &WorkerCtx) -> Option<TaskRef> {
        let stealers = self.live_stealers();
        let n = stealers.len();
        let start = self
            .next_wake
            .load(Ordering::Relaxed)
            .wrapping_add(ctx.index);
        for offset in 0..n {
            let victim = (start + offset) % n;
            if victim == ctx.index {
                continue;
            }
            loop {
                match stealers[victim].steal_batch_and_pop(&ctx.local) {
                    Steal::Success(task) => {
                        self.counters[ctx.counter].steal();
                        return Some(task);
                    }
                    Steal::Empty => break,
                    Steal::Retry => {}
                }
            }
        }
        None
    }

    /// Whether any shared or stealable work is queued.
    fn has_visible_work(&self) -> bool {
        !self.is_empty() || self.live_stealers().iter().any(|s| !s.is_empty())
    }

    /// Before sleeping, looks for visible work for a short while: a worker
    /// that finds some skips a park/unpark round trip, which costs a system
    /// call on each side. First a brief busy spin (under a microsecond,
    /// for hand-offs already in flight), then a few looks that each yield
    /// the CPU first, so that on an oversubscribed machine the spinner
    /// lets the thread it waits for (a spawner, a lock holder) run.
    pub(crate) fn spin_for_work(&self) -> bool {
        for _ in 0..SPIN_CHECKS {
            if self.has_visible_work() {
                return true;
            }
            for _ in 0..SPIN_PAUSES {
                std::hint::spin_loop();
            }
        }
        for _ in 0..YIELD_CHECKS {
            std::thread::yield_now();
            if self.has_visible_work() {
                return true;
            }
        }
        false
    }

    /// Announces that worker `index` wants to sleep; returns false if work
    /// arrived meanwhile (rule Q1).
    ///
    /// The worker's own LIFO slot counts too: timers fired by the worker
    /// between batches wake tasks into it.
    pub(crate) fn prepare_sleep(&self, ctx: &WorkerCtx) -> bool {
        // RT1: an idle worker holds no completed task.
        ctx.reap(true);
        let index = ctx.index;
        let lifo = ctx.lifo.take();
        // Q2: a private cancel batch is this worker's to run.
        let lifo_busy = lifo.is_some()
            || !ctx.deferred.borrow().is_empty()
            || !ctx.cancel_local.borrow().is_empty();
        ctx.lifo.set(lifo);
        if lifo_busy {
            return false;
        }
        self.sleeping[index].store(true, Ordering::SeqCst);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.has_visible_work() {
            self.finish_sleep(index);
            false
        } else {
            self.counters[ctx.counter].park();
            true
        }
    }

    pub(crate) fn finish_sleep(&self, index: usize) {
        if self.sleeping[index].swap(false, Ordering::SeqCst) {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn unpark_all(&self) {
        for u in &self.unparkers {
            u.unpark();
        }
        for i in self.unparkers.len()..self.sleeping.len() {
            self.unpark_slot(i);
        }
    }

    /// Unparks whoever sleeps behind slot `i`: a worker, or a helper.
    fn unpark_slot(&self, i: usize) {
        match i.checked_sub(self.unparkers.len()) {
            None => self.unparkers[i].unpark(),
            Some(h) => {
                let helper = self.helper_unparkers[h]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if let Some(u) = helper.as_ref() {
                    u.unpark();
                }
            }
        }
    }

    /// Unparks one sleeping worker, claiming it (so the next call picks
    /// another); does nothing if none sleeps.
    fn wake_one(&self) {
        let n = self.sleeping.len();
        if n == 1 {
            // The current-thread runtime: its driver parks on its own.
            self.unparkers[0].unpark();
            return;
        }
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        let start = self.next_wake.fetch_add(1, Ordering::Relaxed);
        for offset in 0..n {
            let i = (start + offset) % n;
            if self.sleeping[i].swap(false, Ordering::SeqCst) {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                self.unpark_slot(i);
                return;
            }
        }
        // Everyone woke up in the meantime; they will find the task.
    }

    /// Pushes `task` onto the calling worker's own queues if the caller is
    /// a worker of this queue; hands it back otherwise.
    fn push_local(&self, task: TaskRef) -> Option<TaskRef> {
        let mut task = Some(task);
        let _ = CURRENT.try_with(|c| {
            let c = c.borrow();
            let Some(ctx) = c.as_ref().filter(|ctx| std::ptr::eq(ctx.queue, self)) else {
                return;
            };
            let task = task.take().expect("set above");
            if task_addr(&task) == ctx.running.get() {
                // A self-wake (`yield_now`): behind this worker's other
                // work, in its private deferred list. This worker is awake
                // and runs it, so no sleeper is woken for it, and no idle
                // worker steals it at once (as tokio defers yields): a task
                // that yields in a loop does not drag another worker into
                // its contention.
                ctx.deferred.borrow_mut().push_back(task);
                return;
            }
            if let Some(older) = ctx.lifo.replace(Some(task)) {
                ctx.local.push(older);
                fence(Ordering::SeqCst);
                self.wake_one();
            }
        });
        task
    }
}

// ----- block_in_place support ------------------------------------------------
//
// A worker that is about to block (`block_in_place`) detaches its context:
// from then on the thread is a plain thread (its wakes go to the injector,
// rule TB1 lets it block); its queued tasks move to the injector, and a
// *helper* — a thread holding one of the queue's helper slots, with its own
// sleep flag, deque and parker — runs the worker loop in its place until
// the blocking code returns. The worker then re-attaches; the helper stops
// at its next batch boundary and moves what it still holds to the injector.
// Q1 holds for helpers as for workers (same `prepare_sleep` protocol, their
// own slot). There are `HELPERS_PER_WORKER` helper slots per worker: a
// `block_in_place` that finds none free runs without a helper (the other
// runners, if any, take its tasks).

/// A worker context detached from its thread (see above).
pub(crate) struct Detached {
    ctx: Option<Rc<WorkerCtx>>,
}

/// If the calling thread is a worker (or helper) of a multi-thread queue,
/// detaches its context; re-attached when the result is dropped.
pub(crate) fn detach_worker() -> Option<Detached> {
    let ctx = CURRENT.try_with(|c| c.borrow_mut().take()).ok().flatten()?;
    Some(Detached { ctx: Some(ctx) })
}

/// Whether the calling thread is driving a current-thread runtime.
pub(crate) fn drives_current_thread_runtime() -> bool {
    DRIVER
        .try_with(|d| d.try_borrow().map_or(true, |d| d.is_some()))
        .unwrap_or(false)
}

impl Detached {
    fn ctx(&self) -> &WorkerCtx {
        self.ctx.as_ref().expect("attached until dropped")
    }

    /// The queue the worker belongs to.
    pub(crate) fn queue(&self) -> &Arc<RunQueue> {
        &self.ctx().owner
    }

    /// Moves every task queued on this worker to the injector, waking a
    /// sleeper for each.
    pub(crate) fn hand_off(&self) {
        let ctx = self.ctx();
        ctx.owner.hand_off(ctx);
    }

    /// Reserves a helper slot for this worker, if one is free.
    pub(crate) fn reserve_helper(&self) -> Option<HelperSlot> {
        let ctx = self.ctx();
        let slot = ctx
            .owner
            .helper_free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()?;
        Some(HelperSlot {
            queue: ctx.owner.clone(),
            slot,
            counter: ctx.counter,
            entered: false,
        })
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let ctx = self.ctx.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = ctx);
    }
}

/// A reserved helper slot; released when dropped (also if the helper never
/// started).
pub(crate) struct HelperSlot {
    queue: Arc<RunQueue>,
    slot: usize,
    counter: usize,
    entered: bool,
}

impl HelperSlot {
    /// Makes the calling thread the helper of this slot: installs its
    /// scheduling context and registers `unparker` as the slot's sleeper.
    pub(crate) fn enter(mut self, unparker: Unparker) -> HelperGuard {
        let q = self.queue.clone();
        *q.helper_unparkers[self.slot - q.unparkers.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(unparker);
        let ctx = q.new_ctx(self.slot, self.counter);
        q.helpers_active.fetch_add(1, Ordering::SeqCst);
        self.entered = true;
        CURRENT.with(|c| *c.borrow_mut() = Some(ctx.clone()));
        HelperGuard {
            ctx: Some(ctx),
            slot: self,
        }
    }
}

impl Drop for HelperSlot {
    fn drop(&mut self) {
        let q = &self.queue;
        if self.entered {
            *q.helper_unparkers[self.slot - q.unparkers.len()]
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
        }
        q.helper_free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.slot);
    }
}

/// A helper's scheduling context, installed on its thread; dropping it
/// moves the tasks it still holds to the injector and frees the slot.
pub(crate) struct HelperGuard {
    ctx: Option<Rc<WorkerCtx>>,
    slot: HelperSlot,
}

impl HelperGuard {
    pub(crate) fn ctx(&self) -> &WorkerCtx {
        self.ctx.as_ref().expect("live until dropped")
    }

    /// The slot's index (for `finish_sleep`).
    pub(crate) fn index(&self) -> usize {
        self.slot.slot
    }

    /// The queue it serves.
    pub(crate) fn queue(&self) -> &Arc<RunQueue> {
        &self.slot.queue
    }
}

impl Drop for HelperGuard {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.borrow_mut().take());
        let ctx = self.ctx.take().expect("dropped once");
        let q = self.slot.queue.clone();
        q.finish_sleep(ctx.index);
        q.hand_off(&ctx);
        q.helpers_active.fetch_sub(1, Ordering::SeqCst);
        if let Ok(ctx) = Rc::try_unwrap(ctx) {
            q.locals.lock().unwrap_or_else(|e| e.into_inner())[ctx.index] = Some(ctx.local);
        }
        // `self.slot` drops after this: unregisters and frees the slot.
    }
}

impl RunQueue {
    /// Moves the tasks queued on `ctx` (LIFO slot, deferred list, local
    /// deque) to the injector, waking a sleeper for each.
    fn hand_off(&self, ctx: &WorkerCtx) {
        ctx.reap(true); // RT1: a blocking or leaving runner holds none
        let mut moved = 0;
        let deferred: Vec<TaskRef> = ctx.deferred.borrow_mut().drain(..).collect();
        let tasks = ctx
            .lifo
            .take()
            .into_iter()
            .chain(deferred)
            .chain(std::iter::from_fn(|| ctx.local.pop()));
        for task in tasks {
            self.injector.push(task);
            moved += 1;
        }
        // Q2: a private cancel batch goes back to its tier.
        let tier = ctx.cancel_tier.get();
        let batch = std::mem::take(&mut *ctx.cancel_local.borrow_mut());
        for task in batch {
            self.cancel_lane[tier].push(task);
            moved += 1;
        }
        if moved > 0 {
            fence(Ordering::SeqCst); // Rule Q1: pairs with `prepare_sleep`.
            for _ in 0..moved.min(self.sleeping.len()) {
                self.wake_one();
            }
        }
    }
}

/// A timed-lane entry; the heap's maximum is the earliest deadline (then
/// the earliest scheduled).
struct Timed {
    deadline: u64,
    seq: u64,
    task: TaskRef,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}

impl Eq for Timed {}

impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

impl Schedule for RunQueue {
    fn timer_armed(&self) {
        fence(Ordering::SeqCst); // T4: pairs with `prepare_sleep`.
        self.wake_one();
    }

    fn schedule(&self, task: TaskRef) {
        let task = if !self.multi {
            match self.push_driver_local(task) {
                None => return, // the driver thread runs it next
                Some(task) => task,
            }
        } else if let Some(severity) = task.cancel_hint() {
            let tier = usize::from(severity).min(CANCEL_TIERS - 1);
            self.cancel_lane[tier].push(task);
            fence(Ordering::SeqCst); // Rule Q1: pairs with `prepare_sleep`.
            self.wake_one();
            return;
        } else if let Some(deadline) = task.deadline_hint() {
            self.push_timed(deadline, task);
            fence(Ordering::SeqCst); // Rule Q1: pairs with `prepare_sleep`.
            self.wake_one();
            return;
        } else {
            match self.push_local(task) {
                None => return,
                Some(task) => task,
            }
        };
        self.injector.push(task);
        fence(Ordering::SeqCst); // Rule Q1: pairs with the fence in `prepare_sleep`.
        self.wake_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::exec::runnable::Runnable;
    use crate::types::TaskId;

    /// A fake task that records its dispatch.
    struct Probe {
        name: usize,
        cancel: Option<u8>,
        deadline: Option<u64>,
        log: Arc<Mutex<Vec<usize>>>,
    }

    impl Runnable for Probe {
        fn run(self: Arc<Self>) {
            self.log.lock().unwrap().push(self.name);
        }
        fn id(&self) -> TaskId {
            unreachable!()
        }
        fn cancel_hint(&self) -> Option<u8> {
            self.cancel
        }
        fn deadline_hint(&self) -> Option<u64> {
            self.deadline
        }
    }

    /// A probe whose cell reports a cancel of `severity` (cancel lane).
    fn cancelled_probe(log: &Arc<Mutex<Vec<usize>>>, name: usize, severity: u8) -> TaskRef {
        Arc::new(Probe {
            name,
            cancel: Some(severity),
            deadline: None,
            log: log.clone(),
        })
    }

    fn queue(workers: usize) -> Arc<RunQueue> {
        let parkers: Vec<_> = (0..workers)
            .map(|_| crossbeam_utils::sync::Parker::new())
            .collect();
        Arc::new(RunQueue::new(
            parkers.iter().map(|p| p.unparker().clone()).collect(),
            workers,
        ))
    }

    /// A completed task whose drop is counted (RT1).
    struct Retired(Arc<std::sync::atomic::AtomicUsize>);

    impl Runnable for Retired {
        fn run(self: Arc<Self>) {}
        fn id(&self) -> TaskId {
            unreachable!()
        }
    }

    impl Drop for Retired {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn retired(drops: &Arc<std::sync::atomic::AtomicUsize>) -> TaskRef {
        Arc::new(Retired(drops.clone()))
    }

    #[test]
    fn a_worker_drops_its_completed_tasks_a_full_batch_at_a_time() {
        let q = queue(1);
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let _guard = q.enter(0);
        for _ in 0..RETIRE_BATCH - 1 {
            retire(retired(&drops));
        }
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "held until the batch is full"
        );
        retire(retired(&drops));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            RETIRE_BATCH,
            "dropped together"
        );
        assert!(
            !q.reaping.load(Ordering::SeqCst),
            "the reaping flag is released"
        );
    }

    #[test]
    fn a_worker_holds_its_batch_while_another_drops_one_but_never_past_the_cap() {
        let q = queue(2);
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let _guard = q.enter(0);
        q.reaping.store(true, Ordering::SeqCst); // worker 1 is dropping a batch
        for _ in 0..RETIRE_CAP - 1 {
            retire(retired(&drops));
        }
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "no two workers free at once"
        );
        retire(retired(&drops));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            RETIRE_CAP,
            "bounded: dropped at the cap"
        );
        assert!(
            q.reaping.load(Ordering::SeqCst),
            "the other worker's flag is left alone"
        );
    }

    #[test]
    fn an_idle_or_exiting_worker_holds_no_completed_task() {
        let q = queue(1);
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let guard = q.enter(0);
        retire(retired(&drops));
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        assert!(q.prepare_sleep(guard.ctx()), "no work: it may sleep");
        assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped before sleeping");
        q.finish_sleep(0);
        retire(retired(&drops));
        drop(guard);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            2,
            "dropped as the worker exits"
        );
    }

    #[test]
    fn a_completed_task_is_dropped_at_once_off_the_workers() {
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        retire(retired(&drops));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "no worker context: no batch"
        );
    }

    #[test]
    fn a_ready_task_is_dispatched_within_limit_plus_one_dispatches_behind_cancelled_ones() {
        let q = queue(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let probe = |name, cancel: bool| -> TaskRef {
            Arc::new(Probe {
                name,
                cancel: cancel.then_some(0),
                deadline: None,
                log: log.clone(),
            })
        };
        for i in 0..100 {
            q.schedule(probe(1000 + i, true));
        }
        q.schedule(probe(1, false)); // from outside: the injector
        let guard = q.enter(0);
        assert_eq!(q.run_worker_batch(guard.ctx(), 1000), 101);
        let log = log.lock().unwrap();
        let pos = log.iter().position(|&n| n == 1).unwrap();
        assert_eq!(pos, CANCEL_STREAK_LIMIT as usize, "dispatch order: {log:?}");
        let m = q.metrics();
        assert_eq!(m.workers[0].cancel_lane_dispatches, 100);
        assert_eq!(
            m.workers[0].max_cancel_streak,
            u64::from(CANCEL_STREAK_LIMIT)
        );
    }

    #[test]
    fn cancel_lane_goes_before_ready_work_and_a_worker_wake_lands_in_its_lifo_slot() {
        let q = queue(2);
        let log = Arc::new(Mutex::new(Vec::new()));
        let probe = |name, cancel: bool| -> TaskRef {
            Arc::new(Probe {
                name,
                cancel: cancel.then_some(0),
                deadline: None,
                log: log.clone(),
            })
        };
        let guard = q.enter(0);
        q.schedule(probe(1, false)); // LIFO slot
        q.schedule(probe(2, false)); // displaces 1 into the deque
        q.schedule(probe(3, true));
        assert!(q.injector.is_empty());
        assert_eq!(q.run_worker_batch(guard.ctx(), 10), 3);
        assert_eq!(*log.lock().unwrap(), vec![3, 2, 1]);
    }

    /// A task that re-schedules itself (a `yield_now`) `yields` times.
    struct Yielder {
        queue: Arc<RunQueue>,
        name: usize,
        yields: std::sync::atomic::AtomicUsize,
        log: Arc<Mutex<Vec<usize>>>,
    }

    impl Runnable for Yielder {
        fn run(self: Arc<Self>) {
            self.log.lock().unwrap().push(self.name);
            if self.yields.fetch_sub(1, Ordering::SeqCst) > 0 {
                self.queue.clone().schedule(self.clone());
            } else {
                self.yields.store(0, Ordering::SeqCst);
            }
        }
        fn id(&self) -> TaskId {
            unreachable!()
        }
    }

    #[test]
    fn a_self_woken_task_runs_after_the_workers_other_work_and_is_not_stealable_at_once() {
        let q = queue(2);
        let log = Arc::new(Mutex::new(Vec::new()));
        let guard = q.enter(0);
        let task = |name, yields| -> TaskRef {
            Arc::new(Yielder {
                queue: q.clone(),
                name,
                yields: std::sync::atomic::AtomicUsize::new(yields),
                log: log.clone(),
            })
        };
        q.schedule(task(1, 1)); // yields once
        q.schedule(task(2, 0)); // LIFO; 1 goes to the deque
        q.schedule(task(3, 0)); // LIFO; 2 goes to the deque
        assert_eq!(q.run_worker_batch(guard.ctx(), 2), 2); // 3, then 1 (yields)
        assert_eq!(q.stealers[0].len(), 1, "only 2 is stealable; 1 is deferred");
        assert_eq!(q.run_worker_batch(guard.ctx(), 10), 2);
        assert_eq!(*log.lock().unwrap(), vec![3, 1, 2, 1]);
    }

    #[test]
    fn the_cancel_lane_runs_the_most_severe_cleanup_first_and_fifo_within_a_tier() {
        let q = queue(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let probe = |name, severity| cancelled_probe(&log, name, severity);
        // (name, severity): User 0, Deadline 1, FailFast 3, Shutdown 5.
        for (name, severity) in [(1, 0), (2, 3), (3, 5), (4, 0), (5, 3), (6, 1), (7, 5)] {
            q.schedule(probe(name, severity));
        }
        let guard = q.enter(0);
        assert_eq!(q.run_worker_batch(guard.ctx(), 100), 7);
        assert_eq!(*log.lock().unwrap(), vec![3, 7, 2, 5, 6, 1, 4]);
    }

    /// Q2: a worker takes a batch of the most severe tier at once; a more
    /// severe cleanup scheduled meanwhile still runs before the rest of
    /// the batch; a worker does not sleep holding a batch, and gives it
    /// back to its tier when it hands its work off.
    #[test]
    fn a_cancel_batch_keeps_priority_and_never_sleeps_or_strays() {
        let q = queue(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let probe = |name, severity| cancelled_probe(&log, name, severity);
        for name in 0..40 {
            q.schedule(probe(name, 0));
        }
        let guard = q.enter(0);
        let ctx = guard.ctx();
        assert_eq!(q.run_worker_batch(ctx, 1), 1);
        assert_eq!(
            ctx.cancel_local.borrow().len(),
            CANCEL_BATCH - 1,
            "one steal"
        );
        assert!(!q.prepare_sleep(ctx), "Q2: its batch is its own work");
        q.schedule(probe(100, 5)); // a Shutdown cleanup
        assert_eq!(q.run_worker_batch(ctx, 2), 2);
        assert_eq!(
            *log.lock().unwrap(),
            vec![0, 100, 1],
            "the severe one first"
        );
        // Handed off (as for `block_in_place`): back to its tier, in order.
        q.hand_off(ctx);
        assert!(ctx.cancel_local.borrow().is_empty());
        assert_eq!(q.run_worker_batch(ctx, 100), 38);
        let ran = log.lock().unwrap().clone();
        let mut rest = ran[3..].to_vec();
        rest.sort_unstable();
        assert_eq!(rest, (2..40).collect::<Vec<_>>(), "each once, none lost");
    }

    #[test]
    fn the_timed_lane_is_earliest_deadline_first_and_bounded_against_ready_work() {
        let q = queue(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let probe = |name, deadline| -> TaskRef {
            Arc::new(Probe {
                name,
                cancel: None,
                deadline,
                log: log.clone(),
            })
        };
        q.schedule(probe(30, Some(30)));
        q.schedule(probe(10, Some(10)));
        q.schedule(probe(20, Some(20)));
        q.schedule(probe(11, Some(10))); // equal deadline: after 10
        q.schedule(probe(1, None));
        let guard = q.enter(0);
        assert_eq!(q.run_worker_batch(guard.ctx(), 100), 5);
        assert_eq!(*log.lock().unwrap(), vec![10, 11, 20, 30, 1]);
        log.lock().unwrap().clear();
        for i in 0..40 {
            q.schedule(probe(100 + i, Some(5)));
        }
        q.schedule(probe(2, None)); // a worker wake: the LIFO slot
        assert_eq!(q.run_worker_batch(guard.ctx(), 100), 41);
        let log = log.lock().unwrap();
        let pos = log.iter().position(|&n| n == 2).unwrap();
        assert_eq!(pos, CANCEL_STREAK_LIMIT as usize, "dispatch order: {log:?}");
        assert_eq!(q.metrics().workers[0].timed_lane_dispatches, 44);
    }
}
