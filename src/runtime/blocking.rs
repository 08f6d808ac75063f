//! The blocking pool: a bounded, lazily grown set of threads for closures
//! that block (file I/O, CPU-heavy work, foreign blocking APIs).
//!
//! Rules:
//! - B1 (structured): `spawn_blocking` creates an ordinary task in the
//!   caller's region; the region does not close until the closure returned.
//! - B2 (bounded, lazy): a thread is started only when a job arrives and no
//!   thread is idle, up to `max_threads`; beyond that, jobs queue FIFO.
//! - B3 (retire): a thread idle for `keep_alive` exits.
//! - B4 (panics): a panicking closure is caught on the pool thread and
//!   re-raised in the task, which completes as `Panicked`; the pool thread
//!   survives.
//! - B5 (uninterruptible): a running closure cannot be interrupted, so the
//!   task is exempt from grace-period force drops; a cancel requested while
//!   it runs does not lose its result (the task completes `Ok` — it never
//!   observed the request). In the lab the closure runs inline on the first
//!   poll, so it stays deterministic.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::exec::cx::{Capabilities, Cx};
use crate::exec::runnable::BlockingRunner;
use crate::exec::task_handle::TaskHandle;
use crate::kernel::SpawnError;
use crate::types::Budget;

type Job = Box<dyn FnOnce() + Send>;

/// Pool settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockingConfig {
    pub(crate) max_threads: usize,
    pub(crate) keep_alive: Duration,
}

impl Default for BlockingConfig {
    fn default() -> Self {
        Self {
            max_threads: 512,
            keep_alive: Duration::from_secs(10),
        }
    }
}

struct PoolState {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
    shutdown: bool,
    spawned_total: usize,
}

pub(crate) struct BlockingPool {
    state: Mutex<PoolState>,
    work: Condvar,
    config: BlockingConfig,
    name: String,
}

impl BlockingRunner for BlockingPool {
    fn submit(self: Arc<Self>, job: Job) {
        BlockingPool::submit(&self, job);
    }
}

impl BlockingPool {
    pub(crate) fn new(config: BlockingConfig, name: String) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(PoolState {
                jobs: VecDeque::new(),
                threads: 0,
                idle: 0,
                shutdown: false,
                spawned_total: 0,
            }),
            work: Condvar::new(),
            config,
            name,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`, starting a thread if none is idle (B2).
    pub(crate) fn submit(self: &Arc<Self>, job: Job) {
        let mut st = self.lock();
        st.jobs.push_back(job);
        if st.idle > 0 {
            drop(st);
            self.work.notify_one();
            return;
        }
        if st.threads < self.config.max_threads && !st.shutdown {
            st.threads += 1;
            st.spawned_total += 1;
            let index = st.spawned_total;
            drop(st);
            let pool = self.clone();
            let started = std::thread::Builder::new()
                .name(format!("{}-blocking-{index}", self.name))
                .spawn(move || pool.run_thread());
            if started.is_err() {
                // Could not start a thread: the queued job waits for one.
                self.lock().threads -= 1;
            }
        }
    }

    fn run_thread(self: Arc<Self>) {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                drop(st);
                job(); // B4: jobs catch their own panics.
                st = self.lock();
                continue;
            }
            if st.shutdown {
                break;
            }
            st.idle += 1;
            let (guard, timeout) = self
                .work
                .wait_timeout(st, self.config.keep_alive)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            st.idle -= 1;
            if timeout.timed_out() && st.jobs.is_empty() {
                break; // B3: retire.
            }
        }
        st.threads -= 1;
    }

    /// Threads currently alive (running or idle).
    pub(crate) fn thread_count(&self) -> usize {
        self.lock().threads
    }

    pub(crate) fn shutdown(&self) {
        self.lock().shutdown = true;
        self.work.notify_all();
    }
}

/// Where a blocking closure's result lands.
struct Slot<T> {
    result: Option<Result<T, Box<dyn Any + Send>>>,
    waker: Option<Waker>,
}

enum Stage<F, T> {
    Start(F),
    Running(Arc<Mutex<Slot<T>>>),
    Done,
}

/// The future of a blocking task: submit on first poll, then wait.
struct BlockingTask<F, T> {
    pool: Option<Arc<dyn BlockingRunner>>,
    stage: Stage<F, T>,
}

impl<F, T> Future for BlockingTask<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.stage, Stage::Done) {
            Stage::Start(f) => {
                let Some(pool) = &this.pool else {
                    // The lab: run inline, deterministically (B5); the
                    // closure is not part of the task (rule BO1 in
                    // `context`: it may call another runtime's `block_on`).
                    let _outside = crate::exec::context::exit_task();
                    return Poll::Ready(f());
                };
                let slot = Arc::new(Mutex::new(Slot {
                    result: None,
                    waker: Some(cx.waker().clone()),
                }));
                let done = slot.clone();
                pool.clone().submit(Box::new(move || {
                    let result = catch_unwind(AssertUnwindSafe(f));
                    let waker = {
                        let mut s = done.lock().unwrap_or_else(|e| e.into_inner());
                        s.result = Some(result);
                        s.waker.take()
                    };
                    if let Some(w) = waker {
                        w.wake();
                    }
                }));
                this.stage = Stage::Running(slot);
                Poll::Pending
            }
            Stage::Running(slot) => {
                let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
                match s.result.take() {
                    Some(Ok(v)) => Poll::Ready(v),
                    Some(Err(payload)) => {
                        drop(s);
                        resume_unwind(payload) // B4: the task completes Panicked.
                    }
                    None => {
                        s.waker = Some(cx.waker().clone());
                        drop(s);
                        this.stage = Stage::Running(slot);
                        Poll::Pending
                    }
                }
            }
            Stage::Done => panic!("blocking task polled after completion"),
        }
    }
}

// The closure is only ever moved out by value, never pinned.
impl<F, T> Unpin for BlockingTask<F, T> {}

/// Runs the blocking closure `f` on the runtime's blocking pool, as a task
/// owned by `cx`'s region (rule B1): the region does not close until `f`
/// returned. The handle joins with `f`'s value; a panic in `f` joins as
/// `JoinError::Panicked`.
///
/// # Cancellation
/// A running closure cannot be interrupted (B5): cancelling the task does
/// not stop it, the task is not force-dropped while it runs, and its result
/// is kept (it completes `Ok`). A joiner that is cancelled stops waiting (see
/// `TaskHandle::join`) without affecting the closure.
///
/// Errors: as for `Cx::spawn` (region closed or cancelled, or the `Cx` lacks
/// the spawn capability).
pub fn spawn_blocking<F, T>(cx: &Cx, f: F) -> Result<TaskHandle<T>, SpawnError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if !cx.capabilities().contains(Capabilities::SPAWN) {
        return Err(SpawnError::CapabilityDenied("spawn"));
    }
    let core = cx.core();
    let pool = core.blocking_pool();
    // LR1: a light region is registered first (the task is not light).
    if let Some(set) = cx.light() {
        core.with_kernel_recent(|k, _| k.ensure_region_of(Some(set)));
    }
    // Registered from the start: it is marked uninterruptible at once.
    let handle = core.spawn(
        cx.region_id(),
        None,
        Budget::INFINITE,
        cx.capabilities(),
        move |_cx| BlockingTask {
            pool,
            stage: Stage::Start(f),
        },
    )?;
    let (id, region) = (handle.task_id(), cx.region_id());
    core.with_kernel_recent(|k, _| k.mark_uninterruptible(id, region));
    Ok(handle)
}
