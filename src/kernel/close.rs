//! Regions: creation, budgets and deadlines, the body's end, finalizers,
//! and advancing a region to `Closed`.
//!
//! Invariants upheld here (numbered as in `docs/ARCHITECTURE.md`):
//! - K1 (ownership): every task belongs to exactly one region, every region
//!   but a root has a parent; a region closes only when quiescent (its body is
//!   done, no live task, no open child region).
//! - K6 (finalizers): run after the last child, LIFO, masked, exactly once.
//! - K9 (region budgets): a region's budget (its own met with its
//!   parent's) bounds its body as well as its tasks. A region whose
//!   deadline is tighter than its parent's has a deadline timer that
//!   cancels it with `Deadline` (its tasks, its child regions, and the
//!   checkpoints and waits of its body, which runs in the owner task); an
//!   inherited deadline is enforced by the ancestor's timer or, for the
//!   root region, by the root task's own deadline. A checkpoint that finds
//!   a region deadline passed before its timer fired fires it at once. The
//!   body's polls count against a poll quota the region asked for
//!   (`RegionFuture`): the poll that finds it spent cancels the region with
//!   `PollQuota`. The owner task itself is not cancelled.

use super::*;

impl Kernel {
    /// Creates a root region (one per `block_on`).
    pub(crate) fn create_root_region(&mut self, budget: Budget) -> RegionId {
        let region = self.counters.next_region_id();
        self.regions
            .insert(region, RegionRecord::new(region, None, None, budget));
        self.emit(TraceKind::RegionCreate {
            region,
            parent: None,
        });
        self.emit(TraceKind::RegionBudget { region, budget });
        region
    }

    /// Creates a region under `parent` whose body runs in task `owner`.
    pub(crate) fn create_child_region(
        &mut self,
        parent: RegionId,
        owner: TaskId,
        budget: Budget,
    ) -> Result<RegionId, SpawnError> {
        let parent_rec = self
            .region(parent)
            .ok_or(SpawnError::RegionClosed(parent))?;
        if !parent_rec.state.accepts_spawns() {
            return Err(SpawnError::RegionClosed(parent));
        }
        if let Some(reason) = &parent_rec.cancel {
            return Err(SpawnError::RegionCancelled(parent, reason.clone()));
        }
        let parent_deadline = parent_rec.budget.deadline;
        let budget = parent_rec.budget.meet(budget);
        let r = self.counters.next_region_id();
        self.regions
            .insert(r, RegionRecord::new(r, Some(parent), Some(owner), budget));
        self.emit(TraceKind::RegionCreate {
            region: r,
            parent: Some(parent),
        });
        self.emit(TraceKind::RegionBudget { region: r, budget });
        if let Some(p) = self.region_mut(parent) {
            p.children.push(r);
        }
        // LT1: the owner's `Cx` was in `parent`, its own region if it is
        // light; a task that owns a region is registered.
        if let Some(o) = self.registered(owner, parent) {
            o.owned_regions.push(r);
        }
        // K9: a deadline tighter than the parent's gets its own timer (an
        // inherited one is covered by the ancestor's timer, or for the root
        // region by the root task's own deadline timer).
        if let Some(deadline) = budget.deadline
            && parent_deadline.is_none_or(|p| deadline < p)
        {
            let key = self.arm_timer(deadline.max(self.now), TimerEvent::RegionDeadline(r));
            self.region_mut(r).expect("just inserted").deadline_timer = Some(key);
        }
        Ok(r)
    }

    /// The budget of region `r` (its own, met with its ancestors').
    pub(crate) fn region_budget(&self, r: RegionId) -> Budget {
        self.region(r).map_or(Budget::INFINITE, |rec| rec.budget)
    }

    /// K9: region `r`'s deadline passed: cancel it with `Deadline` (its
    /// tasks, its child regions and the checkpoints and waits of its body).
    pub(super) fn region_deadline_passed(&mut self, r: RegionId, now: Time) {
        if let Some(key) = self.region_mut(r).and_then(|rec| rec.deadline_timer.take()) {
            self.timers.cancel(key);
        }
        self.cancel_region(
            r,
            CancelReason::deadline().with_message("region deadline passed"),
            now,
        );
    }

