//! Light regions: regions opened, used and closed without the kernel lock
//! until the kernel has to act on them.
//!
//! Most regions are opened by a task in a region that takes light spawns
//! (LT4), with no budget of their own, and close with a body that returned
//! `Ok` after their tasks finished: all the kernel would do for them is
//! count them in their parent (K1) and find them when the parent is
//! cancelled (K2). Such a region is *light*: its state is its set
//! ([`LightTasks`]), which its parent's set lists, each behind its own
//! lock, so opening, spawning into and closing regions in unrelated parts
//! of the tree never contend. The moment the kernel must act on one (a
//! cancel, a body that failed, a finalizer to run, a task spawned in it with a budget, anything of it
//! the kernel must record) it *registers* it: makes the region's record
//! from its set, as if the kernel had opened it.
//!
//! Rules (cited as LR1–LR6):
//! - LR1 (one home): a live light region is either listed in its parent's
//!   set (unregistered) or has a record in the kernel (registered), never
//!   both and never neither. Only the kernel, under its lock and the lock
//!   of the parent's shard that lists it (LT9: the shard of the thread that
//!   opened it, kept in `LightRegion::shard`), moves it from the list to a record
//!   ([`LightTasks::take_region`] and the bulk takes), marking the
//!   region's set registered in the same critical section; only the
//!   region's own light close ([`LightTasks::close_light`]) removes it from
//!   the list for good, under the same two locks, and only if the set is
//!   not marked registered. So exactly one of them happens.
//! - LR2 (eligibility): a region is opened light only through a `Cx` whose
//!   region takes light spawns (LT4: no trace, no budget), with no budget
//!   of its own, while the parent's gate is open (LT2, checked under the
//!   lock of the parent's shard the region joins); region ids come from the
//!   per-runtime counter the kernel's regions use too (K7: never reused).
//! - LR3 (cancelled through the tree): a region cancel shuts its gate and
//!   takes every light child region, shard by shard, each shard's gate
//!   shut and its regions taken in one critical section (so none opens
//!   in it after the sweep and escapes it), registers them and cancels
//!   them as it cancels registered children (K2).
//! - LR4 (closed without the kernel): a light region whose body returned
//!   `Ok` closes without the kernel if, under the lock of its parent's
//!   shard that lists it then its own, it is unregistered, has no light task, no light child region
//!   and no finalizer: it is sealed (gate shut, finalizers refused) and
//!   leaves its parent's list; if that empties a parent the kernel waits
//!   for (LT3), the kernel is told, as for a light task. With members
//!   left, its region future's waker is stored in the set (same critical
//!   section), and the member whose exit empties the set (after
//!   releasing its locks), or the registration (among the kernel's
//!   actions, after the kernel lock), wakes it to try again. A
//!   region with finalizers, or registered, closes through the kernel
//!   (K1, K6).
//! - LR5 (owners stay light until the kernel needs them): the owner of a
//!   light region (the task its body runs in) may itself be light and
//!   unregistered: before it opens a light region it marks itself an
//!   owner in its state word (SW15 in `exec::state`); if that word shows
//!   a cancel request already, or a registration, it registers itself
//!   first (the root and registered tasks already are). Its light regions
//!   are listed in its region's set under its id. A cancel of the owner
//!   reaches them (K2): an abort of a task marked an owner goes through
//!   the kernel, which registers it, takes its light regions into
//!   `owned_regions` (under that set's lock) and cascades before anyone
//!   sees the cancel; an abort that stored its request in the cell just
//!   before the mark (SW15's race) registers the owner right after, and
//!   any registration that copies a cancel stored in the cell cascades it
//!   the same way; a region cancel of the owner's region takes every light
//!   child region of it (LR3). A light region the kernel registers for
//!   any reason registers its owner with it (taken from its region's
//!   set), so the kernel can wake it on a cancel of the region and mask it
//!   for the finalizers (K6). A region body's `Cx` asks the kernel about
//!   its owner's cancel (rule A2), which first registers a light owner
//!   with a cancel stored in its cell. A region opened after the owner's
//!   cancel reached its regions is like one the kernel opens after the
//!   owner's cancel: the body sees the cancel at its next checkpoint.
//! - LR6 (lock order): kernel → a parent's set → a child's set → a cell's
//!   cancel slot (extending LT6; within a set, its shards before the rest,
//!   LT9, and a parent's shards before its rest before a child's shards); registration goes up the tree first, so
//!   a registered region's parent is registered.

use super::*;

