//! FIFO queues of waiters, the building block of every channel and lock.
//!
//! Two queues with the same guarantees (WQ1–WQ4 below):
//! - [`WaitLock`] and [`Waiter`], the intrusive queue: each waiting future
//!   embeds its [`Waiter`] (waker, links, grant), pinned with the future,
//!   and the primitive's lock (the [`WaitLock`]) guards the list of them.
//!   Registering allocates nothing anywhere, so a parked task costs nothing
//!   outside its own allocation. Rules WL1–WL6 below; `Notify`, `Barrier`,
//!   `OnceCell` and `Pool` use it.
//! - [`WaitQueue`], the slab queue: the queue owns one slot per waiter in a
//!   `Vec` (reused through a free list) and each waiting future owns a
//!   [`WaiterKey`]; it registers once, refreshes its waker on later polls,
//!   and removes itself when it is dropped (cancelled). The other
//!   primitives still use it.
//!
//! Rules of both (WQ):
//! - WQ1 (FIFO): waiters are served in registration order.
//! - WQ2 (cancel-safe): removing a waiter (any position) is O(1) and leaves
//!   the others' order intact; a key that was removed or served never
//!   resolves again (generational slots), a node that was served or left is
//!   unregistered (WL2).
//! - WQ3 (no lost grants): a waiter is *notified* (given whatever the
//!   primitive hands out) and woken in one step; if it is then dropped before
//!   it consumed the grant, `remove` (`leave`) returns the grant so the
//!   primitive can pass it to the next waiter.
//! - WQ4 (no steady-state allocation): the slab queue's slots are reused
//!   and it allocates only when it grows past its largest size so far; the
//!   intrusive queue never allocates.
//!
//! Rules of the intrusive queue (WL), on top of IL1–IL6
//! (`types::intrusive`, whose list of [`Pinned`] nodes it is):
//! - WL1 (the lock guards the node): a node's cells (waker, data, phase)
//!   are read and written only by a holder of its [`WaitLock`]'s lock
//!   (every access goes through a [`WaitGuard`] or [`WaiterGuard`]), but
//!   at construction and in its drop (through `&mut`, nobody else can
//!   reach it: WL4).
//! - WL2 (registered): the waiter's flag (an atomic, so the drop and
//!   `Waiter::is_registered` may read it without the lock; `finish` only
//!   swaps "fresh" for "finished") is set, under the lock, when it links the node
//!   ([`WaiterGuard::register`]), and cleared, under the lock, when it
//!   collects its grant ([`WaiterGuard::poll_grant`]) or leaves
//!   ([`WaiterGuard::leave`]). A node is linked exactly while registered
//!   and in phase `Waiting`; a notifier unlinks it and stores its grant
//!   (phase `Notified`), and it stays registered until the owner collects.
//! - WL3 (one queue): a [`Waiter`] is bound, for its whole life, to the one
//!   [`WaitLock`] it was made with (`&'a`, so the lock outlives it), and its
//!   node is linked only into that lock's list (IL3). The list is a private
//!   field of the lock: no code can move it to another lock or swap it.
//! - WL4 (unregistered before freed, IL6): [`Waiter`]'s drop, if the node
//!   is registered, takes the lock and leaves. So a node is never freed
//!   while linked, nor while a notifier that unlinked it still holds the
//!   lock. A notifier never touches a node after it releases the lock: it
//!   moves the node's waker out first and wakes it after the unlock. A
//!   [`Waiter`] registers only through `Pin<&Self>`, so a registered node
//!   is pinned: `mem::forget` of the future that holds it leaks the memory
//!   (`Pin`'s drop guarantee: it is never reused before a destructor ran)
//!   and the list's pointer stays valid; the queue then keeps a waiter that
//!   never collects (a leak of one grant, as with any forgotten future),
//!   never a dangling pointer.
//! - WL5 (no lost grant, WQ3): [`WaiterGuard::leave`] returns a grant the
//!   node was handed but never collected, under the same lock, for the
//!   primitive to pass on; the node's own drop (WL4) is only the safety
//!   net for memory and drops such a grant.
//! - WL6 (aliasing): the node is `!Unpin` (`PhantomPinned`) and every
//!   field another thread may write is an `UnsafeCell` (or atomic), reached
//!   by the owner only through `Pin<&Waiter>`; a `Pin<&mut>` to the future
//!   holding it (its `poll`) is, for a `!Unpin` type, not assumed unique,
//!   as for every intrusive future (tokio's `Notified` relies on the same).

