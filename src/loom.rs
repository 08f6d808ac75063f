//! Concurrency primitives that loom can model: `loom::sync` under
//! `cfg(loom)`, `std::sync` otherwise. Code whose atomic protocol has a
//! loom model (for example the obligation home word, `kernel::obligation`)
//! takes its atomics and locks from here.

#[cfg(not(loom))]
pub(crate) mod sync {
    #[allow(unused_imports)]
    pub(crate) use std::sync::*;
}

#[cfg(loom)]
pub(crate) mod sync {
    #[allow(unused_imports)]
    pub(crate) use loom::sync::*;
}
