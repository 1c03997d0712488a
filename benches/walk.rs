//! A 10,000-row table walk against one Net-SNMP `snmpd`, side by side: emspool's walker
//! (`emspool::testing::snmp::Client::walk_columns` over one column) vs `snmpbulkwalk -v2c -Cr<N>`,
//! with the same max-repetitions.
//!
//!     cargo bench --bench walk
//!     EMSPOOL_BENCH_REPS=10,25,50 EMSPOOL_BENCH_RUNS=31 cargo bench --bench walk
//!
//! Where the 10,000 rows come from: snmpd serves the kernel's UDP socket table
//! (UDP-MIB udpEndpointTable, one row per bound UDP socket, indexed by local address and port,
//! remote address and port, instance). An `emspool simulate --agents 10000 --listen 127.0.0.2`
//! child holds 10,000 bound sockets on 127.0.0.2 (loopback; nothing is sent to them), so the
//! subtree `udpEndpointProcess.ipv4."127.0.0.2"` (1.3.6.1.2.1.7.7.1.8.1.4.127.0.0.2) is a real
//! table of exactly 10,000 rows that snmpd answers from its own code (no pass/extend scripts in
//! the path), unaffected by other programs' sockets on 127.0.0.1. Both tools talk to snmpd on
//! 127.0.0.1. (The older udpTable is no good: snmpd re-reads /proc/net/udp for every request
//! there, ~21 ms each, so a 10,000-row walk takes ~21 s with either tool.)
//!
//! snmpbulkwalk is timed as a process (spawn to exit). Its start-up (library init, config and
//! MIB loading, one round trip) is measured by walking sysUpTime (a one-row subtree, one
//! request) the same number of times; the walk's time is the median of the big walk minus the
//! median of the one-row walk. emspool's walk is timed in-process: a fresh `Client` (its
//! session socket is opened by the first request) and the whole walk. Runs alternate between the
//! two tools so load changes hit both alike.

mod support;

use emspool::testing::snmp::{Client, Target};
use emspool::testing::{Credential, Secret};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// udpEndpointProcess for IPv4 local address 127.0.0.2: exactly the simulator's sockets.
const UDP_ENDPOINT_PROCESS: [u32; 16] = [1, 3, 6, 1, 2, 1, 7, 7, 1, 8, 1, 4, 127, 0, 0, 2];
const ROWS: usize = 10_000;

fn find(tool: &str) -> String {
    for d in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = format!("{d}/{tool}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("{tool} not found: apt-get install -y snmpd snmp (tests/install-peers.sh)");
}

fn dotted(arcs: &[u32]) -> String {
    arcs.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

struct Snmpd {
    _proc: ChildGuard,
    port: u16,
}

fn start_snmpd(dir: &TempDir) -> Snmpd {
    let snmpd = find("snmpd");
    for attempt in 0..5 {
        let port = free_tcp_port(); // also free for UDP in practice; checked by snmpd's bind
        let conf = dir.path().join("snmpd.conf");
        std::fs::write(
            &conf,
            format!("agentAddress udp:127.0.0.1:{port}\nrocommunity public 127.0.0.1\n"),
        )
        .expect("snmpd.conf");
        let persist = dir.path().join("persist");
        std::fs::create_dir_all(&persist).expect("persist dir");
        let mut cmd = Command::new(&snmpd);
        cmd.args(["-f", "-C", "-c"])
            .arg(&conf)
            .arg(format!("--persistentDir={}", persist.display()))
            .arg("-Lf")
            .arg(dir.path().join(format!("snmpd-{attempt}.log")));
        let mut p = spawn(&format!("snmpd-{attempt}"), cmd, dir.path(), false);
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(100));
            if p.try_wait().is_some() {
                break;
            }
            if snmpbulkwalk(port, 10, "1.3.6.1.2.1.1.3").is_some_and(|n| n >= 1) {
                return Snmpd { _proc: p, port };
            }
        }
        eprintln!("snmpd on {port} did not answer; retrying");
    }
    panic!("snmpd did not start");
}

/// Runs snmpbulkwalk; returns the number of varbinds printed, None on failure.
fn snmpbulkwalk(port: u16, reps: u32, oid: &str) -> Option<usize> {
    let out = Command::new("snmpbulkwalk")
        .args(["-v2c", "-c", "public", "-On", "-Oq", "-t", "5", "-r", "1"])
        .arg(format!("-Cr{reps}"))
        .arg(format!("127.0.0.1:{port}"))
        .arg(oid)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        out.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
    )
}

fn timed_snmpbulkwalk(port: u16, reps: u32, oid: &str) -> (Duration, usize) {
    let t = Instant::now();
    let n = snmpbulkwalk(port, reps, oid).expect("snmpbulkwalk failed");
    (t.elapsed(), n)
}

