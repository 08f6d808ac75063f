//! Replay: rerun a recorded lab run and say exactly where it stopped
//! matching.
//!
//! ```
//! use asupersync::lab::{LabConfig, Recording, check_replay, replay};
//!
//! let program = |cx: asupersync::Cx| async move {
//!     let h = cx.spawn(|cx| async move { cx.trace("child ran") }).unwrap();
//!     h.join(&cx).await.unwrap();
//! };
//! // From seed and config: a second run gives the same trace.
//! let recording = replay(LabConfig::new(5), program).expect("deterministic");
//! // From the recorded schedule: forced dispatch order, same trace.
//! check_replay(&recording, program).expect("replays exactly");
//!
//! // A changed program is caught at its first differing event.
//! let changed = |cx: asupersync::Cx| async move {
//!     let h = cx.spawn(|cx| async move { cx.trace("child changed") }).unwrap();
//!     h.join(&cx).await.unwrap();
//! };
//! let mismatch = check_replay(&recording, changed).unwrap_err();
//! let divergence = mismatch.trace_divergence.expect("traces differ");
//! assert!(format!("{:?}", divergence.expected).contains("child ran"));
//! assert!(format!("{:?}", divergence.actual).contains("child changed"));
//! ```
//!
//! Rules:
//! 1. R1 (recording): [`Recording::record`] runs a body once and keeps its
//!    configuration, dispatch order, full trace, both fingerprints and its
//!    panic message (a panicking run is recorded, not propagated).
//! 2. R2 (two replays): [`replay`] reruns from the same seed and
//!    configuration (determinism, lab rule L1); [`check_replay`] reruns
//!    with the recorded dispatch order forced
//!    (`LabConfig::replay_schedule`), which replays the run even if the
//!    scheduling policy's random stream would choose differently.
//! 3. R3 (what matches): a replay matches when the schedule was followed
//!    (no `Divergence`), the schedule fingerprints are equal (so every event
//!    and its time are) and the run panicked with the same message, or did
//!    not panic in both runs.
//! 4. R4 (first divergence): on a mismatch, [`first_divergence`] names the
//!    first event index where the traces differ, with the expected and the
//!    actual event (`None` on the side whose trace ended first); events are
//!    compared by time and kind.

use std::fmt;
use std::future::Future;

use super::explore::{Capture, run_lab};
use super::{Divergence, LabConfig};
use crate::exec::cx::Cx;
use crate::trace::TraceEvent;
use crate::types::TaskId;

/// The first position at which two traces differ (rule R4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceDivergence {
    /// Index of the first differing event (0-based).
    pub index: usize,
    /// The event the reference trace has there (`None`: it ended).
    pub expected: Option<TraceEvent>,
    /// The event the new trace has there (`None`: it ended).
    pub actual: Option<TraceEvent>,
}

impl fmt::Display for TraceDivergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "traces diverge at event #{}: expected ", self.index)?;
        match &self.expected {
            Some(e) => write!(f, "{e}")?,
            None => write!(f, "the end of the trace")?,
        }
        write!(f, ", got ")?;
        match &self.actual {
            Some(e) => write!(f, "{e}"),
            None => write!(f, "the end of the trace"),
        }
    }
}

/// The first event where `actual` differs from `expected` (by time and
/// kind), or `None` if the traces are equal.
pub fn first_divergence(expected: &[TraceEvent], actual: &[TraceEvent]) -> Option<TraceDivergence> {
    let same = |a: &TraceEvent, b: &TraceEvent| a.time == b.time && a.kind == b.kind;
    let common = expected.len().min(actual.len());
    let index = (0..common)
        .find(|&i| !same(&expected[i], &actual[i]))
        .or_else(|| (expected.len() != actual.len()).then_some(common))?;
    Some(TraceDivergence {
        index,
        expected: expected.get(index).cloned(),
        actual: actual.get(index).cloned(),
    })
}

/// One recorded lab run (rule R1).
#[derive(Clone, Debug)]
pub struct Recording {
    config: LabConfig,
    schedule: Vec<TaskId>,
    trace: Vec<TraceEvent>,
    schedule_fingerprint: u64,
    canonical_fingerprint: u64,
    panic: Option<String>,
    divergence: Option<Divergence>,
}

impl Recording {
    /// Runs `body` once under `config` and records it. A panic (body, child,
    /// deadlock, step limit) is recorded as the run's outcome.
    pub fn record<F, Fut>(config: LabConfig, body: F) -> Self
    where
        F: FnOnce(Cx) -> Fut,
        Fut: Future,
    {
        let record = run_lab(
            config.clone(),
            body,
            Capture {
                trace: true,
                ..Capture::default()
            },
        );
        Recording {
            config,
            schedule: record.schedule,
            trace: record.trace.unwrap_or_default(),
            schedule_fingerprint: record.schedule_fingerprint,
            canonical_fingerprint: record.canonical_fingerprint,
            panic: record.panic,
            divergence: record.divergence,
        }
    }

