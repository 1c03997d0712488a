//! SNMPv3 informs: the receiver is the authoritative engine (RFC 3414 1.5.1), so this server
//! needs an engine id, boots and time of its own, answers discovery with reports, checks the
//! time window, and sends back an authenticated (and encrypted) Response.
//!
//! snmp2 cannot do this side: it writes the request-id into msgID (Net-SNMP matches v3 answers
//! by msgID) and keeps its keys, HMAC and ciphers crate-private. So this module holds a small
//! USM of its own: key localization (RFC 3414 A.2), HMAC-MD5/SHA-96 and the SHA-2 variants
//! (RFC 7860), CBC-DES (RFC 3414 8), CFB128-AES-128 (RFC 3826) and AES-192/256 with the
//! Blumenthal key extension (draft-blumenthal-aes-usm-04, as Net-SNMP's AES-192/AES-256).

use super::trap::DecodeError;
#[cfg(any(test, feature = "testing"))]
use super::trap::hex;
use crate::config::{AuthProtocol, PrivProtocol, TrapUser};
use aes::cipher::{AsyncStreamCipher, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use snmp2::{AsnReader, asn1};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;
use subtle::ConstantTimeEq;

const FLAG_AUTH: u8 = 0x01;
const FLAG_PRIV: u8 = 0x02;
const FLAG_REPORTABLE: u8 = 0x04;
const MAX_SIZE: i64 = 65_507;
/// RFC 3414 3.2.7: messages more than this many seconds off our clock are not timely.
const TIME_WINDOW: i64 = 150;

pub(crate) const UNSUPPORTED_SEC_LEVELS: [u32; 11] = [1, 3, 6, 1, 6, 3, 15, 1, 1, 1, 0];
pub(crate) const NOT_IN_TIME_WINDOWS: [u32; 11] = [1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0];
pub(crate) const UNKNOWN_USER_NAMES: [u32; 11] = [1, 3, 6, 1, 6, 3, 15, 1, 1, 3, 0];
pub(crate) const UNKNOWN_ENGINE_IDS: [u32; 11] = [1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0];

const TAG_INFORM: u8 = 0xa6;
const TAG_TRAP: u8 = 0xa7;
const TAG_RESPONSE: u8 = 0xa2;
const TAG_REPORT: u8 = 0xa8;

/// This server's SNMP engine, authoritative for the informs sent to it.
pub struct LocalEngine {
    pub id: Vec<u8>,
    pub boots: u32,
    started: Instant,
    salt: AtomicU32,
    reports: AtomicU32,
}

impl LocalEngine {
    pub fn new(id: Vec<u8>, boots: u32) -> LocalEngine {
        LocalEngine {
            id,
            boots: boots.clamp(1, 0x7fff_ffff),
            started: Instant::now(),
            salt: AtomicU32::new(rand::random()),
            reports: AtomicU32::new(0),
        }
    }

    /// RFC 3411 text-format engine id for server `id`, under the documentation enterprise
    /// number (RFC 5612) so that it claims no vendor.
    pub fn default_id(server: u32) -> Vec<u8> {
        let mut id = (32473u32 | 0x8000_0000).to_be_bytes().to_vec();
        id.push(4);
        id.extend_from_slice(format!("emspool-{server}").as_bytes());
        id
    }

    /// An engine that started `secs` seconds ago (tests: a sender whose clock is ahead).
    #[cfg(test)]
    pub(crate) fn started_ago(id: Vec<u8>, boots: u32, secs: u64) -> LocalEngine {
        let mut e = LocalEngine::new(id, boots);
        if let Some(t) = e.started.checked_sub(std::time::Duration::from_secs(secs)) {
            e.started = t;
        }
        e
    }

    pub fn time(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX) & 0x7fff_ffff
    }
}

/// A user's keys localized to our engine.
pub struct InformUser {
    name: Vec<u8>,
    auth: Option<(AuthProtocol, Vec<u8>)>,
    privacy: Option<(PrivProtocol, Vec<u8>)>,
}