fn target(port: u16, reps: u32) -> Target {
    Target {
        addr: format!("127.0.0.1:{port}").parse().expect("addr"),
        request_tag: 1,
        credential: Credential::V2c {
            community: Secret::new("public"),
        },
        timeout: Duration::from_secs(5),
        retries: 1,
        max_repetitions: reps,
    }
}

fn timed_emspool(rt: &tokio::runtime::Runtime, port: u16, reps: u32) -> (Duration, usize) {
    rt.block_on(async {
        let t = Instant::now();
        let mut c = Client::new(target(port, reps));
        let cols = c
            .walk_columns(&[&UDP_ENDPOINT_PROCESS], reps, 1_000_000)
            .await
            .expect("emspool walk");
        (t.elapsed(), cols[0].len())
    })
}

fn span(v: &[usize]) -> String {
    let (lo, hi) = (v.iter().min(), v.iter().max());
    match (lo, hi) {
        (Some(l), Some(h)) if l == h => l.to_string(),
        (Some(l), Some(h)) => format!("{l}-{h}"),
        _ => "-".into(),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !bench_mode() {
        println!("walk: run with `cargo bench --bench walk` (skipped in test mode)");
        return;
    }
    let reps_list: Vec<u32> = std::env::var("EMSPOOL_BENCH_REPS")
        .unwrap_or_else(|_| "10,25,50".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runs = env_or("EMSPOOL_BENCH_RUNS", 31usize).max(3);
    let dir = temp_dir("walk");

    // 10,000 bound UDP sockets make the rows of snmpd's udpTable.
    let mut sim = None;
    for attempt in 0..10 {
        let base = udp_base(ROWS);
        let mut cmd = with_raised_nofile(&emspool_bin());
        cmd.args([
            "simulate",
            "--listen",
            "127.0.0.2",
            "--agents",
            &ROWS.to_string(),
        ])
        .arg("--base-port")
        .arg(base.to_string());
        let mut p = spawn(&format!("simulate-{attempt}"), cmd, dir.path(), true);
        if p.wait_line("simulating", Duration::from_secs(60)).is_ok() {
            sim = Some(p);
            break;
        }
    }
    let _sim = sim.expect("10,000 bound sockets (emspool simulate)");
    let snmpd = start_snmpd(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let oid = dotted(&UDP_ENDPOINT_PROCESS);
    println!("walk: {}", machine());
    println!(
        "walk: snmpd {} on 127.0.0.1:{}, column {oid} (udpEndpointProcess.ipv4.127.0.0.2), {runs} runs per tool and max-repetitions, medians",
        Command::new("snmpd")
            .arg("-v")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.contains("version"))
                .map(|l| l.trim().to_owned()))
            .unwrap_or_default(),
        snmpd.port
    );
    println!(
        "| max-repetitions | rows min-max (emspool / snmpbulkwalk) | emspool walk | snmpbulkwalk process | snmpbulkwalk 1-row walk (start-up) | snmpbulkwalk walk (process - start-up) | emspool / snmpbulkwalk |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &reps in &reps_list {
        // Warm-up: snmpd caches the table for a while; both tools then see the same cache.
        let (_, rows_net) = timed_snmpbulkwalk(snmpd.port, reps, &oid);
        let (_, rows_ems) = timed_emspool(&rt, snmpd.port, reps);
        assert!(
            rows_net.abs_diff(ROWS) <= 100 && rows_ems.abs_diff(ROWS) <= 100,
            "rows: snmpbulkwalk {rows_net}, emspool {rows_ems}"
        );
        let (mut ems, mut net, mut base) = (Vec::new(), Vec::new(), Vec::new());
        let mut rows = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (d, n) = timed_emspool(&rt, snmpd.port, reps);
            // /proc/net/udp is not read atomically: while other programs open and close
            // sockets, snmpd's reload of the table can miss rows (both tools saw it).
            assert!(n.abs_diff(ROWS) <= 100, "emspool rows {n}");
            rows.0.push(n);
            ems.push(d);
            let (d, n) = timed_snmpbulkwalk(snmpd.port, reps, &oid);
            assert!(n.abs_diff(ROWS) <= 100, "snmpbulkwalk rows {n}");
            rows.1.push(n);
            net.push(d);
            base.push(timed_snmpbulkwalk(snmpd.port, reps, "1.3.6.1.2.1.1.3").0);
        }
        let (e, n, b) = (median(ems), median(net), median(base));
        let walk = n.saturating_sub(b);
        println!(
            "| {reps} | {} / {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.2}x |",
            span(&rows.0),
            span(&rows.1),
            e.as_secs_f64() * 1e3,
            n.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            walk.as_secs_f64() * 1e3,
            e.as_secs_f64() / walk.as_secs_f64().max(1e-9)
        );
    }
    println!("walk: load average after: {}", loadavg());
}
