//! The YANG data emspool reads over NETCONF, and how it maps onto [`PollData`].
//!
//! - ietf-system (RFC 7317): `/system/hostname` -> `sys_name`; `/system-state/platform`
//!   -> `sys_descr`; `/system-state/clock` boot and current datetime -> boot time and uptime.
//!   yuma123's netconfd fills `/system-state/yuma` (yuma123-system) instead of `platform` and
//!   `clock`: `sysName`, `sysBootDateTime`, `sysCurrentDateTime` and `uname` are read too.
//! - ietf-interfaces (RFC 7223 `interfaces-state`, and RFC 8343 NMDA `interfaces` where the
//!   state leaves sit next to the config): name, admin/oper status, if-index, speed, the
//!   `statistics` counters (octets, unicast packets, errors, discards), `description` as the
//!   alias; `enabled` from the config when `admin-status` is absent.

use super::xml::{DataVisit, NS_INTERFACES, NS_SYSTEM, Node};
use crate::model::PollData;
use crate::model::interface::{Counters, has, status_byte};
use crate::model::{Interface, UnixMillis};
use std::collections::BTreeMap;

/// Subtree filter of the ietf-system `<get>`.
pub fn system_filter() -> String {
    format!(
        "<system xmlns=\"{NS_SYSTEM}\"><hostname/></system><system-state xmlns=\"{NS_SYSTEM}\"/>"
    )
}

/// Subtree filter of the ietf-interfaces `<get>` (config for `enabled`, and state).
pub fn interfaces_filter() -> String {
    format!("<interfaces xmlns=\"{NS_INTERFACES}\"/><interfaces-state xmlns=\"{NS_INTERFACES}\"/>")
}

/// Guards memory against a device with an endless interface list.
const MAX_INTERFACES: usize = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemData {
    pub hostname: Option<String>,
    pub os_name: Option<String>,
    pub os_release: Option<String>,
    pub os_version: Option<String>,
    pub machine: Option<String>,
    pub current: Option<String>,
    pub boot: Option<String>,
    /// yuma123-system's sysName (the OS host name), used when `/system/hostname` is absent.
    pub yuma_name: Option<String>,
}

impl DataVisit for SystemData {
    fn leaf(&mut self, path: &[Node], text: &str) {
        let Some(top) = path.first() else { return };
        if top.ns != NS_SYSTEM {
            return;
        }
        let names: Vec<&str> = path.iter().map(|n| n.name.as_str()).collect();
        let v = Some(crate::model::text::device_str(text));
        match names.as_slice() {
            ["system", "hostname"] => self.hostname = v,
            ["system-state", "platform", "os-name"] => self.os_name = v,
            ["system-state", "platform", "os-release"] => self.os_release = v,
            ["system-state", "platform", "os-version"] => self.os_version = v,
            ["system-state", "platform", "machine"] => self.machine = v,
            ["system-state", "clock", "current-datetime"] => self.current = v,
            ["system-state", "clock", "boot-datetime"] => self.boot = v,
            ["system-state", "yuma", "sysName"] => self.yuma_name = v,
            ["system-state", "yuma", "sysCurrentDateTime"] => {
                self.current = self.current.take().or(v)
            }
            ["system-state", "yuma", "sysBootDateTime"] => self.boot = self.boot.take().or(v),
            ["system-state", "yuma", "uname", leaf] => {
                let slot = match *leaf {
                    "sysname" => &mut self.os_name,
                    "release" => &mut self.os_release,
                    "version" => &mut self.os_version,
                    "machine" => &mut self.machine,
                    _ => return,
                };
                if slot.is_none() {
                    *slot = v;
                }
            }
            _ => {}
        }
    }
}

