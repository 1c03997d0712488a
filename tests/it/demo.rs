//! `emspool demo` end to end: the simulator, a 3-server pool as child processes, the live
//! summary; alarms raised and cleared by the flap and outage schedules; fail-over when the
//! master is killed; clean stop.

use crate::common;

use common::{ChildGuard, TempDir, peer_tempdir, wait_until};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Fast schedules so that alarms come and go within seconds.
const FAST: &[&str] = &[
    "--agents",
    "20",
    "--interval",
    "2s",
    "--poll-interval",
    "2s",
    "--flap-every",
    "10s",
    "--flap-for",
    "4s",
    "--outage-every",
    "16s",
    "--outage-for",
    "6s",
];

struct Demo {
    child: Option<ChildGuard>,
    _logs: TempDir,
    stdout: PathBuf,
}

impl Demo {
    fn start(duration: &str) -> Demo {
        let logs = peer_tempdir("demo-test");
        let mut cmd = Command::new(common::emspool_bin());
        cmd.arg("demo").args(FAST).args(["--duration", duration]);
        let child = common::spawn("demo", cmd, logs.path());
        let stdout = child.stdout_path().to_path_buf();
        Demo {
            child: Some(child),
            _logs: logs,
            stdout,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        self.child
            .as_ref()
            .map(|c| c.log_tail_lines(80))
            .unwrap_or_default()
    }

    /// The pids of the servers, from the banner (`server N  URL  pid P ...`).
    fn server_pids(&self) -> Vec<(u32, u32)> {
        self.output()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == "server").then_some(())?;
                let id = w.next()?.parse().ok()?;
                let _url = w.next()?;
                (w.next()? == "pid").then_some(())?;
                Some((id, w.next()?.parse().ok()?))
            })
            .collect()
    }

    fn temp_dir(&self) -> Option<PathBuf> {
        let out = self.output();
        let line = out.lines().find(|l| l.contains(" config "))?;
        let cfg = line.split(" config ").nth(1)?.split_whitespace().next()?;
        Path::new(cfg).parent().map(Path::to_path_buf)
    }

    /// Summary blocks (from a `--- t+` line to the next), oldest first.
    fn summaries(&self) -> Vec<String> {
        let out = self.output();
        let mut blocks: Vec<String> = Vec::new();
        for l in out.lines() {
            if l.starts_with("--- t+") {
                blocks.push(String::new());
            }
            if let Some(b) = blocks.last_mut() {
                b.push_str(l);
                b.push('\n');
            }
        }
        blocks
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let servers = self.server_pids();
        let dir = self.temp_dir();
        // SIGTERM to the demo, which stops its servers; SIGKILL after a grace period.
        drop(self.child.take());
        // Should the demo have been SIGKILLed, its servers were orphaned: stop those that are
        // still ours (their command line names the demo's config directory).
        if let Some(dir) = dir {
            for (_, pid) in servers {
                if is_demo_server(pid, &dir) {
                    let _ = signal(pid, "KILL");
                }
            }
        }
    }
}

fn is_demo_server(pid: u32, dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let c = String::from_utf8_lossy(&c);
        c.contains("serve") && c.contains(&*dir.to_string_lossy())
    })
}

