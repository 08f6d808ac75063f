//! The multi-thread scheduler: work stealing, no lost wakeups under
//! cross-thread wake storms (rule Q1), the cancel lane and its streak
//! bound, and the per-worker metrics.
//!
//! The deterministic dispatch-order check of the cancel-streak bound lives
//! next to the queue (`src/runtime/queue.rs`, unit tests); here it is
//! checked end to end through `Runtime::metrics`.

mod support;

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use asupersync::{RuntimeBuilder, yield_now};
use support::with_watchdog;

/// Some CPU work the optimizer cannot remove.
fn spin(rounds: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    for i in 0..rounds {
        x = black_box(x.rotate_left(5) ^ i).wrapping_mul(0x100_0000_01B3);
    }
    x
}

#[test]
fn work_is_stolen_when_one_worker_spawns_many_cpu_bound_tasks() {
    with_watchdog("stealing", || {
        let rt = RuntimeBuilder::new().worker_threads(4).build().unwrap();
        // Rounds until at least two workers stole (normally the first).
        loop {
            rt.block_on(|cx| async move {
                // One task (so one worker) spawns everything: the tasks land
                // in that worker's own queue and the others must steal.
                let spawner = cx
                    .spawn(|cx| async move {
                        let mut handles = Vec::new();
                        for i in 0..400u64 {
                            handles
                                .push(cx.spawn(move |_| async move { spin(2_000 + i) }).unwrap());
                        }
                        let mut sum = 0u64;
                        for h in handles {
                            sum = sum.wrapping_add(h.join(&cx).await.unwrap());
                        }
                        sum
                    })
                    .unwrap();
                spawner.join(&cx).await.unwrap();
            });
            let m = rt.metrics();
            assert_eq!(m.workers.len(), 4);
            let stealers = m.workers.iter().filter(|w| w.steals > 0).count();
            if stealers >= 2 {
                assert!(m.total_steals() >= 2);
                assert!(m.total_polls() >= 401);
                break;
            }
            // Otherwise run another round: stealing is expected within a
            // round or two; a runtime that never steals hangs here, which
            // the watchdog reports.
            eprintln!("fewer than two workers stole, another round: {m:?}");
        }
    });
}

/// A one-slot mailbox: a sequence number plus the waiting task's waker.
#[derive(Default)]
struct Mailbox {
    seq: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

impl Mailbox {
    fn post(&self, seq: u64) {
        self.seq.store(seq, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }

    /// Resolves once `seq >= want`; returns the value seen.
    fn wait(&self, want: u64) -> MailboxWait<'_> {
        MailboxWait {
            mailbox: self,
            want,
        }
    }
}

struct MailboxWait<'a> {
    mailbox: &'a Mailbox,
    want: u64,
}

impl Future for MailboxWait<'_> {
    type Output = u64;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let seen = self.mailbox.seq.load(Ordering::SeqCst);
        if seen >= self.want {
            return Poll::Ready(seen);
        }
        *self.mailbox.waker.lock().unwrap() = Some(cx.waker().clone());
        let seen = self.mailbox.seq.load(Ordering::SeqCst);
        if seen >= self.want {
            return Poll::Ready(seen);
        }
        Poll::Pending
    }
}

/// Acknowledgements from tasks to the plain threads that wake them.
#[derive(Default)]
struct Acks {
    done: Mutex<Vec<u64>>,
    changed: Condvar,
}

impl Acks {
    fn ack(&self, task: usize, round: u64) {
        self.done.lock().unwrap()[task] = round;
        self.changed.notify_all();
    }

    fn wait_for(&self, task: usize, round: u64) {
        let mut done = self.done.lock().unwrap();
        while done[task] < round {
            done = self.changed.wait(done).unwrap();
        }
    }
}

