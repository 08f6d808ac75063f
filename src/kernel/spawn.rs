//! Creating and completing tasks: records, the region's sibling list, the
//! pre-poll decision (rule A1's fast polls), completion and panic
//! escalation.
//!
//! Invariants upheld here (numbered as in `docs/ARCHITECTURE.md`):
//! - K1 (ownership): every task belongs to exactly one region, every region
//!   but a root has a parent; a region closes only when quiescent (its body is
//!   done, no live task, no open child region).

use super::*;

impl Kernel {
    /// Creates a task record in region `r`. `Finalizer` tasks may be created
    /// in a finalizing region; others only while it accepts spawns.
    #[cfg(test)]
    pub(crate) fn create_task(
        &mut self,
        r: RegionId,
        kind: TaskKind,
        waker: Waker,
        budget: Budget,
        now: Time,
    ) -> Result<TaskId, SpawnError> {
        self.create_task_with(r, kind, waker, None, budget, now)
    }

    /// [`create_task`](Self::create_task) that also registers the task's
    /// attention flag (rule A1), so the spawner takes the lock only once.
    pub(crate) fn create_task_with(
        &mut self,
        r: RegionId,
        kind: TaskKind,
        waker: Waker,
        attention: Option<std::sync::Arc<dyn Attention>>,
        budget: Budget,
        now: Time,
    ) -> Result<TaskId, SpawnError> {
        let rec = self.region(r).ok_or(SpawnError::RegionClosed(r))?;
        match kind {
            TaskKind::Finalizer => {
                if rec.state != RegionState::Finalizing {
                    return Err(SpawnError::RegionClosed(r));
                }
            }
            _ => {
                if !rec.state.accepts_spawns() {
                    return Err(SpawnError::RegionClosed(r));
                }
                if let Some(reason) = &rec.cancel {
                    return Err(SpawnError::RegionCancelled(r, reason.clone()));
                }
            }
        }
        let budget = rec.budget.meet(budget);
        let mut record = TaskRecord::new(r, kind, waker, budget);
        record.last_polled = now;
        if let (Some(a), Some(deadline)) = (&attention, budget.deadline) {
            a.deadline_hint(deadline); // the timed lane's key
        }
        record.attention = attention;
        let t = self.counters.next_id(); // LT5
        self.tasks.insert(t, record);
        self.emit(TraceKind::Spawn { task: t, region: r });
        self.emit(TraceKind::TaskBudget { task: t, budget });
        if kind == TaskKind::Finalizer {
            self.region_mut(r).expect("checked above").finalizer_task = Some(t);
        } else {
            self.link_task(r, t);
        }
        if let Some(deadline) = budget.deadline {
            let key = self.arm_timer(deadline.max(now), TimerEvent::Deadline(t));
            self.task_mut(t).expect("just inserted").deadline_timer = Some(key);
        }
        Ok(t)
    }

    pub(super) fn link_task(&mut self, r: RegionId, t: TaskId) {
        let rec = self.region_mut(r).expect("region checked by caller");
        let prev = rec.last_task;
        rec.last_task = Some(t);
        if rec.first_task.is_none() {
            rec.first_task = Some(t);
        }
        rec.live_tasks += 1;
        if let Some(p) = prev {
            self.task_mut(p).expect("list is consistent").next = Some(t);
        }
        self.task_mut(t).expect("just inserted").prev = prev;
    }

