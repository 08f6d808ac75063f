//! `channel::broadcast`: semantics (rules B1–B9 of the module docs) on both
//! drivers, and a property test of random send / receive / subscribe / drop
//! sequences against a model.

mod support;

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use asupersync::channel::broadcast::{self, Lagged, RecvError, SendError, TryRecvError};
use asupersync::types::CancelKind;
use asupersync::{Cx, RuntimeBuilder, yield_now};
use futures_core::Stream;
use proptest::prelude::*;
use support::*;

/// The next item of a stream (no `futures-util` here).
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    poll_fn(|task_cx| Pin::new(&mut *s).poll_next(task_cx)).await
}

fn block_on<T>(f: impl AsyncFnOnce(Cx) -> T) -> T {
    let rt = RuntimeBuilder::current_thread().build().unwrap();
    rt.block_on(|cx| async move { f(cx).await })
}

/// What a stream consumer hands back: its items, whether it ended by
/// cancellation, and the receiver.
type StreamEnd = (Vec<Result<u32, Lagged>>, bool, broadcast::Receiver<u32>);

// ===== both drivers ========================================================

on_both_drivers! {
    /// B3: one total order, seen by every receiver from its subscription on.
    fn every_receiver_sees_every_value_in_send_order(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, rx) = broadcast::channel::<u32>(256);
            let rxs = vec![rx, tx.subscribe(), tx.subscribe()];
            let mut handles = Vec::new();
            for mut rx in rxs {
                handles.push(cx.spawn(move |cx| async move {
                    let mut got = Vec::new();
                    loop {
                        match rx.recv(&cx).await {
                            Ok(v) => got.push(v),
                            Err(RecvError::Closed) => return got,
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                }).unwrap());
            }
            for i in 0..200 {
                assert_eq!(tx.send(i), Ok(3));
                if i % 7 == 0 {
                    yield_now().await;
                }
            }
            drop(tx);
            for h in handles {
                assert_eq!(h.join(&cx).await.unwrap(), (0..200).collect::<Vec<_>>());
            }
        });
    }

    /// A receiver waiting in `recv` is woken by the next send.
    fn a_waiting_receiver_is_woken_by_a_send(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, mut rx) = broadcast::channel::<&str>(4);
            let waiting = Counter::new();
            let w = waiting.clone();
            let h = cx.spawn(move |cx| async move {
                w.incr();
                rx.recv(&cx).await
            }).unwrap();
            until(|| waiting.get() == 1).await;
            for _ in 0..10 {
                yield_now().await;
            }
            tx.send("hello").unwrap();
            assert_eq!(h.join(&cx).await.unwrap(), Ok("hello"));
        });
    }

    /// B5: a receiver that never reads only lags; the sender never waits and
    /// a fast receiver gets everything.
    fn a_slow_receiver_does_not_block_the_sender_or_fast_receivers(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, mut slow) = broadcast::channel::<u32>(4);
            let mut fast = tx.subscribe();
            let received = Arc::new(AtomicUsize::new(0));
            let r = received.clone();
            let h = cx.spawn(move |cx| async move {
                let mut got = Vec::new();
                while let Ok(v) = fast.recv(&cx).await {
                    got.push(v);
                    r.fetch_add(1, Ordering::SeqCst);
                }
                got
            }).unwrap();
            for i in 0..500u32 {
                tx.send(i).unwrap();
                // Pace on the fast receiver only; `slow` never reads.
                until(|| received.load(Ordering::SeqCst) == i as usize + 1).await;
            }
            drop(tx);
            assert_eq!(h.join(&cx).await.unwrap(), (0..500).collect::<Vec<_>>());
            assert_eq!(slow.recv(&cx).await, Err(RecvError::Lagged(496)));
            for v in 496..500 {
                assert_eq!(slow.recv(&cx).await, Ok(v));
            }
            assert_eq!(slow.recv(&cx).await, Err(RecvError::Closed));
        });
    }

    /// B6: dropping the last sender wakes waiting receivers with `Closed`,
    /// after what was retained for them.
    fn dropping_the_last_sender_closes_the_channel_after_the_retained_values(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, mut rx) = broadcast::channel::<u8>(4);
            let tx2 = tx.clone();
            let mut waiter = tx.subscribe();
            let waiting = Counter::new();
            let w = waiting.clone();
            let h = cx.spawn(move |cx| async move {
                w.incr();
                waiter.recv(&cx).await
            }).unwrap();
            until(|| waiting.get() == 1).await;
            drop(tx);
            tx2.send(9).unwrap();
            drop(tx2);
            assert_eq!(h.join(&cx).await.unwrap(), Ok(9));
            assert!(rx.is_closed());
            assert_eq!(rx.recv(&cx).await, Ok(9));
            assert_eq!(rx.recv(&cx).await, Err(RecvError::Closed));
            assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));

            // A receiver blocked when the last sender goes is woken.
            let (tx, mut rx) = broadcast::channel::<u8>(4);
            let waiting = Counter::new();
            let w = waiting.clone();
            let h = cx.spawn(move |cx| async move {
                w.incr();
                rx.recv(&cx).await
            }).unwrap();
            until(|| waiting.get() == 1).await;
            yield_now().await;
            drop(tx);
            assert_eq!(h.join(&cx).await.unwrap(), Err(RecvError::Closed));
        });
    }

    /// B7: a `recv` cancelled while waiting returns `Cancelled` and the
    /// receiver's position is unchanged: the next value still arrives.
    fn a_cancelled_recv_consumes_nothing_and_the_receiver_resumes_where_it_was(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, mut rx) = broadcast::channel::<u32>(4);
            tx.send(1).unwrap();
            let back: Slot<broadcast::Receiver<u32>> = Slot::new();
            let result: Slot<Vec<Result<u32, RecvError>>> = Slot::new();
            let waiting = Counter::new();
            let (b, r, w) = (back.clone(), result.clone(), waiting.clone());
            let h = cx.spawn(move |cx| async move {
                let first = rx.recv(&cx).await;
                w.incr();
                let second = rx.recv(&cx).await; // waits: cancelled here
                r.set(vec![first, second]);
                b.set(rx);
            }).unwrap();
            until(|| waiting.get() == 1).await;
            h.abort();
            let _ = h.join(&cx).await;
            let results = result.take().unwrap();
            assert_eq!(results[0], Ok(1));
            let Err(RecvError::Cancelled(c)) = &results[1] else {
                panic!("expected Cancelled, got {:?}", results[1]);
            };
            assert_eq!(c.reason().kind, CancelKind::User);
            let mut rx = back.take().unwrap();
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty), "nothing was consumed or lost");
            tx.send(2).unwrap();
            assert_eq!(rx.recv(&cx).await, Ok(2));
        });
    }

    /// B7: what is already available is delivered even to a cancelled task,
    /// so it can drain; cancellation shows only once `recv` would wait.
    fn a_cancelled_task_still_receives_what_is_already_there(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, mut rx) = broadcast::channel::<u32>(8);
            let go = Flag::new();
            let out: Slot<(Vec<u32>, RecvError)> = Slot::new();
            let started = Counter::new();
            let (g, o, st) = (go.clone(), out.clone(), started.clone());
            let h = cx.spawn(move |cx| async move {
                st.incr();
                until(|| g.is_set()).await; // not cancel-aware
                let mut got = Vec::new();
                loop {
                    match rx.recv(&cx).await {
                        Ok(v) => got.push(v),
                        Err(e) => return o.set((got, e)),
                    }
                }
            }).unwrap();
            until(|| started.get() == 1).await;
            for i in 0..3 {
                tx.send(i).unwrap();
            }
            h.abort();
            go.set();
            assert!(h.join(&cx).await.unwrap_err().is_cancelled());
            let (got, e) = out.take().unwrap();
            assert_eq!(got, vec![0, 1, 2]);
            assert!(e.is_cancelled(), "{e:?}");
        });
    }

    /// B8: a receiver that stops waiting does not disturb the others.
    fn a_cancelled_waiter_leaves_the_other_waiters_waiting(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, rx) = broadcast::channel::<u32>(4);
            let rxs = vec![rx, tx.subscribe(), tx.subscribe()];
            let waiting = Counter::new();
            let mut handles = Vec::new();
            for mut rx in rxs {
                let w = waiting.clone();
                handles.push(cx.spawn(move |cx| async move {
                    w.incr();
                    rx.recv(&cx).await
                }).unwrap());
            }
            until(|| waiting.get() == 3).await;
            handles[1].abort();
            until(|| handles[1].is_finished()).await;
            tx.send(5).unwrap();
            let results: Vec<_> = {
                let mut v = Vec::new();
                for h in handles {
                    v.push(h.join(&cx).await);
                }
                v
            };
            assert_eq!(results[0], Ok(Ok(5)));
            assert_eq!(results[2], Ok(Ok(5)));
            assert!(results[1].as_ref().unwrap_err().is_cancelled());
        });
    }

    /// Streams: a lag is an item, reported once; the stream ends on close.
    fn the_stream_reports_a_lag_once_then_yields_values_and_ends_on_close(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, mut rx) = broadcast::channel::<u32>(2);
            for i in 0..5 {
                tx.send(i).unwrap();
            }
            let h = cx.spawn(move |_cx| async move {
                let mut items = Vec::new();
                while let Some(item) = next(&mut rx).await {
                    items.push(item);
                }
                items
            }).unwrap();
            yield_now().await;
            tx.send(5).unwrap();
            drop(tx);
            let items = h.join(&cx).await.unwrap();
            // 5 may have been sent before or after the stream caught up.
            let expected_early = vec![Err(Lagged(3)), Ok(3), Ok(4), Ok(5)];
            let expected_late = vec![Err(Lagged(4)), Ok(4), Ok(5)];
            assert!(items == expected_early || items == expected_late, "{items:?}");
        });
    }

    /// `Receiver::stream(&cx)` ends when the task is cancelled while it
    /// waits, having consumed nothing.
    fn the_cancel_aware_stream_ends_on_cancellation(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, mut rx) = broadcast::channel::<u32>(4);
            tx.send(1).unwrap();
            let back: Slot<StreamEnd> = Slot::new();
            let waiting = Counter::new();
            let (b, w) = (back.clone(), waiting.clone());
            let h = cx.spawn(move |cx| async move {
                let mut items = Vec::new();
                let cancelled = {
                    let mut s = rx.stream(&cx);
                    while let Some(item) = next(&mut s).await {
                        items.push(item);
                        w.incr();
                    }
                    let cancelled = s.cancelled().is_some();
                    assert!(next(&mut s).await.is_none(), "stays ended");
                    cancelled
                };
                b.set((items, cancelled, rx));
            }).unwrap();
            until(|| waiting.get() == 1).await;
            h.abort();
            let _ = h.join(&cx).await;
            let (items, cancelled, mut rx) = back.take().unwrap();
            assert_eq!(items, vec![Ok(1)]);
            assert!(cancelled);
            tx.send(2).unwrap();
            assert_eq!(rx.try_recv(), Ok(2));
        });
    }
}

