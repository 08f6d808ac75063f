//! `Cx::masked_async`: cancellation masked across an `.await`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::base::Cx;

impl Cx {
    /// Runs `future` with cancellation masked, across every `.await` inside
    /// it: the async form of [`masked`](Self::masked).
    ///
    /// While the returned future is polled, checkpoints and cancel-aware
    /// waits of this task inside it behave as if no cancellation were
    /// requested: `checkpoint()` returns `Ok`, a `sleep` sleeps to its
    /// deadline, a `recv` keeps waiting. A request that arrives meanwhile
    /// stays pending and is observed by the first checkpoint or
    /// cancel-aware wait after the future completes. Use it for a short
    /// cleanup or commit step that must not be interrupted half-way.
    ///
    /// The mask covers exactly the polls of `future` (each poll enters and
    /// leaves it, two kernel-lock round trips), so it ends when the future
    /// completes or is dropped, and code polled beside it (another branch of
    /// a `select`) is not masked. Masks nest up to
    /// [`crate::kernel::MAX_MASK_DEPTH`] levels, with [`masked`] too.
    ///
    /// [`masked`]: Self::masked
    ///
    /// # Cancellation
    /// Masked: the future itself never observes this task's cancellation
    /// (the point of it). The request is not lost: it is observed after the
    /// future completes. A mask defers observation only, not the grace
    /// period: a task whose cancellation was requested is still force-dropped
    /// when its cleanup grace period expires (rule K4), masked or not, so
    /// keep masked sections short.
    ///
    /// # Panics
    /// If nesting exceeds the bound (a bug in the caller).
    pub fn masked_async<F: Future>(&self, future: F) -> MaskedAsync<F> {
        MaskedAsync {
            cx: self.clone(),
            future,
        }
    }
}

pin_project! {
    /// The future returned by [`Cx::masked_async`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct MaskedAsync<F> {
        cx: Cx,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for MaskedAsync<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let future = this.future;
        // `masked` leaves the mask on unwind too.
        this.cx.masked(|| future.poll(task_cx))
    }
}

impl<F> fmt::Debug for MaskedAsync<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskedAsync")
            .field("task", &self.cx.task_id())
            .finish_non_exhaustive()
    }
}
