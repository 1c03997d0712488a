//! Protocol operations (RFC 3416 for v2c and v3, RFC 1157 + RFC 2576 section 4.1.2 for v1):
//! turns a decoded request into the encoded reply, against any [`MibView`].

use rasn::types::ObjectIdentifier;
use rasn_snmp::v2::{VarBind, VarBindValue};

use super::codec::{CodecError, Operation, Reply, Request, Version, encode_reply, varbind_len};
use super::snmprec::{Dataset, Value};

const NO_ERROR: u32 = 0;
const TOO_BIG: u32 = 1;
const NO_SUCH_NAME: u32 = 2;
const NOT_WRITABLE: u32 = 17;

/// What one agent shows: the shared dataset's OIDs, with values it may override.
pub trait MibView {
    fn data(&self) -> &Dataset;
    /// The value this agent reports for `data().entries()[idx]`.
    fn value(&self, idx: usize) -> VarBindValue;
}

/// Reply size and work bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest reply datagram; v2c carries no size in the request, so this is the agent's own.
    pub max_size: usize,
    /// GetBulk max-repetitions above this are treated as this.
    pub max_repetitions: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: 65507,
            max_repetitions: 1000,
        }
    }
}

/// The encoded v1/v2c reply, or `None` when even a tooBig reply does not fit (RFC 3416 silent
/// drop).
pub fn answer(
    view: &impl MibView,
    req: &Request,
    limits: Limits,
) -> Result<Option<Vec<u8>>, CodecError> {
    answer_with(view, req, limits, |reply| {
        encode_reply(req.version, &req.community, reply)
    })
}

/// [`answer`] with the message envelope left to `encode` (v3 wraps the same PDU differently).
pub fn answer_with(
    view: &impl MibView,
    req: &Request,
    limits: Limits,
    mut encode: impl FnMut(&mut Reply) -> Result<Vec<u8>, CodecError>,
) -> Result<Option<Vec<u8>>, CodecError> {
    let names = &req.varbinds;
    let v1 = req.version == Version::V1;
    let (error_status, error_index, varbinds) = match req.op {
        Operation::Get | Operation::GetNext if v1 => match v1_get(view, req) {
            Ok(vbs) => (NO_ERROR, 0, vbs),
            Err(index) => (NO_SUCH_NAME, index, names.clone()),
        },
        Operation::Get => (
            NO_ERROR,
            0,
            names.iter().map(|v| get(view, &v.name)).collect(),
        ),
        Operation::GetNext => (
            NO_ERROR,
            0,
            names.iter().map(|v| next_v2(view, &v.name)).collect(),
        ),
        Operation::GetBulk { .. } if v1 => return Err(CodecError::BulkInV1),
        Operation::GetBulk {
            non_repeaters,
            max_repetitions,
        } => (
            NO_ERROR,
            0,
            bulk(view, req, non_repeaters, max_repetitions, limits),
        ),
        // Read-only agent. RFC 2576 maps notWritable to noSuchName for v1 managers.
        Operation::Set => {
            let status = if v1 { NO_SUCH_NAME } else { NOT_WRITABLE };
            let index = u32::from(!names.is_empty());
            (status, index, names.clone())
        }
    };
    let mut reply = Reply {
        request_id: req.request_id,
        error_status,
        error_index,
        varbinds,
    };
    let bytes = encode(&mut reply)?;
    if bytes.len() <= limits.max_size {
        return Ok(Some(bytes));
    }
    if matches!(req.op, Operation::GetBulk { .. })
        && shrink(&mut reply, bytes.len(), limits.max_size)
    {
        let bytes = encode(&mut reply)?;
        if bytes.len() <= limits.max_size {
            return Ok(Some(bytes));
        }
    }
    // v2 (RFC 3416 4.2.1): tooBig with empty varbinds. v1 (RFC 1157 4.1.2): the request's own.
    let mut reply = Reply {
        request_id: req.request_id,
        error_status: TOO_BIG,
        error_index: 0,
        varbinds: if v1 { names.clone() } else { Vec::new() },
    };
    let bytes = encode(&mut reply)?;
    Ok((bytes.len() <= limits.max_size).then_some(bytes))
}

