//! Inventory changes: one writer on the master, durable before anyone is told "yes".
//!
//! Every change (from the API here, forwarded by a peer, or replayed after a restart) goes
//! through one task that applies a batch of them to the master's inventory under the state
//! lock, persists them in a journal (one commit per batch) and only then answers. The next
//! assignment round distributes them; once the master has applied and persisted an
//! assignment that contains a change, the change is `applied` (`Settled`) and leaves the
//! journal. A journal left by a crash is replayed to whoever is master, idempotently.

use super::protocol::{AssignmentId, Credentials};
use super::{Cluster, ClusterError, Role};
use crate::model::Element;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

const META_JOURNAL: &str = "cluster.inventory.journal";
const META_APPLIED_SEQ: &str = "cluster.inventory.applied";
/// Changes committed together at most (one journal write).
const BATCH: usize = 512;

/// A change of the inventory, made on the master.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum InventoryChange {
    Add(Element),
    Remove(String),
    /// Add or replace (a reloaded config file).
    Put(Element),
    /// Add or replace a credential profile (API, or a reloaded config file).
    #[serde(rename = "set_credential")]
    SetCredential {
        name: String,
        credential: crate::config::Credential,
    },
    /// Remove a credential profile no element uses.
    #[serde(rename = "remove_credential")]
    RemoveCredential(String),
}

/// The master's inventory with the changes not yet distributed.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    elements: BTreeMap<Arc<str>, Element>,
    credentials: Credentials,
    /// The journal sequence number of the newest change in it.
    pub(super) seq: u64,
}

impl Pending {
    pub(crate) fn elements(&self) -> Vec<Element> {
        self.elements.values().cloned().collect()
    }
}

/// What the master's writer changes: the elements and the credential profiles they name.
pub(crate) struct Inventory<'a> {
    pub(crate) elements: &'a mut BTreeMap<Arc<str>, Element>,
    pub(crate) credentials: &'a mut Credentials,
}

/// What the master says about an accepted change.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// Its place in the master's journal (persisted).
    pub(crate) seq: u64,
    /// The assignment that carries it, once the master applied and persisted one.
    pub(crate) applied: Option<AssignmentId>,
}

/// Peer body of `POST /peer/v1/inventory`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Forwarded {
    pub(crate) change: InventoryChange,
    /// A change from a crashed master's journal: adding what is there already, or removing
    /// what is gone, is success rather than a conflict.
    #[serde(default)]
    pub(crate) replay: bool,
}

pub(crate) struct Request {
    change: InventoryChange,
    replay: bool,
    done: oneshot::Sender<Result<u64, ClusterError>>,
}

/// Applies one change to `inv`; returns the inverse (for a failed commit), or `None` when a
/// replay found it already done.
pub(crate) fn apply(
    inv: Inventory<'_>,
    change: &InventoryChange,
    replay: bool,
) -> Result<Option<InventoryChange>, ClusterError> {
    let Inventory {
        elements: inv,
        credentials,
    } = inv;
    if let InventoryChange::Add(e) | InventoryChange::Put(e) = change {
        // The pool's profiles decide, not the file of whichever member took the request.
        crate::config::validate_element_credential(e, credentials)
            .map_err(|(k, m)| ClusterError::Invalid(format!("{k}: {m}")))?;
    }
    match change {
        InventoryChange::SetCredential { .. } | InventoryChange::RemoveCredential(_) => {
            super::credentials::apply(inv, credentials, change, replay)
        }
        InventoryChange::Add(e) => match inv.get(&e.name) {
            Some(old) if replay && old == e => Ok(None),
            Some(_) => Err(ClusterError::Exists(e.name.to_string())),
            None => {
                inv.insert(e.name.clone(), e.clone());
                Ok(Some(InventoryChange::Remove(e.name.to_string())))
            }
        },
        InventoryChange::Put(e) => match inv.insert(e.name.clone(), e.clone()) {
            Some(old) if old == *e => Ok(None),
            Some(old) => Ok(Some(InventoryChange::Put(old))),
            None => Ok(Some(InventoryChange::Remove(e.name.to_string()))),
        },
        InventoryChange::Remove(name) => match inv.remove(name.as_str()) {
            Some(old) => Ok(Some(InventoryChange::Add(old))),
            None if replay => Ok(None),
            None => Err(ClusterError::NoSuchElement(name.clone())),
        },
    }
}

