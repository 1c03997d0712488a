//! Fencing at the point of action (issue 14): a server paused (SIGSTOP, then SIGCONT) or cut
//! off by the kernel (nftables drops its packets: silence, not errors) acts on nothing the
//! majority may have taken over. The proof is the agents' own record of which server polled
//! each of them, not anything emspool says.

use crate::common::agents::Agents;
use crate::common::faults::{Cut, member_hosts};
use crate::common::pool::Pool;
use crate::common::wait::wait_until;
use emspool::sim::requesters::{double_polls, longest_gap};
use std::time::Duration;

const POOL_TIMINGS: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";
/// Polls every 1 s: two servers polling one agent within 1.5 s of each other were both at it.
const WINDOW: Duration = Duration::from_millis(1500);
const PAUSE: Duration = Duration::from_secs(3);

/// What a fault is done to one server for [`PAUSE`].
#[derive(Clone, Copy, Debug)]
enum Fault {
    Pause,
    Cut,
}

/// Does `fault` to `victim` for [`PAUSE`] while the others take its elements over, ends it,
/// waits for the balanced pool and returns (agents polled by two servers at once, the longest
/// time an agent went unpolled).
fn fault_and_heal(
    pool: &mut Pool,
    agents: &Agents,
    victim: u32,
    fault: Fault,
) -> (Vec<String>, Duration) {
    let others: Vec<u32> = (1..=3).filter(|&i| i != victim).collect();
    let interim_master = *others.iter().max().expect("others");
    let loads: Vec<(u32, u64)> = others.iter().map(|&i| (i, 150)).collect();
    let before = agents.now();
    let cut = match fault {
        Fault::Pause => {
            assert!(pool.server_mut(victim).signal("STOP"), "SIGSTOP {victim}");
            None
        }
        Fault::Cut => Some(Cut::isolate(&pool.server(victim).host)),
    };
    let took = wait_until(Duration::from_secs(8), Duration::from_millis(100), || {
        pool.agrees_among(&others, interim_master, &loads)
            .then_some(())
    });
    let slept = agents.now().saturating_sub(before);
    std::thread::sleep(PAUSE.saturating_sub(slept));
    match cut {
        None => assert!(pool.server_mut(victim).signal("CONT"), "SIGCONT {victim}"),
        Some(cut) => drop(cut),
    }
    took.unwrap_or_else(|e| panic!("the others did not take server {victim}'s share: {e}"));
    wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        pool.agrees(3, &[(1, 100), (2, 100), (3, 100)])
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("no balanced pool after {fault:?} of server {victim}: {e}"));
    // A few more intervals: a double poll shows as the other server's next poll.
    std::thread::sleep(Duration::from_secs(3));
    let until = agents.now();
    let mut doubles = Vec::new();
    let mut gap = Duration::ZERO;
    let mut worst = String::new();
    for i in 0..agents.n {
        let polls = agents.sim().polls(i);
        let d = double_polls(&polls, before, WINDOW);
        if !d.is_empty() {
            doubles.push(format!("{}: {polls:?}", Agents::name(i)));
        }
        let g = longest_gap(&polls, before, until);
        if g > gap {
            gap = g;
            worst = format!("{} since {before:?}: {polls:?}", Agents::name(i));
        }
    }
    eprintln!("longest unpolled: {worst}");
    (doubles, gap)
}

/// The master, then a member, under `fault`: zero double polls, and no agent left unpolled
/// much longer than the fault.
fn master_then_member(fault: Fault, hosts: Option<Vec<String>>) {
    let agents = Agents::start(300);
    let mut pool = match hosts {
        Some(h) => Pool::start_on(&h, "", &agents.inventory(), POOL_TIMINGS),
        None => Pool::start(3, &agents.inventory(), POOL_TIMINGS),
    };
    wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        pool.agrees(3, &[(1, 100), (2, 100), (3, 100)])
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("pool never balanced: {e}"));
    std::thread::sleep(Duration::from_secs(2));
    for (victim, what) in [(3, "the master"), (1, "a member")] {
        let (doubles, gap) = fault_and_heal(&mut pool, &agents, victim, fault);
        eprintln!(
            "{fault:?} of {what} for {PAUSE:?}: {} agent(s) polled twice, longest gap {gap:?}",
            doubles.len()
        );
        assert!(
            doubles.is_empty(),
            "{what} (server {victim}) polled elements the others had taken over:\n{}",
            doubles.join("\n")
        );
        // The victim's elements wait for the failure timeout and a round; the fault itself
        // must not leave any unpolled for much longer.
        assert!(
            gap <= PAUSE + Duration::from_secs(3),
            "an agent went {gap:?} unpolled"
        );
    }
}

#[test]
fn a_paused_master_or_member_polls_nothing_twice_when_it_wakes() {
    master_then_member(Fault::Pause, None);
}

#[test]
fn a_master_or_member_cut_off_in_silence_polls_nothing_twice() {
    master_then_member(Fault::Cut, Some(member_hosts(3)));
}