/// The plain `Stream` has no `Cx`: a task cancelled while waiting on it
/// keeps waiting until a value arrives (documented; see the module docs).
#[test]
fn the_plain_stream_does_not_observe_cancellation() {
    block_on(async |cx: Cx| {
        let (tx, mut rx) = broadcast::channel::<u32>(4);
        let waiting = Counter::new();
        let w = waiting.clone();
        let h = cx
            .spawn(move |_cx| async move {
                w.incr();
                next(&mut rx).await
            })
            .unwrap();
        until(|| waiting.get() == 1).await;
        h.abort();
        for _ in 0..20 {
            yield_now().await;
        }
        assert!(!h.is_finished(), "still waiting despite the cancel request");
        tx.send(7).unwrap();
        let _ = h.join(&cx).await;
    });
}

/// B8: wake-ups follow the order in which receivers started waiting.
#[test]
fn waiting_receivers_are_woken_in_the_order_they_started_waiting() {
    block_on(async |cx: Cx| {
        let (tx, rx) = broadcast::channel::<u32>(4);
        let mut rxs = vec![rx, tx.subscribe(), tx.subscribe(), tx.subscribe()];
        let log = Log::new();
        let waiting = Counter::new();
        let mut handles = Vec::new();
        // Registered one after the other (current thread: the spawned task
        // ran its first poll before `until` returns).
        for (i, mut rx) in rxs.drain(..).enumerate() {
            let (l, w) = (log.clone(), waiting.clone());
            handles.push(
                cx.spawn(move |cx| async move {
                    w.incr();
                    if rx.recv(&cx).await.is_ok() {
                        l.push(format!("r{i}"));
                    }
                })
                .unwrap(),
            );
            until(|| waiting.get() == i + 1).await;
        }
        handles[1].abort();
        until(|| handles[1].is_finished()).await;
        tx.send(1).unwrap();
        for h in handles {
            let _ = h.join(&cx).await;
        }
        assert_eq!(log.snapshot(), ["r0", "r2", "r3"]);
    });
}

