//! Issue 11 item 8: absurd or impossible builder settings are refused with a
//! clear `BuildError` instead of hanging or panicking.

use asupersync::runtime::MAX_WORKER_THREADS;
use asupersync::{Cx, RuntimeBuilder};

#[test]
fn too_many_worker_threads_is_a_build_error_naming_the_maximum() {
    for n in [MAX_WORKER_THREADS + 1, 100_000, usize::MAX] {
        let err = RuntimeBuilder::new()
            .worker_threads(n)
            .build()
            .expect_err("an absurd worker count must be refused");
        let msg = err.to_string();
        assert!(
            msg.contains("worker_threads") && msg.contains(&MAX_WORKER_THREADS.to_string()),
            "unclear message: {msg:?}"
        );
    }
}

#[test]
fn the_maximum_itself_is_documented_and_sane() {
    assert_eq!(MAX_WORKER_THREADS, 1024);
}

#[test]
fn a_thread_name_with_a_nul_byte_is_a_build_error() {
    for builder in [
        RuntimeBuilder::new().worker_threads(1),
        RuntimeBuilder::current_thread(),
    ] {
        let err = builder
            .thread_name("bad\0name")
            .build()
            .expect_err("std cannot name a thread with an interior NUL");
        let msg = err.to_string();
        assert!(
            msg.contains("thread_name") && msg.contains("NUL"),
            "unclear message: {msg:?}"
        );
    }
}

/// A worker thread that the OS refuses to start (here: a stack no address
/// space can hold) is reported as a `BuildError`, and the workers already
/// started are shut down.
#[test]
fn a_worker_thread_that_cannot_start_is_a_build_error() {
    let err = RuntimeBuilder::new()
        .worker_threads(2)
        .thread_stack_size(1 << 62)
        .build()
        .expect_err("no thread can have a 4 EiB stack");
    let msg = err.to_string();
    assert!(
        msg.contains("failed to start worker thread"),
        "unclear message: {msg:?}"
    );
}

#[test]
fn a_sane_stack_size_is_used_by_the_workers() {
    let rt = RuntimeBuilder::new()
        .worker_threads(1)
        .thread_stack_size(4 << 20)
        .build()
        .unwrap();
    let v = rt.block_on(|cx: Cx| async move {
        cx.spawn(|_| async {
            // A large frame, well within the 4 MiB stack.
            let buf = [1u8; 512 * 1024];
            std::hint::black_box(&buf)
                .iter()
                .map(|&b| u64::from(b))
                .sum::<u64>()
        })
        .unwrap()
        .join(&cx)
        .await
        .unwrap()
    });
    assert_eq!(v, 512 * 1024);
}
