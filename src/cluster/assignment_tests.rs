use super::*;
use proptest::prelude::*;

fn s(id: u32) -> ServerId {
    ServerId(id)
}

fn ne(i: usize) -> Arc<str> {
    format!("ne{i:03}").into()
}

type Inventory = Vec<(Arc<str>, Option<ServerId>)>;
type Assignment = BTreeMap<Arc<str>, ServerId>;

fn unpinned(n: usize) -> Inventory {
    (0..n).map(|i| (ne(i), None)).collect()
}

fn equal(ids: &[u32]) -> Vec<Member> {
    ids.iter().map(|&i| Member::new(s(i))).collect()
}

fn run(inv: &Inventory, live: &[Member], prev: &Assignment) -> Assignment {
    assign(inv.iter().map(|(n, p)| (n, *p)), live, prev)
}

fn load_vec(a: &Assignment, live: &[Member]) -> Vec<usize> {
    let l = loads(a);
    live.iter()
        .map(|m| l.get(&m.id).copied().unwrap_or(0))
        .collect()
}

/// NEs whose previous owner is live and that changed owner: the moves stability is about.
fn moves_of_live(prev: &Assignment, next: &Assignment, live: &[Member]) -> usize {
    diff(prev, next)
        .iter()
        .filter(|m| m.from.is_some_and(|f| live.iter().any(|x| x.id == f)))
        .count()
}

#[test]
fn nobody_live_means_nobody_owns() {
    assert!(run(&unpinned(5), &[], &BTreeMap::new()).is_empty());
    assert!(run(&vec![], &equal(&[1, 2]), &BTreeMap::new()).is_empty());
}

#[test]
fn fresh_assignment_is_balanced_lowest_ids_round_up() {
    let live = equal(&[1, 2, 3]);
    let a = run(&unpinned(10), &live, &BTreeMap::new());
    assert_eq!(load_vec(&a, &live), vec![4, 3, 3]);
    assert_eq!(a.len(), 10);
}

#[test]
fn pins_are_honoured_and_count_toward_load() {
    let mut inv = unpinned(6);
    inv[4].1 = Some(s(1));
    inv[5].1 = Some(s(1));
    let live = equal(&[1, 2]);
    let a = run(&inv, &live, &BTreeMap::new());
    assert_eq!(a[&ne(4)], s(1));
    assert_eq!(a[&ne(5)], s(1));
    assert_eq!(load_vec(&a, &live), vec![3, 3]);
}

#[test]
fn over_pinned_member_holds_only_its_pins() {
    let mut inv = unpinned(7);
    for x in inv.iter_mut().take(5) {
        x.1 = Some(s(1));
    }
    let live = equal(&[1, 2, 3]);
    let a = run(&inv, &live, &BTreeMap::new());
    assert_eq!(load_vec(&a, &live), vec![5, 1, 1]);
}

#[test]
fn pin_to_a_dead_member_floats_and_returns_with_it() {
    let mut inv = unpinned(4);
    inv[0].1 = Some(s(9));
    let a = run(&inv, &equal(&[1, 2]), &BTreeMap::new());
    assert_ne!(a[&ne(0)], s(9));
    let b = run(&inv, &equal(&[1, 2, 9]), &a);
    assert_eq!(b[&ne(0)], s(9));
}

#[test]
fn weights_share_proportionally() {
    let live = vec![Member::weighted(s(1), 2), Member::weighted(s(2), 1)];
    let a = run(&unpinned(9), &live, &BTreeMap::new());
    assert_eq!(load_vec(&a, &live), vec![6, 3]);
    let live = vec![Member::weighted(s(1), 3), Member::weighted(s(2), 1)];
    let a = run(&unpinned(10), &live, &BTreeMap::new());
    // Shares 7.5 and 2.5: either may round up; the larger remainder ties, lowest id wins.
    assert_eq!(load_vec(&a, &live), vec![8, 2]);
}

#[test]
fn zero_weight_drains_all_zero_shares_equally() {
    let mut inv = unpinned(6);
    inv[0].1 = Some(s(2));
    let live = vec![Member::weighted(s(1), 1), Member::weighted(s(2), 0)];
    let a = run(&inv, &live, &BTreeMap::new());
    assert_eq!(load_vec(&a, &live), vec![5, 1]);
    let live = vec![Member::weighted(s(1), 0), Member::weighted(s(2), 0)];
    let a = run(&unpinned(6), &live, &BTreeMap::new());
    assert_eq!(load_vec(&a, &live), vec![3, 3]);
}

