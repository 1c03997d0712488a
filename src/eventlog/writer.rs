//! The single writer of the event log, and what it does when the storage fails.
//!
//! redb refuses every operation after one I/O error ("Previous I/O error occurred. Please
//! close and re-open the database."), so a disk that filled up once would stop the log for
//! good. On such an error the writer enters an outage: events and durable values (`meta`, the
//! pool's term and assignment) that could not be written are kept in memory (events in a
//! bounded queue, values by key, newest wins), and with backoff the writer closes the database,
//! opens it again and writes what it kept. `Health` tells `/readyz` and `/metrics`; an
//! `eventlog.unwritable` event (time of the first failure) and an `eventlog.writable` event
//! record the outage in the log itself once it is over.

use super::{
    BATCH_CAP, BY_ELEMENT, BY_ID, CACHE_BYTES, Counters, EVENTS, EventLogError, META, Msg, NEXT_ID,
    PRUNE_INTERVAL, Reply, STATE, prune_chunk,
};
use crate::model::{Event, NewEvent, ServerId, Severity, UnixMillis, now_millis};
use redb::Database;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Events kept in memory while the storage fails (~200 bytes each: ~20 MB at most). Beyond
/// it new events are dropped and counted (`emspool_event_log_dropped_total`).
pub(crate) const QUEUE_CAP: usize = 100_000;
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a reopen waits for queries still holding the old database.
const RELEASE_WAIT: Duration = Duration::from_secs(2);
/// Overflow is logged at most this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(60);

/// The open database, shared by the writer and the readers. Empty while the writer is
/// reopening it after a storage fault (queries then fail with `Unavailable`).
pub(super) struct DbSlot {
    db: RwLock<Option<Arc<Database>>>,
    pub(super) path: PathBuf,
}

impl DbSlot {
    pub(super) fn new(db: Database, path: PathBuf) -> DbSlot {
        DbSlot {
            db: RwLock::new(Some(Arc::new(db))),
            path,
        }
    }

    pub(super) fn get(&self, health: &Health) -> Result<Arc<Database>, EventLogError> {
        let db = self.db.read().unwrap_or_else(|p| p.into_inner()).clone();
        db.ok_or_else(|| EventLogError::Unavailable(health.reason().unwrap_or_default()))
    }

    fn take(&self) -> Option<Arc<Database>> {
        self.db.write().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn put(&self, db: Database) {
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(db));
    }
}

/// Whether the event log (and with it the pool state kept in the same file) can be written.
#[derive(Default)]
pub(crate) struct Health {
    outage: Mutex<Option<(UnixMillis, String)>>,
    queued: AtomicU64,
    dropped: AtomicU64,
    outages: AtomicU64,
}

/// What `/readyz` and `/metrics` show of [`Health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// `None` while writable; else since when (Unix ms) and why not.
    pub outage: Option<(UnixMillis, String)>,
    /// Events waiting in memory for the storage to come back.
    pub queued: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// Outages begun since start.
    pub outages: u64,
}

