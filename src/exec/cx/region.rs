//! The future behind `Cx::region`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use std::sync::Arc;

use super::base::Cx;
use crate::exec::context;
use crate::exec::core::Core;
use crate::exec::runnable::poll_catching;
use crate::kernel::{BodyEnd, LightClose, LightTasks, RegionReport, SpawnError};
use crate::types::{Budget, Outcome, PanicPayload, RegionId, TaskId};

impl Cx {
    /// Opens a child region, runs `body` in it, and closes it.
    ///
    /// The returned future resolves only after the region is closed: every
    /// task spawned in it has completed and its finalizers ran. If the body
    /// returns `Err` or panics, the remaining children are cancelled with
    /// `FailFast` and drained first. A child panic that nobody joins fails
    /// the region (`Outcome::Panicked`).
    ///
    /// # Cancellation
    /// If the task is already cancelled (unmasked) or the enclosing region
    /// is cancelled, the body does not run and the outcome is `Cancelled`.
    /// If cancellation arrives while the body runs, the body observes it at
    /// its checkpoints and the children are cancelled with `ParentCancelled`;
    /// a body that then returns `Err` yields `Outcome::Cancelled(reason)`.
    /// Dropping the future before it resolves cancels the region
    /// (`FailFast`, "region future dropped") and lets the runtime close it;
    /// the enclosing region still waits for it, so no task is orphaned.
    pub fn region<F, Fut, T, E>(&self, body: F) -> RegionFuture<F, Fut, T, E>
    where
        F: FnOnce(Cx) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        RegionFuture::new(self.clone(), Budget::INFINITE, body)
    }

    /// Like [`region`](Self::region), with a budget that bounds everything
    /// in the region, its body included.
    ///
    /// The budget is met with the enclosing region's (it only tightens).
    /// Every task spawned in the region gets it (met with what
    /// [`spawn_with_budget`](Self::spawn_with_budget) asks for), and the
    /// body, which runs inline in the calling task, is bounded by it too:
    /// - **Deadline**: when it passes, the region is cancelled with a
    ///   `Deadline` reason: its tasks and child regions are cancelled, and
    ///   the body's checkpoints and cancel-aware waits fail from then on
    ///   (a body that runs past the deadline without yielding sees it at
    ///   its next checkpoint).
    /// - **Poll quota**: the body's polls are counted like a task's; the
    ///   poll that finds the quota spent cancels the region with
    ///   `PollQuota` (so with a quota of `n`, the body's `n + 1`-th poll
    ///   sees the cancellation). Each task of the region has its own quota.
    /// - Cost quota and priority apply to the region's tasks only.
    ///
    /// The calling task itself is not cancelled: once the region future
    /// resolves, the caller goes on under its own budget.
    ///
    /// # Cancellation
    /// As for [`region`](Self::region). Running out of the budget is a
    /// region cancellation: if the body then returns `Err`, the outcome is
    /// `Outcome::Cancelled(reason)` with the `Deadline` or `PollQuota`
    /// reason (or a stronger one that arrived meanwhile); a body that
    /// returns `Ok` anyway gives `Outcome::Ok`, after the region's
    /// cancelled children have drained.
    pub fn region_with_budget<F, Fut, T, E>(
        &self,
        budget: Budget,
        body: F,
    ) -> RegionFuture<F, Fut, T, E>
    where
        F: FnOnce(Cx) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        RegionFuture::new(self.clone(), budget, body)
    }
}

pin_project! {
    /// Runs a region body and resolves once the region is closed.
    /// See [`Cx::region`].
    #[must_use = "a region does nothing unless awaited"]
    pub struct RegionFuture<F, Fut, T, E> {
        cx: Cx,
        budget: Budget,
        body_fn: Option<F>,
        #[pin]
        body: Option<Fut>,
        region: Option<RegionId>,
        // LR1: the region's set, if it was opened light (the kernel may
        // have registered it since: `ensure_region` finds out).
        light: Option<Arc<LightTasks>>,
        // LR4: the body returned `Ok` in a light region the kernel has not
        // been told about: its close is tried light on each poll.
        light_ok: bool,
        result: Option<Outcome<T, E>>,
        // K9: polls of the body the region's poll quota still allows
        // (`u32::MAX`: not counted here; see `RegionFuture::poll`).
        body_polls_left: u32,
    }

    impl<F, Fut, T, E> PinnedDrop for RegionFuture<F, Fut, T, E> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            // Drop the body first: its destructors may still talk to the region.
            this.body.set(None);
            if let Some(region) = this.region.take() {
                let light = this.light.take();
                this.cx.core().with_kernel(|k, now| {
                    k.ensure_region_of(light.as_deref()); // LR1
                    k.abandon_region(region, now)
                });
            }
        }
    }
}

