//! One row of an element's interface table, as the owner keeps it between polls.
//!
//! Interface rows are most of what a server holds per element (24 rows on a typical access
//! router), so a row is 24 bytes: statuses as bytes, ifDescr/ifName/ifAlias behind one
//! interned pointer, and the counters in one optional box ([`Counters`], 64 bytes with the
//! allocator's rounding) that rows without counters (config-only NETCONF entries) do without.
//! The JSON form keeps the old fields and adds the new ones only when present.

use crate::model::intern::Interner;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, LazyLock};

/// ifDescr, ifName and ifAlias (ifXTable), or a NETCONF interface's name and description.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Labels {
    descr: Box<str>,
    name: Option<Box<str>>,
    alias: Option<Box<str>>,
}

static LABELS: LazyLock<Interner<Labels>> = LazyLock::new(Interner::default);

/// Which [`Counters`] fields the agent answered (bits of `Counters::present`).
pub mod has {
    pub const IN_OCTETS: u16 = 1;
    pub const OUT_OCTETS: u16 = 1 << 1;
    pub const IN_UCAST: u16 = 1 << 2;
    pub const OUT_UCAST: u16 = 1 << 3;
    pub const IN_ERRORS: u16 = 1 << 4;
    pub const OUT_ERRORS: u16 = 1 << 5;
    pub const IN_DISCARDS: u16 = 1 << 6;
    pub const OUT_DISCARDS: u16 = 1 << 7;
    pub const SPEED: u16 = 1 << 8;
    /// The octet counters are 32-bit ifInOctets/ifOutOctets (no ifXTable), carried over
    /// their wraps into 64 bits (see [`super::Counters::carry_wraps`]).
    pub const NARROW_OCTETS: u16 = 1 << 9;
}

/// An interface's counters and speed, as the agent reported them.
///
/// Octets and unicast packets are 64-bit (ifHC*, or NETCONF counter64); errors and discards
/// are Counter32 in IF-MIB and ietf-interfaces alike, so they take 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub in_octets: u64,
    pub out_octets: u64,
    pub in_ucast: u64,
    pub out_ucast: u64,
    /// Bits per second (ifHighSpeed x 10^6, else ifSpeed).
    pub speed_bps: u64,
    pub in_errors: u32,
    pub out_errors: u32,
    pub in_discards: u32,
    pub out_discards: u32,
    /// Bits of [`has`].
    pub present: u16,
}

impl Counters {
    pub fn has(&self, bit: u16) -> bool {
        self.present & bit != 0
    }

    /// 32-bit octet counters (`NARROW_OCTETS`) as 64-bit totals that never go back on a
    /// wrap: the total's low 32 bits are always the agent's last raw value, so the total only
    /// needs the previous total, and a wrap adds the wrapped distance. After a restart of the
    /// element (`reset`) the total starts again from the raw value. A counter that wraps
    /// more than once between two polls cannot be told apart (4 GiB per poll interval).
    pub fn carry_wraps(&mut self, prev: Option<&Counters>, reset: bool) {
        if !self.has(has::NARROW_OCTETS) {
            return;
        }
        let Some(prev) = prev.filter(|p| p.has(has::NARROW_OCTETS) && !reset) else {
            return;
        };
        let carry = |prev_total: u64, raw: u64| -> u64 {
            let delta = (raw as u32).wrapping_sub(prev_total as u32);
            prev_total.wrapping_add(u64::from(delta))
        };
        if self.has(has::IN_OCTETS) && prev.has(has::IN_OCTETS) {
            self.in_octets = carry(prev.in_octets, self.in_octets);
        }
        if self.has(has::OUT_OCTETS) && prev.has(has::OUT_OCTETS) {
            self.out_octets = carry(prev.out_octets, self.out_octets);
        }
    }
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "InterfaceJson", into = "InterfaceJson")]
pub struct Interface {
    pub index: u32,
    /// ifAdminStatus: 1 up, 2 down, 3 testing; 0 when absent or out of range.
    pub admin_status: u8,
    /// ifOperStatus: 1 up, 2 down, ... 7; 0 when absent or out of range.
    pub oper_status: u8,
    labels: Arc<Labels>,
    counters: Option<Box<Counters>>,
}