    /// K9 without waiting for the timer: a checkpoint in region `r` found
    /// its deadline passed (rule A2's deadline exception reads the clock).
    /// Fires the deadline of `r` and of every ancestor whose deadline also
    /// passed, innermost first, as the timers would.
    pub(super) fn region_deadlines_due(&mut self, r: RegionId, now: Time) {
        let mut cursor = Some(r);
        while let Some(x) = cursor {
            let Some(rec) = self.region(x) else { return };
            if !rec.budget.is_past_deadline(now) {
                return; // ancestors' deadlines are no earlier
            }
            cursor = rec.parent;
            if rec.deadline_timer.is_some() {
                self.region_deadline_passed(x, now);
            }
        }
    }

    /// K9 for a region body's polls: the body of a region with a poll quota
    /// used it up; cancel the region with `PollQuota`.
    pub(crate) fn region_polls_exhausted(&mut self, r: RegionId, now: Time) {
        self.cancel_region(
            r,
            CancelReason::poll_quota().with_message("region poll quota exhausted"),
            now,
        );
    }

    /// Sets which task runs a root region's body.
    pub(crate) fn set_region_owner(&mut self, r: RegionId, owner: TaskId) {
        if let Some(rec) = self.region_mut(r) {
            rec.owner = Some(owner);
        }
    }

    /// Records that region `r`'s body finished and starts closing it.
    pub(crate) fn region_body_done(&mut self, r: RegionId, end: BodyEnd, now: Time) {
        let Some(rec) = self.region_mut(r) else {
            return;
        };
        if rec.body_done {
            return;
        }
        rec.body_done = true;
        let failure = match &end {
            BodyEnd::Ok => None,
            BodyEnd::Err => {
                Some(CancelReason::fail_fast().with_message("region body returned an error"))
            }
            BodyEnd::Panicked(p) => Some(
                CancelReason::fail_fast()
                    .with_message(format!("region body panicked: {}", p.message())),
            ),
            BodyEnd::Abandoned => Some(
                CancelReason::fail_fast()
                    .with_message("region future dropped before its body finished"),
            ),
        };
        if matches!(end, BodyEnd::Abandoned) {
            rec.awaited = false;
        }
        if let Some(reason) = failure {
            self.cancel_region(r, reason.with_origin(Some(r), None), now);
        }
        self.advance_region(r, now);
    }

    /// The region future was dropped: finish its body (if needed) and let the
    /// kernel close it without anyone awaiting the report.
    pub(crate) fn abandon_region(&mut self, r: RegionId, now: Time) {
        self.unmask_owner(r);
        let Some(rec) = self.region_mut(r) else {
            return;
        };
        rec.awaited = false;
        if rec.state == RegionState::Closed {
            self.remove_region(r);
        } else if !rec.body_done {
            self.region_body_done(r, BodyEnd::Abandoned, now);
        }
    }

