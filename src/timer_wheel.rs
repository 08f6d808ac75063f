//! A hierarchical timer wheel: the data structure behind sleeps and timeouts.
//!
//! This is a pure data structure: no threads, no clocks, no `unsafe`. The
//! caller passes the current [`Time`] into [`TimerWheel::advance`]; the
//! production driver passes the monotonic clock, the lab passes virtual time.
//!
//! # Layout
//!
//! Time is quantized into *ticks* of 1 ms (`tick(t) = t_ns / 1_000_000`). The
//! wheel has 6 levels of 64 slots (tokio's layout): a level-`l` slot spans
//! `64^l` ticks, so the wheel covers `64^6` ms (about 2.2 years) around its
//! cursor. Deadlines further away live in the *overflow*: one bucket per
//! *epoch* (`tick >> 36`, i.e. per aligned `64^6`-tick span). Every `u64`
//! nanosecond deadline, including [`Time::MAX`], maps to one of 269 epochs,
//! so the overflow is a fixed array of buckets plus an occupancy bitmap.
//!
//! Entries live in a *store* (rule 9); every list (a wheel slot, an
//! overflow bucket, or the expired list) is an intrusive doubly linked list
//! threaded through the entries' [`Node`]s, so insert and cancel are O(1).
//! [`TimerWheel`] is the wheel over a slab store (a `Vec` of generational
//! slots, named by index), which allocates nothing once the slab has grown
//! to its steady-state size.
//!
//! # Rules
//!
//! These invariants hold between calls (they are checked by
//! `assert_invariants` in the tests):
//!
//! 1. `now` is the largest time ever passed to [`TimerWheel::advance`] (or
//!    the `start` given to [`TimerWheel::new`]); it never moves backwards.
//!    The cursor `elapsed` is `tick(now)`.
//! 2. A pending entry with `deadline <= now` is in the *expired* list. It can
//!    only exist if it was inserted after the last `advance`; the next
//!    `advance` (whatever its argument) fires it.
//! 3. A pending entry with `deadline > now` and tick `t` (so `t >= elapsed`)
//!    is placed relative to the cursor at the moment of placement: its level
//!    is `l = msb((t ^ elapsed) | 63) / 6`, i.e. the level of the most
//!    significant 6-bit digit in which `t` differs from `elapsed`. If `l < 6`
//!    it goes into level `l`, slot `(t >> 6l) & 63`; otherwise it goes into
//!    overflow bucket `t >> 36`.
//! 4. Hence a level-`l` slot holds only ticks that share all digits above `l`
//!    with `elapsed` and whose level-`l` digit is the slot index, which is
//!    `>= digit_l(elapsed)` (strictly greater for `l > 0`); a level-0 slot
//!    holds exactly one tick. An overflow bucket `e` is occupied only if
//!    `e > elapsed >> 36`. Consequently the next occupied slot (searching
//!    upwards from the cursor's digit) on the lowest occupied level holds the
//!    earliest pending ticks, and every wheel entry precedes every overflow
//!    entry. This is what makes [`TimerWheel::next_deadline`] exact while
//!    scanning only one list.
//! 5. When the cursor reaches the first tick of an occupied level-`l` slot
//!    (`l > 0`) or overflow bucket, its entries are re-placed by rule 3
//!    relative to the new cursor; they always land on a strictly lower level
//!    (cascading). When the cursor reaches the tick of an occupied level-0
//!    slot, the entries with `deadline <= now` fire; the others (same
//!    millisecond, later nanosecond, possible only in the slot of `tick(now)`)
//!    stay where they are.
//! 6. The entries fired by one `advance` are appended sorted by
//!    `(deadline, insertion sequence)`, so ties fire in insertion order.
//! 7. A [`TimerKey`] is `(slab index, insertion sequence)`. Sequence numbers
//!    are never reused, so the key of a fired or cancelled entry never
//!    resolves again, even after its slab slot is reused.
//! 8. The *current slot* (the level-0 slot of the cursor's tick `elapsed`)
//!    is sorted by `(deadline, insertion sequence)` from its head, and its
//!    tail is known (`current_tail`). An `advance` that moves the cursor to
//!    a new tick sorts that tick's slot once (what cascading and earlier
//!    insertions left there, unordered); an insertion into the current slot
//!    goes to its place, found from the tail (a later insertion is usually
//!    a later deadline: O(1)). So a pass that stays in the same millisecond
//!    takes out only the due prefix, O(due), and `next_deadline` in it is
//!    the head's deadline, O(1): a millisecond holding thousands of
//!    sub-millisecond deadlines (a sleep storm) costs one sort, not a walk
//!    of the whole slot per pass.
//! 9. The list logic (rules 1–8) is the same whatever holds the entries: it
//!    reaches an entry's [`Node`] (key parts and links) only through the
//!    wheel's [`Store`], by the store's `Ref`, for an entry that is linked
//!    or that `advance` has just detached; what an entry carries besides,
//!    and how it is named to callers and released, is the store's
//!    (the slab: a payload, a generational [`TimerKey`], a free list).

use crate::types::Time;

/// Nanoseconds per level-0 tick (1 ms).
const TICK_NS: u64 = 1_000_000;
/// Number of wheel levels.
const LEVELS: usize = 6;
/// log2 of the number of slots per level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Mask selecting one level digit.
const SLOT_MASK: u64 = (SLOTS as u64) - 1;
/// Ticks covered by the whole wheel, as a bit count: `64^6 = 2^36`.
const WHEEL_BITS: u32 = LEVELS as u32 * SLOT_BITS;
/// The tick of [`Time::MAX`]; no deadline has a larger tick.
const MAX_TICK: u64 = u64::MAX / TICK_NS;
/// Overflow buckets, one per epoch (`tick >> WHEEL_BITS`) up to `MAX_TICK`.
const OVERFLOW_BUCKETS: usize = (MAX_TICK >> WHEEL_BITS) as usize + 1;
/// Words of the overflow occupancy bitmap.
const OVERFLOW_WORDS: usize = OVERFLOW_BUCKETS.div_ceil(64);

