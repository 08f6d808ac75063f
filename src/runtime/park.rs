//! Blocking a plain OS thread on a runtime primitive: the machinery behind
//! `blocking_send` / `blocking_recv`.
//!
//! Rules:
//! - TB1 (plain threads only): a blocking call made on a thread that runs
//!   runtime tasks (a multi-thread worker, or the thread driving a
//!   current-thread runtime) panics at once with a message naming this rule:
//!   it would stop every other task that thread runs, and on the
//!   current-thread runtime it would deadlock. Inside a task, use the async
//!   form with `&cx` (or move the blocking code to `spawn_blocking` /
//!   `block_in_place`). Threads of the blocking pool and every other thread
//!   may block.
//! - TB2 (no lost wakeup): the thread polls the primitive with a waker that
//!   unparks it, and parks only after a `Pending` poll; a wake between the
//!   poll and the park leaves an unpark token, so the park returns at once.
//!   Spurious unparks only cause another poll.

use std::sync::Arc;
use std::task::{Poll, Wake, Waker};
use std::thread::Thread;

/// Unparks the thread that created it.
struct ThreadUnpark(Thread);

impl Wake for ThreadUnpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Rule TB1: panics if the calling thread runs runtime tasks.
///
/// The single point every blocking API checks; it looks at the scheduler's
/// own thread-locals (worker threads and current-thread drivers) and at the
/// runtime context (a thread polling any task: a multi-thread root, a lab
/// task; `block_in_place` clears it while its closure may block).
#[track_caller]
pub(crate) fn assert_may_block(api: &str) {
    if super::queue::runs_tasks_on_this_thread() || crate::exec::context::in_task() {
        panic!(
            "{api} called on a thread that runs asupersync tasks (rule TB1: blocking calls are \
             for plain threads; blocking here would stall every task this thread runs). Inside \
             a task use the async form with `&cx`, or move the blocking code into \
             `spawn_blocking` or `block_in_place`"
        );
    }
}

/// Polls `poll` on the calling thread until it is ready, parking the thread
/// between polls (rule TB2).
pub(crate) fn park_until<T>(mut poll: impl FnMut(&Waker) -> Poll<T>) -> T {
    let waker = Waker::from(Arc::new(ThreadUnpark(std::thread::current())));
    loop {
        if let Poll::Ready(v) = poll(&waker) {
            return v;
        }
        std::thread::park();
    }
}
