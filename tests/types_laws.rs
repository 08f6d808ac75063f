//! Algebraic laws of the core value types, checked with proptest through the
//! public API only: the `Outcome` severity lattice, `Budget::meet`, and
//! `CancelReason::strengthen` and its cause chains.

use asupersync::types::cancel::MAX_CAUSE_DEPTH;
use asupersync::types::outcome::OutcomeError;
use asupersync::types::{
    Budget, CancelKind, CancelReason, Outcome, PanicPayload, RegionId, Severity, TaskId, Time,
};
use proptest::prelude::*;

type O = Outcome<u8, u8>;

// ---------------------------------------------------------------------------
// Strategies. Value ranges are kept small on purpose so that ties (equal
// severities, timestamps, messages, deadlines, ...) are common.
// ---------------------------------------------------------------------------

fn kind() -> impl Strategy<Value = CancelKind> {
    prop::sample::select(CancelKind::ALL.to_vec())
}

fn small_time() -> impl Strategy<Value = Time> {
    (0u64..4).prop_map(Time::from_millis)
}

fn message() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(vec!["", "a", "b", "stop"]).prop_map(String::from))
}

/// A reason with no cause.
fn leaf_reason() -> impl Strategy<Value = CancelReason> {
    (
        kind(),
        message(),
        small_time(),
        prop::option::of(0u32..3),
        prop::option::of(0u32..3),
    )
        .prop_map(|(kind, message, at, region, task)| {
            let mut r = CancelReason::new(kind).with_timestamp(at).with_origin(
                region.map(|i| RegionId::new_for_test(i, 0)),
                task.map(|i| TaskId::new_for_test(i, 0)),
            );
            r.message = message;
            r
        })
}

/// A reason with a short (possibly empty) cause chain.
fn reason() -> impl Strategy<Value = CancelReason> {
    (leaf_reason(), prop::collection::vec(leaf_reason(), 0..3)).prop_map(|(top, causes)| {
        let cause = causes
            .into_iter()
            .reduce(|inner, outer| outer.with_cause(inner));
        match cause {
            Some(c) => top.with_cause(c),
            None => top,
        }
    })
}

fn outcome() -> impl Strategy<Value = O> {
    prop_oneof![
        any::<u8>().prop_map(Outcome::Ok),
        any::<u8>().prop_map(Outcome::Err),
        reason().prop_map(Outcome::Cancelled),
        prop::sample::select(vec!["boom", "bang"])
            .prop_map(|m| Outcome::Panicked(PanicPayload::new(m))),
    ]
}

fn budget() -> impl Strategy<Value = Budget> {
    (
        prop::option::of(small_time()),
        prop_oneof![0u32..4, Just(u32::MAX)],
        prop::option::of(0u64..4),
        prop_oneof![0u8..4, Just(u8::MAX)],
    )
        .prop_map(|(deadline, poll_quota, cost_quota, priority)| Budget {
            deadline,
            poll_quota,
            cost_quota,
            priority,
        })
}

/// The position of the variant in `Ok < Err < Cancelled < Panicked`.
fn rank(o: &O) -> u8 {
    match o {
        Outcome::Ok(_) => 0,
        Outcome::Err(_) => 1,
        Outcome::Cancelled(_) => 2,
        Outcome::Panicked(_) => 3,
    }
}

/// What `strengthen` compares: tier, timestamp, message, kind.
fn precedence_key(r: &CancelReason) -> (u8, Time, Option<String>, CancelKind) {
    (r.severity(), r.timestamp, r.message.clone(), r.kind)
}

fn strengthened(a: &CancelReason, b: &CancelReason) -> CancelReason {
    let mut r = a.clone();
    r.strengthen(b);
    r
}

/// `a <= b` where `None` means "no limit" (infinitely loose).
fn at_most<T: Ord>(a: Option<T>, b: Option<T>) -> bool {
    match (a, b) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => a <= b,
    }
}

// ---------------------------------------------------------------------------
// Outcome
// ---------------------------------------------------------------------------

#[test]
fn severities_are_ordered_ok_err_cancelled_panicked() {
    assert!(Severity::Ok < Severity::Err);
    assert!(Severity::Err < Severity::Cancelled);
    assert!(Severity::Cancelled < Severity::Panicked);
    let samples: [O; 4] = [
        Outcome::Ok(0),
        Outcome::Err(0),
        Outcome::Cancelled(CancelReason::default()),
        Outcome::Panicked(PanicPayload::new("p")),
    ];
    let severities: Vec<Severity> = samples.iter().map(Outcome::severity).collect();
    assert_eq!(
        severities,
        vec![
            Severity::Ok,
            Severity::Err,
            Severity::Cancelled,
            Severity::Panicked
        ]
    );
}

