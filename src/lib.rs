//! asupersync: an async runtime whose correctness is structural.
//!
//! - Every task is owned by a region; regions form a tree and close only
//!   at quiescence ([`Cx::region`]).
//! - Cancellation is a protocol with typed reasons ([`types::CancelReason`]).
//! - All effects go through an explicit capability context, [`Cx`].
//! - Two-phase effects are tracked as obligations ([`obligation`]).
//!
//! See `docs/ARCHITECTURE.md` for the layers and invariants.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cx;
pub mod kernel;
pub mod link;
pub mod monitor;
pub mod obligation;
pub mod runtime;
pub mod time;
pub(crate) mod timer_wheel;
pub mod types;
mod yield_now;

pub use cx::Cx;
pub use kernel::SpawnError;
pub use runtime::{JoinError, Runtime, RuntimeBuilder, TaskHandle};
pub use types::{Budget, Outcome, Time};
pub use yield_now::{YieldNow, yield_now};
