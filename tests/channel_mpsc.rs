//! `channel::mpsc` semantics, each test on both production drivers
//! (current_thread and a 2-worker multi-thread runtime).
//!
//! Waits whose order matters are made deterministic by polling several
//! futures by hand from one task (`poll_once`), so that "A started waiting
//! before B" is a fact of the test, not a scheduling accident.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use asupersync::channel::mpsc::{
    self, RecvError, ReserveError, SendError, TryRecvError, TrySendError,
};
use asupersync::{Cx, yield_now};
use futures_core::Stream;
use support::{SOON, for_each_driver, poll_once, yield_until};

/// `StreamExt::next` without the dependency.
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|tcx| Pin::new(&mut *s).poll_next(tcx)).await
}

fn is_pending<T>(p: &Poll<T>) -> bool {
    matches!(p, Poll::Pending)
}

#[test]
fn messages_arrive_in_order_and_recv_reports_disconnected_after_the_last_sender_drops() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(4);
            let tx2 = tx.clone();
            let producer = cx
                .spawn(move |cx| async move {
                    for i in 0..100 {
                        tx2.send(&cx, i).await.unwrap();
                    }
                })
                .unwrap();
            drop(tx);
            let mut got = Vec::new();
            loop {
                match rx.recv(&cx).await {
                    Ok(v) => got.push(v),
                    Err(e) => {
                        assert_eq!(e, RecvError::Disconnected);
                        break;
                    }
                }
            }
            producer.join(&cx).await.unwrap();
            assert_eq!(got, (0..100).collect::<Vec<_>>());
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        });
    });
}

#[test]
fn a_permit_holds_its_slot_until_it_is_sent_or_dropped() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(2);
            let p1 = tx.reserve(&cx).await.unwrap();
            assert_eq!(tx.capacity(), 1);
            let p2 = tx.reserve(&cx).await.unwrap();
            assert_eq!(tx.capacity(), 0);
            assert!(tx.try_send(9).unwrap_err().is_full(), "both slots are held");
            p2.send(2).unwrap();
            assert_eq!(tx.capacity(), 0, "the slot now holds a message");
            drop(p1);
            assert_eq!(tx.capacity(), 1, "a dropped permit gives its slot back");
            assert_eq!(rx.try_recv(), Ok(2));
            assert_eq!(tx.capacity(), 2);
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        });
    });
}

#[test]
fn a_permit_borrows_only_its_sender_not_the_cx() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            let permit = tx.reserve(&cx.clone()).await.unwrap();
            permit.send(1).unwrap();
            assert_eq!(rx.recv(&cx).await, Ok(1));
        });
    });
}

#[test]
fn permits_record_an_obligation_that_is_committed_on_send_and_aborted_on_drop() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, _rx) = mpsc::channel::<u32>(2);
            let p = tx.reserve(&cx).await.unwrap();
            assert_eq!(p.obligation().kind(), mpsc::PERMIT_KIND);
            let id = p.obligation().id();
            assert!(cx.obligation_state(id).is_some(), "pending while held");
            p.send(1).unwrap();
            assert!(cx.obligation_state(id).is_none(), "resolved by send");
            let q = tx.reserve(&cx).await.unwrap();
            let id = q.obligation().id();
            drop(q);
            assert!(cx.obligation_state(id).is_none(), "resolved by drop");
        });
        let stats = rt.stats();
        assert_eq!(stats.obligations_committed, 1);
        assert_eq!(stats.obligations_aborted, 1);
        assert_eq!(stats.obligations_leaked, 0);
        assert_eq!(rt.pending_obligations(), 0);
    });
}

#[test]
fn permit_send_gives_the_value_back_and_aborts_its_obligation_when_the_receiver_is_gone() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, rx) = mpsc::channel::<String>(1);
            let p = tx.reserve(&cx).await.unwrap();
            drop(rx);
            let err = p.send("hello".to_string()).unwrap_err();
            assert!(err.is_disconnected());
            assert_eq!(err.into_inner(), "hello");
        });
        let stats = rt.stats();
        assert_eq!(stats.obligations_committed, 0);
        assert_eq!(stats.obligations_aborted, 1);
    });
}

