//! Trap ingestion: a paced Rust sender on loopback blasts pre-encoded SNMPv2c linkDown/linkUp
//! traps at one server's trap socket; every trap must end as an alarm change and one event.
//!
//!     TRAPS_BENCH_SECS=60 TRAPS_BENCH_RATE=20000 cargo bench --bench traps
//!
//! The server is the real one in-process (event log, alarm table, poller, pool of one, trap
//! service with its socket and queues); only HTTP is left out. Traps cycle over 1,000 ifIndexes:
//! down for all of them, then up for all, so each one flips an alarm (raise or clear) and writes
//! exactly one event. Reports sent vs received vs applied vs events written, and the kernel's
//! drop counter for the socket. Exits non-zero on any loss.

use emspool::alarms::AlarmTable;
use emspool::cluster::Cluster;
use emspool::config::Config;
use emspool::eventlog::EventLog;
use emspool::metrics::Metrics;
use emspool::poll::Poller;
use emspool::poll::traps::TrapService;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const INTERFACES: u32 = 1000;
const SENDER_IP: &str = "127.0.0.2";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn int(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut i = 0;
    while i < 7
        && ((bytes[i] == 0 && bytes[i + 1] & 0x80 == 0)
            || (bytes[i] == 0xff && bytes[i + 1] & 0x80 != 0))
    {
        i += 1;
    }
    tlv(0x02, &bytes[i..])
}

fn oid(arcs: &[u32]) -> Vec<u8> {
    let mut c = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut stack = vec![(a & 0x7f) as u8];
        let mut v = a >> 7;
        while v > 0 {
            stack.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        c.extend(stack.iter().rev());
    }
    tlv(0x06, &c)
}

/// An SNMPv2c Trap-PDU: sysUpTime.0, snmpTrapOID.0 = linkDown/linkUp, ifIndex.N = N.
fn v2c_link_trap(req_id: i32, up: bool, if_index: u32) -> Vec<u8> {
    let vb = |name: Vec<u8>, value: Vec<u8>| tlv(0x30, &[name, value].concat());
    let uptime = vb(oid(&[1, 3, 6, 1, 2, 1, 1, 3, 0]), tlv(0x43, &[0x01, 0x00]));
    let trap = vb(
        oid(&[1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0]),
        oid(&[1, 3, 6, 1, 6, 3, 1, 1, 5, if up { 4 } else { 3 }]),
    );
    let index = vb(
        oid(&[1, 3, 6, 1, 2, 1, 2, 2, 1, 1, if_index]),
        int(i64::from(if_index)),
    );
    let varbinds = tlv(0x30, &[uptime, trap, index].concat());
    let pdu = tlv(
        0xa7,
        &[int(i64::from(req_id)), int(0), int(0), varbinds].concat(),
    );
    tlv(0x30, &[int(1), tlv(0x04, b"public"), pdu].concat())
}

/// `drops` of the UDP socket bound to `port` in /proc/net/udp (kernel buffer overflows).
fn kernel_drops(port: u16) -> u64 {
    let text = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let want = format!(":{port:04X}");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1)?.ends_with(&want)).then(|| f.last()?.parse::<u64>().ok())?
        })
        .sum()
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let secs = env_u64("TRAPS_BENCH_SECS", 10);
    let rate = env_u64("TRAPS_BENCH_RATE", 20_000);
    let workers = env_u64("TRAPS_BENCH_WORKERS", 2) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    let ok = rt.block_on(run(secs, rate));
    if !ok {
        std::process::exit(1);
    }
}

async fn run(secs: u64, rate: u64) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        r#"
[server]
id = 1
listen = "127.0.0.1:1"
data_dir = "{}"

[poll]
interval = "3600s"
timeout = "1s"
retries = 0

[credentials.c]
version = "v2c"
community = "public"

[[elements]]
name = "bench1"
address = "{SENDER_IP}:9"
credential = "c"