    /// LT1: makes light task `t` of region `r` (just taken out of the
    /// region's set) a registered task: its record is what a kernel spawn
    /// would have made, in the state rule A1 leaves a task whose polls
    /// skipped the kernel (`Created`, no poll counted), which every kernel
    /// call already handles (`before_poll`, `complete_task`). A cancel
    /// stored in its cell (LT7) is copied into the record as
    /// `request_cancel` and `observe_cancel` would have left it, and counted
    /// in the A2 gauge from now on (LT8); its grace deadline joins the
    /// grace queue unless the region's shared timer covers it (K4).
    pub(super) fn register_light(&mut self, t: TaskId, r: RegionId, task: Arc<dyn Attention>) {
        let budget = self.region(r).map_or(Budget::INFINITE, |rec| rec.budget);
        let mut record = TaskRecord::new(r, TaskKind::Spawned, task.clone().to_waker(), budget);
        record.last_polled = self.now;
        let cancel = task.light_cancel();
        let owner = task.owns_regions();
        record.attention = Some(task);
        if let Some(c) = &cancel {
            record.transition(t, TaskState::CancelRequested);
            if c.acked {
                record.transition(t, TaskState::Cancelling);
                record.budget = cleanup_budget_on_ack(record.budget, c.reason.cleanup_budget());
                if let Some(a) = &record.attention {
                    a.request_attention(); // A1: cleanup polls are counted
                }
            }
            record.cancel = Some(c.reason.clone());
            record.grace_deadline = Some(c.grace_deadline);
        }
        self.tasks.insert(t, record);
        self.link_task(r, t);
        if let Some(c) = cancel {
            self.gauge_add();
            let covered = self.region(r).is_some_and(|rec| {
                rec.grace_timer.is_some() && rec.grace_deadline == Some(c.grace_deadline)
            });
            if !covered {
                self.push_grace(t, c.grace_deadline);
            }
            // LR5: a light owner cancelled in place: the regions it opened
            // light get the cancel now, as if it had been registered when
            // the request came (K2).
            if owner {
                self.cancel_regions_of(t, &c.reason);
            }
        }
        // LT10: a region cancel whose sweep has not reached this task (it
        // runs after the kernel lock is released) applies now, as if the
        // task had been registered when the region was cancelled (K2).
        let pending = self
            .region(r)
            .and_then(|rec| Some((rec.cancel.clone()?, rec.grace_deadline)));
        if let Some((reason, grace)) = pending {
            let now = self.now;
            self.request_cancel_shared(t, Arc::new(reason), now, grace);
        }
    }

    /// LR5, K2: registers the light regions task `t` (registered, with
    /// `reason` stored) opened and cancels every region it owns with
    /// `ParentCancelled` caused by `reason`.
    fn cancel_regions_of(&mut self, t: TaskId, reason: &CancelReason) {
        self.register_regions_of(t);
        let owned = match self.task(t) {
            Some(rec) if !rec.owned_regions.is_empty() => rec.owned_regions.clone(),
            _ => return,
        };
        let (child_reason, now) = (reason.to_parent_cancelled(), self.now);
        for r in owned {
            self.cancel_region(r, child_reason.clone(), now);
        }
    }

    /// LT1: registers every light task of region `r` and shuts its gate
    /// (LT2), so the caller (a cancel) finds them all in the region's list.
    pub(super) fn register_light_tasks(&mut self, r: RegionId) {
        let Some(rec) = self.region(r) else { return };
        let all = rec.light.clone().shut_and_take_all();
        self.tasks.reserve(all.len());
        for (t, task) in all {
            self.register_light(t, r, task);
        }
    }

    /// LT3: the last light task of region `r` finished while the kernel
    /// waited for it to close the region.
    pub(crate) fn light_tasks_drained(&mut self, r: RegionId, now: Time) {
        self.advance_region(r, now);
    }

    pub(super) fn unlink_task(&mut self, r: RegionId, t: TaskId) {
        let (prev, next) = {
            let rec = self.task(t).expect("unlinking a live task");
            (rec.prev, rec.next)
        };
        if let Some(p) = prev {
            self.task_mut(p).expect("list is consistent").next = next;
        }
        if let Some(n) = next {
            self.task_mut(n).expect("list is consistent").prev = prev;
        }
        if let Some(rec) = self.region_mut(r) {
            if rec.first_task == Some(t) {
                rec.first_task = next;
            }
            if rec.last_task == Some(t) {
                rec.last_task = prev;
            }
            rec.live_tasks -= 1;
        }
    }