#[test]
fn send_try_send_and_reserve_fail_with_the_value_back_once_the_receiver_is_gone() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, rx) = mpsc::channel::<u32>(1);
            assert!(!tx.is_closed());
            drop(rx);
            assert!(tx.is_closed());
            assert_eq!(tx.send(&cx, 1).await, Err(SendError::Disconnected(1)));
            assert_eq!(tx.try_send(2), Err(TrySendError::Disconnected(2)));
            assert_eq!(
                tx.reserve(&cx).await.unwrap_err(),
                ReserveError::Disconnected
            );
        });
    });
}

#[test]
fn try_send_reports_full_with_the_value_and_succeeds_again_after_a_recv() {
    for_each_driver(|_, rt| {
        rt.block_on(|_cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            tx.try_send(1).unwrap();
            let err = tx.try_send(2).unwrap_err();
            assert!(err.is_full());
            assert_eq!(err.into_inner(), 2);
            assert_eq!(rx.try_recv(), Ok(1));
            tx.try_send(3).unwrap();
            assert_eq!(rx.try_recv(), Ok(3));
        });
    });
}

#[test]
fn waiting_senders_are_served_in_the_order_they_started_waiting() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<&'static str>(1);
            tx.try_send("first").unwrap();
            let mut a = tx.send(&cx, "a");
            let mut b = tx.reserve(&cx);
            let mut c = tx.send(&cx, "c");
            assert!(is_pending(&poll_once(&mut a).await));
            assert!(is_pending(&poll_once(&mut b).await));
            assert!(is_pending(&poll_once(&mut c).await));
            // Each freed slot goes to the oldest waiter, in order.
            assert_eq!(rx.recv(&cx).await, Ok("first"));
            assert!(is_pending(&poll_once(&mut c).await), "c is behind a and b");
            assert!(is_pending(&poll_once(&mut b).await), "b is behind a");
            assert_eq!(poll_once(&mut a).await, Poll::Ready(Ok(())));
            assert_eq!(rx.recv(&cx).await, Ok("a"));
            let permit = match poll_once(&mut b).await {
                Poll::Ready(r) => r.unwrap(),
                Poll::Pending => panic!("b was granted the freed slot"),
            };
            assert!(is_pending(&poll_once(&mut c).await), "c waits for b's slot");
            permit.send("b").unwrap();
            assert_eq!(rx.recv(&cx).await, Ok("b"));
            assert_eq!(poll_once(&mut c).await, Poll::Ready(Ok(())));
            assert_eq!(rx.recv(&cx).await, Ok("c"));
        });
    });
}

#[test]
fn waiting_sends_are_received_in_the_order_they_started_waiting_even_if_polled_out_of_order() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(2);
            tx.try_send(0).unwrap();
            tx.try_send(1).unwrap();
            let mut futs: Vec<_> = (2..6).map(|i| Some(tx.send(&cx, i))).collect();
            for f in futs.iter_mut().flatten() {
                assert!(is_pending(&poll_once(f).await));
            }
            let mut got = Vec::new();
            let mut buf = Vec::new();
            while got.len() < 6 {
                buf.clear();
                rx.recv_many(&cx, &mut buf, 6).await.unwrap();
                got.extend_from_slice(&buf);
                // Collect the outcomes newest first: the values were already
                // queued in the order the sends started waiting.
                for slot in futs.iter_mut().rev() {
                    if let Some(f) = slot
                        && let Poll::Ready(r) = poll_once(f).await
                    {
                        assert_eq!(r, Ok(()));
                        *slot = None;
                    }
                }
            }
            assert_eq!(got, [0, 1, 2, 3, 4, 5]);
            assert!(futs.iter().all(Option::is_none), "every send completed");
        });
    });
}

