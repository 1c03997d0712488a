//! SNMP v1/v2c messages on the wire, via rasn-snmp's BER types (v3's envelope is in `v3.rs`).
//!
//! v1 and v2c share the message layout and, for the PDUs an agent answers, the PDU layout too, so
//! both are decoded and encoded with the v2 types; the v1 differences (no exceptions, no
//! Counter64, no GetBulk) are semantics and live in `respond.rs`.

use rasn::types::{Integer, OctetString};
use rasn_snmp::v2::{Pdu, Pdus, Response, VarBind};
use rasn_snmp::v2c::Message;

/// Protocol version of a request; a reply uses the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2c,
    /// v2 PDU semantics inside a USM envelope (`v3.rs`).
    V3,
}

impl Version {
    fn wire(self) -> Integer {
        match self {
            Version::V1 => Integer::from(0),
            Version::V2c => Integer::from(1),
            Version::V3 => Integer::from(3),
        }
    }
}

/// The request operations an agent answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Get,
    GetNext,
    GetBulk {
        non_repeaters: u32,
        max_repetitions: u32,
    },
    Set,
}

/// A decoded request: everything needed to build the reply.
#[derive(Debug, Clone)]
pub struct Request {
    pub version: Version,
    /// Empty for v3.
    pub community: OctetString,
    pub request_id: i32,
    pub op: Operation,
    pub varbinds: Vec<VarBind>,
}

/// Why a datagram was not a request we answer. Every variant is counted as malformed and dropped.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not a BER-encoded SNMP message: {0}")]
    Ber(String),
    #[error("unsupported SNMP version {0}")]
    Version(String),
    #[error("PDU type {0} is not a request an agent answers")]
    NotARequest(&'static str),
    #[error("GetBulkRequest in an SNMPv1 message")]
    BulkInV1,
    #[error("cannot encode reply: {0}")]
    Encode(String),
}

/// The version field of a message, read without decoding the rest: v3 messages have another
/// layout, so the version picks the decoder. `None` if the datagram does not start like SNMP.
pub fn message_version(datagram: &[u8]) -> Option<u8> {
    let (&tag, rest) = datagram.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    // Long-form length: skip its length octets.
    let rest = if len & 0x80 != 0 {
        rest.get(usize::from(len & 0x7f)..)?
    } else {
        rest
    };
    match rest {
        [0x02, 0x01, v, ..] => Some(*v),
        _ => None,
    }
}

/// Decodes one v1/v2c datagram. Never panics on any input.
pub fn decode_request(datagram: &[u8]) -> Result<Request, CodecError> {
    let msg: Message<Pdus> =
        rasn::ber::decode(datagram).map_err(|e| CodecError::Ber(e.to_string()))?;
    let version = if msg.version == Integer::from(0) {
        Version::V1
    } else if msg.version == Integer::from(1) {
        Version::V2c
    } else {
        return Err(CodecError::Version(msg.version.to_string()));
    };
    request_from_pdus(version, msg.community, msg.data)
}

/// The request inside a PDU, whichever message carried it.
pub(crate) fn request_from_pdus(
    version: Version,
    community: OctetString,
    pdus: Pdus,
) -> Result<Request, CodecError> {
    let (op, request_id, varbinds) = match pdus {
        Pdus::GetRequest(p) => (Operation::Get, p.0.request_id, p.0.variable_bindings),
        Pdus::GetNextRequest(p) => (Operation::GetNext, p.0.request_id, p.0.variable_bindings),
        Pdus::SetRequest(p) => (Operation::Set, p.0.request_id, p.0.variable_bindings),
        Pdus::GetBulkRequest(_) if version == Version::V1 => return Err(CodecError::BulkInV1),
        Pdus::GetBulkRequest(b) => {
            let op = Operation::GetBulk {
                non_repeaters: b.0.non_repeaters,
                max_repetitions: b.0.max_repetitions,
            };
            (op, b.0.request_id, b.0.variable_bindings)
        }
        Pdus::Response(_) => return Err(CodecError::NotARequest("Response")),
        Pdus::InformRequest(_) => return Err(CodecError::NotARequest("InformRequest")),
        Pdus::Trap(_) => return Err(CodecError::NotARequest("Trap")),
        Pdus::Report(_) => return Err(CodecError::NotARequest("Report")),
    };
    Ok(Request {
        version,
        community,
        request_id,
        op,
        varbinds,
    })
}

