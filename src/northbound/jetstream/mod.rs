//! Events to NATS JetStream: the pool's event history outlives any one server.
//!
//! The redb event log stays the source of truth and is the outbox: a publisher task follows it
//! by id from a cursor persisted in the log's `meta` table and publishes each event, with
//! acknowledgements, to `{subject_prefix}.{server}.{kind}` in one replicated stream. NATS being
//! slow or gone only makes the backlog grow; polling and the event writer never wait for it.
//! When a member is dead, pool-wide event queries read its events back from the stream
//! ([`reader`]).

mod metrics;
mod publisher;
mod reader;

pub(crate) use crate::config::JetStreamSection;
pub(crate) use reader::{Reader, fill_missing};

use crate::eventlog::{EventLog, EventLogError};
use crate::model::ServerId;
use async_nats::jetstream;
use metrics::JetStreamMetrics;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub(crate) enum JetStreamError {
    #[error("NATS connection: {0}")]
    Connect(String),
    #[error("JetStream stream {stream:?}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("JetStream publish: {0}")]
    Publish(String),
    #[error("JetStream read: {0}")]
    Read(String),
    #[error("more than {0} messages to read for one member")]
    TooMany(usize),
    #[error("reading the stream took longer than {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Log(#[from] EventLogError),
}

/// The running publisher and the reader for pool-wide queries.
pub(crate) struct Northbound {
    pub(crate) reader: Arc<reader::Reader>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    gauge: JoinHandle<()>,
}

impl Northbound {
    /// Stops publishing and persists the cursor; events not yet acknowledged are published at
    /// the next start (the stream drops the copies it already holds).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(3), self.task)
            .await
            .is_err()
        {
            tracing::warn!("JetStream publisher did not stop within 3 s");
        }
        self.gauge.abort();
    }
}

/// Subject of one event: `{prefix}.{server}.{kind}`. Kind dots stay token separators;
/// anything else a subject cannot hold (spaces, wildcards, empty tokens) becomes `_`.
pub(crate) fn subject(prefix: &str, server: ServerId, kind: &str) -> String {
    let mut s = format!("{prefix}.{server}.");
    let kind = if kind.is_empty() { "_" } else { kind };
    for token in kind.split('.').take(16) {
        if !s.ends_with('.') {
            s.push('.');
        }
        if token.is_empty() {
            s.push('_');
        }
        s.extend(token.chars().take(64).map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        }));
    }
    s
}

/// The filter matching every event of one member.
pub(crate) fn member_filter(prefix: &str, server: ServerId) -> String {
    format!("{prefix}.{server}.>")
}

async fn connect(
    cfg: &JetStreamSection,
    server: ServerId,
) -> Result<async_nats::Client, JetStreamError> {
    let addrs: Vec<async_nats::ServerAddr> = cfg
        .servers
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|e| JetStreamError::Connect(format!("server {s:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("emspool-{server}"))
        // Never give up: the outbox waits as long as it takes.
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(cfg.ack_timeout))
        .reconnect_delay_callback(|attempt| {
            Duration::from_millis(100u64.saturating_mul(1 << attempt.min(5)))
                .min(Duration::from_secs(2))
        })
        .event_callback(move |ev| async move {
            tracing::info!("NATS connection of server {server}: {ev}");
        });
    if let (Some(user), Some(password)) = (&cfg.user, &cfg.password) {
        opts = opts.user_and_password(user.clone(), password.expose().to_owned());
    }
    if let Some(token) = &cfg.token {
        opts = opts.token(token.expose().to_owned());
    }
    if let Some(path) = &cfg.creds_file {
        opts = opts
            .credentials_file(path)
            .await
            .map_err(|e| JetStreamError::Connect(format!("creds_file {}: {e}", path.display())))?;
    }
    if let Some(ca) = &cfg.tls_ca {
        opts = opts.add_root_certificates(ca.clone());
    }
    if cfg.uses_tls() {
        opts = opts.require_tls(true);
    }
    opts.connect(addrs)
        .await
        .map_err(|e| JetStreamError::Connect(e.to_string()))
}

/// Connects (in the background: an unreachable NATS does not delay the server's start) and
/// starts the publisher. `retention` is the event log's, used as the stream's `max_age`.
pub(crate) async fn start(
    cfg: &JetStreamSection,
    server: ServerId,
    retention: Duration,
    events: EventLog,
    registry: &prometheus::Registry,
) -> Result<Northbound, JetStreamError> {
    let metrics = JetStreamMetrics::new(registry)
        .map_err(|e| JetStreamError::Connect(format!("metrics: {e}")))?;
    let client = connect(cfg, server).await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(cfg.ack_timeout)
        .ack_timeout(cfg.ack_timeout)
        // Acknowledgements abandoned after a failure hold a slot until they time out; room for
        // a few rounds of those keeps the next round from waiting on them.
        .max_ack_inflight(cfg.max_in_flight.saturating_mul(4).saturating_add(64))
        .build(client);
    let cfg = Arc::new(cfg.clone());
    let acked = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = watch::channel(false);
    let publisher = publisher::Publisher::new(
        js.clone(),
        events.clone(),
        cfg.clone(),
        server,
        retention,
        metrics.clone(),
        acked.clone(),
    )
    .await?;
    let task = tokio::spawn(publisher.run(stopped));
    let gauge = tokio::spawn(publisher::backlog_gauge(events, acked, metrics.clone()));
    Ok(Northbound {
        reader: Arc::new(reader::Reader::new(js, cfg, metrics)),
        stop,
        task,
        gauge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_prefix_server_and_kind_and_hold_only_valid_tokens() {
        let p = "ems.paris";
        assert_eq!(
            subject(p, ServerId(3), "alarm.raised"),
            "ems.paris.3.alarm.raised"
        );
        assert_eq!(
            subject(p, ServerId(1), "server.start"),
            "ems.paris.1.server.start"
        );
        assert_eq!(subject(p, ServerId(1), ""), "ems.paris.1._");
        assert_eq!(subject(p, ServerId(1), "a..b"), "ems.paris.1.a._.b");
        assert_eq!(subject(p, ServerId(1), ".x*> y"), "ems.paris.1._.x___y");
        assert_eq!(subject(p, ServerId(1), "é"), "ems.paris.1._");
        let long = "k.".repeat(100);
        assert!(subject(p, ServerId(1), &long).split('.').count() <= 3 + 16);
        assert_eq!(member_filter(p, ServerId(2)), "ems.paris.2.>");
    }
}