// ===== single-threaded semantics ==========================================

#[test]
fn send_returns_how_many_receivers_will_see_the_value() {
    let (tx, rx) = broadcast::channel::<u8>(2);
    assert_eq!(tx.send(1), Ok(1));
    let rx2 = tx.subscribe();
    let rx3 = rx2.resubscribe();
    assert_eq!(tx.send(2), Ok(3));
    assert_eq!(tx.receiver_count(), 3);
    assert_eq!(rx.receiver_count(), 3);
    drop((rx, rx2, rx3));
    assert_eq!(tx.receiver_count(), 0);
}

#[test]
fn send_without_receivers_gives_the_value_back_and_stores_nothing() {
    let (tx, rx) = broadcast::channel::<String>(2);
    drop(rx);
    let err = tx.send("lost?".to_string()).unwrap_err();
    assert_eq!(err.inner(), "lost?");
    assert_eq!(err.into_inner(), "lost?");
    assert!(tx.is_empty());
    let mut late = tx.subscribe();
    assert_eq!(late.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn a_lagging_receiver_gets_lagged_once_then_resumes_from_the_oldest_retained_value() {
    let (tx, mut rx) = broadcast::channel::<u32>(3);
    for i in 0..10 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.len(), 3);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Lagged(7)));
    assert_eq!(rx.try_recv(), Ok(7), "resumes at the oldest retained value");
    assert_eq!(rx.try_recv(), Ok(8));
    tx.send(10).unwrap();
    assert_eq!(rx.try_recv(), Ok(9), "no second lag report");
    assert_eq!(rx.try_recv(), Ok(10));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    // The same through `recv`.
    block_on(async move |cx: Cx| {
        for i in 11..20 {
            tx.send(i).unwrap();
        }
        assert_eq!(rx.recv(&cx).await, Err(RecvError::Lagged(6)));
        assert_eq!(rx.recv(&cx).await, Ok(17));
        assert_eq!(rx.recv(&cx).await, Ok(18));
        assert_eq!(rx.recv(&cx).await, Ok(19));
    });
}

