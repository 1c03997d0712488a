//! The pool with real processes on loopback: election, balanced ownership, fail-over, hand-over
//! and partitions, checked from every server's view and from the agents' side (which server's
//! requests each simulated agent actually received).

use crate::common;

use common::agents::Agents;
use common::pool::Pool;
use common::wait_until;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const POOL_TIMINGS: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";

/// Every element polled by exactly one server over a quiet window, and by the one the pool
/// says owns it.
fn assert_single_pollers(pool: &Pool, agents: &Agents, window: Duration) {
    let mut owner: BTreeMap<String, u8> = BTreeMap::new();
    for s in pool
        .servers
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_running())
    {
        let id = s.0 as u32 + 1;
        for name in pool.local_elements(id) {
            assert!(
                owner.insert(name.clone(), id as u8).is_none(),
                "{name} is polled by two servers by their own views"
            );
        }
    }
    let since = agents.now();
    std::thread::sleep(window);
    let pollers = agents.pollers_since(since);
    for (i, tags) in pollers.iter().enumerate() {
        let name = Agents::name(i);
        assert_eq!(tags.len(), 1, "{name} polled by {tags:?} in {window:?}");
        assert_eq!(
            owner.get(&name),
            tags.iter().next(),
            "{name}: owner vs poller"
        );
    }
}

fn wait_agree(pool: &Pool, master: u32, loads: &[(u32, u64)], timeout: Duration) -> Duration {
    let t0 = Instant::now();
    wait_until(timeout, Duration::from_millis(50), || {
        pool.agrees(master, loads).then_some(())
    })
    .unwrap_or_else(|e| {
        let views: Vec<String> = pool
            .views()
            .iter()
            .map(|(i, v)| format!("{i}: {v}"))
            .collect();
        panic!(
            "pool never agreed on master {master} {loads:?}: {e}\n{}",
            views.join("\n")
        )
    });
    t0.elapsed()
}

#[test]
fn three_servers_balance_fail_over_in_2s_and_rebalance_on_return() {
    let agents = Agents::start(300);
    let mut pool = Pool::start(3, &agents.inventory(), POOL_TIMINGS);
    wait_agree(
        &pool,
        3,
        &[(1, 100), (2, 100), (3, 100)],
        Duration::from_secs(20),
    );
    // Let the hand-over of the start-up settle, then prove one poller per element.
    std::thread::sleep(Duration::from_secs(2));
    assert_single_pollers(&pool, &agents, Duration::from_millis(2500));
    let orphans: Vec<usize> = pool
        .local_elements(3)
        .iter()
        .filter_map(|n| n.strip_prefix("ne").and_then(|d| d.parse().ok()))
        .collect();
    assert_eq!(orphans.len(), 100);

    let killed_at = agents.now();
    let wall = Instant::now();
    pool.server_mut(3).kill9();
    let took = wait_agree(&pool, 2, &[(1, 150), (2, 150)], Duration::from_secs(5));
    eprintln!("new master and rebalanced view after {took:?}");
    assert!(took <= Duration::from_secs(2), "new master after {took:?}");
    // Every orphan polled again by a live server within 2 s of the crash.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(wall.elapsed()));
    let pollers = agents.pollers_since(killed_at);
    for &i in &orphans {
        let live: BTreeSet<u8> = pollers[i].iter().copied().filter(|&t| t != 3).collect();
        assert!(
            !live.is_empty(),
            "{} not polled within 2 s of the crash",
            Agents::name(i)
        );
    }
    assert_single_pollers(&pool, &agents, Duration::from_millis(2500));

    // The old master returns: it takes over again and gets exactly its share back.
    let restarted_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    pool.server_mut(3).spawn();
    wait_agree(
        &pool,
        3,
        &[(1, 100), (2, 100), (3, 100)],
        Duration::from_secs(15),
    );
    let moves = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        let q = format!("kind=ownership.moved&limit=10000&since={restarted_ms}");
        // Whoever was master logged the moves; the event API merges every member's log.
        let n = pool.server(1).events(&q).len();
        (n >= 100).then_some(n)
    })
    .unwrap_or_else(|e| panic!("ownership.moved events after the return: {e}"));
    std::thread::sleep(Duration::from_millis(500));
    let q = format!("kind=ownership.moved&limit=10000&since={restarted_ms}");
    let moves = moves.max(pool.server(1).events(&q).len());
    assert_eq!(moves, 100, "only what balance requires moves");
    std::thread::sleep(Duration::from_secs(2));
    assert_single_pollers(&pool, &agents, Duration::from_millis(2500));
}

#[test]
fn five_servers_share_300_elements_60_each() {
    let agents = Agents::start(300);
    let pool = Pool::start(5, &agents.inventory(), POOL_TIMINGS);
    let loads: Vec<(u32, u64)> = (1..=5).map(|i| (i, 60)).collect();
    wait_agree(&pool, 5, &loads, Duration::from_secs(25));
    std::thread::sleep(Duration::from_secs(2));
    assert_single_pollers(&pool, &agents, Duration::from_millis(2500));
}

#[test]
fn partitioned_minority_takes_nothing_and_heals_without_doubles() {
    let agents = Agents::start(300);
    let pool = Pool::start(3, &agents.inventory(), POOL_TIMINGS);
    wait_agree(
        &pool,
        3,
        &[(1, 100), (2, 100), (3, 100)],
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_secs(2));

    // Cut server 1 off from both others, in both directions.
    pool.block(1, &[2, 3]);
    pool.block(2, &[1]);
    pool.block(3, &[1]);
    let cut = Instant::now();
    wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        let majority_agrees = pool
            .views()
            .iter()
            .filter(|(id, _)| *id != 1)
            .all(|(_, v)| {
                v["master"] == 3
                    && v["members"][1]["elements"] == 150
                    && v["members"][2]["elements"] == 150
            });
        let fenced = pool
            .views()
            .iter()
            .any(|(id, v)| *id == 1 && v["fenced"] == true && v["quorum"] == false);
        (majority_agrees && fenced).then_some(())
    })
    .unwrap_or_else(|e| panic!("partition not handled: {e}\n{:?}", pool.views()));
    eprintln!("partition handled after {:?}", cut.elapsed());
    assert!(
        pool.local_elements(1).is_empty(),
        "the minority still polls"
    );
    assert_single_pollers(&pool, &agents, Duration::from_millis(2500));
    let since = agents.now();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        agents.pollers_since(since).iter().all(|t| !t.contains(&1)),
        "the minority polled during the partition"
    );

    for id in 1..=3 {
        pool.block(id, &[]);
    }
    wait_agree(
        &pool,
        3,
        &[(1, 100), (2, 100), (3, 100)],
        Duration::from_secs(15),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_single_pollers(&pool, &agents, Duration::from_millis(2500));
}
