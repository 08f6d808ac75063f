//! The finalizer task: runs a closing region's finalizers LIFO, masked,
//! each exactly once, catching panics so one failing finalizer cannot skip
//! the others.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::core::Core;
use super::task_cell::poll_catching;
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
                match poll_catching(fut.as_mut(), cx) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(())) => this.current = None,
                    Err(payload) => {
                        this.current = None;
                        this.report_panic(payload);
                    }
                }
            }
            let region = this.region;
            match this.core.with_kernel_recent(|k, _| k.pop_finalizer(region)) {
                None => return Poll::Ready(()),
                Some(Finalizer::Sync(f)) => {
                    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
                        this.report_panic(payload);
                    }
                }
                Some(Finalizer::Async(fut)) => this.current = Some(fut),
            }
        }
    }
}
