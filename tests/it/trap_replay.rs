//! SNMPv3 replay protection against a running `emspool serve`: datagrams made by Net-SNMP's
//! `snmptrap`/`snmpinform` are captured on loopback and sent again later, as an attacker on
//! the path would; the receiver refuses them as outside the time window and counts them.

use crate::common;

use super::traps::{self, metric};
use common::emspool::Emspool;
use common::{free_port, snmp_tool, wait_until};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

const LINK_DOWN: &str = "1.3.6.1.6.3.1.1.5.3";
const LINK_UP: &str = "1.3.6.1.6.3.1.1.5.4";
const IF_INDEX: &str = "1.3.6.1.2.1.2.2.1.1";
const ENGINE: &str = "0x8000000001020304";
const LOCAL_ENGINE: &str = "0x80007ed90474726170732d7265706c6179";
const ELEMENT_IP: &str = "127.0.0.41";
const REFUSED: &str = "emspool_traps_invalid_total{reason=\"not_in_time_window\"}";
const WAIT: Duration = Duration::from_secs(15);

fn body(trap_port: u16) -> String {
    format!(
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
engine_id = "{LOCAL_ENGINE}"

[[traps.v3_users]]
user = "trapuser"
engine_id = "{ENGINE}"
auth_protocol = "sha"
auth_password = "authpass123"
priv_protocol = "aes"
priv_password = "privpass123"

[[traps.v3_users]]
user = "informuser"
engine_id = "{LOCAL_ENGINE}"
auth_protocol = "sha"
auth_password = "authpass123"
priv_protocol = "aes"
priv_password = "privpass123"

[[elements]]
name = "r1"
address = "{ELEMENT_IP}:9"
credential = "c"
"#
    )
}

