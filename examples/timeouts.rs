//! Timeouts and intervals.
//!
//! `cargo run --example timeouts`

use std::time::Duration;

use asupersync::time::{MissedTickBehavior, interval, sleep, timeout};
use asupersync::{Cx, RuntimeBuilder};

fn main() {
    let rt = RuntimeBuilder::current_thread().build().expect("runtime");
    rt.block_on(|cx: Cx| async move {
        match timeout(
            &cx,
            Duration::from_millis(10),
            sleep(&cx, Duration::from_secs(5)),
        )
        .await
        {
            Ok(_) => println!("the slow sleep finished (unexpected)"),
            Err(elapsed) => println!("gave up: {elapsed}"),
        }

        let mut ticker = interval(&cx, Duration::from_millis(5));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let start = cx.now();
        for _ in 0..4 {
            let at = ticker.tick().await.expect("not cancelled");
            println!("tick scheduled at +{:?}", at.duration_since(start));
        }
    });
}
