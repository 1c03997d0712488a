//! Decoding trap and inform datagrams (SNMP v1, v2c, v3 USM) into owned, serializable traps.
//!
//! Pure apart from the USM key material held by the [`Decoder`]: datagram in, [`Trap`] (and the
//! acknowledgement to send for an inform) out, or a [`DecodeError`] that says why not. Nothing
//! here panics on any input; [`fuzz_one`] is the body of the cargo-fuzz target and of the
//! bounded property test that runs in the normal test suite.

use super::timeliness::EngineClocks;
use super::usm::{InformUser, LocalEngine, int, octets as ber_octets, tlv};
#[cfg(any(test, feature = "testing"))]
use crate::config::{AuthProtocol, PrivProtocol};
use crate::config::{Secret, TrapUser};
use crate::model::UnixMillis;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use snmp2::{AsnReader, MessageType, Pdu, Value, asn1, v3};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::sync::Mutex;

/// sysUpTime.0
pub(crate) const SYS_UPTIME_0: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 3, 0];
/// snmpTrapOID.0
pub(crate) const SNMP_TRAP_OID_0: [u32; 11] = [1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0];
/// snmpTrapAddress.0 (SNMP-COMMUNITY-MIB): the original agent of a relayed trap.
pub(crate) const SNMP_TRAP_ADDRESS_0: [u32; 10] = [1, 3, 6, 1, 6, 3, 18, 1, 3, 0];
/// snmpTraps: the generic notifications (coldStart.1 ... egpNeighborLoss.6).
pub(crate) const SNMP_TRAPS: [u32; 9] = [1, 3, 6, 1, 6, 3, 1, 1, 5];

/// An OID as arcs; JSON and text show it dotted (`1.3.6.1...`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Oid(pub Vec<u32>);

impl Oid {
    pub(crate) fn starts_with(&self, prefix: &[u32]) -> bool {
        self.0.starts_with(prefix)
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl FromStr for Oid {
    type Err = String;
    fn from_str(s: &str) -> Result<Oid, String> {
        let s = s.strip_prefix('.').unwrap_or(s);
        if s.is_empty() {
            return Ok(Oid::default());
        }
        s.split('.')
            .map(|a| a.parse::<u32>().map_err(|_| format!("bad OID {s:?}")))
            .collect::<Result<Vec<u32>, String>>()
            .map(Oid)
    }
}

impl Serialize for Oid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Oid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Oid, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TrapVersion {
    V1,
    V2c,
    V3,
}

impl TrapVersion {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TrapVersion::V1 => "v1",
            TrapVersion::V2c => "v2c",
            TrapVersion::V3 => "v3",
        }
    }
}

/// A varbind value, owned; octet strings are text when printable UTF-8, else hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub(crate) enum TrapValue {
    Integer(i64),
    Text(String),
    Hex(String),
    Oid(Oid),
    IpAddress(Ipv4Addr),
    Counter32(u32),
    Unsigned32(u32),
    Counter64(u64),
    Timeticks(u32),
    Null,
    /// noSuchObject, endOfMibView, constructed values...: named only.
    Other(String),
}

impl TrapValue {
    fn from_value(v: &Value<'_>) -> TrapValue {
        match v {
            Value::Integer(i) => TrapValue::Integer(*i),
            Value::Boolean(b) => TrapValue::Integer(i64::from(*b)),
            Value::OctetString(b) | Value::Opaque(b) => octets(b),
            Value::ObjectIdentifier(o) => match crate::snmp::client::oid_arcs(o) {
                Some(a) => TrapValue::Oid(Oid(a)),
                None => TrapValue::Other("OID with an arc above 2^32".into()),
            },
            Value::IpAddress(a) => TrapValue::IpAddress(Ipv4Addr::from(*a)),
            Value::Counter32(n) => TrapValue::Counter32(*n),
            Value::Unsigned32(n) => TrapValue::Unsigned32(*n),
            Value::Counter64(n) => TrapValue::Counter64(*n),
            Value::Timeticks(t) => TrapValue::Timeticks(*t),
            Value::Null => TrapValue::Null,
            Value::NoSuchObject => TrapValue::Other("noSuchObject".into()),
            Value::NoSuchInstance => TrapValue::Other("noSuchInstance".into()),
            Value::EndOfMibView => TrapValue::Other("endOfMibView".into()),
            _ => TrapValue::Other("unsupported type".into()),
        }
    }

    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            TrapValue::Integer(i) => Some(*i),
            TrapValue::Counter32(n) | TrapValue::Unsigned32(n) | TrapValue::Timeticks(n) => {
                Some(i64::from(*n))
            }
            TrapValue::Counter64(n) => i64::try_from(*n).ok(),
            _ => None,
        }
    }
}