#[test]
fn a_receiver_sees_only_values_sent_after_it_subscribed() {
    let (tx, mut a) = broadcast::channel::<u32>(8);
    tx.send(1).unwrap();
    let mut b = tx.subscribe();
    tx.send(2).unwrap();
    let mut c = a.resubscribe();
    tx.send(3).unwrap();
    assert_eq!(
        (a.try_recv(), a.try_recv(), a.try_recv()),
        (Ok(1), Ok(2), Ok(3))
    );
    assert_eq!((b.try_recv(), b.try_recv()), (Ok(2), Ok(3)));
    assert_eq!(c.try_recv(), Ok(3));
    assert!(a.is_empty() && b.is_empty() && c.is_empty());
    assert!(a.same_channel(&b) && tx.same_channel(&tx.clone()));
}

#[test]
fn len_counts_what_some_receiver_still_needs_and_each_receivers_backlog() {
    let (tx, mut a) = broadcast::channel::<u32>(4);
    let mut b = tx.subscribe();
    assert_eq!(tx.capacity(), 4);
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!((tx.len(), a.len(), b.len()), (2, 2, 2));
    a.try_recv().unwrap();
    assert_eq!((tx.len(), a.len(), b.len()), (2, 1, 2));
    b.try_recv().unwrap();
    assert_eq!(
        (tx.len(), a.len(), b.len()),
        (1, 1, 1),
        "read by both: dropped"
    );
    drop(a);
    assert_eq!(tx.len(), 1);
    drop(b);
    assert_eq!(
        tx.len(),
        0,
        "a dropped receiver releases what it had not read"
    );
    for i in 0..10 {
        let _ = tx.send(i);
    }
    assert_eq!(tx.len(), 0, "no receivers: nothing stored");
}

