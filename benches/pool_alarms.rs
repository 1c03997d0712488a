//! Pool-wide alarm query latency with ~100,000 active alarms over 5 servers.
//!
//!     cargo bench --bench pool_alarms
//!
//! 4,200 simulated agents whose 24 interfaces are all enabled and down give 100,800 LinkDown
//! alarms, spread over 5 `emspool serve` processes (release build) on loopback. Then queries
//! go round-robin to the 5 servers: the first page (limit 1000, the default) and everything
//! (limit 100000). Env: EMSPOOL_BENCH_AGENTS (default 4200), EMSPOOL_BENCH_QUERIES (200).

#[path = "../tests/it/common/mod.rs"]
mod common;

use common::pool::Pool;
use common::wait_until;
use emspool::sim::{Dataset, SimConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The 24-port template with every interface enabled and down.
fn all_down() -> Dataset {
    let text = include_str!("../tests/data/router24.snmprec");
    let oper = "1.3.6.1.2.1.2.2.1.8.";
    let admin = "1.3.6.1.2.1.2.2.1.7.";
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(oper) {
                let (oid, _) = l.rsplit_once('|').unwrap_or((l, ""));
                format!("{oid}|2")
            } else if l.starts_with(admin) {
                let (oid, _) = l.rsplit_once('|').unwrap_or((l, ""));
                format!("{oid}|1")
            } else {
                l.to_owned()
            }
        })
        .collect();
    Dataset::parse(&lines.join("\n")).expect("dataset")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes --bench; a filter that does not name us means skip.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !args.is_empty() && !args.iter().any(|a| "pool_alarms".contains(a.as_str())) {
        return;
    }
    let agents = env("EMSPOOL_BENCH_AGENTS", 4200);
    let queries = env("EMSPOOL_BENCH_QUERIES", 200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut cfg = SimConfig::new(Arc::new(all_down()));
    cfg.agents = agents;
    let sim = rt
        .block_on(emspool::testing::support::start_sim(cfg))
        .expect("simulator (raise ulimit -n?)");
    let base = sim.addr(0).expect("agent 0").port();

    let body = emspool::testing::support::v2c_inventory(
        "interval = \"60s\"\ntimeout = \"2s\"",
        agents,
        base,
        |i| format!("ne{i:05}"),
    );
    let pool = Pool::start(5, &body, "hold_down = \"1s\"");
    let want = agents * 24;
    let t0 = Instant::now();
    wait_until(Duration::from_secs(180), Duration::from_secs(1), || {
        let v = pool.server(1).get("/api/v1/alarms?limit=1");
        (v["total"].as_u64() == Some(want as u64)).then_some(())
    })
    .unwrap_or_else(|e| panic!("alarms never reached {want}: {e}"));
    println!("{want} alarms active on 5 servers after {:?}", t0.elapsed());

    for (label, path) in [
        ("first page (limit 1000)", "/api/v1/alarms"),
        ("all (limit 100000)", "/api/v1/alarms?limit=100000"),
    ] {
        let mut times = Vec::with_capacity(queries);
        for q in 0..queries {
            let s = pool.server((q % 5) as u32 + 1);
            let t = Instant::now();
            let v = s.get(path);
            times.push(t.elapsed());
            assert_eq!(v["total"].as_u64(), Some(want as u64), "{label}");
            assert_eq!(v["partial"], false);
        }
        times.sort();
        println!(
            "pool-wide alarms, {label}: {queries} queries: p50 {:?}  p99 {:?}  max {:?}",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times[times.len() - 1]
        );
    }
    drop(pool);
    rt.block_on(sim.shutdown());
}
