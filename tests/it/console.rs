//! The web console in Debian's headless Chromium (Playwright, tests/browser/console.mjs)
//! against a real 3-server pool polling `emspool simulate` agents with a link-flap schedule:
//! the pool page, an alarm appearing without reload, acknowledgement seen through another
//! member, fail-over in the browser after kill -9 of its server, and the token prompt.
//!
//! Needs `chromium` and `tests/browser/node_modules` (tests/install-peers.sh installs both);
//! fails when they are missing, unless `EMSPOOL_SKIP_BROWSER=1`. Screenshots go to
//! `target/test-artifacts/console/`.

use crate::common;

use common::emspool::Emspool;
use common::pool::Pool;
use common::{ChildGuard, free_port_run, peer_tempdir, repo_root, wait_until};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const AGENTS: usize = 9;
const TIMINGS: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";
const TOKEN: &str = "console-test-token-0123456789";
/// The whole browser run (it waits up to 45 s for a flap).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(240);

fn skip() -> bool {
    std::env::var("EMSPOOL_SKIP_BROWSER").is_ok_and(|v| v == "1")
}

fn browser_dir() -> PathBuf {
    repo_root().join("tests").join("browser")
}

pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("test-artifacts").join("console");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

fn require_browser() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run tests/install-peers.sh (or EMSPOOL_SKIP_BROWSER=1)"
    );
    assert!(
        browser_dir()
            .join("node_modules")
            .join("playwright-core")
            .exists(),
        "tests/browser/node_modules is missing: run tests/install-peers.sh (npm ci)"
    );
}

/// `emspool simulate`: agent i on `base + i`; every 3rd agent's ifIndex 1 goes down for the
/// last 8 s of every 16 s (a LinkDown raised and cleared by the owner).
fn simulator(dir: &Path) -> (ChildGuard, u16) {
    let base = free_port_run(AGENTS);
    let mut cmd = Command::new(common::emspool_bin());
    cmd.args(["simulate", "--agents", &AGENTS.to_string()])
        .args(["--base-port", &base.to_string()])
        .args([
            "--flap-every",
            "16s",
            "--flap-for",
            "8s",
            "--flap-agents",
            "3",
        ]);
    let child = common::spawn("simulate", cmd, dir);
    let out = child.stdout_path().to_owned();
    wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        std::fs::read_to_string(&out)
            .ok()
            .filter(|s| s.contains("simulating"))
    })
    .unwrap_or_else(|e| panic!("simulator did not start: {e}\n{}", child.log_tail()));
    (child, base)
}

fn inventory(base: u16) -> String {
    emspool::testing::support::v2c_inventory(
        "interval = \"1s\"\ntimeout = \"300ms\"\nretries = 1",
        AGENTS,
        base,
        |i| format!("ne{i:03}"),
    )
}

/// The node driver; SIGTERM on drop (Playwright then closes Chromium), SIGKILL if it lingers.
struct Node {
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[test]
fn console_in_headless_chromium_against_a_real_pool() {
    if skip() {
        eprintln!("EMSPOOL_SKIP_BROWSER=1: browser test skipped");
        return;
    }
    require_browser();
    let logs = peer_tempdir("console-test");
    let (_sim, base) = simulator(logs.path());
    let body = inventory(base);
    let mut pool = Pool::start(3, &body, TIMINGS);
    wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        (pool.agrees(3, &[(1, 3), (2, 3), (3, 3)])
            && pool.server(1).get("/api/v1/alarms")["alarms"]
                .as_array()
                .is_some_and(|a| a.len() >= 2 * AGENTS))
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("pool did not settle: {e}\n{:?}", pool.views()));
    let tokened = Emspool::start(
        1,
        &format!("[api]\ntoken = \"{TOKEN}\"\n\n{}", inventory(base)),
    );

