//! The runtime core: the kernel behind its lock, plus the clock and the
//! scheduler of whichever driver runs it. Everything a `Cx` does goes
//! through here; drivers only decide *which* task runs next and *when* time
//! moves.
//!
//! The core knows nothing above it in `exec` (task cells, `Cx`, handles,
//! the finalizer task): it polls a future it is handed ([`Core::poll_task`])
//! and starts finalizer tasks through the [`FinalizerStarter`] given at
//! construction. Spawning lives in `spawn`.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::context::{CellWords, CoreKey};
use super::runnable::{BlockingRunner, Clock, Schedule, TaskRef, poll_catching, wake_catching};

use crate::kernel::{Actions, Kernel, KernelConfig, PollDecision, TaskCounters, Timers};
use crate::types::rng::DetRng;
use crate::types::{RegionId, TaskId, Time};

/// Starts the task that runs `region`'s finalizers (K6): how the core, which
/// knows no task cells, acts on the kernel's `start_finalizers`. Given at
/// construction by the layer that spawns (`spawn::start_finalizer_task`);
/// called once per finalizer start, never on a spawn or poll path.
pub(crate) type FinalizerStarter = fn(&Arc<Core>, RegionId);

/// The result of one poll of a task.
pub(crate) enum Step<T> {
    Pending,
    Ready(T),
    Panicked(Box<dyn Any + Send>),
    /// The kernel decided the future must be dropped unpolled.
    Drop,
}

pub(crate) struct Core {
    kernel: Mutex<Kernel>,
    clock: Arc<dyn Clock>,
    scheduler: Arc<dyn Schedule>,
    /// Whether the kernel records a trace (the lab); checked before locking.
    tracing: bool,
    /// `Cx` randomness: seeded by the lab, from the OS hasher seed otherwise.
    rng: Mutex<DetRng>,
    /// Where blocking closures run; `None` (the lab) runs them inline.
    blocking: Option<Arc<dyn BlockingRunner>>,
    /// Shared with the kernel (rule A2).
    cancel_gauge: Arc<std::sync::atomic::AtomicUsize>,
    /// The timer service (the wheel under its own lock and the K8 hint),
    /// shared with the kernel, which arms its own timers in it. Drivers
    /// skip the wheel lock until the hint passes.
    timers: Arc<Timers>,
    /// Shared with the kernel (rule LT5): task ids, from which the task statistics
    /// are derived (`spawn` takes light tasks' ids from it).
    pub(super) counters: Arc<TaskCounters>,
    /// Shared with the kernel and every obligation home (rule OB7).
    obligation_counters: Arc<crate::kernel::ObligationCounters>,
    /// Acts on the kernel's `start_finalizers` (see [`FinalizerStarter`]).
    start_finalizers: FinalizerStarter,
    /// The kernel's uniform grace period, if configured (K4), for the
    /// cancels of light tasks made without it (LT7).
    cleanup_grace: Option<std::time::Duration>,
    /// RT1: takes a completed task's reference from the thread that ran
    /// it (see [`CoreOptions::retire`]).
    retire: fn(TaskRef),
}

/// Per-driver settings of the core.
pub(crate) struct CoreOptions {
    pub(crate) tracing: bool,
    pub(crate) seed: u64,
    pub(crate) blocking: Option<Arc<dyn BlockingRunner>>,
    /// Rule RT1 (retired cells): where the thread that ran a task to
    /// completion puts the reference its run held, which is often the
    /// cell's last, unless that thread spawned the cell (then it drops it). `drop` frees the cell at once; the multi-thread
    /// runtime's workers collect such references and drop them in batches,
    /// one worker at a time (`runtime::queue::retire`), so that workers
    /// freeing cells another thread allocated do not contend for that
    /// thread's allocator arena. Deferring the drop of a completed cell
    /// is unobservable to tasks: its future and output are gone already,
    /// or a handle still holds the cell.
    pub(crate) retire: fn(TaskRef),
}

