//! Device metrics, side by side in one run:
//!
//! 1. Collection: the same N simulated 24-port routers (moving counters), the same objects
//!    (sysDescr/sysUpTime/sysName + 17 ifTable/ifXTable columns: descr, speed, statuses,
//!    32-bit and 64-bit octets, unicast packets, errors, discards, ifName, ifHighSpeed,
//!    ifAlias), the same rate (every element every INTERVAL): first `emspool serve` polling
//!    them (a window without device scrapes, then a window with a full `/metrics/devices`
//!    scrape every INTERVAL, as Prometheus would), then Debian's `prometheus-snmp-exporter`
//!    0.21 asked for each agent every INTERVAL (`/snmp?target=...&module=if_mib`, the module
//!    written here with numeric OIDs, ifName/ifDescr looked up as labels like the generator's
//!    if_mib). Reported: CPU per element-poll (utime+stime of the process over the window
//!    divided by polls or scrapes), RSS median over the window.
//! 2. One device scrape at M elements x 24 interfaces (`emspool serve` polling M agents every
//!    60 s): series, bytes, wall time, server CPU, series per second, polls finished during
//!    the scrape (the render copies the poller's state in chunks, so polls go on), plain and
//!    gzip, whole and one shard of 4.
//!
//! Commands:
//!
//! ```text
//! apt-get install -y --no-install-recommends prometheus-snmp-exporter
//! cargo bench --bench device_metrics
//! EMSPOOL_BENCH_AGENTS=2000 EMSPOOL_BENCH_INTERVAL_S=20 EMSPOOL_BENCH_WINDOW_S=60 \
//!     EMSPOOL_BENCH_SCRAPE_ELEMENTS=10000 cargo bench --bench device_metrics
//! ```
//!
//! Results go to BENCHMARKS.md ("Device metrics").

mod support;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::*;

/// The walked columns: (name, OID, snmp_exporter type).
const COLUMNS: [(&str, &str, &str); 17] = [
    ("ifDescr", "1.3.6.1.2.1.2.2.1.2", "DisplayString"),
    ("ifSpeed", "1.3.6.1.2.1.2.2.1.5", "gauge"),
    ("ifAdminStatus", "1.3.6.1.2.1.2.2.1.7", "gauge"),
    ("ifOperStatus", "1.3.6.1.2.1.2.2.1.8", "gauge"),
    ("ifInOctets", "1.3.6.1.2.1.2.2.1.10", "counter"),
    ("ifInDiscards", "1.3.6.1.2.1.2.2.1.13", "counter"),
    ("ifInErrors", "1.3.6.1.2.1.2.2.1.14", "counter"),
    ("ifOutOctets", "1.3.6.1.2.1.2.2.1.16", "counter"),
    ("ifOutDiscards", "1.3.6.1.2.1.2.2.1.19", "counter"),
    ("ifOutErrors", "1.3.6.1.2.1.2.2.1.20", "counter"),
    ("ifName", "1.3.6.1.2.1.31.1.1.1.1", "DisplayString"),
    ("ifHCInOctets", "1.3.6.1.2.1.31.1.1.1.6", "counter"),
    ("ifHCInUcastPkts", "1.3.6.1.2.1.31.1.1.1.7", "counter"),
    ("ifHCOutOctets", "1.3.6.1.2.1.31.1.1.1.10", "counter"),
    ("ifHCOutUcastPkts", "1.3.6.1.2.1.31.1.1.1.11", "counter"),
    ("ifHighSpeed", "1.3.6.1.2.1.31.1.1.1.15", "gauge"),
    ("ifAlias", "1.3.6.1.2.1.31.1.1.1.18", "DisplayString"),
];

/// snmp_exporter's module (0.21 format, numeric OIDs: Debian ships no MIBs or generator).
fn snmp_yml() -> String {
    let mut y = String::from(
        "if_mib:\n  version: 2\n  max_repetitions: 10\n  retries: 1\n  timeout: 2s\n  auth:\n    community: public\n  get:\n    - 1.3.6.1.2.1.1.1.0\n    - 1.3.6.1.2.1.1.3.0\n    - 1.3.6.1.2.1.1.5.0\n  walk:\n",
    );
    for (_, oid, _) in COLUMNS {
        y.push_str(&format!("    - {oid}\n"));
    }
    y.push_str(
        "  metrics:\n    - {name: sysDescr, oid: 1.3.6.1.2.1.1.1, type: DisplayString}\n    - {name: sysUpTime, oid: 1.3.6.1.2.1.1.3, type: gauge}\n    - {name: sysName, oid: 1.3.6.1.2.1.1.5, type: DisplayString}\n",
    );
    for (name, oid, ty) in COLUMNS {
        if name == "ifDescr" || name == "ifName" {
            continue; // labels of every other column, as in the generator's if_mib
        }
        y.push_str(&format!(
            "    - name: {name}\n      oid: {oid}\n      type: {ty}\n      indexes: [{{labelname: ifIndex, type: gauge}}]\n      lookups:\n        - {{labels: [ifIndex], labelname: ifName, oid: 1.3.6.1.2.1.31.1.1.1.1, type: DisplayString}}\n        - {{labels: [ifIndex], labelname: ifDescr, oid: 1.3.6.1.2.1.2.2.1.2, type: DisplayString}}\n"
        ));
    }
    y
}

