//! `channel::mpsc` allocates nothing per message in steady state: the ring
//! is preallocated and waiting senders reuse their queue slots. Measured
//! with a counting global allocator, on the measuring thread only.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use asupersync::RuntimeBuilder;
use asupersync::channel::mpsc;

counting_allocator!();

fn poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn try_send_and_try_recv_allocate_nothing_per_message() {
    let (tx, mut rx) = mpsc::channel::<u64>(64);
    let n = allocations(|| {
        for round in 0..1000u64 {
            for i in 0..64 {
                tx.try_send(round * 64 + i).unwrap();
            }
            for i in 0..64 {
                assert_eq!(rx.try_recv(), Ok(round * 64 + i));
            }
        }
    });
    assert_eq!(n, 0, "{n} allocations for 64 000 messages");
}

#[test]
fn send_and_recv_that_do_not_wait_allocate_nothing_per_message() {
    let rt = RuntimeBuilder::current_thread().build().unwrap();
    rt.block_on(|cx| async move {
        let (tx, mut rx) = mpsc::channel::<u64>(4);
        let n = allocations(|| {
            for i in 0..10_000u64 {
                assert_eq!(poll(&mut tx.send(&cx, i)), Poll::Ready(Ok(())));
                assert_eq!(poll(&mut rx.recv(&cx)), Poll::Ready(Ok(i)));
            }
        });
        assert_eq!(n, 0, "{n} allocations for 10 000 messages");
    });
}

#[test]
fn waiting_senders_reuse_their_queue_slots_after_warm_up() {
    let rt = RuntimeBuilder::current_thread().build().unwrap();
    rt.block_on(|cx| async move {
        let (tx, mut rx) = mpsc::channel::<u64>(1);
        // One round of four waiting senders, with the channel full.
        let round = |base: u64, rx: &mut mpsc::Receiver<u64>| {
            tx.try_send(base).unwrap();
            let mut waiting: [_; 4] = std::array::from_fn(|i| tx.send(&cx, base + 1 + i as u64));
            for f in &mut waiting {
                assert!(poll(f).is_pending());
            }
            for (i, f) in waiting.iter_mut().enumerate() {
                assert_eq!(rx.try_recv(), Ok(base + i as u64));
                assert_eq!(poll(f), Poll::Ready(Ok(())));
            }
            assert_eq!(rx.try_recv(), Ok(base + 4));
        };
        round(0, &mut rx); // warm-up: the waiter queue grows to 4 slots
        let n = allocations(|| {
            for r in 1..1000 {
                round(r * 10, &mut rx);
            }
        });
        assert_eq!(n, 0, "{n} allocations after warm-up");
    });
}
