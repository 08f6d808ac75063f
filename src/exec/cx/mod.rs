//! `Cx`: the capability context every task receives.
//!
//! All effects go through a `Cx`: spawning, regions, time, cancellation
//! checks, finalizers and obligations. There is no ambient runtime: no
//! thread-local lookup, no global spawn or clock. A `Cx` is cheap to clone
//! (one reference count) and can be *narrowed* with [`Cx::restrict`] so that
//! code handed a `Cx` cannot spawn or read time; the check is at run time and
//! a denied effect returns an error (spawn) or panics naming the missing
//! capability (time, where the signature has no error channel).
//!
//! Cancellation checks (`checkpoint` and every cancel-aware wait) follow
//! rule A2 (`docs/ARCHITECTURE.md`): while nothing anywhere is cancelled
//! they skip the kernel lock. Exception: a `Cx` carries the earliest budget
//! deadline that bounds it (its task's, fixed at spawn, met with the
//! deadline of each region body it runs in, rule K9), and a `Cx` with a
//! deadline reads the clock on that path: once the deadline has passed the
//! check goes to the kernel, which cancels the task (or region) with
//! `Deadline` if its timer has not done so yet. So a task that runs past its
//! deadline without yielding fails its next checkpoint. A `Cx` without a
//! deadline never reads the clock there.
//!
//! Rule CX1: a `Cx` is used by its own task. Checkpoints and cancel-aware
//! waits (sleeps, joins, channel and lock waits) observe the cancellation
//! of the `Cx`'s task, so they must run inside that task: a child that
//! waits on its parent's `cx` panics, naming the rule, instead of missing
//! its own abort (use the `cx` the spawn closure receives). A region body
//! runs in its owner task and may use its `cx`; finalizers may wait on the
//! `Cx` they captured; code outside any task is not checked, except that a
//! timer on the `Cx` of a completed task panics rather than pend forever.
//! See `exec::context`.

mod base;
mod caps;
mod masked;
mod region;

pub use base::{Cx, DeferError};
pub(crate) use base::{CxHome, SharedHome};
pub use caps::Capabilities;
pub use masked::MaskedAsync;
pub use region::RegionFuture;

pub use crate::kernel::MAX_MASK_DEPTH;
