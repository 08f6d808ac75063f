//! A light task's cancel slot: where a cancel request waits, in the task's
//! cell, until the task observes it or the kernel registers the task (rules
//! LT7 and LT8 in `kernel::light`). With it, aborting a light task, the
//! task's acknowledgement and its cancelled completion take no kernel lock:
//! only this slot's lock, which nothing else contends for but the task
//! itself and whoever cancels it.
//!
//! A request takes the slot's lock and raises the cell's cancel hint (one
//! RMW of the state word, `state`) before it stores anything; the value
//! that RMW replaced decides: COMPLETE means there is nothing left to
//! cancel, REGISTERED (SW7) that the kernel owns the task's cancel state
//! now. The kernel sets REGISTERED before it reads the slot (`current`) to
//! copy it, so a request either lands in the slot before that reading or
//! sees the bit and goes to the kernel. The completion's RMW that sets
//! COMPLETE is ordered with the request's: if the request's came first,
//! the completion sees the hint and reads the slot (waiting for the lock
//! the request holds while it stores); if not, the request sees COMPLETE
//! and stores nothing (the completion reads it with `completion`). A
//! completion that sees no hint reads no slot, so a task never cancelled
//! takes no lock here.
//!
//! What is stored costs as little as the request allows: CS1 (below) keeps
//! the reason in one word, an `abort()`'s plain reason as its kind and
//! stamp (nothing allocated; its origin, the task, filled in when read),
//! any other as an `Arc` the word owns, or (CS4) a region cancel's reason
//! as a pointer lent by the region's light set, which keeps the `Arc` as
//! long as it lives (every cell keeps its set), so a sweep of 10,000 tasks
//! writes no shared count 10,000 times, nor do their ends. The task's checkpoint copies the reason out without
//! touching that `Arc`'s count, and a completion whose handle is gone
//! (SW10) takes no reason at all.
//!
//! The slot is two words, 16 bytes in every task cell:
//! - CS1: the reason word (below).
//! - CS2 (the lock bit): the deadline word holds the grace deadline, the
//!   acknowledgement (`ACKED`) and the slot's lock (`LOCKED`). Every step
//!   above takes `LOCKED` by one acquiring compare-and-swap (waiting while
//!   another thread holds it: only the task itself and whoever cancels it
//!   ever do, for a few instructions), and only its holder writes the
//!   reason word or changes the deadline word (and only it reads them,
//!   but for CS5), giving the lock up with one release store of the
//!   word's new value (on unwind too). So the steps are serialised as a
//!   mutex would serialise them.
//! - CS5 (the completion reads without the lock): once the task set
//!   COMPLETE, no request stores (each sees COMPLETE in the RMW it makes
//!   under `LOCKED`), and one that raced ahead of COMPLETE still holds
//!   `LOCKED` where the completion's acquiring reading sees it. So the
//!   completion reads the reason word without locking when the word it
//!   reads is unlocked, and waits for the lock only behind such a request.
//! - CS3 (the deadline word's other use): a cell spawned through the
//!   kernel stores no cancel here (its cancel state is its kernel record's;
//!   the cell never reaches LT7's paths), and a light task has no budget
//!   (LT4). So the deadline bits of a kernel-spawned cell carry its budget
//!   deadline, the timed lane's hint, set once by the kernel before the
//!   cell is first queued (`set_lane_deadline`, under `LOCKED`) and read
//!   relaxed by the scheduler (`lane_deadline`); a light cell reports no
//!   lane deadline. No cell needs both uses.

// The imports the loom model (`loom_tests` below) replaces.
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use super::state::{COMPLETE, CellState, Wake};
use crate::kernel::{LightCancel, LightRequest};
use crate::types::{CancelKind, CancelReason, RegionId, TaskId, Time};

/// An abort's plain reason (LT7): a reason with no message, cause or origin
/// of its own, as `abort()` makes, kept as its kind and its stamp. Its
/// origin is the aborted task and its region, filled in when it is read
/// ([`to_reason`](Self::to_reason)), so an abort stores it, and the task's
/// end carries it to the join, without an allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PlainReason {
    pub(crate) kind: CancelKind,
    pub(crate) timestamp: Time,
}

impl PlainReason {
    /// `reason` as a plain one, if it is (no message, cause or origin).
    pub(crate) fn of(reason: &CancelReason, now: Time) -> Option<Self> {
        let plain = reason.message.is_none()
            && reason.cause.is_none()
            && reason.origin_region.is_none()
            && reason.origin_task.is_none();
        // `kernel::stamp`: a reason's own timestamp is kept.
        let timestamp = if reason.timestamp == Time::ZERO {
            now
        } else {
            reason.timestamp
        };
        // CS1: a stamp past 2^59 ns (18 years) does not fit the reason word.
        (plain && timestamp.as_nanos() <= STAMP_MAX).then_some(Self {
            kind: reason.kind,
            timestamp,
        })
    }

