//! `channel::watch`: semantics (rules W1–W7 of the module docs) on both
//! drivers, and a property test of random send / modify / subscribe / clone
//! / drop / look sequences against a model.

mod support;

use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use asupersync::channel::watch::{self, RecvError, SendError};
use asupersync::types::CancelKind;
use asupersync::{Cx, RuntimeBuilder, yield_now};
use futures_core::Stream;
use proptest::prelude::*;
use support::*;

async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    poll_fn(|task_cx| Pin::new(&mut *s).poll_next(task_cx)).await
}

fn block_on<T>(f: impl AsyncFnOnce(Cx) -> T) -> T {
    let rt = RuntimeBuilder::current_thread().build().unwrap();
    rt.block_on(|cx| async move { f(cx).await })
}

/// One poll of the receiver's stream with a no-op waker: `Some(Some(v))` a
/// change, `Some(None)` closed, `None` would wait.
fn poll_stream<T: Clone>(rx: &mut watch::Receiver<T>) -> Option<Option<T>> {
    match Pin::new(rx).poll_next(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(item) => Some(item),
        Poll::Pending => None,
    }
}

// ===== both drivers ========================================================

on_both_drivers! {
    /// W1/W2: `changed` waits for a newer version; `borrow_and_update`
    /// reads it and marks it seen.
    fn changed_waits_for_a_new_version_and_borrow_and_update_marks_it_seen(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, mut rx) = watch::channel(0u32);
            let waiting = Counter::new();
            let w = waiting.clone();
            let h = cx.spawn(move |cx| async move {
                w.incr();
                rx.changed(&cx).await.unwrap();
                let v = *rx.borrow_and_update();
                assert!(!rx.has_changed());
                v
            }).unwrap();
            until(|| waiting.get() == 1).await;
            yield_now().await;
            tx.send(7).unwrap();
            assert_eq!(h.join(&cx).await.unwrap(), 7);
        });
    }

    /// W2: a fast sender and a receiver that looks now and then: the
    /// receiver's observations increase strictly and end with the last.
    fn updates_coalesce_and_the_last_one_is_never_missed(d: Driver) {
        d.rt().block_on(|cx| async move {
            const LAST: u32 = 2_000;
            let (tx, rx) = watch::channel(0u32);
            let mut handles = Vec::new();
            for mut rx in [rx.clone(), rx] {
                handles.push(cx.spawn(move |cx| async move {
                    let mut seen = Vec::new();
                    loop {
                        match rx.changed(&cx).await {
                            Ok(()) => seen.push(*rx.borrow_and_update()),
                            Err(RecvError::Closed) => return seen,
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                }).unwrap());
            }
            for v in 1..=LAST {
                tx.send(v).unwrap();
                if v % 64 == 0 {
                    yield_now().await;
                }
            }
            drop(tx);
            for h in handles {
                let seen = h.join(&cx).await.unwrap();
                assert!(seen.windows(2).all(|w| w[0] < w[1]), "never the same twice: {seen:?}");
                assert_eq!(seen.last(), Some(&LAST), "the last value is never missed");
            }
        });
    }

    /// W3: `Closed` comes only after the last version was seen; a receiver
    /// waiting when the sender goes is woken with it.
    fn dropping_the_sender_reports_closed_after_the_last_version_was_seen(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, mut rx) = watch::channel("a");
            let mut waiter = rx.clone();
            let waiting = Counter::new();
            let w = waiting.clone();
            let h = cx.spawn(move |cx| async move {
                w.incr();
                let first = waiter.changed(&cx).await;
                let second = waiter.changed(&cx).await;
                (first, second, *waiter.borrow())
            }).unwrap();
            until(|| waiting.get() == 1).await;
            tx.send("b").unwrap();
            drop(tx);
            assert!(rx.is_closed());
            assert_eq!(rx.changed(&cx).await, Ok(()), "the last version is still reported");
            assert_eq!(*rx.borrow_and_update(), "b");
            assert_eq!(rx.changed(&cx).await, Err(RecvError::Closed));
            assert_eq!(h.join(&cx).await.unwrap(), (Ok(()), Err(RecvError::Closed), "b"));
        });
    }

    /// W4: a `changed` cancelled while waiting returns `Cancelled` and leaves
    /// the seen version as it was: the next change is reported next time.
    fn a_cancelled_changed_consumes_nothing(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, rx) = watch::channel(0u32);
            let (waiting, out) = (Counter::new(), Slot::new());
            let (w, o) = (waiting.clone(), out.clone());
            let h = cx.spawn(move |cx| async move {
                let mut rx = rx;
                w.incr();
                let r = rx.changed(&cx).await;
                o.set((r, rx));
            }).unwrap();
            until(|| waiting.get() == 1).await;
            h.abort();
            assert!(h.join(&cx).await.unwrap_err().is_cancelled());
            let (r, mut rx) = out.take().unwrap();
            let Err(RecvError::Cancelled(c)) = r else { panic!("{r:?}") };
            assert_eq!(c.reason().kind, CancelKind::User);
            assert!(!rx.has_changed());
            tx.send(1).unwrap();
            assert!(rx.has_changed());
            assert_eq!(rx.changed(&cx).await, Ok(()));
            assert_eq!(*rx.borrow(), 1);
        });
    }

    /// W4: a change already there is reported even to a cancelled task.
    fn a_cancelled_task_still_sees_a_change_that_is_already_there(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, mut rx) = watch::channel(0u32);
            let (started, go, out) = (Counter::new(), Flag::new(), Slot::new());
            let (s, g, o) = (started.clone(), go.clone(), out.clone());
            let h = cx.spawn(move |cx| async move {
                s.incr();
                until(|| g.is_set()).await; // not cancel-aware
                let first = rx.changed(&cx).await;
                let v = *rx.borrow_and_update();
                let second = rx.changed(&cx).await;
                o.set((first, v, second));
            }).unwrap();
            until(|| started.get() == 1).await;
            tx.send(3).unwrap();
            h.abort();
            go.set();
            let _ = h.join(&cx).await;
            let (first, v, second) = out.take().unwrap();
            assert_eq!((first, v), (Ok(()), 3));
            assert!(second.unwrap_err().is_cancelled());
        });
    }

    /// W3: `closed` completes when the last receiver goes; it is
    /// cancel-aware.
    fn closed_waits_until_every_receiver_is_gone(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, rx) = watch::channel(());
            let rx2 = tx.subscribe();
            let tx = std::sync::Arc::new(tx);
            let (waiting, done) = (Counter::new(), Flag::new());
            let (w, dn, t) = (waiting.clone(), done.clone(), tx.clone());
            let h = cx.spawn(move |cx| async move {
                w.incr();
                let r = t.closed(&cx).await;
                dn.set();
                r
            }).unwrap();
            until(|| waiting.get() == 1).await;
            drop(rx);
            for _ in 0..10 {
                yield_now().await;
            }
            assert!(!done.is_set(), "one receiver is left");
            assert_eq!(tx.receiver_count(), 1);
            drop(rx2);
            assert_eq!(h.join(&cx).await.unwrap(), Ok(()));
            assert!(tx.is_closed());
            assert_eq!(tx.closed(&cx).await, Ok(()), "already closed: at once");

            // Cancelled while waiting.
            let (tx, _rx) = watch::channel(());
            let (waiting, out) = (Counter::new(), Slot::new());
            let (w, o) = (waiting.clone(), out.clone());
            let h = cx.spawn(move |cx| async move {
                w.incr();
                o.set(tx.closed(&cx).await);
            }).unwrap();
            until(|| waiting.get() == 1).await;
            h.abort();
            let _ = h.join(&cx).await;
            assert_eq!(out.take().unwrap().unwrap_err().reason().kind, CancelKind::User);
        });
    }

    /// W5: a waiter that stops waiting does not disturb the others.
    fn a_cancelled_waiter_leaves_the_other_waiters_waiting(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, rx) = watch::channel(0u8);
            let waiting = Counter::new();
            let mut handles = Vec::new();
            for mut rx in [rx.clone(), rx.clone(), rx] {
                let w = waiting.clone();
                handles.push(cx.spawn(move |cx| async move {
                    w.incr();
                    rx.changed(&cx).await.map(|()| *rx.borrow())
                }).unwrap());
            }
            until(|| waiting.get() == 3).await;
            handles[1].abort();
            until(|| handles[1].is_finished()).await;
            tx.send(5).unwrap();
            let mut results = Vec::new();
            for h in handles {
                results.push(h.join(&cx).await);
            }
            assert_eq!(results[0], Ok(Ok(5)));
            assert_eq!(results[2], Ok(Ok(5)));
            assert!(results[1].as_ref().unwrap_err().is_cancelled());
        });
    }

    /// Streams: each item is the latest value after a change; ends on close.
    fn the_stream_yields_the_latest_value_on_each_change_and_ends_on_close(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, mut rx) = watch::channel(0u32);
            rx.mark_changed(); // start with the current value
            let h = cx.spawn(move |_cx| async move {
                let mut items = Vec::new();
                while let Some(v) = next(&mut rx).await {
                    items.push(v);
                }
                items
            }).unwrap();
            for v in 1..=50 {
                tx.send(v).unwrap();
                if v % 10 == 0 {
                    yield_now().await;
                }
            }
            drop(tx);
            let items = h.join(&cx).await.unwrap();
            assert!(items.windows(2).all(|w| w[0] < w[1]), "{items:?}");
            assert_eq!(items.last(), Some(&50), "{items:?}");
        });
    }

    /// `Receiver::stream(&cx)` ends when the task is cancelled while it
    /// waits, with the seen version unchanged.
    fn the_cancel_aware_stream_ends_on_cancellation(d: Driver) {
        d.rt().block_on(|cx| async move {
            let (tx, mut rx) = watch::channel(0u32);
            tx.send(1).unwrap();
            let (waiting, back) = (Counter::new(), Slot::new());
            let (w, b) = (waiting.clone(), back.clone());
            let h = cx.spawn(move |cx| async move {
                let mut items = Vec::new();
                let cancelled = {
                    let mut s = rx.stream(&cx);
                    while let Some(v) = next(&mut s).await {
                        items.push(v);
                        w.incr();
                    }
                    let c = s.cancelled().is_some();
                    assert!(next(&mut s).await.is_none(), "stays ended");
                    c
                };
                b.set((items, cancelled, rx));
            }).unwrap();
            until(|| waiting.get() == 1).await;
            h.abort();
            let _ = h.join(&cx).await;
            let (items, cancelled, mut rx) = back.take().unwrap();
            assert_eq!(items, vec![1]);
            assert!(cancelled);
            assert!(!rx.has_changed());
            tx.send(2).unwrap();
            assert_eq!(poll_stream(&mut rx), Some(Some(2)));
        });
    }
}

