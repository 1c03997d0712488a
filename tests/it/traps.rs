//! SNMP traps and informs sent by Net-SNMP's `snmptrap`/`snmpinform` to running `emspool serve`
//! processes: alarms raise and clear through the API, on the element's owner even when another
//! pool member received the trap; garbage is counted and logged, never fatal.
//!
//! Elements sit on distinct loopback addresses (127.0.0.N) and the tools send from those
//! addresses (`--clientaddr`), which is how the receiver tells elements apart.

use crate::common;

use common::emspool::Emspool;
use common::pool::{Pool, SECRET};
use common::{free_port, snmp_tool, wait_until};
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

const LINK_DOWN: &str = "1.3.6.1.6.3.1.1.5.3";
const LINK_UP: &str = "1.3.6.1.6.3.1.1.5.4";
const COLD_START: &str = "1.3.6.1.6.3.1.1.5.1";
const AUTH_FAILURE: &str = "1.3.6.1.6.3.1.1.5.5";
const IF_INDEX: &str = "1.3.6.1.2.1.2.2.1.1";
const ENGINE: &str = "0x8000000001020304";
/// The receiving server's own engine id (authoritative for informs).
const LOCAL_ENGINE: &str = "0x80007ed90474726170732d74657374";
const WAIT: Duration = Duration::from_secs(15);

fn body(trap_port: u16, elements: &[(&str, &str)], traps_extra: &str) -> String {
    let mut s = format!(
        r#"
[poll]
interval = "300s"
timeout = "1s"
retries = 0

[credentials.c]
version = "v2c"
community = "public"

[traps]
listen = "127.0.0.1:{trap_port}"
communities = ["public"]
{traps_extra}

engine_id = "{LOCAL_ENGINE}"

[[traps.v3_users]]
user = "trapuser"
engine_id = "{ENGINE}"
auth_protocol = "sha"
auth_password = "authpass123"
priv_protocol = "aes"
priv_password = "privpass123"

# Inform senders: keys localized to this server's engine id.
[[traps.v3_users]]
user = "informuser"
engine_id = "{LOCAL_ENGINE}"
auth_protocol = "sha"
auth_password = "authpass123"
priv_protocol = "aes"
priv_password = "privpass123"

[[traps.v3_users]]
user = "trapuser256"
engine_id = "{ENGINE}"
auth_protocol = "sha"
auth_password = "authpass123"
priv_protocol = "aes256"
priv_password = "privpass123"

[[traps.v3_users]]
user = "inform192"
engine_id = "{LOCAL_ENGINE}"
auth_protocol = "md5"
auth_password = "authpass123"
priv_protocol = "aes192"
priv_password = "privpass123"

[[traps.v3_users]]
user = "desuser"
engine_id = "{LOCAL_ENGINE}"
auth_protocol = "md5"
auth_password = "authpass123"
priv_protocol = "des"
priv_password = "privpass123"
"#
    );
    for (name, ip) in elements {
        // Nothing answers polls there: the elements go down, which these tests ignore.
        s.push_str(&format!(
            "\n[[elements]]\nname = \"{name}\"\naddress = \"{ip}:9\"\ncredential = \"c\"\n"
        ));
    }
    s
}

/// `snmptrap` (or `snmpinform`) from `from` to `to`; `auth` holds the version arguments.
fn send(
    tool: &str,
    auth: &[&str],
    from: &str,
    to: SocketAddr,
    rest: &[&str],
) -> Result<String, String> {
    let mut args: Vec<String> = auth.iter().map(|s| s.to_string()).collect();
    args.extend([
        format!("--clientaddr={from}"),
        "-t".into(),
        "1".into(),
        "-r".into(),
        "2".into(),
        format!("udp:{to}"),
    ]);
    args.extend(rest.iter().map(|s| s.to_string()));
    snmp_tool(tool, &args)
}

fn v2c(from: &str, to: SocketAddr, oid: &str, varbinds: &[&str]) {
    let mut rest = vec!["", oid];
    rest.extend_from_slice(varbinds);
    send("snmptrap", &["-v2c", "-c", "public"], from, to, &rest).expect("snmptrap v2c");
}