    /// The reason as users see it: the kernel's `stamp` of the plain
    /// reason, with task `task` of `region` as its origin.
    pub(crate) fn to_reason(self, region: RegionId, task: TaskId) -> CancelReason {
        let mut reason = CancelReason::new(self.kind);
        reason.timestamp = self.timestamp;
        reason.origin_region = Some(region);
        reason.origin_task = Some(task);
        reason
    }

    /// The reason without its origin, for K3's comparisons (precedence
    /// reads no origin); a stack value, nothing allocated.
    fn unattributed(self) -> CancelReason {
        let mut reason = CancelReason::new(self.kind);
        reason.timestamp = self.timestamp;
        reason
    }
}

/// A stored cancel reason.
#[derive(Debug, Default)]
pub(crate) enum SlotReason {
    #[default]
    None,
    /// An abort's plain reason, without an allocation.
    Plain(PlainReason),
    /// Any other reason; a region cancel shares one among all its tasks.
    Shared(Arc<CancelReason>),
    /// CS4: a region cancel's reason, lent by the region's light set,
    /// which keeps it alive as long as any of its cells (the slot's word
    /// takes no count of it).
    Lent(LentReason),
}

/// CS4: a reason the slot may point to without owning a count of it.
#[derive(Debug)]
pub(crate) struct LentReason(std::ptr::NonNull<CancelReason>);

// SAFETY: it stands for a shared `&CancelReason` (`Send + Sync`: CS1's
// assertion below covers `Arc<CancelReason>`, hence the reason).
unsafe impl Send for LentReason {}
// SAFETY: as above.
unsafe impl Sync for LentReason {}

impl LentReason {
    /// # Safety
    /// CS4: `reason`'s allocation must stay alive (an `Arc` of it kept) for
    /// as long as any slot it is stored in: the caller's light set keeps
    /// one for its own lifetime, and every cell that can hold it keeps the
    /// set.
    pub(crate) unsafe fn new(reason: &Arc<CancelReason>) -> Self {
        Self(std::ptr::NonNull::from(&**reason))
    }

    fn get(&self) -> &CancelReason {
        // SAFETY: CS4 (`new`'s contract): alive while any slot holds it.
        unsafe { self.0.as_ref() }
    }
}

impl SlotReason {
    fn kind(&self) -> Option<CancelKind> {
        match self {
            SlotReason::None => None,
            SlotReason::Plain(p) => Some(p.kind),
            SlotReason::Shared(r) => Some(r.kind),
            SlotReason::Lent(r) => Some(r.get().kind),
        }
    }

    /// Whether this reason would replace `stored` (K3: only one that
    /// outranks it does).
    fn outranks(&self, stored: Option<&CancelReason>) -> bool {
        let Some(stored) = stored else {
            return self.kind().is_some();
        };
        match self {
            SlotReason::None => false,
            SlotReason::Plain(p) => p.unattributed().outranks(stored),
            SlotReason::Shared(r) => r.outranks(stored),
            SlotReason::Lent(r) => r.get().outranks(stored),
        }
    }

    /// The reason shared (an allocation for a plain one: the kernel's
    /// rare paths only).
    fn into_shared(self, region: RegionId, task: TaskId) -> Option<Arc<CancelReason>> {
        match self {
            SlotReason::None => None,
            SlotReason::Plain(p) => Some(Arc::new(p.to_reason(region, task))),
            SlotReason::Shared(r) => Some(r),
            SlotReason::Lent(r) => Some(ReasonWord::owned(r.0.as_ptr())),
        }
    }
}

/// What a light task's own checkpoint found in its slot (LT7).
#[derive(Debug)]
pub(crate) enum LightAck {
    /// The task is cancelled: this observation acknowledges it (the
    /// record's `Cancelling`; repeated observations return it again). The
    /// reason is copied out of the stored one under the slot's lock, with
    /// no reference-count traffic: a region cancel stores one `Arc` in
    /// every task it reaches, whose count would otherwise be one cache
    /// line written by every draining task on every worker.
    Cancelled(CancelReason),
    /// Nothing was requested.
    Quiet,
    /// The kernel registered the task: ask the kernel.
    Registered,
}

/// A light task's cancel as its completion read it ([`CancelSlot::completion`]).
#[derive(Debug)]
pub(crate) struct LightCancelSeen {
    /// The task observed it: it ends `Cancelled`.
    pub(crate) acked: bool,
    /// The reason (`None` if no handle will read the task's end, SW10).
    pub(crate) reason: SlotReason,
}

