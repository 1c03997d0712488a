//! Peered and federated services on 3 real servers: any server answers any request the same
//! way; acknowledgements reach the owner; a dead member makes answers partial, not slow.

use crate::common;

use common::agents::Agents;
use common::emspool::Emspool;
use common::pool::{Pool, SECRET};
use common::wait_until;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

const TIMINGS: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";

/// Members are declared dead only after the fan-out deadline (1.5 s): a hung member is still
/// an owner when the answer is put together, so the answer must say it is partial.
const SLOW_DETECTION: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"3s\"\nlease = \"2400ms\"\nhold_down = \"1s\"";

/// Agents' interfaces 23 and 24 are enabled but down: two LinkDown alarms per element.
fn settled_pool(agents: &Agents) -> Pool {
    settled_pool_with(agents, TIMINGS)
}

fn settled_pool_with(agents: &Agents, timings: &str) -> Pool {
    let pool = Pool::start(3, &agents.inventory(), timings);
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        (pool.agrees(3, &[(1, 10), (2, 10), (3, 10)])
            && pool.server(1).get("/api/v1/alarms")["alarms"]
                .as_array()
                .is_some_and(|a| a.len() == 60))
        .then_some(())
    })
    .unwrap_or_else(|e| {
        let alarms = pool.server(1).get("/api/v1/alarms");
        panic!(
            "pool did not settle: {e}\n{:?}\nalarms: {} {alarms}",
            pool.views(),
            alarms["alarms"].as_array().map_or(0, Vec::len)
        )
    });
    pool
}

fn names_owners(v: &Value) -> BTreeMap<String, (Value, Value)> {
    v["elements"]
        .as_array()
        .expect("elements")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_owned(),
                (e["owner"].clone(), e["status"]["state"].clone()),
            )
        })
        .collect()
}

/// Sorted by id: the API sorts by severity and last seen, which moves with every poll.
fn alarm_ids(v: &Value) -> Vec<(u64, String, Value)> {
    let mut a: Vec<(u64, String, Value)> = v["alarms"]
        .as_array()
        .expect("alarms")
        .iter()
        .map(|a| {
            (
                a["id"].as_u64().unwrap_or(0),
                a["key"].as_str().unwrap_or_default().to_owned(),
                a["acked_by"].clone(),
            )
        })
        .collect();
    a.sort_by_key(|x| x.0);
    a
}

#[test]
fn every_server_gives_the_same_answers_and_acks_reach_the_owner() {
    let agents = Agents::start(30);
    let pool = settled_pool(&agents);

    let elements: Vec<_> = (1..=3)
        .map(|id| names_owners(&pool.server(id).get("/api/v1/elements")))
        .collect();
    assert_eq!(elements[0].len(), 30);
    for (i, e) in elements.iter().enumerate() {
        for (name, v) in e {
            assert_eq!(
                Some(v),
                elements[0].get(name),
                "server {} vs 1: {name}",
                i + 1
            );
        }
    }
    let owners: BTreeMap<u64, usize> = elements[0].values().fold(BTreeMap::new(), |mut m, o| {
        *m.entry(o.0.as_u64().unwrap_or(0)).or_insert(0) += 1;
        m
    });
    assert_eq!(owners, BTreeMap::from([(1, 10), (2, 10), (3, 10)]));

    let alarms: Vec<_> = (1..=3)
        .map(|id| alarm_ids(&pool.server(id).get("/api/v1/alarms")))
        .collect();
    assert!(alarms.iter().all(|a| *a == alarms[0]), "alarms differ");
    let local = pool.server(1).get("/api/v1/alarms?scope=local")["alarms"]
        .as_array()
        .map(Vec::len);
    assert_eq!(
        local,
        Some(20),
        "server 1 holds the alarms of its 10 elements"
    );

    // Events up to a fixed past instant: the same merged page from everyone, and paging by
    // cursor returns every event exactly once.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    std::thread::sleep(Duration::from_millis(500));
    let q = format!("/api/v1/events?until={until}&limit=10000");
    let events: Vec<Value> = (1..=3)
        .map(|id| pool.server(id).get(&q)["events"].clone())
        .collect();
    assert!(events.iter().all(|e| *e == events[0]), "events differ");
    let all = events[0].as_array().expect("events").len();
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut q = format!("/api/v1/events?until={until}&limit=7");
        if let Some(c) = &cursor {
            q.push_str(&format!("&before={c}"));
        }
        let page = pool.server(2).get(&q);
        paged.extend(common::json_array(&page, "events"));
        match page["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged.len(), all, "paging lost or repeated events");
    assert_eq!(Value::Array(paged), events[0]);

    let views: Vec<Value> = (1..=3)
        .map(|id| {
            let mut v = pool.server(id).get("/api/v1/view");
            v["servers"]
                .as_array_mut()
                .into_iter()
                .flatten()
                .for_each(|s| {
                    s["elements"]
                        .as_array_mut()
                        .into_iter()
                        .for_each(|e| e.sort_by_key(|x| x["name"].to_string()))
                });
            v
        })
        .collect();
    assert!(
        views.iter().all(|v| v["servers"] == views[0]["servers"]),
        "views differ"
    );

    // An alarm held by server 1, acknowledged through server 3, acknowledged everywhere.
    let held = pool.server(1).get("/api/v1/alarms?scope=local")["alarms"][0].clone();
    let id = held["id"].as_u64().expect("id");
    let out = pool
        .server(3)
        .cli(&["ack", &id.to_string(), "--by", "carol"]);
    assert!(out.contains("acknowledged by carol"), "{out}");
    for s in 1..=3 {
        let a = pool.server(s).get("/api/v1/alarms?acknowledged=true");
        let acked = alarm_ids(&a);
        assert_eq!(acked.len(), 1, "server {s}: {a}");
        assert_eq!(acked[0].0, id);
        assert_eq!(acked[0].2, "carol");
    }
    wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        (!pool.server(2).events("kind=alarm.acked").is_empty()).then_some(())
    })
    .expect("the ack is an event in the pool-wide log");
    let (status, _) = pool.server(2).raw("POST", "/api/v1/alarms/999/ack", None);
    assert_eq!(status, 404);
}