impl CoreOptions {
    /// Production defaults: no trace, a seed that differs per runtime.
    pub(crate) fn production(blocking: Arc<dyn BlockingRunner>) -> Self {
        use std::hash::{BuildHasher, RandomState};
        Self {
            tracing: false,
            seed: RandomState::new().hash_one(std::time::SystemTime::now()),
            blocking: Some(blocking),
            retire: drop,
        }
    }
}

impl Core {
    /// A core whose regions' finalizer tasks `start_finalizers` starts.
    /// Drivers call `Core::new` (in `spawn`), which passes the task-cell
    /// starter.
    pub(crate) fn with_finalizer_starter(
        config: KernelConfig,
        clock: Arc<dyn Clock>,
        scheduler: Arc<dyn Schedule>,
        options: CoreOptions,
        start_finalizers: FinalizerStarter,
    ) -> Arc<Self> {
        let start = clock.now();
        let cleanup_grace = config.cleanup_grace;
        let mut kernel = Kernel::new(config, start);
        let fresh = clock.clone();
        kernel.set_fresh_clock(Arc::new(move || fresh.now()));
        if options.tracing {
            kernel.enable_trace();
        }
        let cancel_gauge = kernel.cancel_gauge();
        let timers = kernel.timers();
        let counters = kernel.counters();
        let obligation_counters = kernel.obligation_counters();
        Arc::new(Self {
            kernel: Mutex::new(kernel),
            clock,
            scheduler,
            tracing: options.tracing,
            rng: Mutex::new(DetRng::derive(options.seed, 0xC0FFEE)),
            blocking: options.blocking,
            cancel_gauge,
            timers,
            counters,
            obligation_counters,
            start_finalizers,
            cleanup_grace,
            retire: options.retire,
        })
    }

    /// Production drivers, between batches: fires the timers that are due
    /// (taking the wheel lock only if the K8 hint says one may be) and
    /// returns how long the driver may sleep before the next one.
    ///
    /// `precise: false` compares against the clock's recent reading (CL1)
    /// instead of reading it: a busy driver reads the clock only every so
    /// many polls, an idle one before every park.
    pub(crate) fn fire_due_timers(self: &Arc<Self>, precise: bool) -> Option<std::time::Duration> {
        let mut now = if precise {
            self.now()
        } else {
            self.clock.recent()
        };
        if self.timers.hint(Ordering::Acquire) <= now.as_nanos() {
            now = self.now();
            self.fire_timers(now);
        }
        // Sleeping until the hint (a lower bound) never oversleeps a timer.
        let hint = self.timers.hint(Ordering::Acquire);
        (hint != u64::MAX)
            .then(|| std::time::Duration::from_nanos(hint.saturating_sub(now.as_nanos())))
    }

    /// Rule T4: how long a driver that has announced its sleep may park,
    /// re-read from the K8 hint (a timer armed by a plain thread after the
    /// driver's last look lowers it; the arming thread's wake-up then finds
    /// the driver asleep, or the driver sees the hint here).
    pub(crate) fn until_timer_hint(&self) -> Option<std::time::Duration> {
        let hint = self.timers.hint(Ordering::SeqCst);
        (hint != u64::MAX)
            .then(|| std::time::Duration::from_nanos(hint.saturating_sub(self.now().as_nanos())))
    }

    /// Fires every timer due at `now` (rule TL1 in `kernel::timers`): the
    /// wheel lock is held only to take the due entries out; the sleepers
    /// are woken with no lock held, in firing order; then, only if kernel
    /// timers (grace, deadlines) fired, the kernel lock is taken once to
    /// process them. Returns how many fired.
    pub(crate) fn fire_timers(self: &Arc<Self>, now: Time) -> usize {
        let fired = self.timers.take_due(now);
        let n = fired.len();
        if n == 0 {
            return 0;
        }
        if self.tracing {
            self.trace(crate::trace::TraceKind::TimerFire { count: n });
        }
        // A panicking waker is contained (contract 3).
        for waker in fired.sleepers {
            wake_catching(waker);
        }
        if !fired.events.is_empty() {
            let events = fired.events;
            self.with_kernel(|k, now| k.fire_kernel_timers(events, now));
        }
        n
    }