    /// Rule A1 at spawn: whether task `t`'s first poll may skip
    /// [`before_poll`](Self::before_poll). The Created → Running step is
    /// then recorded by whichever kernel call comes first (the task's next
    /// `before_poll` or its `complete_task`).
    pub(crate) fn may_skip_first_poll(&self, t: TaskId) -> bool {
        self.task(t).is_some_and(|rec| {
            rec.attention.is_some()
                && rec.budget.deadline.is_none()
                && self.polls_may_skip(rec, TaskState::Created)
        })
    }

    /// Rule A1's common condition: nothing traces polls, none needs
    /// counting, no drop is pending, and the task is in `state`.
    pub(super) fn polls_may_skip(&self, rec: &TaskRecord, state: TaskState) -> bool {
        self.trace.is_none()
            && rec.state == state
            && rec.budget.poll_quota == u32::MAX
            && rec.force_drop.is_none()
    }

    /// Bookkeeping before each poll: first-poll transition, poll quota,
    /// deadline, and whether the future must be dropped instead.
    /// `polled_before` says the driver polled the future already, possibly
    /// without telling the kernel (a first poll that skipped it, rule A1).
    pub(crate) fn before_poll(
        &mut self,
        t: TaskId,
        r: RegionId,
        now: Time,
        polled_before: bool,
    ) -> PollDecision {
        // LT8: a light task here was cancelled before it started.
        let Some(rec) = self.registered(t, r) else {
            return PollDecision::Drop(ForceDropCause::CancelledBeforeStart);
        };
        if polled_before && rec.polls == 0 {
            // Its first poll skipped the kernel (A1): it has started.
            rec.polls = 1;
            if rec.state == TaskState::Created {
                rec.transition(t, TaskState::Running);
            }
        }
        if let Some(cause) = rec.force_drop {
            return PollDecision::Drop(cause);
        }
        match rec.state {
            TaskState::Created => rec.transition(t, TaskState::Running),
            TaskState::CancelRequested if rec.polls == 0 => {
                rec.force_drop = Some(ForceDropCause::CancelledBeforeStart);
                return PollDecision::Drop(ForceDropCause::CancelledBeforeStart);
            }
            _ => {}
        }
        rec.polls = rec.polls.saturating_add(1);
        rec.last_polled = now;
        // `poll_quota` is the remaining allowance (u32::MAX = unlimited).
        let exhausted = rec.budget.poll_quota == 0;
        if exhausted && rec.state == TaskState::Cancelling {
            rec.force_drop = Some(ForceDropCause::CleanupPollsExhausted);
            return PollDecision::Drop(ForceDropCause::CleanupPollsExhausted);
        }
        if rec.budget.poll_quota != u32::MAX && !exhausted {
            rec.budget.poll_quota -= 1;
        }
        let over_quota = exhausted && !rec.state.is_cancel_requested();
        self.emit(TraceKind::Poll { task: t });
        let rec = self.task_mut(t).expect("looked up above");
        let past_deadline = rec.budget.is_past_deadline(now);
        if over_quota {
            self.request_cancel(
                t,
                CancelReason::poll_quota().with_message("poll quota exhausted"),
                now,
            );
        }
        if past_deadline {
            self.request_cancel(
                t,
                CancelReason::deadline().with_message("budget deadline passed"),
                now,
            );
        }
        // Rule A1: polls may skip the kernel while nothing is pending. Poll
        // quotas need counting and the lab's trace needs every poll; deadlines
        // and cancellations raise attention themselves.
        let fast_next = self
            .task(t)
            .is_some_and(|rec| self.polls_may_skip(rec, TaskState::Running));
        PollDecision::Poll { fast_next }
    }

