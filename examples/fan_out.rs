//! Fan out work to child tasks inside a region and gather the results.
//!
//! `cargo run --example fan_out`

use std::time::Duration;

use asupersync::time::sleep;
use asupersync::{Cx, RuntimeBuilder};

fn main() {
    let rt = RuntimeBuilder::new().build().expect("runtime");
    let total = rt.block_on(|cx: Cx| async move {
        let outcome = cx
            .region(|cx| async move {
                let mut handles = Vec::new();
                for i in 1..=10u64 {
                    handles.push(cx.spawn(move |cx| async move {
                        sleep(&cx, Duration::from_millis(10 - i)).await?;
                        Ok::<_, asupersync::types::cancel::Cancelled>(i * i)
                    })?);
                }
                let mut sum = 0;
                for h in handles {
                    sum += h.join(&cx).await.expect("joined").expect("not cancelled");
                }
                Ok::<_, asupersync::SpawnError>(sum)
            })
            .await;
        outcome.unwrap()
    });
    println!("sum of squares 1..=10 = {total}");
    assert_eq!(total, 385);
}
