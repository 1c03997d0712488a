//! What emspool offers to systems outside the pool (northbound interfaces): device metrics
//! for Prometheus and the service discovery that finds them, the event log published to
//! NATS JetStream, and the alarms pushed to Alertmanager and webhooks.

pub(crate) mod alertmanager;
pub(crate) mod devices;
pub(crate) mod jetstream;
mod push_metrics;
pub(crate) mod sd;
pub(crate) mod stream;
pub(crate) mod webhook;

use crate::eventlog::{EventLog, EventLogError};
use crate::model::now_millis;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Log(#[from] EventLogError),
}

/// The HTTP client of a push target: its timeout, and only `ca` as roots when given.
fn http_client(timeout: Duration, ca: Option<&Path>) -> Result<reqwest::Client, PushError> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(2)))
        .user_agent(concat!("emspool/", env!("CARGO_PKG_VERSION")));
    crate::tls::ClientTls { ca, identity: None }
        .apply(builder)
        .map_err(|e| PushError::Client(e.to_string()))?
        .build()
        .map_err(|e| PushError::Client(e.to_string()))
}

/// This event log's incarnation, kept under `key` in its `meta` table: part of every id sent
/// out, so that a server whose data dir was lost (and whose ids start again at 1) is not taken
/// for a re-send of what it sent before.
pub(crate) async fn incarnation(log: &EventLog, key: &str) -> Result<u64, EventLogError> {
    if let Some(bytes) = log.meta_get(key)?
        && let Ok(b) = <[u8; 8]>::try_from(bytes.as_slice())
    {
        return Ok(u64::from_be_bytes(b));
    }
    let e = u64::try_from(now_millis()).unwrap_or(0);
    log.meta_put(key, e.to_be_bytes().to_vec()).await?;
    Ok(e)
}

/// Sleeps; true when asked to stop meanwhile.
async fn sleep_or_stop(d: Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}
