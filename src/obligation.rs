//! Two-phase effects: reserve, then commit or abort.
//!
//! An [`Obligation`] is a reservation recorded in the kernel's ledger. It
//! must end in exactly one of `commit` or `abort`; dropping it aborts. A
//! reservation that is never resolved (for example `mem::forget` of a
//! permit, or a task that returns while holding one) is an *obligation
//! leak*: by default the holder's outcome becomes a panic whose message
//! contains "obligation leak" (see `RuntimeBuilder::obligation_leak_policy`);
//! the runtime's stats and the lab's `obligation_leaks` oracle record it.
//!
//! Who reports a leak (rule K5, `docs/ARCHITECTURE.md`):
//! - An obligation reserved with [`Cx::reserve_obligation`] (and the
//!   permits built on it: `SemaphorePermit`, mpsc `SendPermit`, ...)
//!   belongs to the reserving task, or to the task it was handed to with
//!   [`Obligation::transfer`]. One still pending when that task completes
//!   is reported by its completion, *whatever the outcome*: a cancelled or
//!   force-dropped task has had its future, and every permit in it,
//!   dropped (which aborts them), so a pending one was forgotten or escaped
//!   — it is reported as a leak, never counted as aborted (a permit that is
//!   neither given back nor reported would vanish silently). Under the
//!   panic policy a cancelled task that leaked joins `Panicked`.
//! - An *owned* permit (`Semaphore::acquire_owned`, `Sender::reserve_owned`)
//!   follows its holder: it may move into any task, so its obligation is
//!   held by the region of the `Cx` it was taken with, not by a task. The
//!   acquiring task may finish first; a permit still pending when that
//!   region closes (forgotten, or moved out of the region) is reported by
//!   the region's close (under the panic policy the region's outcome is
//!   `Panicked`).
//! - Any obligation still pending when its region closes is a leak of that
//!   region.
//!
//! Transfers and owned reservations appear in the lab's trace as
//! `TraceKind::ObligationTransfer`; the oracles follow them.

use std::fmt;
use std::sync::{Arc, Weak};

use crate::exec::core::Core;
use crate::exec::cx::Cx;
use crate::kernel::obligation::Held;
use crate::kernel::{HomeHost, SpawnError};
use crate::types::{ObligationId, RegionId, TaskId, Time};

pub use crate::kernel::{LeakPolicy, LeakReport, ObligationState};

/// A home as a permit keeps it (weak) and as the caller uses it now.
type HomePair = (Weak<dyn HomeHost>, Arc<dyn HomeHost>);

/// A reserved effect that must be committed or aborted.
///
/// It is counted in its holder's home word (rules OB1–OB8 in
/// `kernel::obligation`): reserving, committing, aborting and transferring
/// take no runtime-wide lock.
#[must_use = "dropping an Obligation aborts it; call commit() to make the effect happen"]
pub struct Obligation {
    /// Where it is counted; a home that is gone was swept (OB4).
    home: Weak<dyn HomeHost>,
    id: ObligationId,
    kind: &'static str,
    reserved_at: Time,
    /// The lab's ledger (rule OB8): the core, when it traces.
    traced: Option<Arc<Core>>,
    resolved: bool,
}

impl Cx {
    /// Reserves an obligation of `kind` (a short name such as
    /// `"send_permit"`), held by this task in this region (by the region
    /// itself for a region body's `Cx`, see the module docs).
    ///
    /// Errors: the region is already closed (or this `Cx`'s task has
    /// completed).
    pub fn reserve_obligation(&self, kind: &'static str) -> Result<Obligation, SpawnError> {
        self.reserve(kind, false)
    }

    /// Reserves an *owned* obligation of `kind`: one that backs a permit
    /// which may move to any task (`Semaphore::acquire_owned`,
    /// `Sender::reserve_owned`). It is held by this `Cx`'s region, not by
    /// the task: no task's completion reports it, the region's close does
    /// if it is still pending (see the module docs). Finding the region's
    /// home takes the kernel lock once; resolving it does not.
    pub(crate) fn reserve_owned_obligation(
        &self,
        kind: &'static str,
    ) -> Result<Obligation, SpawnError> {
        self.reserve(kind, true)
    }

    /// The home obligations reserved here are counted in: the task's
    /// (`owned == false` and a task's `Cx`) or the region's (rule 5).
    fn home_for(&self, owned: bool) -> Result<HomePair, SpawnError> {
        let region = self.region_id();
        match self.obligation_home() {
            Some(weak) if !owned => {
                let home = weak.upgrade().ok_or(SpawnError::RegionClosed(region))?;
                Ok((weak.clone(), home))
            }
            _ => {
                let home = self
                    .core()
                    .with_kernel_recent(|k, _| k.region_obligation_home(region))?;
                Ok((Arc::downgrade(&home), home))
            }
        }
    }

