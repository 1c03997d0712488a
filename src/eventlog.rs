//! The event log of one server: one redb file, written by a single group-committing writer.
//!
//! Every append goes to one writer thread, which drains whatever is queued into one durable
//! transaction: the fsync is paid once per batch instead of once per event, which is what makes
//! bursts (an element flapping, a trap storm) cheap. Queries read an MVCC snapshot and never wait
//! for the writer.
//!
//! Records are the JSON of `Event`: a hand-rolled binary encoding measured only ~7% faster in the
//! append bench, not worth a format of our own. The file belongs to one server; cursors are
//! mapped to its key space with the id of the server that opened it.

use crate::model::{Event, NewEvent, ServerId, UnixMillis, now_millis};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Bound;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// `(ts, id)` -> event as JSON. Time first so that time-range scans and pruning are range ops.
const EVENTS: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("events");
/// `(element, ts, id)` -> (): element queries without scanning every event.
const BY_ELEMENT: TableDefinition<(&str, i64, u64), ()> = TableDefinition::new("events_by_element");
/// Our own bookkeeping, kept apart from `META` so that no caller key can clobber it.
const STATE: TableDefinition<&str, u64> = TableDefinition::new("eventlog_state");
/// Small durable values for other subsystems (cluster term, assignment).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Persisted rather than derived from the events: pruning may delete the newest event too, and
/// ids must never be reused.
const NEXT_ID: &str = "next_id";

/// Messages per transaction. Bounds commit latency (~100 ms at this size) and memory; smaller
/// batches copy the same index leaves once per commit more often (BENCHMARKS.md: 4096 -> 111k/s,
/// 16384 -> 162k/s).
const BATCH_CAP: usize = 16384;
const MAX_LIMIT: usize = 10_000;
/// Used when a query says `limit: 0` (the `Default`), so that a default query is not empty.
const DEFAULT_LIMIT: usize = 100;
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// Events deleted per transaction, so that a large prune does not hold appends back for long.
const PRUNE_CHUNK: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error("event log database: {0}")]
    Db(#[from] redb::Error),
    #[error("event log I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A batch failed to commit; the text is shared by every waiter of that batch.
    #[error("event log write failed: {0}")]
    Write(String),
    #[error("{0} event(s) could not be written since the last flush")]
    Lost(u64),
    #[error("event encoding: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("event log is closed")]
    Closed,
    #[error("invalid event cursor {0:?} (expected ts.server.id)")]
    BadCursor(String),
    #[error("corrupt event record {ts}.{id}: {reason}")]
    Corrupt { ts: i64, id: u64, reason: String },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for EventLogError {
            fn from(e: $t) -> Self {
                EventLogError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Position of an event in the pool-wide order `(ts, server, id)`; the paging token of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventCursor {
    pub ts: UnixMillis,
    pub server: ServerId,
    pub id: u64,
}

impl From<&Event> for EventCursor {
    fn from(ev: &Event) -> Self {
        EventCursor {
            ts: ev.ts,
            server: ev.server,
            id: ev.id,
        }
    }
}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.ts, self.server.0, self.id)
    }
}

