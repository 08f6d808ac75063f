//! Light tasks: spawned tasks the kernel keeps no record of until it has
//! to act on them, so a plain task's spawn and completion never take the
//! kernel lock.
//!
//! Most tasks are spawned with no budget of their own into a region
//! without one, are never cancelled and open no region (their
//! obligations are counted in their cells' home words): all the kernel
//! does for them is count them in their region
//! (K1) and list them so a region cancel can find them (K2). A region's
//! [`LightTasks`] does exactly that behind its own small lock, which the
//! spawner and the completing worker take instead of the kernel lock.
//! The moment the kernel must act on a light task (a cancel of its region
//! or of the task itself, a mask, a region it opens, a blocking section, a
//! completion that is not a plain return or that leaked an obligation;
//! obligations themselves are counted in the cell's home word, rule OB9,
//! without the kernel) it
//! *registers* it: takes its cell out of the set and makes the full
//! [`TaskRecord`](super::TaskRecord), as if the task had been spawned
//! through the kernel and had polled without telling it (rule A1 already
//! covers such a record). From then on the task is an ordinary kernel task.
//!
//! The set is an intrusive doubly linked list of the task cells
//! themselves ([`List`], rules IL1–IL5 in `types::intrusive`): each cell
//! carries its two links (`Attention::light_links`), so joining the set
//! (`spawn`) and leaving it (`finish`) are a few pointer writes in the
//! cell and its neighbours, with no hashing and no allocation. The list
//! holds one reference to each linked cell (IL1: an `Arc` turned into a
//! raw pointer when linked, back into the `Arc` it hands out when
//! unlinked), so the kernel still gets `Arc<dyn Attention>` entries. The
//! links belong to the set: only the holder of its lock reads or writes
//! them (IL2). Finding a task by id (`take`, `get`, `contains`: the
//! kernel registering one task, diagnostics) walks the list from its
//! oldest task; only those rare paths do.
//!
//! Rules (cited as LT1–LT10):
//! - LT1 (one home): a live spawned task is either in its region's set
//!   (light) or in the kernel's task map (registered), never both and never
//!   neither. Only the kernel, under its lock, moves a task from the set to
//!   the map (`take`), and only the task's own completion removes it from
//!   the set for good (`finish`); both happen under the set's lock, so
//!   exactly one of them unlinks the cell, and the completion that finds
//!   it unlinked knows the task is registered and completes through the
//!   kernel. A cell names the one set it may ever be linked into (its
//!   region's, `Attention::light_set`), checked on every link and unlink,
//!   so a cell is in that set's list or in none (IL3).
//! - LT2 (the gate): spawns into the set are refused once the region is
//!   cancelled or stops accepting spawns. A region cancel shuts each
//!   shard's gate under that shard's lock while it holds the kernel lock
//!   (`shut`), and the close shuts it where it finds the set empty, so a
//!   spawn either is refused or is in the set the cancel's sweep (LT10)
//!   cancels, which from then on only shrinks.
//! - LT3 (close waits for light tasks): a region leaves `Draining` only
//!   through [`LightTasks::seal_if_empty`], which shuts the gate if the set
//!   is empty and otherwise records that the kernel waits. The completion
//!   that empties a waited-on set (under its lock) tells the kernel to
//!   advance the region, so the last light task out is never missed.
//! - LT4 (eligibility): only spawned tasks with an unlimited budget, in a
//!   region whose own budget is unlimited, on a runtime that records no
//!   trace, are spawned light (anything the kernel must count per poll
//!   or time per task needs a record from the start). The lab records a
//!   trace, so its tasks are always registered.
//! - LT5 (ids): task ids come from one per-runtime counter shared by both
//!   kinds of spawn, so ids are unique, never reused (K7) and increase in
//!   spawn order; a cancel registers a region's light tasks in id order.
//!   The task statistics are derived from it (spawned = ids used,
//!   completed = spawned − live), so no shared counter is written per
//!   light spawn or completion.
//! - LT6 (lock order): kernel → light set (its shards in index order,
//!   then the rest, LT9) → a cell's cancel slot. A light
//!   spawn or completion takes only the set's lock (and its own slot) and
//!   calls the kernel after releasing them.
//! - LT7 (cancelled in place): a cancel of a light task is stored in its
//!   cell, not by registering it: the reason (strengthened as K3 says), the
//!   grace deadline (only ever shortened, K4) and whether the task has
//!   acknowledged it, in the cell's cancel slot ([`LightCancel`]), behind the
//!   slot's own lock. A region cancel's sweep does this for every task in
//!   the set (LT10); an abort through a handle does it too; neither holds
//!   another lock meanwhile. A request that outranks the stored one raises
//!   the cell's cancel hint and makes its wake edge first, in one RMW of the
//!   state word under the slot's lock (SW14), and decides by the value it replaced: a
//!   completed task is not cancelled, a registered one (SW7) is cancelled
//!   through the kernel, any other gets the request stored. The completion
//!   marks the word COMPLETE in one RMW and reads the slot (under its lock)
//!   only if the value it replaced had a hint: the two RMWs are ordered,
//!   so a request either is seen by the completion or sees COMPLETE. The
//!   kernel sets REGISTERED before it reads the slot to copy it into the
//!   new record, so every request lands either in the slot it copies or
//!   in the record. A light task's own checkpoint acknowledges under the
//!   slot's lock unless REGISTERED is set.
//! - LT9 (shards): a set keeps its light tasks in `SHARDS` lists (one,
//!   for a region opened light), each behind its own lock with its own
//!   copy of the gate (LT2); a cell
//!   joins and leaves the shard it names (`Attention::light_shard`: a task
//!   cell, the shard of the thread that spawned it), so the spawns and
//!   completions of different workers take different locks. Whatever
//!   concerns the whole set (its light regions, finalizers, the kernel's
//!   and a light close's wait) sits behind one more lock, after the shards
//!   in the lock order (shards in index order, then it). A sweep shuts
//!   each shard's gate under that shard's lock as it goes; the close
//!   checks emptiness with every lock held; a wait for the set to empty
//!   (LT3, LR4) is marked in every shard, and a completion that empties
//!   its shard while marked re-checks the whole set with every lock held,
//!   ending the wait exactly once.
//! - LT10 (the sweep runs without the kernel lock): a region cancel, under
//!   the kernel lock, records the region's reason, shuts the gate (LT2) and
//!   queues a sweep of its light tasks ([`LightSweep`](super::LightSweep)),
//!   run once the kernel lock is released: per shard, under the shard's
//!   lock, it takes a reference to each task, then requests each task's
//!   cancellation (LT7) and wakes it (SW14) with no lock held. A task the
//!   kernel registers before the sweep reaches it gets the region's cancel
//!   at its registration (`Kernel::register_light`), as if it had been
//!   registered when the region was cancelled; the sweep finds it
//!   REGISTERED and leaves it to the kernel.
//! - RF1 (finalizers without the kernel): the set also keeps its region's
//!   finalizers (K6), so a `Cx` that holds the set (a light-eligible
//!   region's) registers one under the set's lock alone; any other goes
//!   through the kernel, which pushes to the same list.
//! - RF3 (taken in batches, still LIFO): the finalizer task takes the
//!   whole list in one critical section and runs it from its newest;
//!   before each finalizer it reads a hint that `defer` raises under the
//!   lock when the list turns non-empty, and takes the new ones first
//!   (they are newer), so the order is what one pop per finalizer would
//!   give, at one lock per batch. A registration the hint misses (from
//!   another thread, racing) is taken when the batch runs out.
//! - RF2 (sealed at the close): the kernel closes a finalizing region
//!   only through [`LightTasks::seal_finalizers`], which refuses and seals
//!   in one critical section: a registration either lands before the
//!   seal (and the kernel runs the finalizers again) or is refused.
//! - LT8 (the kernel takes over when it must): a cancelled light task that
//!   completes in the poll that observes the cancel (the common case)
//!   never meets the kernel: its completion reads the slot and delivers
//!   `Cancelled` (acknowledged) or its value (not). The kernel registers it
//!   when anything more is needed: a poll that returns `Pending` while a
//!   cancel is pending (so its grace deadline is armed, K4, and its cleanup
//!   polls counted), a first poll of a task cancelled before it started
//!   (dropped unpolled), a region grace timer firing (force drop), an
//!   observation from outside the task's own poll, or any end that is not
//!   a plain return. A cancel in a cell is not counted in the A2 gauge
//!   (no shared counter is written per light cancel): the task's own `Cx`
//!   reads the cell's hint during its polls and asks the kernel anywhere
//!   else; registration counts it, and the kernel's completion uncounts it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Waker;

