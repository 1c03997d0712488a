//! A 5-server pool with a large inventory (100,000 elements by default): how many bytes the
//! master sends per single-element change, and how long from kill -9 of the master to the new
//! master's first assignment.
//!
//!     cargo bench --bench pool_scale
//!     EMSPOOL_BENCH_ELEMENTS=100000 EMSPOOL_BENCH_CHANGES=20 EMSPOOL_BENCH_KILLS=3 cargo bench --bench pool_scale
//!
//! The elements point at 127.0.0.1:9 (nothing answers there) and are polled once an hour: the
//! bench measures the pool protocol, not polling. Bytes are the master's
//! `emspool_assignment_sent_bytes_total` (JSON bodies of pushes and snapshot chunks, all
//! members), read before and after each change once every member holds the new version.
//! "Whole inventory" is what one push of the whole assignment weighs (the snapshot bytes sent
//! at start divided by the 4 other members): what every push cost before deltas.
//!
//! Fail-over: the clock runs from the SIGKILL to the moment server 4's `/api/v1/pool` shows an
//! assignment of a newer term (it applies and persists its own first, then pushes), and to the
//! moment all 4 survivors hold it. Timings as in the tests: heartbeat 250 ms,
//! failure_timeout 1 s, lease 800 ms, hold_down 1 s.

mod support;

use std::time::{Duration, Instant};
use support::*;

const SERVERS: u32 = 5;
const SECRET: &str = "bench-pool-secret";

type Server = PoolServer;

/// Bytes the server sent as assignments of `kind` (`delta`, `snapshot`).
fn sent_bytes(s: &Server, kind: &str) -> f64 {
    let text = http_get(&format!("{}/metrics", s.url), Duration::from_secs(5)).unwrap_or_default();
    metric(
        &text,
        "emspool_assignment_sent_bytes_total",
        Some(&format!("kind=\"{kind}\"")),
    )
}

/// Every running server agrees on `master`, holds the same assignment, and the loads add up.
fn converged(servers: &[Server], master: u32, n: usize, timeout: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let views: Vec<serde_json::Value> = servers
            .iter()
            .filter(|s| s.proc.is_some())
            .filter_map(|s| s.get("/api/v1/pool"))
            .collect();
        let running = servers.iter().filter(|s| s.proc.is_some()).count();
        let ok = views.len() == running
            && views.iter().all(|v| {
                v["master"] == master
                    && v["assignment"] == views[0]["assignment"]
                    && v["members"].as_array().is_some_and(|ms| {
                        ms.iter()
                            .filter_map(|m| m["elements"].as_u64())
                            .sum::<u64>()
                            == n as u64
                    })
            })
            && views
                .iter()
                .all(|v| v["assignment"]["term"].as_u64() > Some(0));
        // Views say what each member holds; also check they all polled by it (applied).
        if ok {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "pool did not converge within {timeout:?}:\n{}",
        pool_views(servers)
    );
}