#[test]
fn try_send_never_overtakes_a_waiting_sender() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            tx.try_send(1).unwrap();
            let mut waiting = tx.send(&cx, 2);
            assert!(is_pending(&poll_once(&mut waiting).await));
            assert_eq!(rx.try_recv(), Ok(1));
            // The freed slot went to the waiter; try_send finds no room.
            assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
            assert_eq!(poll_once(&mut waiting).await, Poll::Ready(Ok(())));
            assert_eq!(rx.try_recv(), Ok(2));
            tx.try_send(3).unwrap();
        });
    });
}

#[test]
fn a_dropped_permit_hands_its_slot_to_the_oldest_waiting_sender() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            let permit = tx.reserve(&cx).await.unwrap();
            let mut a = tx.send(&cx, 1);
            let mut b = tx.send(&cx, 2);
            assert!(is_pending(&poll_once(&mut a).await));
            assert!(is_pending(&poll_once(&mut b).await));
            drop(permit);
            assert_eq!(
                rx.try_recv(),
                Ok(1),
                "a's value was queued by the hand-over"
            );
            assert_eq!(poll_once(&mut a).await, Poll::Ready(Ok(())));
            assert_eq!(poll_once(&mut b).await, Poll::Ready(Ok(())));
            assert_eq!(rx.try_recv(), Ok(2));
        });
    });
}

#[test]
fn a_dropped_waiting_sender_leaves_the_queue_without_disturbing_the_others() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            tx.try_send(0).unwrap();
            let mut a = tx.reserve(&cx);
            let mut b = tx.send(&cx, 2);
            let mut c = tx.send(&cx, 3);
            assert!(is_pending(&poll_once(&mut a).await));
            assert!(is_pending(&poll_once(&mut b).await));
            assert!(is_pending(&poll_once(&mut c).await));
            drop(b);
            assert_eq!(rx.try_recv(), Ok(0));
            // The slot went to a (a reserve): c still waits.
            assert!(is_pending(&poll_once(&mut c).await));
            drop(a); // granted but never collected: the slot passes to c
            assert_eq!(poll_once(&mut c).await, Poll::Ready(Ok(())));
            assert_eq!(rx.try_recv(), Ok(3));
            assert_eq!(tx.capacity(), 1);
        });
    });
}

#[test]
fn close_wakes_waiting_senders_with_disconnected_and_lets_granted_permits_finish() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(2);
            tx.try_send(1).unwrap();
            let permit = tx.reserve(&cx).await.unwrap();
            let waiter = {
                let tx = tx.clone();
                cx.spawn(move |cx| async move { tx.send(&cx, 3).await })
                    .unwrap()
            };
            for _ in 0..5 {
                yield_now().await; // the waiter may or may not be parked yet
            }
            rx.close();
            assert!(tx.is_closed() && rx.is_closed());
            assert_eq!(
                waiter.join(&cx).await.unwrap(),
                Err(SendError::Disconnected(3))
            );
            assert_eq!(tx.try_send(4), Err(TrySendError::Disconnected(4)));
            assert_eq!(rx.recv(&cx).await, Ok(1));
            // A permit granted before close still delivers.
            let pending = {
                let mut recv = rx.recv(&cx);
                let polled = poll_once(&mut recv).await;
                is_pending(&polled)
            };
            assert!(pending, "recv waits for the outstanding permit");
            permit.send(2).unwrap();
            assert_eq!(rx.recv(&cx).await, Ok(2));
            assert_eq!(rx.recv(&cx).await, Err(RecvError::Disconnected));
        });
    });
}

#[test]
fn dropping_the_receiver_wakes_a_parked_sender_with_its_value() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, rx) = mpsc::channel::<u32>(1);
            tx.try_send(1).unwrap();
            let started = Arc::new(Mutex::new(false));
            let flag = started.clone();
            let waiter = cx
                .spawn(move |cx| async move {
                    *flag.lock().unwrap() = true;
                    tx.send(&cx, 7).await
                })
                .unwrap();
            yield_until("the sender started", SOON, || *started.lock().unwrap()).await;
            drop(rx);
            assert_eq!(
                waiter.join(&cx).await.unwrap(),
                Err(SendError::Disconnected(7))
            );
        });
    });
}