impl FromStr for EventCursor {
    type Err = EventLogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || EventLogError::BadCursor(s.to_owned());
        let mut parts = s.split('.');
        let (Some(ts), Some(server), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(EventCursor {
            ts: ts.parse().map_err(|_| bad())?,
            server: ServerId(server.parse().map_err(|_| bad())?),
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

// As text, so that the cursor stays one opaque token in JSON and in query strings.
impl Serialize for EventCursor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventCursor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EventQuery {
    pub element: Option<String>,
    /// Exact kind, or a prefix when it ends with `.` or `*` (`alarm.*`); empty matches all.
    pub kind: Option<String>,
    /// Inclusive.
    pub since: Option<UnixMillis>,
    /// Exclusive.
    pub until: Option<UnixMillis>,
    /// 0 means the default (100); capped at 10,000.
    pub limit: usize,
    /// Only events strictly older than this cursor in `(ts, server, id)` order.
    pub before: Option<EventCursor>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    /// Newest first.
    pub events: Vec<Event>,
    /// Set when more events match: pass it as `before` for the next page.
    pub next: Option<EventCursor>,
}

type Reply<T> = oneshot::Sender<Result<T, EventLogError>>;

enum Msg {
    Append {
        ev: NewEvent,
        ack: Option<Reply<Event>>,
    },
    MetaPut {
        key: String,
        value: Vec<u8>,
        ack: Reply<()>,
    },
    Flush(Reply<()>),
    Close(oneshot::Sender<()>),
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    write_errors: AtomicU64,
}

struct Inner {
    db: Arc<Database>,
    tx: mpsc::Sender<Msg>,
    server: ServerId,
    retention: Duration,
    counters: Arc<Counters>,
}

/// Handle to the event log; clones share one database and one writer.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("server", &self.inner.server)
            .field("retention", &self.inner.retention)
            .field("written_total", &self.written_total())
            .field("write_errors_total", &self.write_errors_total())
            .finish()
    }
}

impl EventLog {
    /// Opens or creates the database and starts the writer. `retention` zero keeps events forever.
    /// Blocking (one commit); from async code call it in `spawn_blocking`.
    pub fn open(
        path: &Path,
        server: ServerId,
        retention: Duration,
    ) -> Result<EventLog, EventLogError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let db = Arc::new(Database::create(path)?);
        // Creating every table up front lets read transactions assume they exist.
        let txn = db.begin_write()?;
        let next_id = {
            txn.open_table(EVENTS)?;
            txn.open_table(BY_ELEMENT)?;
            txn.open_table(META)?;
            let state = txn.open_table(STATE)?;
            let stored = state.get(NEXT_ID)?.map(|g| g.value());
            stored.unwrap_or(1)
        };
        txn.commit()?;

        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            db: db.clone(),
            server,
            retention,
            next_id,
            counters: counters.clone(),
            unreported_failures: 0,
            buf: Vec::with_capacity(256),
        };
        // A plain thread rather than a tokio task: redb blocks on fsync, and this way `open`
        // needs no runtime and the writer never occupies a tokio blocking-pool slot for good.
        std::thread::Builder::new()
            .name(format!("eventlog-{server}"))
            .spawn(move || writer.run(rx))?;
        Ok(EventLog {
            inner: Arc::new(Inner {
                db,
                tx,
                server,
                retention,
                counters,
            }),
        })
    }

    /// Queues an event; never waits for I/O. A failed write is counted and logged, never silent.
    pub fn append(&self, ev: NewEvent) {
        if let Err(mpsc::SendError(msg)) = self.inner.tx.send(Msg::Append { ev, ack: None }) {
            let total = self
                .inner
                .counters
                .write_errors
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            if let Msg::Append { ev, .. } = msg {
                tracing::error!(
                    server = %self.inner.server, kind = %ev.kind, write_errors_total = total,
                    "event log is closed, event dropped"
                );
            }
        }
    }

    /// Returns once the transaction holding the event has committed.
    pub async fn append_durable(&self, ev: NewEvent) -> Result<Event, EventLogError> {
        let (ack, rx) = oneshot::channel();
        self.send(Msg::Append { ev, ack: Some(ack) })?;
        rx.await.map_err(|_| EventLogError::Closed)?
    }

    /// Returns once everything appended before the call is durable; reports events whose write
    /// failed since the previous flush.
    pub async fn flush(&self) -> Result<(), EventLogError> {
        let (ack, rx) = oneshot::channel();
        self.send(Msg::Flush(ack))?;
        rx.await.map_err(|_| EventLogError::Closed)?
    }

    /// Flushes and stops the writer. Once it returns the writer has let go of the database, so the
    /// file can be reopened as soon as every clone of this handle is dropped.
    pub async fn close(&self) {
        let (ack, rx) = oneshot::channel();
        if self.inner.tx.send(Msg::Close(ack)).is_ok() {
            // An error means the writer is already gone, which is what we want.
            let _ = rx.await;
        }
    }

    pub fn written_total(&self) -> u64 {
        self.inner.counters.written.load(Ordering::Relaxed)
    }

    /// Events that failed to commit or arrived after close.
    pub fn write_errors_total(&self) -> u64 {
        self.inner.counters.write_errors.load(Ordering::Relaxed)
    }

    pub fn server(&self) -> ServerId {
        self.inner.server
    }

    /// Blocking read; call from `spawn_blocking` in async code.
    pub fn query(&self, q: &EventQuery) -> Result<EventPage, EventLogError> {
        let limit = match q.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let lower = q.since.map(|s| (s, 0u64));
        let mut upper = q.until.map(|u| (u, 0u64));
        if let Some(c) = q.before {
            upper = match (upper, self.key_bound_before(c)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, None) => a,
                (None, b) => b,
            };
        }
        if matches!((lower, upper), (Some(l), Some(u)) if l >= u) {
            return Ok(EventPage::default());
        }

