//! Notifications (RFC 5277): what they mean to emspool, and the reactor thread that reads
//! every subscribed session without holding a thread per session.
//!
//! Meaning ([`interpret`], pure):
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

use super::session::{NotificationStream, Pumped};
use super::xml::{NS_ALARMS, NS_NC_NOTIFICATIONS, Notification};
use super::{NcError, Workers};
use crate::model::Severity;
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::mpsc as tmpsc;

/// What a notification asks emspool to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Event {
        kind: &'static str,
        severity: Severity,
        text: String,
    },
    RaiseAlarm {
        kind: String,
        instance: Option<String>,
        severity: Severity,
        text: String,
    },
    ClearAlarm {
        kind: String,
        instance: Option<String>,
    },
    /// An interface went up or down; the poller maps the name to its LinkDown instance.
    Link {
        interface: String,
        up: bool,
        text: String,
    },
}

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

/// `own(session_id)` says whether a NETCONF session is one of ours.
pub(crate) fn interpret(n: &Notification, own: &dyn Fn(u32) -> bool) -> Vec<Action> {
    let event = |kind, text: String| Action::Event {
        kind,
        severity: Severity::Info,
        text: clip(text),
    };
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
        if let Some(a) = alarm_action(n) {
            return vec![a];
        }
    }
    let mut out = Vec::new();
    if let Some(link) = link_action(n) {
        out.push(link);
    }
    let leaves: Vec<String> = n.leaves.iter().map(|(p, v)| format!("{p}={v}")).collect();
    out.push(event(
        KIND_OTHER,
        format!("{}: {}", n.name, leaves.join(", ")),
    ));
    out
}

fn alarm_action(n: &Notification) -> Option<Action> {
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
            return Some(Action::ClearAlarm {
                kind,
                instance: Some(instance),
            });
        }
        "critical" => Severity::Critical,
        "major" => Severity::Major,
        "minor" => Severity::Minor,
        "warning" => Severity::Warning,
        _ => Severity::Indeterminate,
    };
    Some(Action::RaiseAlarm {
        kind,
        instance: Some(instance),
        severity,
        text: clip(n.leaf("alarm-text").unwrap_or(type_id).to_owned()),
    })
}

fn link_action(n: &Notification) -> Option<Action> {
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
    Some(Action::Link {
        text: format!(
            "interface {interface} is {} ({} notification)",
            if up { "up" } else { "down" },
            n.name
        ),
        interface,
        up,
    })
}

// ---------------------------------------------------------------------------------------------
// The reactor

/// What a notification task hears from the reactor.
#[derive(Debug)]
pub(crate) enum Delivery {
    Message(Vec<u8>),
    Ended(NcError),
}

enum Command {
    Add {
        id: u64,
        stream: NotificationStream,
        tx: tmpsc::UnboundedSender<Delivery>,
    },
}

/// One thread that reads all subscribed sessions without blocking.
pub(crate) struct Reactor {
    tx: mpsc::Sender<Command>,
}

/// How long the reactor sleeps when no session had anything to read.
const IDLE_TICK: Duration = Duration::from_millis(50);
/// Bytes read from one session per pass.
const PASS_BUDGET: usize = 256 * 1024;

impl Reactor {
    pub(crate) fn start(workers: Workers) -> Reactor {
        let (tx, rx) = mpsc::channel::<Command>();
        let spawned = std::thread::Builder::new()
            .name("netconf-notify".into())
            .stack_size(512 * 1024)
            .spawn(move || run(rx, workers));
        if let Err(e) = spawned {
            tracing::error!("cannot start the NETCONF notification thread: {e}");
        }
        Reactor { tx }
    }

    /// Hands a subscribed session over; it is read until it ends or `tx`'s receiver is
    /// dropped (the task stopped), then closed.
    pub(crate) fn add(
        &self,
        id: u64,
        stream: NotificationStream,
        tx: tmpsc::UnboundedSender<Delivery>,
    ) {
        let _ = self.tx.send(Command::Add { id, stream, tx });
    }
}

fn run(rx: mpsc::Receiver<Command>, workers: Workers) {
    let mut streams: HashMap<u64, (NotificationStream, tmpsc::UnboundedSender<Delivery>)> =
        HashMap::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut wait = IDLE_TICK;
    loop {
        match rx.recv_timeout(wait) {
            Ok(Command::Add { id, stream, tx }) => {
                if let Some((old, _)) = streams.insert(id, (stream, tx)) {
                    close_later(&workers, old);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                for (_, (s, _)) in streams.drain() {
                    close_later(&workers, s);
                }
                return;
            }
        }
        let mut busy = false;
        let mut gone = Vec::new();
        for (id, (stream, tx)) in streams.iter_mut() {
            if tx.is_closed() {
                gone.push(*id);
                continue;
            }
            match stream.pump(&mut buf, PASS_BUDGET) {
                Pumped::Messages(msgs) => {
                    busy |= !msgs.is_empty();
                    for m in msgs {
                        let _ = tx.send(Delivery::Message(m));
                    }
                }
                Pumped::Ended(msgs, why) => {
                    for m in msgs {
                        let _ = tx.send(Delivery::Message(m));
                    }
                    let _ = tx.send(Delivery::Ended(why));
                    gone.push(*id);
                }
            }
        }
        for id in gone {
            if let Some((s, _)) = streams.remove(&id) {
                close_later(&workers, s);
            }
        }
        wait = if busy { Duration::ZERO } else { IDLE_TICK };
    }
}

/// Closes a session on a worker thread (a clean close blocks for a round trip).
fn close_later(workers: &Workers, stream: NotificationStream) {
    workers.spawn(move || {
        if let Some(s) = stream.into_session() {
            s.close(Duration::from_millis(500));
        }
    });
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
        let a = interpret(&n, &|_| false);
        assert!(
            matches!(&a[..], [Action::Event { kind: KIND_CONFIG_CHANGE, text, .. }]
            if text == "running configuration changed by admin (session 5): /sys:system (create)"),
            "{a:?}"
        );
        let start = notif(
            NS_NC_NOTIFICATIONS,
            "netconf-session-start",
            &[("username", "u"), ("session-id", "9")],
        );
        assert!(interpret(&start, &|id| id == 9).is_empty());
        assert_eq!(interpret(&start, &|_| false).len(), 1);
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
        assert!(matches!(&interpret(&mk("major"), &|_| false)[..],
            [Action::RaiseAlarm { kind, severity: Severity::Major, .. }] if kind == "link-alarm"));
        assert!(matches!(&interpret(&mk("cleared"), &|_| false)[..],
            [Action::ClearAlarm { kind, .. }] if kind == "link-alarm"));
    }

    #[test]
    fn interface_notifications_are_links() {
        let n = notif(
            "urn:x",
            "link-state",
            &[("if-name", "eth1"), ("oper-status", "down")],
        );
        let a = interpret(&n, &|_| false);
        assert!(matches!(&a[0], Action::Link { interface, up: false, .. } if interface == "eth1"));
        assert!(matches!(
            &a[1],
            Action::Event {
                kind: KIND_OTHER,
                ..
            }
        ));
        let n = notif("urn:x", "linkUp", &[("interface/name", "eth2")]);
        assert!(matches!(
            &interpret(&n, &|_| false)[0],
            Action::Link { up: true, .. }
        ));
        let n = notif("urn:x", "fan-failure", &[("name", "fan1")]);
        let a = interpret(&n, &|_| false);
        assert_eq!(a.len(), 1, "not a link: {a:?}");
    }
}
