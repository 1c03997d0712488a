//! A deterministic discrete-event pool: the network delays, reorders and loses messages,
//! partitions, crashes and restarts servers (a restarted server keeps only its persisted term),
//! and time advances only from event to event.

use super::super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const HEARTBEAT: u64 = 10;
const FAILURE: u64 = 40;
const ANSWER: u64 = 20;
const COORDINATOR: u64 = 60;
/// Until then the network misbehaves and faults strike; afterwards it is reliable and the
/// servers that are up stay up.
const CHAOS_END: u64 = 1500;
const STORM_DELAY: u64 = 30;
const CALM_DELAY: u64 = 5;
/// Convergence bound after the chaos: the slowest path is a stale message arriving at
/// `CHAOS_END + STORM_DELAY`, a coordinator wait, an answer wait and a few re-claims.
const SETTLE: u64 = 400;
/// After convergence nothing may change for this long.
const WATCH: u64 = 300;

fn duration(t: Timer) -> u64 {
    match t {
        Timer::FailureDetect => FAILURE,
        Timer::AnswerWait => ANSWER,
        Timer::CoordinatorWait => COORDINATOR,
        Timer::Heartbeat => HEARTBEAT,
    }
}

/// splitmix64: the simulation draws its own chaos; the machine under test draws none.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Fault {
    Crash(usize),
    Restart(usize),
    /// Servers whose bit is set can talk only among themselves, the others likewise.
    Partition(u8),
}

#[derive(Debug)]
enum Event {
    Start(usize),
    Deliver {
        to: usize,
        from: usize,
        msg: Message,
    },
    Fire {
        node: usize,
        life: u64,
        timer: Timer,
        generation: u64,
    },
    Fault(Fault),
}

struct Node {
    id: ServerId,
    up: Option<Election>,
    persisted: u64,
    /// Bumped on crash and restart so that timers of a previous life never fire.
    life: u64,
    generations: BTreeMap<Timer, u64>,
    highest_term_seen: u64,
}

pub(super) struct Sim {
    now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    nodes: Vec<Node>,
    rng: Rng,
    loss_percent: u64,
    partition: u8,
    /// Every term ever claimed, and by which server: the safety record.
    claims: BTreeMap<u64, ServerId>,
}

impl Sim {
    pub(super) fn new(n: usize, seed: u64, loss_percent: u64, faults: &[(u64, Fault)]) -> Sim {
        // Spaced, not contiguous, to keep the machine honest about ids; rising with the index.
        let ids: Vec<ServerId> = (0..n as u32)
            .map(|i| ServerId(10 * i + i % 3 + 1))
            .collect();
        let nodes = ids
            .iter()
            .map(|&id| Node {
                id,
                up: Some(Election::new(id, ids.clone(), 0)),
                persisted: 0,
                life: 0,
                generations: BTreeMap::new(),
                highest_term_seen: 0,
            })
            .collect();
        let mut sim = Sim {
            now: 0,
            seq: 0,
            events: BTreeMap::new(),
            nodes,
            rng: Rng(seed),
            loss_percent,
            partition: 0,
            claims: BTreeMap::new(),
        };
        for i in 0..n {
            let at = sim.rng.below(50);
            sim.at(at, Event::Start(i));
        }
        for &(at, fault) in faults {
            let fault = match fault {
                Fault::Crash(i) => Fault::Crash(i % n),
                Fault::Restart(i) => Fault::Restart(i % n),
                p => p,
            };
            sim.at(at.min(CHAOS_END - 1), Event::Fault(fault));
        }
        sim
    }

    fn at(&mut self, time: u64, event: Event) {
        self.seq += 1;
        self.events.insert((time, self.seq), event);
    }

    fn calm(&self) -> bool {
        self.now >= CHAOS_END
    }

    fn send(&mut self, from: usize, to: usize, msg: Message) {
        assert!(
            msg.term() <= self.nodes[from].persisted,
            "{msg:?} sent before its term was persisted"
        );
        let max_delay = if self.calm() {
            CALM_DELAY
        } else {
            let split = (self.partition >> from ^ self.partition >> to) & 1 == 1;
            if split || self.rng.below(100) < self.loss_percent {
                return;
            }
            STORM_DELAY
        };
        let at = self.now + 1 + self.rng.below(max_delay);
        self.at(at, Event::Deliver { to, from, msg });
    }

    fn input(&mut self, i: usize, input: Input) {
        let Some(e) = self.nodes[i].up.as_mut() else {
            return;
        };
        let actions = e.handle(input);
        for action in actions {
            self.apply(i, action);
        }
    }

    fn apply(&mut self, i: usize, action: Action) {
        let n = self.nodes.len();
        let index = |id: ServerId| self.nodes.iter().position(|x| x.id == id).unwrap();
        match action {
            Action::Send { to, msg } => self.send(i, index(to), msg),
            Action::Broadcast(msg) => {
                for to in (0..n).filter(|&to| to != i) {
                    self.send(i, to, msg);
                }
            }
            Action::SetTimer(timer) => {
                let node = &mut self.nodes[i];
                let generation = node.generations.entry(timer).or_default();
                *generation += 1;
                let event = Event::Fire {
                    node: i,
                    life: node.life,
                    timer,
                    generation: *generation,
                };
                self.at(self.now + duration(timer), event);
            }
            Action::CancelTimer(timer) => {
                *self.nodes[i].generations.entry(timer).or_default() += 1;
            }
            Action::PersistTerm(t) => {
                assert!(t > self.nodes[i].persisted, "persisted term went down");
                self.nodes[i].persisted = t;
            }
            Action::BecameMaster { term } => {
                let me = self.nodes[i].id;
                assert_eq!(term_owner(term), me);
                if let Some(other) = self.claims.insert(term, me) {
                    panic!("term {term:#x} claimed by {other} and again by {me}");
                }
            }
            Action::Follow { master, term } => {
                assert!(master > self.nodes[i].id, "followed a lower id");
                assert_eq!(term_owner(term), master);
            }
            Action::NoMaster => {}
        }
    }

