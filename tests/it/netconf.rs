//! NETCONF over SSH against real servers: netconfd (yuma123) behind a private sshd, and a
//! scripted server (PyPI `netconf` 2.1 on paramiko) for what netconfd cannot do.

use crate::common;

use common::emspool::Emspool;
use common::pynetconf::{PY_PASSWORD, PY_USER, PyNetconf};
use common::{NcAuth, Netconfd, wait_until};
use emspool::testing::netconf::NcError;
use emspool::testing::netconf::data::{
    InterfacesData, SystemData, interfaces_filter, system_filter,
};
use emspool::testing::netconf::framing::Framing;
use emspool::testing::netconf::session::{Session, Target};
use emspool::testing::netconf::xml::{self, NoData};
use emspool::testing::{NetconfCredential, Secret};
use std::path::Path;
use std::time::{Duration, Instant};

fn credential(user: &str) -> NetconfCredential {
    NetconfCredential {
        user: user.to_owned(),
        password: None,
        private_key: None,
        private_key_passphrase: None,
        known_hosts: None,
        host_key_sha256: None,
        insecure_accept_any_host_key: false,
    }
}

fn target(addr: std::net::SocketAddr, credential: NetconfCredential) -> Target {
    Target {
        addr,
        host: "127.0.0.1".into(),
        credential,
        timeout: Duration::from_secs(3),
        max_reply: 1 << 20,
        keepalive: Duration::ZERO,
    }
}

/// `SHA256:...` of a public key file, as `ssh-keygen -lf` prints it.
pub(crate) fn fingerprint(pubkey: &Path) -> String {
    let out = std::process::Command::new(common::find_tool("ssh-keygen"))
        .arg("-lf")
        .arg(pubkey)
        .output()
        .expect("ssh-keygen -lf");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_owned()
}

