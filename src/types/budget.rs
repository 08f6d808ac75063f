//! Budgets: how much a task may consume before it is cancelled.

use super::time::Time;

/// Limits on a task's execution. Budgets only ever tighten: a child's budget
/// is its parent's [`meet`](Budget::meet) the one requested for it.
///
/// - `deadline`: past it, the task is cancelled with `Deadline`.
/// - `poll_quota`: how many more polls the task may take; when it is used
///   up, the task is cancelled with `PollQuota` (`u32::MAX` means unlimited).
///   A task's budget counts down as it is polled, so `Cx::budget` shows
///   what is left.
/// - `cost_quota`: after charging this much cost, the task is cancelled with
///   `CostBudget`.
/// - `priority`: scheduling priority (higher runs first where the driver
///   honours priorities).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Budget {
    /// Absolute deadline, if any.
    pub deadline: Option<Time>,
    /// Maximum number of polls.
    pub poll_quota: u32,
    /// Maximum cost, if any.
    pub cost_quota: Option<u64>,
    /// Scheduling priority (0 = lowest).
    pub priority: u8,
}

impl Budget {
    /// No limits at all; the identity of [`meet`](Budget::meet).
    pub const INFINITE: Budget = Budget {
        deadline: None,
        poll_quota: u32::MAX,
        cost_quota: None,
        priority: 0,
    };

    /// Same as [`Budget::INFINITE`].
    pub const fn new() -> Budget {
        Budget::INFINITE
    }

    /// With an absolute deadline.
    pub const fn with_deadline(mut self, deadline: Time) -> Budget {
        self.deadline = Some(deadline);
        self
    }

    /// With a poll quota.
    pub const fn with_poll_quota(mut self, quota: u32) -> Budget {
        self.poll_quota = quota;
        self
    }

    /// With a cost quota.
    pub const fn with_cost_quota(mut self, quota: u64) -> Budget {
        self.cost_quota = Some(quota);
        self
    }

    /// With a priority.
    pub const fn with_priority(mut self, priority: u8) -> Budget {
        self.priority = priority;
        self
    }

    /// The tighter of two budgets: the minimum of every limit and the maximum
    /// of the priorities. Commutative, associative and idempotent.
    pub fn meet(self, other: Budget) -> Budget {
        Budget {
            deadline: min_option(self.deadline, other.deadline),
            poll_quota: self.poll_quota.min(other.poll_quota),
            cost_quota: min_option(self.cost_quota, other.cost_quota),
            priority: self.priority.max(other.priority),
        }
    }

    /// Whether the deadline has passed at `now`.
    pub fn is_past_deadline(&self, now: Time) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::INFINITE
    }
}

fn min_option<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinite_is_the_identity_of_meet() {
        let b = Budget::new()
            .with_deadline(Time::from_secs(1))
            .with_poll_quota(10)
            .with_cost_quota(5)
            .with_priority(3);
        assert_eq!(Budget::INFINITE.meet(b), b);
        assert_eq!(b.meet(Budget::INFINITE), b);
    }

    #[test]
    fn meet_takes_min_limits_and_max_priority() {
        let a = Budget::new()
            .with_deadline(Time::from_secs(5))
            .with_poll_quota(10)
            .with_priority(1);
        let b = Budget::new()
            .with_deadline(Time::from_secs(2))
            .with_cost_quota(7)
            .with_priority(9);
        let m = a.meet(b);
        assert_eq!(m.deadline, Some(Time::from_secs(2)));
        assert_eq!(m.poll_quota, 10);
        assert_eq!(m.cost_quota, Some(7));
        assert_eq!(m.priority, 9);
    }
}
