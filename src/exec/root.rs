//! The root task of a `block_on`: polled by the driver on its own thread
//! (so the root future need not be `Send`), owner of a fresh root region.
//! Shared by the production drivers and the lab.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Wake, Waker};

use crossbeam_utils::sync::Unparker;

use super::context::CellWords;
use super::core::{Core, Step};
use super::cx::{Capabilities, Cx};
use super::join::JoinError;
use super::state::CellState;
use crate::kernel::{Attention, RegionReport, TaskEnd, TaskKind, TaskOutcome};
use crate::trace::TraceKind;
use crate::types::intrusive::Links;
use crate::types::{Budget, CancelReason, PanicPayload, RegionId, TaskId};

/// How a root's wake reaches a thread that may be parked waiting for it.
#[derive(Clone)]
pub(crate) enum Unpark {
    /// A parker that any thread driving the runtime may wait on (the
    /// current-thread runtime's driver parker, or a `block_on` call's own
    /// parker while it competes for the driver).
    Parker(Unparker),
    /// The `block_on` thread itself, waiting in `std::thread::park`
    /// (PK1): an unpark is one atomic swap, plus a futex wake only if the
    /// thread sleeps, and never takes a lock. A condvar parker takes its
    /// mutex on both sides, so a worker completing a joined task could
    /// wait behind the joining thread's own park.
    Thread(std::thread::Thread),
}

impl Unpark {
    fn unpark(&self) {
        match self {
            Self::Parker(u) => u.unpark(),
            Self::Thread(t) => t.unpark(),
        }
    }
}

/// Wakes the root task: a flag plus, in production, an unpark of the
/// `block_on` thread: the thread itself on the multi-thread runtime (PK1);
/// its own parker and the driver's on the current-thread runtime,
/// whichever it is parked on.
pub(crate) struct RootWake {
    woken: AtomicBool,
    unparkers: Vec<Unpark>,
    /// Rule A1 for the root body: the kernel's attention bits (and the
    /// cancel hint), as in a task cell's state word; its lifecycle and join
    /// bits are unused. A poll of the body goes through the kernel only
    /// when a bit says so, so a `block_on` that is woken often takes no
    /// kernel lock (nor a clock reading) per poll.
    attention: CellState,
    /// Required of every `Attention`; the root is never a light task.
    links: Links<dyn Attention>,
    /// Set when the core traces (the lab): wakes of the root are recorded
    /// like any task's.
    tracer: Option<(Weak<Core>, OnceLock<TaskId>)>,
}

impl RootWake {
    /// A flag-and-unpark waker not tied to a root task (shutdown uses it).
    pub(crate) fn new(unparkers: Vec<Unpark>) -> Self {
        Self {
            woken: AtomicBool::new(false),
            unparkers,
            attention: CellState::new(),
            links: Links::new(),
            tracer: None,
        }
    }

    /// Consumes a pending wake.
    pub(crate) fn take_woken(&self) -> bool {
        self.woken.swap(false, Ordering::AcqRel)
    }
}

impl Wake for RootWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        for u in &self.unparkers {
            u.unpark();
        }
        if let Some((core, task)) = &self.tracer
            && let (Some(core), Some(&task)) = (core.upgrade(), task.get())
        {
            core.trace(TraceKind::Wake { task });
        }
    }
}

/// The root body's attention flag (rule A1): the kernel raises it when a
/// poll of the body must go through `before_poll`.
impl Attention for RootWake {
    fn request_attention(&self) {
        self.attention.request_attention();
    }

    fn cancel_requested(&self, severity: u8) {
        let _ = self.attention.cancel_requested(severity);
    }

    fn to_waker(self: Arc<Self>) -> Waker {
        Waker::from(self)
    }

    fn light_id(&self) -> TaskId {
        self.tracer
            .as_ref()
            .and_then(|(_, id)| id.get().copied())
            .unwrap_or_else(|| TaskId::from_parts(u32::MAX, u32::MAX))
    }

    fn light_links(&self) -> &Links<dyn Attention> {
        &self.links
    }
}

