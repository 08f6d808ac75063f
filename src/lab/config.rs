//! Lab settings.

use std::time::Duration;

use crate::kernel::{KernelConfig, LeakPolicy};
use crate::types::TaskId;

/// How the lab picks the next task among the runnable ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedulePolicy {
    /// Uniformly at random (seeded).
    Random,
    /// PCT (probabilistic concurrency testing): random distinct task
    /// priorities, highest runs; at `depth - 1` random steps among the first
    /// `expected_steps`, the running task drops to the lowest priority.
    /// Finds a bug of preemption depth `d` with probability at least
    /// `1 / (n * k^(d-1))` per run (n tasks, k steps).
    Pct {
        /// Bug depth to target (number of priority change points + 1).
        depth: u32,
        /// Roughly how many steps a run takes (where change points fall).
        expected_steps: u64,
    },
    /// Oldest runnable first: the current-thread runtime's order.
    Fifo,
}

/// Seeded fault injection at poll boundaries. Every injection is recorded
/// in the trace as a `Chaos` event.
#[derive(Clone, Debug, PartialEq)]
pub struct ChaosConfig {
    /// Probability, per dispatch, of cancelling the task about to run.
    pub cancel: f64,
    /// Probability, per dispatch, of a virtual delay before the poll.
    pub delay: f64,
    /// Longest virtual delay.
    pub max_delay: Duration,
    /// Probability, per dispatch, of waking a random live task spuriously.
    pub spurious_wake: f64,
    /// Probability, per dispatch, of exhausting the task's poll budget.
    pub budget_exhaustion: f64,
}

impl ChaosConfig {
    /// No injections.
    pub const fn off() -> Self {
        Self {
            cancel: 0.0,
            delay: 0.0,
            max_delay: Duration::ZERO,
            spurious_wake: 0.0,
            budget_exhaustion: 0.0,
        }
    }

    /// Occasional injections (about 1% of dispatches each).
    pub const fn light() -> Self {
        Self {
            cancel: 0.005,
            delay: 0.01,
            max_delay: Duration::from_millis(10),
            spurious_wake: 0.01,
            budget_exhaustion: 0.002,
        }
    }

    /// Frequent injections.
    pub const fn heavy() -> Self {
        Self {
            cancel: 0.05,
            delay: 0.1,
            max_delay: Duration::from_millis(100),
            spurious_wake: 0.1,
            budget_exhaustion: 0.02,
        }
    }

    /// Whether any injection is enabled.
    pub fn is_enabled(&self) -> bool {
        self.cancel > 0.0
            || self.delay > 0.0
            || self.spurious_wake > 0.0
            || self.budget_exhaustion > 0.0
    }
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self::off()
    }
}

/// Configuration of a [`LabRuntime`](super::LabRuntime) run.
#[derive(Clone, Debug)]
pub struct LabConfig {
    pub(crate) seed: u64,
    pub(crate) policy: SchedulePolicy,
    pub(crate) workers: usize,
    pub(crate) step_limit: u64,
    pub(crate) kernel: KernelConfig,
    pub(crate) chaos: ChaosConfig,
    pub(crate) forced_schedule: Option<Vec<TaskId>>,
    pub(crate) futurelock_after: Duration,
    pub(crate) cancel_at: Option<(TaskId, u32)>,
}

impl LabConfig {
    /// A lab seeded with `seed`: random scheduling, no chaos, a step limit
    /// of one million dispatches.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            policy: SchedulePolicy::Random,
            workers: 0,
            step_limit: 1_000_000,
            kernel: KernelConfig::default(),
            chaos: ChaosConfig::off(),
            forced_schedule: None,
            futurelock_after: Duration::from_secs(60),
            cancel_at: None,
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The scheduling policy.
    pub fn policy(mut self, policy: SchedulePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Simulates `n` workers: each wake queues the task on one worker
    /// (the waker's, or a random one for timer wakes), each worker runs its
    /// queue in FIFO order, and the policy picks which worker steps next.
    /// `0` (the default) lets any runnable task run next.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Most dispatches a run may take before it is reported as a livelock.
    pub fn step_limit(mut self, steps: u64) -> Self {
        self.step_limit = steps;
        self
    }

    /// Grace period (virtual) before an unresponsive cancelled task is
    /// force-dropped; overrides the per-kind defaults.
    pub fn cleanup_grace(mut self, grace: Duration) -> Self {
        self.kernel.cleanup_grace = Some(grace);
        self
    }

    /// What an obligation leak does (default: the holder panics).
    pub fn obligation_leak_policy(mut self, policy: LeakPolicy) -> Self {
        self.kernel.leak_policy = policy;
        self
    }

    /// Seeded fault injection.
    pub fn chaos(mut self, chaos: ChaosConfig) -> Self {
        self.chaos = chaos;
        self
    }

    /// Replays a recorded schedule: at each step the task with the next id
    /// runs if it is runnable; the first step where it is not is recorded as
    /// a divergence and the policy decides from then on.
    pub fn replay_schedule(mut self, schedule: Vec<TaskId>) -> Self {
        self.forced_schedule = Some(schedule);
        self
    }

    /// Virtual time a task may hold obligations without being polled before
    /// the futurelock oracle flags it.
    pub fn futurelock_after(mut self, after: Duration) -> Self {
        self.futurelock_after = after;
        self
    }

    /// Cancellation injection hook (used by
    /// [`cancel_injection`](super::cancel_injection)): right after the
    /// `poll`-th poll (1-based) of `task` returns `Pending`, the lab records
    /// a `Chaos { what: "cancel_at" }` event and requests the task's
    /// cancellation (kind `User`), once. Only tasks the lab dispatches are
    /// targets; the root body of `block_on` (polled by `block_on` itself)
    /// never is. Ids are those of a run with the same seed: the run is
    /// identical up to the injection.
    pub fn cancel_at(mut self, task: TaskId, poll: u32) -> Self {
        self.cancel_at = Some((task, poll));
        self
    }
}