/// CS1 (the reason word): a stored reason in one word, so the slot takes
/// 16 bytes with its deadline word (CS2). 0: none. Low bit set: a plain reason, its
/// stamp's nanoseconds from bit 5 up and its kind's index in bits 1..=4.
/// Otherwise: a pointer to an `Arc`'s reason (aligned, so its two low
/// bits are clear): with bit 1 clear, from `Arc::into_raw`, and the word
/// owns one strong reference, released when the word is dropped (a
/// replaced word is dropped); with bit 1 set, lent (CS4: the region's
/// light set keeps the `Arc`, and the word takes no count).
struct ReasonWord(u64);

const PLAIN_BIT: u64 = 1;
/// CS4: the pointer is lent, not owned.
const LENT_BIT: u64 = 2;
const POINTER_BITS: u64 = !(PLAIN_BIT | LENT_BIT);
const KIND_SHIFT: u32 = 1;
const KIND_MASK: u64 = 0b1111;
const STAMP_SHIFT: u32 = 5;
/// The largest stamp a plain reason keeps in its word (CS1).
const STAMP_MAX: u64 = u64::MAX >> STAMP_SHIFT;

// CS1: a kind's index is its discriminant (`ALL` is in declaration order)
// and fits the word's four kind bits.
const _: () = {
    assert!(CancelKind::ALL.len() as u64 <= KIND_MASK + 1);
    let mut i = 0;
    while i < CancelKind::ALL.len() {
        assert!(CancelKind::ALL[i] as usize == i);
        i += 1;
    }
};

impl ReasonWord {
    const NONE: Self = Self(0);

    fn new(reason: SlotReason) -> Self {
        match reason {
            SlotReason::None => Self::NONE,
            SlotReason::Plain(p) => {
                debug_assert!(p.timestamp.as_nanos() <= STAMP_MAX, "PlainReason::of");
                let kind = p.kind as u64;
                Self((p.timestamp.as_nanos() << STAMP_SHIFT) | (kind << KIND_SHIFT) | PLAIN_BIT)
            }
            SlotReason::Shared(r) => {
                let ptr = Arc::into_raw(r) as usize as u64;
                debug_assert!(
                    ptr != 0 && ptr & !POINTER_BITS == 0,
                    "CS1: an aligned pointer"
                );
                Self(ptr)
            }
            SlotReason::Lent(r) => {
                let ptr = r.0.as_ptr() as usize as u64;
                debug_assert!(ptr & !POINTER_BITS == 0, "CS1: an aligned pointer");
                Self(ptr | LENT_BIT)
            }
        }
    }

    /// A new strong reference to the `Arc` whose reason `ptr` points to
    /// (owned by a word, or kept by the light set that lent it, CS4).
    fn owned(ptr: *const CancelReason) -> Arc<CancelReason> {
        // SAFETY: CS1, CS4: `ptr` is an `Arc`'s reason with a strong
        // reference alive (the word's own, or the lending set's) while the
        // caller borrows the word; the count raised here is the returned
        // `Arc`'s.
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }

    /// The pointer of a shared or lent reason.
    fn pointer(&self) -> Option<*const CancelReason> {
        (self.0 != 0 && self.0 & PLAIN_BIT == 0)
            .then_some((self.0 & POINTER_BITS) as usize as *const CancelReason)
    }

    fn is_some(&self) -> bool {
        self.0 != 0
    }

    fn plain(&self) -> Option<PlainReason> {
        (self.0 & PLAIN_BIT != 0).then(|| PlainReason {
            kind: CancelKind::ALL[((self.0 >> KIND_SHIFT) & KIND_MASK) as usize],
            timestamp: Time::from_nanos(self.0 >> STAMP_SHIFT),
        })
    }

    fn shared(&self) -> Option<&CancelReason> {
        // SAFETY: CS1, CS4: a pointer to an `Arc`'s reason with a strong
        // reference alive (the word's own, or the lending set's) while
        // `self` is borrowed.
        self.pointer().map(|ptr| unsafe { &*ptr })
    }

    /// The stored reason, out of the word (a shared or lent one as a new
    /// strong reference).
    fn get(&self) -> SlotReason {
        if let Some(p) = self.plain() {
            return SlotReason::Plain(p);
        }
        match self.pointer() {
            Some(ptr) => SlotReason::Shared(Self::owned(ptr)),
            None => SlotReason::None,
        }
    }

    /// The stored reason as K3 compares it: a plain one without its
    /// origin, which precedence does not read (a stack value).
    fn compared(&self) -> Option<std::borrow::Cow<'_, CancelReason>> {
        match self.plain() {
            Some(p) => Some(std::borrow::Cow::Owned(p.unattributed())),
            None => self.shared().map(std::borrow::Cow::Borrowed),
        }
    }

    /// A copy of the reason for the task's own observation: no
    /// reference-count traffic on a shared one.
    fn to_reason(&self, region: RegionId, task: TaskId) -> Option<CancelReason> {
        match self.plain() {
            Some(p) => Some(p.to_reason(region, task)),
            None => self.shared().cloned(),
        }
    }
}

