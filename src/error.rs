//! [`Error`]: one error type that every public error of the crate converts
//! into, so that `?` works in code that meets several of them.
//!
//! ```
//! use asupersync::channel::mpsc;
//! use asupersync::sync::Mutex;
//! use asupersync::{Cx, Error, ErrorKind, RuntimeBuilder};
//!
//! /// A worker loop meeting four error types; `?` turns each into `Error`.
//! async fn worker(cx: Cx, mut jobs: mpsc::Receiver<u32>, total: &Mutex<u64>) -> Result<(), Error> {
//!     loop {
//!         cx.checkpoint()?; // Cancelled
//!         let job = match jobs.recv(&cx).await {
//!             Ok(job) => job,
//!             Err(e) if e.is_disconnected() => return Ok(()),
//!             Err(e) => return Err(e.into()), // RecvError
//!         };
//!         let child = cx.spawn(move |_| async move { u64::from(job) * 2 })?; // SpawnError
//!         let doubled = child.join(&cx).await?; // JoinError
//!         *total.lock(&cx).await? += doubled; // LockError
//!     }
//! }
//!
//! let rt = RuntimeBuilder::current_thread().build().unwrap();
//! let total = rt.block_on(|cx| async move {
//!     let (tx, rx) = mpsc::channel(4);
//!     let total = Mutex::new(0);
//!     let work = worker(cx.clone(), rx, &total);
//!     let feed = async move {
//!         for job in 1..=3 {
//!             tx.send(&cx, job).await?; // SendError<u32>
//!         }
//!         Ok::<_, Error>(())
//!     };
//!     let (worked, fed) = futures_join(work, feed).await;
//!     worked.unwrap();
//!     fed.unwrap();
//!     total.into_inner()
//! });
//! assert_eq!(total, 12);
//!
//! // Errors keep their kind, their message and (for cancellations) the reason.
//! let e: Error = asupersync::types::cancel::Cancelled::new(
//!     asupersync::types::CancelReason::timeout(),
//! )
//! .into();
//! assert_eq!(e.kind(), ErrorKind::Cancelled);
//! assert!(e.cancel_reason().is_some());
//! # async fn futures_join<A: std::future::Future, B: std::future::Future>(a: A, b: B) -> (A::Output, B::Output) {
//! #     let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
//! #     let (mut ra, mut rb) = (None, None);
//! #     std::future::poll_fn(|cx| {
//! #         if ra.is_none() { if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) { ra = Some(v) } }
//! #         if rb.is_none() { if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) { rb = Some(v) } }
//! #         if ra.is_some() && rb.is_some() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
//! #     }).await;
//! #     (ra.unwrap(), rb.unwrap())
//! # }
//! ```
//!
//! Rules:
//! - E1: every public error type of the crate implements
//!   `std::error::Error + Send + Sync + 'static` (for the generic ones: when
//!   their parameter is `Send + Sync + 'static`) and converts into [`Error`]
//!   with `From`, keeping its message ([`Display`](fmt::Display) of the
//!   `Error` is the original's) and an [`ErrorKind`].
//! - E2: nothing is lost: an error that was handed a value (a send that did
//!   not deliver, a `OnceCell::set` refused) keeps it; take the original
//!   error back with [`Error::downcast`], value included. Errors without a
//!   value are also reachable by reference ([`Error::downcast_ref`]).
//! - E3: an error that reports a cancellation has kind
//!   [`ErrorKind::Cancelled`] and, when the original carried it, the
//!   [`CancelReason`] ([`Error::cancel_reason`]).

use std::any::Any;
use std::fmt;
use std::sync::Mutex;

use crate::channel::{broadcast, mpsc, watch};
use crate::exec::cx::DeferError;
use crate::kernel::SpawnError;
use crate::lab::ReplayMismatch;
use crate::obligation::TransferError;
use crate::runtime::{BuildError, JoinError};
use crate::sync::{
    AcquireError, InitError, LockError, PoolError, SetError, TryAcquireError, TryLockError,
};
use crate::time::Elapsed;
use crate::types::CancelReason;
use crate::types::cancel::Cancelled;
use crate::types::outcome::OutcomeError;

