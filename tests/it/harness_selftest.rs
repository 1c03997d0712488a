//! Proves the test helpers in tests/it/common work against the real peers. These fail (never
//! skip) when a peer is missing: run tests/install-peers.sh.

use crate::common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    ChildGuard, NcAuth, Netconfd, SnmpAuth, Snmpd, Snmpsim, free_port, free_port_run, snmp_get,
    snmp_responds, wait_until, wait_until_async,
};

fn proc_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn snmpd_answers_v2c_and_v3_and_restarts_on_same_port() {
    let mut agent = Snmpd::start();
    let addr = agent.addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");

    let name = snmp_get(addr, &agent.v2c(), Snmpd::OID_SYS_NAME)
        .unwrap_or_else(|e| panic!("v2c get: {e}\n{}", agent.log_tail()));
    assert_eq!(name, Snmpd::SYS_NAME);
    let loc = snmp_get(addr, &agent.v3(), Snmpd::OID_SYS_LOCATION)
        .unwrap_or_else(|e| panic!("v3 authPriv get: {e}\n{}", agent.log_tail()));
    assert_eq!(loc, Snmpd::SYS_LOCATION);

    // Wrong credentials are refused.
    assert!(!snmp_responds(
        addr,
        &SnmpAuth::v2c("wrong"),
        Snmpd::OID_SYS_NAME
    ));
    let SnmpAuth::V3 {
        user,
        auth_proto,
        priv_proto,
        priv_pass,
        ..
    } = agent.v3()
    else {
        unreachable!()
    };
    let bad_v3 = SnmpAuth::V3 {
        user,
        auth_proto,
        auth_pass: "not-the-password".into(),
        priv_proto,
        priv_pass,
    };
    assert!(!snmp_responds(addr, &bad_v3, Snmpd::OID_SYS_NAME));

    // Stop: process gone, port silent.
    let pid = agent.pid().expect("running");
    agent.stop();
    assert!(!proc_alive(pid), "snmpd pid {pid} still there after stop");
    assert!(agent.pid().is_none());
    assert!(!snmp_responds(addr, &agent.v2c(), Snmpd::OID_SYS_NAME));

    // Restart on the same port with the same persistent dir: v2c and v3 both work again.
    agent.restart();
    assert_eq!(agent.addr(), addr);
    assert_ne!(agent.pid(), Some(pid));
    assert_eq!(
        snmp_get(addr, &agent.v2c(), Snmpd::OID_SYS_NAME).unwrap(),
        Snmpd::SYS_NAME
    );
    let loc = snmp_get(addr, &agent.v3(), Snmpd::OID_SYS_LOCATION)
        .unwrap_or_else(|e| panic!("v3 after restart: {e}\n{}", agent.log_tail()));
    assert_eq!(loc, Snmpd::SYS_LOCATION);

    // A hung agent (SIGSTOP) times out; it answers again once continued.
    assert!(agent.child_mut().unwrap().signal("STOP"));
    assert!(!snmp_responds(addr, &agent.v2c(), Snmpd::OID_SYS_NAME));
    assert!(agent.child_mut().unwrap().signal("CONT"));
    assert_eq!(
        snmp_get(addr, &agent.v2c(), Snmpd::OID_SYS_NAME).unwrap(),
        Snmpd::SYS_NAME
    );

    let pid = agent.pid().unwrap();
    drop(agent);
    assert!(!proc_alive(pid), "snmpd pid {pid} survived drop");
}

#[test]
fn snmpsim_serves_50_devices_from_the_template() {
    let t0 = Instant::now();
    let sim = Snmpsim::start(50, &Snmpsim::router24_template());
    eprintln!("snmpsim with 50 devices ready in {:?}", t0.elapsed());
    let comms = sim.communities();
    assert_eq!(comms.len(), 50);
    assert_eq!(comms[0], "dev0001");
    assert_eq!(comms[49], "dev0050");
    for c in ["dev0001", "dev0050"] {
        let name = snmp_get(sim.addr(), &SnmpAuth::v2c(c), Snmpsim::OID_SYS_NAME)
            .unwrap_or_else(|e| panic!("{c}: {e}\n{}", sim.log_tail()));
        assert_eq!(name, "router24");
        let descr = snmp_get(sim.addr(), &SnmpAuth::v2c(c), "1.3.6.1.2.1.2.2.1.2.24").unwrap();
        assert_eq!(descr, "GigabitEthernet0/24");
    }
    // An unknown community gets no answer.
    assert!(!snmp_responds(
        sim.addr(),
        &SnmpAuth::v2c("dev9999"),
        Snmpsim::OID_SYS_NAME
    ));
    let pid = sim.pid().unwrap();
    drop(sim);
    assert!(!proc_alive(pid), "snmpsim pid {pid} survived drop");
}

fn sleeper(dir: &Path) -> ChildGuard {
    let mut cmd = Command::new("sleep");
    cmd.arg("300");
    common::spawn("sleep", cmd, dir)
}

