//! Cancellation: requests on tasks and regions, acknowledgement,
//! masking, budgets and cost charging.
//!
//! Invariants upheld here (numbered as in `docs/ARCHITECTURE.md`):
//! - K2 (downward cancellation): cancelling a region cancels its tasks with
//!   the region's reason and its child regions with `ParentCancelled` caused
//!   by it; cancelling a task cancels the regions its body opened. Nothing
//!   flows to a parent.
//! - K3 (monotone cancellation): a second request only strengthens the stored
//!   reason (see `CancelReason::strengthen`).
//! - K4 (termination): a task whose cancellation was requested is force-
//!   dropped when its grace period expires or its cleanup poll quota runs out.
//!   Grace periods only ever shorten: a later, stronger request may move a
//!   task's deadline earlier, never later; the tasks a region cancel
//!   cancels together share the region's grace deadline (one timer), which
//!   likewise only moves earlier when the region's reason is strengthened.

use super::*;

impl Kernel {
    #[allow(clippy::unused_self)]
    pub(super) fn stamp(
        &self,
        reason: CancelReason,
        now: Time,
        r: RegionId,
        t: Option<TaskId>,
    ) -> CancelReason {
        stamp(reason, now, r, t)
    }

    pub(super) fn grace_for(&self, kind: CancelKind) -> Duration {
        grace_period(self.config.cleanup_grace, kind)
    }