use std::marker::PhantomPinned;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Waker;

// The types the loom model (`loom_tests` below) replaces.
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::{Mutex, MutexGuard};
use crate::types::intrusive::{Linked, Links, List, Pinned};

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

// ------------------------------------------------------------------------
// The intrusive queue (WL1–WL6).

/// Where a node stands (WL2), in the node, under the lock (WL1).
#[derive(Debug)]
enum Phase<G> {
    /// Unregistered, or registered and collected (transient).
    Idle,
    /// Linked in the queue.
    Waiting,
    /// Unlinked by a notifier, holding its grant.
    Notified(G),
}

/// The waiter's flag (WL2): registration changes it under the lock.
const FRESH: u8 = 0;
const REGISTERED: u8 = 1;
const FINISHED: u8 = 2;

/// A waiter's node: its links, its cells (WL1) and its owner's flag (WL2).
struct WaitNode<T, G> {
    links: Links<WaitNode<T, G>>,
    waker: UnsafeCell<Waker>,
    data: UnsafeCell<T>,
    phase: UnsafeCell<Phase<G>>,
    owner: AtomicU8,
    /// WL4, WL6: the list points at the node where it is.
    _pin: PhantomPinned,
}

// SAFETY: IL5: the links are a field of the node.
unsafe impl<T, G> Linked for WaitNode<T, G> {
    fn links(&self) -> &Links<Self> {
        &self.links
    }
}

// SAFETY: WL1: the cells are touched by one thread at a time (the lock's
// holder, or the owner while unregistered), which may be another thread
// than the one that filled them: the data, grant and waker move between
// threads, hence `T: Send`, `G: Send` (`Waker` is `Send + Sync`). The
// owner's flag is atomic; the links follow IL2.
unsafe impl<T: Send, G: Send> Send for WaitNode<T, G> {}
// SAFETY: as for `Send` (WL1): shared references never touch the cells
// without the lock or ownership.
unsafe impl<T: Send, G: Send> Sync for WaitNode<T, G> {}

impl<T, G> WaitNode<T, G> {
    /// # Safety
    /// WL1: the caller holds the node's lock, or owns the node and it is
    /// unregistered; the reference does not outlive that.
    #[allow(clippy::mut_from_ref)] // WL1: exclusive by contract, as `UnsafeCell::get`
    unsafe fn phase(&self) -> &mut Phase<G> {
        // SAFETY: the caller (WL1): exclusive access to the cells.
        self.phase.with_mut(|p| unsafe { &mut *p })
    }

    /// # Safety
    /// As for [`phase`](Self::phase).
    #[allow(clippy::mut_from_ref)] // WL1, as for `phase`
    unsafe fn data(&self) -> &mut T {
        // SAFETY: the caller (WL1).
        self.data.with_mut(|d| unsafe { &mut *d })
    }

    /// # Safety
    /// As for [`phase`](Self::phase).
    #[allow(clippy::mut_from_ref)] // WL1, as for `phase`
    unsafe fn waker(&self) -> &mut Waker {
        // SAFETY: the caller (WL1).
        self.waker.with_mut(|w| unsafe { &mut *w })
    }
}

impl<T, G> Drop for WaitNode<T, G> {
    fn drop(&mut self) {
        // The node's last access: under loom, a notifier touching the node
        // unordered with its release (a WL4 violation) is reported here.
        self.phase.with_mut(|_| ());
    }
}

/// What a [`WaitLock`] guards: the primitive's state and the list.
struct Shared<S, T, G> {
    state: S,
    /// WL3: private, so it never leaves this lock.
    queue: List<WaitNode<T, G>, Pinned<WaitNode<T, G>>>,
}

/// A primitive's lock over its state `S` and its intrusive queue of
/// waiters carrying data `T` and receiving grants `G` (rules WL1–WL6).
pub(crate) struct WaitLock<S, T, G> {
    shared: Mutex<Shared<S, T, G>>,
}

impl<S, T, G> WaitLock<S, T, G> {
    /// A lock over `state` with no waiters.
    #[cfg(not(all(test, loom)))]
    pub(crate) const fn new(state: S) -> Self {
        Self {
            shared: Mutex::new(Shared {
                state,
                queue: List::new(),
            }),
        }
    }