impl InformUser {
    /// `None` for users configured for another engine (trap senders), or with a cipher this
    /// module does not do.
    pub fn new(u: &TrapUser, engine: &LocalEngine) -> Result<Option<InformUser>, String> {
        if u.engine_id_bytes().as_deref() != Some(engine.id.as_slice()) {
            return Ok(None);
        }
        let auth = match (u.auth_protocol, &u.auth_password) {
            (Some(p), Some(pw)) => Some((p, localize(p, pw.expose().as_bytes(), &engine.id))),
            _ => None,
        };
        let privacy = match (u.priv_protocol, &u.priv_password, &auth) {
            (Some(p), Some(pw), Some((a, _))) => {
                Some((p, priv_key(*a, p, pw.expose().as_bytes(), &engine.id)))
            }
            (Some(p), ..) => {
                return Err(format!(
                    "user {:?}: {p:?} privacy needs authentication",
                    u.user
                ));
            }
            _ => None,
        };
        Ok(Some(InformUser {
            name: u.user.as_bytes().to_vec(),
            auth,
            privacy,
        }))
    }
}

/// What an inform turned into: the notification PDU (to decode like a v2c one) and the answer.
pub(crate) struct Accepted {
    /// The Trap or InformRequest PDU, TLV included.
    pub pdu: Vec<u8>,
    pub user: String,
    pub reply: Option<Vec<u8>>,
}

/// Bytes of key a cipher takes (DES: 8 of key and 8 of pre-IV).
fn priv_key_len(p: PrivProtocol) -> usize {
    match p {
        PrivProtocol::Des | PrivProtocol::Aes => 16,
        PrivProtocol::Aes192 => 24,
        PrivProtocol::Aes256 => 32,
    }
}

/// The localized privacy key, extended when the hash is shorter than the cipher's key
/// (AES-192/256 with MD5 or SHA-1) by draft-blumenthal-aes-usm-04: append H(key so far) until
/// long enough. That is what Net-SNMP's AES-192/AES-256 and snmp2's `Blumenthal` do.
pub(crate) fn priv_key(
    a: AuthProtocol,
    p: PrivProtocol,
    password: &[u8],
    engine: &[u8],
) -> Vec<u8> {
    let need = priv_key_len(p);
    let mut key = localize(a, password, engine);
    while key.len() < need {
        let h = digest(a, &key);
        let take = (need - key.len()).min(h.len());
        key.extend_from_slice(&h[..take]);
    }
    key.truncate(need);
    key
}

fn digest(a: AuthProtocol, data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    match a {
        AuthProtocol::Md5 => md5::Md5::digest(data).to_vec(),
        AuthProtocol::Sha => sha1::Sha1::digest(data).to_vec(),
        AuthProtocol::Sha224 => sha2::Sha224::digest(data).to_vec(),
        AuthProtocol::Sha256 => sha2::Sha256::digest(data).to_vec(),
        AuthProtocol::Sha384 => sha2::Sha384::digest(data).to_vec(),
        AuthProtocol::Sha512 => sha2::Sha512::digest(data).to_vec(),
    }
}

/// RFC 3414 A.2: password to key, then localized to `engine`.
pub(crate) fn localize(p: AuthProtocol, password: &[u8], engine: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    fn ku<D: Digest>(password: &[u8], engine: &[u8]) -> Vec<u8> {
        let mut d = D::new();
        if !password.is_empty() {
            let mut buf = [0u8; 64];
            let mut index = 0usize;
            for _ in 0..(1_048_576 / 64) {
                for b in buf.iter_mut() {
                    *b = password[index % password.len()];
                    index += 1;
                }
                d.update(buf);
            }
        }
        let ku = d.finalize();
        let mut d = D::new();
        d.update(&ku);
        d.update(engine);
        d.update(&ku);
        d.finalize().to_vec()
    }
    match p {
        AuthProtocol::Md5 => ku::<md5::Md5>(password, engine),
        AuthProtocol::Sha => ku::<sha1::Sha1>(password, engine),
        AuthProtocol::Sha224 => ku::<sha2::Sha224>(password, engine),
        AuthProtocol::Sha256 => ku::<sha2::Sha256>(password, engine),
        AuthProtocol::Sha384 => ku::<sha2::Sha384>(password, engine),
        AuthProtocol::Sha512 => ku::<sha2::Sha512>(password, engine),
    }
}

/// Bytes of the truncated MAC in msgAuthenticationParameters.
fn mac_len(p: AuthProtocol) -> usize {
    match p {
        AuthProtocol::Md5 | AuthProtocol::Sha => 12,
        AuthProtocol::Sha224 => 16,
        AuthProtocol::Sha256 => 24,
        AuthProtocol::Sha384 => 32,
        AuthProtocol::Sha512 => 48,
    }
}

