//! Bidirectional links between tasks, and what an abnormal exit does to the
//! tasks on the other end.
//!
//! A link ties two tasks together: when one of them exits abnormally (an
//! error, a cancellation or a panic), the other is told, and depending on its
//! [`ExitPolicy`] for that link it is cancelled ([`ExitPolicy::Propagate`]),
//! handed an [`ExitSignal`] it can handle as data ([`ExitPolicy::Trap`]), or
//! left alone ([`ExitPolicy::Ignore`]).
//!
//! This module is pure, deterministic bookkeeping. A [`LinkSet`] records
//! links and answers queries; [`LinkSet::resolve_exits`] turns one task's
//! exit into a [`LinkExitBatch`] of [`LinkExitAction`]s, and the OTP layer
//! (wired into task completion later) carries them out. Nothing here touches
//! a scheduler, a clock or global state, so the same inputs always give the
//! same outputs, in the same order.
//!
//! # Rules
//!
//! 1. Every `establish*` call allocates a fresh [`LinkRef`] from the
//!    `LinkSet`'s own counter. Refs are unique and strictly increasing within
//!    a set and are never reused, not even after the link is removed. There
//!    is no global state: two sets allocate independently.
//! 2. The same pair of tasks may be linked many times; each link is distinct,
//!    has its own `LinkRef` and is removed independently.
//! 3. Each side of a link has its own policy. In
//!    [`establish_with_policy(a, ra, policy_a, b, rb, policy_b)`](LinkSet::establish_with_policy),
//!    `policy_a` decides what happens to `a` when `b` exits abnormally (and
//!    `policy_b` what happens to `b` when `a` does).
//!    [`establish`](LinkSet::establish) uses [`ExitPolicy::Propagate`] on
//!    both sides. Queries that report a policy for a task report the policy
//!    *of that task* (the receiving side).
//! 4. A self-link (`a == b`) is one logical link with one policy and one
//!    region, both taken from the first side (`policy_b` and `region_b` are
//!    ignored). It is listed once by [`peers_of`](LinkSet::peers_of) and
//!    [`peers_with_policy`](LinkSet::peers_with_policy), its peer is the task
//!    itself, and [`set_exit_policy`](LinkSet::set_exit_policy) changes that
//!    single policy.
//! 5. [`resolve_exits`](LinkSet::resolve_exits) of a [`DownReason::Normal`]
//!    exit yields an empty batch: normal exits are silent.
//! 6. Any other exit yields exactly one action per link of the crashed task,
//!    in `LinkRef` order, decided by the *peer's* policy on that link:
//!    - `Propagate` → [`LinkExitAction::CancelPeer`] whose reason has kind
//!      [`CancelKind::LinkedExit`], message exactly `"link exit"`, timestamp
//!      `exit_vt`, origin task = the crashed task and origin region = the
//!      crashed task's region on that link, and whose `cause` is the crashed
//!      task's own cancel reason when the exit was
//!      [`DownReason::Cancelled`] (no cause for errors and panics);
//!    - `Trap` → [`LinkExitAction::DeliverExit`] carrying
//!      `ExitSignal { from: crashed, reason: <exact clone>, link_ref }`;
//!    - `Ignore` → [`LinkExitAction::Ignored`].
//! 7. A self-link resolves like any other link whose peer is the crashed task
//!    itself: exactly one action (never two), addressed to the crashed task,
//!    chosen by the self-link's single policy. The executor must already
//!    treat actions aimed at a task that has finished as no-ops (two linked
//!    tasks can fail at the same instant), so this needs no special case and
//!    keeps "one action per link" without exceptions.
//! 8. `resolve_exits` is a query: it does not remove any link. The caller
//!    removes the finished task's links with
//!    [`remove_task`](LinkSet::remove_task) once the actions are issued.
//! 9. Removal: [`unlink`](LinkSet::unlink) removes one link;
//!    [`remove_task`](LinkSet::remove_task) removes every link with the task
//!    as an endpoint; [`cleanup_region`](LinkSet::cleanup_region) removes
//!    every link with an endpoint in the region, including links that cross
//!    into other regions. Both return the removed refs in ascending order.
//! 10. Every query result is deterministic and sorted by `LinkRef`. Links are
//!     kept in ordered maps with per-task and per-region indexes, so per-task
//!     queries and removals never scan unrelated links.
//! 11. [`LinkExitBatch::into_sorted`] orders actions by (exit time, source
//!     task, target task, link ref, kind) with kinds ordered
//!     `CancelPeer < DeliverExit < Ignored`; fully equal keys keep insertion
//!     order.
//! 12. [`ExitBatch::into_sorted`] orders signals by (failure time, source
//!     task) and is stable: signals with equal keys keep insertion order.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::monitor::DownReason;
use crate::types::{CancelKind, CancelReason, RegionId, TaskId, Time};

/// The message of every reason produced for [`ExitPolicy::Propagate`].
const LINK_EXIT_MESSAGE: &str = "link exit";

/// What happens to a linked task when its peer exits abnormally.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExitPolicy {
    /// Cancel this task with a [`CancelKind::LinkedExit`] reason (default).
    #[default]
    Propagate,
    /// Deliver the peer's exit to this task as an [`ExitSignal`].
    Trap,
    /// Do nothing.
    Ignore,
}

impl ExitPolicy {
    /// Whether this is [`ExitPolicy::Propagate`].
    pub fn is_propagate(self) -> bool {
        matches!(self, ExitPolicy::Propagate)
    }

    /// Whether this is [`ExitPolicy::Trap`].
    pub fn is_trap(self) -> bool {
        matches!(self, ExitPolicy::Trap)
    }

    /// Whether this is [`ExitPolicy::Ignore`].
    pub fn is_ignore(self) -> bool {
        matches!(self, ExitPolicy::Ignore)
    }

    /// The lowercase name: `propagate`, `trap` or `ignore`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExitPolicy::Propagate => "propagate",
            ExitPolicy::Trap => "trap",
            ExitPolicy::Ignore => "ignore",
        }
    }
}

impl fmt::Display for ExitPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one link within a [`LinkSet`].
///
/// Opaque; allocated by the set in strictly increasing order and never reused
/// (rule 1). Display `LinkRef(<id>)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkRef(u64);

impl LinkRef {
    /// The numeric id (its allocation position within its set).
    pub const fn id(self) -> u64 {
        self.0
    }

    /// Builds an arbitrary ref for tests.
    #[cfg(any(test, feature = "test-internals"))]
    pub const fn from_raw(id: u64) -> Self {
        LinkRef(id)
    }
}

impl fmt::Display for LinkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkRef({})", self.0)
    }
}

/// A peer's exit, delivered as data to a task that traps exits.
///
/// Display: `exit from <task> via <link ref>: <reason>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExitSignal {
    /// The task that exited.
    pub from: TaskId,
    /// Why it exited (exactly as reported).
    pub reason: DownReason,
    /// The link the signal travelled over.
    pub link_ref: LinkRef,
}

impl fmt::Display for ExitSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit from {} via {}: {}",
            self.from, self.link_ref, self.reason
        )
    }
}

