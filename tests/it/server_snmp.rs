//! One emspool server against real agents: Net-SNMP's snmpd (v2c, v3 authPriv) and snmpsim.

use crate::common;

use common::emspool::Emspool;
use common::{Snmpd, Snmpsim, snmp_get, wait_until};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const INTERVAL_S: u64 = 2;

fn snmpd_config(port: u16) -> String {
    format!(
        r#"
[poll]
interval = "{INTERVAL_S}s"
timeout = "400ms"
retries = 1

[credentials.v2]
version = "v2c"
community = "public"

[credentials.v3]
version = "v3"
user = "authuser"
auth_protocol = "sha"
auth_password = "authpass123"
priv_protocol = "aes"
priv_password = "privpass123"

[credentials.v3-wrong]
version = "v3"
user = "authuser"
auth_protocol = "sha"
auth_password = "not-the-password"
priv_protocol = "aes"
priv_password = "privpass123"

[[elements]]
name = "snmpd-v2"
address = "127.0.0.1:{port}"
credential = "v2"

[[elements]]
name = "snmpd-v3"
address = "127.0.0.1:{port}"
credential = "v3"

[[elements]]
name = "snmpd-wrong"
address = "127.0.0.1:{port}"
credential = "v3-wrong"
"#
    )
}

fn has_alarm(e: &Emspool, key: &str) -> bool {
    e.alarms().iter().any(|a| a["key"] == key)
}

fn sys_name_of(snmpd: &Snmpd) -> String {
    snmp_get(snmpd.addr(), &snmpd.v2c(), "1.3.6.1.2.1.1.5.0").expect("snmpget sysName")
}

#[test]
fn snmpd_v2c_and_v3_up_then_node_down_and_clear_survive_restart() {
    let mut snmpd = Snmpd::start();
    let mut ems = Emspool::start(1, &snmpd_config(snmpd.port()));
    let want_name = sys_name_of(&snmpd);

    for name in ["snmpd-v2", "snmpd-v3"] {
        let el = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
            ems.element(name).filter(|v| v["status"]["state"] == "up")
        })
        .unwrap_or_else(|e| panic!("{name} not up: {e}\n{}", ems.log_tail()));
        assert_eq!(el["status"]["sys_name"], want_name.as_str(), "{name}");
        let ifs = el["status"]["interfaces"].as_array().expect("interfaces");
        assert!(!ifs.is_empty(), "{name}: snmpd has at least lo");
        assert!(ifs.iter().any(|i| i["descr"] == "lo"), "{name}: {ifs:?}");
    }

    // A wrong v3 password is our configuration's fault: unknown, with the reason.
    let wrong = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        ems.element("snmpd-wrong")
            .filter(|v| v["status"]["reason"].is_string())
    })
    .expect("wrong-password element gets a reason");
    assert_eq!(wrong["status"]["state"], "unknown");
    let reason = wrong["status"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("authentication"), "{reason}");
    assert!(!has_alarm(&ems, "NodeDown:snmpd-wrong"));

    // Stop the agent: NodeDown within two poll intervals (plus one poll's timeouts).
    snmpd.stop();
    let stopped = Instant::now();
    wait_until(
        Duration::from_secs(2 * INTERVAL_S + 2),
        Duration::from_millis(100),
        || has_alarm(&ems, "NodeDown:snmpd-v2").then_some(()),
    )
    .unwrap_or_else(|e| panic!("no NodeDown: {e}\n{}", ems.log_tail()));
    assert_eq!(ems.state("snmpd-v2").as_deref(), Some("down"));
    eprintln!("NodeDown after {:?}", stopped.elapsed());

    snmpd.restart();
    wait_until(
        Duration::from_secs(3 * INTERVAL_S + 2),
        Duration::from_millis(100),
        || {
            (!has_alarm(&ems, "NodeDown:snmpd-v2")
                && ems.state("snmpd-v2").as_deref() == Some("up"))
            .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("NodeDown not cleared: {e}\n{}", ems.log_tail()));

    // The CLI shows the same story.
    let table = ems.cli(&["events", "--element", "snmpd-v2"]);
    assert!(
        table.contains("alarm.raised") && table.contains("alarm.cleared"),
        "{table}"
    );

    // Events are durable: a restarted server still has them.
    ems.restart();
    let kinds: Vec<String> = ems
        .events("element=snmpd-v2&limit=1000")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    for k in ["alarm.raised", "alarm.cleared", "element.state"] {
        assert!(
            kinds.iter().any(|x| x == k),
            "{k} missing after restart: {kinds:?}"
        );
    }
    let starts = ems.events("kind=server.start").len();
    assert_eq!(starts, 2, "one server.start per run");
    assert_eq!(
        ems.events("kind=server.stop").len(),
        1,
        "clean stop is logged"
    );
}