impl Kernel {
    /// LR1, LR6: makes sure the region of `set` is registered, registering
    /// its ancestors first. Nothing to do for a region the kernel made or
    /// has registered, and for a light region that closed (whose work is
    /// over: the caller's call then finds no record, as for any closed
    /// region).
    pub(crate) fn ensure_region(&mut self, set: &LightTasks) {
        if self.regions.contains_key(&set.region()) {
            return;
        }
        let Some((parent, owner)) = set.light_parent() else {
            return;
        };
        self.ensure_region(parent);
        if let Some(taken) = parent.take_region(owner, set.region(), &mut self.actions.wakes) {
            self.register_light_region(taken);
        }
    }

    /// [`ensure_region`](Self::ensure_region) for a caller that holds only
    /// the id (rare paths: a walk of the light regions).
    pub(crate) fn ensure_region_id(&mut self, r: RegionId) {
        if self.regions.contains_key(&r) {
            return;
        }
        let found = self
            .light_region_sets()
            .into_iter()
            .find(|s| s.region() == r);
        if let Some(set) = found {
            self.ensure_region(&set);
        }
    }

    /// [`ensure_region`](Self::ensure_region) for a caller that may hold a
    /// set (a `Cx`'s, a cell's).
    pub(crate) fn ensure_region_of(&mut self, set: Option<&LightTasks>) {
        if let Some(set) = set
            && set.light_parent().is_some()
        {
            self.ensure_region(set);
        }
    }

    /// LR1: makes the record of light region `set`, taken from its
    /// parent's list (whose record exists: LR6), as `create_child_region`
    /// would have: a child of its parent, owned by its owner (LR5).
    pub(super) fn register_light_region(&mut self, set: Arc<LightTasks>) {
        let r = set.region();
        let (parent_set, owner) = set.light_parent().expect("a light region's set");
        let parent = parent_set.region();
        let budget = self.region_budget(parent);
        let record = RegionRecord::with_set(Some(parent), Some(owner), budget, set.clone());
        self.regions.insert(r, record);
        if let Some(p) = self.region_mut(parent) {
            p.children.push(r);
        }
        // LR5: a light owner (still in its region's set, unless it is
        // finishing) is registered with its region: the kernel wakes it on
        // a cancel of the region, masks it for the finalizers (K6).
        let light_owner = !self.tasks.contains_key(&owner);
        self.registered(owner, parent);
        let Some(o) = self.task_mut(owner) else {
            return;
        };
        o.owned_regions.push(r);
        // LR5: an owner registered only now may carry a cancel stored in
        // its cell, which reaches this region as it reached the others.
        if light_owner && let Some(reason) = o.cancel.clone() {
            let now = self.now;
            self.cancel_region(r, reason.to_parent_cancelled(), now);
        }
    }

    /// LR5: registers the light regions task `t` (registered) opened in its
    /// region, so a cancel of `t` reaches them through `owned_regions`.
    pub(super) fn register_regions_of(&mut self, t: TaskId) {
        let Some(home) = self.task(t).and_then(|rec| self.region(rec.region)) else {
            return;
        };
        let home = home.light.clone();
        for child in home.take_regions_of(t, &mut self.actions.wakes) {
            self.register_light_region(child);
        }
    }

    /// LR3: registers the light child regions a region cancel took.
    pub(super) fn register_light_regions(&mut self, taken: Vec<Arc<LightTasks>>) -> Vec<RegionId> {
        taken
            .into_iter()
            .map(|set| {
                let r = set.region();
                self.register_light_region(set);
                r
            })
            .collect()
    }

    /// Every light region's set below the registered regions, in id order
    /// of their registered ancestors then key order (diagnostics: the
    /// light regions' tasks are live tasks too).
    pub(super) fn light_region_sets(&self) -> Vec<Arc<LightTasks>> {
        let mut out = Vec::new();
        let mut stack: Vec<_> = self
            .regions_in_order()
            .flat_map(|(_, rec)| rec.light.light_regions())
            .collect();
        stack.reverse();
        while let Some(set) = stack.pop() {
            let children = set.light_regions();
            out.push(set);
            stack.extend(children.into_iter().rev());
        }
        out
    }

    /// Applies `f` to every set, the registered regions' and the light
    /// ones', in no particular order: for sums and searches, which run
    /// often (the lab asks for the live task count at every step), so it
    /// neither sorts nor allocates unless light regions exist.
    pub(super) fn for_each_set(&self, mut f: impl FnMut(&LightTasks)) {
        let mut stack = Vec::new();
        for rec in self.regions.values() {
            f(&rec.light);
            stack.extend(rec.light.light_regions());
        }
        while let Some(set) = stack.pop() {
            stack.extend(set.light_regions());
            f(&set);
        }
    }

    /// Every set: the registered regions' then the light regions' (see
    /// [`light_region_sets`](Self::light_region_sets)).
    pub(super) fn all_sets(&self) -> Vec<Arc<LightTasks>> {
        let mut all: Vec<_> = self
            .regions_in_order()
            .map(|(_, rec)| rec.light.clone())
            .collect();
        all.extend(self.light_region_sets());
        all
    }
}
