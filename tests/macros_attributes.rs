//! `#[asupersync::test]` and `#[asupersync::main]` against the real runtime.

use std::time::Duration;

use asupersync::Cx;
use asupersync::time::sleep;

#[asupersync::test]
async fn the_test_attribute_runs_the_body_as_a_root_task(cx: Cx) {
    let h = cx.spawn(|_| async { 40 + 2 }).unwrap();
    assert_eq!(h.join(&cx).await.unwrap(), 42);
}

#[asupersync::test]
async fn the_test_attribute_can_return_a_result(
    cx: Cx,
) -> Result<(), asupersync::types::cancel::Cancelled> {
    sleep(&cx, Duration::from_millis(1)).await?;
    Ok(())
}

#[asupersync::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_attribute_selects_the_multi_thread_runtime(cx: Cx) {
    let hs: Vec<_> = (0..16u32)
        .map(|i| cx.spawn(move |_| async move { i }).unwrap())
        .collect();
    let mut sum = 0;
    for h in hs {
        sum += h.join(&cx).await.unwrap();
    }
    assert_eq!(sum, 120);
}

#[asupersync::test]
#[should_panic(expected = "boom in the body")]
async fn a_panic_in_the_test_body_fails_the_test(_cx: Cx) {
    panic!("boom in the body");
}

#[asupersync::test]
async fn a_test_without_a_cx_parameter_is_allowed() {
    asupersync::yield_now().await;
}

mod main_attribute {
    #[asupersync::main]
    async fn main(cx: asupersync::Cx) -> u32 {
        let h = cx.spawn(|_| async { 7 }).unwrap();
        h.join(&cx).await.unwrap()
    }

    #[test]
    fn the_main_attribute_builds_a_runtime_and_returns_the_body_value() {
        assert_eq!(main(), 7);
    }
}