impl Drop for ReasonWord {
    fn drop(&mut self) {
        if self.0 & LENT_BIT == 0
            && let Some(ptr) = self.pointer()
        {
            // SAFETY: CS1: the word owns this strong reference (it is not
            // lent); it is released once, here, as the word goes away.
            drop(unsafe { Arc::from_raw(ptr) });
        }
    }
}

impl Default for ReasonWord {
    fn default() -> Self {
        Self::NONE
    }
}

// CS1: the word may hold an `Arc<CancelReason>`, which crosses threads
// with the slot: the reason must be `Send + Sync` (the word, a `u64`, is
// either way).
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<Arc<CancelReason>>();
};

/// CS2 (the deadline word): bit 63 `ACKED` (the task acknowledged the
/// stored cancel), bit 62 `LOCKED` (the slot's lock), bits 0..=61 a
/// deadline's nanoseconds (a deadline past 2^62 ns, 146 years, is kept as
/// that; all ones: none). The word and the reason word are 16 bytes.
const ACKED: u64 = 1 << 63;
const LOCKED: u64 = 1 << 62;
const DEADLINE: u64 = LOCKED - 1;
/// CS3: no lane deadline (and the value of a fresh slot).
const NO_DEADLINE: u64 = DEADLINE;

/// The slot (see the module doc): a reason word (CS1) and a deadline word
/// whose `LOCKED` bit is the slot's lock (CS2).
pub(crate) struct CancelSlot {
    /// CS1, CS2: written only by the holder of `LOCKED`; read by it, or by
    /// the completion once no request can store any more (CS5).
    /// A loom cell in the models, so that a read CS5 does not allow is
    /// reported as the data race it would be.
    reason: UnsafeCell<ReasonWord>,
    /// CS2: `ACKED` | `LOCKED` | the deadline (the grace deadline, LT7; or,
    /// in a cell spawned through the kernel, the lane deadline, CS3).
    word: AtomicU64,
}

// SAFETY: CS2: the reason word is written only by the holder of `LOCKED`,
// taken by an acquiring compare-and-swap and given up by a release store,
// as a mutex would order it, and read by that holder or, once it is
// settled, by the completion (CS5); what it may own, an `Arc<CancelReason>`, is
// `Send + Sync` (CS1's assertion above).
unsafe impl Sync for CancelSlot {}

/// The slot's lock held (CS2): the reason word, and the deadline word as
/// it will be stored when the lock is given up (on drop, also on unwind).
struct Locked<'a> {
    slot: &'a CancelSlot,
    /// The deadline word without `LOCKED`.
    word: u64,
}

impl Locked<'_> {
    fn with_reason<R>(&self, f: impl FnOnce(&ReasonWord) -> R) -> R {
        // SAFETY: CS2: this guard holds `LOCKED`, so no other thread
        // writes the reason word until it is dropped, and the borrow ends
        // with `f`.
        self.slot.reason.with(|word| f(unsafe { &*word }))
    }

    /// Stores `reason`, dropping (releasing, CS1) the word it replaces.
    fn set_reason(&mut self, reason: ReasonWord) {
        // SAFETY: CS2, as in `with_reason`; `&mut self` rules out a live
        // borrow of the old word.
        self.slot.reason.with_mut(|word| unsafe { *word = reason });
    }

    fn deadline(&self) -> Time {
        Time::from_nanos(self.word & DEADLINE)
    }

    fn set_deadline(&mut self, deadline: Time) {
        self.word = (self.word & ACKED) | deadline.as_nanos().min(DEADLINE - 1);
    }

    fn acked(&self) -> bool {
        self.word & ACKED != 0
    }

    fn ack(&mut self) {
        self.word |= ACKED;
    }
}

impl Drop for Locked<'_> {
    /// CS2: gives the lock up. Nobody else writes the word while `LOCKED`
    /// is set, so a release store of the new value suffices.
    fn drop(&mut self) {
        self.slot.word.store(self.word & !LOCKED, Ordering::Release);
    }
}

impl CancelSlot {
    pub(crate) fn new() -> Self {
        Self {
            reason: UnsafeCell::new(ReasonWord::NONE),
            word: AtomicU64::new(NO_DEADLINE),
        }
    }

