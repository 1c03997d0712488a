use super::*;
use Action::*;
use Message::{Answer, Coordinator, Heartbeat};

fn s(id: u32) -> ServerId {
    ServerId(id)
}

/// The next term, far below the bound in every test here.
fn nt(seen: u64, me: ServerId) -> u64 {
    next_term(seen, me).expect("below MAX_TERM")
}

fn pool(me: u32, n: u32, term: u64) -> Election {
    Election::new(s(me), (1..=n).map(ServerId).collect(), term)
}

fn recv(from: u32, msg: Message) -> Input {
    Input::Receive { from: s(from), msg }
}

/// Node `me` of 1..=n, already following `master` at `term`.
fn follower(me: u32, n: u32, master: u32, term: u64) -> Election {
    let mut e = pool(me, n, 0);
    e.handle(recv(master, Coordinator { term }));
    assert_eq!(e.master(), Some(s(master)));
    e
}

/// Node `me` of 1..=n, master after nobody above answered.
fn master(me: u32, n: u32, persisted: u64) -> Election {
    let mut e = pool(me, n, persisted);
    e.handle(Input::Start);
    if !e.is_master() {
        e.handle(Input::Timeout(Timer::AnswerWait));
    }
    assert!(e.is_master());
    e
}

#[test]
fn terms_are_above_what_was_seen_and_name_their_claimant() {
    let t = nt(0, s(7));
    assert_eq!((term_epoch(t), term_owner(t)), (1, s(7)));
    let u = nt(t, s(2));
    assert!(u > t);
    assert_eq!((term_epoch(u), term_owner(u)), (2, s(2)));
    assert_ne!(nt(t, s(3)), nt(t, s(4)));
    assert!(nt(u, s(1)) > nt(t, s(u32::MAX)));
}

#[test]
fn quorum_is_a_strict_majority() {
    assert!(has_quorum(1, 1));
    assert!(!has_quorum(1, 2));
    assert!(has_quorum(2, 2));
    assert!(!has_quorum(1, 3));
    assert!(has_quorum(2, 3));
    assert!(!has_quorum(2, 4));
    assert!(has_quorum(3, 4));
    assert!(has_quorum(3, 5));
    assert!(!has_quorum(0, 0));
}

#[test]
fn new_keeps_the_persisted_term_and_includes_me() {
    let e = Election::new(s(2), vec![s(3), s(1), s(3)], 42);
    assert_eq!(e.term(), 42);
    assert_eq!(e.role(), Role::Idle);
    assert_eq!(e.master(), None);
    assert_eq!(e.master_term(), 0);
    assert_eq!(e.members(), &[s(1), s(2), s(3)]);
    assert_eq!(e.me(), s(2));
}

#[test]
fn highest_id_claims_at_once_on_start() {
    let mut e = pool(3, 3, 0);
    let t = nt(0, s(3));
    assert_eq!(
        e.handle(Input::Start),
        vec![
            PersistTerm(t),
            SetTimer(Timer::Heartbeat),
            Broadcast(Coordinator { term: t }),
            BecameMaster { term: t },
        ]
    );
    assert!(e.is_master());
    assert_eq!((e.master(), e.term(), e.master_term()), (Some(s(3)), t, t));
}

#[test]
fn single_member_pool_is_its_own_master() {
    let mut e = Election::new(s(5), vec![], 0);
    e.handle(Input::Start);
    assert!(e.is_master());
}

#[test]
fn lower_id_asks_the_higher_ones_on_start() {
    let mut e = pool(1, 3, 9);
    assert_eq!(
        e.handle(Input::Start),
        vec![
            SetTimer(Timer::AnswerWait),
            Send {
                to: s(2),
                msg: Message::Election { term: 9 }
            },
            Send {
                to: s(3),
                msg: Message::Election { term: 9 }
            },
        ]
    );
    assert_eq!(e.role(), Role::Electing);
}

#[test]
fn no_answer_means_mastership() {
    let mut e = pool(1, 3, 9);
    e.handle(Input::Start);
    let t = nt(9, s(1));
    assert_eq!(
        e.handle(Input::Timeout(Timer::AnswerWait)),
        vec![
            PersistTerm(t),
            CancelTimer(Timer::AnswerWait),
            SetTimer(Timer::Heartbeat),
            Broadcast(Coordinator { term: t }),
            BecameMaster { term: t },
        ]
    );
}

