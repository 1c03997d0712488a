//! The CLI's HTTP client: picks a server at random and fails over to the others.

use crate::config::Secret;
use rand::seq::SliceRandom;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error(
        "no server given: use --server URL (or EMSPOOL_SERVER), or [client] servers of a config \
         given by --config (or EMSPOOL_CONFIG; default /etc/emspool/emspool.toml)"
    )]
    NoServers,
    #[error("{url}: {status}: {message}")]
    Refused {
        url: String,
        status: StatusCode,
        message: String,
    },
    #[error("no server answered: {0}")]
    AllFailed(String),
    #[error("{url}: unreadable answer: {message}")]
    Decode { url: String, message: String },
    #[error("TLS: {0}")]
    Tls(String),
}

pub(crate) struct Client {
    servers: Vec<String>,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl Client {
    /// `tls`: the CA to trust for https servers (else the system's roots) and a client
    /// certificate for pools that require one.
    pub(crate) fn new(
        servers: Vec<String>,
        token: Option<Secret>,
        timeout: Duration,
        tls: &crate::tls::ClientTls<'_>,
    ) -> Result<Client, ClientError> {
        if servers.is_empty() {
            return Err(ClientError::NoServers);
        }
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)));
        let http = tls
            .apply(builder)
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .build()
            .map_err(|e| ClientError::Tls(without_url(&e)))?;
        let servers = servers
            .into_iter()
            .map(|s| s.trim_end_matches('/').to_owned())
            .collect();
        Ok(Client {
            servers,
            token,
            http,
        })
    }

    /// Servers in the order they will be tried: a random one first, then the rest.
    fn order(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.servers.iter().map(String::as_str).collect();
        v.shuffle(&mut rand::rng());
        v
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
    ) -> Result<T, ClientError> {
        self.call(Method::GET, path_and_query, None, None).await
    }

    /// PUT, saying who makes the change (the audit event names them).
    pub(crate) async fn put_by<T: DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
        by: &str,
    ) -> Result<T, ClientError> {
        self.call(Method::PUT, path, Some(body), Some(by)).await
    }

    /// DELETE, saying who makes the change; the answer body if any (`null` for 204).
    pub(crate) async fn delete_by(
        &self,
        path: &str,
        by: &str,
    ) -> Result<serde_json::Value, ClientError> {
        self.call(Method::DELETE, path, None, Some(by)).await
    }

    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body), None).await
    }

    /// DELETE whose success answer has no body.
    pub(crate) async fn delete_empty(&self, path: &str) -> Result<(), ClientError> {
        self.call::<serde_json::Value>(Method::DELETE, path, None, None)
            .await
            .map(|_| ())
    }

    /// A server that cannot be reached or answers 5xx is skipped; a 4xx is the answer (the
    /// request is wrong, and every server would say so).
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        by: Option<&str>,
    ) -> Result<T, ClientError> {
        let mut failures = Vec::new();
        for base in self.order() {
            let url = format!("{base}{path}");
            let mut req = self.http.request(method.clone(), &url);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t.expose());
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            if let Some(by) = by {
                req = req.header(crate::api::credentials::BY_HEADER, by);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{base}: {}", without_url(&e)));
                    continue;
                }
            };
            let status = resp.status();
            if status.is_server_error() {
                failures.push(format!("{base}: {status}"));
                continue;
            }
            let bytes = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    failures.push(format!("{base}: {}", without_url(&e)));
                    continue;
                }
            };
            if !status.is_success() {
                let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
                return Err(ClientError::Refused {
                    url,
                    status,
                    message,
                });
            }
            let bytes = if bytes.is_empty() {
                bytes::Bytes::from_static(b"null")
            } else {
                bytes
            };
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
                url,
                message: e.to_string(),
            });
        }
        Err(ClientError::AllFailed(failures.join("; ")))
    }
}

/// reqwest's own text embeds the URL (and so, with basic auth, possibly a secret).
fn without_url(e: &reqwest::Error) -> String {
    crate::cluster::transport::cause(e)
}