#[test]
fn a_parked_receiver_is_woken_by_a_send_from_another_task() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            let consumer = cx
                .spawn(move |cx| async move {
                    let a = rx.recv(&cx).await;
                    let b = rx.recv(&cx).await;
                    (a, b)
                })
                .unwrap();
            for _ in 0..10 {
                yield_now().await;
            }
            tx.send(&cx, 5).await.unwrap();
            drop(tx);
            let (a, b) = consumer.join(&cx).await.unwrap();
            assert_eq!(a, Ok(5));
            assert_eq!(b, Err(RecvError::Disconnected));
        });
    });
}

#[test]
fn weak_senders_do_not_keep_the_channel_open_and_upgrade_only_while_a_sender_lives() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(4);
            let weak = tx.downgrade();
            let strong = weak.upgrade().expect("a sender is alive");
            assert!(strong.same_channel(&tx));
            strong.try_send(1).unwrap();
            drop(strong);
            drop(tx);
            assert!(weak.upgrade().is_none(), "every strong sender is gone");
            assert_eq!(rx.recv(&cx).await, Ok(1));
            assert_eq!(rx.recv(&cx).await, Err(RecvError::Disconnected));
            assert!(weak.clone().upgrade().is_none());
        });
    });
}

#[test]
fn recv_many_moves_up_to_the_limit_in_order_and_waits_for_at_least_one() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(8);
            for i in 0..5 {
                tx.try_send(i).unwrap();
            }
            let mut buf = vec![100];
            assert_eq!(rx.recv_many(&cx, &mut buf, 3).await, Ok(3));
            assert_eq!(buf, [100, 0, 1, 2]);
            assert_eq!(rx.recv_many(&cx, &mut buf, 0).await, Ok(0));
            assert_eq!(rx.recv_many(&cx, &mut buf, 10).await, Ok(2));
            assert_eq!(buf, [100, 0, 1, 2, 3, 4]);
            assert_eq!(tx.capacity(), 8);
            let tx2 = tx.clone();
            let producer = cx
                .spawn(move |cx| async move {
                    yield_now().await;
                    tx2.send(&cx, 9).await.unwrap();
                })
                .unwrap();
            buf.clear();
            assert_eq!(rx.recv_many(&cx, &mut buf, 4).await, Ok(1));
            assert_eq!(buf, [9]);
            producer.join(&cx).await.unwrap();
            drop(tx);
            assert_eq!(
                rx.recv_many(&cx, &mut buf, 4).await,
                Err(RecvError::Disconnected)
            );
        });
    });
}

#[test]
fn recv_many_serves_as_many_waiting_senders_as_it_frees_slots() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(3);
            for i in 0..3 {
                tx.try_send(i).unwrap();
            }
            let mut waiting: Vec<_> = (3..9).map(|i| tx.send(&cx, i)).collect();
            for f in &mut waiting {
                assert!(is_pending(&poll_once(f).await));
            }
            let mut buf = Vec::new();
            assert_eq!(rx.recv_many(&cx, &mut buf, 3).await, Ok(3));
            assert_eq!(rx.len(), 3, "three waiting sends were queued at once");
            assert_eq!(rx.recv_many(&cx, &mut buf, 10).await, Ok(3));
            assert_eq!(rx.recv_many(&cx, &mut buf, 10).await, Ok(3));
            assert_eq!(buf, (0..9).collect::<Vec<_>>());
            for f in &mut waiting {
                assert_eq!(poll_once(f).await, Poll::Ready(Ok(())));
            }
        });
    });
}

