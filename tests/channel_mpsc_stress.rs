//! Stress: many producers and consumers across OS threads with random
//! cancellation, on the current-thread driver, the multi-thread driver
//! (`RuntimeBuilder::new().worker_threads(n)`) and several runtimes at once
//! sharing channels. Invariants checked at the end of every run:
//! - count and sum of received messages equal those of committed ones;
//! - no message is received twice, none that came back to its sender is
//!   received, and each producer's messages arrive in order;
//! - capacity is full again (no slot leaked) and no obligation is pending.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use asupersync::channel::mpsc::{self, SendError, TrySendError};
use asupersync::{Cx, Runtime, RuntimeBuilder, yield_now};
use support::{XorShift, with_watchdog};

/// A message: producer id and its sequence number.
type Msg = (u32, u64);

#[derive(Default)]
struct Totals {
    committed_count: AtomicU64,
    committed_sum: AtomicU64,
    received_count: AtomicU64,
    received_sum: AtomicU64,
    returned: Mutex<HashSet<Msg>>,
    /// Producers that stopped early because they observed cancellation.
    cancelled: AtomicU64,
    /// Producers that joined as cancelled (the abort landed before they
    /// finished).
    aborted: AtomicU64,
    received: Mutex<HashSet<Msg>>,
}

impl Totals {
    fn commit(&self, m: Msg) {
        self.committed_count.fetch_add(1, Ordering::SeqCst);
        self.committed_sum.fetch_add(m.1, Ordering::SeqCst);
    }

    fn receive(&self, m: Msg, last: &mut [Option<u64>]) {
        self.received_count.fetch_add(1, Ordering::SeqCst);
        self.received_sum.fetch_add(m.1, Ordering::SeqCst);
        assert!(
            self.received.lock().unwrap().insert(m),
            "message {m:?} received twice"
        );
        let slot = &mut last[m.0 as usize];
        assert!(
            slot.is_none_or(|prev| prev < m.1),
            "producer {}: {} after {:?}",
            m.0,
            m.1,
            slot
        );
        *slot = Some(m.1);
    }

    fn check(&self) {
        let returned = self.returned.lock().unwrap();
        let received = self.received.lock().unwrap();
        assert!(
            returned.is_disjoint(&received),
            "a message came back to its sender and was received too"
        );
        assert_eq!(
            self.received_count.load(Ordering::SeqCst),
            self.committed_count.load(Ordering::SeqCst),
            "every committed message is received exactly once"
        );
        assert_eq!(
            self.received_sum.load(Ordering::SeqCst),
            self.committed_sum.load(Ordering::SeqCst)
        );
    }
}

/// Sends `n` messages as producer `p`, choosing send / reserve+commit /
/// try_send at random; stops at the first cancellation (the value comes
/// back and is recorded as returned).
async fn produce(cx: Cx, tx: mpsc::Sender<Msg>, p: u32, n: u64, seed: u64, totals: Arc<Totals>) {
    if !produce_all(cx, tx, p, n, seed, &totals).await {
        totals.cancelled.fetch_add(1, Ordering::SeqCst);
    }
}

/// Whether all `n` were attempted (false: stopped by cancellation).
async fn produce_all(
    cx: Cx,
    tx: mpsc::Sender<Msg>,
    p: u32,
    n: u64,
    seed: u64,
    totals: &Totals,
) -> bool {
    let mut rng = XorShift::new(seed);
    for i in 1..=n {
        let m = (p, i);
        match rng.below(3) {
            0 => match tx.send(&cx, m).await {
                Ok(()) => totals.commit(m),
                Err(SendError::Cancelled(v)) => {
                    totals.returned.lock().unwrap().insert(v);
                    return false;
                }
                Err(SendError::Disconnected(_)) => panic!("the receiver outlives producers"),
            },
            1 => match tx.reserve(&cx).await {
                Ok(permit) => {
                    if rng.chance(10) {
                        drop(permit); // abort: the slot goes back
                        if cx.checkpoint().is_err() {
                            return false;
                        }
                        continue;
                    }
                    permit.send(m).unwrap();
                    totals.commit(m);
                }
                Err(e) => {
                    assert!(e.is_cancelled());
                    return false;
                }
            },
            _ => {
                let mut m = m;
                loop {
                    match tx.try_send(m) {
                        Ok(()) => {
                            totals.commit((p, i));
                            break;
                        }
                        Err(TrySendError::Full(v)) => m = v,
                        Err(TrySendError::Disconnected(_)) => panic!("receiver alive"),
                    }
                    yield_now().await;
                    if cx.checkpoint().is_err() {
                        totals.returned.lock().unwrap().insert(m);
                        return false;
                    }
                }
            }
        }
        if rng.chance(20) {
            yield_now().await;
        }
    }
    true
}