proptest! {
    #[test]
    fn an_outcome_is_more_severe_exactly_when_its_variant_comes_later(a in outcome(), b in outcome()) {
        prop_assert_eq!(a.severity().cmp(&b.severity()), rank(&a).cmp(&rank(&b)));
        prop_assert_eq!(a.is_ok(), a.severity() == Severity::Ok);
        prop_assert_eq!(a.is_err(), a.severity() == Severity::Err);
        prop_assert_eq!(a.is_cancelled(), a.severity() == Severity::Cancelled);
        prop_assert_eq!(a.is_panicked(), a.severity() == Severity::Panicked);
    }

    #[test]
    fn join_returns_the_more_severe_outcome_and_the_left_one_on_ties(a in outcome(), b in outcome()) {
        let joined = a.clone().join(b.clone());
        prop_assert_eq!(joined.severity(), a.severity().max(b.severity()));
        if b.severity() > a.severity() {
            prop_assert_eq!(joined, b);
        } else {
            prop_assert_eq!(joined, a);
        }
    }

    #[test]
    fn join_is_commutative_in_severity(a in outcome(), b in outcome()) {
        prop_assert_eq!(
            a.clone().join(b.clone()).severity(),
            b.join(a).severity()
        );
    }

    #[test]
    fn join_is_associative(a in outcome(), b in outcome(), c in outcome()) {
        let left = a.clone().join(b.clone()).join(c.clone());
        let right = a.join(b.join(c));
        prop_assert_eq!(left.severity(), right.severity());
        // Left-biased max is associative on values too, not only severities.
        prop_assert_eq!(left, right);
    }

    #[test]
    fn join_is_idempotent(a in outcome()) {
        prop_assert_eq!(a.clone().join(a.clone()), a);
    }

    #[test]
    fn joining_with_ok_on_the_right_changes_nothing(a in outcome(), v in any::<u8>()) {
        prop_assert_eq!(a.clone().join(Outcome::Ok(v)), a);
    }

    #[test]
    fn a_result_survives_the_round_trip_through_outcome(r in prop::result::maybe_ok(any::<u8>(), any::<u8>())) {
        let o: O = r.into();
        prop_assert_eq!(o.is_ok(), r.is_ok());
        prop_assert_eq!(o.is_err(), r.is_err());
        prop_assert_eq!(o.into_result(), r.map_err(OutcomeError::Err));
    }

    #[test]
    fn into_result_keeps_cancellations_and_panics_distinguishable(o in outcome()) {
        match (o.clone(), o.clone().into_result()) {
            (Outcome::Ok(v), Ok(w)) => prop_assert_eq!(v, w),
            (Outcome::Err(e), Err(OutcomeError::Err(f))) => prop_assert_eq!(e, f),
            (Outcome::Cancelled(r), Err(OutcomeError::Cancelled(s))) => prop_assert_eq!(r, s),
            (Outcome::Panicked(p), Err(OutcomeError::Panicked(q))) => prop_assert_eq!(p, q),
            (o, r) => prop_assert!(false, "{:?} became {:?}", o, r),
        }
        // Ok and Err come back unchanged through `From<Result>`.
        if let Ok(v) = o.clone().into_result() {
            prop_assert_eq!(O::from(Ok(v)), o);
        } else if let Err(OutcomeError::Err(e)) = o.clone().into_result() {
            prop_assert_eq!(O::from(Err(e)), o);
        }
    }
}

// ---------------------------------------------------------------------------
// Budget::meet
// ---------------------------------------------------------------------------

#[test]
fn the_default_budget_is_infinite() {
    assert_eq!(Budget::default(), Budget::INFINITE);
    assert_eq!(Budget::new(), Budget::INFINITE);
    assert_eq!(Budget::INFINITE.deadline, None);
    assert_eq!(Budget::INFINITE.poll_quota, u32::MAX);
    assert_eq!(Budget::INFINITE.cost_quota, None);
    assert_eq!(Budget::INFINITE.priority, 0);
}