// List ids: every list head lives in one flat array indexed by a `ListId`.
// `level * SLOTS + slot` for the wheel, then the overflow buckets, then the
// expired list.
/// Index of a list head in [`TimerWheel::heads`].
type ListId = u16;
/// First overflow bucket list id.
const OVERFLOW_BASE: usize = LEVELS * SLOTS;
/// The expired list (rule 2).
const EXPIRED: ListId = (OVERFLOW_BASE + OVERFLOW_BUCKETS) as ListId;
/// Total number of lists.
const LIST_COUNT: usize = EXPIRED as usize + 1;
/// Marks an entry that has been unlinked during `advance` and is about to fire.
const DETACHED: ListId = ListId::MAX;
/// Marks a free slot of the slab store.
const VACANT: ListId = ListId::MAX - 1;
/// Null slab index.
const NIL: u32 = u32::MAX;

/// The level-0 tick containing `t`.
fn tick_of(t: Time) -> u64 {
    t.as_nanos() / TICK_NS
}

/// The level (`>= LEVELS` means overflow) at which an entry for tick `t` is
/// placed when the cursor is at `elapsed` (rule 3).
fn level_for(elapsed: u64, t: u64) -> usize {
    // `| SLOT_MASK` so that `t == elapsed` (and any difference confined to
    // the lowest digit) lands on level 0.
    let masked = (elapsed ^ t) | SLOT_MASK;
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

/// Handle to a pending entry of a [`TimerWheel`].
///
/// Keys are generational: once the entry has fired or been cancelled, the key
/// never resolves again, even if the entry's storage is reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct TimerKey {
    /// Slab index of the entry.
    index: u32,
    /// Insertion sequence number; unique per insertion, never reused.
    seq: u64,
}

/// Rule 9: a pending entry's place in the lists, wherever the entry
/// lives (its store): its key parts and its two links.
#[derive(Debug)]
pub(crate) struct Node<R> {
    /// Insertion sequence number (the key's generation and the tie-breaker).
    seq: u64,
    /// When the entry fires.
    deadline: Time,
    /// The list the entry is linked into, or [`DETACHED`].
    list: ListId,
    /// Previous entry in the list, or the store's `NIL` if this is the head.
    prev: R,
    /// Next entry in the list, or the store's `NIL`.
    next: R,
}

/// Rule 9: where a wheel's entries live. The wheel links them through
/// their [`Node`]s, reached by `Ref`; a store hands out the node of any
/// entry that is linked, or detached by `advance` and not yet released.
pub(crate) trait Store {
    /// How the wheel names an entry.
    type Ref: Copy + Eq + std::fmt::Debug;
    /// No entry.
    const NIL: Self::Ref;
    /// The node of a linked (or just detached) entry.
    fn node(&self, r: Self::Ref) -> &Node<Self::Ref>;
    /// The node of a linked (or just detached) entry.
    fn node_mut(&mut self, r: Self::Ref) -> &mut Node<Self::Ref>;
}

/// A slot of the slab store: a node, and the caller's payload while the
/// slot holds a pending entry.
///
/// The node is a plain field, not behind a vacant/occupied tag: relinking
/// a neighbour (the hot half of a cancel) is then a blind store into its
/// node, which retires without waiting for the neighbour's cache line,
/// where matching on a tag first would stall on it. One cache line per
/// slot: a cancel touches its own entry and its neighbours' nodes, one
/// line each, and workers cancelling neighbouring entries write no line
/// in common but those nodes.
struct Entry<T> {
    /// The entry's node; in a free slot, `list` is [`VACANT`] and `next`
    /// is the next free slot (or [`NIL`]).
    node: Node<u32>,
    /// The caller's payload; `None` in a free slot.
    payload: Option<T>,
}

/// The slab store (rule 9): entries in a `Vec` of generational slots,
/// named by index; a freed slot is reused.
pub(crate) struct Slab<T> {
    slots: Vec<Entry<T>>,
    /// Head of the free list in `slots` (threaded through `node.next`), or
    /// [`NIL`].
    free_head: u32,
}

impl<T> Store for Slab<T> {
    type Ref = u32;
    const NIL: u32 = NIL;

    fn node(&self, index: u32) -> &Node<u32> {
        let node = &self.slots[index as usize].node;
        debug_assert!(node.list != VACANT, "linked index {index} is vacant");
        node
    }

    fn node_mut(&mut self, index: u32) -> &mut Node<u32> {
        let node = &mut self.slots[index as usize].node;
        debug_assert!(node.list != VACANT, "linked index {index} is vacant");
        node
    }
}

/// A slot or bucket the cursor will reach next (see `next_event`).
struct Event {
    /// The list to process.
    list: ListId,
    /// Wheel level of the list; [`LEVELS`] for an overflow bucket.
    level: usize,
    /// First tick covered by the list.
    start: u64,
}

/// A hierarchical timer wheel over the entries of store `S` (rule 9).
///
/// See the module documentation for the layout and the invariants.
pub(crate) struct Wheel<S: Store> {
    /// Where the entries live.
    store: S,
    /// Head of every list, indexed by [`ListId`].
    heads: Box<[S::Ref]>,
    /// Per level, bit `s` is set iff slot `s` is non-empty.
    occupied: [u64; LEVELS],
    /// Bit `e` is set iff overflow bucket `e` is non-empty.
    overflow_occupied: [u64; OVERFLOW_WORDS],
    /// The high-water mark of `advance` (rule 1).
    now: Time,
    /// The cursor tick: `tick(now)` between calls; moves through slot starts
    /// during `advance`.
    elapsed: u64,
    /// Sequence number for the next insertion.
    next_seq: u64,
    /// Number of pending entries.
    len: usize,
    /// Reused buffer of the entries fired by one `advance`.
    fire_scratch: Vec<S::Ref>,
    /// Rule 8: the last entry of the current slot (level 0, tick
    /// `elapsed`), or the store's `NIL` when it is empty.
    current_tail: S::Ref,
    /// Reused buffer for sorting a new current slot (rule 8).
    sort_scratch: Vec<S::Ref>,
}

/// A hierarchical timer wheel holding payloads of type `T` keyed by
/// deadline, in a slab (rule 9).
pub(crate) type TimerWheel<T> = Wheel<Slab<T>>;

impl<T> TimerWheel<T> {
    /// Creates an empty wheel whose current time is `start`.
    pub(crate) fn new(start: Time) -> Self {
        Wheel {
            store: Slab {
                slots: Vec::new(),
                free_head: NIL,
            },
            heads: vec![NIL; LIST_COUNT].into_boxed_slice(),
            occupied: [0; LEVELS],
            overflow_occupied: [0; OVERFLOW_WORDS],
            now: start,
            elapsed: tick_of(start),
            next_seq: 0,
            len: 0,
            fire_scratch: Vec::new(),
            current_tail: NIL,
            sort_scratch: Vec::new(),
        }
    }

