//! Typed cancellation reasons.
//!
//! Cancellation is a protocol (request → acknowledge → drain → finalize), and
//! every request carries a [`CancelReason`]: a [`CancelKind`], an optional
//! message, an optional cause (the reason that led to this one, bounded in
//! depth), the region and task it originated from, and when it was issued.
//!
//! Rules this module upholds:
//! 1. Kinds are ordered in severity tiers (`User` 0; `Timeout`, `Deadline` 1;
//!    `PollQuota`, `CostBudget` 2; `FailFast`, `RaceLost`, `LinkedExit` 3;
//!    `ParentCancelled`, `ResourceUnavailable` 4; `Shutdown` 5).
//! 2. [`CancelReason::strengthen`] is monotone and idempotent: the kept reason
//!    is never less severe than either input, and strengthening with the same
//!    reason twice changes nothing. Ties on tier are broken by the earlier
//!    timestamp, then the message, then the kind, so the result does not
//!    depend on arrival order.
//! 3. Cause chains are bounded ([`MAX_CAUSE_DEPTH`]); when a chain would grow
//!    past the bound the intermediate links are dropped but the root cause is
//!    kept, so "the chain ends at the original reason" always holds.
//! 4. More severe kinds get tighter cleanup budgets (fewer polls, shorter
//!    grace period).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use super::budget::Budget;
use super::id::{RegionId, TaskId};
use super::time::Time;

/// The longest cause chain a reason keeps (the reason itself not counted).
pub const MAX_CAUSE_DEPTH: usize = 16;

/// Why cancellation was requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CancelKind {
    /// Requested explicitly by user code (`abort`, a manual cancel).
    User,
    /// An operation's timeout elapsed.
    Timeout,
    /// The task's budget deadline passed.
    Deadline,
    /// The task used up its poll quota.
    PollQuota,
    /// The task used up its cost quota.
    CostBudget,
    /// A sibling failed and the region is failing fast.
    FailFast,
    /// The task lost a race and its result is no longer needed.
    RaceLost,
    /// A linked task exited abnormally.
    LinkedExit,
    /// An enclosing region or the owning task was cancelled.
    ParentCancelled,
    /// A resource the task depends on went away.
    ResourceUnavailable,
    /// The runtime is shutting down.
    Shutdown,
}

impl CancelKind {
    /// Every kind, in declaration order.
    pub const ALL: [CancelKind; 11] = [
        CancelKind::User,
        CancelKind::Timeout,
        CancelKind::Deadline,
        CancelKind::PollQuota,
        CancelKind::CostBudget,
        CancelKind::FailFast,
        CancelKind::RaceLost,
        CancelKind::LinkedExit,
        CancelKind::ParentCancelled,
        CancelKind::ResourceUnavailable,
        CancelKind::Shutdown,
    ];

    /// The severity tier (0 = mildest, 5 = shutdown).
    pub const fn severity(self) -> u8 {
        match self {
            CancelKind::User => 0,
            CancelKind::Timeout | CancelKind::Deadline => 1,
            CancelKind::PollQuota | CancelKind::CostBudget => 2,
            CancelKind::FailFast | CancelKind::RaceLost | CancelKind::LinkedExit => 3,
            CancelKind::ParentCancelled | CancelKind::ResourceUnavailable => 4,
            CancelKind::Shutdown => 5,
        }
    }

