//! What one SNMP poll of an element reads: the system group and the interface tables.

use crate::lease::Lease;
use crate::model::interface::{Counters, has, status_byte};
use crate::model::intern::shared_str;
use crate::model::{Interface, PollData};
use crate::snmp::client::{Client, OwnedValue, SnmpError, Target, oid};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) const SYS_DESCR: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 1, 0];
pub(crate) const SYS_UPTIME: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 3, 0];
pub(crate) const SYS_NAME: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 5, 0];

const IF_TABLE: [u32; 9] = [1, 3, 6, 1, 2, 1, 2, 2, 1];
const IFX_TABLE: [u32; 10] = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1];

/// The interface columns one poll walks, side by side in one GETBULK walk: ifTable, then
/// ifXTable (whose columns simply end at once on agents without it). ifDescr comes first:
/// it decides which rows exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Descr,
    Speed,
    Admin,
    Oper,
    InOctets,
    InDiscards,
    InErrors,
    OutOctets,
    OutDiscards,
    OutErrors,
    Name,
    HcInOctets,
    HcInUcast,
    HcOutOctets,
    HcOutUcast,
    HighSpeed,
    Alias,
}

const COLUMNS: [(Col, bool, u32); 17] = [
    (Col::Descr, false, 2),
    (Col::Speed, false, 5),
    (Col::Admin, false, 7),
    (Col::Oper, false, 8),
    (Col::InOctets, false, 10),
    (Col::InDiscards, false, 13),
    (Col::InErrors, false, 14),
    (Col::OutOctets, false, 16),
    (Col::OutDiscards, false, 19),
    (Col::OutErrors, false, 20),
    (Col::Name, true, 1),
    (Col::HcInOctets, true, 6),
    (Col::HcInUcast, true, 7),
    (Col::HcOutOctets, true, 10),
    (Col::HcOutUcast, true, 11),
    (Col::HighSpeed, true, 15),
    (Col::Alias, true, 18),
];

fn column_oid(ifx: bool, col: u32) -> Vec<u32> {
    let mut o = if ifx {
        IFX_TABLE.to_vec()
    } else {
        IF_TABLE.to_vec()
    };
    o.push(col);
    o
}

/// Guards memory against an agent that returns an endless table.
const MAX_INTERFACES: usize = 10_000;

pub(crate) async fn poll_snmp(target: Target, lease: Arc<Lease>) -> Result<PollData, SnmpError> {
    let max_rep = target.max_repetitions;
    let mut client = Client::new(target).with_lease(lease);
    let sys = client
        .get(&[oid(&SYS_UPTIME)?, oid(&SYS_NAME)?, oid(&SYS_DESCR)?])
        .await?;
    let mut data = PollData::default();
    for (arcs, v) in sys {
        if arcs == SYS_UPTIME {
            data.sys_uptime = match v {
                OwnedValue::Ticks(t) => Some(t),
                _ => None,
            };
        } else if arcs == SYS_NAME {
            data.sys_name = v.as_text();
        } else if arcs == SYS_DESCR {
            data.sys_descr = v.as_text().as_deref().map(shared_str);
        }
    }
    let oids: Vec<Vec<u32>> = COLUMNS.iter().map(|&(_, x, c)| column_oid(x, c)).collect();
    let cols: Vec<&[u32]> = oids.iter().map(Vec::as_slice).collect();
    let walked = client.walk_columns(&cols, max_rep, MAX_INTERFACES).await?;
    data.interfaces = build_interfaces(&walked);
    Ok(data)
}

