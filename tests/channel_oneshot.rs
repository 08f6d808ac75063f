//! `channel::oneshot` semantics, each test on both production drivers.

mod support;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use asupersync::channel::oneshot::{self, RecvError, ReserveError, SendError, TryRecvError};
use asupersync::yield_now;
use futures_core::Stream;
use support::{SOON, for_each_driver, poll_once, yield_until};

async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|tcx| Pin::new(&mut *s).poll_next(tcx)).await
}

#[test]
fn a_value_sent_from_another_task_is_received_once_then_the_channel_is_disconnected() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = oneshot::channel::<String>();
            let h = cx
                .spawn(move |_cx| async move {
                    yield_now().await;
                    tx.send("hi".to_string()).unwrap();
                })
                .unwrap();
            assert_eq!(rx.recv(&cx).await.as_deref(), Ok("hi"));
            assert_eq!(rx.recv(&cx).await, Err(RecvError::Disconnected));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
            assert!(rx.is_terminated());
            h.join(&cx).await.unwrap();
        });
    });
}

#[test]
fn try_recv_reports_empty_then_the_value_then_disconnected() {
    for_each_driver(|_, rt| {
        rt.block_on(|_cx| async move {
            let (tx, mut rx) = oneshot::channel::<u32>();
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
            assert!(!rx.is_terminated());
            tx.send(3).unwrap();
            assert_eq!(rx.try_recv(), Ok(3));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        });
    });
}

#[test]
fn dropping_the_sender_without_sending_disconnects_a_waiting_receiver() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = oneshot::channel::<u32>();
            let h = cx
                .spawn(move |_cx| async move {
                    yield_now().await;
                    drop(tx);
                })
                .unwrap();
            assert_eq!(rx.recv(&cx).await, Err(RecvError::Disconnected));
            h.join(&cx).await.unwrap();
        });
    });
}

#[test]
fn send_gives_the_value_back_when_the_receiver_is_dropped_or_closed() {
    for_each_driver(|_, rt| {
        rt.block_on(|_cx| async move {
            let (tx, rx) = oneshot::channel::<u32>();
            assert!(!tx.is_closed());
            drop(rx);
            assert!(tx.is_closed());
            assert_eq!(tx.send(1), Err(SendError::Disconnected(1)));

            let (tx, mut rx) = oneshot::channel::<u32>();
            rx.close();
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
            assert!(rx.is_terminated());
            let err = tx.send(2).unwrap_err();
            assert!(err.is_disconnected());
            assert_eq!(err.into_inner(), 2);
            assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        });
    });
}

#[test]
fn close_keeps_a_value_that_was_already_sent() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = oneshot::channel::<u32>();
            tx.send(5).unwrap();
            rx.close();
            assert_eq!(rx.recv(&cx).await, Ok(5));
        });
    });
}

#[test]
fn reserve_records_an_obligation_that_send_commits() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = oneshot::channel::<u32>();
            let permit = tx.reserve(&cx).unwrap();
            assert_eq!(permit.obligation().kind(), oneshot::PERMIT_KIND);
            let id = permit.obligation().id();
            assert!(cx.obligation_state(id).is_some());
            assert!(!permit.is_closed());
            permit.send(9).unwrap();
            assert!(cx.obligation_state(id).is_none());
            assert_eq!(rx.recv(&cx).await, Ok(9));
        });
        assert_eq!(rt.stats().obligations_committed, 1);
        assert_eq!(rt.pending_obligations(), 0);
    });
}

#[test]
fn a_dropped_permit_aborts_its_obligation_and_disconnects_the_receiver() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = oneshot::channel::<u32>();
            let permit = tx.reserve(&cx).unwrap();
            assert_eq!(
                rx.try_recv(),
                Err(TryRecvError::Empty),
                "the permit may still send"
            );
            drop(permit);
            assert_eq!(rx.recv(&cx).await, Err(RecvError::Disconnected));
        });
        let stats = rt.stats();
        assert_eq!(stats.obligations_aborted, 1);
        assert_eq!(stats.obligations_committed, 0);
    });
}

#[test]
fn reserve_fails_when_the_receiver_is_gone_and_a_permit_gives_the_value_back() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, rx) = oneshot::channel::<u32>();
            drop(rx);
            assert_eq!(tx.reserve(&cx).unwrap_err(), ReserveError::Disconnected);

            let (tx, rx) = oneshot::channel::<u32>();
            let permit = tx.reserve(&cx).unwrap();
            drop(rx);
            assert!(permit.is_closed());
            assert_eq!(permit.send(4), Err(SendError::Disconnected(4)));
        });
        let stats = rt.stats();
        assert_eq!(stats.obligations_aborted, 1, "an undelivered send aborts");
        assert_eq!(stats.obligations_committed, 0);
    });
}

#[test]
fn a_forgotten_permit_is_an_obligation_leak() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, _rx) = oneshot::channel::<u32>();
            let h = cx
                .spawn(move |cx| async move {
                    std::mem::forget(tx.reserve(&cx).unwrap());
                })
                .unwrap();
            let err = h.join(&cx).await.unwrap_err();
            assert!(
                err.is_panicked() && err.to_string().contains("obligation leak"),
                "{err}"
            );
        });
    });
}

