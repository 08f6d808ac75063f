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
//! - T4: a timer armed by a thread that runs no task (a plain thread polling
//!   a sleep on a live task's `Cx`) wakes a parked driver, which parks again
//!   with the new deadline in view; a worker re-reads the K8 hint after
//!   announcing its sleep, so an arming that races its park is not missed.
//!   Tests: `tests/time_plain_thread.rs`.
//!
//! Every timer future keeps one entry, inside itself, in the timer
//! service's wheel (its own lock, not the kernel's); the entry protocol,
//! TE1–TE7, is in `entry.rs`:
//! arming takes the wheel lock, re-polls take no lock, a drop takes it only
//! if the entry is armed and not fired. Tests: `tests/time_entry_stress.rs`.

mod entry;
mod interval;
mod sleep;
mod timeout;

pub use interval::{Interval, MissedTickBehavior, Tick, interval, interval_at};
pub use sleep::{Sleep, sleep, sleep_until};
pub use timeout::{Elapsed, Timeout, timeout, timeout_at};
