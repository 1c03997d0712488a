//! The TLS keys of the configuration: which files, and whether they fit together.
//!
//! Consistency is checked here with one line per mistake (an https member without a
//! certificate, a certificate without its key, a file that cannot be read or holds no PEM of
//! the right kind), so `check-config` finds it before a pool half-starts. The files are only
//! parsed for their PEM blocks here; `crate::tls` builds the rustls configurations from them.

use super::{ClientSection, PoolSection, ServerSection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::Path;

/// Who must show a certificate of the pool CA when the pool runs mutual TLS (`[pool] ca`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Every connection is asked for a certificate; one of another CA is refused in the
    /// handshake, none at all is allowed (browsers, the CLI with only `[client] ca`), but then
    /// every `/peer/v1` request is refused.
    #[default]
    Optional,
    /// A connection without a certificate of the pool CA is refused in the TLS handshake:
    /// clients then need `[client] cert` and `key` too.
    Required,
}

/// Every PEM certificate in `path`; an error line when there is none or the file is unreadable.
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The first PEM private key (PKCS#8, PKCS#1 or SEC1) in `path`.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|_| format!("{}: holds no PEM private key", path.display()))
}

/// The member's own certificate and key for mutual TLS: `[pool] cert`/`key` if given, else
/// the server's (`[server] tls_cert`/`tls_key`, made for both uses by `emspool certs`).
pub(crate) fn member_identity<'a>(
    server: &'a ServerSection,
    pool: &'a PoolSection,
) -> Option<(&'a Path, &'a Path)> {
    match (&pool.cert, &pool.key) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => match (&server.tls_cert, &server.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => None,
        },
    }
}

type Refusal = (String, String);

fn refuse(key: &str, message: impl Into<String>) -> Result<(), Refusal> {
    Err((key.to_owned(), message.into()))
}

/// A certificate and its key are given together, and both files parse.
fn check_pair(
    cert: Option<&Path>,
    key: Option<&Path>,
    cert_key: &str,
    key_key: &str,
) -> Result<(), Refusal> {
    match (cert, key) {
        (None, None) => Ok(()),
        (Some(_), None) => refuse(key_key, format!("{cert_key} is set but {key_key} is not")),
        (None, Some(_)) => refuse(cert_key, format!("{key_key} is set but {cert_key} is not")),
        (Some(c), Some(k)) => {
            read_certs(c).map_err(|m| (cert_key.to_owned(), m))?;
            read_key(k).map_err(|m| (key_key.to_owned(), m))?;
            Ok(())
        }
    }
}

/// The TLS keys of `[server]`, `[pool]` and `[client]` fit together.
pub(crate) fn validate(
    server: &ServerSection,
    pool: Option<&PoolSection>,
    client: &ClientSection,
) -> Result<(), Refusal> {
    check_pair(
        server.tls_cert.as_deref(),
        server.tls_key.as_deref(),
        "server.tls_cert",
        "server.tls_key",
    )?;
    check_pair(
        client.cert.as_deref(),
        client.key.as_deref(),
        "client.cert",
        "client.key",
    )?;
    if let Some(ca) = &client.ca {
        read_certs(ca).map_err(|m| ("client.ca".to_owned(), m))?;
    }
    let Some(pool) = pool else {
        return Ok(());
    };
    check_pair(
        pool.cert.as_deref(),
        pool.key.as_deref(),
        "pool.cert",
        "pool.key",
    )?;
    let tls = server.tls_cert.is_some();
    let me = pool.members.iter().find(|m| m.id == server.id);
    let https = |u: &str| u.starts_with("https://");
    if let Some(me) = me {
        if https(&me.url) && !tls {
            return refuse(
                "server.tls_cert",
                format!(
                    "member {} is {:?} (https) but this server has no tls_cert/tls_key",
                    me.id, me.url
                ),
            );
        }
        if !https(&me.url) && tls {
            return refuse(
                "pool.members.url",
                format!(
                    "this server serves HTTPS (server.tls_cert) but its member URL {:?} is http",
                    me.url
                ),
            );
        }
    }
    let any_https = pool.members.iter().any(|m| https(&m.url));
    if any_https && pool.ca.is_none() {
        return refuse(
            "pool.ca",
            "https member URLs need the pool CA that signed the members' certificates",
        );
    }
    if let Some(ca) = &pool.ca {
        read_certs(ca).map_err(|m| ("pool.ca".to_owned(), m))?;
        if !tls {
            return refuse(
                "pool.ca",
                "mutual TLS between members needs server.tls_cert and server.tls_key",
            );
        }
        if let Some(m) = pool.members.iter().find(|m| !https(&m.url)) {
            return refuse(
                "pool.members.url",
                format!(
                    "with pool.ca (mutual TLS) every member is https; member {} is {:?}",
                    m.id, m.url
                ),
            );
        }
        if member_identity(server, pool).is_none() {
            return refuse("pool.cert", "mutual TLS needs this member's certificate");
        }
    } else if pool.client_auth == ClientAuth::Required {
        return refuse("pool.client_auth", "\"required\" needs pool.ca");
    }
    if pool.max_term_jump == 0 {
        return refuse("pool.max_term_jump", "must be at least 1 (election rounds)");
    }
    Ok(())
}
