//! Production runtimes: the current-thread and multi-thread drivers.
//!
//! Both drivers run the same kernel through the same runtime core; they
//! differ only in where runnable tasks wait and which thread polls them.
//! `block_on` always polls the root task on the calling thread (so the root
//! future need not be `Send`) and returns once the root region is closed.
//! Several threads may be inside `block_on` at once (see its docs); calling
//! it from inside a task panics (rule BO1, `exec::context`).
//!
//! Rule P1 (contract 3): no user code the runtime runs — a poll, the drop of
//! a future, of an unread output or of a finalizer, a waker woken outside a
//! task — unwinds through a driver, a worker or the kernel; each such panic
//! is caught where the runtime calls the code and reported as the task's or
//! region's `Panicked` outcome (a waker's panic, whose owner is unknown, only
//! by the panic hook).

mod block_in_place;
mod blocking;
mod builder;
mod handle;
mod inject;
mod metrics;
pub(crate) mod park;
mod queue;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_utils::sync::{Parker, Unparker};

pub use crate::exec::{AbortHandle, Join, JoinError, JoinMut, TaskHandle};
pub use block_in_place::block_in_place;
pub use blocking::spawn_blocking;
pub use builder::{BuildError, MAX_WORKER_THREADS, RuntimeBuilder};
pub use handle::Handle;
pub use metrics::{RuntimeMetrics, WorkerMetrics};

pub use crate::kernel::{ForceDropCause, ForcedDrop, KernelStats, RegionState, TaskState};

use self::queue::RunQueue;
use crate::exec::core::Core;
use crate::exec::cx::Cx;
use crate::exec::root::{RootTask, Unpark};
use crate::types::Budget;

/// How long dropping a runtime waits for handle-spawned tasks to drain.
const DROP_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How many queued tasks a driver runs before it checks timers and the root.
const DRIVER_BATCH: usize = 128;
/// A busy driver reads the clock (and so checks timers against fresh time)
/// at the first batch boundary after this many polls (tokio's event
/// interval is the same number).
const CLOCK_INTERVAL: usize = 61;

/// An asupersync runtime. Build one with [`RuntimeBuilder`].
pub struct Runtime {
    core: Arc<Core>,
    queue: Arc<RunQueue>,
    /// The current-thread runtime's driver: held by the `block_on` call
    /// that runs the tasks (and by shutdown).
    driver: Mutex<Parker>,
    driver_unparker: Unparker,
    /// Current-thread `block_on` calls waiting for the driver: unparked
    /// when the driving call returns (one of them takes over).
    driver_waiters: Mutex<Vec<(u64, Unparker)>>,
    /// Identifies `block_on` calls waiting for the current-thread driver
    /// (a per-runtime counter).
    next_call: std::sync::atomic::AtomicU64,
    workers: Vec<JoinHandle<()>>,
    shutdown: Arc<AtomicBool>,
    root_budget: Budget,
    blocking: Arc<blocking::BlockingPool>,
    service: Arc<handle::ServiceRegion>,
}

impl Runtime {
    /// Runs `f(cx)` as the root task of a fresh root region and returns its
    /// output once the region is quiescent: the body is done *and* every task
    /// spawned under it has completed and every finalizer ran.
    ///
    /// A panic in the body is resumed on the caller's thread after the region
    /// drained, with its original payload. A failure that fails the root
    /// region without a panic of the body (an unjoined child panic, an
    /// obligation leak, a panicking finalizer) is raised as a panic with the
    /// same message, which the panic hook prints.
    ///
    /// Several threads may call `block_on` on one runtime at the same time;
    /// the calls run side by side and each returns when its own root region
    /// is quiescent. On the multi-thread runtime the workers run every
    /// call's tasks. On the current-thread runtime one of the calling
    /// threads at a time drives the runtime (runs the tasks of every call
    /// and fires timers); the others poll their own root future on their
    /// own thread, and one of them takes over driving when the driving call
    /// returns.
    ///
    /// # Panics
    /// Rule BO1: when called from inside a task of any runtime (a spawned
    /// task, a root future, a finalizer), at once: the call would block the
    /// thread that runs the task and could never finish. Await the future
    /// instead, or call `block_on` from a [`spawn_blocking`] closure or a
    /// plain thread.
    #[track_caller]
    pub fn block_on<F, Fut>(&self, f: F) -> Fut::Output
    where
        F: FnOnce(Cx) -> Fut,
        Fut: Future,
    {
        crate::exec::context::assert_not_in_task("Runtime::block_on");
        if !self.workers.is_empty() {
            // PK1: the workers run the tasks; this thread only waits for
            // its root, parked as a thread (an unpark takes no lock).
            let wake = Unpark::Thread(std::thread::current());
            let mut root = RootTask::new(&self.core, self.root_budget, vec![wake], f);
            self.wait_for_root(&mut root, Wait::Thread, None);
            return root.into_output();
        }
        // Each call waits for its own root on its own parker; the driving
        // call also parks on the runtime's driver parker, which the root
        // wakes too.
        let own = Parker::new();
        let unparkers = vec![
            Unpark::Parker(own.unparker().clone()),
            Unpark::Parker(self.driver_unparker.clone()),
        ];
        let mut root = RootTask::new(&self.core, self.root_budget, unparkers, f);
        self.drive_current_thread(&mut root, &own);
        root.into_output()
    }

