//! A pointer to a pinned node that a container holds on the node owner's
//! behalf without owning it: the intrusive list's borrowed nodes (the
//! waiters of `sync::waiters`, rule IL6 in `types::intrusive`) and the
//! timer wheel's entries, which live inside their timer futures
//! (`time::entry`, rules TE1–TE7), as tokio's do.
//!
//! Rules (cited as PR1–PR2):
//! - PR1 (the maker's promise): whoever makes a [`Pinned`] (an `unsafe`
//!   act) promises that the node stays at its address and alive until
//!   every use of the pointer is over: the node is pinned (`new` takes a
//!   `Pin`), and its owner's protocol waits, before the node goes, until
//!   the holder can no longer reach it (IL6 for a list, TE7 for a timer).
//! - PR2 (shared access only): the holder gets `&T` and nothing more, so
//!   the node's own synchronisation (atomics, the holder's lock) decides
//!   who may touch what; `T: Sync` is required for the pointer to cross
//!   threads. Dropping it does nothing.

use std::fmt;
use std::pin::Pin;
use std::ptr::NonNull;

/// A pointer to a pinned `T` kept by a container for the node's owner
/// (PR1, PR2).
pub(crate) struct Pinned<T: ?Sized>(NonNull<T>);

// SAFETY: PR2: only `&T` is ever given out, which may cross threads when
// `T: Sync`; PR1 keeps the pointee alive while the pointer is used.
unsafe impl<T: ?Sized + Sync> Send for Pinned<T> {}
// SAFETY: as for `Send` (PR2).
unsafe impl<T: ?Sized + Sync> Sync for Pinned<T> {}

impl<T: ?Sized> Pinned<T> {
    /// A pointer to `node`, for a container to hold.
    ///
    /// # Safety
    /// PR1: `node` must stay alive (and, being pinned, in place) until
    /// every use of the returned pointer, and of anything derived from it,
    /// is over.
    pub(crate) unsafe fn new(node: Pin<&T>) -> Self {
        Self(NonNull::from(node.get_ref()))
    }

    /// A pointer to a node that lives for ever (tests' probes).
    #[cfg(test)]
    pub(crate) fn from_static(node: &'static T) -> Self {
        Self(NonNull::from(node))
    }

    /// The node (PR2: shared access only).
    pub(crate) fn get(&self) -> &T {
        // SAFETY: PR1: the maker promised the node is alive and in place
        // while this pointer is used.
        unsafe { self.0.as_ref() }
    }

    /// The node's address: dereferenceable while PR1's promise lasts.
    pub(crate) fn as_ptr(&self) -> NonNull<T> {
        self.0
    }

    /// A pointer rebuilt from [`as_ptr`](Self::as_ptr)'s address.
    ///
    /// # Safety
    /// `ptr` must come from a `Pinned` whose PR1 promise still holds.
    pub(crate) unsafe fn from_ptr(ptr: NonNull<T>) -> Self {
        Self(ptr)
    }
}

impl<T: ?Sized> fmt::Debug for Pinned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pinned")
            .field(&self.0.as_ptr().cast::<()>())
            .finish()
    }
}
