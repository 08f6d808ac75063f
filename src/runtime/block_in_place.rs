//! `block_in_place`: run blocking code on the current worker thread without
//! starving the tasks queued behind it.
//!
//! Rules:
//! - BP1 (hand-off): on a multi-thread worker, the worker's queued tasks
//!   (LIFO slot, deferred yields, local deque) move to the shared injector
//!   before the closure runs, and the thread stops being a worker while it
//!   runs: what the closure wakes goes to the injector, and blocking calls
//!   (`blocking_recv`, ...) are allowed in it (rule TB1 sees a plain thread).
//! - BP2 (helper): a helper thread from the blocking pool runs the worker
//!   loop in the blocked worker's place until the closure returns (it has
//!   its own sleep slot, so rule Q1 covers it), then stops at its next
//!   batch boundary and hands what it still holds to the injector. There
//!   are two helper slots per worker (so that many threads can block in
//!   `block_in_place` at once, helpers included, while the runtime keeps
//!   all its runners); without a free slot (or with the blocking pool
//!   saturated) the closure still runs and the other runners carry the
//!   load.
//! - BP3 (where): the root task of a multi-thread `block_on` (polled on the
//!   calling thread, which runs no other task), the lab (single-threaded,
//!   deterministic: time does not move while the closure runs) and plain
//!   threads run the closure inline; the current-thread runtime panics,
//!   since its only thread runs every task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_utils::sync::{Parker, Unparker};

use super::queue::{self, Detached, HelperSlot};
use super::{CLOCK_INTERVAL, park};
use crate::exec::context;
use crate::exec::core::Core;
use crate::exec::cx::Cx;

/// Tasks a helper runs between two looks at its stop flag.
const HELPER_BATCH: usize = 16;

/// Runs the blocking closure `f` on the current thread, without starving
/// the other tasks of the runtime, and returns its value.
///
/// Unlike [`spawn_blocking`](super::spawn_blocking), `f` need not be
/// `'static` or `Send`: it runs right here, inside the calling task's poll,
/// and may borrow from the task. On a multi-thread worker the worker first
/// hands its queued tasks to the other workers and a helper thread takes
/// its place until `f` returns (rules BP1, BP2); blocking calls such as
/// `blocking_recv` are allowed inside `f`.
///
/// Where it runs `f` (rule BP3): on a multi-thread worker as above; inline
/// in the root task of a multi-thread `block_on` (that thread runs no other
/// task), in the lab (deterministically; virtual time does not move while
/// `f` runs) and on plain threads.
///
/// # Cancellation
/// `f` cannot be interrupted: the task is inside a poll while `f` runs, so
/// it can be neither cancelled nor force-dropped until `f` returns. A
/// cancellation requested meanwhile is observed at the task's next
/// checkpoint or cancel-aware wait.
///
/// # Panics
/// On the current-thread runtime (its only thread runs every task; use
/// `spawn_blocking`), or if `cx` belongs to another runtime than the worker
/// it is called on. A panic in `f` propagates to the caller after the worker
/// took its place back.
#[track_caller]
pub fn block_in_place<R>(cx: &Cx, f: impl FnOnce() -> R) -> R {
    let Some(worker) = queue::detach_worker() else {
        assert!(
            !queue::drives_current_thread_runtime(),
            "block_in_place called on the current-thread runtime (rule BP3: its only thread runs \
             every task, so blocking it stops them all); use `spawn_blocking`, or a multi-thread \
             runtime"
        );
        // Blocking calls (rule TB1) are allowed in `f`, except in the lab
        // (no blocking pool: one thread runs everything, so a blocking wait
        // could never end; it panics instead of hanging).
        let _may_block = cx.core().blocking_pool().is_some().then(context::exit_task);
        return f();
    };
    // `worker` re-attaches when dropped, on every path (panics included).
    assert!(
        cx.core()
            .is_scheduled_by(Arc::as_ptr(worker.queue()).cast::<()>()),
        "block_in_place: this Cx belongs to another runtime than the worker thread it is called \
         on (use the calling task's own cx)"
    );
    worker.hand_off();
    // Dropped before `worker`: the helper is told to stop first.
    let _helper = start_helper(cx.core(), &worker);
    let _may_block = context::exit_task(); // TB1: blocking calls allowed in `f`
    // TL5: the helper fires this worker's home shard meanwhile; timers armed
    // in `f` go to the shared shards.
    let _away = crate::kernel::Timers::leave_home();
    f()
}

/// Stops its helper when dropped.
struct Helper {
    stop: Arc<AtomicBool>,
    unparker: Unparker,
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.unparker.unpark();
    }
}

/// Starts a helper on the blocking pool, if a helper slot is free (BP2).
fn start_helper(core: &Arc<Core>, worker: &Detached) -> Option<Helper> {
    let pool = core.blocking_pool()?;
    let slot = worker.reserve_helper()?;
    let parker = Parker::new();
    let helper = Helper {
        stop: Arc::new(AtomicBool::new(false)),
        unparker: parker.unparker().clone(),
    };
    let (core, stop) = (core.clone(), helper.stop.clone());
    pool.submit(Box::new(move || helper_loop(&core, slot, &parker, &stop)));
    Some(helper)
}

/// The worker loop, run by a helper until told to stop (see the worker
/// loop in `runtime` for the steps; the sleep protocol is Q1's).
fn helper_loop(core: &Arc<Core>, slot: HelperSlot, parker: &Parker, stop: &AtomicBool) {
    let guard = slot.enter(parker.unparker().clone());
    let queue = guard.queue().clone();
    // TL5: the home shard of the worker this helper stands in for.
    let _home = core.timers().enter_home(guard.ctx().worker());
    let mut polls_since_clock = 0;
    while !stop.load(Ordering::Acquire) {
        let ran = queue.run_worker_batch(guard.ctx(), HELPER_BATCH);
        polls_since_clock += ran;
        let precise = ran == 0 || polls_since_clock >= CLOCK_INTERVAL;
        if precise {
            polls_since_clock = 0;
        }
        let next_deadline = core.fire_due_timers(precise);
        if ran == 0 && !queue.spin_for_work() && queue.prepare_sleep(guard.ctx()) {
            // The stop signal unparks us; the parker keeps the token if it
            // came before the park.
            if !stop.load(Ordering::Acquire) {
                park(parker, next_deadline);
            }
            queue.finish_sleep(guard.index());
            core.refresh_clock();
        }
    }
    // Dropping the guard hands the helper's leftovers to the injector and
    // frees the slot.
}
