//! Inventory changes and assignments at scale, on real pools: concurrent adds through every
//! member end in exactly what the answers promised, and a 5-server pool with a large inventory
//! converges after start, after kill -9 of the master and after 1,000 changes through the API.
//!
//! The elements point at 127.0.0.1:9 (nothing answers there) and are polled once an hour, so
//! the test measures the pool protocol, not polling. The suite's large pool has 5,000 elements
//! (a debug build on a shared 2-core machine); `EMSPOOL_TEST_POOL_ELEMENTS=100000` runs it at
//! full size, and `cargo bench --bench pool_scale` measures 100,000 (BENCHMARKS.md).

use crate::common;

use common::pool::{Pool, SECRET};
use common::wait_until;
use emspool::testing::support::metric;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TIMINGS: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";
const POLL: &str = "[poll]\ninterval = \"1h\"\ntimeout = \"200ms\"\nretries = 0\n\n\
                    [credentials.public]\nversion = \"v2c\"\ncommunity = \"public\"\n";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// An assignment as a member holds it: id, element names, owners by name.
type Held = (Value, BTreeSet<String>, Vec<(String, Value)>);

/// The assignment a member holds (`GET /peer/v1/assignment`).
fn held(url: &str) -> Option<Held> {
    let mut r = agent()
        .get(&format!("{url}/peer/v1/assignment"))
        .header("authorization", &format!("Bearer {SECRET}"))
        .call()
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let v: Value = r.body_mut().with_config().limit(1 << 30).read_json().ok()?;
    let names = v["elements"]
        .as_array()?
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect();
    let mut owners: Vec<(String, Value)> = v["owners"]
        .as_object()?
        .iter()
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    owners.sort_by(|a, b| a.0.cmp(&b.0));
    Some((v["id"].clone(), names, owners))
}

/// Every running member holds the same assignment, with exactly `expected` and every element
/// owned by a running member, and the running members agree that `master` is master.
fn converged(pool: &Pool, master: u32, expected: &BTreeSet<String>, timeout: Duration) {
    let running: Vec<u32> = (1..=pool.servers.len() as u32)
        .filter(|&id| pool.server(id).is_running())
        .collect();
    let r = wait_until(timeout, Duration::from_millis(500), || {
        let views = pool.views();
        let agreed = views.len() == running.len()
            && views
                .iter()
                .all(|(_, v)| v["master"] == master && v["assignment"] == views[0].1["assignment"]);
        if !agreed {
            return None;
        }
        let first = held(&pool.server(running[0]).url)?;
        if first.1 != *expected || first.2.len() != expected.len() {
            return None;
        }
        let owned_by_running = first
            .2
            .iter()
            .all(|(_, o)| o.as_u64().is_some_and(|id| running.contains(&(id as u32))));
        if !owned_by_running {
            return None;
        }
        for &id in &running[1..] {
            if held(&pool.server(id).url)? != first {
                return None;
            }
        }
        Some(())
    });
    r.unwrap_or_else(|e| {
        let sizes: Vec<(u32, Option<usize>)> = running
            .iter()
            .map(|&id| (id, held(&pool.server(id).url).map(|h| h.1.len())))
            .collect();
        panic!(
            "pool did not converge on {} element(s) under master {master}: {e}\nheld: {sizes:?}\n{:?}\n{}",
            expected.len(),
            pool.views(),
            pool.server(master).log_tail()
        )
    });
}