/// The plain `Stream` has no `Cx`: a task cancelled while waiting on it
/// keeps waiting until a change (documented in the module docs).
#[test]
fn the_plain_stream_does_not_observe_cancellation() {
    block_on(async |cx: Cx| {
        let (tx, mut rx) = watch::channel(0u32);
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

/// W5: wake-ups follow the order in which receivers started waiting.
#[test]
fn waiting_receivers_are_woken_in_the_order_they_started_waiting() {
    block_on(async |cx: Cx| {
        let (tx, rx) = watch::channel(0u32);
        let log = Log::new();
        let waiting = Counter::new();
        let mut handles = Vec::new();
        for i in 0..4 {
            let (mut rx, l, w) = (rx.clone(), log.clone(), waiting.clone());
            handles.push(
                cx.spawn(move |cx| async move {
                    w.incr();
                    if rx.changed(&cx).await.is_ok() {
                        l.push(format!("r{i}"));
                    }
                })
                .unwrap(),
            );
            until(|| waiting.get() == i + 1).await;
        }
        handles[2].abort();
        until(|| handles[2].is_finished()).await;
        tx.send(1).unwrap();
        for h in handles {
            let _ = h.join(&cx).await;
        }
        assert_eq!(log.snapshot(), ["r0", "r1", "r3"]);
    });
}

// ===== single-threaded semantics ==========================================

#[test]
fn a_new_receiver_has_seen_the_current_value() {
    let (tx, mut rx) = watch::channel(1);
    assert!(!rx.has_changed());
    tx.send(2).unwrap();
    let sub = tx.subscribe();
    let clone = rx.clone();
    assert!(!sub.has_changed(), "subscribe: seen the current one");
    assert!(
        clone.has_changed(),
        "clone: seen what the original had seen"
    );
    assert_eq!(tx.receiver_count(), 3);
    assert!(rx.same_channel(&sub) && tx.same_channel(&rx));
    let r = rx.borrow_and_update();
    assert!(r.has_changed());
    assert_eq!(*r, 2);
    drop(r);
    assert!(!rx.borrow().has_changed());
    assert!(!tx.borrow().has_changed());
}

#[test]
fn send_without_receivers_gives_the_value_back_but_send_replace_and_send_modify_store() {
    let (tx, rx) = watch::channel(String::from("a"));
    drop(rx);
    assert!(tx.is_closed());
    let err = tx.send("b".into()).unwrap_err();
    assert_eq!(err.inner(), "b");
    assert_eq!(*tx.borrow(), "a", "not stored");
    assert_eq!(tx.send_replace("c".into()), "a");
    tx.send_modify(|s| s.push('!'));
    let mut late = tx.subscribe();
    assert_eq!(*late.borrow_and_update(), "c!");
}

#[test]
fn send_if_modified_notifies_only_when_told() {
    let (tx, mut rx) = watch::channel(0);
    assert!(!tx.send_if_modified(|v| {
        *v += 1;
        false
    }));
    assert!(!rx.has_changed(), "not reported");
    assert_eq!(*rx.borrow(), 1, "but visible");
    assert!(tx.send_if_modified(|v| {
        *v += 1;
        true
    }));
    assert!(rx.has_changed());
    assert_eq!(*rx.borrow_and_update(), 2);
}

#[test]
fn mark_changed_and_mark_unchanged_set_what_counts_as_seen() {
    let (tx, mut rx) = watch::channel(0);
    rx.mark_changed();
    assert!(rx.has_changed());
    assert_eq!(poll_stream(&mut rx), Some(Some(0)));
    assert_eq!(poll_stream(&mut rx), None, "seen: would wait");
    tx.send(1).unwrap();
    rx.mark_unchanged();
    assert!(!rx.has_changed());
    assert_eq!(poll_stream(&mut rx), None);
    drop(tx);
    assert_eq!(poll_stream(&mut rx), Some(None), "closed, nothing unseen");
}

#[test]
fn a_panicking_send_modify_keeps_its_partial_change_but_notifies_nobody() {
    let (tx, rx) = watch::channel(vec![1]);
    let r = catch_unwind(AssertUnwindSafe(|| {
        tx.send_modify(|v| {
            v.push(2);
            panic!("mid-modify");
        })
    }));
    assert!(r.is_err());
    assert!(!rx.has_changed());
    assert_eq!(*rx.borrow(), [1, 2]);
    tx.send_modify(|v| v.push(3));
    assert!(rx.has_changed(), "the channel still works");
}

#[test]
fn errors_say_what_happened() {
    assert_eq!(format!("{:?}", SendError(1)), "SendError(..)");
    assert_eq!(SendError(1).into_inner(), 1);
    assert!(SendError(()).to_string().contains("no receivers"));
    assert!(RecvError::Closed.is_closed() && !RecvError::Closed.is_cancelled());
    assert_eq!(format!("{:?}", RecvError::Closed), "Closed");
    let (tx, rx) = watch::channel(0);
    assert!(format!("{tx:?}").contains("receivers: 1"), "{tx:?}");
    assert!(format!("{rx:?}").contains("has_changed: false"), "{rx:?}");
    assert_eq!(format!("{:?}", rx.borrow()), "0");
}

// ===== model ==============================================================

#[derive(Clone, Debug)]
enum Op {
    Send(u8),
    SendReplace(u8),
    SendModify(u8),
    SendIfModified(u8, bool),
    Subscribe,
    CloneReceiver(usize),
    DropReceiver(usize),
    BorrowAndUpdate(usize),
    Poll(usize),
    MarkChanged(usize),
    MarkUnchanged(usize),
    DropSender,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Send),
        1 => any::<u8>().prop_map(Op::SendReplace),
        1 => any::<u8>().prop_map(Op::SendModify),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(v, c)| Op::SendIfModified(v, c)),
        1 => Just(Op::Subscribe),
        1 => (0..6usize).prop_map(Op::CloneReceiver),
        1 => (0..6usize).prop_map(Op::DropReceiver),
        3 => (0..6usize).prop_map(Op::BorrowAndUpdate),
        4 => (0..6usize).prop_map(Op::Poll),
        1 => (0..6usize).prop_map(Op::MarkChanged),
        1 => (0..6usize).prop_map(Op::MarkUnchanged),
        1 => Just(Op::DropSender),
    ]
}

