//! Trap ingestion: a paced Rust sender on loopback blasts pre-encoded SNMPv2c linkDown/linkUp
//! traps at one server's trap socket; every trap must end as an alarm change and one event.
//!
//!     TRAPS_BENCH_SECS=60 TRAPS_BENCH_RATE=20000 cargo bench --bench traps
//!     TRAPS_BENCH_FORWARD=1 ... cargo bench --bench traps     (through a non-owner, see below)
//!     TRAPS_BENCH_JETSTREAM=1 ... cargo bench --bench traps   (`emspool serve` processes,
//!         JetStream off then on: R3 stream on a 3-node nats-server cluster, see run_jetstream)
//!
//! The server is the real one in-process (event log, alarm table, poller, pool of one, trap
//! service with its socket and queues); only HTTP is left out. Traps cycle over 1,000 ifIndexes:
//! down for all of them, then up for all, so each one flips an alarm (raise or clear) and writes
//! exactly one event. Reports sent vs received vs applied vs events written, and the kernel's
//! drop counter for the socket. Exits non-zero on any loss.

use emspool::testing::{Config, Server};
use rasn::types::{ObjectIdentifier, OctetString};
use rasn_snmp::v2::{ObjectSyntax, Pdu, Pdus, TimeTicks, Trap, VarBind, VarBindValue};
use rasn_snmp::v2c::Message;

#[path = "../tests/it/common/mod.rs"]
mod common;
mod support;
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

fn oid(arcs: &[u32]) -> ObjectIdentifier {
    ObjectIdentifier::new(arcs.to_vec()).expect("valid OID")
}

/// The Trap-PDU: sysUpTime.0, snmpTrapOID.0 = linkDown/linkUp, ifIndex.N = N (rasn-snmp, the
/// encoder emspool's simulator uses too).
fn link_trap_pdu(req_id: i32, up: bool, if_index: u32) -> Pdus {
    let vb = |name: &[u32], value: ObjectSyntax| VarBind {
        name: oid(name),
        value: VarBindValue::Value(value),
    };
    #[allow(clippy::init_numbered_fields)] // TimeTicks is a type alias: no constructor call
    let uptime = TimeTicks { 0: 256 };
    Pdus::Trap(Trap(Pdu {
        request_id: req_id,
        error_status: 0,
        error_index: 0,
        variable_bindings: vec![
            vb(&[1, 3, 6, 1, 2, 1, 1, 3, 0], uptime.into()),
            vb(
                &[1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0],
                oid(&[1, 3, 6, 1, 6, 3, 1, 1, 5, if up { 4 } else { 3 }]).into(),
            ),
            vb(
                &[1, 3, 6, 1, 2, 1, 2, 2, 1, 1, if_index],
                i64::from(if_index).into(),
            ),
        ],
    }))
}

/// An SNMPv2c message (community "public") carrying [`link_trap_pdu`].
fn v2c_link_trap(req_id: i32, up: bool, if_index: u32) -> Vec<u8> {
    let msg = Message {
        version: 1.into(),
        community: OctetString::from_static(b"public"),
        data: link_trap_pdu(req_id, up, if_index),
    };
    rasn::ber::encode(&msg).expect("encode trap")
}

const V3_ENGINE: &str = "8000000001020304";

/// The sending agent's engine and user (keys localized once).
fn v3_sender(
    config: &Config,
) -> (
    emspool::testing::snmp::LocalEngine,
    emspool::testing::snmp::InformUser,
) {
    use emspool::testing::snmp::{InformUser, LocalEngine};
    let engine = LocalEngine::new(
        emspool::testing::parse_engine_id(V3_ENGINE).expect("engine"),
        1,
    );
    let users = &config.traps.as_ref().expect("traps").v3_users;
    let user = InformUser::new(&users[0], &engine)
        .expect("keys")
        .expect("user of that engine");
    (engine, user)
}