    /// A lock over `state` with no waiters (loom's mutex: not `const`).
    #[cfg(all(test, loom))]
    pub(crate) fn new(state: S) -> Self {
        Self {
            shared: Mutex::new(Shared {
                state,
                queue: List::new(),
            }),
        }
    }

    /// Locks the state and the queue. No user code runs under the lock,
    /// so a poisoned lock still holds a consistent state.
    pub(crate) fn lock(&self) -> WaitGuard<'_, S, T, G> {
        WaitGuard {
            guard: self.shared.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

/// The locked state (`Deref`s to `S`) and the queue's notifier side.
pub(crate) struct WaitGuard<'a, S, T, G> {
    guard: MutexGuard<'a, Shared<S, T, G>>,
}

impl<S, T, G> Deref for WaitGuard<'_, S, T, G> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.guard.state
    }
}

impl<S, T, G> DerefMut for WaitGuard<'_, S, T, G> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.guard.state
    }
}

impl<S, T, G> WaitGuard<'_, S, T, G> {
    /// Waiters not yet notified.
    pub(crate) fn len(&self) -> usize {
        self.guard.queue.len()
    }

    /// Serves the oldest waiter with `grant` (WQ1, WQ3) and returns its
    /// waker, to be woken after the lock is released (WL4).
    pub(crate) fn notify_front(&mut self, grant: G) -> Option<Waker> {
        let handle = self.guard.queue.pop_front()?;
        // SAFETY: IL6, WL4: the node was linked, and its owner can free it
        // only after taking the lock, which we hold; the reference is not
        // kept past this function.
        let node = unsafe { handle.as_ptr().as_ref() };
        // SAFETY: WL1: we hold the lock and the node is registered.
        unsafe {
            debug_assert!(matches!(node.phase(), Phase::Waiting), "WL2");
            *node.phase() = Phase::Notified(grant);
            // A notified node is never woken again: hand its waker out
            // rather than cloning it (WL4: woken after the unlock).
            Some(std::mem::replace(node.waker(), Waker::noop().clone()))
        }
    }

    /// Serves every waiting node with a clone of `grant`; returns their
    /// wakers, to be woken once the lock is released.
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
}

/// A waiter, embedded in the future that waits: its node (WL1–WL6) and the
/// one [`WaitLock`] it belongs to (WL3).
pub(crate) struct Waiter<'a, S, T, G> {
    lock: &'a WaitLock<S, T, G>,
    node: WaitNode<T, G>,
}

impl<'a, S, T, G> Waiter<'a, S, T, G> {
    /// An unregistered waiter of `lock`'s queue, carrying `data`.
    pub(crate) fn new(lock: &'a WaitLock<S, T, G>, data: T) -> Self {
        Self {
            lock,
            node: WaitNode {
                links: Links::new(),
                waker: UnsafeCell::new(Waker::noop().clone()),
                data: UnsafeCell::new(data),
                phase: UnsafeCell::new(Phase::Idle),
                owner: AtomicU8::new(FRESH),
                _pin: PhantomPinned,
            },
        }
    }

    /// Whether the node is registered (WL2): linked, or notified and not
    /// yet collected.
    pub(crate) fn is_registered(&self) -> bool {
        // WL2: changed under the lock by this waiter's own calls.
        self.node.owner.load(Ordering::Relaxed) == REGISTERED
    }

    /// Whether [`finish`](Self::finish) was called.
    pub(crate) fn is_finished(&self) -> bool {
        self.node.owner.load(Ordering::Relaxed) == FINISHED
    }

    /// Marks the wait as over, for the owner's own bookkeeping (a future
    /// polled after completion); the node must be unregistered. (A swap
    /// from "fresh" only: a finished mark never hides a registration from
    /// the drop, WL4, even if the waiter were shared.)
    pub(crate) fn finish(&self) {
        let fresh =
            self.node
                .owner
                .compare_exchange(FRESH, FINISHED, Ordering::Relaxed, Ordering::Relaxed);
        assert!(
            matches!(fresh, Ok(_) | Err(FINISHED)),
            "WL2: finished while registered"
        );
    }

