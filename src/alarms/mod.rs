//! The active alarms of this server's elements: raise, clear, acknowledge, de-duplicated by key.
//!
//! Every change that matters to an operator goes through here and is written to the event log,
//! so the log and the table can never disagree about what happened.

mod change;
pub(crate) mod replica;

pub(crate) use change::{Change, Name};

use crate::eventlog::EventLog;
use crate::model::{Alarm, NewEvent, ServerId, Severity, UnixMillis, now_millis};
use replica::{AlarmSync, Replica, SyncAnswer};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum AlarmError {
    #[error("no active alarm with id {0}")]
    NotFound(u64),
}

/// What a poller or trap handler reports; the table decides whether it is new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Raise {
    pub(crate) kind: String,
    pub(crate) element: String,
    pub(crate) instance: Option<String>,
    pub(crate) severity: Severity,
    pub(crate) text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RaiseOutcome {
    New(u64),
    Repeat(u64),
}

/// Filters for listing alarms.
#[derive(Debug, Clone, Default)]
pub(crate) struct AlarmFilter {
    pub(crate) element: Option<String>,
    pub(crate) min_severity: Option<Severity>,
    pub(crate) acknowledged: Option<bool>,
}

impl AlarmFilter {
    pub(crate) fn matches(&self, a: &Alarm) -> bool {
        self.element.as_ref().is_none_or(|e| *e == a.element)
            && self.min_severity.is_none_or(|s| a.severity <= s)
            && self
                .acknowledged
                .is_none_or(|ack| a.acked_at.is_some() == ack)
    }
}

pub(crate) fn reduction_key(kind: &str, element: &str, instance: Option<&str>) -> String {
    match instance {
        Some(i) => format!("{kind}:{element}:{i}"),
        None => format!("{kind}:{element}"),
    }
}

/// Boxed alarms keep the table's buckets small (an `Alarm` is ~200 bytes, and a hash table
/// has 1.1-2x as many buckets as entries). Lookups by id (ack, get) scan: they are operator
/// actions, rare next to raise/clear by key, and a second index cost ~90 bytes per alarm.
struct Inner {
    by_key: HashMap<String, Box<Alarm>>,
    next_seq: u64,
    /// Keys of alarms continued from the pool's copy after the owner died, by element, that
    /// no poll has confirmed yet: the first answered poll clears those it does not repeat.
    unconfirmed: HashMap<String, HashSet<String>>,
    /// Keys (with their element) changed since the last `drain_changes`: what the other
    /// members' copies lack. Repeats are not changes (counts travel with snapshots).
    dirty: HashMap<String, String>,
}

impl Inner {
    fn by_id(&mut self, id: u64) -> Option<&mut Alarm> {
        self.by_key
            .values_mut()
            .find(|a| a.id == id)
            .map(|a| &mut **a)
    }
}

pub(crate) struct AlarmTable {
    server: ServerId,
    events: EventLog,
    inner: Mutex<Inner>,
    /// The other owners' alarms, kept for the day one of them dies.
    replica: Mutex<Replica>,
    /// Wakes the sender of the pool's copies (`cluster::alarm_sync`) after every change they
    /// must learn of: new, cleared, acknowledged, moved.
    changed: tokio::sync::Notify,
    /// Counts every change to the table (including alarms moved in or out without an event),
    /// for the Alertmanager sender, which must not steal `changed`'s one waiter.
    generation: tokio::sync::watch::Sender<u64>,
}

/// Ids are unique in the pool and across restarts: the server id in the high bits, and a
/// sequence seeded from the clock. They stay below 2^53 so JSON clients read them exactly.
fn first_seq() -> u64 {
    ((now_millis() as u64 / 1000) & 0xff_ffff) << 16
}
const SEQ_BITS: u32 = 40;