impl Clone for Interface {
    fn clone(&self) -> Interface {
        Interface {
            index: self.index,
            admin_status: self.admin_status,
            oper_status: self.oper_status,
            labels: self.labels.clone(),
            counters: self.counters.clone(),
        }
    }

    /// Keeps this row's counters box: a poll overwrites every row's counters, and a box
    /// allocated anew each time would scatter the long-lived rows among transient buffers.
    fn clone_from(&mut self, src: &Interface) {
        self.index = src.index;
        self.admin_status = src.admin_status;
        self.oper_status = src.oper_status;
        if !Arc::ptr_eq(&self.labels, &src.labels) {
            self.labels = src.labels.clone();
        }
        match (&mut self.counters, &src.counters) {
            (Some(mine), Some(theirs)) => **mine = **theirs,
            (mine, theirs) => *mine = theirs.clone(),
        }
    }
}

/// An SNMP INTEGER or YANG enum number as a status byte: anything outside 0..=255 is not a
/// status any MIB defines, so it reads as 0 (unknown) rather than wrapping into a valid one.
pub fn status_byte(v: i64) -> u8 {
    u8::try_from(v).unwrap_or(0)
}

impl Interface {
    pub fn new(index: u32, descr: &str, name: Option<&str>) -> Interface {
        Interface::with_labels(index, descr, name, None)
    }

    /// Like [`Interface::new`], with the ifAlias (NETCONF: `description`).
    pub fn with_labels(
        index: u32,
        descr: &str,
        name: Option<&str>,
        alias: Option<&str>,
    ) -> Interface {
        let probe = Labels {
            descr: descr.into(),
            name: name.map(Into::into),
            alias: alias.filter(|a| !a.is_empty()).map(Into::into),
        };
        Interface {
            index,
            admin_status: 0,
            oper_status: 0,
            labels: LABELS.intern(&probe, |l| Arc::new(l.clone())),
            counters: None,
        }
    }

    pub fn with_status(mut self, admin: u8, oper: u8) -> Interface {
        self.admin_status = admin;
        self.oper_status = oper;
        self
    }

    /// Sets the octet counters (the others stay as they are).
    pub fn with_octets(self, inbound: Option<u64>, outbound: Option<u64>) -> Interface {
        let mut c = self.counters.as_deref().copied().unwrap_or_default();
        c.present &= !(has::IN_OCTETS | has::OUT_OCTETS);
        if let Some(v) = inbound {
            c.present |= has::IN_OCTETS;
            c.in_octets = v;
        }
        if let Some(v) = outbound {
            c.present |= has::OUT_OCTETS;
            c.out_octets = v;
        }
        self.with_counters(c)
    }

    /// Sets every counter; a set without any field present is stored as none.
    pub fn with_counters(mut self, c: Counters) -> Interface {
        self.counters = (c.present != 0).then(|| Box::new(c));
        self
    }

    pub fn counters(&self) -> Option<&Counters> {
        self.counters.as_deref()
    }

    pub fn counters_mut(&mut self) -> Option<&mut Counters> {
        self.counters.as_deref_mut()
    }

    pub fn descr(&self) -> &str {
        &self.labels.descr
    }

    pub fn name(&self) -> Option<&str> {
        self.labels.name.as_deref()
    }

    pub fn alias(&self) -> Option<&str> {
        self.labels.alias.as_deref()
    }

    /// Whether `label` is this interface's ifDescr or ifName.
    pub fn is_called(&self, label: &str) -> bool {
        self.descr() == label || self.name() == Some(label)
    }

    fn counter(&self, bit: u16, f: impl Fn(&Counters) -> u64) -> Option<u64> {
        self.counters().filter(|c| c.has(bit)).map(f)
    }

