//! NETCONF at scale, measured: one `emspool serve` (this build's binary, a child process)
//! polls N NETCONF elements over SSH at a 60 s interval, each element with its own kept poll
//! session and (by default) its own notification session.
//!
//!     cargo bench --bench netconf_scale
//!     EMSPOOL_BENCH_NC_ELEMENTS=1000 EMSPOOL_BENCH_INTERVAL_S=60 EMSPOOL_BENCH_WINDOWS=3 \
//!         EMSPOOL_BENCH_NC_MODES=on,off EMSPOOL_BENCH_NC_PER_PEER=100 \
//!         cargo bench --bench netconf_scale
//!
//! The peers are real NETCONF servers on loopback: PyPI `netconf` 2.1 (paramiko SSH) running
//! tests/it/common/ncserver.py from the test venv (tests/install-peers.sh), several processes
//! with `EMSPOOL_BENCH_NC_PER_PEER` listening ports each (default 100, at most 150: the
//! library's select() fails past 1,024 descriptors); every element has its own port
//! (`127.0.0.1:PORT`), so no two elements share an address. All listeners share one ed25519
//! host key, checked through a known_hosts file with one line per element. Each element
//! serves ietf-system and 24 ietf-interfaces; a poll is two `<get>`s. The peers' idle SSH
//! transports wake every `EMSPOOL_BENCH_NC_PEER_WAKEUP_S` (default 1 s; paramiko's own 0.1 s
//! costs ~0.05 cores per 100 idle sessions here, ~1 core of the 2 for 2,000).
//! `EMSPOOL_BENCH_NC_THREADS` sets `[poll.netconf] threads` (default 8, the config default).
//!
//! `EMSPOOL_BENCH_NC_MODES` lists runs: `on` is the default config (`notifications = true`: a
//! second, subscribed session per element), `off` sets `notifications = false`. Per run:
//!
//! - Start-up (bounded by `EMSPOOL_BENCH_NC_WARMUP_S`, default 300 s), sampled every second:
//!   when every element had its first `<get>` (peer side: the server records the last `<get>`
//!   per listening port), when every element was up (`emspool_elements{state="up"}`), and when
//!   all sessions were established (ESTABLISHED TCP connections to the peers' ports in
//!   /proc/net/tcp: N, or 2N with notifications); the first-round poll latency (connect + two
//!   RPCs + queueing for a worker) from the `emspool_poll_duration_seconds` histogram.
//! - Then `EMSPOOL_BENCH_WINDOWS` windows of one interval each: elements whose peer port saw
//!   a `<get>` within the last interval + 1 s at the window's end, polls finished and failed
//!   (`emspool_polls_total`), CPU of emspool and of all peer processes in cores
//!   (utime+stime from /proc/PID/stat over wall time), emspool RSS, threads, open files and
//!   sessions at the window's end, and the load average. /metrics is read only at window ends.
//! - After the windows: poll latency p50/p99 (histogram over the windows) and exact from each
//!   element's `last_duration_ms` (/api/v1/elements), the spread of the elements' `last_poll`
//!   times (how bunched one interval's polls are), elements up, emspool's peak RSS.
//!
//! Every child (emspool, the peers) is stopped by its pid on drop, also on panic. Results go
//! to BENCHMARKS.md.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::*;

const USER: &str = "admin";
const PASSWORD: &str = "nc-scale-pass";
const INTERFACES: usize = 24;

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("EMSPOOL_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/emspool-test/venv"));
    let p = venv.join("bin/python");
    assert!(
        p.exists(),
        "{} missing: run tests/install-peers.sh",
        p.display()
    );
    p
}

fn ncserver_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/common/ncserver.py")
}

/// The peer NETCONF server processes and the listening ports of all of them, in element order.
struct Peers {
    procs: Vec<ChildGuard>,
    dirs: Vec<PathBuf>,
    ports: Vec<u16>,
}