#[test]
fn unbounded_sends_never_wait() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
            assert_eq!(tx.max_capacity(), usize::MAX);
            for i in 0..10_000 {
                let mut send = tx.send(&cx, i);
                assert_eq!(poll_once(&mut send).await, Poll::Ready(Ok(())));
            }
            let p = tx.reserve(&cx).await.unwrap();
            tx.try_send(10_001).unwrap();
            p.send(10_000).unwrap();
            assert_eq!(rx.len(), 10_002);
            for i in 0..10_000 {
                assert_eq!(rx.try_recv(), Ok(i));
            }
            assert_eq!(rx.try_recv(), Ok(10_001), "commit order, not reserve order");
            assert_eq!(rx.try_recv(), Ok(10_000));
        });
    });
}

/// A receiver that a task borrows and hands back, so that the test keeps it
/// even when the task is cancelled.
type SharedRx<T> = Arc<Mutex<Option<mpsc::Receiver<T>>>>;

#[test]
fn a_cancelled_recv_consumes_nothing_and_the_next_recv_gets_the_message() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, rx) = mpsc::channel::<u32>(1);
            let shared: SharedRx<u32> = Arc::new(Mutex::new(Some(rx)));
            let outcome = Arc::new(Mutex::new(None));
            let (s, o) = (shared.clone(), outcome.clone());
            let consumer = cx
                .spawn(move |cx| async move {
                    let mut rx = s.lock().unwrap().take().unwrap();
                    let r = rx.recv(&cx).await;
                    *s.lock().unwrap() = Some(rx);
                    *o.lock().unwrap() = Some(r);
                })
                .unwrap();
            yield_until("the consumer took the receiver", SOON, || {
                shared.lock().unwrap().is_none()
            })
            .await;
            consumer.abort();
            assert!(consumer.join(&cx).await.unwrap_err().is_cancelled());
            let r = outcome.lock().unwrap().take().expect("recv returned");
            assert!(r.unwrap_err().is_cancelled());
            tx.try_send(42).unwrap();
            let mut rx = shared.lock().unwrap().take().unwrap();
            assert_eq!(rx.recv(&cx).await, Ok(42));
        });
    });
}

#[test]
fn a_message_already_queued_is_received_even_by_a_cancelled_task() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            tx.try_send(1).unwrap();
            let results = Arc::new(Mutex::new(Vec::new()));
            let r = results.clone();
            let h = cx
                .spawn(move |cx| async move {
                    r.lock().unwrap().push("started".to_string());
                    while !cx.is_cancel_requested() {
                        yield_now().await;
                    }
                    let first = rx.recv(&cx).await;
                    let second = rx.recv(&cx).await;
                    r.lock().unwrap().push(format!("{first:?}"));
                    r.lock()
                        .unwrap()
                        .push(format!("{}", second.unwrap_err().is_cancelled()));
                })
                .unwrap();
            yield_until("the task started", SOON, || {
                !results.lock().unwrap().is_empty()
            })
            .await;
            h.abort();
            let joined = h.join(&cx).await;
            assert!(joined.unwrap_err().is_cancelled());
            // A queued message is delivered; the next recv would wait, so it
            // observes the cancellation.
            assert_eq!(*results.lock().unwrap(), ["started", "Ok(1)", "true"]);
            drop(tx);
        });
    });
}

#[test]
fn a_cancelled_send_returns_its_value_and_a_cancelled_reserve_holds_no_slot() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            tx.try_send(0).unwrap();
            let results = Arc::new(Mutex::new(Vec::new()));
            let (t1, r1) = (tx.clone(), results.clone());
            let sender = cx
                .spawn(move |cx| async move {
                    r1.lock().unwrap().push("started".to_string());
                    let e = t1.send(&cx, 5).await.unwrap_err();
                    r1.lock().unwrap().push(format!("send {e:?} {}", e.inner()));
                    let e = t1.reserve(&cx).await.unwrap_err();
                    r1.lock()
                        .unwrap()
                        .push(format!("reserve {}", e.is_cancelled()));
                })
                .unwrap();
            yield_until("the sender started", SOON, || {
                !results.lock().unwrap().is_empty()
            })
            .await;
            sender.abort();
            assert!(sender.join(&cx).await.unwrap_err().is_cancelled());
            assert_eq!(
                *results.lock().unwrap(),
                ["started", "send Cancelled(..) 5", "reserve true"]
            );
            assert_eq!(rx.try_recv(), Ok(0));
            assert_eq!(tx.capacity(), 1, "no slot is held by the cancelled waiters");
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        });
    });
}

