//! Operating a server: Prometheus metrics (promtool), alert rules, the Grafana dashboard,
//! configuration reload on SIGHUP, systemd readiness notification, journald/JSON logging.

use crate::common;

use common::agents::Agents;
use common::emspool::Emspool;
use common::{ChildGuard, free_port, peer_tempdir, repo_root, wait_until};
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// promtool: `$EMSPOOL_PROMTOOL`, the copy tests/install-peers.sh extracts, or PATH.
fn promtool() -> PathBuf {
    if let Some(p) = std::env::var_os("EMSPOOL_PROMTOOL") {
        return PathBuf::from(p);
    }
    let extracted = PathBuf::from("/opt/emspool-test/bin/promtool");
    if extracted.exists() {
        return extracted;
    }
    common::find_tool("promtool")
}

/// Runs `cmd` with `stdin` as input; returns (success, stdout + stderr).
fn run_with_input(cmd: &mut Command, stdin: &str) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn scrape(e: &Emspool) -> String {
    let (status, body) = e.raw("GET", "/metrics", None);
    assert_eq!(status, 200, "{body}");
    body
}

/// Metric family names in an exposition (from `# TYPE` lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The value of one sample line, e.g. `emspool_config_reloads_total{result="success"}`.
pub(super) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// `emspool_*` names used in a PromQL text, with histogram suffixes mapped to the family.
fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("emspool_") {
        let start = i + pos;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if before_ok {
            let name = &text[start..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| f.ends_with("_seconds")))
                .unwrap_or(name);
            names.insert(family.to_owned());
        }
        i = end;
    }
    names
}

fn dashboard() -> serde_json::Value {
    let path = repo_root().join("packaging/grafana/emspool.json");
    let text = std::fs::read_to_string(&path).expect("read dashboard");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()))
}

fn dashboard_exprs(d: &serde_json::Value) -> Vec<String> {
    let mut v = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            v.push(t["expr"].as_str().expect("expr").to_owned());
        }
    }
    v
}

/// Families that only appear once something used them (label values not known in advance).
const APPEAR_ON_USE: &[&str] = &["emspool_peer_requests_total"];

