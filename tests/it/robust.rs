//! Our own faults, caused for real against real processes (issue 14): a full disk under the
//! data dir (a small tmpfs mounted here, as root), thousands of idle sockets against the HTTP
//! port, a process out of descriptors, and a name server that never answers.

use crate::common;

use common::agents::Agents;
use common::emspool::Emspool;
use common::faults::{SilentNameServer, Tmpfs};
use common::pool::{Pool, SECRET};
use common::{free_port, peer_tempdir, wait_until};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Status and body of GET `path`, within `timeout`.
fn get(url: &str, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut r = agent
        .get(&format!("{url}{path}"))
        .call()
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    Ok((status, r.body_mut().read_to_string().unwrap_or_default()))
}

fn sample(ems: &Emspool, series: &str) -> Option<f64> {
    let (_, text) = get(&ems.url, "/metrics", Duration::from_secs(5)).ok()?;
    super::operations::sample(&text, series)
}

fn post_element(ems: &Emspool, name: &str, address: &str) -> u16 {
    let body = format!(r#"{{"name":"{name}","address":"{address}","credential":"public"}}"#);
    ems.raw("POST", "/api/v1/elements", Some(&body)).0
}

#[test]
fn a_full_disk_stops_writes_and_readiness_until_it_grows_and_nothing_is_lost() {
    let agents = Agents::start(2);
    let mut ems = Emspool::configure(1, free_port(), &agents.inventory());
    let disk = Tmpfs::mount(&ems.dir.path().join("data"), "2m");
    ems.spawn();
    wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        (ems.state("ne000").as_deref() == Some("up")).then_some(())
    })
    .expect("polling");
    assert_eq!(
        get(&ems.url, "/readyz", Duration::from_secs(2)),
        Ok((200, "ready\n".into()))
    );

    // One element added just before the disk fills: its poll (nobody answers at :9) goes down
    // about a second later, during the outage, and the check below always has an element
    // even when the very first change after the fill is refused.
    assert_eq!(post_element(&ems, "late_first", "127.0.0.1:9"), 201);
    let mut added = vec!["late_first".to_owned()];
    // No byte left: the next commit that needs a new page fails. Elements added now (each
    // one an assignment to persist and events to write) make sure one does.
    disk.fill();
    let mut not_ready = None;
    for i in 0..200 {
        let name = format!("late{i:03}");
        // Nobody answers there: each one goes down, with an event and an alarm. Once the
        // master cannot persist a change it refuses it (503) rather than promise it.
        let status = post_element(&ems, &name, "127.0.0.1:9");
        assert!(matches!(status, 201 | 202 | 503), "POST {name}: {status}");
        if status != 503 {
            added.push(name);
        }
        if let Ok((503, body)) = get(&ems.url, "/readyz", Duration::from_secs(2)) {
            not_ready = Some(body);
            break;
        }
    }
    let body = not_ready
        .unwrap_or_else(|| panic!("/readyz stayed ready on a full disk\n{}", ems.log_tail()));
    assert!(
        body.contains("cannot be written") && body.contains("No space left"),
        "{body}"
    );
    assert_eq!(sample(&ems, "emspool_event_log_writable"), Some(0.0));
    // An inventory change cannot be made durable now: refused with the reason, not lost.
    let during = "during000";
    let (status, body) = ems.raw(
        "POST",
        "/api/v1/elements",
        Some(&format!(
            r#"{{"name":"{during}","address":"127.0.0.1:9","credential":"public"}}"#
        )),
    );
    assert_eq!(status, 503, "POST during the outage: {body}");
    assert!(body.contains("storage"), "{body}");
    // Polling goes on during the outage, and what it finds (the late elements going down)
    // is kept for later.
    wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        sample(&ems, "emspool_event_log_queued")
            .is_some_and(|q| q > 0.0)
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("events are queued in memory: {e}\n{}", ems.log_tail()));
    assert_eq!(ems.state("ne000").as_deref(), Some("up"));
    assert_eq!(
        get(&ems.url, "/readyz", Duration::from_secs(2))
            .map(|r| r.0)
            .ok(),
        Some(503)
    );

    // The operator grows the filesystem: writes resume without a restart.
    disk.resize("64m");
    let t = Instant::now();
    wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        matches!(
            get(&ems.url, "/readyz", Duration::from_secs(2)),
            Ok((200, _))
        )
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("not ready after the disk grew: {e}\n{}", ems.log_tail()));
    eprintln!("ready again {:?} after the disk grew", t.elapsed());
    assert_eq!(sample(&ems, "emspool_event_log_writable"), Some(1.0));
    assert_eq!(sample(&ems, "emspool_event_log_queued"), Some(0.0));
    assert_eq!(sample(&ems, "emspool_event_log_dropped_total"), Some(0.0));
    // On a full disk a reopen may succeed and the next write fail again (more so on a loaded
    // machine, which retries more often before the disk grows): then that is an outage of its
    // own. Each one is counted, and logged at its start and at its end.
    let outages = sample(&ems, "emspool_event_log_outages_total").unwrap_or(0.0) as usize;
    assert!(outages >= 1, "no outage counted");
    let down = ems.events("kind=eventlog.unwritable");
    assert_eq!(down.len(), outages, "{down:?}");
    let up = ems.events("kind=eventlog.writable");
    assert_eq!(up.len(), outages, "{up:?}");
    // Events of the outage were written when the space came back: the last element added
    // before it has its NodeDown in the log.
    let last = added
        .last()
        .expect("elements added before the outage")
        .clone();
    wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let ev = ems.events(&format!("element={last}"));
        (ev.iter().any(|e| e["kind"] == "alarm.raised")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{last}'s events: {e}\n{}", ems.log_tail()));
    // New writes work: the refused change made again, and another element.
    assert_eq!(post_element(&ems, during, "127.0.0.1:9"), 201);
    assert_eq!(post_element(&ems, "after000", "127.0.0.1:9"), 201);

    // The pool state (the persisted assignment) was written too: after a restart every
    // element added before, during and after the outage is still there.
    ems.restart();
    let listed = common::json_array(&ems.get("/api/v1/elements"), "elements");
    let names: Vec<&str> = listed.iter().filter_map(|e| e["name"].as_str()).collect();
    for name in added.iter().map(String::as_str).chain([during, "after000"]) {
        assert!(names.contains(&name), "{name} lost: {names:?}");
    }
    let st = ems.terminate();
    assert!(st.success(), "exit status {st:?}");
}

