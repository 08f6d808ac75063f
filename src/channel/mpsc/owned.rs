//! Owned send permits: [`Sender::reserve_owned`] consumes a sender and
//! gives a `'static` [`OwnedSendPermit`] that can move into another task
//! (rule 9 of the module docs).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{Chan, PERMIT_KIND, ReserveError, SendError, Sender, region_closed};
use crate::exec::cx::Cx;
use crate::obligation::Obligation;
use crate::sync::waiters::WaiterKey;

impl<T> Sender<T> {
    /// Waits for a free slot and reserves it, consuming this sender: the
    /// [`OwnedSendPermit`] is `'static` and may move into another task
    /// (rule 9). [`OwnedSendPermit::send`] gives the sender back, and
    /// [`OwnedSendPermit::release`] gives it back without sending.
    ///
    /// The permit's obligation (kind `"send_permit"`) follows its holder:
    /// it is held by the region of `cx` rather than by the reserving task,
    /// which may finish first. The permit must be used or dropped before
    /// that region closes; one that is forgotten is reported as an
    /// obligation leak when it closes. Waiting reservers are served in FIFO
    /// order with every other waiting sender (rule 3).
    ///
    /// Errors: the sender comes back inside [`ReserveOwnedError`], with
    /// `Disconnected` if the receiver is gone or closed, `Cancelled` as
    /// below (or if `cx`'s region is already closed and can record no
    /// obligation).
    ///
    /// ```
    /// use asupersync::RuntimeBuilder;
    /// use asupersync::channel::mpsc;
    ///
    /// let rt = RuntimeBuilder::current_thread().build().unwrap();
    /// rt.block_on(|cx| async move {
    ///     let (tx, mut rx) = mpsc::channel::<&str>(1);
    ///     let permit = tx.reserve_owned(&cx).await.unwrap();
    ///     // The slot is held; the value is produced in another task.
    ///     let worker = cx
    ///         .spawn(move |_cx| async move {
    ///             let tx = permit.send("done").unwrap();
    ///             drop(tx);
    ///         })
    ///         .unwrap();
    ///     assert_eq!(rx.recv(&cx).await.unwrap(), "done");
    ///     worker.join(&cx).await.unwrap();
    /// });
    /// ```
    ///
    /// # Cancellation
    /// As for [`reserve`](Sender::reserve): cancel-aware, and a cancelled
    /// reservation holds nothing (its place in the queue and any slot
    /// granted to it pass on). The error gives the sender back. Dropping the
    /// future drops the sender with it (and holds nothing either).
    pub fn reserve_owned(self, cx: &Cx) -> ReserveOwned<T> {
        ReserveOwned {
            sender: Some(self),
            cx: cx.clone(),
            key: None,
        }
    }
}

/// The future returned by [`Sender::reserve_owned`].
///
/// # Cancellation
/// See [`Sender::reserve_owned`]: dropping it leaves the queue, passes on a
/// slot granted to it and drops the sender.
#[must_use = "futures do nothing unless awaited"]
pub struct ReserveOwned<T> {
    /// `None` once the permit (or the error) took it.
    sender: Option<Sender<T>>,
    cx: Cx,
    key: Option<WaiterKey>,
}

// Nothing is pinned: the sender is moved out when the future completes.
impl<T> Unpin for ReserveOwned<T> {}

impl<T> Future for ReserveOwned<T> {
    type Output = Result<OwnedSendPermit<T>, ReserveOwnedError<T>>;

    fn poll(self: Pin<&mut Self>, task_cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let chan: &Chan<T> = &this
            .sender
            .as_ref()
            .expect("a reserve_owned future was polled after it completed")
            .chan;
        let reserved = match chan.poll_slot(&this.cx, &mut this.key, task_cx.waker()) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => Err(e),
            Poll::Ready(Ok(())) => match this.cx.reserve_owned_obligation(PERMIT_KIND) {
                Ok(obligation) => Ok(obligation),
                Err(e) => {
                    chan.release_slot();
                    Err(ReserveError::Cancelled(region_closed(e)))
                }
            },
        };
        let sender = this.sender.take().expect("checked above");
        Poll::Ready(match reserved {
            Ok(obligation) => Ok(OwnedSendPermit {
                sender: Some(sender),
                obligation: Some(obligation),
            }),
            Err(error) => Err(ReserveOwnedError { sender, error }),
        })
    }
}

