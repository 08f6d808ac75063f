//! mpsc from plain threads (`blocking_send`, `blocking_recv`) and
//! `Sender::send_timeout`, on both production drivers (under a watchdog)
//! and in the lab (exact virtual times, cancellation at every await point).

mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use asupersync::channel::mpsc::{self, RecvError, SendError, SendTimeoutError};
use asupersync::lab::{InjectionConfig, LabConfig, LabRuntime, cancel_injection};
use asupersync::{Cx, Time, yield_now};
use support::{Driver, Flag, Slot, assert_quiescent, expect_panic, until};

/// Polls `fut` exactly once from inside a task.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|tcx| Poll::Ready(Pin::new(&mut *fut).poll(tcx))).await
}

on_both_drivers! {
    /// The example: plain threads using `blocking_send`.
    fn plain_threads_send_with_blocking_send(d: Driver) {
        let rt = d.rt();
        let (tx, mut rx) = mpsc::channel::<(u32, u32)>(4);
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        tx.blocking_send((t, i)).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let got = rt.block_on(|cx| async move {
            let mut got = Vec::new();
            loop {
                match rx.recv(&cx).await {
                    Ok(m) => got.push(m),
                    Err(RecvError::Disconnected) => return got,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(got.len(), 1000);
        for t in 0..4 {
            let mine: Vec<u32> = got.iter().filter(|m| m.0 == t).map(|m| m.1).collect();
            assert_eq!(mine, (0..250).collect::<Vec<_>>(), "thread {t}: every value, in order");
        }
        assert_quiescent(&rt);
    }

    fn a_plain_thread_receives_with_blocking_recv(d: Driver) {
        let rt = d.rt();
        let (tx, mut rx) = mpsc::channel::<u32>(2);
        let consumer = std::thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                match rx.blocking_recv() {
                    Ok(v) => got.push(v),
                    Err(e) => {
                        assert!(e.is_disconnected());
                        return got;
                    }
                }
            }
        });
        rt.block_on(|cx| async move {
            let producers: Vec<_> = (0..2u32)
                .map(|p| {
                    let tx = tx.clone();
                    cx.spawn(move |cx| async move {
                        for i in 0..200 {
                            tx.send(&cx, p * 1000 + i).await.unwrap();
                        }
                    })
                    .unwrap()
                })
                .collect();
            drop(tx);
            for p in producers {
                p.join(&cx).await.unwrap();
            }
        });
        let got = consumer.join().unwrap();
        assert_eq!(got.len(), 400);
        for p in 0..2 {
            let mine: Vec<u32> = got.iter().copied().filter(|v| v / 1000 == p).collect();
            assert_eq!(mine, (0..200).map(|i| p * 1000 + i).collect::<Vec<_>>());
        }
    }

    /// Rule TB1: blocking calls panic on a thread that runs tasks.
    fn blocking_calls_panic_on_a_task_thread(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, rx) = mpsc::channel::<u32>(1);
            let h = cx
                .spawn(move |_| async move {
                    let mut rx = rx;
                    (expect_panic(|| tx.blocking_send(1)), expect_panic(|| rx.blocking_recv()))
                })
                .unwrap();
            let (send, recv) = h.join(&cx).await.unwrap();
            assert!(send.contains("mpsc::Sender::blocking_send") && send.contains("rule TB1"), "{send}");
            assert!(recv.contains("mpsc::Receiver::blocking_recv") && recv.contains("rule TB1"), "{recv}");
        });
        if d == Driver::CurrentThread {
            rt.block_on(|_cx| async move {
                let (_tx, mut rx) = mpsc::channel::<u32>(1);
                assert!(expect_panic(|| rx.blocking_recv()).contains("rule TB1"));
            });
        }
    }

    fn send_timeout_uses_a_free_slot_at_once_even_with_zero_time(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            tx.send_timeout(&cx, 1, Duration::ZERO).await.unwrap();
            let e = tx.send_timeout(&cx, 2, Duration::ZERO).await.unwrap_err();
            assert!(e.is_timeout());
            assert_eq!(e.into_inner(), 2);
            assert_eq!(rx.try_recv(), Ok(1));
            assert_eq!(tx.capacity(), 1, "the timed-out send holds no slot");
        });
        assert_quiescent(&rt);
    }

    fn send_timeout_times_out_and_gives_the_value_back(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<String>(1);
            tx.try_send("first".into()).unwrap();
            let start = cx.now();
            let e = tx.send_timeout(&cx, "late".into(), Duration::from_millis(20)).await.unwrap_err();
            assert!(cx.now() >= start + Duration::from_millis(20), "never before the limit (T1)");
            match e {
                SendTimeoutError::Timeout(v) => assert_eq!(v, "late"),
                other => panic!("expected a timeout, got {other:?}"),
            }
            assert_eq!(rx.try_recv().as_deref(), Ok("first"));
            assert!(rx.try_recv().is_err(), "the timed-out value was not queued");
        });
        assert_quiescent(&rt);
    }

    fn send_timeout_delivers_when_a_slot_frees_in_time(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            tx.try_send(1).unwrap();
            let waiting = Flag::new();
            let sender = {
                let waiting = waiting.clone();
                cx.spawn(move |cx| async move {
                    let mut send = std::pin::pin!(tx.send_timeout(&cx, 2, Duration::from_secs(3600)));
                    assert!(poll_once(&mut send).await.is_pending(), "the channel is full");
                    waiting.set();
                    send.await
                })
                .unwrap()
            };
            until(|| waiting.is_set()).await;
            assert_eq!(rx.recv(&cx).await, Ok(1));
            assert_eq!(rx.recv(&cx).await, Ok(2));
            sender.join(&cx).await.unwrap().unwrap();
        });
        assert_quiescent(&rt);
    }

    fn send_timeout_gives_the_value_back_when_the_receiver_goes(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, rx) = mpsc::channel::<u32>(1);
            tx.try_send(1).unwrap();
            let waiting = Flag::new();
            let sender = {
                let waiting = waiting.clone();
                cx.spawn(move |cx| async move {
                    let mut send = std::pin::pin!(tx.send_timeout(&cx, 2, Duration::from_secs(3600)));
                    assert!(poll_once(&mut send).await.is_pending());
                    waiting.set();
                    send.await
                })
                .unwrap()
            };
            until(|| waiting.is_set()).await;
            drop(rx);
            match sender.join(&cx).await.unwrap() {
                Err(SendTimeoutError::Disconnected(2)) => {}
                other => panic!("expected Disconnected(2), got {other:?}"),
            }
        });
        assert_quiescent(&rt);
    }

    fn a_cancelled_send_timeout_gives_the_value_back(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, mut rx) = mpsc::channel::<u32>(1);
            tx.try_send(1).unwrap();
            let waiting = Flag::new();
            let back = Slot::new();
            let sender = {
                let (waiting, back) = (waiting.clone(), back.clone());
                let tx = tx.clone();
                cx.spawn(move |cx| async move {
                    let mut send = std::pin::pin!(tx.send_timeout(&cx, 2, Duration::from_secs(3600)));
                    assert!(poll_once(&mut send).await.is_pending());
                    waiting.set();
                    let r = send.await;
                    back.set(r);
                })
                .unwrap()
            };
            until(|| waiting.is_set()).await;
            sender.abort();
            assert!(sender.join(&cx).await.unwrap_err().is_cancelled());
            match back.take() {
                Some(Err(SendTimeoutError::Cancelled(2))) => {}
                other => panic!("expected Cancelled(2), got {other:?}"),
            }
            assert_eq!(rx.try_recv(), Ok(1));
            assert!(rx.try_recv().is_err(), "the cancelled value was not queued");
            assert_eq!(tx.capacity(), 1);
        });
        assert_quiescent(&rt);
    }
}