/// What kind of failure an [`Error`] reports.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The operation observed a cancellation (of the current task, or of
    /// the task that was joined).
    Cancelled,
    /// A joined task (or region) panicked.
    Panicked,
    /// The other side of a channel is gone, or the channel is closed.
    Disconnected,
    /// A `try_send` found no free slot.
    Full,
    /// A `try_recv` found nothing queued.
    Empty,
    /// A broadcast receiver fell behind and lost values.
    Lagged,
    /// A time limit passed.
    TimedOut,
    /// The primitive (semaphore, pool, region) no longer accepts requests.
    Closed,
    /// A `try_*` operation would have had to wait.
    WouldBlock,
    /// A lock holder panicked.
    Poisoned,
    /// A request that can never be met as made (more permits than exist).
    InvalidInput,
    /// A task could not be spawned.
    Spawn,
    /// A runtime could not be built.
    Build,
    /// Anything else: application errors carried through (a region body's
    /// `Err`, a failed pool factory or cell initializer), I/O errors,
    /// [`Error::other`].
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Panicked => "panicked",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::Full => "full",
            ErrorKind::Empty => "empty",
            ErrorKind::Lagged => "lagged",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::Closed => "closed",
            ErrorKind::WouldBlock => "would block",
            ErrorKind::Poisoned => "poisoned",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Spawn => "spawn failed",
            ErrorKind::Build => "runtime build failed",
            ErrorKind::Other => "other",
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The crate's one error type: every public error converts into it (rule
/// E1), so `?` works across channels, locks, joins and spawns.
///
/// It is one pointer wide. [`kind`](Self::kind) classifies it;
/// [`downcast`](Self::downcast) gives the original error back (value
/// included, E2); `Display` prints the original's message; `source` is the
/// original's source.
pub struct Error {
    repr: Box<Repr>,
}

struct Repr {
    kind: ErrorKind,
    cancel_reason: Option<CancelReason>,
    /// The original error, or for value-carrying errors a value-free copy of
    /// its message.
    inner: BoxError,
    /// Value-carrying errors (their values need not be `Sync`): the original
    /// error itself, reached only by value (`Mutex` makes it `Sync`).
    original: Option<Mutex<Box<dyn Any + Send>>>,
}

/// The message of a value-carrying error, kept where the error itself
/// cannot be (its value need not be `Sync`).
struct Undelivered(String);

impl fmt::Debug for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Undelivered {}

impl Error {
    /// An error of `kind` wrapping `error` (an application error, a message).
    pub fn new(kind: ErrorKind, error: impl Into<BoxError>) -> Self {
        Self::from_parts(kind, None, error.into(), None)
    }

