//! Property tests of the election core under hostile input: a member (or whoever holds its
//! credentials) sends arbitrary messages with arbitrary terms, including `u64::MAX`, claims of
//! other members' terms and huge jumps, while the honest members' own messages are reordered,
//! duplicated and dropped. Whatever happens: no two masters in one term, no term ever
//! decreases on any member, no term passes `MAX_TERM`, and an out-of-range term changes nothing.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    /// Deliver the queued honest message at this index (modulo the queue); `keep` leaves a
    /// copy queued, so it is delivered again later (duplication).
    Deliver {
        index: usize,
        keep: bool,
    },
    /// Drop a queued honest message.
    Drop {
        index: usize,
    },
    /// The hostile member sends `msg` to member `to` (indexes modulo the pool), claiming to
    /// be `from` (0: itself; else, modulo the pool plus one, any other member or a stranger),
    /// as it can where no certificate binds the sender.
    Hostile {
        from: usize,
        to: usize,
        msg: Message,
    },
    Timeout {
        node: usize,
        timer: Timer,
    },
    PeerDown {
        node: usize,
        peer: usize,
    },
}

fn term() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(MAX_TERM),
        Just(MAX_TERM + 1),
        Just(0u64),
        0u64..(8 << 32),
        any::<u64>(),
        // Small epochs owned by small ids: plausible terms that collide with honest ones.
        (0u64..6, 1u64..6).prop_map(|(e, id)| (e << 32) | id),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    term().prop_flat_map(|term| {
        prop_oneof![
            Just(Message::Election { term }),
            Just(Message::Answer { term }),
            Just(Message::Coordinator { term }),
            Just(Message::Heartbeat { term }),
        ]
    })
}

fn timer() -> impl Strategy<Value = Timer> {
    prop_oneof![
        Just(Timer::FailureDetect),
        Just(Timer::AnswerWait),
        Just(Timer::CoordinatorWait),
        Just(Timer::Heartbeat),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<usize>(), any::<bool>()).prop_map(|(index, keep)| Op::Deliver { index, keep }),
        1 => any::<usize>().prop_map(|index| Op::Drop { index }),
        2 => (any::<usize>(), message()).prop_map(|(to, msg)| Op::Hostile { from: 0, to, msg }),
        1 => (any::<usize>(), any::<usize>(), message())
            .prop_map(|(from, to, msg)| Op::Hostile { from: from | 1, to, msg }),
        2 => (any::<usize>(), timer()).prop_map(|(node, timer)| Op::Timeout { node, timer }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(node, peer)| Op::PeerDown { node, peer }),
    ]
}

struct Pool {
    ids: Vec<ServerId>,
    /// The honest members (every id but the hostile one).
    nodes: BTreeMap<ServerId, Election>,
    hostile: ServerId,
    queue: Vec<(ServerId, ServerId, Message)>,
    /// Who was master (by its own word or a follower's) of each term.
    masters: BTreeMap<u64, ServerId>,
}

impl Pool {
    fn new(n: u32, hostile: u32) -> Pool {
        let ids: Vec<ServerId> = (1..=n).map(ServerId).collect();
        let nodes = ids
            .iter()
            .filter(|id| id.0 != hostile)
            .map(|&id| (id, Election::new(id, ids.clone(), 0).with_max_jump(64)))
            .collect();
        Pool {
            ids,
            nodes,
            hostile: ServerId(hostile),
            queue: Vec::new(),
            masters: BTreeMap::new(),
        }
    }

    fn input(&mut self, at: ServerId, input: Input) -> Result<(), TestCaseError> {
        let Some(node) = self.nodes.get_mut(&at) else {
            return Ok(());
        };
        let before = node.term();
        let actions = node.handle(input);
        let after = node.term();
        prop_assert!(
            after >= before,
            "term of {at} went from {before} to {after}"
        );
        prop_assert!(after <= MAX_TERM, "term of {at} is {after}");
        let mut persisted = before;
        for a in actions {
            match a {
                Action::PersistTerm(t) => {
                    prop_assert!(t >= persisted && t <= MAX_TERM, "{at} persisted {t}");
                    persisted = t;
                }
                Action::BecameMaster { term } => self.master_of(term, at)?,
                Action::Follow { master, term } => self.master_of(term, master)?,
                Action::Send { to, msg } => self.queue.push((at, to, msg)),
                Action::Broadcast(msg) => {
                    for &to in &self.ids {
                        if to != at {
                            self.queue.push((at, to, msg));
                        }
                    }
                }
                Action::SetTimer(_) | Action::CancelTimer(_) | Action::NoMaster => {}
            }
        }
        Ok(())
    }