fn mac(p: AuthProtocol, key: &[u8], msg: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        match <M as hmac::digest::KeyInit>::new_from_slice(key) {
            Ok(mut m) => {
                m.update(msg);
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
    let full = match p {
        AuthProtocol::Md5 => run::<Hmac<md5::Md5>>(key, msg),
        AuthProtocol::Sha => run::<Hmac<sha1::Sha1>>(key, msg),
        AuthProtocol::Sha224 => run::<Hmac<sha2::Sha224>>(key, msg),
        AuthProtocol::Sha256 => run::<Hmac<sha2::Sha256>>(key, msg),
        AuthProtocol::Sha384 => run::<Hmac<sha2::Sha384>>(key, msg),
        AuthProtocol::Sha512 => run::<Hmac<sha2::Sha512>>(key, msg),
    };
    full[..mac_len(p).min(full.len())].to_vec()
}

fn aes_iv(boots: u32, time: u32, salt: &[u8]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&boots.to_be_bytes());
    iv[4..8].copy_from_slice(&time.to_be_bytes());
    iv[8..].copy_from_slice(&salt[..8]);
    iv
}

fn des_iv(key: &[u8], salt: &[u8]) -> [u8; 8] {
    let mut iv = [0u8; 8];
    for i in 0..8 {
        iv[i] = key[8 + i] ^ salt[i];
    }
    iv
}

fn decrypt(
    p: PrivProtocol,
    key: &[u8],
    boots: u32,
    time: u32,
    salt: &[u8],
    data: &[u8],
) -> Option<Vec<u8>> {
    if salt.len() != 8 {
        return None;
    }
    let mut buf = data.to_vec();
    let iv = aes_iv(boots, time, salt);
    match p {
        PrivProtocol::Aes => cfb_mode::Decryptor::<aes::Aes128>::new_from_slices(key, &iv)
            .ok()?
            .decrypt(&mut buf),
        PrivProtocol::Aes192 => cfb_mode::Decryptor::<aes::Aes192>::new_from_slices(key, &iv)
            .ok()?
            .decrypt(&mut buf),
        PrivProtocol::Aes256 => cfb_mode::Decryptor::<aes::Aes256>::new_from_slices(key, &iv)
            .ok()?
            .decrypt(&mut buf),
        PrivProtocol::Des => {
            if buf.len() % 8 != 0 {
                return None;
            }
            let iv = des_iv(key, salt);
            let mut dec = cbc::Decryptor::<des::Des>::new_from_slices(&key[..8], &iv).ok()?;
            for block in buf.chunks_exact_mut(8) {
                dec.decrypt_block_mut(block.into());
            }
        }
    }
    Some(buf)
}

/// Encrypts `plain` for a message from our engine; returns (ciphertext, msgPrivacyParameters).
fn encrypt(
    p: PrivProtocol,
    key: &[u8],
    engine: &LocalEngine,
    time: u32,
    plain: &[u8],
) -> Option<(Vec<u8>, Vec<u8>)> {
    let n = engine.salt.fetch_add(1, Ordering::Relaxed);
    match p {
        PrivProtocol::Aes | PrivProtocol::Aes192 | PrivProtocol::Aes256 => {
            let salt = (u64::from(rand::random::<u32>()) << 32 | u64::from(n))
                .to_be_bytes()
                .to_vec();
            let iv = aes_iv(engine.boots, time, &salt);
            let mut buf = plain.to_vec();
            match p {
                PrivProtocol::Aes192 => {
                    cfb_mode::Encryptor::<aes::Aes192>::new_from_slices(key, &iv)
                        .ok()?
                        .encrypt(&mut buf)
                }
                PrivProtocol::Aes256 => {
                    cfb_mode::Encryptor::<aes::Aes256>::new_from_slices(key, &iv)
                        .ok()?
                        .encrypt(&mut buf)
                }
                _ => cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
                    .ok()?
                    .encrypt(&mut buf),
            }
            Some((buf, salt))
        }
        PrivProtocol::Des => {
            let mut salt = engine.boots.to_be_bytes().to_vec();
            salt.extend_from_slice(&n.to_be_bytes());
            let iv = des_iv(key, &salt);
            let mut buf = plain.to_vec();
            buf.resize(plain.len().div_ceil(8) * 8, 0);
            let mut enc = cbc::Encryptor::<des::Des>::new_from_slices(&key[..8], &iv).ok()?;
            for block in buf.chunks_exact_mut(8) {
                enc.encrypt_block_mut(block.into());
            }
            Some((buf, salt))
        }
    }
}

// --- BER writing (definite lengths only) ---

pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

pub(crate) fn int(v: i64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let mut i = 0;
    while i < 7 && ((b[i] == 0 && b[i + 1] & 0x80 == 0) || (b[i] == 0xff && b[i + 1] & 0x80 != 0)) {
        i += 1;
    }
    tlv(0x02, &b[i..])
}

pub(crate) fn octets(b: &[u8]) -> Vec<u8> {
    tlv(0x04, b)
}

pub(crate) fn oid(arcs: &[u32]) -> Vec<u8> {
    let mut c = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &a in &arcs[2..] {
        let mut stack = vec![(a & 0x7f) as u8];
        let mut v = a >> 7;
        while v > 0 {
            stack.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        c.extend(stack.iter().rev());
    }
    tlv(0x06, &c)
}

/// The parts of an incoming v3 message this module needs.
struct Incoming<'a> {
    msg_id: i64,
    flags: u8,
    engine: &'a [u8],
    boots: i64,
    time: i64,
    user: &'a [u8],
    auth_params: &'a [u8],
    /// Offset of msgAuthenticationParameters' content in the datagram.
    auth_pos: usize,
    priv_params: &'a [u8],
    /// Plaintext ScopedPDU (TLV) or the encrypted octets.
    data: &'a [u8],
}

fn bad(e: snmp2::Error) -> DecodeError {
    DecodeError::Malformed(format!("{e:?}"))
}

fn parse(datagram: &[u8]) -> Result<Incoming<'_>, DecodeError> {
    let seq = AsnReader::from_bytes(datagram)
        .read_raw(asn1::TYPE_SEQUENCE)
        .map_err(bad)?;
    let mut msg = AsnReader::from_bytes(seq);
    msg.read_asn_integer().map_err(bad)?;
    let mut header = AsnReader::from_bytes(msg.read_raw(asn1::TYPE_SEQUENCE).map_err(bad)?);
    let msg_id = header.read_asn_integer().map_err(bad)?;
    header.read_asn_integer().map_err(bad)?;
    let flags = header
        .read_asn_octetstring()
        .map_err(bad)?
        .first()
        .copied()
        .unwrap_or(0);
    let model = header.read_asn_integer().map_err(bad)?;
    if model != 3 {
        return Err(DecodeError::Malformed("security model is not USM".into()));
    }
    let params = msg.read_asn_octetstring().map_err(bad)?;
    let mut usm = AsnReader::from_bytes(
        AsnReader::from_bytes(params)
            .read_raw(asn1::TYPE_SEQUENCE)
            .map_err(bad)?,
    );
    let engine = usm.read_asn_octetstring().map_err(bad)?;
    let boots = usm.read_asn_integer().map_err(bad)?;
    let time = usm.read_asn_integer().map_err(bad)?;
    let user = usm.read_asn_octetstring().map_err(bad)?;
    let auth_params = usm.read_asn_octetstring().map_err(bad)?;
    let priv_params = usm.read_asn_octetstring().map_err(bad)?;
    let auth_pos = (auth_params.as_ptr() as usize).wrapping_sub(datagram.as_ptr() as usize);
    let data = if flags & FLAG_PRIV != 0 {
        msg.read_asn_octetstring().map_err(bad)?
    } else {
        let rest_start = msg_rest(&msg, seq);
        &seq[rest_start..]
    };
    Ok(Incoming {
        msg_id,
        flags,
        engine,
        boots,
        time,
        user,
        auth_params,
        auth_pos,
        priv_params,
        data,
    })
}