/// [`link_trap_pdu`] sent as an SNMPv3 authPriv message from the sender's engine.
fn v3_link_trap(
    (req_id, up, if_index): (i32, bool, u32),
    msg_id: i64,
    engine: &emspool::testing::snmp::LocalEngine,
    user: &emspool::testing::snmp::InformUser,
) -> Vec<u8> {
    let pdu = rasn::ber::encode(&link_trap_pdu(req_id, up, if_index)).expect("encode PDU");
    emspool::testing::snmp::encode_as_engine(engine, user, msg_id, pdu).expect("encode")
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
    let forward = std::env::var("TRAPS_BENCH_FORWARD").is_ok_and(|v| v == "1");
    let jetstream = std::env::var("TRAPS_BENCH_JETSTREAM").is_ok_and(|v| v == "1");
    let ok = if jetstream {
        run_jetstream(&rt, secs, rate)
    } else if forward {
        rt.block_on(run_forward(secs, rate))
    } else {
        rt.block_on(run(secs, rate))
    };
    if !ok {
        std::process::exit(1);
    }
}

/// The polling and inventory part of both benches' configurations: one element, `bench1`,
/// at the sender's address, polled once an hour (its polls fail; only traps matter).
fn inventory() -> String {
    format!(
        r#"
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
"#
    )
}

async fn run(secs: u64, rate: u64) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        r#"
[server]
id = 1
listen = "127.0.0.1:0"
data_dir = "{}"
{}
[traps]
listen = "127.0.0.1:0"

