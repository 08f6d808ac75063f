//! `RuntimeBuilder`: choose a driver and its settings.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crossbeam_utils::sync::Parker;

use super::blocking::{BlockingConfig, BlockingPool};
use super::queue::{self, RunQueue};
use super::{Runtime, worker_loop};
use crate::exec::core::{Core, CoreOptions};
use crate::exec::runnable::MonotonicClock;
use crate::kernel::{KernelConfig, LeakPolicy};
use crate::types::Budget;

/// The most worker threads a runtime may have (`worker_threads` above it is
/// a [`BuildError`]): far beyond any useful count for an async runtime
/// (one worker per core is the default), and low enough that a typo such
/// as `100_000` fails at once instead of starting thousands of threads.
pub const MAX_WORKER_THREADS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    CurrentThread,
    MultiThread,
}

/// Configures and builds a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeBuilder {
    flavor: Flavor,
    worker_threads: Option<usize>,
    kernel: KernelConfig,
    root_budget: Budget,
    thread_name: String,
    stack_size: Option<usize>,
    blocking: BlockingConfig,
}

/// Why a runtime could not be built.
#[derive(Debug)]
pub struct BuildError {
    message: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RuntimeBuilder {
    /// A multi-thread runtime; worker count defaults to the available
    /// parallelism.
    pub fn new() -> Self {
        Self {
            flavor: Flavor::MultiThread,
            worker_threads: None,
            kernel: KernelConfig::default(),
            root_budget: Budget::INFINITE,
            thread_name: "asupersync-worker".to_string(),
            stack_size: None,
            blocking: BlockingConfig::default(),
        }
    }

    /// A runtime that runs every task on the thread calling `block_on`.
    pub fn current_thread() -> Self {
        Self {
            flavor: Flavor::CurrentThread,
            ..Self::new()
        }
    }

    /// Number of worker threads (multi-thread runtime). Must be at least 1
    /// and at most [`MAX_WORKER_THREADS`] (1024); `build` reports other
    /// counts as a [`BuildError`].
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = Some(n);
        self
    }

    /// Grace period after a cancel request before a task that has not
    /// finished is force-dropped. Overrides the per-kind defaults
    /// (`CancelKind::grace_period`).
    pub fn cleanup_grace(mut self, grace: Duration) -> Self {
        self.kernel.cleanup_grace = Some(grace);
        self
    }

    /// What to do when an obligation leak is detected (default: panic).
    pub fn obligation_leak_policy(mut self, policy: LeakPolicy) -> Self {
        self.kernel.leak_policy = policy;
        self
    }

    /// Budget of every root region (and so of every task).
    pub fn root_budget(mut self, budget: Budget) -> Self {
        self.root_budget = budget;
        self
    }

    /// Most threads the blocking pool may run at once (default 512).
    /// Zero is clamped to one.
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.blocking.max_threads = n.max(1);
        self
    }

    /// How long an idle blocking-pool thread lingers before it exits
    /// (default 10 s).
    pub fn blocking_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.blocking.keep_alive = keep_alive;
        self
    }

    /// Name prefix of worker threads (and of blocking-pool threads). It
    /// may not contain a NUL byte (`build` reports one as a
    /// [`BuildError`]).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Stack size of worker threads in bytes (default: the standard
    /// library's, 2 MiB unless `RUST_MIN_STACK` says otherwise). A size the
    /// system cannot provide makes `build` fail with a [`BuildError`].
    pub fn thread_stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Builds the runtime.
    ///
    /// Errors: `worker_threads(0)` or above [`MAX_WORKER_THREADS`],
    /// `worker_threads` on a current-thread builder, a thread name with a
    /// NUL byte, or a worker thread that could not be started (the workers
    /// already started are stopped again).
    pub fn build(self) -> Result<Runtime, BuildError> {
        if self.thread_name.contains('\0') {
            return Err(BuildError {
                message: format!(
                    "thread_name {:?} contains a NUL byte, which thread names cannot hold",
                    self.thread_name
                ),
            });
        }
        let workers = match (self.flavor, self.worker_threads) {
            (_, Some(0)) => {
                return Err(BuildError {
                    message: "worker_threads must be at least 1".to_string(),
                });
            }
            (_, Some(n)) if n > MAX_WORKER_THREADS => {
                return Err(BuildError {
                    message: format!(
                        "worker_threads({n}) is above the maximum of {MAX_WORKER_THREADS} \
                         (asupersync::runtime::MAX_WORKER_THREADS)"
                    ),
                });
            }
            (Flavor::CurrentThread, Some(_)) => {
                return Err(BuildError {
                    message: "worker_threads cannot be set on a current_thread runtime".to_string(),
                });
            }
            (Flavor::CurrentThread, None) => 0,
            (Flavor::MultiThread, Some(n)) => n,
            (Flavor::MultiThread, None) => {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            }
        };
        let mut config = self.kernel;
        // TL4: twice as many timer shards as workers (at most 16); TL5: the
        // first half are the workers' home shards (none on the
        // current-thread runtime).
        config.timer_shards = (2 * workers).clamp(1, 16);
        config.timer_home_shards = workers.min(config.timer_shards / 2);
        let driver = Parker::new();
        let driver_unparker = driver.unparker().clone();
        let worker_parkers: Vec<Parker> = (0..workers).map(|_| Parker::new()).collect();
        let unparkers = if workers == 0 {
            vec![driver_unparker.clone()]
        } else {
            worker_parkers
                .iter()
                .map(|p| p.unparker().clone())
                .collect()
        };
        let queue = Arc::new(RunQueue::new(unparkers, workers));
        let blocking = BlockingPool::new(self.blocking, self.thread_name.clone());
        let core = Core::new(
            config,
            Arc::new(MonotonicClock::new()),
            queue.clone(),
            CoreOptions {
                retire: if workers == 0 { drop } else { queue::retire },
                ..CoreOptions::production(blocking.clone())
            },
        );
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(workers);
        for (index, parker) in worker_parkers.into_iter().enumerate() {
            let (w_core, w_queue, w_shutdown) = (core.clone(), queue.clone(), shutdown.clone());
            let mut thread =
                std::thread::Builder::new().name(format!("{}-{index}", self.thread_name));
            if let Some(bytes) = self.stack_size {
                thread = thread.stack_size(bytes);
            }
            let spawned =
                thread.spawn(move || worker_loop(w_core, w_queue, index, parker, w_shutdown));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shutdown.store(true, std::sync::atomic::Ordering::Release);
                    queue.unpark_all();
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(BuildError {
                        message: format!("failed to start worker thread {index}: {e}"),
                    });
                }
            }
        }
        Ok(Runtime {
            core,
            queue,
            driver: std::sync::Mutex::new(driver),
            driver_unparker,
            driver_waiters: std::sync::Mutex::new(Vec::new()),
            next_call: std::sync::atomic::AtomicU64::new(0),
            workers: handles,
            shutdown,
            root_budget: self.root_budget,
            blocking,
            service: Default::default(),
        })
    }
}
