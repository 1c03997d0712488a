//! `emspool elements NAME`: one element in full (inventory entry, owner, last poll, system
//! data, interfaces, active alarms), as text or as JSON.

use super::render::{alarms, cell, table};
use crate::model::{Alarm, ElementView, Interface, Protocol, ServerId, format_millis};
use std::fmt::Write;

/// The JSON of the detail view: the element's view as `GET /api/v1/elements/{name}` answers
/// it, plus its active alarms (`GET /api/v1/alarms?element=`).
#[derive(serde::Serialize)]
pub(crate) struct Detail {
    #[serde(flatten)]
    pub(crate) view: ElementView,
    pub(crate) alarms: Vec<Alarm>,
    /// The alarm answer missed these members (their alarms are not listed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) alarms_missing: Vec<ServerId>,
}

pub(crate) fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Snmp => "snmp",
        Protocol::Netconf => "netconf",
    }
}

/// ifAdminStatus/ifOperStatus numbers as IF-MIB names them.
fn status(v: u8) -> String {
    match v {
        1 => "up".into(),
        2 => "down".into(),
        3 => "testing".into(),
        4 => "unknown".into(),
        5 => "dormant".into(),
        6 => "notPresent".into(),
        7 => "lowerLayerDown".into(),
        0 => "-".into(),
        n => n.to_string(),
    }
}

fn speed(bps: u64) -> String {
    match bps {
        b if b >= 1_000_000_000 && b % 1_000_000_000 == 0 => format!("{}G", b / 1_000_000_000),
        b if b >= 1_000_000 && b % 1_000_000 == 0 => format!("{}M", b / 1_000_000),
        b if b >= 1_000 && b % 1_000 == 0 => format!("{}k", b / 1_000),
        b => b.to_string(),
    }
}

fn interfaces(ifs: &[Interface]) -> String {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let rows: Vec<Vec<String>> = ifs
        .iter()
        .map(|i| {
            let c = i.counters();
            let has = |bit| c.is_some_and(|c| c.has(bit));
            use crate::model::interface::has;
            vec![
                i.index.to_string(),
                i.name().unwrap_or_default().to_owned(),
                i.descr().to_owned(),
                status(i.admin_status),
                status(i.oper_status),
                c.filter(|_| has(has::SPEED))
                    .map_or_else(|| "-".to_owned(), |c| speed(c.speed_bps)),
                opt(i.in_octets()),
                opt(i.out_octets()),
                c.filter(|_| has(has::IN_ERRORS) || has(has::OUT_ERRORS))
                    .map_or_else(
                        || "-".to_owned(),
                        |c| format!("{}/{}", c.in_errors, c.out_errors),
                    ),
                i.alias().unwrap_or_default().to_owned(),
            ]
        })
        .collect();
    table(
        &[
            "INDEX",
            "NAME",
            "DESCR",
            "ADMIN",
            "OPER",
            "SPEED",
            "IN OCTETS",
            "OUT OCTETS",
            "ERRORS IN/OUT",
            "ALIAS",
        ],
        &rows,
    )
}

