//! Execution traces: what the kernel and the driver did, in order, with
//! runtime time.
//!
//! The kernel records events only when tracing is enabled (the lab turns it
//! on; production runtimes leave it off, so the cost there is one branch).
//!
//! Two fingerprints identify a run:
//! - the *schedule fingerprint* hashes every event in order: equal for equal
//!   schedules;
//! - the *canonical fingerprint* hashes the trace's Foata normal form: events
//!   are layered by their dependencies (two events depend on each other when
//!   their resource footprints — tasks, regions, obligations — intersect, or
//!   when either moves time), each layer is sorted, and the layers are hashed
//!   in order. Traces that differ only by swapping adjacent independent
//!   events get the same canonical fingerprint.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;

use crate::types::{Budget, CancelKind, ForceDropCause, ObligationId, RegionId, TaskId, Time};

/// How a task ended, as recorded in the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompletionKind {
    /// Returned a value.
    Ok,
    /// Cancelled with this kind.
    Cancelled(CancelKind),
    /// Panicked.
    Panicked,
}

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TraceKind {
    /// A task was created.
    Spawn {
        /// The new task.
        task: TaskId,
        /// Its region.
        region: RegionId,
    },
    /// The driver dispatched a task (it is about to be polled).
    Poll {
        /// The task.
        task: TaskId,
    },
    /// A poll returned `Pending` (an await point).
    Pending {
        /// The task.
        task: TaskId,
    },
    /// A task was made runnable.
    Wake {
        /// The task.
        task: TaskId,
    },
    /// A task completed.
    Complete {
        /// The task.
        task: TaskId,
        /// How it ended.
        outcome: CompletionKind,
    },
    /// Cancellation was requested (or strengthened) for a task.
    CancelRequest {
        /// The task.
        task: TaskId,
        /// The (possibly strengthened) kind now stored.
        kind: CancelKind,
    },
    /// A task acknowledged its cancellation.
    CancelAck {
        /// The task.
        task: TaskId,
        /// The kind acknowledged.
        kind: CancelKind,
    },
    /// A region was created.
    RegionCreate {
        /// The region.
        region: RegionId,
        /// Its parent (`None` for a root).
        parent: Option<RegionId>,
    },
    /// A region was cancelled (or its reason strengthened).
    RegionCancel {
        /// The region.
        region: RegionId,
        /// The kind now stored.
        kind: CancelKind,
    },
    /// A region closed.
    RegionClose {
        /// The region.
        region: RegionId,
    },
    /// An obligation was reserved.
    ObligationReserve {
        /// The obligation.
        obligation: ObligationId,
        /// The holder.
        task: TaskId,
        /// Its region.
        region: RegionId,
    },
    /// An obligation was committed.
    ObligationCommit {
        /// The obligation.
        obligation: ObligationId,
    },
    /// An obligation was aborted.
    ObligationAbort {
        /// The obligation.
        obligation: ObligationId,
    },
    /// An obligation leaked.
    ObligationLeak {
        /// The obligation.
        obligation: ObligationId,
        /// Its holder.
        task: TaskId,
    },
    /// An obligation changed hands: `Obligation::transfer` gave it to task
    /// `to` in `region`, or (`to: None`) its region holds it: an owned
    /// permit's obligation, handed to its region right after its
    /// `ObligationReserve` (the permit may move to any task; a pending one
    /// is a leak when the region closes).
    ObligationTransfer {
        /// The obligation.
        obligation: ObligationId,
        /// The task that held it (`None` if its region held it).
        from: Option<TaskId>,
        /// The task that holds it now (`None`: its region does).
        to: Option<TaskId>,
        /// The region it belonged to.
        from_region: RegionId,
        /// The region it belongs to now.
        region: RegionId,
    },
    /// Timers fired.
    TimerFire {
        /// How many.
        count: usize,
    },
    /// Virtual time moved forward.
    TimeAdvance {
        /// The new time.
        to: Time,
    },
    /// The runtime dropped a task's future instead of polling it.
    ForceDrop {
        /// The task.
        task: TaskId,
        /// Why.
        cause: ForceDropCause,
    },
    /// A chaos injection (lab only).
    Chaos {
        /// The task it targeted.
        task: TaskId,
        /// What was injected.
        what: &'static str,
    },
    /// A message recorded by user code through `Cx::trace`.
    User {
        /// The task that recorded it.
        task: TaskId,
        /// The message.
        message: String,
    },
    /// The budget a task was created with (right after its `Spawn`; the
    /// region's budget already met in).
    TaskBudget {
        /// The task.
        task: TaskId,
        /// Its budget.
        budget: Budget,
    },
    /// The budget a region was created with (right after its
    /// `RegionCreate`; the parent's budget already met in).
    RegionBudget {
        /// The region.
        region: RegionId,
        /// Its budget.
        budget: Budget,
    },
    /// A finalizer was registered on a region (`defer_sync`/`defer_async`).
    FinalizerRegister {
        /// The region.
        region: RegionId,
    },
    /// A region's finalizer was taken off its stack to run (it runs to its
    /// end, or panics, before the next one is taken).
    FinalizerRun {
        /// The region.
        region: RegionId,
    },
}