#[test]
fn metrics_follow_prometheus_conventions_and_feed_rules_and_dashboard() {
    let agents = Agents::start(1);
    let ems = Emspool::start(1, &agents.inventory());
    wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        (ems.state("ne000").as_deref() == Some("up")).then_some(())
    })
    .unwrap_or_else(|e| panic!("ne000 not up: {e}\n{}", ems.log_tail()));
    // An API error and an alarm-free poll round make the counters move.
    let _ = ems.raw("GET", "/api/v1/elements/nope", None);
    let text = scrape(&ems);

    let (ok, out) = run_with_input(Command::new(promtool()).args(["check", "metrics"]), &text);
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}\n---\n{text}"
    );

    let fams = families(&text);
    for f in &fams {
        assert!(f.starts_with("emspool_"), "{f}: not under emspool_");
        assert!(text.contains(&format!("# HELP {f} ")), "{f}: no HELP text");
    }
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut it = line.split_whitespace();
        let (name, kind) = (it.next().unwrap(), it.next().unwrap());
        if kind == "counter" {
            assert!(
                name.ends_with("_total"),
                "counter {name} must end in _total"
            );
        } else {
            assert!(
                !name.ends_with("_total"),
                "{kind} {name} must not end in _total"
            );
        }
        assert!(
            !name.contains("_ms") && !name.contains("millis"),
            "{name}: use base units (seconds)"
        );
    }
    assert_eq!(sample(&text, "emspool_is_master"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "emspool_inventory_elements"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "emspool_elements_owned"), Some(1.0), "{text}");
    assert!(sample(&text, "emspool_polls_total{result=\"up\"}").unwrap_or(0.0) >= 1.0);
    assert_eq!(
        sample(&text, "emspool_polls_total{result=\"down\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                "emspool_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0)
    );

    // Every metric the alert rules and the dashboard use is one the server exports.
    let rules = std::fs::read_to_string(repo_root().join("packaging/prometheus/emspool-rules.yml"))
        .expect("rules");
    let mut used = metric_names_in(&rules);
    for e in dashboard_exprs(&dashboard()) {
        used.extend(metric_names_in(&e));
    }
    assert!(used.len() >= 10, "{used:?}");
    for name in &used {
        assert!(
            fams.contains(name) || APPEAR_ON_USE.contains(&name.as_str()),
            "rules or dashboard use {name}, which /metrics does not export:\n{fams:?}"
        );
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let dir = repo_root().join("packaging/prometheus");
    for args in [
        ["check", "rules", "emspool-rules.yml"],
        ["test", "rules", "emspool-rules.test.yml"],
    ] {
        let out = Command::new(promtool())
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn grafana_dashboard_is_well_formed() {
    let d = dashboard();
    assert_eq!(d["uid"], "emspool-pool");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vars, ["datasource", "job"]);
    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for p in d["panels"].as_array().expect("panels") {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        let g = &p["gridPos"];
        assert!(
            g["w"].as_u64().is_some_and(|w| (1..=24).contains(&w)),
            "{p}"
        );
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "{p}"
        );
        if p["type"] == "row" {
            continue;
        }
        assert!(
            ["stat", "timeseries"].contains(&p["type"].as_str().unwrap()),
            "{p}"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{p}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{p}");
        for t in targets {
            let e = t["expr"].as_str().expect("expr");
            // Every query is scoped to the chosen pool.
            assert!(e.contains("job=\"$job\""), "{e}");
            assert_eq!(e.matches('(').count(), e.matches(')').count(), "{e}");
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries}");
}

fn element_config(community: &str, agents: &Agents, n: usize) -> String {
    let mut s = format!(
        "[poll]\ninterval = \"1s\"\ntimeout = \"300ms\"\nretries = 0\n\n[credentials.lab]\nversion = \"v2c\"\ncommunity = \"{community}\"\n"
    );
    for i in 0..n {
        s.push_str(&format!(
            "\n[[elements]]\nname = \"{}\"\naddress = \"127.0.0.1:{}\"\ncredential = \"lab\"\n",
            Agents::name(i),
            usize::from(agents.base) + i
        ));
    }
    s
}

fn wait_state(ems: &Emspool, name: &str, state: &str) {
    wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        (ems.state(name).as_deref() == Some(state)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{name} not {state}: {e}\n{}", ems.log_tail()));
}

fn count_in_file(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

#[test]
fn sighup_reloads_credentials_inventory_and_log_level_and_survives_a_bad_file() {
    let agents = Agents::start(2);
    // A wrong community: the agent stays silent, the element is down.
    // RUST_LOG would override `log_level` and void the log-level checks below: cleared for
    // the child whatever the test runner's environment says.
    let mut ems = Emspool::configure(
        1,
        free_port(),
        &element_config("not-the-community", &agents, 1),
    );
    ems.set_env("RUST_LOG", None);
    ems.spawn();
    wait_state(&ems, "ne000", "down");
    assert!(ems.element("ne001").is_none());
    let stderr = ems.stderr_path().expect("running");

    // 1. Right community and a second element.
    ems.rewrite_config(&format!(
        "log_level = \"info,emspool=debug\"\n\n{}",
        element_config("public", &agents, 2)
    ));
    assert!(ems.signal("HUP"));
    wait_state(&ems, "ne000", "up");
    wait_state(&ems, "ne001", "up");
    let ev = ems.events("kind=config.reloaded");
    assert_eq!(ev.len(), 1, "{ev:?}");
    let text = ev[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("credential profile"), "{text}");
    assert!(text.contains("inventory (1 element change"), "{text}");
    assert!(!text.contains("public"), "a secret in an event: {text}");
    let m = scrape(&ems);
    assert_eq!(
        sample(&m, "emspool_config_reloads_total{result=\"success\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&m, "emspool_inventory_elements"), Some(2.0), "{m}");
    assert_eq!(count_in_file(&stderr, "configuration reloaded from"), 1);

    // 2. Only the log level, to warn: the reload's own info line is no longer written.
    ems.rewrite_config(&format!(
        "log_level = \"warn\"\n\n{}",
        element_config("public", &agents, 2)
    ));
    assert!(ems.signal("HUP"));
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        (ems.events("kind=config.reloaded").len() == 2).then_some(())
    })
    .unwrap_or_else(|e| panic!("second reload: {e}\n{}", ems.log_tail()));
    assert_eq!(
        count_in_file(&stderr, "configuration reloaded from"),
        1,
        "log_level warn not applied:\n{}",
        ems.log_tail()
    );

    // 3. An invalid file: refused with one line naming the key; the old config keeps running.
    let polls_before = sample(&scrape(&ems), "emspool_polls_total{result=\"up\"}").unwrap_or(0.0);
    ems.rewrite_config("log_level = \"warn\"\nbogus = 1\n");
    assert!(ems.signal("HUP"));
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        (!ems.events("kind=config.reload_failed").is_empty()).then_some(())
    })
    .unwrap_or_else(|e| panic!("failed reload not recorded: {e}\n{}", ems.log_tail()));
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    let line = log
        .lines()
        .find(|l| l.contains("configuration reload refused"))
        .unwrap_or_else(|| panic!("no error line:\n{log}"));
    assert!(line.contains("bogus"), "{line}");
    assert!(
        ems.alive(),
        "the server died on a bad reload:\n{}",
        ems.log_tail()
    );
    let m = scrape(&ems);
    assert_eq!(
        sample(&m, "emspool_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, "emspool_config_reloads_total{result=\"failure\"}"),
        Some(1.0)
    );
    // Polling goes on with the running configuration.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(ems.state("ne000").as_deref(), Some("up"));
    assert_eq!(ems.state("ne001").as_deref(), Some("up"));
    let polls_after = sample(&scrape(&ems), "emspool_polls_total{result=\"up\"}").unwrap_or(0.0);
    assert!(
        polls_after >= polls_before + 2.0,
        "{polls_before} -> {polls_after}"
    );

    let st = ems.terminate();
    assert!(st.success(), "exit status {st:?}");
}

/// A config for a server started by hand (not through `Emspool`).
fn write_config(dir: &Path, port: u16, server_extra: &str) -> PathBuf {
    let path = dir.join("emspool.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nid = 1\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{server_extra}\n",
            dir.join("data").display()
        ),
    )
    .expect("write config");
    path
}

fn serve_cmd(config: &Path) -> Command {
    let mut cmd = Command::new(common::emspool_bin());
    cmd.arg("serve").arg("--config").arg(config);
    cmd.env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM");
    cmd
}

fn wait_ready(port: u16, child: &mut ChildGuard) {
    let url = format!("http://127.0.0.1:{port}/readyz");
    wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        ureq::get(&url).call().ok().map(|_| ())
    })
    .unwrap_or_else(|e| panic!("not ready: {e}\n{}", child.log_tail()));
}

