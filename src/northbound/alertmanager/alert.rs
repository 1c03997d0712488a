//! Alarm -> Alertmanager alert (API v2 `postableAlert`): pure, so that every owner of an alarm,
//! before and after a fail-over, sends the same labels.

use crate::model::{Alarm, UnixMillis, format_millis};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Alert {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) starts_at: String,
    pub(crate) ends_at: String,
    #[serde(rename = "generatorURL")]
    pub(crate) generator_url: String,
}

/// What every alert of this server shares.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub(crate) static_labels: BTreeMap<String, String>,
    /// Base of `generatorURL` (the web console), without a trailing slash.
    pub(crate) console: String,
}

/// The alert's identity in Alertmanager: the alarm's kind, element, severity and key, and the
/// configured labels. Nothing that differs between owners (server id, alarm id) is a label.
pub(crate) fn labels(alarm: &Alarm, ctx: &Context) -> BTreeMap<String, String> {
    let mut l = ctx.static_labels.clone();
    l.insert("alertname".into(), alarm.kind.clone());
    l.insert("element".into(), alarm.element.clone());
    l.insert("severity".into(), alarm.severity.as_str().into());
    l.insert("alarm_key".into(), alarm.key.clone());
    l
}

fn annotations(alarm: &Alarm) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    let summary = match &alarm.instance {
        Some(i) => format!("{} on {} ({i})", alarm.kind, alarm.element),
        None => format!("{} on {}", alarm.kind, alarm.element),
    };
    a.insert("summary".into(), summary);
    a.insert("description".into(), alarm.text.clone());
    a.insert("first_seen".into(), format_millis(alarm.first_seen));
    a.insert("count".into(), alarm.count.to_string());
    a.insert("alarm_id".into(), alarm.id.to_string());
    a.insert("owner".into(), alarm.server.to_string());
    a.insert("acknowledged".into(), alarm.acked_at.is_some().to_string());
    if let Some(by) = &alarm.acked_by {
        a.insert("acknowledged_by".into(), by.clone());
    }
    if let Some(at) = alarm.acked_at {
        a.insert("acknowledged_at".into(), format_millis(at));
    }
    a
}

/// Percent-encodes a URL fragment component (the element's name).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The alert of `alarm`, ending at `ends_at`: ahead of now while it is active (the lease), the
/// clear time once it cleared.
pub(crate) fn alert(alarm: &Alarm, ctx: &Context, ends_at: UnixMillis) -> Alert {
    Alert {
        labels: labels(alarm, ctx),
        annotations: annotations(alarm),
        starts_at: format_millis(alarm.first_seen),
        ends_at: format_millis(ends_at),
        generator_url: format!("{}/#/element/{}", ctx.console, encode(&alarm.element)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ServerId, Severity};

    fn alarm(server: u32) -> Alarm {
        Alarm {
            id: 77,
            key: "LinkDown:r1 paris:3".into(),
            kind: "LinkDown".into(),
            element: "r1 paris".into(),
            instance: Some("3".into()),
            severity: Severity::Major,
            text: "ifIndex 3 down".into(),
            first_seen: 1_700_000_000_000,
            last_seen: 1_700_000_060_000,
            count: 4,
            acked_by: None,
            acked_at: None,
            server: ServerId(server),
        }
    }

    fn ctx() -> Context {
        Context {
            static_labels: [("pool".to_string(), "paris".to_string())].into(),
            console: "https://ems:8780".into(),
        }
    }

    #[test]
    fn labels_name_the_alarm_and_not_its_owner() {
        let a = alert(&alarm(1), &ctx(), 1_700_000_120_000);
        let want: BTreeMap<String, String> = [
            ("alertname", "LinkDown"),
            ("element", "r1 paris"),
            ("severity", "major"),
            ("alarm_key", "LinkDown:r1 paris:3"),
            ("pool", "paris"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(a.labels, want);
        // Another owner after a fail-over: the same alert for Alertmanager.
        let mut moved = alarm(2);
        moved.acked_by = Some("ops".into());
        moved.acked_at = Some(1_700_000_100_000);
        let b = alert(&moved, &ctx(), 1_700_000_150_000);
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.starts_at, b.starts_at);
        assert_eq!(b.annotations["acknowledged_by"], "ops");
        assert_eq!(b.annotations["owner"], "2");
    }

    #[test]
    fn json_is_what_alertmanager_v2_takes() {
        let a = alert(&alarm(1), &ctx(), 1_700_000_120_000);
        let v = serde_json::to_value(&a).expect("json");
        assert_eq!(v["startsAt"], "2023-11-14T22:13:20.000Z");
        assert_eq!(v["endsAt"], "2023-11-14T22:15:20.000Z");
        assert_eq!(v["generatorURL"], "https://ems:8780/#/element/r1%20paris");
        assert_eq!(v["annotations"]["acknowledged"], "false");
        assert!(v["annotations"].get("acknowledged_by").is_none());
    }
}