impl<T> Drop for ReserveOwned<T> {
    fn drop(&mut self) {
        if let (Some(k), Some(sender)) = (self.key.take(), &self.sender) {
            sender.chan.abandon_wait(k);
        }
    }
}

impl<T> fmt::Debug for ReserveOwned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReserveOwned")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}

/// A reserved slot that owns its [`Sender`]: `'static`, it can move into
/// another task (rule 9). Commit it with [`send`](Self::send), give it back
/// with [`release`](Self::release), or drop it (the slot is returned and
/// the sender dropped).
#[must_use = "dropping an OwnedSendPermit gives its slot back without sending"]
pub struct OwnedSendPermit<T> {
    /// `None` once the permit was used.
    sender: Option<Sender<T>>,
    /// `None` once the permit was used.
    obligation: Option<Obligation>,
}

impl<T> OwnedSendPermit<T> {
    /// Commits `value` into the reserved slot and gives the sender back.
    /// Never blocks.
    ///
    /// The obligation is committed when the value is queued. If the
    /// receiver is gone, the value comes back as
    /// `Err(SendError::Disconnected(value))`, the obligation is aborted and
    /// the sender is dropped (nothing could be sent with it any more). After
    /// a `close` (receiver still alive) the value is queued and will be
    /// received.
    pub fn send(mut self, value: T) -> Result<Sender<T>, SendError<T>> {
        let (sender, obligation) = self.take();
        match sender.chan.commit(value) {
            Ok(()) => {
                obligation.commit();
                Ok(sender)
            }
            Err(value) => {
                obligation.abort();
                Err(SendError::Disconnected(value))
            }
        }
    }

    /// Gives the slot back without sending (the obligation is aborted) and
    /// returns the sender.
    pub fn release(mut self) -> Sender<T> {
        let (sender, obligation) = self.take();
        sender.chan.release_slot();
        obligation.abort();
        sender
    }

    /// The obligation recorded for this permit.
    pub fn obligation(&self) -> &Obligation {
        self.obligation.as_ref().expect("a permit is used once")
    }

    fn take(&mut self) -> (Sender<T>, Obligation) {
        let used = "an owned permit is used once";
        (
            self.sender.take().expect(used),
            self.obligation.take().expect(used),
        )
    }
}

impl<T> Drop for OwnedSendPermit<T> {
    fn drop(&mut self) {
        if let (Some(sender), Some(obligation)) = (self.sender.take(), self.obligation.take()) {
            sender.chan.release_slot();
            obligation.abort();
            // The sender drops last: the slot is back before the channel
            // may disconnect.
        }
    }
}

impl<T> fmt::Debug for OwnedSendPermit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSendPermit")
            .field("obligation", &self.obligation)
            .finish_non_exhaustive()
    }
}

/// A [`Sender::reserve_owned`] that returned no permit: nothing is held,
/// and the sender comes back.
pub struct ReserveOwnedError<T> {
    sender: Sender<T>,
    error: ReserveError,
}

impl<T> ReserveOwnedError<T> {
    /// Why it failed.
    pub fn error(&self) -> &ReserveError {
        &self.error
    }

    /// Whether the receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        self.error.is_disconnected()
    }

    /// Whether the reservation observed the task's cancellation.
    pub fn is_cancelled(&self) -> bool {
        self.error.is_cancelled()
    }

    /// The sender that was consumed.
    pub fn into_sender(self) -> Sender<T> {
        self.sender
    }

    /// The sender and the reason.
    pub fn into_parts(self) -> (Sender<T>, ReserveError) {
        (self.sender, self.error)
    }
}

impl<T> From<ReserveOwnedError<T>> for ReserveError {
    fn from(e: ReserveOwnedError<T>) -> Self {
        e.error
    }
}

impl<T> fmt::Debug for ReserveOwnedError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReserveOwnedError")
            .field(&self.error)
            .finish()
    }
}

impl<T> fmt::Display for ReserveOwnedError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<T> std::error::Error for ReserveOwnedError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

// Compile-time auto-trait checks (with `T: Send`, as for the other handles).
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    const fn send<X: Send>() {}
    send_sync::<OwnedSendPermit<u8>>();
    send::<ReserveOwned<u8>>();
    send_sync::<ReserveOwnedError<u8>>();
};
