//! An intrusive doubly linked list: the links live in the nodes
//! themselves, so linking and unlinking a node are a few pointer writes in
//! its own header and its neighbours', with no hashing and no allocation.
//! Its nodes are either `Arc`-owned (the light-task set, `kernel::light`,
//! keeps its task cells in one) or pinned in place and merely borrowed
//! (the wait queues of `sync::waiters` link the waiter nodes embedded in
//! the waiting futures): the list's [`Handle`] type says which.
//!
//! Rules (cited as IL1–IL6):
//! - IL1 (the list holds its nodes alive): [`List::push_back`] turns the
//!   node's handle (an `Arc`, or a [`Pinned`] borrow, IL6) into the raw
//!   pointer the list keeps; [`List::remove`], [`List::remove_first`] and
//!   [`List::pop_front`] turn it back into the handle they return. So a
//!   node is alive at least while it is linked (an `Arc` node: the list
//!   owns one reference; a pinned node: IL6), and every pointer the list
//!   holds (head, tail, a linked node's links) points at a live node. The
//!   list's pointers to nodes (head, tail, each `next`) are the ones
//!   [`Handle::into_raw`] made; a `prev` points at the previous node's
//!   links only, so a `dyn` node's links are three words.
//! - IL2 (who touches the links): a node's [`Links`] are read and written
//!   only by the holder of `&mut List` for the list the node is in (or, for
//!   an unlinked node, by the `push_back` of the list about to own it), and
//!   read through `&List` only while no `&mut` exists. The owner of the
//!   list serialises them (the light set's `Mutex`); nothing else ever
//!   dereferences them, which is why [`Links`] may be `Sync`.
//! - IL3 (one list): a node is in at most one list at a time, and only
//!   that list ever unlinks it. Callers of [`List::remove`] promise that
//!   the node is in this list or in none (the light set checks it: a cell
//!   names the one set it may be linked into).
//! - IL4 (membership): a linked node has a previous node or is the head;
//!   an unlinked node has neither link set. So `remove` tells "in this
//!   list" from "in none" in O(1) (given IL3).
//! - IL5 ([`Linked`], an `unsafe` trait): `links()` returns the same
//!   [`Links`], stored inside the node, for the node's whole life.
//! - IL6 (borrowed nodes, [`Pinned`]): a list of pinned nodes does not own
//!   them; whoever makes a [`Pinned`] handle (an `unsafe` constructor)
//!   promises that the node neither moves nor is freed while it is linked,
//!   nor while the list's owner (its lock) is held by whoever unlinked it
//!   and still reads or writes the node. The node's owner keeps that
//!   promise by unlinking it under the list's lock (or seeing it unlinked
//!   there) before it lets the node go; `Pin`'s drop guarantee makes this
//!   enough even for a node whose owner is `mem::forget`-ed: the memory of
//!   a pinned `!Unpin` value is not reused before its destructor runs, so a
//!   forgotten node stays valid (leaked) for ever. A pinned node's handle
//!   confers no ownership: dropping it does nothing, and [`Node::to_arc`]
//!   exists only for `Arc` lists.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

pub(crate) use super::pinned::Pinned;

/// A node type that embeds its [`Links`].
///
/// # Safety
/// IL5: `links` must return a reference to the same `Links`, stored in the
/// node itself, every time it is called on the same node.
pub(crate) unsafe trait Linked {
    fn links(&self) -> &Links<Self>;
}

/// How a list holds the nodes it links (IL1): an `Arc` (the list owns one
/// reference) or a [`Pinned`] borrow (IL6).
///
/// # Safety
/// `into_raw` returns a pointer to the node that stays valid until the
/// same pointer is given back to `from_raw` (for `Arc`: the reference it
/// stands for; for [`Pinned`]: the promise IL6 its maker gave).
pub(crate) unsafe trait Handle {
    /// The node type.
    type Node: ?Sized + Linked;
    /// The pointer the list keeps while the node is linked.
    fn into_raw(self) -> NonNull<Self::Node>;
    /// The handle back, when the node is unlinked.
    ///
    /// # Safety
    /// `ptr` came from `into_raw` of this handle type and is turned back
    /// once.
    unsafe fn from_raw(ptr: NonNull<Self::Node>) -> Self;
}

// SAFETY: IL1: the pointer is the reference `Arc::into_raw` leaks, valid
// until `Arc::from_raw` takes it back.
unsafe impl<T: ?Sized + Linked> Handle for Arc<T> {
    type Node = T;
    fn into_raw(self) -> NonNull<T> {
        // SAFETY: `Arc::into_raw` never returns null.
        unsafe { NonNull::new_unchecked(Arc::into_raw(self).cast_mut()) }
    }
    unsafe fn from_raw(ptr: NonNull<T>) -> Self {
        // SAFETY: the caller: `ptr` is a reference `into_raw` leaked.
        unsafe { Arc::from_raw(ptr.as_ptr()) }
    }
}

