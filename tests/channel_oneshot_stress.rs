//! `channel::oneshot` under contention across OS threads, with invariant
//! checks every round: a value is received iff its send succeeded, every
//! value is dropped exactly once, and no waiting side is left unwoken (a
//! lost wake hangs the round and trips the watchdog).

mod support;

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use asupersync::channel::oneshot::{self, RecvError};
use asupersync::{RuntimeBuilder, yield_now};
use futures_core::Stream;
use support::{XorShift, with_watchdog};

/// A value that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

fn thread_waker() -> Waker {
    Waker::from(Arc::new(Unpark(thread::current())))
}

/// Polls `f` on this thread until it is ready, parking between polls.
fn block_on<F: Future>(f: F, waker: &Waker) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(waker);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

fn next<S: Stream + Unpin>(s: &mut S) -> impl Future<Output = Option<S::Item>> + '_ {
    std::future::poll_fn(move |tcx| Pin::new(&mut *s).poll_next(tcx))
}

#[test]
fn sends_drops_polls_and_closes_racing_on_two_threads_keep_every_invariant() {
    const ROUNDS: u64 = 20_000;
    with_watchdog("oneshot stress: threads", || {
        let drops = Arc::new(AtomicUsize::new(0));
        let (to_sender, jobs) = std::sync::mpsc::channel::<(u64, oneshot::Sender<Counted>)>();
        let (report, results) = std::sync::mpsc::channel::<Option<bool>>();
        let sender = {
            let drops = drops.clone();
            thread::spawn(move || {
                for (mode, tx) in jobs {
                    let sent = match mode {
                        0 => Some(tx.send(Counted(drops.clone())).is_ok()),
                        1 => {
                            drop(tx);
                            None
                        }
                        _ => {
                            let was_closed = tx.is_closed();
                            let sent = tx.send(Counted(drops.clone())).is_ok();
                            assert!(!(was_closed && sent), "a closed channel took a value");
                            Some(sent)
                        }
                    };
                    report.send(sent).unwrap();
                }
            })
        };
        let waker = thread_waker();
        let other = thread_waker();
        let mut rng = XorShift::new(0x05e5_1a7e);
        let mut created = 0;
        for round in 0..ROUNDS {
            let send_mode = rng.below(3);
            let recv_mode = rng.below(4);
            let (tx, mut rx) = oneshot::channel::<Counted>();
            to_sender.send((send_mode, tx)).unwrap();
            let got = match recv_mode {
                0 => Some(block_on(next(&mut rx), &waker)),
                1 => {
                    rx.close();
                    Some(block_on(next(&mut rx), &waker))
                }
                2 => {
                    drop(rx);
                    None
                }
                _ => {
                    // A poll with one waker, then a wait with another.
                    let first = Pin::new(&mut rx).poll_next(&mut Context::from_waker(&other));
                    match first {
                        Poll::Ready(v) => Some(v),
                        Poll::Pending => Some(block_on(next(&mut rx), &waker)),
                    }
                }
            };
            let sent = results.recv().unwrap();
            if sent.is_some() {
                created += 1;
            }
            if let Some(got) = got {
                assert_eq!(
                    got.is_some(),
                    sent == Some(true),
                    "round {round} (send {send_mode}, recv {recv_mode}): received iff sent"
                );
            }
            // The round's value, wherever it went, is dropped by now: the
            // receiver's copy just above, the receiver's drop, or the
            // sender's failed send.
            assert_eq!(
                drops.load(Ordering::SeqCst),
                created,
                "round {round} (send {send_mode}, recv {recv_mode}): each value dropped once"
            );
        }
        drop(to_sender);
        sender.join().unwrap();
    });
}

#[test]
fn requests_and_replies_across_workers_keep_every_invariant() {
    const PAIRS: u64 = 3_000;
    with_watchdog("oneshot stress: runtime", || {
        let rt = RuntimeBuilder::new().worker_threads(4).build().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let created = rt.block_on(|cx| {
            let drops = drops.clone();
            async move {
                let mut rng = XorShift::new(0x0ae5_11ce);
                let mut pairs = Vec::new();
                let mut created = 0;
                for _ in 0..PAIRS {
                    let (mut tx, mut rx) = oneshot::channel::<Counted>();
                    // Replier: 0 sends, 1 sends through a permit, 2 drops
                    // unsent, 3 waits for the requester to go away first.
                    let reply = rng.below(4);
                    // Requester: 0 waits, 1 closes then waits, 2 goes away.
                    let ask = if reply == 3 {
                        1 + rng.below(2)
                    } else {
                        rng.below(3)
                    };
                    created += 1;
                    let value = Counted(drops.clone());
                    let replier = cx
                        .spawn(move |cx| async move {
                            yield_now().await;
                            match reply {
                                0 => tx.send(value).is_ok(),
                                1 => match tx.reserve(&cx) {
                                    Ok(permit) => permit.send(value).is_ok(),
                                    Err(_) => false,
                                },
                                2 => {
                                    drop((tx, value));
                                    false
                                }
                                _ => {
                                    tx.closed(&cx).await.unwrap();
                                    assert!(tx.is_closed());
                                    let back = tx.send(value).unwrap_err().into_inner();
                                    drop(back);
                                    false
                                }
                            }
                        })
                        .unwrap();
                    let requester = cx
                        .spawn(move |cx| async move {
                            match ask {
                                0 => Some(rx.recv(&cx).await),
                                1 => {
                                    rx.close();
                                    Some(rx.recv(&cx).await)
                                }
                                _ => None,
                            }
                        })
                        .unwrap();
                    pairs.push((replier, requester));
                }
                for (replier, requester) in pairs {
                    let sent = replier.join(&cx).await.unwrap();
                    if let Some(got) = requester.join(&cx).await.unwrap() {
                        match got {
                            Ok(v) => {
                                assert!(sent, "a received value was sent");
                                drop(v);
                            }
                            Err(e) => {
                                assert_eq!(e, RecvError::Disconnected);
                                assert!(!sent, "a sent value reached a waiting requester");
                            }
                        }
                    }
                }
                created
            }
        });
        assert_eq!(
            drops.load(Ordering::SeqCst),
            created,
            "each value dropped exactly once"
        );
        assert_eq!(rt.pending_obligations(), 0);
    });
}
