//! What a NETCONF notification (RFC 5277) means for its element ([`interpret`], pure):
//! - ietf-netconf-notifications (RFC 6470) `netconf-config-change`, `netconf-session-start`,
//!   `netconf-session-end`, `netconf-capability-change`, `netconf-confirmed-commit` become
//!   events of kind `netconf.config-change`, `netconf.session-start`, ... (our own sessions'
//!   start and end are left out).
//! - ietf-alarms (RFC 8632) `alarm-notification` raises or clears an alarm whose kind is the
//!   alarm type (prefix removed) and whose instance is the resource (and type qualifier).
//! - An interface notification - any event with an `oper-status` leaf and an interface name
//!   (`name`, `if-name`, `interface`, `interface-name`), or an event named `link-up` /
//!   `link-down` (any case) - reports a link state: LinkDown is raised or cleared at once for an
//!   interface the poller knows, and the event is logged.
//! - Anything else becomes a `netconf.notification` event with its leaves as text.

use super::link;
use crate::alarms::Change;
use crate::model::{Interface, Severity};
use crate::netconf::xml::{NS_ALARMS, NS_NC_NOTIFICATIONS, Notification};

pub(crate) const KIND_CONFIG_CHANGE: &str = "netconf.config-change";
pub(crate) const KIND_SESSION_START: &str = "netconf.session-start";
pub(crate) const KIND_SESSION_END: &str = "netconf.session-end";
pub(crate) const KIND_CAPABILITY_CHANGE: &str = "netconf.capability-change";
pub(crate) const KIND_CONFIRMED_COMMIT: &str = "netconf.confirmed-commit";
pub(crate) const KIND_OTHER: &str = "netconf.notification";

const MAX_TEXT: usize = 600;

