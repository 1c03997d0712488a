//! Simulator behaviour seen from a client (snmp2): single-port routing by community, flap and
//! outage schedules, reboots, size limits, malformed datagrams and start-up failures.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use emspool::sim::{Dataset, FlapSchedule, OutageSchedule, SimConfig, SimError, SimHandle, start};
use snmp2::{AsyncSession, Oid, Value};
use tokio::time::{sleep, timeout};

const SYS_UPTIME: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];
const SYS_NAME: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 5, 0];
const IF_OPER_1: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 8, 1];
const REPLY_WAIT: Duration = Duration::from_millis(300);

fn config() -> SimConfig {
    SimConfig::new(Arc::new(Dataset::router24().expect("template")))
}

/// Single-port mode on a free port: no port hunting needed.
async fn start_single(mut cfg: SimConfig) -> SimHandle {
    cfg.single_port = true;
    cfg.base_port = 0;
    timeout(Duration::from_secs(10), start(cfg))
        .await
        .expect("start in time")
        .expect("simulator starts")
}

/// What one GET answers, or `None` if nothing came back in time. A fresh session per call,
/// because an snmp2 session is unusable after a timeout.
#[derive(Debug, PartialEq)]
enum Got {
    Str(String),
    Int(i64),
    Ticks(u32),
    Other(String),
}

async fn get(addr: SocketAddr, community: &str, oid: &[u64]) -> Option<Got> {
    // A session holds two 64 KiB buffers: keep it off the test thread's stack.
    Box::pin(get_inner(addr, community, oid)).await
}

async fn get_inner(addr: SocketAddr, community: &str, oid: &[u64]) -> Option<Got> {
    let mut s = AsyncSession::new_v2c(addr, community.as_bytes(), 1)
        .await
        .expect("session");
    let oid = Oid::from(oid).expect("oid");
    let pdu = timeout(REPLY_WAIT, s.get(&oid))
        .await
        .ok()?
        .expect("valid reply");
    let (_, value) = pdu.varbinds.clone().next().expect("one varbind");
    Some(match value {
        Value::OctetString(b) => Got::Str(String::from_utf8_lossy(b).into_owned()),
        Value::Integer(n) => Got::Int(n),
        Value::Timeticks(t) => Got::Ticks(t),
        other => Got::Other(format!("{other:?}")),
    })
}

/// Sleeps until the simulator clock is inside [lo, hi) of its `period`.
async fn wait_phase(sim: &SimHandle, period: Duration, lo: Duration, hi: Duration) {
    for _ in 0..1000 {
        let phase = sim.elapsed().as_millis() % period.as_millis();
        if phase >= lo.as_millis() && phase < hi.as_millis() {
            return;
        }
        sleep(Duration::from_millis(10)).await;
    }
    panic!("never reached phase {lo:?}..{hi:?}");
}

