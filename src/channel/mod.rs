//! Channels whose sends are two-phase: reserve a slot (an obligation), then
//! commit the value. No message is lost to cancellation.

pub mod broadcast;
pub mod watch;

pub mod mpsc;
pub mod oneshot;