#[test]
fn a_forgotten_permit_is_an_obligation_leak_and_its_slot_stays_taken() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, _rx) = mpsc::channel::<u32>(2);
            let tx2 = tx.clone();
            let leaker = cx
                .spawn(move |cx| async move {
                    let permit = tx2.reserve(&cx).await.unwrap();
                    std::mem::forget(permit);
                })
                .unwrap();
            let err = leaker.join(&cx).await.unwrap_err();
            assert!(err.is_panicked(), "{err}");
            assert!(err.to_string().contains("obligation leak"), "{err}");
            assert_eq!(tx.capacity(), 1);
        });
    });
}

#[test]
fn the_receiver_is_a_stream_that_ends_when_the_channel_disconnects() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(2);
            let producer = cx
                .spawn(move |cx| async move {
                    for i in 0..10 {
                        tx.send(&cx, i).await.unwrap();
                    }
                })
                .unwrap();
            let mut got = Vec::new();
            while let Some(v) = next(&mut rx).await {
                got.push(v);
            }
            assert_eq!(got, (0..10).collect::<Vec<_>>());
            producer.join(&cx).await.unwrap();
        });
    });
}

#[test]
fn a_dropped_stream_poll_consumes_nothing() {
    for_each_driver(|_, rt| {
        rt.block_on(|_cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(2);
            {
                let mut n = Box::pin(next(&mut rx));
                assert!(is_pending(&poll_once(&mut n).await));
            }
            tx.try_send(3).unwrap();
            assert_eq!(rx.try_recv(), Ok(3));
        });
    });
}

#[test]
fn messages_left_in_a_dropped_receiver_are_dropped_outside_the_lock() {
    // A queued message that owns a sender of the same channel: dropping it
    // runs `Sender::drop`, which takes the channel's lock.
    for_each_driver(|_, rt| {
        rt.block_on(|_cx| async move {
            struct Msg(#[allow(dead_code)] mpsc::Sender<Msg>);
            let (tx, rx) = mpsc::channel::<Msg>(2);
            tx.try_send(Msg(tx.clone())).unwrap();
            drop(rx);
            assert!(tx.is_closed());
        });
    });
}

#[test]
fn senders_on_many_tasks_deliver_every_message_once() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<(u32, u32)>(3);
            let mut handles = Vec::new();
            for p in 0..4u32 {
                let tx = tx.clone();
                handles.push(
                    cx.spawn(move |cx| async move {
                        for i in 0..50u32 {
                            if i % 2 == 0 {
                                tx.send(&cx, (p, i)).await.unwrap();
                            } else {
                                tx.reserve(&cx).await.unwrap().send((p, i)).unwrap();
                            }
                        }
                    })
                    .unwrap(),
                );
            }
            drop(tx);
            let mut last = [None::<u32>; 4];
            let mut n = 0;
            while let Ok((p, i)) = rx.recv(&cx).await {
                assert!(last[p as usize].is_none_or(|l| l < i), "per-sender FIFO");
                last[p as usize] = Some(i);
                n += 1;
            }
            assert_eq!(n, 200);
            for h in handles {
                h.join(&cx).await.unwrap();
            }
        });
    });
}