/// Opens up to `n` TCP connections to `addr` that never send a byte; stops early once three
/// in a row time out (the server's accept queue is full), so that it takes seconds, not minutes.
fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    let mut failures = 0;
    for _ in 0..n {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => {
                failures = 0;
                out.push(s);
            }
            Err(_) => {
                failures += 1;
                if failures == 3 {
                    break;
                }
            }
        }
    }
    out
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn thousands_of_idle_connections_neither_starve_polling_nor_the_pool() {
    let raised = rlimit::increase_nofile_limit(8192).expect("raise the test's open-file limit");
    assert!(raised >= 4500, "open-file limit {raised}");
    let agents = Agents::start(30);
    // A descriptor budget the 2,000 sockets would exhaust many times over without the caps;
    // the head timeout is long so that only the caps can protect the server here.
    let server = "max_connections = 100\nmax_peer_connections = 32\nheader_timeout = \"60s\"";
    let timings =
        "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";
    // A poll timeout that a loaded test machine cannot miss: a NodeDown here must mean the
    // flood, not the machine.
    let inventory = emspool::testing::support::v2c_inventory(
        "interval = \"1s\"\ntimeout = \"900ms\"\nretries = 0",
        agents.n,
        agents.base,
        Agents::name,
    );
    let mut pool = Pool::start_with_server(3, server, &inventory, timings);
    // Restarted under a hard open-file limit it cannot raise.
    for id in 1..=3 {
        let s = pool.server_mut(id);
        s.set_nofile_limit(400);
        s.restart();
    }
    wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        pool.agrees(3, &[(1, 10), (2, 10), (3, 10)]).then_some(())
    })
    .unwrap_or_else(|e| panic!("pool: {e}\n{:?}", pool.views()));
    let target = pool.server(1);
    let pid = target.pid().expect("pid");
    let addr: SocketAddr = format!("127.0.0.1:{}", target.port).parse().expect("addr");
    let polls_before = sample(target, "emspool_polls_total{result=\"up\"}").unwrap_or(0.0);
    let flood_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();

    // 2,000 sockets that never send a byte, then more every second for 8 s.
    let mut idle = idle_connections(addr, 2000);
    let opened_first = idle.len();
    let mut max_fds = open_fds(pid);
    let mut slowest = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        idle.drain(..idle.len().min(300));
        idle.extend(idle_connections(addr, 300));
        max_fds = max_fds.max(open_fds(pid));
        let t = Instant::now();
        let r = get(
            &target.url,
            "/api/v1/elements?scope=local",
            Duration::from_secs(5),
        );
        slowest = slowest.max(t.elapsed());
        let (status, body) = r.unwrap_or_else(|e| panic!("API during the flood: {e}"));
        assert_eq!(status, 200, "{body}");
        // A member's new connection gets in too (its own cap, classified at once).
        let t = Instant::now();
        let mut peer = ureq::get(&format!("{}/peer/v1/local/elements", target.url))
            .header("authorization", &format!("Bearer {SECRET}"))
            .config()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .call()
            .unwrap_or_else(|e| panic!("peer request during the flood: {e}"));
        slowest = slowest.max(t.elapsed());
        assert_eq!(peer.status().as_u16(), 200);
        let _ = peer.body_mut().read_to_string();
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "{opened_first} idle connections at first; server fds at most {max_fds}; slowest API \
         answer {slowest:?}"
    );
    assert!(
        opened_first >= 1500,
        "only {opened_first} connections opened"
    );
    assert!(max_fds < 400, "{max_fds} descriptors open");
    assert!(slowest < Duration::from_secs(2), "API took {slowest:?}");

    // Polling went on: every element of server 1 up, polled all along, nothing went down.
    let local = common::json_array(&target.get("/api/v1/elements?scope=local"), "elements");
    assert_eq!(local.len(), 10, "server 1 still owns its share");
    assert!(
        local.iter().all(|e| e["status"]["state"] == "up"),
        "{local:?}"
    );
    let polls_after = sample(target, "emspool_polls_total{result=\"up\"}").unwrap_or(0.0);
    assert!(
        polls_after >= polls_before + 60.0,
        "polls {polls_before} -> {polls_after}"
    );
    let raised = pool
        .server(1)
        .events(&format!("kind=alarm.raised&since={flood_start}"));
    let down: Vec<&serde_json::Value> = raised
        .iter()
        .filter(|e| e["text"].as_str().is_some_and(|t| t.contains("NodeDown")))
        .collect();
    assert!(
        down.is_empty(),
        "elements went down during the flood: {down:?}"
    );
    // The pool did not notice: same master, every member alive, no fence.
    assert!(
        pool.agrees(3, &[(1, 10), (2, 10), (3, 10)]),
        "{:?}",
        pool.views()
    );
    assert!(pool.server(1).events("kind=pool.fenced").is_empty());
    assert!(
        sample(
            target,
            "emspool_http_connections_closed_total{reason=\"evicted\"}"
        )
        .is_some_and(|n| n >= 1000.0),
        "idle connections were evicted to make room"
    );
    drop(idle);
}

