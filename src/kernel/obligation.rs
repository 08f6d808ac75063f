//! The obligation ledger's records, and the home word that decides how
//! each obligation ends.
//!
//! ```text
//! Reserved ──► Committed
//!     ├──────► Aborted
//!     └──────► Leaked
//! ```
//!
//! Rules:
//! 1. An obligation is resolved exactly once; resolving it again is a bug in
//!    the caller and panics naming the rule.
//! 2. A task that completes while still holding a reserved obligation leaks
//!    it, whatever its outcome (returned, cancelled, force-dropped). Its
//!    future, and every permit the future owned, is dropped before it
//!    completes, and dropping a permit aborts it; so an obligation still
//!    held then was forgotten (`mem::forget`) or escaped the task (stashed
//!    elsewhere, returned as its output). Nothing is counted as aborted that
//!    was not given back.
//! 3. A region never reaches `Closed` with a pending obligation of its own
//!    home (leftovers are recorded as leaks first); K1 gives the rest:
//!    every task of the region completed, and swept its home, before.
//! 4. A task-held obligation belongs to the task that reserved it until it
//!    is explicitly transferred (`Obligation::transfer`, traced as
//!    `ObligationTransfer`); only its holder's completion can leak it.
//! 5. An *owned* obligation (reserved for an owned permit:
//!    `Semaphore::acquire_owned`, `Sender::reserve_owned`) may move to any
//!    task, so no task holds it: from its reservation on it is held by the
//!    region it was reserved in (traced as an `ObligationTransfer` to no
//!    task right after the `ObligationReserve`). No task's completion
//!    counts it; if it is still pending when that region closes (the
//!    permit was forgotten, or moved out of the region), it is a leak. The
//!    same holds for obligations reserved with a region body's `Cx`: the
//!    body's region is their home.
//!
//! # Home words (rules OB1–OB11)
//!
//! Reserving and resolving take no kernel lock. Every pending obligation
//! is counted in exactly one [`ObligationHome`]: the task cell of a spawned
//! task (reserved with its own `Cx`), the root body's home, or a region
//! (owned obligations, and those reserved with a region body's `Cx`, rule
//! 5). A home is one word — `CLOSED` (bit 63), `LOCKED` (bit 62) and the
//! count of pending obligations — plus the details of each pending one
//! (id, kind, reserver, region, `reserved_at`) for leak reports, behind a
//! pointer that stays empty until the home's first reservation (OB10).
//! - OB1 (one word decides): how an obligation ends is decided by the
//!   modification order of its home word alone. A resolve whose decrement
//!   precedes the sweep's `CLOSED` resolved it; one that finds `CLOSED`
//!   fails, and the sweep counted the obligation as leaked. So an
//!   obligation is never both committed and leaked, nor neither.
//! - OB2 (reserve): increment unless `CLOSED`; a closed home refuses (its
//!   task completed, its region closed).
//! - OB3 (resolve): decrement unless `CLOSED`; failure means the
//!   obligation was already leaked: the caller counts nothing.
//! - OB4 (sweep): the home's end (its task's completion in
//!   `Kernel::complete_task`, its region's close) sets `CLOSED`; the count
//!   it replaced is exactly the number leaked. `CLOSED` is never cleared,
//!   so nothing changes the fate of what the sweep counted.
//! - OB5 (transfer): increment the target (OB2; refused if closed), then
//!   decrement the source (OB3). If the source was closed meanwhile its
//!   sweep leaked the obligation: the target's increment is undone (OB3 on
//!   the target, which cannot be closed: its owner is the transferring
//!   caller, alive) and the transfer fails. In between the obligation is
//!   counted twice, never zero times, so no sweep can miss it; at most one
//!   of the two words ends up counting it.
//! - OB6 (the lock bit): every step above is one compare-and-swap that
//!   also sets `LOCKED` (waiting while another thread holds it); the
//!   holder of `LOCKED` alone touches the detail list, changes it to match
//!   the count, and clears the bit with a release store (nobody else
//!   writes the word meanwhile). So the details always match the count,
//!   and the sweep's list is exactly the leaked ones. A sweep of a home
//!   with nothing pending (the common case) is one compare-and-swap from 0.
//!   The bit is per home: only a task's own obligations, resolved on
//!   several threads at once, ever wait for each other, for a few
//!   instructions.
//! - OB11 (a task's own sweep): a task's home gains obligations only
//!   from its own polls (reservations through its own `Cx`, OB9, and
//!   transfers it makes as the target, OB5) and loses them only by resolves
//!   and transfers of obligations it counts. So when its completion, on
//!   the thread that polled it, reads the word as 0 (nothing pending, not
//!   locked), no other thread can write it any more: the sweep closes it
//!   with a plain store ([`ObligationHome::close_own`]). A region's home
//!   may gain obligations from any thread, so its sweep is always an RMW.
//! - OB7 (ids): obligation ids come from a per-runtime counter, handed to a
//!   home in blocks of [`ID_BLOCK`] (under `LOCKED`): unique per runtime,
//!   deterministic in the lab, one shared increment per block.
//! - OB8 (the lab's ledger): when the core traces (the lab), each step
//!   that succeeded on the word is then also recorded in the kernel's
//!   ledger (holder, region, transfers) and traced, under the kernel lock.
//!   The ledger never decides anything: leak reports come from the homes.
//! - OB9 (finding the home): a `Cx` carries no pointer to its task's home.
//!   While a task is polled, its thread-local context (`exec::context`)
//!   points at the home of the task being polled; a reservation through
//!   that task's own `Cx` (rule CX1) uses it, and so does a resolve of an
//!   obligation homed there. Permits keep a `Weak` reference to their
//!   home, used only when resolved elsewhere, so that a permit never keeps
//!   a task cell (and its future) alive; a home that is gone was swept.
//!   A `Cx` used outside its task's polls (another task, a plain thread)
//!   reserves in its region's home.
//! - OB10 (details on demand): a home's details (the pending records and
//!   the id block, OB7) live in one box, allocated by the home's first
//!   reservation or adoption under `LOCKED`, with room for one record
//!   inline, and dropped by its sweep (OB4: nothing is counted in a closed
//!   home, so nothing needs them after it). So a home is 16 bytes in its
//!   task cell (the word and the box pointer), a task that never reserves
//!   allocates nothing for it, and a reservation or resolve after the
//!   home's first allocates nothing while the home holds at most one
//!   pending obligation: the hot path stays one compare-and-swap and one
//!   release store on the home word.

