//! Issue #5: model checks of the task wake state machine (rules W1–W4 in
//! `src/exec/task_cell.rs`, on the state word of `src/exec/state.rs`,
//! rules SW1–SW6).
//!
//! # Model 1: exhaustive explicit-state check of a transcription
//!
//! `Checker` runs a self-contained transcription of `TaskCell::schedule`
//! (the waker side) and `TaskCell::run` with `Core::poll_task`'s
//! `take_attention` (the runner side) over the cell's state word — its
//! lifecycle field (IDLE / SCHEDULED / RUNNING / NOTIFIED / COMPLETE) plus
//! the STARTED and ATTENTION bits (ATTENTION stands for every bit other
//! threads set; the cancel hint and CANCEL_ATTENTION change the word the
//! same way) — and a run queue kept as a multiset (a count of entries of
//! this task). Every transition is `CellState::update`'s loop (rule SW1):
//! its `load`, then each `compare_exchange_weak` on the whole word
//! (success, failure with the actual value — also when only another
//! field changed — and spurious failure, each followed by the retry); the
//! `fetch_or` / `fetch_and` of the attention bits and each queue push / pop
//! are one step each. Threads:
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
//! - optionally the kernel, calling `request_attention` `raises` times
//!   (one `fetch_or` each) at any point.
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
//! - SW1 / SW3: the word's ATTENTION bit is set exactly while a raise has
//!   not been taken yet, and STARTED exactly from the first run edge on
//!   (no transition overwrites another's bit); each run edge replaces a
//!   STARTED bit that says whether an earlier run edge happened;
//!
//! and in every terminal state (no thread can move):
//! - W2 / no lost wake: the task is COMPLETE, i.e. every event issued after
//!   the last poll read the events led to another poll; a non-COMPLETE
//!   terminal state is reported as a lost wake (if events were unseen) or a
//!   deadlock (a task stuck SCHEDULED/RUNNING/NOTIFIED with an empty queue);
//! - the queue is empty.
//!
//! The search also records which edges of the diagram were taken and asserts
//! all of them were (including CAS failures, failures caused by another
//! field of the word, and the NOTIFIED re-queue), so the check is not
//! vacuous, and mutated machines (a lost-wake bug, a double-queue bug and
//! a re-queue written as a plain store that wipes the other bits) are
//! shown to be caught.
//!
//! Bounds: up to 3 waker threads × 2 wakes, 1–2 runners, up to 2 self-wakes,
//! up to 2 attention raises (see `CONFIGS`): 63 to ~84,000 distinct states
//! per configuration, a few seconds in the debug profile. With one task and
//! W1 there is at most one entry to pop, so a second runner adds no state
//! beyond the first after symmetry reduction (the mutual-exclusion check
//! still runs on it).
//! Memory model: sequentially consistent interleavings of the atomic steps.
//! All accesses in the state machine are to one atomic location (the word),
//! whose read-modify-writes always read the latest value, so the
//! transitions are faithful; weak-memory effects between that location and the future's own
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

// The state word's fields, as in `src/exec/state.rs` (the model keeps the
// bits it exercises; the cancel hint is another field no transition here
// reads, like ATTENTION, so ATTENTION stands for every non-lifecycle bit).
const LIFECYCLE: u8 = 0b111;
const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const COMPLETE: u8 = 4;
const STARTED: u8 = 1 << 3;
const ATTENTION: u8 = 1 << 4;

const MAX_WAKERS: usize = 3;
const MAX_RUNNERS: usize = 2;

/// A deliberate defect, to show the checker catches it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mutation {
    None,
    /// `pending` moves to IDLE after a pending poll even when NOTIFIED
    /// (drops a wake that came during the poll).
    StoreIdleAfterPoll,
    /// `wake` queues on RUNNING→NOTIFIED too (a second queue entry).
    QueueOnNotify,
    /// `pending` writes a bare SCHEDULED on NOTIFIED (the old byte's
    /// `store`), wiping the word's other bits.
    StoreClobbersBits,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    wakers: usize,
    wakes_each: u8,
    runners: usize,
    yields: u8,
    eager_ready: bool,
    /// `request_attention` calls by the kernel (another thread).
    raises: u8,
    mutation: Mutation,
}

