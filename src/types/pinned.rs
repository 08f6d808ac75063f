//! A borrowed pointer to a pinned node that a container (the timer wheel)
//! holds on the node owner's behalf: what lets a timer future keep its
//! wheel entry inside itself, as tokio's `TimerEntry` does, instead of in
//! an allocation of its own (`time::entry`, rules TE1–TE7).
//!
//! Rules (cited as PR1–PR2):
//! - PR1 (the maker's promise): whoever makes a [`PinnedRef`] (an `unsafe`
//!   act) promises that the node stays at its address and alive until
//!   every use of the reference is over: the node is pinned (its owner is a
//!   pinned future, or a box), and the owner's protocol waits, before the
//!   node goes or is reused, until the holder can no longer reach it (for a
//!   timer entry: TE7).
//! - PR2 (shared access only): the holder gets `&T` and nothing more, so
//!   the node's own synchronisation (atomics, the holder's lock) decides
//!   who may touch what; `T: Sync` is required for the reference to cross
//!   threads.

use std::fmt;
use std::ptr::NonNull;

/// A pointer to a pinned `T` kept by a container for the node's owner
/// (PR1, PR2).
pub(crate) struct PinnedRef<T: ?Sized>(NonNull<T>);

// SAFETY: PR2: only `&T` is ever given out, which may cross threads when
// `T: Sync`; PR1 keeps the pointee alive while the reference is used.
unsafe impl<T: ?Sized + Sync> Send for PinnedRef<T> {}
// SAFETY: as for `Send` (PR2).
unsafe impl<T: ?Sized + Sync> Sync for PinnedRef<T> {}

impl<T: ?Sized> PinnedRef<T> {
    /// A reference to `node` for a container to hold.
    ///
    /// # Safety
    /// PR1: `node` must stay at its address, alive, until every use of the
    /// returned reference (and of anything derived from it) is over.
    pub(crate) unsafe fn new(node: &T) -> Self {
        Self(NonNull::from(node))
    }

    /// A reference to a node that lives forever (tests' probes).
    #[cfg(test)]
    pub(crate) fn from_static(node: &'static T) -> Self {
        Self(NonNull::from(node))
    }

    /// The node (PR2: shared access only).
    pub(crate) fn get(&self) -> &T {
        // SAFETY: PR1: the maker promised the node is alive and in place
        // while this reference is used.
        unsafe { self.0.as_ref() }
    }
}

impl<T: ?Sized> fmt::Debug for PinnedRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PinnedRef")
            .field(&self.0.as_ptr().cast::<()>())
            .finish()
    }
}
