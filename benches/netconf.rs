//! NETCONF costs: parsing (criterion), and against a real netconfd behind sshd (needs root):
//! RPCs per second over one session, and what 100 elements' sessions (a poll session and a
//! notification session each) cost this process in threads, memory and idle CPU.
//!
//! `cargo bench --bench netconf`; `EMSPOOL_BENCH_LIVE=0` skips the netconfd part;
//! `EMSPOOL_BENCH_SESSIONS=N` changes the number of elements (default 100). Results go to
//! BENCHMARKS.md.

#[path = "../tests/it/common/mod.rs"]
mod common;

use criterion::{Criterion, Throughput};
use emspool::model::{Element, Protocol};
use emspool::testing::Outcome;
use emspool::testing::netconf::data::{InterfacesData, SystemData, system_filter};
use emspool::testing::netconf::framing::{Decoder, Framing, encode};
use emspool::testing::netconf::session::{Session, Target};
use emspool::testing::netconf::xml;
use emspool::testing::netconf::{Host, NetconfClient};
use emspool::testing::{Credential, NetconfCredential, NetconfSection, Secret};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A `<get>` reply of ietf-interfaces with `n` interfaces, as a device would send it.
fn interfaces_reply(n: usize) -> String {
    let mut s = String::from(
        "<rpc-reply message-id=\"2\" xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><data>\
         <interfaces-state xmlns=\"urn:ietf:params:xml:ns:yang:ietf-interfaces\">",
    );
    for i in 1..=n {
        s.push_str(&format!(
            "<interface><name>ge-0/0/{i}</name><type xmlns:ianaift=\"urn:ietf:params:xml:ns:yang:iana-if-type\">ianaift:ethernetCsmacd</type>\
             <admin-status>up</admin-status><oper-status>{}</oper-status><if-index>{i}</if-index>\
             <statistics><in-octets>{}</in-octets><out-octets>{}</out-octets></statistics></interface>\n",
            if i % 7 == 0 { "down" } else { "up" },
            i * 1_000_003,
            i * 2_000_003
        ));
    }
    s.push_str("</interfaces-state></data></rpc-reply>");
    s
}

fn parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("netconf_parse");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in [24usize, 1000] {
        let reply = interfaces_reply(n);
        let framed = encode(reply.as_bytes(), Framing::Chunked);
        g.throughput(Throughput::Bytes(framed.len() as u64));
        g.bench_function(format!("chunked_decode_and_interfaces_{n}"), |b| {
            b.iter(|| {
                let mut d = Decoder::new(16 << 20);
                d.set_framing(Framing::Chunked);
                d.feed(&framed).unwrap();
                let m = d.next_message().unwrap().unwrap();
                let mut ifs = InterfacesData::default();
                xml::parse_reply(&m, &mut ifs).unwrap();
                ifs.into_interfaces()
            })
        });
    }
    g.finish();
}

fn rss_kib() -> u64 {
    status_field("VmRSS:")
}

fn threads() -> u64 {
    status_field("Threads:")
}

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<u64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the state field is dropped.
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

struct CountingHost {
    credential: Credential,
    notifications: AtomicU64,
}

impl Host for CountingHost {
    fn credential(&self, _: &str) -> Option<Credential> {
        Some(self.credential.clone())
    }
    fn notified(&self, _: &str, _: &xml::Notification, _: &dyn Fn(u32) -> bool) {
        self.notifications.fetch_add(1, Ordering::Relaxed);
    }
}