    /// An error of kind [`ErrorKind::Other`] wrapping `error`.
    pub fn other(error: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Other, error)
    }

    fn from_parts(
        kind: ErrorKind,
        cancel_reason: Option<CancelReason>,
        inner: BoxError,
        original: Option<Box<dyn Any + Send>>,
    ) -> Self {
        Self {
            repr: Box::new(Repr {
                kind,
                cancel_reason,
                inner,
                original: original.map(Mutex::new),
            }),
        }
    }

    /// Wraps an error whose type is `Sync` (reachable by reference).
    fn wrap<E: std::error::Error + Send + Sync + 'static>(
        kind: ErrorKind,
        cancel_reason: Option<CancelReason>,
        e: E,
    ) -> Self {
        Self::from_parts(kind, cancel_reason, Box::new(e), None)
    }

    /// Wraps an error that carries a value which need not be `Sync` (E2).
    fn wrap_valued<E: fmt::Display + Send + 'static>(kind: ErrorKind, e: E) -> Self {
        let message = Undelivered(e.to_string());
        Self::from_parts(kind, None, Box::new(message), Some(Box::new(e)))
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.repr.kind
    }

    /// Whether this reports a cancellation (E3).
    pub fn is_cancelled(&self) -> bool {
        self.repr.kind == ErrorKind::Cancelled
    }

    /// The cancellation reason, when the original error carried one (E3).
    pub fn cancel_reason(&self) -> Option<&CancelReason> {
        self.repr.cancel_reason.as_ref()
    }

    /// The wrapped error (for a value-carrying error, a value-free error with
    /// its message).
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.repr.inner
    }

    /// The original error, if it is an `E` and carries no value.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.repr.inner.downcast_ref::<E>()
    }

    /// The original error back, if it is an `E` (value included, E2);
    /// otherwise `Err(self)` unchanged.
    pub fn downcast<E: std::error::Error + 'static>(self) -> Result<E, Self> {
        let Repr {
            kind,
            cancel_reason,
            inner,
            original,
        } = *self.repr;
        let rebuild = |inner, original| Self {
            repr: Box::new(Repr {
                kind,
                cancel_reason,
                inner,
                original,
            }),
        };
        if let Some(original) = original {
            let original = original
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return match original.downcast::<E>() {
                Ok(e) => Ok(*e),
                Err(original) => Err(rebuild(inner, Some(Mutex::new(original)))),
            };
        }
        match inner.downcast::<E>() {
            Ok(e) => Ok(*e),
            Err(inner) => Err(rebuild(inner, None)),
        }
    }

    /// The wrapped error (see [`get_ref`](Self::get_ref)).
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self.repr.inner
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.repr.kind);
        if let Some(r) = &self.repr.cancel_reason {
            d.field("cancel_reason", r);
        }
        d.field("message", &format_args!("{}", self.repr.inner))
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.repr.inner, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.repr.inner.source()
    }
}

// ----- conversions (rule E1) ------------------------------------------------

impl From<Cancelled> for Error {
    fn from(e: Cancelled) -> Self {
        let reason = e.reason().clone();
        Self::wrap(ErrorKind::Cancelled, Some(reason), e)
    }
}

impl From<JoinError> for Error {
    fn from(e: JoinError) -> Self {
        match &e {
            JoinError::Cancelled(r) => {
                let r = r.clone();
                Self::wrap(ErrorKind::Cancelled, Some(r), e)
            }
            JoinError::Panicked(_) => Self::wrap(ErrorKind::Panicked, None, e),
        }
    }
}

impl From<SpawnError> for Error {
    fn from(e: SpawnError) -> Self {
        let reason = match &e {
            SpawnError::RegionCancelled(_, r) => Some(r.clone()),
            _ => None,
        };
        Self::wrap(ErrorKind::Spawn, reason, e)
    }
}

impl From<BuildError> for Error {
    fn from(e: BuildError) -> Self {
        Self::wrap(ErrorKind::Build, None, e)
    }
}

impl From<DeferError> for Error {
    fn from(e: DeferError) -> Self {
        Self::wrap(ErrorKind::Closed, None, e)
    }
}

impl From<TransferError> for Error {
    fn from(e: TransferError) -> Self {
        Self::wrap(ErrorKind::Closed, None, e)
    }
}

impl From<Elapsed> for Error {
    fn from(e: Elapsed) -> Self {
        Self::wrap(ErrorKind::TimedOut, None, e)
    }
}

impl From<Box<ReplayMismatch>> for Error {
    fn from(e: Box<ReplayMismatch>) -> Self {
        Self::wrap(ErrorKind::Other, None, *e)
    }
}

impl From<ReplayMismatch> for Error {
    fn from(e: ReplayMismatch) -> Self {
        Self::wrap(ErrorKind::Other, None, e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut => ErrorKind::TimedOut,
            std::io::ErrorKind::WouldBlock => ErrorKind::WouldBlock,
            _ => ErrorKind::Other,
        };
        Self::wrap(kind, None, e)
    }
}