/// The fields of a Response-PDU.
#[derive(Debug, Clone)]
pub struct Reply {
    pub request_id: i32,
    pub error_status: u32,
    pub error_index: u32,
    pub varbinds: Vec<VarBind>,
}

/// Encodes a v1/v2c `reply` (lent, not consumed, so a too-big reply can be trimmed and
/// re-encoded).
pub fn encode_reply(
    version: Version,
    community: &OctetString,
    reply: &mut Reply,
) -> Result<Vec<u8>, CodecError> {
    let msg = Message {
        version: version.wire(),
        community: community.clone(),
        data: Pdus::Response(Response(Pdu {
            request_id: reply.request_id,
            error_status: reply.error_status,
            error_index: reply.error_index,
            variable_bindings: std::mem::take(&mut reply.varbinds),
        })),
    };
    let out = rasn::ber::encode(&msg);
    if let Pdus::Response(Response(pdu)) = msg.data {
        reply.varbinds = pdu.variable_bindings;
    }
    out.map_err(|e| CodecError::Encode(e.to_string()))
}

/// Exact BER length of one varbind, SEQUENCE header included.
pub fn varbind_len(vb: &VarBind) -> usize {
    rasn::ber::encode(vb).map_or(usize::MAX, |b| b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::v3;
    use proptest::prelude::*;

    /// GetRequest sysName.0, community public, request-id 7, as Net-SNMP encodes it.
    const GET_SYSNAME: &[u8] = &[
        0x30, 0x26, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xa0, 0x19,
        0x02, 0x01, 0x07, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x0e, 0x30, 0x0c, 0x06, 0x08,
        0x2b, 6, 1, 2, 1, 1, 5, 0, 0x05, 0x00,
    ];

    fn with(patch: &[(usize, u8)]) -> Vec<u8> {
        let mut b = GET_SYSNAME.to_vec();
        for &(i, v) in patch {
            b[i] = v;
        }
        b
    }

    #[test]
    fn decodes_a_get() {
        let req = decode_request(GET_SYSNAME).expect("decodes");
        assert_eq!(req.version, Version::V2c);
        assert_eq!(req.community.as_ref(), b"public");
        assert_eq!((req.request_id, req.op), (7, Operation::Get));
        assert_eq!(req.varbinds.len(), 1);
        assert_eq!(&req.varbinds[0].name[..], &[1, 3, 6, 1, 2, 1, 1, 5, 0]);
        assert_eq!(message_version(GET_SYSNAME), Some(1));
    }

    #[test]
    fn rejects_what_an_agent_does_not_answer() {
        // GetBulk (tag 0xa5; error fields read as non-repeaters/max-repetitions) inside v1.
        let bulk_v1 = with(&[(4, 0), (13, 0xa5)]);
        assert!(matches!(
            decode_request(&bulk_v1),
            Err(CodecError::BulkInV1)
        ));
        let bulk_v2 = decode_request(&with(&[(13, 0xa5)])).expect("v2c bulk");
        assert!(matches!(bulk_v2.op, Operation::GetBulk { .. }));
        let response = with(&[(13, 0xa2)]);
        assert!(matches!(
            decode_request(&response),
            Err(CodecError::NotARequest(_))
        ));
        let v2 = with(&[(4, 2)]);
        assert!(matches!(decode_request(&v2), Err(CodecError::Version(_))));
        for junk in [
            &b""[..],
            b"\x30",
            b"\x30\x03\x02\x01\x09",
            &[0xff; 64],
            b"\x30\x80\x02",
        ] {
            assert!(decode_request(junk).is_err());
        }
        assert_eq!(message_version(b"\x30\x81\x26\x02\x01\x03"), Some(3));
        assert_eq!(message_version(b"\x30\x84\x02\x01\x03"), None);
        assert_eq!(message_version(b"\x04\x01\x02\x01\x01"), None);
    }

    fn v3_engine() -> v3::Engine {
        v3::Engine {
            id: v3::engine_id(Some(0)),
            boots: 1,
            time: 0,
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = message_version(&bytes);
            let _ = decode_request(&bytes);
            let _ = v3::accept(&bytes, &v3_engine(), b"u", 1);
        }

        #[test]
        fn mutated_requests_never_panic(i in 0..GET_SYSNAME.len(), v in any::<u8>(), cut in 0..GET_SYSNAME.len() + 1) {
            let mut b = with(&[(i, v)]);
            b.truncate(cut);
            let _ = decode_request(&b);
            let _ = v3::accept(&b, &v3_engine(), b"u", 1);
        }
    }
}