// The imports the loom model (`loom_tests` below) replaces.
use crate::loom::sync::{Mutex, MutexGuard};

use super::{Attention, Finalizer};
use crate::types::intrusive::{Linked, Links, List};
use crate::types::{CancelReason, RegionId, TaskId, Time};

/// A light task's cancellation, kept in its cell until the kernel
/// registers it (LT7), then copied into its record.
#[derive(Clone, Debug)]
pub(crate) struct LightCancel {
    /// The strongest reason requested (K3).
    pub(crate) reason: Arc<CancelReason>,
    /// When its cleanup must be over (K4: only ever moves earlier).
    pub(crate) grace_deadline: Time,
    /// The task observed it (the record's `Cancelling`).
    pub(crate) acked: bool,
}

/// What a cancel request on a light task's cell did (LT7).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LightRequest {
    /// Stored in the cell's slot (the reason was set or strengthened): the
    /// task must be woken to see it.
    Stored,
    /// The stored reason outranks it: nothing changed (K3).
    Unchanged,
    /// The kernel registered the task: cancel it through the kernel.
    Registered,
    /// The task completed: nothing to cancel.
    Complete,
}

// SAFETY: IL5 (`types::intrusive`): `Attention::light_links` returns a
// field of the cell, the same on every call (its documented contract; the
// task cell and the test cells return their `light_links` field).
unsafe impl Linked for dyn Attention {
    fn links(&self) -> &Links<dyn Attention> {
        self.light_links()
    }
}

/// A region's shared part outside the kernel lock: its light tasks
/// (LT1–LT10), its finalizers (RF1–RF3) and its light child regions
/// (LR1–LR6); see the module doc.
pub(crate) struct LightTasks {
    /// LT4: whether tasks (and light regions) may be opened light in this
    /// region at all.
    eligible: bool,
    /// The region this set belongs to.
    region: RegionId,
    /// LR1: for a region opened light, its parent's set and its owner
    /// (whose task runs its body); `None` for a region the kernel made.
    light: Option<LightRegion>,
    /// LT9: the light tasks, in shards, each behind its own lock; a cell
    /// stays in the shard it joined (`Attention::light_shard`).
    first: Mutex<Shard>,
    /// LT9: the other shards, for a region the kernel made that takes light
    /// tasks (the root's, a registered one: where many tasks of many
    /// workers meet); a region opened light (most hold a few tasks) has
    /// `first` alone, so its set stays small and its open and close take
    /// one shard lock, and a region that takes no light tasks (a budgeted
    /// one, any in the lab, LT4) needs no more.
    /// Each on cache lines of its own, so workers taking neighbouring
    /// shards do not share a line.
    more: Option<Box<[crossbeam_utils::CachePadded<Mutex<Shard>>; SHARDS - 1]>>,
    /// LT9: how many shards are used: `SHARDS` with `more`, else 1.
    used: usize,
    /// Everything else, behind one more lock (order LT9: the shards in
    /// index order, then this).
    inner: Mutex<Inner>,
    /// RF3: a finalizer was registered since the finalizer task last took
    /// the list (a hint: set under the lock by `defer`, cleared under it
    /// by `take_finalizers`).
    fin_added: AtomicBool,
}

/// LT9: how many shards a set's light tasks are spread over (a power of
/// two; two under loom, to keep the models small).
#[cfg(not(loom))]
pub(crate) const SHARDS: usize = 8;
#[cfg(loom)]
pub(crate) const SHARDS: usize = 2;

/// LT9: one shard of a set's light tasks.
struct Shard {
    /// LT2: this shard's gate; shut, with every other shard's, by a cancel
    /// sweep or the close, each under its own lock.
    open: bool,
    /// LT3, LR4: someone (the kernel closing the region, or its light
    /// close) waits for the set to empty; set in every shard at once.
    waits: bool,
    /// LT1: the light cells of this shard, linked through their own
    /// `light_links`, in the order they joined (IL1: the list holds one
    /// reference to each). Joining and leaving are O(1) and allocate
    /// nothing; finding a task by id walks the lists (only the kernel's
    /// rare by-id paths do).
    tasks: List<dyn Attention>,
    /// LR1, LT9: the light child regions opened on this shard's threads
    /// that the kernel has not registered, by owner then id (so a cancel
    /// of an owner finds its own, LR5). A region stays in the shard it
    /// joined (its `LightRegion::shard`), so opens and closes on different
    /// workers take different locks.
    regions: BTreeMap<(TaskId, RegionId), Arc<LightTasks>>,
}

impl Shard {
    fn new() -> Mutex<Shard> {
        Mutex::new(Shard {
            open: true,
            waits: false,
            tasks: List::new(),
            regions: BTreeMap::new(),
        })
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.regions.is_empty()
    }
}

/// LT9: a shard for cells made on this thread: a worker's spawns (and,
/// mostly, the completions of what it spawned) keep to one shard, whose
/// lock and lines the other workers rarely touch.
pub(crate) fn thread_shard() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.try_with(|s| *s).unwrap_or(0)
}

struct LightRegion {
    parent: Arc<LightTasks>,
    owner: TaskId,
    /// LT9: the parent's shard this region is listed in.
    shard: usize,
}

struct Inner {
    /// LT3: the kernel found the set non-empty when it wanted to close.
    kernel_waits: bool,
    /// LR1: the kernel has a record of this region (always, for a region
    /// the kernel made).
    registered: bool,
    /// LR4: the region future of this unregistered light region, its body
    /// done, waiting for the set to empty (woken by the member whose exit
    /// empties it, or by the registration).
    waiter: Option<Waker>,
    /// K6, RF1: the region's finalizers, run LIFO; `None` once the
    /// region closed (sealed, RF2).
    finalizers: Option<Vec<Finalizer>>,
    /// CS4: the reasons this set's sweeps lent to its cells' cancel slots,
    /// kept as long as the set (a region is cancelled a few times at most:
    /// each request must outrank the last, K3).
    lent: Vec<Arc<CancelReason>>,
}

/// LT3, LR3, LT9: no light task and no light child region in any shard.
fn all_empty(shards: &Shards<'_>) -> bool {
    shards.iter().flatten().all(|s| s.is_empty())
}

/// LT9: the locks of a set's used shards, taken in index order.
type Shards<'a> = [Option<MutexGuard<'a, Shard>>; SHARDS];

/// What [`LightTasks::close_light`] found (LR4).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LightClose {
    /// Closed without the kernel. `advance`: it was its parent's last
    /// member and the kernel waits to close the parent (LT3): the caller
    /// must call [`Kernel::light_tasks_drained`](super::Kernel::light_tasks_drained)
    /// on the parent.
    Closed { advance: bool },
    /// It still has members: the waker is stored, and the member whose
    /// exit empties the set (or the kernel registering the region) wakes
    /// it; then try again.
    Wait,
    /// It has finalizers, or the kernel registered it: close it through
    /// the kernel.
    Kernel,
}

impl Inner {
    /// LR1, LR4: marks the region registered (the parent's shard lock held)
    /// and hands back a waiting region future's waker, to be woken once
    /// every lock is released (the kernel's too: it runs no foreign code
    /// under its lock): the future must now close through the kernel.
    fn mark_registered(&mut self) -> Option<Waker> {
        self.registered = true;
        self.waiter.take()
    }
}

/// What a light task's completion found (LT1, LT3).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// The task was light; it is gone. `advance`: it was the last one and
    /// the kernel waits to close the region (LT3): the caller must call
    /// [`Kernel::light_tasks_drained`](super::Kernel::light_tasks_drained).
    Light { advance: bool },
    /// The task is registered: complete it through the kernel.
    Registered,
}

impl LightTasks {
    /// The set of region `region`, made by the kernel (registered).
    pub(crate) fn new(region: RegionId, eligible: bool) -> Arc<Self> {
        Self::with(region, eligible, None, true)
    }

    fn with(
        region: RegionId,
        eligible: bool,
        light: Option<LightRegion>,
        registered: bool,
    ) -> Arc<Self> {
        // LT9: only a set many workers' tasks meet in is sharded: a region
        // the kernel made that takes light tasks at all (LT4).
        let sharded = eligible && light.is_none();
        Arc::new(Self {
            eligible,
            region,
            used: if sharded { SHARDS } else { 1 },
            more: sharded.then(|| {
                Box::new(std::array::from_fn(|_| {
                    crossbeam_utils::CachePadded::new(Shard::new())
                }))
            }),
            light,
            first: Shard::new(),
            inner: Mutex::new(Inner {
                kernel_waits: false,
                registered,
                waiter: None,
                finalizers: Some(Vec::new()),
                lent: Vec::new(),
            }),
            fin_added: AtomicBool::new(false),
        })
    }

