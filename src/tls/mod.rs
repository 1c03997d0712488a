//! TLS with rustls (ring): the server side of the listener (HTTPS, and mutual TLS against the
//! pool CA), the member id bound to a certificate, and the client side of the peer
//! transport, the fan-out and the CLI.
//!
//! A member's certificate names its member id in a SAN URI `urn:emspool:member:ID` (what
//! `emspool certs` writes) or, failing that, in its subject CN `emspool-member-ID`. The id of
//! the verified certificate is the only sender a peer request may claim (`api::peer`).

pub(crate) mod acceptor;
pub(crate) mod certs;

use crate::config::tls::{member_identity, read_certs, read_key};
use crate::config::{ClientAuth, Config};
use crate::model::ServerId;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateDer;
use std::path::Path;
use std::sync::{Arc, Once};

pub(crate) use acceptor::Remote;

/// The SAN URI prefix that binds a certificate to a member id.
pub(crate) const MEMBER_URI_PREFIX: &str = "urn:emspool:member:";
/// The CN prefix accepted when a certificate has no member URI.
pub(crate) const MEMBER_CN_PREFIX: &str = "emspool-member-";

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("{0}")]
    File(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("pool CA: {0}")]
    Verifier(String),
    #[error("HTTP client: {0}")]
    Client(String),
}

/// Makes ring the process's rustls provider (reqwest, built without one, uses it). Idempotent.
pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only when some provider is already installed, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in read_certs(path).map_err(TlsError::File)? {
        store
            .add(c)
            .map_err(|e| TlsError::File(format!("{}: {e}", path.display())))?;
    }
    Ok(store)
}

/// The listener's rustls configuration, None for plain HTTP (no `[server] tls_cert`).
pub(crate) fn server_config(
    config: &Config,
) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    let (Some(cert), Some(key)) = (&config.server.tls_cert, &config.server.tls_key) else {
        return Ok(None);
    };
    let chain = read_certs(cert).map_err(TlsError::File)?;
    let key = read_key(key).map_err(TlsError::File)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let pool_ca = config
        .pool
        .as_ref()
        .and_then(|p| p.ca.as_ref().map(|ca| (p, ca)));
    let builder = match pool_ca {
        Some((pool, ca)) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider());
            let verifier = match pool.client_auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                ClientAuth::Required => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut sc = builder.with_single_cert(chain, key)?;
    // axum serves HTTP/1.1 only here.
    sc.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(sc)))
}

/// The member id a (verified) certificate is bound to: its one `urn:emspool:member:ID` SAN
/// URI, else its CN `emspool-member-ID`. None when it names none, or several different ones.
pub(crate) fn member_id(cert: &CertificateDer<'_>) -> Option<ServerId> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let parse = |s: &str, prefix: &str| -> Option<u32> {
        s.strip_prefix(prefix)?
            .parse::<u32>()
            .ok()
            .filter(|&id| id > 0)
    };
    let mut from_uri: Option<u32> = None;
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(u) = name
                && let Some(id) = parse(u, MEMBER_URI_PREFIX)
            {
                if from_uri.is_some_and(|f| f != id) {
                    return None;
                }
                from_uri = Some(id);
            }
        }
    }
    if let Some(id) = from_uri {
        return Some(ServerId(id));
    }
    let mut cns = x509.subject().iter_common_name();
    let cn = cns.next()?.as_str().ok()?;
    if cns.next().is_some() {
        return None;
    }
    parse(cn, MEMBER_CN_PREFIX).map(ServerId)
}

/// What a reqwest client trusts and shows: roots to trust only (else the system's) and a
/// client certificate.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientTls<'a> {
    pub(crate) ca: Option<&'a Path>,
    pub(crate) identity: Option<(&'a Path, &'a Path)>,
}

impl<'a> ClientTls<'a> {
    /// The peer transport and fan-out: the pool CA only, this member's certificate.
    pub(crate) fn for_pool(config: &'a Config) -> ClientTls<'a> {
        match &config.pool {
            Some(p) if p.ca.is_some() => ClientTls {
                ca: p.ca.as_deref(),
                identity: member_identity(&config.server, p),
            },
            _ => ClientTls::default(),
        }
    }

    /// Applies this to a reqwest builder.
    pub(crate) fn apply(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TlsError> {
        init();
        let mut b = builder;
        if let Some(ca) = self.ca {
            let bytes =
                std::fs::read(ca).map_err(|e| TlsError::File(format!("{}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&bytes)
                .map_err(|_| TlsError::File(format!("{}: not PEM certificates", ca.display())))?;
            b = b.tls_certs_only(certs);
        }
        if let Some((cert, key)) = self.identity {
            let mut pem = std::fs::read(cert)
                .map_err(|e| TlsError::File(format!("{}: {e}", cert.display())))?;
            pem.push(b'\n');
            pem.extend(
                std::fs::read(key)
                    .map_err(|e| TlsError::File(format!("{}: {e}", key.display())))?,
            );
            let id = reqwest::Identity::from_pem(&pem).map_err(|_| {
                TlsError::File(format!(
                    "{} and {}: not a PEM certificate and key",
                    cert.display(),
                    key.display()
                ))
            })?;
            b = b.identity(id);
        }
        Ok(b)
    }
}

/// Whether the address is loopback (the peer protocol may then run in clear with only a
/// warning-free pool secret).
pub(crate) fn is_loopback(addr: &std::net::SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests;