    /// Polls `root` on this thread, fires due timers and parks (`wait`)
    /// until the root region closed, or (with `driver_free`) until the
    /// current-thread runtime's driver is free to take.
    fn wait_for_root<Fut: Future>(
        &self,
        root: &mut RootTask<Fut>,
        wait: Wait<'_>,
        driver_free: Option<&dyn Fn() -> bool>,
    ) {
        while !root.is_done() {
            root.step();
            if root.is_done() || driver_free.is_some_and(|free| free()) {
                return;
            }
            let next_deadline = self.core.fire_due_timers(true);
            if !root.is_woken() {
                self.queue.block_on_parked();
                wait.park(next_deadline);
                self.core.refresh_clock(); // CL1
            }
        }
    }

    /// The current-thread runtime: drives the runtime while this thread
    /// holds the driver; otherwise waits for its root like a multi-thread
    /// `block_on` (the driver runs its tasks) until the driver is free.
    fn drive_current_thread<Fut: Future>(&self, root: &mut RootTask<Fut>, own: &Parker) {
        let me = self.next_call.fetch_add(1, Ordering::Relaxed);
        while !root.is_done() {
            // Registered before trying the lock: a driver that returns
            // after the attempt failed unparks this thread (no lost
            // hand-off).
            self.register_waiter(me, own);
            let parker = match self.driver.try_lock() {
                Ok(guard) => guard,
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    let try_driver = || self.driver_released(me);
                    self.wait_for_root(root, Wait::Parker(own), Some(&try_driver));
                    continue;
                }
            };
            self.forget_waiter(me);
            self.drive(root, &parker);
            drop(parker);
            // Hand the driver to a waiting call, if any.
            let waiters = std::mem::take(&mut *self.waiters());
            for (_, u) in waiters {
                u.unpark();
            }
        }
        self.forget_waiter(me);
    }

    /// The current-thread driver loop: runs the tasks, fires timers and
    /// parks on the driver parker, until `root` is done.
    fn drive<Fut: Future>(&self, root: &mut RootTask<Fut>, parker: &Parker) {
        let core = &self.core;
        let mut polls_since_clock = 0;
        // Tasks this thread wakes skip the injector.
        let _driver = self.queue.enter_driver();
        while !root.is_done() {
            root.step();
            if root.is_done() {
                break;
            }
            let ran = self.queue.run_batch(DRIVER_BATCH);
            // Park only when nothing is runnable.
            let idle = ran == 0 && self.queue.is_empty();
            // CL1: a fresh clock reading before a possible park and once
            // CLOCK_INTERVAL polls have run; otherwise the recent one.
            polls_since_clock += ran + 1;
            let precise = idle || polls_since_clock >= CLOCK_INTERVAL;
            if precise {
                polls_since_clock = 0;
            }
            let next_deadline = core.fire_due_timers(precise);
            // Timers fired just now may have woken tasks into this thread's
            // local queue, which (unlike the injector) unparks nobody.
            let idle = idle && self.queue.is_empty();
            if idle && !root.is_woken() {
                self.queue.driver_parked();
                park(parker, next_deadline);
                core.refresh_clock(); // CL1
            }
        }
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Unparker)>> {
        self.driver_waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn register_waiter(&self, me: u64, own: &Parker) {
        let mut waiters = self.waiters();
        if !waiters.iter().any(|(id, _)| *id == me) {
            waiters.push((me, own.unparker().clone()));
        }
    }

    fn forget_waiter(&self, me: u64) {
        self.waiters().retain(|(id, _)| *id != me);
    }

    /// Whether the driver was released since call `me` registered (its
    /// entry was consumed by the releasing call's hand-off).
    fn driver_released(&self, me: u64) -> bool {
        !self.waiters().iter().any(|(id, _)| *id == me)
    }

    /// A handle for spawning into this runtime from plain threads.
    pub fn handle(&self) -> Handle {
        Handle {
            core: self.core.clone(),
            service: self.service.clone(),
            budget: self.root_budget,
        }
    }

    /// Shuts the runtime down: cancels every task spawned through a
    /// [`Handle`] with `Shutdown`, drives them until they completed and their
    /// finalizers ran (rule H3), then stops the workers. Returns whether the
    /// teardown finished within `timeout`.
    pub fn shutdown_timeout(self, timeout: Duration) -> bool {
        self.shut_down_service(timeout)
        // Dropping `self` stops the workers; the service region is gone.
    }

    /// Cancels and drains the service region; true if it closed in time
    /// (or never existed).
    fn shut_down_service(&self, timeout: Duration) -> bool {
        let Some(region) = self.service.shut_down() else {
            return true;
        };
        let deadline = std::time::Instant::now() + timeout;
        let parker = self.driver.lock().unwrap_or_else(|e| e.into_inner());
        let wake = Arc::new(crate::exec::root::RootWake::new(vec![Unpark::Parker(
            self.driver_unparker.clone(),
        )]));
        let waker = std::task::Waker::from(wake.clone());
        let reason = crate::types::CancelReason::shutdown().with_message("runtime shutdown");
        self.core.with_kernel(|k, now| {
            k.cancel_region(region, reason, now);
            k.region_body_done(region, crate::kernel::BodyEnd::Ok, now);
        });
        loop {
            if self
                .core
                .with_kernel_recent(|k, _| k.poll_region_closed(region, &waker))
                .is_some()
            {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                self.core
                    .with_kernel(|k, now| k.abandon_region(region, now));
                return false;
            }
            let ran = if self.workers.is_empty() {
                self.queue.run_batch(DRIVER_BATCH)
            } else {
                0
            };
            let next_timer = self.core.fire_due_timers(true);
            let idle = !self.workers.is_empty() || (ran == 0 && self.queue.is_empty());
            if idle && !wake.take_woken() {
                let until_deadline = deadline - now;
                park(
                    &parker,
                    Some(next_timer.map_or(until_deadline, |t| t.min(until_deadline))),
                );
            }
        }
    }

    /// Kernel counters: tasks, regions, obligations, leaks and forced drops.
    pub fn stats(&self) -> KernelStats {
        self.core.lock().stats().clone()
    }

    /// Tasks that have not completed yet (0 whenever no `block_on` runs).
    pub fn live_tasks(&self) -> usize {
        self.core.lock().live_task_count()
    }

    /// Tasks the kernel keeps a record of (LT1: a light task has none
    /// until the kernel must act on it). For tests of the light paths.
    #[cfg(any(test, feature = "test-internals"))]
    #[doc(hidden)]
    pub fn registered_tasks(&self) -> usize {
        self.core.lock().registered_task_count()
    }

    /// Regions that are not closed yet (or whose report was not collected).
    pub fn live_regions(&self) -> usize {
        self.core.lock().live_region_count()
    }

    /// Obligations reserved and not yet resolved.
    pub fn pending_obligations(&self) -> usize {
        self.core.lock().pending_obligation_count()
    }

    /// Tasks the kernel keeps a record of and regions with a cancellation
    /// requested that have not completed or closed yet (0 whenever no
    /// `block_on` runs; a light task cancelled in place, rule LT7, counts
    /// only once the kernel registers it). Region bodies' checkpoints
    /// consult the kernel only while this is not 0, so a count left behind
    /// would slow every one.
    pub fn pending_cancellations(&self) -> usize {
        self.core.pending_cancellations()
    }

    /// Timers registered and not yet fired or cancelled.
    pub fn pending_timers(&self) -> usize {
        self.core.timers().len()
    }

    /// The lifecycle state of task `id`; `None` once it completed (ids of
    /// completed tasks are stale and never resolve again).
    pub fn task_state(&self, id: crate::types::TaskId) -> Option<TaskState> {
        self.core.lock().any_task_state(id)
    }

    /// The lifecycle state of region `id`; `None` once it closed and was
    /// collected.
    pub fn region_state(&self, id: crate::types::RegionId) -> Option<RegionState> {
        self.core.lock().region_state(id)
    }

    /// Threads the blocking pool currently runs (running or idle).
    pub fn blocking_threads(&self) -> usize {
        self.blocking.thread_count()
    }

    /// Number of worker threads (0 for the current-thread runtime).
    pub fn worker_threads(&self) -> usize {
        self.workers.len()
    }

    /// Scheduler counters per worker (polls, steals, parks, cancel-lane
    /// dispatches, longest cancel streak); relaxed snapshots. The
    /// current-thread runtime reports one entry: the `block_on` thread.
    pub fn metrics(&self) -> RuntimeMetrics {
        self.queue.metrics()
    }
}