/// Drops trailing varbinds (RFC 3416 4.2.3: "fewer variable bindings", not tooBig) so the reply
/// fits; false if not even one fits.
fn shrink(reply: &mut Reply, encoded: usize, max: usize) -> bool {
    let sizes: Vec<usize> = reply.varbinds.iter().map(varbind_len).collect();
    // Length octets only shrink with the content, so the full reply's overhead is an upper bound.
    let overhead = encoded.saturating_sub(sizes.iter().sum());
    let mut total = overhead;
    let mut keep = 0;
    for s in &sizes {
        if total + s > max {
            break;
        }
        total += s;
        keep += 1;
    }
    reply.varbinds.truncate(keep);
    keep > 0
}

fn get(view: &impl MibView, name: &ObjectIdentifier) -> VarBind {
    let data = view.data();
    let value = match data.find(name.as_ref()) {
        Some(i) => view.value(i),
        None if object_exists(data, name.as_ref()) => VarBindValue::NoSuchInstance,
        None => VarBindValue::NoSuchObject,
    };
    VarBind {
        name: name.clone(),
        value,
    }
}

/// Whether `oid` names a missing instance of a known object rather than an unknown object. The
/// dataset has no MIB, so an object is taken to be known when something is defined under the
/// request's parent (ifDescr.99 while ifDescr.1 exists; sysDescr without its `.0`).
fn object_exists(data: &Dataset, oid: &[u32]) -> bool {
    let Some((_, parent)) = oid.split_last() else {
        return false;
    };
    data.next_after(parent)
        .is_some_and(|i| data.entries()[i].oid().starts_with(parent))
}

fn next_v2(view: &impl MibView, name: &ObjectIdentifier) -> VarBind {
    let data = view.data();
    match data.next_after(name.as_ref()) {
        Some(i) => VarBind {
            name: data.entries()[i].name().clone(),
            value: view.value(i),
        },
        None => VarBind {
            name: name.clone(),
            value: VarBindValue::EndOfMibView,
        },
    }
}

fn bulk(
    view: &impl MibView,
    req: &Request,
    non_repeaters: u32,
    max_repetitions: u32,
    limits: Limits,
) -> Vec<VarBind> {
    let data = view.data();
    let names = &req.varbinds;
    let n = (non_repeaters as usize).min(names.len());
    let m = max_repetitions.min(limits.max_repetitions) as usize;
    let mut out: Vec<VarBind> = names[..n].iter().map(|v| next_v2(view, &v.name)).collect();
    let repeaters = &names[n..];
    if repeaters.is_empty() || m == 0 {
        return out;
    }
    // Where each repeater stands: Ok(entry index) or Err(name that reached the end of the view).
    let mut cursor: Vec<Result<usize, &ObjectIdentifier>> = repeaters
        .iter()
        .map(|v| data.next_after(v.name.as_ref()).ok_or(&v.name))
        .collect();
    // Generating far past the size limit is wasted work: the reply gets trimmed to fit anyway.
    let mut approx: usize = out.iter().map(|v| v.name.len() * 2 + 8).sum();
    out.reserve(repeaters.len() * m.min(64));
    for _ in 0..m {
        let mut all_ended = true;
        for c in cursor.iter_mut() {
            match *c {
                Ok(i) => {
                    let e = &data.entries()[i];
                    approx += e.ber_len();
                    out.push(VarBind {
                        name: e.name().clone(),
                        value: view.value(i),
                    });
                    all_ended = false;
                    *c = data.next_from(i + 1).ok_or(e.name());
                }
                Err(name) => {
                    approx += name.len() * 2 + 8;
                    out.push(VarBind {
                        name: name.clone(),
                        value: VarBindValue::EndOfMibView,
                    });
                }
            }
        }
        if all_ended || approx > limits.max_size {
            break;
        }
    }
    out
}

