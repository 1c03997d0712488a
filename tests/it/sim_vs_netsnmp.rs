//! The simulator against Net-SNMP's own command-line tools: what they read must be exactly the
//! `.snmprec` template (plus the per-agent sysName and sysUpTime), walks must end where they
//! should, and missing objects must come back as the right exceptions.
//!
//! The tools are required, not optional: without /usr/bin/snmpbulkwalk these tests fail.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use emspool::sim::{Dataset, SimConfig, SimHandle, start};
use emspool::testing::support;
use tokio::process::Command;
use tokio::time::timeout;

const TEMPLATE: &str = include_str!("../data/router24.snmprec");
const SYS_NAME: &str = ".1.3.6.1.2.1.1.5.0";
const SYS_UPTIME: &str = ".1.3.6.1.2.1.1.3.0";
const END_OF_VIEW: &str = "No more variables left in this MIB View";

/// Starts `agents` agents on consecutive free loopback ports.
async fn start_sim(agents: usize) -> SimHandle {
    start_sim_with(agents, |_| {}).await
}

/// One agent (`sim00000`), its port, and the rows a walk of it must show.
async fn one_agent() -> (SimHandle, u16, Vec<(String, Option<String>)>) {
    let sim = start_sim(1).await;
    let port = sim.addr(0).expect("agent 0").port();
    (sim, port, expected("sim00000"))
}

async fn start_sim_with(agents: usize, tweak: impl Fn(&mut SimConfig)) -> SimHandle {
    let mut cfg = SimConfig::new(Arc::new(Dataset::router24().expect("template parses")));
    cfg.agents = agents;
    tweak(&mut cfg);
    timeout(Duration::from_secs(10), support::start_sim(cfg))
        .await
        .expect("simulator start in time")
        .expect("simulator starts")
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs a Net-SNMP tool with numeric output, raw timeticks, short timeouts, bounded overall.
/// `args` are options then OIDs; the target goes between them.
async fn tool(name: &str, target: &str, args: &[&str]) -> Output {
    let path = format!("/usr/bin/{name}");
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: install Net-SNMP's tools (`apt-get install -y snmp`). \
         This test compares the simulator with them and must not be skipped."
    );
    let mut cmd = Command::new(&path);
    let split = args
        .iter()
        .position(|a| a.starts_with('.'))
        .unwrap_or(args.len());
    cmd.args(["-On", "-Ot", "-t", "2", "-r", "1"])
        .args(&args[..split])
        .arg(target)
        .args(&args[split..])
        .kill_on_drop(true);
    let out = timeout(Duration::from_secs(30), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{name} {args:?} did not finish in 30 s"))
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `tool` then the OID/value pairs; the tool must have succeeded.
async fn query(name: &str, port: u16, args: &[&str]) -> Vec<(String, String)> {
    let out = tool(name, &format!("127.0.0.1:{port}"), args).await;
    assert!(
        out.ok,
        "{name} {args:?} failed: {}\n{}",
        out.stderr, out.stdout
    );
    out.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(" = ") {
            Some((oid, value)) => (oid.to_string(), value.trim_end().to_string()),
            None => (String::new(), l.trim_end().to_string()),
        })
        .collect()
}

fn arcs(oid: &str) -> Vec<u32> {
    oid.trim_start_matches('.')
        .split('.')
        .map(|a| a.parse().expect("numeric arc"))
        .collect()
}

/// The template as Net-SNMP prints it with `-On -Ot`, read straight from the file (not through
/// the simulator's parser), for agent `name`; sysUpTime is left as `None` (it moves).
fn expected(name: &str) -> Vec<(String, Option<String>)> {
    let mut rows: Vec<(Vec<u32>, String, Option<String>)> = TEMPLATE
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut f = line.splitn(3, '|');
            let (oid, tag, value) = (
                f.next().expect("oid"),
                f.next().expect("tag"),
                f.next().expect("value"),
            );
            let printed = match tag {
                "2" => format!("INTEGER: {value}"),
                "4" => format!("STRING: \"{value}\""),
                "4x" => {
                    let bytes: Vec<String> = (0..value.len())
                        .step_by(2)
                        .map(|i| value[i..i + 2].to_uppercase())
                        .collect();
                    format!("Hex-STRING: {}", bytes.join(" "))
                }
                "6" => format!("OID: .{value}"),
                "64" => format!("IpAddress: {value}"),
                "65" => format!("Counter32: {value}"),
                "66" => format!("Gauge32: {value}"),
                "67" => value.to_string(),
                "70" => format!("Counter64: {value}"),
                other => panic!("template uses tag {other}; extend this test"),
            };
            let dotted = format!(".{oid}");
            let printed = match dotted.as_str() {
                SYS_NAME => Some(format!("STRING: \"{name}\"")),
                SYS_UPTIME => None,
                _ => Some(printed),
            };
            (arcs(oid), dotted, printed)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.into_iter().map(|(_, o, v)| (o, v)).collect()
}

/// Compares a walk with the expected rows; sysUpTime must be a small, plausible tick count.
fn assert_same(what: &str, got: &[(String, String)], want: &[(String, Option<String>)]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.0, w.0, "{what}: OID #{i} differs");
        match &w.1 {
            Some(v) => assert_eq!(&g.1, v, "{what}: value of {} differs", g.0),
            None => {
                let ticks: u64 = g.1.parse().unwrap_or_else(|_| panic!("{what}: {g:?}"));
                assert!(
                    ticks < 100 * 600,
                    "{what}: uptime {ticks} ticks is not recent"
                );
            }
        }
    }
    assert_eq!(got.len(), want.len(), "{what}: number of objects differs");
}

