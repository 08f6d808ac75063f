//! An intrusive doubly linked list of `Arc`-owned nodes: the links live in
//! the nodes themselves, so linking and unlinking a node are a few pointer
//! writes in its own header and its neighbours', with no hashing and no
//! allocation (the light-task set, `kernel::light`, keeps its task cells
//! in one).
//!
//! Rules (cited as IL1–IL5):
//! - IL1 (the list owns one reference): [`List::push_back`] turns the
//!   node's `Arc` into the raw pointer the list keeps; [`List::remove`],
//!   [`List::remove_first`] and [`List::pop_front`] turn it back into the
//!   `Arc` they return. So a node is alive at least while it is linked,
//!   and every pointer the list holds (head, tail, a linked node's links)
//!   points at a live node. The list's pointers to nodes (head, tail,
//!   each `next`) are the ones `Arc::into_raw` made; a `prev` points at
//!   the previous node's links only, so a `dyn` node's links are three
//!   words.
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

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

/// A node type that embeds its [`Links`].
///
/// # Safety
/// IL5: `links` must return a reference to the same `Links`, stored in the
/// node itself, every time it is called on the same node.
pub(crate) unsafe trait Linked {
    fn links(&self) -> &Links<Self>;
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

/// The list: head, tail and length (see the module doc, IL1–IL5).
pub(crate) struct List<T: ?Sized + Linked> {
    head: Option<NonNull<T>>,
    tail: Option<NonNull<T>>,
    len: usize,
    /// IL1: the list owns one `Arc<T>` per node.
    _owns: PhantomData<Arc<T>>,
}

// SAFETY: IL1: the list owns `Arc<T>`s (sendable when `T: Send + Sync`);
// IL2: it alone touches its nodes' links.
unsafe impl<T: ?Sized + Linked + Send + Sync> Send for List<T> {}
// SAFETY: `&List` only reads links (IL2: no writer exists meanwhile) and
// hands out `&T` / clones of `Arc<T>`, as `&Vec<Arc<T>>` would.
unsafe impl<T: ?Sized + Linked + Send + Sync> Sync for List<T> {}

/// Whether `a` and `b` are the same node (by address: a `dyn` pointer's
/// vtable part may differ between codegen units).
fn same<T: ?Sized>(a: NonNull<T>, b: &T) -> bool {
    std::ptr::addr_eq(a.as_ptr(), b as *const T)
}

impl<T: ?Sized + Linked> List<T> {
    pub(crate) const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
            _owns: PhantomData,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Links `node` at the tail, keeping the `Arc`'s reference (IL1).
    /// `node` must be in no list (IL3; checked in debug builds as far as
    /// IL4 allows).
    pub(crate) fn push_back(&mut self, node: Arc<T>) {
        // IL1: the list now owns this reference.
        // SAFETY: `Arc::into_raw` never returns null.
        let ptr = unsafe { NonNull::new_unchecked(Arc::into_raw(node).cast_mut()) };
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

    /// Unlinks `node` and returns the list's reference to it (IL1), or
    /// `None` if it was not linked.
    ///
    /// # Safety
    /// IL3: `node` is in this list or in no list.
    pub(crate) unsafe fn remove(&mut self, node: &T) -> Option<Arc<T>> {
        if !self.is_linked_here(node) {
            return None;
        }
        // The list's own pointer to `node` (from `Arc::into_raw`, so valid
        // for the whole `Arc` allocation, unlike one made from `&T`).
        // SAFETY: the caller (IL3) and IL4: `node` is linked in this list.
        let own = unsafe { self.own_pointer(node.links()) };
        debug_assert!(same(own, node));
        // SAFETY: `own` is this list's pointer to `node`, which is linked.
        Some(unsafe { self.unlink(own) })
    }

    /// # Safety
    /// `node` is linked in this list, and is the list's own pointer to it
    /// (the head, or a predecessor's `next`: from `Arc::into_raw`, IL1).
    unsafe fn unlink(&mut self, node: NonNull<T>) -> Arc<T> {
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
            // IL1: the reference `push_back` kept.
            Arc::from_raw(node.as_ptr())
        }
    }

    /// Unlinks the first node (from the head) for which `pred` holds.
    pub(crate) fn remove_first(&mut self, mut pred: impl FnMut(&T) -> bool) -> Option<Arc<T>> {
        let found = self.iter().find(|n| pred(n)).map(|n| n.ptr)?;
        // SAFETY: `found` was reached from this list's head: it is linked here.
        Some(unsafe { self.unlink(found) })
    }

    /// Unlinks the head node.
    pub(crate) fn pop_front(&mut self) -> Option<Arc<T>> {
        let head = self.head?;
        // SAFETY: the head is linked in this list.
        Some(unsafe { self.unlink(head) })
    }

    /// The nodes from head to tail, borrowed from the list.
    pub(crate) fn iter(&self) -> Iter<'_, T> {
        Iter {
            next: self.head,
            _list: PhantomData,
        }
    }
}

impl<T: ?Sized + Linked> Default for List<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ?Sized + Linked> Drop for List<T> {
    /// Releases the list's references (IL1).
    fn drop(&mut self) {
        while let Some(node) = self.pop_front() {
            drop(node);
        }
    }
}

impl<T: ?Sized + Linked> fmt::Debug for List<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("List").field("len", &self.len).finish()
    }
}

/// A linked node, borrowed from its list (alive while the borrow lasts:
/// the list cannot unlink it meanwhile, IL1).
pub(crate) struct Node<'a, T: ?Sized> {
    ptr: NonNull<T>,
    _list: PhantomData<&'a T>,
}

impl<T: ?Sized> Node<'_, T> {
    /// A new reference to the node.
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

impl<T: ?Sized> std::ops::Deref for Node<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: IL1: linked, hence alive, for the list borrow `'a`.
        unsafe { self.ptr.as_ref() }
    }
}

/// [`List::iter`].
pub(crate) struct Iter<'a, T: ?Sized> {
    next: Option<NonNull<T>>,
    _list: PhantomData<&'a T>,
}

impl<'a, T: ?Sized + Linked> Iterator for Iter<'a, T> {
    type Item = Node<'a, T>;

    fn next(&mut self) -> Option<Node<'a, T>> {
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