    fn step(&mut self) {
        let ((time, _), event) = self.events.pop_first().expect("timers keep the pool busy");
        self.now = time;
        match event {
            Event::Start(i) => self.input(i, Input::Start),
            Event::Deliver { to, from, msg } => {
                let from = self.nodes[from].id;
                self.input(to, Input::Receive { from, msg });
            }
            Event::Fire {
                node,
                life,
                timer,
                generation,
            } => {
                let x = &self.nodes[node];
                if x.up.is_some()
                    && x.life == life
                    && x.generations.get(&timer) == Some(&generation)
                {
                    self.input(node, Input::Timeout(timer));
                }
            }
            Event::Fault(Fault::Crash(i)) => {
                let x = &mut self.nodes[i];
                x.up = None;
                x.life += 1;
            }
            Event::Fault(Fault::Restart(i)) => {
                let ids: Vec<ServerId> = self.nodes.iter().map(|x| x.id).collect();
                let x = &mut self.nodes[i];
                if x.up.is_none() {
                    x.life += 1;
                    x.generations.clear();
                    x.up = Some(Election::new(x.id, ids, x.persisted));
                    self.input(i, Input::Start);
                }
            }
            Event::Fault(Fault::Partition(mask)) => self.partition = mask,
        }
        self.check_invariants();
    }

    fn check_invariants(&mut self) {
        let mut master_terms = BTreeMap::new();
        for x in &mut self.nodes {
            let Some(e) = &x.up else { continue };
            assert!(e.term() >= x.highest_term_seen, "{} term went down", x.id);
            x.highest_term_seen = e.term();
            assert_eq!(e.term(), x.persisted, "{} term not persisted", x.id);
            if e.is_master() {
                assert_eq!(e.master_term(), e.term(), "{} master on an old term", x.id);
                if let Some(other) = master_terms.insert(e.master_term(), x.id) {
                    panic!("{other} and {} both master in term {:#x}", x.id, e.term());
                }
            }
        }
    }

    pub(super) fn run_until(&mut self, time: u64) {
        while self
            .events
            .first_key_value()
            .is_some_and(|(k, _)| k.0 <= time)
        {
            self.step();
        }
        self.now = time;
    }

    pub(super) fn crash(&mut self, i: usize) {
        self.at(self.now, Event::Fault(Fault::Crash(i)));
    }

    pub(super) fn restart(&mut self, i: usize) {
        self.at(self.now, Event::Fault(Fault::Restart(i)));
    }

    /// Panics unless every up server follows the highest up id, which is master; returns
    /// the master's term.
    pub(super) fn assert_converged(&self) -> u64 {
        let up: Vec<&Election> = self.nodes.iter().filter_map(|x| x.up.as_ref()).collect();
        let Some(top) = up.iter().max_by_key(|e| e.me()) else {
            return 0;
        };
        assert!(
            top.is_master(),
            "highest up {} is {:?}",
            top.me(),
            top.role()
        );
        for e in &up {
            assert_eq!(
                e.master(),
                Some(top.me()),
                "{} follows {:?}",
                e.me(),
                e.master()
            );
            assert_eq!(e.term(), top.term(), "{} on another term", e.me());
            assert_eq!(e.is_master(), e.me() == top.me());
        }
        top.term()
    }

    pub(super) fn claims(&self) -> usize {
        self.claims.len()
    }
}

fn fault() -> impl Strategy<Value = (u64, Fault)> {
    (0..CHAOS_END, 0usize..6, any::<u8>(), 0u8..3).prop_map(|(at, node, mask, kind)| {
        let fault = match kind {
            0 => Fault::Crash(node),
            1 => Fault::Restart(node),
            _ => Fault::Partition(mask),
        };
        (at, fault)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Safety (one master per term, terms never decrease, persisted before use) is checked
    /// after every event by the simulator; liveness here.
    #[test]
    fn chaos_then_calm_converges_on_the_highest_up_id(
        n in 2usize..=6,
        seed in any::<u64>(),
        loss in 0u64..60,
        faults in proptest::collection::vec(fault(), 0..16),
    ) {
        let mut sim = Sim::new(n, seed, loss, &faults);
        sim.run_until(CHAOS_END + SETTLE);
        let term = sim.assert_converged();
        let claims = sim.claims();
        sim.run_until(CHAOS_END + SETTLE + WATCH);
        prop_assert_eq!(sim.assert_converged(), term);
        prop_assert_eq!(sim.claims(), claims);
    }
}

#[test]
fn master_crash_and_return_in_a_calm_pool() {
    let mut sim = Sim::new(5, 7, 0, &[]);
    sim.now = CHAOS_END;
    sim.run_until(CHAOS_END + 200);
    let first = sim.assert_converged();
    assert_eq!(term_owner(first), sim.nodes[4].id);
    sim.crash(4);
    sim.run_until(CHAOS_END + 400);
    let second = sim.assert_converged();
    assert_eq!(term_owner(second), sim.nodes[3].id);
    assert!(second > first);
    sim.restart(4);
    sim.run_until(CHAOS_END + 600);
    let third = sim.assert_converged();
    assert_eq!(term_owner(third), sim.nodes[4].id);
    assert!(third > second);
}
