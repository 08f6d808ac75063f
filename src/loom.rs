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
//! the task cell's state word (`exec::state`). A model may only run inside
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
