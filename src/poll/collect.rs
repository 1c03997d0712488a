//! What one SNMP poll of an element reads: the system group and the interface tables.

use crate::model::interface::status_byte;
use crate::model::intern::shared_str;
use crate::model::{Interface, PollData};
use crate::snmp::client::{Client, OwnedValue, SnmpError, Target, oid};
use std::collections::BTreeMap;

pub(crate) const SYS_DESCR: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 1, 0];
pub(crate) const SYS_UPTIME: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 3, 0];
pub(crate) const SYS_NAME: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 5, 0];

const IF_DESCR: [u32; 10] = [1, 3, 6, 1, 2, 1, 2, 2, 1, 2];
const IF_ADMIN: [u32; 10] = [1, 3, 6, 1, 2, 1, 2, 2, 1, 7];
const IF_OPER: [u32; 10] = [1, 3, 6, 1, 2, 1, 2, 2, 1, 8];
const IFX_NAME: [u32; 11] = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1];
const IFX_HC_IN: [u32; 11] = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6];
const IFX_HC_OUT: [u32; 11] = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10];

/// Guards memory against an agent that returns an endless table.
const MAX_INTERFACES: usize = 10_000;

pub(crate) async fn poll_snmp(target: Target) -> Result<PollData, SnmpError> {
    let max_rep = target.max_repetitions;
    let mut client = Client::new(target);
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
    // One walk for both tables: ifXTable columns simply end at once where it is absent.
    let cols: [&[u32]; 6] = [
        &IF_DESCR,
        &IF_ADMIN,
        &IF_OPER,
        &IFX_NAME,
        &IFX_HC_IN,
        &IFX_HC_OUT,
    ];
    let walked = client.walk_columns(&cols, max_rep, MAX_INTERFACES).await?;
    data.interfaces = build_interfaces(&walked);
    Ok(data)
}

/// Joins the walked columns by ifIndex; rows without ifDescr are dropped (not a real row).
fn build_interfaces(cols: &[Vec<(Vec<u32>, OwnedValue)>]) -> Vec<Interface> {
    #[derive(Default)]
    struct Row {
        descr: String,
        name: Option<String>,
        admin: i64,
        oper: i64,
        in_octets: Option<u64>,
        out_octets: Option<u64>,
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
    for (col, rows) in cols.iter().enumerate().skip(1) {
        for (idx, v) in rows {
            let Some(row) = single(idx).and_then(|i| by_index.get_mut(&i)) else {
                continue;
            };
            match col {
                1 => row.admin = v.as_i64().unwrap_or(0),
                2 => row.oper = v.as_i64().unwrap_or(0),
                3 => row.name = v.as_text(),
                4 => row.in_octets = v.as_u64(),
                5 => row.out_octets = v.as_u64(),
                _ => {}
            }
        }
    }
    by_index
        .into_iter()
        .map(|(index, r)| {
            Interface::new(index, &r.descr, r.name.as_deref())
                .with_status(status_byte(r.admin), status_byte(r.oper))
                .with_octets(r.in_octets, r.out_octets)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_join_by_index_and_skip_rows_without_descr() {
        let t = |s: &str| OwnedValue::Bytes(s.as_bytes().to_vec());
        let cols = vec![
            vec![(vec![1], t("eth0")), (vec![2], t("eth1"))],
            vec![
                (vec![1], OwnedValue::Integer(1)),
                (vec![2], OwnedValue::Integer(1)),
            ],
            vec![
                (vec![1], OwnedValue::Integer(1)),
                (vec![2], OwnedValue::Integer(2)),
            ],
            vec![(vec![2], t("e1")), (vec![9], t("ghost"))],
            vec![(vec![1], OwnedValue::Counter(5))],
            vec![],
        ];
        let ifs = build_interfaces(&cols);
        assert_eq!(ifs.len(), 2);
        assert_eq!(ifs[1].oper_status, 2);
        assert_eq!(ifs[1].name(), Some("e1"));
        assert_eq!(ifs[0].in_octets(), Some(5));
        assert_eq!(ifs[0].out_octets(), None);
    }
}