impl Health {
    fn reason(&self) -> Option<String> {
        self.lock().as_ref().map(|(_, r)| r.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(UnixMillis, String)>> {
        self.outage.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            outage: self.lock().clone(),
            queued: self.queued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            outages: self.outages.load(Ordering::Relaxed),
        }
    }
}

/// A write failed because of the storage (disk full, I/O error, a database poisoned by an
/// earlier one): worth keeping the data and reopening. Anything else (a value redb refuses)
/// would fail again and is reported as before.
fn is_storage_fault(e: &EventLogError) -> bool {
    use redb::Error;
    match e {
        EventLogError::Io(_) | EventLogError::Unavailable(_) => true,
        EventLogError::Db(e) => matches!(
            e,
            Error::Io(_) | Error::Backend(_) | Error::PreviousIo | Error::DatabaseClosed
        ),
        _ => false,
    }
}

struct Outage {
    since: Instant,
    reason: String,
    backoff: Duration,
    next_try: Instant,
    /// Events and meta values that were due when the outage began (for the log line).
    failed_writes: u64,
}

pub(super) struct Writer {
    pub(super) slot: Arc<DbSlot>,
    pub(super) health: Arc<Health>,
    pub(super) server: ServerId,
    pub(super) retention: Duration,
    pub(super) next_id: u64,
    pub(super) counters: Arc<Counters>,
    /// Events that failed since the last flush, so that the next flush can say so.
    pub(super) unreported_failures: u64,
    pub(super) buf: Vec<u8>,
    pub(super) queue: VecDeque<Event>,
    pub(super) queued_meta: BTreeMap<String, Vec<u8>>,
    outage: Option<Outage>,
    last_drop_log: Option<Instant>,
}

impl Writer {
    pub(super) fn new(
        slot: Arc<DbSlot>,
        health: Arc<Health>,
        server: ServerId,
        retention: Duration,
        next_id: u64,
        counters: Arc<Counters>,
    ) -> Writer {
        Writer {
            slot,
            health,
            server,
            retention,
            next_id,
            counters,
            unreported_failures: 0,
            buf: Vec::with_capacity(256),
            queue: VecDeque::new(),
            queued_meta: BTreeMap::new(),
            outage: None,
            last_drop_log: None,
        }
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Msg>) {
        // The first prune runs before any message is served, so that an open after a long
        // downtime does not show events that are already past retention.
        let mut next_prune = self.prune_step();
        let mut close_acks = Vec::new();
        loop {
            let wake = match &self.outage {
                Some(o) if self.retention.is_zero() => Some(o.next_try),
                Some(o) => Some(o.next_try.min(next_prune)),
                None if self.retention.is_zero() => None,
                None => Some(next_prune),
            };
            let first = match wake {
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(t) => rx.recv_timeout(t.saturating_duration_since(Instant::now())),
            };
            let first = match first {
                Ok(msg) => Some(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if let Some(first) = first {
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
            let now = Instant::now();
            if self.outage.as_ref().is_some_and(|o| o.next_try <= now) {
                self.recover();
            } else if self.outage.is_none() && !self.retention.is_zero() && next_prune <= now {
                next_prune = self.prune_step();
            }
        }
        if self.outage.is_some() {
            // One last try, so that a disk freed just before the stop loses nothing.
            self.recover();
        }
        let stranded = self.queue.len() as u64;
        if stranded > 0 {
            self.counters
                .write_errors
                .fetch_add(stranded, Ordering::Relaxed);
            tracing::error!(
                server = %self.server, lost = stranded,
                "event log still not writable at stop: queued events lost"
            );
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
        let result = self
            .slot
            .get(&self.health)
            .and_then(|db| prune_chunk(&db, self.retention, now_millis()));
        match result {
            // More is left: go on right after serving whatever queued meanwhile.
            Ok((_, true)) => Instant::now(),
            Ok((_, false)) => Instant::now() + PRUNE_INTERVAL,
            Err(e) => {
                tracing::error!(error = %e, "event log prune failed");
                Instant::now() + PRUNE_INTERVAL
            }
        }
    }

    fn stamp(&mut self, ev: NewEvent) -> Event {
        let event = Event {
            id: self.next_id,
            ts: ev.ts,
            server: self.server,
            element: ev.element,
            kind: ev.kind,
            severity: ev.severity,
            text: ev.text,
            alarm: ev.alarm,
        };
        self.next_id += 1;
        event
    }

    fn commit_batch(&mut self, batch: Vec<Msg>, close_acks: &mut Vec<oneshot::Sender<()>>) {
        let mut events = Vec::with_capacity(batch.len());
        let mut metas = Vec::new();
        let mut flushes = Vec::new();
        for msg in batch {
            match msg {
                Msg::Append { ev, ack } => {
                    let event = self.stamp(ev);
                    events.push((event, ack));
                }
                Msg::MetaPut { key, value, ack } => metas.push((key, value, ack)),
                Msg::Flush(ack) => flushes.push(ack),
                Msg::Close(ack) => close_acks.push(ack),
            }
        }
        if events.is_empty() && metas.is_empty() {
            let failed = self.outage.as_ref().map(|o| o.reason.clone());
            self.ack_flushes(flushes, failed);
            return;
        }
        if let Some(o) = &self.outage {
            let text = o.reason.clone();
            self.keep(events, metas, &text);
            self.ack_flushes(flushes, Some(text));
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
            Err(e) if is_storage_fault(&e) => {
                let text = e.to_string();
                let n = events.len() as u64;
                self.counters.write_errors.fetch_add(n, Ordering::Relaxed);
                self.begin_outage(text.clone(), n + metas.len() as u64);
                self.keep(events, metas, &text);
                self.ack_flushes(flushes, Some(text));
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

    /// Keeps what could not be written for the end of the outage. Waiters are told it is not
    /// durable (yet): a caller that needs durability now (a term, an assignment) must not act
    /// as if it were.
    fn keep(
        &mut self,
        events: Vec<(Event, Option<Reply<Event>>)>,
        metas: Vec<(String, Vec<u8>, Reply<()>)>,
        reason: &str,
    ) {
        let not_durable = || EventLogError::Write(format!("{reason} (kept in memory)"));
        for (event, ack) in events {
            self.enqueue(event);
            if let Some(ack) = ack {
                let _ = ack.send(Err(not_durable()));
            }
        }
        for (key, value, ack) in metas {
            self.queued_meta.insert(key, value);
            let _ = ack.send(Err(not_durable()));
        }
    }

    fn enqueue(&mut self, event: Event) {
        if self.queue.len() >= QUEUE_CAP {
            let total = self.health.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if self
                .last_drop_log
                .is_none_or(|t| t.elapsed() >= DROP_LOG_EVERY)
            {
                self.last_drop_log = Some(Instant::now());
                tracing::error!(
                    server = %self.server, dropped_total = total, queue = QUEUE_CAP,
                    "event log not writable and its memory queue is full: events dropped"
                );
            }
            return;
        }
        self.queue.push_back(event);
        self.health
            .queued
            .store(self.queue.len() as u64, Ordering::Relaxed);
    }

    fn begin_outage(&mut self, reason: String, failed_writes: u64) {
        let now = Instant::now();
        tracing::error!(
            server = %self.server, error = %reason,
            "event log not writable: keeping events in memory, reopening with backoff"
        );
        *self.health.lock() = Some((now_millis(), reason.clone()));
        self.health.outages.fetch_add(1, Ordering::Relaxed);
        let ev = self.stamp(NewEvent::now(
            None,
            "eventlog.unwritable",
            Severity::Major,
            format!("event log and pool state cannot be written: {reason}"),
        ));
        self.enqueue(ev);
        self.outage = Some(Outage {
            since: now,
            reason,
            backoff: BACKOFF_MIN,
            next_try: now + BACKOFF_MIN,
            failed_writes,
        });
    }

    /// Reopens the database and writes what was kept; on failure tries again later.
    fn recover(&mut self) {
        let Some(mut outage) = self.outage.take() else {
            return;
        };
        match self.reopen_and_drain(&outage) {
            Ok(written) => {
                let took = outage.since.elapsed();
                tracing::warn!(
                    server = %self.server, written, outage_ms = took.as_millis() as u64,
                    "event log writable again"
                );
                *self.health.lock() = None;
                self.health.queued.store(0, Ordering::Relaxed);
            }
            Err(e) => {
                let reason = e.to_string();
                if reason != outage.reason {
                    tracing::error!(server = %self.server, error = %reason, "event log still not writable");
                    *self.health.lock() = Some((now_millis(), reason.clone()));
                    outage.reason = reason;
                }
                outage.backoff = (outage.backoff * 2).min(BACKOFF_MAX);
                outage.next_try = Instant::now() + outage.backoff;
                self.outage = Some(outage);
            }
        }
    }

    fn reopen_and_drain(&mut self, outage: &Outage) -> Result<u64, EventLogError> {
        self.reopen()?;
        let dropped = self.health.dropped.load(Ordering::Relaxed);
        let end = self.stamp(NewEvent::now(
            None,
            "eventlog.writable",
            Severity::Info,
            format!(
                "event log writable again after {} ms ({} queued event(s) written, {} failed \
                 write(s) at the start, {dropped} dropped since start for a full queue)",
                outage.since.elapsed().as_millis(),
                self.queue.len() + 1,
                outage.failed_writes,
            ),
        ));
        self.queue.push_back(end);
        let mut written = 0u64;
        while !self.queue.is_empty() || !self.queued_meta.is_empty() {
            let n = self.queue.len().min(BATCH_CAP);
            let events: Vec<(Event, Option<Reply<Event>>)> = self
                .queue
                .iter()
                .take(n)
                .map(|e| (e.clone(), None))
                .collect();
            let metas: Vec<(String, Vec<u8>, Reply<()>)> = std::mem::take(&mut self.queued_meta)
                .into_iter()
                .map(|(k, v)| (k, v, oneshot::channel().0))
                .collect();
            if let Err(e) = self.write(&events, &metas) {
                // Keep them for the next try.
                for (k, v, _) in metas {
                    self.queued_meta.entry(k).or_insert(v);
                }
                if self
                    .queue
                    .back()
                    .is_some_and(|e| e.kind == "eventlog.writable")
                {
                    self.queue.pop_back();
                }
                return Err(e);
            }
            self.queue.drain(..n);
            written += n as u64;
            self.counters.written.fetch_add(n as u64, Ordering::Relaxed);
            self.health
                .queued
                .store(self.queue.len() as u64, Ordering::Relaxed);
        }
        Ok(written)
    }

    /// Closes the database (waiting briefly for queries that still hold it) and opens it again,
    /// which clears redb's poisoned state and repairs the file if it needs it.
    fn reopen(&mut self) -> Result<(), EventLogError> {
        if let Some(mut db) = self.slot.take() {
            let deadline = Instant::now() + RELEASE_WAIT;
            loop {
                match Arc::try_unwrap(db) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(shared) if Instant::now() < deadline => {
                        db = shared;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(shared) => {
                        // A reader still holds it: put it back and try at the next backoff.
                        *self.slot.db.write().unwrap_or_else(|p| p.into_inner()) = Some(shared);
                        return Err(EventLogError::Unavailable(
                            "queries still hold the database".into(),
                        ));
                    }
                }
            }
        }
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&self.slot.path)?;
        self.slot.put(db);
        Ok(())
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
        let db = self.slot.get(&self.health)?;
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(EVENTS)?;
            let mut index = txn.open_table(BY_ELEMENT)?;
            let mut by_id = txn.open_table(BY_ID)?;
            for (ev, _) in events {
                self.buf.clear();
                serde_json::to_writer(&mut self.buf, ev)?;
                table.insert((ev.ts, ev.id), self.buf.as_slice())?;
                by_id.insert(ev.id, ev.ts)?;
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