/// A known_hosts file with `key` for 127.0.0.1 on `port`.
pub(crate) fn known_hosts(dir: &Path, port: u16, pubkey: &Path) -> std::path::PathBuf {
    let key = std::fs::read_to_string(pubkey).expect("read host key");
    let mut it = key.split_whitespace();
    let (kind, data) = (it.next().unwrap(), it.next().unwrap());
    let path = dir.join(format!("known_hosts.{port}"));
    std::fs::write(&path, format!("[127.0.0.1]:{port} {kind} {data}\n")).expect("known_hosts");
    path
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[test]
fn netconfd_session_hello_get_and_host_key_checks() {
    let nc = Netconfd::start();
    let hostkey = nc.dir().join("hostkey.pub");

    // Password login, host key pinned by fingerprint.
    let mut c = credential(nc.user());
    c.password = Some(Secret::new(nc.password()));
    c.host_key_sha256 = Some(fingerprint(&hostkey));
    let mut s = Session::connect(&target(nc.addr(), c.clone())).expect("connect");
    let hello = s.hello().clone();
    assert!(hello.session_id.is_some());
    assert!(hello.has(xml::CAP_BASE_11) && hello.has(xml::CAP_NOTIFICATION));
    assert!(hello.has_module("ietf-system"), "{:?}", hello.capabilities);
    assert_eq!(s.framing(), Framing::Chunked, "both sides offer base:1.1");
    let mut sys = SystemData::default();
    let reply = s
        .rpc(&xml::get(Some(&system_filter())), &mut sys, deadline())
        .expect("get system-state");
    assert!(!reply.failed(), "{reply:?}");
    assert!(sys.boot_millis().is_some(), "boot datetime: {sys:?}");
    assert!(sys.descr().is_some_and(|d| d.contains("Linux")), "{sys:?}");
    // A second RPC on the same session, get-config with a filter; then interfaces (netconfd
    // runs without ietf-interfaces: empty data, no error).
    let reply = s
        .rpc(
            &xml::get_config(
                "running",
                Some("<nacm xmlns=\"urn:ietf:params:xml:ns:yang:ietf-netconf-acm\"/>"),
            ),
            &mut NoData,
            deadline(),
        )
        .expect("get-config");
    assert!(reply.data && !reply.failed(), "{reply:?}");
    let mut ifs = InterfacesData::default();
    let reply = s
        .rpc(&xml::get(Some(&interfaces_filter())), &mut ifs, deadline())
        .expect("get interfaces");
    assert!(!reply.failed());
    assert!(ifs.into_interfaces().is_empty());
    // An operation netconfd refuses: the rpc-error comes back with tag, severity, message.
    let edit = "<edit-config><target><running/></target><config><system xmlns=\"urn:ietf:params:xml:ns:yang:ietf-system\"><hostname>x</hostname></system></config></edit-config>";
    let reply = s
        .rpc(edit, &mut NoData, deadline())
        .expect("rpc-error reply");
    assert!(reply.failed());
    let e = &reply.errors[0];
    assert_eq!(
        (e.tag.as_str(), e.severity.as_str()),
        ("operation-failed", "error")
    );
    assert!(e.message.as_deref().is_some_and(|m| !m.is_empty()), "{e:?}");
    s.close(Duration::from_secs(1));

    // Key login, host key from a known_hosts file.
    let mut k = credential(nc.user());
    k.private_key = Some(nc.client_key());
    k.known_hosts = Some(known_hosts(nc.dir(), nc.port(), &hostkey));
    let s = Session::connect(&target(nc.addr(), k.clone())).expect("key + known_hosts");
    s.close(Duration::from_secs(1));

    // Refusals are clear errors on our side, not crashes.
    let mut wrong = c.clone();
    wrong.password = Some(Secret::new("not-the-password"));
    let e = Session::connect(&target(nc.addr(), wrong)).expect_err("wrong password");
    assert!(
        matches!(e, NcError::Auth(_)) && !e.device_unreachable(),
        "{e}"
    );
    let mut pinned = c.clone();
    pinned.host_key_sha256 = Some(format!("SHA256:{}", "A".repeat(43)));
    let e = Session::connect(&target(nc.addr(), pinned)).expect_err("wrong pin");
    assert!(matches!(e, NcError::HostKey(_)), "{e}");
    assert!(
        e.to_string().contains(&fingerprint(&hostkey)),
        "shows the real key: {e}"
    );
    let mut other = k.clone();
    other.known_hosts = Some(known_hosts(nc.dir(), nc.port() + 1, &hostkey));
    let e = Session::connect(&target(nc.addr(), other)).expect_err("not in known_hosts");
    assert!(
        matches!(e, NcError::HostKey(_)) && e.to_string().contains("is not in"),
        "{e}"
    );
    let mut mismatch = k.clone();
    mismatch.known_hosts = Some(known_hosts(
        nc.dir(),
        nc.port(),
        &nc.dir().join("clientkey.pub"),
    ));
    let e = Session::connect(&target(nc.addr(), mismatch)).expect_err("mismatch");
    assert!(e.to_string().contains("does NOT match"), "{e}");
}

fn has_alarm(e: &Emspool, key: &str) -> bool {
    e.alarms().iter().any(|a| a["key"] == key)
}

fn wait_state(ems: &Emspool, name: &str, state: &str, within: Duration) -> serde_json::Value {
    wait_until(within, Duration::from_millis(100), || {
        ems.element(name).filter(|v| v["status"]["state"] == state)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{name} not {state}: {e}\nnow: {:?}\n{}",
            ems.element(name).map(|v| v["status"].clone()),
            ems.log_tail()
        )
    })
}

fn wait_alarm(ems: &Emspool, key: &str, present: bool, within: Duration) {
    wait_until(within, Duration::from_millis(100), || {
        (has_alarm(ems, key) == present).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "alarm {key} {}: {e}\nalarms: {:?}\n{}",
            if present { "not raised" } else { "not cleared" },
            ems.alarms(),
            ems.log_tail()
        )
    });
}

const NETCONFD_INTERVAL_S: u64 = 2;

fn edit_hostname(name: &str) -> [String; 2] {
    [
        format!(
            "<rpc message-id=\"1\" xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><edit-config><target><candidate/></target><config><system xmlns=\"urn:ietf:params:xml:ns:yang:ietf-system\"><hostname>{name}</hostname></system></config></edit-config></rpc>"
        ),
        "<rpc message-id=\"2\" xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><commit/></rpc>"
            .to_owned(),
    ]
}