#[test]
fn an_answer_means_waiting_for_the_coordinator_and_retrying_without_one() {
    let mut e = pool(1, 3, 0);
    e.handle(Input::Start);
    assert_eq!(
        e.handle(recv(3, Answer { term: 0 })),
        vec![
            CancelTimer(Timer::AnswerWait),
            SetTimer(Timer::CoordinatorWait)
        ]
    );
    assert_eq!(e.role(), Role::AwaitingCoordinator);
    // A second answer changes nothing; the stale AnswerWait expiry is ignored.
    assert_eq!(e.handle(recv(2, Answer { term: 0 })), vec![]);
    assert_eq!(e.handle(Input::Timeout(Timer::AnswerWait)), vec![]);
    assert_eq!(
        e.handle(Input::Timeout(Timer::CoordinatorWait)),
        vec![
            CancelTimer(Timer::CoordinatorWait),
            SetTimer(Timer::AnswerWait),
            Send {
                to: s(2),
                msg: Message::Election { term: 0 }
            },
            Send {
                to: s(3),
                msg: Message::Election { term: 0 }
            },
        ]
    );
}

#[test]
fn answers_from_lower_ids_or_outside_an_election_are_ignored() {
    let mut e = pool(2, 3, 0);
    e.handle(Input::Start);
    assert_eq!(e.handle(recv(1, Answer { term: 0 })), vec![]);
    assert_eq!(e.role(), Role::Electing);
    let t = nt(0, s(3));
    let mut f = follower(1, 3, 3, t);
    assert_eq!(f.handle(recv(2, Answer { term: t })), vec![]);
}

#[test]
fn coordinator_from_higher_id_is_followed_and_its_term_persisted() {
    let mut e = pool(1, 3, 0);
    e.handle(Input::Start);
    let t = nt(0, s(3));
    assert_eq!(
        e.handle(recv(3, Coordinator { term: t })),
        vec![
            PersistTerm(t),
            CancelTimer(Timer::AnswerWait),
            SetTimer(Timer::FailureDetect),
            Follow {
                master: s(3),
                term: t
            },
        ]
    );
    assert_eq!(
        (e.role(), e.master(), e.term()),
        (Role::Follower, Some(s(3)), t)
    );
    assert!(!e.is_master());
}

#[test]
fn heartbeats_from_the_master_rearm_the_failure_detector_only() {
    let t = nt(0, s(3));
    let mut e = follower(1, 3, 3, t);
    assert_eq!(
        e.handle(recv(3, Heartbeat { term: t })),
        vec![SetTimer(Timer::FailureDetect)]
    );
}

#[test]
fn only_the_current_masters_commands_are_accepted() {
    let t = nt(0, s(3));
    let mut e = follower(1, 3, 3, t);
    assert!(e.accepts(s(3), t));
    assert!(!e.accepts(s(2), t));
    assert!(!e.accepts(s(3), t - 1));
    // A newer term was heard of: the old claim no longer commands until re-made.
    e.handle(recv(2, Answer { term: t + 1 }));
    assert!(!e.accepts(s(3), t));
    let m = master(3, 3, 0);
    assert!(m.accepts(s(3), m.term()));
    assert!(!pool(1, 3, 0).accepts(s(3), 0));
}

#[test]
fn a_silent_master_triggers_an_election() {
    let t = nt(0, s(3));
    let mut e = follower(1, 3, 3, t);
    assert_eq!(
        e.handle(Input::Timeout(Timer::FailureDetect)),
        vec![
            CancelTimer(Timer::FailureDetect),
            SetTimer(Timer::AnswerWait),
            NoMaster,
            Send {
                to: s(2),
                msg: Message::Election { term: t }
            },
            Send {
                to: s(3),
                msg: Message::Election { term: t }
            },
        ]
    );
    assert_eq!(e.master(), None);
    assert_eq!(e.master_term(), 0);
}

#[test]
fn peer_down_of_the_master_fails_over_at_once_others_are_ignored() {
    let t = nt(0, s(3));
    let mut e = follower(1, 3, 3, t);
    assert_eq!(e.handle(Input::PeerDown(s(2))), vec![]);
    assert!(e.handle(Input::PeerDown(s(3))).contains(&NoMaster));
    assert_eq!(e.role(), Role::Electing);
}

