//! A task cell's state word: one `AtomicU64` holding the wake state (rules
//! W1–W4 in `task_cell`), whether the future has started, the kernel's
//! attention bits (rule A1 in `kernel`), the cancel lane hint, and two
//! fields fixed when the cell is made (SW13), kept here rather than in
//! bytes of their own.
//!
//! Layout (bit 0 lowest):
//! ```text
//!   bits 0..=2   lifecycle: IDLE 0, SCHEDULED 1, RUNNING 2, NOTIFIED 3, COMPLETE 4
//!   bit  3       STARTED           the future has been handed to a poll
//!   bit  4       ATTENTION         the next poll goes through the kernel (A1)
//!   bit  5       CANCEL_ATTENTION  ... if the task has not started (A1)
//!   bits 6..=8   cancel hint       severity + 1 of the strongest request (0: none)
//!   bit  9       REGISTERED        a light task the kernel has registered (LT1)
//!   bit  10      JOIN_INTEREST     the task's `TaskHandle` exists (SW10)
//!   bit  11      JOIN_WAKER        the join slot's waker cell holds the joiner's
//!                                  waker, readable by the completion (SW11, SW12)
//!   bit  12      FINISHED          the join slot's output cell holds the task's
//!                                  end, published by the completion (SW9)
//!   bit  13      FAST_POLLS        constant: a poll may skip the kernel when
//!                                  no attention bit is set (A1; spawned tasks), SW13
//!   bits 14..=17 LIGHT_SHARD       constant: the shard of the light set this
//!                                  cell joins (LT9), SW13
//!   bit  18      OWNS_REGIONS      a light task that opened a light region
//!                                  without being registered (SW15, LR5)
//!   bits 19..=63 reserved, always 0
//! ```
//!
//! A light task's cancel request is its cancel hint (the atomic flag)
//! plus the reason, grace deadline and acknowledgement in the cell's
//! cancel slot (`cancel_slot`, rule LT7 in `kernel::light`), written under
//! the slot's lock after a reading of COMPLETE and REGISTERED here.
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
//!   together with the cancel hint in one RMW; a runner whose run edge
//!   replaced a value with either bit set clears both in one RMW
//!   ([`CellState::take_attention`]) before it decides whether the poll
//!   goes through the kernel, so a bit set before that RMW is seen by this
//!   poll and a bit set after it by the next one. A run edge that replaced
//!   neither bit takes nothing: a bit set since then is still set at the
//!   next run edge (most polls take no attention RMW at all).
//! - SW5: the cancel hint only rises (a request weaker than the stored one
//!   leaves it), is never reset, and fits `CancelKind::severity` (0..=5)
//!   plus one in its 3 bits.
//! - SW6: the reserved bits stay 0.
//! - SW13: FAST_POLLS and LIGHT_SHARD are written once, by the constructor
//!   ([`CellState::vacant`]), and never changed: no transition names them,
//!   so every RMW keeps them (SW1). Any reading of the word, relaxed or a
//!   transition's snapshot, gives their true values (the cell is published
//!   to other threads only after it is built).
//! - SW14: a cancel request on a light task (an abort, or a region
//!   cancel's sweep, LT10) raises the cancel hint and makes the
//!   wake transition in one RMW (`cancel_requested_waking`), while it holds
//!   its cancel slot's lock and before it stores the reason there: a run
//!   that this wake queues, or the run of a NOTIFIED task, reads the slot
//!   under that lock, so it sees the reason; the aborting thread queues the
//!   task (if the edge said so) only after it stored the reason and let the
//!   lock go. A registered task makes no wake edge here (the kernel wakes
//!   it with its own request).
//! - SW15: OWNS_REGIONS is set by the task itself, in one RMW
//!   ([`CellState::mark_owner`]), before it opens a light region while
//!   light, and never cleared. A light cancel request (SW14) reads it after
//!   its own RMW on the word; the owner reads the cancel hint and
//!   REGISTERED in the value its RMW replaced. The two RMWs are ordered on
//!   the one word, so either the request sees the owner's bit (and has the
//!   kernel register the owner, which carries the cancel to its regions:
//!   LR5) or the owner sees the request (and registers itself before it
//!   opens the region, as a cancelled owner does).
//! - SW8: a wake absorbed by a task already SCHEDULED or NOTIFIED still
//!   writes the word (its compare-and-swap stores the value it read), so,
//!   like every other wake, it is a release that the serving run edge's
//!   acquire reads from: whatever the waker published before waking is
//!   visible to the poll that serves the wake, also when several wakes
//!   are merged into one poll (the `Waker::wake` contract).
//! - SW7: REGISTERED is set by the kernel, in one RMW, while it holds the
//!   task's light-set lock and before it releases it (rule LT1 in
//!   `kernel::light`); it is never cleared. So a completion that sees it
//!   knows the task is registered without taking that lock; one that does
//!   not see it takes the lock, which decides.
//!
//! The join hand-off (`join`, rules J1–J4) is three bits of this word and
//! two `UnsafeCell`s: the output cell (the cell's stage, where the future
//! was: `join::OutputCell`) and the join slot's waker cell; no lock. Ownership of each cell moves only with an RMW of
//! the word (the protocol of tokio's `runtime/task/state.rs`, written
//! anew for this cell; `COMPLETE` above is set earlier, before the
//! kernel hears of the completion, so the output has its own bit):
//! - SW9: the completion writes the output cell only before it sets
//!   FINISHED, which it does once, in one RMW (release) that also reads
//!   JOIN_INTEREST ([`CellState::publish_output`]). If that reading has
//!   JOIN_INTEREST, the output cell belongs to the handle from then on,
//!   which reads it only after an acquiring reading of FINISHED and takes
//!   it at most once (J1); if not, the handle is gone and the output
//!   belongs to the completion, which disposes of it as the handle's drop
//!   would have (J3, J4). FINISHED is never cleared.
//! - SW10: JOIN_INTEREST is set at construction and cleared once, by the
//!   handle's drop, in one RMW ([`CellState::drop_join_interest`]) that
//!   also clears JOIN_WAKER if FINISHED is clear. A drop that reads
//!   FINISHED owns the output cell (SW9 saw the interest) and disposes of
//!   it; one that does not leaves it to the completion (SW9 will not see
//!   the interest). So exactly one side disposes of an output nobody
//!   joined. A light task's completion that finds JOIN_INTEREST clear
//!   before it publishes makes no output at all and leaves FINISHED clear
//!   (nobody can read either any more).
//! - SW11: the handle writes the waker cell only while JOIN_WAKER is
//!   clear, and sets JOIN_WAKER (release, publishing the write) only by an
//!   RMW that finds FINISHED clear ([`CellState::set_join_waker`]); it
//!   clears JOIN_WAKER, to replace the waker, only by an RMW that finds
//!   FINISHED clear ([`CellState::unset_join_waker`]). A failed RMW means
//!   the output is there. While JOIN_WAKER is clear the completion never
//!   touches the waker cell.
//! - SW12: while JOIN_WAKER is set, the handle and the completion only
//!   read the waker cell. The completion reads it only if its FINISHED RMW
//!   (SW9) found JOIN_WAKER set (so the waker was stored before the
//!   completion: it is woken iff it was set before FINISHED), wakes it by
//!   reference, then clears JOIN_WAKER in one RMW
//!   ([`CellState::waker_woken`]), handing the cell back to the handle; if
//!   that RMW finds JOIN_INTEREST clear (the handle's drop, SW10, came
//!   after FINISHED and left the waker alone), the completion drops the
//!   waker. Otherwise the handle drops it when it next finds JOIN_WAKER
//!   clear, or the cell's destructor does.

