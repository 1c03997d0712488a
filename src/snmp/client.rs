//! SNMP polling through snmp2: sessions under timeouts and retries, GETBULK table walks.
//!
//! snmp2's `AsyncSession` has neither timeouts nor retries and a late reply poisons the next
//! request on the same socket (request-id mismatch), so every retry gets a fresh session. Sessions
//! live only for one poll: they hold ~131 KB of buffers, far too much to keep one per element.

use crate::config::{AuthProtocol, Credential, PrivProtocol, Secret};
use crate::lease::Lease;
use snmp2::{AsyncSession, Oid, Value, v3};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// An OID as plain arcs; what we keep after the session buffer is gone.
pub(crate) type Arcs = Vec<u32>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedValue {
    Integer(i64),
    Bytes(Vec<u8>),
    Oid(Arcs),
    Counter(u64),
    Ticks(u32),
    Null,
    NoSuch,
    EndOfMibView,
    Other,
}

impl OwnedValue {
    fn from_value(v: &Value<'_>) -> OwnedValue {
        match v {
            Value::Integer(i) => OwnedValue::Integer(*i),
            Value::OctetString(b) | Value::Opaque(b) => OwnedValue::Bytes(b.to_vec()),
            Value::ObjectIdentifier(o) => OwnedValue::Oid(oid_arcs(o).unwrap_or_default()),
            Value::Counter32(n) | Value::Unsigned32(n) => OwnedValue::Counter(u64::from(*n)),
            Value::Counter64(n) => OwnedValue::Counter(*n),
            Value::Timeticks(t) => OwnedValue::Ticks(*t),
            Value::IpAddress(a) => OwnedValue::Bytes(a.to_vec()),
            Value::Null => OwnedValue::Null,
            Value::NoSuchObject | Value::NoSuchInstance => OwnedValue::NoSuch,
            Value::EndOfMibView => OwnedValue::EndOfMibView,
            _ => OwnedValue::Other,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            OwnedValue::Integer(i) => Some(*i),
            OwnedValue::Counter(c) => i64::try_from(*c).ok(),
            OwnedValue::Ticks(t) => Some(i64::from(*t)),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            OwnedValue::Counter(c) => Some(*c),
            OwnedValue::Integer(i) => u64::try_from(*i).ok(),
            OwnedValue::Ticks(t) => Some(u64::from(*t)),
            _ => None,
        }
    }

    /// A device string: bounded (`model::text`), control characters kept as received.
    pub fn as_text(&self) -> Option<String> {
        match self {
            OwnedValue::Bytes(b) => Some(crate::model::text::device_bytes(b)),
            _ => None,
        }
    }
}

/// Why a request failed, split the way element states are: the agent's silence or refusal
/// versus our own trouble.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnmpError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("SNMPv3 authentication failed: {0}")]
    Auth(String),
    #[error("agent answered with error-status {status} at index {index}")]
    ErrorStatus { status: u32, index: u32 },
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error("network error: {0}")]
    Io(String),
    /// This server is out of descriptors or buffers (`model::starved`): not the agent's fault.
    #[error("{0}")]
    Starved(String),
    /// The pool lease ended mid-poll (paused or cut off): the element may be another's now.
    #[error("not sent: this server's pool lease does not hold")]
    Withheld,
}

impl SnmpError {
    /// True when the agent is to blame (down), false when we are (unknown).
    pub fn agent_unreachable(&self) -> bool {
        matches!(
            self,
            SnmpError::Timeout(_) | SnmpError::Io(_) | SnmpError::Malformed(_)
        )
    }
}

/// How to reach one agent: address, credential and the pool's request settings.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Bits 24..30 of every request id: the polling server's id, so that an agent (or a packet
    /// capture) can tell which pool member asked. Ids above 63 are folded.
    pub request_tag: u8,
    pub credential: Credential,
    pub timeout: Duration,
    pub retries: u32,
    pub max_repetitions: u32,
}

/// A request kind, replayable on a fresh session for retries.
enum Request<'a> {
    Get(&'a [Oid<'static>]),
    Bulk(&'a [Oid<'static>], u32),
}

pub(crate) fn oid(arcs: &[u32]) -> Result<Oid<'static>, SnmpError> {
    let wide: Vec<u64> = arcs.iter().map(|&a| u64::from(a)).collect();
    Oid::from(&wide).map_err(|e| SnmpError::Malformed(format!("bad OID {arcs:?}: {e:?}")))
}

pub(crate) fn oid_arcs(o: &Oid<'_>) -> Option<Arcs> {
    o.iter()?.map(|a| u32::try_from(a).ok()).collect()
}

/// A session for one target; recreated after any failure because a late reply would
/// otherwise be read as the answer to the next request.
pub struct Client {
    target: Target,
    session: Option<AsyncSession>,
    next_req_id: i32,
    /// Asked before every request of a poll, retries and walk steps included.
    lease: Option<Arc<Lease>>,
}