impl Peers {
    fn start(root: &Path, n: usize, per_peer: usize) -> Peers {
        let idle_wakeup = env_or("EMSPOOL_BENCH_NC_PEER_WAKEUP_S", 1.0f64);
        let key = root.join("hostkey");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success(), "ssh-keygen failed");
        let state = serde_json::json!({
            "hostname": "py-ne",
            "boot": "2026-01-01T00:00:00Z",
            "interfaces": (1..=INTERFACES).map(|i| serde_json::json!({
                "name": format!("eth{i}"), "oper": "up", "admin": "up", "index": i
            })).collect::<Vec<_>>(),
            "fault": null,
        });
        let mut peers = Peers {
            procs: Vec::new(),
            dirs: Vec::new(),
            ports: Vec::new(),
        };
        let mut left = n;
        let mut k = 0;
        while left > 0 {
            let count = left.min(per_peer);
            let dir = root.join(format!("peer{k}"));
            std::fs::create_dir_all(&dir).expect("peer dir");
            std::fs::write(dir.join("state.json"), state.to_string()).expect("state.json");
            let mut cmd = Command::new(venv_python());
            cmd.arg(ncserver_script())
                .arg(&dir)
                .arg(USER)
                .arg(PASSWORD)
                .arg(&key)
                .arg("--listeners")
                .arg(count.to_string())
                .arg("--idle-wakeup")
                .arg(idle_wakeup.to_string());
            let mut p = spawn(&format!("ncserver{k}"), cmd, &dir, true);
            let line = p
                .wait_line("listening ", Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("{e}"));
            let ports: Vec<u16> = line
                .trim_start_matches("listening ")
                .split_whitespace()
                .map(|s| s.parse().expect("port"))
                .collect();
            assert_eq!(ports.len(), count, "ncserver{k}: {line}");
            peers.ports.extend(ports);
            peers.procs.push(p);
            peers.dirs.push(dir);
            left -= count;
            k += 1;
        }
        peers
    }

    /// Known_hosts with one line per element port.
    fn known_hosts(&self, root: &Path) -> PathBuf {
        let pubkey = std::fs::read_to_string(root.join("hostkey.pub")).expect("hostkey.pub");
        let mut w = pubkey.split_whitespace();
        let (kind, data) = (w.next().expect("key type"), w.next().expect("key data"));
        let mut s = String::new();
        for p in &self.ports {
            s.push_str(&format!("[127.0.0.1]:{p} {kind} {data}\n"));
        }
        let path = root.join("known_hosts");
        std::fs::write(&path, s).expect("known_hosts");
        path
    }

    /// Per port: the unix time of its last `<get>` (ports without a get are absent).
    fn last_gets(&self) -> Vec<f64> {
        let mut out = Vec::new();
        for d in &self.dirs {
            let text = std::fs::read_to_string(d.join("stats.json")).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(ports) = v["ports"].as_object() {
                out.extend(ports.values().filter_map(|p| p["last"].as_f64()));
            }
        }
        out
    }

    fn cpu(&self) -> f64 {
        self.procs
            .iter()
            .filter_map(|p| cpu_seconds(p.pid()))
            .sum::<f64>()
    }

    fn rss_kib(&self) -> u64 {
        self.procs
            .iter()
            .filter_map(|p| proc_status_field(p.pid(), "VmRSS"))
            .sum()
    }

    fn check_alive(&mut self) {
        for p in &mut self.procs {
            assert!(
                p.try_wait().is_none(),
                "{} exited:\n{}",
                p.name(),
                p.log_tail_lines(30)
            );
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// ESTABLISHED TCP connections whose remote port is one of `ports` (the client ends: only
/// emspool connects to the peers).
fn sessions_to(ports: &HashSet<u16>) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3
                && f[3] == "01"
                && f[2]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    .is_some_and(|p| ports.contains(&p))
        })
        .count()
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn config(
    n: usize,
    ports: &[u16],
    known_hosts: &Path,
    listen: u16,
    dir: &Path,
    interval: Duration,
    notifications: bool,
) -> String {
    let threads = env_or("EMSPOOL_BENCH_NC_THREADS", 8usize);
    let mut s = format!(
        "[server]\nid = 1\nlisten = \"127.0.0.1:{listen}\"\ndata_dir = \"{}\"\nlog_level = \"warn\"\n\n\
         [poll]\ninterval = \"{}s\"\n\n\
         [poll.netconf]\nthreads = {threads}\nnotifications = {notifications}\n\n\
         [credentials.nc]\nversion = \"netconf\"\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\n\
         known_hosts = \"{}\"\n",
        dir.join("data").display(),
        interval.as_secs(),
        known_hosts.display()
    );
    for (i, p) in ports.iter().take(n).enumerate() {
        s.push_str(&format!(
            "\n[[elements]]\nname = \"nc{i:05}\"\naddress = \"127.0.0.1:{p}\"\nprotocol = \"netconf\"\ncredential = \"nc\"\n"
        ));
    }
    s
}