#[test]
fn election_from_lower_id_is_answered_and_joined_when_masterless() {
    let mut e = pool(2, 3, 4);
    assert_eq!(
        e.handle(recv(1, Message::Election { term: 4 })),
        vec![
            Send {
                to: s(1),
                msg: Answer { term: 4 }
            },
            SetTimer(Timer::AnswerWait),
            Send {
                to: s(3),
                msg: Message::Election { term: 4 }
            },
        ]
    );
    // Already electing: answer only.
    assert_eq!(
        e.handle(recv(1, Message::Election { term: 4 })),
        vec![Send {
            to: s(1),
            msg: Answer { term: 4 }
        }]
    );
}

#[test]
fn election_from_lower_id_is_only_answered_when_following_a_current_master() {
    let t = nt(0, s(3));
    let mut e = follower(2, 3, 3, t);
    assert_eq!(
        e.handle(recv(1, Message::Election { term: t })),
        vec![Send {
            to: s(1),
            msg: Answer { term: t }
        }]
    );
    assert_eq!(e.role(), Role::Follower);
}

#[test]
fn election_from_higher_id_is_ignored_but_its_term_kept() {
    let mut e = pool(1, 3, 0);
    assert_eq!(
        e.handle(recv(3, Message::Election { term: 7 })),
        vec![PersistTerm(7)]
    );
    assert_eq!(e.term(), 7);
}

#[test]
fn master_answers_an_election_and_reasserts_itself() {
    let mut m = master(3, 3, 0);
    let t = m.term();
    assert_eq!(
        m.handle(recv(1, Message::Election { term: t })),
        vec![
            Send {
                to: s(1),
                msg: Answer { term: t }
            },
            Send {
                to: s(1),
                msg: Coordinator { term: t }
            },
        ]
    );
}

#[test]
fn master_bullies_a_lower_claimant_with_an_older_term() {
    let mut m = master(3, 3, 0);
    let t = m.term();
    // Epoch 0 claimed by 2: older than the master's term.
    assert_eq!(
        m.handle(recv(2, Heartbeat { term: 2 })),
        vec![Send {
            to: s(2),
            msg: Coordinator { term: t }
        }]
    );
    assert!(m.is_master());
}

#[test]
fn master_outbids_a_lower_claimant_with_a_newer_term() {
    let mut m = master(3, 3, 0);
    let newer = nt(nt(0, s(3)), s(2));
    let t = nt(newer, s(3));
    assert_eq!(
        m.handle(recv(2, Coordinator { term: newer })),
        vec![
            PersistTerm(newer),
            PersistTerm(t),
            SetTimer(Timer::Heartbeat),
            Broadcast(Coordinator { term: t }),
            BecameMaster { term: t },
        ]
    );
    assert_eq!((m.term(), m.master_term()), (t, t));
}

#[test]
fn master_outbids_a_newer_term_heard_in_an_election() {
    let mut m = master(3, 3, 0);
    let newer = nt(m.term(), s(1));
    let actions = m.handle(recv(1, Message::Election { term: newer }));
    let t = nt(newer, s(3));
    assert_eq!(actions.last(), Some(&BecameMaster { term: t }));
    assert!(actions.contains(&Broadcast(Coordinator { term: t })));
}

#[test]
fn master_steps_down_for_a_higher_id_with_a_current_term() {
    let mut m = master(2, 3, 0);
    let t = nt(m.term(), s(3));
    assert_eq!(
        m.handle(recv(3, Coordinator { term: t })),
        vec![
            PersistTerm(t),
            CancelTimer(Timer::Heartbeat),
            SetTimer(Timer::FailureDetect),
            Follow {
                master: s(3),
                term: t
            },
        ]
    );
    assert!(!m.is_master());
}

#[test]
fn higher_id_with_an_outdated_claim_is_told_the_current_term() {
    let mut m = master(2, 3, 5 << 32);
    let current = m.term();
    let old = nt(0, s(3));
    assert!(old < current);
    assert_eq!(
        m.handle(recv(3, Coordinator { term: old })),
        vec![Send {
            to: s(3),
            msg: Message::Election { term: current }
        }]
    );
    assert!(m.is_master());
}