#[test]
fn out_of_descriptors_the_elements_are_unknown_not_down_and_it_is_logged() {
    let raised = rlimit::increase_nofile_limit(4096).expect("raise the test's open-file limit");
    assert!(raised >= 1000, "open-file limit {raised}");
    let agents = Agents::start(5);
    // No cap worth the name: the descriptors run out, which is what this test is about.
    let mut ems = Emspool::configure(
        1,
        free_port(),
        &format!(
            "max_connections = 5000\nheader_timeout = \"60s\"\n\n{}",
            agents.inventory()
        ),
    );
    ems.set_nofile_limit(200);
    ems.spawn();
    wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        (0..5)
            .all(|i| ems.state(&Agents::name(i)).as_deref() == Some("up"))
            .then_some(())
    })
    .expect("polling");
    let addr: SocketAddr = format!("127.0.0.1:{}", ems.port).parse().expect("addr");
    let idle = idle_connections(addr, 600);
    // A few polling rounds with every descriptor taken (the API cannot answer meanwhile:
    // it cannot accept either).
    std::thread::sleep(Duration::from_secs(4));
    drop(idle);
    wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        (0..5)
            .all(|i| ems.state(&Agents::name(i)).as_deref() == Some("up"))
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("not up again: {e}\n{}", ems.log_tail()));

    let states = ems.events("kind=element.state&limit=1000");
    let texts: Vec<&str> = states.iter().filter_map(|e| e["text"].as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("-> unknown") && t.contains("our own resources exhausted")),
        "no element went unknown for our own lack of descriptors: {texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("-> down")),
        "an element went down for our own fault: {texts:?}"
    );
    assert!(
        ems.events("kind=alarm.raised")
            .iter()
            .all(|e| !e["text"].as_str().is_some_and(|t| t.contains("NodeDown"))),
        "NodeDown raised for our own fault"
    );
    assert!(sample(&ems, "emspool_polls_starved_total").is_some_and(|n| n >= 1.0));
    let log = std::fs::read_to_string(ems.stderr_path().expect("running")).unwrap_or_default();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("our own resources exhausted"))
        .collect();
    assert_eq!(warnings.len(), 1, "once a minute: {warnings:?}");
    let st = ems.terminate();
    assert!(st.success(), "exit status {st:?}");
}

