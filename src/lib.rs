//! asupersync: an async runtime whose correctness is structural.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod link;
pub mod monitor;
pub mod types;
