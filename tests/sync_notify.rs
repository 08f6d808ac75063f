//! `sync::Notify`: permit storage, broadcast, FIFO, cancellation.
//!
//! Rules under test (src/sync/notify.rs): N1 one stored permit at most; N2
//! `notify_waiters` wakes the current waiters (and futures created before
//! it) and stores nothing; N3 FIFO; N4 a cancelled wait returns `Err` and
//! leaves the queue, a served one returns `Ok`; N5 a `notify_one` handed to
//! a waiter that is dropped uncollected is passed on. The queue is intrusive
//! (src/sync/waiters.rs, WL1–WL6): a model-based run of 10,000 futures and
//! a forgotten future check it through `Notify`.

mod support;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::task::Waker;
use std::time::Duration;

use asupersync::lab::{ChaosConfig, ExploreConfig, InjectionConfig, LabConfig, LabRuntime};
use asupersync::sync::Notify;
use asupersync::time::{sleep, timeout};
use asupersync::{Cx, RuntimeBuilder, yield_now};
use support::{SOON, XorShift, for_each_driver, poll_once, with_watchdog, yield_until};

/// Yields until `cond` holds (lab-friendly: no wall clock).
async fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        yield_now().await;
    }
}

fn lab(seed: u64) -> LabRuntime {
    LabRuntime::new(LabConfig::new(seed))
}

// ===== semantics on both drivers ==========================================

#[test]
fn notify_one_wakes_a_task_that_is_waiting() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let notify = Arc::new(Notify::new());
            let n = notify.clone();
            let waiter = cx
                .spawn(move |cx| async move { n.notified(&cx).await })
                .unwrap();
            yield_until("the waiter registered", SOON, || notify.waiters() == 1).await;
            notify.notify_one();
            assert!(waiter.join(&cx).await.unwrap().is_ok(), "[{name}]");
            assert!(!notify.has_permit(), "[{name}] the waiter consumed it");
        });
    });
}

#[test]
fn notify_one_with_nobody_waiting_stores_one_permit_and_only_one() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let notify = Notify::new();
            notify.notify_one();
            notify.notify_one();
            notify.notify_one();
            assert!(notify.has_permit());
            // The first wait passes at once, consuming the permit...
            notify.notified(&cx).await.unwrap();
            assert!(!notify.has_permit(), "[{name}]");
            // ...and the second blocks: three notifies stored one permit.
            let mut second = Box::pin(notify.notified(&cx));
            assert!(poll_once(&mut second).await.is_pending(), "[{name}]");
            assert_eq!(notify.waiters(), 1);
            notify.notify_one();
            assert!(matches!(poll_once(&mut second).await, Poll::Ready(Ok(()))));
        });
    });
}

#[test]
fn notify_waiters_wakes_every_current_waiter_and_stores_no_permit() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            const K: usize = 5;
            let notify = Arc::new(Notify::new());
            let mut handles = Vec::new();
            for _ in 0..K {
                let n = notify.clone();
                handles.push(
                    cx.spawn(move |cx| async move { n.notified(&cx).await })
                        .unwrap(),
                );
            }
            yield_until("all waiters registered", SOON, || notify.waiters() == K).await;
            notify.notify_waiters();
            assert_eq!(notify.waiters(), 0, "[{name}]");
            for h in handles {
                assert!(h.join(&cx).await.unwrap().is_ok(), "[{name}]");
            }
            assert!(
                !notify.has_permit(),
                "[{name}] notify_waiters stores no permit"
            );
            let mut later = Box::pin(notify.notified(&cx));
            assert!(poll_once(&mut later).await.is_pending(), "[{name}]");
        });
    });
}

#[test]
fn a_notified_future_created_before_notify_waiters_completes_even_if_not_yet_polled() {
    for_each_driver(|_name, rt| {
        rt.block_on(|cx: Cx| async move {
            let notify = Notify::new();
            let before = notify.notified(&cx);
            notify.notify_waiters();
            let after = Box::pin(notify.notified(&cx));
            before.await.unwrap();
            let mut after = after;
            assert!(
                poll_once(&mut after).await.is_pending(),
                "created after: not covered"
            );
        });
    });
}

