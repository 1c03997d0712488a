//! SNMPv3 (RFC 3412 message processing, RFC 3414 USM) at noAuthNoPriv only: engine discovery
//! and requests from one configured user. Authentication and privacy are not implemented; such
//! requests get a usmStatsUnsupportedSecLevels report, so a manager fails fast and clearly.

use rasn::types::{Integer, ObjectIdentifier, OctetString};
use rasn_snmp::v2::{Pdu, Pdus, Report, Response, VarBind};
use rasn_snmp::v3::{HeaderData, Message, ScopedPdu, ScopedPduData, USMSecurityParameters};

use super::codec::{CodecError, Reply, Request, Version, request_from_pdus};
use super::snmprec::{Value, to_wire};

const USM: u32 = 3;
const FLAG_AUTH: u8 = 0x01;
const FLAG_PRIV: u8 = 0x02;
const FLAG_REPORTABLE: u8 = 0x04;
/// usmStats (RFC 3414 section 5) instances: the counters named in discovery and error reports.
const UNSUPPORTED_SEC_LEVELS: [u32; 11] = [1, 3, 6, 1, 6, 3, 15, 1, 1, 1, 0];
const UNKNOWN_USER_NAMES: [u32; 11] = [1, 3, 6, 1, 6, 3, 15, 1, 1, 3, 0];
const UNKNOWN_ENGINE_IDS: [u32; 11] = [1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0];
/// snmpUnknownContexts.0 (SNMP-TARGET-MIB).
pub(crate) const UNKNOWN_CONTEXTS: [u32; 10] = [1, 3, 6, 1, 6, 3, 12, 1, 5, 0];
/// The IANA enterprise number reserved for documentation (RFC 5612), so the IDs claim no vendor.
const ENTERPRISE: u32 = 32473;

/// The authoritative engine an agent presents.
#[derive(Debug, Clone)]
pub struct Engine {
    pub id: OctetString,
    /// Reboots so far, starting at 1; a scheduled outage counts as a reboot.
    pub boots: u32,
    /// Seconds since the last (re)boot.
    pub time: u32,
}

/// RFC 3411 snmpEngineID in text format: agent `index`, or the single-port simulator (`None`).
pub fn engine_id(index: Option<usize>) -> OctetString {
    let mut id = (ENTERPRISE | 0x8000_0000).to_be_bytes().to_vec();
    id.push(4);
    id.extend_from_slice(b"emspool-sim");
    if let Some(i) = index {
        id.extend_from_slice(format!("-{i:05}").as_bytes());
    }
    OctetString::from(id)
}

/// The parts of an accepted request's envelope that the reply repeats.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    msg_id: Integer,
    pub max_size: usize,
    user: OctetString,
    pub context_name: OctetString,
}

/// What to do with a v3 datagram.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Send this report (discovery or a USM error).
    Report(Vec<u8>),
    /// Not reportable: drop silently.
    Drop,
    Serve(Envelope, Request),
}

/// Runs the USM checks of RFC 3414 3.2 for a noAuthNoPriv-only `user`. `reports` is the value
/// to put in a report's counter.
pub(crate) fn accept(
    datagram: &[u8],
    engine: &Engine,
    user: &[u8],
    reports: u32,
) -> Result<Verdict, CodecError> {
    let msg: Message = rasn::ber::decode(datagram).map_err(|e| CodecError::Ber(e.to_string()))?;
    if msg.version != Integer::from(3) {
        return Err(CodecError::Version(msg.version.to_string()));
    }
    if msg.global_data.security_model != Integer::from(USM) {
        return Err(CodecError::Ber("security model is not USM".into()));
    }
    let usm: USMSecurityParameters = rasn::ber::decode(&msg.security_parameters)
        .map_err(|e| CodecError::Ber(format!("USM parameters: {e}")))?;
    let flags = msg.global_data.flags.first().copied().unwrap_or(0);
    if flags & (FLAG_AUTH | FLAG_PRIV) == FLAG_PRIV {
        return Err(CodecError::Ber("privacy without authentication".into()));
    }
    let max_size = usize::try_from(&msg.global_data.max_size)
        .map_err(|_| CodecError::Ber("bad msgMaxSize".into()))?;
    let (context_name, pdus) = match msg.scoped_data {
        ScopedPduData::CleartextPdu(s) => (s.name, Some(s.data)),
        ScopedPduData::EncryptedPdu(_) => (OctetString::default(), None),
    };
    let env = Envelope {
        msg_id: msg.global_data.message_id,
        max_size,
        user: usm.user_name.clone(),
        context_name,
    };
    let counter = if usm.authoritative_engine_id != engine.id {
        Some(UNKNOWN_ENGINE_IDS)
    } else if usm.user_name.as_ref() != user {
        Some(UNKNOWN_USER_NAMES)
    } else if flags & FLAG_AUTH != 0 {
        Some(UNSUPPORTED_SEC_LEVELS)
    } else {
        None
    };
    let request = pdus.map(|p| request_from_pdus(Version::V3, OctetString::default(), p));
    match counter {
        None => match request {
            Some(req) => Ok(Verdict::Serve(env, req?)),
            None => Err(CodecError::Ber("encrypted PDU at noAuthNoPriv".into())),
        },
        Some(_) if flags & FLAG_REPORTABLE == 0 => Ok(Verdict::Drop),
        Some(oid) => {
            let request_id = request.and_then(Result::ok).map_or(0, |r| r.request_id);
            report(&env, engine, request_id, &oid, reports).map(Verdict::Report)
        }
    }
}