#[test]
fn follower_pokes_its_master_when_it_learnt_of_a_newer_term() {
    let t = nt(0, s(3));
    let mut e = follower(1, 3, 3, t);
    let newer = nt(t, s(2));
    e.handle(recv(2, Answer { term: newer }));
    assert_eq!(e.master(), Some(s(3)));
    assert_eq!(
        e.handle(recv(3, Heartbeat { term: t })),
        vec![
            SetTimer(Timer::FailureDetect),
            Send {
                to: s(3),
                msg: Message::Election { term: newer }
            },
        ]
    );
}

#[test]
fn follower_bullies_a_lower_claimant_with_a_newer_term() {
    let t = nt(0, s(3));
    let mut e = follower(2, 3, 3, t);
    let newer = nt(t, s(1));
    assert_eq!(
        e.handle(recv(1, Heartbeat { term: newer })),
        vec![
            PersistTerm(newer),
            CancelTimer(Timer::FailureDetect),
            SetTimer(Timer::AnswerWait),
            NoMaster,
            Send {
                to: s(3),
                msg: Message::Election { term: newer }
            },
        ]
    );
}

#[test]
fn follower_ignores_a_lower_claimant_with_an_older_term() {
    let t = nt(nt(0, s(1)), s(3));
    let mut e = follower(2, 3, 3, t);
    assert_eq!(e.handle(recv(1, Heartbeat { term: nt(0, s(1)) })), vec![]);
    assert_eq!(e.master(), Some(s(3)));
}

#[test]
fn idle_server_bullies_a_lower_claimant() {
    let mut e = pool(3, 3, 0);
    let t = nt(0, s(1));
    let actions = e.handle(recv(1, Coordinator { term: t }));
    let mine = nt(t, s(3));
    assert_eq!(actions.last(), Some(&BecameMaster { term: mine }));
}

#[test]
fn strangers_and_echoes_are_ignored() {
    let mut e = pool(2, 3, 0);
    assert_eq!(e.handle(recv(9, Coordinator { term: 99 })), vec![]);
    assert_eq!(e.handle(recv(2, Coordinator { term: 99 })), vec![]);
    assert_eq!(e.term(), 0);
}

#[test]
fn stray_timeouts_are_ignored() {
    let mut e = pool(1, 3, 0);
    for t in [
        Timer::FailureDetect,
        Timer::AnswerWait,
        Timer::CoordinatorWait,
        Timer::Heartbeat,
    ] {
        assert_eq!(e.handle(Input::Timeout(t)), vec![]);
    }
    let mut f = follower(1, 3, 3, nt(0, s(3)));
    assert_eq!(f.handle(Input::Timeout(Timer::Heartbeat)), vec![]);
    assert_eq!(f.handle(Input::Timeout(Timer::AnswerWait)), vec![]);
}

#[test]
fn master_heartbeats_on_its_timer() {
    let mut m = master(3, 3, 0);
    let t = m.term();
    assert_eq!(
        m.handle(Input::Timeout(Timer::Heartbeat)),
        vec![Broadcast(Heartbeat { term: t }), SetTimer(Timer::Heartbeat)]
    );
}

#[test]
fn restarted_higher_id_takes_over_even_from_an_old_persisted_term() {
    // 3 was master in epoch 1, crashed; 2 took over and the pool went on to epoch 5.
    let t1 = nt(0, s(3));
    let t5 = nt(nt(nt(nt(t1, s(2)), s(2)), s(1)), s(2));
    let mut two = master(2, 3, t5 - (1 << 32));
    assert_eq!(two.term(), t5);
    let mut three = pool(3, 3, t1);
    let a = three.handle(Input::Start);
    let claim = Coordinator { term: nt(t1, s(3)) };
    assert!(a.contains(&Broadcast(claim)));
    // Its claim is outdated: 2 tells it the current term, 3 out-bids it, 2 follows.
    let poke = two.handle(recv(3, claim));
    assert_eq!(
        poke,
        vec![Send {
            to: s(3),
            msg: Message::Election { term: t5 }
        }]
    );
    let a = three.handle(recv(2, Message::Election { term: t5 }));
    let t6 = nt(t5, s(3));
    assert!(a.contains(&Broadcast(Coordinator { term: t6 })));
    assert!(a.contains(&BecameMaster { term: t6 }));
    two.handle(recv(3, Coordinator { term: t6 }));
    assert_eq!((two.master(), two.term()), (Some(s(3)), t6));
    assert!(three.is_master() && !two.is_master());
}

