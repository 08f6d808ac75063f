//! Wakeups: wakers woken from plain OS threads, self-wakes during a poll
//! (rule W2), duplicate wakes (W1), wakes of completed tasks (W4), and
//! `yield_now` fairness.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use asupersync::{Cx, yield_now};
use support::{Gate, SOON, for_each_driver, yield_until};

// ----- a future completed by a plain std::thread ---------------------------

#[derive(Default)]
struct Shared {
    done: bool,
    waker: Option<Waker>,
}

/// Reads a park count of a runtime (`Runtime::metrics`).
type Parks = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Hands its waker to a freshly spawned std::thread, which sets the flag and
/// wakes it. Optionally the thread first waits for the runtime to park.
struct ThreadWake {
    shared: Arc<Mutex<Shared>>,
    started: bool,
    /// If set, the thread waits until the runtime has parked (the count
    /// moved past its value at the poll) before waking, so the wake has to
    /// unpark it.
    after_park: Option<Parks>,
    polls: u32,
}

impl ThreadWake {
    fn new(after_park: Option<Parks>) -> Self {
        Self {
            shared: Arc::default(),
            started: false,
            after_park,
            polls: 0,
        }
    }
}

/// Waits until `parks` moves past `before`: the runtime parked after the
/// poll, so the wake that follows has to unpark it. No time limit: a
/// runtime that never parks cannot show what the test is about, so it
/// hangs here and the test's watchdog fails it.
fn wait_for_a_park(parks: &Parks, before: u64) {
    while parks() == before {
        std::thread::yield_now();
    }
}

impl Future for ThreadWake {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        self.polls += 1;
        {
            let mut s = self.shared.lock().unwrap();
            if s.done {
                return Poll::Ready(self.polls);
            }
            s.waker = Some(cx.waker().clone());
        }
        if !self.started {
            self.started = true;
            let shared = self.shared.clone();
            // Read while this poll runs: the runtime cannot have parked yet.
            let after_park = self.after_park.clone().map(|p| {
                let before = p();
                (p, before)
            });
            std::thread::spawn(move || {
                if let Some((parks, before)) = after_park {
                    wait_for_a_park(&parks, before);
                }
                let w = {
                    let mut s = shared.lock().unwrap();
                    s.done = true;
                    s.waker.take()
                };
                w.expect("the future registered a waker before starting the thread")
                    .wake();
            });
        }
        Poll::Pending
    }
}

#[test]
fn a_waker_woken_from_a_plain_thread_completes_the_task() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let h = cx.spawn(|_| ThreadWake::new(None)).unwrap();
            let polls = h.join(&cx).await.unwrap();
            assert!(polls >= 2, "[{name}]");
            // The root future itself, woken from a thread.
            let polls = ThreadWake::new(None).await;
            assert!(polls >= 2, "[{name}]");
        });
    });
}

#[test]
fn a_wake_from_a_plain_thread_unparks_an_idle_runtime() {
    for_each_driver(|name, rt| {
        let rt = Arc::new(rt);
        // Spawned tasks run on the workers (the current-thread runtime's one
        // worker is the `block_on` thread); the root runs on the `block_on`
        // thread, whose parks are counted separately on the multi-thread
        // runtime.
        let counter = rt.clone();
        let parks: Parks =
            Arc::new(move || counter.metrics().workers.iter().map(|w| w.parks).sum());
        let counter = rt.clone();
        let root_parks: Parks = Arc::new(move || counter.metrics().block_on_parks);
        rt.block_on(|cx: Cx| async move {
            // Every task (and the root, via join) is parked on a foreign
            // wake; no timers exist, so the driver parks without a timeout,
            // and each wake comes only after a park.
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let parks = parks.clone();
                    cx.spawn(move |_| ThreadWake::new(Some(parks))).unwrap()
                })
                .collect();
            for h in hs {
                h.join(&cx).await.unwrap();
            }
            let polls = ThreadWake::new(Some(root_parks)).await;
            assert!(polls >= 2, "[{name}]");
        });
    });
}

// ----- stress: many tasks, many foreign wakes -------------------------------

type WakeRequest = Arc<Mutex<Shared>>;

/// Completes once a waker thread from the pool has processed its request.
struct PoolWake {
    shared: WakeRequest,
    pool: mpsc::Sender<WakeRequest>,
    sent: bool,
}

