//! The obligation ledger: the kernel's side of the home words (rules
//! OB1–OB8 in `obligation.rs`): sweeping a task's home when it completes
//! and a region's when it closes, region homes, diagnostics, and the lab's
//! full ledger (records and trace events, rule OB8).
//!
//! Invariants upheld here (numbered as in `docs/ARCHITECTURE.md`):
//! - K5 (obligations): a region never closes with a pending obligation
//!   (leftovers are leaks). A task's unresolved obligations are leaks when
//!   it completes, whatever its outcome: its future, and every permit in
//!   it, is dropped first (a dropped permit aborts itself), so what is left
//!   was forgotten or escaped; under `LeakPolicy::Panic` the task's outcome
//!   becomes `Panicked` (a cancelled one's too). Owned obligations (owned
//!   permits, which move between tasks) are homed in their region from the
//!   start: no task's completion counts them, the region's close reports
//!   one still pending. Transfers and owned reservations are traced
//!   (`ObligationTransfer`). See `obligation.rs` for the numbered rules.
//!
//! Reserving, resolving and transferring never come here in production:
//! they are steps on home words (OB2, OB3, OB5). Only the sweeps (OB4),
//! which run inside `complete_task` and region close anyway, the first
//! owned reservation of a region (which creates its home) and the lab's
//! ledger (OB8) take the kernel lock.

pub(super) use super::obligation::Held;
use super::obligation::StandaloneHome;
use super::*;

impl Kernel {
    /// The per-runtime obligation counters (ids, committed/aborted totals).
    pub(crate) fn obligation_counters(&self) -> Arc<ObligationCounters> {
        self.obligation_counters.clone()
    }

    /// Gives task `t` (the root body; a spawned task's home is in its cell)
    /// its home word (OB4: swept by its completion).
    pub(crate) fn set_obligation_home(&mut self, t: TaskId, home: Arc<dyn HomeHost>) {
        if let Some(rec) = self.task_mut(t) {
            rec.obligation_home = Some(home);
        }
    }

    /// Region `r`'s home word (rule 5: owned obligations and those of its
    /// body's `Cx`), created on first use. Errors if `r` is closed.
    pub(crate) fn region_obligation_home(
        &mut self,
        r: RegionId,
    ) -> Result<Arc<dyn HomeHost>, SpawnError> {
        let region = self.region(r).ok_or(SpawnError::RegionClosed(r))?;
        if region.state == RegionState::Closed {
            return Err(SpawnError::RegionClosed(r));
        }
        let counters = self.obligation_counters.clone();
        let home = self
            .region_homes
            .entry(r)
            .or_insert_with(|| Arc::new(StandaloneHome::new(counters)));
        Ok(home.clone() as Arc<dyn HomeHost>)
    }

    /// Pending obligations of task `t`'s home (0 if it has none).
    pub(crate) fn task_pending_obligations(&self, t: TaskId) -> usize {
        self.task(t)
            .and_then(TaskRecord::obligation_home)
            .map_or(0, ObligationHome::pending)
    }

    /// Every live registered task's and region's home (in no particular
    /// order: only sums and "any" are taken over them).
    fn live_homes(&self) -> impl Iterator<Item = &ObligationHome> {
        self.tasks
            .values()
            .filter_map(|rec| rec.obligation_home())
            .chain(self.region_homes.values().map(|h| h.obligation_home()))
    }

    /// Pending obligations in the whole runtime (diagnostics: visits every
    /// live task's home).
    pub(crate) fn pending_obligation_count(&self) -> usize {
        let mut light = 0;
        self.for_each_set(|set| light += set.map_homes(|h| h.pending()).into_iter().sum::<usize>());
        self.live_homes()
            .map(ObligationHome::pending)
            .sum::<usize>()
            + light
    }

    /// `Reserved` while `o` is pending, `None` once it is resolved or
    /// leaked. Diagnostics: visits the homes of every live task and region
    /// (the lock-free paths keep no id index).
    pub(crate) fn obligation_state(&self, o: ObligationId) -> Option<ObligationState> {
        let in_light = || {
            let mut found = false;
            self.for_each_set(|set| found |= set.map_homes(|h| h.holds(o)).contains(&true));
            found
        };
        (self.live_homes().any(|h| h.holds(o)) || in_light()).then_some(ObligationState::Reserved)
    }

    // ----- the lab's ledger (OB8) -----------------------------------------

