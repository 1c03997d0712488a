//! A chaos run of our own (issue 14): five servers; kill -9, SIGSTOP/SIGCONT and silent
//! partitions (nftables drops every TCP segment of one member's address) of the master and of
//! others, in random order, while the agents record which server polls which of them. Asserts
//! from that record: no agent polled by two servers within one interval, none unpolled for
//! longer than interval + 2 s; and from the API: every acknowledged alarm keeps its id and its
//! acknowledgement.
//!
//! Bounded: `EMSPOOL_CHAOS_FAULTS` faults (default 6, about two minutes), each 2-3.5 s long;
//! `EMSPOOL_CHAOS_SEED` repeats a run (the seed is printed).

use crate::common::agents::Agents;
use crate::common::faults::{Cut, member_hosts};
use crate::common::pool::Pool;
use crate::common::wait::wait_until;
use emspool::sim::requesters::{HISTORY, double_polls};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const POOL_TIMINGS: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";
const SERVERS: u32 = 5;
const AGENTS: usize = 250;
const INTERVAL: Duration = Duration::from_secs(1);
/// Two servers polling one agent within this of each other were both at it.
const WINDOW: Duration = Duration::from_millis(1500);

/// xorshift64*: enough randomness for a schedule, and repeatable from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill,
    Pause,
    Cut,
}

fn balanced(pool: &Pool) -> bool {
    let each = (AGENTS / SERVERS as usize) as u64;
    let loads: Vec<(u32, u64)> = (1..=SERVERS).map(|i| (i, each)).collect();
    pool.agrees(SERVERS, &loads)
}

#[test]
fn five_servers_under_kills_pauses_and_cuts_poll_every_element_once_and_keep_acks() {
    let faults: usize = std::env::var("EMSPOOL_CHAOS_FAULTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
        // The agents keep their newest 512 polls: about 60 faults' worth.
        .min(60);
    let seed: u64 = std::env::var("EMSPOOL_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1;
    eprintln!("chaos: EMSPOOL_CHAOS_SEED={seed} EMSPOOL_CHAOS_FAULTS={faults}");
    let mut rng = Rng(seed);
    let agents = Agents::start(AGENTS);
    let hosts = member_hosts(SERVERS as usize);
    let mut pool = Pool::start_on(&hosts, "", &agents.inventory(), POOL_TIMINGS);
    wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        balanced(&pool).then_some(())
    })
    .unwrap_or_else(|e| panic!("pool never balanced: {e}\n{:?}", pool.views()));
    std::thread::sleep(Duration::from_secs(2));

    // Every agent has a standing LinkDown on ifIndex 23; acknowledge one on each server.
    let mut acked: Vec<(String, Value)> = Vec::new();
    for i in (0..AGENTS).step_by(AGENTS / 10) {
        let key = format!("LinkDown:{}:23", Agents::name(i));
        let a = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            pool.server(1).alarm(&key)
        })
        .unwrap_or_else(|e| panic!("{key} never raised: {e}"));
        let id = a["id"].as_u64().expect("alarm id");
        let (code, body) = pool.server(1).ack(id, "chaos");
        assert_eq!(code, 200, "ack {key}: {body}");
        acked.push((key, a["id"].clone()));
    }
    // Give the owners' alarm copies (every change within 100 ms) time to reach the others.
    std::thread::sleep(Duration::from_secs(1));

    let start = agents.now();
    let mut log: Vec<(Duration, String)> = Vec::new();
    for k in 0..faults {
        let fault = match rng.below(3) {
            0 => Fault::Kill,
            1 => Fault::Pause,
            _ => Fault::Cut,
        };
        // Half the faults hit the master (server 5 whenever the pool is balanced).
        let victim = if rng.below(2) == 0 {
            SERVERS
        } else {
            1 + rng.below(u64::from(SERVERS - 1)) as u32
        };
        let hold = Duration::from_millis(2000 + rng.below(1500));
        eprintln!("chaos: fault {k}: {fault:?} of server {victim} for {hold:?}");
        log.push((agents.now(), format!("{fault:?} of {victim} for {hold:?}")));
        match fault {
            Fault::Kill => {
                pool.server_mut(victim).kill9();
                std::thread::sleep(hold);
                pool.server_mut(victim).spawn();
            }
            Fault::Pause => {
                assert!(pool.server_mut(victim).signal("STOP"), "SIGSTOP {victim}");
                std::thread::sleep(hold);
                assert!(pool.server_mut(victim).signal("CONT"), "SIGCONT {victim}");
            }
            Fault::Cut => {
                let cut = Cut::isolate(&pool.server(victim).host);
                std::thread::sleep(hold);
                drop(cut);
            }
        }
        wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
            balanced(&pool).then_some(())
        })
        .unwrap_or_else(|e| {
            panic!(
                "no balanced pool after fault {k} ({fault:?} of {victim}): {e}\n{:?}",
                pool.views()
            )
        });
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_secs(3));
    let until = agents.now();

    let mut doubles = Vec::new();
    let mut gaps = Vec::new();
    let mut longest = Duration::ZERO;
    for i in 0..AGENTS {
        let polls = agents.sim().polls(i);
        if !double_polls(&polls, start, WINDOW).is_empty() {
            doubles.push(format!("{}: {polls:?}", Agents::name(i)));
        }
        // Between consecutive polls (the one before the first fault included) and to the end.
        let from = polls
            .iter()
            .rev()
            .find(|p| p.at <= start)
            .or(polls.first().filter(|_| polls.len() == HISTORY))
            .map_or(start, |p| p.at);
        let gap = emspool::sim::requesters::longest_gap(&polls, from, until);
        longest = longest.max(gap);
        if gap > INTERVAL + Duration::from_secs(2) {
            // Where: the two polls around the gap, and the fault that began before it.
            let after: Vec<_> = polls.iter().filter(|p| p.at >= from).collect();
            let end = after
                .windows(2)
                .find(|w| w[1].at.saturating_sub(w[0].at) == gap)
                .map(|w| (*w[0], *w[1]));
            let around = end.map_or(String::from("until the end"), |(a, b)| {
                format!("between {a:?} and {b:?}")
            });
            let last_fault = end
                .and_then(|(_, b)| log.iter().rev().find(|(t, _)| *t <= b.at))
                .map_or("none", |(_, f)| f.as_str());
            gaps.push(format!(
                "{} unpolled for {gap:?} {around}, after fault {last_fault}",
                Agents::name(i)
            ));
        }
    }
    eprintln!(
        "chaos: {faults} faults over {:?}: {} agent(s) polled twice, {} unpolled too long, \
         longest unpolled {longest:?}",
        until.saturating_sub(start),
        doubles.len(),
        gaps.len()
    );
    assert!(
        doubles.is_empty(),
        "polled by two servers:\n{}",
        doubles.join("\n")
    );
    assert!(
        gaps.is_empty(),
        "unpolled past interval + 2 s:\n{}",
        gaps.join("\n")
    );
    for (key, id) in &acked {
        let a = pool
            .server(1)
            .alarm(key)
            .unwrap_or_else(|| panic!("{key} is gone"));
        assert_eq!(a["id"], *id, "{key} changed its id: {a}");
        assert_eq!(
            a["acked_by"], "chaos",
            "{key} lost its acknowledgement: {a}"
        );
    }
}