    /// The snake-case name (`"parent_cancelled"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            CancelKind::User => "user",
            CancelKind::Timeout => "timeout",
            CancelKind::Deadline => "deadline",
            CancelKind::PollQuota => "poll_quota",
            CancelKind::CostBudget => "cost_budget",
            CancelKind::FailFast => "fail_fast",
            CancelKind::RaceLost => "race_lost",
            CancelKind::LinkedExit => "linked_exit",
            CancelKind::ParentCancelled => "parent_cancelled",
            CancelKind::ResourceUnavailable => "resource_unavailable",
            CancelKind::Shutdown => "shutdown",
        }
    }

    /// The budget a task gets for its cleanup once it acknowledges a
    /// cancellation of this kind. More severe kinds get fewer polls and a
    /// higher scheduling priority.
    pub const fn cleanup_budget(self) -> Budget {
        let (poll_quota, priority) = match self.severity() {
            0 => (10_000, 200),
            1 => (5_000, 210),
            2 => (2_000, 220),
            3 => (1_000, 230),
            4 => (500, 240),
            _ => (200, 255),
        };
        Budget {
            deadline: None,
            poll_quota,
            cost_quota: None,
            priority,
        }
    }

    /// How long a task may take, from the cancel request, before the runtime
    /// force-drops it. More severe kinds get shorter grace periods. Runtimes
    /// can override this (`RuntimeBuilder::cleanup_grace`).
    pub const fn grace_period(self) -> Duration {
        match self.severity() {
            0 => Duration::from_secs(10),
            1 => Duration::from_secs(5),
            2 => Duration::from_secs(2),
            3 => Duration::from_secs(1),
            4 => Duration::from_millis(500),
            _ => Duration::from_millis(200),
        }
    }
}

impl fmt::Display for CancelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task or region was cancelled: kind, message, cause chain and origin.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CancelReason {
    /// The kind of cancellation.
    pub kind: CancelKind,
    /// A human-readable explanation.
    pub message: Option<String>,
    /// The reason that caused this one (e.g. the parent's reason for a
    /// `ParentCancelled`).
    pub cause: Option<Box<CancelReason>>,
    /// The region the request originated from, when known.
    pub origin_region: Option<RegionId>,
    /// The task the request originated from, when known.
    pub origin_task: Option<TaskId>,
    /// When the request was issued (runtime time).
    pub timestamp: Time,
}