use std::sync::atomic::Ordering;

use std::cell::UnsafeCell;

use crate::loom::sync::atomic::AtomicU64;
use crate::types::{ObligationId, RegionId, TaskId, Time};

/// State of an obligation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObligationState {
    /// Reserved, not yet resolved.
    Reserved,
    /// The effect happened.
    Committed,
    /// The reservation was released without effect.
    Aborted,
    /// Nobody resolved it: a bug that the runtime reports.
    Leaked,
}

/// The lab's record of a pending obligation (rule OB8): who holds it.
pub(crate) struct ObligationRecord {
    pub(crate) holder: TaskId,
    pub(crate) region: RegionId,
    /// Rule 5: held by `region`, not by `holder` (which is then only the
    /// task that reserved it, for reports).
    pub(crate) owned: bool,
}

/// A leaked obligation, as reported by the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakReport {
    /// The leaked obligation.
    pub obligation: ObligationId,
    /// What kind of effect it reserved (`"send_permit"`, ...).
    pub kind: &'static str,
    /// The task that held it last: the one that reserved it (or received
    /// it by transfer); for an owned permit, the task that reserved it.
    pub holder: TaskId,
    /// The region it was reserved in.
    pub region: RegionId,
    /// When it was reserved.
    pub reserved_at: Time,
    /// When the leak was detected.
    pub detected_at: Time,
}

impl std::fmt::Display for LeakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "obligation leak: {} ({}) reserved by task {} in region {} at {} was never committed or aborted (detected at {})",
            self.obligation,
            self.kind,
            self.holder,
            self.region,
            self.reserved_at,
            self.detected_at
        )
    }
}