/// A trace event with its position and time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceEvent {
    /// Position in the trace (0-based).
    pub seq: u64,
    /// Runtime time when it happened.
    pub time: Time,
    /// What happened.
    pub kind: TraceKind,
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} @{} {:?}", self.seq, self.time, self.kind)
    }
}

/// A resource an event touches, for the independence relation.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// A task.
    Task(TaskId),
    /// A region.
    Region(RegionId),
    /// An obligation.
    Obligation(ObligationId),
}

/// Most resources one event touches (an obligation transfer: the
/// obligation, two tasks, two regions).
const FOOTPRINT_MAX: usize = 5;

/// The resources one event touches: at most five, stored inline (no
/// allocation — fingerprints compute one per event).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    items: [Resource; FOOTPRINT_MAX],
    len: u8,
}

impl Footprint {
    fn of(resources: &[Resource]) -> Self {
        let filler = resources[0];
        let mut items = [filler; FOOTPRINT_MAX];
        items[..resources.len()].copy_from_slice(resources);
        Self {
            items,
            len: resources.len() as u8,
        }
    }

    /// `resources` without the `None`s and repeats.
    fn of_some(resources: &[Option<Resource>]) -> Self {
        let mut f = Self::of(&[resources[0].expect("the first resource is always there")]);
        for r in resources[1..].iter().flatten() {
            if !f.contains(r) {
                f.items[usize::from(f.len)] = *r;
                f.len += 1;
            }
        }
        f
    }

    /// The resources, as a slice.
    pub fn as_slice(&self) -> &[Resource] {
        &self.items[..usize::from(self.len)]
    }

    /// Whether `r` is one of them.
    pub fn contains(&self, r: &Resource) -> bool {
        self.as_slice().contains(r)
    }

    /// Iterates over the resources.
    pub fn iter(&self) -> std::slice::Iter<'_, Resource> {
        self.as_slice().iter()
    }
}

impl IntoIterator for Footprint {
    type Item = Resource;
    type IntoIter = std::iter::Take<std::array::IntoIter<Resource, FOOTPRINT_MAX>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter().take(usize::from(self.len))
    }
}

impl TraceKind {
    /// The resources this event touches. `None` means "everything" (time
    /// moves): such an event depends on every other.
    #[doc(hidden)]
    pub fn footprint(&self) -> Option<Footprint> {
        use Resource::*;
        use TraceKind as K;
        let f = Footprint::of;
        Some(match self {
            K::Spawn { task, region } => f(&[Task(*task), Region(*region)]),
            K::Poll { task }
            | K::Pending { task }
            | K::Wake { task }
            | K::Complete { task, .. }
            | K::CancelRequest { task, .. }
            | K::CancelAck { task, .. }
            | K::ForceDrop { task, .. }
            | K::Chaos { task, .. }
            | K::User { task, .. }
            | K::TaskBudget { task, .. } => f(&[Task(*task)]),
            K::RegionCreate {
                region,
                parent: Some(parent),
            } => f(&[Region(*region), Region(*parent)]),
            K::RegionCreate {
                region,
                parent: None,
            } => f(&[Region(*region)]),
            K::RegionCancel { region, .. }
            | K::RegionClose { region }
            | K::RegionBudget { region, .. }
            | K::FinalizerRegister { region }
            | K::FinalizerRun { region } => f(&[Region(*region)]),
            K::ObligationReserve {
                obligation,
                task,
                region,
            } => f(&[Obligation(*obligation), Task(*task), Region(*region)]),
            K::ObligationCommit { obligation } | K::ObligationAbort { obligation } => {
                f(&[Obligation(*obligation)])
            }
            K::ObligationLeak { obligation, task } => f(&[Obligation(*obligation), Task(*task)]),
            K::ObligationTransfer {
                obligation,
                from,
                to,
                from_region,
                region,
            } => Footprint::of_some(&[
                Some(Obligation(*obligation)),
                from.map(Task),
                to.map(Task),
                Some(Region(*from_region)),
                Some(Region(*region)),
            ]),
            K::TimerFire { .. } | K::TimeAdvance { .. } => return None,
        })
    }

    /// Whether two events may be swapped without changing the run.
    #[doc(hidden)]
    pub fn independent_of(&self, other: &TraceKind) -> bool {
        match (self.footprint(), other.footprint()) {
            (Some(a), Some(b)) => !a.iter().any(|r| b.contains(r)),
            _ => false,
        }
    }
}

/// FNV-1a, 64 bit: small, stable across platforms and releases (unlike
/// `DefaultHasher`), which fingerprints need.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) const fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        Fnv::bytes(self, bytes);
    }
}

fn kind_hash(kind: &TraceKind) -> u64 {
    use std::hash::Hash;
    let mut h = Fnv::new();
    kind.hash(&mut h);
    h.finish()
}

/// The schedule fingerprint of a sequence of events (order and time matter).
pub fn schedule_fingerprint(events: &[TraceEvent]) -> u64 {
    let mut h = Fnv::new();
    for e in events {
        h.u64(e.time.as_nanos());
        h.u64(kind_hash(&e.kind));
    }
    h.finish()
}