impl<F, Fut, T, E> RegionFuture<F, Fut, T, E>
where
    F: FnOnce(Cx) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    pub(crate) fn new(cx: Cx, budget: Budget, body: F) -> Self {
        Self {
            cx,
            budget,
            body_fn: Some(body),
            body: None,
            region: None,
            light: None,
            light_ok: false,
            result: None,
            body_polls_left: u32::MAX,
        }
    }
}

fn outcome_with_report<T, E>(body: Outcome<T, E>, report: RegionReport) -> Outcome<T, E> {
    let body = match (body, report.cancelled_during_body) {
        (Outcome::Err(_), Some(reason)) => Outcome::Cancelled(reason),
        (other, _) => other,
    };
    match report.panic {
        Some(p) => body.join(Outcome::Panicked(p)),
        None => body,
    }
}

impl<F, Fut, T, E> Future for RegionFuture<F, Fut, T, E>
where
    F: FnOnce(Cx) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    type Output = Outcome<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(body_fn) = this.body_fn.take() {
            if let Some(reason) = this.cx.observe_cancel() {
                return Poll::Ready(Outcome::Cancelled(reason));
            }
            let (parent, owner, budget) = (this.cx.region_id(), this.cx.task_id(), *this.budget);
            let core = this.cx.core();
            let opened_light = (budget == Budget::INFINITE)
                .then(|| this.cx.light())
                .flatten()
                .and_then(|set| open_light(core, set, parent, owner));
            let is_light = opened_light.is_some();
            let created = match opened_light {
                Some(set) => Ok((set.region(), Budget::INFINITE, Some(set))),
                None => open_through_kernel(core, this.cx.light(), parent, owner, budget),
            };
            let (region, region_budget, light) = match created {
                Ok(r) => r,
                Err(SpawnError::RegionCancelled(_, reason)) => {
                    return Poll::Ready(Outcome::Cancelled(reason));
                }
                Err(e) => return Poll::Ready(Outcome::Panicked(PanicPayload::new(e.to_string()))),
            };
            if is_light {
                *this.light = light.clone();
            }
            *this.region = Some(region);
            // K9: a poll quota asked for here counts the body's polls (an
            // inherited one is counted by whoever asked for it: the
            // enclosing body or task, whose polls include these).
            if budget.poll_quota != u32::MAX {
                *this.body_polls_left = region_budget.poll_quota;
            }
            let child = this.cx.with_region(region, region_budget.deadline, light);
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body_fn(child))) {
                Ok(body) => this.body.set(Some(body)),
                Err(payload) => {
                    let p = PanicPayload::from_panic(payload);
                    *this.result = Some(Outcome::Panicked(p.clone()));
                    let light = this.light.take();
                    this.cx.core().with_kernel(|k, now| {
                        k.ensure_region_of(light.as_deref()); // LR1
                        k.region_body_done(region, BodyEnd::Panicked(p), now)
                    });
                }
            }
        }
        let region = this.region.expect("region future polled after completion");
        if let Some(body) = this.body.as_mut().as_pin_mut() {
            // K9: like a task's quota, the allowance counts down one per
            // poll; the poll that finds it spent cancels the region first,
            // so that poll's checkpoints already fail. Counted once.
            match *this.body_polls_left {
                u32::MAX => {}
                0 => {
                    *this.body_polls_left = u32::MAX;
                    this.cx
                        .core()
                        .with_kernel(|k, now| k.region_polls_exhausted(region, now));
                }
                left => *this.body_polls_left = left - 1,
            }
            let (outcome, end) = match poll_catching(body, cx) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(Ok(v))) => (Outcome::Ok(v), BodyEnd::Ok),
                Ok(Poll::Ready(Err(e))) => (Outcome::Err(e), BodyEnd::Err),
                Err(payload) => {
                    let p = PanicPayload::from_panic(payload);
                    (Outcome::Panicked(p.clone()), BodyEnd::Panicked(p))
                }
            };
            this.body.set(None);
            *this.result = Some(outcome);
            if matches!(end, BodyEnd::Ok) && this.light.is_some() {
                // LR4: the close is tried without the kernel (below).
                *this.light_ok = true;
            } else {
                let light = this.light.take();
                this.cx.core().with_kernel(|k, now| {
                    k.ensure_region_of(light.as_deref()); // LR1
                    k.region_body_done(region, end, now)
                });
            }
        }
        if *this.light_ok {
            let set = this.light.as_ref().expect("a light region's set");
            match set.close_light(cx.waker()) {
                LightClose::Closed { advance } => {
                    *this.light = None;
                    *this.region = None;
                    *this.light_ok = false;
                    if advance {
                        // LT3: the parent's close was waiting for this one.
                        let parent = this.cx.region_id();
                        let core = this.cx.core();
                        core.with_kernel_recent(|k, now| k.light_tasks_drained(parent, now));
                    }
                    let body = this.result.take().expect("body finished before close");
                    return Poll::Ready(outcome_with_report(body, RegionReport::default()));
                }
                LightClose::Wait => return Poll::Pending,
                LightClose::Kernel => {
                    // Registered, or finalizers to run: the kernel closes it.
                    *this.light_ok = false;
                    let light = this.light.take();
                    this.cx.core().with_kernel(|k, now| {
                        k.ensure_region_of(light.as_deref()); // LR1
                        k.region_body_done(region, BodyEnd::Ok, now)
                    });
                }
            }
        }
        let waker = cx.waker();
        match this
            .cx
            .core()
            .with_kernel_recent(|k, _| k.poll_region_closed(region, waker))
        {
            None => Poll::Pending,
            Some(report) => {
                *this.region = None;
                let body = this.result.take().expect("body finished before close");
                Poll::Ready(outcome_with_report(body, report))
            }
        }
    }
}

