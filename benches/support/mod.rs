//! Helpers shared by the process-level benchmarks (`harness = false`): child processes killed
//! by pid on drop, free ports, /proc readings, Prometheus text parsing, machine description.
#![allow(dead_code)]

pub mod nats;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// A child process: SIGTERM then SIGKILL on drop, by its pid, only while it is unreaped.
pub struct Proc {
    pub name: String,
    child: Child,
    pub pid: u32,
    pub log: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns with stdout piped (see [`Proc::wait_line`]) and stderr to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf, stdout: bool) -> Proc {
        let err = std::fs::File::create(&log).expect("log file");
        cmd.stdin(Stdio::null()).stderr(err);
        if stdout {
            cmd.stdout(Stdio::piped());
        } else {
            let out = std::fs::OpenOptions::new()
                .append(true)
                .open(&log)
                .expect("log file");
            cmd.stdout(out);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc {
            name: name.into(),
            pid: child.id(),
            child,
            log,
            status: None,
        }
    }

    /// Waits up to `timeout` for a stdout line containing `needle`; returns it.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let out = self.child.stdout.take().ok_or("stdout not piped")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(_) => {}
                Err(_) => {
                    return Err(format!(
                        "{}: no line with {needle:?} within {timeout:?}; stderr:\n{}",
                        self.name,
                        tail(&self.log, 20)
                    ));
                }
            }
        }
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn signal(&mut self, sig: &str) -> bool {
        if self.try_wait().is_some() {
            return false;
        }
        Command::new("/bin/sh")
            .args(["-c", "kill -s \"$0\" \"$1\"", sig, &self.pid.to_string()])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn kill9(&mut self) -> ExitStatus {
        if let Some(st) = self.try_wait() {
            return st;
        }
        let _ = self.child.kill();
        let st = self.child.wait().expect("wait");
        self.status = Some(st);
        st
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn terminate(&mut self, grace: Duration) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(st) = self.try_wait() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill9()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.terminate(Duration::from_secs(5));
        }
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32_768)
}

fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A TCP port free on 127.0.0.1, from 10000..12000 (below any simulator range used here).
pub fn free_tcp_port() -> u16 {
    for _ in 0..1000 {
        let p = 10_000 + (random() % 2_000) as u16;
        if TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, p)).is_ok() {
            return p;
        }
    }
    panic!("no free TCP port in 10000..12000");
}

/// A random base for `n` consecutive UDP ports in 12000..(ephemeral low); the simulator
/// checks them by binding all (a taken port fails its start, then try another base).
pub fn udp_base(n: usize) -> u16 {
    let hi = usize::from(ephemeral_low()).saturating_sub(n);
    assert!(
        hi > 12_000,
        "no room for {n} UDP ports below the ephemeral range"
    );
    (12_000 + random() as usize % (hi - 12_000)) as u16
}

/// Checks that `n` UDP ports from `base` are free now (binds them one at a time).
pub fn udp_run_free(base: u16, n: usize) -> bool {
    (0..n).all(|i| UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, base + i as u16)).is_ok())
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
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

/// Starts `emspool serve --config CONFIG` (this build's binary) and waits until `URL/readyz`
/// answers, checking every `step` up to `tries` times; panics with the log's tail otherwise.
pub fn spawn_serve(
    name: &str,
    config: &std::path::Path,
    log: PathBuf,
    url: &str,
    step: Duration,
    tries: u32,
) -> Proc {
    let mut cmd = Command::new(emspool_bin());
    cmd.arg("serve").arg("--config").arg(config);
    let serve = Proc::spawn(name, cmd, log, false);
    let ready = (0..tries).any(|_| {
        std::thread::sleep(step);
        http_get(&format!("{url}/readyz"), Duration::from_secs(1)).is_some()
    });
    assert!(ready, "{name} not ready:\n{}", tail(&serve.log, 30));
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

/// Sum of the samples of `name` whose labels contain `label` (all when None).
pub fn metric(text: &str, name: &str, label: Option<&str>) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter(|l| label.is_none_or(|lb| l.contains(lb)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
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

/// A temp dir removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "emspool-bench-{prefix}-{}-{:x}",
            std::process::id(),
            random() as u32
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("EMSPOOL_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
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
    use emspool::sim::{Dataset, SimConfig};
    let data = std::sync::Arc::new(Dataset::router24().expect("embedded template"));
    for _ in 0..20 {
        let base = udp_base(n);
        let mut cfg = SimConfig::new(data.clone());
        cfg.agents = n;
        cfg.base_port = base;
        cfg.track_requesters = true;
        match rt.block_on(emspool::sim::start(cfg)) {
            Ok(h) => return (h, base),
            Err(e) => eprintln!("simulator start (base {base}) failed, retrying: {e}"),
        }
    }
    panic!("simulator did not start");
}
