//! asupersync: an async runtime whose correctness is structural.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[allow(dead_code)] // Nothing drives the wheel yet; the timer driver will.
pub(crate) mod timer_wheel;
pub mod types;