    /// Inserts `payload` to fire at `deadline`, in O(1).
    ///
    /// A deadline at or before the wheel's current time fires on the next
    /// [`advance`](Self::advance), whatever time that call passes.
    ///
    /// # Panics
    ///
    /// If more than `u32::MAX - 1` entries are pending at once.
    pub(crate) fn insert(&mut self, deadline: Time, payload: T) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry {
            node: Node {
                seq,
                deadline,
                list: DETACHED,
                prev: NIL,
                next: NIL,
            },
            payload: Some(payload),
        };
        let store = &mut self.store;
        let index = if store.free_head != NIL {
            let index = store.free_head;
            let slot = &mut store.slots[index as usize];
            debug_assert_eq!(slot.node.list, VACANT, "free list reaches an occupied slot");
            store.free_head = slot.node.next;
            *slot = entry;
            index
        } else {
            // `NIL` is reserved, so the largest usable index is `NIL - 1`.
            let index = u32::try_from(store.slots.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("timer wheel: too many pending entries");
            store.slots.push(entry);
            index
        };
        self.place(index);
        TimerKey { index, seq }
    }

    /// Removes the entry for `key` and returns its payload, in O(1).
    ///
    /// Returns `None` if the entry already fired or was cancelled.
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.entry(key)?;
        self.unlink(key.index);
        self.len -= 1;
        Some(self.release(key.index))
    }

    /// The payload of the pending entry for `key`, if any.
    #[allow(dead_code)] // Used by tests.
    pub(crate) fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        match self.store.slots.get_mut(key.index as usize) {
            Some(e) if e.node.seq == key.seq && e.node.list != VACANT => e.payload.as_mut(),
            _ => None,
        }
    }

    /// The deadline of the pending entry for `key`, if any.
    #[allow(dead_code)] // Used by tests and the lab's diagnostics.
    pub(crate) fn deadline(&self, key: TimerKey) -> Option<Time> {
        self.entry(key).map(|e| e.node.deadline)
    }

    /// Advances the wheel to `now`, removing every entry whose deadline is
    /// `<= now` and appending it to `fired` in `(deadline, insertion)` order
    /// (rules 1, 2, 5, 6; see [`Wheel::advance_refs`]).
    pub(crate) fn advance(&mut self, now: Time, fired: &mut Vec<(TimerKey, T)>) {
        let mut scratch = self.advance_refs(now);
        fired.reserve(scratch.len());
        for &index in &scratch {
            let seq = self.store.node(index).seq;
            let payload = self.release(index);
            fired.push((TimerKey { index, seq }, payload));
        }
        scratch.clear();
        self.fire_scratch = scratch;
    }

    /// The pending entry for `key`, if the key is still live.
    fn entry(&self, key: TimerKey) -> Option<&Entry<T>> {
        // A free slot keeps its last entry's sequence: `VACANT` tells.
        match self.store.slots.get(key.index as usize) {
            Some(e) if e.node.seq == key.seq && e.node.list != VACANT => Some(e),
            _ => None,
        }
    }

    /// Frees the (already unlinked) slot at `index` and returns its payload.
    fn release(&mut self, index: u32) -> T {
        let store = &mut self.store;
        let slot = &mut store.slots[index as usize];
        slot.node.list = VACANT;
        slot.node.next = store.free_head;
        store.free_head = index;
        slot.payload
            .take()
            .unwrap_or_else(|| unreachable!("released index {index} is vacant"))
    }
}

impl<S: Store> Wheel<S> {
    /// Links the detached entry `r` (just inserted) where rules 2, 3 and 8
    /// place it, and counts it.
    fn place(&mut self, r: S::Ref) {
        let deadline = self.store.node(r).deadline;
        let list = self.list_for(deadline);
        if list == self.current_slot() {
            self.link_sorted_current(r);
        } else {
            self.link(r, list);
        }
        self.len += 1;
    }

