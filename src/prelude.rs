//! The names almost every program needs, for a glob import:
//!
//! ```
//! use asupersync::prelude::*;
//!
//! // No attribute macro is re-exported here, so a plain `#[test]` next to
//! // this import still means the standard test attribute.
//! fn double(cx: &Cx, x: u32) -> Result<u32, Error> {
//!     cx.checkpoint()?;
//!     Ok(x * 2)
//! }
//! # let rt = asupersync::RuntimeBuilder::current_thread().build().unwrap();
//! # assert_eq!(rt.block_on(|cx| async move { double(&cx, 21) }).unwrap(), 42);
//! ```
//!
//! It holds the capability context, the outcome and cancellation types, the
//! task handles and the crate-wide [`Error`] with the errors met everywhere.
//! Channel and lock errors stay in their modules (their names, such as
//! `SendError` or `RecvError`, repeat across channels); every one of them
//! converts into [`Error`]. Unlike `use asupersync::*`, which brings the
//! `test` and `main` attribute macros along (making a plain `#[test]`
//! ambiguous), this module re-exports no macro.

pub use crate::error::{Error, ErrorKind};
pub use crate::kernel::SpawnError;
pub use crate::runtime::{AbortHandle, JoinError, TaskHandle};
pub use crate::time::Elapsed;
pub use crate::types::cancel::{CancelKind, CancelReason, Cancelled};
pub use crate::types::{Budget, Outcome, Time};
pub use crate::yield_now::yield_now;
pub use crate::{Cx, Runtime, RuntimeBuilder};