fn live() {
    if !common::is_root() {
        eprintln!("netconf bench: not root, skipping the netconfd part");
        return;
    }
    let n: usize = std::env::var("EMSPOOL_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let nc = common::Netconfd::start();
    let credential = NetconfCredential {
        user: nc.user().into(),
        password: Some(Secret::new(nc.password())),
        private_key: None,
        private_key_passphrase: None,
        known_hosts: None,
        host_key_sha256: None,
        insecure_accept_any_host_key: true,
    };
    let target = Target {
        addr: nc.addr(),
        host: "127.0.0.1".into(),
        credential: credential.clone(),
        timeout: Duration::from_secs(5),
        max_reply: 16 << 20,
        keepalive: Duration::ZERO,
    };

    // 1. Connect cost and RPCs/s over one session (the poll's ietf-system <get>).
    let mut connects = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let s = Session::connect(&target).expect("connect");
        connects.push(t.elapsed());
        s.close(Duration::from_secs(1));
    }
    connects.sort();
    println!(
        "netconfd connect (TCP + SSH + auth + subsystem + hello), 10 runs: median {:?}, max {:?}",
        connects[5], connects[9]
    );
    let mut s = Session::connect(&target).expect("connect");
    let get = xml::get(Some(&system_filter()));
    for _ in 0..50 {
        s.rpc(
            &get,
            &mut xml::NoData,
            Instant::now() + Duration::from_secs(5),
        )
        .expect("warm-up");
    }
    for (label, op) in [
        ("<get> system-state", get.clone()),
        ("<get-config> running", xml::get_config("running", None)),
    ] {
        let rpcs = 2000;
        let cpu0 = cpu_time();
        let t = Instant::now();
        for _ in 0..rpcs {
            let mut sys = SystemData::default();
            let r = s
                .rpc(&op, &mut sys, Instant::now() + Duration::from_secs(5))
                .expect("rpc");
            assert!(!r.failed());
        }
        let el = t.elapsed();
        println!(
            "one session, {rpcs} sequential {label}: {:.0} RPC/s, {:.3} ms each, our CPU {:?} ({} framing)",
            rpcs as f64 / el.as_secs_f64(),
            el.as_secs_f64() * 1000.0 / rpcs as f64,
            cpu_time() - cpu0,
            s.framing()
        );
    }
    s.close(Duration::from_secs(1));

    // 2. n elements through the real client: a kept poll session and a subscribed
    //    notification session each.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let host: Arc<dyn Host> = Arc::new(CountingHost {
        credential: Credential::Netconf(credential.clone()),
        notifications: AtomicU64::new(0),
    });
    let elements: Vec<Element> = (0..n)
        .map(|i| Element {
            name: format!("ne{i:04}").into(),
            address: nc.addr().to_string().into(),
            protocol: Protocol::Netconf,
            credential: "nc".into(),
            interval: None,
            pin: None,
        })
        .collect();
    let (rss0, threads0) = (rss_kib(), threads());
    let settings = NetconfSection::default();
    let workers = settings.threads;
    let client = Arc::new(NetconfClient::new(settings, Duration::from_secs(5)));
    client.set_host(Arc::downgrade(&host));
    let (rss1, threads1) = (rss_kib(), threads());
    let round = |label: &str| {
        let t = Instant::now();
        let outcomes: Vec<Outcome> = rt.block_on(async {
            let mut tasks = Vec::new();
            for e in &elements {
                let (client, e, c) = (client.clone(), e.clone(), credential.clone());
                let addr = nc.addr();
                tasks.push(tokio::spawn(async move {
                    client.poll(&e, c, addr, Duration::from_secs(60)).await
                }));
            }
            let mut v = Vec::new();
            for t in tasks {
                v.push(t.await.expect("poll task"));
            }
            v
        });
        let el = t.elapsed();
        let up = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Answered(_)))
            .count();
        if up != outcomes.len() {
            let bad = outcomes.iter().find(|o| !matches!(o, Outcome::Answered(_)));
            panic!("{label}: only {up}/{n} answered: {bad:?}");
        }
        println!(
            "{label}: {n} polls in {:?} ({:.1} polls/s with {workers} worker threads)",
            el,
            n as f64 / el.as_secs_f64()
        );
        el
    };
    round("first round (connect + 2 RPCs each)");
    let (rss2, threads2) = (rss_kib(), threads());
    let steady = round("second round (kept sessions, 2 RPCs each)");
    round("third round (kept sessions)");
    rt.block_on(async {
        client.set_owned(&elements);
        // Every element subscribes (connect + create-subscription), at most `workers` at once.
        let t = Instant::now();
        while client.subscribed() < n && t.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "{} of {n} notification sessions subscribed in {:?}",
            client.subscribed(),
            t.elapsed()
        );
    });
    // Let the subscriptions settle, then measure.
    std::thread::sleep(Duration::from_secs(2));
    let (rss3, threads3) = (rss_kib(), threads());
    let cpu0 = cpu_time();
    let idle = Duration::from_secs(10);
    std::thread::sleep(idle);
    let idle_cpu = cpu_time() - cpu0;
    println!(
        "threads: {threads0} before the client, {threads1} with it ({workers} workers + reactor), \
         {threads2} after {n} poll sessions, {threads3} with {n} notification sessions too"
    );
    println!(
        "RSS KiB: {rss0} before, {rss1} client, {rss2} with {n} poll sessions (+{} KiB each), \
         {rss3} with {n} notification sessions too (+{} KiB per element overall)",
        (rss2.saturating_sub(rss1)) / n as u64,
        (rss3.saturating_sub(rss1)) / n as u64,
    );
    println!(
        "idle, {n} subscribed sessions in the reactor: {:?} CPU in {:?} ({:.2}% of one core)",
        idle_cpu,
        idle,
        100.0 * idle_cpu.as_secs_f64() / idle.as_secs_f64()
    );
    let per_poll = steady / n as u32 * workers as u32;
    println!(
        "extrapolation: one poll (2 RPCs, kept session) holds a worker {per_poll:?}; \
         1000 elements every 60 s need {:.1}% of {workers} workers",
        100.0 * 1000.0 * per_poll.as_secs_f64() / 60.0 / workers as f64
    );
    drop(client);
    drop(nc);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    parsing(&mut c);
    c.final_summary();
    if std::env::var("EMSPOOL_BENCH_LIVE").as_deref() != Ok("0") {
        live();
    }
}
