//! Events to NATS JetStream, end to end: a 3-node nats-server cluster (JetStream, R3 stream)
//! and a 3-server emspool pool polling simulated agents. Every member's events are in the
//! stream exactly once, through the loss of one NATS node and of all of them for a while; and
//! when a member dies with its disk, the pool still answers its events from the stream.
//!
//! `EMSPOOL_TEST_NATS_DOWN_SECS` (default 30, the outage the issue asks for) sets how long
//! all NATS nodes stay down.

use crate::common;

use common::agents::Agents;
use common::nats::{NatsCluster, read_stream};
use common::pool::Pool;
use common::wait_until;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const STREAM: &str = "EMSPOOL_TEST";
const PREFIX: &str = "emspool.test";
const TIMINGS: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A sample of the server's `/metrics` (0 when absent or the server does not answer).
fn metric(pool: &Pool, id: u32, name: &str) -> f64 {
    let url = format!("{}/metrics", pool.server(id).url);
    let Ok(mut r) = ureq::get(&url).call() else {
        return 0.0;
    };
    let text = r.body_mut().read_to_string().unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `(id, kind)` of a member's own events before `until`, oldest first (paged by cursor).
fn local_events(pool: &Pool, id: u32, until: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..100 {
        let mut q = format!("/api/v1/events?scope=local&until={until}&limit=10000");
        if let Some(b) = &before {
            q.push_str(&format!("&before={b}"));
        }
        let page = pool.server(id).get(&q);
        for e in page["events"].as_array().expect("events") {
            out.push((
                e["id"].as_u64().expect("id"),
                e["kind"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        match page["next"].as_str() {
            Some(n) => before = Some(n.to_owned()),
            None => break,
        }
    }
    out.sort();
    out
}

/// Waits until every running member has published all it wrote.
fn wait_drained(pool: &Pool, ids: &[u32], within: Duration) {
    let t = Instant::now();
    wait_until(within, Duration::from_millis(200), || {
        ids.iter()
            .all(|&id| {
                metric(pool, id, "emspool_jetstream_backlog") == 0.0
                    && metric(pool, id, "emspool_jetstream_acknowledged_total") > 0.0
            })
            .then_some(())
    })
    .unwrap_or_else(|e| {
        let backlogs: Vec<f64> = ids
            .iter()
            .map(|&id| metric(pool, id, "emspool_jetstream_backlog"))
            .collect();
        panic!("backlog not drained: {e}; backlogs {backlogs:?}")
    });
    eprintln!("[jetstream] backlogs drained in {:?}", t.elapsed());
}

/// Every event each member wrote before `until` is in the stream exactly once, under its
/// subject and message id; nothing else of that member's before `until` is.
fn assert_exactly_once(pool: &Pool, nats: &NatsCluster, ids: &[u32], until: u64) -> usize {
    let mut total = 0;
    for &id in ids {
        let local = local_events(pool, id, until);
        assert!(!local.is_empty(), "server {id} wrote no events");
        let msgs = read_stream(&nats.urls(), STREAM, &format!("{PREFIX}.{id}.>"));
        let mut in_stream: Vec<(u64, String)> = Vec::new();
        let mut msg_ids = BTreeMap::new();
        for m in &msgs {
            let ev = &m.event;
            assert_eq!(ev["server"], id, "{m:?}");
            let kind = ev["kind"].as_str().unwrap_or_default().to_owned();
            assert_eq!(m.subject, format!("{PREFIX}.{id}.{kind}"), "{m:?}");
            let eid = ev["id"].as_u64().expect("id");
            let prefix = format!("{id}-");
            assert!(
                m.msg_id.starts_with(&prefix) && m.msg_id.ends_with(&format!("-{eid}")),
                "Nats-Msg-Id {:?} of event {eid}",
                m.msg_id
            );
            *msg_ids.entry(m.msg_id.clone()).or_insert(0) += 1;
            if ev["ts"].as_u64().is_some_and(|ts| ts < until) {
                in_stream.push((eid, kind));
            }
        }
        let dup: Vec<_> = msg_ids.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            dup.is_empty(),
            "server {id}: duplicates in the stream {dup:?}"
        );
        in_stream.sort();
        let missing: Vec<_> = local.iter().filter(|e| !in_stream.contains(e)).collect();
        assert!(
            missing.is_empty(),
            "server {id}: {} of {} events not in the stream, e.g. {:?}",
            missing.len(),
            local.len(),
            &missing[..missing.len().min(5)]
        );
        assert_eq!(in_stream, local, "server {id}: stream and log differ");
        total += local.len();
    }
    total
}

/// One `config.reloaded` event on each running member per round.
fn make_events(pool: &mut Pool, ids: &[u32], rounds: usize) {
    for _ in 0..rounds {
        for &id in ids {
            assert!(pool.server_mut(id).signal("HUP"), "server {id} not running");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count_kind(pool: &Pool, id: u32, kind: &str) -> usize {
    pool.server(id)
        .events(&format!("scope=local&kind={kind}&limit=10000"))
        .len()
}

#[test]
fn events_reach_jetstream_exactly_once_through_nats_outages_and_outlive_a_lost_member() {
    let down_secs: u64 = std::env::var("EMSPOOL_TEST_NATS_DOWN_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let mut nats = NatsCluster::start(3);
    let agents = Agents::start(6);
    let body = format!(
        "[events.jetstream]\nservers = {}\nstream = \"{STREAM}\"\nsubject_prefix = \"{PREFIX}\"\n\
         replicas = 3\nack_timeout = \"2s\"\n\n{}",
        nats.servers_toml(),
        agents.inventory()
    );
    let mut pool = Pool::start(3, &body, TIMINGS);
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        pool.agrees(3, &[(1, 2), (2, 2), (3, 2)]).then_some(())
    })
    .unwrap_or_else(|e| panic!("pool did not settle: {e}\n{:?}", pool.views()));
    let all = [1, 2, 3];

    // 1. Steady state: every member's events are in the stream, once each.
    make_events(&mut pool, &all, 3);
    let until = now_ms();
    std::thread::sleep(Duration::from_millis(300));
    wait_drained(&pool, &all, Duration::from_secs(30));
    let n = assert_exactly_once(&pool, &nats, &all, until);
    eprintln!("[jetstream] steady: {n} events in the stream exactly once");

    // 2. One NATS node killed: publishing goes on.
    nats.kill_node(0);
    let before: Vec<f64> = all
        .iter()
        .map(|&id| metric(&pool, id, "emspool_jetstream_acknowledged_total"))
        .collect();
    make_events(&mut pool, &all, 5);
    let until = now_ms();
    std::thread::sleep(Duration::from_millis(300));
    wait_drained(&pool, &all, Duration::from_secs(60));
    for (i, &id) in all.iter().enumerate() {
        let after = metric(&pool, id, "emspool_jetstream_acknowledged_total");
        assert!(
            after >= before[i] + 5.0,
            "server {id}: {before:?} -> {after}"
        );
    }
    let n = assert_exactly_once(&pool, &nats, &all, until);
    eprintln!("[jetstream] one node down: {n} events in the stream exactly once");
    nats.start_node(0);
    nats.wait_ready();

    // 3. All NATS nodes down: the pool goes on (events written, API answers), the backlog
    //    grows; once NATS is back it drains and nothing is lost or doubled.
    let reloads_before: Vec<usize> = all
        .iter()
        .map(|&id| count_kind(&pool, id, "config.reloaded"))
        .collect();
    nats.kill_all();
    let outage = Instant::now();
    let mut rounds = 0;
    while outage.elapsed() < Duration::from_secs(down_secs) {
        let t = Instant::now();
        make_events(&mut pool, &all, 1);
        rounds += 1;
        // Polling and the API do not wait on NATS.
        let v = pool.server(2).get("/api/v1/elements");
        assert_eq!(v["elements"].as_array().map(Vec::len), Some(6), "{v}");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "API slow while NATS is down"
        );
        std::thread::sleep(Duration::from_millis(900));
    }
    for (i, &id) in all.iter().enumerate() {
        let got = count_kind(&pool, id, "config.reloaded");
        assert!(
            got >= reloads_before[i] + rounds,
            "server {id}: events not written"
        );
        let backlog = metric(&pool, id, "emspool_jetstream_backlog");
        assert!(
            backlog >= rounds as f64,
            "server {id}: backlog {backlog} after {rounds} rounds"
        );
    }
    let failed: f64 = all
        .iter()
        .map(|&id| metric(&pool, id, "emspool_jetstream_failed_total"))
        .sum();
    assert!(
        failed > 0.0,
        "publishing cannot have succeeded with NATS down"
    );
    eprintln!("[jetstream] all nodes down for {down_secs} s, {rounds} rounds of events");
    let until = now_ms();
    nats.start_all();
    let back = Instant::now();
    wait_drained(&pool, &all, Duration::from_secs(90));
    eprintln!(
        "[jetstream] backlog published {:?} after NATS came back",
        back.elapsed()
    );
    let n = assert_exactly_once(&pool, &nats, &all, until);
    eprintln!("[jetstream] after the outage: {n} events in the stream exactly once");

    // 4. A member dies with its disk: the others answer its events from the stream,
    //    complete, newest first, page by page.
    make_events(&mut pool, &[1], 3);
    std::thread::sleep(Duration::from_millis(300));
    wait_drained(&pool, &[1], Duration::from_secs(30));
    let theirs = pool.server(1).get("/api/v1/events?scope=local&limit=10000")["events"].clone();
    let theirs = theirs.as_array().expect("events").clone();
    pool.server_mut(1).kill9();
    let data = pool.server(1).dir.path().join("data");
    std::fs::remove_dir_all(&data).expect("delete the dead member's data dir");
    let until = now_ms();
    std::thread::sleep(Duration::from_millis(200));

    let q = format!("/api/v1/events?until={until}&limit=10000");
    let whole = pool.server(2).get(&q);
    assert_eq!(whole["partial"], false, "{}", whole["missing"]);
    assert_eq!(whole["missing"], serde_json::json!([]));
    assert_eq!(whole["from_stream"], serde_json::json!([1]));
    let of1: Vec<Value> = whole["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["server"] == 1)
        .cloned()
        .collect();
    assert_eq!(of1.len(), theirs.len(), "server 1's events from the stream");
    assert_eq!(
        of1, theirs,
        "the same events in the same order as its own log gave"
    );
    // Paging through the pool-wide log returns the same, once each.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut q = format!("/api/v1/events?until={until}&limit=25");
        if let Some(c) = &cursor {
            q.push_str(&format!("&before={c}"));
        }
        let page = pool.server(3).get(&q);
        assert_eq!(page["partial"], false, "{page}");
        paged.extend(common::json_array(&page, "events"));
        match page["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        Value::Array(paged),
        whole["events"],
        "paging lost or repeated events"
    );
    // Filters apply to the stream's events as to a log's.
    let reloads = theirs
        .iter()
        .filter(|e| e["kind"] == "config.reloaded")
        .count();
    let filtered = pool
        .server(2)
        .events(&format!("until={until}&kind=config.reloaded&limit=10000"));
    assert_eq!(
        filtered.iter().filter(|e| e["server"] == 1).count(),
        reloads,
        "kind filter on the stream"
    );
    // The CLI says the same.
    let out = pool.server(2).cli(&[
        "events",
        "--output",
        "json",
        "--until",
        &until.to_string(),
        "--limit",
        "10000",
    ]);
    let cli: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(cli["from_stream"], serde_json::json!([1]));
    assert_eq!(cli["events"], whole["events"]);
    let view = pool.server(2).get("/api/v1/view?source=db");
    assert_eq!(view["partial"], false, "{view}");
    drop(agents);
}
