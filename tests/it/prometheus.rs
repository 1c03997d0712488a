//! Device metrics with a real Prometheus: a 3-server pool polls simulated agents whose counters
//! move (`emspool simulate --traffic`); Prometheus (Debian's binary) finds the members through
//! `/api/v1/sd/devices` with the example scrape config of packaging/prometheus/ and scrapes
//! `/metrics/devices` every second, through a kill -9 of one member. Everything is checked
//! through Prometheus' HTTP API: every interface series before and after, one exporter per
//! element, counters without reset or long gap, rates as the simulator makes them, the
//! Grafana dashboard's queries. A second test checks the endpoint itself on one server:
//! `promtool check metrics`, gzip, shards, the token rule.

use crate::common;

use common::ChildGuard;
use common::emspool::Emspool;
use common::pool::Pool;
use common::prometheus::{self, Prometheus, samples, value};
use common::{free_port_run, wait_until};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const POOL_TIMINGS: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";
const SCRAPE: Duration = Duration::from_secs(1);
const INTERFACES: usize = 24;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// `emspool simulate --traffic` with `n` agents on consecutive loopback ports.
struct Sim {
    _dir: common::TempDir,
    _child: ChildGuard,
    base: u16,
    n: usize,
}

impl Sim {
    fn start(n: usize) -> Sim {
        let dir = common::peer_tempdir("sim");
        let base = free_port_run(n);
        let mut cmd = Command::new(common::emspool_bin());
        cmd.args(["simulate", "--traffic", "--agents", &n.to_string()])
            .args(["--base-port", &base.to_string()]);
        let child = common::spawn("simulate", cmd, dir.path());
        let out = child.stdout_path().to_owned();
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            std::fs::read_to_string(&out)
                .ok()
                .filter(|s| s.contains("simulating"))
                .map(|_| ())
        })
        .unwrap_or_else(|e| panic!("simulator did not start: {e}\n{}", child.log_tail()));
        Sim {
            _dir: dir,
            _child: child,
            base,
            n,
        }
    }

    fn name(i: usize) -> String {
        format!("ne{i:03}")
    }

    fn inventory(&self) -> String {
        emspool::testing::support::v2c_inventory(
            "interval = \"1s\"\ntimeout = \"300ms\"\nretries = 1",
            self.n,
            self.base,
            Sim::name,
        )
    }

    /// Octets per second the simulator adds to ifHCInOctets of (agent, ifIndex)
    /// (`sim::device::traffic_rate`, restated here: the test must not use library paths).
    fn in_rate(agent: usize, if_index: usize) -> f64 {
        125_000.0 * (1 + (if_index + agent) % 8) as f64
    }
}

fn http(url: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>, Option<String>) {
    let mut req = ureq::get(url)
        .config()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build();
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let enc = resp
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    resp.body_mut()
        .as_reader()
        .read_to_end(&mut body)
        .expect("read body");
    (resp.status().as_u16(), body, enc)
}

fn text(url: &str) -> String {
    let (status, body, _) = http(url, &[("accept-encoding", "identity")]);
    assert_eq!(status, 200, "GET {url}");
    String::from_utf8(body).expect("UTF-8")
}

/// Elements named in `emspool_device_owner` lines of a device scrape.
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("emspool_device_owner{element=\""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_owned)
        .collect()
}

fn all_up(ems: &Emspool, n: usize) -> bool {
    let v = ems.get("/api/v1/elements");
    let els = common::json_array(&v, "elements");
    els.len() == n && els.iter().all(|e| e["status"]["state"] == "up")
}