fn auth(user: &str) -> Vec<String> {
    [
        "-v3",
        "-u",
        user,
        "-l",
        "authPriv",
        "-a",
        "SHA",
        "-A",
        "authpass123",
        "-x",
        "AES",
        "-X",
        "privpass123",
        "-t",
        "1",
        "-r",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `snmptrap` as agent engine ENGINE with the given engine boots and time (`-Z`).
fn snmptrap(to: SocketAddr, from: &str, boots_time: &str, oid: &str, if_index: u32) {
    let mut args = auth("trapuser");
    args.extend([
        "-e".into(),
        ENGINE.into(),
        "-Z".into(),
        boots_time.into(),
        format!("--clientaddr={from}"),
        format!("udp:{to}"),
        String::new(),
        oid.into(),
        format!("{IF_INDEX}.{if_index}"),
        "i".into(),
        if_index.to_string(),
    ]);
    snmp_tool("snmptrap", &args).unwrap_or_else(|e| panic!("snmptrap: {e}"));
}

/// What `snmptrap` sends, caught on a socket of ours instead of the receiver.
fn capture_trap(boots_time: &str, if_index: u32) -> Vec<u8> {
    let catcher = UdpSocket::bind("127.0.0.1:0").expect("bind");
    catcher
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let at = catcher.local_addr().expect("addr");
    snmptrap(at, "127.0.0.1", boots_time, LINK_DOWN, if_index);
    let mut buf = vec![0u8; 65_535];
    let (n, _) = catcher.recv_from(&mut buf).expect("the trap");
    buf.truncate(n);
    buf
}

/// Sends `datagram` to the receiver from the element's address, as a forger would.
fn replay(datagram: &[u8], to: SocketAddr) {
    let s = UdpSocket::bind(format!("{ELEMENT_IP}:0")).expect("bind element address");
    s.send_to(datagram, to).expect("send");
}

/// Relays one `snmpinform` exchange (discovery, inform, their answers) between the tool and
/// the receiver, sending from the element's address; returns what the tool sent.
fn relayed_inform(to: SocketAddr) -> Vec<Vec<u8>> {
    let front = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let back = UdpSocket::bind(format!("{ELEMENT_IP}:0")).expect("bind element address");
    for s in [&front, &back] {
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
    }
    let at = front.local_addr().expect("addr");
    let tool = std::thread::spawn(move || {
        let mut args = auth("informuser");
        args.extend([
            format!("udp:{at}"),
            String::new(),
            LINK_DOWN.into(),
            format!("{IF_INDEX}.7"),
            "i".into(),
            "7".into(),
        ]);
        snmp_tool("snmpinform", &args)
    });
    let mut sent = Vec::new();
    let mut buf = vec![0u8; 65_535];
    // Discovery and the inform, and a retry or two at most.
    for _ in 0..4 {
        let Ok((n, client)) = front.recv_from(&mut buf) else {
            break;
        };
        sent.push(buf[..n].to_vec());
        back.send_to(&buf[..n], to).expect("forward");
        if let Ok((m, _)) = back.recv_from(&mut buf) {
            front.send_to(&buf[..m], client).expect("answer");
        }
    }
    let out = tool.join().expect("snmpinform thread");
    assert!(
        out.is_ok(),
        "the relayed inform was not acknowledged: {out:?}"
    );
    sent
}

/// The receiver's side is the traps tests': the same alarm and metric reads.
fn wait_alarm(s: &Emspool, key: &str, present: bool) {
    if present {
        traps::wait_alarm(s, key);
    } else {
        traps::wait_no_alarm(s, key);
    }
}

fn has_alarm(s: &Emspool, key: &str) -> bool {
    traps::alarm(s, key).is_some()
}

fn wait_metric(s: &Emspool, name: &str, value: u64) {
    wait_until(WAIT, Duration::from_millis(50), || {
        (metric(s, name) == value).then_some(())
    })
    .unwrap_or_else(|e| panic!("{name} != {value}: {e} (is {})", metric(s, name)));
}

fn wait_owned(s: &Emspool) {
    traps::wait_owned(s, &["r1"]);
}

#[test]
fn a_captured_v3_trap_sent_again_later_is_refused_and_counted() {
    let port = free_port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let s = Emspool::start(1, &body(port));
    wait_owned(&s);
    // The agent's trap on its way: delivered once (genuine), it raises the alarm.
    let captured = capture_trap("3,1000", 5);
    replay(&captured, to);
    wait_alarm(&s, "LinkDown:r1:5", true);
    // The agent's clock runs on (1,000 s later, same boots) and the link comes back.
    snmptrap(to, ELEMENT_IP, "3,2000", LINK_UP, 5);
    wait_alarm(&s, "LinkDown:r1:5", false);
    // The forger sends the captured linkDown again: 1,000 s behind the agent's clock.
    assert_eq!(metric(&s, REFUSED), 0);
    replay(&captured, to);
    wait_metric(&s, REFUSED, 1);
    // The agent restarted (boots 4); a trap of boots 3, whatever its time, is a replay.
    snmptrap(to, ELEMENT_IP, "4,10", LINK_DOWN, 6);
    wait_alarm(&s, "LinkDown:r1:6", true);
    replay(&capture_trap("3,2100", 5), to);
    wait_metric(&s, REFUSED, 2);
    // A genuine trap sent after the replays is applied, so the replays were decoded first:
    // none of them raised anything.
    snmptrap(to, ELEMENT_IP, "4,20", LINK_UP, 6);
    wait_alarm(&s, "LinkDown:r1:6", false);
    assert!(!has_alarm(&s, "LinkDown:r1:5"), "a replay raised an alarm");
    let refused = s.events("kind=trap.invalid&limit=100");
    assert!(
        refused.iter().any(|e| e["text"]
            .as_str()
            .is_some_and(|t| t.contains("time window"))),
        "no trap.invalid event about the time window: {refused:?}"
    );
}

/// For informs this server is the authoritative engine: an inform captured before it
/// restarted (its boots went up) is not in its time window.
#[test]
fn an_inform_captured_before_the_receiver_restarted_is_refused_and_counted() {
    let port = free_port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut s = Emspool::start(2, &body(port));
    wait_owned(&s);
    let sent = relayed_inform(to);
    wait_alarm(&s, "LinkDown:r1:7", true);
    let inform = sent.last().expect("the inform").clone();
    assert!(sent.len() >= 2, "discovery then the inform: {}", sent.len());
    s.restart();
    wait_owned(&s);
    let before = metric(&s, REFUSED);
    replay(&inform, to);
    wait_metric(&s, REFUSED, before + 1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !has_alarm(&s, "LinkDown:r1:7"),
        "the replayed inform raised its alarm again"
    );
}