#[test]
fn errors_display_debug_and_compare_without_requiring_debug_on_the_value() {
    struct Opaque;
    let e = SendError::Disconnected(Opaque);
    assert_eq!(format!("{e:?}"), "Disconnected(..)");
    assert!(e.to_string().contains("disconnected"));
    let e: Box<dyn std::error::Error> = Box::new(TrySendError::Full(Opaque));
    assert_eq!(e.to_string(), "sending on a full channel");
    assert_eq!(SendError::Cancelled(1), SendError::Cancelled(1));
    assert!(SendError::Cancelled(1).is_cancelled());
    assert!(TrySendError::Disconnected(1).is_disconnected());
    assert_eq!(
        TrySendError::from(SendError::Cancelled(2)),
        TrySendError::Full(2)
    );
    assert!(RecvError::Disconnected.is_disconnected());
    assert_eq!(format!("{:?}", RecvError::Disconnected), "Disconnected");
    assert!(TryRecvError::Empty.is_empty());
    assert!(ReserveError::Disconnected.is_disconnected());
    assert!(!ReserveError::Disconnected.to_string().is_empty());
}

#[test]
#[should_panic(expected = "capacity must be at least 1")]
fn a_zero_capacity_channel_is_refused() {
    let _ = mpsc::channel::<u8>(0);
}

#[allow(dead_code)]
fn futures_and_handles_are_send(cx: &Cx) {
    fn is_send<T: Send>(_: &T) {}
    let (tx, mut rx) = mpsc::channel::<String>(1);
    is_send(&tx.reserve(cx));
    is_send(&tx.send(cx, String::new()));
    is_send(&rx.recv(cx));
    let _: &dyn Future<Output = _> = &rx.recv(cx);
}

// ----- lock-free fast paths: wakes and queue order ---------------------------

mod fast_path_wakes {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    use asupersync::RuntimeBuilder;
    use asupersync::channel::mpsc::{self, TrySendError};

    use super::support::{counting_waker, wakes};

    #[test]
    fn a_waiting_receiver_is_woken_once_per_registration_and_waiting_senders_keep_their_turn() {
        RuntimeBuilder::current_thread()
            .build()
            .unwrap()
            .block_on(|cx| async move {
                let (tx, mut rx) = mpsc::channel::<u32>(2);
                let (cr, wr) = counting_waker();
                {
                    let mut recv = pin!(rx.recv(&cx));
                    assert!(
                        recv.as_mut()
                            .poll(&mut Context::from_waker(&wr))
                            .is_pending()
                    );
                    tx.try_send(1).unwrap();
                    assert_eq!(wakes(&cr), 1, "the send woke the waiting receiver");
                    tx.try_send(2).unwrap();
                    assert_eq!(wakes(&cr), 1, "no second wake without a new registration");
                    assert_eq!(
                        recv.as_mut().poll(&mut Context::from_waker(&wr)),
                        Poll::Ready(Ok(1))
                    );
                }
                // Full: a waiting send queues, and newcomers may not overtake it
                // even once a slot frees (rule 3).
                tx.try_send(3).unwrap();
                let (cs, ws) = counting_waker();
                let mut send4 = pin!(tx.send(&cx, 4));
                assert!(
                    send4
                        .as_mut()
                        .poll(&mut Context::from_waker(&ws))
                        .is_pending()
                );
                assert!(matches!(tx.try_send(9), Err(TrySendError::Full(9))));
                assert_eq!(rx.try_recv(), Ok(2)); // frees a slot: goes to `send4`
                assert_eq!(wakes(&cs), 1);
                assert!(matches!(tx.try_send(9), Err(TrySendError::Full(9))));
                assert_eq!(
                    send4.as_mut().poll(&mut Context::from_waker(&ws)),
                    Poll::Ready(Ok(()))
                );
                assert_eq!(rx.try_recv(), Ok(3));
                // The queue drained: newcomers take free slots directly again.
                tx.try_send(5).unwrap();
                assert_eq!(rx.try_recv(), Ok(4));
                assert_eq!(rx.try_recv(), Ok(5));
                assert_eq!(tx.capacity(), 2);
                assert_eq!(wakes(&cs), 1, "no stray wakes");
            });
    }
}
