//! Reads a member's events back from the stream, for pool-wide queries that miss that member
//! (dead, or its disk lost). Answers the same query as the member's own log would: the same
//! filters, the same newest-first order, the same `before` cursor and page size.

use super::metrics::JetStreamMetrics;
use super::{JetStreamError, JetStreamSection, member_filter};
use crate::eventlog::{EventCursor, EventPage, EventQuery, kind_matches};
use crate::model::{Event, ServerId};
use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

/// Messages asked for per fetch.
const FETCH: usize = 1000;
/// A message larger than this is not one of our events.
const MAX_MESSAGE: usize = 1 << 20;
/// Messages are stamped by the NATS server when stored, events by their emspool server when
/// written; a `since` query starts reading this much earlier so clock skew loses nothing.
const CLOCK_SLACK_MS: i64 = 10 * 60 * 1000;
/// The same as the event log's.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

pub(crate) struct Reader {
    js: jetstream::Context,
    cfg: Arc<JetStreamSection>,
    m: JetStreamMetrics,
}

/// What the stream added to a pool-wide answer.
#[derive(Debug, Default)]
pub(crate) struct StreamFill {
    pub(crate) events: Vec<Event>,
    /// More events of those members match than were returned.
    pub(crate) more: bool,
    /// Members answered from the stream (removed from `missing`).
    pub(crate) from_stream: Vec<ServerId>,
}

/// For every member in `missing`, reads its events matching `q` from the stream; a member read
/// completely is moved from `missing` to `from_stream`. Members are read concurrently, each
/// within `read_timeout`.
pub(crate) async fn fill_missing(
    reader: Option<&Reader>,
    q: &EventQuery,
    missing: &mut Vec<ServerId>,
) -> StreamFill {
    let mut fill = StreamFill::default();
    let Some(reader) = reader else {
        return fill;
    };
    if missing.is_empty() {
        return fill;
    }
    let reads = missing
        .iter()
        .map(|&m| async move { (m, reader.events(m, q).await) });
    for (member, result) in futures_util::future::join_all(reads).await {
        match result {
            Ok(page) => {
                fill.more |= page.next.is_some();
                fill.events.extend(page.events);
                fill.from_stream.push(member);
            }
            Err(e) => tracing::warn!("events of server {member} from the stream: {e}"),
        }
    }
    missing.retain(|m| !fill.from_stream.contains(m));
    fill
}

impl Reader {
    pub(crate) fn new(
        js: jetstream::Context,
        cfg: Arc<JetStreamSection>,
        m: JetStreamMetrics,
    ) -> Reader {
        Reader { js, cfg, m }
    }

    /// One member's page for `q`, complete or an error (never a silent part).
    pub(crate) async fn events(
        &self,
        member: ServerId,
        q: &EventQuery,
    ) -> Result<EventPage, JetStreamError> {
        self.m.stream_reads.inc();
        let limit = match q.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let wait = self.cfg.read_timeout;
        let read = tokio::time::timeout(wait, self.matching(member, q, limit)).await;
        let kept = match read {
            Ok(Ok(kept)) => kept,
            Ok(Err(e)) => {
                self.m.stream_read_failures.inc();
                return Err(e);
            }
            Err(_) => {
                self.m.stream_read_failures.inc();
                return Err(JetStreamError::Timeout(wait));
            }
        };
        Ok(page_of(kept, limit))
    }

    /// The newest `limit + 1` events of `member` matching `q`, in no particular order.
    async fn matching(
        &self,
        member: ServerId,
        q: &EventQuery,
        limit: usize,
    ) -> Result<Vec<Event>, JetStreamError> {
        let read_err = |e: &dyn std::fmt::Display| JetStreamError::Read(e.to_string());
        let stream = self
            .js
            .get_stream_no_info(&self.cfg.stream)
            .await
            .map_err(|e| read_err(&e))?;
        let deliver_policy = match q.since {
            Some(since) => {
                let from = since.saturating_sub(CLOCK_SLACK_MS).max(0);
                let start_time =
                    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(from) * 1_000_000)
                        .map_err(|e| read_err(&e))?;
                consumer::DeliverPolicy::ByStartTime { start_time }
            }
            None => consumer::DeliverPolicy::All,
        };
        let mut c = stream
            .create_consumer(consumer::pull::Config {
                filter_subject: member_filter(&self.cfg.subject_prefix, member),
                deliver_policy,
                ack_policy: consumer::AckPolicy::None,
                // Ephemeral, and gone soon even if the delete below does not reach the server.
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| read_err(&e))?;
        let name = c.cached_info().name.clone();
        let result = self.drain(&mut c, member, q, limit).await;
        // Best effort: the inactivity threshold removes it anyway.
        if let Err(e) = stream.delete_consumer(&name).await {
            tracing::debug!("deleting reader consumer {name}: {e}");
        }
        result
    }