/// A walk over the whole view ends with the endOfMibView line; returns the rest.
fn strip_end_of_view<'a>(what: &str, rows: &'a [(String, String)]) -> &'a [(String, String)] {
    let (last, rest) = rows.split_last().unwrap_or_else(|| panic!("{what}: empty"));
    assert!(last.1.contains(END_OF_VIEW), "{what}: ends with {last:?}");
    rest
}

#[tokio::test]
async fn bulkwalk_returns_the_template_with_small_and_large_repetitions() {
    let (sim, port, want) = one_agent().await;
    for reps in ["-Cr5", "-Cr50"] {
        let rows = query("snmpbulkwalk", port, &["-v2c", "-c", "public", reps, ".1"]).await;
        assert_same(reps, strip_end_of_view(reps, &rows), &want);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn getnext_walks_v2c_and_v1() {
    let (sim, port, want) = one_agent().await;
    let rows = query("snmpwalk", port, &["-v2c", "-c", "public", ".1"]).await;
    assert_same("v2c walk", strip_end_of_view("v2c walk", &rows), &want);

    // v1 has no Counter64 (RFC 2576): those objects are skipped; the walk ends on noSuchName.
    let want_v1: Vec<_> = want
        .into_iter()
        .filter(|(_, v)| !v.as_deref().is_some_and(|v| v.starts_with("Counter64")))
        .collect();
    let rows = query("snmpwalk", port, &["-v1", "-c", "public", ".1"]).await;
    let (last, rest) = rows.split_last().expect("v1 walk output");
    assert_eq!(last.1, "End of MIB");
    assert_same("v1 walk", rest, &want_v1);
    sim.shutdown().await;
}

#[tokio::test]
async fn subtree_walks_stop_at_the_subtree_end() {
    let (sim, port, want) = one_agent().await;
    for root in [
        ".1.3.6.1.2.1.2.2.1.8",
        ".1.3.6.1.2.1.1",
        ".1.3.6.1.2.1.31.1.1.1.18",
    ] {
        let in_root: Vec<_> = want
            .iter()
            .filter(|(o, _)| o.starts_with(&format!("{root}.")))
            .cloned()
            .collect();
        assert!(!in_root.is_empty());
        for (tool_name, reps) in [
            ("snmpbulkwalk", "-Cr5"),
            ("snmpbulkwalk", "-Cr50"),
            ("snmpwalk", "-Cc"),
        ] {
            let rows = query(tool_name, port, &["-v2c", "-c", "public", reps, root]).await;
            // The last subtree ends the MIB: the tool may print the endOfMibView line there.
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|r| !r.1.contains(END_OF_VIEW))
                .collect();
            assert_same(&format!("{tool_name} {reps} {root}"), &rows, &in_root);
        }
    }
    // ifOperStatus: 1..20 up, 21..24 down (the template's standing LinkDown alarms).
    let oper = query(
        "snmpbulkwalk",
        port,
        &["-v2c", "-c", "public", ".1.3.6.1.2.1.2.2.1.8"],
    )
    .await;
    let down: Vec<_> = oper
        .iter()
        .filter(|r| r.1 == "INTEGER: 2")
        .map(|r| r.0.clone())
        .collect();
    assert_eq!(down.len(), 4, "{oper:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn getnext_past_the_last_object_is_end_of_mib_view() {
    let sim = start_sim(1).await;
    let port = sim.addr(0).expect("agent 0").port();
    let last = expected("sim00000").last().expect("rows").0.clone();
    let rows = query("snmpgetnext", port, &["-v2c", "-c", "public", &last]).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, last);
    assert!(rows[0].1.contains(END_OF_VIEW), "{rows:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn get_reports_no_such_object_and_no_such_instance() {
    let sim = start_sim(1).await;
    let port = sim.addr(0).expect("agent 0").port();
    let rows = query(
        "snmpget",
        port,
        &[
            "-v2c",
            "-c",
            "public",
            ".1.3.6.1.2.1.2.2.1.2.3",
            ".1.3.6.1.2.1.2.2.1.2.99",
            ".1.3.6.1.2.1.99.1.0",
            ".1.3.6.1.4.1.9.9.9.0",
        ],
    )
    .await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[0].1, "STRING: \"GigabitEthernet0/3\"");
    assert!(rows[1].1.starts_with("No Such Instance"), "{rows:?}");
    assert!(rows[2].1.starts_with("No Such Object"), "{rows:?}");
    assert!(rows[3].1.starts_with("No Such Object"), "{rows:?}");

    // v1 has no exceptions: the whole request fails with noSuchName on the missing varbind.
    let out = tool(
        "snmpget",
        &format!("127.0.0.1:{port}"),
        &["-v1", "-c", "public", SYS_NAME, ".1.3.6.1.2.1.1.99.0"],
    )
    .await;
    assert!(
        out.stdout.contains("noSuchName") || out.stderr.contains("noSuchName"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains(".1.3.6.1.2.1.1.99.0") || out.stderr.contains(".1.3.6.1.2.1.1.99.0")
    );

    // A wrong community gets no answer at all, like a real agent.
    let out = tool(
        "snmpget",
        &format!("127.0.0.1:{port}"),
        &["-v2c", "-c", "private", SYS_NAME],
    )
    .await;
    assert!(!out.ok && out.stderr.contains("Timeout"), "{}", out.stderr);
    assert!(sim.stats().bad_community >= 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn bulkget_returns_the_requested_repetitions() {
    let (sim, port, want) = one_agent().await;
    let after = |oid: &str, n: usize| -> Vec<(String, Option<String>)> {
        let a = arcs(oid);
        want.iter()
            .filter(|(o, _)| arcs(o) > a)
            .take(n)
            .cloned()
            .collect()
    };
    let rows = query(
        "snmpbulkget",
        port,
        &[
            "-v2c",
            "-c",
            "public",
            "-Cn1",
            "-Cr5",
            ".1.3.6.1.2.1.1.4",
            ".1.3.6.1.2.1.2.2.1.2",
        ],
    )
    .await;
    let mut w = after(".1.3.6.1.2.1.1.4", 1);
    w.extend(after(".1.3.6.1.2.1.2.2.1.2", 5));
    assert_same("bulkget -Cn1 -Cr5", &rows, &w);

    // 50 repetitions run across ifDescr into ifType and ifMtu.
    let rows = query(
        "snmpbulkget",
        port,
        &[
            "-v2c",
            "-c",
            "public",
            "-Cn0",
            "-Cr50",
            ".1.3.6.1.2.1.2.2.1.2",
        ],
    )
    .await;
    assert_same("bulkget -Cr50", &rows, &after(".1.3.6.1.2.1.2.2.1.2", 50));
    sim.shutdown().await;
}

#[tokio::test]
async fn three_agents_on_consecutive_ports_have_their_own_sysname() {
    let sim = start_sim(3).await;
    let base = sim.addr(0).expect("agent 0").port();
    for i in 0..3 {
        let port = sim.addr(i).expect("agent").port();
        assert_eq!(usize::from(port), usize::from(base) + i);
        let rows = query(
            "snmpget",
            port,
            &["-v2c", "-c", "public", SYS_NAME, SYS_UPTIME],
        )
        .await;
        assert_eq!(rows[0].1, format!("STRING: \"sim{i:05}\""));
        assert_eq!(sim.name(i), format!("sim{i:05}"));
        let ticks: u64 = rows[1].1.parse().expect("uptime ticks");
        assert!(ticks < 100 * 600, "{rows:?}");
    }
    let stats = sim.stats();
    assert_eq!(stats.requests, 3, "{stats:?}");
    assert_eq!(stats.responses, 3, "{stats:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn v3_no_auth_no_priv_matches_v2c() {
    let sim = start_sim_with(2, |c| c.v3_user = Some("simuser".into())).await;
    let port = sim.addr(1).expect("agent 1").port();
    let v3 = ["-v3", "-l", "noAuthNoPriv", "-u", "simuser"];
    let rows = query("snmpget", port, &[&v3[..], &[SYS_NAME]].concat()).await;
    assert_eq!(
        rows,
        [(SYS_NAME.to_string(), "STRING: \"sim00001\"".to_string())]
    );

    let want = expected("sim00001");
    let walk = query("snmpbulkwalk", port, &[&v3[..], &["-Cr20", ".1"]].concat()).await;
    assert_same(
        "v3 bulkwalk",
        strip_end_of_view("v3 bulkwalk", &walk),
        &want,
    );

    let target = format!("127.0.0.1:{port}");
    let out = tool(
        "snmpget",
        &target,
        &["-v3", "-l", "noAuthNoPriv", "-u", "nobody", SYS_NAME],
    )
    .await;
    assert!(
        !out.ok && out.stderr.contains("Unknown user name"),
        "{}",
        out.stderr
    );
    let auth = [
        "-v3",
        "-l",
        "authNoPriv",
        "-u",
        "simuser",
        "-a",
        "SHA",
        "-A",
        "password123",
    ];
    let out = tool("snmpget", &target, &[&auth[..], &[SYS_NAME]].concat()).await;
    assert!(
        !out.ok && out.stderr.contains("Unsupported security level"),
        "{}",
        out.stderr
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn v3_single_port_context_selects_the_device() {
    let data = Arc::new(Dataset::router24().expect("template parses"));
    let mut cfg = SimConfig::new(data);
    cfg.agents = 3;
    cfg.single_port = true;
    cfg.base_port = 0;
    cfg.v3_user = Some("simuser".into());
    let sim = timeout(Duration::from_secs(10), start(cfg))
        .await
        .expect("start in time")
        .expect("starts");
    let port = sim.addr(0).expect("addr").port();
    for i in 0..3 {
        let ctx = sim.name(i);
        let args = [
            "-v3",
            "-l",
            "noAuthNoPriv",
            "-u",
            "simuser",
            "-n",
            &ctx,
            SYS_NAME,
        ];
        let rows = query("snmpget", port, &args).await;
        assert_eq!(rows[0].1, format!("STRING: \"{ctx}\""));
    }
    let args = [
        "-v3",
        "-l",
        "noAuthNoPriv",
        "-u",
        "simuser",
        "-n",
        "nosuch",
        SYS_NAME,
    ];
    let out = tool("snmpget", &format!("127.0.0.1:{port}"), &args).await;
    assert!(
        !out.ok && out.stderr.contains("Bad context"),
        "unknown context must fail: {}",
        out.stderr
    );
    sim.shutdown().await;
}