/// A Report-PDU carrying one usmStats/snmp counter.
pub(crate) fn report(
    env: &Envelope,
    engine: &Engine,
    request_id: i32,
    counter: &[u32],
    value: u32,
) -> Result<Vec<u8>, CodecError> {
    let name = ObjectIdentifier::new(counter.to_vec())
        .ok_or_else(|| CodecError::Encode("bad counter OID".into()))?;
    let value = to_wire(&Value::Counter32(value))
        .ok_or_else(|| CodecError::Encode("counter value".into()))?;
    let pdu = Pdus::Report(Report(Pdu {
        request_id,
        error_status: 0,
        error_index: 0,
        variable_bindings: vec![VarBind { name, value }],
    }));
    encode(env, engine, pdu).0
}

/// Encodes a Response in `env`'s envelope; lends `reply` like `codec::encode_reply`.
pub(crate) fn encode_response(
    env: &Envelope,
    engine: &Engine,
    reply: &mut Reply,
) -> Result<Vec<u8>, CodecError> {
    let pdu = Pdus::Response(Response(Pdu {
        request_id: reply.request_id,
        error_status: reply.error_status,
        error_index: reply.error_index,
        variable_bindings: std::mem::take(&mut reply.varbinds),
    }));
    let (bytes, pdu) = encode(env, engine, pdu);
    if let Pdus::Response(Response(p)) = pdu {
        reply.varbinds = p.variable_bindings;
    }
    bytes
}