fn clip(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// `own(session_id)` says whether a NETCONF session is one of ours; `interfaces` is the
/// element's interface table as the poller keeps it: a link notification updates the oper
/// status there, so that the next poll sees the change as already known.
pub(crate) fn interpret(
    n: &Notification,
    own: &dyn Fn(u32) -> bool,
    interfaces: &mut [Interface],
) -> Vec<Change> {
    let event = |kind: &'static str, text: String| Change::event(kind, Severity::Info, clip(text));
    let who = |prefix: &str| {
        let user = n.leaf(&format!("{prefix}username")).unwrap_or("?");
        let sid = n.leaf(&format!("{prefix}session-id")).unwrap_or("?");
        match n.leaf(&format!("{prefix}source-host")) {
            Some(h) => format!("{user} (session {sid} from {h})"),
            None => format!("{user} (session {sid})"),
        }
    };
    let is_own = |prefix: &str| {
        n.leaf(&format!("{prefix}session-id"))
            .and_then(|s| s.parse().ok())
            .is_some_and(own)
    };
    if n.ns == NS_NC_NOTIFICATIONS {
        match n.name.as_str() {
            "netconf-config-change" => {
                let datastore = n.leaf("datastore").unwrap_or("running");
                let edits: Vec<String> = n
                    .leaves
                    .iter()
                    .filter(|(p, _)| p == "edit/target" || p == "edit/operation")
                    .map(|(p, v)| {
                        if p == "edit/operation" {
                            format!("({v})")
                        } else {
                            v.clone()
                        }
                    })
                    .collect();
                let edits = if edits.is_empty() {
                    String::new()
                } else {
                    format!(": {}", edits.join(" "))
                };
                return vec![event(
                    KIND_CONFIG_CHANGE,
                    format!(
                        "{datastore} configuration changed by {}{edits}",
                        who("changed-by/")
                    ),
                )];
            }
            "netconf-session-start" | "netconf-session-end" if is_own("") => return vec![],
            "netconf-session-start" => {
                return vec![event(
                    KIND_SESSION_START,
                    format!("NETCONF session of {} started", who("")),
                )];
            }
            "netconf-session-end" => {
                let why = n.leaf("termination-reason").unwrap_or("unknown");
                let killer = n
                    .leaf("killed-by")
                    .map(|k| format!(", killed by session {k}"))
                    .unwrap_or_default();
                return vec![event(
                    KIND_SESSION_END,
                    format!("NETCONF session of {} ended: {why}{killer}", who("")),
                )];
            }
            "netconf-capability-change" => {
                let mut parts = Vec::new();
                for (p, v) in &n.leaves {
                    if let Some(what) = p.strip_suffix("-capability") {
                        parts.push(format!("{what} {v}"));
                    }
                }
                return vec![event(
                    KIND_CAPABILITY_CHANGE,
                    format!("capabilities changed: {}", parts.join(", ")),
                )];
            }
            "netconf-confirmed-commit" => {
                let what = n.leaf("confirm-event").unwrap_or("?");
                return vec![event(
                    KIND_CONFIRMED_COMMIT,
                    format!("confirmed commit {what} by {}", who("")),
                )];
            }
            _ => {}
        }
    }
    if n.ns == NS_ALARMS && n.name == "alarm-notification" {
        if let Some(a) = alarm_change(n) {
            return vec![a];
        }
    }
    let mut out = Vec::new();
    if let Some(change) = link_state(n).and_then(|l| link_change(l, interfaces)) {
        out.push(change);
    }
    let leaves: Vec<String> = n.leaves.iter().map(|(p, v)| format!("{p}={v}")).collect();
    out.push(event(
        KIND_OTHER,
        format!("{}: {}", n.name, leaves.join(", ")),
    ));
    out
}

fn alarm_change(n: &Notification) -> Option<Change> {
    let resource = n.leaf("resource")?;
    let type_id = n.leaf("alarm-type-id")?;
    let kind: String = type_id
        .rsplit(':')
        .next()
        .unwrap_or(type_id)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(64)
        .collect();
    if kind.is_empty() {
        return None;
    }
    let instance = match n.leaf("alarm-type-qualifier").filter(|q| !q.is_empty()) {
        Some(q) => format!("{resource}/{q}"),
        None => resource.to_owned(),
    };
    let severity = match n.leaf("perceived-severity")? {
        "cleared" => {
            return Some(Change::clear(
                kind,
                Some(instance),
                "cleared by the element",
            ));
        }
        "critical" => Severity::Critical,
        "major" => Severity::Major,
        "minor" => Severity::Minor,
        "warning" => Severity::Warning,
        _ => Severity::Indeterminate,
    };
    Some(Change::raise(
        kind,
        Some(instance),
        severity,
        clip(n.leaf("alarm-text").unwrap_or(type_id).to_owned()),
    ))
}

/// A link state reported by a notification, by interface name.
struct LinkState {
    interface: String,
    up: bool,
    text: String,
}

fn link_state(n: &Notification) -> Option<LinkState> {
    let name_leaf = |suffix: &str| {
        n.leaves
            .iter()
            .find(|(p, _)| p == suffix || p.ends_with(&format!("/{suffix}")))
            .map(|(_, v)| v.clone())
    };
    let interface = ["if-name", "interface-name", "interface", "name"]
        .iter()
        .find_map(|s| name_leaf(s))?;
    let event = n.name.to_ascii_lowercase().replace('_', "-");
    let up = match name_leaf("oper-status").as_deref() {
        Some(s) => s == "up",
        None if event == "link-up" || event == "linkup" => true,
        None if event == "link-down" || event == "linkdown" => false,
        None => return None,
    };
    Some(LinkState {
        text: format!(
            "interface {interface} is {} ({} notification)",
            if up { "up" } else { "down" },
            n.name
        ),
        interface,
        up,
    })
}

/// Only interfaces the poller knows: the next poll must be able to clear what a notification
/// raised, and LinkDown is keyed by ifIndex.
fn link_change(l: LinkState, interfaces: &mut [Interface]) -> Option<Change> {
    let i = interfaces.iter_mut().find(|i| i.is_called(&l.interface))?;
    let instance = link::instance(i.index);
    if l.up {
        i.oper_status = 1;
        return Some(link::up(instance, l.text));
    }
    i.oper_status = 2;
    (i.admin_status == 1).then(|| link::down(instance, link::down_text(i, " (notification)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notif(ns: &str, name: &str, leaves: &[(&str, &str)]) -> Notification {
        Notification {
            event_time: Some("2026-01-01T00:00:00Z".into()),
            ns: ns.into(),
            name: name.into(),
            leaves: leaves
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn config_change_and_own_sessions() {
        let n = notif(
            NS_NC_NOTIFICATIONS,
            "netconf-config-change",
            &[
                ("changed-by/username", "admin"),
                ("changed-by/session-id", "5"),
                ("edit/target", "/sys:system"),
                ("edit/operation", "create"),
            ],
        );
        let a = interpret(&n, &|_| false, &mut []);
        assert!(
            matches!(&a[..], [Change::Event { kind, text, .. }]
            if kind == KIND_CONFIG_CHANGE && text == "running configuration changed by admin (session 5): /sys:system (create)"),
            "{a:?}"
        );
        let start = notif(
            NS_NC_NOTIFICATIONS,
            "netconf-session-start",
            &[("username", "u"), ("session-id", "9")],
        );
        assert!(interpret(&start, &|id| id == 9, &mut []).is_empty());
        assert_eq!(interpret(&start, &|_| false, &mut []).len(), 1);
    }

    #[test]
    fn alarms_raise_and_clear() {
        let mk = |sev| {
            notif(
                NS_ALARMS,
                "alarm-notification",
                &[
                    ("resource", "/if:interfaces/if:interface[if:name='eth1']"),
                    ("alarm-type-id", "acme:link-alarm"),
                    ("alarm-type-qualifier", ""),
                    ("perceived-severity", sev),
                    ("alarm-text", "link failure"),
                ],
            )
        };
        assert!(matches!(&interpret(&mk("major"), &|_| false, &mut [])[..],
            [Change::Raise { kind, severity: Severity::Major, .. }] if kind == "link-alarm"));
        assert!(
            matches!(&interpret(&mk("cleared"), &|_| false, &mut [])[..],
            [Change::Clear { kind, .. }] if kind == "link-alarm")
        );
    }

    #[test]
    fn interface_notifications_are_links() {
        let mut ifs = [
            Interface::new(3, "eth1", None).with_status(1, 1),
            Interface::new(4, "eth2", None).with_status(1, 2),
        ];
        let n = notif(
            "urn:x",
            "link-state",
            &[("if-name", "eth1"), ("oper-status", "down")],
        );
        let a = interpret(&n, &|_| false, &mut ifs);
        assert!(
            matches!(&a[0], Change::Raise { kind, instance: Some(i), severity: Severity::Major, .. } if kind == "LinkDown" && i == "3"),
            "{a:?}"
        );
        assert_eq!(ifs[0].oper_status, 2, "the table follows the notification");
        assert!(matches!(&a[1], Change::Event { kind, .. } if kind == KIND_OTHER));
        let n = notif("urn:x", "linkUp", &[("interface/name", "eth2")]);
        assert!(matches!(
            &interpret(&n, &|_| false, &mut ifs)[0],
            Change::Clear { kind, instance: Some(i), .. } if kind == "LinkDown" && i == "4"
        ));
        assert_eq!(ifs[1].oper_status, 1);
        let n = notif("urn:x", "linkUp", &[("interface/name", "unknown9")]);
        assert_eq!(
            interpret(&n, &|_| false, &mut ifs).len(),
            1,
            "an interface the poller does not know is only an event"
        );
        let n = notif("urn:x", "fan-failure", &[("name", "fan1")]);
        let a = interpret(&n, &|_| false, &mut ifs);
        assert_eq!(a.len(), 1, "not a link: {a:?}");
    }
}
