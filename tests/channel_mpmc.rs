//! `channel::mpmc`: a work queue with cloneable senders and receivers.
//! Semantics on both production drivers (each under a watchdog), plain
//! threads with `blocking_send` / `blocking_recv`, and the lab: a worker
//! pool over many seeds, with chaos cancellations, and with cancellation
//! injected at every await point.

mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use asupersync::channel::mpmc::{self, RecvError, SendError, TryRecvError, TrySendError};
use asupersync::lab::{ChaosConfig, ExploreConfig, InjectionConfig, cancel_injection, explore};
use asupersync::{Cx, yield_now};
use support::{Driver, Flag, Log, assert_quiescent, expect_panic, until};

/// Polls `fut` exactly once from inside a task.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|tcx| Poll::Ready(Pin::new(&mut *fut).poll(tcx))).await
}

/// `workers` tasks take jobs from one queue until it is closed and drained;
/// returns what each worker processed, in order.
async fn worker_pool(cx: &Cx, rx: mpmc::Receiver<u32>, workers: usize) -> Vec<Vec<u32>> {
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let rx = rx.clone();
            cx.spawn(move |cx| async move {
                let mut done = Vec::new();
                loop {
                    match rx.recv(&cx).await {
                        Ok(job) => done.push(job),
                        Err(RecvError::Disconnected) => return done,
                        Err(e) => panic!("workers are not cancelled here: {e}"),
                    }
                    if done.len() % 3 == 0 {
                        yield_now().await; // interleave the workers
                    }
                }
            })
            .unwrap()
        })
        .collect();
    drop(rx);
    let mut per_worker = Vec::new();
    for h in handles {
        per_worker.push(h.join(cx).await.unwrap());
    }
    per_worker
}

/// Every job in `0..n` processed exactly once.
fn assert_exactly_once(per_worker: &[Vec<u32>], n: u32) {
    let all: Vec<u32> = per_worker.iter().flatten().copied().collect();
    let set: BTreeSet<u32> = all.iter().copied().collect();
    assert_eq!(all.len(), set.len(), "a job was processed twice: {all:?}");
    assert_eq!(set, (0..n).collect(), "a job was lost");
}

