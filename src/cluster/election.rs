//! Bully election as a sans-IO state machine.
//!
//! [`Election::handle`] takes one [`Input`] (a peer message, a timer expiry, start) and returns the
//! [`Action`]s the driver must perform, in order. Nothing in here reads a clock, touches a socket or
//! draws a random number, so every interleaving can be replayed in tests.
//!
//! Terms are ballot numbers in the Paxos sense: `epoch << 32 | claimant id`. A claim always takes
//! the next epoch above the highest term seen, so it outranks everything its claimant knows of, and
//! because the claimant's id is part of the number two servers can never claim the same term, even
//! when a partition lets both believe they are the highest alive.
//!
//! Driving it (`cluster/mod.rs`):
//! - Build with the term last persisted (0 on first boot), feed [`Input::Start`] once, then every
//!   authenticated peer message as [`Input::Receive`] and every expired timer as [`Input::Timeout`].
//! - Perform the actions in order. [`Action::PersistTerm`] must be durable before the next action;
//!   the messages that follow carry that term.
//! - One pending instance per [`Timer`]: `SetTimer` replaces it, `CancelTimer` drops it, and a
//!   replaced or dropped timer must not be delivered. Suggested durations: heartbeat 1 s, failure
//!   3 s, answer 1 s, coordinator 3 s; the failure timeout must exceed a heartbeat interval plus
//!   the worst message delay, and the answer timeout a round trip.
//! - Mastership is what [`Action::BecameMaster`] / [`Action::Follow`] / [`Action::NoMaster`] last
//!   said (also [`Election::is_master`]). A master moves NEs only while
//!   [`has_quorum`] holds for the members it currently reaches; an assignment is applied only
//!   if [`Election::accepts`] its sender and term.

use crate::model::ServerId;
use serde::{Deserialize, Serialize};

/// What the peers say to each other. Every message carries the sender's highest term so that a
/// server that was down or partitioned catches up from whatever it hears first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Message {
    /// "Is anyone above me alive?" Sent to higher ids only.
    Election { term: u64 },
    /// "Yes, stand back": sent by a higher id to the sender of an `Election`.
    Answer { term: u64 },
    /// "I am master for `term`."
    Coordinator { term: u64 },
    /// The master's periodic "still master for `term`"; treated exactly like `Coordinator`.
    Heartbeat { term: u64 },
}

impl Message {
    pub(crate) fn term(&self) -> u64 {
        match *self {
            Message::Election { term }
            | Message::Answer { term }
            | Message::Coordinator { term }
            | Message::Heartbeat { term } => term,
        }
    }
}

/// Timers the machine asks the driver to run. The driver maps each to a configured duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Timer {
    /// Follower: the master has been silent for `failure_timeout`.
    FailureDetect,
    /// Candidate: no higher id answered within `answer_timeout`.
    AnswerWait,
    /// A higher id answered but no coordinator came.
    CoordinatorWait,
    /// Master: time to broadcast the next heartbeat. Must be well below `failure_timeout`.
    Heartbeat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// Once, when the server starts (also after a restart): a (re)started server always asks.
    Start,
    /// A message from a peer. The driver authenticates `from`; ids outside the pool are ignored.
    Receive { from: ServerId, msg: Message },
    /// A timer set with [`Action::SetTimer`] expired (and was neither re-set nor cancelled since).
    Timeout(Timer),
    /// Optional hint from the transport that a peer is unreachable; speeds up fail-over of a
    /// master whose connection broke instead of waiting for `failure_timeout`.
    PeerDown(ServerId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Send {
        to: ServerId,
        msg: Message,
    },
    /// To every other configured member.
    Broadcast(Message),
    /// Arm the timer, replacing a pending one of the same kind.
    SetTimer(Timer),
    CancelTimer(Timer),
    /// Write the term durably before performing any later action of the same batch: a restarted
    /// server must never claim or accept a term below one it already used.
    PersistTerm(u64),
    /// This server is now master for `term` (also on re-claiming with a newer term): start the
    /// master's duties, fenced by `term`.
    BecameMaster {
        term: u64,
    },
    /// `master` is master for `term`; if this server was master it no longer is.
    Follow {
        master: ServerId,
        term: u64,
    },
    /// No known master any more (an election is running); if this server was master it no
    /// longer is.
    NoMaster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    /// Created, not started.
    Idle,
    /// Sent `Election` to the higher ids, waiting for an `Answer`.
    Electing,
    /// A higher id answered; waiting for its `Coordinator`.
    AwaitingCoordinator,
    Follower,
    Master,
}