[[traps.v3_users]]
user = "benchuser"
engine_id = "{V3_ENGINE}"
auth_protocol = "sha"
auth_password = "authpass123"
priv_protocol = "aes"
priv_password = "privpass123"
"#,
        dir.path().display(),
        inventory(),
    );
    let config = Config::parse(&text, "bench.toml").expect("config");
    let server = Server::start(&config).await.expect("server");
    let to = server.trap_addr().expect("listening");
    // Wait for ownership and the element's first (failing) poll, so that only trap events
    // are written while we measure.
    let t0 = Instant::now();
    while !server.polled("bench1") {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "element never polled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while !server.trap_routes_ready() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = server.events().clone();
    events.flush().await.expect("flush");
    let events_before = events.written_total();

    let total = secs * rate;
    // Pre-encoded: 2 x INTERFACES datagrams, reused in a cycle (request ids repeat, which a
    // receiver of traps does not care about).
    let v3 = std::env::var("TRAPS_BENCH_V3").is_ok_and(|v| v == "1");
    let sender_engine = v3.then(|| v3_sender(&config));
    let datagrams: Vec<Vec<u8>> = (0..2 * INTERFACES)
        .map(|k| {
            let trap = (k as i32, k >= INTERFACES, k % INTERFACES + 1);
            match &sender_engine {
                Some((engine, user)) => v3_link_trap(trap, k as i64, engine, user),
                None => v2c_link_trap(trap.0, trap.1, trap.2),
            }
        })
        .collect();
    println!(
        "traps bench: {total} {} traps at {rate}/s for {secs} s to {to} from {SENDER_IP}, \
         {} bytes each",
        if v3 {
            "SNMPv3 authPriv (SHA, AES)"
        } else {
            "SNMPv2c"
        },
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
    while server.trap_counts().1 < total && send_end.elapsed() < drain_limit {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = send_end.elapsed();
    events.flush().await.expect("flush");
    let written = events.written_total() - events_before;
    let drops = kernel_drops(to.port()) - drops_before;
    let (received, applied, waits, invalid) = server.trap_counts();
    println!(
        "sent {total} in {:.2} s ({:.0}/s offered); received {received}, applied {applied}, \
         invalid {invalid}, events written {written}; kernel drops {drops}; queue waits {waits}; \
         drained {:.0} ms after the last send",
        sent_for.as_secs_f64(),
        total as f64 / sent_for.as_secs_f64(),
        drained.as_secs_f64() * 1000.0
    );
    let active = server.active_alarms("bench1");
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

/// A counter from a server's `/metrics` (0 when absent).
async fn scrape(http: &reqwest::Client, port: u16, name: &str) -> u64 {
    let Ok(resp) = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
    else {
        return 0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0, |v| v as u64)
}

/// Forwarding: two full servers (`emspool::testing::Server`, the wiring of `emspool serve`, HTTP included) in a pool; the element
/// is pinned to server 1 and every trap is sent to server 2's trap port, which must forward it
/// (batched `POST /peer/v1/traps`) to server 1, where it becomes an alarm change and an event.
async fn run_forward(secs: u64, rate: u64) -> bool {
    let dirs = [
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    ];
    let free_port = || emspool::testing::support::free_port().expect("free port");
    let http_ports = [free_port(), free_port()];
    let trap_ports = [free_port(), free_port()];
    let mut stops = Vec::new();
    for i in 0..2 {
        let text = format!(
            r#"
[server]
id = {id}
listen = "127.0.0.1:{http}"
data_dir = "{dir}"

[pool]
secret = "bench-pool-secret"
[[pool.members]]
id = 1
url = "http://127.0.0.1:{h1}"
[[pool.members]]
id = 2
url = "http://127.0.0.1:{h2}"
{inventory}pin = 1

[traps]
listen = "127.0.0.1:{trap}"
"#,
            id = i + 1,
            http = http_ports[i],
            dir = dirs[i].path().display(),
            h1 = http_ports[0],
            h2 = http_ports[1],
            trap = trap_ports[i],
            inventory = inventory(),
        );
        let config = Config::parse(&text, "bench.toml").expect("config");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        tokio::spawn(async move {
            let served = match Server::start(&config).await {
                Ok(server) => {
                    server
                        .run(async {
                            let _ = stopped.await;
                        })
                        .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = served {
                eprintln!("server failed: {e:#}");
            }
        });
    }
    emspool::testing::install_tls_provider();
    let http = reqwest::Client::new();
    // Ready when server 1 owns the element and has polled it once (its NodeDown is written).
    let t0 = Instant::now();
    loop {
        let owned = scrape(&http, http_ports[0], "emspool_elements_owned").await;
        let polls = scrape(&http, http_ports[0], "emspool_polls_total{result=\"down\"}").await
            + scrape(
                &http,
                http_ports[0],
                "emspool_polls_total{result=\"unknown\"}",
            )
            .await;
        if owned == 1 && polls >= 1 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "pool never assigned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_before = scrape(&http, http_ports[0], "emspool_events_written_total").await;
    let total = secs * rate;
    let datagrams: Vec<Vec<u8>> = (0..2 * INTERFACES)
        .map(|k| v2c_link_trap(k as i32, k >= INTERFACES, k % INTERFACES + 1))
        .collect();
    let to: SocketAddr = format!("127.0.0.1:{}", trap_ports[1])
        .parse()
        .expect("addr");
    println!(
        "traps bench (forward): {total} traps at {rate}/s for {secs} s to server 2 ({to}), \
         owner server 1"
    );
    let sender = std::thread::spawn(move || send_paced(&datagrams, to, total, rate));
    let sent_for = tokio::task::spawn_blocking(move || sender.join().expect("sender"))
        .await
        .expect("join");
    let send_end = Instant::now();
    let mut applied = 0;
    while send_end.elapsed() < Duration::from_secs(60) {
        applied = scrape(&http, http_ports[0], "emspool_traps_applied_total").await;
        if applied >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = send_end.elapsed();
    // The event log commits in groups; give the last group a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let written =
        scrape(&http, http_ports[0], "emspool_events_written_total").await - events_before;
    let received = scrape(&http, http_ports[1], "emspool_traps_received_total").await;
    let forwarded = scrape(&http, http_ports[1], "emspool_traps_forwarded_total").await;
    let drops = scrape(&http, http_ports[1], "emspool_traps_socket_drops_total").await;
    println!(
        "sent {total} in {:.2} s; server 2 received {received}, forwarded {forwarded}, socket \
         drops {drops}; server 1 applied {applied}, events written {written}; drained {:.0} ms \
         after the last send",
        sent_for.as_secs_f64(),
        drained.as_secs_f64() * 1000.0
    );
    let lossless = received == total && forwarded == total && applied == total && written == total;
    println!(
        "{}: {:.0} traps/s through a non-owner into the owner's alarms and event log",
        if lossless { "LOSSLESS" } else { "LOSS" },
        applied as f64 / (sent_for + drained).as_secs_f64()
    );
    for s in stops {
        let _ = s.send(());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    lossless
}

/// One process-level round of [`run_jetstream`].
#[derive(Debug, Default)]
struct Round {
    sent_for: Duration,
    received: u64,
    applied: u64,
    written: u64,
    written_total: u64,
    drops: u64,
    drained: Duration,
    cpu: f64,
    backlog_max: f64,
    published_after: Option<Duration>,
    stream: u64,
    published: f64,
    acked: f64,
    failed: f64,
    duplicates: f64,
    delay: (f64, f64, f64),
    ack: (f64, f64, f64),
    nats_cpu: f64,
}

fn scrape_text(port: u16) -> String {
    support::http_get(
        &format!("http://127.0.0.1:{port}/metrics"),
        Duration::from_secs(5),
    )
    .unwrap_or_default()
}

fn quantiles(text: &str, name: &str) -> (f64, f64, f64) {
    let b = support::buckets(text, name);
    let q = |x| support::histogram_quantile(x, &[], &b).unwrap_or(f64::NAN);
    (q(0.5), q(0.99), q(0.999))
}

/// `emspool serve` (this build's binary) with a trap listener, and `nats` when JetStream is on;
/// `total` traps at `rate`, then everything must be applied, written and (when on) in the
/// stream.
fn jetstream_round(
    rt: &tokio::runtime::Runtime,
    secs: u64,
    rate: u64,
    nats: Option<&common::nats::NatsCluster>,
) -> Round {
    let dir =
        support::TempDir::new(if nats.is_some() { "js-on" } else { "js-off" }).expect("temp dir");
    let http = support::free_tcp_port();
    let trap = loop {
        let p = support::free_tcp_port();
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            break p;
        }
    };
    let js = nats.map_or(String::new(), |n| {
        format!(
            "[events.jetstream]\nservers = {}\nstream = \"BENCH\"\nsubject_prefix = \"bench\"\nreplicas = 3\n",
            n.servers_toml()
        )
    });
    let text = format!(
        r#"
[server]
id = 1
listen = "127.0.0.1:{http}"
data_dir = "{}"
log_level = "warn"

[events]
retention = "0s"
{js}{}
[traps]
listen = "127.0.0.1:{trap}"
"#,
        dir.path().join("data").display(),
        inventory(),
    );
    let config = dir.path().join("emspool.toml");
    std::fs::write(&config, text).expect("config");
    let url = format!("http://127.0.0.1:{http}");
    let serve = support::spawn_serve(
        "emspool",
        &config,
        dir.path(),
        &url,
        Duration::from_millis(100),
        300,
    );
    let t0 = Instant::now();
    loop {
        let m = scrape_text(http);
        let polled = support::metric(&m, "emspool_polls_total", None);
        if support::metric(&m, "emspool_elements_owned", None) == 1.0 && polled >= 1.0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "element never polled"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let m = scrape_text(http);
    let before = support::metric(&m, "emspool_events_written_total", None) as u64;
    let total = secs * rate;
    let datagrams: Vec<Vec<u8>> = (0..2 * INTERFACES)
        .map(|k| v2c_link_trap(k as i32, k >= INTERFACES, k % INTERFACES + 1))
        .collect();
    let to: SocketAddr = format!("127.0.0.1:{trap}").parse().expect("addr");
    let cpu0 = support::cpu_seconds(serve.pid()).unwrap_or(0.0);
    let nats_cpu0 = nats.map_or(0.0, |n| n.cpu_seconds());
    let sender = std::thread::spawn(move || send_paced(&datagrams, to, total, rate));
    let mut r = Round::default();
    while !sender.is_finished() {
        let m = scrape_text(http);
        r.backlog_max = r
            .backlog_max
            .max(support::metric(&m, "emspool_jetstream_backlog", None));
        std::thread::sleep(Duration::from_millis(500));
    }
    r.sent_for = sender.join().expect("sender");
    let send_end = Instant::now();
    while send_end.elapsed() < Duration::from_secs(60) {
        let m = scrape_text(http);
        r.backlog_max = r
            .backlog_max
            .max(support::metric(&m, "emspool_jetstream_backlog", None));
        if support::metric(&m, "emspool_traps_applied_total", None) as u64 >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    r.drained = send_end.elapsed();
    if nats.is_some() {
        while send_end.elapsed() < Duration::from_secs(300) {
            let m = scrape_text(http);
            let backlog = support::metric(&m, "emspool_jetstream_backlog", None);
            r.backlog_max = r.backlog_max.max(backlog);
            if backlog == 0.0
                && support::metric(&m, "emspool_jetstream_acknowledged_total", None) > 0.0
            {
                r.published_after = Some(send_end.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    r.cpu = support::cpu_seconds(serve.pid()).unwrap_or(0.0) - cpu0;
    r.nats_cpu = nats.map_or(0.0, |n| n.cpu_seconds()) - nats_cpu0;
    let m = scrape_text(http);
    r.received = support::metric(&m, "emspool_traps_received_total", None) as u64;
    r.applied = support::metric(&m, "emspool_traps_applied_total", None) as u64;
    r.written_total = support::metric(&m, "emspool_events_written_total", None) as u64;
    r.written = r.written_total - before;
    r.drops = support::metric(&m, "emspool_traps_socket_drops_total", None) as u64;
    r.published = support::metric(&m, "emspool_jetstream_published_total", None);
    r.acked = support::metric(&m, "emspool_jetstream_acknowledged_total", None);
    r.failed = support::metric(&m, "emspool_jetstream_failed_total", None);
    r.duplicates = support::metric(&m, "emspool_jetstream_duplicates_total", None);
    r.delay = quantiles(&m, "emspool_jetstream_delay_seconds");
    r.ack = quantiles(&m, "emspool_jetstream_ack_seconds");
    if let Some(n) = nats {
        r.stream = rt.block_on(n.messages("BENCH"));
    }
    drop(serve);
    r
}

/// JetStream off, then on, for the same traps into one `emspool serve` process. Zero loss end
/// to end means: every trap received and applied, one event written per trap, and (on) as
/// many messages in the stream as events in the log (all of them: the server's own start and
/// element events too).
fn run_jetstream(rt: &tokio::runtime::Runtime, secs: u64, rate: u64) -> bool {
    let total = secs * rate;
    println!("{}", support::machine());
    println!(
        "traps bench (jetstream): {total} SNMPv2c traps at {rate}/s for {secs} s into one \
         `emspool serve`, JetStream off, then on (R3 stream on a 3-node nats-server cluster)"
    );
    let off = jetstream_round(rt, secs, rate, None);
    let nats = common::nats::NatsCluster::start(3);
    let on = jetstream_round(rt, secs, rate, Some(&nats));
    let mut ok = true;
    for (name, r) in [("off", &off), ("on", &on)] {
        let lossless = r.received == total
            && r.applied == total
            && r.written == total
            && r.drops == 0
            && (name == "off" || r.stream == r.written_total);
        ok &= lossless;
        println!(
            "jetstream {name:>3}: sent in {:.2} s; received {}, applied {}, events written {} \
             ({} in the log), kernel drops {}; applied {:.0} ms after the last send; emspool CPU \
             {:.1} s ({:.2} cores over send+drain)",
            r.sent_for.as_secs_f64(),
            r.received,
            r.applied,
            r.written,
            r.written_total,
            r.drops,
            r.drained.as_secs_f64() * 1000.0,
            r.cpu,
            r.cpu / (r.sent_for + r.published_after.unwrap_or(r.drained)).as_secs_f64(),
        );
        if name == "on" {
            println!(
                "jetstream  on: stream holds {} messages (log {}); published {}, acknowledged \
                 {}, failed {}, duplicates {}; backlog max {}; backlog 0 {} after the last \
                 send; event->ack delay p50 {:.3} s p99 {:.3} s p99.9 {:.3} s; publish->ack \
                 p50 {:.4} s p99 {:.4} s; nats-server CPU {:.1} s (3 nodes)",
                r.stream,
                r.written_total,
                r.published,
                r.acked,
                r.failed,
                r.duplicates,
                r.backlog_max,
                r.published_after
                    .map_or("never (300 s)".to_owned(), |d| format!(
                        "{:.1} s",
                        d.as_secs_f64()
                    )),
                r.delay.0,
                r.delay.1,
                r.delay.2,
                r.ack.0,
                r.ack.1,
                r.nats_cpu,
            );
        }
        println!(
            "{}: JetStream {name}",
            if lossless { "LOSSLESS" } else { "LOSS" }
        );
    }
    ok
}