impl Future for PoolWake {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut s = self.shared.lock().unwrap();
            if s.done {
                return Poll::Ready(());
            }
            s.waker = Some(cx.waker().clone());
        }
        if !self.sent {
            self.sent = true;
            let req = self.shared.clone();
            self.pool.send(req).expect("waker pool alive");
        }
        Poll::Pending
    }
}

/// `threads` plain OS threads that complete wake requests. Each wakes twice
/// (once by reference, once by value) to exercise duplicate wakes (W1), and
/// keeps every waker to wake it again after the runtime is done (W4).
struct WakerPool {
    tx: Option<mpsc::Sender<WakeRequest>>,
    threads: Vec<std::thread::JoinHandle<Vec<Waker>>>,
    woken: Arc<AtomicUsize>,
}

impl WakerPool {
    fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<WakeRequest>();
        let rx = Arc::new(Mutex::new(rx));
        let woken = Arc::new(AtomicUsize::new(0));
        let threads = (0..threads)
            .map(|_| {
                let (rx, woken) = (rx.clone(), woken.clone());
                std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    loop {
                        let req = match rx.lock().unwrap().recv() {
                            Ok(r) => r,
                            Err(_) => return kept,
                        };
                        let w = {
                            let mut s = req.lock().unwrap();
                            s.done = true;
                            s.waker.take().expect("registered before the request")
                        };
                        // Counted before waking: the wake may end the run.
                        woken.fetch_add(1, Ordering::SeqCst);
                        w.wake_by_ref();
                        w.wake_by_ref();
                        if kept.len() < 64 {
                            kept.push(w);
                        } else {
                            w.wake();
                        }
                    }
                })
            })
            .collect();
        Self {
            tx: Some(tx),
            threads,
            woken,
        }
    }

    fn sender(&self) -> mpsc::Sender<WakeRequest> {
        self.tx.as_ref().unwrap().clone()
    }

    /// Stops the threads and returns the wakers they kept.
    fn finish(mut self) -> Vec<Waker> {
        drop(self.tx.take());
        self.threads
            .drain(..)
            .flat_map(|t| t.join().expect("waker thread"))
            .collect()
    }
}

#[test]
fn stress_every_task_woken_from_plain_threads_completes() {
    for_each_driver(|name, rt| {
        const TASKS: usize = 64;
        const WAKES: usize = 60;
        let pool = WakerPool::new(3);
        let completed = Arc::new(AtomicUsize::new(0));
        let spawned = Arc::new(AtomicUsize::new(0));
        let (c2, s2) = (completed.clone(), spawned.clone());
        let tx = pool.sender();
        rt.block_on(move |cx: Cx| async move {
            for _ in 0..TASKS {
                let (c, tx) = (c2.clone(), tx.clone());
                let _ = cx
                    .spawn(move |_| async move {
                        for _ in 0..WAKES {
                            PoolWake {
                                shared: Arc::default(),
                                pool: tx.clone(),
                                sent: false,
                            }
                            .await;
                        }
                        c.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                s2.fetch_add(1, Ordering::SeqCst);
            }
        });
        assert_eq!(
            completed.load(Ordering::SeqCst),
            spawned.load(Ordering::SeqCst),
            "[{name}] completions == spawned"
        );
        assert_eq!(completed.load(Ordering::SeqCst), TASKS, "[{name}]");
        assert_eq!(pool.woken.load(Ordering::SeqCst), TASKS * WAKES, "[{name}]");
        let stats = rt.stats();
        assert_eq!(
            stats.tasks_spawned, stats.tasks_completed,
            "[{name}] {stats:?}"
        );
        // W4: waking completed tasks (from several threads, many times) is
        // harmless and schedules nothing.
        let kept = pool.finish();
        assert!(!kept.is_empty());
        std::thread::scope(|s| {
            for chunk in kept.chunks(16) {
                s.spawn(move || {
                    for _ in 0..10 {
                        for w in chunk {
                            w.wake_by_ref();
                        }
                    }
                });
            }
        });
        // The runtime is still fine afterwards.
        assert_eq!(rt.block_on(|_cx: Cx| async { 3 }), 3, "[{name}]");
        assert_eq!(rt.live_tasks(), 0, "[{name}]");
    });
}

// ----- W2: woken while running ---------------------------------------------

/// Wakes itself `wakes_per_poll` times during each of its first `n - 1`
/// polls, then completes. Returns how often it was polled.
struct SelfWake {
    polls: Arc<AtomicU32>,
    n: u32,
    wakes_per_poll: u32,
}

impl Future for SelfWake {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let p = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
        if p >= self.n {
            return Poll::Ready(p);
        }
        for _ in 0..self.wakes_per_poll {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[test]
fn a_task_that_wakes_itself_during_its_poll_is_polled_again_exactly_once_per_wake_round() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            for wakes_per_poll in [1, 3] {
                let mut hs = Vec::new();
                let mut counters = Vec::new();
                for _ in 0..16 {
                    let polls = Arc::new(AtomicU32::new(0));
                    counters.push(polls.clone());
                    hs.push(
                        cx.spawn(move |_| SelfWake {
                            polls,
                            n: 100,
                            wakes_per_poll,
                        })
                        .unwrap(),
                    );
                }
                for h in hs {
                    assert_eq!(h.join(&cx).await.unwrap(), 100, "[{name}]");
                }
                for c in counters {
                    assert_eq!(
                        c.load(Ordering::SeqCst),
                        100,
                        "[{name}] {wakes_per_poll} wakes during one poll must cause exactly one \
                         re-poll (W1: queued at most once; W2: never lost)"
                    );
                }
            }
            // The root future too.
            let polls = Arc::new(AtomicU32::new(0));
            let p = SelfWake {
                polls: polls.clone(),
                n: 50,
                wakes_per_poll: 2,
            }
            .await;
            assert_eq!(p, 50, "[{name}] root self-wake");
        });
    });
}