#[test]
fn fifty_snmpsim_devices_and_snmpd_all_up_within_one_interval() {
    let snmpd = Snmpd::start();
    let sim = Snmpsim::start(50, &Snmpsim::router24_template());
    let interval = 10;
    let mut body = format!(
        "[poll]\ninterval = \"{interval}s\"\ntimeout = \"1s\"\n\n[credentials.snmpd]\nversion = \"v2c\"\ncommunity = \"public\"\n\n[[elements]]\nname = \"snmpd\"\naddress = \"127.0.0.1:{}\"\ncredential = \"snmpd\"\n",
        snmpd.port()
    );
    for c in sim.communities() {
        body.push_str(&format!(
            "\n[credentials.{c}]\nversion = \"v2c\"\ncommunity = \"{c}\"\n\n[[elements]]\nname = \"{c}\"\naddress = \"127.0.0.1:{}\"\ncredential = \"{c}\"\n",
            sim.port()
        ));
    }
    let ems = Emspool::start(1, &body);
    let started = Instant::now();
    let all = wait_until(
        Duration::from_secs(interval),
        Duration::from_millis(250),
        || {
            let v = ems.get("/api/v1/elements");
            let els = v["elements"].as_array()?.clone();
            (els.len() == 51 && els.iter().all(|e| e["status"]["state"] == "up")).then_some(els)
        },
    )
    .unwrap_or_else(|e| panic!("not all 51 up within one interval: {e}\n{}", ems.log_tail()));
    eprintln!("51 elements up after {:?}", started.elapsed());
    for e in all.iter().filter(|e| e["name"] != "snmpd") {
        assert_eq!(e["status"]["sys_name"], "router24", "{e}");
        assert_eq!(
            e["status"]["interfaces"].as_array().map(Vec::len),
            Some(24),
            "{e}"
        );
    }
    // The template has interfaces 23 and 24 enabled but down: two LinkDown per device.
    let link_down = ems
        .alarms()
        .iter()
        .filter(|a| a["kind"] == "LinkDown")
        .count();
    assert_eq!(link_down, 100);
    let table = ems.cli(&["alarms", "--element", "dev0007"]);
    let rows: Vec<&str> = table.lines().filter(|l| l.contains("LinkDown")).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows.iter().all(|r| r.contains("dev0007")), "{table}");
}

/// An "agent" that answers every request with bytes that are not SNMP. Real UDP on loopback;
/// nothing in Net-SNMP can be made to do this.
fn garbage_agent() -> (u16, std::thread::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let port = sock.local_addr().expect("addr").port();
    let h = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 2048];
        let replies: [&[u8]; 3] = [b"\x30\x82\xff\xff garbage", b"\x30\x03\x02\x01", b"hello"];
        let mut n = 0;
        while Instant::now() < deadline {
            if let Ok((_, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(replies[n % replies.len()], from);
                n += 1;
            }
        }
    });
    (port, h)
}

#[test]
fn garbage_agent_bad_requests_and_bad_config_leave_the_server_running() {
    let (port, _agent) = garbage_agent();
    let body = format!(
        "[poll]\ninterval = \"1s\"\ntimeout = \"300ms\"\nretries = 0\n\n[credentials.c]\nversion = \"v2c\"\ncommunity = \"public\"\n\n[[elements]]\nname = \"garbage\"\naddress = \"127.0.0.1:{port}\"\ncredential = \"c\"\n"
    );
    let mut ems = Emspool::start(1, &body);
    let el = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        ems.element("garbage")
            .filter(|v| v["status"]["state"] == "down")
    })
    .unwrap_or_else(|e| panic!("garbage agent not down: {e}\n{}", ems.log_tail()));
    assert!(el["status"]["reason"].is_string(), "{el}");

    for (method, path, body, want) in [
        ("GET", "/api/v1/events?limit=abc", None, 400),
        ("GET", "/api/v1/events?since=yesterday-ish", None, 400),
        ("GET", "/api/v1/events?before=zz", None, 400),
        ("GET", "/api/v1/alarms?severity=loud", None, 400),
        ("GET", "/api/v1/alarms?bogus=1", None, 400),
        ("POST", "/api/v1/alarms/notanumber/ack", None, 400),
        ("POST", "/api/v1/alarms/12345/ack", None, 404),
        ("POST", "/api/v1/alarms/1/ack", Some("{not json"), 400),
        ("GET", "/api/v1/elements/nope", None, 404),
        ("GET", "/api/v1/nothing-here", None, 404),
    ] {
        let (status, text) = ems.raw(method, path, body);
        assert_eq!(status, want, "{method} {path}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        assert!(v["error"].is_string(), "{method} {path}: {text}");
    }
    // Acknowledge the NodeDown through the CLI; the ack is an event.
    let id = ems
        .alarms()
        .iter()
        .find(|a| a["key"] == "NodeDown:garbage")
        .and_then(|a| a["id"].as_u64())
        .expect("NodeDown alarm");
    let out = ems.cli(&["ack", &id.to_string(), "--by", "tester"]);
    assert!(out.contains("acknowledged by tester"), "{out}");
    let acked = ems.alarms();
    assert!(
        acked
            .iter()
            .any(|a| a["id"] == id && a["acked_by"] == "tester")
    );
    // Events are group-committed: visible within a moment, not necessarily at once.
    wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        (!ems.events("kind=alarm.acked").is_empty()).then_some(())
    })
    .expect("ack event");
    assert_eq!(ems.terminate().code(), Some(0), "SIGTERM exits 0");
}

#[test]
fn bad_config_fails_with_one_line_naming_file_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nid = 1\n\n[credentials.x]\nversion = \"v2c\"\ncommunity = \"hunter2-secret\"\n\n[[elements]]\nname = \"a\"\naddress = \"127.0.0.1:161\"\ncredential = \"missing\"\n",
    )
    .expect("write");
    for sub in ["serve", "check-config"] {
        let mut cmd = std::process::Command::new(common::emspool_bin());
        cmd.arg(sub);
        if sub == "serve" {
            cmd.arg("--config");
        }
        let out = cmd.arg(&path).output().expect("run");
        assert!(!out.status.success(), "{sub} accepted a bad config");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{sub}: {err}");
        assert!(err.contains("bad.toml"), "{err}");
        assert!(err.contains("elements[a].credential"), "{err}");
        assert!(!err.contains("hunter2"), "secret leaked: {err}");
    }
    std::fs::write(&path, "[server]\nid = 1\nlisten = \"nope\"\n").expect("write");
    let out = std::process::Command::new(common::emspool_bin())
        .args(["check-config"])
        .arg(&path)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bad.toml:3"), "{err}");
}