/// Program counter inside `CellState::update` (the compare-and-swap loop).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Upd {
    /// `let mut current = word.load()`.
    Load,
    /// `compare_exchange_weak(current, f(current))` with `current` as read.
    Cas(u8),
}

/// Program counter of a wake (`TaskCell::schedule`) in progress.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Sched {
    /// `CellState::wake`.
    Upd(Upd),
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
    /// `start_running`: SCHEDULED → RUNNING | STARTED.
    Start(Upd),
    /// `take_attention` (`Core::poll_task`): one `fetch_and`.
    TakeAttention,
    /// The future's poll: reads the events issued.
    Poll,
    /// The future wakes itself during the poll (then returns Pending).
    SelfWake(Sched),
    /// Poll returned Pending: `pending` (RUNNING → IDLE, or NOTIFIED →
    /// SCHEDULED).
    Pending(Upd),
    /// Re-queue after NOTIFIED → SCHEDULED.
    Requeue,
    /// Poll returned Ready: `complete`.
    Finish(Upd),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
struct RunnerThread {
    pc: RunnerPc,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct State {
    /// The state word.
    word: u8,
    /// Entries of the task in the run queue (a multiset of one element).
    queue: u8,
    /// Events performed by the wakers so far.
    issued: u8,
    /// Events the latest poll saw.
    seen: u8,
    /// Self-wakes the future may still do.
    yields_left: u8,
    /// `request_attention` calls the kernel thread still makes.
    raises_left: u8,
    /// Ghost: a poll returned Ready (the machine was told to complete).
    completed: bool,
    /// Ghost: a run edge has been taken (the future was handed to a poll).
    started: bool,
    /// Ghost: attention was raised and no `take_attention` has run since.
    attention: bool,
    wakers: [WakerThread; MAX_WAKERS],
    runners: [RunnerThread; MAX_RUNNERS],
}

#[derive(Default, Debug)]
struct Stats {
    states: usize,
    terminal: usize,
    edges: BTreeSet<(u8, u8)>,
    cas_failures: usize,
    /// CAS failures where only a non-lifecycle bit had changed.
    bit_failures: usize,
    spurious_failures: usize,
    stale_pops: usize,
    wakes_after_complete: usize,
    attention_taken: usize,
}

struct Checker {
    cfg: Config,
    visited: HashSet<State>,
    stats: Stats,
}

fn name(s: u8) -> &'static str {
    match s & LIFECYCLE {
        IDLE => "IDLE",
        SCHEDULED => "SCHEDULED",
        RUNNING => "RUNNING",
        NOTIFIED => "NOTIFIED",
        COMPLETE => "COMPLETE",
        _ => "?",
    }
}

/// The word with its lifecycle field replaced (the other bits kept).
fn with_lifecycle(word: u8, lifecycle: u8) -> u8 {
    (word & !LIFECYCLE) | lifecycle
}

/// Where an update step leaves its caller.
enum Next<A> {
    /// Still in the loop, at this pc.
    Continue(Upd),
    /// The update returned this action.
    Done(A),
}