/// Ids a home takes from the runtime's counter at once (rule OB7).
pub(crate) const ID_BLOCK: u64 = 64;

const CLOSED: u64 = 1 << 63;
const LOCKED: u64 = 1 << 62;
const COUNT: u64 = LOCKED - 1;

/// The details of one pending obligation (rule OB6), for its leak report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) id: ObligationId,
    pub(crate) kind: &'static str,
    /// The task that reserved it, or received it by transfer.
    pub(crate) task: TaskId,
    /// The region it was reserved (or received) in.
    pub(crate) region: RegionId,
    pub(crate) reserved_at: Time,
}

/// The details of a home's pending obligations (OB6, OB10), in the order
/// they were reserved or received: the oldest inline (a home rarely holds
/// more than one at a time), any others after it. `first` is empty only
/// when `rest` is.
#[derive(Default)]
struct HeldList {
    first: Option<Held>,
    rest: Vec<Held>,
}

impl HeldList {
    fn push(&mut self, held: Held) {
        if self.first.is_none() {
            debug_assert!(self.rest.is_empty(), "HeldList: the oldest is inline");
            self.first = Some(held);
        } else {
            self.rest.push(held);
        }
    }

    fn remove(&mut self, id: ObligationId) -> Option<Held> {
        // The most recent first: permits are mostly given back in LIFO order.
        if let Some(p) = self.rest.iter().rposition(|h| h.id == id) {
            return Some(self.rest.remove(p));
        }
        if self.first.as_ref().is_some_and(|h| h.id == id) {
            let out = self.first.take();
            if !self.rest.is_empty() {
                self.first = Some(self.rest.remove(0));
            }
            return out;
        }
        None
    }

    fn contains(&self, id: ObligationId) -> bool {
        self.first.iter().chain(&self.rest).any(|h| h.id == id)
    }

    fn into_vec(self) -> Vec<Held> {
        match self.first {
            None => Vec::new(),
            Some(first) => {
                let mut all = self.rest;
                all.insert(0, first);
                all
            }
        }
    }
}

#[derive(Default)]
struct Details {
    held: HeldList,
    /// The next id of this home's block (OB7); a multiple of `ID_BLOCK`
    /// means the block is used up (or none was taken yet).
    next: u64,
}

/// A home word plus its details (rules OB1–OB10 in the module docs): 16
/// bytes; the details are on the heap only from the home's first
/// reservation to its sweep (OB10).
pub(crate) struct ObligationHome {
    /// `CLOSED` (bit 63) | `LOCKED` (bit 62, OB6) | count of pending
    /// obligations.
    word: AtomicU64,
    /// OB6: touched only by the thread that set `LOCKED`; OB10: allocated
    /// by the first reservation (or adoption), dropped by the sweep.
    details: UnsafeCell<Option<Box<Details>>>,
}

// SAFETY: `details` is only accessed by the thread holding the word's
// `LOCKED` bit (rule OB6: set by a compare-and-swap with acquire ordering,
// cleared by a release store), which serialises those accesses like a
// mutex; `Held` is `Send`.
unsafe impl Sync for ObligationHome {}

impl Default for ObligationHome {
    fn default() -> Self {
        Self::new()
    }
}