#[test]
fn duplicates_and_stale_previous_entries_are_harmless() {
    let inv = vec![
        ("a".into(), Some(s(2))),
        ("a".into(), Some(s(1))),
        ("b".into(), None),
    ];
    let live = vec![
        Member::weighted(s(1), 7),
        Member::new(s(2)),
        Member::weighted(s(2), 7),
    ];
    let prev: Assignment = [("gone".into(), s(1)), ("b".into(), s(5))].into();
    let a = run(&inv, &live, &prev);
    assert_eq!(a, [("a".into(), s(2)), ("b".into(), s(1))].into());
}

#[test]
fn a_dead_members_nes_and_only_those_move() {
    let live = equal(&[1, 2, 3]);
    let a = run(&unpinned(12), &live, &BTreeMap::new());
    let survivors = equal(&[1, 3]);
    let b = run(&unpinned(12), &survivors, &a);
    for m in diff(&a, &b) {
        assert_eq!(m.from, Some(s(2)));
    }
    assert_eq!(diff(&a, &b).len(), 4);
    assert_eq!(load_vec(&b, &survivors), vec![6, 6]);
}

#[test]
fn a_joining_member_takes_exactly_its_share() {
    let a = run(&unpinned(12), &equal(&[1, 2]), &BTreeMap::new());
    let live = equal(&[1, 2, 3]);
    let b = run(&unpinned(12), &live, &a);
    let moves = diff(&a, &b);
    assert_eq!(moves.len(), 4);
    assert!(moves.iter().all(|m| m.to == s(3)));
    assert_eq!(load_vec(&b, &live), vec![4, 4, 4]);
}

#[test]
fn diff_reports_new_and_moved_not_unchanged_or_removed() {
    let prev: Assignment = [("a".into(), s(1)), ("b".into(), s(1)), ("c".into(), s(2))].into();
    let next: Assignment = [("a".into(), s(1)), ("b".into(), s(2)), ("d".into(), s(2))].into();
    assert_eq!(
        diff(&prev, &next),
        vec![
            Move {
                element: "b".into(),
                from: Some(s(1)),
                to: s(2)
            },
            Move {
                element: "d".into(),
                from: None,
                to: s(2)
            },
        ]
    );
}

#[test]
fn assign_elements_reads_name_and_pin() {
    let e = |name: &str, pin| Element {
        name: name.into(),
        address: "127.0.0.1:161".into(),
        protocol: Default::default(),
        credential: "public".into(),
        interval: None,
        pin,
    };
    let inv = [e("x", Some(s(2))), e("y", None)];
    let a = assign_elements(&inv, &equal(&[1, 2]), &BTreeMap::new());
    assert_eq!(a, [("x".into(), s(2)), ("y".into(), s(1))].into());
}