/// The action a wake's update returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WakeAct {
    Queue,
    Done,
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
        // Spawn: the cell starts SCHEDULED (with attention: `CellState::new`)
        // and the spawner queues it once.
        State {
            word: SCHEDULED | ATTENTION,
            queue: 1,
            issued: 0,
            seen: 0,
            yields_left: self.cfg.yields,
            raises_left: self.cfg.raises,
            completed: false,
            started: false,
            attention: true,
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

    /// Writes the word, recording the lifecycle edge and checking W4.
    fn set_word(&mut self, s: &mut State, to: u8, what: &str) -> Result<(), String> {
        let (from, to_l) = (s.word & LIFECYCLE, to & LIFECYCLE);
        if from == COMPLETE && to_l != COMPLETE {
            return Err(format!(
                "W4: {what} moved COMPLETE to {} (left the terminal state)",
                name(to)
            ));
        }
        if from != to_l {
            self.stats.edges.insert((from, to_l));
        }
        s.word = to;
        Ok(())
    }

    fn push(&mut self, s: &mut State, who: &str) -> Result<(), String> {
        if s.word & LIFECYCLE == COMPLETE {
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

    /// One step of `CellState::update`: the load, or one
    /// `compare_exchange_weak` (success, failure with the actual value, or
    /// spurious failure; both failures retry with the value read). `f`
    /// maps the current word to the action and the next word (`None`:
    /// return without writing, a local decision, no step).
    fn update_step<A: Copy>(
        &mut self,
        s: &State,
        pc: Upd,
        who: &str,
        f: impl Fn(u8) -> Result<(A, Option<u8>), String>,
    ) -> Result<Vec<(Next<A>, State)>, String> {
        let mut out = Vec::new();
        match pc {
            Upd::Load => out.push((Next::Continue(Upd::Cas(s.word)), *s)),
            Upd::Cas(current) => {
                let (action, next) = f(current)?;
                let Some(next) = next else {
                    out.push((Next::Done(action), *s));
                    return Ok(out);
                };
                if s.word == current {
                    let mut t = *s;
                    self.set_word(&mut t, next, who)?;
                    out.push((Next::Done(action), t));
                    self.stats.spurious_failures += 1;
                    out.push((Next::Continue(Upd::Cas(s.word)), *s));
                } else {
                    self.stats.cas_failures += 1;
                    if s.word & LIFECYCLE == current & LIFECYCLE {
                        self.stats.bit_failures += 1;
                    }
                    out.push((Next::Continue(Upd::Cas(s.word)), *s));
                }
            }
        }
        Ok(out)
    }

    /// One step of a wake (`CellState::wake`, then the push); returns the
    /// successors as (next pc or `None` when the call returned, state).
    fn schedule_step(
        &mut self,
        s: &State,
        pc: Sched,
        who: &str,
    ) -> Result<Vec<(Option<Sched>, State)>, String> {
        let upd = match pc {
            Sched::Push => {
                let mut t = *s;
                self.push(&mut t, who)?;
                return Ok(vec![(None, t)]);
            }
            Sched::Upd(upd) => upd,
        };
        if let Upd::Cas(current) = upd
            && current & LIFECYCLE == COMPLETE
        {
            self.stats.wakes_after_complete += 1;
        }
        let mutation = self.cfg.mutation;
        let steps = self.update_step(s, upd, who, |w| {
            Ok(match w & LIFECYCLE {
                IDLE => (WakeAct::Queue, Some(with_lifecycle(w, SCHEDULED))),
                RUNNING => {
                    let act = if mutation == Mutation::QueueOnNotify {
                        WakeAct::Queue
                    } else {
                        WakeAct::Done
                    };
                    (act, Some(with_lifecycle(w, NOTIFIED)))
                }
                _ => (WakeAct::Done, None),
            })
        })?;
        Ok(steps
            .into_iter()
            .map(|(next, t)| match next {
                Next::Continue(u) => (Some(Sched::Upd(u)), t),
                Next::Done(WakeAct::Queue) => (Some(Sched::Push), t),
                Next::Done(WakeAct::Done) => (None, t),
            })
            .collect())
    }

    fn successors(&mut self, s: &State) -> Result<Vec<(String, State)>, String> {
        let mut out = Vec::new();
        let total = self.total_events();
        if s.raises_left > 0 {
            // The kernel: `request_attention`, one `fetch_or`.
            let mut t = *s;
            t.raises_left -= 1;
            t.word |= ATTENTION;
            t.attention = true;
            out.push(("kernel: request_attention".to_string(), t));
        }
        for i in 0..self.cfg.wakers {
            let w = s.wakers[i];
            match w.pc {
                WakerPc::Event => {
                    if w.left > 0 {
                        let mut t = *s;
                        t.issued += 1;
                        t.wakers[i] = WakerThread {
                            pc: WakerPc::Wake(Sched::Upd(Upd::Load)),
                            left: w.left - 1,
                        };
                        out.push((format!("waker{i}: event {}", t.issued), t));
                    }
                }
                WakerPc::Wake(pc) => {
                    for (next, mut t) in self.schedule_step(s, pc, &format!("waker{i}"))? {
                        t.wakers[i].pc = next.map_or(WakerPc::Event, WakerPc::Wake);
                        out.push((format!("waker{i}: {pc:?} -> {}", name(t.word)), t));
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
                        t.runners[r].pc = RunnerPc::Start(Upd::Load);
                        out.push((format!("{who}: pop"), t));
                    }
                }
                RunnerPc::Start(upd) => {
                    let polling = s.runners[..self.cfg.runners]
                        .iter()
                        .filter(|x| !matches!(x.pc, RunnerPc::Pop | RunnerPc::Start(_)))
                        .count();
                    let steps = self.update_step(s, upd, &who, |w| {
                        Ok(if w & LIFECYCLE == SCHEDULED {
                            (Some(w), Some(with_lifecycle(w, RUNNING) | STARTED))
                        } else {
                            (None, None)
                        })
                    })?;
                    for (next, mut y) in steps {
                        match next {
                            Next::Continue(u) => y.runners[r].pc = RunnerPc::Start(u),
                            Next::Done(Some(before)) => {
                                if s.completed {
                                    return Err(format!("W4: {who} starts a poll after COMPLETE"));
                                }
                                if polling > 0 {
                                    return Err(format!(
                                        "W1: {who} starts a poll while another runs"
                                    ));
                                }
                                if (before & STARTED != 0) != s.started {
                                    return Err(format!(
                                        "SW3: {who}'s run edge replaced STARTED = {} \
                                         after {} run edge(s)",
                                        before & STARTED != 0,
                                        if s.started { "some" } else { "no" }
                                    ));
                                }
                                y.started = true;
                                y.runners[r].pc = RunnerPc::TakeAttention;
                            }
                            Next::Done(None) => {
                                // W4 / stale entry: `run` returns.
                                self.stats.stale_pops += 1;
                                y.runners[r].pc = RunnerPc::Pop;
                            }
                        }
                        out.push((format!("{who}: start {upd:?} -> {}", name(y.word)), y));
                    }
                }
                RunnerPc::TakeAttention => {
                    if t.word & ATTENTION != 0 {
                        self.stats.attention_taken += 1;
                    }
                    t.word &= !ATTENTION;
                    t.attention = false;
                    t.runners[r].pc = RunnerPc::Poll;
                    out.push((format!("{who}: take_attention"), t));
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
                        y.runners[r].pc = RunnerPc::SelfWake(Sched::Upd(Upd::Load));
                        out.push((format!("{who}: poll (saw {}) self-wakes", t.seen), y));
                    } else if t.seen < total {
                        let mut y = t;
                        y.runners[r].pc = RunnerPc::Pending(Upd::Load);
                        out.push((format!("{who}: poll (saw {}) Pending", t.seen), y));
                    }
                    if self.cfg.eager_ready || (s.yields_left == 0 && t.seen == total) {
                        let mut y = t;
                        y.runners[r].pc = RunnerPc::Finish(Upd::Load);
                        y.completed = true;
                        out.push((format!("{who}: poll (saw {}) Ready", t.seen), y));
                    }
                }
                RunnerPc::SelfWake(spc) => {
                    for (next, mut y) in self.schedule_step(s, spc, &format!("{who} self"))? {
                        y.runners[r].pc =
                            next.map_or(RunnerPc::Pending(Upd::Load), RunnerPc::SelfWake);
                        out.push((format!("{who}: self-wake {spc:?} -> {}", name(y.word)), y));
                    }
                }
                RunnerPc::Pending(upd) => {
                    let mutation = self.cfg.mutation;
                    let steps = self.update_step(s, upd, &who, |w| match w & LIFECYCLE {
                        _ if mutation == Mutation::StoreIdleAfterPoll => {
                            Ok((false, Some(with_lifecycle(w, IDLE))))
                        }
                        RUNNING => Ok((false, Some(with_lifecycle(w, IDLE)))),
                        NOTIFIED if mutation == Mutation::StoreClobbersBits => {
                            Ok((true, Some(SCHEDULED)))
                        }
                        NOTIFIED => Ok((true, Some(with_lifecycle(w, SCHEDULED)))),
                        _ => Err(format!("SW2: {who}'s pending poll found {}", name(w))),
                    })?;
                    for (next, mut y) in steps {
                        y.runners[r].pc = match next {
                            Next::Continue(u) => RunnerPc::Pending(u),
                            Next::Done(true) => RunnerPc::Requeue,
                            Next::Done(false) => RunnerPc::Pop,
                        };
                        out.push((format!("{who}: pending {upd:?} -> {}", name(y.word)), y));
                    }
                }
                RunnerPc::Requeue => {
                    self.push(&mut t, &who)?;
                    t.runners[r].pc = RunnerPc::Pop;
                    out.push((format!("{who}: re-queue"), t));
                }
                RunnerPc::Finish(upd) => {
                    let steps = self.update_step(s, upd, &who, |w| {
                        Ok(((), Some(with_lifecycle(w, COMPLETE))))
                    })?;
                    for (next, mut y) in steps {
                        y.runners[r].pc = match next {
                            Next::Continue(u) => RunnerPc::Finish(u),
                            Next::Done(()) => RunnerPc::Pop,
                        };
                        out.push((format!("{who}: complete {upd:?} -> {}", name(y.word)), y));
                    }
                }
            }
        }
        Ok(out)
    }

    fn check_state(&self, s: &State) -> Result<(), String> {
        // Every queue entry is matched by SCHEDULED, or by a push in flight
        // (the SCHEDULED state was published just before the push).
        if s.queue > 0 && s.word & LIFECYCLE != SCHEDULED {
            return Err(format!(
                "stale queue entry: queue = {} while {}",
                s.queue,
                name(s.word)
            ));
        }
        // SW1: no transition loses another's bit; SW3: STARTED is set from
        // the first run edge on.
        if (s.word & ATTENTION != 0) != s.attention {
            return Err(format!(
                "SW1: ATTENTION is {} but the ghost says {}",
                s.word & ATTENTION != 0,
                s.attention
            ));
        }
        if (s.word & STARTED != 0) != s.started {
            return Err(format!(
                "SW1/SW3: STARTED is {} but the ghost says {}",
                s.word & STARTED != 0,
                s.started
            ));
        }
        Ok(())
    }

    fn check_terminal(&self, s: &State) -> Result<(), String> {
        if s.queue != 0 {
            return Err(format!("terminal state with {} queue entries", s.queue));
        }
        if s.word & LIFECYCLE != COMPLETE {
            return Err(if s.seen < s.issued {
                format!(
                    "W2: lost wake: task {} with {} of {} events unseen by the last poll",
                    name(s.word),
                    s.issued - s.seen,
                    s.issued
                )
            } else {
                format!("deadlock: task stuck {} with an empty queue", name(s.word))
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

fn cfg(
    wakers: usize,
    wakes_each: u8,
    runners: usize,
    yields: u8,
    eager_ready: bool,
    raises: u8,
) -> Config {
    Config {
        wakers,
        wakes_each,
        runners,
        yields,
        eager_ready,
        raises,
        mutation: Mutation::None,
    }
}

/// The configurations checked exhaustively: (wakers, wakes each, runners,
/// self-wakes, eager Ready, kernel attention raises).
const CONFIGS: &[(usize, u8, usize, u8, bool, u8)] = &[
    (1, 1, 1, 0, false, 0),
    (1, 2, 1, 1, false, 0),
    (2, 1, 1, 1, false, 0),
    (2, 2, 1, 1, false, 0),
    (2, 2, 2, 1, false, 0),
    (3, 1, 2, 1, false, 0),
    (3, 2, 1, 2, false, 0),
    (3, 2, 2, 1, false, 0),
    (2, 2, 2, 2, true, 0),
    (3, 2, 2, 1, true, 0),
    (1, 1, 1, 1, false, 2),
    (2, 1, 2, 1, false, 1),
    (2, 2, 1, 1, true, 2),
];

#[test]
fn model_the_wake_state_machine_is_correct_in_every_interleaving() {
    let mut all_edges = BTreeSet::new();
    let mut total_states = 0;
    let (mut cas_failures, mut bit_failures, mut stale, mut after_complete, mut taken) =
        (0, 0, 0, 0, 0);
    for &(w, k, r, y, eager, raises) in CONFIGS {
        let c = cfg(w, k, r, y, eager, raises);
        let stats = Checker::run(c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        eprintln!(
            "{c:?}: {} states, {} terminal",
            stats.states, stats.terminal
        );
        assert!(stats.terminal > 0, "{c:?}: some run terminates");
        total_states += stats.states;
        all_edges.extend(stats.edges);
        cas_failures += stats.cas_failures;
        bit_failures += stats.bit_failures;
        stale += stats.stale_pops;
        after_complete += stats.wakes_after_complete;
        taken += stats.attention_taken;
    }
    // Coverage: every edge of the diagram was taken somewhere.
    for edge in [
        (IDLE, SCHEDULED),
        (SCHEDULED, RUNNING),
        (RUNNING, IDLE),
        (RUNNING, NOTIFIED),
        (NOTIFIED, SCHEDULED),
        (RUNNING, COMPLETE),
        (NOTIFIED, COMPLETE),
    ] {
        assert!(
            all_edges.contains(&edge),
            "edge {} -> {} never taken",
            name(edge.0),
            name(edge.1)
        );
    }
    assert!(cas_failures > 0, "CAS-failure retries were explored");
    assert!(
        bit_failures > 0,
        "CAS failures caused by another field of the word were explored"
    );
    assert!(
        taken > 0,
        "attention raised by the kernel was taken by a run"
    );
    assert!(after_complete > 0, "wakes of a COMPLETE task were explored");
    assert_eq!(stale, 0, "W1: a popped entry always finds SCHEDULED");
    assert!(total_states > 1000, "{total_states} states");
}

#[test]
fn model_catches_a_lost_wake_when_the_pending_cas_is_a_store() {
    let mut c = cfg(1, 1, 1, 0, false, 0);
    c.mutation = Mutation::StoreIdleAfterPoll;
    let e = Checker::run(c).expect_err("the mutated machine must fail");
    assert!(e.contains("W2: lost wake"), "{e}");
}

#[test]
fn model_catches_a_double_queue_entry_when_notify_also_queues() {
    let mut c = cfg(1, 1, 1, 0, false, 0);
    c.mutation = Mutation::QueueOnNotify;
    let e = Checker::run(c).expect_err("the mutated machine must fail");
    assert!(e.contains("W1") || e.contains("stale queue entry"), "{e}");
}

#[test]
fn model_catches_a_lost_bit_when_the_requeue_is_a_plain_store() {
    let mut c = cfg(1, 1, 1, 1, false, 1);
    c.mutation = Mutation::StoreClobbersBits;
    let e = Checker::run(c).expect_err("the mutated machine must fail");
    assert!(e.contains("SW1"), "{e}");
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
