//! Why a task went down: the [`DownReason`] that monitors and links report.
//!
//! This module currently holds only [`DownReason`], the value shared by the
//! OTP layer: [`crate::link`] uses it to decide what an exit does to linked
//! peers, and it is what an exit signal carries. Monitors themselves (one-way
//! "tell me when that task goes down" notifications) come later and will live
//! here too.
//!
//! A `DownReason` mirrors the four ways a task can end
//! ([`Outcome`]): normally, with an application error,
//! cancelled, or panicked. The application error is kept as its rendered text
//! so that reasons stay `Clone + Eq` whatever the task's error type is; see
//! [`DownReason::from_outcome`].

use std::fmt;

use crate::types::{CancelReason, Outcome, PanicPayload};

/// Why a task terminated.
///
/// Display strings: `normal`, `error: <message>`, `cancelled: <reason>` and
/// `panicked: <message>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DownReason {
    /// The task completed successfully.
    Normal,
    /// The task completed with an application error (its rendered message).
    Error(String),
    /// The task was cancelled, with the reason that won.
    Cancelled(CancelReason),
    /// The task panicked.
    Panicked(PanicPayload),
}

impl DownReason {
    /// Whether the task completed successfully.
    pub fn is_normal(&self) -> bool {
        matches!(self, DownReason::Normal)
    }

    /// Whether the task completed with an application error.
    pub fn is_error(&self) -> bool {
        matches!(self, DownReason::Error(_))
    }

    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, DownReason::Cancelled(_))
    }

    /// Whether the task panicked.
    pub fn is_panicked(&self) -> bool {
        matches!(self, DownReason::Panicked(_))
    }

    /// Whether the exit was anything other than [`DownReason::Normal`]
    /// (the exits that links react to).
    pub fn is_abnormal(&self) -> bool {
        !self.is_normal()
    }

    /// The cancellation reason, if the task was cancelled.
    pub fn cancel_reason(&self) -> Option<&CancelReason> {
        match self {
            DownReason::Cancelled(r) => Some(r),
            _ => None,
        }
    }

    /// The reason matching a task's outcome: `Ok` → `Normal`, `Err(e)` →
    /// `Error(e.to_string())`, `Cancelled(r)` → `Cancelled(r)`, `Panicked(p)`
    /// → `Panicked(p)`. The success value is not inspected.
    pub fn from_outcome<T, E: fmt::Display>(outcome: &Outcome<T, E>) -> Self {
        match outcome {
            Outcome::Ok(_) => DownReason::Normal,
            Outcome::Err(e) => DownReason::Error(e.to_string()),
            Outcome::Cancelled(r) => DownReason::Cancelled(r.clone()),
            Outcome::Panicked(p) => DownReason::Panicked(p.clone()),
        }
    }
}

impl<T, E: fmt::Display> From<&Outcome<T, E>> for DownReason {
    fn from(outcome: &Outcome<T, E>) -> Self {
        DownReason::from_outcome(outcome)
    }
}

impl<T, E: fmt::Display> From<Outcome<T, E>> for DownReason {
    fn from(outcome: Outcome<T, E>) -> Self {
        match outcome {
            Outcome::Ok(_) => DownReason::Normal,
            Outcome::Err(e) => DownReason::Error(e.to_string()),
            Outcome::Cancelled(r) => DownReason::Cancelled(r),
            Outcome::Panicked(p) => DownReason::Panicked(p),
        }
    }
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::Normal => f.write_str("normal"),
            DownReason::Error(e) => write!(f, "error: {e}"),
            DownReason::Cancelled(r) => write!(f, "cancelled: {r}"),
            DownReason::Panicked(p) => write!(f, "panicked: {}", p.message()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const _: fn() = || {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DownReason>();
    };

    #[test]
    fn predicates_match_exactly_one_variant() {
        let all = [
            DownReason::Normal,
            DownReason::Error("e".into()),
            DownReason::Cancelled(CancelReason::timeout()),
            DownReason::Panicked(PanicPayload::new("boom")),
        ];
        for (i, r) in all.iter().enumerate() {
            let flags = [
                r.is_normal(),
                r.is_error(),
                r.is_cancelled(),
                r.is_panicked(),
            ];
            let expected: Vec<bool> = (0..4).map(|j| j == i).collect();
            assert_eq!(flags.to_vec(), expected, "{r:?}");
            assert_eq!(r.is_abnormal(), i != 0);
        }
    }

    #[test]
    fn display_names_the_variant_and_its_payload() {
        assert_eq!(DownReason::Normal.to_string(), "normal");
        assert_eq!(DownReason::Error("bad".into()).to_string(), "error: bad");
        assert_eq!(
            DownReason::Cancelled(CancelReason::user("stop")).to_string(),
            "cancelled: user (stop)"
        );
        assert_eq!(
            DownReason::Panicked(PanicPayload::new("boom")).to_string(),
            "panicked: boom"
        );
    }

    #[test]
    fn from_outcome_maps_each_variant_and_renders_errors() {
        let ok: Outcome<u8, &str> = Outcome::Ok(1);
        assert_eq!(DownReason::from_outcome(&ok), DownReason::Normal);
        let err: Outcome<u8, &str> = Outcome::Err("nope");
        assert_eq!(DownReason::from(&err), DownReason::Error("nope".into()));
        let reason = CancelReason::shutdown();
        let c: Outcome<u8, &str> = Outcome::Cancelled(reason.clone());
        assert_eq!(DownReason::from(&c), DownReason::Cancelled(reason.clone()));
        assert_eq!(DownReason::from(c), DownReason::Cancelled(reason));
        let p: Outcome<u8, &str> = Outcome::Panicked(PanicPayload::new("x"));
        assert_eq!(
            DownReason::from(p),
            DownReason::Panicked(PanicPayload::new("x"))
        );
    }

    #[test]
    fn cancel_reason_is_exposed_only_for_cancelled() {
        let r = CancelReason::deadline();
        assert_eq!(DownReason::Cancelled(r.clone()).cancel_reason(), Some(&r));
        assert_eq!(DownReason::Error("e".into()).cancel_reason(), None);
    }

    #[test]
    fn equal_reasons_compare_equal_and_clone_is_exact() {
        let r = DownReason::Cancelled(CancelReason::user("a").to_parent_cancelled());
        assert_eq!(r.clone(), r);
        assert_ne!(DownReason::Error("a".into()), DownReason::Error("b".into()));
    }
}