/// The root body's home and region (rule OB9).
struct RootHome {
    home: Arc<crate::kernel::StandaloneHome>,
    region: RegionId,
}

impl crate::kernel::HomeSource for RootHome {
    fn host(&self) -> &dyn crate::kernel::HomeHost {
        &*self.home
    }

    fn downgrade(&self) -> Weak<dyn crate::kernel::HomeHost> {
        Arc::downgrade(&self.home) as Weak<dyn crate::kernel::HomeHost>
    }

    fn region(&self) -> RegionId {
        self.region
    }
}

pub(crate) struct RootTask<Fut: Future> {
    core: Arc<Core>,
    pub(crate) task: TaskId,
    pub(crate) region: RegionId,
    wake: Arc<RootWake>,
    waker: Waker,
    future: Pin<Box<Option<Fut>>>,
    output: Option<Result<Fut::Output, JoinError>>,
    raw_panic: Option<Box<dyn std::any::Any + Send>>,
    report: Option<RegionReport>,
    /// The root body's obligation home (rule OB4: swept by the kernel when
    /// the body completes; OB9: installed around each poll).
    home: RootHome,
    /// The body has been polled (SW3's STARTED, for rule A1).
    polled: bool,
}

impl<Fut: Future> RootTask<Fut> {
    /// Creates the root region and task and builds the root future.
    pub(crate) fn new<F>(core: &Arc<Core>, budget: Budget, unparkers: Vec<Unpark>, f: F) -> Self
    where
        F: FnOnce(Cx) -> Fut,
    {
        let wake = Arc::new(RootWake {
            woken: AtomicBool::new(true),
            unparkers,
            // The first poll goes through the kernel (ATTENTION is set),
            // which says whether later ones may skip it.
            attention: CellState::new(),
            links: Links::new(),
            tracer: core
                .is_tracing()
                .then(|| (Arc::downgrade(core), OnceLock::new())),
        });
        let waker = Waker::from(wake.clone());
        let home = Arc::new(crate::kernel::StandaloneHome::new(
            core.obligation_counters().clone(),
        ));
        let (region, task, light) = core.with_kernel(|k, now| {
            let region = k.create_root_region(budget);
            let attention = wake.clone() as Arc<dyn Attention>;
            let task = k
                .create_task_with(
                    region,
                    TaskKind::RootBody,
                    waker.clone(),
                    Some(attention),
                    Budget::INFINITE,
                    now,
                )
                .expect("a fresh root region accepts its body task");
            k.set_region_owner(region, task);
            k.set_obligation_home(task, home.clone());
            (region, task, k.light_tasks(region))
        });
        if let Some((_, id)) = &wake.tracer {
            let _ = id.set(task);
        }
        let cx_home = crate::exec::cx::SharedHome::arc(core.clone(), light, budget.deadline);
        let cx = Cx::new(cx_home, task, region, Capabilities::ALL);
        let future = Box::pin(Some(f(cx)));
        Self {
            core: core.clone(),
            task,
            region,
            wake,
            waker,
            future,
            output: None,
            raw_panic: None,
            report: None,
            home: RootHome { home, region },
            polled: false,
        }
    }

    /// Whether a wake is pending (consumes nothing).
    pub(crate) fn is_woken(&self) -> bool {
        self.wake.woken.load(Ordering::Acquire)
    }

    /// Whether the root region is closed (the `block_on` is over).
    pub(crate) fn is_done(&self) -> bool {
        self.report.is_some()
    }

    /// Handles a pending wake: polls the body, or once the body is done,
    /// checks whether the root region closed. Returns whether it did
    /// anything.
    pub(crate) fn step(&mut self) -> bool {
        if !self.wake.woken.swap(false, Ordering::AcqRel) {
            return false;
        }
        if self.output.is_none() {
            self.poll_body();
        }
        if self.output.is_some() && self.report.is_none() {
            let (region, waker) = (self.region, &self.waker);
            self.report = self
                .core
                .with_kernel_recent(|k, _| k.poll_region_closed(region, waker));
        }
        true
    }