impl SystemData {
    /// `os-name os-release os-version machine`, like an SNMP sysDescr.
    pub fn descr(&self) -> Option<String> {
        let parts: Vec<&str> = [
            &self.os_name,
            &self.os_release,
            &self.os_version,
            &self.machine,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    pub fn boot_millis(&self) -> Option<UnixMillis> {
        self.boot.as_deref().and_then(parse_datetime)
    }

    /// Uptime in hundredths of a second from the device's own clock (boot vs current).
    pub fn uptime_ticks(&self) -> Option<u32> {
        let boot = self.boot_millis()?;
        let now = self.current.as_deref().and_then(parse_datetime)?;
        let ticks = (now - boot).max(0) / 10;
        Some(u32::try_from(ticks).unwrap_or(u32::MAX))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct IfRow {
    admin: Option<i64>,
    oper: Option<i64>,
    enabled: Option<bool>,
    if_index: Option<u32>,
    description: Option<String>,
    /// ietf-interfaces `statistics` and `speed`; `present` says which leaves came.
    counters: Counters,
}

impl IfRow {
    fn stat(&mut self, leaf: &str, text: &str) {
        let c = &mut self.counters;
        let (slot64, slot32, bit): (Option<&mut u64>, Option<&mut u32>, u16) = match leaf {
            "in-octets" => (Some(&mut c.in_octets), None, has::IN_OCTETS),
            "out-octets" => (Some(&mut c.out_octets), None, has::OUT_OCTETS),
            "in-unicast-pkts" => (Some(&mut c.in_ucast), None, has::IN_UCAST),
            "out-unicast-pkts" => (Some(&mut c.out_ucast), None, has::OUT_UCAST),
            "speed" => (Some(&mut c.speed_bps), None, has::SPEED),
            "in-errors" => (None, Some(&mut c.in_errors), has::IN_ERRORS),
            "out-errors" => (None, Some(&mut c.out_errors), has::OUT_ERRORS),
            "in-discards" => (None, Some(&mut c.in_discards), has::IN_DISCARDS),
            "out-discards" => (None, Some(&mut c.out_discards), has::OUT_DISCARDS),
            _ => return,
        };
        let text = text.trim();
        let ok = match (slot64, slot32) {
            (Some(s), _) => text.parse().map(|v| *s = v).is_ok(),
            (_, Some(s)) => text.parse().map(|v| *s = v).is_ok(),
            _ => false,
        };
        if ok {
            c.present |= bit;
        }
    }

    /// Fills what `self` lacks from `other` (the same interface seen in the other tree).
    fn merge(&mut self, other: IfRow) {
        self.admin = self.admin.or(other.admin);
        self.oper = self.oper.or(other.oper);
        self.enabled = self.enabled.or(other.enabled);
        self.if_index = self.if_index.or(other.if_index);
        self.description = self.description.take().or(other.description);
        if self.counters.present == 0 {
            self.counters = other.counters;
        }
    }
}

/// Interfaces by name, from `interfaces` and `interfaces-state`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfacesData {
    rows: BTreeMap<String, IfRow>,
    /// The list entry being read: its name arrives as a leaf, maybe after other leaves.
    current: Option<(Option<String>, IfRow)>,
}

impl DataVisit for InterfacesData {
    fn start(&mut self, path: &[Node]) {
        if let [top, i] = path
            && top.ns == NS_INTERFACES
            && i.name == "interface"
        {
            self.flush();
            self.current = Some((None, IfRow::default()));
        }
    }

    fn leaf(&mut self, path: &[Node], text: &str) {
        let Some(top) = path.first() else { return };
        if top.ns != NS_INTERFACES || path.len() < 3 || path[1].name != "interface" {
            return;
        }
        let Some((name, row)) = self.current.as_mut() else {
            return;
        };
        let leaf: Vec<&str> = path[2..].iter().map(|n| n.name.as_str()).collect();
        match leaf.as_slice() {
            ["name"] => *name = Some(crate::model::text::device_str(text)),
            ["enabled"] => row.enabled = Some(text == "true"),
            ["admin-status"] => row.admin = Some(admin_status(text)),
            ["oper-status"] => row.oper = Some(oper_status(text)),
            ["if-index"] => row.if_index = text.parse().ok(),
            ["description"] => row.description = Some(crate::model::text::device_str(text)),
            ["speed"] => row.stat("speed", text),
            ["statistics", leaf] => row.stat(leaf, text),
            _ => {}
        }
    }
}

impl InterfacesData {
    fn flush(&mut self) {
        if let Some((Some(name), row)) = self.current.take()
            && (self.rows.len() < MAX_INTERFACES || self.rows.contains_key(&name))
        {
            self.rows.entry(name).or_default().merge(row);
        }
    }

    /// Interfaces that have an oper-status (config-only entries are not interfaces that
    /// exist). Indexes are the device's if-index, else 1.. in name order after the largest
    /// if-index, so they stay stable while the set of interfaces does.
    pub fn into_interfaces(mut self) -> Vec<Interface> {
        self.flush();
        let mut next = self
            .rows
            .values()
            .filter_map(|r| r.if_index)
            .max()
            .unwrap_or(0);
        let mut out = Vec::new();
        for (name, r) in self.rows {
            let Some(oper) = r.oper else { continue };
            let index = match r.if_index {
                Some(i) => i,
                None => {
                    next = next.saturating_add(1);
                    next
                }
            };
            let admin = r.admin.unwrap_or(match r.enabled {
                Some(false) => 2,
                _ => 1,
            });
            out.push(
                Interface::with_labels(index, &name, Some(&name), r.description.as_deref())
                    .with_status(status_byte(admin), status_byte(oper))
                    .with_counters(r.counters),
            );
        }
        out.sort_by_key(|i| i.index);
        out
    }
}

/// ietf-interfaces admin-status as IF-MIB ifAdminStatus numbers.
pub fn admin_status(s: &str) -> i64 {
    match s {
        "up" => 1,
        "down" => 2,
        "testing" => 3,
        _ => 0,
    }
}

/// ietf-interfaces oper-status as IF-MIB ifOperStatus numbers (the enums share values).
pub fn oper_status(s: &str) -> i64 {
    match s {
        "up" => 1,
        "down" => 2,
        "testing" => 3,
        "unknown" => 4,
        "dormant" => 5,
        "not-present" => 6,
        "lower-layer-down" => 7,
        _ => 4,
    }
}

/// Joins what was read into one poll's data.
pub fn poll_data(system: Option<SystemData>, interfaces: Option<InterfacesData>) -> PollData {
    let mut data = PollData::default();
    if let Some(s) = system {
        data.sys_descr = s.descr().as_deref().map(crate::model::intern::shared_str);
        data.sys_uptime = s.uptime_ticks();
        data.boot_time = s.boot_millis();
        data.sys_name = s.hostname.clone().or(s.yuma_name.clone());
    }
    if let Some(i) = interfaces {
        data.interfaces = i.into_interfaces();
    }
    data
}

/// RFC 3339 / YANG `date-and-time` (`2024-05-01T10:00:00.5+02:00`, `...Z`) to Unix millis.
pub fn parse_datetime(s: &str) -> Option<UnixMillis> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = b.get(r)?;
        if !t.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(t).ok()?.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s.trim()[start..i.min(start + 3)];
        millis = frac.parse::<i64>().ok()? * 10i64.pow(3 - frac.len() as u32);
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::super::xml::parse_reply;
    use super::*;

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_datetime("2026-11-27T01:00:37Z"),
            Some(1_795_741_237_000)
        );
        assert_eq!(
            parse_datetime("2026-11-27T03:00:37.25+02:00"),
            Some(1_795_741_237_250)
        );
        assert_eq!(
            parse_datetime("2000-02-29T00:00:00-00:30"),
            Some(951_784_200_000)
        );
        for bad in [
            "",
            "2026-11-27",
            "2026-13-01T00:00:00Z",
            "2026-11-27T01:00:37",
            "2026-11-27T01:00:37+0200",
            "x026-11-27T01:00:37Z",
            "2026-11-27T01:00:37.Z",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn netconfd_yuma_system_state() {
        let xml = r#"<rpc-reply message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><data>
<system-state xmlns="urn:ietf:params:xml:ns:yang:ietf-system">
<yuma xmlns="http://yuma123.org/ns/yuma123-system"><sysName>localhost</sysName>
<sysCurrentDateTime>2026-11-27T01:00:46Z</sysCurrentDateTime><sysBootDateTime>2026-11-27T01:00:37Z</sysBootDateTime>
<uname><sysname>Linux</sysname><release>6.1</release><version>#1 SMP</version><machine>x86_64</machine><nodename>vm</nodename></uname>
</yuma></system-state></data></rpc-reply>"#;
        let mut s = SystemData::default();
        parse_reply(xml.as_bytes(), &mut s).unwrap();
        let d = poll_data(Some(s), None);
        assert_eq!(d.sys_name.as_deref(), Some("localhost"));
        assert_eq!(d.sys_descr.as_deref(), Some("Linux 6.1 #1 SMP x86_64"));
        assert_eq!(d.sys_uptime, Some(900));
        assert_eq!(d.boot_time, parse_datetime("2026-11-27T01:00:37Z"));
    }

    #[test]
    fn standard_system_state_wins_and_hostname_is_sys_name() {
        let xml = r#"<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><data>
<system xmlns="urn:ietf:params:xml:ns:yang:ietf-system"><hostname>ne-1</hostname></system>
<system-state xmlns="urn:ietf:params:xml:ns:yang:ietf-system"><platform><os-name>NOS</os-name><os-release>2.0</os-release></platform>
<clock><current-datetime>2026-01-01T00:10:00Z</current-datetime><boot-datetime>2026-01-01T00:00:00Z</boot-datetime></clock></system-state></data></rpc-reply>"#;
        let mut s = SystemData::default();
        parse_reply(xml.as_bytes(), &mut s).unwrap();
        let d = poll_data(Some(s), None);
        assert_eq!(d.sys_name.as_deref(), Some("ne-1"));
        assert_eq!(d.sys_descr.as_deref(), Some("NOS 2.0"));
        assert_eq!(d.sys_uptime, Some(60_000));
    }

    #[test]
    fn interfaces_state_and_nmda_merge_by_name() {
        let xml = r#"<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><data>
<interfaces xmlns="urn:ietf:params:xml:ns:yang:ietf-interfaces">
  <interface><name>eth0</name><enabled>true</enabled><description>to core</description></interface>
  <interface><name>eth1</name><enabled>false</enabled></interface>
  <interface><name>cfg-only</name><enabled>true</enabled></interface>
</interfaces>
<interfaces-state xmlns="urn:ietf:params:xml:ns:yang:ietf-interfaces">
  <interface><oper-status>up</oper-status><name>eth0</name><if-index>3</if-index>
    <speed>1000000000</speed>
    <statistics><in-octets>10</in-octets><out-octets>20</out-octets><in-unicast-pkts>4</in-unicast-pkts>
      <in-errors>2</in-errors><out-discards>1</out-discards><out-errors>x</out-errors></statistics></interface>
  <interface><name>eth1</name><oper-status>down</oper-status></interface>
  <interface><name>eth2</name><admin-status>up</admin-status><oper-status>lower-layer-down</oper-status></interface>
</interfaces-state></data></rpc-reply>"#;
        let mut i = InterfacesData::default();
        parse_reply(xml.as_bytes(), &mut i).unwrap();
        let ifs = i.into_interfaces();
        assert_eq!(ifs.len(), 3, "{ifs:?}");
        assert_eq!((ifs[0].index, ifs[0].descr()), (3, "eth0"));
        assert_eq!(ifs[0].in_octets(), Some(10));
        assert_eq!(ifs[0].alias(), Some("to core"));
        let c = ifs[0].counters().unwrap();
        assert_eq!((c.in_ucast, c.in_errors, c.out_discards), (4, 2, 1));
        assert_eq!(c.speed_bps, 1_000_000_000);
        assert!(!c.has(has::OUT_ERRORS), "unparsable leaf is absent");
        assert!(!c.has(has::NARROW_OCTETS));
        assert!(ifs[1].counters().is_none());
        assert_eq!(
            (ifs[1].index, ifs[1].admin_status, ifs[1].oper_status),
            (4, 2, 2)
        );
        assert_eq!(
            (ifs[2].index, ifs[2].admin_status, ifs[2].oper_status),
            (5, 1, 7)
        );
    }
}
