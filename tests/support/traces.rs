//! Hand-built traces for oracle tests: test ids and numbered events.

use asupersync::trace::{TraceEvent, TraceKind};
use asupersync::types::{ObligationId, RegionId, TaskId, Time};

/// Task `T<i>` (generation 0).
pub fn t(i: u32) -> TaskId {
    TaskId::new_for_test(i, 0)
}

/// Region `R<i>` (generation 0).
pub fn r(i: u32) -> RegionId {
    RegionId::new_for_test(i, 0)
}

/// Obligation `O<i>` (generation 0).
pub fn o(i: u32) -> ObligationId {
    ObligationId::new_for_test(i, 0)
}

/// Numbers a list of `(time in seconds, event)` into a trace.
pub fn trace(events: Vec<(u64, TraceKind)>) -> Vec<TraceEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, (secs, kind))| TraceEvent {
            seq: i as u64,
            time: Time::from_secs(secs),
            kind,
        })
        .collect()
}