/// During each of its first `n - 1` polls, hands its waker to a helper
/// thread and blocks until the helper has called `wake`: the wake lands
/// while the task is RUNNING, so only rule W2 gets it polled again.
struct WokenWhileRunning {
    helper: mpsc::Sender<(Waker, mpsc::Sender<()>)>,
    polls: u32,
    n: u32,
}

impl Future for WokenWhileRunning {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        self.polls += 1;
        if self.polls >= self.n {
            return Poll::Ready(self.polls);
        }
        let (done_tx, done_rx) = mpsc::channel();
        self.helper
            .send((cx.waker().clone(), done_tx))
            .expect("helper alive");
        done_rx.recv().expect("helper woke us");
        Poll::Pending
    }
}

#[test]
fn a_task_woken_from_another_thread_while_running_is_polled_again() {
    for_each_driver(|name, rt| {
        let (tx, rx) = mpsc::channel::<(Waker, mpsc::Sender<()>)>();
        let helper = std::thread::spawn(move || {
            let mut n = 0usize;
            while let Ok((w, done)) = rx.recv() {
                w.wake();
                n += 1;
                let _ = done.send(());
            }
            n
        });
        let tx2 = tx.clone();
        rt.block_on(move |cx: Cx| async move {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let helper = tx2.clone();
                    cx.spawn(move |_| WokenWhileRunning {
                        helper,
                        polls: 0,
                        n: 40,
                    })
                    .unwrap()
                })
                .collect();
            for h in hs {
                assert_eq!(h.join(&cx).await.unwrap(), 40, "[{name}]");
            }
            let root = WokenWhileRunning {
                helper: tx2.clone(),
                polls: 0,
                n: 20,
            }
            .await;
            assert_eq!(root, 20, "[{name}] the root task too");
        });
        drop(tx);
        assert_eq!(helper.join().unwrap(), 8 * 39 + 19, "[{name}]");
    });
}

// ----- yield_now -------------------------------------------------------------

#[test]
fn yield_now_interleaves_tasks_round_robin_on_the_current_thread_driver() {
    let rt = support::Driver::CurrentThread.rt();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    rt.block_on(move |cx: Cx| async move {
        let mut hs = Vec::new();
        for who in ["a", "b", "c"] {
            let log = l2.clone();
            hs.push(
                cx.spawn(move |_| async move {
                    for i in 0..3 {
                        log.lock().unwrap().push(format!("{who}{i}"));
                        yield_now().await;
                    }
                })
                .unwrap(),
            );
        }
        for h in hs {
            h.join(&cx).await.unwrap();
        }
    });
    assert_eq!(
        *log.lock().unwrap(),
        ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"],
        "a yielding task goes behind the tasks that are already runnable"
    );
}