        let txn = self.inner.db.begin_read()?;
        let events = txn.open_table(EVENTS)?;
        let mut out: Vec<Event> = Vec::new();
        // One more than asked, to know whether a next page exists.
        let mut keep = |ts: i64, id: u64, bytes: &[u8]| -> bool {
            match decode(bytes, ts, id) {
                Ok(ev) => {
                    if q.kind.as_deref().is_none_or(|k| kind_matches(k, &ev.kind)) {
                        out.push(ev);
                    }
                }
                Err(e) => tracing::error!(error = %e, "skipping unreadable event"),
            }
            out.len() <= limit
        };

        match &q.element {
            None => {
                let lo = lower.map_or(Bound::Unbounded, Bound::Included);
                let hi = upper.map_or(Bound::Unbounded, Bound::Excluded);
                for entry in events.range::<(i64, u64)>((lo, hi))?.rev() {
                    let (k, v) = entry?;
                    let (ts, id) = k.value();
                    if !keep(ts, id, v.value()) {
                        break;
                    }
                }
            }
            Some(el) => {
                let index = txn.open_table(BY_ELEMENT)?;
                let el = el.as_str();
                let lo = lower.map_or((el, i64::MIN, 0), |(t, i)| (el, t, i));
                let hi = upper.map_or(Bound::Included((el, i64::MAX, u64::MAX)), |(t, i)| {
                    Bound::Excluded((el, t, i))
                });
                for entry in index
                    .range::<(&str, i64, u64)>((Bound::Included(lo), hi))?
                    .rev()
                {
                    let (k, _) = entry?;
                    let (_, ts, id) = k.value();
                    // A missing record is an index entry orphaned by a prune of a corrupt record.
                    let Some(v) = events.get((ts, id))? else {
                        continue;
                    };
                    if !keep(ts, id, v.value()) {
                        break;
                    }
                }
            }
        }
        let next = if out.len() > limit {
            out.truncate(limit);
            out.last().map(EventCursor::from)
        } else {
            None
        };
        Ok(EventPage { events: out, next })
    }

    /// Exclusive upper bound in this file's `(ts, id)` key space for events strictly before `c`
    /// in the pool-wide `(ts, server, id)` order; `None` when nothing is excluded.
    fn key_bound_before(&self, c: EventCursor) -> Option<(i64, u64)> {
        match self.inner.server.cmp(&c.server) {
            std::cmp::Ordering::Less => c.ts.checked_add(1).map(|t| (t, 0)),
            std::cmp::Ordering::Equal => Some((c.ts, c.id)),
            std::cmp::Ordering::Greater => Some((c.ts, 0)),
        }
    }

    /// Deletes events older than `now - retention`; returns how many. Blocking.
    pub fn prune(&self, now: UnixMillis) -> Result<usize, EventLogError> {
        let mut total = 0;
        loop {
            let (removed, more) = prune_chunk(&self.inner.db, self.inner.retention, now)?;
            total += removed;
            if !more {
                return Ok(total);
            }
        }
    }

    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, EventLogError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(META)?;
        Ok(table.get(key)?.map(|g| g.value().to_vec()))
    }

    /// Durable when it returns; goes through the writer so it shares its group commit.
    pub async fn meta_put(&self, key: &str, value: Vec<u8>) -> Result<(), EventLogError> {
        let (ack, rx) = oneshot::channel();
        self.send(Msg::MetaPut {
            key: key.to_owned(),
            value,
            ack,
        })?;
        rx.await.map_err(|_| EventLogError::Closed)?
    }

    fn send(&self, msg: Msg) -> Result<(), EventLogError> {
        self.inner.tx.send(msg).map_err(|_| EventLogError::Closed)
    }
}

fn kind_matches(pattern: &str, kind: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        kind.starts_with(prefix)
    } else if pattern.ends_with('.') {
        kind.starts_with(pattern)
    } else {
        pattern.is_empty() || pattern == kind
    }
}