    let urls: Vec<String> = pool.servers.iter().map(|s| s.url.clone()).collect();
    let page_id = 3u32;
    let artifacts = artifacts_dir();
    let stderr = std::fs::File::create(logs.path().join("node.stderr")).expect("node stderr");
    let child = Command::new("node")
        .arg("console.mjs")
        .current_dir(browser_dir())
        .env("EMSPOOL_URLS", urls.join(","))
        .env("EMSPOOL_PAGE_ID", page_id.to_string())
        .env("EMSPOOL_TOKEN_URL", &tokened.url)
        .env("EMSPOOL_TOKEN", TOKEN)
        .env("EMSPOOL_ARTIFACTS", &artifacts)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn node (tests/install-peers.sh installs nodejs)");
    let mut node = Node { child };
    let stdout = node.child.stdout.take().expect("node stdout");
    let mut stdin = node.child.stdin.take().expect("node stdin");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let start = Instant::now();
    let mut transcript = Vec::new();
    let mut result: Option<serde_json::Value> = None;
    while start.elapsed() < SCRIPT_DEADLINE {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            if matches!(node.child.try_wait(), Ok(Some(_))) && result.is_some() {
                break;
            }
            continue;
        };
        eprintln!("[browser] {line}");
        transcript.push(line.clone());
        if let Some(id) = line.strip_prefix("KILL ") {
            let id: u32 = id.trim().parse().expect("server id");
            assert_eq!(id, page_id, "the script kills the page's server");
            pool.server_mut(id).kill9();
            writeln!(stdin, "OK killed {id}").expect("answer the script");
            stdin.flush().expect("flush");
        } else if let Some(json) = line.strip_prefix("RESULT ") {
            result = Some(serde_json::from_str(json).expect("RESULT is JSON"));
            break;
        }
    }
    let status = wait_until(Duration::from_secs(15), Duration::from_millis(50), || {
        node.child.try_wait().ok().flatten()
    });
    let node_log = common::file_tail(&logs.path().join("node.stderr"), 40);
    let result = result.unwrap_or_else(|| {
        panic!(
            "no RESULT from the browser run within {SCRIPT_DEADLINE:?}\n{}\n{node_log}",
            transcript.join("\n")
        )
    });
    assert_eq!(
        result["ok"],
        true,
        "browser run failed: {}\nstderr: {node_log}",
        result["error"].as_str().unwrap_or("?")
    );
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "node exit {status:?}"
    );

    // From the Rust side too: the acknowledgement made in the page (on server 3, now dead) is
    // held by the owner and answered by the survivors.
    let acked = result["acked_alarm"].as_u64().expect("acked alarm id");
    for id in [1, 2] {
        let a = pool.server(id).alarms();
        let alarm = a.iter().find(|x| x["id"].as_u64() == Some(acked));
        // The alarm may have moved with its element when server 3 died (a new owner raises it
        // anew); if it is still the same alarm, it must carry the acknowledgement.
        if let Some(alarm) = alarm {
            assert_eq!(alarm["acked_by"], "console-test", "server {id}: {alarm}");
        }
    }
    let latency = result["alarm_latency_ms"].as_i64().expect("latency");
    assert!(latency <= 2000, "alarm raised -> visible took {latency} ms");
    for shot in [
        "pool.png",
        "elements.png",
        "element.png",
        "alarms.png",
        "events.png",
        "failover.png",
        "token-prompt.png",
        "token-refused.png",
    ] {
        let p = artifacts.join(shot);
        assert!(
            std::fs::metadata(&p).is_ok_and(|m| m.len() > 1000),
            "screenshot {}",
            p.display()
        );
    }
}

#[test]
fn console_assets_and_headers_over_http() {
    let s = Emspool::start(1, "");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent.get(&format!("{}/", s.url)).call().expect("GET /");
    assert_eq!(r.status().as_u16(), 200);
    let h = r.headers().clone();
    let csp = h
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        csp.contains(&format!("connect-src 'self' {}", s.url)),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(
        h.get("x-frame-options").map(|v| v.as_bytes()),
        Some(&b"DENY"[..])
    );
    let html = r.body_mut().read_to_string().expect("body");
    assert!(html.contains("/assets/app.js"));
    let (code, js) = s.raw("GET", "/assets/app.js", None);
    assert_eq!(code, 200);
    assert!(js.contains("startStream"));
    assert_eq!(s.raw("GET", "/assets/../Cargo.toml", None).0, 404);
    assert_eq!(s.raw("GET", "/assets/nope.js", None).0, 404);

    // CORS: a member's origin is allowed (preflight included), anything else is not.
    let pre = agent
        .options(&format!("{}/api/v1/alarms", s.url))
        .header("origin", &s.url)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .call()
        .expect("preflight");
    assert_eq!(pre.status().as_u16(), 204);
    assert_eq!(
        pre.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(s.url.as_str())
    );
    let foreign = agent
        .get(&format!("{}/api/v1/pool", s.url))
        .header("origin", "http://evil.example")
        .call()
        .expect("GET");
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // The stream: hello, then the pool, as server-sent events.
    let mut st = agent
        .get(&format!("{}/api/v1/stream", s.url))
        .config()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .call()
        .expect("stream");
    assert_eq!(
        st.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut reader = BufReader::new(st.body_mut().as_reader());
    let mut seen = String::new();
    for _ in 0..50 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
        if seen.contains("event: pool") {
            break;
        }
    }
    assert!(seen.contains("event: hello"), "{seen}");
    assert!(seen.contains("event: pool"), "{seen}");
}