    /// LT7: the cancel stored in light task `t`'s cell (of region `r`):
    /// through `cell` if the caller holds it, else found by a walk of the
    /// set.
    fn light_cancel_of(
        &self,
        t: TaskId,
        r: RegionId,
        cell: Option<&(dyn Attention + 'static)>,
    ) -> Option<LightCancel> {
        match cell {
            Some(cell) => cell.light_cancel(),
            None => self.region(r)?.light.get(t)?.light_cancel(),
        }
    }

    /// LT8: registers task `t` of region `r` if it is a light task with a
    /// cancel stored in its cell (its observation outside its own poll
    /// needs the record).
    /// [`registered_if_cancelled`](Self::registered_if_cancelled), in O(1)
    /// if `cell` (task `t`'s light cell, from its poll's context) is given:
    /// a region body's checkpoint inside a light owner's poll (LR5) reads
    /// the owner's slot instead of walking its region's set.
    pub(crate) fn registered_if_cancelled_hinted(
        &mut self,
        t: TaskId,
        r: RegionId,
        cell: Option<&(dyn Attention + 'static)>,
    ) {
        if self.tasks.contains_key(&t) {
            return;
        }
        match cell {
            Some(cell) if cell.light_cancel().is_some() => {
                self.registered_cell(t, r, cell);
            }
            Some(_) => {}
            None => self.registered_if_cancelled(t, r),
        }
    }

    pub(crate) fn registered_if_cancelled(&mut self, t: TaskId, r: RegionId) {
        if self.tasks.contains_key(&t) {
            return;
        }
        // LR5: `r` may be a region the task owns; its own is up the tree.
        let mut home = r;
        let cancelled = loop {
            let Some(rec) = self.region(home) else { return };
            if let Some(cell) = rec.light.get(t) {
                break cell.light_cancel().is_some();
            }
            match (rec.owner, rec.parent) {
                (Some(owner), Some(parent)) if owner == t => home = parent,
                _ => return,
            }
        };
        if cancelled {
            self.registered(t, home);
        }
    }

    /// Requests cancellation of task `t` (K2, K3). Returns whether anything
    /// changed.
    /// [`request_cancel`](Self::request_cancel) from outside the kernel:
    /// task `t` of region `r` may be light (LT1) and is registered first.
    pub(crate) fn request_cancel_of(
        &mut self,
        t: TaskId,
        r: RegionId,
        reason: CancelReason,
        now: Time,
    ) -> bool {
        self.registered(t, r);
        self.request_cancel(t, reason, now)
    }

    pub(crate) fn request_cancel(&mut self, t: TaskId, reason: CancelReason, now: Time) -> bool {
        self.request_cancel_shared(t, Arc::new(reason), now, None)
    }

    /// [`request_cancel`](Self::request_cancel) with a reason shared by many
    /// tasks (a region cancel stores one `Arc` per task, not a deep copy).
    pub(super) fn request_cancel_shared(
        &mut self,
        t: TaskId,
        mut reason: Arc<CancelReason>,
        now: Time,
        region_grace: Option<Time>,
    ) -> bool {
        let Some(rec) = self.task(t) else {
            return false;
        };
        if rec.kind == TaskKind::Finalizer || rec.state >= TaskState::Finalizing {
            return false;
        }
        // LR5: its light regions join `owned_regions` first (K2).
        self.register_regions_of(t);
        let rec = self.task(t).expect("looked up above");
        let region = rec.region;
        let now = self.exact_now(now);
        if needs_stamp(&reason) {
            let stamped = self.stamp((*reason).clone(), now, region, Some(t));
            reason = Arc::new(stamped);
        }
        let grace = self.grace_for(reason.kind);
        let traced = self.trace.is_some();
        // The record's part, in one lookup.
        let rec = self.tasks.get_mut(&t).expect("looked up above");
        let first = !rec.state.is_cancel_requested();
        let changed = match &mut rec.cancel {
            Some(existing) if reason.outranks(existing) => {
                *existing = reason;
                true
            }
            Some(_) => false,
            None => {
                rec.cancel = Some(reason);
                true
            }
        };
        if !first && !changed {
            return false;
        }
        if first {
            rec.transition(t, TaskState::CancelRequested);
        }
        let effective = rec.cancel.clone().expect("set above");
        let stored_kind = effective.kind;
        // K4: the grace period only ever shortens; a region cancel's tasks
        // get at most the region's shared deadline.
        let deadline = region_grace.map_or(now + grace, |shared| shared.min(now + grace));
        let lowered = rec.grace_deadline.is_none_or(|d| deadline < d);
        if lowered {
            rec.grace_deadline = Some(deadline);
        }
        let waker = rec.waker.clone();
        let owned = (!rec.owned_regions.is_empty()).then(|| rec.owned_regions.clone());
        if let Some(a) = &rec.attention {
            // A1: a started task with an unlimited poll quota needs nothing
            // from `before_poll` until it acknowledges (the cancel hint
            // alone routes an unstarted one through it, to be dropped
            // unpolled).
            if rec.budget.poll_quota != u32::MAX || traced {
                a.request_attention();
            }
            a.cancel_requested(stored_kind.severity());
        }
        if first {
            self.gauge_add();
        }
        self.actions.wakes.push(waker);
        self.emit(TraceKind::CancelRequest {
            task: t,
            kind: stored_kind,
        });
        // K4: the region's shared timer covers this deadline, if it is the
        // same; otherwise the task joins the grace queue (an entry for an
        // earlier, replaced deadline is skipped when it comes due).
        if lowered && region_grace != Some(deadline) {
            self.push_grace(t, deadline);
        }
        if let Some(owned) = owned {
            let child_reason = effective.to_parent_cancelled();
            for r in owned {
                self.cancel_region(r, child_reason.clone(), now);
            }
        }
        true
    }

    /// Cancels region `r`: its tasks get `reason`, its child regions get
    /// `ParentCancelled` caused by it (K2).
    pub(crate) fn cancel_region(&mut self, r: RegionId, reason: CancelReason, now: Time) {
        let Some(rec) = self.region(r) else { return };
        if rec.state == RegionState::Closed {
            return;
        }
        let now = self.exact_now(now);
        let reason = self.stamp(reason, now, r, None);
        let rec = self.region_mut(r).expect("looked up above");
        let (changed, first) = match &mut rec.cancel {
            Some(existing) => (existing.strengthen(&reason), false),
            None => {
                rec.cancel = Some(reason);
                (true, true)
            }
        };
        if first {
            self.gauge_add();
        }
        if !changed {
            return;
        }
        let rec = self.region_mut(r).expect("looked up above");
        let effective = rec.cancel.clone().expect("set above");
        let body_done = rec.body_done;
        self.emit(TraceKind::RegionCancel {
            region: r,
            kind: effective.kind,
        });
        let rec = self.region_mut(r).expect("looked up above");
        if !body_done {
            match &mut rec.report.cancelled_during_body {
                Some(existing) => {
                    existing.strengthen(&effective);
                }
                slot => *slot = Some(effective.clone()),
            }
        }
        let owner = if rec.body_done { None } else { rec.owner };
        let children = rec.children.clone();
        // The body runs in the owner task; wake it so a parked wait sees this.
        if let Some(w) = owner.and_then(|o| self.task(o)).map(|o| o.waker.clone()) {
            self.actions.wakes.push(w);
        }
        let child_reason = effective.to_parent_cancelled();
        let tasks = self.region_tasks(r);
        // One grace timer for the whole batch (K4): every task cancelled
        // here shares the region's grace deadline, which only ever moves
        // earlier (a stronger reason arriving later may shorten it, never
        // lengthen it).
        let proposed = now + self.grace_for(effective.kind);
        let rec = self.region(r).expect("looked up above");
        let current = rec.grace_deadline;
        let deadline = current.map_or(proposed, |c| c.min(proposed));
        let light = rec.light.clone();
        let shared = Arc::new(effective);
        // LT2: the gate is shut here, so a spawn after this cancel is
        // refused; LT10: the light tasks are cancelled in place (LT7) by a
        // sweep once the kernel lock is released. LR3: its light child
        // regions are registered and cancelled as its other children are.
        let (held, taken) = light.shut(&mut self.actions.wakes);
        let mut children = children;
        children.extend(self.register_light_regions(taken));
        if held > 0 {
            self.actions.sweeps.push(LightSweep {
                set: light,
                reason: shared.clone(),
                grace_deadline: deadline,
            });
        }
        let grace = if tasks.is_empty() && held == 0 {
            None
        } else {
            if current.is_none_or(|c| c > proposed) {
                let rec = self.region_mut(r).expect("looked up above");
                rec.grace_deadline = Some(proposed);
                if let Some(key) = rec.grace_timer.take() {
                    self.timers.cancel(key);
                }
                let key = self.arm_timer(proposed, TimerEvent::RegionGrace(r));
                self.region_mut(r).expect("looked up above").grace_timer = Some(key);
            }
            Some(deadline)
        };
        self.actions.wakes.reserve(tasks.len());
        for t in tasks {
            self.request_cancel_shared(t, shared.clone(), now, grace);
        }
        for c in children {
            self.cancel_region(c, child_reason.clone(), now);
        }
    }

    /// [`observe_cancel_hinted`](Self::observe_cancel_hinted) with no cell
    /// (the kernel's unit tests).
    #[cfg(test)]
    pub(crate) fn observe_cancel(
        &mut self,
        t: TaskId,
        r: RegionId,
        now: Time,
    ) -> Option<Arc<CancelReason>> {
        self.observe_cancel_hinted(t, r, None, now)
    }

    /// What a checkpoint on a `Cx` of task `t` in region `r` observes. An
    /// observation of the task's own cancellation is its acknowledgement:
    /// the task moves to `Cancelling` under the reason's cleanup budget.
    /// The reason is shared: the caller copies it after releasing the lock.
    /// A caller inside task `t`'s poll passes its light `cell`, if any, so
    /// a light task (a light owner's region body, LR5) with a cancel in
    /// its slot is registered without a walk of its region's set (LT8).
    pub(crate) fn observe_cancel_hinted(
        &mut self,
        t: TaskId,
        r: RegionId,
        cell: Option<&(dyn Attention + 'static)>,
        now: Time,
    ) -> Option<Arc<CancelReason>> {
        if self
            .region(r)
            .is_some_and(|rec| rec.state == RegionState::Finalizing)
        {
            return None; // K6: finalizers run masked.
        }
        self.registered_if_cancelled_hinted(t, r, cell); // LT8
        let rec = self.task(t)?;
        if rec.mask_depth > 0 {
            return None;
        }
        if rec.budget.is_past_deadline(now) && !rec.state.is_cancel_requested() {
            self.request_cancel(
                t,
                CancelReason::deadline().with_message("budget deadline passed"),
                now,
            );
        }
        if self
            .region(r)
            .is_some_and(|rec| rec.budget.is_past_deadline(now))
        {
            self.region_deadlines_due(r, now);
        }
        let rec = self.task_mut(t).expect("looked up above");
        if rec.state == TaskState::CancelRequested {
            rec.transition(t, TaskState::Cancelling);
            let reason = rec
                .cancel
                .clone()
                .expect("cancel requested implies a reason");
            rec.budget = cleanup_budget_on_ack(rec.budget, reason.cleanup_budget());
            self.emit(TraceKind::CancelAck {
                task: t,
                kind: reason.kind,
            });
            // A1: cleanup polls are counted against the cleanup budget.
            self.raise_attention(t);
            return Some(reason);
        }
        if rec.state == TaskState::Cancelling {
            return rec.cancel.clone();
        }
        self.region(r)
            .and_then(|rec| rec.cancel.clone())
            .map(Arc::new)
    }

    /// The cancellation visible to task `t` in region `r`, ignoring masks and
    /// without acknowledging it.
    /// `cell`: task `t`'s light cell, if the caller holds it (LT1: no walk
    /// of the set).
    pub(crate) fn cancel_requested(
        &self,
        t: TaskId,
        r: RegionId,
        cell: Option<&(dyn Attention + 'static)>,
    ) -> Option<CancelReason> {
        let task_reason = match self.task(t) {
            Some(rec) => rec.cancel.as_deref().cloned(),
            // LT7: a light task's cancel is in its cell.
            None => self
                .light_cancel_of(t, r, cell)
                .map(|c| Arc::unwrap_or_clone(c.reason)),
        };
        let region_reason = self.region(r).and_then(|rec| rec.cancel.clone());
        match (task_reason, region_reason) {
            (Some(mut a), Some(b)) => {
                a.strengthen(b);
                Some(a)
            }
            (a, b) => a.or(b),
        }
    }

    /// Enters a masked section of task `t`, whose `Cx` is in region `r`
    /// (LT1: a light task is registered first).
    pub(crate) fn mask_enter(&mut self, t: TaskId, r: RegionId) {
        if let Some(rec) = self.registered(t, r) {
            assert!(
                rec.mask_depth < MAX_MASK_DEPTH,
                "task {t}: Cx::masked nested deeper than {MAX_MASK_DEPTH} levels (rule: mask nesting is bounded)"
            );
            rec.mask_depth += 1;
        }
    }

    pub(crate) fn mask_exit(&mut self, t: TaskId) {
        if let Some(rec) = self.task_mut(t) {
            rec.mask_depth = rec.mask_depth.saturating_sub(1);
        }
    }

    /// Task `t`'s budget (of region `r`, as in
    /// [`registered`](Self::registered)): a light task has none of its own
    /// (LT4), but the cleanup budget once it acknowledged a cancel stored
    /// in its cell (LT7), as its record would have.
    pub(crate) fn task_budget(
        &self,
        t: TaskId,
        r: RegionId,
        cell: Option<&(dyn Attention + 'static)>,
    ) -> Budget {
        if let Some(rec) = self.task(t) {
            return rec.budget;
        }
        let acked = self.light_cancel_of(t, r, cell).filter(|c| c.acked);
        match acked {
            Some(c) => cleanup_budget_on_ack(Budget::INFINITE, c.reason.cleanup_budget()),
            None => Budget::INFINITE,
        }
    }

    /// Charges `cost` to task `t`; past its cost quota it is cancelled with
    /// `CostBudget`. Returns whether the quota still holds.
    pub(crate) fn charge_cost(&mut self, t: TaskId, cost: u64, now: Time) -> bool {
        let Some(rec) = self.task_mut(t) else {
            return true;
        };
        rec.cost = rec.cost.saturating_add(cost);
        let over = rec.budget.cost_quota.is_some_and(|q| rec.cost > q);
        if over {
            self.request_cancel(
                t,
                CancelReason::cost_budget().with_message("cost quota exhausted"),
                now,
            );
        }
        !over
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    /// K4 with the region's shared grace timer: a region cancel arms one
    /// timer for all its tasks, shortens a longer individual grace period,
    /// leaves a shorter one alone, and force-drops exactly the tasks whose
    /// deadline passed.
    #[test]
    fn a_region_cancel_shares_one_grace_timer_and_grace_only_shortens() {
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let r = k.create_root_region(Budget::INFINITE);
        let (long, short, plain) = (spawn(&mut k, r), spawn(&mut k, r), spawn(&mut k, r));
        // `long`: a User cancel (10 s grace) before the region's FailFast (1 s).
        k.request_cancel(long, CancelReason::user("first"), ms(0));
        // `short`: a Shutdown cancel (200 ms grace) that the region must keep.
        k.request_cancel(short, CancelReason::shutdown(), ms(500));
        assert_eq!(k.pending_timer_count(), 1, "one grace-queue timer (GQ1)");
        k.cancel_region(r, CancelReason::fail_fast(), ms(1_000));
        let deadline = |k: &Kernel, t| k.task(t).unwrap().grace_deadline;
        assert_eq!(
            deadline(&k, long),
            Some(ms(2_000)),
            "shortened to the region's"
        );
        assert_eq!(deadline(&k, plain), Some(ms(2_000)));
        assert_eq!(
            deadline(&k, short),
            Some(ms(700)),
            "a shorter grace is kept"
        );
        // The grace queue's (for `short`) and the region's.
        assert_eq!(k.pending_timer_count(), 2);
        let dropped = |k: &Kernel, t| k.task(t).unwrap().force_drop;
        k.fire_timers(ms(700));
        assert_eq!(dropped(&k, short), Some(ForceDropCause::GraceExpired));
        assert_eq!(dropped(&k, long), None);
        k.fire_timers(ms(1_999));
        assert_eq!(dropped(&k, plain), None);
        k.fire_timers(ms(2_000));
        assert_eq!(dropped(&k, long), Some(ForceDropCause::GraceExpired));
        assert_eq!(dropped(&k, plain), Some(ForceDropCause::GraceExpired));
        // `long`'s first (10 s) entry is stale; the queue stays armed until
        // its last live task completes (GQ3).
        for t in [long, short, plain] {
            k.complete_task(t, TaskEnd::Dropped, false, ms(2_001));
        }
        assert_eq!(k.pending_timer_count(), 0);
    }

    /// K4 for the region's shared grace deadline: a stronger reason arriving
    /// later (here the owner aborted, which re-cancels the region with
    /// `ParentCancelled`) may shorten it but never lengthen it, with the
    /// default per-kind grace periods and with a uniform one.
    #[test]
    fn a_region_grace_deadline_only_shortens_when_the_cancel_is_strengthened() {
        for (uniform, later_grace) in [(None, 500), (Some(Duration::from_secs(1)), 1_000)] {
            let config = KernelConfig {
                cleanup_grace: uniform,
                ..KernelConfig::default()
            };
            let mut k = Kernel::new(config, Time::ZERO);
            let root = k.create_root_region(Budget::INFINITE);
            let owner = spawn(&mut k, root);
            let r = k
                .create_child_region(root, owner, Budget::INFINITE)
                .expect("open parent");
            let stubborn = spawn(&mut k, r);
            // The body fails at 1 ms: FailFast, 1 s of grace.
            k.region_body_done(r, BodyEnd::Err, ms(1));
            let first = ms(1) + Duration::from_secs(1);
            assert_eq!(k.region(r).unwrap().grace_deadline, Some(first));
            assert_eq!(k.task(stubborn).unwrap().grace_deadline, Some(first));
            // The owner is aborted at 900 ms: the region's reason becomes
            // ParentCancelled, whose own grace would end later.
            k.request_cancel(owner, CancelReason::user("abort"), ms(900));
            let reason = k.region(r).unwrap().cancel.clone().unwrap();
            assert_eq!(reason.kind, CancelKind::ParentCancelled);
            assert!(ms(900 + later_grace) > first);
            assert_eq!(
                k.region(r).unwrap().grace_deadline,
                Some(first),
                "lengthened"
            );
            assert_eq!(k.task(stubborn).unwrap().grace_deadline, Some(first));
            let dropped = |k: &Kernel| k.task(stubborn).unwrap().force_drop;
            k.fire_timers(Time::from_nanos(first.as_nanos() - 1));
            assert_eq!(dropped(&k), None, "dropped before its grace ended");
            k.fire_timers(first);
            assert_eq!(
                dropped(&k),
                Some(ForceDropCause::GraceExpired),
                "{uniform:?}"
            );
        }
        // A stronger reason with a shorter grace does shorten it.
        let mut k = Kernel::new(KernelConfig::default(), Time::ZERO);
        let r = k.create_root_region(Budget::INFINITE);
        let t = spawn(&mut k, r);
        k.cancel_region(r, CancelReason::fail_fast(), ms(0));
        k.cancel_region(r, CancelReason::shutdown(), ms(100));
        assert_eq!(k.region(r).unwrap().grace_deadline, Some(ms(300)));
        assert_eq!(k.task(t).unwrap().grace_deadline, Some(ms(300)));
        assert_eq!(k.pending_timer_count(), 1, "the old region timer is gone");
        k.fire_timers(ms(300));
        assert_eq!(
            k.task(t).unwrap().force_drop,
            Some(ForceDropCause::GraceExpired)
        );
    }
}