/// Offset in `seq` of what `rdr` has not read yet.
fn msg_rest(rdr: &AsnReader<'_>, seq: &[u8]) -> usize {
    seq.len() - rdr.bytes_left()
}

/// contextEngineID, contextName and the PDU (TLV) of a ScopedPDU.
type Scoped<'a> = (&'a [u8], &'a [u8], &'a [u8]);

fn scoped(plain: &[u8]) -> Result<Scoped<'_>, DecodeError> {
    let inner = AsnReader::from_bytes(plain)
        .read_raw(asn1::TYPE_SEQUENCE)
        .map_err(bad)?;
    let mut r = AsnReader::from_bytes(inner);
    let ctx_engine = r.read_asn_octetstring().map_err(bad)?;
    let ctx_name = r.read_asn_octetstring().map_err(bad)?;
    let start = inner.len() - r.bytes_left();
    let pdu = &inner[start..];
    let tag = *pdu
        .first()
        .ok_or_else(|| DecodeError::Malformed("empty PDU".into()))?;
    // Validate the TLV and cut trailing bytes.
    let body = AsnReader::from_bytes(pdu).read_raw(tag).map_err(bad)?;
    let end = (body.as_ptr() as usize - pdu.as_ptr() as usize) + body.len();
    Ok((ctx_engine, ctx_name, &pdu[..end]))
}

