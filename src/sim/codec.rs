//! SNMP v1/v2c messages on the wire, via rasn-snmp's BER types.
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
}

impl Version {
    fn wire(self) -> Integer {
        match self {
            Version::V1 => Integer::from(0),
            Version::V2c => Integer::from(1),
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
    pub community: OctetString,
    pub request_id: i32,
    pub op: Operation,
    pub varbinds: Vec<VarBind>,
}

/// Why a datagram was not a request we answer. Every variant is counted as malformed and dropped.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not a BER-encoded SNMP v1/v2c message: {0}")]
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

/// Decodes one datagram. Never panics on any input.
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
    let (op, pdu) = match msg.data {
        Pdus::GetRequest(p) => (Operation::Get, p.0),
        Pdus::GetNextRequest(p) => (Operation::GetNext, p.0),
        Pdus::SetRequest(p) => (Operation::Set, p.0),
        Pdus::GetBulkRequest(b) => {
            if version == Version::V1 {
                return Err(CodecError::BulkInV1);
            }
            let b = b.0;
            let op = Operation::GetBulk {
                non_repeaters: b.non_repeaters,
                max_repetitions: b.max_repetitions,
            };
            return Ok(Request {
                version,
                community: msg.community,
                request_id: b.request_id,
                op,
                varbinds: b.variable_bindings,
            });
        }
        Pdus::Response(_) => return Err(CodecError::NotARequest("Response")),
        Pdus::InformRequest(_) => return Err(CodecError::NotARequest("InformRequest")),
        Pdus::Trap(_) => return Err(CodecError::NotARequest("Trap")),
        Pdus::Report(_) => return Err(CodecError::NotARequest("Report")),
    };
    Ok(Request {
        version,
        community: msg.community,
        request_id: pdu.request_id,
        op,
        varbinds: pdu.variable_bindings,
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

/// Encodes `reply` (lent, not consumed, so a too-big reply can be trimmed and re-encoded).
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