    /// Locks the queue, with this waiter's node at hand.
    pub(crate) fn lock(self: Pin<&Self>) -> WaiterGuard<'_, S, T, G> {
        let guard = self.lock.lock();
        // SAFETY: structural pinning: the node is never moved out of its
        // waiter (no method hands out `&mut` to it, and the waiter is
        // `!Unpin` through it).
        let node = unsafe { self.map_unchecked(|w| &w.node) };
        WaiterGuard { guard, node }
    }
}

impl<S, T, G> Drop for Waiter<'_, S, T, G> {
    fn drop(&mut self) {
        if *self.node.owner.get_mut() == REGISTERED {
            // SAFETY: drop runs in place, and a registered waiter was
            // pinned (WL4: `register` takes `Pin`), so it still is.
            let this = unsafe { Pin::new_unchecked(&*self) };
            // WL4, WL5: unlink under the lock; an uncollected grant is
            // dropped (the primitive passes it on in its own drop first).
            drop(this.lock().leave());
        }
    }
}

impl<S, T, G> std::fmt::Debug for Waiter<'_, S, T, G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("registered", &self.is_registered())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// What a waiter's [`WaiterGuard::leave`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Left<G> {
    /// It was not registered.
    Unregistered,
    /// It was waiting, and is now unlinked (WQ2).
    Waiting,
    /// It had been notified with this grant and never collected it (WQ3).
    Notified(G),
}

/// The lock held by a waiter, with its node at hand: `Deref`s to the
/// [`WaitGuard`] (and on to the state).
pub(crate) struct WaiterGuard<'w, S, T, G> {
    guard: WaitGuard<'w, S, T, G>,
    node: Pin<&'w WaitNode<T, G>>,
}

impl<'w, S, T, G> Deref for WaiterGuard<'w, S, T, G> {
    type Target = WaitGuard<'w, S, T, G>;
    fn deref(&self) -> &Self::Target {
        &self.guard
    }
}

impl<S, T, G> DerefMut for WaiterGuard<'_, S, T, G> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.guard
    }
}