    /// Polls for closure: `Some(report)` once closed (the record is then
    /// released); otherwise stores `waker` to be woken on close.
    pub(crate) fn poll_region_closed(
        &mut self,
        r: RegionId,
        waker: &Waker,
    ) -> Option<RegionReport> {
        let rec = self.region_mut(r)?;
        if rec.state == RegionState::Closed {
            let report = std::mem::take(&mut rec.report);
            self.remove_region(r);
            return Some(report);
        }
        match &mut rec.close_waker {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        None
    }

    pub(super) fn remove_region(&mut self, r: RegionId) {
        self.regions.remove(&r);
    }

    /// Registers a finalizer on `r`; gives it back if `r` already closed.
    pub(crate) fn register_finalizer(
        &mut self,
        r: RegionId,
        fin: Finalizer,
    ) -> Result<(), Finalizer> {
        let Some(rec) = self.region(r) else {
            return Err(fin);
        };
        rec.light.defer(fin)?; // RF1, RF2: refused once sealed
        self.emit(TraceKind::FinalizerRegister { region: r });
        Ok(())
    }

    /// Takes the most recently registered finalizer of `r` (LIFO).
    pub(crate) fn pop_finalizer(&mut self, r: RegionId) -> Option<Finalizer> {
        let fin = self.region(r)?.light.pop_finalizer()?;
        self.emit(TraceKind::FinalizerRun { region: r });
        Some(fin)
    }

    pub(crate) fn finalizer_panicked(&mut self, r: RegionId, payload: PanicPayload) {
        if let Some(rec) = self.region_mut(r) {
            rec.report.panic.get_or_insert(payload);
        }
    }

    /// Walks `r` (and, as regions close, its ancestors) forward through
    /// Open → Closing → Draining → Finalizing → Closed as far as possible.
    pub(super) fn advance_region(&mut self, r: RegionId, now: Time) {
        let mut current = Some(r);
        while let Some(r) = current.take() {
            let Some(rec) = self.region_mut(r) else {
                return;
            };
            loop {
                match rec.state {
                    RegionState::Open if rec.body_done => rec.advance(r),
                    RegionState::Closing => rec.advance(r),
                    RegionState::Draining if rec.is_quiescent() => {
                        rec.advance(r);
                        if rec.light.has_finalizers() {
                            rec.finalizers_running = true;
                            self.actions.start_finalizers.push(r);
                            self.mask_waiting_owner(r);
                            return;
                        }
                    }
                    RegionState::Finalizing if !rec.finalizers_running => {
                        if !rec.light.seal_finalizers() {
                            // K6, RF2: registered after the finalizer task
                            // took its last one (a `Cx` used from another
                            // thread): each still runs exactly once.
                            rec.finalizers_running = true;
                            self.actions.start_finalizers.push(r);
                            return;
                        }
                        current = self.close_region(r, now);
                        break;
                    }
                    _ => return,
                }
            }
        }
    }

    /// K6: while a region's finalizers run, the owner task (which is only
    /// awaiting the region future) is masked, so finalizers that wait on the
    /// owner's `Cx` are not cancelled. Unmasked on close or abandonment.
    pub(super) fn mask_waiting_owner(&mut self, r: RegionId) {
        let Some(rec) = self.region(r) else { return };
        let owner = rec.owner.filter(|_| rec.awaited && rec.parent.is_some());
        if let Some(o) = owner.and_then(|o| self.task_mut(o)) {
            o.mask_depth += 1;
            self.region_mut(r).expect("looked up above").owner_masked = true;
        }
    }

    pub(super) fn unmask_owner(&mut self, r: RegionId) {
        let Some(rec) = self.region_mut(r) else {
            return;
        };
        if !std::mem::take(&mut rec.owner_masked) {
            return;
        }
        if let Some(o) = rec.owner.and_then(|o| self.task_mut(o)) {
            o.mask_depth = o.mask_depth.saturating_sub(1);
        }
    }

    /// The finalizer task could not be created: close without it.
    pub(crate) fn finalizers_not_started(&mut self, r: RegionId, now: Time) {
        if let Some(rec) = self.region_mut(r) {
            rec.finalizers_running = false;
        }
        self.advance_region(r, now);
    }

    /// Finalizing → Closed. Returns the parent, which may now be quiescent.
    pub(super) fn close_region(&mut self, r: RegionId, now: Time) -> Option<RegionId> {
        self.unmask_owner(r);
        self.leak_region_obligations(r, now);
        if self.region(r)?.cancel.is_some() {
            self.gauge_sub();
        }
        let rec = self.region_mut(r)?;
        rec.advance(r);
        let timers = [rec.grace_timer.take(), rec.deadline_timer.take()];
        for key in timers.into_iter().flatten() {
            self.timers.cancel(key);
        }
        let rec = self.region_mut(r)?;
        if rec.report.panic.is_none()
            && let Some((_, p)) = rec.pending_panics.first()
        {
            rec.report.panic = Some(p.clone());
        }
        rec.pending_panics.clear();
        let parent = rec.parent;
        let owner = rec.owner;
        let awaited = rec.awaited;
        if let Some(w) = rec.close_waker.take() {
            self.actions.wakes.push(w);
        }
        self.emit(TraceKind::RegionClose { region: r });
        if !awaited {
            self.remove_region(r);
        }
        if let Some(o) = owner.and_then(|o| self.task_mut(o)) {
            o.owned_regions.retain(|&x| x != r);
        }
        let p = self.region_mut(parent?)?;
        p.children.retain(|&c| c != r);
        parent
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    /// K6: a finalizer registered while the region finalizes, after the
    /// finalizer task found the list empty (but before that task ended),
    /// is run by a new finalizer task instead of being dropped unrun with
    /// the region.
    #[test]
    fn a_finalizer_registered_after_the_last_one_ran_still_runs_before_the_close() {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let root = k.create_root_region(Budget::INFINITE);
        let owner = spawn(&mut k, root);
        let r = k
            .create_child_region(root, owner, Budget::INFINITE)
            .unwrap();
        assert!(
            k.register_finalizer(r, Finalizer::Sync(Box::new(|| {})))
                .is_ok()
        );
        k.region_body_done(r, BodyEnd::Ok, ms(1));
        assert_eq!(k.take_actions().start_finalizers, vec![r]);
        let runner = k
            .create_task(
                r,
                TaskKind::Finalizer,
                Waker::noop().clone(),
                Budget::INFINITE,
                ms(1),
            )
            .expect("a finalizing region takes its finalizer task");
        assert!(k.pop_finalizer(r).is_some());
        assert!(k.pop_finalizer(r).is_none(), "the task sees none left");
        // A late registration, before the task's completion reaches the kernel.
        assert!(
            k.register_finalizer(r, Finalizer::Sync(Box::new(|| {})))
                .is_ok()
        );
        k.complete_task(runner, TaskEnd::Returned, false, ms(2));
        assert_eq!(
            k.region_state(r),
            Some(RegionState::Finalizing),
            "not closed"
        );
        assert_eq!(k.take_actions().start_finalizers, vec![r], "started again");
        assert!(k.pop_finalizer(r).is_some(), "the late one runs");
    }

    /// K9: only a region whose deadline is tighter than its parent's gets a
    /// deadline timer; it cancels the region with `Deadline` and cascades;
    /// a checkpoint that finds the deadline passed first fires it itself.
    #[test]
    fn a_region_deadline_timer_is_armed_only_when_tighter_and_cancels_the_region() {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let root = k.create_root_region(Budget::INFINITE);
        let owner = spawn(&mut k, root);
        let at = |n| Budget::INFINITE.with_deadline(ms(n));
        let outer = k.create_child_region(root, owner, at(30)).unwrap();
        let same = k.create_child_region(outer, owner, at(50)).unwrap();
        let inner = k.create_child_region(outer, owner, at(10)).unwrap();
        let timer = |k: &Kernel, r| k.region(r).unwrap().deadline_timer.is_some();
        assert!(timer(&k, outer) && timer(&k, inner));
        assert!(
            !timer(&k, same),
            "an inherited deadline needs no timer of its own"
        );
        assert_eq!(k.region(same).unwrap().budget.deadline, Some(ms(30)));
        let kind = |k: &Kernel, r| k.region(r).unwrap().cancel.as_ref().map(|c| c.kind);
        k.fire_timers(ms(10));
        assert_eq!(kind(&k, inner), Some(CancelKind::Deadline));
        assert_eq!(kind(&k, outer), None);
        // A checkpoint in `same` at 30 ms, before any timer fired.
        let seen = k.observe_cancel(owner, same, ms(30)).map(|r| r.kind);
        assert_eq!(seen, Some(CancelKind::ParentCancelled));
        assert_eq!(kind(&k, outer), Some(CancelKind::Deadline));
        assert!(!timer(&k, outer), "fired early, so disarmed");
        assert_eq!(k.pending_timer_count(), 0);
        let owner_state = k.task_state(owner).unwrap();
        assert!(
            !owner_state.is_cancel_requested(),
            "the owner is not cancelled"
        );
    }
}
