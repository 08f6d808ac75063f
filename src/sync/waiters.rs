//! A FIFO queue of waiters, the building block of every channel and lock.
//!
//! The queue lives inside a primitive's own lock. Each waiting future owns a
//! [`WaiterKey`]; it registers once, refreshes its waker on later polls, and
//! removes itself when it is dropped (cancelled) — O(1), without disturbing
//! the order of the others.
//!
//! Rules:
//! - WQ1 (FIFO): waiters are served in registration order.
//! - WQ2 (cancel-safe): removing a waiter (any position) leaves the others'
//!   order intact; a key that was removed or served never resolves again
//!   (generational slots).
//! - WQ3 (no lost grants): a waiter is *notified* (given whatever the
//!   primitive hands out) and woken in one step; if it is then dropped before
//!   it consumed the grant, `remove` returns the grant so the primitive can
//!   pass it to the next waiter.
//! - WQ4 (no steady-state allocation): slots are reused; the queue allocates
//!   only when it grows past its largest size so far.

use std::task::Waker;

/// Identifies one registered waiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct WaiterKey {
    index: u32,
    generation: u32,
}

/// Where a waiter stands.
#[derive(Debug)]
pub(crate) enum WaiterState<G> {
    /// Still waiting.
    Waiting,
    /// Served with grant `G`, not yet collected.
    Notified(G),
}

struct Entry<T, G> {
    waker: Waker,
    data: T,
    state: WaiterState<G>,
    prev: Link,
    next: Link,
}

/// An `Option<u32>` slot index in four bytes (`u32::MAX`: none), so an
/// entry is 8 bytes smaller than with two `Option<u32>`s: a slot of the
/// `Notify` queue takes 40 bytes instead of 48.
#[derive(Clone, Copy)]
struct Link(u32);

impl Link {
    const NONE: Link = Link(u32::MAX);

    fn get(self) -> Option<u32> {
        (self.0 != u32::MAX).then_some(self.0)
    }

    fn take(&mut self) -> Option<u32> {
        std::mem::replace(self, Link::NONE).get()
    }
}

impl From<Option<u32>> for Link {
    fn from(index: Option<u32>) -> Self {
        // `push_back` refuses the index u32::MAX ("fewer than u32::MAX waiters").
        index.map_or(Link::NONE, Link)
    }
}

struct Slot<T, G> {
    generation: u32,
    entry: Option<Entry<T, G>>,
}

/// A FIFO of waiters carrying per-waiter data `T` (e.g. how many permits
/// they want) and receiving grants `G` (e.g. the permits, a message).
pub(crate) struct WaitQueue<T, G = ()> {
    slots: Vec<Slot<T, G>>,
    free: Vec<u32>,
    /// Oldest and newest *waiting* (not yet notified) entries.
    head: Option<u32>,
    tail: Option<u32>,
    waiting: usize,
}

