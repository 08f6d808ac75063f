//! `channel::broadcast` under contention across OS threads (the
//! multi-thread runtime), with invariant checks: one order seen by all,
//! every value accounted for (received or reported lost), cancelled
//! receives consume nothing, no value leaked.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asupersync::channel::broadcast::{self, RecvError, TryRecvError};
use asupersync::{Runtime, RuntimeBuilder, yield_now};
use support::{Counter, Flag, Slot, until, with_watchdog};

fn rt() -> Runtime {
    RuntimeBuilder::new().worker_threads(4).build().unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Item {
    Value(u32, u32),
    Lagged(u64),
}

#[test]
fn concurrent_senders_and_receivers_agree_on_one_order_and_account_for_every_value() {
    const SENDERS: u32 = 3;
    const PER_SENDER: u32 = 10_000;
    const RECEIVERS: usize = 4;
    with_watchdog("broadcast stress: order", || {
        let logs = rt().block_on(|cx| async move {
            let (tx, rx) = broadcast::channel::<(u32, u32)>(8);
            let mut rxs = vec![rx];
            while rxs.len() < RECEIVERS {
                rxs.push(tx.subscribe());
            }
            let mut receivers = Vec::new();
            for (r, mut rx) in rxs.into_iter().enumerate() {
                receivers.push(
                    cx.spawn(move |cx| async move {
                        let mut log = Vec::new();
                        loop {
                            match rx.recv(&cx).await {
                                Ok((s, i)) => log.push(Item::Value(s, i)),
                                Err(RecvError::Lagged(n)) => log.push(Item::Lagged(n)),
                                Err(RecvError::Closed) => return log,
                                Err(e) => panic!("receiver {r}: {e:?}"),
                            }
                            if r == 0 {
                                yield_now().await; // the slow one
                            }
                        }
                    })
                    .unwrap(),
                );
            }
            let mut senders = Vec::new();
            for s in 0..SENDERS {
                let tx = tx.clone();
                senders.push(
                    cx.spawn(move |_cx| async move {
                        for i in 0..PER_SENDER {
                            tx.send((s, i)).unwrap();
                            assert!(tx.len() <= tx.capacity());
                            if i % 16 == 0 {
                                yield_now().await;
                            }
                        }
                    })
                    .unwrap(),
                );
            }
            drop(tx);
            for h in senders {
                h.join(&cx).await.unwrap();
            }
            let mut logs = Vec::new();
            for h in receivers {
                logs.push(h.join(&cx).await.unwrap());
            }
            logs
        });
        let total = u64::from(SENDERS * PER_SENDER);
        let mut lagged_somewhere = false;
        for (r, log) in logs.iter().enumerate() {
            let mut last: HashMap<u32, u32> = HashMap::new();
            let mut accounted = 0u64;
            for item in log {
                match *item {
                    Item::Value(s, i) => {
                        if let Some(&prev) = last.get(&s) {
                            assert!(i > prev, "receiver {r}: sender {s} went {prev} -> {i}");
                        }
                        last.insert(s, i);
                        accounted += 1;
                    }
                    Item::Lagged(n) => {
                        lagged_somewhere = true;
                        accounted += n;
                    }
                }
            }
            assert_eq!(accounted, total, "receiver {r}: received + lost != sent");
        }
        assert!(lagged_somewhere, "the slow receiver should have lagged");
        // B3: the values two receivers both saw appear in the same order.
        let positions: Vec<HashMap<Item, usize>> = logs
            .iter()
            .map(|log| log.iter().enumerate().map(|(i, v)| (*v, i)).collect())
            .collect();
        for (a, log_a) in logs.iter().enumerate() {
            for (b, pos_b) in positions.iter().enumerate().skip(a + 1) {
                let mut prev = None;
                for item in log_a.iter().filter(|v| matches!(v, Item::Value(..))) {
                    if let Some(&p) = pos_b.get(item) {
                        assert!(
                            prev < Some(p),
                            "receivers {a} and {b} disagree on the order"
                        );
                        prev = Some(p);
                    }
                }
            }
        }
    });
}

#[test]
fn receivers_cancelled_at_any_moment_consume_nothing() {
    const N: u64 = 30_000;
    with_watchdog("broadcast stress: cancellation", || {
        rt().block_on(|cx| async move {
            let (tx, rx) = broadcast::channel::<u64>(64);
            let rxs = vec![rx, tx.subscribe(), tx.subscribe(), tx.subscribe()];
            let mut tasks = Vec::new();
            for mut rx in rxs {
                let (got, back) = (Counter::new(), Slot::new());
                let log = Arc::new(Mutex::new(Vec::new()));
                let (g, b, l) = (got.clone(), back.clone(), log.clone());
                let h = cx
                    .spawn(move |cx| async move {
                        loop {
                            let item = rx.recv(&cx).await;
                            g.incr();
                            match item {
                                Ok(v) => l.lock().unwrap().push(Ok(v)),
                                Err(RecvError::Lagged(n)) => l.lock().unwrap().push(Err(n)),
                                Err(RecvError::Closed) => return,
                                Err(RecvError::Cancelled(_)) => return b.set(rx),
                            }
                        }
                    })
                    .unwrap();
                tasks.push((h, got, back, log));
            }
            let (sent, all_cancelled) = (Counter::new(), Flag::new());
            let (s, a) = (sent.clone(), all_cancelled.clone());
            let sender = cx
                .spawn(move |_cx| async move {
                    for v in 0..N {
                        tx.send(v).unwrap();
                        s.incr();
                        if v % 4 == 0 {
                            yield_now().await;
                        }
                    }
                    // Open until every receiver was cancelled: each ends
                    // cancelled, mid-stream or waiting.
                    until(|| a.is_set()).await;
                })
                .unwrap();
            // Cancel receiver k once about k * N / 4 values were sent.
            for (k, (h, _, _, _)) in tasks.iter().enumerate() {
                let at = (k + 1) * N as usize / 4;
                until(|| sent.get() >= at).await;
                h.abort();
            }
            all_cancelled.set();
            sender.join(&cx).await.unwrap();
            for (i, (h, _, back, log)) in tasks.into_iter().enumerate() {
                let _ = h.join(&cx).await;
                let mut log = Arc::try_unwrap(log).unwrap().into_inner().unwrap();
                if let Some(mut rx) = back.take() {
                    loop {
                        match rx.try_recv() {
                            Ok(v) => log.push(Ok(v)),
                            Err(TryRecvError::Lagged(n)) => log.push(Err(n)),
                            Err(TryRecvError::Closed) => break,
                            Err(TryRecvError::Empty) => panic!("the sender is gone"),
                        }
                    }
                }
                let mut cur = 0;
                for item in &log {
                    match *item {
                        Ok(v) => {
                            assert_eq!(v, cur, "receiver {i}: lost or duplicated at {cur}");
                            cur += 1;
                        }
                        Err(n) => cur += n,
                    }
                }
                // A receiver cancelled before its first poll never ran and
                // dropped its receiver: nothing to account for.
                assert!(
                    cur == N || log.is_empty(),
                    "receiver {i}: ended at {cur} of {N}"
                );
            }
        });
    });
}

#[test]
fn subscribing_and_dropping_receivers_while_sending_leaks_no_value() {
    struct Tracked(Arc<AtomicUsize>);
    impl Tracked {
        fn new(live: &Arc<AtomicUsize>) -> Self {
            live.fetch_add(1, Ordering::SeqCst);
            Tracked(live.clone())
        }
    }
    impl Clone for Tracked {
        fn clone(&self) -> Self {
            Tracked::new(&self.0)
        }
    }
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let live = Arc::new(AtomicUsize::new(0));
    let l = live.clone();
    with_watchdog("broadcast stress: churn", move || {
        rt().block_on(|cx| async move {
            let (tx, rx) = broadcast::channel::<Tracked>(16);
            drop(rx);
            let mut churners = Vec::new();
            for c in 0..3u64 {
                let tx = tx.clone();
                churners.push(
                    cx.spawn(move |cx| async move {
                        for round in 0..600u64 {
                            let mut rx = tx.subscribe();
                            for _ in 0..(round + c) % 5 {
                                match asupersync::time::timeout(
                                    &cx,
                                    Duration::from_millis(1),
                                    rx.recv(&cx),
                                )
                                .await
                                {
                                    Ok(Ok(v)) => drop(v),
                                    Ok(Err(RecvError::Lagged(_))) | Err(_) => {}
                                    Ok(Err(e)) => panic!("{e:?}"),
                                }
                            }
                            drop(rx);
                            yield_now().await;
                        }
                    })
                    .unwrap(),
                );
            }
            let mut keeper = tx.subscribe();
            let sender = {
                let tx = tx.clone();
                let l = l.clone();
                cx.spawn(move |_cx| async move {
                    for i in 0..30_000 {
                        let _ = tx.send(Tracked::new(&l));
                        assert!(tx.len() <= 16);
                        if i % 8 == 0 {
                            yield_now().await;
                        }
                    }
                })
                .unwrap()
            };
            sender.join(&cx).await.unwrap();
            for h in churners {
                h.join(&cx).await.unwrap();
            }
            assert!(
                l.load(Ordering::SeqCst) <= 16,
                "at most a ring's worth retained"
            );
            while let Ok(()) | Err(TryRecvError::Lagged(_)) = keeper.try_recv().map(drop) {}
            assert_eq!(tx.len(), 0);
            assert_eq!(
                l.load(Ordering::SeqCst),
                0,
                "every value dropped once read by all"
            );
            drop(keeper);
            drop(tx);
        });
        assert_eq!(live.load(Ordering::SeqCst), 0);
    });
}
