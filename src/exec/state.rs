//! A task cell's state word: one `AtomicU64` holding the wake state (rules
//! W1–W4 in `task_cell`), whether the future has started, the kernel's
//! attention bits (rule A1 in `kernel`) and the cancel lane hint.
//!
//! Layout (bit 0 lowest):
//! ```text
//!   bits 0..=2   lifecycle: IDLE 0, SCHEDULED 1, RUNNING 2, NOTIFIED 3, COMPLETE 4
//!   bit  3       STARTED           the future has been handed to a poll
//!   bit  4       ATTENTION         the next poll goes through the kernel (A1)
//!   bit  5       CANCEL_ATTENTION  ... if the task has not started (A1)
//!   bits 6..=8   cancel hint       severity + 1 of the strongest request (0: none)
//!   bit  9       REGISTERED        a light task the kernel has registered (LT1)
//!   bits 10..=63 reserved, always 0; planned (issue 12): 10 CANCEL_REQ,
//!                11 ACKED, 12 FINISHING, 13 FORCE_DROP, 14..=15 its cause,
//!                16 UNINTERRUPTIBLE, 17 JOIN_INTEREST, 18 JOIN_WAKER
//! ```
//!
//! Rules:
//! - SW1: after construction the word changes only by read-modify-writes:
//!   a single `fetch_or`/`fetch_and`, or a compare-and-swap loop
//!   ([`CellState::update`]) that rewrites only the bits its transition
//!   owns and keeps every other bit as read. No plain store, so every
//!   transition of every field has one modification order and none is lost
//!   to another's write.
//! - SW2: lifecycle edges: wake `IDLE → SCHEDULED` (the waker queues the
//!   task) or `RUNNING → NOTIFIED` (nothing else changes); run
//!   `SCHEDULED → RUNNING`; pending `RUNNING → IDLE` or
//!   `NOTIFIED → SCHEDULED` (the runner re-queues); completion
//!   `RUNNING | NOTIFIED → COMPLETE`, which is never left. Only the thread
//!   that made the run edge moves the lifecycle out of RUNNING or NOTIFIED.
//! - SW3: STARTED is set by the same compare-and-swap as the run edge and
//!   never cleared, so it is set exactly once, by the first run, and the
//!   snapshot that run replaces says whether the future was polled before.
//! - SW4: the kernel sets ATTENTION in one RMW, and CANCEL_ATTENTION
//!   together with the cancel hint in one RMW; the runner clears both
//!   attention bits in one RMW ([`CellState::take_attention`]) after its
//!   run edge and before it decides whether the poll goes through the
//!   kernel, so a bit set before that RMW is seen by this poll and a bit
//!   set after it by the next one.
//! - SW5: the cancel hint only rises (a request weaker than the stored one
//!   leaves it), is never reset, and fits `CancelKind::severity` (0..=5)
//!   plus one in its 3 bits.
//! - SW6: the reserved bits stay 0.
//! - SW7: REGISTERED is set by the kernel, in one RMW, while it holds the
//!   task's light-set lock and before it releases it (rule LT1 in
//!   `kernel::light`); it is never cleared. So a completion that sees it
//!   knows the task is registered without taking that lock; one that does
//!   not see it takes the lock, which decides.

use std::sync::atomic::{AtomicU64, Ordering};

const LIFECYCLE: u64 = 0b111;
pub(crate) const IDLE: u64 = 0;
pub(crate) const SCHEDULED: u64 = 1;
pub(crate) const RUNNING: u64 = 2;
pub(crate) const NOTIFIED: u64 = 3;
pub(crate) const COMPLETE: u64 = 4;

const STARTED: u64 = 1 << 3;
const ATTENTION: u64 = 1 << 4;
const CANCEL_ATTENTION: u64 = 1 << 5;
const HINT_SHIFT: u32 = 6;
const HINT: u64 = 0b111 << HINT_SHIFT;
const REGISTERED: u64 = 1 << 9;
/// Rule SW6: bits no transition may set yet.
const RESERVED: u64 = !(LIFECYCLE | STARTED | ATTENTION | CANCEL_ATTENTION | HINT | REGISTERED);

