//! Alarms to real, clustered Alertmanagers through a 3-server pool: every alarm is an alert on
//! every replica, it keeps firing with the same labels through a kill -9 of its owner, it
//! resolves within one resend period of its clear, and a replica that is down neither stops
//! the others nor misses the alerts once it is back.

use crate::common;

use common::agents::Agents;
use common::alertmanager::{self, Alertmanager};
use common::pool::Pool;
use common::wait_until;
use emspool::sim::{FlapSchedule, OutageSchedule};
use serde_json::Value;
use std::time::{Duration, Instant};

const POOL_TIMINGS: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";
const RESEND: Duration = Duration::from_secs(2);
/// ifIndex 1 of agents 0, 2, ... is down at [17 s, 25 s), [42 s, 50 s), [67 s, 75 s) of the
/// simulator's clock; agents 0, 3, ... do not answer at [32 s, 60 s).
const FLAP: FlapSchedule = FlapSchedule {
    every: 2,
    if_index: 1,
    period: Duration::from_secs(25),
    down_for: Duration::from_secs(8),
};
const OUTAGE: OutageSchedule = OutageSchedule {
    every: 3,
    period: Duration::from_secs(60),
    down_for: Duration::from_secs(28),
};

fn firing(am: &Alertmanager, key: &str) -> Option<Value> {
    am.alert(key).filter(|a| a["status"]["state"] == "active")
}

fn wait_firing(ams: &[&Alertmanager], key: &str, timeout: Duration) -> Vec<Value> {
    ams.iter()
        .map(|am| {
            wait_until(timeout, Duration::from_millis(100), || firing(am, key))
                .unwrap_or_else(|e| panic!("{key} never fired on {}: {e}", am.url))
        })
        .collect()
}

fn wait_resolved(ams: &[&Alertmanager], key: &str, timeout: Duration) {
    for am in ams {
        wait_until(timeout, Duration::from_millis(100), || {
            am.alerts()
                .ok()?
                .iter()
                .all(|a| a["labels"]["alarm_key"] != key)
                .then_some(())
        })
        .unwrap_or_else(|e| panic!("{key} still on {} after {timeout:?}: {e}", am.url));
    }
}

fn wait_sim(agents: &Agents, at: Duration) {
    let left = at.saturating_sub(agents.now());
    std::thread::sleep(left);
}

fn owner_of(pool: &Pool, element: &str) -> u32 {
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        (1..=3u32).find(|&id| {
            pool.server(id).is_running() && pool.local_elements(id).iter().any(|e| e == element)
        })
    })
    .unwrap_or_else(|e| panic!("nobody owns {element}: {e}"))
}