/// What to do to one linked task because its peer exited abnormally.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LinkExitAction {
    /// Cancel `to` (its policy was [`ExitPolicy::Propagate`]).
    CancelPeer {
        /// The task to cancel.
        to: TaskId,
        /// The `LinkedExit` reason to cancel it with.
        reason: CancelReason,
        /// The link that carried the exit.
        link_ref: LinkRef,
    },
    /// Deliver an exit signal to `to` (its policy was [`ExitPolicy::Trap`]).
    DeliverExit {
        /// The task that receives the signal.
        to: TaskId,
        /// The signal.
        signal: ExitSignal,
    },
    /// Nothing happens to `to` (its policy was [`ExitPolicy::Ignore`]).
    Ignored {
        /// The task that ignores the exit.
        to: TaskId,
        /// The link that carried the exit.
        link_ref: LinkRef,
    },
}

impl LinkExitAction {
    /// The task the action is aimed at.
    pub fn to(&self) -> TaskId {
        match self {
            LinkExitAction::CancelPeer { to, .. }
            | LinkExitAction::DeliverExit { to, .. }
            | LinkExitAction::Ignored { to, .. } => *to,
        }
    }

    /// The link the exit travelled over.
    pub fn link_ref(&self) -> LinkRef {
        match self {
            LinkExitAction::CancelPeer { link_ref, .. }
            | LinkExitAction::Ignored { link_ref, .. } => *link_ref,
            LinkExitAction::DeliverExit { signal, .. } => signal.link_ref,
        }
    }

    /// Whether this is [`LinkExitAction::CancelPeer`].
    pub fn is_cancel_peer(&self) -> bool {
        matches!(self, LinkExitAction::CancelPeer { .. })
    }

    /// Whether this is [`LinkExitAction::DeliverExit`].
    pub fn is_deliver_exit(&self) -> bool {
        matches!(self, LinkExitAction::DeliverExit { .. })
    }

    /// Whether this is [`LinkExitAction::Ignored`].
    pub fn is_ignored(&self) -> bool {
        matches!(self, LinkExitAction::Ignored { .. })
    }

    /// Rank of the kind in the batch order: `CancelPeer < DeliverExit < Ignored`.
    fn kind_rank(&self) -> u8 {
        match self {
            LinkExitAction::CancelPeer { .. } => 0,
            LinkExitAction::DeliverExit { .. } => 1,
            LinkExitAction::Ignored { .. } => 2,
        }
    }
}

/// One action of a [`LinkExitBatch`] with the exit that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LinkExitEntry {
    exit_vt: Time,
    from: TaskId,
    action: LinkExitAction,
}

impl LinkExitEntry {
    fn cmp_key(&self, other: &Self) -> Ordering {
        self.exit_vt
            .cmp(&other.exit_vt)
            .then_with(|| self.from.cmp(&other.from))
            .then_with(|| self.action.to().cmp(&other.action.to()))
            .then_with(|| self.action.link_ref().cmp(&other.action.link_ref()))
            .then_with(|| self.action.kind_rank().cmp(&other.action.kind_rank()))
    }
}

/// The actions produced by one or more task exits
/// ([`LinkSet::resolve_exits`]).
///
/// Batches from several exits can be combined with [`LinkExitBatch::append`];
/// [`LinkExitBatch::into_sorted`] then gives the deterministic order in which
/// to carry them out (rule 11).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkExitBatch {
    entries: Vec<LinkExitEntry>,
}

impl LinkExitBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `action`, caused by `from` exiting at `exit_vt`.
    pub fn push(&mut self, exit_vt: Time, from: TaskId, action: LinkExitAction) {
        self.entries.push(LinkExitEntry {
            exit_vt,
            from,
            action,
        });
    }

    /// Moves every action of `other` into this batch.
    pub fn append(&mut self, other: LinkExitBatch) {
        self.entries.extend(other.entries);
    }

    /// The number of actions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no action.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The actions in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &LinkExitAction> {
        self.entries.iter().map(|e| &e.action)
    }

    /// The actions ordered by (exit time, source task, target task, link
    /// ref, kind) with `CancelPeer < DeliverExit < Ignored`; fully equal keys
    /// keep insertion order.
    pub fn into_sorted(mut self) -> Vec<LinkExitAction> {
        self.entries.sort_by(LinkExitEntry::cmp_key);
        self.entries.into_iter().map(|e| e.action).collect()
    }
}

/// Exit signals collected for delivery, e.g. to one trapping task's mailbox.
///
/// [`ExitBatch::into_sorted`] orders them by (failure time, source task) and
/// is stable for equal keys (rule 12).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitBatch {
    entries: Vec<(Time, ExitSignal)>,
}

impl ExitBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `signal` for a failure that happened at `failure_vt`.
    pub fn push(&mut self, failure_vt: Time, signal: ExitSignal) {
        self.entries.push((failure_vt, signal));
    }

    /// The number of signals.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no signal.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The signals in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &ExitSignal> {
        self.entries.iter().map(|(_, s)| s)
    }

    /// The signals ordered by (failure time, source task); signals with equal
    /// keys keep their insertion order.
    pub fn into_sorted(mut self) -> Vec<ExitSignal> {
        // `sort_by_key` is stable.
        self.entries.sort_by_key(|(at, s)| (*at, s.from));
        self.entries.into_iter().map(|(_, s)| s).collect()
    }
}

/// One stored link. For a self-link `b == a`, `region_b == region_a` and
/// `policy_b == policy_a` always hold (rule 4).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Link {
    a: TaskId,
    region_a: RegionId,
    policy_a: ExitPolicy,
    b: TaskId,
    region_b: RegionId,
    policy_b: ExitPolicy,
}

impl Link {
    fn is_self_link(&self) -> bool {
        self.a == self.b
    }

    /// The other endpoint of `task` (itself for a self-link).
    fn peer(&self, task: TaskId) -> Option<TaskId> {
        if task == self.a {
            Some(self.b)
        } else if task == self.b {
            Some(self.a)
        } else {
            None
        }
    }

    /// The policy of `task`'s side.
    fn policy_of(&self, task: TaskId) -> Option<ExitPolicy> {
        if task == self.a {
            Some(self.policy_a)
        } else if task == self.b {
            Some(self.policy_b)
        } else {
            None
        }
    }

    /// The region of `task`'s side.
    fn region_of(&self, task: TaskId) -> Option<RegionId> {
        if task == self.a {
            Some(self.region_a)
        } else if task == self.b {
            Some(self.region_b)
        } else {
            None
        }
    }
}

/// The links between tasks, with per-task and per-region indexes.
///
/// See the [module documentation](self) for the rules it upholds.
#[derive(Clone, Debug, Default)]
pub struct LinkSet {
    links: BTreeMap<LinkRef, Link>,
    by_task: BTreeMap<TaskId, BTreeSet<LinkRef>>,
    by_region: BTreeMap<RegionId, BTreeSet<LinkRef>>,
    next_id: u64,
}

fn index_insert<K: Ord>(index: &mut BTreeMap<K, BTreeSet<LinkRef>>, key: K, r: LinkRef) {
    index.entry(key).or_default().insert(r);
}

