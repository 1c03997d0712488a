use super::*;
use crate::model::Protocol;
use proptest::prelude::*;

const MASTER: ServerId = ServerId(3);
/// Term 5 of the claim rounds, claimed by server 3.
const TERM: u64 = (5 << 32) | 3;

fn el(i: u16, rev: u8) -> Element {
    Element {
        name: format!("ne{i:03}").into(),
        address: format!("127.0.0.{}:{}", rev % 200 + 1, 1000 + i).into(),
        protocol: Protocol::default(),
        credential: "public".into(),
        interval: None,
        pin: None,
    }
}

fn id(version: u64) -> AssignmentId {
    AssignmentId {
        term: TERM,
        version,
    }
}

fn auth() -> Authority {
    Authority {
        term: TERM,
        master: Some(MASTER),
    }
}

/// One step of the master's inventory: add/redefine element `i` (owned by `owner`), or
/// remove it.
#[derive(Debug, Clone)]
enum Step {
    Put {
        i: u16,
        rev: u8,
        owner: u32,
    },
    Remove {
        i: u16,
    },
    Move {
        i: u16,
        owner: u32,
    },
    /// Sets (or, with `rev` 0, removes) credential profile `p{i}`.
    Cred {
        i: u8,
        rev: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u16..40, any::<u8>(), 1u32..4).prop_map(|(i, rev, owner)| Step::Put { i, rev, owner }),
        (0u16..40).prop_map(|i| Step::Remove { i }),
        (0u16..40, 1u32..4).prop_map(|(i, owner)| Step::Move { i, owner }),
        (0u8..3, 0u8..4).prop_map(|(i, rev)| Step::Cred { i, rev }),
    ]
}

fn apply_step(a: &Assignment, s: &Step, version: u64) -> Assignment {
    let mut elements: BTreeMap<Arc<str>, Element> = a
        .elements
        .iter()
        .map(|e| (e.name.clone(), e.clone()))
        .collect();
    let mut owners = a.owners.clone();
    let mut credentials = a.credentials.clone();
    match *s {
        Step::Put { i, rev, owner } => {
            let e = el(i, rev);
            owners.insert(e.name.clone(), ServerId(owner));
            elements.insert(e.name.clone(), e);
        }
        Step::Remove { i } => {
            let name: Arc<str> = el(i, 0).name;
            elements.remove(&name);
            owners.remove(&name);
        }
        Step::Move { i, owner } => {
            let name: Arc<str> = el(i, 0).name;
            if elements.contains_key(&name) {
                owners.insert(name, ServerId(owner));
            }
        }
        Step::Cred { i, rev } => {
            let set = credentials.get_or_insert_with(Credentials::new);
            if rev == 0 {
                set.remove(&format!("p{i}"));
            } else {
                set.insert(
                    format!("p{i}"),
                    crate::config::Credential::V2c {
                        community: crate::config::Secret::new(format!("c{rev}")),
                    },
                );
            }
        }
    }
    Assignment {
        id: id(version),
        elements: elements.into_values().collect(),
        owners,
        credentials,
    }
}

/// The master's side: a run of assignments, each one's delta kept in the history.
fn master_run(steps: &[Step], history: &mut History) -> Vec<Assignment> {
    let mut all = vec![Assignment {
        id: id(1),
        ..Assignment::default()
    }];
    for (n, s) in steps.iter().enumerate() {
        let prev = all.last().cloned().unwrap_or_default();
        let next = apply_step(&prev, s, n as u64 + 2);
        history.record(diff(&prev, &next));
        all.push(next);
    }
    all
}

/// What the master sends a member it believes holds `base`.
fn messages_for(base: AssignmentId, top: &Assignment, history: &History) -> Vec<Msg> {
    match history.since(base) {
        Some(deltas) if base != top.id => vec![Msg::Push(Push {
            from: MASTER,
            base,
            id: top.id,
            deltas,
            handover: Handover::default(),
        })],
        _ if base == top.id => vec![Msg::Push(Push {
            from: MASTER,
            base,
            id: top.id,
            deltas: vec![],
            handover: Handover::default(),
        })],
        _ => chunks(MASTER, top, Handover::default(), 300)
            .into_iter()
            .map(Msg::Chunk)
            .collect(),
    }
}

#[derive(Debug, Clone)]
enum Msg {
    Push(Push),
    Chunk(Chunk),
}

#[derive(Default)]
struct Member {
    held: Assignment,
    staging: Staging,
}

impl Member {
    fn deliver(&mut self, auth: Authority, m: Msg) -> Result<(), Refusal> {
        let r = match m {
            Msg::Push(p) => on_push(&self.held, auth, p),
            Msg::Chunk(c) => self.staging.on_chunk(&self.held, auth, c),
        }?;
        if let Some((a, _)) = r
            && a.id >= self.held.id
        {
            self.held = a;
        }
        Ok(())
    }
}