impl fmt::Display for TrapValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrapValue::Integer(i) => write!(f, "{i}"),
            TrapValue::Text(s) => write!(f, "{s:?}"),
            TrapValue::Hex(h) => write!(f, "0x{h}"),
            TrapValue::Oid(o) => write!(f, "{o}"),
            TrapValue::IpAddress(a) => write!(f, "{a}"),
            TrapValue::Counter32(n) | TrapValue::Unsigned32(n) => write!(f, "{n}"),
            TrapValue::Counter64(n) => write!(f, "{n}"),
            TrapValue::Timeticks(t) => write!(f, "{t} ticks"),
            TrapValue::Null => f.write_str("null"),
            TrapValue::Other(s) => f.write_str(s),
        }
    }
}

fn octets(b: &[u8]) -> TrapValue {
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t') => {
            TrapValue::Text(s.to_owned())
        }
        _ => {
            let mut h = String::with_capacity(b.len() * 2);
            for x in b {
                h.push_str(&format!("{x:02x}"));
            }
            TrapValue::Hex(h)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VarBind {
    pub oid: Oid,
    pub value: TrapValue,
}

/// One received notification, as forwarded between pool members. Carries no secret: the
/// community is checked and left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Trap {
    pub received: UnixMillis,
    /// UDP source address.
    pub source: IpAddr,
    pub version: TrapVersion,
    /// An InformRequest (acknowledged) rather than a trap.
    #[serde(default)]
    pub inform: bool,
    /// snmpTrapOID.0; v1 traps are translated as RFC 3584 section 3.1 says.
    pub trap_oid: Oid,
    /// sysUpTime.0 (v1: the time-stamp field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<u32>,
    /// v1 agent-addr (unless 0.0.0.0), or snmpTrapAddress.0 when a relay added it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_addr: Option<IpAddr>,
    /// SNMPv3 security name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The varbinds after sysUpTime.0 and snmpTrapOID.0.
    pub varbinds: Vec<VarBind>,
}

/// A decoded datagram and, for an inform, the Response to send back to its source.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    pub trap: Trap,
    pub ack: Option<Vec<u8>>,
}

/// The `reason` of v3 traps and informs refused as outside the time window (replays).
const NOT_IN_TIME_WINDOW: &str = "not_in_time_window";

/// Why a datagram was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("unsupported SNMP version {0}")]
    Version(i64),
    #[error("community not accepted")]
    Community,
    #[error("not a notification ({0})")]
    NotNotification(&'static str),
    #[error("unknown SNMPv3 user {0:?}")]
    UnknownUser(String),
    #[error("SNMPv3 user {user:?} is not configured for engine {engine}")]
    UnknownEngine { user: String, engine: String },
    #[error("SNMPv3 authentication or decryption failed: {0}")]
    Auth(String),
    #[error("SNMPv3 informs need the receiver's engine id (this server's [traps] engine_id)")]
    V3Inform,
    /// An authentic v3 trap older than what its engine has sent since (a replay).
    #[error("SNMPv3 trap not in the time window of engine {engine}: {why}")]
    NotInTimeWindow { engine: String, why: String },
    /// A USM report answers instead (engine discovery, unknown user, not in time window).
    #[error("SNMPv3 report: {why}")]
    Report {
        why: &'static str,
        reply: Option<Vec<u8>>,
    },
}