#[test]
fn alarms_fire_on_every_alertmanager_through_a_kill_9_of_their_owner_and_resolve_on_clear() {
    let mut ams = alertmanager::cluster(2);
    let agents = Agents::start_with(4, |cfg| {
        cfg.flap = Some(FLAP);
        cfg.outage = Some(OUTAGE);
    });
    let section = format!(
        "[alertmanager]\nurls = [\"{}\", \"{}\"]\nresend = \"{}s\"\nlabels = {{ pool = \"test\" }}\n\n",
        ams[0].url,
        ams[1].url,
        RESEND.as_secs()
    );
    let mut pool = Pool::start(3, &format!("{section}{}", agents.inventory()), POOL_TIMINGS);
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        pool.agrees(3, &[(1, 1), (2, 1), (3, 2)])
            .then_some(())
            .or_else(|| pool.agrees(3, &[(1, 1), (2, 2), (3, 1)]).then_some(()))
            .or_else(|| pool.agrees(3, &[(1, 2), (2, 1), (3, 1)]).then_some(()))
    })
    .unwrap_or_else(|e| panic!("pool never agreed: {e}\n{:?}", pool.views()));

    // A link flap raises and resolves LinkDown on both replicas.
    let link = "LinkDown:ne002:1";
    wait_sim(&agents, Duration::from_secs(17));
    let fired = wait_firing(&[&ams[0], &ams[1]], link, Duration::from_secs(8));
    for a in &fired {
        assert_eq!(a["labels"]["alertname"], "LinkDown");
        assert_eq!(a["labels"]["element"], "ne002");
        assert_eq!(a["labels"]["pool"], "test");
        assert!(
            a["labels"].get("server").is_none(),
            "no owner in labels: {a}"
        );
        let url = a["generatorURL"].as_str().unwrap_or_default();
        assert!(url.ends_with("/#/element/ne002"), "{a}");
    }
    wait_sim(&agents, Duration::from_secs(25));
    wait_resolved(&[&ams[0], &ams[1]], link, RESEND + Duration::from_secs(3));

    // An outage raises NodeDown on both; a kill -9 of the owner leaves it firing, same labels.
    let node = "NodeDown:ne003";
    wait_sim(&agents, Duration::from_secs(32));
    let before = wait_firing(&[&ams[0], &ams[1]], node, Duration::from_secs(8));
    let victim = owner_of(&pool, "ne003");
    let alarm = pool
        .server(victim)
        .alarm(node)
        .expect("the owner holds NodeDown");
    pool.server_mut(victim).kill9();
    let watch_until = Instant::now() + Duration::from_secs(12);
    let mut samples = 0;
    while Instant::now() < watch_until {
        for (am, b) in ams.iter().zip(&before) {
            let now = firing(am, node).unwrap_or_else(|| {
                panic!(
                    "{node} not firing on {} {:?} after the kill -9 of server {victim}",
                    am.url,
                    Instant::now() + Duration::from_secs(12) - watch_until
                )
            });
            assert_eq!(now["labels"], b["labels"], "labels changed on {}", am.url);
            assert_eq!(now["startsAt"], b["startsAt"], "a new alert on {}", am.url);
            samples += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(samples > 40, "only {samples} samples");
    let heir = owner_of(&pool, "ne003");
    assert_ne!(heir, victim);
    let continued = pool
        .server(heir)
        .alarm(node)
        .expect("the heir holds NodeDown");
    assert_eq!(continued["id"], alarm["id"], "the same alarm continued");
    let after = firing(&ams[0], node).expect("firing");
    assert_eq!(
        after["annotations"]["owner"],
        heir.to_string(),
        "the heir sends it"
    );

    // The agent's return clears it; both replicas resolve it within one resend period.
    wait_sim(&agents, Duration::from_secs(60));
    wait_until(Duration::from_secs(8), Duration::from_millis(50), || {
        pool.server(heir).alarm(node).is_none().then_some(())
    })
    .unwrap_or_else(|e| panic!("{node} never cleared: {e}"));
    let cleared = Instant::now();
    wait_resolved(&[&ams[0], &ams[1]], node, RESEND);
    assert!(cleared.elapsed() <= RESEND + Duration::from_millis(500));

    // One replica down: the other still gets everything; back, it gets the active alerts.
    ams[1].kill9();
    wait_sim(&agents, Duration::from_secs(67));
    wait_firing(&[&ams[0]], link, Duration::from_secs(8));
    wait_sim(&agents, Duration::from_secs(75));
    wait_resolved(&[&ams[0]], link, RESEND + Duration::from_secs(3));
    let standing: Vec<String> = ams[0]
        .alerts()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["labels"]["alarm_key"].as_str().map(str::to_owned))
        .collect();
    assert!(!standing.is_empty(), "the standing alarms are alerts");
    ams[1].start();
    for key in &standing {
        // Still firing on the replica that stayed up (a flap may end meanwhile): firing on
        // the one that came back, within a resend period and the sender's retry backoff.
        wait_until(RESEND * 3, Duration::from_millis(100), || {
            (firing(&ams[1], key).is_some() || firing(&ams[0], key).is_none()).then_some(())
        })
        .unwrap_or_else(|e| panic!("{key} never reached {} after its restart: {e}", ams[1].url));
    }
    assert!(
        standing.iter().any(|k| firing(&ams[1], k).is_some()),
        "the restarted replica holds none of {standing:?}"
    );
}