impl Role {
    /// The one timer each role keeps armed, cancelled when the role is left.
    fn timer(self) -> Option<Timer> {
        match self {
            Role::Idle => None,
            Role::Electing => Some(Timer::AnswerWait),
            Role::AwaitingCoordinator => Some(Timer::CoordinatorWait),
            Role::Follower => Some(Timer::FailureDetect),
            Role::Master => Some(Timer::Heartbeat),
        }
    }
}

/// A strict majority of the configured pool, counting this server.
pub(crate) fn has_quorum(alive_including_me: usize, configured: usize) -> bool {
    alive_including_me * 2 > configured
}

/// The highest term any message may carry. Terms come from peers, so they are bounded well
/// below `u64::MAX`: the next claim above any accepted term is still a valid term (see
/// [`next_term`]), and a peer that sends `u64::MAX` is refused instead of overflowing ours.
pub(crate) const MAX_TERM: u64 = u64::MAX >> 1;

/// Default bound on how many election rounds a peer's term may run ahead of ours.
pub(crate) const DEFAULT_MAX_JUMP: u64 = 65_536;

/// Why a term from a peer is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TermRefusal {
    #[error("term {0} is beyond the highest valid term")]
    OutOfRange(u64),
    #[error(
        "term {} is {epochs} election rounds ahead of ours (at most {max})",
        term_text(*.got)
    )]
    Jump { got: u64, epochs: u64, max: u64 },
}

/// Whether a peer's term `got` may be taken by a server whose highest term is `have`.
pub(crate) fn check_term(have: u64, got: u64, max_jump: u64) -> Result<(), TermRefusal> {
    if got > MAX_TERM {
        return Err(TermRefusal::OutOfRange(got));
    }
    let epochs = term_epoch(got).saturating_sub(term_epoch(have));
    if epochs > max_jump {
        return Err(TermRefusal::Jump {
            got,
            epochs,
            max: max_jump,
        });
    }
    Ok(())
}

/// The first term of the epoch after `seen`'s, owned by `me`: above anything seen, unique to `me`.
/// None when that would pass [`MAX_TERM`] (2^31 rounds: only a hostile peer gets there, and
/// then no claim is better than a wrapped one).
pub(crate) fn next_term(seen: u64, me: ServerId) -> Option<u64> {
    let epoch = term_epoch(seen).checked_add(1)?;
    if epoch > term_epoch(MAX_TERM) {
        return None;
    }
    Some((epoch << 32) | u64::from(me.0))
}

/// The epoch part of a term: how many claim rounds preceded it, for humans.
pub(crate) fn term_epoch(term: u64) -> u64 {
    term >> 32
}

/// The server that claimed `term` (meaningless for term 0, which nobody claims).
pub(crate) fn term_owner(term: u64) -> ServerId {
    ServerId(term as u32)
}

/// The one human form of a term in text (tables, event texts, logs): `EPOCH.OWNER`, e.g.
/// `2.3` for the second claim round, won by server 3. JSON keeps the number.
pub(crate) fn term_text(term: u64) -> String {
    format!("{}.{}", term_epoch(term), term_owner(term))
}

#[derive(Debug, Clone)]
pub(crate) struct Election {
    me: ServerId,
    /// Every configured member including `me`, sorted and without duplicates.
    members: Vec<ServerId>,
    /// Highest term seen; persisted on every increase.
    term: u64,
    role: Role,
    master: Option<ServerId>,
    /// The term of the claim we follow or made. Below `term` when a newer claim was heard of but
    /// not yet settled.
    master_term: u64,
    /// Election rounds a peer's term may run ahead of ours ([`check_term`]).
    max_jump: u64,
}

