//! `channel::oneshot` drops a value exactly once on every path (rule OS2 of
//! the protocol): received, left in a dropped or closed receiver, given back
//! by a failed send or permit, never sent at all; and a channel is one
//! allocation (counting allocator, on the measuring thread only).

mod support;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use asupersync::channel::oneshot::{self, RecvError, SendError, TryRecvError};
use futures_core::Stream;
use support::{counting_waker, for_each_driver, wakes};

counting_allocator!();

// ----- a value that counts its drops ----------------------------------------

#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl PartialEq for Counted {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

fn counted() -> (Counted, Arc<AtomicUsize>) {
    let drops = Arc::new(AtomicUsize::new(0));
    (Counted(drops.clone()), drops)
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn drops(d: &AtomicUsize) -> usize {
    d.load(Ordering::SeqCst)
}

fn poll_next<S: Stream + Unpin>(s: &mut S, waker: &Waker) -> Poll<Option<S::Item>> {
    Pin::new(s).poll_next(&mut Context::from_waker(waker))
}

// ----- drops ----------------------------------------------------------------

#[test]
fn a_received_value_is_dropped_once_by_its_receiver_and_never_by_the_channel() {
    let (v, d) = counted();
    let (tx, mut rx) = oneshot::channel();
    tx.send(v).unwrap();
    let got = rx.try_recv().unwrap();
    drop(rx);
    assert_eq!(drops(&d), 0, "the channel does not drop a received value");
    drop(got);
    assert_eq!(drops(&d), 1);
}

#[test]
fn a_value_received_by_a_waiting_poll_is_dropped_once() {
    let (v, d) = counted();
    let (tx, mut rx) = oneshot::channel();
    let (w, waker) = counting_waker();
    assert!(poll_next(&mut rx, &waker).is_pending());
    tx.send(v).unwrap();
    assert_eq!(wakes(&w), 1, "the send wakes the waiting receiver");
    let Poll::Ready(Some(got)) = poll_next(&mut rx, &waker) else {
        panic!("the value is there")
    };
    assert!(
        poll_next(&mut rx, &waker) == Poll::Ready(None),
        "rule 5: once"
    );
    drop(rx);
    assert_eq!(drops(&d), 0);
    drop(got);
    assert_eq!(drops(&d), 1);
    drop(waker);
    assert_eq!(Arc::strong_count(&w), 1, "the channel released the waker");
}

#[test]
fn a_value_left_in_a_dropped_receiver_is_dropped_once_when_the_receiver_drops() {
    let (v, d) = counted();
    let (tx, rx) = oneshot::channel();
    tx.send(v).unwrap();
    assert_eq!(drops(&d), 0);
    drop(rx);
    assert_eq!(drops(&d), 1);
}

#[test]
fn a_value_left_in_a_closed_receiver_stays_until_received_or_dropped_with_it() {
    let (v, d) = counted();
    let (tx, mut rx) = oneshot::channel();
    tx.send(v).unwrap();
    rx.close();
    rx.close();
    assert_eq!(drops(&d), 0, "close keeps a value sent before it");
    drop(rx);
    assert_eq!(drops(&d), 1);

    let (v, d) = counted();
    let (tx, mut rx) = oneshot::channel();
    tx.send(v).unwrap();
    rx.close();
    drop(rx.try_recv().unwrap());
    assert_eq!(drops(&d), 1);
    drop(rx);
    assert_eq!(drops(&d), 1);
}

#[test]
fn a_send_to_a_dropped_or_closed_receiver_gives_the_value_back_to_be_dropped_once() {
    let (v, d) = counted();
    let (tx, rx) = oneshot::channel();
    drop(rx);
    let Err(SendError::Disconnected(back)) = tx.send(v) else {
        panic!("the receiver is gone")
    };
    assert_eq!(drops(&d), 0, "the value came back whole");
    drop(back);
    assert_eq!(drops(&d), 1);

    let (v, d) = counted();
    let (tx, mut rx) = oneshot::channel();
    rx.close();
    let Err(SendError::Disconnected(back)) = tx.send(v) else {
        panic!("the receiver is closed")
    };
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    drop(rx);
    assert_eq!(drops(&d), 0);
    drop(back);
    assert_eq!(drops(&d), 1);
}

#[test]
fn a_sender_dropped_unsent_drops_no_value_and_wakes_the_receiver_once() {
    let (tx, mut rx) = oneshot::channel::<Counted>();
    let (w, waker) = counting_waker();
    assert!(poll_next(&mut rx, &waker).is_pending());
    drop(tx);
    assert_eq!(wakes(&w), 1);
    assert!(poll_next(&mut rx, &waker) == Poll::Ready(None));
    assert!(rx.is_terminated());
    drop(rx);
    drop(waker);
    assert_eq!(Arc::strong_count(&w), 1, "the channel released the waker");
}

#[test]
fn a_value_sent_after_the_receiver_stored_a_waker_and_left_is_dropped_once() {
    // The receiver registers, then goes away; the send fails and the value
    // comes back; the stored waker is released, never woken.
    let (v, d) = counted();
    let (tx, mut rx) = oneshot::channel();
    let (w, waker) = counting_waker();
    assert!(poll_next(&mut rx, &waker).is_pending());
    drop(rx);
    assert!(tx.is_closed());
    drop(tx.send(v).unwrap_err().into_inner());
    assert_eq!(drops(&d), 1);
    assert_eq!(wakes(&w), 0, "nobody is waiting any more");
    drop(waker);
    assert_eq!(
        Arc::strong_count(&w),
        1,
        "the receiver's drop released its waker"
    );
}

#[test]
fn permits_drop_their_value_exactly_once_on_every_path() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            // Dropped unused: nothing to drop, the receiver is disconnected.
            let (tx, mut rx) = oneshot::channel::<Counted>();
            drop(tx.reserve(&cx).unwrap());
            assert_eq!(rx.recv(&cx).await, Err(RecvError::Disconnected));

            // Sent, then left in a dropped receiver.
            let (v, d) = counted();
            let (tx, rx) = oneshot::channel();
            tx.reserve(&cx).unwrap().send(v).unwrap();
            assert_eq!(drops(&d), 0);
            drop(rx);
            assert_eq!(drops(&d), 1);

            // Sent and received.
            let (v, d) = counted();
            let (tx, mut rx) = oneshot::channel();
            tx.reserve(&cx).unwrap().send(v).unwrap();
            let got = rx.recv(&cx).await.unwrap();
            assert_eq!(drops(&d), 0);
            drop(got);
            drop(rx);
            assert_eq!(drops(&d), 1);

            // The receiver went away after the reservation: the value comes
            // back.
            let (v, d) = counted();
            let (tx, rx) = oneshot::channel();
            let permit = tx.reserve(&cx).unwrap();
            drop(rx);
            let back = permit.send(v).unwrap_err().into_inner();
            assert_eq!(drops(&d), 0);
            drop(back);
            assert_eq!(drops(&d), 1);
        });
        let stats = rt.stats();
        assert_eq!(stats.obligations_committed, 2);
        assert_eq!(stats.obligations_aborted, 2);
    });
}

// ----- allocation -----------------------------------------------------------

#[test]
fn a_channel_is_one_allocation_whatever_happens_to_it() {
    let noop = Waker::noop();
    let n = allocations(|| {
        let (tx, mut rx) = oneshot::channel::<u64>();
        assert!(poll_next(&mut rx, noop).is_pending());
        tx.send(7).unwrap();
        assert_eq!(poll_next(&mut rx, noop), Poll::Ready(Some(7)));
    });
    assert_eq!(n, 1, "send after a waiting poll: {n} allocations");

    let n = allocations(|| {
        let (tx, rx) = oneshot::channel::<[u64; 8]>();
        drop(rx);
        assert!(tx.send([0; 8]).is_err());
    });
    assert_eq!(n, 1, "send to a dropped receiver: {n} allocations");

    let n = allocations(|| {
        let (tx, mut rx) = oneshot::channel::<String>();
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    });
    assert_eq!(n, 1, "sender dropped unsent: {n} allocations");
}
