//! The outbox publisher: follows the event log by id from a persisted cursor and publishes
//! every event with an acknowledgement, a bounded number in flight.
//!
//! The cursor is the id of the newest event whose acknowledgement (and those of all before
//! it) arrived. A failure rewinds to it and sends everything after it again; the stream drops
//! what it already holds (`Nats-Msg-Id`), so a re-send stores nothing twice. In order: events
//! go out in id order, and acknowledgements are taken in that order; after a failure a re-sent
//! event may land after younger ones (readers sort).

use super::metrics::JetStreamMetrics;
use super::{JetStreamError, JetStreamSection, subject};
use crate::eventlog::EventLog;
use crate::model::{Event, ServerId, now_millis};
use crate::northbound::sleep_or_stop;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, publish::PublishAck, stream};
use bytes::Bytes;
use futures_util::FutureExt;
use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// `meta` key of the cursor (u64, big endian).
const META_CURSOR: &str = "jetstream.cursor";
/// `meta` key of this log's incarnation (u64, big endian): part of every `Nats-Msg-Id`, so a
/// server whose data dir was lost, and whose ids start again at 1, is not taken for duplicates.
const META_EPOCH: &str = "jetstream.epoch";
/// Events read from the log at once.
const READ_CHUNK: usize = 1000;
/// How often an idle publisher looks for new events.
const IDLE: Duration = Duration::from_millis(50);
/// How often the cursor is made durable while publishing.
const SAVE_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

type AckFuture = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

struct InFlight {
    id: u64,
    ts: i64,
    sent: Instant,
    ack: AckFuture,
}

pub(crate) struct Publisher {
    js: jetstream::Context,
    log: EventLog,
    cfg: Arc<JetStreamSection>,
    server: ServerId,
    retention: Duration,
    epoch: u64,
    m: JetStreamMetrics,
    /// The cursor, shared with the backlog gauge.
    acked: Arc<AtomicU64>,
    saved: u64,
}

enum Outcome {
    Stopped,
    Failed(JetStreamError),
}