#[tokio::test]
async fn single_port_community_selects_the_device() {
    let mut cfg = config();
    cfg.agents = 5;
    let sim = start_single(cfg).await;
    let addr = sim.addr(0).expect("addr");
    assert_eq!(sim.addr(4), Some(addr));
    assert_eq!(sim.community(3), "sim00003");
    for i in [0, 3, 4] {
        let got = get(addr, &sim.community(i), SYS_NAME).await;
        assert_eq!(got, Some(Got::Str(format!("sim{i:05}"))));
    }
    assert_eq!(get(addr, "sim00005", SYS_NAME).await, None);
    assert_eq!(get(addr, "public", SYS_NAME).await, None);
    let stats = sim.stats();
    assert_eq!((stats.responses, stats.bad_community), (3, 2), "{stats:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn flaps_and_outages_follow_their_schedules() {
    let period = Duration::from_millis(2000);
    let ms = Duration::from_millis;
    let mut cfg = config();
    cfg.agents = 4;
    cfg.flap = Some(FlapSchedule {
        every: 2,
        if_index: 1,
        period,
        down_for: ms(800),
    });
    cfg.outage = Some(OutageSchedule {
        every: 3,
        period,
        down_for: ms(800),
    });
    let sim = start_single(cfg).await;
    let addr = sim.addr(0).expect("addr");
    let c = |i: usize| sim.community(i);

    // First cycle, healthy part: everyone answers, every link up.
    wait_phase(&sim, period, ms(100), ms(700)).await;
    for i in 0..4 {
        assert_eq!(
            get(addr, &c(i), IF_OPER_1).await,
            Some(Got::Int(1)),
            "agent {i}"
        );
    }
    // Down part: agents 0 and 2 flap, agents 0 and 3 are unreachable. The unanswered requests
    // wait concurrently so that all checks finish well inside the 800 ms window.
    wait_phase(&sim, period, ms(1250), ms(1400)).await;
    assert_eq!(get(addr, &c(1), IF_OPER_1).await, Some(Got::Int(1)));
    assert_eq!(get(addr, &c(2), IF_OPER_1).await, Some(Got::Int(2)));
    let (c0, c3) = (c(0), c(3));
    let (zero, three) = tokio::join!(get(addr, &c0, IF_OPER_1), get(addr, &c3, IF_OPER_1));
    assert_eq!((zero, three), (None, None));
    assert!(sim.stats().dropped_outage >= 2);

    // Next cycle: links back up, and the outage looked like a reboot.
    wait_phase(&sim, period, ms(100), ms(700)).await;
    assert!(sim.elapsed() > period);
    assert_eq!(get(addr, &c(2), IF_OPER_1).await, Some(Got::Int(1)));
    let Some(Got::Ticks(rebooted)) = get(addr, &c(3), SYS_UPTIME).await else {
        panic!("agent 3 answers sysUpTime");
    };
    let Some(Got::Ticks(steady)) = get(addr, &c(1), SYS_UPTIME).await else {
        panic!("agent 1 answers sysUpTime");
    };
    assert!(
        rebooted < 100,
        "agent 3 uptime {rebooted} ticks after reboot"
    );
    assert!(
        steady >= 200,
        "agent 1 uptime {steady} ticks, never rebooted"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_datagrams_are_counted_and_dropped() {
    let mut cfg = config();
    cfg.agents = 1;
    let sim = start_single(cfg).await;
    let addr = sim.addr(0).expect("addr");
    let raw = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let junk: [&[u8]; 5] = [
        b"",
        b"\x30",
        b"hello",
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        &[0xa5; 300],
    ];
    for j in junk {
        raw.send_to(j, addr).await.expect("send");
    }
    let mut buf = [0u8; 1500];
    let reply = timeout(REPLY_WAIT, raw.recv_from(&mut buf)).await;
    assert!(reply.is_err(), "junk must not be answered");
    assert_eq!(sim.stats().malformed, 5);
    assert_eq!(
        get(addr, "sim00000", SYS_NAME).await,
        Some(Got::Str("sim00000".into()))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn replies_respect_the_message_size() {
    let mut cfg = config();
    cfg.max_msg_size = 484;
    let sim = start_single(cfg).await;
    let addr = sim.addr(0).expect("addr");
    let mut s = AsyncSession::new_v2c(addr, b"sim00000", 1)
        .await
        .expect("session");
    let root = Oid::from(&[1, 3]).expect("oid");
    let pdu = timeout(REPLY_WAIT, s.getbulk(&[&root], 0, 200))
        .await
        .expect("bulk reply")
        .expect("valid");
    let n = pdu.varbinds.clone().count();
    assert_eq!(pdu.error_status, 0);
    assert!(n > 5 && n < 200, "GetBulk trimmed to fit, got {n} varbinds");

    let mut s = AsyncSession::new_v2c(addr, b"sim00000", 1)
        .await
        .expect("session");
    let descr = Oid::from(&[1, 3, 6, 1, 2, 1, 1, 1, 0]).expect("oid");
    let many = vec![&descr; 20];
    let pdu = timeout(REPLY_WAIT, s.get_many(&many))
        .await
        .expect("get reply")
        .expect("valid");
    assert_eq!(
        (pdu.error_status, pdu.varbinds.clone().count()),
        (1, 0),
        "tooBig"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn v1_requests_are_answered() {
    let sim = start_single(config()).await;
    let addr = sim.addr(0).expect("addr");
    let mut s = AsyncSession::new_v1(addr, b"sim00000", 1)
        .await
        .expect("session");
    let oid = Oid::from(SYS_NAME).expect("oid");
    let pdu = timeout(REPLY_WAIT, s.get(&oid))
        .await
        .expect("reply")
        .expect("valid");
    let (_, v) = pdu.varbinds.clone().next().expect("varbind");
    assert!(matches!(v, Value::OctetString(b"sim00000")));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_taken_port_fails_the_start_and_shutdown_frees_ports() {
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut cfg = config();
    cfg.base_port = port;
    cfg.agents = 1;
    let err = start(cfg.clone()).await.err().expect("port is taken");
    assert!(matches!(err, SimError::Bind { .. }), "{err}");
    assert!(err.to_string().contains("port taken"), "{err}");
    drop(taken);

    let sim = start(cfg.clone()).await.expect("port free again");
    sim.shutdown().await;
    let again = start(cfg).await.expect("shutdown released the port");
    again.shutdown().await;

    let mut bad = config();
    bad.agents = 0;
    assert!(matches!(start(bad).await, Err(SimError::Config(_))));
    let mut bad = config();
    bad.base_port = 65535;
    bad.agents = 2;
    assert!(matches!(start(bad).await, Err(SimError::PortRange { .. })));
}
