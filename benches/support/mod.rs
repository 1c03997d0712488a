//! Helpers shared by the process-level benchmarks (`harness = false`): /proc readings,
//! Prometheus text parsing, machine description, and panicking wrappers around emspool's one
//! implementation of free ports, temp dirs and guarded child processes
//! (`emspool::testing::support`, shared with the tests and `emspool demo`).
#![allow(dead_code, unused_imports)]

pub use emspool::testing::support::{self, ChildGuard, TempDir, cpu_seconds, metric};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `cargo bench` passes `--bench`; `cargo test --benches` does not: then only say so and exit,
/// as criterion does, so that the test suite never runs a minutes-long measurement.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

pub fn emspool_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_emspool"))
}

/// Raises the soft open-files limit to the hard one, then execs the program (10,000 agents
/// need 10,000 sockets).
pub fn with_raised_nofile(program: &Path) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; exec \"$0\" \"$@\"")
        .arg(program);
    cmd
}

/// Spawns a guarded child (SIGTERM then SIGKILL on drop, by its pid, only while unreaped)
/// logging to `<name>.stdout`/`<name>.stderr` in `log_dir`; with `piped`, stdout is read by
/// [`ChildGuard::wait_line`] instead. Panics when it cannot start.
pub fn spawn(name: &str, cmd: Command, log_dir: &Path, piped: bool) -> ChildGuard {
    let spawned = if piped {
        ChildGuard::spawn_piped(name, cmd, log_dir)
    } else {
        ChildGuard::spawn(name, cmd, log_dir)
    };
    spawned.unwrap_or_else(|e| panic!("{e}"))
}

/// A port free on 127.0.0.1 (TCP and UDP), never handed out before by this process.
pub fn free_tcp_port() -> u16 {
    support::free_port().unwrap_or_else(|e| panic!("free port: {e}"))
}

/// A base for `n` consecutive UDP ports for a simulator child, which checks them by binding
/// all (a taken port fails its start: then ask again).
pub fn udp_base(n: usize) -> u16 {
    support::reserve_port_run(n).unwrap_or_else(|e| panic!("port run: {e}"))
}

/// The number on a line of /proc/PID/status (VmRSS and VmHWM in KiB, Threads...).
pub fn proc_status_field(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Starts `emspool serve --config CONFIG` (this build's binary, logging in `log_dir`) and
/// waits until `URL/readyz` answers, checking every `step` up to `tries` times; panics with
/// the log's tail otherwise.
pub fn spawn_serve(
    name: &str,
    config: &Path,
    log_dir: &Path,
    url: &str,
    step: Duration,
    tries: u32,
) -> ChildGuard {
    let mut cmd = Command::new(emspool_bin());
    cmd.arg("serve").arg("--config").arg(config);
    let serve = spawn(name, cmd, log_dir, false);
    let ready = (0..tries).any(|_| {
        std::thread::sleep(step);
        http_get(&format!("{url}/readyz"), Duration::from_secs(1)).is_some()
    });
    assert!(ready, "{name} not ready:\n{}", serve.log_tail_lines(30));
    serve
}

pub fn http_get(url: &str, timeout: Duration) -> Option<String> {
    let mut r = ureq::get(url)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .call()
        .ok()?;
    r.body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .ok()
}

/// Every element of the server at `url` (`GET /api/v1/elements`), the durations of their last
/// polls in ms (sorted), and how many are up.
pub fn elements_polled(url: &str) -> (Vec<serde_json::Value>, Vec<f64>, usize) {
    let body =
        http_get(&format!("{url}/api/v1/elements"), Duration::from_secs(60)).expect("elements");
    let v: serde_json::Value = serde_json::from_str(&body).expect("elements JSON");
    let els = v["elements"].as_array().cloned().unwrap_or_default();
    let mut d: Vec<f64> = els
        .iter()
        .filter_map(|e| e["status"]["last_duration_ms"].as_f64())
        .collect();
    d.sort_by(f64::total_cmp);
    let up = els.iter().filter(|e| e["status"]["state"] == "up").count();
    (els, d, up)
}

/// Cumulative histogram buckets `(le, count)` of `name`, ascending.
pub fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut v: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let le = rest.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// Quantile from cumulative bucket deltas, linear within the bucket (as Prometheus does).
pub fn histogram_quantile(q: f64, before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<f64> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, c)| {
            let b = before.iter().find(|x| x.0 == le).map_or(0.0, |x| x.1);
            (le, c - b)
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, c) in &delta {
        if c >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let frac = if c > prev.1 {
                (rank - prev.1) / (c - prev.1)
            } else {
                0.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, c);
    }
    None
}

/// Exact quantile of a sample (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// nproc, memory, CPU model, kernel, load average: the header of every result.
pub fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map_or("?".into(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1048576.0)
        });
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))?
                .split(':')
                .nth(1)
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "nproc {nproc}, memory {mem}, CPU {cpu}, kernel {}, load average {}",
        kernel.trim(),
        loadavg()
    )
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A temp dir removed on drop (kept when `EMSPOOL_BENCH_KEEP` is set).
pub fn temp_dir(prefix: &str) -> TempDir {
    TempDir::new(&format!("bench-{prefix}"))
        .unwrap_or_else(|e| panic!("temp dir: {e}"))
        .keep(std::env::var_os("EMSPOOL_BENCH_KEEP").is_some())
}

pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The soft open-files limit of this process, from /proc/self/limits: (soft, hard).
pub fn nofile() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let l = s.lines().find(|l| l.starts_with("Max open files"))?;
    let mut w = l["Max open files".len()..].split_whitespace();
    let parse = |v: &str| {
        if v == "unlimited" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    };
    Some((parse(w.next()?)?, parse(w.next()?)?))
}

/// Makes sure this process may open `need` files: if the soft limit is lower, re-executes the
/// bench under `sh -c 'ulimit -n HARD; exec ...'` (once). Panics when the hard limit is too low.
pub fn raise_nofile_or_reexec(need: usize) {
    let Some((soft, hard)) = nofile() else {
        return;
    };
    if soft >= need as u64 {
        return;
    }
    assert!(
        hard >= need as u64 && std::env::var_os("EMSPOOL_BENCH_REEXEC").is_none(),
        "need {need} open files; the limit is {soft} (hard {hard}): raise it with ulimit -n"
    );
    let exe = std::env::current_exe().expect("current exe");
    let status = with_raised_nofile(&exe)
        .args(std::env::args_os().skip(1))
        .env("EMSPOOL_BENCH_REEXEC", "1")
        .status()
        .expect("re-exec under a raised ulimit");
    std::process::exit(status.code().unwrap_or(1));
}

/// N simulated 24-port routers on consecutive UDP ports (a free range, retried), recording
/// which server's requests reach each agent.
pub fn start_sim(rt: &tokio::runtime::Runtime, n: usize) -> (emspool::sim::SimHandle, u16) {
    start_sim_with(rt, n, |_| {})
}

/// [`start_sim`] with the simulator's config changed by `tune` first.
pub fn start_sim_with(
    rt: &tokio::runtime::Runtime,
    n: usize,
    tune: impl FnOnce(&mut emspool::sim::SimConfig),
) -> (emspool::sim::SimHandle, u16) {
    use emspool::sim::{Dataset, SimConfig};
    let mut cfg = SimConfig::new(std::sync::Arc::new(
        Dataset::router24().expect("embedded template"),
    ));
    cfg.agents = n;
    cfg.track_requesters = true;
    tune(&mut cfg);
    let sim = rt
        .block_on(support::start_sim(cfg))
        .unwrap_or_else(|e| panic!("simulator: {e:#}"));
    let base = sim.addr(0).expect("agent 0").port();
    (sim, base)
}