#[test]
fn a_cancelled_waiter_returns_err_acknowledges_and_joins_as_cancelled() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let notify = Arc::new(Notify::new());
            let saw = Arc::new(Mutex::new(None));
            let (n, s) = (notify.clone(), saw.clone());
            let waiter = cx
                .spawn(move |cx| async move {
                    let r = n.notified(&cx).await;
                    *s.lock().unwrap() = Some(r.is_err());
                })
                .unwrap();
            yield_until("the waiter registered", SOON, || notify.waiters() == 1).await;
            waiter.abort();
            let joined = waiter.join(&cx).await;
            assert!(joined.unwrap_err().is_cancelled(), "[{name}]");
            assert_eq!(
                *saw.lock().unwrap(),
                Some(true),
                "[{name}] the wait returned Err"
            );
            assert_eq!(notify.waiters(), 0, "[{name}] it left the queue");
            // Nothing was consumed: a later notify_one is stored.
            notify.notify_one();
            assert!(notify.has_permit(), "[{name}]");
        });
    });
}

#[test]
fn a_waiter_dropped_after_notify_one_passes_the_notification_to_the_next_waiter() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let notify = Notify::new();
            let mut a = Box::pin(notify.notified(&cx));
            let mut b = Box::pin(notify.notified(&cx));
            assert!(poll_once(&mut a).await.is_pending());
            assert!(poll_once(&mut b).await.is_pending());
            notify.notify_one(); // serves `a` (FIFO)
            drop(a); // ...which never looks at it
            assert!(
                matches!(poll_once(&mut b).await, Poll::Ready(Ok(()))),
                "[{name}] b inherited a's notification"
            );
            assert!(!notify.has_permit(), "[{name}] passed on, not duplicated");
        });
    });
}

#[test]
fn a_waiter_dropped_after_notify_one_with_nobody_behind_it_restores_the_permit() {
    for_each_driver(|_name, rt| {
        rt.block_on(|cx: Cx| async move {
            let notify = Notify::new();
            let mut a = Box::pin(notify.notified(&cx));
            assert!(poll_once(&mut a).await.is_pending());
            notify.notify_one();
            assert!(!notify.has_permit(), "handed to a, not stored");
            drop(a);
            assert!(notify.has_permit(), "no notify_one is lost");
        });
    });
}

#[test]
fn a_waiter_dropped_after_notify_waiters_does_not_pass_it_on() {
    for_each_driver(|_name, rt| {
        rt.block_on(|cx: Cx| async move {
            let notify = Notify::new();
            let mut a = Box::pin(notify.notified(&cx));
            assert!(poll_once(&mut a).await.is_pending());
            notify.notify_waiters();
            let mut b = Box::pin(notify.notified(&cx));
            assert!(poll_once(&mut b).await.is_pending());
            drop(a);
            assert!(
                poll_once(&mut b).await.is_pending(),
                "b came after the broadcast"
            );
            assert!(!notify.has_permit());
        });
    });
}

#[test]
fn a_waiter_whose_wait_times_out_leaves_the_queue() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let notify = Notify::new();
            let r = timeout(&cx, Duration::from_millis(5), notify.notified(&cx)).await;
            assert!(r.is_err(), "[{name}] nothing notified it");
            assert_eq!(notify.waiters(), 0, "[{name}]");
        });
    });
}

// ===== FIFO and cancellation in the lab (deterministic) ===================