on_both_drivers! {
    /// The example: a worker pool on one queue.
    fn a_worker_pool_on_one_queue_processes_every_job_exactly_once(d: Driver) {
        let rt = d.rt();
        let per_worker = rt.block_on(|cx| async move {
            let (tx, rx) = mpmc::channel::<u32>(8);
            let pool = cx
                .spawn(move |cx| async move { worker_pool(&cx, rx, 4).await })
                .unwrap();
            for job in 0..2000 {
                tx.send(&cx, job).await.unwrap();
            }
            drop(tx);
            pool.join(&cx).await.unwrap()
        });
        assert_exactly_once(&per_worker, 2000);
        for jobs in &per_worker {
            assert!(jobs.windows(2).all(|w| w[0] < w[1]), "one sender's jobs arrive in order");
        }
        assert_quiescent(&rt);
    }

    /// The example: plain threads feed the pool with `blocking_send`.
    fn plain_threads_feed_a_worker_pool_with_blocking_send(d: Driver) {
        let rt = d.rt();
        let (tx, rx) = mpmc::channel::<u32>(4);
        let feeders: Vec<_> = (0..3u32)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..300 {
                        tx.blocking_send(t * 1000 + i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let per_worker = rt.block_on(|cx| async move { worker_pool(&cx, rx, 3).await });
        for f in feeders {
            f.join().unwrap();
        }
        let all: BTreeSet<u32> = per_worker.iter().flatten().copied().collect();
        assert_eq!(all.len(), 900);
        assert_eq!(per_worker.iter().map(Vec::len).sum::<usize>(), 900);
        for jobs in &per_worker {
            for t in 0..3 {
                let mine: Vec<_> = jobs.iter().filter(|j| **j / 1000 == t).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "thread {t}: FIFO per sender");
            }
        }
        assert_quiescent(&rt);
    }

    fn plain_thread_consumers_use_blocking_recv(d: Driver) {
        let rt = d.rt();
        let (tx, rx) = mpmc::channel::<u32>(2);
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match rx.blocking_recv() {
                            Ok(v) => got.push(v),
                            Err(RecvError::Disconnected) => return got,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        drop(rx);
        rt.block_on(|cx| async move {
            for i in 0..500 {
                tx.send(&cx, i).await.unwrap();
            }
        });
        let per_thread: Vec<Vec<u32>> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        assert_exactly_once(&per_thread, 500);
    }

    fn blocking_calls_panic_inside_a_task(d: Driver) {
        if d == Driver::CurrentThread {
            // The root task runs on the driving thread too.
            let rt = d.rt();
            rt.block_on(|_cx| async move {
                let (_tx, rx) = mpmc::channel::<u32>(1);
                assert!(expect_panic(|| rx.blocking_recv()).contains("rule TB1"));
            });
        }
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, rx) = mpmc::channel::<u32>(1);
            let h = cx
                .spawn(move |_| async move {
                    let send = expect_panic(|| tx.blocking_send(1));
                    let recv = expect_panic(|| rx.blocking_recv());
                    (send, recv)
                })
                .unwrap();
            let (send, recv) = h.join(&cx).await.unwrap();
            for msg in [send, recv] {
                assert!(msg.contains("rule TB1"), "{msg}");
            }
        });
    }

    fn waiting_receivers_are_served_in_fifo_order(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, rx) = mpmc::channel::<u32>(4);
            // Registration order, recorded atomically with each first poll.
            let order = Arc::new(Mutex::new(Vec::new()));
            let mut handles = Vec::new();
            for id in 0..4u32 {
                let (rx, order) = (rx.clone(), order.clone());
                handles.push(
                    cx.spawn(move |cx| async move {
                        let mut recv = rx.recv(&cx);
                        // First poll (registration) and log in one step.
                        let first = std::future::poll_fn(|tcx| {
                            let mut order = order.lock().unwrap();
                            let first = Pin::new(&mut recv).poll(tcx);
                            order.push(id);
                            Poll::Ready(first)
                        })
                        .await;
                        assert!(first.is_pending(), "the queue is empty");
                        recv.await.unwrap()
                    })
                    .unwrap(),
                );
            }
            until(|| order.lock().unwrap().len() == 4).await;
            for v in 0..4 {
                tx.send(&cx, v).await.unwrap();
            }
            let order = order.lock().unwrap().clone();
            for (id, h) in handles.into_iter().enumerate() {
                let got = h.join(&cx).await.unwrap();
                let pos = order.iter().position(|&o| o == id as u32).unwrap();
                assert_eq!(got, pos as u32, "receiver {id} waited {pos}th: order {order:?}");
            }
        });
    }

    fn a_cancelled_receiver_consumes_nothing(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, rx) = mpmc::channel::<u32>(1);
            let waiting = Arc::new(Mutex::new(false));
            let first = {
                let (rx, waiting) = (rx.clone(), waiting.clone());
                cx.spawn(move |cx| async move {
                    let mut recv = rx.recv(&cx);
                    assert!(poll_once(&mut recv).await.is_pending());
                    *waiting.lock().unwrap() = true;
                    recv.await
                })
                .unwrap()
            };
            until(|| *waiting.lock().unwrap()).await;
            first.abort();
            let r = first.join(&cx).await;
            assert!(r.unwrap_err().is_cancelled());
            tx.send(&cx, 7).await.unwrap();
            assert_eq!(rx.try_recv(), Ok(7), "the value went to nobody else");
            assert_eq!(rx.capacity(), 1);
        });
    }

    fn disconnection_and_close(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            // Every sender gone: queued values, then Disconnected.
            let (tx, rx) = mpmc::channel::<u32>(4);
            let tx2 = tx.clone();
            tx.try_send(1).unwrap();
            tx2.try_send(2).unwrap();
            drop(tx);
            assert!(!rx.is_closed());
            drop(tx2);
            assert!(rx.is_closed());
            let rx2 = rx.clone();
            assert_eq!(rx.recv(&cx).await, Ok(1));
            assert_eq!(rx2.try_recv(), Ok(2));
            assert_eq!(rx.recv(&cx).await, Err(RecvError::Disconnected));
            assert_eq!(rx2.try_recv(), Err(TryRecvError::Disconnected));

            // A waiting receiver is woken when the last sender goes.
            let (tx, rx) = mpmc::channel::<u32>(1);
            let registered = Flag::new();
            let waiter = {
                let registered = registered.clone();
                cx.spawn(move |cx| async move {
                    let mut recv = rx.recv(&cx);
                    assert!(poll_once(&mut recv).await.is_pending());
                    registered.set();
                    recv.await
                })
                .unwrap()
            };
            until(|| registered.is_set()).await;
            drop(tx);
            assert_eq!(waiter.join(&cx).await.unwrap(), Err(RecvError::Disconnected));

            // Every receiver gone: sends give the value back, a waiting
            // sender is woken with its value.
            let (tx, rx) = mpmc::channel::<String>(1);
            tx.try_send("queued".into()).unwrap();
            let registered = Flag::new();
            let sender = {
                let (tx, registered) = (tx.clone(), registered.clone());
                cx.spawn(move |cx| async move {
                    let mut send = tx.send(&cx, "waits".to_string());
                    assert!(poll_once(&mut send).await.is_pending());
                    registered.set();
                    send.await
                })
                .unwrap()
            };
            until(|| registered.is_set()).await;
            drop(rx);
            match sender.join(&cx).await.unwrap() {
                Err(SendError::Disconnected(v)) => assert_eq!(v, "waits"),
                other => panic!("expected the value back, got {other:?}"),
            }
            assert!(tx.is_closed());
            assert!(matches!(tx.try_send("late".into()), Err(TrySendError::Disconnected(v)) if v == "late"));

            // close(): no more sends; receivers drain, then Disconnected.
            let (tx, rx) = mpmc::channel::<u32>(2);
            tx.try_send(1).unwrap();
            rx.close();
            assert!(matches!(tx.send(&cx, 2).await, Err(SendError::Disconnected(2))));
            assert_eq!(rx.recv(&cx).await, Ok(1));
            assert_eq!(rx.recv(&cx).await, Err(RecvError::Disconnected));
        });
    }

    fn waiting_senders_are_fifo_and_try_send_does_not_overtake(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, rx) = mpmc::channel::<u32>(1);
            tx.try_send(0).unwrap();
            let order = Arc::new(Mutex::new(Vec::new()));
            let mut senders = Vec::new();
            for id in 1..=3u32 {
                let (tx, order) = (tx.clone(), order.clone());
                senders.push(
                    cx.spawn(move |cx| async move {
                        let mut send = tx.send(&cx, id);
                        std::future::poll_fn(|tcx| {
                            let mut order = order.lock().unwrap();
                            assert!(Pin::new(&mut send).poll(tcx).is_pending(), "the queue is full");
                            order.push(id);
                            Poll::Ready(())
                        })
                        .await;
                        send.await.unwrap();
                    })
                    .unwrap(),
                );
            }
            until(|| order.lock().unwrap().len() == 3).await;
            assert!(matches!(tx.try_send(99), Err(TrySendError::Full(99))));
            let mut got = Vec::new();
            for _ in 0..4 {
                got.push(rx.recv(&cx).await.unwrap());
            }
            let mut expected = vec![0];
            expected.extend(order.lock().unwrap().iter().copied());
            assert_eq!(got, expected);
            for s in senders {
                s.join(&cx).await.unwrap();
            }
        });
    }

    fn send_timeout_gives_the_value_back_or_delivers(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, rx) = mpmc::channel::<u32>(1);
            tx.send_timeout(&cx, 1, std::time::Duration::ZERO).await.unwrap();
            let e = tx
                .send_timeout(&cx, 2, std::time::Duration::from_millis(5))
                .await
                .unwrap_err();
            assert!(e.is_timeout());
            assert_eq!(e.into_inner(), 2);
            assert_eq!(rx.try_recv(), Ok(1));
            assert_eq!(rx.capacity(), 1, "the timed-out send holds no slot");
        });
    }
}