#[test]
fn member_weight_defaults_to_one() {
    let m: Member = serde_json::from_str(r#"{"id":4}"#).unwrap();
    assert_eq!(m, Member::new(s(4)));
}

#[test]
fn hold_down_delays_a_returning_member() {
    let mut h = HoldDown::new(100);
    let cur: Assignment = [("a".into(), s(1)), ("b".into(), s(2))].into();
    h.observe(0, &[s(1), s(2), s(3)]);
    // Incumbents at once, the newcomer after its hold.
    assert_eq!(h.eligible(0, &cur), vec![s(1), s(2)]);
    assert_eq!(h.next_change(0), Some(100));
    assert_eq!(h.eligible(99, &cur), vec![s(1), s(2)]);
    assert_eq!(h.eligible(100, &cur), vec![s(1), s(2), s(3)]);
    assert_eq!(h.next_change(100), None);
    // 3 flaps: its streak starts over.
    h.observe(150, &[s(1), s(2)]);
    h.observe(160, &[s(1), s(2), s(3)]);
    assert_eq!(h.eligible(200, &cur), vec![s(1), s(2)]);
    assert_eq!(h.next_change(200), Some(260));
    assert_eq!(h.eligible(260, &cur), vec![s(1), s(2), s(3)]);
}

#[test]
fn hold_down_never_leaves_nes_without_owners() {
    let mut h = HoldDown::new(100);
    h.observe(0, &[s(1), s(2)]);
    assert_eq!(h.eligible(0, &BTreeMap::new()), vec![s(1), s(2)]);
    // The only owner died; the newcomers take over at once.
    let cur: Assignment = [("a".into(), s(9))].into();
    assert_eq!(h.eligible(1, &cur), vec![s(1), s(2)]);
}

/// Ids 1..=8, `n` NEs, random pins, random previous owners (some dead), random weights.
fn scenario(
    weighted: bool,
    pins: bool,
) -> impl Strategy<Value = (Inventory, Vec<Member>, Assignment)> {
    let member = (1u32..=8, if weighted { 0u32..=4 } else { 1u32..=1 });
    (
        proptest::collection::vec(member, 1..=8),
        proptest::collection::vec(
            (
                proptest::option::weighted(0.25, 1u32..=8),
                proptest::option::of(1u32..=8),
            ),
            0..=60,
        ),
    )
        .prop_map(move |(members, nes)| {
            let live = members
                .into_iter()
                .map(|(id, w)| Member::weighted(s(id), w))
                .collect();
            let mut inv = Vec::new();
            let mut prev = BTreeMap::new();
            for (i, (pin, owner)) in nes.into_iter().enumerate() {
                inv.push((ne(i), pin.filter(|_| pins).map(s)));
                if let Some(o) = owner {
                    prev.insert(ne(i), s(o));
                }
            }
            (inv, live, prev)
        })
}

/// The members as `assign` sees them: largest weight of each id, all-zero weights read as equal.
fn effective(live: &[Member]) -> Vec<Member> {
    let mut seen = BTreeMap::new();
    for m in live {
        let w = seen.entry(m.id).or_insert(m.weight);
        *w = (*w).max(m.weight);
    }
    let all_zero = seen.values().all(|&w| w == 0);
    seen.into_iter()
        .map(|(id, w)| Member::weighted(id, if all_zero { 1 } else { w }))
        .collect()
}

fn check_total(inv: &Inventory, live: &[Member], a: &Assignment) -> Result<(), TestCaseError> {
    let names: BTreeSet<&Arc<str>> = inv.iter().map(|(n, _)| n).collect();
    prop_assert_eq!(a.keys().collect::<BTreeSet<_>>(), names);
    for (name, pin) in inv {
        prop_assert!(live.iter().any(|m| m.id == a[name]));
        if let Some(p) = pin.filter(|p| live.iter().any(|m| m.id == *p)) {
            prop_assert_eq!(a[name], p);
        }
    }
    Ok(())
}

/// No NE that is free to move could go to another member without that member ending further
/// above its weighted share than the giver is: `(load_a - 1) / w_a < (load_b + 1) / w_b`.
fn check_balance(inv: &Inventory, live: &[Member], a: &Assignment) -> Result<(), TestCaseError> {
    let members = effective(live);
    let l = loads(a);
    let load = |id: ServerId| l.get(&id).copied().unwrap_or(0) as u64;
    let live_pin = |p: &Option<ServerId>| p.filter(|p| members.iter().any(|m| m.id == *p));
    for x in &members {
        let floating = a
            .iter()
            .filter(|&(name, owner)| {
                *owner == x.id
                    && live_pin(&inv.iter().find(|(n, _)| n == name).unwrap().1).is_none()
            })
            .count();
        if floating == 0 {
            continue;
        }
        prop_assert!(x.weight > 0, "{} has no capacity but floating NEs", x.id);
        for y in members.iter().filter(|y| y.id != x.id) {
            prop_assert!(
                (load(x.id) - 1) * u64::from(y.weight) < (load(y.id) + 1) * u64::from(x.weight),
                "{} ({}/{}) could give to {} ({}/{})",
                x.id,
                load(x.id),
                x.weight,
                y.id,
                load(y.id),
                y.weight
            );
        }
    }
    Ok(())
}

fn shuffled<T: Clone + std::fmt::Debug>(v: Vec<T>) -> impl Strategy<Value = (Vec<T>, Vec<T>)> {
    Just(v.clone())
        .prop_shuffle()
        .prop_map(move |w| (v.clone(), w))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_ne_has_exactly_one_live_owner_and_pins_hold(
        (inv, live, prev) in scenario(true, true)
    ) {
        let a = run(&inv, &live, &prev);
        check_total(&inv, &live, &a)?;
    }

    #[test]
    fn equal_weights_without_pins_differ_by_at_most_one(
        (inv, live, prev) in scenario(false, false)
    ) {
        let a = run(&inv, &live, &prev);
        let members = effective(&live);
        let l = load_vec(&a, &members);
        prop_assert!(l.iter().max().unwrap() - l.iter().min().unwrap() <= 1, "{:?}", l);
    }

    #[test]
    fn weighted_loads_are_within_one_of_their_share(
        (inv, live, prev) in scenario(true, false)
    ) {
        let a = run(&inv, &live, &prev);
        let members = effective(&live);
        let total = inv.len() as u64;
        let weight: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
        for (m, l) in members.iter().zip(load_vec(&a, &members)) {
            let share = total * u64::from(m.weight);
            let (lo, hi) = (share / weight, share.div_ceil(weight));
            prop_assert!((lo..=hi).contains(&(l as u64)), "{} holds {} of share {}/{}", m.id, l, share, weight);
        }
    }

    #[test]
    fn pins_and_weights_leave_nothing_to_rebalance((inv, live, prev) in scenario(true, true)) {
        let a = run(&inv, &live, &prev);
        check_balance(&inv, &live, &a)?;
    }

    /// The fewest possible moves: forced ones (a pin) plus, for the best choice of who rounds
    /// up, every live member's surplus over its target. The choice is brute-forced here.
    #[test]
    fn moves_are_the_minimum_balance_allows((inv, live, prev) in scenario(true, true)) {
        let a = run(&inv, &live, &prev);
        let members = effective(&live);
        let ids: Vec<ServerId> = members.iter().map(|m| m.id).collect();
        let weights: Vec<u32> = members.iter().map(|m| m.weight).collect();
        let live_pin = |p: Option<ServerId>| p.filter(|p| ids.contains(p));
        let mut pinned = vec![0u64; ids.len()];
        let mut held = vec![0u64; ids.len()];
        let mut forced = 0;
        for (name, pin) in &inv {
            let owner = prev.get(name).and_then(|o| ids.iter().position(|i| i == o));
            match (live_pin(*pin).map(|p| ids.iter().position(|&i| i == p).unwrap()), owner) {
                (Some(p), Some(o)) if p != o => forced += 1,
                (Some(_), _) | (None, None) => {}
                (None, Some(o)) => held[o] += 1,
            }
            if let Some(p) = live_pin(*pin) {
                pinned[ids.iter().position(|&i| i == p).unwrap()] += 1;
            }
        }
        let held: Vec<u64> = (0..ids.len()).map(|i| held[i] + pinned[i]).collect();
        let (quotas, round_ups) = quotas(inv.len() as u64, &weights, &pinned);
        let candidates: Vec<usize> = (0..ids.len()).filter(|&i| quotas[i].may_round_up).collect();
        let mut best = u64::MAX;
        for subset in 0u32..(1 << candidates.len()) {
            if u64::from(subset.count_ones()) != round_ups {
                continue;
            }
            let cost: u64 = (0..ids.len())
                .map(|i| {
                    let up = candidates.iter().position(|&c| c == i).is_some_and(|b| subset >> b & 1 == 1);
                    held[i].saturating_sub(quotas[i].floor + u64::from(up))
                })
                .sum();
            best = best.min(cost);
        }
        prop_assert_eq!(moves_of_live(&prev, &a, &members) as u64, forced + best);
    }

    #[test]
    fn input_order_does_not_matter(
        ((inv, inv2), (live, live2)) in scenario(true, true).prop_flat_map(|(inv, live, _)| (shuffled(inv), shuffled(live))),
        seed in 0usize..60,
    ) {
        let prev: Assignment = inv.iter().enumerate().filter(|(i, _)| i % 3 == seed % 3).map(|(i, (n, _))| (n.clone(), s((i + seed) as u32 % 8 + 1))).collect();
        prop_assert_eq!(run(&inv, &live, &prev), run(&inv2, &live2, &prev));
    }

    #[test]
    fn an_assignment_is_its_own_fixpoint((inv, live, prev) in scenario(true, true)) {
        let a = run(&inv, &live, &prev);
        prop_assert_eq!(run(&inv, &live, &a), a);
    }

    #[test]
    fn joining_takes_exactly_the_surplus_and_leaving_moves_only_the_leavers_nes(
        n in 0usize..80,
        k in 1u32..=7,
        pick in 0u32..8,
        keys in proptest::collection::vec(any::<u16>(), 8),
    ) {
        let inv = unpinned(n);
        // Balanced, built by hand so that any members may be the ones holding an extra NE.
        let mut order: Vec<u32> = (1..=k).collect();
        order.sort_by_key(|&m| keys[m as usize - 1]);
        let (q, r) = (n / k as usize, n % k as usize);
        let mut names = (0..n).map(ne);
        let mut a = Assignment::new();
        for (j, &m) in order.iter().enumerate() {
            for name in names.by_ref().take(q + usize::from(j < r)) {
                a.insert(name, s(m));
            }
        }
        prop_assert_eq!(run(&inv, &equal(&(1..=k).collect::<Vec<_>>()), &a), a.clone());
        let after = equal(&(1..=k + 1).collect::<Vec<_>>());
        let b = run(&inv, &after, &a);
        let moves = diff(&a, &b);
        prop_assert!(moves.iter().all(|m| m.to == s(k + 1)));
        prop_assert_eq!(moves.len(), n / (k as usize + 1));
        prop_assert_eq!(moves.len(), loads(&b).get(&s(k + 1)).copied().unwrap_or(0));

        let gone = pick % (k + 1) + 1;
        let rest: Vec<u32> = (1..=k + 1).filter(|&i| i != gone).collect();
        let c = run(&inv, &equal(&rest), &b);
        prop_assert!(diff(&b, &c).iter().all(|m| m.from == Some(s(gone))));
        let l = load_vec(&c, &equal(&rest));
        prop_assert!(l.iter().max().unwrap() - l.iter().min().unwrap() <= 1);
    }
}