/// The kind and reason of a wrapped `Cancelled`.
fn cancelled(c: &Cancelled) -> (ErrorKind, Option<CancelReason>) {
    (ErrorKind::Cancelled, Some(c.reason().clone()))
}

impl From<mpsc::RecvError> for Error {
    fn from(e: mpsc::RecvError) -> Self {
        let (kind, reason) = match &e {
            mpsc::RecvError::Cancelled(c) => cancelled(c),
            mpsc::RecvError::Disconnected => (ErrorKind::Disconnected, None),
        };
        Self::wrap(kind, reason, e)
    }
}

impl From<mpsc::TryRecvError> for Error {
    fn from(e: mpsc::TryRecvError) -> Self {
        let kind = match e {
            mpsc::TryRecvError::Empty => ErrorKind::Empty,
            mpsc::TryRecvError::Disconnected => ErrorKind::Disconnected,
        };
        Self::wrap(kind, None, e)
    }
}

impl From<mpsc::ReserveError> for Error {
    fn from(e: mpsc::ReserveError) -> Self {
        let (kind, reason) = match &e {
            mpsc::ReserveError::Cancelled(c) => cancelled(c),
            mpsc::ReserveError::Disconnected => (ErrorKind::Disconnected, None),
        };
        Self::wrap(kind, reason, e)
    }
}

impl<T: Send + 'static> From<mpsc::SendError<T>> for Error {
    fn from(e: mpsc::SendError<T>) -> Self {
        let kind = if e.is_cancelled() {
            ErrorKind::Cancelled
        } else {
            ErrorKind::Disconnected
        };
        Self::wrap_valued(kind, e)
    }
}

impl<T: Send + 'static> From<mpsc::TrySendError<T>> for Error {
    fn from(e: mpsc::TrySendError<T>) -> Self {
        let kind = if e.is_full() {
            ErrorKind::Full
        } else {
            ErrorKind::Disconnected
        };
        Self::wrap_valued(kind, e)
    }
}

impl<T: Send + 'static> From<mpsc::ReserveOwnedError<T>> for Error {
    fn from(e: mpsc::ReserveOwnedError<T>) -> Self {
        let (kind, reason) = match e.error() {
            mpsc::ReserveError::Cancelled(c) => cancelled(c),
            mpsc::ReserveError::Disconnected => (ErrorKind::Disconnected, None),
        };
        let message = Undelivered(e.to_string());
        Self::from_parts(kind, reason, Box::new(message), Some(Box::new(e)))
    }
}

impl<T: Send + 'static> From<mpsc::SendTimeoutError<T>> for Error {
    fn from(e: mpsc::SendTimeoutError<T>) -> Self {
        let kind = match &e {
            mpsc::SendTimeoutError::Timeout(_) => ErrorKind::TimedOut,
            mpsc::SendTimeoutError::Disconnected(_) => ErrorKind::Disconnected,
            mpsc::SendTimeoutError::Cancelled(_) => ErrorKind::Cancelled,
        };
        Self::wrap_valued(kind, e)
    }
}

impl From<broadcast::RecvError> for Error {
    fn from(e: broadcast::RecvError) -> Self {
        let (kind, reason) = match &e {
            broadcast::RecvError::Cancelled(c) => cancelled(c),
            broadcast::RecvError::Lagged(_) => (ErrorKind::Lagged, None),
            broadcast::RecvError::Closed => (ErrorKind::Disconnected, None),
        };
        Self::wrap(kind, reason, e)
    }
}

impl From<broadcast::TryRecvError> for Error {
    fn from(e: broadcast::TryRecvError) -> Self {
        let kind = match e {
            broadcast::TryRecvError::Empty => ErrorKind::Empty,
            broadcast::TryRecvError::Lagged(_) => ErrorKind::Lagged,
            broadcast::TryRecvError::Closed => ErrorKind::Disconnected,
        };
        Self::wrap(kind, None, e)
    }
}

impl From<broadcast::Lagged> for Error {
    fn from(e: broadcast::Lagged) -> Self {
        Self::wrap(ErrorKind::Lagged, None, e)
    }
}