fn threads_of(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn a_name_server_that_never_answers_slows_neither_the_api_nor_the_stop() {
    let mut ns = SilentNameServer::start("127.33.0.53");
    let dir = peer_tempdir("resolv");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {}\n", ns.ip)).expect("resolv.conf");
    let agents = Agents::start(2);
    let mut body = format!(
        "[poll]\ninterval = \"1s\"\ntimeout = \"1s\"\nretries = 0\nresolv_conf = \"{}\"\n\n\
         [credentials.public]\nversion = \"v2c\"\ncommunity = \"public\"\n",
        resolv.display()
    );
    for i in 0..2 {
        body.push_str(&format!(
            "\n[[elements]]\nname = \"{}\"\naddress = \"127.0.0.1:{}\"\ncredential = \"public\"\n",
            Agents::name(i),
            usize::from(agents.base) + i
        ));
    }
    for i in 0..400 {
        body.push_str(&format!(
            "\n[[elements]]\nname = \"dns{i:03}\"\naddress = \"dns{i:03}.hung.test:161\"\n\
             credential = \"public\"\n"
        ));
    }
    let mut ems = Emspool::start(1, &body);
    let pid = ems.pid().expect("pid");
    // Several rounds of 400 lookups that all hang.
    std::thread::sleep(Duration::from_secs(4));
    let mut slowest = Duration::ZERO;
    for round in 0..10 {
        for path in ["/api/v1/events?limit=100", "/api/v1/elements", "/healthz"] {
            let t = Instant::now();
            let (status, body) = get(&ems.url, path, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("round {round} {path}: {e}"));
            slowest = slowest.max(t.elapsed());
            assert_eq!(status, 200, "{path}: {body}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let threads = threads_of(pid);
    eprintln!("slowest API answer {slowest:?}; server threads {threads}");
    assert!(slowest < Duration::from_secs(1), "API took {slowest:?}");
    assert!(threads < 100, "{threads} threads: lookups pile up");

    // What could be polled was; what could not be resolved is unknown, not down.
    for i in 0..2 {
        assert_eq!(ems.state(&Agents::name(i)).as_deref(), Some("up"));
    }
    let v = ems.element("dns007").expect("dns007");
    assert_eq!(v["status"]["state"], "unknown", "{v}");
    let reason = v["status"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("resolver timed out"), "{reason}");

    let t = Instant::now();
    let st = ems.terminate();
    let took = t.elapsed();
    assert!(st.success(), "exit status {st:?}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    let queries = ns.stop();
    assert!(
        queries >= 400,
        "the silent name server saw only {queries} queries"
    );
}

/// Reads until the server closes the connection; the bytes it sent and how long it took.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, Duration) {
    use std::io::Read;
    let t = Instant::now();
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), t.elapsed())
}

#[test]
fn slow_heads_slow_bodies_and_idle_connections_are_cut_by_their_timeouts() {
    use std::io::Write;
    let mut ems = Emspool::configure(
        1,
        free_port(),
        "header_timeout = \"1s\"\nbody_timeout = \"1s\"\nidle_timeout = \"2s\"\n",
    );
    ems.spawn();
    let addr: SocketAddr = format!("127.0.0.1:{}", ems.port).parse().expect("addr");
    let limit = Duration::from_secs(10);

    // Half a request head, then silence.
    let mut head = TcpStream::connect(addr).expect("connect");
    head.write_all(b"GET /api/v1/pool HTTP/1.1\r\nhost: x\r\n")
        .expect("write");
    let (got, took) = read_until_closed(&mut head, limit);
    assert!(got.is_empty(), "answered a half head: {got}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "head cut after {took:?}"
    );

    // A whole head, a tenth of the body it announces, then silence.
    let mut body = TcpStream::connect(addr).expect("connect");
    body.write_all(
        b"POST /api/v1/elements HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{\"name\":",
    )
    .expect("write");
    let (got, took) = read_until_closed(&mut body, limit);
    assert!(got.starts_with("HTTP/1.1 4"), "a stalled body: {got}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "body cut after {took:?}"
    );

    // A whole request, answered, then nothing more on the kept-alive connection.
    let mut idle = TcpStream::connect(addr).expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    let (got, took) = read_until_closed(&mut idle, limit);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "idle connection cut after {took:?}"
    );

    for reason in ["header_timeout", "body_timeout", "idle_timeout"] {
        let n = sample(
            &ems,
            &format!("emspool_http_connections_closed_total{{reason=\"{reason}\"}}"),
        );
        assert!(n.is_some_and(|n| n >= 1.0), "{reason}: {n:?}");
    }
    let st = ems.terminate();
    assert!(st.success(), "exit status {st:?}");
}