proptest! {
    #[test]
    fn meet_is_commutative(a in budget(), b in budget()) {
        prop_assert_eq!(a.meet(b), b.meet(a));
    }

    #[test]
    fn meet_is_associative(a in budget(), b in budget(), c in budget()) {
        prop_assert_eq!(a.meet(b).meet(c), a.meet(b.meet(c)));
    }

    #[test]
    fn meet_is_idempotent(a in budget()) {
        prop_assert_eq!(a.meet(a), a);
    }

    #[test]
    fn the_infinite_budget_is_the_identity_of_meet(a in budget()) {
        prop_assert_eq!(Budget::INFINITE.meet(a), a);
        prop_assert_eq!(a.meet(Budget::INFINITE), a);
    }

    #[test]
    fn meet_never_loosens_any_limit(a in budget(), b in budget()) {
        let m = a.meet(b);
        for input in [a, b] {
            prop_assert!(at_most(m.deadline, input.deadline), "deadline {:?} looser than {:?}", m.deadline, input.deadline);
            prop_assert!(m.poll_quota <= input.poll_quota);
            prop_assert!(at_most(m.cost_quota, input.cost_quota), "cost {:?} looser than {:?}", m.cost_quota, input.cost_quota);
            prop_assert!(m.priority >= input.priority);
        }
    }

    #[test]
    fn meet_is_the_loosest_budget_that_is_at_least_as_tight_as_both(a in budget(), b in budget(), c in budget()) {
        // Every limit of the meet comes from one of the inputs...
        let m = a.meet(b);
        prop_assert!(m.deadline == a.deadline || m.deadline == b.deadline);
        prop_assert!(m.poll_quota == a.poll_quota || m.poll_quota == b.poll_quota);
        prop_assert!(m.cost_quota == a.cost_quota || m.cost_quota == b.cost_quota);
        prop_assert!(m.priority == a.priority || m.priority == b.priority);
        // ...and anything tighter than both inputs is tighter than the meet.
        let tighter = |x: Budget, y: Budget| {
            at_most(x.deadline, y.deadline)
                && x.poll_quota <= y.poll_quota
                && at_most(x.cost_quota, y.cost_quota)
                && x.priority >= y.priority
        };
        if tighter(c, a) && tighter(c, b) {
            prop_assert!(tighter(c, m));
        }
    }

    #[test]
    fn a_budget_only_ever_tightens_down_a_chain_of_meets(budgets in prop::collection::vec(budget(), 1..8)) {
        let mut current = Budget::INFINITE;
        for b in budgets {
            let next = current.meet(b);
            prop_assert!(at_most(next.deadline, current.deadline));
            prop_assert!(next.poll_quota <= current.poll_quota);
            prop_assert!(at_most(next.cost_quota, current.cost_quota));
            prop_assert!(next.priority >= current.priority);
            current = next;
        }
    }
}

// ---------------------------------------------------------------------------
// CancelReason::strengthen and cause chains
// ---------------------------------------------------------------------------

#[test]
fn severity_tiers_follow_the_contract() {
    use CancelKind::*;
    let tier = |k: CancelKind| k.severity();
    assert_eq!(tier(User), 0);
    assert_eq!((tier(Timeout), tier(Deadline)), (1, 1));
    assert_eq!((tier(PollQuota), tier(CostBudget)), (2, 2));
    assert_eq!(
        (tier(FailFast), tier(RaceLost), tier(LinkedExit)),
        (3, 3, 3)
    );
    assert_eq!((tier(ParentCancelled), tier(ResourceUnavailable)), (4, 4));
    assert_eq!(tier(Shutdown), 5);
}