    /// CS2: takes `LOCKED` (one acquiring compare-and-swap; waits while
    /// another thread holds it). No user code runs under this lock.
    fn lock(&self) -> Locked<'_> {
        let mut spins = 0;
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if w & LOCKED != 0 {
                crate::loom::backoff(&mut spins);
                w = self.word.load(Ordering::Relaxed);
                continue;
            }
            match self.word.compare_exchange_weak(
                w,
                w | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Locked {
                        slot: self,
                        word: w,
                    };
                }
                Err(actual) => w = actual,
            }
        }
    }

    /// CS3: the lane deadline in nanoseconds, if one was set (a relaxed
    /// reading: a hint; the deadline bits never change while `LOCKED` is
    /// held, so a reading during a lock sees the value before it).
    pub(crate) fn lane_deadline(&self) -> Option<u64> {
        let d = self.word.load(Ordering::Relaxed) & DEADLINE;
        (d != NO_DEADLINE).then_some(d)
    }

    /// CS3: records the budget deadline of a cell spawned through the
    /// kernel (once, before the cell is first queued; the slot holds no
    /// cancel and never will).
    pub(crate) fn set_lane_deadline(&self, deadline: Time) {
        let mut slot = self.lock();
        debug_assert!(
            !slot.with_reason(ReasonWord::is_some),
            "CS3: a slot with a cancel"
        );
        slot.set_deadline(deadline);
    }

    /// LT7: a cancel request with `reason`, its cleanup bounded by
    /// `grace_deadline`, on the light task whose state word is `state` (an
    /// abort's, or a region cancel's sweep, LT10). A request that does not
    /// outrank the stored reason changes nothing (K3); one that does also
    /// moves the grace deadline earlier, never later (K4), and raises the
    /// cell's cancel hint (SW5) and makes the task's wake edge in the same
    /// RMW of the state word (SW14). Returns what the caller must do with
    /// the task: queue it (once this returned: the reason is stored by
    /// then) on `Wake::Queue`.
    pub(crate) fn request(
        &self,
        state: &CellState,
        reason: SlotReason,
        grace_deadline: Time,
    ) -> (LightRequest, Wake) {
        let Some(kind) = reason.kind() else {
            return (LightRequest::Unchanged, Wake::Done);
        };
        let mut slot = self.lock();
        if !slot.with_reason(|stored| reason.outranks(stored.compared().as_deref())) {
            return (LightRequest::Unchanged, Wake::Done);
        }
        // The hint first: the value it replaces decides (module doc).
        let (before, woke) = state.cancel_requested_waking(kind.severity());
        if before.lifecycle() == COMPLETE {
            return (LightRequest::Complete, Wake::Done);
        }
        if before.is_registered() {
            return (LightRequest::Registered, Wake::Done);
        }
        let deadline = if slot.with_reason(ReasonWord::is_some) {
            slot.deadline().min(grace_deadline)
        } else {
            grace_deadline
        };
        slot.set_reason(ReasonWord::new(reason));
        slot.set_deadline(deadline);
        (LightRequest::Stored, woke)
    }

    /// LT7: the checkpoint of task `task` (of `region`, this slot's
    /// cell's): acknowledges a stored request.
    pub(crate) fn acknowledge(
        &self,
        state: &CellState,
        region: RegionId,
        task: TaskId,
    ) -> LightAck {
        let mut slot = self.lock();
        if state.load_acquire().is_registered() {
            return LightAck::Registered;
        }
        match slot.with_reason(|stored| stored.to_reason(region, task)) {
            Some(reason) => {
                slot.ack();
                LightAck::Cancelled(reason)
            }
            None => LightAck::Quiet,
        }
    }

    /// LT8: what the task's completion (after it set COMPLETE) needs: whether
    /// the task acknowledged the stored cancel and, if `with_reason`, the
    /// reason (a plain one stays plain: nothing is allocated). Without it
    /// (no handle will read the task's end, SW10) a shared reason's count
    /// is not touched.
    pub(crate) fn completion(&self, with_reason: bool) -> Option<LightCancelSeen> {
        // CS5: the caller set COMPLETE (an AcqRel RMW of the state word)
        // before this reading. From then on no request stores: each sees
        // COMPLETE in its own RMW, which it makes holding `LOCKED` (LT7).
        // A request whose RMW came before ours still holds `LOCKED` until
        // its store is done, and the Acquire of ours, reading the RMW
        // chain its Release started, makes its lock visible here. So a
        // word read unlocked (Acquire, synchronising with the last
        // release of the lock) shows a reason nobody will write again:
        // it is read without the lock (only other readers may hold it).
        let word = self.word.load(Ordering::Acquire);
        if word & LOCKED == 0 {
            // SAFETY: CS5 above: the reason word is settled and only read
            // from here on (it changes again only when the cell drops it).
            return self
                .reason
                .with(|reason| Self::seen(unsafe { &*reason }, word & ACKED != 0, with_reason));
        }
        let slot = self.lock();
        slot.with_reason(|reason| Self::seen(reason, slot.acked(), with_reason))
    }

    /// What a completion sees of a slot holding `reason`: nothing if no
    /// request was stored; the reason itself only if it is wanted (SW10:
    /// without it, a shared reason's count is not touched).
    fn seen(reason: &ReasonWord, acked: bool, with_reason: bool) -> Option<LightCancelSeen> {
        reason.is_some().then(|| LightCancelSeen {
            acked,
            reason: if with_reason {
                reason.get()
            } else {
                SlotReason::None
            },
        })
    }

    /// The stored cancellation of task `task` of `region` (this slot's
    /// cell's): for the kernel registering the task and for
    /// `Cx::cancel_reason`.
    pub(crate) fn current(&self, region: RegionId, task: TaskId) -> Option<LightCancel> {
        let slot = self.lock();
        slot.with_reason(ReasonWord::get)
            .into_shared(region, task)
            .map(|reason| LightCancel {
                reason,
                grace_deadline: slot.deadline(),
                acked: slot.acked(),
            })
    }
}