    /// The configuration it ran with.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// [`config`](Self::config) with the recorded dispatch order forced.
    pub fn replay_config(&self) -> LabConfig {
        self.config.clone().replay_schedule(self.schedule.clone())
    }

    /// The task dispatched at each step.
    pub fn schedule(&self) -> &[TaskId] {
        &self.schedule
    }

    /// Every event of the run.
    pub fn trace(&self) -> &[TraceEvent] {
        &self.trace
    }

    /// The run's schedule fingerprint.
    pub fn fingerprint(&self) -> u64 {
        self.schedule_fingerprint
    }

    /// The run's canonical (Foata) fingerprint.
    pub fn canonical_fingerprint(&self) -> u64 {
        self.canonical_fingerprint
    }

    /// Whether the run panicked.
    pub fn panicked(&self) -> bool {
        self.panic.is_some()
    }

    /// The run's panic message, if it panicked.
    pub fn panic_message(&self) -> Option<&str> {
        self.panic.as_deref()
    }

    /// Where the forced schedule of `config` (if any) could not be followed.
    pub fn divergence(&self) -> Option<&Divergence> {
        self.divergence.as_ref()
    }

    /// Compares a rerun against this recording (rule R3).
    fn compare(&self, rerun: Recording) -> Result<Recording, Box<ReplayMismatch>> {
        let matches = rerun.divergence.is_none()
            && rerun.schedule_fingerprint == self.schedule_fingerprint
            && rerun.panic == self.panic;
        if matches {
            return Ok(rerun);
        }
        Err(Box::new(ReplayMismatch {
            schedule_divergence: rerun.divergence.clone(),
            trace_divergence: first_divergence(&self.trace, &rerun.trace),
            expected_fingerprint: self.schedule_fingerprint,
            actual_fingerprint: rerun.schedule_fingerprint,
            expected_panic: self.panic.clone(),
            actual_panic: rerun.panic.clone(),
            rerun,
        }))
    }
}

/// How a replay failed to match its recording (returned boxed: it holds
/// the rerun).
#[derive(Clone, Debug)]
pub struct ReplayMismatch {
    /// Where the forced dispatch order could not be followed, if it could
    /// not.
    pub schedule_divergence: Option<Divergence>,
    /// The first differing trace event (`None` if the traces are equal and
    /// only the panic outcome differs).
    pub trace_divergence: Option<TraceDivergence>,
    /// Schedule fingerprint of the recording.
    pub expected_fingerprint: u64,
    /// Schedule fingerprint of the rerun.
    pub actual_fingerprint: u64,
    /// The recording's panic message.
    pub expected_panic: Option<String>,
    /// The rerun's panic message.
    pub actual_panic: Option<String>,
    /// The rerun itself.
    pub rerun: Recording,
}

impl fmt::Display for ReplayMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replay mismatch: fingerprint {:#018x} expected, {:#018x} actual",
            self.expected_fingerprint, self.actual_fingerprint
        )?;
        if let Some(d) = &self.schedule_divergence {
            write!(f, "\n  {d}")?;
        }
        if let Some(d) = &self.trace_divergence {
            write!(f, "\n  {d}")?;
        }
        if self.expected_panic != self.actual_panic {
            write!(
                f,
                "\n  panic: expected {:?}, got {:?}",
                self.expected_panic, self.actual_panic
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ReplayMismatch {}

/// Reruns `recording` with its dispatch order forced and compares (rules R2,
/// R3). `Ok` holds the rerun.
///
/// # Errors
/// A [`ReplayMismatch`] naming the schedule divergence and the first
/// differing event.
pub fn check_replay<F, Fut>(
    recording: &Recording,
    body: F,
) -> Result<Recording, Box<ReplayMismatch>>
where
    F: FnOnce(Cx) -> Fut,
    Fut: Future,
{
    let rerun = Recording::record(recording.replay_config(), body);
    recording.compare(rerun)
}

/// Runs `body` under `config` twice and checks that the second run replays
/// the first from seed and configuration alone (rules R2, R3). `Ok` holds
/// the first run's recording.
///
/// # Errors
/// A [`ReplayMismatch`] naming the first differing event.
pub fn replay<F, Fut>(config: LabConfig, body: F) -> Result<Recording, Box<ReplayMismatch>>
where
    F: Fn(Cx) -> Fut,
    Fut: Future,
{
    let first = Recording::record(config.clone(), &body);
    let second = Recording::record(config, &body);
    first.compare(second).map(|_| first)
}