fn index_remove<K: Ord>(index: &mut BTreeMap<K, BTreeSet<LinkRef>>, key: K, r: LinkRef) {
    if let Some(set) = index.get_mut(&key) {
        set.remove(&r);
        if set.is_empty() {
            index.remove(&key);
        }
    }
}

impl LinkSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Links `a` (in `region_a`) and `b` (in `region_b`) with
    /// [`ExitPolicy::Propagate`] on both sides.
    pub fn establish(
        &mut self,
        a: TaskId,
        region_a: RegionId,
        b: TaskId,
        region_b: RegionId,
    ) -> LinkRef {
        self.establish_with_policy(
            a,
            region_a,
            ExitPolicy::Propagate,
            b,
            region_b,
            ExitPolicy::Propagate,
        )
    }

    /// Links `a` and `b`; `policy_a` decides what happens to `a` when `b`
    /// exits abnormally, `policy_b` what happens to `b` when `a` does.
    ///
    /// For a self-link (`a == b`) the first side's region and policy are
    /// used and `region_b`/`policy_b` are ignored.
    ///
    /// # Panics
    /// Panics if the set has allocated `u64::MAX` refs.
    pub fn establish_with_policy(
        &mut self,
        a: TaskId,
        region_a: RegionId,
        policy_a: ExitPolicy,
        b: TaskId,
        region_b: RegionId,
        policy_b: ExitPolicy,
    ) -> LinkRef {
        let r = LinkRef(self.next_id);
        self.next_id = self
            .next_id
            .checked_add(1)
            .expect("LinkSet exhausted its LinkRef space");
        let link = if a == b {
            Link {
                a,
                region_a,
                policy_a,
                b: a,
                region_b: region_a,
                policy_b: policy_a,
            }
        } else {
            Link {
                a,
                region_a,
                policy_a,
                b,
                region_b,
                policy_b,
            }
        };
        index_insert(&mut self.by_task, link.a, r);
        index_insert(&mut self.by_task, link.b, r);
        index_insert(&mut self.by_region, link.region_a, r);
        index_insert(&mut self.by_region, link.region_b, r);
        self.links.insert(r, link);
        r
    }

    /// Removes one link; returns whether it existed.
    pub fn unlink(&mut self, link_ref: LinkRef) -> bool {
        self.detach(link_ref).is_some()
    }

    /// Whether `link_ref` names a live link of this set.
    pub fn contains(&self, link_ref: LinkRef) -> bool {
        self.links.contains_key(&link_ref)
    }

    /// The links of `task` and the task on the other end of each, sorted by
    /// `LinkRef`. A self-link appears once, with `task` as its own peer.
    pub fn peers_of(&self, task: TaskId) -> Vec<(LinkRef, TaskId)> {
        self.links_of(task)
            .filter_map(|(r, link)| Some((r, link.peer(task)?)))
            .collect()
    }

    /// Like [`peers_of`](Self::peers_of), with the policy of `task` (the
    /// receiving side) on each link.
    pub fn peers_with_policy(&self, task: TaskId) -> Vec<(LinkRef, TaskId, ExitPolicy)> {
        self.links_of(task)
            .filter_map(|(r, link)| Some((r, link.peer(task)?, link.policy_of(task)?)))
            .collect()
    }

    /// The task on the other end of `link_ref` from `task`; `task` itself for
    /// a self-link; `None` if the ref is unknown or `task` is not an endpoint.
    pub fn peer_of(&self, link_ref: LinkRef, task: TaskId) -> Option<TaskId> {
        self.links.get(&link_ref)?.peer(task)
    }

    /// The policy of `task` on `link_ref`; `None` if the ref is unknown or
    /// `task` is not an endpoint.
    pub fn exit_policy_for(&self, link_ref: LinkRef, task: TaskId) -> Option<ExitPolicy> {
        self.links.get(&link_ref)?.policy_of(task)
    }

    /// Sets the policy of `task` on `link_ref` (the single policy of a
    /// self-link). Returns `false`, changing nothing, if the ref is unknown or
    /// `task` is not an endpoint.
    pub fn set_exit_policy(&mut self, link_ref: LinkRef, task: TaskId, policy: ExitPolicy) -> bool {
        let Some(link) = self.links.get_mut(&link_ref) else {
            return false;
        };
        if link.is_self_link() && task == link.a {
            link.policy_a = policy;
            link.policy_b = policy;
        } else if task == link.a {
            link.policy_a = policy;
        } else if task == link.b {
            link.policy_b = policy;
        } else {
            return false;
        }
        true
    }

    /// Removes every link with `task` as an endpoint; returns their refs in
    /// ascending order.
    pub fn remove_task(&mut self, task: TaskId) -> Vec<LinkRef> {
        let refs: Vec<LinkRef> = self
            .by_task
            .get(&task)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        for &r in &refs {
            self.detach(r);
        }
        refs
    }

    /// Removes every link with an endpoint in `region`, including links whose
    /// other endpoint lives in another region; returns their refs in
    /// ascending order.
    pub fn cleanup_region(&mut self, region: RegionId) -> Vec<LinkRef> {
        let refs: Vec<LinkRef> = self
            .by_region
            .get(&region)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        for &r in &refs {
            self.detach(r);
        }
        refs
    }

    /// The number of links (a self-link counts once).
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Whether there are no links.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// What `crashed` exiting at `exit_vt` for `reason` does to the tasks it
    /// is linked to.
    ///
    /// A [`DownReason::Normal`] exit yields an empty batch. Any other exit
    /// yields one action per link of `crashed`, in `LinkRef` order, chosen by
    /// the peer's policy on that link (rules 5–7 of the
    /// [module documentation](self)); a self-link yields one action addressed
    /// to `crashed` itself. No link is removed (rule 8).
    pub fn resolve_exits(
        &self,
        crashed: TaskId,
        exit_vt: Time,
        reason: &DownReason,
    ) -> LinkExitBatch {
        let mut batch = LinkExitBatch::new();
        if reason.is_normal() {
            return batch;
        }
        for (link_ref, link) in self.links_of(crashed) {
            let (Some(peer), Some(origin_region)) = (link.peer(crashed), link.region_of(crashed))
            else {
                continue;
            };
            let Some(policy) = link.policy_of(peer) else {
                continue;
            };
            let action = match policy {
                ExitPolicy::Propagate => LinkExitAction::CancelPeer {
                    to: peer,
                    reason: linked_exit_reason(crashed, origin_region, exit_vt, reason),
                    link_ref,
                },
                ExitPolicy::Trap => LinkExitAction::DeliverExit {
                    to: peer,
                    signal: ExitSignal {
                        from: crashed,
                        reason: reason.clone(),
                        link_ref,
                    },
                },
                ExitPolicy::Ignore => LinkExitAction::Ignored { to: peer, link_ref },
            };
            batch.push(exit_vt, crashed, action);
        }
        batch
    }

    /// The live links of `task`, in `LinkRef` order, through the task index.
    fn links_of(&self, task: TaskId) -> impl Iterator<Item = (LinkRef, &Link)> {
        self.by_task
            .get(&task)
            .into_iter()
            .flatten()
            .filter_map(|r| Some((*r, self.links.get(r)?)))
    }

    /// Removes a link and its index entries.
    fn detach(&mut self, r: LinkRef) -> Option<Link> {
        let link = self.links.remove(&r)?;
        index_remove(&mut self.by_task, link.a, r);
        index_remove(&mut self.by_task, link.b, r);
        index_remove(&mut self.by_region, link.region_a, r);
        index_remove(&mut self.by_region, link.region_b, r);
        Some(link)
    }
}