#[test]
fn a_task_spinning_on_yield_now_lets_the_task_it_waits_for_run() {
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let flag = Arc::new(AtomicBool::new(false));
            // More spinners than workers, spawned before the setter.
            let mut hs = Vec::new();
            for _ in 0..4 {
                let f = flag.clone();
                hs.push(
                    cx.spawn(move |_| async move {
                        yield_until("the setter", SOON, || f.load(Ordering::SeqCst)).await;
                    })
                    .unwrap(),
                );
            }
            let f = flag.clone();
            let setter = cx
                .spawn(move |_| async move { f.store(true, Ordering::SeqCst) })
                .unwrap();
            for h in hs {
                h.join(&cx).await.unwrap();
            }
            setter.join(&cx).await.unwrap();
            // The root task spinning on yield_now lets a spawned task run.
            let done = Gate::new();
            let d = done.clone();
            let _ = cx.spawn(move |_| async move { d.open() }).unwrap();
            yield_until("the spawned task", SOON, || done.is_open()).await;
            let _ = name;
        });
    });
}

#[test]
fn yield_now_completes_on_its_second_poll() {
    for_each_driver(|name, rt| {
        rt.block_on(|_cx: Cx| async move {
            let mut y = yield_now();
            assert!(support::poll_once(&mut y).await.is_pending(), "[{name}]");
            assert!(support::poll_once(&mut y).await.is_ready(), "[{name}]");
        });
    });
}

// ----- racing wakes from many threads ----------------------------------------

/// On every poll, hands a waker clone to each of the `wakers` threads (which
/// all wake it at once, racing with the end of the poll) and checks that it
/// is never polled concurrently with itself.
struct Racy {
    wakers: Vec<mpsc::Sender<Waker>>,
    in_poll: Arc<AtomicBool>,
    polls: u32,
    rounds: u32,
}

impl Future for Racy {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        assert!(
            !self.in_poll.swap(true, Ordering::SeqCst),
            "a task was polled concurrently with itself"
        );
        self.polls += 1;
        let out = if self.polls >= self.rounds {
            Poll::Ready(self.polls)
        } else {
            for tx in &self.wakers {
                tx.send(cx.waker().clone()).expect("waker thread alive");
            }
            // Stay in the poll a little so that some wakes land while the
            // task is RUNNING and some after it went IDLE.
            for _ in 0..(self.polls % 7) * 200 {
                std::hint::spin_loop();
            }
            Poll::Pending
        };
        self.in_poll.store(false, Ordering::SeqCst);
        out
    }
}

#[test]
fn racing_wakes_from_many_threads_never_poll_a_task_concurrently_or_lose_it() {
    for_each_driver(|name, rt| {
        let mut txs = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = mpsc::channel::<Waker>();
            txs.push(tx);
            threads.push(std::thread::spawn(move || {
                while let Ok(w) = rx.recv() {
                    w.wake_by_ref();
                    w.wake();
                }
            }));
        }
        let txs2 = txs.clone();
        let total = rt.block_on(move |cx: Cx| async move {
            let hs: Vec<_> = (0..12)
                .map(|_| {
                    let wakers = txs2.clone();
                    cx.spawn(move |_| Racy {
                        wakers,
                        in_poll: Arc::default(),
                        polls: 0,
                        rounds: 150,
                    })
                    .unwrap()
                })
                .collect();
            let mut total = 0;
            for h in hs {
                total += h.join(&cx).await.expect("no task panicked");
            }
            total
        });
        assert_eq!(total, 12 * 150, "[{name}]");
        drop(txs);
        for t in threads {
            t.join().unwrap();
        }
    });
}

#[test]
fn a_task_woken_from_another_thread_runs_while_local_tasks_yield_in_a_loop() {
    // The yielders keep the driver's local queue non-empty forever; the task
    // woken from a plain thread must still get dispatched (the injector's
    // turn comes every so many dispatches), and it stops them.
    for_each_driver(|name, rt| {
        rt.block_on(|cx: Cx| async move {
            let stop = Arc::new(AtomicBool::new(false));
            let mut yielders = Vec::new();
            for _ in 0..3 {
                let stop = stop.clone();
                yielders.push(
                    cx.spawn(move |_| async move {
                        let mut rounds = 0u64;
                        while !stop.load(Ordering::SeqCst) {
                            yield_now().await;
                            rounds += 1;
                        }
                        rounds
                    })
                    .unwrap(),
                );
            }
            let s = stop.clone();
            let woken = cx
                .spawn(move |_| async move {
                    let polls = ThreadWake::new(None).await;
                    s.store(true, Ordering::SeqCst);
                    polls
                })
                .unwrap();
            assert!(woken.join(&cx).await.unwrap() >= 2, "[{name}]");
            for y in yielders {
                y.join(&cx).await.unwrap();
            }
        });
    });
}