impl<T, G> Default for WaitQueue<T, G> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, G> WaitQueue<T, G> {
    pub(crate) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            head: None,
            tail: None,
            waiting: 0,
        }
    }

    /// Waiters not yet notified.
    pub(crate) fn len(&self) -> usize {
        self.waiting
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    fn entry(&self, key: WaiterKey) -> Option<&Entry<T, G>> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation == key.generation {
            slot.entry.as_ref()
        } else {
            None
        }
    }

    fn entry_mut(&mut self, key: WaiterKey) -> Option<&mut Entry<T, G>> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation == key.generation {
            slot.entry.as_mut()
        } else {
            None
        }
    }

    /// Appends a waiter (WQ1).
    pub(crate) fn push_back(&mut self, waker: Waker, data: T) -> WaiterKey {
        let entry = Entry {
            waker,
            data,
            state: WaiterState::Waiting,
            prev: self.tail.into(),
            next: Link::NONE,
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].entry = Some(entry);
                i
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: Some(entry),
                });
                u32::try_from(self.slots.len() - 1)
                    .ok()
                    .filter(|&i| i != u32::MAX)
                    .expect("fewer than u32::MAX waiters")
            }
        };
        match self.tail {
            Some(t) => {
                self.slots[t as usize]
                    .entry
                    .as_mut()
                    .expect("tail is live")
                    .next = Link(index)
            }
            None => self.head = Some(index),
        }
        self.tail = Some(index);
        self.waiting += 1;
        WaiterKey {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    /// Refreshes the waker of a registered waiter; false if the key is stale.
    pub(crate) fn update_waker(&mut self, key: WaiterKey, waker: &Waker) -> bool {
        match self.entry_mut(key) {
            Some(e) => {
                // A notified entry keeps no waker (see `notify_front`).
                if matches!(e.state, WaiterState::Waiting) && !e.waker.will_wake(waker) {
                    e.waker = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    /// The waiter's state, if the key is live.
    pub(crate) fn state(&self, key: WaiterKey) -> Option<&WaiterState<G>> {
        self.entry(key).map(|e| &e.state)
    }

    /// The oldest waiting entry's data.
    pub(crate) fn front(&self) -> Option<&T> {
        self.head.map(|h| {
            &self.slots[h as usize]
                .entry
                .as_ref()
                .expect("head is live")
                .data
        })
    }

    /// The oldest waiting entry's data, mutably.
    pub(crate) fn front_mut(&mut self) -> Option<&mut T> {
        let h = self.head?;
        Some(
            &mut self.slots[h as usize]
                .entry
                .as_mut()
                .expect("head is live")
                .data,
        )
    }

    /// Every waiting entry's data, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        std::iter::successors(self.head, |&i| {
            self.slots[i as usize]
                .entry
                .as_ref()
                .and_then(|e| e.next.get())
        })
        .map(|i| {
            &self.slots[i as usize]
                .entry
                .as_ref()
                .expect("linked entries are live")
                .data
        })
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next) = {
            let e = self.slots[index as usize]
                .entry
                .as_mut()
                .expect("unlinking a live entry");
            (e.prev.take(), e.next.take())
        };
        match prev {
            Some(p) => self.slots[p as usize].entry.as_mut().expect("linked").next = next.into(),
            None => self.head = next,
        }
        match next {
            Some(n) => self.slots[n as usize].entry.as_mut().expect("linked").prev = prev.into(),
            None => self.tail = prev,
        }
        self.waiting -= 1;
    }

    /// Serves the oldest waiter with `grant` and returns its waker, to be
    /// woken after the primitive's lock is released (WQ3).
    pub(crate) fn notify_front(&mut self, grant: G) -> Option<Waker> {
        let h = self.head?;
        self.unlink(h);
        let e = self.slots[h as usize].entry.as_mut().expect("head is live");
        e.state = WaiterState::Notified(grant);
        // A notified entry is never woken again: hand its waker out instead
        // of cloning it (no reference-count round trip per grant).
        Some(std::mem::replace(&mut e.waker, Waker::noop().clone()))
    }

    /// Serves the oldest waiter by removing it outright: returns its data
    /// and its waker (to be woken after the primitive's lock is released),
    /// and its key never resolves again. For primitives whose waiters learn
    /// of their grant some other way (the mutex's hand-off ticket), so that
    /// collecting it needs no lock.
    pub(crate) fn pop_front(&mut self) -> Option<(T, Waker)> {
        let h = self.head?;
        self.unlink(h);
        let slot = &mut self.slots[h as usize];
        let entry = slot.entry.take().expect("head is live");
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(h);
        Some((entry.data, entry.waker))
    }

    /// Serves every waiting entry with a clone of `grant`; returns their
    /// wakers, to be woken once the primitive's lock is released.
    pub(crate) fn notify_all(&mut self, grant: G) -> WakeList
    where
        G: Clone,
    {
        let mut wakers = WakeList::default();
        while let Some(w) = self.notify_front(grant.clone()) {
            wakers.push(w);
        }
        wakers
    }

    /// Collects the grant of a notified waiter and frees its slot.
    pub(crate) fn take_grant(&mut self, key: WaiterKey) -> Option<G> {
        if !matches!(self.entry(key)?.state, WaiterState::Notified(_)) {
            return None;
        }
        self.release(key).and_then(|(_, state)| match state {
            WaiterState::Notified(g) => Some(g),
            WaiterState::Waiting => None,
        })
    }

    /// Removes a waiter wherever it is (WQ2). Returns its data and, if it was
    /// already notified, the grant it never collected (WQ3).
    pub(crate) fn remove(&mut self, key: WaiterKey) -> Option<(T, Option<G>)> {
        if matches!(self.entry(key)?.state, WaiterState::Waiting) {
            self.unlink(key.index);
        }
        self.release(key).map(|(data, state)| match state {
            WaiterState::Notified(g) => (data, Some(g)),
            WaiterState::Waiting => (data, None),
        })
    }

    fn release(&mut self, key: WaiterKey) -> Option<(T, WaiterState<G>)> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        Some((entry.data, entry.state))
    }
}

/// Wakers collected while a primitive's lock is held, woken after it is
/// released (waking under the lock could re-enter it). The first few are kept
/// inline, so serving one or a handful of waiters does not allocate.
#[derive(Default)]
pub(crate) struct WakeList {
    inline: [Option<Waker>; 4],
    len: usize,
    spill: Vec<Waker>,
}

impl WakeList {
    /// Adds a waker (`None` is ignored, for optional wakers such as a
    /// receiver's slot).
    pub(crate) fn push(&mut self, waker: impl Into<Option<Waker>>) {
        let Some(w) = waker.into() else { return };
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = Some(w),
            None => self.spill.push(w),
        }
        self.len += 1;
    }

    /// Moves every waker of `other` into this list.
    pub(crate) fn extend(&mut self, other: WakeList) {
        for w in other {
            self.push(w);
        }
    }

    /// How many wakers are held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Wakes them all, in the order they were added.
    pub(crate) fn wake(mut self) {
        // Plain indexing rather than the chained iterator: this runs after
        // every grant, usually for one waker.
        let inline = self.len.min(self.inline.len());
        for slot in &mut self.inline[..inline] {
            if let Some(w) = slot.take() {
                w.wake();
            }
        }
        if !self.spill.is_empty() {
            for w in std::mem::take(&mut self.spill) {
                w.wake();
            }
        }
    }
}

