//! Timers: the timer service (the wheel under its own lock, plus the K8
//! hint), and the kernel's own timers (grace, task deadline, region grace,
//! region deadline) firing.
//!
//! The wheel is not kernel data: it lives in [`Timers`], which the kernel
//! and the execution core share (`Arc`). Sleeps arm and disarm their
//! entries under the wheel lock alone (the entry protocol, TE1–TE7, is in
//! `time::entry`); the kernel arms and cancels its own timers while it holds
//! the kernel lock.
//!
//! Rules upheld here (numbered as in `docs/ARCHITECTURE.md`):
//! - K8 (timer hint): the shared hint never lies late: no pending timer is
//!   due before it, so a driver that reads it without a lock, and locks only
//!   once it has passed, never fires a timer late. The hint changes only
//!   under the wheel lock: an insertion lowers it to its deadline
//!   (`fetch_min`), a firing pass stores a fresh lower bound computed from
//!   the wheel it has just advanced; a cancellation leaves it (early is
//!   harmless).
//! - TL1 (lock order): kernel → wheel, never the reverse. The kernel takes
//!   the wheel lock inside its own (arming and cancelling its timers); no
//!   code takes the kernel lock while it holds the wheel lock. A firing
//!   pass takes the wheel lock, takes the due entries out, releases it,
//!   wakes the sleepers with no lock held, and only then, if kernel timers
//!   fired, takes the kernel lock once to process them.
//! - TL2 (no user code under the wheel lock): what leaves the wheel (fired
//!   entries' wakers, a cancelled entry's payload, the wheel itself at
//!   teardown) is dropped or woken after the lock is released; under it a
//!   sleep entry is only marked fired and its waker taken out (TE2, TE7).
//! - TL3 (determinism): a shard's wheel fires in `(deadline, insertion)`
//!   order (wheel rule 6); a pass wakes its sleepers in that order, then
//!   processes its kernel timers in that order. The lab runs one shard, so
//!   its schedule stays a function of its seed.
//! - TL4 (shards): the wheel is split into shards, each its own lock and
//!   K8 hint, so workers arming and cancelling sleeps rarely meet: which
//!   shard a timer goes to is TL5's (a worker's home shard, else the shared
//!   shard its task's id picks; ids are handed out in order, so neighbours
//!   alternate). A key names its shard, so a cancel locks only that one. The service's hint
//!   is the earliest shard hint (K8 holds for each, hence for the least);
//!   a firing pass visits only the shards whose hint has passed, one lock
//!   at a time. The production runtime has twice as many shards as
//!   workers (at most 16), the current-thread runtime and the lab one.
//! - TL5 (home shards): on the multi-thread runtime the first shards are
//!   *owned*, one per worker (as many as fit in half the shards), the rest
//!   are *shared*. A sleep armed on a worker thread goes to that worker's
//!   home shard (a thread-local set by the worker loop, keyed by the
//!   service's address, compared and never dereferenced); one armed
//!   anywhere else (a `block_on` thread, a plain thread, a worker without
//!   a home, a thread inside `block_in_place`) goes to the shared shard its
//!   task's id picks, and the kernel's own timers to the first shared
//!   shard (the first shard when none is owned: the current-thread runtime
//!   and the lab). A thread fires its home shard and the shared shards as
//!   soon as their K8 hint passes, and another worker's home shard only
//!   once its hint is [`FOREIGN_SLACK`] old; it parks accordingly. So a
//!   sleep is armed, fired, woken and re-polled on one worker, whose
//!   caches already hold the entry and the task, and workers do not fight
//!   over shard locks; a worker stuck in a long poll (or a home left
//!   without its thread) delays its own timers by at most the slack, as the
//!   other threads then fire them. T1 is untouched (the slack only ever
//!   delays), and neither is K8 (each shard's hint stays a lower bound).
//!   A `block_in_place` helper takes over the home of the worker it stands
//!   in for while that worker's thread blocks without one.
//!
//! The grace queue (K4 for individually cancelled tasks) keeps the tasks'
//! grace deadlines out of the wheel, so a cancel arms, and a completion
//! cancels, no wheel entry:
//! - GQ1: a cancel that sets or lowers a task's grace deadline (and is not
//!   covered by its region's shared grace timer) pushes `(deadline, task)`;
//!   one wheel timer (`TimerEvent::GraceQueue`) is armed at the earliest
//!   entry, re-armed only when an earlier one arrives. Entries of finished
//!   tasks, or for a deadline since lowered, stay until they come due and
//!   are then skipped (`grace_expired` checks the task's current deadline),
//!   so a task's grace period only shortens, as K4 requires.
//! - GQ2: when it fires, every entry due is popped in `(deadline, task)`
//!   order (deterministic), and the timer is re-armed at the new earliest.
//! - GQ3: the queue counts the live tasks that have an entry; when the last
//!   of them completes, the queue is emptied and its timer cancelled, so a
//!   quiescent kernel holds no timer.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::*;
use crate::timer_wheel::TimerKey as WheelKey;
pub(crate) use crate::types::pinned::Pinned;