fn request_id(pdu: &[u8]) -> i64 {
    let Some(&tag) = pdu.first() else { return 0 };
    AsnReader::from_bytes(pdu)
        .read_raw(tag)
        .ok()
        .and_then(|b| AsnReader::from_bytes(b).read_asn_integer().ok())
        .unwrap_or(0)
}

struct Out<'a> {
    msg_id: i64,
    user: &'a [u8],
    /// Authenticate (and encrypt) with this user's keys; `None` sends in the clear.
    keys: Option<&'a InformUser>,
    encrypt: bool,
    ctx_engine: &'a [u8],
    ctx_name: &'a [u8],
    pdu: Vec<u8>,
}

fn encode(engine: &LocalEngine, out: Out<'_>) -> Option<Vec<u8>> {
    let time = engine.time();
    let scoped = tlv(
        0x30,
        &[octets(out.ctx_engine), octets(out.ctx_name), out.pdu].concat(),
    );
    let auth = out.keys.and_then(|u| u.auth.as_ref());
    let mut flags = 0u8;
    let (data, priv_params) = match (out.encrypt, out.keys.and_then(|u| u.privacy.as_ref())) {
        (true, Some((p, key))) => {
            flags |= FLAG_PRIV;
            let (c, salt) = encrypt(*p, key, engine, time, &scoped)?;
            (octets(&c), salt)
        }
        _ => (scoped, Vec::new()),
    };
    let mac_zeros = auth.map_or(0, |(p, _)| mac_len(*p));
    if auth.is_some() {
        flags |= FLAG_AUTH;
    }
    let usm_prefix = [
        octets(&engine.id),
        int(i64::from(engine.boots)),
        int(i64::from(time)),
        octets(out.user),
    ]
    .concat();
    let usm = tlv(
        0x30,
        &[
            usm_prefix.as_slice(),
            &octets(&vec![0u8; mac_zeros]),
            &octets(&priv_params),
        ]
        .concat(),
    );
    let version = int(3);
    let header = tlv(
        0x30,
        &[int(out.msg_id), int(MAX_SIZE), octets(&[flags]), int(3)].concat(),
    );
    let usm_octets = octets(&usm);
    let body_len = version.len() + header.len() + usm_octets.len() + data.len();
    let mut msg = tlv(0x30, &[&version[..], &header, &usm_octets, &data].concat());
    if let Some((p, key)) = auth {
        // message header, version, msgGlobalData, the OCTET STRING around the USM parameters,
        // their SEQUENCE header, the fields before the MAC, and the MAC's own TLV header.
        let at = hdr_len(body_len)
            + version.len()
            + header.len()
            + hdr_len(usm.len())
            + hdr_len_of(&usm)
            + usm_prefix.len()
            + hdr_len(mac_zeros);
        let m = mac(*p, key, &msg);
        msg.get_mut(at..at + mac_zeros)?.copy_from_slice(&m);
    }
    Some(msg)
}

/// Bytes of the tag and length octets of a TLV whose content is `n` bytes (as `tlv` writes).
fn hdr_len(n: usize) -> usize {
    match n {
        0..0x80 => 2,
        0x80..0x100 => 3,
        _ => 4,
    }
}

