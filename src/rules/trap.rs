//! What a trap means for its element: alarm raises and clears, events, link-flap hysteresis.
//!
//! Pure, like `evaluate.rs`: state + trap + time -> actions, and `tick(now)` for what falls due
//! (linkDowns whose flap window ran out). No clock, no I/O.
//!
//! | trap (snmpTrapOID)            | action                                                        |
//! | ---                           | ---                                                           |
//! | IF-MIB::linkDown              | raise `LinkDown` on the ifIndex (key `LinkDown:el:ifIndex`, as the poller) |
//! | IF-MIB::linkUp                | clear that `LinkDown`                                          |
//! | linkDown with ifAdminStatus=2 | `link.admin-down` event, clears (the poller only alarms enabled links) |
//! | coldStart / warmStart         | raise `Reboot` (warning), cleared after `reboot_clear`        |
//! | authenticationFailure         | raise `AuthFailure` (warning), cleared after `auth_failure_clear` |
//! | anything else                 | `trap.received` event with every varbind (named where known); with `other_alarms` also an indeterminate `Trap` alarm per trap OID |
//!
//! With a flap window, a linkDown is held back: a linkUp of the same interface within the
//! window turns the pair into one `link.flap` event and no alarm; otherwise the LinkDown alarm
//! is raised when the window ends, with the linkDown's time as first-seen.

use super::link;
use crate::alarms::Change;
use crate::model::{Severity, UnixMillis};
use crate::rules::poll::REBOOT;
use crate::snmp::trap::{Oid, SNMP_TRAPS, Trap, TrapValue};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

pub(crate) const AUTH_FAILURE: &str = "AuthFailure";
pub(crate) const OTHER_TRAP: &str = "Trap";

const COLD_START: u32 = 1;
const WARM_START: u32 = 2;
const LINK_DOWN_TRAP: u32 = 3;
const LINK_UP_TRAP: u32 = 4;
const AUTHENTICATION_FAILURE: u32 = 5;

/// ifEntry and ifXEntry columns: their instance is the ifIndex.
const IF_ENTRY: [u32; 9] = [1, 3, 6, 1, 2, 1, 2, 2, 1];
const IF_X_ENTRY: [u32; 10] = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1];
const IF_ADMIN_STATUS: u32 = 7;
const IF_DESCR: u32 = 2;
const IF_NAME: u32 = 1;

/// Entries in the hold-back map; past it linkDowns alarm at once.
const MAX_TRACKED: usize = 100_000;
/// An event's text is cut here; a trap with huge varbinds must not make a huge event.
const MAX_TEXT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MapRules {
    pub(crate) reboot_clear: Duration,
    pub(crate) auth_failure_clear: Duration,
    pub(crate) flap_window: Duration,
    pub(crate) other_alarms: bool,
    pub(crate) other_clear: Duration,
}

impl Default for MapRules {
    fn default() -> Self {
        let d = crate::config::TrapsSection::default();
        MapRules::from(&d)
    }
}