impl<S, T, G> WaiterGuard<'_, S, T, G> {
    fn registered(&self) -> bool {
        self.node.owner.load(Ordering::Relaxed) == REGISTERED
    }

    /// The waiter's own data.
    pub(crate) fn data(&self) -> &T {
        // SAFETY: WL1: we hold the lock (and own the node).
        unsafe { self.node.data() }
    }

    /// Links the waiter at the tail (WQ1) with `waker`; it must be
    /// unregistered and not finished.
    pub(crate) fn register(&mut self, waker: &Waker) {
        let owner = self.node.owner.load(Ordering::Relaxed);
        assert_eq!(owner, FRESH, "WL2: registered twice, or after finish");
        // SAFETY: WL1: we hold the lock and own the unregistered node.
        unsafe {
            waker.clone_into(self.node.waker());
            *self.node.phase() = Phase::Waiting;
        }
        // SAFETY: IL6 through WL4: the node is pinned (we hold `Pin`), and
        // the waiter's drop leaves under this lock before the node goes;
        // WL3: this is the waiter's own lock's list.
        let handle = unsafe { Pinned::new(self.node) };
        self.guard.guard.queue.push_back(handle);
        self.node.owner.store(REGISTERED, Ordering::Relaxed);
    }

    /// A registered waiter's grant, if it was notified (then it is
    /// unregistered again, WL2); otherwise refreshes its waker and returns
    /// `None`. `None` too if it is not registered.
    pub(crate) fn poll_grant(&mut self, waker: &Waker) -> Option<G> {
        if !self.registered() {
            return None;
        }
        // SAFETY: WL1: we hold the lock and the node is registered.
        let phase = unsafe { self.node.phase() };
        match std::mem::replace(phase, Phase::Idle) {
            Phase::Notified(grant) => {
                self.node.owner.store(FRESH, Ordering::Relaxed);
                Some(grant)
            }
            Phase::Waiting => {
                *phase = Phase::Waiting;
                // SAFETY: WL1, as above.
                let mine = unsafe { self.node.waker() };
                if !mine.will_wake(waker) {
                    waker.clone_into(mine);
                }
                None
            }
            Phase::Idle => unreachable!("WL2: a registered node is waiting or notified"),
        }
    }

    /// Unregisters the waiter wherever it stands (WQ2): unlinks it if it
    /// waits; returns a grant it was handed and never collected (WL5).
    pub(crate) fn leave(&mut self) -> Left<G> {
        if !self.registered() {
            return Left::Unregistered;
        }
        // SAFETY: WL1: we hold the lock and the node is registered.
        let phase = std::mem::replace(unsafe { self.node.phase() }, Phase::Idle);
        let left = match phase {
            Phase::Waiting => {
                // SAFETY: IL3, WL3: a waiting node is linked in this list.
                let handle = unsafe { self.guard.guard.queue.remove(&self.node) };
                debug_assert!(handle.is_some(), "WL2: a waiting node is linked");
                Left::Waiting
            }
            Phase::Notified(grant) => Left::Notified(grant),
            Phase::Idle => unreachable!("WL2: a registered node is waiting or notified"),
        };
        // SAFETY: WL1, as above: drop the stale waker now, not at the node's
        // drop (it may hold the task alive).
        drop(std::mem::replace(
            unsafe { self.node.waker() },
            Waker::noop().clone(),
        ));
        self.node.owner.store(FRESH, Ordering::Relaxed);
        left
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

    // ---------------------------------------------------- intrusive queue

    /// A waker that counts its wakes.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn counting() -> (std::sync::Arc<Count>, Waker) {
        let c = std::sync::Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }
    fn wakes(c: &Count) -> usize {
        c.0.load(Ordering::SeqCst)
    }

    type Lock = WaitLock<(), u32, u32>;

    fn registered<'a>(
        lock: &'a Lock,
        data: u32,
        waker: &Waker,
    ) -> Pin<Box<Waiter<'a, (), u32, u32>>> {
        let w = Box::pin(Waiter::new(lock, data));
        w.as_ref().lock().register(waker);
        w
    }

    #[test]
    fn intrusive_waiters_are_served_in_registration_order() {
        let lock = Lock::new(());
        let a = registered(&lock, 1, &w());
        let b = registered(&lock, 2, &w());
        assert_eq!(lock.lock().len(), 2);
        assert!(lock.lock().notify_front(10).is_some());
        assert!(lock.lock().notify_front(20).is_some());
        assert!(lock.lock().notify_front(30).is_none(), "nobody waits");
        assert_eq!(a.as_ref().lock().poll_grant(&w()), Some(10));
        assert_eq!(b.as_ref().lock().poll_grant(&w()), Some(20));
        assert!(!a.is_registered() && !b.is_registered(), "WL2: collected");
        assert!((lock.lock().len() == 0));
    }

    #[test]
    fn an_intrusive_waiter_leaves_from_any_position_keeping_the_others_order() {
        let lock = Lock::new(());
        let waiters: Vec<_> = (0..5).map(|i| registered(&lock, i, &w())).collect();
        assert_eq!(waiters[2].as_ref().lock().leave(), Left::Waiting);
        assert_eq!(waiters[0].as_ref().lock().leave(), Left::Waiting);
        assert_eq!(waiters[4].as_ref().lock().leave(), Left::Waiting);
        assert_eq!(waiters[4].as_ref().lock().leave(), Left::Unregistered);
        assert_eq!(lock.lock().len(), 2);
        let mut served = Vec::new();
        while lock.lock().notify_front(7).is_some() {}
        for (i, waiter) in waiters.iter().enumerate() {
            if waiter.as_ref().lock().poll_grant(&w()).is_some() {
                served.push(i);
            }
        }
        assert_eq!(served, [1, 3]);
    }

    #[test]
    fn a_notified_intrusive_waiter_that_leaves_hands_back_its_grant() {
        let lock = Lock::new(());
        let (count, waker) = counting();
        let a = registered(&lock, 0, &waker);
        let woken = lock.lock().notify_front(7).expect("a waits");
        assert_eq!(wakes(&count), 0, "woken after the unlock, by the notifier");
        woken.wake();
        assert_eq!(wakes(&count), 1);
        assert_eq!(a.as_ref().lock().leave(), Left::Notified(7), "WL5");
        assert!(!a.is_registered());
        assert_eq!(
            a.as_ref().lock().poll_grant(&w()),
            None,
            "nothing left to collect"
        );
    }

    #[test]
    fn a_waiting_node_is_woken_through_its_latest_waker_exactly_once() {
        let lock = Lock::new(());
        let (first, first_waker) = counting();
        let (latest, latest_waker) = counting();
        let a = registered(&lock, 0, &first_waker);
        assert_eq!(a.as_ref().lock().poll_grant(&latest_waker), None);
        lock.lock().notify_all(1).wake();
        assert_eq!((wakes(&first), wakes(&latest)), (0, 1));
        lock.lock().notify_all(2).wake();
        assert_eq!(wakes(&latest), 1, "a notified node is not served twice");
        assert_eq!(a.as_ref().lock().poll_grant(&latest_waker), Some(1));
    }

    /// WL4: a registered waiter dropped without leaving unlinks itself
    /// (its grant, if any, is dropped); the queue never points at it again.
    #[test]
    fn a_registered_waiter_dropped_without_leaving_unlinks_itself() {
        let lock = Lock::new(());
        let a = registered(&lock, 1, &w());
        let b = registered(&lock, 2, &w());
        let c = registered(&lock, 3, &w());
        drop(b);
        assert_eq!(lock.lock().len(), 2);
        assert!(lock.lock().notify_front(0).is_some());
        drop(a); // notified, uncollected
        drop(c); // waiting
        assert!((lock.lock().len() == 0));
        assert!(lock.lock().notify_front(0).is_none());
    }

    #[test]
    #[should_panic(expected = "WL2")]
    fn a_waiter_cannot_register_twice() {
        let lock = Lock::new(());
        let a = registered(&lock, 1, &w());
        a.as_ref().lock().register(&w());
    }

    /// WL1–WL5 under real threads: four threads register 10,000 waiters
    /// and each collects or leaves at a random moment, while a notifier
    /// serves the queue. Every grant handed out is collected or handed
    /// back exactly once, and every served waiter is woken exactly once.
    #[test]
    fn ten_thousand_waiters_notified_and_cancelled_at_random_account_for_every_grant() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        const THREADS: u64 = 4;
        // Miri (data races, aliasing) runs a small version of it.
        const EACH: u64 = if cfg!(miri) { 25 } else { 2_500 };
        let lock: Arc<WaitLock<u64, u64, u64>> = Arc::new(WaitLock::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (collected, returned, woken_twice) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (lock, collected, returned, woken_twice) = (
                    lock.clone(),
                    collected.clone(),
                    returned.clone(),
                    woken_twice.clone(),
                );
                std::thread::spawn(move || {
                    let mut rng = crate::types::rng::DetRng::new(0x5eed + t);
                    let mut wakes_seen = Vec::new();
                    for i in 0..EACH {
                        let (count, waker) = counting();
                        let waiter = Box::pin(Waiter::new(&*lock, t * EACH + i));
                        waiter.as_ref().lock().register(&waker);
                        for _ in 0..rng.below(64) {
                            std::hint::spin_loop();
                        }
                        match rng.below(3) {
                            0 => {
                                // Cancelled: leave, handing back a grant.
                                if let Left::Notified(_) = waiter.as_ref().lock().leave() {
                                    returned.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            1 => {
                                // One last look, then cancelled.
                                let grant = {
                                    let mut g = waiter.as_ref().lock();
                                    let got = g.poll_grant(&waker);
                                    if got.is_none() {
                                        g.leave();
                                    }
                                    got
                                };
                                if grant.is_some() {
                                    collected.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            _ => {
                                // Waits until served or gives up.
                                let mut got = None;
                                for _ in 0..rng.below(4) {
                                    got = waiter.as_ref().lock().poll_grant(&waker);
                                    if got.is_some() {
                                        break;
                                    }
                                    std::thread::yield_now();
                                }
                                match got {
                                    Some(_) => collected.fetch_add(1, Ordering::SeqCst),
                                    None => match waiter.as_ref().lock().leave() {
                                        Left::Notified(_) => {
                                            returned.fetch_add(1, Ordering::SeqCst)
                                        }
                                        _ => 0,
                                    },
                                };
                            }
                        }
                        assert!(!waiter.is_registered());
                        drop(waiter);
                        wakes_seen.push(count);
                    }
                    for c in wakes_seen {
                        if wakes(&c) > 1 {
                            woken_twice.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        let notifier = {
            let (lock, done) = (lock.clone(), done.clone());
            std::thread::spawn(move || {
                let mut served = 0usize;
                while !done.load(Ordering::SeqCst) {
                    let waker = {
                        let mut g = lock.lock();
                        *g += 1;
                        let grant = *g;
                        g.notify_front(grant)
                    };
                    if let Some(waker) = waker {
                        served += 1;
                        waker.wake();
                    } else {
                        std::thread::yield_now();
                    }
                }
                served
            })
        };
        for w in workers {
            w.join().expect("worker");
        }
        done.store(true, Ordering::SeqCst);
        let served = notifier.join().expect("notifier");
        assert!((lock.lock().len() == 0), "every waiter left");
        assert_eq!(
            served,
            collected.load(Ordering::SeqCst) + returned.load(Ordering::SeqCst),
            "WL5: each grant collected or handed back once"
        );
        assert_eq!(
            woken_twice.load(Ordering::SeqCst),
            0,
            "each woken at most once"
        );
        assert!(served > 0, "the notifier served someone");
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

/// Loom models of the intrusive queue (run by `.ci/run` with `--cfg loom`):
/// the real [`WaitLock`] over loom's mutex, the node's cells loom's cells,
/// so a notifier touching a node unordered with its owner (WL1, WL4) is
/// reported, as is a lost or doubled grant (WL5).
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::Arc;
    use crate::loom::{model, thread};

    /// The state is `Notify`'s permit; `dispatch` is its `notify_one`.
    type Lock = WaitLock<bool, (), u8>;

    fn dispatch(g: &mut WaitGuard<'_, bool, (), u8>) -> Option<Waker> {
        let waker = g.notify_front(1);
        if waker.is_none() {
            **g = true;
        }
        waker
    }

    /// WL4, WL5: a notify races a waiting node's cancellation (leave and
    /// drop, on its own thread) while another node waits: the grant ends
    /// up exactly once, with the other node or stored, never with the
    /// dropped node and never twice.
    #[test]
    fn loom_a_notify_racing_the_drop_of_a_waiting_node_passes_the_grant_on() {
        model(|| {
            let lock = Arc::new(Lock::new(false));
            let cancelled = {
                let lock = lock.clone();
                thread::spawn(move || {
                    let a = Box::pin(Waiter::new(&*lock, ()));
                    a.as_ref().lock().register(Waker::noop());
                    let waker = {
                        let mut g = a.as_ref().lock();
                        match g.leave() {
                            Left::Notified(_) => dispatch(&mut g),
                            Left::Waiting | Left::Unregistered => None,
                        }
                    };
                    drop(a);
                    if let Some(w) = waker {
                        w.wake();
                    }
                })
            };
            let b = Box::pin(Waiter::new(&*lock, ()));
            b.as_ref().lock().register(Waker::noop());
            let notifier = {
                let lock = lock.clone();
                thread::spawn(move || {
                    let waker = dispatch(&mut lock.lock());
                    if let Some(w) = waker {
                        w.wake();
                    }
                })
            };
            cancelled.join().unwrap();
            notifier.join().unwrap();
            let mut g = b.as_ref().lock();
            let collected = g.poll_grant(Waker::noop()).is_some();
            let stored = **g;
            assert!(collected ^ stored, "the grant lands exactly once");
            assert!(g.len() == 0 || !collected);
            g.leave();
        });
    }

    /// WL1, WL4: a notify races the waiting node's own poll and drop: the
    /// owner collects (or leaves, getting the grant back) and frees the
    /// node while the notifier may still be serving it; the notifier's
    /// accesses are all under the lock, before the owner's.
    #[test]
    fn loom_a_node_freed_right_after_its_grant_is_never_touched_again() {
        model(|| {
            let lock = Arc::new(Lock::new(false));
            let owner = {
                let lock = lock.clone();
                thread::spawn(move || {
                    let a = Box::pin(Waiter::new(&*lock, ()));
                    a.as_ref().lock().register(Waker::noop());
                    let got = a.as_ref().lock().poll_grant(Waker::noop()).is_some();
                    let handed_back = matches!(a.as_ref().lock().leave(), Left::Notified(_));
                    drop(a);
                    got || handed_back
                })
            };
            let served = dispatch(&mut lock.lock()).is_some();
            let owner_had_it = owner.join().unwrap();
            assert_eq!(served, owner_had_it, "served iff the owner saw the grant");
            assert_eq!(*lock.lock(), !served, "otherwise stored");
            assert!((lock.lock().len() == 0));
        });
    }
}