macro_rules! kind_constructors {
    ($($(#[$meta:meta])* $fn_name:ident => $kind:ident),* $(,)?) => {
        $(
            $(#[$meta])*
            pub fn $fn_name() -> Self {
                Self::new(CancelKind::$kind)
            }
        )*
    };
}

impl CancelReason {
    /// A reason of `kind` with no message, cause or origin, at time zero.
    pub fn new(kind: CancelKind) -> Self {
        Self {
            kind,
            message: None,
            cause: None,
            origin_region: None,
            origin_task: None,
            timestamp: Time::ZERO,
        }
    }

    /// A `User` reason carrying `message`.
    pub fn user(message: impl Into<String>) -> Self {
        Self::new(CancelKind::User).with_message(message)
    }

    kind_constructors! {
        /// A `Timeout` reason.
        timeout => Timeout,
        /// A `Deadline` reason.
        deadline => Deadline,
        /// A `PollQuota` reason.
        poll_quota => PollQuota,
        /// A `CostBudget` reason.
        cost_budget => CostBudget,
        /// A `FailFast` reason.
        fail_fast => FailFast,
        /// A `RaceLost` reason.
        race_lost => RaceLost,
        /// A `LinkedExit` reason.
        linked_exit => LinkedExit,
        /// A `ParentCancelled` reason.
        parent_cancelled => ParentCancelled,
        /// A `ResourceUnavailable` reason.
        resource_unavailable => ResourceUnavailable,
        /// A `Shutdown` reason.
        shutdown => Shutdown,
    }

    /// Sets the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Sets the cause. The chain is capped at [`MAX_CAUSE_DEPTH`] links by
    /// dropping intermediate links; the root cause is always kept.
    pub fn with_cause(mut self, cause: CancelReason) -> Self {
        self.cause = Some(Box::new(cap_chain(cause, MAX_CAUSE_DEPTH - 1)));
        self
    }

    /// Sets the originating region and task.
    pub fn with_origin(mut self, region: Option<RegionId>, task: Option<TaskId>) -> Self {
        self.origin_region = region;
        self.origin_task = task;
        self
    }

    /// Sets the timestamp.
    pub fn with_timestamp(mut self, at: Time) -> Self {
        self.timestamp = at;
        self
    }

    /// A `ParentCancelled` reason caused by `self` (same timestamp and origin).
    pub fn to_parent_cancelled(&self) -> CancelReason {
        CancelReason::parent_cancelled()
            .with_timestamp(self.timestamp)
            .with_origin(self.origin_region, self.origin_task)
            .with_cause(self.clone())
    }

    /// The severity tier of the kind.
    pub fn severity(&self) -> u8 {
        self.kind.severity()
    }

    /// The cleanup budget of this reason's kind.
    pub fn cleanup_budget(&self) -> Budget {
        self.kind.cleanup_budget()
    }

    /// This reason followed by its causes, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &CancelReason> {
        std::iter::successors(Some(self), |r| r.cause.as_deref())
    }

    /// The innermost cause (the original reason); `self` if it has no cause.
    pub fn root_cause(&self) -> &CancelReason {
        self.chain().last().unwrap_or(self)
    }

    /// How many causes follow this reason.
    pub fn cause_depth(&self) -> usize {
        self.chain().count() - 1
    }

    /// Keeps the more severe of `self` and `other`; returns whether `self`
    /// changed. Equal tiers are decided by the earlier timestamp, then the
    /// message, then the kind; a full tie keeps `self`.
    pub fn strengthen(&mut self, other: impl Borrow<CancelReason>) -> bool {
        let other = other.borrow();
        if other.outranks(self) {
            *self = other.clone();
            true
        } else {
            false
        }
    }

    /// Whether `strengthen` would replace `other` by `self`.
    pub(crate) fn outranks(&self, other: &CancelReason) -> bool {
        precedence(self, other) == Ordering::Less
    }
}

/// Orders reasons by which one `strengthen` keeps: `Less` means `a` wins.
fn precedence(a: &CancelReason, b: &CancelReason) -> Ordering {
    b.severity()
        .cmp(&a.severity())
        .then_with(|| a.timestamp.cmp(&b.timestamp))
        .then_with(|| a.message.cmp(&b.message))
        .then_with(|| a.kind.cmp(&b.kind))
}

/// Returns `reason` with at most `max_causes` causes below it, keeping the root.
fn cap_chain(mut reason: CancelReason, max_causes: usize) -> CancelReason {
    let depth = reason.cause_depth();
    if depth <= max_causes {
        return reason;
    }
    let root = reason.root_cause().clone();
    // Walk down to the link that must point straight at the root.
    let mut link = &mut reason;
    for _ in 0..max_causes.saturating_sub(1) {
        link = link.cause.as_deref_mut().expect("depth was measured above");
    }
    if max_causes == 0 {
        reason.cause = None;
    } else {
        link.cause = Some(Box::new(root));
    }
    reason
}

impl Default for CancelReason {
    fn default() -> Self {
        Self::new(CancelKind::User)
    }
}

impl fmt::Debug for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("CancelReason");
        s.field("kind", &self.kind);
        if let Some(m) = &self.message {
            s.field("message", m);
        }
        if let Some(c) = &self.cause {
            s.field("cause", c);
        }
        if let Some(r) = &self.origin_region {
            s.field("origin_region", r);
        }
        if let Some(t) = &self.origin_task {
            s.field("origin_task", t);
        }
        s.field("timestamp", &self.timestamp).finish()
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(m) = &self.message {
            write!(f, " ({m})")?;
        }
        if let Some(c) = &self.cause {
            write!(f, " <- {c}")?;
        }
        Ok(())
    }
}

/// The error a cancel-aware operation returns when it observed cancellation.
///
/// Returning it (for example through `?` from [`crate::Cx::checkpoint`]) is how
/// a task acknowledges the request and starts its cleanup.
#[derive(Clone, PartialEq, Eq)]
pub struct Cancelled {
    reason: CancelReason,
}