#[test]
fn a_cancelled_recv_leaves_the_value_retrievable_by_a_later_recv() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, rx) = oneshot::channel::<u32>();
            let slot = Arc::new(Mutex::new(Some(rx)));
            let result = Arc::new(Mutex::new(None));
            let (s, r) = (slot.clone(), result.clone());
            let waiter = cx
                .spawn(move |cx| async move {
                    let mut rx = s.lock().unwrap().take().unwrap();
                    let got = rx.recv(&cx).await;
                    *s.lock().unwrap() = Some(rx);
                    *r.lock().unwrap() = Some(got);
                })
                .unwrap();
            yield_until("the waiter took the receiver", SOON, || {
                slot.lock().unwrap().is_none()
            })
            .await;
            waiter.abort();
            assert!(waiter.join(&cx).await.unwrap_err().is_cancelled());
            let got = result.lock().unwrap().take().expect("recv returned");
            assert!(got.unwrap_err().is_cancelled());
            tx.send(8).unwrap();
            let mut rx = slot.lock().unwrap().take().unwrap();
            assert_eq!(rx.recv(&cx).await, Ok(8));
        });
    });
}

#[test]
fn a_value_already_sent_is_received_even_by_a_cancelled_task() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = oneshot::channel::<u32>();
            tx.send(1).unwrap();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let s = seen.clone();
            let h = cx
                .spawn(move |cx| async move {
                    s.lock().unwrap().push("started".to_string());
                    while !cx.is_cancel_requested() {
                        yield_now().await;
                    }
                    let got = rx.recv(&cx).await;
                    s.lock().unwrap().push(format!("{got:?}"));
                })
                .unwrap();
            yield_until("started", SOON, || !seen.lock().unwrap().is_empty()).await;
            h.abort();
            let _ = h.join(&cx).await;
            assert_eq!(*seen.lock().unwrap(), ["started", "Ok(1)"]);
        });
    });
}

#[test]
fn a_dropped_recv_future_consumes_nothing() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = oneshot::channel::<u32>();
            {
                let mut recv = rx.recv(&cx);
                assert!(poll_once(&mut recv).await.is_pending());
            }
            tx.send(2).unwrap();
            assert_eq!(rx.try_recv(), Ok(2));
        });
    });
}

#[test]
fn closed_resolves_when_the_receiver_goes_away_and_observes_cancellation() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (mut tx, rx) = oneshot::channel::<u32>();
            let h = cx
                .spawn(move |_cx| async move {
                    yield_now().await;
                    drop(rx);
                })
                .unwrap();
            tx.closed(&cx).await.unwrap();
            assert!(tx.is_closed());
            h.join(&cx).await.unwrap();

            let (mut tx, mut rx) = oneshot::channel::<u32>();
            {
                let mut closed = tx.closed(&cx);
                assert!(poll_once(&mut closed).await.is_pending());
                rx.close();
                assert_eq!(poll_once(&mut closed).await, Poll::Ready(Ok(())));
            }

            let (tx, _rx) = oneshot::channel::<u32>();
            let waiter = cx
                .spawn(move |cx| async move {
                    let mut tx = tx;
                    tx.closed(&cx).await
                })
                .unwrap();
            yield_now().await;
            waiter.abort();
            assert!(waiter.join(&cx).await.unwrap_err().is_cancelled());
        });
    });
}

#[test]
fn the_receiver_is_a_stream_that_yields_the_value_once() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let (tx, mut rx) = oneshot::channel::<u32>();
            let h = cx
                .spawn(move |_cx| async move {
                    yield_now().await;
                    tx.send(6).unwrap();
                })
                .unwrap();
            assert_eq!(next(&mut rx).await, Some(6));
            assert_eq!(next(&mut rx).await, None);
            h.join(&cx).await.unwrap();

            let (tx, mut rx) = oneshot::channel::<u32>();
            drop(tx);
            assert_eq!(next(&mut rx).await, None);
        });
    });
}

#[test]
fn a_reply_travels_between_tasks_through_a_permit() {
    for_each_driver(|_, rt| {
        rt.block_on(|cx| async move {
            let mut handles = Vec::new();
            let mut receivers = Vec::new();
            for i in 0..50u32 {
                let (tx, rx) = oneshot::channel::<u32>();
                receivers.push(rx);
                handles.push(
                    cx.spawn(move |cx| async move {
                        let permit = tx.reserve(&cx).unwrap();
                        yield_now().await;
                        permit.send(i * 2).unwrap();
                    })
                    .unwrap(),
                );
            }
            for (i, mut rx) in receivers.into_iter().enumerate() {
                assert_eq!(rx.recv(&cx).await, Ok(i as u32 * 2));
            }
            for h in handles {
                h.join(&cx).await.unwrap();
            }
        });
        assert_eq!(rt.stats().obligations_committed, 50);
    });
}

#[test]
fn a_value_left_in_a_dropped_receiver_is_dropped_with_it_even_if_it_owns_a_receiver() {
    for_each_driver(|_, rt| {
        rt.block_on(|_cx| async move {
            // The value owns the receiver of another oneshot whose sender
            // it also holds; dropping must not deadlock or panic.
            struct Msg(#[allow(dead_code)] oneshot::Receiver<u8>);
            let (tx, rx) = oneshot::channel::<Msg>();
            let (_inner_tx, inner_rx) = oneshot::channel::<u8>();
            tx.send(Msg(inner_rx)).unwrap();
            drop(rx);
        });
    });
}
