//! Webhooks: a JSON POST per alarm change (raise, clear, acknowledge) to each configured URL.
//!
//! The event log is the outbox, as for JetStream: each target follows it by id from a cursor
//! kept in the log's `meta` table, so a restart or a receiver that is away loses nothing. An
//! alarm change is written to exactly one log, its owner's at that moment, so each change is
//! delivered once by the pool. The cursor is saved after every delivery: a stop, even in the
//! middle of retries, sends nothing twice; after a crash (kill -9) the one delivery in flight
//! may come again, with the same `id`. Deliveries go in order, one at a time, retried with
//! backoff; one that stays refused holds the ones behind it until the backlog is full, then
//! the oldest are dropped and counted.

mod payload;

use super::PushError;
use super::push_metrics::PushMetrics;
use crate::config::WebhookSection;
use crate::eventlog::EventLog;
use crate::model::Event;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const META_INCARNATION: &str = "webhook.incarnation";
const READ_CHUNK: usize = 256;
/// How often an idle sender looks for new events.
const IDLE: Duration = Duration::from_millis(100);
/// How often the cursor is saved while it only passes events that are no alarm change.
const SAVE_EVERY: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The running senders, one per target.
pub(crate) struct Webhooks {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Webhooks {
    /// Stops after the delivery in flight (its cursor saved).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                tracing::warn!("a webhook sender did not stop within 5 s");
            }
        }
    }
}

pub(crate) async fn start(
    hooks: &[WebhookSection],
    events: EventLog,
    registry: &prometheus::Registry,
) -> Result<Option<Webhooks>, PushError> {
    if hooks.is_empty() {
        return Ok(None);
    }
    let m = PushMetrics::new(
        registry,
        "emspool_webhook",
        "deliveries",
        "Event log entries not yet passed to the target (its alarm changes are delivered).",
    )?;
    let incarnation = super::incarnation(&events, META_INCARNATION).await?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::with_capacity(hooks.len());
    for h in hooks {
        let key = format!("webhook.{}.cursor", h.name);
        let cursor = match events.meta_get(&key)? {
            Some(b) => <[u8; 8]>::try_from(b.as_slice()).map_or(0, u64::from_be_bytes),
            // A new target starts from now, not from the whole history.
            None => {
                let last = events.last_id()?;
                events.meta_put(&key, last.to_be_bytes().to_vec()).await?;
                last
            }
        };
        m.register_target(&h.name);
        let target = Target {
            cfg: Arc::new(h.clone()),
            http: super::http_client(h.timeout, h.ca.as_deref())?,
            log: events.clone(),
            key,
            cursor,
            saved: cursor,
            incarnation,
            m: m.clone(),
        };
        tasks.push(tokio::spawn(target.run(stopped.clone())));
    }
    Ok(Some(Webhooks { stop, tasks }))
}

struct Target {
    cfg: Arc<WebhookSection>,
    http: reqwest::Client,
    log: EventLog,
    /// `meta` key of the cursor.
    key: String,
    /// Id of the newest event delivered or passed.
    cursor: u64,
    saved: u64,
    incarnation: u64,
    m: PushMetrics,
}

enum Delivered {
    Yes,
    Dropped,
    Stopped,
}

