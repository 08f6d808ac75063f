//! Core value types shared by every layer: identifiers, time, outcomes,
//! cancellation reasons and budgets, and the seeded generator (`DetRng`)
//! that every layer's randomness comes from.
//!
//! These types are plain data. They know nothing about threads, clocks or
//! schedulers, which is what lets the same kernel run under the production
//! drivers and the deterministic lab.

pub mod budget;
pub mod cancel;
mod id;
pub(crate) mod intrusive;
pub mod outcome;
pub(crate) mod pinned;
pub(crate) mod rng;
mod time;

pub use budget::Budget;
pub use cancel::{CancelKind, CancelReason, ForceDropCause};
pub(crate) use id::IdMap;
pub use id::{ObligationId, RegionId, TaskId};
pub use outcome::{Outcome, PanicPayload, Severity};
pub use time::Time;
