//! The finalizer task: runs a closing region's finalizers LIFO, masked,
//! each exactly once, catching panics (in a finalizer's body and in its
//! destructor) so one failing finalizer cannot skip the others; a panic
//! makes the region's outcome `Panicked`. While a finalizer runs, rule CX1
//! (`context`) is off: it may wait on the `Cx` it captured, typically the
//! region owner's.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::context;
use super::core::Core;
use super::runnable::poll_catching;
use crate::kernel::{Finalizer, LightTasks};
use crate::types::{PanicPayload, RegionId};

pub(crate) struct FinalizerRun {
    core: Arc<Core>,
    region: RegionId,
    current: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The region's set, whose finalizer list (rule RF1 in
    /// `kernel::light`) the task takes without the kernel lock once it has
    /// it (untraced runtimes: the lab's kernel records each pop).
    set: Option<Arc<LightTasks>>,
    /// RF3: finalizers taken from the set's list, run from the end.
    batch: Vec<Finalizer>,
}

impl FinalizerRun {
    pub(crate) fn new(core: Arc<Core>, region: RegionId) -> Self {
        Self {
            core,
            region,
            current: None,
            set: None,
            batch: Vec::new(),
        }
    }

    /// K6: the next finalizer, LIFO: from the region's set directly, or
    /// through the kernel (the first time, and always when it traces).
    fn pop(&mut self) -> Option<Finalizer> {
        if let Some(set) = &self.set {
            // RF3: newer ones (the hint) before the rest of the batch.
            if self.batch.is_empty() || set.finalizers_added() {
                set.take_finalizers(&mut self.batch);
            }
            return self.batch.pop();
        }
        let (region, traced) = (self.region, self.core.is_tracing());
        let (fin, set) = self.core.with_kernel_recent(|k, _| {
            let set = if traced { None } else { k.region_set(region) };
            (k.pop_finalizer(region), set)
        });
        self.set = set;
        fin
    }

    fn report_panic(&self, payload: Box<dyn std::any::Any + Send>) {
        let payload = PanicPayload::from_panic(payload);
        let region = self.region;
        self.core
            .with_kernel_recent(|k, _| k.finalizer_panicked(region, payload));
    }
}

impl Drop for FinalizerRun {
    /// RF3: a batch taken but not run goes back to the region's list
    /// (dropped outside the set's lock if the list is sealed).
    fn drop(&mut self) {
        if let Some(set) = &self.set
            && !self.batch.is_empty()
        {
            set.return_finalizers(std::mem::take(&mut self.batch));
        }
    }
}

impl Future for FinalizerRun {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if let Some(fut) = this.current.as_mut() {
                // CX1: a finalizer may wait on the `Cx` it captured.
                let finalizer = context::enter_finalizer();
                let polled = poll_catching(fut.as_mut(), cx);
                drop(finalizer);
                let ended = match polled {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(())) => None,
                    Err(payload) => Some(payload),
                };
                // The finalizer's destructor is user code too (contract 3).
                let current = this.current.take();
                let dropped = catch_unwind(AssertUnwindSafe(move || drop(current)));
                if let Some(payload) = ended.or(dropped.err()) {
                    this.report_panic(payload);
                }
            }
            match this.pop() {
                None => return Poll::Ready(()),
                Some(Finalizer::Sync(f)) => {
                    let finalizer = context::enter_finalizer();
                    let ran = catch_unwind(AssertUnwindSafe(f));
                    drop(finalizer);
                    if let Err(payload) = ran {
                        this.report_panic(payload);
                    }
                }
                Some(Finalizer::Async(fut)) => this.current = Some(fut),
            }
        }
    }
}
