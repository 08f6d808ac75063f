//! The driver-neutral execution core: the layer between the kernel and the
//! drivers (`runtime`, `lab`).
//!
//! Everything here is shared by the current-thread runtime, the
//! multi-thread runtime and the lab (rule L4: the lab runs the production
//! kernel, task cells, wakers and `Cx`); nothing here knows how a driver
//! queues tasks, reads time or runs blocking closures: drivers supply a
//! [`core::Schedule`], a [`core::Clock`] and, optionally, a
//! [`core::BlockingRunner`].
//!
//! - `core`: [`core::Core`], the kernel behind its lock plus the driver's
//!   clock and scheduler; spawning and polling tasks.
//! - `task_cell`: one allocation per task (future, wake state, join slot);
//!   rules W1–W6.
//! - `state`: the task cell's state word (wake state, STARTED, attention
//!   bits, cancel hint); rules SW1–SW7.
//! - `join`: [`TaskHandle`], [`Join`], [`JoinMut`], [`JoinError`]; rules J1–J4.
//! - `abort`: [`AbortHandle`].
//! - `root`: the root task a driver's `block_on` polls on its own thread.
//! - `finalizer`: the task that runs a region's finalizers (K6).
//! - `context`: the thread-local (core, task) pair; rules BO1 and CX1.
//! - `cx`: [`Cx`](cx::Cx), the capability context user code holds (public
//!   as `asupersync::cx`).
//!
//! Imports point down only: this module uses `kernel`, `trace` and
//! `types`, and is used by the drivers and the libraries above them.

mod abort;
pub(crate) mod context;
pub(crate) mod core;
pub mod cx;
pub(crate) mod finalizer;
pub(crate) mod join;
pub(crate) mod root;
pub(crate) mod runnable;
pub(crate) mod spawn;
pub(crate) mod state;
pub(crate) mod task_cell;
pub(crate) mod task_handle;

pub use abort::AbortHandle;
pub use join::JoinError;
pub use task_handle::{Join, JoinMut, TaskHandle};