impl Election {
    /// `persisted_term` is the last value written for [`Action::PersistTerm`] (0 on first boot).
    pub(crate) fn new(me: ServerId, members: Vec<ServerId>, persisted_term: u64) -> Election {
        let mut members = members;
        members.push(me);
        members.sort_unstable();
        members.dedup();
        Election {
            me,
            members,
            term: persisted_term,
            role: Role::Idle,
            master: None,
            master_term: 0,
            max_jump: DEFAULT_MAX_JUMP,
        }
    }

    /// Bounds the term jump a peer's message may make (`[pool] max_term_jump`).
    pub(crate) fn with_max_jump(mut self, epochs: u64) -> Election {
        self.max_jump = epochs;
        self
    }

    #[cfg(test)]
    pub(crate) fn me(&self) -> ServerId {
        self.me
    }

    pub(crate) fn members(&self) -> &[ServerId] {
        &self.members
    }

    /// Highest term seen. Assignments from an older term must be refused (fencing).
    pub(crate) fn term(&self) -> u64 {
        self.term
    }

    pub(crate) fn role(&self) -> Role {
        self.role
    }

    pub(crate) fn master(&self) -> Option<ServerId> {
        self.master
    }

    #[cfg(test)]
    /// The term under which [`Election::master`] claimed; 0 when there is no master.
    pub(crate) fn master_term(&self) -> u64 {
        if self.master.is_some() {
            self.master_term
        } else {
            0
        }
    }

    #[cfg(test)]
    pub(crate) fn is_master(&self) -> bool {
        self.role == Role::Master
    }

    #[cfg(test)]
    /// Whether a master's command (an assignment) sent by `from` under `term` is to be obeyed:
    /// `from` is the master we follow (or us), `term` its claim, and no newer term has been seen.
    /// A refused command is normal around a change of master; the master re-sends.
    pub(crate) fn accepts(&self, from: ServerId, term: u64) -> bool {
        self.master == Some(from) && self.master_term == term && self.term == term
    }