fn read_u64(bytes: Option<Vec<u8>>) -> Option<u64> {
    let b: [u8; 8] = bytes?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

impl Publisher {
    pub(crate) async fn new(
        js: jetstream::Context,
        log: EventLog,
        cfg: Arc<JetStreamSection>,
        server: ServerId,
        retention: Duration,
        m: JetStreamMetrics,
        acked: Arc<AtomicU64>,
    ) -> Result<Publisher, JetStreamError> {
        let cursor = read_u64(log.meta_get(META_CURSOR)?).unwrap_or(0);
        let epoch = crate::northbound::incarnation(&log, META_EPOCH).await?;
        acked.store(cursor, Ordering::Relaxed);
        Ok(Publisher {
            js,
            log,
            cfg,
            server,
            retention,
            epoch,
            m,
            acked,
            saved: cursor,
        })
    }

    fn cursor(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(
            "JetStream publisher of server {} starts after event {} (stream {:?}, subjects {}.>)",
            self.server,
            self.cursor(),
            self.cfg.stream,
            self.cfg.subject_prefix
        );
        let mut backoff = BACKOFF_MIN;
        let mut stream_ready = false;
        loop {
            if *stop.borrow() {
                break;
            }
            if !stream_ready {
                match self.ensure_stream().await {
                    Ok(()) => stream_ready = true,
                    Err(e) => {
                        tracing::warn!("JetStream not ready, retrying in {backoff:?}: {e}");
                        if sleep_or_stop(backoff, &mut stop).await {
                            break;
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
            let before = self.cursor();
            match self.pump(&mut stop).await {
                Outcome::Stopped => break,
                Outcome::Failed(e) => {
                    if self.cursor() > before {
                        backoff = BACKOFF_MIN;
                    }
                    tracing::warn!(
                        "JetStream publishing paused after event {} ({e}); retrying in {backoff:?}",
                        self.cursor()
                    );
                    self.save().await;
                    if sleep_or_stop(backoff, &mut stop).await {
                        break;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    // The stream may have been deleted meanwhile: check it again.
                    if matches!(e, JetStreamError::Stream { .. }) {
                        stream_ready = false;
                    }
                }
            }
        }
        self.save().await;
        tracing::info!(
            "JetStream publisher of server {} stopped after event {}",
            self.server,
            self.cursor()
        );
    }

    /// Creates the stream, or updates it to this configuration.
    async fn ensure_stream(&self) -> Result<(), JetStreamError> {
        // A request sent before the (background) connect succeeds would only time out.
        if self.js.client().connection_state() != async_nats::connection::State::Connected {
            return Err(JetStreamError::Connect("not connected yet".into()));
        }
        let config = stream::Config {
            name: self.cfg.stream.clone(),
            subjects: vec![format!("{}.>", self.cfg.subject_prefix)],
            num_replicas: self.cfg.replicas,
            duplicate_window: self.cfg.duplicate_window,
            max_age: self.retention,
            storage: stream::StorageType::File,
            description: Some("emspool event log (one subject per server and event kind)".into()),
            ..Default::default()
        };
        self.js
            .create_or_update_stream(config)
            .await
            .map(|_| ())
            .map_err(|e| JetStreamError::Stream {
                stream: self.cfg.stream.clone(),
                reason: e.to_string(),
            })
    }

    /// Publishes until stopped or until something fails.
    async fn pump(&mut self, stop: &mut watch::Receiver<bool>) -> Outcome {
        let max = self.cfg.max_in_flight;
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(max);
        let mut sent_up_to = self.cursor();
        let mut last_save = Instant::now();
        loop {
            if *stop.borrow() {
                return Outcome::Stopped;
            }
            let free = max - in_flight.len();
            // Refill in chunks, not after every acknowledgement: one read per chunk.
            if free >= max.div_ceil(4) || in_flight.is_empty() {
                let batch = match self.read(sent_up_to, free.min(READ_CHUNK)).await {
                    Ok(b) => b,
                    Err(e) => return Outcome::Failed(e),
                };
                for ev in batch {
                    if ev.id > sent_up_to.saturating_add(1) {
                        self.m.skipped.inc_by(ev.id - sent_up_to - 1);
                    }
                    sent_up_to = ev.id;
                    match self.publish(&ev).await {
                        Ok(ack) => in_flight.push_back(InFlight {
                            id: ev.id,
                            ts: ev.ts,
                            sent: Instant::now(),
                            ack,
                        }),
                        Err(e) => {
                            self.m.failed.inc();
                            return Outcome::Failed(e);
                        }
                    }
                }
            }
            let Some(front) = in_flight.front_mut() else {
                if self.cursor() != self.saved && last_save.elapsed() >= SAVE_EVERY {
                    self.save().await;
                    last_save = Instant::now();
                }
                if sleep_or_stop(IDLE, stop).await {
                    return Outcome::Stopped;
                }
                continue;
            };
            let result = tokio::select! {
                r = front.ack.as_mut() => r,
                _ = stop.changed() => return Outcome::Stopped,
            };
            if let Err(e) = self.acknowledged(&mut in_flight, result) {
                return Outcome::Failed(e);
            }
            // Take the acknowledgements already in behind it without waiting.
            while let Some(front) = in_flight.front_mut() {
                let Some(result) = front.ack.as_mut().now_or_never() else {
                    break;
                };
                if let Err(e) = self.acknowledged(&mut in_flight, result) {
                    return Outcome::Failed(e);
                }
            }
            if last_save.elapsed() >= SAVE_EVERY {
                self.save().await;
                last_save = Instant::now();
            }
        }
    }

    /// Books the oldest in-flight event's acknowledgement and moves the cursor to it.
    fn acknowledged(
        &self,
        in_flight: &mut VecDeque<InFlight>,
        result: Result<PublishAck, PublishError>,
    ) -> Result<(), JetStreamError> {
        let Some(done) = in_flight.pop_front() else {
            return Ok(());
        };
        match result {
            Ok(ack) => {
                self.m.acknowledged.inc();
                if ack.duplicate {
                    self.m.duplicates.inc();
                }
                self.m
                    .ack_seconds
                    .observe(done.sent.elapsed().as_secs_f64());
                let age_ms = now_millis().saturating_sub(done.ts).max(0);
                self.m.delay_seconds.observe(age_ms as f64 / 1000.0);
                self.acked.store(done.id, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.m.failed.inc();
                // Deleted behind our back: the retry creates it again.
                if e.kind() == PublishErrorKind::StreamNotFound {
                    return Err(JetStreamError::Stream {
                        stream: self.cfg.stream.clone(),
                        reason: e.to_string(),
                    });
                }
                Err(JetStreamError::Publish(format!("event {}: {e}", done.id)))
            }
        }
    }

    async fn read(&self, after: u64, limit: usize) -> Result<Vec<Event>, JetStreamError> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.read_after(after, limit))
            .await
            .map_err(|e| JetStreamError::Read(e.to_string()))?
            .map_err(JetStreamError::from)
    }

    async fn publish(&self, ev: &Event) -> Result<AckFuture, JetStreamError> {
        let payload = serde_json::to_vec(ev).map_err(|e| JetStreamError::Publish(e.to_string()))?;
        let msg = jetstream::message::PublishMessage::build()
            .payload(Bytes::from(payload))
            .message_id(format!("{}-{}-{}", self.server, self.epoch, ev.id));
        let subject = subject(&self.cfg.subject_prefix, self.server, &ev.kind);
        let ack = self
            .js
            .send_publish(subject, msg)
            .await
            .map_err(|e| JetStreamError::Publish(format!("event {}: {e}", ev.id)))?;
        self.m.published.inc();
        Ok(ack.into_future())
    }

    async fn save(&mut self) {
        let cursor = self.cursor();
        if cursor == self.saved {
            return;
        }
        match self
            .log
            .meta_put(META_CURSOR, cursor.to_be_bytes().to_vec())
            .await
        {
            Ok(()) => self.saved = cursor,
            Err(e) => tracing::error!("cannot save the JetStream cursor: {e}"),
        }
    }
}

/// Keeps `emspool_jetstream_backlog` current even while the publisher waits on NATS.
pub(crate) async fn backlog_gauge(log: EventLog, acked: Arc<AtomicU64>, m: JetStreamMetrics) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let l = log.clone();
        let last = tokio::task::spawn_blocking(move || l.last_id()).await;
        if let Ok(Ok(last)) = last {
            let backlog = last.saturating_sub(acked.load(Ordering::Relaxed));
            m.backlog.set(i64::try_from(backlog).unwrap_or(i64::MAX));
        }
    }
}