impl ObligationHome {
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU64::new(0),
            details: UnsafeCell::new(None),
        }
    }

    /// OB6: one compare-and-swap that takes `LOCKED` and applies `step`
    /// to the count (OB2: +1, OB3: -1, the sweep: 0), refused if the home
    /// is closed (`None`). Returns the word it installed; the caller must
    /// pass it to [`unlock`](Self::unlock).
    fn lock_step(&self, step: i8) -> Option<u64> {
        let mut spins = 0;
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            if w & CLOSED != 0 {
                return None;
            }
            if w & LOCKED != 0 {
                crate::loom::backoff(&mut spins);
                w = self.word.load(Ordering::Acquire);
                continue;
            }
            let count = match step {
                1 => (w & COUNT) + 1,
                // Never below 0: OB3 decrements only what a reserve counted.
                -1 => (w & COUNT).saturating_sub(1),
                _ => w & COUNT,
            };
            let next = count | LOCKED;
            match self
                .word
                .compare_exchange_weak(w, next, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return Some(next),
                Err(actual) => w = actual,
            }
        }
    }

    /// OB6: clears `LOCKED`. Nobody else changes the word while it is set
    /// (every writer takes it first), so a plain release store suffices.
    fn unlock(&self, locked: u64) {
        self.word.store(locked & !LOCKED, Ordering::Release);
    }

    /// The details' box, for the holder of `LOCKED` (`None` until the
    /// first reservation, OB10).
    #[allow(clippy::mut_from_ref)]
    fn details(&self, _locked: &u64) -> &mut Option<Box<Details>> {
        // SAFETY: rule OB6: the caller holds `LOCKED` (it passes the word
        // `lock_step` returned), so no other thread touches the details
        // until it unlocks, and it drops this borrow before unlocking.
        unsafe { &mut *self.details.get() }
    }

    /// OB10: the details, allocated by the first reservation or adoption.
    fn details_made(&self, locked: &u64) -> &mut Details {
        self.details(locked).get_or_insert_with(Box::default)
    }

    /// Pending obligations (0 once closed).
    pub(crate) fn pending(&self) -> usize {
        let w = self.word.load(Ordering::Acquire);
        if w & CLOSED != 0 {
            0
        } else {
            usize::try_from(w & COUNT).unwrap_or(usize::MAX)
        }
    }

    /// Whether the sweep has run (OB4).
    #[allow(dead_code)]
    pub(crate) fn is_closed(&self) -> bool {
        self.word.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Reserves a new obligation here (OB2, OB6, OB7): `None` if the home
    /// is closed.
    pub(crate) fn reserve(
        &self,
        ids: &AtomicU64,
        kind: &'static str,
        task: TaskId,
        region: RegionId,
        reserved_at: Time,
    ) -> Option<ObligationId> {
        let locked = self.lock_step(1)?;
        let d = self.details_made(&locked);
        if d.next.is_multiple_of(ID_BLOCK) {
            d.next = ids.fetch_add(ID_BLOCK, Ordering::Relaxed);
        }
        let n = d.next;
        d.next += 1;
        // The generation carries the high bits: ids never repeat.
        let id = ObligationId::from_parts(n as u32, (n >> 32) as u32);
        d.held.push(Held {
            id,
            kind,
            task,
            region,
            reserved_at,
        });
        self.unlock(locked);
        Some(id)
    }

    /// Takes in an obligation counted elsewhere (OB5's first step): false
    /// if this home is closed.
    pub(crate) fn adopt(&self, held: Held) -> bool {
        let Some(locked) = self.lock_step(1) else {
            return false;
        };
        self.details_made(&locked).held.push(held);
        self.unlock(locked);
        true
    }

    /// Resolves (or gives away, OB5's second step) obligation `id` (OB3,
    /// OB6): its details, or `None` if the home was closed first (the
    /// obligation was leaked).
    pub(crate) fn release(&self, id: ObligationId) -> Option<Held> {
        let locked = self.lock_step(-1)?;
        let out = self
            .details(&locked)
            .as_mut()
            .and_then(|d| d.held.remove(id));
        self.unlock(locked);
        // Checked after unlocking: a panic must never leave `LOCKED` set.
        debug_assert!(out.is_some(), "rule OB6: {id} counted but not detailed");
        out
    }

    /// OB4, OB11: the sweep of a task's own home by its completion, on the
    /// thread that polled it: as [`close`](Self::close), but a home with
    /// nothing pending is closed by a load and a store, without an RMW.
    ///
    /// Only for the home of the task completing on this thread: OB11 says
    /// why nobody else writes that word then; a region's home (which any
    /// thread may reserve in) must use `close`.
    pub(crate) fn close_own(&self) -> Vec<Held> {
        if self.word.load(Ordering::Acquire) == 0 {
            // OB11: nobody else writes this word now, so the store cannot
            // overwrite anything. Release: whoever sees `CLOSED` sees the
            // details taken below as they were.
            self.word.store(CLOSED, Ordering::Release);
            // OB10: an empty box left by earlier reservations goes now.
            // SAFETY: OB6, OB10, OB11: `LOCKED` was clear in the word this
            // load read (acquiring the last holder's release), nobody took
            // it since (OB11) and nobody takes it once `CLOSED` is set
            // (every `lock_step` refuses), so the details are this sweep's
            // alone.
            drop(unsafe { (*self.details.get()).take() });
            return Vec::new();
        }
        self.close()
    }

    /// OB4: closes the home; what is still pending is leaked (in the order
    /// it was reserved or received). Idempotent: a second sweep finds
    /// nothing.
    pub(crate) fn close(&self) -> Vec<Held> {
        // The common case: nothing pending, nobody holding the lock.
        if self
            .word
            .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // OB10: an empty box left by earlier reservations goes now.
            // SAFETY: OB6, OB10: `LOCKED` was clear in the word this CAS
            // replaced (acquiring the last holder's release), and no thread
            // takes it once `CLOSED` is set (every `lock_step` refuses), so
            // the details are this sweep's alone.
            drop(unsafe { (*self.details.get()).take() });
            return Vec::new();
        }
        let Some(locked) = self.lock_step(0) else {
            return Vec::new(); // closed already
        };
        // OB10: the details go with the sweep (no home takes anything once
        // closed, OB2).
        let leaked = self
            .details(&locked)
            .take()
            .map_or_else(Vec::new, |d| d.held.into_vec());
        // Release: whoever sees `CLOSED` sees the details taken.
        self.word
            .store(CLOSED | (locked & COUNT), Ordering::Release);
        // Checked after unlocking: a panic must never leave `LOCKED` set.
        debug_assert_eq!(leaked.len() as u64, locked & COUNT, "rule OB6");
        leaked
    }

    /// OB10: whether the details' box exists (tests: no other thread may
    /// use the home meanwhile).
    #[cfg(all(test, not(loom)))]
    fn has_details(&self) -> bool {
        // SAFETY: a test reads the box while no other thread uses the
        // home, so nothing writes it meanwhile (OB6).
        unsafe { (*self.details.get()).is_some() }
    }

    /// Whether `id` is pending here (diagnostics: takes the lock bit).
    pub(crate) fn holds(&self, id: ObligationId) -> bool {
        let Some(locked) = self.lock_step(0) else {
            return false;
        };
        let found = self
            .details(&locked)
            .as_ref()
            .is_some_and(|d| d.held.contains(id));
        self.unlock(locked);
        found
    }
}

