//! Conformance tests of the rules from fixture files, in the style of holo's: each input under
//! `tests/data/rules/` (a trap datagram in hex, a NETCONF notification in XML, a pair of poll
//! results in JSON) has beside it, in `NAME.changes.json`, the alarm changes the rules must
//! produce. `EMSPOOL_BLESS=1 cargo test rules::conformance` writes the expected files from
//! the current rules (review the diff before committing it).

use super::{netconf, poll, trap};
use crate::alarms::Change;
use crate::model::{ElementStatus, Interface, Outcome, PollData};
use crate::snmp::trap::Decoder;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/rules")
        .join(kind)
}

/// Every fixture of `kind` whose name ends in `suffix`, with its expected changes checked
/// against `run(input)`. Fails on a directory without fixtures: a test that checks nothing.
fn check_all(kind: &str, suffix: &str, run: impl Fn(&str) -> Vec<Change>) {
    let bless = std::env::var("EMSPOOL_BLESS").is_ok_and(|v| v == "1");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir(kind))
        .expect("fixture directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    inputs.sort();
    assert!(
        !inputs.is_empty(),
        "no {suffix} fixtures in {}",
        dir(kind).display()
    );
    let mut failed = Vec::new();
    for input in &inputs {
        let text = std::fs::read_to_string(input).expect("fixture");
        let got = run(&text);
        let name = input.to_string_lossy();
        let expected_path = PathBuf::from(format!(
            "{}.changes.json",
            &name[..name.len() - suffix.len()]
        ));
        if bless {
            let json = serde_json::to_string_pretty(&got).expect("json") + "\n";
            std::fs::write(&expected_path, json).expect("write expected");
            continue;
        }
        let expected: Vec<Change> = serde_json::from_str(
            &std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        if got != expected {
            failed.push(format!(
                "{}:\n  expected {expected:?}\n  got      {got:?}",
                input.display()
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn traps() {
    let decoder = Decoder::new(&[], &[]).expect("decoder");
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
    check_all("trap", ".hex", |hex| {
        let hex = hex.trim();
        let datagram: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let t = decoder
            .decode(&datagram, source, 1_000)
            .expect("decodes")
            .trap;
        trap::Mapper::new(trap::MapRules::default()).on_trap("ne-1", &t, 1_000)
    });
}

#[test]
fn netconf_notifications() {
    check_all("netconf", ".xml", |xml| {
        let n = match crate::netconf::xml::parse_incoming(xml.as_bytes()) {
            Ok(crate::netconf::xml::Incoming::Notification(n)) => n,
            other => panic!("not a notification: {other:?}"),
        };
        // The poller's table: eth0 and eth1 enabled and up. Session 2 is this server's own.
        let mut ifs = [
            Interface::new(1, "eth0", None).with_status(1, 1),
            Interface::new(2, "eth1", None).with_status(1, 1),
        ];
        netconf::interpret(&n, &|id| id == 2, &mut ifs)
    });
}

/// One poll result of a fixture: `{"answered": {...}}`, `{"unreachable": why}` or
/// `{"failed": why}`; interfaces as `[ifIndex, ifDescr, ifAdminStatus, ifOperStatus]`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum PollFixture {
    Answered {
        sys_uptime: Option<u32>,
        interfaces: Vec<(u32, String, u8, u8)>,
    },
    Unreachable(String),
    Failed(String),
}

impl PollFixture {
    fn outcome(self) -> Outcome {
        match self {
            PollFixture::Answered {
                sys_uptime,
                interfaces,
            } => Outcome::Answered(PollData {
                sys_uptime,
                interfaces: interfaces
                    .iter()
                    .map(|(i, d, a, o)| Interface::new(*i, d, None).with_status(*a, *o))
                    .collect(),
                ..PollData::default()
            }),
            PollFixture::Unreachable(why) => Outcome::Unreachable(why),
            PollFixture::Failed(why) => Outcome::Failed(why),
        }
    }
}

#[derive(Deserialize)]
struct Polls {
    polls: Vec<PollFixture>,
}

#[test]
fn poll_pairs() {
    check_all("poll", ".polls.json", |json| {
        let polls: Polls = serde_json::from_str(json).expect("fixture");
        let rules = poll::Rules::default();
        let mut status = ElementStatus::default();
        let mut changes = Vec::new();
        // The changes of the last poll, after the earlier ones set the status up.
        for (i, p) in polls.polls.into_iter().enumerate() {
            let now = 1_000 * (i as i64 + 1);
            (status, changes) = poll::evaluate(&status, p.outcome(), now, 5, &rules);
        }
        changes
    });
}
