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

use crate::model::{Event, NewEvent, ServerId, UnixMillis};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Bound;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;
use tokio::sync::oneshot;
pub(crate) use writer::HealthSnapshot;
use writer::{DbSlot, Health, Writer};

mod writer;

/// `(ts, id)` -> event as JSON. Time first so that time-range scans and pruning are range ops.
const EVENTS: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("events");
/// `(element, ts, id)` -> (): element queries without scanning every event.
const BY_ELEMENT: TableDefinition<(&str, i64, u64), ()> = TableDefinition::new("events_by_element");
/// id -> ts: followers of the log (the JetStream outbox) read it in id order, which the
/// time-ordered `EVENTS` key cannot give when clocks step back.
const BY_ID: TableDefinition<u64, i64> = TableDefinition::new("events_by_id");
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
    /// The database is being reopened after a storage fault.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
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
    // Sent only by `flush`, which tests and benches use.
    #[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
    Flush(Reply<()>),
    Close(oneshot::Sender<()>),
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    write_errors: AtomicU64,
}

struct Inner {
    slot: Arc<DbSlot>,
    health: Arc<Health>,
    tx: mpsc::Sender<Msg>,
    server: ServerId,
    retention: Duration,
    counters: Arc<Counters>,
}

/// Handle to the event log; clones share one database and one writer.
/// redb page cache (see `open`).
const CACHE_BYTES: usize = 4 << 20;

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
        // redb's default cache is 1 GiB: a busy server's RSS would creep toward it. Pages
        // written stay cached up to this size; reads of older events go to the file.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
        // Creating every table up front lets read transactions assume they exist.
        let txn = db.begin_write()?;
        let next_id = {
            let events = txn.open_table(EVENTS)?;
            txn.open_table(BY_ELEMENT)?;
            txn.open_table(META)?;
            let mut by_id = txn.open_table(BY_ID)?;
            // A log written before the id index existed gets it once.
            if by_id.is_empty()? {
                for entry in events.iter()? {
                    let (ts, id) = entry?.0.value();
                    by_id.insert(id, ts)?;
                }
            }
            let state = txn.open_table(STATE)?;
            let stored = state.get(NEXT_ID)?.map(|g| g.value());
            stored.unwrap_or(1)
        };
        txn.commit()?;

        let slot = Arc::new(DbSlot::new(db, path.to_owned()));
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let health = Arc::new(Health::default());
        let writer = Writer::new(
            slot.clone(),
            health.clone(),
            server,
            retention,
            next_id,
            counters.clone(),
        );
        // A plain thread rather than a tokio task: redb blocks on fsync, and this way `open`
        // needs no runtime and the writer never occupies a tokio blocking-pool slot for good.
        std::thread::Builder::new()
            .name(format!("eventlog-{server}"))
            .spawn(move || writer.run(rx))?;
        Ok(EventLog {
            inner: Arc::new(Inner {
                slot,
                health,
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
    #[cfg(any(test, feature = "testing"))]
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

    #[cfg(any(test, feature = "testing"))]
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

        let txn = self.db()?.begin_read()?;
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

    /// Up to `limit` events with ids above `after`, in id (append) order. Ids that are missing
    /// (pruned, or never committed) are skipped. Blocking.
    pub fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, EventLogError> {
        let txn = self.db()?.begin_read()?;
        let by_id = txn.open_table(BY_ID)?;
        let events = txn.open_table(EVENTS)?;
        let mut out = Vec::with_capacity(limit.min(4096));
        let Some(first) = after.checked_add(1) else {
            return Ok(out);
        };
        for entry in by_id.range(first..)?.take(limit) {
            let (k, v) = entry?;
            let (id, ts) = (k.value(), v.value());
            let Some(bytes) = events.get((ts, id))? else {
                continue;
            };
            match decode(bytes.value(), ts, id) {
                Ok(ev) => out.push(ev),
                Err(e) => tracing::error!(error = %e, "skipping unreadable event"),
            }
        }
        Ok(out)
    }

    /// The id of the newest committed event (0 when none ever was).
    pub fn last_id(&self) -> Result<u64, EventLogError> {
        let txn = self.db()?.begin_read()?;
        let state = txn.open_table(STATE)?;
        let next = state.get(NEXT_ID)?.map_or(1, |g| g.value());
        Ok(next.saturating_sub(1))
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
    #[cfg(any(test, feature = "testing"))]
    pub fn prune(&self, now: UnixMillis) -> Result<usize, EventLogError> {
        let mut total = 0;
        loop {
            let (removed, more) = prune_chunk(&*self.db()?, self.inner.retention, now)?;
            total += removed;
            if !more {
                return Ok(total);
            }
        }
    }

    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, EventLogError> {
        let txn = self.db()?.begin_read()?;
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

    /// Whether the log (and the pool state in the same file) can be written now; queued and
    /// dropped events of outages.
    pub fn health(&self) -> HealthSnapshot {
        self.inner.health.snapshot()
    }

    fn db(&self) -> Result<Arc<Database>, EventLogError> {
        self.inner.slot.get(&self.inner.health)
    }

    fn send(&self, msg: Msg) -> Result<(), EventLogError> {
        self.inner.tx.send(msg).map_err(|_| EventLogError::Closed)
    }
}

pub(crate) fn kind_matches(pattern: &str, kind: &str) -> bool {
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
        let mut by_id = txn.open_table(BY_ID)?;
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
            by_id.remove(*id)?;
            if let Some(el) = element {
                index.remove((el.as_str(), *ts, *id))?;
            }
        }
        (victims.len(), more)
    };
    txn.commit()?;
    Ok((removed, more))
}

fn decode(bytes: &[u8], ts: i64, id: u64) -> Result<Event, EventLogError> {
    serde_json::from_slice(bytes).map_err(|e| EventLogError::Corrupt {
        ts,
        id,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