/// What owns a home word: a task cell, a root body, a region. Reached
/// through a `Weak`, so that a `Cx` or a permit never keeps a task cell
/// (and its future) alive; a home that is gone was swept (OB4).
pub(crate) trait HomeHost: Send + Sync {
    fn obligation_home(&self) -> &ObligationHome;
    fn obligation_counters(&self) -> &ObligationCounters;
}

/// What the poll of a task exposes of its home (rule OB9), through the
/// thread-local context: valid for the duration of that poll.
pub(crate) trait HomeSource {
    fn host(&self) -> &dyn HomeHost;
    /// A `Weak` for a permit to keep (used only off this task's polls).
    fn downgrade(&self) -> std::sync::Weak<dyn HomeHost>;
    /// The task's own region (a body's `Cx` has another: rule 5).
    fn region(&self) -> RegionId;
}

/// A home in its own allocation (a root body's, a region's).
pub(crate) struct StandaloneHome {
    home: ObligationHome,
    counters: std::sync::Arc<ObligationCounters>,
}

impl StandaloneHome {
    pub(crate) fn new(counters: std::sync::Arc<ObligationCounters>) -> Self {
        Self {
            home: ObligationHome::new(),
            counters,
        }
    }
}

impl HomeHost for StandaloneHome {
    fn obligation_home(&self) -> &ObligationHome {
        &self.home
    }
    fn obligation_counters(&self) -> &ObligationCounters {
        &self.counters
    }
}

/// Stripes of the resolve counters (one cache line each).
const STRIPES: usize = 8;

#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    committed: std::sync::atomic::AtomicU64,
    aborted: std::sync::atomic::AtomicU64,
}