    async fn drain(
        &self,
        c: &mut consumer::PullConsumer,
        member: ServerId,
        q: &EventQuery,
        limit: usize,
    ) -> Result<Vec<Event>, JetStreamError> {
        let read_err = |e: &dyn std::fmt::Display| JetStreamError::Read(e.to_string());
        let mut pending = c.cached_info().num_pending;
        let mut seen = 0usize;
        // Min-heap of the newest `limit + 1` matches: memory stays bounded by the page size.
        let mut kept: BinaryHeap<Reverse<Keyed>> = BinaryHeap::with_capacity(limit + 1);
        while pending > 0 {
            let want = usize::try_from(pending).unwrap_or(usize::MAX).min(FETCH);
            let mut batch = c
                .fetch()
                .max_messages(want)
                .messages()
                .await
                .map_err(|e| read_err(&e))?;
            let mut got = 0usize;
            while let Some(msg) = batch.next().await {
                let msg = msg.map_err(|e| read_err(&e))?;
                got += 1;
                seen += 1;
                if seen > self.cfg.read_max {
                    return Err(JetStreamError::TooMany(self.cfg.read_max));
                }
                pending = msg.info().map(|i| i.pending).map_err(|e| read_err(&e))?;
                if msg.payload.len() > MAX_MESSAGE {
                    continue;
                }
                let Ok(ev) = serde_json::from_slice::<Event>(&msg.payload) else {
                    tracing::debug!("skipping a message of the stream that is not an event");
                    continue;
                };
                if ev.server != member || !matches(q, &ev) {
                    continue;
                }
                kept.push(Reverse(Keyed(EventCursor::from(&ev), ev)));
                if kept.len() > limit + 1 {
                    kept.pop();
                }
            }
            if got == 0 {
                // Nothing came although some is pending: ask again (bounded by read_timeout).
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(kept.into_iter().map(|Reverse(Keyed(_, ev))| ev).collect())
    }
}

/// Ordered by cursor only.
struct Keyed(EventCursor, Event);

impl PartialEq for Keyed {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}
impl Eq for Keyed {}
impl PartialOrd for Keyed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Keyed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.cmp(&o.0)
    }
}

/// The event log's query semantics (`EventLog::query`) applied to one event.
fn matches(q: &EventQuery, ev: &Event) -> bool {
    q.since.is_none_or(|s| ev.ts >= s)
        && q.until.is_none_or(|u| ev.ts < u)
        && q.before.is_none_or(|b| EventCursor::from(ev) < b)
        && q.kind.as_deref().is_none_or(|k| kind_matches(k, &ev.kind))
        && q.element
            .as_deref()
            .is_none_or(|el| ev.element.as_deref() == Some(el))
}

/// Newest first, `limit` of them, `next` when more matched: what `EventLog::query` returns.
fn page_of(mut events: Vec<Event>, limit: usize) -> EventPage {
    events.sort_by_key(|e| Reverse(EventCursor::from(e)));
    let next = if events.len() > limit {
        events.truncate(limit);
        events.last().map(EventCursor::from)
    } else {
        None
    };
    EventPage { events, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;

    fn ev(id: u64, ts: i64, server: u32, element: Option<&str>, kind: &str) -> Event {
        Event {
            id,
            ts,
            server: ServerId(server),
            element: element.map(str::to_owned),
            kind: kind.to_owned(),
            severity: Severity::Info,
            text: String::new(),
            alarm: None,
        }
    }

    #[test]
    fn filters_and_paging_follow_the_event_log() {
        let all = [
            ev(1, 100, 2, Some("r1"), "alarm.raised"),
            ev(2, 200, 2, Some("r2"), "alarm.cleared"),
            ev(3, 200, 2, None, "server.start"),
            ev(4, 300, 2, Some("r1"), "element.state"),
        ];
        let run = |q: EventQuery| -> (Vec<u64>, Option<EventCursor>) {
            let kept: Vec<Event> = all.iter().filter(|e| matches(&q, e)).cloned().collect();
            let limit = if q.limit == 0 { DEFAULT_LIMIT } else { q.limit };
            let p = page_of(kept, limit);
            (p.events.iter().map(|e| e.id).collect(), p.next)
        };
        assert_eq!(run(EventQuery::default()).0, [4, 3, 2, 1]);
        let q = |f: fn(&mut EventQuery)| {
            let mut q = EventQuery::default();
            f(&mut q);
            q
        };
        assert_eq!(run(q(|q| q.kind = Some("alarm.*".into()))).0, [2, 1]);
        assert_eq!(run(q(|q| q.element = Some("r1".into()))).0, [4, 1]);
        assert_eq!(run(q(|q| q.since = Some(200))).0, [4, 3, 2]);
        assert_eq!(run(q(|q| q.until = Some(200))).0, [1]);
        // Pages of 2 then the rest, through the cursor.
        let (first, next) = run(q(|q| q.limit = 2));
        assert_eq!(first, [4, 3]);
        let next = next.expect("more");
        assert_eq!(next.to_string(), "200.2.3");
        let mut rest = EventQuery {
            limit: 2,
            before: Some(next),
            ..EventQuery::default()
        };
        assert_eq!(run(rest.clone()), (vec![2, 1], None));
        // A cursor of another server at the same ts: ours (2) sort before server 3's.
        rest.before = Some(EventCursor {
            ts: 200,
            server: ServerId(3),
            id: 0,
        });
        assert_eq!(run(rest).0, [3, 2]);
    }
}