/// Edits the config from another session until emspool logs the config-change event (the
/// notification session may still be connecting on the first tries).
fn edit_until_logged(
    nc: &Netconfd,
    ems: &Emspool,
    element: &str,
    hostname: &str,
) -> serde_json::Value {
    let query = format!("element={element}&kind=netconf.config-change&limit=100");
    let before = ems.events(&query).len();
    let mut attempt = 0;
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        // A new value each time: committing an unchanged config notifies nothing.
        attempt += 1;
        let rpcs = edit_hostname(&format!("{hostname}-{attempt}"));
        let refs: Vec<&str> = rpcs.iter().map(String::as_str).collect();
        let out = nc
            .exchange(NcAuth::Key, &refs, Duration::from_secs(10))
            .expect("edit-config from a second session");
        assert_eq!(out.matches("<ok/>").count(), 2, "edit + commit: {out}");
        wait_until(Duration::from_secs(2), Duration::from_millis(100), || {
            let ev = ems.events(&query);
            (ev.len() > before).then(|| ev[0].clone())
        })
        .ok()
    })
    .unwrap_or_else(|e| panic!("no netconf.config-change event: {e}\n{}", ems.log_tail()))
}

#[test]
fn emspool_polls_netconfd_logs_config_changes_and_raises_node_down() {
    let mut nc = Netconfd::start();
    let kh = known_hosts(nc.dir(), nc.port(), &nc.dir().join("hostkey.pub"));
    let addr = nc.addr();
    let config = format!(
        r#"
[poll]
interval = "{NETCONFD_INTERVAL_S}s"
timeout = "1s"

[credentials.nc]
version = "netconf"
user = "{user}"
password = "{pw}"
known_hosts = "{kh}"

[credentials.nc-badpw]
version = "netconf"
user = "{user}"
password = "not-the-password"
known_hosts = "{kh}"

[credentials.nc-badkey]
version = "netconf"
user = "{user}"
password = "{pw}"
host_key_sha256 = "SHA256:{pin}"

[[elements]]
name = "ncd"
address = "{addr}"
protocol = "netconf"
credential = "nc"

[[elements]]
name = "ncd-badpw"
address = "{addr}"
protocol = "netconf"
credential = "nc-badpw"

[[elements]]
name = "ncd-badkey"
address = "{addr}"
protocol = "netconf"
credential = "nc-badkey"
"#,
        user = nc.user(),
        pw = nc.password(),
        kh = kh.display(),
        pin = "A".repeat(43),
    );
    let ems = Emspool::start(1, &config);
    let up = wait_state(&ems, "ncd", "up", Duration::from_secs(10));
    let st = &up["status"];
    assert!(
        st["sys_descr"]
            .as_str()
            .is_some_and(|d| d.starts_with("Linux")),
        "{st}"
    );
    assert!(st["boot_time"].is_i64(), "{st}");
    assert!(st["sys_uptime"].is_u64(), "{st}");
    let caps: Vec<&str> = st["capabilities"]
        .as_array()
        .expect("capabilities")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    for want in [":base:1.1", ":notification:1.0", "ietf-system@2014-08-06"] {
        assert!(caps.contains(&want), "{want} missing from {caps:?}");
    }

    // Our configuration's faults: unknown with a reason, no NodeDown, no crash.
    let bad = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let pw = ems.element("ncd-badpw")?;
        let key = ems.element("ncd-badkey")?;
        (pw["status"]["reason"].is_string() && key["status"]["reason"].is_string())
            .then_some((pw, key))
    })
    .unwrap_or_else(|e| panic!("no reasons: {e}\n{}", ems.log_tail()));
    for (v, want) in [
        (&bad.0, "authentication failed"),
        (&bad.1, "host key rejected"),
    ] {
        assert_eq!(v["status"]["state"], "unknown", "{v}");
        let reason = v["status"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(want), "{reason}");
    }
    assert!(!has_alarm(&ems, "NodeDown:ncd-badpw") && !has_alarm(&ems, "NodeDown:ncd-badkey"));

    // A configuration change from another session becomes an event in emspool's log, and
    // the next poll reads the new hostname as sys_name.
    let ev = edit_until_logged(&nc, &ems, "ncd", "ne-one");
    let text = ev["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("changed by emspoolnc") && text.contains("/sys:system"),
        "{ev}"
    );
    wait_until(
        Duration::from_secs(3 * NETCONFD_INTERVAL_S),
        Duration::from_millis(100),
        || {
            let v = ems.element("ncd")?;
            v["status"]["sys_name"]
                .as_str()?
                .starts_with("ne-one-")
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("hostname not read: {e}: {:?}", ems.element("ncd")));
    let sessions = ems.events("element=ncd&kind=netconf.session-start&limit=100");
    assert!(
        !sessions.is_empty(),
        "the editing session's start is logged"
    );

    // Stop the device: NodeDown; start it again: cleared, and its boot time moved: Reboot.
    let boot_before = ems.element("ncd").unwrap()["status"]["boot_time"].as_i64();
    std::thread::sleep(Duration::from_millis(1100)); // boot times have 1 s resolution
    nc.stop();
    wait_alarm(
        &ems,
        "NodeDown:ncd",
        true,
        Duration::from_secs(2 * NETCONFD_INTERVAL_S + 3),
    );
    assert_eq!(ems.state("ncd").as_deref(), Some("down"));
    nc.restart();
    wait_alarm(
        &ems,
        "NodeDown:ncd",
        false,
        Duration::from_secs(3 * NETCONFD_INTERVAL_S + 3),
    );
    let again = wait_state(&ems, "ncd", "up", Duration::from_secs(5));
    assert!(
        again["status"]["boot_time"].as_i64() > boot_before,
        "{again}"
    );
    wait_alarm(
        &ems,
        "Reboot:ncd",
        true,
        Duration::from_secs(NETCONFD_INTERVAL_S + 2),
    );

    // The notification session came back by itself.
    let ev = edit_until_logged(&nc, &ems, "ncd", "ne-two");
    assert!(
        ev["text"]
            .as_str()
            .unwrap_or_default()
            .contains("emspoolnc"),
        "{ev}"
    );
}