/// Spawns `k` waiters that register in a known order, then serves them one
/// `notify_one` at a time, each only after the previous one was observed.
/// Returns (registration order, service order).
async fn fifo_program(cx: Cx, k: usize, cancel: Option<usize>) -> (Vec<usize>, Vec<usize>) {
    let notify = Arc::new(Notify::new());
    let registered = Arc::new(Mutex::new(Vec::new()));
    let served = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for i in 0..k {
        let (n, r, s) = (notify.clone(), registered.clone(), served.clone());
        handles.push(
            cx.spawn(move |cx| async move {
                // The push and the first poll of the wait happen in one
                // dispatch: the log order is the registration order.
                r.lock().unwrap().push(i);
                if n.notified(&cx).await.is_ok() {
                    s.lock().unwrap().push(i);
                }
            })
            .unwrap(),
        );
    }
    until(|| notify.waiters() == k).await;
    if let Some(c) = cancel {
        let victim = registered.lock().unwrap()[c];
        handles[victim].abort();
        until(|| notify.waiters() == k - 1).await;
    }
    let expected = k - usize::from(cancel.is_some());
    for round in 0..expected {
        notify.notify_one();
        until(|| served.lock().unwrap().len() == round + 1).await;
    }
    for h in handles {
        let _ = h.join(&cx).await;
    }
    assert!(!notify.has_permit());
    let r = registered.lock().unwrap().clone();
    let s = served.lock().unwrap().clone();
    (r, s)
}

#[test]
fn notify_one_serves_waiters_in_registration_order() {
    for seed in 0..20 {
        let lab = lab(seed);
        let (registered, served) = lab.block_on(|cx| fifo_program(cx, 6, None));
        assert_eq!(served, registered, "seed {seed}");
        lab.oracle_report().assert_passed();
    }
}

#[test]
fn a_cancelled_waiter_leaves_the_queue_and_the_others_are_served_in_order() {
    for seed in 0..20 {
        let lab = lab(seed);
        let victim = (seed as usize) % 6;
        let (registered, served) = lab.block_on(|cx| fifo_program(cx, 6, Some(victim)));
        let mut expected = registered.clone();
        expected.remove(victim);
        assert_eq!(
            served, expected,
            "seed {seed}: cancelled registration #{victim}"
        );
        lab.oracle_report().assert_passed();
    }
}