/// How a `block_on` thread waits for its root's wake.
#[derive(Clone, Copy)]
enum Wait<'a> {
    /// On a parker (the current-thread runtime: the root also wakes the
    /// driver's).
    Parker(&'a Parker),
    /// PK1: as a thread (`Unpark::Thread`). A spurious return, or one
    /// caused by another unpark of this thread, only makes the loop look at
    /// the root's flag again; the flag is set before every unpark and read
    /// before every park, so no wake is lost to a token another use of
    /// `park` on this thread took.
    Thread,
}

impl Wait<'_> {
    fn park(self, timeout: Option<Duration>) {
        match self {
            Wait::Parker(parker) => park(parker, timeout),
            Wait::Thread => match timeout {
                Some(d) if d.is_zero() => {}
                Some(d) => std::thread::park_timeout(d),
                None => std::thread::park(),
            },
        }
    }
}

fn park(parker: &Parker, timeout: Option<Duration>) {
    match timeout {
        Some(d) if d.is_zero() => {}
        Some(d) => parker.park_timeout(d),
        None => parker.park(),
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Rule H3 on drop: cancel and drain what handles spawned.
        self.shut_down_service(DROP_SHUTDOWN_TIMEOUT);
        self.shutdown.store(true, Ordering::Release);
        self.blocking.shutdown();
        self.queue.unpark_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("worker_threads", &self.workers.len())
            .finish()
    }
}