/// The Foata layers of a trace: `layers[i]` holds the indices of the events
/// in layer `i`, each layer sorted canonically.
#[doc(hidden)]
pub fn foata_layers(events: &[TraceEvent]) -> Vec<Vec<usize>> {
    let mut last_layer: HashMap<Resource, usize, BuildHasherDefault<Fnv>> = HashMap::default();
    let mut barrier = 0usize; // first layer allowed after the latest global event
    let mut deepest = 0usize;
    let mut layers: Vec<Vec<usize>> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let layer = match e.kind.footprint() {
            None => {
                let l = if layers.is_empty() { 0 } else { deepest + 1 };
                barrier = l + 1;
                l
            }
            Some(resources) => {
                let after = resources
                    .iter()
                    .filter_map(|r| last_layer.get(r).map(|l| l + 1))
                    .max()
                    .unwrap_or(0);
                let l = after.max(barrier);
                for r in resources {
                    last_layer.insert(r, l);
                }
                l
            }
        };
        deepest = deepest.max(layer);
        if layers.len() <= layer {
            layers.resize_with(layer + 1, Vec::new);
        }
        layers[layer].push(i);
    }
    for layer in &mut layers {
        layer.sort_by_key(|&i| kind_hash(&events[i].kind));
    }
    layers
}

/// The canonical fingerprint: the hash of the trace's Foata normal form.
/// Independent of the order of commuting independent events (and of time,
/// which only the schedule fingerprint covers).
pub fn canonical_fingerprint(events: &[TraceEvent]) -> u64 {
    let mut h = Fnv::new();
    for layer in foata_layers(events) {
        h.u64(layer.len() as u64);
        for i in layer {
            h.u64(kind_hash(&events[i].kind));
        }
    }
    h.finish()
}

/// Records events while enabled.
#[derive(Default)]
pub(crate) struct TraceBuffer {
    events: Vec<TraceEvent>,
}

impl TraceBuffer {
    pub(crate) fn push(&mut self, time: Time, kind: TraceKind) {
        let seq = self.events.len() as u64;
        self.events.push(TraceEvent { seq, time, kind });
    }

    pub(crate) fn events(&self) -> &[TraceEvent] {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, kind: TraceKind) -> TraceEvent {
        TraceEvent {
            seq,
            time: Time::ZERO,
            kind,
        }
    }

    fn t(i: u32) -> TaskId {
        TaskId::new_for_test(i, 0)
    }

    #[test]
    fn swapping_independent_events_keeps_the_canonical_fingerprint() {
        let a = vec![
            ev(0, TraceKind::Poll { task: t(1) }),
            ev(1, TraceKind::Poll { task: t(2) }),
        ];
        let b = vec![
            ev(0, TraceKind::Poll { task: t(2) }),
            ev(1, TraceKind::Poll { task: t(1) }),
        ];
        assert_eq!(canonical_fingerprint(&a), canonical_fingerprint(&b));
        assert_ne!(schedule_fingerprint(&a), schedule_fingerprint(&b));
    }

    #[test]
    fn swapping_dependent_events_changes_the_canonical_fingerprint() {
        let a = vec![
            ev(0, TraceKind::Poll { task: t(1) }),
            ev(1, TraceKind::Pending { task: t(1) }),
        ];
        let b = vec![
            ev(0, TraceKind::Pending { task: t(1) }),
            ev(1, TraceKind::Poll { task: t(1) }),
        ];
        assert_ne!(canonical_fingerprint(&a), canonical_fingerprint(&b));
    }

    #[test]
    fn time_advances_are_barriers() {
        let a = vec![
            ev(0, TraceKind::Poll { task: t(1) }),
            ev(
                1,
                TraceKind::TimeAdvance {
                    to: Time::from_secs(1),
                },
            ),
            ev(2, TraceKind::Poll { task: t(2) }),
        ];
        let b = vec![
            ev(0, TraceKind::Poll { task: t(2) }),
            ev(
                1,
                TraceKind::TimeAdvance {
                    to: Time::from_secs(1),
                },
            ),
            ev(2, TraceKind::Poll { task: t(1) }),
        ];
        assert_ne!(canonical_fingerprint(&a), canonical_fingerprint(&b));
        let layers = foata_layers(&a);
        assert_eq!(layers, vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn layers_follow_shared_resources() {
        let events = vec![
            ev(0, TraceKind::Poll { task: t(1) }),
            ev(1, TraceKind::Poll { task: t(2) }),
            ev(2, TraceKind::Pending { task: t(1) }),
            ev(
                3,
                TraceKind::Spawn {
                    task: t(3),
                    region: RegionId::new_for_test(0, 0),
                },
            ),
        ];
        let layers = foata_layers(&events);
        assert_eq!(layers.len(), 2);
        assert!(layers[0].contains(&0) && layers[0].contains(&1) && layers[0].contains(&3));
        assert_eq!(layers[1], vec![2]);
    }
}
