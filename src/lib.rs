#![doc = include_str!("../README.md")]
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
