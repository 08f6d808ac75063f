//! Time: sleeps, timeouts and intervals, all driven by the runtime's clock
//! (the monotonic clock in production, virtual time in the lab) and all
//! reached through a [`Cx`](crate::Cx).
//!
//! Rules:
//! - T1: a timer never completes before its deadline (`cx.now() >= deadline`
//!   when it returns `Ok`).
//! - T2: every wait that can be cancelled returns `Err(Cancelled)` promptly
//!   when its task is cancelled, and deregisters its timer.
//! - T3: dropping a timer future deregisters it (no stale wakeups pile up).

mod entry;
mod interval;
mod sleep;
mod timeout;

pub use interval::{Interval, MissedTickBehavior, Tick, interval, interval_at};
pub use sleep::{Sleep, sleep, sleep_until};
pub use timeout::{Elapsed, Timeout, timeout, timeout_at};
