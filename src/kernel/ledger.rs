//! The obligation ledger: reserve, resolve, transfer, and settling
//! leftovers as leaks (the record and its numbered rules are in
//! `obligation.rs`).
//!
//! Invariants upheld here (numbered as in `docs/ARCHITECTURE.md`):
//! - K5 (obligations): a region never closes with a pending obligation
//!   (leftovers are leaks). A task's unresolved obligations are leaks when
//!   it completes, whatever its outcome: its future, and every permit in
//!   it, is dropped first (a dropped permit aborts itself), so what is left
//!   was forgotten or escaped; under `LeakPolicy::Panic` the task's outcome
//!   becomes `Panicked` (a cancelled one's too). Owned obligations (owned
//!   permits, which move between tasks) are held by their region from the
//!   start: no task's completion counts them, the region's close reports
//!   one still pending. Transfers and owned reservations are traced
//!   (`ObligationTransfer`). See `obligation.rs` for the numbered rules.

use super::*;

impl Kernel {
    /// Reserves an obligation by task `t` in region `r`. A task-held one
    /// (`owned == false`) is `t`'s until it is resolved or transferred; an
    /// owned one (rule 5 of `obligation.rs`: an owned permit, which may move
    /// to any task) is held by region `r` from the start, so no task's
    /// completion counts it, and `r`'s close reports it if still pending.
    pub(crate) fn reserve_obligation(
        &mut self,
        t: TaskId,
        r: RegionId,
        kind: &'static str,
        owned: bool,
        now: Time,
    ) -> Result<ObligationId, SpawnError> {
        let region = self.region(r).ok_or(SpawnError::RegionClosed(r))?;
        if region.state == RegionState::Closed {
            return Err(SpawnError::RegionClosed(r));
        }
        let (i, g) = self.obligations.insert(ObligationRecord {
            kind,
            holder: t,
            region: r,
            reserved_at: now,
            owned,
        });
        let o = ObligationId::from_parts(i, g);
        self.region_mut(r)
            .expect("checked above")
            .pending_obligations += 1;
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
        } else if let Some(rec) = self.registered(t, r) {
            // LT1: a light task that holds an obligation is registered, so
            // its completion settles it.
            rec.obligations.push(o);
        }
        Ok(o)
    }

    /// Resolves obligation `o` as committed or aborted. Returns false if it
    /// was no longer pending (already reported as leaked).
    pub(crate) fn resolve_obligation(&mut self, o: ObligationId, state: ObligationState) -> bool {
        debug_assert!(matches!(
            state,
            ObligationState::Committed | ObligationState::Aborted
        ));
        let Some(rec) = self.obligations.remove(o.index(), o.generation()) else {
            return false;
        };
        if let Some(t) = self.task_mut(rec.holder) {
            t.obligations.retain(|&x| x != o);
        }
        if let Some(r) = self.region_mut(rec.region) {
            r.pending_obligations -= 1;
        }
        match state {
            ObligationState::Committed => {
                self.stats.obligations_committed += 1;
                self.emit(TraceKind::ObligationCommit { obligation: o });
            }
            _ => {
                self.stats.obligations_aborted += 1;
                self.emit(TraceKind::ObligationAbort { obligation: o });
            }
        }
        true
    }

    /// Hands obligation `o` to task `t` in region `r` (rule 4 of
    /// `obligation.rs`): from now on `t`, not the reserver, must resolve it.
    /// Returns false if `o` is no longer pending or `t`/`r` are gone.
    pub(crate) fn transfer_obligation(&mut self, o: ObligationId, t: TaskId, r: RegionId) -> bool {
        if self.registered(t, r).is_none()
            || self
                .region(r)
                .is_none_or(|rec| rec.state == RegionState::Closed)
        {
            return false;
        }
        let Some(rec) = self.obligations.get_mut(o.index(), o.generation()) else {
            return false;
        };
        let (old_task, old_region, was_owned) = (rec.holder, rec.region, rec.owned);
        rec.holder = t;
        rec.region = r;
        rec.owned = false;
        // A region-held (owned) obligation is in no task's list.
        let from = if was_owned {
            None
        } else {
            self.task_mut(old_task).map(|old| {
                old.obligations.retain(|&x| x != o);
                old_task
            })
        };
        if let Some(old) = self.region_mut(old_region) {
            old.pending_obligations -= 1;
        }
        self.task_mut(t).expect("checked above").obligations.push(o);
        self.region_mut(r)
            .expect("checked above")
            .pending_obligations += 1;
        self.emit(TraceKind::ObligationTransfer {
            obligation: o,
            from,
            to: Some(t),
            from_region: old_region,
            region: r,
        });
        true
    }

    pub(crate) fn obligation_state(&self, o: ObligationId) -> Option<ObligationState> {
        self.obligations
            .get(o.index(), o.generation())
            .map(|_| ObligationState::Reserved)
    }

    /// K5: a finished task's leftovers are leaks, whatever its outcome. Its
    /// future (and every permit it still owned) was dropped before it
    /// completed, and dropping a permit resolves it; so whatever is still
    /// pending here was forgotten or escaped the task (stashed, returned),
    /// also when the task was cancelled. Owned obligations are not in the
    /// list: their region holds them.
    pub(super) fn settle_obligations(
        &mut self,
        held: Vec<ObligationId>,
        now: Time,
    ) -> Vec<LeakReport> {
        held.into_iter()
            .filter_map(|o| self.leak_obligation(o, now))
            .collect()
    }

    pub(super) fn leak_obligation(&mut self, o: ObligationId, now: Time) -> Option<LeakReport> {
        let rec = self.obligations.remove(o.index(), o.generation())?;
        let now = self.exact_now(now);
        if let Some(r) = self.region_mut(rec.region) {
            r.pending_obligations -= 1;
        }
        if let Some(t) = self.task_mut(rec.holder) {
            t.obligations.retain(|&x| x != o);
        }
        let report = LeakReport {
            obligation: o,
            kind: rec.kind,
            holder: rec.holder,
            region: rec.region,
            reserved_at: rec.reserved_at,
            detected_at: now,
        };
        self.stats.obligations_leaked += 1;
        self.emit(TraceKind::ObligationLeak {
            obligation: o,
            task: rec.holder,
        });
        if self.stats.leaks.len() < KernelStats::MAX_REPORTS {
            self.stats.leaks.push(report.clone());
        }
        tracing::error!(target: "asupersync::obligation", "{report}");
        Some(report)
    }

    /// K5 at close: anything still pending in `r` is a leak.
    pub(super) fn leak_region_obligations(&mut self, r: RegionId, now: Time) {
        if self
            .region(r)
            .is_none_or(|rec| rec.pending_obligations == 0)
        {
            return;
        }
        let ids: Vec<ObligationId> = self
            .obligations
            .iter()
            .filter(|(_, rec)| rec.region == r)
            .map(|((i, g), _)| ObligationId::from_parts(i, g))
            .collect();
        let mut messages = Vec::new();
        for o in ids {
            if let Some(report) = self.leak_obligation(o, now) {
                messages.push(report.to_string());
            }
        }
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
