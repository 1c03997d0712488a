//! `GET /api/v1/stream`: server-sent events of what changes in the whole pool, for the web
//! console. Every alarm change and element state change is already an event in some member's
//! log, so the stream tails the pool-wide log (the same fan-out as `/api/v1/events`) once a
//! second and sends what it has not sent yet; it also sends the pool's membership when it
//! changes. Streams are bounded in number per server and in lifetime (the client reconnects).
//!
//! Messages: `hello` (`{"server": id}`), `pool` (as `/api/v1/pool`), `event` (one log entry, as
//! in `/api/v1/events`), `lagged` (more changed than one poll returns: reload everything).

use super::Shared;
use super::client::EventParams;
use super::error::ApiError;
use super::peered;
use crate::model::{ServerId, UnixMillis, now_millis};
use axum::Json;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

/// Open streams per server; each costs one pool-wide event query per second.
pub(crate) const MAX_STREAMS: usize = 32;
/// A stream ends after this; the console reconnects (and so re-checks its token and server).
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
const TICK: Duration = Duration::from_secs(1);
/// Events written up to this long before the previous query started are still looked for:
/// members' logs flush in batches, and their clocks differ a little.
const OVERLAP_MS: UnixMillis = 3000;
/// Events fetched per tick; more in one tick makes the stream say `lagged`.
const PAGE: usize = 1000;

static OPEN: AtomicUsize = AtomicUsize::new(0);

/// One open stream, counted until dropped.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        })
        .ok()
        .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) async fn stream(State(s): State<Shared>) -> Result<Response, ApiError> {
    let slot = Slot::take().ok_or_else(|| {
        ApiError::Unavailable(format!(
            "{MAX_STREAMS} streams are open on this server; try another member"
        ))
    })?;
    let (tx, rx) = mpsc::channel::<SseEvent>(256);
    tokio::spawn(tail(s, tx, slot));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    let mut resp = Sse::new(body)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response();
    // Proxies must pass events on at once.
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

fn json_event(kind: &str, v: &impl serde::Serialize) -> Option<SseEvent> {
    serde_json::to_string(v)
        .ok()
        .map(|d| SseEvent::default().event(kind).data(d))
}

async fn tail(s: Shared, tx: mpsc::Sender<SseEvent>, _slot: Slot) {
    let started = Instant::now();
    let mut sent: HashMap<(ServerId, u64), UnixMillis> = HashMap::new();
    // The console loads its pages before the stream is up: look back a little for what changed
    // in between.
    let mut since = now_millis().saturating_sub(OVERLAP_MS);
    let mut last_pool = String::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    if let Some(e) = json_event("hello", &serde_json::json!({ "server": s.id }))
        && tx.send(e).await.is_err()
    {
        return;
    }
    while started.elapsed() < MAX_LIFETIME {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tick.tick() => {}
        }
        let pool = s.cluster.view();
        if let Ok(text) = serde_json::to_string(&pool)
            && text != last_pool
        {
            if tx
                .send(SseEvent::default().event("pool").data(&text))
                .await
                .is_err()
            {
                return;
            }
            last_pool = text;
        }
        let query_start = now_millis();
        let params = EventParams {
            since: Some(since.to_string()),
            limit: Some(PAGE),
            ..EventParams::default()
        };
        let raw = Some(format!("since={since}&limit={PAGE}"));
        let answer = tokio::select! {
            _ = tx.closed() => return,
            a = peered::events(State(s.clone()), Ok(Query(params)), RawQuery(raw)) => a,
        };
        let Json(page) = match answer {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("stream: event query failed: {e}");
                continue;
            }
        };
        let lagged = page.next.is_some();
        // Oldest first, so the console applies changes in order.
        for e in page.events.into_iter().rev() {
            if sent.insert((e.server, e.id), e.ts).is_some() {
                continue;
            }
            let Some(msg) = json_event("event", &e) else {
                continue;
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
        if lagged
            && tx
                .send(SseEvent::default().event("lagged").data("{}"))
                .await
                .is_err()
        {
            return;
        }
        since = query_start.saturating_sub(OVERLAP_MS);
        sent.retain(|_, ts| *ts >= since);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let before = OPEN.load(Ordering::Acquire);
        let slots: Vec<Slot> = std::iter::from_fn(Slot::take)
            .take(MAX_STREAMS + 5)
            .collect();
        assert_eq!(slots.len(), MAX_STREAMS - before);
        assert!(Slot::take().is_none());
        drop(slots);
        assert!(Slot::take().is_some());
    }
}
