//! Fail-over time of a 3-server pool: the master (server 3) is killed with SIGKILL 20 times;
//! each time, the clock runs from the kill to the moment every element it polled has received a
//! request from a surviving server. Measured from the agents' side: the simulator (in this
//! process) records, per agent, the last request time per polling server (emspool puts its
//! server id in the request ids).
//!
//!     cargo bench --bench failover
//!     EMSPOOL_BENCH_KILLS=20 EMSPOOL_BENCH_AGENTS=300 cargo bench --bench failover
//!     EMSPOOL_BENCH_SIGNAL=STOP cargo bench --bench failover
//!     EMSPOOL_BENCH_SIGNAL=PAUSE EMSPOOL_BENCH_PAUSE_MS=3000 cargo bench --bench failover
//!
//! With SIGKILL the dead master's port refuses connections at once, and its peers treat a refused
//! heartbeat as death without waiting for `failure_timeout`. `EMSPOOL_BENCH_SIGNAL=STOP` freezes
//! the master instead (SIGSTOP: its port still accepts connections but nothing answers), which is
//! what a hung process or a lost host looks like: peers must wait for `failure_timeout`. The
//! frozen server is then killed and restarted like a killed one. `PAUSE` freezes it the same
//! way and then continues it (SIGCONT) after `EMSPOOL_BENCH_PAUSE_MS` (at the earliest once its
//! elements are polled by the others): it wakes with overdue poll timers and must poll nothing
//! the others took over. Reported from the agents' own poll history: agents polled by two
//! servers within 1.5 s of each other (double polls, goal 0) and the distribution over all
//! agents of the longest time each went unpolled.
//!
//! Pool timings as in the tests: heartbeat 250 ms, failure_timeout 1 s, lease 800 ms,
//! answer_timeout 150 ms (default), hold_down 1 s; polls every 1 s, timeout 300 ms. After each
//! kill the server is restarted and the bench waits until it is master again with its third of
//! the elements, plus 2 s for the hand-over to settle.

mod support;

use emspool::sim::requesters::{double_polls, longest_gap};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::*;

const SERVERS: u32 = 3;
const SECRET: &str = "bench-pool-secret";

type Server = PoolServer;

fn agrees(servers: &[Server], master: u32, each: u64) -> bool {
    servers.iter().filter(|s| s.proc.is_some()).all(|s| {
        s.get("/api/v1/pool").is_some_and(|v| {
            v["master"] == master
                && v["members"].as_array().is_some_and(|ms| {
                    ms.iter()
                        .filter(|m| m["alive"] == true)
                        .all(|m| m["elements"] == each)
                        && ms.iter().filter(|m| m["alive"] == true).count()
                            == servers.iter().filter(|s| s.proc.is_some()).count()
                })
        })
    })
}

fn wait_agree(servers: &[Server], master: u32, each: u64, timeout: Duration) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if agrees(servers, master, each) {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "pool did not agree on master {master} with {each} each within {timeout:?}\n{}",
        pool_views(servers)
    );
}