/// Runs `requests` (method, server index, path, body) `parallel` at a time; the final
/// statuses. Like the CLI, a request that got no answer or 503 (no master during an election,
/// or an outcome the server could not know) is sent again to the next member, a bounded number
/// of times; a retry that finds its own change done (409 for an add, 404 for a removal) counts
/// as done, since only this test touches these names.
fn run_parallel(
    pool: &Pool,
    requests: Vec<(&'static str, usize, String, Option<String>)>,
    parallel: usize,
) -> Vec<(String, u16, String)> {
    let urls: Vec<String> = pool.servers.iter().map(|s| s.url.clone()).collect();
    let queue = Arc::new(Mutex::new(requests));
    let out = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..parallel)
        .map(|_| {
            let queue = queue.clone();
            let out = out.clone();
            let urls = urls.clone();
            std::thread::spawn(move || {
                let a = agent();
                loop {
                    let Some((method, to, path, body)) = queue.lock().expect("queue").pop() else {
                        break;
                    };
                    let mut last = (0, String::new());
                    for attempt in 0..40 {
                        let url = format!("{}{path}", urls[(to + attempt) % urls.len()]);
                        let r = match (method, &body) {
                            ("POST", Some(b)) => a
                                .post(&url)
                                .header("content-type", "application/json")
                                .send(b.as_str()),
                            _ => a.delete(&url).call(),
                        };
                        let (status, text) = match r {
                            Ok(mut r) => (
                                r.status().as_u16(),
                                r.body_mut().read_to_string().unwrap_or_default(),
                            ),
                            Err(e) => (0, e.to_string()),
                        };
                        let done_before = attempt > 0
                            && ((method == "POST" && status == 409)
                                || (method == "DELETE" && status == 404));
                        last = if done_before {
                            let name = body
                                .as_deref()
                                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                                .and_then(|v| v["name"].as_str().map(str::to_owned))
                                .unwrap_or_default();
                            (202, format!(r#"{{"name":"{name}","retried":true}}"#))
                        } else {
                            (status, text)
                        };
                        if last.0 != 0 && last.0 != 503 {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(250));
                    }
                    out.lock().expect("out").push((path, last.0, last.1));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    Arc::try_unwrap(out)
        .map(|m| m.into_inner().expect("out"))
        .unwrap_or_default()
}

fn add(i: usize, name: &str) -> (&'static str, usize, String, Option<String>) {
    (
        "POST",
        i,
        "/api/v1/elements".to_owned(),
        Some(format!(
            r#"{{"name":"{name}","address":"127.0.0.1:9","credential":"public","interval":"1h"}}"#
        )),
    )
}

fn remove(i: usize, name: &str) -> (&'static str, usize, String, Option<String>) {
    ("DELETE", i, format!("/api/v1/elements/{name}"), None)
}

/// What the answers promise: added on 201/202, removed on 204/202; anything else is a failure
/// of this test (every request here is valid).
fn promised(answers: &[(String, u16, String)], inventory: &mut BTreeSet<String>) {
    let mut odd = Vec::new();
    for (path, status, text) in answers {
        let removal = path != "/api/v1/elements";
        let name = if removal {
            path.trim_start_matches("/api/v1/elements/").to_owned()
        } else {
            serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v["name"].as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        match (removal, status) {
            (false, 201 | 202) if !name.is_empty() => {
                inventory.insert(name);
            }
            (true, 204 | 202) => {
                inventory.remove(&name);
            }
            _ => odd.push((path.clone(), *status, text.clone())),
        }
    }
    assert!(
        odd.is_empty(),
        "{} of {} answers were neither applied nor accepted, e.g. {:?}",
        odd.len(),
        answers.len(),
        &odd[..odd.len().min(5)]
    );
}

#[test]
fn concurrent_adds_through_every_member_end_in_what_the_answers_promised() {
    let pool = Pool::start(3, POLL, TIMINGS);
    converged(&pool, 3, &BTreeSet::new(), Duration::from_secs(20));
    let adds: Vec<_> = (0..5000).map(|i| add(i, &format!("ne{i:05}"))).collect();
    let answers = run_parallel(&pool, adds, 50);
    assert_eq!(answers.len(), 5000);
    let applied = answers
        .iter()
        .filter(|(_, s, t)| *s == 201 && t.contains("\"applied\":{"))
        .count();
    let mut inventory = BTreeSet::new();
    promised(&answers, &mut inventory);
    eprintln!("5000 adds: {applied} applied (201 with its version), the rest accepted (202)");
    assert_eq!(inventory.len(), 5000);
    converged(&pool, 3, &inventory, Duration::from_secs(60));
    // Removals and re-adds of the same names at once, through every member.
    let mut mixed: Vec<_> = (0..5000)
        .step_by(5)
        .map(|i| remove(i, &format!("ne{i:05}")))
        .collect();
    mixed.extend((5000..5500).map(|i| add(i, &format!("ne{i:05}"))));
    let answers = run_parallel(&pool, mixed, 50);
    promised(&answers, &mut inventory);
    assert_eq!(inventory.len(), 4500);
    converged(&pool, 3, &inventory, Duration::from_secs(60));
}

#[test]
fn five_servers_with_a_large_inventory_converge_after_start_kill_and_changes() {
    let n: usize = std::env::var("EMSPOOL_TEST_POOL_ELEMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let mut body = String::from(POLL);
    let mut inventory = BTreeSet::new();
    for i in 0..n {
        let name = format!("e{i:06}");
        body.push_str(&format!(
            "\n[[elements]]\nname = \"{name}\"\naddress = \"127.0.0.1:9\"\ncredential = \"public\"\n"
        ));
        inventory.insert(name);
    }
    let mut pool = Pool::start(5, &body, TIMINGS);
    converged(&pool, 5, &inventory, Duration::from_secs(90));

    pool.server_mut(5).kill9();
    converged(&pool, 4, &inventory, Duration::from_secs(60));

    let mut changes: Vec<_> = (0..500)
        .map(|i| remove(i, &format!("e{:06}", i * (n / 500).max(1))))
        .collect();
    changes.extend((0..500).map(|i| add(i, &format!("new{i:04}"))));
    let delta_bytes = || {
        let m = pool.server(4).raw("GET", "/metrics", None).1;
        metric(
            &m,
            "emspool_assignment_sent_bytes_total",
            Some("kind=\"delta\""),
        )
    };
    let before = delta_bytes();
    let answers = run_parallel(&pool, changes, 20);
    promised(&answers, &mut inventory);
    assert_eq!(inventory.len(), n);
    converged(&pool, 4, &inventory, Duration::from_secs(60));
    // 1,000 changes to 3 members as deltas: a few hundred bytes per change and member,
    // whatever the inventory's size (a whole inventory would be n * ~100 bytes per push).
    let sent = delta_bytes() - before;
    eprintln!("1,000 changes of {n} elements: {sent} delta bytes to 3 members");
    assert!(sent > 0.0, "no deltas sent by the new master");
    assert!(
        sent < 1000.0 * 3.0 * 1000.0,
        "{sent} bytes of deltas for 1,000 single-element changes"
    );
}