/// Agents whose counters move (`traffic`); who polls them is not recorded, as it costs the
/// simulator time that snmp_exporter's run would not pay.
fn start_sim(rt: &tokio::runtime::Runtime, n: usize) -> (emspool::sim::SimHandle, u16) {
    start_sim_with(rt, n, |cfg| {
        cfg.traffic = true;
        cfg.track_requesters = false;
    })
}

fn serve_config(n: usize, base: u16, port: u16, dir: &TempDir, interval: Duration) -> String {
    single_server_config(n, base, port, dir, interval, 256)
}

struct Serve {
    proc: ChildGuard,
    url: String,
    _dir: TempDir,
}

fn start_serve(n: usize, base: u16, interval: Duration) -> Serve {
    let dir = TempDir::new("devmetrics").expect("temp dir");
    let port = free_tcp_port();
    let url = format!("http://127.0.0.1:{port}");
    let (proc, _) = serve_text(
        dir.path(),
        &url,
        &serve_config(n, base, port, &dir, interval),
    );
    let up = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        let m = metrics_text(&url);
        metric(&m, "emspool_elements", Some("state=\"up\"")) as usize == n
    });
    assert!(up, "not all {n} elements up:\n{}", proc.log_tail_lines(20));
    Serve {
        proc,
        url,
        _dir: dir,
    }
}

/// One GET as sent (no decompression: reqwest is built without it): status, body, time.
fn get_raw(
    rt: &tokio::runtime::Runtime,
    url: &str,
    gzip: bool,
) -> Result<(u16, Vec<u8>, Duration), String> {
    rt.block_on(async {
        let t0 = Instant::now();
        emspool::testing::install_tls_provider();
        let mut req = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(120));
        req = req.header("accept-encoding", if gzip { "gzip" } else { "identity" });
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
        Ok((status, body, t0.elapsed()))
    })
}

fn rss_median(samples: &mut [u64]) -> f64 {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0) as f64 / 1024.0
}

struct Collect {
    who: String,
    polls: f64,
    cpu_s: f64,
    wall_s: f64,
    rss_mib: f64,
    failed: f64,
    note: String,
}

/// Samples RSS once a second for `window`, running `during` in between.
fn window(pid: u32, window: Duration, mut during: impl FnMut()) -> (f64, f64, Vec<u64>) {
    let cpu0 = cpu_seconds(pid).unwrap_or(0.0);
    let t0 = Instant::now();
    let mut rss = Vec::new();
    while t0.elapsed() < window {
        during();
        std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(t0.elapsed())));
        rss.extend(proc_status_field(pid, "VmRSS"));
    }
    (
        cpu_seconds(pid).unwrap_or(0.0) - cpu0,
        t0.elapsed().as_secs_f64(),
        rss,
    )
}

fn emspool_collect(
    rt: &tokio::runtime::Runtime,
    n: usize,
    base: u16,
    interval: Duration,
    win: Duration,
) -> Vec<Collect> {
    let s = start_serve(n, base, interval);
    // One interval for the elements to settle on their own phases.
    std::thread::sleep(interval);
    let mut out = Vec::new();
    for scrape in [false, true] {
        let m0 =
            http_get(&format!("{}/metrics", s.url), Duration::from_secs(10)).unwrap_or_default();
        let mut next_scrape = Instant::now();
        let mut scrape_times = Vec::new();
        let (cpu, wall, mut rss) = window(s.proc.pid(), win, || {
            if scrape && Instant::now() >= next_scrape {
                next_scrape += interval;
                match get_raw(rt, &format!("{}/metrics/devices", s.url), true) {
                    Ok((200, _, t)) => scrape_times.push(t.as_secs_f64() * 1000.0),
                    other => eprintln!("device scrape failed: {other:?}"),
                }
            }
        });
        let m1 =
            http_get(&format!("{}/metrics", s.url), Duration::from_secs(10)).unwrap_or_default();
        let polls =
            metric(&m1, "emspool_polls_total", None) - metric(&m0, "emspool_polls_total", None);
        let up = metric(&m1, "emspool_polls_total", Some("result=\"up\""))
            - metric(&m0, "emspool_polls_total", Some("result=\"up\""));
        out.push(Collect {
            who: if scrape {
                "emspool serve, polls + a gzip /metrics/devices scrape every interval".into()
            } else {
                "emspool serve, polls only".into()
            },
            polls,
            cpu_s: cpu,
            wall_s: wall,
            rss_mib: rss_median(&mut rss),
            failed: polls - up,
            note: if scrape {
                format!(
                    "{} device scrapes, {:.0} ms each (mean)",
                    scrape_times.len(),
                    scrape_times.iter().sum::<f64>() / scrape_times.len().max(1) as f64
                )
            } else {
                String::new()
            },
        });
    }
    out
}