impl Client {
    pub fn new(target: Target) -> Client {
        Client {
            next_req_id: tagged(target.request_tag, rand::random::<u32>()),
            target,
            session: None,
            lease: None,
        }
    }

    /// Sends nothing once `lease` no longer holds ([`SnmpError::Withheld`]).
    pub(crate) fn with_lease(mut self, lease: Arc<Lease>) -> Client {
        self.lease = Some(lease);
        self
    }

    async fn session(&mut self) -> Result<&mut AsyncSession, SnmpError> {
        if self.session.is_none() {
            let s = open_session(&self.target, self.next_req_id).await?;
            self.session = Some(s);
        }
        self.session
            .as_mut()
            .ok_or_else(|| SnmpError::Io("session missing".into()))
    }

    /// GET the given OIDs; values come back in request order.
    pub async fn get(
        &mut self,
        oids: &[Oid<'static>],
    ) -> Result<Vec<(Arcs, OwnedValue)>, SnmpError> {
        self.request(Request::Get(oids)).await
    }

    pub async fn getbulk(
        &mut self,
        oids: &[Oid<'static>],
        max_repetitions: u32,
    ) -> Result<Vec<(Arcs, OwnedValue)>, SnmpError> {
        self.request(Request::Bulk(oids, max_repetitions)).await
    }

    async fn request(&mut self, req: Request<'_>) -> Result<Vec<(Arcs, OwnedValue)>, SnmpError> {
        let attempts = self.target.retries + 1;
        let mut last = SnmpError::Timeout(self.target.timeout);
        for _ in 0..attempts {
            if self.lease.as_ref().is_some_and(|l| !l.may_act()) {
                return Err(SnmpError::Withheld);
            }
            let timeout = self.target.timeout;
            let result = tokio::time::timeout(timeout, async {
                let session = self.session().await?;
                let pdu = match &req {
                    Request::Get(oids) => {
                        let refs: Vec<&Oid<'_>> = oids.iter().collect();
                        session.get_many(&refs).await
                    }
                    Request::Bulk(oids, reps) => {
                        let refs: Vec<&Oid<'_>> = oids.iter().collect();
                        session.getbulk(&refs, 0, *reps).await
                    }
                }
                .map_err(map_snmp_error)?;
                if pdu.error_status != 0 {
                    return Err(SnmpError::ErrorStatus {
                        status: pdu.error_status,
                        index: pdu.error_index,
                    });
                }
                let mut out = Vec::new();
                for (o, v) in pdu.varbinds {
                    let arcs = oid_arcs(&o)
                        .ok_or_else(|| SnmpError::Malformed("OID arc over 32 bits".into()))?;
                    out.push((arcs, OwnedValue::from_value(&v)));
                }
                Ok(out)
            })
            .await
            .unwrap_or(Err(SnmpError::Timeout(timeout)));
            match result {
                Ok(v) => return Ok(v),
                // Authentication and error-status answers will not change on retry.
                Err(
                    e @ (SnmpError::Auth(_) | SnmpError::ErrorStatus { .. } | SnmpError::Withheld),
                ) => {
                    return Err(e);
                }
                Err(e) => {
                    self.session = None;
                    self.next_req_id = tagged(
                        self.target.request_tag,
                        (self.next_req_id as u32).wrapping_add(1000),
                    );
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Walks table columns side by side with GETBULK; returns, per column, `(index, value)`
    /// where index is the OID suffix below the column. Bounded: stops on a non-increasing OID.
    pub async fn walk_columns(
        &mut self,
        columns: &[&[u32]],
        max_repetitions: u32,
        max_rows: usize,
    ) -> Result<Vec<Vec<(Arcs, OwnedValue)>>, SnmpError> {
        let mut last: Vec<Arcs> = columns.iter().map(|c| c.to_vec()).collect();
        let mut done = vec![false; columns.len()];
        let mut rows: Vec<Vec<(Arcs, OwnedValue)>> = vec![Vec::new(); columns.len()];
        // Each round moves every active column forward or ends it, so this bounds the loop.
        let max_rounds = max_rows / max_repetitions.max(1) as usize + 2;
        for _ in 0..max_rounds {
            let active: Vec<usize> = (0..columns.len()).filter(|&i| !done[i]).collect();
            if active.is_empty() {
                break;
            }
            let oids = active
                .iter()
                .map(|&i| oid(&last[i]))
                .collect::<Result<Vec<_>, _>>()?;
            let vbs = self.getbulk(&oids, max_repetitions).await?;
            let mut progressed = vec![false; active.len()];
            for (n, (arcs, value)) in vbs.into_iter().enumerate() {
                let slot = n % active.len();
                let col = active[slot];
                if done[col] {
                    continue;
                }
                let root = columns[col];
                if value == OwnedValue::EndOfMibView
                    || !arcs.starts_with(root)
                    || arcs <= last[col]
                    || rows[col].len() >= max_rows
                {
                    done[col] = true;
                    continue;
                }
                progressed[slot] = true;
                last[col] = arcs.clone();
                rows[col].push((arcs[root.len()..].to_vec(), value));
            }
            for (slot, &col) in active.iter().enumerate() {
                if !progressed[slot] {
                    done[col] = true;
                }
            }
        }
        Ok(rows)
    }
}

/// A positive request id whose bits 24..30 carry the tag; the low 24 bits count.
pub(crate) fn tagged(tag: u8, counter: u32) -> i32 {
    (((u32::from(tag) & 0x3f) << 24) | (counter & 0x00ff_ffff)) as i32
}

async fn open_session(t: &Target, req_id: i32) -> Result<AsyncSession, SnmpError> {
    let io = |e: std::io::Error| match crate::model::starved(&e) {
        Some(why) => SnmpError::Starved(why),
        None => SnmpError::Io(e.to_string()),
    };
    match &t.credential {
        Credential::V2c { community } => {
            AsyncSession::new_v2c(t.addr, community.expose().as_bytes(), req_id)
                .await
                .map_err(io)
        }
        Credential::V3 {
            user,
            auth_protocol,
            auth_password,
            priv_protocol,
            priv_password,
        } => {
            let sec = usm_security(
                user,
                *auth_protocol,
                auth_password.as_ref(),
                *priv_protocol,
                priv_password.as_ref(),
                None,
            );
            let mut session = AsyncSession::new_v3(t.addr, req_id, sec)
                .await
                .map_err(io)?;
            session.init().await.map_err(map_snmp_error)?;
            Ok(session)
        }
        Credential::Netconf(_) => Err(SnmpError::Auth(
            "the credential profile is for NETCONF, not SNMP".into(),
        )),
    }
}

/// snmp2's USM settings for one user; `extension` says how privacy keys longer than the hash
/// are made (None: snmp2's default).
pub(crate) fn usm_security(
    user: &str,
    auth_protocol: Option<AuthProtocol>,
    auth_password: Option<&Secret>,
    priv_protocol: Option<PrivProtocol>,
    priv_password: Option<&Secret>,
    extension: Option<v3::KeyExtension>,
) -> v3::Security {
    let auth_pw = auth_password.map(|s| s.expose()).unwrap_or("");
    let sec = v3::Security::new(user.as_bytes(), auth_pw.as_bytes());
    match (auth_protocol, priv_protocol) {
        (None, _) => sec.with_auth(v3::Auth::NoAuthNoPriv),
        (Some(a), None) => sec
            .with_auth_protocol(auth_proto(a))
            .with_auth(v3::Auth::AuthNoPriv),
        (Some(a), Some(p)) => {
            let sec = sec.with_auth_protocol(auth_proto(a));
            let sec = match extension {
                Some(x) => sec.with_key_extension_method(x),
                None => sec,
            };
            sec.with_auth(v3::Auth::AuthPriv {
                cipher: cipher(p),
                privacy_password: priv_password
                    .map(|s| s.expose().as_bytes().to_vec())
                    .unwrap_or_default(),
            })
        }
    }
}

fn auth_proto(a: AuthProtocol) -> v3::AuthProtocol {
    match a {
        AuthProtocol::Md5 => v3::AuthProtocol::Md5,
        AuthProtocol::Sha => v3::AuthProtocol::Sha1,
        AuthProtocol::Sha224 => v3::AuthProtocol::Sha224,
        AuthProtocol::Sha256 => v3::AuthProtocol::Sha256,
        AuthProtocol::Sha384 => v3::AuthProtocol::Sha384,
        AuthProtocol::Sha512 => v3::AuthProtocol::Sha512,
    }
}

fn cipher(p: PrivProtocol) -> v3::Cipher {
    match p {
        PrivProtocol::Des => v3::Cipher::Des,
        PrivProtocol::Aes => v3::Cipher::Aes128,
        PrivProtocol::Aes192 => v3::Cipher::Aes192,
        PrivProtocol::Aes256 => v3::Cipher::Aes256,
    }
}

/// snmp2's errors have no useful Display; keep the variant name.
fn map_snmp_error(e: snmp2::Error) -> SnmpError {
    match e {
        snmp2::Error::AuthFailure(kind) => SnmpError::Auth(format!("{kind:?}")),
        // On a connected UDP socket a receive error is almost always ICMP port unreachable.
        snmp2::Error::Receive => {
            SnmpError::Io("receive failed (port unreachable: no agent?)".into())
        }
        snmp2::Error::Send => SnmpError::Io("send failed".into()),
        other => SnmpError::Malformed(format!("{other:?}")),
    }
}
