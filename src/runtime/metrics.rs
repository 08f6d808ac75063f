//! Scheduler metrics: per-worker counters, read through
//! [`Runtime::metrics`](super::Runtime::metrics).
//!
//! Each worker owns one [`WorkerCounters`] and is its only writer; readers
//! take a relaxed snapshot. The counters are monotonic (except
//! `max_cancel_streak`, a running maximum), so a snapshot is a consistent
//! lower bound of each value, not an atomic picture of all of them.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of every worker's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeMetrics {
    /// One entry per worker thread. The current-thread runtime has exactly
    /// one entry: the thread inside `block_on`.
    pub workers: Vec<WorkerMetrics>,
    /// Times the thread inside `block_on` parked (nothing for it to run and
    /// the root task not woken). On the current-thread runtime it is the
    /// one worker, so this equals `workers[0].parks`.
    pub block_on_parks: u64,
}

impl RuntimeMetrics {
    /// Sum of `polls` over all workers.
    pub fn total_polls(&self) -> u64 {
        self.workers.iter().map(|w| w.polls).sum()
    }

    /// Sum of `steals` over all workers.
    pub fn total_steals(&self) -> u64 {
        self.workers.iter().map(|w| w.steals).sum()
    }
}

/// A snapshot of one worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerMetrics {
    /// Tasks this worker ran (one `run` of a task cell each).
    pub polls: u64,
    /// Successful steals of a batch of tasks from another worker's queue.
    pub steals: u64,
    /// Times this worker parked because it found nothing to run.
    pub parks: u64,
    /// Tasks this worker took from the cancel lane.
    pub cancel_lane_dispatches: u64,
    /// Tasks this worker took from the timed (earliest-deadline) lane.
    pub timed_lane_dispatches: u64,
    /// Longest run of consecutive cancel-lane dispatches (bounded by the
    /// cancel-streak limit whenever other work was waiting).
    pub max_cancel_streak: u64,
}

/// The live counters of one worker (written by that worker only).
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    polls: AtomicU64,
    steals: AtomicU64,
    parks: AtomicU64,
    cancel_lane_dispatches: AtomicU64,
    timed_lane_dispatches: AtomicU64,
    max_cancel_streak: AtomicU64,
}

impl WorkerCounters {
    fn bump(counter: &AtomicU64) {
        // Single writer: load + store is enough and cheaper than an RMW.
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    pub(crate) fn poll(&self) {
        Self::bump(&self.polls);
    }

    pub(crate) fn steal(&self) {
        Self::bump(&self.steals);
    }

    pub(crate) fn park(&self) {
        Self::bump(&self.parks);
    }

    /// A cancel-lane dispatch that makes the current streak `streak` long.
    pub(crate) fn cancel_dispatch(&self, streak: u64) {
        Self::bump(&self.cancel_lane_dispatches);
        // Single writer, as in `bump`: no RMW needed.
        if streak > self.max_cancel_streak.load(Ordering::Relaxed) {
            self.max_cancel_streak.store(streak, Ordering::Relaxed);
        }
    }

    pub(crate) fn timed_dispatch(&self) {
        Self::bump(&self.timed_lane_dispatches);
    }

    pub(crate) fn snapshot(&self) -> WorkerMetrics {
        WorkerMetrics {
            polls: self.polls.load(Ordering::Relaxed),
            steals: self.steals.load(Ordering::Relaxed),
            parks: self.parks.load(Ordering::Relaxed),
            cancel_lane_dispatches: self.cancel_lane_dispatches.load(Ordering::Relaxed),
            timed_lane_dispatches: self.timed_lane_dispatches.load(Ordering::Relaxed),
            max_cancel_streak: self.max_cancel_streak.load(Ordering::Relaxed),
        }
    }
}