/// The loop of one multi-thread worker: run a batch (see `queue` for the
/// dispatch order), fire due timers, and park when nothing is runnable
/// (rule Q1 protocol: `prepare_sleep` / `finish_sleep`).
fn worker_loop(
    core: Arc<Core>,
    queue: Arc<RunQueue>,
    index: usize,
    parker: Parker,
    shutdown: Arc<AtomicBool>,
) {
    // Installs this thread's scheduler context (LIFO slot, local deque);
    // dropping the guard uninstalls it and drops leftover tasks.
    let worker = queue.enter(index);
    // TL5: sleeps armed here go to this worker's home shard, which it
    // fires on time (others only once it is late).
    let _home = core.timers().enter_home(index);
    let mut polls_since_clock = 0;
    while !shutdown.load(Ordering::Acquire) {
        let ran = queue.run_worker_batch(worker.ctx(), DRIVER_BATCH);
        // CL1: read the clock before parking and once CLOCK_INTERVAL polls
        // have run.
        polls_since_clock += ran;
        let precise = ran == 0 || polls_since_clock >= CLOCK_INTERVAL;
        if precise {
            polls_since_clock = 0;
        }
        let next_deadline = core.fire_due_timers(precise);
        if ran == 0 && !queue.spin_for_work() && queue.prepare_sleep(worker.ctx()) {
            // T4: a timer armed by a plain thread since `next_deadline` was
            // read either shows in the hint now or finds this worker asleep.
            let next_deadline = core.until_timer_hint().or(next_deadline);
            park(&parker, next_deadline);
            queue.finish_sleep(index);
            core.refresh_clock(); // CL1: the next batch's stamps are fresh
        }
    }
}