#[test]
fn a_dead_member_makes_answers_partial_not_slow_and_the_db_view_still_lists_its_elements() {
    let agents = Agents::start(30);
    let mut pool = settled_pool_with(&agents, SLOW_DETECTION);
    let theirs = pool.local_elements(1);
    assert_eq!(theirs.len(), 10);
    // Hung, not dead: SIGSTOP keeps its port accepting (the kernel completes the handshake)
    // while nothing answers, so only the fan-out's deadline can keep the answers fast. A
    // killed peer refuses at once and would test nothing. All paths are asked at once, and
    // failure detection (3 s) is slower than the deadline, so that every answer had to wait
    // for server 1 while it still owned its elements.
    assert!(pool.server_mut(1).signal("STOP"), "SIGSTOP server 1");
    let paths = [
        "/api/v1/elements",
        "/api/v1/alarms",
        "/api/v1/events",
        "/api/v1/view",
    ];
    let url = pool.server(2).url.clone();
    let answers: Vec<(&str, Duration, Value)> = std::thread::scope(|s| {
        let asks: Vec<_> = paths
            .iter()
            .map(|&path| {
                let url = format!("{url}{path}");
                s.spawn(move || {
                    let t = Instant::now();
                    let mut r = ureq::get(&url)
                        .config()
                        .timeout_global(Some(Duration::from_secs(10)))
                        .build()
                        .call()
                        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
                    let took = t.elapsed();
                    let v: Value = r.body_mut().read_json().expect("JSON body");
                    (path, took, v)
                })
            })
            .collect();
        asks.into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    });
    for (path, took, v) in answers {
        assert!(took < Duration::from_secs(2), "{path} took {took:?}");
        assert_eq!(v["partial"], true, "{path}: {v}");
        assert_eq!(v["missing"], serde_json::json!([1]), "{path}: {v}");
    }
    // From here on server 1 is dead for the pool: stop it for good.
    pool.server_mut(1).kill9();

    // Events of the dead member are missing until it returns: always partial.
    let ev = pool.server(3).get("/api/v1/events");
    assert_eq!(ev["partial"], true);
    assert_eq!(ev["missing"], serde_json::json!([1]));

    // After reassignment the survivors own everything; answers about elements are whole.
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        pool.agrees(3, &[(2, 15), (3, 15)]).then_some(())
    })
    .expect("reassigned");
    let els = pool.server(2).get("/api/v1/elements");
    assert_eq!(els["partial"], false, "{els} {:?}", pool.views());
    assert!(names_owners(&els).values().all(|(o, _)| *o != 1));

    // With a second member gone the survivor has no quorum and keeps its last assignment;
    // the view from its database still lists every element, the dead owners' included.
    pool.server_mut(3).kill9();
    let db = wait_until(Duration::from_secs(6), Duration::from_millis(100), || {
        let v = pool.server(2).get("/api/v1/view?source=db");
        (v["servers"][2]["alive"] == false).then_some(v)
    })
    .expect("server 3 seen dead");
    let listed: usize = db["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| s["elements"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(listed, 30, "{db}");
    let on3 = db["servers"][2]["elements"].as_array().map_or(0, Vec::len);
    assert_eq!(on3, 15, "server 3's elements are listed under it: {db}");
    assert_eq!(db["servers"][2]["alive"], false);
    let tree = pool.server(2).cli(&["view", "--from-db"]);
    assert!(
        tree.lines()
            .any(|l| l.contains("server 3") && l.contains("[dead]") && l.contains("15 element")),
        "{tree}"
    );
    assert!(theirs.iter().all(|n| tree.contains(n.as_str())), "{tree}");
}

