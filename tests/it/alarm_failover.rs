//! Alarms across the death of their owner and the removal of their element, with real
//! processes: the pool keeps each owner's alarms (id, first-seen, count, acknowledgement) on
//! the other members, so a kill -9 neither re-raises nor forgets an acknowledged alarm.

use crate::common;

use common::agents::Agents;
use common::emspool::Emspool;
use common::pool::Pool;
use common::wait_until;
use emspool::sim::FlapSchedule;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const POOL_TIMINGS: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";
/// ifIndex 1 of every agent is down for the second half of every period.
const FLAP_PERIOD: Duration = Duration::from_secs(20);
const FLAP_DOWN: Duration = Duration::from_secs(10);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Events of the pool-wide log; with `complete`, the answer must have every member's log.
fn events(s: &Emspool, query: &str, complete: bool) -> Vec<Value> {
    let v = s.get(&format!("/api/v1/events?limit=10000&{query}"));
    if complete {
        assert_eq!(v["partial"], false, "events answer is partial: {v}");
    }
    v["events"]
        .as_array()
        .unwrap_or_else(|| panic!("events answer without a list: {v}"))
        .clone()
}

fn about<'a>(events: &'a [Value], key: &str) -> Vec<&'a Value> {
    let tag = format!("[{key}]");
    events
        .iter()
        .filter(|e| e["text"].as_str().is_some_and(|t| t.contains(&tag)))
        .collect()
}

fn wait_agree(pool: &Pool, master: u32, loads: &[(u32, u64)], timeout: Duration) {
    wait_until(timeout, Duration::from_millis(100), || {
        pool.agrees(master, loads).then_some(())
    })
    .unwrap_or_else(|e| panic!("pool never agreed: {e}\n{:?}", pool.views()));
}

#[test]
fn kill_9_of_the_owner_keeps_an_acked_alarms_id_and_ack_and_clears_what_ended_meanwhile() {
    let agents = Agents::start_with(6, |cfg| {
        cfg.flap = Some(FlapSchedule {
            every: 1,
            if_index: 1,
            period: FLAP_PERIOD,
            down_for: FLAP_DOWN,
        });
    });
    let mut pool = Pool::start(3, &agents.inventory(), POOL_TIMINGS);
    let loads = [(1, 2), (2, 2), (3, 2)];
    wait_agree(&pool, 3, &loads, Duration::from_secs(20));
    // The master's own element: its crash also costs the pool its master.
    let victim = 3;
    let element = pool
        .local_elements(victim)
        .into_iter()
        .min()
        .expect("the master owns elements");
    let standing = format!("LinkDown:{element}:23");
    let flapping = format!("LinkDown:{element}:1");
    let before = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        pool.server(1).alarm(&standing)
    })
    .unwrap_or_else(|e| panic!("{standing} never raised: {e}"));
    assert_eq!(before["server"], victim, "{before}");
    let id = before["id"].as_u64().expect("alarm id");
    let (code, body) = pool.server(1).ack(id, "alice");
    assert_eq!(code, 200, "ack: {body}");
    let acked = pool.server(1).alarm(&standing).expect("still active");
    assert_eq!(acked["acked_by"], "alice");

    // Kill the owner just before ifIndex 1 comes back up: the link alarm is active (and the
    // pool has had seconds to copy it), and its condition ends while nobody owns the element.
    let up_edge_margin = Duration::from_millis(250);
    wait_until(Duration::from_secs(25), Duration::from_millis(5), || {
        let phase = agents.now().as_millis() % FLAP_PERIOD.as_millis();
        let target = (FLAP_PERIOD - up_edge_margin).as_millis();
        (target..target + 60).contains(&phase).then_some(())
    })
    .expect("flap phase");
    assert!(
        pool.server(1).alarm(&flapping).is_some(),
        "{flapping} should be active in the down half of the flap"
    );
    let killed_ms = now_ms();
    pool.server_mut(victim).kill9();
    let phase_after = agents.now().as_millis() % FLAP_PERIOD.as_millis();
    assert!(
        phase_after >= (FLAP_PERIOD - FLAP_DOWN).as_millis(),
        "the kill came after the link was up again (phase {phase_after} ms): the test thread was descheduled"
    );

    // The new owner continues the same alarm: same id, first-seen and acknowledgement.
    let after = wait_until(Duration::from_secs(8), Duration::from_millis(100), || {
        pool.server(1)
            .alarm(&standing)
            .filter(|a| a["server"] != victim)
    })
    .unwrap_or_else(|e| panic!("{standing} not taken over: {e}"));
    let heir = after["server"].as_u64().expect("server id") as u32;
    eprintln!(
        "taken over by server {heir} {} ms after the kill",
        now_ms() - killed_ms
    );
    assert_eq!(after["id"], before["id"], "alarm id changed: {after}");
    assert_eq!(after["first_seen"], before["first_seen"], "{after}");
    assert_eq!(after["acked_by"], "alice", "acknowledgement lost: {after}");
    assert_eq!(after["acked_at"], acked["acked_at"], "{after}");

    // The link came up while the element had no owner: the heir's first poll clears it.
    wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        pool.server(1).alarm(&flapping).is_none().then_some(())
    })
    .unwrap_or_else(|e| panic!("{flapping} not cleared after the take-over: {e}"));
    // The event log commits in the background: the alarm leaves the table a moment before
    // its clear is in the log (a few ms; longer on a loaded machine).
    let cleared = wait_until(Duration::from_secs(3), Duration::from_millis(100), || {
        let all = events(
            pool.server(1),
            &format!("kind=alarm.cleared&element={element}&since={killed_ms}"),
            false,
        );
        let of: Vec<Value> = about(&all, &flapping).into_iter().cloned().collect();
        (!of.is_empty()).then_some(of)
    })
    .unwrap_or_else(|e| panic!("no alarm.cleared of {flapping} since the kill: {e}"));
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert_eq!(cleared[0]["server"], heir, "{cleared:?}");
    assert!(
        cleared[0]["text"]
            .as_str()
            .is_some_and(|t| t.ends_with("condition ended while the owner was down")),
        "{cleared:?}"
    );

    // The dead server returns (its event log with it): the pool-wide log has exactly one
    // alarm.raised for the acknowledged alarm, and no new raise of the link that came up.
    pool.server_mut(victim).spawn();
    wait_agree(&pool, 3, &loads, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    let raised = events(
        pool.server(1),
        &format!("kind=alarm.raised&element={element}"),
        true,
    );
    let raised_standing = about(&raised, &standing);
    assert_eq!(
        raised_standing.len(),
        1,
        "alarm.raised of {standing} (killed at {killed_ms}): {raised_standing:?}"
    );
    let next_down_ms = killed_ms + FLAP_DOWN.as_millis() as i64 - 1_000;
    let reraised: Vec<&Value> = about(&raised, &flapping)
        .into_iter()
        .filter(|e| {
            e["ts"]
                .as_i64()
                .is_some_and(|t| t > killed_ms && t < next_down_ms)
        })
        .collect();
    assert!(reraised.is_empty(), "{flapping} raised again: {reraised:?}");
    // Moved back to the returning server by a hand-over, it is still the same alarm.
    let last = pool.server(1).alarm(&standing).expect("still active");
    assert_eq!(last["id"], before["id"], "{last}");
    assert_eq!(last["acked_by"], "alice", "{last}");
}