struct Window {
    polled: usize,
    polls: f64,
    failed: f64,
    cores: f64,
    peer_cores: f64,
    rss_kib: u64,
    threads: u64,
    fds: usize,
    sessions: usize,
    load: String,
}

struct Run {
    mode: &'static str,
    n: usize,
    peers: usize,
    ready_after: Duration,
    first_gets: Option<Duration>,
    all_up: Option<Duration>,
    all_sessions: Option<Duration>,
    sessions_expected: usize,
    first_p50: Option<f64>,
    first_p99: Option<f64>,
    first_failed: f64,
    warmup_cores: f64,
    warmup_peer_cores: f64,
    windows: Vec<Window>,
    p50_hist: Option<f64>,
    p99_hist: Option<f64>,
    p50_exact: f64,
    p99_exact: f64,
    max_exact: f64,
    up: usize,
    spread_s: f64,
    hwm_kib: u64,
    peer_rss_kib: u64,
}

fn run(n: usize, per_peer: usize, interval: Duration, windows: usize, notifications: bool) -> Run {
    let mode = if notifications {
        "notifications on"
    } else {
        "notifications off"
    };
    eprintln!("netconf_scale: {n} elements, {mode} ...");
    let dir = temp_dir("nc-scale");
    let mut peers = Peers::start(dir.path(), n, per_peer);
    let port_set: HashSet<u16> = peers.ports.iter().copied().collect();
    let kh = peers.known_hosts(dir.path());
    let listen = free_tcp_port();
    let url = format!("http://127.0.0.1:{listen}");
    let text = config(
        n,
        &peers.ports,
        &kh,
        listen,
        dir.path(),
        interval,
        notifications,
    );
    let started = Instant::now();
    let peer_cpu0 = peers.cpu();
    let (mut serve, ready_after) = serve_text(dir.path(), &url, &text);
    let t0 = Instant::now();
    let metrics = || metrics_text(&url);
    let sessions_expected = if notifications { 2 * n } else { n };

    // Start-up: every element's first poll (its connect) and, with notifications, every
    // subscription. Sampled every second; the peers' stats and /proc are cheap, /metrics too.
    let warmup = Duration::from_secs(env_or("EMSPOOL_BENCH_NC_WARMUP_S", 300u64));
    let (mut first_gets, mut all_up, mut all_sessions) = (None, None, None);
    let mut last_print = Instant::now();
    let mut m = String::new();
    while t0.elapsed() < warmup {
        std::thread::sleep(Duration::from_secs(1));
        serve_alive(&mut serve);
        peers.check_alive();
        let got = peers.last_gets().len();
        let sessions = sessions_to(&port_set);
        m = metrics();
        let up = metric(&m, "emspool_elements", Some("state=\"up\"")) as usize;
        let t = t0.elapsed();
        if first_gets.is_none() && got >= n {
            first_gets = Some(t);
        }
        if all_up.is_none() && up >= n {
            all_up = Some(t);
        }
        if all_sessions.is_none() && sessions >= sessions_expected {
            all_sessions = Some(t);
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            last_print = Instant::now();
            eprintln!(
                "  {:>5.1} s: {got} elements got a <get>, {up} up, {sessions} sessions, emspool {:.1} s CPU, peers {:.1} s CPU, load {}",
                t.as_secs_f64(),
                cpu_seconds(serve.pid()).unwrap_or(0.0),
                peers.cpu() - peer_cpu0,
                loadavg()
            );
        }
        if first_gets.is_some() && all_up.is_some() && all_sessions.is_some() {
            break;
        }
    }
    let first_buckets = buckets(&m, "emspool_poll_duration_seconds");
    let first_p50 = histogram_quantile(0.5, &[], &first_buckets);
    let first_p99 = histogram_quantile(0.99, &[], &first_buckets);
    let first_failed = metric(&m, "emspool_polls_total", None)
        - metric(&m, "emspool_polls_total", Some("result=\"up\""));
    let warm_wall = (Instant::now() - started).as_secs_f64();
    let warmup_cores = cpu_seconds(serve.pid()).unwrap_or(0.0) / warm_wall;
    let warmup_peer_cores = (peers.cpu() - peer_cpu0) / warm_wall;
    eprintln!(
        "  start-up: first <get> on all after {first_gets:?}, all up after {all_up:?}, all {sessions_expected} sessions after {all_sessions:?}"
    );

    // Windows of one interval each, back to back, from the end of the start-up.
    let mut prev_m = metrics();
    let hist_from = prev_m.clone();
    let mut prev_cpu = cpu_seconds(serve.pid()).unwrap_or(0.0);
    let mut prev_peer = peers.cpu();
    let mut prev_t = Instant::now();
    let w0 = prev_t;
    let mut out = Vec::new();
    for k in 0..windows {
        let end = w0 + interval * (k as u32 + 1);
        while Instant::now() < end {
            std::thread::sleep(Duration::from_secs(1).min(end - Instant::now()));
            serve_alive(&mut serve);
            peers.check_alive();
        }
        let cpu = cpu_seconds(serve.pid()).unwrap_or(0.0);
        let peer_cpu = peers.cpu();
        let now = Instant::now();
        let since = unix_now() - (interval + Duration::from_secs(1)).as_secs_f64();
        let polled = peers.last_gets().iter().filter(|&&t| t >= since).count();
        let rss_kib = proc_status_field(serve.pid(), "VmRSS").unwrap_or(0);
        let threads = proc_status_field(serve.pid(), "Threads").unwrap_or(0);
        let fds = open_files(serve.pid());
        let sessions = sessions_to(&port_set);
        let m = metrics();
        let wall = (now - prev_t).as_secs_f64();
        let polls = metric(&m, "emspool_polls_total", None);
        let ups = metric(&m, "emspool_polls_total", Some("result=\"up\""));
        let w = Window {
            polled,
            polls: polls - metric(&prev_m, "emspool_polls_total", None),
            failed: (polls - ups)
                - (metric(&prev_m, "emspool_polls_total", None)
                    - metric(&prev_m, "emspool_polls_total", Some("result=\"up\""))),
            cores: (cpu - prev_cpu) / wall,
            peer_cores: (peer_cpu - prev_peer) / wall,
            rss_kib,
            threads,
            fds,
            sessions,
            load: loadavg(),
        };
        eprintln!(
            "  window {k}: {} elements polled, {:.0} polls ({:.0} failed), emspool {:.3} cores, peers {:.3} cores, RSS {} KiB, {} threads, {} fds, {} sessions, load {}",
            w.polled,
            w.polls,
            w.failed,
            w.cores,
            w.peer_cores,
            w.rss_kib,
            w.threads,
            w.fds,
            w.sessions,
            w.load
        );
        out.push(w);
        prev_m = m;
        prev_cpu = cpu;
        prev_peer = peer_cpu;
        prev_t = now;
    }
    let hwm_kib = proc_status_field(serve.pid(), "VmHWM").unwrap_or(0);
    let peer_rss_kib = peers.rss_kib();
    let name = "emspool_poll_duration_seconds";
    let (before, after) = (buckets(&hist_from, name), buckets(&prev_m, name));
    let p50_hist = histogram_quantile(0.5, &before, &after);
    let p99_hist = histogram_quantile(0.99, &before, &after);

    let (els, d, up) = elements_polled(&url);
    // How bunched the polls are: the spread of the elements' last poll times.
    let last: Vec<f64> = els
        .iter()
        .filter_map(|e| e["status"]["last_poll"].as_f64())
        .collect();
    let spread_s = last.iter().copied().fold(f64::NAN, f64::max)
        - last.iter().copied().fold(f64::NAN, f64::min);
    let st = serve.terminate_within(Duration::from_secs(30));
    assert!(
        st.success(),
        "serve exit {st:?}:\n{}",
        serve.log_tail_lines(30)
    );
    let n_peers = peers.procs.len();
    drop(peers);
    Run {
        mode,
        n,
        peers: n_peers,
        ready_after,
        first_gets,
        all_up,
        all_sessions,
        sessions_expected,
        first_p50,
        first_p99,
        first_failed,
        warmup_cores,
        warmup_peer_cores,
        windows: out,
        p50_hist,
        p99_hist,
        p50_exact: quantile(&d, 0.5),
        p99_exact: quantile(&d, 0.99),
        max_exact: d.last().copied().unwrap_or(f64::NAN),
        up,
        spread_s: spread_s / 1000.0,
        hwm_kib,
        peer_rss_kib,
    }
}