#[test]
fn a_client_with_one_dead_url_always_succeeds_and_spreads_its_calls() {
    let agents = Agents::start(3);
    let mut pool = Pool::start(3, &agents.inventory(), TIMINGS);
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        pool.agrees(3, &[(1, 1), (2, 1), (3, 1)]).then_some(())
    })
    .expect("pool");
    let urls: Vec<String> = pool.servers.iter().map(|s| s.url.clone()).collect();
    pool.server_mut(2).kill9();
    let mut by_server: BTreeMap<u64, usize> = BTreeMap::new();
    for _ in 0..300 {
        let out = Command::new(common::emspool_bin())
            .args(["status", "--output", "json", "--timeout", "2s"])
            .args(urls.iter().flat_map(|u| ["--server", u.as_str()]))
            .output()
            .expect("run client");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        *by_server
            .entry(v["server"].as_u64().unwrap_or(0))
            .or_insert(0) += 1;
    }
    assert_eq!(by_server.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
    assert!(
        by_server.values().all(|&n| n >= 100),
        "uneven spread: {by_server:?}"
    );
}

#[test]
fn client_api_needs_the_token_and_peer_api_the_secret() {
    let body = "[api]\ntoken = \"client-token-123\"\n";
    let e = Emspool::start(1, body);
    let (status, text) = e.raw("GET", "/api/v1/alarms", None);
    assert_eq!(status, 401, "{text}");
    let out = Command::new(common::emspool_bin())
        .args(["alarms", "--server", &e.url, "--token", "client-token-123"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(common::emspool_bin())
        .args(["alarms", "--server", &e.url, "--token", "wrong"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    // Operations endpoints stay open; the peer protocol wants the pool secret.
    assert_eq!(e.raw("GET", "/metrics", None).0, 200);
    assert_eq!(e.raw("GET", "/healthz", None).0, 200);
    assert_eq!(e.raw("GET", "/peer/v1/assignment", None).0, 401);
    let _ = SECRET;
    let m = ureq::get(&format!("{}/metrics", e.url))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("text");
    assert!(
        m.contains("emspool_auth_failures_total{api=\"client\"}"),
        "{m}"
    );
}

#[test]
fn inventory_changes_on_any_server_reach_the_master_and_are_polled() {
    let agents = Agents::start(4);
    // Three elements in the config; the fourth agent is added through the API.
    let inv = agents.inventory();
    let cut = inv.rfind("\n[[elements]]").expect("elements");
    let pool = Pool::start(3, &inv[..cut], TIMINGS);
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        pool.agrees(3, &[(1, 1), (2, 1), (3, 1)]).then_some(())
    })
    .expect("pool");
    let addr = format!("127.0.0.1:{}", usize::from(agents.base) + 3);
    let out = pool
        .server(1)
        .cli(&["add", "ne003", "--address", &addr, "--credential", "public"]);
    assert!(out.contains("added"), "{out}");
    let up = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let v = pool.server(2).get("/api/v1/elements/ne003");
        (v["status"]["state"] == "up").then_some(v)
    })
    .expect("added element polled");
    assert!(up["owner"].is_u64());
    // Invalid additions are refused with a reason; removal stops the polling.
    let (status, text) = pool.server(2).raw(
        "POST",
        "/api/v1/elements",
        Some(r#"{"name":"bad one","address":"x","credential":"public"}"#),
    );
    assert_eq!(status, 400, "{text}");
    let (status, _) = pool.server(2).raw(
        "POST",
        "/api/v1/elements",
        Some(&format!(
            r#"{{"name":"ne003","address":"{addr}","credential":"public"}}"#
        )),
    );
    assert_eq!(status, 409);
    pool.server(3).cli(&["remove", "ne003"]);
    wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        let (status, _) = pool.server(1).raw("GET", "/api/v1/elements/ne003", None);
        (status == 404).then_some(())
    })
    .expect("removed everywhere");
    assert_eq!(
        pool.server(1)
            .raw("DELETE", "/api/v1/elements/ne003", None)
            .0,
        404
    );
}