[traps]
listen = "127.0.0.1:0"
"#,
        dir.path().display()
    );
    let config = Config::parse(&text, "bench.toml").expect("config");
    let id = config.server_id();
    let events = EventLog::open(&dir.path().join("e.redb"), id, Duration::ZERO).expect("log");
    let metrics = Metrics::new().expect("metrics");
    let alarms = std::sync::Arc::new(AlarmTable::new(id, events.clone()));
    let (poller, _sched) = Poller::start(
        id,
        config.poll.clone(),
        config.credentials.clone(),
        alarms.clone(),
        events.clone(),
        metrics.clone(),
    );
    let cluster = Cluster::start(
        &config,
        poller.clone(),
        alarms.clone(),
        events.clone(),
        metrics.clone(),
    )
    .await
    .expect("cluster");
    let (traps, _tasks) = TrapService::start(
        id,
        config.traps.as_ref(),
        config.elements.clone(),
        cluster,
        poller.clone(),
        alarms.clone(),
        events.clone(),
        metrics.traps.clone(),
    )
    .await
    .expect("trap service");
    let to = traps.local_addr().expect("listening");
    // Wait for ownership and the element's first (failing) poll, so that only trap events
    // are written while we measure.
    let t0 = Instant::now();
    while poller
        .status_of("bench1")
        .is_none_or(|(_, st)| st.last_poll.is_none())
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "element never polled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while traps.routes().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    events.flush().await.expect("flush");
    let events_before = events.written_total();
    let m = metrics.traps.clone();

    let total = secs * rate;
    // Pre-encoded: 2 x INTERFACES datagrams, reused in a cycle (request ids repeat, which a
    // receiver of traps does not care about).
    let datagrams: Vec<Vec<u8>> = (0..2 * INTERFACES)
        .map(|k| v2c_link_trap(k as i32, k >= INTERFACES, k % INTERFACES + 1))
        .collect();
    println!(
        "traps bench: {total} traps at {rate}/s for {secs} s to {to} from {SENDER_IP}, \
         {} bytes each",
        datagrams[0].len()
    );
    let drops_before = kernel_drops(to.port());
    let sender = std::thread::spawn(move || send_paced(&datagrams, to, total, rate));
    let sent_for = tokio::task::spawn_blocking(move || sender.join().expect("sender"))
        .await
        .expect("join");
    let send_end = Instant::now();
    // Drain: everything sent must be applied.
    let drain_limit = Duration::from_secs(60);
    while m.applied.get() < total && send_end.elapsed() < drain_limit {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = send_end.elapsed();
    events.flush().await.expect("flush");
    let written = events.written_total() - events_before;
    let drops = kernel_drops(to.port()) - drops_before;
    let received = m.received.get();
    let applied = m.applied.get();
    let waits = m.queue_waits.get();
    let invalid: u64 = ["malformed", "community", "version", "not_notification"]
        .iter()
        .map(|r| m.invalid.with_label_values(&[r]).get())
        .sum();
    println!(
        "sent {total} in {:.2} s ({:.0}/s offered); received {received}, applied {applied}, \
         invalid {invalid}, events written {written}; kernel drops {drops}; queue waits {waits}; \
         drained {:.0} ms after the last send",
        sent_for.as_secs_f64(),
        total as f64 / sent_for.as_secs_f64(),
        drained.as_secs_f64() * 1000.0
    );
    let active = alarms.count_for("bench1");
    println!("active alarms on bench1 at the end: {active}");
    let lossless = received == total && applied == total && written == total && drops == 0;
    println!(
        "{}: {:.0} traps/s ingested into alarms and the event log",
        if lossless { "LOSSLESS" } else { "LOSS" },
        applied as f64 / (sent_for + drained).as_secs_f64()
    );
    events.close().await;
    lossless
}

/// Sends `total` datagrams at `rate` per second, in small bursts every 500 µs.
fn send_paced(datagrams: &[Vec<u8>], to: SocketAddr, total: u64, rate: u64) -> Duration {
    let sock = UdpSocket::bind((SENDER_IP, 0)).expect("bind sender");
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
        while sent < due {
            let d = &datagrams[(sent % datagrams.len() as u64) as usize];
            match sock.send_to(d, to) {
                Ok(_) => sent += 1,
                // ENOBUFS on a full loopback queue: retry, never skip.
                Err(_) => std::thread::sleep(Duration::from_micros(50)),
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    start.elapsed()
}
