//! The four-valued result of running something under the runtime.
//!
//! `Outcome` extends `Result` with the two ways work can end that a plain
//! `Result` cannot express: it was cancelled (with a typed reason) or it
//! panicked. Outcomes form a severity lattice `Ok < Err < Cancelled <
//! Panicked`; [`Outcome::join`] keeps the worst, left-biased on ties, which is
//! how a region combines its body's result with its children's fates.

use std::any::Any;
use std::fmt;

use super::cancel::CancelReason;

/// How bad an [`Outcome`] is. Ordered `Ok < Err < Cancelled < Panicked`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Completed successfully.
    Ok,
    /// Completed with an application error.
    Err,
    /// Stopped because cancellation was requested.
    Cancelled,
    /// Stopped because the code panicked.
    Panicked,
}

/// The message of a caught panic.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PanicPayload {
    message: String,
}

impl PanicPayload {
    /// A payload carrying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// Extracts the message from the payload `std::panic::catch_unwind`
    /// returns (`&str` and `String` payloads keep their text).
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        Self::from_panic_ref(&*payload)
    }

    /// Like [`from_panic`](Self::from_panic), without consuming the payload.
    pub fn from_panic_ref(payload: &(dyn Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_string()
        } else {
            "<panic payload that is not a string>".to_string()
        };
        Self { message }
    }

    /// The panic message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PanicPayload({:?})", self.message)
    }
}

impl fmt::Display for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "panicked: {}", self.message)
    }
}

/// The result of a task or region: `Ok`, `Err`, `Cancelled` or `Panicked`.
#[must_use = "an Outcome may be an error, a cancellation or a panic; inspect it"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<T, E> {
    /// Completed with a value.
    Ok(T),
    /// Completed with an application error.
    Err(E),
    /// Cancelled, with the reason that won.
    Cancelled(CancelReason),
    /// Panicked, with the panic message.
    Panicked(PanicPayload),
}

/// The non-`Ok` cases of an [`Outcome`], as the error of [`Outcome::into_result`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutcomeError<E> {
    /// The application error.
    Err(E),
    /// The cancellation reason.
    Cancelled(CancelReason),
    /// The panic payload.
    Panicked(PanicPayload),
}

impl<E: fmt::Display> fmt::Display for OutcomeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutcomeError::Err(e) => write!(f, "{e}"),
            OutcomeError::Cancelled(r) => write!(f, "cancelled: {r}"),
            OutcomeError::Panicked(p) => write!(f, "{p}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for OutcomeError<E> {}

impl<T, E> Outcome<T, E> {
    /// Whether this is `Ok`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    /// Whether this is `Err`.
    pub fn is_err(&self) -> bool {
        matches!(self, Outcome::Err(_))
    }

    /// Whether this is `Cancelled`.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Outcome::Cancelled(_))
    }

    /// Whether this is `Panicked`.
    pub fn is_panicked(&self) -> bool {
        matches!(self, Outcome::Panicked(_))
    }

    /// The position of this outcome in the severity lattice.
    pub fn severity(&self) -> Severity {
        match self {
            Outcome::Ok(_) => Severity::Ok,
            Outcome::Err(_) => Severity::Err,
            Outcome::Cancelled(_) => Severity::Cancelled,
            Outcome::Panicked(_) => Severity::Panicked,
        }
    }

    /// Combines two outcomes: the more severe wins; on equal severity `self`
    /// (the left operand) wins.
    pub fn join(self, other: Outcome<T, E>) -> Outcome<T, E> {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// Converts to a `Result`, keeping cancellation and panics distinguishable.
    pub fn into_result(self) -> Result<T, OutcomeError<E>> {
        match self {
            Outcome::Ok(v) => Ok(v),
            Outcome::Err(e) => Err(OutcomeError::Err(e)),
            Outcome::Cancelled(r) => Err(OutcomeError::Cancelled(r)),
            Outcome::Panicked(p) => Err(OutcomeError::Panicked(p)),
        }
    }

    /// The success value, if any.
    pub fn ok(self) -> Option<T> {
        match self {
            Outcome::Ok(v) => Some(v),
            _ => None,
        }
    }

    /// The cancellation reason, if this outcome is `Cancelled`.
    pub fn cancel_reason(&self) -> Option<&CancelReason> {
        match self {
            Outcome::Cancelled(r) => Some(r),
            _ => None,
        }
    }

    /// Maps the success value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U, E> {
        match self {
            Outcome::Ok(v) => Outcome::Ok(f(v)),
            Outcome::Err(e) => Outcome::Err(e),
            Outcome::Cancelled(r) => Outcome::Cancelled(r),
            Outcome::Panicked(p) => Outcome::Panicked(p),
        }
    }

    /// Maps the application error.
    pub fn map_err<F>(self, f: impl FnOnce(E) -> F) -> Outcome<T, F> {
        match self {
            Outcome::Ok(v) => Outcome::Ok(v),
            Outcome::Err(e) => Outcome::Err(f(e)),
            Outcome::Cancelled(r) => Outcome::Cancelled(r),
            Outcome::Panicked(p) => Outcome::Panicked(p),
        }
    }

    /// Returns the success value.
    ///
    /// # Panics
    /// Panics, naming the outcome, if it is not `Ok`.
    #[track_caller]
    pub fn unwrap(self) -> T
    where
        E: fmt::Debug,
    {
        match self {
            Outcome::Ok(v) => v,
            Outcome::Err(e) => panic!("called `Outcome::unwrap()` on an `Err` value: {e:?}"),
            Outcome::Cancelled(r) => {
                panic!("called `Outcome::unwrap()` on a `Cancelled` value: {r}")
            }
            Outcome::Panicked(p) => panic!("called `Outcome::unwrap()` on a `Panicked` value: {p}"),
        }
    }
}

impl<T, E> From<Result<T, E>> for Outcome<T, E> {
    fn from(r: Result<T, E>) -> Self {
        match r {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type O = Outcome<u32, &'static str>;

    #[test]
    fn severity_order_is_ok_err_cancelled_panicked() {
        assert!(Severity::Ok < Severity::Err);
        assert!(Severity::Err < Severity::Cancelled);
        assert!(Severity::Cancelled < Severity::Panicked);
    }

    #[test]
    fn join_keeps_the_worst_and_is_left_biased() {
        let ok1: O = Outcome::Ok(1);
        let ok2: O = Outcome::Ok(2);
        assert_eq!(ok1.clone().join(ok2), Outcome::Ok(1));
        let err: O = Outcome::Err("e");
        assert_eq!(ok1.join(err.clone()), err);
        let p: O = Outcome::Panicked(PanicPayload::new("boom"));
        assert_eq!(
            p.clone().join(Outcome::Cancelled(CancelReason::shutdown())),
            p
        );
    }

    #[test]
    fn from_result_and_into_result_round_trip() {
        let o: O = Ok(3).into();
        assert_eq!(o.into_result(), Ok(3));
        let o: O = Err("x").into();
        assert_eq!(o.into_result(), Err(OutcomeError::Err("x")));
    }

    #[test]
    fn panic_payload_extracts_string_messages() {
        let p = PanicPayload::from_panic(Box::new("static"));
        assert_eq!(p.message(), "static");
        let p = PanicPayload::from_panic(Box::new(String::from("owned")));
        assert_eq!(p.message(), "owned");
        let p = PanicPayload::from_panic(Box::new(42_u8));
        assert!(p.message().contains("not a string"));
    }
}
