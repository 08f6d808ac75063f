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
use crate::kernel::Finalizer;
use crate::types::{PanicPayload, RegionId};

pub(crate) struct FinalizerRun {
    core: Arc<Core>,
    region: RegionId,
    current: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl FinalizerRun {
    pub(crate) fn new(core: Arc<Core>, region: RegionId) -> Self {
        Self {
            core,
            region,
            current: None,
        }
    }

    fn report_panic(&self, payload: Box<dyn std::any::Any + Send>) {
        let payload = PanicPayload::from_panic(payload);
        let region = self.region;
        self.core
            .with_kernel_recent(|k, _| k.finalizer_panicked(region, payload));
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
            let region = this.region;
            match this.core.with_kernel_recent(|k, _| k.pop_finalizer(region)) {
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
