//! Dev-side support shared by `emspool demo`, the integration tests and the benchmarks: free
//! loopback ports, the simulator started on a free port run, temporary directories, and (for
//! tests and benches only) child processes that are always stopped and a reader of the
//! Prometheus text that `/metrics` answers.
//!
//! One implementation so that the three callers agree on where ports come from: a port handed
//! out here is never handed out again by this process, whether it went to an `emspool serve`
//! child, a peer daemon or the simulator. Tests and benches reach it through `emspool::testing`
//! and add their own panics with context; nothing here panics.

#[cfg(feature = "testing")]
mod child;
mod ports;
mod tempdir;

#[cfg(feature = "testing")]
pub use child::ChildGuard;
pub use ports::{free_port, start_sim};
#[cfg(feature = "testing")]
pub use ports::{free_port_run, reserve_port_run};
pub use tempdir::TempDir;

use std::path::Path;

/// Sum of the samples of metric `name` in a Prometheus text exposition whose labels contain
/// `label` (all of its samples when `None`).
#[cfg(feature = "testing")]
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

/// The last `lines` lines of a text file, or a note when it cannot be read (for error
/// messages that show a child's log).
pub fn file_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Sends signal `sig` (`"TERM"`, `"KILL"`, `"STOP"`...) to `pid` with the `kill` builtin of
/// /bin/sh (no libc binding needed). Callers pass only the PID of their own unreaped child,
/// which therefore cannot have been reused by another process. Returns whether `kill`
/// succeeded.
pub fn signal_pid(pid: u32, sig: &str) -> bool {
    if pid == 0 {
        return false;
    }
    std::process::Command::new("/bin/sh")
        .args(["-c", "kill -s \"$0\" \"$1\"", sig, &pid.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// utime + stime of a process, in seconds.
#[cfg(feature = "testing")]
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

#[cfg(feature = "testing")]
fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Config text for simulated v2c agents on consecutive loopback ports: the `[poll]` table with
/// `poll` as its body, the `public` credential and `n` elements named by `name(i)` at
/// `127.0.0.1:base+i`. The benches and the tests build their pools' inventories with it, so
/// that they all poll the agents the same way.
#[cfg(feature = "testing")]
pub fn v2c_inventory(poll: &str, n: usize, base: u16, name: impl Fn(usize) -> String) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "[poll]\n{poll}\n\n[credentials.public]\nversion = \"v2c\"\ncommunity = \"public\"\n"
    );
    for i in 0..n {
        let _ = write!(
            s,
            "\n[[elements]]\nname = \"{}\"\naddress = \"127.0.0.1:{}\"\ncredential = \"public\"\n",
            name(i),
            usize::from(base).saturating_add(i)
        );
    }
    s
}