/// K4's individual grace deadlines behind one wheel timer (GQ1–GQ3).
#[derive(Default)]
pub(crate) struct GraceQueue {
    entries: BinaryHeap<Reverse<(Time, TaskId)>>,
    /// The wheel timer armed for the earliest entry, and its deadline.
    armed: Option<(Time, TimerKey)>,
    /// Live tasks with an entry (GQ3).
    live: usize,
}

/// A sleep's entry as the wheel sees it (its protocol, TE1–TE7, is in
/// `time::entry`): it lives inside the sleeping future, and the wheel holds
/// a [`Pinned`] to it.
pub(crate) trait Sleeper: Send + Sync {
    /// Called under the wheel lock by the pass that takes the entry out as
    /// due: marks it fired and takes its waker out (no user code; TL2),
    /// the pass's last access to the entry (TE7). The caller wakes the
    /// waker once the lock is released.
    fn fire(&self) -> Option<Waker>;
}

/// What the wheel holds: a sleep's entry or one of the kernel's timers.
pub(crate) enum Timer {
    Sleep(Pinned<dyn Sleeper>),
    Kernel(TimerEvent),
}

/// The entries one firing pass took out of the wheel, in firing order.
#[derive(Default)]
pub(crate) struct Fired {
    /// The fired sleeps' wakers, to be woken with no lock held.
    pub(crate) sleepers: Vec<Waker>,
    /// Kernel timers, to be processed under the kernel lock.
    pub(crate) events: Vec<TimerEvent>,
    /// Sleeps fired with no waker registered (counted, not woken).
    pub(crate) quiet: usize,
}

impl Fired {
    pub(crate) fn len(&self) -> usize {
        self.sleepers.len() + self.quiet + self.events.len()
    }
}

/// A pending timer of the service: the shard that holds it and its key
/// in that shard's wheel (TL4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct TimerKey {
    shard: u32,
    key: WheelKey,
}

/// TL5: how late another worker's home shard may run before a thread
/// that does not own it fires it (one wheel tick).
pub(crate) const FOREIGN_SLACK: Duration = Duration::from_millis(1);

/// [`FOREIGN_SLACK`] in nanoseconds.
const FOREIGN_SLACK_NS: u64 = FOREIGN_SLACK.as_nanos() as u64;