impl DecodeError {
    /// The `reason` label of `emspool_traps_invalid_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Malformed(_) => "malformed",
            DecodeError::Version(_) => "version",
            DecodeError::Community => "community",
            DecodeError::NotNotification(_) => "not_notification",
            DecodeError::UnknownUser(_) | DecodeError::UnknownEngine { .. } => "unknown_user",
            DecodeError::Auth(_) => "auth",
            DecodeError::V3Inform => "v3_inform",
            DecodeError::NotInTimeWindow { .. } => NOT_IN_TIME_WINDOW,
            DecodeError::Report { why, .. } if *why == super::usm::NOT_IN_TIME_WINDOW => {
                NOT_IN_TIME_WINDOW
            }
            DecodeError::Report { .. } => "usm_report",
        }
    }

    /// Engine discovery is normal protocol, not trouble worth an event.
    pub fn is_discovery(&self) -> bool {
        matches!(self, DecodeError::Report { why, .. } if *why == super::usm::DISCOVERY)
    }

    #[cfg(any(test, feature = "testing"))]
    pub const REASONS: [&'static str; 9] = [
        "usm_report",
        NOT_IN_TIME_WINDOW,
        "malformed",
        "version",
        "community",
        "not_notification",
        "unknown_user",
        "auth",
        "v3_inform",
    ];
}

struct V3User {
    name: Vec<u8>,
    engine: Vec<u8>,
    /// Configured with authentication: its messages' boots and time are checked.
    auth: bool,
    /// Keys already localized to `engine` (the costly part); cloned for each datagram.
    template: v3::Security,
}

/// Accepted communities and USM users; cheap to share, immutable after construction.
pub(crate) struct Decoder {
    communities: Vec<Vec<u8>>,
    users: Vec<V3User>,
    /// Our own engine and the users localized to it, for v3 informs.
    local: Option<LocalEngine>,
    inform_users: Vec<InformUser>,
    /// The trap senders' engines' boots and time as learnt from their authentic messages.
    clocks: Mutex<EngineClocks>,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("communities", &self.communities.len())
            .field("v3_users", &self.users.len())
            .finish()
    }
}