fn v3_args(auth_pass: &str) -> Vec<String> {
    [
        "-v3",
        "-e",
        ENGINE,
        "-u",
        "trapuser",
        "-l",
        "authPriv",
        "-a",
        "SHA",
        "-A",
        auth_pass,
        "-x",
        "AES",
        "-X",
        "privpass123",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn v3(from: &str, to: SocketAddr, auth_pass: &str, oid: &str, varbinds: &[&str]) {
    let a = v3_args(auth_pass);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut rest = vec!["", oid];
    rest.extend_from_slice(varbinds);
    send("snmptrap", &a, from, to, &rest).expect("snmptrap v3");
}

fn if_index(i: u32) -> [String; 3] {
    [format!("{IF_INDEX}.{i}"), "i".into(), i.to_string()]
}

/// This server's active alarms; panics with the answer when it has no list.
fn local_alarms(s: &Emspool) -> Vec<Value> {
    common::json_array(&s.get("/api/v1/alarms?scope=local"), "alarms")
}

pub(super) fn alarm_keys(s: &Emspool) -> Vec<String> {
    local_alarms(s)
        .iter()
        .filter_map(|x| x["key"].as_str().map(str::to_owned))
        .collect()
}

pub(super) fn alarm(s: &Emspool, key: &str) -> Option<Value> {
    local_alarms(s).into_iter().find(|a| a["key"] == key)
}

pub(super) fn wait_alarm(s: &Emspool, key: &str) -> Value {
    wait_until(WAIT, Duration::from_millis(100), || alarm(s, key)).unwrap_or_else(|e| {
        panic!(
            "alarm {key}: {e}; have {:?}\n{}",
            alarm_keys(s),
            s.log_tail()
        )
    })
}

pub(super) fn wait_no_alarm(s: &Emspool, key: &str) {
    wait_until(WAIT, Duration::from_millis(100), || {
        alarm(s, key).is_none().then_some(())
    })
    .unwrap_or_else(|e| panic!("alarm {key} still active: {e}\n{}", s.log_tail()));
}

fn events_of(s: &Emspool, kind: &str) -> Vec<Value> {
    s.events(&format!("kind={kind}&limit=1000"))
}

fn wait_event(s: &Emspool, kind: &str, contains: &str) -> Value {
    wait_until(WAIT, Duration::from_millis(100), || {
        events_of(s, kind)
            .into_iter()
            .find(|e| e["text"].as_str().is_some_and(|t| t.contains(contains)))
    })
    .unwrap_or_else(|e| {
        panic!(
            "no {kind} event with {contains:?}: {e}; have {:?}",
            events_of(s, kind)
        )
    })
}

/// A counter from `/metrics` (0 when not yet exported).
pub(super) fn metric(s: &Emspool, name_and_labels: &str) -> u64 {
    let url = format!("{}/metrics", s.url);
    let text = ureq::get(&url)
        .call()
        .expect("GET /metrics")
        .body_mut()
        .read_to_string()
        .expect("metrics text");
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map_or(0, |v| v as u64)
}

fn wait_metric(s: &Emspool, name: &str, at_least: u64) {
    wait_until(WAIT, Duration::from_millis(100), || {
        (metric(s, name) >= at_least).then_some(())
    })
    .unwrap_or_else(|e| panic!("{name} < {at_least}: {e} (is {})", metric(s, name)));
}

pub(super) fn wait_owned(s: &Emspool, names: &[&str]) {
    wait_until(WAIT, Duration::from_millis(100), || {
        let v = s.get("/api/v1/elements");
        let have: Vec<String> = v["elements"]
            .as_array()?
            .iter()
            .filter_map(|e| e["name"].as_str().map(str::to_owned))
            .collect();
        names
            .iter()
            .all(|n| have.iter().any(|h| h == n))
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("elements not owned: {e}\n{}", s.log_tail()));
}

#[test]
fn v1_v2c_v3_traps_and_informs_raise_and_clear_alarms() {
    let port = free_port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let s = Emspool::start(
        1,
        &body(
            port,
            &[
                ("r1", "127.0.0.2"),
                ("r2", "127.0.0.3"),
                ("r3", "127.0.0.4"),
            ],
            "reboot_clear = \"3s\"",
        ),
    );
    wait_owned(&s, &["r1", "r2", "r3"]);

    // v2c linkDown raises LinkDown on the ifIndex (the poller's key); repeats only count.
    let [o, t, v] = if_index(7);
    v2c("127.0.0.2", to, LINK_DOWN, &[&o, &t, &v]);
    v2c("127.0.0.2", to, LINK_DOWN, &[&o, &t, &v]);
    let a = wait_alarm(&s, "LinkDown:r1:7");
    assert_eq!(a["severity"], "major");
    wait_until(WAIT, Duration::from_millis(100), || {
        (alarm(&s, "LinkDown:r1:7")?["count"] == 2).then_some(())
    })
    .expect("repeat counted on the same alarm");
    v2c("127.0.0.2", to, LINK_UP, &[&o, &t, &v]);
    wait_no_alarm(&s, "LinkDown:r1:7");

    // v1 linkDown (generic trap 2) from r2, then linkUp (3).
    let [o, t, v] = if_index(3);
    let v1 = |generic: &str| {
        send(
            "snmptrap",
            &["-v1", "-c", "public"],
            "127.0.0.3",
            to,
            &[
                "1.3.6.1.4.1.8072",
                "127.0.0.3",
                generic,
                "0",
                "",
                &o,
                &t,
                &v,
            ],
        )
        .expect("snmptrap v1")
    };
    v1("2");
    wait_alarm(&s, "LinkDown:r2:3");
    v1("3");
    wait_no_alarm(&s, "LinkDown:r2:3");

    // v3 authPriv coldStart raises Reboot, which clears after reboot_clear (3 s).
    v3("127.0.0.4", to, "authpass123", COLD_START, &[]);
    let a = wait_alarm(&s, "Reboot:r3");
    assert_eq!(a["severity"], "warning");
    wait_no_alarm(&s, "Reboot:r3");

    // authenticationFailure is a warning alarm.
    v2c("127.0.0.3", to, AUTH_FAILURE, &[]);
    wait_alarm(&s, "AuthFailure:r2");

    // A v2c inform is acknowledged (snmpinform exits 0 only on the Response) and, being an
    // unmapped notification, becomes an event with its varbinds named.
    let out = send(
        "snmpinform",
        &["-v2c", "-c", "public"],
        "127.0.0.2",
        to,
        &[
            "",
            "1.3.6.1.4.1.8072.2.3.0.1",
            "1.3.6.1.2.1.1.5.0",
            "s",
            "edge-router-1",
        ],
    );
    assert!(out.is_ok(), "inform not acknowledged: {out:?}");
    let e = wait_event(&s, "trap.received", "enterprises.8072.2.3.0.1");
    assert_eq!(e["element"], "r1");
    let text = e["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("SNMPv2-MIB::sysName.0 (1.3.6.1.2.1.1.5.0) = \"edge-router-1\""),
        "{text}"
    );
    assert!(metric(&s, "emspool_traps_informs_acked_total") >= 1);
    wait_metric(&s, "emspool_traps_decoded_total{version=\"v1\"}", 2);
    wait_metric(&s, "emspool_traps_decoded_total{version=\"v3\"}", 1);
    assert_eq!(metric(&s, "emspool_traps_socket_drops_total"), 0);
}

/// v3 informs: the server is the authoritative engine. Net-SNMP discovers its engine id (and
/// boots/time) by itself, or is given it with `-e` and learns the time from a report.
#[test]
fn v3_informs_are_acknowledged_with_discovery_and_without() {
    let port = free_port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let s = Emspool::start(4, &body(port, &[("i1", "127.0.0.31")], ""));
    wait_owned(&s, &["i1"]);
    let inform = |user: &str, a: &str, x: &str, engine: Option<&str>, oid: &str, vb: &[&str]| {
        let mut auth = vec![
            "-v3",
            "-u",
            user,
            "-l",
            "authPriv",
            "-a",
            a,
            "-A",
            "authpass123",
            "-x",
            x,
            "-X",
            "privpass123",
        ];
        if let Some(e) = engine {
            auth.extend(["-e", e]);
        }
        let mut rest = vec!["", oid];
        rest.extend_from_slice(vb);
        send("snmpinform", &auth, "127.0.0.31", to, &rest)
    };
    let acked = |what: &str, out: Result<String, String>| {
        assert!(
            out.is_ok(),
            "v3 {what} not acknowledged: {out:?}\n{}",
            s.log_tail()
        );
    };
    let [o, t, v] = if_index(4);
    // Discovery of the engine id, then the authenticated, encrypted inform and its Response.
    let out = inform("informuser", "SHA", "AES", None, LINK_DOWN, &[&o, &t, &v]);
    acked("inform (discovery)", out);
    wait_alarm(&s, "LinkDown:i1:4");
    // Engine id given: boots/time 0 are not in the time window, a report tells the right ones.
    let out = inform(
        "informuser",
        "SHA",
        "AES",
        Some(LOCAL_ENGINE),
        LINK_UP,
        &[&o, &t, &v],
    );
    acked("inform (-e)", out);
    wait_no_alarm(&s, "LinkDown:i1:4");
    // MD5 + DES.
    let out = inform("desuser", "MD5", "DES", None, COLD_START, &[]);
    acked("MD5/DES inform", out);
    wait_alarm(&s, "Reboot:i1");
    // AES-192 with MD5: the key is longer than the hash (Blumenthal extension).
    let out = inform(
        "inform192",
        "MD5",
        "AES-192",
        None,
        LINK_DOWN,
        &[&o, &t, &v],
    );
    acked("AES-192 inform", out);
    wait_alarm(&s, "LinkDown:i1:4");
    // A v3 trap with AES-256 (SHA-1: extended key too) from the same element.
    let auth = [
        "-v3",
        "-e",
        ENGINE,
        "-u",
        "trapuser256",
        "-l",
        "authPriv",
        "-a",
        "SHA",
        "-A",
        "authpass123",
        "-x",
        "AES-256",
        "-X",
        "privpass123",
    ];
    send(
        "snmptrap",
        &auth,
        "127.0.0.31",
        to,
        &["", LINK_UP, &o, &t, &v],
    )
    .expect("snmptrap");
    wait_no_alarm(&s, "LinkDown:i1:4");
    // Wrong privacy key: never acknowledged, counted.
    let mut auth = vec![
        "-v3",
        "-u",
        "informuser",
        "-l",
        "authPriv",
        "-a",
        "SHA",
        "-A",
        "authpass123",
        "-x",
        "AES",
        "-X",
        "wrongpriv99",
    ];
    auth.extend(["-t", "0.5", "-r", "0"]);
    let out = send("snmpinform", &auth, "127.0.0.31", to, &["", COLD_START]);
    assert!(out.is_err(), "a wrong key must not be acknowledged");
    wait_metric(&s, "emspool_traps_invalid_total{reason=\"auth\"}", 1);
    assert!(metric(&s, "emspool_traps_decoded_total{version=\"v3\"}") >= 3);
}

#[test]
fn garbage_wrong_keys_and_unknown_senders_are_counted_and_logged_once() {
    let port = free_port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    // dns1 is addressed by name: its resolved address (127.0.0.1) matches too.
    let s = Emspool::start(
        2,
        &body(port, &[("g1", "127.0.0.5"), ("dns1", "localhost")], ""),
    );
    wait_owned(&s, &["g1", "dns1"]);

    let sock = UdpSocket::bind("127.0.0.6:0").expect("bind 127.0.0.6");
    // A real v2c trap cut short, and plain garbage, twice each.
    let trap = "305602010104067075626c6963a74902045556e4d9020100020100303b300f06082b060102010103004303084c4f3017060a2b06010603010104010006092b0601060301010503300f060a2b060102010202010107020107";
    let bytes: Vec<u8> = (0..trap.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&trap[i..i + 2], 16).expect("hex"))
        .collect();
    for _ in 0..2 {
        sock.send_to(&bytes[..40], to).expect("send truncated");
        sock.send_to(b"\x30\x82\xff\xffgarbage", to)
            .expect("send garbage");
        sock.send_to(&[], to).expect("send empty");
    }
    wait_metric(&s, "emspool_traps_invalid_total{reason=\"malformed\"}", 6);
    wait_event(&s, "trap.invalid", "127.0.0.6");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        events_of(&s, "trap.invalid")
            .iter()
            .filter(|e| e["text"].as_str().is_some_and(|t| t.contains("127.0.0.6")))
            .count(),
        1,
        "logged once per sender per minute"
    );

    // Wrong v3 authentication key: refused as auth, no alarm.
    v3("127.0.0.5", to, "wrongpass999", COLD_START, &[]);
    wait_metric(&s, "emspool_traps_invalid_total{reason=\"auth\"}", 1);
    wait_event(&s, "trap.invalid", "authentication");
    // Wrong community.
    send(
        "snmptrap",
        &["-v2c", "-c", "private"],
        "127.0.0.5",
        to,
        &["", COLD_START],
    )
    .expect("snmptrap");
    wait_metric(&s, "emspool_traps_invalid_total{reason=\"community\"}", 1);
    assert!(alarm(&s, "Reboot:g1").is_none());

    // An address no element has: counted and logged (once), with the trap's content.
    for _ in 0..3 {
        v2c("127.0.0.7", to, COLD_START, &[]);
    }
    wait_metric(&s, "emspool_traps_unknown_sender_total", 3);
    let e = wait_event(&s, "trap.unknown-sender", "127.0.0.7");
    assert!(
        e["text"].as_str().unwrap_or_default().contains("coldStart"),
        "{e}"
    );
    assert_eq!(events_of(&s, "trap.unknown-sender").len(), 1);

    // Still serving: a good trap after all that raises its alarm.
    v2c("127.0.0.5", to, COLD_START, &[]);
    wait_alarm(&s, "Reboot:g1");
    v2c("127.0.0.1", to, COLD_START, &[]);
    wait_alarm(&s, "Reboot:dns1");
}

