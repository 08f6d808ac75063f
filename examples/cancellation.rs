//! Cancellation reasons, cause chains, masking and cleanup.
//!
//! `cargo run --example cancellation`

use std::time::Duration;

use asupersync::time::sleep;
use asupersync::types::CancelReason;
use asupersync::{Cx, RuntimeBuilder};

fn main() {
    let rt = RuntimeBuilder::current_thread().build().expect("runtime");
    rt.block_on(|cx: Cx| async move {
        let worker = cx
            .spawn(|cx| async move {
                while !cx.is_cancel_requested() {
                    asupersync::yield_now().await;
                }
                // A critical section: its checkpoints do not observe the request.
                let in_mask = cx.masked(|| cx.checkpoint().is_ok());
                println!("cancel requested; checkpoint inside masked section ok: {in_mask}");
                match sleep(&cx, Duration::from_secs(60)).await {
                    Ok(()) => println!("slept a full minute?"),
                    Err(cancelled) => {
                        println!("worker observed: {}", cancelled.reason());
                        println!("cleanup budget now: {:?}", cx.budget());
                    }
                }
            })
            .expect("spawn");
        asupersync::yield_now().await;
        worker.abort_with(CancelReason::timeout().with_message("request deadline"));
        worker.abort_with(CancelReason::shutdown()); // strengthens: shutdown wins
        let err = worker.join(&cx).await.unwrap_err();
        println!("worker joined with: {err}");
    });
}