    pub fn in_octets(&self) -> Option<u64> {
        self.counter(has::IN_OCTETS, |c| c.in_octets)
    }

    pub fn out_octets(&self) -> Option<u64> {
        self.counter(has::OUT_OCTETS, |c| c.out_octets)
    }
}

/// 32-bit octet counters of `next` carried over their wraps from the same interfaces
/// (by ifIndex) in `prev`; `reset` when the element restarted since `prev`.
pub fn carry_wraps(prev: &[Interface], next: &mut [Interface], reset: bool) {
    for row in next.iter_mut() {
        let Some(c) = row.counters.as_deref_mut() else {
            continue;
        };
        if !c.has(has::NARROW_OCTETS) {
            continue;
        }
        // Rows are sorted by index (both collectors sort), so this is a binary search.
        let before = prev
            .binary_search_by_key(&row.index, |p| p.index)
            .ok()
            .and_then(|i| prev[i].counters());
        c.carry_wraps(before, reset);
    }
}

/// The API's form of a row (what `Interface` was before it was packed), plus the counters
/// added for device metrics, each only when the agent reported it.
#[derive(Serialize, Deserialize, Default)]
struct InterfaceJson {
    index: u32,
    descr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alias: Option<String>,
    admin_status: i64,
    oper_status: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    in_octets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    out_octets: Option<u64>,
    /// The octet counters are 32-bit ones carried over their wraps.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    octets_32bit: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    in_ucast_pkts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    out_ucast_pkts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    in_errors: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    out_errors: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    in_discards: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    out_discards: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    speed_bps: Option<u64>,
}

impl From<InterfaceJson> for Interface {
    fn from(j: InterfaceJson) -> Interface {
        let mut present = 0u16;
        let mut take64 = |v: Option<u64>, bit: u16| v.inspect(|_| present |= bit).unwrap_or(0);
        let mut c = Counters {
            in_octets: take64(j.in_octets, has::IN_OCTETS),
            out_octets: take64(j.out_octets, has::OUT_OCTETS),
            in_ucast: take64(j.in_ucast_pkts, has::IN_UCAST),
            out_ucast: take64(j.out_ucast_pkts, has::OUT_UCAST),
            speed_bps: take64(j.speed_bps, has::SPEED),
            ..Counters::default()
        };
        let mut take32 = |v: Option<u32>, bit: u16| v.inspect(|_| present |= bit).unwrap_or(0);
        c.in_errors = take32(j.in_errors, has::IN_ERRORS);
        c.out_errors = take32(j.out_errors, has::OUT_ERRORS);
        c.in_discards = take32(j.in_discards, has::IN_DISCARDS);
        c.out_discards = take32(j.out_discards, has::OUT_DISCARDS);
        c.present = present;
        if j.octets_32bit && c.present != 0 {
            c.present |= has::NARROW_OCTETS;
        }
        Interface::with_labels(j.index, &j.descr, j.name.as_deref(), j.alias.as_deref())
            .with_status(status_byte(j.admin_status), status_byte(j.oper_status))
            .with_counters(c)
    }
}

