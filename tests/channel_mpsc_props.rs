//! Property tests for `channel::mpsc`: random interleavings of try_send,
//! send, reserve, commit, abort (dropping a permit), dropping a waiting
//! future (cancellation), try_recv, recv_many and close, checked step by
//! step against an executable model of the channel's rules, then drained:
//! every committed message is received exactly once, every value that was
//! not delivered comes back to its sender or is dropped with its future,
//! every value is dropped exactly once, and capacity returns to full.
//!
//! The futures are polled by hand (a no-op waker) inside a lab task, so each
//! step is exactly one poll and the interleaving is the generated one.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use asupersync::channel::mpsc::{self, SendError, TryRecvError, TrySendError};
use asupersync::lab::{LabConfig, LabRuntime};
use proptest::prelude::*;

/// A message that reports its own drop, so that loss and duplication are
/// visible (each id must be dropped exactly once).
#[derive(Debug)]
struct Msg {
    id: u64,
    drops: Arc<Mutex<Vec<u64>>>,
}

impl Drop for Msg {
    fn drop(&mut self) {
        self.drops.lock().unwrap().push(self.id);
    }
}

#[derive(Clone, Debug)]
enum Op {
    TrySend,
    StartSend,
    StartReserve,
    PollWaiter(usize),
    DropWaiter(usize),
    CommitPermit(usize),
    DropPermit(usize),
    TryRecv,
    RecvMany(usize),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::TrySend),
        4 => Just(Op::StartSend),
        4 => Just(Op::StartReserve),
        4 => (0..8usize).prop_map(Op::PollWaiter),
        2 => (0..8usize).prop_map(Op::DropWaiter),
        4 => (0..8usize).prop_map(Op::CommitPermit),
        2 => (0..8usize).prop_map(Op::DropPermit),
        4 => Just(Op::TryRecv),
        2 => (0..4usize).prop_map(Op::RecvMany),
        1 => Just(Op::Close),
    ]
}

/// The model's view of one waiting future.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaitState {
    Waiting,
    /// A reserve was granted a slot (counted in `reserved`).
    Granted,
    /// A send's value was queued at grant time.
    Sent,
    /// Closed while waiting.
    Closed,
}

#[derive(Debug)]
struct ModelWaiter {
    /// `Some(id)` for a send, `None` for a reserve.
    value: Option<u64>,
    state: WaitState,
}

/// The channel's rules, executable.
#[derive(Debug, Default)]
struct Model {
    cap: usize,
    queue: VecDeque<u64>,
    reserved: usize,
    closed: bool,
    /// Every waiter ever registered, by waiter number; `order` holds the
    /// ones still waiting, oldest first.
    waiters: Vec<ModelWaiter>,
    order: VecDeque<usize>,
}

impl Model {
    fn room(&self) -> bool {
        self.queue.len() + self.reserved < self.cap
    }

    /// Serves waiting senders while there is room (rule 3).
    fn grant(&mut self) {
        while !self.closed && self.room() {
            let Some(w) = self.order.pop_front() else {
                return;
            };
            let waiter = &mut self.waiters[w];
            match waiter.value {
                Some(id) => {
                    self.queue.push_back(id);
                    waiter.state = WaitState::Sent;
                }
                None => {
                    self.reserved += 1;
                    waiter.state = WaitState::Granted;
                }
            }
        }
    }

    /// A new send/reserve: `Ok(true)` completes now, `Ok(false)` waits as
    /// waiter number `n`, `Err(())` disconnected.
    fn start(&mut self, value: Option<u64>) -> Result<bool, ()> {
        if self.closed {
            return Err(());
        }
        if self.order.is_empty() && self.room() {
            match value {
                Some(id) => self.queue.push_back(id),
                None => self.reserved += 1,
            }
            return Ok(true);
        }
        self.order.push_back(self.waiters.len());
        self.waiters.push(ModelWaiter {
            value,
            state: WaitState::Waiting,
        });
        Ok(false)
    }

    fn drop_waiter(&mut self, w: usize) {
        match self.waiters[w].state {
            WaitState::Waiting => self.order.retain(|&x| x != w),
            WaitState::Granted => self.release(),
            WaitState::Sent | WaitState::Closed => {}
        }
    }

    fn release(&mut self) {
        self.reserved -= 1;
        self.grant();
    }

    fn close(&mut self) {
        self.closed = true;
        for w in self.order.drain(..) {
            self.waiters[w].state = WaitState::Closed;
        }
    }

    fn disconnected(&self) -> bool {
        self.queue.is_empty() && self.reserved == 0 && self.closed
    }
}

type SendFut<'a> = mpsc::SendFuture<'a, Msg>;
type ReserveFut<'a> = mpsc::Reserve<'a, Msg>;