/// The reason a `Propagate` peer is cancelled with when `crashed` exits.
fn linked_exit_reason(
    crashed: TaskId,
    region: RegionId,
    exit_vt: Time,
    reason: &DownReason,
) -> CancelReason {
    let linked = CancelReason::new(CancelKind::LinkedExit)
        .with_message(LINK_EXIT_MESSAGE)
        .with_timestamp(exit_vt)
        .with_origin(Some(region), Some(crashed));
    match reason.cancel_reason() {
        Some(own) => linked.with_cause(own.clone()),
        None => linked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PanicPayload;

    const _: fn() = || {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ExitPolicy>();
        assert_send_sync::<LinkRef>();
        assert_send_sync::<ExitSignal>();
        assert_send_sync::<LinkExitAction>();
        assert_send_sync::<LinkExitBatch>();
        assert_send_sync::<ExitBatch>();
        assert_send_sync::<LinkSet>();
    };

    fn t(i: u32) -> TaskId {
        TaskId::new_for_test(i, 0)
    }

    fn r(i: u32) -> RegionId {
        RegionId::new_for_test(i, 0)
    }

    fn at(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    fn error() -> DownReason {
        DownReason::Error("boom".into())
    }

    fn pair(policy_a: ExitPolicy, policy_b: ExitPolicy) -> (LinkSet, LinkRef, TaskId, TaskId) {
        let mut set = LinkSet::new();
        let (a, b) = (t(1), t(2));
        let l = set.establish_with_policy(a, r(0), policy_a, b, r(0), policy_b);
        (set, l, a, b)
    }

    // ---- ExitPolicy, LinkRef, ExitSignal basics ----

    #[test]
    fn exit_policy_defaults_to_propagate() {
        assert_eq!(ExitPolicy::default(), ExitPolicy::Propagate);
    }

    #[test]
    fn exit_policy_predicates_match_exactly_one_variant() {
        assert!(ExitPolicy::Propagate.is_propagate());
        assert!(!ExitPolicy::Propagate.is_trap() && !ExitPolicy::Propagate.is_ignore());
        assert!(ExitPolicy::Trap.is_trap());
        assert!(!ExitPolicy::Trap.is_propagate() && !ExitPolicy::Trap.is_ignore());
        assert!(ExitPolicy::Ignore.is_ignore());
        assert!(!ExitPolicy::Ignore.is_propagate() && !ExitPolicy::Ignore.is_trap());
    }

    #[test]
    fn exit_policy_displays_in_lowercase() {
        assert_eq!(ExitPolicy::Propagate.to_string(), "propagate");
        assert_eq!(ExitPolicy::Trap.to_string(), "trap");
        assert_eq!(ExitPolicy::Ignore.to_string(), "ignore");
    }

    #[test]
    fn link_ref_displays_as_link_ref_of_its_id() {
        let l = LinkRef::from_raw(42);
        assert_eq!(l.id(), 42);
        assert_eq!(l.to_string(), "LinkRef(42)");
        assert_eq!(format!("{l:?}"), "LinkRef(42)");
    }

    #[test]
    fn link_refs_order_by_id() {
        assert!(LinkRef::from_raw(1) < LinkRef::from_raw(2));
        assert_eq!(LinkRef::from_raw(7), LinkRef::from_raw(7));
    }

    #[test]
    fn exit_signal_displays_source_link_and_reason() {
        let s = ExitSignal {
            from: t(3),
            reason: error(),
            link_ref: LinkRef::from_raw(2),
        };
        assert_eq!(s.to_string(), "exit from T3 via LinkRef(2): error: boom");
    }

    // ---- Rule 1: allocation ----

    #[test]
    fn link_refs_are_unique_and_increasing_per_allocation() {
        let mut set = LinkSet::new();
        let refs: Vec<LinkRef> = (0..10)
            .map(|i| set.establish(t(i), r(0), t(i + 1), r(0)))
            .collect();
        assert!(refs.windows(2).all(|w| w[0] < w[1]));
        assert!(refs.windows(2).all(|w| w[0].id() < w[1].id()));
    }

    #[test]
    fn link_refs_are_never_reused_after_unlink_or_removal() {
        let mut set = LinkSet::new();
        let first = set.establish(t(1), r(0), t(2), r(0));
        assert!(set.unlink(first));
        let second = set.establish(t(1), r(0), t(2), r(0));
        assert!(second > first);
        set.remove_task(t(1));
        let third = set.establish(t(1), r(0), t(2), r(0));
        assert!(third > second);
        set.cleanup_region(r(0));
        let fourth = set.establish(t(1), r(0), t(2), r(0));
        assert!(fourth > third);
    }

    #[test]
    fn each_link_set_allocates_from_its_own_counter() {
        let mut x = LinkSet::new();
        let mut y = LinkSet::new();
        let x0 = x.establish(t(1), r(0), t(2), r(0));
        let x1 = x.establish(t(1), r(0), t(2), r(0));
        let y0 = y.establish(t(1), r(0), t(2), r(0));
        assert_eq!(x0, y0);
        assert!(x1 > x0);
    }

    // ---- Rule 2: multiple links per pair ----

    #[test]
    fn linking_the_same_pair_twice_creates_two_distinct_links() {
        let mut set = LinkSet::new();
        let l1 = set.establish(t(1), r(0), t(2), r(0));
        let l2 = set.establish(t(2), r(0), t(1), r(0));
        assert_ne!(l1, l2);
        assert_eq!(set.len(), 2);
        assert_eq!(set.peers_of(t(1)), vec![(l1, t(2)), (l2, t(2))]);
        assert_eq!(set.peers_of(t(2)), vec![(l1, t(1)), (l2, t(1))]);
    }

    #[test]
    fn unlinking_one_of_several_links_between_a_pair_keeps_the_others() {
        let mut set = LinkSet::new();
        let l1 = set.establish(t(1), r(0), t(2), r(0));
        let l2 = set.establish(t(1), r(0), t(2), r(0));
        assert!(set.unlink(l1));
        assert_eq!(set.peers_of(t(1)), vec![(l2, t(2))]);
        assert_eq!(set.peers_of(t(2)), vec![(l2, t(1))]);
    }

    #[test]
    fn each_link_between_a_pair_resolves_separately() {
        let mut set = LinkSet::new();
        let l1 = set.establish(t(1), r(0), t(2), r(0));
        let l2 = set.establish_with_policy(
            t(1),
            r(0),
            ExitPolicy::Propagate,
            t(2),
            r(0),
            ExitPolicy::Trap,
        );
        let actions = set.resolve_exits(t(1), at(1), &error()).into_sorted();
        assert_eq!(actions.len(), 2);
        assert!(actions[0].is_cancel_peer() && actions[0].link_ref() == l1);
        assert!(actions[1].is_deliver_exit() && actions[1].link_ref() == l2);
    }

    // ---- Rule 3: per-side policies ----

    #[test]
    fn establish_uses_propagate_on_both_sides() {
        let mut set = LinkSet::new();
        let l = set.establish(t(1), r(0), t(2), r(1));
        assert_eq!(set.exit_policy_for(l, t(1)), Some(ExitPolicy::Propagate));
        assert_eq!(set.exit_policy_for(l, t(2)), Some(ExitPolicy::Propagate));
    }

    #[test]
    fn policy_a_decides_what_happens_to_a_when_b_exits() {
        let (set, l, a, b) = pair(ExitPolicy::Trap, ExitPolicy::Ignore);
        // b crashes: a's policy (Trap) applies, aimed at a.
        let actions = set.resolve_exits(b, at(5), &error()).into_sorted();
        assert_eq!(
            actions,
            vec![LinkExitAction::DeliverExit {
                to: a,
                signal: ExitSignal {
                    from: b,
                    reason: error(),
                    link_ref: l,
                },
            }]
        );
        // a crashes: b's policy (Ignore) applies, aimed at b.
        let actions = set.resolve_exits(a, at(5), &error()).into_sorted();
        assert_eq!(
            actions,
            vec![LinkExitAction::Ignored { to: b, link_ref: l }]
        );
    }

    #[test]
    fn asymmetric_pair_propagates_one_way_only() {
        let (set, _, a, b) = pair(ExitPolicy::Propagate, ExitPolicy::Ignore);
        let from_b = set.resolve_exits(b, at(1), &error()).into_sorted();
        assert!(from_b[0].is_cancel_peer() && from_b[0].to() == a);
        let from_a = set.resolve_exits(a, at(1), &error()).into_sorted();
        assert!(from_a[0].is_ignored() && from_a[0].to() == b);
    }

    #[test]
    fn peers_with_policy_reports_the_querying_tasks_own_policy() {
        let (set, l, a, b) = pair(ExitPolicy::Trap, ExitPolicy::Ignore);
        assert_eq!(set.peers_with_policy(a), vec![(l, b, ExitPolicy::Trap)]);
        assert_eq!(set.peers_with_policy(b), vec![(l, a, ExitPolicy::Ignore)]);
    }

    #[test]
    fn exit_policy_for_reports_each_sides_policy() {
        let (set, l, a, b) = pair(ExitPolicy::Trap, ExitPolicy::Ignore);
        assert_eq!(set.exit_policy_for(l, a), Some(ExitPolicy::Trap));
        assert_eq!(set.exit_policy_for(l, b), Some(ExitPolicy::Ignore));
    }

    #[test]
    fn set_exit_policy_changes_only_the_given_side() {
        let (mut set, l, a, b) = pair(ExitPolicy::Propagate, ExitPolicy::Propagate);
        assert!(set.set_exit_policy(l, b, ExitPolicy::Trap));
        assert_eq!(set.exit_policy_for(l, a), Some(ExitPolicy::Propagate));
        assert_eq!(set.exit_policy_for(l, b), Some(ExitPolicy::Trap));
        let actions = set.resolve_exits(a, at(1), &error()).into_sorted();
        assert!(actions[0].is_deliver_exit());
    }

    #[test]
    fn set_exit_policy_rejects_unknown_refs_and_non_endpoints() {
        let (mut set, l, a, _) = pair(ExitPolicy::Propagate, ExitPolicy::Propagate);
        assert!(!set.set_exit_policy(LinkRef::from_raw(99), a, ExitPolicy::Trap));
        assert!(!set.set_exit_policy(l, t(9), ExitPolicy::Trap));
        assert_eq!(set.exit_policy_for(l, a), Some(ExitPolicy::Propagate));
        assert!(set.unlink(l));
        assert!(!set.set_exit_policy(l, a, ExitPolicy::Trap));
    }

    #[test]
    fn peer_and_policy_lookups_reject_unknown_refs_and_non_endpoints() {
        let (set, l, a, b) = pair(ExitPolicy::Propagate, ExitPolicy::Trap);
        assert_eq!(set.peer_of(l, a), Some(b));
        assert_eq!(set.peer_of(l, b), Some(a));
        assert_eq!(set.peer_of(l, t(9)), None);
        assert_eq!(set.peer_of(LinkRef::from_raw(99), a), None);
        assert_eq!(set.exit_policy_for(l, t(9)), None);
        assert_eq!(set.exit_policy_for(LinkRef::from_raw(99), a), None);
    }

    // ---- Rule 4: self-links ----

    #[test]
    fn self_link_is_listed_once_with_the_first_sides_policy() {
        let mut set = LinkSet::new();
        let l =
            set.establish_with_policy(t(1), r(0), ExitPolicy::Trap, t(1), r(0), ExitPolicy::Ignore);
        assert_eq!(set.len(), 1);
        assert_eq!(set.peers_of(t(1)), vec![(l, t(1))]);
        assert_eq!(
            set.peers_with_policy(t(1)),
            vec![(l, t(1), ExitPolicy::Trap)]
        );
        assert_eq!(set.exit_policy_for(l, t(1)), Some(ExitPolicy::Trap));
    }

    #[test]
    fn self_link_peer_is_the_task_itself() {
        let mut set = LinkSet::new();
        let l = set.establish(t(4), r(0), t(4), r(0));
        assert_eq!(set.peer_of(l, t(4)), Some(t(4)));
    }

    #[test]
    fn setting_the_policy_of_a_self_link_changes_its_single_policy() {
        let mut set = LinkSet::new();
        let l = set.establish(t(1), r(0), t(1), r(0));
        assert!(set.set_exit_policy(l, t(1), ExitPolicy::Ignore));
        assert_eq!(
            set.peers_with_policy(t(1)),
            vec![(l, t(1), ExitPolicy::Ignore)]
        );
        let actions = set.resolve_exits(t(1), at(1), &error()).into_sorted();
        assert_eq!(
            actions,
            vec![LinkExitAction::Ignored {
                to: t(1),
                link_ref: l
            }]
        );
    }

    #[test]
    fn self_link_resolves_to_one_action_addressed_to_the_task_itself() {
        for policy in [ExitPolicy::Propagate, ExitPolicy::Trap, ExitPolicy::Ignore] {
            let mut set = LinkSet::new();
            let l = set.establish_with_policy(t(1), r(0), policy, t(1), r(0), ExitPolicy::Ignore);
            let actions = set.resolve_exits(t(1), at(2), &error()).into_sorted();
            assert_eq!(actions.len(), 1, "{policy}");
            let action = &actions[0];
            assert_eq!(action.to(), t(1));
            assert_eq!(action.link_ref(), l);
            match policy {
                ExitPolicy::Propagate => assert!(action.is_cancel_peer()),
                ExitPolicy::Trap => assert!(action.is_deliver_exit()),
                ExitPolicy::Ignore => assert!(action.is_ignored()),
            }
        }
    }

    #[test]
    fn self_link_normal_exit_is_silent() {
        let mut set = LinkSet::new();
        set.establish(t(1), r(0), t(1), r(0));
        assert!(
            set.resolve_exits(t(1), at(1), &DownReason::Normal)
                .is_empty()
        );
    }

    #[test]
    fn self_link_uses_the_first_sides_region() {
        let mut set = LinkSet::new();
        let l = set.establish(t(1), r(1), t(1), r(2));
        assert!(set.cleanup_region(r(2)).is_empty());
        assert_eq!(set.cleanup_region(r(1)), vec![l]);
        assert!(set.is_empty());
    }

    #[test]
    fn self_link_is_removed_once_with_its_task() {
        let mut set = LinkSet::new();
        let s = set.establish(t(1), r(0), t(1), r(0));
        let o = set.establish(t(1), r(0), t(2), r(0));
        assert_eq!(set.remove_task(t(1)), vec![s, o]);
        assert!(set.is_empty());
        assert!(set.peers_of(t(2)).is_empty());
    }

    // ---- Rules 5 and 6: resolving exits ----

    #[test]
    fn normal_exit_yields_no_actions() {
        for policy in [ExitPolicy::Propagate, ExitPolicy::Trap, ExitPolicy::Ignore] {
            let (set, _, a, b) = pair(policy, policy);
            assert!(set.resolve_exits(a, at(1), &DownReason::Normal).is_empty());
            assert!(set.resolve_exits(b, at(1), &DownReason::Normal).is_empty());
        }
    }

    #[test]
    fn exit_of_a_task_without_links_yields_no_actions() {
        let (set, _, _, _) = pair(ExitPolicy::Propagate, ExitPolicy::Propagate);
        let batch = set.resolve_exits(t(9), at(1), &error());
        assert!(batch.is_empty());
        assert_eq!(batch.len(), 0);
    }

    #[test]
    fn propagating_peer_is_cancelled_with_a_linked_exit_reason() {
        let mut set = LinkSet::new();
        let l = set.establish(t(1), r(3), t(2), r(4));
        let actions = set.resolve_exits(t(1), at(7), &error()).into_sorted();
        let [
            LinkExitAction::CancelPeer {
                to,
                reason,
                link_ref,
            },
        ] = actions.as_slice()
        else {
            panic!("expected one CancelPeer, got {actions:?}");
        };
        assert_eq!(*to, t(2));
        assert_eq!(*link_ref, l);
        assert_eq!(reason.kind, CancelKind::LinkedExit);
        assert_eq!(reason.message.as_deref(), Some("link exit"));
        assert_eq!(reason.timestamp, at(7));
        assert_eq!(reason.origin_task, Some(t(1)));
        assert_eq!(reason.origin_region, Some(r(3)));
        assert_eq!(reason.cause, None);
    }

    #[test]
    fn linked_exit_reason_chains_the_crashed_tasks_cancel_reason_as_its_cause() {
        let own = CancelReason::user("stop").to_parent_cancelled();
        let (set, _, a, b) = pair(ExitPolicy::Propagate, ExitPolicy::Propagate);
        let actions = set
            .resolve_exits(a, at(1), &DownReason::Cancelled(own.clone()))
            .into_sorted();
        let LinkExitAction::CancelPeer { to, reason, .. } = &actions[0] else {
            panic!("expected CancelPeer, got {actions:?}");
        };
        assert_eq!(*to, b);
        assert_eq!(reason.kind, CancelKind::LinkedExit);
        assert_eq!(reason.message.as_deref(), Some("link exit"));
        assert_eq!(reason.cause.as_deref(), Some(&own));
        assert_eq!(reason.root_cause(), own.root_cause());
    }

    #[test]
    fn error_and_panicked_exits_cancel_peers_without_a_cause() {
        for down in [error(), DownReason::Panicked(PanicPayload::new("kaboom"))] {
            let (set, _, a, _) = pair(ExitPolicy::Propagate, ExitPolicy::Propagate);
            let actions = set.resolve_exits(a, at(1), &down).into_sorted();
            let LinkExitAction::CancelPeer { reason, .. } = &actions[0] else {
                panic!("expected CancelPeer for {down}");
            };
            assert_eq!(reason.kind, CancelKind::LinkedExit);
            assert_eq!(reason.message.as_deref(), Some("link exit"));
            assert!(reason.cause.is_none(), "{down}");
        }
    }

    #[test]
    fn trapping_peer_receives_the_exact_down_reason() {
        let downs = [
            error(),
            DownReason::Cancelled(CancelReason::timeout().with_message("slow")),
            DownReason::Panicked(PanicPayload::new("kaboom")),
        ];
        for down in downs {
            let (set, l, a, b) = pair(ExitPolicy::Trap, ExitPolicy::Trap);
            let actions = set.resolve_exits(b, at(1), &down).into_sorted();
            assert_eq!(
                actions,
                vec![LinkExitAction::DeliverExit {
                    to: a,
                    signal: ExitSignal {
                        from: b,
                        reason: down.clone(),
                        link_ref: l,
                    },
                }]
            );
        }
    }

    #[test]
    fn ignoring_peer_gets_an_ignored_action() {
        let (set, l, a, b) = pair(ExitPolicy::Ignore, ExitPolicy::Ignore);
        let actions = set
            .resolve_exits(b, at(1), &DownReason::Panicked(PanicPayload::new("p")))
            .into_sorted();
        assert_eq!(
            actions,
            vec![LinkExitAction::Ignored { to: a, link_ref: l }]
        );
    }

    #[test]
    fn abnormal_exit_yields_one_action_per_link_in_link_ref_order() {
        let mut set = LinkSet::new();
        let crashed = t(5);
        let l1 = set.establish(crashed, r(0), t(1), r(0));
        let l2 = set.establish_with_policy(
            t(2),
            r(0),
            ExitPolicy::Ignore,
            crashed,
            r(0),
            ExitPolicy::Propagate,
        );
        let l3 = set.establish_with_policy(
            crashed,
            r(0),
            ExitPolicy::Propagate,
            t(3),
            r(0),
            ExitPolicy::Trap,
        );
        set.establish(t(1), r(0), t(2), r(0)); // unrelated
        let batch = set.resolve_exits(crashed, at(1), &error());
        assert_eq!(batch.len(), 3);
        let in_order: Vec<LinkRef> = batch.iter().map(LinkExitAction::link_ref).collect();
        assert_eq!(in_order, vec![l1, l2, l3]);
        let targets: Vec<TaskId> = batch.iter().map(LinkExitAction::to).collect();
        assert_eq!(targets, vec![t(1), t(2), t(3)]);
    }

    // ---- Rule 8: resolving is a query ----

    #[test]
    fn resolving_an_exit_does_not_remove_links() {
        let (set, l, a, b) = pair(ExitPolicy::Propagate, ExitPolicy::Propagate);
        let before = set.peers_of(a);
        let _ = set.resolve_exits(a, at(1), &error());
        assert_eq!(set.peers_of(a), before);
        assert_eq!(set.peer_of(l, b), Some(a));
        assert_eq!(set.len(), 1);
    }

    // ---- Rule 9: removal ----

    #[test]
    fn unlink_removes_the_link_from_both_sides() {
        let (mut set, l, a, b) = pair(ExitPolicy::Propagate, ExitPolicy::Propagate);
        assert!(set.contains(l));
        assert!(set.unlink(l));
        assert!(!set.contains(l));
        assert!(set.peers_of(a).is_empty());
        assert!(set.peers_of(b).is_empty());
        assert!(set.resolve_exits(a, at(1), &error()).is_empty());
    }

    #[test]
    fn unlink_of_an_unknown_or_removed_ref_returns_false() {
        let (mut set, l, _, _) = pair(ExitPolicy::Propagate, ExitPolicy::Propagate);
        assert!(!set.unlink(LinkRef::from_raw(99)));
        assert!(set.unlink(l));
        assert!(!set.unlink(l));
    }

    #[test]
    fn remove_task_drops_all_its_links_and_returns_their_refs_in_order() {
        let mut set = LinkSet::new();
        let l1 = set.establish(t(1), r(0), t(2), r(0));
        let keep = set.establish(t(2), r(0), t(3), r(0));
        let l3 = set.establish(t(3), r(0), t(1), r(0));
        assert_eq!(set.remove_task(t(1)), vec![l1, l3]);
        assert!(set.peers_of(t(1)).is_empty());
        assert_eq!(set.peers_of(t(2)), vec![(keep, t(3))]);
        assert_eq!(set.peers_of(t(3)), vec![(keep, t(2))]);
        assert_eq!(set.len(), 1);
        assert!(set.remove_task(t(1)).is_empty());
    }

    #[test]
    fn cleanup_region_drops_cross_region_links_from_either_side() {
        let mut set = LinkSet::new();
        let inside = set.establish(t(1), r(1), t(2), r(1));
        let out_to_in = set.establish(t(3), r(2), t(1), r(1));
        let in_to_out = set.establish(t(2), r(1), t(4), r(3));
        let elsewhere = set.establish(t(3), r(2), t(4), r(3));
        assert_eq!(set.cleanup_region(r(1)), vec![inside, out_to_in, in_to_out]);
        assert_eq!(set.len(), 1);
        assert_eq!(set.peers_of(t(3)), vec![(elsewhere, t(4))]);
        assert_eq!(set.peers_of(t(4)), vec![(elsewhere, t(3))]);
        assert!(set.peers_of(t(1)).is_empty());
        assert!(set.peers_of(t(2)).is_empty());
        assert!(set.cleanup_region(r(1)).is_empty());
        assert_eq!(set.cleanup_region(r(3)), vec![elsewhere]);
        assert!(set.is_empty());
    }

    // ---- Rule 10: deterministic queries ----

    #[test]
    fn queries_are_sorted_by_link_ref_whatever_the_peer_order() {
        let mut set = LinkSet::new();
        let l0 = set.establish(t(1), r(0), t(9), r(0));
        let l1 = set.establish(t(5), r(0), t(1), r(0));
        let l2 = set.establish(t(1), r(0), t(2), r(0));
        assert_eq!(set.peers_of(t(1)), vec![(l0, t(9)), (l1, t(5)), (l2, t(2))]);
        let with: Vec<LinkRef> = set
            .peers_with_policy(t(1))
            .into_iter()
            .map(|(l, _, _)| l)
            .collect();
        assert_eq!(with, vec![l0, l1, l2]);
    }

    #[test]
    fn len_and_is_empty_count_links() {
        let mut set = LinkSet::default();
        assert!(set.is_empty());
        assert_eq!(set.len(), 0);
        let l = set.establish(t(1), r(0), t(2), r(0));
        set.establish(t(1), r(0), t(1), r(0));
        assert_eq!(set.len(), 2);
        assert!(!set.is_empty());
        set.unlink(l);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn default_link_set_is_empty_and_knows_no_task() {
        let set = LinkSet::default();
        assert!(set.is_empty());
        assert!(set.peers_of(t(1)).is_empty());
        assert!(set.peers_with_policy(t(1)).is_empty());
    }

    // ---- Rule 11: LinkExitBatch order ----

    fn ignored(to: u32, link: u64) -> LinkExitAction {
        LinkExitAction::Ignored {
            to: t(to),
            link_ref: LinkRef::from_raw(link),
        }
    }

    fn cancel(to: u32, link: u64) -> LinkExitAction {
        LinkExitAction::CancelPeer {
            to: t(to),
            reason: CancelReason::linked_exit(),
            link_ref: LinkRef::from_raw(link),
        }
    }

    fn deliver(to: u32, from: u32, link: u64) -> LinkExitAction {
        LinkExitAction::DeliverExit {
            to: t(to),
            signal: ExitSignal {
                from: t(from),
                reason: error(),
                link_ref: LinkRef::from_raw(link),
            },
        }
    }

    #[test]
    fn link_exit_batch_sorts_by_exit_time_first() {
        let mut batch = LinkExitBatch::new();
        batch.push(at(2), t(0), cancel(0, 0));
        batch.push(at(1), t(9), ignored(9, 9));
        assert_eq!(batch.into_sorted(), vec![ignored(9, 9), cancel(0, 0)]);
    }

    #[test]
    fn link_exit_batch_breaks_time_ties_by_source_task() {
        let mut batch = LinkExitBatch::new();
        batch.push(at(1), t(2), cancel(0, 0));
        batch.push(at(1), t(1), ignored(9, 9));
        assert_eq!(batch.into_sorted(), vec![ignored(9, 9), cancel(0, 0)]);
    }

    #[test]
    fn link_exit_batch_breaks_source_ties_by_target_task() {
        let mut batch = LinkExitBatch::new();
        batch.push(at(1), t(1), cancel(3, 0));
        batch.push(at(1), t(1), ignored(2, 9));
        assert_eq!(batch.into_sorted(), vec![ignored(2, 9), cancel(3, 0)]);
    }

    #[test]
    fn link_exit_batch_breaks_target_ties_by_link_ref() {
        let mut batch = LinkExitBatch::new();
        batch.push(at(1), t(1), cancel(2, 5));
        batch.push(at(1), t(1), ignored(2, 4));
        assert_eq!(batch.into_sorted(), vec![ignored(2, 4), cancel(2, 5)]);
    }

    #[test]
    fn link_exit_batch_breaks_link_ref_ties_by_kind_cancel_then_deliver_then_ignored() {
        let mut batch = LinkExitBatch::new();
        batch.push(at(1), t(1), ignored(2, 4));
        batch.push(at(1), t(1), deliver(2, 1, 4));
        batch.push(at(1), t(1), cancel(2, 4));
        assert_eq!(
            batch.into_sorted(),
            vec![cancel(2, 4), deliver(2, 1, 4), ignored(2, 4)]
        );
    }

    #[test]
    fn link_exit_batch_keeps_insertion_order_for_equal_keys() {
        let first = LinkExitAction::CancelPeer {
            to: t(2),
            reason: CancelReason::linked_exit().with_message("first"),
            link_ref: LinkRef::from_raw(1),
        };
        let second = LinkExitAction::CancelPeer {
            to: t(2),
            reason: CancelReason::linked_exit().with_message("second"),
            link_ref: LinkRef::from_raw(1),
        };
        let mut batch = LinkExitBatch::new();
        batch.push(at(1), t(1), first.clone());
        batch.push(at(1), t(1), second.clone());
        assert_eq!(batch.into_sorted(), vec![first, second]);
    }

    #[test]
    fn appended_batches_from_several_exits_sort_together() {
        let mut set = LinkSet::new();
        let l_late = set.establish(t(1), r(0), t(3), r(0));
        let l_early = set.establish(t(2), r(0), t(3), r(0));
        let mut batch = set.resolve_exits(t(1), at(9), &error());
        batch.append(set.resolve_exits(t(2), at(4), &error()));
        assert_eq!(batch.len(), 2);
        let refs: Vec<LinkRef> = batch
            .into_sorted()
            .iter()
            .map(LinkExitAction::link_ref)
            .collect();
        assert_eq!(refs, vec![l_early, l_late]);
    }

    #[test]
    fn link_exit_action_accessors_report_target_and_link() {
        assert_eq!(cancel(2, 3).to(), t(2));
        assert_eq!(cancel(2, 3).link_ref(), LinkRef::from_raw(3));
        assert_eq!(deliver(4, 1, 5).to(), t(4));
        assert_eq!(deliver(4, 1, 5).link_ref(), LinkRef::from_raw(5));
        assert_eq!(ignored(6, 7).to(), t(6));
        assert_eq!(ignored(6, 7).link_ref(), LinkRef::from_raw(7));
    }

    // ---- Rule 12: ExitBatch order ----

    fn signal(from: u32, link: u64) -> ExitSignal {
        ExitSignal {
            from: t(from),
            reason: error(),
            link_ref: LinkRef::from_raw(link),
        }
    }

    #[test]
    fn exit_batch_sorts_by_failure_time_first() {
        let mut batch = ExitBatch::new();
        batch.push(at(3), signal(1, 0));
        batch.push(at(1), signal(9, 1));
        assert_eq!(batch.into_sorted(), vec![signal(9, 1), signal(1, 0)]);
    }

    #[test]
    fn exit_batch_breaks_time_ties_by_source_task() {
        let mut batch = ExitBatch::new();
        batch.push(at(1), signal(5, 0));
        batch.push(at(1), signal(2, 1));
        assert_eq!(batch.into_sorted(), vec![signal(2, 1), signal(5, 0)]);
    }

    #[test]
    fn exit_batch_is_stable_for_equal_time_and_source() {
        let mut batch = ExitBatch::new();
        // Same key, link refs deliberately in descending order: the sort must
        // not reorder them.
        batch.push(at(1), signal(2, 9));
        batch.push(at(1), signal(2, 3));
        batch.push(at(0), signal(7, 0));
        batch.push(at(1), signal(2, 5));
        assert_eq!(
            batch.into_sorted(),
            vec![signal(7, 0), signal(2, 9), signal(2, 3), signal(2, 5)]
        );
    }

    #[test]
    fn exit_batch_len_and_is_empty_count_signals() {
        let mut batch = ExitBatch::default();
        assert!(batch.is_empty());
        assert_eq!(batch.len(), 0);
        batch.push(at(1), signal(1, 0));
        batch.push(at(1), signal(1, 1));
        assert!(!batch.is_empty());
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.iter().count(), 2);
        assert!(ExitBatch::new().into_sorted().is_empty());
    }

    #[test]
    fn link_exit_batch_len_and_is_empty_count_actions() {
        let mut batch = LinkExitBatch::default();
        assert!(batch.is_empty());
        batch.push(at(1), t(1), ignored(2, 0));
        assert_eq!(batch.len(), 1);
        assert!(!batch.is_empty());
        assert!(LinkExitBatch::new().into_sorted().is_empty());
    }

    // ---- Model check ----

    mod model {
        use super::*;
        use proptest::prelude::*;

        const TASKS: u32 = 5;

        #[derive(Clone, Debug)]
        enum Op {
            Establish(u32, u32),
            Unlink(usize),
            RemoveTask(u32),
            CleanupRegion(u32),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0..TASKS, 0..TASKS).prop_map(|(a, b)| Op::Establish(a, b)),
                2 => (0..16usize).prop_map(Op::Unlink),
                1 => (0..TASKS).prop_map(Op::RemoveTask),
                1 => (0..2u32).prop_map(Op::CleanupRegion),
            ]
        }

        /// Each task lives in a fixed region: even tasks in R0, odd in R1.
        fn region_of(task: u32) -> RegionId {
            r(task % 2)
        }

        proptest! {
            #[test]
            fn random_operations_keep_peers_consistent_with_a_naive_model(
                ops in proptest::collection::vec(op(), 0..40)
            ) {
                let mut set = LinkSet::new();
                // (ref, a, b), in allocation order.
                let mut model: Vec<(LinkRef, u32, u32)> = Vec::new();
                let mut issued: Vec<LinkRef> = Vec::new();
                for op in ops {
                    match op {
                        Op::Establish(a, b) => {
                            let l = set.establish(t(a), region_of(a), t(b), region_of(b));
                            if let Some(last) = issued.last() {
                                prop_assert!(l > *last);
                            }
                            issued.push(l);
                            model.push((l, a, b));
                        }
                        Op::Unlink(i) => {
                            let l = issued.get(i).copied().unwrap_or(LinkRef::from_raw(1000));
                            let present = model.iter().any(|(m, _, _)| *m == l);
                            prop_assert_eq!(set.unlink(l), present);
                            model.retain(|(m, _, _)| *m != l);
                        }
                        Op::RemoveTask(x) => {
                            let expected: Vec<LinkRef> = model
                                .iter()
                                .filter(|(_, a, b)| *a == x || *b == x)
                                .map(|(l, _, _)| *l)
                                .collect();
                            prop_assert_eq!(set.remove_task(t(x)), expected);
                            model.retain(|(_, a, b)| *a != x && *b != x);
                        }
                        Op::CleanupRegion(g) => {
                            let hit = |a: u32, b: u32| a % 2 == g || b % 2 == g;
                            let expected: Vec<LinkRef> = model
                                .iter()
                                .filter(|(_, a, b)| hit(*a, *b))
                                .map(|(l, _, _)| *l)
                                .collect();
                            prop_assert_eq!(set.cleanup_region(r(g)), expected);
                            model.retain(|(_, a, b)| !hit(*a, *b));
                        }
                    }
                    prop_assert_eq!(set.len(), model.len());
                    prop_assert_eq!(set.is_empty(), model.is_empty());
                    for x in 0..TASKS {
                        let expected: Vec<(LinkRef, TaskId)> = model
                            .iter()
                            .filter_map(|(l, a, b)| {
                                if *a == x {
                                    Some((*l, t(*b)))
                                } else if *b == x {
                                    Some((*l, t(*a)))
                                } else {
                                    None
                                }
                            })
                            .collect();
                        prop_assert_eq!(set.peers_of(t(x)), expected.clone());
                        let batch = set.resolve_exits(t(x), at(1), &error());
                        prop_assert_eq!(batch.len(), expected.len());
                    }
                }
            }
        }
    }
}
