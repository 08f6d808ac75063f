//! Issue #5: model checks of the task wake state machine (rules W1–W4 in
//! `src/runtime/task_cell.rs`).
//!
//! # Model 1: exhaustive explicit-state check of a transcription
//!
//! `Machine` is a self-contained transcription of `TaskCell::schedule` (the
//! waker side) and `TaskCell::run` (the runner side) over one shared state
//! byte (IDLE / SCHEDULED / RUNNING / NOTIFIED / COMPLETE) and a run queue
//! kept as a multiset (a count of entries of this task). Every atomic
//! operation is one step: the `load` in `schedule`, each
//! `compare_exchange(_weak)` (success, failure with the actual value, and —
//! for the `_weak` one — spurious failure, each followed by the retry), the
//! unconditional `store`s, and each queue push / pop. Threads:
//! - `wakers` waker threads, each calling `wake` `wakes_each` times. Before
//!   each call it performs its *event* (the write the future observes, e.g.
//!   setting a flag), so the event happens-before the wake.
//! - `runners` runner threads (1 = current-thread, 2 = two workers sharing
//!   the queue), each looping: pop an entry, `run()` it.
//! - The future, polled by `run()`: reads the number of events issued (one
//!   step), then either wakes itself and returns Pending (a self-wake /
//!   `yield_now`, at most `yields` times in total, through the same
//!   `schedule` steps run on the runner's thread), returns Ready once it has
//!   seen every event, or returns Pending. With `eager_ready` it may also
//!   return Ready at any poll (it completes for another reason, e.g. a
//!   forced drop), so wakes keep arriving after COMPLETE.
//!
//! The search is a depth-first search over all interleavings of these steps
//! with a visited set (the waker threads are interchangeable, as are the
//! runners, so their local states are kept sorted: symmetry reduction). It
//! checks, in every reachable state:
//! - W1: the queue holds the task at most once; and at most one runner is
//!   inside a poll at a time;
//! - W4: nothing is pushed while the state is COMPLETE, COMPLETE is never
//!   left, and no poll starts after COMPLETE;
//! - state/queue agreement: every queue entry is matched by SCHEDULED (or a
//!   push about to happen) — no stale entries;
//!
//! and in every terminal state (no thread can move):
//! - W2 / no lost wake: the task is COMPLETE, i.e. every event issued after
//!   the last poll read the events led to another poll; a non-COMPLETE
//!   terminal state is reported as a lost wake (if events were unseen) or a
//!   deadlock (a task stuck SCHEDULED/RUNNING/NOTIFIED with an empty queue);
//! - the queue is empty.
//!
//! The search also records which edges of the diagram were taken and asserts
//! all of them were (including CAS failures and the NOTIFIED re-queue), so
//! the check is not vacuous, and mutated machines (a lost-wake bug and a
//! double-queue bug) are shown to be caught.
//!
//! Bounds: up to 3 waker threads × 2 wakes, 1–2 runners, up to 2 self-wakes
//! (see `CONFIGS`): 35 to ~30,000 distinct states per configuration, under
//! a second in the debug profile. With one task and W1 there is at most one
//! entry to pop, so a second runner adds no state beyond the first after
//! symmetry reduction (the mutual-exclusion check still runs on it).
//! Memory model: sequentially consistent interleavings of the atomic steps.
//! All accesses in the state machine are to one atomic location, whose
//! read-modify-writes always read the latest value, so the transitions are
//! faithful; weak-memory effects between that location and the future's own
//! event memory (e.g. a relaxed flag) are outside this model (that is
//! loom's territory; the usual waker slot behind a mutex synchronises).
//!
//! # Model 2: DPOR over the real runtime in the lab
//!
//! `explore` in `ExploreMode::dpor()` (opaque dependence: every dispatch
//! order the lab can produce, each run once) over a program in which a
//! waiter task registers its waker in a shared slot, wakes itself during
//! polls, and two waker tasks wake it through the slot (one waking twice in
//! a row, one waking after it may have completed); on completing, the
//! waiter in turn wakes a fourth task (`pong`) through another slot. Every
//! run asserts, for both waiting tasks: completion; that it saw every
//! event (W2); that every poll after the first began with a wake pending
//! since the previous poll began (no duplicate queue entry, W1); exact accounting — polls = 1 + the number of
//! wakes that found the task not already woken (a reference count kept in
//! the same lab step as each wake call) — so coalescing drops nothing and
//! adds nothing; no poll after Ready (W4); and the wake-call count range.
//! The report must be `is_exhaustive()`: every dispatch order the lab can
//! produce was run (6,208 of them, ~2–3 s in debug), so the assertions
//! hold for all of them.
//! Bounds: the program sizes below; the lab's scheduler, not OS threads.

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use asupersync::lab::{ExploreConfig, ExploreMode, explore};
use asupersync::{Cx, yield_now};