    /// The exact earliest deadline among pending entries, if any.
    ///
    /// Costs O(levels + overflow bitmap words + entries in one list).
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        // Rule 2/4: expired entries precede everything in the wheel, and the
        // next event's list precedes every other list.
        let list = if self.heads[EXPIRED as usize] != S::NIL {
            EXPIRED
        } else {
            self.next_event()?.list
        };
        if list == self.current_slot() {
            // Rule 8: sorted, the earliest first.
            return Some(self.store.node(self.heads[list as usize]).deadline);
        }
        let mut best: Option<Time> = None;
        let mut index = self.heads[list as usize];
        while index != S::NIL {
            let e = self.store.node(index);
            best = Some(best.map_or(e.deadline, |b| b.min(e.deadline)));
            index = e.next;
        }
        debug_assert!(best.is_some(), "next list is empty");
        best
    }

    /// A lower bound on [`next_deadline`](Self::next_deadline) found in
    /// O(levels) without scanning a list: the start of the slot (or bucket)
    /// the cursor reaches next. Advancing to it either fires the earliest
    /// entries or cascades them to lower levels, so a driver that sleeps
    /// until this bound and asks again never misses a deadline.
    pub(crate) fn next_deadline_bound(&self) -> Option<Time> {
        if self.heads[EXPIRED as usize] != S::NIL {
            return Some(self.now);
        }
        let start = self.next_event()?.start;
        Some(Time::from_nanos(start.saturating_mul(TICK_NS)).max(self.now))
    }

    /// The generic part of `advance` (rule 9): detaches every due entry
    /// and returns them in firing order, in the reused scratch buffer,
    /// which the caller empties and gives back (`fire_scratch`).
    ///
    /// Advances the wheel to `now`, removing every entry whose deadline is
    /// `<= now` and appending it to `fired` in `(deadline, insertion)` order.
    ///
    /// If `now` is earlier than a previous `now`, time does not move
    /// backwards, but entries inserted since then with a deadline at or
    /// before the previous `now` still fire.
    fn advance_refs(&mut self, now: Time) -> Vec<S::Ref> {
        // Rule 1: never rewind.
        let now = now.max(self.now);
        self.now = now;
        let target = tick_of(now);
        let old_tick = self.elapsed;
        if target != old_tick {
            // Rule 8: the slot that becomes current is sorted below (if it
            // holds anything); the old one fires whole.
            self.current_tail = S::NIL;
        }
        let mut scratch = std::mem::take(&mut self.fire_scratch);
        debug_assert!(scratch.is_empty());

        // Rule 2: everything inserted already-due fires now.
        let mut index = self.take_list(EXPIRED);
        while index != S::NIL {
            let next = self.store.node(index).next;
            self.store.node_mut(index).list = DETACHED;
            scratch.push(index);
            index = next;
        }

        // Rule 5: visit occupied slots/buckets in tick order up to `target`.
        while let Some(event) = self.next_event() {
            if event.start > target {
                break;
            }
            // `max` is defensive: rule 4 says `start >= elapsed` already.
            self.elapsed = self.elapsed.max(event.start);
            if event.level == 0 && event.start == target {
                // The slot of `target`, the current slot from now on: take
                // out its due prefix (rule 8). It is the last event.
                if target == old_tick {
                    self.fire_sorted_prefix(event.list, now, &mut scratch);
                } else {
                    self.sort_new_current(event.list, now, &mut scratch);
                }
                break;
            }
            let mut index = self.take_list(event.list);
            if event.level == 0 {
                // A tick before `target`: every entry in it is due.
                while index != S::NIL {
                    let next = self.store.node(index).next;
                    self.store.node_mut(index).list = DETACHED;
                    scratch.push(index);
                    index = next;
                }
            } else {
                while index != S::NIL {
                    let next = self.store.node(index).next;
                    let t = tick_of(self.store.node(index).deadline);
                    let list = self.wheel_list_for(t);
                    debug_assert!(list != event.list, "cascade must move down");
                    self.link(index, list);
                    index = next;
                }
            }
        }
        self.elapsed = target;

        // Rule 6: deterministic order. Keys are unique, so unstable is fine.
        scratch.sort_unstable_by_key(|&i| {
            let e = self.store.node(i);
            (e.deadline, e.seq)
        });
        self.len -= scratch.len();
        scratch
    }

    /// The wheel's current time (rule 1).
    pub(crate) fn now(&self) -> Time {
        self.now
    }

    /// Number of pending entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no entries are pending.
    #[allow(dead_code)] // Used by tests and the lab's diagnostics.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    // ----- internals -----

    /// The current slot's list (rule 8): level 0, the cursor's tick.
    fn current_slot(&self) -> ListId {
        (self.elapsed & SLOT_MASK) as ListId
    }

    /// Rule 8: links the detached entry at `index` (the newest insertion)
    /// into the current slot at its sorted place, searching from the tail.
    fn link_sorted_current(&mut self, index: S::Ref) {
        let list = self.current_slot();
        let deadline = self.store.node(index).deadline;
        // Earlier insertions with an equal deadline stay ahead (rule 6).
        let mut after = self.current_tail;
        while after != S::NIL && self.store.node(after).deadline > deadline {
            after = self.store.node(after).prev;
        }
        if after == S::NIL {
            if self.heads[list as usize] == S::NIL {
                self.current_tail = index;
            }
            self.link(index, list);
            return;
        }
        let next = self.store.node(after).next;
        let e = self.store.node_mut(index);
        e.list = list;
        e.prev = after;
        e.next = next;
        self.store.node_mut(after).next = index;
        if next == S::NIL {
            self.current_tail = index;
        } else {
            self.store.node_mut(next).prev = index;
        }
    }

    /// Rule 8, the cursor stays in its tick: detaches the current slot's
    /// entries due at `now` (a sorted prefix) onto `fired`.
    fn fire_sorted_prefix(&mut self, list: ListId, now: Time, fired: &mut Vec<S::Ref>) {
        let mut index = self.heads[list as usize];
        while index != S::NIL && self.store.node(index).deadline <= now {
            let next = self.store.node(index).next;
            self.unlink(index);
            fired.push(index);
            index = next;
        }
    }

    /// Rule 8, the cursor moved to the tick of `list`: sorts the slot,
    /// detaches its entries due at `now` onto `fired` and re-links the rest
    /// in order, noting the tail.
    fn sort_new_current(&mut self, list: ListId, now: Time, fired: &mut Vec<S::Ref>) {
        let mut order = std::mem::take(&mut self.sort_scratch);
        let mut index = self.take_list(list);
        while index != S::NIL {
            order.push(index);
            index = self.store.node(index).next;
        }
        order.sort_unstable_by_key(|&i| {
            let e = self.store.node(i);
            (e.deadline, e.seq)
        });
        let due = order.partition_point(|&i| self.store.node(i).deadline <= now);
        for &i in &order[..due] {
            self.store.node_mut(i).list = DETACHED;
            fired.push(i);
        }
        // Linked at the front, latest first: the list ends up sorted.
        self.current_tail = order
            .get(due..)
            .and_then(|r| r.last())
            .copied()
            .unwrap_or(S::NIL);
        for &i in order[due..].iter().rev() {
            self.link(i, list);
        }
        order.clear();
        self.sort_scratch = order;
    }

    /// The list a newly inserted entry with `deadline` belongs in (rules 2, 3).
    fn list_for(&self, deadline: Time) -> ListId {
        if deadline <= self.now {
            return EXPIRED;
        }
        self.wheel_list_for(tick_of(deadline))
    }

    /// The wheel slot or overflow bucket for tick `t`, relative to the cursor
    /// (rule 3). Cascading uses this directly: during `advance`, `now` is
    /// already the new time, and due entries must reach level 0 (and fire in
    /// order from there) rather than the expired list.
    fn wheel_list_for(&self, t: u64) -> ListId {
        debug_assert!(t >= self.elapsed, "placing a tick behind the cursor");
        let level = level_for(self.elapsed, t);
        let id = if level < LEVELS {
            level * SLOTS + ((t >> (level as u32 * SLOT_BITS)) & SLOT_MASK) as usize
        } else {
            OVERFLOW_BASE + (t >> WHEEL_BITS) as usize
        };
        id as ListId
    }

    /// Sets or clears the occupancy bit of `list` (the expired list has none).
    fn set_occupied(&mut self, list: ListId, on: bool) {
        let id = list as usize;
        let (word, bit) = if id < OVERFLOW_BASE {
            (&mut self.occupied[id / SLOTS], id % SLOTS)
        } else if list != EXPIRED {
            let e = id - OVERFLOW_BASE;
            (&mut self.overflow_occupied[e / 64], e % 64)
        } else {
            return;
        };
        if on {
            *word |= 1 << bit;
        } else {
            *word &= !(1 << bit);
        }
    }

    /// Pushes the detached entry at `index` onto the front of `list`.
    fn link(&mut self, index: S::Ref, list: ListId) {
        let head = self.heads[list as usize];
        if head != S::NIL {
            self.store.node_mut(head).prev = index;
        } else {
            self.set_occupied(list, true);
        }
        let e = self.store.node_mut(index);
        e.list = list;
        e.prev = S::NIL;
        e.next = head;
        self.heads[list as usize] = index;
    }

    /// Unlinks the entry at `index` from its list.
    fn unlink(&mut self, index: S::Ref) {
        let (list, prev, next) = {
            let e = self.store.node(index);
            (e.list, e.prev, e.next)
        };
        debug_assert!(list != DETACHED, "unlinking a detached entry");
        if prev != S::NIL {
            self.store.node_mut(prev).next = next;
        } else {
            self.heads[list as usize] = next;
            if next == S::NIL {
                self.set_occupied(list, false);
            }
        }
        if next != S::NIL {
            self.store.node_mut(next).prev = prev;
        }
        if index == self.current_tail {
            // Rule 8: only the current slot's last entry is its tail.
            self.current_tail = prev;
        }
        self.store.node_mut(index).list = DETACHED;
    }

    /// Empties `list` and returns its former head; the caller must re-link
    /// or release every entry reachable from it (reading `next` first).
    fn take_list(&mut self, list: ListId) -> S::Ref {
        let head = std::mem::replace(&mut self.heads[list as usize], S::NIL);
        if head != S::NIL {
            self.set_occupied(list, false);
        }
        head
    }

    /// The occupied wheel slot or overflow bucket the cursor reaches first
    /// (rule 4): the next occupied slot at or after the cursor's digit on the
    /// lowest occupied level, else the lowest occupied overflow bucket.
    fn next_event(&self) -> Option<Event> {
        for level in 0..LEVELS {
            let shift = level as u32 * SLOT_BITS;
            let digit = (self.elapsed >> shift) & SLOT_MASK;
            let candidates = self.occupied[level] & (u64::MAX << digit);
            debug_assert_eq!(
                self.occupied[level] & !(u64::MAX << digit),
                0,
                "level {level} has a slot behind the cursor"
            );
            if candidates != 0 {
                let slot = u64::from(candidates.trailing_zeros());
                // Keep the digits above this level, replace this digit,
                // zero the ones below.
                let block = !((1u64 << (shift + SLOT_BITS)) - 1);
                return Some(Event {
                    list: (level * SLOTS + slot as usize) as ListId,
                    level,
                    start: (self.elapsed & block) | (slot << shift),
                });
            }
        }
        let (word, bits) = self
            .overflow_occupied
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)?;
        let epoch = word * 64 + bits.trailing_zeros() as usize;
        debug_assert!(epoch as u64 > self.elapsed >> WHEEL_BITS);
        Some(Event {
            list: (OVERFLOW_BASE + epoch) as ListId,
            level: LEVELS,
            start: (epoch as u64) << WHEEL_BITS,
        })
    }
}