// SAFETY: IL6 (PR1 in `types::pinned`): the maker of the handle promised
// the node outlives its stay in the list; the pointer is the one `new`
// took.
unsafe impl<T: ?Sized + Linked> Handle for Pinned<T> {
    type Node = T;
    fn into_raw(self) -> NonNull<T> {
        self.as_ptr()
    }
    unsafe fn from_raw(ptr: NonNull<T>) -> Self {
        // SAFETY: the caller: `ptr` is one `into_raw` gave out, whose
        // promise holds while it is linked (IL6).
        unsafe { Pinned::from_ptr(ptr) }
    }
}

/// A node's two links (IL2: touched only by the owner of its list): 24
/// bytes for a `dyn` node. `next` is the list's own (wide) pointer to the
/// next node (IL1); `prev` points at the previous node's links only (a
/// thin pointer: unlinking needs nothing more, and the previous node's
/// own pointer is its predecessor's `next`, or the head).
pub(crate) struct Links<T: ?Sized> {
    prev: UnsafeCell<Option<NonNull<Links<T>>>>,
    next: UnsafeCell<Option<NonNull<T>>>,
}

// SAFETY: IL2: the links are only accessed by the holder of the list the
// node is in (serialised by the list's owner), never through a shared
// `&Links` on two threads at once; the pointers they hold are to nodes
// that are themselves `Send + Sync`.
unsafe impl<T: ?Sized + Send + Sync> Send for Links<T> {}
// SAFETY: as for `Send` (IL2).
unsafe impl<T: ?Sized + Send + Sync> Sync for Links<T> {}

impl<T: ?Sized> Links<T> {
    /// Unlinked (IL4).
    pub(crate) const fn new() -> Self {
        Self {
            prev: UnsafeCell::new(None),
            next: UnsafeCell::new(None),
        }
    }
}

impl<T: ?Sized> Default for Links<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ?Sized> fmt::Debug for Links<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Links")
    }
}

/// The list: head, tail and length (see the module doc, IL1–IL6). `H`
/// is how it holds its nodes: `Arc<T>` (the default) or [`Pinned<T>`].
pub(crate) struct List<T: ?Sized + Linked, H: Handle<Node = T> = Arc<T>> {
    head: Option<NonNull<T>>,
    tail: Option<NonNull<T>>,
    len: usize,
    /// IL1: the list holds one `H` per node.
    _holds: PhantomData<H>,
}

// SAFETY: IL1: the list holds `Arc<T>`s (sendable when `T: Send + Sync`)
// or pointers to pinned `T`s (IL6: as good as `&T`, sendable when `T:
// Sync`, and the nodes' contents may move between threads when `T:
// Send`); IL2: it alone touches its nodes' links.
unsafe impl<T: ?Sized + Linked + Send + Sync, H: Handle<Node = T>> Send for List<T, H> {}
// SAFETY: `&List` only reads links (IL2: no writer exists meanwhile) and
// hands out `&T` (and, for `Arc` lists, clones of `Arc<T>`), as
// `&Vec<Arc<T>>` would.
unsafe impl<T: ?Sized + Linked + Send + Sync, H: Handle<Node = T>> Sync for List<T, H> {}

/// Whether `a` and `b` are the same node (by address: a `dyn` pointer's
/// vtable part may differ between codegen units).
fn same<T: ?Sized>(a: NonNull<T>, b: &T) -> bool {
    std::ptr::addr_eq(a.as_ptr(), b as *const T)
}

