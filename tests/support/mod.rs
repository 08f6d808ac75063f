//! The one support module of the integration tests (`mod support;` in a
//! test file, then `use support::...`):
//!
//! - drivers ([`drivers`]): [`Driver`] / [`DRIVERS`], the watchdog
//!   ([`with_watchdog`], [`WATCHDOG`], [`SOON`]), [`for_each_driver`] (one
//!   test, both drivers), `on_both_drivers!` (one test per driver) and
//!   [`assert_quiescent`];
//! - all three drivers ([`any_driver`]): [`AnyRt`] and `on_all_drivers!`;
//! - shared state ([`shared`]): [`Gate`], [`Log`], [`Slot`], [`Counter`],
//!   [`Flag`], [`SetOnDrop`], [`DropFlag`];
//! - wakes ([`wake_counter`]): [`counting_waker`], [`wakes`];
//! - allocations ([`alloc`]): `counting_allocator!()`;
//! - utilities ([`util`]): [`until`], [`yield_until`], [`poll_once`],
//!   [`panic_message`], [`expect_panic`], [`XorShift`].
//!
//! Every test binary compiles the whole module and uses a part of it, hence
//! the blanket allowances below.
#![allow(dead_code, unused_imports)]

pub mod alloc;
pub mod any_driver;
pub mod drivers;
pub mod shared;
pub mod traces;
pub mod util;
pub mod wake_counter;

pub use any_driver::*;
pub use drivers::*;
pub use shared::*;
pub use util::*;
pub use wake_counter::*;
