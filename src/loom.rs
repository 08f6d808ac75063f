//! The seam between the atomic protocols and their loom models.
//!
//! Code whose atomic protocol has a loom model takes its synchronisation
//! types from here instead of `std`. In a normal build this module is a
//! plain re-export of `std::sync`; in the crate's own unit tests built with
//! `RUSTFLAGS="--cfg loom"` it re-exports loom's checked replacements, so
//! the `loom_tests` models explore every interleaving of the real code
//! (README, "Tests"; `docs/ARCHITECTURE.md`, "Loom models").
//!
//! Only the shimmed modules change under `--cfg loom`; everything else keeps
//! `std`'s types, and the library built as a dependency (not `cfg(test)`)
//! is the ordinary one, since loom is a dev-dependency. Shimmed today:
//! the task cell's state word (`exec::state`), the join slot's cells
//! (`exec::join`), the cancel slot's deadline word (`exec::cancel_slot`),
//! the obligation home word (`kernel::obligation`), the oneshot channel's
//! word and cells (`channel::oneshot`) and the intrusive wait queue's lock
//! and node cells (`sync::waiters`; its `WaitLock::new`, hence
//! `Notify::new`, `Barrier::new` and `OnceCell::new`, are not `const`
//! there), and the timer entry's state word and `AtomicWaker`
//! (`time::entry`, `sync::atomic_waker`). A model may only run inside
//! `loom::model`: a loom atomic created outside of it panics, so the rest
//! of the unit tests are not meant to run in a `--cfg loom` build (the CI
//! step filters on `loom`).

/// `std::sync`, or loom's replacement under `cfg(all(test, loom))`.
pub(crate) mod sync {
    #[cfg(all(test, loom))]
    #[allow(unused_imports)]
    pub(crate) use ::loom::sync::{Arc, Mutex, MutexGuard, atomic};

    #[cfg(not(all(test, loom)))]
    #[allow(unused_imports)]
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard, atomic};
}

/// The model entry points, for `loom_tests` modules: `model(|| ..)` runs
/// the closure under every interleaving loom explores, `thread::spawn`
/// creates a modelled thread, and `cell::UnsafeCell` is a cell whose
/// accesses loom checks for data races (it stands for data that a protocol
/// hands from thread to thread, such as a task's future).
#[cfg(all(test, loom))]
pub(crate) use ::loom::{cell, model, thread};

/// `cell::UnsafeCell` outside the models: `std`'s, with loom's closure
/// API (`with`, `with_mut`), so code handing data between threads through
/// an atomic protocol (the join slot, `exec::join`) is the same code in a
/// model and in the library.
#[cfg(not(all(test, loom)))]
pub(crate) mod cell {
    /// `std::cell::UnsafeCell` behind loom's API; no overhead.
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        /// Shared access: the caller's protocol rules out a concurrent
        /// `with_mut`.
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Exclusive access: the caller's protocol rules out any concurrent
        /// access.
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// A short wait for the holder of a lock bit (the obligation home's OB6,
/// the cancel slot's CS2, `exec::cancel_slot`), which holds it for a few
/// instructions: spins a little, then yields the thread. Under loom, a
/// modelled yield, so that a model explores the holder's progress.
pub(crate) fn backoff(spins: &mut u32) {
    #[cfg(all(test, loom))]
    {
        let _ = spins;
        ::loom::thread::yield_now();
    }
    #[cfg(not(all(test, loom)))]
    {
        *spins += 1;
        if *spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