impl From<Interface> for InterfaceJson {
    fn from(i: Interface) -> InterfaceJson {
        let mut j = InterfaceJson {
            index: i.index,
            descr: i.descr().to_owned(),
            name: i.name().map(str::to_owned),
            alias: i.alias().map(str::to_owned),
            admin_status: i64::from(i.admin_status),
            oper_status: i64::from(i.oper_status),
            ..InterfaceJson::default()
        };
        if let Some(c) = i.counters() {
            let pick64 = |bit: u16, v: u64| c.has(bit).then_some(v);
            let pick32 = |bit: u16, v: u32| c.has(bit).then_some(v);
            j.in_octets = pick64(has::IN_OCTETS, c.in_octets);
            j.out_octets = pick64(has::OUT_OCTETS, c.out_octets);
            j.octets_32bit = c.has(has::NARROW_OCTETS);
            j.in_ucast_pkts = pick64(has::IN_UCAST, c.in_ucast);
            j.out_ucast_pkts = pick64(has::OUT_UCAST, c.out_ucast);
            j.speed_bps = pick64(has::SPEED, c.speed_bps);
            j.in_errors = pick32(has::IN_ERRORS, c.in_errors);
            j.out_errors = pick32(has::OUT_ERRORS, c.out_errors);
            j.in_discards = pick32(has::IN_DISCARDS, c.in_discards);
            j.out_discards = pick32(has::OUT_DISCARDS, c.out_discards);
        }
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_24_bytes_and_its_counters_fit_64() {
        assert_eq!(std::mem::size_of::<Interface>(), 24);
        assert!(std::mem::size_of::<Counters>() <= 64);
    }

    #[test]
    fn narrow_octets_carry_over_wraps_and_restart_on_reset() {
        let narrow = |v: u64| Counters {
            in_octets: v,
            present: has::IN_OCTETS | has::NARROW_OCTETS,
            ..Counters::default()
        };
        let mut prev = narrow(u64::from(u32::MAX) - 10);
        let mut next = narrow(5);
        next.carry_wraps(Some(&prev), false);
        assert_eq!(next.in_octets, u64::from(u32::MAX) + 6);
        prev = next;
        let mut later = narrow(100);
        later.carry_wraps(Some(&prev), false);
        assert_eq!(later.in_octets, (1u64 << 32) + 100);
        let mut after_reboot = narrow(7);
        after_reboot.carry_wraps(Some(&later), true);
        assert_eq!(after_reboot.in_octets, 7);
        // 64-bit counters are the agent's raw values, never touched.
        let mut hc = Counters {
            in_octets: 3,
            present: has::IN_OCTETS,
            ..Counters::default()
        };
        hc.carry_wraps(Some(&prev), false);
        assert_eq!(hc.in_octets, 3);
    }

    #[test]
    fn clone_from_keeps_the_counters_box() {
        let mut a = Interface::new(1, "eth0", None).with_octets(Some(1), Some(2));
        let at = a.counters().map(|c| c as *const Counters);
        let b = Interface::new(1, "eth0", None).with_octets(Some(3), None);
        a.clone_from(&b);
        assert_eq!(a, b);
        assert_eq!(a.counters().map(|c| c as *const Counters), at);
    }

    #[test]
    fn rows_with_the_same_names_share_them() {
        let a = Interface::new(1, "GigabitEthernet0/1", Some("Gi0/1"));
        let b = Interface::new(7, "GigabitEthernet0/1", Some("Gi0/1"));
        assert!(Arc::ptr_eq(&a.labels, &b.labels));
        assert!(b.is_called("Gi0/1") && b.is_called("GigabitEthernet0/1"));
    }

    #[test]
    fn json_is_the_api_contract() {
        let i = Interface::new(3, "eth0", None)
            .with_status(1, 2)
            .with_octets(Some(0), None);
        let v = serde_json::to_value(&i).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"index": 3, "descr": "eth0", "admin_status": 1,
                               "oper_status": 2, "in_octets": 0})
        );
        let back: Interface = serde_json::from_value(v).unwrap();
        assert_eq!(back, i);
        let full =
            Interface::with_labels(4, "eth1", Some("e1"), Some("uplink")).with_counters(Counters {
                in_octets: 9,
                in_errors: 2,
                speed_bps: 1_000_000_000,
                present: has::IN_OCTETS | has::IN_ERRORS | has::SPEED | has::NARROW_OCTETS,
                ..Counters::default()
            });
        let v = serde_json::to_value(&full).unwrap();
        assert_eq!(v["octets_32bit"], true);
        assert_eq!(v["alias"], "uplink");
        let back: Interface = serde_json::from_value(v).unwrap();
        assert_eq!(back, full);
        let odd: Interface = serde_json::from_value(serde_json::json!(
            {"index": 1, "descr": "x", "admin_status": 300, "oper_status": -1}))
        .unwrap();
        assert_eq!((odd.admin_status, odd.oper_status), (0, 0));
    }
}
