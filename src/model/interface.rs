//! One row of an element's interface table, as the owner keeps it between polls.
//!
//! Interface rows are most of what a server holds per element (24 rows on a typical access
//! router), so a row is 32 bytes: statuses as bytes, counters without `Option`'s padding, and
//! both names behind one interned pointer. The JSON form is unchanged (`InterfaceJson`).

use crate::model::intern::Interner;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, LazyLock};

/// ifDescr and ifName (ifXTable), or a NETCONF interface name for both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Labels {
    descr: Box<str>,
    name: Option<Box<str>>,
}

static LABELS: LazyLock<Interner<Labels>> = LazyLock::new(Interner::default);

const HAS_IN: u8 = 1;
const HAS_OUT: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "InterfaceJson", into = "InterfaceJson")]
pub struct Interface {
    pub index: u32,
    /// ifAdminStatus: 1 up, 2 down, 3 testing; 0 when absent or out of range.
    pub admin_status: u8,
    /// ifOperStatus: 1 up, 2 down, ... 7; 0 when absent or out of range.
    pub oper_status: u8,
    counters: u8,
    labels: Arc<Labels>,
    in_octets: u64,
    out_octets: u64,
}

/// An SNMP INTEGER or YANG enum number as a status byte: anything outside 0..=255 is not a
/// status any MIB defines, so it reads as 0 (unknown) rather than wrapping into a valid one.
pub fn status_byte(v: i64) -> u8 {
    u8::try_from(v).unwrap_or(0)
}

impl Interface {
    pub fn new(index: u32, descr: &str, name: Option<&str>) -> Interface {
        let probe = Labels {
            descr: descr.into(),
            name: name.map(Into::into),
        };
        Interface {
            index,
            admin_status: 0,
            oper_status: 0,
            counters: 0,
            labels: LABELS.intern(&probe, |l| Arc::new(l.clone())),
            in_octets: 0,
            out_octets: 0,
        }
    }

    pub fn with_status(mut self, admin: u8, oper: u8) -> Interface {
        self.admin_status = admin;
        self.oper_status = oper;
        self
    }

    pub fn with_octets(mut self, inbound: Option<u64>, outbound: Option<u64>) -> Interface {
        self.counters = 0;
        if let Some(v) = inbound {
            self.counters |= HAS_IN;
            self.in_octets = v;
        }
        if let Some(v) = outbound {
            self.counters |= HAS_OUT;
            self.out_octets = v;
        }
        self
    }

    pub fn descr(&self) -> &str {
        &self.labels.descr
    }

    pub fn name(&self) -> Option<&str> {
        self.labels.name.as_deref()
    }

    /// Whether `label` is this interface's ifDescr or ifName.
    pub fn is_called(&self, label: &str) -> bool {
        self.descr() == label || self.name() == Some(label)
    }

    pub fn in_octets(&self) -> Option<u64> {
        (self.counters & HAS_IN != 0).then_some(self.in_octets)
    }

    pub fn out_octets(&self) -> Option<u64> {
        (self.counters & HAS_OUT != 0).then_some(self.out_octets)
    }
}

/// The API's form of a row (what `Interface` was before it was packed).
#[derive(Serialize, Deserialize)]
struct InterfaceJson {
    index: u32,
    descr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    admin_status: i64,
    oper_status: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    in_octets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    out_octets: Option<u64>,
}

impl From<InterfaceJson> for Interface {
    fn from(j: InterfaceJson) -> Interface {
        Interface::new(j.index, &j.descr, j.name.as_deref())
            .with_status(status_byte(j.admin_status), status_byte(j.oper_status))
            .with_octets(j.in_octets, j.out_octets)
    }
}

impl From<Interface> for InterfaceJson {
    fn from(i: Interface) -> InterfaceJson {
        InterfaceJson {
            index: i.index,
            descr: i.descr().to_owned(),
            name: i.name().map(str::to_owned),
            admin_status: i64::from(i.admin_status),
            oper_status: i64::from(i.oper_status),
            in_octets: i.in_octets(),
            out_octets: i.out_octets(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Interface>(), 32);
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
        let odd: Interface = serde_json::from_value(serde_json::json!(
            {"index": 1, "descr": "x", "admin_status": 300, "oper_status": -1}))
        .unwrap();
        assert_eq!((odd.admin_status, odd.oper_status), (0, 0));
    }
}