/// Joins the walked columns (in [`COLUMNS`] order) by ifIndex; rows without ifDescr are
/// dropped (not a real row). Octets and speed prefer ifXTable's 64-bit/Mbit columns and fall
/// back to ifTable's 32-bit ones, marked `NARROW_OCTETS` so that polls carry their wraps.
fn build_interfaces(cols: &[Vec<(Vec<u32>, OwnedValue)>]) -> Vec<Interface> {
    #[derive(Default)]
    struct Row {
        descr: String,
        name: Option<String>,
        alias: Option<String>,
        admin: i64,
        oper: i64,
        c: Counters,
        narrow_in: Option<u64>,
        narrow_out: Option<u64>,
        speed: Option<u64>,
        high_speed: Option<u64>,
    }
    let mut by_index: BTreeMap<u32, Row> = BTreeMap::new();
    let single = |idx: &[u32]| (idx.len() == 1).then(|| idx[0]);
    if let Some(descr) = cols.first() {
        for (idx, v) in descr {
            if let Some(i) = single(idx) {
                let descr = v.as_text().unwrap_or_default();
                by_index.insert(
                    i,
                    Row {
                        descr,
                        ..Row::default()
                    },
                );
            }
        }
    }
    for (n, rows) in cols.iter().enumerate().skip(1) {
        let Some(&(col, _, _)) = COLUMNS.get(n) else {
            continue;
        };
        for (idx, v) in rows {
            let Some(row) = single(idx).and_then(|i| by_index.get_mut(&i)) else {
                continue;
            };
            let c = &mut row.c;
            let u64_into = |slot: &mut u64, present: &mut u16, bit: u16| {
                if let Some(x) = v.as_u64() {
                    *slot = x;
                    *present |= bit;
                }
            };
            // Counter32 columns: an out-of-range value is not a counter this agent has.
            let u32_into = |slot: &mut u32, present: &mut u16, bit: u16| {
                if let Some(x) = v.as_u64().and_then(|x| u32::try_from(x).ok()) {
                    *slot = x;
                    *present |= bit;
                }
            };
            match col {
                Col::Descr => {}
                Col::Admin => row.admin = v.as_i64().unwrap_or(0),
                Col::Oper => row.oper = v.as_i64().unwrap_or(0),
                Col::Name => row.name = v.as_text(),
                Col::Alias => row.alias = v.as_text(),
                Col::Speed => row.speed = v.as_u64(),
                Col::HighSpeed => row.high_speed = v.as_u64(),
                Col::InOctets => row.narrow_in = v.as_u64(),
                Col::OutOctets => row.narrow_out = v.as_u64(),
                Col::HcInOctets => u64_into(&mut c.in_octets, &mut c.present, has::IN_OCTETS),
                Col::HcOutOctets => u64_into(&mut c.out_octets, &mut c.present, has::OUT_OCTETS),
                Col::HcInUcast => u64_into(&mut c.in_ucast, &mut c.present, has::IN_UCAST),
                Col::HcOutUcast => u64_into(&mut c.out_ucast, &mut c.present, has::OUT_UCAST),
                Col::InErrors => u32_into(&mut c.in_errors, &mut c.present, has::IN_ERRORS),
                Col::OutErrors => u32_into(&mut c.out_errors, &mut c.present, has::OUT_ERRORS),
                Col::InDiscards => u32_into(&mut c.in_discards, &mut c.present, has::IN_DISCARDS),
                Col::OutDiscards => {
                    u32_into(&mut c.out_discards, &mut c.present, has::OUT_DISCARDS)
                }
            }
        }
    }
    by_index
        .into_iter()
        .map(|(index, mut r)| {
            let c = &mut r.c;
            let hc = c.has(has::IN_OCTETS) || c.has(has::OUT_OCTETS);
            if !hc && (r.narrow_in.is_some() || r.narrow_out.is_some()) {
                c.present |= has::NARROW_OCTETS;
                if let Some(v) = r.narrow_in {
                    c.in_octets = v & u64::from(u32::MAX);
                    c.present |= has::IN_OCTETS;
                }
                if let Some(v) = r.narrow_out {
                    c.out_octets = v & u64::from(u32::MAX);
                    c.present |= has::OUT_OCTETS;
                }
            }
            // ifHighSpeed is in Mbit/s; 0 means "below 1 Mbit/s", where ifSpeed is exact.
            let speed = match (r.high_speed, r.speed) {
                (Some(hs), _) if hs > 0 => Some(hs.saturating_mul(1_000_000)),
                (_, Some(s)) => Some(s),
                (Some(hs), None) => Some(hs),
                (None, None) => None,
            };
            if let Some(s) = speed {
                c.speed_bps = s;
                c.present |= has::SPEED;
            }
            Interface::with_labels(index, &r.descr, r.name.as_deref(), r.alias.as_deref())
                .with_status(status_byte(r.admin), status_byte(r.oper))
                .with_counters(r.c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rows = Vec<(Vec<u32>, OwnedValue)>;

    /// Walk results in [`COLUMNS`] order from `(column, rows)` pairs.
    fn walked(given: Vec<(Col, Rows)>) -> Vec<Rows> {
        let mut cols = vec![Vec::new(); COLUMNS.len()];
        for (col, rows) in given {
            let n = COLUMNS.iter().position(|c| c.0 == col).unwrap();
            cols[n] = rows;
        }
        cols
    }

    fn t(s: &str) -> OwnedValue {
        OwnedValue::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn interfaces_join_by_index_and_skip_rows_without_descr() {
        let cols = walked(vec![
            (Col::Descr, vec![(vec![1], t("eth0")), (vec![2], t("eth1"))]),
            (
                Col::Admin,
                vec![
                    (vec![1], OwnedValue::Integer(1)),
                    (vec![2], OwnedValue::Integer(1)),
                ],
            ),
            (
                Col::Oper,
                vec![
                    (vec![1], OwnedValue::Integer(1)),
                    (vec![2], OwnedValue::Integer(2)),
                ],
            ),
            (Col::Name, vec![(vec![2], t("e1")), (vec![9], t("ghost"))]),
            (Col::Alias, vec![(vec![2], t("uplink"))]),
            (Col::HcInOctets, vec![(vec![1], OwnedValue::Counter(5))]),
            (Col::InOctets, vec![(vec![1], OwnedValue::Counter(4))]),
            (Col::InErrors, vec![(vec![2], OwnedValue::Counter(3))]),
            (
                Col::HcOutUcast,
                vec![(vec![2], OwnedValue::Counter(1 << 40))],
            ),
            (Col::HighSpeed, vec![(vec![1], OwnedValue::Counter(1000))]),
            (Col::Speed, vec![(vec![2], OwnedValue::Counter(10_000_000))]),
        ]);
        let ifs = build_interfaces(&cols);
        assert_eq!(ifs.len(), 2);
        assert_eq!(ifs[1].oper_status, 2);
        assert_eq!(ifs[1].name(), Some("e1"));
        assert_eq!(ifs[1].alias(), Some("uplink"));
        assert_eq!(ifs[0].in_octets(), Some(5));
        assert_eq!(ifs[0].out_octets(), None);
        let c0 = ifs[0].counters().unwrap();
        assert!(!c0.has(has::NARROW_OCTETS), "ifHC* wins over ifInOctets");
        assert_eq!(c0.speed_bps, 1_000_000_000);
        let c1 = ifs[1].counters().unwrap();
        assert_eq!((c1.in_errors, c1.out_ucast), (3, 1 << 40));
        assert!(c1.has(has::IN_ERRORS) && !c1.has(has::OUT_ERRORS));
        assert_eq!(
            c1.speed_bps, 10_000_000,
            "ifSpeed where ifHighSpeed is absent"
        );
    }

    #[test]
    fn without_ifxtable_the_32_bit_octets_are_used_and_marked() {
        let cols = walked(vec![
            (Col::Descr, vec![(vec![1], t("eth0"))]),
            (Col::InOctets, vec![(vec![1], OwnedValue::Counter(7))]),
            (Col::OutOctets, vec![(vec![1], OwnedValue::Counter(9))]),
        ]);
        let ifs = build_interfaces(&cols);
        let c = ifs[0].counters().unwrap();
        assert!(c.has(has::NARROW_OCTETS));
        assert_eq!((c.in_octets, c.out_octets), (7, 9));
    }
}