/// The tag and length octets of an encoded TLV.
fn hdr_len_of(tlv: &[u8]) -> usize {
    match tlv.get(1) {
        Some(0x81) => 3,
        Some(0x82) => 4,
        _ => 2,
    }
}

fn report_pdu(request_id: i64, counter: &[u32], value: u32) -> Vec<u8> {
    let vb = tlv(
        0x30,
        &[oid(counter), tlv(0x41, &int(i64::from(value))[2..])].concat(),
    );
    tlv(
        TAG_REPORT,
        &[int(request_id), int(0), int(0), tlv(0x30, &vb)].concat(),
    )
}

/// Handles a v3 message addressed to our engine (or probing for it): `Ok` for an accepted
/// notification, `Err(Report)` when the answer is a report, other errors when it is refused.
pub(crate) fn accept(
    datagram: &[u8],
    engine: &LocalEngine,
    users: &[InformUser],
) -> Result<Accepted, DecodeError> {
    let m = parse(datagram)?;
    let reportable = m.flags & FLAG_REPORTABLE != 0;
    let count = engine
        .reports
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(1);
    let clear_report = |counter: &[u32], why: &'static str, request: i64| {
        let pdu = report_pdu(request, counter, count);
        let reply = encode(
            engine,
            Out {
                msg_id: m.msg_id,
                user: m.user,
                keys: None,
                encrypt: false,
                ctx_engine: &engine.id,
                ctx_name: b"",
                pdu,
            },
        );
        DecodeError::Report {
            why,
            reply: reply.filter(|_| reportable),
        }
    };
    let plain_request = |m: &Incoming<'_>| {
        if m.flags & FLAG_PRIV == 0 {
            scoped(m.data).map(|(_, _, p)| request_id(p)).unwrap_or(0)
        } else {
            0
        }
    };
    if m.engine != engine.id.as_slice() {
        // Discovery (RFC 3414 4): an empty or foreign engine id learns ours.
        return Err(clear_report(
            &UNKNOWN_ENGINE_IDS,
            DISCOVERY,
            plain_request(&m),
        ));
    }
    let Some(user) = users.iter().find(|u| u.name == m.user) else {
        return Err(clear_report(
            &UNKNOWN_USER_NAMES,
            "unknown user",
            plain_request(&m),
        ));
    };
    let level_ok = (m.flags & FLAG_AUTH != 0) == user.auth.is_some()
        && (m.flags & FLAG_PRIV != 0) == user.privacy.is_some();
    if !level_ok {
        return Err(clear_report(
            &UNSUPPORTED_SEC_LEVELS,
            "security level differs from the user's",
            plain_request(&m),
        ));
    }
    if let Some((p, key)) = &user.auth {
        let n = mac_len(*p);
        if m.auth_params.len() != n || m.auth_pos + n > datagram.len() {
            return Err(DecodeError::Auth("bad authentication parameters".into()));
        }
        let mut copy = datagram.to_vec();
        copy[m.auth_pos..m.auth_pos + n].fill(0);
        let expect = mac(*p, key, &copy);
        // Constant time is not needed against an offline attacker who already has the packet,
        // but costs nothing.
        if !bool::from(expect.as_slice().ct_eq(m.auth_params)) {
            return Err(DecodeError::Auth(
                "wrong digest (authentication key)".into(),
            ));
        }
    }
    let plain = match &user.privacy {
        Some((p, key)) => decrypt(
            *p,
            key,
            u32::try_from(m.boots).unwrap_or(0),
            u32::try_from(m.time).unwrap_or(0),
            m.priv_params,
            m.data,
        )
        .ok_or_else(|| DecodeError::Auth("cannot decrypt".into()))?,
        None => m.data.to_vec(),
    };
    let (ctx_engine, ctx_name, pdu) = scoped(&plain)
        .map_err(|e| DecodeError::Auth(format!("decrypted into garbage (privacy key?): {e}")))?;
    let now = i64::from(engine.time());
    let timely = user.auth.is_none()
        || (m.boots == i64::from(engine.boots)
            && m.time.saturating_sub(now).saturating_abs() <= TIME_WINDOW);
    if !timely {
        // RFC 3414 3.2.7 a: an authenticated report tells the sender our boots and time.
        let pdu_bytes = report_pdu(request_id(pdu), &NOT_IN_TIME_WINDOWS, count);
        let reply = encode(
            engine,
            Out {
                msg_id: m.msg_id,
                user: m.user,
                keys: Some(user),
                encrypt: false,
                ctx_engine: &engine.id,
                ctx_name: b"",
                pdu: pdu_bytes,
            },
        );
        return Err(DecodeError::Report {
            why: NOT_IN_TIME_WINDOW,
            reply: reply.filter(|_| reportable),
        });
    }
    let tag = pdu.first().copied().unwrap_or(0);
    let reply = match tag {
        TAG_INFORM => {
            // The Response repeats request-id and varbinds: the same PDU under another tag.
            let mut resp = pdu.to_vec();
            resp[0] = TAG_RESPONSE;
            Some(
                encode(
                    engine,
                    Out {
                        msg_id: m.msg_id,
                        user: m.user,
                        keys: Some(user),
                        encrypt: true,
                        ctx_engine,
                        ctx_name,
                        pdu: resp,
                    },
                )
                .ok_or_else(|| DecodeError::Auth("cannot encode the response".into()))?,
            )
        }
        TAG_TRAP => None,
        _ => return Err(DecodeError::NotNotification("request to the trap receiver")),
    };
    Ok(Accepted {
        pdu: pdu.to_vec(),
        user: String::from_utf8_lossy(m.user).into_owned(),
        reply,
    })
}