#[test]
fn no_wakeup_is_lost_when_plain_threads_wake_tasks_that_just_went_to_sleep() {
    const TASKS: usize = 16;
    const ROUNDS: u64 = 150;
    with_watchdog("cross-thread wakes", || {
        let rt = RuntimeBuilder::new().worker_threads(2).build().unwrap();
        let boxes: Arc<Vec<Mailbox>> = Arc::new((0..TASKS).map(|_| Mailbox::default()).collect());
        let acks = Arc::new(Acks {
            done: Mutex::new(vec![0; TASKS]),
            changed: Condvar::new(),
        });
        let handle = rt.handle();
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let (boxes, acks) = (boxes.clone(), acks.clone());
            tasks.push(
                handle
                    .spawn(move |_| async move {
                        for round in 1..=ROUNDS {
                            let seen = boxes[t].wait(round).await;
                            // The waker posts round r only after the ack
                            // of r - 1: never a skipped or repeated round.
                            assert_eq!(seen, round, "task {t} saw a round out of order");
                            acks.ack(t, round);
                        }
                        ROUNDS
                    })
                    .unwrap(),
            );
        }
        // Two plain threads, each waking half the tasks as soon as they
        // acknowledged the previous round: each post races with the task
        // going back to sleep.
        let wakers: Vec<_> = (0..2)
            .map(|half| {
                let (boxes, acks) = (boxes.clone(), acks.clone());
                std::thread::spawn(move || {
                    for round in 1..=ROUNDS {
                        for t in (half..TASKS).step_by(2) {
                            acks.wait_for(t, round - 1);
                            boxes[t].post(round);
                        }
                    }
                })
            })
            .collect();
        for w in wakers {
            w.join().unwrap();
        }
        let total: u64 = rt.block_on(|cx| async move {
            let mut total = 0;
            for h in tasks {
                total += h.join(&cx).await.unwrap();
            }
            total
        });
        assert_eq!(total, ROUNDS * TASKS as u64);
        assert!(acks.done.lock().unwrap().iter().all(|&r| r == ROUNDS));
    });
}

#[test]
fn no_wakeup_is_lost_when_tasks_pass_a_token_around_a_ring_across_workers() {
    const TASKS: usize = 24;
    const LAPS: u64 = 60;
    with_watchdog("token ring", || {
        let rt = RuntimeBuilder::new().worker_threads(3).build().unwrap();
        let boxes: Arc<Vec<Mailbox>> = Arc::new((0..TASKS).map(|_| Mailbox::default()).collect());
        let hops = Arc::new(AtomicU64::new(0));
        let polls = Arc::new(AtomicU64::new(0));
        let (b2, h2, p2) = (boxes.clone(), hops.clone(), polls.clone());
        rt.block_on(|cx| async move {
            let mut handles = Vec::new();
            for t in 0..TASKS {
                let (boxes, hops, polls) = (b2.clone(), h2.clone(), p2.clone());
                handles.push(
                    cx.spawn(move |_| CountPolls {
                        polls,
                        inner: Box::pin(async move {
                            for lap in 0..LAPS {
                                // Hop number this task waits for on this lap.
                                let want = lap * TASKS as u64 + t as u64 + 1;
                                let seen = boxes[t].wait(want).await;
                                assert_eq!(seen, want, "task {t} skipped a hop");
                                let previous = hops.fetch_add(1, Ordering::SeqCst);
                                assert_eq!(previous + 1, want, "two tokens in the ring");
                                boxes[(t + 1) % TASKS].post(want + 1);
                            }
                        }),
                    })
                    .unwrap(),
                );
            }
            // Inject the token from the block_on thread (outside any worker).
            b2[0].post(1);
            for h in handles {
                h.join(&cx).await.unwrap();
            }
        });
        assert_eq!(hops.load(Ordering::SeqCst), LAPS * TASKS as u64);
        // Every poll of a task is a run the workers count (a task can pass
        // more than one lap in one poll: when its worker is preempted right
        // after it posts, the token may come all the way round before it
        // looks at its mailbox again, which is then ready at once).
        let (m, polled) = (rt.metrics(), polls.load(Ordering::SeqCst));
        assert!(polled >= TASKS as u64, "every task was polled");
        assert!(
            m.total_polls() >= polled,
            "the metrics count every poll: {} < {polled}",
            m.total_polls()
        );
    });
}

/// Counts the polls of the future it wraps.
struct CountPolls<F> {
    polls: Arc<AtomicU64>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.as_mut().poll(cx)
    }
}

/// Pending once without registering a waker: only a cancel request (whose
/// wake the kernel delivers) polls it again.
struct UntilWokenByCancel(bool);