impl<T: Send + 'static> From<broadcast::SendError<T>> for Error {
    fn from(e: broadcast::SendError<T>) -> Self {
        Self::wrap_valued(ErrorKind::Disconnected, e)
    }
}

impl From<watch::RecvError> for Error {
    fn from(e: watch::RecvError) -> Self {
        let (kind, reason) = match &e {
            watch::RecvError::Cancelled(c) => cancelled(c),
            watch::RecvError::Closed => (ErrorKind::Disconnected, None),
        };
        Self::wrap(kind, reason, e)
    }
}

impl<T: Send + 'static> From<watch::SendError<T>> for Error {
    fn from(e: watch::SendError<T>) -> Self {
        Self::wrap_valued(ErrorKind::Disconnected, e)
    }
}

impl From<AcquireError> for Error {
    fn from(e: AcquireError) -> Self {
        let (kind, reason) = match &e {
            AcquireError::Cancelled(c) => cancelled(c),
            AcquireError::Closed => (ErrorKind::Closed, None),
            #[allow(unreachable_patterns)]
            _ => (ErrorKind::InvalidInput, None),
        };
        Self::wrap(kind, reason, e)
    }
}

impl From<TryAcquireError> for Error {
    fn from(e: TryAcquireError) -> Self {
        let kind = match e {
            TryAcquireError::NoPermits => ErrorKind::WouldBlock,
            TryAcquireError::Closed => ErrorKind::Closed,
            #[allow(unreachable_patterns)]
            _ => ErrorKind::InvalidInput,
        };
        Self::wrap(kind, None, e)
    }
}

impl From<LockError> for Error {
    fn from(e: LockError) -> Self {
        let (kind, reason) = match &e {
            LockError::Cancelled(c) => cancelled(c),
            LockError::Poisoned => (ErrorKind::Poisoned, None),
        };
        Self::wrap(kind, reason, e)
    }
}

impl From<TryLockError> for Error {
    fn from(e: TryLockError) -> Self {
        let kind = match e {
            TryLockError::WouldBlock => ErrorKind::WouldBlock,
            TryLockError::Poisoned => ErrorKind::Poisoned,
        };
        Self::wrap(kind, None, e)
    }
}

impl<E: fmt::Debug + fmt::Display + Send + Sync + 'static> From<InitError<E>> for Error {
    fn from(e: InitError<E>) -> Self {
        let (kind, reason) = match &e {
            InitError::Cancelled(c) => cancelled(c),
            InitError::Failed(_) => (ErrorKind::Other, None),
        };
        Self::wrap(kind, reason, e)
    }
}

impl<T: Send + 'static> From<SetError<T>> for Error {
    fn from(e: SetError<T>) -> Self {
        Self::wrap_valued(ErrorKind::Other, e)
    }
}

impl<E: fmt::Debug + fmt::Display + Send + Sync + 'static> From<PoolError<E>> for Error {
    fn from(e: PoolError<E>) -> Self {
        let (kind, reason) = match &e {
            PoolError::Cancelled(c) => cancelled(c),
            PoolError::Create(_) => (ErrorKind::Other, None),
            PoolError::Obligation(_) => (ErrorKind::Spawn, None),
        };
        Self::wrap(kind, reason, e)
    }
}

impl<E: fmt::Debug + fmt::Display + Send + Sync + 'static> From<OutcomeError<E>> for Error {
    fn from(e: OutcomeError<E>) -> Self {
        let (kind, reason) = match &e {
            OutcomeError::Err(_) => (ErrorKind::Other, None),
            OutcomeError::Cancelled(r) => (ErrorKind::Cancelled, Some(r.clone())),
            OutcomeError::Panicked(_) => (ErrorKind::Panicked, None),
        };
        Self::wrap(kind, reason, e)
    }
}

// Rule E1, checked at compile time for the crate's own error types.
const _: () = {
    const fn error<E: std::error::Error + Send + Sync + 'static>() {}
    error::<Error>();
};
