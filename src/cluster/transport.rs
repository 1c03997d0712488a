//! The client side of the peer protocol: authenticated HTTP/JSON with short deadlines.
//!
//! Fault injection lives here: a blocked peer is neither sent to nor listened to, which is what
//! a real partition looks like to both sides.

use crate::config::Secret;
use crate::model::ServerId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashSet};
use std::sync::RwLock;
use std::time::Duration;

/// Header naming the sending member, so the receiver can apply fault injection and log who.
pub(crate) const FROM_HEADER: &str = "x-emspool-from";

#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerError {
    #[error("server {0} is not a pool member")]
    UnknownPeer(ServerId),
    #[error("server {0} is cut off (fault injection)")]
    Blocked(ServerId),
    #[error("server {0} unreachable: {1}")]
    Unreachable(ServerId, String),
    #[error("server {0} refused: {1} {2}")]
    Refused(ServerId, u16, String),
    #[error("server {0} answered nonsense: {1}")]
    Decode(ServerId, String),
}

pub(crate) struct Transport {
    me: ServerId,
    urls: BTreeMap<ServerId, String>,
    secret: Secret,
    http: reqwest::Client,
    blocked: RwLock<HashSet<ServerId>>,
}

impl Transport {
    /// `tls` says whom to trust (the pool CA only) and which certificate to show (this
    /// member's) when a member URL is https.
    pub(crate) fn new(
        me: ServerId,
        urls: BTreeMap<ServerId, String>,
        secret: Secret,
        tls: &crate::tls::ClientTls<'_>,
        source: Option<std::net::IpAddr>,
    ) -> Result<Transport, crate::tls::TlsError> {
        // Reuse connections: heartbeats flow several times a second to every peer (and with
        // TLS, a handshake per heartbeat would cost more than the heartbeat).
        let builder = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_millis(500))
            .local_address(source)
            .dns_resolver(crate::resolve::MemberResolver);
        let http = tls
            .apply(builder)?
            .build()
            .map_err(|e| crate::tls::TlsError::Client(describe(&e)))?;
        let urls = urls
            .into_iter()
            .map(|(id, u)| (id, u.trim_end_matches('/').to_owned()))
            .collect();
        Ok(Transport {
            me,
            urls,
            secret,
            http,
            blocked: RwLock::new(HashSet::new()),
        })
    }

    pub(crate) fn secret(&self) -> &Secret {
        &self.secret
    }

    pub(crate) fn is_blocked(&self, id: ServerId) -> bool {
        self.blocked
            .read()
            .map(|b| b.contains(&id))
            .unwrap_or(false)
    }

    pub(crate) fn set_blocked(&self, ids: &[ServerId]) {
        if let Ok(mut b) = self.blocked.write() {
            *b = ids.iter().copied().collect();
        }
    }

    pub(crate) fn blocked(&self) -> Vec<ServerId> {
        let mut v: Vec<ServerId> = self
            .blocked
            .read()
            .map(|b| b.iter().copied().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    pub(crate) async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        to: ServerId,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<R, PeerError> {
        let req = self.request(reqwest::Method::POST, to, path)?.json(body);
        self.send(to, req, timeout).await
    }

    /// [`Transport::post`] of a body already encoded as JSON (the caller measured it).
    pub(crate) async fn post_raw<R: DeserializeOwned>(
        &self,
        to: ServerId,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<R, PeerError> {
        let req = self
            .request(reqwest::Method::POST, to, path)?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(to, req, timeout).await
    }

    pub(crate) async fn get<R: DeserializeOwned>(
        &self,
        to: ServerId,
        path: &str,
        timeout: Duration,
    ) -> Result<R, PeerError> {
        let req = self.request(reqwest::Method::GET, to, path)?;
        self.send(to, req, timeout).await
    }

    fn request(
        &self,
        method: reqwest::Method,
        to: ServerId,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, PeerError> {
        if self.is_blocked(to) {
            return Err(PeerError::Blocked(to));
        }
        let base = self.urls.get(&to).ok_or(PeerError::UnknownPeer(to))?;
        Ok(self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(self.secret.expose())
            .header(FROM_HEADER, self.me.0.to_string()))
    }

    async fn send<R: DeserializeOwned>(
        &self,
        to: ServerId,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<R, PeerError> {
        let resp = req
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| PeerError::Unreachable(to, describe(&e)))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| PeerError::Unreachable(to, describe(&e)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            return Err(PeerError::Refused(to, status.as_u16(), text));
        }
        serde_json::from_slice(&bytes).map_err(|e| PeerError::Decode(to, e.to_string()))
    }
}

/// `describe` and the error's source (a TLS or connection detail), still without the URL.
pub(crate) fn cause(e: &reqwest::Error) -> String {
    let mut s = describe(e);
    if let Some(src) = std::error::Error::source(e) {
        s = format!("{s}: {src}");
    }
    s
}

/// reqwest's errors embed the URL; keep the cause only.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else if e.is_builder() {
        "cannot build the HTTP client".into()
    } else {
        "request failed".into()
    }
}