#[cfg(test)]
impl<T> TimerWheel<T> {
    /// Checks every rule of the module documentation; panics on violation.
    fn assert_invariants(&self) {
        assert_eq!(
            self.elapsed,
            tick_of(self.now),
            "rule 1: cursor is tick(now)"
        );
        let mut seen = 0;
        for list in 0..LIST_COUNT {
            let list = list as ListId;
            let mut prev = NIL;
            let mut index = self.heads[list as usize];
            while index != NIL {
                let e = self.store.node(index);
                assert_eq!(e.list, list);
                assert_eq!(e.prev, prev);
                assert!(e.seq < self.next_seq);
                let t = tick_of(e.deadline);
                let id = list as usize;
                if list == EXPIRED {
                    assert!(e.deadline <= self.now, "rule 2");
                } else {
                    assert!(e.deadline > self.now, "rule 2");
                    if id < OVERFLOW_BASE {
                        let (level, slot) = (id / SLOTS, (id % SLOTS) as u64);
                        let shift = level as u32 * SLOT_BITS;
                        let above = shift + SLOT_BITS;
                        assert_eq!(t >> above, self.elapsed >> above, "rule 4");
                        assert_eq!((t >> shift) & SLOT_MASK, slot, "rule 4");
                        let digit = (self.elapsed >> shift) & SLOT_MASK;
                        if level == 0 {
                            assert!(slot >= digit, "rule 4");
                        } else {
                            assert!(slot > digit, "rule 4");
                        }
                    } else {
                        let epoch = (id - OVERFLOW_BASE) as u64;
                        assert_eq!(t >> WHEEL_BITS, epoch, "rule 3");
                        assert!(epoch > self.elapsed >> WHEEL_BITS, "rule 4");
                    }
                }
                seen += 1;
                prev = index;
                index = e.next;
            }
            if list != EXPIRED {
                let id = list as usize;
                let bit = if id < OVERFLOW_BASE {
                    self.occupied[id / SLOTS] >> (id % SLOTS) & 1
                } else {
                    let e = id - OVERFLOW_BASE;
                    self.overflow_occupied[e / 64] >> (e % 64) & 1
                };
                assert_eq!(bit == 1, self.heads[id] != NIL, "occupancy bit of {id}");
            }
        }
        assert_eq!(seen, self.len);
        // Rule 8: the current slot is sorted and its tail known.
        let mut last: Option<(Time, u64)> = None;
        let mut tail = NIL;
        let mut index = self.heads[self.current_slot() as usize];
        while index != NIL {
            let e = self.store.node(index);
            assert!(last < Some((e.deadline, e.seq)), "rule 8: sorted");
            last = Some((e.deadline, e.seq));
            tail = index;
            index = e.next;
        }
        assert_eq!(self.current_tail, tail, "rule 8: the tail");
        let occupied = self
            .store
            .slots
            .iter()
            .filter(|s| s.node.list != VACANT)
            .count();
        assert_eq!(occupied, self.len, "every occupied slot is linked");
        let mut free = 0;
        let mut index = self.store.free_head;
        while index != NIL {
            let slot = &self.store.slots[index as usize];
            assert_eq!(slot.node.list, VACANT, "free list reaches an occupied slot");
            assert!(slot.payload.is_none(), "a free slot holds no payload");
            free += 1;
            index = slot.node.next;
        }
        assert_eq!(free + self.len, self.store.slots.len());
        // Unused high bits of the overflow bitmap stay clear.
        for e in OVERFLOW_BUCKETS..OVERFLOW_WORDS * 64 {
            assert_eq!(self.overflow_occupied[e / 64] >> (e % 64) & 1, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    const MS: u64 = TICK_NS;

    fn ms(n: u64) -> Time {
        Time::from_millis(n)
    }

    fn ns(n: u64) -> Time {
        Time::from_nanos(n)
    }

    /// Advances and returns the fired payloads, checking invariants.
    fn fire<T>(wheel: &mut TimerWheel<T>, now: Time) -> Vec<T> {
        let mut fired = Vec::new();
        wheel.advance(now, &mut fired);
        wheel.assert_invariants();
        fired.into_iter().map(|(_, p)| p).collect()
    }

    #[test]
    fn an_entry_never_fires_before_its_deadline() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        let deadline = ns(5 * MS + 123_456);
        wheel.insert(deadline, "a");
        assert!(fire(&mut wheel, ms(5)).is_empty());
        assert!(fire(&mut wheel, ns(deadline.as_nanos() - 1)).is_empty());
        assert_eq!(wheel.len(), 1);
        assert_eq!(fire(&mut wheel, deadline), vec!["a"]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn sub_millisecond_deadlines_in_the_same_slot_fire_separately() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        let base = 7 * MS;
        wheel.insert(ns(base + 900_000), 3);
        wheel.insert(ns(base + 1), 1);
        wheel.insert(ns(base + 500_000), 2);
        wheel.insert(ns(base), 0);
        assert_eq!(fire(&mut wheel, ns(base)), vec![0]);
        assert_eq!(fire(&mut wheel, ns(base + 1)), vec![1]);
        assert_eq!(wheel.next_deadline(), Some(ns(base + 500_000)));
        assert_eq!(fire(&mut wheel, ns(base + 499_999)), Vec::<i32>::new());
        assert_eq!(fire(&mut wheel, ns(base + 899_999)), vec![2]);
        // Inserting into the current, partially fired slot still works.
        wheel.insert(ns(base + 899_999 + 1), 4);
        assert_eq!(wheel.next_deadline(), Some(ns(base + 900_000)));
        assert_eq!(fire(&mut wheel, ns(base + 900_000)), vec![3, 4]);
        assert!(wheel.is_empty());
    }

    /// Rule 8: a millisecond full of sub-millisecond deadlines, inserted
    /// out of order before and after the cursor reaches it (and with its
    /// tail cancelled), fires pass by pass in order, each pass only what
    /// is due; the next deadline is always exact.
    #[test]
    fn the_current_millisecond_fires_in_order_pass_by_pass() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        let base = 9 * MS;
        // Before the cursor reaches 9 ms: unordered, in a future slot.
        let offsets = [700_000, 100, 300_000, 100, 999_999, 5];
        for (i, off) in offsets.iter().enumerate() {
            wheel.insert(ns(base + off), i);
        }
        assert_eq!(fire(&mut wheel, ns(base + 50)), vec![5]);
        assert_eq!(wheel.next_deadline(), Some(ns(base + 100)));
        // Into the current slot: before, between and after the others.
        wheel.insert(ns(base + 200), 6);
        let tail = wheel.insert(ns(base + 999_999), 7);
        wheel.insert(ns(base + 60), 8);
        wheel.assert_invariants();
        assert_eq!(wheel.next_deadline(), Some(ns(base + 60)));
        assert!(wheel.cancel(tail).is_some(), "the tail leaves");
        wheel.assert_invariants();
        wheel.insert(ns(base + 800_000), 9);
        assert_eq!(fire(&mut wheel, ns(base + 100)), vec![8, 1, 3]);
        assert_eq!(fire(&mut wheel, ns(base + 299_999)), vec![6]);
        assert_eq!(wheel.next_deadline(), Some(ns(base + 300_000)));
        assert_eq!(fire(&mut wheel, ns(base + 800_000)), vec![2, 0, 9]);
        assert_eq!(fire(&mut wheel, ns(base + MS)), vec![4]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn fired_entries_come_out_in_deadline_then_insertion_order() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        // Spread across levels, with ties at several deadlines.
        let deadlines = [
            ms(4_000),
            ms(3),
            ns(3 * MS + 1),
            ms(3),
            ms(70),
            ms(4_000),
            ms(1),
            ms(70),
            ns(1),
        ];
        for (i, d) in deadlines.iter().enumerate() {
            wheel.insert(*d, i);
        }
        let got = fire(&mut wheel, ms(10_000));
        let mut expected: Vec<(Time, usize)> = deadlines.iter().copied().zip(0..).collect();
        expected.sort();
        assert_eq!(got, expected.iter().map(|(_, i)| *i).collect::<Vec<_>>());
        assert_eq!(got, vec![8, 6, 1, 3, 2, 4, 7, 0, 5]);
    }

    #[test]
    fn entries_at_or_before_the_current_time_fire_on_the_next_advance() {
        let mut wheel = TimerWheel::new(ms(100));
        wheel.insert(ms(100), "now");
        wheel.insert(ms(3), "past");
        wheel.insert(Time::ZERO, "epoch");
        wheel.insert(ns(100 * MS + 1), "future");
        assert_eq!(wheel.next_deadline(), Some(Time::ZERO));
        // Any `now`, even one before the deadlines, fires them.
        assert_eq!(fire(&mut wheel, Time::ZERO), vec!["epoch", "past", "now"]);
        assert_eq!(wheel.len(), 1);
        assert_eq!(fire(&mut wheel, ns(100 * MS + 1)), vec!["future"]);
    }

    #[test]
    fn advancing_backwards_never_rewinds_time_but_fires_due_entries() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        wheel.insert(ms(50), 1);
        assert!(fire(&mut wheel, ms(40)).is_empty());
        assert!(fire(&mut wheel, ms(10)).is_empty());
        // Time is still 40 ms: 30 ms is already due, 45 ms is not.
        wheel.insert(ms(30), 2);
        wheel.insert(ms(45), 3);
        assert_eq!(fire(&mut wheel, ms(5)), vec![2]);
        assert_eq!(wheel.next_deadline(), Some(ms(45)));
        assert_eq!(fire(&mut wheel, ms(50)), vec![3, 1]);
    }

    #[test]
    fn cancelled_keys_never_resolve_again() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        let old = wheel.insert(ms(10), "old");
        assert_eq!(wheel.deadline(old), Some(ms(10)));
        assert_eq!(wheel.cancel(old), Some("old"));
        assert_eq!(wheel.cancel(old), None);
        // The slab slot is reused, but the old key stays dead.
        let new = wheel.insert(ms(10), "new");
        assert_eq!(new.index, old.index);
        assert_ne!(new, old);
        assert_eq!(wheel.cancel(old), None);
        assert_eq!(wheel.get_mut(old), None);
        assert_eq!(wheel.deadline(old), None);
        assert_eq!(wheel.get_mut(new), Some(&mut "new"));
        wheel.assert_invariants();
        assert_eq!(fire(&mut wheel, ms(10)), vec!["new"]);
    }

    #[test]
    fn fired_keys_never_resolve_again() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        let key = wheel.insert(ms(1), 1);
        let mut fired = Vec::new();
        wheel.advance(ms(1), &mut fired);
        assert_eq!(fired, vec![(key, 1)]);
        let reused = wheel.insert(ms(2), 2);
        assert_eq!(reused.index, key.index);
        assert_eq!(wheel.cancel(key), None);
        assert_eq!(wheel.deadline(key), None);
        assert_eq!(wheel.get_mut(key), None);
        assert_eq!(wheel.deadline(reused), Some(ms(2)));
    }