/// One transaction's worth of pruning; the bool says whether more is left.
fn prune_chunk(
    db: &Database,
    retention: Duration,
    now: UnixMillis,
) -> Result<(usize, bool), EventLogError> {
    if retention.is_zero() {
        return Ok((0, false));
    }
    let keep_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now.saturating_sub(keep_ms);
    let txn = db.begin_write()?;
    let (removed, more) = {
        let mut events = txn.open_table(EVENTS)?;
        let mut index = txn.open_table(BY_ELEMENT)?;
        let mut victims = Vec::new();
        let mut more = false;
        for entry in events.range(..(cutoff, 0u64))? {
            let (k, v) = entry?;
            if victims.len() == PRUNE_CHUNK {
                more = true;
                break;
            }
            let (ts, id) = k.value();
            // A corrupt record must not make retention stall forever: drop it, orphan its index.
            let element = decode(v.value(), ts, id)
                .map(|ev| ev.element)
                .unwrap_or(None);
            victims.push((ts, id, element));
        }
        for (ts, id, element) in &victims {
            events.remove((*ts, *id))?;
            if let Some(el) = element {
                index.remove((el.as_str(), *ts, *id))?;
            }
        }
        (victims.len(), more)
    };
    txn.commit()?;
    Ok((removed, more))
}

struct Writer {
    db: Arc<Database>,
    server: ServerId,
    retention: Duration,
    next_id: u64,
    counters: Arc<Counters>,
    /// Events that failed since the last flush, so that the next flush can say so.
    unreported_failures: u64,
    buf: Vec<u8>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        // The first prune runs before any message is served, so that an open after a long
        // downtime does not show events that are already past retention.
        let mut next_prune = self.prune_step();
        let mut close_acks = Vec::new();
        loop {
            let first = if self.retention.is_zero() {
                rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
            } else {
                rx.recv_timeout(next_prune.saturating_duration_since(Instant::now()))
            };
            let first = match first {
                Ok(msg) => msg,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    next_prune = self.prune_step();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            while batch.len() < BATCH_CAP {
                match rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch, &mut close_acks);
            if !close_acks.is_empty() {
                break;
            }
        }
        // Whatever is still queued was sent after close: count it rather than lose it silently.
        let mut late = 0u64;
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Append { .. } = msg {
                late += 1;
            }
        }
        if late > 0 {
            self.counters
                .write_errors
                .fetch_add(late, Ordering::Relaxed);
            tracing::error!(server = %self.server, dropped = late, "events appended after close were dropped");
        }
        drop(rx);
        // Release the file before acknowledging, so that a reopen right after close works.
        drop(self);
        for ack in close_acks {
            let _ = ack.send(());
        }
    }

    /// One chunk of pruning; returns when the next chunk is due.
    fn prune_step(&self) -> Instant {
        match prune_chunk(&self.db, self.retention, now_millis()) {
            // More is left: go on right after serving whatever queued meanwhile.
            Ok((_, true)) => Instant::now(),
            Ok((_, false)) => Instant::now() + PRUNE_INTERVAL,
            Err(e) => {
                tracing::error!(error = %e, "event log prune failed");
                Instant::now() + PRUNE_INTERVAL
            }
        }
    }

    fn commit_batch(&mut self, batch: Vec<Msg>, close_acks: &mut Vec<oneshot::Sender<()>>) {
        let mut events = Vec::with_capacity(batch.len());
        let mut metas = Vec::new();
        let mut flushes = Vec::new();
        for msg in batch {
            match msg {
                Msg::Append { ev, ack } => {
                    let event = Event {
                        id: self.next_id,
                        ts: ev.ts,
                        server: self.server,
                        element: ev.element,
                        kind: ev.kind,
                        severity: ev.severity,
                        text: ev.text,
                    };
                    self.next_id += 1;
                    events.push((event, ack));
                }
                Msg::MetaPut { key, value, ack } => metas.push((key, value, ack)),
                Msg::Flush(ack) => flushes.push(ack),
                Msg::Close(ack) => close_acks.push(ack),
            }
        }
        if events.is_empty() && metas.is_empty() {
            self.ack_flushes(flushes, None);
            return;
        }
        match self.write(&events, &metas) {
            Ok(()) => {
                let n = events.len() as u64;
                self.counters.written.fetch_add(n, Ordering::Relaxed);
                for (event, ack) in events {
                    if let Some(ack) = ack {
                        let _ = ack.send(Ok(event));
                    }
                }
                for (_, _, ack) in metas {
                    let _ = ack.send(Ok(()));
                }
                self.ack_flushes(flushes, None);
            }
            Err(e) => {
                let text = e.to_string();
                let n = events.len() as u64;
                self.counters.write_errors.fetch_add(n, Ordering::Relaxed);
                self.unreported_failures += n;
                tracing::error!(server = %self.server, error = %text, lost = n, "event log commit failed");
                for (_, ack) in events {
                    if let Some(ack) = ack {
                        let _ = ack.send(Err(EventLogError::Write(text.clone())));
                    }
                }
                for (_, _, ack) in metas {
                    let _ = ack.send(Err(EventLogError::Write(text.clone())));
                }
                self.ack_flushes(flushes, Some(text));
            }
        }
    }

    fn ack_flushes(&mut self, flushes: Vec<Reply<()>>, failed: Option<String>) {
        if flushes.is_empty() {
            return;
        }
        let lost = std::mem::take(&mut self.unreported_failures);
        for ack in flushes {
            let result = match (&failed, lost) {
                (Some(text), _) => Err(EventLogError::Write(text.clone())),
                (None, 0) => Ok(()),
                (None, n) => Err(EventLogError::Lost(n)),
            };
            let _ = ack.send(result);
        }
    }

    fn write(
        &mut self,
        events: &[(Event, Option<Reply<Event>>)],
        metas: &[(String, Vec<u8>, Reply<()>)],
    ) -> Result<(), EventLogError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(EVENTS)?;
            let mut index = txn.open_table(BY_ELEMENT)?;
            for (ev, _) in events {
                self.buf.clear();
                serde_json::to_writer(&mut self.buf, ev)?;
                table.insert((ev.ts, ev.id), self.buf.as_slice())?;
            }
            // In key order, so that consecutive inserts hit the same (already copied) leaf.
            let mut keys: Vec<_> = events
                .iter()
                .filter_map(|(ev, _)| Some((ev.element.as_deref()?, ev.ts, ev.id)))
                .collect();
            keys.sort_unstable();
            for key in keys {
                index.insert(key, ())?;
            }
            let mut meta = txn.open_table(META)?;
            for (key, value, _) in metas {
                meta.insert(key.as_str(), value.as_slice())?;
            }
            txn.open_table(STATE)?.insert(NEXT_ID, self.next_id)?;
        }
        txn.commit()?;
        Ok(())
    }
}