/// Receives until disconnected, mixing `recv` and `recv_many`.
async fn consume(cx: Cx, rx: &mut mpsc::Receiver<Msg>, producers: usize, totals: &Totals) {
    let mut last = vec![None; producers];
    let mut buf = Vec::new();
    let mut round = 0u64;
    loop {
        round += 1;
        if round.is_multiple_of(3) {
            buf.clear();
            match rx.recv_many(&cx, &mut buf, 16).await {
                Ok(_) => {
                    for &m in &buf {
                        totals.receive(m, &mut last);
                    }
                }
                Err(e) => {
                    assert!(e.is_disconnected(), "{e}");
                    return;
                }
            }
        } else {
            match rx.recv(&cx).await {
                Ok(m) => totals.receive(m, &mut last),
                Err(e) => {
                    assert!(e.is_disconnected(), "{e}");
                    return;
                }
            }
        }
    }
}

/// `producers` tasks on `rt` and one consumer task; the root aborts some
/// producers at random moments.
fn producers_with_random_aborts(
    rt: Runtime,
    producers: u32,
    per_producer: u64,
    cap: usize,
    seed: u64,
) -> usize {
    let totals = Arc::new(Totals::default());
    let t = totals.clone();
    rt.block_on(move |cx| async move {
        let (tx, mut rx) = mpsc::channel::<Msg>(cap);
        let mut handles = Vec::new();
        for p in 0..producers {
            let (tx, t) = (tx.clone(), t.clone());
            let s = seed.wrapping_mul(31).wrapping_add(u64::from(p));
            handles.push(
                cx.spawn(move |cx| produce(cx, tx, p, per_producer, s, t))
                    .unwrap(),
            );
        }
        drop(tx);
        let consumer = {
            let t = t.clone();
            cx.spawn(move |cx| async move {
                consume(cx, &mut rx, producers as usize, &t).await;
                rx
            })
            .unwrap()
        };
        let mut rng = XorShift::new(seed);
        for h in &handles {
            if rng.chance(50) {
                for _ in 0..rng.below(20) {
                    yield_now().await;
                }
                h.abort();
            }
        }
        for h in handles {
            if h.join(&cx).await.is_err() {
                t.aborted.fetch_add(1, Ordering::SeqCst);
            }
        }
        let rx = consumer.join(&cx).await.unwrap();
        assert_eq!(rx.capacity(), cap, "every slot came back");
    });
    totals.check();
    assert_eq!(rt.pending_obligations(), 0);
    assert_eq!(rt.stats().obligations_leaked, 0);
    eprintln!(
        "seed {seed}: {} producers aborted, {} of them stopped early",
        totals.aborted.load(Ordering::SeqCst),
        totals.cancelled.load(Ordering::SeqCst)
    );
    totals.aborted.load(Ordering::SeqCst) as usize
}

fn current_thread() -> Runtime {
    RuntimeBuilder::current_thread().build().unwrap()
}

fn multi_thread(n: usize) -> Runtime {
    RuntimeBuilder::new().worker_threads(n).build().unwrap()
}

#[test]
fn producers_with_random_aborts_on_the_current_thread_driver_keep_the_totals() {
    with_watchdog("current_thread", || {
        let returned: usize = (1..=4)
            .map(|seed| producers_with_random_aborts(current_thread(), 8, 500, 4, seed))
            .sum();
        eprintln!("current_thread: {returned} producers aborted");
        assert!(returned > 0, "some sends were cancelled");
    });
}

#[test]
fn producers_with_random_aborts_on_the_multi_thread_driver_keep_the_totals() {
    with_watchdog("multi_thread", || {
        let mut returned: usize = (1..=4)
            .map(|seed| producers_with_random_aborts(multi_thread(2), 8, 500, 4, seed))
            .sum();
        returned += producers_with_random_aborts(multi_thread(4), 16, 300, 1, 99);
        eprintln!("multi_thread: {returned} producers aborted");
        assert!(returned > 0, "some sends were cancelled");
    });
}

type RxSlot = Arc<Mutex<Option<mpsc::Receiver<Msg>>>>;