impl MapRules {
    /// Alarm kinds that no trap clears, and how long after their last repeat they clear.
    pub(crate) fn clear_after(&self) -> [(&'static str, Duration); 3] {
        [
            (REBOOT, self.reboot_clear),
            (AUTH_FAILURE, self.auth_failure_clear),
            (OTHER_TRAP, self.other_clear),
        ]
    }
}

impl From<&crate::config::TrapsSection> for MapRules {
    fn from(t: &crate::config::TrapsSection) -> Self {
        MapRules {
            reboot_clear: t.reboot_clear,
            auth_failure_clear: t.auth_failure_clear,
            flap_window: t.flap_window,
            other_alarms: t.other_alarms,
            other_clear: t.other_clear,
        }
    }
}

#[derive(Debug, Clone)]
struct Held {
    at: UnixMillis,
    text: String,
}

/// Per-server trap state: the linkDowns held back by the flap window, keyed by element.
///
/// Alarms that no trap clears (Reboot, AuthFailure, Trap) are not timed here: the trap service
/// sweeps the alarm table for them by `last_seen` (see [`MapRules::clear_after`]), which also
/// covers alarms handed over from another server.
#[derive(Debug, Default)]
pub(crate) struct Mapper {
    rules: MapRules,
    /// (element, ifIndex) -> the linkDown waiting out the flap window.
    held: HashMap<(String, String), Held>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Mapper {
    pub(crate) fn new(rules: MapRules) -> Mapper {
        Mapper {
            rules,
            ..Mapper::default()
        }
    }

    #[cfg(test)]
    /// Entries held in memory (for tests and the bounded-memory check).
    pub(crate) fn tracked(&self) -> usize {
        self.held.len()
    }

    pub(crate) fn on_trap(&mut self, element: &str, trap: &Trap, now: UnixMillis) -> Vec<Change> {
        let generic = generic_of(&trap.trap_oid);
        let from = describe_sender(trap);
        match generic {
            Some(LINK_DOWN_TRAP) => self.link_down(element, trap, &from, now),
            Some(LINK_UP_TRAP) => self.link_up(element, trap, &from, now),
            Some(g @ (COLD_START | WARM_START)) => {
                let what = if g == COLD_START {
                    "coldStart"
                } else {
                    "warmStart"
                };
                Mapper::raise(
                    REBOOT,
                    None,
                    Severity::Warning,
                    format!("{what} trap{from}: the element restarted"),
                    now,
                )
            }
            Some(AUTHENTICATION_FAILURE) => Mapper::raise(
                AUTH_FAILURE,
                None,
                Severity::Warning,
                format!(
                    "authenticationFailure trap{from}: a manager used a wrong community or key"
                ),
                now,
            ),
            _ => self.other(trap, &from, now),
        }
    }

    /// Changes that are due at `now`, with their element.
    pub(crate) fn tick(&mut self, now: UnixMillis) -> Vec<(String, Change)> {
        let mut out = Vec::new();
        let window = ms(self.rules.flap_window);
        let due: Vec<(String, String)> = self
            .held
            .iter()
            .filter(|(_, h)| now.saturating_sub(h.at) >= window)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(h) = self.held.remove(&key) {
                out.push((key.0, link::down(Some(key.1), h.text).at(h.at)));
            }
        }
        out
    }

    fn link_down(
        &mut self,
        element: &str,
        trap: &Trap,
        from: &str,
        now: UnixMillis,
    ) -> Vec<Change> {
        let (index, label) = interface_of(trap);
        let admin_down = trap.varbinds.iter().any(|v| {
            v.oid.starts_with(&IF_ENTRY)
                && v.oid.0.get(IF_ENTRY.len()) == Some(&IF_ADMIN_STATUS)
                && v.value.as_i64() == Some(2)
        });
        if admin_down {
            if let Some(i) = &index {
                self.held.remove(&(element.to_owned(), i.clone()));
            }
            return vec![
                Change::event(
                    "link.admin-down",
                    Severity::Info,
                    format!("interface {label} shut down by an operator (linkDown{from})"),
                ),
                link::up(index, "administratively down"),
            ];
        }
        let text = format!("interface {label} is down (linkDown trap{from})");
        if let Some(i) = &index
            && !self.rules.flap_window.is_zero()
        {
            let key = (element.to_owned(), i.clone());
            if let Some(h) = self.held.get_mut(&key) {
                h.text = text;
                return Vec::new();
            }
            if self.held.len() < MAX_TRACKED {
                self.held.insert(key, Held { at: now, text });
                return Vec::new();
            }
        }
        vec![link::down(index, text).at(now)]
    }

    fn link_up(&mut self, element: &str, trap: &Trap, from: &str, now: UnixMillis) -> Vec<Change> {
        let (index, label) = interface_of(trap);
        if let Some(i) = &index
            && let Some(h) = self.held.remove(&(element.to_owned(), i.clone()))
        {
            let took = Duration::from_millis(now.saturating_sub(h.at).max(0) as u64);
            return vec![Change::event(
                "link.flap",
                Severity::Warning,
                format!(
                    "interface {label} went down and up again within {} (linkDown/linkUp{from})",
                    humantime::format_duration(Duration::from_millis(took.as_millis() as u64))
                ),
            )];
        }
        vec![link::up(index, format!("linkUp trap{from}"))]
    }

    fn raise(
        kind: &'static str,
        instance: Option<String>,
        severity: Severity,
        text: String,
        now: UnixMillis,
    ) -> Vec<Change> {
        vec![Change::raise(kind, instance, severity, text).at(now)]
    }