impl<T: ?Sized + Linked, H: Handle<Node = T>> List<T, H> {
    pub(crate) const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
            _holds: PhantomData,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Links `node` at the tail, keeping its handle (IL1: the `Arc`'s
    /// reference, or IL6's promise). `node` must be in no list (IL3;
    /// checked in debug builds as far as IL4 allows).
    pub(crate) fn push_back(&mut self, node: H) {
        // IL1: the list now holds this handle.
        let ptr = node.into_raw();
        // SAFETY: IL1: `ptr` (just made) and the tail (linked) are alive;
        // IL2, IL3: `node` is in no list, so nobody else touches its links,
        // and the tail's are ours under `&mut self`.
        unsafe {
            let links = ptr.as_ref().links();
            debug_assert!(
                (*links.prev.get()).is_none() && (*links.next.get()).is_none(),
                "IL3: pushed while linked"
            );
            debug_assert!(!self.head.is_some_and(|h| same(h, ptr.as_ref())));
            match self.tail {
                Some(tail) => {
                    let tail_links = tail.as_ref().links();
                    *tail_links.next.get() = Some(ptr);
                    *links.prev.get() = Some(NonNull::from(tail_links));
                }
                None => self.head = Some(ptr),
            }
        }
        self.tail = Some(ptr);
        self.len += 1;
    }

    /// The list's own pointer to the node whose links are `links` (IL1):
    /// its predecessor's `next`, or the head.
    ///
    /// # Safety
    /// `links` are those of a node linked in this list (IL2: under `&self`
    /// or `&mut self`, before any of it is changed).
    unsafe fn own_pointer(&self, links: &Links<T>) -> NonNull<T> {
        // SAFETY: the caller: the node is linked here, so its predecessor,
        // if any, is linked and alive (IL1), its `next` naming the node.
        let own = unsafe {
            match *links.prev.get() {
                Some(prev) => *prev.as_ref().next.get(),
                None => self.head,
            }
        };
        own.expect("IL4: a linked node is reachable")
    }

    /// Whether `node` is linked, given that it is in this list or in none
    /// (IL3, IL4).
    fn is_linked_here(&self, node: &T) -> bool {
        // SAFETY: IL2: reading the links of a node in this list (or in
        // none) under `&self` while no `&mut` exists.
        let has_prev = unsafe { (*node.links().prev.get()).is_some() };
        has_prev || self.head.is_some_and(|h| same(h, node))
    }

    /// Unlinks `node` and returns the list's handle to it (IL1), or
    /// `None` if it was not linked.
    ///
    /// # Safety
    /// IL3: `node` is in this list or in no list.
    pub(crate) unsafe fn remove(&mut self, node: &T) -> Option<H> {
        if !self.is_linked_here(node) {
            return None;
        }
        // The list's own pointer to `node` (from `into_raw`, so valid for
        // the whole `Arc` allocation, unlike one made from `&T`).
        // SAFETY: the caller (IL3) and IL4: `node` is linked in this list.
        let own = unsafe { self.own_pointer(node.links()) };
        debug_assert!(same(own, node));
        // SAFETY: `own` is this list's pointer to `node`, which is linked.
        Some(unsafe { self.unlink(own) })
    }

    /// # Safety
    /// `node` is linked in this list, and is the list's own pointer to it
    /// (the head, or a predecessor's `next`: from `into_raw`, IL1).
    unsafe fn unlink(&mut self, node: NonNull<T>) -> H {
        // SAFETY: IL1: `node` is linked, hence alive, as are its
        // neighbours; IL2: under `&mut self` all their links are ours.
        unsafe {
            let links = node.as_ref().links();
            let prev = (*links.prev.get()).take();
            let next = (*links.next.get()).take();
            match prev {
                Some(p) => *p.as_ref().next.get() = next,
                None => self.head = next,
            }
            match next {
                Some(n) => *n.as_ref().links().prev.get() = prev,
                // The new tail is the predecessor, named by its own
                // predecessor's `next` or the head (its links are intact
                // but for `next`).
                None => self.tail = prev.map(|p| self.own_pointer(p.as_ref())),
            }
            self.len -= 1;
            // IL1: the handle `push_back` kept.
            H::from_raw(node)
        }
    }

    /// Unlinks the first node (from the head) for which `pred` holds.
    pub(crate) fn remove_first(&mut self, mut pred: impl FnMut(&T) -> bool) -> Option<H> {
        let found = self.iter().find(|n| pred(n)).map(|n| n.ptr)?;
        // SAFETY: `found` was reached from this list's head: it is linked here.
        Some(unsafe { self.unlink(found) })
    }

    /// Unlinks the head node.
    pub(crate) fn pop_front(&mut self) -> Option<H> {
        let head = self.head?;
        // SAFETY: the head is linked in this list.
        Some(unsafe { self.unlink(head) })
    }

    /// The nodes from head to tail, borrowed from the list.
    pub(crate) fn iter(&self) -> Iter<'_, T, H> {
        Iter {
            next: self.head,
            _list: PhantomData,
        }
    }
}

impl<T: ?Sized + Linked, H: Handle<Node = T>> Default for List<T, H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ?Sized + Linked, H: Handle<Node = T>> Drop for List<T, H> {
    /// Releases the list's handles (IL1), leaving every node unlinked.
    fn drop(&mut self) {
        while let Some(node) = self.pop_front() {
            drop(node);
        }
    }
}