/// An SNMPv3 message carrying `pdu` (a Trap-PDU, say) from `engine` as `user`, authenticated
/// and encrypted at the user's level: what an agent whose engine this is would send. For tests
/// and benchmarks (Net-SNMP's tools are too slow to load the receiver).
#[cfg(any(test, feature = "testing"))]
pub fn encode_as_engine(
    engine: &LocalEngine,
    user: &InformUser,
    msg_id: i64,
    pdu: Vec<u8>,
) -> Option<Vec<u8>> {
    encode(
        engine,
        Out {
            msg_id,
            user: &user.name,
            keys: Some(user),
            encrypt: true,
            ctx_engine: &engine.id,
            ctx_name: b"",
            pdu,
        },
    )
}

/// `why` of the report refusing an inform outside our time window (a replay).
pub(crate) const NOT_IN_TIME_WINDOW: &str = "not in time window";

/// `why` of the discovery report.
pub(crate) const DISCOVERY: &str = "engine id discovery";

#[cfg(any(test, feature = "testing"))]
pub(crate) fn hex_engine(id: &[u8]) -> String {
    hex(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_localization_matches_rfc_3414_a_3() {
        // RFC 3414 A.3.1 / A.3.2: password "maplesyrup", engine 00..02.
        let engine = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        assert_eq!(
            hex(&localize(AuthProtocol::Md5, b"maplesyrup", &engine)),
            "526f5eed9fcce26f8964c2930787d82b"
        );
        assert_eq!(
            hex(&localize(AuthProtocol::Sha, b"maplesyrup", &engine)),
            "6695febc9288e36282235fc7151f128497b38f3f"
        );
    }

    fn user(p: PrivProtocol, engine: &LocalEngine) -> InformUser {
        let u = TrapUser {
            user: "u1".into(),
            engine_id: hex(&engine.id),
            auth_protocol: Some(AuthProtocol::Sha),
            auth_password: Some(crate::config::Secret::new("authpass123")),
            priv_protocol: Some(p),
            priv_password: Some(crate::config::Secret::new("privpass123")),
        };
        InformUser::new(&u, engine)
            .expect("keys")
            .expect("local user")
    }

    #[test]
    fn an_encoded_message_authenticates_and_decrypts_as_sent() {
        let engine = LocalEngine::new(LocalEngine::default_id(7), 2);
        for p in [PrivProtocol::Aes, PrivProtocol::Des] {
            let u = user(p, &engine);
            // A long PDU so that lengths need two octets.
            let pdu = tlv(
                TAG_TRAP,
                &[int(42), int(0), int(0), tlv(0x30, &[0u8; 300])].concat(),
            );
            let msg = encode(
                &engine,
                Out {
                    msg_id: 1234,
                    user: b"u1",
                    keys: Some(&u),
                    encrypt: true,
                    ctx_engine: &engine.id,
                    ctx_name: b"",
                    pdu: pdu.clone(),
                },
            )
            .expect("encode");
            // What we send, we accept (same engine, timely, right keys).
            let acc = accept(&msg, &engine, &[u]).expect("accepted");
            assert_eq!(acc.pdu, pdu);
            assert!(acc.reply.is_none(), "a trap gets no reply");
        }
    }

    #[test]
    fn discovery_probe_gets_an_unauthenticated_report_with_our_engine() {
        let engine = LocalEngine::new(LocalEngine::default_id(7), 5);
        // Net-SNMP's probe: empty engine id and user, reportable, GetRequest.
        let probe = "304f0201033011020461b4b61c020300ffe30401040201030410300e04000201000201000400040004003025041180001f8880564a7a6236db086b000000000400a00e02046615050f0201000201003000";
        let bytes: Vec<u8> = (0..probe.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&probe[i..i + 2], 16).expect("hex"))
            .collect();
        let Err(DecodeError::Report {
            why,
            reply: Some(r),
        }) = accept(&bytes, &engine, &[])
        else {
            panic!("expected a report");
        };
        assert_eq!(why, DISCOVERY);
        let m = parse(&r).expect("report parses");
        assert_eq!(m.engine, engine.id.as_slice());
        assert_eq!(m.boots, 5);
        assert_eq!(m.msg_id, 0x61b4_b61c);
        assert_eq!(m.flags, 0);
        let (_, _, pdu) = scoped(m.data).expect("scoped");
        assert_eq!(pdu[0], TAG_REPORT);
        assert_eq!(request_id(pdu), 0x6615_050f);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

            /// A valid authPriv inform to our engine, with bytes flipped, cut or inserted: never
            /// a panic, and any change at all is refused (the MAC covers the whole datagram).
            #[test]
            fn mutated_informs(
                des in any::<bool>(),
                edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
            ) {
                let (engine, u, msg) = &fixtures()[usize::from(des)];
                prop_assert!(accept(msg, engine, std::slice::from_ref(u)).is_ok());
                let mut b = msg.clone();
                crate::snmp::mutate(&mut b, &edits);
                let r = accept(&b, engine, std::slice::from_ref(u));
                prop_assert!(b == *msg || r.is_err(), "a changed datagram was accepted");
            }
        }

        /// Engine, user and a valid inform, for AES and DES; key localization is slow in debug
        /// builds, so it is done once.
        fn fixtures() -> &'static [(LocalEngine, InformUser, Vec<u8>); 2] {
            static F: std::sync::OnceLock<[(LocalEngine, InformUser, Vec<u8>); 2]> =
                std::sync::OnceLock::new();
            F.get_or_init(|| {
                [PrivProtocol::Aes, PrivProtocol::Des].map(|p| {
                    let engine = LocalEngine::new(LocalEngine::default_id(3), 1);
                    let u = user(p, &engine);
                    let vb = tlv(
                        0x30,
                        &tlv(
                            0x30,
                            &[oid(&[1, 3, 6, 1, 2, 1, 1, 3, 0]), tlv(0x43, &[5])].concat(),
                        ),
                    );
                    let pdu = tlv(TAG_INFORM, &[int(7), int(0), int(0), vb].concat());
                    let msg = encode(
                        &engine,
                        Out {
                            msg_id: 99,
                            user: b"u1",
                            keys: Some(&u),
                            encrypt: true,
                            ctx_engine: &engine.id,
                            ctx_name: b"",
                            pdu,
                        },
                    )
                    .expect("encode");
                    (engine, u, msg)
                })
            })
        }
    }

    #[test]
    fn encrypt_then_decrypt_round_trips() {
        let engine = LocalEngine::new(LocalEngine::default_id(1), 3);
        for p in [
            PrivProtocol::Aes,
            PrivProtocol::Des,
            PrivProtocol::Aes192,
            PrivProtocol::Aes256,
        ] {
            let key = priv_key(AuthProtocol::Sha, p, b"privpass123", &engine.id);
            assert_eq!(key.len(), priv_key_len(p));
            let plain = b"a scoped pdu that is not a multiple of eight".to_vec();
            let (c, salt) = encrypt(p, &key, &engine, 77, &plain).expect("encrypt");
            let back = decrypt(p, &key, engine.boots, 77, &salt, &c).expect("decrypt");
            assert_eq!(&back[..plain.len()], &plain[..], "{p:?}");
        }
    }
}