#[test]
fn send_timeout_expires_exactly_at_its_limit_in_virtual_time() {
    let lab = LabRuntime::new(LabConfig::new(3));
    lab.block_on(|cx| async move {
        let (tx, mut rx) = mpsc::channel::<u32>(1);
        tx.try_send(1).unwrap();
        asupersync::time::sleep(&cx, Duration::from_secs(1))
            .await
            .unwrap();
        let e = tx
            .send_timeout(&cx, 2, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.is_timeout());
        assert_eq!(cx.now(), Time::from_secs(6));

        // A slot freed at 8 s, before the 10 s limit: delivered at 8 s.
        let consumer = cx
            .spawn(move |cx| async move {
                asupersync::time::sleep(&cx, Duration::from_secs(2))
                    .await
                    .unwrap();
                let first = rx.recv(&cx).await.unwrap();
                let second = rx.recv(&cx).await.unwrap();
                (first, second, cx.now())
            })
            .unwrap();
        tx.send_timeout(&cx, 3, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(cx.now(), Time::from_secs(8));
        let (first, second, at) = consumer.join(&cx).await.unwrap();
        assert_eq!((first, second), (1, 3));
        assert_eq!(at, Time::from_secs(8));
    });
}

/// Producers mixing `send_timeout` limits (some expire, some do not) and a
/// consumer that is slow at first; cancellation is injected at every await
/// point. Every value is either received exactly once or came back to its
/// sender, never both; capacity is full again at the end.
async fn timed_producers(cx: Cx) {
    const CAP: usize = 2;
    let (tx, rx) = mpsc::channel::<(u32, u32)>(CAP);
    let delivered = Arc::new(Mutex::new(BTreeSet::new()));
    let returned = Arc::new(Mutex::new(BTreeSet::new()));
    let rx_slot = Arc::new(Mutex::new(Some(rx)));
    let mut producers = Vec::new();
    for p in 0..3u32 {
        let (tx, delivered, returned) = (tx.clone(), delivered.clone(), returned.clone());
        producers.push(
            cx.spawn(move |cx| async move {
                for i in 0..3u32 {
                    let limit = Duration::from_millis(u64::from(1 + (p + i) % 3) * 5);
                    match tx.send_timeout(&cx, (p, i), limit).await {
                        Ok(()) => {
                            delivered.lock().unwrap().insert((p, i));
                        }
                        Err(e) => {
                            let cancelled = e.is_cancelled();
                            assert_eq!(e.into_inner(), (p, i), "the value comes back");
                            returned.lock().unwrap().insert((p, i));
                            if cancelled {
                                return;
                            }
                        }
                    }
                }
            })
            .unwrap(),
        );
    }
    drop(tx);
    let received = Arc::new(Mutex::new(Vec::new()));
    let consumer = {
        let (rx_slot, received) = (rx_slot.clone(), received.clone());
        cx.spawn(move |cx| async move {
            let mut rx = rx_slot.lock().unwrap().take().unwrap();
            let slow = asupersync::time::sleep(&cx, Duration::from_millis(7)).await;
            if slow.is_ok() {
                while let Ok(m) = rx.recv(&cx).await {
                    received.lock().unwrap().push(m);
                    yield_now().await;
                }
            }
            *rx_slot.lock().unwrap() = Some(rx);
        })
        .unwrap()
    };
    let _ = consumer.join(&cx).await;
    let mut rx = rx_slot.lock().unwrap().take().expect("handed back");
    loop {
        match rx.recv(&cx).await {
            Ok(m) => received.lock().unwrap().push(m),
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("the root is never cancelled: {e}"),
        }
    }
    for p in producers {
        let _ = p.join(&cx).await;
    }
    assert_eq!(rx.capacity(), CAP, "every slot came back");
    let received = received.lock().unwrap().clone();
    let set: BTreeSet<_> = received.iter().copied().collect();
    assert_eq!(set.len(), received.len(), "duplicated: {received:?}");
    assert_eq!(
        set,
        *delivered.lock().unwrap(),
        "received exactly what was delivered"
    );
    assert!(set.is_disjoint(&returned.lock().unwrap()));
}

#[test]
fn send_timeout_cancelled_at_any_await_point_loses_or_duplicates_nothing() {
    for seed in [1, 2, 3] {
        let report = cancel_injection(InjectionConfig::new(seed), timed_producers);
        assert!(report.passed(), "{report}");
        assert!(report.points_found().len() >= 6, "{report}");
        assert_eq!(report.points_tried(), report.points_found(), "{report}");
    }
}

#[test]
fn send_error_from_blocking_send_gives_the_value_back() {
    let (tx, rx) = mpsc::channel::<String>(1);
    drop(rx);
    match tx.blocking_send("v".into()) {
        Err(SendError::Disconnected(v)) => assert_eq!(v, "v"),
        other => panic!("{other:?}"),
    }
    let (tx, mut rx) = mpsc::channel::<u32>(1);
    drop(tx);
    assert_eq!(rx.blocking_recv(), Err(RecvError::Disconnected));
}
