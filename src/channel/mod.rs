//! Channels. No message is lost to cancellation: a cancelled wait consumes
//! nothing, and every error that was handed a value gives it back.
//!
//! - [`mpsc`]: bounded and unbounded multi-producer queues with two-phase
//!   sends: `reserve(&cx)` takes a slot as an obligation, `permit.send(v)`
//!   commits it and cannot block.
//! - [`mpmc`]: a bounded or unbounded multi-consumer work queue: senders
//!   and receivers are both `Clone`, each value goes to exactly one receiver.
//! - [`oneshot`]: a single value, with an optional two-phase `reserve`.
//! - [`broadcast`]: a bounded ring every receiver reads; slow receivers get
//!   `Lagged(n)` once and resume. Sends never wait.
//! - [`watch`]: the latest value, versioned; `changed(&cx)` waits for a newer
//!   one. Sends never wait.
//!
//! Every receiver except mpmc's also implements `futures_core::Stream`; see
//! each module for what that path does on cancellation.

pub mod broadcast;
pub mod mpmc;
pub mod mpsc;
pub mod oneshot;
pub mod watch;