    #[test]
    fn cancelling_removes_the_entry_from_every_kind_of_list() {
        let mut wheel = TimerWheel::new(ms(1_000));
        let keys: Vec<_> = [ms(0), ms(1_000), ms(1_001), ms(90_000), Time::MAX]
            .into_iter()
            .enumerate()
            .map(|(i, d)| wheel.insert(d, i))
            .collect();
        wheel.assert_invariants();
        for (i, key) in keys.iter().enumerate().rev() {
            assert_eq!(wheel.cancel(*key), Some(i));
            wheel.assert_invariants();
        }
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);
        assert!(fire(&mut wheel, Time::MAX).is_empty());
    }

    #[test]
    fn get_mut_modifies_the_payload_in_place() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        let key = wheel.insert(ms(5), 1);
        *wheel.get_mut(key).unwrap() += 41;
        assert_eq!(fire(&mut wheel, ms(5)), vec![42]);
    }

    #[test]
    fn next_deadline_bound_never_exceeds_the_next_deadline() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        assert_eq!(wheel.next_deadline_bound(), None);
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut fired = Vec::new();
        let mut now = Time::ZERO;
        for round in 0..2_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let delay = match round % 4 {
                0 => rng % MS,
                1 => rng % (64 * MS),
                2 => rng % (64 * 64 * 64 * MS),
                _ => rng % (1 << 50),
            };
            wheel.insert(now + std::time::Duration::from_nanos(delay), round);
            let bound = wheel.next_deadline_bound().expect("an entry is pending");
            let exact = wheel.next_deadline().expect("an entry is pending");
            assert!(bound <= exact, "bound {bound:?} after deadline {exact:?}");
            if round % 3 == 0 {
                now = bound.max(now);
                wheel.advance(now, &mut fired);
            }
        }
    }

    #[test]
    fn next_deadline_is_exact_across_levels() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        assert_eq!(wheel.next_deadline(), None);
        // One entry per level (and overflow), inserted latest first.
        let deadlines: Vec<Time> = (0..=6u32)
            .rev()
            .map(|level| ns(64u64.pow(level) * 3 * MS / 2 + 17))
            .collect();
        let keys: Vec<_> = deadlines.iter().map(|d| wheel.insert(*d, *d)).collect();
        wheel.assert_invariants();
        // Cancel the earliest repeatedly: the minimum moves up a level.
        for (key, d) in keys.iter().zip(&deadlines).rev() {
            assert_eq!(wheel.next_deadline(), Some(*d));
            wheel.cancel(*key);
        }
        assert_eq!(wheel.next_deadline(), None);
        // Within one high-level slot the minimum is found by scanning it.
        for d in [ms(200_000), ns(190_000 * MS + 5), ms(250_000)] {
            wheel.insert(d, d);
        }
        assert_eq!(wheel.next_deadline(), Some(ns(190_000 * MS + 5)));
        // And it stays exact as time moves.
        let mut now = Time::ZERO;
        while let Some(d) = wheel.next_deadline() {
            assert!(fire(&mut wheel, ns(d.as_nanos() - 1)).is_empty());
            now = d;
            assert_eq!(fire(&mut wheel, now), vec![d]);
        }
        assert_eq!(now, ms(250_000));
    }

    #[test]
    fn entries_cascade_across_level_boundaries() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        let mut deadlines = Vec::new();
        for level in 1..=6u32 {
            let boundary = 64u64.pow(level) * MS;
            for d in [boundary - 1, boundary, boundary + 1, boundary + MS] {
                deadlines.push(ns(d));
            }
        }
        for d in &deadlines {
            wheel.insert(*d, *d);
        }
        wheel.assert_invariants();
        // Step exactly through every deadline and the nanosecond before it.
        for d in &deadlines {
            assert!(fire(&mut wheel, ns(d.as_nanos() - 1)).is_empty(), "{d}");
            assert_eq!(fire(&mut wheel, *d), vec![*d]);
        }
        assert!(wheel.is_empty());
    }

    #[test]
    fn a_big_jump_cascades_everything_in_one_advance() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        let deadlines = [
            ms(1),
            ms(64),
            ms(4_096),
            ms(262_144),
            ms(1 << 36),
            ms(1 << 40),
        ];
        for d in deadlines {
            wheel.insert(d, d);
        }
        assert_eq!(fire(&mut wheel, ms(1 << 40)), deadlines.to_vec());
    }

    #[test]
    fn entries_beyond_the_top_level_fire_at_their_deadline() {
        let start = Time::from_secs(1_000);
        let mut wheel = TimerWheel::new(start);
        let three_years = start + std::time::Duration::from_secs(3 * 365 * 24 * 3600);
        let far = three_years + std::time::Duration::from_nanos(1);
        wheel.insert(Time::MAX, "never");
        wheel.insert(far, "far");
        wheel.assert_invariants();
        assert_eq!(wheel.next_deadline(), Some(far));
        assert!(fire(&mut wheel, three_years).is_empty());
        assert_eq!(fire(&mut wheel, far), vec!["far"]);
        assert_eq!(wheel.next_deadline(), Some(Time::MAX));
        assert!(fire(&mut wheel, ns(u64::MAX - 1)).is_empty());
        assert_eq!(fire(&mut wheel, Time::MAX), vec!["never"]);
        // At the end of time, everything inserted is due at once.
        wheel.insert(Time::MAX, "again");
        assert_eq!(fire(&mut wheel, Time::ZERO), vec!["again"]);
    }

    #[test]
    fn a_nonzero_start_is_the_wheels_current_time() {
        let start = ns(u64::MAX / 3 + 12_345);
        let mut wheel = TimerWheel::new(start);
        wheel.insert(start, 0);
        wheel.insert(ns(start.as_nanos() + 1), 1);
        wheel.insert(ns(start.as_nanos() + 70 * MS), 2);
        assert_eq!(fire(&mut wheel, start), vec![0]);
        assert_eq!(fire(&mut wheel, ns(start.as_nanos() + 70 * MS)), vec![1, 2]);
    }

    #[test]
    fn steady_state_insert_and_cancel_reuse_storage() {
        let mut wheel = TimerWheel::new(Time::ZERO);
        let mut keys: Vec<_> = (0..8).map(|i| wheel.insert(ms(i * 1_000), i)).collect();
        let capacity = wheel.store.slots.len();
        for round in 0..1_000u64 {
            let key = keys.remove(0);
            wheel.cancel(key);
            keys.push(wheel.insert(ms(round * 37 % 100_000), round));
        }
        assert_eq!(wheel.store.slots.len(), capacity);
        assert_eq!(wheel.len(), 8);
        wheel.assert_invariants();
    }

    // ----- model test -----

    #[derive(Clone, Debug)]
    enum Op {
        /// Insert at `now + offset` (or `now - offset` if `past`), or at
        /// `Time::MAX`.
        Insert { offset: u64, past: bool, max: bool },
        /// Cancel the `n`-th key ever issued (modulo), live or stale.
        Cancel(usize),
        /// Advance to `now + delta` (or `now - delta` if `backwards`).
        Advance { delta: u64, backwards: bool },
        /// Query `deadline`/`get_mut` of the `n`-th key ever issued.
        Query(usize),
    }

    /// A non-negative `u64` spread log-uniformly over 0 ..= 2^bits - 1,
    /// so deadlines range from nanoseconds to years (2^56 ns ~ 2.3 years,
    /// 2^63 ns ~ 292 years).
    fn spread() -> impl Strategy<Value = u64> {
        (0u32..=63, any::<u64>()).prop_map(|(bits, v)| v & ((1u64 << bits) - 1))
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (spread(), prop::bool::weighted(0.1), prop::bool::weighted(0.03))
                .prop_map(|(offset, past, max)| Op::Insert { offset, past, max }),
            // Sub-millisecond offsets, so slots get shared.
            2 => (0..3 * MS).prop_map(|offset| Op::Insert { offset, past: false, max: false }),
            2 => any::<usize>().prop_map(Op::Cancel),
            4 => (spread(), prop::bool::weighted(0.15))
                .prop_map(|(delta, backwards)| Op::Advance { delta, backwards }),
            1 => (0..3 * MS).prop_map(|delta| Op::Advance { delta, backwards: false }),
            1 => any::<usize>().prop_map(Op::Query),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_wheel_behaves_like_a_sorted_map(
            start in prop_oneof![Just(0u64), spread(), u64::MAX - (1u64 << 40)..=u64::MAX],
            ops in prop::collection::vec(op(), 1..200),
        ) {
            let mut wheel = TimerWheel::new(ns(start));
            // (deadline, seq) -> (key, payload), plus key -> (deadline, seq).
            let mut model: BTreeMap<(Time, u64), (TimerKey, u64)> = BTreeMap::new();
            let mut live: HashMap<TimerKey, (Time, u64)> = HashMap::new();
            let mut issued: Vec<TimerKey> = Vec::new();
            let mut now = start;
            let mut seq = 0u64;

            for op in ops {
                match op {
                    Op::Insert { offset, past, max } => {
                        let deadline = if max {
                            Time::MAX
                        } else if past {
                            ns(now.saturating_sub(offset))
                        } else {
                            ns(now.saturating_add(offset))
                        };
                        let key = wheel.insert(deadline, seq);
                        prop_assert!(!live.contains_key(&key));
                        model.insert((deadline, seq), (key, seq));
                        live.insert(key, (deadline, seq));
                        issued.push(key);
                        seq += 1;
                    }
                    Op::Cancel(n) => {
                        if issued.is_empty() {
                            continue;
                        }
                        let key = issued[n % issued.len()];
                        let expected = live
                            .remove(&key)
                            .map(|k| model.remove(&k).unwrap().1);
                        prop_assert_eq!(wheel.cancel(key), expected);
                    }
                    Op::Advance { delta, backwards } => {
                        let to = if backwards {
                            now.saturating_sub(delta)
                        } else {
                            now.saturating_add(delta)
                        };
                        let mut fired = Vec::new();
                        wheel.advance(ns(to), &mut fired);
                        // Time never rewinds; everything due by then fires.
                        now = now.max(to);
                        let rest = model.split_off(&(ns(now), u64::MAX));
                        let expected: Vec<_> =
                            std::mem::replace(&mut model, rest).into_values().collect();
                        for (key, _) in &expected {
                            live.remove(key);
                        }
                        prop_assert_eq!(fired, expected);
                    }
                    Op::Query(n) => {
                        if issued.is_empty() {
                            continue;
                        }
                        let key = issued[n % issued.len()];
                        let expected = live.get(&key).copied();
                        prop_assert_eq!(wheel.deadline(key), expected.map(|(d, _)| d));
                        prop_assert_eq!(
                            wheel.get_mut(key).map(|p| *p),
                            expected.map(|(_, s)| s)
                        );
                    }
                }
                wheel.assert_invariants();
                prop_assert_eq!(wheel.len(), model.len());
                prop_assert_eq!(wheel.is_empty(), model.is_empty());
                prop_assert_eq!(
                    wheel.next_deadline(),
                    model.keys().next().map(|(d, _)| *d)
                );
            }
        }
    }
}