#[test]
fn remove_writes_element_removed_and_clears_its_alarms_on_the_owner() {
    let agents = Agents::start(3);
    let pool = Pool::start(3, &agents.inventory(), POOL_TIMINGS);
    wait_agree(&pool, 3, &[(1, 1), (2, 1), (3, 1)], Duration::from_secs(20));
    let element = Agents::name(0);
    let keys = [
        format!("LinkDown:{element}:23"),
        format!("LinkDown:{element}:24"),
    ];
    let watcher = pool.server(1);
    let owner = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let a = keys
            .iter()
            .map(|k| watcher.alarm(k))
            .collect::<Option<Vec<Value>>>()?;
        a[0]["server"].as_u64()
    })
    .unwrap_or_else(|e| panic!("{keys:?} never raised: {e}"));
    let since = now_ms();
    // Through a server other than the owner and other than the master where possible.
    let via = if owner == 2 { 1 } else { 2 };
    pool.server(via).cli(&["remove", &element]);

    let removed = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let e = events(
            watcher,
            &format!("kind=element.removed&element={element}&since={since}"),
            true,
        );
        (!e.is_empty()).then_some(e)
    })
    .unwrap_or_else(|e| panic!("no element.removed: {e}"));
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["server"], owner, "{removed:?}");
    let cleared = events(
        watcher,
        &format!("kind=alarm.cleared&element={element}&since={since}"),
        true,
    );
    for k in &keys {
        let c = about(&cleared, k);
        assert_eq!(c.len(), 1, "alarm.cleared of {k}: {cleared:?}");
        assert_eq!(c[0]["server"], owner);
        assert!(
            c[0]["text"]
                .as_str()
                .is_some_and(|t| t.ends_with(": element removed")),
            "{c:?}"
        );
        assert!(watcher.alarm(k).is_none(), "{k} still active");
    }
    // The other elements' alarms are untouched.
    assert!(
        watcher
            .alarm(&format!("LinkDown:{}:23", Agents::name(1)))
            .is_some()
    );
}