#[test]
fn the_term_is_persisted_before_any_message_carries_it() {
    let mut e = pool(2, 3, 0);
    let newer = nt(0, s(1));
    let a = e.handle(recv(1, Message::Election { term: newer }));
    assert_eq!(a[0], PersistTerm(newer));
    assert!(
        a.iter()
            .any(|x| matches!(x, Send { msg: Answer { term }, .. } if *term == newer))
    );
}

#[test]
fn messages_round_trip_as_tagged_json() {
    let m = Coordinator { term: 7 };
    let j = serde_json::to_string(&m).unwrap();
    assert_eq!(j, r#"{"kind":"coordinator","term":7}"#);
    assert_eq!(serde_json::from_str::<Message>(&j).unwrap(), m);
}

/// A deterministic discrete-event pool: the network delays, reorders and loses messages,
/// partitions, crashes and restarts servers (a restarted server keeps only its persisted term),
/// and time advances only from event to event.
#[path = "election_sim.rs"]
mod sim;

#[test]
fn terms_beyond_the_bound_or_too_far_ahead_change_nothing() {
    let t = nt(0, s(3));
    for hostile in [u64::MAX, MAX_TERM + 1, (u64::MAX << 32) | 2] {
        let mut f = follower(1, 3, 3, t);
        for msg in [
            Message::Election { term: hostile },
            Answer { term: hostile },
            Coordinator { term: hostile },
            Heartbeat { term: hostile },
        ] {
            assert_eq!(f.handle(recv(2, msg)), vec![], "{msg:?}");
        }
        assert_eq!((f.term(), f.master()), (t, Some(s(3))));
    }
    let mut f = follower(1, 3, 3, t).with_max_jump(10);
    let far = (12 << 32) | 2;
    assert_eq!(f.handle(recv(2, Message::Election { term: far })), vec![]);
    assert_eq!(f.term(), t);
    let near = (10 << 32) | 2;
    assert!(
        !f.handle(recv(2, Message::Election { term: near }))
            .is_empty()
    );
    assert_eq!(f.term(), near);
}

#[test]
fn a_claim_of_another_members_term_is_ignored() {
    let t3 = nt(0, s(3));
    let mut f = pool(1, 3, 0);
    f.handle(Input::Start);
    // 2 says it is master of a term 3 would claim.
    assert_eq!(
        f.handle(recv(2, Coordinator { term: nt(t3, s(3)) })),
        vec![]
    );
    assert_eq!((f.term(), f.master()), (0, None));
}

#[test]
fn next_term_is_checked_at_the_bound() {
    assert_eq!(next_term(MAX_TERM, s(1)), None);
    let last = next_term(MAX_TERM - (1 << 32), s(u32::MAX)).expect("last epoch");
    assert!(last <= MAX_TERM);
    assert_eq!(next_term(u64::MAX, s(1)), None);
    // A master at the last epoch cannot out-bid: it stays without a new claim, no overflow.
    let mut m = pool(3, 3, MAX_TERM);
    assert!(
        m.handle(Input::Start)
            .iter()
            .all(|a| !matches!(a, BecameMaster { .. }))
    );
}

#[test]
fn check_term_bounds_range_and_jump() {
    assert_eq!(
        check_term(0, MAX_TERM + 1, u64::MAX),
        Err(TermRefusal::OutOfRange(MAX_TERM + 1))
    );
    assert_eq!(
        check_term(0, u64::MAX, u64::MAX),
        Err(TermRefusal::OutOfRange(u64::MAX))
    );
    let have = (5 << 32) | 3;
    assert_eq!(check_term(have, (15 << 32) | 2, 10), Ok(()));
    assert_eq!(
        check_term(have, (16 << 32) | 2, 10),
        Err(TermRefusal::Jump {
            got: (16 << 32) | 2,
            epochs: 11,
            max: 10
        })
    );
    // Older terms are not a jump (they are stale, which the callers handle).
    assert_eq!(check_term(have, 1, 0), Ok(()));
}