/// Takes the receiver from `slot`, receives until disconnected (true) or
/// cancelled (false), and always hands the receiver (and the per-producer
/// order state) back.
async fn rotating_consumer(
    cx: Cx,
    slot: RxSlot,
    last: Arc<Mutex<Vec<Option<u64>>>>,
    totals: Arc<Totals>,
) -> bool {
    let mut rx = slot.lock().unwrap().take().expect("one consumer at a time");
    let mut order = std::mem::take(&mut *last.lock().unwrap());
    let disconnected = loop {
        match rx.recv(&cx).await {
            Ok(m) => totals.receive(m, &mut order),
            Err(e) => break e.is_disconnected(),
        }
        if cx.checkpoint().is_err() {
            break false;
        }
    };
    *last.lock().unwrap() = order;
    *slot.lock().unwrap() = Some(rx);
    disconnected
}

/// Producer tasks on three current-thread runtimes (one OS thread each),
/// consumers on a 2-worker runtime (another OS thread) that are cancelled
/// and replaced at random; two channels.
fn several_runtimes_sharing_channels(seed: u64) -> (usize, u64) {
    const CHANNELS: usize = 2;
    const THREADS: u32 = 3;
    const TASKS: u32 = 4;
    const PER_PRODUCER: u64 = 300;
    let producers = (THREADS * TASKS) as usize;
    let totals: Vec<Arc<Totals>> = (0..CHANNELS).map(|_| Arc::default()).collect();
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..CHANNELS)
        .map(|c| mpsc::channel::<Msg>(1 + c * 2))
        .unzip();
    let rotations = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let txs = txs.clone();
            let totals = totals.clone();
            s.spawn(move || {
                let rt = current_thread();
                rt.block_on(move |cx| async move {
                    let mut rng = XorShift::new(seed * 1000 + u64::from(t));
                    let mut handles = Vec::new();
                    for k in 0..TASKS {
                        let p = t * TASKS + k;
                        let c = p as usize % CHANNELS;
                        let (tx, tot) = (txs[c].clone(), totals[c].clone());
                        let s = rng.next_u64();
                        handles.push(
                            cx.spawn(move |cx| produce(cx, tx, p, PER_PRODUCER, s, tot))
                                .unwrap(),
                        );
                    }
                    drop(txs);
                    for h in &handles {
                        if rng.chance(40) {
                            for _ in 0..rng.below(30) {
                                yield_now().await;
                            }
                            h.abort();
                        }
                    }
                    for h in handles {
                        if h.join(&cx).await.is_err() {
                            totals[0].aborted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
                assert_eq!(rt.pending_obligations(), 0);
            });
        }
        drop(txs);
        let totals = totals.clone();
        let rotations = rotations.clone();
        s.spawn(move || {
            let rt = multi_thread(2);
            rt.block_on(move |cx| async move {
                let mut supervisors = Vec::new();
                for (c, rx) in rxs.into_iter().enumerate() {
                    let slot: RxSlot = Arc::new(Mutex::new(Some(rx)));
                    let totals = totals[c].clone();
                    let rotations = rotations.clone();
                    supervisors.push(
                        cx.spawn(move |cx| async move {
                            let last = Arc::new(Mutex::new(vec![None; producers]));
                            let mut rng = XorShift::new(seed ^ (c as u64 + 7));
                            loop {
                                let (sl, la, to) = (slot.clone(), last.clone(), totals.clone());
                                let h = cx
                                    .spawn(move |cx| rotating_consumer(cx, sl, la, to))
                                    .unwrap();
                                if rng.chance(80) {
                                    for _ in 0..rng.below(40) {
                                        yield_now().await;
                                    }
                                    h.abort();
                                }
                                rotations.fetch_add(1, Ordering::SeqCst);
                                if let Ok(true) = h.join(&cx).await {
                                    break;
                                }
                            }
                            let rx = slot.lock().unwrap().take().unwrap();
                            assert_eq!(rx.capacity(), rx.max_capacity(), "no slot leaked");
                        })
                        .unwrap(),
                    );
                }
                for s in supervisors {
                    s.join(&cx).await.unwrap();
                }
            });
            assert_eq!(rt.pending_obligations(), 0);
        });
    });
    let mut cancelled = 0;
    for t in &totals {
        t.check();
        cancelled += t.aborted.load(Ordering::SeqCst) as usize;
    }
    (cancelled, rotations.load(Ordering::SeqCst))
}

#[test]
fn several_runtimes_on_os_threads_share_channels_with_cancelled_producers_and_consumers() {
    with_watchdog("several runtimes", || {
        let (mut cancelled, mut rotations) = (0, 0);
        for seed in 1..=3 {
            let (c, r) = several_runtimes_sharing_channels(seed);
            cancelled += c;
            rotations += r;
        }
        eprintln!("{cancelled} producers aborted, {rotations} consumers");
        assert!(cancelled > 0 && rotations > 6);
    });
}

// ----- lock-free fast paths --------------------------------------------------

