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

use crate::exec::cx::Cx;
use crate::kernel::SpawnError;
use crate::types::ObligationId;

pub use crate::kernel::{LeakPolicy, LeakReport, ObligationState};

/// A reserved effect that must be committed or aborted.
#[must_use = "dropping an Obligation aborts it; call commit() to make the effect happen"]
pub struct Obligation {
    cx: Cx,
    id: ObligationId,
    kind: &'static str,
    resolved: bool,
}

impl Cx {
    /// Reserves an obligation of `kind` (a short name such as
    /// `"send_permit"`), held by this task in this region.
    ///
    /// Errors: the region is already closed.
    pub fn reserve_obligation(&self, kind: &'static str) -> Result<Obligation, SpawnError> {
        self.reserve(kind, false)
    }

    /// Reserves an *owned* obligation of `kind`: one that backs a permit
    /// which may move to any task (`Semaphore::acquire_owned`,
    /// `Sender::reserve_owned`). It is held by this `Cx`'s region, not by
    /// the task: no task's completion reports it, the region's close does
    /// if it is still pending (see the module docs).
    pub(crate) fn reserve_owned_obligation(
        &self,
        kind: &'static str,
    ) -> Result<Obligation, SpawnError> {
        self.reserve(kind, true)
    }

    fn reserve(&self, kind: &'static str, owned: bool) -> Result<Obligation, SpawnError> {
        let (task, region) = (self.task_id(), self.region_id());
        let id = self
            .core()
            .with_kernel_recent(|k, now| k.reserve_obligation(task, region, kind, owned, now))?;
        Ok(Obligation {
            cx: self.clone(),
            id,
            kind,
            resolved: false,
        })
    }

    /// The ledger state of obligation `id` (`None` once it is resolved).
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
    /// `ObligationTransfer`.
    ///
    /// Errors: the receiving region is closed, or the obligation is no
    /// longer pending (it was already reported as leaked).
    pub fn transfer(&mut self, cx: &Cx) -> Result<(), TransferError> {
        let (id, task, region) = (self.id, cx.task_id(), cx.region_id());
        let moved = self
            .cx
            .core()
            .with_kernel_recent(|k, _| k.transfer_obligation(id, task, region));
        if moved {
            self.cx = cx.clone();
            Ok(())
        } else {
            Err(TransferError { obligation: id })
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

    fn resolve(&mut self, state: ObligationState) {
        assert!(
            !self.resolved,
            "obligation {} resolved twice (rule: an obligation is committed or aborted exactly once)",
            self.id
        );
        self.resolved = true;
        let id = self.id;
        self.cx.core().lock().resolve_obligation(id, state);
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