#[test]
fn device_endpoint_text_gzip_shards_and_token() {
    let sim = Sim::start(3);
    let token = "dev-metrics-token";
    let body = format!(
        "[api]\ntoken = \"{token}\"\nprotect_metrics = true\n\n{}",
        sim.inventory()
    );
    let ems = Emspool::start(1, &body);
    let auth = format!("Bearer {token}");
    let h = [
        ("authorization", auth.as_str()),
        ("accept-encoding", "identity"),
    ];
    let url = format!("{}/metrics/devices", ems.url);
    wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        let (_, b, _) = http(&url, &h);
        let t = String::from_utf8_lossy(&b).into_owned();
        (t.matches("emspool_device_if_in_octets_total{").count() == 3 * INTERFACES).then_some(())
    })
    .unwrap_or_else(|e| panic!("not every interface exported: {e}\n{}", ems.log_tail()));

    // The token rule of /metrics applies to the device metrics and the discovery.
    for path in ["/metrics/devices", "/api/v1/sd/devices", "/metrics"] {
        let (status, _, _) = http(&format!("{}{path}", ems.url), &[]);
        assert_eq!(status, 401, "{path} without token");
    }
    let (status, sd, _) = http(&format!("{}/api/v1/sd/devices", ems.url), &h);
    assert_eq!(status, 200);
    let sd: serde_json::Value = serde_json::from_slice(&sd).expect("sd JSON");
    assert_eq!(
        sd,
        serde_json::json!([{"targets": [format!("127.0.0.1:{}", ems.port)],
            "labels": {"__meta_emspool_server_id": "1", "__scheme__": "http"}}])
    );

    // promtool's linter accepts the scrape as it is.
    let (_, plain, enc) = http(&url, &h);
    assert_eq!(enc, None);
    let mut lint = Command::new(prometheus::promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    {
        use std::io::Write;
        let mut stdin = lint.stdin.take().expect("stdin");
        stdin.write_all(&plain).expect("feed promtool");
    }
    let out = lint.wait_with_output().expect("promtool result");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = String::from_utf8(plain).expect("UTF-8");
    for needle in [
        "# TYPE emspool_device_if_in_octets_total counter",
        "emspool_device_up{element=\"ne000\"} 1 ",
        "emspool_device_owner{element=\"ne002\",server=\"1\"} 1\n",
        ",ifname=\"Gi0/24\",ifdescr=\"GigabitEthernet0/24\",ifalias=\"port 24\"} 1 ",
    ] {
        assert!(plain.contains(needle), "{needle:?} missing");
    }

    // gzip when asked for; the same text inside (but for polls in between).
    let (status, gz, enc) = gzip_get(&url, &auth);
    assert_eq!((status, enc.as_deref()), (200, Some("gzip")));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut unzipped)
        .expect("valid gzip");
    assert!(gz.len() * 4 < unzipped.len(), "gzip compresses");
    assert_eq!(exported(&unzipped), exported(&plain));
    assert_eq!(
        unzipped.lines().count(),
        plain.lines().count(),
        "same series"
    );

    // Two shards: disjoint, together everything.
    let all = exported(&plain);
    let shard = |i: u32| exported(&text_with(&format!("{url}?shard={i}&shards=2"), &h));
    let (a, b) = (shard(0), shard(1));
    assert!(a.is_disjoint(&b), "{a:?} {b:?}");
    assert_eq!(a.union(&b).cloned().collect::<BTreeSet<_>>(), all);
    for bad in ["?shard=2&shards=2", "?shard=0", "?shards=0&shard=0", "?x=1"] {
        let (status, _, _) = http(&format!("{url}{bad}"), &h);
        assert_eq!(status, 400, "{bad}");
    }
    drop(sim);
}

/// GET with `Accept-Encoding: gzip`, body as sent (reqwest is built without decompression;
/// ureq would decompress and hide the encoding).
fn gzip_get(url: &str, auth: &str) -> (u16, Vec<u8>, Option<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    emspool::testing::install_tls_provider();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(url)
            .header("authorization", auth)
            .header("accept-encoding", "gzip")
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("GET gzip");
        let status = resp.status().as_u16();
        let enc = resp
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, resp.bytes().await.expect("body").to_vec(), enc)
    })
}

fn text_with(url: &str, headers: &[(&str, &str)]) -> String {
    let (status, body, _) = http(url, headers);
    assert_eq!(status, 200, "GET {url}");
    String::from_utf8(body).expect("UTF-8")
}

