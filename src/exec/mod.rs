//! The driver-neutral execution core: the layer between the kernel and the
//! drivers (`runtime`, `lab`).
//!
//! Everything here is shared by the current-thread runtime, the
//! multi-thread runtime and the lab (rule L4: the lab runs the production
//! kernel, task cells, wakers and `Cx`); nothing here knows how a driver
//! queues tasks, reads time or runs blocking closures: drivers supply a
//! [`runnable::Schedule`], a [`runnable::Clock`] and, optionally, a
//! [`runnable::BlockingRunner`].
//!
//! The files form layers: each imports only files listed below it (no
//! import circle), from the bottom up:
//!
//! - `state`: the task cell's state word (wake state, STARTED, attention
//!   bits, cancel hint, REGISTERED, and the join hand-off's JOIN_INTEREST,
//!   JOIN_WAKER and FINISHED); rules SW1–SW12.
//! - `cancel_slot`: a light task's cancel request, in its cell until the
//!   task observes it or the kernel registers the task (rules LT7, LT8 in
//!   `kernel::light`).
//! - `runnable`: what drivers plug in and every layer runs through:
//!   `Runnable`/`TaskRef`, `Schedule`, `Clock`, `BlockingRunner`, and the
//!   panic-catching `poll_catching` and `wake_catching`.
//! - `context`: the thread-local (core, task) pair; rules BO1 and CX1. It
//!   keys the core by an opaque [`context::CoreKey`], not by `Core`.
//! - `core`: [`core::Core`], the kernel behind its lock plus the driver's
//!   clock and scheduler; polls tasks and performs the kernel's actions. It
//!   knows no task cell, `Cx` or handle: it starts finalizer tasks through
//!   the [`core::FinalizerStarter`] it was built with.
//! - `abort`: [`AbortHandle`].
//! - `cx`: [`Cx`](cx::Cx), the capability context user code holds (public
//!   as `asupersync::cx`); `cx/base.rs` holds the type, `cx/region.rs` and
//!   `cx/masked.rs` add the methods that return their futures.
//! - `finalizer`: the future that runs a region's finalizers (K6).
//! - `join`: the join slot a task completes and [`JoinError`]; rules J1,
//!   J3, J4, through the state word's SW9–SW12 (no lock).
//! - `task_cell`: one allocation per task (future, wake state, join slot);
//!   rules W1–W7.
//! - `task_handle`: [`TaskHandle`], [`Join`], [`JoinMut`]; rule J2.
//! - `root`: the root task a driver's `block_on` polls on its own thread.
//! - `spawn`: spawning (`Core::new`, `Core::spawn`, `Cx::spawn`: cell, `Cx`
//!   and handle, light tasks included) and the finalizer-task starter.
//!
//! Imports point down only: this module uses `kernel`, `trace` and
//! `types`, and is used by the drivers and the libraries above them.

mod abort;
pub(crate) mod cancel_slot;
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