/// A message as a non-master would forge it: any sender but the master, or the master's id
/// at another term, with arbitrary versions and contents.
fn forged() -> impl Strategy<Value = Msg> {
    let sender = prop_oneof![
        (1u32..3).prop_map(|s| (ServerId(s), TERM)),
        (1u32..3).prop_map(|s| (ServerId(s), (5 << 32) | u64::from(s))),
        (1u32..5).prop_map(|s| (ServerId(s), (6 << 32) | u64::from(s))),
        Just((MASTER, (4 << 32) | 3)),
        Just((MASTER, (9 << 32) | 3)),
        Just((MASTER, u64::MAX)),
        Just((MASTER, 0)),
    ];
    (
        sender,
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        prop::collection::vec(step(), 0..4),
    )
        .prop_map(|((from, term), base, version, chunk, steps)| {
            let target = AssignmentId { term, version };
            let mut a = Assignment {
                id: target,
                ..Assignment::default()
            };
            for s in &steps {
                a = apply_step(&a, s, version);
                a.id = target;
            }
            if chunk {
                Msg::Chunk(Chunk {
                    from,
                    id: target,
                    index: 0,
                    last: true,
                    elements: a.elements,
                    owners: a.owners.into_iter().collect(),
                    handover: Handover::default(),
                    credentials: a.credentials,
                })
            } else {
                let base = AssignmentId {
                    term,
                    version: base,
                };
                Msg::Push(Push {
                    from,
                    base,
                    id: target,
                    deltas: vec![Delta {
                        base,
                        id: target,
                        upsert: a.elements,
                        remove: vec![],
                        owners: a.owners.into_iter().collect(),
                        unowned: vec![],
                        credentials: a.credentials,
                    }],
                    handover: Handover::default(),
                })
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Members see the master's pushes reordered, duplicated and mixed with forgeries; a
    /// forgery never changes anything; one repair round from their acks makes every member hold
    /// exactly the master's newest assignment.
    #[test]
    fn members_converge_and_ignore_non_masters(
        steps in prop::collection::vec(step(), 1..30),
        // Per member: which of the master's versions it was believed to hold for each push.
        sends in prop::collection::vec((0usize..3, any::<prop::sample::Index>(), any::<bool>()), 0..60),
        forgeries in prop::collection::vec((0usize..3, forged()), 0..20),
        order in any::<prop::sample::Index>(),
        history_cap in 5usize..200,
    ) {
        let mut history = History::new(history_cap);
        let all = master_run(&steps, &mut history);
        let top = all.last().cloned().unwrap_or_default();
        let mut members: Vec<Member> = (0..3).map(|_| Member::default()).collect();
        // The network: genuine messages (built for a base the master believed, possibly
        // wrong), duplicated, plus forgeries; then shuffled.
        let mut wire: Vec<(usize, Msg, bool)> = Vec::new();
        for (m, version, dup) in sends {
            let base = all[version.index(all.len())].id;
            for msg in messages_for(base, &top, &history) {
                if dup {
                    wire.push((m, msg.clone(), true));
                }
                wire.push((m, msg, true));
            }
        }
        for (m, f) in forgeries {
            wire.push((m, f, false));
        }
        let n = wire.len().max(1);
        let rot = order.index(n);
        wire.rotate_left(rot);
        // A deterministic shuffle from the rotation: interleave the two halves.
        let (a, b) = wire.split_at(wire.len() / 2);
        let mut shuffled = Vec::new();
        for i in 0..a.len().max(b.len()) {
            if let Some(x) = b.get(i) { shuffled.push(x.clone()); }
            if let Some(x) = a.get(i) { shuffled.push(x.clone()); }
        }
        for (m, msg, genuine) in shuffled {
            let before = members[m].held.clone();
            let r = members[m].deliver(auth(), msg);
            if !genuine {
                prop_assert!(
                    matches!(r, Err(Refusal::NotMaster { .. } | Refusal::StaleTerm { .. } | Refusal::UnknownTerm { .. })),
                    "forgery obeyed: {r:?}"
                );
                prop_assert_eq!(&members[m].held, &before, "a forgery changed the held assignment");
            }
            // Whatever a member holds is one of the master's versions, never a mixture.
            prop_assert!(
                all.contains(&members[m].held) || members[m].held == Assignment::default(),
                "member holds a version the master never made: {:?}", members[m].held.id
            );
        }
        // Repair: the master sends each member what it acknowledged holding, in order.
        for member in &mut members {
            for msg in messages_for(member.held.id, &top, &history) {
                member.deliver(auth(), msg).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            }
            prop_assert_eq!(&member.held, &top);
        }
    }

    /// A snapshot cut into chunks of any size comes back whole, and the bytes of one delta
    /// for a single-element change do not grow with the inventory.
    #[test]
    fn chunks_reassemble_and_single_changes_are_small(n in 0u16..300, max in 1usize..4000) {
        let mut a = Assignment { id: id(7), ..Assignment::default() };
        for i in 0..n {
            a = apply_step(&a, &Step::Put { i: i % 40 + 40 * (i / 40), rev: 1, owner: u32::from(i % 3) + 1 }, 7);
        }
        let mut st = Staging::default();
        let mut got = None;
        let parts = chunks(MASTER, &a, Handover::default(), max);
        prop_assert!(parts.last().is_some_and(|c| c.last));
        for c in parts {
            if let Some(r) = st.on_chunk(&Assignment::default(), auth(), c).map_err(|e| TestCaseError::fail(e.to_string()))? {
                got = Some(r.0);
            }
        }
        prop_assert_eq!(got.as_ref(), Some(&a));
        let next = apply_step(&a, &Step::Put { i: 999, rev: 2, owner: 1 }, 8);
        let bytes = serde_json::to_vec(&diff(&a, &next)).map(|b| b.len()).unwrap_or(usize::MAX);
        prop_assert!(bytes < 400, "one added element cost {bytes} bytes");
    }
}

#[test]
fn a_chunk_out_of_order_or_from_another_sender_restarts_nothing() {
    let mut a = Assignment {
        id: id(2),
        ..Assignment::default()
    };
    for i in 0..50 {
        a = apply_step(
            &a,
            &Step::Put {
                i,
                rev: 0,
                owner: 1,
            },
            2,
        );
    }
    let parts = chunks(MASTER, &a, Handover::default(), 200);
    assert!(parts.len() > 3);
    let held = Assignment::default();
    let mut st = Staging::default();
    assert!(matches!(
        st.on_chunk(&held, auth(), parts[0].clone()),
        Ok(None)
    ));
    // Chunk 2 before 1: refused, and the partial snapshot is dropped.
    assert!(matches!(
        st.on_chunk(&held, auth(), parts[2].clone()),
        Err(Refusal::ChunkOrder { .. })
    ));
    assert!(matches!(
        st.on_chunk(&held, auth(), parts[1].clone()),
        Err(Refusal::ChunkOrder { .. })
    ));
    // A forged chunk 0 from a non-master is refused without touching a transfer in progress.
    let mut st = Staging::default();
    assert!(matches!(
        st.on_chunk(&held, auth(), parts[0].clone()),
        Ok(None)
    ));
    let mut forged = parts[1].clone();
    forged.from = ServerId(2);
    assert!(matches!(
        st.on_chunk(&held, auth(), forged),
        Err(Refusal::NotMaster { .. })
    ));
    let mut got = None;
    for c in parts.into_iter().skip(1) {
        got = st.on_chunk(&held, auth(), c).expect("in order");
    }
    assert_eq!(got.map(|r| r.0), Some(a));
}

#[test]
fn authority_needs_the_followed_master_at_the_newest_term_it_claimed() {
    let a = auth();
    assert_eq!(a.check(MASTER, TERM), Ok(()));
    assert!(matches!(
        a.check(ServerId(2), TERM),
        Err(Refusal::NotMaster { .. })
    ));
    // Server 3 following itself, but a term claimed by server 2 carries another claimant.
    let claimed_by_2 = Authority {
        term: (5 << 32) | 2,
        master: Some(MASTER),
    };
    assert!(matches!(
        claimed_by_2.check(MASTER, (5 << 32) | 2),
        Err(Refusal::NotMaster { .. })
    ));
    assert!(matches!(
        a.check(MASTER, TERM - 1),
        Err(Refusal::StaleTerm { .. })
    ));
    assert!(matches!(
        a.check(MASTER, u64::MAX),
        Err(Refusal::UnknownTerm { .. })
    ));
    let no_master = Authority {
        term: TERM,
        master: None,
    };
    assert!(no_master.check(MASTER, TERM).is_err());
}

#[test]
fn history_is_bounded_and_a_gap_starts_it_over() {
    let mut h = History::new(3);
    let steps: Vec<Step> = (0..10)
        .map(|i| Step::Put {
            i,
            rev: 0,
            owner: 1,
        })
        .collect();
    let all = master_run(&steps, &mut h);
    // Each step touched 2 entries (upsert + owner): only the newest delta fits the bound.
    assert!(h.since(all[0].id).is_none());
    assert_eq!(h.since(all[9].id).map(|d| d.len()), Some(1));
    h.record(Delta {
        base: id(100),
        id: id(101),
        ..Delta::default()
    });
    assert!(h.since(all[9].id).is_none());
    assert_eq!(h.since(id(100)).map(|d| d.len()), Some(1));
}