impl Decoder {
    /// Localizes every user's keys (RFC 3414 A.2: about a megabyte of hashing each).
    pub(crate) fn new(communities: &[Secret], users: &[TrapUser]) -> Result<Decoder, String> {
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            let engine = u
                .engine_id_bytes()
                .ok_or_else(|| format!("v3 user {:?}: engine_id is not hex", u.user))?;
            let template = security(u)
                .with_engine_id(&engine)
                .map_err(|e| format!("v3 user {:?}: keys: {e:?}", u.user))?;
            out.push(V3User {
                name: u.user.as_bytes().to_vec(),
                engine,
                auth: u.auth_protocol.is_some(),
                template,
            });
        }
        Ok(Decoder {
            communities: communities
                .iter()
                .map(|c| c.expose().as_bytes().to_vec())
                .collect(),
            users: out,
            local: None,
            inform_users: Vec::new(),
            clocks: Mutex::default(),
        })
    }

    /// Makes this decoder the authoritative engine for v3 informs: `users` configured with
    /// `engine.id` get keys localized to it.
    pub(crate) fn with_local_engine(
        mut self,
        engine: LocalEngine,
        users: &[TrapUser],
    ) -> Result<Decoder, String> {
        let mut inform_users = Vec::new();
        for u in users {
            if let Some(iu) = InformUser::new(u, &engine)? {
                inform_users.push(iu);
            }
        }
        self.local = Some(engine);
        self.inform_users = inform_users;
        Ok(self)
    }

    pub(crate) fn decode(
        &self,
        datagram: &[u8],
        source: IpAddr,
        received: UnixMillis,
    ) -> Result<Decoded, DecodeError> {
        let version = peek_version(datagram)?;
        match version {
            0 | 1 => self.decode_community(datagram, source, received),
            3 => self.decode_v3(datagram, source, received),
            v => Err(DecodeError::Version(v)),
        }
    }

    fn decode_community(
        &self,
        datagram: &[u8],
        source: IpAddr,
        received: UnixMillis,
    ) -> Result<Decoded, DecodeError> {
        let pdu = Pdu::from_bytes(datagram).map_err(malformed)?;
        if !self.communities.is_empty() && !self.communities.iter().any(|c| c == pdu.community) {
            return Err(DecodeError::Community);
        }
        let parsed = Parsed::from_pdu(&pdu)?;
        let ack = if pdu.message_type == MessageType::InformRequest {
            // RFC 3416 4.2.7: the Response repeats the request id and the varbinds.
            let mut resp = pdu.clone();
            resp.message_type = MessageType::Response;
            resp.error_status = 0;
            resp.error_index = 0;
            Some(resp.to_bytes().map_err(malformed)?)
        } else {
            None
        };
        let version = if parsed.v1.is_some() {
            TrapVersion::V1
        } else {
            TrapVersion::V2c
        };
        Ok(Decoded {
            trap: parsed.into_trap(source, version, received, None)?,
            ack,
        })
    }

    fn decode_v3(
        &self,
        datagram: &[u8],
        source: IpAddr,
        received: UnixMillis,
    ) -> Result<Decoded, DecodeError> {
        let UsmHeader {
            engine,
            user,
            boots,
            time,
            authenticated,
        } = peek_usm(datagram)?;
        if let Some(local) = &self.local
            && (engine.is_empty() || engine == local.id)
        {
            let acc = super::usm::accept(datagram, local, &self.inform_users)?;
            // Decode the plaintext PDU the v2c way, wrapped in a v2c message.
            let wrapped = tlv(0x30, &[int(1), ber_octets(b""), acc.pdu].concat());
            let pdu = Pdu::from_bytes(&wrapped).map_err(malformed)?;
            let parsed = Parsed::from_pdu(&pdu)?;
            return Ok(Decoded {
                trap: parsed.into_trap(source, TrapVersion::V3, received, Some(acc.user))?,
                ack: acc.reply,
            });
        }
        let Some(u) = self
            .users
            .iter()
            .find(|u| u.name == user && u.engine == engine)
        else {
            let name = String::from_utf8_lossy(&user).into_owned();
            return Err(if self.users.iter().any(|u| u.name == user) {
                DecodeError::UnknownEngine {
                    user: name,
                    engine: hex(&engine),
                }
            } else {
                DecodeError::UnknownUser(name)
            });
        };
        let mut sec = u.template.clone();
        // snmp2 zeroes the authentication parameters inside the buffer it is given while it
        // checks the HMAC, so it gets a copy of its own.
        let mut buf = datagram.to_vec();
        let parsed = match parse_v3(&buf, &mut sec) {
            // The first message of an engine only teaches the security its boots counter
            // (noAuthNoPriv path); the second try with the updated state is the real check.
            Err(snmp2::Error::AuthUpdated) => {
                buf.copy_from_slice(datagram);
                parse_v3(&buf, &mut sec)
            }
            other => other,
        }
        .map_err(|e| DecodeError::Auth(format!("{e:?}")))??;
        if parsed.message_type == MessageType::InformRequest {
            return Err(DecodeError::V3Inform);
        }
        // Authentic, so its boots and time are the engine's word (RFC 3414 3.2.7 b); a
        // noAuthNoPriv user's messages have no time window to check.
        if authenticated || u.auth {
            let mut clocks = self.clocks.lock().unwrap_or_else(|p| p.into_inner());
            clocks
                .check(&engine, boots, time, std::time::Instant::now())
                .map_err(|why| DecodeError::NotInTimeWindow {
                    engine: hex(&engine),
                    why: why.to_string(),
                })?;
        }
        let name = String::from_utf8_lossy(&user).into_owned();
        Ok(Decoded {
            trap: parsed.into_trap(source, TrapVersion::V3, received, Some(name))?,
            ack: None,
        })
    }
}

fn parse_v3(
    buf: &[u8],
    sec: &mut v3::Security,
) -> Result<Result<Parsed, DecodeError>, snmp2::Error> {
    let pdu = Pdu::from_bytes_with_security(buf, Some(sec))?;
    Ok(Parsed::from_pdu(&pdu))
}

fn security(u: &TrapUser) -> v3::Security {
    // AES-192/256 keys longer than the hash are extended as Net-SNMP's AES-192/AES-256 do.
    crate::snmp::client::usm_security(
        &u.user,
        u.auth_protocol,
        u.auth_password.as_ref(),
        u.priv_protocol,
        u.priv_password.as_ref(),
        Some(v3::KeyExtension::Blumenthal),
    )
}