fn decode(bytes: &[u8], ts: i64, id: u64) -> Result<Event, EventLogError> {
    serde_json::from_slice(bytes).map_err(|e| EventLogError::Corrupt {
        ts,
        id,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;
    use std::collections::HashSet;

    const S: ServerId = ServerId(2);
    const FOREVER: Duration = Duration::ZERO;

    fn ev(ts: i64, element: Option<&str>, kind: &str) -> NewEvent {
        let text = format!("{kind} at {ts}");
        let element = element.map(str::to_owned);
        let (kind, severity) = (kind.to_owned(), Severity::Info);
        NewEvent {
            ts,
            element,
            kind,
            severity,
            text,
        }
    }

    fn open(dir: &tempfile::TempDir, retention: Duration) -> EventLog {
        EventLog::open(&dir.path().join("events.redb"), S, retention).expect("open")
    }

    async fn put(log: &EventLog, ts: i64, element: Option<&str>) -> Event {
        log.append_durable(ev(ts, element, "k"))
            .await
            .expect("append")
    }

    /// Runs a query (limit 10,000 unless `edit` says otherwise) and returns the page.
    fn page(log: &EventLog, edit: impl FnOnce(&mut EventQuery)) -> EventPage {
        let mut q = EventQuery {
            limit: MAX_LIMIT,
            ..EventQuery::default()
        };
        edit(&mut q);
        log.query(&q).expect("query")
    }

    fn ts(log: &EventLog, edit: impl FnOnce(&mut EventQuery)) -> Vec<i64> {
        page(log, edit).events.iter().map(|e| e.ts).collect()
    }

    fn ids(log: &EventLog, edit: impl FnOnce(&mut EventQuery)) -> Vec<u64> {
        page(log, edit).events.iter().map(|e| e.id).collect()
    }

    #[tokio::test]
    async fn ids_are_monotonic_across_reopen_and_events_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(&dir, FOREVER);
        let mut written = vec![put(&log, 30, Some("r1")).await, put(&log, 10, None).await];
        written.push(put(&log, 20, Some("r1")).await);
        assert_eq!(written.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);
        log.close().await;
        drop(log);

        let log = open(&dir, FOREVER);
        written.sort_by_key(|e| std::cmp::Reverse(EventCursor::from(e)));
        assert_eq!(page(&log, |_| {}).events, written);
        assert_eq!(put(&log, 5, None).await.id, 4);
        log.close().await;
    }

    #[tokio::test]
    async fn ids_are_not_reused_after_pruning_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(&dir, Duration::from_millis(10));
        put(&log, 1, None).await;
        put(&log, 2, None).await;
        assert_eq!(log.prune(1_000).expect("prune"), 2);
        log.close().await;
        drop(log);
        let log = open(&dir, Duration::from_millis(10));
        assert_eq!(put(&log, 2_000, None).await.id, 3);
        log.close().await;
    }

    #[tokio::test]
    async fn query_filters_by_element_kind_and_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(&dir, FOREVER);
        log.append(ev(10, Some("r1"), "alarm.raised"));
        log.append(ev(20, Some("r2"), "alarm.raised"));
        log.append(ev(30, Some("r1"), "alarm.cleared"));
        log.append(ev(40, Some("r1"), "element.state"));
        log.append(ev(50, None, "server.start"));
        log.append(ev(60, Some("r10"), "alarm.raised"));
        log.flush().await.expect("flush");

        let some = |s: &str| Some(s.to_owned());
        let none = Vec::<i64>::new();
        assert_eq!(ts(&log, |q| q.element = some("r1")), [40, 30, 10]);
        assert_eq!(ts(&log, |q| q.element = some("nope")), none);
        assert_eq!(ts(&log, |q| q.kind = some("alarm.*")), [60, 30, 20, 10]);
        assert_eq!(ts(&log, |q| q.kind = some("alarm.")), [60, 30, 20, 10]);
        assert_eq!(ts(&log, |q| q.kind = some("alarm")), none);
        assert_eq!(ts(&log, |q| q.kind = some("alarm.raised")), [60, 20, 10]);
        assert_eq!(
            ts(&log, |q| (q.since, q.until) = (Some(20), Some(50))),
            [40, 30, 20]
        );
        assert_eq!(
            ts(&log, |q| (q.since, q.until) = (Some(50), Some(50))),
            none
        );
        let r1_alarms_10_to_30 = |q: &mut EventQuery| {
            (q.element, q.kind) = (some("r1"), some("alarm.*"));
            (q.since, q.until) = (Some(10), Some(30));
        };
        assert_eq!(ts(&log, r1_alarms_10_to_30), [10]);
        assert_eq!(ts(&log, |q| q.limit = 2), [60, 50]);
        // `limit: 0` is the default query, not an empty one.
        assert_eq!(ts(&log, |q| q.limit = 0).len(), 6);
        log.close().await;
    }

    #[tokio::test]
    async fn paging_returns_every_event_exactly_once_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(&dir, FOREVER);
        // Many events share a timestamp, so that the cursor must break ties by id.
        for i in 0..1000i64 {
            log.append(ev(i / 7, Some(if i % 3 == 0 { "r1" } else { "r2" }), "k"));
        }
        log.flush().await.expect("flush");

        for (element, expected) in [(None, 1000), (Some("r1".to_owned()), 334)] {
            let mut seen = Vec::new();
            let mut before = None;
            loop {
                let p = page(&log, |q| {
                    (q.element, q.limit, q.before) = (element.clone(), 33, before)
                });
                assert!(p.events.len() <= 33);
                seen.extend(p.events.iter().map(EventCursor::from));
                let Some(next) = p.next else { break };
                before = Some(next.to_string().parse().expect("cursor"));
            }
            assert_eq!(seen.len(), expected);
            assert_eq!(seen.iter().collect::<HashSet<_>>().len(), expected);
            assert!(
                seen.windows(2).all(|w| w[0] > w[1]),
                "not strictly newest first"
            );
        }
        log.close().await;
    }

    #[tokio::test]
    async fn cursor_from_another_server_orders_by_ts_server_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(&dir, FOREVER);
        for ts in [4, 5, 5, 6] {
            log.append(ev(ts, None, "k"));
        }
        log.flush().await.expect("flush");
        let before = |ts, server, id| {
            ids(&log, |q| {
                q.before = Some(EventCursor {
                    ts,
                    server: ServerId(server),
                    id,
                })
            })
        };
        // Our events at ts 5 (ids 2, 3) sort after any server-1 event at ts 5...
        assert_eq!(before(5, 1, 99), [1]);
        // ...and before any server-3 event at ts 5.
        assert_eq!(before(5, 3, 0), [3, 2, 1]);
        assert_eq!(before(5, 2, 3), [2, 1]);
        assert_eq!(before(i64::MAX, 9, 0), [4, 3, 2, 1]);
        log.close().await;
    }

    #[test]
    fn cursor_text_round_trips_and_rejects_garbage() {
        let c = EventCursor {
            ts: -5,
            server: ServerId(3),
            id: 42,
        };
        assert_eq!(c.to_string(), "-5.3.42");
        assert_eq!("-5.3.42".parse::<EventCursor>().expect("parse"), c);
        for bad in ["", "1.2", "1.2.3.4", "a.2.3", "1.-2.3", "1.2.x", "1..3"] {
            let parsed = bad.parse::<EventCursor>();
            assert!(matches!(parsed, Err(EventLogError::BadCursor(_))), "{bad}");
        }
        let query = EventQuery {
            before: Some(c),
            ..EventQuery::default()
        };
        let json = serde_json::to_string(&query).expect("json");
        assert!(json.contains("\"-5.3.42\""));
        let back: EventQuery = serde_json::from_str(&json).expect("json");
        assert_eq!(back.before, Some(c));
        assert!(serde_json::from_str::<EventQuery>(r#"{"before":"zz"}"#).is_err());
    }

    #[tokio::test]
    async fn prune_deletes_old_events_from_both_tables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(&dir, Duration::from_millis(100));
        for ts in 0..10 {
            log.append(ev(ts * 100, Some("r1"), "k"));
        }
        log.flush().await.expect("flush");
        // Cutoff 1000 - 100 = 900: ts 0..=800 go, 900 stays.
        assert_eq!(log.prune(1_000).expect("prune"), 9);
        assert_eq!(ts(&log, |q| q.element = Some("r1".into())), [900]);
        let txn = log.inner.db.begin_read().expect("txn");
        let index = txn.open_table(BY_ELEMENT).expect("table");
        assert_eq!(redb::ReadableTableMetadata::len(&index).expect("len"), 1);
        drop(txn);
        log.close().await;

        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(&dir, FOREVER);
        put(&log, 0, None).await;
        assert_eq!(log.prune(i64::MAX).expect("prune"), 0);
        log.close().await;
    }

    #[tokio::test]
    async fn writer_prunes_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(&dir, FOREVER);
        put(&log, 1, Some("r1")).await;
        log.close().await;
        drop(log);
        let log = open(&dir, Duration::from_secs(60));
        // The prune at open runs before the writer serves this append.
        put(&log, now_millis(), None).await;
        assert_eq!(ids(&log, |_| {}), [2]);
        log.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_all_land() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(&dir, FOREVER);
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    let element = format!("ne{t}");
                    for i in 0..1250 {
                        if i % 100 == 0 {
                            put(&log, i, Some(&element)).await;
                        } else {
                            log.append(ev(i, Some(&element), "k"));
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        log.flush().await.expect("flush");
        assert_eq!((log.written_total(), log.write_errors_total()), (10_000, 0));
        let all = page(&log, |_| {});
        assert!(all.next.is_none());
        let ids: HashSet<u64> = all.events.iter().map(|e| e.id).collect();
        assert_eq!(ids, (1..=10_000).collect());
        assert_eq!(ts(&log, |q| q.element = Some("ne3".into())).len(), 1250);
        log.close().await;
    }

    #[tokio::test]
    async fn meta_is_durable_and_close_stops_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(&dir, FOREVER);
        assert_eq!(log.meta_get("term").expect("get"), None);
        log.meta_put("term", b"7".to_vec()).await.expect("put");
        log.close().await;
        let late = log.append_durable(ev(1, None, "k")).await;
        assert!(matches!(late, Err(EventLogError::Closed)));
        assert!(matches!(log.flush().await, Err(EventLogError::Closed)));
        log.append(ev(1, None, "k"));
        assert_eq!(log.write_errors_total(), 1);
        log.close().await;
        drop(log);
        let log = open(&dir, FOREVER);
        assert_eq!(log.meta_get("term").expect("get"), Some(b"7".to_vec()));
        log.close().await;
    }

    #[test]
    fn log_is_clone_send_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<EventLog>();
    }
}