fn serve_alive(serve: &mut ChildGuard) {
    assert!(
        serve.try_wait().is_none(),
        "serve exited:\n{}",
        serve.log_tail_lines(30)
    );
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("not within the start-up bound".into(), |d| {
        format!("{:.1} s", d.as_secs_f64())
    })
}

fn ms(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| format!("{:.1} ms", s * 1000.0))
}

fn main() {
    if !bench_mode() {
        println!(
            "netconf_scale: run with `cargo bench --bench netconf_scale` (skipped in test mode)"
        );
        return;
    }
    let n = env_or("EMSPOOL_BENCH_NC_ELEMENTS", 1000usize).max(1);
    // sshutil (under ncserver.py) calls select() on accepted sockets: a peer process fails
    // once its descriptors pass 1,024 (3 per listener + 2 sessions per element).
    let per_peer = env_or("EMSPOOL_BENCH_NC_PER_PEER", 100usize).clamp(1, 150);
    let interval = Duration::from_secs(env_or("EMSPOOL_BENCH_INTERVAL_S", 60));
    let windows = env_or("EMSPOOL_BENCH_WINDOWS", 3usize).max(1);
    let modes: Vec<bool> = std::env::var("EMSPOOL_BENCH_NC_MODES")
        .unwrap_or_else(|_| "on,off".into())
        .split(',')
        .filter_map(|s| match s.trim() {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        })
        .collect();
    // Two sessions per element, and the peers' sockets, all inherit this limit.
    raise_nofile_or_reexec(2 * n + 2000);
    println!("netconf_scale: {}", machine());
    println!(
        "netconf_scale: {n} elements, {per_peer} per peer process, interval {interval:?}, {windows} windows, notifications {modes:?}"
    );
    let mut runs = Vec::new();
    for &on in &modes {
        runs.push(run(n, per_peer, interval, windows, on));
    }
    println!("\nStart-up (from readiness):\n");
    println!(
        "| run | elements / peer processes | ready after | every element's first `<get>` | all up | all sessions established | first-round poll p50 / p99 (histogram) | failed polls | emspool / peers CPU cores over start-up |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {} / {} | {:.1} s | {} | {} | {} ({}) | {} / {} | {:.0} | {:.2} / {:.2} |",
            r.mode,
            r.n,
            r.peers,
            r.ready_after.as_secs_f64(),
            secs(r.first_gets),
            secs(r.all_up),
            secs(r.all_sessions),
            r.sessions_expected,
            ms(r.first_p50),
            ms(r.first_p99),
            r.first_failed,
            r.warmup_cores,
            r.warmup_peer_cores,
        );
    }
    println!("\nSteady state, per window of one interval (values per window, separated by /):\n");
    println!(
        "| run | elements with a `<get>` in the last interval + 1 s | polls (target = elements) | failed polls | emspool CPU cores | peers CPU cores | emspool RSS (MiB) | threads | open files | sessions | load average (1 5 15 min) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        let list =
            |f: &dyn Fn(&Window) -> String| r.windows.iter().map(f).collect::<Vec<_>>().join(" / ");
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.mode,
            list(&|w| w.polled.to_string()),
            list(&|w| format!("{:.0}", w.polls)),
            list(&|w| format!("{:.0}", w.failed)),
            list(&|w| format!("{:.3}", w.cores)),
            list(&|w| format!("{:.3}", w.peer_cores)),
            list(&|w| format!("{:.1}", w.rss_kib as f64 / 1024.0)),
            list(&|w| w.threads.to_string()),
            list(&|w| w.fds.to_string()),
            list(&|w| w.sessions.to_string()),
            list(&|w| w.load.clone()),
        );
    }
    println!("\nAfter the windows:\n");
    println!(
        "| run | poll p50 / p99 (histogram, all windows) | last poll p50 / p99 / max (exact) | last polls ended within | up at end | emspool peak RSS (MiB) | peers RSS (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {} / {} | {:.0} / {:.0} / {:.0} ms | {:.2} s | {} / {} | {:.1} | {:.1} |",
            r.mode,
            ms(r.p50_hist),
            ms(r.p99_hist),
            r.p50_exact,
            r.p99_exact,
            r.max_exact,
            r.spread_s,
            r.up,
            r.n,
            r.hwm_kib as f64 / 1024.0,
            r.peer_rss_kib as f64 / 1024.0,
        );
    }
}