#[test]
fn prometheus_sees_every_device_series_through_a_kill_9() {
    let sim = Sim::start(12);
    let n = sim.n;
    let mut pool = Pool::start(3, &sim.inventory(), POOL_TIMINGS);
    wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        all_up(pool.server(1), n).then_some(())
    })
    .unwrap_or_else(|e| panic!("elements not up: {e}\n{}", pool.server(1).log_tail()));

    let prom = Prometheus::start(&prometheus::example_config(&pool.server(1).url, SCRAPE));
    // Steady: every interface of every element fresh (sampled within 3 s), one owner each,
    // all three members scraped.
    let fresh = "count by (element) (time() - timestamp(emspool_device_if_in_octets_total) < 3)";
    let per_element = |q: &str, at: Option<f64>| -> BTreeMap<String, f64> {
        prom.query(q, at)
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .iter()
            .map(|s| {
                let el = s["metric"]["element"].as_str().unwrap_or("").to_owned();
                (el, value(s))
            })
            .collect()
    };
    let everything =
        |m: &BTreeMap<String, f64>, want: f64| m.len() == n && m.values().all(|&v| v == want);
    wait_until(Duration::from_secs(30), Duration::from_millis(500), || {
        let up = prom
            .targets()
            .iter()
            .filter(|(job, _, health)| job == "emspool-devices" && health == "up")
            .count();
        (up == 3
            && everything(&per_element(fresh, None), INTERFACES as f64)
            && everything(
                &per_element("count by (element) (emspool_device_owner)", None),
                1.0,
            ))
        .then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "Prometheus never saw the whole pool: {e}\ntargets {:?}\n{}",
            prom.targets(),
            prom.log_tail()
        )
    });
    let steady = unix_now();
    // Enough samples for rates before the crash.
    std::thread::sleep(Duration::from_secs(6));

    let victim = 3;
    let orphans = pool.local_elements(victim);
    assert!(!orphans.is_empty(), "server {victim} owns nothing");
    let kill_unix = unix_now();
    let before_kill = kill_unix - 0.5;
    let killed = Instant::now();
    pool.server_mut(victim).kill9();
    let failover = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        let owned: BTreeSet<String> = [1, 2]
            .iter()
            .flat_map(|&id| pool.local_elements(id))
            .collect();
        (owned.len() == n).then(|| killed.elapsed())
    })
    .unwrap_or_else(|e| panic!("survivors did not take over: {e}"));
    eprintln!("fail-over: every element owned by a survivor after {failover:?}");
    // A peer request with an element name in its path, for the label check below.
    for id in [1, 2] {
        pool.server(id).get("/api/v1/elements/ne000");
    }
    std::thread::sleep(Duration::from_secs(10));
    let end = unix_now();
    let window = format!("{}s", (end - steady).ceil() as u64);

    // Every interface series of every element, before and after.
    for (when, at) in [("before the kill", before_kill), ("at the end", end)] {
        let m = per_element(fresh, Some(at));
        assert!(everything(&m, INTERFACES as f64), "{when}: {m:?}");
        let owners = per_element("count by (element) (emspool_device_owner)", Some(at));
        assert!(everything(&owners, 1.0), "{when}: owners {owners:?}");
        let up = per_element("emspool_device_up", Some(at));
        assert!(everything(&up, 1.0), "{when}: up {up:?}");
    }
    let targets = prom.targets();
    let live: Vec<_> = targets
        .iter()
        .filter(|(job, _, _)| job == "emspool-devices")
        .collect();
    assert_eq!(
        live.len(),
        2,
        "discovery dropped the dead member: {targets:?}"
    );

    // No element exported by two servers at once: each server's owner samples of an element
    // (one per scrape, no timestamp of their own) form intervals that do not overlap.
    let raw = |q: &str| {
        prom.query(&format!("{q}[{window}]"), Some(end))
            .unwrap_or_else(|e| panic!("{q}: {e}"))
    };
    let mut spans: BTreeMap<String, Vec<(f64, f64, String)>> = BTreeMap::new();
    for s in raw("emspool_device_owner") {
        let el = s["metric"]["element"].as_str().unwrap_or("").to_owned();
        let server = s["metric"]["server"].as_str().unwrap_or("").to_owned();
        let ts: Vec<f64> = samples(&s)
            .into_iter()
            .map(|(t, _)| t)
            .filter(|&t| t >= steady)
            .collect();
        if let (Some(&a), Some(&b)) = (ts.first(), ts.last()) {
            spans.entry(el).or_default().push((a, b, server));
        }
    }
    assert_eq!(spans.len(), n);
    let mut moved = 0;
    for (el, mut v) in spans {
        v.sort_by(|x, y| x.0.total_cmp(&y.0));
        for pair in v.windows(2) {
            assert!(
                pair[0].1 < pair[1].0,
                "{el} exported by servers {} and {} at once: {v:?}",
                pair[0].2,
                pair[1].2
            );
        }
        if v.len() > 1 {
            moved += 1;
        }
        if orphans.contains(&el) {
            assert!(v.len() >= 2, "{el} did not move: {v:?}");
        }
    }
    assert_eq!(
        moved,
        orphans.len(),
        "only the dead member's elements moved"
    );

    // Counters: no reset, no gap longer than fail-over + 2 scrape intervals, present from
    // the steady point to the end.
    let max_gap = failover.as_secs_f64() + 2.0 * SCRAPE.as_secs_f64() + 0.3;
    let mut widest: f64 = 0.0;
    let series = raw("emspool_device_if_in_octets_total");
    assert_eq!(series.len(), n * INTERFACES, "one series per interface");
    for s in &series {
        let m = &s["metric"];
        let pts: Vec<(f64, f64)> = samples(s).into_iter().filter(|p| p.0 >= steady).collect();
        let (first, last) = (pts.first().expect("samples"), pts.last().expect("samples"));
        assert!(
            first.0 <= steady + 2.0 && last.0 >= end - 3.0,
            "{m}: {first:?}..{last:?}"
        );
        for w in pts.windows(2) {
            assert!(
                w[1].1 >= w[0].1,
                "{m}: counter went back {:?} -> {:?}",
                w[0],
                w[1]
            );
            let gap = w[1].0 - w[0].0;
            widest = widest.max(gap);
            assert!(
                gap <= max_gap,
                "{m}: gap of {gap:.2} s (allowed {max_gap:.2})"
            );
        }
    }
    eprintln!("widest gap between samples of a traffic counter: {widest:.2} s");

    // rate(): what the simulator makes, at every step but those within the gap.
    let step = 1.0;
    let rates = prom
        .query_range(
            "rate(emspool_device_if_in_octets_total[3s])",
            steady + 3.0,
            end,
            step,
        )
        .expect("rates");
    assert_eq!(rates.len(), n * INTERFACES);
    let steps = ((end - steady - 3.0) / step).floor() as usize + 1;
    for s in &rates {
        let m = &s["metric"];
        let el = m["element"].as_str().unwrap_or("");
        let agent: usize = el.trim_start_matches("ne").parse().expect("ne index");
        let ifindex: usize = m["ifindex"]
            .as_str()
            .unwrap_or("")
            .parse()
            .expect("ifindex");
        let want = Sim::in_rate(agent, ifindex);
        let pts = samples(s);
        for &(t, r) in &pts {
            // Windows that straddle the fail-over gap see fewer samples and extrapolate less
            // (Prometheus' rate), so there the rate only has to stay positive and free of the
            // spike a counter reset would make.
            // The killed owner's last sample can be a poll interval and a scrape before the
            // kill, so windows that end just before it already extrapolate less.
            let near_gap = t > kill_unix - 2.0 * step && t < kill_unix + max_gap + 3.0 + step;
            let ok = if near_gap {
                r > 0.0 && r <= 1.5 * want
            } else {
                // A reset would show as a spike (rate() counts the whole raw value of the new
                // series as an increase), so the upper bound is the tight one; a poll delayed
                // by a loaded machine only makes a window see less.
                r >= 0.5 * want && r <= 1.25 * want
            };
            assert!(
                ok,
                "{m} at {t} ({:+.1} s from the kill): rate {r:.0}, simulator sends {want:.0}",
                t - kill_unix
            );
        }
        let missing = steps.saturating_sub(pts.len()) as f64 * step;
        assert!(missing <= max_gap, "{m}: rate missing for {missing} s");
    }

    // The Grafana dashboard's queries run and find data.
    let dash_path = common::repo_root().join("packaging/grafana/emspool-devices.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&dash_path).expect("dashboard"))
            .expect("dashboard JSON");
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("expr");
            let q = expr
                .replace("$__rate_interval", "4s")
                .replace("$job", "emspool-devices")
                .replace("$element", ".*");
            let r = prom
                .query(&q, None)
                .unwrap_or_else(|e| panic!("panel {}: {q}: {e}", p["title"]));
            assert!(!r.is_empty(), "panel {}: {q} found nothing", p["title"]);
        }
    }

    // Peer request labels are route templates, never element names.
    let mut templated = false;
    for id in [1, 2] {
        let m = text(&format!("{}/metrics", pool.server(id).url));
        for l in m
            .lines()
            .filter(|l| l.starts_with("emspool_peer_requests_total{"))
        {
            assert!(!l.contains("ne0"), "element name in a label: {l}");
            templated |= l.contains("endpoint=\"local/elements/{name}\"");
        }
    }
    assert!(templated, "no local/elements/{{name}} peer request counted");
    let leaked = prom
        .query(
            "emspool_peer_requests_total{endpoint=~\".*ne[0-9].*\"}",
            None,
        )
        .expect("query");
    assert!(leaked.is_empty(), "{leaked:?}");
    drop(sim);
}