/// LR2, LR5: opens a light child region of `set` (region `parent`) whose
/// body runs in `owner`. A light owner with no cancel requested stays
/// light (SW15: it marks itself an owner first); any other owner the
/// kernel has no record of is registered first. `None` if `set`'s gate is
/// shut (the caller opens it through the kernel, which says why it
/// cannot).
fn open_light(
    core: &Arc<Core>,
    set: &Arc<LightTasks>,
    parent: RegionId,
    owner: TaskId,
) -> Option<Arc<LightTasks>> {
    if context::polled_task_registered(core.key(), owner) != Some(true) {
        context::with_polled_light_cell(core.key(), owner, |cell| {
            if cell.is_some_and(|cell| cell.mark_owner()) {
                return; // LR5: stays light
            }
            core.with_kernel_recent(|k, _| {
                k.registered_hinted(owner, parent, cell); // LT1: O(1) in its poll
            })
        });
    }
    set.open_region(&core.counters, owner)
}

/// Opens a child region of `parent` through the kernel (a budget of its
/// own, a parent that takes no light spawns, or a shut gate).
fn open_through_kernel(
    core: &Arc<Core>,
    parent_set: Option<&Arc<LightTasks>>,
    parent: RegionId,
    owner: TaskId,
    budget: Budget,
) -> Result<(RegionId, Budget, Option<Arc<LightTasks>>), SpawnError> {
    context::with_polled_light_cell(core.key(), owner, |cell| {
        core.with_kernel_recent(|k, _| {
            k.ensure_region_of(parent_set.map(|s| &**s)); // LR1: a light parent
            // LT1: a light owner is registered, in O(1) in its poll.
            k.registered_hinted(owner, parent, cell);
            let r = k.create_child_region(parent, owner, budget)?;
            Ok((r, k.region_budget(r), k.light_tasks(r)))
        })
    })
}
