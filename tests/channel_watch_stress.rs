//! `channel::watch` under contention across OS threads (the multi-thread
//! runtime), with invariant checks: observations strictly increase, the
//! final value is always observed, cancelled waits consume nothing, and
//! `closed` completes exactly when the last receiver goes.

mod support;

use std::sync::Arc;

use asupersync::channel::watch::{self, RecvError};
use asupersync::{Runtime, RuntimeBuilder, yield_now};
use support::{Counter, Flag, Slot, until, with_watchdog};

fn rt() -> Runtime {
    RuntimeBuilder::new().worker_threads(4).build().unwrap()
}

#[test]
fn concurrent_modifiers_and_watchers_always_reach_the_final_value() {
    const MODIFIERS: u64 = 3;
    const EACH: u64 = 10_000;
    const WATCHERS: usize = 4;
    with_watchdog("watch stress: modifiers", || {
        rt().block_on(|cx| async move {
            let (tx, rx) = watch::channel(0u64);
            let tx = Arc::new(tx);
            let mut watchers = Vec::new();
            for w in 0..WATCHERS {
                let mut rx = rx.clone();
                watchers.push(
                    cx.spawn(move |cx| async move {
                        let mut seen = Vec::new();
                        loop {
                            match rx.changed(&cx).await {
                                Ok(()) => {
                                    let v = *rx.borrow_and_update();
                                    seen.push(v);
                                    if v == MODIFIERS * EACH {
                                        return seen;
                                    }
                                }
                                Err(e) => panic!("watcher {w}: {e:?} after {seen:?}"),
                            }
                            if w == 0 {
                                yield_now().await;
                            }
                        }
                    })
                    .unwrap(),
                );
            }
            drop(rx);
            let mut modifiers = Vec::new();
            for _ in 0..MODIFIERS {
                let tx = tx.clone();
                modifiers.push(
                    cx.spawn(move |_cx| async move {
                        for i in 0..EACH {
                            tx.send_modify(|v| *v += 1);
                            if i % 32 == 0 {
                                yield_now().await;
                            }
                        }
                    })
                    .unwrap(),
                );
            }
            for h in modifiers {
                h.join(&cx).await.unwrap();
            }
            assert_eq!(*tx.borrow(), MODIFIERS * EACH, "no lost update");
            for (w, h) in watchers.into_iter().enumerate() {
                let seen = h.join(&cx).await.unwrap();
                assert!(
                    seen.windows(2).all(|p| p[0] < p[1]),
                    "watcher {w}: not strictly increasing"
                );
            }
            // Every receiver is gone: `closed` completes.
            tx.closed(&cx).await.unwrap();
        });
    });
}

#[test]
fn watchers_cancelled_at_any_moment_still_reach_the_final_value() {
    const LAST: u64 = 50_000;
    with_watchdog("watch stress: cancellation", || {
        rt().block_on(|cx| async move {
            let (tx, rx) = watch::channel(0u64);
            let mut watchers = Vec::new();
            for _ in 0..4 {
                let mut rx = rx.clone();
                let (back, seen) = (Slot::new(), Slot::new());
                let (b, s) = (back.clone(), seen.clone());
                let h = cx
                    .spawn(move |cx| async move {
                        let mut log = Vec::new();
                        loop {
                            match rx.changed(&cx).await {
                                Ok(()) => log.push(*rx.borrow_and_update()),
                                Err(RecvError::Closed) => break,
                                Err(RecvError::Cancelled(_)) => {
                                    b.set(rx);
                                    break;
                                }
                            }
                        }
                        s.set(log);
                    })
                    .unwrap();
                watchers.push((h, back, seen));
            }
            drop(rx);
            let (sent, all_cancelled) = (Counter::new(), Flag::new());
            let (s, a) = (sent.clone(), all_cancelled.clone());
            let sender = cx
                .spawn(move |_cx| async move {
                    for v in 1..=LAST {
                        tx.send_replace(v);
                        s.incr();
                        if v % 8 == 0 {
                            yield_now().await;
                        }
                    }
                    // Open until every watcher was cancelled (mid-stream or
                    // waiting), then closes the channel.
                    until(|| a.is_set()).await;
                })
                .unwrap();
            for (k, (h, _, _)) in watchers.iter().enumerate() {
                until(|| sent.get() >= (k + 1) * LAST as usize / 4).await;
                h.abort();
            }
            all_cancelled.set();
            sender.join(&cx).await.unwrap();
            for (i, (h, back, seen)) in watchers.into_iter().enumerate() {
                let _ = h.join(&cx).await;
                let Some(mut log) = seen.take() else {
                    continue; // cancelled before its first poll: never ran
                };
                if let Some(mut rx) = back.take() {
                    // Handed back: the pending change is still reported.
                    while let Ok(()) = rx.changed(&cx).await {
                        log.push(*rx.borrow_and_update());
                    }
                }
                assert!(log.windows(2).all(|p| p[0] < p[1]), "watcher {i}");
                assert_eq!(
                    log.last(),
                    Some(&LAST),
                    "watcher {i} missed the final value"
                );
            }
        });
    });
}

#[test]
fn subscribing_and_dropping_receivers_concurrently_keeps_the_count_and_closed_exact() {
    with_watchdog("watch stress: churn", || {
        rt().block_on(|cx| async move {
            let (tx, rx) = watch::channel(0u32);
            let tx = Arc::new(tx);
            let closed = {
                let tx = tx.clone();
                cx.spawn(move |cx| async move { tx.closed(&cx).await })
                    .unwrap()
            };
            let mut churners = Vec::new();
            for c in 0..4u32 {
                let (tx, keep) = (tx.clone(), rx.clone());
                churners.push(
                    cx.spawn(move |_cx| async move {
                        for i in 0..5_000u32 {
                            let mut a = tx.subscribe();
                            let b = a.clone();
                            tx.send_modify(|v| *v = v.wrapping_add(1));
                            assert!(a.has_changed() && b.has_changed());
                            let _ = a.borrow_and_update();
                            drop((a, b));
                            if (i + c) % 16 == 0 {
                                yield_now().await;
                            }
                        }
                        drop(keep);
                    })
                    .unwrap(),
                );
            }
            drop(rx);
            for h in churners {
                h.join(&cx).await.unwrap();
            }
            assert_eq!(closed.join(&cx).await.unwrap(), Ok(()));
            assert_eq!(tx.receiver_count(), 0);
            assert_eq!(*tx.borrow(), 20_000);
        });
    });
}