/// A value that counts its clones and live copies.
#[derive(Debug)]
struct Tracked {
    clones: Arc<AtomicUsize>,
    live: Arc<AtomicUsize>,
}

impl Tracked {
    fn new(clones: &Arc<AtomicUsize>, live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked {
            clones: clones.clone(),
            live: live.clone(),
        }
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Tracked::new(&self.clones, &self.live)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn each_value_is_stored_once_cloned_per_reader_and_moved_to_the_last_one() {
    let (clones, live) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (tx, mut a) = broadcast::channel::<Tracked>(4);
    let mut b = tx.subscribe();
    let mut c = tx.subscribe();
    tx.send(Tracked::new(&clones, &live)).unwrap();
    assert_eq!(
        (clones.load(Ordering::SeqCst), live.load(Ordering::SeqCst)),
        (0, 1)
    );
    let va = a.try_recv().unwrap();
    let vb = b.try_recv().unwrap();
    assert_eq!(clones.load(Ordering::SeqCst), 2);
    let vc = c.try_recv().unwrap();
    assert_eq!(
        clones.load(Ordering::SeqCst),
        2,
        "the last reader moves it out"
    );
    assert_eq!(live.load(Ordering::SeqCst), 3, "nothing left in the ring");
    drop((va, vb, vc));
    assert_eq!(live.load(Ordering::SeqCst), 0);

    // Overwritten, released by dropped receivers, or dropped with the
    // channel: every stored value is dropped exactly once.
    for _ in 0..10 {
        tx.send(Tracked::new(&clones, &live)).unwrap();
    }
    assert_eq!(live.load(Ordering::SeqCst), 4);
    drop(a);
    drop(b);
    assert_eq!(live.load(Ordering::SeqCst), 4, "c still needs them");
    let _ = c.try_recv(); // the lag report
    let v = c.try_recv().unwrap();
    assert_eq!(live.load(Ordering::SeqCst), 4, "moved out, not cloned");
    drop(v);
    drop(c);
    assert_eq!(live.load(Ordering::SeqCst), 0);
    drop(tx);
}

#[test]
#[should_panic(expected = "capacity must be at least 1")]
fn a_zero_capacity_channel_is_refused() {
    let _ = broadcast::channel::<u8>(0);
}

#[test]
fn errors_say_what_happened() {
    assert_eq!(format!("{:?}", SendError(vec![1u8])), "SendError(..)");
    assert!(SendError(()).to_string().contains("no receivers"));
    assert_eq!(RecvError::Lagged(3).lagged(), Some(3));
    assert!(RecvError::Closed.is_closed() && !RecvError::Closed.is_cancelled());
    assert!(RecvError::Lagged(3).to_string().contains("lost 3"));
    assert!(TryRecvError::Empty.is_empty() && TryRecvError::Closed.is_closed());
    assert!(Lagged(2).to_string().contains("lost 2"));
    block_on(async |cx: Cx| {
        let (_tx, mut rx) = broadcast::channel::<u8>(1);
        let (waiting, out) = (Counter::new(), Slot::new());
        let (w, o) = (waiting.clone(), out.clone());
        let h = cx
            .spawn(move |cx| async move {
                w.incr();
                o.set(rx.recv(&cx).await);
            })
            .unwrap();
        until(|| waiting.get() == 1).await;
        h.abort();
        let _ = h.join(&cx).await;
        let e = out.take().unwrap().unwrap_err();
        assert!(e.is_cancelled());
        assert!(e.to_string().starts_with("receive "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    });
}

// ===== model ==============================================================

#[derive(Clone, Debug)]
enum Op {
    Send(u32),
    TryRecv(usize),
    Subscribe,
    Resubscribe(usize),
    DropReceiver(usize),
    CloneSender,
    DropSender(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u32>().prop_map(Op::Send),
        6 => (0..8usize).prop_map(Op::TryRecv),
        1 => Just(Op::Subscribe),
        1 => (0..8usize).prop_map(Op::Resubscribe),
        1 => (0..8usize).prop_map(Op::DropReceiver),
        1 => Just(Op::CloneSender),
        1 => (0..4usize).prop_map(Op::DropSender),
    ]
}

/// The obvious implementation: the whole history, one cursor per receiver.
struct Model {
    capacity: usize,
    history: Vec<u32>,
    cursors: Vec<usize>,
    senders: usize,
}

impl Model {
    fn oldest(&self) -> usize {
        self.history.len().saturating_sub(self.capacity)
    }

    fn try_recv(&mut self, r: usize) -> Result<u32, TryRecvError> {
        let next = self.cursors[r];
        if next == self.history.len() {
            return Err(if self.senders == 0 {
                TryRecvError::Closed
            } else {
                TryRecvError::Empty
            });
        }
        if next < self.oldest() {
            self.cursors[r] = self.oldest();
            return Err(TryRecvError::Lagged((self.oldest() - next) as u64));
        }
        self.cursors[r] += 1;
        Ok(self.history[next])
    }

    /// Values retained that some receiver has not read.
    fn retained(&self) -> usize {
        let lowest = self.cursors.iter().copied().min();
        lowest.map_or(0, |c| self.history.len() - c.max(self.oldest()))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_operation_sequences_match_the_model(
        capacity in 1..6usize,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let (tx, rx) = broadcast::channel::<u32>(capacity);
        let mut senders = VecDeque::from([tx]);
        let mut receivers = vec![rx];
        let mut model = Model { capacity, history: Vec::new(), cursors: vec![0], senders: 1 };
        for op in ops {
            match op {
                Op::Send(v) => {
                    let Some(tx) = senders.front() else { continue };
                    let got = tx.send(v);
                    if receivers.is_empty() {
                        prop_assert_eq!(got, Err(SendError(v)));
                    } else {
                        prop_assert_eq!(got, Ok(receivers.len()));
                        model.history.push(v);
                    }
                }
                Op::TryRecv(i) if !receivers.is_empty() => {
                    let i = i % receivers.len();
                    prop_assert_eq!(receivers[i].try_recv(), model.try_recv(i));
                }
                Op::Subscribe => {
                    let Some(tx) = senders.front() else { continue };
                    receivers.push(tx.subscribe());
                    model.cursors.push(model.history.len());
                }
                Op::Resubscribe(i) if !receivers.is_empty() => {
                    let i = i % receivers.len();
                    receivers.push(receivers[i].resubscribe());
                    model.cursors.push(model.history.len());
                }
                Op::DropReceiver(i) if !receivers.is_empty() => {
                    let i = i % receivers.len();
                    receivers.remove(i);
                    model.cursors.remove(i);
                }
                Op::CloneSender => {
                    if let Some(tx) = senders.front() {
                        senders.push_back(tx.clone());
                        model.senders += 1;
                    }
                }
                Op::DropSender(i) if !senders.is_empty() => {
                    senders.remove(i % senders.len());
                    model.senders -= 1;
                }
                _ => {}
            }
            if let Some(tx) = senders.front() {
                prop_assert_eq!(tx.len(), model.retained());
                prop_assert_eq!(tx.receiver_count(), receivers.len());
            }
            for (i, rx) in receivers.iter().enumerate() {
                let backlog = model.history.len() - model.cursors[i].max(model.oldest());
                prop_assert_eq!(rx.len(), backlog);
                prop_assert_eq!(rx.is_closed(), model.senders == 0);
            }
        }
        // Draining ends every receiver on a gap-free run modulo one lag.
        drop(senders);
        model.senders = 0;
        for (i, rx) in receivers.iter_mut().enumerate() {
            loop {
                let got = rx.try_recv();
                prop_assert_eq!(got, model.try_recv(i));
                if got == Err(TryRecvError::Closed) {
                    break;
                }
            }
        }
    }
}