fn malformed(e: snmp2::Error) -> DecodeError {
    DecodeError::Malformed(format!("{e:?}"))
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The message's version field, read without decoding the rest.
fn peek_version(datagram: &[u8]) -> Result<i64, DecodeError> {
    let seq = AsnReader::from_bytes(datagram)
        .read_raw(asn1::TYPE_SEQUENCE)
        .map_err(malformed)?;
    AsnReader::from_bytes(seq)
        .read_asn_integer()
        .map_err(malformed)
}

/// What a v3 message says of its security before any check (RFC 3412 6, RFC 3414 2.4).
struct UsmHeader {
    engine: Vec<u8>,
    user: Vec<u8>,
    boots: i64,
    time: i64,
    /// msgFlags has the auth bit (the message is checked for it before it is believed).
    authenticated: bool,
}

fn peek_usm(datagram: &[u8]) -> Result<UsmHeader, DecodeError> {
    let seq = AsnReader::from_bytes(datagram)
        .read_raw(asn1::TYPE_SEQUENCE)
        .map_err(malformed)?;
    let mut msg = AsnReader::from_bytes(seq);
    msg.read_asn_integer().map_err(malformed)?;
    let global = msg.read_raw(asn1::TYPE_SEQUENCE).map_err(malformed)?;
    let mut global = AsnReader::from_bytes(global);
    global.read_asn_integer().map_err(malformed)?;
    global.read_asn_integer().map_err(malformed)?;
    let flags = global.read_asn_octetstring().map_err(malformed)?;
    let authenticated = flags.first().is_some_and(|f| f & 0x01 != 0);
    let params = msg.read_asn_octetstring().map_err(malformed)?;
    let usm = AsnReader::from_bytes(params)
        .read_raw(asn1::TYPE_SEQUENCE)
        .map_err(malformed)?;
    let mut usm = AsnReader::from_bytes(usm);
    let engine = usm.read_asn_octetstring().map_err(malformed)?.to_vec();
    let boots = usm.read_asn_integer().map_err(malformed)?;
    let time = usm.read_asn_integer().map_err(malformed)?;
    let user = usm.read_asn_octetstring().map_err(malformed)?.to_vec();
    Ok(UsmHeader {
        engine,
        user,
        boots,
        time,
        authenticated,
    })
}

struct V1Info {
    enterprise: Vec<u32>,
    agent_addr: IpAddr,
    generic: i64,
    specific: i64,
    timestamp: u32,
}

/// The parts of a parsed PDU we keep once snmp2's borrowed buffers are gone.
struct Parsed {
    message_type: MessageType,
    v1: Option<V1Info>,
    varbinds: Vec<VarBind>,
}

/// Bounds the work done for one datagram whatever it claims to hold.
const MAX_VARBINDS: usize = 1024;

impl Parsed {
    fn from_pdu(pdu: &Pdu<'_>) -> Result<Parsed, DecodeError> {
        match pdu.message_type {
            MessageType::TrapV1 | MessageType::Trap | MessageType::InformRequest => {}
            MessageType::Response => return Err(DecodeError::NotNotification("Response")),
            MessageType::Report => return Err(DecodeError::NotNotification("Report")),
            _ => return Err(DecodeError::NotNotification("request")),
        }
        let mut varbinds = Vec::new();
        for (oid, value) in pdu.varbinds.clone().take(MAX_VARBINDS) {
            let arcs = crate::snmp::client::oid_arcs(&oid)
                .ok_or_else(|| DecodeError::Malformed("varbind OID with a huge arc".into()))?;
            varbinds.push(VarBind {
                oid: Oid(arcs),
                value: TrapValue::from_value(&value),
            });
        }
        let v1 = match &pdu.v1_trap_info {
            Some(i) => Some(V1Info {
                enterprise: crate::snmp::client::oid_arcs(&i.enterprise)
                    .ok_or_else(|| DecodeError::Malformed("enterprise OID".into()))?,
                agent_addr: i.agent_addr,
                generic: i.generic_trap,
                specific: i.specific_trap,
                timestamp: i.timestamp,
            }),
            None => None,
        };
        Ok(Parsed {
            message_type: pdu.message_type,
            v1,
            varbinds,
        })
    }

    fn into_trap(
        self,
        source: IpAddr,
        version: TrapVersion,
        received: UnixMillis,
        user: Option<String>,
    ) -> Result<Trap, DecodeError> {
        let mut varbinds = self.varbinds;
        let relayed = varbinds
            .iter()
            .find(|v| v.oid.0 == SNMP_TRAP_ADDRESS_0)
            .and_then(|v| match v.value {
                TrapValue::IpAddress(a) if !a.is_unspecified() => Some(IpAddr::V4(a)),
                _ => None,
            });
        let (trap_oid, uptime, agent_addr) = match self.v1 {
            Some(v1) => {
                // RFC 3584 3.1 (2): generic traps map to snmpTraps.(generic+1); enterprise
                // specific ones to enterprise.0.specific.
                let oid = if (0..6).contains(&v1.generic) {
                    let mut o = SNMP_TRAPS.to_vec();
                    o.push(v1.generic as u32 + 1);
                    o
                } else {
                    let mut o = v1.enterprise;
                    o.push(0);
                    o.push(u32::try_from(v1.specific).unwrap_or(0));
                    o
                };
                let agent = Some(v1.agent_addr).filter(|a| !a.is_unspecified());
                (Oid(oid), Some(v1.timestamp), relayed.or(agent))
            }
            None => {
                let uptime = take(&mut varbinds, &SYS_UPTIME_0).and_then(|v| match v {
                    TrapValue::Timeticks(t) => Some(t),
                    _ => None,
                });
                let oid = match take(&mut varbinds, &SNMP_TRAP_OID_0) {
                    Some(TrapValue::Oid(o)) => o,
                    Some(_) => {
                        return Err(DecodeError::Malformed(
                            "snmpTrapOID.0 is not an OBJECT IDENTIFIER".into(),
                        ));
                    }
                    None => {
                        return Err(DecodeError::Malformed(
                            "notification without snmpTrapOID.0".into(),
                        ));
                    }
                };
                (oid, uptime, relayed)
            }
        };
        Ok(Trap {
            received,
            source,
            version,
            inform: self.message_type == MessageType::InformRequest,
            trap_oid,
            uptime,
            agent_addr,
            user,
            varbinds,
        })
    }
}

fn take(varbinds: &mut Vec<VarBind>, oid: &[u32]) -> Option<TrapValue> {
    let i = varbinds.iter().position(|v| v.oid.0 == oid)?;
    Some(varbinds.remove(i).value)
}

/// The authPriv trap user (engine 8000000001020304) of the fuzz body and the replay tests.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn fuzz_trap_user() -> TrapUser {
    TrapUser {
        user: "tuser".into(),
        engine_id: "8000000001020304".into(),
        auth_protocol: Some(AuthProtocol::Sha),
        auth_password: Some(Secret::new("authpass123")),
        priv_protocol: Some(PrivProtocol::Aes),
        priv_password: Some(Secret::new("privpass123")),
    }
}