/// Channels of every ring kind: preallocated (small capacities, including
/// 1), growable (above the preallocation limit) and unbounded.
/// Makes a channel of one ring kind.
type MakeChannel = fn() -> (mpsc::Sender<u64>, mpsc::Receiver<u64>);

fn every_ring_kind() -> Vec<(&'static str, MakeChannel)> {
    vec![
        ("capacity 1", || mpsc::channel(1)),
        ("capacity 4", || mpsc::channel(4)),
        ("capacity 2048", || mpsc::channel(2048)),
        ("unbounded", mpsc::unbounded_channel),
    ]
}

#[test]
fn messages_sent_just_before_the_last_sender_drops_are_all_received_on_two_workers() {
    with_watchdog("disconnect race", || {
        let rt = multi_thread(2);
        for (kind, make) in every_ring_kind() {
            for round in 0..150u64 {
                let got = rt.block_on(move |cx| async move {
                    let (tx, mut rx) = make();
                    for p in 0..3u64 {
                        let tx = tx.clone();
                        drop(
                            cx.spawn(move |cx| async move {
                                for i in 0..20u64 {
                                    let v = p * 100 + i;
                                    if (round + i) % 3 == 0 {
                                        if let Err(TrySendError::Full(v)) = tx.try_send(v) {
                                            tx.send(&cx, v).await.unwrap();
                                        }
                                    } else {
                                        tx.send(&cx, v).await.unwrap();
                                    }
                                }
                                // The last sender drops right after its last
                                // send: the receiver must still get it.
                            })
                            .unwrap(),
                        );
                    }
                    drop(tx);
                    let mut last = [None::<u64>; 3];
                    let mut n = 0;
                    while let Ok(v) = rx.recv(&cx).await {
                        let (p, i) = ((v / 100) as usize, v % 100);
                        assert!(last[p].is_none_or(|prev| prev < i), "out of order");
                        last[p] = Some(i);
                        n += 1;
                    }
                    n
                });
                assert_eq!(got, 60, "{kind}, round {round}: messages lost");
            }
        }
    });
}

/// A message that counts its drops and keeps a sender of its own channel
/// alive (so one stranded in the ring would leak the channel).
struct Tracked {
    drops: Arc<AtomicU64>,
    _tx: Option<mpsc::Sender<Tracked>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn messages_racing_with_the_receivers_drop_are_each_dropped_once_on_two_workers() {
    with_watchdog("receiver drop race", || {
        let rt = multi_thread(2);
        for capacity in [1usize, 8, 2048] {
            for round in 0..100u64 {
                let created = Arc::new(AtomicU64::new(0));
                let drops = Arc::new(AtomicU64::new(0));
                let weak = {
                    let (created, drops) = (created.clone(), drops.clone());
                    rt.block_on(move |cx| async move {
                        let (tx, mut rx) = mpsc::channel::<Tracked>(capacity);
                        let weak = tx.downgrade();
                        let mut hs = Vec::new();
                        for p in 0..2u64 {
                            let (tx, created, drops) = (tx.clone(), created.clone(), drops.clone());
                            hs.push(
                                cx.spawn(move |cx| async move {
                                    for i in 0u64.. {
                                        created.fetch_add(1, Ordering::SeqCst);
                                        let m = Tracked {
                                            drops: drops.clone(),
                                            _tx: Some(tx.clone()),
                                        };
                                        let r = if (p + i) % 2 == 0 {
                                            tx.try_send(m).map_err(|e| match e {
                                                TrySendError::Full(_) => false,
                                                TrySendError::Disconnected(_) => true,
                                            })
                                        } else {
                                            tx.send(&cx, m).await.map_err(|e| {
                                                matches!(e, SendError::Disconnected(_))
                                            })
                                        };
                                        if r == Err(true) {
                                            return;
                                        }
                                        if i % 4 == 0 {
                                            yield_now().await;
                                        }
                                    }
                                })
                                .unwrap(),
                            );
                        }
                        drop(tx);
                        for _ in 0..(round % 7) * 3 {
                            if rx.recv(&cx).await.is_err() {
                                break;
                            }
                        }
                        drop(rx); // while the producers are still sending
                        for h in hs {
                            h.join(&cx).await.unwrap();
                        }
                        weak
                    })
                };
                assert!(
                    weak.upgrade().is_none(),
                    "capacity {capacity}, round {round}: a message kept a sender alive"
                );
                assert_eq!(
                    drops.load(Ordering::SeqCst),
                    created.load(Ordering::SeqCst),
                    "capacity {capacity}, round {round}: every message dropped exactly once"
                );
            }
        }
    });
}