fn recv_notify(sock: &UnixDatagram, child: &ChildGuard) -> String {
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!("no notification: {e}\n{}", child.log_tail()),
    }
}

#[test]
fn notifies_systemd_ready_reloading_and_stopping() {
    let dir = peer_tempdir("notify");
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut cmd = serve_cmd(&config);
    cmd.env("NOTIFY_SOCKET", &sock_path);
    let started = Instant::now();
    let mut child = common::spawn("emspool", cmd, dir.path());

    let ready = recv_notify(&sock, &child);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(ready.contains("STATUS=server 1 listening on"), "{ready:?}");
    // READY=1 means it answers: no waiting needed after it.
    let (st, _) = ureq::get(&format!("http://127.0.0.1:{port}/readyz"))
        .call()
        .map(|r| (r.status().as_u16(), ()))
        .unwrap_or_else(|e| panic!("not answering after READY=1 ({:?}): {e}", started.elapsed()));
    assert_eq!(st, 200);

    assert!(child.signal("HUP"));
    let reloading = recv_notify(&sock, &child);
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    let ready_again = recv_notify(&sock, &child);
    assert!(
        ready_again.lines().any(|l| l == "READY=1"),
        "{ready_again:?}"
    );

    assert!(child.signal("TERM"));
    let stopping = recv_notify(&sock, &child);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let st = child
        .wait_timeout(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("did not stop\n{}", child.log_tail()));
    assert!(st.success(), "{st:?}\n{}", child.log_tail());
}

/// Starts a server whose stderr is `<dir>/emspool.stderr`, with `env` set; returns the log once
/// it is ready, then stops it.
fn log_of_run(server_extra: &str, env: impl FnOnce(&Path) -> Vec<(String, String)>) -> String {
    let dir = peer_tempdir("logging");
    let port = free_port();
    let config = write_config(dir.path(), port, server_extra);
    // ChildGuard truncates this file in place (same inode), so its identity is known now.
    let stderr = dir.path().join("emspool.stderr");
    std::fs::write(&stderr, "").expect("create stderr log");
    let mut cmd = serve_cmd(&config);
    for (k, v) in env(&stderr) {
        cmd.env(k, v);
    }
    let mut child = common::spawn("emspool", cmd, dir.path());
    wait_ready(port, &mut child);
    let st = child.terminate();
    assert!(st.success(), "{st:?}\n{}", child.log_tail());
    std::fs::read_to_string(&stderr).expect("read log")
}

fn journal_stream_of(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).expect("stat");
    format!("{}:{}", m.dev(), m.ino())
}

#[test]
fn journald_stream_gets_priority_prefixes_without_timestamps() {
    let log = log_of_run("", |stderr| {
        vec![("JOURNAL_STREAM".into(), journal_stream_of(stderr))]
    });
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 2, "{log}");
    for l in &lines {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| l.starts_with(p)),
            "no priority prefix: {l:?}"
        );
        assert!(!l.contains('\u{1b}'), "ANSI escape: {l:?}");
        // No timestamp (journald has its own): the target follows the prefix.
        assert!(l[3..].starts_with("emspool"), "{l:?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>") && l.contains("listening on http://127.0.0.1:")),
        "{log}"
    );
}

#[test]
fn journal_stream_of_another_file_keeps_the_text_format() {
    // Inherited from a systemd service but redirected elsewhere: not the journal.
    let log = log_of_run("", |_| vec![("JOURNAL_STREAM".into(), "1:2".into())]);
    let first = log.lines().next().unwrap_or_default();
    assert!(!first.starts_with('<'), "{log}");
    assert!(first.contains("INFO"), "{log}");
    // RFC 3339 timestamp first.
    assert!(first.get(4..5) == Some("-") && first.contains('T'), "{log}");
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let log = log_of_run("log_format = \"json\"", |_| Vec::new());
    let mut seen = false;
    for l in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
        if v["message"]
            .as_str()
            .is_some_and(|m| m.contains("listening on http://127.0.0.1:"))
        {
            seen = true;
        }
    }
    assert!(seen, "{log}");
}
