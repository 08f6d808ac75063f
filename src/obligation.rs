//! Two-phase effects: reserve, then commit or abort.
//!
//! An [`Obligation`] is a reservation counted in its holder's home word
//! (rules OB1–OB9 in `kernel::obligation`: no runtime-wide lock). It
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

use crate::exec::context;
use crate::exec::core::Core;
use crate::exec::cx::Cx;
use crate::kernel::obligation::Held;
use crate::kernel::{HomeHost, ObligationHome, SpawnError};
use crate::types::{ObligationId, RegionId, TaskId, Time};

pub use crate::kernel::{LeakPolicy, LeakReport, ObligationState};

/// A reserved effect that must be committed or aborted.
///
/// It is counted in its holder's home word (rules OB1–OB9 in
/// `kernel::obligation`): reserving, committing, aborting and transferring
/// take no runtime-wide lock.
#[must_use = "dropping an Obligation aborts it; call commit() to make the effect happen"]
pub struct Obligation {
    /// Where it is counted; a home that is gone was swept (OB4). Used
    /// only when it is resolved off its home task's polls (OB9).
    home: Weak<dyn HomeHost>,
    id: ObligationId,
    kind: &'static str,
    reserved_at: Time,
    /// The lab's ledger (rule OB8): the core, when it traces.
    traced: Option<Arc<Core>>,
    resolved: bool,
}

/// Runs `f` on the home at `weak`: the polled task's own (OB9, no
/// reference count touched) or, off its polls, through the `Weak`.
fn with_home<R>(weak: &Weak<dyn HomeHost>, f: impl FnOnce(&dyn HomeHost) -> R) -> Option<R> {
    let mut f = Some(f);
    let mut call = |h: &dyn HomeHost| f.take().map(|f| f(h));
    let addr = Weak::as_ptr(weak).cast::<()>();
    match context::with_home_at(addr, &mut call) {
        Some(r) => r,
        None => weak.upgrade().and_then(|h| call(&*h)),
    }
}

impl Cx {
    /// Reserves an obligation of `kind` (a short name such as
    /// `"send_permit"`), held by this task in this region (by the region
    /// itself for a region body's `Cx`, or when used outside its task's
    /// polls; see the module docs).
    ///
    /// Errors: the region is already closed.
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

    /// Reserves in the home obligations taken here belong to (OB9): the
    /// task's own while it is polled with its own region's `Cx`, else the
    /// region's (rule 5). Returns the id, the home for the permit and
    /// when.
    fn reserve_in_home(
        &self,
        owned: bool,
        mut reserve: impl FnMut(&ObligationHome, &dyn HomeHost) -> Option<ObligationId>,
    ) -> Result<(ObligationId, Weak<dyn HomeHost>), SpawnError> {
        let (task, region) = (self.task_id(), self.region_id());
        if !owned
            && let Some(found) = context::with_task_home(self.core().key(), task, |src| {
                (src.region() == region).then(|| {
                    let host = src.host();
                    reserve(host.obligation_home(), host).map(|id| (id, src.downgrade()))
                })
            })
            .flatten()
        {
            // OB2: a closed home (a completed task) refuses.
            return found.ok_or(SpawnError::RegionClosed(region));
        }
        let home = self.core().with_kernel_recent(|k, _| {
            k.ensure_region_of(self.light().map(|s| &**s)); // LR1
            k.region_obligation_home(region)
        })?;
        let id = reserve(home.obligation_home(), &*home).ok_or(SpawnError::RegionClosed(region))?;
        Ok((id, Arc::downgrade(&home)))
    }

    fn reserve(&self, kind: &'static str, owned: bool) -> Result<Obligation, SpawnError> {
        let (task, region) = (self.task_id(), self.region_id());
        let core = self.core();
        let reserved_at = core.recent_now();
        let (id, home) = self.reserve_in_home(owned, |home, host| {
            home.reserve(
                &host.obligation_counters().next_id,
                kind,
                task,
                region,
                reserved_at,
            )
        })?;
        let traced = core.is_tracing().then(|| core.clone());
        if let Some(core) = &traced {
            core.with_kernel_recent(|k, _| k.trace_obligation_reserve(id, task, region, owned));
        }
        Ok(Obligation {
            home,
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
    /// runtime-wide index of ids (rules OB1–OB9), so this takes the kernel
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
        let held = Held {
            id: self.id,
            kind: self.kind,
            task,
            region,
            reserved_at: self.reserved_at,
        };
        let source = self.home.clone();
        let source_addr = Weak::as_ptr(&source).cast::<()>();
        let mut same_home = false;
        // OB5: the target first (refused if closed) ...
        let adopted = cx.reserve_in_home(false, |home, host| {
            if std::ptr::addr_eq(host as *const dyn HomeHost, source_addr) {
                same_home = true; // already counted there
                return Some(held.id);
            }
            home.adopt(held.clone()).then_some(held.id)
        });
        let Ok((_, target)) = adopted else {
            return Err(err);
        };
        if !same_home {
            // ... then the source; closed meanwhile = leaked by its sweep.
            let released = with_home(&source, |h| h.obligation_home().release(self.id)).flatten();
            if released.is_none() {
                let undone = with_home(&target, |h| h.obligation_home().release(self.id));
                debug_assert!(
                    undone.flatten().is_some(),
                    "rule OB5: the receiver is alive"
                );
                return Err(err);
            }
            self.home = target;
        }
        if let Some(core) = &self.traced {
            let id = self.id;
            core.with_kernel_recent(|k, _| k.trace_obligation_transfer(id, task, region));
        }
        Ok(())
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
        let resolved = with_home(&self.home, |h| {
            let ok = h.obligation_home().release(id).is_some();
            if ok {
                h.obligation_counters().count(id, state);
            }
            ok
        });
        if resolved != Some(true) {
            return false;
        }
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