#[test]
fn link_flap_within_the_window_is_one_event_not_an_alarm() {
    let port = free_port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let s = Emspool::start(
        3,
        &body(port, &[("f1", "127.0.0.8")], "flap_window = \"2s\""),
    );
    wait_owned(&s, &["f1"]);
    let [o, t, v] = if_index(5);
    v2c("127.0.0.8", to, LINK_DOWN, &[&o, &t, &v]);
    v2c("127.0.0.8", to, LINK_UP, &[&o, &t, &v]);
    wait_event(&s, "link.flap", "interface 5");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(alarm(&s, "LinkDown:f1:5").is_none());
    assert!(
        !events_of(&s, "alarm.raised").iter().any(|e| e["text"]
            .as_str()
            .is_some_and(|t| t.contains("LinkDown:f1:5"))),
        "a flap raises no alarm"
    );
    // A linkDown that stays down alarms once the window has passed.
    let [o, t, v] = if_index(6);
    v2c("127.0.0.8", to, LINK_DOWN, &[&o, &t, &v]);
    wait_alarm(&s, "LinkDown:f1:6");
}

/// Three servers, each with its own trap port. Every element gets a trap sent to a server
/// that does not own it; the alarm must appear on the owner only.
#[test]
fn pool_forwards_traps_to_the_owner() {
    let ids = [1u32, 2, 3];
    let http: Vec<u16> = ids.iter().map(|_| free_port()).collect();
    let udp: Vec<u16> = ids.iter().map(|_| free_port()).collect();
    let elements = [
        ("p1", "127.0.0.21"),
        ("p2", "127.0.0.22"),
        ("p3", "127.0.0.23"),
        ("p4", "127.0.0.24"),
        ("p5", "127.0.0.25"),
        ("p6", "127.0.0.26"),
    ];
    let mut members = String::new();
    for (i, p) in http.iter().enumerate() {
        members.push_str(&format!(
            "\n[[pool.members]]\nid = {}\nurl = \"http://127.0.0.1:{p}\"\n",
            i + 1
        ));
    }
    let pool_section = format!("[pool]\nsecret = \"{SECRET}\"\n{members}\n");
    let mut servers: Vec<Emspool> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            Emspool::configure(
                id,
                http[i],
                &format!("{pool_section}\n{}", body(udp[i], &elements, "")),
            )
        })
        .collect();
    for s in &mut servers {
        s.spawn();
    }
    let mut pool = Pool { servers };
    // Every element owned by exactly one server.
    let owners = wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        let mut owners = Vec::new();
        for (name, _) in &elements {
            let holders: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|&id| pool.local_elements(id).iter().any(|n| n == name))
                .collect();
            match holders[..] {
                [one] => owners.push(one),
                _ => return None,
            }
        }
        let loads: Vec<usize> = ids
            .iter()
            .map(|id| owners.iter().filter(|o| *o == id).count())
            .collect();
        (loads.iter().all(|&l| l == 2)).then_some(owners)
    })
    .expect("balanced assignment of 6 elements to 3 servers");

    for (i, (name, ip)) in elements.iter().enumerate() {
        let owner = owners[i];
        let receiver = ids.iter().copied().find(|&id| id != owner).expect("other");
        let to: SocketAddr = format!("127.0.0.1:{}", udp[receiver as usize - 1])
            .parse()
            .expect("addr");
        let [o, t, v] = if_index(10 + i as u32);
        v2c(ip, to, LINK_DOWN, &[&o, &t, &v]);
        let key = format!("LinkDown:{name}:{}", 10 + i);
        let a = wait_alarm(pool.server(owner), &key);
        assert_eq!(a["server"], owner, "alarm lives on the owner");
        assert!(
            alarm(pool.server(receiver), &key).is_none(),
            "no copy on the receiver {receiver}"
        );
    }
    // An inform to a non-owner is acknowledged there and applied on the owner.
    let owner = owners[0];
    let receiver = ids.iter().copied().find(|&id| id != owner).expect("other");
    let to: SocketAddr = format!("127.0.0.1:{}", udp[receiver as usize - 1])
        .parse()
        .expect("addr");
    let [o, t, v] = if_index(10);
    let out = send(
        "snmpinform",
        &["-v2c", "-c", "public"],
        elements[0].1,
        to,
        &["", LINK_UP, &o, &t, &v],
    );
    assert!(out.is_ok(), "inform not acknowledged: {out:?}");
    wait_no_alarm(pool.server(owner), "LinkDown:p1:10");
    // v3 authPriv through a non-owner too.
    v3(elements[1].1, to, "authpass123", COLD_START, &[]);
    let owner2 = owners[1];
    wait_alarm(pool.server(owner2), "Reboot:p2");
    let forwarded: u64 = ids
        .iter()
        .map(|&id| metric(pool.server(id), "emspool_traps_forwarded_total"))
        .sum();
    assert!(forwarded >= 7, "forwarded {forwarded}");

    // Fail-over: the owner of p3 dies (kill -9) and a trap for p3 is sent to a survivor at
    // once. The forward fails, is retried and re-routed, and the alarm lands on p3's new owner.
    let dead = owners[2];
    pool.server_mut(dead).kill9();
    let receiver = ids
        .iter()
        .copied()
        .find(|&id| id != dead)
        .expect("survivor");
    let to: SocketAddr = format!("127.0.0.1:{}", udp[receiver as usize - 1])
        .parse()
        .expect("addr");
    let [o, t, v] = if_index(99);
    v2c(elements[2].1, to, LINK_DOWN, &[&o, &t, &v]);
    let survivors: Vec<u32> = ids.iter().copied().filter(|&id| id != dead).collect();
    let holder = wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        survivors
            .iter()
            .copied()
            .find(|&id| alarm(pool.server(id), "LinkDown:p3:99").is_some())
    })
    .expect("the trap reached p3's new owner");
    assert!(
        pool.local_elements(holder).iter().any(|n| n == "p3"),
        "the alarm is on the server that now owns p3"
    );
}