/// A value handed to a waiting receiver that goes away is passed on: to the
/// next waiting receiver, else back to the front of the queue.
#[test]
fn a_handed_value_is_passed_on_when_its_receiver_goes_away() {
    let rt = support::Driver::CurrentThread.rt();
    rt.block_on(|cx| async move {
        let (tx, rx) = mpmc::channel::<u32>(1);
        let mut first = rx.recv(&cx);
        let mut second = rx.recv(&cx);
        assert!(poll_once(&mut first).await.is_pending());
        assert!(poll_once(&mut second).await.is_pending());
        tx.try_send(7).unwrap(); // handed to `first`
        assert_eq!(rx.len(), 0);
        assert_eq!(rx.capacity(), 0, "a handed value still holds its slot");
        assert!(matches!(tx.try_send(8), Err(TrySendError::Full(8))));
        drop(first);
        assert_eq!(poll_once(&mut second).await, Poll::Ready(Ok(7)));
        drop(second);

        let mut third = rx.recv(&cx);
        assert!(poll_once(&mut third).await.is_pending());
        tx.try_send(9).unwrap();
        drop(third); // nobody else waits: back to the queue
        assert_eq!(rx.len(), 1);
        assert_eq!(rx.try_recv(), Ok(9));
        assert_eq!(rx.capacity(), 1);
    });
}

// ----- the lab --------------------------------------------------------------