    /// The timer service (sleep entries arm and disarm themselves in it).
    pub(crate) fn timers(&self) -> &Arc<Timers> {
        &self.timers
    }

    /// The clock's recent reading (rule CL1): never ahead of the clock.
    /// For timer polls and stamps that only record roughly when something
    /// happened (an obligation's `reserved_at`).
    pub(crate) fn recent_now(&self) -> Time {
        self.clock.recent()
    }

    /// Rule T4: tells the driver a thread outside the runtime armed a timer.
    pub(crate) fn timer_armed_outside(&self) {
        self.scheduler.timer_armed();
    }

    pub(crate) fn blocking_pool(&self) -> Option<Arc<dyn BlockingRunner>> {
        self.blocking.clone()
    }

    pub(crate) fn is_tracing(&self) -> bool {
        self.tracing
    }

    /// Records a trace event (no-op unless tracing).
    pub(crate) fn trace(&self, kind: crate::trace::TraceKind) {
        if self.tracing {
            let now = self.now();
            let mut k = self.lock();
            k.set_now(now);
            k.emit(kind);
        }
    }

    /// Rule A2: whether any checkpoint could observe a cancellation now.
    pub(crate) fn any_cancellation(&self) -> bool {
        self.cancel_gauge.load(Ordering::Acquire) > 0
    }

    /// Rule A2's gauge: registered tasks and regions with a pending
    /// cancellation (a light task cancelled in place counts once the kernel
    /// registers it, LT8).
    pub(crate) fn pending_cancellations(&self) -> usize {
        self.cancel_gauge.load(Ordering::Acquire)
    }

    /// K4: the grace period of a cancel of `kind` (LT7).
    pub(crate) fn grace_for(&self, kind: crate::types::CancelKind) -> std::time::Duration {
        crate::kernel::grace_period(self.cleanup_grace, kind)
    }

    pub(crate) fn random_u64(&self) -> u64 {
        self.rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_u64()
    }

    /// RT1: the hook that takes a completed task's last run reference.
    /// A plain function (copied out), so the caller can hand over the very
    /// reference it reached the core through.
    pub(crate) fn retire_hook(&self) -> fn(TaskRef) {
        self.retire
    }

    pub(crate) fn now(&self) -> Time {
        self.clock.now()
    }

    /// An exact reading of the clock that does not become its recent one
    /// (`Clock::quiet`): an abort's stamp (LT7).
    pub(crate) fn now_quiet(&self) -> Time {
        self.clock.quiet()
    }

    /// The per-runtime obligation counters (rule OB7).
    pub(crate) fn obligation_counters(&self) -> &Arc<crate::kernel::ObligationCounters> {
        &self.obligation_counters
    }

    /// Refreshes the clock's recent reading (rule CL1), e.g. after a park.
    pub(crate) fn refresh_clock(&self) {
        self.clock.now();
    }

    pub(crate) fn schedule(&self, task: TaskRef) {
        self.scheduler.schedule(task);
    }

    /// Locks the kernel. No user code runs under this lock, so poisoning
    /// can only come from a kernel bug; we still recover the data.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Kernel> {
        self.kernel.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the kernel, then performs the actions it queued after the
    /// lock is released.
    pub(crate) fn with_kernel<R>(self: &Arc<Self>, f: impl FnOnce(&mut Kernel, Time) -> R) -> R {
        let (result, actions) = self.with_kernel_deferred(f);
        self.run_actions(actions);
        result
    }