impl<T: ?Sized + Linked, H: Handle<Node = T>> fmt::Debug for List<T, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("List").field("len", &self.len).finish()
    }
}

/// A linked node, borrowed from its list (alive while the borrow lasts:
/// the list cannot unlink it meanwhile, IL1).
pub(crate) struct Node<'a, T: ?Sized, H = Arc<T>> {
    ptr: NonNull<T>,
    _list: Borrowed<'a, T, H>,
}

/// A borrow of a list of `T`s held as `H`s.
type Borrowed<'a, T, H> = PhantomData<(&'a T, fn() -> H)>;

impl<T: ?Sized> Node<'_, T, Arc<T>> {
    /// A new reference to the node (an `Arc` list's only, IL6).
    pub(crate) fn to_arc(&self) -> Arc<T> {
        // SAFETY: IL1: `ptr` came from `Arc::into_raw` and the list still
        // holds that reference while this borrow lasts, so taking another
        // is sound.
        unsafe {
            Arc::increment_strong_count(self.ptr.as_ptr());
            Arc::from_raw(self.ptr.as_ptr())
        }
    }
}

impl<T: ?Sized, H> std::ops::Deref for Node<'_, T, H> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: IL1: linked, hence alive, for the list borrow `'a`.
        unsafe { self.ptr.as_ref() }
    }
}

/// [`List::iter`].
pub(crate) struct Iter<'a, T: ?Sized, H = Arc<T>> {
    next: Option<NonNull<T>>,
    _list: Borrowed<'a, T, H>,
}

impl<'a, T: ?Sized + Linked, H> Iterator for Iter<'a, T, H> {
    type Item = Node<'a, T, H>;

    fn next(&mut self) -> Option<Node<'a, T, H>> {
        let ptr = self.next?;
        // SAFETY: IL1: a linked node is alive; IL2: its links are only
        // read while the list is borrowed shared (no writer).
        self.next = unsafe { *ptr.as_ref().links().next.get() };
        Some(Node {
            ptr,
            _list: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;

    struct Item {
        n: u32,
        links: Links<Item>,
    }

    // SAFETY: IL5: the links are a field of the item.
    unsafe impl Linked for Item {
        fn links(&self) -> &Links<Self> {
            &self.links
        }
    }

    fn item(n: u32) -> Arc<Item> {
        Arc::new(Item {
            n,
            links: Links::new(),
        })
    }

    fn contents(list: &List<Item>) -> Vec<u32> {
        list.iter().map(|n| n.n).collect()
    }

    fn list_of(items: &[Arc<Item>]) -> List<Item> {
        let mut list = List::new();
        for i in items {
            list.push_back(i.clone());
        }
        list
    }

    #[test]
    fn pushed_nodes_are_walked_in_insertion_order() {
        let items: Vec<_> = (0..4).map(item).collect();
        let list = list_of(&items);
        assert_eq!(contents(&list), [0, 1, 2, 3]);
        assert_eq!(list.len(), 4);
        assert!(!list.is_empty());
    }

    #[test]
    fn the_list_holds_one_reference_per_linked_node() {
        let items: Vec<_> = (0..3).map(item).collect();
        let mut list = list_of(&items);
        assert!(items.iter().all(|i| Arc::strong_count(i) == 2), "IL1");
        // SAFETY: IL3: items[1] is in this list.
        let removed = unsafe { list.remove(&items[1]) }.expect("linked");
        assert_eq!(Arc::strong_count(&items[1]), 2, "handed back, not dropped");
        drop(removed);
        assert_eq!(Arc::strong_count(&items[1]), 1);
        drop(list);
        assert!(items.iter().all(|i| Arc::strong_count(i) == 1), "released");
    }

    #[test]
    fn removing_from_the_middle_relinks_the_neighbours() {
        let items: Vec<_> = (0..5).map(item).collect();
        let mut list = list_of(&items);
        // SAFETY: IL3: these items are in this list.
        unsafe {
            assert!(list.remove(&items[2]).is_some());
            assert!(list.remove(&items[3]).is_some());
        }
        assert_eq!(contents(&list), [0, 1, 4]);
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn removing_the_ends_moves_head_and_tail() {
        let items: Vec<_> = (0..3).map(item).collect();
        let mut list = list_of(&items);
        // SAFETY: IL3: these items are in this list or in none.
        unsafe {
            assert!(list.remove(&items[0]).is_some(), "head");
            assert_eq!(contents(&list), [1, 2]);
            assert!(list.remove(&items[2]).is_some(), "tail");
            assert_eq!(contents(&list), [1]);
            assert!(list.remove(&items[1]).is_some(), "the only node");
            assert!(list.is_empty() && list.iter().next().is_none());
            assert!(list.remove(&items[1]).is_none(), "IL4: no longer linked");
        }
        list.push_back(items[2].clone());
        list.push_back(items[0].clone());
        assert_eq!(contents(&list), [2, 0], "reusable after removal");
    }

    #[test]
    fn removing_an_unlinked_node_finds_nothing() {
        let items: Vec<_> = (0..2).map(item).collect();
        let mut list = list_of(&items[..1]);
        // SAFETY: IL3: items[1] is in no list.
        assert!(unsafe { list.remove(&items[1]) }.is_none());
        assert_eq!(contents(&list), [0]);
        assert_eq!(Arc::strong_count(&items[1]), 1);
    }

    #[test]
    fn pop_front_drains_in_order_and_remove_first_finds_by_predicate() {
        let items: Vec<_> = (0..5).map(item).collect();
        let mut list = list_of(&items);
        assert_eq!(list.remove_first(|i| i.n == 3).map(|i| i.n), Some(3));
        assert!(list.remove_first(|i| i.n == 3).is_none(), "gone");
        let drained: Vec<_> = std::iter::from_fn(|| list.pop_front())
            .map(|i| i.n)
            .collect();
        assert_eq!(drained, [0, 1, 2, 4]);
        assert!(list.is_empty());
        assert!(items.iter().all(|i| Arc::strong_count(i) == 1));
    }

    #[test]
    fn a_walked_node_can_be_cloned_out_of_the_list() {
        let items: Vec<_> = (0..2).map(item).collect();
        let list = list_of(&items);
        let second = list.iter().nth(1).map(|n| n.to_arc()).expect("two");
        assert!(Arc::ptr_eq(&second, &items[1]));
        assert_eq!(Arc::strong_count(&items[1]), 3);
    }

    /// IL6: pinned nodes, borrowed rather than owned, link and unlink the
    /// same way, and a dropped list leaves them unlinked.
    #[test]
    fn a_list_of_pinned_nodes_links_them_without_owning_them() {
        let items: Vec<Item> = (0..4)
            .map(|n| Item {
                n,
                links: Links::new(),
            })
            .collect();
        let pinned = |i: usize| Pin::new(&items[i]);
        let mut list: List<Item, Pinned<Item>> = List::new();
        for i in 0..4 {
            // SAFETY: IL6: `items` outlives the list and does not move
            // while it is borrowed.
            list.push_back(unsafe { Pinned::new(pinned(i)) });
        }
        assert_eq!(list.iter().map(|n| n.n).collect::<Vec<_>>(), [0, 1, 2, 3]);
        // SAFETY: IL3: items[2] is in this list.
        let removed = unsafe { list.remove(&items[2]) }.expect("linked");
        assert!(std::ptr::eq(removed.as_ptr().as_ptr(), &items[2]));
        assert_eq!(
            list.pop_front().map(|h| h.as_ptr()),
            Some(NonNull::from(&items[0]))
        );
        assert_eq!(list.iter().map(|n| n.n).collect::<Vec<_>>(), [1, 3]);
        drop(list);
        // SAFETY: IL3: in no list any more (the list was dropped).
        let relinked = unsafe {
            let mut again: List<Item, Pinned<Item>> = List::new();
            again.push_back(Pinned::new(pinned(3)));
            again.push_back(Pinned::new(pinned(1)));
            again.iter().map(|n| n.n).collect::<Vec<_>>()
        };
        assert_eq!(relinked, [3, 1], "IL4: the dropped list unlinked them");
    }

    /// Pushes and removals in a seeded random order agree with a `Vec`
    /// model of the list.
    #[test]
    fn random_pushes_and_removals_agree_with_a_vec_model() {
        let items: Vec<_> = (0..32).map(item).collect();
        let mut list: List<Item> = List::new();
        let mut model: Vec<u32> = Vec::new();
        let mut rng = crate::types::rng::DetRng::new(7);
        for _ in 0..2000 {
            let i = (rng.next_u64() % 32) as usize;
            if model.contains(&(i as u32)) {
                // SAFETY: IL3: every item is in this list or in none.
                assert!(unsafe { list.remove(&items[i]) }.is_some());
                model.retain(|&m| m != i as u32);
            } else {
                // SAFETY: IL3: not linked (the model says so).
                assert!(unsafe { list.remove(&items[i]) }.is_none());
                list.push_back(items[i].clone());
                model.push(i as u32);
            }
            assert_eq!(contents(&list), model);
            assert_eq!(list.len(), model.len());
        }
    }
}
