#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod channel;
pub mod error;
mod exec;
/// The kernel's plain data (regions, tasks, obligations, timers). Not part
/// of the supported API: the types users meet are re-exported where they
/// are used (`runtime`, `obligation`, `cx`).
#[doc(hidden)]
pub mod kernel;
pub mod lab;
pub mod link;
mod loom;
pub mod monitor;
pub mod obligation;
pub mod prelude;
pub mod runtime;
#[cfg(test)]
mod sizes;
pub mod sync;
pub mod time;
pub(crate) mod timer_wheel;
pub mod trace;
pub mod types;
mod yield_now;

pub use exec::cx;

pub use cx::Cx;
pub use error::{Error, ErrorKind};
pub use kernel::SpawnError;
pub use runtime::{
    AbortHandle, Handle, JoinError, Runtime, RuntimeBuilder, TaskHandle, block_in_place,
    spawn_blocking,
};
pub use types::{Budget, Outcome, Time};
pub use yield_now::{YieldNow, yield_now};

/// Runs `async fn main(cx: Cx)` on an asupersync runtime.
///
/// ```no_run
/// use asupersync::Cx;
///
/// #[asupersync::main]
/// async fn main(cx: Cx) -> Result<(), Box<dyn std::error::Error>> {
///     println!("root task {}", cx.task_id());
///     Ok(())
/// }
/// ```
///
/// `#[asupersync::main(flavor = "multi_thread", worker_threads = 4)]`
/// selects a multi-threaded runtime.
#[doc(inline)]
pub use asupersync_macros::main;

/// Runs an `async fn` test on a fresh asupersync runtime.
///
/// ```no_run
/// use asupersync::Cx;
///
/// #[asupersync::test]
/// async fn spawned_children_finish_before_the_test_returns(cx: Cx) {
///     let handle = cx.spawn(|_cx| async { 40 + 2 }).unwrap();
///     assert_eq!(handle.join(&cx).await.unwrap(), 42);
/// }
/// ```
#[doc(inline)]
pub use asupersync_macros::test;

/// Runs an `async fn` test in the deterministic lab once per seed, and on a
/// failure prints the seed and the command that replays it.
///
/// ```no_run
/// use asupersync::Cx;
///
/// #[asupersync::lab_test(seeds = 100, chaos = "light")]
/// async fn children_always_finish(cx: Cx) {
///     let h = cx.spawn(|_cx| async { 40 + 2 }).unwrap();
///     assert_eq!(h.join(&cx).await.unwrap(), 42);
/// }
/// ```
///
/// A failure reads `asupersync lab: children_always_finish failed with seed
/// 17 (of 0..100, after 17 passed): ...` followed by
/// `replay: ASUPERSYNC_LAB_SEED=17 cargo test children_always_finish`.
/// Options: `seeds`, `base_seed`, `chaos`, `policy`, `workers`,
/// `step_limit`; see [`lab::run_seeds`] for the runtime side.
#[doc(inline)]
pub use asupersync_macros::lab_test;