/// v1 Get/GetNext: no exceptions, and Counter64 is invisible (RFC 2576 4.1.2.1).
/// `Err` carries the 1-based index of the varbind that fails with noSuchName.
fn v1_get(view: &impl MibView, req: &Request) -> Result<Vec<VarBind>, u32> {
    let data = view.data();
    // Exception records (tags 128-130) have no v1 form either.
    let is_c64 = |i: usize| {
        let v = data.entries()[i].value();
        matches!(v, Value::Counter64(_)) || v.is_exception()
    };
    let mut out = Vec::with_capacity(req.varbinds.len());
    for (k, vb) in req.varbinds.iter().enumerate() {
        let oid = vb.name.as_ref();
        let found = if req.op == Operation::Get {
            data.find(oid).filter(|&i| !is_c64(i))
        } else {
            data.next_after(oid)
                .and_then(|start| (start..data.len()).find(|&i| !is_c64(i)))
        };
        let i = found.ok_or(k as u32 + 1)?;
        out.push(VarBind {
            name: data.entries()[i].name().clone(),
            value: view.value(i),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain(Dataset);

    impl MibView for Plain {
        fn data(&self) -> &Dataset {
            &self.0
        }
        fn value(&self, idx: usize) -> VarBindValue {
            self.0.entries()[idx].wire().clone()
        }
    }

    fn view() -> Plain {
        Plain(Dataset::router24().expect("template"))
    }

    fn oid(s: &str) -> ObjectIdentifier {
        ObjectIdentifier::new(crate::sim::snmprec::parse_oid(s).expect("oid")).expect("oid")
    }

    fn request(version: Version, op: Operation, oids: &[&str]) -> Request {
        Request {
            version,
            community: b"public".to_vec().into(),
            request_id: 77,
            op,
            varbinds: oids
                .iter()
                .map(|s| VarBind {
                    name: oid(s),
                    value: VarBindValue::Unspecified,
                })
                .collect(),
        }
    }

    /// Decodes our reply with snmp2, an independent BER implementation.
    fn parse(bytes: &[u8]) -> (u32, u32, Vec<(String, String)>) {
        let pdu = snmp2::Pdu::from_bytes(bytes).expect("snmp2 parses our reply");
        assert_eq!(pdu.req_id, 77);
        assert_eq!(pdu.message_type, snmp2::MessageType::Response);
        let vbs = pdu
            .varbinds
            .map(|(name, value)| (name.to_string(), format!("{value:?}")))
            .collect();
        (pdu.error_status, pdu.error_index, vbs)
    }

    fn run(req: &Request, limits: Limits) -> (u32, u32, Vec<(String, String)>) {
        let bytes = answer(&view(), req, limits).expect("answer").expect("fits");
        assert!(bytes.len() <= limits.max_size);
        parse(&bytes)
    }

    #[test]
    fn get_values_and_exceptions() {
        let req = request(
            Version::V2c,
            Operation::Get,
            &[
                "1.3.6.1.2.1.1.5.0",
                "1.3.6.1.2.1.2.2.1.2.99",
                "1.3.6.1.2.1.99.0",
                "1.3.6.1.2.1.1.1",
            ],
        );
        let (status, _, vbs) = run(&req, Limits::default());
        assert_eq!(status, 0);
        assert_eq!(vbs[0].0, "1.3.6.1.2.1.1.5.0");
        assert!(vbs[0].1.contains("router24"), "{:?}", vbs[0]);
        assert!(vbs[1].1.contains("NO SUCH INSTANCE"), "{:?}", vbs[1]);
        assert!(vbs[2].1.contains("NO SUCH OBJECT"), "{:?}", vbs[2]);
        assert!(vbs[3].1.contains("NO SUCH INSTANCE"), "{:?}", vbs[3]);
    }

    #[test]
    fn getnext_walks_and_ends() {
        let req = request(
            Version::V2c,
            Operation::GetNext,
            &[
                "1.3.6.1.2.1.1",
                "1.3.6.1.2.1.31.1.1.1.18.24",
                "1.3.6.1.2.1.2.2.1.10.24",
            ],
        );
        let (_, _, vbs) = run(&req, Limits::default());
        assert_eq!(vbs[0].0, "1.3.6.1.2.1.1.1.0");
        assert_eq!(vbs[1].0, "1.3.6.1.2.1.31.1.1.1.18.24");
        assert!(vbs[1].1.contains("END OF MIB VIEW"), "{:?}", vbs[1]);
        // The next column's first row (ifInDiscards, after ifInOctets.24).
        assert_eq!(vbs[2].0, "1.3.6.1.2.1.2.2.1.13.1");
        assert!(vbs[2].1.contains("COUNTER32: 1"), "{:?}", vbs[2]);
    }

    #[test]
    fn bulk_repeats_and_stops_at_end_of_view() {
        let bulk = |n, m| Operation::GetBulk {
            non_repeaters: n,
            max_repetitions: m,
        };
        let req = request(
            Version::V2c,
            bulk(1, 5),
            &["1.3.6.1.2.1.1.3", "1.3.6.1.2.1.2.2.1.2"],
        );
        let (_, _, vbs) = run(&req, Limits::default());
        assert_eq!(vbs.len(), 6);
        assert_eq!(vbs[0].0, "1.3.6.1.2.1.1.3.0");
        assert_eq!(vbs[5].0, "1.3.6.1.2.1.2.2.1.2.5");

        let req = request(Version::V2c, bulk(0, 50), &["1.3.6.1.2.1.31.1.1.1.18.22"]);
        let (_, _, vbs) = run(&req, Limits::default());
        // Two real rows, then one endOfMibView row, then stop.
        assert_eq!(vbs.len(), 3);
        assert!(vbs[2].1.contains("END OF MIB VIEW"));
        assert_eq!(vbs[2].0, "1.3.6.1.2.1.31.1.1.1.18.24");

        // Whole MIB in one request, max-repetitions capped.
        let req = request(Version::V2c, bulk(0, u32::MAX), &["1.3"]);
        let (_, _, vbs) = run(&req, Limits::default());
        assert_eq!(vbs.len(), 536 + 1);
    }

    #[test]
    fn bulk_trims_to_size_get_says_too_big() {
        let limits = Limits {
            max_size: 484,
            max_repetitions: 1000,
        };
        let op = Operation::GetBulk {
            non_repeaters: 0,
            max_repetitions: 200,
        };
        let (status, _, vbs) = run(&request(Version::V2c, op, &["1.3"]), limits);
        assert_eq!(status, 0);
        assert!(!vbs.is_empty() && vbs.len() < 200, "{}", vbs.len());

        let oids = vec!["1.3.6.1.2.1.2.2.1.2.1"; 40];
        let (status, index, vbs) = run(&request(Version::V2c, Operation::Get, &oids), limits);
        assert_eq!((status, index, vbs.len()), (TOO_BIG, 0, 0));

        let tiny = Limits {
            max_size: 20,
            max_repetitions: 10,
        };
        let none = answer(&view(), &request(Version::V2c, Operation::Get, &oids), tiny);
        assert!(none.expect("no error").is_none());
    }

    #[test]
    fn v1_uses_no_such_name_and_hides_counter64() {
        let req = request(
            Version::V1,
            Operation::Get,
            &["1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.99.0"],
        );
        let (status, index, vbs) = run(&req, Limits::default());
        assert_eq!((status, index, vbs.len()), (NO_SUCH_NAME, 2, 2));

        // ifXTable .6 and .10 are Counter64; GetNext must jump over them to .15.
        let req = request(
            Version::V1,
            Operation::GetNext,
            &["1.3.6.1.2.1.31.1.1.1.1.24"],
        );
        let (status, _, vbs) = run(&req, Limits::default());
        assert_eq!(status, 0);
        assert_eq!(vbs[0].0, "1.3.6.1.2.1.31.1.1.1.15.1");

        let req = request(
            Version::V1,
            Operation::GetNext,
            &["1.3.6.1.2.1.31.1.1.1.18.24"],
        );
        let (status, index, _) = run(&req, Limits::default());
        assert_eq!((status, index), (NO_SUCH_NAME, 1));
    }

    #[test]
    fn set_is_refused() {
        let req = request(Version::V2c, Operation::Set, &["1.3.6.1.2.1.1.5.0"]);
        let (status, index, _) = run(&req, Limits::default());
        assert_eq!((status, index), (NOT_WRITABLE, 1));
    }
}