/// A pool of workers, some of which may be cancelled (by chaos or
/// injection) at any await point; the root drains what is left. Every job
/// whose send returned `Ok` is received exactly once, nothing else is
/// received, and every slot comes back.
async fn pool_under_cancellation(cx: Cx) {
    const JOBS: u32 = 12;
    let (tx, rx) = mpmc::channel::<u32>(2);
    let received = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(Mutex::new(BTreeSet::new()));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let (rx, received) = (rx.clone(), received.clone());
        workers.push(
            cx.spawn(move |cx| async move {
                while let Ok(job) = rx.recv(&cx).await {
                    received.lock().unwrap().push(job);
                    yield_now().await;
                }
            })
            .unwrap(),
        );
    }
    let producer = {
        let (tx, sent) = (tx.clone(), sent.clone());
        cx.spawn(move |cx| async move {
            for job in 0..JOBS {
                match tx.send(&cx, job).await {
                    Ok(()) => {
                        sent.lock().unwrap().insert(job);
                    }
                    Err(e) => {
                        assert!(e.is_cancelled(), "a receiver is alive: {e}");
                        assert_eq!(e.into_inner(), job, "the value comes back");
                        return;
                    }
                }
            }
        })
        .unwrap()
    };
    drop(tx);
    for w in workers {
        let _ = w.join(&cx).await;
    }
    // The root drains what the (possibly cancelled) workers left.
    loop {
        match rx.recv(&cx).await {
            Ok(job) => received.lock().unwrap().push(job),
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("the root is never cancelled: {e}"),
        }
    }
    let _ = producer.join(&cx).await;
    assert_eq!(rx.capacity(), 2, "every slot came back");
    let received = received.lock().unwrap().clone();
    let set: BTreeSet<u32> = received.iter().copied().collect();
    assert_eq!(
        set.len(),
        received.len(),
        "a job was received twice: {received:?}"
    );
    assert_eq!(set, *sent.lock().unwrap(), "received exactly what was sent");
}

#[asupersync::lab_test(seeds = 300)]
async fn a_worker_pool_processes_every_job_exactly_once_on_every_seed(cx: Cx) {
    let (tx, rx) = mpmc::channel::<u32>(3);
    let pool = cx
        .spawn(move |cx| async move { worker_pool(&cx, rx, 4).await })
        .unwrap();
    for job in 0..40 {
        tx.send(&cx, job).await.unwrap();
    }
    drop(tx);
    assert_exactly_once(&pool.join(&cx).await.unwrap(), 40);
}

#[test]
fn random_schedules_with_chaos_cancellations_lose_or_duplicate_nothing() {
    let chaos = ChaosConfig {
        cancel: 0.05,
        spurious_wake: 0.1,
        ..ChaosConfig::off()
    };
    let report = explore(
        ExploreConfig::new().schedules(400).chaos(chaos),
        pool_under_cancellation,
    );
    let failures: Vec<String> = report
        .failures()
        .iter()
        .map(|f| format!("seed {}: {}", f.seed(), f.message()))
        .collect();
    assert!(report.is_ok(), "{}", failures.join("\n"));
    assert!(report.schedules_run() >= 400);
}

#[test]
fn workers_cancelled_at_any_await_point_lose_or_duplicate_nothing() {
    for seed in [1, 2, 3] {
        let report = cancel_injection(InjectionConfig::new(seed), pool_under_cancellation);
        assert!(report.passed(), "{report}");
        assert!(report.points_found().len() >= 10, "{report}");
        assert_eq!(report.points_tried(), report.points_found(), "{report}");
    }
}

#[test]
fn a_log_of_every_registration_is_kept_in_fifo_order_in_the_lab() {
    // Deterministic FIFO: three receivers registered in spawn order get the
    // values in send order.
    let lab = asupersync::lab::LabRuntime::new(asupersync::lab::LabConfig::new(5));
    let log = Log::new();
    let log2 = log.clone();
    lab.block_on(|cx| async move {
        let (tx, rx) = mpmc::channel::<u32>(1);
        let mut hs = Vec::new();
        for id in 0..3 {
            let (rx, log) = (rx.clone(), log2.clone());
            hs.push(
                cx.spawn(move |cx| async move {
                    let mut recv = rx.recv(&cx);
                    assert!(poll_once(&mut recv).await.is_pending());
                    log.push(format!("wait {id}"));
                    let v = recv.await.unwrap();
                    log.push(format!("{id} got {v}"));
                })
                .unwrap(),
            );
        }
        while log2.snapshot().len() < 3 {
            yield_now().await;
        }
        for v in 0..3 {
            tx.send(&cx, v).await.unwrap();
        }
        for h in hs {
            h.join(&cx).await.unwrap();
        }
    });
    let events = log.snapshot();
    let waits: Vec<&String> = events.iter().filter(|e| e.starts_with("wait")).collect();
    for (pos, w) in waits.iter().enumerate() {
        let id = w.trim_start_matches("wait ");
        assert!(
            events.contains(&format!("{id} got {pos}")),
            "receiver {id} waited {pos}th: {events:?}"
        );
    }
}