/// An HTTP client that hands back every status (the bench counts them) within 30 s.
fn api_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn post(url: &str, body: &str) -> u16 {
    let agent = api_agent();
    agent
        .post(&format!("{url}/api/v1/elements"))
        .header("content-type", "application/json")
        .send(body)
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn delete(url: &str, name: &str) -> u16 {
    let agent = api_agent();
    agent
        .delete(&format!("{url}/api/v1/elements/{name}"))
        .call()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn main() {
    if !bench_mode() {
        println!("pool_scale: run with `cargo bench --bench pool_scale` (skipped in test mode)");
        return;
    }
    let n = env_or("EMSPOOL_BENCH_ELEMENTS", 100_000usize);
    let changes = env_or("EMSPOOL_BENCH_CHANGES", 20usize);
    let kills = env_or("EMSPOOL_BENCH_KILLS", 3usize);
    let dir = temp_dir("pool_scale");
    let mut inventory = String::from(
        "[poll]\ninterval = \"1h\"\ntimeout = \"200ms\"\nretries = 0\n\n[credentials.public]\nversion = \"v2c\"\ncommunity = \"public\"\n",
    );
    for i in 0..n {
        inventory.push_str(&format!(
            "\n[[elements]]\nname = \"e{i:06}\"\naddress = \"127.0.0.1:9\"\ncredential = \"public\"\n"
        ));
    }
    let mut servers = pool_servers(dir.path(), SERVERS, SECRET, &inventory);
    println!("pool_scale: {}", machine());
    println!("pool_scale: {SERVERS} servers, {n} elements");
    let started = Instant::now();
    for s in &mut servers {
        s.spawn();
    }
    let took = converged(&servers, SERVERS, n, Duration::from_secs(300));
    println!(
        "pool_scale: converged {:.1} s after the first start ({:.1} s after the last was ready)",
        started.elapsed().as_secs_f64(),
        took.as_secs_f64()
    );
    let master = &servers[SERVERS as usize - 1];
    let whole = sent_bytes(master, "snapshot") / f64::from(SERVERS - 1);

    // Single-element changes, one at a time, each through another member.
    let mut per_change = Vec::new();
    let mut snapshot_during = 0.0;
    for k in 0..changes {
        let before = (sent_bytes(master, "delta"), sent_bytes(master, "snapshot"));
        let via = &servers[k % (SERVERS as usize - 1)].url;
        let status = if k % 2 == 0 {
            post(
                via,
                &format!(
                    r#"{{"name":"bench{k:04}","address":"127.0.0.1:9","credential":"public","interval":"1h"}}"#
                ),
            )
        } else {
            delete(via, &format!("bench{:04}", k - 1))
        };
        assert!(
            matches!(status, 201 | 202 | 204),
            "change {k} answered {status}"
        );
        let size = if k % 2 == 0 { n + 1 } else { n };
        converged(&servers, SERVERS, size, Duration::from_secs(60));
        // Let the round that follows (re-pushes to members that had not acknowledged yet) land.
        std::thread::sleep(Duration::from_millis(600));
        let after = (sent_bytes(master, "delta"), sent_bytes(master, "snapshot"));
        per_change.push((after.0 - before.0) / f64::from(SERVERS - 1));
        snapshot_during += after.1 - before.1;
    }
    per_change.sort_by(f64::total_cmp);
    println!(
        "| elements | whole inventory (one push) | bytes per member per single-element change: p50 | max | snapshot bytes during changes |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {n} | {:.0} | {:.0} | {:.0} | {:.0} |",
        whole,
        quantile(&per_change, 0.5),
        quantile(&per_change, 1.0),
        snapshot_during
    );

    // Fail-over: kill -9 of the master, to the new master's first assignment.
    let mut first = Vec::new();
    let mut all = Vec::new();
    for k in 0..kills {
        let old_term = servers[3]
            .get("/api/v1/pool")
            .and_then(|v| v["assignment"]["term"].as_u64())
            .unwrap_or(0);
        let wall = Instant::now();
        if let Some(mut p) = servers[SERVERS as usize - 1].proc.take() {
            p.kill9();
        }
        let mut seen = None;
        while wall.elapsed() < Duration::from_secs(60) {
            let v = servers[3].get("/api/v1/pool");
            if v.as_ref().is_some_and(|v| {
                v["master"] == SERVERS - 1 && v["assignment"]["term"].as_u64() > Some(old_term)
            }) {
                seen = Some(wall.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let seen = seen.unwrap_or_else(|| panic!("kill {k}: no new assignment within 60 s"));
        converged(&servers, SERVERS - 1, n, Duration::from_secs(60));
        let everyone = wall.elapsed();
        eprintln!(
            "  kill {k}: new master's first assignment after {:.0} ms, all members hold it after {:.0} ms",
            seen.as_secs_f64() * 1e3,
            everyone.as_secs_f64() * 1e3
        );
        first.push(seen.as_secs_f64() * 1e3);
        all.push(everyone.as_secs_f64() * 1e3);
        servers[SERVERS as usize - 1].spawn();
        converged(&servers, SERVERS, n, Duration::from_secs(120));
    }
    first.sort_by(f64::total_cmp);
    all.sort_by(f64::total_cmp);
    println!(
        "| elements | kills | kill -9 -> new master's first assignment p50 / max | -> all survivors hold it p50 / max |"
    );
    println!("|---|---|---|---|");
    println!(
        "| {n} | {kills} | {:.0} ms / {:.0} ms | {:.0} ms / {:.0} ms |",
        quantile(&first, 0.5),
        quantile(&first, 1.0),
        quantile(&all, 0.5),
        quantile(&all, 1.0)
    );
    println!("pool_scale: load average after: {}", loadavg());
    for s in &mut servers {
        if let Some(mut p) = s.proc.take() {
            p.terminate_within(Duration::from_secs(20));
        }
    }
}