/// The fuzz body: decode anything with a decoder that accepts any community and knows one
/// authPriv user, and check what a successful decode promises. Panics only on a broken promise.
#[cfg(any(test, feature = "testing"))]
pub fn fuzz_one(data: &[u8]) {
    use std::sync::OnceLock;
    static DECODER: OnceLock<Decoder> = OnceLock::new();
    let d = DECODER.get_or_init(|| {
        let user = fuzz_trap_user();
        let mut inform = user.clone();
        inform.engine_id = super::usm::hex_engine(&LocalEngine::default_id(1));
        let users = [user, inform];
        Decoder::new(&[], &users)
            .and_then(|d| {
                d.with_local_engine(LocalEngine::new(LocalEngine::default_id(1), 1), &users)
            })
            .unwrap_or(Decoder {
                communities: Vec::new(),
                users: Vec::new(),
                local: None,
                inform_users: Vec::new(),
                clocks: Mutex::default(),
            })
    });
    if let Ok(decoded) = d.decode(data, IpAddr::V4(Ipv4Addr::LOCALHOST), 0) {
        let t = decoded.trap;
        assert!(t.varbinds.len() <= MAX_VARBINDS);
        assert_eq!(decoded.ack.is_some(), t.inform);
        // What is forwarded to peers must survive the round trip.
        let json = serde_json::to_vec(&t).expect("trap serializes");
        let back: Trap = serde_json::from_slice(&json).expect("trap deserializes");
        assert_eq!(back, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `snmptrap -v2c -c public 127.0.0.1:N '' 1.3.6.1.6.3.1.1.5.3 1.3.6.1.2.1.2.2.1.1.7 i 7`
    pub(crate) const V2C_LINKDOWN: &str = "305602010104067075626c6963a74902045556e4d9020100020100303b300f06082b060102010103004303084c4f3017060a2b06010603010104010006092b0601060301010503300f060a2b060102010202010107020107";
    /// `snmptrap -v1 -c public ... 1.3.6.1.4.1.8072 127.0.0.6 2 0 '' 1.3.6.1.2.1.2.2.1.1.7 i 7`
    pub(crate) const V1_LINKDOWN: &str = "303a02010004067075626c6963a42d06072b06010401bf0840047f0000060201020201004303084c503011300f060a2b060102010202010107020107";
    /// `snmptrap -v3 -e 0x8000000001020304 -u tuser -l authPriv -a SHA -A authpass123 -x AES
    /// -X privpass123 ... '' 1.3.6.1.6.3.1.1.5.1`
    pub(crate) const V3_COLDSTART: &str = "30819e0201033011020427a32054020300ffe304010302010304333031040880000000010203040201010203084c5204057475736572040c84590763cbc1ff4e67a4a5810408d735a862cfdf803c04516043ed753af8667e386bb54743e6b184674655e88c62e8d8015b124ff9c251d35b33ce7ef77c6eead6d9ce7a4b1a8c65579b08efff19f0e986ffb7e98a0339b1832011756f4b493822ce18da87dc92cc2e";

    /// Net-SNMP's engine discovery probe (`snmpinform -v3` without `-e`).
    pub(crate) const V3_PROBE: &str = "304f0201033011020461b4b61c020300ffe30401040201030410300e04000201000201000400040004003025041180001f8880564a7a6236db086b000000000400a00e02046615050f0201000201003000";

    pub(crate) fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn user(auth: &str, privpw: &str) -> TrapUser {
        TrapUser {
            user: "tuser".into(),
            engine_id: "0x8000000001020304".into(),
            auth_protocol: Some(AuthProtocol::Sha),
            auth_password: Some(Secret::new(auth)),
            priv_protocol: Some(PrivProtocol::Aes),
            priv_password: Some(Secret::new(privpw)),
        }
    }

    fn src() -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5))
    }

    #[test]
    fn v2c_trap_gives_trap_oid_uptime_and_varbinds() {
        let d = Decoder::new(&[], &[]).expect("decoder");
        let t = d
            .decode(&unhex(V2C_LINKDOWN), src(), 1)
            .expect("decodes")
            .trap;
        assert_eq!(t.version, TrapVersion::V2c);
        assert_eq!(t.trap_oid.to_string(), "1.3.6.1.6.3.1.1.5.3");
        assert!(t.uptime.is_some());
        assert_eq!(t.varbinds.len(), 1);
        assert_eq!(t.varbinds[0].oid.to_string(), "1.3.6.1.2.1.2.2.1.1.7");
        assert_eq!(t.varbinds[0].value, TrapValue::Integer(7));
        assert!(!t.inform);
    }

    #[test]
    fn v1_generic_trap_maps_to_snmp_traps_and_keeps_agent_addr() {
        let d = Decoder::new(&[], &[]).expect("decoder");
        let t = d
            .decode(&unhex(V1_LINKDOWN), src(), 1)
            .expect("decodes")
            .trap;
        assert_eq!(t.version, TrapVersion::V1);
        assert_eq!(t.trap_oid.to_string(), "1.3.6.1.6.3.1.1.5.3");
        assert_eq!(t.agent_addr, Some("127.0.0.6".parse().expect("ip")));
    }

    #[test]
    fn community_list_is_enforced() {
        let d = Decoder::new(&[Secret::new("other")], &[]).expect("decoder");
        assert_eq!(
            d.decode(&unhex(V2C_LINKDOWN), src(), 1).map(|_| ()),
            Err(DecodeError::Community)
        );
        let d = Decoder::new(&[Secret::new("public")], &[]).expect("decoder");
        assert!(d.decode(&unhex(V2C_LINKDOWN), src(), 1).is_ok());
    }

    #[test]
    fn v3_auth_priv_trap_decodes_with_the_right_keys_only() {
        let d = Decoder::new(&[], &[user("authpass123", "privpass123")]).expect("decoder");
        let t = d
            .decode(&unhex(V3_COLDSTART), src(), 1)
            .expect("decodes")
            .trap;
        assert_eq!(t.version, TrapVersion::V3);
        assert_eq!(t.trap_oid.to_string(), "1.3.6.1.6.3.1.1.5.1");
        assert_eq!(t.user.as_deref(), Some("tuser"));
        // Decoding twice works: the shared template is not consumed.
        assert!(d.decode(&unhex(V3_COLDSTART), src(), 1).is_ok());

        let wrong_auth = Decoder::new(&[], &[user("wrongpass1", "privpass123")]).expect("d");
        let e = wrong_auth
            .decode(&unhex(V3_COLDSTART), src(), 1)
            .unwrap_err();
        assert_eq!(e.reason(), "auth", "{e}");
        let wrong_priv = Decoder::new(&[], &[user("authpass123", "wrongpriv1")]).expect("d");
        let e = wrong_priv
            .decode(&unhex(V3_COLDSTART), src(), 1)
            .unwrap_err();
        assert_eq!(e.reason(), "auth", "{e}");
        let none = Decoder::new(&[], &[]).expect("d");
        let e = none.decode(&unhex(V3_COLDSTART), src(), 1).unwrap_err();
        assert_eq!(e, DecodeError::UnknownUser("tuser".into()));
        let mut other_engine = user("authpass123", "privpass123");
        other_engine.engine_id = "8000000001020399".into();
        let d = Decoder::new(&[], &[other_engine]).expect("d");
        let e = d.decode(&unhex(V3_COLDSTART), src(), 1).unwrap_err();
        assert_eq!(e.reason(), "unknown_user");
    }

    #[test]
    fn truncations_and_garbage_are_errors_not_panics() {
        let d = Decoder::new(&[], &[user("authpass123", "privpass123")]).expect("decoder");
        for msg in [V2C_LINKDOWN, V1_LINKDOWN, V3_COLDSTART] {
            let b = unhex(msg);
            for n in 0..b.len() {
                assert!(d.decode(&b[..n], src(), 1).is_err(), "prefix {n} of {msg}");
            }
        }
        assert!(d.decode(b"hello", src(), 1).is_err());
        assert!(d.decode(&[], src(), 1).is_err());
    }

    #[test]
    fn trap_round_trips_through_json() {
        let d = Decoder::new(&[], &[]).expect("decoder");
        let t = d.decode(&unhex(V2C_LINKDOWN), src(), 1).expect("ok").trap;
        let back: Trap =
            serde_json::from_str(&serde_json::to_string(&t).expect("ser")).expect("de");
        assert_eq!(back, t);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn seeds() -> Vec<Vec<u8>> {
            [V2C_LINKDOWN, V1_LINKDOWN, V3_COLDSTART, V3_PROBE]
                .iter()
                .map(|s| unhex(s))
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            /// Random bytes never panic the decoder.
            #[test]
            fn random_datagrams(data in proptest::collection::vec(any::<u8>(), 0..300)) {
                fuzz_one(&data);
            }

            /// Real datagrams with bytes flipped, cut or inserted never panic it either.
            #[test]
            fn mutated_datagrams(
                seed in 0usize..4,
                edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
            ) {
                let mut b = seeds()[seed].clone();
                crate::snmp::mutate(&mut b, &edits);
                fuzz_one(&b);
            }
        }
    }
}