    fn poll_body(&mut self) {
        let Some(inner) = self.future.as_mut().as_pin_mut() else {
            return;
        };
        // A1: the attention bits as of now stand for a run edge's (SW4):
        // a bit set later stays for the next poll.
        let attention = &self.wake.attention;
        let cell = CellWords {
            state: attention,
            cancel: None,
            seen: attention.load_acquire(),
            light_cell: None,
        };
        let polled_before = std::mem::replace(&mut self.polled, true);
        // OB9: the body's own `Cx` finds its home in the context.
        let step = self.core.poll_task(
            self.task,
            self.region,
            inner,
            &self.waker,
            Some(cell),
            polled_before,
            Some(&self.home),
        );
        let (mut end, value) = match step {
            Step::Pending => return,
            Step::Ready(v) => (TaskEnd::Returned, Some(v)),
            Step::Panicked(p) => {
                let payload = PanicPayload::from_panic_ref(&*p);
                self.raw_panic = Some(p);
                (TaskEnd::Panicked(payload), None)
            }
            Step::Drop => (TaskEnd::Dropped, None),
        };
        // Contract 3: the root future's destructor is user code; a panic
        // in it is the root task's panic (resumed by `block_on` after the
        // region drained), not an unwind out of the driver.
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| self.future.set(None)))
            && self.raw_panic.is_none()
        {
            end = TaskEnd::Panicked(PanicPayload::from_panic_ref(&*p));
            self.raw_panic = Some(p);
        }
        let task = self.task;
        let (outcome, _) = self
            .core
            .with_kernel(|k, now| k.complete_task(task, end, true, now));
        let (output, discarded) = match (outcome, value) {
            (TaskOutcome::Ok, Some(v)) => (Ok(v), None),
            (TaskOutcome::Ok, None) => (Err(JoinError::Cancelled(CancelReason::default())), None),
            (TaskOutcome::Panicked(p), v) => (Err(JoinError::Panicked(p)), v),
            (TaskOutcome::Cancelled(r), v) => {
                (Err(JoinError::Cancelled(Arc::unwrap_or_clone(r))), v)
            }
        };
        self.output = Some(output);
        // A value `block_on` will not return (it panics instead): its
        // destructor's panic is reported by the hook and otherwise dropped,
        // since `block_on` already fails with the root's own error.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(discarded)));
        // Check the region on the next step even if nothing else wakes us.
        self.wake.woken.store(true, Ordering::Release);
    }

    /// The body's output; resumes the body's panic, or an unjoined child's
    /// panic that failed the root region, on the caller's thread.
    ///
    /// A panic of the body itself is resumed with its original payload (the
    /// panic hook reported it when it happened). A failure that never went
    /// through the hook on its own — an obligation leak, a panic escalated
    /// from a child, a finalizer or a dropped output — is raised as a new
    /// panic with the same message, so that the hook prints it: a `main`
    /// ending this way must not exit silently.
    #[track_caller]
    pub(crate) fn into_output(mut self) -> Fut::Output {
        let report = self
            .report
            .take()
            .expect("root region closed before the output is taken");
        match self
            .output
            .take()
            .expect("the root task finished before its region closed")
        {
            Ok(v) => {
                if let Some(p) = report.panic {
                    drop(v);
                    std::panic::panic_any(p.message().to_string());
                }
                v
            }
            Err(JoinError::Panicked(p)) => match self.raw_panic.take() {
                Some(raw) => resume_unwind(raw),
                None => std::panic::panic_any(p.message().to_string()),
            },
            Err(JoinError::Cancelled(r)) => panic!("the root task of block_on was cancelled: {r}"),
        }
    }
}

impl<Fut: Future> Drop for RootTask<Fut> {
    /// A root future still alive here (a `block_on` that unwinds, e.g. a
    /// lab deadlock) is dropped without letting a panic in its destructor
    /// turn the unwind into an abort.
    fn drop(&mut self) {
        let future = &mut self.future;
        let _ = catch_unwind(AssertUnwindSafe(|| future.set(None)));
    }
}