impl Future for UntilWokenByCancel {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

#[test]
fn cancelled_tasks_go_to_the_cancel_lane_and_ready_work_is_served_within_the_streak_limit() {
    const CANCELLED: usize = 200;
    const CLEANUP_YIELDS: usize = 40;
    with_watchdog("cancel lane", || {
        let rt = RuntimeBuilder::new()
            .worker_threads(1)
            .cleanup_grace(Duration::from_secs(30))
            .build()
            .unwrap();
        let ticks = Arc::new(AtomicU64::new(0));
        let parked = Arc::new(AtomicUsize::new(0));
        let ticks2 = ticks.clone();
        let (ticks_at_cancel, ticks_after_cleanup) = rt.block_on(|cx| async move {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (t, s) = (ticks2.clone(), stop.clone());
            // Ready-lane work: a ticker that yields forever until stopped.
            let ticker = cx
                .spawn(move |_| async move {
                    while !s.load(Ordering::SeqCst) {
                        t.fetch_add(1, Ordering::SeqCst);
                        yield_now().await;
                    }
                })
                .unwrap();
            let mut victims = Vec::new();
            for _ in 0..CANCELLED {
                let parked = parked.clone();
                victims.push(
                    cx.spawn(move |cx| async move {
                        parked.fetch_add(1, Ordering::SeqCst);
                        UntilWokenByCancel(false).await;
                        assert!(cx.is_cancel_requested());
                        // A long cleanup: every re-poll is cancel-lane work.
                        for _ in 0..CLEANUP_YIELDS {
                            yield_now().await;
                        }
                    })
                    .unwrap(),
                );
            }
            while parked.load(Ordering::SeqCst) < CANCELLED {
                yield_now().await;
            }
            let at_cancel = ticks2.load(Ordering::SeqCst);
            for v in &victims {
                v.abort();
            }
            for v in victims {
                let _ = v.join(&cx).await;
            }
            let after = ticks2.load(Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
            ticker.join(&cx).await.unwrap();
            (at_cancel, after)
        });
        let m = rt.metrics();
        let w = m.workers[0];
        assert!(
            w.cancel_lane_dispatches >= (CANCELLED * CLEANUP_YIELDS) as u64,
            "cleanup polls ran in the cancel lane: {w:?}"
        );
        assert!(w.max_cancel_streak <= 16, "streak above the limit: {w:?}");
        assert_eq!(
            w.max_cancel_streak, 16,
            "the streak limit was reached: {w:?}"
        );
        // The ticker kept getting dispatches while cleanup dominated: at
        // least one per limit + 1 = 17 dispatches (minus slack for the
        // dispatches of the root's own wakes).
        let during = ticks_after_cleanup - ticks_at_cancel;
        let cleanup = (CANCELLED * CLEANUP_YIELDS) as u64;
        assert!(
            during * 17 >= cleanup / 2,
            "ready work starved: {during} ticks during {cleanup} cleanup polls ({w:?})"
        );
    });
}

#[test]
fn metrics_counters_move_on_both_drivers() {
    with_watchdog("metrics", || {
        let current = RuntimeBuilder::current_thread().build().unwrap();
        let multi = RuntimeBuilder::new().worker_threads(2).build().unwrap();
        assert_eq!(current.metrics().workers.len(), 1);
        assert_eq!(multi.metrics().workers.len(), 2);
        for rt in [current, multi] {
            let before = rt.metrics();
            assert_eq!(before.total_polls(), 0);
            rt.block_on(|cx| async move {
                let mut hs = Vec::new();
                for i in 0..32u64 {
                    hs.push(
                        cx.spawn(move |_| async move {
                            yield_now().await;
                            i
                        })
                        .unwrap(),
                    );
                }
                for h in hs {
                    h.join(&cx).await.unwrap();
                }
            });
            let after = rt.metrics();
            assert!(after.total_polls() >= 64, "{after:?}");
            if after.workers.len() > 1 {
                // Idle workers park once their short spin finds nothing (a
                // worker may still be spinning, or not yet scheduled, when
                // `block_on` returns: wait for the counter itself; a worker
                // that never parks hangs here, which the watchdog reports).
                let parked = || rt.metrics().workers.iter().map(|w| w.parks).sum::<u64>();
                while parked() == 0 {
                    std::thread::yield_now();
                }
            }
            assert!(after.workers.iter().all(|w| w.cancel_lane_dispatches == 0));
        }
    });
}

#[test]
fn tasks_with_a_budget_deadline_run_in_the_timed_lane_without_starving_ready_work() {
    const TIMED: usize = 8;
    const YIELDS: u64 = 50;
    with_watchdog("timed lane", || {
        let rt = RuntimeBuilder::new().worker_threads(1).build().unwrap();
        let ticks = Arc::new(AtomicU64::new(0));
        let t2 = ticks.clone();
        let during = rt.block_on(|cx| async move {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (t, s) = (t2.clone(), stop.clone());
            let ticker = cx
                .spawn(move |_| async move {
                    while !s.load(Ordering::SeqCst) {
                        t.fetch_add(1, Ordering::SeqCst);
                        yield_now().await;
                    }
                })
                .unwrap();
            let far = cx.now() + Duration::from_secs(3600);
            let before = t2.load(Ordering::SeqCst);
            let mut timed = Vec::new();
            for i in 0..TIMED {
                let budget =
                    asupersync::Budget::new().with_deadline(far + Duration::from_millis(i as u64));
                timed.push(
                    cx.spawn_with_budget(budget, |_| async move {
                        for _ in 0..YIELDS {
                            yield_now().await;
                        }
                    })
                    .unwrap(),
                );
            }
            for h in timed {
                h.join(&cx).await.unwrap();
            }
            let during = t2.load(Ordering::SeqCst) - before;
            stop.store(true, Ordering::SeqCst);
            ticker.join(&cx).await.unwrap();
            during
        });
        let w = rt.metrics().workers[0];
        // Every poll after the first (which registers the deadline) is a
        // timed-lane dispatch.
        assert!(
            w.timed_lane_dispatches >= TIMED as u64 * YIELDS,
            "deadline tasks ran in the timed lane: {w:?}"
        );
        // The ticker got at least one dispatch per limit + 1.
        assert!(
            during * 17 >= TIMED as u64 * YIELDS / 2,
            "ready work starved: {during} ticks ({w:?})"
        );
    });
}

#[test]
fn cancelled_tasks_are_dispatched_by_cleanup_priority_most_severe_first() {
    use asupersync::types::cancel::{CancelKind, CancelReason};
    with_watchdog("cancel lane priority", || {
        let rt = RuntimeBuilder::new().worker_threads(1).build().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let kinds = [
            CancelKind::User,
            CancelKind::FailFast,
            CancelKind::Shutdown,
            CancelKind::Deadline,
            CancelKind::User,
            CancelKind::Shutdown,
            CancelKind::ParentCancelled,
        ];
        let order2 = order.clone();
        rt.block_on(move |cx| async move {
            let parked = Arc::new(AtomicUsize::new(0));
            let mut victims = Vec::new();
            for (i, _) in kinds.iter().enumerate() {
                let (parked, order) = (parked.clone(), order2.clone());
                victims.push(
                    cx.spawn(move |_| async move {
                        parked.fetch_add(1, Ordering::SeqCst);
                        UntilWokenByCancel(false).await;
                        order.lock().unwrap().push(i);
                    })
                    .unwrap(),
                );
            }
            while parked.load(Ordering::SeqCst) < kinds.len() {
                yield_now().await;
            }
            // Occupy the only worker while every cancel request lands, so
            // the lane's order (not arrival order) decides the dispatches.
            let (busy, release) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let (b, r) = (busy.clone(), release.clone());
            let blocker = cx
                .spawn(move |_| async move {
                    b.store(1, Ordering::SeqCst);
                    while r.load(Ordering::SeqCst) == 0 {
                        std::hint::spin_loop();
                    }
                })
                .unwrap();
            while busy.load(Ordering::SeqCst) == 0 {
                std::hint::spin_loop();
            }
            for (v, kind) in victims.iter().zip(kinds) {
                v.abort_with(CancelReason::new(kind));
            }
            release.store(1, Ordering::SeqCst);
            blocker.join(&cx).await.unwrap();
            for v in victims {
                let _ = v.join(&cx).await;
            }
        });
        // Shutdown (5), ParentCancelled (4), FailFast (3), Deadline (1),
        // User (0); FIFO within a tier.
        assert_eq!(*order.lock().unwrap(), vec![2, 5, 6, 1, 3, 0, 4]);
    });
}