    /// [`with_kernel`](Self::with_kernel) for calls that only record when
    /// something happened (spawn, completion) or do not use the time at
    /// all, timed by the clock's recent reading (rule CL1) instead of a fresh
    /// one. Kernel time never moves backwards.
    pub(crate) fn with_kernel_recent<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Kernel, Time) -> R,
    ) -> R {
        let (result, actions) = self.with_kernel_recent_deferred(f);
        self.run_actions(actions);
        result
    }

    /// [`with_kernel_recent`](Self::with_kernel_recent) handing the actions
    /// back (see [`with_kernel_deferred`](Self::with_kernel_deferred)).
    pub(crate) fn with_kernel_recent_deferred<R>(
        &self,
        f: impl FnOnce(&mut Kernel, Time) -> R,
    ) -> (R, Actions) {
        let recent = self.clock.recent();
        let mut kernel = self.lock();
        let now = kernel.now().max(recent);
        kernel.set_now_recent(now);
        let result = f(&mut kernel, now);
        (result, kernel.take_actions())
    }

    /// Like [`with_kernel`](Self::with_kernel), but hands the actions back so
    /// the caller can release its own locks first.
    pub(crate) fn with_kernel_deferred<R>(
        &self,
        f: impl FnOnce(&mut Kernel, Time) -> R,
    ) -> (R, Actions) {
        let now = self.now();
        let mut kernel = self.lock();
        kernel.set_now(now);
        let result = f(&mut kernel, now);
        (result, kernel.take_actions())
    }

    pub(crate) fn run_actions(self: &Arc<Self>, actions: Actions) {
        if actions.is_empty() {
            return;
        }
        for w in actions.wakes {
            wake_catching(w);
        }
        // LT10: region cancels' sweeps, after the few wakes above (the
        // owners' and registered tasks') that a long sweep would delay.
        for sweep in actions.sweeps {
            sweep.run();
        }
        for region in actions.start_finalizers {
            (self.start_finalizers)(self, region);
        }
    }

    /// One poll of task `id` of region `region`, after the kernel's
    /// pre-poll bookkeeping. `cell` holds the task's state word, for its
    /// fast-path bits (rule A1 in `kernel`, SW4 in `state`), and a light
    /// task's cancel slot (LT7): `None` always goes through the kernel.
    /// `polled_before`: the run edge found STARTED set (SW3).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn poll_task<F: Future + ?Sized>(
        self: &Arc<Self>,
        id: TaskId,
        region: RegionId,
        future: Pin<&mut F>,
        waker: &Waker,
        cell: Option<CellWords<'_>>,
        polled_before: bool,
        home: Option<&(dyn crate::kernel::HomeSource + 'static)>,
    ) -> Step<F::Output> {
        let attention = cell.map(|c| c.state);
        let through_kernel = cell.is_none_or(|c| {
            // SW4: a bit set before the run edge is in the value it
            // replaced; only then is there anything to take (a bit set
            // since stays for the next poll), so most polls skip the RMW.
            // CANCEL_ATTENTION alone matters only to a task's first poll
            // (it is dropped unpolled); for a started one it is left set,
            // and every later poll skips the RMW too (a cancelled task's
            // polls while it drains).
            if !c.seen.has_attention() && (!c.seen.has_cancel_attention() || polled_before) {
                return false;
            }
            let bits = c.state.take_attention();
            bits.has_attention() || (bits.has_cancel_attention() && !polled_before)
        });
        if through_kernel {
            match self.with_kernel(|k, now| k.before_poll(id, region, now, polled_before)) {
                PollDecision::Drop(_) => return Step::Drop,
                PollDecision::Poll { fast_next } => {
                    if !fast_next && let Some(a) = attention {
                        a.request_attention();
                    }
                }
            }
        }
        let mut cx = Context::from_waker(waker);
        // Rules BO1 and CX1 (`context`): this thread is inside task `id`.
        let entered = super::context::enter_task(self.key(), id, home, cell);
        let polled = poll_catching(future, &mut cx);
        drop(entered);
        match polled {
            Ok(Poll::Pending) => {
                self.trace(crate::trace::TraceKind::Pending { task: id });
                Step::Pending
            }
            Ok(Poll::Ready(v)) => Step::Ready(v),
            Err(payload) => Step::Panicked(payload),
        }
    }
}

impl Core {
    /// This core's identity in the thread's task context (`context`): its
    /// address, compared and never dereferenced.
    pub(crate) fn key(self: &Arc<Self>) -> CoreKey {
        CoreKey::from_addr(Arc::as_ptr(self).cast())
    }

    /// Whether `queue` is this core's scheduler (identity only; used by
    /// `block_in_place` to check that a `Cx` belongs to the worker's runtime).
    pub(crate) fn is_scheduled_by(&self, queue: *const ()) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.scheduler), queue)
    }
}