    /// Records the end of task `t` and returns how it ended. `handle_alive`
    /// says whether a `TaskHandle` may still join it (decides whether a panic
    /// is escalated now or left for the joiner).
    pub(crate) fn complete_task(
        &mut self,
        t: TaskId,
        end: TaskEnd,
        handle_alive: bool,
        now: Time,
    ) -> (TaskOutcome, Vec<LeakReport>) {
        // K5, OB4: sweep the task's obligation home (its future, and every
        // permit in it, is gone); what it still counted is leaked.
        let leaked = self
            .task(t)
            .and_then(TaskRecord::obligation_home)
            .map(ObligationHome::close)
            .unwrap_or_default();
        self.complete_swept_task(t, end, handle_alive, leaked, now)
    }

    /// [`complete_task`](Self::complete_task) for a task whose home its
    /// completion already swept (a light task, LT1: the sweep decides
    /// whether it may complete without the kernel), with what the sweep
    /// found leaked.
    pub(crate) fn complete_swept_task(
        &mut self,
        t: TaskId,
        end: TaskEnd,
        handle_alive: bool,
        leaked: Vec<Held>,
        now: Time,
    ) -> (TaskOutcome, Vec<LeakReport>) {
        let Some(rec) = self.task_mut(t) else {
            return (TaskOutcome::Cancelled(Arc::default()), Vec::new());
        };
        if rec.state == TaskState::Created {
            // Its only polls skipped the kernel (A1; an unpolled task is
            // always cancel-requested before it completes).
            rec.transition(t, TaskState::Running);
        }
        // Exact stamps for what this completion may report or cancel: a
        // forced drop, leaked obligations, a panic that fails the region.
        let reports =
            rec.force_drop.is_some() || !leaked.is_empty() || matches!(end, TaskEnd::Panicked(_));
        let now = if reports { self.exact_now(now) } else { now };
        let rec = self.task(t).expect("looked up above");
        let region = rec.region;
        let kind = rec.kind;
        let mut outcome = match &end {
            TaskEnd::Panicked(p) => TaskOutcome::Panicked(p.clone()),
            TaskEnd::Dropped => TaskOutcome::Cancelled(rec.cancel.clone().unwrap_or_default()),
            TaskEnd::Returned if rec.state == TaskState::Cancelling => {
                TaskOutcome::Cancelled(rec.cancel.clone().unwrap_or_default())
            }
            TaskEnd::Returned => TaskOutcome::Ok,
        };
        if let (TaskEnd::Dropped, Some(cause)) = (&end, rec.force_drop) {
            let reason = rec.cancel.as_deref().cloned().unwrap_or_default();
            self.stats.forced_drop_count += 1;
            self.emit(TraceKind::ForceDrop { task: t, cause });
            if self.stats.forced_drops.len() < KernelStats::MAX_REPORTS {
                self.stats.forced_drops.push(ForcedDrop {
                    task: t,
                    region,
                    cause,
                    reason,
                    at: now,
                });
            }
        }
        let rec = self.task_mut(t).expect("looked up above");
        let was_cancelled = rec.state.is_cancel_requested();
        rec.transition(t, TaskState::Finalizing);
        if was_cancelled {
            self.gauge_sub();
        }
        let rec = self.task_mut(t).expect("looked up above");
        let deadline_timer = rec.deadline_timer.take();
        let in_grace_queue = std::mem::take(&mut rec.in_grace_queue);
        if let Some(key) = deadline_timer {
            self.timers.cancel(key);
        }
        if in_grace_queue {
            self.left_grace_queue();
        }
        let leaks = if leaked.is_empty() {
            Vec::new()
        } else {
            self.settle_obligations(leaked, now)
        };
        // K5: a leak fails the task also when it was cancelled (a panic
        // outcome is kept as it is).
        if !leaks.is_empty()
            && self.config.leak_policy == LeakPolicy::Panic
            && !matches!(outcome, TaskOutcome::Panicked(_))
        {
            let msg = leaks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            outcome = TaskOutcome::Panicked(PanicPayload::new(msg));
        }
        if kind != TaskKind::Finalizer {
            self.unlink_task(region, t);
        }
        let rec = self.task_mut(t).expect("looked up above");
        rec.transition(t, TaskState::Completed);
        self.tasks.remove(&t);
        let completion = match &outcome {
            TaskOutcome::Ok => CompletionKind::Ok,
            TaskOutcome::Cancelled(r) => CompletionKind::Cancelled(r.kind),
            TaskOutcome::Panicked(_) => CompletionKind::Panicked,
        };
        self.emit(TraceKind::Complete {
            task: t,
            outcome: completion,
        });

        match kind {
            TaskKind::RootBody => {
                let body_end = match &outcome {
                    TaskOutcome::Ok => BodyEnd::Ok,
                    TaskOutcome::Cancelled(_) => BodyEnd::Err,
                    TaskOutcome::Panicked(p) => BodyEnd::Panicked(p.clone()),
                };
                self.region_body_done(region, body_end, now);
            }
            TaskKind::Finalizer => {
                if let Some(r) = self.region_mut(region) {
                    r.finalizer_task = None;
                    r.finalizers_running = false;
                }
            }
            TaskKind::Spawned => {
                if let TaskOutcome::Panicked(p) = &outcome {
                    if handle_alive {
                        if let Some(r) = self.region_mut(region) {
                            r.pending_panics.push((t, p.clone()));
                        }
                    } else {
                        self.escalate_panic(region, t, p.clone(), now);
                    }
                }
            }
        }
        self.advance_region(region, now);
        (outcome, leaks)
    }