/// One server (id 1, warn log) polling `n` simulated agents at `127.0.0.1:base..` (elements
/// `ne00000`...) every `interval` with `concurrency` polls in flight.
pub fn single_server_config(
    n: usize,
    base: u16,
    port: u16,
    dir: &TempDir,
    interval: Duration,
    concurrency: usize,
) -> String {
    format!(
        "[server]\nid = 1\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nlog_level = \"warn\"\n\n{}",
        dir.path().join("data").display(),
        support::v2c_inventory(
            &format!(
                "interval = \"{}s\"\ntimeout = \"2s\"\nretries = 1\nconcurrency = {concurrency}",
                interval.as_secs()
            ),
            n,
            base,
            |i| format!("ne{i:05}"),
        )
    )
}

/// Writes `text` as `DIR/emspool.toml` and starts `emspool serve` on it (logging in `dir`),
/// ready: the child and how long it took to answer `/readyz`. `url` is the server's API.
pub fn serve_text(dir: &Path, url: &str, text: &str) -> (ChildGuard, Duration) {
    let cfg = dir.join("emspool.toml");
    std::fs::write(&cfg, text).expect("config");
    let started = std::time::Instant::now();
    let serve = spawn_serve("serve", &cfg, dir, url, Duration::from_millis(100), 600);
    (serve, started.elapsed())
}

/// The server's `/metrics` text (empty when it does not answer within 10 s).
pub fn metrics_text(url: &str) -> String {
    http_get(&format!("{url}/metrics"), Duration::from_secs(10)).unwrap_or_default()
}

/// One `emspool serve` of a bench's pool on loopback; restartable, with a log pair per start
/// (a restart must not overwrite the log of the killed one).
pub struct PoolServer {
    pub id: u32,
    pub url: String,
    pub config: PathBuf,
    pub log_dir: PathBuf,
    pub proc: Option<ChildGuard>,
    pub starts: u32,
    /// How `spawn` waits for `/readyz`: every `ready_step`, `ready_tries` times.
    pub ready_step: Duration,
    pub ready_tries: u32,
    /// Deadline of one `get`.
    pub get_timeout: Duration,
}

impl PoolServer {
    pub fn spawn(&mut self) {
        self.starts += 1;
        self.proc = Some(spawn_serve(
            &format!("serve-{}-{}", self.id, self.starts),
            &self.config,
            &self.log_dir,
            &self.url,
            self.ready_step,
            self.ready_tries,
        ));
    }

    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        let body = http_get(&format!("{}{path}", self.url), self.get_timeout)?;
        serde_json::from_str(&body).ok()
    }
}

/// The configurations of a pool of `servers` members (ids 1..=N on free loopback ports, pool
/// secret `secret`, 250 ms heartbeats, 1 s failure timeout) sharing `inventory`, written into
/// `dir`; nothing started yet.
pub fn pool_servers(dir: &Path, servers: u32, secret: &str, inventory: &str) -> Vec<PoolServer> {
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < servers as usize {
        let p = free_tcp_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    let members: String = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "\n[[pool.members]]\nid = {}\nurl = \"http://127.0.0.1:{p}\"\n",
                i + 1
            )
        })
        .collect();
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let id = i as u32 + 1;
            let config = dir.join(format!("s{id}.toml"));
            let text = format!(
                "[server]\nid = {id}\nlisten = \"127.0.0.1:{p}\"\ndata_dir = \"{}\"\nlog_level = \"warn\"\n\n\
                 [pool]\nsecret = \"{secret}\"\nheartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"\n{members}\n{inventory}",
                dir.join(format!("s{id}-data")).display()
            );
            std::fs::write(&config, text).expect("config");
            PoolServer {
                id,
                url: format!("http://127.0.0.1:{p}"),
                config,
                log_dir: dir.to_path_buf(),
                proc: None,
                starts: 0,
                ready_step: Duration::from_millis(100),
                ready_tries: 600,
                get_timeout: Duration::from_secs(5),
            }
        })
        .collect()
}

/// What every member says of the pool (`/api/v1/pool`), a line each: for a panic message.
pub fn pool_views(servers: &[PoolServer]) -> String {
    servers
        .iter()
        .filter_map(|s| s.get("/api/v1/pool").map(|v| format!("{}: {v}", s.id)))
        .collect::<Vec<_>>()
        .join("\n")
}