impl IntoIterator for WakeList {
    type Item = Waker;
    type IntoIter = std::iter::Chain<
        std::iter::Flatten<std::array::IntoIter<Option<Waker>, 4>>,
        std::vec::IntoIter<Waker>,
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.inline.into_iter().flatten().chain(self.spill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w() -> Waker {
        Waker::noop().clone()
    }

    /// A waiter's slot of a queue with no data and a small grant (the
    /// `Notify` queue's) is the waker plus 24 bytes: the links take four
    /// bytes each.
    #[test]
    fn a_slot_of_a_data_free_queue_takes_forty_bytes() {
        assert_eq!(std::mem::size_of::<Slot<(), u8>>(), 40);
    }

    #[test]
    fn waiters_are_served_in_registration_order() {
        let mut q: WaitQueue<u32, u32> = WaitQueue::new();
        let a = q.push_back(w(), 1);
        let b = q.push_back(w(), 2);
        assert_eq!(q.front(), Some(&1));
        q.notify_front(10);
        q.notify_front(20);
        assert_eq!(q.take_grant(a), Some(10));
        assert_eq!(q.take_grant(b), Some(20));
        assert!(q.is_empty());
    }

    #[test]
    fn a_removed_waiter_leaves_the_others_in_order() {
        let mut q: WaitQueue<u32, ()> = WaitQueue::new();
        let _a = q.push_back(w(), 1);
        let b = q.push_back(w(), 2);
        let _c = q.push_back(w(), 3);
        assert_eq!(q.remove(b), Some((2, None)));
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(q.remove(b), None, "a removed key never resolves again");
    }

    #[test]
    fn a_notified_waiter_that_is_dropped_returns_its_grant() {
        let mut q: WaitQueue<(), u32> = WaitQueue::new();
        let a = q.push_back(w(), ());
        q.notify_front(7);
        assert_eq!(q.remove(a), Some(((), Some(7))));
        assert_eq!(q.take_grant(a), None);
    }

    #[test]
    fn pop_front_serves_in_order_and_retires_the_key() {
        let mut q: WaitQueue<u32, ()> = WaitQueue::new();
        let a = q.push_back(w(), 1);
        let b = q.push_back(w(), 2);
        assert_eq!(q.pop_front().map(|(d, _)| d), Some(1));
        assert_eq!(q.len(), 1);
        assert!(q.state(a).is_none(), "a popped key never resolves again");
        assert_eq!(q.remove(a), None);
        let c = q.push_back(w(), 3); // reuses a's slot under a new generation
        assert!(q.state(a).is_none());
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(q.remove(b), Some((2, None)));
        assert_eq!(q.pop_front().map(|(d, _)| d), Some(3));
        assert!(q.state(c).is_none());
        assert!(q.pop_front().is_none() && q.is_empty());
        assert_eq!(q.slots.len(), 2);
    }

    #[test]
    fn slots_are_reused_without_growing() {
        let mut q: WaitQueue<u32, ()> = WaitQueue::new();
        for i in 0..100 {
            let k = q.push_back(w(), i);
            q.remove(k);
        }
        assert_eq!(q.slots.len(), 1);
    }

    #[test]
    fn a_wake_list_keeps_order_and_spills_past_its_inline_slots() {
        let mut list = WakeList::default();
        list.push(None::<Waker>);
        for _ in 0..6 {
            list.push(w());
        }
        assert_eq!(list.len(), 6);
        assert_eq!(list.spill.len(), 2);
        assert_eq!(list.into_iter().count(), 6);
    }

    #[test]
    fn a_wake_list_wakes_each_waker_once_in_order() {
        use std::sync::{Arc, Mutex};
        use std::task::Wake;
        struct Record(usize, Arc<Mutex<Vec<usize>>>);
        impl Wake for Record {
            fn wake(self: Arc<Self>) {
                self.1.lock().unwrap().push(self.0);
            }
        }
        for n in [0, 1, 4, 7] {
            let log = Arc::new(Mutex::new(Vec::new()));
            let mut list = WakeList::default();
            for i in 0..n {
                list.push(Waker::from(Arc::new(Record(i, log.clone()))));
            }
            list.wake();
            assert_eq!(*log.lock().unwrap(), (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn notify_all_serves_everyone() {
        let mut q: WaitQueue<u32, u8> = WaitQueue::new();
        let keys: Vec<_> = (0..5).map(|i| q.push_back(w(), i)).collect();
        assert_eq!(q.notify_all(1).len(), 5);
        for k in keys {
            assert_eq!(q.take_grant(k), Some(1));
        }
    }
}