fn signal(pid: u32, sig: &str) -> bool {
    Command::new("/bin/sh")
        .args(["-c", "kill -s \"$0\" \"$1\"", sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// `since start R raised, C cleared` of a summary.
fn raised_cleared(block: &str) -> Option<(u64, u64)> {
    let rest = block.split("since start ").nth(1)?;
    let mut w = rest.split_whitespace();
    let raised = w.next()?.parse().ok()?;
    let _ = w.next()?;
    let cleared = w.next()?.parse().ok()?;
    Some((raised, cleared))
}

/// The `servers:` line of a summary: (id, state, is master, NEs) per server.
fn servers(block: &str) -> Vec<(u32, String, bool, u64)> {
    let Some(line) = block
        .lines()
        .find(|l| l.trim_start().starts_with("servers:"))
    else {
        return Vec::new();
    };
    line.split('[')
        .skip(1)
        .filter_map(|cell| {
            let w: Vec<&str> = cell
                .trim_end_matches([']', ' '])
                .split_whitespace()
                .collect();
            let id = w.first()?.parse().ok()?;
            let state = w.get(1)?.to_string();
            let master = w.get(2) == Some(&"master");
            let nes = w.get(w.len().checked_sub(2)?)?.parse().ok()?;
            Some((id, state, master, nes))
        })
        .collect()
}

/// `elements: N of M assigned: U up, ...`: (N, U).
fn elements_up(block: &str) -> Option<(u64, u64)> {
    let rest = block.split("elements: ").nth(1)?;
    let mut w = rest.split_whitespace();
    let n = w.next()?.parse().ok()?;
    let up = w.nth(3)?.parse().ok()?;
    Some((n, up))
}

#[test]
fn demo_runs_pool_raises_and_clears_alarms_and_stops_clean() {
    let mut demo = Demo::start("30s");
    let status = demo
        .child
        .as_mut()
        .expect("running")
        .wait_timeout(Duration::from_secs(60));
    let out = demo.output();
    assert!(
        status.is_some_and(|s| s.success()),
        "demo did not exit 0 within 60 s: {status:?}\n{}",
        demo.log_tail()
    );
    let pids = demo.server_pids();
    assert_eq!(
        pids.iter().map(|p| p.0).collect::<Vec<_>>(),
        [1, 2, 3],
        "banner lists 3 servers\n{out}"
    );
    assert!(
        out.contains("emspool status --server http://127.0.0.1:"),
        "{out}"
    );
    let blocks = demo.summaries();
    assert!(blocks.len() >= 5, "few summaries:\n{out}");
    assert!(
        blocks.iter().any(|b| b.contains("master: server 3 (pid")
            && b.contains("[1 alive")
            && b.contains("[2 alive")
            && b.contains("[3 alive master")),
        "no summary with 3 live servers and master 3:\n{out}"
    );
    assert!(
        blocks
            .iter()
            .filter_map(|b| elements_up(b))
            .any(|(n, up)| n == 20 && up >= 15),
        "no summary with 20 elements, most up:\n{out}"
    );
    let (raised, cleared) = blocks
        .last()
        .and_then(|b| raised_cleared(b))
        .unwrap_or_else(|| panic!("no alarm counts in the last summary:\n{out}"));
    assert!(
        raised >= 1 && cleared >= 1,
        "raised {raised}, cleared {cleared}:\n{out}"
    );
    assert!(
        out.contains("alarm.cleared"),
        "no cleared alarm among the recent events:\n{out}"
    );
    assert!(out.contains("--duration reached"), "{out}");
    assert!(out.trim_end().ends_with("demo stopped"), "{out}");
    let dir = demo.temp_dir().expect("temp dir in banner");
    assert!(!dir.exists(), "{} not removed", dir.display());
    for (id, pid) in pids {
        assert!(
            !is_demo_server(pid, &dir),
            "server {id} (pid {pid}) still runs"
        );
    }
}

#[test]
fn killing_the_master_shows_a_new_master_and_rebalanced_elements() {
    let mut demo = Demo::start("50s");
    let master_pid = wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        demo.summaries().iter().find_map(|b| {
            let s = servers(b);
            let balanced = s.len() == 3
                && s.iter()
                    .all(|(_, st, _, n)| st == "alive" && (6..=7).contains(n))
                && s[2].2;
            let pid = b
                .split("master: server 3 (pid ")
                .nth(1)?
                .split(')')
                .next()?
                .parse::<u32>()
                .ok()?;
            balanced.then_some(pid)
        })
    })
    .unwrap_or_else(|e| panic!("no settled pool with master 3: {e}\n{}", demo.log_tail()));
    let dir = demo.temp_dir().expect("temp dir");
    assert!(
        is_demo_server(master_pid, &dir),
        "pid {master_pid} is not a demo server"
    );
    let before = demo.summaries().len();
    assert!(signal(master_pid, "KILL"), "kill -9 {master_pid}");

    let after = wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        demo.summaries().into_iter().skip(before).find(|b| {
            let s = servers(b);
            b.contains("master: server 2 (pid")
                && s.len() == 3
                && s[0] == (1, "alive".into(), false, 10)
                && s[1] == (2, "alive".into(), true, 10)
                && s[2].1 == "exited"
                && elements_up(b).is_some_and(|(n, _)| n == 20)
        })
    })
    .unwrap_or_else(|e| panic!("no new master after the kill: {e}\n{}", demo.log_tail()));
    eprintln!("after the kill:\n{after}");
    let out = demo.output();
    assert!(
        out.contains(&format!("*** server 3 (pid {master_pid}) exited")),
        "{out}"
    );

    let status = demo.child.as_mut().expect("running").terminate();
    assert!(
        status.success(),
        "demo exit {status:?}\n{}",
        demo.log_tail()
    );
    let out = demo.output();
    assert!(out.contains("signal received: stopping"), "{out}");
    assert!(!dir.exists(), "{} not removed", dir.display());
}