    fn master_of(&mut self, term: u64, who: ServerId) -> Result<(), TestCaseError> {
        prop_assert_eq!(term_owner(term), who, "term {} claimed for {}", term, who);
        let first = *self.masters.entry(term).or_insert(who);
        prop_assert_eq!(first, who, "two masters in term {}", term);
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        let n = self.ids.len();
        match op {
            Op::Deliver { index, keep } if !self.queue.is_empty() => {
                let i = index % self.queue.len();
                let (from, to, msg) = if keep {
                    self.queue[i]
                } else {
                    self.queue.swap_remove(i)
                };
                self.input(to, Input::Receive { from, msg })?;
            }
            Op::Drop { index } if !self.queue.is_empty() => {
                let i = index % self.queue.len();
                self.queue.swap_remove(i);
            }
            Op::Deliver { .. } | Op::Drop { .. } => {}
            Op::Hostile { from, to, msg } => {
                let to = self.ids[to % n];
                // 0: the hostile member as itself; else any member's id, or a stranger's.
                let from = match from % (n + 1) {
                    0 => self.hostile,
                    i if i == n => ServerId(99),
                    i => self.ids[i],
                };
                let before = self
                    .nodes
                    .get(&to)
                    .map(|e| (e.term(), e.role(), e.master()));
                self.input(to, Input::Receive { from, msg })?;
                if msg.term() > MAX_TERM {
                    let after = self
                        .nodes
                        .get(&to)
                        .map(|e| (e.term(), e.role(), e.master()));
                    prop_assert_eq!(before, after, "{:?} changed {}", msg, to);
                }
            }
            Op::Timeout { node, timer } => {
                self.input(self.ids[node % n], Input::Timeout(timer))?;
            }
            Op::PeerDown { node, peer } => {
                let peer = self.ids[peer % n];
                self.input(self.ids[node % n], Input::PeerDown(peer))?;
            }
        }
        // The queue is bounded so that a case stays small (the oldest messages are lost).
        if self.queue.len() > 256 {
            self.queue.drain(..self.queue.len() - 256);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn hostile_member_cannot_make_two_masters_or_lower_a_term(
        n in 2u32..=5,
        hostile in 1u32..=5,
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let mut pool = Pool::new(n, hostile.min(n));
        let ids: Vec<ServerId> = pool.nodes.keys().copied().collect();
        for id in ids {
            pool.input(id, Input::Start)?;
        }
        for op in ops {
            pool.apply(op)?;
        }
    }

    /// `u64::MAX` (or anything above `MAX_TERM`) in any message, from any member, in any state:
    /// no term change, no persist, no election.
    #[test]
    fn out_of_range_terms_cause_no_election(
        n in 2u32..=5,
        warmup in proptest::collection::vec(op(), 0..60),
        hostile_terms in proptest::collection::vec(MAX_TERM + 1..=u64::MAX, 1..8),
        kind in 0u8..4,
    ) {
        let mut pool = Pool::new(n, n);
        let ids: Vec<ServerId> = pool.nodes.keys().copied().collect();
        for &id in &ids {
            pool.input(id, Input::Start)?;
        }
        for op in warmup {
            pool.apply(op)?;
        }
        for term in hostile_terms {
            let msg = match kind {
                0 => Message::Election { term },
                1 => Message::Answer { term },
                2 => Message::Coordinator { term },
                _ => Message::Heartbeat { term },
            };
            for &to in &ids {
                let node = pool.nodes.get_mut(&to).expect("honest node");
                let actions = node.handle(Input::Receive { from: ServerId(n), msg });
                prop_assert!(actions.is_empty(), "{:?} to {} made {:?}", msg, to, actions);
            }
        }
    }
}