// ===== model 1 ==============================================================

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const COMPLETE: u8 = 4;

const MAX_WAKERS: usize = 3;
const MAX_RUNNERS: usize = 2;

/// A deliberate defect, to show the checker catches it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mutation {
    None,
    /// `run` stores IDLE after a pending poll instead of the
    /// RUNNING→IDLE compare-and-swap (drops a wake that came during the poll).
    StoreIdleAfterPoll,
    /// `schedule` queues on RUNNING→NOTIFIED too (a second queue entry).
    QueueOnNotify,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    wakers: usize,
    wakes_each: u8,
    runners: usize,
    yields: u8,
    eager_ready: bool,
    mutation: Mutation,
}

/// Program counter of a `schedule()` call in progress.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Sched {
    /// `let mut current = state.load()`.
    Load,
    /// `compare_exchange_weak(current, next)` with `current` as read.
    Cas(u8),
    /// `core.schedule(self)`: the queue push.
    Push,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum WakerPc {
    /// Next: perform the event (then call `wake`), or stop if none is left.
    Event,
    Wake(Sched),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
struct WakerThread {
    pc: WakerPc,
    left: u8,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum RunnerPc {
    /// Waiting to pop a queue entry.
    Pop,
    /// `compare_exchange(SCHEDULED, RUNNING)`.
    Start,
    /// The future's poll: reads the events issued.
    Poll,
    /// The future wakes itself during the poll (then returns Pending).
    SelfWake(Sched),
    /// Poll returned Pending: `compare_exchange(RUNNING, IDLE)`.
    PendingCas,
    /// The CAS failed (NOTIFIED): `store(SCHEDULED)`.
    StoreScheduled,
    /// Re-queue after the store.
    Requeue,
    /// Poll returned Ready: `store(COMPLETE)`.
    Finish,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
struct RunnerThread {
    pc: RunnerPc,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct State {
    state: u8,
    /// Entries of the task in the run queue (a multiset of one element).
    queue: u8,
    /// Events performed by the wakers so far.
    issued: u8,
    /// Events the latest poll saw.
    seen: u8,
    /// Self-wakes the future may still do.
    yields_left: u8,
    /// Ghost: a poll returned Ready (the machine was told to complete).
    completed: bool,
    wakers: [WakerThread; MAX_WAKERS],
    runners: [RunnerThread; MAX_RUNNERS],
}

#[derive(Default, Debug)]
struct Stats {
    states: usize,
    terminal: usize,
    edges: BTreeSet<(u8, u8)>,
    cas_failures: usize,
    spurious_failures: usize,
    stale_pops: usize,
    wakes_after_complete: usize,
}

struct Checker {
    cfg: Config,
    visited: HashSet<State>,
    stats: Stats,
}

fn name(s: u8) -> &'static str {
    match s {
        IDLE => "IDLE",
        SCHEDULED => "SCHEDULED",
        RUNNING => "RUNNING",
        NOTIFIED => "NOTIFIED",
        COMPLETE => "COMPLETE",
        _ => "?",
    }
}

impl Checker {
    fn new(cfg: Config) -> Self {
        assert!(cfg.wakers <= MAX_WAKERS && cfg.runners <= MAX_RUNNERS && cfg.runners >= 1);
        Self {
            cfg,
            visited: HashSet::new(),
            stats: Stats::default(),
        }
    }

    fn total_events(&self) -> u8 {
        self.cfg.wakers as u8 * self.cfg.wakes_each
    }

    fn initial(&self) -> State {
        let idle_waker = WakerThread {
            pc: WakerPc::Event,
            left: 0,
        };
        let mut wakers = [idle_waker; MAX_WAKERS];
        for w in wakers.iter_mut().take(self.cfg.wakers) {
            w.left = self.cfg.wakes_each;
        }
        // Spawn: the cell starts SCHEDULED and the spawner queues it once.
        State {
            state: SCHEDULED,
            queue: 1,
            issued: 0,
            seen: 0,
            yields_left: self.cfg.yields,
            completed: false,
            wakers,
            runners: [RunnerThread { pc: RunnerPc::Pop }; MAX_RUNNERS],
        }
    }

    /// Symmetry reduction: threads of one kind are interchangeable.
    fn canonical(&self, mut s: State) -> State {
        s.wakers[..self.cfg.wakers].sort();
        s.runners[..self.cfg.runners].sort();
        s
    }

    /// Sets the state byte, recording the edge and checking W4.
    fn set_state(&mut self, s: &mut State, to: u8, what: &str) -> Result<(), String> {
        if s.state == COMPLETE && to != COMPLETE {
            return Err(format!(
                "W4: {what} moved COMPLETE to {} (left the terminal state)",
                name(to)
            ));
        }
        self.stats.edges.insert((s.state, to));
        s.state = to;
        Ok(())
    }

    fn push(&mut self, s: &mut State, who: &str) -> Result<(), String> {
        if s.state == COMPLETE {
            return Err(format!("W4: {who} queued a COMPLETE task"));
        }
        s.queue += 1;
        if s.queue > 1 {
            return Err(format!(
                "W1: {who} queued the task twice (queue = {})",
                s.queue
            ));
        }
        Ok(())
    }

    /// One step of `schedule()`; returns the successors as (next pc or
    /// `None` when the call returned, state).
    fn schedule_step(
        &mut self,
        s: &State,
        pc: Sched,
        who: &str,
    ) -> Result<Vec<(Option<Sched>, State)>, String> {
        let mut out = Vec::new();
        match pc {
            Sched::Load => out.push((Some(Sched::Cas(s.state)), *s)),
            Sched::Cas(current) => {
                let next = match current {
                    IDLE => SCHEDULED,
                    RUNNING => NOTIFIED,
                    _ => {
                        if current == COMPLETE {
                            self.stats.wakes_after_complete += 1;
                        }
                        // `_ => return`: no step (a local decision).
                        out.push((None, *s));
                        return Ok(out);
                    }
                };
                if s.state == current {
                    let mut t = *s;
                    self.set_state(&mut t, next, who)?;
                    let after = if current == IDLE || self.cfg.mutation == Mutation::QueueOnNotify {
                        Some(Sched::Push)
                    } else {
                        None
                    };
                    out.push((after, t));
                    // compare_exchange_weak may fail spuriously; it then
                    // reports the (unchanged) actual value and retries.
                    self.stats.spurious_failures += 1;
                    out.push((Some(Sched::Cas(s.state)), *s));
                } else {
                    self.stats.cas_failures += 1;
                    out.push((Some(Sched::Cas(s.state)), *s));
                }
            }
            Sched::Push => {
                let mut t = *s;
                self.push(&mut t, who)?;
                out.push((None, t));
            }
        }
        Ok(out)
    }

    fn successors(&mut self, s: &State) -> Result<Vec<(String, State)>, String> {
        let mut out = Vec::new();
        let total = self.total_events();
        for i in 0..self.cfg.wakers {
            let w = s.wakers[i];
            match w.pc {
                WakerPc::Event => {
                    if w.left > 0 {
                        let mut t = *s;
                        t.issued += 1;
                        t.wakers[i] = WakerThread {
                            pc: WakerPc::Wake(Sched::Load),
                            left: w.left - 1,
                        };
                        out.push((format!("waker{i}: event {}", t.issued), t));
                    }
                }
                WakerPc::Wake(pc) => {
                    for (next, mut t) in self.schedule_step(s, pc, &format!("waker{i}"))? {
                        t.wakers[i].pc = next.map_or(WakerPc::Event, WakerPc::Wake);
                        out.push((format!("waker{i}: {pc:?} -> {}", name(t.state)), t));
                    }
                }
            }
        }
        for r in 0..self.cfg.runners {
            let who = format!("runner{r}");
            let pc = s.runners[r].pc;
            let mut t = *s;
            match pc {
                RunnerPc::Pop => {
                    if s.queue > 0 {
                        t.queue -= 1;
                        t.runners[r].pc = RunnerPc::Start;
                        out.push((format!("{who}: pop"), t));
                    }
                }
                RunnerPc::Start => {
                    if s.state == SCHEDULED {
                        if s.completed {
                            return Err(format!("W4: {who} starts a poll after COMPLETE"));
                        }
                        let polling = s.runners[..self.cfg.runners]
                            .iter()
                            .filter(|x| !matches!(x.pc, RunnerPc::Pop | RunnerPc::Start))
                            .count();
                        if polling > 0 {
                            return Err(format!("W1: {who} starts a poll while another runs"));
                        }
                        self.set_state(&mut t, RUNNING, &who)?;
                        t.runners[r].pc = RunnerPc::Poll;
                    } else {
                        // W4 / stale entry: the CAS fails, `run` returns.
                        self.stats.stale_pops += 1;
                        t.runners[r].pc = RunnerPc::Pop;
                    }
                    out.push((format!("{who}: start -> {}", name(t.state)), t));
                }
                RunnerPc::Poll => {
                    t.seen = s.issued;
                    // A future with a self-wake left always yields; one that
                    // has seen every event is Ready; otherwise it is Pending
                    // (its waker is registered with every waker thread).
                    // `eager_ready`: it may also complete at any poll.
                    if s.yields_left > 0 {
                        let mut y = t;
                        y.yields_left -= 1;
                        y.runners[r].pc = RunnerPc::SelfWake(Sched::Load);
                        out.push((format!("{who}: poll (saw {}) self-wakes", t.seen), y));
                    } else if t.seen < total {
                        let mut y = t;
                        y.runners[r].pc = RunnerPc::PendingCas;
                        out.push((format!("{who}: poll (saw {}) Pending", t.seen), y));
                    }
                    if self.cfg.eager_ready || (s.yields_left == 0 && t.seen == total) {
                        let mut y = t;
                        y.runners[r].pc = RunnerPc::Finish;
                        y.completed = true;
                        out.push((format!("{who}: poll (saw {}) Ready", t.seen), y));
                    }
                }
                RunnerPc::SelfWake(spc) => {
                    for (next, mut y) in self.schedule_step(s, spc, &format!("{who} self"))? {
                        y.runners[r].pc = next.map_or(RunnerPc::PendingCas, RunnerPc::SelfWake);
                        out.push((format!("{who}: self-wake {spc:?} -> {}", name(y.state)), y));
                    }
                }
                RunnerPc::PendingCas => {
                    if self.cfg.mutation == Mutation::StoreIdleAfterPoll || s.state == RUNNING {
                        self.set_state(&mut t, IDLE, &who)?;
                        t.runners[r].pc = RunnerPc::Pop;
                    } else {
                        self.stats.cas_failures += 1;
                        t.runners[r].pc = RunnerPc::StoreScheduled;
                    }
                    out.push((format!("{who}: pending -> {}", name(t.state)), t));
                }
                RunnerPc::StoreScheduled => {
                    self.set_state(&mut t, SCHEDULED, &who)?;
                    t.runners[r].pc = RunnerPc::Requeue;
                    out.push((format!("{who}: store SCHEDULED"), t));
                }
                RunnerPc::Requeue => {
                    self.push(&mut t, &who)?;
                    t.runners[r].pc = RunnerPc::Pop;
                    out.push((format!("{who}: re-queue"), t));
                }
                RunnerPc::Finish => {
                    self.set_state(&mut t, COMPLETE, &who)?;
                    t.runners[r].pc = RunnerPc::Pop;
                    out.push((format!("{who}: store COMPLETE"), t));
                }
            }
        }
        Ok(out)
    }

    fn check_state(&self, s: &State) -> Result<(), String> {
        // Every queue entry is matched by SCHEDULED, or by a push in flight
        // (the SCHEDULED state was published just before the push).
        if s.queue > 0 && s.state != SCHEDULED {
            return Err(format!(
                "stale queue entry: queue = {} while {}",
                s.queue,
                name(s.state)
            ));
        }
        Ok(())
    }

    fn check_terminal(&self, s: &State) -> Result<(), String> {
        if s.queue != 0 {
            return Err(format!("terminal state with {} queue entries", s.queue));
        }
        if s.state != COMPLETE {
            return Err(if s.seen < s.issued {
                format!(
                    "W2: lost wake: task {} with {} of {} events unseen by the last poll",
                    name(s.state),
                    s.issued - s.seen,
                    s.issued
                )
            } else {
                format!("deadlock: task stuck {} with an empty queue", name(s.state))
            });
        }
        Ok(())
    }

    /// Depth-first search; on a violation returns the message and the path.
    fn dfs(&mut self, s: State, path: &mut Vec<String>) -> Result<(), String> {
        let s = self.canonical(s);
        if !self.visited.insert(s) {
            return Ok(());
        }
        self.stats.states += 1;
        let fail = |msg: String, path: &Vec<String>| {
            format!("{msg}\n  after:\n    {}", path.join("\n    "))
        };
        if let Err(e) = self.check_state(&s) {
            return Err(fail(e, path));
        }
        let next = match self.successors(&s) {
            Ok(n) => n,
            Err(e) => return Err(fail(e, path)),
        };
        if next.is_empty() {
            self.stats.terminal += 1;
            if let Err(e) = self.check_terminal(&s) {
                return Err(fail(e, path));
            }
        }
        for (label, t) in next {
            path.push(label);
            let r = self.dfs(t, path);
            path.pop();
            r?;
        }
        Ok(())
    }

    fn run(cfg: Config) -> Result<Stats, String> {
        let mut c = Checker::new(cfg);
        let init = c.initial();
        c.dfs(init, &mut Vec::new())?;
        Ok(c.stats)
    }
}

fn cfg(wakers: usize, wakes_each: u8, runners: usize, yields: u8, eager_ready: bool) -> Config {
    Config {
        wakers,
        wakes_each,
        runners,
        yields,
        eager_ready,
        mutation: Mutation::None,
    }
}

/// The configurations checked exhaustively.
const CONFIGS: &[(usize, u8, usize, u8, bool)] = &[
    (1, 1, 1, 0, false),
    (1, 2, 1, 1, false),
    (2, 1, 1, 1, false),
    (2, 2, 1, 1, false),
    (2, 2, 2, 1, false),
    (3, 1, 2, 1, false),
    (3, 2, 1, 2, false),
    (3, 2, 2, 1, false),
    (2, 2, 2, 2, true),
    (3, 2, 2, 1, true),
];

#[test]
fn model_the_wake_state_machine_is_correct_in_every_interleaving() {
    let mut all_edges = BTreeSet::new();
    let mut total_states = 0;
    let (mut cas_failures, mut stale, mut after_complete) = (0, 0, 0);
    for &(w, k, r, y, eager) in CONFIGS {
        let c = cfg(w, k, r, y, eager);
        let stats = Checker::run(c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        eprintln!(
            "{c:?}: {} states, {} terminal",
            stats.states, stats.terminal
        );
        assert!(stats.terminal > 0, "{c:?}: some run terminates");
        total_states += stats.states;
        all_edges.extend(stats.edges);
        cas_failures += stats.cas_failures;
        stale += stats.stale_pops;
        after_complete += stats.wakes_after_complete;
    }
    // Coverage: every edge of the diagram was taken somewhere.
    for edge in [
        (IDLE, SCHEDULED),
        (SCHEDULED, RUNNING),
        (RUNNING, IDLE),
        (RUNNING, NOTIFIED),
        (NOTIFIED, SCHEDULED),
        (RUNNING, COMPLETE),
    ] {
        assert!(
            all_edges.contains(&edge),
            "edge {} -> {} never taken",
            name(edge.0),
            name(edge.1)
        );
    }
    assert!(cas_failures > 0, "CAS-failure retries were explored");
    assert!(after_complete > 0, "wakes of a COMPLETE task were explored");
    assert_eq!(stale, 0, "W1: a popped entry always finds SCHEDULED");
    assert!(total_states > 1000, "{total_states} states");
}

#[test]
fn model_catches_a_lost_wake_when_the_pending_cas_is_a_store() {
    let mut c = cfg(1, 1, 1, 0, false);
    c.mutation = Mutation::StoreIdleAfterPoll;
    let e = Checker::run(c).expect_err("the mutated machine must fail");
    assert!(e.contains("W2: lost wake"), "{e}");
}

#[test]
fn model_catches_a_double_queue_entry_when_notify_also_queues() {
    let mut c = cfg(1, 1, 1, 0, false);
    c.mutation = Mutation::QueueOnNotify;
    let e = Checker::run(c).expect_err("the mutated machine must fail");
    assert!(e.contains("W1") || e.contains("stale queue entry"), "{e}");
}

// ===== model 2 ==============================================================

/// A waker slot with an event counter, written by hand.
#[derive(Default)]
struct Slot {
    events: AtomicU32,
    waker: Mutex<Option<Waker>>,
    /// Wake calls made (through the slot and self-wakes).
    wake_calls: AtomicU32,
    ghost: Mutex<Ghost>,
    ready: AtomicBool,
    polls_after_ready: AtomicU32,
}

/// Reference accounting. A lab step runs one task's poll to its end, so a
/// wake call and its bookkeeping happen in one step. `pending`: a wake
/// arrived since the waiter's latest poll began; `rising`: how often
/// `pending` went from false to true before the waiter completed. Rules W1
/// and W2 mean exactly: every poll after the first starts with `pending`, and
/// `polls == 1 + rising`.
#[derive(Default)]
struct Ghost {
    pending: bool,
    rising: u32,
    polls: u32,
}

impl Slot {
    fn note_wake(&self) {
        self.wake_calls.fetch_add(1, Ordering::SeqCst);
        let mut g = self.ghost.lock().unwrap();
        if !self.ready.load(Ordering::SeqCst) && !g.pending {
            g.pending = true;
            g.rising += 1;
        }
    }

    /// Performs an event and wakes the registered waiter (if any), `times`
    /// times in a row (later ones must coalesce, W1).
    fn fire(&self, times: u32) {
        self.events.fetch_add(1, Ordering::SeqCst);
        let w = self.waker.lock().unwrap().clone();
        if let Some(w) = w {
            for _ in 0..times {
                self.note_wake();
                w.wake_by_ref();
            }
        }
    }
}

/// Completes after seeing `target` events; wakes itself `self_wakes` times.
struct Waiter {
    slot: Arc<Slot>,
    target: u32,
    self_wakes: u32,
    /// Fired (once) when this waiter completes: it wakes another task.
    then: Option<Arc<Slot>>,
}

impl Future for Waiter {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let slot = self.slot.clone();
        if slot.ready.load(Ordering::SeqCst) {
            slot.polls_after_ready.fetch_add(1, Ordering::SeqCst);
        }
        {
            let mut g = slot.ghost.lock().unwrap();
            g.polls += 1;
            assert!(
                g.polls == 1 || g.pending,
                "W1: poll {} of the waiter without a wake since the previous one",
                g.polls
            );
            g.pending = false;
        }
        // Register first, then check (no missed-wakeup window).
        *slot.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.self_wakes > 0 {
            self.self_wakes -= 1;
            slot.note_wake();
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let seen = slot.events.load(Ordering::SeqCst);
        if seen >= self.target {
            slot.ready.store(true, Ordering::SeqCst);
            if let Some(next) = self.then.take() {
                next.fire(1);
            }
            Poll::Ready(seen)
        } else {
            Poll::Pending
        }
    }
}

const SELF_WAKES: u32 = 2;

/// Checks one slot's accounting after its waiter completed.
fn check_slot(name: &str, slot: &Slot, self_wakes: u32, max_calls: u32) {
    let calls = slot.wake_calls.load(Ordering::SeqCst);
    let g = slot.ghost.lock().unwrap();
    assert_eq!(
        g.polls,
        1 + g.rising,
        "{name}: exact accounting: one poll per wake that found the task not yet woken"
    );
    assert!(g.polls > self_wakes, "{name}: each self-wake led to a poll");
    assert!(g.polls <= 1 + calls, "{name}: more polls than wakes");
    assert_eq!(
        slot.polls_after_ready.load(Ordering::SeqCst),
        0,
        "{name}: W4: no poll after Ready"
    );
    assert!(
        (self_wakes..=self_wakes + max_calls).contains(&calls),
        "{name}: {calls} wake calls"
    );
}

async fn wake_program(cx: Cx, runs: Arc<AtomicUsize>) {
    runs.fetch_add(1, Ordering::SeqCst);
    let slot = Arc::new(Slot::default());
    let pong_slot = Arc::new(Slot::default());
    // The waiter: two self-wakes, then waits for two events; when it
    // completes it wakes `pong` (tasks waking each other).
    let waiter = {
        let (slot, next) = (slot.clone(), pong_slot.clone());
        cx.spawn(move |_cx| Waiter {
            slot,
            target: 2,
            self_wakes: SELF_WAKES,
            then: Some(next),
        })
        .unwrap()
    };
    // Pong: waits for the waiter's completion event.
    let pong = {
        let slot = pong_slot.clone();
        cx.spawn(move |_cx| Waiter {
            slot,
            target: 1,
            self_wakes: 0,
            then: None,
        })
        .unwrap()
    };
    // Waker A: one event, woken twice in a row.
    let a = {
        let slot = slot.clone();
        cx.spawn(move |_cx| async move { slot.fire(2) }).unwrap()
    };
    // Waker B: yields, fires one event, yields, and wakes again through
    // the slot (possibly after the waiter completed: must be a no-op, W4).
    let b = {
        let slot = slot.clone();
        cx.spawn(move |_cx| async move {
            yield_now().await;
            slot.fire(1);
            yield_now().await;
            let w = slot.waker.lock().unwrap().clone();
            if let Some(w) = w {
                slot.note_wake();
                w.wake();
            }
        })
        .unwrap()
    };
    let seen = waiter.join(&cx).await.expect("the waiter completes");
    let pong_seen = pong.join(&cx).await.expect("pong completes");
    a.join(&cx).await.unwrap();
    b.join(&cx).await.unwrap();

    assert_eq!(seen, 2, "W2: the waiter saw both events");
    assert_eq!(pong_seen, 1, "W2: pong saw the waiter's event");
    // Wake calls beyond self-wakes: 2 from A and 1 + 1 from B, each only if
    // it found a waker registered (a waker that ran first made no call);
    // pong gets at most the waiter's one.
    check_slot("waiter", &slot, SELF_WAKES, 4);
    check_slot("pong", &pong_slot, 0, 1);
}

#[test]
fn dpor_the_real_runtime_never_loses_or_duplicates_a_wake() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let report = explore(
        ExploreConfig::new()
            .schedules(50_000)
            .mode(ExploreMode::dpor()),
        move |cx| wake_program(cx, r.clone()),
    );
    eprintln!("{report}");
    assert!(report.is_ok(), "{report}");
    assert!(report.is_exhaustive(), "{report}");
    assert_eq!(report.unconfirmed_runs(), 0);
    assert_eq!(report.distinct_traces(), report.schedules_run());
    assert!(report.schedules_run() > 10, "{report}");
    assert_eq!(runs.load(Ordering::SeqCst), report.schedules_run());
}
