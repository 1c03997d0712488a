//! Lab certificates (`emspool certs`): a pool CA, member certificates with the member id bound
//! in a SAN URI, and client certificates for the CLI. For production use your own CA or
//! cert-manager (README, "TLS and mutual TLS"); these are ECDSA P-256 keys valid for ~10 years.

use super::{MEMBER_CN_PREFIX, MEMBER_URI_PREFIX};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CertError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Input(String),
}

/// A certificate and its private key, PEM.
pub(crate) struct Pem {
    pub(crate) cert: String,
    pub(crate) key: String,
}

const VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn validity(p: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks a little behind.
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + VALIDITY;
}

/// A new self-signed pool CA.
pub(crate) fn new_ca(name: &str) -> Result<Pem, CertError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut p);
    let key = KeyPair::generate()?;
    let cert = p.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// What a leaf certificate is for.
pub(crate) enum Leaf<'a> {
    /// A pool member: server and client use, `urn:emspool:member:ID` and the given host
    /// names / addresses as SANs.
    Member { id: u32, hosts: &'a [String] },
    /// A client of the API (the CLI with `client_auth = "required"`): client use only.
    Client { name: &'a str },
}

/// A leaf certificate signed by the CA in `ca` (PEM certificate and key).
pub(crate) fn new_leaf(ca: &Pem, leaf: Leaf<'_>) -> Result<Pem, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)?;
    let mut p;
    match leaf {
        Leaf::Member { id, hosts } => {
            if id == 0 {
                return Err(CertError::Input("member id must be positive".into()));
            }
            if hosts.is_empty() {
                return Err(CertError::Input(
                    "a member certificate needs at least one --host (its URL's host)".into(),
                ));
            }
            // Strings that parse as IP addresses become IP SANs, the rest DNS names.
            p = CertificateParams::new(hosts.to_vec())?;
            p.subject_alt_names.push(SanType::URI(
                format!("{MEMBER_URI_PREFIX}{id}").as_str().try_into()?,
            ));
            p.distinguished_name
                .push(DnType::CommonName, format!("{MEMBER_CN_PREFIX}{id}"));
            p.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        }
        Leaf::Client { name } => {
            if name.starts_with(MEMBER_CN_PREFIX) {
                return Err(CertError::Input(format!(
                    "a client name must not start with {MEMBER_CN_PREFIX:?}"
                )));
            }
            p = CertificateParams::new(Vec::<String>::new())?;
            p.distinguished_name.push(DnType::CommonName, name);
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut p);
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}