fn encode(env: &Envelope, engine: &Engine, pdu: Pdus) -> (Result<Vec<u8>, CodecError>, Pdus) {
    let usm = USMSecurityParameters {
        authoritative_engine_id: engine.id.clone(),
        authoritative_engine_boots: Integer::from(engine.boots),
        authoritative_engine_time: Integer::from(engine.time),
        user_name: env.user.clone(),
        authentication_parameters: OctetString::default(),
        privacy_parameters: OctetString::default(),
    };
    let usm = match rasn::ber::encode(&usm) {
        Ok(b) => OctetString::from(b),
        Err(e) => return (Err(CodecError::Encode(e.to_string())), pdu),
    };
    let msg = Message {
        version: Integer::from(3),
        global_data: HeaderData {
            message_id: env.msg_id.clone(),
            max_size: Integer::from(super::DEFAULT_MAX_MSG_SIZE),
            // Responses and reports are never reportable (RFC 3412 7.1.7).
            flags: OctetString::from(vec![0u8]),
            security_model: Integer::from(USM),
        },
        security_parameters: usm,
        scoped_data: ScopedPduData::CleartextPdu(ScopedPdu {
            engine_id: engine.id.clone(),
            name: env.context_name.clone(),
            data: pdu,
        }),
    };
    let out = rasn::ber::encode(&msg).map_err(|e| CodecError::Encode(e.to_string()));
    let pdu = match msg.scoped_data {
        ScopedPduData::CleartextPdu(s) => s.data,
        ScopedPduData::EncryptedPdu(_) => Pdus::Report(Report(Pdu {
            request_id: 0,
            error_status: 0,
            error_index: 0,
            variable_bindings: Vec::new(),
        })),
    };
    (out, pdu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rasn_snmp::v2::{GetRequest, VarBindValue};

    fn engine() -> Engine {
        Engine {
            id: engine_id(Some(7)),
            boots: 2,
            time: 99,
        }
    }

    fn request(engine_id: &[u8], user: &[u8], flags: u8) -> Vec<u8> {
        let usm = USMSecurityParameters {
            authoritative_engine_id: OctetString::from(engine_id.to_vec()),
            authoritative_engine_boots: Integer::from(0),
            authoritative_engine_time: Integer::from(0),
            user_name: OctetString::from(user.to_vec()),
            authentication_parameters: OctetString::default(),
            privacy_parameters: OctetString::default(),
        };
        let name = ObjectIdentifier::new(vec![1, 3, 6, 1, 2, 1, 1, 5, 0]).expect("oid");
        let msg = Message {
            version: Integer::from(3),
            global_data: HeaderData {
                message_id: Integer::from(4242),
                max_size: Integer::from(1500),
                flags: OctetString::from(vec![flags]),
                security_model: Integer::from(USM),
            },
            security_parameters: OctetString::from(rasn::ber::encode(&usm).expect("usm")),
            scoped_data: ScopedPduData::CleartextPdu(ScopedPdu {
                engine_id: OctetString::from(engine_id.to_vec()),
                name: OctetString::default(),
                data: Pdus::GetRequest(GetRequest(Pdu {
                    request_id: 5,
                    error_status: 0,
                    error_index: 0,
                    variable_bindings: vec![VarBind {
                        name,
                        value: VarBindValue::Unspecified,
                    }],
                })),
            }),
        };
        rasn::ber::encode(&msg).expect("encode")
    }

    fn report_oid(bytes: &[u8]) -> (Vec<u32>, OctetString) {
        let msg: Message = rasn::ber::decode(bytes).expect("our report decodes");
        let usm: USMSecurityParameters = rasn::ber::decode(&msg.security_parameters).expect("usm");
        let ScopedPduData::CleartextPdu(s) = msg.scoped_data else {
            panic!("cleartext");
        };
        let Pdus::Report(Report(p)) = s.data else {
            panic!("report PDU");
        };
        (
            p.variable_bindings[0].name.to_vec(),
            usm.authoritative_engine_id,
        )
    }

    #[test]
    fn discovery_then_request() {
        let e = engine();
        let Verdict::Report(r) =
            accept(&request(b"", b"", FLAG_REPORTABLE), &e, b"sim", 1).expect("valid")
        else {
            panic!("discovery gets a report");
        };
        let (oid, id) = report_oid(&r);
        assert_eq!(oid, UNKNOWN_ENGINE_IDS);
        assert_eq!(id, e.id);

        let ok = accept(&request(&e.id, b"sim", FLAG_REPORTABLE), &e, b"sim", 1);
        let Ok(Verdict::Serve(env, req)) = ok else {
            panic!("served: {ok:?}");
        };
        assert_eq!(
            (req.version, req.request_id, env.max_size),
            (Version::V3, 5, 1500)
        );
        let mut reply = Reply {
            request_id: 5,
            error_status: 0,
            error_index: 0,
            varbinds: req.varbinds.clone(),
        };
        let bytes = encode_response(&env, &e, &mut reply).expect("encodes");
        assert_eq!(reply.varbinds.len(), 1, "varbinds lent back");
        let msg: Message = rasn::ber::decode(&bytes).expect("decodes");
        assert_eq!(msg.global_data.message_id, Integer::from(4242));
    }

    #[test]
    fn usm_errors_are_reported_or_dropped() {
        let e = engine();
        let cases = [
            (
                request(&e.id, b"other", FLAG_REPORTABLE),
                UNKNOWN_USER_NAMES,
            ),
            (
                request(&e.id, b"sim", FLAG_REPORTABLE | FLAG_AUTH),
                UNSUPPORTED_SEC_LEVELS,
            ),
        ];
        for (bytes, want) in cases {
            let Ok(Verdict::Report(r)) = accept(&bytes, &e, b"sim", 3) else {
                panic!("report expected");
            };
            assert_eq!(report_oid(&r).0, want);
        }
        let quiet = accept(&request(b"", b"", 0), &e, b"sim", 1);
        assert!(matches!(quiet, Ok(Verdict::Drop)));
        let bad = accept(&request(&e.id, b"sim", FLAG_PRIV), &e, b"sim", 1);
        assert!(bad.is_err());
        assert!(accept(b"\x30\x03\x02\x01\x03", &e, b"sim", 1).is_err());
    }

    #[test]
    fn engine_ids_are_per_agent() {
        assert_ne!(engine_id(Some(1)), engine_id(Some(2)));
        assert_eq!(&engine_id(None)[..5], &[0x80, 0x00, 0x7e, 0xd9, 4]);
    }
}