/// Loom model of LT7 (run by `.ci/run` with `--cfg loom`): an abort, the
/// task's acknowledgement and completion, and the kernel's registration
/// race on the real slot and state word.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::{model, thread};
    use crate::types::CancelKind;

    /// A light task's state word (running) and cancel slot.
    fn running_task() -> (Arc<CellState>, Arc<CancelSlot>) {
        let state = Arc::new(CellState::new());
        assert!(state.start_running().is_some());
        (state, Arc::new(CancelSlot::new()))
    }

    /// The model task's ids (its origin, filled into a plain reason).
    const REGION: RegionId = RegionId::from_parts(1, 0);
    const TASK: TaskId = TaskId::from_parts(2, 0);

    /// A thread that aborts the task with a plain `kind` reason, as
    /// `abort()` does (nothing allocated, LT7; the hint and the wake edge
    /// in one RMW, SW14).
    fn spawn_aborter(
        state: &Arc<CellState>,
        slot: &Arc<CancelSlot>,
        kind: CancelKind,
    ) -> thread::JoinHandle<LightRequest> {
        let (state, slot) = (state.clone(), slot.clone());
        thread::spawn(move || {
            let plain = PlainReason {
                kind,
                timestamp: Time::from_nanos(1),
            };
            let (outcome, _wake) =
                slot.request(&state, SlotReason::Plain(plain), Time::from_nanos(10));
            outcome
        })
    }

    /// Every abort is accounted exactly once: stored in the slot the
    /// completion reads (and then counted there), or refused because the
    /// task completed, or handed to the kernel because it registered the
    /// task, in which case the kernel's copy, taken after REGISTERED was
    /// set, holds every request stored before.
    #[test]
    fn an_abort_lands_in_exactly_one_place() {
        model(|| {
            let (state, slot) = running_task();
            let aborter = spawn_aborter(&state, &slot, CancelKind::User);
            let registrar = {
                let (state, slot) = (state.clone(), slot.clone());
                thread::spawn(move || {
                    state.mark_registered();
                    slot.current(REGION, TASK).is_some()
                })
            };
            // The task completes and reads its slot if the hint says so.
            let before = state.complete();
            let read_by_completion = before.cancel_severity().is_some()
                && slot.completion(before.is_join_interested()).is_some();
            let outcome = aborter.join().unwrap();
            let kernel_copy = registrar.join().unwrap();
            match outcome {
                LightRequest::Stored => {
                    assert!(read_by_completion, "stored before COMPLETE was set");
                }
                LightRequest::Unchanged => unreachable!("the only request"),
                LightRequest::Complete => assert!(!read_by_completion && !kernel_copy),
                LightRequest::Registered => assert!(!kernel_copy && !read_by_completion),
            }
            if kernel_copy {
                assert!(read_by_completion, "the kernel copied a stored request");
            }
        });
    }

    /// The task acknowledges while an abort arrives, then completes: the
    /// completion reports exactly what the task saw. An acknowledged
    /// cancel is read back as acknowledged (the task ends `Cancelled`); a
    /// cancel stored after the task's checkpoint is read back unacknowledged
    /// (the task returned its value without observing it), or is refused
    /// if it came after the completion.
    #[test]
    fn the_completion_reports_the_acknowledgement_the_task_made() {
        model(|| {
            let (state, slot) = running_task();
            let aborter = spawn_aborter(&state, &slot, CancelKind::Shutdown);
            let acked = match slot.acknowledge(&state, REGION, TASK) {
                LightAck::Cancelled(reason) => {
                    // The plain reason read back with the task as origin.
                    assert_eq!(reason.origin_task, Some(TASK));
                    assert_eq!(reason.origin_region, Some(REGION));
                    true
                }
                _ => false,
            };
            let before = state.complete();
            let read = before
                .cancel_severity()
                .and_then(|_| slot.completion(true))
                .map(|c| c.acked);
            let outcome = aborter.join().unwrap();
            if acked {
                assert_eq!(read, Some(true), "acknowledged: the task ends Cancelled");
            }
            match outcome {
                LightRequest::Stored => assert!(read.is_some(), "a stored cancel is read"),
                LightRequest::Complete => assert_eq!(read, None),
                other => unreachable!("{other:?}"),
            }
        });
    }

    /// K3 over both kinds of stored reason (CS1): a region cancel (one
    /// shared `Arc`, `ParentCancelled`) and a plain abort (`User`) race;
    /// whatever the order, the slot ends with the stronger (the region's),
    /// the task's checkpoint reads it with its true origin, and the shared
    /// reason's count is back to its owner's alone once the slot is gone
    /// (the word released what it held, once).
    #[test]
    fn a_region_cancel_and_an_abort_keep_the_stronger_reason() {
        model(|| {
            let (state, slot) = running_task();
            let mut region_reason = CancelReason::new(CancelKind::ParentCancelled);
            region_reason.origin_region = Some(RegionId::from_parts(7, 0));
            let shared = std::sync::Arc::new(region_reason);
            let canceller = {
                let (state, slot, shared) = (state.clone(), slot.clone(), shared.clone());
                thread::spawn(move || {
                    let stored = SlotReason::Shared(shared.clone());
                    slot.request(&state, stored, Time::from_nanos(5)).0
                })
            };
            let aborter = spawn_aborter(&state, &slot, CancelKind::User);
            assert_eq!(canceller.join().unwrap(), LightRequest::Stored);
            aborter.join().unwrap();
            let LightAck::Cancelled(seen) = slot.acknowledge(&state, REGION, TASK) else {
                panic!("cancelled twice, acknowledged nothing");
            };
            // ParentCancelled outranks User (severity 4 over 0).
            assert_eq!(
                seen.kind,
                CancelKind::ParentCancelled,
                "K3: the stronger is kept"
            );
            assert_eq!(
                seen.origin_region,
                Some(RegionId::from_parts(7, 0)),
                "its origin"
            );
            let seen_by_completion = slot.completion(true).expect("stored");
            assert!(seen_by_completion.acked);
            drop(seen_by_completion);
            drop(slot);
            assert_eq!(
                std::sync::Arc::strong_count(&shared),
                1,
                "CS1: released once"
            );
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::types::CancelKind;

    const REGION: RegionId = RegionId::from_parts(1, 0);
    const TASK: TaskId = TaskId::from_parts(2, 0);

    fn running_light_task() -> CellState {
        let state = CellState::vacant(true, true, 0);
        assert!(state.start_running().is_some());
        state
    }

    fn unlocked(slot: &CancelSlot) -> bool {
        slot.word.load(Ordering::Relaxed) & LOCKED == 0
    }

    #[test]
    fn a_fresh_slot_has_no_lane_deadline_and_keeps_the_one_the_kernel_sets() {
        let slot = CancelSlot::new();
        assert_eq!(slot.lane_deadline(), None);
        assert!(slot.current(REGION, TASK).is_none(), "no cancel stored");
        slot.set_lane_deadline(Time::from_nanos(1_234));
        assert_eq!(slot.lane_deadline(), Some(1_234), "CS3");
        // CS2: a deadline past 2^62 ns is kept as the largest that fits,
        // never as "none".
        slot.set_lane_deadline(Time::from_nanos(u64::MAX));
        assert_eq!(slot.lane_deadline(), Some(DEADLINE - 1));
        assert!(unlocked(&slot), "CS2: the lock is given up");
        assert!(slot.current(REGION, TASK).is_none(), "CS3: still no cancel");
    }

    /// CS4: a lent reason is stored, compared, observed, handed out and
    /// replaced without its lender's count ever moving for the slot's own
    /// sake; what the slot hands out (`current`) is a strong reference of
    /// its own.
    #[test]
    fn a_lent_reason_takes_no_count_of_its_own() {
        let (state, slot) = (running_light_task(), CancelSlot::new());
        let lender = Arc::new(CancelReason::fail_fast().with_message("region body failed"));
        // SAFETY: CS4: `lender` outlives `slot` (dropped below, after it).
        let lent = unsafe { LentReason::new(&lender) };
        let (stored, _) = slot.request(&state, SlotReason::Lent(lent), Time::from_nanos(50));
        assert_eq!(stored, LightRequest::Stored);
        assert_eq!(Arc::strong_count(&lender), 1, "lent, not counted");
        let LightAck::Cancelled(seen) = slot.acknowledge(&state, REGION, TASK) else {
            panic!("the lent reason is observed");
        };
        assert_eq!(seen.message.as_deref(), Some("region body failed"));
        let copied = slot.current(REGION, TASK).expect("stored");
        assert!(
            std::ptr::eq(&*copied.reason, &*lender),
            "the lender's own reason"
        );
        assert_eq!(
            Arc::strong_count(&lender),
            2,
            "the copy holds its own count"
        );
        drop(copied);
        // K3: a stronger reason replaces it; the lent word releases nothing.
        let shutdown = Arc::new(CancelReason::shutdown());
        let stronger = SlotReason::Shared(shutdown.clone());
        assert_eq!(
            slot.request(&state, stronger, Time::from_nanos(60)).0,
            LightRequest::Stored
        );
        assert_eq!(Arc::strong_count(&lender), 1);
        assert_eq!(Arc::strong_count(&shutdown), 2, "a shared reason is owned");
        drop(slot);
        assert_eq!(Arc::strong_count(&shutdown), 1, "and released once");
        assert_eq!(Arc::strong_count(&lender), 1);
    }

    #[test]
    fn a_stored_cancel_keeps_its_deadline_and_acknowledgement_beside_the_lock_bit() {
        let (state, slot) = (running_light_task(), CancelSlot::new());
        let plain = PlainReason {
            kind: CancelKind::User,
            timestamp: Time::from_nanos(3),
        };
        let stored = slot
            .request(&state, SlotReason::Plain(plain), Time::from_nanos(100))
            .0;
        assert_eq!(stored, LightRequest::Stored);
        // K3, K4: a stronger reason replaces it; its later deadline does not.
        let shutdown = Arc::new(CancelReason::shutdown());
        assert_eq!(
            slot.request(
                &state,
                SlotReason::Shared(shutdown.clone()),
                Time::from_nanos(500)
            )
            .0,
            LightRequest::Stored
        );
        assert_eq!(
            slot.request(&state, SlotReason::Plain(plain), Time::from_nanos(1))
                .0,
            LightRequest::Unchanged,
            "K3: a weaker one changes nothing"
        );
        let seen = slot.current(REGION, TASK).expect("stored");
        assert_eq!(seen.reason.kind, CancelKind::Shutdown);
        assert_eq!(seen.grace_deadline, Time::from_nanos(100), "K4");
        assert!(!seen.acked);
        drop(seen);
        assert!(matches!(
            slot.acknowledge(&state, REGION, TASK),
            LightAck::Cancelled(r) if r.kind == CancelKind::Shutdown
        ));
        let seen = slot.current(REGION, TASK).expect("stored");
        assert!(seen.acked && seen.grace_deadline == Time::from_nanos(100));
        assert!(slot.completion(true).expect("stored").acked);
        assert!(unlocked(&slot), "CS2: every step gave the lock up");
        drop(seen);
        drop(slot);
        assert_eq!(Arc::strong_count(&shutdown), 1, "CS1: released once");
    }

    /// CS2 under contention: one request per severity tier from its own
    /// thread (the stronger, the earlier its grace deadline) while the
    /// task acknowledges in a loop. Whatever the order, the slot ends with
    /// the strongest reason and its deadline, acknowledged once the task
    /// checks again, and nobody is left waiting for the lock.
    #[test]
    fn racing_requests_leave_the_strongest_reason_and_the_earliest_deadline() {
        let tiers = [
            CancelKind::User,
            CancelKind::Timeout,
            CancelKind::PollQuota,
            CancelKind::FailFast,
            CancelKind::ParentCancelled,
            CancelKind::Shutdown,
        ];
        for _ in 0..200 {
            let state = Arc::new(running_light_task());
            let slot = Arc::new(CancelSlot::new());
            let requesters: Vec<_> = tiers
                .iter()
                .map(|&kind| {
                    let (state, slot) = (state.clone(), slot.clone());
                    std::thread::spawn(move || {
                        let deadline = Time::from_nanos(1_000 - 10 * u64::from(kind.severity()));
                        let plain = PlainReason {
                            kind,
                            timestamp: Time::from_nanos(1),
                        };
                        slot.request(&state, SlotReason::Plain(plain), deadline).0
                    })
                })
                .collect();
            let mut acked_kinds = Vec::new();
            for _ in 0..20 {
                if let LightAck::Cancelled(r) = slot.acknowledge(&state, REGION, TASK) {
                    acked_kinds.push(r.kind.severity());
                }
            }
            for r in requesters {
                let outcome = r.join().unwrap();
                assert!(matches!(
                    outcome,
                    LightRequest::Stored | LightRequest::Unchanged
                ));
            }
            assert!(
                acked_kinds.windows(2).all(|w| w[0] <= w[1]),
                "K3: the reason only strengthens: {acked_kinds:?}"
            );
            let seen = slot.current(REGION, TASK).expect("stored");
            assert_eq!(seen.reason.kind, CancelKind::Shutdown);
            assert_eq!(seen.grace_deadline, Time::from_nanos(950), "K4");
            assert_eq!(state.load().cancel_severity(), Some(5), "SW5");
            assert!(matches!(
                slot.acknowledge(&state, REGION, TASK),
                LightAck::Cancelled(_)
            ));
            assert!(slot.completion(false).expect("stored").acked);
            assert!(unlocked(&slot));
        }
    }
}