fn exporter_collect(n: usize, base: u16, interval: Duration, win: Duration) -> Collect {
    let dir = TempDir::new("snmp-exporter").expect("temp dir");
    let yml = dir.path().join("snmp.yml");
    std::fs::write(&yml, snmp_yml()).expect("snmp.yml");
    let port = free_tcp_port();
    let mut cmd = std::process::Command::new("prometheus-snmp-exporter");
    cmd.arg(format!("--config.file={}", yml.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn");
    let exporter = spawn("snmp_exporter", cmd, dir.path(), false);
    let url = format!("http://127.0.0.1:{port}");
    let ready = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        http_get(&format!("{url}/"), Duration::from_secs(1)).is_some()
    });
    assert!(
        ready,
        "snmp_exporter not up:\n{}",
        exporter.log_tail_lines(20)
    );
    // Prometheus-like: each agent once per interval on its own phase, 8 scrapers.
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t0 = Instant::now();
    let threads = 8;
    let workers: Vec<_> = (0..threads)
        .map(|k| {
            let (ok, bad, stop, url) = (ok.clone(), bad.clone(), stop.clone(), url.clone());
            std::thread::spawn(move || {
                let mut round = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    for i in (k..n).step_by(threads) {
                        let due = t0 + interval * round + interval.mul_f64(i as f64 / n as f64);
                        while Instant::now() < due {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            std::thread::sleep(
                                (due - Instant::now()).min(Duration::from_millis(100)),
                            );
                        }
                        let target = format!(
                            "{url}/snmp?target=127.0.0.1:{}&module=if_mib",
                            usize::from(base) + i
                        );
                        match http_get(&target, Duration::from_secs(10)) {
                            Some(b) if b.contains("ifHCInOctets{") => {
                                ok.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => bad.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                    round += 1;
                }
            })
        })
        .collect();
    // First round is the warm-up.
    std::thread::sleep(interval);
    let (ok0, bad0) = (ok.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    let (cpu, wall, mut rss) = window(exporter.pid(), win, || {});
    let (ok1, bad1) = (ok.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    Collect {
        who: "prometheus-snmp-exporter, one /snmp scrape per agent every interval".into(),
        polls: (ok1 - ok0 + bad1 - bad0) as f64,
        cpu_s: cpu,
        wall_s: wall,
        rss_mib: rss_median(&mut rss),
        failed: (bad1 - bad0) as f64,
        note: String::new(),
    }
}

struct ScrapeRun {
    what: &'static str,
    series: usize,
    bytes: usize,
    text_bytes: usize,
    wall: Duration,
    cpu_s: f64,
    polls_during: f64,
    polls_expected: f64,
    hwm_before: u64,
    hwm_after: u64,
}

fn scrape_cost(rt: &tokio::runtime::Runtime, m: usize, base: u16) -> (Vec<ScrapeRun>, f64) {
    let interval = Duration::from_secs(60);
    let s = start_serve(m, base, interval);
    std::thread::sleep(Duration::from_secs(5));
    let rss = proc_status_field(s.proc.pid(), "VmRSS").unwrap_or(0) as f64 / 1024.0;
    let mut out = Vec::new();
    for (what, query, gzip) in [
        ("whole, plain", "", false),
        ("whole, gzip", "", true),
        ("shard 0 of 4, plain", "?shard=0&shards=4", false),
        ("shard 0 of 4, gzip", "?shard=0&shards=4", true),
        ("whole, plain (again)", "", false),
    ] {
        let murl = format!("{}/metrics", s.url);
        let m0 = http_get(&murl, Duration::from_secs(10)).unwrap_or_default();
        let hwm_before = proc_status_field(s.proc.pid(), "VmHWM").unwrap_or(0);
        let cpu0 = cpu_seconds(s.proc.pid()).unwrap_or(0.0);
        let (status, body, wall) =
            get_raw(rt, &format!("{}/metrics/devices{query}", s.url), gzip).expect("scrape");
        let cpu = cpu_seconds(s.proc.pid()).unwrap_or(0.0) - cpu0;
        let hwm_after = proc_status_field(s.proc.pid(), "VmHWM").unwrap_or(0);
        let m1 = http_get(&murl, Duration::from_secs(10)).unwrap_or_default();
        assert_eq!(status, 200, "{what}");
        let text = if gzip {
            let mut t = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut t)
                .expect("gzip");
            t
        } else {
            body.clone()
        };
        let series = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty() && l[0] != b'#')
            .count();
        let polls =
            metric(&m1, "emspool_polls_total", None) - metric(&m0, "emspool_polls_total", None);
        let r = ScrapeRun {
            what,
            series,
            bytes: body.len(),
            text_bytes: text.len(),
            wall,
            cpu_s: cpu,
            polls_during: polls,
            polls_expected: m as f64 / interval.as_secs_f64() * wall.as_secs_f64(),
            hwm_before,
            hwm_after,
        };
        eprintln!(
            "  {what}: {} series, {} bytes, {:?}, {:.2} s CPU, {} polls finished meanwhile",
            r.series, r.bytes, r.wall, r.cpu_s, r.polls_during
        );
        out.push(r);
        std::thread::sleep(Duration::from_secs(2));
    }
    (out, rss)
}

fn main() {
    if !bench_mode() {
        println!(
            "device_metrics: run with `cargo bench --bench device_metrics` (skipped in test mode)"
        );
        return;
    }
    let n = env_or("EMSPOOL_BENCH_AGENTS", 2000usize);
    let interval = Duration::from_secs(env_or("EMSPOOL_BENCH_INTERVAL_S", 20));
    let win = Duration::from_secs(env_or("EMSPOOL_BENCH_WINDOW_S", 60));
    let m = env_or("EMSPOOL_BENCH_SCRAPE_ELEMENTS", 10_000usize);
    raise_nofile_or_reexec(n.max(m) + 2000);
    println!("device_metrics: {}", machine());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (sim, base) = start_sim(&rt, n.max(m));

    let mut rows = Vec::new();
    if n > 0 {
        eprintln!("device_metrics: collection, {n} agents every {interval:?} ...");
        rows.extend(emspool_collect(&rt, n, base, interval, win));
        rows.push(exporter_collect(n, base, interval, win));
        println!(
            "\n{n} agents x 24 interfaces, every {}s, {}s windows, load {}\n",
            interval.as_secs(),
            win.as_secs(),
            loadavg()
        );
        println!(
            "| collector | polls in window | failed | CPU (s) | cores | CPU per element-poll | RSS median (MiB) | note |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for r in &rows {
            println!(
                "| {} | {:.0} | {:.0} | {:.2} | {:.3} | {:.3} ms | {:.1} | {} |",
                r.who,
                r.polls,
                r.failed,
                r.cpu_s,
                r.cpu_s / r.wall_s,
                r.cpu_s * 1000.0 / r.polls.max(1.0),
                r.rss_mib,
                r.note
            );
        }
        let per = |r: &Collect| r.cpu_s / r.polls.max(1.0);
        if let [a, b, c] = &rows[..] {
            println!(
                "\nCPU lead over snmp_exporter: {:.1}x polling only, {:.1}x with the device scrapes",
                per(c) / per(a),
                per(c) / per(b)
            );
        }
    }
    if m > 0 {
        eprintln!("device_metrics: one scrape at {m} elements ...");
        let (runs, rss) = scrape_cost(&rt, m, base);
        println!(
            "\nDevice scrape at {m} elements x 24 interfaces (60 s polls, RSS before {rss:.1} MiB), load {}\n",
            loadavg()
        );
        println!(
            "| scrape | series | bytes sent | text bytes | wall time | series/s (wall) | server CPU | polls finished during (expected at 60 s interval) | peak RSS before -> after (MiB) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for r in &runs {
            println!(
                "| {} | {} | {} | {} | {:.0} ms | {:.0} | {:.2} s | {:.0} ({:.0}) | {:.1} -> {:.1} |",
                r.what,
                r.series,
                r.bytes,
                r.text_bytes,
                r.wall.as_secs_f64() * 1000.0,
                r.series as f64 / r.wall.as_secs_f64(),
                r.cpu_s,
                r.polls_during,
                r.polls_expected,
                r.hwm_before as f64 / 1024.0,
                r.hwm_after as f64 / 1024.0
            );
        }
    }
    rt.block_on(sim.shutdown());
}
