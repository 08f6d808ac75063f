//! Two-phase effects: reserve, then commit or abort.
//!
//! An [`Obligation`] is a reservation recorded in the kernel's ledger. It
//! must end in exactly one of `commit` or `abort`; dropping it aborts. A
//! reservation that is never resolved (for example `mem::forget` of a
//! permit, or a task that returns while holding one) is an *obligation
//! leak*: by default the holder's outcome becomes a panic whose message
//! contains "obligation leak" (see `RuntimeBuilder::obligation_leak_policy`).
//! A cancelled task's obligations are aborted, not leaked.

use std::fmt;

use crate::cx::Cx;
use crate::kernel::{ObligationState, SpawnError};
use crate::types::ObligationId;

pub use crate::kernel::{LeakPolicy, LeakReport};

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
        let (task, region) = (self.task_id(), self.region_id());
        let id = self
            .core()
            .with_kernel(|k, now| k.reserve_obligation(task, region, kind, now))?;
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

impl fmt::Debug for Obligation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Obligation")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish()
    }
}