/// One value, one version, one "seen" per receiver (`None`: marked changed).
struct Model {
    value: u8,
    version: u64,
    seen: Vec<Option<u64>>,
    closed: bool,
}

impl Model {
    fn bump(&mut self, v: u8) {
        self.value = v;
        self.version += 1;
    }

    fn has_changed(&self, r: usize) -> bool {
        self.seen[r] != Some(self.version)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_operation_sequences_match_the_model(
        ops in proptest::collection::vec(op(), 1..100),
    ) {
        let (tx, rx) = watch::channel(0u8);
        let mut tx = Some(tx);
        let mut receivers = vec![rx];
        let mut m = Model { value: 0, version: 0, seen: vec![Some(0)], closed: false };
        for op in ops {
            match (op, tx.as_ref()) {
                (Op::Send(v), Some(tx)) => {
                    let r = tx.send(v);
                    if receivers.is_empty() {
                        prop_assert_eq!(r, Err(SendError(v)));
                    } else {
                        prop_assert_eq!(r, Ok(()));
                        m.bump(v);
                    }
                }
                (Op::SendReplace(v), Some(tx)) => {
                    prop_assert_eq!(tx.send_replace(v), m.value);
                    m.bump(v);
                }
                (Op::SendModify(d), Some(tx)) => {
                    tx.send_modify(|x| *x = x.wrapping_add(d));
                    m.bump(m.value.wrapping_add(d));
                }
                (Op::SendIfModified(v, changed), Some(tx)) => {
                    prop_assert_eq!(tx.send_if_modified(|x| { *x = v; changed }), changed);
                    m.value = v;
                    if changed {
                        m.version += 1;
                    }
                }
                (Op::Subscribe, Some(tx)) => {
                    receivers.push(tx.subscribe());
                    m.seen.push(Some(m.version));
                }
                (Op::DropSender, Some(_)) => {
                    tx = None;
                    m.closed = true;
                }
                (Op::CloneReceiver(i), _) if !receivers.is_empty() => {
                    let i = i % receivers.len();
                    receivers.push(receivers[i].clone());
                    m.seen.push(m.seen[i]);
                }
                (Op::DropReceiver(i), _) if !receivers.is_empty() => {
                    let i = i % receivers.len();
                    receivers.remove(i);
                    m.seen.remove(i);
                }
                (Op::BorrowAndUpdate(i), _) if !receivers.is_empty() => {
                    let i = i % receivers.len();
                    let changed = m.has_changed(i);
                    let r = receivers[i].borrow_and_update();
                    prop_assert_eq!((*r, r.has_changed()), (m.value, changed));
                    m.seen[i] = Some(m.version);
                }
                (Op::Poll(i), _) if !receivers.is_empty() => {
                    let i = i % receivers.len();
                    let expected = if m.has_changed(i) {
                        m.seen[i] = Some(m.version);
                        Some(Some(m.value))
                    } else if m.closed {
                        Some(None)
                    } else {
                        None
                    };
                    prop_assert_eq!(poll_stream(&mut receivers[i]), expected);
                }
                (Op::MarkChanged(i), _) if !receivers.is_empty() => {
                    let i = i % receivers.len();
                    receivers[i].mark_changed();
                    m.seen[i] = None;
                }
                (Op::MarkUnchanged(i), _) if !receivers.is_empty() => {
                    let i = i % receivers.len();
                    receivers[i].mark_unchanged();
                    m.seen[i] = Some(m.version);
                }
                _ => {}
            }
            if let Some(tx) = &tx {
                prop_assert_eq!(tx.receiver_count(), receivers.len());
                prop_assert_eq!(tx.is_closed(), receivers.is_empty());
                prop_assert_eq!(*tx.borrow(), m.value);
            }
            for (i, rx) in receivers.iter().enumerate() {
                prop_assert_eq!(rx.has_changed(), m.has_changed(i));
                prop_assert_eq!(rx.is_closed(), m.closed);
                let r = rx.borrow();
                prop_assert_eq!((*r, r.has_changed()), (m.value, m.has_changed(i)));
            }
        }
    }
}