proptest! {
    #[test]
    fn strengthen_is_monotone(a in reason(), b in reason()) {
        let r = strengthened(&a, &b);
        prop_assert!(r.severity() >= a.severity());
        prop_assert!(r.severity() >= b.severity());
        prop_assert_eq!(r.severity(), a.severity().max(b.severity()));
    }

    #[test]
    fn strengthen_keeps_one_of_its_two_inputs(a in reason(), b in reason()) {
        let r = strengthened(&a, &b);
        prop_assert!(r == a || r == b, "{:?} is neither {:?} nor {:?}", r, a, b);
    }

    #[test]
    fn strengthen_reports_whether_it_changed_the_reason(a in reason(), b in reason()) {
        let mut r = a.clone();
        let changed = r.strengthen(&b);
        prop_assert_eq!(changed, r != a);
    }

    #[test]
    fn strengthening_twice_with_the_same_reason_changes_nothing_more(a in reason(), b in reason()) {
        let mut r = a.clone();
        r.strengthen(&b);
        let once = r.clone();
        prop_assert!(!r.strengthen(&b));
        prop_assert_eq!(&r, &once);
        // Strengthening with itself is a no-op too.
        prop_assert!(!r.strengthen(once.clone()));
        prop_assert_eq!(r, once);
    }

    #[test]
    fn strengthen_does_not_depend_on_arrival_order_when_the_reasons_differ(a in reason(), b in reason()) {
        let ab = strengthened(&a, &b);
        let ba = strengthened(&b, &a);
        // The winning tier, timestamp, message and kind never depend on order.
        prop_assert_eq!(precedence_key(&ab), precedence_key(&ba));
        if precedence_key(&a) != precedence_key(&b) {
            prop_assert_eq!(ab, ba);
        }
    }

    #[test]
    fn a_full_tie_keeps_the_reason_already_held(a in reason(), other_origin in prop::option::of(0u32..3)) {
        // Same tier, timestamp, message and kind, different cause and origin.
        let mut b = CancelReason::new(a.kind)
            .with_timestamp(a.timestamp)
            .with_origin(other_origin.map(|i| RegionId::new_for_test(i, 7)), None)
            .with_cause(CancelReason::shutdown());
        b.message = a.message.clone();
        prop_assert_eq!(strengthened(&a, &b), a.clone());
        prop_assert_eq!(strengthened(&b, &a), b);
    }

    #[test]
    fn strengthening_a_stream_of_reasons_yields_the_same_winner_in_any_order(
        (reasons, shuffled) in prop::collection::vec(reason(), 1..8)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
    ) {
        let fold = |rs: &[CancelReason]| {
            let mut acc = rs[0].clone();
            for r in &rs[1..] {
                acc.strengthen(r);
            }
            acc
        };
        let x = fold(&reasons);
        let y = fold(&shuffled);
        prop_assert_eq!(precedence_key(&x), precedence_key(&y));
        let max_tier = reasons.iter().map(CancelReason::severity).max().unwrap();
        prop_assert_eq!(x.severity(), max_tier);
        let keys: std::collections::BTreeSet<_> = reasons.iter().map(precedence_key).collect();
        if keys.len() == reasons.len() {
            prop_assert_eq!(x, y);
        }
    }

    #[test]
    fn cause_chains_stay_bounded_and_keep_their_root(
        root in leaf_reason(),
        layers in prop::collection::vec((leaf_reason(), any::<bool>()), 0..(3 * MAX_CAUSE_DEPTH)),
    ) {
        let mut r = root.clone();
        for (outer, via_parent) in layers {
            r = if via_parent { r.to_parent_cancelled() } else { outer.with_cause(r) };
            prop_assert!(r.cause_depth() <= MAX_CAUSE_DEPTH, "depth {}", r.cause_depth());
            prop_assert_eq!(r.root_cause(), &root);
            prop_assert_eq!(r.chain().count(), r.cause_depth() + 1);
        }
    }

    #[test]
    fn with_cause_keeps_a_short_chain_intact_and_the_outer_reason_unchanged(
        outer in leaf_reason(),
        cause in reason(),
    ) {
        prop_assume!(cause.cause_depth() < MAX_CAUSE_DEPTH);
        let r = outer.clone().with_cause(cause.clone());
        prop_assert_eq!(r.cause.as_deref(), Some(&cause));
        prop_assert_eq!(precedence_key(&r), precedence_key(&outer));
        prop_assert_eq!(r.origin_region, outer.origin_region);
        prop_assert_eq!(r.origin_task, outer.origin_task);
    }

    #[test]
    fn parent_cancellation_ends_at_the_original_reason(original in reason(), depth in 1usize..(2 * MAX_CAUSE_DEPTH)) {
        let mut r = original.clone();
        for _ in 0..depth {
            r = r.to_parent_cancelled();
            prop_assert_eq!(r.kind, CancelKind::ParentCancelled);
            prop_assert_eq!(r.timestamp, original.timestamp);
        }
        prop_assert!(r.cause_depth() <= MAX_CAUSE_DEPTH);
        prop_assert_eq!(r.root_cause(), original.root_cause());
    }

    #[test]
    fn strengthen_never_lengthens_a_cause_chain_past_the_bound(a in reason(), b in reason(), depth in 0usize..40) {
        let mut deep = b;
        for _ in 0..depth {
            deep = deep.to_parent_cancelled();
        }
        let r = strengthened(&a, &deep);
        prop_assert!(r.cause_depth() <= MAX_CAUSE_DEPTH);
        prop_assert!(r.cause_depth() == a.cause_depth() || r.cause_depth() == deep.cause_depth());
    }
}