impl Target {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(
            "webhook {} delivers alarm changes after event {}",
            self.name(),
            self.cursor
        );
        let mut last_save = Instant::now();
        'outer: while !*stop.borrow() {
            let batch = match self.read().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("webhook {} cannot read the event log: {e}", self.name());
                    if super::sleep_or_stop(BACKOFF_MAX, &mut stop).await {
                        break;
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                if self.cursor != self.saved && last_save.elapsed() >= SAVE_EVERY {
                    self.save().await;
                    last_save = Instant::now();
                }
                if super::sleep_or_stop(IDLE, &mut stop).await {
                    break;
                }
                continue;
            }
            for ev in batch {
                if let Some(d) = payload::delivery(&ev, self.incarnation) {
                    let body = match serde_json::to_vec(&d) {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!("webhook {}: event {}: {e}", self.name(), ev.id);
                            continue;
                        }
                    };
                    match self.deliver(&ev, &d.id, d.change, &body, &mut stop).await {
                        Delivered::Stopped => break 'outer,
                        Delivered::Yes | Delivered::Dropped => {
                            self.cursor = ev.id;
                            self.save().await;
                            last_save = Instant::now();
                        }
                    }
                } else {
                    self.cursor = ev.id;
                }
            }
            self.behind(self.cursor);
        }
        self.save().await;
        tracing::info!(
            "webhook {} stopped after event {}",
            self.name(),
            self.cursor
        );
    }

    /// Posts until the receiver takes it, the backlog behind it is full, or a stop.
    async fn deliver(
        &self,
        ev: &Event,
        id: &str,
        change: &str,
        body: &[u8],
        stop: &mut watch::Receiver<bool>,
    ) -> Delivered {
        let mut backoff = BACKOFF_MIN;
        let mut failures = 0u32;
        loop {
            if self.behind(ev.id) >= self.cfg.max_backlog {
                self.m.dropped.with_label_values(&[self.name()]).inc();
                tracing::warn!(
                    "webhook {}: dropped {change} of {id} (more than {} events behind)",
                    self.name(),
                    self.cfg.max_backlog
                );
                return Delivered::Dropped;
            }
            match self.post(id, change, body).await {
                Ok(()) => {
                    self.m.succeeded(self.name(), 1);
                    if failures > 0 {
                        tracing::info!(
                            "webhook {} answers again after {failures} failure(s)",
                            self.name()
                        );
                    }
                    return Delivered::Yes;
                }
                Err(e) => {
                    self.m.failed.with_label_values(&[self.name()]).inc();
                    // Once per outage, then once a minute or so: not per retry.
                    if failures == 0 || backoff == BACKOFF_MAX {
                        tracing::warn!(
                            "webhook {}: {e}; retrying (delivery {id}) in {backoff:?}",
                            self.name()
                        );
                    }
                    failures = failures.saturating_add(1);
                }
            }
            if super::sleep_or_stop(backoff, stop).await {
                return Delivered::Stopped;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// How many events the log holds after `id`, kept in the queue gauge (also while a
    /// delivery is retried). Zero when the log cannot say.
    fn behind(&self, id: u64) -> u64 {
        let Ok(last) = self.log.last_id() else {
            return 0;
        };
        let n = last.saturating_sub(id);
        self.m
            .queue
            .with_label_values(&[self.name()])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
        n
    }

    async fn post(&self, id: &str, change: &str, body: &[u8]) -> Result<(), String> {
        let mut req = self
            .http
            .post(&self.cfg.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(payload::DELIVERY_HEADER, id)
            .header("x-emspool-change", change);
        if let Some(secret) = &self.cfg.secret {
            req = req.header(
                payload::SIGNATURE_HEADER,
                payload::signature(secret.expose().as_bytes(), body),
            );
        }
        let resp = req
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| crate::cluster::transport::cause(&e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", resp.status()))
        }
    }

    async fn read(&self) -> Result<Vec<Event>, PushError> {
        let log = self.log.clone();
        let after = self.cursor;
        tokio::task::spawn_blocking(move || log.read_after(after, READ_CHUNK))
            .await
            .map_err(|e| PushError::Client(format!("event log reader: {e}")))?
            .map_err(PushError::from)
    }

    async fn save(&mut self) {
        if self.cursor == self.saved {
            return;
        }
        match self
            .log
            .meta_put(&self.key, self.cursor.to_be_bytes().to_vec())
            .await
        {
            Ok(()) => self.saved = self.cursor,
            Err(e) => tracing::error!("webhook {}: cannot save its cursor: {e}", self.name()),
        }
    }
}