impl AlarmTable {
    pub(crate) fn new(server: ServerId, events: EventLog) -> AlarmTable {
        AlarmTable {
            server,
            events,
            inner: Mutex::new(Inner {
                by_key: HashMap::new(),
                next_seq: first_seq(),
                unconfirmed: HashMap::new(),
                dirty: HashMap::new(),
            }),
            replica: Mutex::new(Replica::default()),
            changed: tokio::sync::Notify::new(),
            generation: tokio::sync::watch::Sender::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data; keep serving rather than cascade.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn replica(&self) -> std::sync::MutexGuard<'_, Replica> {
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn touched(&self) {
        self.changed.notify_one();
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// A receiver that sees a new value after every change to the table.
    pub(crate) fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Resolves after the next change the other members must learn of (at once if one
    /// happened since the last call).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Applies what a rule decided for `element`, in order: raises and clears to the table
    /// (each writes its event), events to the log. The one way alarm changes take effect.
    pub(crate) fn apply(&self, element: &str, changes: impl IntoIterator<Item = Change>) {
        let now = now_millis();
        for change in changes {
            match change {
                Change::Raise {
                    kind,
                    instance,
                    severity,
                    text,
                    at,
                } => {
                    self.raise_at(
                        Raise {
                            kind: kind.into_owned(),
                            element: element.to_owned(),
                            instance,
                            severity,
                            text,
                        },
                        at.unwrap_or(now),
                    );
                }
                Change::Clear {
                    kind,
                    instance,
                    why,
                } => {
                    self.clear(&kind, element, instance.as_deref(), &why);
                }
                Change::Event {
                    kind,
                    severity,
                    text,
                } => self.events.append(NewEvent {
                    ts: now,
                    element: Some(element.to_owned()),
                    kind: kind.into_owned(),
                    severity,
                    text,
                    alarm: None,
                }),
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn raise(&self, r: Raise) -> RaiseOutcome {
        self.raise_at(r, now_millis())
    }

    pub(crate) fn raise_at(&self, r: Raise, now: UnixMillis) -> RaiseOutcome {
        let key = reduction_key(&r.kind, &r.element, r.instance.as_deref());
        let mut inner = self.lock();
        if let Some(set) = inner.unconfirmed.get_mut(&r.element) {
            set.remove(&key);
        }
        if let Some(a) = inner.by_key.get_mut(&key) {
            a.count = a.count.saturating_add(1);
            a.last_seen = now;
            a.text = r.text;
            // A repeat may escalate; the operator (and the pool's copy, and Alertmanager,
            // where severity is a label) must see the new severity.
            let id = a.id;
            if a.severity != r.severity {
                a.severity = r.severity;
                let element = a.element.clone();
                inner.dirty.insert(key, element);
                drop(inner);
                self.touched();
            }
            return RaiseOutcome::Repeat(id);
        }
        let seq = inner.next_seq;
        inner.next_seq = (seq + 1) & ((1 << SEQ_BITS) - 1);
        let id = (u64::from(self.server.0) << SEQ_BITS) | seq;
        let alarm = Alarm {
            id,
            key: key.clone(),
            kind: r.kind,
            element: r.element,
            instance: r.instance,
            severity: r.severity,
            text: r.text,
            first_seen: now,
            last_seen: now,
            count: 1,
            acked_by: None,
            acked_at: None,
            server: self.server,
        };
        self.events.append(NewEvent {
            ts: now,
            element: Some(alarm.element.clone()),
            kind: "alarm.raised".into(),
            severity: alarm.severity,
            text: format!("{} [{}]: {}", alarm.kind, alarm.key, alarm.text),
            alarm: Some(Box::new(alarm.clone())),
        });
        inner.dirty.insert(key.clone(), alarm.element.clone());
        inner.by_key.insert(key, Box::new(alarm));
        drop(inner);
        self.touched();
        RaiseOutcome::New(id)
    }

    /// Clears the alarm with this key if it is active; returns whether it was.
    pub(crate) fn clear(
        &self,
        kind: &str,
        element: &str,
        instance: Option<&str>,
        why: &str,
    ) -> bool {
        let key = reduction_key(kind, element, instance);
        let mut inner = self.lock();
        let Some(alarm) = inner.by_key.remove(&key) else {
            return false;
        };
        self.events.append(
            NewEvent::now(
                Some(&alarm.element),
                "alarm.cleared",
                Severity::Cleared,
                format!(
                    "{} [{}] cleared after {} occurrence(s): {why}",
                    alarm.kind, key, alarm.count
                ),
            )
            .about(&alarm),
        );
        if let Some(set) = inner.unconfirmed.get_mut(element) {
            set.remove(&key);
        }
        inner.dirty.insert(key, alarm.element);
        drop(inner);
        self.touched();
        true
    }

    pub(crate) fn ack(&self, id: u64, by: &str) -> Result<Alarm, AlarmError> {
        let mut inner = self.lock();
        let alarm = inner.by_id(id).ok_or(AlarmError::NotFound(id))?;
        let now = now_millis();
        alarm.acked_by = Some(by.to_owned());
        alarm.acked_at = Some(now);
        self.events.append(NewEvent {
            ts: now,
            element: Some(alarm.element.clone()),
            kind: "alarm.acked".into(),
            severity: Severity::Info,
            text: format!("{} [{}] acknowledged by {by}", alarm.kind, alarm.key),
            alarm: Some(Box::new(alarm.clone())),
        });
        let out = alarm.clone();
        inner.dirty.insert(out.key.clone(), out.element.clone());
        drop(inner);
        self.touched();
        Ok(out)
    }

    #[cfg(test)]
    pub(crate) fn get(&self, id: u64) -> Option<Alarm> {
        self.lock().by_id(id).map(|a| a.clone())
    }

    /// Sorted most severe first, then newest first.
    pub(crate) fn list(&self, filter: &AlarmFilter) -> Vec<Alarm> {
        let mut v: Vec<Alarm> = self
            .lock()
            .by_key
            .values()
            .filter(|a| filter.matches(a))
            .map(|a| Alarm::clone(a))
            .collect();
        sort_alarms(&mut v);
        v
    }

    pub(crate) fn count_for(&self, element: &str) -> usize {
        self.lock()
            .by_key
            .values()
            .filter(|a| a.element == element)
            .count()
    }

    /// Active alarms per element in one pass: `count_for` per element is O(elements x alarms)
    /// (10,000 elements with 20,000 alarms took 4-6 s per `/api/v1/elements`).
    pub(crate) fn counts_by_element(&self) -> HashMap<String, usize> {
        let mut m: HashMap<String, usize> = HashMap::new();
        for a in self.lock().by_key.values() {
            match m.get_mut(a.element.as_str()) {
                Some(n) => *n += 1,
                None => {
                    m.insert(a.element.clone(), 1);
                }
            }
        }
        m
    }

    pub(crate) fn counts_by_severity(&self) -> HashMap<Severity, usize> {
        let mut m = HashMap::new();
        for a in self.lock().by_key.values() {
            *m.entry(a.severity).or_insert(0) += 1;
        }
        m
    }

    /// `(element, instance)` of the active alarms of `kind` last seen before `before`: for
    /// alarms that clear by time (trap-raised ones no trap clears).
    pub(crate) fn stale(&self, kind: &str, before: UnixMillis) -> Vec<(String, Option<String>)> {
        self.lock()
            .by_key
            .values()
            .filter(|a| a.kind == kind && a.last_seen < before)
            .map(|a| (a.element.clone(), a.instance.clone()))
            .collect()
    }

    /// Removes an element's alarms without clear events: they move to the element's new owner.
    pub(crate) fn take_element(&self, element: &str) -> Vec<Alarm> {
        let mut inner = self.lock();
        let keys: Vec<String> = inner
            .by_key
            .values()
            .filter(|a| a.element == element)
            .map(|a| a.key.clone())
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(a) = inner.by_key.remove(&k) {
                out.push(*a);
            }
            inner.dirty.insert(k, element.to_owned());
        }
        inner.unconfirmed.remove(element);
        drop(inner);
        if !out.is_empty() {
            self.touched();
        }
        out
    }

    /// Adopts alarms handed over by the element's previous owner, keeping ids and history.
    pub(crate) fn adopt(&self, alarms: Vec<Alarm>) {
        if alarms.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for mut a in alarms {
            a.server = self.server;
            inner.dirty.insert(a.key.clone(), a.element.clone());
            inner.by_key.insert(a.key.clone(), Box::new(a));
        }
        drop(inner);
        self.touched();
    }

    /// The element left the inventory: every active alarm of it clears (each writes
    /// `alarm.cleared` with `why`). Returns how many.
    pub(crate) fn clear_element(&self, element: &str, why: &str) -> usize {
        let keys: Vec<(String, Option<String>)> = self
            .lock()
            .by_key
            .values()
            .filter(|a| a.element == element)
            .map(|a| (a.kind.clone(), a.instance.clone()))
            .collect();
        let n = keys
            .into_iter()
            .filter(|(kind, instance)| self.clear(kind, element, instance.as_deref(), why))
            .count();
        self.lock().unconfirmed.remove(element);
        n
    }

    /// This server now owns `element` although its previous owner never released it (it died):
    /// continues the alarms the pool kept of it, with their ids, first-seen, counts and
    /// acknowledgements, writing no event. They stay unconfirmed until the first answered poll
    /// ([`AlarmTable::settle`]). Returns how many.
    pub(crate) fn inherit(&self, element: &str) -> usize {
        let kept = self.replica().take(element);
        if kept.is_empty() {
            return 0;
        }
        let mut inner = self.lock();
        let mut n = 0;
        for mut a in kept {
            if inner.by_key.contains_key(&a.key) {
                continue;
            }
            a.server = self.server;
            inner
                .unconfirmed
                .entry(element.to_owned())
                .or_default()
                .insert(a.key.clone());
            inner.dirty.insert(a.key.clone(), a.element.clone());
            inner.by_key.insert(a.key.clone(), Box::new(a));
            n += 1;
        }
        drop(inner);
        if n > 0 {
            self.touched();
        }
        n
    }

    /// After the first answered poll of an inherited element: its inherited alarms of `kinds`
    /// (those a poll repeats on every answer while the condition holds) on a named instance
    /// that this poll did not repeat ended while no one watched, and clear with `why`.
    /// Returns how many.
    pub(crate) fn settle(&self, element: &str, kinds: &[&str], why: &str) -> usize {
        let Some(keys) = self.lock().unconfirmed.remove(element) else {
            return 0;
        };
        let stale: Vec<(String, Option<String>)> = {
            let inner = self.lock();
            keys.iter()
                .filter_map(|k| inner.by_key.get(k))
                // On a named instance only: a poll cannot speak for an alarm that names
                // none (a linkDown trap without ifIndex).
                .filter(|a| kinds.contains(&a.kind.as_str()) && a.instance.is_some())
                .map(|a| (a.kind.clone(), a.instance.clone()))
                .collect()
        };
        stale
            .into_iter()
            .filter(|(kind, instance)| self.clear(kind, element, instance.as_deref(), why))
            .count()
    }

    /// Elements with at least one active alarm.
    pub(crate) fn elements(&self) -> Vec<String> {
        let inner = self.lock();
        let set: HashSet<&str> = inner.by_key.values().map(|a| a.element.as_str()).collect();
        set.into_iter().map(str::to_owned).collect()
    }

    /// Every active alarm, for the other members' copies; forgets the pending changes (a
    /// snapshot has them all).
    pub(crate) fn snapshot(&self) -> Vec<Alarm> {
        let mut inner = self.lock();
        inner.dirty.clear();
        inner.by_key.values().map(|a| Alarm::clone(a)).collect()
    }

    /// What changed since the last call (or snapshot): alarms new or changed, and the
    /// `(element, key)` of those gone.
    pub(crate) fn drain_changes(&self) -> (Vec<Alarm>, Vec<(String, String)>) {
        let mut inner = self.lock();
        let dirty = std::mem::take(&mut inner.dirty);
        let mut changed = Vec::new();
        let mut gone = Vec::new();
        for (key, element) in dirty {
            match inner.by_key.get(&key) {
                Some(a) => changed.push(Alarm::clone(a)),
                None => gone.push((element, key)),
            }
        }
        (changed, gone)
    }

    /// Another member's snapshot or changes of its alarms; see [`Replica::accept`].
    pub(crate) fn accept_sync(
        &self,
        sync: AlarmSync,
        owner_of: impl Fn(&str) -> Option<ServerId>,
    ) -> SyncAnswer {
        self.replica().accept(sync, owner_of)
    }

    /// The alarms kept here of `from`'s elements (it asks them back after a restart).
    pub(crate) fn kept_of(&self, from: ServerId) -> Vec<Alarm> {
        self.replica().of(from)
    }

    /// This server's own alarms as the pool kept them while it restarted: continued by
    /// [`AlarmTable::inherit`] for the elements its first assignment gives it.
    pub(crate) fn restore_own(&self, alarms: Vec<Alarm>) {
        self.replica().restore_own(self.server, alarms);
    }

    /// See [`Replica::prune`]; called with each new assignment.
    pub(crate) fn prune_replica(&self, owner_of: impl Fn(&str) -> Option<ServerId>) {
        self.replica().prune(owner_of);
    }
}

pub(crate) fn sort_alarms(v: &mut [Alarm]) {
    v.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then(b.last_seen.cmp(&a.last_seen))
            .then(a.id.cmp(&b.id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::EventQuery;
    use std::time::Duration;

    fn table() -> (AlarmTable, EventLog, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let log =
            EventLog::open(&dir.path().join("e.redb"), ServerId(7), Duration::ZERO).expect("open");
        (AlarmTable::new(ServerId(7), log.clone()), log, dir)
    }

    fn link_down(instance: &str) -> Raise {
        Raise {
            kind: "LinkDown".into(),
            element: "r1".into(),
            instance: Some(instance.into()),
            severity: Severity::Major,
            text: "down".into(),
        }
    }

    #[tokio::test]
    async fn repeats_count_instead_of_duplicating_and_clear_removes() {
        let (t, log, _d) = table();
        let RaiseOutcome::New(id) = t.raise_at(link_down("1"), 10) else {
            panic!("first raise is new");
        };
        assert_eq!(t.raise_at(link_down("1"), 20), RaiseOutcome::Repeat(id));
        assert!(matches!(t.raise(link_down("2")), RaiseOutcome::New(_)));
        let all = t.list(&AlarmFilter::default());
        assert_eq!(all.len(), 2);
        let a = t.get(id).expect("active");
        assert_eq!((a.count, a.first_seen, a.last_seen), (2, 10, 20));
        assert_eq!(a.key, "LinkDown:r1:1");
        assert_eq!(a.id >> SEQ_BITS, 7, "server id in the high bits");
        assert!(t.clear("LinkDown", "r1", Some("1"), "up"));
        assert!(
            !t.clear("LinkDown", "r1", Some("1"), "up"),
            "second clear is a no-op"
        );
        log.flush().await.expect("flush");
        let kinds: Vec<String> = log
            .query(&EventQuery {
                limit: 100,
                ..EventQuery::default()
            })
            .expect("query")
            .events
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["alarm.cleared", "alarm.raised", "alarm.raised"]);
    }

    #[tokio::test]
    async fn stale_lists_alarms_of_a_kind_not_repeated_since() {
        let (t, _log, _d) = table();
        t.raise_at(link_down("1"), 10);
        t.raise_at(link_down("2"), 10);
        t.raise_at(link_down("2"), 50);
        assert_eq!(
            t.stale("LinkDown", 20),
            vec![("r1".into(), Some("1".into()))]
        );
        assert!(t.stale("Reboot", 100).is_empty());
        assert_eq!(t.stale("LinkDown", 100).len(), 2);
    }

    #[tokio::test]
    async fn ack_records_who_and_unknown_id_is_an_error() {
        let (t, _log, _d) = table();
        let RaiseOutcome::New(id) = t.raise(link_down("1")) else {
            panic!("new");
        };
        let a = t.ack(id, "alice").expect("ack");
        assert_eq!(a.acked_by.as_deref(), Some("alice"));
        let f = AlarmFilter {
            acknowledged: Some(false),
            ..AlarmFilter::default()
        };
        assert!(t.list(&f).is_empty());
        assert_eq!(t.ack(id + 1, "bob"), Err(AlarmError::NotFound(id + 1)));
    }

    async fn kinds(log: &EventLog) -> Vec<(String, String)> {
        log.flush().await.expect("flush");
        let mut v: Vec<(String, String)> = log
            .query(&EventQuery {
                limit: 100,
                ..EventQuery::default()
            })
            .expect("query")
            .events
            .into_iter()
            .map(|e| (e.kind, e.text))
            .collect();
        v.reverse();
        v
    }

    /// The owner (server 7) dies; server 8 takes r1 over and continues its alarms from the
    /// pool's copy: same id, first-seen and ack, no event; its first answer clears the link
    /// that came up meanwhile and keeps the one still down.
    #[tokio::test]
    async fn an_inherited_alarm_keeps_its_identity_and_the_first_answer_settles_it() {
        let (owner, _l1, _d1) = table();
        let dir = tempfile::tempdir().expect("tempdir");
        let log =
            EventLog::open(&dir.path().join("e.redb"), ServerId(8), Duration::ZERO).expect("open");
        let heir = AlarmTable::new(ServerId(8), log.clone());
        let RaiseOutcome::New(still) = owner.raise_at(link_down("1"), 10) else {
            panic!("new");
        };
        owner.raise_at(link_down("2"), 20);
        // A linkDown trap that named no ifIndex: no poll can speak for it.
        owner.raise_at(
            Raise {
                instance: None,
                ..link_down("x")
            },
            30,
        );
        owner.ack(still, "alice").expect("ack");
        let only_7 = |e: &str| (e == "r1").then_some(ServerId(7));
        let sync = AlarmSync {
            from: ServerId(7),
            epoch: 1,
            seq: 1,
            base: None,
            alarms: owner.snapshot(),
            removed: vec![],
        };
        let got = heir.accept_sync(sync, only_7);
        assert_eq!((got.accepted, got.refused), (3, 0));
        assert_eq!(heir.inherit("r1"), 3);
        assert_eq!(heir.inherit("r1"), 0, "the copy is taken once");
        let a = heir.get(still).expect("same id");
        assert_eq!(a.acked_by.as_deref(), Some("alice"));
        assert_eq!((a.first_seen, a.server), (10, ServerId(8)));
        // The first answered poll repeats link 1 and not link 2.
        heir.apply(
            "r1",
            [Change::raise(
                "LinkDown",
                Some("1".into()),
                Severity::Major,
                "down".into(),
            )],
        );
        assert_eq!(heir.settle("r1", &["LinkDown"], "ended meanwhile"), 1);
        assert_eq!(heir.settle("r1", &["LinkDown"], "ended meanwhile"), 0);
        let left = heir.list(&AlarmFilter::default());
        assert_eq!(left.len(), 2, "{left:?}");
        let a = heir.get(still).expect("repeated");
        assert_eq!(a.count, 2);
        assert!(left.iter().any(|a| a.key == "LinkDown:r1"));
        let ev = kinds(&log).await;
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].0, "alarm.cleared");
        assert!(ev[0].1.contains("[LinkDown:r1:2]") && ev[0].1.ends_with("ended meanwhile"));
    }

    #[tokio::test]
    async fn clear_element_clears_every_alarm_of_it_with_events() {
        let (t, log, _d) = table();
        t.raise(link_down("1"));
        t.raise(link_down("2"));
        t.raise(Raise {
            element: "r2".into(),
            ..link_down("1")
        });
        assert_eq!(t.clear_element("r1", "element removed"), 2);
        assert_eq!(t.list(&AlarmFilter::default()).len(), 1);
        let cleared: Vec<String> = kinds(&log)
            .await
            .into_iter()
            .filter(|(k, _)| k == "alarm.cleared")
            .map(|(_, text)| text)
            .collect();
        assert_eq!(cleared.len(), 2);
        assert!(cleared.iter().all(|t| t.ends_with(": element removed")));
    }

    #[tokio::test]
    async fn hand_over_keeps_ids_and_sorting_puts_critical_first() {
        let (a, _l1, _d1) = table();
        let (b, _l2, _d2) = table();
        a.raise(link_down("1"));
        a.raise(Raise {
            kind: "NodeDown".into(),
            element: "r1".into(),
            instance: None,
            severity: Severity::Critical,
            text: "x".into(),
        });
        let moved = a.take_element("r1");
        assert_eq!(moved.len(), 2);
        assert!(a.list(&AlarmFilter::default()).is_empty());
        let ids: Vec<u64> = moved.iter().map(|m| m.id).collect();
        b.adopt(moved);
        let listed = b.list(&AlarmFilter::default());
        assert_eq!(listed[0].severity, Severity::Critical);
        assert!(listed.iter().all(|x| ids.contains(&x.id)));
        // A repeat after hand-over counts on the adopted alarm.
        assert!(matches!(b.raise(link_down("1")), RaiseOutcome::Repeat(_)));
    }
}