    /// Records a reservation that succeeded on its home word (tracing
    /// only). An owned one (rule 5) is traced as handed to its region.
    pub(crate) fn trace_obligation_reserve(
        &mut self,
        o: ObligationId,
        t: TaskId,
        r: RegionId,
        owned: bool,
    ) {
        self.obligations.insert(
            o,
            ObligationRecord {
                holder: t,
                region: r,
                owned,
            },
        );
        self.emit(TraceKind::ObligationReserve {
            obligation: o,
            task: t,
            region: r,
        });
        if owned {
            // Traced as handed to the region at once (the oracles follow
            // holders through transfers).
            self.emit(TraceKind::ObligationTransfer {
                obligation: o,
                from: Some(t),
                to: None,
                from_region: r,
                region: r,
            });
        }
    }

    /// Records a resolve that succeeded on its home word (tracing only).
    pub(crate) fn trace_obligation_resolve(&mut self, o: ObligationId, state: ObligationState) {
        self.obligations.remove(&o);
        match state {
            ObligationState::Committed => self.emit(TraceKind::ObligationCommit { obligation: o }),
            _ => self.emit(TraceKind::ObligationAbort { obligation: o }),
        }
    }

    /// Records a transfer to task `t` in region `r` that succeeded on both
    /// words (rule 4, OB5; tracing only).
    pub(crate) fn trace_obligation_transfer(&mut self, o: ObligationId, t: TaskId, r: RegionId) {
        let Some(rec) = self.obligations.get_mut(&o) else {
            return;
        };
        let (old_task, old_region, was_owned) = (rec.holder, rec.region, rec.owned);
        rec.holder = t;
        rec.region = r;
        rec.owned = false;
        self.emit(TraceKind::ObligationTransfer {
            obligation: o,
            from: (!was_owned).then_some(old_task),
            to: Some(t),
            from_region: old_region,
            region: r,
        });
    }

    /// Obligations task `t` holds in the lab's ledger (rule 4: not owned
    /// ones), for the oracles' view of live tasks.
    pub(crate) fn ledger_held_by(&self, t: TaskId) -> usize {
        self.obligations
            .values()
            .filter(|rec| rec.holder == t && !rec.owned)
            .count()
    }

    // ----- sweeps (OB4) ---------------------------------------------------

    /// K5: reports what the sweep of a task's home at its completion
    /// (OB4, `ObligationHome::close` in `complete_task`) found still
    /// pending: leaked, whatever the task's outcome. Its future (and
    /// every permit it still owned) was dropped before it completed, and
    /// dropping a permit resolves it; so whatever is still pending here was
    /// forgotten or escaped the task (stashed, returned), also when the
    /// task was cancelled. Owned obligations are not here: their region
    /// holds them.
    pub(super) fn settle_obligations(&mut self, leaked: Vec<Held>, now: Time) -> Vec<LeakReport> {
        leaked
            .into_iter()
            .map(|held| self.leak_obligation(held, now))
            .collect()
    }

    fn leak_obligation(&mut self, held: Held, now: Time) -> LeakReport {
        let now = self.exact_now(now);
        let o = held.id;
        // The ledger's holder is the one the oracles follow (the reserver
        // for an owned obligation).
        let task = self.obligations.remove(&o).map_or(held.task, |r| r.holder);
        let report = LeakReport {
            obligation: o,
            kind: held.kind,
            holder: held.task,
            region: held.region,
            reserved_at: held.reserved_at,
            detected_at: now,
        };
        self.stats.obligations_leaked += 1;
        self.emit(TraceKind::ObligationLeak {
            obligation: o,
            task,
        });
        if self.stats.leaks.len() < KernelStats::MAX_REPORTS {
            self.stats.leaks.push(report.clone());
        }
        tracing::error!(target: "asupersync::obligation", "{report}");
        report
    }

    /// K5 at close: sweeps region `r`'s home (OB4); anything still pending
    /// there is a leak (under the panic policy the region's outcome
    /// becomes a panic naming it).
    pub(super) fn leak_region_obligations(&mut self, r: RegionId, now: Time) {
        let Some(home) = self.region_homes.remove(&r) else {
            return;
        };
        let leaked = home.obligation_home().close();
        let messages: Vec<String> = leaked
            .into_iter()
            .map(|held| self.leak_obligation(held, now).to_string())
            .collect();
        if self.config.leak_policy == LeakPolicy::Panic
            && !messages.is_empty()
            && let Some(rec) = self.region_mut(r)
        {
            rec.report
                .panic
                .get_or_insert(PanicPayload::new(messages.join("; ")));
        }
    }
}