/// Set on the master when it applied and persisted an assignment: the journal sequence it
/// includes, and its id.
pub(crate) type SettledTx = watch::Sender<(u64, AssignmentId)>;

pub(crate) struct Journal {
    entries: Vec<(u64, InventoryChange)>,
    next_seq: u64,
    applied_seq: u64,
}

impl Journal {
    pub(crate) fn applied_seq(&self) -> u64 {
        self.applied_seq
    }
}

impl Cluster {
    /// Loads the journal a previous run left (changes not known to be distributed).
    pub(crate) fn load_journal(&self) -> Journal {
        let get = |k: &str| self.events.meta_get(k).ok().flatten();
        // Sealed: a credential change carries its secrets (`sealed`).
        let entries: Vec<(u64, InventoryChange)> = get(META_JOURNAL)
            .and_then(|b| self.sealer.load_blob(&b))
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let applied_seq: u64 = get(META_APPLIED_SEQ)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(0);
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|(s, _)| *s > applied_seq)
            .collect();
        let next_seq = entries
            .iter()
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(0)
            .max(applied_seq)
            .saturating_add(1);
        Journal {
            entries,
            next_seq,
            applied_seq,
        }
    }

    /// The inventory the next round distributes: pending changes, else the assignment's, else
    /// the configured seed (a pool that never had an assignment). In name order. With the
    /// credential profiles, from the same source (the file's before the pool held any).
    pub(crate) fn inventory(&self) -> (Vec<Element>, Credentials, u64) {
        let st = self.lock();
        if let Some(p) = &st.pending {
            return (p.elements(), p.credentials.clone(), p.seq);
        }
        let credentials = st
            .assignment
            .credentials
            .clone()
            .unwrap_or_else(|| self.seed_credentials());
        let mut v =
            if st.assignment.id == AssignmentId::default() && st.assignment.elements.is_empty() {
                self.seed()
            } else {
                st.assignment.elements.clone()
            };
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.dedup_by(|a, b| a.name == b.name);
        (v, credentials, st.applied_seq)
    }

    /// The master applied and persisted an assignment made from journal sequence `seq`.
    pub(super) async fn settled(&self, seq: u64, id: AssignmentId) {
        {
            let mut st = self.lock();
            if st.pending.as_ref().is_some_and(|p| p.seq <= seq) {
                st.pending = None;
            }
            if seq <= st.applied_seq {
                return;
            }
            st.applied_seq = seq;
        }
        // The assignment carrying these changes is persisted already: answer first. The
        // sequence only trims the journal a restart would replay (idempotently).
        self.settled.send_replace((seq, id));
        if let Ok(b) = serde_json::to_vec(&seq)
            && let Err(e) = self.events.meta_put(META_APPLIED_SEQ, b).await
        {
            tracing::warn!("cannot persist the applied inventory sequence: {e}");
        }
    }

    /// Hands a change to the writer; `Ok(seq)` once it is persisted in the master's journal.
    pub(crate) async fn submit(
        &self,
        change: InventoryChange,
        replay: bool,
    ) -> Result<u64, ClusterError> {
        let (done, rx) = oneshot::channel();
        self.writes
            .send(Request {
                change,
                replay,
                done,
            })
            .await
            .map_err(|_| ClusterError::Store("inventory writer stopped".into()))?;
        rx.await
            .map_err(|_| ClusterError::Store("inventory writer stopped".into()))?
    }

    /// [`Cluster::submit`], then waits (at most `wait`) until the master applied it.
    pub(crate) async fn change_inventory(
        &self,
        change: InventoryChange,
        replay: bool,
        wait: Duration,
    ) -> Result<Accepted, ClusterError> {
        let mut settled = self.settled.subscribe();
        let seq = self.submit(change, replay).await?;
        let applied = tokio::time::timeout(wait, settled.wait_for(|(s, _)| *s >= seq))
            .await
            .ok()
            .and_then(|r| r.ok().map(|v| v.1))
            .filter(|id| *id != AssignmentId::default());
        Ok(Accepted { seq, applied })
    }

    /// The one writer of the inventory. Runs for the life of the server; refuses changes
    /// while this server is not master.
    pub(super) async fn write_inventory(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Request>,
        mut journal: Journal,
    ) {
        if !journal.entries.is_empty() {
            tokio::spawn(self.clone().replay(journal.entries.clone()));
            // Replayed through the writer again (with new numbers) by whoever is master.
            journal.entries.clear();
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let first = tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
                _ = tick.tick() => {
                    self.orphaned(&mut journal);
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let mut results: Vec<Result<Option<(u64, InventoryChange)>, ClusterError>> =
                Vec::with_capacity(batch.len());
            {
                let mut st = self.lock();
                journal.applied_seq = journal.applied_seq.max(st.applied_seq);
                // A new master decides from the newest inventory only once it made its first
                // assignment (after catching up with the pool's newest).
                if st.role != Role::Master || st.assignment.id.term != st.term {
                    results.extend(batch.iter().map(|_| Err(ClusterError::NotMaster)));
                } else {
                    if st.pending.is_none() {
                        drop(st);
                        let (elements, credentials, seq) = self.inventory();
                        st = self.lock();
                        st.pending.get_or_insert(Pending {
                            elements: elements.into_iter().map(|e| (e.name.clone(), e)).collect(),
                            credentials,
                            seq,
                        });
                    }
                    let applied_seq = st.applied_seq;
                    if let Some(p) = st.pending.as_mut() {
                        for r in &batch {
                            let inv = Inventory {
                                elements: &mut p.elements,
                                credentials: &mut p.credentials,
                            };
                            results.push(apply(inv, &r.change, r.replay).map(|undo| {
                                undo.map(|u| {
                                    let seq = journal.next_seq;
                                    journal.next_seq = journal.next_seq.saturating_add(1);
                                    p.seq = seq;
                                    (seq, u)
                                })
                            }));
                        }
                        if results.iter().all(|r| !matches!(r, Ok(Some(_)))) {
                            // Nothing changed: a replay of what is there; the current seq will do.
                            p.seq = p.seq.max(applied_seq);
                        }
                    }
                }
            }
            journal.entries.retain(|(s, _)| *s > journal.applied_seq);
            let new: Vec<(u64, InventoryChange)> = batch
                .iter()
                .zip(&results)
                .filter_map(|(r, res)| match res {
                    Ok(Some((seq, _))) => Some((*seq, r.change.clone())),
                    _ => None,
                })
                .collect();
            let commit = if new.is_empty() {
                Ok(())
            } else {
                journal.entries.extend(new.iter().cloned());
                let bytes = serde_json::to_vec(&journal.entries).unwrap_or_default();
                match self.sealer.store_blob(&bytes) {
                    Some(sealed) => self
                        .events
                        .meta_put(META_JOURNAL, sealed)
                        .await
                        .map_err(|e| ClusterError::Store(e.to_string())),
                    None => Err(ClusterError::Store("cannot seal the journal".into())),
                }
            };
            if let Err(e) = &commit {
                // Not durable: undo in reverse order, so nobody is told yes for a change a
                // crash could lose.
                let mut st = self.lock();
                if let Some(p) = st.pending.as_mut() {
                    for r in results.iter().rev() {
                        if let Ok(Some((_, undo))) = r {
                            let inv = Inventory {
                                elements: &mut p.elements,
                                credentials: &mut p.credentials,
                            };
                            let _ = apply(inv, undo, true);
                        }
                    }
                }
                let failed: BTreeSet<u64> = new.iter().map(|(s, _)| *s).collect();
                journal.entries.retain(|(s, _)| !failed.contains(s));
                tracing::error!("inventory change not persisted: {e}");
            } else if !new.is_empty() {
                self.inventory_changed.notify_one();
            }
            let current = self.lock().pending.as_ref().map_or(0, |p| p.seq);
            for (r, res) in batch.into_iter().zip(results) {
                let answer = match (&commit, res) {
                    (_, Err(e)) => Err(e),
                    (Err(e), Ok(Some(_))) => Err(ClusterError::Store(e.to_string())),
                    (_, Ok(Some((seq, _)))) => Ok(seq),
                    (_, Ok(None)) => Ok(current),
                };
                let _ = r.done.send(answer);
            }
        }
    }

    /// No longer master: changes accepted but not distributed go to the new master.
    fn orphaned(self: &Arc<Self>, journal: &mut Journal) {
        let mut st = self.lock();
        if st.role == Role::Master {
            return;
        }
        st.pending = None;
        let applied = st.applied_seq;
        drop(st);
        journal.entries.retain(|(s, _)| *s > applied);
        if !journal.entries.is_empty() {
            tokio::spawn(self.clone().replay(std::mem::take(&mut journal.entries)));
        }
    }

    /// Sends a crashed run's journal to the master until every change is in (or refused as
    /// contradicting what the pool did since). Bounded: gives up after an hour.
    async fn replay(self: Arc<Self>, entries: Vec<(u64, InventoryChange)>) {
        let mut left = entries;
        tracing::info!("replaying {} journaled inventory change(s)", left.len());
        for _ in 0..14_400 {
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(self.timings.heartbeat).await;
            let Some(master) = self.master() else {
                continue;
            };
            let mut keep = Vec::new();
            for (seq, change) in left {
                let r = if master == self.me {
                    self.submit(change.clone(), true).await.map(|_| ())
                } else {
                    let body = Forwarded {
                        change: change.clone(),
                        replay: true,
                    };
                    self.transport
                        .post::<_, serde_json::Value>(
                            master,
                            "/peer/v1/inventory",
                            &body,
                            self.timings.failure_timeout * 4,
                        )
                        .await
                        .map(|_| ())
                        .map_err(|e| ClusterError::Store(e.to_string()))
                };
                match r {
                    Ok(()) => {}
                    Err(
                        e @ (ClusterError::Exists(_)
                        | ClusterError::NoSuchElement(_)
                        | ClusterError::Invalid(_)
                        | ClusterError::CredentialInUse { .. }),
                    ) => {
                        tracing::warn!("journaled change dropped on replay: {e}");
                    }
                    Err(ClusterError::Store(m))
                        if m.contains(" 409 ") || m.contains(" 404 ") || m.contains(" 400 ") =>
                    {
                        tracing::warn!("journaled change dropped on replay: {m}");
                    }
                    Err(_) => keep.push((seq, change)),
                }
            }
            left = keep;
        }
        if let Err(e) = self.events.meta_put(META_JOURNAL, b"[]".to_vec()).await {
            tracing::warn!("cannot clear the replayed journal: {e}");
        }
    }

    /// The config file's `[[elements]]` and `[credentials.*]` were reloaded (SIGHUP).
    /// Replaces the seeds; on the master, what changed between the previous file and this one
    /// (elements and profiles added, changed or removed in the file) goes through the writer
    /// like any change. What was added through the API stays. Elsewhere only the seeds change
    /// (`NotMaster`). Returns the element and the profile changes.
    // TODO(lead): a member could forward the difference to the master.
    pub(crate) fn reload_inventory(
        self: &Arc<Self>,
        elements: Vec<Element>,
        credentials: Credentials,
    ) -> Result<(usize, usize), ClusterError> {
        let (set_credentials, removed_credentials) = self.reload_credentials(credentials);
        let old = std::mem::replace(
            &mut *self.seed.lock().unwrap_or_else(|p| p.into_inner()),
            elements.clone(),
        );
        if self.lock().role != Role::Master {
            return Err(ClusterError::NotMaster);
        }
        // By name, not by scanning: 10,000 elements against 10,000 was ~10^8 comparisons.
        let new_names: BTreeSet<&str> = elements.iter().map(|e| &*e.name).collect();
        let old_by_name: HashMap<&str, &Element> = old.iter().map(|e| (&*e.name, e)).collect();
        let (inv, _, _) = self.inventory();
        let profiles = set_credentials.len() + removed_credentials.len();
        let mut changes = set_credentials;
        for e in &inv {
            if old_by_name.contains_key(&*e.name) && !new_names.contains(&*e.name) {
                changes.push(InventoryChange::Remove(e.name.to_string()));
            }
        }
        for e in elements {
            if !old_by_name.get(&*e.name).is_some_and(|o| **o == e) {
                // Replaced in one step: a remove then an add could be distributed apart,
                // and the element's alarms would be dropped in between.
                changes.push(InventoryChange::Put(e));
            }
        }
        changes.extend(removed_credentials);
        let changed = (changes.len().saturating_sub(profiles), profiles);
        let c = self.clone();
        tokio::spawn(async move {
            for change in changes {
                if let Err(e) = c.submit(change, true).await {
                    tracing::warn!("inventory change from the reloaded file not applied: {e}");
                }
            }
        });
        Ok(changed)
    }
}

#[cfg(test)]
#[path = "inventory_tests.rs"]
mod tests;
