//! `emspool simulate --data FILE` with every value form snmpsim's recorded walks and docs use
//! (issue 19): a raw 4-octet IpAddress as in snmpsim's `linux-full-walk.snmprec`, dotted and
//! `64x` ones, `4x` and `4e` strings, a Latin-1 string, counters, gauges, timeticks, Counter64,
//! Opaque, NULL, OIDs. Net-SNMP's tools read it back from our simulator and from snmpsim
//! serving the same file: the two must agree on every object but the ones the simulator
//! documents as its own (sysName.0, sysUpTime.0), and its log must say it replaced those.
//! snmpsim's own recordings (its package's data/recorded, data/mib2dev) load whole, and
//! its 3,882-object linux-full-walk is served as snmpsim serves it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{self, SnmpAuth, Snmpsim, free_port, peer_tempdir, snmp_tool, wait_until};
use emspool::sim::{Dataset, SimConfig};
use emspool::testing::support;

const SYS_NAME: &str = ".1.3.6.1.2.1.1.5.0";
const SYS_UPTIME: &str = ".1.3.6.1.2.1.1.3.0";
const RAW_IP: &str = ".1.3.6.1.2.1.4.20.1.1.192.168.200.255";
const RAW_TEXT_IP: &str = ".1.3.6.1.2.1.4.22.1.3.2.74.125.77.125";