    fn other(&mut self, trap: &Trap, from: &str, now: UnixMillis) -> Vec<Change> {
        let text = describe_with(trap, from);
        let mut out = vec![Change::event(
            "trap.received",
            Severity::Indeterminate,
            text.clone(),
        )];
        if self.rules.other_alarms {
            out.extend(Mapper::raise(
                OTHER_TRAP,
                Some(trap.trap_oid.to_string()),
                Severity::Indeterminate,
                text,
                now,
            ));
        }
        out
    }
}

/// One line naming the trap, its sender and every varbind (named where `mibs/` knows them).
pub(crate) fn describe(trap: &Trap) -> String {
    describe_with(trap, &describe_sender(trap))
}

fn describe_with(trap: &Trap, from: &str) -> String {
    let mut text = format!(
        "{}{from} {}",
        name_of(&trap.trap_oid),
        trap.version.as_str()
    );
    if trap.inform {
        text.push_str(" inform");
    }
    if let Some(u) = &trap.user {
        let _ = write!(text, " user {u:?}");
    }
    for v in &trap.varbinds {
        if text.len() > MAX_TEXT {
            text.push_str(" ...");
            break;
        }
        let _ = write!(text, "; {} = {}", name_of(&v.oid), v.value);
    }
    truncate(&mut text, MAX_TEXT + 4);
    text
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut i = max;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
}

/// The generic notification number (snmpTraps.N), if the trap is one.
fn generic_of(oid: &Oid) -> Option<u32> {
    if oid.0.len() == SNMP_TRAPS.len() + 1 && oid.starts_with(&SNMP_TRAPS) {
        oid.0.last().copied()
    } else {
        None
    }
}

fn describe_sender(trap: &Trap) -> String {
    match trap.agent_addr {
        Some(a) if a != trap.source => format!(" from {} (agent {a})", trap.source),
        _ => format!(" from {}", trap.source),
    }
}

/// The ifIndex a link trap is about, and how to name the interface in text.
fn interface_of(trap: &Trap) -> (Option<String>, String) {
    let mut index = None;
    let mut descr = None;
    for v in &trap.varbinds {
        let (column, instance) =
            if v.oid.starts_with(&IF_ENTRY) && v.oid.0.len() == IF_ENTRY.len() + 2 {
                (v.oid.0[IF_ENTRY.len()], v.oid.0[IF_ENTRY.len() + 1])
            } else if v.oid.starts_with(&IF_X_ENTRY) && v.oid.0.len() == IF_X_ENTRY.len() + 2 {
                // ifXEntry columns are numbered apart: tell ifName (1) from ifEntry's ifIndex (1).
                let c = v.oid.0[IF_X_ENTRY.len()];
                if c == IF_NAME
                    && let TrapValue::Text(t) = &v.value
                {
                    descr = Some(t.clone());
                }
                index = index.or(Some(v.oid.0[IF_X_ENTRY.len() + 1]));
                continue;
            } else {
                continue;
            };
        match column {
            // ifIndex: the value is authoritative.
            1 => {
                let value = v.value.as_i64().and_then(|i| u32::try_from(i).ok());
                index = Some(value.unwrap_or(instance));
            }
            IF_DESCR => {
                if let TrapValue::Text(t) = &v.value {
                    descr.get_or_insert_with(|| t.clone());
                }
                index = index.or(Some(instance));
            }
            _ => index = index.or(Some(instance)),
        }
    }
    let label = match (index, descr) {
        (Some(i), Some(d)) => format!("{i} ({d})"),
        (Some(i), None) => i.to_string(),
        (None, _) => "(no ifIndex in the trap)".to_string(),
    };
    (index.map(|i| i.to_string()), label)
}

/// OID -> name from `mibs/names.txt`, longest prefix first.
fn names() -> &'static [(Vec<u32>, &'static str)] {
    static NAMES: OnceLock<Vec<(Vec<u32>, &'static str)>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut v: Vec<(Vec<u32>, &'static str)> = include_str!("../../mibs/names.txt")
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let oid: Oid = parts.next()?.parse().ok()?;
                Some((oid.0, parts.next()?))
            })
            .collect();
        // Longest first so that the first match is the most specific.
        v.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        v
    })
}