/// One reading of a [`CellState`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl Snapshot {
    /// The lifecycle field (`IDLE` .. `COMPLETE`).
    pub(crate) fn lifecycle(self) -> u64 {
        self.0 & LIFECYCLE
    }

    fn with_lifecycle(self, lifecycle: u64) -> Self {
        Self((self.0 & !LIFECYCLE) | lifecycle)
    }

    pub(crate) fn is_started(self) -> bool {
        self.0 & STARTED != 0
    }

    pub(crate) fn has_attention(self) -> bool {
        self.0 & ATTENTION != 0
    }

    pub(crate) fn has_cancel_attention(self) -> bool {
        self.0 & CANCEL_ATTENTION != 0
    }

    /// SW7: the kernel registered this (light) task.
    pub(crate) fn is_registered(self) -> bool {
        self.0 & REGISTERED != 0
    }

    /// The cancel lane hint: the severity of the strongest cancel request.
    pub(crate) fn cancel_severity(self) -> Option<u8> {
        // The field is 3 bits wide, so the cast keeps every value.
        (((self.0 & HINT) >> HINT_SHIFT) as u8).checked_sub(1)
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("lifecycle", &self.lifecycle())
            .field("started", &self.is_started())
            .field("attention", &self.has_attention())
            .field("cancel_attention", &self.has_cancel_attention())
            .field("cancel_severity", &self.cancel_severity())
            .finish()
    }
}

/// What a wake must do after its transition (rule W1).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// IDLE → SCHEDULED: the waker queues the task.
    Queue,
    /// Nothing to queue: RUNNING → NOTIFIED, or already queued or complete.
    Done,
}

/// What the runner must do after a pending poll (rule W2).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    /// RUNNING → IDLE.
    Idle,
    /// NOTIFIED → SCHEDULED: woken during the poll; the runner re-queues.
    Requeue,
}

/// The state word (rules SW1–SW7).
pub(crate) struct CellState(AtomicU64);