thread_local! {
    /// TL5: this thread's home shard, as (the service's address, shard);
    /// the address is compared, never dereferenced. `(0, 0)`: none.
    static HOME: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// One shard of the timer service: a wheel behind its own lock and the
/// shard's K8 hint.
struct Shard {
    /// Rule K8 for this shard: no timer in it is due before this instant
    /// (nanoseconds; `u64::MAX`: none). On a cache line of its own: every
    /// driver reads it between batches, and arming writes the wheel's.
    hint: crossbeam_utils::CachePadded<AtomicU64>,
    wheel: Mutex<TimerWheel<Timer>>,
}

/// The timer service: the wheel, sharded (TL4), each shard behind its own
/// lock with its own K8 hint; the first `owned` shards are workers' home
/// shards (TL5).
pub(crate) struct Timers {
    shards: Box<[crossbeam_utils::CachePadded<Shard>]>,
    /// TL5: shards `0..owned` are the home shards of workers `0..owned`;
    /// the others are shared (at least one).
    owned: usize,
}

/// Restores a thread's previous home shard when dropped (TL5).
pub(crate) struct HomeGuard {
    previous: (usize, usize),
}

impl Drop for HomeGuard {
    fn drop(&mut self) {
        let _ = HOME.try_with(|h| h.set(self.previous));
    }
}

impl Timers {
    /// A service of one shard.
    #[cfg(test)]
    pub(crate) fn new(start: Time) -> Self {
        Self::sharded(start, 1, 0)
    }

    /// A service of `shards` shards (at least one), the first `owned` of
    /// them workers' home shards (TL5; at least one shard stays shared).
    pub(crate) fn sharded(start: Time, shards: usize, owned: usize) -> Self {
        let count = shards.max(1);
        let shards = (0..count)
            .map(|_| {
                crossbeam_utils::CachePadded::new(Shard {
                    hint: crossbeam_utils::CachePadded::new(AtomicU64::new(u64::MAX)),
                    wheel: Mutex::new(TimerWheel::new(start)),
                })
            })
            .collect();
        Self {
            shards,
            owned: owned.min(count - 1),
        }
    }

    /// TL5: makes shard `worker` the calling thread's home shard (if the
    /// service has one for that worker; otherwise the thread has none)
    /// until the guard is dropped.
    pub(crate) fn enter_home(&self, worker: usize) -> HomeGuard {
        let home = if worker < self.owned {
            (self.address(), worker)
        } else {
            (0, 0)
        };
        HomeGuard {
            previous: HOME.try_with(|h| h.replace(home)).unwrap_or((0, 0)),
        }
    }

    /// TL5: the calling thread has no home shard until the guard is
    /// dropped (a worker thread blocking in `block_in_place`).
    pub(crate) fn leave_home() -> HomeGuard {
        HomeGuard {
            previous: HOME.try_with(|h| h.replace((0, 0))).unwrap_or((0, 0)),
        }
    }

    /// The service's identity for [`HOME`] (compared, never dereferenced).
    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// TL5: the calling thread's home shard in this service, if any.
    fn home(&self) -> Option<usize> {
        if self.owned == 0 {
            return None;
        }
        let (service, shard) = HOME.try_with(Cell::get).unwrap_or((0, 0));
        (service == self.address()).then_some(shard)
    }

    /// TL5: when the calling thread fires shard `i` whose K8 hint is
    /// `hint`: at once if it is the thread's home or a shared shard, else
    /// `FOREIGN_SLACK` later.
    fn due_at(&self, i: usize, hint: u64, home: Option<usize>) -> u64 {
        if i < self.owned && home != Some(i) {
            hint.saturating_add(FOREIGN_SLACK_NS)
        } else {
            hint
        }
    }

    /// Locks one shard's wheel. No user code runs under this lock (TL2),
    /// so poisoning can only come from a bug here; we still recover the
    /// data.
    fn lock(shard: &Shard) -> MutexGuard<'_, TimerWheel<Timer>> {
        shard.wheel.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// TL4, TL5: the shard a sleep spread by `spread` (its task id's
    /// bits) goes to: the calling thread's home shard, else the shared
    /// shard `spread` picks.
    fn shard_for(&self, spread: u64) -> usize {
        self.home().unwrap_or_else(|| {
            // The shard count is small; the remainder fits `usize`.
            let shared = (self.shards.len() - self.owned) as u64;
            self.owned + (spread % shared) as usize
        })
    }

    /// Rule K8 (with TL5's slack): when the calling thread must next fire
    /// something, the earliest of its shards' hints (a shard it does not
    /// own counted `FOREIGN_SLACK` later; nanoseconds, `u64::MAX`: no
    /// timer), each read with `order`.
    pub(crate) fn hint(&self, order: Ordering) -> u64 {
        let home = self.home();
        self.shards
            .iter()
            .enumerate()
            .map(|(i, s)| self.due_at(i, s.hint.load(order), home))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Inserts `timer` into shard `i`, lowering that shard's K8 hint if it
    /// is now the earliest there (both under the shard's lock).
    fn insert(&self, i: usize, deadline: Time, timer: Timer) -> TimerKey {
        let shard = &self.shards[i];
        let mut wheel = Self::lock(shard);
        // K8: the hint is written only under the shard's lock, so a load
        // and a store are a `fetch_min`, without writing the shared line
        // (read by every driver between batches) when it is already earlier.
        let nanos = deadline.as_nanos();
        if nanos < shard.hint.load(Ordering::Relaxed) {
            shard.hint.store(nanos, Ordering::Release);
        }
        TimerKey {
            // At most a few dozen shards.
            shard: i as u32,
            key: wheel.insert(deadline, timer),
        }
    }

    /// Arms a sleep entry (rule TE2 in `time::entry`: the caller marked it
    /// armed before; the wheel's reference is taken out only by a firing
    /// pass, which marks it fired, or by [`cancel`](Self::cancel)), in the
    /// shard `spread` picks (TL4: the sleeping task's id).
    pub(crate) fn arm_sleep(
        &self,
        deadline: Time,
        entry: Pinned<dyn Sleeper>,
        spread: u64,
    ) -> TimerKey {
        self.insert(self.shard_for(spread), deadline, Timer::Sleep(entry))
    }

    /// Arms one of the kernel's timers (called under the kernel lock: TL1),
    /// in the first shared shard (TL5).
    pub(crate) fn arm(&self, deadline: Time, event: TimerEvent) -> TimerKey {
        self.insert(self.owned, deadline, Timer::Kernel(event))
    }

    /// Removes the entry for `key`; false if it already fired or was
    /// removed. Either way, a firing pass that took it out has finished
    /// with it (TE7: the pass runs under the lock this takes). The payload
    /// is dropped after the lock is released (TL2).
    pub(crate) fn cancel(&self, key: TimerKey) -> bool {
        let removed = Self::lock(&self.shards[key.shard as usize]).cancel(key.key);
        removed.is_some()
    }

    /// Takes every entry due at `now` out of the shards whose hint says one
    /// may be (another worker's home shard only once `FOREIGN_SLACK` late,
    /// TL5; sleep entries are marked fired on the way, TE2) and refreshes
    /// each such shard's K8 hint, one shard's critical section at a time
    /// (TL1). The caller wakes and processes them.
    pub(crate) fn take_due(&self, now: Time) -> Fired {
        let mut out = Fired::default();
        let mut due = Vec::new();
        let home = self.home();
        for (i, shard) in self.shards.iter().enumerate() {
            if self.due_at(i, shard.hint.load(Ordering::Acquire), home) > now.as_nanos() {
                continue;
            }
            let mut wheel = Self::lock(shard);
            wheel.advance(now, &mut due);
            // K8: a fresh lower bound (O(levels); cancelled timers and the
            // wheel's slot granularity only ever make it early). When the
            // cursor already sits in the slot of a pending deadline the
            // bound is `now`, which would make an idle driver spin until
            // it; the exact deadline (the head of that sorted slot, wheel
            // rule 8) lets it sleep instead.
            let next = match wheel.next_deadline_bound() {
                Some(bound) if bound <= now => wheel.next_deadline(),
                other => other,
            }
            .map_or(u64::MAX, Time::as_nanos);
            shard.hint.store(next, Ordering::Release);
            // One allocation per pass, not one per doubling.
            out.sleepers.reserve(due.len());
            for (_, timer) in due.drain(..) {
                match timer {
                    // TE7: the pass's last touch of the entry, under the lock.
                    Timer::Sleep(entry) => match entry.get().fire() {
                        Some(waker) => out.sleepers.push(waker),
                        None => out.quiet += 1,
                    },
                    Timer::Kernel(event) => out.events.push(event),
                }
            }
        }
        out
    }

    /// The exact earliest pending deadline (the lab's next time jump).
    pub(crate) fn next_deadline(&self) -> Option<Time> {
        self.shards
            .iter()
            .filter_map(|s| Self::lock(s).next_deadline())
            .min()
    }

    /// Pending entries.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| Self::lock(s).len()).sum()
    }

    /// Empties every shard and returns their wheels (to break the reference
    /// cycles of a runtime abandoned mid-run), for the caller to drop
    /// outside the locks (TL2).
    pub(crate) fn teardown(&self) -> Vec<TimerWheel<Timer>> {
        self.shards
            .iter()
            .map(|shard| {
                let mut wheel = Self::lock(shard);
                let now = wheel.now();
                shard.hint.store(u64::MAX, Ordering::Release);
                std::mem::replace(&mut *wheel, TimerWheel::new(now))
            })
            .collect()
    }
}

impl Kernel {
    /// The timer service the kernel arms its own timers in (shared with
    /// the execution core, which arms sleeps and fires).
    pub(crate) fn timers(&self) -> Arc<Timers> {
        self.timers.clone()
    }

    /// Arms one of the kernel's timers (lock order kernel → wheel, TL1).
    pub(super) fn arm_timer(&mut self, deadline: Time, event: TimerEvent) -> TimerKey {
        self.timers.arm(deadline, event)
    }

    #[cfg(test)]
    pub(crate) fn pending_timer_count(&self) -> usize {
        self.timers.len()
    }

    /// K4: task `t`'s grace period is over if its deadline passed: it is
    /// force-dropped at its next poll (unless it is finishing already or
    /// runs uninterruptible code).
    pub(super) fn grace_expired(&mut self, t: TaskId, now: Time) {
        let Some(rec) = self.task_mut(t) else { return };
        if rec.grace_deadline.is_some_and(|d| d <= now)
            && rec.state.is_cancel_requested()
            && rec.force_drop.is_none()
            && !rec.uninterruptible
        {
            rec.force_drop = Some(ForceDropCause::GraceExpired);
            if let Some(a) = &rec.attention {
                a.request_attention();
            }
            let waker = rec.waker.clone();
            self.actions.wakes.push(waker);
        }
    }

    /// GQ1: task `t` (alive, cancelled) must be force-dropped at `deadline`.
    pub(super) fn push_grace(&mut self, t: TaskId, deadline: Time) {
        if let Some(rec) = self.task_mut(t)
            && !std::mem::replace(&mut rec.in_grace_queue, true)
        {
            self.grace.live += 1;
        }
        self.grace.entries.push(Reverse((deadline, t)));
        if self.grace.armed.is_none_or(|(at, _)| deadline < at) {
            self.arm_grace_queue(deadline);
        }
    }

    /// Arms the grace queue's one wheel timer at `deadline`.
    fn arm_grace_queue(&mut self, deadline: Time) {
        if let Some((_, key)) = self.grace.armed.take() {
            self.timers.cancel(key);
        }
        let key = self.arm_timer(deadline, TimerEvent::GraceQueue);
        self.grace.armed = Some((deadline, key));
    }

    /// GQ3: a task with an entry completed; the last one empties the queue.
    pub(super) fn left_grace_queue(&mut self) {
        self.grace.live -= 1;
        if self.grace.live == 0 {
            self.grace.entries.clear();
            if let Some((_, key)) = self.grace.armed.take() {
                self.timers.cancel(key);
            }
        }
    }

    /// GQ2: the queue's timer fired: every due entry is checked (K4).
    fn grace_queue_due(&mut self, now: Time) {
        self.grace.armed = None;
        while let Some(&Reverse((deadline, t))) = self.grace.entries.peek() {
            if deadline > now {
                self.arm_grace_queue(deadline);
                return;
            }
            self.grace.entries.pop();
            self.grace_expired(t, now);
        }
    }

    /// Processes the kernel timers a firing pass took out of the wheel, in
    /// firing order (TL3).
    pub(crate) fn fire_kernel_timers(&mut self, events: Vec<TimerEvent>, now: Time) {
        for event in events {
            match event {
                TimerEvent::GraceQueue => self.grace_queue_due(now),
                TimerEvent::RegionGrace(r) => {
                    if let Some(rec) = self.region_mut(r) {
                        rec.grace_timer = None;
                    }
                    // LT8: light tasks cancelled in place are registered
                    // (with their stored cancel) to be force-dropped.
                    self.register_light_tasks(r);
                    for t in self.region_tasks(r) {
                        self.grace_expired(t, now);
                    }
                }
                TimerEvent::RegionDeadline(r) => {
                    if let Some(rec) = self.region_mut(r) {
                        rec.deadline_timer = None;
                    }
                    self.region_deadline_passed(r, now);
                }
                TimerEvent::Deadline(t) => {
                    if let Some(rec) = self.task_mut(t) {
                        rec.deadline_timer = None;
                    }
                    self.request_cancel(
                        t,
                        CancelReason::deadline().with_message("budget deadline passed"),
                        now,
                    );
                }
            }
        }
    }

    /// Fires every timer due at `now` in one kernel call (the kernel's unit
    /// tests; the drivers go through `Core::fire_timers`, which wakes
    /// sleepers without the kernel lock).
    #[cfg(test)]
    pub(crate) fn fire_timers(&mut self, now: Time) -> usize {
        let fired = self.timers.take_due(now);
        let n = fired.len();
        if n > 0 {
            self.emit(TraceKind::TimerFire { count: n });
        }
        for waker in fired.sleepers {
            waker.wake();
        }
        self.fire_kernel_timers(fired.events, now);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    /// A sleep entry that records what the wheel did to it; its waker
    /// counts its wakes.
    #[derive(Default)]
    struct Probe {
        fired: AtomicBool,
        woken: Arc<AtomicUsize>,
    }

    struct CountWake(Arc<AtomicUsize>);

    impl std::task::Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Sleeper for Probe {
        fn fire(&self) -> Option<Waker> {
            assert!(!self.fired.swap(true, Ordering::SeqCst), "fired twice");
            Some(Waker::from(Arc::new(CountWake(self.woken.clone()))))
        }
    }

    /// A probe that lives for the rest of the test binary (PR1 by leaking).
    fn probe() -> &'static Probe {
        Box::leak(Box::default())
    }

    fn pinned(p: &'static Probe) -> Pinned<dyn Sleeper> {
        Pinned::from_static(p)
    }

    /// K8: the hint never passes the next deadline, and once the wheel's
    /// cursor is inside the deadline's millisecond it is the exact deadline
    /// (not `now`, which would keep an idle driver from sleeping).
    #[test]
    fn the_timer_hint_is_early_but_exact_inside_the_deadlines_millisecond() {
        let timers = Timers::new(Time::ZERO);
        assert_eq!(
            timers.hint(Ordering::Acquire),
            u64::MAX,
            "no timer: no hint"
        );
        let deadline = ms(20) + Duration::from_micros(500);
        timers.arm_sleep(deadline, pinned(probe()), 0);
        assert_eq!(timers.hint(Ordering::Acquire), deadline.as_nanos());
        timers.take_due(ms(5));
        let early = timers.hint(Ordering::Acquire);
        assert!(early <= deadline.as_nanos(), "the hint passed the deadline");
        timers.take_due(ms(20) + Duration::from_micros(100));
        assert_eq!(timers.hint(Ordering::Acquire), deadline.as_nanos());
        assert_eq!(timers.take_due(deadline).len(), 1);
        assert_eq!(timers.hint(Ordering::Acquire), u64::MAX);
    }

    /// TL1/TL2: a pass marks its sleepers fired under the wheel lock and
    /// hands them out unwoken, sleepers and kernel timers apart, each in
    /// firing order; a fired entry can no longer be cancelled.
    #[test]
    fn a_firing_pass_marks_sleepers_and_leaves_waking_to_the_caller() {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let root = k.create_root_region(Budget::INFINITE);
        let t = spawn(&mut k, root);
        let timers = k.timers();
        let late = probe();
        let early = probe();
        let late_key = timers.arm_sleep(ms(3), pinned(late), 0);
        timers.arm_sleep(ms(1), pinned(early), 0);
        timers.arm(ms(2), TimerEvent::Deadline(t));
        assert_eq!(timers.len(), 3);
        let fired = timers.take_due(ms(3));
        assert_eq!((fired.sleepers.len(), fired.events.len()), (2, 1));
        assert!(early.fired.load(Ordering::SeqCst) && late.fired.load(Ordering::SeqCst));
        assert_eq!(
            early.woken.load(Ordering::SeqCst),
            0,
            "woken under the lock"
        );
        // Firing order: the early probe's waker is first.
        for waker in fired.sleepers {
            waker.wake();
            assert_eq!(early.woken.load(Ordering::SeqCst), 1, "firing order");
        }
        assert_eq!(late.woken.load(Ordering::SeqCst), 1);
        assert!(matches!(fired.events[0], TimerEvent::Deadline(id) if id == t));
        assert!(!timers.cancel(late_key), "a fired entry is gone");
        assert_eq!(timers.len(), 0);
    }

    /// TL4, K8: sleeps spread over the shards by their task ids; the
    /// service's hint is the earliest shard's; a pass fires what is due in
    /// every shard and refreshes only those; a key cancels in its own
    /// shard; teardown empties them all.
    #[test]
    fn a_sharded_service_spreads_sleeps_and_fires_every_shard() {
        let timers = Timers::sharded(Time::ZERO, 4, 0);
        let probes: Vec<_> = (0..8).map(|_| probe()).collect();
        let keys: Vec<_> = probes
            .iter()
            .enumerate()
            .map(|(i, p)| timers.arm_sleep(ms(10 + i as u64), pinned(p), i as u64))
            .collect();
        let shards: std::collections::BTreeSet<_> = keys.iter().map(|k| k.shard).collect();
        assert_eq!(shards.len(), 4, "every shard holds some: {keys:?}");
        assert_eq!(timers.hint(Ordering::Acquire), ms(10).as_nanos());
        assert!(timers.cancel(keys[1]), "cancelled in its shard");
        assert!(!timers.cancel(keys[1]), "once");
        let fired = timers.take_due(ms(13));
        assert_eq!(
            fired.sleepers.len(),
            3,
            "10, 12 and 13 ms, across three shards"
        );
        assert!(probes[0].fired.load(Ordering::SeqCst) && probes[3].fired.load(Ordering::SeqCst));
        assert!(!probes[1].fired.load(Ordering::SeqCst), "cancelled");
        assert!(
            timers.hint(Ordering::Acquire) <= ms(14).as_nanos(),
            "K8: never late"
        );
        assert_eq!(timers.len(), 4);
        assert_eq!(timers.next_deadline(), Some(ms(14)));
        let wheels = timers.teardown();
        assert_eq!(wheels.iter().map(TimerWheel::len).sum::<usize>(), 4);
        assert_eq!(
            (timers.len(), timers.hint(Ordering::Acquire)),
            (0, u64::MAX)
        );
    }

    /// TL5: a worker's sleeps go to its home shard, which it fires as soon
    /// as they are due and every other thread only `FOREIGN_SLACK` later
    /// (and parks accordingly); a thread without a home (or a worker beyond
    /// the owned shards, or one that left its home) arms in the shared
    /// shards, which everyone fires on time; the kernel's timers go to the
    /// first shared shard.
    #[test]
    fn a_workers_sleeps_wait_in_its_home_shard_and_others_fire_them_only_late() {
        let timers = Timers::sharded(Time::ZERO, 4, 2);
        let slack = FOREIGN_SLACK.as_nanos() as u64;
        let (mine, shared) = (probe(), probe());
        let key = {
            let _home = timers.enter_home(1);
            let key = timers.arm_sleep(ms(5), pinned(mine), 0);
            {
                let _away = Timers::leave_home();
                let key = timers.arm_sleep(ms(5), pinned(shared), 7);
                assert_eq!(key.shard, 3, "left its home: shared, by task id");
            }
            assert_eq!(timers.hint(Ordering::Acquire), ms(5).as_nanos());
            key
        };
        assert_eq!(key.shard, 1, "the home shard");
        {
            let _beyond = timers.enter_home(2);
            let key = timers.arm_sleep(ms(50), pinned(probe()), 6);
            assert_eq!(key.shard, 2, "no home beyond the owned shards");
        }
        let kernel = timers.arm(ms(60), TimerEvent::GraceQueue);
        assert_eq!(kernel.shard, 2, "the first shared shard");
        // Another worker, and a thread with no home: the shared sleep on
        // time, the foreign one only once it is late by the slack.
        for home in [Some(0), None] {
            let _home = home.map(|w| timers.enter_home(w));
            assert_eq!(timers.hint(Ordering::Acquire), ms(5).as_nanos());
        }
        let _other = timers.enter_home(0);
        assert_eq!(timers.take_due(ms(5)).sleepers.len(), 1);
        assert!(shared.fired.load(Ordering::SeqCst));
        assert!(!mine.fired.load(Ordering::SeqCst), "not yet: the owner may");
        assert_eq!(timers.hint(Ordering::Acquire), ms(5).as_nanos() + slack);
        assert_eq!(timers.take_due(ms(5) + FOREIGN_SLACK).sleepers.len(), 1);
        assert!(
            mine.fired.load(Ordering::SeqCst),
            "late by the slack at most"
        );
        drop(_other);
        // The owner fires its own at once.
        let _owner = timers.enter_home(1);
        let again = probe();
        timers.arm_sleep(ms(7), pinned(again), 0);
        assert_eq!(timers.take_due(ms(7)).sleepers.len(), 1);
        assert!(again.fired.load(Ordering::SeqCst));
    }

    /// The kernel arms and cancels its own timers in the shared service.
    #[test]
    fn kernel_timers_live_in_the_shared_service() {
        let k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let timers = k.timers();
        let probe = probe();
        let key = timers.arm_sleep(ms(1), pinned(probe), 0);
        assert_eq!(k.pending_timer_count(), 1);
        assert!(timers.cancel(key));
        assert_eq!(k.pending_timer_count(), 0);
        assert!(
            !probe.fired.load(Ordering::SeqCst),
            "a cancelled entry never fires"
        );
    }

    /// GQ1–GQ3: individual grace deadlines share one wheel timer; an entry
    /// for a deadline since lowered is skipped; the last live task out
    /// empties the queue and disarms its timer.
    #[test]
    fn grace_deadlines_share_one_timer_and_only_shorten() {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let root = k.create_root_region(Budget::INFINITE);
        let (a, b) = (spawn(&mut k, root), spawn(&mut k, root));
        k.request_cancel(a, CancelReason::user("a"), ms(0)); // User: 10 s
        k.request_cancel(b, CancelReason::user("b"), ms(5));
        assert_eq!(k.pending_timer_count(), 1, "one timer for the queue");
        // A stronger reason lowers `b`'s deadline (Shutdown: 200 ms).
        k.request_cancel(b, CancelReason::shutdown(), ms(10));
        let dropped = |k: &Kernel, t| k.task(t).unwrap().force_drop;
        k.fire_timers(ms(210));
        assert_eq!(dropped(&k, b), Some(ForceDropCause::GraceExpired));
        assert_eq!(dropped(&k, a), None);
        assert_eq!(k.pending_timer_count(), 1, "re-armed at the next entry");
        k.complete_task(b, TaskEnd::Dropped, false, ms(211));
        k.fire_timers(ms(10_000));
        assert_eq!(dropped(&k, a), Some(ForceDropCause::GraceExpired));
        // `b`'s stale 10 s entry came due too and was skipped (it is gone).
        k.complete_task(a, TaskEnd::Dropped, false, ms(10_001));
        assert_eq!(k.pending_timer_count(), 0, "GQ3: nothing left armed");
    }

    /// GQ3: a cancelled task that finishes before its grace period leaves
    /// no timer behind once it was the last one with an entry.
    #[test]
    fn a_cancelled_task_that_finishes_in_time_leaves_no_grace_timer() {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let root = k.create_root_region(Budget::INFINITE);
        let t = spawn(&mut k, root);
        k.request_cancel(t, CancelReason::user("stop"), ms(0));
        assert_eq!(k.pending_timer_count(), 1);
        k.complete_task(t, TaskEnd::Returned, false, ms(1));
        assert_eq!(k.pending_timer_count(), 0);
    }
}