/// `IF-MIB::ifIndex.7 (1.3.6.1.2.1.2.2.1.1.7)` when known, else the numeric OID.
pub(crate) fn name_of(oid: &Oid) -> String {
    for (prefix, name) in names() {
        if oid.starts_with(prefix) {
            let mut s = (*name).to_owned();
            for a in &oid.0[prefix.len()..] {
                let _ = write!(s, ".{a}");
            }
            return format!("{s} ({oid})");
        }
    }
    oid.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snmp::trap::{TrapVersion, VarBind};

    fn trap(generic: u32, varbinds: Vec<(&str, TrapValue)>) -> Trap {
        let mut oid = SNMP_TRAPS.to_vec();
        oid.push(generic);
        custom(Oid(oid), varbinds)
    }

    fn custom(oid: Oid, varbinds: Vec<(&str, TrapValue)>) -> Trap {
        Trap {
            received: 0,
            source: "127.0.0.5".parse().expect("ip"),
            version: TrapVersion::V2c,
            inform: false,
            trap_oid: oid,
            uptime: Some(5),
            agent_addr: None,
            user: None,
            varbinds: varbinds
                .into_iter()
                .map(|(o, value)| VarBind {
                    oid: o.parse().expect("oid"),
                    value,
                })
                .collect(),
        }
    }

    fn if_index(i: i64) -> Vec<(&'static str, TrapValue)> {
        vec![("1.3.6.1.2.1.2.2.1.1.7", TrapValue::Integer(i))]
    }

    fn rules(flap: u64) -> MapRules {
        MapRules {
            flap_window: Duration::from_secs(flap),
            ..MapRules::default()
        }
    }

    #[test]
    fn link_down_and_up_raise_and_clear_on_the_if_index() {
        let mut m = Mapper::new(rules(0));
        let a = m.on_trap("r1", &trap(3, if_index(7)), 10);
        assert!(
            matches!(&a[..], [Change::Raise { kind, instance: Some(i), severity: Severity::Major, at: Some(10), .. }] if kind == "LinkDown" && i == "7"),
            "{a:?}"
        );
        let a = m.on_trap("r1", &trap(4, if_index(7)), 20);
        assert!(
            matches!(&a[..], [Change::Clear { kind, instance: Some(i), .. }] if kind == "LinkDown" && i == "7"),
            "{a:?}"
        );
        assert_eq!(m.tracked(), 0);
    }

    #[test]
    fn if_index_comes_from_column_instances_too() {
        let t = trap(
            3,
            vec![
                ("1.3.6.1.2.1.2.2.1.7.12", TrapValue::Integer(1)),
                ("1.3.6.1.2.1.2.2.1.2.12", TrapValue::Text("eth12".into())),
            ],
        );
        let (i, label) = interface_of(&t);
        assert_eq!(i.as_deref(), Some("12"));
        assert_eq!(label, "12 (eth12)");
    }

    #[test]
    fn admin_down_is_an_event_not_an_alarm() {
        let mut m = Mapper::new(rules(0));
        let t = trap(
            3,
            vec![
                ("1.3.6.1.2.1.2.2.1.1.3", TrapValue::Integer(3)),
                ("1.3.6.1.2.1.2.2.1.7.3", TrapValue::Integer(2)),
            ],
        );
        let a = m.on_trap("r1", &t, 1);
        assert!(matches!(&a[0], Change::Event { kind, .. } if kind == "link.admin-down"));
        assert!(matches!(&a[1], Change::Clear { kind, .. } if kind == "LinkDown"));
    }

    #[test]
    fn flap_within_window_is_one_event_and_a_late_up_is_alarm_then_clear() {
        let mut m = Mapper::new(rules(5));
        assert!(m.on_trap("r1", &trap(3, if_index(1)), 1_000).is_empty());
        assert!(
            m.on_trap("r1", &trap(3, if_index(1)), 1_500).is_empty(),
            "repeat held"
        );
        let a = m.on_trap("r1", &trap(4, if_index(1)), 3_000);
        assert!(
            matches!(&a[..], [Change::Event { kind, .. }] if kind == "link.flap"),
            "{a:?}"
        );
        assert!(m.tick(100_000).is_empty(), "nothing left to raise");

        assert!(m.on_trap("r1", &trap(3, if_index(2)), 10_000).is_empty());
        assert!(m.tick(14_999).is_empty());
        let due = m.tick(15_000);
        assert!(
            matches!(&due[..], [(e, Change::Raise { kind, at: Some(10_000), .. })] if kind == "LinkDown" && e == "r1"),
            "{due:?}"
        );
        let a = m.on_trap("r1", &trap(4, if_index(2)), 20_000);
        assert!(matches!(&a[..], [Change::Clear { kind, .. }] if kind == "LinkDown"));
    }

    #[test]
    fn reboot_and_auth_failure_raise_warnings_and_name_their_clear_times() {
        let rules = MapRules {
            reboot_clear: Duration::from_secs(60),
            auth_failure_clear: Duration::from_secs(10),
            ..MapRules::default()
        };
        let mut m = Mapper::new(rules);
        let a = m.on_trap("r1", &trap(1, vec![]), 0);
        assert!(matches!(
            &a[..],
            [Change::Raise { kind, severity: Severity::Warning, instance: None, .. }] if kind == "Reboot"
        ));
        let a = m.on_trap("r1", &trap(2, vec![]), 0);
        assert!(matches!(&a[..], [Change::Raise { kind, .. }] if kind == "Reboot"));
        let a = m.on_trap("r1", &trap(5, vec![]), 0);
        assert!(matches!(
            &a[..],
            [Change::Raise { kind, severity: Severity::Warning, .. }] if kind == "AuthFailure"
        ));
        assert!(m.tick(1_000_000).is_empty(), "clearing is the sweep's job");
        assert_eq!(
            rules.clear_after()[..2],
            [
                ("Reboot", Duration::from_secs(60)),
                ("AuthFailure", Duration::from_secs(10))
            ]
        );
    }

    #[test]
    fn other_traps_are_events_with_named_varbinds_and_optional_alarms() {
        let mut m = Mapper::new(rules(0));
        let t = custom(
            "1.3.6.1.4.1.8072.2.3.0.1".parse().expect("oid"),
            vec![("1.3.6.1.2.1.1.5.0", TrapValue::Text("edge-1".into()))],
        );
        let a = m.on_trap("r1", &t, 0);
        let [Change::Event { kind, text, .. }] = &a[..] else {
            panic!("{a:?}");
        };
        assert_eq!(kind, "trap.received");
        assert!(
            text.contains("SNMPv2-SMI::enterprises.8072.2.3.0.1"),
            "{text}"
        );
        assert!(
            text.contains("SNMPv2-MIB::sysName.0 (1.3.6.1.2.1.1.5.0) = \"edge-1\""),
            "{text}"
        );
        let mut m = Mapper::new(MapRules {
            other_alarms: true,
            ..MapRules::default()
        });
        let a = m.on_trap("r1", &t, 0);
        assert!(
            matches!(&a[1], Change::Raise { kind, severity: Severity::Indeterminate, instance: Some(i), .. } if kind == "Trap" && i == "1.3.6.1.4.1.8072.2.3.0.1")
        );
    }

    #[test]
    fn a_storm_of_one_trap_keeps_state_bounded() {
        let mut m = Mapper::new(MapRules {
            other_alarms: true,
            flap_window: Duration::from_secs(1),
            ..MapRules::default()
        });
        for n in 0..10_000 {
            m.on_trap("r1", &trap(1, vec![]), n);
            m.on_trap("r1", &trap(3, if_index(4)), n);
            m.on_trap(
                "r1",
                &custom("1.3.6.1.4.1.9.9".parse().expect("oid"), vec![]),
                n,
            );
        }
        assert_eq!(m.tracked(), 1, "one held linkDown, nothing else");
    }

    #[test]
    fn names_table_parses_and_resolves_longest_prefix() {
        assert!(names().len() > 40);
        assert_eq!(
            name_of(&"1.3.6.1.2.1.2.2.1.8.3".parse().expect("oid")),
            "IF-MIB::ifOperStatus.3 (1.3.6.1.2.1.2.2.1.8.3)"
        );
        assert_eq!(
            name_of(&"1.3.6.1.6.3.1.1.5.3".parse().expect("oid")),
            "IF-MIB::linkDown (1.3.6.1.6.3.1.1.5.3)"
        );
        assert_eq!(name_of(&"1.2.3".parse().expect("oid")), "1.2.3");
    }
}