fn main() {
    if !bench_mode() {
        println!("failover: run with `cargo bench --bench failover` (skipped in test mode)");
        return;
    }
    let kills = env_or("EMSPOOL_BENCH_KILLS", 20usize);
    let sig: String = env_or("EMSPOOL_BENCH_SIGNAL", "KILL".to_string());
    assert!(
        ["KILL", "STOP", "PAUSE"].contains(&sig.as_str()),
        "EMSPOOL_BENCH_SIGNAL: KILL, STOP or PAUSE"
    );
    let pause = Duration::from_millis(env_or("EMSPOOL_BENCH_PAUSE_MS", 3000u64));
    let mut doubles: Vec<usize> = Vec::new();
    let mut gaps: Vec<Duration> = Vec::new();
    let n = env_or("EMSPOOL_BENCH_AGENTS", 300usize);
    let each = (n / SERVERS as usize) as u64;
    assert_eq!(n % SERVERS as usize, 0, "agents must divide by {SERVERS}");
    raise_nofile_or_reexec(n + 1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (sim, base) = start_sim(&rt, n);
    let dir = temp_dir("failover");

    let inventory = support::support::v2c_inventory(
        "interval = \"1s\"\ntimeout = \"300ms\"\nretries = 1",
        n,
        base,
        |i| format!("ne{i:05}"),
    );
    let mut servers = pool_servers(dir.path(), SERVERS, SECRET, &inventory);
    for s in &mut servers {
        s.ready_step = Duration::from_millis(50);
        s.ready_tries = 300;
        s.get_timeout = Duration::from_secs(2);
    }
    for s in &mut servers {
        s.spawn();
    }
    println!("failover: {}", machine());
    println!(
        "failover: {SERVERS} servers, {n} agents polled every 1 s, {kills} kills of the master ({sig})"
    );
    wait_agree(&servers, SERVERS, each, Duration::from_secs(30));

    let mut recovered: Vec<Duration> = Vec::new();
    let mut master_seen: Vec<Duration> = Vec::new();
    let mut failures = 0;
    for k in 0..kills {
        std::thread::sleep(Duration::from_secs(2));
        let victim = &servers[SERVERS as usize - 1];
        let orphans: Vec<usize> = victim
            .get("/api/v1/elements?scope=local")
            .and_then(|v| {
                v["elements"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|e| e["name"].as_str()?.strip_prefix("ne")?.parse().ok())
                        .collect()
                })
            })
            .unwrap_or_default();
        assert_eq!(
            orphans.len() as u64,
            each,
            "server {SERVERS} owns its third"
        );
        let killed_at = sim.elapsed();
        let wall = Instant::now();
        let mut frozen = servers[SERVERS as usize - 1].proc.take();
        if let Some(p) = frozen.as_mut() {
            if sig == "KILL" {
                p.kill9();
            } else {
                assert!(p.signal("STOP"), "SIGSTOP");
            }
        }
        let mut pending: BTreeSet<usize> = orphans.iter().copied().collect();
        let mut new_master = None;
        let mut latest = Duration::ZERO;
        let deadline = wall + Duration::from_secs(15);
        while !pending.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            pending.retain(|&i| {
                // Checked every few ms and polls are 1 s apart: the request seen first is the
                // first one after the kill.
                let first = sim
                    .requesters(i)
                    .iter()
                    .filter(|r| u32::from(r.tag) != SERVERS && r.last > killed_at)
                    .map(|r| r.last)
                    .min();
                if let Some(t) = first {
                    latest = latest.max(t - killed_at);
                }
                first.is_none()
            });
            if new_master.is_none()
                && servers[1]
                    .get("/api/v1/pool")
                    .is_some_and(|v| v["master"] == SERVERS - 1)
            {
                new_master = Some(wall.elapsed());
            }
        }
        if pending.is_empty() {
            let took = latest;
            recovered.push(took);
            eprintln!(
                "  kill {k}: all {} orphans polled again after {:.0} ms (new master seen after {:?})",
                orphans.len(),
                took.as_secs_f64() * 1e3,
                new_master.map(|d| format!("{:.0} ms", d.as_secs_f64() * 1e3))
            );
        } else {
            failures += 1;
            eprintln!(
                "  kill {k}: {} orphans not polled within 15 s",
                pending.len()
            );
        }
        if let Some(d) = new_master {
            master_seen.push(d);
        }
        if sig == "PAUSE" {
            std::thread::sleep(pause.saturating_sub(wall.elapsed()));
            let mut p = frozen.take().expect("the paused master");
            assert!(p.signal("CONT"), "SIGCONT");
            servers[SERVERS as usize - 1].proc = Some(p);
            wait_agree(&servers, SERVERS, each, Duration::from_secs(30));
            // A few intervals more: a double poll shows as the other server's next poll.
            std::thread::sleep(Duration::from_secs(3));
            let until = sim.elapsed();
            let mut twice = 0;
            for i in 0..n {
                let polls = sim.polls(i);
                twice += usize::from(
                    !double_polls(&polls, killed_at, Duration::from_millis(1500)).is_empty(),
                );
                gaps.push(longest_gap(&polls, killed_at, until));
            }
            eprintln!("  pause {k}: {twice} agent(s) polled by two servers at once");
            doubles.push(twice);
            continue;
        }
        if let Some(mut p) = frozen.take() {
            p.kill9();
        }
        servers[SERVERS as usize - 1].spawn();
        wait_agree(&servers, SERVERS, each, Duration::from_secs(30));
    }
    recovered.sort();
    master_seen.sort();
    let ms = |v: &[Duration], q: f64| {
        let f: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        quantile(&f, q)
    };
    println!(
        "| signal | kills | recovered | orphans per kill | p50 | p99 | max | new master visible p50 / max |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {sig} | {kills} | {} | {each} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms / {:.0} ms |",
        recovered.len(),
        ms(&recovered, 0.5),
        ms(&recovered, 0.99),
        ms(&recovered, 1.0),
        ms(&master_seen, 0.5),
        ms(&master_seen, 1.0),
    );
    if sig == "PAUSE" {
        gaps.sort();
        println!();
        println!(
            "| pause | pauses | agents polled twice (total) | longest unpolled per agent p50 | p99 | max |"
        );
        println!("|---|---|---|---|---|---|");
        println!(
            "| {} ms | {kills} | {} | {:.0} ms | {:.0} ms | {:.0} ms |",
            pause.as_millis(),
            doubles.iter().sum::<usize>(),
            ms(&gaps, 0.5),
            ms(&gaps, 0.99),
            ms(&gaps, 1.0),
        );
    }
    println!("failover: load average after: {}", loadavg());
    for s in &mut servers {
        if let Some(mut p) = s.proc.take() {
            p.terminate_within(Duration::from_secs(10));
        }
    }
    rt.block_on(sim.shutdown());
    assert_eq!(failures, 0, "some kills were not recovered within 15 s");
}