    fn reserve(&self, kind: &'static str, owned: bool) -> Result<Obligation, SpawnError> {
        let (task, region) = (self.task_id(), self.region_id());
        let (weak, home) = self.home_for(owned)?;
        let core = self.core();
        let reserved_at = core.recent_now();
        // OB2: refused once the home is closed (its task completed, its
        // region closed).
        let id = home
            .obligation_home()
            .reserve(
                &home.obligation_counters().next_id,
                kind,
                task,
                region,
                reserved_at,
            )
            .ok_or(SpawnError::RegionClosed(region))?;
        let traced = core.is_tracing().then(|| core.clone());
        if let Some(core) = &traced {
            core.with_kernel_recent(|k, _| k.trace_obligation_reserve(id, task, region, owned));
        }
        Ok(Obligation {
            home: weak,
            id,
            kind,
            reserved_at,
            traced,
            resolved: false,
        })
    }

    /// The state of obligation `id`: `Reserved` while it is pending,
    /// `None` once it is resolved (or leaked).
    ///
    /// Diagnostics, not a hot path: reserving and resolving keep no
    /// runtime-wide index of ids (rules OB1–OB8), so this takes the kernel
    /// lock and looks through the home of every live task and region
    /// (linear in their number and in their pending obligations).
    pub fn obligation_state(&self, id: ObligationId) -> Option<ObligationState> {
        self.core().lock().obligation_state(id)
    }
}

impl Obligation {
    /// The obligation's id.
    pub fn id(&self) -> ObligationId {
        self.id
    }

    /// The kind given at reservation.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Hands this obligation to the task and region of `cx` (call it from
    /// the receiving task after moving the obligation there). From then on
    /// that task must resolve it; the reserver's completion no longer counts
    /// it as a leak, and the reserving region may close before it is
    /// resolved (the receiving region holds it). Traced as an
    /// `ObligationTransfer`. Rule OB5: counted by the receiver first, then
    /// no longer by the giver, so a racing sweep of the giver either leaks
    /// it (the transfer then fails) or no longer sees it.
    ///
    /// Errors: the receiving region is closed, or the obligation is no
    /// longer pending (it was already reported as leaked).
    pub fn transfer(&mut self, cx: &Cx) -> Result<(), TransferError> {
        let err = TransferError {
            obligation: self.id,
        };
        if self.resolved {
            return Err(err);
        }
        let (task, region): (TaskId, RegionId) = (cx.task_id(), cx.region_id());
        let Ok((weak, target)) = cx.home_for(false) else {
            return Err(err);
        };
        if Weak::ptr_eq(&weak, &self.home) {
            // Already counted there: only the ledger's holder changes.
            self.trace_transfer(task, region);
            return Ok(());
        }
        let Some(source) = self.home.upgrade() else {
            return Err(err); // OB4: its home was swept: leaked.
        };
        let held = Held {
            id: self.id,
            kind: self.kind,
            task,
            region,
            reserved_at: self.reserved_at,
        };
        // OB5: the target first (refused if closed) ...
        if !target.obligation_home().adopt(held) {
            return Err(err);
        }
        // ... then the source; closed meanwhile = leaked by its sweep.
        if source.obligation_home().release(self.id).is_none() {
            let undone = target.obligation_home().release(self.id);
            debug_assert!(undone.is_some(), "rule OB5: the receiver is alive");
            return Err(err);
        }
        self.home = weak;
        self.trace_transfer(task, region);
        Ok(())
    }

    fn trace_transfer(&self, task: TaskId, region: RegionId) {
        if let Some(core) = &self.traced {
            let id = self.id;
            core.with_kernel_recent(|k, _| k.trace_obligation_transfer(id, task, region));
        }
    }

    /// Records that the effect happened.
    pub fn commit(mut self) {
        self.resolve(ObligationState::Committed);
    }

    /// Releases the reservation without effect.
    pub fn abort(mut self) {
        self.resolve(ObligationState::Aborted);
    }

    /// OB3: decrements its home word unless the home was swept (then it
    /// was leaked and nothing is counted). Returns whether it resolved.
    fn resolve(&mut self, state: ObligationState) -> bool {
        assert!(
            !self.resolved,
            "obligation {} resolved twice (rule: an obligation is committed or aborted exactly once)",
            self.id
        );
        self.resolved = true;
        let id = self.id;
        let Some(home) = self.home.upgrade() else {
            return false;
        };
        if home.obligation_home().release(id).is_none() {
            return false;
        }
        home.obligation_counters().count(id, state);
        if let Some(core) = &self.traced {
            core.with_kernel_recent(|k, _| k.trace_obligation_resolve(id, state));
        }
        true
    }
}

impl Drop for Obligation {
    fn drop(&mut self) {
        if !self.resolved {
            self.resolve(ObligationState::Aborted);
        }
    }
}

/// An obligation could not be transferred (see [`Obligation::transfer`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferError {
    obligation: ObligationId,
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot transfer obligation {}: it is no longer pending or the receiving region is closed",
            self.obligation
        )
    }
}

impl std::error::Error for TransferError {}

impl fmt::Debug for Obligation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Obligation")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish()
    }
}