enum Waiter<'a> {
    Send(SendFut<'a>),
    Reserve(ReserveFut<'a>),
}

fn poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

#[derive(Default)]
struct Accounting {
    created: u64,
    /// Reported delivered to the sender (try_send/send/permit send `Ok`).
    committed: BTreeSet<u64>,
    /// Came back to the sender in an error.
    returned: BTreeSet<u64>,
    received: Vec<u64>,
}

fn run_ops(cap: usize, ops: Vec<Op>) {
    let lab = LabRuntime::new(LabConfig::new(1));
    let drops: Arc<Mutex<Vec<u64>>> = Arc::default();
    let drops2 = drops.clone();
    let acc = lab.block_on(move |cx| async move {
        let drops = drops2;
        let (tx, mut rx) = if cap == usize::MAX {
            mpsc::unbounded_channel::<Msg>()
        } else {
            mpsc::channel::<Msg>(cap)
        };
        let mut model = Model {
            cap,
            ..Model::default()
        };
        let mut acc = Accounting::default();
        let fresh = |acc: &mut Accounting| {
            acc.created += 1;
            Msg {
                id: acc.created,
                drops: drops.clone(),
            }
        };
        // Live waiting futures with their waiter numbers, and live permits.
        let mut waiting: Vec<(usize, Waiter<'_>)> = Vec::new();
        let mut permits: Vec<mpsc::SendPermit<'_, Msg>> = Vec::new();

        for op in ops {
            match op {
                Op::TrySend => {
                    let m = fresh(&mut acc);
                    let id = m.id;
                    let expect_ok = !model.closed && model.order.is_empty() && model.room();
                    match tx.try_send(m) {
                        Ok(()) => {
                            assert!(expect_ok, "try_send succeeded against the model");
                            model.queue.push_back(id);
                            acc.committed.insert(id);
                        }
                        Err(e) => {
                            assert!(!expect_ok, "try_send failed against the model: {e}");
                            assert_eq!(e.is_disconnected(), model.closed);
                            assert_eq!(e.is_full(), !model.closed);
                            let m = e.into_inner();
                            assert_eq!(m.id, id);
                            acc.returned.insert(id);
                        }
                    }
                }
                Op::StartSend => {
                    let m = fresh(&mut acc);
                    let id = m.id;
                    let mut f = tx.send(&cx, m);
                    let expected = model.start(Some(id));
                    match (poll(&mut f), expected) {
                        (Poll::Ready(Ok(())), Ok(true)) => {
                            acc.committed.insert(id);
                        }
                        (Poll::Ready(Err(SendError::Disconnected(m))), Err(())) => {
                            assert_eq!(m.id, id);
                            acc.returned.insert(id);
                        }
                        (Poll::Pending, Ok(false)) => {
                            waiting.push((model.waiters.len() - 1, Waiter::Send(f)));
                        }
                        (got, want) => panic!("send: got {got:?}, model {want:?}"),
                    }
                }
                Op::StartReserve => {
                    let mut f = tx.reserve(&cx);
                    let expected = model.start(None);
                    match (poll(&mut f), expected) {
                        (Poll::Ready(Ok(p)), Ok(true)) => permits.push(p),
                        (Poll::Ready(Err(e)), Err(())) => assert!(e.is_disconnected()),
                        (Poll::Pending, Ok(false)) => {
                            waiting.push((model.waiters.len() - 1, Waiter::Reserve(f)));
                        }
                        (got, want) => panic!("reserve: got {got:?}, model {want:?}"),
                    }
                }
                Op::PollWaiter(i) if !waiting.is_empty() => {
                    let i = i % waiting.len();
                    let w = waiting[i].0;
                    let state = model.waiters[w].state;
                    let done = match &mut waiting[i].1 {
                        Waiter::Send(f) => match (poll(f), state) {
                            (Poll::Pending, WaitState::Waiting) => false,
                            (Poll::Ready(Ok(())), WaitState::Sent) => {
                                acc.committed.insert(model.waiters[w].value.unwrap());
                                true
                            }
                            (Poll::Ready(Err(SendError::Disconnected(m))), WaitState::Closed) => {
                                assert_eq!(Some(m.id), model.waiters[w].value);
                                acc.returned.insert(m.id);
                                true
                            }
                            (got, want) => panic!("send waiter: got {got:?}, model {want:?}"),
                        },
                        Waiter::Reserve(f) => match (poll(f), state) {
                            (Poll::Pending, WaitState::Waiting) => false,
                            (Poll::Ready(Ok(p)), WaitState::Granted) => {
                                permits.push(p);
                                true
                            }
                            (Poll::Ready(Err(e)), WaitState::Closed) => {
                                assert!(e.is_disconnected());
                                true
                            }
                            (got, want) => panic!("reserve waiter: got {got:?}, model {want:?}"),
                        },
                    };
                    if done {
                        waiting.remove(i);
                    }
                }
                Op::DropWaiter(i) if !waiting.is_empty() => {
                    let (w, f) = waiting.remove(i % waiting.len());
                    drop(f);
                    model.drop_waiter(w);
                    if model.waiters[w].state == WaitState::Sent {
                        // Delivered before the future was dropped.
                        acc.committed.insert(model.waiters[w].value.unwrap());
                    }
                }
                Op::CommitPermit(i) if !permits.is_empty() => {
                    let p = permits.remove(i % permits.len());
                    let m = fresh(&mut acc);
                    let id = m.id;
                    p.send(m).expect("the receiver is alive");
                    model.reserved -= 1;
                    model.queue.push_back(id);
                    acc.committed.insert(id);
                }
                Op::DropPermit(i) if !permits.is_empty() => {
                    drop(permits.remove(i % permits.len()));
                    model.release();
                }
                Op::TryRecv => match rx.try_recv() {
                    Ok(m) => {
                        assert_eq!(Some(m.id), model.queue.pop_front(), "FIFO");
                        acc.received.push(m.id);
                        model.grant();
                    }
                    Err(e) => {
                        assert!(model.queue.is_empty());
                        assert_eq!(e == TryRecvError::Disconnected, model.disconnected());
                    }
                },
                Op::RecvMany(limit) => {
                    let mut buf = Vec::new();
                    let mut f = rx.recv_many(&cx, &mut buf, limit);
                    let polled = poll(&mut f);
                    drop(f);
                    match polled {
                        Poll::Ready(Ok(n)) => {
                            assert_eq!(n, buf.len());
                            assert_eq!(n, limit.min(model.queue.len()));
                            for m in buf {
                                assert_eq!(Some(m.id), model.queue.pop_front(), "FIFO");
                                acc.received.push(m.id);
                            }
                            model.grant();
                        }
                        Poll::Ready(Err(e)) => {
                            assert!(e.is_disconnected() && model.disconnected());
                        }
                        Poll::Pending => {
                            assert!(model.queue.is_empty() && !model.disconnected());
                            assert!(buf.is_empty(), "a pending recv moves nothing");
                        }
                    }
                }
                Op::Close => {
                    rx.close();
                    model.close();
                }
                _ => {}
            }
            assert_eq!(rx.len(), model.queue.len());
            assert_eq!(tx.capacity(), cap - model.queue.len() - model.reserved);
        }

        // Wind down: drop what is still waiting (cancellation), abort the
        // remaining permits, drain.
        for (w, f) in waiting.drain(..) {
            drop(f);
            model.drop_waiter(w);
            if model.waiters[w].state == WaitState::Sent {
                acc.committed.insert(model.waiters[w].value.unwrap());
            }
        }
        for p in permits.drain(..) {
            drop(p);
            model.release();
        }
        while let Ok(m) = rx.try_recv() {
            assert_eq!(Some(m.id), model.queue.pop_front(), "FIFO");
            acc.received.push(m.id);
        }
        assert!(model.queue.is_empty());
        assert_eq!(tx.capacity(), cap, "capacity returns to full");
        acc
    });

    let received: BTreeSet<u64> = acc.received.iter().copied().collect();
    assert_eq!(
        received.len(),
        acc.received.len(),
        "a message was duplicated"
    );
    assert_eq!(
        received, acc.committed,
        "committed messages are received exactly once"
    );
    assert!(received.is_disjoint(&acc.returned));
    let mut dropped = drops.lock().unwrap().clone();
    dropped.sort_unstable();
    let all: Vec<u64> = (1..=acc.created).collect();
    assert_eq!(dropped, all, "every value is dropped exactly once");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_interleavings_match_the_model_and_lose_or_duplicate_nothing(
        cap in prop_oneof![4 => 1usize..4, 1 => Just(usize::MAX)],
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        run_ops(cap, ops);
    }
}

#[test]
fn a_full_channel_with_mixed_waiters_winds_down_to_full_capacity() {
    use Op::*;
    run_ops(
        2,
        vec![
            StartReserve,
            TrySend,
            StartSend,
            StartReserve,
            StartSend,
            TryRecv,
            DropWaiter(1),
            PollWaiter(0),
            CommitPermit(0),
            TryRecv,
            RecvMany(3),
            Close,
            PollWaiter(0),
            DropPermit(0),
            TryRecv,
        ],
    );
}

#[test]
fn try_send_errors_keep_the_value() {
    let (tx, _rx) = mpsc::channel::<u8>(1);
    tx.try_send(1).unwrap();
    assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
}