    /// A light region's place in its parent's lists: owner, then id (the
    /// order the kernel registers and reports them in).
    fn key(&self) -> (Option<TaskId>, RegionId) {
        (self.light.as_ref().map(|l| l.owner), self.region)
    }

    /// The region this set belongs to.
    pub(crate) fn region(&self) -> RegionId {
        self.region
    }

    /// LR1: the parent's set and the owner, if this region was opened
    /// light.
    pub(crate) fn light_parent(&self) -> Option<(&Arc<LightTasks>, TaskId)> {
        self.light.as_ref().map(|l| (&l.parent, l.owner))
    }

    /// LR2: opens a light child region (its id from `counters`), whose
    /// body runs in task `owner` (registered, LR5), unless this region takes no light
    /// spawns or its gate is shut (LT2): then the caller opens it through
    /// the kernel, which refuses it with the current reason.
    pub(crate) fn open_region(
        self: &Arc<Self>,
        counters: &TaskCounters,
        owner: TaskId,
    ) -> Option<Arc<LightTasks>> {
        // LT9: the opening thread's shard; its gate is the set's (LT2).
        self.open_region_in(thread_shard(), counters, owner)
    }

    /// [`open_region`](Self::open_region) into shard `i` (LT9; the loom
    /// models name the shard, their threads sharing one OS thread).
    fn open_region_in(
        self: &Arc<Self>,
        i: usize,
        counters: &TaskCounters,
        owner: TaskId,
    ) -> Option<Arc<LightTasks>> {
        if !self.eligible {
            return None;
        }
        let i = i % self.used;
        let mut shard = self.shard(i);
        if !shard.open {
            return None;
        }
        // The id only once the region is sure to open (the statistics
        // count every id handed out as a region).
        let id = counters.next_region_id();
        let parent = LightRegion {
            parent: self.clone(),
            owner,
            shard: i,
        };
        let child = Self::with(id, true, Some(parent), false);
        shard.regions.insert((owner, id), child.clone());
        Some(child)
    }

    /// LR1 (kernel side): takes light child region `id` of `owner` out of
    /// this set to register it, marking it registered before the lock is
    /// released; `None` if it is not here (registered already, or closed).
    /// A region future waiting for its close (LR4) must now close through
    /// the kernel: its waker is put in `wakes`, for the kernel to wake
    /// once its lock is released.
    pub(crate) fn take_region(
        &self,
        owner: TaskId,
        id: RegionId,
        wakes: &mut Vec<Waker>,
    ) -> Option<Arc<LightTasks>> {
        (0..self.used).find_map(|i| {
            let mut shard = self.shard(i);
            let child = shard.regions.remove(&(owner, id))?;
            // Lock order LR6: the parent's shard, then the child.
            wakes.extend(child.lock().mark_registered());
            Some(child)
        })
    }

    /// LR5 (kernel side): takes every light child region `owner` opened
    /// here, in id order, to register them (its cancel reaches them).
    /// Waiting region futures' wakers go to `wakes` (see `take_region`).
    pub(crate) fn take_regions_of(
        &self,
        owner: TaskId,
        wakes: &mut Vec<Waker>,
    ) -> Vec<Arc<LightTasks>> {
        let mut taken = Vec::new();
        for i in 0..self.used {
            let mut shard = self.shard(i);
            let keys: Vec<_> = shard
                .regions
                .range((owner, RegionId::MIN)..=(owner, RegionId::MAX))
                .map(|(k, _)| *k)
                .collect();
            for key in keys {
                let child = shard.regions.remove(&key).expect("listed above");
                wakes.extend(child.lock().mark_registered()); // LR6
                taken.push(child);
            }
        }
        taken.sort_unstable_by_key(|child| child.key());
        taken
    }

    /// LR4: closes this light region, its body done with `Ok`, without the
    /// kernel if nothing is left in it (no light task, no light child
    /// region, no finalizer) and the kernel has not registered it: seals
    /// it (gate shut, finalizers refused) and takes it out of its
    /// parent's set, in one critical section of both locks (parent first,
    /// LR6), so a registration either took it before (and the caller
    /// closes it through the kernel) or finds it gone. With members left,
    /// stores `waker` to be woken when the last leaves (or the kernel
    /// registers the region).
    pub(crate) fn close_light(&self, waker: &Waker) -> LightClose {
        let Some(LightRegion {
            parent,
            owner,
            shard,
        }) = &self.light
        else {
            return LightClose::Kernel;
        };
        // Lock order LT9, LR6: the parent's shard listing this region,
        // then this set's shards and `inner`.
        let mut up = parent.shard(*shard);
        let mut shards = self.lock_shards();
        let mut inner = self.lock();
        let finalizers = inner.finalizers.as_ref().is_some_and(|l| !l.is_empty());
        if inner.registered || finalizers {
            return LightClose::Kernel;
        }
        if !all_empty(&shards) {
            match &mut inner.waiter {
                Some(w) if w.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            }
            shards.iter_mut().flatten().for_each(|s| s.waits = true);
            return LightClose::Wait;
        }
        shards.iter_mut().flatten().for_each(|s| s.open = false);
        inner.finalizers = None;
        drop((inner, shards));
        up.regions.remove(&(*owner, self.region));
        // LT3, LR4: the parent may be waited for (every shard says so);
        // the whole set is checked with all its locks, after this one.
        let check = up.waits && up.is_empty();
        drop(up);
        let advance = check && parent.drained();
        LightClose::Closed { advance }
    }

    /// LT3, LR4, LT9: whoever emptied a shard (or the parent's last light
    /// region) while someone waited checks the whole set, all its locks
    /// held: if it is empty and still waited for, the waits end here,
    /// exactly once (a second caller finds them ended). Wakes a waiting
    /// light close (after the locks); returns whether the kernel waited.
    fn drained(&self) -> bool {
        let mut shards = self.lock_shards();
        let mut inner = self.lock();
        if !all_empty(&shards) || !shards.iter().flatten().any(|s| s.waits) {
            return false;
        }
        shards.iter_mut().flatten().for_each(|s| s.waits = false);
        let kernel = std::mem::take(&mut inner.kernel_waits);
        let waiter = inner.waiter.take();
        drop((inner, shards));
        if let Some(w) = waiter {
            w.wake(); // LR4: the region's light close can go on
        }
        kernel
    }