// The one import the loom models (`loom_tests` below) replace.
use crate::loom::sync::atomic::{AtomicU64, Ordering};

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
const JOIN_INTEREST: u64 = 1 << 10;
const JOIN_WAKER: u64 = 1 << 11;
const FINISHED: u64 = 1 << 12;
/// SW13: constant from construction.
const FAST_POLLS: u64 = 1 << 13;
const SHARD_SHIFT: u32 = 14;
/// SW13: constant from construction; 4 bits.
const LIGHT_SHARD: u64 = 0b1111 << SHARD_SHIFT;
/// SW15: set once, by the owner of a light region.
const OWNS_REGIONS: u64 = 1 << 18;
// SW13: every shard index fits the field.
const _: () = assert!(crate::kernel::light::SHARDS as u64 <= (LIGHT_SHARD >> SHARD_SHIFT) + 1);
/// Rule SW6: bits no transition may set yet.
const RESERVED: u64 = !(LIFECYCLE
    | STARTED
    | ATTENTION
    | CANCEL_ATTENTION
    | HINT
    | REGISTERED
    | JOIN_INTEREST
    | JOIN_WAKER
    | FINISHED
    | FAST_POLLS
    | LIGHT_SHARD
    | OWNS_REGIONS);

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

    /// SW15: the task opened a light region while light.
    pub(crate) fn owns_regions(self) -> bool {
        self.0 & OWNS_REGIONS != 0
    }

    /// SW10: the task's handle has not been dropped.
    pub(crate) fn is_join_interested(self) -> bool {
        self.0 & JOIN_INTEREST != 0
    }

    /// SW11, SW12: the waker cell holds the joiner's waker.
    pub(crate) fn is_join_waker_set(self) -> bool {
        self.0 & JOIN_WAKER != 0
    }

    /// SW9: the output cell holds the task's end.
    pub(crate) fn is_finished(self) -> bool {
        self.0 & FINISHED != 0
    }

    /// SW13: whether a poll may skip the kernel when no attention bit is
    /// set (A1: spawned tasks; a root body's or a test's word has it
    /// clear).
    pub(crate) fn fast_polls(self) -> bool {
        self.0 & FAST_POLLS != 0
    }

    /// SW13: the shard of its light set the cell joins (LT9).
    pub(crate) fn light_shard(self) -> usize {
        // 4 bits: the cast keeps every value.
        ((self.0 & LIGHT_SHARD) >> SHARD_SHIFT) as usize
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
            .field("registered", &self.is_registered())
            .field("join_interest", &self.is_join_interested())
            .field("join_waker", &self.is_join_waker_set())
            .field("finished", &self.is_finished())
            .field("fast_polls", &self.fast_polls())
            .field("light_shard", &self.light_shard())
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

/// The state word (rules SW1–SW12).
pub(crate) struct CellState(AtomicU64);

impl CellState {
    /// A vacant cell: SCHEDULED (wakes before the spawner queues it are
    /// absorbed, W1), not started, with attention (A1: the kernel clears it
    /// at registration when the first poll may skip it), and with join
    /// interest (SW10: every cell is created for one `TaskHandle`); no
    /// fast polls, shard 0 (SW13).
    pub(crate) fn new() -> Self {
        Self::vacant(false, false, 0)
    }

    /// A vacant task cell (as [`new`](Self::new)) with its constant fields
    /// (SW13). A light task's (LT4) has its first poll free to skip the
    /// kernel from the start (A1: nothing can have asked for attention
    /// before the cell exists) and always `fast_polls`.
    pub(crate) fn vacant(light: bool, fast_polls: bool, light_shard: usize) -> Self {
        debug_assert!(!light || fast_polls, "LT4: a light task is a spawned one");
        let attention = if light { 0 } else { ATTENTION };
        let fast = if fast_polls { FAST_POLLS } else { 0 };
        let shard = (light_shard as u64) << SHARD_SHIFT;
        debug_assert_eq!(shard & !LIGHT_SHARD, 0, "SW13: the shard fits");
        Self(AtomicU64::new(
            SCHEDULED | attention | JOIN_INTEREST | fast | (shard & LIGHT_SHARD),
        ))
    }

    /// A relaxed reading (lane hints).
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Ordering::Relaxed))
    }

    /// An acquiring reading (the cancel slot's checks of COMPLETE and
    /// REGISTERED, LT7).
    pub(crate) fn load_acquire(&self) -> Snapshot {
        Snapshot(self.0.load(Ordering::Acquire))
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
            // SW8: absorbed, but still written (an RMW that changes
            // nothing), so this wake happens-before the run that serves it.
            SCHEDULED | NOTIFIED => (Wake::Done, Some(s)),
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
    /// Returns the snapshot it replaced (LT7: its cancel hint says
    /// whether a light task's cancel slot may hold a request).
    pub(crate) fn complete(&self) -> Snapshot {
        self.update(|s| (s, Some(s.with_lifecycle(COMPLETE))))
    }

    /// SW9: the completion publishes the output it wrote; returns the
    /// snapshot this RMW replaced (its JOIN_INTEREST says who owns the
    /// output now, its JOIN_WAKER whether to wake the joiner).
    pub(crate) fn publish_output(&self) -> Snapshot {
        let prev = Snapshot(self.0.fetch_or(FINISHED, Ordering::AcqRel));
        debug_assert!(!prev.is_finished(), "rule SW9: the output published twice");
        prev
    }

    /// SW10: the handle's drop; returns the snapshot it replaced (FINISHED
    /// set: the handle disposes of the output; JOIN_WAKER set with FINISHED:
    /// the completion still reads the waker and will drop it, SW12).
    pub(crate) fn drop_join_interest(&self) -> Snapshot {
        self.update(|s| {
            debug_assert!(
                s.is_join_interested(),
                "rule SW10: the handle dropped twice"
            );
            let clear = if s.is_finished() {
                JOIN_INTEREST
            } else {
                JOIN_INTEREST | JOIN_WAKER
            };
            (s, Some(Snapshot(s.0 & !clear)))
        })
    }

    /// SW11: the handle, having written the waker cell while JOIN_WAKER
    /// was clear, publishes it; `Err` (nothing changed) if the output is
    /// already there.
    pub(crate) fn set_join_waker(&self) -> Result<(), Snapshot> {
        self.update(|s| {
            debug_assert!(s.is_join_interested() && !s.is_join_waker_set());
            if s.is_finished() {
                (Err(s), None)
            } else {
                (Ok(()), Some(Snapshot(s.0 | JOIN_WAKER)))
            }
        })
    }

    /// SW11: the handle takes the waker cell back to replace the waker;
    /// `Err` (nothing changed) if the output is already there (the
    /// completion may be reading the waker: SW12).
    pub(crate) fn unset_join_waker(&self) -> Result<(), Snapshot> {
        self.update(|s| {
            debug_assert!(s.is_join_interested() && s.is_join_waker_set());
            if s.is_finished() {
                (Err(s), None)
            } else {
                (Ok(()), Some(Snapshot(s.0 & !JOIN_WAKER)))
            }
        })
    }

    /// SW12: the completion has woken the waker it found set at FINISHED
    /// and hands the cell back; returns the snapshot it replaced (no
    /// JOIN_INTEREST: the completion drops the waker).
    pub(crate) fn waker_woken(&self) -> Snapshot {
        let prev = Snapshot(self.0.fetch_and(!JOIN_WAKER, Ordering::AcqRel));
        debug_assert!(prev.is_finished() && prev.is_join_waker_set());
        prev
    }

    /// SW4 (A1): the kernel asks the next poll to go through it.
    pub(crate) fn request_attention(&self) {
        self.0.fetch_or(ATTENTION, Ordering::Release);
    }

    /// SW15 (LR5): the task is about to open a light region while light;
    /// returns the word it replaced (whose cancel hint and REGISTERED say
    /// whether it may stay light).
    pub(crate) fn mark_owner(&self) -> Snapshot {
        Snapshot(self.0.fetch_or(OWNS_REGIONS, Ordering::AcqRel))
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
    /// Returns the snapshot it replaced (LT7: a light task's cancel slot
    /// decides by its lifecycle and REGISTERED bit).
    pub(crate) fn cancel_requested(&self, severity: u8) -> Snapshot {
        self.update(|s| (s, Some(Self::raised(s, severity))))
    }

    /// [`cancel_requested`](Self::cancel_requested) and, unless the task
    /// is registered (its cancel is the kernel's, which wakes it), the
    /// wake transition (W1–W4) in the same RMW (SW14): a cancel request on
    /// a light task takes one RMW of the word, not two. Returns the snapshot it
    /// replaced and what the waker must do.
    pub(crate) fn cancel_requested_waking(&self, severity: u8) -> (Snapshot, Wake) {
        self.update(|s| {
            let next = Self::raised(s, severity);
            let (wake, next) = match s.lifecycle() {
                _ if s.is_registered() => (Wake::Done, next),
                IDLE => (Wake::Queue, next.with_lifecycle(SCHEDULED)),
                RUNNING => (Wake::Done, next.with_lifecycle(NOTIFIED)),
                // SW8: absorbed, and this RMW writes the word.
                _ => (Wake::Done, next),
            };
            ((s, wake), Some(next))
        })
    }

    /// SW4, SW5: `s` with CANCEL_ATTENTION set and its cancel hint raised
    /// to at least `severity`'s.
    fn raised(s: Snapshot, severity: u8) -> Snapshot {
        let hint = (u64::from(severity) + 1).min(HINT >> HINT_SHIFT) << HINT_SHIFT;
        let raised = (s.0 & HINT).max(hint);
        Snapshot((s.0 & !HINT) | raised | CANCEL_ATTENTION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(s: &CellState) -> u64 {
        s.0.load(Ordering::Relaxed)
    }

    #[test]
    fn a_vacant_light_cell_differs_from_a_vacant_cell_only_by_its_attention() {
        let plain = CellState::vacant(false, true, 3).load();
        let light = CellState::vacant(true, true, 3).load();
        assert!(plain.has_attention() && !light.has_attention());
        assert_eq!(plain.0 & !ATTENTION, light.0);
    }

    #[test]
    fn the_constant_fields_survive_every_transition() {
        for (fast, shard) in [
            (true, crate::kernel::light::SHARDS - 1),
            (false, 0),
            (true, 1),
        ] {
            let s = CellState::vacant(false, fast, shard);
            let check = |s: &CellState| {
                let w = s.load();
                assert_eq!((w.fast_polls(), w.light_shard()), (fast, shard), "SW13");
            };
            check(&s);
            let seen = s.start_running().unwrap();
            assert_eq!((seen.fast_polls(), seen.light_shard()), (fast, shard));
            s.wake();
            s.cancel_requested(5);
            s.take_attention();
            s.request_attention();
            s.mark_registered();
            assert_eq!(s.pending(), Pending::Requeue);
            check(&s);
            s.start_running().unwrap();
            s.complete();
            s.publish_output();
            s.drop_join_interest();
            check(&s);
        }
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

    /// SW14: the abort's one RMW raises the hint and makes the wake edge,
    /// except on a registered task; a complete task stays complete.
    #[test]
    fn an_abort_raises_the_hint_and_wakes_in_one_step_unless_registered() {
        let s = CellState::new();
        assert!(s.start_running().is_some(), "SCHEDULED -> RUNNING");
        assert_eq!(s.pending(), Pending::Idle);
        let (before, wake) = s.cancel_requested_waking(3);
        assert_eq!((before.lifecycle(), wake), (IDLE, Wake::Queue));
        let now = s.load();
        assert_eq!(now.lifecycle(), SCHEDULED);
        assert_eq!(now.cancel_severity(), Some(3));
        assert!(now.has_cancel_attention());
        // Already queued: absorbed; a weaker request keeps the hint (SW5).
        assert_eq!(s.cancel_requested_waking(1).1, Wake::Done);
        assert_eq!(s.load().cancel_severity(), Some(3));
        // Running: NOTIFIED, so the runner queues it again (W2).
        assert!(s.start_running().is_some());
        assert_eq!(s.cancel_requested_waking(5).1, Wake::Done);
        assert_eq!(s.load().lifecycle(), NOTIFIED);
        // Registered: the hint only (the kernel wakes it).
        let r = CellState::new();
        r.start_running();
        r.pending();
        r.mark_registered();
        let (_, wake) = r.cancel_requested_waking(2);
        assert_eq!((wake, r.load().lifecycle()), (Wake::Done, IDLE));
        assert_eq!(r.load().cancel_severity(), Some(2));
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
    fn a_new_cell_has_join_interest_no_join_waker_and_no_output() {
        let s = CellState::new().load();
        assert!(s.is_join_interested());
        assert!(!s.is_join_waker_set() && !s.is_finished());
    }

    #[test]
    fn the_join_waker_is_set_and_unset_only_before_the_output_is_published() {
        let s = CellState::new();
        assert!(s.set_join_waker().is_ok());
        assert!(s.load().is_join_waker_set());
        assert!(s.unset_join_waker().is_ok());
        assert!(!s.load().is_join_waker_set());
        assert!(s.set_join_waker().is_ok());
        let prev = s.publish_output();
        assert!(prev.is_join_interested() && prev.is_join_waker_set() && !prev.is_finished());
        assert!(
            s.unset_join_waker().is_err(),
            "SW11: the completion may be reading it"
        );
        let woken = s.waker_woken();
        assert!(
            woken.is_join_interested(),
            "the handle still owns the waker after"
        );
        let end = s.load();
        assert!(end.is_finished() && !end.is_join_waker_set());
        assert!(s.set_join_waker().is_err(), "SW11: the output is there");
        assert_eq!(word(&s) & RESERVED, 0, "SW6");
    }

    #[test]
    fn a_handle_dropped_before_the_output_clears_the_join_waker_and_leaves_the_output() {
        let s = CellState::new();
        s.set_join_waker().unwrap();
        let prev = s.drop_join_interest();
        assert!(
            !prev.is_finished(),
            "the completion will dispose of the output"
        );
        let now = s.load();
        assert!(!now.is_join_interested() && !now.is_join_waker_set());
        let published = s.publish_output();
        assert!(
            !published.is_join_interested(),
            "SW9: the output is the completion's"
        );
        assert!(!published.is_join_waker_set(), "nothing to wake");
    }

    #[test]
    fn a_handle_dropped_after_the_output_leaves_the_join_waker_to_the_completion() {
        let s = CellState::new();
        s.set_join_waker().unwrap();
        s.publish_output();
        let prev = s.drop_join_interest();
        assert!(
            prev.is_finished(),
            "SW10: the handle disposes of the output"
        );
        assert!(
            s.load().is_join_waker_set(),
            "SW12: the completion still reads it"
        );
        assert!(
            !s.waker_woken().is_join_interested(),
            "SW12: the completion drops the waker"
        );
    }

    #[test]
    fn join_bits_survive_every_lifecycle_transition() {
        let s = CellState::new();
        s.set_join_waker().unwrap();
        s.start_running().unwrap();
        s.wake();
        s.pending();
        s.start_running().unwrap();
        s.cancel_requested(2);
        s.take_attention();
        s.complete();
        let end = s.load();
        assert!(end.is_join_interested() && end.is_join_waker_set() && !end.is_finished());
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

/// Loom models of the state word: every interleaving (up to loom's
/// preemption bound) of the real [`CellState`] transitions, driven the way
/// `task_cell` and the kernel drive them. Run with
/// `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --lib --release loom`
/// (README, "Tests"; `docs/ARCHITECTURE.md`, "Loom models").
///
/// The harness around the word is deliberately unsynchronised, so that
/// the happens-before edges a model relies on come from the word itself:
/// the run queue is a plain (std, unmodelled) counter, and the future and
/// the kernel's cancel reason are loom `UnsafeCell`s, so an access the
/// word does not order is reported as a data race (W5 between runs on
/// different threads, SW4 from a cancel request to the poll that sees
/// it). Bookkeeping counters are std atomics, outside the model.
///
/// The future's readiness flags are set and read with relaxed accesses:
/// only the word orders them (SW8: every wake, an absorbed one included,
/// writes the word, so it happens-before the run edge that serves it).
/// Without SW8 — an absorbed wake that only loads the word — loom finds
/// a poll that misses the readiness.
#[cfg(all(test, loom))]
mod loom_tests {
    // Bookkeeping, outside the model (loom explores only its own types).
    use std::sync::atomic::{AtomicBool as Mark, AtomicUsize, Ordering::SeqCst};

    use super::*;
    use crate::loom::cell::UnsafeCell;
    use crate::loom::sync::Arc;
    use crate::loom::sync::atomic::AtomicBool;
    use crate::loom::{model, thread};

    /// One task as the runtime sees it: the word, the run queue entry,
    /// the future's state (W5) and what the kernel stored for it.
    struct Task {
        state: CellState,
        /// Entries of this task in the run queue (W1: at most one).
        queued: AtomicUsize,
        /// The future: how many times it was polled. Loom checks that
        /// only the holder of RUNNING touches it (W5).
        polls: UnsafeCell<usize>,
        /// The kernel's cancel reason, written before `cancel_requested`.
        reason: UnsafeCell<Option<u8>>,
        /// Readiness flags the future waits on, set by wakers before they
        /// wake (RMWs on both sides, see the module doc).
        ready: [AtomicBool; 2],
        /// How many flags must be set for the future to be ready.
        needs: usize,
        /// Runs whose run edge found the task unstarted (SW3: exactly 1).
        first_runs: AtomicUsize,
        /// Runs that passed the run edge after the completion (stays 0).
        runs_after_complete: AtomicUsize,
        /// Completions (exactly 1 at the end).
        completions: AtomicUsize,
        /// The cancel severity the runner saw last (SW5: only rises).
        seen_severity: AtomicUsize,
        /// Whether the completion was a drop before the first poll.
        dropped_unpolled: Mark,
    }

    /// What the task's future does when polled.
    #[derive(Clone, Copy, PartialEq)]
    enum Body {
        /// Ready once `needs` readiness flags are set.
        WaitFlags,
        /// Pending until a poll sees a cancel request, then ready.
        UntilCancelled,
    }

    impl Task {
        /// A spawned task: vacant (SCHEDULED), registered with a fast
        /// first poll (A1: attention cleared), then queued by the spawner.
        fn spawned(needs: usize) -> Arc<Self> {
            let task = Arc::new(Self {
                state: CellState::new(),
                queued: AtomicUsize::new(0),
                polls: UnsafeCell::new(0),
                reason: UnsafeCell::new(None),
                ready: [AtomicBool::new(false), AtomicBool::new(false)],
                needs,
                first_runs: AtomicUsize::new(0),
                runs_after_complete: AtomicUsize::new(0),
                completions: AtomicUsize::new(0),
                seen_severity: AtomicUsize::new(0),
                dropped_unpolled: Mark::new(false),
            });
            task.state.clear_attention();
            task.push();
            task
        }

        /// W1: a push finds the task not queued.
        fn push(&self) {
            assert_eq!(self.queued.fetch_add(1, SeqCst), 0, "W1: queued twice");
        }

        fn pop(&self) -> bool {
            self.queued
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
        }

        /// A waker (`TaskCell::schedule`): set flag `i`, then wake.
        fn wake_with(&self, i: usize) {
            self.ready[i].store(true, Ordering::Relaxed);
            self.wake();
        }

        fn wake(&self) {
            if self.state.wake() == Wake::Queue {
                self.push();
            }
        }

        /// The kernel's cancel request (`request_cancel`): store the
        /// reason, raise the hint and CANCEL_ATTENTION, wake the task.
        fn cancel(&self, severity: u8) {
            // SAFETY: written once, before the RMW that publishes it (SW4);
            // loom reports any read the word does not order after it.
            self.reason.with_mut(|r| unsafe { *r = Some(severity) });
            self.state.cancel_requested(severity);
            self.wake();
        }

        /// The scheduler drains the queue: `TaskCell::run` per entry.
        fn drain(&self, body: Body) {
            while self.pop() {
                self.run(body);
            }
        }

        /// `TaskCell::run` with `Core::poll_task`'s use of the bits.
        fn run(&self, body: Body) {
            let Some(before) = self.state.start_running() else {
                return; // W4: complete, or a stale entry.
            };
            if self.completions.load(SeqCst) > 0 {
                self.runs_after_complete.fetch_add(1, SeqCst);
            }
            assert!(
                self.state.load().is_started(),
                "SW3: the run edge sets STARTED"
            );
            if !before.is_started() {
                self.first_runs.fetch_add(1, SeqCst);
            }
            // SW4: the bits this poll acts on, taken only if the run edge
            // replaced a value with one of them (as `Core::poll_task`).
            let bits = if before.has_attention() || before.has_cancel_attention() {
                self.state.take_attention()
            } else {
                before
            };
            let severity = bits.cancel_severity().map_or(0, |s| usize::from(s) + 1);
            let last = self.seen_severity.swap(severity, SeqCst);
            assert!(
                last <= severity,
                "SW5: the hint fell from {last} to {severity}"
            );
            if bits.has_cancel_attention() {
                // The kernel visit reads the reason the bit announces.
                // SAFETY: SW4: the canceller's RMW (release) is read by
                // this `take_attention` (acquire), ordering its write first.
                let reason = self.reason.with(|r| unsafe { *r });
                assert!(reason.is_some(), "SW4: the bit came before its reason");
                if !before.is_started() {
                    // A1: cancelled before the first poll: dropped unpolled.
                    // SAFETY: W5: this thread holds RUNNING.
                    let polls = self.polls.with(|p| unsafe { *p });
                    assert_eq!(polls, 0, "a task cancelled before start was polled");
                    self.dropped_unpolled.store(true, SeqCst);
                    return self.finish();
                }
                if body == Body::UntilCancelled {
                    return self.finish(); // its checkpoint fails: it ends
                }
            }
            // SAFETY: W5: this thread holds RUNNING.
            self.polls.with_mut(|p| unsafe { *p += 1 });
            let set = self
                .ready
                .iter()
                .filter(|f| f.load(Ordering::Relaxed))
                .count();
            if body == Body::WaitFlags && set >= self.needs {
                return self.finish();
            }
            if self.state.pending() == Pending::Requeue {
                self.push(); // W2
            }
        }

        fn finish(&self) {
            self.state.complete();
            self.completions.fetch_add(1, SeqCst);
        }

        /// After every thread is done and the queue drained: the task
        /// completed exactly once, started exactly once, and COMPLETE
        /// absorbs every later transition (W4).
        fn assert_complete(&self) {
            let end = self.state.load();
            assert_eq!(end.lifecycle(), COMPLETE, "a wake was lost: {end:?}");
            assert_eq!(self.completions.load(SeqCst), 1);
            assert_eq!(self.first_runs.load(SeqCst), 1, "SW3");
            assert_eq!(self.runs_after_complete.load(SeqCst), 0, "W4");
            assert_eq!(self.queued.load(SeqCst), 0);
            assert_eq!(self.state.wake(), Wake::Done, "W4");
            assert!(self.state.start_running().is_none(), "W4");
            self.state.request_attention();
            self.state.cancel_requested(5);
            assert_eq!(self.state.load().lifecycle(), COMPLETE, "W4");
            assert_eq!(self.state.0.load(Ordering::Relaxed) & RESERVED, 0, "SW6");
        }
    }

    /// W2: a wake that races with the poll (before it, during it, after
    /// the pending edge) always leads to a poll that sees the readiness
    /// it published; the task is queued at most once (W1) and its future
    /// is touched only by the holder of RUNNING (W5).
    #[test]
    fn loom_a_wake_racing_the_runner_is_never_lost() {
        model(|| {
            let task = Task::spawned(1);
            let waker = {
                let task = task.clone();
                thread::spawn(move || task.wake_with(0))
            };
            task.drain(Body::WaitFlags);
            waker.join().unwrap();
            task.drain(Body::WaitFlags);
            task.assert_complete();
            assert!(!task.dropped_unpolled.load(SeqCst));
        });
    }

    /// W1, W2 with two wakers and a runner on its own thread: the task is
    /// never queued twice, both wakes' readiness reaches a poll, and runs
    /// on different threads see each other's writes to the future (W5).
    #[test]
    fn loom_two_wakers_queue_the_task_at_most_once_and_lose_no_wake() {
        model(|| {
            let task = Task::spawned(2);
            let wakers: Vec<_> = (0..2)
                .map(|i| {
                    let task = task.clone();
                    thread::spawn(move || task.wake_with(i))
                })
                .collect();
            let runner = {
                let task = task.clone();
                thread::spawn(move || task.drain(Body::WaitFlags))
            };
            for w in wakers {
                w.join().unwrap();
            }
            runner.join().unwrap();
            task.drain(Body::WaitFlags);
            task.assert_complete();
        });
    }

    /// SW3, SW4, A1: a kernel cancel request (reason, hint and
    /// CANCEL_ATTENTION in one RMW, then a wake) racing the first run:
    /// either the first poll's `take_attention` sees it, and the task is
    /// dropped unpolled, or a later poll does; the reason is always
    /// visible to the poll that sees the bit, and STARTED is set by the
    /// first run only.
    #[test]
    fn loom_a_cancel_request_is_seen_by_the_next_poll_and_drops_an_unstarted_task() {
        model(|| {
            let task = Task::spawned(1);
            let canceller = {
                let task = task.clone();
                thread::spawn(move || task.cancel(3))
            };
            let runner = {
                let task = task.clone();
                thread::spawn(move || task.drain(Body::UntilCancelled))
            };
            canceller.join().unwrap();
            runner.join().unwrap();
            task.drain(Body::UntilCancelled);
            task.assert_complete();
            // SAFETY: every other thread was joined.
            let polls = task.polls.with(|p| unsafe { *p });
            assert!(
                task.dropped_unpolled.load(SeqCst) == (polls == 0),
                "dropped unpolled iff never polled ({polls} polls)"
            );
            assert_eq!(task.state.load().cancel_severity(), Some(5));
        });
    }

    /// SW1, SW5: two cancel requests of different severity and an
    /// attention request race the runner's run, take and pending edges:
    /// no RMW loses another's bits, the hint the runner sees only rises
    /// and ends at the stronger request, and a request made before a
    /// `take_attention` is seen by it or by a later one (never dropped).
    #[test]
    fn loom_the_cancel_hint_only_rises_and_no_bit_is_lost() {
        model(|| {
            let task = Arc::new(CellState::new());
            task.clear_attention();
            let cancellers: Vec<_> = [(1u8, false), (4u8, true)]
                .into_iter()
                .map(|(severity, attention)| {
                    let task = task.clone();
                    thread::spawn(move || {
                        task.cancel_requested(severity);
                        if attention {
                            task.request_attention();
                        }
                    })
                })
                .collect();
            // The runner: one run, take, pending, wake, run, take.
            let mut seen = Vec::new();
            let mut attention = false;
            let mut cancel_attention = false;
            let first = task.start_running().expect("scheduled");
            assert!(!first.is_started());
            for round in 0..2 {
                let bits = task.take_attention();
                seen.push(bits.cancel_severity());
                attention |= bits.has_attention();
                cancel_attention |= bits.has_cancel_attention();
                if round == 0 {
                    assert_eq!(task.pending(), Pending::Idle);
                    assert_eq!(task.wake(), Wake::Queue);
                    let again = task.start_running().expect("scheduled");
                    assert!(again.is_started(), "SW3");
                }
            }
            for c in cancellers {
                c.join().unwrap();
            }
            assert!(seen.windows(2).all(|w| w[0] <= w[1]), "SW5: {seen:?}");
            let end = task.load();
            assert_eq!(end.cancel_severity(), Some(4), "SW5: the stronger request");
            assert_eq!(end.lifecycle(), RUNNING, "SW1: the kernel's RMWs kept it");
            assert!(end.is_started());
            // Each bit was taken by a poll or is still set for the next.
            assert!(attention || end.has_attention(), "SW4: attention lost");
            assert!(
                cancel_attention || end.has_cancel_attention(),
                "SW4: cancel attention lost"
            );
        });
    }

    /// SW15 (LR5): a light owner marking itself races an abort's request
    /// (its hint-and-wake RMW, then its look for the mark): at least one
    /// side sees the other, so either the abort has the kernel carry the
    /// cancel to the owner's regions or the owner registers before it
    /// opens one. The mark and the request both stay in the word.
    #[test]
    fn loom_an_owner_mark_and_an_abort_never_miss_each_other() {
        model(|| {
            let task = Arc::new(CellState::vacant(true, true, 0));
            assert!(task.start_running().is_some(), "the owner runs");
            let aborter = {
                let task = task.clone();
                thread::spawn(move || {
                    let _ = task.cancel_requested_waking(1);
                    task.load().owns_regions()
                })
            };
            let before = task.mark_owner();
            let owner_saw_request = before.cancel_severity().is_some();
            let abort_saw_mark = aborter.join().unwrap();
            assert!(
                owner_saw_request || abort_saw_mark,
                "SW15: missed each other"
            );
            let end = task.load();
            assert!(
                end.owns_regions() && end.cancel_severity() == Some(1),
                "SW1"
            );
        });
    }

    /// W4: completion races a waker and a canceller: COMPLETE is never
    /// left, a wake after it queues nothing, and no run passes the run
    /// edge after it.
    #[test]
    fn loom_complete_absorbs_racing_wakes_and_cancels() {
        model(|| {
            // Ready on its first poll: the race is with completion itself.
            let task = Task::spawned(0);
            let others = [
                {
                    let task = task.clone();
                    thread::spawn(move || task.wake())
                },
                {
                    let task = task.clone();
                    thread::spawn(move || {
                        task.state.request_attention();
                        task.cancel(0);
                    })
                },
            ];
            task.drain(Body::WaitFlags);
            let after = task.state.load();
            assert_eq!(after.lifecycle(), COMPLETE);
            for t in others {
                t.join().unwrap();
            }
            task.drain(Body::WaitFlags);
            task.assert_complete();
        });
    }
}