impl Cancelled {
    /// Wraps the reason that was observed.
    pub fn new(reason: CancelReason) -> Self {
        Self { reason }
    }

    /// The reason that was observed.
    pub fn reason(&self) -> &CancelReason {
        &self.reason
    }

    /// Unwraps the reason.
    pub fn into_reason(self) -> CancelReason {
        self.reason
    }
}

impl fmt::Debug for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cancelled({})", self.reason)
    }
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cancelled: {}", self.reason)
    }
}

impl std::error::Error for Cancelled {}

/// Why the runtime dropped a task's future instead of polling it (rule K4,
/// and a cancel before the first poll). Recorded by the kernel, reported in
/// `ForcedDrop` stats and in the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForceDropCause {
    /// Cancelled before it was ever polled: it never started.
    CancelledBeforeStart,
    /// The cleanup grace period ran out.
    GraceExpired,
    /// Cleanup used up the cleanup poll quota.
    CleanupPollsExhausted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_match_the_contract() {
        use CancelKind::*;
        let tiers: Vec<u8> = CancelKind::ALL.iter().map(|k| k.severity()).collect();
        assert_eq!(tiers, vec![0, 1, 1, 2, 2, 3, 3, 3, 4, 4, 5]);
        assert_eq!(Shutdown.to_string(), "shutdown");
        assert_eq!(ParentCancelled.as_str(), "parent_cancelled");
    }

    #[test]
    fn more_severe_kinds_get_tighter_cleanup() {
        for a in CancelKind::ALL {
            for b in CancelKind::ALL {
                if a.severity() < b.severity() {
                    assert!(a.cleanup_budget().poll_quota > b.cleanup_budget().poll_quota);
                    assert!(a.grace_period() > b.grace_period());
                }
            }
        }
    }

    #[test]
    fn strengthen_keeps_the_more_severe_reason() {
        let mut r = CancelReason::user("stop");
        assert!(r.strengthen(CancelReason::shutdown()));
        assert_eq!(r.kind, CancelKind::Shutdown);
        assert!(!r.strengthen(CancelReason::timeout()));
        assert_eq!(r.kind, CancelKind::Shutdown);
    }

    #[test]
    fn strengthen_ties_prefer_the_earlier_timestamp_then_message() {
        let early = CancelReason::timeout().with_timestamp(Time::from_millis(1));
        let late = CancelReason::deadline().with_timestamp(Time::from_millis(2));
        let mut r = late.clone();
        assert!(r.strengthen(&early));
        assert_eq!(r, early);
        let mut r = early.clone();
        assert!(!r.strengthen(&late));

        let a = CancelReason::user("a");
        let mut r = CancelReason::user("b");
        assert!(r.strengthen(&a));
        assert_eq!(r.message.as_deref(), Some("a"));
    }

    #[test]
    fn strengthen_is_idempotent() {
        let mut r = CancelReason::fail_fast();
        let copy = r.clone();
        assert!(!r.strengthen(&copy));
        assert_eq!(r, copy);
    }

    #[test]
    fn cause_chain_is_bounded_but_keeps_the_root() {
        let root = CancelReason::user("origin");
        let mut r = root.clone();
        for _ in 0..100 {
            r = r.to_parent_cancelled();
        }
        assert!(r.cause_depth() <= MAX_CAUSE_DEPTH);
        assert_eq!(r.root_cause(), &root);
        assert_eq!(r.kind, CancelKind::ParentCancelled);
    }

    #[test]
    fn display_shows_the_chain() {
        let r = CancelReason::user("bye").to_parent_cancelled();
        assert_eq!(r.to_string(), "parent_cancelled <- user (bye)");
    }

    #[test]
    fn default_is_user() {
        assert_eq!(CancelReason::default().kind, CancelKind::User);
    }
}