    /// A child panic nobody will join: fail the region fast.
    pub(super) fn escalate_panic(
        &mut self,
        r: RegionId,
        t: TaskId,
        payload: PanicPayload,
        now: Time,
    ) {
        let Some(rec) = self.region_mut(r) else {
            return;
        };
        if rec.state == RegionState::Closed {
            return;
        }
        let msg = format!("task {t} panicked: {}", payload.message());
        rec.report.panic.get_or_insert(payload);
        let reason = CancelReason::fail_fast()
            .with_message(msg)
            .with_origin(Some(r), Some(t));
        self.cancel_region(r, reason, now);
    }

    /// A handle joined task `t` and received its panic: it is handled.
    pub(crate) fn panic_joined(&mut self, r: RegionId, t: TaskId) {
        if let Some(rec) = self.region_mut(r) {
            rec.pending_panics.retain(|(x, _)| *x != t);
        }
    }

    /// The handle of panicked task `t` was dropped without joining it.
    pub(crate) fn panic_handle_dropped(&mut self, r: RegionId, t: TaskId, now: Time) {
        let Some(rec) = self.region_mut(r) else {
            return;
        };
        let Some(pos) = rec.pending_panics.iter().position(|(x, _)| *x == t) else {
            return;
        };
        let (_, payload) = rec.pending_panics.remove(pos);
        self.escalate_panic(r, t, payload, now);
    }

    /// Completed task `t`'s unread value panicked when dropped (rule J4 in
    /// `exec::join`): fail its region like an unjoined panic. Returns
    /// false if the region has closed already (nothing to fail).
    pub(crate) fn late_task_panic(
        &mut self,
        r: RegionId,
        t: TaskId,
        payload: PanicPayload,
        now: Time,
    ) -> bool {
        self.ensure_region_id(r); // LR1: a light task's region may be light
        let open = self
            .region(r)
            .is_some_and(|rec| rec.state != RegionState::Closed);
        if open {
            self.escalate_panic(r, t, payload, now);
        }
        open
    }

    /// Rule A1: make task `t`'s next poll go through `before_poll`.
    pub(super) fn raise_attention(&self, t: TaskId) {
        if let Some(a) = self.task(t).and_then(|rec| rec.attention.as_ref()) {
            a.request_attention();
        }
    }
}