/// Hundredths of a second as `3d 4h 5m 6s`.
fn uptime(ticks: u32) -> String {
    let s = u64::from(ticks) / 100;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

pub(crate) fn text(d: &Detail) -> String {
    let v = &d.view;
    let e = &v.element;
    let st = &v.status;
    let mut fields: Vec<(&str, String)> = vec![
        ("element", e.name.to_string()),
        ("address", e.address.to_string()),
        ("protocol", protocol(e.protocol).to_owned()),
        ("credential", e.credential.to_string()),
        (
            "interval",
            e.interval.map_or_else(
                || "pool default ([poll] interval)".to_owned(),
                |i| humantime::format_duration(i).to_string(),
            ),
        ),
        (
            "owner",
            v.owner.map_or_else(
                || "none (not assigned)".to_owned(),
                |o| format!("server {o}"),
            ),
        ),
    ];
    if let Some(p) = e.pin {
        fields.push(("pinned to", format!("server {p}")));
    }
    fields.push(("state", st.state.to_string()));
    if let Some(r) = &st.reason {
        fields.push(("reason", r.clone()));
    }
    fields.push((
        "last poll",
        match (st.last_poll, st.last_duration_ms) {
            (Some(t), Some(ms)) => format!("{} ({ms} ms)", format_millis(t)),
            (Some(t), None) => format_millis(t),
            _ => "never".to_owned(),
        },
    ));
    if let Some(n) = &st.sys_name {
        fields.push(("name", n.clone()));
    }
    if let Some(d) = &st.sys_descr {
        fields.push(("description", d.to_string()));
    }
    if let Some(u) = st.sys_uptime {
        fields.push(("uptime", uptime(u)));
    }
    if let Some(b) = st.boot_time {
        fields.push(("booted", format_millis(b)));
    }
    if !st.capabilities.is_empty() {
        fields.push(("capabilities", st.capabilities.join(" ")));
    }
    fields.push(("active alarms", v.active_alarms.to_string()));
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, val) in &fields {
        let _ = writeln!(out, "{k:<width$}  {}", cell(val));
    }
    let _ = writeln!(out, "\ninterfaces ({}):", st.interfaces.len());
    if st.interfaces.is_empty() {
        out.push_str(match e.protocol {
            Protocol::Snmp => "  none in the last answer (IF-MIB ifTable)\n",
            Protocol::Netconf => {
                "  none in the last answer (ietf-interfaces: interfaces-state, or interfaces with oper-status)\n"
            }
        });
    } else {
        out.push_str(&interfaces(&st.interfaces));
    }
    let _ = writeln!(out, "\nactive alarms ({}):", d.alarms.len());
    if !d.alarms.is_empty() {
        out.push_str(&alarms(&d.alarms));
    }
    out.push_str(&super::render::partial_note(
        !d.alarms_missing.is_empty(),
        &d.alarms_missing,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Element, ElementState, ElementStatus, Severity};

    fn detail() -> Detail {
        let element: Element = serde_json::from_value(serde_json::json!({
            "name": "ne-1", "address": "127.0.0.1:830", "protocol": "netconf",
            "credential": "lab-nc", "pin": 2,
        }))
        .expect("element");
        let status = ElementStatus {
            state: ElementState::Up,
            last_poll: Some(1_764_770_000_000),
            last_duration_ms: Some(12),
            sys_name: Some("ne-one".into()),
            sys_uptime: Some(9_000_000),
            interfaces: vec![
                Interface::with_labels(1, "eth0", Some("eth0"), Some("uplink")).with_status(1, 1),
                Interface::with_labels(2, "eth1", Some("eth1"), None).with_status(1, 2),
            ],
            ..ElementStatus::default()
        };
        let alarm = Alarm {
            id: 7,
            key: "LinkDown:ne-1:2".into(),
            kind: "LinkDown".into(),
            element: "ne-1".into(),
            instance: Some("2".into()),
            severity: Severity::Major,
            text: "eth1 down".into(),
            first_seen: 1_764_770_000_000,
            last_seen: 1_764_770_000_000,
            count: 1,
            acked_by: None,
            acked_at: None,
            server: ServerId(2),
        };
        Detail {
            view: ElementView {
                element,
                owner: Some(ServerId(2)),
                status,
                active_alarms: 1,
            },
            alarms: vec![alarm],
            alarms_missing: vec![],
        }
    }

    #[test]
    fn the_detail_shows_protocol_owner_poll_interfaces_and_alarms() {
        let t = text(&detail());
        for want in [
            "protocol       netconf",
            "owner          server 2",
            "pinned to      server 2",
            "last poll      2025-12-03T",
            "(12 ms)",
            "uptime         1d 1h 0m 0s",
            "interfaces (2):",
            "uplink",
            "active alarms (1):",
            "LinkDown",
            "eth1 down",
        ] {
            assert!(t.contains(want), "{want:?} missing in\n{t}");
        }
        let rows: Vec<&str> = t.lines().filter(|l| l.starts_with("2 ")).collect();
        assert!(
            rows.iter()
                .any(|l| l.contains("eth1") && l.contains("down")),
            "{t}"
        );
    }

    #[test]
    fn the_detail_json_is_the_element_view_with_its_alarms() {
        let v = serde_json::to_value(detail()).expect("json");
        assert_eq!(v["name"], "ne-1");
        assert_eq!(v["protocol"], "netconf");
        assert_eq!(v["owner"], 2);
        assert_eq!(v["status"]["interfaces"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["alarms"][0]["key"], "LinkDown:ne-1:2");
        assert!(v.get("alarms_missing").is_none());
    }
}