    pub(crate) fn handle(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.start_election(&mut out),
            Input::Receive { from, msg } => self.receive(from, msg, &mut out),
            Input::Timeout(timer) => self.timeout(timer, &mut out),
            Input::PeerDown(peer) => {
                if self.role == Role::Follower && self.master == Some(peer) {
                    self.start_election(&mut out);
                }
            }
        }
        out
    }

    fn receive(&mut self, from: ServerId, msg: Message, out: &mut Vec<Action>) {
        if from == self.me || self.members.binary_search(&from).is_err() {
            return;
        }
        let t = msg.term();
        // A hostile or broken peer must not move our term out of range or race it ahead; the
        // edge (`cluster::authority`) refuses and counts these, this is the core's own guard.
        if check_term(self.term, t, self.max_jump).is_err() {
            return;
        }
        // A claim names its claimant in the term: a sender claiming another member's term would
        // make two masters of one term.
        if matches!(msg, Message::Coordinator { .. } | Message::Heartbeat { .. })
            && term_owner(t) != from
        {
            return;
        }
        if t > self.term {
            self.term = t;
            out.push(Action::PersistTerm(t));
        }
        match msg {
            Message::Election { .. } => self.on_election(from, out),
            Message::Answer { .. } => self.on_answer(from, out),
            Message::Coordinator { .. } | Message::Heartbeat { .. } => self.on_claim(from, t, out),
        }
        // Followers that heard of the newer term ignore a claim below it, so a master that hears
        // of one must out-bid it to stay master.
        if self.role == Role::Master && self.master_term < self.term {
            self.claim(out);
        }
    }

    fn on_election(&mut self, from: ServerId, out: &mut Vec<Action>) {
        if from < self.me {
            out.push(Action::Send {
                to: from,
                msg: Message::Answer { term: self.term },
            });
            self.bully(from, out);
        }
    }

    fn on_answer(&mut self, from: ServerId, out: &mut Vec<Action>) {
        if from > self.me && self.role == Role::Electing {
            self.enter(Role::AwaitingCoordinator, out);
        }
    }

    fn on_claim(&mut self, from: ServerId, t: u64, out: &mut Vec<Action>) {
        if from < self.me {
            self.bully(from, out);
        } else if t == self.term {
            self.follow(from, t, out);
        } else {
            // A higher id with an outdated claim, typically restarted with an old persisted term:
            // tell it the current term so that it re-claims above it and we can follow.
            if self.role == Role::Follower && self.master == Some(from) {
                out.push(Action::SetTimer(Timer::FailureDetect));
            }
            out.push(Action::Send {
                to: from,
                msg: Message::Election { term: self.term },
            });
        }
    }

    /// A lower id is electing or claims mastership: make sure someone above it takes over.
    fn bully(&mut self, lower: ServerId, out: &mut Vec<Action>) {
        match self.role {
            Role::Master if self.master_term == self.term => out.push(Action::Send {
                to: lower,
                msg: Message::Coordinator { term: self.term },
            }),
            // An outdated master re-claims in `receive`.
            Role::Master => {}
            Role::Electing | Role::AwaitingCoordinator => {}
            // Our master outranks both of us and hears from `lower` too; joining in would only
            // churn the pool. If our master is dead, our own failure detector will notice.
            Role::Follower if self.master_term == self.term => {}
            Role::Follower | Role::Idle => self.start_election(out),
        }
    }

    fn timeout(&mut self, timer: Timer, out: &mut Vec<Action>) {
        // A timer of a role we already left may still fire if the driver raced; ignore it.
        if self.role.timer() != Some(timer) {
            return;
        }
        match timer {
            Timer::FailureDetect | Timer::CoordinatorWait => self.start_election(out),
            Timer::AnswerWait => self.claim(out),
            Timer::Heartbeat => {
                out.push(Action::Broadcast(Message::Heartbeat {
                    term: self.master_term,
                }));
                out.push(Action::SetTimer(Timer::Heartbeat));
            }
        }
    }

    fn start_election(&mut self, out: &mut Vec<Action>) {
        let higher: Vec<ServerId> = self
            .members
            .iter()
            .copied()
            .filter(|&m| m > self.me)
            .collect();
        if higher.is_empty() {
            return self.claim(out);
        }
        let had_master = self.master.take().is_some();
        self.enter(Role::Electing, out);
        if had_master {
            out.push(Action::NoMaster);
        }
        for to in higher {
            out.push(Action::Send {
                to,
                msg: Message::Election { term: self.term },
            });
        }
    }

    fn claim(&mut self, out: &mut Vec<Action>) {
        let Some(term) = next_term(self.term, self.me) else {
            // Terms are exhausted (see `next_term`): stay without a master rather than claim a
            // term nobody may accept; an operator has to reset the pool's terms.
            return;
        };
        self.term = term;
        out.push(Action::PersistTerm(term));
        self.enter(Role::Master, out);
        self.master = Some(self.me);
        self.master_term = term;
        out.push(Action::Broadcast(Message::Coordinator { term }));
        out.push(Action::BecameMaster { term });
    }

    fn follow(&mut self, master: ServerId, term: u64, out: &mut Vec<Action>) {
        let news =
            self.role != Role::Follower || self.master != Some(master) || self.master_term != term;
        self.enter(Role::Follower, out);
        self.master = Some(master);
        self.master_term = term;
        if news {
            out.push(Action::Follow { master, term });
        }
    }

    /// Switches role, swapping the old role's timer for the new one's (re-arming it if the role
    /// is unchanged, which is what a heartbeat from the master or a re-claim needs).
    fn enter(&mut self, role: Role, out: &mut Vec<Action>) {
        if self.role != role {
            if let Some(old) = self.role.timer() {
                out.push(Action::CancelTimer(old));
            }
        }
        self.role = role;
        if let Some(new) = role.timer() {
            out.push(Action::SetTimer(new));
        }
    }
}

#[cfg(test)]
#[path = "election_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "election_hostile.rs"]
mod hostile;
