//! One server polls 1,000 simulated elements within one 10 s interval (debug build). The
//! 10,000-element measurement is `cargo bench --bench poll_scale` (BENCHMARKS.md).

use crate::common;

use common::agents::Agents;
use common::emspool::Emspool;
use common::wait_until;
use emspool::testing::support::metric;
use std::time::{Duration, Instant};

const N: usize = 1000;

#[test]
fn one_server_polls_1000_elements_within_one_interval() {
    let agents = Agents::start(N);
    let base = agents.base;

    let body = emspool::testing::support::v2c_inventory(
        "interval = \"10s\"\ntimeout = \"2s\"\nretries = 1",
        N,
        base,
        |i| format!("ne{i:04}"),
    );
    let server = Emspool::start(1, &body);
    let ready = Instant::now();
    let metrics = || {
        ureq::get(&format!("{}/metrics", server.url))
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()
    };
    let done = wait_until(Duration::from_secs(10), Duration::from_millis(250), || {
        let m = metrics()?;
        let up = metric(&m, "emspool_elements", Some("state=\"up\""));
        let polls = metric(&m, "emspool_polls_total", None);
        (up >= N as f64 && polls >= N as f64).then_some((up, polls))
    });
    let took = ready.elapsed();
    let last = metrics().unwrap_or_default();
    let (up, polls) = done.unwrap_or_else(|e| {
        panic!(
            "not all {N} polled within 10 s of readiness: {e}; up {}, polls {}, sim {:?}\n{}",
            metric(&last, "emspool_elements", Some("state=\"up\"")),
            metric(&last, "emspool_polls_total", None),
            agents.sim().stats(),
            server.log_tail()
        )
    });
    eprintln!(
        "{up} up, {polls} polls {took:?} after readiness; p(poll <= 100 ms) = {:.3}",
        metric(
            &last,
            "emspool_poll_duration_seconds_bucket",
            Some("le=\"0.1\"")
        ) / metric(&last, "emspool_poll_duration_seconds_count", None).max(1.0)
    );
    assert_eq!(
        metric(&last, "emspool_polls_total", Some("result=\"down\"")),
        0.0,
        "some polls failed"
    );
    drop(server);
    drop(agents);
}