    /// The light child regions (a snapshot, in key order): for the
    /// kernel's diagnostics, which walk the light regions too.
    pub(crate) fn light_regions(&self) -> Vec<Arc<LightTasks>> {
        let mut all: Vec<_> = (0..self.used)
            .flat_map(|i| self.shard(i).regions.values().cloned().collect::<Vec<_>>())
            .collect();
        all.sort_unstable_by_key(|set| set.key());
        all
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No user code runs under this lock (entries are only moved, never
        // dropped here: `finish` hands its entry back to the caller).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// LT9: shard `i`'s lock (no user code runs under it either).
    fn shard(&self, i: usize) -> MutexGuard<'_, Shard> {
        let shard = match (i % self.used, &self.more) {
            (0, _) | (_, None) => &self.first,
            (i, Some(more)) => &more[i - 1],
        };
        shard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// LT9: every used shard's lock, taken in index order.
    fn lock_shards(&self) -> Shards<'_> {
        std::array::from_fn(|i| (i < self.used).then(|| self.shard(i)))
    }

    /// LT1 (one set per cell): `cell` names this set as the one it may be
    /// linked into. Checked before each link and unlink, which makes IL3
    /// (a node is in this list or in none) hold for every cell this set
    /// touches.
    fn assert_home(&self, cell: &dyn Attention) {
        assert!(
            cell.light_set().is_some_and(|set| std::ptr::eq(set, self)),
            "LT1: a cell is linked only into the light set it names"
        );
    }

    /// LT4: whether this region takes light spawns at all.
    pub(crate) fn is_eligible(&self) -> bool {
        self.eligible
    }

    /// Adds `task` (a cell naming this set, not yet in it), unless the gate
    /// is shut (LT2): then the spawn must go through the kernel, which
    /// refuses it with the current reason. O(1), no allocation.
    pub(crate) fn spawn(&self, task: Arc<dyn Attention>) -> bool {
        self.assert_home(&*task);
        let mut shard = self.shard(task.light_shard());
        if !shard.open {
            return false;
        }
        shard.tasks.push_back(task);
        true
    }

    /// LT1: task `cell` completed. Returns the set's reference to it (to be
    /// dropped by the caller, outside the lock) with what the completion
    /// must do next. `registered`: the task's REGISTERED bit (SW7) was seen
    /// set, so the lock is not needed to know. O(1), no allocation.
    pub(crate) fn finish(
        &self,
        cell: &(dyn Attention + 'static),
        registered: bool,
    ) -> (Finish, Option<Arc<dyn Attention>>) {
        if registered {
            return (Finish::Registered, None);
        }
        self.assert_home(cell);
        let mut shard = self.shard(cell.light_shard());
        // SAFETY: IL3: `cell` names this set (asserted above) and `spawn`
        // links a cell only into the set it names, in the shard it names
        // (LT9), so it is in this list or in none.
        match unsafe { shard.tasks.remove(cell) } {
            Some(entry) => {
                let check = shard.waits && shard.is_empty();
                drop(shard);
                let advance = check && self.drained();
                (Finish::Light { advance }, Some(entry))
            }
            None => (Finish::Registered, None),
        }
    }

    /// LT1 (kernel side): takes task `t` out of the set to register it,
    /// marking it registered before the lock is released. Walks the list
    /// from its oldest task (registration is rare: LT8).
    pub(crate) fn take(&self, t: TaskId) -> Option<Arc<dyn Attention>> {
        (0..self.used).find_map(|i| {
            let mut shard = self.shard(i);
            let entry = shard.tasks.remove_first(|cell| cell.light_id() == t)?;
            entry.mark_registered();
            Some(entry)
        })
    }

    /// LT1 (kernel side): takes `cell` (a cell naming this set) out of the
    /// set to register it, marking it registered before the lock is
    /// released; `None` if it is not in the set (registered already, or
    /// completed). O(1): for callers that hold the cell.
    pub(crate) fn take_cell(&self, cell: &(dyn Attention + 'static)) -> Option<Arc<dyn Attention>> {
        self.assert_home(cell);
        let mut shard = self.shard(cell.light_shard());
        // SAFETY: IL3: `cell` names this set (asserted above) and `spawn`
        // links a cell only into the set it names, in the shard it names
        // (LT9), so it is in this list or in none.
        let entry = unsafe { shard.tasks.remove(cell) }?;
        entry.mark_registered();
        Some(entry)
    }

    /// LT2, LR3, LT10 (a region cancel, under the kernel lock): shuts the
    /// gate (each shard's under its lock, then the light regions'), so from
    /// here on the set only shrinks, and takes every light child region
    /// (marked registered, LR6) for the kernel to register and cancel.
    /// Returns how many light tasks the set holds (the sweep cancels them
    /// once the kernel lock is released, [`sweep_cancel`](Self::sweep_cancel))
    /// and the regions. Waiting region futures' wakers go to `wakes` (see
    /// `take_region`).
    pub(crate) fn shut(&self, wakes: &mut Vec<Waker>) -> (usize, Vec<Arc<LightTasks>>) {
        let mut held = 0;
        let mut regions = Vec::new();
        for i in 0..self.used {
            // LR3: each shard's gate shut and its regions taken in one
            // critical section, so none opens in it after and escapes.
            let mut shard = self.shard(i);
            shard.open = false;
            held += shard.tasks.len();
            for child in std::mem::take(&mut shard.regions).into_values() {
                wakes.extend(child.lock().mark_registered()); // LR6
                regions.push(child);
            }
        }
        regions.sort_unstable_by_key(|child| child.key());
        (held, regions)
    }

    /// LT7, LT10 (a region cancel's sweep, with no kernel lock held, after
    /// [`shut`](Self::shut)): cancels every light task in place with
    /// `reason` (lent to their slots, CS4), its grace ending at
    /// `grace_deadline`, waking each whose request was stored. Under a
    /// shard's lock it only takes a reference to each task; the requests
    /// and wake-ups are made once the lock is released, so the first
    /// tasks run (and complete, which takes the shard's lock) while the
    /// rest are still cancelled. Returns how many tasks it visited.
    pub(crate) fn sweep_cancel(&self, reason: &Arc<CancelReason>, grace_deadline: Time) -> usize {
        self.lend(reason);
        let mut visited = 0;
        let mut swept = Vec::new();
        for i in 0..self.used {
            {
                let shard = self.shard(i);
                debug_assert!(!shard.open, "LT2: `shut` comes first");
                // One allocation for the shard, not one per doubling.
                swept.reserve(shard.tasks.len());
                swept.extend(shard.tasks.iter().map(|entry| entry.to_arc()));
            }
            visited += swept.len();
            for cell in swept.drain(..) {
                // SW14: marked notified by its request; queued now that its
                // reason is stored.
                if cell.cancel_light(reason, grace_deadline) {
                    cell.queue();
                }
            }
        }
        visited
    }

    /// CS4 (in `exec::cancel_slot`): keeps `reason` as long as the set, so
    /// its cells' cancel slots may point to it without a count of their
    /// own (each cell keeps its set). The caller's sweep stores it in each.
    fn lend(&self, reason: &Arc<CancelReason>) {
        let mut inner = self.lock();
        if !inner.lent.iter().any(|r| Arc::ptr_eq(r, reason)) {
            inner.lent.push(reason.clone());
        }
    }

    /// Light task `t`'s entry, if it is in the set (a walk: rare paths).
    pub(crate) fn get(&self, t: TaskId) -> Option<Arc<dyn Attention>> {
        (0..self.used).find_map(|i| {
            let shard = self.shard(i);
            let found = shard.tasks.iter().find(|cell| cell.light_id() == t);
            found.map(|cell| cell.to_arc())
        })
    }

    /// LT2 (a grace timer firing): shuts the gate and takes every light
    /// task, in id order, to register them.
    pub(crate) fn shut_and_take_all(&self) -> Vec<(TaskId, Arc<dyn Attention>)> {
        let mut all = Vec::new();
        for i in 0..self.used {
            let mut shard = self.shard(i);
            shard.open = false;
            while let Some(entry) = shard.tasks.pop_front() {
                entry.mark_registered();
                all.push((entry.light_id(), entry));
            }
        }
        all.sort_unstable_by_key(|entry| entry.0);
        all
    }

    /// LT3: shuts the gate if no light task is left (the region may leave
    /// `Draining`); otherwise records that the kernel waits for the last one.
    pub(crate) fn seal_if_empty(&self) -> bool {
        let mut shards = self.lock_shards();
        let mut inner = self.lock();
        if all_empty(&shards) {
            shards.iter_mut().flatten().for_each(|s| s.open = false);
            true
        } else {
            shards.iter_mut().flatten().for_each(|s| s.waits = true);
            inner.kernel_waits = true;
            false
        }
    }

    /// Whether task `t` is in the set (alive and light; a walk).
    pub(crate) fn contains(&self, t: TaskId) -> bool {
        (0..self.used).any(|i| self.shard(i).tasks.iter().any(|cell| cell.light_id() == t))
    }

    /// The light tasks with the obligations each holds (OB9: a light task
    /// reserves in its cell's home without the kernel), in id order.
    pub(crate) fn held(&self) -> Vec<(TaskId, usize)> {
        let mut held = Vec::new();
        for i in 0..self.used {
            let shard = self.shard(i);
            held.extend(shard.tasks.iter().map(|cell| {
                let pending = cell.obligation_home().map_or(0, |h| h.pending());
                (cell.light_id(), pending)
            }));
        }
        held.sort_unstable_by_key(|entry| entry.0);
        held
    }

    /// `f` applied to each light task's obligation home (diagnostics; OB9:
    /// a light task reserves in its cell's home without the kernel).
    pub(crate) fn map_homes<R>(&self, f: impl Fn(&super::ObligationHome) -> R) -> Vec<R> {
        let mut out = Vec::new();
        for i in 0..self.used {
            let shard = self.shard(i);
            out.extend(
                shard
                    .tasks
                    .iter()
                    .filter_map(|cell| cell.obligation_home().map(&f)),
            );
        }
        out
    }

    /// K6, RF1: registers a finalizer; gives it back once the region has
    /// closed (RF2).
    pub(crate) fn defer(&self, fin: Finalizer) -> Result<(), Finalizer> {
        match &mut self.lock().finalizers {
            Some(list) => {
                list.push(fin);
                if list.len() == 1 {
                    // RF3: the first since the list was last taken.
                    self.fin_added.store(true, Ordering::Release);
                }
                Ok(())
            }
            None => Err(fin),
        }
    }

    /// K6: the most recently registered finalizer (LIFO).
    pub(crate) fn pop_finalizer(&self) -> Option<Finalizer> {
        self.lock().finalizers.as_mut()?.pop()
    }

    /// RF3: moves every registered finalizer, oldest first, to the end of
    /// `batch` (the finalizer task's, which runs it from the end: LIFO),
    /// in one critical section.
    pub(crate) fn take_finalizers(&self, batch: &mut Vec<Finalizer>) {
        let mut inner = self.lock();
        self.fin_added.store(false, Ordering::Relaxed);
        if let Some(list) = inner.finalizers.as_mut() {
            batch.append(list);
        }
    }

    /// RF3: gives back finalizers taken but not run (a finalizer task
    /// dropped before it ran its batch), as the oldest in the list; they
    /// are dropped with the list if it was sealed meanwhile.
    pub(crate) fn return_finalizers(&self, batch: Vec<Finalizer>) {
        let mut inner = self.lock();
        if let Some(list) = inner.finalizers.as_mut() {
            list.splice(0..0, batch);
            self.fin_added.store(true, Ordering::Relaxed);
        }
    }

    /// RF3: whether a finalizer was registered since the last
    /// [`take_finalizers`](Self::take_finalizers) (a hint read without
    /// the lock: one registered by the finalizer that just ran is seen).
    pub(crate) fn finalizers_added(&self) -> bool {
        self.fin_added.load(Ordering::Acquire)
    }

    /// K6: whether finalizers wait to run.
    pub(crate) fn has_finalizers(&self) -> bool {
        self.lock()
            .finalizers
            .as_ref()
            .is_some_and(|l| !l.is_empty())
    }

    /// RF2: seals the finalizer list if it is empty (the region may
    /// close: later registrations are refused); `false` if one was
    /// registered since the last was taken (it must run first).
    pub(crate) fn seal_finalizers(&self) -> bool {
        let mut inner = self.lock();
        match &inner.finalizers {
            Some(list) if !list.is_empty() => false,
            _ => {
                inner.finalizers = None;
                true
            }
        }
    }

    /// How many light tasks are live.
    pub(crate) fn len(&self) -> usize {
        (0..self.used).map(|i| self.shard(i).tasks.len()).sum()
    }

    /// Empties the set without shutting the gate (runtime teardown: the
    /// entries are handed back to be dropped outside every lock).
    pub(crate) fn clear(&self) -> Vec<Arc<dyn Attention>> {
        let mut all = Vec::new();
        for i in 0..self.used {
            let mut shard = self.shard(i);
            all.extend(std::iter::from_fn(|| shard.tasks.pop_front()));
        }
        all
    }
}

/// LT5: the per-runtime task id counter, shared by the kernel and the
/// light spawn path. It also yields the task statistics, so no counter is
/// written per spawn or per completion beyond the id itself: every id
/// handed out belongs to a task that is live or has completed, except the
/// rare ids of light spawns refused by a shut gate (`unused`).
#[derive(Default)]
pub(crate) struct TaskCounters {
    next_id: AtomicU64,
    unused: AtomicU64,
    /// Region ids, for registered and light regions alike (LR2).
    next_region: AtomicU64,
}

impl TaskCounters {
    /// A fresh region id (K7: never reused; increasing in creation order).
    pub(crate) fn next_region_id(&self) -> RegionId {
        // Relaxed: only uniqueness matters (as for task ids).
        let n = self.next_region.fetch_add(1, Ordering::Relaxed);
        RegionId::from_parts(n as u32, (n >> 32) as u32)
    }

    /// How many regions were ever created.
    pub(crate) fn regions_created(&self) -> u64 {
        self.next_region.load(Ordering::Relaxed)
    }

    pub(crate) fn next_id(&self) -> TaskId {
        // Relaxed: only uniqueness matters; the id is published with the
        // task by the lock or queue that hands the task over.
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        // The id's two halves are the counter's (K7: never reused).
        TaskId::from_parts(n as u32, (n >> 32) as u32)
    }

    /// An id taken for a light spawn that the gate refused (LT2): the
    /// task is spawned through the kernel under a fresh id instead.
    pub(crate) fn id_unused(&self) {
        self.unused.fetch_add(1, Ordering::Relaxed);
    }

    /// How many tasks were ever spawned (each id handed out and used).
    pub(crate) fn spawned(&self) -> u64 {
        let unused = self.unused.load(Ordering::Relaxed);
        self.next_id.load(Ordering::Relaxed).saturating_sub(unused)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A stand-in task cell: records whether the kernel registered it and
    /// keeps a cancel slot as a real cell does (LT7, without its state word).
    struct FakeCell {
        id: TaskId,
        set: Arc<LightTasks>,
        links: Links<dyn Attention>,
        registered: AtomicBool,
        cancel: std::sync::Mutex<Option<LightCancel>>,
        /// How many times a sweep queued it (LT10).
        queued: AtomicUsize,
    }

    impl FakeCell {
        fn new(id: TaskId, set: &Arc<LightTasks>) -> Arc<Self> {
            Arc::new(Self {
                id,
                set: set.clone(),
                links: Links::new(),
                registered: AtomicBool::new(false),
                cancel: std::sync::Mutex::new(None),
                queued: AtomicUsize::new(0),
            })
        }
    }

    impl Attention for FakeCell {
        fn request_attention(&self) {}
        fn cancel_requested(&self, _severity: u8) {}
        fn to_waker(self: Arc<Self>) -> Waker {
            Waker::noop().clone()
        }
        fn mark_registered(&self) {
            self.registered.store(true, Ordering::Relaxed);
        }
        fn cancel_light(&self, reason: &Arc<CancelReason>, grace_deadline: Time) -> bool {
            let mut slot = self.cancel.lock().unwrap();
            if slot.as_ref().is_some_and(|c| !reason.outranks(&c.reason)) {
                return false; // K3
            }
            *slot = Some(LightCancel {
                reason: reason.clone(),
                grace_deadline,
                acked: false,
            });
            true
        }
        fn queue(&self) {
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
        fn light_cancel(&self) -> Option<LightCancel> {
            self.cancel.lock().unwrap().clone()
        }
        fn light_id(&self) -> TaskId {
            self.id
        }
        fn light_set(&self) -> Option<&LightTasks> {
            Some(&self.set)
        }
        fn light_links(&self) -> &Links<dyn Attention> {
            &self.links
        }
    }

    /// A kernel with a root region that takes light tasks, and its set.
    fn light_root() -> (Kernel, RegionId, Arc<LightTasks>) {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let root = k.create_root_region(Budget::INFINITE);
        let set = k
            .light_tasks(root)
            .expect("an unbudgeted region takes light tasks");
        (k, root, set)
    }

    fn spawn_light(k: &Kernel, set: &Arc<LightTasks>) -> (TaskId, Arc<FakeCell>) {
        let id = k.counters().next_id();
        let cell = FakeCell::new(id, set);
        assert!(set.spawn(cell.clone()), "the gate is open");
        (id, cell)
    }

    /// LT7, LT2, LT8: a region cancel stores the cancel in each light
    /// task's cell (no record is made) and shuts the gate; its grace timer
    /// firing registers them, carrying the stored cancel, to force-drop them.
    #[test]
    fn a_region_cancel_cancels_its_light_tasks_in_place_and_shuts_the_gate() {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let root = k.create_root_region(Budget::INFINITE);
        let set = k
            .light_tasks(root)
            .expect("an unbudgeted region takes light tasks");
        let tasks: Vec<_> = (0..3).map(|_| spawn_light(&k, &set)).collect();
        assert_eq!(k.live_task_count(), 3);
        assert_eq!(k.task_state(tasks[0].0), None, "light: no record yet");
        k.cancel_region(root, CancelReason::user("stop"), ms(1));
        let sweeps = k.take_actions().sweeps;
        assert_eq!(sweeps.len(), 1, "LT10: one sweep, after the kernel lock");
        assert!(tasks.iter().all(|(_, c)| c.light_cancel().is_none()));
        assert_eq!(sweeps.into_iter().map(LightSweep::run).sum::<usize>(), 3);
        let grace = ms(1) + CancelKind::User.grace_period();
        for (id, cell) in &tasks {
            assert_eq!(cell.queued.load(Ordering::Relaxed), 1, "SW14: woken once");
            assert_eq!(k.task_state(*id), None, "LT7: still light");
            let stored = cell.light_cancel().expect("stored in the cell");
            assert_eq!(stored.reason.kind, CancelKind::User);
            assert_eq!(stored.grace_deadline, grace, "the region's deadline");
            assert!(!cell.registered.load(Ordering::Relaxed));
            let hint: &(dyn Attention + 'static) = &**cell;
            for found_by in [None, Some(hint)] {
                assert_eq!(
                    k.cancel_requested(*id, root, found_by).map(|r| r.kind),
                    Some(CancelKind::User),
                    "by a walk and through the cell"
                );
            }
        }
        let late = FakeCell::new(k.counters().next_id(), &set);
        assert!(!set.spawn(late), "LT2: the gate is shut");
        assert_eq!(set.len(), 3);
        k.fire_timers(grace);
        for (id, cell) in &tasks {
            assert!(cell.registered.load(Ordering::Relaxed), "SW7 bit set");
            assert_eq!(k.task_state(*id), Some(TaskState::CancelRequested));
            let rec = k.task(*id).unwrap();
            assert_eq!(rec.grace_deadline, Some(grace));
            assert_eq!(rec.force_drop, Some(ForceDropCause::GraceExpired));
        }
        assert_eq!(set.len(), 0);
    }

    /// LT10: a light task the kernel registers between a region cancel
    /// and its sweep (here: a mask, which needs a record) is cancelled at
    /// its registration with the region's reason; the sweep, which no
    /// longer finds it in the set, cancels the others. A spawn the swept
    /// gate refuses goes to the kernel, which refuses it too.
    #[test]
    fn a_task_registered_before_the_sweep_reaches_it_is_cancelled_at_registration() {
        let (mut k, root, set) = light_root();
        let (a, _) = spawn_light(&k, &set);
        let (b, cell_b) = spawn_light(&k, &set);
        k.cancel_region(root, CancelReason::user("stop"), ms(1));
        let sweeps = k.take_actions().sweeps;
        k.mask_enter(a, root); // registers `a` before the sweep ran
        assert_eq!(k.task_state(a), Some(TaskState::CancelRequested));
        assert_eq!(
            k.task(a).unwrap().cancel.as_ref().map(|r| r.kind),
            Some(CancelKind::User)
        );
        assert_eq!(sweeps.into_iter().map(LightSweep::run).sum::<usize>(), 1);
        assert_eq!(
            cell_b.light_cancel().map(|c| c.reason.kind),
            Some(CancelKind::User)
        );
        assert_eq!(k.task_state(b), None, "LT7: `b` stays light");
        let late = FakeCell::new(k.counters().next_id(), &set);
        assert!(!set.spawn(late), "LT2: the cancel shut the gate");
    }

    /// LT10: a sweep, while another thread completes tasks of the same
    /// shard, cancels every task still in the set and queues each once.
    #[test]
    fn a_sweep_racing_completions_cancels_each_remaining_task_once() {
        let k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let set = LightTasks::new(RegionId::MIN, true);
        let cells: Vec<_> = (0..333).map(|_| spawn_light(&k, &set).1).collect();
        let reason = Arc::new(CancelReason::user("sweep"));
        assert_eq!(set.shut(&mut Vec::new()).0, cells.len(), "LT2 first");
        let leaving: Vec<usize> = (0..cells.len()).rev().step_by(3).collect();
        let finished: Vec<bool> = std::thread::scope(|s| {
            let finisher = s.spawn(|| {
                let gone: Vec<usize> = leaving
                    .iter()
                    .copied()
                    .filter(|&i| matches!(set.finish(&*cells[i], false).0, Finish::Light { .. }))
                    .collect();
                gone
            });
            set.sweep_cancel(&reason, ms(1));
            let gone = finisher.join().unwrap();
            (0..cells.len()).map(|i| gone.contains(&i)).collect()
        });
        for (cell, gone) in cells.iter().zip(finished) {
            let queued = cell.queued.load(Ordering::Relaxed);
            if gone {
                assert!(queued <= 1, "a finished task is queued at most once");
            } else {
                assert_eq!(queued, 1, "every remaining task is woken exactly once");
                assert!(cell.light_cancel().is_some());
            }
        }
        assert_eq!(set.len(), cells.len() - leaving.len());
    }

    /// RF3: a batch taken in one critical section runs in the order one
    /// pop per finalizer gives: one registered while the batch runs (the
    /// hint) runs before the rest of it; a batch given back is taken again
    /// as the oldest.
    #[test]
    fn finalizers_taken_in_batches_still_run_newest_first() {
        let set = LightTasks::new(RegionId::MIN, true);
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let fin = |name: &'static str| {
            let log = log.clone();
            Finalizer::Sync(Box::new(move || log.lock().unwrap().push(name)))
        };
        let run = |f: Finalizer| match f {
            Finalizer::Sync(f) => f(),
            Finalizer::Async(_) => unreachable!("sync only"),
        };
        for name in ["a", "b"] {
            assert!(set.defer(fin(name)).is_ok());
        }
        let mut batch = Vec::new();
        set.take_finalizers(&mut batch);
        assert!(!set.finalizers_added(), "taken: the hint is down");
        run(batch.pop().unwrap()); // b
        assert!(set.defer(fin("c")).is_ok()); // registered while running
        assert!(set.finalizers_added());
        set.take_finalizers(&mut batch);
        while let Some(f) = batch.pop() {
            run(f);
        }
        assert_eq!(*log.lock().unwrap(), ["b", "c", "a"]);
        for name in ["d", "e"] {
            assert!(set.defer(fin(name)).is_ok());
        }
        set.take_finalizers(&mut batch);
        set.return_finalizers(std::mem::take(&mut batch));
        assert!(set.defer(fin("f")).is_ok());
        set.take_finalizers(&mut batch);
        while let Some(f) = batch.pop() {
            run(f);
        }
        assert_eq!(*log.lock().unwrap(), ["b", "c", "a", "f", "e", "d"]);
        assert!(set.seal_finalizers(), "all taken: the close seals");
    }

    #[test]
    fn a_draining_region_waits_for_its_last_light_task() {
        let (mut k, root, set) = light_root();
        let (_, a) = spawn_light(&k, &set);
        let (_, b) = spawn_light(&k, &set);
        k.region_body_done(root, BodyEnd::Ok, ms(1));
        assert_eq!(k.region_state(root), Some(RegionState::Draining));
        assert_eq!(set.finish(&*a, false).0, Finish::Light { advance: false });
        assert_eq!(k.region_state(root), Some(RegionState::Draining));
        // LT3: the last one out tells the kernel.
        assert_eq!(set.finish(&*b, false).0, Finish::Light { advance: true });
        k.light_tasks_drained(root, ms(2));
        assert_eq!(k.region_state(root), Some(RegionState::Closed));
        let late = FakeCell::new(k.counters().next_id(), &set);
        assert!(!set.spawn(late), "sealed");
    }

    #[test]
    fn a_registered_light_task_completes_through_the_kernel() {
        let (mut k, root, set) = light_root();
        let (t, cell) = spawn_light(&k, &set);
        k.mask_enter(t, root); // needs a record: registers the task
        assert!(cell.registered.load(Ordering::Relaxed));
        assert_eq!(k.task_state(t), Some(TaskState::Created));
        assert_eq!(
            set.finish(&*cell, false).0,
            Finish::Registered,
            "LT1: one home"
        );
        assert_eq!(
            set.finish(&*cell, true).0,
            Finish::Registered,
            "SW7 shortcut"
        );
        k.mask_exit(t);
        let (outcome, leaks) = k.complete_task(t, TaskEnd::Returned, false, ms(1));
        assert!(matches!(outcome, TaskOutcome::Ok) && leaks.is_empty());
        assert_eq!(k.live_task_count(), 0);
    }

    #[test]
    fn a_budgeted_region_or_a_traced_kernel_takes_no_light_tasks() {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let budgeted = k.create_root_region(Budget::INFINITE.with_poll_quota(10));
        assert!(k.light_tasks(budgeted).is_none(), "LT4: polls are counted");
        k.enable_trace();
        let traced = k.create_root_region(Budget::INFINITE);
        assert!(k.light_tasks(traced).is_none(), "LT4: the lab traces");
    }

    /// LT1, LT2, LT7 under real threads: two threads spawn light tasks
    /// into one set and finish them (oldest first, a few left pending)
    /// while a third, the kernel, takes tasks by id to register them and
    /// reads the set, cancels the region half-way and finally sweeps it.
    /// Every accepted task ends in exactly one home (finished light, or
    /// taken); a task finishing after it was taken learns it is
    /// registered; tasks swept after the cancel carry it; the set releases
    /// every reference it held.
    #[test]
    fn racing_spawns_completions_takes_and_a_cancel_leave_each_task_in_exactly_one_home() {
        use std::collections::VecDeque;
        use std::sync::Barrier;
        use std::sync::atomic::{AtomicU32, AtomicU64};
        const PER_THREAD: u64 = 4000;
        for round in 0..6u64 {
            let set = LightTasks::new(RegionId::MIN, true);
            let next = AtomicU64::new(0);
            // All three start together; the spawners pause half-way until
            // the kernel is about to cancel, so the cancel races spawns.
            let (start, half) = (Barrier::new(3), Barrier::new(3));
            // Homes by id: finished light (by its spawner) or taken (by
            // the kernel); each accepted task must end with exactly one.
            let home: Vec<AtomicU32> = (0..2 * PER_THREAD).map(|_| AtomicU32::new(0)).collect();
            let home_of = |t: TaskId| &home[t.to_bits() as usize];
            // Finishes `cell`; a task the set no longer holds was taken.
            let finish = |cell: &Arc<FakeCell>, shortcut: bool| {
                let registered = shortcut && cell.registered.load(Ordering::Relaxed);
                match set.finish(&**cell, registered) {
                    (Finish::Light { .. }, Some(entry)) => {
                        assert!(std::ptr::addr_eq(Arc::as_ptr(&entry), Arc::as_ptr(cell)));
                        home_of(cell.id).fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    (Finish::Registered, None) => {
                        assert!(cell.registered.load(Ordering::Relaxed), "LT1: taken");
                        false
                    }
                    (f, entry) => panic!("inconsistent: {f:?}, entry {}", entry.is_some()),
                }
            };
            let keep = if round % 2 == 0 { 4 } else { 64 };
            let (cells, leftovers, refused, swept) = std::thread::scope(|s| {
                let spawner = || {
                    let (mut pending, mut all, mut refused) = (VecDeque::new(), Vec::new(), 0);
                    start.wait();
                    for i in 0..PER_THREAD {
                        if i == PER_THREAD / 2 {
                            half.wait();
                        }
                        let id = TaskId::from_bits(next.fetch_add(1, Ordering::Relaxed));
                        let cell = FakeCell::new(id, &set);
                        if set.spawn(cell.clone()) {
                            pending.push_back(cell.clone());
                            all.push(cell);
                        } else {
                            refused += 1;
                        }
                        while pending.len() > keep {
                            let cell = pending.pop_front().expect("pending");
                            finish(&cell, i % 3 == 0);
                        }
                    }
                    (all, pending, refused)
                };
                let a = s.spawn(spawner);
                let b = s.spawn(spawner);
                let kernel = s.spawn(|| {
                    let mut rng = crate::types::rng::DetRng::new(round);
                    let mut cancelled = false;
                    start.wait();
                    loop {
                        let issued = next.load(Ordering::Relaxed);
                        if issued >= 2 * PER_THREAD && cancelled {
                            break;
                        }
                        if issued > 0 {
                            let t = TaskId::from_bits(rng.next_u64() % issued);
                            if let Some(cell) = set.take(t) {
                                assert_eq!(cell.light_id(), t);
                                home_of(t).fetch_add(1, Ordering::Relaxed);
                            }
                            let _ = (set.get(t), set.contains(t), set.held(), set.len());
                        }
                        if !cancelled && issued >= PER_THREAD {
                            // LT2, LT7: half-way, the region is cancelled.
                            half.wait();
                            let reason = Arc::new(CancelReason::user("stress"));
                            let (held, _) = set.shut(&mut Vec::new());
                            assert!(set.sweep_cancel(&reason, ms(5)) <= held, "only shrinks");
                            cancelled = true;
                        }
                    }
                    let swept = set.shut_and_take_all();
                    assert!(swept.windows(2).all(|w| w[0].0 < w[1].0), "id order");
                    for (t, cell) in &swept {
                        assert!(
                            cell.light_cancel().is_some(),
                            "LT7: in the set at the cancel"
                        );
                        home_of(*t).fetch_add(1, Ordering::Relaxed);
                    }
                    swept.len()
                });
                let (mut cells, mut leftovers, ra) = a.join().unwrap();
                let (cells_b, leftovers_b, rb) = b.join().unwrap();
                cells.extend(cells_b);
                leftovers.extend(leftovers_b);
                (cells, leftovers, ra + rb, kernel.join().unwrap())
            });
            assert_eq!(set.len(), 0, "nothing left behind the shut gate");
            for cell in &leftovers {
                assert!(!finish(cell, false), "swept or taken before it finished");
            }
            drop(leftovers);
            assert_eq!(cells.len() as u64 + refused, 2 * PER_THREAD);
            assert!(swept <= cells.len());
            for cell in &cells {
                let homes = home_of(cell.id).load(Ordering::Relaxed);
                assert_eq!(homes, 1, "task {:?}: exactly one home", cell.id);
                assert_eq!(Arc::strong_count(cell), 1, "IL1: the set let go of it");
            }
        }
    }

    #[test]
    fn task_ids_are_unique_and_increase_in_spawn_order() {
        let counters = TaskCounters::default();
        let ids: Vec<_> = (0..5).map(|_| counters.next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }
}

/// Loom models of rules LT1–LT3 (run by `.ci/run` with `--cfg loom`):
/// every interleaving of completions, the kernel's close and cancel, and a
/// spawn, on the real `LightTasks`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{model, thread};
    use std::task::Waker;

    /// A stand-in light cell: its id, the set it names, its links, and how
    /// many times a sweep requested its cancel and queued it (LT10).
    struct Cell {
        id: TaskId,
        set: Arc<LightTasks>,
        links: Links<dyn Attention>,
        requests: std::sync::atomic::AtomicUsize,
        queued: std::sync::atomic::AtomicUsize,
    }

    impl Attention for Cell {
        fn request_attention(&self) {}
        fn cancel_requested(&self, _severity: u8) {}
        fn to_waker(self: Arc<Self>) -> Waker {
            Waker::noop().clone()
        }
        fn cancel_light(&self, _reason: &Arc<CancelReason>, _grace_deadline: Time) -> bool {
            let relaxed = std::sync::atomic::Ordering::Relaxed;
            self.requests.fetch_add(1, relaxed) == 0
        }
        fn queue(&self) {
            self.queued
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        fn light_id(&self) -> TaskId {
            self.id
        }
        fn light_set(&self) -> Option<&LightTasks> {
            Some(&self.set)
        }
        fn light_links(&self) -> &Links<dyn Attention> {
            &self.links
        }
    }

    fn cell(n: u32, set: &Arc<LightTasks>) -> Arc<Cell> {
        Arc::new(Cell {
            id: id(n),
            set: set.clone(),
            links: Links::new(),
            requests: Default::default(),
            queued: Default::default(),
        })
    }

    fn id(n: u32) -> TaskId {
        TaskId::from_parts(n, 0)
    }

    /// LT3: two last tasks finish while the kernel, its body done, tries
    /// to close: the region closes exactly once — the kernel's seal finds
    /// the set empty, or exactly one completion (the one that empties a
    /// waited-on set) hands the close back, and then the seal succeeds.
    #[test]
    fn the_region_closes_exactly_once_when_its_last_light_tasks_finish() {
        model(|| {
            let set = LightTasks::new(RegionId::MIN, true);
            let finishers: Vec<_> = [1, 2]
                .map(|n| {
                    let cell = cell(n, &set);
                    assert!(set.spawn(cell.clone()));
                    thread::spawn(move || cell.set.finish(&*cell, false).0)
                })
                .into_iter()
                .collect();
            let sealed = set.seal_if_empty();
            let handed_back = finishers
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|f| *f == Finish::Light { advance: true })
                .count();
            assert_eq!(usize::from(sealed) + handed_back, 1, "closed once");
            if handed_back == 1 {
                assert!(set.seal_if_empty(), "the handed-back close seals");
            }
            assert!(!set.spawn(cell(3, &set)), "sealed: no spawn");
        });
    }

    /// LT1, LT2: a completion, a spawn and the kernel's cancel race: each
    /// task ends in exactly one home (finished light, or taken to be
    /// registered), and the spawn is accepted exactly when the cancel's
    /// sweep takes it.
    #[test]
    fn a_cancel_sweep_and_a_completion_never_both_get_a_task() {
        model(|| {
            let set = LightTasks::new(RegionId::MIN, true);
            let first = cell(1, &set);
            assert!(set.spawn(first.clone()));
            let finisher = thread::spawn(move || first.set.finish(&*first, false).0);
            let spawner = {
                let set = set.clone();
                thread::spawn(move || set.spawn(cell(2, &set)))
            };
            let taken: Vec<TaskId> = set.shut_and_take_all().into_iter().map(|e| e.0).collect();
            let finished = finisher.join().unwrap();
            let spawned = spawner.join().unwrap();
            let finished_light = matches!(finished, Finish::Light { .. });
            assert!(
                finished_light != taken.contains(&id(1)),
                "one home: finished {finished:?}, taken {taken:?}"
            );
            assert_eq!(spawned, taken.contains(&id(2)), "LT2: spawned iff swept");
            assert_eq!(set.len(), 0, "nothing left behind the shut gate");
        });
    }

    /// LT2, LT10: a region cancel shuts the gate (the kernel's part), then
    /// its sweep runs with no kernel lock while one task completes, the
    /// kernel takes another to register it, and a spawn tries to join.
    /// The spawn is refused; a task the sweep finds in the set is
    /// requested and queued exactly once, whether or not its completion
    /// or its registration comes before or after; a task gone before its
    /// shard is swept is not requested; the set ends empty.
    #[test]
    fn a_sweep_racing_a_completion_and_a_registration_requests_each_task_once() {
        model(|| {
            let set = LightTasks::new(RegionId::MIN, true);
            let cells: Vec<Arc<Cell>> = [1, 2]
                .map(|n| {
                    let cell = cell(n, &set);
                    assert!(set.spawn(cell.clone()));
                    cell
                })
                .into_iter()
                .collect();
            let (held, _) = set.shut(&mut Vec::new());
            assert_eq!(held, 2);
            let finisher = {
                let first = cells[0].clone();
                thread::spawn(move || {
                    matches!(first.set.finish(&*first, false).0, Finish::Light { .. })
                })
            };
            let registrar = {
                let set = set.clone();
                thread::spawn(move || set.take(id(2)).is_some())
            };
            assert!(!set.spawn(cell(3, &set)), "LT2: shut before the sweep");
            let visited = set.sweep_cancel(&Arc::new(CancelReason::user("sweep")), Time::ZERO);
            assert!(finisher.join().unwrap(), "nothing else removes it");
            assert!(registrar.join().unwrap(), "nothing else takes it");
            let requested: usize = cells
                .iter()
                .map(|c| {
                    let r = c.requests.load(std::sync::atomic::Ordering::Relaxed);
                    assert!(r <= 1, "requested once at most");
                    assert_eq!(
                        c.queued.load(std::sync::atomic::Ordering::Relaxed),
                        r,
                        "queued iff requested"
                    );
                    r
                })
                .sum();
            assert_eq!(requested, visited, "each task the sweep found, once");
            assert_eq!(set.len(), 0);
        });
    }

    /// RF2: a finalizer registered from another thread races the kernel's
    /// seal at the close: it is either refused (the seal came first) or
    /// found by the seal, which then leaves the list open so the finalizer
    /// runs before the close; never accepted and lost.
    #[test]
    fn a_finalizer_racing_the_close_is_refused_or_run_never_lost() {
        model(|| {
            let set = LightTasks::new(RegionId::MIN, true);
            let deferrer = {
                let set = set.clone();
                thread::spawn(move || set.defer(Finalizer::Sync(Box::new(|| {}))).is_ok())
            };
            let sealed_at_once = set.seal_finalizers();
            let accepted = deferrer.join().unwrap();
            if sealed_at_once {
                assert!(!accepted, "accepted after the seal");
            } else {
                assert!(accepted, "the seal saw a finalizer");
                assert!(set.pop_finalizer().is_some(), "it runs");
                assert!(set.seal_finalizers(), "then the region closes");
            }
            assert!(
                set.defer(Finalizer::Sync(Box::new(|| {}))).is_err(),
                "sealed"
            );
        });
    }

    /// LR1, LR3, LR4: a light region's close races its parent's cancel
    /// sweep while another light region opens: the closing region ends in
    /// exactly one home (closed light, or taken to be registered), and the
    /// opening one is refused exactly when the sweep did not take it.
    #[test]
    fn a_light_close_a_parent_sweep_and_an_open_never_lose_a_region() {
        model(|| {
            let counters = Arc::new(TaskCounters::default());
            let parent = LightTasks::new(RegionId::MIN, true);
            // LT9: the closing region and the racing open in different
            // shards of the parent.
            let closing = parent.open_region_in(0, &counters, id(1)).expect("open");
            let closer = thread::spawn(move || closing.close_light(Waker::noop()));
            let opener = {
                let (parent, counters) = (parent.clone(), counters.clone());
                thread::spawn(move || {
                    parent
                        .open_region_in(1, &counters, id(2))
                        .map(|s| s.region())
                })
            };
            let reason = Arc::new(CancelReason::user("sweep"));
            let (_, taken) = parent.shut(&mut Vec::new());
            parent.sweep_cancel(&reason, Time::ZERO);
            let taken: Vec<RegionId> = taken.iter().map(|s| s.region()).collect();
            let closed = closer.join().unwrap();
            let opened = opener.join().unwrap();
            let first = RegionId::from_parts(0, 0);
            let closed_light = matches!(closed, LightClose::Closed { .. });
            assert!(
                closed_light != taken.contains(&first),
                "one home: closed {closed:?}, taken {taken:?}"
            );
            match opened {
                Some(r) => assert!(taken.contains(&r), "LR3: opened, so swept"),
                None => assert!(!taken.iter().any(|r| *r != first), "refused, nothing else"),
            }
            assert!(
                parent.light_regions().is_empty(),
                "nothing left behind the gate"
            );
        });
    }

    /// LR4, LT3: the last light child region closes while the kernel, the
    /// parent's body done, tries to close the parent: the parent closes
    /// exactly once (its seal finds it empty, or the child's close hands
    /// the close back exactly once).
    #[test]
    fn the_parent_closes_exactly_once_when_its_last_light_region_closes() {
        model(|| {
            let counters = TaskCounters::default();
            let parent = LightTasks::new(RegionId::MIN, true);
            // LT9: in the last shard, which the seal locks last.
            let child = parent
                .open_region_in(SHARDS - 1, &counters, id(1))
                .expect("open");
            let closer = thread::spawn(move || child.close_light(Waker::noop()));
            let sealed = parent.seal_if_empty();
            let handed_back = closer.join().unwrap() == LightClose::Closed { advance: true };
            assert_eq!(
                usize::from(sealed) + usize::from(handed_back),
                1,
                "closed once"
            );
            if handed_back {
                assert!(parent.seal_if_empty(), "the handed-back close seals");
            }
        });
    }

    /// A waker that counts its wakes (bookkeeping outside the model).
    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// LR4: a light region's close, its body done, races its last task's
    /// completion: the close finds the set empty and closes, or it waits
    /// and the completion wakes it exactly once, after which it closes.
    /// No wake is lost and none is spurious.
    #[test]
    fn a_light_region_waiting_for_its_last_task_is_woken_exactly_once() {
        model(|| {
            let counters = TaskCounters::default();
            let parent = LightTasks::new(RegionId::MIN, true);
            let region = parent.open_region(&counters, id(1)).expect("open");
            let task = cell(2, &region);
            assert!(region.spawn(task.clone()));
            let finisher = thread::spawn(move || task.set.finish(&*task, false).0);
            let counting = std::sync::Arc::new(CountingWaker(Default::default()));
            let waker = Waker::from(counting.clone());
            let first = region.close_light(&waker);
            assert!(matches!(finisher.join().unwrap(), Finish::Light { .. }));
            let wakes = counting.0.load(std::sync::atomic::Ordering::SeqCst);
            match first {
                LightClose::Closed { .. } => assert_eq!(wakes, 0, "no spurious wake"),
                LightClose::Wait => {
                    assert_eq!(wakes, 1, "the last task out wakes the close");
                    assert!(matches!(
                        region.close_light(&waker),
                        LightClose::Closed { .. }
                    ));
                }
                LightClose::Kernel => panic!("nothing registered it"),
            }
            assert!(parent.light_regions().is_empty());
        });
    }
}