pub(crate) fn py_state(ifs: &[(&str, &str, &str)], fault: Option<&str>) -> serde_json::Value {
    let ifs: Vec<serde_json::Value> = ifs
        .iter()
        .enumerate()
        .map(|(i, (name, admin, oper))| {
            serde_json::json!({"name": name, "admin": admin, "oper": oper, "index": i + 1})
        })
        .collect();
    serde_json::json!({
        "hostname": "py-ne",
        "boot": "2026-01-01T00:00:00Z",
        "interfaces": ifs,
        "fault": fault,
    })
}

fn py_credential(py: &PyNetconf) -> NetconfCredential {
    let mut c = credential(PY_USER);
    c.password = Some(Secret::new(PY_PASSWORD));
    c.host_key_sha256 = Some(fingerprint(&py.host_public_key()));
    c
}

const UP3: [(&str, &str, &str); 3] = [
    ("eth0", "up", "up"),
    ("eth1", "up", "down"),
    ("eth2", "down", "down"),
];

#[test]
fn pyserver_both_framings_rpc_error_malformed_oversize_and_stall() {
    for base10 in [false, true] {
        let py = PyNetconf::start(&py_state(&UP3, None), base10);
        let mut t = target(py.addr(), py_credential(&py));
        t.timeout = Duration::from_secs(1);
        let mut s =
            Session::connect(&t).unwrap_or_else(|e| panic!("connect: {e}\n{}", py.log_tail()));
        let want = if base10 {
            Framing::Eom
        } else {
            Framing::Chunked
        };
        assert_eq!(s.framing(), want);
        assert!(s.hello().session_id.is_some());
        let mut ifs = InterfacesData::default();
        let r = s
            .rpc(&xml::get(Some(&interfaces_filter())), &mut ifs, deadline())
            .unwrap_or_else(|e| panic!("get: {e}\n{}", py.log_tail()));
        assert!(!r.failed(), "{r:?}");
        let ifs = ifs.into_interfaces();
        let states: Vec<(u32, &str, u8, u8)> = ifs
            .iter()
            .map(|i| (i.index, i.descr(), i.admin_status, i.oper_status))
            .collect();
        assert_eq!(
            states,
            vec![(1, "eth0", 1, 1), (2, "eth1", 1, 2), (3, "eth2", 2, 2)]
        );
        let mut sys = SystemData::default();
        s.rpc(&xml::get(Some(&system_filter())), &mut sys, deadline())
            .expect("system");
        assert_eq!(sys.hostname.as_deref(), Some("py-ne"));
        assert_eq!(sys.descr().as_deref(), Some("PyNOS 2.1"));

        // <rpc-error>: surfaced with tag, severity, message; the session stays usable.
        py.set_state(&py_state(&UP3, Some("rpc-error")));
        let r = s
            .rpc(&xml::get(Some(&system_filter())), &mut NoData, deadline())
            .expect("an rpc-error is a reply");
        assert!(r.failed());
        let e = &r.errors[0];
        assert_eq!(
            (e.tag.as_str(), e.severity.as_str()),
            ("operation-failed", "error")
        );
        assert_eq!(
            e.message.as_deref(),
            Some("scripted failure: resource busy")
        );
        assert_eq!(e.app_tag.as_deref(), Some("emspool-test"));
        py.set_state(&py_state(&UP3, None));
        let r = s
            .rpc(&xml::get(None), &mut NoData, deadline())
            .expect("after error");
        assert!(!r.failed());

        // Not well-formed XML: an error, not a panic.
        py.set_state(&py_state(&UP3, Some("malformed")));
        let e = s
            .rpc(&xml::get(None), &mut NoData, deadline())
            .expect_err("malformed");
        assert!(matches!(e, NcError::Xml(_)), "{e}");
        assert!(e.device_unreachable());

        // Above the reply cap: refused before it is all read.
        py.set_state(&py_state(&UP3, Some("oversize")));
        let mut s = Session::connect(&t).expect("reconnect");
        let e = s
            .rpc(&xml::get(None), &mut NoData, deadline())
            .expect_err("oversize");
        assert!(
            matches!(&e, NcError::Framing(framing_err) if framing_err.to_string().contains("exceeds")),
            "{e:?}"
        );

        // A reply that stops halfway: the read times out within the session timeout.
        py.set_state(&py_state(&UP3, Some("stall")));
        let mut s = Session::connect(&t).expect("reconnect");
        let started = Instant::now();
        let e = s
            .rpc(
                &xml::get(None),
                &mut NoData,
                Instant::now() + Duration::from_secs(10),
            )
            .expect_err("stall");
        assert!(matches!(e, NcError::Timeout(_)), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        py.set_state(&py_state(&UP3, None));
    }
}

fn py_element(name: &str, py: &PyNetconf, interval: Option<&str>) -> String {
    let interval = interval
        .map(|i| format!("interval = \"{i}\"\n"))
        .unwrap_or_default();
    format!(
        "\n[credentials.{name}]\nversion = \"netconf\"\nuser = \"{PY_USER}\"\npassword = \"{PY_PASSWORD}\"\nhost_key_sha256 = \"{fp}\"\n\n[[elements]]\nname = \"{name}\"\naddress = \"{addr}\"\nprotocol = \"netconf\"\ncredential = \"{name}\"\n{interval}",
        fp = fingerprint(&py.host_public_key()),
        addr = py.addr(),
    )
}

fn notification(body: &str) -> String {
    format!(
        "<notification xmlns=\"urn:ietf:params:xml:ns:netconf:notification:1.0\"><eventTime>2026-01-01T00:00:00Z</eventTime>{body}</notification>"
    )
}

fn last_poll(ems: &Emspool, name: &str) -> i64 {
    ems.element(name)
        .and_then(|v| v["status"]["last_poll"].as_i64())
        .unwrap_or(0)
}

#[test]
fn emspool_against_pyserver_links_notifications_and_faults() {
    let a = PyNetconf::start(&py_state(&UP3, None), false);
    let b = PyNetconf::start(&py_state(&UP3, None), true);
    let mut body = String::from(
        "[poll]\ninterval = \"2s\"\ntimeout = \"1s\"\n\n[poll.netconf]\nmax_reply_bytes = 1048576\n",
    );
    body.push_str(&py_element("a", &a, None));
    body.push_str(&py_element("a-slow", &a, Some("60s")));
    body.push_str(&py_element("b", &b, None));
    let ems = Emspool::start(1, &body);
    let within = Duration::from_secs(10);
    for name in ["a", "a-slow", "b"] {
        let v = wait_state(&ems, name, "up", within);
        let st = &v["status"];
        assert_eq!(st["sys_name"], "py-ne", "{st}");
        assert_eq!(st["sys_descr"], "PyNOS 2.1", "{st}");
        let ifs = st["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifs.len(), 3, "{st}");
        assert_eq!(ifs[1]["descr"], "eth1");
        assert_eq!(ifs[1]["in_octets"], 1000);
        // eth1 is enabled and down: LinkDown; eth2 is disabled: none.
        wait_alarm(&ems, &format!("LinkDown:{name}:2"), true, within);
        assert!(!has_alarm(&ems, &format!("LinkDown:{name}:3")));
    }

    // oper-status up clears at the next poll (both framings).
    let healed = [
        ("eth0", "up", "up"),
        ("eth1", "up", "up"),
        ("eth2", "down", "down"),
    ];
    a.set_state(&py_state(&healed, None));
    b.set_state(&py_state(&healed, None));
    wait_alarm(&ems, "LinkDown:a:2", false, within);
    wait_alarm(&ems, "LinkDown:b:2", false, within);
    // a-slow polls once a minute: only a notification can clear it this soon.
    assert!(has_alarm(&ems, "LinkDown:a-slow:2"));
    a.notify(
        "up1",
        &notification(
            "<link-state xmlns=\"urn:x-vendor:links\"><if-name>eth1</if-name><oper-status>up</oper-status></link-state>",
        ),
    );
    wait_alarm(&ems, "LinkDown:a-slow:2", false, within);
    a.notify(
        "down0",
        &notification(
            "<linkDown xmlns=\"urn:x-vendor:links\"><interface><name>eth0</name></interface></linkDown>",
        ),
    );
    wait_alarm(&ems, "LinkDown:a-slow:1", true, within);
    let ev = ems.events("element=a-slow&kind=netconf.notification&limit=10");
    assert!(
        ev.iter()
            .any(|e| e["text"].as_str().unwrap_or_default().contains("linkDown")),
        "{ev:?}"
    );
    // ietf-alarms notifications raise and clear alarms of their own type.
    let alarm = |sev: &str| {
        notification(&format!(
            "<alarm-notification xmlns=\"urn:ietf:params:xml:ns:yang:ietf-alarms\"><resource>/hw/fan[1]</resource><alarm-type-id xmlns:v=\"urn:x-vendor\">v:fan-failure</alarm-type-id><alarm-type-qualifier/><time>2026-01-01T00:00:00Z</time><perceived-severity>{sev}</perceived-severity><alarm-text>fan 1 stopped</alarm-text></alarm-notification>"
        ))
    };
    a.notify("alarm1", &alarm("major"));
    wait_alarm(&ems, "fan-failure:a-slow:/hw/fan[1]", true, within);
    let raised = ems
        .alarms()
        .into_iter()
        .find(|x| x["key"] == "fan-failure:a-slow:/hw/fan[1]")
        .expect("alarm");
    assert_eq!(raised["severity"], "major");
    assert_eq!(raised["text"], "fan 1 stopped");
    a.notify("alarm2", &alarm("cleared"));
    wait_alarm(&ems, "fan-failure:a-slow:/hw/fan[1]", false, within);

    // <rpc-error>: the element answered, so not down; unknown, with the error in the reason.
    a.set_state(&py_state(&healed, Some("rpc-error")));
    let v = wait_state(&ems, "a", "unknown", within);
    let reason = v["status"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("operation-failed") && reason.contains("scripted failure: resource busy"),
        "{reason}"
    );
    assert!(!has_alarm(&ems, "NodeDown:a"));
    a.set_state(&py_state(&healed, None));
    wait_state(&ems, "a", "up", within);

    // A device that stops mid-reply is down; the other elements keep being polled meanwhile.
    a.set_state(&py_state(&healed, Some("stall")));
    wait_alarm(&ems, "NodeDown:a", true, within);
    let b_before = last_poll(&ems, "b");
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        last_poll(&ems, "b") > b_before + 2000,
        "b kept being polled"
    );
    assert_eq!(ems.state("b").as_deref(), Some("up"));
    let reason = ems.element("a").unwrap()["status"]["reason"].clone();
    assert!(
        reason.as_str().unwrap_or_default().contains("timed out"),
        "{reason}"
    );
    a.set_state(&py_state(&healed, None));
    wait_alarm(&ems, "NodeDown:a", false, within);

    // Not well-formed XML: down with the parser's reason; over the cap: unknown, our limit.
    a.set_state(&py_state(&healed, Some("malformed")));
    let v = wait_state(&ems, "a", "down", within);
    assert!(
        v["status"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("malformed XML"),
        "{v}"
    );
    a.set_state(&py_state(&healed, Some("oversize")));
    let v = wait_until(within, Duration::from_millis(100), || {
        ems.element("a").filter(|v| {
            v["status"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("1048576-byte limit"))
        })
    })
    .unwrap_or_else(|e| panic!("no size refusal: {e}\n{}", ems.log_tail()));
    assert_eq!(v["status"]["state"], "unknown", "{v}");
    a.set_state(&py_state(&healed, None));
    wait_state(&ems, "a", "up", within);

    // The session to b was kept open between its polls.
    let (sessions, gets) = b.stats();
    assert!(gets >= 10, "{gets} gets");
    assert!(sessions <= 2, "{sessions} sessions for {gets} gets");
}
