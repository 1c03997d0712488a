//! Webhooks through a 3-server pool: every alarm change (raise, clear, acknowledgement) reaches
//! the receiver exactly once, signed, although the receiver was away for 30 s and the owner of
//! the changing elements restarted meanwhile.

use crate::common;

use common::agents::Agents;
use common::pool::Pool;
use common::wait_until;
use common::webhook::{Received, Receiver};
use emspool::sim::{FlapSchedule, OutageSchedule};
use hmac::{Hmac, Mac};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const POOL_TIMINGS: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";
const SECRET: &str = "webhook-test-secret-0123";
/// ifIndex 1 of agents 0 and 2 is down at [14 s, 20 s), [34 s, 40 s), [54 s, 60 s) of the
/// simulator's clock; agents 0 and 3 do not answer at [40 s, 60 s).
const FLAP: FlapSchedule = FlapSchedule {
    every: 2,
    if_index: 1,
    period: Duration::from_secs(20),
    down_for: Duration::from_secs(6),
};
const OUTAGE: OutageSchedule = OutageSchedule {
    every: 3,
    period: Duration::from_secs(60),
    down_for: Duration::from_secs(20),
};
const AWAY: Duration = Duration::from_secs(30);

fn wait_sim(agents: &Agents, at: Duration) {
    std::thread::sleep(at.saturating_sub(agents.now()));
}

fn json(r: &Received) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

fn verify_signature(r: &Received) {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(&r.body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        r.headers.get("x-emspool-signature").map(String::as_str),
        Some(format!("sha256={want}").as_str()),
        "bad signature on {r:?}"
    );
}

/// `(server, event id)` of every alarm change in the pool-wide event log.
fn changes_in_log(pool: &Pool) -> BTreeSet<(u64, u64)> {
    let v = pool
        .server(1)
        .get("/api/v1/events?kind=alarm.*&limit=10000");
    assert_eq!(v["partial"], false, "events answer is partial: {v}");
    common::json_array(&v, "events")
        .iter()
        .map(|e| {
            let server = e["server"].as_u64().expect("server");
            let id = e["id"].as_u64().expect("id");
            (server, id)
        })
        .collect()
}

/// `(server, event id)` of a delivery, from its id `server-incarnation-event`.
fn delivered_change(d: &Value) -> (u64, u64) {
    let id = d["id"].as_str().unwrap_or_else(|| panic!("no id: {d}"));
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(parts.len(), 3, "{id}");
    (
        parts[0].parse().expect("server"),
        parts[2].parse().expect("event"),
    )
}

#[test]
fn every_alarm_change_reaches_the_receiver_once_across_its_absence_and_a_sender_restart() {
    let mut receiver = Receiver::start();
    let agents = Agents::start_with(4, |cfg| {
        cfg.flap = Some(FLAP);
        cfg.outage = Some(OUTAGE);
    });
    let hook = format!(
        "[[webhooks]]\nname = \"test\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\ntimeout = \"1s\"\n\n",
        receiver.url()
    );
    let mut pool = Pool::start(3, &format!("{hook}{}", agents.inventory()), POOL_TIMINGS);

    // The first flap of LinkDown:ne002:1 reaches the receiver while it listens.
    wait_sim(&agents, Duration::from_secs(21));
    wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        let got: Vec<Value> = receiver.received().iter().map(json).collect();
        let about = |change: &str| {
            got.iter()
                .any(|d| d["change"] == change && d["alarm"]["key"] == "LinkDown:ne002:1")
        };
        (about("raise") && about("clear")).then_some(())
    })
    .unwrap_or_else(|e| panic!("the first flap was not delivered: {e}"));

    // Away for 30 s: a flap, an outage, an acknowledgement and a restart of the sender.
    receiver.pause();
    let away = Instant::now();
    wait_sim(&agents, Duration::from_secs(42));
    let node = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        pool.server(1).alarm("NodeDown:ne003")
    })
    .unwrap_or_else(|e| panic!("NodeDown:ne003 never raised: {e}"));
    let (status, body) = pool
        .server(1)
        .ack(node["id"].as_u64().expect("id"), "webhook-test");
    assert_eq!(status, 200, "{body}");
    let owner = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        (1..=3u32).find(|&id| pool.local_elements(id).iter().any(|e| e == "ne003"))
    })
    .expect("ne003 has an owner");
    pool.server_mut(owner).restart();
    std::thread::sleep(AWAY.saturating_sub(away.elapsed()));
    receiver.resume();

    // Back: the clears at 60 s, and everything of the absence, arrive.
    wait_sim(&agents, Duration::from_secs(62));
    let expected = wait_until(Duration::from_secs(25), Duration::from_millis(250), || {
        let log = changes_in_log(&pool);
        let got: BTreeSet<(u64, u64)> = receiver
            .received()
            .iter()
            .map(|r| delivered_change(&json(r)))
            .collect();
        (got == log).then_some(log)
    })
    .unwrap_or_else(|e| {
        let got: Vec<Value> = receiver.received().iter().map(json).collect();
        panic!(
            "deliveries never matched the log's alarm changes: {e}\nlog: {:?}\ngot: {:?}",
            changes_in_log(&pool),
            got.iter().map(|d| d["id"].clone()).collect::<Vec<_>>()
        )
    });

    let received = receiver.received();
    let mut ids = BTreeSet::new();
    let mut by_key: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for r in &received {
        verify_signature(r);
        let d = json(r);
        let id = d["id"].as_str().expect("id").to_owned();
        assert_eq!(r.headers.get("x-emspool-delivery"), Some(&id));
        assert!(ids.insert(id.clone()), "delivered twice: {id}");
        let key = d["alarm"]["key"].as_str().expect("key").to_owned();
        let change = d["change"].as_str().expect("change").to_owned();
        by_key
            .entry(key)
            .or_default()
            .push((d["at_ms"].as_i64().expect("at_ms"), change));
    }
    assert_eq!(ids.len(), expected.len());
    // Once per change in the pool: per alarm, raises and clears alternate (the restart moved
    // elements twice without raising or clearing anything).
    for (key, mut changes) in by_key {
        changes.sort();
        let mut raised = false;
        for (_, c) in &changes {
            match c.as_str() {
                "raise" => assert!(!raised, "{key} raised twice: {changes:?}"),
                "clear" => assert!(raised, "{key} cleared while not raised: {changes:?}"),
                "ack" => assert!(raised, "{key} acked while not raised: {changes:?}"),
                other => panic!("unknown change {other}"),
            }
            raised = c != "clear";
        }
    }
    let of = |key: &str, change: &str| {
        received
            .iter()
            .map(json)
            .filter(|d| d["alarm"]["key"] == key && d["change"] == change)
            .count()
    };
    assert_eq!(of("NodeDown:ne003", "raise"), 1);
    assert_eq!(of("NodeDown:ne003", "ack"), 1);
    assert_eq!(of("NodeDown:ne003", "clear"), 1);
    assert_eq!(of("LinkDown:ne002:1", "raise"), 3);
    assert_eq!(of("LinkDown:ne002:1", "clear"), 3);
    let (_, metrics) = pool.server(owner).raw("GET", "/metrics", None);
    assert!(
        emspool::testing::support::metric(&metrics, "emspool_webhook_deliveries_total", None) > 0.0,
        "{metrics}"
    );
}