/// The data file, sorted by OID (snmpsim walks its files in line order).
fn forms_file() -> Vec<u8> {
    let mut f: Vec<u8> = Vec::new();
    let mut rec = |oid: &str, tag: &str, value: &[u8]| {
        f.extend_from_slice(format!("{oid}|{tag}|").as_bytes());
        f.extend_from_slice(value);
        f.push(b'\n');
    };
    rec("1.3.6.1.2.1.1.1.0", "4", b"emspool forms | plain text");
    rec("1.3.6.1.2.1.1.2.0", "6", b"1.3.6.1.4.1.8072.3.2.10");
    rec("1.3.6.1.2.1.1.3.0", "67", b"12345");
    rec(
        "1.3.6.1.2.1.1.4.0",
        "4x",
        hex(b"noc@example.net").as_bytes(),
    );
    rec("1.3.6.1.2.1.1.5.0", "4", b"recorded-name");
    rec("1.3.6.1.2.1.1.6.0", "4e", br#"rack\t4\x2c row \"B\""#);
    rec("1.3.6.1.2.1.1.7.0", "2", b"72");
    rec("1.3.6.1.2.1.2.2.1.5.1", "66", b"1000000000");
    rec("1.3.6.1.2.1.2.2.1.6.1", "4x", b"00005e005301");
    rec("1.3.6.1.2.1.2.2.1.10.1", "65", b"4294967295");
    // The raw octets, not text: 192.168.200.255.
    rec(&RAW_IP[1..], "64", &[192, 168, 200, 255]);
    rec("1.3.6.1.2.1.4.20.1.1.198.51.100.7", "64", b"198.51.100.7");
    rec("1.3.6.1.2.1.4.20.1.1.203.0.113.9", "64x", b"cb007109");
    // As in snmpsim's linux-full-walk.snmprec: 74.125.77.125 written as "J}M}".
    rec(&RAW_TEXT_IP[1..], "64", b"J}M}");
    rec("1.3.6.1.2.1.25.1.1.0", "67", b"8675309");
    rec("1.3.6.1.2.1.31.1.1.1.6.1", "70", b"18446744073709551615");
    // Opaque-wrapped float 12.5, as snmpsim records it (68x).
    rec("1.3.6.1.4.1.8072.9999.1.0", "68x", b"9f780441480000");
    rec("1.3.6.1.4.1.8072.9999.2.0", "5", b"");
    rec("1.3.6.1.4.1.8072.9999.3.0", "4", b"caf\xe9");
    rec("1.3.6.1.4.1.8072.9999.4.0", "2", b"-2147483648");
    f
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A whole-view bulk walk, `-On -Ot`, as (OID, value) rows. Its output is read while it runs
/// (a recorded walk prints thousands of lines), and `timeout` bounds it.
fn walk(port: u16, community: &str) -> Vec<(String, String)> {
    let out = Command::new("timeout")
        .arg("120")
        .arg(common::find_tool("snmpbulkwalk"))
        .args(SnmpAuth::v2c(community).args())
        .args(["-On", "-Ot", "-t", "2", "-r", "1"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(".1")
        // Numeric OIDs only, and no MIB loading or persistent files of root's.
        .env("MIBS", "")
        .env("MIBDIRS", "/nonexistent")
        .env("SNMPCONFPATH", "/nonexistent")
        .env(
            "SNMP_PERSISTENT_DIR",
            std::env::temp_dir().join("emspool-snmp-cli"),
        )
        .stdin(Stdio::null())
        .output()
        .expect("run snmpbulkwalk");
    assert!(
        out.status.success(),
        "snmpbulkwalk of port {port}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(" = ") {
            Some((o, v)) => (o.to_string(), v.trim_end().to_string()),
            None => (String::new(), l.trim_end().to_string()),
        })
        .collect()
}

/// The rows before the walk's trailing endOfMibView ones.
fn past_the_end(rows: &[(String, String)]) -> &[(String, String)] {
    let end = rows
        .iter()
        .rposition(|(_, v)| !v.starts_with("No more variables left in this MIB View"))
        .map_or(0, |i| i + 1);
    assert!(
        end < rows.len(),
        "the walk does not end at the view's end: {rows:#?}"
    );
    &rows[..end]
}

fn value_of<'a>(rows: &'a [(String, String)], oid: &str) -> &'a str {
    rows.iter()
        .find(|(o, _)| o == oid)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{oid} not in the walk: {rows:#?}"))
}

#[test]
fn the_cli_serves_every_snmpsim_value_form_as_snmpsim_does() {
    let dir = peer_tempdir("sim-forms");
    let file = dir.path().join("forms.snmprec");
    std::fs::write(&file, forms_file()).expect("write the data file");

    let port = free_port();
    let mut cmd = Command::new(common::emspool_bin());
    cmd.args(["sim", "--data"])
        .arg(&file)
        .args(["--base-port", &port.to_string()]);
    let mut sim = support::ChildGuard::spawn_piped("emspool-sim", cmd, dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    sim.wait_line("simulating 1 SNMP agents", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        common::snmp_responds(addr, &SnmpAuth::v2c("public"), &SYS_NAME[1..]).then_some(())
    })
    .unwrap_or_else(|e| panic!("simulator not answering: {e}\n{}", sim.log_tail()));
    let ours = walk(port, "public");

    // What a person reads: every form comes back as the value it stands for.
    for (oid, want) in [
        (RAW_IP, "IpAddress: 192.168.200.255"),
        (RAW_TEXT_IP, "IpAddress: 74.125.77.125"),
        (
            ".1.3.6.1.2.1.4.20.1.1.198.51.100.7",
            "IpAddress: 198.51.100.7",
        ),
        (
            ".1.3.6.1.2.1.4.20.1.1.203.0.113.9",
            "IpAddress: 203.0.113.9",
        ),
        (
            ".1.3.6.1.2.1.1.1.0",
            "STRING: \"emspool forms | plain text\"",
        ),
        (".1.3.6.1.2.1.1.4.0", "STRING: \"noc@example.net\""),
        (".1.3.6.1.2.1.1.6.0", "STRING: \"rack\t4, row \\\"B\\\"\""),
        (".1.3.6.1.2.1.2.2.1.6.1", "Hex-STRING: 00 00 5E 00 53 01"),
        (".1.3.6.1.2.1.2.2.1.10.1", "Counter32: 4294967295"),
        (".1.3.6.1.2.1.2.2.1.5.1", "Gauge32: 1000000000"),
        (".1.3.6.1.2.1.25.1.1.0", "8675309"),
        (
            ".1.3.6.1.2.1.31.1.1.1.6.1",
            "Counter64: 18446744073709551615",
        ),
        (".1.3.6.1.4.1.8072.9999.3.0", "Hex-STRING: 63 61 66 E9"),
        (".1.3.6.1.4.1.8072.9999.4.0", "INTEGER: -2147483648"),
        (SYS_NAME, "STRING: \"sim00000\""),
    ] {
        assert_eq!(value_of(&ours, oid), want, "{oid}");
    }
    assert!(value_of(&ours, ".1.3.6.1.4.1.8072.9999.1.0").contains("12.5"));
    let ticks: u64 = value_of(&ours, SYS_UPTIME).parse().expect("raw timeticks");
    assert!(
        ticks < 100 * 120,
        "sysUpTime {ticks} is not the simulator's own"
    );
    // A Get reads the raw IpAddress too, not only a walk.
    let got = common::snmp_get(addr, &SnmpAuth::v2c("public"), &RAW_IP[1..])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, "192.168.200.255");

    // The log says what it replaced, with the file's values.
    let log = std::fs::read_to_string(sim.stderr_path()).expect("simulator log");
    for needle in [
        "overrides sysName.0 (1.3.6.1.2.1.1.5.0)",
        "instead of the data file's \"recorded-name\"",
        "overrides sysUpTime.0 (1.3.6.1.2.1.1.3.0)",
        "instead of the data file's 12345",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }

    // snmpsim serving the same file: the same objects and values, but for our two overrides.
    let mut snmpsim = Snmpsim::start(1, &file);
    let theirs = walk(snmpsim.port(), &snmpsim.communities()[0]);
    snmpsim.stop();
    assert_eq!(value_of(&theirs, SYS_NAME), "STRING: \"recorded-name\"");
    // How many endOfMibView repetitions end a bulk walk is the agent's choice (RFC 3416 4.2.3).
    let (ours, theirs) = (past_the_end(&ours), past_the_end(&theirs));
    let oids = |rows: &[(String, String)]| rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    assert_eq!(oids(ours), oids(theirs), "the walks list different objects");
    for ((oid, a), (_, b)) in ours.iter().zip(theirs) {
        if oid != SYS_NAME && oid != SYS_UPTIME {
            assert_eq!(a, b, "{oid}: emspool sim and snmpsim differ");
        }
    }
    let st = sim.terminate();
    assert!(st.success(), "{st}\n{}", sim.log_tail());
}

#[tokio::test]
async fn exception_records_answer_a_get_and_walks_pass_over_them() {
    let data = Dataset::parse_bytes(
        b"1.3.6.1.4.1.8072.9999.1.0|2|1\n\
          1.3.6.1.4.1.8072.9999.2.0|128|\n\
          1.3.6.1.4.1.8072.9999.3.0|129|\n\
          1.3.6.1.4.1.8072.9999.4.0|2|4\n\
          1.3.6.1.4.1.8072.9999.5.0|130|\n",
    )
    .expect("parses");
    let mut cfg = SimConfig::new(Arc::new(data));
    cfg.agents = 1;
    let sim = tokio::time::timeout(Duration::from_secs(10), support::start_sim(cfg))
        .await
        .expect("start in time")
        .expect("starts");
    let port = sim.addr(0).expect("agent").port();
    let rows = tokio::task::spawn_blocking(move || {
        let mut args = SnmpAuth::v2c("public").args();
        args.extend(["-On", "-t", "2", "-r", "1"].map(String::from));
        args.push(format!("127.0.0.1:{port}"));
        let mut get = args.clone();
        get.extend([".1.3.6.1.4.1.8072.9999.2.0", ".1.3.6.1.4.1.8072.9999.3.0"].map(String::from));
        let got = snmp_tool("snmpget", &get).unwrap_or_else(|e| panic!("{e}"));
        args.push(".1.3.6.1.4.1.8072.9999".into());
        let walked = snmp_tool("snmpwalk", &args).unwrap_or_else(|e| panic!("{e}"));
        (got, walked)
    })
    .await
    .expect("tools");
    let (got, walked) = rows;
    assert!(
        got.contains(".1.3.6.1.4.1.8072.9999.2.0 = No Such Object available"),
        "{got}"
    );
    assert!(
        got.contains(".1.3.6.1.4.1.8072.9999.3.0 = No Such Instance currently exists"),
        "{got}"
    );
    let lines: Vec<&str> = walked.lines().collect();
    assert_eq!(
        lines,
        [
            ".1.3.6.1.4.1.8072.9999.1.0 = INTEGER: 1",
            ".1.3.6.1.4.1.8072.9999.4.0 = INTEGER: 4",
            // The last record is an exception: nothing with a value follows.
            ".1.3.6.1.4.1.8072.9999.4.0 = No more variables left in this MIB View \
             (It is past the end of the MIB tree)"
        ],
        "{walked}"
    );
    sim.shutdown().await;
}

/// snmpsim's own recorded walks and generated MIB data, as its package ships them.
fn snmpsim_data_files() -> Vec<PathBuf> {
    let lib = crate::common::snmpsim::snmpsim_venv().join("lib");
    let site = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e} (tests/install-peers.sh)", lib.display()))
        .filter_map(|e| e.ok().map(|e| e.path().join("site-packages/snmpsim/data")))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no snmpsim/data under {}", lib.display()));
    let mut files = Vec::new();
    for sub in ["recorded", "mib2dev"] {
        for e in std::fs::read_dir(site.join(sub))
            .expect("snmpsim data dir")
            .flatten()
        {
            if e.path().extension().is_some_and(|x| x == "snmprec") {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files
}

#[tokio::test]
async fn snmpsims_own_recordings_load_and_are_served_as_snmpsim_serves_them() {
    let files = snmpsim_data_files();
    assert!(files.len() >= 8, "{files:?}");
    for f in &files {
        let data = Dataset::load(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let text = std::fs::read(f).expect("read");
        let records = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty() && !l.trim_ascii().starts_with(b"#"))
            .count();
        assert_eq!(data.len(), records, "{}: records lost", f.display());
    }
    // The full walk with raw IpAddress octets (tcpConnRemAddress): every object as snmpsim
    // serves it, but the two the simulator makes its own.
    let linux = files
        .iter()
        .find(|f| f.ends_with("recorded/linux-full-walk.snmprec"))
        .expect("linux-full-walk.snmprec");
    let cfg = SimConfig::new(Arc::new(Dataset::load(linux).expect("loads")));
    let sim = tokio::time::timeout(Duration::from_secs(10), support::start_sim(cfg))
        .await
        .expect("start in time")
        .expect("starts");
    let port = sim.addr(0).expect("agent").port();
    let path = linux.clone();
    let (ours, theirs) = tokio::task::spawn_blocking(move || {
        let ours = walk(port, "public");
        let mut snmpsim = Snmpsim::start(1, &path);
        let theirs = walk(snmpsim.port(), &snmpsim.communities()[0]);
        snmpsim.stop();
        (ours, theirs)
    })
    .await
    .expect("walks");
    sim.shutdown().await;
    let (ours, theirs) = (past_the_end(&ours), past_the_end(&theirs));
    assert!(ours.len() > 3000, "{} objects", ours.len());
    assert_eq!(ours.len(), theirs.len(), "number of objects");
    let mut raw_ips = 0;
    for ((oid, a), (oid2, b)) in ours.iter().zip(theirs) {
        assert_eq!(oid, oid2);
        if oid != SYS_NAME && oid != SYS_UPTIME {
            assert_eq!(a, b, "{oid}: emspool sim and snmpsim differ");
        }
        raw_ips +=
            usize::from(oid.starts_with(".1.3.6.1.2.1.6.13.1.4.") && a.starts_with("IpAddress: "));
    }
    assert!(raw_ips > 0, "no tcpConnRemAddress in the walk");
    assert_eq!(value_of(ours, SYS_NAME), "STRING: \"sim00000\"");
    assert_eq!(value_of(theirs, SYS_NAME), "STRING: \"tt\"");
}