/// Every waiter waits twice; the root serves one waiter at a time and waits
/// until the served one reports back. Each `(task, round)` wait is logged
/// when it registers, when it is served and when it is cancelled.
async fn injection_program(cx: Cx) {
    const K: usize = 3;
    const ROUNDS: usize = 2;
    let notify = Arc::new(Notify::new());
    let registered = Arc::new(Mutex::new(Vec::new()));
    let served = Arc::new(Mutex::new(Vec::new()));
    let cancelled = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..K {
        let (n, r, s, c, d) = (
            notify.clone(),
            registered.clone(),
            served.clone(),
            cancelled.clone(),
            done.clone(),
        );
        handles.push(
            cx.spawn(move |cx| async move {
                for round in 0..ROUNDS {
                    r.lock().unwrap().push((i, round));
                    match n.notified(&cx).await {
                        Ok(()) => s.lock().unwrap().push((i, round)),
                        Err(_) => {
                            c.lock().unwrap().push((i, round));
                            break;
                        }
                    }
                }
                d.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap(),
        );
    }
    let mut notifies = 0;
    while done.load(Ordering::SeqCst) < K {
        if notify.waiters() > 0 {
            let before = served.lock().unwrap().len();
            notify.notify_one();
            notifies += 1;
            // A served waiter always reports Ok (N4), even if cancelled.
            until(|| served.lock().unwrap().len() > before).await;
        } else {
            yield_now().await;
        }
    }
    for h in handles {
        let _ = h.join(&cx).await;
    }
    let registered = registered.lock().unwrap().clone();
    let served = served.lock().unwrap().clone();
    let cancelled = cancelled.lock().unwrap().clone();
    // No notify_one lost or duplicated.
    assert_eq!(
        served.len(),
        notifies,
        "every notify_one served exactly one waiter"
    );
    assert!(!notify.has_permit(), "nothing left over");
    assert_eq!(notify.waiters(), 0, "nobody left in the queue");
    // FIFO among the survivors.
    let expected: Vec<_> = registered
        .iter()
        .filter(|w| !cancelled.contains(w))
        .copied()
        .collect();
    assert_eq!(served, expected, "served out of registration order");
    assert!(cancelled.len() <= 1, "only the injected task is cancelled");
}

#[test]
fn cancellation_injected_at_every_await_point_loses_no_notification_and_keeps_fifo_order() {
    for seed in [1, 2, 3, 4] {
        let report = asupersync::lab::cancel_injection(
            InjectionConfig::from_lab_config(LabConfig::new(seed).step_limit(100_000)),
            injection_program,
        );
        assert!(report.passed(), "{report}");
        assert!(report.points_tried().len() >= 6, "{report}");
    }
}

#[test]
fn random_schedules_with_chaos_keep_every_notify_invariant() {
    let report = asupersync::lab::explore(
        ExploreConfig::new().schedules(150).chaos(ChaosConfig {
            cancel: 0.0,
            spurious_wake: 0.05,
            delay: 0.02,
            max_delay: Duration::from_millis(2),
            budget_exhaustion: 0.0,
        }),
        injection_program,
    );
    assert!(report.is_ok(), "{report}");
}

// ===== OS-thread stress ===================================================

/// Races `wait` against a sleep, polling the sleep *first* (a biased
/// select): when both are ready the wait is dropped even if it was already
/// served — exactly the case N5 is about (`timeout` polls its inner future
/// first, so it never drops a served wait).
async fn unless_slept<F: Future>(cx: &Cx, d: Duration, wait: F) -> Option<F::Output> {
    let mut nap = pin!(sleep(cx, d));
    let mut wait = pin!(wait);
    poll_fn(|tcx| {
        if nap.as_mut().poll(tcx).is_ready() {
            return Poll::Ready(None);
        }
        wait.as_mut().poll(tcx).map(Some)
    })
    .await
}

/// What the stress's producer waits for, as a real signal (no busy-wait):
/// notifications received and tasks finished; each change wakes the
/// producer, which re-checks its condition.
#[derive(Default)]
struct Progress {
    received: AtomicUsize,
    finished: AtomicUsize,
    producer: Mutex<Option<Waker>>,
}

impl Progress {
    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }

    fn bump(&self, counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::SeqCst);
        let producer = self.producer.lock().unwrap().take();
        if let Some(w) = producer {
            w.wake();
        }
    }

    /// Resolves once `cond` holds. The waker is stored before the condition
    /// is checked again, and a bump changes its counter before it takes the
    /// waker, so no change is missed.
    async fn until(&self, cond: impl Fn(&Self) -> bool) {
        poll_fn(|tcx| {
            if cond(self) {
                return Poll::Ready(());
            }
            *self.producer.lock().unwrap() = Some(tcx.waker().clone());
            if cond(self) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// Counts a task as finished however it ends (returns, cancelled, dropped).
struct DoneOnDrop(Arc<Progress>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.0.bump(&self.0.finished);
    }
}

/// Wraps a task body so that it is counted as finished however it ends —
/// including when it is cancelled before its first poll (the guard lives in
/// the future, not in the body).
fn counted<F: Future>(progress: Arc<Progress>, body: F) -> impl Future<Output = F::Output> {
    let done = DoneOnDrop(progress);
    async move {
        let _done = done;
        body.await
    }
}

/// `WAITERS` tasks each want `EACH` notifications and wait for them, half
/// the time racing a short sleep (so wait futures are dropped at random,
/// sometimes right after being served); `aborts` of them are aborted at random moments. The
/// producer sends one `notify_one` at a time and waits until it was
/// received (or every task is gone), parked on a real signal (a lost
/// notification hangs it, which the watchdog reports). Exact conservation
/// must hold: `received + stored permit == sent`.
fn conservation_stress(seed: u64, aborts: usize) {
    let rt = RuntimeBuilder::new().worker_threads(4).build().unwrap();
    rt.block_on(move |cx: Cx| async move {
        const WAITERS: usize = 8;
        const EACH: usize = 1000;
        let notify = Arc::new(Notify::new());
        let progress = Arc::new(Progress::default());
        let mut handles = Vec::new();
        for i in 0..WAITERS {
            let (n, progress) = (notify.clone(), progress.clone());
            handles.push(
                cx.spawn(move |cx| {
                    counted(progress.clone(), async move {
                        let mut rng = XorShift::new(seed ^ (0xC0FFEE + i as u64));
                        let mut got = 0;
                        while got < EACH {
                            let wait = n.notified(&cx);
                            let r = if rng.chance(50) {
                                let d = Duration::from_micros(20 + rng.below(300));
                                match unless_slept(&cx, d, wait).await {
                                    Some(r) => r,
                                    None => continue,
                                }
                            } else {
                                wait.await
                            };
                            match r {
                                Ok(()) => {
                                    got += 1;
                                    progress.bump(&progress.received);
                                }
                                Err(_cancelled) => return,
                            }
                        }
                    })
                })
                .unwrap(),
            );
        }
        let mut rng = XorShift::new(seed);
        let mut sent = 0usize;
        let mut aborted = 0;
        while progress.finished() < WAITERS {
            notify.notify_one();
            sent += 1;
            // One notification outstanding at a time, so the single permit
            // never has to absorb two.
            progress
                .until(|p| p.received() == sent || p.finished() == WAITERS)
                .await;
            if aborted < aborts && rng.chance(2) {
                handles[rng.below(WAITERS as u64) as usize].abort();
                aborted += 1;
            }
        }
        for h in handles {
            let _ = h.join(&cx).await;
        }
        let got = progress.received();
        let stored = usize::from(notify.has_permit());
        assert_eq!(
            got + stored,
            sent,
            "received {got} + stored {stored} != sent {sent}"
        );
        assert_eq!(notify.waiters(), 0, "no waiter left behind");
        if aborts == 0 {
            assert_eq!(got, WAITERS * EACH);
        }
    });
}

#[test]
fn stress_on_four_worker_threads_every_notify_one_is_received_despite_dropped_waits() {
    with_watchdog("notify stress", || conservation_stress(0x5EED_0001, 0));
}

#[test]
fn stress_on_four_worker_threads_with_random_aborts_loses_no_notify_one() {
    with_watchdog("notify stress aborts", || {
        conservation_stress(0x5EED_0002, 3);
    });
}

// ===== intrusive waiters: a model of the queue ============================

/// A waker that counts its wakes.
struct WakeCount(AtomicUsize);

impl std::task::Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What the model knows of one `Notified`.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Modelled {
    /// Completed on its first poll (the permit): never registered.
    Immediate,
    Waiting,
    /// Served by `notify_one` (passed on if dropped, N5) or by
    /// `notify_waiters` (not passed on).
    Served {
        one: bool,
    },
}

/// 10,000 `Notified` futures (their waiter nodes inside them, WL1–WL6)
/// are created, notified (one or all), polled and dropped (cancelled) in a
/// seeded random order, and agree with a model of the queue after every
/// step: FIFO service, the permit, N5's pass-on, and each future's waker
/// woken exactly once if it was served and never otherwise.
#[test]
fn ten_thousand_waiters_notified_and_dropped_at_random_follow_the_queue_model() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            const N: usize = 10_000;
            let notify = Notify::new();
            let mut rng = XorShift::new(0x0d15_ea5e);
            let mut futs = Vec::new();
            let mut counts: Vec<Arc<WakeCount>> = Vec::new();
            let mut state: Vec<Modelled> = Vec::new();
            let mut live: Vec<usize> = Vec::new();
            let mut queue = std::collections::VecDeque::new();
            let mut permit = false;
            let (mut completed, mut served_total) = (0usize, 0usize);
            // Serves the model's oldest waiter with a notify_one, or stores
            // the permit (N1, N5).
            let serve_one = |queue: &mut std::collections::VecDeque<usize>,
                             state: &mut Vec<Modelled>,
                             permit: &mut bool| {
                match queue.pop_front() {
                    Some(next) => {
                        state[next] = Modelled::Served { one: true };
                        1
                    }
                    None => {
                        *permit = true;
                        0
                    }
                }
            };
            while futs.len() < N || !live.is_empty() {
                let op = rng.below(100);
                if futs.len() < N && (op < 40 || live.is_empty()) {
                    let id = futs.len();
                    let count = Arc::new(WakeCount(AtomicUsize::new(0)));
                    let waker = Waker::from(count.clone());
                    let mut fut = Box::pin(notify.notified(&cx));
                    let polled = fut
                        .as_mut()
                        .poll(&mut std::task::Context::from_waker(&waker));
                    counts.push(count);
                    futs.push(Some(fut));
                    if std::mem::take(&mut permit) {
                        assert!(matches!(polled, Poll::Ready(Ok(()))), "[{name}] N1");
                        futs[id] = None;
                        state.push(Modelled::Immediate);
                        completed += 1;
                    } else {
                        assert!(polled.is_pending(), "[{name}] registers");
                        state.push(Modelled::Waiting);
                        queue.push_back(id);
                        live.push(id);
                    }
                } else if op < 65 {
                    notify.notify_one();
                    served_total += serve_one(&mut queue, &mut state, &mut permit);
                } else if op < 68 {
                    notify.notify_waiters();
                    for id in queue.drain(..) {
                        state[id] = Modelled::Served { one: false };
                        served_total += 1;
                    }
                } else if !live.is_empty() {
                    let at = rng.below(live.len() as u64) as usize;
                    let id = live[at];
                    if op < 85 {
                        // Dropped: cancelled, or its task went away.
                        live.swap_remove(at);
                        futs[id] = None;
                        match state[id] {
                            Modelled::Waiting => queue.retain(|&q| q != id),
                            Modelled::Served { one: true } => {
                                served_total += serve_one(&mut queue, &mut state, &mut permit);
                            }
                            Modelled::Served { one: false } | Modelled::Immediate => {}
                        }
                    } else {
                        let waker = Waker::from(counts[id].clone());
                        let fut = futs[id].as_mut().expect("live");
                        let polled = fut
                            .as_mut()
                            .poll(&mut std::task::Context::from_waker(&waker));
                        match state[id] {
                            Modelled::Waiting => assert!(polled.is_pending(), "[{name}]"),
                            Modelled::Immediate => unreachable!("completed, not live"),
                            Modelled::Served { .. } => {
                                assert!(matches!(polled, Poll::Ready(Ok(()))), "[{name}]");
                                live.swap_remove(at);
                                futs[id] = None;
                                completed += 1;
                            }
                        }
                    }
                }
                assert_eq!(notify.waiters(), queue.len(), "[{name}] N3: the queue");
                assert_eq!(notify.has_permit(), permit, "[{name}] N1: the permit");
            }
            for (id, count) in counts.iter().enumerate() {
                let served = matches!(state[id], Modelled::Served { .. });
                let woken = count.0.load(Ordering::SeqCst);
                assert_eq!(
                    woken,
                    usize::from(served),
                    "[{name}] waiter {id} woken {woken} times"
                );
            }
            let woken: usize = counts.iter().map(|c| c.0.load(Ordering::SeqCst)).sum();
            assert_eq!(
                woken, served_total,
                "[{name}] each service woke its waiter once"
            );
            assert!(completed > N / 10, "[{name}] many completed ({completed})");
        });
    });
}

/// WL4: a waiting `Notified` whose box is `mem::forget`-ed is never freed
/// (pinning's drop guarantee), so the queue's pointer to it stays valid: the
/// next `notify_one` is handed to it (and lost with it, as with any
/// forgotten future), and the `Notify` goes on working.
#[test]
fn a_forgotten_waiting_future_leaks_its_place_in_the_queue_and_nothing_else() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let notify = Notify::new();
            let mut forgotten = Box::pin(notify.notified(&cx));
            assert!(poll_once(&mut forgotten).await.is_pending());
            std::mem::forget(forgotten);
            let mut next = Box::pin(notify.notified(&cx));
            assert!(poll_once(&mut next).await.is_pending());
            assert_eq!(notify.waiters(), 2, "[{name}]");
            notify.notify_one(); // the forgotten one is first (FIFO)
            assert!(poll_once(&mut next).await.is_pending(), "[{name}]");
            notify.notify_one();
            assert!(matches!(poll_once(&mut next).await, Poll::Ready(Ok(()))));
            assert_eq!(notify.waiters(), 0, "[{name}]");
        });
    });
}
