//! The root task of a `block_on`: polled by the driver on its own thread
//! (so the root future need not be `Send`), owner of a fresh root region.
//! Shared by the production drivers and the lab.

use std::future::Future;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Wake, Waker};

use crossbeam_utils::sync::Unparker;

use super::core::{Core, Step};
use super::join::JoinError;
use crate::cx::{Capabilities, Cx};
use crate::kernel::{RegionReport, TaskEnd, TaskKind, TaskOutcome};
use crate::trace::TraceKind;
use crate::types::{Budget, CancelReason, PanicPayload, RegionId, TaskId};

/// Wakes the root task: a flag plus, in production, an unpark of the
/// `block_on` thread.
pub(crate) struct RootWake {
    woken: AtomicBool,
    unparker: Option<Unparker>,
    /// Set when the core traces (the lab): wakes of the root are recorded
    /// like any task's.
    tracer: Option<(Weak<Core>, OnceLock<TaskId>)>,
}

impl RootWake {
    /// A flag-and-unpark waker not tied to a root task (shutdown uses it).
    pub(crate) fn new(unparker: Option<Unparker>) -> Self {
        Self {
            woken: AtomicBool::new(false),
            unparker,
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
        if let Some(u) = &self.unparker {
            u.unpark();
        }
        if let Some((core, task)) = &self.tracer
            && let (Some(core), Some(&task)) = (core.upgrade(), task.get())
        {
            core.trace(TraceKind::Wake { task });
        }
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
}

impl<Fut: Future> RootTask<Fut> {
    /// Creates the root region and task and builds the root future.
    pub(crate) fn new<F>(core: &Arc<Core>, budget: Budget, unparker: Option<Unparker>, f: F) -> Self
    where
        F: FnOnce(Cx) -> Fut,
    {
        let wake = Arc::new(RootWake {
            woken: AtomicBool::new(true),
            unparker,
            tracer: core
                .is_tracing()
                .then(|| (Arc::downgrade(core), OnceLock::new())),
        });
        let waker = Waker::from(wake.clone());
        let (region, task) = core.with_kernel(|k, now| {
            let region = k.create_root_region(budget);
            let task = k
                .create_task(
                    region,
                    TaskKind::RootBody,
                    waker.clone(),
                    Budget::INFINITE,
                    now,
                )
                .expect("a fresh root region accepts its body task");
            k.set_region_owner(region, task);
            (region, task)
        });
        if let Some((_, id)) = &wake.tracer {
            let _ = id.set(task);
        }
        let cx =
            Cx::new(core.clone(), task, region, Capabilities::ALL).with_deadline(budget.deadline);
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
        let (end, value) = match self
            .core
            .poll_task(self.task, inner, &self.waker, None, false)
        {
            Step::Pending => return,
            Step::Ready(v) => (TaskEnd::Returned, Some(v)),
            Step::Panicked(p) => {
                let payload = PanicPayload::from_panic_ref(&*p);
                self.raw_panic = Some(p);
                (TaskEnd::Panicked(payload), None)
            }
            Step::Drop => (TaskEnd::Dropped, None),
        };
        self.future.set(None);
        let task = self.task;
        let (outcome, _) = self
            .core
            .with_kernel(|k, now| k.complete_task(task, end, true, now));
        self.output = Some(match (outcome, value) {
            (TaskOutcome::Ok, Some(v)) => Ok(v),
            (TaskOutcome::Panicked(p), _) => Err(JoinError::Panicked(p)),
            (TaskOutcome::Cancelled(r), _) => Err(JoinError::Cancelled(Arc::unwrap_or_clone(r))),
            (TaskOutcome::Ok, None) => Err(JoinError::Cancelled(CancelReason::default())),
        });
        // Check the region on the next step even if nothing else wakes us.
        self.wake.woken.store(true, Ordering::Release);
    }

    /// The body's output; resumes the body's panic, or an unjoined child's
    /// panic that failed the root region, on the caller's thread.
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
                    resume_unwind(Box::new(p.message().to_string()));
                }
                v
            }
            Err(JoinError::Panicked(p)) => match self.raw_panic.take() {
                Some(raw) => resume_unwind(raw),
                None => resume_unwind(Box::new(p.message().to_string())),
            },
            Err(JoinError::Cancelled(r)) => panic!("the root task of block_on was cancelled: {r}"),
        }
    }
}