#[test]
fn child_guard_kills_on_drop_and_on_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = sleeper(dir.path());
    let pid = g.pid();
    assert!(proc_alive(pid));
    assert!(g.is_running());
    drop(g);
    assert!(!proc_alive(pid), "pid {pid} survived drop");

    // Also when the owning thread panics.
    let path = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let res = std::thread::spawn(move || {
        let g = sleeper(&path);
        tx.send(g.pid()).unwrap();
        panic!("test panic with a live child");
    })
    .join();
    assert!(res.is_err());
    let pid = rx.recv().unwrap();
    assert!(!proc_alive(pid), "pid {pid} survived a panic");
}

#[test]
fn child_guard_terminate_reports_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    // Exits 0 on SIGTERM: what a graceful shutdown looks like.
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        "trap 'kill $!; echo bye; exit 0' TERM; echo up; sleep 300 & wait",
    ]);
    let mut g = common::spawn("graceful", cmd, dir.path());
    wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        std::fs::read_to_string(g.stdout_path())
            .ok()
            .filter(|s| s.contains("up"))
    })
    .unwrap();
    let st = g.terminate();
    assert_eq!(st.code(), Some(0), "{}", g.log_tail());
    assert!(g.log_tail().contains("bye"), "{}", g.log_tail());
    // Signals to a reaped child are refused, not sent to whoever reuses the PID.
    assert!(!g.signal("TERM"));

    // Ignores SIGTERM: terminate_within falls back to SIGKILL.
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "trap '' TERM; echo up; while :; do sleep 0.05; done"]);
    let mut g = common::spawn("stubborn", cmd, dir.path());
    wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        std::fs::read_to_string(g.stdout_path())
            .ok()
            .filter(|s| s.contains("up"))
    })
    .unwrap();
    let t0 = Instant::now();
    let st = g.terminate_within(Duration::from_millis(300));
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(st.code(), None, "SIGKILLed: no exit code");

    // kill9 on a fresh sleeper.
    let mut g = sleeper(dir.path());
    let pid = g.pid();
    let st = g.kill9();
    assert!(!st.success());
    assert!(!proc_alive(pid));
}

#[test]
fn ports_are_free_and_loopback_bindable() {
    let u = free_port();
    let t = free_port();
    assert_ne!(u, t);
    UdpSocket::bind(("127.0.0.1", u)).expect("udp port free");
    std::net::TcpListener::bind(("127.0.0.1", t)).expect("tcp port free");
    let start = free_port_run(16);
    let socks: Vec<UdpSocket> = (start..start + 16)
        .map(|p| UdpSocket::bind(("127.0.0.1", p)).expect("range port free"))
        .collect();
    assert_eq!(socks.len(), 16);
    // Not handed out twice by one process.
    let again = free_port_run(16);
    assert!(again + 16 <= start || again >= start + 16);
}

#[test]
fn waits_are_bounded() {
    let t0 = Instant::now();
    let r: Result<(), String> = wait_until(
        Duration::from_millis(200),
        Duration::from_millis(20),
        || None,
    );
    assert!(r.is_err());
    assert!(t0.elapsed() < Duration::from_secs(2));
    let mut n = 0;
    let v = wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
        n += 1;
        (n == 3).then_some(n)
    });
    assert_eq!(v, Ok(3));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t0 = Instant::now();
        // A check that hangs is cut off at the deadline.
        let r: Result<(), String> = wait_until_async(
            Duration::from_millis(200),
            Duration::from_millis(20),
            || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                None
            },
        )
        .await;
        assert!(r.is_err());
        assert!(t0.elapsed() < Duration::from_secs(2));
        let mut n = 0;
        let v = wait_until_async(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            let hit = n == 2;
            async move { hit.then_some("ok") }
        })
        .await;
        assert_eq!(v, Ok("ok"));
    });
}

#[test]
fn emspool_binary_is_built() {
    let bin = common::emspool_bin();
    assert!(bin.is_file(), "{} missing", bin.display());
}

#[test]
fn netconfd_behind_sshd_answers_with_password_and_key() {
    let mut nc = Netconfd::start();
    let get = "<rpc message-id=\"1\" xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">\
        <get><filter type=\"subtree\"><system-state \
        xmlns=\"urn:ietf:params:xml:ns:yang:ietf-system\"/></filter></get></rpc>";
    let close = "<rpc message-id=\"2\" xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">\
        <close-session/></rpc>";
    for auth in [NcAuth::Password, NcAuth::Key] {
        let out = nc
            .exchange(auth, &[get, close], Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{auth:?}: {e}\n{}", nc.log_tail()));
        assert!(out.contains("urn:ietf:params:netconf:base:1.0"), "{out}");
        assert!(out.contains("<rpc-reply message-id=\"1\""), "{out}");
        assert!(out.contains("netconfd"), "{out}");
        assert!(out.contains("<ok/>"), "close-session: {out}");
    }
    // Restart on the same port.
    let port = nc.port();
    nc.restart();
    assert_eq!(nc.port(), port);
    let out = nc
        .exchange(NcAuth::Key, &[get], Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("after restart: {e}\n{}", nc.log_tail()));
    assert!(out.contains("<rpc-reply message-id=\"1\""), "{out}");
    let pids: Vec<u32> = [
        nc.netconfd_mut().unwrap().pid(),
        nc.sshd_mut().unwrap().pid(),
    ]
    .into();
    drop(nc);
    for pid in pids {
        assert!(!proc_alive(pid), "pid {pid} survived drop");
    }
}