impl CellState {
    /// A vacant cell: SCHEDULED (wakes before the spawner queues it are
    /// absorbed, W1), not started, with attention (A1: the kernel clears it
    /// at registration when the first poll may skip it).
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(SCHEDULED | ATTENTION))
    }

    /// A relaxed reading (lane hints).
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Ordering::Relaxed))
    }

    /// SW1: the compare-and-swap loop every multi-field transition uses.
    /// `f` maps the current value to an action and, if the word must
    /// change, its next value; it may run several times.
    fn update<T>(&self, mut f: impl FnMut(Snapshot) -> (T, Option<Snapshot>)) -> T {
        let mut current = Snapshot(self.0.load(Ordering::Acquire));
        loop {
            let (action, next) = f(current);
            let Some(next) = next else {
                return action;
            };
            debug_assert_eq!(next.0 & RESERVED, 0, "rule SW6: a reserved bit was set");
            match self.0.compare_exchange_weak(
                current.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return action,
                Err(actual) => current = Snapshot(actual),
            }
        }
    }

    /// W1–W4, SW2: the wake transition.
    pub(crate) fn wake(&self) -> Wake {
        self.update(|s| match s.lifecycle() {
            IDLE => (Wake::Queue, Some(s.with_lifecycle(SCHEDULED))),
            RUNNING => (Wake::Done, Some(s.with_lifecycle(NOTIFIED))),
            _ => (Wake::Done, None),
        })
    }

    /// SW2, SW3: SCHEDULED → RUNNING, setting STARTED. Returns the
    /// snapshot it replaced, or `None` if the task was not SCHEDULED
    /// (completed, or a stale queue entry: W4).
    pub(crate) fn start_running(&self) -> Option<Snapshot> {
        self.update(|s| {
            if s.lifecycle() == SCHEDULED {
                let next = Snapshot(s.with_lifecycle(RUNNING).0 | STARTED);
                (Some(s), Some(next))
            } else {
                (None, None)
            }
        })
    }

    /// SW2: after a pending poll, RUNNING → IDLE, or NOTIFIED → SCHEDULED
    /// (W2: woken during the poll; the caller re-queues).
    pub(crate) fn pending(&self) -> Pending {
        self.update(|s| match s.lifecycle() {
            RUNNING => (Pending::Idle, Some(s.with_lifecycle(IDLE))),
            NOTIFIED => (Pending::Requeue, Some(s.with_lifecycle(SCHEDULED))),
            other => unreachable!("rule SW2: a pending poll left the task in state {other}"),
        })
    }

    /// SW2: the poll's holder completes the task (W4: never left).
    pub(crate) fn complete(&self) {
        self.update(|s| ((), Some(s.with_lifecycle(COMPLETE))));
    }

    /// SW4 (A1): the kernel asks the next poll to go through it.
    pub(crate) fn request_attention(&self) {
        self.0.fetch_or(ATTENTION, Ordering::Release);
    }

    /// SW7 (LT1): the kernel registered this light task.
    pub(crate) fn mark_registered(&self) {
        self.0.fetch_or(REGISTERED, Ordering::Release);
    }

    /// SW7: whether the kernel registered this light task (a stale `false`
    /// only sends the caller to the light set's lock, which decides).
    pub(crate) fn registered(&self) -> bool {
        Snapshot(self.0.load(Ordering::Acquire)).is_registered()
    }

    /// A1 at registration: the first poll may skip the kernel.
    pub(crate) fn clear_attention(&self) {
        self.0.fetch_and(!ATTENTION, Ordering::Relaxed);
    }

    /// SW4: the runner takes both attention bits (clearing them) and gets
    /// the snapshot they were taken from.
    pub(crate) fn take_attention(&self) -> Snapshot {
        Snapshot(
            self.0
                .fetch_and(!(ATTENTION | CANCEL_ATTENTION), Ordering::AcqRel),
        )
    }

    /// SW4, SW5 (A1): a cancel request of `severity`: sets
    /// CANCEL_ATTENTION and raises the cancel hint, in one RMW.
    pub(crate) fn cancel_requested(&self, severity: u8) {
        let hint = (u64::from(severity) + 1).min(HINT >> HINT_SHIFT) << HINT_SHIFT;
        self.update(|s| {
            let raised = (s.0 & HINT).max(hint);
            (
                (),
                Some(Snapshot((s.0 & !HINT) | raised | CANCEL_ATTENTION)),
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(s: &CellState) -> u64 {
        s.0.load(Ordering::Relaxed)
    }

    #[test]
    fn a_vacant_cell_is_scheduled_with_attention_and_not_started() {
        let s = CellState::new().load();
        assert_eq!(s.lifecycle(), SCHEDULED);
        assert!(s.has_attention() && !s.has_cancel_attention() && !s.is_started());
        assert_eq!(s.cancel_severity(), None);
    }

    #[test]
    fn wake_queues_only_an_idle_task_and_notifies_a_running_one() {
        let s = CellState::new();
        // SCHEDULED: absorbed.
        assert_eq!(s.wake(), Wake::Done);
        assert_eq!(s.load().lifecycle(), SCHEDULED);
        s.start_running().unwrap();
        assert_eq!(s.wake(), Wake::Done);
        assert_eq!(s.load().lifecycle(), NOTIFIED);
        // NOTIFIED: absorbed.
        assert_eq!(s.wake(), Wake::Done);
        assert_eq!(s.load().lifecycle(), NOTIFIED);
        assert_eq!(s.pending(), Pending::Requeue);
        assert_eq!(s.load().lifecycle(), SCHEDULED);
        s.start_running().unwrap();
        assert_eq!(s.pending(), Pending::Idle);
        assert_eq!(s.load().lifecycle(), IDLE);
        assert_eq!(s.wake(), Wake::Queue);
        assert_eq!(s.load().lifecycle(), SCHEDULED);
    }

    #[test]
    fn start_running_needs_scheduled() {
        let s = CellState::new();
        s.start_running().unwrap();
        assert!(s.start_running().is_none(), "RUNNING");
        s.pending();
        assert!(s.start_running().is_none(), "IDLE");
        s.wake();
        s.start_running().unwrap();
        s.complete();
        assert!(s.start_running().is_none(), "COMPLETE");
    }

    #[test]
    fn registered_is_set_once_and_survives_every_transition() {
        let s = CellState::new();
        assert!(!s.registered());
        s.mark_registered();
        assert!(s.registered());
        s.start_running().unwrap();
        s.cancel_requested(3);
        s.take_attention();
        s.wake();
        s.pending();
        s.start_running().unwrap();
        s.complete();
        assert!(s.registered(), "SW7: never cleared");
        assert_eq!(s.load().lifecycle(), COMPLETE);
    }

    #[test]
    fn started_is_set_exactly_once_by_the_first_run() {
        let s = CellState::new();
        s.wake();
        assert!(!s.load().is_started(), "a wake does not start the task");
        let first = s.start_running().unwrap();
        assert!(!first.is_started(), "the first run sees an unstarted task");
        assert!(s.load().is_started());
        s.wake();
        s.pending();
        let second = s.start_running().unwrap();
        assert!(second.is_started(), "later runs see it started");
        s.complete();
        assert!(s.load().is_started(), "never cleared");
    }

    #[test]
    fn complete_is_terminal_for_every_transition() {
        for woken in [false, true] {
            let s = CellState::new();
            s.start_running().unwrap();
            if woken {
                s.wake();
            }
            s.complete();
            assert_eq!(s.load().lifecycle(), COMPLETE);
            assert_eq!(s.wake(), Wake::Done);
            assert!(s.start_running().is_none());
            s.request_attention();
            s.cancel_requested(3);
            assert_eq!(s.load().lifecycle(), COMPLETE);
        }
    }

    #[test]
    fn attention_bits_are_taken_in_one_rmw_and_kept_by_lifecycle_edges() {
        let s = CellState::new();
        s.clear_attention();
        assert!(!s.load().has_attention());
        s.request_attention();
        s.cancel_requested(0);
        // Lifecycle edges keep the other bits (SW1).
        s.start_running().unwrap();
        s.wake();
        s.pending();
        let before = s.load();
        assert!(before.has_attention() && before.has_cancel_attention());
        let taken = s.take_attention();
        assert_eq!(taken, before);
        let after = s.load();
        assert!(!after.has_attention() && !after.has_cancel_attention());
        assert_eq!(after.lifecycle(), SCHEDULED);
        assert!(after.is_started());
        assert_eq!(
            after.cancel_severity(),
            Some(0),
            "taking attention keeps the hint"
        );
    }

    #[test]
    fn cancel_severity_only_rises() {
        let s = CellState::new();
        s.cancel_requested(2);
        assert_eq!(s.load().cancel_severity(), Some(2));
        s.cancel_requested(1);
        assert_eq!(s.load().cancel_severity(), Some(2), "a weaker request");
        s.take_attention();
        s.cancel_requested(0);
        assert_eq!(s.load().cancel_severity(), Some(2));
        assert!(s.load().has_cancel_attention(), "set again by any request");
        s.cancel_requested(5);
        assert_eq!(s.load().cancel_severity(), Some(5));
        s.cancel_requested(4);
        assert_eq!(s.load().cancel_severity(), Some(5));
        // Out of range saturates instead of spilling into other bits.
        s.cancel_requested(200);
        assert_eq!(s.load().cancel_severity(), Some(6));
        assert_eq!(word(&s) & RESERVED, 0);
    }

    #[test]
    fn every_cancel_kind_severity_fits_the_hint() {
        let s = CellState::new();
        for severity in 0..=5 {
            s.cancel_requested(severity);
            assert_eq!(s.load().cancel_severity(), Some(severity));
        }
        assert_eq!(word(&s) & RESERVED, 0, "SW6");
    }

    #[test]
    fn concurrent_transitions_lose_no_bit() {
        use std::sync::Arc;
        let s = Arc::new(CellState::new());
        s.start_running().unwrap();
        let threads: Vec<_> = (0..4u8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        s.wake();
                        s.request_attention();
                        s.cancel_requested(i);
                    }
                })
            })
            .collect();
        // The runner keeps cycling while the others hammer the word.
        for _ in 0..1000 {
            if s.pending() == Pending::Requeue || s.load().lifecycle() == SCHEDULED {
                s.start_running().unwrap();
            } else {
                s.wake();
                s.start_running().unwrap();
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        let end = s.load();
        assert!(end.has_attention() && end.has_cancel_attention());
        assert_eq!(end.cancel_severity(), Some(3), "the strongest request");
        assert!(end.is_started());
        assert!(matches!(end.lifecycle(), RUNNING | NOTIFIED));
    }
}