/// Per-runtime obligation counters, shared by the kernel and every home:
/// the id counter (OB7) and the committed/aborted totals, striped by id
/// block so that tasks on different threads rarely share a line.
#[derive(Default)]
pub(crate) struct ObligationCounters {
    pub(crate) next_id: AtomicU64,
    stripes: [Stripe; STRIPES],
}

impl ObligationCounters {
    pub(crate) fn count(&self, id: ObligationId, state: ObligationState) {
        let block = (u64::from(id.index()) / ID_BLOCK) as usize;
        let s = &self.stripes[block % STRIPES];
        let c = match state {
            ObligationState::Committed => &s.committed,
            _ => &s.aborted,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// (committed, aborted) so far.
    pub(crate) fn totals(&self) -> (u64, u64) {
        self.stripes.iter().fold((0, 0), |(c, a), s| {
            (
                c + s.committed.load(Ordering::Relaxed),
                a + s.aborted.load(Ordering::Relaxed),
            )
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64 as StdAtomicU64;

    fn t(i: u32) -> TaskId {
        TaskId::from_parts(i, 0)
    }

    fn r0() -> RegionId {
        RegionId::from_parts(0, 0)
    }

    fn reserve(home: &ObligationHome, ids: &AtomicU64, kind: &'static str) -> ObligationId {
        home.reserve(ids, kind, t(1), r0(), Time::ZERO)
            .expect("an open home")
    }

    #[test]
    fn a_resolve_before_the_sweep_counts_and_a_resolve_after_it_fails() {
        let ids = AtomicU64::new(0);
        let home = ObligationHome::new();
        let a = reserve(&home, &ids, "a");
        let b = reserve(&home, &ids, "b");
        assert_eq!(home.pending(), 2);
        assert!(home.holds(a) && home.holds(b));
        assert_eq!(home.release(a).map(|h| h.kind), Some("a"));
        let leaked = home.close();
        assert_eq!(leaked.iter().map(|h| h.id).collect::<Vec<_>>(), vec![b]);
        assert!(home.is_closed());
        assert_eq!(home.pending(), 0);
        assert_eq!(home.release(b), None, "OB3: leaked already");
        assert!(home.close().is_empty(), "OB4: a second sweep finds nothing");
        assert_eq!(home.reserve(&ids, "c", t(1), r0(), Time::ZERO), None, "OB2");
        assert!(
            !home.adopt(leaked[0].clone()),
            "OB5: a closed home takes nothing"
        );
    }

    #[test]
    fn ids_come_in_blocks_from_the_runtime_counter_and_never_repeat() {
        let ids = AtomicU64::new(0);
        let (h1, h2) = (ObligationHome::new(), ObligationHome::new());
        let a = reserve(&h1, &ids, "a");
        let b = reserve(&h2, &ids, "b");
        let c = reserve(&h1, &ids, "c");
        assert_eq!((a.index(), c.index()), (0, 1));
        assert_eq!(u64::from(b.index()), ID_BLOCK);
        let many: std::collections::BTreeSet<_> =
            (0..3 * ID_BLOCK).map(|_| reserve(&h1, &ids, "x")).collect();
        assert_eq!(many.len() as u64, 3 * ID_BLOCK);
        assert!(!many.contains(&a) && !many.contains(&b) && !many.contains(&c));
    }

    #[test]
    fn the_sweep_leaks_exactly_what_is_pending_in_reservation_order() {
        let ids = AtomicU64::new(0);
        let home = ObligationHome::new();
        let all: Vec<_> = (0..10).map(|_| reserve(&home, &ids, "k")).collect();
        for id in all.iter().step_by(2) {
            assert!(home.release(*id).is_some());
        }
        let leaked: Vec<_> = home.close().into_iter().map(|h| h.id).collect();
        let expected: Vec<_> = all.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(leaked, expected);
    }

    #[test]
    fn a_home_makes_its_details_at_its_first_reservation_and_drops_them_at_its_sweep() {
        let ids = AtomicU64::new(0);
        let idle = ObligationHome::new();
        assert!(!idle.has_details(), "OB10: nothing until a reservation");
        assert!(idle.close().is_empty());
        assert!(!idle.has_details());

        let home = ObligationHome::new();
        let a = reserve(&home, &ids, "a");
        assert!(home.has_details(), "OB10: made by the first reservation");
        assert!(home.release(a).is_some());
        assert!(home.has_details(), "kept for the next reservation");
        let b = reserve(&home, &ids, "b");
        assert_eq!(u64::from(b.index()), 1, "OB7: the block is kept too");
        assert!(home.release(b).is_some());
        assert!(home.close().is_empty());
        assert!(!home.has_details(), "OB10: dropped by the sweep");

        let leaky = ObligationHome::new();
        let c = reserve(&leaky, &ids, "c");
        let leaked: Vec<_> = leaky.close().into_iter().map(|h| h.id).collect();
        assert_eq!(leaked, vec![c]);
        assert!(!leaky.has_details(), "OB10: dropped by a sweep that leaks");
        assert_eq!(leaky.reserve(&ids, "d", t(1), r0(), Time::ZERO), None);
        assert!(!leaky.has_details(), "OB2: a closed home makes nothing");
    }

    #[test]
    fn giving_back_the_oldest_keeps_the_others_in_reservation_order() {
        let ids = AtomicU64::new(0);
        let home = ObligationHome::new();
        let a = reserve(&home, &ids, "a");
        let b = reserve(&home, &ids, "b");
        let c = reserve(&home, &ids, "c");
        assert_eq!(home.release(a).map(|h| h.kind), Some("a"), "the inline one");
        let d = reserve(&home, &ids, "d");
        assert!(home.release(c).is_some());
        let e = reserve(&home, &ids, "e");
        assert!([a, c].iter().all(|id| !home.holds(*id)));
        assert!([b, d, e].iter().all(|id| home.holds(*id)));
        assert_eq!(home.pending(), 3);
        let leaked: Vec<_> = home.close().into_iter().map(|h| h.id).collect();
        assert_eq!(leaked, vec![b, d, e]);
    }

    /// The hard race (OB1, OB5): one thread resolves obligations it does
    /// not hold, another transfers obligations to a second home, while the
    /// holder's sweep runs. Each obligation must end exactly once: resolved,
    /// leaked by the holder's sweep, or moved (and then leaked by the
    /// receiver's sweep, since nobody resolves it there).
    #[test]
    fn each_obligation_ends_exactly_once_when_resolves_and_transfers_race_the_sweep() {
        const N: usize = 64;
        for _ in 0..150 {
            let ids = Arc::new(AtomicU64::new(0));
            let source = Arc::new(ObligationHome::new());
            let target = Arc::new(ObligationHome::new());
            let held: Vec<Held> = (0..N)
                .map(|i| {
                    let id = reserve(&source, &ids, if i % 2 == 0 { "r" } else { "t" });
                    Held {
                        id,
                        kind: "t",
                        task: t(2),
                        region: r0(),
                        reserved_at: Time::ZERO,
                    }
                })
                .collect();
            let start = Arc::new(StdAtomicU64::new(0));
            let go = |start: &StdAtomicU64| {
                start.fetch_add(1, Ordering::AcqRel);
                while start.load(Ordering::Acquire) < 3 {
                    std::hint::spin_loop();
                }
            };
            let resolver = {
                let (source, start) = (source.clone(), start.clone());
                let mine: Vec<_> = held.iter().step_by(2).map(|h| h.id).collect();
                std::thread::spawn(move || {
                    go(&start);
                    mine.into_iter()
                        .filter(|id| source.release(*id).is_some())
                        .collect::<Vec<_>>()
                })
            };
            let mover = {
                let (source, target, start) = (source.clone(), target.clone(), start.clone());
                let mine: Vec<_> = held.iter().skip(1).step_by(2).cloned().collect();
                std::thread::spawn(move || {
                    go(&start);
                    mine.into_iter()
                        .filter_map(|h| {
                            let id = h.id;
                            assert!(target.adopt(h), "the receiver is open");
                            if source.release(id).is_some() {
                                Some(id)
                            } else {
                                assert!(target.release(id).is_some(), "OB5 undo");
                                None
                            }
                        })
                        .collect::<Vec<_>>()
                })
            };
            go(&start);
            let leaked: Vec<_> = source.close().into_iter().map(|h| h.id).collect();
            let resolved = resolver.join().unwrap();
            let moved = mover.join().unwrap();
            let moved_leaked: Vec<_> = target.close().into_iter().map(|h| h.id).collect();
            let mut moved_sorted = moved.clone();
            moved_sorted.sort();
            let mut ml = moved_leaked.clone();
            ml.sort();
            assert_eq!(
                moved_sorted, ml,
                "a moved obligation is counted by the receiver"
            );
            let mut ends: Vec<_> = resolved
                .iter()
                .chain(&leaked)
                .chain(&moved)
                .copied()
                .collect();
            ends.sort();
            let mut all: Vec<_> = held.iter().map(|h| h.id).collect();
            all.sort();
            assert_eq!(ends, all, "every obligation ends exactly once");
        }
    }
}

/// Loom models of the home word (run with
/// `RUSTFLAGS="--cfg loom" cargo test --lib loom_`): a resolve by a
/// non-holder, and a transfer to another home, each racing the holder's
/// sweep, in every interleaving (preemptions bounded, as the waits on
/// `LOCKED` spin); each obligation ends exactly once.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut model = crate::loom::model::Builder::new();
        model.preemption_bound = Some(2);
        model.check(f);
    }

    fn one_reserved(home: &ObligationHome) -> ObligationId {
        let ids = AtomicU64::new(0);
        let (t1, r) = (TaskId::from_parts(1, 0), RegionId::from_parts(0, 0));
        home.reserve(&ids, "a", t1, r, Time::ZERO).unwrap()
    }

    /// The task's own sweep, either kind: the general one (`close`) or the
    /// completion's (`close_own`, OB11).
    fn sweep(home: &ObligationHome, own: bool) -> Vec<ObligationId> {
        let leaked = if own { home.close_own() } else { home.close() };
        leaked.into_iter().map(|h| h.id).collect()
    }

    #[test]
    fn loom_a_non_holder_resolve_and_the_sweep_end_the_obligation_exactly_once() {
        for own in [false, true] {
            model(move || non_holder_resolve_and_sweep(own));
        }
    }

    fn non_holder_resolve_and_sweep(own: bool) {
        {
            let home = Arc::new(ObligationHome::new());
            let a = one_reserved(&home);
            let resolver = {
                let home = home.clone();
                crate::loom::thread::spawn(move || home.release(a).is_some())
            };
            let leaked = sweep(&home, own);
            let resolved = resolver.join().unwrap();
            assert_eq!(resolved, leaked.is_empty(), "resolved xor leaked");
            assert!(leaked.is_empty() || leaked == vec![a]);
            assert_eq!(home.pending(), 0);
        }
    }

    #[test]
    fn loom_a_transfer_and_the_givers_sweep_end_the_obligation_exactly_once() {
        for own in [false, true] {
            model(move || transfer_and_givers_sweep(own));
        }
    }

    fn transfer_and_givers_sweep(own: bool) {
        {
            let source = Arc::new(ObligationHome::new());
            let target = Arc::new(ObligationHome::new());
            let b = one_reserved(&source);
            let mover = {
                let (source, target) = (source.clone(), target.clone());
                crate::loom::thread::spawn(move || {
                    let held = Held {
                        id: b,
                        kind: "b",
                        task: TaskId::from_parts(2, 0),
                        region: RegionId::from_parts(0, 0),
                        reserved_at: Time::ZERO,
                    };
                    assert!(target.adopt(held));
                    if source.release(b).is_some() {
                        true
                    } else {
                        assert!(target.release(b).is_some(), "OB5 undo");
                        false
                    }
                })
            };
            let leaked = sweep(&source, own);
            let moved = mover.join().unwrap();
            let moved_leaked: Vec<_> = target.close().into_iter().map(|h| h.id).collect();
            assert_eq!(moved, leaked.is_empty(), "moved xor leaked by the giver");
            assert_eq!(
                moved,
                moved_leaked == vec![b],
                "a moved one is the receiver's"
            );
        }
    }
}
